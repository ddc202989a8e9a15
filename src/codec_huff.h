/*
 * Internal to the codec module: the order-0 entropy coder used on byte
 * planes. A canonical Huffman code limited to HUF_MAX_BITS bits per symbol,
 * its lengths sent as a compact table, the plane cut into four segments
 * coded as four bit streams so that encoder and decoder run four
 * independent dependency chains. The body format is in docs/formats.md
 * ("Chunk encoding").
 *
 * Glossary: a *plane* is the m bytes being coded; a *stream* is one of the
 * four bit strings, stream j holding the j-th segment of ceil(m / 4)
 * symbols (the last segments may be shorter or empty).
 */
#ifndef FERRY_CODEC_HUFF_H
#define FERRY_CODEC_HUFF_H

#include <stddef.h>
#include <stdint.h>

#define HUF_MAX_BITS 11
#define HUF_STREAMS  4

/* A code: bit length per byte value (0 = absent) and the code bits in the order they are sent. */
struct huf_code {
	uint8_t len[256];
	uint16_t bits[256];
	unsigned nsym;
};

/* Count the byte values of src[0..n) into hist (overwritten). */
void codec__hist(const uint8_t *src, size_t n, uint32_t hist[256]);

/*
 * Build a length-limited canonical code for hist, which must have at least
 * two non-zero counts.
 */
void codec__huf_build(const uint32_t hist[256], struct huf_code *hc);

/*
 * An upper bound on the size of the body codec__huf_encode() writes for a
 * plane with histogram hist (table, stream lengths and streams), exact to
 * within HUF_STREAMS bytes.
 */
size_t codec__huf_body_bound(const uint32_t hist[256], const struct huf_code *hc);

/* Bytes of scratch codec__huf_encode() needs for a plane of m bytes. */
size_t codec__huf_scratch_size(size_t m);

/*
 * Encode the m bytes of src with hc into out, which has room for cap bytes,
 * using scratch (codec__huf_scratch_size(m) bytes). Returns the body length,
 * or 0 if it would not fit in cap.
 */
size_t codec__huf_encode(const struct huf_code *hc, const uint8_t *src, size_t m, uint8_t *out,
			 size_t cap, uint8_t *scratch);

/*
 * Decode a body from in[0..n) into exactly m bytes at dst; *used is the
 * number of input bytes the body took. Untrusted input: 0, or FERRY_EFORMAT
 * with a detail; never reads or writes out of bounds.
 */
int codec__huf_decode(const uint8_t *in, size_t n, uint8_t *dst, size_t m, size_t *used);

#endif
