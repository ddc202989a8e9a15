/*
 * The catalog: which manifests a node holds and what it makes of them. This
 * is where the trust and version rules of DESIGN.md live: a manifest is
 * accepted only from a trusted publisher; per name the store keeps a
 * high-water mark; a manifest above it becomes the newest; two manifests with
 * the same name and version resolve to the one with the lower manifest hash;
 * one below the mark is stored only when explicitly asked for.
 */
#ifndef FERRY_CATALOG_H
#define FERRY_CATALOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct store;
struct store_rd;
struct manifest;
struct trust;
struct chunk_ref;

enum catalog_flags {
	/* The operator asked for this version (fetch NAME@OLD, a bundle): store it
	 * even if it is below the high-water mark. */
	CATALOG_EXPLICIT = 1u << 0,
};

enum catalog_outcome {
	CATALOG_NEWEST = 1,   /* above the mark: stored, mark raised; forward it */
	CATALOG_REPLACED = 2, /* same version, lower hash than the one held: replaced; forward it */
	CATALOG_OLDER = 3,    /* below the mark, explicitly asked for: stored, not forwarded */
	CATALOG_KNOWN = 4,    /* identical manifest already held: nothing to do */
};

/*
 * Verify signed_bytes (manifest_open) and apply the rules above, writing to
 * the store in one transaction. Returns a positive enum catalog_outcome, or a
 * negative code: the manifest_open() codes, FERRY_EOLDVERSION for a version
 * below the mark without CATALOG_EXPLICIT or a same-version manifest that
 * loses the hash comparison. Nothing is written on failure. If out is not
 * NULL it receives the decoded manifest (caller frees) on success.
 */
int catalog_accept(struct store *st, const struct trust *t, const uint8_t *signed_bytes, size_t n,
		   unsigned flags, struct manifest **out);

/*
 * Load and verify a stored manifest. version 0 means the newest stored
 * version of name. FERRY_ENOENT with a detail ("no model 'x'", "model 'x' has
 * no version 7") if absent.
 */
int catalog_load(struct store *st, const struct trust *t, const char *name, uint64_t version,
		 struct manifest **out);

/* Parse "NAME" or "NAME@VERSION" (version 0 when absent). FERRY_EINVAL with a detail. */
int catalog_parse_ref(const char *ref, char *name, size_t cap, uint64_t *version);

/*
 * Completeness of a version: encoded bytes needed in all, encoded bytes
 * present, and whether every index piece is present (if not, the totals
 * cover only the files whose index is known).
 */
struct catalog_presence {
	uint64_t need_bytes;
	uint64_t have_bytes;
	uint64_t need_chunks;
	uint64_t have_chunks;
	bool index_complete;
};
int catalog_presence(struct store_rd *rd, const struct manifest *m, struct catalog_presence *out);

/*
 * The chunk references of the stored index piece id (stored as a CODEC_RAW
 * chunk whose payload is the piece, see index.h): *refs (malloc'd, caller
 * frees) and *nrefs. FERRY_ENOENT if the piece is not stored; FERRY_EFORMAT
 * with a detail naming the piece if it is stored under another codec or
 * does not decode.
 */
int catalog_piece_refs(struct store_rd *rd, const uint8_t id[static 32], struct chunk_ref **refs,
		       size_t *nrefs);

/*
 * Drop every chunk (and index piece) that no stored manifest references, in
 * batched write transactions. Reports what was freed.
 */
int catalog_gc(struct store *st, uint64_t *freed_chunks, uint64_t *freed_bytes);

#endif
