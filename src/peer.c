/*
 * The peer transport; see include/ferry/peer.h for the model and
 * docs/protocol.md for the bytes.
 *
 * Memory and handles. A conn owns two handles (its TCP socket and its
 * timer) and is freed when both have closed; a target owns one timer and
 * possibly a getaddrinfo request and is freed when both are done; the net
 * owns the listener and is freed when it, every conn and every target are
 * gone. Sends are copied into the queues at once; a queued message is
 * sealed only when it is about to be written, because frames must reach the
 * wire in the order they were sealed and control messages overtake bulk ones.
 */
#include "config.h"

#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <uv.h>

#include "ferry/error.h"
#include "ferry/log.h"
#include "ferry/peer.h"
#include "ferry/session.h"
#include "ferry/util.h"
#include "ferry/wire.h"

/* Bytes read from a socket at a time once a conn is up. */
#define RBUF_SIZE (256u * 1024u)
/*
 * Sealed messages go to libuv in batches of up to one full frame (small
 * messages share a batch; measured on loopback, batches that stay in the
 * cache beat larger ones), with at most two writes outstanding, one on WAN
 * links: a control message queued now waits for no more than that (plus the
 * kernel's unsent bytes) before it goes out.
 */
#define BATCH_SIZE   (SESSION_FRAME_MAX + SESSION_FRAME_OVERHEAD)
#define INFLIGHT_LAN 2
#define INFLIGHT_WAN 1
/* On WAN sockets the kernel keeps at most this many unsent bytes (TCP_NOTSENT_LOWAT). */
#define WAN_NOTSENT_LOWAT (64u * 1024u)
#define LISTEN_BACKLOG	  128
#define KEEPALIVE_S	  60

/*
 * Memory for unfinished messages. Every message but MANIFEST fits in
 * MSG_SMALL_MAX, so a connection buffers at most that unless the message's
 * first bytes say MANIFEST; then it may grow to WIRE_MSG_MAX (16 MiB), but
 * only BIG_MSGS_MAX such messages may be in progress in the whole node at
 * once (a connection that would start one more is closed: its node retries
 * later), and each must keep arriving at BIG_MSG_MIN_RATE bytes/s on average
 * once BIG_MSG_GRACE_MS have passed. Without this, peers with fresh
 * identities (the network key is the only gate) could each hold a 16 MiB
 * message open with a byte now and then, and the node's memory would grow
 * with their number.
 */
#define MSG_SMALL_MAX	 (256u * 1024u)
#define BIG_MSGS_MAX	 2u
#define BIG_MSG_GRACE_MS 60000u
#define BIG_MSG_MIN_RATE (8u * 1024u)
_Static_assert(WIRE_DIGEST_LEN_MAX <= MSG_SMALL_MAX && WIRE_HAVE_LEN_MAX <= MSG_SMALL_MAX &&
		   WIRE_HAVE_ADD_LEN_MAX <= MSG_SMALL_MAX &&
		   WIRE_CHUNK_DATA_LEN_MAX <= MSG_SMALL_MAX &&
		   WIRE_PEERS_LEN_MAX <= MSG_SMALL_MAX && WIRE_HELLO_LEN_MAX <= MSG_SMALL_MAX,
	       "every message but MANIFEST must fit in MSG_SMALL_MAX");

enum conn_state {
	C_CONNECTING, /* outbound, TCP connect in progress */
	C_HANDSHAKE,
	C_UP,	   /* handshake done: reported, or waiting for a duplicate to close */
	C_CLOSING, /* uv_close (or uv_shutdown) started */
};

struct qmsg {
	struct qmsg *next;
	size_t len;
	uint8_t *data; /* encoded message, malloc'd */
};

struct mqueue {
	struct qmsg *head, *tail;
};

struct wreq {
	uv_write_t req;
	struct peer_conn *c;
	uint8_t *buf;
	size_t wire_len;
	size_t plain; /* queued bytes this write takes off peer_conn_queued() */
	bool counted; /* counts in c->inflight */
	bool pooled;  /* buf is a batch buffer of BATCH_SIZE bytes, reusable */
};

struct target;

struct peer_conn {
	struct peer_net *net;
	struct peer_conn *prev, *next;
	uv_tcp_t tcp;
	uv_timer_t timer;
	uv_connect_t connect_req;
	uv_shutdown_t shutdown_req;
	unsigned open_handles;
	enum conn_state state;
	enum conn_state closed_from; /* the state conn_close() found */
	bool inbound;
	bool reported; /* on_up was called: on_down will be */
	bool reading;
	bool paused; /* peer_conn_set_reading(false) */
	int down_reason;
	char down_why[192];	       /* the detail of down_reason, for the log */
	struct target *target;	       /* the target dialing this conn, or NULL */
	struct peer_conn *successor;   /* reported once this conn has closed */
	struct peer_conn *predecessor; /* the conn this one waits for */
	struct peer_conn *probe;       /* a fresh socket testing this conn's path, or NULL */
	struct peer_conn *probing;     /* as a probe: the conn it replaces once it connects */
	uint64_t probe_ms;	       /* when the last probe of this conn started */
	uint64_t revive_ms;	       /* the last peer_conn_revive call */
	uint64_t est_ms;	       /* when its handshake completed */

	/* Lanes (peer_conn_set_lanes). */
	unsigned lane;		/* 0, or which lane of main this conn is */
	struct peer_conn *main; /* as a lane: the conn it belongs to; NULL once either goes */
	bool lane_up;		/* as a lane: attached to main and carrying messages */
	struct peer_conn *lanes[PEER_LANES_MAX]; /* lanes dialing or up; [0] unused */
	unsigned lanes_wanted;

	/* Handshake. */
	struct session_hs *hs;
	uint8_t *hsbuf; /* SESSION_HS_MSG_MAX bytes; kept until reported (leftover bytes) */
	size_t hslen;

	/* Session. */
	struct session_tx *tx;
	struct session_rx *rx;
	uint8_t hash[SESSION_HASH_LEN];
	uint8_t id[NODEKEY_LEN];
	struct wire_hello hello;
	uint32_t version;
	uint8_t *rbuf;

	/* Sending. */
	struct mqueue ctrl, bulk;
	size_t queued;
	unsigned inflight;
	bool above_lowat;
	size_t lowat; /* on_writable's mark: the config's, on WAN at most PEER_WAN_LOWAT */
	unsigned inflight_max;
	uint8_t *spare; /* a free batch buffer of BATCH_SIZE bytes */

	/* Liveness and RTT. */
	uint64_t last_seen_ms;
	uint64_t last_ping_ms;
	uint64_t ping_nonce;
	uint64_t ping_stamp_us;
	bool ping_out;
	double srtt_ms, rtt_last_ms, rtt_min_ms;
	uint64_t rtt_samples;

	/* A MANIFEST past MSG_SMALL_MAX is being received (counted in net->big_msgs). */
	bool big;
	uint64_t big_since_ms, big_bytes0;

	uint64_t bytes_in, bytes_out, msgs_in, msgs_out, unknown_in;
	uint64_t up_since_ms;
	enum peer_link link;
	char cc[PEER_CC_NAME_MAX]; /* the socket's congestion control, once it is WAN */
	void *data;
	char addr[INET6_ADDRSTRLEN + 8];
	char host[INET6_ADDRSTRLEN];
};

struct target {
	struct peer_net *net;
	struct target *next;
	char *host;
	uint16_t port;
	bool persistent;
	bool has_expect, has_id;
	uint8_t expect[NODEKEY_LEN];
	uint8_t id[NODEKEY_LEN];
	enum peer_target_state state;
	struct peer_conn *conn;
	uv_timer_t timer;
	uv_getaddrinfo_t gai;
	bool gai_active;
	bool removed, timer_closed;
	struct addrinfo *ai, *ai_next;
	uint32_t backoff_ms;
	uint64_t retry_at_ms;
	int last_error;
};

struct peer_net {
	uv_loop_t *loop;
	struct nodekey key;
	uint8_t netkey[SESSION_KEY_LEN];
	char site[WIRE_SITE_MAX + 1];
	char software[WIRE_SOFTWARE_MAX + 1];
	char wan_cc[PEER_CC_NAME_MAX]; /* TCP_CONGESTION for WAN sockets; "" = leave it */
	struct peer_net_config cfg; /* timing and callbacks; key pointers cleared */
	uint64_t start_ms;
	uv_tcp_t listener;
	bool listening;
	uint16_t port;
	bool closing;
	unsigned live; /* conns + targets + listener not yet freed */
	struct peer_conn *conns;
	struct target *targets;
	struct peer_net_stats st;
	uint64_t nonce_seq;
	uint64_t rng;	   /* xorshift state for backoff jitter */
	unsigned big_msgs; /* conns with c->big set */
};

static void conn_close(struct peer_conn *c, int reason);
static void lanes_close(struct peer_conn *c, unsigned from);
static void lane_gone(struct peer_conn *l);
static void lane_attach(struct peer_conn *l);
static int conn_redial_addr(const struct peer_conn *c, struct sockaddr_storage *ss);
static void conn_probe(struct peer_conn *c, uint64_t now);
static void conn_flush(struct peer_conn *c);
static void conn_feed(struct peer_conn *c, const uint8_t *p, size_t n);
static void target_dial(struct target *t);
static void target_conn_gone(struct target *t, struct peer_conn *c, int reason);
static void target_remove(struct target *t);
static void net_maybe_free(struct peer_net *net);

static const char *id_str(char out[static ID_SHORT_LEN], const uint8_t *id)
{
	return id_short(out, id);
}

static int uv_err(int uverr, const char *what, const char *where)
{
	return ferry_errno(-uverr, "%s %s", what, where);
}

/* A socket error: the peer going away is FERRY_EIO, the rest keep their errno. */
static int sock_err(int uverr, const char *what, const char *where)
{
	if (uverr == UV_EOF || uverr == UV_ECONNRESET || uverr == UV_EPIPE)
		return ferry_errf(FERRY_EIO, "%s %s: %s", what, where,
				  uverr == UV_EOF ? "closed by the peer" : uv_strerror(uverr));
	return uv_err(uverr, what, where);
}

/* Queues */

static void mq_push(struct mqueue *q, struct qmsg *m)
{
	m->next = NULL;
	if (q->tail != NULL)
		q->tail->next = m;
	else
		q->head = m;
	q->tail = m;
}

static struct qmsg *mq_pop(struct mqueue *q)
{
	struct qmsg *m = q->head;

	if (m != NULL) {
		q->head = m->next;
		if (q->head == NULL)
			q->tail = NULL;
	}
	return m;
}

static void mq_drop(struct mqueue *q)
{
	struct qmsg *m;

	while ((m = mq_pop(q)) != NULL) {
		free(m->data);
		free(m);
	}
}

/* Conns: creation and teardown */

static void conn_link(struct peer_net *net, struct peer_conn *c)
{
	c->next = net->conns;
	if (net->conns != NULL)
		net->conns->prev = c;
	net->conns = c;
	net->live++;
}

static void conn_unlink(struct peer_conn *c)
{
	struct peer_net *net = c->net;

	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		net->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
}

/* A new conn with its two handles initialised; NULL (and a detail) on failure. */
static struct peer_conn *conn_new(struct peer_net *net, bool inbound)
{
	struct peer_conn *c = xcalloc(1, sizeof(*c));
	int rc;

	c->net = net;
	c->inbound = inbound;
	c->inflight_max = INFLIGHT_LAN;
	c->lowat = net->cfg.lowat;
	c->srtt_ms = -1;
	c->rtt_last_ms = -1;
	if ((rc = uv_tcp_init(net->loop, &c->tcp)) != 0) {
		uv_err(rc, "cannot create a socket", "");
		free(c);
		return NULL;
	}
	uv_timer_init(net->loop, &c->timer);
	c->tcp.data = c;
	c->timer.data = c;
	c->open_handles = 2;
	c->hsbuf = xmalloc(SESSION_HS_MSG_MAX);
	conn_link(net, c);
	return c;
}

/* The conn's large message is done (delivered or abandoned): free its slot. */
static void conn_big_release(struct peer_conn *c)
{
	if (c->big) {
		c->big = false;
		c->net->big_msgs--;
	}
}

static void conn_free(struct peer_conn *c)
{
	struct peer_net *net = c->net;

	conn_big_release(c);
	mq_drop(&c->ctrl);
	mq_drop(&c->bulk);
	session_hs_free(c->hs);
	session_tx_free(c->tx);
	session_rx_free(c->rx);
	free(c->hsbuf);
	free(c->rbuf);
	free(c->spare);
	conn_unlink(c);
	free(c);
	net->live--;
	net_maybe_free(net);
}

static void report_up(struct peer_conn *c);
static void conn_go_live(struct peer_conn *c);
static void lanes_dial(struct peer_conn *c);

static void target_fire(uv_timer_t *timer);

/*
 * Wake the targets that waited because their node was up through another
 * conn: at once, or after delay_ms (the peer closed the conn and may be
 * dialing us again: peer_conn_revive).
 */
static void wake_covered(struct peer_net *net, const uint8_t *id, uint64_t delay_ms)
{
	for (struct target *t = net->targets; t != NULL; t = t->next) {
		if (t->state != PEER_TARGET_COVERED || !t->has_id ||
		    memcmp(t->id, id, NODEKEY_LEN) != 0)
			continue;
		if (delay_ms == 0) {
			target_dial(t);
			continue;
		}
		t->state = PEER_TARGET_BACKOFF;
		t->retry_at_ms = uv_now(net->loop) + delay_ms;
		uv_timer_start(&t->timer, target_fire, delay_ms, 0);
	}
}

static void conn_handle_closed(uv_handle_t *h)
{
	struct peer_conn *c = h->data;
	struct peer_conn *succ;
	struct peer_net *net = c->net;
	const struct peer_callbacks *cb = &net->cfg.cb;

	if (--c->open_handles > 0)
		return;
	if (c->reported) {
		char ids[ID_SHORT_LEN];

		log_info(LOG_PEER, "peer %s (%s) down: %s", id_str(ids, c->id), c->addr,
			 c->down_why);
		cb->on_down(c, c->down_reason, cb->ctx);
	}
	if (c->predecessor != NULL)
		c->predecessor->successor = NULL;
	succ = c->successor;
	if (succ != NULL) {
		succ->predecessor = NULL;
		if (succ->state == C_UP && !net->closing)
			report_up(succ);
	} else if (c->reported && !net->closing && peer_net_conn_by_id(net, c->id) == NULL) {
		wake_covered(net, c->id, c->down_reason == FERRY_EIO ? PEER_REPLACE_MS : 0);
	}
	if (c->main != NULL)
		lane_gone(c);
	conn_free(c);
}

static void conn_shutdown_done(uv_shutdown_t *req, int status)
{
	struct peer_conn *c = req->data;

	(void)status;
	uv_close((uv_handle_t *)&c->tcp, conn_handle_closed);
}

enum close_how {
	CLOSE_NOW,
	CLOSE_FLUSH, /* queued writes go out first (uv_shutdown) */
	CLOSE_RESET, /* RST at once, ahead of unacknowledged data (SO_LINGER 0) */
};

/*
 * Begin closing c. The loop calls conn_handle_closed for both handles and
 * that reports on_down.
 */
static void conn_close_ex(struct peer_conn *c, int reason, enum close_how how)
{
	struct peer_net *net = c->net;
	enum conn_state was = c->state;

	if (was == C_CLOSING)
		return;
	c->state = C_CLOSING;
	c->closed_from = was;
	c->down_reason = reason;
	snprintf(c->down_why, sizeof(c->down_why), "%s", ferry_errmsg(reason));
	if (was == C_CONNECTING || was == C_HANDSHAKE) {
		if (c->inbound)
			net->st.unauth--;
		else
			net->st.dialing--;
		if (reason != FERRY_ECANCELED && c->probing == NULL)
			net->st.hs_failed++;
	} else if (was == C_UP && c->reported) {
		net->st.up--;
	}
	mq_drop(&c->ctrl);
	mq_drop(&c->bulk);
	c->queued = 0;
	if (c->probing != NULL) {
		c->probing->probe = NULL;
		c->probing = NULL;
	}
	if (c->probe != NULL)
		conn_close(c->probe, FERRY_ECANCELED); /* unlinks itself from c */
	lanes_close(c, 1);
	if (c->target != NULL) {
		struct target *t = c->target;

		c->target = NULL;
		t->conn = NULL;
		if (!net->closing)
			target_conn_gone(t, c, reason);
	}
	uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
	if (how == CLOSE_FLUSH) {
		c->shutdown_req.data = c;
		if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, conn_shutdown_done) == 0)
			return;
	}
	if (how == CLOSE_RESET && uv_tcp_close_reset(&c->tcp, conn_handle_closed) == 0)
		return;
	uv_close((uv_handle_t *)&c->tcp, conn_handle_closed);
}

static void conn_close(struct peer_conn *c, int reason)
{
	conn_close_ex(c, reason, CLOSE_NOW);
}

/* Sockets */

static void sock_name(struct peer_conn *c)
{
	struct sockaddr_storage ss;
	int len = sizeof(ss);

	strcpy(c->addr, "?");
	strcpy(c->host, "?");
	if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) != 0)
		return;
	if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

		uv_ip6_name(a, c->host, sizeof(c->host));
		peer_addr_format(c->addr, sizeof(c->addr), c->host, ntohs(a->sin6_port));
	} else if (ss.ss_family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;

		uv_ip4_name(a, c->host, sizeof(c->host));
		peer_addr_format(c->addr, sizeof(c->addr), c->host, ntohs(a->sin_port));
	}
}

static void sock_setup(struct peer_conn *c)
{
	uv_tcp_nodelay(&c->tcp, 1);
	uv_tcp_keepalive(&c->tcp, 1, KEEPALIVE_S);
}

/*
 * WAN sockets: BBR copes with loss on long links; a small unsent backlog
 * keeps priorities. Note which congestion control the socket got.
 */
static void sock_wan(struct peer_conn *c)
{
	const char *want = c->net->wan_cc;
	uv_os_fd_t fd;
	int lowat = WAN_NOTSENT_LOWAT;
	socklen_t len = sizeof(c->cc) - 1;

	if (uv_fileno((uv_handle_t *)&c->tcp, &fd) != 0)
		return;
	/* Not every kernel has BBR or lets an unprivileged process pick it: fine. */
	if (want[0] != '\0')
		(void)setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, want, (socklen_t)strlen(want));
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof(lowat));
	memset(c->cc, 0, sizeof(c->cc));
	if (getsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, c->cc, &len) != 0)
		c->cc[0] = '\0';
}

/* Writing */

static void conn_write_done(uv_write_t *req, int status)
{
	struct wreq *w = (struct wreq *)req;
	struct peer_conn *c = w->c;
	struct peer_net *net = c->net;

	if (w->counted)
		c->inflight--;
	if (w->pooled && c->spare == NULL && c->state != C_CLOSING)
		c->spare = w->buf;
	else
		free(w->buf);
	if (c->state == C_CLOSING) {
		free(w);
		return;
	}
	c->bytes_out += w->wire_len;
	c->queued -= w->plain;
	free(w);
	if (status < 0) {
		conn_close(c, sock_err(status, "write to", c->addr));
		return;
	}
	conn_flush(c);
	if (c->above_lowat && c->queued < c->lowat && c->state == C_UP) {
		struct peer_conn *owner = c->lane_up ? c->main : c;

		c->above_lowat = false;
		if (net->cfg.cb.on_writable != NULL && owner != NULL && owner->reported)
			net->cfg.cb.on_writable(owner, net->cfg.cb.ctx);
	}
}

/* Write buf[0..len) (taken over) as it is: the handshake messages. */
static int conn_write_raw(struct peer_conn *c, uint8_t *buf, size_t len)
{
	struct wreq *w = xcalloc(1, sizeof(*w));
	uv_buf_t b = uv_buf_init((char *)buf, (unsigned)len);
	int rc;

	w->c = c;
	w->buf = buf;
	w->wire_len = len;
	rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, conn_write_done);
	if (rc != 0) {
		free(buf);
		free(w);
		return uv_err(rc, "write to", c->addr);
	}
	return 0;
}

static struct qmsg *next_msg(struct peer_conn *c)
{
	return c->ctrl.head != NULL ? c->ctrl.head : c->bulk.head;
}

/*
 * Seal queued messages, control first, into batches and hand them to libuv,
 * keeping at most inflight_max writes outstanding.
 */
static void conn_flush(struct peer_conn *c)
{
	while (c->state == C_UP && c->inflight < c->inflight_max && next_msg(c) != NULL) {
		struct qmsg *m = next_msg(c);
		size_t need = session_sealed_len(m->len), cap, used = 0, outlen;
		struct wreq *w = xcalloc(1, sizeof(*w));
		uv_buf_t b;
		int rc = 0;

		if (need <= BATCH_SIZE) {
			cap = BATCH_SIZE;
			w->pooled = true;
			w->buf = c->spare != NULL ? c->spare : xmalloc(cap);
			c->spare = NULL;
		} else {
			cap = need;
			w->buf = xmalloc(cap);
		}
		while ((m = next_msg(c)) != NULL && used + session_sealed_len(m->len) <= cap) {
			rc = session_seal(c->tx, m->data, m->len, w->buf + used, cap - used,
					  &outlen);
			if (rc != 0)
				break;
			mq_pop(c->ctrl.head != NULL ? &c->ctrl : &c->bulk);
			used += outlen;
			w->plain += m->len;
			free(m->data);
			free(m);
		}
		w->c = c;
		w->wire_len = used;
		if (rc == 0) {
			b = uv_buf_init((char *)w->buf, (unsigned)used);
			rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, conn_write_done);
			if (rc != 0)
				rc = uv_err(rc, "write to", c->addr);
		}
		if (rc != 0) {
			free(w->buf);
			free(w);
			conn_close(c, rc);
			return;
		}
		w->counted = true;
		c->inflight++;
	}
}

static int conn_queue(struct peer_conn *c, uint8_t *data, size_t len, bool bulk)
{
	struct qmsg *m = xmalloc(sizeof(*m));

	m->data = data;
	m->len = len;
	mq_push(bulk ? &c->bulk : &c->ctrl, m);
	c->queued += len;
	c->msgs_out++;
	if (c->queued >= c->lowat)
		c->above_lowat = true;
	conn_flush(c);
	return 0;
}

static int conn_send(struct peer_conn *c, const struct wire_msg *m)
{
	uint8_t *buf;
	size_t len;
	int rc;

	if ((rc = wire_encode(m, &buf, &len)) != 0)
		return rc;
	return conn_queue(c, buf, len, (wire_flags(m->type) & WIRE_F_BULK) != 0);
}

/* Liveness */

static uint64_t now_us(void)
{
	return uv_hrtime() / 1000;
}

static void conn_send_ping(struct peer_conn *c)
{
	struct wire_msg m = {.type = WIRE_PING};

	c->ping_nonce = ++c->net->nonce_seq ^ ((uint64_t)(uintptr_t)c << 16);
	c->ping_stamp_us = now_us();
	c->ping_out = true;
	c->last_ping_ms = uv_now(c->net->loop);
	m.ping.nonce = c->ping_nonce;
	m.ping.stamp = c->ping_stamp_us;
	conn_send(c, &m);
}

static void conn_got_pong(struct peer_conn *c, const struct wire_ping *p)
{
	double sample;

	if (!c->ping_out || p->nonce != c->ping_nonce || p->stamp != c->ping_stamp_us)
		return;
	c->ping_out = false;
	sample = (double)(now_us() - c->ping_stamp_us) / 1000.0;
	c->rtt_last_ms = sample;
	c->srtt_ms = c->rtt_samples == 0 ? sample : c->srtt_ms + (sample - c->srtt_ms) / 8;
	c->rtt_min_ms = c->rtt_samples == 0 ? sample : MIN(c->rtt_min_ms, sample);
	c->rtt_samples++;
}

static void conn_tick(uv_timer_t *t)
{
	struct peer_conn *c = t->data;
	const struct peer_net_config *cfg = &c->net->cfg;
	uint64_t now = uv_now(c->net->loop);

	if (c->state != C_UP) {
		int rc = ferry_errf(FERRY_ETIMEDOUT, "%s: no handshake within %u ms", c->addr,
				    cfg->hs_timeout_ms);

		log_debug(LOG_PEER, "%s: closing", ferry_errmsg(rc));
		conn_close(c, rc);
		return;
	}
	if (!c->reported && !c->lane_up)
		return;
	if (!c->paused && now - c->last_seen_ms >= cfg->dead_timeout_ms) {
		conn_close(c, ferry_errf(FERRY_ETIMEDOUT, "nothing received for %.1f s",
					 (double)(now - c->last_seen_ms) / 1000));
		return;
	}
	if (c->big && now - c->big_since_ms >= BIG_MSG_GRACE_MS &&
	    (c->bytes_in - c->big_bytes0) * 1000 < (now - c->big_since_ms) * BIG_MSG_MIN_RATE) {
		conn_close(c, ferry_errf(FERRY_ETIMEDOUT,
					 "a MANIFEST arriving at %.0f bytes/s, below the %u "
					 "bytes/s a message above %u bytes must keep",
					 (double)(c->bytes_in - c->big_bytes0) * 1000 /
					     (double)(now - c->big_since_ms),
					 BIG_MSG_MIN_RATE, MSG_SMALL_MAX));
		return;
	}
	if (now - c->last_ping_ms >= cfg->ping_interval_ms)
		conn_send_ping(c);
	lanes_dial(c);
}

/* Reading */

static void conn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct peer_conn *c = h->data;

	(void)suggested;
	if (c->state == C_UP || c->hsbuf == NULL) {
		if (c->rbuf == NULL)
			c->rbuf = xmalloc(RBUF_SIZE);
		*buf = uv_buf_init((char *)c->rbuf, RBUF_SIZE);
	} else {
		/* Never more than one handshake message (and what follows it) is buffered. */
		*buf = uv_buf_init((char *)c->hsbuf + c->hslen,
				   (unsigned)(SESSION_HS_MSG_MAX - c->hslen));
	}
}

static void conn_hs_input(struct peer_conn *c);

static void conn_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct peer_conn *c = s->data;

	if (c->state == C_CLOSING)
		return;
	if (n < 0) {
		int reason;

		reason = sock_err((int)n, "read from", c->addr);
		if (reason == FERRY_EIO && c->rx != NULL && !session_rx_idle(c->rx))
			reason = ferry_errf(FERRY_EIO, "%s in the middle of a message",
					    ferry_errmsg(reason));
		if (c->state != C_UP)
			log_debug(LOG_PEER, "%s: handshake failed: %s", c->addr,
				  ferry_errmsg(reason));
		conn_close(c, reason);
		return;
	}
	if (n == 0)
		return;
	c->bytes_in += (uint64_t)n;
	c->last_seen_ms = uv_now(c->net->loop);
	if (c->probe != NULL) /* the old path answers after all: keep it */
		conn_close(c->probe, FERRY_ECANCELED);
	if (c->state == C_UP)
		conn_feed(c, (const uint8_t *)buf->base, (size_t)n);
	else {
		c->hslen += (size_t)n;
		conn_hs_input(c);
	}
}

static void conn_dispatch(struct peer_conn *c, const uint8_t *p, size_t n)
{
	const struct peer_callbacks *cb = &c->net->cfg.cb;
	struct wire_msg m;
	char ids[ID_SHORT_LEN];
	int rc;

	c->msgs_in++;
	rc = wire_decode(p, n, &m);
	if (rc != 0) {
		if (rc == FERRY_EPROTO && m.type != WIRE_NONE && !wire_type_known(m.type)) {
			c->unknown_in++;
			log_debug(LOG_PEER, "peer %s: skipped a message of unknown type %u",
				  id_str(ids, c->id), (unsigned)m.type);
			return;
		}
		log_warn(LOG_PEER, "peer %s (%s): %s", id_str(ids, c->id), c->addr,
			 ferry_errmsg(rc));
		conn_close(c, rc);
		return;
	}
	switch (m.type) {
	case WIRE_HELLO:
		log_warn(LOG_PEER, "peer %s (%s): HELLO after the handshake", id_str(ids, c->id),
			 c->addr);
		conn_close(c, ferry_errf(FERRY_EPROTO, "HELLO after the handshake"));
		break;
	case WIRE_PING: {
		struct wire_msg pong = {.type = WIRE_PONG, .pong = m.ping};

		conn_send(c, &pong);
		break;
	}
	case WIRE_PONG:
		conn_got_pong(c, &m.pong);
		break;
	default:
		if (c->lane == 0)
			cb->on_message(c, &m, cb->ctx);
		else if (c->lane_up)
			cb->on_message(c->main, &m, cb->ctx);
		break;
	}
	wire_msg_clear(&m);
}

/* The message type in the first bytes of an encoded message, or -1 if they do not say. */
static long msg_type_of(const uint8_t *p, size_t n)
{
	size_t off, i, len;
	unsigned long v = 0;

	if (n < 1)
		return -1;
	if (p[0] >= 0x90 && p[0] <= 0x9f)
		off = 1;
	else if (p[0] == 0xdc)
		off = 3;
	else if (p[0] == 0xdd)
		off = 5;
	else
		return -1;
	if (n <= off)
		return -1;
	if (p[off] <= 0x7f)
		return p[off];
	if (p[off] < 0xcc || p[off] > 0xcf)
		return -1;
	len = (size_t)1 << (p[off] - 0xcc);
	if (n < off + 1 + len)
		return -1;
	for (i = 0; i < len; i++) {
		if (v > (ULONG_MAX >> 8))
			return -1;
		v = v << 8 | p[off + 1 + i];
	}
	return v > LONG_MAX ? -1 : (long)v;
}

/*
 * session_rx's grant: may the message whose first len bytes are head grow
 * past MSG_SMALL_MAX? Only a MANIFEST, and only while the node has a slot.
 */
static int conn_grant_big(void *ctx, const uint8_t *head, size_t len)
{
	struct peer_conn *c = ctx;
	long type = msg_type_of(head, len);

	if (type != WIRE_MANIFEST)
		return ferry_errf(
		    FERRY_ETOOBIG,
		    "a message of type %ld above %u bytes (only MANIFEST may be larger)", type,
		    MSG_SMALL_MAX);
	if (c->net->big_msgs >= BIG_MSGS_MAX)
		return ferry_errf(FERRY_EBUSY,
				  "a MANIFEST above %u bytes while %u others are being received",
				  MSG_SMALL_MAX, c->net->big_msgs);
	c->big = true;
	c->big_since_ms = uv_now(c->net->loop);
	c->big_bytes0 = c->bytes_in;
	c->net->big_msgs++;
	return 0;
}

/* Feed socket bytes of an up conn to the session decoder and dispatch whole messages. */
static void conn_feed(struct peer_conn *c, const uint8_t *p, size_t n)
{
	while (n > 0 && c->state == C_UP) {
		const uint8_t *msg;
		size_t used, len;
		int rc = session_rx_feed(c->rx, p, n, &used, &msg, &len);

		if (rc < 0) {
			char ids[ID_SHORT_LEN];

			log_warn(LOG_PEER, "peer %s (%s): %s", id_str(ids, c->id), c->addr,
				 ferry_errmsg(rc));
			conn_close(c, rc);
			return;
		}
		p += used;
		n -= used;
		if (rc == 1) {
			conn_big_release(c);
			conn_dispatch(c, msg, len);
		}
	}
}

/* Handshake */

static int hello_payload(struct peer_net *net, unsigned lane, uint8_t **out, size_t *len)
{
	struct wire_msg m = {.type = WIRE_HELLO};

	m.hello.version_min = WIRE_VERSION_MIN;
	m.hello.version_max = WIRE_VERSION;
	strcpy(m.hello.site, net->site);
	m.hello.listen_port = net->port;
	strcpy(m.hello.software, net->software);
	m.hello.uptime_s = (uv_now(net->loop) - net->start_ms) / 1000;
	m.hello.lane = (uint8_t)lane;
	return wire_encode(&m, out, len);
}

/* Write this side's next handshake message (msg 1 has no hello). */
static int conn_hs_write(struct peer_conn *c, bool with_hello)
{
	uint8_t *hello = NULL, *out = xmalloc(SESSION_HS_MSG_MAX);
	size_t hlen = 0, outlen;
	int rc = 0;

	if (with_hello && (rc = hello_payload(c->net, c->lane, &hello, &hlen)) != 0)
		goto out;
	rc = session_hs_write(c->hs, hello, hlen, out, SESSION_HS_MSG_MAX, &outlen);
	if (rc == 0) {
		rc = conn_write_raw(c, out, outlen);
		out = NULL;
	}
out:
	free(hello);
	free(out);
	return rc;
}

/*
 * Which of two conns to the same node stays, decided alike at both ends: the
 * one dialed by the lower node id; between two the same node dialed, the
 * newer if they came up PEER_REPLACE_MS apart (the dialer replaced a conn
 * whose path had broken, peer_conn_revive, and our end missed its reset),
 * else the lower session hash.
 */
static bool is_better(const struct peer_conn *a, const struct peer_conn *b)
{
	const uint8_t *self = a->net->key.pk;
	const uint8_t *ia = a->inbound ? a->id : self, *ib = b->inbound ? b->id : self;
	int cmp = memcmp(ia, ib, NODEKEY_LEN);

	if (cmp != 0)
		return cmp < 0;
	if (a->est_ms >= b->est_ms + PEER_REPLACE_MS)
		return true;
	if (b->est_ms >= a->est_ms + PEER_REPLACE_MS)
		return false;
	return memcmp(a->hash, b->hash, SESSION_HASH_LEN) < 0;
}

static void report_up(struct peer_conn *c)
{
	struct peer_net *net = c->net;
	const struct peer_callbacks *cb = &net->cfg.cb;
	char ids[ID_SHORT_LEN];

	c->reported = true;
	net->st.up++;
	c->up_since_ms = uv_now(net->loop);
	c->last_seen_ms = c->up_since_ms;
	if (c->target != NULL) {
		c->target->state = PEER_TARGET_UP;
		c->target->last_error = 0;
	}
	log_info(LOG_PEER, "peer %s (%s, site '%s', %s) up, protocol %u", id_str(ids, c->id),
		 c->addr, c->hello.site, c->inbound ? "inbound" : "outbound", c->version);
	cb->on_up(c, c->id, &c->hello, cb->ctx);
	if (c->state == C_UP)
		conn_go_live(c);
}

/*
 * An up conn starts its pings and periodic checks, and reads (what came with
 * the handshake first).
 */
static void conn_go_live(struct peer_conn *c)
{
	struct peer_net *net = c->net;
	size_t left = c->hslen;
	uint64_t tick;

	c->last_seen_ms = uv_now(net->loop);
	/* A first RTT sample right away, then the periodic checks. */
	conn_send_ping(c);
	tick = MAX(MIN(net->cfg.ping_interval_ms, net->cfg.dead_timeout_ms / 4), 1u);
	uv_timer_start(&c->timer, conn_tick, tick, tick);
	/* Bytes that came with the last handshake message are the peer's first frames. */
	if (left > 0) {
		uint8_t *hs = c->hsbuf;

		c->hsbuf = NULL;
		c->hslen = 0;
		conn_feed(c, hs, left);
		free(hs);
	} else {
		free(c->hsbuf);
		c->hsbuf = NULL;
	}
	if (c->state == C_UP && !c->paused && !c->reading) {
		uv_read_start((uv_stream_t *)&c->tcp, conn_alloc, conn_read);
		c->reading = true;
	}
}

/*
 * The handshake is done: switch to the session, then settle duplicates. The
 * conn is reported at once, or once the duplicate it replaces has closed
 * (reading stays off until then, so no message arrives before on_up).
 */
static void conn_established(struct peer_conn *c)
{
	struct peer_net *net = c->net;
	struct session_keys keys;
	struct peer_conn *best = c, *reported = NULL;

	session_hs_split(c->hs, &keys);
	memcpy(c->hash, keys.hash, SESSION_HASH_LEN);
	c->tx = session_tx_new(keys.tx);
	c->rx = session_rx_new(keys.rx, MSG_SMALL_MAX);
	session_rx_set_big(c->rx, WIRE_MSG_MAX, conn_grant_big, c);
	session_keys_wipe(&keys);
	session_hs_free(c->hs);
	c->hs = NULL;
	if (c->inbound)
		net->st.unauth--;
	else
		net->st.dialing--;
	c->state = C_UP;
	c->est_ms = uv_now(net->loop);
	uv_timer_stop(&c->timer);
	uv_read_stop((uv_stream_t *)&c->tcp);
	c->reading = false;
	if (c->lane != 0) {
		lane_attach(c);
		return;
	}
	if (c->target != NULL) {
		memcpy(c->target->id, c->id, NODEKEY_LEN);
		c->target->has_id = true;
	}

	for (struct peer_conn *o = net->conns; o != NULL; o = o->next)
		if (o != c && o->state == C_UP && o->lane == 0 &&
		    memcmp(o->id, c->id, NODEKEY_LEN) == 0 && is_better(o, best))
			best = o;
	for (struct peer_conn *o = net->conns, *next; o != NULL; o = next) {
		next = o->next;
		if (o->state != C_UP || o->lane != 0 || memcmp(o->id, c->id, NODEKEY_LEN) != 0)
			continue;
		if (o->reported)
			reported = o;
		if (o == best)
			continue;
		net->st.duplicates++;
		if (o->predecessor != NULL) {
			o->predecessor->successor = NULL;
			o->predecessor = NULL;
		}
		if (o->target != NULL) {
			o->target->state = PEER_TARGET_COVERED;
			o->target->conn = NULL;
			o->target = NULL;
		}
		conn_close(o,
			   ferry_errf(FERRY_EEXIST, "a duplicate connection to the same node won"));
	}
	if (best->reported)
		return;
	if (reported != NULL && reported != best) {
		/* best waits for the reported conn's on_down. */
		reported->successor = best;
		best->predecessor = reported;
		return;
	}
	if (best == c && c->predecessor == NULL)
		report_up(c);
}

static int conn_check_hello(struct peer_conn *c, const uint8_t *payload, size_t plen)
{
	struct peer_net *net = c->net;
	struct wire_msg m;
	char ids[ID_SHORT_LEN];
	int rc;

	memcpy(c->id, session_hs_remote_static(c->hs), NODEKEY_LEN);
	if ((rc = wire_decode(payload, plen, &m)) != 0)
		return ferry_errf(FERRY_EPROTO, "%s: bad hello: %s", c->addr, ferry_errmsg(rc));
	if (m.type != WIRE_HELLO) {
		wire_msg_clear(&m);
		return ferry_errf(FERRY_EPROTO, "%s: the hello is a %s message", c->addr,
				  wire_name(m.type));
	}
	c->hello = m.hello;
	if (memcmp(c->id, net->key.pk, NODEKEY_LEN) == 0)
		return ferry_errf(FERRY_EEXIST, "%s is this node itself", c->addr);
	if (c->inbound)
		c->lane = c->hello.lane;
	else if (c->lane != 0 && (c->main == NULL || memcmp(c->main->id, c->id, NODEKEY_LEN) != 0))
		return ferry_errf(FERRY_EAUTH, "%s: lane %u reached node %s, not its connection's",
				  c->addr, c->lane, id_str(ids, c->id));
	if (c->target != NULL && c->target->has_expect &&
	    memcmp(c->target->expect, c->id, NODEKEY_LEN) != 0) {
		char want[ID_SHORT_LEN];

		return ferry_errf(FERRY_EAUTH, "%s is node %s, not the expected %s", c->addr,
				  id_str(ids, c->id), id_str(want, c->target->expect));
	}
	if ((rc = wire_negotiate(&c->hello, &c->version)) != 0) {
		log_warn(LOG_PEER, "node %s (%s): %s", id_str(ids, c->id), c->addr,
			 ferry_errmsg(rc));
		return rc;
	}
	if (net->cfg.cb.allow != NULL && !net->cfg.cb.allow(net, c->id, &c->hello, net->cfg.cb.ctx))
		return ferry_errf(FERRY_EPERM, "node %s (%s) is not allowed", id_str(ids, c->id),
				  c->addr);
	return 0;
}

static void conn_hs_fail(struct peer_conn *c, int rc)
{
	log_debug(LOG_PEER, "%s: handshake failed: %s", c->addr, ferry_errmsg(rc));
	conn_close(c, rc);
}

static void conn_hs_input(struct peer_conn *c)
{
	uint8_t payload[SESSION_HELLO_MAX];
	size_t used = 0, plen = 0;
	int rc;

	while (c->state == C_HANDSHAKE) {
		rc = session_hs_read(c->hs, c->hsbuf, c->hslen, &used, payload, sizeof(payload),
				     &plen);
		if (rc == FERRY_EAGAIN)
			return;
		if (rc != 0) {
			conn_hs_fail(c, rc);
			return;
		}
		memmove(c->hsbuf, c->hsbuf + used, c->hslen - used);
		c->hslen -= used;
		if (c->inbound && session_hs_remote_static(c->hs) == NULL) {
			/* Message 1 authenticated: only now does the responder write. */
			if ((rc = conn_hs_write(c, true)) != 0) {
				conn_hs_fail(c, rc);
				return;
			}
			continue;
		}
		rc = conn_check_hello(c, payload, plen);
		if (rc == FERRY_EEXIST && c->target != NULL) {
			c->target->state = PEER_TARGET_SELF;
			c->target->has_id = true;
			memcpy(c->target->id, c->id, NODEKEY_LEN);
		}
		if (c->inbound) {
			if (rc != 0) {
				conn_hs_fail(c, rc);
				return;
			}
			conn_established(c);
			return;
		}
		if (rc == FERRY_EVERSION) {
			/* Send message 3 anyway, so the responder logs the mismatch too. */
			if (conn_hs_write(c, true) == 0) {
				conn_close_ex(c, rc, CLOSE_FLUSH);
				return;
			}
		}
		if (rc == 0)
			rc = conn_hs_write(c, true);
		if (rc != 0) {
			conn_hs_fail(c, rc);
			return;
		}
		conn_established(c);
		return;
	}
}

static void conn_start_hs(struct peer_conn *c)
{
	struct peer_net *net = c->net;
	enum session_role role = c->inbound ? SESSION_RESPONDER : SESSION_INITIATOR;
	int rc;

	c->state = C_HANDSHAKE;
	c->hs = session_hs_new(role, &net->key, net->netkey, (uint64_t)time(NULL));
	sock_setup(c);
	sock_name(c);
	if (!c->inbound && (rc = conn_hs_write(c, false)) != 0) {
		conn_hs_fail(c, rc);
		return;
	}
	rc = uv_read_start((uv_stream_t *)&c->tcp, conn_alloc, conn_read);
	if (rc != 0) {
		conn_hs_fail(c, uv_err(rc, "read from", c->addr));
		return;
	}
	c->reading = true;
}

static void conn_deadline(struct peer_conn *c)
{
	uv_timer_start(&c->timer, conn_tick, c->net->cfg.hs_timeout_ms, 0);
}

static void net_on_connection(uv_stream_t *server, int status)
{
	struct peer_net *net = server->data;
	struct peer_conn *c;

	if (status < 0) {
		log_warn(LOG_PEER, "accepting a connection: %s", uv_strerror(status));
		return;
	}
	if (net->closing || (c = conn_new(net, true)) == NULL)
		return;
	c->state = C_HANDSHAKE;
	net->st.unauth++;
	if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
		conn_close(c, FERRY_ECANCELED);
		return;
	}
	net->st.accepted++;
	if (net->st.unauth > net->cfg.unauth_max) {
		/* Over the cap: close at once, before reading or writing anything. */
		net->st.refused_cap++;
		log_debug(LOG_PEER,
			  "more than %u connections in their handshake: closing a new one",
			  net->cfg.unauth_max);
		conn_close(c, FERRY_ECANCELED);
		return;
	}
	conn_deadline(c);
	conn_start_hs(c);
}

/* Targets */

static void target_timer_closed(uv_handle_t *h)
{
	struct target *t = h->data;

	t->timer_closed = true;
	if (!t->gai_active) {
		struct peer_net *net = t->net;

		if (t->ai != NULL)
			uv_freeaddrinfo(t->ai);
		free(t->host);
		free(t);
		net->live--;
		net_maybe_free(net);
	}
}

static void target_free_ai(struct target *t)
{
	if (t->ai != NULL)
		uv_freeaddrinfo(t->ai);
	t->ai = NULL;
	t->ai_next = NULL;
}

static void target_fire(uv_timer_t *timer)
{
	target_dial(timer->data);
}

static uint64_t net_random(struct peer_net *net)
{
	uint64_t x = net->rng;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	net->rng = x;
	return x * 0x2545f4914f6cdd1dull;
}

/* Wait before the next dial: backoff with jitter, doubling up to the maximum. */
static void target_backoff(struct target *t)
{
	const struct peer_net_config *cfg = &t->net->cfg;
	uint64_t delay = t->backoff_ms;
	uint64_t span = delay * PEER_BACKOFF_JITTER_PCT / 100;

	if (span > 0)
		delay = delay - span + net_random(t->net) % (2 * span + 1);
	t->backoff_ms = (uint32_t)MIN((uint64_t)t->backoff_ms * 2, (uint64_t)cfg->backoff_max_ms);
	t->state = PEER_TARGET_BACKOFF;
	t->retry_at_ms = uv_now(t->net->loop) + delay;
	uv_timer_start(&t->timer, target_fire, delay, 0);
}

/* A dial failed or its connection went down: wait and redial, or give up. */
static void target_retry(struct target *t, int reason)
{
	target_free_ai(t);
	if (reason != 0)
		t->last_error = reason;
	if (t->state == PEER_TARGET_COVERED)
		return;
	if (t->persistent) {
		/* A persistent target that is this node stays listed, undialed. */
		if (t->state != PEER_TARGET_SELF)
			target_backoff(t);
		return;
	}
	target_remove(t);
}

static void target_failed(struct target *t, int reason)
{
	struct peer_net *net = t->net;
	const struct peer_callbacks *cb = &net->cfg.cb;

	log_debug(LOG_PEER, "dialing %s port %u: %s", t->host, t->port, ferry_errmsg(reason));
	if (cb->on_dial_error != NULL && t->state != PEER_TARGET_SELF)
		cb->on_dial_error(net, t->host, t->port, reason, cb->ctx);
	target_retry(t, reason);
}

static void conn_on_connect(uv_connect_t *req, int status);

/* Connect to the next resolved address; when none is left, the dial failed. */
static void target_connect_next(struct target *t, int last)
{
	struct peer_net *net = t->net;

	while (t->ai_next != NULL) {
		struct addrinfo *a = t->ai_next;
		struct peer_conn *c;
		int rc;

		t->ai_next = a->ai_next;
		if (a->ai_family != AF_INET && a->ai_family != AF_INET6)
			continue;
		if ((c = conn_new(net, false)) == NULL) {
			last = FERRY_EIO;
			continue;
		}
		c->target = t;
		t->conn = c;
		peer_addr_format(c->addr, sizeof(c->addr), t->host, t->port);
		net->st.dialing++;
		c->state = C_CONNECTING;
		conn_deadline(c);
		rc = uv_tcp_connect(&c->connect_req, &c->tcp, a->ai_addr, conn_on_connect);
		if (rc == 0)
			return;
		/* conn_close hands the failure back here through target_conn_gone. */
		conn_close(c, uv_err(rc, "cannot connect to", t->host));
		return;
	}
	target_failed(t, last != 0 ? last
				   : ferry_errf(FERRY_ENOENT, "%s has no usable address", t->host));
}

/*
 * Whether c's path looks broken: a ping has gone unanswered for
 * PEER_PROBE_AFTER_MS (at least 3 RTT) and nothing at all arrived for as
 * long. Data that came after the ping does not answer it: the link can drop
 * between a frame and the pong behind it, and the pong then waits out TCP's
 * backoff like everything else.
 */
static bool conn_silent(const struct peer_conn *c, uint64_t now)
{
	uint64_t quiet = MAX((uint64_t)PEER_PROBE_AFTER_MS, (uint64_t)(3 * c->srtt_ms));

	return c->state == C_UP && c->reported && !c->paused && c->ping_out &&
	       now - c->last_ping_ms >= quiet && now - c->last_seen_ms >= quiet;
}

/*
 * probe reached the node of the conn it probes: that conn's path works again
 * but its TCP is still waiting out backed-off retransmission timers. Reset
 * it (its peer learns at once) and carry on with the handshake on probe,
 * which takes over its target.
 */
static void probe_connected(struct peer_conn *probe)
{
	struct peer_conn *old = probe->probing;
	struct peer_net *net = probe->net;
	uint64_t now = uv_now(net->loop);
	char ids[ID_SHORT_LEN];

	probe->probing = NULL;
	old->probe = NULL;
	if (old->target != NULL) {
		probe->target = old->target;
		probe->target->conn = probe;
		old->target = NULL;
	}
	net->st.revived++;
	log_info(LOG_PEER,
		 "peer %s (%s): nothing received for %.1f s but the path answers again: "
		 "replacing the connection with a fresh one",
		 id_str(ids, old->id), old->addr,
		 (double)(now - old->last_seen_ms) / 1000);
	conn_close_ex(old,
		      ferry_errf(FERRY_ETIMEDOUT,
				 "nothing received for %.1f s; replaced by a fresh connection",
				 (double)(now - old->last_seen_ms) / 1000),
		      CLOSE_RESET);
	conn_deadline(probe);
	conn_start_hs(probe);
	/*
	 * Our link is back, most likely: the other conns being probed need not
	 * wait out a lost SYN, and the other silent WAN conns are in TCP backoff
	 * just the same, whether data is owed on them or only a ping.
	 */
	for (struct peer_conn *o = net->conns; o != NULL; o = o->next) {
		if (o->probe != NULL) {
			conn_close(o->probe, FERRY_ECANCELED);
			conn_probe(o, now);
		} else if (o->link == PEER_LINK_WAN && conn_silent(o, now)) {
			conn_probe(o, now);
		} else if (o->link == PEER_LINK_WAN && o->state == C_UP && o->reported &&
			   !o->ping_out && now - o->last_seen_ms >= PEER_PROBE_AFTER_MS) {
			/* Idle, maybe stuck too: a ping lets a later revive judge it at once. */
			conn_send_ping(o);
		}
	}
}

static void conn_on_connect(uv_connect_t *req, int status)
{
	struct peer_conn *c =
	    (struct peer_conn *)((char *)req - offsetof(struct peer_conn, connect_req));

	if (c->state != C_CONNECTING)
		return;
	if (c->probing != NULL) {
		if (status < 0)
			conn_close(c, uv_err(status, "probing", c->addr));
		else
			probe_connected(c);
		return;
	}
	if (status < 0) {
		char where[WIRE_ADDR_MAX + 8];

		if (c->target != NULL)
			peer_addr_format(where, sizeof(where), c->target->host, c->target->port);
		else
			snprintf(where, sizeof(where), "%s", c->addr);
		conn_close(c, uv_err(status, "cannot connect to", where));
		return;
	}
	conn_start_hs(c);
}

static void target_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	struct target *t = req->data;

	t->gai_active = false;
	if (t->removed) {
		if (res != NULL)
			uv_freeaddrinfo(res);
		if (t->timer_closed) {
			/* The timer closed first: finish the free it left to us. */
			t->gai_active = false;
			target_timer_closed((uv_handle_t *)&t->timer);
		}
		return;
	}
	if (status < 0) {
		target_failed(t, ferry_errf(FERRY_ENOENT, "cannot resolve %s: %s", t->host,
					    uv_strerror(status)));
		return;
	}
	target_free_ai(t);
	t->ai = res;
	t->ai_next = res;
	target_connect_next(t, 0);
}

static void target_dial(struct target *t)
{
	struct peer_net *net = t->net;
	struct addrinfo hints;
	char port[8];
	int rc;

	if (net->closing || t->removed || t->conn != NULL || t->gai_active)
		return;
	uv_timer_stop(&t->timer);
	if ((t->has_id && peer_net_conn_by_id(net, t->id) != NULL) ||
	    (t->has_expect && peer_net_conn_by_id(net, t->expect) != NULL)) {
		if (!t->has_id && t->has_expect) {
			memcpy(t->id, t->expect, NODEKEY_LEN);
			t->has_id = true;
		}
		t->state = PEER_TARGET_COVERED;
		return;
	}
	t->state = PEER_TARGET_CONNECTING;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(port, sizeof(port), "%u", t->port);
	t->gai.data = t;
	rc = uv_getaddrinfo(net->loop, &t->gai, target_resolved, t->host, port, &hints);
	if (rc != 0) {
		target_failed(t, uv_err(rc, "cannot resolve", t->host));
		return;
	}
	t->gai_active = true;
}

/* c, dialed by t, has gone (it never came up, or it went down). */
static void target_conn_gone(struct target *t, struct peer_conn *c, int reason)
{
	uint64_t now = uv_now(t->net->loop);

	if (t->removed)
		return;
	if (c->closed_from == C_CONNECTING && t->ai_next != NULL) {
		target_connect_next(t, reason);
		return;
	}
	if (c->reported) {
		/* A connection that was up: redial soon, and from the start if it was stable. */
		if (now - c->up_since_ms >= PEER_STABLE_MS)
			t->backoff_ms = t->net->cfg.backoff_min_ms;
		target_retry(t, reason);
		return;
	}
	if (t->state == PEER_TARGET_SELF) {
		log_notice(LOG_PEER, "%s port %u is this node itself: not dialing it again",
			   t->host, t->port);
		target_retry(t, reason);
		return;
	}
	if (reason == FERRY_EEXIST || t->state == PEER_TARGET_COVERED) {
		t->state = PEER_TARGET_COVERED;
		return;
	}
	target_failed(t, reason);
}

static struct target *target_find(struct peer_net *net, const char *host, uint16_t port)
{
	for (struct target *t = net->targets; t != NULL; t = t->next)
		if (t->port == port && strcmp(t->host, host) == 0 && !t->removed)
			return t;
	return NULL;
}

static void target_remove(struct target *t)
{
	struct peer_net *net = t->net;

	if (t->removed)
		return;
	t->removed = true;
	for (struct target **pp = &net->targets; *pp != NULL; pp = &(*pp)->next)
		if (*pp == t) {
			*pp = t->next;
			break;
		}
	if (t->conn != NULL) {
		t->conn->target = NULL;
		t->conn = NULL;
	}
	target_free_ai(t);
	if (t->gai_active)
		uv_cancel((uv_req_t *)&t->gai);
	uv_close((uv_handle_t *)&t->timer, target_timer_closed);
}

/* Public API: the net */

static void net_listener_closed(uv_handle_t *h)
{
	struct peer_net *net = h->data;

	net->live--;
	net_maybe_free(net);
}

static void net_maybe_free(struct peer_net *net)
{
	if (net->closing && net->live == 0) {
		nodekey_wipe(&net->key);
		explicit_bzero(net->netkey, sizeof(net->netkey));
		free(net);
	}
}

int peer_net_new(uv_loop_t *loop, const struct peer_net_config *cfg, struct peer_net **out)
{
	struct peer_net *net;
	struct sockaddr_storage ss;
	int len = sizeof(ss), rc;
	const char *site = cfg->site != NULL ? cfg->site : "";
	const char *software = cfg->software != NULL ? cfg->software : PACKAGE_STRING;
	const char *cc = cfg->wan_congestion != NULL ? cfg->wan_congestion : "bbr";

	*out = NULL;
	if (cfg->key == NULL || cfg->netkey == NULL)
		return ferry_errf(FERRY_EINVAL, "peer: no node key or network key");
	if (cfg->cb.on_up == NULL || cfg->cb.on_message == NULL || cfg->cb.on_down == NULL)
		return ferry_errf(FERRY_EINVAL, "peer: on_up, on_message and on_down are required");
	if (strlen(site) > WIRE_SITE_MAX || strlen(software) > WIRE_SOFTWARE_MAX)
		return ferry_errf(FERRY_EINVAL, "peer: site '%s' or software '%s' is too long",
				  site, software);
	if (strlen(cc) >= PEER_CC_NAME_MAX)
		return ferry_errf(FERRY_EINVAL, "peer: congestion control '%s' is too long", cc);
	net = xcalloc(1, sizeof(*net));
	net->loop = loop;
	net->key = *cfg->key;
	memcpy(net->netkey, cfg->netkey, SESSION_KEY_LEN);
	strcpy(net->site, site);
	strcpy(net->software, software);
	strcpy(net->wan_cc, cc);
	net->cfg = *cfg;
	net->cfg.key = NULL;
	net->cfg.netkey = NULL;
	net->cfg.listen_host = NULL;
	net->cfg.site = NULL;
	net->cfg.software = NULL;
	net->cfg.wan_congestion = NULL;
#define DEFAULT(f, v)                                                                              \
	if (net->cfg.f == 0)                                                                       \
	net->cfg.f = (v)
	DEFAULT(hs_timeout_ms, PEER_HS_TIMEOUT_MS);
	DEFAULT(ping_interval_ms, PEER_PING_INTERVAL_MS);
	DEFAULT(dead_timeout_ms, PEER_DEAD_TIMEOUT_MS);
	DEFAULT(backoff_min_ms, PEER_BACKOFF_MIN_MS);
	DEFAULT(backoff_max_ms, PEER_BACKOFF_MAX_MS);
	DEFAULT(unauth_max, PEER_UNAUTH_MAX);
	DEFAULT(lowat, PEER_LOWAT);
#undef DEFAULT
	net->cfg.backoff_max_ms = MAX(net->cfg.backoff_max_ms, net->cfg.backoff_min_ms);
	net->start_ms = uv_now(loop);
	net->rng = uv_hrtime() ^ ((uint64_t)net->key.pk[0] << 56 | (uint64_t)net->key.pk[1] << 48) ^
		   (uint64_t)(uintptr_t)net;
	if (net->rng == 0)
		net->rng = 1;
	if (cfg->listen_host == NULL) {
		*out = net;
		return 0;
	}
	if (strchr(cfg->listen_host, ':') != NULL)
		rc = uv_ip6_addr(cfg->listen_host, cfg->listen_port, (struct sockaddr_in6 *)&ss);
	else
		rc = uv_ip4_addr(cfg->listen_host, cfg->listen_port, (struct sockaddr_in *)&ss);
	if (rc != 0) {
		rc = ferry_errf(FERRY_EINVAL, "peer: listen address '%s' is not an IP address",
				cfg->listen_host);
		free(net);
		return rc;
	}
	uv_tcp_init(loop, &net->listener);
	net->listener.data = net;
	net->live = 1;
	rc = uv_tcp_bind(&net->listener, (struct sockaddr *)&ss, 0);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&net->listener, LISTEN_BACKLOG, net_on_connection);
	if (rc != 0) {
		char where[WIRE_ADDR_MAX + 8];

		rc = uv_err(
		    rc, "cannot listen on",
		    peer_addr_format(where, sizeof(where), cfg->listen_host, cfg->listen_port));
		/* The handle is freed with the net when the loop runs its close callback. */
		net->closing = true;
		uv_close((uv_handle_t *)&net->listener, net_listener_closed);
		return rc;
	}
	net->listening = true;
	if (uv_tcp_getsockname(&net->listener, (struct sockaddr *)&ss, &len) == 0)
		net->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
							   : ((struct sockaddr_in *)&ss)->sin_port);
	*out = net;
	return 0;
}

void peer_net_free(struct peer_net *net)
{
	if (net == NULL || net->closing)
		return;
	net->closing = true;
	if (net->listening)
		uv_close((uv_handle_t *)&net->listener, net_listener_closed);
	while (net->targets != NULL)
		target_remove(net->targets);
	for (struct peer_conn *c = net->conns; c != NULL; c = c->next)
		conn_close(c, ferry_errf(FERRY_ECANCELED, "this node closed its peer connections"));
	net_maybe_free(net);
}

uint16_t peer_net_port(const struct peer_net *net)
{
	return net->listening ? net->port : 0;
}

int peer_net_dial(struct peer_net *net, const char *host, uint16_t port, const uint8_t *expect_id,
		  unsigned flags)
{
	struct target *t;

	if (host == NULL || host[0] == '\0' || strlen(host) > WIRE_ADDR_MAX || port == 0)
		return ferry_errf(FERRY_EINVAL, "peer: cannot dial '%s' port %u",
				  host != NULL ? host : "", port);
	if (net->closing)
		return ferry_errf(FERRY_ECANCELED, "peer: the net is closing");
	if ((t = target_find(net, host, port)) != NULL) {
		if (flags & PEER_DIAL_PERSISTENT)
			t->persistent = true;
		return 0;
	}
	t = xcalloc(1, sizeof(*t));
	t->net = net;
	t->host = xstrdup(host);
	t->port = port;
	t->persistent = (flags & PEER_DIAL_PERSISTENT) != 0;
	if (expect_id != NULL) {
		memcpy(t->expect, expect_id, NODEKEY_LEN);
		t->has_expect = true;
	}
	t->backoff_ms = net->cfg.backoff_min_ms;
	t->state = PEER_TARGET_CONNECTING;
	uv_timer_init(net->loop, &t->timer);
	t->timer.data = t;
	t->next = net->targets;
	net->targets = t;
	net->live++;
	/* Dial from the loop, so no callback runs inside this call. */
	uv_timer_start(&t->timer, target_fire, 0, 0);
	return 0;
}

int peer_net_undial(struct peer_net *net, const char *host, uint16_t port)
{
	struct target *t = target_find(net, host, port);

	if (t == NULL)
		return ferry_errf(FERRY_ENOENT, "peer: not dialing %s port %u", host, port);
	target_remove(t);
	return 0;
}

struct peer_conn *peer_net_conn_by_id(struct peer_net *net, const uint8_t id[NODEKEY_LEN])
{
	for (struct peer_conn *c = net->conns; c != NULL; c = c->next)
		if (c->state == C_UP && c->reported && memcmp(c->id, id, NODEKEY_LEN) == 0)
			return c;
	return NULL;
}

void peer_net_targets(struct peer_net *net,
		      void (*cb)(void *arg, const struct peer_target_info *info), void *arg)
{
	uint64_t now = uv_now(net->loop);

	for (struct target *t = net->targets; t != NULL; t = t->next) {
		struct peer_target_info info = {
		    .host = t->host,
		    .port = t->port,
		    .persistent = t->persistent,
		    .state = t->state,
		    .node_id = t->has_id ? t->id : NULL,
		    .retry_in_ms = t->state == PEER_TARGET_BACKOFF && t->retry_at_ms > now
				       ? t->retry_at_ms - now
				       : 0,
		    .last_error = t->last_error,
		};

		cb(arg, &info);
	}
}

void peer_net_stats(const struct peer_net *net, struct peer_net_stats *out)
{
	*out = net->st;
}

/* Public API: conns */

int peer_conn_send(struct peer_conn *c, const struct wire_msg *m)
{
	if (c->state != C_UP)
		return ferry_errf(FERRY_ECANCELED, "peer %s: the connection is closing", c->addr);
	if (wire_flags(m->type) & (WIRE_F_HANDSHAKE))
		return ferry_errf(FERRY_EINVAL, "peer: %s is sent by the handshake only",
				  wire_name(m->type));
	return conn_send(c, m);
}

int peer_conn_send_chunk(struct peer_conn *c, uint32_t req, const uint8_t *enc, size_t total,
			 size_t from)
{
	struct wire_msg m = {.type = WIRE_CHUNK_DATA};
	int rc;

	if (total == 0 || total > WIRE_CHUNK_ENC_MAX || from >= total)
		return ferry_errf(FERRY_EINVAL, "peer: chunk of %zu bytes from %zu", total, from);
	m.chunk_data.req = req;
	m.chunk_data.total = (uint32_t)total;
	while (from < total) {
		m.chunk_data.offset = (uint32_t)from;
		m.chunk_data.data = enc + from;
		m.chunk_data.len = MIN(total - from, (size_t)WIRE_CHUNK_DATA_MAX);
		if ((rc = peer_conn_send(c, &m)) != 0)
			return rc;
		from += m.chunk_data.len;
	}
	return 0;
}

size_t peer_conn_queued(const struct peer_conn *c)
{
	return c->queued;
}

bool peer_conn_wants_data(const struct peer_conn *c)
{
	return c->queued < c->lowat;
}

void peer_conn_ping(struct peer_conn *c)
{
	if (c->state == C_UP)
		conn_send_ping(c);
}

/*
 * How long a probe of c may take to connect: its SYN crosses a path that has
 * just come back, with empty queues, so 3 times c's lowest RTT (the smoothed
 * one grows with the queue of a busy link).
 */
static uint64_t probe_wait(const struct peer_conn *c)
{
	return MAX((uint64_t)PEER_PROBE_MS, (uint64_t)(3 * c->rtt_min_ms));
}

/* A probe did not connect in time: the next one goes out now while revival is wanted. */
static void probe_timeout(uv_timer_t *t)
{
	struct peer_conn *c = t->data, *old = c->probing;
	uint64_t now = uv_now(c->net->loop);

	conn_close(c, ferry_errf(FERRY_ETIMEDOUT, "%s: no answer to a probe", c->addr));
	if (old != NULL && old->state == C_UP && now - old->revive_ms <= PEER_REVIVE_HOLD_MS)
		conn_probe(old, now);
}

/*
 * Where to dial c's node again: the address c reached it on (an inbound c:
 * its IP and listen port).
 */
static int conn_redial_addr(const struct peer_conn *c, struct sockaddr_storage *ss)
{
	int len = sizeof(*ss);

	if (!c->inbound)
		return uv_tcp_getpeername(&c->tcp, (struct sockaddr *)ss, &len) == 0 ? 0 : -1;
	if (c->hello.listen_port == 0 ||
	    (uv_ip4_addr(c->host, c->hello.listen_port, (struct sockaddr_in *)ss) != 0 &&
	     uv_ip6_addr(c->host, c->hello.listen_port, (struct sockaddr_in6 *)ss) != 0))
		return -1;
	return 0;
}

/* Dial c's node again on a fresh socket, at the address c reached it on. */
static void conn_probe(struct peer_conn *c, uint64_t now)
{
	struct peer_net *net = c->net;
	struct sockaddr_storage ss;
	struct peer_conn *probe;
	int rc;

	if (c->lane != 0 || conn_redial_addr(c, &ss) != 0)
		return;
	if ((probe = conn_new(net, false)) == NULL)
		return;
	c->probe_ms = now;
	c->probe = probe;
	probe->probing = c;
	snprintf(probe->addr, sizeof(probe->addr), "%s", c->addr);
	net->st.dialing++;
	net->st.probes++;
	probe->state = C_CONNECTING;
	uv_timer_start(&probe->timer, probe_timeout, probe_wait(c), 0);
	rc = uv_tcp_connect(&probe->connect_req, &probe->tcp, (struct sockaddr *)&ss,
			    conn_on_connect);
	if (rc != 0)
		conn_close(probe, uv_err(rc, "cannot probe", c->addr));
}

/* Lanes */

/* Close c's lanes from number from on; they go silently (c is closing, or they are not wanted). */
static void lanes_close(struct peer_conn *c, unsigned from)
{
	for (unsigned k = MAX(from, 1u); k < PEER_LANES_MAX; k++) {
		struct peer_conn *l = c->lanes[k];

		if (l == NULL)
			continue;
		c->lanes[k] = NULL;
		l->main = NULL;
		conn_close(l, ferry_errf(FERRY_ECANCELED, "lane %u closed with its connection", k));
	}
}

/* Lane l has closed while its conn is up: the conn hears of it and redials it at its next check. */
static void lane_gone(struct peer_conn *l)
{
	struct peer_conn *c = l->main;
	const struct peer_callbacks *cb = &l->net->cfg.cb;
	char ids[ID_SHORT_LEN];

	l->main = NULL;
	if (c->lanes[l->lane] == l)
		c->lanes[l->lane] = NULL;
	if (!l->lane_up)
		return;
	log_info(LOG_PEER, "peer %s (%s): lane %u down: %s", id_str(ids, c->id), c->addr, l->lane,
		 l->down_why);
	if (cb->on_lane != NULL && c->state == C_UP)
		cb->on_lane(c, l->lane, false, cb->ctx);
}

/* Lane l's handshake is done: join its conn (an inbound lane: the inbound conn of its node). */
static void lane_attach(struct peer_conn *l)
{
	struct peer_net *net = l->net;
	const struct peer_callbacks *cb = &net->cfg.cb;
	struct peer_conn *c = l->main, *old;
	char ids[ID_SHORT_LEN];

	if (l->inbound)
		for (c = net->conns; c != NULL; c = c->next)
			if (c->lane == 0 && c->inbound && c->state == C_UP && c->reported &&
			    memcmp(c->id, l->id, NODEKEY_LEN) == 0)
				break;
	if (c == NULL || c->state != C_UP || !c->reported) {
		conn_close(l, ferry_errf(FERRY_ENOENT,
					 "lane %u of node %s: no connection from it to join",
					 l->lane, id_str(ids, l->id)));
		return;
	}
	old = c->lanes[l->lane];
	if (old != NULL && old != l) {
		/* The dialer replaced a lane whose end here has not noticed yet. */
		c->lanes[l->lane] = NULL;
		old->main = NULL;
		if (old->lane_up && cb->on_lane != NULL)
			cb->on_lane(c, l->lane, false, cb->ctx);
		conn_close(old, ferry_errf(FERRY_EEXIST, "lane %u replaced by a new one", l->lane));
		if (c->state != C_UP)
			return;
	}
	l->main = c;
	c->lanes[l->lane] = l;
	l->lane_up = true;
	l->paused = c->paused;
	peer_conn_set_link(l, c->link);
	log_debug(LOG_PEER, "peer %s (%s): lane %u up (%s)", id_str(ids, c->id), c->addr, l->lane,
		  l->inbound ? "inbound" : "outbound");
	conn_go_live(l);
	if (l->state == C_UP && cb->on_lane != NULL)
		cb->on_lane(c, l->lane, true, cb->ctx);
}

static void lane_dial(struct peer_conn *c, unsigned k)
{
	struct sockaddr_storage ss;
	struct peer_conn *l;
	int rc;

	if (conn_redial_addr(c, &ss) != 0 || (l = conn_new(c->net, false)) == NULL)
		return;
	l->main = c;
	l->lane = k;
	c->lanes[k] = l;
	snprintf(l->addr, sizeof(l->addr), "%s", c->addr);
	c->net->st.dialing++;
	l->state = C_CONNECTING;
	conn_deadline(l);
	rc = uv_tcp_connect(&l->connect_req, &l->tcp, (struct sockaddr *)&ss, conn_on_connect);
	if (rc != 0)
		conn_close(l, uv_err(rc, "cannot connect a lane to", c->addr));
}

/* Dial the lanes c should have and has not (the dialing end of an up conn only). */
static void lanes_dial(struct peer_conn *c)
{
	if (c->inbound || c->lane != 0 || c->state != C_UP || !c->reported || c->net->closing)
		return;
	for (unsigned k = 1; k < c->lanes_wanted; k++)
		if (c->lanes[k] == NULL)
			lane_dial(c, k);
}

void peer_conn_set_lanes(struct peer_conn *c, unsigned lanes)
{
	c->lanes_wanted = MIN(MAX(lanes, 1u), (unsigned)PEER_LANES_MAX);
	if (c->inbound)
		return;
	lanes_close(c, c->lanes_wanted);
	lanes_dial(c);
}

unsigned peer_conn_lanes_up(const struct peer_conn *c)
{
	unsigned bits = c->state == C_UP ? 1u : 0u;

	for (unsigned k = 1; k < PEER_LANES_MAX; k++)
		if (c->lanes[k] != NULL && c->lanes[k]->lane_up && c->lanes[k]->state == C_UP)
			bits |= 1u << k;
	return bits;
}

static struct peer_conn *lane_of(const struct peer_conn *c, unsigned lane)
{
	if (lane == 0)
		return (struct peer_conn *)c;
	if (lane >= PEER_LANES_MAX || c->lanes[lane] == NULL || !c->lanes[lane]->lane_up)
		return NULL;
	return c->lanes[lane];
}

int peer_conn_lane_send(struct peer_conn *c, unsigned lane, const struct wire_msg *m)
{
	struct peer_conn *l = lane_of(c, lane);

	if (l == NULL)
		return ferry_errf(FERRY_ENOENT, "peer %s: lane %u is not up", c->addr, lane);
	return peer_conn_send(l, m);
}

bool peer_conn_lane_wants_data(const struct peer_conn *c, unsigned lane)
{
	const struct peer_conn *l = lane_of(c, lane);

	return l != NULL && l->state == C_UP && peer_conn_wants_data(l);
}

void peer_conn_revive(struct peer_conn *c)
{
	uint64_t now = uv_now(c->net->loop);

	if (c->state != C_UP || !c->reported || c->paused)
		return;
	c->revive_ms = now;
	if (c->probe != NULL)
		return;
	if (!c->ping_out) {
		conn_send_ping(c);
		return;
	}
	/* Anything since the ping, or not long enough: the path may be fine. */
	if (!conn_silent(c, now) || now - c->probe_ms < probe_wait(c))
		return;
	conn_probe(c, now);
}

void peer_conn_close(struct peer_conn *c, int reason)
{
	conn_close(c, reason < 0 ? reason : FERRY_ECANCELED);
}

static void conn_set_reading(struct peer_conn *c, bool on)
{
	c->paused = !on;
	if (c->state != C_UP || (!c->reported && !c->lane_up))
		return;
	if (on && !c->reading) {
		if (uv_read_start((uv_stream_t *)&c->tcp, conn_alloc, conn_read) == 0)
			c->reading = true;
	} else if (!on && c->reading) {
		uv_read_stop((uv_stream_t *)&c->tcp);
		c->reading = false;
		/* The dead-peer clock restarts when reading resumes. */
	}
	if (on)
		c->last_seen_ms = uv_now(c->net->loop);
}

void peer_conn_set_reading(struct peer_conn *c, bool on)
{
	conn_set_reading(c, on);
	for (unsigned k = 1; k < PEER_LANES_MAX; k++)
		if (c->lanes[k] != NULL)
			conn_set_reading(c->lanes[k], on);
}

void peer_conn_set_link(struct peer_conn *c, enum peer_link link)
{
	c->link = link;
	c->inflight_max = link == PEER_LINK_WAN ? INFLIGHT_WAN : INFLIGHT_LAN;
	c->lowat = link == PEER_LINK_WAN ? MIN(c->net->cfg.lowat, (size_t)PEER_WAN_LOWAT)
					 : c->net->cfg.lowat;
	if (link == PEER_LINK_WAN && c->state != C_CLOSING)
		sock_wan(c);
	for (unsigned k = 1; k < PEER_LANES_MAX; k++)
		if (c->lanes[k] != NULL)
			peer_conn_set_link(c->lanes[k], link);
}

enum peer_link peer_conn_link(const struct peer_conn *c)
{
	return c->link;
}

const char *peer_conn_congestion(const struct peer_conn *c)
{
	return c->cc;
}

const uint8_t *peer_conn_id(const struct peer_conn *c)
{
	return c->id;
}

const struct wire_hello *peer_conn_hello(const struct peer_conn *c)
{
	return &c->hello;
}

uint32_t peer_conn_version(const struct peer_conn *c)
{
	return c->version;
}

bool peer_conn_initiated(const struct peer_conn *c)
{
	return !c->inbound;
}

const char *peer_conn_addr(const struct peer_conn *c)
{
	return c->addr;
}

const char *peer_conn_host(const struct peer_conn *c)
{
	return c->host;
}

const char *peer_conn_target_host(const struct peer_conn *c)
{
	return c->target != NULL ? c->target->host : NULL;
}

void peer_conn_set_data(struct peer_conn *c, void *data)
{
	c->data = data;
}

void *peer_conn_data(const struct peer_conn *c)
{
	return c->data;
}

void peer_conn_stats(const struct peer_conn *c, struct peer_conn_stats *out)
{
	uint64_t now = uv_now(c->net->loop);

	memset(out, 0, sizeof(*out));
	out->bytes_in = c->bytes_in;
	out->bytes_out = c->bytes_out;
	out->msgs_in = c->msgs_in;
	out->msgs_out = c->msgs_out;
	out->unknown_in = c->unknown_in;
	out->up_since_ms = c->up_since_ms;
	out->last_seen_ms = c->last_seen_ms;
	out->last_seen_unix = (int64_t)time(NULL) - (int64_t)((now - c->last_seen_ms) / 1000);
	out->rtt_ms = c->srtt_ms;
	out->rtt_last_ms = c->rtt_last_ms;
	out->rtt_samples = c->rtt_samples;
	out->queued = c->queued;
	out->lanes = 1;
	for (unsigned k = 1; k < PEER_LANES_MAX; k++) {
		const struct peer_conn *l = c->lanes[k];

		if (l == NULL)
			continue;
		out->bytes_in += l->bytes_in;
		out->bytes_out += l->bytes_out;
		out->msgs_in += l->msgs_in;
		out->msgs_out += l->msgs_out;
		out->queued += l->queued;
		out->lanes += l->lane_up;
	}
}

/* Addresses */

int peer_addr_parse(const char *addr, char *host, size_t cap, uint16_t *port)
{
	const char *h = addr, *colon;
	size_t hlen;
	char *end;
	unsigned long p;

	if (addr[0] == '[') {
		const char *close = strchr(addr, ']');

		if (close == NULL || close[1] != ':')
			return ferry_errf(FERRY_EINVAL, "address '%s': no ']:' after an IPv6 host",
					  addr);
		h = addr + 1;
		hlen = (size_t)(close - h);
		colon = close + 1;
	} else {
		colon = strrchr(addr, ':');
		if (colon == NULL)
			return ferry_errf(FERRY_EINVAL, "address '%s' has no port", addr);
		hlen = (size_t)(colon - addr);
		if (memchr(addr, ':', hlen) != NULL)
			return ferry_errf(FERRY_EINVAL,
					  "address '%s': write an IPv6 host in brackets", addr);
	}
	if (hlen == 0 || hlen >= cap || hlen > WIRE_ADDR_MAX)
		return ferry_errf(FERRY_EINVAL, "address '%s': empty or too long host", addr);
	if (colon[1] < '0' || colon[1] > '9')
		return ferry_errf(FERRY_EINVAL, "address '%s': bad port", addr);
	errno = 0;
	p = strtoul(colon + 1, &end, 10);
	if (errno != 0 || *end != '\0' || p == 0 || p > 65535)
		return ferry_errf(FERRY_EINVAL, "address '%s': port must be 1..65535", addr);
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	*port = (uint16_t)p;
	return 0;
}

char *peer_addr_format(char *out, size_t cap, const char *host, uint16_t port)
{
	snprintf(out, cap, strchr(host, ':') != NULL ? "[%s]:%u" : "%s:%u", host, port);
	return out;
}
