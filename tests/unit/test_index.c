/* Unit tests for chunk index pieces: the layout, cutting into pieces, and rejection of garbage. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ferry/chunker.h"
#include "ferry/codec.h"
#include "ferry/error.h"
#include "ferry/fcrypto.h"
#include "ferry/index.h"
#include "ferry/util.h"

/* A deterministic, valid list of n refs with every codec in use. */
static struct chunk_ref *make_refs(size_t n)
{
	struct chunk_ref *refs = xcalloc(n ? n : 1, sizeof(*refs));
	size_t i;

	for (i = 0; i < n; i++) {
		uint32_t x = (uint32_t)(i * 2654435761u), k = (uint32_t)i;

		memset(refs[i].id, (int)(i & 0xff), sizeof(refs[i].id));
		memcpy(refs[i].id + 28, &k, sizeof(k));
		refs[i].codec = (uint8_t)(i % CODEC__COUNT);
		refs[i].raw_len = 1 + x % CHUNK_MAX_SIZE;
		refs[i].enc_len = refs[i].codec == CODEC_RAW
				      ? refs[i].raw_len + CODEC_HDR_LEN
				      : CODEC_HDR_LEN + 1 + x % refs[i].raw_len;
	}
	return refs;
}

static void assert_refs_equal(const struct chunk_ref *a, const struct chunk_ref *b, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		assert_memory_equal(a[i].id, b[i].id, 32);
		assert_int_equal(a[i].raw_len, b[i].raw_len);
		assert_int_equal(a[i].enc_len, b[i].enc_len);
		assert_int_equal(a[i].codec, b[i].codec);
	}
}

/* Encode n refs, check the pieces' sizes and ids, and decode them all back. */
static void round_trip(size_t n, size_t want_pieces)
{
	struct chunk_ref *refs = make_refs(n), *all = xcalloc(n ? n : 1, sizeof(*all));
	struct index_piece *pieces;
	size_t np, k, got = 0;

	assert_int_equal(index_encode(refs, n, &pieces, &np), 0);
	assert_int_equal(np, want_pieces);
	if (n == 0)
		assert_null(pieces);
	for (k = 0; k < np; k++) {
		struct chunk_ref *dec;
		size_t ndec;
		uint8_t id[32];

		assert_true(pieces[k].len <= INDEX_PIECE_MAX);
		fcrypto_id(id, pieces[k].bytes, pieces[k].len);
		assert_memory_equal(id, pieces[k].id, 32);
		assert_int_equal(index_decode(pieces[k].bytes, pieces[k].len, &dec, &ndec), 0);
		/* every piece but the last is full */
		if (k + 1 < np)
			assert_int_equal(ndec, INDEX_PIECE_ENTRIES);
		assert_true(got + ndec <= n);
		memcpy(all + got, dec, ndec * sizeof(*dec));
		got += ndec;
		free(dec);
	}
	assert_int_equal(got, n);
	assert_refs_equal(all, refs, n);
	index_pieces_free(pieces, np);
	free(all);
	free(refs);
}

static void test_round_trip(void **state)
{
	round_trip(0, 0);
	round_trip(1, 1);
	round_trip(1000, 1);
	round_trip(INDEX_PIECE_ENTRIES, 1);
	round_trip(INDEX_PIECE_ENTRIES + 1, 2);
	round_trip(3 * INDEX_PIECE_ENTRIES + 17, 4);
}

/*
 * The layout is part of the format: a one-entry piece, byte for byte, and its
 * id. A change here changes every piece id a publisher ever signed.
 */
static void test_pinned_layout(void **state)
{
	static const char want_hex[] =
	    "46494458"
	    "01000000"
	    "01000000"
	    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
	    "01"
	    "00000400"
	    "e0d10300";
	struct chunk_ref ref;
	struct index_piece *pieces;
	char hex[2 * (INDEX_HDR_LEN + INDEX_ENTRY_LEN) + 1];
	uint8_t id[32];
	size_t np, i;

	assert_int_equal(INDEX_PIECE_ENTRIES, 25574);
	for (i = 0; i < 32; i++)
		ref.id[i] = (uint8_t)i;
	ref.codec = CODEC_ZSTD;
	ref.raw_len = 262144;
	ref.enc_len = 250336;
	assert_int_equal(index_encode(&ref, 1, &pieces, &np), 0);
	assert_int_equal(np, 1);
	assert_int_equal(pieces[0].len, INDEX_HDR_LEN + INDEX_ENTRY_LEN);
	assert_string_equal(hex_encode(hex, pieces[0].bytes, pieces[0].len), want_hex);
	fcrypto_id(id, pieces[0].bytes, pieces[0].len);
	assert_memory_equal(pieces[0].id, id, 32);
	index_pieces_free(pieces, np);
}

/* Decode buf and expect code with a detail containing what. */
static void expect_reject(const uint8_t *buf, size_t len, int code, const char *what)
{
	struct chunk_ref *refs = (struct chunk_ref *)1;
	size_t n = 99;

	assert_int_equal(index_decode(buf, len, &refs, &n), code);
	assert_null(refs);
	assert_int_equal(n, 0);
	if (strstr(ferry_errmsg(code), what) == NULL)
		fail_msg("detail '%s' does not name '%s'", ferry_errmsg(code), what);
}

static void test_garbage_rejected(void **state)
{
	struct chunk_ref *refs = make_refs(3);
	struct index_piece *pieces;
	uint8_t *buf, *e;
	size_t np, len, k;

	assert_int_equal(index_encode(refs, 3, &pieces, &np), 0);
	len = pieces[0].len;
	buf = xmalloc(len + 1);
	e = buf + INDEX_HDR_LEN + INDEX_ENTRY_LEN; /* the second entry */

#define RESET() memcpy(buf, pieces[0].bytes, len)
	RESET();
	expect_reject(buf, 5, FERRY_EFORMAT, "index piece of 5 bytes");
	buf[0] = 'X';
	expect_reject(buf, len, FERRY_EFORMAT, "bad magic 58494458");
	RESET();
	buf[4] = 2;
	expect_reject(buf, len, FERRY_EVERSION, "format 2 is not supported");
	RESET();
	memset(buf + 8, 0, 4);
	expect_reject(buf, len, FERRY_EFORMAT, "0 entries");
	RESET();
	buf[8] = 4;
	expect_reject(buf, len, FERRY_EFORMAT, "but 4 entries take");
	RESET();
	memset(buf + 8, 0xff, 4);
	expect_reject(buf, len, FERRY_EFORMAT, "4294967295 entries");
	RESET();
	expect_reject(buf, len - 1, FERRY_EFORMAT, "but 3 entries take");
	buf[len] = 0;
	expect_reject(buf, len + 1, FERRY_EFORMAT, "but 3 entries take");
	RESET();
	memset(e + 33, 0, 4);
	expect_reject(buf, len, FERRY_EFORMAT, "entry 1 (chunk 010101010101): raw length 0");
	RESET();
	memcpy(e + 33, "\x01\x00\x10\x00", 4); /* 1 MiB + 1 */
	expect_reject(buf, len, FERRY_EFORMAT, "raw length 1048577 is not in 1..1048576");
	RESET();
	e[32] = CODEC__COUNT;
	expect_reject(buf, len, FERRY_EFORMAT, "entry 1 (chunk 010101010101): unknown codec 4");
	RESET();
	/* entry 1 is zstd: an encoded length over raw + 5, and one of just a header */
	memcpy(e + 37, e + 33, 4);
	e[37] += 6;
	expect_reject(buf, len, FERRY_EFORMAT, "does not fit raw length");
	RESET();
	memcpy(e + 37, "\x05\x00\x00\x00", 4);
	expect_reject(buf, len, FERRY_EFORMAT, "encoded length 5 does not fit");
	RESET();
	/* entry 0 is raw: its encoded length must be exactly raw + 5 */
	buf[INDEX_HDR_LEN + 37]--;
	expect_reject(buf, len, FERRY_EFORMAT, "entry 0");
	RESET();

	/* Every truncation of a valid piece fails (exact-size copies for ASan). */
	for (k = 0; k < len; k++) {
		uint8_t *q = xmalloc(k ? k : 1);
		struct chunk_ref *out;
		size_t n;

		memcpy(q, pieces[0].bytes, k);
		assert_int_equal(index_decode(q, k, &out, &n), FERRY_EFORMAT);
		free(q);
	}
	/* Too large a piece, whatever it holds. */
	{
		uint8_t *big = xcalloc(INDEX_PIECE_MAX + 1, 1);

		memcpy(big, pieces[0].bytes, INDEX_HDR_LEN);
		expect_reject(big, INDEX_PIECE_MAX + 1, FERRY_EFORMAT, "1048577 bytes");
		free(big);
	}
#undef RESET
	free(buf);
	index_pieces_free(pieces, np);
	free(refs);
}

/* Random bytes behind a valid header never crash the decoder. */
static void test_random_entries(void **state)
{
	unsigned seed = 777;
	int round, ok = 0;

	for (round = 0; round < 2000; round++) {
		size_t cnt = 1 + (size_t)(rand_r(&seed) % 4), len = INDEX_HDR_LEN + cnt * 41, i;
		uint8_t *buf = xmalloc(len);
		struct chunk_ref *refs;
		size_t n;

		memcpy(buf, "FIDX\x01\x00\x00\x00", 8);
		buf[8] = (uint8_t)cnt;
		buf[9] = buf[10] = buf[11] = 0;
		for (i = INDEX_HDR_LEN; i < len; i++)
			buf[i] = (uint8_t)rand_r(&seed);
		if (index_decode(buf, len, &refs, &n) == 0) {
			ok++;
			free(refs);
		}
		free(buf);
	}
	/* random raw lengths are almost never in 1..1 MiB */
	assert_true(ok < 10);
}

static void test_encode_rejects_bad_refs(void **state)
{
	struct chunk_ref *refs = make_refs(5);
	struct index_piece *pieces = (struct index_piece *)1;
	size_t np = 9;

	refs[3].raw_len = CHUNK_MAX_SIZE + 1;
	assert_int_equal(index_encode(refs, 5, &pieces, &np), FERRY_EINVAL);
	assert_null(pieces);
	assert_int_equal(np, 0);
	assert_non_null(strstr(ferry_errmsg(FERRY_EINVAL), "index entry 3"));
	free(refs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_round_trip),
	    cmocka_unit_test(test_pinned_layout),
	    cmocka_unit_test(test_garbage_rejected),
	    cmocka_unit_test(test_random_entries),
	    cmocka_unit_test(test_encode_rejects_bad_refs),
	};

	if (fcrypto_init() != 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
