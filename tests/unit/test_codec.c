/*
 * Unit tests for the chunk codec: every codec round-trips every kind of data
 * and length, the ratios the publisher relies on hold, the automatic choice
 * is the smallest, hostile input is rejected without a crash, and the byte
 * format matches the hand-made vectors of docs/formats.md ("Chunk encoding").
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ferry/chunker.h"
#include "ferry/codec.h"
#include "ferry/error.h"
#include "ferry/util.h"

/* K_SKEW: byte v with probability 2^-(v+1), so that Huffman codes must be cut to 11 bits. */
enum kind { K_BF16, K_FP32, K_RANDOM, K_ZEROS, K_TEXT, K_SKEW, K__COUNT };
static const char *const kind_names[K__COUNT] = {"bf16", "fp32", "random", "zeros", "text", "skew"};

static uint64_t rng_state;

static uint64_t rnd(void)
{
	/* xorshift64* */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

static double gauss(void)
{
	double u = ((rnd() >> 11) + 0.5) / 9007199254740992.0;
	double v = ((rnd() >> 11) + 0.5) / 9007199254740992.0;

	return sqrt(-2 * log(u)) * cos(2 * M_PI * v);
}

/* Words for text that looks like a tokenizer's JSON. */
static const char *const syll[] = {"an", "the", "ing", "ed", "tion", "re", "er", "pro",
				   "st", "al",	"con", "ly", "is",   "at", "en", "ment"};

/* Fill buf with n bytes of the given kind, deterministically from seed. */
static void fill(uint8_t *buf, size_t n, enum kind k, uint64_t seed)
{
	size_t i = 0;
	double sd = 0.02;

	rng_state = seed * 0x9e3779b97f4a7c15ull + 1;
	switch (k) {
	case K_BF16:
		for (; i + 2 <= n; i += 2) {
			float f = (float)(gauss() * sd);
			uint32_t u;

			memcpy(&u, &f, 4);
			u += 0x7fffu + ((u >> 16) & 1u);
			buf[i] = (uint8_t)(u >> 16);
			buf[i + 1] = (uint8_t)(u >> 24);
		}
		break;
	case K_FP32:
		for (; i + 4 <= n; i += 4) {
			float f = (float)(gauss() * sd);

			memcpy(buf + i, &f, 4);
		}
		break;
	case K_RANDOM:
		for (; i < n; i++)
			buf[i] = (uint8_t)(rnd() >> 56);
		break;
	case K_ZEROS:
		memset(buf, 0, n);
		i = n;
		break;
	case K_TEXT:
		while (i < n) {
			char word[32], line[64];
			int len = 0, parts = 1 + (int)(rnd() % 3);

			for (int p = 0; p < parts; p++)
				len += snprintf(word + len, sizeof(word) - (size_t)len, "%s",
						syll[rnd() % ARRAY_SIZE(syll)]);
			len = snprintf(line, sizeof(line), "    \"%s\": %u,\n", word,
				       (unsigned)(rnd() % 50000));
			for (int c = 0; c < len && i < n; c++)
				buf[i++] = (uint8_t)line[c];
		}
		break;
	case K_SKEW:
		for (; i < n; i++) {
			uint64_t r = rnd() | 1ull << 40;

			buf[i] = (uint8_t)__builtin_ctzll(r);
		}
		break;
	default:
		break;
	}
	for (; i < n; i++) /* the odd tail of a float buffer */
		buf[i] = (uint8_t)rnd();
}

/* Encode (tag < 0: automatic choice), check the contract, decode, compare. Returns the size. */
static size_t roundtrip(struct codec_ctx *c, int tag, const uint8_t *raw, size_t n)
{
	uint8_t *enc = xmalloc(codec_bound(n)), *dec = xmalloc(n + 1);
	size_t elen = 0, dlen = 0, plen = 0;
	int ptag = -1;

	if (tag < 0)
		assert_int_equal(codec_encode(c, raw, n, enc, &elen), 0);
	else
		assert_int_equal(codec_encode_as(c, tag, raw, n, enc, &elen), 0);
	assert_true(elen >= CODEC_HDR_LEN);
	assert_true(elen <= n + CODEC_HDR_LEN);
	if (tag >= 0)
		assert_true(enc[0] == tag || enc[0] == CODEC_RAW);
	assert_int_equal(codec_peek(enc, elen, &ptag, &plen), 0);
	assert_int_equal(ptag, enc[0]);
	assert_int_equal(plen, n);
	assert_int_equal(codec_decode(c, enc, elen, dec, n, &dlen), 0);
	assert_int_equal(dlen, n);
	if (n > 0)
		assert_memory_equal(dec, raw, n);
	free(enc);
	free(dec);
	return elen;
}

static void test_roundtrip(void **state)
{
	static const size_t sizes[] = {0,
				       1,
				       2,
				       3,
				       5,
				       7,
				       31,
				       32,
				       33,
				       1000,
				       4097,
				       16384,
				       16387,
				       65539,
				       262144,
				       524289,
				       CHUNK_MAX_SIZE};
	struct codec_ctx *c = codec_ctx_new();
	uint8_t *raw = xmalloc(CHUNK_MAX_SIZE);

	for (int k = 0; k < K__COUNT; k++) {
		for (size_t si = 0; si < ARRAY_SIZE(sizes); si++) {
			size_t n = sizes[si];

			fill(raw, n, (enum kind)k, si + 1);
			for (int tag = -1; tag < CODEC__COUNT; tag++)
				roundtrip(c, tag, raw, n);
		}
	}
	free(raw);
	codec_ctx_free(c);
	codec_ctx_free(NULL);
}

/* Sum of encoded sizes of n bytes of kind k cut into chunks of the given size. */
static size_t encoded_total(struct codec_ctx *c, enum kind k, size_t n, size_t chunk, int tag)
{
	uint8_t *raw = xmalloc(n);
	size_t total = 0;

	fill(raw, n, k, 42);
	for (size_t off = 0; off < n; off += chunk)
		total += roundtrip(c, tag, raw + off, MIN(chunk, n - off));
	free(raw);
	return total;
}

static void test_ratio_targets(void **state)
{
	struct codec_ctx *c = codec_ctx_new();
	size_t n = 4u << 20, total;

	/* ZipNN reaches 66% on bf16; plain zstd about 78%. */
	total = encoded_total(c, K_BF16, n, CHUNK_AVG_SIZE, -1);
	print_message("bf16: %.2f%%\n", 100.0 * (double)total / (double)n);
	assert_true(total <= n * 69 / 100);
	total = encoded_total(c, K_FP32, n, CHUNK_AVG_SIZE, -1);
	print_message("fp32: %.2f%%\n", 100.0 * (double)total / (double)n);
	assert_true(total <= n * 88 / 100);
	/* Odd-sized chunks that start mid-element still do well. */
	total = encoded_total(c, K_BF16, n, CHUNK_AVG_SIZE + 1, -1);
	assert_true(total <= n * 69 / 100);
	for (size_t chunk = 1000; chunk <= CHUNK_MAX_SIZE; chunk *= 4) {
		size_t nch = (n + chunk - 1) / chunk;

		total = encoded_total(c, K_RANDOM, n, chunk, -1);
		assert_true(total <= n + nch * CODEC_HDR_LEN);
		for (int tag = 0; tag < CODEC__COUNT; tag++)
			assert_true(encoded_total(c, K_RANDOM, chunk, chunk, tag) <=
				    chunk + CODEC_HDR_LEN);
	}
	codec_ctx_free(c);
}

/* The automatic choice is the one a user would pick, and within 1% of raw of the smallest. */
static void test_auto_is_smallest(void **state)
{
	static const int expect[K__COUNT] = {CODEC_PLANE2, CODEC_PLANE4, CODEC_RAW,
					     -1,	   CODEC_ZSTD,	 -1};
	static const size_t sizes[] = {65536, CHUNK_AVG_SIZE, CHUNK_MAX_SIZE - 3};
	struct codec_ctx *c = codec_ctx_new();
	uint8_t *raw = xmalloc(CHUNK_MAX_SIZE), *enc = xmalloc(codec_bound(CHUNK_MAX_SIZE));

	for (int k = 0; k < K__COUNT; k++) {
		for (size_t si = 0; si < ARRAY_SIZE(sizes); si++) {
			size_t n = sizes[si], best = SIZE_MAX, a, len;

			fill(raw, n, (enum kind)k, 7 + si);
			for (int tag = 0; tag < CODEC__COUNT; tag++) {
				len = roundtrip(c, tag, raw, n);
				best = MIN(best, len);
			}
			a = roundtrip(c, -1, raw, n);
			assert_int_equal(codec_encode(c, raw, n, enc, &len), 0);
			print_message("%-6s %7zu: auto %s %.2f%%, best %.2f%%\n", kind_names[k], n,
				      codec_name(enc[0]), 100.0 * (double)a / (double)n,
				      100.0 * (double)best / (double)n);
			assert_true(a <= best + n / 100);
			if (expect[k] >= 0)
				assert_int_equal(enc[0], expect[k]);
		}
	}
	free(raw);
	free(enc);
	codec_ctx_free(c);
}

static void test_api_edges(void **state)
{
	struct codec_ctx *c = codec_ctx_new();
	uint8_t raw[16] = {0}, out[32];
	size_t len;

	assert_string_equal(codec_name(CODEC_RAW), "raw");
	assert_string_equal(codec_name(CODEC_ZSTD), "zstd");
	assert_string_equal(codec_name(CODEC_PLANE2), "plane2");
	assert_string_equal(codec_name(CODEC_PLANE4), "plane4");
	assert_string_equal(codec_name(-1), "?");
	assert_string_equal(codec_name(CODEC__COUNT), "?");
	assert_int_equal(codec_bound(100), 100 + CODEC_HDR_LEN);
	assert_int_equal(codec_encode(c, raw, CHUNK_MAX_SIZE + 1, out, &len), FERRY_EINVAL);
	assert_int_equal(codec_encode_as(c, CODEC_ZSTD, raw, CHUNK_MAX_SIZE + 1, out, &len),
			 FERRY_EINVAL);
	assert_int_equal(codec_encode_as(c, CODEC__COUNT, raw, sizeof(raw), out, &len),
			 FERRY_EINVAL);
	assert_non_null(strstr(ferry_errmsg(FERRY_EINVAL), "unknown codec tag"));
	codec_ctx_free(c);
}

/* Decode and expect rc; also check the detail mentions what. */
static void expect_decode(struct codec_ctx *c, const uint8_t *enc, size_t n, size_t cap, int rc,
			  const char *what)
{
	uint8_t *dec = xmalloc(cap + 1);
	size_t dlen = 0;

	ferry_errclear();
	assert_int_equal(codec_decode(c, enc, n, dec, cap, &dlen), rc);
	if (what != NULL && strstr(ferry_errmsg(rc), what) == NULL)
		fail_msg("detail '%s' does not mention '%s'", ferry_errmsg(rc), what);
	free(dec);
}

/* Valid encodings of a small chunk with each codec, for the corruption tests. */
static size_t make_encoding(struct codec_ctx *c, int tag, uint8_t *enc, size_t n)
{
	uint8_t *raw = xmalloc(n);
	size_t len;

	fill(raw, n, tag == CODEC_ZSTD ? K_TEXT : tag == CODEC_PLANE4 ? K_FP32 : K_BF16, 3);
	assert_int_equal(codec_encode_as(c, tag, raw, n, enc, &len), 0);
	assert_int_equal(enc[0], tag);
	free(raw);
	return len;
}

static void test_corrupt_header(void **state)
{
	struct codec_ctx *c = codec_ctx_new();
	uint8_t enc[64] = {CODEC_RAW, 4, 0, 0, 0, 'a', 'b', 'c', 'd'};
	int tag;
	size_t len;

	expect_decode(c, enc, 9, 4, 0, NULL);
	expect_decode(c, enc, 4, 100, FERRY_EFORMAT, "shorter than its 5-byte header");
	expect_decode(c, enc, 0, 100, FERRY_EFORMAT, "header");
	expect_decode(c, enc, 8, 4, FERRY_EFORMAT, "payload is 3 bytes");
	expect_decode(c, enc, 10, 4, FERRY_EFORMAT, "payload is 5 bytes");
	expect_decode(c, enc, 9, 3, FERRY_ETOOBIG, "more than the 3-byte buffer");
	enc[0] = CODEC__COUNT;
	expect_decode(c, enc, 9, 4, FERRY_EFORMAT, "unknown codec tag 4");
	assert_int_equal(codec_peek(enc, 9, &tag, &len), FERRY_EFORMAT);
	enc[0] = 0xff;
	expect_decode(c, enc, 9, 4, FERRY_EFORMAT, "unknown codec tag 255");
	/* Declared lengths past the chunk limit: rejected before any allocation or read. */
	enc[0] = CODEC_RAW;
	memcpy(enc + 1, "\xff\xff\xff\xff", 4);
	expect_decode(c, enc, 9, 4, FERRY_EFORMAT, "4294967295");
	assert_int_equal(codec_peek(enc, 9, &tag, &len), FERRY_EFORMAT);
	memcpy(enc + 1, "\x01\x00\x10\x00", 4); /* CHUNK_MAX_SIZE + 1 */
	expect_decode(c, enc, 9, 4, FERRY_EFORMAT, "1048577");
	for (int t = CODEC_ZSTD; t < CODEC__COUNT; t++) {
		enc[0] = (uint8_t)t;
		expect_decode(c, enc, 9, 4, FERRY_EFORMAT, "1048577");
		memcpy(enc + 1, "\x00\x00\x10\x00", 4); /* CHUNK_MAX_SIZE, cap 4 */
		expect_decode(c, enc, 9, 4, FERRY_ETOOBIG, NULL);
		memcpy(enc + 1, "\x01\x00\x10\x00", 4);
	}
	codec_ctx_free(c);
}

static void test_corrupt_truncated(void **state)
{
	struct codec_ctx *c = codec_ctx_new();
	uint8_t *enc = xmalloc(codec_bound(5000));

	for (int tag = CODEC_ZSTD; tag < CODEC__COUNT; tag++) {
		size_t len = make_encoding(c, tag, enc, 5000);

		for (size_t cut = 0; cut < len; cut++)
			expect_decode(c, enc, cut, 5000, FERRY_EFORMAT, NULL);
		/* One byte too many is as bad as one too few. */
		enc[len] = 0;
		expect_decode(c, enc, len + 1, 5000, FERRY_EFORMAT, NULL);
		expect_decode(c, enc, len, 5000, 0, NULL);
	}
	free(enc);
	codec_ctx_free(c);
}

/* Random byte flips: any outcome but a crash or an out-of-bounds access (valgrind, ASan). */
static void test_corrupt_flips(void **state)
{
	struct codec_ctx *c = codec_ctx_new();
	size_t n = 20000;
	uint8_t *enc = xmalloc(codec_bound(n)), *bad = xmalloc(codec_bound(n)), *dec = xmalloc(n);
	int seen_format = 0;

	for (int tag = CODEC_ZSTD; tag < CODEC__COUNT; tag++) {
		size_t len = make_encoding(c, tag, enc, n);

		rng_state = (uint64_t)tag * 77 + 5;
		for (int it = 0; it < 3000; it++) {
			size_t dlen = 0, flips = 1 + rnd() % 3;
			int rc;

			memcpy(bad, enc, len);
			for (size_t f = 0; f < flips; f++) {
				/* Favour the structure at the front over stream bytes. */
				size_t at = rnd() % 2 ? 5 + rnd() % 64 : rnd() % len;

				bad[MIN(at, len - 1)] ^= (uint8_t)(1 + rnd() % 255);
			}
			rc = codec_decode(c, bad, len, dec, n, &dlen);
			assert_true(rc == 0 || rc == FERRY_EFORMAT || rc == FERRY_ETOOBIG);
			if (rc == 0)
				assert_true(dlen <= n);
			seen_format += rc == FERRY_EFORMAT;
		}
	}
	assert_true(seen_format > 0);
	free(enc);
	free(bad);
	free(dec);
	codec_ctx_free(c);
}

/*
 * Hand-made vectors from docs/formats.md. A plane2 chunk of 10 bytes: plane 0
 * Huffman coded (values 00 01 00 02 00; lengths 1, 2, 2), plane 1 constant.
 */
static const uint8_t vec_plane2[] = {
    CODEC_PLANE2, 10, 0, 0, 0,
    /* plane 0: mode 2, bitmap {0, 1, 2}, lengths 1 2 2, streams of 1 1 1 0 bytes */
    2, 0x07, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0x21, 0x02, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0x02, 0x06, 0x00,
    /* plane 1: mode 1, value 0x3f */
    1, 0x3f};
static const uint8_t vec_plane2_raw[] = {0x00, 0x3f, 0x01, 0x3f, 0x00,
					 0x3f, 0x02, 0x3f, 0x00, 0x3f};
/* A plane4 chunk of 5 bytes: four stored planes of one byte, then the 1-byte tail. */
static const uint8_t vec_plane4[] = {CODEC_PLANE4, 5, 0,    0, 0,    0,	  0xaa, 0,
				     0xbb,	   1, 0xcc, 0, 0xdd, 0xee};
static const uint8_t vec_plane4_raw[] = {0xaa, 0xbb, 0xcc, 0xdd, 0xee};

static void test_format_vectors(void **state)
{
	struct codec_ctx *c = codec_ctx_new();
	uint8_t dec[16], bad[sizeof(vec_plane2)];
	size_t dlen;

	assert_int_equal(codec_decode(c, vec_plane2, sizeof(vec_plane2), dec, sizeof(dec), &dlen),
			 0);
	assert_int_equal(dlen, sizeof(vec_plane2_raw));
	assert_memory_equal(dec, vec_plane2_raw, dlen);
	assert_int_equal(codec_decode(c, vec_plane4, sizeof(vec_plane4), dec, sizeof(dec), &dlen),
			 0);
	assert_int_equal(dlen, sizeof(vec_plane4_raw));
	assert_memory_equal(dec, vec_plane4_raw, dlen);

	/* Variations on the plane2 vector, each breaking one rule. */
	memcpy(bad, vec_plane2, sizeof(bad));
	bad[5] = 3;
	expect_decode(c, bad, sizeof(bad), 16, FERRY_EFORMAT, "unknown mode 3");
	memcpy(bad, vec_plane2, sizeof(bad));
	bad[38] = 0x22; /* lengths 2 2 2: not a complete code */
	expect_decode(c, bad, sizeof(bad), 16, FERRY_EFORMAT, "Kraft");
	memcpy(bad, vec_plane2, sizeof(bad));
	bad[38] = 0x11; /* lengths 1 1 2: over-full */
	expect_decode(c, bad, sizeof(bad), 16, FERRY_EFORMAT, "Kraft");
	memcpy(bad, vec_plane2, sizeof(bad));
	bad[38] = 0xc1; /* a 12-bit code */
	expect_decode(c, bad, sizeof(bad), 16, FERRY_EFORMAT, "length 12");
	memcpy(bad, vec_plane2, sizeof(bad));
	bad[6] = 0x01; /* one symbol */
	expect_decode(c, bad, sizeof(bad), 16, FERRY_EFORMAT, "need at least 2");
	memcpy(bad, vec_plane2, sizeof(bad));
	bad[40] = 200; /* stream 0 runs past the body */
	expect_decode(c, bad, sizeof(bad), 16, FERRY_EFORMAT, "run past");
	memcpy(bad, vec_plane2, sizeof(bad));
	bad[44] = 0, bad[56] = 1; /* stream 1 empty, stream 3 holds a byte but no symbol */
	expect_decode(c, bad, sizeof(bad), 16, FERRY_EFORMAT, "huffman stream");
	codec_ctx_free(c);
}

static void test_corrupt_zstd(void **state)
{
	struct codec_ctx *c = codec_ctx_new();
	uint8_t *enc = xmalloc(codec_bound(5000) + 1);
	size_t len = make_encoding(c, CODEC_ZSTD, enc, 5000);

	/* The header's raw length must equal the frame's content size. */
	enc[1] ^= 1;
	expect_decode(c, enc, len, 6000, FERRY_EFORMAT, "frame holds 5000 bytes");
	enc[1] ^= 1;
	enc[len] = 0;
	expect_decode(c, enc, len + 1, 6000, FERRY_EFORMAT, "zstd");
	enc[5] ^= 0xff; /* magic */
	expect_decode(c, enc, len, 6000, FERRY_EFORMAT, "not a zstd frame");
	free(enc);
	codec_ctx_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_roundtrip),	     cmocka_unit_test(test_ratio_targets),
	    cmocka_unit_test(test_auto_is_smallest), cmocka_unit_test(test_api_edges),
	    cmocka_unit_test(test_corrupt_header),   cmocka_unit_test(test_corrupt_truncated),
	    cmocka_unit_test(test_corrupt_flips),    cmocka_unit_test(test_format_vectors),
	    cmocka_unit_test(test_corrupt_zstd),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
