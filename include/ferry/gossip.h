/*
 * gossip: the pure policy of manifest gossip and peer exchange. No socket,
 * clock, store or randomness source of its own: the node passes what it
 * holds, what a peer said, the time and a PRNG state, and acts on what comes
 * back. docs/gossip.md explains the whole behaviour.
 *
 * Glossary
 *   digest    per model name, the newest manifest a node holds: (name,
 *             version, BLAKE2b-256 of the signed bytes). Older versions a
 *             node holds because an operator asked for them are never in it.
 *   winner    of two manifests of one name: the higher version; for the same
 *             version, the lower hash (DESIGN.md "Trust and versions"), so
 *             every node converges on the same one.
 *   book      the known peers: node id, dialable address, site, when last
 *             seen, and a dial backoff. Fed by the config, by inbound
 *             connections and by peer exchange; persisted by the node.
 */
#ifndef FERRY_GOSSIP_H
#define FERRY_GOSSIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ferry/manifest.h"

/* Seconds between anti-entropy rounds. */
#define GOSSIP_ROUND_MS 5000
/* Known peers kept; the least recently seen learned ones are dropped beyond it. */
#define GOSSIP_BOOK_MAX 512
/* Bytes of an address "host:port" and of a site name, as on the wire. */
#define GOSSIP_ADDR_MAX 255
#define GOSSIP_SITE_MAX 64

struct gossip_entry {
	char name[MANIFEST_NAME_MAX + 1];
	uint64_t version;
	uint8_t hash[32];
};

/* True if a beats b (same name): higher version, or same version and lower hash. */
bool gossip_wins(const struct gossip_entry *a, const struct gossip_entry *b);

enum gossip_verb {
	GOSSIP_SEND = 1, /* send our manifest of name@version: the peer lacks it or holds a loser */
	GOSSIP_ASK = 2,	 /* ask the peer for name@version: ours is missing or loses */
};

struct gossip_todo {
	enum gossip_verb verb;
	char name[MANIFEST_NAME_MAX + 1];
	uint64_t version;
	uint8_t hash[32]; /* of the manifest to send or to be received */
};

/*
 * Compare our digest mine[0..nm) with the digest a peer sent, theirs[0..nt)
 * (untrusted: names may repeat or be in any order; the last entry of a name
 * counts). For each name, decide whether to send ours, ask for theirs, or
 * nothing. Names only we hold are sent. *out (malloc'd, caller frees; NULL
 * when *nout is 0) lists the decisions in name order. Never fails.
 */
void gossip_diff(const struct gossip_entry *mine, size_t nm, const struct gossip_entry *theirs,
		 size_t nt, struct gossip_todo **out, size_t *nout);

/*
 * A manifest accepted from a peer or a publish: is it forwarded (eagerly
 * pushed to every other connected peer)? Only a new newest version
 * (CATALOG_NEWEST) or a winning same-version replacement (CATALOG_REPLACED)
 * is; an older signed version or one already held is not.
 */
bool gossip_forward(int catalog_outcome);

/* How many peers an anti-entropy round talks to, given how many are connected. */
size_t gossip_fanout(size_t connected);

/* The next value of a xorshift64* PRNG; *state must not be 0. */
uint64_t gossip_rand(uint64_t *state);

/*
 * Pick k distinct indexes out of 0..n-1 at random into out[0..min(k, n)),
 * returns how many. Uniform (a partial Fisher-Yates shuffle).
 */
size_t gossip_pick(size_t n, size_t k, uint64_t *rng, size_t *out);

/* Where a known peer came from; a higher source is never overwritten by a lower one. */
enum gossip_source {
	GOSSIP_SRC_PEX = 1,	 /* a peer told us */
	GOSSIP_SRC_LAN = 2,	 /* a LAN discovery beacon */
	GOSSIP_SRC_INBOUND = 3,	 /* it connected to us (address: its IP and listen port) */
	GOSSIP_SRC_OUTBOUND = 4, /* we dialed it and it answered with this id */
};

struct gossip_peer {
	uint8_t id[32];
	char addr[GOSSIP_ADDR_MAX + 1]; /* "host:port", "[v6]:port"; "" if not dialable */
	char site[GOSSIP_SITE_MAX + 1];
	enum gossip_source source;
	int64_t last_seen;  /* unix seconds a session with it was last up; 0 = never */
	uint32_t fails;	    /* consecutive failed dials */
	uint64_t next_dial; /* monotonic ms before which it is not dialed */
	bool connected;	    /* set by the node */
	uint64_t bytes_received, bytes_served; /* kept by the node, across reconnects */
};

struct gossip_book;

/* A new empty book for node self (whose own id is never added). Free with gossip_book_free. */
struct gossip_book *gossip_book_new(const uint8_t self[static 32]);
void gossip_book_free(struct gossip_book *b);

/*
 * Learn or refresh a peer (untrusted when it comes from peer exchange):
 * FERRY_EINVAL for our own id, an address that is not "host:port" with a
 * port 1..65535, or a site or address too long. An existing entry takes
 * the address and site when the new source is at least as strong, and
 * the later last_seen. When the book is full the learned (PEX/LAN) entry
 * seen least recently is dropped for a new one; a new PEX entry is refused
 * (FERRY_ENOSPC) if every entry is stronger. Returns 1 if the entry was
 * added or changed (persist it), 0 if nothing changed.
 */
int gossip_book_learn(struct gossip_book *b, const uint8_t id[static 32], const char *addr,
		      const char *site, enum gossip_source src, int64_t seen);

/* The entry of id, or NULL. Valid until the book is next changed. */
struct gossip_peer *gossip_book_get(struct gossip_book *b, const uint8_t id[static 32]);
size_t gossip_book_count(const struct gossip_book *b);
/* The i-th entry (0..count-1), or NULL. Valid until the book is next changed. */
struct gossip_peer *gossip_book_at(struct gossip_book *b, size_t i);

/*
 * A dial of id failed at now_ms: back off exponentially with jitter
 * (1 s doubling to 10 min, +-25%). A success (a session up) resets it:
 * gossip_book_up().
 */
void gossip_book_dial_failed(struct gossip_book *b, const uint8_t id[static 32], uint64_t now_ms,
			     uint64_t *rng);
void gossip_book_up(struct gossip_book *b, const uint8_t id[static 32], int64_t now_unix);

/*
 * Which known peers to dial now: not connected, with an address, out of
 * backoff, at most max of them, the ones seen most recently first; the node
 * dials them while it has fewer than its target of connections. Indexes into
 * the book go to out; returns how many.
 */
size_t gossip_book_pick_dial(struct gossip_book *b, uint64_t now_ms, size_t max, size_t *out);

/*
 * Which known peers to tell a peer about: with an address, not the asker
 * itself, seen within max_age_s, in random order; at most max. Indexes into
 * the book go to out; returns how many.
 */
size_t gossip_book_pick_share(struct gossip_book *b, const uint8_t asker[static 32],
			      int64_t now_unix, int64_t max_age_s, size_t max, uint64_t *rng,
			      size_t *out);

#endif
