/*
 * Have-files: what a node holds (the model versions it has manifests for,
 * and the id of every chunk and index piece in its store), written by
 * `ferryctl have --out FILE` on a node with no link and carried to a node
 * that makes a delta bundle for it (`bundle create --have FILE`). The layout
 * is in docs/formats.md, "Have files".
 *
 * A have-file arrives on removable media from another site: have_read()
 * treats it as untrusted, reads at most HAVE_FILE_MAX bytes whatever the file
 * declares, and allocates only by counts it has checked against the bytes
 * actually read. Nothing in a have-file is signed: a wrong one only makes a
 * bundle carry too much or too little, and an import reports what is missing.
 */
#ifndef FERRY_HAVE_H
#define FERRY_HAVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ferry/manifest.h"

#define HAVE_FORMAT 1
/* Largest have-file read: 8 million chunk ids, about 2 TB of models at the average chunk size. */
#define HAVE_FILE_MAX (256u * 1024u * 1024u)
/* Most model versions a have-file may list. */
#define HAVE_VERSIONS_MAX 65536u

struct store;

struct have_version {
	char name[MANIFEST_NAME_MAX + 1];
	uint64_t version;
	uint8_t hash[32]; /* BLAKE2b-256 of the signed manifest (the manifest hash) */
};

struct have {
	int64_t created; /* seconds since the epoch, UTC, when it was written */
	size_t nversions;
	struct have_version *versions; /* by name, then version */
	size_t nchunks;
	uint8_t (*chunks)[32]; /* ascending, no duplicates */
};

/*
 * Write what st holds to fd (the caller opened it, and renames it into place
 * if it wants atomicity), from one consistent read of the store, then fsync
 * it. *nversions and *nchunks (either may be NULL) receive the counts written. FERRY_EIO or
 * FERRY_ENOSPC with a detail if writing fails, the store's codes if reading
 * it fails.
 */
int have_write(struct store *st, int fd, size_t *nversions, size_t *nchunks);

/*
 * Read a have-file from fd (from its current offset to its end). On success
 * *out is owned by the caller (have_free). FERRY_ETOOBIG if the file is over
 * HAVE_FILE_MAX; FERRY_EFORMAT with a detail for anything malformed (not a
 * have-file, chunk ids out of order, a bad model name); FERRY_EVERSION for a
 * format this code does not know; FERRY_EIO if reading fails.
 */
int have_read(int fd, struct have **out);

/* True if h lists chunk (or index piece) id. O(log n). */
bool have_has_chunk(const struct have *h, const uint8_t id[static 32]);

/* Free h; have_free(NULL) is a no-op. */
void have_free(struct have *h);

#endif
