/*
 * publish_ingest(): turn a directory into stored chunks, index pieces and an
 * unsigned manifest body.
 *
 * The pipeline, for a machine with few cores:
 *
 *   reader thread    opens each file (component by component, O_NOFOLLOW),
 *                    preads large windows, computes the file's SHA-256 and
 *                    cuts chunks; each chunk is a slot in an ordered ring
 *   worker threads   claim slots in order, hash each chunk (BLAKE2b-256),
 *                    look it up in the store (a short read transaction per
 *                    chunk) and encode it only if absent
 *   calling thread   consumes slots in ring order (so the chunk index is in
 *                    file order), queues new chunks into a write batch and
 *                    hands it over every 16 MiB; at each file's end it
 *                    queues the file's index pieces
 *   committer thread commits each full batch (an fsync'd LMDB transaction)
 *                    while the next one fills, so the disk's wait does not
 *                    stall the hashing
 *
 * Chunks point into the reader's windows; a window is reused once the
 * reader and every chunk cut from it are done with it. The chunker needs
 * CHUNK_MAX_SIZE bytes ahead (or the end of the file), so when a window runs
 * short its unconsumed tail is copied to the start of the next one.
 *
 * The directory is walked completely before anything is read, so a symlink,
 * a device or an unreadable file is reported before any work is done.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ferry/chunker.h"
#include "ferry/codec.h"
#include "ferry/error.h"
#include "ferry/fcrypto.h"
#include "ferry/idset.h"
#include "ferry/index.h"
#include "ferry/log.h"
#include "ferry/manifest.h"
#include "ferry/publish.h"
#include "ferry/store.h"
#include "ferry/util.h"

/* Reader windows: large preads, few of them. */
#define WIN_SIZE  (8u * 1024u * 1024u)
#define WIN_COUNT 4
/* Chunks in flight between the reader and the writer. */
#define RING_SLOTS 32
/* Commit a write batch before it would grow past this (DESIGN.md: 16 MiB). */
#define BATCH_BYTES (16u * 1024u * 1024u)
#define MAX_THREADS 64

/* A regular file found by the walk. */
struct pfile {
	char *path;
	uint32_t mode;
	uint64_t size; /* bytes actually read */
	uint8_t sha256[FERRY_SHA256_LEN];
	struct chunk_ref *refs; /* writer side: the file's chunk index */
	size_t nrefs, caprefs;
	uint8_t (*pieces)[32];
	uint32_t npieces;
};

struct walk {
	struct pfile *files;
	size_t n, cap;
};

struct win {
	uint8_t *buf;
	int refs; /* the reader's own reference plus one per chunk in flight */
};

enum slot_kind { SLOT_CHUNK, SLOT_FILE_END };
enum slot_state { SLOT_FREE, SLOT_FILLED, SLOT_CLAIMED, SLOT_DONE };

struct slot {
	enum slot_state state;
	enum slot_kind kind;
	size_t file;
	const uint8_t *raw;
	size_t len;
	struct win *win;
	uint8_t id[32];
	bool stored; /* already in the store: not encoded */
	int codec;
	uint8_t *enc; /* codec_bound(CHUNK_MAX_SIZE), allocated on first use */
	size_t enc_len;
};

struct pipe {
	pthread_mutex_t mu;
	pthread_cond_t cv_reader; /* a slot or a window became free */
	pthread_cond_t cv_worker; /* a slot was filled */
	pthread_cond_t cv_writer; /* a slot is done */
	pthread_cond_t cv_commit; /* a batch was handed over, or its commit ended */
	struct store *st;
	struct walk *w;
	int dirfd;
	struct slot ring[RING_SLOTS];
	uint64_t head;	/* next sequence the reader fills */
	uint64_t claim; /* next sequence a worker claims */
	uint64_t tail;	/* next sequence the writer consumes */
	bool reader_done;
	struct win wins[WIN_COUNT];
	struct store_wr *to_commit; /* being committed, or waiting to be */
	bool commit_quit;
	int err;
	char errmsg[1024];
};

static int pipe_fail(struct pipe *p, int code)
{
	pthread_mutex_lock(&p->mu);
	if (p->err == 0) {
		p->err = code;
		strncpy(p->errmsg, ferry_errmsg(code), sizeof(p->errmsg) - 1);
	}
	pthread_cond_broadcast(&p->cv_reader);
	pthread_cond_broadcast(&p->cv_worker);
	pthread_cond_broadcast(&p->cv_writer);
	pthread_cond_broadcast(&p->cv_commit);
	pthread_mutex_unlock(&p->mu);
	return code;
}

/* ---- the walk ---------------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int cmp_pfile(const void *a, const void *b)
{
	return strcmp(((const struct pfile *)a)->path, ((const struct pfile *)b)->path);
}

static const char *kind_name(mode_t m)
{
	if (S_ISFIFO(m))
		return "fifo";
	if (S_ISSOCK(m))
		return "socket";
	if (S_ISCHR(m))
		return "character device";
	if (S_ISBLK(m))
		return "block device";
	return "special file";
}

static int walk_dir(int dfd, const char *prefix, struct walk *w)
{
	char **names = NULL;
	size_t n = 0, cap = 0;
	DIR *d = NULL;
	struct dirent *de;
	int fd, r = 0;

	fd = dup(dfd);
	if (fd < 0 || (d = fdopendir(fd)) == NULL) {
		r = ferry_errno(errno, "%s", prefix[0] ? prefix : ".");
		if (fd >= 0)
			close(fd);
		return r;
	}
	/* The duplicate shares the caller's offset, which an earlier walk left at the end. */
	rewinddir(d);
	/* Sort each directory so that the first problem reported is always the same. */
	errno = 0;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 64;
			names = xreallocarray(names, cap, sizeof(*names));
		}
		names[n++] = xstrdup(de->d_name);
	}
	if (errno != 0) {
		r = ferry_errno(errno, "%s: reading the directory", prefix[0] ? prefix : ".");
		goto out;
	}
	if (n > 1)
		qsort(names, n, sizeof(*names), cmp_str);

	for (size_t i = 0; i < n && r == 0; i++) {
		char *path = prefix[0] ? xasprintf("%s/%s", prefix, names[i]) : xstrdup(names[i]);
		struct stat sb;
		int sub;

		if (fstatat(dfd, names[i], &sb, AT_SYMLINK_NOFOLLOW) != 0) {
			r = ferry_errno(errno, "%s", path);
		} else if (S_ISLNK(sb.st_mode)) {
			r = ferry_errf(FERRY_ELOOP,
				       "%s: is a symbolic link; publish takes only "
				       "regular files and directories",
				       path);
		} else if (S_ISDIR(sb.st_mode)) {
			if (strlen(path) > MANIFEST_PATH_MAX) {
				r = ferry_errf(FERRY_ENAMETOOLONG, "%s: path longer than %u bytes",
					       path, MANIFEST_PATH_MAX);
			} else if ((sub = openat(dfd, names[i],
						 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) <
				   0) {
				r = ferry_errno(errno, "%s", path);
			} else {
				r = walk_dir(sub, path, w);
				close(sub);
			}
		} else if (S_ISREG(sb.st_mode)) {
			/* Open once now so an unreadable file fails the publish before any work. */
			fd = openat(dfd, names[i],
				    O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
			if (fd < 0) {
				r = ferry_errno(errno, "%s", path);
			} else {
				close(fd);
				r = manifest_path_check(path);
			}
			if (r == 0 && w->n >= MANIFEST_FILES_MAX)
				r = ferry_errf(FERRY_ETOOBIG, "%s: more than %u files", path,
					       MANIFEST_FILES_MAX);
			if (r == 0) {
				if (w->n == w->cap) {
					w->cap = w->cap ? 2 * w->cap : 64;
					w->files =
					    xreallocarray(w->files, w->cap, sizeof(*w->files));
				}
				memset(&w->files[w->n], 0, sizeof(w->files[0]));
				w->files[w->n].path = path;
				w->files[w->n].mode = sb.st_mode & 0777;
				w->n++;
				path = NULL;
			}
		} else {
			r = ferry_errf(FERRY_EINVAL, "%s: is a %s, not a regular file or directory",
				       path, kind_name(sb.st_mode));
		}
		free(path);
	}
out:
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	closedir(d);
	return r;
}

static void walk_free(struct walk *w)
{
	for (size_t i = 0; i < w->n; i++) {
		free(w->files[i].path);
		free(w->files[i].refs);
		free(w->files[i].pieces);
	}
	free(w->files);
}

/*
 * Open dirfd/path for reading without following a symlink anywhere on the
 * way: the tree may change between the walk and the read.
 */
static int open_beneath(int dirfd, const char *path, int *out)
{
	char *copy = xstrdup(path), *comp = copy, *slash;
	int cur = dirfd, fd, r = 0;

	while ((slash = strchr(comp, '/')) != NULL) {
		*slash = '\0';
		fd = openat(cur, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0) {
			r = ferry_errno(errno, "%s", path);
			goto out;
		}
		if (cur != dirfd)
			close(cur);
		cur = fd;
		comp = slash + 1;
	}
	/* O_NONBLOCK: a fifo swapped in after the walk must not block the open. */
	fd = openat(cur, comp, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		r = ferry_errno(errno, "%s", path);
	else
		*out = fd;
out:
	if (cur != dirfd)
		close(cur);
	free(copy);
	return r;
}

/* ---- the reader -------------------------------------------------------- */

/* Take a free window, waiting for one. NULL if the pipeline failed. */
static struct win *win_get(struct pipe *p)
{
	struct win *got = NULL;

	pthread_mutex_lock(&p->mu);
	while (p->err == 0) {
		for (int i = 0; i < WIN_COUNT; i++) {
			if (p->wins[i].refs == 0) {
				got = &p->wins[i];
				break;
			}
		}
		if (got != NULL) {
			got->refs = 1;
			if (got->buf == NULL)
				got->buf = xmalloc(WIN_SIZE);
			break;
		}
		pthread_cond_wait(&p->cv_reader, &p->mu);
	}
	pthread_mutex_unlock(&p->mu);
	return got;
}

/* Drop one reference; the caller holds p->mu. */
static void win_put_locked(struct pipe *p, struct win *w)
{
	if (w != NULL && --w->refs == 0)
		pthread_cond_broadcast(&p->cv_reader);
}

/* Queue a slot in ring order; false if the pipeline failed. */
static bool slot_push(struct pipe *p, enum slot_kind kind, size_t file, struct win *w,
		      const uint8_t *raw, size_t len)
{
	struct slot *s;

	pthread_mutex_lock(&p->mu);
	while (p->err == 0 && p->head - p->tail >= RING_SLOTS)
		pthread_cond_wait(&p->cv_reader, &p->mu);
	if (p->err != 0) {
		pthread_mutex_unlock(&p->mu);
		return false;
	}
	s = &p->ring[p->head % RING_SLOTS];
	s->kind = kind;
	s->file = file;
	s->win = w;
	s->raw = raw;
	s->len = len;
	s->stored = false;
	s->state = SLOT_FILLED;
	if (w != NULL)
		w->refs++;
	p->head++;
	pthread_cond_signal(&p->cv_worker);
	pthread_mutex_unlock(&p->mu);
	return true;
}

static int read_file_chunks(struct pipe *p, size_t idx, struct fcrypto_sha256 *sha)
{
	struct pfile *f = &p->w->files[idx];
	struct win *w = NULL;
	size_t have = 0, start = 0;
	uint64_t off = 0;
	bool eof = false;
	struct stat sb;
	int fd = -1, r;

	r = open_beneath(p->dirfd, f->path, &fd);
	if (r < 0)
		return r;
	if (fstat(fd, &sb) != 0) {
		r = ferry_errno(errno, "%s", f->path);
		goto out;
	}
	if (!S_ISREG(sb.st_mode)) {
		r = ferry_errf(FERRY_EINVAL, "%s: is no longer a regular file", f->path);
		goto out;
	}
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	fcrypto_sha256_reset(sha);

	if ((w = win_get(p)) == NULL)
		goto out;
	for (;;) {
		if (!eof && have - start < CHUNK_MAX_SIZE) {
			ssize_t n;

			if (have == WIN_SIZE) {
				struct win *nw = win_get(p);

				if (nw == NULL)
					goto out;
				memcpy(nw->buf, w->buf + start, have - start);
				pthread_mutex_lock(&p->mu);
				win_put_locked(p, w);
				pthread_mutex_unlock(&p->mu);
				w = nw;
				have -= start;
				start = 0;
			}
			n = pread(fd, w->buf + have, WIN_SIZE - have, (off_t)off);
			if (n < 0) {
				if (errno == EINTR)
					continue;
				r = ferry_errno(errno, "%s: reading at offset %llu", f->path,
						(unsigned long long)off);
				goto out;
			}
			if (n == 0) {
				eof = true;
			} else {
				fcrypto_sha256_update(sha, w->buf + have, (size_t)n);
				have += (size_t)n;
				off += (uint64_t)n;
			}
			continue;
		}
		if (have == start)
			break;
		size_t c = chunker_cut(w->buf + start, have - start);
		if (!slot_push(p, SLOT_CHUNK, idx, w, w->buf + start, c))
			goto out;
		start += c;
	}
	if (off != (uint64_t)sb.st_size) {
		r = ferry_errf(FERRY_EAGAIN,
			       "%s: changed size while it was read (%llu bytes, now %llu)", f->path,
			       (unsigned long long)sb.st_size, (unsigned long long)off);
		goto out;
	}
	/* The writer reads size and digest after the FILE_END slot, which the mutex orders. */
	f->size = off;
	fcrypto_sha256_final(sha, f->sha256);
	slot_push(p, SLOT_FILE_END, idx, NULL, NULL, 0);
out:
	if (w != NULL) {
		pthread_mutex_lock(&p->mu);
		win_put_locked(p, w);
		pthread_mutex_unlock(&p->mu);
	}
	if (fd >= 0)
		close(fd);
	return r;
}

static void *reader_main(void *arg)
{
	struct pipe *p = arg;
	struct fcrypto_sha256 *sha = fcrypto_sha256_new();

	for (size_t i = 0; i < p->w->n; i++) {
		int r = read_file_chunks(p, i, sha);

		if (r < 0) {
			pipe_fail(p, r);
			break;
		}
		pthread_mutex_lock(&p->mu);
		r = p->err;
		pthread_mutex_unlock(&p->mu);
		if (r != 0)
			break;
	}
	fcrypto_sha256_free(sha);
	pthread_mutex_lock(&p->mu);
	p->reader_done = true;
	pthread_cond_broadcast(&p->cv_worker);
	pthread_cond_broadcast(&p->cv_writer);
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

/* ---- the workers ------------------------------------------------------- */

/*
 * Hash a chunk and encode it unless the store has it. The read transaction
 * lives only for the lookup: an open one would hold up the writer's commit
 * whenever the store has to grow its map.
 */
static int work_chunk(struct pipe *p, struct slot *s, struct codec_ctx *ctx)
{
	struct store_rd *rd = NULL;
	const uint8_t *enc;
	size_t len, raw_len;
	int tag, r;

	fcrypto_id(s->id, s->raw, s->len);
	r = store_rd_begin(p->st, &rd);
	if (r < 0)
		return r;
	if (store_chunk_get(rd, s->id, &enc, &len) == 0 &&
	    codec_peek(enc, len, &tag, &raw_len) == 0 && raw_len == s->len) {
		s->stored = true;
		s->codec = tag;
		s->enc_len = len;
	}
	store_rd_end(rd);
	if (s->stored)
		return 0;
	if (s->enc == NULL)
		s->enc = xmalloc(codec_bound(CHUNK_MAX_SIZE));
	r = codec_encode(ctx, s->raw, s->len, s->enc, &s->enc_len);
	if (r < 0)
		return r;
	r = codec_peek(s->enc, s->enc_len, &tag, &raw_len);
	if (r < 0)
		return r;
	s->codec = tag;
	return 0;
}

static void *worker_main(void *arg)
{
	struct pipe *p = arg;
	struct codec_ctx *ctx = codec_ctx_new();
	int r;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		struct slot *s;

		while (p->err == 0 && p->claim == p->head && !p->reader_done)
			pthread_cond_wait(&p->cv_worker, &p->mu);
		if (p->err != 0 || p->claim == p->head)
			break;
		s = &p->ring[p->claim % RING_SLOTS];
		p->claim++;
		s->state = SLOT_CLAIMED;
		if (s->kind == SLOT_CHUNK) {
			pthread_mutex_unlock(&p->mu);
			r = work_chunk(p, s, ctx);
			if (r < 0) {
				pipe_fail(p, r);
				pthread_mutex_lock(&p->mu);
				break;
			}
			pthread_mutex_lock(&p->mu);
			win_put_locked(p, s->win);
			s->win = NULL;
			s->raw = NULL;
		}
		s->state = SLOT_DONE;
		pthread_cond_signal(&p->cv_writer);
	}
	pthread_mutex_unlock(&p->mu);
	codec_ctx_free(ctx);
	return NULL;
}

/* ---- the writer -------------------------------------------------------- */

struct writer {
	struct pipe *p;
	struct store_wr *wr;
	struct idset *seen; /* chunk ids queued during this ingest */
	struct codec_ctx *ctx;
	uint8_t *enc; /* for index pieces */
	struct publish_stats stats;
};

static void *committer_main(void *arg)
{
	struct pipe *p = arg;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		struct store_wr *wr;
		int r;

		while (p->to_commit == NULL && !p->commit_quit)
			pthread_cond_wait(&p->cv_commit, &p->mu);
		if (p->to_commit == NULL)
			break;
		wr = p->to_commit;
		pthread_mutex_unlock(&p->mu);
		r = store_wr_commit(wr);
		if (r < 0)
			pipe_fail(p, r);
		pthread_mutex_lock(&p->mu);
		p->to_commit = NULL;
		pthread_cond_broadcast(&p->cv_commit);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

/* Hand the current batch to the committer (waiting while it commits the previous one). */
static int writer_commit(struct writer *wt)
{
	struct pipe *p = wt->p;
	int r;

	if (wt->wr == NULL)
		return 0;
	pthread_mutex_lock(&p->mu);
	while (p->to_commit != NULL && p->err == 0)
		pthread_cond_wait(&p->cv_commit, &p->mu);
	r = p->err;
	if (r == 0) {
		p->to_commit = wt->wr;
		wt->wr = NULL;
		pthread_cond_signal(&p->cv_commit);
	}
	pthread_mutex_unlock(&p->mu);
	return r;
}

/* Wait until every batch handed over is committed. */
static int writer_flush(struct writer *wt)
{
	struct pipe *p = wt->p;
	int r = writer_commit(wt);

	pthread_mutex_lock(&p->mu);
	while (p->to_commit != NULL)
		pthread_cond_wait(&p->cv_commit, &p->mu);
	if (r == 0)
		r = p->err;
	pthread_mutex_unlock(&p->mu);
	return r;
}

static int writer_put(struct writer *wt, const uint8_t id[32], const uint8_t *enc, size_t len)
{
	int r;

	if (wt->wr != NULL && store_wr_pending(wt->wr) + len > BATCH_BYTES) {
		r = writer_commit(wt);
		if (r < 0)
			return r;
	}
	if (wt->wr == NULL) {
		r = store_wr_begin(wt->p->st, &wt->wr);
		if (r < 0)
			return r;
	}
	return store_wr_chunk_put(wt->wr, id, enc, len);
}

static int writer_chunk(struct writer *wt, struct slot *s)
{
	struct pfile *f = &wt->p->w->files[s->file];
	struct chunk_ref *ref;
	int r;

	if (f->nrefs == f->caprefs) {
		f->caprefs = f->caprefs ? 2 * f->caprefs : 64;
		f->refs = xreallocarray(f->refs, f->caprefs, sizeof(*f->refs));
	}
	ref = &f->refs[f->nrefs++];
	memcpy(ref->id, s->id, 32);
	ref->raw_len = (uint32_t)s->len;
	ref->enc_len = (uint32_t)s->enc_len;
	ref->codec = (uint8_t)s->codec;

	wt->stats.chunks++;
	wt->stats.raw_bytes += s->len;
	wt->stats.enc_bytes += s->enc_len;
	/* A chunk seen twice in this ingest is stored once (and counted new once). */
	if (!idset_add(wt->seen, s->id, 0) || s->stored)
		return 0;
	r = writer_put(wt, s->id, s->enc, s->enc_len);
	if (r < 0)
		return r;
	wt->stats.new_chunks++;
	wt->stats.new_raw_bytes += s->len;
	wt->stats.new_enc_bytes += s->enc_len;
	return 0;
}

static int writer_file_end(struct writer *wt, struct slot *s)
{
	struct pfile *f = &wt->p->w->files[s->file];
	struct index_piece *pieces = NULL;
	size_t npieces = 0, enc_len;
	int r;

	r = index_encode(f->refs, f->nrefs, &pieces, &npieces);
	if (r < 0)
		return r;
	f->pieces = xcalloc(npieces, sizeof(*f->pieces));
	f->npieces = (uint32_t)npieces;
	for (size_t i = 0; i < npieces && r == 0; i++) {
		memcpy(f->pieces[i], pieces[i].id, 32);
		r = codec_encode_as(wt->ctx, CODEC_RAW, pieces[i].bytes, pieces[i].len, wt->enc,
				    &enc_len);
		if (r == 0)
			r = writer_put(wt, pieces[i].id, wt->enc, enc_len);
	}
	index_pieces_free(pieces, npieces);
	free(f->refs);
	f->refs = NULL;
	f->nrefs = f->caprefs = 0;
	wt->stats.files++;
	return r;
}

static int writer_run(struct writer *wt)
{
	struct pipe *p = wt->p;
	int r = 0;

	for (;;) {
		struct slot *s;

		pthread_mutex_lock(&p->mu);
		for (;;) {
			if (p->err != 0) {
				pthread_mutex_unlock(&p->mu);
				return p->err;
			}
			if (p->tail < p->head && p->ring[p->tail % RING_SLOTS].state == SLOT_DONE)
				break;
			if (p->reader_done && p->tail == p->head) {
				pthread_mutex_unlock(&p->mu);
				return writer_flush(wt);
			}
			pthread_cond_wait(&p->cv_writer, &p->mu);
		}
		s = &p->ring[p->tail % RING_SLOTS];
		pthread_mutex_unlock(&p->mu);

		r = s->kind == SLOT_CHUNK ? writer_chunk(wt, s) : writer_file_end(wt, s);
		if (r < 0)
			return pipe_fail(p, r);

		pthread_mutex_lock(&p->mu);
		s->state = SLOT_FREE;
		p->tail++;
		pthread_cond_broadcast(&p->cv_reader);
		pthread_mutex_unlock(&p->mu);
	}
}

/* ---- publish_ingest ---------------------------------------------------- */

static int build_manifest(const struct publish_opts *opts, struct walk *w, uint8_t **body,
			  size_t *len)
{
	struct manifest m = {
	    .format = MANIFEST_FORMAT,
	    .name = (char *)opts->name,
	    .version = opts->version,
	    .label = (char *)(opts->label ? opts->label : ""),
	    .created = opts->created ? opts->created : (int64_t)time(NULL),
	    .nfiles = (uint32_t)w->n,
	};
	int r;

	memcpy(m.publisher, opts->publisher, sizeof(m.publisher));
	m.files = xcalloc(w->n, sizeof(*m.files));
	for (size_t i = 0; i < w->n; i++) {
		m.files[i].path = w->files[i].path;
		m.files[i].size = w->files[i].size;
		m.files[i].mode = w->files[i].mode;
		memcpy(m.files[i].sha256, w->files[i].sha256, 32);
		m.files[i].npieces = w->files[i].npieces;
		m.files[i].pieces = w->files[i].pieces;
	}
	r = manifest_encode(&m, body, len);
	free(m.files);
	return r;
}

static int online_cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : n > MAX_THREADS ? MAX_THREADS : (int)n;
}

int publish_ingest(struct store *st, int dirfd, const struct publish_opts *opts, uint8_t **body,
		   size_t *len, struct publish_stats *stats)
{
	struct walk w = {0};
	struct pipe *p = NULL;
	struct writer wt = {0};
	pthread_t reader, committer, workers[MAX_THREADS];
	int nthreads, started = 0, r;
	bool reader_started = false, committer_started = false;

	r = manifest_name_check(opts->name);
	if (r < 0)
		return r;
	if (opts->version == 0)
		return ferry_errf(FERRY_EINVAL, "version must be 1 or more");
	if (opts->label != NULL && strlen(opts->label) > MANIFEST_LABEL_MAX)
		return ferry_errf(FERRY_EINVAL, "label longer than %u bytes", MANIFEST_LABEL_MAX);

	r = walk_dir(dirfd, "", &w);
	if (r < 0)
		goto out;
	if (w.n > 1)
		qsort(w.files, w.n, sizeof(*w.files), cmp_pfile);
	log_debug(LOG_PUBLISH, "%s@%llu: %zu files to ingest", opts->name,
		  (unsigned long long)opts->version, w.n);

	p = xcalloc(1, sizeof(*p));
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv_reader, NULL);
	pthread_cond_init(&p->cv_worker, NULL);
	pthread_cond_init(&p->cv_writer, NULL);
	pthread_cond_init(&p->cv_commit, NULL);
	p->st = st;
	p->w = &w;
	p->dirfd = dirfd;
	wt.p = p;
	wt.ctx = codec_ctx_new();
	wt.enc = xmalloc(codec_bound(INDEX_PIECE_MAX));
	wt.seen = idset_new(0);

	nthreads = opts->threads > 0 ? MIN(opts->threads, MAX_THREADS) : online_cpus();
	for (; started < nthreads; started++) {
		if (pthread_create(&workers[started], NULL, worker_main, p) != 0) {
			r = pipe_fail(p, ferry_errf(FERRY_EAGAIN, "cannot start a worker thread"));
			break;
		}
	}
	if (r == 0) {
		if (pthread_create(&committer, NULL, committer_main, p) != 0)
			r = pipe_fail(p,
				      ferry_errf(FERRY_EAGAIN, "cannot start the commit thread"));
		else
			committer_started = true;
	}
	if (r == 0) {
		if (pthread_create(&reader, NULL, reader_main, p) != 0)
			r = pipe_fail(p,
				      ferry_errf(FERRY_EAGAIN, "cannot start the reader thread"));
		else
			reader_started = true;
	}
	if (r == 0)
		r = writer_run(&wt);
	if (r < 0)
		pipe_fail(p, r);
	if (reader_started)
		pthread_join(reader, NULL);
	pthread_mutex_lock(&p->mu);
	p->reader_done = true;
	pthread_cond_broadcast(&p->cv_worker);
	pthread_mutex_unlock(&p->mu);
	for (int i = 0; i < started; i++)
		pthread_join(workers[i], NULL);
	if (committer_started) {
		pthread_mutex_lock(&p->mu);
		p->commit_quit = true;
		pthread_cond_broadcast(&p->cv_commit);
		pthread_mutex_unlock(&p->mu);
		pthread_join(committer, NULL);
	}
	if (r < 0) {
		/* The detail was recorded on whichever thread failed. */
		r = ferry_errf(p->err, "%s", p->errmsg);
		goto out;
	}
	r = build_manifest(opts, &w, body, len);
	if (r == 0 && stats != NULL)
		*stats = wt.stats;
	if (r == 0)
		log_debug(LOG_PUBLISH,
			  "%s@%llu: %llu files, %llu bytes, %llu new chunks (%llu bytes encoded)",
			  opts->name, (unsigned long long)opts->version,
			  (unsigned long long)wt.stats.files,
			  (unsigned long long)wt.stats.raw_bytes,
			  (unsigned long long)wt.stats.new_chunks,
			  (unsigned long long)wt.stats.new_enc_bytes);
out:
	store_wr_abort(wt.wr);
	codec_ctx_free(wt.ctx);
	free(wt.enc);
	idset_free(wt.seen);
	if (p != NULL) {
		for (int i = 0; i < RING_SLOTS; i++)
			free(p->ring[i].enc);
		for (int i = 0; i < WIN_COUNT; i++)
			free(p->wins[i].buf);
		pthread_mutex_destroy(&p->mu);
		pthread_cond_destroy(&p->cv_reader);
		pthread_cond_destroy(&p->cv_worker);
		pthread_cond_destroy(&p->cv_writer);
		pthread_cond_destroy(&p->cv_commit);
		free(p);
	}
	walk_free(&w);
	return r;
}
