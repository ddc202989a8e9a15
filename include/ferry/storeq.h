/*
 * storeq: the store thread, the only writer of the daemon's store.
 *
 * The event loop (and the worker pool, through the loop) queues verified
 * chunks here; one thread collects them into batches and commits each batch
 * in one durable LMDB transaction (store_wr_commit). A batch is committed as
 * soon as it holds commit_bytes or its oldest chunk has waited commit_ms,
 * whichever comes first: that is the durability window of DESIGN.md (a kill
 * loses at most one window plus what was in flight). DESIGN.md allows up to
 * 16 MiB; 4 MiB batches with at most 8 MiB queued keep a receiving
 * daemon's anonymous memory at 47-60 MiB instead of 72-84 MiB with 8/16 MiB
 * (bench/transfer.sh, 512 MiB and 1 GiB on loopback) at no throughput cost
 * that the noise of a shared 2-core machine showed. When a batch is
 * committed, on_commit runs on the loop thread with the ids it held: only
 * then does the node advertise them (HAVE_ADD), so a node never offers a
 * chunk a crash could take back.
 *
 * Other writes (a manifest accepted by the catalog, a known peer) go through
 * storeq_job(): a function run on the store thread with the store, and a
 * completion on the loop thread. Jobs run in the order they were queued,
 * between chunk batches; they do not wait for chunks queued before them.
 *
 * A batch that cannot be committed (a full file system, or one that would
 * fall below min_free_space) is not lost: it stays queued, the queue enters
 * the error state (storeq_error(), logged once at error level) and the
 * commit is retried every retry_ms until it succeeds (logged at notice).
 * Meanwhile storeq_queued_bytes() grows; the node stops requesting chunks
 * once it passes max_queued_bytes, so memory stays bounded.
 *
 * Threads: every function here is called on the loop thread; callbacks run
 * on the loop thread.
 */
#ifndef FERRY_STOREQ_H
#define FERRY_STOREQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct uv_loop_s;
struct store;
struct storeq;

struct storeq_params {
	size_t commit_bytes;	 /* commit once a batch holds this much (4 MiB) */
	uint32_t commit_ms;	 /* ... or its oldest chunk waited this long (500 ms) */
	size_t max_queued_bytes; /* storeq_busy() above this (8 MiB) */
	uint64_t min_free_space; /* never let a commit leave less free on the file system */
	uint32_t retry_ms;	 /* retry a failed commit after this long (2 s) */
};

/* Fill p with the defaults above (min_free_space 0). */
void storeq_params_default(struct storeq_params *p);

/*
 * The ids of a committed batch, in the order they were queued; ids is
 * borrowed for the duration of the call. A chunk queued twice may appear
 * twice.
 */
typedef void (*storeq_commit_cb)(void *arg, const uint8_t (*ids)[32], size_t n);

/*
 * Start the store thread for st (which must have been opened with
 * STORE_WRITE and outlive the queue). p NULL means the defaults. On success
 * *out is owned by the caller: storeq_close() it. Errors: FERRY_EIO if the
 * thread or the loop handle cannot be created.
 */
int storeq_new(struct uv_loop_s *loop, struct store *st, const struct storeq_params *p,
	       storeq_commit_cb on_commit, void *arg, struct storeq **out);

/*
 * Queue a verified chunk: enc[0..len) is its encoded form (codec.h) and id
 * the BLAKE2b-256 of its raw bytes. Takes ownership of enc (malloc'd): the
 * store thread frees it once committed. Never fails; after storeq_close()
 * has begun the chunk is dropped (freed).
 */
void storeq_put(struct storeq *q, const uint8_t id[static 32], uint8_t *enc, size_t len);

/*
 * Run work(arg, st) on the store thread, then done(arg, rc) on the loop
 * thread with work's return value. done may be NULL. Jobs queued before
 * storeq_close() all run before the thread ends.
 */
void storeq_job(struct storeq *q, int (*work)(void *arg, struct store *st),
		void (*done)(void *arg, int rc), void *arg);

/*
 * Commit what is queued now rather than when commit_ms has passed: for a
 * caller that knows nothing more is coming soon (the last chunk of a fetch
 * arrived), so the version is complete and advertised at once. A failing
 * store keeps its retry schedule.
 */
void storeq_flush(struct storeq *q);

/* Encoded bytes queued and not yet committed. */
size_t storeq_queued_bytes(struct storeq *q);
/* True when storeq_queued_bytes() is above max_queued_bytes: stop requesting chunks. */
bool storeq_busy(struct storeq *q);

/*
 * The error state: false when the last commit succeeded; true with the
 * message ("no space left in ...") copied into buf[0..cap) when the last
 * attempt failed and a retry is pending.
 */
bool storeq_error(struct storeq *q, char *buf, size_t cap);

/* Change min_free_space (a reload). */
void storeq_set_min_free(struct storeq *q, uint64_t bytes);

/* Counters for status and tests. */
struct storeq_stats {
	uint64_t commits;	 /* successful batch commits */
	uint64_t chunks;	 /* chunks committed */
	uint64_t bytes;		 /* encoded bytes committed */
	uint64_t failures;	 /* failed commit attempts */
	uint64_t dropped_chunks; /* chunks given up at close because they could not be stored */
};
void storeq_stats(struct storeq *q, struct storeq_stats *out);

/*
 * Flush and stop: commit what is queued (one attempt if the queue is in the
 * error state: what still cannot be stored is dropped and logged), run the
 * queued jobs, end the thread, deliver the last completions, close the loop
 * handle, then call cb(arg) on the loop thread and free q. No other storeq
 * function may be called once this has been.
 */
void storeq_close(struct storeq *q, void (*cb)(void *arg), void *arg);

#endif
