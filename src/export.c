/*
 * export_version(): write a version's files out of the store, and
 * export_verify(): check a version's stored chunks without writing.
 *
 * Export first loads every file's chunk index (so a missing index piece
 * fails before anything is written), then cuts the files into windows of
 * consecutive chunks. Decoder threads claim windows in order, decode each
 * chunk into the window's buffer and check it against its id; the calling
 * thread writes the windows in order, one large write each, into
 * ".NAME.ferry-tmp", and renames the file into place only once every chunk
 * of it checked out, its size is right and it is on disk (fsync of the file,
 * then of the directory). Small files are made durable in groups (syncfs,
 * renames, then each directory's fsync), so a tree of many small files does
 * not cost a journal commit per file.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ferry/chunker.h"
#include "ferry/codec.h"
#include "ferry/error.h"
#include "ferry/fcrypto.h"
#include "ferry/index.h"
#include "ferry/log.h"
#include "ferry/manifest.h"
#include "ferry/publish.h"
#include "ferry/store.h"
#include "ferry/util.h"

#define WIN_SIZE     (8u * 1024u * 1024u)
#define MAX_DECODERS 16
#define TMP_SUFFIX   ".ferry-tmp"
/*
 * Files smaller than this are made durable in groups of up to PENDING_MAX:
 * one syncfs for the group rather than one fsync (one journal commit) each.
 */
#define SMALL_FILE  (1024u * 1024u)
#define PENDING_MAX 1024
/* Renew a read transaction this often during a long verify. */
#define VERIFY_TXN_CHUNKS 64

/* ---- chunk index and chunk checks (shared by export and verify) --------- */

/*
 * Load f's chunk index. A missing or corrupt piece yields FERRY_EINCOMPLETE
 * or FERRY_ECORRUPT with a detail, its number in *bad and the file offset
 * where its chunks start in *bad_off; an index that does not add up to the
 * file's size yields FERRY_ECORRUPT with *bad = UINT32_MAX. buf holds
 * CHUNK_MAX_SIZE bytes. On success *out (malloc'd) holds *nout refs.
 */
static int load_refs(struct store_rd *rd, struct codec_ctx *ctx, uint8_t *buf,
		     const struct manifest_file *f, struct chunk_ref **out, size_t *nout,
		     uint32_t *bad, uint64_t *bad_off)
{
	struct chunk_ref *refs = NULL, *part = NULL;
	size_t n = 0, npart = 0;
	uint64_t off = 0;
	char ids[ID_SHORT_LEN];
	int r = 0;

	for (uint32_t i = 0; i < f->npieces; i++) {
		const uint8_t *enc;
		size_t len, raw_len;
		uint8_t id[32];

		*bad = i;
		*bad_off = off;
		id_short(ids, f->pieces[i]);
		if (store_chunk_get(rd, f->pieces[i], &enc, &len) < 0) {
			r = ferry_errf(FERRY_EINCOMPLETE,
				       "%s: chunk index piece %s is missing from the store",
				       f->path, ids);
			goto out;
		}
		if (codec_decode(ctx, enc, len, buf, CHUNK_MAX_SIZE, &raw_len) < 0 ||
		    (fcrypto_id(id, buf, raw_len), memcmp(id, f->pieces[i], 32) != 0) ||
		    index_decode(buf, raw_len, &part, &npart) < 0) {
			r = ferry_errf(FERRY_ECORRUPT,
				       "%s: chunk index piece %s is corrupt in the store", f->path,
				       ids);
			goto out;
		}
		refs = xreallocarray(refs, n + npart, sizeof(*refs));
		memcpy(refs + n, part, npart * sizeof(*refs));
		n += npart;
		for (size_t k = 0; k < npart; k++)
			off += part[k].raw_len;
		free(part);
		part = NULL;
	}
	if (off != f->size) {
		*bad = UINT32_MAX;
		*bad_off = 0;
		r = ferry_errf(FERRY_ECORRUPT,
			       "%s: the chunk index covers %llu bytes but the manifest says %llu",
			       f->path, (unsigned long long)off, (unsigned long long)f->size);
		goto out;
	}
	*out = refs;
	*nout = n;
	refs = NULL;
out:
	free(refs);
	return r;
}

/*
 * Decode ref's stored chunk into out (ref->raw_len bytes) and check its id.
 * FERRY_EINCOMPLETE if absent, FERRY_ECORRUPT if it does not decode to
 * exactly the bytes of its id. No detail: the caller names file and offset.
 */
static int check_chunk(struct store_rd *rd, struct codec_ctx *ctx, const struct chunk_ref *ref,
		       uint8_t *out)
{
	const uint8_t *enc;
	size_t len, raw_len;
	uint8_t id[32];

	if (store_chunk_get(rd, ref->id, &enc, &len) < 0)
		return FERRY_EINCOMPLETE;
	if (codec_decode(ctx, enc, len, out, ref->raw_len, &raw_len) < 0 || raw_len != ref->raw_len)
		return FERRY_ECORRUPT;
	fcrypto_id(id, out, raw_len);
	if (memcmp(id, ref->id, sizeof(id)) != 0)
		return FERRY_ECORRUPT;
	return 0;
}

static int chunk_errf(int code, const char *path, const uint8_t id[32], uint64_t off)
{
	char ids[ID_SHORT_LEN];

	id_short(ids, id);
	if (code == FERRY_EINCOMPLETE)
		return ferry_errf(code, "%s: chunk %s at offset %llu is missing from the store",
				  path, ids, (unsigned long long)off);
	return ferry_errf(code, "%s: chunk %s at offset %llu is corrupt in the store", path, ids,
			  (unsigned long long)off);
}

/* ---- export ------------------------------------------------------------ */

struct efile {
	const struct manifest_file *f;
	struct chunk_ref *refs;
	size_t nrefs;
};

/* A window: consecutive chunks of one file, written with one write. */
struct job {
	size_t file;
	size_t first, n; /* refs[first .. first+n) */
	uint64_t offset;
	size_t bytes;
	bool first_of_file, last_of_file;
};

enum eslot_state { ESLOT_FREE, ESLOT_BUSY, ESLOT_DONE };

struct eslot {
	enum eslot_state state;
	uint8_t *buf;
	int err;
	char errmsg[512];
};

struct epipe {
	pthread_mutex_t mu;
	pthread_cond_t cv_decoder; /* a slot became free */
	pthread_cond_t cv_writer;  /* a slot is done */
	struct store *st;
	struct efile *files;
	struct job *jobs;
	size_t njobs;
	struct eslot *slots;
	size_t nslots;
	size_t next; /* next job a decoder claims */
	size_t tail; /* next job the writer writes */
	bool stop;
};

static int decode_job(struct epipe *p, const struct job *j, uint8_t *buf, struct codec_ctx *ctx)
{
	const struct efile *ef = &p->files[j->file];
	struct store_rd *rd = NULL;
	uint64_t off = j->offset;
	size_t pos = 0;
	int r;

	r = store_rd_begin(p->st, &rd);
	if (r < 0)
		return r;
	for (size_t i = j->first; i < j->first + j->n; i++) {
		const struct chunk_ref *ref = &ef->refs[i];

		r = check_chunk(rd, ctx, ref, buf + pos);
		if (r < 0) {
			r = chunk_errf(r, ef->f->path, ref->id, off);
			break;
		}
		pos += ref->raw_len;
		off += ref->raw_len;
	}
	store_rd_end(rd);
	return r;
}

static void *decoder_main(void *arg)
{
	struct epipe *p = arg;
	struct codec_ctx *ctx = codec_ctx_new();

	pthread_mutex_lock(&p->mu);
	for (;;) {
		size_t j;
		struct eslot *s;
		int r;

		while (!p->stop && p->next < p->njobs && p->next - p->tail >= p->nslots)
			pthread_cond_wait(&p->cv_decoder, &p->mu);
		if (p->stop || p->next >= p->njobs)
			break;
		j = p->next++;
		s = &p->slots[j % p->nslots];
		s->state = ESLOT_BUSY;
		if (s->buf == NULL)
			s->buf = xmalloc(WIN_SIZE);
		pthread_mutex_unlock(&p->mu);

		r = decode_job(p, &p->jobs[j], s->buf, ctx);
		s->err = r;
		if (r < 0)
			snprintf(s->errmsg, sizeof(s->errmsg), "%s", ferry_errmsg(r));

		pthread_mutex_lock(&p->mu);
		s->state = ESLOT_DONE;
		pthread_cond_broadcast(&p->cv_writer);
	}
	pthread_mutex_unlock(&p->mu);
	codec_ctx_free(ctx);
	return NULL;
}

/* Where a file is being written. */
struct out_file {
	int dirfd; /* its parent directory */
	int fd;
	char *name; /* last path component */
	char *tmp;
	uint64_t written;
	struct fcrypto_sha256 *sha;
};

static char *tmp_name(const char *name)
{
	size_t room = MANIFEST_COMPONENT_MAX - 1 - strlen(TMP_SUFFIX);
	size_t n = strlen(name);

	/* Long names are cut short; files are written one at a time, so no clash. */
	return xasprintf(".%.*s%s", (int)MIN(n, room), name, TMP_SUFFIX);
}

/*
 * Open path's parent under outdirfd, creating directories as needed and
 * never following a symlink, then create the temporary file in it.
 */
static int out_open(int outdirfd, const char *path, uint64_t size, struct out_file *o)
{
	char *copy = xstrdup(path), *comp = copy, *slash;
	int cur = outdirfd, fd, r = 0;

	while ((slash = strchr(comp, '/')) != NULL) {
		*slash = '\0';
		if (mkdirat(cur, comp, 0755) == 0) {
			/* Make the new directory's entry durable along with the file. */
			fsync(cur);
		} else if (errno != EEXIST) {
			r = ferry_errno(errno, "%s: creating directory %s", path, comp);
			goto out;
		}
		fd = openat(cur, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0) {
			struct stat sb;

			/* A symlink opened with O_DIRECTORY | O_NOFOLLOW fails with ENOTDIR. */
			if (errno == ELOOP || (errno == ENOTDIR &&
					       fstatat(cur, comp, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
					       S_ISLNK(sb.st_mode)))
				r = ferry_errf(FERRY_ELOOP,
					       "%s: %s in the output directory is a symbolic link",
					       path, comp);
			else if (errno == ENOTDIR)
				r = ferry_errf(FERRY_EPATH,
					       "%s: %s in the output directory is not a directory",
					       path, comp);
			else
				r = ferry_errno(errno, "%s: opening directory %s", path, comp);
			goto out;
		}
		if (cur != outdirfd)
			close(cur);
		cur = fd;
		comp = slash + 1;
	}
	o->name = xstrdup(comp);
	o->tmp = tmp_name(comp);
	o->fd = openat(cur, o->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (o->fd < 0) {
		r = ferry_errno(errno, "%s: creating %s", path, o->tmp);
		goto out;
	}
	o->dirfd = cur == outdirfd ? dup(outdirfd) : cur;
	cur = outdirfd;
	if (o->dirfd < 0) {
		r = ferry_errno(errno, "%s", path);
		goto out;
	}
	/* Reserve a large file's space up front: a full disk shows before any data is written. */
	if (size >= SMALL_FILE && fallocate(o->fd, 0, 0, (off_t)size) != 0 && errno != EOPNOTSUPP &&
	    errno != ENOSYS)
		r = ferry_errno(errno, "%s: reserving %llu bytes", path, (unsigned long long)size);
out:
	if (cur != outdirfd)
		close(cur);
	free(copy);
	return r;
}

/* Drop a file being written (after a failure): nothing stays under the temp name. */
static void out_discard(struct out_file *o)
{
	if (o->fd >= 0) {
		close(o->fd);
		unlinkat(o->dirfd, o->tmp, 0);
	}
	if (o->dirfd >= 0)
		close(o->dirfd);
	free(o->name);
	free(o->tmp);
	o->fd = o->dirfd = -1;
	o->name = o->tmp = NULL;
	o->written = 0;
}

/* Small files written completely, waiting for a group sync and their renames. */
struct pending {
	int dirfd;
	char *tmp, *name;
	const char *path;
};

struct pending_list {
	struct pending v[PENDING_MAX];
	size_t n;
};

/* Forget the group, removing the temporary files not yet renamed. */
static void pending_discard(struct pending_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		if (l->v[i].tmp != NULL)
			unlinkat(l->v[i].dirfd, l->v[i].tmp, 0);
		close(l->v[i].dirfd);
		free(l->v[i].tmp);
		free(l->v[i].name);
	}
	l->n = 0;
}

/* Same directory as the next entry (files come sorted by path). */
static bool same_dir(const struct pending *a, const struct pending *b)
{
	size_t la = strlen(a->path) - strlen(a->name), lb = strlen(b->path) - strlen(b->name);

	return la == lb && memcmp(a->path, b->path, la) == 0;
}

/* Make the group durable: data first (syncfs per file system), then the renames. */
static int pending_flush(struct pending_list *l)
{
	dev_t synced[8];
	size_t nsynced = 0;
	int r = 0;

	for (size_t i = 0; i < l->n && r == 0; i++) {
		struct stat sb;
		size_t k;

		if (fstat(l->v[i].dirfd, &sb) != 0) {
			r = ferry_errno(errno, "%s", l->v[i].path);
			break;
		}
		for (k = 0; k < nsynced && synced[k] != sb.st_dev; k++)
			;
		if (k < nsynced)
			continue;
		if (syncfs(l->v[i].dirfd) != 0)
			r = ferry_errno(errno, "%s: writing it to disk", l->v[i].path);
		else if (nsynced < ARRAY_SIZE(synced))
			synced[nsynced++] = sb.st_dev;
	}
	for (size_t i = 0; i < l->n && r == 0; i++) {
		struct pending *e = &l->v[i];

		if (renameat(e->dirfd, e->tmp, e->dirfd, e->name) != 0) {
			r = ferry_errno(errno, "%s: renaming %s into place", e->path, e->tmp);
			break;
		}
		free(e->tmp);
		e->tmp = NULL;
	}
	for (size_t i = 0; i < l->n && r == 0; i++)
		if ((i + 1 == l->n || !same_dir(&l->v[i], &l->v[i + 1])) &&
		    fsync(l->v[i].dirfd) != 0)
			r = ferry_errno(errno, "%s: writing its directory to disk", l->v[i].path);
	pending_discard(l);
	return r;
}

static int out_finish(struct out_file *o, const struct manifest_file *f, unsigned flags,
		      struct pending_list *l)
{
	uint8_t digest[FERRY_SHA256_LEN];
	int r;

	if (o->written != f->size)
		return ferry_errf(FERRY_ECORRUPT, "%s: wrote %llu bytes but the manifest says %llu",
				  f->path, (unsigned long long)o->written,
				  (unsigned long long)f->size);
	if (flags & EXPORT_SHA256) {
		fcrypto_sha256_final(o->sha, digest);
		fcrypto_sha256_reset(o->sha);
		if (memcmp(digest, f->sha256, sizeof(digest)) != 0)
			return ferry_errf(FERRY_ECORRUPT,
					  "%s: SHA-256 of the exported file does not match the "
					  "manifest",
					  f->path);
	}
	if (fchmod(o->fd, f->mode & 0777) != 0)
		return ferry_errno(errno, "%s: setting its mode", f->path);
	if (f->size >= SMALL_FILE && fsync(o->fd) != 0)
		return ferry_errno(errno, "%s: writing it to disk", f->path);
	r = close(o->fd);
	o->fd = -1;
	if (r != 0) {
		r = ferry_errno(errno, "%s: closing it", f->path);
		unlinkat(o->dirfd, o->tmp, 0);
		return r;
	}
	if (f->size < SMALL_FILE) {
		l->v[l->n++] = (struct pending){o->dirfd, o->tmp, o->name, f->path};
		o->dirfd = -1;
		o->tmp = o->name = NULL;
		return l->n == PENDING_MAX ? pending_flush(l) : 0;
	}
	if (renameat(o->dirfd, o->tmp, o->dirfd, o->name) != 0) {
		r = ferry_errno(errno, "%s: renaming %s into place", f->path, o->tmp);
		unlinkat(o->dirfd, o->tmp, 0);
		return r;
	}
	if (fsync(o->dirfd) != 0)
		return ferry_errno(errno, "%s: writing its directory to disk", f->path);
	return 0;
}

static int write_jobs(struct epipe *p, int outdirfd, unsigned flags)
{
	struct out_file o = {.fd = -1, .dirfd = -1};
	struct pending_list *pending = xcalloc(1, sizeof(*pending));
	int r = 0;

	if (flags & EXPORT_SHA256)
		o.sha = fcrypto_sha256_new();
	for (size_t j = 0; j < p->njobs && r == 0; j++) {
		const struct job *job = &p->jobs[j];
		const struct manifest_file *f = p->files[job->file].f;
		struct eslot *s = &p->slots[j % p->nslots];

		pthread_mutex_lock(&p->mu);
		while (s->state != ESLOT_DONE)
			pthread_cond_wait(&p->cv_writer, &p->mu);
		pthread_mutex_unlock(&p->mu);

		if (s->err < 0) {
			r = ferry_errf(s->err, "%s", s->errmsg);
			break;
		}
		if (job->first_of_file)
			r = out_open(outdirfd, f->path, f->size, &o);
		if (r == 0 && job->bytes > 0) {
			r = write_full(o.fd, s->buf, job->bytes);
			if (r < 0)
				r = ferry_errf(r, "%s: writing at offset %llu: %s", f->path,
					       (unsigned long long)job->offset, ferry_strerror(r));
			if (o.sha != NULL)
				fcrypto_sha256_update(o.sha, s->buf, job->bytes);
			/* Start a large file's writeback now, so that its fsync has little left. */
			if (r == 0 && f->size >= SMALL_FILE)
				sync_file_range(o.fd, (off_t)o.written, (off_t)job->bytes,
						SYNC_FILE_RANGE_WRITE);
			o.written += job->bytes;
		}
		if (r == 0 && job->last_of_file) {
			r = out_finish(&o, f, flags, pending);
			if (r == 0) {
				if (o.dirfd >= 0)
					close(o.dirfd);
				o.dirfd = -1;
				free(o.name);
				free(o.tmp);
				o.name = o.tmp = NULL;
				o.written = 0;
			}
		}

		pthread_mutex_lock(&p->mu);
		s->state = ESLOT_FREE;
		p->tail++;
		pthread_cond_broadcast(&p->cv_decoder);
		pthread_mutex_unlock(&p->mu);
	}
	if (r == 0) {
		r = pending_flush(pending);
	} else if (pending->n > 0) {
		/* The small files before the failure are complete and verified: keep them. */
		char msg[1024];

		snprintf(msg, sizeof(msg), "%s", ferry_errmsg(r));
		pending_flush(pending);
		ferry_errf(r, "%s", msg);
	}
	free(pending);
	out_discard(&o);
	fcrypto_sha256_free(o.sha);
	return r;
}

/* Cut each file into windows; an empty file gets one empty window. */
static void plan_jobs(struct epipe *p, size_t nfiles)
{
	size_t cap = 0;

	for (size_t i = 0; i < nfiles; i++) {
		const struct efile *ef = &p->files[i];
		size_t k = 0;
		uint64_t off = 0;

		do {
			struct job j = {
			    .file = i, .first = k, .offset = off, .first_of_file = k == 0};

			while (k < ef->nrefs && j.bytes + ef->refs[k].raw_len <= WIN_SIZE) {
				j.bytes += ef->refs[k].raw_len;
				j.n++;
				k++;
			}
			off += j.bytes;
			j.last_of_file = k == ef->nrefs;
			if (p->njobs == cap) {
				cap = cap ? 2 * cap : 64;
				p->jobs = xreallocarray(p->jobs, cap, sizeof(*p->jobs));
			}
			p->jobs[p->njobs++] = j;
		} while (k < ef->nrefs);
	}
}

static int online_cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : n > MAX_DECODERS ? MAX_DECODERS : (int)n;
}

int export_version(struct store *st, const struct manifest *m, int outdirfd, unsigned flags)
{
	struct epipe p = {.st = st};
	struct codec_ctx *ctx = codec_ctx_new();
	uint8_t *buf = xmalloc(CHUNK_MAX_SIZE);
	struct store_rd *rd = NULL;
	pthread_t threads[MAX_DECODERS];
	int nthreads = 0, r;

	pthread_mutex_init(&p.mu, NULL);
	pthread_cond_init(&p.cv_decoder, NULL);
	pthread_cond_init(&p.cv_writer, NULL);
	p.files = xcalloc(m->nfiles, sizeof(*p.files));

	/* Every index first: a version that cannot be exported fails before any write. */
	r = store_rd_begin(st, &rd);
	for (uint32_t i = 0; i < m->nfiles && r == 0; i++) {
		uint32_t bad;
		uint64_t bad_off;

		p.files[i].f = &m->files[i];
		r = load_refs(rd, ctx, buf, &m->files[i], &p.files[i].refs, &p.files[i].nrefs, &bad,
			      &bad_off);
	}
	store_rd_end(rd);
	free(buf);
	codec_ctx_free(ctx);
	if (r < 0)
		goto out;
	plan_jobs(&p, m->nfiles);

	p.nslots = (size_t)online_cpus() + 2;
	p.slots = xcalloc(p.nslots, sizeof(*p.slots));
	for (int want = online_cpus(); nthreads < want; nthreads++)
		if (pthread_create(&threads[nthreads], NULL, decoder_main, &p) != 0)
			break;
	if (nthreads == 0) {
		r = ferry_errf(FERRY_EAGAIN, "cannot start a decoder thread");
		goto out;
	}
	r = write_jobs(&p, outdirfd, flags);

	pthread_mutex_lock(&p.mu);
	p.stop = true;
	pthread_cond_broadcast(&p.cv_decoder);
	pthread_mutex_unlock(&p.mu);
	for (int i = 0; i < nthreads; i++)
		pthread_join(threads[i], NULL);
	if (r == 0)
		log_debug(LOG_PUBLISH, "exported %s@%llu: %u files, %llu bytes", m->name,
			  (unsigned long long)m->version, m->nfiles,
			  (unsigned long long)manifest_total_size(m));
out:
	for (uint32_t i = 0; i < m->nfiles; i++)
		free(p.files[i].refs);
	free(p.files);
	free(p.jobs);
	for (size_t i = 0; i < p.nslots; i++)
		free(p.slots[i].buf);
	free(p.slots);
	pthread_mutex_destroy(&p.mu);
	pthread_cond_destroy(&p.cv_decoder);
	pthread_cond_destroy(&p.cv_writer);
	return r;
}

/* ---- verify ------------------------------------------------------------ */

static void report(void (*cb)(void *, const struct export_problem *), void *arg,
		   struct export_verify_stats *s, const char *path, uint64_t off,
		   const uint8_t id[32], bool piece, int code)
{
	struct export_problem pr = {.path = path, .offset = off, .piece = piece, .code = code};

	memcpy(pr.id, id, 32);
	if (code == FERRY_EINCOMPLETE)
		s->missing++;
	else
		s->corrupt++;
	if (cb != NULL)
		cb(arg, &pr);
}

int export_verify(struct store *st, const struct manifest *m,
		  void (*cb)(void *arg, const struct export_problem *p), void *arg,
		  struct export_verify_stats *stats)
{
	struct export_verify_stats s = {0};
	struct codec_ctx *ctx = codec_ctx_new();
	uint8_t *buf = xmalloc(CHUNK_MAX_SIZE);
	struct store_rd *rd = NULL;
	int r = 0;

	for (uint32_t i = 0; i < m->nfiles && r == 0; i++) {
		const struct manifest_file *f = &m->files[i];
		struct chunk_ref *refs = NULL;
		size_t nrefs = 0;
		uint64_t off = 0;
		uint32_t bad;
		int c;

		r = store_rd_begin(st, &rd);
		if (r < 0)
			break;
		c = load_refs(rd, ctx, buf, f, &refs, &nrefs, &bad, &off);
		if (c < 0) {
			static const uint8_t none[32];

			/* Chunk offsets past a bad piece are unknown: the file ends here. */
			report(cb, arg, &s, f->path, off,
			       bad < f->npieces ? f->pieces[bad]
			       : f->npieces	? f->pieces[0]
						: none,
			       true, c);
			nrefs = 0;
		}
		for (size_t k = 0; k < nrefs; k++) {
			if (k > 0 && k % VERIFY_TXN_CHUNKS == 0) {
				store_rd_end(rd);
				rd = NULL;
				r = store_rd_begin(st, &rd);
				if (r < 0)
					break;
			}
			c = check_chunk(rd, ctx, &refs[k], buf);
			if (c < 0)
				report(cb, arg, &s, f->path, off, refs[k].id, false, c);
			s.chunks++;
			s.bytes += refs[k].raw_len;
			off += refs[k].raw_len;
		}
		store_rd_end(rd);
		rd = NULL;
		free(refs);
	}
	free(buf);
	codec_ctx_free(ctx);
	if (stats != NULL)
		*stats = s;
	if (r < 0)
		return r;
	if (s.corrupt > 0)
		return ferry_errf(FERRY_ECORRUPT, "%s@%llu: %llu corrupt and %llu missing chunks",
				  m->name, (unsigned long long)m->version,
				  (unsigned long long)s.corrupt, (unsigned long long)s.missing);
	if (s.missing > 0)
		return ferry_errf(FERRY_EINCOMPLETE, "%s@%llu: %llu chunks missing", m->name,
				  (unsigned long long)m->version, (unsigned long long)s.missing);
	return 0;
}
