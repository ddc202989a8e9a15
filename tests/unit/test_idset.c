/* Unit tests for idset: the set of chunk ids with a value each. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "ferry/idset.h"

/* A distinct, reproducible id for every k (splitmix64 over its four words). */
static void make_id(uint8_t id[32], uint64_t k)
{
	for (int w = 0; w < 4; w++) {
		uint64_t z = k * 4 + (uint64_t)w + 0x9e3779b97f4a7c15ull;

		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
		z ^= z >> 31;
		memcpy(id + 8 * w, &z, 8);
	}
}

/* An id whose hash (its first 8 bytes) is h, told apart by tag in its last byte. */
static void make_id_hash(uint8_t id[32], uint64_t h, uint8_t tag)
{
	memset(id, 0xa5, 32);
	memcpy(id, &h, sizeof(h));
	id[31] = tag;
}

static void test_add_and_get(void **state)
{
	struct idset *s = idset_new(0);
	uint8_t a[32], b[32], c[32];

	make_id(a, 1);
	make_id(b, 2);
	make_id(c, 3);
	assert_int_equal(idset_count(s), 0);
	assert_false(idset_has(s, a));
	assert_int_equal(idset_get(s, a), -1);

	assert_true(idset_add(s, a, 7));
	assert_true(idset_add(s, b, 0));
	assert_true(idset_has(s, a));
	assert_true(idset_has(s, b));
	assert_false(idset_has(s, c));
	assert_int_equal(idset_get(s, a), 7);
	assert_int_equal(idset_get(s, b), 0);
	assert_int_equal(idset_get(s, c), -1);
	assert_int_equal(idset_count(s), 2);

	/* A second add of the same id changes nothing, its value included. */
	assert_false(idset_add(s, a, 99));
	assert_int_equal(idset_get(s, a), 7);
	assert_int_equal(idset_count(s), 2);

	/* The largest value is kept apart from "absent". */
	assert_true(idset_add(s, c, UINT32_MAX));
	assert_int_equal(idset_get(s, c), (int64_t)UINT32_MAX);
	idset_free(s);
	idset_free(NULL);
}

static void test_put(void **state)
{
	struct idset *s = idset_new(4);
	uint8_t a[32], b[32];
	uint32_t *v;

	make_id(a, 10);
	make_id(b, 11);
	v = idset_put(s, a, 5);
	assert_int_equal(*v, 5);
	assert_int_equal(idset_count(s), 1);
	*v = 6;
	assert_int_equal(idset_get(s, a), 6);
	/* Put on a present id returns its value and ignores init. */
	v = idset_put(s, a, 100);
	assert_int_equal(*v, 6);
	assert_int_equal(idset_count(s), 1);
	v = idset_put(s, b, 0);
	(*v)++;
	assert_int_equal(idset_get(s, b), 1);
	assert_int_equal(idset_get(s, a), 6);
	idset_free(s);
}

/* Ids that hash alike, also across the end of the table, are all kept apart. */
static void test_collisions(void **state)
{
	struct idset *s = idset_new(0);
	uint8_t id[32];

	/* 63 is the last slot of the smallest table: probing wraps to slot 0. */
	for (uint8_t t = 0; t < 20; t++) {
		make_id_hash(id, 63, t);
		assert_true(idset_add(s, id, t));
	}
	for (uint8_t t = 0; t < 20; t++) {
		make_id_hash(id, 0, t);
		assert_true(idset_add(s, id, 100u + t));
	}
	assert_int_equal(idset_count(s), 40);
	for (uint8_t t = 0; t < 20; t++) {
		make_id_hash(id, 63, t);
		assert_int_equal(idset_get(s, id), t);
		make_id_hash(id, 0, t);
		assert_int_equal(idset_get(s, id), 100 + t);
	}
	make_id_hash(id, 63, 20);
	assert_false(idset_has(s, id));
	idset_free(s);
}

/* Many ids: the table grows many times and loses or mixes up none of them. */
static void test_growth_many(void **state)
{
	enum { N = 200000 };
	struct idset *s = idset_new(0);
	uint8_t id[32];

	for (uint32_t k = 0; k < N; k++) {
		make_id(id, k);
		assert_true(idset_add(s, id, k));
	}
	assert_int_equal(idset_count(s), N);
	for (uint32_t k = 0; k < N; k++) {
		make_id(id, k);
		assert_int_equal(idset_get(s, id), k);
		assert_false(idset_add(s, id, 0));
	}
	for (uint32_t k = N; k < N + 1000; k++) {
		make_id(id, k);
		assert_false(idset_has(s, id));
	}
	assert_int_equal(idset_count(s), N);
	idset_free(s);
}

static void test_clear(void **state)
{
	struct idset *s = idset_new(0);
	uint8_t id[32];

	for (uint32_t k = 0; k < 1000; k++) {
		make_id(id, k);
		idset_add(s, id, k);
	}
	/* Cleared to a smaller and to the same size: nothing is left either way. */
	idset_clear(s, 10);
	assert_int_equal(idset_count(s), 0);
	make_id(id, 5);
	assert_false(idset_has(s, id));
	assert_true(idset_add(s, id, 1));
	idset_clear(s, 10);
	assert_false(idset_has(s, id));
	/* Cleared for more ids than before, then filled past that. */
	idset_clear(s, 5000);
	for (uint32_t k = 0; k < 6000; k++) {
		make_id(id, k);
		assert_true(idset_add(s, id, k + 1));
	}
	make_id(id, 5999);
	assert_int_equal(idset_get(s, id), 6000);
	assert_int_equal(idset_count(s), 6000);
	idset_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_add_and_get), cmocka_unit_test(test_put),
	    cmocka_unit_test(test_collisions),	cmocka_unit_test(test_growth_many),
	    cmocka_unit_test(test_clear),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
