/*
 * Fuzz the LAN beacon decoder (discovery_decode): datagrams from anyone on
 * the LAN, before any handshake. The beacon key is derived from the fixed
 * network key and the clock is FUZZ_NOW. The first input byte picks a mode:
 *   0  the rest is the datagram;
 *   1  the rest is bytes 0..128 of a beacon (missing bytes are zero) that
 *      the harness authenticates with the right MAC, so the decoder's field
 *      checks behind the MAC are reached; with the next byte odd, the magic
 *      is set to "FLAN" first.
 * A beacon that decodes must hold a port of 1..65535, a site of at most 64
 * bytes with no NUL inside its length, and a time within the allowed skew;
 * encoded again it must decode to the same fields. A datagram changed in
 * any byte after its MAC was made must not decode.
 */
#include "config.h"

#include "ferry/discovery.h"
#include "ferry/error.h"
#include "ferry/fcrypto.h"
#include "fuzz.h"

#define MAC_AT	128
#define MAC_LEN 16

static uint8_t key[32];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	uint8_t netkey[32];

	if (fcrypto_init() != 0)
		abort();
	fuzz_key(netkey, FUZZ_NETKEY);
	discovery_key(key, netkey);
	return 0;
}

/* The MAC as discovery.h defines it: BLAKE2b-256(K || bytes 0..128), first 16 bytes. */
static void mac(uint8_t beacon[DISCOVERY_BEACON_LEN])
{
	uint8_t buf[32 + MAC_AT], h[32];

	memcpy(buf, key, 32);
	memcpy(buf + 32, beacon, MAC_AT);
	fcrypto_id(h, buf, sizeof(buf));
	memcpy(beacon + MAC_AT, h, MAC_LEN);
}

static void check(const uint8_t *p, size_t n)
{
	struct discovery_beacon b, again;
	uint8_t enc[DISCOVERY_BEACON_LEN];
	size_t site_len;

	if (discovery_decode(key, p, n, FUZZ_NOW, &b) != 0)
		return;
	FUZZ_CHECK(n == DISCOVERY_BEACON_LEN);
	FUZZ_CHECK(b.port >= 1);
	site_len = strnlen(b.site, sizeof(b.site));
	FUZZ_CHECK(site_len <= DISCOVERY_SITE_MAX);
	FUZZ_CHECK(b.time >= (int64_t)FUZZ_NOW - DISCOVERY_SKEW_MAX &&
		   b.time <= (int64_t)FUZZ_NOW + DISCOVERY_SKEW_MAX);
	FUZZ_CHECK(discovery_encode(key, &b, enc) == 0);
	FUZZ_CHECK(discovery_decode(key, enc, sizeof(enc), FUZZ_NOW, &again) == 0);
	FUZZ_CHECK(memcmp(again.id, b.id, 32) == 0 && again.port == b.port &&
		   strcmp(again.site, b.site) == 0 && again.time == b.time &&
		   again.reply == b.reply);
	/* Any change to an authenticated beacon is refused. */
	for (size_t i = 0; i < DISCOVERY_BEACON_LEN; i += 13) {
		enc[i] ^= 0x20;
		FUZZ_CHECK(discovery_decode(key, enc, sizeof(enc), FUZZ_NOW, &again) != 0);
		enc[i] ^= 0x20;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = {data, size};
	uint8_t beacon[DISCOVERY_BEACON_LEN] = {0};
	const uint8_t *p;
	bool magic;
	size_t n;

	if (fuzz_u8(&in) % 2 == 0) {
		check(in.p, in.n);
		return 0;
	}
	magic = fuzz_u8(&in) % 2 == 1;
	p = fuzz_bytes(&in, MAC_AT, &n);
	memcpy(beacon, p, n);
	if (magic)
		memcpy(beacon, "FLAN", 4);
	mac(beacon);
	check(beacon, sizeof(beacon));
	return 0;
}
