/*
 * Fuzz the sideload import (bundle_import): a bundle directory from a USB
 * drive, into a fresh store for every input, trusting the fixed publisher.
 *
 * The input describes the directory ferry-bundle/: u8 flags, then files,
 * each u8 kind (mod 5: bundle.rec, manifest-NNNN.fm, pack-NNNN.dat,
 * pack-NNNN.idx, or a stray file x-NNNN), u8 number NNNN, u16 length and the
 * contents; a later file of the same name replaces an earlier one. With flag
 * 1 every file is instead a symbolic link to a copy of it outside the bundle
 * directory.
 *
 * After the import, whatever it returned: every chunk in the store decodes
 * and hashes to its id, every manifest in the store opens under the trusted
 * publisher, nothing is stored if no manifest was accepted, and nothing at
 * all is stored from a bundle of symbolic links (the importer must not
 * follow a link out of the bundle). The report is freed on every path.
 */
#include "config.h"

#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ferry/bundle.h"
#include "ferry/chunker.h"
#include "ferry/codec.h"
#include "ferry/error.h"
#include "ferry/fcrypto.h"
#include "ferry/manifest.h"
#include "ferry/store.h"
#include "ferry/util.h"
#include "fuzz.h"

static char tmp[] = "/tmp/ferry-fuzz-bundle-XXXXXX";
static char *state, *media, *bundle, *outside;
static struct trust trust;
static struct codec_ctx *ctx;
static uint8_t *raw;

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	return remove(path);
}

static void cleanup(void)
{
	nftw(tmp, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
	free(state);
	free(media);
	free(bundle);
	free(outside);
	free(trust.keys);
	codec_ctx_free(ctx);
	free(raw);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	if (fcrypto_init() != 0 || mkdtemp(tmp) == NULL)
		abort();
	state = xasprintf("%s/state", tmp);
	media = xasprintf("%s/media", tmp);
	bundle = xasprintf("%s/media/" BUNDLE_DIR, tmp);
	outside = xasprintf("%s/outside", tmp);
	trust.n = 1;
	trust.keys = xmalloc(sizeof(*trust.keys));
	memcpy(trust.keys[0], fuzz_publisher_sk + 32, 32);
	ctx = codec_ctx_new();
	raw = xmalloc(CHUNK_MAX_SIZE);
	atexit(cleanup);
	return 0;
}

static void put_file(const char *path, const uint8_t *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	FUZZ_CHECK(fd >= 0 && write_full(fd, p, n) == 0 && close(fd) == 0);
}

/* Lay out the bundle the input describes. */
static void build(struct fuzz_in *in, bool links)
{
	/* The names a bundle file can have: prefix, number, suffix (bundle.rec has no number). */
	static const char *const prefix[] = {"bundle.rec", "manifest-", "pack-", "pack-", "x-"};
	static const char *const suffix[] = {"", ".fm", ".dat", ".idx", ""};

	FUZZ_CHECK(mkdir(media, 0755) == 0 && mkdir(bundle, 0755) == 0);
	FUZZ_CHECK(mkdir(outside, 0755) == 0);
	while (in->n >= 4) {
		uint8_t kind = fuzz_u8(in) % ARRAY_SIZE(prefix), num = fuzz_u8(in);
		const uint8_t *p;
		char name[32], *path, *target;
		size_t n;

		p = fuzz_bytes(in, fuzz_u16(in), &n);
		if (kind == 0)
			snprintf(name, sizeof(name), "%s", prefix[0]);
		else
			snprintf(name, sizeof(name), "%s%04u%s", prefix[kind], (unsigned)num,
				 suffix[kind]);
		path = xasprintf("%s/%s", bundle, name);
		unlink(path);
		if (links) {
			target = xasprintf("%s/%s", outside, name);
			put_file(target, p, n);
			free(target);
			target = xasprintf("../../outside/%s", name);
			FUZZ_CHECK(symlink(target, path) == 0);
			free(target);
		} else {
			put_file(path, p, n);
		}
		free(path);
	}
}

static int check_chunk(void *arg, const uint8_t id[32], const uint8_t *enc, size_t len)
{
	uint8_t got[32];
	size_t n;

	FUZZ_CHECK(codec_decode(ctx, enc, len, raw, CHUNK_MAX_SIZE, &n) == 0);
	fcrypto_id(got, raw, n);
	FUZZ_CHECK(memcmp(got, id, 32) == 0);
	return 0;
}

static int check_manifest(void *arg, const char *name, uint64_t version, const uint8_t *bytes,
			  size_t len)
{
	struct manifest *m;

	FUZZ_CHECK(manifest_open(bytes, len, &trust, &m, NULL) == 0);
	FUZZ_CHECK(strcmp(m->name, name) == 0 && m->version == version);
	manifest_free(m);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = {data, size};
	bool links = fuzz_u8(&in) & 1;
	struct bundle_report rep;
	struct store_stats stats;
	struct store_rd *rd;
	struct store *st;
	size_t accepted = 0;
	int dirfd;

	nftw(state, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
	nftw(media, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
	nftw(outside, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
	build(&in, links);
	FUZZ_CHECK(store_open(state, STORE_CREATE, &st) == 0);
	dirfd = open(media, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	FUZZ_CHECK(dirfd >= 0);
	memset(&rep, 0, sizeof(rep));
	bundle_import(st, &trust, dirfd, NULL, &rep);
	close(dirfd);
	for (size_t i = 0; i < rep.nmanifests; i++)
		accepted += rep.manifests[i].outcome > 0;
	bundle_report_free(&rep);

	FUZZ_CHECK(store_stats(st, &stats) == 0);
	if (accepted == 0 || links)
		FUZZ_CHECK(stats.manifests == 0 && stats.chunks == 0);
	FUZZ_CHECK(store_rd_begin(st, &rd) == 0);
	FUZZ_CHECK(store_chunk_foreach(rd, check_chunk, NULL) == 0);
	FUZZ_CHECK(store_manifest_foreach(rd, NULL, check_manifest, NULL) == 0);
	store_rd_end(rd);
	store_close(st);
	return 0;
}
