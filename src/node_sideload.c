/*
 * The node's sideload jobs (include/ferry/node_sideload.h).
 *
 * A job lives from the call to the close callback of its async handle:
 *
 *   loop: node_sideload() --storeq_job--> store thread: bundle_import()
 *                                           |  progress: copy under the lock,
 *                                           |  uv_async_send (coalesced)
 *   loop: on_async() <----------------------+  -> progress callback
 *   loop: import_done(): last progress, track the versions, cb, uv_close
 *   loop: on_closed(): free, node__stop_progress
 *
 * bundle_create and have_write run on the worker pool the same way, with
 * uv_queue_work in place of the store queue.
 */
#include "config.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ferry/bundle.h"
#include "ferry/catalog.h"
#include "ferry/error.h"
#include "ferry/gossip.h"
#include "ferry/have.h"
#include "ferry/log.h"
#include "ferry/manifest.h"
#include "ferry/node_sideload.h"
#include "ferry/store.h"
#include "ferry/storeq.h"
#include "node_int.h"

/* A version a sideload accepted, loaded on the store thread for the loop thread. */
struct accepted {
	struct manifest *m; /* NULL if it could not be loaded back */
	uint8_t *bytes;	    /* the signed manifest, for gossip */
	size_t len;
	uint8_t hash[32];
	int outcome; /* enum catalog_outcome */
};

struct job {
	uv_work_t w;
	uv_async_t async;
	struct node *n;
	int fd, fd2;
	/* Progress, written by the working thread under lock, read on the loop. */
	pthread_mutex_t lock;
	struct bundle_progress snap;
	char snap_file[32];
	bool dirty;
	node_bundle_progress_fn progress;
	void *arg;
	int rc;
	char msg[1024];
	/* sideload */
	struct bundle_report rep;
	struct accepted *acc;
	size_t nacc;
	void (*sideload_cb)(void *arg, int rc, const struct bundle_report *rep);
	/* bundle create */
	struct bundle_ref *refs;
	char (*names)[MANIFEST_NAME_MAX + 1];
	size_t nrefs;
	uint64_t pack_max;
	struct node_bundle_created created;
	char (*labels)[MANIFEST_LABEL_MAX + 1];
	void (*create_cb)(void *arg, int rc, const struct node_bundle_created *res);
	/* have */
	size_t nversions, nchunks;
	void (*have_cb)(void *arg, int rc, uint64_t nversions, uint64_t nchunks);
};

/* ---- progress across threads ---- */

/* On the working thread: keep the newest report and wake the loop. */
static int job_progress(void *arg, const struct bundle_progress *p)
{
	struct job *j = arg;

	pthread_mutex_lock(&j->lock);
	j->snap = *p;
	snprintf(j->snap_file, sizeof(j->snap_file), "%s", p->file ? p->file : "");
	j->snap.file = NULL;
	j->dirty = true;
	pthread_mutex_unlock(&j->lock);
	uv_async_send(&j->async);
	/*
	 * ferryd is stopping: end the job at the next file or 16 MiB rather than
	 * hold up the shutdown; what was committed stays. A plain flag read
	 * across threads: at worst one more step runs.
	 */
	return __atomic_load_n(&j->n->stopping, __ATOMIC_RELAXED) ? 1 : 0;
}

/* On the loop thread: pass the newest report on, if there is a new one. */
static void job_flush(struct job *j)
{
	struct bundle_progress p;
	char file[32];
	bool dirty;

	pthread_mutex_lock(&j->lock);
	dirty = j->dirty;
	p = j->snap;
	memcpy(file, j->snap_file, sizeof(file));
	j->dirty = false;
	pthread_mutex_unlock(&j->lock);
	if (!dirty || j->progress == NULL)
		return;
	p.file = file[0] ? file : NULL;
	j->progress(j->arg, &p);
}

static void on_async(uv_async_t *a)
{
	job_flush(a->data);
}

static void job_free(struct job *j)
{
	for (size_t i = 0; i < j->nacc; i++) {
		manifest_free(j->acc[i].m);
		free(j->acc[i].bytes);
	}
	free(j->acc);
	bundle_report_free(&j->rep);
	free(j->refs);
	free(j->names);
	free(j->labels);
	free(j->created.rows);
	pthread_mutex_destroy(&j->lock);
	free(j);
}

static void on_closed(uv_handle_t *h)
{
	struct job *j = h->data;
	struct node *n = j->n;

	job_free(j);
	n->pending_work--;
	node__stop_progress(n);
}

/* A job ready to start, or NULL (the descriptors closed) when ferryd is stopping. */
static struct job *job_new(struct node *n, int fd, int fd2, node_bundle_progress_fn progress,
			   void *arg, int *rc)
{
	struct job *j;

	if (n->stopping) {
		close(fd);
		if (fd2 >= 0)
			close(fd2);
		*rc = ferry_errf(FERRY_ECANCELED, "ferryd is stopping");
		return NULL;
	}
	j = xcalloc(1, sizeof(*j));
	j->n = n;
	j->fd = fd;
	j->fd2 = fd2;
	j->w.data = j;
	j->progress = progress;
	j->arg = arg;
	pthread_mutex_init(&j->lock, NULL);
	uv_async_init(n->loop, &j->async, on_async);
	j->async.data = j;
	n->pending_work++;
	*rc = 0;
	return j;
}

/* The job's work is over: the last progress, then the handle goes (and the job with it). */
static void job_end(struct job *j)
{
	job_flush(j);
	if (j->rc < 0)
		ferry_errf(j->rc, "%s", j->msg);
}

static void job_close(struct job *j)
{
	uv_close((uv_handle_t *)&j->async, on_closed);
}

/* The descriptors of a worker-pool job, closed on the loop thread once it is over. */
static void close_fds(struct job *j)
{
	if (j->fd >= 0)
		close(j->fd);
	if (j->fd2 >= 0)
		close(j->fd2);
	j->fd = j->fd2 = -1;
}

/* ---- sideload ---- */

/* Load back what the import accepted, so the loop thread can track it without the store. */
static void load_accepted(struct job *j, struct store *st)
{
	const struct bundle_report *rep = &j->rep;

	j->acc = xcalloc(rep->nmanifests ? rep->nmanifests : 1, sizeof(*j->acc));
	for (size_t i = 0; i < rep->nmanifests; i++) {
		const struct bundle_manifest_result *r = &rep->manifests[i];
		struct accepted *a = &j->acc[j->nacc];
		struct store_rd *rd;
		const uint8_t *bytes;
		size_t len;

		if (r->outcome <= 0 || store_rd_begin(st, &rd) < 0)
			continue;
		if (store_manifest_get(rd, r->name, r->version, &bytes, &len) == 0) {
			a->bytes = xmalloc(len);
			memcpy(a->bytes, bytes, len);
			a->len = len;
		}
		store_rd_end(rd);
		if (a->bytes == NULL ||
		    manifest_open(a->bytes, a->len, &j->n->trust, &a->m, a->hash) < 0) {
			log_warn(LOG_SIDELOAD, "cannot load back %s@%" PRIu64 " after the import",
				 r->name, r->version);
			free(a->bytes);
			memset(a, 0, sizeof(*a));
			continue;
		}
		a->outcome = r->outcome;
		j->nacc++;
	}
}

static int import_work(void *arg, struct store *st)
{
	struct job *j = arg;
	struct bundle_import_opts o = {.progress = job_progress, .arg = j};
	int rc = bundle_import(st, &j->n->trust, j->fd, &o, &j->rep);

	if (rc < 0)
		snprintf(j->msg, sizeof(j->msg), "%s", ferry_errmsg(rc));
	close(j->fd);
	j->fd = -1;
	load_accepted(j, st);
	return rc;
}

/*
 * What fetching does when a version arrives, for each version the bundle
 * brought: the newest is recorded and gossiped, and the version is tracked,
 * which says HAVE to the peers and activates it if it is complete.
 */
static void track_accepted(struct job *j)
{
	struct node *n = j->n;

	for (size_t i = 0; i < j->nacc; i++) {
		struct accepted *a = &j->acc[i];
		struct nver *v;

		if (a->outcome == CATALOG_NEWEST || a->outcome == CATALOG_REPLACED)
			node__newest_update(n, a->m->name, a->m->version, a->hash);
		if (gossip_forward(a->outcome))
			node__push_manifest(n, a->bytes, a->len, NULL);
		v = node__ver_find(n, a->m->name, a->m->version);
		if (v != NULL) {
			node__ver_rescan(n, v);
		} else {
			node__version_known(n, a->m, a->hash);
			a->m = NULL;
		}
	}
}

static void import_done(void *arg, int rc)
{
	struct job *j = arg;

	j->rc = rc;
	job_end(j);
	log_notice(LOG_SIDELOAD,
		   "sideload %s: %zu manifests (%" PRIu32 " refused), %" PRIu64
		   " chunks imported, %" PRIu64 " bad, %" PRIu64 " missing",
		   rc == 0		  ? "done"
		   : rc == FERRY_ECORRUPT ? "ended with problems"
					  : "stopped",
		   j->rep.nmanifests, j->rep.manifests_refused, j->rep.chunks_imported,
		   j->rep.chunks_bad, j->rep.chunks_missing);
	if (rc < 0 && rc != FERRY_ECORRUPT)
		log_warn(LOG_SIDELOAD, "sideload stopped: %s", j->msg);
	if (!j->n->stopping)
		track_accepted(j);
	j->sideload_cb(j->arg, rc, &j->rep);
	job_close(j);
}

int node_sideload(struct node *n, int dirfd, node_bundle_progress_fn progress,
		  void (*cb)(void *arg, int rc, const struct bundle_report *rep), void *arg)
{
	int rc;
	struct job *j = job_new(n, dirfd, -1, progress, arg, &rc);

	if (j == NULL)
		return rc;
	j->sideload_cb = cb;
	log_info(LOG_SIDELOAD, "importing a bundle");
	storeq_job(n->sq, import_work, import_done, j);
	return 0;
}

/* ---- bundle create ---- */

static void create_work(uv_work_t *w)
{
	struct job *j = w->data;
	struct bundle_create_opts o = {.pack_max = j->pack_max, .progress = job_progress, .arg = j};
	struct have *h = NULL;
	int rc = 0;

	if (j->fd2 >= 0) {
		rc = have_read(j->fd2, &h);
		if (rc < 0)
			rc = ferry_errf(rc, "the have-file: %s", ferry_errmsg(rc));
	}
	if (rc == 0)
		rc = bundle_create(j->n->st, &j->n->trust, j->fd, j->refs, j->nrefs, h, &o,
				   &j->created.stats);
	if (rc == 0) {
		j->created.rows = xcalloc(j->nrefs, sizeof(*j->created.rows));
		j->labels = xcalloc(j->nrefs, sizeof(*j->labels));
		for (size_t i = 0; i < j->nrefs; i++) {
			struct node_model_row *row = &j->created.rows[j->created.nrows];
			struct manifest *m = NULL;

			/* What NAME alone stood for, as bundle_create resolved it. */
			if (catalog_load(j->n->st, &j->n->trust, j->refs[i].name,
					 j->refs[i].version, &m) != 0)
				continue;
			snprintf(j->labels[i], sizeof(j->labels[i]), "%s", m->label);
			row->name = j->refs[i].name;
			row->version = m->version;
			row->label = j->labels[i];
			row->size = manifest_total_size(m);
			row->present_pct = 100;
			j->created.nrows++;
			manifest_free(m);
		}
	}
	if (rc < 0)
		snprintf(j->msg, sizeof(j->msg), "%s", ferry_errmsg(rc));
	have_free(h);
	j->rc = rc;
}

static void create_done(uv_work_t *w, int status)
{
	struct job *j = w->data;

	(void)status;
	close_fds(j);
	job_end(j);
	j->create_cb(j->arg, j->rc, &j->created);
	job_close(j);
}

int node_bundle_create(struct node *n, int outdirfd, int havefd, const struct bundle_ref *refs,
		       size_t nrefs, uint64_t pack_max, node_bundle_progress_fn progress,
		       void (*cb)(void *arg, int rc, const struct node_bundle_created *res),
		       void *arg)
{
	struct job *j;
	int rc = nrefs == 0 ? ferry_errf(FERRY_EINVAL, "a bundle needs at least one model") : 0;

	for (size_t i = 0; rc == 0 && i < nrefs; i++)
		rc = manifest_name_check(refs[i].name);
	if (rc < 0) {
		close(outdirfd);
		if (havefd >= 0)
			close(havefd);
		return rc;
	}
	if ((j = job_new(n, outdirfd, havefd, progress, arg, &rc)) == NULL)
		return rc;
	j->create_cb = cb;
	j->pack_max = pack_max;
	j->nrefs = nrefs;
	j->refs = xcalloc(nrefs, sizeof(*j->refs));
	j->names = xcalloc(nrefs, sizeof(*j->names));
	for (size_t i = 0; i < nrefs; i++) {
		snprintf(j->names[i], sizeof(j->names[i]), "%s", refs[i].name);
		j->refs[i].name = j->names[i];
		j->refs[i].version = refs[i].version;
	}
	rc = uv_queue_work(n->loop, &j->w, create_work, create_done);
	if (rc < 0) {
		rc = ferry_errf(FERRY_EIO, "cannot queue the bundle: %s", uv_strerror(rc));
		close_fds(j);
		job_close(j);
		return rc;
	}
	log_info(LOG_SIDELOAD, "writing a bundle of %zu models", nrefs);
	return 0;
}

/* ---- have ---- */

static void have_work(uv_work_t *w)
{
	struct job *j = w->data;

	j->rc = have_write(j->n->st, j->fd, &j->nversions, &j->nchunks);
	if (j->rc < 0)
		snprintf(j->msg, sizeof(j->msg), "%s", ferry_errmsg(j->rc));
}

static void have_done(uv_work_t *w, int status)
{
	struct job *j = w->data;

	(void)status;
	close_fds(j);
	job_end(j);
	j->have_cb(j->arg, j->rc, j->nversions, j->nchunks);
	job_close(j);
}

int node_have(struct node *n, int fd,
	      void (*cb)(void *arg, int rc, uint64_t nversions, uint64_t nchunks), void *arg)
{
	int rc;
	struct job *j = job_new(n, fd, -1, NULL, NULL, &rc);

	if (j == NULL)
		return rc;
	j->arg = arg;
	j->have_cb = cb;
	rc = uv_queue_work(n->loop, &j->w, have_work, have_done);
	if (rc < 0) {
		rc = ferry_errf(FERRY_EIO, "cannot queue the have-file: %s", uv_strerror(rc));
		close_fds(j);
		job_close(j);
		return rc;
	}
	return 0;
}
