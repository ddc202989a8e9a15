/*
 * Metrics in the Prometheus text exposition format (version 0.0.4), for
 * `ferryctl metrics` and for node_exporter's textfile collector
 * (metrics_textfile in ferryd.conf).
 *
 * The node fills a snapshot (from node_status, node_peers and node_models)
 * and metrics_render() turns it into text. Every metric name starts with
 * "ferry_"; every metric has its HELP and TYPE lines, and is written even
 * when its value is 0, so a dashboard never sees a series vanish. The
 * metrics and their meaning are listed in docs/operations.md.
 */
#ifndef FERRY_METRICS_H
#define FERRY_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Link classes: traffic with peers of the node's own site, and the rest. */
enum metrics_link { METRICS_LAN, METRICS_WAN, METRICS__LINKS };

/* Peer states as node_peers() names them; others are counted under their own name. */
#define METRICS_PEER_STATES "connected", "connecting", "backoff", "banned"

struct metrics_model {
	char *name;
	uint64_t version;
	double present; /* 0..1 of the version's encoded bytes present */
	uint64_t size;	/* raw bytes of the files */
	bool active;
};

struct metrics_peer_state {
	char *state;
	uint64_t count;
};

struct metrics_limit {
	char *name;	  /* "download", "wan_upload", ... as `ferryctl limit` names them */
	uint64_t rate_bps; /* in force; 0 = unlimited */
};

/*
 * A snapshot of the figures. Counters (bytes, chunks) count since ferryd
 * started. Filled by the caller; the arrays are managed by the functions
 * below and freed by metrics_snapshot_free().
 */
struct metrics_snapshot {
	uint64_t rx_bytes[METRICS__LINKS]; /* payload bytes received from peers */
	uint64_t tx_bytes[METRICS__LINKS]; /* payload bytes sent to peers */
	uint64_t chunks_verified;	   /* received chunks that matched their id */
	uint64_t chunks_rejected;	   /* received chunks that did not (the sender is blamed) */
	uint64_t reconnects;		   /* peer connections replaced after their path went silent */
	uint64_t resumed_bytes;		   /* chunk bytes kept across a dropped connection */
	uint64_t store_bytes;		   /* encoded bytes of stored chunks */
	uint64_t store_chunks;
	uint64_t fs_free;	 /* free bytes on the store's file system */
	uint64_t min_free_space; /* from the config */
	uint64_t cache_quota;	 /* from the config; 0 = none */
	uint64_t uptime_s;

	struct metrics_peer_state *peers; /* by state, in the order first seen */
	size_t npeers;
	struct metrics_model *models; /* in the order added */
	size_t nmodels;
	struct metrics_limit *limits; /* in the order added */
	size_t nlimits;
};

/*
 * A snapshot with every figure 0 and the known peer states
 * (METRICS_PEER_STATES) at count 0. Owned by the caller.
 */
struct metrics_snapshot *metrics_snapshot_new(void);
/* Free s and everything it holds; NULL is a no-op. */
void metrics_snapshot_free(struct metrics_snapshot *s);
/* Count one peer in state (copied), e.g. a node_peer_row's state. */
void metrics_add_peer(struct metrics_snapshot *s, const char *state);
/* Add a model version (name copied); present is clamped to 0..1. */
void metrics_add_model(struct metrics_snapshot *s, const char *name, uint64_t version,
		       double present, uint64_t size, bool active);
/* Add a rate limit as in force now (name copied; rate_bps 0 = unlimited). */
void metrics_add_limit(struct metrics_snapshot *s, const char *name, uint64_t rate_bps);

/*
 * Render s as Prometheus text. The result is malloc'd, NUL-terminated and
 * owned by the caller; *len (if not NULL) receives its length. Label values
 * are escaped as the format requires (backslash, double quote, newline).
 */
char *metrics_render(const struct metrics_snapshot *s, size_t *len);

/*
 * Write metrics_render(s) to path atomically for node_exporter's textfile
 * collector: into a temporary file in the same directory whose name does not
 * end in ".prom" (so the collector never reads it half written), made
 * readable by others (mode 0644), then renamed over path. Errors name the
 * path: FERRY_EACCES, FERRY_ENOSPC, FERRY_ENOENT (no such directory), ...
 * Nothing is left behind on failure.
 */
int metrics_write_textfile(const char *path, const struct metrics_snapshot *s);

#endif
