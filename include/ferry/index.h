/*
 * Chunk index pieces. A file's chunk index is the ordered list of its chunks
 * (id, raw length, codec, encoded length), cut into pieces of at most
 * INDEX_PIECE_MAX encoded bytes. A piece is stored and moved like a chunk:
 * its id is the BLAKE2b-256 of its bytes, and it is stored CODEC_RAW-encoded
 * in the chunks database. The layout is in docs/formats.md.
 */
#ifndef FERRY_INDEX_H
#define FERRY_INDEX_H

#include <stddef.h>
#include <stdint.h>

#define INDEX_PIECE_MAX (1024u * 1024u)

/*
 * The piece layout: a header (magic "FIDX", format, entry count), then
 * fixed-size entries (id, codec, raw length, encoded length). Every piece
 * but a file's last holds exactly INDEX_PIECE_ENTRIES entries.
 */
#define INDEX_FORMAT	    1
#define INDEX_HDR_LEN	    12
#define INDEX_ENTRY_LEN	    41
#define INDEX_PIECE_ENTRIES ((INDEX_PIECE_MAX - INDEX_HDR_LEN) / INDEX_ENTRY_LEN)

struct chunk_ref {
	uint8_t id[32];	  /* BLAKE2b-256 of the raw bytes */
	uint32_t raw_len; /* raw length, 1..CHUNK_MAX_SIZE */
	uint32_t enc_len; /* encoded length including the codec header */
	uint8_t codec;	  /* enum codec_tag */
};

struct index_piece {
	uint8_t id[32];
	uint8_t *bytes; /* malloc'd */
	size_t len;
};

/*
 * Cut refs[0..n) into pieces. *pieces (and each piece's bytes) is malloc'd and
 * owned by the caller: free with index_pieces_free(). A file with no chunks
 * (empty) has zero pieces (*pieces is NULL). FERRY_EINVAL, naming the entry,
 * if a ref is out of the ranges index_decode() accepts.
 */
int index_encode(const struct chunk_ref *refs, size_t n, struct index_piece **pieces,
		 size_t *npieces);
void index_pieces_free(struct index_piece *pieces, size_t npieces);

/*
 * Decode one piece (untrusted bytes). On success *refs is malloc'd (owned by
 * the caller) with *nrefs entries (at least one); every entry has been
 * range-checked: raw length 1..CHUNK_MAX_SIZE, a known codec, an encoded
 * length of at most raw length + CODEC_HDR_LEN (exactly that for CODEC_RAW).
 * FERRY_EFORMAT with a detail on anything malformed; FERRY_EVERSION for a
 * piece of a format this code does not know.
 */
int index_decode(const uint8_t *bytes, size_t len, struct chunk_ref **refs, size_t *nrefs);

#endif
