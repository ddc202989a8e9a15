/*
 * Internals of the node, shared by node.c (lifecycle, status, publish and
 * export), node_gossip.c (connections, manifests, peer exchange) and
 * node_fetch.c (versions, haves, requests, serving). Not a public header.
 *
 * Glossary
 *   npeer    one up connection and what the node knows of it: its sched
 *            handle, the requests we sent it, the requests it sent us, what
 *            it said it holds.
 *   nver     a tracked version: one the node fetches (wanted) or holds
 *            entirely or in part with its whole chunk index (so it can say
 *            HAVE for it). Positions are the version's chunk entries in
 *            manifest file order (wire.h).
 *   idmap    chunk id -> positions in the incomplete tracked versions, so a
 *            committed chunk updates their bitmaps and becomes a HAVE_ADD.
 */
#ifndef FERRY_NODE_INT_H
#define FERRY_NODE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ferry/config.h"
#include "ferry/gossip.h"
#include "ferry/index.h"
#include "ferry/manifest.h"
#include "ferry/misbehave.h"
#include "ferry/node.h"
#include "ferry/nodekey.h"
#include "ferry/util.h"
#include <uv.h>

struct store;
struct storeq;
struct sched;
struct ratelimit;
struct peer_net;
struct peer_conn;
struct wire_msg;
struct wire_hello;
struct nver;

/*
 * TCP connections per WAN peer whose socket did not get BBR
 * (peer_conn_set_lanes): a loss-based congestion control (cubic, reno)
 * halves its window at each loss, so one flow fills only part of a long,
 * lossy link (about 1 Mbit/s at 1% loss and 200 ms); several flows each take
 * a share of the losses and fill it. A BBR flow paces to the bandwidth it
 * measures and fills the link alone: it gets one connection.
 */
#define NODE_WAN_LANES 8
/* Connections the node keeps dialing learned peers up to. */
#define NODE_TARGET_CONNS 8
/* Requests of the same peer queued for serving; more are answered CHUNK_NONE. */
#define NODE_SERVE_MAX 1024
/* Bytes of peers' HAVE bitmaps, and versions they said HAVE for, kept per peer. */
#define NODE_HAVE_BUDGET   (8u << 20)
#define NODE_HAVE_VERSIONS 4096
/* An index piece request with no data this long is asked of another peer... */
#define NODE_PIECE_TIMEOUT_MS 30000
/* ...or this long (at least 4 RTT) when a holder that has not failed it is up. */
#define NODE_PIECE_STALL_MS 4000
/* Partly received chunks of peers that went down: at most this many bytes, kept this long. */
#define NODE_PART_MAX (4u << 20)
#define NODE_PART_MS  600000
/* A WAN peer that owes us data and sent none this long has its path checked (peer_conn_revive). */
#define NODE_REVIVE_QUIET_MS 1000
/* Peers remembered per index piece as having failed it (timeout, CHUNK_NONE, bad data). */
#define NODE_PIECE_FAILED_MAX 4
/*
 * A peer whose chunk request stalled with no chunk data from it since that
 * request was sent gets no chunk requests for this long (doubling with each
 * bench up to 8 times as long), so all its requests go to other holders at once.
 */
#define NODE_BENCH_MS 15000
/* Recently refused manifest hashes, not asked for again. */
#define NODE_REJECT_MAX 256

/* A request we sent to a peer. */
struct nreq {
	struct nreq *next;
	uint32_t req;
	uint8_t id[32];
	uint32_t want_len;  /* encoded length the index promises; 0 for an index piece */
	struct nver *piece; /* the version whose index piece this is, or NULL for a chunk */
	uint32_t piece_idx;
	uint8_t *buf; /* reassembly, total bytes */
	uint32_t total, got;
	bool mixed; /* its first got bytes came from another node (a resumed part) */
	uint64_t sent_ms;
	uint64_t progress_ms; /* sent, or its last data frame */
};

/*
 * The received part of a chunk whose peer went down mid-chunk, kept to ask
 * the same node for the rest (CHUNK_REQ offset) once it is back.
 */
struct npart {
	struct npart *next;
	uint8_t id[32];
	uint8_t node[32];
	uint8_t *buf; /* total bytes, got received */
	uint32_t total, got;
	uint64_t kept_ms;
};

/* A request a peer sent us. */
struct nserve {
	struct nserve *next;
	uint32_t req;
	uint8_t id[32];
	uint32_t offset;
	uint8_t *enc; /* a copy of the chunk once serving began */
	size_t len, pos;
	int lane; /* the lane its frames go on (peer_conn_lane_send), -1 until the first */
};

/* What a peer said it holds of one version. */
struct nhave {
	struct nhave *next;
	char name[MANIFEST_NAME_MAX + 1];
	uint64_t version;
	uint32_t nchunks;
	bool complete;
	uint8_t *bits;	 /* nchunks bits; NULL when complete */
	uint8_t *claims; /* positions it claimed before we fetched the version, or NULL */
};

/* A moving average of a byte counter, for rates. */
struct nrate {
	uint64_t last_bytes;
	double bps; /* bits/s */
};

struct npeer {
	struct npeer *next;
	struct node *n;
	struct peer_conn *c; /* NULL once down */
	uint32_t h;	     /* sched handle */
	bool in_sched;
	uint8_t id[32];
	char site[GOSSIP_SITE_MAX + 1];
	char addr[GOSSIP_ADDR_MAX + 1]; /* dialable "host:port", "" if none */
	bool lan;
	bool dropped; /* closed for an offence; the rest of what it sends is ignored */

	struct nreq *reqs;
	unsigned nreqs;
	uint32_t next_req;

	struct nserve *serve, **serve_tail;
	unsigned nserve;
	bool send_booked;  /* the next frame is booked with the rate limiter */
	bool send_waiting; /* send_timer runs */
	bool read_paused;   /* the download rate limit holds reading */
	bool verify_paused; /* the chunk-check backlog holds reading */

	struct nhave *haves;
	size_t have_bytes;
	unsigned nhaves;

	struct gossip_entry *digest; /* a DIGEST round being received */
	size_t ndigest;

	uint64_t bytes_received, bytes_served; /* chunk data, this connection */
	uint64_t last_data_ms;		       /* the last chunk data frame, 0 if none */
	uint64_t bench_until;		       /* out of sched until then (in_sched false) */
	uint32_t benches;
	uint64_t rtt_fed; /* the connection's RTT samples sched_peer_rtt has seen */
	struct nrate rate_in, rate_out;
	uv_timer_t read_timer, send_timer;
	int open_timers;
};

enum nver_state {
	NV_NEED_INDEX, /* some index pieces are missing */
	NV_READY,      /* the chunk list is known; some chunks are missing */
	NV_COMPLETE,   /* every chunk is present */
};

struct nver {
	struct nver *next;
	struct manifest *m;
	const char *name; /* m->name */
	uint64_t version;
	uint8_t hash[32];
	enum nver_state state;
	bool wanted;   /* fetch it: config want or node_fetch */
	bool explicit; /* asked for by node_fetch */
	bool in_sched;
	uint32_t vid;

	/* Index pieces, all files in order. */
	uint32_t npieces;
	uint8_t (*piece_ids)[32];
	struct chunk_ref **piece_refs; /* decoded, NULL until present */
	size_t *piece_nrefs;
	uint8_t *piece_asked; /* a request is out */
	uint32_t *piece_tries;
	/* Node ids of the last peers that failed each piece; piece_nfailed[i] counts all. */
	uint8_t (*piece_failed)[NODE_PIECE_FAILED_MAX][32];
	uint32_t *piece_nfailed;
	uint32_t pieces_present;

	/* Chunks by position; refs is freed once the version is complete. */
	uint32_t n;
	struct chunk_ref *refs;
	uint8_t *present;
	uint32_t n_present;
	uint64_t need_bytes, have_bytes;

	/* This run's fetch, for the completion line. */
	uint64_t recv_bytes;
	uint8_t (*sources)[32];
	uint32_t nsources;
	uint64_t started_ms;
};

/* An explicit want (node_fetch) whose manifest is not known yet, or a pinned version. */
struct nwant {
	struct nwant *next;
	char name[MANIFEST_NAME_MAX + 1];
	uint64_t version; /* 0 = newest */
};

struct idmap;
struct nauto;

struct node {
	uv_loop_t *loop;
	struct config *cfg;
	struct store *st;
	struct storeq *sq;
	struct nodekey key;
	uint8_t netkey[32];
	struct trust trust;
	struct peer_net *net;
	struct sched *sched;
	struct ratelimit *rl;
	struct gossip_book *book;
	struct discovery *disc; /* LAN beacons; NULL when off */
	uint64_t rng;
	uint64_t started_ms;
	int64_t started_unix;
	bool test_corrupt_serve; /* FERRY_TEST_CORRUPT_SERVE: flip a byte of every served chunk */
	bool test_gossip_all;	 /* FERRY_TEST_GOSSIP_ALL: push every stored manifest on connect */

	uv_timer_t tick;     /* every second */
	uv_timer_t ae_timer; /* anti-entropy rounds */
	unsigned ae_rounds;
	uint64_t last_book_save_ms;
	bool book_dirty;

	struct npeer *peers;
	unsigned npeers;
	struct npeer *by_handle[4096];

	struct nver *vers;
	uint32_t next_vid;
	struct idmap *idmap;
	struct nwant *wants;
	bool wants_busy;      /* node__wants_update is running */
	uint64_t last_ask_ms; /* last MANIFEST_REQ round for wants without a manifest */

	struct gossip_entry *newest; /* newest stored manifest per name */
	size_t nnewest;

	uint8_t rejects[NODE_REJECT_MAX][32];
	unsigned nrejects;

	uint64_t bytes_received, bytes_served; /* chunk data, all peers, this run */
	uint64_t rx_link[2], tx_link[2];       /* the same by link: [0] LAN, [1] WAN */
	uint64_t chunks_verified, chunks_rejected;
	struct nrate rate_in, rate_out;
	char store_error[512];

	struct nauto *autos;	     /* models with an automatic activation in flight */
	uint64_t metrics_written_ms; /* last write of metrics_textfile, 0: never */
	bool metrics_failing;	     /* the last write failed (logged once) */

	unsigned pending_work; /* uv_queue_work and storeq jobs not finished */
	size_t verify_bytes;   /* received chunk bytes waiting for or in their check */
	struct npart *parts;   /* newest first */
	size_t part_bytes;     /* their buffers */
	uint64_t resumed_bytes; /* of parts resumed from their node */
	bool verify_holding;   /* some peer has verify_paused set */
	bool stopping;
	bool net_freed;
	bool sq_closed;
	int handles_open;
	void (*stop_cb)(void *arg);
	void *stop_arg;
};

/* node.c */
uint64_t node__now(const struct node *n);
/* Continue a stop once one more piece has finished. */
void node__stop_progress(struct node *n);
/*
 * Run work(arg, st) on the store thread, then done(arg, rc) on the loop
 * thread, as storeq_job() does, for a job the node must finish before it
 * stops: it counts in pending_work, and the stop continues after done. When
 * work fails, done sees its detail in ferry_errmsg(rc) (the detail is per
 * thread, so it is carried over).
 */
void node__store_job(struct node *n, int (*work)(void *arg, struct store *st),
		     void (*done)(void *arg, int rc), void *arg);
/* Per-id counters, kept in the book (the entry is created if missing). */
struct gossip_peer *node__book_entry(struct node *n, const uint8_t id[32]);

/* node_gossip.c */
int node__gossip_start(struct node *n);
void node__gossip_reload(struct node *n, const struct config *old);
void node__gossip_tick(struct node *n);
void node__on_up(struct peer_conn *c, const uint8_t id[32], const struct wire_hello *hello,
		 void *ctx);
void node__on_down(struct peer_conn *c, int reason, void *ctx);
void node__on_message(struct peer_conn *c, const struct wire_msg *m, void *ctx);
void node__on_writable(struct peer_conn *c, void *ctx);
void node__on_lane(struct peer_conn *c, unsigned lane, bool up, void *ctx);
bool node__allow(struct peer_net *net, const uint8_t id[32], const struct wire_hello *hello,
		 void *ctx);
void node__on_dial_error(struct peer_net *net, const char *host, uint16_t port, int reason,
			 void *ctx);
/* Load and verify a stored manifest's bytes and accept it (store thread), then act on it. */
void node__manifest_received(struct node *n, struct npeer *from, const uint8_t *bytes, size_t len);
/* Send m (signed bytes) to every up peer but except (may be NULL). */
void node__push_manifest(struct node *n, const uint8_t *bytes, size_t len,
			 const struct npeer *except);
/* Record the newest stored manifest of a name. */
void node__newest_update(struct node *n, const char *name, uint64_t version,
			 const uint8_t hash[32]);
int node__load_catalog(struct node *n);
/* NAME@VERSION left the store: if it was the newest of its name, take the newest left. */
void node__newest_gone(struct node *n, const char *name, uint64_t version);

/* node_ban.c */
struct sched_verdict;
/* Log a ban once (if v says SCHED_BAN), with p's id, address and what it did. */
void node__ban_note(struct node *n, const struct npeer *p, enum misbehave kind,
		    const struct sched_verdict *v);
/*
 * p misbehaved (kind; MISBEHAVE_NONE does nothing): the offence counts against
 * its node id and p is marked dropped, so nothing else it sent counts again.
 * The caller closes the connection (or it is closing already).
 */
void node__misbehaved(struct node *n, struct npeer *p, enum misbehave kind);

/* node_fetch.c */
void node__fetch_init(struct node *n);
void node__fetch_free(struct node *n);
/*
 * A manifest is held (at start, accepted, or published): track it if there
 * is reason to. Takes ownership of m.
 */
void node__version_known(struct node *n, struct manifest *m, const uint8_t hash[32]);
/* Re-decide which versions are wanted (config or wants changed). */
void node__wants_update(struct node *n);
struct nver *node__ver_find(struct node *n, const char *name, uint64_t version);
void node__peer_up_fetch(struct node *n, struct npeer *p);
void node__peer_down_fetch(struct node *n, struct npeer *p);
void node__on_have(struct node *n, struct npeer *p, const struct wire_msg *m);
void node__on_have_add(struct node *n, struct npeer *p, const struct wire_msg *m);
void node__on_claim(struct node *n, struct npeer *p, const struct wire_msg *m);
void node__on_chunk_req(struct node *n, struct npeer *p, const struct wire_msg *m);
void node__on_chunk_data(struct node *n, struct npeer *p, const struct wire_msg *m);
void node__on_chunk_none(struct node *n, struct npeer *p, const struct wire_msg *m);
void node__on_cancel(struct node *n, struct npeer *p, const struct wire_msg *m);
void node__serve_pump(struct npeer *p);
void node__serve_lane(struct npeer *p, unsigned lane, bool up);
/* Read from p's connection unless the rate limiter or the check backlog holds it. */
void node__reading_update(struct npeer *p);
void node__fetch_tick(struct node *n);
/* Ask sched for requests and send them. */
void node__fetch_poll(struct node *n);
/*
 * Chunks or index pieces of v reached the store by another way than the
 * store queue (a sideload): take them into v as if they had been fetched.
 */
void node__ver_rescan(struct node *n, struct nver *v);
/* The storeq commit callback. */
void node__on_commit(void *arg, const uint8_t (*ids)[32], size_t n);
void node__ver_progress(struct node *n, struct nver *v, struct node_progress *out);
/*
 * NAME@VERSION was evicted from the store: tell every peer it is no longer
 * held (a HAVE with no bit set) and stop tracking it, so it is not offered
 * to peers that connect later.
 */
void node__version_gone(struct node *n, const char *name, uint64_t version);
void node__peer_timers_close(struct npeer *p);

/* node_limits.c */
/* Set the limiter's config layer and wan_window from n->cfg and the time now. */
void node__limits_apply(struct node *n);
/* The limits in force, for node_status(). */
void node__limits_status(struct node *n, struct node_status *out);

/* node_activate.c */
/*
 * NAME@VERSION is complete and verified: activate it if auto_activate is on
 * and activate_auto_eligible() (checked on the worker pool). Failures are
 * logged; the previous version stays active.
 */
void node__auto_activate(struct node *n, const char *name, uint64_t version);
void node__autos_free(struct node *n);
/* Write metrics_textfile if set and due (every 15 s); called every second. */
void node__metrics_tick(struct node *n);

#endif
