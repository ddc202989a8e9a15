/*
 * Chunk index pieces; see include/ferry/index.h and docs/formats.md.
 *
 * A piece is a fixed-size binary record list rather than msgpack: every
 * entry has the same four fields, so fixed offsets make decoding a bounds
 * check on the total length plus a loop with no per-field branches, and one
 * list has exactly one encoding (so one set of piece ids).
 *
 *   0   4  magic "FIDX"
 *   4   4  format, uint32 little-endian (1)
 *   8   4  entry count, uint32 little-endian (1..INDEX_PIECE_ENTRIES)
 *   12  41 x count entries:
 *        0  32  chunk id (BLAKE2b-256 of the raw bytes)
 *        32  1  codec tag
 *        33  4  raw length, uint32 little-endian
 *        37  4  encoded length (with the codec header), uint32 little-endian
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "ferry/chunker.h"
#include "ferry/codec.h"
#include "ferry/error.h"
#include "ferry/fcrypto.h"
#include "ferry/index.h"
#include "ferry/util.h"

static const uint8_t magic[4] = {'F', 'I', 'D', 'X'};

static inline void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static inline uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The range checks shared by encoding (our own refs) and decoding (a peer's). */
static int ref_check(const struct chunk_ref *c, size_t i, int code)
{
	char id[ID_SHORT_LEN];

	if (c->raw_len == 0 || c->raw_len > CHUNK_MAX_SIZE)
		return ferry_errf(code, "index entry %zu (chunk %s): raw length %u is not in 1..%u",
				  i, id_short(id, c->id), c->raw_len, CHUNK_MAX_SIZE);
	if (c->codec >= CODEC__COUNT)
		return ferry_errf(code, "index entry %zu (chunk %s): unknown codec %u", i,
				  id_short(id, c->id), c->codec);
	if (c->enc_len <= CODEC_HDR_LEN || c->enc_len > c->raw_len + CODEC_HDR_LEN ||
	    (c->codec == CODEC_RAW && c->enc_len != c->raw_len + CODEC_HDR_LEN))
		return ferry_errf(code,
				  "index entry %zu (chunk %s): encoded length %u does not fit "
				  "raw length %u with codec %u",
				  i, id_short(id, c->id), c->enc_len, c->raw_len, c->codec);
	return 0;
}

int index_encode(const struct chunk_ref *refs, size_t n, struct index_piece **pieces,
		 size_t *npieces)
{
	struct index_piece *out;
	size_t np, i, k;
	int err;

	*pieces = NULL;
	*npieces = 0;
	for (i = 0; i < n; i++)
		if ((err = ref_check(&refs[i], i, FERRY_EINVAL)) != 0)
			return err;
	if (n == 0)
		return 0;
	np = (n - 1) / INDEX_PIECE_ENTRIES + 1;
	out = xcalloc(np, sizeof(*out));
	for (k = 0; k < np; k++) {
		size_t first = k * INDEX_PIECE_ENTRIES;
		size_t cnt = MIN(n - first, (size_t)INDEX_PIECE_ENTRIES);
		uint8_t *p;

		out[k].len = INDEX_HDR_LEN + cnt * INDEX_ENTRY_LEN;
		out[k].bytes = p = xmalloc(out[k].len);
		memcpy(p, magic, sizeof(magic));
		put_le32(p + 4, INDEX_FORMAT);
		put_le32(p + 8, (uint32_t)cnt);
		p += INDEX_HDR_LEN;
		for (i = first; i < first + cnt; i++, p += INDEX_ENTRY_LEN) {
			memcpy(p, refs[i].id, 32);
			p[32] = refs[i].codec;
			put_le32(p + 33, refs[i].raw_len);
			put_le32(p + 37, refs[i].enc_len);
		}
		fcrypto_id(out[k].id, out[k].bytes, out[k].len);
	}
	*pieces = out;
	*npieces = np;
	return 0;
}

void index_pieces_free(struct index_piece *pieces, size_t npieces)
{
	size_t i;

	if (pieces == NULL)
		return;
	for (i = 0; i < npieces; i++)
		free(pieces[i].bytes);
	free(pieces);
}

int index_decode(const uint8_t *bytes, size_t len, struct chunk_ref **refs, size_t *nrefs)
{
	struct chunk_ref *out;
	uint32_t format, cnt;
	const uint8_t *p;
	size_t i;
	int err;

	*refs = NULL;
	*nrefs = 0;
	if (len < INDEX_HDR_LEN || len > INDEX_PIECE_MAX)
		return ferry_errf(FERRY_EFORMAT, "index piece of %zu bytes: not in %u..%u", len,
				  INDEX_HDR_LEN, INDEX_PIECE_MAX);
	if (memcmp(bytes, magic, sizeof(magic)) != 0)
		return ferry_errf(FERRY_EFORMAT, "index piece: bad magic %02x%02x%02x%02x",
				  bytes[0], bytes[1], bytes[2], bytes[3]);
	format = get_le32(bytes + 4);
	if (format != INDEX_FORMAT)
		return ferry_errf(FERRY_EVERSION,
				  "index piece format %u is not supported (this ferry reads %u)",
				  format, INDEX_FORMAT);
	cnt = get_le32(bytes + 8);
	if (cnt == 0 || cnt > INDEX_PIECE_ENTRIES)
		return ferry_errf(FERRY_EFORMAT, "index piece: %u entries, not in 1..%u", cnt,
				  (unsigned)INDEX_PIECE_ENTRIES);
	if (len != INDEX_HDR_LEN + (size_t)cnt * INDEX_ENTRY_LEN)
		return ferry_errf(FERRY_EFORMAT, "index piece: %zu bytes, but %u entries take %zu",
				  len, cnt, INDEX_HDR_LEN + (size_t)cnt * INDEX_ENTRY_LEN);
	out = xmalloc((size_t)cnt * sizeof(*out));
	p = bytes + INDEX_HDR_LEN;
	for (i = 0; i < cnt; i++, p += INDEX_ENTRY_LEN) {
		memcpy(out[i].id, p, 32);
		out[i].codec = p[32];
		out[i].raw_len = get_le32(p + 33);
		out[i].enc_len = get_le32(p + 37);
		if ((err = ref_check(&out[i], i, FERRY_EFORMAT)) != 0) {
			free(out);
			return err;
		}
	}
	*refs = out;
	*nrefs = cnt;
	return 0;
}
