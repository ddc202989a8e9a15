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
	char *path = NULL;

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
	path = xasprintf("%s/" BUNDLE_DIR, dir);
	ctl_out_list_begin(c->out, "versions");
	for (int i = 0; i < nrefs; i++) {
		struct manifest *m = NULL;

		/* What NAME alone stood for, as bundle_create resolved it. */
		if (catalog_load(st, &t, refs[i].name, refs[i].version, &m) != 0)
			continue;
		ctl_out_row_begin(c->out);
		ctl_out_str(c->out, "name", "model", m->name);
		ctl_out_uint(c->out, "version", "version", m->version);
		ctl_out_str(c->out, "label", "label", m->label);
		ctl_out_bytes(c->out, "size", "size", manifest_total_size(m));
		ctl_out_row_end(c->out);
		manifest_free(m);
	}
	ctl_out_list_end(c->out);
	ctl_out_str(c->out, "bundle", "bundle", path);
	ctl_out_uint(c->out, "manifests", "manifests", s.manifests);
	ctl_out_uint(c->out, "packs", "packs", s.packs);
	ctl_out_uint(c->out, "packs_kept", "packs kept from an earlier run", s.packs_kept);
	ctl_out_uint(c->out, "chunks", "chunks", s.chunks);
	ctl_out_bytes(c->out, "bytes", "size on the medium", s.bytes);
	ctl_out_bytes(c->out, "written_bytes", "written now", s.written_bytes);
	ctl_out_bytes(c->out, "model_bytes", "model size", s.raw_bytes);
	ctl_out_bool(c->out, "delta", "delta (--have)", h != NULL);
	if (h != NULL) {
		ctl_out_uint(c->out, "skipped_chunks", "left out (the target has them)",
			     s.skipped_chunks);
		ctl_out_bytes(c->out, "skipped_bytes", "left out", s.skipped_bytes);
	}
	ctl_out_note(c->out, "carry %s to the node and run: ferryctl sideload DIR", path);
out:
	if (r < 0)
		r = fail(c, r);
done:
	if (dirfd >= 0)
		close(dirfd);
	free(path);
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
	if (c->json) {
		json_report(stdout, &rep, r);
	} else {
		/* Each problem by name on stderr, the report on stdout even when it fails. */
		for (size_t i = 0; i < rep.nproblems; i++)
			fprintf(stderr, "ferryctl: sideload: %s\n", rep.problems[i].message);
		if (rep.problems_total > rep.nproblems)
			fprintf(stderr, "ferryctl: sideload: ... and %" PRIu64 " more problems\n",
				rep.problems_total - rep.nproblems);
		if (rep.nmanifests > 0 || r == 0)
			text_report(c, &rep);
		ctl_out_free(c->out);
		c->out = NULL;
	}
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
