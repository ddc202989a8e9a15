/*
 * gen_weights: write a deterministic synthetic model file in safetensors
 * format, for tests and benchmarks that need realistic weights without
 * downloading any.
 *
 *   gen_weights --dtype bf16|fp32 --size BYTES [--seed N] [--tensors N]
 *               [--mutate FRACTION --seed2 N] OUT
 *
 * The file is an 8-byte little-endian header length, a JSON header naming
 * each tensor's dtype, shape and data_offsets (padded with spaces to a
 * multiple of 8 bytes, as the safetensors writer does), then the tensor data.
 * BYTES is the size of the tensor data (rounded down to whole elements).
 * Each tensor holds Gaussian values with mean 0 and a standard deviation of
 * its own (log-uniform in [0.005, 0.1]), drawn from a generator seeded by
 * (seed, tensor number) so that tensors do not depend on each other;
 * bf16 values are fp32 values rounded to nearest even.
 *
 * --mutate FRACTION rewrites round(FRACTION * tensors) tensors, chosen by
 * --seed2, with values drawn from seed2, and adds a "mutated" entry to the
 * header's __metadata__: the file then differs from the unmutated one in
 * those tensors, and every byte after the header is shifted by a few bytes,
 * which is what a dedup test needs. Same arguments, same bytes.
 *
 * Options live in one table (opts[]) that drives parsing and the usage
 * text, so adding one is a table row and a case.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/util.h"

enum dtype { DT_BF16, DT_FP32 };

struct params {
	enum dtype dtype;
	uint64_t size;
	uint64_t seed;
	uint64_t tensors; /* 0: one per 16 MiB, at least 1 */
	double mutate;	  /* fraction of tensors to rewrite */
	uint64_t seed2;
	int have_seed2;
	const char *out;
};

enum opt_id { OPT_DTYPE = 256, OPT_SIZE, OPT_SEED, OPT_TENSORS, OPT_MUTATE, OPT_SEED2, OPT_HELP };

static const struct opt {
	const char *name;
	int id;
	const char *arg;
	const char *help;
} opts[] = {
    {"dtype", OPT_DTYPE, "bf16|fp32", "element type (required)"},
    {"size", OPT_SIZE, "BYTES", "tensor data size, K/M/G suffixes allowed (required)"},
    {"seed", OPT_SEED, "N", "seed of the values (default 1)"},
    {"tensors", OPT_TENSORS, "N", "number of tensors (default: one per 16 MiB)"},
    {"mutate", OPT_MUTATE, "FRACTION", "rewrite this fraction of tensors (needs --seed2)"},
    {"seed2", OPT_SEED2, "N", "seed of the rewritten tensors and of which ones"},
    {"help", OPT_HELP, NULL, "show this text"},
};

static void usage(FILE *f)
{
	fprintf(f, "usage: gen_weights [options] OUT\n");
	for (size_t i = 0; i < ARRAY_SIZE(opts); i++) {
		char left[40];

		snprintf(left, sizeof(left), "--%s%s%s", opts[i].name, opts[i].arg ? " " : "",
			 opts[i].arg ? opts[i].arg : "");
		fprintf(f, "  %-26s %s\n", left, opts[i].help);
	}
}

static uint64_t parse_u64(const char *name, const char *s)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || s[0] == '-')
		fatal("--%s: '%s' is not a non-negative integer", name, s);
	return v;
}

static void parse_args(int argc, char **argv, struct params *p)
{
	struct option lo[ARRAY_SIZE(opts) + 1];
	int c;

	memset(lo, 0, sizeof(lo));
	for (size_t i = 0; i < ARRAY_SIZE(opts); i++) {
		lo[i].name = opts[i].name;
		lo[i].has_arg = opts[i].arg ? required_argument : no_argument;
		lo[i].val = opts[i].id;
	}
	memset(p, 0, sizeof(*p));
	p->dtype = -1;
	p->seed = 1;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case OPT_DTYPE:
			if (strcmp(optarg, "bf16") == 0)
				p->dtype = DT_BF16;
			else if (strcmp(optarg, "fp32") == 0)
				p->dtype = DT_FP32;
			else
				fatal("--dtype: '%s' is not bf16 or fp32", optarg);
			break;
		case OPT_SIZE:
			if (parse_size(optarg, &p->size) != 0)
				fatal("--size: '%s' is not a size", optarg);
			break;
		case OPT_SEED:
			p->seed = parse_u64("seed", optarg);
			break;
		case OPT_TENSORS:
			p->tensors = parse_u64("tensors", optarg);
			if (p->tensors == 0 || p->tensors > 100000)
				fatal("--tensors: %s is not in 1..100000", optarg);
			break;
		case OPT_MUTATE: {
			char *end;

			p->mutate = strtod(optarg, &end);
			if (end == optarg || *end != '\0' || !(p->mutate >= 0 && p->mutate <= 1))
				fatal("--mutate: '%s' is not a fraction in [0, 1]", optarg);
			break;
		}
		case OPT_SEED2:
			p->seed2 = parse_u64("seed2", optarg);
			p->have_seed2 = 1;
			break;
		case OPT_HELP:
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(2);
		}
	}
	if (optind != argc - 1 || (int)p->dtype == -1 || p->size == 0) {
		usage(stderr);
		exit(2);
	}
	if (p->mutate > 0 && !p->have_seed2)
		fatal("--mutate needs --seed2");
	p->out = argv[optind];
}

/* splitmix64: seeds the per-tensor generators so tensors are independent. */
static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* xoshiro256**, the value generator. */
struct rng {
	uint64_t s[4];
};

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(struct rng *r)
{
	uint64_t *s = r->s, res = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return res;
}

static void rng_seed(struct rng *r, uint64_t seed, uint64_t stream)
{
	uint64_t sm = seed ^ (stream * 0xd1342543de82ef95ull);

	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&sm);
}

/* Uniform in (0, 1): 53 random bits, never 0. */
static double rng_unit(struct rng *r)
{
	return ((rng_next(r) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

/* Two standard normal values (Box-Muller). */
static void rng_gauss2(struct rng *r, double *a, double *b)
{
	double rad = sqrt(-2.0 * log(rng_unit(r))), th = 2.0 * M_PI * rng_unit(r);

	*a = rad * cos(th);
	*b = rad * sin(th);
}

static uint16_t to_bf16(float f)
{
	uint32_t u;

	memcpy(&u, &f, 4);
	u += 0x7fffu + ((u >> 16) & 1u); /* round to nearest, ties to even */
	return (uint16_t)(u >> 16);
}

static void put_value(uint8_t *p, enum dtype dt, double v)
{
	float f = (float)v;

	if (dt == DT_BF16) {
		uint16_t h = to_bf16(f);

		p[0] = (uint8_t)h;
		p[1] = (uint8_t)(h >> 8);
	} else {
		uint32_t u;

		memcpy(&u, &f, 4);
		for (int i = 0; i < 4; i++)
			p[i] = (uint8_t)(u >> (8 * i));
	}
}

/* Fill buf with one tensor's n_el values from the stream (seed, stream). */
static void gen_tensor(uint8_t *buf, uint64_t n_el, enum dtype dt, uint64_t seed, uint64_t stream)
{
	size_t es = dt == DT_BF16 ? 2 : 4;
	struct rng r;
	double sd, a, b;

	rng_seed(&r, seed, stream);
	sd = 0.005 * exp(rng_unit(&r) * log(20.0)); /* log-uniform in [0.005, 0.1] */
	for (uint64_t i = 0; i < n_el; i += 2) {
		rng_gauss2(&r, &a, &b);
		put_value(buf + i * es, dt, a * sd);
		if (i + 1 < n_el)
			put_value(buf + (i + 1) * es, dt, b * sd);
	}
}

/* Which tensors --mutate rewrites: the first k of a seed2-shuffled order. */
static uint8_t *pick_mutated(uint64_t nt, double frac, uint64_t seed2)
{
	uint8_t *mut = xcalloc(nt, 1);
	uint64_t *ord = xreallocarray(NULL, nt, sizeof(*ord));
	uint64_t k = (uint64_t)llround(frac * (double)nt);
	struct rng r;

	rng_seed(&r, seed2, UINT64_MAX);
	for (uint64_t i = 0; i < nt; i++)
		ord[i] = i;
	for (uint64_t i = nt; i > 1; i--) {
		uint64_t j = rng_next(&r) % i, t = ord[i - 1];

		ord[i - 1] = ord[j];
		ord[j] = t;
	}
	for (uint64_t i = 0; i < k; i++)
		mut[ord[i]] = 1;
	free(ord);
	return mut;
}

/* A growing string for the JSON header. */
struct sbuf {
	char *p;
	size_t len, cap;
};

static void sb_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n < 0)
			fatal("vsnprintf failed");
		if ((size_t)n < b->cap - b->len)
			break;
		b->cap = b->cap * 2 + (size_t)n;
		b->p = xrealloc(b->p, b->cap);
	}
	b->len += (size_t)n;
}

int main(int argc, char **argv)
{
	struct params p;
	struct sbuf hdr = {xmalloc(256), 0, 256};
	size_t es;
	uint64_t n_el, nt, off = 0, hlen;
	uint64_t *cnt;
	uint8_t *mut, lenb[8], *buf;
	FILE *f;

	parse_args(argc, argv, &p);
	es = p.dtype == DT_BF16 ? 2 : 4;
	n_el = p.size / es;
	if (n_el == 0)
		fatal("--size %" PRIu64 " holds no %zu-byte element", p.size, es);
	nt = p.tensors ? p.tensors : MAX(1, p.size / (16u << 20));
	if (nt > n_el)
		nt = n_el;
	mut = p.mutate > 0 ? pick_mutated(nt, p.mutate, p.seed2) : xcalloc(nt, 1);

	/* Tensor i gets an equal share; the last one takes the remainder. */
	cnt = xreallocarray(NULL, nt, sizeof(*cnt));
	for (uint64_t i = 0; i < nt; i++)
		cnt[i] = i + 1 < nt ? n_el / nt : n_el - (nt - 1) * (n_el / nt);

	sb_printf(&hdr, "{\"__metadata__\":{\"format\":\"pt\"");
	if (p.mutate > 0)
		sb_printf(&hdr, ",\"mutated\":\"%" PRIu64 "\"", p.seed2);
	sb_printf(&hdr, "}");
	for (uint64_t i = 0; i < nt; i++) {
		uint64_t cols = 0;

		for (uint64_t c = 4096; c >= 256; c /= 2)
			if (cnt[i] % c == 0 && cnt[i] > c) {
				cols = c;
				break;
			}
		sb_printf(&hdr, ",\"layers.%" PRIu64 ".weight\":{\"dtype\":\"%s\",\"shape\":[", i,
			  p.dtype == DT_BF16 ? "BF16" : "F32");
		if (cols)
			sb_printf(&hdr, "%" PRIu64 ",%" PRIu64, cnt[i] / cols, cols);
		else
			sb_printf(&hdr, "%" PRIu64, cnt[i]);
		sb_printf(&hdr, "],\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}", off,
			  off + cnt[i] * es);
		off += cnt[i] * es;
	}
	sb_printf(&hdr, "}");
	while (hdr.len % 8 != 0)
		sb_printf(&hdr, " ");

	f = fopen(p.out, "wb");
	if (f == NULL)
		fatal("%s: %s", p.out, strerror(errno));
	hlen = hdr.len;
	for (int i = 0; i < 8; i++)
		lenb[i] = (uint8_t)(hlen >> (8 * i));
	if (fwrite(lenb, 1, 8, f) != 8 || fwrite(hdr.p, 1, hdr.len, f) != hdr.len)
		fatal("%s: write failed", p.out);

	buf = xmalloc(n_el / nt * es + nt * es);
	for (uint64_t i = 0; i < nt; i++) {
		if (mut[i])
			gen_tensor(buf, cnt[i], p.dtype, p.seed2, i);
		else
			gen_tensor(buf, cnt[i], p.dtype, p.seed, i);
		if (fwrite(buf, es, cnt[i], f) != cnt[i])
			fatal("%s: write failed", p.out);
	}
	if (fclose(f) != 0)
		fatal("%s: %s", p.out, strerror(errno));
	free(buf);
	free(cnt);
	free(mut);
	free(hdr.p);
	return 0;
}
