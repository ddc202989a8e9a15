/*
 * Unit tests for the catalog: real signed manifests (fcrypto keys,
 * manifest_encode, manifest_sign, manifest_seal) accepted into a real store
 * in a temporary directory, with real index pieces and chunks for presence
 * and gc.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ferry/catalog.h"
#include "ferry/codec.h"
#include "ferry/error.h"
#include "ferry/fcrypto.h"
#include "ferry/index.h"
#include "ferry/manifest.h"
#include "ferry/store.h"
#include "ferry/util.h"

struct fx {
	char *tmp;
	char *dir;
	struct store *st;
	uint8_t pk[FERRY_PK_LEN], sk[FERRY_SK_LEN];   /* the trusted publisher */
	uint8_t opk[FERRY_PK_LEN], osk[FERRY_SK_LEN]; /* someone else */
	uint8_t keys[1][32];
	struct trust trust;
	struct codec_ctx *cc;
};

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));
	const char *tmp = getenv("TMPDIR");

	if (fcrypto_init() != 0)
		return -1;
	f->tmp = xasprintf("%s/ferry-catalog-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (mkdtemp(f->tmp) == NULL)
		return -1;
	f->dir = xasprintf("%s/state", f->tmp);
	if (store_open(f->dir, STORE_CREATE, &f->st) != 0)
		return -1;
	fcrypto_sign_keypair(f->pk, f->sk);
	fcrypto_sign_keypair(f->opk, f->osk);
	memcpy(f->keys[0], f->pk, 32);
	f->trust.n = 1;
	f->trust.keys = f->keys;
	f->cc = codec_ctx_new();
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	store_close(f->st);
	codec_ctx_free(f->cc);
	nftw(f->tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(f->dir);
	free(f->tmp);
	free(f);
	return 0;
}

/* ---- chunks, index pieces and files ---- */

#define RAW_BASE 1000

/* Chunk `seed`: its raw bytes, id and CODEC_RAW encoding (*enc malloc'd). */
static void chunk_make(struct fx *f, uint32_t seed, struct chunk_ref *ref, uint8_t **enc)
{
	size_t n = RAW_BASE + seed % 97, len;
	uint8_t *raw = xmalloc(n);

	for (size_t i = 0; i < n; i++)
		raw[i] = (uint8_t)(seed * 2654435761u >> 11) ^ (uint8_t)(i * 31);
	fcrypto_id(ref->id, raw, n);
	*enc = xmalloc(codec_bound(n));
	assert_int_equal(codec_encode_as(f->cc, CODEC_RAW, raw, n, *enc, &len), 0);
	ref->raw_len = (uint32_t)n;
	ref->enc_len = (uint32_t)len;
	ref->codec = CODEC_RAW;
	free(raw);
}

static void put_encoded(struct fx *f, const uint8_t id[32], const uint8_t *enc, size_t len)
{
	struct store_wr *wr;

	assert_int_equal(store_wr_begin(f->st, &wr), 0);
	assert_int_equal(store_wr_chunk_put(wr, id, enc, len), 0);
	assert_int_equal(store_wr_commit(wr), 0);
}

/* Store chunk `seed`; returns its encoded length. */
static size_t put_chunk(struct fx *f, uint32_t seed)
{
	struct chunk_ref ref;
	uint8_t *enc;

	chunk_make(f, seed, &ref, &enc);
	put_encoded(f, ref.id, enc, ref.enc_len);
	free(enc);
	return ref.enc_len;
}

static bool has_chunk(struct fx *f, uint32_t seed)
{
	struct chunk_ref ref;
	struct store_rd *rd;
	uint8_t *enc;
	bool has;

	chunk_make(f, seed, &ref, &enc);
	free(enc);
	assert_int_equal(store_rd_begin(f->st, &rd), 0);
	has = store_chunk_has(rd, ref.id);
	store_rd_end(rd);
	return has;
}

static size_t enc_len_of(struct fx *f, uint32_t seed)
{
	struct chunk_ref ref;
	uint8_t *enc;

	chunk_make(f, seed, &ref, &enc);
	free(enc);
	return ref.enc_len;
}

/* A test file: its manifest entry and its index pieces. */
struct tfile {
	struct manifest_file mf;
	struct index_piece *pieces;
	size_t npieces;
};

static void file_make(struct fx *f, struct tfile *tf, const char *path, const uint32_t *seeds,
		      size_t n)
{
	struct chunk_ref *refs = xcalloc(n, sizeof(*refs));

	memset(tf, 0, sizeof(*tf));
	for (size_t i = 0; i < n; i++) {
		uint8_t *enc;

		chunk_make(f, seeds[i], &refs[i], &enc);
		free(enc);
		tf->mf.size += refs[i].raw_len;
	}
	assert_int_equal(index_encode(refs, n, &tf->pieces, &tf->npieces), 0);
	tf->mf.path = (char *)path;
	tf->mf.mode = 0644;
	tf->mf.npieces = (uint32_t)tf->npieces;
	tf->mf.pieces = xcalloc(tf->npieces ? tf->npieces : 1, 32);
	for (size_t i = 0; i < tf->npieces; i++)
		memcpy(tf->mf.pieces[i], tf->pieces[i].id, 32);
	free(refs);
}

static void file_free(struct tfile *tf)
{
	index_pieces_free(tf->pieces, tf->npieces);
	free(tf->mf.pieces);
}

/* Store a file's index pieces, CODEC_RAW-encoded like chunks. */
static void put_pieces(struct fx *f, const struct tfile *tf)
{
	for (size_t i = 0; i < tf->npieces; i++) {
		uint8_t *enc = xmalloc(codec_bound(tf->pieces[i].len));
		size_t len;

		assert_int_equal(codec_encode_as(f->cc, CODEC_RAW, tf->pieces[i].bytes,
						 tf->pieces[i].len, enc, &len),
				 0);
		put_encoded(f, tf->pieces[i].id, enc, len);
		free(enc);
	}
}

static bool has_id(struct fx *f, const uint8_t id[32])
{
	struct store_rd *rd;
	bool has;

	assert_int_equal(store_rd_begin(f->st, &rd), 0);
	has = store_chunk_has(rd, id);
	store_rd_end(rd);
	return has;
}

/* ---- signed manifests ---- */

/* A signed manifest of name@version, signed by sk (publisher pk). *len set; malloc'd. */
static uint8_t *signed_manifest(const uint8_t sk[FERRY_SK_LEN], const uint8_t pk[FERRY_PK_LEN],
				const char *name, uint64_t version, const char *label,
				struct tfile *files, uint32_t nfiles, size_t *len)
{
	struct manifest m = {
	    .format = MANIFEST_FORMAT,
	    .name = (char *)name,
	    .version = version,
	    .label = (char *)label,
	    .created = 1727222400,
	    .nfiles = nfiles,
	};
	struct manifest_file one = {.path = "weights.bin", .size = 5, .mode = 0644};
	uint8_t piece[1][32], sig[FERRY_SIG_LEN], *body, *out;
	size_t blen;

	memcpy(m.publisher, pk, FERRY_PK_LEN);
	if (nfiles == 0) {
		/* One file whose index piece is nowhere: enough for accepting. */
		memset(piece[0], 0x5a, 32);
		one.npieces = 1;
		one.pieces = piece;
		m.nfiles = 1;
		m.files = &one;
	} else {
		m.files = xcalloc(nfiles, sizeof(*m.files));
		for (uint32_t i = 0; i < nfiles; i++)
			m.files[i] = files[i].mf;
	}
	assert_int_equal(manifest_encode(&m, &body, &blen), 0);
	assert_int_equal(manifest_sign(body, blen, sk, sig), 0);
	assert_int_equal(manifest_seal(body, blen, sig, &out, len), 0);
	free(body);
	if (nfiles)
		free(m.files);
	return out;
}

/* A manifest that names the trusted publisher but is signed by the other key. */
static uint8_t *impostor(struct fx *f, size_t *len)
{
	struct manifest_file one = {.path = "weights.bin", .size = 5, .mode = 0644, .npieces = 1};
	struct manifest m = {
	    .format = MANIFEST_FORMAT,
	    .name = "llama",
	    .version = 1,
	    .label = "",
	    .nfiles = 1,
	    .files = &one,
	};
	uint8_t piece[1][32], sig[FERRY_SIG_LEN], *body, *out;
	size_t blen;

	memset(piece, 0x5a, sizeof(piece));
	one.pieces = piece;
	memcpy(m.publisher, f->pk, FERRY_PK_LEN);
	assert_int_equal(manifest_encode(&m, &body, &blen), 0);
	fcrypto_sign(sig, body, blen, f->osk);
	assert_int_equal(manifest_seal(body, blen, sig, &out, len), 0);
	free(body);
	return out;
}

static uint8_t *trusted(struct fx *f, const char *name, uint64_t version, const char *label,
			size_t *len)
{
	return signed_manifest(f->sk, f->pk, name, version, label, NULL, 0, len);
}

/* The stored bytes of name@version, or NULL; *len set. malloc'd. */
static uint8_t *stored(struct fx *f, const char *name, uint64_t version, size_t *len)
{
	struct store_rd *rd;
	const uint8_t *b;
	uint8_t *copy = NULL;

	assert_int_equal(store_rd_begin(f->st, &rd), 0);
	if (store_manifest_get(rd, name, version, &b, len) == 0) {
		copy = xmalloc(*len);
		memcpy(copy, b, *len);
	}
	store_rd_end(rd);
	return copy;
}

static uint64_t hwm_of(struct fx *f, const char *name)
{
	struct store_rd *rd;
	struct store_head h;

	assert_int_equal(store_rd_begin(f->st, &rd), 0);
	assert_int_equal(store_head_get(rd, name, &h), 0);
	store_rd_end(rd);
	return h.hwm;
}

static uint64_t manifests_stored(struct fx *f)
{
	struct store_stats s;

	assert_int_equal(store_stats(f->st, &s), 0);
	return s.manifests;
}

/* ---- tests ---- */

static void test_versions(void **state)
{
	struct fx *f = *state;
	struct manifest *m = NULL;
	uint8_t *v1, *v3, *v2, *got;
	size_t l1, l3, l2, lg;

	v1 = trusted(f, "llama", 1, "first", &l1);
	v3 = trusted(f, "llama", 3, "third", &l3);
	v2 = trusted(f, "llama", 2, "second", &l2);

	/* Above the (absent) mark: the newest, decoded for the caller. */
	assert_int_equal(catalog_accept(f->st, &f->trust, v1, l1, 0, &m), CATALOG_NEWEST);
	assert_non_null(m);
	assert_string_equal(m->name, "llama");
	assert_int_equal(m->version, 1);
	manifest_free(m);
	assert_int_equal(hwm_of(f, "llama"), 1);
	got = stored(f, "llama", 1, &lg);
	assert_non_null(got);
	assert_int_equal(lg, l1);
	assert_memory_equal(got, v1, l1);
	free(got);

	/* The same bytes again: nothing to do. */
	assert_int_equal(catalog_accept(f->st, &f->trust, v1, l1, 0, NULL), CATALOG_KNOWN);
	assert_int_equal(catalog_accept(f->st, &f->trust, v3, l3, 0, NULL), CATALOG_NEWEST);
	assert_int_equal(hwm_of(f, "llama"), 3);

	/* Below the mark: refused unless asked for, and then not the newest. */
	assert_int_equal(catalog_accept(f->st, &f->trust, v2, l2, 0, &m), FERRY_EOLDVERSION);
	assert_null(m);
	assert_string_equal(ferry_errmsg(FERRY_EOLDVERSION),
			    "model 'llama' version 2 is older than version 3 already accepted");
	assert_null(stored(f, "llama", 2, &lg));
	assert_int_equal(manifests_stored(f), 2);
	assert_int_equal(catalog_accept(f->st, &f->trust, v2, l2, CATALOG_EXPLICIT, NULL),
			 CATALOG_OLDER);
	got = stored(f, "llama", 2, &lg);
	assert_non_null(got);
	free(got);
	assert_int_equal(hwm_of(f, "llama"), 3);
	assert_int_equal(catalog_accept(f->st, &f->trust, v2, l2, 0, NULL), CATALOG_KNOWN);

	/* Marks are per name. */
	free(v1);
	v1 = trusted(f, "whisper", 1, "", &l1);
	assert_int_equal(catalog_accept(f->st, &f->trust, v1, l1, 0, NULL), CATALOG_NEWEST);
	assert_int_equal(hwm_of(f, "whisper"), 1);
	assert_int_equal(hwm_of(f, "llama"), 3);
	free(v1);
	free(v2);
	free(v3);
}

static void test_mark_persists(void **state)
{
	struct fx *f = *state;
	uint8_t *v5, *v4;
	size_t l5, l4;

	v5 = trusted(f, "llama", 5, "", &l5);
	v4 = trusted(f, "llama", 4, "", &l4);
	assert_int_equal(catalog_accept(f->st, &f->trust, v5, l5, 0, NULL), CATALOG_NEWEST);
	store_close(f->st);
	assert_int_equal(store_open(f->dir, STORE_WRITE, &f->st), 0);
	assert_int_equal(catalog_accept(f->st, &f->trust, v4, l4, 0, NULL), FERRY_EOLDVERSION);
	assert_non_null(strstr(ferry_errmsg(FERRY_EOLDVERSION), "older than version 5"));
	assert_int_equal(catalog_accept(f->st, &f->trust, v5, l5, 0, NULL), CATALOG_KNOWN);

	/* Even with the manifest gone, the mark holds. */
	{
		struct store_wr *wr;

		assert_int_equal(store_wr_begin(f->st, &wr), 0);
		assert_int_equal(store_wr_manifest_del(wr, "llama", 5), 0);
		assert_int_equal(store_wr_commit(wr), 0);
	}
	store_close(f->st);
	assert_int_equal(store_open(f->dir, STORE_WRITE, &f->st), 0);
	assert_int_equal(catalog_accept(f->st, &f->trust, v4, l4, 0, NULL), FERRY_EOLDVERSION);
	assert_int_equal(hwm_of(f, "llama"), 5);
	free(v4);
	free(v5);
}

/* Two different manifests of one version: every order ends with the lower hash. */
static void test_same_version(void **state)
{
	struct fx *f = *state;
	uint8_t *a, *b, *lo, *hi, *got, ha[32], hb[32];
	size_t la, lb, llo, lhi, lg;
	const char *names[2] = {"high-first", "low-first"};

	for (int order = 0; order < 2; order++) {
		const char *name = names[order];

		a = trusted(f, name, 7, "build A", &la);
		b = trusted(f, name, 7, "build B", &lb);
		fcrypto_id(ha, a, la);
		fcrypto_id(hb, b, lb);
		if (memcmp(ha, hb, 32) < 0) {
			lo = a, llo = la, hi = b, lhi = lb;
		} else {
			lo = b, llo = lb, hi = a, lhi = la;
		}
		if (order == 0) {
			assert_int_equal(catalog_accept(f->st, &f->trust, hi, lhi, 0, NULL),
					 CATALOG_NEWEST);
			assert_int_equal(catalog_accept(f->st, &f->trust, lo, llo, 0, NULL),
					 CATALOG_REPLACED);
		} else {
			assert_int_equal(catalog_accept(f->st, &f->trust, lo, llo, 0, NULL),
					 CATALOG_NEWEST);
		}
		assert_int_equal(catalog_accept(f->st, &f->trust, hi, lhi, 0, NULL),
				 FERRY_EOLDVERSION);
		assert_non_null(strstr(ferry_errmsg(FERRY_EOLDVERSION),
				       "another manifest of this version is already accepted"));
		/* Explicitly asking does not bring back the loser either. */
		assert_int_equal(catalog_accept(f->st, &f->trust, hi, lhi, CATALOG_EXPLICIT, NULL),
				 FERRY_EOLDVERSION);
		got = stored(f, name, 7, &lg);
		assert_non_null(got);
		assert_int_equal(lg, llo);
		assert_memory_equal(got, lo, llo);
		assert_int_equal(hwm_of(f, name), 7);
		free(got);
		free(a);
		free(b);
	}
	assert_int_equal(manifests_stored(f), 2);
}

/* Below the mark, two manifests of an old version still resolve by hash. */
static void test_same_old_version(void **state)
{
	struct fx *f = *state;
	uint8_t *top, *a, *b, *lo, *hi, ha[32], hb[32];
	size_t lt, la, lb, llo, lhi;

	top = trusted(f, "m", 9, "", &lt);
	a = trusted(f, "m", 2, "A", &la);
	b = trusted(f, "m", 2, "B", &lb);
	fcrypto_id(ha, a, la);
	fcrypto_id(hb, b, lb);
	if (memcmp(ha, hb, 32) < 0) {
		lo = a, llo = la, hi = b, lhi = lb;
	} else {
		lo = b, llo = lb, hi = a, lhi = la;
	}
	assert_int_equal(catalog_accept(f->st, &f->trust, top, lt, 0, NULL), CATALOG_NEWEST);
	assert_int_equal(catalog_accept(f->st, &f->trust, hi, lhi, CATALOG_EXPLICIT, NULL),
			 CATALOG_OLDER);
	/* Replacing an old version is stored but, being old, not forwarded. */
	assert_int_equal(catalog_accept(f->st, &f->trust, lo, llo, 0, NULL), FERRY_EOLDVERSION);
	assert_int_equal(catalog_accept(f->st, &f->trust, lo, llo, CATALOG_EXPLICIT, NULL),
			 CATALOG_OLDER);
	assert_int_equal(catalog_accept(f->st, &f->trust, hi, lhi, CATALOG_EXPLICIT, NULL),
			 FERRY_EOLDVERSION);
	assert_int_equal(hwm_of(f, "m"), 9);
	free(top);
	free(a);
	free(b);
}

static void test_untrusted_and_forged(void **state)
{
	struct fx *f = *state;
	struct manifest *m = (struct manifest *)1;
	uint8_t *other, *forged, *sig_forged, *ok;
	size_t lo, lf, ls, lok, lg;
	struct store_stats s;
	struct trust none = {0};

	/* Signed by a key nobody trusts. */
	other = signed_manifest(f->osk, f->opk, "llama", 1, "", NULL, 0, &lo);
	assert_int_equal(catalog_accept(f->st, &f->trust, other, lo, 0, &m), FERRY_EUNTRUSTED);
	assert_null(m);
	/* Naming the trusted publisher, signed with another key. */
	forged = impostor(f, &lf);
	assert_int_equal(catalog_accept(f->st, &f->trust, forged, lf, 0, NULL), FERRY_EBADSIG);
	free(forged);

	/* A trusted manifest with its body or signature altered. */
	ok = trusted(f, "llama", 1, "genuine label", &lok);
	forged = xmalloc(lok);
	memcpy(forged, ok, lok);
	{
		/* The label's text sits inside the signed body. */
		uint8_t *p = memmem(forged, lok, "genuine", 7);

		assert_non_null(p);
		p[0] = 'G';
	}
	sig_forged = xmalloc(lok);
	memcpy(sig_forged, ok, lok);
	sig_forged[lok - 1] ^= 0x01;
	ls = lok;
	assert_int_equal(catalog_accept(f->st, &f->trust, forged, lok, 0, NULL), FERRY_EBADSIG);
	assert_int_equal(catalog_accept(f->st, &f->trust, sig_forged, ls, 0, NULL), FERRY_EBADSIG);
	/* Not a manifest at all. */
	assert_true(catalog_accept(f->st, &f->trust, (const uint8_t *)"junk", 4, 0, NULL) < 0);
	/* Nobody trusted: the genuine one is refused too. */
	assert_int_equal(catalog_accept(f->st, &none, ok, lok, 0, NULL), FERRY_EUNTRUSTED);

	/* None of it reached the store, and the mark did not move. */
	assert_int_equal(store_stats(f->st, &s), 0);
	assert_int_equal(s.manifests, 0);
	assert_null(stored(f, "llama", 1, &lg));
	assert_int_equal(hwm_of(f, "llama"), 0);

	/* The genuine one is still accepted afterwards. */
	assert_int_equal(catalog_accept(f->st, &f->trust, ok, lok, 0, NULL), CATALOG_NEWEST);
	free(other);
	free(forged);
	free(sig_forged);
	free(ok);
}

static void test_read_only_store(void **state)
{
	struct fx *f = *state;
	struct store *ro;
	uint8_t *v;
	size_t l;

	v = trusted(f, "llama", 1, "", &l);
	/* One environment per process at a time (LMDB's rule). */
	store_close(f->st);
	assert_int_equal(store_open(f->dir, 0, &ro), 0);
	assert_int_equal(catalog_accept(ro, &f->trust, v, l, 0, NULL), FERRY_EPERM);
	store_close(ro);
	assert_int_equal(store_open(f->dir, STORE_WRITE, &f->st), 0);
	assert_int_equal(hwm_of(f, "llama"), 0);
	assert_int_equal(manifests_stored(f), 0);
	free(v);
}

static void test_load(void **state)
{
	struct fx *f = *state;
	struct manifest *m;
	struct trust none = {0};
	uint8_t *v;
	size_t l;
	uint64_t versions[] = {2, 10, 4};

	for (size_t i = 0; i < ARRAY_SIZE(versions); i++) {
		v = trusted(f, "llama", versions[i], "", &l);
		assert_true(catalog_accept(f->st, &f->trust, v, l, CATALOG_EXPLICIT, NULL) > 0);
		free(v);
	}
	v = trusted(f, "llama-mini", 99, "", &l);
	assert_int_equal(catalog_accept(f->st, &f->trust, v, l, 0, NULL), CATALOG_NEWEST);
	free(v);

	assert_int_equal(catalog_load(f->st, &f->trust, "llama", 0, &m), 0);
	assert_int_equal(m->version, 10);
	manifest_free(m);
	assert_int_equal(catalog_load(f->st, &f->trust, "llama", 4, &m), 0);
	assert_int_equal(m->version, 4);
	assert_string_equal(m->name, "llama");
	manifest_free(m);

	assert_int_equal(catalog_load(f->st, &f->trust, "llama", 7, &m), FERRY_ENOENT);
	assert_null(m);
	assert_string_equal(ferry_errmsg(FERRY_ENOENT), "model 'llama' has no version 7");
	assert_int_equal(catalog_load(f->st, &f->trust, "gpt", 0, &m), FERRY_ENOENT);
	assert_string_equal(ferry_errmsg(FERRY_ENOENT), "no model 'gpt'");
	assert_int_equal(catalog_load(f->st, &f->trust, "gpt", 3, &m), FERRY_ENOENT);
	assert_int_equal(catalog_load(f->st, &f->trust, "Not A Name", 0, &m), FERRY_EINVAL);
	/* Stored manifests are checked again: a publisher no longer trusted is refused. */
	assert_int_equal(catalog_load(f->st, &none, "llama", 0, &m), FERRY_EUNTRUSTED);
	assert_null(m);
}

static void test_parse_ref(void **state)
{
	char name[MANIFEST_NAME_MAX + 1], small[4];
	uint64_t v;

	assert_int_equal(catalog_parse_ref("llama-3.2", name, sizeof(name), &v), 0);
	assert_string_equal(name, "llama-3.2");
	assert_int_equal(v, 0);
	assert_int_equal(catalog_parse_ref("llama@12", name, sizeof(name), &v), 0);
	assert_string_equal(name, "llama");
	assert_int_equal(v, 12);
	assert_int_equal(catalog_parse_ref("m@18446744073709551615", name, sizeof(name), &v), 0);
	assert_true(v == UINT64_MAX);

	assert_int_equal(catalog_parse_ref("m@18446744073709551616", name, sizeof(name), &v),
			 FERRY_EINVAL);
	assert_non_null(strstr(ferry_errmsg(FERRY_EINVAL), "too large"));
	assert_int_equal(catalog_parse_ref("llama@", name, sizeof(name), &v), FERRY_EINVAL);
	assert_int_equal(catalog_parse_ref("llama@x1", name, sizeof(name), &v), FERRY_EINVAL);
	assert_non_null(strstr(ferry_errmsg(FERRY_EINVAL), "'x1' is not a number"));
	assert_int_equal(catalog_parse_ref("llama@-1", name, sizeof(name), &v), FERRY_EINVAL);
	assert_int_equal(catalog_parse_ref("llama@0", name, sizeof(name), &v), FERRY_EINVAL);
	assert_int_equal(catalog_parse_ref("llama@1@2", name, sizeof(name), &v), FERRY_EINVAL);
	assert_int_equal(catalog_parse_ref("@3", name, sizeof(name), &v), FERRY_EINVAL);
	assert_int_equal(catalog_parse_ref("", name, sizeof(name), &v), FERRY_EINVAL);
	assert_int_equal(catalog_parse_ref("Llama", name, sizeof(name), &v), FERRY_EINVAL);
	assert_non_null(strstr(ferry_errmsg(FERRY_EINVAL), "'Llama' is not a model name"));
	assert_int_equal(catalog_parse_ref("../x@1", name, sizeof(name), &v), FERRY_EINVAL);
	assert_int_equal(catalog_parse_ref("llama", small, sizeof(small), &v), FERRY_EINVAL);
	assert_int_equal(catalog_parse_ref("abc@5", small, sizeof(small), &v), 0);
	assert_string_equal(small, "abc");
}

static void test_presence(void **state)
{
	struct fx *f = *state;
	static const uint32_t s1[] = {1, 2, 3, 2}; /* chunk 2 twice */
	static const uint32_t s2[] = {4, 5};
	struct tfile files[3];
	struct catalog_presence p;
	struct store_rd *rd;
	struct manifest *m;
	uint8_t *v;
	size_t l, need1 = 0;

	file_make(f, &files[0], "a.bin", s1, ARRAY_SIZE(s1));
	file_make(f, &files[1], "b.bin", s2, ARRAY_SIZE(s2));
	file_make(f, &files[2], "empty", NULL, 0);
	v = signed_manifest(f->sk, f->pk, "llama", 1, "", files, 3, &l);
	assert_int_equal(catalog_accept(f->st, &f->trust, v, l, 0, &m), CATALOG_NEWEST);
	for (uint32_t s = 1; s <= 3; s++)
		need1 += enc_len_of(f, s);

	/* No index piece stored yet: nothing known. */
	assert_int_equal(store_rd_begin(f->st, &rd), 0);
	assert_int_equal(catalog_presence(rd, m, &p), 0);
	store_rd_end(rd);
	assert_false(p.index_complete);
	assert_int_equal(p.need_chunks, 0);
	assert_int_equal(p.need_bytes, 0);

	/* The first file's index and one of its chunks. */
	put_pieces(f, &files[0]);
	put_chunk(f, 2);
	assert_int_equal(store_rd_begin(f->st, &rd), 0);
	assert_int_equal(catalog_presence(rd, m, &p), 0);
	store_rd_end(rd);
	assert_false(p.index_complete);
	assert_int_equal(p.need_chunks, 3);
	assert_int_equal(p.need_bytes, need1);
	assert_int_equal(p.have_chunks, 1);
	assert_int_equal(p.have_bytes, enc_len_of(f, 2));

	/* Everything. */
	put_pieces(f, &files[1]);
	for (uint32_t s = 1; s <= 5; s++)
		put_chunk(f, s);
	assert_int_equal(store_rd_begin(f->st, &rd), 0);
	assert_int_equal(catalog_presence(rd, m, &p), 0);
	store_rd_end(rd);
	assert_true(p.index_complete);
	assert_int_equal(p.need_chunks, 5);
	assert_int_equal(p.have_chunks, 5);
	assert_int_equal(p.have_bytes, p.need_bytes);
	assert_int_equal(p.need_bytes, need1 + enc_len_of(f, 4) + enc_len_of(f, 5));

	manifest_free(m);
	free(v);
	for (int i = 0; i < 3; i++)
		file_free(&files[i]);
}

/* An index piece stored under another codec is reported, not misread. */
static void test_presence_bad_piece(void **state)
{
	struct fx *f = *state;
	static const uint32_t s1[] = {1};
	struct tfile tf;
	struct catalog_presence p;
	struct store_rd *rd;
	struct manifest *m;
	uint8_t *v, *enc;
	size_t l;

	file_make(f, &tf, "a.bin", s1, 1);
	v = signed_manifest(f->sk, f->pk, "llama", 1, "", &tf, 1, &l);
	assert_int_equal(catalog_accept(f->st, &f->trust, v, l, 0, &m), CATALOG_NEWEST);
	enc = xmalloc(tf.pieces[0].len + 5);
	memcpy(enc + 5, tf.pieces[0].bytes, tf.pieces[0].len);
	enc[0] = CODEC_ZSTD;
	enc[1] = (uint8_t)tf.pieces[0].len;
	enc[2] = (uint8_t)(tf.pieces[0].len >> 8);
	enc[3] = enc[4] = 0;
	put_encoded(f, tf.pieces[0].id, enc, tf.pieces[0].len + 5);
	assert_int_equal(store_rd_begin(f->st, &rd), 0);
	assert_int_equal(catalog_presence(rd, m, &p), FERRY_EFORMAT);
	assert_non_null(strstr(ferry_errmsg(FERRY_EFORMAT), "not raw"));
	store_rd_end(rd);
	manifest_free(m);
	free(enc);
	free(v);
	file_free(&tf);
}

static void test_gc(void **state)
{
	struct fx *f = *state;
	static const uint32_t sa[] = {1, 2, 3, 3};
	static const uint32_t sb[] = {3, 4};
	struct tfile fa, fb;
	struct store_stats s;
	struct store_wr *wr;
	uint8_t *va, *vb;
	size_t la, lb, orphan_bytes;
	uint64_t n, bytes;

	file_make(f, &fa, "a.bin", sa, ARRAY_SIZE(sa));
	file_make(f, &fb, "b.bin", sb, ARRAY_SIZE(sb));
	va = signed_manifest(f->sk, f->pk, "alpha", 1, "", &fa, 1, &la);
	vb = signed_manifest(f->sk, f->pk, "beta", 1, "", &fb, 1, &lb);
	assert_int_equal(catalog_accept(f->st, &f->trust, va, la, 0, NULL), CATALOG_NEWEST);
	assert_int_equal(catalog_accept(f->st, &f->trust, vb, lb, 0, NULL), CATALOG_NEWEST);
	put_pieces(f, &fa);
	put_pieces(f, &fb);
	for (uint32_t i = 1; i <= 4; i++)
		put_chunk(f, i);
	orphan_bytes = put_chunk(f, 100) + put_chunk(f, 101);

	/* Only the two orphans go. */
	assert_int_equal(catalog_gc(f->st, &n, &bytes), 0);
	assert_int_equal(n, 2);
	assert_int_equal(bytes, orphan_bytes);
	assert_false(has_chunk(f, 100));
	assert_false(has_chunk(f, 101));
	for (uint32_t i = 1; i <= 4; i++)
		assert_true(has_chunk(f, i));
	assert_true(has_id(f, fa.pieces[0].id));
	assert_true(has_id(f, fb.pieces[0].id));
	assert_int_equal(store_stats(f->st, &s), 0);
	assert_int_equal(s.chunks, 6);

	/* Nothing more to drop. */
	assert_int_equal(catalog_gc(f->st, &n, &bytes), 0);
	assert_int_equal(n, 0);
	assert_int_equal(bytes, 0);

	/* alpha goes: its own chunks and piece follow; the shared chunk stays. */
	assert_int_equal(store_wr_begin(f->st, &wr), 0);
	assert_int_equal(store_wr_manifest_del(wr, "alpha", 1), 0);
	assert_int_equal(store_wr_commit(wr), 0);
	assert_int_equal(catalog_gc(f->st, &n, &bytes), 0);
	assert_int_equal(n, 3);
	assert_false(has_chunk(f, 1));
	assert_false(has_chunk(f, 2));
	assert_false(has_id(f, fa.pieces[0].id));
	assert_true(has_chunk(f, 3));
	assert_true(has_chunk(f, 4));
	assert_true(has_id(f, fb.pieces[0].id));

	/* A manifest gc cannot read stops it before it deletes anything. */
	put_chunk(f, 200);
	assert_int_equal(store_wr_begin(f->st, &wr), 0);
	assert_int_equal(store_wr_manifest_put(wr, "gamma", 1, (const uint8_t *)"\x93junk", 5), 0);
	assert_int_equal(store_wr_commit(wr), 0);
	assert_int_equal(catalog_gc(f->st, &n, &bytes), FERRY_EFORMAT);
	assert_non_null(strstr(ferry_errmsg(FERRY_EFORMAT), "model 'gamma' version 1"));
	assert_int_equal(n, 0);
	assert_true(has_chunk(f, 200));

	free(va);
	free(vb);
	file_free(&fa);
	file_free(&fb);
}

/* gc keeps what an untrusted-now or never-trusted stored manifest references. */
static void test_gc_without_trust(void **state)
{
	struct fx *f = *state;
	static const uint32_t sa[] = {7};
	struct tfile fa;
	struct store_wr *wr;
	uint8_t *v;
	size_t l;
	uint64_t n, bytes;

	file_make(f, &fa, "a.bin", sa, 1);
	v = signed_manifest(f->osk, f->opk, "other", 1, "", &fa, 1, &l);
	assert_int_equal(store_wr_begin(f->st, &wr), 0);
	assert_int_equal(store_wr_manifest_put(wr, "other", 1, v, l), 0);
	assert_int_equal(store_wr_commit(wr), 0);
	put_pieces(f, &fa);
	put_chunk(f, 7);
	put_chunk(f, 8);
	assert_int_equal(catalog_gc(f->st, &n, &bytes), 0);
	assert_int_equal(n, 1);
	assert_true(has_chunk(f, 7));
	assert_false(has_chunk(f, 8));
	free(v);
	file_free(&fa);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_versions),
	    T(test_mark_persists),
	    T(test_same_version),
	    T(test_same_old_version),
	    T(test_untrusted_and_forged),
	    T(test_read_only_store),
	    T(test_load),
	    cmocka_unit_test(test_parse_ref),
	    T(test_presence),
	    T(test_presence_bad_piece),
	    T(test_gc),
	    T(test_gc_without_trust),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
