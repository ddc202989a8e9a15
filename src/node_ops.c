/*
 * `ferryctl verify` for the running node (node_verify, node.h): the stored
 * chunks of a version and its materialized files, checked on the worker pool
 * while the node goes on serving and fetching. Only reads: a bad chunk found
 * here is reported, not repaired (a fetch of the version repairs nothing
 * either, since the store counts the chunk as present; `gc` then a fetch, or
 * a sideload, replaces it).
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/activate.h"
#include "ferry/catalog.h"
#include "ferry/error.h"
#include "ferry/publish.h"
#include "node_int.h"

struct verify_job {
	uv_work_t w;
	struct node *n;
	char name[MANIFEST_NAME_MAX + 1];
	uint64_t version;
	char *state_dir;		 /* a copy: the config may be reloaded meanwhile */
	struct export_problem *problems; /* paths point into paths[] */
	char **paths;
	size_t nproblems;
	struct export_verify_stats stats;
	bool materialized;
	char files_error[768]; /* "" if the files match or are not there */
	bool ran;	       /* the version was found and checked */
	int rc;
	char msg[768];
	void (*cb)(void *arg, int rc, const struct node_verify_result *res);
	void *arg;
};

static void on_problem(void *arg, const struct export_problem *p)
{
	struct verify_job *j = arg;

	j->problems = xreallocarray(j->problems, j->nproblems + 1, sizeof(*j->problems));
	j->paths = xreallocarray(j->paths, j->nproblems + 1, sizeof(*j->paths));
	j->paths[j->nproblems] = xstrdup(p->path);
	j->problems[j->nproblems] = *p;
	j->problems[j->nproblems].path = j->paths[j->nproblems];
	j->nproblems++;
}

static void verify_work(uv_work_t *w)
{
	struct verify_job *j = w->data;
	struct manifest *m = NULL;
	int rc, frc;

	rc = catalog_load(j->n->st, &j->n->trust, j->name, j->version, &m);
	if (rc < 0)
		goto out;
	j->version = m->version;
	j->ran = true;
	rc = export_verify(j->n->st, m, on_problem, j, &j->stats);
	if (rc < 0 && rc != FERRY_ECORRUPT && rc != FERRY_EINCOMPLETE) {
		j->ran = false;
		goto out;
	}
	frc = activate_check(j->state_dir, m);
	j->materialized = frc != FERRY_ENOENT;
	if (frc < 0 && frc != FERRY_ENOENT) {
		snprintf(j->files_error, sizeof(j->files_error), "%s", ferry_errmsg(frc));
		rc = FERRY_ECORRUPT;
	}
	if (rc == FERRY_ECORRUPT)
		rc = ferry_errf(FERRY_ECORRUPT,
				"%s@%" PRIu64 " is damaged: %" PRIu64 " corrupt chunks, %" PRIu64
				" missing%s%s",
				j->name, j->version, j->stats.corrupt, j->stats.missing,
				j->files_error[0] ? "; " : "", j->files_error);
	else if (rc == FERRY_EINCOMPLETE)
		rc = ferry_errf(FERRY_EINCOMPLETE,
				"%s@%" PRIu64 " is not complete: %" PRIu64 " chunks are missing",
				j->name, j->version, j->stats.missing);
out:
	if (rc < 0)
		snprintf(j->msg, sizeof(j->msg), "%s", ferry_errmsg(rc));
	manifest_free(m);
	j->rc = rc;
}

static void verify_done(uv_work_t *w, int status)
{
	struct verify_job *j = w->data;
	struct node *n = j->n;
	struct node_verify_result res = {
	    .name = j->name,
	    .version = j->version,
	    .chunks = j->stats.chunks,
	    .bytes = j->stats.bytes,
	    .corrupt = j->stats.corrupt,
	    .missing = j->stats.missing,
	    .problems = j->problems,
	    .nproblems = j->nproblems,
	    .materialized = j->materialized,
	    .files_error = j->files_error[0] ? j->files_error : NULL,
	};

	n->pending_work--;
	if (status == UV_ECANCELED && j->rc == 0) {
		j->rc = FERRY_ECANCELED;
		j->ran = false;
		snprintf(j->msg, sizeof(j->msg), "ferryd is stopping");
	}
	if (j->rc < 0)
		ferry_errf(j->rc, "%s", j->msg);
	j->cb(j->arg, j->rc, j->ran ? &res : NULL);
	for (size_t i = 0; i < j->nproblems; i++)
		free(j->paths[i]);
	free(j->paths);
	free(j->problems);
	free(j->state_dir);
	free(j);
	node__stop_progress(n);
}

int node_verify(struct node *n, const char *name, uint64_t version,
		void (*cb)(void *arg, int rc, const struct node_verify_result *res), void *arg)
{
	struct verify_job *j;
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
	j->state_dir = xstrdup(n->cfg->state_dir);
	j->cb = cb;
	j->arg = arg;
	rc = uv_queue_work(n->loop, &j->w, verify_work, verify_done);
	if (rc < 0) {
		free(j->state_dir);
		free(j);
		return ferry_errf(FERRY_EIO, "cannot queue the verification: %s", uv_strerror(rc));
	}
	n->pending_work++;
	return 0;
}
