/*
 * Chunk encoding; see include/ferry/codec.h and docs/formats.md ("Chunk
 * encoding"). The only file that includes <zstd.h>.
 *
 * Choosing a codec (codec_encode) costs a small fraction of encoding: the
 * chunk is sampled (the whole chunk up to SAMPLE_MAX bytes, otherwise
 * SAMPLE_SLICES evenly spaced slices of SAMPLE_SLICE bytes at offsets that
 * are multiples of 4), and from the sample we estimate
 *   - for each byte plane of stride 2 and 4, its order-0 entropy (with the
 *     Miller-Madow small-sample correction), hence the size of the plane
 *     codecs; a plane whose estimate saves under PLANE_MIN_SAVING is marked
 *     to be stored raw without being histogrammed or coded;
 *   - the zstd ratio, by compressing the sample with zstd itself.
 * The smallest estimate wins, except that stride 4 must beat stride 2 by
 * STRIDE4_MARGIN of the raw size (it codes twice the planes), and a plane
 * codec must beat zstd by ZSTD_PREFERENCE of the raw size: on data that
 * neither transposition nor matches help, zstd's own Huffman decodes faster
 * than ours would on every plane. Raw wins if no estimate is below
 * RAW_CUTOFF of the raw size. Then the chunk is encoded once with the
 * winner, and stored raw if that came out no smaller. Chunks under
 * MIN_CODED_LEN bytes stay raw. The same rule is in docs/formats.md.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <zstd.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "codec_huff.h"
#include "ferry/chunker.h"
#include "ferry/codec.h"
#include "ferry/error.h"
#include "ferry/util.h"

#define ZSTD_LEVEL    1
#define SAMPLE_SLICES 8
#define SAMPLE_SLICE  2048
#define SAMPLE_MAX    (SAMPLE_SLICES * SAMPLE_SLICE)
#define MIN_CODED_LEN 32
/* Estimated coded bits per symbol above the entropy (Huffman's loss). */
#define HUF_LOSS_BITS 0.05
/* A plane is coded only if the estimate saves at least this fraction of it. */
#define PLANE_MIN_SAVING 0.02
/* How much smaller (as a fraction of raw) stride 4's estimate must be than stride 2's. */
#define STRIDE4_MARGIN 0.005
/* How much smaller (as a fraction of raw) a plane estimate must be to beat zstd's. */
#define ZSTD_PREFERENCE 0.01
/* Below this fraction of the raw size an encoding is worth its decode. */
#define RAW_CUTOFF 0.99

enum plane_mode { PLANE_STORED = 0, PLANE_CONST = 1, PLANE_HUFFMAN = 2 };

struct codec_ctx {
	ZSTD_CCtx *zc;
	ZSTD_DCtx *zd;
	uint8_t *planes;  /* CHUNK_MAX_SIZE: planes split for encoding or decoded for merging */
	uint8_t *huf;	  /* Huffman stream scratch for the largest plane */
	uint8_t *sample;  /* SAMPLE_MAX: the slices of a large chunk's sample */
	uint8_t *zsample; /* the sample compressed by zstd */
	size_t zsample_cap;
};

/* What the sample predicts, for stride 2 and stride 4. */
struct estimate {
	size_t size[5];	    /* estimated encoded length, indexed by stride */
	uint8_t skip[5][4]; /* plane j of stride k predicted not to shrink */
};

static const char *const names[CODEC__COUNT] = {"raw", "zstd", "plane2", "plane4"};

size_t codec_bound(size_t raw_len)
{
	return raw_len + CODEC_HDR_LEN;
}

const char *codec_name(int tag)
{
	if (tag < 0 || tag >= CODEC__COUNT)
		return "?";
	return names[tag];
}

struct codec_ctx *codec_ctx_new(void)
{
	struct codec_ctx *c = xcalloc(1, sizeof(*c));

	c->zc = ZSTD_createCCtx();
	c->zd = ZSTD_createDCtx();
	if (c->zc == NULL || c->zd == NULL)
		fatal("out of memory creating zstd contexts");
	/* Content size on (the decoder checks it), no checksum (chunk ids do that). */
	if (ZSTD_isError(ZSTD_CCtx_setParameter(c->zc, ZSTD_c_compressionLevel, ZSTD_LEVEL)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(c->zc, ZSTD_c_contentSizeFlag, 1)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(c->zc, ZSTD_c_checksumFlag, 0)))
		fatal("zstd refused a parameter");
	c->planes = xmalloc(CHUNK_MAX_SIZE);
	c->huf = xmalloc(codec__huf_scratch_size(CHUNK_MAX_SIZE / 2));
	c->sample = xmalloc(SAMPLE_MAX);
	c->zsample_cap = ZSTD_compressBound(SAMPLE_MAX);
	c->zsample = xmalloc(c->zsample_cap);
	return c;
}

void codec_ctx_free(struct codec_ctx *c)
{
	if (c == NULL)
		return;
	ZSTD_freeCCtx(c->zc);
	ZSTD_freeDCtx(c->zd);
	free(c->planes);
	free(c->huf);
	free(c->sample);
	free(c->zsample);
	free(c);
}

static void put_header(uint8_t *out, int tag, size_t n)
{
	out[0] = (uint8_t)tag;
	out[1] = (uint8_t)n;
	out[2] = (uint8_t)(n >> 8);
	out[3] = (uint8_t)(n >> 16);
	out[4] = (uint8_t)(n >> 24);
}

static void encode_raw(const uint8_t *raw, size_t n, uint8_t *out, size_t *outlen)
{
	put_header(out, CODEC_RAW, n);
	memcpy(out + CODEC_HDR_LEN, raw, n);
	*outlen = n + CODEC_HDR_LEN;
}

/*
 * Split m k-byte elements into k planes of m bytes each: plane j (at
 * dst + j * m) holds byte j of every element.
 */
static void split_planes(const uint8_t *src, size_t m, int k, uint8_t *dst)
{
	size_t i = 0;

	if (k == 2) {
		uint8_t *p0 = dst, *p1 = dst + m;
#if defined(__SSE2__)
		const __m128i lo = _mm_set1_epi16(0x00ff);

		for (; i + 16 <= m; i += 16) {
			__m128i a = _mm_loadu_si128((const __m128i *)(src + 2 * i));
			__m128i b = _mm_loadu_si128((const __m128i *)(src + 2 * i + 16));

			_mm_storeu_si128(
			    (__m128i *)(p0 + i),
			    _mm_packus_epi16(_mm_and_si128(a, lo), _mm_and_si128(b, lo)));
			_mm_storeu_si128(
			    (__m128i *)(p1 + i),
			    _mm_packus_epi16(_mm_srli_epi16(a, 8), _mm_srli_epi16(b, 8)));
		}
#endif
		for (; i < m; i++) {
			p0[i] = src[2 * i];
			p1[i] = src[2 * i + 1];
		}
		return;
	}
	{
		uint8_t *p0 = dst, *p1 = dst + m, *p2 = dst + 2 * m, *p3 = dst + 3 * m;
#if defined(__SSE2__)
		const __m128i lo = _mm_set1_epi16(0x00ff);

		for (; i + 16 <= m; i += 16) {
			const uint8_t *s = src + 4 * i;
			__m128i x0 = _mm_loadu_si128((const __m128i *)s);
			__m128i x1 = _mm_loadu_si128((const __m128i *)(s + 16));
			__m128i x2 = _mm_loadu_si128((const __m128i *)(s + 32));
			__m128i x3 = _mm_loadu_si128((const __m128i *)(s + 48));
			/* Even bytes (0 and 2 of each element) and odd bytes (1 and 3). */
			__m128i e0 = _mm_packus_epi16(_mm_and_si128(x0, lo), _mm_and_si128(x1, lo));
			__m128i e1 = _mm_packus_epi16(_mm_and_si128(x2, lo), _mm_and_si128(x3, lo));
			__m128i o0 = _mm_packus_epi16(_mm_srli_epi16(x0, 8), _mm_srli_epi16(x1, 8));
			__m128i o1 = _mm_packus_epi16(_mm_srli_epi16(x2, 8), _mm_srli_epi16(x3, 8));

			_mm_storeu_si128(
			    (__m128i *)(p0 + i),
			    _mm_packus_epi16(_mm_and_si128(e0, lo), _mm_and_si128(e1, lo)));
			_mm_storeu_si128(
			    (__m128i *)(p2 + i),
			    _mm_packus_epi16(_mm_srli_epi16(e0, 8), _mm_srli_epi16(e1, 8)));
			_mm_storeu_si128(
			    (__m128i *)(p1 + i),
			    _mm_packus_epi16(_mm_and_si128(o0, lo), _mm_and_si128(o1, lo)));
			_mm_storeu_si128(
			    (__m128i *)(p3 + i),
			    _mm_packus_epi16(_mm_srli_epi16(o0, 8), _mm_srli_epi16(o1, 8)));
		}
#endif
		for (; i < m; i++) {
			p0[i] = src[4 * i];
			p1[i] = src[4 * i + 1];
			p2[i] = src[4 * i + 2];
			p3[i] = src[4 * i + 3];
		}
	}
}

/* The inverse of split_planes, with plane j read from p[j]. */
static void merge_planes(const uint8_t *const p[4], size_t m, int k, uint8_t *dst)
{
	size_t i = 0;

	if (k == 2) {
#if defined(__SSE2__)
		for (; i + 16 <= m; i += 16) {
			__m128i a = _mm_loadu_si128((const __m128i *)(p[0] + i));
			__m128i b = _mm_loadu_si128((const __m128i *)(p[1] + i));

			_mm_storeu_si128((__m128i *)(dst + 2 * i), _mm_unpacklo_epi8(a, b));
			_mm_storeu_si128((__m128i *)(dst + 2 * i + 16), _mm_unpackhi_epi8(a, b));
		}
#endif
		for (; i < m; i++) {
			dst[2 * i] = p[0][i];
			dst[2 * i + 1] = p[1][i];
		}
		return;
	}
#if defined(__SSE2__)
	for (; i + 16 <= m; i += 16) {
		__m128i a = _mm_loadu_si128((const __m128i *)(p[0] + i));
		__m128i b = _mm_loadu_si128((const __m128i *)(p[1] + i));
		__m128i c = _mm_loadu_si128((const __m128i *)(p[2] + i));
		__m128i d = _mm_loadu_si128((const __m128i *)(p[3] + i));
		__m128i ab0 = _mm_unpacklo_epi8(a, b), ab1 = _mm_unpackhi_epi8(a, b);
		__m128i cd0 = _mm_unpacklo_epi8(c, d), cd1 = _mm_unpackhi_epi8(c, d);
		uint8_t *o = dst + 4 * i;

		_mm_storeu_si128((__m128i *)o, _mm_unpacklo_epi16(ab0, cd0));
		_mm_storeu_si128((__m128i *)(o + 16), _mm_unpackhi_epi16(ab0, cd0));
		_mm_storeu_si128((__m128i *)(o + 32), _mm_unpacklo_epi16(ab1, cd1));
		_mm_storeu_si128((__m128i *)(o + 48), _mm_unpackhi_epi16(ab1, cd1));
	}
#endif
	for (; i < m; i++) {
		dst[4 * i] = p[0][i];
		dst[4 * i + 1] = p[1][i];
		dst[4 * i + 2] = p[2][i];
		dst[4 * i + 3] = p[3][i];
	}
}

/* log2 to about 0.005, enough for an entropy estimate and far cheaper than log2f. */
static float fast_log2(float x)
{
	union {
		float f;
		uint32_t i;
	} u = {x};
	float e = (float)((int)((u.i >> 23) & 0xff) - 127), m;

	u.i = (u.i & 0x7fffff) | 0x3f800000;
	m = u.f;
	return e + (-0.34484843f * m + 2.02466578f) * m - 0.67487759f;
}

/*
 * Estimated encoded length of a plane of m bytes whose sample histogram is h;
 * *skip is set when coding it would not save PLANE_MIN_SAVING.
 */
static double plane_estimate(const uint32_t h[256], size_t m, uint8_t *skip)
{
	double sum = 0, total = 0, bits;
	unsigned k = 0;

	for (int s = 0; s < 256; s++) {
		if (h[s] == 0)
			continue;
		k++;
		total += h[s];
		sum += h[s] * (double)fast_log2((float)h[s]);
	}
	*skip = 0;
	if (k == 1)
		return 2;
	if (k == 0)
		return 1.0 + (double)m;
	/* Miller-Madow: the plug-in entropy of a sample is biased low by (k-1)/(2N ln 2). */
	bits = fast_log2((float)total) - sum / total + (k - 1) / (2 * total * 0.6931471805599453);
	bits += HUF_LOSS_BITS;
	if (bits >= 8 * (1 - PLANE_MIN_SAVING)) {
		*skip = 1;
		return 1.0 + (double)m;
	}
	return 1 + 32 + (k + 1) / 2 + 16 + (double)m * bits / 8;
}

/*
 * Point *sp at the sample of raw[0..n): the chunk itself when it is small,
 * otherwise slices copied into c->sample. Returns the sample length.
 */
static size_t take_sample(struct codec_ctx *c, const uint8_t *raw, size_t n, const uint8_t **sp)
{
	if (n <= SAMPLE_MAX) {
		*sp = raw;
		return n;
	}
	for (size_t s = 0; s < SAMPLE_SLICES; s++) {
		size_t off = ((n - SAMPLE_SLICE) * s / (SAMPLE_SLICES - 1)) & ~(size_t)3;

		memcpy(c->sample + s * SAMPLE_SLICE, raw + off, SAMPLE_SLICE);
	}
	*sp = c->sample;
	return SAMPLE_MAX;
}

/* Plane estimates for strides 2 and 4 of a chunk of n bytes from its sample. */
static void estimate_planes(const uint8_t *s, size_t slen, size_t n, struct estimate *est)
{
	uint32_t h[4][256], h2[256];
	size_t i = 0;

	memset(h, 0, sizeof(h));
	for (; i + 4 <= slen; i += 4) {
		h[0][s[i]]++;
		h[1][s[i + 1]]++;
		h[2][s[i + 2]]++;
		h[3][s[i + 3]]++;
	}
	for (int k = 2; k <= 4; k += 2) {
		double size = CODEC_HDR_LEN + (double)(n % (size_t)k);

		for (int j = 0; j < k; j++) {
			const uint32_t *hj = h[j];

			if (k == 2) {
				for (int v = 0; v < 256; v++)
					h2[v] = h[j][v] + h[j + 2][v];
				hj = h2;
			}
			size += plane_estimate(hj, n / (size_t)k, &est->skip[k][j]);
		}
		est->size[k] = (size_t)size;
	}
}

/*
 * Encode raw[0..n) as k byte planes into out (room for cap bytes); skip[j]
 * marks planes to store without trying to code them. Returns 0, or 1 when
 * the result would not fit in cap.
 */
static int encode_planes(struct codec_ctx *c, int k, const uint8_t *raw, size_t n,
			 const uint8_t skip[4], uint8_t *out, size_t cap, size_t *outlen)
{
	size_t m = n / (size_t)k, tail = n % (size_t)k, pos = CODEC_HDR_LEN;

	split_planes(raw, m, k, c->planes);
	for (int j = 0; j < k; j++) {
		const uint8_t *plane = c->planes + (size_t)j * m;

		if (!skip[j]) {
			uint32_t hist[256];
			unsigned nsym = 0;
			int last = 0;

			codec__hist(plane, m, hist);
			for (int s = 0; s < 256; s++)
				if (hist[s]) {
					nsym++;
					last = s;
				}
			if (nsym == 1) {
				if (pos + 2 > cap)
					return 1;
				out[pos++] = PLANE_CONST;
				out[pos++] = (uint8_t)last;
				continue;
			}
			if (nsym > 1) {
				struct huf_code hc;
				size_t len;

				codec__huf_build(hist, &hc);
				if (codec__huf_body_bound(hist, &hc) < m && pos + 1 < cap) {
					len = codec__huf_encode(&hc, plane, m, out + pos + 1,
								cap - pos - 1, c->huf);
					if (len == 0)
						return 1;
					out[pos] = PLANE_HUFFMAN;
					pos += 1 + len;
					continue;
				}
			}
		}
		if (pos + 1 + m > cap)
			return 1;
		out[pos++] = PLANE_STORED;
		memcpy(out + pos, plane, m);
		pos += m;
	}
	if (pos + tail > cap)
		return 1;
	memcpy(out + pos, raw + m * (size_t)k, tail);
	put_header(out, k == 2 ? CODEC_PLANE2 : CODEC_PLANE4, n);
	*outlen = pos + tail;
	return 0;
}

/* zstd into out (room for cap bytes). Returns 0, or 1 when it would not fit. */
static int encode_zstd(struct codec_ctx *c, const uint8_t *raw, size_t n, uint8_t *out, size_t cap,
		       size_t *outlen)
{
	size_t z;

	if (cap <= CODEC_HDR_LEN)
		return 1;
	z = ZSTD_compress2(c->zc, out + CODEC_HDR_LEN, cap - CODEC_HDR_LEN, raw, n);
	if (ZSTD_isError(z))
		return 1;
	put_header(out, CODEC_ZSTD, n);
	*outlen = CODEC_HDR_LEN + z;
	return 0;
}

int codec_encode_as(struct codec_ctx *c, int tag, const uint8_t *raw, size_t n, uint8_t *out,
		    size_t *outlen)
{
	/* An encoding must beat raw by a byte to be kept, so cap at raw's size - 1. */
	size_t cap = n + CODEC_HDR_LEN - 1;
	int rc = 1;

	if (n > CHUNK_MAX_SIZE)
		return ferry_errf(FERRY_EINVAL, "chunk of %zu bytes is over the %u-byte limit", n,
				  CHUNK_MAX_SIZE);
	switch (tag) {
	case CODEC_RAW:
		break;
	case CODEC_ZSTD:
		rc = encode_zstd(c, raw, n, out, cap, outlen);
		break;
	case CODEC_PLANE2:
	case CODEC_PLANE4: {
		struct estimate est;
		const uint8_t *s;
		size_t slen = take_sample(c, raw, n, &s);
		int k = tag == CODEC_PLANE2 ? 2 : 4;

		estimate_planes(s, slen, n, &est);
		rc = encode_planes(c, k, raw, n, est.skip[k], out, cap, outlen);
		break;
	}
	default:
		return ferry_errf(FERRY_EINVAL, "unknown codec tag %d", tag);
	}
	if (rc != 0)
		encode_raw(raw, n, out, outlen);
	return 0;
}

int codec_encode(struct codec_ctx *c, const uint8_t *raw, size_t n, uint8_t *out, size_t *outlen)
{
	size_t cap = n + CODEC_HDR_LEN - 1, slen, z, best_plane;
	const uint8_t *s;
	struct estimate est;
	int k;

	if (n > CHUNK_MAX_SIZE)
		return ferry_errf(FERRY_EINVAL, "chunk of %zu bytes is over the %u-byte limit", n,
				  CHUNK_MAX_SIZE);
	if (n < MIN_CODED_LEN) {
		encode_raw(raw, n, out, outlen);
		return 0;
	}
	slen = take_sample(c, raw, n, &s);
	estimate_planes(s, slen, n, &est);
	/* Stride 4 must win by STRIDE4_MARGIN: it has twice the planes to code. */
	k = (double)est.size[4] + STRIDE4_MARGIN * (double)n < (double)est.size[2] ? 4 : 2;
	best_plane = est.size[k];

	z = ZSTD_compress2(c->zc, c->zsample, c->zsample_cap, s, slen);
	if (ZSTD_isError(z))
		z = slen + CODEC_HDR_LEN;
	/* Compare as fractions of the raw size: z / slen against best_plane / n. */
	if ((double)z / (double)slen < (double)best_plane / (double)n + ZSTD_PREFERENCE) {
		if ((double)z > RAW_CUTOFF * (double)slen)
			goto raw;
		if (slen == n) {
			/* The sample was the whole chunk: that is the encoding. */
			if (z + CODEC_HDR_LEN > cap)
				goto raw;
			put_header(out, CODEC_ZSTD, n);
			memcpy(out + CODEC_HDR_LEN, c->zsample, z);
			*outlen = CODEC_HDR_LEN + z;
			return 0;
		}
		if (encode_zstd(c, raw, n, out, cap, outlen) != 0)
			goto raw;
		return 0;
	}
	if ((double)best_plane > RAW_CUTOFF * (double)n)
		goto raw;
	if (encode_planes(c, k, raw, n, est.skip[k], out, cap, outlen) != 0)
		goto raw;
	return 0;
raw:
	encode_raw(raw, n, out, outlen);
	return 0;
}

int codec_peek(const uint8_t *enc, size_t n, int *tag, size_t *raw_len)
{
	uint32_t len;

	if (n < CODEC_HDR_LEN)
		return ferry_errf(FERRY_EFORMAT,
				  "encoded chunk of %zu bytes is shorter than its %d-byte header",
				  n, CODEC_HDR_LEN);
	if (enc[0] >= CODEC__COUNT)
		return ferry_errf(FERRY_EFORMAT, "encoded chunk has unknown codec tag %u", enc[0]);
	len = (uint32_t)enc[1] | (uint32_t)enc[2] << 8 | (uint32_t)enc[3] << 16 |
	      (uint32_t)enc[4] << 24;
	if (len > CHUNK_MAX_SIZE)
		return ferry_errf(
		    FERRY_EFORMAT,
		    "encoded chunk declares a raw length of %u bytes, over the %u-byte "
		    "limit",
		    len, CHUNK_MAX_SIZE);
	*tag = enc[0];
	*raw_len = len;
	return 0;
}

static int decode_zstd(struct codec_ctx *c, const uint8_t *p, size_t plen, uint8_t *raw,
		       size_t raw_len)
{
	unsigned long long fcs;
	size_t fsz, r;

	if (plen < 4 || ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
			 (uint32_t)p[3] << 24) != ZSTD_MAGICNUMBER)
		return ferry_errf(FERRY_EFORMAT, "zstd chunk: payload is not a zstd frame");
	fcs = ZSTD_getFrameContentSize(p, plen);
	if (fcs == ZSTD_CONTENTSIZE_ERROR || fcs == ZSTD_CONTENTSIZE_UNKNOWN)
		return ferry_errf(FERRY_EFORMAT,
				  "zstd chunk: frame does not state its content size");
	if (fcs != raw_len)
		return ferry_errf(FERRY_EFORMAT,
				  "zstd chunk: frame holds %llu bytes but the header says %zu", fcs,
				  raw_len);
	fsz = ZSTD_findFrameCompressedSize(p, plen);
	if (ZSTD_isError(fsz))
		return ferry_errf(FERRY_EFORMAT, "zstd chunk: %s", ZSTD_getErrorName(fsz));
	if (fsz != plen)
		return ferry_errf(FERRY_EFORMAT,
				  "zstd chunk: frame is %zu bytes but the payload is %zu", fsz,
				  plen);
	/* One shot into raw_len bytes: zstd allocates no window and cannot write past them. */
	r = ZSTD_decompressDCtx(c->zd, raw, raw_len, p, plen);
	if (ZSTD_isError(r))
		return ferry_errf(FERRY_EFORMAT, "zstd chunk: %s", ZSTD_getErrorName(r));
	if (r != raw_len)
		return ferry_errf(FERRY_EFORMAT, "zstd chunk: decoded %zu bytes, expected %zu", r,
				  raw_len);
	return 0;
}

static int decode_planes(struct codec_ctx *c, int k, const uint8_t *enc, size_t n, uint8_t *raw,
			 size_t raw_len)
{
	size_t m = raw_len / (size_t)k, tail = raw_len % (size_t)k, pos = CODEC_HDR_LEN;
	const uint8_t *src[4] = {NULL, NULL, NULL, NULL};

	for (int j = 0; j < k; j++) {
		uint8_t *plane = c->planes + (size_t)j * m;
		size_t used;
		int rc;

		if (pos >= n)
			return ferry_errf(FERRY_EFORMAT, "plane%d chunk: plane %d is missing", k,
					  j);
		switch (enc[pos++]) {
		case PLANE_STORED:
			if (n - pos < m)
				return ferry_errf(FERRY_EFORMAT,
						  "plane%d chunk: stored plane %d needs %zu bytes, "
						  "%zu left",
						  k, j, m, n - pos);
			src[j] = enc + pos;
			pos += m;
			break;
		case PLANE_CONST:
			if (pos >= n)
				return ferry_errf(FERRY_EFORMAT,
						  "plane%d chunk: constant plane %d has no value",
						  k, j);
			memset(plane, enc[pos++], m);
			src[j] = plane;
			break;
		case PLANE_HUFFMAN:
			rc = codec__huf_decode(enc + pos, n - pos, plane, m, &used);
			if (rc != 0)
				return ferry_errf(rc, "plane%d chunk, plane %d: %s", k, j,
						  ferry_errmsg(rc));
			src[j] = plane;
			pos += used;
			break;
		default:
			return ferry_errf(FERRY_EFORMAT,
					  "plane%d chunk: plane %d has unknown mode %u", k, j,
					  enc[pos - 1]);
		}
	}
	if (n - pos != tail)
		return ferry_errf(FERRY_EFORMAT,
				  "plane%d chunk: %zu bytes after the planes, expected %zu", k,
				  n - pos, tail);
	merge_planes(src, m, k, raw);
	memcpy(raw + m * (size_t)k, enc + pos, tail);
	return 0;
}

int codec_decode(struct codec_ctx *c, const uint8_t *enc, size_t n, uint8_t *raw, size_t cap,
		 size_t *raw_len)
{
	size_t len = 0;
	int tag = CODEC_RAW, rc;

	rc = codec_peek(enc, n, &tag, &len);
	if (rc != 0)
		return rc;
	if (len > cap)
		return ferry_errf(
		    FERRY_ETOOBIG,
		    "encoded chunk declares %zu raw bytes, more than the %zu-byte buffer", len,
		    cap);
	switch (tag) {
	case CODEC_RAW:
		if (n - CODEC_HDR_LEN != len)
			return ferry_errf(FERRY_EFORMAT,
					  "raw chunk: payload is %zu bytes but the header says %zu",
					  n - CODEC_HDR_LEN, len);
		memcpy(raw, enc + CODEC_HDR_LEN, len);
		break;
	case CODEC_ZSTD:
		rc = decode_zstd(c, enc + CODEC_HDR_LEN, n - CODEC_HDR_LEN, raw, len);
		break;
	default:
		rc = decode_planes(c, tag == CODEC_PLANE2 ? 2 : 4, enc, n, raw, len);
		break;
	}
	if (rc != 0)
		return rc;
	*raw_len = len;
	return 0;
}
