/*
 * Fuzz the chunker (chunker_cut): a file built from the input is cut from
 * start to end, and every cut is checked against a plain serial
 * implementation of the rule in docs/formats.md ("Chunking"), so the
 * four-lane scan in src/chunker.c must find exactly the first cut. Each cut
 * is also checked to lie within bounds, to be the same when the bytes after
 * it are cut off (a cut depends only on the bytes before it).
 *
 * Chunks are at least 64 KiB and a random window cuts once in 2^16..2^20
 * bytes, far more than a fuzzer's input, so the input does not hold the file
 * itself. It describes one:
 *   u24  file length (mod FILE_MAX + 1)
 *   u8   background: 0 zeros, 1 pseudo-random from the next u24 as seed,
 *        otherwise the rest of the input repeated
 *   then records of u24 position (mod length) and u8 kind: plant a 64-byte
 *   window there whose gear hash meets the small mask (kind even) or only the
 *   large one (kind odd), so the fuzzer can put cuts anywhere: at lane and
 *   block edges, at the minimum, normal and maximum sizes.
 */
#include "config.h"

#include "ferry/chunker.h"
#include "ferry/util.h"
#include "fuzz.h"

/* A maximum chunk and a few more: every kind of cut, and fast enough to run often. */
#define FILE_MAX (CHUNK_MAX_SIZE + 4 * CHUNK_MIN_SIZE)
#define WINDOW	 64
/* docs/formats.md: the top 20 bits of the hash below the normal size, the top 16 above. */
#define MASK_S 0xfffff00000000000ull
#define MASK_L 0xffff000000000000ull
#define NWIN   4

static uint8_t *file;
/* Windows whose hash, started afresh, meets MASK_S (win_s) or MASK_L but not MASK_S (win_l). */
static uint8_t win_s[NWIN][WINDOW], win_l[NWIN][WINDOW];

static uint64_t roll(uint64_t fp, uint8_t b)
{
	return (fp << 1) + chunker__gear[b];
}

/*
 * The rule as written in docs/formats.md, one byte at a time. Neither
 * instrumented nor checked: its coverage tells the fuzzer nothing, and
 * uninstrumented it runs several times faster.
 */
static size_t __attribute__((no_sanitize("address", "coverage")))
reference_cut(const uint8_t *p, size_t n)
{
	size_t end = n < CHUNK_MAX_SIZE ? n : CHUNK_MAX_SIZE;
	uint64_t fp = 0;

	for (size_t i = CHUNK_MIN_SIZE; i < end; i++) {
		fp = roll(fp, p[i]);
		if ((fp & (i < CHUNK_AVG_SIZE ? MASK_S : MASK_L)) == 0)
			return i + 1;
	}
	return end;
}

/*
 * Find windows that cut: roll over a pseudo-random stream and keep the 64
 * bytes before each position where the hash meets the mask. The hash of the
 * last 64 bytes does not depend on anything earlier, so the window cuts
 * wherever it is planted (past the minimum size).
 */
static void find_windows(uint8_t win[NWIN][WINDOW], uint64_t mask, uint64_t not_mask)
{
	uint8_t ring[WINDOW];
	uint64_t fp = 0, s = 42 + mask;
	size_t found = 0;

	for (size_t i = 0; found < NWIN; i++) {
		uint8_t b = (uint8_t)(fuzz_rand(&s) >> 56);

		ring[i % WINDOW] = b;
		fp = roll(fp, b);
		if (i + 1 >= WINDOW && (fp & mask) == 0 &&
		    (not_mask == 0 || (fp & not_mask) != 0)) {
			for (size_t k = 0; k < WINDOW; k++)
				win[found][k] = ring[(i + 1 + k) % WINDOW];
			found++;
		}
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	file = malloc(FILE_MAX);
	if (file == NULL)
		abort();
	find_windows(win_s, MASK_S, 0);
	find_windows(win_l, MASK_L, MASK_S);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = {data, size};
	size_t len = fuzz_u24(&in) % (FILE_MAX + 1), off = 0;
	uint8_t bg = fuzz_u8(&in);

	if (bg == 0) {
		memset(file, 0, len);
	} else if (bg == 1) {
		fuzz_fill(file, len, fuzz_u24(&in));
	} else if (in.n == 0) {
		memset(file, 0, len);
	} else {
		for (size_t i = 0; i < len; i += in.n)
			memcpy(file + i, in.p, MIN(in.n, len - i));
	}
	while (in.n >= 4 && len >= WINDOW) {
		size_t pos = fuzz_u24(&in) % (len - WINDOW + 1);
		uint8_t kind = fuzz_u8(&in);

		memcpy(file + pos, kind % 2 == 0 ? win_s[kind / 2 % NWIN] : win_l[kind / 2 % NWIN],
		       WINDOW);
	}

	while (off < len) {
		size_t left = len - off, cut = chunker_cut(file + off, left);

		FUZZ_CHECK(cut >= 1 && cut <= left && cut <= CHUNK_MAX_SIZE);
		FUZZ_CHECK(cut == reference_cut(file + off, left));
		/* Cut off everything after the cut: the chunk ends at the end, where it ended. */
		FUZZ_CHECK(chunker_cut(file + off, cut) == cut);
		off += cut;
	}
	FUZZ_CHECK(chunker_cut(file, 0) == 0);
	return 0;
}
