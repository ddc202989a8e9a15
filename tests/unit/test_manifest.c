/*
 * Unit tests for manifests: round trips, the pinned test vector
 * (tests/vectors/manifest-v1.hex), every rejection with its code and detail,
 * and tampering with the signed form.
 *
 * raw_body() writes bodies with the mpk writer directly, bypassing
 * manifest_encode()'s checks, so the decoder can be fed what a hostile or
 * newer publisher would send.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ferry/error.h"
#include "ferry/fcrypto.h"
#include "ferry/index.h"
#include "ferry/manifest.h"
#include "ferry/mpk.h"
#include "ferry/util.h"

#ifndef VECTORS_DIR
#error "VECTORS_DIR must name tests/vectors"
#endif

/* The signing key of the vector: libsodium form, seed || public key. */
static uint8_t vec_sk[FERRY_SK_LEN];
static uint8_t vec_pk[FERRY_PK_LEN];
static uint8_t other_sk[FERRY_SK_LEN];
static uint8_t other_pk[FERRY_PK_LEN];

static void set_file(struct manifest_file *f, const char *path, uint64_t size, uint32_t mode,
		     uint32_t npieces, uint8_t fill)
{
	uint32_t i;

	f->path = xstrdup(path);
	f->size = size;
	f->mode = mode;
	memset(f->sha256, fill, sizeof(f->sha256));
	f->npieces = npieces;
	f->pieces = npieces ? xcalloc(npieces, sizeof(*f->pieces)) : NULL;
	for (i = 0; i < npieces; i++)
		memset(f->pieces[i], fill + 1 + (int)i, sizeof(f->pieces[i]));
}

/* The manifest of the test vector. Changing it changes the vector. */
static struct manifest *vector_manifest(void)
{
	struct manifest *m = xcalloc(1, sizeof(*m));

	m->format = MANIFEST_FORMAT;
	m->name = xstrdup("llama-3.2-1b");
	m->version = 3;
	m->label = xstrdup("bf16 weights, 2024-09-25");
	m->created = 1727222400;
	memcpy(m->publisher, vec_pk, sizeof(vec_pk));
	m->nfiles = 4;
	m->files = xcalloc(m->nfiles, sizeof(*m->files));
	set_file(&m->files[0], "config.json", 877, 0644, 1, 0x10);
	set_file(&m->files[1], "empty.txt", 0, 0600, 0, 0x20);
	set_file(&m->files[2], "weights/model-00001-of-00001.safetensors", 2471645608ull, 0644, 1,
		 0x30);
	set_file(&m->files[3],
		 "donn\xc3\xa9"
		 "es/\xc3\xa9t\xc3\xa9.bin",
		 300000, 0755, 2, 0x40);
	return m;
}

static void assert_manifest_equal(const struct manifest *a, const struct manifest *b)
{
	uint32_t i;

	assert_int_equal(a->format, b->format);
	assert_string_equal(a->name, b->name);
	assert_true(a->version == b->version);
	assert_string_equal(a->label, b->label);
	assert_true(a->created == b->created);
	assert_memory_equal(a->publisher, b->publisher, 32);
	assert_int_equal(a->nfiles, b->nfiles);
	for (i = 0; i < a->nfiles; i++) {
		assert_string_equal(a->files[i].path, b->files[i].path);
		assert_true(a->files[i].size == b->files[i].size);
		assert_int_equal(a->files[i].mode, b->files[i].mode & 0777);
		assert_memory_equal(a->files[i].sha256, b->files[i].sha256, 32);
		assert_int_equal(a->files[i].npieces, b->files[i].npieces);
		if (a->files[i].npieces)
			assert_memory_equal(a->files[i].pieces, b->files[i].pieces,
					    32 * (size_t)a->files[i].npieces);
	}
}

/* How raw_body() departs from the real encoding. */
struct body_opts {
	const char *omit;  /* leave out this top-level key */
	const char *fomit; /* leave out this key of files[0] */
	const char *dup;   /* write this top-level key twice */
	const char *fdup;  /* write this key of files[0] twice */
	bool name_as_bin;  /* "name" as a bin */
	bool unknown;	   /* unknown keys with nested values, at both levels */
	int unknown_depth; /* if > 0, an unknown key whose value nests this deep */
	uint64_t format;   /* if not 0, the format to write */
	bool no_publisher; /* leave out "publisher" */
	bool trailing;	   /* a byte after the map */
};

static bool is(const char *a, const char *b)
{
	return a != NULL && strcmp(a, b) == 0;
}

static void w_key(struct mpk_w *w, const char *k)
{
	mpk_w_cstr(w, k);
}

static void w_unknown(struct mpk_w *w)
{
	w_key(w, "zz-future");
	mpk_w_map(w, 2);
	mpk_w_cstr(w, "list");
	mpk_w_array(w, 3);
	mpk_w_uint(w, 1);
	mpk_w_double(w, 2.5);
	mpk_w_bin(w, "xyz", 3);
	mpk_w_cstr(w, "s");
	mpk_w_nil(w);
}

static void w_file(struct mpk_w *w, const struct manifest_file *f, const struct body_opts *o,
		   bool first)
{
	static const char *const keys[] = {"path", "size", "mode", "sha256", "index"};
	size_t i, n = 5;
	uint32_t j;

	if (first && o->fomit)
		n--;
	if (first && o->fdup)
		n++;
	if (o->unknown)
		n++;
	mpk_w_map(w, n);
	if (o->unknown)
		w_unknown(w);
	for (i = 0; i < 5; i++) {
		int times = first && is(o->fdup, keys[i]) ? 2 : 1;

		if (first && is(o->fomit, keys[i]))
			continue;
		while (times-- > 0) {
			w_key(w, keys[i]);
			switch (i) {
			case 0:
				mpk_w_cstr(w, f->path);
				break;
			case 1:
				mpk_w_uint(w, f->size);
				break;
			case 2:
				mpk_w_uint(w, f->mode);
				break;
			case 3:
				mpk_w_bin(w, f->sha256, 32);
				break;
			case 4:
				mpk_w_array(w, f->npieces);
				for (j = 0; j < f->npieces; j++)
					mpk_w_bin(w, f->pieces[j], 32);
				break;
			}
		}
	}
}

static uint8_t *raw_body(const struct manifest *m, const struct body_opts *o, size_t *len)
{
	static const char *const keys[] = {"format",  "name",	   "version", "label",
					   "created", "publisher", "files"};
	struct mpk_w w;
	uint8_t *p;
	size_t i, n = 7;
	uint32_t j;
	int d;

	if (o->omit)
		n--;
	if (o->no_publisher)
		n--;
	if (o->dup)
		n++;
	if (o->unknown)
		n++;
	if (o->unknown_depth > 0)
		n++;
	mpk_w_init(&w);
	mpk_w_map(&w, n);
	if (o->unknown_depth > 0) {
		w_key(&w, "deep");
		for (d = 0; d < o->unknown_depth; d++)
			mpk_w_array(&w, 1);
		mpk_w_nil(&w);
	}
	for (i = 0; i < 7; i++) {
		int times = is(o->dup, keys[i]) ? 2 : 1;

		if (is(o->omit, keys[i]) || (o->no_publisher && i == 5))
			continue;
		while (times-- > 0) {
			w_key(&w, keys[i]);
			switch (i) {
			case 0:
				mpk_w_uint(&w, o->format ? o->format : m->format);
				break;
			case 1:
				if (o->name_as_bin)
					mpk_w_bin(&w, m->name, strlen(m->name));
				else
					mpk_w_cstr(&w, m->name);
				break;
			case 2:
				mpk_w_uint(&w, m->version);
				break;
			case 3:
				mpk_w_cstr(&w, m->label);
				break;
			case 4:
				mpk_w_int(&w, m->created);
				break;
			case 5:
				mpk_w_bin(&w, m->publisher, 32);
				break;
			case 6:
				mpk_w_array(&w, m->nfiles);
				for (j = 0; j < m->nfiles; j++)
					w_file(&w, &m->files[j], o, j == 0);
				break;
			}
		}
	}
	if (o->unknown)
		w_unknown(&w);
	if (o->trailing)
		mpk_w_nil(&w);
	assert_int_equal(mpk_w_take(&w, &p, len), 0);
	return p;
}

/* Sign and seal a body with sk (the publisher check of manifest_sign() is not bypassed). */
static uint8_t *seal_with(const uint8_t *body, size_t len, const uint8_t *sk, size_t *outlen)
{
	uint8_t sig[FERRY_SIG_LEN], *out;

	assert_int_equal(manifest_sign(body, len, sk, sig), 0);
	assert_int_equal(manifest_seal(body, len, sig, &out, outlen), 0);
	return out;
}

static void expect_msg(int code, const char *what)
{
	if (strstr(ferry_errmsg(code), what) == NULL)
		fail_msg("detail '%s' does not contain '%s'", ferry_errmsg(code), what);
}

/*
 * A body must be rejected with code and a detail containing what, both
 * unsigned (manifest_decode_body) and signed by a trusted key (manifest_open).
 */
static void expect_body_reject(const uint8_t *body, size_t len, int code, const char *what)
{
	struct trust t = {1, &vec_pk};
	struct manifest *m = (struct manifest *)1;
	uint8_t *sealed, sig[FERRY_SIG_LEN];
	size_t slen;

	assert_int_equal(manifest_decode_body(body, len, &m), code);
	assert_null(m);
	expect_msg(code, what);
	/* manifest_sign() needs the publisher; a body without one is tested elsewhere. */
	if (manifest_sign(body, len, vec_sk, sig) != 0)
		return;
	assert_int_equal(manifest_seal(body, len, sig, &sealed, &slen), 0);
	m = (struct manifest *)1;
	assert_int_equal(manifest_open(sealed, slen, &t, &m, NULL), code);
	assert_null(m);
	expect_msg(code, what);
	free(sealed);
}

/* Mutate the vector manifest with fn, write it raw, and expect a rejection. */
static void reject_mutant(void (*fn)(struct manifest *), const struct body_opts *o, int code,
			  const char *what)
{
	static const struct body_opts none;
	struct manifest *m = vector_manifest();
	uint8_t *body;
	size_t len;

	if (fn)
		fn(m);
	body = raw_body(m, o ? o : &none, &len);
	expect_body_reject(body, len, code, what);
	free(body);
	manifest_free(m);
}

/* Read "key hex" from the vector file into a malloc'd buffer. */
static uint8_t *vector_get(const char *key, size_t *len)
{
	char line[65536], *sp;
	FILE *f = fopen(VECTORS_DIR "/manifest-v1.hex", "r");
	uint8_t *out = NULL;

	assert_non_null(f);
	while (fgets(line, sizeof(line), f) != NULL) {
		line[strcspn(line, "\r\n")] = '\0';
		if (line[0] == '#' || (sp = strchr(line, ' ')) == NULL)
			continue;
		*sp = '\0';
		if (strcmp(line, key) != 0)
			continue;
		*len = strlen(sp + 1) / 2;
		out = xmalloc(*len ? *len : 1);
		assert_int_equal(hex_decode(out, *len, sp + 1), 0);
		break;
	}
	fclose(f);
	if (out == NULL)
		fail_msg("no '%s' in manifest-v1.hex", key);
	return out;
}

static void print_hex(const char *key, const uint8_t *p, size_t n)
{
	char *hex = xmalloc(2 * n + 1);

	fprintf(stderr, "%s %s\n", key, hex_encode(hex, p, n));
	free(hex);
}

static void test_vector(void **state)
{
	struct manifest *m = vector_manifest(), *back;
	uint8_t *body, *sealed, *vbody, *vsealed, *vhash, hash[32];
	struct trust t = {1, &vec_pk};
	size_t len, slen, vlen, vslen, vhlen;

	assert_int_equal(manifest_encode(m, &body, &len), 0);
	sealed = seal_with(body, len, vec_sk, &slen);
	vbody = vector_get("body", &vlen);
	vsealed = vector_get("signed", &vslen);
	vhash = vector_get("hash", &vhlen);
	if (len != vlen || memcmp(body, vbody, len) != 0 || slen != vslen ||
	    memcmp(sealed, vsealed, slen) != 0) {
		/* What the vector file would hold if the change is intended. */
		print_hex("body", body, len);
		print_hex("signed", sealed, slen);
		fcrypto_id(hash, sealed, slen);
		print_hex("hash", hash, 32);
		fail_msg("the encoding differs from tests/vectors/manifest-v1.hex");
	}
	assert_int_equal(manifest_open(vsealed, vslen, &t, &back, hash), 0);
	assert_manifest_equal(back, m);
	assert_int_equal(vhlen, 32);
	assert_memory_equal(hash, vhash, 32);
	manifest_free(back);
	free(vbody);
	free(vsealed);
	free(vhash);
	free(body);
	free(sealed);
	manifest_free(m);
}

static void test_round_trip(void **state)
{
	static const struct body_opts none;
	struct manifest *m = vector_manifest(), *back;
	uint8_t *body, *body2, *raw, *sealed, hash[32], want[32];
	struct trust t = {1, &vec_pk};
	size_t len, len2, rlen, slen;

	assert_int_equal(manifest_encode(m, &body, &len), 0);
	/* deterministic, and the key order is the one raw_body() writes */
	assert_int_equal(manifest_encode(m, &body2, &len2), 0);
	assert_int_equal(len, len2);
	assert_memory_equal(body, body2, len);
	raw = raw_body(m, &none, &rlen);
	assert_int_equal(len, rlen);
	assert_memory_equal(body, raw, len);

	assert_int_equal(manifest_decode_body(body, len, &back), 0);
	assert_manifest_equal(back, m);
	manifest_free(back);

	sealed = seal_with(body, len, vec_sk, &slen);
	assert_int_equal(manifest_open(sealed, slen, &t, &back, hash), 0);
	assert_manifest_equal(back, m);
	fcrypto_id(want, sealed, slen);
	assert_memory_equal(hash, want, 32);
	assert_true(manifest_total_size(back) == 877 + 2471645608ull + 300000);
	manifest_free(back);

	free(body);
	free(body2);
	free(raw);
	free(sealed);
	manifest_free(m);
}

/* Unknown keys, at the top and in files, are skipped: newer publishers may add fields. */
static void test_unknown_keys_skipped(void **state)
{
	struct body_opts o = {.unknown = true};
	struct manifest *m = vector_manifest(), *back;
	uint8_t *body;
	size_t len;

	body = raw_body(m, &o, &len);
	assert_int_equal(manifest_decode_body(body, len, &back), 0);
	assert_manifest_equal(back, m);
	manifest_free(back);
	free(body);

	o.unknown_depth = 40;
	body = raw_body(m, &o, &len);
	expect_body_reject(body, len, FERRY_EFORMAT, "nested more than 32 deep");
	free(body);
	manifest_free(m);
}

static void bad_name(struct manifest *m)
{
	free(m->name);
	m->name = xstrdup("Llama");
}
static void long_name(struct manifest *m)
{
	free(m->name);
	m->name = xmalloc(MANIFEST_NAME_MAX + 2);
	memset(m->name, 'n', MANIFEST_NAME_MAX + 1);
	m->name[MANIFEST_NAME_MAX + 1] = '\0';
}
static void version_zero(struct manifest *m)
{
	m->version = 0;
}
static void long_label(struct manifest *m)
{
	free(m->label);
	m->label = xmalloc(MANIFEST_LABEL_MAX + 2);
	memset(m->label, 'l', MANIFEST_LABEL_MAX + 1);
	m->label[MANIFEST_LABEL_MAX + 1] = '\0';
}
static void control_label(struct manifest *m)
{
	free(m->label);
	m->label = xstrdup("two\nlines");
}
static void dup_path(struct manifest *m)
{
	free(m->files[3].path);
	m->files[3].path = xstrdup("config.json");
}
/* "a" is a file and a directory; "a-b" sorts between them in byte order. */
static void file_and_dir(struct manifest *m)
{
	free(m->files[0].path);
	m->files[0].path = xstrdup("a/b");
	free(m->files[1].path);
	m->files[1].path = xstrdup("a-b");
	free(m->files[2].path);
	m->files[2].path = xstrdup("a");
}
static void empty_with_piece(struct manifest *m)
{
	m->files[0].size = 0;
}
static void small_with_two_pieces(struct manifest *m)
{
	m->files[0].size = 10;
	m->files[0].npieces = 2;
	free(m->files[0].pieces);
	m->files[0].pieces = xcalloc(2, 32);
}
static void nonempty_without_pieces(struct manifest *m)
{
	m->files[0].npieces = 0;
}

static void test_rejections(void **state)
{
	struct body_opts o;

	reject_mutant(bad_name, NULL, FERRY_EINVAL, "model name 'Llama' does not match");
	reject_mutant(
	    long_name, NULL, FERRY_EINVAL,
	    "model name 'nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn' ");
	reject_mutant(version_zero, NULL, FERRY_EINVAL, "version 0");
	reject_mutant(long_label, NULL, FERRY_ETOOBIG, "label of 257 bytes");
	reject_mutant(control_label, NULL, FERRY_EINVAL, "label 'two\\x0alines'");
	reject_mutant(dup_path, NULL, FERRY_EPATH, "path 'config.json' is listed twice");
	reject_mutant(file_and_dir, NULL, FERRY_EPATH,
		      "path 'a' is a file and also a directory of 'a/b'");
	reject_mutant(empty_with_piece, NULL, FERRY_EFORMAT,
		      "file 'config.json' of 0 bytes has 1 index pieces, not 0..0");
	reject_mutant(small_with_two_pieces, NULL, FERRY_EFORMAT, "has 2 index pieces, not 1..1");
	reject_mutant(nonempty_without_pieces, NULL, FERRY_EFORMAT, "has 0 index pieces, not 1..1");

	o = (struct body_opts){.format = 2};
	reject_mutant(NULL, &o, FERRY_EVERSION, "format 2 is not supported");
	o = (struct body_opts){.omit = "format"};
	reject_mutant(NULL, &o, FERRY_EFORMAT, "key 'format' is missing");
	o = (struct body_opts){.omit = "label"};
	reject_mutant(NULL, &o, FERRY_EFORMAT, "manifest: key 'label' is missing");
	o = (struct body_opts){.omit = "files"};
	reject_mutant(NULL, &o, FERRY_EFORMAT, "key 'files' is missing");
	o = (struct body_opts){.fomit = "sha256"};
	reject_mutant(NULL, &o, FERRY_EFORMAT, "files[0]: key 'sha256' is missing");
	o = (struct body_opts){.dup = "version"};
	reject_mutant(NULL, &o, FERRY_EFORMAT, "key 'version' appears twice");
	o = (struct body_opts){.fdup = "path"};
	reject_mutant(NULL, &o, FERRY_EFORMAT, "files[0]: key 'path' appears twice");
	o = (struct body_opts){.name_as_bin = true};
	reject_mutant(NULL, &o, FERRY_EFORMAT, "manifest name: msgpack: expected str, found bin");
	o = (struct body_opts){.trailing = true};
	reject_mutant(NULL, &o, FERRY_EFORMAT, "1 bytes left over");
}

static void test_bad_paths(void **state)
{
	static const struct {
		const char *path, *why;
	} bad[] = {
	    {"", "it is empty"},
	    {"/etc/passwd", "'/etc/passwd': it is absolute"},
	    {"a//b", "'a//b': it has an empty component"},
	    {"a/", "'a/': it has an empty component"},
	    {"./a", "'./a': it has a '.' component"},
	    {"a/./b", "it has a '.' component"},
	    {"../a", "'../a': it has a '..' component"},
	    {"a/..", "'a/..': it has a '..' component"},
	    {"a\\..\\b", "'a\\x5c..\\x5cb': it contains a backslash"},
	    {"a\x1b[2Jb", "'a\\x1b[2Jb': it contains a control character"},
	    {"a\x7f", "it contains a control character"},
	    {"caf\xe9", "'caf\\xe9': it is not valid UTF-8"},
	    {"\xc0\xaf", "it is not valid UTF-8"},	   /* overlong '/' */
	    {"\xed\xa0\x80", "it is not valid UTF-8"},	   /* a surrogate */
	    {"\xf4\x90\x80\x80", "it is not valid UTF-8"}, /* above U+10FFFF */
	    {"\xe2\x82", "it is not valid UTF-8"},	   /* cut short */
	};
	char comp[300], *longp;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(manifest_path_check(bad[i].path), FERRY_EPATH);
		expect_msg(FERRY_EPATH, bad[i].why);
	}
	/* a path with a NUL inside can only come from msgpack */
	{
		struct manifest *m = vector_manifest();
		static const struct body_opts none;
		uint8_t *body;
		size_t len, k;

		free(m->files[0].path);
		m->files[0].path = xstrdup("a_b");
		body = raw_body(m, &none, &len);
		for (k = 0; k + 3 <= len; k++)
			if (memcmp(body + k, "a_b", 3) == 0)
				body[k + 1] = '\0';
		expect_body_reject(body, len, FERRY_EPATH, "'a\\x00b' contains a NUL byte");
		free(body);
		manifest_free(m);
	}
	/* components up to 255 bytes and paths up to 4096 are fine, one more is not */
	memset(comp, 'c', 255);
	comp[255] = '\0';
	assert_int_equal(manifest_path_check(comp), 0);
	comp[255] = 'c';
	comp[256] = '\0';
	assert_int_equal(manifest_path_check(comp), FERRY_EPATH);
	expect_msg(FERRY_EPATH, "a component is longer than 255 bytes");
	longp = xmalloc(MANIFEST_PATH_MAX + 2);
	for (i = 0; i < MANIFEST_PATH_MAX; i++)
		longp[i] = i % 2 ? '/' : 'd';
	longp[MANIFEST_PATH_MAX - 1] = 'e'; /* no trailing slash */
	longp[MANIFEST_PATH_MAX] = '\0';
	assert_int_equal(manifest_path_check(longp), 0);
	longp[MANIFEST_PATH_MAX] = 'f';
	longp[MANIFEST_PATH_MAX + 1] = '\0';
	assert_int_equal(manifest_path_check(longp), FERRY_EPATH);
	expect_msg(FERRY_EPATH, "it is longer than 4096 bytes");
	free(longp);

	assert_int_equal(manifest_path_check("a/b.c"), 0);
	assert_int_equal(manifest_path_check("..a/a../.hidden/...x"), 0);
	assert_int_equal(manifest_path_check("mod\xc3\xa8le/\xf0\x9f\x98\x80.bin"), 0);
	assert_int_equal(manifest_path_check("a b/c:d"), 0);
}

static void test_names(void **state)
{
	static const char *const good[] = {
	    "a", "0", "llama-3.2-1b", "x_y.z-9", "9--", "a..b",
	};
	static const char *const bad[] = {"", "-a", ".a", "_a", "A", "a/b", "a b", "\xc3\xa9"};
	char name64[65];
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_int_equal(manifest_name_check(good[i]), 0);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(manifest_name_check(bad[i]), FERRY_EINVAL);
		expect_msg(FERRY_EINVAL, "does not match [a-z0-9][a-z0-9._-]{0,63}");
	}
	memset(name64, 'n', 64);
	name64[64] = '\0';
	assert_int_equal(manifest_name_check(name64), 0);
}

static void test_mode_masked(void **state)
{
	struct manifest *m = vector_manifest(), *back;
	static const struct body_opts none;
	uint8_t *body;
	size_t len;

	m->files[0].mode = 0104755; /* setuid regular file */
	body = raw_body(m, &none, &len);
	assert_int_equal(manifest_decode_body(body, len, &back), 0);
	assert_int_equal(back->files[0].mode, 0755);
	manifest_free(back);
	free(body);
	assert_int_equal(manifest_encode(m, &body, &len), 0);
	assert_int_equal(manifest_decode_body(body, len, &back), 0);
	assert_int_equal(back->files[0].mode, 0755);
	manifest_free(back);
	free(body);
	manifest_free(m);
}

/* Counts that would allocate beyond what the input holds are refused first. */
static void test_limits(void **state)
{
	struct manifest *m = vector_manifest(), *out;
	struct trust t = {1, &vec_pk};
	struct mpk_w w;
	uint8_t *body, *big;
	size_t len, i;

	/* files: 100001 entries (nils: the count is refused before any entry is read) */
	mpk_w_init(&w);
	mpk_w_map(&w, 2);
	mpk_w_cstr(&w, "format");
	mpk_w_uint(&w, 1);
	mpk_w_cstr(&w, "files");
	mpk_w_array(&w, MANIFEST_FILES_MAX + 1);
	for (i = 0; i < MANIFEST_FILES_MAX + 1; i++)
		mpk_w_nil(&w);
	assert_int_equal(mpk_w_take(&w, &body, &len), 0);
	expect_body_reject(body, len, FERRY_ETOOBIG, "lists 100001 files, more than 100000");
	free(body);

	/* index: 100 piece ids declared with 200 bytes of anything behind them */
	mpk_w_init(&w);
	mpk_w_map(&w, 2);
	mpk_w_cstr(&w, "format");
	mpk_w_uint(&w, 1);
	mpk_w_cstr(&w, "files");
	mpk_w_array(&w, 1);
	mpk_w_map(&w, 1);
	mpk_w_cstr(&w, "index");
	mpk_w_array(&w, 100);
	for (i = 0; i < 200; i++)
		mpk_w_nil(&w);
	assert_int_equal(mpk_w_take(&w, &body, &len), 0);
	expect_body_reject(body, len, FERRY_EFORMAT, "100 piece ids cannot fit in the 200 bytes");
	free(body);

	/* whole inputs over MANIFEST_SIGNED_MAX */
	big = xcalloc(MANIFEST_SIGNED_MAX + 1, 1);
	assert_int_equal(manifest_decode_body(big, MANIFEST_SIGNED_MAX + 1, &out), FERRY_ETOOBIG);
	assert_int_equal(manifest_open(big, MANIFEST_SIGNED_MAX + 1, &t, &out, NULL),
			 FERRY_ETOOBIG);
	expect_msg(FERRY_ETOOBIG, "16777217 bytes is larger than the 16777216 allowed");
	free(big);

	/* encode refuses what decode would refuse */
	m->files[2].path[0] = '/';
	assert_int_equal(manifest_encode(m, &body, &len), FERRY_EPATH);
	assert_null(body);
	m->files[2].path[0] = 'w';
	m->format = 2;
	assert_int_equal(manifest_encode(m, &body, &len), FERRY_EVERSION);
	manifest_free(m);
}

static uint8_t *vector_sealed(size_t *slen, uint8_t **body, size_t *blen)
{
	struct manifest *m = vector_manifest();
	uint8_t *b, *s;
	size_t len;

	assert_int_equal(manifest_encode(m, &b, &len), 0);
	s = seal_with(b, len, vec_sk, slen);
	manifest_free(m);
	if (body) {
		*body = b;
		*blen = len;
	} else {
		free(b);
	}
	return s;
}

static void expect_open(const uint8_t *p, size_t n, const struct trust *t, int code,
			const char *what)
{
	struct manifest *m = (struct manifest *)1;

	assert_int_equal(manifest_open(p, n, t, &m, NULL), code);
	assert_null(m);
	if (what)
		expect_msg(code, what);
}

static void test_trust_and_signature(void **state)
{
	uint8_t *sealed, *body, *s2, sig[FERRY_SIG_LEN], *msg;
	uint8_t keys[2][32];
	struct trust t = {2, keys}, none = {0, NULL}, only_other = {1, &other_pk};
	char b64[FERRY_B64_32_LEN], want[128];
	size_t slen, blen, s2len, siglen_off;

	memcpy(keys[0], other_pk, 32);
	memcpy(keys[1], vec_pk, 32);
	sealed = vector_sealed(&slen, &body, &blen);
	{
		struct manifest *m;

		assert_int_equal(manifest_open(sealed, slen, &t, &m, NULL), 0);
		manifest_free(m);
	}
	snprintf(want, sizeof(want), "signed by publisher %s, which is not trusted",
		 fcrypto_b64_encode(b64, vec_pk, 32));
	expect_open(sealed, slen, &none, FERRY_EUNTRUSTED, want);
	expect_open(sealed, slen, &only_other, FERRY_EUNTRUSTED, want);
	expect_open(sealed, slen, NULL, FERRY_EUNTRUSTED, want);

	/* a flipped bit in the signature */
	siglen_off = slen - 1;
	sealed[siglen_off] ^= 0x01;
	expect_open(sealed, slen, &t, FERRY_EBADSIG, "signature by publisher");
	sealed[siglen_off] ^= 0x01;

	/* the right key over the bare body: the domain separation makes it fail */
	fcrypto_sign(sig, body, blen, vec_sk);
	assert_int_equal(manifest_seal(body, blen, sig, &s2, &s2len), 0);
	expect_open(s2, s2len, &t, FERRY_EBADSIG, NULL);
	free(s2);

	/* another key signing a manifest that names the trusted publisher */
	msg = xmalloc(18 + blen);
	memcpy(msg, "ferry-manifest-v1", 18);
	memcpy(msg + 18, body, blen);
	fcrypto_sign(sig, msg, 18 + blen, other_sk);
	assert_int_equal(manifest_seal(body, blen, sig, &s2, &s2len), 0);
	expect_open(s2, s2len, &t, FERRY_EBADSIG, NULL);
	free(s2);
	/* ...and the vector key over the same message verifies (the context is as documented) */
	fcrypto_sign(sig, msg, 18 + blen, vec_sk);
	assert_int_equal(manifest_seal(body, blen, sig, &s2, &s2len), 0);
	assert_int_equal(s2len, slen);
	assert_memory_equal(s2, sealed, slen);
	free(s2);
	free(msg);

	/* manifest_sign refuses a key that is not the body's publisher */
	assert_int_equal(manifest_sign(body, blen, other_sk, sig), FERRY_EINVAL);
	expect_msg(FERRY_EINVAL, "manifest names publisher");
	free(body);
	free(sealed);
}

/* Any flipped byte and any truncation of a signed manifest is refused. */
static void test_tampering(void **state)
{
	struct trust t = {1, &vec_pk};
	uint8_t *sealed;
	size_t slen, i;

	sealed = vector_sealed(&slen, NULL, NULL);
	for (i = 0; i < slen; i++) {
		static const uint8_t flips[] = {0x01, 0x80, 0xff};
		size_t f;

		for (f = 0; f < sizeof(flips); f++) {
			struct manifest *m = NULL;

			sealed[i] ^= flips[f];
			if (manifest_open(sealed, slen, &t, &m, NULL) == 0)
				fail_msg("byte %zu ^ 0x%02x accepted", i, flips[f]);
			assert_null(m);
			sealed[i] ^= flips[f];
		}
	}
	for (i = 0; i < slen; i++) {
		uint8_t *q = xmalloc(i ? i : 1);

		memcpy(q, sealed, i);
		expect_open(q, i, &t, FERRY_EFORMAT, NULL);
		free(q);
	}
	free(sealed);
}

static void test_envelope(void **state)
{
	struct trust t = {1, &vec_pk};
	uint8_t *sealed, *body, *bad, *b2;
	size_t slen, blen, n;
	struct body_opts o;
	struct manifest *m;

	sealed = vector_sealed(&slen, &body, &blen);
	bad = xmalloc(slen + 16);

	/* array16 instead of fixarray: same content, not the shortest encoding */
	bad[0] = 0xdc;
	bad[1] = 0;
	bad[2] = 3;
	memcpy(bad + 3, sealed + 1, slen - 1);
	expect_open(bad, slen + 2, &t, FERRY_EFORMAT, "the shortest encoding is");
	/* a trailing byte */
	memcpy(bad, sealed, slen);
	bad[slen] = 0xc0;
	expect_open(bad, slen + 1, &t, FERRY_EFORMAT, "1 bytes left over");
	/* four elements */
	bad[0] = 0x94;
	expect_open(bad, slen + 1, &t, FERRY_EFORMAT, "4 elements, not 3");
	/* another tag */
	memcpy(bad, sealed, slen);
	bad[2] = 'F';
	expect_open(bad, slen, &t, FERRY_EFORMAT, "tag 'Ferry-manifest'");
	/* not an array at all */
	expect_open(body, blen, &t, FERRY_EFORMAT, "signed manifest: msgpack: expected array");
	free(bad);
	free(sealed);
	free(body);

	/* no publisher: a format-1 body is malformed, a newer one is just newer */
	m = vector_manifest();
	o = (struct body_opts){.no_publisher = true};
	body = raw_body(m, &o, &blen);
	assert_int_equal(manifest_seal(body, blen, (uint8_t[64]){0}, &b2, &n), 0);
	expect_open(b2, n, &t, FERRY_EFORMAT, "key 'publisher' is missing");
	free(b2);
	free(body);
	o.format = 7;
	body = raw_body(m, &o, &blen);
	assert_int_equal(manifest_seal(body, blen, (uint8_t[64]){0}, &b2, &n), 0);
	expect_open(b2, n, &t, FERRY_EVERSION, "format 7");
	free(b2);
	free(body);
	manifest_free(m);
}

static void test_total_size(void **state)
{
	struct manifest *m = vector_manifest();

	m->files[0].size = UINT64_MAX - 5;
	assert_true(manifest_total_size(m) == UINT64_MAX);
	m->nfiles = 0;
	assert_true(manifest_total_size(m) == 0);
	m->nfiles = 4;
	manifest_free(m);
	manifest_free(NULL);
}

static int setup(void **state)
{
	size_t n;
	uint8_t *sk;

	if (fcrypto_init() != 0)
		return -1;
	sk = vector_get("sk", &n);
	if (n != FERRY_SK_LEN)
		return -1;
	memcpy(vec_sk, sk, n);
	free(sk);
	fcrypto_sk_to_pk(vec_pk, vec_sk);
	fcrypto_sign_keypair(other_pk, other_sk);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_vector),
	    cmocka_unit_test(test_round_trip),
	    cmocka_unit_test(test_unknown_keys_skipped),
	    cmocka_unit_test(test_rejections),
	    cmocka_unit_test(test_bad_paths),
	    cmocka_unit_test(test_names),
	    cmocka_unit_test(test_mode_masked),
	    cmocka_unit_test(test_limits),
	    cmocka_unit_test(test_trust_and_signature),
	    cmocka_unit_test(test_tampering),
	    cmocka_unit_test(test_envelope),
	    cmocka_unit_test(test_total_size),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
