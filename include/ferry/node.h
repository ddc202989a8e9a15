/*
 * The node: one running ferryd's state and behaviour. It ties the store, the
 * catalog, the peers (peer.h), gossip and fetching (sched.h) together on one
 * libuv loop, and is what the control server (ctl.c) drives.
 *
 * Threads: every function here is called on the loop thread. Work that takes
 * long (ingesting a publish, exporting, verifying) runs on libuv's worker
 * pool and reports through a callback on the loop thread. As in libuv, if a
 * function that takes a callback returns an error, the callback is never
 * called. Strings and arrays passed to callbacks are borrowed for the
 * duration of the call.
 */
#ifndef FERRY_NODE_H
#define FERRY_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct uv_loop_s;
struct config;
struct node;
struct publish_opts;
struct publish_stats;
struct activate_result;
struct activate_gc_result;

/*
 * Create the node on loop with cfg (copied): open the store (STORE_WRITE |
 * STORE_CREATE; FERRY_ELOCKED if another process holds it), load or create
 * the node key, read the network key, start listening and dialing, start the
 * store thread and the timers. Errors are fatal at startup: the caller logs
 * ferry_errmsg(rc) and exits.
 */
int node_new(struct uv_loop_s *loop, const struct config *cfg, struct node **out);
/*
 * Begin a clean shutdown: stop accepting, close connections, flush the store
 * thread (committing what was received), close handles. cb runs on the loop
 * thread when everything is closed; then node_free() may be called.
 */
void node_stop(struct node *n, void (*cb)(void *arg), void *arg);
/* Free a stopped node. NULL is a no-op. */
void node_free(struct node *n);
/*
 * Apply a new config (copied) without dropping transfers: peers, limits,
 * trust, wants. Keys that need a restart have already been kept at their old
 * values by the caller (config_keep_restart_keys).
 */
int node_reload(struct node *n, const struct config *cfg);

struct node_status {
	uint8_t node_id[32];
	const char *site;
	uint64_t uptime_s;
	uint64_t store_bytes; /* encoded bytes of stored chunks */
	uint64_t store_chunks;
	uint64_t fs_free;	   /* free bytes on the store's file system */
	uint64_t min_free_space;   /* from the config */
	uint64_t cache_quota;	   /* 0 = none */
	unsigned peers_connected;  /* authenticated connections */
	unsigned peers_known;
	double rate_in_bps;	   /* bits/s, recent average */
	double rate_out_bps;
	const char *store_error;   /* last store write error ("disk full: ..."), NULL if none */
	uint64_t bytes_received;   /* chunk data received from peers since start */
	uint64_t bytes_served;	   /* chunk data sent to peers since start */
	uint64_t rx_lan, rx_wan;   /* bytes_received from same-site peers and from the rest */
	uint64_t tx_lan, tx_wan;   /* bytes_served likewise */
	uint64_t chunks_verified;  /* received chunks and index pieces that matched their id */
	uint64_t chunks_rejected;  /* ... and that did not (their sender was dropped) */
	uint64_t reconnects;	   /* connections replaced after their path went silent */
	uint64_t resumed_bytes;	   /* chunk bytes kept across a dropped connection, not fetched again */
	/* The rate limits in force, bits/s (0 = unlimited), as node_limits() lists them. */
	uint64_t limit_download, limit_upload, limit_wan_download, limit_wan_upload;
	uint64_t limit_lan_download, limit_lan_upload;
};
void node_status(struct node *n, struct node_status *out);

/* src/node_limits.c: the rate limits (docs/scheduling.md, "Rate limiting"). */
struct node_limit_row {
	const char *name;    /* "download", "wan_upload", ... (static) */
	uint64_t rate_bps;   /* in force; 0 = unlimited */
	const char *source;  /* "config", "window" or "runtime" (static) */
	uint64_t config_bps; /* what ferryd.conf sets, in force or not */
};
/* One row per rate limit, in the order of ratelimit.h's settings. */
void node_limits(struct node *n, void (*cb)(void *arg, const struct node_limit_row *row),
		 void *arg);
/*
 * Override the limit called name with rate, a tc-style rate ("2mbit", "0" =
 * unlimited), until ferryd stops; rate "config" drops the override. Takes
 * effect at once and is logged; *row (may be NULL) is then the limit's new
 * state. FERRY_EINVAL with one sentence naming the bad value for an unknown
 * name or a bad rate; nothing changes then.
 */
int node_limit_set(struct node *n, const char *name, const char *rate, struct node_limit_row *row);

struct node_peer_row {
	uint8_t node_id[32];
	const char *address; /* "host:port" as connected or configured */
	const char *site;    /* "" if unknown */
	const char *state;   /* "connected", "connecting", "backoff", "banned", "idle" */
	bool lan;	     /* same site */
	double rtt_ms;	     /* < 0 if unknown */
	double rate_in_bps, rate_out_bps;
	int64_t last_seen;   /* unix seconds, 0 = never */
	int64_t banned_until; /* unix seconds a "banned" peer's ban ends, 0 = not banned */
	uint64_t bytes_received, bytes_served; /* chunk data since ferryd started */
	/* The scheduler's view of a connected peer it may ask for chunks: */
	uint64_t window_bytes;	/* the request window, 0 if it is not asked */
	uint64_t window_rtt_us; /* the RTT that window and its stall timers use, 0 if none */
	uint64_t lanes;		/* TCP connections up to it (peer_conn_set_lanes), 0 if none */
	const char *congestion; /* their TCP congestion control; NULL for a LAN peer or none */
};
void node_peers(struct node *n, void (*cb)(void *arg, const struct node_peer_row *row), void *arg);

struct node_model_row {
	const char *name;
	uint64_t version;
	const char *label;
	uint64_t size;	    /* raw bytes of the files */
	double present_pct; /* 0..100 of encoded bytes present */
	bool active, pinned, wanted;
};
void node_models(struct node *n, void (*cb)(void *arg, const struct node_model_row *row),
		 void *arg);

struct node_progress {
	uint64_t version;    /* resolved version (0 while the manifest is not known yet) */
	uint64_t need_bytes; /* encoded bytes of the version */
	uint64_t have_bytes;
	uint64_t inflight_bytes;
	unsigned sources;    /* peers currently sending chunks of it */
	double rate_bps;     /* recent receive rate for it */
	bool complete;	     /* every chunk present and verified */
	bool waiting_manifest; /* no peer has offered the manifest yet */
};
/*
 * Want NAME@VERSION (version 0: the newest known, or the newest that appears)
 * until complete. out receives what it will take (need_bytes - have_bytes is
 * the disk space it needs). FERRY_ENOSPC if that is more than the free space
 * above min_free_space; FERRY_EINVAL for a bad name.
 */
int node_fetch(struct node *n, const char *name, uint64_t version, struct node_progress *out);
/* Current progress of a wanted or stored version; FERRY_ENOENT if neither. */
int node_progress(struct node *n, const char *name, uint64_t version, struct node_progress *out);
/*
 * Stop wanting it (chunks already stored stay until gc). Version 0 cancels
 * every fetch of name. FERRY_ENOENT if no fetch asked for it; FERRY_EPERM
 * (the detail says so) if only a want = glob of the config wants it.
 */
int node_cancel(struct node *n, const char *name, uint64_t version);

/*
 * Publish, step 1: ingest the files under dirfd (the client's descriptor; the
 * node takes ownership and closes it) on the worker pool. cb gets the
 * unsigned manifest body to sign.
 */
int node_publish_ingest(struct node *n, int dirfd, const struct publish_opts *opts,
			void (*cb)(void *arg, int rc, const uint8_t *body, size_t len,
				   const struct publish_stats *stats),
			void *arg);
/*
 * Publish, step 2: accept the signed manifest (catalog rules, the publisher
 * must be trusted by this node's config) and announce it to peers.
 */
int node_publish_commit(struct node *n, const uint8_t *signed_bytes, size_t len,
			void (*cb)(void *arg, int rc), void *arg);
/*
 * Export NAME@VERSION (0 = newest complete) under outdirfd (taken over and
 * closed) on the worker pool; flags are enum export_flags.
 */
int node_export(struct node *n, const char *name, uint64_t version, int outdirfd, unsigned flags,
		void (*cb)(void *arg, int rc), void *arg);

/*
 * Activate NAME@VERSION (version 0: the newest stored) for local inference,
 * as activate_version() does (activate.h): materialize and verify on the
 * worker pool, switch `current` and the head on the store thread, then run
 * on_activate and remove copies beyond keep_versions, with the options of
 * the config. cb gets rc (on failure ferry_errmsg(rc) says why and which
 * version stays active) and the result.
 */
int node_activate(struct node *n, const char *name, uint64_t version,
		  void (*cb)(void *arg, int rc, const struct activate_result *res), void *arg);
/* Switch NAME back to its previous active version, as activate_rollback(). */
int node_rollback(struct node *n, const char *name,
		  void (*cb)(void *arg, int rc, const struct activate_result *res), void *arg);
/*
 * Pin or unpin NAME@VERSION as activate_pin() (version 0: the active one /
 * every pin), on the store thread (the only writer: a commit there may grow
 * the map). cb gets how many versions changed, or the error.
 */
int node_pin(struct node *n, const char *name, uint64_t version, bool pin,
	     void (*cb)(void *arg, int rc), void *arg);
/*
 * `ferryctl gc` as activate_gc() with cache_quota, min_free_space and
 * keep_versions from the config, run on the store thread (chunks received
 * meanwhile wait in its queue). res is borrowed for the call.
 */
int node_gc(struct node *n, void (*cb)(void *arg, int rc, const struct activate_gc_result *res),
	    void *arg);
struct export_problem;

/* What node_verify found; borrowed for the callback. */
struct node_verify_result {
	const char *name;
	uint64_t version;
	uint64_t chunks, bytes, corrupt, missing; /* export_verify()'s stats */
	const struct export_problem *problems;	  /* the bad chunks, in file order */
	size_t nproblems;
	bool materialized;	 /* models/NAME/VERSION exists and was checked */
	const char *files_error; /* why its files do not match; NULL if they do */
};
/*
 * `ferryctl verify`: re-check NAME@VERSION (version 0: the newest stored) on
 * the worker pool: every stored chunk and index piece against its id
 * (export_verify) and, if the version is materialized, its files
 * (activate_check). cb gets 0 when all is good, FERRY_ECORRUPT (a chunk or a
 * materialized file is bad), FERRY_EINCOMPLETE (chunks are only missing),
 * with res; or another error (no such version) with res NULL.
 */
int node_verify(struct node *n, const char *name, uint64_t version,
		void (*cb)(void *arg, int rc, const struct node_verify_result *res), void *arg);

/*
 * The metrics (metrics.h) of the node now, in the Prometheus text format:
 * malloc'd, NUL-terminated, owned by the caller; *len (may be NULL) gets its
 * length.
 */
char *node_metrics(struct node *n, size_t *len);

#endif
