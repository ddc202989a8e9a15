/*
 * The chunk store: one LMDB environment under STATE_DIR/store/, the only code
 * that includes <lmdb.h>. LMDB errors are translated to FERRY_E* codes here
 * (MDB_MAP_FULL is handled by growing the map; a full file system becomes
 * FERRY_ENOSPC).
 *
 * Named databases (see docs/formats.md for the key and value layouts):
 *   meta       schema version and usage counters
 *   chunks     chunk id (32 bytes) -> encoded chunk (codec.h)
 *   manifests  name NUL version(u64 BE) -> signed manifest bytes
 *   heads      name -> struct store_head (high-water mark, active, previous)
 *   pins       name NUL version(u64 BE) -> empty
 *   progress   opaque key -> opaque value (fetch state, owned by the fetcher)
 *   peers      node id -> opaque value (known peers, owned by the peer module)
 *
 * Reads go through short read transactions (store_rd); values they return are
 * borrowed views valid only until store_rd_end(). Writes are collected in a
 * batch (store_wr) and applied in one LMDB transaction by store_wr_commit(),
 * so callers batch many chunks per fsync'd commit. Only one process writes:
 * it holds an exclusive flock on STATE_DIR/lock.
 */
#ifndef FERRY_STORE_H
#define FERRY_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STORE_SCHEMA_VERSION 1

struct store;
struct store_rd;
struct store_wr;

enum store_open_flags {
	/* Take STATE_DIR/lock exclusively (non-blocking) so this process may write.
	 * Fails with FERRY_ELOCKED, naming the directory, if another process holds it. */
	STORE_WRITE = 1u << 0,
	/* Create STATE_DIR and the environment if missing (implies STORE_WRITE). */
	STORE_CREATE = 1u << 1,
};

enum store_db { STORE_DB_PROGRESS, STORE_DB_PEERS };

struct store_head {
	uint64_t hwm;	   /* highest version accepted for this name (anti-rollback) */
	uint64_t active;   /* active version, 0 if none */
	uint64_t previous; /* rollback target, 0 if none */
	uint64_t held;	   /* after a rollback: auto-activation holds until a version > held */
};

struct store_stats {
	uint64_t chunks;      /* number of stored chunks */
	uint64_t chunk_bytes; /* sum of their encoded sizes */
	uint64_t manifests;
	uint64_t map_size; /* current LMDB map size */
	uint64_t map_used; /* bytes of the map in use (last page * page size) */
	uint64_t fs_free;  /* free bytes on the file system holding the store */
};

/*
 * Open (and with STORE_CREATE create) the store in state_dir. Runs
 * mdb_reader_check, checks the schema version (migrating an older store,
 * refusing a newer one with FERRY_EVERSION and a message naming both
 * versions). *out is owned by the caller; free with store_close().
 */
int store_open(const char *state_dir, unsigned flags, struct store **out);
/* Close; store_close(NULL) is a no-op. No transaction may be open. */
void store_close(struct store *st);
/* The state directory given to store_open (borrowed). */
const char *store_state_dir(const struct store *st);

int store_stats(struct store *st, struct store_stats *out);

/* Begin a read transaction. Thread-safe; each thread uses its own. */
int store_rd_begin(struct store *st, struct store_rd **out);
/* End it; every view it returned becomes invalid. NULL is a no-op. */
void store_rd_end(struct store_rd *rd);

/* Borrowed view of an encoded chunk. FERRY_ENOENT if absent. */
int store_chunk_get(struct store_rd *rd, const uint8_t id[static 32], const uint8_t **enc,
		    size_t *len);
bool store_chunk_has(struct store_rd *rd, const uint8_t id[static 32]);
/* Call cb for each chunk in id order; a non-zero return from cb stops and is returned. */
int store_chunk_foreach(struct store_rd *rd,
			int (*cb)(void *arg, const uint8_t id[32], const uint8_t *enc, size_t len),
			void *arg);

/* Borrowed view of a signed manifest. FERRY_ENOENT if absent. */
int store_manifest_get(struct store_rd *rd, const char *name, uint64_t version,
		       const uint8_t **bytes, size_t *len);
/*
 * Call cb for each stored manifest, by name then version ascending; only
 * those of one name when name is not NULL. A non-zero return from cb stops
 * the walk and is returned.
 */
int store_manifest_foreach(struct store_rd *rd, const char *name,
			   int (*cb)(void *arg, const char *name, uint64_t version,
				     const uint8_t *bytes, size_t len),
			   void *arg);
/* The head of a name; all zero (and 0 returned) if the name has none. */
int store_head_get(struct store_rd *rd, const char *name, struct store_head *out);
bool store_pinned(struct store_rd *rd, const char *name, uint64_t version);
/* Generic opaque records for the fetcher and the peer module. */
int store_blob_get(struct store_rd *rd, enum store_db db, const void *key, size_t klen,
		   const uint8_t **val, size_t *vlen);
int store_blob_foreach(struct store_rd *rd, enum store_db db,
		       int (*cb)(void *arg, const uint8_t *key, size_t klen, const uint8_t *val,
				 size_t vlen),
		       void *arg);

/*
 * Begin a write batch. Needs a store opened with STORE_WRITE. The batch
 * copies what is queued; nothing reaches LMDB until store_wr_commit().
 */
int store_wr_begin(struct store *st, struct store_wr **out);
/* Queue a chunk. A chunk already stored is left as it is. */
int store_wr_chunk_put(struct store_wr *wr, const uint8_t id[static 32], const uint8_t *enc,
		       size_t len);
int store_wr_chunk_del(struct store_wr *wr, const uint8_t id[static 32]);
int store_wr_manifest_put(struct store_wr *wr, const char *name, uint64_t version,
			  const uint8_t *bytes, size_t len);
int store_wr_manifest_del(struct store_wr *wr, const char *name, uint64_t version);
int store_wr_head_put(struct store_wr *wr, const char *name, const struct store_head *head);
int store_wr_pin(struct store_wr *wr, const char *name, uint64_t version, bool pinned);
int store_wr_blob_put(struct store_wr *wr, enum store_db db, const void *key, size_t klen,
		      const void *val, size_t vlen);
int store_wr_blob_del(struct store_wr *wr, enum store_db db, const void *key, size_t klen);
/* Bytes of values queued so far (to decide when to commit). */
size_t store_wr_pending(const struct store_wr *wr);
/*
 * Apply the batch in one durable LMDB transaction, growing the map when it is
 * full. Frees wr whatever the result. On failure nothing of the batch is
 * applied: FERRY_ENOSPC when the file system is full (detail names the
 * directory and the free space), FERRY_EIO otherwise.
 */
int store_wr_commit(struct store_wr *wr);
/* Drop a batch without applying it. NULL is a no-op. */
void store_wr_abort(struct store_wr *wr);

#endif
