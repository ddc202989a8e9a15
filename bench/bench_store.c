/*
 * Store commit throughput: write TOTAL bytes of VALUE-byte chunks into a new
 * store in DIR, committing every 16 MiB ("batch", what the fetcher does) or
 * after every value ("each"). Prints one line of figures; bench/store.sh
 * runs it next to dd with O_DSYNC and quotes the ratio.
 *
 * usage: bench_store DIR VALUE_BYTES TOTAL_BYTES batch|each
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ferry/error.h"
#include "ferry/store.h"
#include "ferry/util.h"

#define BATCH_BYTES (16u << 20)

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	struct store *st;
	struct store_wr *wr = NULL;
	struct store_stats s;
	uint64_t value, total, commits = 0, n;
	uint8_t *buf, id[32];
	bool each;
	double t0, dt;
	int rc;

	if (argc != 5 || parse_size(argv[2], &value) != 0 || parse_size(argv[3], &total) != 0 ||
	    value == 0 || value > (64u << 20) ||
	    (strcmp(argv[4], "batch") != 0 && strcmp(argv[4], "each") != 0)) {
		fprintf(stderr, "usage: bench_store DIR VALUE_BYTES TOTAL_BYTES batch|each\n");
		return 2;
	}
	each = strcmp(argv[4], "each") == 0;
	rc = store_open(argv[1], STORE_CREATE, &st);
	if (rc)
		fatal("%s", ferry_errmsg(rc));
	buf = xmalloc(value);
	for (size_t i = 0; i < value; i++)
		buf[i] = (uint8_t)(i * 2654435761u >> 13);
	n = total / value;
	memset(id, 0, sizeof(id));

	t0 = now_s();
	for (uint64_t i = 0; i < n; i++) {
		if (wr == NULL && (rc = store_wr_begin(st, &wr)) != 0)
			fatal("%s", ferry_errmsg(rc));
		memcpy(id, &i, sizeof(i));
		/* Distinct values, as real chunks are. */
		memcpy(buf, &i, sizeof(i));
		if ((rc = store_wr_chunk_put(wr, id, buf, value)) != 0)
			fatal("%s", ferry_errmsg(rc));
		if (each || store_wr_pending(wr) >= BATCH_BYTES || i + 1 == n) {
			if ((rc = store_wr_commit(wr)) != 0)
				fatal("%s", ferry_errmsg(rc));
			wr = NULL;
			commits++;
		}
	}
	dt = now_s() - t0;

	if ((rc = store_stats(st, &s)) != 0)
		fatal("%s", ferry_errmsg(rc));
	if (s.chunks != n)
		fatal("stored %" PRIu64 " chunks, expected %" PRIu64, s.chunks, n);
	printf("value=%" PRIu64 " mode=%s bytes=%" PRIu64 " commits=%" PRIu64
	       " seconds=%.3f MB/s=%.1f commits/s=%.1f map=%" PRIu64 "\n",
	       value, argv[4], n * value, commits, dt, (double)(n * value) / dt / 1e6,
	       (double)commits / dt, s.map_size);
	free(buf);
	store_close(st);
	return 0;
}
