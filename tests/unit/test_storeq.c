/*
 * Unit tests for the store thread, on a real store in a temporary directory
 * and a real libuv loop: chunks queued are in the store once on_commit has
 * named them, batches respect the size trigger, a batch that cannot be
 * stored (the min_free_space floor plays a full disk) stays queued and goes
 * in once room appears, jobs run off the loop thread, and close flushes.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/error.h"
#include "ferry/store.h"
#include "ferry/storeq.h"
#include "ferry/util.h"
#include <uv.h>

#define KIB 1024u

struct fix {
	char *dir;
	uv_loop_t loop;
	struct store *st;
	struct storeq *q;
	/* what on_commit reported */
	uint8_t (*ids)[32];
	size_t n_ids;
	unsigned commit_calls;
	bool closed;
};

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void on_commit(void *arg, const uint8_t (*ids)[32], size_t n)
{
	struct fix *f = arg;

	f->ids = xreallocarray(f->ids, f->n_ids + n, 32);
	memcpy(f->ids[f->n_ids], ids, n * 32);
	f->n_ids += n;
	f->commit_calls++;
}

static struct fix *fix_new(const struct storeq_params *p)
{
	struct fix *f = xcalloc(1, sizeof(*f));
	const char *tmp = getenv("TMPDIR");
	char *state;
	int rc;

	f->dir = xasprintf("%s/ferry-storeq-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	assert_non_null(mkdtemp(f->dir));
	state = xasprintf("%s/state", f->dir);
	rc = store_open(state, STORE_WRITE | STORE_CREATE, &f->st);
	free(state);
	if (rc)
		print_error("store_open: %s\n", ferry_errmsg(rc));
	assert_int_equal(rc, 0);
	assert_int_equal(uv_loop_init(&f->loop), 0);
	assert_int_equal(storeq_new(&f->loop, f->st, p, on_commit, f, &f->q), 0);
	return f;
}

static void on_q_closed(void *arg)
{
	((struct fix *)arg)->closed = true;
}

static void fix_close_queue(struct fix *f)
{
	storeq_close(f->q, on_q_closed, f);
	while (!f->closed)
		uv_run(&f->loop, UV_RUN_ONCE);
	f->q = NULL;
}

static void fix_free(struct fix *f)
{
	if (f->q != NULL)
		fix_close_queue(f);
	assert_int_equal(uv_loop_close(&f->loop), 0);
	store_close(f->st);
	nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(f->dir);
	free(f->ids);
	free(f);
}

static void make_id(uint8_t id[32], uint32_t n)
{
	memset(id, 0x5a, 32);
	memcpy(id, &n, sizeof(n));
}

static uint8_t *make_value(uint32_t n, size_t len)
{
	uint8_t *v = xmalloc(len);

	for (size_t i = 0; i < len; i++)
		v[i] = (uint8_t)(n * 131 + i * 7 + (i >> 9));
	return v;
}

static void put(struct fix *f, uint32_t n, size_t len)
{
	uint8_t id[32];

	make_id(id, n);
	storeq_put(f->q, id, make_value(n, len), len);
}

static bool reported(const struct fix *f, uint32_t n)
{
	uint8_t id[32];

	make_id(id, n);
	for (size_t i = 0; i < f->n_ids; i++)
		if (memcmp(f->ids[i], id, 32) == 0)
			return true;
	return false;
}

static bool stored(struct fix *f, uint32_t n, size_t len)
{
	struct store_rd *rd;
	uint8_t id[32], *want = make_value(n, len);
	const uint8_t *enc;
	size_t got;
	bool ok;

	make_id(id, n);
	assert_int_equal(store_rd_begin(f->st, &rd), 0);
	ok = store_chunk_get(rd, id, &enc, &got) == 0 && got == len && memcmp(enc, want, len) == 0;
	store_rd_end(rd);
	free(want);
	return ok;
}

static void on_tick(uv_timer_t *t)
{
}

/* Run the loop until f has heard of n ids. A 10 ms timer keeps UV_RUN_ONCE from blocking. */
static void run_until_ids(struct fix *f, size_t n)
{
	uv_timer_t t;

	uv_timer_init(&f->loop, &t);
	uv_timer_start(&t, on_tick, 10, 10);
	while (f->n_ids < n)
		uv_run(&f->loop, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&t, NULL);
	uv_run(&f->loop, UV_RUN_NOWAIT);
}

/* Run the loop (and so give the store thread time) for about ms milliseconds. */
static void run_for(struct fix *f, uint64_t ms)
{
	uint64_t end = now_ms() + ms;
	uv_timer_t t;

	uv_timer_init(&f->loop, &t);
	uv_timer_start(&t, on_tick, 5, 5);
	while (now_ms() < end)
		uv_run(&f->loop, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&t, NULL);
	uv_run(&f->loop, UV_RUN_NOWAIT);
}

/* Every chunk queued reaches the store, byte for byte, and is reported once committed. */
static void test_put_commit(void **state)
{
	struct storeq_params p;
	struct storeq_stats s;
	struct fix *f;

	storeq_params_default(&p);
	p.commit_ms = 20;
	f = fix_new(&p);
	for (uint32_t n = 0; n < 50; n++)
		put(f, n, 1000 + n);
	run_until_ids(f, 50);
	for (uint32_t n = 0; n < 50; n++) {
		assert_true(reported(f, n));
		assert_true(stored(f, n, 1000 + n));
	}
	assert_int_equal(storeq_queued_bytes(f->q), 0);
	storeq_stats(f->q, &s);
	assert_int_equal(s.chunks, 50);
	assert_false(storeq_error(f->q, NULL, 0));
	fix_free(f);
}

/* storeq_flush commits a small batch at once instead of after commit_ms (an hour here). */
static void test_flush(void **state)
{
	struct storeq_params p;
	struct fix *f;
	uint64_t give_up;

	storeq_params_default(&p);
	p.commit_ms = 3600 * 1000;
	f = fix_new(&p);
	for (uint32_t n = 0; n < 3; n++)
		put(f, n, 1000);
	run_for(f, 50);
	assert_int_equal(f->n_ids, 0);
	storeq_flush(f->q);
	give_up = now_ms() + 10000;
	while (f->n_ids < 3 && now_ms() < give_up)
		run_for(f, 10);
	assert_int_equal(f->n_ids, 3);
	for (uint32_t n = 0; n < 3; n++)
		assert_true(stored(f, n, 1000));
	/* The flush applied to what was queued: a new chunk waits for commit_ms again. */
	put(f, 3, 1000);
	run_for(f, 50);
	assert_int_equal(f->n_ids, 3);
	fix_free(f);
}

/* A batch never holds more than commit_bytes (unless one chunk alone is larger). */
static void test_batch_size(void **state)
{
	struct storeq_params p;
	struct storeq_stats s;
	struct fix *f;

	storeq_params_default(&p);
	p.commit_bytes = 64 * KIB;
	p.commit_ms = 10000;
	f = fix_new(&p);
	/* 40 chunks of 16 KiB: 640 KiB, at most 4 a batch, so at least 10 commits. */
	for (uint32_t n = 0; n < 40; n++)
		put(f, n, 16 * KIB);
	run_until_ids(f, 40);
	storeq_stats(f->q, &s);
	assert_true(s.commits >= 10);
	assert_int_equal(s.bytes, 40 * 16 * KIB);
	for (uint32_t n = 0; n < 40; n++)
		assert_true(stored(f, n, 16 * KIB));
	fix_free(f);
}

/*
 * A batch that would leave less than min_free_space free is not stored and
 * not reported; the queue says why; once the floor is lowered the same
 * chunks go in, nothing lost.
 */
static void test_full_disk_retry(void **state)
{
	struct storeq_params p;
	struct storeq_stats s;
	char msg[512];
	struct fix *f;

	storeq_params_default(&p);
	p.commit_ms = 10;
	p.retry_ms = 20;
	p.min_free_space = UINT64_MAX / 2;
	f = fix_new(&p);
	for (uint32_t n = 0; n < 8; n++)
		put(f, n, 4 * KIB);
	while (!storeq_error(f->q, msg, sizeof(msg)))
		run_for(f, 20);
	assert_non_null(strstr(msg, "min_free_space"));
	/* Retries keep failing while the floor stands, and nothing is stored or reported. */
	run_for(f, 100);
	storeq_stats(f->q, &s);
	assert_true(s.failures >= 2);
	assert_int_equal(f->n_ids, 0);
	assert_false(stored(f, 0, 4 * KIB));
	assert_int_equal(storeq_queued_bytes(f->q), 8 * 4 * KIB);

	storeq_set_min_free(f->q, 0);
	run_until_ids(f, 8);
	for (uint32_t n = 0; n < 8; n++)
		assert_true(stored(f, n, 4 * KIB));
	assert_false(storeq_error(f->q, NULL, 0));
	fix_free(f);
}

/* storeq_busy() says stop once more than max_queued_bytes wait. */
static void test_busy(void **state)
{
	struct storeq_params p;
	struct fix *f;

	storeq_params_default(&p);
	p.max_queued_bytes = 10 * KIB;
	p.min_free_space = UINT64_MAX / 2; /* nothing can drain */
	p.retry_ms = 60000;
	f = fix_new(&p);
	put(f, 1, 8 * KIB);
	assert_false(storeq_busy(f->q));
	put(f, 2, 8 * KIB);
	assert_true(storeq_busy(f->q));
	fix_free(f);
}

/*
 * More than a new store's map (64 MiB) goes through the queue: the store
 * thread grows the map while the loop thread keeps reading, as the node's
 * serving does, and nothing deadlocks or is lost.
 */
static void test_map_growth(void **state)
{
	enum { N = 96 };
	struct storeq_params p;
	struct fix *f;
	size_t len = 1024 * KIB;

	storeq_params_default(&p);
	f = fix_new(&p);
	for (uint32_t n = 0; n < N; n++) {
		put(f, n, len);
		if (n % 8 == 7)
			run_for(f, 5);
		/* A short read between puts, as serving a chunk does. */
		(void)stored(f, n / 2, len);
	}
	run_until_ids(f, N);
	for (uint32_t n = 0; n < N; n += 7)
		assert_true(stored(f, n, len));
	fix_free(f);
}

struct job_arg {
	pthread_t loop_thread;
	bool ran_elsewhere;
	bool done;
	int rc;
	uint32_t n;
};

/* A job that writes a peers record itself. */
static int job_work(void *arg, struct store *st)
{
	struct job_arg *a = arg;
	struct store_wr *wr;
	int rc;

	a->ran_elsewhere = !pthread_equal(pthread_self(), a->loop_thread);
	rc = store_wr_begin(st, &wr);
	if (rc < 0)
		return rc;
	store_wr_blob_put(wr, STORE_DB_PEERS, "k", 1, &a->n, sizeof(a->n));
	rc = store_wr_commit(wr);
	return rc < 0 ? rc : 7;
}

static void job_done(void *arg, int rc)
{
	struct job_arg *a = arg;

	a->done = true;
	a->rc = rc;
}

/* Jobs run on the store thread and report back on the loop thread, even in the error state. */
static void test_job(void **state)
{
	struct storeq_params p;
	struct job_arg a = {.loop_thread = pthread_self(), .n = 42};
	struct store_rd *rd;
	const uint8_t *v;
	size_t vlen;
	struct fix *f;

	storeq_params_default(&p);
	p.min_free_space = UINT64_MAX / 2;
	p.commit_ms = 1;
	f = fix_new(&p);
	put(f, 1, 100); /* stuck behind the floor */
	storeq_job(f->q, job_work, job_done, &a);
	while (!a.done)
		run_for(f, 10);
	assert_true(a.ran_elsewhere);
	assert_int_equal(a.rc, 7);
	assert_int_equal(store_rd_begin(f->st, &rd), 0);
	assert_int_equal(store_blob_get(rd, STORE_DB_PEERS, "k", 1, &v, &vlen), 0);
	assert_int_equal(vlen, sizeof(a.n));
	assert_memory_equal(v, &a.n, sizeof(a.n));
	store_rd_end(rd);
	fix_free(f);
}

/* Closing commits what waits for its window and delivers the last completions. */
static void test_close_flushes(void **state)
{
	struct storeq_params p;
	struct fix *f;

	storeq_params_default(&p);
	p.commit_ms = 600000;
	f = fix_new(&p);
	for (uint32_t n = 0; n < 20; n++)
		put(f, n, 2 * KIB);
	run_for(f, 20);
	assert_int_equal(f->n_ids, 0);
	fix_close_queue(f);
	assert_int_equal(f->n_ids, 20);
	for (uint32_t n = 0; n < 20; n++)
		assert_true(stored(f, n, 2 * KIB));
	fix_free(f);
}

/* Closing in the error state gives up after one attempt instead of hanging. */
static void test_close_in_error(void **state)
{
	struct storeq_params p;
	struct fix *f;

	storeq_params_default(&p);
	p.commit_ms = 1;
	p.min_free_space = UINT64_MAX / 2;
	p.retry_ms = 600000;
	f = fix_new(&p);
	put(f, 3, 1000);
	while (!storeq_error(f->q, NULL, 0))
		run_for(f, 5);
	fix_close_queue(f);
	assert_int_equal(f->n_ids, 0);
	assert_false(stored(f, 3, 1000));
	fix_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_put_commit),
	    cmocka_unit_test(test_batch_size),
	    cmocka_unit_test(test_flush),
	    cmocka_unit_test(test_full_disk_retry),
	    cmocka_unit_test(test_busy),
	    cmocka_unit_test(test_job),
	    cmocka_unit_test(test_close_flushes),
	    cmocka_unit_test(test_close_in_error),
	    cmocka_unit_test(test_map_growth),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
