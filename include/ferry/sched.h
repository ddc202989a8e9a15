/*
 * sched: which chunk to request from which peer, and when.
 *
 * Pure policy: every input (wanted versions, peers, what they hold, what
 * arrived) and the current time are passed in; decisions (requests to send,
 * requests to cancel, verdicts on bad peers) come out. No socket, clock,
 * store or libuv here. The I/O glue calls these functions from the event
 * loop; docs/scheduling.md explains the algorithms and parameters.
 *
 * Glossary
 *   peer handle  a small integer the glue picks for a connection
 *                (0..SCHED_PEER_MAX-1); the peer's node id (public key)
 *                identifies it across reconnects, for bans and the site split.
 *   link         SCHED_LAN for a peer of our own site, SCHED_WAN otherwise.
 *   vid          a handle the glue picks for a wanted version.
 *   request      one chunk asked of one peer. Active until it completes,
 *                fails, or stalls; a stalled request stays on record (it may
 *                still arrive) but no longer counts in its peer's window.
 *   window       bytes a peer may have in flight: rate x RTT x gain, at least
 *                min_window_reqs requests, at most max_window_bytes.
 *   stall        no progress on a request for max(4 RTT, 3 x expected time,
 *                stall_min_ms) while another peer holds the chunk: it is
 *                offered to the others.
 *   end-game     every chunk some peer holds is in flight: LAN peers may be
 *                asked for duplicates, WAN peers only for stalled chunks.
 *   member       a node of our site that is up: self and every LAN peer.
 *   owner        of a chunk: the member with the highest sched_rendezvous()
 *                value; only the owner fetches it over the WAN, the others
 *                take it from the owner over the LAN (see sched_chunk_info).
 *   share        of a member: the chunks it owns that no member holds yet.
 *   fetcher      of a chunk: its owner, or, once some members have brought
 *                in their whole shares and the owner has not, the one of
 *                them and the owner with the highest rehashed rendezvous
 *                value (they take over part of the owner's share). Members
 *                announce their WAN requests (sched_peer_claim) so that none
 *                asks for a chunk another has just asked for.
 *
 * Typical glue:
 *   s = sched_new(NULL, node_id, seed);
 *   on a wanted version:      sched_want(s, vid, chunks, n, local_bits, now)
 *   on a connection:          sched_peer_add(s, h, peer_id, link, now)
 *   on a ping reply:          sched_peer_rtt(s, h, rtt_us, now)
 *   on a have message:        sched_peer_have(...) or sched_peer_have_chunk(...)
 *   on a chunk data frame:    sched_chunk_progress(s, h, id, frame_bytes, now)
 *   on a verified chunk:      sched_chunk_done(s, h, id, now, &cancel)
 *   on a bad chunk:           sched_chunk_bad(s, h, id, now, &verdict)
 *   every second:             sched_tick(s, now, &cancel)
 *   after any of these:       send the cancels, then sched_poll(s, now, &reqs)
 *                             and send the requests it lists.
 *
 * Errors are negative FERRY_E* codes with a detail (ferry_errmsg()). A peer
 * handle or vid the scheduler does not know is FERRY_ENOENT. Nothing in here
 * asserts on its input: the glue passes what peers sent.
 */
#ifndef FERRY_SCHED_H
#define FERRY_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Peer handles are 0..SCHED_PEER_MAX-1. */
#define SCHED_PEER_MAX 4096
/* The "peer" of a chunk that arrived without a request (sideload, local copy). */
#define SCHED_PEER_NONE UINT32_MAX
/* At most this many requests for one chunk exist at once (duplicates and stalled ones). */
#define SCHED_MAX_DUP 4
/* Site members taken into account for the split, self included. */
#define SCHED_SITE_MAX 64
/* Longest chunk list of one version, and largest encoded chunk accepted. */
#define SCHED_VERSION_MAX_CHUNKS (1u << 24)
#define SCHED_CHUNK_MAX_LEN	 (16u << 20)

enum sched_link { SCHED_LAN = 0, SCHED_WAN = 1 };

/*
 * Tunables. sched_params_default() fills in the values docs/scheduling.md
 * explains; a caller changes a field or two and passes the struct to
 * sched_new(). Times in ms unless the name says otherwise, rates in bits/s.
 */
struct sched_params {
	uint32_t min_window_reqs;   /* requests a peer always may have (2) */
	uint32_t max_window_reqs;   /* requests a peer never exceeds (256) */
	uint64_t init_window_bytes; /* window before any measurement (1 MiB) */
	uint64_t max_window_bytes;  /* window cap (64 MiB) */
	uint32_t window_gain_pct;   /* window = rate x RTT x gain/100 (200) */
	uint32_t lan_rtt_us;	    /* RTT assumed before a ping (2 ms) */
	uint32_t wan_rtt_us;	    /* (300 ms) */
	uint64_t lan_rate_bps;	    /* rate assumed before a measurement (100 Mbit/s) */
	uint64_t wan_rate_bps;	    /* (1 Mbit/s) */
	uint32_t stall_min_ms;	    /* no request stalls sooner than this (3 s) */
	uint32_t owner_slack_ms;    /* added to the owner timeout (10 s) */
	uint32_t ban_offences;	    /* offences within ban_period_ms that earn a ban (3) */
	uint64_t ban_period_ms;	    /* (1 h) */
	uint64_t ban_base_ms;	    /* first ban; each later one doubles (10 min) */
	uint64_t ban_max_ms;	    /* longest ban; a clean record this long resets (7 d) */
};

/* Fill p with the defaults. */
void sched_params_default(struct sched_params *p);

/* A chunk of a version's list: its id and encoded length (bytes on the wire). */
struct sched_chunk {
	uint8_t id[32];
	uint32_t len;
};

/* A (peer, chunk) pair: a request to send or to cancel. */
struct sched_req {
	uint32_t peer;
	uint32_t len;
	uint8_t id[32];
};

/*
 * A growable list the scheduler appends to. The caller owns it: start with
 * {0}, set n = 0 to reuse it, release the array with sched_reqs_free().
 */
struct sched_reqs {
	struct sched_req *v;
	size_t n, cap;
};
void sched_reqs_free(struct sched_reqs *r);

/*
 * A new scheduler for the node self_id. p NULL means the defaults (the struct
 * is copied). seed drives the tie-breaking PRNG: the same seed and the same
 * calls give the same decisions. Free with sched_free() (NULL is a no-op).
 */
struct sched *sched_new(const struct sched_params *p, const uint8_t self_id[static 32],
			uint64_t seed);
void sched_free(struct sched *s);

/*
 * Want the chunks[0..n) of version vid: a new vid starts its list, a known
 * one has them appended (a version's list is known index piece by index
 * piece). The order must be the order peers' have bitmaps use. The same id
 * may appear in several places and versions; it is fetched once. local, if
 * not NULL, is a bitmap over chunks[0..n) (bit i = local[i / 8] >> (i % 8)
 * & 1) of the ones the store already holds; it is consulted only for ids the
 * scheduler did not track yet. An id already tracked keeps its first length.
 * Errors, with nothing changed: FERRY_EINVAL for a length of 0 or above
 * SCHED_CHUNK_MAX_LEN, FERRY_ETOOBIG for a list beyond
 * SCHED_VERSION_MAX_CHUNKS.
 */
int sched_want(struct sched *s, uint32_t vid, const struct sched_chunk *chunks, size_t n,
	       const uint8_t *local, uint64_t now);

/*
 * Stop wanting vid. Chunks no other wanted version lists are forgotten, and
 * their outstanding requests are appended to cancel (send a cancel to each).
 * FERRY_ENOENT if vid is not wanted.
 */
int sched_unwant(struct sched *s, uint32_t vid, struct sched_reqs *cancel);

/*
 * A connection to node node_id is up under handle peer, on link. FERRY_EINVAL
 * for a handle out of range, FERRY_EEXIST if the handle is in use, FERRY_EPERM
 * (with the end of the ban in the detail) if the node is banned: drop it.
 * A LAN peer becomes a site member at once.
 */
int sched_peer_add(struct sched *s, uint32_t peer, const uint8_t node_id[static 32],
		   enum sched_link link, uint64_t now);

/*
 * The connection is gone. Its requests are forgotten (no cancel is needed) and
 * their chunks become available again; a member's share moves to the others.
 */
int sched_peer_remove(struct sched *s, uint32_t peer, uint64_t now);

/*
 * An RTT sample for peer (a ping's round trip, in microseconds, answered
 * now); kept as an EWMA. A WAN peer's sample from a ping sent while our WAN
 * was down timed the outage, not the path: it is left out.
 */
int sched_peer_rtt(struct sched *s, uint32_t peer, uint32_t rtt_us, uint64_t now);

/*
 * peer serves streams requests at once (the TCP connections it has to us:
 * docs/protocol.md, lanes; 1 until told). It may always have streams + 1
 * requests, at least min_window_reqs, so that no connection idles while the
 * next request travels, however small the window in bytes.
 */
int sched_peer_streams(struct sched *s, uint32_t peer, uint32_t streams);

/*
 * peer holds the chunks of vid whose bits are set in bitmap[0..nbits) (bit i
 * as in sched_want: bit i = bitmap[i / 8] >> (i % 8) & 1, over the version's
 * list). Bits are added to what was known (a full have and an incremental one
 * are both just bitmaps); bits beyond the list known so far are kept until
 * sched_want() extends it. FERRY_ENOENT for an unknown vid (not wanted: the
 * glue may ignore it), FERRY_EINVAL for nbits above SCHED_VERSION_MAX_CHUNKS.
 */
int sched_peer_have(struct sched *s, uint32_t peer, uint32_t vid, const uint8_t *bitmap,
		    size_t nbits, uint64_t now);

/*
 * Site member peer (a LAN peer) asked a WAN peer for chunk id at now (a CLAIM
 * message): for an owner timeout, no WAN peer is asked for it here, and that
 * member is its fetcher (what it has left to fetch decides when it takes
 * over part of another's share). A claim of a peer that is not a member, or
 * of an id not wanted or done, is ignored (0).
 */
int sched_peer_claim(struct sched *s, uint32_t peer, const uint8_t id[static 32], uint64_t now);

/* peer now holds chunk id (an incremental have by id). An id not wanted is ignored (0). */
int sched_peer_have_chunk(struct sched *s, uint32_t peer, const uint8_t id[static 32],
			  uint64_t now);

/*
 * Up to max requests to send to peer now, written to out; returns how many
 * (0 when its window is full or it holds nothing useful) or a negative code.
 * Each one is recorded as sent at now.
 */
int sched_next(struct sched *s, uint32_t peer, uint64_t now, struct sched_chunk *out, size_t max);

/*
 * sched_next() for every peer, in order of preference: LAN peers first, then
 * WAN peers by estimated completion time (bytes in flight / rate + RTT), so
 * the better peers fill their windows first. Requests are appended to out;
 * returns how many.
 */
int sched_poll(struct sched *s, uint64_t now, struct sched_reqs *out);
/*
 * sched_poll() issuing at most max_bytes of requests in all: the caller's
 * memory budget for what it has asked for and not yet stored. A chunk
 * larger than what is left of max_bytes is not asked for in this call.
 */
int sched_poll_max(struct sched *s, uint64_t now, uint64_t max_bytes, struct sched_reqs *out);
/* Bytes of active requests over all peers (stalled ones not counted). */
uint64_t sched_inflight(const struct sched *s);

/*
 * bytes more of chunk id arrived from peer (call per data frame). Progress
 * keeps a request from stalling and feeds the per-version rate. A chunk that
 * was not requested of peer is ignored (0).
 */
int sched_chunk_progress(struct sched *s, uint32_t peer, const uint8_t id[static 32],
			 uint32_t bytes, uint64_t now);

/*
 * Chunk id arrived from peer and verified (peer SCHED_PEER_NONE: it reached
 * the store some other way). The chunk is marked present, the peer's rate
 * estimate takes a sample (its length over the time since the peer's previous
 * chunk or, on an idle pipe, since the request minus the RTT), and every other
 * request for it is appended to cancel. An id not wanted is ignored (0).
 */
int sched_chunk_done(struct sched *s, uint32_t peer, const uint8_t id[static 32], uint64_t now,
		     struct sched_reqs *cancel);

enum sched_action {
	SCHED_DROP = 1, /* close the connection; the node may reconnect */
	SCHED_BAN = 2,	/* close it and refuse the node until ban_until */
};
struct sched_verdict {
	enum sched_action action;
	uint64_t ban_until; /* ms, same clock as now; 0 for SCHED_DROP */
	uint32_t offences;  /* offences of this node within the period */
};

/*
 * peer sent chunk id and it did not match its id. Its request is dropped and
 * the chunk is available again; the node's offence is recorded and the
 * verdict says what to do: drop the connection, and after ban_offences within
 * ban_period_ms, ban the node for ban_base_ms, doubling with each later ban up
 * to ban_max_ms. Call sched_peer_remove() once the connection is closed.
 */
int sched_chunk_bad(struct sched *s, uint32_t peer, const uint8_t id[static 32], uint64_t now,
		    struct sched_verdict *verdict);

/*
 * The chunk peer delivered failed its check, but not by peer's fault alone:
 * its first bytes came from another peer (a resumed partial chunk). Forget
 * the request, so that the chunk is fetched again whole; no offence counts.
 */
int sched_chunk_abandon(struct sched *s, uint32_t peer, const uint8_t id[static 32]);

/*
 * Node node_id misbehaved in another way (a frame or message that breaks the
 * protocol, a forged manifest: docs/protocol.md, "Misbehaviour"). The offence
 * counts with its bad chunks, and the verdict is as for sched_chunk_bad(); the
 * node need not be connected. Always 0.
 */
int sched_offence(struct sched *s, const uint8_t node_id[static 32], uint64_t now,
		  struct sched_verdict *verdict);

/* 0 if node_id may connect, else the time its ban ends. */
uint64_t sched_banned_until(const struct sched *s, const uint8_t node_id[static 32], uint64_t now);

/*
 * Periodic work (call about once a second). A request without progress for
 * its stall time, for a chunk another peer holds too, stalls: its peer's rate
 * estimate is halved and the chunk is offered to the other holders (and to
 * the WAN, whatever the LAN preference and the site split say). A stalled
 * request that had no data yet is appended to cancel at once; one with data
 * is left to race and is cancelled when the chunk arrives or after four more
 * stall times. A request whose peer is the only holder never stalls: asking
 * it again would gain nothing. Site members that fetched nothing of their
 * share for the owner timeout lose it to the next members in rank, unless
 * our own WAN requests got nothing for as long (the WAN is down, not they).
 * Returns the number of requests that stalled.
 */
int sched_tick(struct sched *s, uint64_t now, struct sched_reqs *cancel);

/* Counters for the UI, per wanted version. Chunks listed twice count once. */
struct sched_progress {
	uint64_t want_bytes;	 /* encoded bytes of the version's chunks */
	uint64_t have_bytes;	 /* of which present */
	uint64_t inflight_bytes; /* of which requested and not yet here */
	uint32_t want_chunks;
	uint32_t have_chunks;
	uint32_t sources;  /* peers with requests for it that sent data in the last 5 s */
	uint64_t rate_bps; /* bits/s received for it over the last 10 s */
};
int sched_progress(const struct sched *s, uint32_t vid, uint64_t now, struct sched_progress *out);

/* What the scheduler knows of a peer, for `ferryctl peers` and metrics. */
struct sched_peer_info {
	enum sched_link link;
	uint64_t rate_bps;	 /* estimate; 0 before the first chunk */
	uint32_t rtt_us;	 /* estimate; 0 before the first ping */
	uint64_t window_bytes;	 /* current window */
	uint64_t inflight_bytes; /* bytes of its active requests */
	uint32_t requests;	 /* active requests */
	uint64_t received_bytes; /* chunk bytes it delivered */
	uint32_t stalls;	 /* requests of it that stalled */
	uint32_t streams;	 /* as sched_peer_streams set it; 1 until then */
};
int sched_peer_info(const struct sched *s, uint32_t peer, struct sched_peer_info *out);

/* What the scheduler knows of a chunk (for debugging and tests). */
struct sched_chunk_info {
	bool done;
	uint32_t len;
	uint32_t holders;     /* connected peers holding it */
	uint32_t lan_holders; /* of which LAN peers */
	uint32_t requests;    /* outstanding requests, stalled ones included */
	bool mine;	      /* self is its owner among the members up */
	bool wan_ok;	      /* self may fetch it over the WAN now (claims aside) */
	uint8_t owner[32];    /* node id of its owner */
	uint8_t fetcher[32];  /* node id of the member that fetches it over the WAN */
};
/* FERRY_ENOENT if id is not wanted. wan_ok reflects the last sched_tick(). */
int sched_chunk_info(struct sched *s, const uint8_t id[static 32], struct sched_chunk_info *out);

/*
 * The rendezvous hash of (chunk, member), identical on every node: see
 * docs/scheduling.md for the exact definition and test vectors.
 */
uint64_t sched_rendezvous(const uint8_t chunk[static 32], const uint8_t member[static 32]);

#endif
