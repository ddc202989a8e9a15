/*
 * Chunker speed on one file held in memory: bench_chunker FILE.
 *
 * Prints the best of three passes of chunker_cut() over the whole file, then
 * the best of three passes that also take every chunk's id, which is what
 * publishing does per byte. bench/chunker.sh runs it beside b2sum on the same
 * file and reports the ratio.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include "ferry/chunker.h"
#include "ferry/error.h"
#include "ferry/fcrypto.h"
#include "ferry/util.h"

#define PASSES 3

/* One pass over buf; returns the chunk count. */
static size_t pass(const uint8_t *buf, size_t len, int with_ids)
{
	size_t off = 0, chunks = 0;

	while (off < len) {
		size_t n = chunker_cut(buf + off, len - off);

		if (with_ids) {
			uint8_t id[FERRY_ID_LEN];

			fcrypto_id(id, buf + off, n);
		}
		off += n;
		chunks++;
	}
	return chunks;
}

static double best_gbps(const uint8_t *buf, size_t len, int with_ids, size_t *chunks)
{
	double best = 0;

	for (int i = 0; i < PASSES; i++) {
		uint64_t t0 = now_ms(), ms;

		*chunks = pass(buf, len, with_ids);
		ms = MAX(now_ms() - t0, 1);
		best = MAX(best, (double)len / ((double)ms * 1e6));
	}
	return best;
}

int main(int argc, char **argv)
{
	char *buf;
	size_t len, chunks;
	double cut, cut_id;
	int rc;

	if (argc != 2) {
		fprintf(stderr, "usage: bench_chunker FILE\n");
		return 2;
	}
	if ((rc = fcrypto_init()) < 0)
		fatal("%s", ferry_errmsg(rc));
	if ((rc = read_file(argv[1], (size_t)4 << 30, &buf, &len)) < 0)
		fatal("%s", ferry_errmsg(rc));
	cut = best_gbps((const uint8_t *)buf, len, 0, &chunks);
	cut_id = best_gbps((const uint8_t *)buf, len, 1, &chunks);
	printf("bytes %zu chunks %zu mean_chunk %.0f\n", len, chunks,
	       chunks ? (double)len / (double)chunks : 0.0);
	printf("chunk_gbps %.3f\n", cut);
	printf("chunk_and_id_gbps %.3f\n", cut_id);
	free(buf);
	return 0;
}
