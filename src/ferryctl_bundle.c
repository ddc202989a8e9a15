/*
 * ferryctl's sideload commands: `bundle create`, `sideload` and `have`
 * (docs/sideload.md). ferryctl opens every directory and file the operator
 * names and hands the descriptors to the bundle and have modules, which work
 * relative to them (the daemon never opens a client's path).
 *
 * Progress goes to stderr for people: one line redrawn in place on a
 * terminal, otherwise (the journal of ferry-sideload@.service) a line per
 * file of the bundle. `sideload --json` prints JSON Lines on stdout: progress
 * objects, one object per manifest and per problem, and a last "result".
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ferry/bundle.h"
#include "ferry/catalog.h"
#include "ferry/ctl.h"
#include "ferry/ctl_client.h"
#include "ferry/ctl_out.h"
#include "ferry/error.h"
#include "ferry/have.h"
#include "ferry/manifest.h"
#include "ferry/store.h"
#include "ferry/util.h"
#include "ferryctl.h"

/* Redraw a terminal's progress line at most this often; log a plain line per file. */
#define REDRAW_MS	 200
#define JSON_PROGRESS_MS 1000
#define BAR_WIDTH	 20

struct progress {
	const char *verb; /* "writing", "reading" */
	bool tty;
	FILE *json; /* JSON Lines go here with --json, else NULL */
	uint64_t start_ms, last_ms;
	char last_file[32];
	bool drawn;
};

static const char *phase_name(enum bundle_phase p)
{
	switch (p) {
	case BUNDLE_PHASE_MANIFESTS:
		return "manifests";
	case BUNDLE_PHASE_INDEX:
		return "index";
	case BUNDLE_PHASE_CHUNKS:
		return "chunks";
	case BUNDLE_PHASE_DONE:
		return "done";
	}
	return "?";
}

static int show_progress(void *arg, const struct bundle_progress *p)
{
	struct progress *pr = arg;
	uint64_t now = now_ms(), ms = now - pr->start_ms;
	double rate = ms ? (double)p->bytes_done * 1000.0 / (double)ms : 0;
	bool new_file = p->file != NULL && strcmp(p->file, pr->last_file) != 0;
	char done[32], total[32], speed[32], eta[32] = "", bar[BAR_WIDTH + 8];
	double pct;

	if (p->file != NULL)
		snprintf(pr->last_file, sizeof(pr->last_file), "%s", p->file);
	if (pr->json != NULL) {
		if (!new_file && p->phase != BUNDLE_PHASE_DONE &&
		    now - pr->last_ms < JSON_PROGRESS_MS)
			return 0;
		pr->last_ms = now;
		fprintf(pr->json, "{\"type\": \"progress\", \"phase\": \"%s\", \"file\": ",
			phase_name(p->phase));
		ctl_out_json_string(pr->json, p->file ? p->file : "");
		fprintf(pr->json,
			", \"bytes_done\": %" PRIu64 ", \"bytes_total\": %" PRIu64
			", \"chunks_done\": %" PRIu64 ", \"chunks_total\": %" PRIu64
			", \"bytes_per_second\": %.0f}\n",
			p->bytes_done, p->bytes_total, p->chunks_done, p->chunks_total, rate);
		fflush(pr->json);
		return 0;
	}
	/* Without a terminal (the journal), a line per pack and one at the end. */
	if (pr->tty
		? now - pr->last_ms < REDRAW_MS && p->phase != BUNDLE_PHASE_DONE
		: !(new_file && strstr(p->file, ".dat") != NULL) && p->phase != BUNDLE_PHASE_DONE)
		return 0;
	pr->last_ms = now;
	pct = p->bytes_total ? 100.0 * (double)p->bytes_done / (double)p->bytes_total : 100.0;
	fmt_bytes(done, sizeof(done), p->bytes_done);
	fmt_bytes(total, sizeof(total), p->bytes_total);
	fmt_bytes(speed, sizeof(speed), (uint64_t)rate);
	if (p->phase == BUNDLE_PHASE_DONE) {
		snprintf(eta, sizeof(eta), "done");
	} else if (ms >= 1000 && rate > 0 && p->bytes_total > p->bytes_done) {
		uint64_t left = (uint64_t)((double)(p->bytes_total - p->bytes_done) / rate) + 1;

		snprintf(eta, sizeof(eta), "ETA %" PRIu64 "m%02" PRIu64 "s", left / 60, left % 60);
	}
	/* Like fetch --wait: a bar on a terminal, none in logs. */
	bar[0] = '\0';
	if (pr->tty) {
		int fill = (int)(pct / 100.0 * BAR_WIDTH + 0.5);

		snprintf(bar, sizeof(bar), "[%.*s%*s]  ", fill, "####################",
			 BAR_WIDTH - fill, "");
	}
	fprintf(stderr, "%s%s %-14s %s%5.1f%%  %s of %s  %s/s  %s%s", pr->tty ? "\r" : "", pr->verb,
		p->file ? p->file : phase_name(p->phase), bar, pct, done, total, speed, eta,
		pr->tty ? "\033[K" : "\n");
	pr->drawn = pr->tty;
	return 0;
}

/* End a terminal's progress line before anything else is printed. */
static void progress_end(struct progress *pr)
{
	if (pr->drawn)
		fputc('\n', stderr);
	pr->drawn = false;
}

static void progress_init(struct progress *pr, const char *verb, FILE *json)
{
	memset(pr, 0, sizeof(*pr));
	pr->verb = verb;
	pr->json = json;
	pr->tty = isatty(STDERR_FILENO);
	pr->start_ms = now_ms();
}

/*
 * The trust list, then the store, of a command: an empty trust list is an
 * error worth a hint, found before a mistyped --store DIR is created.
 */
static int open_store_trust(struct ctl *c, unsigned flags, struct store **st, struct trust *t)
{
	int r = trust_load(c, t, NULL);

	if (r == 0 && t->n == 0)
		r = ferry_errf(
		    FERRY_EUNTRUSTED,
		    "the store in %s trusts no publisher: put the publisher's public key "
		    "in %s/trust or pass --trust KEY",
		    c->store_dir, c->store_dir);
	if (r == 0)
		r = ctl_store_open(c, flags, st);
	return r;
}

/* ---- bundle create ---- */

static int read_have(const char *path, struct have **h)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY), r;

	if (fd < 0)
		return ferry_errno(errno, "cannot open the have-file %s", path);
	r = have_read(fd, h);
	close(fd);
	if (r < 0)
		r = ferry_errf(r, "%s: %s", path, ferry_errmsg(r));
	return r;
}

/* One row of the versions a bundle carries. */
static void out_version(struct ctl *c, const char *name, uint64_t version, const char *label,
			uint64_t size)
{
	ctl_out_row_begin(c->out);
	ctl_out_str(c->out, "name", "model", name);
	ctl_out_uint(c->out, "version", "version", version);
	ctl_out_str(c->out, "label", "label", label ? label : "");
	ctl_out_bytes(c->out, "size", "size", size);
	ctl_out_row_end(c->out);
}

/* What bundle create wrote into dir/ferry-bundle/. */
static void out_created(struct ctl *c, const char *dir, const struct bundle_create_stats *s,
			bool delta)
{
	char *path = xasprintf("%s/" BUNDLE_DIR, dir);

	ctl_out_str(c->out, "bundle", "bundle", path);
	ctl_out_uint(c->out, "manifests", "manifests", s->manifests);
	ctl_out_uint(c->out, "packs", "packs", s->packs);
	ctl_out_uint(c->out, "packs_kept", "packs kept from an earlier run", s->packs_kept);
	ctl_out_uint(c->out, "chunks", "chunks", s->chunks);
	ctl_out_bytes(c->out, "bytes", "size on the medium", s->bytes);
	ctl_out_bytes(c->out, "written_bytes", "written now", s->written_bytes);
	ctl_out_bytes(c->out, "model_bytes", "model size", s->raw_bytes);
	ctl_out_bool(c->out, "delta", "delta (--have)", delta);
	if (delta) {
		ctl_out_uint(c->out, "skipped_chunks", "left out (the target has them)",
			     s->skipped_chunks);
		ctl_out_bytes(c->out, "skipped_bytes", "left out", s->skipped_bytes);
	}
	ctl_out_note(c->out, "carry %s to the node and run: ferryctl sideload DIR", path);
	free(path);
}

int cmd_bundle(struct ctl *c)
{
	const char *dir = c->opt[0], *have_path = c->opt[1];
	struct bundle_ref *refs = NULL;
	char(*names)[MANIFEST_NAME_MAX + 1] = NULL;
	struct bundle_create_opts o = {0};
	struct bundle_create_stats s;
	struct progress pr;
	struct store *st = NULL;
	struct have *h = NULL;
	struct trust t = {0};
	int nrefs = c->npos - 1, dirfd = -1, r;

	if (strcmp(c->pos[0], "create") != 0)
		return usage_err(c->cmd, "unknown bundle command '%s' (there is: create)",
				 c->pos[0]);
	if (c->opt[2] != NULL && parse_size(c->opt[2], &o.pack_max) < 0)
		return usage_err(c->cmd, "--pack-size '%s' is not a size (e.g. 512M)", c->opt[2]);
	refs = xcalloc((size_t)nrefs, sizeof(*refs));
	names = xcalloc((size_t)nrefs, sizeof(*names));
	for (int i = 0; i < nrefs; i++) {
		if (catalog_parse_ref(c->pos[i + 1], names[i], sizeof(names[i]), &refs[i].version) <
		    0) {
			r = usage_err(c->cmd, "%s", ferry_errmsg(FERRY_EINVAL));
			goto done;
		}
		refs[i].name = names[i];
	}
	r = open_store_trust(c, 0, &st, &t);
	if (r == 0 && have_path != NULL)
		r = read_have(have_path, &h);
	if (r < 0)
		goto out;
	if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
		r = ferry_errno(errno, "cannot create the output directory %s", dir);
		goto out;
	}
	dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0) {
		r = ferry_errno(errno, "cannot open the output directory %s", dir);
		goto out;
	}
	progress_init(&pr, "writing", NULL);
	if (!c->json) {
		o.progress = show_progress;
		o.arg = &pr;
	}
	r = bundle_create(st, &t, dirfd, refs, (size_t)nrefs, h, &o, &s);
	progress_end(&pr);
	if (r < 0)
		goto out;
	ctl_out_list_begin(c->out, "versions");
	for (int i = 0; i < nrefs; i++) {
		struct manifest *m = NULL;

		/* What NAME alone stood for, as bundle_create resolved it. */
		if (catalog_load(st, &t, refs[i].name, refs[i].version, &m) != 0)
			continue;
		out_version(c, m->name, m->version, m->label, manifest_total_size(m));
		manifest_free(m);
	}
	ctl_out_list_end(c->out);
	out_created(c, dir, &s, h != NULL);
out:
	if (r < 0)
		r = fail(c, r);
done:
	if (dirfd >= 0)
		close(dirfd);
	have_free(h);
	free(t.keys);
	store_close(st);
	free(names);
	free(refs);
	return r;
}

/* ---- sideload ---- */

static const char *outcome_name(int outcome)
{
	switch (outcome) {
	case CATALOG_NEWEST:
		return "new";
	case CATALOG_REPLACED:
		return "replaced";
	case CATALOG_OLDER:
		return "older (stored, not activated)";
	case CATALOG_KNOWN:
		return "already held";
	}
	return "refused";
}

/* The folder to hand to bundle_import: DIR, or DIR/.. when DIR is ferry-bundle/ itself. */
static int open_bundle_parent(const char *dir, int *fd)
{
	char *copy = NULL, *parent = NULL;
	struct stat sb;
	int r = 0;

	*fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (*fd < 0)
		return ferry_errno(errno, "cannot open %s", dir);
	if (fstatat(*fd, BUNDLE_DIR, &sb, AT_SYMLINK_NOFOLLOW) == 0 || errno != ENOENT)
		return 0;
	copy = xstrdup(dir);
	if (strcmp(basename(copy), BUNDLE_DIR) == 0) {
		parent = xasprintf("%s/..", dir);
		close(*fd);
		*fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (*fd < 0)
			r = ferry_errno(errno, "cannot open %s", parent);
	} else {
		r = ferry_errf(FERRY_ENOENT, "%s holds no " BUNDLE_DIR "/ folder", dir);
	}
	free(copy);
	free(parent);
	return r;
}

static void json_problem(FILE *f, const struct bundle_problem *p)
{
	char hex[65] = "";

	if (p->has_id)
		hex_encode(hex, p->id, 32);
	fputs("{\"type\": \"problem\", \"error\": ", f);
	ctl_out_json_string(f, ferry_strerror(p->code));
	fputs(", \"file\": ", f);
	ctl_out_json_string(f, p->file);
	fprintf(f, ", \"offset\": %" PRIu64 ", \"chunk\": \"%s\", \"missing\": %s, \"message\": ",
		p->offset, hex, p->code == FERRY_EINCOMPLETE ? "true" : "false");
	ctl_out_json_string(f, p->message);
	fputs("}\n", f);
}

static void json_report(FILE *f, const struct bundle_report *rep, int r)
{
	for (size_t i = 0; i < rep->nmanifests; i++) {
		const struct bundle_manifest_result *m = &rep->manifests[i];

		fputs("{\"type\": \"manifest\", \"file\": ", f);
		ctl_out_json_string(f, m->file);
		fputs(", \"name\": ", f);
		ctl_out_json_string(f, m->name);
		fprintf(f, ", \"version\": %" PRIu64 ", \"result\": ", m->version);
		ctl_out_json_string(f, outcome_name(m->outcome));
		fprintf(f, ", \"complete\": %s}\n", m->complete ? "true" : "false");
	}
	for (size_t i = 0; i < rep->nproblems; i++)
		json_problem(f, &rep->problems[i]);
	fprintf(f,
		"{\"type\": \"result\", \"ok\": %s, \"delta\": %s, \"manifests\": %zu, "
		"\"manifests_refused\": %" PRIu32 ", \"chunks_imported\": %" PRIu64
		", \"bytes_imported\": %" PRIu64 ", \"chunks_present\": %" PRIu64
		", \"chunks_bad\": %" PRIu64 ", \"chunks_missing\": %" PRIu64
		", \"chunks_unreferenced\": %" PRIu64 ", \"problems\": %" PRIu64 ", \"error\": ",
		r == 0 ? "true" : "false", rep->delta ? "true" : "false", rep->nmanifests,
		rep->manifests_refused, rep->chunks_imported, rep->bytes_imported,
		rep->chunks_present, rep->chunks_bad, rep->chunks_missing, rep->chunks_unreferenced,
		rep->problems_total);
	ctl_out_json_string(f, r == 0 ? "" : ferry_errmsg(r));
	fputs("}\n", f);
}

static void text_report(struct ctl *c, const struct bundle_report *rep)
{
	ctl_out_list_begin(c->out, "manifests");
	for (size_t i = 0; i < rep->nmanifests; i++) {
		const struct bundle_manifest_result *m = &rep->manifests[i];

		ctl_out_row_begin(c->out);
		ctl_out_str(c->out, "file", "file", m->file);
		ctl_out_str(c->out, "name", "model", m->name[0] ? m->name : "-");
		ctl_out_uint(c->out, "version", "version", m->version);
		ctl_out_str(c->out, "result", "result", outcome_name(m->outcome));
		ctl_out_bool(c->out, "complete", "complete", m->complete);
		ctl_out_row_end(c->out);
	}
	ctl_out_list_end(c->out);
	ctl_out_uint(c->out, "chunks_imported", "chunks imported", rep->chunks_imported);
	ctl_out_bytes(c->out, "bytes_imported", "bytes imported", rep->bytes_imported);
	ctl_out_uint(c->out, "chunks_present", "already present", rep->chunks_present);
	ctl_out_uint(c->out, "chunks_bad", "refused", rep->chunks_bad);
	ctl_out_uint(c->out, "chunks_missing", "missing", rep->chunks_missing);
	if (rep->chunks_unreferenced > 0)
		ctl_out_uint(c->out, "chunks_unreferenced", "skipped (no accepted manifest)",
			     rep->chunks_unreferenced);
	ctl_out_bool(c->out, "delta", "delta bundle (made from a have-file)", rep->delta);
	if (rep->chunks_missing > 0 && rep->delta)
		ctl_out_note(c->out,
			     "this bundle leaves out what the node its have-file came from "
			     "held; the missing chunks come from peers once this node has a "
			     "link");
	else if (rep->chunks_missing > 0)
		ctl_out_note(c->out,
			     "the missing chunks come from peers once this node has a link");
}

/* The report of a sideload, offline or through the daemon, however it ended. */
static void sideload_output(struct ctl *c, const struct bundle_report *rep, int r)
{
	if (c->json) {
		json_report(stdout, rep, r);
		return;
	}
	/* Each problem by name on stderr, the report on stdout even when it fails. */
	for (size_t i = 0; i < rep->nproblems; i++)
		fprintf(stderr, "ferryctl: sideload: %s\n", rep->problems[i].message);
	if (rep->problems_total > rep->nproblems)
		fprintf(stderr, "ferryctl: sideload: ... and %" PRIu64 " more problems\n",
			rep->problems_total - rep->nproblems);
	if (rep->nmanifests > 0 || r == 0)
		text_report(c, rep);
	ctl_out_free(c->out);
	c->out = NULL;
}

int cmd_sideload(struct ctl *c)
{
	struct bundle_import_opts o = {.progress = show_progress};
	struct bundle_report rep = {0};
	struct progress pr;
	struct store *st = NULL;
	struct trust t = {0};
	int dirfd = -1, r;

	r = open_store_trust(c, STORE_WRITE | STORE_CREATE, &st, &t);
	if (r == 0)
		r = open_bundle_parent(c->pos[0], &dirfd);
	if (r < 0) {
		if (c->json)
			json_report(stdout, &rep, r);
		goto out;
	}
	progress_init(&pr, "reading", c->json ? stdout : NULL);
	o.arg = &pr;
	r = bundle_import(st, &t, dirfd, &o, &rep);
	progress_end(&pr);
	sideload_output(c, &rep, r);
out:
	bundle_report_free(&rep);
	if (dirfd >= 0)
		close(dirfd);
	free(t.keys);
	store_close(st);
	return r < 0 ? fail(c, r) : 0;
}

/* ---- have ---- */

int cmd_have(struct ctl *c)
{
	const char *path = c->opt[0];
	char *tmp = xasprintf("%s.tmp", path);
	struct store *st = NULL;
	size_t nv = 0, nc = 0;
	int fd = -1, r;

	r = ctl_store_open(c, 0, &st);
	if (r < 0)
		goto out;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0) {
		r = ferry_errno(errno, "cannot create %s", tmp);
		goto out;
	}
	r = have_write(st, fd, &nv, &nc);
	if (r == 0 && close(fd) != 0)
		r = ferry_errno(errno, "writing %s", tmp);
	fd = -1;
	if (r == 0 && rename(tmp, path) != 0)
		r = ferry_errno(errno, "cannot rename %s to %s", tmp, path);
	if (r < 0) {
		unlink(tmp);
		goto out;
	}
	ctl_out_str(c->out, "file", "wrote", path);
	ctl_out_uint(c->out, "versions", "model versions", nv);
	ctl_out_uint(c->out, "chunks", "chunks", nc);
	ctl_out_note(
	    c->out, "carry it to the publisher's site: ferryctl bundle create --have %s ...", path);
out:
	if (fd >= 0)
		close(fd);
	free(tmp);
	store_close(st);
	return r < 0 ? fail(c, r) : 0;
}

/* ---- through the daemon ---- */

/* One exchange with ferryd carrying fd and fd2 (-1: none), its data to on_data. */
static int daemon_call2(const struct ctl *c, const struct ctl_request *req, int fd, int fd2,
			ctl_client_data_fn *on_data, void *arg)
{
	struct ctl_client *cl = NULL;
	int r = ctl_client_connect(socket_path(c), &cl);

	if (r == 0)
		r = ctl_client_request2(cl, req, fd, fd2);
	if (r == 0)
		r = ctl_client_replies(cl, on_data, arg);
	ctl_client_free(cl);
	return r;
}

/* A progress record from ferryd, shown as the offline commands show their own. */
static int daemon_progress(struct progress *pr, const struct ctl_msg *m)
{
	static const char *const phases[] = {"manifests", "index", "chunks", "done"};
	struct ctl_bundle_progress r;
	struct bundle_progress p = {.phase = BUNDLE_PHASE_CHUNKS};
	char *mem;
	int rc = daemon_record(m, CTL_DATA_BUNDLE_PROGRESS, &r, &mem);

	if (rc == 0) {
		for (size_t i = 0; i < ARRAY_SIZE(phases); i++)
			if (r.phase != NULL && strcmp(r.phase, phases[i]) == 0)
				p.phase = (enum bundle_phase)i;
		p.file = r.file;
		p.bytes_done = r.bytes_done;
		p.bytes_total = r.bytes_total;
		p.chunks_done = r.chunks_done;
		p.chunks_total = r.chunks_total;
		show_progress(pr, &p);
	}
	free(mem);
	return rc;
}

struct sideload_call {
	struct progress pr;
	struct bundle_report rep; /* built from ferryd's records, freed by bundle_report_free */
	bool reported;		  /* the counts arrived */
};

static int on_sideload_data(void *arg, struct ctl_client *cl, const struct ctl_msg *m)
{
	struct sideload_call *sc = arg;
	struct bundle_report *rep = &sc->rep;
	char *mem = NULL;
	int r = 0;

	(void)cl;
	switch (m->kind) {
	case CTL_DATA_BUNDLE_PROGRESS:
		return daemon_progress(&sc->pr, m);
	case CTL_DATA_BUNDLE_MANIFEST: {
		struct ctl_bundle_manifest bm;
		struct bundle_manifest_result *res;

		if ((r = daemon_record(m, CTL_DATA_BUNDLE_MANIFEST, &bm, &mem)) < 0)
			break;
		rep->manifests =
		    xreallocarray(rep->manifests, rep->nmanifests + 1, sizeof(*rep->manifests));
		res = &rep->manifests[rep->nmanifests++];
		memset(res, 0, sizeof(*res));
		snprintf(res->file, sizeof(res->file), "%s", bm.file ? bm.file : "");
		snprintf(res->name, sizeof(res->name), "%s", bm.name ? bm.name : "");
		res->version = bm.version;
		res->outcome = bm.outcome < INT32_MIN || bm.outcome > INT32_MAX ? FERRY_EPROTO
										  : (int)bm.outcome;
		res->complete = bm.complete;
		break;
	}
	case CTL_DATA_BUNDLE_PROBLEM: {
		struct ctl_bundle_problem bp;
		struct bundle_problem *p;

		if ((r = daemon_record(m, CTL_DATA_BUNDLE_PROBLEM, &bp, &mem)) < 0)
			break;
		rep->problems =
		    xreallocarray(rep->problems, rep->nproblems + 1, sizeof(*rep->problems));
		p = &rep->problems[rep->nproblems++];
		memset(p, 0, sizeof(*p));
		p->code = bp.code < INT32_MIN || bp.code > -1 ? FERRY_EPROTO : (int)bp.code;
		snprintf(p->file, sizeof(p->file), "%s", bp.file ? bp.file : "");
		p->offset = bp.offset;
		p->has_id = bp.has_id;
		memcpy(p->id, bp.id, sizeof(p->id));
		p->message = xstrdup(bp.message ? bp.message : "");
		break;
	}
	case CTL_DATA_BUNDLE_REPORT: {
		struct ctl_bundle_report br;

		if ((r = daemon_record(m, CTL_DATA_BUNDLE_REPORT, &br, &mem)) < 0)
			break;
		rep->manifests_refused = (uint32_t)MIN(br.manifests_refused, UINT32_MAX);
		rep->chunks_imported = br.chunks_imported;
		rep->bytes_imported = br.bytes_imported;
		rep->chunks_present = br.chunks_present;
		rep->chunks_bad = br.chunks_bad;
		rep->chunks_missing = br.chunks_missing;
		rep->chunks_unreferenced = br.chunks_unreferenced;
		rep->problems_total = br.problems_total;
		rep->delta = br.delta;
		sc->reported = true;
		break;
	}
	default:
		r = ferry_errf(FERRY_EPROTO, "ferryd sent a %s record to sideload",
			       m->kind ? ctl_data_kind_name(m->kind) : "unknown");
	}
	free(mem);
	return r;
}

int cmd_sideload_daemon(struct ctl *c)
{
	struct ctl_request req = {.cmd = "sideload"};
	struct sideload_call sc;
	int dirfd = -1, r;

	memset(&sc, 0, sizeof(sc));
	r = open_bundle_parent(c->pos[0], &dirfd);
	if (r == 0) {
		progress_init(&sc.pr, "reading", c->json ? stdout : NULL);
		r = daemon_call2(c, &req, dirfd, -1, on_sideload_data, &sc);
		progress_end(&sc.pr);
	}
	if (dirfd >= 0)
		close(dirfd);
	/* A daemon that went away mid-import leaves a partial report: show what came. */
	if (!sc.reported && r == 0)
		r = ferry_errf(FERRY_EPROTO, "ferryd ended the sideload without a report");
	sideload_output(c, &sc.rep, r);
	bundle_report_free(&sc.rep);
	return r < 0 ? fail(c, r) : 0;
}

struct bundle_call {
	struct ctl *c;
	struct progress pr;
	struct bundle_create_stats stats;
	bool created;
};

static int on_bundle_data(void *arg, struct ctl_client *cl, const struct ctl_msg *m)
{
	struct bundle_call *bc = arg;
	char *mem = NULL;
	int r = 0;

	(void)cl;
	switch (m->kind) {
	case CTL_DATA_BUNDLE_PROGRESS:
		return bc->c->json ? 0 : daemon_progress(&bc->pr, m);
	case CTL_DATA_MODEL: {
		struct node_model_row row;

		if ((r = daemon_record(m, CTL_DATA_MODEL, &row, &mem)) == 0) {
			progress_end(&bc->pr);
			out_version(bc->c, row.name ? row.name : "", row.version, row.label,
				    row.size);
		}
		break;
	}
	case CTL_DATA_BUNDLE_CREATED:
		r = daemon_record(m, CTL_DATA_BUNDLE_CREATED, &bc->stats, &mem);
		bc->created = r == 0;
		break;
	default:
		r = ferry_errf(FERRY_EPROTO, "ferryd sent a %s record to bundle create",
			       m->kind ? ctl_data_kind_name(m->kind) : "unknown");
	}
	free(mem);
	return r;
}

int cmd_bundle_daemon(struct ctl *c)
{
	const char *dir = c->opt[0], *have_path = c->opt[1];
	struct ctl_request req = {.cmd = "bundle_create"};
	struct bundle_call bc;
	char name[MANIFEST_NAME_MAX + 1], *list = xstrdup("");
	uint64_t pack_max = 0, version;
	int dirfd = -1, havefd = -1, r;

	memset(&bc, 0, sizeof(bc));
	bc.c = c;
	if (strcmp(c->pos[0], "create") != 0) {
		r = usage_err(c->cmd, "unknown bundle command '%s' (there is: create)", c->pos[0]);
		goto done;
	}
	if (c->opt[2] != NULL && parse_size(c->opt[2], &pack_max) < 0) {
		r = usage_err(c->cmd, "--pack-size '%s' is not a size (e.g. 512M)", c->opt[2]);
		goto done;
	}
	if (c->npos - 1 > CTL_BUNDLE_MODELS_MAX) {
		r = usage_err(c->cmd, "at most %u models in one bundle", CTL_BUNDLE_MODELS_MAX);
		goto done;
	}
	for (int i = 1; i < c->npos; i++) {
		char *next;

		if (catalog_parse_ref(c->pos[i], name, sizeof(name), &version) < 0) {
			r = usage_err(c->cmd, "%s", ferry_errmsg(FERRY_EINVAL));
			goto done;
		}
		next = xasprintf("%s%s%s", list, *list ? " " : "", c->pos[i]);
		free(list);
		list = next;
	}
	if (have_path != NULL) {
		havefd = open(have_path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
		if (havefd < 0) {
			r = ferry_errno(errno, "cannot open the have-file %s", have_path);
			goto out;
		}
	}
	if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
		r = ferry_errno(errno, "cannot create the output directory %s", dir);
		goto out;
	}
	dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0) {
		r = ferry_errno(errno, "cannot open the output directory %s", dir);
		goto out;
	}
	ctl_request_str(&req, "models", list);
	if (pack_max != 0)
		ctl_request_uint(&req, "pack_size", pack_max);
	progress_init(&bc.pr, "writing", NULL);
	ctl_out_list_begin(c->out, "versions");
	r = daemon_call2(c, &req, dirfd, havefd, on_bundle_data, &bc);
	progress_end(&bc.pr);
	ctl_out_list_end(c->out);
	if (r == 0 && !bc.created)
		r = ferry_errf(FERRY_EPROTO, "ferryd ended bundle create without its figures");
	if (r == 0)
		out_created(c, dir, &bc.stats, have_path != NULL);
out:
	if (r < 0)
		r = fail(c, r);
done:
	if (dirfd >= 0)
		close(dirfd);
	if (havefd >= 0)
		close(havefd);
	free(list);
	return r;
}

static int on_have_data(void *arg, struct ctl_client *cl, const struct ctl_msg *m)
{
	char *mem;
	int r;

	(void)cl;
	r = daemon_record(m, CTL_DATA_HAVE, arg, &mem);
	free(mem);
	return r;
}

int cmd_have_daemon(struct ctl *c)
{
	const char *path = c->opt[0];
	char *tmp = xasprintf("%s.tmp", path);
	struct ctl_request req = {.cmd = "have"};
	struct ctl_have h = {0};
	int fd, r;

	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0) {
		r = ferry_errno(errno, "cannot create %s", tmp);
		goto out;
	}
	r = daemon_call2(c, &req, fd, -1, on_have_data, &h);
	/* ferryd wrote and fsynced through its own descriptor; ours only closes. */
	if (close(fd) != 0 && r == 0)
		r = ferry_errno(errno, "writing %s", tmp);
	if (r == 0 && rename(tmp, path) != 0)
		r = ferry_errno(errno, "cannot rename %s to %s", tmp, path);
	if (r < 0) {
		unlink(tmp);
		goto out;
	}
	ctl_out_str(c->out, "file", "wrote", path);
	ctl_out_uint(c->out, "versions", "model versions", h.versions);
	ctl_out_uint(c->out, "chunks", "chunks", h.chunks);
	ctl_out_note(
	    c->out, "carry it to the publisher's site: ferryctl bundle create --have %s ...", path);
out:
	free(tmp);
	return r < 0 ? fail(c, r) : 0;
}
