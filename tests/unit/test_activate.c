/*
 * Unit tests for activation on a real store: versions published with
 * publish_ingest(), signed and accepted by the catalog, then materialized,
 * switched, rolled back, held, refused (a corrupt or missing chunk, a full
 * disk), hooked, cleaned up, pinned and evicted. What is checked is what an
 * operator would look at: the `current` link, the files' bytes, the head.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ferry/activate.h"
#include "ferry/catalog.h"
#include "ferry/chunker.h"
#include "ferry/codec.h"
#include "ferry/error.h"
#include "ferry/fcrypto.h"
#include "ferry/index.h"
#include "ferry/manifest.h"
#include "ferry/publish.h"
#include "ferry/store.h"
#include "ferry/util.h"

#define KIB 1024u
#define MIB (1024u * 1024u)

struct fx {
	char *tmp;   /* the temporary directory */
	char *state; /* the store's state dir, also the models' */
	char *small; /* a small tmpfs, when mounted */
	struct store *st;
	uint8_t pk[FERRY_PK_LEN], sk[FERRY_SK_LEN];
	uint8_t keys[1][32];
	struct trust trust;
};

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));
	const char *t = getenv("TMPDIR");

	if (fcrypto_init() != 0)
		return -1;
	f->tmp = xasprintf("%s/ferry-activate-XXXXXX", t && *t ? t : "/tmp");
	if (mkdtemp(f->tmp) == NULL)
		return -1;
	f->state = xasprintf("%s/state", f->tmp);
	if (store_open(f->state, STORE_CREATE | STORE_WRITE, &f->st) != 0)
		return -1;
	fcrypto_sign_keypair(f->pk, f->sk);
	memcpy(f->keys[0], f->pk, 32);
	f->trust = (struct trust){.n = 1, .keys = f->keys};
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	store_close(f->st);
	if (f->small != NULL)
		umount(f->small);
	nftw(f->tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(f->small);
	free(f->state);
	free(f->tmp);
	free(f);
	return 0;
}

/* ---- helpers ------------------------------------------------------------ */

/* Deterministic bytes (xorshift64*), so a failure reproduces. */
static void fill(uint8_t *p, size_t n, uint64_t seed)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;

	for (size_t i = 0; i < n; i++) {
		x ^= x >> 12;
		x ^= x << 25;
		x ^= x >> 27;
		p[i] = (uint8_t)((x * 0x2545f4914f6cdd1dull) >> 56);
	}
}

/* The files of test versions: version v of a model has these, filled from seed v. */
static const struct tfile {
	const char *path;
	size_t size;
} files[] = {
    {"config.json", 300},
    {"weights/model.bin", 700 * KIB},
};

static uint8_t *file_bytes(size_t i, uint64_t version, uint64_t salt)
{
	uint8_t *p = xmalloc(files[i].size + 1);

	fill(p, files[i].size, version * 131 + i * 7 + salt);
	return p;
}

static void write_at(const char *path, const uint8_t *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(write_full(fd, p, n), 0);
	close(fd);
}

/* Publish name@version from generated files (scaled by `scale`), accepted by the catalog. */
static void publish_scaled(struct fx *f, const char *name, uint64_t version, size_t scale)
{
	char *src = xasprintf("%s/src-%s-%" PRIu64, f->tmp, name, version), *p;
	struct publish_opts o = {.name = name,
				 .version = version,
				 .label = "t",
				 .threads = 1,
				 .created = 1700000000 + (int64_t)version};
	uint8_t *body = NULL, *signed_bytes = NULL, sig[64];
	size_t len = 0, slen = 0;
	int fd;

	assert_int_equal(mkdir(src, 0755), 0);
	p = xasprintf("%s/weights", src);
	assert_int_equal(mkdir(p, 0755), 0);
	free(p);
	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		size_t n = files[i].size * (i == 1 ? scale : 1);
		uint8_t *b = xmalloc(n + 1);

		fill(b, n, version * 131 + i * 7);
		p = xasprintf("%s/%s", src, files[i].path);
		write_at(p, b, n);
		free(p);
		free(b);
	}
	memcpy(o.publisher, f->pk, 32);
	fd = open(src, O_RDONLY | O_DIRECTORY);
	assert_true(fd >= 0);
	assert_int_equal(publish_ingest(f->st, fd, &o, &body, &len, NULL), 0);
	close(fd);
	assert_int_equal(manifest_sign(body, len, f->sk, sig), 0);
	assert_int_equal(manifest_seal(body, len, sig, &signed_bytes, &slen), 0);
	assert_true(catalog_accept(f->st, &f->trust, signed_bytes, slen, CATALOG_EXPLICIT, NULL) >
		    0);
	free(body);
	free(signed_bytes);
	free(src);
}

static void publish(struct fx *f, const char *name, uint64_t version)
{
	publish_scaled(f, name, version, 1);
}

/* The version `current` of name points at in dir; 0 if none. Asserts it is relative. */
static uint64_t current_of(const char *dir, const char *name)
{
	char *link = xasprintf("%s/models/%s/current", dir, name), buf[64];
	ssize_t n = readlink(link, buf, sizeof(buf) - 1);

	free(link);
	if (n < 0)
		return 0;
	buf[n] = '\0';
	assert_true(buf[0] != '/');
	return strtoull(buf, NULL, 10);
}

static struct store_head head_of(struct fx *f, const char *name)
{
	struct store_rd *rd;
	struct store_head h;

	assert_int_equal(store_rd_begin(f->st, &rd), 0);
	assert_int_equal(store_head_get(rd, name, &h), 0);
	store_rd_end(rd);
	return h;
}

/* Are models/NAME/VERSION's files, read through `current` when via_current, the published bytes? */
static bool files_ok(const char *dir, const char *name, uint64_t version, bool via_current)
{
	bool ok = true;

	for (size_t i = 0; i < ARRAY_SIZE(files) && ok; i++) {
		char *path;
		uint8_t *want = file_bytes(i, version, 0), *got = NULL;
		size_t n = 0;

		if (via_current)
			path = xasprintf("%s/models/%s/current/%s", dir, name, files[i].path);
		else
			path = xasprintf("%s/models/%s/%" PRIu64 "/%s", dir, name, version,
					 files[i].path);
		ok = read_file(path, 16 * MIB, (char **)&got, &n) == 0 && n == files[i].size &&
		     memcmp(got, want, n) == 0;
		free(got);
		free(want);
		free(path);
	}
	return ok;
}

static bool exists(const char *dir, const char *name, const char *entry)
{
	char *path = xasprintf("%s/models/%s/%s", dir, name, entry);
	struct stat sb;
	bool r = lstat(path, &sb) == 0;

	free(path);
	return r;
}

/* Entries of models/NAME other than current, sorted, space-separated. */
static char *listing(const char *dir, const char *name)
{
	char *path = xasprintf("%s/models/%s", dir, name), *out = xstrdup("");
	struct dirent **ents;
	int n = scandir(path, &ents, NULL, alphasort);

	assert_true(n >= 0);
	for (int i = 0; i < n; i++) {
		if (strcmp(ents[i]->d_name, ".") != 0 && strcmp(ents[i]->d_name, "..") != 0 &&
		    strcmp(ents[i]->d_name, "current") != 0) {
			char *next = xasprintf("%s%s%s", out, *out ? " " : "", ents[i]->d_name);

			free(out);
			out = next;
		}
		free(ents[i]);
	}
	free(ents);
	free(path);
	return out;
}

static struct activate_opts opts(void)
{
	return (struct activate_opts){.keep_versions = 0};
}

static int activate(struct fx *f, const char *name, uint64_t version, struct activate_result *res)
{
	struct activate_opts o = opts();

	return activate_version(f->st, &f->trust, f->state, name, version, &o, res);
}

/* The id of the first data chunk of file i of name@version. */
static void first_chunk(struct fx *f, const char *name, uint64_t version, size_t i, uint8_t id[32])
{
	struct manifest *m;
	struct store_rd *rd;
	struct codec_ctx *cc = codec_ctx_new();
	struct chunk_ref *refs = NULL;
	const uint8_t *enc;
	uint8_t *raw = xmalloc(CHUNK_MAX_SIZE);
	size_t len, rawlen, nrefs;
	const struct manifest_file *mf = NULL;

	assert_int_equal(catalog_load(f->st, &f->trust, name, version, &m), 0);
	for (uint32_t k = 0; k < m->nfiles; k++)
		if (strcmp(m->files[k].path, files[i].path) == 0)
			mf = &m->files[k];
	assert_non_null(mf);
	assert_int_equal(store_rd_begin(f->st, &rd), 0);
	assert_int_equal(store_chunk_get(rd, mf->pieces[0], &enc, &len), 0);
	assert_int_equal(codec_decode(cc, enc, len, raw, CHUNK_MAX_SIZE, &rawlen), 0);
	store_rd_end(rd);
	assert_int_equal(index_decode(raw, rawlen, &refs, &nrefs), 0);
	assert_true(nrefs > 0);
	memcpy(id, refs[0].id, 32);
	free(refs);
	free(raw);
	codec_ctx_free(cc);
	manifest_free(m);
}

static void del_chunk(struct fx *f, const uint8_t id[32])
{
	struct store_wr *wr;

	assert_int_equal(store_wr_begin(f->st, &wr), 0);
	assert_int_equal(store_wr_chunk_del(wr, id), 0);
	assert_int_equal(store_wr_commit(wr), 0);
}

/* Replace a stored chunk with other bytes under the same id. */
static void corrupt_chunk(struct fx *f, const uint8_t id[32])
{
	struct codec_ctx *cc = codec_ctx_new();
	struct store_wr *wr;
	uint8_t raw[4096], *enc = xmalloc(codec_bound(sizeof(raw)));
	size_t len;

	fill(raw, sizeof(raw), 999);
	assert_int_equal(codec_encode_as(cc, CODEC_RAW, raw, sizeof(raw), enc, &len), 0);
	del_chunk(f, id);
	assert_int_equal(store_wr_begin(f->st, &wr), 0);
	assert_int_equal(store_wr_chunk_put(wr, id, enc, len), 0);
	assert_int_equal(store_wr_commit(wr), 0);
	free(enc);
	codec_ctx_free(cc);
}

/* ---- tests -------------------------------------------------------------- */

static void test_materialize_and_switch(void **state)
{
	struct fx *f = *state;
	struct activate_result res;
	struct store_head h;
	char *ls;

	publish(f, "llm", 1);
	assert_int_equal(activate(f, "llm", 1, &res), 0);
	assert_true(res.materialized);
	assert_true(res.switched);
	assert_int_equal(res.active, 1);
	assert_int_equal(current_of(f->state, "llm"), 1);
	assert_true(files_ok(f->state, "llm", 1, true));
	h = head_of(f, "llm");
	assert_int_equal(h.active, 1);
	assert_int_equal(h.previous, 0);
	ls = listing(f->state, "llm");
	assert_string_equal(ls, "1"); /* no temporaries left */
	free(ls);

	/* Activating the active version again re-verifies and changes nothing. */
	assert_int_equal(activate(f, "llm", 1, &res), 0);
	assert_false(res.materialized);
	assert_false(res.switched);
	assert_int_equal(head_of(f, "llm").previous, 0);

	/* A newer version: switched, the old one becomes the rollback target. */
	publish(f, "llm", 2);
	assert_int_equal(activate(f, "llm", 0, &res), 0); /* 0: the newest stored */
	assert_int_equal(res.active, 2);
	assert_int_equal(res.previous, 1);
	assert_int_equal(current_of(f->state, "llm"), 2);
	assert_true(files_ok(f->state, "llm", 2, true));
	assert_true(files_ok(f->state, "llm", 1, false));
	h = head_of(f, "llm");
	assert_int_equal(h.active, 2);
	assert_int_equal(h.previous, 1);
	assert_int_equal(h.hwm, 2);
}

static void test_rollback_and_hold(void **state)
{
	struct fx *f = *state;
	struct activate_opts o = opts();
	struct activate_result res;
	struct store_head h;
	int r;

	publish(f, "llm", 1);
	r = activate_rollback(f->st, &f->trust, f->state, "llm", &o, &res);
	assert_int_equal(r, FERRY_ENOENT);
	assert_non_null(strstr(ferry_errmsg(r), "no previous version"));

	publish(f, "llm", 2);
	assert_int_equal(activate(f, "llm", 1, &res), 0);
	assert_int_equal(activate(f, "llm", 2, &res), 0);
	assert_int_equal(activate_rollback(f->st, &f->trust, f->state, "llm", &o, &res), 0);
	assert_true(res.switched);
	assert_int_equal(current_of(f->state, "llm"), 1);
	assert_true(files_ok(f->state, "llm", 1, true));
	h = head_of(f, "llm");
	assert_int_equal(h.active, 1);
	assert_int_equal(h.previous, 2);
	assert_int_equal(h.held, 2);

	/* Held: auto-activation of the version rolled back from does nothing. */
	assert_false(activate_auto_eligible(&h, 2));
	o.flags = ACTIVATE_AUTO;
	assert_int_equal(activate_version(f->st, &f->trust, f->state, "llm", 2, &o, &res), 0);
	assert_true(res.skipped);
	assert_false(res.switched);
	assert_int_equal(current_of(f->state, "llm"), 1);
	assert_int_equal(head_of(f, "llm").active, 1);

	/* A newer version arrives: auto-activation goes ahead and the hold ends. */
	publish(f, "llm", 3);
	assert_int_equal(activate_version(f->st, &f->trust, f->state, "llm", 3, &o, &res), 0);
	assert_false(res.skipped);
	assert_int_equal(current_of(f->state, "llm"), 3);
	h = head_of(f, "llm");
	assert_int_equal(h.active, 3);
	assert_int_equal(h.previous, 1);
	assert_int_equal(h.held, 0);

	/* Auto-activation never goes back. */
	assert_int_equal(activate_version(f->st, &f->trust, f->state, "llm", 2, &o, &res), 0);
	assert_true(res.skipped);

	/* Rolling back twice returns to where it was. */
	o.flags = 0;
	assert_int_equal(activate_rollback(f->st, &f->trust, f->state, "llm", &o, &res), 0);
	assert_int_equal(current_of(f->state, "llm"), 1);
	assert_int_equal(activate_rollback(f->st, &f->trust, f->state, "llm", &o, &res), 0);
	assert_int_equal(current_of(f->state, "llm"), 3);

	/* Going back by hand holds like a rollback. */
	assert_int_equal(activate(f, "llm", 2, &res), 0);
	h = head_of(f, "llm");
	assert_int_equal(h.active, 2);
	assert_int_equal(h.held, 3);
}

/* A failed activation: the previous version stays active, its files intact, nothing half-made. */
static void assert_still(struct fx *f, const char *dir, uint64_t version)
{
	char *ls = listing(dir, "llm");

	assert_int_equal(current_of(dir, "llm"), version);
	assert_int_equal(head_of(f, "llm").active, version);
	assert_true(files_ok(dir, "llm", version, true));
	assert_null(strstr(ls, ".tmp"));
	free(ls);
}

static void test_corrupt_chunk(void **state)
{
	struct fx *f = *state;
	struct activate_result res;
	uint8_t id[32];
	int r;

	publish(f, "llm", 1);
	publish(f, "llm", 2);
	assert_int_equal(activate(f, "llm", 1, &res), 0);
	first_chunk(f, "llm", 2, 1, id);
	corrupt_chunk(f, id);
	r = activate(f, "llm", 2, &res);
	assert_int_equal(r, FERRY_ECORRUPT);
	assert_non_null(strstr(ferry_errmsg(r), "weights/model.bin"));
	assert_non_null(strstr(ferry_errmsg(r), "llm stays at version 1"));
	assert_still(f, f->state, 1);
	assert_false(exists(f->state, "llm", "2"));
}

static void test_missing_chunk(void **state)
{
	struct fx *f = *state;
	struct activate_result res;
	uint8_t id[32];
	int r;

	publish(f, "llm", 1);
	publish(f, "llm", 2);
	assert_int_equal(activate(f, "llm", 1, &res), 0);
	first_chunk(f, "llm", 2, 1, id);
	del_chunk(f, id);
	r = activate(f, "llm", 2, &res);
	assert_int_equal(r, FERRY_EINCOMPLETE);
	assert_non_null(strstr(ferry_errmsg(r), "not complete"));
	assert_still(f, f->state, 1);
	assert_false(exists(f->state, "llm", "2"));
}

/* A materialized copy that was changed on disk is found out and made again. */
static void test_tampered_copy(void **state)
{
	struct fx *f = *state;
	struct activate_opts o = opts();
	struct activate_result res;
	char *path = xasprintf("%s/models/llm/1/%s", f->state, files[1].path);
	char *outside = xasprintf("%s/outside", f->tmp), *link2;
	int fd;

	publish(f, "llm", 1);
	publish(f, "llm", 2);
	assert_int_equal(activate(f, "llm", 1, &res), 0);
	assert_int_equal(activate(f, "llm", 2, &res), 0);
	fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "X", 1, 1000), 1);
	close(fd);
	assert_false(files_ok(f->state, "llm", 1, false));
	assert_int_equal(activate_rollback(f->st, &f->trust, f->state, "llm", &o, &res), 0);
	assert_true(res.materialized);
	assert_true(files_ok(f->state, "llm", 1, true));

	/* A symlink planted as a version directory is replaced, and its target left alone. */
	link2 = xasprintf("%s/models/llm/2", f->state);
	assert_int_equal(rename(link2, outside), 0);
	assert_int_equal(symlink(outside, link2), 0);
	assert_int_equal(activate(f, "llm", 2, &res), 0);
	assert_true(res.materialized);
	assert_true(files_ok(f->state, "llm", 2, true));
	free(path);
	path = xasprintf("%s/%s", outside, files[0].path);
	assert_int_equal(access(path, F_OK), 0);
	free(path);
	free(link2);
	free(outside);
}

static void test_full_disk(void **state)
{
	struct fx *f = *state;
	struct activate_opts o = opts();
	struct activate_result res;
	int r;

	if (geteuid() != 0)
		skip();
	f->small = xasprintf("%s/small", f->tmp);
	assert_int_equal(mkdir(f->small, 0755), 0);
	if (mount("tmpfs", f->small, "tmpfs", 0, "size=2m") != 0) {
		free(f->small);
		f->small = NULL;
		skip();
	}
	publish(f, "llm", 1);
	publish_scaled(f, "llm", 2, 4); /* about 2.8 MiB: more than the tmpfs holds */
	assert_int_equal(activate_version(f->st, &f->trust, f->small, "llm", 1, &o, &res), 0);
	r = activate_version(f->st, &f->trust, f->small, "llm", 2, &o, &res);
	assert_int_equal(r, FERRY_ENOSPC);
	assert_non_null(strstr(ferry_errmsg(r), "free"));
	assert_still(f, f->small, 1);
	assert_false(exists(f->small, "llm", "2"));

	/* The same with min_free_space: refused before anything is written. */
	o.min_free_space = 1800 * KIB;
	publish(f, "llm", 3);
	r = activate_version(f->st, &f->trust, f->small, "llm", 3, &o, &res);
	assert_int_equal(r, FERRY_ENOSPC);
	assert_non_null(strstr(ferry_errmsg(r), "min_free_space"));
	assert_still(f, f->small, 1);
}

static void test_hook(void **state)
{
	struct fx *f = *state;
	struct activate_opts o = opts();
	struct activate_result res;
	char *out = xasprintf("%s/hook.out", f->tmp), *cmd, *got = NULL, *want, *abs;
	size_t n;
	int r;

	publish(f, "llm", 1);
	publish(f, "llm", 2);
	cmd = xasprintf("printf '%%s|%%s|%%s|%%s' \"$FERRY_MODEL\" \"$FERRY_VERSION\" "
			"\"$FERRY_PATH\" \"$FERRY_PREVIOUS\" >> %s",
			out);
	o.on_activate = cmd;
	assert_int_equal(activate_version(f->st, &f->trust, f->state, "llm", 1, &o, &res), 0);
	assert_true(res.hook_ran);
	assert_int_equal(res.hook_rc, 0);
	assert_int_equal(activate_version(f->st, &f->trust, f->state, "llm", 2, &o, &res), 0);
	assert_int_equal(read_file(out, 1 << 16, &got, &n), 0);
	abs = realpath(f->state, NULL);
	want = xasprintf("llm|1|%s/models/llm/1|0llm|2|%s/models/llm/2|1", abs, abs);
	free(abs);
	assert_string_equal(got, want);
	free(got);
	free(want);

	/* No switch, no hook. */
	assert_int_equal(activate_version(f->st, &f->trust, f->state, "llm", 2, &o, &res), 0);
	assert_false(res.hook_ran);

	/* A failing hook is reported and the switch stands. */
	o.on_activate = "echo hook failing >&2; exit 3";
	assert_int_equal(activate_rollback(f->st, &f->trust, f->state, "llm", &o, &res), 0);
	assert_true(res.hook_ran);
	assert_int_equal(res.hook_rc, FERRY_EIO);
	assert_non_null(strstr(ferry_errmsg(res.hook_rc), "status 3"));
	assert_int_equal(current_of(f->state, "llm"), 1);

	/* A hook that hangs is stopped at its time limit, whatever it started. */
	o.on_activate = "sleep 60 & sleep 60";
	o.hook_timeout_s = 1;
	assert_int_equal(activate_version(f->st, &f->trust, f->state, "llm", 2, &o, &res), 0);
	assert_int_equal(res.hook_rc, FERRY_ETIMEDOUT);
	assert_int_equal(current_of(f->state, "llm"), 2);

	r = activate_hook("kill -9 $$", 5, f->state, "llm", 2, 1);
	assert_int_equal(r, FERRY_EIO);
	assert_non_null(strstr(ferry_errmsg(r), "signal 9"));
	free(cmd);
	free(out);
}

static void test_keep_versions(void **state)
{
	struct fx *f = *state;
	struct activate_opts o = {.keep_versions = 2};
	struct activate_result res;
	char *stale = xasprintf("%s/models/llm/.9.tmp", f->state), *ls;

	for (uint64_t v = 1; v <= 5; v++)
		publish(f, "llm", v);
	assert_int_equal(activate_version(f->st, &f->trust, f->state, "llm", 1, &o, &res), 0);
	assert_int_equal(activate_pin(f->st, "llm", 1, true), 1);
	for (uint64_t v = 2; v <= 4; v++)
		assert_int_equal(activate_version(f->st, &f->trust, f->state, "llm", v, &o, &res),
				 0);
	/* 4 active, 3 previous, 1 pinned; 2 beyond keep_versions. */
	ls = listing(f->state, "llm");
	assert_string_equal(ls, "1 3 4");
	free(ls);
	assert_int_equal(res.removed, 1);

	/* Rolled back: 3 active, 4 previous; a crash leftover is cleared. */
	assert_int_equal(mkdir(stale, 0755), 0);
	assert_int_equal(activate_rollback(f->st, &f->trust, f->state, "llm", &o, &res), 0);
	ls = listing(f->state, "llm");
	assert_string_equal(ls, "1 3 4");
	free(ls);

	/* Unpinned, 1 goes at the next switch: 5 active, 3 previous, 4 within keep_versions. */
	assert_int_equal(activate_pin(f->st, "llm", 0, false), 1);
	assert_int_equal(activate_version(f->st, &f->trust, f->state, "llm", 5, &o, &res), 0);
	ls = listing(f->state, "llm");
	assert_string_equal(ls, "3 4 5");
	free(ls);
	assert_true(files_ok(f->state, "llm", 5, true));
	free(stale);
}

static void test_pin(void **state)
{
	struct fx *f = *state;
	struct activate_result res;
	struct store_rd *rd;
	int r;

	publish(f, "llm", 1);
	publish(f, "llm", 2);
	r = activate_pin(f->st, "llm", 0, true);
	assert_int_equal(r, FERRY_ENOENT);
	assert_non_null(strstr(ferry_errmsg(r), "no active version"));
	r = activate_pin(f->st, "llm", 7, true);
	assert_int_equal(r, FERRY_ENOENT);
	assert_int_equal(activate_pin(f->st, "Bad Name", 1, true), FERRY_EINVAL);
	assert_int_equal(activate(f, "llm", 2, &res), 0);
	assert_int_equal(activate_pin(f->st, "llm", 0, true), 1); /* the active one */
	assert_int_equal(activate_pin(f->st, "llm", 2, true), 0); /* already */
	assert_int_equal(activate_pin(f->st, "llm", 1, true), 1);
	assert_int_equal(store_rd_begin(f->st, &rd), 0);
	assert_true(store_pinned(rd, "llm", 1));
	assert_true(store_pinned(rd, "llm", 2));
	store_rd_end(rd);
	assert_int_equal(activate_pin(f->st, "llm", 0, false), 2); /* every pin of llm */
	assert_int_equal(store_rd_begin(f->st, &rd), 0);
	assert_false(store_pinned(rd, "llm", 1));
	assert_false(store_pinned(rd, "llm", 2));
	store_rd_end(rd);
}

static bool stored(struct fx *f, const char *name, uint64_t version)
{
	struct store_rd *rd;
	const uint8_t *b;
	size_t n;
	bool r;

	assert_int_equal(store_rd_begin(f->st, &rd), 0);
	r = store_manifest_get(rd, name, version, &b, &n) == 0;
	store_rd_end(rd);
	return r;
}

static void test_gc(void **state)
{
	struct fx *f = *state;
	struct activate_gc_opts go = {.keep_versions = 1};
	struct activate_gc_result gr;
	struct activate_result res;
	struct store_stats s;

	for (uint64_t v = 1; v <= 5; v++)
		publish(f, "llm", v);
	publish(f, "asr", 1);
	assert_int_equal(activate(f, "llm", 3, &res), 0);
	assert_int_equal(activate(f, "llm", 4, &res), 0);
	assert_int_equal(activate_pin(f->st, "llm", 1, true), 1);

	/* No quota, plenty of space: nothing is evicted. */
	assert_int_equal(activate_gc(f->st, f->state, &go, &gr), 0);
	assert_int_equal(gr.nevicted, 0);
	activate_gc_result_free(&gr);

	/* A quota of one version's worth: 2 is the only candidate (1 pinned, 3 previous,
	 * 4 active, 5 the newest; asr's only version the newest of its model). */
	assert_int_equal(store_stats(f->st, &s), 0);
	go.cache_quota = s.chunk_bytes / 6;
	assert_int_equal(activate_gc(f->st, f->state, &go, &gr), 0);
	assert_int_equal(gr.nevicted, 1);
	assert_string_equal(gr.evicted[0].name, "llm");
	assert_int_equal(gr.evicted[0].version, 2);
	assert_true(gr.short_by > 0);
	assert_true(gr.freed_bytes > 0);
	assert_true(gr.usage_after < gr.usage_before);
	assert_false(stored(f, "llm", 2));
	for (uint64_t v = 1; v <= 5; v++)
		if (v != 2)
			assert_true(stored(f, "llm", v));
	assert_true(files_ok(f->state, "llm", 4, true));
	activate_gc_result_free(&gr);

	/* keep_versions 0 and the pin gone: llm@1, llm@5 and asr@1 are candidates now, least
	 * recently used (never materialized: by publication time) first, then by name. */
	assert_int_equal(activate_pin(f->st, "llm", 1, false), 1);
	go.keep_versions = 0;
	assert_int_equal(activate_gc(f->st, f->state, &go, &gr), 0);
	assert_int_equal(gr.nevicted, 3);
	assert_string_equal(gr.evicted[0].name, "asr");
	assert_string_equal(gr.evicted[1].name, "llm");
	assert_int_equal(gr.evicted[1].version, 1);
	assert_int_equal(gr.evicted[2].version, 5);
	assert_false(stored(f, "asr", 1));
	assert_true(stored(f, "llm", 3));
	assert_true(stored(f, "llm", 4));
	assert_true(files_ok(f->state, "llm", 4, true));
	activate_gc_result_free(&gr);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_materialize_and_switch, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rollback_and_hold, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_corrupt_chunk, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_missing_chunk, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tampered_copy, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_full_disk, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_hook, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_keep_versions, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pin, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_gc, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
