/*
 * Fuzz the msgpack reader (mpk_r_*): any bytes, read as a sequence of values.
 *
 * Each value is read twice, from the same offset: once with mpk_r_skip() and
 * once by a walker that reads it with the typed reads mpk_r_peek() chooses,
 * containers element by element. Both must agree on whether the value is
 * well-formed and on where it ends. The walker writes what it read back out
 * with the mpk writer; reading that canonical form again must give the same
 * bytes, so a value survives a round trip. The typed reads are also tried on
 * values of the wrong type (they must fail) and on the integer of the other
 * signedness (they must agree on the value).
 */
#include "config.h"

#include <math.h>

#include "ferry/mpk.h"
#include "fuzz.h"

/* Walk one value at r's offset, writing it to w; 0 or the reader's error. */
static int walk(struct mpk_r *r, struct mpk_w *w, int depth)
{
	enum mpk_type t = mpk_r_peek(r);
	const struct mpk_r start = *r;
	uint32_t n = 0;

	/* A read of another type must fail, and must not move the reader. */
	if (t != MPK_NIL && t != MPK_NONE) {
		struct mpk_r wrong = start;

		FUZZ_CHECK(mpk_r_nil(&wrong) != 0);
		FUZZ_CHECK(mpk_r_offset(&wrong) == mpk_r_offset(&start));
	}
	switch (t) {
	case MPK_NIL:
		if (mpk_r_nil(r) == 0)
			mpk_w_nil(w);
		break;
	case MPK_BOOL: {
		bool v;

		if (mpk_r_bool(r, &v) == 0)
			mpk_w_bool(w, v);
		break;
	}
	case MPK_UINT:
	case MPK_INT: {
		uint64_t u;
		int64_t i;
		struct mpk_r as_int = *r, as_uint = *r;
		int rc_i = mpk_r_int(&as_int, &i), rc_u = mpk_r_uint(&as_uint, &u);

		/* Whatever the encoding, a value both can hold reads the same. */
		if (rc_i == 0 && rc_u == 0)
			FUZZ_CHECK(i >= 0 && (uint64_t)i == u);
		if (rc_i == 0 && i >= 0)
			FUZZ_CHECK(rc_u == 0);
		if (rc_u == 0 && u <= INT64_MAX)
			FUZZ_CHECK(rc_i == 0);
		if (rc_u == 0) {
			*r = as_uint;
			mpk_w_uint(w, u);
		} else {
			*r = as_int;
			if (rc_i == 0)
				mpk_w_int(w, i);
		}
		break;
	}
	case MPK_FLOAT: {
		double v;

		if (mpk_r_double(r, &v) == 0)
			mpk_w_double(w, v);
		break;
	}
	case MPK_STR: {
		const char *s;
		size_t len;

		if (mpk_r_str(r, &s, &len) == 0)
			mpk_w_str(w, s, len);
		break;
	}
	case MPK_BIN: {
		const uint8_t *p;
		size_t len;
		struct mpk_r fixed = start;

		if (mpk_r_bin(r, &p, &len) == 0) {
			uint8_t *copy = malloc(len + 1);

			/* A fixed-size read of the same length gives the same bytes; another fails.
			 */
			FUZZ_CHECK(copy != NULL);
			FUZZ_CHECK(mpk_r_bin_fixed(&fixed, copy, len) == 0);
			FUZZ_CHECK(memcmp(copy, p, len) == 0);
			FUZZ_CHECK(mpk_r_offset(&fixed) == mpk_r_offset(r));
			fixed = start;
			FUZZ_CHECK(mpk_r_bin_fixed(&fixed, copy, len + 1) != 0);
			free(copy);
			mpk_w_bin(w, p, len);
		}
		break;
	}
	case MPK_ARRAY:
	case MPK_MAP:
		/*
		 * mpk_r_skip() refuses a container this deep; so does the walk, by
		 * reading it as the wrong type (which records an error at its offset).
		 */
		if (depth == MPK_DEPTH_MAX)
			return mpk_r_nil(r);
		if ((t == MPK_ARRAY ? mpk_r_array(r, &n) : mpk_r_map(r, &n)) != 0)
			break;
		/* The reader promises a count the rest of the input can hold. */
		FUZZ_CHECK(n <= mpk_r_left(r) / (t == MPK_MAP ? 2 : 1));
		if (t == MPK_ARRAY)
			mpk_w_array(w, n);
		else
			mpk_w_map(w, n);
		for (uint64_t k = 0; k < (t == MPK_MAP ? 2 * (uint64_t)n : n); k++)
			if (walk(r, w, depth + 1) != 0)
				break;
		break;
	default:
		/* Ext values have no typed read; MPK_NONE is the end or a bad byte. */
		if (mpk_r_skip(r) == 0)
			mpk_w_nil(w);
		break;
	}
	return mpk_r_error(r);
}

/* Read the canonical form of a walked value again: it must come back byte for byte. */
static void check_round_trip(const uint8_t *canon, size_t len)
{
	struct mpk_r r;
	struct mpk_w w;
	uint8_t *again;
	size_t again_len;

	mpk_r_init(&r, canon, len);
	mpk_w_init(&w);
	FUZZ_CHECK(walk(&r, &w, 0) == 0);
	FUZZ_CHECK(mpk_r_done(&r) == 0);
	FUZZ_CHECK(mpk_w_take(&w, &again, &again_len) == 0);
	FUZZ_CHECK(again_len == len && memcmp(again, canon, len) == 0);
	free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mpk_r skip, typed;

	mpk_r_init(&skip, data, size);
	mpk_r_init(&typed, data, size);
	while (mpk_r_left(&skip) > 0) {
		struct mpk_w w;
		uint8_t *canon;
		size_t len;
		int rc_skip = mpk_r_skip(&skip), rc_walk;

		mpk_w_init(&w);
		rc_walk = walk(&typed, &w, 0);
		FUZZ_CHECK((rc_skip == 0) == (rc_walk == 0));
		if (rc_skip != 0) {
			mpk_w_free(&w);
			FUZZ_CHECK(mpk_r_done(&skip) != 0);
			FUZZ_CHECK(mpk_r_peek(&skip) == MPK_NONE);
			break;
		}
		FUZZ_CHECK(mpk_r_offset(&skip) == mpk_r_offset(&typed));
		FUZZ_CHECK(mpk_w_take(&w, &canon, &len) == 0);
		check_round_trip(canon, len);
		free(canon);
	}
	if (mpk_r_error(&skip) == 0)
		FUZZ_CHECK(mpk_r_done(&skip) == 0);
	return 0;
}
