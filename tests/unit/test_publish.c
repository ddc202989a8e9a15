/*
 * Unit tests for publish_ingest(), export_version() and export_verify(), on a
 * real store in a temporary directory: what goes in comes out byte for byte,
 * what must be refused is refused with the path named, a corrupt or missing
 * chunk stops an export before a file appears under its name, and a
 * lightly edited model costs little new storage.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

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

struct env {
	char *dir;   /* the temporary directory */
	char *state; /* the store's state dir */
	struct store *st;
	uint8_t pk[32];
};

/* ---- helpers ------------------------------------------------------------ */

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int setup(void **state)
{
	const char *tmp = getenv("TMPDIR");
	struct env *e = xcalloc(1, sizeof(*e));
	uint8_t sk[64];

	e->dir = xasprintf("%s/ferry-publish-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (mkdtemp(e->dir) == NULL || fcrypto_init() < 0)
		return -1;
	e->state = xasprintf("%s/state", e->dir);
	if (store_open(e->state, STORE_CREATE | STORE_WRITE, &e->st) < 0)
		return -1;
	fcrypto_sign_keypair(e->pk, sk);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;

	store_close(e->st);
	nftw(e->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(e->dir);
	free(e->state);
	free(e);
	return 0;
}

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

static char *path_in(const char *dir, const char *rel)
{
	return xasprintf("%s/%s", dir, rel);
}

static void write_bytes(const char *dir, const char *rel, const uint8_t *p, size_t n, mode_t mode)
{
	char *path = path_in(dir, rel);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

	assert_true(fd >= 0);
	assert_int_equal(write_full(fd, p, n), 0);
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
	free(path);
}

static void write_random(const char *dir, const char *rel, size_t n, uint64_t seed, mode_t mode)
{
	uint8_t *p = xmalloc(n);

	fill(p, n, seed);
	write_bytes(dir, rel, p, n, mode);
	free(p);
}

static uint8_t *slurp(const char *path, size_t *n)
{
	struct stat sb;
	uint8_t *p;
	int fd = open(path, O_RDONLY);

	if (fd < 0)
		return NULL;
	assert_int_equal(fstat(fd, &sb), 0);
	p = xmalloc((size_t)sb.st_size + 1);
	assert_int_equal(read_full(fd, p, (size_t)sb.st_size), 0);
	close(fd);
	*n = (size_t)sb.st_size;
	return p;
}

static void mkdirs(const char *dir, const char *rel)
{
	char *path = path_in(dir, rel);

	assert_int_equal(mkdir(path, 0755), 0);
	free(path);
}

static int open_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY);

	assert_true(fd >= 0);
	return fd;
}

/* A tree with nested directories, an empty file, an empty directory and odd sizes. */
static const struct tfile {
	const char *path;
	size_t size;
	mode_t mode;
} tree[] = {
    {"README", 1, 0644},
    {"empty", 0, 0600},
    {"a/b/c/deep.bin", 3 * MIB + 17, 0644},
    {"a/b/odd.bin", 123457, 0755},
    {"a/exact.bin", 1 * MIB, 0640},
    {"a-b", 65537, 0644}, /* sorts before "a/..." by bytes */
    {"z/dup.bin", 2 * MIB, 0644},
};

static char *make_tree(struct env *e, const char *name)
{
	char *src = path_in(e->dir, name);

	assert_int_equal(mkdir(src, 0755), 0);
	mkdirs(src, "a");
	mkdirs(src, "a/b");
	mkdirs(src, "a/b/c");
	mkdirs(src, "z");
	mkdirs(src, "emptydir");
	for (size_t i = 0; i < ARRAY_SIZE(tree); i++)
		write_random(src, tree[i].path, tree[i].size, i + 1, tree[i].mode);
	return src;
}

static int ingest(struct env *e, const char *src, const char *name, uint64_t version, int threads,
		  struct manifest **m, struct publish_stats *stats)
{
	struct publish_opts o = {.name = name,
				 .version = version,
				 .label = "test",
				 .threads = threads,
				 .created = 1700000000};
	uint8_t *body = NULL;
	size_t len = 0;
	int fd = open_dir(src), r;

	memcpy(o.publisher, e->pk, 32);
	r = publish_ingest(e->st, fd, &o, &body, &len, stats);
	close(fd);
	if (r == 0 && m != NULL)
		assert_int_equal(manifest_decode_body(body, len, m), 0);
	free(body);
	return r;
}

static uint64_t stored_manifests(struct env *e)
{
	struct store_stats s;

	assert_int_equal(store_stats(e->st, &s), 0);
	return s.manifests;
}

static const struct manifest_file *find_file(const struct manifest *m, const char *path)
{
	for (uint32_t i = 0; i < m->nfiles; i++)
		if (strcmp(m->files[i].path, path) == 0)
			return &m->files[i];
	return NULL;
}

/* The chunk index of f, decoded from the store. */
static struct chunk_ref *file_refs(struct env *e, const struct manifest_file *f, size_t *n)
{
	struct codec_ctx *ctx = codec_ctx_new();
	struct store_rd *rd;
	struct chunk_ref *all = NULL;
	uint8_t *buf = xmalloc(CHUNK_MAX_SIZE);

	*n = 0;
	assert_int_equal(store_rd_begin(e->st, &rd), 0);
	for (uint32_t i = 0; i < f->npieces; i++) {
		const uint8_t *enc;
		size_t len, raw_len, k;
		struct chunk_ref *part;

		assert_int_equal(store_chunk_get(rd, f->pieces[i], &enc, &len), 0);
		assert_int_equal(codec_decode(ctx, enc, len, buf, CHUNK_MAX_SIZE, &raw_len), 0);
		assert_int_equal(index_decode(buf, raw_len, &part, &k), 0);
		all = xreallocarray(all, *n + k, sizeof(*all));
		memcpy(all + *n, part, k * sizeof(*all));
		*n += k;
		free(part);
	}
	store_rd_end(rd);
	free(buf);
	codec_ctx_free(ctx);
	return all;
}

/* Replace a stored chunk with other bytes (delete + put, as a bad disk or bad actor would). */
static void replace_chunk(struct env *e, const uint8_t id[32], const uint8_t *enc, size_t len)
{
	struct store_wr *wr;

	assert_int_equal(store_wr_begin(e->st, &wr), 0);
	assert_int_equal(store_wr_chunk_del(wr, id), 0);
	assert_int_equal(store_wr_commit(wr), 0);
	if (enc == NULL)
		return;
	assert_int_equal(store_wr_begin(e->st, &wr), 0);
	assert_int_equal(store_wr_chunk_put(wr, id, enc, len), 0);
	assert_int_equal(store_wr_commit(wr), 0);
}

/* Count the entries of dir whose names end in ".ferry-tmp", recursively. */
static int tmp_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	if (d == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);
		char *sub;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (len > 10 && strcmp(de->d_name + len - 10, ".ferry-tmp") == 0)
			n++;
		sub = path_in(dir, de->d_name);
		if (de->d_type == DT_DIR)
			n += tmp_files(sub);
		free(sub);
	}
	closedir(d);
	return n;
}

static void assert_same_file(const char *a, const char *b)
{
	size_t na, nb;
	uint8_t *pa = slurp(a, &na), *pb = slurp(b, &nb);

	assert_non_null(pa);
	assert_non_null(pb);
	assert_int_equal(na, nb);
	assert_memory_equal(pa, pb, na);
	free(pa);
	free(pb);
}

/* ---- tests -------------------------------------------------------------- */

/* A tree goes in and comes out identical: bytes, sizes, modes, SHA-256, paths in order. */
static void test_publish_export_roundtrip(void **state)
{
	struct env *e = *state;
	char *src = make_tree(e, "src"), *out = path_in(e->dir, "out");
	struct manifest *m = NULL;
	struct publish_stats s;
	uint64_t total = 0, nchunks = 0;
	int fd;

	assert_int_equal(ingest(e, src, "demo", 1, 0, &m, &s), 0);
	assert_int_equal(m->nfiles, ARRAY_SIZE(tree));
	assert_string_equal(m->name, "demo");
	assert_int_equal(m->version, 1);
	assert_memory_equal(m->publisher, e->pk, 32);
	for (uint32_t i = 1; i < m->nfiles; i++)
		assert_true(strcmp(m->files[i - 1].path, m->files[i].path) < 0);
	assert_string_equal(m->files[0].path, "README");
	for (size_t i = 0; i < ARRAY_SIZE(tree); i++) {
		const struct manifest_file *f = find_file(m, tree[i].path);
		char *p = path_in(src, tree[i].path);
		uint8_t digest[32], *bytes;
		size_t n;
		struct fcrypto_sha256 *sha = fcrypto_sha256_new();

		assert_non_null(f);
		assert_int_equal(f->size, tree[i].size);
		assert_int_equal(f->mode, tree[i].mode);
		assert_int_equal(f->npieces, tree[i].size ? 1 : 0);
		bytes = slurp(p, &n);
		fcrypto_sha256_update(sha, bytes, n);
		fcrypto_sha256_final(sha, digest);
		assert_memory_equal(f->sha256, digest, 32);
		fcrypto_sha256_free(sha);
		free(bytes);
		free(p);
		total += tree[i].size;
	}
	assert_int_equal(s.files, ARRAY_SIZE(tree));
	assert_int_equal(s.raw_bytes, total);
	assert_int_equal(s.new_raw_bytes, total);
	/* The index pieces list every chunk, in order, adding up to each file. */
	for (uint32_t i = 0; i < m->nfiles; i++) {
		size_t n;
		uint64_t sum = 0;
		struct chunk_ref *refs = file_refs(e, &m->files[i], &n);

		for (size_t k = 0; k < n; k++) {
			assert_true(refs[k].raw_len >= 1 && refs[k].raw_len <= CHUNK_MAX_SIZE);
			sum += refs[k].raw_len;
		}
		assert_int_equal(sum, m->files[i].size);
		nchunks += n;
		free(refs);
	}
	assert_int_equal(s.chunks, nchunks);
	assert_int_equal(stored_manifests(e), 0);

	assert_int_equal(mkdir(out, 0755), 0);
	fd = open_dir(out);
	assert_int_equal(export_version(e->st, m, fd, EXPORT_SHA256), 0);
	close(fd);
	for (size_t i = 0; i < ARRAY_SIZE(tree); i++) {
		char *a = path_in(src, tree[i].path), *b = path_in(out, tree[i].path);
		struct stat sb;

		assert_same_file(a, b);
		assert_int_equal(stat(b, &sb), 0);
		assert_int_equal(sb.st_mode & 0777, tree[i].mode);
		free(a);
		free(b);
	}
	assert_int_equal(tmp_files(out), 0);

	/* Exporting again over the same files replaces them in place. */
	fd = open_dir(out);
	assert_int_equal(export_version(e->st, m, fd, 0), 0);
	close(fd);
	assert_int_equal(tmp_files(out), 0);

	manifest_free(m);
	free(src);
	free(out);
}

/* Same tree, any number of threads: the same manifest body, and nothing new the second time. */
static void test_deterministic_and_dedup(void **state)
{
	struct env *e = *state;
	char *src = make_tree(e, "src");
	struct publish_opts o = {.name = "demo", .version = 1, .created = 1700000000};
	struct publish_stats s1, s2;
	uint8_t *b1 = NULL, *b2 = NULL;
	size_t n1, n2;
	int fd = open_dir(src);

	memcpy(o.publisher, e->pk, 32);
	o.threads = 1;
	assert_int_equal(publish_ingest(e->st, fd, &o, &b1, &n1, &s1), 0);
	o.threads = 5;
	assert_int_equal(publish_ingest(e->st, fd, &o, &b2, &n2, &s2), 0);
	close(fd);
	assert_int_equal(n1, n2);
	assert_memory_equal(b1, b2, n1);
	/* z/dup.bin and the others share no content, so only repeated chunks dedup at first. */
	assert_true(s1.new_chunks > 0);
	assert_int_equal(s2.new_chunks, 0);
	assert_int_equal(s2.new_raw_bytes, 0);
	assert_int_equal(s2.chunks, s1.chunks);
	assert_int_equal(s2.enc_bytes, s1.enc_bytes);
	free(b1);
	free(b2);
	free(src);
}

/* Two identical files in one version are stored once. */
static void test_dedup_within_version(void **state)
{
	struct env *e = *state;
	char *src = path_in(e->dir, "twins");
	struct publish_stats s;

	assert_int_equal(mkdir(src, 0755), 0);
	write_random(src, "one", 3 * MIB, 42, 0644);
	write_random(src, "two", 3 * MIB, 42, 0644);
	assert_int_equal(ingest(e, src, "twins", 1, 0, NULL, &s), 0);
	assert_int_equal(s.raw_bytes, 6 * MIB);
	assert_int_equal(s.new_raw_bytes, 3 * MIB);
	assert_int_equal(s.new_chunks * 2, s.chunks);
	free(src);
}

static void expect_refused(struct env *e, const char *src, int code, const char *words)
{
	int r = ingest(e, src, "bad", 1, 0, NULL, NULL);

	assert_int_equal(r, code);
	if (strstr(ferry_errmsg(r), words) == NULL)
		fail_msg("'%s' does not contain '%s'", ferry_errmsg(r), words);
	assert_int_equal(stored_manifests(e), 0);
}

/* Symlinks, fifos and sockets are refused, naming the relative path. */
static void test_refuses_special_files(void **state)
{
	struct env *e = *state;
	char *src = make_tree(e, "src"), *p;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int sock;

	p = path_in(src, "a/b/link");
	assert_int_equal(symlink("odd.bin", p), 0);
	expect_refused(e, src, FERRY_ELOOP, "a/b/link: is a symbolic link");
	unlink(p);
	free(p);

	/* A symlinked directory is refused too, not followed. */
	p = path_in(src, "z/dirlink");
	assert_int_equal(symlink("../a", p), 0);
	expect_refused(e, src, FERRY_ELOOP, "z/dirlink: is a symbolic link");
	unlink(p);
	free(p);

	p = path_in(src, "a/fifo");
	assert_int_equal(mkfifo(p, 0644), 0);
	expect_refused(e, src, FERRY_EINVAL, "a/fifo: is a fifo");
	unlink(p);
	free(p);

	p = path_in(src, "sock");
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", p);
	sock = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(sock >= 0);
	if (strlen(p) < sizeof(sa.sun_path)) {
		assert_int_equal(bind(sock, (struct sockaddr *)&sa, sizeof(sa)), 0);
		expect_refused(e, src, FERRY_EINVAL, "sock: is a socket");
		unlink(p);
	}
	close(sock);
	free(p);

	/* Unreadable files (root reads everything, so only as another user). */
	if (geteuid() != 0) {
		p = path_in(src, "a/b/odd.bin");
		assert_int_equal(chmod(p, 0), 0);
		expect_refused(e, src, FERRY_EACCES, "a/b/odd.bin");
		free(p);
	}
	free(src);
}

/* An empty directory publishes as a version with no files. */
static void test_empty_dir(void **state)
{
	struct env *e = *state;
	char *src = path_in(e->dir, "nothing"), *out = path_in(e->dir, "out");
	struct manifest *m = NULL;
	struct publish_stats s;
	int fd;

	assert_int_equal(mkdir(src, 0755), 0);
	assert_int_equal(ingest(e, src, "nothing", 1, 0, &m, &s), 0);
	assert_int_equal(m->nfiles, 0);
	assert_int_equal(s.raw_bytes, 0);
	assert_int_equal(mkdir(out, 0755), 0);
	fd = open_dir(out);
	assert_int_equal(export_version(e->st, m, fd, 0), 0);
	close(fd);
	manifest_free(m);
	free(src);
	free(out);
}

/*
 * A chunk whose stored bytes no longer match its id stops the export of its
 * file, naming file and offset, and nothing appears under the file's name
 * (nor under a temporary name); verify finds the same chunk.
 */
static void test_corrupt_chunk(void **state)
{
	struct env *e = *state;
	char *src = make_tree(e, "src"), *out = path_in(e->dir, "out"), *p, want[256];
	struct manifest *m = NULL;
	const struct manifest_file *f;
	struct chunk_ref *refs;
	struct export_verify_stats vs;
	uint8_t *garbage;
	size_t n, glen;
	uint64_t off;
	char ids[ID_SHORT_LEN];
	struct codec_ctx *ctx = codec_ctx_new();
	int fd;

	assert_int_equal(ingest(e, src, "demo", 1, 0, &m, NULL), 0);
	f = find_file(m, "a/b/c/deep.bin");
	refs = file_refs(e, f, &n);
	assert_true(n >= 4);
	off = refs[0].raw_len + refs[1].raw_len;

	/* Well-formed encoded bytes of the right length, but other bytes. */
	garbage = xmalloc(codec_bound(refs[2].raw_len));
	p = xmalloc(refs[2].raw_len);
	fill((uint8_t *)p, refs[2].raw_len, 999);
	assert_int_equal(
	    codec_encode_as(ctx, CODEC_RAW, (uint8_t *)p, refs[2].raw_len, garbage, &glen), 0);
	free(p);
	replace_chunk(e, refs[2].id, garbage, glen);

	assert_int_equal(mkdir(out, 0755), 0);
	fd = open_dir(out);
	assert_int_equal(export_version(e->st, m, fd, 0), FERRY_ECORRUPT);
	close(fd);
	snprintf(want, sizeof(want),
		 "a/b/c/deep.bin: chunk %s at offset %llu is corrupt in the store",
		 id_short(ids, refs[2].id), (unsigned long long)off);
	assert_string_equal(ferry_errmsg(FERRY_ECORRUPT), want);
	p = path_in(out, "a/b/c/deep.bin");
	assert_int_equal(access(p, F_OK), -1);
	free(p);
	assert_int_equal(tmp_files(out), 0);
	/* The files before it in path order were exported whole. */
	for (size_t i = 0; i < 2; i++) {
		char *a = path_in(src, i == 0 ? "README" : "a-b"),
		     *b = path_in(out, i == 0 ? "README" : "a-b");

		assert_same_file(a, b);
		free(a);
		free(b);
	}

	assert_int_equal(export_verify(e->st, m, NULL, NULL, &vs), FERRY_ECORRUPT);
	assert_int_equal(vs.corrupt, 1);
	assert_int_equal(vs.missing, 0);

	/* Bytes that do not even decode are corrupt too. */
	fill(garbage, 64, 5);
	replace_chunk(e, refs[2].id, garbage, 64);
	fd = open_dir(out);
	assert_int_equal(export_version(e->st, m, fd, 0), FERRY_ECORRUPT);
	close(fd);
	assert_string_equal(ferry_errmsg(FERRY_ECORRUPT), want);

	/* A missing chunk is reported as missing, at its offset. */
	replace_chunk(e, refs[2].id, NULL, 0);
	fd = open_dir(out);
	assert_int_equal(export_version(e->st, m, fd, 0), FERRY_EINCOMPLETE);
	close(fd);
	snprintf(want, sizeof(want),
		 "a/b/c/deep.bin: chunk %s at offset %llu is missing from the store", ids,
		 (unsigned long long)off);
	assert_string_equal(ferry_errmsg(FERRY_EINCOMPLETE), want);
	assert_int_equal(export_verify(e->st, m, NULL, NULL, &vs), FERRY_EINCOMPLETE);
	assert_int_equal(vs.missing, 1);
	assert_int_equal(tmp_files(out), 0);

	free(garbage);
	free(refs);
	codec_ctx_free(ctx);
	manifest_free(m);
	free(src);
	free(out);
}

/* The output directory is never escaped through a symlink planted in it. */
static void test_export_no_symlink_escape(void **state)
{
	struct env *e = *state;
	char *src = make_tree(e, "src"), *out = path_in(e->dir, "out"),
	     *elsewhere = path_in(e->dir, "elsewhere"), *p;
	struct manifest *m = NULL;
	int fd;

	assert_int_equal(ingest(e, src, "demo", 1, 0, &m, NULL), 0);
	assert_int_equal(mkdir(out, 0755), 0);
	assert_int_equal(mkdir(elsewhere, 0755), 0);
	p = path_in(out, "a");
	assert_int_equal(symlink(elsewhere, p), 0);
	free(p);
	fd = open_dir(out);
	assert_int_equal(export_version(e->st, m, fd, 0), FERRY_ELOOP);
	close(fd);
	assert_non_null(strstr(ferry_errmsg(FERRY_ELOOP), "is a symbolic link"));
	p = path_in(elsewhere, "b");
	assert_int_equal(access(p, F_OK), -1);
	free(p);
	manifest_free(m);
	free(src);
	free(out);
	free(elsewhere);
}

/* A safetensors-like file: u64 header length, JSON header, then the tensors. */
struct model {
	size_t ntensors, tensor_size;
	uint64_t *seeds;
	const char *meta;
};

static void write_model(const char *dir, const char *name, const struct model *md)
{
	size_t hcap = 64 * KIB, hlen = 0, total;
	char *hdr = xmalloc(hcap);
	uint8_t *buf, *p;
	uint64_t le;

	hlen += (size_t)snprintf(hdr + hlen, hcap - hlen, "{\"__metadata__\":{\"note\":\"%s\"}",
				 md->meta);
	for (size_t i = 0; i < md->ntensors; i++)
		hlen += (size_t)snprintf(
		    hdr + hlen, hcap - hlen,
		    ",\"layer.%zu.weight\":{\"dtype\":\"BF16\",\"shape\":[%zu],"
		    "\"data_offsets\":[%zu,%zu]}",
		    i, md->tensor_size / 2, i * md->tensor_size, (i + 1) * md->tensor_size);
	hlen += (size_t)snprintf(hdr + hlen, hcap - hlen, "}");
	total = 8 + hlen + md->ntensors * md->tensor_size;
	buf = xmalloc(total);
	le = htole64(hlen);
	memcpy(buf, &le, 8);
	memcpy(buf + 8, hdr, hlen);
	p = buf + 8 + hlen;
	for (size_t i = 0; i < md->ntensors; i++)
		fill(p + i * md->tensor_size, md->tensor_size, md->seeds[i]);
	write_bytes(dir, name, buf, total, 0644);
	free(buf);
	free(hdr);
}

/*
 * A new version that rewrites 10% of the tensors and grows the JSON header by
 * a few bytes (shifting every tensor) stores at most 15% new bytes.
 */
static void test_dedup_model_update(void **state)
{
	struct env *e = *state;
	char *v1 = path_in(e->dir, "v1"), *v2 = path_in(e->dir, "v2");
	uint64_t seeds[20];
	struct model md = {.ntensors = 20, .tensor_size = 3 * MIB, .seeds = seeds, .meta = "v1"};
	struct publish_stats s1, s2;

	for (size_t i = 0; i < md.ntensors; i++)
		seeds[i] = 1000 + i;
	assert_int_equal(mkdir(v1, 0755), 0);
	assert_int_equal(mkdir(v2, 0755), 0);
	write_model(v1, "model.safetensors", &md);
	seeds[3] = 5003;
	seeds[14] = 5014;
	md.meta = "v2, retrained";
	write_model(v2, "model.safetensors", &md);

	assert_int_equal(ingest(e, v1, "model", 1, 0, NULL, &s1), 0);
	assert_int_equal(ingest(e, v2, "model", 2, 0, NULL, &s2), 0);
	assert_int_equal(s1.new_raw_bytes, s1.raw_bytes);
	print_message("      update: %llu of %llu bytes new (%.1f%%)\n",
		      (unsigned long long)s2.new_raw_bytes, (unsigned long long)s2.raw_bytes,
		      100.0 * (double)s2.new_raw_bytes / (double)s2.raw_bytes);
	assert_true(s2.new_raw_bytes >= 2 * md.tensor_size);
	assert_true(s2.new_raw_bytes * 100 <= s2.raw_bytes * 15);
	free(v1);
	free(v2);
}

/* More small files than one durability group holds, across directories, come out whole. */
static void test_many_small_files(void **state)
{
	struct env *e = *state;
	char *src = path_in(e->dir, "many"), *out = path_in(e->dir, "out");
	struct manifest *m = NULL;
	int fd;

	assert_int_equal(mkdir(src, 0755), 0);
	for (int d = 0; d < 3; d++) {
		char *dir = xasprintf("d%d", d);

		mkdirs(src, dir);
		for (int i = 0; i < 400; i++) {
			char *rel = xasprintf("%s/f%03d", dir, i);

			write_random(src, rel, (size_t)(i * 7 % 300), (uint64_t)(d * 1000 + i),
				     0644);
			free(rel);
		}
		free(dir);
	}
	assert_int_equal(ingest(e, src, "many", 1, 0, &m, NULL), 0);
	assert_int_equal(m->nfiles, 1200);
	assert_int_equal(mkdir(out, 0755), 0);
	fd = open_dir(out);
	assert_int_equal(export_version(e->st, m, fd, EXPORT_SHA256), 0);
	close(fd);
	for (uint32_t i = 0; i < m->nfiles; i++) {
		char *a = path_in(src, m->files[i].path), *b = path_in(out, m->files[i].path);

		assert_same_file(a, b);
		free(a);
		free(b);
	}
	assert_int_equal(tmp_files(out), 0);
	manifest_free(m);
	free(src);
	free(out);
}

/* Bad options are refused before any work. */
static void test_bad_opts(void **state)
{
	struct env *e = *state;
	char *src = make_tree(e, "src");
	struct publish_opts o = {.name = "Bad Name", .version = 1};
	uint8_t *body = NULL;
	size_t len;
	int fd = open_dir(src);

	assert_int_equal(publish_ingest(e->st, fd, &o, &body, &len, NULL), FERRY_EINVAL);
	o.name = "good";
	o.version = 0;
	assert_int_equal(publish_ingest(e->st, fd, &o, &body, &len, NULL), FERRY_EINVAL);
	assert_null(body);
	close(fd);
	free(src);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_publish_export_roundtrip, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_deterministic_and_dedup, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dedup_within_version, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_refuses_special_files, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_empty_dir, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_corrupt_chunk, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_export_no_symlink_escape, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dedup_model_update, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_many_small_files, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_opts, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
