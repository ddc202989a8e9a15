/*
 * The store thread; see include/ferry/storeq.h.
 *
 * Glossary:
 *   queue   chunks queued by storeq_put() and not committed yet, oldest
 *           first (q->head). The thread detaches a batch from its front,
 *           commits it without the lock held, and on failure puts it back
 *           at the front, so the order and the data survive a full disk.
 *   done    what the loop thread has to hear about: ids of committed
 *           chunks and finished jobs. The thread appends to it and wakes
 *           the loop with uv_async_send(); on_async() drains it.
 *
 * Locking: q->mu protects every field marked "mu" below. The thread never
 * calls into the store with q->mu held, so storeq_put() never waits on a
 * commit.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>

#include "ferry/error.h"
#include "ferry/log.h"
#include "ferry/store.h"
#include "ferry/storeq.h"
#include "ferry/util.h"
/* After util.h: <uv.h> pulls in <sys/param.h> (MIN/MAX). */
#include <uv.h>

struct item {
	struct item *next;
	uint8_t id[32];
	uint8_t *enc;
	size_t len;
	uint64_t queued_ms;
};

struct job {
	struct job *next;
	int (*work)(void *arg, struct store *st);
	void (*done)(void *arg, int rc);
	void *arg;
	int rc;
};

struct storeq {
	uv_loop_t *loop;
	uv_async_t async;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct store *st;
	struct storeq_params p; /* mu (min_free_space changes at run time) */
	storeq_commit_cb on_commit;
	void *arg;

	/* mu */
	struct item *head, **tail;
	size_t queued_bytes;
	struct job *jobs, **jobs_tail;
	uint8_t (*done_ids)[32];
	size_t n_done, cap_done;
	struct job *done_jobs, **done_jobs_tail;
	bool closing, stopped;
	bool err;
	bool flush; /* commit what is queued now, without waiting for commit_ms */
	char errmsg[512];
	uint64_t retry_at;
	struct storeq_stats stats;

	void (*close_cb)(void *arg);
	void *close_arg;
};

void storeq_params_default(struct storeq_params *p)
{
	*p = (struct storeq_params){
	    .commit_bytes = 4u << 20,
	    .commit_ms = 500,
	    .max_queued_bytes = 8u << 20,
	    .min_free_space = 0,
	    .retry_ms = 2000,
	};
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Wait on q->cond until the monotonic time deadline_ms (q->mu held). */
static void wait_until(struct storeq *q, uint64_t deadline_ms)
{
	struct timespec ts = {.tv_sec = (time_t)(deadline_ms / 1000u),
			      .tv_nsec = (long)(deadline_ms % 1000u) * 1000000L};

	pthread_cond_timedwait(&q->cond, &q->mu, &ts);
}

/* Free space on the store's file system; UINT64_MAX if it cannot be read. */
static uint64_t fs_free(const struct store *st)
{
	struct statvfs v;

	if (statvfs(store_state_dir(st), &v) != 0)
		return UINT64_MAX;
	return (uint64_t)v.f_bavail * v.f_frsize;
}

/* Commit the chunks of batch (q->mu not held). 0 or a negative code; detail on failure. */
static int commit_items(struct storeq *q, struct item *batch, size_t bytes, uint64_t min_free)
{
	struct store_wr *wr = NULL;
	int rc;

	if (min_free > 0) {
		uint64_t avail = fs_free(q->st);
		char a[32], m[32];

		if (avail != UINT64_MAX && (avail < min_free || avail - min_free < bytes))
			return ferry_errf(FERRY_ENOSPC,
					  "no room for %zu bytes of chunks in %s: %s free and "
					  "min_free_space keeps %s free",
					  bytes, store_state_dir(q->st),
					  fmt_bytes(a, sizeof(a), avail),
					  fmt_bytes(m, sizeof(m), min_free));
	}
	rc = store_wr_begin(q->st, &wr);
	if (rc < 0)
		return rc;
	for (struct item *it = batch; it != NULL; it = it->next) {
		rc = store_wr_chunk_put(wr, it->id, it->enc, it->len);
		if (rc < 0) {
			store_wr_abort(wr);
			return rc;
		}
	}
	return store_wr_commit(wr);
}

static void free_items(struct item *it)
{
	while (it != NULL) {
		struct item *next = it->next;

		free(it->enc);
		free(it);
		it = next;
	}
}

/*
 * Detach a batch from the front of the queue (at least one chunk, then as
 * many as fit in commit_bytes), commit it, and account for the outcome.
 * Called and returns with q->mu held.
 */
static void commit_batch(struct storeq *q)
{
	struct item *batch = q->head, *last = q->head;
	size_t bytes = last->len, n = 1;
	uint64_t min_free = q->p.min_free_space;
	bool closing = q->closing;
	int rc;

	while (last->next != NULL && bytes + last->next->len <= q->p.commit_bytes) {
		last = last->next;
		bytes += last->len;
		n++;
	}
	q->head = last->next;
	if (q->head == NULL) {
		q->tail = &q->head;
		q->flush = false;
	}
	last->next = NULL;

	pthread_mutex_unlock(&q->mu);
	rc = commit_items(q, batch, bytes, min_free);
	pthread_mutex_lock(&q->mu);

	if (rc == 0) {
		if (q->n_done + n > q->cap_done) {
			q->cap_done = MAX(q->n_done + n, 2 * q->cap_done);
			q->done_ids = xreallocarray(q->done_ids, q->cap_done, 32);
		}
		for (struct item *it = batch; it != NULL; it = it->next)
			memcpy(q->done_ids[q->n_done++], it->id, 32);
		q->queued_bytes -= bytes;
		q->stats.commits++;
		q->stats.chunks += n;
		q->stats.bytes += bytes;
		if (q->err) {
			q->err = false;
			log_notice(LOG_STORE, "store writes resumed: %zu chunks committed", n);
		}
		pthread_mutex_unlock(&q->mu);
		free_items(batch);
		uv_async_send(&q->async);
		pthread_mutex_lock(&q->mu);
		return;
	}

	q->stats.failures++;
	if (closing) {
		log_err(LOG_STORE,
			"%zu received chunks (%zu bytes) could not be stored at exit: %s", n, bytes,
			ferry_errmsg(rc));
		q->stats.dropped_chunks += n;
		q->queued_bytes -= bytes;
		pthread_mutex_unlock(&q->mu);
		free_items(batch);
		pthread_mutex_lock(&q->mu);
		return;
	}
	/* Put the batch back at the front: nothing is lost, the retry takes it again. */
	last->next = q->head;
	if (q->head == NULL)
		q->tail = &last->next;
	q->head = batch;
	if (!q->err || strcmp(q->errmsg, ferry_errmsg(rc)) != 0)
		log_err(LOG_STORE, "cannot store received chunks, retrying every %u ms: %s",
			q->p.retry_ms, ferry_errmsg(rc));
	q->err = true;
	snprintf(q->errmsg, sizeof(q->errmsg), "%s", ferry_errmsg(rc));
	q->retry_at = mono_ms() + q->p.retry_ms;
}

/* Run every queued job, in order. Called and returns with q->mu held. */
static void run_jobs(struct storeq *q)
{
	struct job *list = q->jobs, *last = NULL;

	q->jobs = NULL;
	q->jobs_tail = &q->jobs;
	pthread_mutex_unlock(&q->mu);
	for (struct job *j = list; j != NULL; j = j->next) {
		j->rc = j->work(j->arg, q->st);
		last = j;
	}
	pthread_mutex_lock(&q->mu);
	*q->done_jobs_tail = list;
	q->done_jobs_tail = &last->next;
	pthread_mutex_unlock(&q->mu);
	uv_async_send(&q->async);
	pthread_mutex_lock(&q->mu);
}

static void *thread_main(void *arg)
{
	struct storeq *q = arg;

	pthread_mutex_lock(&q->mu);
	for (;;) {
		uint64_t now = mono_ms(), due_at;

		if (q->jobs != NULL) {
			run_jobs(q);
			continue;
		}
		if (q->head == NULL) {
			if (q->closing)
				break;
			pthread_cond_wait(&q->cond, &q->mu);
			continue;
		}
		if (q->closing) {
			commit_batch(q);
			continue;
		}
		if (q->err)
			due_at = q->retry_at;
		else if (q->queued_bytes >= q->p.commit_bytes || q->flush)
			due_at = now;
		else
			due_at = q->head->queued_ms + q->p.commit_ms;
		if (now >= due_at)
			commit_batch(q);
		else
			wait_until(q, due_at);
	}
	q->stopped = true;
	pthread_mutex_unlock(&q->mu);
	uv_async_send(&q->async);
	return NULL;
}

static void on_closed(uv_handle_t *h)
{
	struct storeq *q = h->data;
	void (*cb)(void *) = q->close_cb;
	void *arg = q->close_arg;

	pthread_cond_destroy(&q->cond);
	pthread_mutex_destroy(&q->mu);
	free(q->done_ids);
	free(q);
	if (cb != NULL)
		cb(arg);
}

static void on_async(uv_async_t *h)
{
	struct storeq *q = h->data;
	uint8_t(*ids)[32];
	size_t n;
	struct job *jobs;
	bool stopped;

	pthread_mutex_lock(&q->mu);
	ids = q->done_ids;
	n = q->n_done;
	q->done_ids = NULL;
	q->n_done = q->cap_done = 0;
	jobs = q->done_jobs;
	q->done_jobs = NULL;
	q->done_jobs_tail = &q->done_jobs;
	stopped = q->stopped;
	pthread_mutex_unlock(&q->mu);

	if (n > 0 && q->on_commit != NULL)
		q->on_commit(q->arg, (const uint8_t(*)[32])ids, n);
	free(ids);
	while (jobs != NULL) {
		struct job *next = jobs->next;

		if (jobs->done != NULL)
			jobs->done(jobs->arg, jobs->rc);
		free(jobs);
		jobs = next;
	}
	if (stopped && q->closing && !uv_is_closing((uv_handle_t *)&q->async)) {
		pthread_join(q->thread, NULL);
		uv_close((uv_handle_t *)&q->async, on_closed);
	}
}

int storeq_new(struct uv_loop_s *loop, struct store *st, const struct storeq_params *p,
	       storeq_commit_cb on_commit, void *arg, struct storeq **out)
{
	struct storeq *q = xcalloc(1, sizeof(*q));
	pthread_condattr_t ca;
	int rc;

	*out = NULL;
	q->loop = loop;
	q->st = st;
	if (p != NULL)
		q->p = *p;
	else
		storeq_params_default(&q->p);
	if (q->p.commit_bytes == 0)
		q->p.commit_bytes = 1;
	q->on_commit = on_commit;
	q->arg = arg;
	q->tail = &q->head;
	q->jobs_tail = &q->jobs;
	q->done_jobs_tail = &q->done_jobs;
	pthread_mutex_init(&q->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&q->cond, &ca);
	pthread_condattr_destroy(&ca);

	rc = uv_async_init(loop, &q->async, on_async);
	if (rc < 0) {
		rc = ferry_errf(FERRY_EIO, "cannot create the store thread's wake-up handle: %s",
				uv_strerror(rc));
		goto fail;
	}
	q->async.data = q;
	rc = pthread_create(&q->thread, NULL, thread_main, q);
	if (rc != 0) {
		rc = ferry_errf(FERRY_EIO, "cannot start the store thread: %s", strerror(rc));
		/* The handle is initialised: it must be closed before q is freed. */
		q->closing = true;
		q->stopped = true;
		uv_close((uv_handle_t *)&q->async, on_closed);
		return rc;
	}
	*out = q;
	return 0;
fail:
	pthread_cond_destroy(&q->cond);
	pthread_mutex_destroy(&q->mu);
	free(q);
	return rc;
}

void storeq_put(struct storeq *q, const uint8_t id[static 32], uint8_t *enc, size_t len)
{
	struct item *it;

	pthread_mutex_lock(&q->mu);
	if (q->closing) {
		pthread_mutex_unlock(&q->mu);
		free(enc);
		return;
	}
	it = xmalloc(sizeof(*it));
	it->next = NULL;
	memcpy(it->id, id, 32);
	it->enc = enc;
	it->len = len;
	it->queued_ms = mono_ms();
	*q->tail = it;
	q->tail = &it->next;
	q->queued_bytes += len;
	pthread_cond_signal(&q->cond);
	pthread_mutex_unlock(&q->mu);
}

void storeq_job(struct storeq *q, int (*work)(void *arg, struct store *st),
		void (*done)(void *arg, int rc), void *arg)
{
	struct job *j = xcalloc(1, sizeof(*j));

	j->work = work;
	j->done = done;
	j->arg = arg;
	pthread_mutex_lock(&q->mu);
	*q->jobs_tail = j;
	q->jobs_tail = &j->next;
	pthread_cond_signal(&q->cond);
	pthread_mutex_unlock(&q->mu);
}

void storeq_flush(struct storeq *q)
{
	pthread_mutex_lock(&q->mu);
	if (q->head != NULL) {
		q->flush = true;
		pthread_cond_signal(&q->cond);
	}
	pthread_mutex_unlock(&q->mu);
}

size_t storeq_queued_bytes(struct storeq *q)
{
	size_t n;

	pthread_mutex_lock(&q->mu);
	n = q->queued_bytes;
	pthread_mutex_unlock(&q->mu);
	return n;
}

bool storeq_busy(struct storeq *q)
{
	return storeq_queued_bytes(q) > q->p.max_queued_bytes;
}

bool storeq_error(struct storeq *q, char *buf, size_t cap)
{
	bool err;

	pthread_mutex_lock(&q->mu);
	err = q->err;
	if (err && cap > 0)
		snprintf(buf, cap, "%s", q->errmsg);
	pthread_mutex_unlock(&q->mu);
	return err;
}

void storeq_set_min_free(struct storeq *q, uint64_t bytes)
{
	pthread_mutex_lock(&q->mu);
	q->p.min_free_space = bytes;
	/* A lower floor may let a failed batch through now: retry at once. */
	q->retry_at = 0;
	pthread_cond_signal(&q->cond);
	pthread_mutex_unlock(&q->mu);
}

void storeq_stats(struct storeq *q, struct storeq_stats *out)
{
	pthread_mutex_lock(&q->mu);
	*out = q->stats;
	pthread_mutex_unlock(&q->mu);
}

void storeq_close(struct storeq *q, void (*cb)(void *arg), void *arg)
{
	pthread_mutex_lock(&q->mu);
	q->close_cb = cb;
	q->close_arg = arg;
	q->closing = true;
	pthread_cond_signal(&q->cond);
	pthread_mutex_unlock(&q->mu);
}
