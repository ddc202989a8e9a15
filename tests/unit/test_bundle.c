/*
 * Unit tests for bundles and have-files: real stores in a temporary
 * directory (an "hq" that publishes and a "clinic" that imports), real
 * signed manifests, chunks and index pieces, and a bundle directory that the
 * tests damage the way a hostile or failing drive would.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ferry/bundle.h"
#include "ferry/catalog.h"
#include "ferry/chunker.h"
#include "ferry/codec.h"
#include "ferry/error.h"
#include "ferry/fcrypto.h"
#include "ferry/have.h"
#include "ferry/index.h"
#include "ferry/manifest.h"
#include "ferry/store.h"
#include "ferry/util.h"

#define MIB    (1024u * 1024u)
#define NFILES 4

struct fx {
	char *tmp;
	struct store *hq, *clinic;
	int media; /* directory descriptor of the "drive" */
	char *media_path;
	uint8_t pk[FERRY_PK_LEN], sk[FERRY_SK_LEN];
	uint8_t keys[1][32];
	struct trust trust;
	struct codec_ctx *cc;
};

/* ---- model files: deterministic content per (seed, file) ---- */

static const char *const paths[NFILES] = {"weights/model.bin", "tokenizer.json", "empty",
					  "config.json"};

static size_t file_size(unsigned f)
{
	static const size_t sizes[NFILES] = {5 * MIB + 12345, 1536 * 1024, 0, 70001};

	return sizes[f];
}

/* File f of a version made with seed: random bytes (stored raw) or repeated text (zstd). */
static uint8_t *file_bytes(unsigned seed, unsigned f)
{
	size_t n = file_size(f);
	uint8_t *p = xmalloc(n ? n : 1);
	uint64_t x = 0x9e3779b97f4a7c15ull * (seed + 1) + f;

	for (size_t i = 0; i < n; i++) {
		if (f == 1) {
			p[i] = (uint8_t) "the quick brown fox jumps over the lazy dog "[i % 44];
			if (i % 4099 == 0)
				p[i] = (uint8_t)(seed + i);
			continue;
		}
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (uint8_t)x;
	}
	return p;
}

/* Store one file's chunks and pieces; fill mf. */
static void put_file(struct fx *f, struct store *st, const uint8_t *data, size_t n,
		     struct manifest_file *mf)
{
	struct chunk_ref *refs = NULL;
	struct index_piece *pieces = NULL;
	size_t nrefs = 0, npieces = 0;
	uint8_t *enc = xmalloc(codec_bound(INDEX_PIECE_MAX));
	struct store_wr *wr;

	assert_int_equal(store_wr_begin(st, &wr), 0);
	for (size_t off = 0; off < n;) {
		size_t len = chunker_cut(data + off, n - off), elen;

		refs = xreallocarray(refs, nrefs + 1, sizeof(*refs));
		fcrypto_id(refs[nrefs].id, data + off, len);
		assert_int_equal(codec_encode(f->cc, data + off, len, enc, &elen), 0);
		refs[nrefs].raw_len = (uint32_t)len;
		refs[nrefs].enc_len = (uint32_t)elen;
		refs[nrefs].codec = enc[0];
		assert_int_equal(store_wr_chunk_put(wr, refs[nrefs].id, enc, elen), 0);
		nrefs++;
		off += len;
	}
	assert_int_equal(index_encode(refs, nrefs, &pieces, &npieces), 0);
	mf->npieces = (uint32_t)npieces;
	mf->pieces = xreallocarray(NULL, npieces ? npieces : 1, 32);
	for (size_t i = 0; i < npieces; i++) {
		size_t elen;

		assert_int_equal(
		    codec_encode_as(f->cc, CODEC_RAW, pieces[i].bytes, pieces[i].len, enc, &elen),
		    0);
		assert_int_equal(store_wr_chunk_put(wr, pieces[i].id, enc, elen), 0);
		memcpy(mf->pieces[i], pieces[i].id, 32);
	}
	assert_int_equal(store_wr_commit(wr), 0);
	index_pieces_free(pieces, npieces);
	free(refs);
	free(enc);
}

/* Sign a version of name: files 0..NFILES-1 with content from seed (file 1 changes with seed). */
static void sign_version(struct fx *f, const uint8_t *sk, const char *name, uint64_t version,
			 unsigned seed, struct store *st, uint8_t **signed_out, size_t *slen)
{
	struct manifest m = {.format = MANIFEST_FORMAT, .version = version, .created = 1700000000};
	uint8_t *body, sig[64];
	size_t blen;

	m.name = (char *)name;
	m.label = (char *)"test";
	fcrypto_sk_to_pk(m.publisher, sk);
	m.nfiles = NFILES;
	m.files = xcalloc(NFILES, sizeof(*m.files));
	for (unsigned i = 0; i < NFILES; i++) {
		/* Only the tokenizer differs between seeds: the rest deduplicates. */
		uint8_t *data = file_bytes(i == 1 ? seed : 0, i);
		struct manifest_file *mf = &m.files[i];

		mf->path = (char *)paths[i];
		mf->size = file_size(i);
		mf->mode = 0644;
		{
			struct fcrypto_sha256 *h = fcrypto_sha256_new();

			fcrypto_sha256_update(h, data, mf->size);
			fcrypto_sha256_final(h, mf->sha256);
			fcrypto_sha256_free(h);
		}
		put_file(f, st, data, mf->size, mf);
		free(data);
	}
	assert_int_equal(manifest_encode(&m, &body, &blen), 0);
	assert_int_equal(manifest_sign(body, blen, sk, sig), 0);
	assert_int_equal(manifest_seal(body, blen, sig, signed_out, slen), 0);
	free(body);
	for (unsigned i = 0; i < NFILES; i++)
		free(m.files[i].pieces);
	free(m.files);
}

/* Publish name@version into st (trusted key). */
static void publish(struct fx *f, struct store *st, const char *name, uint64_t version,
		    unsigned seed)
{
	uint8_t *sealed;
	size_t len;

	sign_version(f, f->sk, name, version, seed, st, &sealed, &len);
	assert_true(catalog_accept(st, &f->trust, sealed, len, 0, NULL) > 0);
	free(sealed);
}

/* Rebuild file i of name@version from st's chunks and compare with what was published. */
static void check_file(struct fx *f, struct store *st, const char *name, uint64_t version,
		       unsigned seed, unsigned i)
{
	struct manifest *m = NULL;
	struct store_rd *rd;
	uint8_t *want = file_bytes(i == 1 ? seed : 0, i), *raw = xmalloc(CHUNK_MAX_SIZE);
	size_t off = 0;

	assert_int_equal(catalog_load(st, &f->trust, name, version, &m), 0);
	assert_int_equal(store_rd_begin(st, &rd), 0);
	for (uint32_t p = 0; p < m->files[i].npieces; p++) {
		const uint8_t *enc;
		size_t len, rlen, nrefs;
		struct chunk_ref *refs;

		assert_int_equal(store_chunk_get(rd, m->files[i].pieces[p], &enc, &len), 0);
		assert_int_equal(
		    index_decode(enc + CODEC_HDR_LEN, len - CODEC_HDR_LEN, &refs, &nrefs), 0);
		for (size_t k = 0; k < nrefs; k++) {
			assert_int_equal(store_chunk_get(rd, refs[k].id, &enc, &len), 0);
			assert_int_equal(codec_decode(f->cc, enc, len, raw, CHUNK_MAX_SIZE, &rlen),
					 0);
			assert_true(off + rlen <= file_size(i));
			assert_memory_equal(raw, want + off, rlen);
			off += rlen;
		}
		free(refs);
	}
	store_rd_end(rd);
	assert_int_equal(off, file_size(i));
	manifest_free(m);
	free(raw);
	free(want);
}

static void check_version(struct fx *f, struct store *st, const char *name, uint64_t version,
			  unsigned seed)
{
	for (unsigned i = 0; i < NFILES; i++)
		check_file(f, st, name, version, seed, i);
}

/* ---- fixture ---- */

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));
	const char *tmp = getenv("TMPDIR");
	char *p;

	if (fcrypto_init() != 0)
		return -1;
	f->tmp = xasprintf("%s/ferry-bundle-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (mkdtemp(f->tmp) == NULL)
		return -1;
	p = xasprintf("%s/hq", f->tmp);
	if (store_open(p, STORE_CREATE, &f->hq) != 0)
		return -1;
	free(p);
	p = xasprintf("%s/clinic", f->tmp);
	if (store_open(p, STORE_CREATE, &f->clinic) != 0)
		return -1;
	free(p);
	f->media_path = xasprintf("%s/media", f->tmp);
	mkdir(f->media_path, 0755);
	f->media = open(f->media_path, O_RDONLY | O_DIRECTORY);
	if (f->media < 0)
		return -1;
	fcrypto_sign_keypair(f->pk, f->sk);
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

	store_close(f->hq);
	store_close(f->clinic);
	close(f->media);
	codec_ctx_free(f->cc);
	nftw(f->tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(f->media_path);
	free(f->tmp);
	free(f);
	return 0;
}

/* ---- helpers on the bundle directory ---- */

static char *bpath(struct fx *f, const char *name)
{
	return xasprintf("%s/" BUNDLE_DIR "/%s", f->media_path, name);
}

static bool exists(struct fx *f, const char *name)
{
	char *p = bpath(f, name);
	struct stat sb;
	bool r = lstat(p, &sb) == 0;

	free(p);
	return r;
}

static struct stat stat_of(struct fx *f, const char *name)
{
	char *p = bpath(f, name);
	struct stat sb;

	assert_int_equal(stat(p, &sb), 0);
	free(p);
	return sb;
}

/* Read pack index name: entry count, and entry i's id/offset/len. */
static size_t idx_entries(struct fx *f, const char *name, uint8_t (**ids)[32], uint64_t **offs,
			  uint32_t **lens)
{
	char *p = bpath(f, name), *text = NULL;
	size_t len, n;

	assert_int_equal(read_file(p, 64 * MIB, &text, &len), 0);
	n = (len - 16) / 44;
	*ids = xreallocarray(NULL, n, 32);
	*offs = xreallocarray(NULL, n, sizeof(**offs));
	*lens = xreallocarray(NULL, n, sizeof(**lens));
	for (size_t i = 0; i < n; i++) {
		const uint8_t *q = (const uint8_t *)text + 16 + 44 * i;
		uint64_t o = 0;
		uint32_t l = 0;

		memcpy((*ids)[i], q, 32);
		for (int k = 7; k >= 0; k--)
			o = o << 8 | q[32 + k];
		for (int k = 3; k >= 0; k--)
			l = l << 8 | q[40 + k];
		(*offs)[i] = o;
		(*lens)[i] = l;
	}
	free(text);
	free(p);
	return n;
}

static void flip_byte(struct fx *f, const char *name, uint64_t off)
{
	char *p = bpath(f, name);
	int fd = open(p, O_RDWR);
	uint8_t b;

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &b, 1, (off_t)off), 1);
	b ^= 0x40;
	assert_int_equal(pwrite(fd, &b, 1, (off_t)off), 1);
	close(fd);
	free(p);
}

static void truncate_to(struct fx *f, const char *name, off_t size)
{
	char *p = bpath(f, name);

	assert_int_equal(truncate(p, size), 0);
	free(p);
}

static int create(struct fx *f, const struct bundle_ref *refs, size_t n, const struct have *h,
		  struct bundle_create_stats *s)
{
	struct bundle_create_opts o = {.pack_max = 2 * MIB};

	return bundle_create(f->hq, &f->trust, f->media, refs, n, h, &o, s);
}

static bool has_problem(const struct bundle_report *rep, const char *needle)
{
	for (size_t i = 0; i < rep->nproblems; i++)
		if (strstr(rep->problems[i].message, needle) != NULL)
			return true;
	return false;
}

static void print_problems(const struct bundle_report *rep)
{
	for (size_t i = 0; i < rep->nproblems; i++)
		print_message("problem: %s\n", rep->problems[i].message);
}

static uint64_t chunk_count(struct store *st)
{
	struct store_stats s;

	assert_int_equal(store_stats(st, &s), 0);
	return s.chunks;
}

static uint64_t manifest_count(struct store *st)
{
	struct store_stats s;

	assert_int_equal(store_stats(st, &s), 0);
	return s.manifests;
}

static const struct bundle_ref demo1 = {"demo", 1};
static const struct bundle_ref demo2 = {"demo", 2};

/* ---- tests ---- */

/* HQ writes a bundle; the clinic imports it and holds every byte of the version. */
static void test_roundtrip(void **state)
{
	struct fx *f = *state;
	struct bundle_create_stats s;
	struct bundle_report rep;
	DIR *d;
	struct dirent *de;

	publish(f, f->hq, "demo", 1, 1);
	assert_int_equal(create(f, &demo1, 1, NULL, &s), 0);
	assert_int_equal(s.manifests, 1);
	assert_true(s.packs >= 3); /* 6.5 MiB of files in packs of at most 2 MiB */
	assert_int_equal(s.packs_kept, 0);
	assert_int_equal(s.chunks, chunk_count(f->hq));
	assert_int_equal(s.skipped_chunks, 0);
	assert_int_equal(s.raw_bytes, 5 * MIB + 12345 + 1536 * 1024 + 70001);

	/* Names a FAT file system keeps as they are: short, lower case, no temporaries left. */
	{
		char *dir = xasprintf("%s/" BUNDLE_DIR, f->media_path);

		d = opendir(dir);
		assert_non_null(d);
		while ((de = readdir(d)) != NULL) {
			if (de->d_name[0] == '.')
				continue;
			assert_true(strlen(de->d_name) <= 20);
			assert_null(strstr(de->d_name, ".tmp"));
			for (const char *c = de->d_name; *c; c++)
				assert_true((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') ||
					    *c == '.' || *c == '-');
		}
		closedir(d);
		free(dir);
	}
	assert_true(exists(f, "bundle.rec"));
	assert_true(exists(f, "manifest-0001.fm"));
	assert_true(exists(f, "pack-0001.dat") && exists(f, "pack-0001.idx"));
	for (uint32_t i = 1; i <= s.packs; i++) {
		char name[32];

		snprintf(name, sizeof(name), "pack-%04u.dat", i);
		assert_true(stat_of(f, name).st_size <= 2 * MIB);
	}

	assert_int_equal(bundle_import(f->clinic, &f->trust, f->media, NULL, &rep), 0);
	print_problems(&rep);
	assert_int_equal(rep.nmanifests, 1);
	assert_int_equal(rep.manifests[0].outcome, CATALOG_NEWEST);
	assert_string_equal(rep.manifests[0].name, "demo");
	assert_int_equal(rep.manifests[0].version, 1);
	assert_true(rep.manifests[0].complete);
	assert_int_equal(rep.chunks_imported, s.chunks);
	assert_int_equal(rep.chunks_bad + rep.chunks_missing + rep.problems_total, 0);
	assert_false(rep.delta);
	bundle_report_free(&rep);
	check_version(f, f->clinic, "demo", 1, 1);
	assert_int_equal(chunk_count(f->clinic), chunk_count(f->hq));

	/* A second import finds everything there. */
	assert_int_equal(bundle_import(f->clinic, &f->trust, f->media, NULL, &rep), 0);
	assert_int_equal(rep.manifests[0].outcome, CATALOG_KNOWN);
	assert_int_equal(rep.chunks_imported, 0);
	assert_true(rep.chunks_present > 0);
	bundle_report_free(&rep);
}

/* A have-file from the clinic makes the next bundle carry only what it lacks. */
static void test_delta_have(void **state)
{
	struct fx *f = *state;
	struct bundle_create_stats s;
	struct bundle_report rep;
	struct have *h = NULL;
	char *hp = xasprintf("%s/clinic.have", f->tmp);
	size_t nv = 0, nc = 0;
	int fd;

	publish(f, f->hq, "demo", 1, 1);
	assert_int_equal(create(f, &demo1, 1, NULL, NULL), 0);
	assert_int_equal(bundle_import(f->clinic, &f->trust, f->media, NULL, &rep), 0);
	bundle_report_free(&rep);

	fd = open(hp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_int_equal(have_write(f->clinic, fd, &nv, &nc), 0);
	close(fd);
	assert_int_equal(nv, 1);
	assert_int_equal(nc, chunk_count(f->clinic));
	fd = open(hp, O_RDONLY);
	assert_int_equal(have_read(fd, &h), 0);
	close(fd);
	assert_int_equal(h->nversions, 1);
	assert_string_equal(h->versions[0].name, "demo");
	assert_int_equal(h->versions[0].version, 1);
	assert_int_equal(h->nchunks, nc);

	/* Version 2 changes the tokenizer only. */
	publish(f, f->hq, "demo", 2, 2);
	assert_int_equal(create(f, &demo2, 1, h, &s), 0);
	assert_true(s.skipped_chunks > 0);
	assert_true(s.skipped_bytes > 5 * MIB); /* the weights were not carried again */
	assert_true(s.bytes < 2 * MIB);
	assert_int_equal(s.packs, 1);
	assert_false(exists(f, "pack-0002.dat")); /* the first bundle's packs are gone */
	{
		uint8_t(*ids)[32];
		uint64_t *offs;
		uint32_t *lens;
		size_t n = idx_entries(f, "pack-0001.idx", &ids, &offs, &lens);
		struct store_rd *rd;

		assert_int_equal(n, s.chunks);
		assert_int_equal(store_rd_begin(f->clinic, &rd), 0);
		for (size_t i = 0; i < n; i++)
			assert_false(store_chunk_has(rd, ids[i]));
		store_rd_end(rd);
		free(ids);
		free(offs);
		free(lens);
	}
	assert_int_equal(bundle_import(f->clinic, &f->trust, f->media, NULL, &rep), 0);
	assert_int_equal(rep.manifests[0].outcome, CATALOG_NEWEST);
	assert_true(rep.manifests[0].complete);
	assert_int_equal(rep.chunks_imported, s.chunks);
	assert_int_equal(rep.chunks_missing, 0);
	assert_true(rep.delta);
	bundle_report_free(&rep);
	check_version(f, f->clinic, "demo", 2, 2);
	have_free(h);
	free(hp);
}

struct stopper {
	const char *file; /* stop in this file ... */
	uint64_t after;	  /* ... once this many bytes of all are done */
	void (*act)(struct fx *f);
	struct fx *f;
	bool fired;
};

static int stop_at(void *arg, const struct bundle_progress *p)
{
	struct stopper *s = arg;

	if (s->fired || p->file == NULL || strcmp(p->file, s->file) != 0 ||
	    p->bytes_done < s->after)
		return 0;
	s->fired = true;
	if (s->act == NULL)
		return 1;
	s->act(s->f);
	return 0;
}

/* An interrupted create is finished by the next run, which keeps the complete packs. */
static void test_resume(void **state)
{
	struct fx *f = *state;
	struct bundle_create_stats s, s2;
	struct stopper stop = {.file = "pack-0002.dat", .after = 2 * MIB + 1};
	struct bundle_create_opts o = {.pack_max = 2 * MIB, .progress = stop_at, .arg = &stop};
	struct bundle_report rep;
	struct stat before, after;
	char *p;
	int fd;

	publish(f, f->hq, "demo", 1, 1);
	assert_int_equal(bundle_create(f->hq, &f->trust, f->media, &demo1, 1, NULL, &o, &s),
			 FERRY_ECANCELED);
	assert_true(stop.fired);
	assert_false(exists(f, "bundle.rec"));
	assert_true(exists(f, "pack-0001.dat") && exists(f, "pack-0001.idx"));
	assert_true(exists(f, "pack-0002.tmp"));
	assert_false(exists(f, "pack-0002.idx"));

	/* Not usable yet, and the import says why. */
	assert_int_equal(bundle_import(f->clinic, &f->trust, f->media, NULL, &rep), FERRY_ENOENT);
	assert_non_null(strstr(ferry_errmsg(FERRY_ENOENT), "bundle.rec is missing"));
	bundle_report_free(&rep);
	assert_int_equal(manifest_count(f->clinic), 0);

	/* The last bytes written before the stop were torn: they are checked, not trusted. */
	p = bpath(f, "pack-0002.tmp");
	fd = open(p, O_WRONLY | O_APPEND);
	assert_int_equal(write(fd, "garbage", 7), 7);
	close(fd);
	free(p);
	flip_byte(f, "pack-0002.tmp", (uint64_t)stat_of(f, "pack-0002.tmp").st_size - 100);

	before = stat_of(f, "pack-0001.dat");
	o.progress = NULL;
	assert_int_equal(bundle_create(f->hq, &f->trust, f->media, &demo1, 1, NULL, &o, &s2), 0);
	after = stat_of(f, "pack-0001.dat");
	assert_int_equal(s2.packs_kept, 1);
	assert_int_equal(before.st_ino, after.st_ino);
	assert_int_equal(before.st_mtim.tv_sec, after.st_mtim.tv_sec);
	assert_int_equal(before.st_mtim.tv_nsec, after.st_mtim.tv_nsec);
	/* Pack 1 and most of pack 2 were not written again. */
	assert_true(s2.written_bytes < s2.bytes - 2 * MIB);
	assert_false(exists(f, "pack-0002.tmp"));

	assert_int_equal(bundle_import(f->clinic, &f->trust, f->media, NULL, &rep), 0);
	print_problems(&rep);
	assert_true(rep.manifests[0].complete);
	bundle_report_free(&rep);
	check_version(f, f->clinic, "demo", 1, 1);
}

/* Index of an entry of pack name whose chunk is stored raw (random data), or -1. */
static long raw_entry(struct fx *f, const char *name, uint64_t *off, uint32_t *len, uint8_t id[32])
{
	uint8_t(*ids)[32];
	uint64_t *offs;
	uint32_t *lens;
	size_t n = idx_entries(f, name, &ids, &offs, &lens);
	char *p = bpath(f, name);
	long found = -1;
	int fd;

	p[strlen(p) - 3] = '\0';
	{
		char *dat = xasprintf("%sdat", p);

		fd = open(dat, O_RDONLY);
		free(dat);
	}
	for (size_t i = 0; i < n && found < 0; i++) {
		uint8_t tag;

		assert_int_equal(pread(fd, &tag, 1, (off_t)offs[i]), 1);
		if (tag == CODEC_RAW && lens[i] > 64 * 1024) {
			found = (long)i;
			*off = offs[i];
			*len = lens[i];
			memcpy(id, ids[i], 32);
		}
	}
	close(fd);
	free(p);
	free(ids);
	free(offs);
	free(lens);
	return found;
}

/* One flipped byte in a pack: that chunk is refused by name, the rest imported. */
static void test_flipped_byte(void **state)
{
	struct fx *f = *state;
	struct bundle_create_stats s;
	struct bundle_report rep;
	uint64_t off = 0;
	uint32_t len = 0;
	uint8_t id[32];
	struct store_rd *rd;

	publish(f, f->hq, "demo", 1, 1);
	assert_int_equal(create(f, &demo1, 1, NULL, &s), 0);
	assert_true(raw_entry(f, "pack-0002.idx", &off, &len, id) >= 0);
	flip_byte(f, "pack-0002.dat", off + len / 2);

	assert_int_equal(bundle_import(f->clinic, &f->trust, f->media, NULL, &rep), FERRY_ECORRUPT);
	assert_int_equal(rep.chunks_bad, 1);
	assert_int_equal(rep.chunks_imported, s.chunks - 1);
	assert_int_equal(rep.nproblems, 1);
	assert_int_equal(rep.problems[0].code, FERRY_ECORRUPT);
	assert_string_equal(rep.problems[0].file, "pack-0002.dat");
	assert_int_equal(rep.problems[0].offset, off);
	assert_true(rep.problems[0].has_id);
	assert_memory_equal(rep.problems[0].id, id, 32);
	assert_true(has_problem(&rep, "do not match its id"));
	assert_true(has_problem(&rep, "weights/model.bin at offset"));
	assert_false(rep.manifests[0].complete);
	bundle_report_free(&rep);
	assert_int_equal(store_rd_begin(f->clinic, &rd), 0);
	assert_false(store_chunk_has(rd, id));
	store_rd_end(rd);
	assert_int_equal(chunk_count(f->clinic), s.chunks - 1);
}

/* A truncated pack: the chunks before the cut are imported, the rest named as lost. */
static void test_truncated_pack(void **state)
{
	struct fx *f = *state;
	struct bundle_create_stats s;
	struct bundle_report rep;

	publish(f, f->hq, "demo", 1, 1);
	assert_int_equal(create(f, &demo1, 1, NULL, &s), 0);
	truncate_to(f, "pack-0001.dat", 1 * MIB);
	assert_int_equal(bundle_import(f->clinic, &f->trust, f->media, NULL, &rep), FERRY_ECORRUPT);
	print_problems(&rep);
	assert_true(has_problem(&rep, "pack-0001.dat is 1048576 bytes but the bundle record says"));
	assert_true(has_problem(&rep, "the pack is truncated"));
	assert_true(has_problem(&rep, "is not in the bundle"));
	assert_true(rep.chunks_missing > 0);
	assert_true(rep.chunks_imported > 0);
	assert_int_equal(rep.chunks_bad, 0);
	assert_false(rep.manifests[0].complete);
	bundle_report_free(&rep);
}

/* Manifests that are not from a trusted publisher, or altered, are refused; their chunks skipped.
 */
static void test_forged_manifest(void **state)
{
	struct fx *f = *state;
	uint8_t opk[32], osk[64], *sealed;
	size_t len;
	struct bundle_report rep;
	char *p;
	int fd;

	publish(f, f->hq, "demo", 1, 1);
	assert_int_equal(create(f, &demo1, 1, NULL, NULL), 0);

	/* Someone else's key signs a manifest over the same chunks. */
	fcrypto_sign_keypair(opk, osk);
	sign_version(f, osk, "demo", 1, 1, f->hq, &sealed, &len);
	p = bpath(f, "manifest-0001.fm");
	fd = open(p, O_WRONLY | O_TRUNC);
	assert_int_equal(write_full(fd, sealed, len), 0);
	close(fd);
	assert_int_equal(bundle_import(f->clinic, &f->trust, f->media, NULL, &rep), FERRY_ECORRUPT);
	assert_int_equal(rep.manifests_refused, 1);
	assert_int_equal(rep.manifests[0].outcome, FERRY_EUNTRUSTED);
	assert_true(has_problem(&rep, "manifest-0001.fm: refused"));
	assert_int_equal(rep.chunks_imported, 0);
	assert_true(rep.chunks_unreferenced > 0);
	bundle_report_free(&rep);

	/* The trusted manifest with one byte of its body changed: the signature fails. */
	assert_int_equal(create(f, &demo1, 1, NULL, NULL), 0);
	flip_byte(f, "manifest-0001.fm", 40);
	assert_int_equal(bundle_import(f->clinic, &f->trust, f->media, NULL, &rep), FERRY_ECORRUPT);
	assert_true(rep.manifests[0].outcome < 0);
	assert_int_equal(rep.chunks_imported, 0);
	bundle_report_free(&rep);

	assert_int_equal(manifest_count(f->clinic), 0);
	assert_int_equal(chunk_count(f->clinic), 0);
	free(sealed);
	free(p);
}

/* An older signed version is stored (the operator carried it) but changes nothing active. */
static void test_older_version(void **state)
{
	struct fx *f = *state;
	struct bundle_report rep;
	struct store_head head = {0};
	struct store_wr *wr;
	struct store_rd *rd;

	publish(f, f->hq, "demo", 1, 1);
	publish(f, f->hq, "demo", 2, 2);
	assert_int_equal(create(f, &demo2, 1, NULL, NULL), 0);
	assert_int_equal(bundle_import(f->clinic, &f->trust, f->media, NULL, &rep), 0);
	bundle_report_free(&rep);
	assert_int_equal(store_rd_begin(f->clinic, &rd), 0);
	assert_int_equal(store_head_get(rd, "demo", &head), 0);
	store_rd_end(rd);
	head.active = 2;
	assert_int_equal(store_wr_begin(f->clinic, &wr), 0);
	assert_int_equal(store_wr_head_put(wr, "demo", &head), 0);
	assert_int_equal(store_wr_commit(wr), 0);

	assert_int_equal(create(f, &demo1, 1, NULL, NULL), 0);
	assert_int_equal(bundle_import(f->clinic, &f->trust, f->media, NULL, &rep), 0);
	assert_int_equal(rep.manifests[0].outcome, CATALOG_OLDER);
	assert_true(rep.manifests[0].complete);
	bundle_report_free(&rep);
	assert_int_equal(store_rd_begin(f->clinic, &rd), 0);
	assert_int_equal(store_head_get(rd, "demo", &head), 0);
	store_rd_end(rd);
	assert_int_equal(head.hwm, 2);
	assert_int_equal(head.active, 2);
	check_version(f, f->clinic, "demo", 1, 1);
}

/* Links, fifos and directories where files belong are refused without being followed. */
static void test_not_regular(void **state)
{
	struct fx *f = *state;
	struct bundle_report rep;
	char *p, *outside = xasprintf("%s/outside.dat", f->tmp), *cmd;

	publish(f, f->hq, "demo", 1, 1);
	assert_int_equal(create(f, &demo1, 1, NULL, NULL), 0);

	/* pack-0001.dat moved out of the bundle and linked back in. */
	p = bpath(f, "pack-0001.dat");
	assert_int_equal(rename(p, outside), 0);
	assert_int_equal(symlink(outside, p), 0);
	/* pack-0002.dat a fifo: opening it must not hang. */
	free(p);
	p = bpath(f, "pack-0002.dat");
	assert_int_equal(unlink(p), 0);
	assert_int_equal(mkfifo(p, 0644), 0);
	assert_int_equal(bundle_import(f->clinic, &f->trust, f->media, NULL, &rep), FERRY_ECORRUPT);
	print_problems(&rep);
	assert_true(has_problem(&rep, "pack-0001.dat is a symbolic link; a bundle holds none, so "
				      "it was not followed"));
	assert_true(has_problem(&rep, "pack-0002.dat is a fifo, not a regular file; refused"));
	assert_true(rep.chunks_missing > 0);
	bundle_report_free(&rep);
	free(p);

	/* The bundle directory itself a link to somewhere else. */
	cmd = xasprintf("mv %s/" BUNDLE_DIR " %s/elsewhere && ln -s %s/elsewhere %s/" BUNDLE_DIR,
			f->media_path, f->tmp, f->tmp, f->media_path);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(bundle_import(f->clinic, &f->trust, f->media, NULL, &rep), FERRY_ELOOP);
	assert_non_null(strstr(ferry_errmsg(FERRY_ELOOP), "symbolic link"));
	bundle_report_free(&rep);
	free(cmd);
	free(outside);
}

/* Sizes of terabytes, declared or sparse, are refused without reading or allocating. */
static void test_huge(void **state)
{
	struct fx *f = *state;
	struct bundle_report rep;
	char *p;

	publish(f, f->hq, "demo", 1, 1);
	assert_int_equal(create(f, &demo1, 1, NULL, NULL), 0);
	truncate_to(f, "pack-0002.dat", (off_t)1 << 40);
	truncate_to(f, "pack-0003.idx", (off_t)1 << 40);
	p = bpath(f, "manifest-0001.fm");
	assert_int_equal(bundle_import(f->clinic, &f->trust, f->media, NULL, &rep), FERRY_ECORRUPT);
	print_problems(&rep);
	assert_true(has_problem(&rep, "pack-0002.dat is 1.0 TiB, larger than such a file can be"));
	assert_true(has_problem(&rep, "pack-0003.idx is"));
	bundle_report_free(&rep);

	/* A pack index declaring 2^31 entries in a few bytes. */
	assert_int_equal(create(f, &demo1, 1, NULL, NULL), 0);
	flip_byte(f, "pack-0001.idx", 15);
	assert_int_equal(bundle_import(f->clinic, &f->trust, f->media, NULL, &rep), FERRY_ECORRUPT);
	assert_true(has_problem(&rep, "pack-0001.idx declares"));
	bundle_report_free(&rep);

	/* A manifest file of a terabyte. */
	assert_int_equal(create(f, &demo1, 1, NULL, NULL), 0);
	assert_int_equal(truncate(p, (off_t)1 << 40), 0);
	assert_int_equal(bundle_import(f->clinic, &f->trust, f->media, NULL, &rep), FERRY_ECORRUPT);
	assert_true(has_problem(&rep, "manifest-0001.fm is 1.0 TiB"));
	bundle_report_free(&rep);
	free(p);
}

/* A damaged pack index entry: that pack is refused, the others imported. */
static void test_damaged_index(void **state)
{
	struct fx *f = *state;
	struct bundle_report rep;

	publish(f, f->hq, "demo", 1, 1);
	assert_int_equal(create(f, &demo1, 1, NULL, NULL), 0);
	flip_byte(f, "pack-0002.idx", 16 + 44 + 33); /* the second entry's offset */
	assert_int_equal(bundle_import(f->clinic, &f->trust, f->media, NULL, &rep), FERRY_ECORRUPT);
	print_problems(&rep);
	assert_true(has_problem(&rep, "pack-0002.idx entry 1"));
	assert_true(rep.chunks_imported > 0);
	assert_true(rep.chunks_missing > 0);
	bundle_report_free(&rep);
}

static void vanish(struct fx *f)
{
	char *p = bpath(f, "pack-0003.dat");

	/* The pack being read is cut short, the next one disappears. */
	truncate_to(f, "pack-0002.dat", 4096);
	assert_int_equal(unlink(p), 0);
	free(p);
}

/* Files cut or deleted while the import reads them: what was verified stays. */
static void test_vanishing_files(void **state)
{
	struct fx *f = *state;
	struct stopper stop = {.file = "pack-0002.dat", .act = vanish, .f = f};
	struct bundle_import_opts o = {.progress = stop_at, .arg = &stop};
	struct bundle_report rep;
	uint64_t before;

	publish(f, f->hq, "demo", 1, 1);
	assert_int_equal(create(f, &demo1, 1, NULL, NULL), 0);
	assert_int_equal(bundle_import(f->clinic, &f->trust, f->media, &o, &rep), FERRY_ECORRUPT);
	assert_true(stop.fired);
	print_problems(&rep);
	assert_true(has_problem(&rep, "pack-0002.dat ends before chunk"));
	assert_true(has_problem(&rep, "pack-0003.dat is missing"));
	assert_true(rep.chunks_imported > 0);
	assert_int_equal(rep.chunks_bad, 0);
	before = chunk_count(f->clinic);
	assert_int_equal(before, rep.chunks_imported);
	bundle_report_free(&rep);

	/* The whole bundle again completes the version. */
	assert_int_equal(create(f, &demo1, 1, NULL, NULL), 0);
	assert_int_equal(bundle_import(f->clinic, &f->trust, f->media, NULL, &rep), 0);
	assert_true(rep.manifests[0].complete);
	assert_int_equal(before + rep.chunks_imported, chunk_count(f->hq));
	bundle_report_free(&rep);
	check_version(f, f->clinic, "demo", 1, 1);
}

/* Creating from a store that lacks a chunk names it and writes nothing. */
static void test_create_incomplete(void **state)
{
	struct fx *f = *state;
	struct manifest *m;
	struct store_rd *rd;
	struct store_wr *wr;
	const uint8_t *enc;
	size_t len, n;
	struct chunk_ref *refs;
	char hex[65];

	publish(f, f->hq, "demo", 1, 1);
	assert_int_equal(catalog_load(f->hq, &f->trust, "demo", 1, &m), 0);
	assert_int_equal(store_rd_begin(f->hq, &rd), 0);
	assert_int_equal(store_chunk_get(rd, m->files[3].pieces[0], &enc, &len), 0);
	assert_int_equal(index_decode(enc + 5, len - 5, &refs, &n), 0);
	store_rd_end(rd);
	assert_int_equal(store_wr_begin(f->hq, &wr), 0);
	assert_int_equal(store_wr_chunk_del(wr, refs[0].id), 0);
	assert_int_equal(store_wr_commit(wr), 0);
	assert_int_equal(create(f, &demo1, 1, NULL, NULL), FERRY_EINCOMPLETE);
	assert_non_null(strstr(ferry_errmsg(FERRY_EINCOMPLETE), hex_encode(hex, refs[0].id, 32)));
	assert_non_null(strstr(ferry_errmsg(FERRY_EINCOMPLETE), "config.json at offset 0"));
	assert_false(exists(f, "bundle.rec"));
	free(refs);
	manifest_free(m);
}

/* Two versions in one bundle share their chunks once; a missing record field is refused. */
static void test_two_versions_and_record(void **state)
{
	struct fx *f = *state;
	struct bundle_ref both[2] = {demo1, demo2};
	struct bundle_create_stats s1, s2;
	struct bundle_report rep;
	char *p;
	int fd;

	publish(f, f->hq, "demo", 1, 1);
	publish(f, f->hq, "demo", 2, 2);
	assert_int_equal(create(f, &demo1, 1, NULL, &s1), 0);
	assert_int_equal(create(f, both, 2, NULL, &s2), 0);
	assert_int_equal(s2.manifests, 2);
	assert_true(s2.bytes < 2 * s1.bytes - 4 * MIB);
	assert_int_equal(bundle_import(f->clinic, &f->trust, f->media, NULL, &rep), 0);
	assert_true(rep.manifests[0].complete && rep.manifests[1].complete);
	bundle_report_free(&rep);
	check_version(f, f->clinic, "demo", 1, 1);
	check_version(f, f->clinic, "demo", 2, 2);

	p = bpath(f, "bundle.rec");
	fd = open(p, O_WRONLY | O_TRUNC);
	assert_int_equal(write(fd,
			       "\x81\xa4type\xac"
			       "ferry-bundle",
			       19),
			 19);
	close(fd);
	assert_int_equal(bundle_import(f->clinic, &f->trust, f->media, NULL, &rep), FERRY_EVERSION);
	bundle_report_free(&rep);
	fd = open(p, O_WRONLY | O_TRUNC);
	assert_int_equal(write(fd, "hello", 5), 5);
	close(fd);
	assert_int_equal(bundle_import(f->clinic, &f->trust, f->media, NULL, &rep), FERRY_EFORMAT);
	bundle_report_free(&rep);
	free(p);
}

/* Have-files from a hostile source are refused with the reason. */
static void test_have_hostile(void **state)
{
	struct fx *f = *state;
	char *p = xasprintf("%s/h.have", f->tmp);
	struct have *h = NULL;
	uint8_t *bytes;
	size_t len;
	int fd;

	publish(f, f->hq, "demo", 1, 1);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_int_equal(have_write(f->hq, fd, NULL, NULL), 0);
	close(fd);
	assert_int_equal(read_file(p, HAVE_FILE_MAX, (char **)&bytes, &len), 0);

	/* Swap the first two ids: no longer sorted. */
	{
		uint8_t tmp[32], *ids = bytes + len - 32 * chunk_count(f->hq);

		memcpy(tmp, ids, 32);
		memcpy(ids, ids + 32, 32);
		memcpy(ids + 32, tmp, 32);
		fd = open(p, O_WRONLY | O_TRUNC);
		assert_int_equal(write_full(fd, bytes, len), 0);
		close(fd);
		fd = open(p, O_RDONLY);
		assert_int_equal(have_read(fd, &h), FERRY_EFORMAT);
		assert_non_null(strstr(ferry_errmsg(FERRY_EFORMAT), "must be sorted"));
		close(fd);
	}
	/* Not a have-file at all. */
	fd = open(p, O_WRONLY | O_TRUNC);
	assert_int_equal(write(fd, "\x81\xa4type\xa3xyz", 10), 10);
	close(fd);
	fd = open(p, O_RDONLY);
	assert_int_equal(have_read(fd, &h), FERRY_EFORMAT);
	assert_non_null(strstr(ferry_errmsg(FERRY_EFORMAT), "not a ferry have-file"));
	close(fd);
	/* A terabyte, sparse: refused before reading. */
	assert_int_equal(truncate(p, (off_t)1 << 40), 0);
	fd = open(p, O_RDONLY);
	assert_int_equal(have_read(fd, &h), FERRY_ETOOBIG);
	close(fd);
	assert_null(h);
	free(bytes);
	free(p);
}

/* The bytes docs/formats.md "Bundles" and "Have files" describe. */
static void test_layout(void **state)
{
	struct fx *f = *state;
	static const uint8_t pack_hdr[16] = {'F', 'P', 'A', 'K', 1, 0, 0, 0,
					     1,	  0,   0,   0,	 0, 0, 0, 0};
	static const uint8_t rec_head[] = "\x86"
					  "\xa4"
					  "type"
					  "\xac"
					  "ferry-bundle"
					  "\xa6"
					  "format"
					  "\x01"
					  "\xa7"
					  "created"
					  "\xce";
	static const uint8_t have_head[] = "\x85"
					   "\xa4"
					   "type"
					   "\xaa"
					   "ferry-have"
					   "\xa6"
					   "format"
					   "\x01"
					   "\xa7"
					   "created"
					   "\xce";
	struct bundle_create_stats s;
	uint8_t(*ids)[32];
	uint64_t *offs;
	uint32_t *lens;
	char *p, *text;
	size_t len, n;
	uint64_t off = 16;
	int fd;

	publish(f, f->hq, "demo", 1, 1);
	assert_int_equal(create(f, &demo1, 1, NULL, &s), 0);

	p = bpath(f, "pack-0001.dat");
	assert_int_equal(read_file(p, 4 * MIB, &text, &len), 0);
	assert_memory_equal(text, pack_hdr, 16);
	free(text);
	free(p);

	p = bpath(f, "pack-0001.idx");
	assert_int_equal(read_file(p, 4 * MIB, &text, &len), 0);
	assert_memory_equal(text, "FPIX\1\0\0\0\1\0\0\0", 12);
	n = idx_entries(f, "pack-0001.idx", &ids, &offs, &lens);
	assert_int_equal(len, 16 + 44 * n);
	assert_int_equal((uint8_t)text[12] | (uint8_t)text[13] << 8, n);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(offs[i], off);
		off += lens[i];
	}
	assert_int_equal(off, stat_of(f, "pack-0001.dat").st_size);
	free(text);
	free(p);
	free(ids);
	free(offs);
	free(lens);

	p = bpath(f, "bundle.rec");
	assert_int_equal(read_file(p, 4 * MIB, &text, &len), 0);
	assert_memory_equal(text, rec_head, sizeof(rec_head) - 1);
	/* created (4 bytes), "manifests" 1, "packs" [[size, chunks], ...], "have" false */
	assert_memory_equal(text + sizeof(rec_head) - 1 + 4,
			    "\xa9manifests\x01\xa5"
			    "packs",
			    17);
	assert_int_equal((uint8_t)text[sizeof(rec_head) - 1 + 4 + 17], 0x90 | s.packs);
	assert_memory_equal(text + len - 6, "\xa4have\xc2", 6);
	free(text);
	free(p);

	p = xasprintf("%s/layout.have", f->tmp);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_int_equal(have_write(f->hq, fd, NULL, NULL), 0);
	close(fd);
	assert_int_equal(read_file(p, HAVE_FILE_MAX, &text, &len), 0);
	assert_memory_equal(text, have_head, sizeof(have_head) - 1);
	n = chunk_count(f->hq);
	/* ... then the chunk ids, ascending, as the last value: "chunks" bin16 */
	assert_memory_equal(text + len - 32 * n - 10,
			    "\xa6"
			    "chunks\xc5",
			    8);
	assert_int_equal((uint8_t)text[len - 32 * n - 2] << 8 | (uint8_t)text[len - 32 * n - 1],
			 32 * n);
	for (size_t i = 1; i < n; i++)
		assert_true(memcmp(text + len - 32 * (n - i + 1), text + len - 32 * (n - i), 32) <
			    0);
	free(text);
	free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_roundtrip, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_delta_have, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_resume, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_flipped_byte, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_truncated_pack, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_forged_manifest, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_older_version, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_not_regular, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_huge, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_damaged_index, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_vanishing_files, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_create_incomplete, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_two_versions_and_record, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_have_hostile, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_layout, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
