/*
 * The chunk store on LMDB; see include/ferry/store.h for the interface and
 * the "Store layout" section of docs/formats.md for the keys and values.
 *
 * Glossary:
 *   env    the one LMDB environment in STATE_DIR/store/
 *   batch  a struct store_wr: private copies of queued writes, applied in one
 *          LMDB write transaction by store_wr_commit()
 *   map    LMDB's memory map of the data file. Its size is fixed while any
 *          transaction is open; a commit that runs out of room (MDB_MAP_FULL)
 *          is aborted, the map grown and the batch replayed.
 *
 * mdb_env_set_mapsize() is legal only while this process has no transaction
 * open, and it moves the map, which would pull the pages out from under a
 * reader's borrowed views. So every transaction (read or write) holds
 * st->map_lock for reading and resizing takes it for writing. A thread that
 * holds a read transaction cannot wait for the write lock without
 * deadlocking itself; the per-thread count tl_reads catches that case and
 * turns it into an error instead.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "ferry/error.h"
#include "ferry/log.h"
#include "ferry/manifest.h"
#include "ferry/store.h"
#include "ferry/util.h"

/* A new store's map; grown geometrically when full (LMDB files never shrink). */
#define MAP_INITIAL (64ull << 20)
#define MAP_ROUND   (1ull << 20)
/* Far beyond any disk here, well inside a 47-bit address space. */
#define MAP_MAX (1ull << 45)
/* Bound on grow/adopt-and-retry rounds; each grow at least doubles the map. */
#define RETRY_MAX 32

#define HEAD_LEN    32
#define VERSION_LEN 8
/* name NUL version */
#define MKEY_MAX (MANIFEST_NAME_MAX + 1 + VERSION_LEN)

enum dbi_idx { DB_META, DB_CHUNKS, DB_MANIFESTS, DB_HEADS, DB_PINS, DB_PROGRESS, DB_PEERS, DB__N };

static const char *const db_names[DB__N] = {
    [DB_META] = "meta",	  [DB_CHUNKS] = "chunks", [DB_MANIFESTS] = "manifests",
    [DB_HEADS] = "heads", [DB_PINS] = "pins",	  [DB_PROGRESS] = "progress",
    [DB_PEERS] = "peers",
};

/* Keys in the meta database; every value is a uint64 big-endian. */
#define META_SCHEMA	 "schema"
#define META_CHUNKS	 "chunks"
#define META_CHUNK_BYTES "chunk_bytes"
#define META_MANIFESTS	 "manifests"

struct store {
	MDB_env *env;
	MDB_dbi dbi[DB__N];
	char *state_dir;
	char *env_dir;
	int lock_fd; /* -1 for a read-only open */
	bool writable;
	pthread_rwlock_t map_lock;
	pthread_mutex_t write_lock; /* one batch commits at a time */
};

struct store_rd {
	struct store *st;
	MDB_txn *txn;
};

enum op_kind {
	OP_CHUNK_PUT,	 /* no overwrite; counts */
	OP_CHUNK_DEL,	 /* counts */
	OP_MANIFEST_PUT, /* overwrite; counts new keys */
	OP_MANIFEST_DEL, /* counts */
	OP_PUT,		 /* plain overwrite */
	OP_DEL,		 /* plain delete; absent is fine */
};

struct op {
	struct op *next;
	uint8_t kind;
	uint8_t db;
	uint16_t klen;
	size_t vlen;
	uint8_t data[]; /* key, then value */
};

struct store_wr {
	struct store *st;
	struct op *head;
	struct op **tail;
	size_t pending;
};

struct counters {
	uint64_t chunks;
	uint64_t chunk_bytes;
	uint64_t manifests;
};

/* Read transactions this thread holds, on any store (see the top comment). */
static _Thread_local unsigned tl_reads;

static void be64_put(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}

static uint64_t be64_get(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static MDB_val mval(const void *p, size_t n)
{
	MDB_val v = {.mv_size = n, .mv_data = (void *)p};

	return v;
}

/*
 * Functions here return either LMDB codes (errno values or LMDB's own
 * negative range) for the commit loop to classify, or FERRY_E* codes already
 * translated with a detail. This tells them apart.
 */
static bool is_ferry_code(int rc)
{
	return rc < 0 && (rc < MDB_KEYEXIST || rc > MDB_LAST_ERRCODE);
}

/* An LMDB failure that is not one of the handled cases. */
static int mdb_fail(const struct store *st, int rc, const char *what)
{
	return ferry_errf(FERRY_EIO, "store %s: %s: %s", st->env_dir, what, mdb_strerror(rc));
}

static uint64_t fs_free(const char *dir)
{
	struct statvfs vfs;

	if (statvfs(dir, &vfs) != 0)
		return 0;
	return (uint64_t)vfs.f_bavail * vfs.f_frsize;
}

/* ---- manifest keys ---- */

static int name_check(const char *name)
{
	size_t n = name ? strlen(name) : 0;

	if (n == 0 || n > MANIFEST_NAME_MAX)
		return ferry_errf(FERRY_EINVAL, "model name of %zu bytes (1 to %d allowed)", n,
				  MANIFEST_NAME_MAX);
	return 0;
}

/* name NUL version(BE); key holds MKEY_MAX bytes. Returns the key length. */
static size_t mkey(uint8_t *key, const char *name, uint64_t version)
{
	size_t n = strlen(name);

	memcpy(key, name, n);
	key[n] = 0;
	be64_put(key + n + 1, version);
	return n + 1 + VERSION_LEN;
}

/* Split a stored manifest or pin key into name (NUL-terminated copy) and version. */
static int mkey_parse(const struct store *st, const MDB_val *k, char name[MANIFEST_NAME_MAX + 1],
		      uint64_t *version)
{
	const uint8_t *p = k->mv_data;
	size_t n;

	if (k->mv_size < 2 + VERSION_LEN || k->mv_size > MKEY_MAX)
		goto bad;
	n = k->mv_size - 1 - VERSION_LEN;
	if (p[n] != 0 || memchr(p, 0, n) != NULL)
		goto bad;
	memcpy(name, p, n);
	name[n] = '\0';
	*version = be64_get(p + n + 1);
	return 0;
bad:
	return ferry_errf(FERRY_EFORMAT, "store %s: malformed manifest key of %zu bytes",
			  st->env_dir, k->mv_size);
}

/* ---- meta: schema and counters ---- */

static int meta_get(MDB_txn *txn, const struct store *st, const char *key, uint64_t *v)
{
	MDB_val k = mval(key, strlen(key)), d;
	int rc = mdb_get(txn, st->dbi[DB_META], &k, &d);

	if (rc == MDB_NOTFOUND) {
		*v = 0;
		return rc;
	}
	if (rc)
		return mdb_fail(st, rc, "reading meta");
	if (d.mv_size != 8)
		return ferry_errf(FERRY_EFORMAT, "store %s: meta '%s' has %zu bytes, not 8",
				  st->env_dir, key, d.mv_size);
	*v = be64_get(d.mv_data);
	return 0;
}

/* Returns an LMDB code (MDB_MAP_FULL must reach the commit loop untranslated). */
static int meta_put(MDB_txn *txn, const struct store *st, const char *key, uint64_t v)
{
	uint8_t buf[8];
	MDB_val k = mval(key, strlen(key)), d = mval(buf, sizeof(buf));

	be64_put(buf, v);
	return mdb_put(txn, st->dbi[DB_META], &k, &d, 0);
}

static int counters_get(MDB_txn *txn, const struct store *st, struct counters *c)
{
	int rc;

	if ((rc = meta_get(txn, st, META_CHUNKS, &c->chunks)) < 0 && rc != MDB_NOTFOUND)
		return rc;
	if ((rc = meta_get(txn, st, META_CHUNK_BYTES, &c->chunk_bytes)) < 0 && rc != MDB_NOTFOUND)
		return rc;
	if ((rc = meta_get(txn, st, META_MANIFESTS, &c->manifests)) < 0 && rc != MDB_NOTFOUND)
		return rc;
	return 0;
}

static int counters_put(MDB_txn *txn, const struct store *st, const struct counters *c)
{
	int rc;

	if ((rc = meta_put(txn, st, META_CHUNKS, c->chunks)) != 0)
		return rc;
	if ((rc = meta_put(txn, st, META_CHUNK_BYTES, c->chunk_bytes)) != 0)
		return rc;
	return meta_put(txn, st, META_MANIFESTS, c->manifests);
}

/*
 * Schema migrations. Each step turns a store at schema version `from` into
 * one at from + 1, inside the write transaction that opens the store, so a
 * crash during a migration leaves the store at its old version. Version 1 is
 * the first schema; version 2 will add its step here as {1, migrate_1_to_2}
 * and raise STORE_SCHEMA_VERSION.
 */
struct migration {
	uint64_t from;
	int (*run)(struct store *st, MDB_txn *txn);
};

static const struct migration migrations[] = {
    {0, NULL}, /* end of the list */
};

static int migrate(struct store *st, MDB_txn *txn, uint64_t version)
{
	while (version < STORE_SCHEMA_VERSION) {
		const struct migration *m = migrations;
		int rc;

		while (m->run != NULL && m->from != version)
			m++;
		if (m->run == NULL)
			return ferry_errf(FERRY_EVERSION,
					  "store %s has schema version %" PRIu64
					  ", which this ferry (schema version %d) cannot migrate",
					  st->env_dir, version, STORE_SCHEMA_VERSION);
		rc = m->run(st, txn);
		if (is_ferry_code(rc))
			return rc;
		if (rc)
			return mdb_fail(st, rc, "migrating the schema");
		version++;
		rc = meta_put(txn, st, META_SCHEMA, version);
		if (rc)
			return mdb_fail(st, rc, "writing the schema version");
		log_notice(LOG_STORE, "store %s migrated to schema version %" PRIu64, st->env_dir,
			   version);
	}
	return 0;
}

/* ---- map size ---- */

static int map_check_no_reader(const struct store *st)
{
	if (tl_reads > 0)
		return ferry_errf(FERRY_EMAPFULL,
				  "store %s: the map must be resized but this thread holds a read "
				  "transaction",
				  st->env_dir);
	return 0;
}

/* Another process grew the map: adopt the size it recorded. */
static int map_adopt(struct store *st)
{
	int rc = map_check_no_reader(st);

	if (rc)
		return rc;
	pthread_rwlock_wrlock(&st->map_lock);
	rc = mdb_env_set_mapsize(st->env, 0);
	pthread_rwlock_unlock(&st->map_lock);
	if (rc)
		return mdb_fail(st, rc, "adopting the new map size");
	return 0;
}

/* Grow the map so that a batch of `pending` value bytes fits. */
static int map_grow(struct store *st, size_t pending)
{
	MDB_envinfo info;
	MDB_stat stat;
	uint64_t used, size;
	char a[32], b[32];
	int rc = map_check_no_reader(st);

	if (rc)
		return rc;
	pthread_rwlock_wrlock(&st->map_lock);
	mdb_env_info(st->env, &info);
	mdb_env_stat(st->env, &stat);
	used = ((uint64_t)info.me_last_pgno + 1) * stat.ms_psize;
	/* Double, or more when one batch is larger than that: room for its
	 * values twice over covers the tree pages and the free list. */
	size = (uint64_t)info.me_mapsize * 2;
	if (size < used + 2 * (uint64_t)pending + MAP_ROUND)
		size = used + 2 * (uint64_t)pending + MAP_ROUND;
	size = (size + MAP_ROUND - 1) / MAP_ROUND * MAP_ROUND;
	if (size > MAP_MAX) {
		pthread_rwlock_unlock(&st->map_lock);
		return ferry_errf(FERRY_EMAPFULL, "store %s: the map cannot grow beyond %s",
				  st->env_dir, fmt_bytes(a, sizeof(a), MAP_MAX));
	}
	rc = mdb_env_set_mapsize(st->env, size);
	pthread_rwlock_unlock(&st->map_lock);
	if (rc)
		return mdb_fail(st, rc, "growing the map");
	log_info(LOG_STORE, "store %s: map grown from %s to %s", st->env_dir,
		 fmt_bytes(a, sizeof(a), info.me_mapsize), fmt_bytes(b, sizeof(b), size));
	return 0;
}

/* ---- open and close ---- */

static int mkdir_p(const char *path, mode_t mode)
{
	char *p = xstrdup(path);
	int rc = 0;

	for (char *s = p + 1;; s++) {
		bool end = *s == '\0';

		if (*s != '/' && !end)
			continue;
		*s = '\0';
		if (mkdir(p, mode) != 0 && errno != EEXIST) {
			rc = ferry_errno(errno, "cannot create %s", p);
			break;
		}
		if (end)
			break;
		*s = '/';
	}
	free(p);
	return rc;
}

static int lock_state_dir(struct store *st)
{
	char *path = xasprintf("%s/lock", st->state_dir);
	int rc = 0;

	st->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
	if (st->lock_fd < 0) {
		rc = errno == ENOENT ? ferry_errf(FERRY_ENOENT, "no store in %s", st->state_dir)
				     : ferry_errno(errno, "cannot open %s", path);
		goto out;
	}
	if (flock(st->lock_fd, LOCK_EX | LOCK_NB) != 0) {
		rc = errno == EWOULDBLOCK
			 ? ferry_errf(FERRY_ELOCKED,
				      "%s is in use by another process (a running ferryd?)",
				      st->state_dir)
			 : ferry_errno(errno, "cannot lock %s", path);
		goto out;
	}
out:
	free(path);
	return rc;
}

static int env_open_error(const struct store *st, int rc)
{
	switch (rc) {
	case ENOENT:
		return ferry_errf(FERRY_ENOENT, "no store in %s", st->state_dir);
	case EACCES:
	case EPERM:
	case EROFS:
		return ferry_errf(FERRY_EACCES, "cannot open the store in %s: %s", st->env_dir,
				  strerror(rc));
	case MDB_INVALID:
	case MDB_VERSION_MISMATCH:
		return ferry_errf(FERRY_EFORMAT, "%s is not an LMDB store this ferry can read: %s",
				  st->env_dir, mdb_strerror(rc));
	default:
		return mdb_fail(st, rc, "opening the environment");
	}
}

static int dbi_open(struct store *st, MDB_txn *txn, enum dbi_idx i)
{
	int rc = mdb_dbi_open(txn, db_names[i], st->writable ? MDB_CREATE : 0, &st->dbi[i]);

	if (rc == MDB_NOTFOUND || rc == MDB_INCOMPATIBLE)
		return ferry_errf(FERRY_EFORMAT, "%s is not a ferry store (no '%s' database)",
				  st->env_dir, db_names[i]);
	if (rc)
		return mdb_fail(st, rc, "opening a database");
	return 0;
}

/* Check the schema version (migrating or initialising on a write open). */
static int init_schema(struct store *st, MDB_txn *txn)
{
	uint64_t version;
	MDB_stat s;
	int rc = meta_get(txn, st, META_SCHEMA, &version);

	if (rc == MDB_NOTFOUND) {
		rc = mdb_stat(txn, st->dbi[DB_CHUNKS], &s);
		if (rc)
			return mdb_fail(st, rc, "reading the chunk count");
		if (!st->writable || s.ms_entries > 0)
			return ferry_errf(FERRY_EFORMAT,
					  "%s is not a ferry store (no schema version)",
					  st->env_dir);
		/* A new store: the current schema, zero counters. */
		rc = meta_put(txn, st, META_SCHEMA, STORE_SCHEMA_VERSION);
		if (rc == 0)
			rc = counters_put(txn, st, &(struct counters){0});
		return rc ? mdb_fail(st, rc, "initialising the store") : 0;
	}
	if (rc)
		return rc;
	if (version > STORE_SCHEMA_VERSION)
		return ferry_errf(FERRY_EVERSION,
				  "store %s has schema version %" PRIu64
				  ", newer than version %d that this ferry knows: upgrade ferry",
				  st->env_dir, version, STORE_SCHEMA_VERSION);
	if (version < STORE_SCHEMA_VERSION && !st->writable)
		return ferry_errf(FERRY_EVERSION,
				  "store %s has schema version %" PRIu64
				  ", older than version %d: open it for writing once (ferryd or "
				  "ferryctl --store) to migrate it",
				  st->env_dir, version, STORE_SCHEMA_VERSION);
	return migrate(st, txn, version);
}

/* Open (and on a write open, create) the named databases; check the schema. */
static int init_dbs(struct store *st)
{
	MDB_txn *txn = NULL;
	int rc;

	for (int tries = 0;; tries++) {
		rc = mdb_txn_begin(st->env, NULL, st->writable ? 0 : MDB_RDONLY, &txn);
		if (rc != MDB_MAP_RESIZED || tries == RETRY_MAX)
			break;
		if ((rc = mdb_env_set_mapsize(st->env, 0)) != 0)
			break;
	}
	if (rc) {
		txn = NULL;
		rc = mdb_fail(st, rc, "beginning the opening transaction");
		goto out;
	}
	/* meta first: a newer store is refused for its version, not its layout. */
	if ((rc = dbi_open(st, txn, DB_META)) != 0)
		goto out;
	if ((rc = dbi_open(st, txn, DB_CHUNKS)) != 0)
		goto out;
	if ((rc = init_schema(st, txn)) != 0)
		goto out;
	for (int i = DB_CHUNKS + 1; i < DB__N; i++)
		if ((rc = dbi_open(st, txn, i)) != 0)
			goto out;
	/* Committing (even a read-only transaction) keeps the database handles. */
	rc = mdb_txn_commit(txn);
	txn = NULL;
	if (rc)
		rc = rc == ENOSPC ? ferry_errf(FERRY_ENOSPC, "no space left in %s", st->env_dir)
				  : mdb_fail(st, rc, "committing the opening transaction");
out:
	if (txn)
		mdb_txn_abort(txn);
	return rc;
}

int store_open(const char *state_dir, unsigned flags, struct store **out)
{
	struct store *st = xcalloc(1, sizeof(*st));
	char *data_path = NULL;
	int rc, dead = 0;

	*out = NULL;
	if (flags & STORE_CREATE)
		flags |= STORE_WRITE;
	st->lock_fd = -1;
	st->writable = (flags & STORE_WRITE) != 0;
	st->state_dir = xstrdup(state_dir);
	st->env_dir = xasprintf("%s/store", state_dir);
	pthread_rwlock_init(&st->map_lock, NULL);
	pthread_mutex_init(&st->write_lock, NULL);

	if (flags & STORE_CREATE) {
		if ((rc = mkdir_p(st->env_dir, 0750)) != 0)
			goto fail;
	}
	if (st->writable && (rc = lock_state_dir(st)) != 0)
		goto fail;
	/* Only STORE_CREATE may make a new environment. */
	data_path = xasprintf("%s/data.mdb", st->env_dir);
	if (!(flags & STORE_CREATE) && access(data_path, F_OK) != 0) {
		rc = errno == ENOENT ? ferry_errf(FERRY_ENOENT, "no store in %s", st->state_dir)
				     : ferry_errno(errno, "cannot open %s", data_path);
		goto fail;
	}

	if ((rc = mdb_env_create(&st->env)) != 0) {
		st->env = NULL;
		rc = mdb_fail(st, rc, "creating the environment");
		goto fail;
	}
	mdb_env_set_maxdbs(st->env, DB__N);
	mdb_env_set_mapsize(st->env, MAP_INITIAL);
	/* MDB_NOTLS: read transactions are not tied to threads' TLS slots.
	 * Never MDB_WRITEMAP (a full disk would be SIGBUS) nor MDB_NOSYNC. */
	rc = mdb_env_open(st->env, st->env_dir, MDB_NOTLS | (st->writable ? 0 : MDB_RDONLY), 0640);
	if (rc) {
		rc = env_open_error(st, rc);
		goto fail;
	}
	/* Adopt the map size recorded by whoever grew it last. */
	if ((rc = mdb_env_set_mapsize(st->env, 0)) != 0) {
		rc = mdb_fail(st, rc, "setting the map size");
		goto fail;
	}
	if ((rc = mdb_reader_check(st->env, &dead)) != 0) {
		rc = mdb_fail(st, rc, "checking for stale readers");
		goto fail;
	}
	if (dead > 0)
		log_info(LOG_STORE, "store %s: cleared %d stale reader slot(s)", st->env_dir, dead);
	if ((rc = init_dbs(st)) != 0)
		goto fail;
	free(data_path);
	*out = st;
	return 0;
fail:
	free(data_path);
	store_close(st);
	return rc;
}

void store_close(struct store *st)
{
	if (st == NULL)
		return;
	if (st->env)
		mdb_env_close(st->env);
	if (st->lock_fd >= 0)
		close(st->lock_fd);
	pthread_rwlock_destroy(&st->map_lock);
	pthread_mutex_destroy(&st->write_lock);
	free(st->state_dir);
	free(st->env_dir);
	free(st);
}

const char *store_state_dir(const struct store *st)
{
	return st->state_dir;
}

/* ---- reads ---- */

int store_rd_begin(struct store *st, struct store_rd **out)
{
	MDB_txn *txn;
	int rc;

	*out = NULL;
	for (int tries = 0;; tries++) {
		pthread_rwlock_rdlock(&st->map_lock);
		rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn);
		if (rc == 0)
			break;
		pthread_rwlock_unlock(&st->map_lock);
		if (rc != MDB_MAP_RESIZED || tries == RETRY_MAX) {
			if (rc == MDB_READERS_FULL)
				return ferry_errf(FERRY_EAGAIN,
						  "store %s: too many concurrent readers",
						  st->env_dir);
			return mdb_fail(st, rc, "beginning a read transaction");
		}
		if ((rc = map_adopt(st)) != 0)
			return rc;
	}
	*out = xmalloc(sizeof(**out));
	(*out)->st = st;
	(*out)->txn = txn;
	tl_reads++;
	return 0;
}

void store_rd_end(struct store_rd *rd)
{
	if (rd == NULL)
		return;
	mdb_txn_abort(rd->txn);
	pthread_rwlock_unlock(&rd->st->map_lock);
	tl_reads--;
	free(rd);
}

/* Get from one database: 0, MDB_NOTFOUND, or a translated error. */
static int rd_get(struct store_rd *rd, enum dbi_idx db, const void *key, size_t klen, MDB_val *val)
{
	MDB_val k = mval(key, klen);
	int rc = mdb_get(rd->txn, rd->st->dbi[db], &k, val);

	if (rc && rc != MDB_NOTFOUND)
		return mdb_fail(rd->st, rc, "reading");
	return rc;
}

int store_chunk_get(struct store_rd *rd, const uint8_t id[static 32], const uint8_t **enc,
		    size_t *len)
{
	MDB_val v;
	char hex[65];
	int rc = rd_get(rd, DB_CHUNKS, id, 32, &v);

	if (rc == MDB_NOTFOUND)
		return ferry_errf(FERRY_ENOENT, "chunk %s is not in the store",
				  hex_encode(hex, id, 32));
	if (rc)
		return rc;
	*enc = v.mv_data;
	*len = v.mv_size;
	return 0;
}

bool store_chunk_has(struct store_rd *rd, const uint8_t id[static 32])
{
	MDB_val v;

	return rd_get(rd, DB_CHUNKS, id, 32, &v) == 0;
}

/*
 * Walk one database from the first key >= start (or from the beginning),
 * calling each(arg, key, val) until it returns non-zero. Returns 0 at the
 * end, the callback's value, or a translated error.
 */
static int rd_walk(struct store_rd *rd, enum dbi_idx db, const void *start, size_t slen,
		   int (*each)(void *arg, const MDB_val *k, const MDB_val *v), void *arg)
{
	MDB_cursor *cur;
	MDB_val k = mval(start, slen), v;
	int rc;

	rc = mdb_cursor_open(rd->txn, rd->st->dbi[db], &cur);
	if (rc)
		return mdb_fail(rd->st, rc, "opening a cursor");
	rc = mdb_cursor_get(cur, &k, &v, start ? MDB_SET_RANGE : MDB_FIRST);
	while (rc == 0) {
		rc = each(arg, &k, &v);
		if (rc)
			goto out;
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	rc = rc == MDB_NOTFOUND ? 0 : mdb_fail(rd->st, rc, "walking a database");
out:
	mdb_cursor_close(cur);
	return rc;
}

struct chunk_walk {
	struct store_rd *rd;
	int (*cb)(void *arg, const uint8_t id[32], const uint8_t *enc, size_t len);
	void *arg;
};

static int chunk_each(void *arg, const MDB_val *k, const MDB_val *v)
{
	struct chunk_walk *w = arg;

	if (k->mv_size != 32)
		return ferry_errf(FERRY_EFORMAT, "store %s: chunk key of %zu bytes",
				  w->rd->st->env_dir, k->mv_size);
	return w->cb(w->arg, k->mv_data, v->mv_data, v->mv_size);
}

int store_chunk_foreach(struct store_rd *rd,
			int (*cb)(void *arg, const uint8_t id[32], const uint8_t *enc, size_t len),
			void *arg)
{
	struct chunk_walk w = {rd, cb, arg};

	return rd_walk(rd, DB_CHUNKS, NULL, 0, chunk_each, &w);
}

int store_manifest_get(struct store_rd *rd, const char *name, uint64_t version,
		       const uint8_t **bytes, size_t *len)
{
	uint8_t key[MKEY_MAX];
	MDB_val v;
	int rc;

	if ((rc = name_check(name)) != 0)
		return rc;
	rc = rd_get(rd, DB_MANIFESTS, key, mkey(key, name, version), &v);
	if (rc == MDB_NOTFOUND)
		return ferry_errf(FERRY_ENOENT, "model '%s' version %" PRIu64 " is not stored",
				  name, version);
	if (rc)
		return rc;
	*bytes = v.mv_data;
	*len = v.mv_size;
	return 0;
}

struct manifest_walk {
	struct store_rd *rd;
	const uint8_t *prefix; /* name NUL, or NULL for all */
	size_t plen;
	bool past; /* walked past the names asked for */
	int (*cb)(void *arg, const char *name, uint64_t version, const uint8_t *bytes, size_t len);
	void *arg;
};

static int manifest_each(void *arg, const MDB_val *k, const MDB_val *v)
{
	struct manifest_walk *w = arg;
	char name[MANIFEST_NAME_MAX + 1];
	uint64_t version = 0;
	int rc;

	if (w->prefix && (k->mv_size < w->plen || memcmp(k->mv_data, w->prefix, w->plen) != 0)) {
		w->past = true;
		return 1;
	}
	if ((rc = mkey_parse(w->rd->st, k, name, &version)) != 0)
		return rc;
	return w->cb(w->arg, name, version, v->mv_data, v->mv_size);
}

int store_manifest_foreach(struct store_rd *rd, const char *name,
			   int (*cb)(void *arg, const char *name, uint64_t version,
				     const uint8_t *bytes, size_t len),
			   void *arg)
{
	uint8_t prefix[MANIFEST_NAME_MAX + 1];
	struct manifest_walk w = {rd, NULL, 0, false, cb, arg};
	int rc;

	if (name) {
		if ((rc = name_check(name)) != 0)
			return rc;
		w.plen = strlen(name) + 1;
		memcpy(prefix, name, w.plen);
		w.prefix = prefix;
	}
	rc = rd_walk(rd, DB_MANIFESTS, w.prefix, w.plen, manifest_each, &w);
	return w.past ? 0 : rc;
}

int store_head_get(struct store_rd *rd, const char *name, struct store_head *out)
{
	MDB_val v;
	const uint8_t *p;
	int rc;

	memset(out, 0, sizeof(*out));
	if ((rc = name_check(name)) != 0)
		return rc;
	rc = rd_get(rd, DB_HEADS, name, strlen(name), &v);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc)
		return rc;
	if (v.mv_size != HEAD_LEN)
		return ferry_errf(FERRY_EFORMAT, "store %s: head of '%s' has %zu bytes, not %d",
				  rd->st->env_dir, name, v.mv_size, HEAD_LEN);
	p = v.mv_data;
	out->hwm = be64_get(p);
	out->active = be64_get(p + 8);
	out->previous = be64_get(p + 16);
	out->held = be64_get(p + 24);
	return 0;
}

bool store_pinned(struct store_rd *rd, const char *name, uint64_t version)
{
	uint8_t key[MKEY_MAX];
	MDB_val v;

	if (name_check(name) != 0)
		return false;
	return rd_get(rd, DB_PINS, key, mkey(key, name, version), &v) == 0;
}

static enum dbi_idx blob_db(enum store_db db)
{
	return db == STORE_DB_PEERS ? DB_PEERS : DB_PROGRESS;
}

static int blob_check(enum store_db db, size_t klen)
{
	if (db != STORE_DB_PROGRESS && db != STORE_DB_PEERS)
		return ferry_errf(FERRY_EINVAL, "no store database %d", (int)db);
	/* 511 is LMDB's default key size limit. */
	if (klen == 0 || klen > 511)
		return ferry_errf(FERRY_EINVAL, "store key of %zu bytes (1 to 511 allowed)", klen);
	return 0;
}

int store_blob_get(struct store_rd *rd, enum store_db db, const void *key, size_t klen,
		   const uint8_t **val, size_t *vlen)
{
	MDB_val v;
	int rc;

	if ((rc = blob_check(db, klen)) != 0)
		return rc;
	rc = rd_get(rd, blob_db(db), key, klen, &v);
	if (rc == MDB_NOTFOUND)
		return ferry_errf(FERRY_ENOENT, "no %s record with that key",
				  db_names[blob_db(db)]);
	if (rc)
		return rc;
	*val = v.mv_data;
	*vlen = v.mv_size;
	return 0;
}

struct blob_walk {
	int (*cb)(void *arg, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen);
	void *arg;
};

static int blob_each(void *arg, const MDB_val *k, const MDB_val *v)
{
	struct blob_walk *w = arg;

	return w->cb(w->arg, k->mv_data, k->mv_size, v->mv_data, v->mv_size);
}

int store_blob_foreach(struct store_rd *rd, enum store_db db,
		       int (*cb)(void *arg, const uint8_t *key, size_t klen, const uint8_t *val,
				 size_t vlen),
		       void *arg)
{
	struct blob_walk w = {cb, arg};
	int rc;

	if ((rc = blob_check(db, 1)) != 0)
		return rc;
	return rd_walk(rd, blob_db(db), NULL, 0, blob_each, &w);
}

int store_stats(struct store *st, struct store_stats *out)
{
	struct store_rd *rd;
	struct counters c;
	MDB_envinfo info;
	MDB_stat stat;
	int rc;

	memset(out, 0, sizeof(*out));
	if ((rc = store_rd_begin(st, &rd)) != 0)
		return rc;
	rc = counters_get(rd->txn, st, &c);
	/* Under the read transaction's map lock, so the size cannot move. */
	mdb_env_info(st->env, &info);
	mdb_env_stat(st->env, &stat);
	store_rd_end(rd);
	if (rc < 0)
		return rc;
	out->chunks = c.chunks;
	out->chunk_bytes = c.chunk_bytes;
	out->manifests = c.manifests;
	out->map_size = info.me_mapsize;
	out->map_used = ((uint64_t)info.me_last_pgno + 1) * stat.ms_psize;
	out->fs_free = fs_free(st->env_dir);
	return 0;
}

/* ---- write batches ---- */

int store_wr_begin(struct store *st, struct store_wr **out)
{
	*out = NULL;
	if (!st->writable)
		return ferry_errf(FERRY_EPERM, "store %s was opened read-only", st->state_dir);
	*out = xcalloc(1, sizeof(**out));
	(*out)->st = st;
	(*out)->tail = &(*out)->head;
	return 0;
}

static void queue(struct store_wr *wr, enum op_kind kind, enum dbi_idx db, const void *key,
		  size_t klen, const void *val, size_t vlen)
{
	struct op *op = xmalloc(sizeof(*op) + klen + vlen);

	op->next = NULL;
	op->kind = (uint8_t)kind;
	op->db = (uint8_t)db;
	op->klen = (uint16_t)klen;
	op->vlen = vlen;
	memcpy(op->data, key, klen);
	if (vlen)
		memcpy(op->data + klen, val, vlen);
	*wr->tail = op;
	wr->tail = &op->next;
	wr->pending += vlen;
}

static int value_check(size_t len)
{
	if (len > UINT32_MAX)
		return ferry_errf(FERRY_ETOOBIG, "store value of %zu bytes", len);
	return 0;
}

int store_wr_chunk_put(struct store_wr *wr, const uint8_t id[static 32], const uint8_t *enc,
		       size_t len)
{
	int rc = value_check(len);

	if (rc == 0)
		queue(wr, OP_CHUNK_PUT, DB_CHUNKS, id, 32, enc, len);
	return rc;
}

int store_wr_chunk_del(struct store_wr *wr, const uint8_t id[static 32])
{
	queue(wr, OP_CHUNK_DEL, DB_CHUNKS, id, 32, NULL, 0);
	return 0;
}

int store_wr_manifest_put(struct store_wr *wr, const char *name, uint64_t version,
			  const uint8_t *bytes, size_t len)
{
	uint8_t key[MKEY_MAX];
	int rc;

	if ((rc = name_check(name)) != 0 || (rc = value_check(len)) != 0)
		return rc;
	queue(wr, OP_MANIFEST_PUT, DB_MANIFESTS, key, mkey(key, name, version), bytes, len);
	return 0;
}

int store_wr_manifest_del(struct store_wr *wr, const char *name, uint64_t version)
{
	uint8_t key[MKEY_MAX];
	int rc;

	if ((rc = name_check(name)) != 0)
		return rc;
	queue(wr, OP_MANIFEST_DEL, DB_MANIFESTS, key, mkey(key, name, version), NULL, 0);
	return 0;
}

int store_wr_head_put(struct store_wr *wr, const char *name, const struct store_head *head)
{
	uint8_t v[HEAD_LEN];
	int rc;

	if ((rc = name_check(name)) != 0)
		return rc;
	be64_put(v, head->hwm);
	be64_put(v + 8, head->active);
	be64_put(v + 16, head->previous);
	be64_put(v + 24, head->held);
	queue(wr, OP_PUT, DB_HEADS, name, strlen(name), v, sizeof(v));
	return 0;
}

int store_wr_pin(struct store_wr *wr, const char *name, uint64_t version, bool pinned)
{
	uint8_t key[MKEY_MAX];
	int rc;

	if ((rc = name_check(name)) != 0)
		return rc;
	queue(wr, pinned ? OP_PUT : OP_DEL, DB_PINS, key, mkey(key, name, version), NULL, 0);
	return 0;
}

int store_wr_blob_put(struct store_wr *wr, enum store_db db, const void *key, size_t klen,
		      const void *val, size_t vlen)
{
	int rc;

	if ((rc = blob_check(db, klen)) != 0 || (rc = value_check(vlen)) != 0)
		return rc;
	queue(wr, OP_PUT, blob_db(db), key, klen, val, vlen);
	return 0;
}

int store_wr_blob_del(struct store_wr *wr, enum store_db db, const void *key, size_t klen)
{
	int rc;

	if ((rc = blob_check(db, klen)) != 0)
		return rc;
	queue(wr, OP_DEL, blob_db(db), key, klen, NULL, 0);
	return 0;
}

size_t store_wr_pending(const struct store_wr *wr)
{
	return wr->pending;
}

void store_wr_abort(struct store_wr *wr)
{
	if (wr == NULL)
		return;
	for (struct op *op = wr->head, *next; op; op = next) {
		next = op->next;
		free(op);
	}
	free(wr);
}

/* Delete a key, returning the size of what was there (for the counters). */
static int del_sized(MDB_txn *txn, MDB_dbi dbi, MDB_val *k, bool *found, size_t *size)
{
	MDB_val old;
	int rc = mdb_get(txn, dbi, k, &old);

	*found = false;
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc)
		return rc;
	*size = old.mv_size;
	*found = true;
	return mdb_del(txn, dbi, k, NULL);
}

static uint64_t sub_floor(uint64_t a, uint64_t b)
{
	return a > b ? a - b : 0;
}

/* Apply one queued write. Returns an LMDB code. */
static int apply(struct store *st, MDB_txn *txn, const struct op *op, struct counters *c)
{
	MDB_dbi dbi = st->dbi[op->db];
	MDB_val k = mval(op->data, op->klen), v = mval(op->data + op->klen, op->vlen);
	bool found;
	size_t size = 0;
	int rc;

	switch ((enum op_kind)op->kind) {
	case OP_CHUNK_PUT:
		rc = mdb_put(txn, dbi, &k, &v, MDB_NOOVERWRITE);
		if (rc == MDB_KEYEXIST)
			return 0;
		if (rc == 0) {
			c->chunks++;
			c->chunk_bytes += op->vlen;
		}
		return rc;
	case OP_CHUNK_DEL:
		rc = del_sized(txn, dbi, &k, &found, &size);
		if (rc == 0 && found) {
			c->chunks = sub_floor(c->chunks, 1);
			c->chunk_bytes = sub_floor(c->chunk_bytes, size);
		}
		return rc;
	case OP_MANIFEST_PUT:
		rc = mdb_put(txn, dbi, &k, &v, MDB_NOOVERWRITE);
		if (rc == 0) {
			c->manifests++;
		} else if (rc == MDB_KEYEXIST) {
			/* MDB_KEYEXIST pointed v at the old value. */
			v = mval(op->data + op->klen, op->vlen);
			rc = mdb_put(txn, dbi, &k, &v, 0);
		}
		return rc;
	case OP_MANIFEST_DEL:
		rc = del_sized(txn, dbi, &k, &found, &size);
		if (rc == 0 && found)
			c->manifests = sub_floor(c->manifests, 1);
		return rc;
	case OP_PUT:
		return mdb_put(txn, dbi, &k, &v, 0);
	case OP_DEL:
		rc = mdb_del(txn, dbi, &k, NULL);
		return rc == MDB_NOTFOUND ? 0 : rc;
	}
	return EINVAL;
}

/*
 * One attempt at applying the whole batch. Returns 0, an LMDB code for the
 * caller to classify, or a FERRY_E* code (counters in a bad state).
 */
static int commit_once(struct store_wr *wr)
{
	struct store *st = wr->st;
	struct counters c, before;
	MDB_txn *txn;
	int rc;

	pthread_rwlock_rdlock(&st->map_lock);
	rc = mdb_txn_begin(st->env, NULL, 0, &txn);
	if (rc)
		goto out;
	rc = counters_get(txn, st, &c);
	before = c;
	for (const struct op *op = wr->head; op && rc == 0; op = op->next)
		rc = apply(st, txn, op, &c);
	if (rc == 0 && memcmp(&c, &before, sizeof(c)) != 0)
		rc = counters_put(txn, st, &c);
	if (rc)
		mdb_txn_abort(txn);
	else
		rc = mdb_txn_commit(txn);
out:
	pthread_rwlock_unlock(&st->map_lock);
	return rc;
}

/*
 * LMDB reports a write that ran out of room part way as a short write, EIO.
 * Call that a full disk when the batch did not fit in the free space or under
 * the file size limit.
 */
static bool looks_full(const struct store *st, size_t pending)
{
	char *path = xasprintf("%s/data.mdb", st->env_dir);
	struct rlimit rl;
	struct stat sb;
	bool full = fs_free(st->env_dir) < (uint64_t)pending + MAP_ROUND;

	if (!full && getrlimit(RLIMIT_FSIZE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    stat(path, &sb) == 0)
		full = (uint64_t)sb.st_size + pending >= (uint64_t)rl.rlim_cur;
	free(path);
	return full;
}

static int commit_error(const struct store *st, int rc, size_t pending)
{
	char f[32], p[32];

	if (rc == ENOSPC || rc == EDQUOT || rc == EFBIG || (rc == EIO && looks_full(st, pending)))
		return ferry_errf(FERRY_ENOSPC,
				  "no space left in %s for a batch of %s (%s free%s); nothing of "
				  "it was stored",
				  st->env_dir, fmt_bytes(p, sizeof(p), pending),
				  fmt_bytes(f, sizeof(f), fs_free(st->env_dir)),
				  rc == EFBIG ? ", file size limit reached" : "");
	return mdb_fail(st, rc, "committing a batch");
}

int store_wr_commit(struct store_wr *wr)
{
	struct store *st = wr->st;
	int rc = 0;

	/* An empty batch costs no transaction and no fsync. */
	if (wr->head == NULL)
		goto out;
	pthread_mutex_lock(&st->write_lock);
	for (int tries = 0;; tries++) {
		rc = commit_once(wr);
		if (rc == 0 || is_ferry_code(rc))
			break;
		if (tries == RETRY_MAX) {
			rc = mdb_fail(st, rc, "committing a batch (gave up retrying)");
			break;
		}
		if (rc == MDB_MAP_FULL) {
			if ((rc = map_grow(st, wr->pending)) != 0)
				break;
		} else if (rc == MDB_MAP_RESIZED) {
			if ((rc = map_adopt(st)) != 0)
				break;
		} else {
			rc = commit_error(st, rc, wr->pending);
			break;
		}
	}
	pthread_mutex_unlock(&st->write_lock);
out:
	store_wr_abort(wr);
	return rc;
}
