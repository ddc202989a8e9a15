/*
 * Chunk encoding. An encoded chunk is self-describing:
 *
 *   byte 0      codec tag (enum codec_tag)
 *   bytes 1..4  raw length, uint32 little-endian (<= CHUNK_MAX_SIZE)
 *   bytes 5..   payload, whose form depends on the tag
 *
 * The publisher encodes each chunk once with whichever codec is smallest;
 * every node decodes every codec. The exact payload forms are in
 * docs/formats.md.
 */
#ifndef FERRY_CODEC_H
#define FERRY_CODEC_H

#include <stddef.h>
#include <stdint.h>

enum codec_tag {
	CODEC_RAW = 0,	  /* payload is the raw bytes */
	CODEC_ZSTD = 1,	  /* payload is one zstd frame */
	CODEC_PLANE2 = 2, /* 2-byte elements split into byte planes, each entropy coded */
	CODEC_PLANE4 = 3, /* 4-byte elements split into byte planes, each entropy coded */
	CODEC__COUNT
};

#define CODEC_HDR_LEN 5

/* Largest encoded size for a raw chunk of raw_len bytes (raw + header at worst). */
size_t codec_bound(size_t raw_len);

/* Name of a tag ("raw", "zstd", "plane2", "plane4"); "?" for unknown. */
const char *codec_name(int tag);

/*
 * Per-thread scratch state (compression contexts, plane buffers). Not
 * thread-safe: use one per thread. codec_ctx_free(NULL) is a no-op.
 */
struct codec_ctx;
struct codec_ctx *codec_ctx_new(void);
void codec_ctx_free(struct codec_ctx *c);

/*
 * Encode raw[0..n) (n <= CHUNK_MAX_SIZE) into out, which has room for
 * codec_bound(n) bytes; choose the smallest codec. *outlen is the encoded
 * length including the header, and is never more than n + CODEC_HDR_LEN.
 * Returns 0 or FERRY_EINVAL (n too large). The choice is predicted from a
 * sample of the chunk, then the chunk is encoded once (rule: src/codec.c and
 * docs/formats.md); on the data we tested it is within 1% of the smallest.
 */
int codec_encode(struct codec_ctx *c, const uint8_t *raw, size_t n, uint8_t *out, size_t *outlen);

/*
 * Encode with one given codec (tests, benchmarks, index pieces use CODEC_RAW).
 * Same contract as codec_encode. When that codec would not come out smaller
 * than raw, the chunk is stored raw instead: out[0] holds the tag used.
 */
int codec_encode_as(struct codec_ctx *c, int tag, const uint8_t *raw, size_t n, uint8_t *out,
		    size_t *outlen);

/*
 * Read the header of an encoded chunk. 0, or FERRY_EFORMAT if it is too short,
 * has an unknown tag or a raw length over CHUNK_MAX_SIZE.
 */
int codec_peek(const uint8_t *enc, size_t n, int *tag, size_t *raw_len);

/*
 * Decode enc[0..n) into raw, which has room for cap bytes. *raw_len is the
 * decoded length. Untrusted input: any garbage yields FERRY_EFORMAT (with a
 * detail) and never reads or writes out of bounds; a raw length over cap
 * yields FERRY_ETOOBIG. Decoding does not check the chunk id; callers hash.
 */
int codec_decode(struct codec_ctx *c, const uint8_t *enc, size_t n, uint8_t *raw, size_t cap,
		 size_t *raw_len);

#endif
