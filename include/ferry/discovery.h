/*
 * LAN discovery: nodes of one network find each other on a LAN with UDP
 * multicast beacons, authenticated with the network key.
 *
 * A beacon says "node ID listens on port P, site S" and carries a MAC keyed
 * with a key derived from the network key, so a host without the key can
 * neither forge one nor learn anything from one beyond that some ferry node
 * is there. A beacon only makes a node dial an address: the handshake still
 * authenticates everything, so a replayed beacon costs at most a dial.
 * A node answers a beacon from a node it does not know with its own beacon,
 * unicast, of exactly the same size: a reply is never larger than the
 * request, so discovery cannot amplify traffic towards a spoofed source.
 *
 * Beacon layout (DISCOVERY_BEACON_LEN bytes, integers big-endian):
 *
 *   0    4  magic "FLAN"
 *   4    1  version (1)
 *   5    1  flags: bit 0 = a reply
 *   6    2  listen port (1..65535)
 *   8    8  sender's clock, unix seconds
 *   16  32  node id
 *   48   1  site length (0..64)
 *   49  64  site, zero-padded
 *   113  8  random nonce
 *   121  7  zero
 *   128 16  MAC: the first 16 bytes of BLAKE2b-256(K || bytes 0..128),
 *           K = BLAKE2b-256("ferry-lan-v1" || network key)
 *
 * BLAKE2b is not open to length extension, so the keyed prefix is a MAC. A
 * beacon whose clock is more than DISCOVERY_SKEW_MAX seconds off is ignored.
 */
#ifndef FERRY_DISCOVERY_H
#define FERRY_DISCOVERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DISCOVERY_BEACON_LEN 144
#define DISCOVERY_VERSION    1
#define DISCOVERY_SITE_MAX   64
#define DISCOVERY_SKEW_MAX   120
/* The group and UDP port beacons go to (administratively scoped, RFC 2365). */
#define DISCOVERY_GROUP "239.255.70.76"
#define DISCOVERY_PORT	7440
/* Seconds between beacons. */
#define DISCOVERY_INTERVAL_S 30

struct discovery_beacon {
	uint8_t id[32];
	uint16_t port;
	char site[DISCOVERY_SITE_MAX + 1];
	int64_t time; /* unix seconds */
	bool reply;
};

/* The beacon key of a network key. */
void discovery_key(uint8_t key[static 32], const uint8_t netkey[static 32]);

/*
 * Encode b into out, with a fresh nonce, authenticated with key. FERRY_EINVAL
 * for a site over DISCOVERY_SITE_MAX bytes or port 0.
 */
int discovery_encode(const uint8_t key[static 32], const struct discovery_beacon *b,
		     uint8_t out[static DISCOVERY_BEACON_LEN]);

/*
 * Check and decode a received datagram p[0..n) (untrusted). 0 and *out, or
 * FERRY_EAUTH (wrong size, magic or MAC: not from this network),
 * FERRY_EVERSION (another beacon version), FERRY_EPROTO (a bad field, or a
 * clock more than DISCOVERY_SKEW_MAX seconds from now_unix).
 */
int discovery_decode(const uint8_t key[static 32], const uint8_t *p, size_t n, int64_t now_unix,
		     struct discovery_beacon *out);

struct uv_loop_s;
struct discovery;

/*
 * Start beaconing on loop: join the group on every interface the kernel
 * picks, send a beacon now and every DISCOVERY_INTERVAL_S seconds, answer
 * beacons of unknown nodes, and call found(arg, beacon, host) for every
 * valid beacon of another node (host is the sender's address, borrowed for
 * the call). port is the UDP port (DISCOVERY_PORT; tests use another).
 * A host without multicast is not an error: sending fails quietly (logged
 * once at info). *out is owned by the caller: discovery_stop() it.
 */
int discovery_start(struct uv_loop_s *loop, const uint8_t netkey[static 32],
		    const struct discovery_beacon *self, uint16_t port,
		    void (*found)(void *arg, const struct discovery_beacon *b, const char *host),
		    void *arg, struct discovery **out);

/* Stop; the handles close as the loop runs, then cb(arg). NULL d: cb is called at once. */
void discovery_stop(struct discovery *d, void (*cb)(void *arg), void *arg);

#endif
