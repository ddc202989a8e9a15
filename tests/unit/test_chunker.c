/*
 * Unit tests for the chunker: the gear table and cut points are part of the
 * format (docs/formats.md, "Chunking"), so they are pinned here.
 *
 * The test input is xorshift64* (Vigna) with seed 0x9e3779b97f4a7c15:
 * x ^= x >> 12; x ^= x << 25; x ^= x >> 27; each output x * 0x2545f4914f6cdd1d
 * is written as 8 bytes little-endian.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "ferry/chunker.h"
#include "ferry/fcrypto.h"
#include "ferry/util.h"

#define INPUT_LEN  (8u << 20)
#define MAX_CHUNKS (INPUT_LEN / CHUNK_MIN_SIZE + 2)

static uint8_t *input;

static void fill_xorshift(uint8_t *p, size_t n, uint64_t seed)
{
	uint64_t x = seed;

	for (size_t i = 0; i < n; i += 8) {
		uint64_t v;

		x ^= x >> 12;
		x ^= x << 25;
		x ^= x >> 27;
		v = x * 0x2545f4914f6cdd1dull;
		for (size_t k = 0; k < 8 && i + k < n; k++)
			p[i + k] = (uint8_t)(v >> (8 * k));
	}
}

/*
 * The rule exactly as docs/formats.md states it, one byte at a time, with the
 * table recomputed from its definition: chunker_cut() must agree with it.
 */
static uint64_t ref_gear[256];

static size_t ref_cut(const uint8_t *p, size_t n)
{
	const uint64_t mask_s = 0xfffff00000000000ull, mask_l = 0xffff000000000000ull;
	uint64_t fp = 0;

	if (n <= CHUNK_MIN_SIZE)
		return n;
	if (n > CHUNK_MAX_SIZE)
		n = CHUNK_MAX_SIZE;
	for (size_t i = CHUNK_MIN_SIZE; i < n; i++) {
		fp = (fp << 1) + ref_gear[p[i]];
		if ((fp & (i < CHUNK_AVG_SIZE ? mask_s : mask_l)) == 0)
			return i + 1;
	}
	return n;
}

/* Cut p[0..n) into chunks; lengths into len[], returns the count. */
static size_t chunk_all(const uint8_t *p, size_t n, size_t *len, size_t cap)
{
	size_t off = 0, count = 0;

	while (off < n) {
		assert_true(count < cap);
		len[count] = chunker_cut(p + off, n - off);
		assert_true(len[count] >= 1);
		off += len[count++];
	}
	assert_int_equal(off, n);
	return count;
}

static int setup(void **state)
{
	if (fcrypto_init() < 0)
		return -1;
	for (unsigned i = 0; i < 256; i++) {
		uint8_t in[14], id[FERRY_ID_LEN];
		uint64_t v = 0;

		memcpy(in, "ferry-gear-v1", 13);
		in[13] = (uint8_t)i;
		fcrypto_id(id, in, sizeof(in));
		for (int k = 7; k >= 0; k--)
			v = v << 8 | id[k];
		ref_gear[i] = v;
	}
	input = xmalloc(INPUT_LEN);
	fill_xorshift(input, INPUT_LEN, 0x9e3779b97f4a7c15ull);
	return 0;
}

static int teardown(void **state)
{
	free(input);
	return 0;
}

static void test_gear_table(void **state)
{
	for (unsigned i = 0; i < 256; i++)
		assert_int_equal(chunker__gear[i], ref_gear[i]);
}

/* The first chunk lengths of the test input, as listed in docs/formats.md. */
static void test_pinned_vector(void **state)
{
	static const size_t want[] = {395775, 106704, 178273, 272392, 338689,
				      211753, 283319, 332378, 263116, 272803};
	size_t len[MAX_CHUNKS], count = chunk_all(input, INPUT_LEN, len, MAX_CHUNKS);

	assert_int_equal(count, 30);
	for (size_t i = 0; i < ARRAY_SIZE(want); i++)
		assert_int_equal(len[i], want[i]);
}

static void test_bounds(void **state)
{
	size_t len[MAX_CHUNKS], count = chunk_all(input, INPUT_LEN, len, MAX_CHUNKS);

	assert_true(count > 1);
	for (size_t i = 0; i + 1 < count; i++) {
		assert_true(len[i] > CHUNK_MIN_SIZE);
		assert_true(len[i] <= CHUNK_MAX_SIZE);
	}
}

/*
 * The fast scan agrees with the one-byte rule at many starting points and
 * lengths, including lengths that end inside the scan's blocks.
 */
static void test_matches_reference(void **state)
{
	size_t off = 0;

	/* Every chunk boundary of the input, from there to the end. */
	while (off < INPUT_LEN) {
		size_t got = chunker_cut(input + off, INPUT_LEN - off);

		assert_int_equal(got, ref_cut(input + off, INPUT_LEN - off));
		off += got;
	}
	/* Odd starting points. */
	for (size_t i = 0; i < 300; i++) {
		off = i * 27211 + i % 7;
		assert_int_equal(chunker_cut(input + off, INPUT_LEN - off),
				 ref_cut(input + off, INPUT_LEN - off));
	}
	/* Short ends of file, around the normal size and the scan's block sizes. */
	for (size_t n = CHUNK_MIN_SIZE - 3; n < CHUNK_MAX_SIZE; n += 4093) {
		assert_int_equal(chunker_cut(input + 77, n), ref_cut(input + 77, n));
		assert_int_equal(chunker_cut(input + 4242, n), ref_cut(input + 4242, n));
	}
}

static void test_deterministic(void **state)
{
	size_t a[MAX_CHUNKS], b[MAX_CHUNKS], na, nb;
	uint8_t *copy = xmalloc(INPUT_LEN + 1);

	/* Same bytes at another address and alignment: same chunks. */
	memcpy(copy + 1, input, INPUT_LEN);
	na = chunk_all(input, INPUT_LEN, a, MAX_CHUNKS);
	nb = chunk_all(copy + 1, INPUT_LEN, b, MAX_CHUNKS);
	assert_int_equal(na, nb);
	assert_memory_equal(a, b, na * sizeof(a[0]));
	free(copy);
}

/* Chunk ends (offsets) of p[0..n) into ends[]; returns the count. */
static size_t chunk_ends(const uint8_t *p, size_t n, size_t *ends)
{
	size_t len[MAX_CHUNKS], count = chunk_all(p, n, len, MAX_CHUNKS), off = 0;

	for (size_t i = 0; i < count; i++) {
		off += len[i];
		ends[i] = off;
	}
	return count;
}

static int id_in(const uint8_t (*ids)[FERRY_ID_LEN], size_t n, const uint8_t *id)
{
	for (size_t i = 0; i < n; i++)
		if (memcmp(ids[i], id, FERRY_ID_LEN) == 0)
			return 1;
	return 0;
}

/*
 * Insert `ins` bytes at `at` and check that chunking re-synchronises: from
 * the chunk after the one holding the insertion plus `slack` more, every
 * boundary is the old one shifted by ins, and >= 90% of the chunk ids are
 * unchanged.
 */
static void check_insertion(size_t at, size_t ins, size_t slack)
{
	size_t n = INPUT_LEN + ins, e0[MAX_CHUNKS], e1[MAX_CHUNKS], c0, c1, first, same = 0;
	uint8_t *mod = xmalloc(n), (*ids)[FERRY_ID_LEN];
	size_t off;

	memcpy(mod, input, at);
	memset(mod + at, 0xa5, ins);
	memcpy(mod + at + ins, input + at, INPUT_LEN - at);
	c0 = chunk_ends(input, INPUT_LEN, e0);
	c1 = chunk_ends(mod, n, e1);

	for (first = 0; e0[first] <= at; first++)
		;
	first += slack;
	assert_true(first < c0);
	/* From the boundary `first` on, each old boundary reappears shifted by ins. */
	for (size_t i = first; i < c0; i++) {
		size_t j;

		for (j = 0; j < c1 && e1[j] != e0[i] + ins; j++)
			;
		assert_true(j < c1);
		assert_int_equal(c1 - j, c0 - i);
	}

	ids = xmalloc(c0 * sizeof(*ids));
	off = 0;
	for (size_t i = 0; i < c0; i++) {
		fcrypto_id(ids[i], input + off, e0[i] - off);
		off = e0[i];
	}
	off = 0;
	for (size_t j = 0; j < c1; j++) {
		uint8_t id[FERRY_ID_LEN];

		fcrypto_id(id, mod + off, e1[j] - off);
		same += (size_t)id_in((const uint8_t(*)[FERRY_ID_LEN])ids, c0, id);
		off = e1[j];
	}
	assert_true(same * 10 >= c1 * 9);
	free(ids);
	free(mod);
}

static void test_insertion_near_start(void **state)
{
	check_insertion(1000, 5, 1);
	check_insertion(CHUNK_MIN_SIZE + 12345, 3, 1);
}

static void test_insertion_in_middle(void **state)
{
	check_insertion(INPUT_LEN / 2 + 1, 17, 1);
}

static void test_all_zero(void **state)
{
	size_t n = 3 * CHUNK_MAX_SIZE + 5, len[8];
	uint8_t *zero = xcalloc(1, n);

	assert_int_equal(chunk_all(zero, n, len, ARRAY_SIZE(len)), 4);
	assert_int_equal(len[0], CHUNK_MAX_SIZE);
	assert_int_equal(len[1], CHUNK_MAX_SIZE);
	assert_int_equal(len[2], CHUNK_MAX_SIZE);
	assert_int_equal(len[3], 5);
	free(zero);
}

static void test_short_inputs(void **state)
{
	assert_int_equal(chunker_cut(input, 0), 0);
	assert_int_equal(chunker_cut(input, 1), 1);
	assert_int_equal(chunker_cut(input, 4096), 4096);
	assert_int_equal(chunker_cut(input, CHUNK_MIN_SIZE - 1), CHUNK_MIN_SIZE - 1);
	assert_int_equal(chunker_cut(input, CHUNK_MIN_SIZE), CHUNK_MIN_SIZE);
}

/*
 * chunker_cut() reads no more than CHUNK_MAX_SIZE bytes even when told more
 * are there: the buffer ends at an inaccessible page, and zeros never cut.
 */
static void test_reads_at_most_max(void **state)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE), map = CHUNK_MAX_SIZE + page;
	uint8_t *p = mmap(NULL, map, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	assert_true(p != MAP_FAILED);
	assert_int_equal(mprotect(p + CHUNK_MAX_SIZE, page, PROT_NONE), 0);
	assert_int_equal(chunker_cut(p, 4 * CHUNK_MAX_SIZE), CHUNK_MAX_SIZE);
	munmap(p, map);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_gear_table),
	    cmocka_unit_test(test_pinned_vector),
	    cmocka_unit_test(test_bounds),
	    cmocka_unit_test(test_matches_reference),
	    cmocka_unit_test(test_deterministic),
	    cmocka_unit_test(test_insertion_near_start),
	    cmocka_unit_test(test_insertion_in_middle),
	    cmocka_unit_test(test_all_zero),
	    cmocka_unit_test(test_short_inputs),
	    cmocka_unit_test(test_reads_at_most_max),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
