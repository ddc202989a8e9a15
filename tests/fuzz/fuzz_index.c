/*
 * Fuzz the chunk index pieces. The first input byte picks a mode:
 *   0  index_decode() on the rest. What decodes must hold only entries in
 *      the ranges docs/formats.md sets, and index_encode() of them must give
 *      back the same bytes as one piece, with the id of those bytes;
 *   1  u16 count, then entries of 41 bytes (id, codec, raw length, encoded
 *      length, as in a piece), used in turn until there are count of them:
 *      index_encode() must accept them exactly when every entry is in range,
 *      cut them into full pieces and a last one, and each piece must decode
 *      to its share of the entries.
 */
#include "config.h"

#include "ferry/chunker.h"
#include "ferry/codec.h"
#include "ferry/error.h"
#include "ferry/fcrypto.h"
#include "ferry/index.h"
#include "fuzz.h"

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The entry ranges of docs/formats.md ("Chunk index pieces"), checked our own way. */
static bool ref_ok(const struct chunk_ref *r)
{
	if (r->raw_len < 1 || r->raw_len > CHUNK_MAX_SIZE || r->codec >= CODEC__COUNT)
		return false;
	if (r->codec == CODEC_RAW)
		return r->enc_len == r->raw_len + CODEC_HDR_LEN;
	return r->enc_len > CODEC_HDR_LEN && r->enc_len <= r->raw_len + CODEC_HDR_LEN;
}

static bool refs_equal(const struct chunk_ref *a, const struct chunk_ref *b)
{
	return memcmp(a->id, b->id, 32) == 0 && a->raw_len == b->raw_len &&
	       a->enc_len == b->enc_len && a->codec == b->codec;
}

static void decode(const uint8_t *p, size_t n)
{
	struct chunk_ref *refs;
	struct index_piece *pieces;
	size_t nrefs, npieces;
	uint8_t id[32];

	if (index_decode(p, n, &refs, &nrefs) != 0) {
		FUZZ_CHECK(refs == NULL && nrefs == 0);
		return;
	}
	FUZZ_CHECK(nrefs >= 1 && nrefs <= INDEX_PIECE_ENTRIES);
	for (size_t i = 0; i < nrefs; i++)
		FUZZ_CHECK(ref_ok(&refs[i]));
	FUZZ_CHECK(index_encode(refs, nrefs, &pieces, &npieces) == 0);
	FUZZ_CHECK(npieces == 1 && pieces[0].len == n && memcmp(pieces[0].bytes, p, n) == 0);
	fcrypto_id(id, p, n);
	FUZZ_CHECK(memcmp(pieces[0].id, id, 32) == 0);
	index_pieces_free(pieces, npieces);
	free(refs);
}

static void encode(struct fuzz_in *in)
{
	size_t count = fuzz_u16(in) % (2 * INDEX_PIECE_ENTRIES + 2), nrec = in->n / INDEX_ENTRY_LEN;
	struct chunk_ref *refs;
	struct index_piece *pieces;
	size_t npieces, done = 0;
	bool all_ok = true;
	int rc;

	if (nrec == 0)
		count = 0;
	refs = malloc((count > 0 ? count : 1) * sizeof(*refs));
	FUZZ_CHECK(refs != NULL);
	for (size_t i = 0; i < count; i++) {
		const uint8_t *e = in->p + (i % nrec) * INDEX_ENTRY_LEN;

		memcpy(refs[i].id, e, 32);
		refs[i].codec = e[32];
		refs[i].raw_len = le32(e + 33);
		refs[i].enc_len = le32(e + 37);
		all_ok = all_ok && ref_ok(&refs[i]);
	}
	rc = index_encode(refs, count, &pieces, &npieces);
	FUZZ_CHECK((rc == 0) == all_ok);
	if (rc == 0) {
		FUZZ_CHECK(npieces == (count + INDEX_PIECE_ENTRIES - 1) / INDEX_PIECE_ENTRIES);
		FUZZ_CHECK(npieces > 0 || pieces == NULL);
		for (size_t k = 0; k < npieces; k++) {
			struct chunk_ref *got;
			size_t ngot;
			uint8_t id[32];

			FUZZ_CHECK(pieces[k].len <= INDEX_PIECE_MAX);
			fcrypto_id(id, pieces[k].bytes, pieces[k].len);
			FUZZ_CHECK(memcmp(pieces[k].id, id, 32) == 0);
			FUZZ_CHECK(index_decode(pieces[k].bytes, pieces[k].len, &got, &ngot) == 0);
			FUZZ_CHECK(ngot == (k + 1 < npieces ? INDEX_PIECE_ENTRIES : count - done));
			for (size_t i = 0; i < ngot; i++)
				FUZZ_CHECK(refs_equal(&got[i], &refs[done + i]));
			done += ngot;
			free(got);
		}
		FUZZ_CHECK(done == count);
		index_pieces_free(pieces, npieces);
	}
	free(refs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = {data, size};

	if (fuzz_u8(&in) % 2 == 0)
		decode(in.p, in.n);
	else
		encode(&in);
	return 0;
}
