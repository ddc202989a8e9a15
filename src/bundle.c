/*
 * Sideload bundles; see include/ferry/bundle.h, and docs/formats.md
 * "Bundles" for the bytes.
 *
 * Glossary:
 *   record   ferry-bundle/bundle.rec, the table of contents (msgpack)
 *   pack     pack-NNNN.dat: a 16-byte header, then encoded chunks back to back
 *   index    pack-NNNN.idx: a 16-byte header, then (id, offset, length) per
 *            chunk of the pack, in pack order
 *   plan     what bundle_create will write: the manifests, and the chunks
 *            cut into packs. It is a pure function of the store's content,
 *            the refs and the have-file, so a second run after an
 *            interruption makes the same plan and can keep what matches.
 *   want     (import) a chunk or index piece that an accepted manifest
 *            references, with where it belongs (model, file, offset) for
 *            the messages
 *
 * Import runs in three passes: manifests (verified and accepted), index
 * pieces (from the store, or found through the pack indexes and verified),
 * then the packs in order, each read sequentially through a fixed window,
 * storing only wanted chunks that decode and hash to their id.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "ferry/bundle.h"
#include "ferry/catalog.h"
#include "ferry/chunker.h"
#include "ferry/codec.h"
#include "ferry/error.h"
#include "ferry/fcrypto.h"
#include "ferry/have.h"
#include "ferry/idset.h"
#include "ferry/index.h"
#include "ferry/manifest.h"
#include "ferry/mpk.h"
#include "ferry/store.h"
#include "ferry/util.h"

#define RECORD_NAME "bundle.rec"
#define RECORD_MAX  (4u * 1024u * 1024u)
#define PACK_MIN    (2u * 1024u * 1024u)
#define HDR_LEN	    16
#define ENTRY_LEN   44
#define IDX_MAX	    (HDR_LEN + (size_t)ENTRY_LEN * BUNDLE_PACK_ENTRIES_MAX)
/* Reads and writes of pack data go through a buffer of this size. */
#define WIN_SIZE (8u * 1024u * 1024u)
/* A store batch is committed once it holds this much (DESIGN.md, durability window). */
#define COMMIT_BYTES (16u * 1024u * 1024u)
#define NAME_LEN     32

static const char pack_magic[4] = {'F', 'P', 'A', 'K'};
static const char idx_magic[4] = {'F', 'P', 'I', 'X'};
static const char record_type[] = "ferry-bundle";

enum { R_TYPE, R_FORMAT, R_CREATED, R_MANIFESTS, R_PACKS, R_HAVE, R__COUNT };
static const char *const record_keys[R__COUNT] = {"type",      "format", "created",
						  "manifests", "packs",	 "have"};

/* ---- little-endian fields ---- */

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

/* ---- names ---- */

static void manifest_name(char out[NAME_LEN], uint32_t n)
{
	snprintf(out, NAME_LEN, "manifest-%04" PRIu32 ".fm", n);
}

static void pack_name(char out[NAME_LEN], uint32_t n, const char *ext)
{
	snprintf(out, NAME_LEN, "pack-%04" PRIu32 ".%s", n, ext);
}

/* ---- files ---- */

/* Errors that mean the medium stopped answering rather than a bad file on it. */
static bool went_away(int err)
{
	return err == EIO || err == ENXIO || err == ENODEV || err == ESTALE || err == ENOTCONN ||
	       err == ENOMEDIUM || err == ESHUTDOWN;
}

static int gone(const char *file, int err)
{
	return ferry_errf(FERRY_EIO,
			  "the drive went away while reading " BUNDLE_DIR "/%s (%s); what was "
			  "verified before it is imported",
			  file, strerror(err));
}

/* pread until n bytes or end of file; *got is what was read. 0 or -errno. */
static int pread_some(int fd, uint8_t *buf, size_t n, uint64_t off, size_t *got)
{
	*got = 0;
	while (*got < n) {
		ssize_t r = pread(fd, buf + *got, n - *got, (off_t)(off + *got));

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			break;
		*got += (size_t)r;
	}
	return 0;
}

static int pwrite_full(int fd, const uint8_t *buf, size_t n, uint64_t off)
{
	while (n > 0) {
		ssize_t r = pwrite(fd, buf, n, (off_t)off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		buf += r;
		n -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

/* fsync a directory; some FUSE file systems (FAT drivers) do not implement it. */
static int dir_sync(int dfd)
{
	if (fsync(dfd) != 0 && errno != EINVAL && errno != ENOSYS && errno != ENOTSUP)
		return ferry_errno(errno, "syncing " BUNDLE_DIR "/");
	return 0;
}

static int write_err(const char *file, int rc)
{
	if (rc == -ENOSPC)
		return ferry_errf(FERRY_ENOSPC, "writing " BUNDLE_DIR "/%s: the medium is full",
				  file);
	return ferry_errf(rc, "writing " BUNDLE_DIR "/%s: %s", file, strerror(-rc));
}

/*
 * Open a bundle file for reading, as untrusted: never through a symbolic
 * link, never blocking on a fifo or a device, only a regular file of at most
 * cap bytes. *size is its size now.
 */
static int open_ro(int bfd, const char *file, uint64_t cap, int *fdp, uint64_t *size)
{
	struct stat sb;
	char what[32];
	int fd, err;

	*fdp = -1;
	fd = openat(bfd, file, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0) {
		err = errno;
		if (err == ENOENT)
			return ferry_errf(FERRY_ENOENT, BUNDLE_DIR "/%s is missing", file);
		if (err == ELOOP)
			return ferry_errf(FERRY_ELOOP,
					  BUNDLE_DIR "/%s is a symbolic link; a bundle holds none, "
						     "so it was not followed",
					  file);
		if (went_away(err))
			return gone(file, err);
		return ferry_errf(-err, "cannot open " BUNDLE_DIR "/%s: %s", file, strerror(err));
	}
	if (fstat(fd, &sb) != 0) {
		err = errno;
		close(fd);
		return went_away(err) ? gone(file, err) : ferry_errno(err, BUNDLE_DIR "/%s", file);
	}
	if (!S_ISREG(sb.st_mode)) {
		close(fd);
		snprintf(what, sizeof(what), "%s",
			 S_ISDIR(sb.st_mode)	? "a directory"
			 : S_ISFIFO(sb.st_mode) ? "a fifo"
			 : S_ISSOCK(sb.st_mode) ? "a socket"
			 : S_ISBLK(sb.st_mode)	? "a block device"
			 : S_ISCHR(sb.st_mode)	? "a character device"
						: "not a regular file");
		return ferry_errf(FERRY_EPATH, BUNDLE_DIR "/%s is %s, not a regular file; refused",
				  file, what);
	}
	if ((uint64_t)sb.st_size > cap) {
		char a[32], b[32];

		close(fd);
		return ferry_errf(FERRY_ETOOBIG,
				  BUNDLE_DIR "/%s is %s, larger than such a file can be (%s); "
					     "refused without reading it",
				  file, fmt_bytes(a, sizeof(a), (uint64_t)sb.st_size),
				  fmt_bytes(b, sizeof(b), cap));
	}
	*fdp = fd;
	*size = (uint64_t)sb.st_size;
	return 0;
}

/* Read a whole small bundle file (at most cap bytes). *out is malloc'd. */
static int read_small(int bfd, const char *file, uint64_t cap, uint8_t **out, size_t *len)
{
	uint64_t size;
	size_t got;
	uint8_t *buf;
	int fd, rc;

	*out = NULL;
	if ((rc = open_ro(bfd, file, cap, &fd, &size)) != 0)
		return rc;
	buf = xmalloc(size ? size : 1);
	rc = pread_some(fd, buf, size, 0, &got);
	close(fd);
	if (rc != 0) {
		free(buf);
		return went_away(-rc) ? gone(file, -rc) : ferry_errno(-rc, BUNDLE_DIR "/%s", file);
	}
	if (got != size) {
		free(buf);
		return ferry_errf(FERRY_EIO,
				  BUNDLE_DIR "/%s shrank from %" PRIu64 " to %zu bytes while it "
					     "was read",
				  file, size, got);
	}
	*out = buf;
	*len = got;
	return 0;
}

/* Write a small file through NAME.tmp, fsync'd, renamed into place. */
static int write_atomic(int bfd, const char *file, const uint8_t *p, size_t n)
{
	char tmp[NAME_LEN + 8];
	int fd, rc = 0;

	snprintf(tmp, sizeof(tmp), "%s.tmp", file);
	fd = openat(bfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0)
		return write_err(tmp, -errno);
	rc = write_full(fd, p, n);
	if (rc == 0 && fsync(fd) != 0)
		rc = -errno;
	close(fd);
	if (rc == 0 && renameat(bfd, tmp, bfd, file) != 0)
		rc = -errno;
	if (rc != 0) {
		unlinkat(bfd, tmp, 0);
		return write_err(file, rc);
	}
	return 0;
}

/* True if file holds exactly p[0..n) (and is a regular file, not a link). */
static bool same_content(int bfd, const char *file, const uint8_t *p, size_t n)
{
	uint8_t *buf = NULL;
	size_t len;
	bool same;

	if (read_small(bfd, file, n, &buf, &len) != 0)
		return false;
	same = len == n && memcmp(buf, p, n) == 0;
	free(buf);
	return same;
}

/* ---- the record ---- */

struct rec_pack {
	uint64_t size;
	uint64_t chunks;
};

struct record {
	int64_t created;
	uint32_t nmanifests;
	uint32_t npacks;
	struct rec_pack *packs;
	bool have;
};

static int record_encode(const struct record *r, uint8_t **out, size_t *len)
{
	struct mpk_w w;

	mpk_w_init(&w);
	mpk_w_map(&w, R__COUNT);
	mpk_w_cstr(&w, record_keys[R_TYPE]);
	mpk_w_cstr(&w, record_type);
	mpk_w_cstr(&w, record_keys[R_FORMAT]);
	mpk_w_uint(&w, BUNDLE_FORMAT);
	mpk_w_cstr(&w, record_keys[R_CREATED]);
	mpk_w_int(&w, r->created);
	mpk_w_cstr(&w, record_keys[R_MANIFESTS]);
	mpk_w_uint(&w, r->nmanifests);
	mpk_w_cstr(&w, record_keys[R_PACKS]);
	mpk_w_array(&w, r->npacks);
	for (uint32_t i = 0; i < r->npacks; i++) {
		mpk_w_array(&w, 2);
		mpk_w_uint(&w, r->packs[i].size);
		mpk_w_uint(&w, r->packs[i].chunks);
	}
	mpk_w_cstr(&w, record_keys[R_HAVE]);
	mpk_w_bool(&w, r->have);
	return mpk_w_take(&w, out, len);
}

static int record_bad(const struct mpk_r *r)
{
	int err = mpk_r_error(r);

	return ferry_errf(FERRY_EFORMAT, BUNDLE_DIR "/" RECORD_NAME " is damaged: %s",
			  ferry_errmsg(err));
}

static int record_decode(const uint8_t *p, size_t len, struct record *rec)
{
	struct mpk_r r, packs = {0};
	unsigned seen = 0;
	uint64_t format = 0, nman = 0;
	uint32_t n;

	memset(rec, 0, sizeof(*rec));
	mpk_r_init(&r, p, len);
	if (mpk_r_map(&r, &n) != 0)
		return record_bad(&r);
	for (uint32_t i = 0; i < n; i++) {
		const char *k, *s;
		size_t kl, sl;
		int key = -1;

		if (mpk_r_str(&r, &k, &kl) != 0)
			return record_bad(&r);
		for (int j = 0; j < R__COUNT; j++)
			if (strlen(record_keys[j]) == kl && memcmp(record_keys[j], k, kl) == 0)
				key = j;
		if (key < 0 || (seen & (1u << key))) {
			if (key >= 0)
				return ferry_errf(FERRY_EFORMAT,
						  BUNDLE_DIR "/" RECORD_NAME
							     " is damaged: key '%s' "
							     "appears twice",
						  record_keys[key]);
			/* Unknown keys are for newer writers: skipped. */
			mpk_r_skip(&r);
			continue;
		}
		seen |= 1u << key;
		switch (key) {
		case R_TYPE:
			if (mpk_r_str(&r, &s, &sl) == 0 &&
			    (sl != strlen(record_type) || memcmp(s, record_type, sl) != 0))
				return ferry_errf(FERRY_EFORMAT, BUNDLE_DIR
						  "/" RECORD_NAME " is not a ferry bundle record");
			break;
		case R_FORMAT:
			mpk_r_uint(&r, &format);
			break;
		case R_CREATED:
			mpk_r_int(&r, &rec->created);
			break;
		case R_MANIFESTS:
			mpk_r_uint(&r, &nman);
			break;
		case R_PACKS:
			packs = r;
			mpk_r_skip(&r);
			break;
		case R_HAVE:
			mpk_r_bool(&r, &rec->have);
			break;
		}
		if (mpk_r_error(&r) != 0)
			return record_bad(&r);
	}
	if (mpk_r_done(&r) != 0)
		return record_bad(&r);
	if (!(seen & (1u << R_TYPE)))
		return ferry_errf(FERRY_EFORMAT,
				  BUNDLE_DIR "/" RECORD_NAME " is not a ferry bundle record");
	if (format != BUNDLE_FORMAT)
		return ferry_errf(FERRY_EVERSION,
				  BUNDLE_DIR "/" RECORD_NAME " is bundle format %" PRIu64
					     "; this ferry reads only format %d",
				  format, BUNDLE_FORMAT);
	if (seen != (1u << R__COUNT) - 1)
		return ferry_errf(FERRY_EFORMAT,
				  BUNDLE_DIR "/" RECORD_NAME " is damaged: a key is missing");
	if (nman > BUNDLE_MANIFESTS_MAX)
		return ferry_errf(FERRY_EFORMAT,
				  BUNDLE_DIR "/" RECORD_NAME " lists %" PRIu64
					     " manifests; a bundle holds at most %u",
				  nman, BUNDLE_MANIFESTS_MAX);
	rec->nmanifests = (uint32_t)nman;
	if (mpk_r_array(&packs, &n) != 0)
		return record_bad(&packs);
	if (n > BUNDLE_PACKS_MAX)
		return ferry_errf(FERRY_EFORMAT,
				  BUNDLE_DIR "/" RECORD_NAME " lists %" PRIu32
					     " packs; a bundle holds at most %u",
				  n, BUNDLE_PACKS_MAX);
	rec->packs = xcalloc(n ? n : 1, sizeof(*rec->packs));
	rec->npacks = n;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t two;

		if (mpk_r_array(&packs, &two) == 0 && two != 2)
			return ferry_errf(FERRY_EFORMAT,
					  BUNDLE_DIR "/" RECORD_NAME " is damaged: pack %" PRIu32
						     " is not [size, chunks]",
					  i + 1);
		mpk_r_uint(&packs, &rec->packs[i].size);
		mpk_r_uint(&packs, &rec->packs[i].chunks);
		if (mpk_r_error(&packs) != 0)
			return record_bad(&packs);
	}
	return 0;
}

/* ---- pack index ---- */

struct pack_entry {
	uint8_t id[32];
	uint64_t offset;
	uint32_t len;
};

static uint8_t *idx_encode(uint32_t packno, const struct pack_entry *e, size_t n, size_t *len)
{
	uint8_t *p;

	*len = HDR_LEN + ENTRY_LEN * n;
	p = xmalloc(*len);
	memcpy(p, idx_magic, 4);
	put32(p + 4, BUNDLE_FORMAT);
	put32(p + 8, packno);
	put32(p + 12, (uint32_t)n);
	for (size_t i = 0; i < n; i++) {
		uint8_t *q = p + HDR_LEN + ENTRY_LEN * i;

		memcpy(q, e[i].id, 32);
		put64(q + 32, e[i].offset);
		put32(q + 40, e[i].len);
	}
	return p;
}

static void pack_header(uint8_t hdr[HDR_LEN], uint32_t packno)
{
	memcpy(hdr, pack_magic, 4);
	put32(hdr + 4, BUNDLE_FORMAT);
	put32(hdr + 8, packno);
	put32(hdr + 12, 0);
}

/*
 * Check a pack index read from the medium: header, entry count against the
 * file's real size and the cap, and entries that lie back to back from the
 * pack header on, each of a length a chunk can have. *entries is malloc'd.
 */
static int idx_decode(const char *file, uint32_t packno, const uint8_t *p, size_t len,
		      struct pack_entry **entries, size_t *n)
{
	uint64_t off = HDR_LEN;
	uint32_t count;
	struct pack_entry *e;

	*entries = NULL;
	*n = 0;
	if (len < HDR_LEN || memcmp(p, idx_magic, 4) != 0)
		return ferry_errf(FERRY_EFORMAT, BUNDLE_DIR "/%s is not a ferry pack index", file);
	if (get32(p + 4) != BUNDLE_FORMAT)
		return ferry_errf(FERRY_EVERSION,
				  BUNDLE_DIR "/%s is pack index format %" PRIu32
					     "; this ferry reads only format %d",
				  file, get32(p + 4), BUNDLE_FORMAT);
	if (get32(p + 8) != packno)
		return ferry_errf(FERRY_EFORMAT,
				  BUNDLE_DIR "/%s says it is the index of pack %" PRIu32, file,
				  get32(p + 8));
	count = get32(p + 12);
	if (count == 0 || count > BUNDLE_PACK_ENTRIES_MAX ||
	    len != HDR_LEN + (size_t)ENTRY_LEN * count)
		return ferry_errf(FERRY_EFORMAT,
				  BUNDLE_DIR
				  "/%s declares %" PRIu32
				  " entries but is %zu bytes long (damaged or cut short)",
				  file, count, len);
	e = xreallocarray(NULL, count, sizeof(*e));
	for (uint32_t i = 0; i < count; i++) {
		const uint8_t *q = p + HDR_LEN + (size_t)ENTRY_LEN * i;
		char hex[ID_SHORT_LEN];

		memcpy(e[i].id, q, 32);
		e[i].offset = get64(q + 32);
		e[i].len = get32(q + 40);
		if (e[i].offset != off || e[i].len <= CODEC_HDR_LEN ||
		    e[i].len > codec_bound(CHUNK_MAX_SIZE) || off + e[i].len > BUNDLE_FILE_MAX) {
			int rc = ferry_errf(FERRY_EFORMAT,
					    BUNDLE_DIR "/%s entry %" PRIu32 " (chunk %s…) claims "
						       "offset %" PRIu64 " and length %" PRIu32
						       "; expected offset %" PRIu64
						       " and a length of 6..%zu (damaged)",
					    file, i, id_short(hex, e[i].id), e[i].offset, e[i].len,
					    off, codec_bound(CHUNK_MAX_SIZE));

			free(e);
			return rc;
		}
		off += e[i].len;
	}
	*entries = e;
	*n = count;
	return 0;
}

/* ---- creating ---- */

struct plan {
	uint8_t **manifests; /* signed bytes, as stored */
	size_t *manifest_lens;
	char (*labels)[MANIFEST_NAME_MAX + 24]; /* "name@version", for messages */
	size_t nmanifests;
	struct pack_entry *entries; /* every chunk and piece, in bundle order; offsets per pack */
	size_t nentries;
	size_t *pack_first; /* npacks + 1 boundaries into entries */
	uint32_t npacks;
	uint64_t *pack_size;
};

static void plan_free(struct plan *p)
{
	for (size_t i = 0; i < p->nmanifests; i++)
		free(p->manifests[i]);
	free(p->manifests);
	free(p->manifest_lens);
	free(p->labels);
	free(p->entries);
	free(p->pack_first);
	free(p->pack_size);
}

struct create {
	struct store *st;
	const struct have *have;
	const struct bundle_create_opts *opts;
	struct bundle_create_stats *stats;
	struct plan plan;
	struct idset *seen; /* chunks and pieces in the plan already */
	size_t cap_entries;
	int bfd;
	uint8_t *buf; /* WIN_SIZE */
	struct bundle_progress prog;
};

static int create_progress(struct create *c)
{
	if (c->opts->progress != NULL && c->opts->progress(c->opts->arg, &c->prog) != 0)
		return ferry_errf(FERRY_ECANCELED, "bundle create was stopped");
	return 0;
}

/* Add one chunk or piece to the plan, unless it is in already or the target has it. */
static int plan_add(struct create *c, struct store_rd *rd, const uint8_t id[32], const char *label,
		    const char *path, uint64_t offset, bool piece)
{
	const uint8_t *enc;
	size_t len;
	char hex[65];
	int rc;

	if (!idset_add(c->seen, id, 0))
		return 0;
	rc = store_chunk_get(rd, id, &enc, &len);
	if (rc == FERRY_ENOENT) {
		if (piece)
			return ferry_errf(FERRY_EINCOMPLETE,
					  "%s is not complete in this store: the index piece %s of "
					  "%s is missing; fetch the version first",
					  label, hex_encode(hex, id, 32), path);
		return ferry_errf(FERRY_EINCOMPLETE,
				  "%s is not complete in this store: chunk %s of %s at offset "
				  "%" PRIu64 " is missing; fetch the version first",
				  label, hex_encode(hex, id, 32), path, offset);
	}
	if (rc != 0)
		return rc;
	if (len > codec_bound(CHUNK_MAX_SIZE))
		return ferry_errf(FERRY_EFORMAT, "stored chunk %s is %zu bytes, too large",
				  hex_encode(hex, id, 32), len);
	if (c->have != NULL && have_has_chunk(c->have, id)) {
		c->stats->skipped_chunks++;
		c->stats->skipped_bytes += len;
		return 0;
	}
	if (c->plan.nentries == c->cap_entries) {
		c->cap_entries = c->cap_entries ? 2 * c->cap_entries : 1024;
		c->plan.entries =
		    xreallocarray(c->plan.entries, c->cap_entries, sizeof(*c->plan.entries));
	}
	memcpy(c->plan.entries[c->plan.nentries].id, id, 32);
	c->plan.entries[c->plan.nentries].len = (uint32_t)len;
	c->plan.nentries++;
	c->stats->chunks++;
	c->stats->bytes += len;
	return 0;
}

/* Every piece of m, then every chunk, in file order. */
static int plan_version(struct create *c, const struct manifest *m, const char *label)
{
	struct store_rd *rd = NULL;
	int rc = 0;

	for (uint32_t f = 0; f < m->nfiles && rc == 0; f++) {
		const struct manifest_file *file = &m->files[f];

		if ((rc = store_rd_begin(c->st, &rd)) != 0)
			break;
		for (uint32_t p = 0; p < file->npieces && rc == 0; p++)
			rc = plan_add(c, rd, file->pieces[p], label, file->path, 0, true);
		store_rd_end(rd);
	}
	for (uint32_t f = 0; f < m->nfiles && rc == 0; f++) {
		const struct manifest_file *file = &m->files[f];
		uint64_t off = 0;

		if ((rc = store_rd_begin(c->st, &rd)) != 0)
			break;
		for (uint32_t p = 0; p < file->npieces && rc == 0; p++) {
			struct chunk_ref *refs = NULL;
			size_t n = 0;

			rc = catalog_piece_refs(rd, file->pieces[p], &refs, &n);
			for (size_t i = 0; i < n && rc == 0; i++) {
				rc = plan_add(c, rd, refs[i].id, label, file->path, off, false);
				off += refs[i].raw_len;
			}
			free(refs);
		}
		store_rd_end(rd);
	}
	return rc;
}

/* Load the refs' manifests and plan the chunks. */
static int plan_make(struct create *c, const struct trust *t, const struct bundle_ref *refs,
		     size_t nrefs)
{
	struct plan *p = &c->plan;
	uint64_t pack_max = c->opts->pack_max ? c->opts->pack_max : BUNDLE_PACK_MAX;
	int rc = 0;

	pack_max = MIN(MAX(pack_max, (uint64_t)PACK_MIN), (uint64_t)BUNDLE_PACK_MAX);
	if (nrefs > BUNDLE_MANIFESTS_MAX)
		return ferry_errf(FERRY_ETOOBIG, "a bundle holds at most %u versions",
				  BUNDLE_MANIFESTS_MAX);
	p->manifests = xcalloc(nrefs ? nrefs : 1, sizeof(*p->manifests));
	p->manifest_lens = xcalloc(nrefs ? nrefs : 1, sizeof(*p->manifest_lens));
	p->labels = xcalloc(nrefs ? nrefs : 1, sizeof(*p->labels));
	for (size_t i = 0; i < nrefs && rc == 0; i++) {
		struct manifest *m = NULL;
		struct store_rd *rd = NULL;
		const uint8_t *bytes;
		size_t len;
		bool dup = false;

		if ((rc = catalog_load(c->st, t, refs[i].name, refs[i].version, &m)) != 0)
			break;
		snprintf(p->labels[p->nmanifests], sizeof(p->labels[0]), "%s@%" PRIu64, m->name,
			 m->version);
		for (size_t j = 0; j < p->nmanifests; j++)
			dup = dup || strcmp(p->labels[j], p->labels[p->nmanifests]) == 0;
		if (!dup && (rc = store_rd_begin(c->st, &rd)) == 0) {
			rc = store_manifest_get(rd, m->name, m->version, &bytes, &len);
			if (rc == 0) {
				p->manifests[p->nmanifests] = xmalloc(len);
				memcpy(p->manifests[p->nmanifests], bytes, len);
				p->manifest_lens[p->nmanifests] = len;
				p->nmanifests++;
			}
			store_rd_end(rd);
			if (rc == 0)
				rc = plan_version(c, m, p->labels[p->nmanifests - 1]);
			if (rc == 0)
				c->stats->raw_bytes += manifest_total_size(m);
		}
		manifest_free(m);
	}
	if (rc != 0)
		return rc;

	/* Cut into packs: greedy, in plan order, so the cut is the same every run. */
	p->pack_first = xcalloc(p->nentries + 2, sizeof(*p->pack_first));
	p->pack_size = xcalloc(p->nentries + 1, sizeof(*p->pack_size));
	for (size_t i = 0; i < p->nentries; i++) {
		uint64_t *size = &p->pack_size[p->npacks ? p->npacks - 1 : 0];
		size_t first = p->pack_first[p->npacks ? p->npacks - 1 : 0];

		if (p->npacks == 0 || *size + p->entries[i].len > pack_max ||
		    i - first >= BUNDLE_PACK_ENTRIES_MAX) {
			if (p->npacks == BUNDLE_PACKS_MAX)
				return ferry_errf(FERRY_ETOOBIG,
						  "the bundle would need more than %u packs",
						  BUNDLE_PACKS_MAX);
			p->pack_first[p->npacks] = i;
			p->npacks++;
			size = &p->pack_size[p->npacks - 1];
			*size = HDR_LEN;
		}
		p->entries[i].offset = *size;
		*size += p->entries[i].len;
	}
	p->pack_first[p->npacks] = p->nentries;
	return 0;
}

/*
 * Copy planned entries [i, end) from the store into c->buf as far as it
 * holds them; *upto is the first entry not copied, *len the bytes.
 */
static int fill_from_store(struct create *c, size_t i, size_t end, size_t *upto, size_t *len)
{
	struct store_rd *rd = NULL;
	int rc;

	*len = 0;
	if ((rc = store_rd_begin(c->st, &rd)) != 0)
		return rc;
	for (; i < end && *len + c->plan.entries[i].len <= WIN_SIZE; i++) {
		const uint8_t *enc;
		size_t n;
		char hex[65];

		rc = store_chunk_get(rd, c->plan.entries[i].id, &enc, &n);
		if (rc == 0 && n != c->plan.entries[i].len)
			rc = FERRY_EIO;
		if (rc != 0) {
			rc = ferry_errf(FERRY_EINCOMPLETE,
					"chunk %s left the store while the bundle was written",
					hex_encode(hex, c->plan.entries[i].id, 32));
			break;
		}
		memcpy(c->buf + *len, enc, n);
		*len += n;
	}
	store_rd_end(rd);
	*upto = i;
	return rc;
}

/*
 * How much of a partly written pack (fd, size bytes) is what the plan
 * says: the header and then whole entries that compare equal to the store's
 * bytes. *from is the first entry to write, *off where it goes (0: write
 * the header too).
 */
static int resume_point(struct create *c, int fd, uint64_t size, uint32_t packno, size_t first,
			size_t end, size_t *from, uint64_t *off)
{
	uint8_t hdr[HDR_LEN], *disk = xmalloc(WIN_SIZE);
	size_t i = first, got;
	uint64_t pos = HDR_LEN;
	int rc;

	*from = first;
	*off = 0;
	pack_header(hdr, packno);
	rc = pread_some(fd, disk, HDR_LEN, 0, &got);
	if (rc != 0 || got != HDR_LEN || memcmp(disk, hdr, HDR_LEN) != 0)
		goto out;
	while (i < end && pos < size) {
		size_t upto, len;

		if ((rc = fill_from_store(c, i, end, &upto, &len)) != 0)
			goto out;
		if ((rc = pread_some(fd, disk, (size_t)MIN((uint64_t)len, size - pos), pos,
				     &got)) != 0)
			goto out;
		for (; i < upto; i++) {
			size_t n = c->plan.entries[i].len;
			size_t at = (size_t)(c->plan.entries[i].offset - pos);

			if (at + n > got || memcmp(disk + at, c->buf + at, n) != 0)
				goto found;
		}
		pos += len;
	}
found:
	*from = i;
	*off = i < end ? c->plan.entries[i].offset : c->plan.pack_size[packno - 1];
out:
	free(disk);
	if (rc != 0) {
		char tmp[NAME_LEN];

		pack_name(tmp, packno, "tmp");
		return rc == FERRY_EINCOMPLETE ? rc : write_err(tmp, rc);
	}
	return 0;
}

/* True if pack packno is already complete on the medium and is what the plan says. */
static bool pack_kept(struct create *c, uint32_t packno, const uint8_t *idx, size_t idxlen)
{
	char dat[NAME_LEN], name[NAME_LEN];
	uint64_t size;
	int fd;

	pack_name(name, packno, "idx");
	pack_name(dat, packno, "dat");
	if (!same_content(c->bfd, name, idx, idxlen))
		return false;
	if (open_ro(c->bfd, dat, BUNDLE_FILE_MAX, &fd, &size) != 0)
		return false;
	close(fd);
	return size == c->plan.pack_size[packno - 1];
}

static int pack_write(struct create *c, uint32_t packno)
{
	size_t first = c->plan.pack_first[packno - 1], end = c->plan.pack_first[packno];
	char dat[NAME_LEN], idx[NAME_LEN], tmp[NAME_LEN];
	uint8_t *ibytes, hdr[HDR_LEN];
	size_t ilen, from;
	uint64_t off;
	struct stat sb;
	int fd = -1, rc;

	pack_name(dat, packno, "dat");
	pack_name(idx, packno, "idx");
	pack_name(tmp, packno, "tmp");
	ibytes = idx_encode(packno, c->plan.entries + first, end - first, &ilen);
	c->prog.file = dat;
	if (pack_kept(c, packno, ibytes, ilen)) {
		c->stats->packs_kept++;
		c->prog.bytes_done += c->plan.pack_size[packno - 1];
		c->prog.chunks_done += end - first;
		rc = create_progress(c);
		goto out;
	}
	/* An index never stays next to a pack it may not describe. */
	if (unlinkat(c->bfd, idx, 0) != 0 && errno != ENOENT) {
		rc = write_err(idx, -errno);
		goto out;
	}
	/* A whole pack without its index is checked like a partial one. */
	if (renameat(c->bfd, dat, c->bfd, tmp) != 0 && errno != ENOENT) {
		rc = write_err(tmp, -errno);
		goto out;
	}
	fd = openat(c->bfd, tmp, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0 || fstat(fd, &sb) != 0) {
		rc = write_err(tmp, -errno);
		goto out;
	}
	if (!S_ISREG(sb.st_mode)) {
		rc = ferry_errf(FERRY_EPATH, BUNDLE_DIR "/%s is not a regular file", tmp);
		goto out;
	}
	rc = resume_point(c, fd, (uint64_t)sb.st_size, packno, first, end, &from, &off);
	if (rc != 0)
		goto out;
	if ((uint64_t)sb.st_size != off && ftruncate(fd, (off_t)off) != 0) {
		rc = write_err(tmp, -errno);
		goto out;
	}
	if (off == 0) {
		pack_header(hdr, packno);
		if ((rc = pwrite_full(fd, hdr, HDR_LEN, 0)) != 0) {
			rc = write_err(tmp, rc);
			goto out;
		}
		off = HDR_LEN;
	}
	c->prog.bytes_done += off;
	c->prog.chunks_done += from - first;
	if ((rc = create_progress(c)) != 0)
		goto out;
	while (from < end) {
		size_t upto, len;

		if ((rc = fill_from_store(c, from, end, &upto, &len)) != 0)
			goto out;
		if ((rc = pwrite_full(fd, c->buf, len, off)) != 0) {
			rc = write_err(tmp, rc);
			goto out;
		}
		off += len;
		c->stats->written_bytes += len;
		c->prog.bytes_done += len;
		c->prog.chunks_done += upto - from;
		from = upto;
		if ((rc = create_progress(c)) != 0)
			goto out;
	}
	if (fsync(fd) != 0) {
		rc = write_err(tmp, -errno);
		goto out;
	}
	close(fd);
	fd = -1;
	if (renameat(c->bfd, tmp, c->bfd, dat) != 0) {
		rc = write_err(dat, -errno);
		goto out;
	}
	rc = write_atomic(c->bfd, idx, ibytes, ilen);
	if (rc == 0)
		rc = dir_sync(c->bfd);
out:
	if (fd >= 0)
		close(fd);
	free(ibytes);
	c->prog.file = NULL;
	return rc;
}

/* Is name one this code writes, numbered above the counts of the new bundle (or a temporary)? */
static bool stale(const char *name, uint32_t nmanifests, uint32_t npacks)
{
	unsigned n;
	int len = 0;
	char ext[8];

	if (strcmp(name, RECORD_NAME ".tmp") == 0)
		return true;
	if (sscanf(name, "manifest-%u.%n", &n, &len) == 1 && len > 0)
		return strcmp(name + len, "fm.tmp") == 0 ||
		       (strcmp(name + len, "fm") == 0 && (n == 0 || n > nmanifests));
	if (sscanf(name, "pack-%u.%7s", &n, ext) == 2)
		return strcmp(ext, "tmp") == 0 || strcmp(ext, "idx.tmp") == 0 ||
		       ((strcmp(ext, "dat") == 0 || strcmp(ext, "idx") == 0) &&
			(n == 0 || n > npacks));
	return false;
}

/* Remove what an earlier, different bundle left: files numbered beyond this one's. */
static int remove_stale(struct create *c)
{
	int dfd = dup(c->bfd), rc = 0;
	struct dirent *de;
	DIR *d;

	if (dfd < 0 || (d = fdopendir(dfd)) == NULL) {
		if (dfd >= 0)
			close(dfd);
		return ferry_errno(errno, "listing " BUNDLE_DIR "/");
	}
	while ((de = readdir(d)) != NULL) {
		if (!stale(de->d_name, (uint32_t)c->plan.nmanifests, c->plan.npacks))
			continue;
		if (unlinkat(c->bfd, de->d_name, 0) != 0 && errno != ENOENT) {
			rc = write_err(de->d_name, -errno);
			break;
		}
	}
	closedir(d);
	return rc;
}

/* Refuse early when the medium cannot hold what is left to write. */
static int space_check(struct create *c)
{
	struct statvfs vfs;
	uint64_t need = 0, avail;
	char a[32], b[32];

	for (uint32_t i = 1; i <= c->plan.npacks; i++) {
		char name[NAME_LEN];
		struct stat sb;
		uint64_t have = 0;

		pack_name(name, i, "dat");
		if (fstatat(c->bfd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(sb.st_mode))
			have = (uint64_t)sb.st_size;
		pack_name(name, i, "tmp");
		if (fstatat(c->bfd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(sb.st_mode))
			have = MAX(have, (uint64_t)sb.st_size);
		if (have < c->plan.pack_size[i - 1])
			need += c->plan.pack_size[i - 1] - have;
	}
	/* Some FUSE drivers (fusefat) report no blocks at all: nothing to check against. */
	if (fstatvfs(c->bfd, &vfs) != 0 || vfs.f_blocks == 0)
		return 0;
	avail = (uint64_t)vfs.f_bavail * vfs.f_frsize;
	if (avail < need)
		return ferry_errf(
		    FERRY_ENOSPC,
		    "the medium has %s free but the bundle needs %s more; use a larger "
		    "drive or fewer versions",
		    fmt_bytes(a, sizeof(a), avail), fmt_bytes(b, sizeof(b), need));
	return 0;
}

int bundle_create(struct store *st, const struct trust *t, int outdirfd,
		  const struct bundle_ref *refs, size_t nrefs, const struct have *have,
		  const struct bundle_create_opts *opts, struct bundle_create_stats *stats)
{
	static const struct bundle_create_opts no_opts;
	struct bundle_create_stats dummy;
	struct create c = {.st = st, .have = have, .opts = opts ? opts : &no_opts, .bfd = -1};
	struct record rec = {0};
	uint8_t *rbytes = NULL;
	size_t rlen;
	int rc;

	c.stats = stats ? stats : &dummy;
	memset(c.stats, 0, sizeof(*c.stats));
	c.seen = idset_new(0);
	c.prog.phase = BUNDLE_PHASE_MANIFESTS;
	if ((rc = plan_make(&c, t, refs, nrefs)) != 0)
		goto out;
	c.stats->manifests = (uint32_t)c.plan.nmanifests;
	c.stats->packs = c.plan.npacks;
	c.prog.chunks_total = c.plan.nentries;
	for (uint32_t i = 0; i < c.plan.npacks; i++)
		c.prog.bytes_total += c.plan.pack_size[i];

	if (mkdirat(outdirfd, BUNDLE_DIR, 0755) != 0 && errno != EEXIST) {
		rc = ferry_errno(errno, "cannot create " BUNDLE_DIR "/");
		goto out;
	}
	c.bfd = openat(outdirfd, BUNDLE_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (c.bfd < 0) {
		rc = ferry_errno(errno, "cannot open " BUNDLE_DIR "/ (it must be a directory, not "
					"a link)");
		goto out;
	}
	/* From here until the new record is in place the bundle reads as unfinished. */
	if (unlinkat(c.bfd, RECORD_NAME, 0) != 0 && errno != ENOENT) {
		rc = write_err(RECORD_NAME, -errno);
		goto out;
	}
	if ((rc = dir_sync(c.bfd)) != 0 || (rc = space_check(&c)) != 0)
		goto out;
	if ((rc = create_progress(&c)) != 0)
		goto out;
	for (size_t i = 0; i < c.plan.nmanifests; i++) {
		char name[NAME_LEN];

		manifest_name(name, (uint32_t)i + 1);
		if (!same_content(c.bfd, name, c.plan.manifests[i], c.plan.manifest_lens[i]) &&
		    (rc = write_atomic(c.bfd, name, c.plan.manifests[i],
				       c.plan.manifest_lens[i])) != 0)
			goto out;
	}
	c.buf = xmalloc(WIN_SIZE);
	c.prog.phase = BUNDLE_PHASE_CHUNKS;
	for (uint32_t i = 1; i <= c.plan.npacks; i++)
		if ((rc = pack_write(&c, i)) != 0)
			goto out;
	if ((rc = remove_stale(&c)) != 0)
		goto out;

	rec.created = (int64_t)time(NULL);
	rec.nmanifests = (uint32_t)c.plan.nmanifests;
	rec.npacks = c.plan.npacks;
	rec.packs = xcalloc(c.plan.npacks ? c.plan.npacks : 1, sizeof(*rec.packs));
	for (uint32_t i = 0; i < c.plan.npacks; i++) {
		rec.packs[i].size = c.plan.pack_size[i];
		rec.packs[i].chunks = c.plan.pack_first[i + 1] - c.plan.pack_first[i];
	}
	rec.have = have != NULL;
	if ((rc = record_encode(&rec, &rbytes, &rlen)) != 0)
		goto out;
	if ((rc = write_atomic(c.bfd, RECORD_NAME, rbytes, rlen)) != 0)
		goto out;
	rc = dir_sync(c.bfd);
	c.prog.phase = BUNDLE_PHASE_DONE;
	if (rc == 0)
		rc = create_progress(&c);
out:
	free(rbytes);
	free(rec.packs);
	free(c.buf);
	if (c.bfd >= 0)
		close(c.bfd);
	idset_free(c.seen);
	plan_free(&c.plan);
	return rc;
}

/* ---- importing ---- */

enum want_state { W_NEEDED, W_PRESENT, W_IMPORTED, W_BAD };

struct want {
	uint8_t id[32];
	uint8_t state;
	bool piece;
	uint32_t man;  /* index into imp.ms */
	uint32_t file; /* index into that manifest's files */
	uint64_t offset;
};

struct committer {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct store_wr *wr;	/* the batch in flight, NULL when idle */
	uint64_t chunks, bytes; /* what it holds */
	bool stop;
	int err;       /* the first failed commit (sticky) */
	char msg[512]; /* and its detail */
	struct bundle_report *rep;
};

struct imp {
	struct store *st;
	const struct trust *t;
	const struct bundle_import_opts *opts;
	struct bundle_report *rep;
	int bfd;
	struct record rec;
	bool *pack_ok;	      /* per pack: its index and header were usable */
	struct manifest **ms; /* accepted manifests */
	uint32_t *ms_res;     /* for each, its index in rep->manifests */
	size_t nms;
	struct idset *want_ids; /* chunk id -> its index in wants */
	struct want *wants;
	size_t nwants, cap_wants;
	struct store_wr *wr; /* the batch being filled */
	uint64_t pend_chunks, pend_bytes;
	struct committer committer;
	bool committer_started;
	struct codec_ctx *codec;
	uint8_t *raw; /* CHUNK_MAX_SIZE */
	uint8_t *win; /* WIN_SIZE */
	struct bundle_progress prog;
	bool refused; /* something was refused: the result is FERRY_ECORRUPT */
};

static void problem(struct imp *im, int code, const char *file, uint64_t offset, const uint8_t *id,
		    const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static void problem(struct imp *im, int code, const char *file, uint64_t offset, const uint8_t *id,
		    const char *fmt, ...)
{
	struct bundle_report *rep = im->rep;
	struct bundle_problem *p;
	va_list ap;
	char *msg;

	if (code != FERRY_EINCOMPLETE)
		im->refused = true;
	rep->problems_total++;
	if (rep->nproblems >= BUNDLE_PROBLEMS_MAX)
		return;
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		fatal("out of memory");
	va_end(ap);
	rep->problems = xreallocarray(rep->problems, rep->nproblems + 1, sizeof(*rep->problems));
	p = &rep->problems[rep->nproblems++];
	memset(p, 0, sizeof(*p));
	p->code = code;
	snprintf(p->file, sizeof(p->file), "%s", file ? file : "");
	p->offset = offset;
	if (id != NULL) {
		p->has_id = true;
		memcpy(p->id, id, 32);
	}
	p->message = msg;
}

/* A fatal code (stop the import), or a problem with this one file (go on). */
static bool fatal_code(int rc)
{
	return rc == FERRY_EIO || rc == FERRY_ENOSPC || rc == FERRY_ECANCELED ||
	       rc == FERRY_EMAPFULL;
}

static int import_progress(struct imp *im)
{
	if (im->opts->progress != NULL && im->opts->progress(im->opts->arg, &im->prog) != 0)
		return ferry_errf(FERRY_ECANCELED, "the import was stopped; what was verified "
						   "before is imported");
	return 0;
}

/*
 * Batches are committed on a thread of their own, so that the fsync of one
 * batch overlaps reading and verifying the next; at most one batch is in
 * flight. Counts reach the report only once their batch is durable.
 */
static void *committer_main(void *arg)
{
	struct committer *c = arg;

	pthread_mutex_lock(&c->mu);
	for (;;) {
		while (c->wr == NULL && !c->stop)
			pthread_cond_wait(&c->cv, &c->mu);
		if (c->wr == NULL)
			break;
		{
			struct store_wr *wr = c->wr;
			int rc;

			pthread_mutex_unlock(&c->mu);
			rc = store_wr_commit(wr);
			pthread_mutex_lock(&c->mu);
			if (rc == 0) {
				c->rep->chunks_imported += c->chunks;
				c->rep->bytes_imported += c->bytes;
			} else if (c->err == 0) {
				/* The detail is per thread: keep it for the importing thread. */
				c->err = rc;
				snprintf(c->msg, sizeof(c->msg), "%s", ferry_errmsg(rc));
			}
			c->wr = NULL;
			pthread_cond_broadcast(&c->cv);
		}
	}
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

/* Wait for the batch in flight; its error, with its detail, if it failed. */
static int committer_wait(struct committer *c)
{
	int rc;

	pthread_mutex_lock(&c->mu);
	while (c->wr != NULL)
		pthread_cond_wait(&c->cv, &c->mu);
	rc = c->err;
	pthread_mutex_unlock(&c->mu);
	return rc ? ferry_errf(rc, "%s", c->msg) : 0;
}

/* Hand the current batch to the committer (after the one in flight is done). */
static int commit_async(struct imp *im)
{
	struct committer *c = &im->committer;
	int rc;

	if (im->wr == NULL)
		return 0;
	if ((rc = committer_wait(c)) != 0) {
		store_wr_abort(im->wr);
		im->wr = NULL;
		return rc;
	}
	pthread_mutex_lock(&c->mu);
	c->wr = im->wr;
	c->chunks = im->pend_chunks;
	c->bytes = im->pend_bytes;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
	im->wr = NULL;
	im->pend_chunks = im->pend_bytes = 0;
	return 0;
}

/* Commit everything queued and wait until it is durable. */
static int commit(struct imp *im)
{
	int rc = commit_async(im);

	return rc ? rc : committer_wait(&im->committer);
}

/* Queue a verified chunk; commit once the batch is large enough. */
static int put_chunk(struct imp *im, const uint8_t id[32], const uint8_t *enc, size_t len)
{
	int rc;

	if (im->wr == NULL && (rc = store_wr_begin(im->st, &im->wr)) != 0)
		return rc;
	if ((rc = store_wr_chunk_put(im->wr, id, enc, len)) != 0)
		return rc;
	im->pend_chunks++;
	im->pend_bytes += len;
	if (store_wr_pending(im->wr) >= COMMIT_BYTES) {
		if ((rc = commit_async(im)) != 0)
			return rc;
		return import_progress(im);
	}
	return 0;
}

/* "model demo@2, weights/a.bin at offset 1048576" for a want, into out. */
static const char *where(const struct imp *im, const struct want *w, char *out, size_t cap)
{
	const struct manifest *m = im->ms[w->man];

	if (w->piece)
		snprintf(out, cap, "an index piece of %s in %s@%" PRIu64, m->files[w->file].path,
			 m->name, m->version);
	else
		snprintf(out, cap, "%s at offset %" PRIu64 " in %s@%" PRIu64,
			 m->files[w->file].path, w->offset, m->name, m->version);
	return out;
}

/* Note that (man, file, offset) needs id; returns its want index. */
static uint32_t want_add(struct imp *im, struct store_rd *rd, const uint8_t id[32], uint32_t man,
			 uint32_t file, uint64_t offset, bool piece)
{
	int64_t have = idset_get(im->want_ids, id);
	struct want *w;

	if (have >= 0)
		return (uint32_t)have;
	if (im->nwants == im->cap_wants) {
		im->cap_wants = im->cap_wants ? 2 * im->cap_wants : 1024;
		im->wants = xreallocarray(im->wants, im->cap_wants, sizeof(*im->wants));
	}
	w = &im->wants[im->nwants];
	*w = (struct want){.state = store_chunk_has(rd, id) ? W_PRESENT : W_NEEDED,
			   .piece = piece,
			   .man = man,
			   .file = file,
			   .offset = offset};
	memcpy(w->id, id, 32);
	if (w->state == W_PRESENT && !piece)
		im->rep->chunks_present++;
	idset_add(im->want_ids, id, (uint32_t)im->nwants);
	return (uint32_t)im->nwants++;
}

/* Record the chunks of one decoded piece of file f of manifest man as wanted. */
static int want_refs(struct imp *im, uint32_t man, uint32_t f, uint64_t *off,
		     const struct chunk_ref *refs, size_t n)
{
	struct store_rd *rd = NULL;
	int rc;

	if ((rc = store_rd_begin(im->st, &rd)) != 0)
		return rc;
	for (size_t i = 0; i < n; i++) {
		want_add(im, rd, refs[i].id, man, f, *off, false);
		*off += refs[i].raw_len;
	}
	store_rd_end(rd);
	return 0;
}

/* Phase 1: verify and accept every manifest of the bundle. */
static int import_manifests(struct imp *im)
{
	struct bundle_report *rep = im->rep;
	int rc;

	rep->manifests =
	    xcalloc(im->rec.nmanifests ? im->rec.nmanifests : 1, sizeof(*rep->manifests));
	im->ms = xcalloc(im->rec.nmanifests ? im->rec.nmanifests : 1, sizeof(*im->ms));
	im->ms_res = xcalloc(im->rec.nmanifests ? im->rec.nmanifests : 1, sizeof(*im->ms_res));
	for (uint32_t i = 0; i < im->rec.nmanifests; i++) {
		struct bundle_manifest_result *res = &rep->manifests[rep->nmanifests];
		struct manifest *m = NULL;
		uint8_t *bytes = NULL;
		size_t len = 0;

		manifest_name(res->file, i + 1);
		im->prog.file = res->file;
		if ((rc = import_progress(im)) != 0)
			return rc;
		rc = read_small(im->bfd, res->file, MANIFEST_SIGNED_MAX, &bytes, &len);
		if (rc == 0)
			rc = catalog_accept(im->st, im->t, bytes, len, CATALOG_EXPLICIT, &m);
		free(bytes);
		if (fatal_code(rc))
			return rc;
		res->outcome = rc;
		rep->nmanifests++;
		if (rc < 0) {
			rep->manifests_refused++;
			problem(im, rc, res->file, 0, NULL, BUNDLE_DIR "/%s: refused: %s",
				res->file, ferry_errmsg(rc));
			continue;
		}
		snprintf(res->name, sizeof(res->name), "%s", m->name);
		res->version = m->version;
		res->complete = false;
		im->ms_res[im->nms] = i;
		im->ms[im->nms++] = m;
	}
	im->prog.file = NULL;
	return 0;
}

/* Read a pack's index (for pack packno), checking it and the pack's size against it. */
static int read_idx(struct imp *im, uint32_t packno, struct pack_entry **e, size_t *n)
{
	char name[NAME_LEN];
	uint8_t *bytes = NULL;
	size_t len;
	int rc;

	pack_name(name, packno, "idx");
	rc = read_small(im->bfd, name, IDX_MAX, &bytes, &len);
	if (rc == 0)
		rc = idx_decode(name, packno, bytes, len, e, n);
	free(bytes);
	return rc;
}

/* A window over a pack: bounded reads, sequential read-ahead. */
struct window {
	int fd;
	const char *file;
	uint64_t size; /* the file's size when opened */
	uint8_t *buf;
	uint64_t off;
	size_t len;
};

/*
 * Point *p at bytes [off, off+n) of the pack. 1 if the file ends before
 * them, 0 on success, FERRY_EIO if the medium went away.
 */
static int window_get(struct window *w, uint64_t off, size_t n, const uint8_t **p)
{
	size_t want, got;
	int rc;

	if (off >= w->off && off + n <= w->off + w->len) {
		*p = w->buf + (off - w->off);
		return 0;
	}
	if (off + n > w->size)
		return 1;
	want = (size_t)MIN((uint64_t)WIN_SIZE, w->size - off);
	rc = pread_some(w->fd, w->buf, want, off, &got);
	if (rc != 0)
		return went_away(-rc) ? gone(w->file, -rc)
				      : ferry_errf(FERRY_EIO, "reading " BUNDLE_DIR "/%s: %s",
						   w->file, strerror(-rc));
	w->off = off;
	w->len = got;
	if (got < n)
		return 1;
	*p = w->buf;
	return 0;
}

/*
 * Decode an encoded chunk and check it against id. 0 if good; otherwise a
 * code and a detail saying what is wrong with it.
 */
static int verify(struct imp *im, const uint8_t id[32], const uint8_t *enc, size_t len, bool piece)
{
	uint8_t got[32];
	size_t raw_len;
	int rc, tag;

	if ((rc = codec_peek(enc, len, &tag, &raw_len)) != 0)
		return rc;
	if (piece && (tag != CODEC_RAW || raw_len != len - CODEC_HDR_LEN))
		return ferry_errf(FERRY_EFORMAT, "an index piece must be stored raw");
	if ((rc = codec_decode(im->codec, enc, len, im->raw, CHUNK_MAX_SIZE, &raw_len)) != 0)
		return rc;
	fcrypto_id(got, im->raw, raw_len);
	if (memcmp(got, id, 32) != 0)
		return ferry_errf(FERRY_ECORRUPT, "its bytes do not match its id");
	return 0;
}

static int open_pack(struct imp *im, uint32_t packno, struct window *w, char *name)
{
	uint8_t hdr[HDR_LEN], got[HDR_LEN];
	size_t n;
	int rc;

	pack_name(name, packno, "dat");
	w->file = name;
	w->off = w->len = 0;
	if ((rc = open_ro(im->bfd, name, BUNDLE_FILE_MAX, &w->fd, &w->size)) != 0)
		return rc;
	posix_fadvise(w->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	pack_header(hdr, packno);
	rc = pread_some(w->fd, got, HDR_LEN, 0, &n);
	if (rc != 0)
		rc = went_away(-rc) ? gone(name, -rc) : ferry_errno(-rc, BUNDLE_DIR "/%s", name);
	else if (n < HDR_LEN)
		rc = ferry_errf(FERRY_EFORMAT, BUNDLE_DIR "/%s is empty or cut short", name);
	else if (memcmp(got, hdr, HDR_LEN) != 0)
		rc = ferry_errf(FERRY_EFORMAT,
				BUNDLE_DIR "/%s does not start with the header of pack %" PRIu32
					   " (damaged, or not a ferry pack)",
				name, packno);
	if (rc != 0) {
		close(w->fd);
		w->fd = -1;
	}
	return rc;
}

/* Want the chunks listed by every piece of every accepted manifest that is now stored. */
static int want_all_refs(struct imp *im)
{
	struct store_rd *rd = NULL;
	int rc = 0;

	for (uint32_t j = 0; j < im->nms && rc == 0; j++) {
		const struct manifest *m = im->ms[j];

		for (uint32_t f = 0; f < m->nfiles && rc == 0; f++) {
			uint64_t off = 0;

			for (uint32_t p = 0; p < m->files[f].npieces && rc == 0; p++) {
				const uint8_t *id = m->files[f].pieces[p];
				struct want *w = &im->wants[idset_get(im->want_ids, id)];
				struct chunk_ref *refs = NULL;
				size_t n = 0;

				/* Offsets after a missing piece are unknown: the file stops here.
				 */
				if (w->state != W_IMPORTED && w->state != W_PRESENT)
					break;
				if ((rc = store_rd_begin(im->st, &rd)) != 0)
					break;
				rc = catalog_piece_refs(rd, id, &refs, &n);
				store_rd_end(rd);
				if (rc == 0)
					rc = want_refs(im, j, f, &off, refs, n);
				free(refs);
			}
		}
	}
	return rc;
}

/* Phase 2, one pack: the wanted index pieces in it, verified, then stored. */
static int pieces_from_pack(struct imp *im, uint32_t pk)
{
	struct pack_entry *e = NULL;
	struct window w = {.fd = -1, .buf = im->win};
	char name[NAME_LEN];
	size_t n = 0;
	int rc;

	pack_name(name, pk, "idx");
	im->prog.file = name;
	if ((rc = import_progress(im)) != 0)
		return rc;
	rc = read_idx(im, pk, &e, &n);
	for (size_t i = 0; i < n && rc == 0; i++) {
		int64_t wi = idset_get(im->want_ids, e[i].id);
		struct want *wt = wi >= 0 ? &im->wants[wi] : NULL;
		const uint8_t *enc;
		char hex[ID_SHORT_LEN];

		if (wt == NULL || !wt->piece || wt->state == W_PRESENT || wt->state == W_IMPORTED)
			continue;
		if (w.fd < 0 && (rc = open_pack(im, pk, &w, name)) != 0)
			break;
		rc = window_get(&w, e[i].offset, e[i].len, &enc);
		if (rc == 1) {
			/* Reported with the chunks of this pack, in phase 3. */
			rc = 0;
			continue;
		}
		if (rc != 0)
			break;
		rc = verify(im, e[i].id, enc, e[i].len, true);
		if (rc != 0) {
			if (wt->state != W_BAD)
				im->rep->chunks_bad++;
			wt->state = W_BAD;
			problem(im, rc, name, e[i].offset, e[i].id,
				BUNDLE_DIR "/%s: index piece %s… at offset %" PRIu64 " refused: %s",
				name, id_short(hex, e[i].id), e[i].offset, ferry_errmsg(rc));
			rc = 0;
			continue;
		}
		if (wt->state == W_BAD)
			im->rep->chunks_bad--;
		if ((rc = put_chunk(im, e[i].id, enc, e[i].len)) != 0)
			break;
		wt->state = W_IMPORTED;
	}
	if (rc != 0 && !fatal_code(rc)) {
		/* This pack's index or header is unusable: none of its chunks are read. */
		im->pack_ok[pk - 1] = false;
		problem(im, rc, name, 0, NULL, "%s", ferry_errmsg(rc));
		rc = 0;
	}
	if (w.fd >= 0)
		close(w.fd);
	free(e);
	im->prog.file = NULL;
	return rc;
}

/*
 * Phase 2: every index piece of every accepted manifest, from the store or
 * from the packs (verified), so the chunks to import are known.
 */
static int import_pieces(struct imp *im)
{
	struct store_rd *rd = NULL;
	bool needed = false;
	int rc = 0;

	im->prog.phase = BUNDLE_PHASE_INDEX;
	for (uint32_t j = 0; j < im->nms && rc == 0; j++) {
		const struct manifest *m = im->ms[j];

		if ((rc = store_rd_begin(im->st, &rd)) != 0)
			break;
		for (uint32_t f = 0; f < m->nfiles; f++)
			for (uint32_t p = 0; p < m->files[f].npieces; p++) {
				uint32_t wi =
				    want_add(im, rd, m->files[f].pieces[p], j, f, 0, true);

				needed = needed || im->wants[wi].state == W_NEEDED;
			}
		store_rd_end(rd);
	}
	for (uint32_t pk = 1; pk <= im->rec.npacks && rc == 0 && needed; pk++)
		if (im->pack_ok[pk - 1])
			rc = pieces_from_pack(im, pk);
	/* The pieces must be readable from the store before their chunks are listed. */
	if (rc == 0)
		rc = commit(im);
	if (rc == 0)
		rc = want_all_refs(im);
	return rc;
}

/* Phase 3, one pack: every wanted chunk in it, verified, then stored. */
static int import_pack(struct imp *im, uint32_t pk)
{
	struct pack_entry *e = NULL;
	struct window w = {.fd = -1, .buf = im->win};
	char name[NAME_LEN], iname[NAME_LEN];
	size_t n = 0;
	int rc;

	pack_name(iname, pk, "idx");
	rc = read_idx(im, pk, &e, &n);
	if (rc == 0)
		rc = open_pack(im, pk, &w, name);
	else
		pack_name(name, pk, "dat");
	im->prog.file = name;
	if (rc != 0) {
		if (!fatal_code(rc))
			problem(im, rc, rc == FERRY_EFORMAT ? iname : name, 0, NULL, "%s",
				ferry_errmsg(rc));
		goto out;
	}
	if (w.size != im->rec.packs[pk - 1].size)
		problem(im, FERRY_EFORMAT, name, w.size, NULL,
			BUNDLE_DIR "/%s is %" PRIu64 " bytes but the bundle record says %" PRIu64
				   ": %s",
			name, w.size, im->rec.packs[pk - 1].size,
			w.size < im->rec.packs[pk - 1].size ? "the pack is truncated"
							    : "the pack was changed");
	if ((rc = import_progress(im)) != 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		int64_t wi = idset_get(im->want_ids, e[i].id);
		const uint8_t *enc;
		char hex[ID_SHORT_LEN], at[MANIFEST_PATH_MAX + 128];

		im->prog.chunks_done++;
		im->prog.bytes_done += e[i].len;
		if (wi < 0) {
			im->rep->chunks_unreferenced++;
			continue;
		}
		if (im->wants[wi].state == W_PRESENT || im->wants[wi].state == W_IMPORTED)
			continue;
		rc = window_get(&w, e[i].offset, e[i].len, &enc);
		if (rc == 1) {
			problem(im, FERRY_EIO, name, e[i].offset, e[i].id,
				BUNDLE_DIR "/%s ends before chunk %s… (offset %" PRIu64 ", %" PRIu32
					   " bytes, %zu more chunks after it): the pack is "
					   "truncated",
				name, id_short(hex, e[i].id), e[i].offset, e[i].len, n - i - 1);
			rc = 0;
			break;
		}
		if (rc != 0)
			goto out;
		rc = verify(im, e[i].id, enc, e[i].len, im->wants[wi].piece);
		if (rc != 0) {
			if (im->wants[wi].state != W_BAD)
				im->rep->chunks_bad++;
			im->wants[wi].state = W_BAD;
			problem(im, rc, name, e[i].offset, e[i].id,
				BUNDLE_DIR "/%s: chunk %s… at offset %" PRIu64 " (%s) refused: %s",
				name, id_short(hex, e[i].id), e[i].offset,
				where(im, &im->wants[wi], at, sizeof(at)), ferry_errmsg(rc));
			rc = 0;
			continue;
		}
		if (im->wants[wi].state == W_BAD)
			im->rep->chunks_bad--;
		if ((rc = put_chunk(im, e[i].id, enc, e[i].len)) != 0)
			goto out;
		im->wants[wi].state = W_IMPORTED;
	}
out:
	if (w.fd >= 0)
		close(w.fd);
	free(e);
	return fatal_code(rc) ? rc : 0;
}

/* After the packs: what is still missing, by name. */
static void report_missing(struct imp *im)
{
	for (size_t i = 0; i < im->nwants; i++) {
		const struct want *w = &im->wants[i];
		char hex[ID_SHORT_LEN], at[MANIFEST_PATH_MAX + 128];

		if (w->state != W_NEEDED)
			continue;
		im->rep->chunks_missing++;
		problem(im, FERRY_EINCOMPLETE, "", 0, w->id, "%s %s… (%s) is not in the bundle",
			w->piece ? "index piece" : "chunk", id_short(hex, w->id),
			where(im, w, at, sizeof(at)));
	}
}

int bundle_import(struct store *st, const struct trust *t, int dirfd,
		  const struct bundle_import_opts *opts, struct bundle_report *rep)
{
	static const struct bundle_import_opts no_opts;
	struct imp im = {.st = st, .t = t, .opts = opts ? opts : &no_opts, .rep = rep, .bfd = -1};
	uint8_t *rbytes = NULL;
	size_t rlen;
	int rc, rc2;

	memset(rep, 0, sizeof(*rep));
	im.want_ids = idset_new(0);
	im.bfd = openat(dirfd, BUNDLE_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (im.bfd < 0) {
		int err = errno;

		if (err == ENOENT)
			rc = ferry_errf(FERRY_ENOENT, "there is no " BUNDLE_DIR "/ folder here");
		else if (err == ELOOP || err == ENOTDIR)
			rc = ferry_errf(FERRY_ELOOP, BUNDLE_DIR " is a symbolic link or not a "
								"directory; refused");
		else
			rc = went_away(err) ? gone("", err)
					    : ferry_errno(err, "cannot open " BUNDLE_DIR "/");
		goto out;
	}
	rc = read_small(im.bfd, RECORD_NAME, RECORD_MAX, &rbytes, &rlen);
	if (rc == FERRY_ENOENT)
		rc = ferry_errf(FERRY_ENOENT, BUNDLE_DIR
				"/" RECORD_NAME " is missing: the bundle was not "
				"completely written (run the same `ferryctl bundle create` "
				"again to finish it)");
	if (rc == 0)
		rc = record_decode(rbytes, rlen, &im.rec);
	if (rc != 0)
		goto out;
	rep->delta = im.rec.have;
	im.pack_ok = xcalloc(im.rec.npacks ? im.rec.npacks : 1, sizeof(*im.pack_ok));
	for (uint32_t i = 0; i < im.rec.npacks; i++) {
		im.pack_ok[i] = true;
		im.prog.chunks_total += im.rec.packs[i].chunks;
		/* For the display only: nothing is sized by what the record says. */
		im.prog.bytes_total += MIN(im.rec.packs[i].size, BUNDLE_FILE_MAX);
	}
	im.committer.rep = rep;
	pthread_mutex_init(&im.committer.mu, NULL);
	pthread_cond_init(&im.committer.cv, NULL);
	if (pthread_create(&im.committer.thread, NULL, committer_main, &im.committer) != 0)
		fatal("cannot start a thread");
	im.committer_started = true;
	im.codec = codec_ctx_new();
	im.raw = xmalloc(CHUNK_MAX_SIZE);
	im.win = xmalloc(WIN_SIZE);

	im.prog.phase = BUNDLE_PHASE_MANIFESTS;
	if ((rc = import_manifests(&im)) != 0)
		goto out;
	if ((rc = import_pieces(&im)) != 0)
		goto out;
	im.prog.phase = BUNDLE_PHASE_CHUNKS;
	for (uint32_t pk = 1; pk <= im.rec.npacks && rc == 0; pk++)
		if (im.pack_ok[pk - 1])
			rc = import_pack(&im, pk);
	if (rc != 0)
		goto out;
	im.prog.file = NULL;
	im.prog.phase = BUNDLE_PHASE_DONE;
	report_missing(&im);
out:
	/* What was verified is kept, whatever stopped the import. */
	rc2 = 0;
	if (im.committer_started) {
		rc2 = commit(&im);
		pthread_mutex_lock(&im.committer.mu);
		im.committer.stop = true;
		pthread_cond_broadcast(&im.committer.cv);
		pthread_mutex_unlock(&im.committer.mu);
		pthread_join(im.committer.thread, NULL);
		pthread_mutex_destroy(&im.committer.mu);
		pthread_cond_destroy(&im.committer.cv);
	}
	if (rc == 0)
		rc = rc2;
	if (im.nms > 0 && rc2 == 0) {
		struct store_rd *rd = NULL;

		if (store_rd_begin(st, &rd) == 0) {
			for (size_t j = 0; j < im.nms; j++) {
				struct catalog_presence pr;

				if (catalog_presence(rd, im.ms[j], &pr) == 0)
					rep->manifests[im.ms_res[j]].complete =
					    pr.index_complete && pr.have_chunks == pr.need_chunks;
			}
			store_rd_end(rd);
		}
	}
	if (rc == 0 && im.refused)
		rc = ferry_errf(FERRY_ECORRUPT,
				"%" PRIu64 " problem%s in the bundle; everything good in it was "
				"imported",
				rep->problems_total, rep->problems_total == 1 ? "" : "s");
	if (rc == 0 && im.opts->progress != NULL)
		im.opts->progress(im.opts->arg, &im.prog);
	for (size_t i = 0; i < im.nms; i++)
		manifest_free(im.ms[i]);
	free(im.ms);
	free(im.ms_res);
	free(im.wants);
	idset_free(im.want_ids);
	free(im.pack_ok);
	free(im.rec.packs);
	free(rbytes);
	free(im.raw);
	free(im.win);
	codec_ctx_free(im.codec);
	if (im.bfd >= 0)
		close(im.bfd);
	return rc;
}

void bundle_report_free(struct bundle_report *rep)
{
	if (rep == NULL)
		return;
	for (size_t i = 0; i < rep->nproblems; i++)
		free(rep->problems[i].message);
	free(rep->problems);
	free(rep->manifests);
	memset(rep, 0, sizeof(*rep));
}
