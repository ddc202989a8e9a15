/*
 * ferryctl: the control client (docs/ferryctl.1).
 *
 * One table (commands[]) drives option parsing, dispatch, `ferryctl help`
 * and usage errors. Each command is read, write or local: read and write
 * commands go to the running ferryd through its control socket (the
 * `daemon` function, ctl_client.h), or with --store DIR work on a store
 * directly (the `fn` function); local ones need neither. A command has one
 * or both forms. Output goes through ctl_out, as text or, with --json, as
 * one JSON document (fetch --wait --json: JSON Lines, one per update). Exit
 * status: 0 success, 1 failure, 2 usage error.
 *
 * Trust with --store (the rule is in docs/ferryctl.1, "TRUST"): the store
 * directory's `trust` file lists the publishers it trusts, one base64 public
 * key a line; --trust KEY adds one for a single command. The first publish
 * into a store without that file trusts its signer, and every publish records
 * its signer there once accepted, so what a store holds it can load again.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ferry/catalog.h"
#include "ferry/ctl.h"
#include "ferry/ctl_client.h"
#include "ferry/ctl_out.h"
#include "ferry/error.h"
#include "ferry/fcrypto.h"
#include "ferry/manifest.h"
#include "ferry/publish.h"
#include "ferry/store.h"
#include "ferry/util.h"
#include "ferryctl.h"

#define DEFAULT_SOCKET RUNSTATEDIR "/ferry/ferryd.sock"
#define TRUST_FILE     "trust"
#define TRUST_FILE_MAX (1024u * 1024u)

/* ---- messages ---------------------------------------------------------- */

static void usage_line(FILE *f, const struct cmd *cmd)
{
	const char *where = "";

	if (cmd->kind != CMD_LOCAL)
		where = cmd->fn == NULL	      ? "[--socket PATH] "
			: cmd->daemon == NULL ? "--store DIR "
					      : "[--socket PATH | --store DIR] ";
	fprintf(f, "usage: ferryctl %s[--json] %s%s%s\n", where, cmd->name,
		cmd->usage[0] ? " " : "", cmd->usage);
}

/* A usage error: the message, the command's usage line, exit status 2. */
int usage_err(const struct cmd *cmd, const char *fmt, ...)
{
	va_list ap;

	fputs("ferryctl: ", stderr);
	if (cmd != NULL)
		fprintf(stderr, "%s: ", cmd->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (cmd != NULL)
		usage_line(stderr, cmd);
	else
		fputs("usage: ferryctl [--socket PATH | --store DIR] [--json] COMMAND ...\n"
		      "       ferryctl help   (lists the commands)\n",
		      stderr);
	return EXIT_USAGE;
}

/* A failed command: "ferryctl: CMD: detail", exit status 1. */
int fail(const struct ctl *c, int code)
{
	fprintf(stderr, "ferryctl: %s: %s\n", c->cmd->name, ferry_errmsg(code));
	return 1;
}

/* ---- stores and trust -------------------------------------------------- */

int ctl_store_open(struct ctl *c, unsigned flags, struct store **st)
{
	int r;

	r = store_open(c->store_dir, flags, st);
	if (r == FERRY_ELOCKED)
		return ferry_errf(r,
				  "the store in %s is locked by another process (a running ferryd "
				  "or ferryctl); try again once it has stopped",
				  c->store_dir);
	return r;
}

static bool trust_has(const struct trust *t, const uint8_t key[32])
{
	for (size_t i = 0; i < t->n; i++)
		if (memcmp(t->keys[i], key, 32) == 0)
			return true;
	return false;
}

static void trust_add(struct trust *t, const uint8_t key[32])
{
	if (trust_has(t, key))
		return;
	t->keys = xreallocarray(t->keys, t->n + 1, sizeof(*t->keys));
	memcpy(t->keys[t->n++], key, 32);
}

/*
 * The trust list of a --store command: DIR/trust, then --trust keys.
 * *in_file (if not NULL) is the number of keys that came from the file.
 */
int trust_load(const struct ctl *c, struct trust *t, size_t *in_file)
{
	char *path = xasprintf("%s/%s", c->store_dir, TRUST_FILE);
	char *text = NULL, *line, *save = NULL;
	size_t len, lineno = 0;
	int r;

	r = read_file(path, TRUST_FILE_MAX, &text, &len);
	if (r == FERRY_ENOENT) {
		r = 0;
	} else if (r == 0) {
		for (line = strtok_r(text, "\n", &save); line != NULL;
		     line = strtok_r(NULL, "\n", &save)) {
			uint8_t key[32];
			char *hash = strchr(line, '#');

			lineno++;
			if (hash != NULL)
				*hash = '\0';
			if (strspn(line, " \t\r") == strlen(line))
				continue;
			if (fcrypto_b64_decode(key, sizeof(key), line) < 0) {
				r = ferry_errf(FERRY_ECONFIG,
					       "%s line %zu: not a base64 Ed25519 public key", path,
					       lineno);
				break;
			}
			trust_add(t, key);
		}
	}
	if (in_file != NULL)
		*in_file = t->n;
	for (size_t i = 0; r == 0 && i < c->ntrust; i++)
		trust_add(t, c->trust[i]);
	free(text);
	free(path);
	return r;
}

/* Add key to DIR/trust (through a temporary file, fsync'd). */
static int trust_record(const struct ctl *c, const uint8_t key[32])
{
	char *path = xasprintf("%s/%s", c->store_dir, TRUST_FILE);
	char *tmp = xasprintf("%s/.%s.tmp", c->store_dir, TRUST_FILE);
	char *old = NULL, b64[FERRY_B64_32_LEN];
	size_t len = 0;
	int fd = -1, r;

	r = read_file(path, TRUST_FILE_MAX, &old, &len);
	if (r == FERRY_ENOENT) {
		old = xstrdup("# Publishers this store trusts (ferryctl(1), TRUST): one base64 "
			      "Ed25519 public key a line.\n");
		len = strlen(old);
		r = 0;
	}
	if (r < 0)
		goto out;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0) {
		r = ferry_errno(errno, "%s", tmp);
		goto out;
	}
	fcrypto_b64_encode(b64, key, 32);
	r = write_full(fd, old, len);
	if (r == 0 && len > 0 && old[len - 1] != '\n')
		r = write_full(fd, "\n", 1);
	if (r == 0)
		r = write_full(fd, b64, strlen(b64));
	if (r == 0)
		r = write_full(fd, "\n", 1);
	if (r == 0 && fsync(fd) != 0)
		r = -errno;
	if (r < 0) {
		r = ferry_errf(r, "%s: %s", tmp, ferry_strerror(r));
		unlink(tmp);
		goto out;
	}
	if (rename(tmp, path) != 0) {
		r = ferry_errno(errno, "%s", path);
		unlink(tmp);
	}
out:
	if (fd >= 0)
		close(fd);
	free(old);
	free(tmp);
	free(path);
	return r;
}

/* Load NAME[@VERSION] from the store, checked against the trust list. */
static int load_ref(struct ctl *c, struct store *st, const char *ref, struct manifest **m)
{
	char name[MANIFEST_NAME_MAX + 1];
	struct trust t = {0};
	uint64_t version;
	int r;

	r = catalog_parse_ref(ref, name, sizeof(name), &version);
	if (r == 0)
		r = trust_load(c, &t, NULL);
	if (r == 0)
		r = catalog_load(st, &t, name, version, m);
	free(t.keys);
	return r;
}

/* ---- local commands ---------------------------------------------------- */

static int cmd_keygen(struct ctl *c)
{
	uint8_t pk[FERRY_PK_LEN], sk[FERRY_SK_LEN];
	char b64[FERRY_B64_32_LEN];
	const char *path = c->opt[0];
	int r;

	fcrypto_sign_keypair(pk, sk);
	r = fcrypto_publisher_key_write(path, sk);
	fcrypto_wipe(sk, sizeof(sk));
	if (r < 0)
		return fail(c, r);
	fcrypto_b64_encode(b64, pk, sizeof(pk));
	if (c->json) {
		ctl_out_str(c->out, "key_file", "key file", path);
		ctl_out_str(c->out, "public_key", "public key", b64);
	} else {
		/* The key is stdout's last line, for scripts: tail -n 1. */
		ctl_out_note(c->out, "wrote the publisher key to %s (keep it secret)", path);
		ctl_out_note(c->out, "its public key, for \"publisher =\" in [trust]:");
		ctl_out_note(c->out, "%s", b64);
	}
	return 0;
}

static int cmd_netkey(struct ctl *c)
{
	uint8_t key[FERRY_NETKEY_LEN];
	const char *path = c->opt[0];
	int r;

	fcrypto_random(key, sizeof(key));
	r = fcrypto_netkey_write(path, key);
	fcrypto_wipe(key, sizeof(key));
	if (r < 0)
		return fail(c, r);
	ctl_out_str(c->out, "key_file", "network key", path);
	ctl_out_note(c->out, "copy it to every node of the network (network_key_file =)");
	return 0;
}

static int cmd_help(struct ctl *c);

/* ---- publish ----------------------------------------------------------- */

static int parse_version(const char *s, uint64_t *v)
{
	char *end;

	if (s[0] < '0' || s[0] > '9')
		return -1;
	errno = 0;
	*v = strtoull(s, &end, 10);
	return errno != 0 || *end != '\0' || *v == 0 ? -1 : 0;
}

static void print_publish(struct ctl *c, const struct manifest *m, const struct publish_stats *s)
{
	uint64_t dedup = s->raw_bytes - s->new_raw_bytes;

	ctl_out_list_begin(c->out, "files");
	for (uint32_t i = 0; i < m->nfiles; i++) {
		ctl_out_row_begin(c->out);
		ctl_out_str(c->out, "path", "path", m->files[i].path);
		ctl_out_bytes(c->out, "size", "size", m->files[i].size);
		ctl_out_row_end(c->out);
	}
	ctl_out_list_end(c->out);
	ctl_out_str(c->out, "name", "model", m->name);
	ctl_out_uint(c->out, "version", "version", m->version);
	ctl_out_str(c->out, "label", "label", m->label);
	ctl_out_uint(c->out, "file_count", "files", m->nfiles);
	ctl_out_bytes(c->out, "size", "size", s->raw_bytes);
	ctl_out_uint(c->out, "chunks", "chunks", s->chunks);
	ctl_out_bytes(c->out, "new_bytes", "new", s->new_raw_bytes);
	ctl_out_bytes(c->out, "dedup_bytes", "deduplicated", dedup);
	ctl_out_bytes(c->out, "stored_bytes", "stored (encoded)", s->new_enc_bytes);
	ctl_out_pct(c->out, "encoded_pct", "encoded size",
		    s->raw_bytes ? 100.0 * (double)s->enc_bytes / (double)s->raw_bytes : 100.0);
}

static int cmd_publish(struct ctl *c)
{
	const char *name = c->pos[0], *dir = c->pos[2];
	struct publish_opts opts = {.name = name, .label = c->opt[1]};
	struct publish_stats stats;
	struct store *st = NULL;
	struct store_rd *rd = NULL;
	struct store_head head;
	struct manifest *m = NULL;
	struct trust t = {0};
	uint8_t sk[FERRY_SK_LEN], sig[FERRY_SIG_LEN];
	uint8_t *body = NULL, *sealed = NULL;
	size_t len, sealed_len, in_file;
	char b64[FERRY_B64_32_LEN];
	int dirfd = -1, r;

	if (manifest_name_check(name) < 0)
		return usage_err(c->cmd, "%s", ferry_errmsg(FERRY_EINVAL));
	if (parse_version(c->pos[1], &opts.version) < 0)
		return usage_err(c->cmd, "VERSION '%s' is not a whole number of 1 or more",
				 c->pos[1]);
	if (opts.label != NULL && strlen(opts.label) > MANIFEST_LABEL_MAX)
		return usage_err(c->cmd, "--label is longer than %u bytes", MANIFEST_LABEL_MAX);

	r = fcrypto_publisher_key_read(c->opt[0], sk);
	if (r < 0)
		goto out;
	fcrypto_sk_to_pk(opts.publisher, sk);
	fcrypto_b64_encode(b64, opts.publisher, 32);
	dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0) {
		r = ferry_errno(errno, "cannot open the source directory %s", dir);
		goto out;
	}
	r = ctl_store_open(c, STORE_WRITE | STORE_CREATE, &st);
	if (r < 0)
		goto out;

	/* Refuse early what catalog_accept would refuse after all the work. */
	r = trust_load(c, &t, &in_file);
	if (r < 0)
		goto out;
	if (t.n == 0)
		trust_add(&t, opts.publisher); /* a new store trusts its first publisher */
	if (!trust_has(&t, opts.publisher)) {
		r = ferry_errf(FERRY_EUNTRUSTED,
			       "publisher key %s is not trusted by the store in %s: add it to "
			       "%s/%s or pass --trust %s",
			       b64, c->store_dir, c->store_dir, TRUST_FILE, b64);
		goto out;
	}
	r = store_rd_begin(st, &rd);
	if (r == 0)
		r = store_head_get(rd, name, &head);
	store_rd_end(rd);
	if (r < 0)
		goto out;
	if (opts.version <= head.hwm) {
		r = ferry_errf(FERRY_EOLDVERSION,
			       "model '%s' is already at version %llu; publish a version above it",
			       name, (unsigned long long)head.hwm);
		goto out;
	}

	r = publish_ingest(st, dirfd, &opts, &body, &len, &stats);
	if (r < 0)
		goto out;
	r = manifest_sign(body, len, sk, sig);
	if (r == 0)
		r = manifest_seal(body, len, sig, &sealed, &sealed_len);
	if (r < 0)
		goto out;
	if (in_file == 0 || !trust_has(&(struct trust){in_file, t.keys}, opts.publisher)) {
		r = trust_record(c, opts.publisher);
		if (r < 0)
			goto out;
	}
	r = catalog_accept(st, &t, sealed, sealed_len, 0, &m);
	if (r < 0)
		goto out;
	print_publish(c, m, &stats);
	r = 0;
out:
	fcrypto_wipe(sk, sizeof(sk));
	manifest_free(m);
	free(body);
	free(sealed);
	free(t.keys);
	store_close(st);
	if (dirfd >= 0)
		close(dirfd);
	return r < 0 ? fail(c, r) : 0;
}

/* ---- read commands ----------------------------------------------------- */

static int cmd_export(struct ctl *c)
{
	const char *dir = c->pos[1];
	struct store *st = NULL;
	struct manifest *m = NULL;
	unsigned flags = c->opt[0] ? EXPORT_SHA256 : 0;
	int dirfd = -1, r;

	r = ctl_store_open(c, 0, &st);
	if (r == 0)
		r = load_ref(c, st, c->pos[0], &m);
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
	r = export_version(st, m, dirfd, flags);
	if (r < 0)
		goto out;
	ctl_out_str(c->out, "name", "model", m->name);
	ctl_out_uint(c->out, "version", "version", m->version);
	ctl_out_uint(c->out, "file_count", "files", m->nfiles);
	ctl_out_bytes(c->out, "size", "size", manifest_total_size(m));
	ctl_out_str(c->out, "dir", "written to", dir);
	ctl_out_bool(c->out, "sha256_checked", "SHA-256 checked", flags & EXPORT_SHA256);
out:
	manifest_free(m);
	store_close(st);
	if (dirfd >= 0)
		close(dirfd);
	return r < 0 ? fail(c, r) : 0;
}

struct version_ref {
	char *name;
	uint64_t version;
};

struct version_list {
	struct version_ref *v;
	size_t n;
};

static int collect_version(void *arg, const char *name, uint64_t version, const uint8_t *bytes,
			   size_t len)
{
	struct version_list *l = arg;

	l->v = xreallocarray(l->v, l->n + 1, sizeof(*l->v));
	l->v[l->n].name = xstrdup(name);
	l->v[l->n].version = version;
	l->n++;
	return 0;
}

static int model_row(struct ctl *c, struct store *st, const struct trust *t,
		     const struct version_ref *v)
{
	struct manifest *m = NULL;
	struct store_rd *rd = NULL;
	struct catalog_presence pr;
	struct store_head head;
	bool pinned = false;
	int r;

	r = catalog_load(st, t, v->name, v->version, &m);
	if (r < 0) {
		/* One unloadable version must not hide the others. */
		fprintf(stderr, "ferryctl: models: %s@%llu: %s\n", v->name,
			(unsigned long long)v->version, ferry_errmsg(r));
		return 0;
	}
	r = store_rd_begin(st, &rd);
	if (r == 0)
		r = catalog_presence(rd, m, &pr);
	if (r == 0)
		r = store_head_get(rd, m->name, &head);
	if (r == 0)
		pinned = store_pinned(rd, m->name, m->version);
	store_rd_end(rd);
	if (r == 0) {
		ctl_out_row_begin(c->out);
		ctl_out_str(c->out, "name", "name", m->name);
		ctl_out_uint(c->out, "version", "version", m->version);
		ctl_out_str(c->out, "label", "label", m->label);
		ctl_out_bytes(c->out, "size", "size", manifest_total_size(m));
		ctl_out_pct(c->out, "present_pct", "present",
			    pr.need_bytes ? 100.0 * (double)pr.have_bytes / (double)pr.need_bytes
					  : 100.0);
		ctl_out_bool(c->out, "active", "active", head.active == m->version);
		ctl_out_bool(c->out, "pinned", "pinned", pinned);
		ctl_out_row_end(c->out);
	}
	manifest_free(m);
	return r;
}

static int cmd_models(struct ctl *c)
{
	struct version_list l = {0};
	struct store *st = NULL;
	struct store_rd *rd = NULL;
	struct trust t = {0};
	int r;

	r = ctl_store_open(c, 0, &st);
	if (r == 0)
		r = trust_load(c, &t, NULL);
	if (r == 0)
		r = store_rd_begin(st, &rd);
	if (r == 0)
		r = store_manifest_foreach(rd, NULL, collect_version, &l);
	store_rd_end(rd);
	if (r < 0)
		goto out;
	ctl_out_list_begin(c->out, "models");
	for (size_t i = 0; i < l.n && r == 0; i++)
		r = model_row(c, st, &t, &l.v[i]);
	ctl_out_list_end(c->out);
	if (r == 0 && l.n == 0)
		ctl_out_note(c->out, "no models in %s", c->store_dir);
out:
	for (size_t i = 0; i < l.n; i++)
		free(l.v[i].name);
	free(l.v);
	free(t.keys);
	store_close(st);
	return r < 0 ? fail(c, r) : 0;
}

struct problem_list {
	struct export_problem *p;
	char **paths;
	size_t n;
};

static void collect_problem(void *arg, const struct export_problem *p)
{
	struct problem_list *l = arg;

	l->p = xreallocarray(l->p, l->n + 1, sizeof(*l->p));
	l->paths = xreallocarray(l->paths, l->n + 1, sizeof(*l->paths));
	l->p[l->n] = *p;
	l->paths[l->n] = xstrdup(p->path);
	l->p[l->n].path = l->paths[l->n];
	l->n++;
}

static int cmd_verify(struct ctl *c)
{
	struct problem_list l = {0};
	struct export_verify_stats s = {0};
	struct store *st = NULL;
	struct manifest *m = NULL;
	int r;

	r = ctl_store_open(c, 0, &st);
	if (r == 0)
		r = load_ref(c, st, c->pos[0], &m);
	if (r < 0)
		goto out;
	r = export_verify(st, m, collect_problem, &l, &s);
	if (r < 0 && r != FERRY_ECORRUPT && r != FERRY_EINCOMPLETE)
		goto out;
	ctl_out_list_begin(c->out, "problems");
	for (size_t i = 0; i < l.n; i++) {
		char hex[65];

		ctl_out_row_begin(c->out);
		ctl_out_str(c->out, "path", "file", l.p[i].path);
		ctl_out_uint(c->out, "offset", "offset", l.p[i].offset);
		ctl_out_str(c->out, "chunk", "chunk", hex_encode(hex, l.p[i].id, 32));
		ctl_out_str(c->out, "problem", "problem",
			    l.p[i].code == FERRY_EINCOMPLETE ? "missing" : "corrupt");
		ctl_out_bool(c->out, "index_piece", "index", l.p[i].piece);
		ctl_out_row_end(c->out);
	}
	ctl_out_list_end(c->out);
	ctl_out_str(c->out, "name", "model", m->name);
	ctl_out_uint(c->out, "version", "version", m->version);
	ctl_out_uint(c->out, "chunks", "chunks checked", s.chunks);
	ctl_out_bytes(c->out, "bytes", "bytes checked", s.bytes);
	ctl_out_uint(c->out, "corrupt", "corrupt", s.corrupt);
	ctl_out_uint(c->out, "missing", "missing", s.missing);
	if (r < 0) {
		/* The report is the result: print it, then fail. */
		ctl_out_free(c->out);
		c->out = NULL;
	}
out:
	for (size_t i = 0; i < l.n; i++)
		free(l.paths[i]);
	free(l.paths);
	free(l.p);
	manifest_free(m);
	store_close(st);
	return r < 0 ? fail(c, r) : 0;
}

/* ---- write commands ---------------------------------------------------- */

static int cmd_gc(struct ctl *c)
{
	struct store *st = NULL;
	uint64_t chunks = 0, bytes = 0;
	int r;

	r = ctl_store_open(c, STORE_WRITE, &st);
	if (r == 0)
		r = catalog_gc(st, &chunks, &bytes);
	store_close(st);
	if (r < 0)
		return fail(c, r);
	ctl_out_uint(c->out, "freed_chunks", "chunks freed", chunks);
	ctl_out_bytes(c->out, "freed_bytes", "bytes freed", bytes);
	return 0;
}

/* ---- through the daemon ------------------------------------------------ */

const char *socket_path(const struct ctl *c)
{
	return c->socket != NULL ? c->socket : DEFAULT_SOCKET;
}

/* One exchange with ferryd: the request (with fd if >= 0), then its replies. */
int daemon_call(const struct ctl *c, const struct ctl_request *req, int fd,
		ctl_client_data_fn *on_data, void *arg)
{
	struct ctl_client *cl = NULL;
	int r;

	r = ctl_client_connect(socket_path(c), &cl);
	if (r == 0)
		r = ctl_client_request(cl, req, fd);
	if (r == 0)
		r = ctl_client_replies(cl, on_data, arg);
	ctl_client_free(cl);
	return r;
}

/* Decode a data message that must be of kind; *mem owns its strings (free it). */
int daemon_record(const struct ctl_msg *m, enum ctl_data_kind kind, void *rec, char **mem)
{
	*mem = NULL;
	if (m->kind != (int)kind)
		return ferry_errf(FERRY_EPROTO, "ferryd sent a %s record where a %s was expected",
				  m->kind ? ctl_data_kind_name(m->kind) : "unknown",
				  ctl_data_kind_name(kind));
	return ctl_data_decode(kind, m->data, m->data_len, rec, mem);
}

/* A rate: bits/s as a whole number in JSON, "3.2 Mbit/s" as text. */
static void out_rate(struct ctl *c, const char *key, const char *label, double bps)
{
	char buf[32];

	if (c->json)
		ctl_out_uint(c->out, key, label, bps > 0 ? (uint64_t)(bps + 0.5) : 0);
	else
		ctl_out_str(c->out, key, label, fmt_rate(buf, sizeof(buf), bps));
}

/* "3d 04h", "2h 05m", "4m 10s", "12s". */
static char *fmt_duration(char *buf, size_t cap, uint64_t s)
{
	if (s >= 86400)
		snprintf(buf, cap, "%llud %02lluh", (unsigned long long)(s / 86400),
			 (unsigned long long)(s / 3600 % 24));
	else if (s >= 3600)
		snprintf(buf, cap, "%lluh %02llum", (unsigned long long)(s / 3600),
			 (unsigned long long)(s / 60 % 60));
	else if (s >= 60)
		snprintf(buf, cap, "%llum %02llus", (unsigned long long)(s / 60),
			 (unsigned long long)(s % 60));
	else
		snprintf(buf, cap, "%llus", (unsigned long long)s);
	return buf;
}

/* Text only: "1.0 MiB / 2.0 MiB" for bytes over the LAN and over the WAN. */
static void out_lan_wan(struct ctl *c, const char *label, uint64_t lan, uint64_t wan)
{
	char a[32], b[32], *text;

	text = xasprintf("%s / %s", fmt_bytes(a, sizeof(a), lan), fmt_bytes(b, sizeof(b), wan));
	ctl_out_str(c->out, "", label, text);
	free(text);
}

static int on_status(void *arg, struct ctl_client *cl, const struct ctl_msg *m)
{
	struct ctl *c = arg;
	const struct node_status *n;
	struct ctl_status st;
	char *mem, hex[65], buf[32];
	const char *link;
	int r;

	(void)cl;
	r = daemon_record(m, CTL_DATA_STATUS, &st, &mem);
	if (r < 0) {
		free(mem);
		return r;
	}
	n = &st.node;
	if (n->peers_connected > 0)
		link = "up";
	else if (n->peers_known > 0)
		link = "down";
	else
		link = "no peers";
	ctl_out_str(c->out, "node_id", "node id", hex_encode(hex, n->node_id, 32));
	ctl_out_str(c->out, "site", "site",
		    n->site && n->site[0] ? n->site
		    : c->json		  ? ""
					  : "(none)");
	ctl_out_str(c->out, "ferryd_version", "ferryd", st.ferryd_version ? st.ferryd_version : "");
	if (c->json)
		ctl_out_uint(c->out, "uptime_s", "uptime", n->uptime_s);
	else
		ctl_out_str(c->out, "uptime_s", "uptime",
			    fmt_duration(buf, sizeof(buf), n->uptime_s));
	ctl_out_bytes(c->out, "store_bytes", "store", n->store_bytes);
	ctl_out_uint(c->out, "store_chunks", "chunks", n->store_chunks);
	ctl_out_bytes(c->out, "fs_free", "free space", n->fs_free);
	ctl_out_bytes(c->out, "min_free_space", "kept free", n->min_free_space);
	if (n->cache_quota == 0 && !c->json)
		ctl_out_str(c->out, "cache_quota", "quota", "none");
	else
		ctl_out_bytes(c->out, "cache_quota", "quota", n->cache_quota);
	ctl_out_str(c->out, "link", "link", link);
	ctl_out_uint(c->out, "peers_connected", "peers connected", n->peers_connected);
	ctl_out_uint(c->out, "peers_known", "peers known", n->peers_known);
	out_rate(c, "rate_in_bps", "rate in", n->rate_in_bps);
	out_rate(c, "rate_out_bps", "rate out", n->rate_out_bps);
	ctl_out_bytes(c->out, "bytes_received", "received", n->bytes_received);
	ctl_out_bytes(c->out, "bytes_served", "served", n->bytes_served);
	if (c->json) {
		ctl_out_bytes(c->out, "rx_lan", "received LAN", n->rx_lan);
		ctl_out_bytes(c->out, "rx_wan", "received WAN", n->rx_wan);
		ctl_out_bytes(c->out, "tx_lan", "served LAN", n->tx_lan);
		ctl_out_bytes(c->out, "tx_wan", "served WAN", n->tx_wan);
	} else {
		out_lan_wan(c, "received LAN/WAN", n->rx_lan, n->rx_wan);
		out_lan_wan(c, "served LAN/WAN", n->tx_lan, n->tx_wan);
	}
	ctl_out_uint(c->out, "chunks_verified", "chunks verified", n->chunks_verified);
	ctl_out_uint(c->out, "chunks_rejected", "chunks rejected", n->chunks_rejected);
	ctl_out_uint(c->out, "reconnects", "reconnects", n->reconnects);
	ctl_out_bytes(c->out, "resumed_bytes", "resumed", n->resumed_bytes);
	status_limits(c, n);
	if (n->store_error != NULL)
		ctl_out_str(c->out, "store_error", "store error", n->store_error);
	free(mem);
	return 0;
}

static int cmd_status(struct ctl *c)
{
	struct ctl_request req = {.cmd = "status"};
	int r = daemon_call(c, &req, -1, on_status, c);

	return r < 0 ? fail(c, r) : 0;
}

/* d >= 0 seconds in its largest unit: "42s", "3m", "5h", "2d"; whole units rounded up if up. */
static const char *fmt_span(char *buf, size_t cap, int64_t d, bool up)
{
	static const struct {
		int64_t secs;
		char unit;
	} units[] = {{86400, 'd'}, {3600, 'h'}, {60, 'm'}, {1, 's'}};
	size_t i = 0;

	while (d < units[i].secs && units[i].secs > 1)
		i++;
	snprintf(buf, cap, "%lld%c",
		 (long long)((d + (up ? units[i].secs - 1 : 0)) / units[i].secs), units[i].unit);
	return buf;
}

/* "now", "42s ago", "3m ago", "5h ago", "2d ago", "never". */
static char *fmt_ago(char *buf, size_t cap, int64_t when)
{
	int64_t d = (int64_t)time(NULL) - when;
	char span[24];

	if (when <= 0)
		snprintf(buf, cap, "never");
	else if (d < 1)
		snprintf(buf, cap, "now");
	else
		snprintf(buf, cap, "%s ago", fmt_span(span, sizeof(span), d, false));
	return buf;
}

/* "banned (42s left)", "banned (9m left)", "banned (5h left)", "banned (2d left)". */
static char *fmt_banned(char *buf, size_t cap, int64_t until)
{
	int64_t d = until - (int64_t)time(NULL);
	char span[24];

	snprintf(buf, cap, "banned (%s left)", fmt_span(span, sizeof(span), d > 0 ? d : 0, true));
	return buf;
}

static int on_peer(void *arg, struct ctl_client *cl, const struct ctl_msg *m)
{
	struct ctl *c = arg;
	struct node_peer_row p;
	char *mem, hex[65], buf[48];
	int r;

	(void)cl;
	r = daemon_record(m, CTL_DATA_PEER, &p, &mem);
	if (r < 0) {
		free(mem);
		return r;
	}
	ctl_out_row_begin(c->out);
	if (c->json)
		ctl_out_str(c->out, "node_id", "id", hex_encode(hex, p.node_id, 32));
	else
		ctl_out_str(c->out, "node_id", "id", id_short(hex, p.node_id));
	ctl_out_str(c->out, "address", "address", p.address ? p.address : "");
	ctl_out_str(c->out, "site", "site", p.site ? p.site : "");
	if (!c->json && p.banned_until > 0)
		ctl_out_str(c->out, "state", "state", fmt_banned(buf, sizeof(buf), p.banned_until));
	else
		ctl_out_str(c->out, "state", "state", p.state ? p.state : "");
	if (c->json && p.banned_until > 0)
		ctl_out_uint(c->out, "banned_until", "banned until", (uint64_t)p.banned_until);
	ctl_out_bool(c->out, "lan", "lan", p.lan);
	if (p.rtt_ms >= 0) {
		snprintf(buf, sizeof(buf), "%.0f ms", p.rtt_ms);
		if (c->json)
			ctl_out_uint(c->out, "rtt_ms", "rtt", (uint64_t)(p.rtt_ms + 0.5));
		else
			ctl_out_str(c->out, "rtt_ms", "rtt", buf);
	} else if (!c->json) {
		ctl_out_str(c->out, "rtt_ms", "rtt", "-");
	}
	out_rate(c, "rate_in_bps", "in", p.rate_in_bps);
	out_rate(c, "rate_out_bps", "out", p.rate_out_bps);
	if (c->json)
		ctl_out_uint(c->out, "last_seen", "last seen",
			     p.last_seen > 0 ? (uint64_t)p.last_seen : 0);
	else
		ctl_out_str(c->out, "last_seen", "last seen",
			    fmt_ago(buf, sizeof(buf), p.last_seen));
	ctl_out_bytes(c->out, "bytes_received", "received", p.bytes_received);
	ctl_out_bytes(c->out, "bytes_served", "served", p.bytes_served);
	if (c->json && p.window_bytes > 0) {
		ctl_out_uint(c->out, "window_bytes", "window", p.window_bytes);
		ctl_out_uint(c->out, "window_rtt_us", "window rtt", p.window_rtt_us);
	}
	if (c->json && p.lanes > 0)
		ctl_out_uint(c->out, "lanes", "lanes", p.lanes);
	if (c->json && p.congestion != NULL)
		ctl_out_str(c->out, "congestion", "congestion", p.congestion);
	ctl_out_row_end(c->out);
	c->rows++;
	free(mem);
	return 0;
}

static int cmd_peers(struct ctl *c)
{
	struct ctl_request req = {.cmd = "peers"};
	int r;

	ctl_out_list_begin(c->out, "peers");
	r = daemon_call(c, &req, -1, on_peer, c);
	ctl_out_list_end(c->out);
	if (r < 0)
		return fail(c, r);
	if (c->rows == 0)
		ctl_out_note(c->out, "no peers known yet");
	return 0;
}

static int on_model(void *arg, struct ctl_client *cl, const struct ctl_msg *m)
{
	struct ctl *c = arg;
	struct node_model_row row;
	char *mem;
	int r;

	(void)cl;
	r = daemon_record(m, CTL_DATA_MODEL, &row, &mem);
	if (r < 0) {
		free(mem);
		return r;
	}
	ctl_out_row_begin(c->out);
	ctl_out_str(c->out, "name", "name", row.name ? row.name : "");
	ctl_out_uint(c->out, "version", "version", row.version);
	ctl_out_str(c->out, "label", "label", row.label ? row.label : "");
	ctl_out_bytes(c->out, "size", "size", row.size);
	ctl_out_pct(c->out, "present_pct", "present", row.present_pct);
	ctl_out_bool(c->out, "active", "active", row.active);
	ctl_out_bool(c->out, "pinned", "pinned", row.pinned);
	ctl_out_bool(c->out, "wanted", "wanted", row.wanted);
	ctl_out_row_end(c->out);
	c->rows++;
	free(mem);
	return 0;
}

static int cmd_models_daemon(struct ctl *c)
{
	struct ctl_request req = {.cmd = "models"};
	int r;

	ctl_out_list_begin(c->out, "models");
	r = daemon_call(c, &req, -1, on_model, c);
	ctl_out_list_end(c->out);
	if (r < 0)
		return fail(c, r);
	if (c->rows == 0)
		ctl_out_note(c->out, "no models yet");
	return 0;
}

/* fetch: how updates are shown. */
struct fetch_view {
	struct ctl *c;
	bool wait, tty;
	bool drawn;	  /* a progress line is on the terminal without its newline */
	int last_pct;	  /* plain lines: the whole percent last printed */
	uint64_t last_ms; /* plain lines: when the last one was printed */
	bool last_waiting;
	struct ctl_progress first; /* without --wait: the one report */
	char *first_mem;
};

/* One progress report as one compact JSON line (JSON Lines). */
static void json_progress_line(FILE *f, const struct ctl_progress *p)
{
	const struct node_progress *q = &p->p;

	fputs("{\"name\":", f);
	ctl_out_json_string(f, p->name ? p->name : "");
	fprintf(f,
		",\"version\":%llu,\"need_bytes\":%llu,\"have_bytes\":%llu,\"inflight_bytes\":%llu,"
		"\"sources\":%u,\"rate_bps\":%.0f,\"complete\":%s,\"waiting_manifest\":%s}\n",
		(unsigned long long)q->version, (unsigned long long)q->need_bytes,
		(unsigned long long)q->have_bytes, (unsigned long long)q->inflight_bytes,
		q->sources, q->rate_bps > 0 ? q->rate_bps : 0.0, q->complete ? "true" : "false",
		q->waiting_manifest ? "true" : "false");
	fflush(f);
}

/*
 * Plain lines (not a terminal) would be one every half second; a log of a
 * long fetch reads better with a line per whole percent, a change of state,
 * or ten seconds of nothing new.
 */
static bool plain_line_due(struct fetch_view *v, const struct ctl_progress *p)
{
	const struct node_progress *q = &p->p;
	int pct =
	    q->need_bytes ? (int)(100 * MIN(q->have_bytes, q->need_bytes) / q->need_bytes) : 0;
	bool waiting = q->version == 0 || q->waiting_manifest;
	uint64_t now = now_ms();
	bool due = v->last_ms == 0 || q->complete || pct != v->last_pct ||
		   waiting != v->last_waiting || now - v->last_ms >= 10000;

	if (due) {
		v->last_pct = pct;
		v->last_ms = now;
		v->last_waiting = waiting;
	}
	return due;
}

static int on_progress(void *arg, struct ctl_client *cl, const struct ctl_msg *m)
{
	struct fetch_view *v = arg;
	struct ctl_progress p;
	char *mem, line[256];
	int r;

	(void)cl;
	r = daemon_record(m, CTL_DATA_PROGRESS, &p, &mem);
	if (r < 0) {
		free(mem);
		return r;
	}
	if (!v->wait) {
		/* Keep the first (and only) report to print once the result is in. */
		if (v->first_mem == NULL) {
			v->first = p;
			v->first_mem = mem;
			return 0;
		}
	} else if (v->c->json) {
		json_progress_line(stdout, &p);
	} else if (v->tty) {
		printf("\r%s\033[K", ctl_progress_format(line, sizeof(line), &p, true));
		fflush(stdout);
		v->drawn = true;
	} else if (plain_line_due(v, &p)) {
		printf("%s\n", ctl_progress_format(line, sizeof(line), &p, false));
		fflush(stdout);
	}
	free(mem);
	return 0;
}

static int cmd_fetch(struct ctl *c)
{
	struct ctl_request req = {.cmd = "fetch"};
	struct fetch_view v = {.c = c, .wait = c->opt[0] != NULL};
	const struct node_progress *q = &v.first.p;
	char name[MANIFEST_NAME_MAX + 1], need[32];
	uint64_t version;
	int r;

	r = catalog_parse_ref(c->pos[0], name, sizeof(name), &version);
	if (r < 0)
		return usage_err(c->cmd, "%s", ferry_errmsg(r));
	v.tty = isatty(STDOUT_FILENO) == 1;
	ctl_request_str(&req, "name", name);
	if (version != 0)
		ctl_request_uint(&req, "version", version);
	if (v.wait) {
		ctl_request_bool(&req, "wait", true);
		if (c->json) {
			/* JSON Lines, one per update, instead of one document. */
			ctl_out_discard(c->out);
			c->out = NULL;
		}
	}
	r = daemon_call(c, &req, -1, on_progress, &v);
	if (v.drawn)
		putchar('\n');
	if (r < 0) {
		free(v.first_mem);
		return fail(c, r);
	}
	if (!v.wait && v.first_mem != NULL) {
		uint64_t left = q->need_bytes > q->have_bytes ? q->need_bytes - q->have_bytes : 0;

		ctl_out_str(c->out, "name", "model", v.first.name);
		ctl_out_uint(c->out, "version", "version", q->version);
		ctl_out_bytes(c->out, "need_bytes", "size", q->need_bytes);
		ctl_out_bytes(c->out, "have_bytes", "present", q->have_bytes);
		ctl_out_bytes(c->out, "download_bytes", "to download", left);
		ctl_out_bool(c->out, "complete", "complete", q->complete);
		if (q->version == 0 || q->waiting_manifest)
			ctl_out_note(c->out, "waiting for a peer to offer %s; see ferryctl models",
				     name);
		else if (q->complete)
			ctl_out_note(c->out, "%s@%llu is complete", name,
				     (unsigned long long)q->version);
		else
			ctl_out_note(c->out,
				     "fetching %s@%llu: %s to download (ferryctl fetch --wait %s "
				     "shows progress)",
				     name, (unsigned long long)q->version,
				     fmt_bytes(need, sizeof(need), left), c->pos[0]);
	}
	free(v.first_mem);
	return 0;
}

static int cmd_cancel(struct ctl *c)
{
	struct ctl_request req = {.cmd = "cancel"};
	char name[MANIFEST_NAME_MAX + 1];
	uint64_t version;
	int r;

	r = catalog_parse_ref(c->pos[0], name, sizeof(name), &version);
	if (r < 0)
		return usage_err(c->cmd, "%s", ferry_errmsg(r));
	ctl_request_str(&req, "name", name);
	if (version != 0)
		ctl_request_uint(&req, "version", version);
	r = daemon_call(c, &req, -1, NULL, NULL);
	if (r < 0)
		return fail(c, r);
	ctl_out_str(c->out, "name", "model", name);
	if (version != 0)
		ctl_out_uint(c->out, "version", "version", version);
	ctl_out_note(c->out, "no longer fetching %s (chunks already stored stay until gc)",
		     c->pos[0]);
	return 0;
}

/* publish through the daemon: what the exchange needs on the client's side. */
struct publish_view {
	struct ctl *c;
	const struct publish_opts *opts;
	const uint8_t *sk;
	int dirfd;
	struct manifest *m;
	struct publish_stats stats;
};

/*
 * Before signing, check that the body says what was asked for and lists the
 * files that are in the directory: the daemon chose the bytes, and the
 * signature vouches for them.
 */
static int check_body(const struct publish_view *v, const struct manifest *m)
{
	const struct publish_opts *o = v->opts;
	const char *label = o->label ? o->label : "";

	if (strcmp(m->name, o->name) != 0 || m->version != o->version ||
	    strcmp(m->label ? m->label : "", label) != 0 ||
	    memcmp(m->publisher, o->publisher, 32) != 0)
		return ferry_errf(FERRY_EPROTO,
				  "ferryd sent a manifest for %s@%llu, not the %s@%llu asked for; "
				  "nothing was signed",
				  m->name, (unsigned long long)m->version, o->name,
				  (unsigned long long)o->version);
	for (uint32_t i = 0; i < m->nfiles; i++) {
		struct stat st;

		if (fstatat(v->dirfd, m->files[i].path, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
		    !S_ISREG(st.st_mode) || (uint64_t)st.st_size != m->files[i].size)
			return ferry_errf(
			    FERRY_EPROTO,
			    "ferryd's manifest lists %s with %llu bytes, which is not "
			    "what the directory holds; nothing was signed",
			    m->files[i].path, (unsigned long long)m->files[i].size);
	}
	return 0;
}

static int on_manifest(void *arg, struct ctl_client *cl, const struct ctl_msg *m)
{
	struct publish_view *v = arg;
	struct ctl_manifest man;
	uint8_t sig[FERRY_SIG_LEN];
	char *mem;
	int r;

	r = daemon_record(m, CTL_DATA_MANIFEST, &man, &mem);
	free(mem); /* the body points into the message, not into mem */
	if (r == 0 && v->m != NULL)
		r = ferry_errf(FERRY_EPROTO, "ferryd sent a second manifest to sign");
	if (r == 0)
		r = manifest_decode_body(man.body, man.body_len, &v->m);
	if (r == 0)
		r = check_body(v, v->m);
	if (r == 0)
		r = manifest_sign(man.body, man.body_len, v->sk, sig);
	if (r < 0)
		return r;
	v->stats = man.stats;
	return ctl_client_send_signature(cl, sig);
}

static int cmd_publish_daemon(struct ctl *c)
{
	const char *dir = c->pos[2];
	struct publish_opts opts = {.name = c->pos[0], .label = c->opt[1]};
	struct publish_view v = {.c = c, .opts = &opts, .dirfd = -1};
	struct ctl_request req = {.cmd = "publish"};
	uint8_t sk[FERRY_SK_LEN];
	int r;

	if (manifest_name_check(opts.name) < 0)
		return usage_err(c->cmd, "%s", ferry_errmsg(FERRY_EINVAL));
	if (parse_version(c->pos[1], &opts.version) < 0)
		return usage_err(c->cmd, "VERSION '%s' is not a whole number of 1 or more",
				 c->pos[1]);
	if (opts.label != NULL && strlen(opts.label) > MANIFEST_LABEL_MAX)
		return usage_err(c->cmd, "--label is longer than %u bytes", MANIFEST_LABEL_MAX);
	r = fcrypto_publisher_key_read(c->opt[0], sk);
	if (r < 0)
		goto out;
	fcrypto_sk_to_pk(opts.publisher, sk);
	v.sk = sk;
	v.dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (v.dirfd < 0) {
		r = ferry_errno(errno, "cannot open the source directory %s", dir);
		goto out;
	}
	ctl_request_str(&req, "name", opts.name);
	ctl_request_uint(&req, "version", opts.version);
	if (opts.label != NULL)
		ctl_request_str(&req, "label", opts.label);
	ctl_request_bin(&req, "publisher", opts.publisher, sizeof(opts.publisher));
	r = daemon_call(c, &req, v.dirfd, on_manifest, &v);
	if (r == 0 && v.m == NULL)
		r = ferry_errf(FERRY_EPROTO,
			       "ferryd accepted the publish without a manifest to sign");
	if (r == 0)
		print_publish(c, v.m, &v.stats);
out:
	fcrypto_wipe(sk, sizeof(sk));
	manifest_free(v.m);
	if (v.dirfd >= 0)
		close(v.dirfd);
	return r < 0 ? fail(c, r) : 0;
}

static int cmd_export_daemon(struct ctl *c)
{
	const char *dir = c->pos[1];
	struct ctl_request req = {.cmd = "export"};
	char name[MANIFEST_NAME_MAX + 1];
	bool sha = c->opt[0] != NULL;
	uint64_t version;
	int dirfd, r;

	r = catalog_parse_ref(c->pos[0], name, sizeof(name), &version);
	if (r < 0)
		return usage_err(c->cmd, "%s", ferry_errmsg(r));
	if (mkdir(dir, 0755) != 0 && errno != EEXIST)
		return fail(c, ferry_errno(errno, "cannot create the output directory %s", dir));
	dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return fail(c, ferry_errno(errno, "cannot open the output directory %s", dir));
	ctl_request_str(&req, "name", name);
	if (version != 0)
		ctl_request_uint(&req, "version", version);
	if (sha)
		ctl_request_bool(&req, "sha256", true);
	r = daemon_call(c, &req, dirfd, NULL, NULL);
	close(dirfd);
	if (r < 0)
		return fail(c, r);
	ctl_out_str(c->out, "name", "model", name);
	if (version != 0)
		ctl_out_uint(c->out, "version", "version", version);
	ctl_out_str(c->out, "dir", "written to", dir);
	ctl_out_bool(c->out, "sha256_checked", "SHA-256 checked", sha);
	return 0;
}

/* ---- the table --------------------------------------------------------- */

static const struct cmd commands[] = {
    {.name = "keygen",
     .kind = CMD_LOCAL,
     .fn = cmd_keygen,
     .usage = "--out FILE",
     .help = "write a new publisher key pair to FILE; print its public key",
     .opts = {{"out", "FILE", true}}},
    {.name = "netkey",
     .kind = CMD_LOCAL,
     .fn = cmd_netkey,
     .usage = "--out FILE",
     .help = "write a new random network key to FILE",
     .opts = {{"out", "FILE", true}}},
    {.name = "publish",
     .kind = CMD_WRITE,
     .fn = cmd_publish,
     .daemon = cmd_publish_daemon,
     .usage = "--key KEYFILE NAME VERSION DIR [--label L]",
     .help = "chunk, encode, store and sign the files in DIR as version VERSION of NAME",
     .pos = {"NAME", "VERSION", "DIR"},
     .npos_min = 3,
     .opts = {{"key", "KEYFILE", true}, {"label", "L", false}}},
    {.name = "status",
     .kind = CMD_READ,
     .daemon = cmd_status,
     .usage = "",
     .help = "node id, site, uptime, store usage, free space, quota, link, rates"},
    {.name = "peers",
     .kind = CMD_READ,
     .daemon = cmd_peers,
     .usage = "",
     .help = "one row per known peer: address, site, state, RTT, rates, last seen, bytes"},
    {.name = "fetch",
     .kind = CMD_WRITE,
     .daemon = cmd_fetch,
     .usage = "NAME[@VERSION] [--wait]",
     .help = "want a version (default: the newest); --wait shows progress until complete",
     .pos = {"NAME[@VERSION]"},
     .npos_min = 1,
     .opts = {{"wait", NULL, false}}},
    {.name = "cancel",
     .kind = CMD_WRITE,
     .daemon = cmd_cancel,
     .usage = "NAME[@VERSION]",
     .help = "stop wanting a version (its stored chunks stay until gc)",
     .pos = {"NAME[@VERSION]"},
     .npos_min = 1},
    {.name = "models",
     .kind = CMD_READ,
     .fn = cmd_models,
     .daemon = cmd_models_daemon,
     .usage = "",
     .help = "list every model version: label, size, % present, active, pinned"},
    {.name = "export",
     .kind = CMD_READ,
     .fn = cmd_export,
     .daemon = cmd_export_daemon,
     .usage = "NAME[@VERSION] DIR [--sha256]",
     .help = "write a version's files into DIR, every chunk verified (default: newest)",
     .pos = {"NAME[@VERSION]", "DIR"},
     .npos_min = 2,
     .opts = {{"sha256", NULL, false}}},
    {.name = "verify",
     .kind = CMD_READ,
     .fn = cmd_verify,
     .daemon = cmd_verify_daemon,
     .usage = "NAME[@VERSION]",
     .help = "re-check a version's stored chunks and materialized files; exit 1 if any is bad",
     .pos = {"NAME[@VERSION]"},
     .npos_min = 1},
    {.name = "activate",
     .kind = CMD_WRITE,
     .fn = cmd_activate,
     .daemon = cmd_activate_daemon,
     .usage = "NAME@VERSION",
     .help = "make VERSION what local inference uses (models/NAME/current), atomically",
     .pos = {"NAME@VERSION"},
     .npos_min = 1},
    {.name = "rollback",
     .kind = CMD_WRITE,
     .fn = cmd_rollback,
     .daemon = cmd_rollback_daemon,
     .usage = "NAME",
     .help = "switch back to the previous active version; hold until a newer one arrives",
     .pos = {"NAME"},
     .npos_min = 1},
    {.name = "pin",
     .kind = CMD_WRITE,
     .fn = cmd_pin,
     .daemon = cmd_pin_daemon,
     .usage = "NAME[@VERSION]",
     .help = "keep a version from eviction (default: the active one)",
     .pos = {"NAME[@VERSION]"},
     .npos_min = 1},
    {.name = "unpin",
     .kind = CMD_WRITE,
     .fn = cmd_pin,
     .daemon = cmd_pin_daemon,
     .usage = "NAME[@VERSION]",
     .help = "let gc evict a version again (default: every pinned version of NAME)",
     .pos = {"NAME[@VERSION]"},
     .npos_min = 1},
    {.name = "gc",
     .kind = CMD_WRITE,
     .fn = cmd_gc,
     .daemon = cmd_gc_daemon,
     .usage = "",
     .help = "drop unreferenced chunks; through ferryd, evict versions beyond the quota too"},
    {.name = "metrics",
     .kind = CMD_READ,
     .daemon = cmd_metrics_daemon,
     .usage = "",
     .help = "the Prometheus text format, every name prefixed ferry_"},
    {.name = "reload",
     .kind = CMD_WRITE,
     .daemon = cmd_reload_daemon,
     .usage = "",
     .help = "re-read the configuration file (as SIGHUP); a bad one is refused, the old kept"},
    {.name = "bundle",
     .kind = CMD_READ,
     .fn = cmd_bundle,
     .daemon = cmd_bundle_daemon,
     .usage = "create --out DIR [--have FILE] [--pack-size SIZE] NAME[@VERSION]...",
     .help = "write DIR/ferry-bundle/ for sideloading; with --have, only what that node lacks",
     .pos = {"create", "NAME[@VERSION]..."},
     .npos_min = 2,
     .opts = {{"out", "DIR", true}, {"have", "FILE", false}, {"pack-size", "SIZE", false}}},
    {.name = "sideload",
     .kind = CMD_WRITE,
     .fn = cmd_sideload,
     .daemon = cmd_sideload_daemon,
     .usage = "DIR",
     .help = "import DIR/ferry-bundle/ after verifying every signature and chunk",
     .pos = {"DIR"},
     .npos_min = 1,
     .stream = true},
    {.name = "have",
     .kind = CMD_READ,
     .fn = cmd_have,
     .daemon = cmd_have_daemon,
     .usage = "--out FILE",
     .help = "write what this node holds to FILE, for a delta bundle made elsewhere",
     .opts = {{"out", "FILE", true}}},
    {.name = "limit",
     .kind = CMD_READ,
     .daemon = cmd_limit,
     .usage = "[NAME RATE]",
     .help = "show the rate limits and where each comes from; NAME RATE sets one (write)",
     .pos = {"NAME", "RATE"}},
    {.name = "help",
     .kind = CMD_LOCAL,
     .fn = cmd_help,
     .usage = "[COMMAND]",
     .help = "list the commands, or show one command's usage",
     .pos = {"COMMAND"}},
    {.name = NULL},
};

static const char *const kind_names[] = {"read", "write", "local"};

static const struct cmd *cmd_find(const char *name)
{
	for (const struct cmd *cmd = commands; cmd->name != NULL; cmd++)
		if (strcmp(cmd->name, name) == 0)
			return cmd;
	return NULL;
}

/* Which of the two forms a read or write command has, for help. */
static const char *form_note(const struct cmd *cmd)
{
	if (cmd->kind == CMD_LOCAL || (cmd->fn != NULL && cmd->daemon != NULL))
		return "";
	return cmd->fn == NULL ? ", daemon only" : ", --store only";
}

static int cmd_help(struct ctl *c)
{
	const struct cmd *one = NULL;

	/* Help is text for people, with or without --json. */
	ctl_out_discard(c->out);
	c->out = NULL;
	if (c->npos > 0 && (one = cmd_find(c->pos[0])) == NULL)
		return usage_err(c->cmd, "unknown command '%s'", c->pos[0]);
	if (one != NULL) {
		usage_line(stdout, one);
		printf("%s (%s command%s)\n", one->help, kind_names[one->kind], form_note(one));
		return 0;
	}
	puts("usage: ferryctl [--socket PATH | --store DIR] [--json] [--trust KEY] COMMAND ...\n"
	     "\n"
	     "Global options may stand anywhere on the line:\n"
	     "  --socket PATH  talk to the ferryd at PATH (default " RUNSTATEDIR
	     "/ferry/ferryd.sock)\n"
	     "  --store DIR    work on the store in DIR directly, with no daemon\n"
	     "  --json         print one JSON document instead of text\n"
	     "  --trust KEY    also trust this publisher public key (with --store)\n"
	     "\n"
	     "Commands (through the daemon, read commands need access to its socket and\n"
	     "write commands root or ferryd's user; local commands need neither):");
	for (const struct cmd *cmd = commands; cmd->name != NULL; cmd++)
		printf("  %s%s%s  (%s%s)\n      %s\n", cmd->name, cmd->usage[0] ? " " : "",
		       cmd->usage, kind_names[cmd->kind], form_note(cmd), cmd->help);
	puts("\nSee ferryctl(1).");
	return 0;
}

/* ---- argument parsing and main ----------------------------------------- */

/* Match "--name" or "--name=value" against want; *val is set to the "=value" part. */
static bool opt_match(const char *arg, const char *want, const char **val)
{
	size_t n = strlen(want);

	if (strncmp(arg, "--", 2) != 0 || strncmp(arg + 2, want, n) != 0)
		return false;
	if (arg[2 + n] == '\0') {
		*val = NULL;
		return true;
	}
	if (arg[2 + n] == '=') {
		*val = arg + 3 + n;
		return true;
	}
	return false;
}

/* The value of an option: "=value" or the next argument. */
static int opt_value(const struct cmd *cmd, int argc, char **argv, int *i, const char *name,
		     const char *eq, const char **out)
{
	if (eq != NULL) {
		*out = eq;
		return 0;
	}
	if (*i + 1 >= argc)
		return usage_err(cmd, "--%s needs a value", name);
	*out = argv[++*i];
	return 0;
}

static int parse_global(struct ctl *c, int argc, char **argv, int *i, bool *matched)
{
	const char *arg = argv[*i], *eq, *v = NULL;
	uint8_t key[32];
	int r;

	*matched = true;
	if (opt_match(arg, "json", &eq) && eq == NULL) {
		c->json = true;
	} else if (opt_match(arg, "store", &eq)) {
		if ((r = opt_value(c->cmd, argc, argv, i, "store", eq, &c->store_dir)) != 0)
			return r;
	} else if (opt_match(arg, "socket", &eq)) {
		if ((r = opt_value(c->cmd, argc, argv, i, "socket", eq, &c->socket)) != 0)
			return r;
	} else if (opt_match(arg, "trust", &eq)) {
		if ((r = opt_value(c->cmd, argc, argv, i, "trust", eq, &v)) != 0)
			return r;
		if (fcrypto_b64_decode(key, sizeof(key), v) < 0)
			return usage_err(c->cmd, "--trust '%s' is not a base64 Ed25519 public key",
					 v);
		c->trust = xreallocarray(c->trust, c->ntrust + 1, sizeof(*c->trust));
		memcpy(c->trust[c->ntrust++], key, 32);
	} else {
		*matched = false;
	}
	return 0;
}

static int parse_args(struct ctl *c, int argc, char **argv)
{
	bool dashdash = false, matched;
	int r;

	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i], *eq;

		if (!dashdash && arg[0] == '-' && arg[1] != '\0') {
			if (strcmp(arg, "--") == 0) {
				dashdash = true;
				continue;
			}
			if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
				c->pos[0] = c->cmd ? c->cmd->name : NULL;
				c->npos = c->cmd ? 1 : 0;
				c->cmd = cmd_find("help");
				return -1;
			}
			if ((r = parse_global(c, argc, argv, &i, &matched)) != 0)
				return r;
			if (matched)
				continue;
			for (int k = 0; c->cmd != NULL && c->cmd->opts[k].name != NULL; k++) {
				const struct opt_spec *o = &c->cmd->opts[k];

				if (!opt_match(arg, o->name, &eq))
					continue;
				matched = true;
				if (o->arg == NULL) {
					if (eq != NULL)
						return usage_err(c->cmd, "--%s takes no value",
								 o->name);
					c->opt[k] = "";
				} else if ((r = opt_value(c->cmd, argc, argv, &i, o->name, eq,
							  &c->opt[k])) != 0) {
					return r;
				}
				break;
			}
			if (!matched)
				return usage_err(c->cmd, "unknown option '%s'", arg);
		} else if (c->cmd == NULL) {
			c->cmd = cmd_find(arg);
			if (c->cmd == NULL)
				return usage_err(NULL, "unknown command '%s'", arg);
		} else {
			int last = 0;
			bool more;

			while (c->cmd->pos[last] != NULL)
				last++;
			/* A last positional named "X..." takes every argument left. */
			more = last > 0 && strstr(c->cmd->pos[last - 1], "...") != NULL;

			if (c->npos == MAX_POS || (c->npos >= last && !more))
				return usage_err(c->cmd, "unexpected argument '%s'", arg);
			c->pos[c->npos++] = arg;
		}
	}
	if (c->cmd == NULL)
		return usage_err(NULL, "no command given");
	if (c->npos < c->cmd->npos_min)
		return usage_err(c->cmd, "missing %s", c->cmd->pos[c->npos]);
	for (int k = 0; c->cmd->opts[k].name != NULL; k++)
		if (c->cmd->opts[k].required && c->opt[k] == NULL)
			return usage_err(c->cmd, "missing --%s %s", c->cmd->opts[k].name,
					 c->cmd->opts[k].arg);
	if (c->socket != NULL && c->store_dir != NULL)
		return usage_err(c->cmd, "--socket and --store exclude each other");
	return 0;
}

int main(int argc, char **argv)
{
	struct ctl c = {0};
	int r;

	if (fcrypto_init() < 0) {
		fprintf(stderr, "ferryctl: %s\n", ferry_errmsg(FERRY_EIO));
		return 1;
	}
	r = parse_args(&c, argc, argv);
	if (r > 0)
		goto out;
	if (!(c.json && c.cmd->stream))
		c.out = ctl_out_new(c.json ? CTL_OUT_JSON : CTL_OUT_TEXT, stdout);
	if (r < 0 || c.cmd->kind == CMD_LOCAL || (c.store_dir != NULL && c.cmd->fn != NULL)) {
		r = c.cmd->fn(&c);
	} else if (c.store_dir != NULL) {
		r = usage_err(c.cmd, "it asks a running ferryd and has no --store form");
	} else if (c.cmd->daemon != NULL) {
		r = c.cmd->daemon(&c);
	} else {
		r = usage_err(c.cmd, "it works on a store only for now: use --store DIR");
	}
	/* A failed command prints no document: its error is on stderr. */
	if (r == 0)
		ctl_out_free(c.out);
	else
		ctl_out_discard(c.out);
out:
	free(c.trust);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "ferryctl: writing the output: %s\n", strerror(errno));
		return 1;
	}
	return r;
}
