/*
 * The control commands that run the node in production (docs/protocol.md,
 * "Commands"): activate, rollback, pin, unpin, gc, metrics, reload and
 * verify. The command table in ctl.c dispatches here after its permission
 * and argument checks; the node does the work (node.h) and each callback
 * turns its result into records and a result message.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/activate.h"
#include "ferry/error.h"
#include "ferry/node.h"
#include "ferry/publish.h"
#include "ferry/util.h"
#include "ctl_int.h"

/* ---- activate, rollback ---- */

static void on_activated(void *arg, int rc, const struct activate_result *res)
{
	struct conn *c = arg;
	struct ctl_activation a;
	char hook[256];

	if (ctl__callback_gone(c))
		return;
	if (rc < 0) {
		ctl__finish(c, rc, NULL);
		return;
	}
	memset(&a, 0, sizeof(a));
	a.name = ctl__arg_str(c, "name");
	a.active = res->active;
	a.previous = res->previous;
	a.held = res->held;
	a.switched = res->switched;
	a.materialized = res->materialized;
	a.hook_ran = res->hook_ran;
	a.removed = res->removed;
	if (res->hook_ran && res->hook_rc < 0) {
		/* The detail went to the log on the worker thread that ran it. */
		snprintf(hook, sizeof(hook), "on_activate failed (%s; see ferryd's log)",
			 ferry_strerror(res->hook_rc));
		a.hook_error = hook;
	}
	ctl__send(c, CTL_DATA_ACTIVATION, &a);
	ctl__finish(c, 0, NULL);
}

void ctl__run_activate(struct conn *c)
{
	int rc;

	ctl__wait(c);
	rc = node_activate(ctl__node(c), ctl__arg_str(c, "name"), ctl__arg_uint(c, "version", 0),
			   on_activated, c);
	if (rc < 0) {
		ctl__unwait(c);
		ctl__finish(c, rc, NULL);
	}
}

void ctl__run_rollback(struct conn *c)
{
	int rc;

	ctl__wait(c);
	rc = node_rollback(ctl__node(c), ctl__arg_str(c, "name"), on_activated, c);
	if (rc < 0) {
		ctl__unwait(c);
		ctl__finish(c, rc, NULL);
	}
}

/* ---- pin, unpin ---- */

static void on_pinned(struct conn *c, int rc, bool pin)
{
	struct ctl_pin p;

	if (ctl__callback_gone(c))
		return;
	if (rc < 0) {
		ctl__finish(c, rc, NULL);
		return;
	}
	memset(&p, 0, sizeof(p));
	p.name = ctl__arg_str(c, "name");
	p.version = ctl__arg_uint(c, "version", 0);
	p.pinned = pin;
	p.changed = (uint64_t)rc;
	ctl__send(c, CTL_DATA_PIN, &p);
	ctl__finish(c, 0, NULL);
}

static void on_pin(void *arg, int rc)
{
	on_pinned(arg, rc, true);
}

static void on_unpin(void *arg, int rc)
{
	on_pinned(arg, rc, false);
}

static void run_pin(struct conn *c, bool pin)
{
	int rc;

	ctl__wait(c);
	rc = node_pin(ctl__node(c), ctl__arg_str(c, "name"), ctl__arg_uint(c, "version", 0), pin,
		      pin ? on_pin : on_unpin, c);
	if (rc < 0) {
		ctl__unwait(c);
		ctl__finish(c, rc, NULL);
	}
}

void ctl__run_pin(struct conn *c)
{
	run_pin(c, true);
}

void ctl__run_unpin(struct conn *c)
{
	run_pin(c, false);
}

/* ---- gc ---- */

static void on_gc(void *arg, int rc, const struct activate_gc_result *res)
{
	struct conn *c = arg;
	struct ctl_gc g;

	if (ctl__callback_gone(c))
		return;
	if (rc < 0) {
		ctl__finish(c, rc, NULL);
		return;
	}
	for (size_t i = 0; i < res->nevicted; i++) {
		struct ctl_evicted e = {.name = res->evicted[i].name,
					.version = res->evicted[i].version,
					.bytes = res->evicted[i].bytes};

		ctl__send(c, CTL_DATA_EVICTED, &e);
	}
	g = (struct ctl_gc){.freed_chunks = res->freed_chunks,
			    .freed_bytes = res->freed_bytes,
			    .usage_before = res->usage_before,
			    .usage_after = res->usage_after,
			    .short_by = res->short_by};
	ctl__send(c, CTL_DATA_GC, &g);
	ctl__finish(c, 0, NULL);
}

void ctl__run_gc(struct conn *c)
{
	int rc;

	ctl__wait(c);
	rc = node_gc(ctl__node(c), on_gc, c);
	if (rc < 0) {
		ctl__unwait(c);
		ctl__finish(c, rc, NULL);
	}
}

/* ---- metrics, reload ---- */

void ctl__run_metrics(struct conn *c)
{
	struct ctl_text t;

	t.text = node_metrics(ctl__node(c), NULL);
	ctl__send(c, CTL_DATA_TEXT, &t);
	free((char *)t.text);
	ctl__finish(c, 0, NULL);
}

void ctl__run_reload(struct conn *c)
{
	char *why = NULL, *msg = NULL;
	size_t n;
	int rc = ctl__reload(c, &why);

	if (rc < 0 && why != NULL) {
		n = strlen(why);
		while (n > 0 && why[n - 1] == '\n')
			why[--n] = '\0';
		msg = xasprintf("%s\nferryd keeps running with its previous configuration", why);
	}
	ctl__finish(c, rc, msg);
	free(msg);
	free(why);
}

/* ---- verify ---- */

static void on_verified(void *arg, int rc, const struct node_verify_result *res)
{
	struct conn *c = arg;
	struct ctl_verify v;

	if (ctl__callback_gone(c))
		return;
	if (res == NULL) {
		ctl__finish(c, rc, NULL);
		return;
	}
	for (size_t i = 0; i < res->nproblems; i++) {
		const struct export_problem *p = &res->problems[i];
		struct ctl_problem r = {.path = p->path,
					.offset = p->offset,
					.problem =
					    p->code == FERRY_EINCOMPLETE ? "missing" : "corrupt",
					.index_piece = p->piece};

		memcpy(r.chunk, p->id, 32);
		ctl__send(c, CTL_DATA_PROBLEM, &r);
	}
	if (res->files_error != NULL) {
		struct ctl_problem r = {.path = "", .problem = "files", .detail = res->files_error};

		ctl__send(c, CTL_DATA_PROBLEM, &r);
	}
	v = (struct ctl_verify){.name = res->name,
				.version = res->version,
				.chunks = res->chunks,
				.bytes = res->bytes,
				.corrupt = res->corrupt,
				.missing = res->missing,
				.materialized = res->materialized,
				.files_ok = res->materialized && res->files_error == NULL};
	ctl__send(c, CTL_DATA_VERIFY, &v);
	ctl__finish(c, rc, NULL);
}

void ctl__run_verify(struct conn *c)
{
	int rc;

	ctl__wait(c);
	rc = node_verify(ctl__node(c), ctl__arg_str(c, "name"), ctl__arg_uint(c, "version", 0),
			 on_verified, c);
	if (rc < 0) {
		ctl__unwait(c);
		ctl__finish(c, rc, NULL);
	}
}
