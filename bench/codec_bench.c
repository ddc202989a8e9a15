/*
 * codec_bench: encode and decode a file with each chunk codec and print the
 * encoded size as a percentage of raw and the throughput, for bench/codec.sh.
 *
 *   codec_bench [--chunk BYTES] [--repeat N] [--b2sum SECONDS] [--cat SECONDS] FILE
 *
 * The file is read into memory and cut into fixed-size chunks (default
 * CHUNK_AVG_SIZE, the chunker's average) so that the figures do not depend
 * on the chunker. Each pass is timed N times (default 3) and the fastest
 * kept, as the machine is shared. Every decode is checked against the
 * original bytes. With --b2sum, the time `b2sum FILE` took in the same run,
 * each encode time is also printed as a multiple of it; with --cat, the time
 * `cat FILE` took, each decode time.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ferry/chunker.h"
#include "ferry/codec.h"
#include "ferry/error.h"
#include "ferry/util.h"

#define AUTO (-1)

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint8_t *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf;
	long sz;

	if (f == NULL)
		fatal("%s: %s", path, strerror(errno));
	if (fseek(f, 0, SEEK_END) != 0 || (sz = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0)
		fatal("%s: cannot size it", path);
	buf = xmalloc((size_t)sz);
	if (fread(buf, 1, (size_t)sz, f) != (size_t)sz)
		fatal("%s: short read", path);
	fclose(f);
	*len = (size_t)sz;
	return buf;
}

static void encode_all(struct codec_ctx *c, int mode, const uint8_t *data, size_t len, size_t chunk,
		       uint8_t *enc, size_t *elen)
{
	for (size_t i = 0, off = 0; off < len; i++, off += chunk) {
		size_t n = MIN(chunk, len - off);
		uint8_t *o = enc + i * codec_bound(chunk);
		int rc = mode == AUTO ? codec_encode(c, data + off, n, o, &elen[i])
				      : codec_encode_as(c, mode, data + off, n, o, &elen[i]);

		if (rc != 0)
			fatal("encode: %s", ferry_errmsg(rc));
	}
}

/* Decode every chunk; with check, compare it with the original (outside the timed passes). */
static void decode_all(struct codec_ctx *c, const uint8_t *data, size_t len, size_t chunk,
		       const uint8_t *enc, const size_t *elen, uint8_t *dec, int check)
{
	for (size_t i = 0, off = 0; off < len; i++, off += chunk) {
		size_t n = MIN(chunk, len - off), dl;
		int rc = codec_decode(c, enc + i * codec_bound(chunk), elen[i], dec, chunk, &dl);

		if (rc != 0)
			fatal("decode: %s", ferry_errmsg(rc));
		if (check && (dl != n || memcmp(dec, data + off, n) != 0))
			fatal("chunk %zu does not round-trip", i);
	}
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {{"chunk", required_argument, NULL, 'c'},
					   {"b2sum", required_argument, NULL, 'b'},
					   {"repeat", required_argument, NULL, 'r'},
					   {"cat", required_argument, NULL, 'k'},
					   {NULL, 0, NULL, 0}};
	static const int modes[] = {CODEC_RAW, CODEC_ZSTD, CODEC_PLANE2, CODEC_PLANE4, AUTO};
	uint64_t chunk = CHUNK_AVG_SIZE;
	double b2 = 0, cat = 0;
	int repeat = 3;
	struct codec_ctx *c = codec_ctx_new();
	uint8_t *data, *enc, *dec;
	size_t len, nchunks, *elen;
	int opt;

	while ((opt = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		if (opt == 'c') {
			if (parse_size(optarg, &chunk) != 0 || chunk == 0 || chunk > CHUNK_MAX_SIZE)
				fatal("--chunk: '%s' is not a size in 1..%u", optarg,
				      CHUNK_MAX_SIZE);
		} else if (opt == 'b') {
			b2 = atof(optarg);
		} else if (opt == 'k') {
			cat = atof(optarg);
		} else if (opt == 'r') {
			repeat = atoi(optarg);
			if (repeat < 1)
				fatal("--repeat: '%s' is not a positive count", optarg);
		} else {
			optind = argc;
			break;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "usage: codec_bench [--chunk BYTES] [--repeat N] [--b2sum SECONDS] "
				"[--cat SECONDS] FILE\n");
		return 2;
	}
	data = slurp(argv[optind], &len);
	nchunks = (len + chunk - 1) / chunk;
	enc = xmalloc(nchunks * codec_bound(chunk));
	elen = xcalloc(nchunks ? nchunks : 1, sizeof(*elen));
	dec = xmalloc(chunk);
	/* Touch the output once so page faults do not land in the first timing. */
	memset(enc, 0, nchunks * codec_bound(chunk));

	printf("%-7s %8s %9s %9s %10s %8s  %s\n", "codec", "size%", "enc GB/s", "dec GB/s",
	       b2 > 0 ? "enc/b2sum" : "", cat > 0 ? "dec/cat" : "", "chunks by tag");
	for (size_t mi = 0; mi < ARRAY_SIZE(modes); mi++) {
		size_t total = 0, tags[CODEC__COUNT] = {0};
		double t0, tenc, tdec;
		char tagbuf[128] = "";

		tenc = tdec = 1e30;
		for (int rep = 0; rep < repeat; rep++) {
			t0 = now_s();
			encode_all(c, modes[mi], data, len, chunk, enc, elen);
			tenc = MIN(tenc, now_s() - t0);
			t0 = now_s();
			decode_all(c, data, len, chunk, enc, elen, dec, 0);
			tdec = MIN(tdec, now_s() - t0);
		}
		decode_all(c, data, len, chunk, enc, elen, dec, 1);
		for (size_t i = 0; i < nchunks; i++) {
			total += elen[i];
			tags[enc[i * codec_bound(chunk)]]++;
		}
		for (int t = 0; t < CODEC__COUNT; t++)
			if (tags[t])
				snprintf(tagbuf + strlen(tagbuf), sizeof(tagbuf) - strlen(tagbuf),
					 "%s%s %zu", tagbuf[0] ? ", " : "", codec_name(t), tags[t]);
		printf("%-7s %7.2f%% %9.2f %9.2f ",
		       modes[mi] == AUTO ? "auto" : codec_name(modes[mi]),
		       100.0 * (double)total / (double)(len ? len : 1), (double)len / tenc / 1e9,
		       (double)len / tdec / 1e9);
		if (b2 > 0)
			printf("%9.2fx", tenc / b2);
		else
			printf("%10s", "");
		if (cat > 0)
			printf(" %7.2fx", tdec / cat);
		else
			printf(" %8s", "");
		printf("  %s\n", tagbuf);
	}
	codec_ctx_free(c);
	free(data);
	free(enc);
	free(elen);
	free(dec);
	return 0;
}
