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
 * (empty) has zero pieces.
 */
int index_encode(const struct chunk_ref *refs, size_t n, struct index_piece **pieces,
		 size_t *npieces);
void index_pieces_free(struct index_piece *pieces, size_t npieces);

/*
 * Decode one piece (untrusted bytes). On success *refs is malloc'd (owned by
 * the caller) with *nrefs entries; every entry has been range-checked.
 * FERRY_EFORMAT with a detail on anything malformed.
 */
int index_decode(const uint8_t *bytes, size_t len, struct chunk_ref **refs, size_t *nrefs);

#endif
