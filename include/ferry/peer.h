/*
 * peer: the TCP transport between nodes, on a libuv loop. It listens, dials,
 * runs the handshake (session.h), frames and queues messages (wire.h),
 * answers pings, measures round-trip times, drops dead or duplicate
 * connections and redials persistent peers with backoff. It decides nothing
 * about models or chunks: the daemon gets whole decoded messages through
 * callbacks and sends messages back. All calls happen on the loop's thread.
 *
 * Glossary
 *   net       one struct peer_net: a listener, a dialer and the set of
 *             connections, on one loop, with one node key and network key.
 *   conn      one TCP connection. Unauthenticated while the handshake runs;
 *             "up" from on_up() until on_down(). The daemon sees only up
 *             connections.
 *   target    an address the net dials (peer_net_dial); a persistent target
 *             is redialed whenever it has no connection.
 *   control / bulk
 *             the two send queues of a conn. Every message goes to the
 *             control queue except CHUNK_DATA (WIRE_F_BULK), and a control
 *             message overtakes every queued bulk message. Each CHUNK_DATA
 *             travels as one frame of <= 64 KiB, so a ping waits at most for
 *             what is already written to the socket.
 *
 * A conn's life:
 *
 *   dial: resolve -> connect -+                  +-> up --(error, timeout,
 *                             +-> handshake ---->|        close, duplicate)--> down
 *   listen: accept -----------+   (deadline)     +-> closed silently (failed handshake,
 *                                                    self, not allowed, duplicate)
 *
 * Security. A responder writes nothing at all before the initiator's message
 * 1 has authenticated with the network key (session.h spends no public-key
 * work before that either); at most unauth_max inbound connections may be
 * in their handshake at once, newer ones are closed as soon as accepted; a
 * handshake must finish within hs_timeout_ms of the TCP connection.
 *
 * Duplicates. Two nodes that dial each other end up with two connections.
 * When a second connection to the same node id comes up, both nodes keep the
 * one dialed by the node with the lower id; if both were dialed by the same
 * node, they keep the one with the lower handshake hash. The other is closed:
 * silently if it had not been reported up yet, otherwise with on_down(...,
 * FERRY_EEXIST) before the winner's on_up. A connection to this node's own id
 * is closed, and a target that led to it is not dialed again.
 *
 * Lifetimes. A conn pointer is valid from on_up() until on_down() returns;
 * on_down() is always called from the loop (never from inside a peer_*
 * call), after which the memory is freed. As libuv requires, a handle's
 * memory is freed only in its close callback, so peer_net_free() starts the
 * closing and the loop must run (uv_run) for it to finish.
 */
#ifndef FERRY_PEER_H
#define FERRY_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "ferry/nodekey.h"
#include "ferry/session.h"
#include "ferry/wire.h"

struct peer_net;
struct peer_conn;

/* Defaults of struct peer_net_config's timing fields (0 = default). */
#define PEER_HS_TIMEOUT_MS    10000
#define PEER_PING_INTERVAL_MS 15000
#define PEER_DEAD_TIMEOUT_MS  60000
#define PEER_BACKOFF_MIN_MS   1000
#define PEER_BACKOFF_MAX_MS   300000
#define PEER_UNAUTH_MAX	      32
#define PEER_LOWAT	      (512u * 1024u)
/*
 * WAN conns use at most this low-water mark: what is queued can no longer
 * be cancelled, and on a slow flow 512 KiB is many seconds of data.
 */
#define PEER_WAN_LOWAT (128u * 1024u)
/* Backoff delays vary by this many percent either way, so peers do not redial in step. */
#define PEER_BACKOFF_JITTER_PCT 25
/* A connection that stayed up this long resets its target's backoff. */
#define PEER_STABLE_MS 30000
/* peer_conn_revive: a ping unanswered this long (at least 3 RTT) means the path is broken, */
#define PEER_PROBE_AFTER_MS 2000
/* a probe that does not connect within this (at least 3 lowest RTT) gives way to the next while
 * peer_conn_revive was called within PEER_REVIVE_HOLD_MS, */
#define PEER_PROBE_MS	    500
#define PEER_REVIVE_HOLD_MS 1500
/* and a conn that came up this much later than another from the same dialer replaces it. */
#define PEER_REPLACE_MS 2000
/* Connections to one node a conn may run as lanes (itself included): peer_conn_set_lanes. */
#define PEER_LANES_MAX (WIRE_LANE_MAX + 1)

/* The link class, decided by the daemon (from the site in the hello). */
enum peer_link {
	PEER_LINK_UNKNOWN = 0,
	PEER_LINK_LAN,
	/* WAN sockets get the config's TCP_CONGESTION and TCP_NOTSENT_LOWAT where allowed. */
	PEER_LINK_WAN,
};

/* Bytes of a congestion control's name, with its NUL (the kernel's TCP_CA_NAME_MAX). */
#define PEER_CC_NAME_MAX 16

struct peer_callbacks {
	void *ctx; /* passed to every callback */
	/*
	 * Optional: may the node id (with its hello) connect? Called during the
	 * handshake, before this side reveals its own identity when it dials.
	 * Returning false closes the connection silently (bans).
	 */
	bool (*allow)(struct peer_net *net, const uint8_t id[NODEKEY_LEN],
		      const struct wire_hello *hello, void *ctx);
	/* An authenticated connection is up; id and hello stay valid while it is. */
	void (*on_up)(struct peer_conn *c, const uint8_t id[NODEKEY_LEN],
		      const struct wire_hello *hello, void *ctx);
	/*
	 * A message arrived on an up conn. m and everything it points to are
	 * valid only during the call (wire.h's ownership rules; the transport
	 * clears it afterwards). Never HELLO, PING or PONG (the transport handles
	 * those), never an unknown type (skipped, counted in the stats).
	 */
	void (*on_message)(struct peer_conn *c, const struct wire_msg *m, void *ctx);
	/*
	 * Optional: peer_conn_queued() of c or of one of its lanes has dropped
	 * below the low-water mark after having been at or above it: send more
	 * bulk data now.
	 */
	void (*on_writable)(struct peer_conn *c, void *ctx);
	/*
	 * Optional: lane (>= 1) of c came up, or went down while c stays up
	 * (peer_conn_set_lanes). Bulk data queued on a lane that went down is lost.
	 */
	void (*on_lane)(struct peer_conn *c, unsigned lane, bool up, void *ctx);
	/*
	 * The conn is gone. reason: FERRY_ECANCELED (closed by this node:
	 * peer_conn_close's own reason is passed instead, peer_net_free),
	 * FERRY_EIO (closed or reset by the peer), FERRY_ETIMEDOUT (nothing
	 * received for dead_timeout_ms), FERRY_EEXIST (a duplicate connection
	 * won), FERRY_EAUTH / FERRY_EPROTO / FERRY_ETOOBIG (the peer broke the
	 * framing or the messages: wire.h and session.h say which), or another
	 * negative errno code from the socket. The pointer dies when this returns.
	 */
	void (*on_down)(struct peer_conn *c, int reason, void *ctx);
	/* Optional: a dial to host:port failed (resolution, connect or handshake). */
	void (*on_dial_error)(struct peer_net *net, const char *host, uint16_t port, int reason,
			      void *ctx);
};

struct peer_net_config {
	const struct nodekey *key; /* this node's key pair; copied */
	const uint8_t *netkey;	   /* SESSION_KEY_LEN bytes; copied */
	const char *listen_host;   /* address literal to listen on; NULL = do not listen */
	uint16_t listen_port;	   /* 0 = any free port (tests) */
	const char *site;	   /* this node's site for the hello; NULL = "" */
	/* TCP_CONGESTION asked for on WAN sockets; NULL = "bbr", "" = leave the system's. */
	const char *wan_congestion;
	const char *software;	   /* for the hello; NULL = PACKAGE_STRING */
	uint32_t hs_timeout_ms;	   /* connect + handshake deadline */
	uint32_t ping_interval_ms; /* how often each conn is pinged */
	uint32_t dead_timeout_ms;  /* close a conn that received nothing this long */
	uint32_t backoff_min_ms;   /* first redial delay of a persistent target */
	uint32_t backoff_max_ms;   /* the delay doubles up to this */
	uint32_t unauth_max;	   /* inbound conns in their handshake at once */
	size_t lowat;		   /* on_writable's mark, bytes (WAN: at most PEER_WAN_LOWAT) */
	struct peer_callbacks cb;
};

/*
 * Create a net on loop: bind and listen if listen_host is set. Copies cfg
 * and the keys. On success *out is owned by the caller (peer_net_free).
 * Errors: FERRY_EINVAL (missing key, listen_host not an address literal,
 * missing on_up/on_message/on_down), or the bind/listen error (e.g.
 * -EADDRINUSE) with a detail naming the address; nothing is left on the
 * loop then.
 */
int peer_net_new(uv_loop_t *loop, const struct peer_net_config *cfg, struct peer_net **out);

/*
 * Close the listener, every target and every conn (on_down(...,
 * FERRY_ECANCELED) for the up ones, called as the loop runs), then free the
 * net once the last handle has closed; run the loop until then. Must not be
 * called from inside one of this net's callbacks. NULL is a no-op.
 */
void peer_net_free(struct peer_net *net);

/* The port the net listens on (the bound one if listen_port was 0); 0 if it does not listen. */
uint16_t peer_net_port(const struct peer_net *net);

/* Flags of peer_net_dial. */
enum peer_dial_flags {
	/* Redial with backoff whenever the target has no connection. */
	PEER_DIAL_PERSISTENT = 1u << 0,
};

/*
 * Dial host:port (a name or an address literal without brackets), from the
 * loop (no callback runs inside this call). If expect_id is not NULL, a node
 * with another id is refused (an address learned from PEERS), and a node
 * already up is not dialed again. Without PEER_DIAL_PERSISTENT the target is
 * forgotten once its dial has failed or its connection has gone down.
 * Dialing a target that exists already only adds the persistent flag.
 * Returns 0 (the outcome comes through on_up or on_dial_error),
 * FERRY_EINVAL (empty host, port 0, host longer than WIRE_ADDR_MAX) or
 * FERRY_ECANCELED (the net is closing).
 */
int peer_net_dial(struct peer_net *net, const char *host, uint16_t port, const uint8_t *expect_id,
		  unsigned flags);

/*
 * Stop dialing host:port (a connection it made stays up, but is not redialed).
 * 0 or FERRY_ENOENT.
 */
int peer_net_undial(struct peer_net *net, const char *host, uint16_t port);

/* The up conn to node id, or NULL. */
struct peer_conn *peer_net_conn_by_id(struct peer_net *net, const uint8_t id[NODEKEY_LEN]);

/* What a target is doing (node.h's "connecting", "backoff", ...). */
enum peer_target_state {
	PEER_TARGET_CONNECTING, /* resolving, connecting or in the handshake */
	PEER_TARGET_UP,		/* its connection is up */
	PEER_TARGET_COVERED,	/* the node is up through another connection */
	PEER_TARGET_BACKOFF,	/* waiting to redial */
	PEER_TARGET_SELF,	/* it is this node: never dialed again */
};

struct peer_target_info {
	const char *host;
	uint16_t port;
	bool persistent;
	enum peer_target_state state;
	const uint8_t *node_id; /* NULL until a handshake told it */
	uint64_t retry_in_ms;	/* in BACKOFF: time until the next dial */
	int last_error;		/* the last failure, 0 if none */
};

/* Call cb for every target; the info is borrowed for the call. */
void peer_net_targets(struct peer_net *net,
		      void (*cb)(void *arg, const struct peer_target_info *info), void *arg);

struct peer_net_stats {
	unsigned up;	      /* up conns */
	unsigned unauth;      /* inbound conns in their handshake */
	unsigned dialing;     /* outbound conns connecting or in their handshake */
	uint64_t accepted;    /* inbound TCP connections accepted */
	uint64_t refused_cap; /* of those, closed at once by the unauth_max cap */
	uint64_t hs_failed;   /* handshakes that failed or timed out */
	uint64_t duplicates;  /* conns closed as duplicates */
	uint64_t probes;      /* fresh sockets dialed by peer_conn_revive */
	uint64_t revived;     /* of those, connected: the conn they probed was replaced */
};
void peer_net_stats(const struct peer_net *net, struct peer_net_stats *out);

/*
 * Queue m on c: CHUNK_DATA on the bulk queue, everything else on the
 * control queue (the wire table's flags). The message is encoded and copied
 * at once: m and what it points to may go after the call. Returns 0,
 * FERRY_EINVAL (wire_check fails, or a HELLO) or FERRY_ECANCELED (c is
 * closing). Unbounded: watch peer_conn_queued() for bulk data.
 */
int peer_conn_send(struct peer_conn *c, const struct wire_msg *m);

/*
 * Queue enc[from..total) as CHUNK_DATA messages for request req, in pieces
 * of WIRE_CHUNK_DATA_MAX bytes (copied at once). Errors as peer_conn_send.
 */
int peer_conn_send_chunk(struct peer_conn *c, uint32_t req, const uint8_t *enc, size_t total,
			 size_t from);

/* Bytes queued and not yet written to the socket, both queues. */
size_t peer_conn_queued(const struct peer_conn *c);

/* Whether more bulk data should be queued now: peer_conn_queued() is below c's low-water mark. */
bool peer_conn_wants_data(const struct peer_conn *c);

/*
 * Lanes: a conn to a WAN peer may bring up to PEER_LANES_MAX - 1 more TCP
 * connections to the same node, its lanes 1, 2, ..., so that several flows
 * share a link one flow cannot fill (a loss-based congestion control such
 * as cubic halves its window at each loss: on a long, lossy link one flow
 * fills a fraction of it). The
 * node that dialed c dials its lanes, at the address it reached c on, with
 * the lane number in the HELLO; the other end attaches an inbound lane to
 * its conn from the same node and dialer, or closes it. A lane carries what
 * its sender queues on it (peer_conn_lane_send): the daemon sees only c, and
 * messages that arrive on a lane come to on_message as c's. Lanes close with
 * c; one that fails or drops is dialed again at c's next periodic check
 * (ping_interval_ms). Reading stops and resumes on all lanes with c.
 *
 * peer_conn_set_lanes: keep lanes - 1 lanes beside c (at most
 * PEER_LANES_MAX; 1 closes them). Only the dialing end acts on it.
 */
void peer_conn_set_lanes(struct peer_conn *c, unsigned lanes);
/* Bit k is set while lane k can carry data (bit 0, c itself, while c is up). */
unsigned peer_conn_lanes_up(const struct peer_conn *c);
/* Queue m on lane k of c (0: c itself). Errors as peer_conn_send, FERRY_ENOENT: no such lane. */
int peer_conn_lane_send(struct peer_conn *c, unsigned lane, const struct wire_msg *m);
/* peer_conn_wants_data for lane k of c; false if the lane is not up. */
bool peer_conn_lane_wants_data(const struct peer_conn *c, unsigned lane);

/* Send a PING now (besides the periodic ones). */
void peer_conn_ping(struct peer_conn *c);

/*
 * c owes us data and has sent nothing for a while: check its path, and if it
 * is broken, reconnect. Call it again while that lasts (every second, say).
 * The first call pings c. Once a ping has gone unanswered for
 * PEER_PROBE_AFTER_MS with nothing received, c's node is dialed again on a
 * fresh socket (an inbound c at its IP and hello listen port), a new one each
 * PEER_PROBE_MS (at least 3 times c's lowest RTT) until one connects or the
 * calls stop. When a probe connects, c is reset (its peer gets a TCP
 * RST at once) and closed with FERRY_ETIMEDOUT, and the probe goes on as a
 * new conn to the same node, taking over c's target: on_down(c), then
 * on_up(probe). This is for links that were down for a while: TCP on both
 * ends has backed off its retransmissions exponentially and would sit idle
 * for seconds after the link returns. Does nothing while reading is stopped,
 * and a probe is dropped when c receives anything.
 */
void peer_conn_revive(struct peer_conn *c);

/*
 * Close c; on_down(c, reason) follows from the loop. reason is a negative
 * FERRY_E* code, e.g. FERRY_ECANCELED or FERRY_EPROTO for a peer that sent a
 * bad chunk. Queued messages are dropped. A second call does nothing.
 */
void peer_conn_close(struct peer_conn *c, int reason);

/*
 * Stop (false) or resume (true) reading from c, e.g. for a download limit:
 * the kernel's receive window then closes and the sender slows down. The
 * dead-peer timeout is suspended while reading is stopped. Messages already
 * read are still delivered.
 */
void peer_conn_set_reading(struct peer_conn *c, bool on);

/* Set the link class (the WAN socket options are applied at once). */
void peer_conn_set_link(struct peer_conn *c, enum peer_link link);
enum peer_link peer_conn_link(const struct peer_conn *c);
/*
 * The congestion control c's socket runs, e.g. "bbr" or "cubic" ("" if the
 * kernel does not say). A WAN socket gets the config's wan_congestion unless
 * the kernel refused it: not built or loaded, or (without CAP_NET_ADMIN) not
 * in net.ipv4.tcp_allowed_congestion_control.
 */
const char *peer_conn_congestion(const struct peer_conn *c);

/* The remote node id; borrowed, valid while c is. */
const uint8_t *peer_conn_id(const struct peer_conn *c);
/* The remote hello; borrowed, valid while c is. */
const struct wire_hello *peer_conn_hello(const struct peer_conn *c);
/* The negotiated protocol version. */
uint32_t peer_conn_version(const struct peer_conn *c);
/* True if this node dialed c. */
bool peer_conn_initiated(const struct peer_conn *c);
/*
 * The remote socket address "1.2.3.4:5678" / "[::1]:5678"; borrowed. The
 * address other nodes can dial is its host with the hello's listen_port.
 */
const char *peer_conn_addr(const struct peer_conn *c);
/* The remote socket address's host part without brackets; borrowed. */
const char *peer_conn_host(const struct peer_conn *c);
/* The target host that dialed c, or NULL for an inbound conn; borrowed. */
const char *peer_conn_target_host(const struct peer_conn *c);

/* The daemon's own pointer for c (NULL until set). */
void peer_conn_set_data(struct peer_conn *c, void *data);
void *peer_conn_data(const struct peer_conn *c);

/* Byte, message and queue counts include c's lanes. */
struct peer_conn_stats {
	uint64_t bytes_in;	/* bytes received from the sockets since up */
	uint64_t bytes_out;	/* bytes written to the sockets since up */
	uint64_t msgs_in;	/* messages received (all types) */
	uint64_t msgs_out;	/* messages sent */
	uint64_t unknown_in;	/* messages of unknown type skipped */
	uint64_t up_since_ms;	/* uv_now() when the conn came up */
	uint64_t last_seen_ms;	/* uv_now() when bytes last arrived */
	int64_t last_seen_unix; /* the same as wall-clock seconds */
	double rtt_ms;		/* smoothed RTT (EWMA, 1/8 weight); < 0 before the first PONG */
	double rtt_last_ms;	/* the latest sample; < 0 before the first PONG */
	uint64_t rtt_samples;	/* PONGs that matched a PING */
	size_t queued;		/* bytes queued, not yet written */
	unsigned lanes;		/* connections carrying messages: c and its lanes up */
};
void peer_conn_stats(const struct peer_conn *c, struct peer_conn_stats *out);

/*
 * Split "host:port" or "[v6]:port" into host (without brackets, cap bytes
 * with its NUL) and port. 0, or FERRY_EINVAL with a detail naming the text
 * (no port, port 0 or out of range, empty or too long host).
 */
int peer_addr_parse(const char *addr, char *host, size_t cap, uint16_t *port);
/* "host:port", or "[host]:port" if host contains ':'; into out[cap]. Returns out. */
char *peer_addr_format(char *out, size_t cap, const char *host, uint16_t port);

#endif
