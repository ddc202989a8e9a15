/*
 * Publishing and exporting model versions.
 *
 * publish_ingest() reads every regular file under a directory (given as an
 * open descriptor: the daemon never opens a path a client names), cuts each
 * file into chunks (chunker.h), hashes and encodes them on a pool of threads
 * (fcrypto.h, codec.h), stores the chunks and index pieces (store.h) and
 * returns the unsigned manifest body. The caller signs it and hands the
 * signed form to catalog_accept(). Symlinks, devices and unreadable files
 * are refused with the path named.
 *
 * export_version() writes a version's files under an output directory
 * (again a descriptor), byte-identical, checking every chunk against its id;
 * a corrupt chunk is reported with the file and offset and nothing corrupt
 * is left under the final name.
 */
#ifndef FERRY_PUBLISH_H
#define FERRY_PUBLISH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct store;
struct manifest;

struct publish_opts {
	const char *name;
	uint64_t version;
	const char *label;     /* may be NULL */
	uint8_t publisher[32]; /* public key of the key that will sign */
	int threads;	       /* worker threads; 0 = number of CPUs */
	int64_t created;       /* seconds since the epoch; 0 = now */
};

struct publish_stats {
	uint64_t files;
	uint64_t raw_bytes;
	uint64_t chunks;
	uint64_t new_chunks; /* not already in the store */
	uint64_t new_raw_bytes;
	uint64_t new_enc_bytes;
	uint64_t enc_bytes; /* encoded size of the whole version */
};

/*
 * Ingest dirfd's files. On success *body (malloc'd, caller frees) is the
 * manifest body to sign; stats, if not NULL, is filled in. On failure nothing
 * that was already stored is changed (new chunks may remain, unreferenced,
 * until the next gc).
 */
int publish_ingest(struct store *st, int dirfd, const struct publish_opts *opts, uint8_t **body,
		   size_t *len, struct publish_stats *stats);

enum export_flags {
	EXPORT_SHA256 = 1u << 0, /* also re-check each file's SHA-256 */
};

/*
 * Write m's files under outdirfd (creating subdirectories), each through a
 * temporary name renamed into place once complete and verified.
 */
int export_version(struct store *st, const struct manifest *m, int outdirfd, unsigned flags);

/* One chunk (or index piece) that export_verify() found bad. */
struct export_problem {
	const char *path; /* the file of the version it belongs to (borrowed) */
	uint64_t offset;  /* where its bytes start in that file */
	uint8_t id[32];	  /* chunk id, or index piece id when piece is true */
	bool piece;
	int code; /* FERRY_ECORRUPT (bytes do not match the id) or FERRY_EINCOMPLETE (absent) */
};

struct export_verify_stats {
	uint64_t chunks; /* data chunks checked (not counting index pieces) */
	uint64_t bytes;	 /* their raw bytes */
	uint64_t corrupt;
	uint64_t missing;
};

/*
 * Re-check every stored chunk and index piece of m against its id, without
 * writing anything. cb (may be NULL) is called for each bad one, in file
 * order; p is valid only during the call. Returns 0 when all are good,
 * FERRY_ECORRUPT when any is corrupt, FERRY_EINCOMPLETE when some are only
 * missing, or another code if the store cannot be read. stats, if not NULL,
 * is filled in either way.
 */
int export_verify(struct store *st, const struct manifest *m,
		  void (*cb)(void *arg, const struct export_problem *p), void *arg,
		  struct export_verify_stats *stats);

#endif
