/*
 * ferryctl's production commands (docs/ferryctl.1): activate, rollback, pin,
 * unpin, gc, metrics, reload and verify through ferryd, and activate,
 * rollback, pin and unpin on a stopped node's state directory with --store
 * DIR (the directory holding the store and models/).
 *
 * With --store there is no configuration: no on_activate runs, no
 * materialized version is removed (keep_versions), and no free space is
 * reserved; the daemon applies those when it runs the command.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/activate.h"
#include "ferry/catalog.h"
#include "ferry/ctl.h"
#include "ferry/ctl_client.h"
#include "ferry/ctl_out.h"
#include "ferry/error.h"
#include "ferry/manifest.h"
#include "ferry/store.h"
#include "ferry/util.h"
#include "ferryctl.h"

/* NAME[@VERSION] from the command line; a usage error if need_version and it has none. */
static int parse_ref(const struct ctl *c, const char *ref, bool need_version,
		     char name[static MANIFEST_NAME_MAX + 1], uint64_t *version)
{
	int r = catalog_parse_ref(ref, name, MANIFEST_NAME_MAX + 1, version);

	if (r < 0)
		return usage_err(c->cmd, "%s", ferry_errmsg(r));
	if (need_version && *version == 0)
		return usage_err(c->cmd, "give the version to activate: %s@VERSION", name);
	return 0;
}

/* "v3" or "none". */
static const char *vstr(char *buf, size_t cap, uint64_t v)
{
	if (v == 0)
		snprintf(buf, cap, "none");
	else
		snprintf(buf, cap, "%" PRIu64, v);
	return buf;
}

/* ---- activate, rollback ---- */

static void print_activation(struct ctl *c, const struct ctl_activation *a, bool rollback)
{
	char now[32], before[32];

	ctl_out_str(c->out, "name", "model", a->name);
	ctl_out_uint(c->out, "active", "active", a->active);
	ctl_out_uint(c->out, "previous", "previous", a->previous);
	ctl_out_bool(c->out, "switched", "switched", a->switched);
	ctl_out_bool(c->out, "materialized", "files written", a->materialized);
	ctl_out_bool(c->out, "hook_ran", "on_activate ran", a->hook_ran);
	if (a->hook_error != NULL)
		ctl_out_str(c->out, "hook_error", "on_activate", a->hook_error);
	if (rollback)
		ctl_out_uint(c->out, "held", "auto-activation holds until above", a->held);
	vstr(now, sizeof(now), a->active);
	vstr(before, sizeof(before), a->previous);
	if (!a->switched)
		ctl_out_note(c->out, "%s: version %s was active already; nothing changed", a->name,
			     now);
	else
		ctl_out_note(c->out, "%s: version %s is active now (before: version %s)", a->name,
			     now, before);
}

struct activation_view {
	struct ctl *c;
	bool rollback;
	bool got;
};

static int on_activation(void *arg, struct ctl_client *cl, const struct ctl_msg *m)
{
	struct activation_view *v = arg;
	struct ctl_activation a;
	char *mem;
	int r;

	(void)cl;
	r = daemon_record(m, CTL_DATA_ACTIVATION, &a, &mem);
	if (r == 0) {
		if (a.name == NULL)
			a.name = "";
		print_activation(v->c, &a, v->rollback);
		v->got = true;
	}
	free(mem);
	return r;
}

static int activation_call(struct ctl *c, const char *name, uint64_t version, bool rollback)
{
	struct ctl_request req = {.cmd = rollback ? "rollback" : "activate"};
	struct activation_view v = {.c = c, .rollback = rollback};
	int r;

	ctl_request_str(&req, "name", name);
	if (!rollback)
		ctl_request_uint(&req, "version", version);
	r = daemon_call(c, &req, -1, on_activation, &v);
	if (r == 0 && !v.got)
		r = ferry_errf(FERRY_EPROTO, "ferryd answered %s without saying what is active",
			       req.cmd);
	return r < 0 ? fail(c, r) : 0;
}

int cmd_activate_daemon(struct ctl *c)
{
	char name[MANIFEST_NAME_MAX + 1];
	uint64_t version;
	int r = parse_ref(c, c->pos[0], true, name, &version);

	return r != 0 ? r : activation_call(c, name, version, false);
}

int cmd_rollback_daemon(struct ctl *c)
{
	char name[MANIFEST_NAME_MAX + 1];

	if (manifest_name_check(c->pos[0]) < 0)
		return usage_err(c->cmd, "%s", ferry_errmsg(FERRY_EINVAL));
	snprintf(name, sizeof(name), "%s", c->pos[0]);
	return activation_call(c, name, 0, true);
}

/* --store: the same steps in this process, on a stopped node's state directory. */
static int activation_store(struct ctl *c, const char *name, uint64_t version, bool rollback)
{
	struct activate_opts o = {0};
	struct activate_result res = {0};
	struct ctl_activation a = {0};
	struct trust t = {0};
	struct store *st = NULL;
	int r;

	r = ctl_store_open(c, STORE_WRITE, &st);
	if (r == 0)
		r = trust_load(c, &t, NULL);
	if (r == 0)
		r = rollback ? activate_rollback(st, &t, c->store_dir, name, &o, &res)
			     : activate_version(st, &t, c->store_dir, name, version, &o, &res);
	free(t.keys);
	store_close(st);
	if (r < 0)
		return fail(c, r);
	a.name = name;
	a.active = res.active;
	a.previous = res.previous;
	a.held = res.held;
	a.switched = res.switched;
	a.materialized = res.materialized;
	print_activation(c, &a, rollback);
	return 0;
}

int cmd_activate(struct ctl *c)
{
	char name[MANIFEST_NAME_MAX + 1];
	uint64_t version;
	int r = parse_ref(c, c->pos[0], true, name, &version);

	return r != 0 ? r : activation_store(c, name, version, false);
}

int cmd_rollback(struct ctl *c)
{
	if (manifest_name_check(c->pos[0]) < 0)
		return usage_err(c->cmd, "%s", ferry_errmsg(FERRY_EINVAL));
	return activation_store(c, c->pos[0], 0, true);
}

/* ---- pin, unpin ---- */

static bool is_unpin(const struct ctl *c)
{
	return strcmp(c->cmd->name, "unpin") == 0;
}

static void print_pin(struct ctl *c, const char *name, uint64_t version, bool pin, uint64_t changed)
{
	char ref[MANIFEST_NAME_MAX + 32];

	if (version != 0)
		snprintf(ref, sizeof(ref), "%s@%" PRIu64, name, version);
	else
		snprintf(ref, sizeof(ref), pin ? "%s (its active version)" : "%s (every version)",
			 name);
	ctl_out_str(c->out, "name", "model", name);
	if (version != 0)
		ctl_out_uint(c->out, "version", "version", version);
	ctl_out_bool(c->out, "pinned", "pinned", pin);
	ctl_out_uint(c->out, "changed", "versions changed", changed);
	if (changed == 0)
		ctl_out_note(c->out, "%s was %s already", ref, pin ? "pinned" : "not pinned");
	else
		ctl_out_note(c->out, "%s %s", pin ? "pinned" : "unpinned", ref);
}

struct pin_view {
	struct ctl *c;
	bool got;
};

static int on_pin(void *arg, struct ctl_client *cl, const struct ctl_msg *m)
{
	struct pin_view *v = arg;
	struct ctl_pin p;
	char *mem;
	int r;

	(void)cl;
	r = daemon_record(m, CTL_DATA_PIN, &p, &mem);
	if (r == 0) {
		print_pin(v->c, p.name ? p.name : "", p.version, p.pinned, p.changed);
		v->got = true;
	}
	free(mem);
	return r;
}

int cmd_pin_daemon(struct ctl *c)
{
	struct ctl_request req = {.cmd = is_unpin(c) ? "unpin" : "pin"};
	struct pin_view v = {.c = c};
	char name[MANIFEST_NAME_MAX + 1];
	uint64_t version;
	int r = parse_ref(c, c->pos[0], false, name, &version);

	if (r != 0)
		return r;
	ctl_request_str(&req, "name", name);
	if (version != 0)
		ctl_request_uint(&req, "version", version);
	r = daemon_call(c, &req, -1, on_pin, &v);
	if (r == 0 && !v.got)
		r = ferry_errf(FERRY_EPROTO, "ferryd answered %s without a count", req.cmd);
	return r < 0 ? fail(c, r) : 0;
}

int cmd_pin(struct ctl *c)
{
	char name[MANIFEST_NAME_MAX + 1];
	uint64_t version;
	struct store *st = NULL;
	bool pin = !is_unpin(c);
	int r = parse_ref(c, c->pos[0], false, name, &version);

	if (r != 0)
		return r;
	r = ctl_store_open(c, STORE_WRITE, &st);
	if (r == 0)
		r = activate_pin(st, name, version, pin);
	store_close(st);
	if (r < 0)
		return fail(c, r);
	print_pin(c, name, version, pin, (uint64_t)r);
	return 0;
}

/* ---- gc ---- */

struct gc_view {
	struct ctl *c;
	bool listing; /* the evicted list is open */
	bool got;
	size_t evicted;
};

static int on_gc(void *arg, struct ctl_client *cl, const struct ctl_msg *m)
{
	struct gc_view *v = arg;
	struct ctl *c = v->c;
	char *mem = NULL;
	int r;

	(void)cl;
	if (m->kind == CTL_DATA_EVICTED) {
		struct ctl_evicted e;

		if ((r = daemon_record(m, CTL_DATA_EVICTED, &e, &mem)) == 0) {
			if (!v->listing)
				ctl_out_list_begin(c->out, "evicted");
			v->listing = true;
			ctl_out_row_begin(c->out);
			ctl_out_str(c->out, "name", "name", e.name ? e.name : "");
			ctl_out_uint(c->out, "version", "version", e.version);
			ctl_out_bytes(c->out, "bytes", "size", e.bytes);
			ctl_out_row_end(c->out);
			v->evicted++;
		}
	} else {
		struct ctl_gc g;

		if ((r = daemon_record(m, CTL_DATA_GC, &g, &mem)) == 0) {
			if (!v->listing)
				ctl_out_list_begin(c->out, "evicted");
			ctl_out_list_end(c->out);
			v->listing = false;
			ctl_out_uint(c->out, "evicted_versions", "versions evicted", v->evicted);
			ctl_out_uint(c->out, "freed_chunks", "chunks freed", g.freed_chunks);
			ctl_out_bytes(c->out, "freed_bytes", "bytes freed", g.freed_bytes);
			ctl_out_bytes(c->out, "usage_before", "store before", g.usage_before);
			ctl_out_bytes(c->out, "usage_after", "store after", g.usage_after);
			ctl_out_bytes(c->out, "short_by", "still over the limits by", g.short_by);
			if (g.short_by > 0)
				ctl_out_note(c->out,
					     "the rest is active, previous, pinned or within "
					     "keep_versions: nothing more may be evicted");
			v->got = true;
		}
	}
	free(mem);
	return r;
}

int cmd_gc_daemon(struct ctl *c)
{
	struct ctl_request req = {.cmd = "gc"};
	struct gc_view v = {.c = c};
	int r = daemon_call(c, &req, -1, on_gc, &v);

	if (v.listing)
		ctl_out_list_end(c->out);
	if (r == 0 && !v.got)
		r = ferry_errf(FERRY_EPROTO, "ferryd answered gc without its totals");
	return r < 0 ? fail(c, r) : 0;
}

/* ---- metrics, reload ---- */

static int on_text(void *arg, struct ctl_client *cl, const struct ctl_msg *m)
{
	struct ctl *c = arg;
	struct ctl_text t;
	char *mem;
	int r;

	(void)cl;
	r = daemon_record(m, CTL_DATA_TEXT, &t, &mem);
	if (r == 0) {
		/* The text is the output: Prometheus's format as is, or one JSON string. */
		if (c->json)
			ctl_out_str(c->out, "metrics", "metrics", t.text ? t.text : "");
		else
			fputs(t.text ? t.text : "", stdout);
		c->rows++;
	}
	free(mem);
	return r;
}

int cmd_metrics_daemon(struct ctl *c)
{
	struct ctl_request req = {.cmd = "metrics"};
	int r = daemon_call(c, &req, -1, on_text, c);

	if (r == 0 && c->rows == 0)
		r = ferry_errf(FERRY_EPROTO, "ferryd answered metrics without the text");
	return r < 0 ? fail(c, r) : 0;
}

int cmd_reload_daemon(struct ctl *c)
{
	struct ctl_request req = {.cmd = "reload"};
	int r = daemon_call(c, &req, -1, NULL, NULL);

	if (r < 0)
		return fail(c, r);
	ctl_out_bool(c->out, "reloaded", "reloaded", true);
	ctl_out_note(c->out, "ferryd re-read its configuration (its log says what changed)");
	return 0;
}

/* ---- verify ---- */

struct verify_view {
	struct ctl *c;
	bool listing;
	bool got;
};

static int on_verify(void *arg, struct ctl_client *cl, const struct ctl_msg *m)
{
	struct verify_view *v = arg;
	struct ctl *c = v->c;
	char *mem = NULL, hex[65];
	int r;

	(void)cl;
	if (!v->listing && !v->got) {
		ctl_out_list_begin(c->out, "problems");
		v->listing = true;
	}
	if (m->kind == CTL_DATA_PROBLEM) {
		struct ctl_problem p;

		if ((r = daemon_record(m, CTL_DATA_PROBLEM, &p, &mem)) == 0) {
			bool files = p.problem != NULL && strcmp(p.problem, "files") == 0;

			ctl_out_row_begin(c->out);
			ctl_out_str(c->out, "path", "file",
				    files ? (p.detail ? p.detail : "") : (p.path ? p.path : ""));
			ctl_out_uint(c->out, "offset", "offset", p.offset);
			ctl_out_str(c->out, "chunk", "chunk",
				    files ? "-" : hex_encode(hex, p.chunk, 32));
			ctl_out_str(c->out, "problem", "problem", p.problem ? p.problem : "");
			ctl_out_bool(c->out, "index_piece", "index", p.index_piece);
			ctl_out_row_end(c->out);
		}
	} else {
		struct ctl_verify s;

		if ((r = daemon_record(m, CTL_DATA_VERIFY, &s, &mem)) == 0) {
			ctl_out_list_end(c->out);
			v->listing = false;
			ctl_out_str(c->out, "name", "model", s.name ? s.name : "");
			ctl_out_uint(c->out, "version", "version", s.version);
			ctl_out_uint(c->out, "chunks", "chunks checked", s.chunks);
			ctl_out_bytes(c->out, "bytes", "bytes checked", s.bytes);
			ctl_out_uint(c->out, "corrupt", "corrupt", s.corrupt);
			ctl_out_uint(c->out, "missing", "missing", s.missing);
			ctl_out_bool(c->out, "materialized", "materialized", s.materialized);
			if (s.materialized)
				ctl_out_bool(c->out, "files_ok", "files match", s.files_ok);
			v->got = true;
		}
	}
	free(mem);
	return r;
}

int cmd_verify_daemon(struct ctl *c)
{
	struct ctl_request req = {.cmd = "verify"};
	struct verify_view v = {.c = c};
	char name[MANIFEST_NAME_MAX + 1];
	uint64_t version;
	int r = parse_ref(c, c->pos[0], false, name, &version);

	if (r != 0)
		return r;
	ctl_request_str(&req, "name", name);
	if (version != 0)
		ctl_request_uint(&req, "version", version);
	r = daemon_call(c, &req, -1, on_verify, &v);
	if (v.listing)
		ctl_out_list_end(c->out);
	if (r < 0 && v.got) {
		/* The report is the result: print it, then fail. */
		ctl_out_free(c->out);
		c->out = NULL;
	}
	return r < 0 ? fail(c, r) : 0;
}
