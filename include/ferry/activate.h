/*
 * Activation: the version of a model that local inference reads, on disk.
 *
 * Layout under STATE_DIR/models/NAME/ (docs/operations.md):
 *   VERSION/       a materialized version: exactly the manifest's files, verified
 *   current        a relative symlink "VERSION" to the active version
 *   .VERSION.tmp/  a version being materialized (a stale one is removed)
 *   .current.tmp   the new link just before its rename (a stale one is replaced)
 *
 * A switch materializes the version (export_version into .VERSION.tmp,
 * SHA-256 checked, fsync'd, renamed to VERSION) or re-verifies a copy that
 * is already there, then points `current` at it with symlink + one
 * rename(2) and fsyncs models/NAME/, then records the head (active,
 * previous, held) in the store. Whatever fails before the rename leaves the
 * previous version active and its files as they were; a failure to record
 * the head puts the link back.
 *
 * The steps are separate functions so that ferryd can run the long ones on
 * its worker pool and the store write where its other head writes happen
 * (catalog_accept() also rewrites heads: the two must not interleave):
 *   activate_prepare()   materialize and verify         (long; reads the store)
 *   activate_switch()    the link and the head          (short; writes the store)
 *   activate_hook()      the on_activate command        (up to its time limit)
 *   activate_cleanup()   materialized versions beyond keep_versions
 * activate_version() and activate_rollback() run the four in order, for
 * callers with nothing else to do (ferryctl --store, tests). Materializing
 * and cleanup are serialized within the process, and so are switches.
 */
#ifndef FERRY_ACTIVATE_H
#define FERRY_ACTIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ferry/manifest.h"

struct store;
struct store_head;

/* Time limit of on_activate when the caller gives none. */
#define ACTIVATE_HOOK_TIMEOUT_S 120

enum activate_flags {
	/*
	 * An automatic activation (auto_activate, a version just completed): done
	 * only if activate_auto_eligible(); otherwise nothing happens and the
	 * result says skipped.
	 */
	ACTIVATE_AUTO = 1u << 0,
};

struct activate_opts {
	const char *on_activate; /* shell command run after a switch; NULL or "" for none */
	unsigned hook_timeout_s; /* 0: ACTIVATE_HOOK_TIMEOUT_S */
	unsigned keep_versions;	 /* materialized versions kept per model; 0: keep all */
	uint64_t min_free_space; /* refuse to materialize into this reserve */
	unsigned flags;		 /* enum activate_flags */
};

struct activate_result {
	uint64_t active;   /* the active version afterwards (0: none) */
	uint64_t previous; /* the rollback target afterwards (0: none) */
	uint64_t held;	   /* auto-activation holds until a version above this */
	bool skipped;	   /* ACTIVATE_AUTO and not eligible: nothing was done */
	bool switched;	   /* `current` changed (false: the version was already active) */
	bool materialized; /* files were written (false: a verified copy was there) */
	bool hook_ran;
	int hook_rc;	  /* 0, or why on_activate failed (logged; the switch stands) */
	unsigned removed; /* materialized versions removed (keep_versions) */
};

/*
 * May an automatic activation switch to version? Only to a version newer
 * than the active one and than the one last rolled back from (held).
 */
bool activate_auto_eligible(const struct store_head *h, uint64_t version);

/*
 * Activate NAME@VERSION (version 0: the newest stored) as described above:
 * catalog_load() with the trusted publishers t, a completeness check, then
 * prepare, switch, hook and cleanup. Errors leave the previous version
 * active and say why: FERRY_EINCOMPLETE (chunks missing, with how many),
 * FERRY_ECORRUPT (a stored chunk or a written file does not match, naming
 * the file), FERRY_ENOSPC (not enough room above min_free_space, or the
 * disk filled up), FERRY_ENOENT (no such model or version), and the
 * catalog_load() codes. A failing hook is not an error of the activation:
 * see res->hook_rc. res may not be NULL.
 */
int activate_version(struct store *st, const struct trust *t, const char *state_dir,
		     const char *name, uint64_t version, const struct activate_opts *o,
		     struct activate_result *res);

/*
 * Switch NAME back to its previous active version and hold auto-activation
 * until a version newer than the one rolled back from arrives. The version
 * rolled back from becomes the previous one, so a second rollback undoes
 * the first. FERRY_ENOENT if there is no previous version; otherwise as
 * activate_version() (the previous version's files are re-verified, and
 * materialized again if they do not match). o->flags is ignored.
 */
int activate_rollback(struct store *st, const struct trust *t, const char *state_dir,
		      const char *name, const struct activate_opts *o, struct activate_result *res);

/*
 * Step 1: make STATE_DIR/models/NAME/VERSION hold exactly m's files, verified
 * (size and SHA-256). A copy already there is checked in full and kept if it
 * matches (*materialized = false), otherwise replaced. Refuses with
 * FERRY_ENOSPC, before writing, when the files would cut into
 * min_free_space. Touches nothing the active version uses.
 */
int activate_prepare(struct store *st, const char *state_dir, const struct manifest *m,
		     uint64_t min_free_space, bool *materialized);

/*
 * Re-check the materialized copy of m (STATE_DIR/models/NAME/VERSION): it
 * must hold exactly m's files, with their sizes and SHA-256. FERRY_ENOENT if
 * the version is not materialized; FERRY_ECORRUPT naming the first file that
 * differs. Reads only; waits while a copy is being materialized or removed.
 */
int activate_check(const char *state_dir, const struct manifest *m);

/*
 * Step 2: point `current` at the prepared VERSION and record the head.
 * rollback: VERSION must be the head's previous version (FERRY_EAGAIN if the
 * head changed since it was read) and the version switched from becomes
 * held. flags: ACTIVATE_AUTO as above. Fills res's version fields,
 * skipped and switched. FERRY_ENOENT if VERSION is not materialized.
 */
int activate_switch(struct store *st, const char *state_dir, const char *name, uint64_t version,
		    bool rollback, unsigned flags, struct activate_result *res);

/*
 * Step 3: run cmd with /bin/sh -c, stdin from /dev/null, in its own process
 * group, with FERRY_MODEL, FERRY_VERSION, FERRY_PATH (the absolute path of
 * models/NAME/VERSION) and FERRY_PREVIOUS ("0" for none) added to the
 * environment. Waits at most timeout_s (0: ACTIVATE_HOOK_TIMEOUT_S), then
 * sends SIGTERM to the group and SIGKILL two seconds later. Returns 0 if it
 * exited with status 0; FERRY_EIO (exit status or signal in the detail) or
 * FERRY_ETIMEDOUT otherwise. Blocks; safe in a threaded process.
 */
int activate_hook(const char *cmd, unsigned timeout_s, const char *state_dir, const char *name,
		  uint64_t version, uint64_t previous);

/*
 * Step 4: remove materialized versions of NAME beyond the newest
 * keep_versions (evict_candidates(): never the active, the previous or a
 * pinned one) and stale temporaries. keep_versions 0 removes nothing but
 * temporaries. *removed (may be NULL) receives how many versions went.
 */
int activate_cleanup(struct store *st, const char *state_dir, const char *name,
		     unsigned keep_versions, unsigned *removed);

/*
 * Pin (or unpin) NAME@VERSION so that gc never evicts it. Version 0 means
 * the active version when pinning (FERRY_ENOENT if there is none) and every
 * pinned version of NAME when unpinning. FERRY_ENOENT if a version to pin is
 * not stored. Returns how many versions changed (0 if already so).
 */
int activate_pin(struct store *st, const char *name, uint64_t version, bool pin);

struct activate_gc_opts {
	uint64_t cache_quota; /* 0: none */
	uint64_t min_free_space;
	unsigned keep_versions; /* per model, never evicted; 0: none */
};

struct activate_evicted {
	char name[MANIFEST_NAME_MAX + 1];
	uint64_t version;
	uint64_t bytes; /* its encoded bytes in the store when it was evicted */
};

struct activate_gc_result {
	struct activate_evicted *evicted; /* malloc'd; free with activate_gc_result_free() */
	size_t nevicted;
	uint64_t freed_chunks, freed_bytes; /* catalog_gc() totals */
	uint64_t usage_before, usage_after; /* store bytes */
	uint64_t short_by; /* bytes still over the limits with nothing left to evict */
};

/*
 * `ferryctl gc`: drop unreferenced chunks (catalog_gc), then while the store
 * is above cache_quota or the file system below min_free_space, evict the
 * versions evict_plan() picks (manifest, materialized copy, then their
 * chunks) and measure again. Space the store frees counts as free space (the
 * LMDB file never shrinks; it reuses its pages). res may not be NULL.
 */
int activate_gc(struct store *st, const char *state_dir, const struct activate_gc_opts *o,
		struct activate_gc_result *res);
/* Free what res holds (not res itself). */
void activate_gc_result_free(struct activate_gc_result *res);

#endif
