/*
 * Order-0 canonical Huffman coder for byte planes; see src/codec_huff.h and
 * docs/formats.md ("Chunk encoding").
 *
 * Codes are packed as DEFLATE packs them (RFC 1951, 3.1.1): bit strings are
 * filled from the least significant bit of each byte, and a code is sent
 * starting with its most significant bit, so the encoder keeps each code bit
 * reversed and the decoder indexes its table with the next HUF_MAX_BITS bits
 * as they come. Both sides move 64 bits at a time: the encoder can add five
 * 11-bit codes to a 64-bit register holding up to 7 pending bits before it
 * must store, and the decoder gets at least 57 bits, enough for five codes,
 * from one unaligned load at its bit position.
 */
#include "config.h"

#include <string.h>

#include "codec_huff.h"
#include "ferry/error.h"
#include "ferry/util.h"

#define HUF_TABLE_MAX  (1u << HUF_MAX_BITS)
#define HUF_BITMAP_LEN 32
#define HUF_SLEN_LEN   (4 * HUF_STREAMS)

static uint64_t load64le(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	v = __builtin_bswap64(v);
#endif
	return v;
}

static void store64le(uint8_t *p, uint64_t v)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	v = __builtin_bswap64(v);
#endif
	memcpy(p, &v, 8);
}

static uint32_t get32le(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put32le(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

void codec__hist(const uint8_t *src, size_t n, uint32_t hist[256])
{
	/* Four sub-tables so runs of one value do not serialize on one counter. */
	uint32_t h[4][256];
	size_t i = 0;

	memset(h, 0, sizeof(h));
	for (; i + 8 <= n; i += 8) {
		uint64_t v = load64le(src + i);

		h[0][v & 0xff]++;
		h[1][(v >> 8) & 0xff]++;
		h[2][(v >> 16) & 0xff]++;
		h[3][(v >> 24) & 0xff]++;
		h[0][(v >> 32) & 0xff]++;
		h[1][(v >> 40) & 0xff]++;
		h[2][(v >> 48) & 0xff]++;
		h[3][v >> 56]++;
	}
	for (; i < n; i++)
		h[0][src[i]]++;
	for (int s = 0; s < 256; s++)
		hist[s] = h[0][s] + h[1][s] + h[2][s] + h[3][s];
}

/* Shell sort (Ciura's gaps); at most 256 keys, so no need for more. */
static void sort_keys(uint64_t *a, unsigned n)
{
	static const unsigned gaps[] = {132, 57, 23, 10, 4, 1};

	for (size_t g = 0; g < sizeof(gaps) / sizeof(gaps[0]); g++) {
		unsigned gap = gaps[g];

		for (unsigned i = gap; i < n; i++) {
			uint64_t v = a[i];
			unsigned j = i;

			for (; j >= gap && a[j - gap] > v; j -= gap)
				a[j] = a[j - gap];
			a[j] = v;
		}
	}
}

/*
 * Bring lengths over HUF_MAX_BITS down to it, then restore the Kraft sum to
 * exactly 1 (a complete code, which the decoder requires): lengthen the
 * rarest of the longest codes still below the limit while the sum is over 1,
 * then shorten the most frequent code whose shortening still fits while it is
 * under. The second loop always finds one: the sum is a multiple of the
 * deepest code's weight. order[] holds the symbols by increasing count.
 */
static void limit_lengths(uint8_t len[256], const uint8_t *order, unsigned k)
{
	const uint32_t full = HUF_TABLE_MAX;
	uint32_t kraft = 0;

	for (unsigned i = 0; i < k; i++) {
		if (len[order[i]] > HUF_MAX_BITS)
			len[order[i]] = HUF_MAX_BITS;
		kraft += full >> len[order[i]];
	}
	while (kraft > full) {
		int best = -1;

		for (unsigned i = 0; i < k; i++) {
			uint8_t s = order[i];

			if (len[s] < HUF_MAX_BITS && (best < 0 || len[s] > len[best]))
				best = s;
		}
		kraft -= full >> (len[best] + 1);
		len[best]++;
	}
	while (kraft < full) {
		for (unsigned i = k; i-- > 0;) {
			uint8_t s = order[i];

			if (len[s] > 1 && (full >> len[s]) <= full - kraft) {
				kraft += full >> len[s];
				len[s]--;
				break;
			}
		}
	}
}

/* Assign canonical codes (RFC 1951, 3.2.2) from len, bit-reversed for sending. */
static void assign_codes(struct huf_code *hc)
{
	unsigned count[HUF_MAX_BITS + 1] = {0}, next[HUF_MAX_BITS + 2];
	unsigned code = 0;

	for (int s = 0; s < 256; s++)
		count[hc->len[s]]++;
	count[0] = 0;
	for (int l = 1; l <= HUF_MAX_BITS; l++) {
		code = (code + count[l - 1]) << 1;
		next[l] = code;
	}
	for (int s = 0; s < 256; s++) {
		unsigned l = hc->len[s], c, r = 0;

		if (l == 0) {
			hc->bits[s] = 0;
			continue;
		}
		c = next[l]++;
		for (unsigned b = 0; b < l; b++)
			r |= ((c >> b) & 1u) << (l - 1 - b);
		hc->bits[s] = (uint16_t)r;
	}
}

void codec__huf_build(const uint32_t hist[256], struct huf_code *hc)
{
	uint64_t key[256], w[511];
	uint16_t parent[511];
	uint8_t depth[511], order[256];
	unsigned k = 0, leaf = 0, node, next, maxlen = 0;

	for (int s = 0; s < 256; s++)
		if (hist[s])
			key[k++] = (uint64_t)hist[s] << 8 | (unsigned)s;
	sort_keys(key, k);

	/* Two-queue Huffman: leaves by weight, internal nodes in creation order. */
	for (unsigned i = 0; i < k; i++) {
		w[i] = key[i] >> 8;
		order[i] = (uint8_t)key[i];
	}
	node = k;
	for (next = k; next < 2 * k - 1; next++) {
		unsigned pick[2];

		for (int t = 0; t < 2; t++) {
			if (leaf < k && (node >= next || w[leaf] <= w[node]))
				pick[t] = leaf++;
			else
				pick[t] = node++;
		}
		w[next] = w[pick[0]] + w[pick[1]];
		parent[pick[0]] = parent[pick[1]] = (uint16_t)next;
	}
	depth[2 * k - 2] = 0;
	for (unsigned i = 2 * k - 2; i-- > 0;)
		depth[i] = (uint8_t)(depth[parent[i]] + 1);

	memset(hc->len, 0, sizeof(hc->len));
	for (unsigned i = 0; i < k; i++) {
		hc->len[order[i]] = depth[i];
		maxlen = depth[i] > maxlen ? depth[i] : maxlen;
	}
	if (maxlen > HUF_MAX_BITS)
		limit_lengths(hc->len, order, k);
	hc->nsym = k;
	assign_codes(hc);
}

static size_t table_size(unsigned nsym)
{
	return HUF_BITMAP_LEN + (nsym + 1) / 2 + HUF_SLEN_LEN;
}

size_t codec__huf_body_bound(const uint32_t hist[256], const struct huf_code *hc)
{
	uint64_t bits = 0;

	for (int s = 0; s < 256; s++)
		bits += (uint64_t)hist[s] * hc->len[s];
	return table_size(hc->nsym) + (size_t)((bits + 7) / 8) + HUF_STREAMS;
}

static size_t stream_region(size_t m)
{
	size_t q = (m + HUF_STREAMS - 1) / HUF_STREAMS;

	return (q * HUF_MAX_BITS + 7) / 8 + 16;
}

size_t codec__huf_scratch_size(size_t m)
{
	return HUF_STREAMS * stream_region(m);
}

/* Write the bitmap of present values and their lengths, 4 bits each, low nibble first. */
static size_t write_table(const struct huf_code *hc, uint8_t *out)
{
	size_t pos = HUF_BITMAP_LEN;
	unsigned half = 0;

	memset(out, 0, HUF_BITMAP_LEN);
	for (int s = 0; s < 256; s++) {
		if (hc->len[s] == 0)
			continue;
		out[s / 8] |= (uint8_t)(1u << (s % 8));
		if (half == 0)
			out[pos] = hc->len[s];
		else
			out[pos++] |= (uint8_t)(hc->len[s] << 4);
		half ^= 1;
	}
	return pos + half;
}

/* Symbols in stream j of a plane of m bytes: the j-th of four equal segments, the last shorter. */
static size_t seg_count(size_t m, int j)
{
	size_t seg = (m + HUF_STREAMS - 1) / HUF_STREAMS, lo = (size_t)j * seg;

	return lo >= m ? 0 : MIN(seg, m - lo);
}

#define PUT(j, sym)                                                                                \
	do {                                                                                       \
		uint32_t e_ = ent[(sym)];                                                          \
		b##j |= (uint64_t)(e_ & 0xffff) << n##j;                                           \
		n##j += e_ >> 16;                                                                  \
	} while (0)
#define FLUSH(j)                                                                                   \
	do {                                                                                       \
		store64le(p##j, b##j);                                                             \
		p##j += n##j >> 3;                                                                 \
		b##j >>= n##j & 56;                                                                \
		n##j &= 7;                                                                         \
	} while (0)

/* A bit writer: b holds n (< 8 between symbols) bits not yet stored at p. */
struct bitwr {
	uint8_t *p;
	uint64_t b;
	unsigned n;
};

/*
 * Encode two streams side by side, symbols sa[0..count) to wa and
 * sb[0..count) to wb: two writers at a time stay in registers, four do not.
 */
static void encode_pair(const uint32_t ent[256], const uint8_t *sa, const uint8_t *sb, size_t count,
			struct bitwr *wa, struct bitwr *wb)
{
	uint8_t *p0 = wa->p, *p1 = wb->p;
	uint64_t b0 = wa->b, b1 = wb->b;
	unsigned n0 = wa->n, n1 = wb->n;
	size_t i = 0;

	/* Five symbols per stream between stores: 7 pending + 5 x 11 bits fit in 64. */
	for (; i + 5 <= count; i += 5) {
		for (int k = 0; k < 5; k++) {
			PUT(0, sa[i + (size_t)k]);
			PUT(1, sb[i + (size_t)k]);
		}
		FLUSH(0);
		FLUSH(1);
	}
	for (; i < count; i++) {
		PUT(0, sa[i]);
		PUT(1, sb[i]);
		FLUSH(0);
		FLUSH(1);
	}
	*wa = (struct bitwr){p0, b0, n0};
	*wb = (struct bitwr){p1, b1, n1};
}

/* Encode s[from..to) to w, then store its last bits; returns the end of the stream. */
static uint8_t *encode_rest(const uint32_t ent[256], const uint8_t *s, size_t from, size_t to,
			    struct bitwr *w)
{
	uint8_t *p0 = w->p;
	uint64_t b0 = w->b;
	unsigned n0 = w->n;

	for (size_t i = from; i < to; i++) {
		PUT(0, s[i]);
		FLUSH(0);
	}
	store64le(p0, b0);
	return p0 + (n0 + 7) / 8;
}

size_t codec__huf_encode(const struct huf_code *hc, const uint8_t *src, size_t m, uint8_t *out,
			 size_t cap, uint8_t *scratch)
{
	uint32_t ent[256];
	size_t region = stream_region(m), seg = (m + HUF_STREAMS - 1) / HUF_STREAMS;
	size_t common = seg_count(m, HUF_STREAMS - 1), tlen, pos, slen[HUF_STREAMS];
	size_t total = 0;
	uint8_t *start[HUF_STREAMS];
	struct bitwr w[HUF_STREAMS];

	for (int s = 0; s < 256; s++)
		ent[s] = hc->bits[s] | (uint32_t)hc->len[s] << 16;
	for (int j = 0; j < HUF_STREAMS; j++) {
		start[j] = scratch + (size_t)j * region;
		w[j] = (struct bitwr){start[j], 0, 0};
	}
	/* All four segments hold `common` symbols; the first ones may hold a few more. */
	encode_pair(ent, src, src + seg, common, &w[0], &w[1]);
	encode_pair(ent, src + 2 * seg, src + 3 * seg, common, &w[2], &w[3]);
	for (int j = 0; j < HUF_STREAMS; j++) {
		uint8_t *end =
		    encode_rest(ent, src + (size_t)j * seg, common, seg_count(m, j), &w[j]);

		slen[j] = (size_t)(end - start[j]);
	}

	for (int j = 0; j < HUF_STREAMS; j++)
		total += slen[j];
	tlen = table_size(hc->nsym);
	if (tlen + total > cap)
		return 0;
	pos = write_table(hc, out);
	for (int j = 0; j < HUF_STREAMS; j++, pos += 4)
		put32le(out + pos, (uint32_t)slen[j]);
	for (int j = 0; j < HUF_STREAMS; j++) {
		memcpy(out + pos, start[j], slen[j]);
		pos += slen[j];
	}
	return pos;
}

#undef PUT
#undef FLUSH

/*
 * Decoding tables, indexed by the next HUF_MAX_BITS bits of a stream (first
 * bit lowest). t1[x] is one symbol | its length << 8. t3[x] holds up to
 * three symbols (bytes 0..2) whose codes all lie within those bits, their
 * number in bits 24..25 and their total length in bits 26..31: one lookup
 * then decodes several of the short codes that dominate an exponent plane.
 */
struct huf_dtable {
	uint16_t t1[HUF_TABLE_MAX];
	uint32_t t3[HUF_TABLE_MAX];
};

/* Read a code table from in[0..n) and build the decoding tables. */
static int read_table(const uint8_t *in, size_t n, struct huf_dtable *dt, size_t *used)
{
	uint8_t len[256], syms[256];
	unsigned nsym = 0, count[HUF_MAX_BITS + 1] = {0}, next[HUF_MAX_BITS + 2], code = 0;
	uint32_t kraft = 0;
	size_t pos = HUF_BITMAP_LEN;

	if (n < HUF_BITMAP_LEN)
		return ferry_errf(FERRY_EFORMAT,
				  "huffman table: %zu bytes left, need %d for the bitmap", n,
				  HUF_BITMAP_LEN);
	for (int s = 0; s < 256; s++)
		if (in[s / 8] & (1u << (s % 8)))
			syms[nsym++] = (uint8_t)s;
	if (nsym < 2)
		return ferry_errf(FERRY_EFORMAT, "huffman table: %u symbol(s), need at least 2",
				  nsym);
	if (n - pos < (nsym + 1) / 2)
		return ferry_errf(FERRY_EFORMAT, "huffman table: truncated code lengths");
	memset(len, 0, sizeof(len));
	for (unsigned i = 0; i < nsym; i++) {
		unsigned l = (in[pos + i / 2] >> (4 * (i % 2))) & 0xf;

		if (l == 0 || l > HUF_MAX_BITS)
			return ferry_errf(FERRY_EFORMAT, "huffman table: symbol %u has length %u",
					  (unsigned)syms[i], l);
		len[syms[i]] = (uint8_t)l;
		count[l]++;
		kraft += HUF_TABLE_MAX >> l;
	}
	pos += (nsym + 1) / 2;
	if (kraft != HUF_TABLE_MAX)
		return ferry_errf(FERRY_EFORMAT,
				  "huffman table: code lengths are not a complete code (Kraft sum "
				  "%u/%u)",
				  kraft, HUF_TABLE_MAX);

	for (unsigned l = 1; l <= HUF_MAX_BITS; l++) {
		code = (code + count[l - 1]) << 1;
		next[l] = code;
	}
	for (unsigned i = 0; i < nsym; i++) {
		unsigned s = syms[i], l = len[s], c = next[l]++, r = 0;

		for (unsigned b = 0; b < l; b++)
			r |= ((c >> b) & 1u) << (l - 1 - b);
		for (unsigned x = r; x < HUF_TABLE_MAX; x += 1u << l)
			dt->t1[x] = (uint16_t)(s | l << 8);
	}
	/*
	 * A later code is decoded from x shifted right, whose top bits are
	 * zeros rather than stream bits; it is kept only if it lies wholly
	 * within the HUF_MAX_BITS bits that are known.
	 */
	for (unsigned x = 0; x < HUF_TABLE_MAX; x++) {
		uint32_t syms3 = 0, bits = 0, k = 0;

		while (k < 3) {
			unsigned e = dt->t1[x >> bits], l = e >> 8;

			if (bits + l > HUF_MAX_BITS)
				break;
			syms3 |= (e & 0xffu) << (8 * k);
			bits += l;
			k++;
		}
		dt->t3[x] = syms3 | k << 24 | bits << 26;
	}
	*used = pos;
	return 0;
}

static void store32le(uint8_t *p, uint32_t v)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	v = __builtin_bswap32(v);
#endif
	memcpy(p, &v, 4);
}

/*
 * Stream j is in[start[j] .. end[j]) (byte offsets); bp[j] is the position of
 * its next bit, counted in bits from in; it writes out[j] up to oend[j].
 */
struct streams {
	size_t start[HUF_STREAMS], end[HUF_STREAMS];
	uint64_t bp[HUF_STREAMS];
	uint8_t *out[HUF_STREAMS], *oend[HUF_STREAMS];
};

/*
 * How many fast rounds every stream can take without loading past its end
 * or writing past its segment: a round loads 8 bytes at bp / 8, advances at
 * most 5 x 11 bits (7 bytes) and writes at most 5 x 3 symbols plus 1 byte.
 */
static size_t safe_rounds(const struct streams *st)
{
	size_t r = SIZE_MAX;

	for (int j = 0; j < HUF_STREAMS; j++) {
		size_t at = (size_t)(st->bp[j] / 8), room = (size_t)(st->oend[j] - st->out[j]);

		if (at + 8 > st->end[j] || room < 16)
			return 0;
		r = MIN(r, (st->end[j] - at - 8) / 7 + 1);
		r = MIN(r, (room - 16) / 15 + 1);
	}
	return r;
}

/* Decode up to three symbols of stream j; writes 4 bytes at its output. */
#define LOOK(j)                                                                                    \
	do {                                                                                       \
		uint32_t e_ = t3[v##j & (HUF_TABLE_MAX - 1)];                                      \
		store32le(o##j, e_);                                                               \
		v##j >>= e_ >> 26;                                                                 \
		bp##j += e_ >> 26;                                                                 \
		o##j += (e_ >> 24) & 3;                                                            \
	} while (0)
#define LOAD(j) uint64_t v##j = load64le(in + (bp##j >> 3)) >> (bp##j & 7)

/*
 * Fast rounds: one load (>= 57 bits) then five lookups of <= 11 bits per
 * stream, the four streams interleaved. The state lives in locals so that it
 * stays in registers.
 */
static void decode_fast(const struct huf_dtable *dtp, const uint8_t *in, struct streams *st)
{
	const uint32_t *t3 = dtp->t3;
	uint64_t bp0 = st->bp[0], bp1 = st->bp[1], bp2 = st->bp[2], bp3 = st->bp[3];
	uint8_t *o0 = st->out[0], *o1 = st->out[1], *o2 = st->out[2], *o3 = st->out[3];
	size_t r;

	while ((r = safe_rounds(st)) > 0) {
		for (; r > 0; r--) {
			LOAD(0);
			LOAD(1);
			LOAD(2);
			LOAD(3);

			for (int i = 0; i < 5; i++) {
				LOOK(0);
				LOOK(1);
				LOOK(2);
				LOOK(3);
			}
		}
		st->bp[0] = bp0;
		st->bp[1] = bp1;
		st->bp[2] = bp2;
		st->bp[3] = bp3;
		st->out[0] = o0;
		st->out[1] = o1;
		st->out[2] = o2;
		st->out[3] = o3;
	}
}

#undef LOOK
#undef LOAD

/* Decode the rest of stream j a symbol at a time; bytes past its end read as zeros. */
static void decode_rest(const struct huf_dtable *dt, const uint8_t *in, struct streams *st, int j)
{
	uint64_t bp = st->bp[j];
	uint8_t *o = st->out[j];

	while (o < st->oend[j]) {
		size_t at = (size_t)(bp / 8);
		uint32_t v = 0;
		unsigned e;

		for (unsigned k = 0; k < 3; k++)
			if (at + k < st->end[j])
				v |= (uint32_t)in[at + k] << (8 * k);
		e = dt->t1[(v >> (bp & 7)) & (HUF_TABLE_MAX - 1)];
		*o++ = (uint8_t)e;
		bp += e >> 8;
	}
	st->bp[j] = bp;
	st->out[j] = o;
}

int codec__huf_decode(const uint8_t *in, size_t n, uint8_t *dst, size_t m, size_t *used)
{
	struct huf_dtable dt;
	struct streams st;
	size_t pos = 0, seg = (m + HUF_STREAMS - 1) / HUF_STREAMS;
	int rc;

	rc = read_table(in, n, &dt, &pos);
	if (rc != 0)
		return rc;
	if (n - pos < HUF_SLEN_LEN)
		return ferry_errf(FERRY_EFORMAT, "huffman body: truncated stream lengths");
	for (int j = 0; j < HUF_STREAMS; j++) {
		size_t slen = get32le(in + pos + 4 * (size_t)j);

		st.start[j] = j == 0 ? pos + HUF_SLEN_LEN : st.end[j - 1];
		st.end[j] = st.start[j] + slen;
		if (st.end[j] > n)
			return ferry_errf(FERRY_EFORMAT,
					  "huffman stream %d: %zu bytes from byte %zu run past the "
					  "%zu-byte body",
					  j, slen, st.start[j], n);
		st.bp[j] = 8 * (uint64_t)st.start[j];
		st.out[j] = dst + MIN((size_t)j * seg, m);
		st.oend[j] = st.out[j] + seg_count(m, j);
	}

	decode_fast(&dt, in, &st);
	for (int j = 0; j < HUF_STREAMS; j++)
		decode_rest(&dt, in, &st, j);

	/* Each stream must end in its last byte: no overrun, no unused bytes. */
	for (int j = 0; j < HUF_STREAMS; j++) {
		uint64_t consumed = st.bp[j] - 8 * (uint64_t)st.start[j];

		if ((consumed + 7) / 8 != st.end[j] - st.start[j])
			return ferry_errf(
			    FERRY_EFORMAT,
			    "huffman stream %d: the symbols take %llu bits but the stream "
			    "has %zu bytes",
			    j, (unsigned long long)consumed, st.end[j] - st.start[j]);
	}
	*used = st.end[HUF_STREAMS - 1];
	return 0;
}
