/*
 * Activation, pins, gc and metrics for the running node; see node.h.
 *
 * An activation runs in three hops so that nothing long blocks the loop and
 * the head write cannot interleave with catalog_accept()'s (both rewrite
 * heads, and the store thread is where catalog_accept runs):
 *   worker pool   read the head, load the manifest, check completeness,
 *                 activate_prepare() (materialize and verify)
 *   store thread  activate_switch() (the link and the head)
 *   worker pool   activate_hook() and activate_cleanup()
 * then the callback on the loop thread. Automatic activations of one model
 * are run one at a time: a version completing while one is in flight is
 * remembered (the newest only) and tried when it ends.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/activate.h"
#include "ferry/catalog.h"
#include "ferry/error.h"
#include "ferry/log.h"
#include "ferry/metrics.h"
#include "ferry/store.h"
#include "ferry/storeq.h"
#include "node_int.h"

/* Milliseconds between writes of metrics_textfile. */
#define METRICS_WRITE_MS 15000

struct act_job {
	uv_work_t w;
	struct node *n;
	char name[MANIFEST_NAME_MAX + 1];
	uint64_t version; /* 0 until resolved (newest stored, or the previous for a rollback) */
	bool rollback;
	struct activate_opts o;
	char *on_activate; /* o.on_activate's copy: the config may be reloaded meanwhile */
	char *state_dir;
	struct activate_result res;
	int rc;
	char msg[1024];
	void (*cb)(void *arg, int rc, const struct activate_result *res);
	void *arg;
};

/* One model's automatic activations: one in flight, the newest one waiting. */
struct nauto {
	struct nauto *next;
	char name[MANIFEST_NAME_MAX + 1];
	uint64_t waiting; /* 0: none */
};

static void act_free(struct act_job *j)
{
	free(j->on_activate);
	free(j->state_dir);
	free(j);
}

/* Record why the activation failed, with what stays active (the worker's detail is per thread). */
static void act_failed(struct act_job *j, int rc)
{
	struct store_head h = {0};
	struct store_rd *rd;
	char why[768];

	snprintf(why, sizeof(why), "%s", ferry_errmsg(rc));
	if (store_rd_begin(j->n->st, &rd) == 0) {
		store_head_get(rd, j->name, &h);
		store_rd_end(rd);
	}
	if (h.active == 0)
		snprintf(j->msg, sizeof(j->msg),
			 "cannot %s %s@%" PRIu64 ": %s; %s has no active version",
			 j->rollback ? "roll back to" : "activate", j->name, j->version, why,
			 j->name);
	else
		snprintf(j->msg, sizeof(j->msg),
			 "cannot %s %s@%" PRIu64 ": %s; %s stays at version %" PRIu64,
			 j->rollback ? "roll back to" : "activate", j->name, j->version, why,
			 j->name, h.active);
	j->rc = rc;
}

static int check_complete(struct store *st, const struct manifest *m)
{
	struct catalog_presence p;
	struct store_rd *rd;
	int r = store_rd_begin(st, &rd);

	if (r < 0)
		return r;
	r = catalog_presence(rd, m, &p);
	store_rd_end(rd);
	if (r < 0)
		return r;
	if (!p.index_complete || p.have_chunks < p.need_chunks)
		return ferry_errf(FERRY_EINCOMPLETE,
				  "not complete: %" PRIu64 " of %" PRIu64 " chunks are present%s",
				  p.have_chunks, p.need_chunks,
				  p.index_complete ? "" : " (chunk index pieces are missing)");
	return 0;
}

/* Worker pool: resolve the version, check it, materialize it. */
static void prepare_work(uv_work_t *w)
{
	struct act_job *j = w->data;
	struct store *st = j->n->st;
	struct store_head h = {0};
	struct store_rd *rd;
	struct manifest *m = NULL;
	int r;

	j->rc = 0;
	if ((r = store_rd_begin(st, &rd)) < 0)
		goto fail;
	r = store_head_get(rd, j->name, &h);
	store_rd_end(rd);
	if (r < 0)
		goto fail;
	if (j->rollback) {
		if (h.previous == 0) {
			snprintf(j->msg, sizeof(j->msg),
				 "model '%s' has no previous version to roll back to", j->name);
			j->rc = FERRY_ENOENT;
			return;
		}
		j->version = h.previous;
	}
	if ((j->o.flags & ACTIVATE_AUTO) && !activate_auto_eligible(&h, j->version)) {
		j->res.skipped = true;
		j->res.active = h.active;
		j->res.previous = h.previous;
		j->res.held = h.held;
		return;
	}
	if ((r = catalog_load(st, &j->n->trust, j->name, j->version, &m)) < 0)
		goto fail;
	j->version = m->version;
	if ((r = check_complete(st, m)) < 0 ||
	    (r = activate_prepare(st, j->state_dir, m, j->o.min_free_space, &j->res.materialized)) <
		0)
		goto fail;
	manifest_free(m);
	return;
fail:
	manifest_free(m);
	act_failed(j, r);
}

static void finish(struct act_job *j);

/* Worker pool: the hook, then old copies (a matter of disk space: failing there fails nothing). */
static void hook_work(uv_work_t *w)
{
	struct act_job *j = w->data;
	int c;

	if (j->res.switched && j->on_activate != NULL && j->on_activate[0] != '\0') {
		j->res.hook_ran = true;
		j->res.hook_rc = activate_hook(j->on_activate, j->o.hook_timeout_s, j->state_dir,
					       j->name, j->res.active, j->res.previous);
		if (j->res.hook_rc < 0)
			log_warn(LOG_MAIN, "%s (the switch to %s@%" PRIu64 " stands)",
				 ferry_errmsg(j->res.hook_rc), j->name, j->res.active);
	}
	if ((c = activate_cleanup(j->n->st, j->state_dir, j->name, j->o.keep_versions,
				  &j->res.removed)) < 0)
		log_warn(LOG_MAIN, "%s", ferry_errmsg(c));
}

static void hook_done(uv_work_t *w, int status)
{
	(void)status;
	finish(w->data);
}

/* Store thread: the link and the head. */
static int switch_work(void *arg, struct store *st)
{
	struct act_job *j = arg;
	int r = activate_switch(st, j->state_dir, j->name, j->version, j->rollback,
				j->rollback ? 0 : j->o.flags, &j->res);

	if (r < 0)
		act_failed(j, r);
	return r;
}

static void switch_done(void *arg, int rc)
{
	struct act_job *j = arg;
	int r;

	if (rc < 0 || j->res.skipped) {
		finish(j);
		return;
	}
	r = uv_queue_work(j->n->loop, &j->w, hook_work, hook_done);
	if (r < 0) {
		log_warn(LOG_MAIN, "%s@%" PRIu64 ": cannot queue the on_activate hook: %s", j->name,
			 j->res.active, uv_strerror(r));
		finish(j);
	}
}

static void prepare_done(uv_work_t *w, int status)
{
	struct act_job *j = w->data;

	if (status == UV_ECANCELED && j->rc == 0) {
		j->rc = FERRY_ECANCELED;
		snprintf(j->msg, sizeof(j->msg), "ferryd is stopping");
	}
	if (j->rc < 0 || j->res.skipped) {
		finish(j);
		return;
	}
	storeq_job(j->n->sq, switch_work, switch_done, j);
}

static struct nauto *auto_find(struct node *n, const char *name)
{
	for (struct nauto *a = n->autos; a != NULL; a = a->next)
		if (strcmp(a->name, name) == 0)
			return a;
	return NULL;
}

static void finish(struct act_job *j)
{
	struct node *n = j->n;
	bool is_auto = (j->o.flags & ACTIVATE_AUTO) != 0;

	n->pending_work--;
	if (j->rc < 0) {
		ferry_errf(j->rc, "%s", j->msg);
		/* An automatic activation has no one to tell but the log. */
		if (is_auto)
			log_err(LOG_MAIN, "%s", j->msg);
	}
	if (j->cb != NULL)
		j->cb(j->arg, j->rc, &j->res);
	if (is_auto) {
		struct nauto **pa = &n->autos;

		while (*pa != NULL && strcmp((*pa)->name, j->name) != 0)
			pa = &(*pa)->next;
		if (*pa != NULL) {
			struct nauto *a = *pa;
			uint64_t next = a->waiting;

			*pa = a->next;
			free(a);
			if (next != 0 && !n->stopping)
				node__auto_activate(n, j->name, next);
		}
	}
	act_free(j);
	node__stop_progress(n);
}

static int act_start(struct node *n, const char *name, uint64_t version, bool rollback,
		     unsigned flags,
		     void (*cb)(void *arg, int rc, const struct activate_result *res), void *arg)
{
	struct act_job *j;
	int rc = manifest_name_check(name);

	if (rc == 0 && n->stopping)
		rc = ferry_errf(FERRY_ECANCELED, "ferryd is stopping");
	if (rc < 0)
		return rc;
	j = xcalloc(1, sizeof(*j));
	j->w.data = j;
	j->n = n;
	snprintf(j->name, sizeof(j->name), "%s", name);
	j->version = version;
	j->rollback = rollback;
	j->on_activate = n->cfg->on_activate ? xstrdup(n->cfg->on_activate) : NULL;
	j->state_dir = xstrdup(n->cfg->state_dir);
	j->o.on_activate = j->on_activate;
	j->o.keep_versions = n->cfg->keep_versions;
	j->o.min_free_space = n->cfg->min_free_space;
	j->o.flags = flags;
	j->cb = cb;
	j->arg = arg;
	rc = uv_queue_work(n->loop, &j->w, prepare_work, prepare_done);
	if (rc < 0) {
		act_free(j);
		return ferry_errf(FERRY_EIO, "cannot queue the activation: %s", uv_strerror(rc));
	}
	n->pending_work++;
	return 0;
}

void node__auto_activate(struct node *n, const char *name, uint64_t version)
{
	struct nauto *a;
	int rc;

	if (!n->cfg->auto_activate || n->stopping)
		return;
	if ((a = auto_find(n, name)) != NULL) {
		if (version > a->waiting)
			a->waiting = version;
		return;
	}
	rc = act_start(n, name, version, false, ACTIVATE_AUTO, NULL, NULL);
	if (rc < 0) {
		log_err(LOG_MAIN, "cannot activate %s@%" PRIu64 ": %s", name, version,
			ferry_errmsg(rc));
		return;
	}
	a = xcalloc(1, sizeof(*a));
	snprintf(a->name, sizeof(a->name), "%s", name);
	a->next = n->autos;
	n->autos = a;
}

void node__autos_free(struct node *n)
{
	for (struct nauto *a = n->autos, *next; a != NULL; a = next) {
		next = a->next;
		free(a);
	}
	n->autos = NULL;
}

int node_activate(struct node *n, const char *name, uint64_t version,
		  void (*cb)(void *arg, int rc, const struct activate_result *res), void *arg)
{
	return act_start(n, name, version, false, 0, cb, arg);
}

int node_rollback(struct node *n, const char *name,
		  void (*cb)(void *arg, int rc, const struct activate_result *res), void *arg)
{
	return act_start(n, name, 0, true, 0, cb, arg);
}

struct pin_job {
	char name[MANIFEST_NAME_MAX + 1];
	uint64_t version;
	bool pin;
	void (*cb)(void *arg, int rc);
	void *arg;
};

static int pin_work(void *arg, struct store *st)
{
	struct pin_job *j = arg;

	return activate_pin(st, j->name, j->version, j->pin);
}

static void pin_done(void *arg, int rc)
{
	struct pin_job *j = arg;

	j->cb(j->arg, rc);
	free(j);
}

int node_pin(struct node *n, const char *name, uint64_t version, bool pin,
	     void (*cb)(void *arg, int rc), void *arg)
{
	struct pin_job *j;
	int rc = manifest_name_check(name);

	if (rc == 0 && n->stopping)
		rc = ferry_errf(FERRY_ECANCELED, "ferryd is stopping");
	if (rc < 0)
		return rc;
	j = xcalloc(1, sizeof(*j));
	snprintf(j->name, sizeof(j->name), "%s", name);
	j->version = version;
	j->pin = pin;
	j->cb = cb;
	j->arg = arg;
	node__store_job(n, pin_work, pin_done, j);
	return 0;
}

/* ---- gc ---- */

struct gc_job {
	struct node *n;
	char *state_dir;
	struct activate_gc_opts o;
	struct activate_gc_result res;
	void (*cb)(void *arg, int rc, const struct activate_gc_result *res);
	void *arg;
};

/* On the store thread: eviction deletes manifests and chunks, which must not interleave with
 * what the thread commits. */
static int gc_work(void *arg, struct store *st)
{
	struct gc_job *j = arg;

	return activate_gc(st, j->state_dir, &j->o, &j->res);
}

static void gc_done(void *arg, int rc)
{
	struct gc_job *j = arg;
	struct node *n = j->n;

	if (rc >= 0 && (j->res.nevicted > 0 || j->res.freed_chunks > 0))
		log_notice(LOG_MAIN,
			   "gc: %zu versions evicted, %" PRIu64 " chunks (%" PRIu64 " bytes) freed",
			   j->res.nevicted, j->res.freed_chunks, j->res.freed_bytes);
	/* What is gone is no longer offered: not in HAVEs, not in the digest. */
	for (size_t i = 0; i < j->res.nevicted; i++) {
		node__version_gone(n, j->res.evicted[i].name, j->res.evicted[i].version);
		node__newest_gone(n, j->res.evicted[i].name, j->res.evicted[i].version);
	}
	j->cb(j->arg, rc, &j->res);
	activate_gc_result_free(&j->res);
	free(j->state_dir);
	free(j);
}

int node_gc(struct node *n, void (*cb)(void *arg, int rc, const struct activate_gc_result *res),
	    void *arg)
{
	struct gc_job *j;

	if (n->stopping)
		return ferry_errf(FERRY_ECANCELED, "ferryd is stopping");
	j = xcalloc(1, sizeof(*j));
	j->n = n;
	j->state_dir = xstrdup(n->cfg->state_dir);
	j->o.cache_quota = n->cfg->cache_quota;
	j->o.min_free_space = n->cfg->min_free_space;
	j->o.keep_versions = n->cfg->keep_versions;
	j->cb = cb;
	j->arg = arg;
	node__store_job(n, gc_work, gc_done, j);
	return 0;
}

/* ---- metrics ---- */

static void metrics_peer(void *arg, const struct node_peer_row *row)
{
	metrics_add_peer(arg, row->state);
}

static void metrics_model(void *arg, const struct node_model_row *row)
{
	metrics_add_model(arg, row->name, row->version, row->present_pct / 100.0, row->size,
			  row->active);
}

static void metrics_limit(void *arg, const struct node_limit_row *row)
{
	metrics_add_limit(arg, row->name, row->rate_bps);
}

static struct metrics_snapshot *snapshot(struct node *n)
{
	struct metrics_snapshot *s = metrics_snapshot_new();
	struct node_status st;

	node_status(n, &st);
	s->rx_bytes[METRICS_LAN] = st.rx_lan;
	s->rx_bytes[METRICS_WAN] = st.rx_wan;
	s->tx_bytes[METRICS_LAN] = st.tx_lan;
	s->tx_bytes[METRICS_WAN] = st.tx_wan;
	s->chunks_verified = st.chunks_verified;
	s->chunks_rejected = st.chunks_rejected;
	s->reconnects = st.reconnects;
	s->resumed_bytes = st.resumed_bytes;
	s->store_bytes = st.store_bytes;
	s->store_chunks = st.store_chunks;
	s->fs_free = st.fs_free;
	s->min_free_space = st.min_free_space;
	s->cache_quota = st.cache_quota;
	s->uptime_s = st.uptime_s;
	node_peers(n, metrics_peer, s);
	node_models(n, metrics_model, s);
	node_limits(n, metrics_limit, s);
	return s;
}

char *node_metrics(struct node *n, size_t *len)
{
	struct metrics_snapshot *s = snapshot(n);
	char *text = metrics_render(s, len);

	metrics_snapshot_free(s);
	return text;
}

void node__metrics_tick(struct node *n)
{
	const char *path = n->cfg->metrics_textfile;
	struct metrics_snapshot *s;
	uint64_t now = node__now(n);
	int rc;

	if (path == NULL || path[0] == '\0')
		return;
	if (n->metrics_written_ms != 0 && now - n->metrics_written_ms < METRICS_WRITE_MS)
		return;
	n->metrics_written_ms = now;
	s = snapshot(n);
	rc = metrics_write_textfile(path, s);
	metrics_snapshot_free(s);
	/* Said once when it starts failing and once when it works again, not every 15 s. */
	if (rc < 0 && !n->metrics_failing)
		log_err(LOG_MAIN, "metrics_textfile: %s (retrying every %u s)", ferry_errmsg(rc),
			METRICS_WRITE_MS / 1000);
	else if (rc == 0 && n->metrics_failing)
		log_notice(LOG_MAIN, "metrics_textfile: %s written again", path);
	n->metrics_failing = rc < 0;
}
