/*
 * What the libFuzzer harnesses under tests/fuzz/ share: the entry points'
 * prototypes, a check that turns a broken property into a crash libFuzzer
 * records, a cursor that takes typed values from the fuzzer's bytes, and the
 * fixed keys and clock that make every harness deterministic (the seed
 * generator, gen_corpus.c, uses the same ones, so its handshake seeds
 * authenticate in the harnesses). How to run them: docs/testing.md.
 */
#ifndef FERRY_FUZZ_H
#define FERRY_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/manifest.h"
#include "ferry/nodekey.h"
#include "ferry/session.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/*
 * A property the harness checks beyond "no crash": on failure print it and
 * abort, which libFuzzer reports as a crash and saves the input for.
 */
#define FUZZ_CHECK(cond)                                                                           \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: property broken: %s\n", __FILE__, __LINE__,        \
				#cond);                                                            \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

/* The fuzzer's bytes, taken from the front; past the end every value is 0. */
struct fuzz_in {
	const uint8_t *p;
	size_t n;
};

static inline uint8_t fuzz_u8(struct fuzz_in *in)
{
	uint8_t v = 0;

	if (in->n > 0) {
		v = in->p[0];
		in->p++;
		in->n--;
	}
	return v;
}

static inline uint16_t fuzz_u16(struct fuzz_in *in)
{
	uint16_t hi = fuzz_u8(in);

	return (uint16_t)(hi << 8 | fuzz_u8(in));
}

static inline uint32_t fuzz_u24(struct fuzz_in *in)
{
	uint32_t hi = fuzz_u16(in);

	return hi << 8 | fuzz_u8(in);
}

/* Up to n bytes as a borrowed slice; *len says how many there were. */
static inline const uint8_t *fuzz_bytes(struct fuzz_in *in, size_t n, size_t *len)
{
	const uint8_t *p = in->p;

	*len = n < in->n ? n : in->n;
	in->p += *len;
	in->n -= *len;
	return p;
}

/* A small deterministic generator (xorshift64*) for bulk data derived from a seed. */
static inline uint64_t fuzz_rand(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dull;
}

static inline void fuzz_fill(uint8_t *p, size_t n, uint64_t seed)
{
	uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;

	for (size_t i = 0; i < n; i += 8) {
		uint64_t r = fuzz_rand(&s);

		memcpy(p + i, &r, n - i < 8 ? n - i : 8);
	}
}

/* The clock of both sides of a fuzzed handshake: 2026-01-01T00:00:00Z. */
#define FUZZ_NOW 1767225600u

/*
 * The fixed keys: the network key, the initiator's and responder's static
 * keys and their ephemeral keys, each filled from its own seed. The frame key
 * of fuzz_frames is the network key's bytes (any 32 bytes will do).
 */
enum fuzz_key { FUZZ_NETKEY = 1, FUZZ_STATIC_I, FUZZ_STATIC_R, FUZZ_EPHEMERAL_I, FUZZ_EPHEMERAL_R };

static inline void fuzz_key(uint8_t out[static 32], enum fuzz_key which)
{
	fuzz_fill(out, 32, which);
}

static inline void fuzz_nodekey(struct nodekey *k, enum fuzz_key which)
{
	fuzz_key(k->sk, which);
	nodekey_derive_public(k);
}

/*
 * The fixed publisher key: Ed25519 from the seed 01 02 .. 20, in libsodium's
 * form (seed, then the public key), so fuzz_publisher_sk + 32 is the public key.
 */
static const uint8_t fuzz_publisher_sk[64] = {
    0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10,
    0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x20,
    0x79, 0xb5, 0x56, 0x2e, 0x8f, 0xe6, 0x54, 0xf9, 0x40, 0x78, 0xb1, 0x12, 0xe8, 0xa9, 0x8b, 0xa7,
    0x90, 0x1f, 0x85, 0x3a, 0xe6, 0x95, 0xbe, 0xd7, 0xe0, 0xe3, 0x91, 0x0b, 0xad, 0x04, 0x96, 0x64,
};

/* Message 1's payload as a real initiator writes it: version 1, no flags, the time. */
static inline void fuzz_msg1_payload(uint8_t p[12], uint64_t t)
{
	memset(p, 0, 12);
	p[1] = SESSION_HS_VERSION;
	for (int i = 0; i < 8; i++)
		p[4 + i] = (uint8_t)(t >> (56 - 8 * i));
}

/*
 * A handshake side with fixed keys and a fixed ephemeral key, so every run
 * gives the same bytes: the test-only raw constructor with the real prologue.
 * Message 1's payload is then the caller's (fuzz_msg1_payload for a real one).
 */
static inline struct session_hs *fuzz_hs_fixed(enum session_role role)
{
	struct nodekey k;
	uint8_t netkey[32], e[32];
	struct session_hs *hs;

	fuzz_nodekey(&k, role == SESSION_INITIATOR ? FUZZ_STATIC_I : FUZZ_STATIC_R);
	fuzz_key(netkey, FUZZ_NETKEY);
	fuzz_key(e, role == SESSION_INITIATOR ? FUZZ_EPHEMERAL_I : FUZZ_EPHEMERAL_R);
	hs = session__hs_new_raw(role, &k, netkey, (const uint8_t *)SESSION_PROLOGUE,
				 strlen(SESSION_PROLOGUE), e);
	nodekey_wipe(&k);
	return hs;
}

/* A real (not raw) responder with the fixed keys and clock: it checks message 1's payload. */
static inline struct session_hs *fuzz_hs_responder(void)
{
	struct nodekey k;
	uint8_t netkey[32];
	struct session_hs *hs;

	fuzz_nodekey(&k, FUZZ_STATIC_R);
	fuzz_key(netkey, FUZZ_NETKEY);
	hs = session_hs_new(SESSION_RESPONDER, &k, netkey, FUZZ_NOW);
	nodekey_wipe(&k);
	return hs;
}

/*
 * Our own reading of the manifest rules in docs/formats.md ("Manifests"), to
 * check src/manifest.c against: model names, UTF-8 text without control
 * characters (labels), and safe relative paths.
 */
static inline bool fuzz_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 64)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      (i > 0 && (c == '.' || c == '_' || c == '-'))))
			return false;
	}
	return true;
}

/* Decode one UTF-8 sequence at p[0..n); its length, or 0 if it is not a valid one. */
static inline size_t fuzz_utf8_one(const unsigned char *p, size_t n)
{
	uint32_t cp;
	size_t k;

	if (p[0] < 0x80)
		return 1;
	if ((p[0] & 0xe0) == 0xc0)
		k = 2, cp = p[0] & 0x1f;
	else if ((p[0] & 0xf0) == 0xe0)
		k = 3, cp = p[0] & 0x0f;
	else if ((p[0] & 0xf8) == 0xf0)
		k = 4, cp = p[0] & 0x07;
	else
		return 0;
	if (n < k)
		return 0;
	for (size_t i = 1; i < k; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if ((k == 2 && cp < 0x80) || (k == 3 && cp < 0x800) || (k == 4 && cp < 0x10000))
		return 0; /* overlong */
	if ((cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return k;
}

static inline bool fuzz_text_ok(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;

	for (size_t i = 0; i < n;) {
		size_t k = fuzz_utf8_one(p + i, n - i);

		if (k == 0 || p[i] < 0x20 || p[i] == 0x7f)
			return false;
		i += k;
	}
	return true;
}

static inline bool fuzz_path_ok(const char *s)
{
	size_t n = strlen(s), start = 0;

	if (n == 0 || n > MANIFEST_PATH_MAX || s[0] == '/' || strchr(s, '\\') != NULL ||
	    !fuzz_text_ok(s, n))
		return false;
	for (size_t i = 0; i <= n; i++) {
		if (i < n && s[i] != '/')
			continue;
		if (i == start || i - start > MANIFEST_COMPONENT_MAX ||
		    (i - start == 1 && s[start] == '.') ||
		    (i - start == 2 && s[start] == '.' && s[start + 1] == '.'))
			return false;
		start = i + 1;
	}
	return true;
}

#endif
