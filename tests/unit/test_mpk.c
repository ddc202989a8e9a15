/*
 * Unit tests for mpk, the msgpack writer and reader. The writer is msgpack-c's
 * packer and the reader is ours, so round trips check one against the other;
 * hand-written bytes cover the encodings msgpack-c never produces.
 */
#include <malloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ferry/error.h"
#include "ferry/mpk.h"

static uint8_t *take(struct mpk_w *w, size_t *len)
{
	uint8_t *p;

	assert_int_equal(mpk_w_take(w, &p, len), 0);
	assert_non_null(p);
	return p;
}

static void test_uint_boundaries(void **state)
{
	static const struct {
		uint64_t v;
		size_t len;
	} cases[] = {
	    {0, 1},	     {127, 1},	     {128, 2},	      {255, 2},
	    {256, 3},	     {65535, 3},     {65536, 5},      {UINT32_MAX, 5},
	    {1ull << 32, 9}, {INT64_MAX, 9}, {UINT64_MAX, 9},
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct mpk_w w;
		struct mpk_r r;
		uint8_t *p;
		size_t len;
		uint64_t v = 1234;

		mpk_w_init(&w);
		mpk_w_uint(&w, cases[i].v);
		p = take(&w, &len);
		assert_int_equal(len, cases[i].len);
		mpk_r_init(&r, p, len);
		assert_int_equal(mpk_r_peek(&r), MPK_UINT);
		assert_int_equal(mpk_r_uint(&r, &v), 0);
		assert_true(v == cases[i].v);
		assert_int_equal(mpk_r_done(&r), 0);
		free(p);
	}
}

static void test_int_boundaries(void **state)
{
	static const struct {
		int64_t v;
		size_t len;
	} cases[] = {
	    {0, 1},	    {-1, 1},	 {-32, 1},    {-33, 2},	      {-128, 2},
	    {-129, 3},	    {-32768, 3}, {-32769, 5}, {INT32_MIN, 5}, {(int64_t)INT32_MIN - 1, 9},
	    {INT64_MIN, 9}, {127, 1},	 {128, 2},    {INT64_MAX, 9},
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct mpk_w w;
		struct mpk_r r;
		uint8_t *p;
		size_t len;
		int64_t v = 1234;

		mpk_w_init(&w);
		mpk_w_int(&w, cases[i].v);
		p = take(&w, &len);
		assert_int_equal(len, cases[i].len);
		mpk_r_init(&r, p, len);
		assert_int_equal(mpk_r_peek(&r), cases[i].v < 0 ? MPK_INT : MPK_UINT);
		assert_int_equal(mpk_r_int(&r, &v), 0);
		assert_true(v == cases[i].v);
		assert_int_equal(mpk_r_done(&r), 0);
		free(p);
	}
}

/* Integers are read by value: int8..64 holding a positive value are uints too. */
static void test_int_by_value(void **state)
{
	static const uint8_t pos[][9] = {
	    {0xd0, 0x05},
	    {0xd1, 0x00, 0x05},
	    {0xd2, 0x00, 0x00, 0x00, 0x05},
	    {0xd3, 0, 0, 0, 0, 0, 0, 0, 0x05},
	    {0xcc, 0x05},
	    {0xcf, 0, 0, 0, 0, 0, 0, 0, 0x05},
	};
	static const size_t poslen[] = {2, 3, 5, 9, 2, 9};
	static const uint8_t neg8[] = {0xd0, 0xfe};
	static const uint8_t big[] = {0xcf, 0x80, 0, 0, 0, 0, 0, 0, 0};
	struct mpk_r r;
	uint64_t u;
	int64_t v;
	size_t i;

	for (i = 0; i < sizeof(poslen) / sizeof(poslen[0]); i++) {
		mpk_r_init(&r, pos[i], poslen[i]);
		assert_int_equal(mpk_r_uint(&r, &u), 0);
		assert_int_equal(u, 5);
		assert_int_equal(mpk_r_done(&r), 0);
		mpk_r_init(&r, pos[i], poslen[i]);
		assert_int_equal(mpk_r_int(&r, &v), 0);
		assert_int_equal(v, 5);
	}
	mpk_r_init(&r, neg8, sizeof(neg8));
	assert_int_equal(mpk_r_uint(&r, &u), FERRY_EFORMAT);
	assert_non_null(strstr(ferry_errmsg(FERRY_EFORMAT), "negative"));
	mpk_r_init(&r, neg8, sizeof(neg8));
	assert_int_equal(mpk_r_int(&r, &v), 0);
	assert_int_equal(v, -2);
	mpk_r_init(&r, big, sizeof(big));
	assert_int_equal(mpk_r_int(&r, &v), FERRY_EFORMAT);
	assert_non_null(strstr(ferry_errmsg(FERRY_EFORMAT), "9223372036854775808"));
}

static void test_str_bin_boundaries(void **state)
{
	static const struct {
		size_t n, strhdr, binhdr;
	} cases[] = {
	    {0, 1, 2},	 {1, 1, 2},	{31, 1, 2},    {32, 2, 2},    {255, 2, 2},
	    {256, 3, 3}, {65535, 3, 3}, {65536, 5, 5}, {70000, 5, 5},
	};
	uint8_t *data = malloc(70000);
	size_t i, j;

	assert_non_null(data);
	for (j = 0; j < 70000; j++)
		data[j] = (uint8_t)(j * 7 + 1);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t n = cases[i].n, len, got;
		const uint8_t *b;
		const char *s;
		struct mpk_w w;
		struct mpk_r r;
		uint8_t *p;

		mpk_w_init(&w);
		mpk_w_str(&w, data, n);
		mpk_w_bin(&w, data, n);
		p = take(&w, &len);
		assert_int_equal(len, cases[i].strhdr + cases[i].binhdr + 2 * n);
		mpk_r_init(&r, p, len);
		assert_int_equal(mpk_r_peek(&r), MPK_STR);
		assert_int_equal(mpk_r_str(&r, &s, &got), 0);
		assert_int_equal(got, n);
		assert_memory_equal(s, data, n);
		assert_ptr_equal(s, (const char *)p + cases[i].strhdr);
		assert_int_equal(mpk_r_peek(&r), MPK_BIN);
		assert_int_equal(mpk_r_bin(&r, &b, &got), 0);
		assert_int_equal(got, n);
		assert_memory_equal(b, data, n);
		assert_int_equal(mpk_r_done(&r), 0);
		free(p);
	}
	free(data);
}

static void test_container_boundaries(void **state)
{
	static const struct {
		uint32_t n;
		size_t hdr;
	} cases[] = {{0, 1}, {15, 1}, {16, 3}, {65535, 3}, {65536, 5}, {70001, 5}};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint32_t n = cases[i].n, got, j;
		struct mpk_w w;
		struct mpk_r r;
		uint8_t *p;
		size_t len;
		uint64_t u;

		mpk_w_init(&w);
		mpk_w_array(&w, n);
		for (j = 0; j < n; j++)
			mpk_w_uint(&w, j & 0x7f);
		mpk_w_map(&w, n);
		for (j = 0; j < n; j++) {
			mpk_w_uint(&w, j & 0x7f);
			mpk_w_nil(&w);
		}
		p = take(&w, &len);
		assert_int_equal(len, 2 * cases[i].hdr + 3 * (size_t)n);
		mpk_r_init(&r, p, len);
		assert_int_equal(mpk_r_peek(&r), MPK_ARRAY);
		assert_int_equal(mpk_r_array(&r, &got), 0);
		assert_int_equal(got, n);
		for (j = 0; j < n; j++) {
			assert_int_equal(mpk_r_uint(&r, &u), 0);
			assert_int_equal(u, j & 0x7f);
		}
		assert_int_equal(mpk_r_peek(&r), MPK_MAP);
		assert_int_equal(mpk_r_map(&r, &got), 0);
		assert_int_equal(got, n);
		for (j = 0; j < n; j++) {
			assert_int_equal(mpk_r_uint(&r, &u), 0);
			assert_int_equal(mpk_r_nil(&r), 0);
		}
		assert_int_equal(mpk_r_done(&r), 0);
		/* skip walks the same bytes */
		mpk_r_init(&r, p, len);
		assert_int_equal(mpk_r_skip(&r), 0);
		assert_int_equal(mpk_r_skip(&r), 0);
		assert_int_equal(mpk_r_done(&r), 0);
		free(p);
	}
}

static void test_scalars(void **state)
{
	static const uint8_t f32[] = {0xca, 0x3f, 0xc0, 0x00, 0x00}; /* 1.5f */
	struct mpk_w w;
	struct mpk_r r;
	uint8_t *p;
	size_t len;
	bool b;
	double d;

	mpk_w_init(&w);
	mpk_w_bool(&w, true);
	mpk_w_bool(&w, false);
	mpk_w_nil(&w);
	mpk_w_double(&w, -2.25);
	mpk_w_cstr(&w, "hi");
	p = take(&w, &len);
	assert_int_equal(len, 1 + 1 + 1 + 9 + 3);
	mpk_r_init(&r, p, len);
	assert_int_equal(mpk_r_peek(&r), MPK_BOOL);
	assert_int_equal(mpk_r_bool(&r, &b), 0);
	assert_true(b);
	assert_int_equal(mpk_r_bool(&r, &b), 0);
	assert_false(b);
	assert_int_equal(mpk_r_peek(&r), MPK_NIL);
	assert_int_equal(mpk_r_nil(&r), 0);
	assert_int_equal(mpk_r_peek(&r), MPK_FLOAT);
	assert_int_equal(mpk_r_double(&r, &d), 0);
	assert_true(d == -2.25);
	assert_int_equal(mpk_r_skip(&r), 0);
	assert_int_equal(mpk_r_peek(&r), MPK_NONE);
	assert_int_equal(mpk_r_done(&r), 0);
	free(p);

	mpk_r_init(&r, f32, sizeof(f32));
	assert_int_equal(mpk_r_double(&r, &d), 0);
	assert_true(d == 1.5);
	assert_int_equal(mpk_r_done(&r), 0);

	/* An empty writer still hands over a buffer. */
	mpk_w_init(&w);
	p = take(&w, &len);
	assert_int_equal(len, 0);
	free(p);
}

static void test_bin_fixed(void **state)
{
	uint8_t id[32], out[32];
	struct mpk_w w;
	struct mpk_r r;
	uint8_t *p;
	size_t len;

	memset(id, 0xab, sizeof(id));
	mpk_w_init(&w);
	mpk_w_bin(&w, id, 32);
	mpk_w_bin(&w, id, 31);
	p = take(&w, &len);
	mpk_r_init(&r, p, len);
	assert_int_equal(mpk_r_bin_fixed(&r, out, 32), 0);
	assert_memory_equal(out, id, 32);
	assert_int_equal(mpk_r_bin_fixed(&r, out, 32), FERRY_EFORMAT);
	assert_non_null(strstr(ferry_errmsg(FERRY_EFORMAT), "bin of 31 bytes where 32"));
	free(p);
}

static const uint8_t ext_values[] = {
    0xd4, 0x01, 0xaa,								   /* fixext 1 */
    0xd5, 0x01, 0xaa, 0xbb,							   /* fixext 2 */
    0xd6, 0xff, 1,    2,    3,	  4,						   /* fixext 4 */
    0xd7, 0xff, 1,    2,    3,	  4,	5, 6, 7, 8,				   /* fixext 8 */
    0xd8, 0x05, 1,    2,    3,	  4,	5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, /* 16 */
    0xc7, 0x02, 0x07, 'a',  'b',						   /* ext 8 */
    0xc8, 0x00, 0x01, 0x07, 'a',						   /* ext 16 */
    0xc9, 0x00, 0x00, 0x00, 0x00, 0x07, /* ext 32, empty */
};

static void test_ext_skipped(void **state)
{
	struct mpk_r r;
	int i;

	mpk_r_init(&r, ext_values, sizeof(ext_values));
	for (i = 0; i < 8; i++) {
		assert_int_equal(mpk_r_peek(&r), MPK_EXT);
		assert_int_equal(mpk_r_skip(&r), 0);
	}
	assert_int_equal(mpk_r_done(&r), 0);
	mpk_r_init(&r, ext_values, sizeof(ext_values));
	assert_int_equal(mpk_r_nil(&r), FERRY_EFORMAT);
	assert_non_null(strstr(ferry_errmsg(FERRY_EFORMAT), "expected nil, found ext at byte 0"));
}

/*
 * One message with a value of every type (ext and float32 appended by hand),
 * and a reader of its exact shape; used for the truncation test.
 */
static uint8_t *every_type(size_t *len)
{
	static const uint8_t tail[] = {0xca, 0x3f, 0xc0, 0x00, 0x00, 0xc7, 0x02, 0x07, 'a', 'b'};
	uint8_t big[300];
	struct mpk_w w;
	uint8_t *p;

	memset(big, 'x', sizeof(big));
	mpk_w_init(&w);
	mpk_w_array(&w, 17);
	mpk_w_uint(&w, 5);
	mpk_w_uint(&w, 200);
	mpk_w_uint(&w, 60000);
	mpk_w_uint(&w, 4000000000u);
	mpk_w_uint(&w, 1ull << 40);
	mpk_w_int(&w, -5);
	mpk_w_int(&w, -100);
	mpk_w_int(&w, -30000);
	mpk_w_int(&w, -2000000000);
	mpk_w_int(&w, -(1ll << 40));
	mpk_w_str(&w, big, 40);
	mpk_w_str(&w, big, 300);
	mpk_w_bin(&w, big, 300);
	mpk_w_map(&w, 1);
	mpk_w_cstr(&w, "k");
	mpk_w_array(&w, 2);
	mpk_w_bool(&w, true);
	mpk_w_nil(&w);
	mpk_w_double(&w, 0.5);
	p = take(&w, len);
	/* float32 then an ext 8 as the last two elements */
	p = realloc(p, *len + sizeof(tail));
	assert_non_null(p);
	memcpy(p + *len, tail, sizeof(tail));
	*len += sizeof(tail);
	return p;
}

static int read_every_type(struct mpk_r *r)
{
	const char *s;
	const uint8_t *b;
	uint32_t n;
	uint64_t u;
	int64_t i;
	size_t len;
	bool t;
	double d;
	int k;

	mpk_r_array(r, &n);
	for (k = 0; k < 5; k++)
		mpk_r_uint(r, &u);
	for (k = 0; k < 5; k++)
		mpk_r_int(r, &i);
	mpk_r_str(r, &s, &len);
	mpk_r_str(r, &s, &len);
	mpk_r_bin(r, &b, &len);
	mpk_r_map(r, &n);
	mpk_r_str(r, &s, &len);
	mpk_r_array(r, &n);
	mpk_r_bool(r, &t);
	mpk_r_nil(r);
	mpk_r_double(r, &d);
	mpk_r_double(r, &d);
	mpk_r_skip(r);
	return mpk_r_done(r);
}

static void test_truncation_every_byte(void **state)
{
	size_t len, k;
	uint8_t *p = every_type(&len);
	struct mpk_r r;

	mpk_r_init(&r, p, len);
	assert_int_equal(read_every_type(&r), 0);
	mpk_r_init(&r, p, len);
	assert_int_equal(mpk_r_skip(&r), 0);
	assert_int_equal(mpk_r_done(&r), 0);
	for (k = 0; k < len; k++) {
		/* A copy of exactly k bytes, so ASan sees any read past the end. */
		uint8_t *q = malloc(k ? k : 1);

		assert_non_null(q);
		memcpy(q, p, k);
		mpk_r_init(&r, q, k);
		assert_int_equal(read_every_type(&r), FERRY_EFORMAT);
		assert_true(mpk_r_offset(&r) <= k);
		mpk_r_init(&r, q, k);
		assert_int_equal(mpk_r_skip(&r), FERRY_EFORMAT);
		free(q);
	}
	free(p);
}

/* Lengths and counts of 2^32-1 on a few bytes fail at once, allocating nothing. */
static void test_huge_declared_lengths(void **state)
{
	static const uint8_t msgs[][7] = {
	    {0xdb, 0xff, 0xff, 0xff, 0xff, 'a', 'b'},	/* str 32 */
	    {0xc6, 0xff, 0xff, 0xff, 0xff, 'a', 'b'},	/* bin 32 */
	    {0xdd, 0xff, 0xff, 0xff, 0xff, 0x01, 0x02}, /* array 32 */
	    {0xdf, 0xff, 0xff, 0xff, 0xff, 0x01, 0x02}, /* map 32 */
	    {0xc9, 0xff, 0xff, 0xff, 0xff, 0x01, 0x02}, /* ext 32 */
	    {0xda, 0xff, 0xff, 'a', 'b', 'c', 'd'},	/* str 16 */
	    {0xdc, 0x00, 0x07, 0x01, 0x02, 0x03, 0x04}, /* array 16 of 7, 4 bytes */
	    {0xde, 0x00, 0x03, 0x01, 0x02, 0x03, 0x04}, /* map 16 of 3 pairs, 4 bytes */
	};
	size_t i;

	for (i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++) {
		struct mallinfo2 before, after;
		const uint8_t *b;
		const char *s;
		struct mpk_r r;
		size_t len;
		uint32_t n;
		int e1, e2;

		before = mallinfo2();
		mpk_r_init(&r, msgs[i], sizeof(msgs[i]));
		switch (msgs[i][0]) {
		case 0xdb:
		case 0xda:
			e1 = mpk_r_str(&r, &s, &len);
			break;
		case 0xc6:
			e1 = mpk_r_bin(&r, &b, &len);
			break;
		case 0xdd:
		case 0xdc:
			e1 = mpk_r_array(&r, &n);
			break;
		case 0xdf:
		case 0xde:
			e1 = mpk_r_map(&r, &n);
			break;
		default:
			e1 = mpk_r_skip(&r);
		}
		mpk_r_init(&r, msgs[i], sizeof(msgs[i]));
		e2 = mpk_r_skip(&r);
		after = mallinfo2();
		assert_int_equal(e1, FERRY_EFORMAT);
		assert_int_equal(e2, FERRY_EFORMAT);
		assert_non_null(strstr(ferry_errmsg(FERRY_EFORMAT), "declares"));
		assert_int_equal(before.uordblks, after.uordblks);
	}
}

static void test_deep_nesting(void **state)
{
	uint8_t buf[1000];
	struct mpk_r r;
	uint32_t n;
	int i;

	/* MPK_DEPTH_MAX nested arrays, the innermost holding nil: accepted */
	memset(buf, 0x91, MPK_DEPTH_MAX);
	buf[MPK_DEPTH_MAX] = 0xc0;
	mpk_r_init(&r, buf, MPK_DEPTH_MAX + 1);
	assert_int_equal(mpk_r_skip(&r), 0);
	assert_int_equal(mpk_r_done(&r), 0);

	/* One more (even an empty one) is rejected */
	memset(buf, 0x91, MPK_DEPTH_MAX);
	buf[MPK_DEPTH_MAX] = 0x90;
	mpk_r_init(&r, buf, MPK_DEPTH_MAX + 1);
	assert_int_equal(mpk_r_skip(&r), FERRY_EFORMAT);
	assert_non_null(strstr(ferry_errmsg(FERRY_EFORMAT), "nested more than 32 deep"));

	/* Maps count too: {0: {0: ... }} */
	for (i = 0; i < 2 * (MPK_DEPTH_MAX + 1); i += 2) {
		buf[i] = 0x81;
		buf[i + 1] = 0x00;
	}
	buf[i] = 0xc0;
	mpk_r_init(&r, buf, (size_t)i + 1);
	assert_int_equal(mpk_r_skip(&r), FERRY_EFORMAT);

	/* A thousand levels are rejected without recursion */
	memset(buf, 0x91, sizeof(buf));
	mpk_r_init(&r, buf, sizeof(buf));
	assert_int_equal(mpk_r_skip(&r), FERRY_EFORMAT);

	/* Typed reads do not limit depth: the caller's structure does */
	mpk_r_init(&r, buf, sizeof(buf));
	for (i = 0; i < 999; i++)
		assert_int_equal(mpk_r_array(&r, &n), 0);
}

static void test_wrong_type_and_sticky(void **state)
{
	static const uint8_t str1[] = {0xa1, 'x', 0x05};
	struct mpk_r r;
	const uint8_t *b;
	const char *s;
	uint64_t u;
	int64_t i;
	uint32_t n;
	size_t len;
	bool t;
	double d;

	mpk_r_init(&r, str1, sizeof(str1));
	assert_int_equal(mpk_r_uint(&r, &u), FERRY_EFORMAT);
	assert_non_null(strstr(ferry_errmsg(FERRY_EFORMAT), "expected an integer, found str"));
	/* sticky: the next value is a valid uint, yet the read fails */
	assert_int_equal(mpk_r_offset(&r), 0);
	assert_int_equal(mpk_r_str(&r, &s, &len), FERRY_EFORMAT);
	assert_int_equal(mpk_r_skip(&r), FERRY_EFORMAT);
	assert_int_equal(mpk_r_peek(&r), MPK_NONE);
	assert_int_equal(mpk_r_done(&r), FERRY_EFORMAT);
	assert_int_equal(mpk_r_error(&r), FERRY_EFORMAT);

	mpk_r_init(&r, str1, sizeof(str1));
	assert_int_equal(mpk_r_int(&r, &i), FERRY_EFORMAT);
	mpk_r_init(&r, str1, sizeof(str1));
	assert_int_equal(mpk_r_bin(&r, &b, &len), FERRY_EFORMAT);
	assert_non_null(strstr(ferry_errmsg(FERRY_EFORMAT), "expected bin, found str at byte 0"));
	mpk_r_init(&r, str1, sizeof(str1));
	assert_int_equal(mpk_r_array(&r, &n), FERRY_EFORMAT);
	mpk_r_init(&r, str1, sizeof(str1));
	assert_int_equal(mpk_r_map(&r, &n), FERRY_EFORMAT);
	mpk_r_init(&r, str1, sizeof(str1));
	assert_int_equal(mpk_r_bool(&r, &t), FERRY_EFORMAT);
	mpk_r_init(&r, str1, sizeof(str1));
	assert_int_equal(mpk_r_nil(&r), FERRY_EFORMAT);
	mpk_r_init(&r, str1, sizeof(str1));
	assert_int_equal(mpk_r_double(&r, &d), FERRY_EFORMAT);
	mpk_r_init(&r, str1 + 2, 1);
	assert_int_equal(mpk_r_str(&r, &s, &len), FERRY_EFORMAT);
	assert_non_null(strstr(ferry_errmsg(FERRY_EFORMAT), "expected str, found uint"));

	/* trailing bytes */
	mpk_r_init(&r, str1, sizeof(str1));
	assert_int_equal(mpk_r_str(&r, &s, &len), 0);
	assert_int_equal(mpk_r_done(&r), FERRY_EFORMAT);
	assert_non_null(strstr(ferry_errmsg(FERRY_EFORMAT), "1 bytes left over"));

	/* the byte that starts no value, and an empty input */
	mpk_r_init(&r, "\xc1", 1);
	assert_int_equal(mpk_r_peek(&r), MPK_NONE);
	assert_int_equal(mpk_r_skip(&r), FERRY_EFORMAT);
	assert_non_null(strstr(ferry_errmsg(FERRY_EFORMAT), "0xc1"));
	mpk_r_init(&r, "", 0);
	assert_int_equal(mpk_r_nil(&r), FERRY_EFORMAT);
	assert_int_equal(mpk_r_done(&r), FERRY_EFORMAT);
}

/* Values too large for msgpack fail at mpk_w_take(), without reading the source. */
static void test_writer_too_big(void **state)
{
	static const uint8_t tiny[1];
	struct mpk_w w;
	uint8_t *p;
	size_t len;

	mpk_w_init(&w);
	mpk_w_uint(&w, 1);
	mpk_w_bin(&w, tiny, (size_t)UINT32_MAX + 1);
	mpk_w_uint(&w, 2);
	assert_int_equal(mpk_w_take(&w, &p, &len), FERRY_ETOOBIG);
	assert_null(p);
	assert_non_null(strstr(ferry_errmsg(FERRY_ETOOBIG), "4294967296"));
	/* the writer is usable again */
	mpk_w_nil(&w);
	p = take(&w, &len);
	assert_int_equal(len, 1);
	assert_int_equal(p[0], 0xc0);
	free(p);

	mpk_w_init(&w);
	mpk_w_array(&w, (size_t)UINT32_MAX + 1);
	assert_int_equal(mpk_w_take(&w, &p, &len), FERRY_ETOOBIG);
	mpk_w_init(&w);
	mpk_w_nil(&w);
	mpk_w_free(&w);
	assert_null(w.buf);
}

/* Random bytes never crash the reader or make it read past the end. */
static void test_empty_from_null(void **state)
{
	const uint8_t *p;
	const char *str;
	uint8_t *buf;
	size_t len, n;
	struct mpk_w w;
	struct mpk_r r;

	/* Empty values given as (NULL, 0), as callers with nothing to send do. */
	mpk_w_init(&w);
	mpk_w_array(&w, 2);
	mpk_w_bin(&w, NULL, 0);
	mpk_w_str(&w, NULL, 0);
	assert_int_equal(mpk_w_take(&w, &buf, &len), 0);
	assert_int_equal(len, 4);
	mpk_r_init(&r, buf, len);
	assert_int_equal(mpk_r_array(&r, &(uint32_t){0}), 0);
	assert_int_equal(mpk_r_bin(&r, &p, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(mpk_r_str(&r, &str, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(mpk_r_done(&r), 0);
	free(buf);
}

static void test_random_input(void **state)
{
	uint8_t buf[64];
	unsigned seed = 12345;
	int round;
	size_t i;

	for (round = 0; round < 20000; round++) {
		size_t n = (size_t)(rand_r(&seed) % sizeof(buf));
		uint8_t *q;
		struct mpk_r r;

		for (i = 0; i < n; i++)
			buf[i] = (uint8_t)rand_r(&seed);
		q = malloc(n ? n : 1);
		assert_non_null(q);
		memcpy(q, buf, n);
		mpk_r_init(&r, q, n);
		while (mpk_r_skip(&r) == 0 && mpk_r_left(&r) > 0)
			;
		assert_true(mpk_r_offset(&r) <= n);
		free(q);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_uint_boundaries),
	    cmocka_unit_test(test_int_boundaries),
	    cmocka_unit_test(test_int_by_value),
	    cmocka_unit_test(test_str_bin_boundaries),
	    cmocka_unit_test(test_container_boundaries),
	    cmocka_unit_test(test_scalars),
	    cmocka_unit_test(test_bin_fixed),
	    cmocka_unit_test(test_ext_skipped),
	    cmocka_unit_test(test_truncation_every_byte),
	    cmocka_unit_test(test_huge_declared_lengths),
	    cmocka_unit_test(test_deep_nesting),
	    cmocka_unit_test(test_wrong_type_and_sticky),
	    cmocka_unit_test(test_writer_too_big),
	    cmocka_unit_test(test_empty_from_null),
	    cmocka_unit_test(test_random_input),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
