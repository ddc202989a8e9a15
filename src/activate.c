/*
 * Activation for local inference: materialize a version under
 * STATE_DIR/models/NAME/VERSION, switch the `current` link atomically,
 * record the head, run the on_activate hook, clean up old copies; pins; and
 * gc, which carries out the eviction policy of evict.c.
 *
 * Every path under models/ is reached with *at() calls relative to the
 * directory descriptors opened here, never following a symlink, so a link
 * planted in models/ cannot send a write or a removal elsewhere.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ferry/activate.h"
#include "ferry/catalog.h"
#include "ferry/error.h"
#include "ferry/evict.h"
#include "ferry/fcrypto.h"
#include "ferry/log.h"
#include "ferry/manifest.h"
#include "ferry/publish.h"
#include "ferry/store.h"
#include "ferry/util.h"

extern char **environ;

#define CURRENT	      "current"
#define CURRENT_TMP   ".current.tmp"
#define VNAME_MAX     32 /* ".18446744073709551615.tmp" */
#define HASH_BUF      (1u << 20)
#define HOOK_GRACE_MS 2000
/* gc measures again after each round of evictions; this bounds the rounds. */
#define GC_ROUNDS 64

/*
 * Materializing and removals under models/ happen one at a time in the
 * process, and so do switches (each reads and rewrites a head). Removals
 * also hold switch_lock, so that no switch points `current` at a version
 * between the check that it is not in use and its removal. Order: models_lock,
 * then switch_lock; a switch alone takes only switch_lock, so it never waits
 * for a long materialization.
 */
static pthread_mutex_t models_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t switch_lock = PTHREAD_MUTEX_INITIALIZER;

static void vname(char out[static VNAME_MAX], uint64_t version)
{
	snprintf(out, VNAME_MAX, "%" PRIu64, version);
}

static void vtmpname(char out[static VNAME_MAX], uint64_t version)
{
	snprintf(out, VNAME_MAX, ".%" PRIu64 ".tmp", version);
}

/* A version directory's name: digits, no leading zero, not 0, fits in 64 bits. */
static uint64_t parse_version(const char *s)
{
	uint64_t v = 0;

	if (*s < '1' || *s > '9')
		return 0;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			return 0;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	return v;
}

/* Open (creating if asked) a directory under dirfd without following a symlink. */
static int open_subdir(int dirfd, const char *name, bool create, const char *what, int *out)
{
	int fd;

	if (create) {
		if (mkdirat(dirfd, name, 0755) == 0)
			fsync(dirfd); /* the new entry is durable before anything goes in it */
		else if (errno != EEXIST)
			return ferry_errno(errno, "creating %s", what);
	}
	fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ELOOP || errno == ENOTDIR)
			return ferry_errf(FERRY_EPATH, "%s is not a directory", what);
		return ferry_errno(errno, "opening %s", what);
	}
	*out = fd;
	return 0;
}

/* STATE_DIR/models/NAME as a descriptor. */
static int open_name_dir(const char *state_dir, const char *name, bool create, int *out)
{
	char what[MANIFEST_NAME_MAX + 16];
	int sfd, mfd = -1, r;

	sfd = open(state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sfd < 0)
		return ferry_errno(errno, "opening the state directory %s", state_dir);
	r = open_subdir(sfd, "models", create, "models/", &mfd);
	if (r == 0) {
		snprintf(what, sizeof(what), "models/%s/", name);
		r = open_subdir(mfd, name, create, what, out);
	}
	if (mfd >= 0)
		close(mfd);
	close(sfd);
	return r;
}

/* Remove name under dirfd, a directory tree or anything else, never following links. */
static int rm_tree_at(int dirfd, const char *name)
{
	DIR *d;
	struct dirent *e;
	int fd, r = 0;

	if (unlinkat(dirfd, name, 0) == 0)
		return 0;
	if (errno == ENOENT)
		return 0;
	if (errno != EISDIR && errno != EPERM)
		return -errno;
	fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (d == NULL) {
		r = -errno;
		close(fd);
		return r;
	}
	while ((e = readdir(d)) != NULL && r == 0) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		r = rm_tree_at(fd, e->d_name);
	}
	closedir(d);
	if (r == 0 && unlinkat(dirfd, name, AT_REMOVEDIR) != 0)
		r = -errno;
	return r;
}

/* ---- checking a materialized tree --------------------------------------- */

struct tree_check {
	const struct manifest *m;
	const char *where; /* "models/NAME/VERSION" for messages */
	bool full;	   /* also SHA-256 */
	size_t *order;	   /* file indexes sorted by path */
	bool *seen;
	uint8_t *buf;
	struct fcrypto_sha256 *sha;
};

static int by_path(const void *a, const void *b, void *arg)
{
	const struct manifest *m = arg;

	return strcmp(m->files[*(const size_t *)a].path, m->files[*(const size_t *)b].path);
}

static int find_file(struct tree_check *c, const char *path)
{
	size_t lo = 0, hi = c->m->nfiles;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int cmp = strcmp(path, c->m->files[c->order[mid]].path);

		if (cmp == 0)
			return (int)c->order[mid];
		if (cmp < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return -1;
}

static int file_sha256(struct tree_check *c, int dirfd, const char *name, const char *path,
		       uint8_t out[static 32])
{
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC), r = 0;
	ssize_t n;

	if (fd < 0)
		return ferry_errno(errno, "%s/%s: opening it", c->where, path);
	fcrypto_sha256_reset(c->sha);
	while ((n = read(fd, c->buf, HASH_BUF)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = ferry_errno(errno, "%s/%s: reading it", c->where, path);
			break;
		}
		fcrypto_sha256_update(c->sha, c->buf, (size_t)n);
	}
	close(fd);
	if (r == 0)
		fcrypto_sha256_final(c->sha, out);
	return r;
}

static int check_dir(struct tree_check *c, int dirfd, const char *prefix)
{
	DIR *d = fdopendir(dirfd);
	struct dirent *e;
	int r = 0;

	if (d == NULL) {
		r = ferry_errno(errno, "%s/%s: listing it", c->where, prefix);
		close(dirfd);
		return r;
	}
	while (r == 0 && (e = readdir(d)) != NULL) {
		char *path;
		struct stat sb;
		int i;

		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		path = xasprintf("%s%s", prefix, e->d_name);
		if (fstatat(dirfd, e->d_name, &sb, AT_SYMLINK_NOFOLLOW) != 0) {
			r = ferry_errno(errno, "%s/%s", c->where, path);
		} else if (S_ISDIR(sb.st_mode)) {
			int fd;

			/* Deeper than any manifest path can go: it is not one of ours. */
			if (strlen(path) >= MANIFEST_PATH_MAX) {
				r = ferry_errf(FERRY_ECORRUPT,
					       "%s/%.64s...: not a file of the version", c->where,
					       path);
			} else {
				fd = openat(dirfd, e->d_name,
					    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
				if (fd < 0) {
					r = ferry_errno(errno, "%s/%s", c->where, path);
				} else {
					char *sub = xasprintf("%s/", path);

					r = check_dir(c, fd, sub);
					free(sub);
				}
			}
		} else if (!S_ISREG(sb.st_mode)) {
			r = ferry_errf(FERRY_ECORRUPT, "%s/%s: not a regular file", c->where, path);
		} else if ((i = find_file(c, path)) < 0) {
			r = ferry_errf(FERRY_ECORRUPT, "%s/%s: not a file of the version", c->where,
				       path);
		} else if ((uint64_t)sb.st_size != c->m->files[i].size) {
			r = ferry_errf(FERRY_ECORRUPT, "%s/%s: %llu bytes, the manifest says %llu",
				       c->where, path, (unsigned long long)sb.st_size,
				       (unsigned long long)c->m->files[i].size);
		} else {
			uint8_t sum[32];

			c->seen[i] = true;
			if (c->full && (r = file_sha256(c, dirfd, e->d_name, path, sum)) == 0 &&
			    memcmp(sum, c->m->files[i].sha256, 32) != 0)
				r = ferry_errf(FERRY_ECORRUPT,
					       "%s/%s: SHA-256 does not match the manifest",
					       c->where, path);
		}
		free(path);
	}
	closedir(d);
	return r;
}

/*
 * Does the directory name under namefd hold exactly m's files, of the right
 * sizes (and, if full, SHA-256)? FERRY_ECORRUPT naming the first difference.
 */
static int check_tree(int namefd, const char *name, const struct manifest *m, bool full)
{
	struct tree_check c = {.m = m, .full = full};
	char where[MANIFEST_NAME_MAX + VNAME_MAX + 16];
	int fd, r;

	snprintf(where, sizeof(where), "models/%s/%s", m->name, name);
	c.where = where;
	fd = openat(namefd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return ferry_errno(errno, "%s", where);
	c.order = xreallocarray(NULL, m->nfiles ? m->nfiles : 1, sizeof(*c.order));
	c.seen = xcalloc(m->nfiles ? m->nfiles : 1, sizeof(*c.seen));
	for (size_t i = 0; i < m->nfiles; i++)
		c.order[i] = i;
	qsort_r(c.order, m->nfiles, sizeof(*c.order), by_path, (void *)m);
	if (full) {
		c.buf = xmalloc(HASH_BUF);
		c.sha = fcrypto_sha256_new();
	}
	r = check_dir(&c, fd, "");
	for (size_t i = 0; r == 0 && i < m->nfiles; i++)
		if (!c.seen[i])
			r = ferry_errf(FERRY_ECORRUPT, "%s/%s: missing", where, m->files[i].path);
	free(c.order);
	free(c.seen);
	free(c.buf);
	fcrypto_sha256_free(c.sha);
	return r;
}

/* ---- step 1: prepare ---------------------------------------------------- */

static int space_check(int namefd, const struct manifest *m, uint64_t min_free)
{
	struct statvfs vfs;
	uint64_t avail, need = manifest_total_size(m);
	char a[32], b[32], c[32];

	if (fstatvfs(namefd, &vfs) != 0)
		return ferry_errno(errno, "models/%s/: measuring free space", m->name);
	avail = (uint64_t)vfs.f_bavail * vfs.f_frsize;
	if (avail >= need && avail - need >= min_free)
		return 0;
	return ferry_errf(FERRY_ENOSPC,
			  "its files need %s under models/%s/ but only %s is free and "
			  "min_free_space keeps %s",
			  fmt_bytes(a, sizeof(a), need), m->name, fmt_bytes(b, sizeof(b), avail),
			  fmt_bytes(c, sizeof(c), min_free));
}

/* Export m into .VERSION.tmp, check it and rename it to VERSION (swapping out a bad copy). */
static int materialize(struct store *st, int namefd, const struct manifest *m, bool replace)
{
	char v[VNAME_MAX], tmp[VNAME_MAX];
	int tfd = -1, r;

	vname(v, m->version);
	vtmpname(tmp, m->version);
	if ((r = rm_tree_at(namefd, tmp)) < 0)
		return ferry_errf(r, "models/%s/%s: removing a stale copy: %s", m->name, tmp,
				  ferry_strerror(r));
	if ((r = open_subdir(namefd, tmp, true, tmp, &tfd)) < 0)
		return r;
	r = export_version(st, m, tfd, EXPORT_SHA256);
	if (r == 0)
		r = check_tree(namefd, tmp, m, false);
	if (r == 0 && fsync(tfd) != 0)
		r = ferry_errno(errno, "models/%s/%s: writing it to disk", m->name, tmp);
	close(tfd);
	if (r == 0) {
		/* A bad copy may be what `current` points at: swap, so VERSION never vanishes. */
		if (replace ? renameat2(namefd, tmp, namefd, v, RENAME_EXCHANGE) != 0
			    : renameat(namefd, tmp, namefd, v) != 0)
			r = ferry_errno(errno, "models/%s/%s: renaming it to %s", m->name, tmp, v);
		else if (fsync(namefd) != 0)
			r = ferry_errno(errno, "models/%s/: writing it to disk", m->name);
	}
	rm_tree_at(namefd, tmp);
	return r;
}

int activate_prepare(struct store *st, const char *state_dir, const struct manifest *m,
		     uint64_t min_free_space, bool *materialized)
{
	char v[VNAME_MAX];
	struct stat sb;
	bool replace = false;
	int namefd = -1, r;

	*materialized = false;
	vname(v, m->version);
	pthread_mutex_lock(&models_lock);
	if ((r = open_name_dir(state_dir, m->name, true, &namefd)) < 0)
		goto out;
	if (fstatat(namefd, v, &sb, AT_SYMLINK_NOFOLLOW) == 0) {
		r = S_ISDIR(sb.st_mode)
			? check_tree(namefd, v, m, true)
			: ferry_errf(FERRY_ECORRUPT, "models/%s/%s: not a directory", m->name, v);
		if (r == 0)
			goto out;
		log_warn(LOG_MAIN, "%s; materializing %s@%" PRIu64 " again", ferry_errmsg(r),
			 m->name, m->version);
		replace = true;
	} else if (errno != ENOENT) {
		r = ferry_errno(errno, "models/%s/%s", m->name, v);
		goto out;
	}
	if ((r = space_check(namefd, m, min_free_space)) < 0)
		goto out;
	if ((r = materialize(st, namefd, m, replace)) < 0)
		goto out;
	*materialized = true;
	log_info(LOG_MAIN, "materialized %s@%" PRIu64 ": %u files, %" PRIu64 " bytes", m->name,
		 m->version, m->nfiles, manifest_total_size(m));
out:
	if (namefd >= 0)
		close(namefd);
	pthread_mutex_unlock(&models_lock);
	return r;
}

int activate_check(const char *state_dir, const struct manifest *m)
{
	char v[VNAME_MAX];
	struct stat sb;
	int namefd = -1, r;

	vname(v, m->version);
	/* Under models_lock: a cleanup or a new copy must not change the tree mid-check. */
	pthread_mutex_lock(&models_lock);
	r = open_name_dir(state_dir, m->name, false, &namefd);
	if (r == 0 && fstatat(namefd, v, &sb, AT_SYMLINK_NOFOLLOW) != 0)
		r = ferry_errno(errno, "models/%s/%s", m->name, v);
	else if (r == 0)
		r = S_ISDIR(sb.st_mode)
			? check_tree(namefd, v, m, true)
			: ferry_errf(FERRY_ECORRUPT, "models/%s/%s: not a directory", m->name, v);
	if (namefd >= 0)
		close(namefd);
	pthread_mutex_unlock(&models_lock);
	return r;
}

/* ---- step 2: switch ----------------------------------------------------- */

bool activate_auto_eligible(const struct store_head *h, uint64_t version)
{
	return version > h->active && version > h->held;
}

/* The version `current` points at; 0 if there is no link or it is not one of ours. */
static uint64_t read_current(int namefd, const char *name)
{
	char buf[VNAME_MAX];
	ssize_t n = readlinkat(namefd, CURRENT, buf, sizeof(buf) - 1);
	uint64_t v;

	if (n < 0)
		return 0;
	buf[n] = '\0';
	v = parse_version(buf);
	if (v == 0)
		log_warn(LOG_MAIN, "models/%s/current points at \"%s\", not a version", name, buf);
	return v;
}

/* Point current at version (0: remove it), durably: symlink to a temp name, one rename. */
static int set_current(int namefd, const char *name, uint64_t version)
{
	char v[VNAME_MAX];

	if (version == 0) {
		if (unlinkat(namefd, CURRENT, 0) != 0 && errno != ENOENT)
			return ferry_errno(errno, "models/%s/current: removing it", name);
	} else {
		vname(v, version);
		if (unlinkat(namefd, CURRENT_TMP, 0) != 0 && errno != ENOENT)
			return ferry_errno(errno, "models/%s/%s: removing a stale link", name,
					   CURRENT_TMP);
		if (symlinkat(v, namefd, CURRENT_TMP) != 0)
			return ferry_errno(errno, "models/%s/%s: creating the link", name,
					   CURRENT_TMP);
		if (renameat(namefd, CURRENT_TMP, namefd, CURRENT) != 0) {
			int r = ferry_errno(errno,
					    "models/%s/current: renaming the new link into "
					    "place",
					    name);

			unlinkat(namefd, CURRENT_TMP, 0);
			return r;
		}
	}
	if (fsync(namefd) != 0)
		return ferry_errno(errno, "models/%s/: writing it to disk", name);
	return 0;
}

/* Mark a materialized version as used now (the eviction order reads it back). */
static void touch(int namefd, uint64_t version)
{
	char v[VNAME_MAX];

	if (version == 0)
		return;
	vname(v, version);
	utimensat(namefd, v, NULL, AT_SYMLINK_NOFOLLOW);
}

static int put_head(struct store *st, const char *name, const struct store_head *h)
{
	struct store_wr *wr;
	int r = store_wr_begin(st, &wr);

	if (r < 0)
		return r;
	if ((r = store_wr_head_put(wr, name, h)) < 0) {
		store_wr_abort(wr);
		return r;
	}
	return store_wr_commit(wr);
}

int activate_switch(struct store *st, const char *state_dir, const char *name, uint64_t version,
		    bool rollback, unsigned flags, struct activate_result *res)
{
	struct store_head h, nh;
	struct store_rd *rd = NULL;
	struct stat sb;
	char v[VNAME_MAX];
	uint64_t linked, cur;
	int namefd = -1, r;

	res->skipped = res->switched = false;
	vname(v, version);
	pthread_mutex_lock(&switch_lock);
	if ((r = open_name_dir(state_dir, name, false, &namefd)) < 0)
		goto out;
	if (fstatat(namefd, v, &sb, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(sb.st_mode)) {
		r = ferry_errf(FERRY_ENOENT, "%s@%" PRIu64 " is not materialized under models/%s/",
			       name, version, name);
		goto out;
	}
	if ((r = store_rd_begin(st, &rd)) < 0)
		goto out;
	r = store_head_get(rd, name, &h);
	store_rd_end(rd);
	if (r < 0)
		goto out;

	/* The link is what inference sees: if a crash came between link and head, it wins. */
	linked = read_current(namefd, name);
	cur = linked ? linked : h.active;
	if (linked != 0 && linked != h.active)
		log_warn(LOG_MAIN,
			 "models/%s/current points at %" PRIu64 " but the store says %" PRIu64
			 "; going by the link",
			 name, linked, h.active);
	if (rollback && h.previous != version) {
		r = ferry_errf(h.previous ? FERRY_EAGAIN : FERRY_ENOENT,
			       "model '%s': the previous version is now %" PRIu64 ", not %" PRIu64,
			       name, h.previous, version);
		goto out;
	}
	if ((flags & ACTIVATE_AUTO) && !(activate_auto_eligible(&h, version) && version > cur)) {
		res->skipped = true;
		res->active = h.active;
		res->previous = h.previous;
		res->held = h.held;
		goto out;
	}

	nh = h;
	nh.active = version;
	if (version != cur)
		nh.previous = cur;
	if (rollback)
		nh.held = cur;
	else if (flags & ACTIVATE_AUTO)
		nh.held = 0;
	else
		/* Going back by hand holds auto-activation like a rollback does. */
		nh.held = version < cur ? MAX(cur, h.held) : 0;

	if (linked != version && (r = set_current(namefd, name, version)) < 0)
		goto out;
	if (memcmp(&nh, &h, sizeof(h)) != 0 && (r = put_head(st, name, &nh)) < 0) {
		char msg[512];

		snprintf(msg, sizeof(msg), "%s", ferry_errmsg(r));
		if (linked != version && set_current(namefd, name, linked) < 0)
			log_err(LOG_MAIN,
				"models/%s/current: could not put the link back to %" PRIu64, name,
				linked);
		r = ferry_errf(r,
			       "%s@%" PRIu64 ": the store could not record the switch (%s); "
			       "%s stays at version %" PRIu64,
			       name, version, msg, name, linked);
		goto out;
	}
	touch(namefd, cur);
	touch(namefd, version);
	res->switched = version != cur;
	res->active = nh.active;
	res->previous = nh.previous;
	res->held = nh.held;
	if (res->switched)
		log_notice(LOG_MAIN, "%s: version %" PRIu64 " is active%s (was %" PRIu64 ")", name,
			   version, rollback ? " after a rollback" : "", cur);
out:
	if (namefd >= 0)
		close(namefd);
	pthread_mutex_unlock(&switch_lock);
	return r;
}

/* ---- step 3: the hook --------------------------------------------------- */

static bool env_ours(const char *e)
{
	static const char *const names[] = {
	    "FERRY_MODEL=", "FERRY_VERSION=", "FERRY_PATH=", "FERRY_PREVIOUS="};

	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (strncmp(e, names[i], strlen(names[i])) == 0)
			return true;
	return false;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Wait for pid until deadline (monotonic ms); true once it has exited. */
static bool wait_until(pid_t pid, uint64_t deadline, int *status)
{
	unsigned step = 5;

	for (;;) {
		pid_t w = waitpid(pid, status, WNOHANG);

		if (w == pid || (w < 0 && errno == ECHILD)) {
			if (w < 0)
				*status = 0; /* reaped elsewhere (SIGCHLD ignored): no status */
			return true;
		}
		if (w < 0 && errno != EINTR)
			return false;
		if (now_ms() >= deadline)
			return false;
		sleep_ms(step);
		step = MIN(step * 2, 100u);
	}
}

int activate_hook(const char *cmd, unsigned timeout_s, const char *state_dir, const char *name,
		  uint64_t version, uint64_t previous)
{
	char *abs = realpath(state_dir, NULL);
	char **envp;
	size_t n = 0, k = 0;
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, all;
	pid_t pid;
	int status = 0, r;
	char *argv[] = {"sh", "-c", (char *)cmd, NULL};

	if (timeout_s == 0)
		timeout_s = ACTIVATE_HOOK_TIMEOUT_S;
	while (environ[n] != NULL)
		n++;
	envp = xcalloc(n + 5, sizeof(*envp));
	for (size_t i = 0; i < n; i++)
		if (!env_ours(environ[i]))
			envp[k++] = environ[i];
	envp[k++] = xasprintf("FERRY_MODEL=%s", name);
	envp[k++] = xasprintf("FERRY_VERSION=%" PRIu64, version);
	envp[k++] =
	    xasprintf("FERRY_PATH=%s/models/%s/%" PRIu64, abs ? abs : state_dir, name, version);
	envp[k++] = xasprintf("FERRY_PREVIOUS=%" PRIu64, previous);

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawnattr_init(&attr);
	/* Its own group, so a timeout reaches whatever it started; the default signal state. */
	sigemptyset(&none);
	sigfillset(&all);
	posix_spawnattr_setpgroup(&attr, 0);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &all);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
					    POSIX_SPAWN_SETSIGDEF);
	r = posix_spawn(&pid, "/bin/sh", &fa, &attr, argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	for (size_t i = k - 4; i < k; i++)
		free(envp[i]);
	free(envp);
	free(abs);
	if (r != 0)
		return ferry_errno(r, "on_activate: starting /bin/sh");

	if (!wait_until(pid, now_ms() + (uint64_t)timeout_s * 1000, &status)) {
		kill(-pid, SIGTERM);
		if (!wait_until(pid, now_ms() + HOOK_GRACE_MS, &status)) {
			kill(-pid, SIGKILL);
			while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
				;
		}
		return ferry_errf(FERRY_ETIMEDOUT,
				  "on_activate for %s@%" PRIu64
				  " did not finish within %u s and was stopped",
				  name, version, timeout_s);
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFSIGNALED(status))
		return ferry_errf(FERRY_EIO,
				  "on_activate for %s@%" PRIu64 " was killed by signal %d", name,
				  version, WTERMSIG(status));
	return ferry_errf(FERRY_EIO, "on_activate for %s@%" PRIu64 " exited with status %d", name,
			  version, WEXITSTATUS(status));
}

/* ---- step 4: cleanup ---------------------------------------------------- */

struct mat {
	uint64_t version;
	int64_t mtime;
};

/* The materialized versions under namefd; removes stale temporaries on the way. */
static int list_materialized(int namefd, const char *name, struct mat **out, size_t *nout)
{
	int fd = dup(namefd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *e;
	struct mat *v = NULL;
	size_t n = 0;

	if (d == NULL) {
		int r = ferry_errno(errno, "models/%s/: listing it", name);

		if (fd >= 0)
			close(fd);
		return r;
	}
	while ((e = readdir(d)) != NULL) {
		size_t len = strlen(e->d_name);
		struct stat sb;
		uint64_t ver;

		if (e->d_name[0] == '.' && len > 5 && strcmp(e->d_name + len - 4, ".tmp") == 0 &&
		    strcmp(e->d_name, CURRENT_TMP) != 0) {
			if (rm_tree_at(namefd, e->d_name) == 0)
				log_info(LOG_MAIN, "models/%s/%s: removed a stale temporary", name,
					 e->d_name);
			continue;
		}
		if ((ver = parse_version(e->d_name)) == 0 ||
		    fstatat(namefd, e->d_name, &sb, AT_SYMLINK_NOFOLLOW) != 0 ||
		    !S_ISDIR(sb.st_mode))
			continue;
		v = xreallocarray(v, n + 1, sizeof(*v));
		v[n++] = (struct mat){ver, (int64_t)sb.st_mtime};
	}
	closedir(d);
	*out = v;
	*nout = n;
	return 0;
}

int activate_cleanup(struct store *st, const char *state_dir, const char *name,
		     unsigned keep_versions, unsigned *removed)
{
	struct store_head h;
	struct store_rd *rd = NULL;
	struct evict_version *ev = NULL;
	struct mat *mat = NULL;
	size_t n = 0, *out = NULL, k;
	uint64_t linked;
	int namefd = -1, r;

	if (removed != NULL)
		*removed = 0;
	/* No materializing, and no switch between reading the head and removing. */
	pthread_mutex_lock(&models_lock);
	pthread_mutex_lock(&switch_lock);
	if ((r = open_name_dir(state_dir, name, false, &namefd)) < 0) {
		if (r == FERRY_ENOENT)
			r = 0; /* nothing materialized */
		goto out;
	}
	if ((r = list_materialized(namefd, name, &mat, &n)) < 0 || keep_versions == 0 || n == 0)
		goto out;
	linked = read_current(namefd, name);
	if ((r = store_rd_begin(st, &rd)) < 0 || (r = store_head_get(rd, name, &h)) < 0)
		goto out;
	ev = xcalloc(n, sizeof(*ev));
	out = xcalloc(n, sizeof(*out));
	for (size_t i = 0; i < n; i++)
		ev[i] = (struct evict_version){.name = name,
					       .version = mat[i].version,
					       .last_used = mat[i].mtime,
					       .active = mat[i].version == h.active ||
							 mat[i].version == linked,
					       .previous = mat[i].version == h.previous,
					       .pinned = store_pinned(rd, name, mat[i].version)};
	store_rd_end(rd);
	rd = NULL;
	k = evict_candidates(ev, n, keep_versions, out);
	for (size_t i = 0; i < k; i++) {
		char v[VNAME_MAX];
		int e;

		vname(v, ev[out[i]].version);
		if ((e = rm_tree_at(namefd, v)) < 0) {
			r = ferry_errf(e, "models/%s/%s: removing it: %s", name, v,
				       ferry_strerror(e));
			break;
		}
		log_info(LOG_MAIN, "models/%s/%s: removed (keep_versions = %u)", name, v,
			 keep_versions);
		if (removed != NULL)
			(*removed)++;
	}
	if (k > 0)
		fsync(namefd);
out:
	store_rd_end(rd);
	if (namefd >= 0)
		close(namefd);
	pthread_mutex_unlock(&switch_lock);
	pthread_mutex_unlock(&models_lock);
	free(ev);
	free(out);
	free(mat);
	return r;
}

/* ---- the whole activation ----------------------------------------------- */

static int check_complete(struct store *st, const struct manifest *m)
{
	struct catalog_presence p;
	struct store_rd *rd;
	char a[32], b[32];
	int r = store_rd_begin(st, &rd);

	if (r < 0)
		return r;
	r = catalog_presence(rd, m, &p);
	store_rd_end(rd);
	if (r < 0)
		return r;
	if (!p.index_complete)
		return ferry_errf(FERRY_EINCOMPLETE,
				  "not complete: chunk index pieces are missing (fetch it first)");
	if (p.have_chunks < p.need_chunks)
		return ferry_errf(FERRY_EINCOMPLETE,
				  "not complete: %" PRIu64 " of %" PRIu64
				  " chunks (%s of %s) are present (fetch it first)",
				  p.have_chunks, p.need_chunks,
				  fmt_bytes(a, sizeof(a), p.have_bytes),
				  fmt_bytes(b, sizeof(b), p.need_bytes));
	return 0;
}

/* The detail of a failed activation: what failed, and what stays active. */
static int failed(struct store *st, const struct manifest *m, int r)
{
	struct store_head h = {0};
	struct store_rd *rd;
	char msg[1024];

	snprintf(msg, sizeof(msg), "%s", ferry_errmsg(r));
	if (store_rd_begin(st, &rd) == 0) {
		store_head_get(rd, m->name, &h);
		store_rd_end(rd);
	}
	if (h.active == 0)
		return ferry_errf(r, "cannot activate %s@%" PRIu64 ": %s; %s has no active version",
				  m->name, m->version, msg, m->name);
	return ferry_errf(r, "cannot activate %s@%" PRIu64 ": %s; %s stays at version %" PRIu64,
			  m->name, m->version, msg, m->name, h.active);
}

static int run(struct store *st, const struct trust *t, const char *state_dir, const char *name,
	       uint64_t version, bool rollback, const struct activate_opts *o,
	       struct activate_result *res)
{
	struct manifest *m = NULL;
	int r, c;

	if ((r = catalog_load(st, t, name, version, &m)) < 0)
		return r;
	if ((r = check_complete(st, m)) < 0 ||
	    (r = activate_prepare(st, state_dir, m, o->min_free_space, &res->materialized)) < 0 ||
	    (r = activate_switch(st, state_dir, name, m->version, rollback, rollback ? 0 : o->flags,
				 res)) < 0)
		goto out;
	if (res->skipped)
		goto out;
	if (res->switched && o->on_activate != NULL && o->on_activate[0] != '\0') {
		res->hook_ran = true;
		res->hook_rc = activate_hook(o->on_activate, o->hook_timeout_s, state_dir, name,
					     res->active, res->previous);
		if (res->hook_rc < 0)
			log_warn(LOG_MAIN, "%s (the switch to %s@%" PRIu64 " stands)",
				 ferry_errmsg(res->hook_rc), name, res->active);
	}
	/* Old copies are a matter of disk space: their removal failing fails nothing. */
	if ((c = activate_cleanup(st, state_dir, name, o->keep_versions, &res->removed)) < 0)
		log_warn(LOG_MAIN, "%s", ferry_errmsg(c));
out:
	if (r < 0)
		r = failed(st, m, r);
	manifest_free(m);
	return r;
}

int activate_version(struct store *st, const struct trust *t, const char *state_dir,
		     const char *name, uint64_t version, const struct activate_opts *o,
		     struct activate_result *res)
{
	struct store_head h;
	struct store_rd *rd;
	int r;

	memset(res, 0, sizeof(*res));
	if ((r = manifest_name_check(name)) < 0)
		return r;
	if (o->flags & ACTIVATE_AUTO) {
		/* Not worth materializing what the switch would refuse. */
		if ((r = store_rd_begin(st, &rd)) < 0)
			return r;
		r = store_head_get(rd, name, &h);
		store_rd_end(rd);
		if (r < 0)
			return r;
		if (version != 0 && !activate_auto_eligible(&h, version)) {
			res->skipped = true;
			res->active = h.active;
			res->previous = h.previous;
			res->held = h.held;
			return 0;
		}
	}
	return run(st, t, state_dir, name, version, false, o, res);
}

int activate_rollback(struct store *st, const struct trust *t, const char *state_dir,
		      const char *name, const struct activate_opts *o, struct activate_result *res)
{
	struct store_head h;
	struct store_rd *rd;
	int r;

	memset(res, 0, sizeof(*res));
	if ((r = manifest_name_check(name)) < 0)
		return r;
	if ((r = store_rd_begin(st, &rd)) < 0)
		return r;
	r = store_head_get(rd, name, &h);
	store_rd_end(rd);
	if (r < 0)
		return r;
	if (h.previous == 0)
		return ferry_errf(FERRY_ENOENT,
				  "model '%s' has no previous version to roll back to", name);
	return run(st, t, state_dir, name, h.previous, true, o, res);
}

/* ---- pins --------------------------------------------------------------- */

struct pin_walk {
	struct store_rd *rd;
	uint64_t *versions;
	size_t n;
};

static int collect_pinned(void *arg, const char *name, uint64_t version, const uint8_t *bytes,
			  size_t len)
{
	struct pin_walk *w = arg;

	if (store_pinned(w->rd, name, version)) {
		w->versions = xreallocarray(w->versions, w->n + 1, sizeof(*w->versions));
		w->versions[w->n++] = version;
	}
	return 0;
}

int activate_pin(struct store *st, const char *name, uint64_t version, bool pin)
{
	struct pin_walk w = {0};
	struct store_head h;
	struct store_wr *wr = NULL;
	const uint8_t *bytes;
	size_t len;
	int r;

	if ((r = manifest_name_check(name)) < 0)
		return r;
	if ((r = store_rd_begin(st, &w.rd)) < 0)
		return r;
	if (version == 0 && pin) {
		if ((r = store_head_get(w.rd, name, &h)) < 0)
			goto out;
		if (h.active == 0) {
			r = ferry_errf(FERRY_ENOENT,
				       "model '%s' has no active version; name the version to pin",
				       name);
			goto out;
		}
		version = h.active;
	}
	if (version == 0) {
		r = store_manifest_foreach(w.rd, name, collect_pinned, &w);
	} else if (pin && store_manifest_get(w.rd, name, version, &bytes, &len) < 0) {
		r = ferry_errf(FERRY_ENOENT, "model '%s' has no version %" PRIu64 " in the store",
			       name, version);
	} else if (store_pinned(w.rd, name, version) != pin) {
		w.versions = xmalloc(sizeof(*w.versions));
		w.versions[w.n++] = version;
	}
	store_rd_end(w.rd);
	w.rd = NULL;
	if (r < 0 || w.n == 0)
		goto out;
	if ((r = store_wr_begin(st, &wr)) < 0)
		goto out;
	for (size_t i = 0; i < w.n && r == 0; i++)
		r = store_wr_pin(wr, name, w.versions[i], pin);
	if (r < 0) {
		store_wr_abort(wr);
		goto out;
	}
	if ((r = store_wr_commit(wr)) < 0)
		goto out;
	for (size_t i = 0; i < w.n; i++)
		log_info(LOG_MAIN, "%s@%" PRIu64 " %s", name, w.versions[i],
			 pin ? "pinned" : "unpinned");
	r = (int)w.n;
out:
	store_rd_end(w.rd);
	free(w.versions);
	return r;
}

/* ---- gc ----------------------------------------------------------------- */

struct gc_item {
	char name[MANIFEST_NAME_MAX + 1];
	struct evict_version ev;
};

struct gc_walk {
	const char *state_dir;
	struct store_rd *rd;
	struct gc_item *items;
	size_t n;
	char head_name[MANIFEST_NAME_MAX + 1]; /* the head below belongs to this name */
	struct store_head head;
};

/* When a version was last used: its materialized copy's time, else its publication. */
static int64_t last_used(const char *state_dir, const char *name, uint64_t version, int64_t created)
{
	char *path = xasprintf("%s/models/%s/%" PRIu64, state_dir, name, version);
	struct stat sb;
	int64_t t = created;

	if (lstat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
		t = (int64_t)sb.st_mtime;
	free(path);
	return t;
}

static int gc_collect(void *arg, const char *name, uint64_t version, const uint8_t *bytes,
		      size_t len)
{
	struct gc_walk *w = arg;
	struct manifest *m = NULL;
	struct catalog_presence p;
	const uint8_t *body;
	uint8_t sig[64];
	size_t blen;
	struct gc_item *it;
	int r;

	/* Accepted manifests are read as gc reads them: no trust list needed to evict. */
	if ((r = manifest_envelope(bytes, len, &body, &blen, sig)) < 0 ||
	    (r = manifest_decode_body(body, blen, &m)) < 0 ||
	    (r = catalog_presence(w->rd, m, &p)) < 0) {
		r = ferry_errf(r, "model '%s' version %" PRIu64 ": %s", name, version,
			       ferry_errmsg(r));
		goto out;
	}
	if (strcmp(w->head_name, name) != 0) {
		snprintf(w->head_name, sizeof(w->head_name), "%s", name);
		if ((r = store_head_get(w->rd, name, &w->head)) < 0)
			goto out;
	}
	w->items = xreallocarray(w->items, w->n + 1, sizeof(*w->items));
	it = &w->items[w->n++];
	snprintf(it->name, sizeof(it->name), "%s", name);
	it->ev =
	    (struct evict_version){.version = version,
				   .bytes = p.have_bytes,
				   .last_used = last_used(w->state_dir, name, version, m->created),
				   .active = version == w->head.active,
				   .previous = version == w->head.previous,
				   .pinned = store_pinned(w->rd, name, version)};
out:
	manifest_free(m);
	return r;
}

/*
 * Evict one version: its manifest, then its materialized copy. Returns 1
 * without evicting if a switch or a pin made it protected since gc looked.
 */
static int evict_one(struct store *st, const char *state_dir, const struct gc_item *it)
{
	struct store_rd *rd = NULL;
	struct store_wr *wr = NULL;
	struct store_head h;
	char v[VNAME_MAX];
	int namefd = -1, r;
	bool pinned;

	vname(v, it->ev.version);
	/* No switch may point `current` at it between the check and the removal. */
	pthread_mutex_lock(&models_lock);
	pthread_mutex_lock(&switch_lock);
	if (open_name_dir(state_dir, it->name, false, &namefd) < 0)
		namefd = -1;
	if ((r = store_rd_begin(st, &rd)) < 0 || (r = store_head_get(rd, it->name, &h)) < 0)
		goto out;
	pinned = store_pinned(rd, it->name, it->ev.version);
	store_rd_end(rd);
	rd = NULL;
	if (pinned || h.active == it->ev.version || h.previous == it->ev.version ||
	    (namefd >= 0 && read_current(namefd, it->name) == it->ev.version)) {
		r = 1;
		goto out;
	}
	if ((r = store_wr_begin(st, &wr)) < 0)
		goto out;
	if ((r = store_wr_manifest_del(wr, it->name, it->ev.version)) < 0) {
		store_wr_abort(wr);
		goto out;
	}
	if ((r = store_wr_commit(wr)) < 0)
		goto out;
	log_info(LOG_MAIN, "evicted %s@%" PRIu64 " (%" PRIu64 " bytes in the store)", it->name,
		 it->ev.version, it->ev.bytes);
	if (namefd >= 0) {
		int e = rm_tree_at(namefd, v);

		if (e < 0)
			log_warn(LOG_MAIN, "models/%s/%s: removing it: %s", it->name, v,
				 ferry_strerror(e));
		fsync(namefd);
	}
out:
	store_rd_end(rd);
	if (namefd >= 0)
		close(namefd);
	pthread_mutex_unlock(&switch_lock);
	pthread_mutex_unlock(&models_lock);
	return r;
}

int activate_gc(struct store *st, const char *state_dir, const struct activate_gc_opts *o,
		struct activate_gc_result *res)
{
	struct store_stats s0, s;
	uint64_t fc, fb;
	int r;

	memset(res, 0, sizeof(*res));
	if ((r = store_stats(st, &s0)) < 0)
		return r;
	res->usage_before = res->usage_after = s0.chunk_bytes;
	if ((r = catalog_gc(st, &res->freed_chunks, &res->freed_bytes)) < 0)
		return r;
	for (int round = 0; round < GC_ROUNDS; round++) {
		struct gc_walk w = {.state_dir = state_dir};
		struct evict_limits l;
		struct evict_version *ev;
		uint64_t reclaimed;
		size_t *plan, k;

		if ((r = store_stats(st, &s)) < 0)
			return r;
		res->usage_after = s.chunk_bytes;
		if ((r = store_rd_begin(st, &w.rd)) < 0)
			return r;
		r = store_manifest_foreach(w.rd, NULL, gc_collect, &w);
		store_rd_end(w.rd);
		if (r < 0) {
			free(w.items);
			return r;
		}
		for (size_t i = 0; i < w.n; i++)
			w.items[i].ev.name = w.items[i].name;
		/* What the store freed is reusable space, though the file keeps its size. */
		reclaimed = s0.chunk_bytes > s.chunk_bytes ? s0.chunk_bytes - s.chunk_bytes : 0;
		l = (struct evict_limits){.quota = o->cache_quota,
					  .usage = s.chunk_bytes,
					  .fs_free = s.fs_free + reclaimed,
					  .min_free_space = o->min_free_space,
					  .keep_versions = o->keep_versions};
		ev = xcalloc(w.n ? w.n : 1, sizeof(*ev));
		for (size_t i = 0; i < w.n; i++)
			ev[i] = w.items[i].ev;
		plan = xcalloc(w.n ? w.n : 1, sizeof(*plan));
		k = evict_plan(ev, w.n, &l, plan, &res->short_by);
		free(ev);
		for (size_t i = 0; i < k && r == 0; i++) {
			const struct gc_item *it = &w.items[plan[i]];
			struct activate_evicted *e;

			if ((r = evict_one(st, state_dir, it)) != 0) {
				r = r > 0 ? 0 : r;
				continue;
			}
			res->evicted =
			    xreallocarray(res->evicted, res->nevicted + 1, sizeof(*res->evicted));
			e = &res->evicted[res->nevicted++];
			snprintf(e->name, sizeof(e->name), "%s", it->name);
			e->version = it->ev.version;
			e->bytes = it->ev.bytes;
		}
		free(plan);
		free(w.items);
		if (r < 0 || k == 0)
			break;
		if ((r = catalog_gc(st, &fc, &fb)) < 0)
			break;
		res->freed_chunks += fc;
		res->freed_bytes += fb;
	}
	if (r == 0 && (r = store_stats(st, &s)) == 0)
		res->usage_after = s.chunk_bytes;
	if (res->short_by > 0) {
		char a[32];

		log_warn(LOG_MAIN,
			 "gc: still %s over cache_quota or under min_free_space; the rest is "
			 "active, previous, pinned or within keep_versions",
			 fmt_bytes(a, sizeof(a), res->short_by));
	}
	return r;
}

void activate_gc_result_free(struct activate_gc_result *res)
{
	free(res->evicted);
	res->evicted = NULL;
	res->nevicted = 0;
}
