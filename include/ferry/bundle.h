/*
 * Sideload bundles: a directory `ferry-bundle/` on removable media that
 * carries signed manifests, their chunk index pieces and encoded chunks to a
 * node with no link. The layout is in docs/formats.md, "Bundles":
 *
 *   ferry-bundle/bundle.rec        the table of contents, written last
 *   ferry-bundle/manifest-0001.fm  a signed manifest, byte for byte as stored
 *   ferry-bundle/pack-0001.dat     encoded chunks and index pieces, back to back
 *   ferry-bundle/pack-0001.idx     chunk id -> offset, length in that pack
 *
 * Every name is short, lower-case ASCII and fixed by its number, so a bundle
 * survives FAT32 and exFAT; no file is over BUNDLE_PACK_MAX (1 GiB).
 *
 * Both functions work on directory descriptors: the daemon never opens a path
 * a client names (ferryctl opens the directory and passes the descriptor).
 *
 * Nothing on the medium is trusted. bundle_import() opens only the names it
 * builds itself, relative to the bundle directory, with O_NOFOLLOW and
 * O_NONBLOCK, and refuses anything that is not a regular file; it sizes
 * every read by what fstat() says and by fixed caps, never by a size the
 * bundle declares; it verifies each manifest (signature, trust, paths,
 * catalog rules) and each chunk (decode, BLAKE2b-256 against its id) before
 * the chunk reaches the store, and stores only chunks that an accepted
 * manifest references.
 */
#ifndef FERRY_BUNDLE_H
#define FERRY_BUNDLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BUNDLE_DIR    "ferry-bundle"
#define BUNDLE_FORMAT 1
/* Largest pack written, and the default: well under FAT32's 4 GiB - 1 file size. */
#define BUNDLE_PACK_MAX (1024u * 1024u * 1024u)
/* Largest file of a bundle that bundle_import() reads (DESIGN.md: no file over 2 GiB). */
#define BUNDLE_FILE_MAX (2048ull * 1024u * 1024u)
/* Most entries in one pack (bounds a pack index to 11.5 MB). */
#define BUNDLE_PACK_ENTRIES_MAX 262144u
/* Most manifests and packs in one bundle. */
#define BUNDLE_MANIFESTS_MAX 4096u
#define BUNDLE_PACKS_MAX     16384u
/* Most problems a report lists one by one; the counts cover the rest. */
#define BUNDLE_PROBLEMS_MAX 1000u

struct store;
struct trust;
struct have;

/* What a bundle carries: a model name and a version (0: the newest stored). */
struct bundle_ref {
	const char *name;
	uint64_t version;
};

enum bundle_phase {
	BUNDLE_PHASE_MANIFESTS, /* writing or checking the manifests */
	BUNDLE_PHASE_INDEX,	/* reading the pack indexes and the chunk index pieces */
	BUNDLE_PHASE_CHUNKS,	/* writing or importing the packs */
	BUNDLE_PHASE_DONE,
};

struct bundle_progress {
	enum bundle_phase phase;
	const char *file;     /* the bundle file at hand ("pack-0003.dat"); NULL between files */
	uint64_t bytes_done;  /* pack bytes written or read so far */
	uint64_t bytes_total; /* pack bytes in all */
	uint64_t chunks_done;
	uint64_t chunks_total;
};

/*
 * Called at every file and at least every 16 MiB. p is valid during the
 * call only. A non-zero return stops the work as an interruption would:
 * the function returns FERRY_ECANCELED (create leaves what it finished for a
 * later run; import keeps what it verified and committed).
 */
typedef int (*bundle_progress_fn)(void *arg, const struct bundle_progress *p);

/* ---- creating ---- */

struct bundle_create_opts {
	/* Largest pack; 0 = BUNDLE_PACK_MAX; clamped to 2 MiB..BUNDLE_PACK_MAX. */
	uint64_t pack_max;
	bundle_progress_fn progress; /* may be NULL */
	void *arg;
};

struct bundle_create_stats {
	uint32_t manifests;
	uint32_t packs;	     /* packs in the bundle */
	uint32_t packs_kept; /* complete packs found from an earlier run and left as they were */
	uint64_t chunks;     /* chunks and index pieces in the bundle */
	uint64_t bytes;	     /* their encoded bytes (what the packs hold) */
	uint64_t skipped_chunks; /* left out because the have-file lists them */
	uint64_t skipped_bytes;
	uint64_t written_bytes; /* pack bytes written by this run */
	uint64_t raw_bytes;	/* size of the model files the bundle carries */
};

/*
 * Write outdirfd/ferry-bundle/ holding refs[0..nrefs) (each loaded with
 * catalog_load and checked against t), their index pieces and every chunk
 * they reference, except those have (may be NULL) lists. Resumable: an
 * existing ferry-bundle/ is brought to the new content; packs that are
 * already complete and identical are kept without being rewritten, and a
 * partly written pack is checked against the store and continued. The
 * record is removed first and written last, so an interrupted run never
 * leaves a bundle that looks complete.
 *
 * FERRY_EINCOMPLETE (naming the chunk, file and offset) if the store lacks
 * a chunk of a version; catalog_load's codes for an unknown or untrusted
 * version; FERRY_ENOSPC/FERRY_EIO (naming the bundle file) if writing fails;
 * FERRY_ECANCELED if progress asked to stop. stats may be NULL.
 */
int bundle_create(struct store *st, const struct trust *t, int outdirfd,
		  const struct bundle_ref *refs, size_t nrefs, const struct have *have,
		  const struct bundle_create_opts *opts, struct bundle_create_stats *stats);

/* ---- importing ---- */

/* What became of one manifest file of the bundle. */
struct bundle_manifest_result {
	char file[32]; /* "manifest-0001.fm" */
	char name[65]; /* model name, "" if the manifest could not be read */
	uint64_t version;
	int outcome;   /* enum catalog_outcome (> 0), or the negative code it was refused with */
	bool complete; /* after the import, every chunk of the version is in the store */
};

/* One thing refused or missing, by name. */
struct bundle_problem {
	int code;	 /* FERRY_ECORRUPT, FERRY_EBADSIG, ..., FERRY_EINCOMPLETE for missing */
	char file[32];	 /* bundle file ("pack-0003.dat"), "" if none */
	uint64_t offset; /* offset in that file, when about a chunk in a pack */
	bool has_id;
	uint8_t id[32]; /* chunk or index piece id */
	char *message;	/* the whole sentence, with model file and offset when known */
};

struct bundle_report {
	struct bundle_manifest_result *manifests; /* one per manifest file of the bundle */
	size_t nmanifests;
	uint32_t manifests_refused;
	uint64_t chunks_imported; /* chunks and index pieces newly stored */
	uint64_t bytes_imported;  /* their encoded bytes */
	uint64_t chunks_present;  /* referenced, and already in the store */
	uint64_t chunks_bad;	  /* refused: damaged, or not what their id says */
	uint64_t chunks_missing;  /* referenced, but neither in the store nor good in the bundle */
	uint64_t chunks_unreferenced; /* in a pack, but no accepted manifest needs them: skipped */
	bool delta; /* the bundle was made from a have-file: it leaves out what that node held */
	uint64_t problems_total;	 /* every problem, including those not listed */
	struct bundle_problem *problems; /* the first BUNDLE_PROBLEMS_MAX */
	size_t nproblems;
};

struct bundle_import_opts {
	bundle_progress_fn progress; /* may be NULL */
	void *arg;
};

/*
 * Import dirfd/ferry-bundle/ into st. Manifests go through catalog_accept()
 * with CATALOG_EXPLICIT (an older signed version is stored because an
 * operator carried it in; it is neither forwarded nor activated). Then every
 * referenced chunk found in the packs is verified and stored, in batched
 * commits. rep (filled in however the call ends; free with
 * bundle_report_free) lists per manifest what happened and every problem.
 *
 * Returns 0 when nothing was refused (chunks may still be missing: see
 * rep->chunks_missing; peers complete the version). FERRY_ECORRUPT when
 * something was refused (the problems say what). A failure that stops the
 * import returns its own code, and everything verified before it stays
 * imported: FERRY_ENOENT/FERRY_EFORMAT/FERRY_EVERSION for a directory that
 * is no usable bundle, FERRY_EIO "the drive went away while reading
 * ferry-bundle/pack-0003.dat" when the medium stops answering, the store's
 * codes (FERRY_ENOSPC), FERRY_ECANCELED if progress asked to stop.
 */
int bundle_import(struct store *st, const struct trust *t, int dirfd,
		  const struct bundle_import_opts *opts, struct bundle_report *rep);

/* Free what rep holds (not rep itself) and zero it. NULL is a no-op. */
void bundle_report_free(struct bundle_report *rep);

#endif
