/*
 * Unit tests for the eviction policy: a table of stores (versions with their
 * sizes, last use and flags) and limits, each with the exact versions that
 * must go, in order, and what is still missing when the quota cannot be met.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "ferry/evict.h"
#include "ferry/util.h"

#define G    (1024ull * 1024 * 1024)
#define MAXV 12

/* Flags of a version in the table. */
#define A 1u /* active */
#define P 2u /* previous */
#define N 4u /* pinned */

struct row {
	const char *name;
	uint64_t version;
	uint64_t bytes;
	int64_t last_used;
	unsigned flags;
};

struct tcase {
	const char *what;
	struct row v[MAXV];
	struct evict_limits l;
	const char *expect; /* "name@version ..." in eviction order; "" for none */
	uint64_t short_by;
};

static const struct tcase cases[] = {
    {"no quota and plenty of free space: nothing goes",
     {{"m", 1, 10 * G, 100, 0}, {"m", 2, 10 * G, 200, P}, {"m", 3, 10 * G, 300, A}},
     {.quota = 0, .usage = 30 * G, .fs_free = 100 * G, .min_free_space = 2 * G, .keep_versions = 1},
     "",
     0},
    {"under the quota: nothing goes",
     {{"m", 1, 10 * G, 100, 0}, {"m", 2, 10 * G, 200, A}},
     {.quota = 25 * G, .usage = 20 * G, .fs_free = 100 * G, .keep_versions = 1},
     "",
     0},
    {"over the quota by one version: the least recently used goes",
     {{"m", 1, 10 * G, 100, 0}, {"m", 2, 10 * G, 150, 0}, {"m", 3, 10 * G, 300, A}},
     {.quota = 25 * G, .usage = 30 * G, .fs_free = 100 * G, .keep_versions = 1},
     "m@1",
     0},
    {"least recently used, not oldest version, goes first",
     {{"m", 1, 10 * G, 500, 0}, {"m", 2, 10 * G, 150, 0}, {"m", 3, 10 * G, 600, A}},
     {.quota = 25 * G, .usage = 30 * G, .fs_free = 100 * G, .keep_versions = 1},
     "m@2",
     0},
    {"as many as the excess needs, across models",
     {{"a", 1, 4 * G, 10, 0},
      {"a", 2, 4 * G, 40, 0},
      {"a", 3, 4 * G, 90, A},
      {"b", 7, 3 * G, 20, 0},
      {"b", 8, 3 * G, 30, 0},
      {"b", 9, 3 * G, 95, A}},
     {.quota = 12 * G, .usage = 21 * G, .fs_free = 100 * G, .keep_versions = 1},
     "a@1 b@7 b@8",
     0},
    {"active, previous and pinned are never evicted, even far over the quota",
     {{"m", 1, 10 * G, 1, N},
      {"m", 2, 10 * G, 2, P},
      {"m", 3, 10 * G, 3, A},
      {"m", 4, 10 * G, 4, 0}},
     {.quota = 1 * G, .usage = 40 * G, .fs_free = 100 * G, .keep_versions = 0},
     "m@4",
     29 * G},
    {"the newest keep_versions of each model stay",
     {{"m", 1, 1 * G, 10, 0},
      {"m", 2, 1 * G, 20, 0},
      {"m", 3, 1 * G, 30, 0},
      {"m", 4, 1 * G, 40, 0},
      {"m", 5, 1 * G, 50, A}},
     {.quota = 1, .usage = 5 * G, .fs_free = 100 * G, .keep_versions = 3},
     "m@1 m@2",
     5 * G - 1 - 2 * G},
    {"a newer version not yet active counts toward keep_versions",
     {{"m", 4, 1 * G, 40, P},
      {"m", 5, 1 * G, 50, A},
      {"m", 6, 1 * G, 0, 0},
      {"m", 3, 1 * G, 30, 0}},
     {.quota = 1 * G, .usage = 4 * G, .fs_free = 100 * G, .keep_versions = 2},
     "m@3",
     2 * G},
    {"free space below min_free_space evicts even without a quota",
     {{"m", 1, 3 * G, 10, 0}, {"m", 2, 3 * G, 20, 0}, {"m", 3, 3 * G, 30, A}},
     {.quota = 0, .usage = 9 * G, .fs_free = 1 * G, .min_free_space = 5 * G, .keep_versions = 1},
     "m@1 m@2",
     0},
    {"the larger of the two shortfalls decides",
     {{"m", 1, 2 * G, 10, 0},
      {"m", 2, 2 * G, 20, 0},
      {"m", 3, 2 * G, 30, 0},
      {"m", 4, 2 * G, 40, A}},
     {.quota = 7 * G,
      .usage = 8 * G,
      .fs_free = 1 * G,
      .min_free_space = 4 * G,
      .keep_versions = 1},
     "m@1 m@2",
     0},
    {"ties on last use go to the lower version, then the name",
     {{"b", 1, 1 * G, 50, 0},
      {"a", 2, 1 * G, 50, 0},
      {"a", 1, 1 * G, 50, 0},
      {"a", 3, 1 * G, 99, A},
      {"b", 3, 1 * G, 99, A}},
     {.quota = 2 * G, .usage = 5 * G, .fs_free = 100 * G, .keep_versions = 1},
     "a@1 b@1 a@2",
     0},
    {"nothing evictable: everything short",
     {{"m", 1, 5 * G, 10, A}},
     {.quota = 1 * G, .usage = 5 * G, .fs_free = 100 * G, .keep_versions = 1},
     "",
     4 * G},
    {"sizes that would overflow saturate",
     {{"m", 1, UINT64_MAX, 10, 0}, {"m", 2, UINT64_MAX, 20, 0}, {"m", 3, 1, 30, A}},
     {.quota = 1, .usage = UINT64_MAX, .fs_free = 100 * G, .keep_versions = 1},
     "m@1",
     0},
};

static size_t fill(const struct tcase *c, struct evict_version *v)
{
	size_t n = 0;

	while (n < MAXV && c->v[n].name != NULL) {
		v[n] = (struct evict_version){.name = c->v[n].name,
					      .version = c->v[n].version,
					      .bytes = c->v[n].bytes,
					      .last_used = c->v[n].last_used,
					      .active = c->v[n].flags & A,
					      .previous = c->v[n].flags & P,
					      .pinned = c->v[n].flags & N};
		n++;
	}
	return n;
}

static void test_table(void **state)
{
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		const struct tcase *c = &cases[i];
		struct evict_version v[MAXV];
		size_t out[MAXV], n = fill(c, v), k;
		uint64_t short_by = 12345;
		char got[256] = "";

		k = evict_plan(v, n, &c->l, out, &short_by);
		for (size_t j = 0; j < k; j++) {
			size_t len = strlen(got);

			snprintf(got + len, sizeof(got) - len, "%s%s@%llu", j ? " " : "",
				 v[out[j]].name, (unsigned long long)v[out[j]].version);
		}
		if (strcmp(got, c->expect) != 0 || short_by != c->short_by)
			fail_msg("case %zu (%s): evicted \"%s\", expected \"%s\"; short by %llu, "
				 "expected %llu",
				 i, c->what, got, c->expect, (unsigned long long)short_by,
				 (unsigned long long)c->short_by);
	}
}

static void test_need(void **state)
{
	struct evict_limits l = {.quota = 10, .usage = 15, .fs_free = 3, .min_free_space = 4};

	assert_int_equal(evict_need(&l), 5);
	l.min_free_space = 20;
	assert_int_equal(evict_need(&l), 17);
	l = (struct evict_limits){.quota = 0, .usage = 1000, .fs_free = 10, .min_free_space = 10};
	assert_int_equal(evict_need(&l), 0);
}

/* The candidates are what keep_versions cleanup of materialized copies removes. */
static void test_candidates(void **state)
{
	struct evict_version v[] = {
	    {.name = "m", .version = 1, .last_used = 10},
	    {.name = "m", .version = 2, .last_used = 5, .pinned = true},
	    {.name = "m", .version = 3, .last_used = 30},
	    {.name = "m", .version = 4, .last_used = 20},
	    {.name = "m", .version = 5, .last_used = 50, .previous = true},
	    {.name = "m", .version = 6, .last_used = 60, .active = true},
	    {.name = "n", .version = 1, .last_used = 1},
	};
	size_t out[ARRAY_SIZE(v)];

	/* keep 2: m@6 and m@5 by rank; m@2 pinned; n@1 is n's newest. */
	assert_int_equal(evict_candidates(v, ARRAY_SIZE(v), 2, out), 3);
	assert_int_equal(out[0], 0); /* m@1, used at 10 */
	assert_int_equal(out[1], 3); /* m@4, used at 20 */
	assert_int_equal(out[2], 2); /* m@3, used at 30 */
	/* keep 0: everything unprotected, n@1 first. */
	assert_int_equal(evict_candidates(v, ARRAY_SIZE(v), 0, out), 4);
	assert_int_equal(out[0], 6);
	assert_int_equal(evict_candidates(v, 0, 2, out), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_table),
	    cmocka_unit_test(test_need),
	    cmocka_unit_test(test_candidates),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
