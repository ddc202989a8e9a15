/*
 * Unit tests for the LMDB store, on real environments in temporary
 * directories. One test includes <lmdb.h> itself: it plays a store written by
 * another ferry version, which the store API rightly cannot produce.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <lmdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ferry/error.h"
#include "ferry/store.h"
#include "ferry/util.h"

#define KIB 1024u
#define MIB (1024u * 1024u)

/* ---- helpers ---- */

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int setup_dir(void **state)
{
	const char *tmp = getenv("TMPDIR");
	char *dir = xasprintf("%s/ferry-store-XXXXXX", tmp && *tmp ? tmp : "/tmp");

	if (mkdtemp(dir) == NULL) {
		free(dir);
		return -1;
	}
	*state = dir;
	return 0;
}

static int teardown_dir(void **state)
{
	char *dir = *state;

	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(dir);
	return 0;
}

/* The state dir of a test: a fresh subdirectory that store_open must create. */
static char *state_path(void **state)
{
	return xasprintf("%s/state", (char *)*state);
}

static struct store *open_ok(const char *dir, unsigned flags)
{
	struct store *st = NULL;
	int rc = store_open(dir, flags, &st);

	if (rc != 0)
		print_error("store_open(%s): %s\n", dir, ferry_errmsg(rc));
	assert_int_equal(rc, 0);
	assert_non_null(st);
	return st;
}

static void make_id(uint8_t id[32], uint32_t n)
{
	memset(id, 0xa5, 32);
	id[0] = (uint8_t)(n >> 24);
	id[1] = (uint8_t)(n >> 16);
	id[2] = (uint8_t)(n >> 8);
	id[3] = (uint8_t)n;
}

/* A value whose bytes depend on n, so a mix-up shows. */
static uint8_t *make_value(uint32_t n, size_t len)
{
	uint8_t *v = xmalloc(len ? len : 1);

	for (size_t i = 0; i < len; i++)
		v[i] = (uint8_t)(n * 131 + i * 7 + (i >> 9));
	return v;
}

static void check_chunk(struct store_rd *rd, uint32_t n, size_t len)
{
	uint8_t id[32], *want = make_value(n, len);
	const uint8_t *enc;
	size_t got;

	make_id(id, n);
	assert_int_equal(store_chunk_get(rd, id, &enc, &got), 0);
	assert_int_equal(got, len);
	assert_memory_equal(enc, want, len);
	free(want);
}

/* Queue chunks [first, first + count) of len bytes each. */
static void queue_chunks(struct store_wr *wr, uint32_t first, uint32_t count, size_t len)
{
	for (uint32_t n = first; n < first + count; n++) {
		uint8_t id[32], *v = make_value(n, len);

		make_id(id, n);
		assert_int_equal(store_wr_chunk_put(wr, id, v, len), 0);
		free(v);
	}
}

static void commit_chunks(struct store *st, uint32_t first, uint32_t count, size_t len)
{
	struct store_wr *wr;
	int rc;

	assert_int_equal(store_wr_begin(st, &wr), 0);
	queue_chunks(wr, first, count, len);
	rc = store_wr_commit(wr);
	if (rc)
		print_error("commit: %s\n", ferry_errmsg(rc));
	assert_int_equal(rc, 0);
}

static struct store_stats stats_of(struct store *st)
{
	struct store_stats s;

	assert_int_equal(store_stats(st, &s), 0);
	return s;
}

struct seen {
	int n;
	char names[16][80];
	uint64_t versions[16];
	int stop_at; /* return 7 at this call (1-based), 0 never */
};

static int seen_manifest(void *arg, const char *name, uint64_t version, const uint8_t *bytes,
			 size_t len)
{
	struct seen *s = arg;

	snprintf(s->names[s->n], sizeof(s->names[0]), "%s", name);
	s->versions[s->n] = version;
	s->n++;
	return s->n == s->stop_at ? 7 : 0;
}

struct chunk_list {
	int n;
	uint8_t ids[64][32];
	size_t lens[64];
};

static int seen_chunk(void *arg, const uint8_t id[32], const uint8_t *enc, size_t len)
{
	struct chunk_list *l = arg;

	if (l->n < 64) {
		memcpy(l->ids[l->n], id, 32);
		l->lens[l->n] = len;
	}
	l->n++;
	return 0;
}

struct blob_list {
	int n;
	char keys[8][32];
	char vals[8][32];
};

static int seen_blob(void *arg, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
	struct blob_list *l = arg;

	snprintf(l->keys[l->n], sizeof(l->keys[0]), "%.*s", (int)klen, (const char *)key);
	snprintf(l->vals[l->n], sizeof(l->vals[0]), "%.*s", (int)vlen, (const char *)val);
	l->n++;
	return 0;
}

/* Wait for a forked child; its exit status is the number of failed checks. */
static void child_ok(pid_t pid)
{
	int status;

	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

#define CHILD_CHECK(cond, fails)                                                                   \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "child: %s:%d: %s\n", __FILE__, __LINE__, #cond);          \
			(fails)++;                                                                 \
		}                                                                                  \
	} while (0)

/* ---- tests ---- */

static void test_open_errors(void **state)
{
	char *dir = state_path(state);
	struct store *st = (struct store *)&st;
	struct store_wr *wr;
	struct stat sb;
	char *p;

	/* Nothing there and not asked to create: refused, nothing made. */
	assert_int_equal(store_open(dir, 0, &st), FERRY_ENOENT);
	assert_null(st);
	assert_non_null(strstr(ferry_errmsg(FERRY_ENOENT), "no store in"));
	assert_int_equal(store_open(dir, STORE_WRITE, &st), FERRY_ENOENT);
	assert_int_not_equal(stat(dir, &sb), 0);

	st = open_ok(dir, STORE_CREATE);
	assert_string_equal(store_state_dir(st), dir);
	store_close(st);
	/* The environment is where mdb_stat will look for it. */
	p = xasprintf("%s/store/data.mdb", dir);
	assert_int_equal(stat(p, &sb), 0);
	free(p);

	/* A read-only open refuses write batches. */
	st = open_ok(dir, 0);
	assert_int_equal(store_wr_begin(st, &wr), FERRY_EPERM);
	assert_null(wr);
	store_close(st);
	store_close(NULL);
	free(dir);
}

static void test_chunks(void **state)
{
	char *dir = state_path(state);
	struct store *st = open_ok(dir, STORE_CREATE);
	struct store_wr *wr;
	struct store_rd *rd;
	struct chunk_list l = {0};
	uint8_t id[32];
	const uint8_t *enc;
	size_t len;

	assert_int_equal(store_wr_begin(st, &wr), 0);
	/* Queued out of id order; the walk comes back in id order. */
	queue_chunks(wr, 3, 1, 1000);
	queue_chunks(wr, 1, 2, 70 * KIB);
	queue_chunks(wr, 0, 1, 0);
	assert_int_equal(store_wr_pending(wr), 1000 + 140 * KIB);

	/* Nothing is visible before the commit. */
	assert_int_equal(store_rd_begin(st, &rd), 0);
	make_id(id, 1);
	assert_false(store_chunk_has(rd, id));
	assert_int_equal(store_chunk_get(rd, id, &enc, &len), FERRY_ENOENT);
	assert_non_null(strstr(ferry_errmsg(FERRY_ENOENT), "is not in the store"));
	store_rd_end(rd);

	assert_int_equal(store_wr_commit(wr), 0);
	assert_int_equal(store_rd_begin(st, &rd), 0);
	for (uint32_t n = 1; n <= 2; n++)
		check_chunk(rd, n, 70 * KIB);
	check_chunk(rd, 3, 1000);
	make_id(id, 0);
	assert_true(store_chunk_has(rd, id));
	make_id(id, 4);
	assert_false(store_chunk_has(rd, id));
	assert_int_equal(store_chunk_foreach(rd, seen_chunk, &l), 0);
	assert_int_equal(l.n, 4);
	for (int i = 0; i < 4; i++) {
		make_id(id, (uint32_t)i);
		assert_memory_equal(l.ids[i], id, 32);
	}
	assert_int_equal(l.lens[0], 0);
	assert_int_equal(l.lens[3], 1000);
	store_rd_end(rd);

	/* Delete one, and one that is not there. */
	assert_int_equal(store_wr_begin(st, &wr), 0);
	make_id(id, 2);
	assert_int_equal(store_wr_chunk_del(wr, id), 0);
	make_id(id, 99);
	assert_int_equal(store_wr_chunk_del(wr, id), 0);
	assert_int_equal(store_wr_commit(wr), 0);
	assert_int_equal(store_rd_begin(st, &rd), 0);
	make_id(id, 2);
	assert_false(store_chunk_has(rd, id));
	check_chunk(rd, 1, 70 * KIB);
	store_rd_end(rd);

	/* An empty batch commits to nothing. */
	assert_int_equal(store_wr_begin(st, &wr), 0);
	assert_int_equal(store_wr_pending(wr), 0);
	assert_int_equal(store_wr_commit(wr), 0);

	/* An aborted batch leaves nothing. */
	assert_int_equal(store_wr_begin(st, &wr), 0);
	queue_chunks(wr, 10, 3, 100);
	store_wr_abort(wr);
	store_wr_abort(NULL);
	assert_int_equal(store_rd_begin(st, &rd), 0);
	make_id(id, 10);
	assert_false(store_chunk_has(rd, id));
	store_rd_end(rd);
	store_close(st);
	free(dir);
}

static void test_duplicates_and_counters(void **state)
{
	char *dir = state_path(state);
	struct store *st = open_ok(dir, STORE_CREATE);
	struct store_stats s = stats_of(st);
	struct store_wr *wr;
	struct store_rd *rd;
	uint8_t id[32], other[100];
	const uint8_t *enc;
	size_t len;

	assert_int_equal(s.chunks, 0);
	assert_int_equal(s.chunk_bytes, 0);
	assert_int_equal(s.manifests, 0);
	assert_true(s.map_size >= 64 * MIB);
	assert_true(s.map_used > 0 && s.map_used < s.map_size);
	assert_true(s.fs_free > 0);

	/* The same chunk twice in one batch counts once. */
	assert_int_equal(store_wr_begin(st, &wr), 0);
	queue_chunks(wr, 1, 1, 100);
	queue_chunks(wr, 1, 1, 100);
	queue_chunks(wr, 2, 1, 300);
	assert_int_equal(store_wr_commit(wr), 0);
	s = stats_of(st);
	assert_int_equal(s.chunks, 2);
	assert_int_equal(s.chunk_bytes, 400);

	/* Again in a later batch, even with other bytes: the stored chunk stays. */
	memset(other, 0xee, sizeof(other));
	make_id(id, 1);
	assert_int_equal(store_wr_begin(st, &wr), 0);
	assert_int_equal(store_wr_chunk_put(wr, id, other, sizeof(other)), 0);
	queue_chunks(wr, 3, 1, 50);
	assert_int_equal(store_wr_commit(wr), 0);
	s = stats_of(st);
	assert_int_equal(s.chunks, 3);
	assert_int_equal(s.chunk_bytes, 450);
	assert_int_equal(store_rd_begin(st, &rd), 0);
	check_chunk(rd, 1, 100);
	store_rd_end(rd);

	/* Manifests: a replaced one counts once; deleting counts down. */
	assert_int_equal(store_wr_begin(st, &wr), 0);
	assert_int_equal(store_wr_manifest_put(wr, "m", 1, (const uint8_t *)"one", 3), 0);
	assert_int_equal(store_wr_manifest_put(wr, "m", 2, (const uint8_t *)"two", 3), 0);
	assert_int_equal(store_wr_manifest_put(wr, "m", 1, (const uint8_t *)"uno!", 4), 0);
	assert_int_equal(store_wr_commit(wr), 0);
	s = stats_of(st);
	assert_int_equal(s.manifests, 2);
	assert_int_equal(store_rd_begin(st, &rd), 0);
	assert_int_equal(store_manifest_get(rd, "m", 1, &enc, &len), 0);
	assert_int_equal(len, 4);
	assert_memory_equal(enc, "uno!", 4);
	store_rd_end(rd);

	assert_int_equal(store_wr_begin(st, &wr), 0);
	assert_int_equal(store_wr_manifest_del(wr, "m", 1), 0);
	assert_int_equal(store_wr_manifest_del(wr, "m", 9), 0);
	make_id(id, 2);
	assert_int_equal(store_wr_chunk_del(wr, id), 0);
	assert_int_equal(store_wr_chunk_del(wr, id), 0);
	assert_int_equal(store_wr_commit(wr), 0);
	s = stats_of(st);
	assert_int_equal(s.manifests, 1);
	assert_int_equal(s.chunks, 2);
	assert_int_equal(s.chunk_bytes, 150);
	store_close(st);

	/* The counters persist. */
	st = open_ok(dir, 0);
	s = stats_of(st);
	assert_int_equal(s.chunks, 2);
	assert_int_equal(s.chunk_bytes, 150);
	assert_int_equal(s.manifests, 1);
	store_close(st);
	free(dir);
}

static void test_manifests(void **state)
{
	char *dir = state_path(state);
	struct store *st = open_ok(dir, STORE_CREATE);
	struct store_wr *wr;
	struct store_rd *rd;
	struct seen s = {0};
	const uint8_t *b;
	size_t len;
	char longname[80];

	assert_int_equal(store_wr_begin(st, &wr), 0);
	/* Versions compare as numbers (256 after 10), names as bytes ("ab" after "a"). */
	assert_int_equal(store_wr_manifest_put(wr, "b", 1, (const uint8_t *)"b1", 2), 0);
	assert_int_equal(store_wr_manifest_put(wr, "a", 256, (const uint8_t *)"a256", 4), 0);
	assert_int_equal(store_wr_manifest_put(wr, "ab", 3, (const uint8_t *)"ab3", 3), 0);
	assert_int_equal(store_wr_manifest_put(wr, "a", 10, (const uint8_t *)"a10", 3), 0);
	assert_int_equal(store_wr_manifest_put(wr, "a", 2, (const uint8_t *)"a2", 2), 0);
	memset(longname, 'x', sizeof(longname));
	longname[65] = '\0';
	assert_int_equal(store_wr_manifest_put(wr, longname, 1, (const uint8_t *)"x", 1),
			 FERRY_EINVAL);
	assert_int_equal(store_wr_manifest_put(wr, "", 1, (const uint8_t *)"x", 1), FERRY_EINVAL);
	assert_int_equal(store_wr_commit(wr), 0);

	assert_int_equal(store_rd_begin(st, &rd), 0);
	assert_int_equal(store_manifest_get(rd, "a", 10, &b, &len), 0);
	assert_int_equal(len, 3);
	assert_memory_equal(b, "a10", 3);
	assert_int_equal(store_manifest_get(rd, "a", 11, &b, &len), FERRY_ENOENT);
	assert_non_null(strstr(ferry_errmsg(FERRY_ENOENT), "'a' version 11"));

	assert_int_equal(store_manifest_foreach(rd, NULL, seen_manifest, &s), 0);
	assert_int_equal(s.n, 5);
	assert_string_equal(s.names[0], "a");
	assert_int_equal(s.versions[0], 2);
	assert_int_equal(s.versions[1], 10);
	assert_int_equal(s.versions[2], 256);
	assert_string_equal(s.names[3], "ab");
	assert_string_equal(s.names[4], "b");

	memset(&s, 0, sizeof(s));
	assert_int_equal(store_manifest_foreach(rd, "a", seen_manifest, &s), 0);
	assert_int_equal(s.n, 3);
	assert_string_equal(s.names[2], "a");
	assert_int_equal(s.versions[2], 256);

	memset(&s, 0, sizeof(s));
	assert_int_equal(store_manifest_foreach(rd, "aa", seen_manifest, &s), 0);
	assert_int_equal(s.n, 0);
	memset(&s, 0, sizeof(s));
	assert_int_equal(store_manifest_foreach(rd, "b", seen_manifest, &s), 0);
	assert_int_equal(s.n, 1);

	/* A non-zero return from the callback stops the walk and comes back. */
	memset(&s, 0, sizeof(s));
	s.stop_at = 2;
	assert_int_equal(store_manifest_foreach(rd, NULL, seen_manifest, &s), 7);
	assert_int_equal(s.n, 2);
	store_rd_end(rd);
	store_close(st);
	free(dir);
}

static void test_heads_and_pins(void **state)
{
	char *dir = state_path(state);
	struct store *st = open_ok(dir, STORE_CREATE);
	struct store_head h = {.hwm = 7, .active = 5, .previous = 4, .held = 0}, got;
	struct store_wr *wr;
	struct store_rd *rd;

	assert_int_equal(store_rd_begin(st, &rd), 0);
	memset(&got, 0xff, sizeof(got));
	assert_int_equal(store_head_get(rd, "llama", &got), 0);
	assert_int_equal(got.hwm, 0);
	assert_int_equal(got.active, 0);
	assert_int_equal(got.previous, 0);
	assert_int_equal(got.held, 0);
	assert_false(store_pinned(rd, "llama", 5));
	store_rd_end(rd);

	assert_int_equal(store_wr_begin(st, &wr), 0);
	assert_int_equal(store_wr_head_put(wr, "llama", &h), 0);
	h.hwm = UINT64_MAX;
	assert_int_equal(store_wr_head_put(wr, "whisper", &h), 0);
	assert_int_equal(store_wr_pin(wr, "llama", 5, true), 0);
	assert_int_equal(store_wr_pin(wr, "llama", 6, true), 0);
	assert_int_equal(store_wr_pin(wr, "llama", 6, false), 0);
	assert_int_equal(store_wr_commit(wr), 0);

	assert_int_equal(store_rd_begin(st, &rd), 0);
	assert_int_equal(store_head_get(rd, "llama", &got), 0);
	assert_int_equal(got.hwm, 7);
	assert_int_equal(got.active, 5);
	assert_int_equal(got.previous, 4);
	assert_int_equal(got.held, 0);
	assert_int_equal(store_head_get(rd, "whisper", &got), 0);
	assert_true(got.hwm == UINT64_MAX);
	assert_true(store_pinned(rd, "llama", 5));
	assert_false(store_pinned(rd, "llama", 6));
	assert_false(store_pinned(rd, "whisper", 5));
	store_rd_end(rd);

	/* Overwrite a head, unpin; both persist across a reopen. */
	h = (struct store_head){.hwm = 9, .active = 4, .previous = 5, .held = 9};
	assert_int_equal(store_wr_begin(st, &wr), 0);
	assert_int_equal(store_wr_head_put(wr, "llama", &h), 0);
	assert_int_equal(store_wr_pin(wr, "llama", 5, false), 0);
	assert_int_equal(store_wr_pin(wr, "llama", 9, true), 0);
	assert_int_equal(store_wr_commit(wr), 0);
	store_close(st);

	st = open_ok(dir, 0);
	assert_int_equal(store_rd_begin(st, &rd), 0);
	assert_int_equal(store_head_get(rd, "llama", &got), 0);
	assert_int_equal(got.hwm, 9);
	assert_int_equal(got.active, 4);
	assert_int_equal(got.previous, 5);
	assert_int_equal(got.held, 9);
	assert_false(store_pinned(rd, "llama", 5));
	assert_true(store_pinned(rd, "llama", 9));
	store_rd_end(rd);
	store_close(st);
	free(dir);
}

static void test_blobs(void **state)
{
	char *dir = state_path(state);
	struct store *st = open_ok(dir, STORE_CREATE);
	struct store_wr *wr;
	struct store_rd *rd;
	struct blob_list l = {0};
	const uint8_t *v;
	size_t len;
	uint8_t big[600] = {0};

	assert_int_equal(store_wr_begin(st, &wr), 0);
	assert_int_equal(store_wr_blob_put(wr, STORE_DB_PROGRESS, "fetch/b", 7, "B", 1), 0);
	assert_int_equal(store_wr_blob_put(wr, STORE_DB_PROGRESS, "fetch/a", 7, "A", 1), 0);
	assert_int_equal(store_wr_blob_put(wr, STORE_DB_PEERS, "node1", 5, "10.0.0.1", 8), 0);
	assert_int_equal(store_wr_blob_put(wr, STORE_DB_PEERS, "node2", 5, "gone", 4), 0);
	assert_int_equal(store_wr_blob_put(wr, STORE_DB_PEERS, "", 0, "x", 1), FERRY_EINVAL);
	assert_int_equal(store_wr_blob_put(wr, STORE_DB_PEERS, big, sizeof(big), "x", 1),
			 FERRY_EINVAL);
	assert_int_equal(store_wr_commit(wr), 0);

	assert_int_equal(store_wr_begin(st, &wr), 0);
	assert_int_equal(store_wr_blob_put(wr, STORE_DB_PROGRESS, "fetch/a", 7, "A2", 2), 0);
	assert_int_equal(store_wr_blob_del(wr, STORE_DB_PEERS, "node2", 5), 0);
	assert_int_equal(store_wr_blob_del(wr, STORE_DB_PEERS, "node3", 5), 0);
	assert_int_equal(store_wr_commit(wr), 0);

	assert_int_equal(store_rd_begin(st, &rd), 0);
	assert_int_equal(store_blob_get(rd, STORE_DB_PROGRESS, "fetch/a", 7, &v, &len), 0);
	assert_int_equal(len, 2);
	assert_memory_equal(v, "A2", 2);
	/* The two databases are separate. */
	assert_int_equal(store_blob_get(rd, STORE_DB_PEERS, "fetch/a", 7, &v, &len), FERRY_ENOENT);
	assert_int_equal(store_blob_get(rd, STORE_DB_PEERS, "node2", 5, &v, &len), FERRY_ENOENT);
	assert_int_equal(store_blob_foreach(rd, STORE_DB_PROGRESS, seen_blob, &l), 0);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.keys[0], "fetch/a");
	assert_string_equal(l.vals[0], "A2");
	assert_string_equal(l.keys[1], "fetch/b");
	memset(&l, 0, sizeof(l));
	assert_int_equal(store_blob_foreach(rd, STORE_DB_PEERS, seen_blob, &l), 0);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.keys[0], "node1");
	assert_string_equal(l.vals[0], "10.0.0.1");
	store_rd_end(rd);
	store_close(st);
	free(dir);
}

/* Everything in a batch lands together; a reopen finds all of it. */
static void test_batch_and_reopen(void **state)
{
	char *dir = state_path(state);
	struct store *st = open_ok(dir, STORE_CREATE);
	struct store_head h = {.hwm = 3, .active = 3};
	struct store_wr *wr;
	struct store_rd *rd;
	const uint8_t *b;
	size_t len;

	assert_int_equal(store_wr_begin(st, &wr), 0);
	queue_chunks(wr, 0, 20, 64 * KIB);
	assert_int_equal(store_wr_manifest_put(wr, "m", 3, (const uint8_t *)"signed", 6), 0);
	assert_int_equal(store_wr_head_put(wr, "m", &h), 0);
	assert_int_equal(store_wr_pin(wr, "m", 3, true), 0);
	assert_int_equal(store_wr_blob_put(wr, STORE_DB_PROGRESS, "m", 1, "half", 4), 0);
	assert_int_equal(store_wr_commit(wr), 0);
	store_close(st);

	st = open_ok(dir, STORE_WRITE);
	assert_int_equal(store_rd_begin(st, &rd), 0);
	for (uint32_t n = 0; n < 20; n++)
		check_chunk(rd, n, 64 * KIB);
	assert_int_equal(store_manifest_get(rd, "m", 3, &b, &len), 0);
	assert_int_equal(len, 6);
	assert_true(store_pinned(rd, "m", 3));
	assert_int_equal(store_blob_get(rd, STORE_DB_PROGRESS, "m", 1, &b, &len), 0);
	assert_int_equal(store_head_get(rd, "m", &h), 0);
	assert_int_equal(h.hwm, 3);
	store_rd_end(rd);
	assert_int_equal(stats_of(st).chunks, 20);
	assert_int_equal(stats_of(st).chunk_bytes, 20 * 64 * KIB);
	store_close(st);
	free(dir);
}

/* A full file system: the batch fails whole, the store goes on working. */
static void test_enospc(void **state)
{
	char *dir = state_path(state);
	char *data = NULL;
	struct store *st = open_ok(dir, STORE_CREATE);
	struct store_head h = {.hwm = 1}, got;
	struct store_wr *wr;
	struct store_rd *rd;
	struct store_stats before, after;
	struct rlimit saved, lim;
	struct stat sb;
	uint8_t id[32];
	int rc;

	commit_chunks(st, 0, 4, 64 * KIB);
	before = stats_of(st);
	data = xasprintf("%s/store/data.mdb", dir);
	assert_int_equal(stat(data, &sb), 0);

	/* A file size limit makes LMDB's writes fail like a full disk (EFBIG or a
	 * short write); the same code handles ENOSPC. */
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
	lim = saved;
	lim.rlim_cur = (rlim_t)sb.st_size + 2 * MIB;
	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);

	assert_int_equal(store_wr_begin(st, &wr), 0);
	assert_int_equal(store_wr_manifest_put(wr, "m", 1, (const uint8_t *)"sig", 3), 0);
	assert_int_equal(store_wr_head_put(wr, "m", &h), 0);
	queue_chunks(wr, 100, 40, 256 * KIB);
	rc = store_wr_commit(wr);
	assert_int_equal(rc, FERRY_ENOSPC);
	assert_non_null(strstr(ferry_errmsg(rc), dir));
	assert_non_null(strstr(ferry_errmsg(rc), "free"));

	/* Nothing of the batch is there; the store reads and writes. */
	after = stats_of(st);
	assert_int_equal(after.chunks, before.chunks);
	assert_int_equal(after.chunk_bytes, before.chunk_bytes);
	assert_int_equal(after.manifests, 0);
	assert_int_equal(store_rd_begin(st, &rd), 0);
	make_id(id, 100);
	assert_false(store_chunk_has(rd, id));
	assert_int_equal(store_head_get(rd, "m", &got), 0);
	assert_int_equal(got.hwm, 0);
	check_chunk(rd, 3, 64 * KIB);
	store_rd_end(rd);
	commit_chunks(st, 50, 1, 4 * KIB);

	/* Room again: the same batch goes in. */
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
	signal(SIGXFSZ, SIG_DFL);
	commit_chunks(st, 100, 40, 256 * KIB);
	after = stats_of(st);
	assert_int_equal(after.chunks, before.chunks + 41);
	assert_int_equal(store_rd_begin(st, &rd), 0);
	check_chunk(rd, 139, 256 * KIB);
	check_chunk(rd, 50, 4 * KIB);
	store_rd_end(rd);
	store_close(st);
	free(data);
	free(dir);
}

/* Far more than the initial 64 MiB map, over many commits and in one batch. */
static void test_map_growth(void **state)
{
	char *dir = state_path(state);
	char *dir2 = xasprintf("%s/state2", (char *)*state);
	struct store *st = open_ok(dir, STORE_CREATE);
	struct store_stats s = stats_of(st);
	struct store_rd *rd;
	uint64_t initial = s.map_size;

	/* 160 MiB in commits of 16 MiB. */
	for (uint32_t i = 0; i < 10; i++)
		commit_chunks(st, i * 64, 64, 256 * KIB);
	s = stats_of(st);
	assert_int_equal(s.chunks, 640);
	assert_int_equal(s.chunk_bytes, 160ull * MIB);
	assert_true(s.map_size > initial);
	assert_true(s.map_used > 160ull * MIB);
	assert_true(s.map_used <= s.map_size);
	store_close(st);

	/* The grown map survives a reopen, read-only and for writing. */
	st = open_ok(dir, 0);
	assert_int_equal(store_rd_begin(st, &rd), 0);
	check_chunk(rd, 0, 256 * KIB);
	check_chunk(rd, 639, 256 * KIB);
	store_rd_end(rd);
	store_close(st);
	st = open_ok(dir, STORE_WRITE);
	commit_chunks(st, 640, 4, 256 * KIB);
	assert_int_equal(stats_of(st).chunks, 644);
	store_close(st);

	/* One batch of 100 MiB into a fresh 64 MiB map. */
	st = open_ok(dir2, STORE_CREATE);
	assert_true(stats_of(st).map_size < 100ull * MIB);
	commit_chunks(st, 0, 400, 256 * KIB);
	s = stats_of(st);
	assert_int_equal(s.chunks, 400);
	assert_true(s.map_size > 100ull * MIB);
	assert_int_equal(store_rd_begin(st, &rd), 0);
	check_chunk(rd, 0, 256 * KIB);
	check_chunk(rd, 399, 256 * KIB);
	store_rd_end(rd);
	store_close(st);
	free(dir2);
	free(dir);
}

/* A thread that holds a read transaction cannot wait for a map resize. */
static void test_grow_with_own_reader(void **state)
{
	char *dir = state_path(state);
	struct store *st = open_ok(dir, STORE_CREATE);
	struct store_wr *wr;
	struct store_rd *rd;

	assert_int_equal(store_rd_begin(st, &rd), 0);
	assert_int_equal(store_wr_begin(st, &wr), 0);
	queue_chunks(wr, 0, 320, 256 * KIB);
	assert_int_equal(store_wr_commit(wr), FERRY_EMAPFULL);
	assert_non_null(strstr(ferry_errmsg(FERRY_EMAPFULL), "read transaction"));
	store_rd_end(rd);
	assert_int_equal(stats_of(st).chunks, 0);
	commit_chunks(st, 0, 320, 256 * KIB);
	assert_int_equal(stats_of(st).chunks, 320);
	store_close(st);
	free(dir);
}

struct reader_arg {
	struct store *st;
	volatile int stop;
	int reads;
	int bad;
};

static void *reader_main(void *p)
{
	struct reader_arg *a = p;

	while (!a->stop) {
		struct store_rd *rd;
		const uint8_t *enc;
		size_t len;
		uint8_t id[32];

		if (store_rd_begin(a->st, &rd) != 0) {
			a->bad++;
			continue;
		}
		make_id(id, 0);
		/* Touch every byte: a map moved under the reader would fault. */
		if (store_chunk_get(rd, id, &enc, &len) != 0 || len != 256 * KIB)
			a->bad++;
		else
			for (size_t i = 0; i < len; i += 4096)
				a->bad += enc[i] != (uint8_t)(i * 7 + (i >> 9));
		store_rd_end(rd);
		a->reads++;
	}
	return NULL;
}

/* Readers in other threads keep reading while the map grows. */
static void test_readers_in_threads(void **state)
{
	char *dir = state_path(state);
	struct store *st = open_ok(dir, STORE_CREATE);
	struct reader_arg a = {.st = st};
	pthread_t th[2];

	commit_chunks(st, 0, 1, 256 * KIB);
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&th[i], NULL, reader_main, &a), 0);
	for (uint32_t i = 1; i < 9; i++)
		commit_chunks(st, i * 64, 64, 256 * KIB);
	a.stop = 1;
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	assert_int_equal(a.bad, 0);
	assert_true(a.reads > 0);
	assert_true(stats_of(st).map_size > 64ull * MIB);
	store_close(st);
	free(dir);
}

/* A second writer (another process) is refused; a reader is not. */
static void test_locked(void **state)
{
	char *dir = state_path(state);
	struct store *st = open_ok(dir, STORE_CREATE);
	pid_t pid;

	commit_chunks(st, 1, 1, 1000);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct store *st2 = NULL;
		struct store_rd *rd;
		uint8_t id[32];
		int fails = 0, rc;

		rc = store_open(dir, STORE_WRITE, &st2);
		CHILD_CHECK(rc == FERRY_ELOCKED, fails);
		CHILD_CHECK(st2 == NULL, fails);
		CHILD_CHECK(strstr(ferry_errmsg(rc), dir) != NULL, fails);
		CHILD_CHECK(strstr(ferry_errmsg(rc),
				   "is in use by another process (a running ferryd?)") != NULL,
			    fails);
		rc = store_open(dir, STORE_CREATE, &st2);
		CHILD_CHECK(rc == FERRY_ELOCKED, fails);
		rc = store_open(dir, 0, &st2);
		CHILD_CHECK(rc == 0, fails);
		if (rc == 0) {
			CHILD_CHECK(store_rd_begin(st2, &rd) == 0, fails);
			make_id(id, 1);
			CHILD_CHECK(store_chunk_has(rd, id), fails);
			store_rd_end(rd);
			store_close(st2);
		}
		_exit(fails);
	}
	child_ok(pid);
	store_close(st);

	/* Closed: another process may write now. */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct store *st2 = NULL;
		int fails = 0;

		CHILD_CHECK(store_open(dir, STORE_WRITE, &st2) == 0, fails);
		store_close(st2);
		_exit(fails);
	}
	child_ok(pid);
	free(dir);
}

static void wait_byte(int fd)
{
	char c;

	while (read(fd, &c, 1) < 0 && errno == EINTR)
		;
}

static void send_byte(int fd)
{
	while (write(fd, "x", 1) < 0 && errno == EINTR)
		;
}

/*
 * A read-only process reads while this one commits: its open read
 * transaction keeps its snapshot; a new one sees the commit, even after the
 * writer grew the map past the reader's.
 */
static void test_reader_process(void **state)
{
	char *dir = state_path(state);
	struct store *st = open_ok(dir, STORE_CREATE);
	int to_child[2], to_parent[2];
	pid_t pid;

	commit_chunks(st, 0, 1, 1000);
	assert_int_equal(pipe(to_child), 0);
	assert_int_equal(pipe(to_parent), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct store *ro = NULL;
		struct store_rd *rd = NULL;
		struct store_stats s;
		uint8_t id[32];
		int fails = 0;

		CHILD_CHECK(store_open(dir, 0, &ro) == 0, fails);
		CHILD_CHECK(store_rd_begin(ro, &rd) == 0, fails);
		send_byte(to_parent[1]);
		wait_byte(to_child[0]); /* the parent committed chunk 1 */
		make_id(id, 0);
		CHILD_CHECK(store_chunk_has(rd, id), fails);
		make_id(id, 1);
		CHILD_CHECK(!store_chunk_has(rd, id), fails);
		store_rd_end(rd);
		CHILD_CHECK(store_rd_begin(ro, &rd) == 0, fails);
		CHILD_CHECK(store_chunk_has(rd, id), fails);
		store_rd_end(rd);
		send_byte(to_parent[1]);
		wait_byte(to_child[0]); /* the parent wrote 120 MiB more */
		CHILD_CHECK(store_rd_begin(ro, &rd) == 0, fails);
		make_id(id, 100 + 479);
		CHILD_CHECK(store_chunk_has(rd, id), fails);
		store_rd_end(rd);
		CHILD_CHECK(store_stats(ro, &s) == 0 && s.chunks == 482, fails);
		CHILD_CHECK(s.map_size > 120ull * MIB, fails);
		store_close(ro);
		_exit(fails);
	}
	wait_byte(to_parent[0]);
	commit_chunks(st, 1, 1, 1000);
	send_byte(to_child[1]);
	wait_byte(to_parent[0]);
	for (uint32_t i = 0; i < 6; i++)
		commit_chunks(st, 100 + i * 80, 80, 256 * KIB);
	send_byte(to_child[1]);
	child_ok(pid);
	close(to_child[0]);
	close(to_child[1]);
	close(to_parent[0]);
	close(to_parent[1]);
	store_close(st);
	free(dir);
}

/* Overwrite the schema version the way another ferry version would have left it. */
static void set_schema(const char *dir, uint64_t version)
{
	char *env_dir = xasprintf("%s/store", dir);
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	uint8_t buf[8];
	MDB_val k = {6, "schema"}, v = {8, buf};

	for (int i = 0; i < 8; i++)
		buf[i] = (uint8_t)(version >> (56 - 8 * i));
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
	assert_int_equal(mdb_env_open(env, env_dir, 0, 0640), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
	assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
	free(env_dir);
}

static void test_schema(void **state)
{
	char *dir = state_path(state);
	struct store *st = open_ok(dir, STORE_CREATE);
	const char *msg;

	commit_chunks(st, 0, 3, 100);
	store_close(st);

	/* A store from a newer ferry is refused, for reading and writing. */
	set_schema(dir, 2);
	assert_int_equal(store_open(dir, STORE_WRITE, &st), FERRY_EVERSION);
	assert_null(st);
	msg = ferry_errmsg(FERRY_EVERSION);
	assert_non_null(strstr(msg, "schema version 2"));
	assert_non_null(strstr(msg, "version 1"));
	assert_int_equal(store_open(dir, 0, &st), FERRY_EVERSION);
	assert_non_null(strstr(ferry_errmsg(FERRY_EVERSION), "schema version 2"));

	/* An older version with no migration step is refused by name too, and
	 * a read-only open asks for a write open to migrate. */
	set_schema(dir, 0);
	assert_int_equal(store_open(dir, STORE_WRITE, &st), FERRY_EVERSION);
	msg = ferry_errmsg(FERRY_EVERSION);
	assert_non_null(strstr(msg, "schema version 0"));
	assert_non_null(strstr(msg, "cannot migrate"));
	assert_int_equal(store_open(dir, 0, &st), FERRY_EVERSION);
	assert_non_null(strstr(ferry_errmsg(FERRY_EVERSION), "open it for writing"));

	/* The refusals changed nothing: back at version 1 it opens with its data. */
	set_schema(dir, 1);
	st = open_ok(dir, STORE_WRITE);
	assert_int_equal(stats_of(st).chunks, 3);
	store_close(st);
	free(dir);
}

/* The raw keys and values, as docs/formats.md "Store layout" describes them. */
static void test_layout(void **state)
{
	char *dir = state_path(state);
	char *env_dir = xasprintf("%s/store", dir);
	struct store *st = open_ok(dir, STORE_CREATE);
	struct store_head h = {.hwm = 5, .active = 3, .previous = 2, .held = 0x0102030405060708};
	struct store_wr *wr;
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k, v;
	static const uint8_t mkey[] = {'l', 'l', 'a', 'm', 'a', 0, 0, 0, 0, 0, 0, 0, 0, 3};
	static const uint8_t head[32] = {[7] = 5, [15] = 3, [23] = 2, [24] = 1, 2, 3,
					 4,	  5,	    6,	      7,	8};
	static const uint8_t one[8] = {[7] = 1};
	uint8_t id[32];

	assert_int_equal(store_wr_begin(st, &wr), 0);
	assert_int_equal(store_wr_manifest_put(wr, "llama", 3, (const uint8_t *)"SIGNED", 6), 0);
	assert_int_equal(store_wr_head_put(wr, "llama", &h), 0);
	assert_int_equal(store_wr_pin(wr, "llama", 3, true), 0);
	queue_chunks(wr, 9, 1, 10);
	assert_int_equal(store_wr_commit(wr), 0);
	store_close(st);

	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
	assert_int_equal(mdb_env_open(env, env_dir, MDB_RDONLY, 0), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);

	assert_int_equal(mdb_dbi_open(txn, "manifests", 0, &dbi), 0);
	k = (MDB_val){sizeof(mkey), (void *)mkey};
	assert_int_equal(mdb_get(txn, dbi, &k, &v), 0);
	assert_int_equal(v.mv_size, 6);
	assert_memory_equal(v.mv_data, "SIGNED", 6);

	assert_int_equal(mdb_dbi_open(txn, "pins", 0, &dbi), 0);
	assert_int_equal(mdb_get(txn, dbi, &k, &v), 0);
	assert_int_equal(v.mv_size, 0);

	assert_int_equal(mdb_dbi_open(txn, "heads", 0, &dbi), 0);
	k = (MDB_val){5, "llama"};
	assert_int_equal(mdb_get(txn, dbi, &k, &v), 0);
	assert_int_equal(v.mv_size, 32);
	assert_memory_equal(v.mv_data, head, 32);

	assert_int_equal(mdb_dbi_open(txn, "chunks", 0, &dbi), 0);
	make_id(id, 9);
	k = (MDB_val){32, id};
	assert_int_equal(mdb_get(txn, dbi, &k, &v), 0);
	assert_int_equal(v.mv_size, 10);

	assert_int_equal(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
	k = (MDB_val){6, "schema"};
	assert_int_equal(mdb_get(txn, dbi, &k, &v), 0);
	assert_int_equal(v.mv_size, 8);
	assert_memory_equal(v.mv_data, one, 8);
	k = (MDB_val){6, "chunks"};
	assert_int_equal(mdb_get(txn, dbi, &k, &v), 0);
	assert_memory_equal(v.mv_data, one, 8);
	k = (MDB_val){9, "manifests"};
	assert_int_equal(mdb_get(txn, dbi, &k, &v), 0);
	assert_memory_equal(v.mv_data, one, 8);
	k = (MDB_val){11, "chunk_bytes"};
	assert_int_equal(mdb_get(txn, dbi, &k, &v), 0);
	assert_int_equal(((uint8_t *)v.mv_data)[7], 10);

	mdb_txn_abort(txn);
	mdb_env_close(env);
	free(env_dir);
	free(dir);
}

/* lmdb-utils read the store, as DESIGN.md promises operators. */
static void test_mdb_stat(void **state)
{
	char *dir = state_path(state);
	struct store *st = open_ok(dir, STORE_CREATE);
	char *cmd, line[256];
	FILE *p;
	bool entries = false;

	if (access("/usr/bin/mdb_stat", X_OK) != 0) {
		store_close(st);
		free(dir);
		skip();
	}
	commit_chunks(st, 0, 5, 100);
	cmd = xasprintf("/usr/bin/mdb_stat -s chunks '%s/store' 2>&1", dir);
	p = popen(cmd, "r");
	assert_non_null(p);
	while (fgets(line, sizeof(line), p))
		if (strstr(line, "Entries: 5"))
			entries = true;
	assert_int_equal(pclose(p), 0);
	assert_true(entries);
	free(cmd);
	store_close(st);
	free(dir);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup_dir, teardown_dir)
	const struct CMUnitTest tests[] = {
	    T(test_open_errors),
	    T(test_chunks),
	    T(test_duplicates_and_counters),
	    T(test_manifests),
	    T(test_heads_and_pins),
	    T(test_blobs),
	    T(test_batch_and_reopen),
	    T(test_enospc),
	    T(test_map_growth),
	    T(test_grow_with_own_reader),
	    T(test_readers_in_threads),
	    T(test_locked),
	    T(test_reader_process),
	    T(test_schema),
	    T(test_layout),
	    T(test_mdb_stat),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
