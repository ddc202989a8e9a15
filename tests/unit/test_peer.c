/*
 * Unit tests for the peer transport: real sockets on 127.0.0.1 and a real
 * libuv loop in one process. Peers are struct peer_net instances; "raw"
 * clients are plain sockets driven by the test (with session.h where they
 * must speak the handshake), to see exactly what a responder writes.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "ferry/error.h"
#include "ferry/nodekey.h"
#include "ferry/peer.h"
#include "ferry/session.h"
#include "ferry/util.h"
#include "ferry/wire.h"

#define STREAM_BYTES (16u << 20)
#define STREAM_CHUNK (1u << 20)
#define WAIT_MS	     15000

static uv_loop_t *loop;
static uint8_t netkey[SESSION_KEY_LEN];

/* One node under test and what its callbacks saw. */
struct tnode {
	const char *name;
	struct nodekey key;
	struct peer_net *net;
	int ups, downs, dial_errors;
	int last_down;
	int last_dial_error;
	struct peer_conn *conn; /* the conn of the latest on_up, NULL after its on_down */
	uint8_t up_id[NODEKEY_LEN];
	struct wire_hello up_hello;
	/* Messages. */
	int n_manifest_req, n_have, n_chunk_data, n_writable;
	struct wire_manifest_req got_req;
	char have_name[WIRE_NAME_MAX + 1];
	uint8_t have_bitmap[8];
	size_t have_bitmap_len;
	/* A stream of CHUNK_DATA into dst. */
	uint8_t *dst;
	uint64_t got_bytes;
	uint32_t next_off[STREAM_BYTES / STREAM_CHUNK];
	bool order_broken;
	/* The sender side of a paced stream (on_writable). */
	const uint8_t *src;
	size_t sent;
	size_t max_queued;
	/* Set by the test: when on_message sees this many RTT samples on watch, record. */
	struct tnode *watch;
	uint64_t watch_samples;
	int64_t watch_at; /* got_bytes when the watched RTT sample appeared; -1 before */
	/* Lanes: on_lane calls; CHUNK_DATA that came to another conn than the latest on_up's. */
	int lane_ups, lane_downs;
	unsigned last_lane_down;
	bool data_elsewhere;
};

static void cb_on_up(struct peer_conn *c, const uint8_t id[NODEKEY_LEN],
		     const struct wire_hello *hello, void *ctx)
{
	struct tnode *n = ctx;

	n->ups++;
	n->conn = c;
	memcpy(n->up_id, id, NODEKEY_LEN);
	n->up_hello = *hello;
	assert_memory_equal(peer_conn_id(c), id, NODEKEY_LEN);
}

static void cb_on_down(struct peer_conn *c, int reason, void *ctx)
{
	struct tnode *n = ctx;

	n->downs++;
	n->last_down = reason;
	if (n->conn == c)
		n->conn = NULL;
}

static void pace(struct tnode *n, struct peer_conn *c);

static void cb_on_message(struct peer_conn *c, const struct wire_msg *m, void *ctx)
{
	struct tnode *n = ctx;

	switch (m->type) {
	case WIRE_MANIFEST_REQ:
		n->n_manifest_req++;
		n->got_req = m->manifest_req;
		break;
	case WIRE_HAVE:
		n->n_have++;
		strcpy(n->have_name, m->have.name);
		n->have_bitmap_len = MIN(m->have.bitmap_len, sizeof(n->have_bitmap));
		memcpy(n->have_bitmap, m->have.bitmap, n->have_bitmap_len);
		break;
	case WIRE_CHUNK_DATA: {
		const struct wire_chunk_data *d = &m->chunk_data;

		n->n_chunk_data++;
		if (c != n->conn)
			n->data_elsewhere = true;
		assert_non_null(n->dst);
		assert_true(d->req < STREAM_BYTES / STREAM_CHUNK);
		assert_int_equal(d->total, STREAM_CHUNK);
		if (d->offset != n->next_off[d->req])
			n->order_broken = true;
		n->next_off[d->req] = d->offset + (uint32_t)d->len;
		memcpy(n->dst + (size_t)d->req * STREAM_CHUNK + d->offset, d->data, d->len);
		n->got_bytes += d->len;
		if (n->watch != NULL && n->watch_at < 0 && n->watch->conn != NULL) {
			struct peer_conn_stats st;

			peer_conn_stats(n->watch->conn, &st);
			if (st.rtt_samples > n->watch_samples)
				n->watch_at = (int64_t)n->got_bytes;
		}
		break;
	}
	default:
		break;
	}
	(void)c;
}

static void cb_on_writable(struct peer_conn *c, void *ctx)
{
	struct tnode *n = ctx;

	n->n_writable++;
	pace(n, c);
}

static void cb_on_lane(struct peer_conn *c, unsigned lane, bool up, void *ctx)
{
	struct tnode *n = ctx;

	assert_ptr_equal(c, n->conn);
	assert_true(lane >= 1 && lane < PEER_LANES_MAX);
	if (up) {
		n->lane_ups++;
	} else {
		n->lane_downs++;
		n->last_lane_down = lane;
	}
}

static void cb_on_dial_error(struct peer_net *net, const char *host, uint16_t port, int reason,
			     void *ctx)
{
	struct tnode *n = ctx;

	(void)net;
	(void)host;
	(void)port;
	n->dial_errors++;
	n->last_dial_error = reason;
}

static struct peer_net_config node_config(struct tnode *n, bool listen)
{
	struct peer_net_config cfg = {
	    .key = &n->key,
	    .netkey = netkey,
	    .listen_host = listen ? "127.0.0.1" : NULL,
	    .site = n->name,
	    .software = "ferry-test",
	    .backoff_min_ms = 20,
	    .backoff_max_ms = 160,
	    .cb =
		{
		    .ctx = n,
		    .on_up = cb_on_up,
		    .on_message = cb_on_message,
		    .on_down = cb_on_down,
		    .on_writable = cb_on_writable,
		    .on_lane = cb_on_lane,
		    .on_dial_error = cb_on_dial_error,
		},
	};
	return cfg;
}

static void node_init(struct tnode *n, const char *name)
{
	memset(n, 0, sizeof(*n));
	n->name = name;
	n->watch_at = -1;
	nodekey_generate(&n->key);
}

static void node_start(struct tnode *n, struct peer_net_config *cfg)
{
	int rc = peer_net_new(loop, cfg, &n->net);

	if (rc != 0)
		fail_msg("peer_net_new: %s", ferry_errmsg(rc));
}

/* Wakes the loop regularly so run_until re-checks its condition. */
static void tick_cb(uv_timer_t *t)
{
	(void)t;
}

static bool run_until_(bool (*pred)(void *), void *arg, uint64_t max_ms)
{
	uv_timer_t tick;
	uint64_t deadline;
	bool ok;

	uv_update_time(loop);
	deadline = uv_now(loop) + max_ms;
	uv_timer_init(loop, &tick);
	uv_timer_start(&tick, tick_cb, 5, 5);
	while (!(ok = pred(arg)) && uv_now(loop) < deadline)
		uv_run(loop, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&tick, NULL);
	uv_run(loop, UV_RUN_NOWAIT);
	return ok;
}

#define run_until(pred, arg)                                                                       \
	do {                                                                                       \
		if (!run_until_((pred), (arg), WAIT_MS))                                           \
			fail_msg("timed out waiting for %s", #pred);                               \
	} while (0)

static bool always_false(void *arg)
{
	(void)arg;
	return false;
}

/* Let the loop run for ms (to show that something does NOT happen). */
static void run_for(uint64_t ms)
{
	run_until_(always_false, NULL, ms);
}

static void node_free(struct tnode *n)
{
	peer_net_free(n->net);
	n->net = NULL;
	/* Let the close callbacks run (and on_down reach n) before n goes out of scope. */
	run_for(30);
}

static bool is_up(void *arg)
{
	return ((struct tnode *)arg)->conn != NULL;
}

static bool both_up(void *arg)
{
	struct tnode **p = arg;

	return p[0]->conn != NULL && p[1]->conn != NULL;
}

/* Raw clients */

static int raw_connect(uint16_t port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	return fd;
}

struct raw {
	int fd;
	uint8_t buf[1 << 16];
	size_t len;
	bool eof;
};

/* Read what has arrived without blocking; true once the peer has closed. */
static bool raw_poll(void *arg)
{
	struct raw *r = arg;

	for (;;) {
		ssize_t k = recv(r->fd, r->buf + r->len, sizeof(r->buf) - r->len, MSG_DONTWAIT);

		if (k > 0) {
			r->len += (size_t)k;
			continue;
		}
		if (k == 0 || (errno != EAGAIN && errno != EINTR))
			r->eof = true;
		return r->eof;
	}
}

static bool raw_has_data(void *arg)
{
	struct raw *r = arg;

	raw_poll(r);
	return r->len > 0 || r->eof;
}

static void raw_send(int fd, const void *p, size_t n)
{
	assert_int_equal(send(fd, p, n, MSG_NOSIGNAL), (ssize_t)n);
}

static struct peer_net_stats net_stats(struct tnode *n)
{
	struct peer_net_stats st;

	peer_net_stats(n->net, &st);
	return st;
}

/* Tests */

/* Each test has a loop of its own, so a failed test cannot hang or disturb the next. */
static int setup(void **state)
{
	(void)state;
	loop = xmalloc(sizeof(*loop));
	uv_loop_init(loop);
	memset(netkey, 0x42, sizeof(netkey));
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	/* After a failure the nets are still open and point into a dead stack frame: leak them. */
	if (uv_loop_close(loop) == 0)
		free(loop);
	loop = NULL;
	return 0;
}

/* Every net a test made has been freed and has closed all its handles. */
static void assert_loop_clean(void)
{
	run_for(30);
	assert_int_equal(uv_loop_alive(loop), 0);
}

static bool stream_done(void *arg)
{
	struct tnode *n = arg;

	return n->got_bytes >= STREAM_BYTES;
}

static bool both_down(void *arg)
{
	struct tnode **p = arg;

	return p[0]->downs > 0 && p[1]->downs > 0;
}

static bool got_have(void *arg)
{
	struct tnode **p = arg;

	return p[0]->n_have > 0 && p[1]->n_manifest_req > 0;
}

static bool rtt_measured(void *arg)
{
	struct tnode *n = arg;
	struct peer_conn_stats st;

	if (n->conn == NULL)
		return false;
	peer_conn_stats(n->conn, &st);
	return st.rtt_samples > 0;
}

/* Keep the bulk queue between one and two low-water marks until the stream is sent. */
static void pace(struct tnode *n, struct peer_conn *c)
{
	size_t lowat = 256 * 1024;

	while (n->src != NULL && n->sent < STREAM_BYTES && peer_conn_queued(c) < 2 * lowat) {
		uint32_t req = (uint32_t)(n->sent / STREAM_CHUNK);
		size_t off = n->sent % STREAM_CHUNK,
		       len = MIN((size_t)WIRE_CHUNK_DATA_MAX, STREAM_CHUNK - off);
		struct wire_msg m = {.type = WIRE_CHUNK_DATA};

		m.chunk_data.req = req;
		m.chunk_data.offset = (uint32_t)off;
		m.chunk_data.total = STREAM_CHUNK;
		m.chunk_data.data = n->src + n->sent;
		m.chunk_data.len = len;
		assert_int_equal(peer_conn_send(c, &m), 0);
		n->sent += len;
		n->max_queued = MAX(n->max_queued, peer_conn_queued(c));
	}
}

static bool a_drained(void *arg)
{
	return peer_conn_queued(((struct tnode *)arg)->conn) == 0;
}

/* STREAM_BYTES of a pattern (shift varies it). */
static uint8_t *stream_src(unsigned shift)
{
	uint8_t *src = xmalloc(STREAM_BYTES);

	for (size_t i = 0; i < STREAM_BYTES; i++)
		src[i] = (uint8_t)((i * 2654435761u) >> shift);
	return src;
}

/* Start a (listening) and b (not; its low-water mark b_lowat, 0 = default); b dials a; both up. */
static void pair_connect(struct tnode *a, const char *an, struct tnode *b, const char *bn,
			 size_t b_lowat)
{
	struct tnode *pair[2] = {a, b};
	struct peer_net_config ca, cb;

	node_init(a, an);
	node_init(b, bn);
	ca = node_config(a, true);
	cb = node_config(b, false);
	cb.lowat = b_lowat;
	node_start(a, &ca);
	node_start(b, &cb);
	assert_int_equal(peer_net_dial(b->net, "127.0.0.1", peer_net_port(a->net), a->key.pk, 0),
			 0);
	run_until(both_up, pair);
}

static void test_connect_and_stream(void **state)
{
	struct tnode a, b, *pair[2] = {&a, &b};
	struct peer_conn_stats st;
	uint8_t *src = stream_src(13);
	struct wire_msg m;
	uint8_t bits[2] = {0xa5, 0x01};

	(void)state;
	pair_connect(&a, "site-a", &b, "site-b", 256 * 1024);
	assert_true(peer_net_port(a.net) != 0);
	assert_int_equal(peer_net_port(b.net), 0);

	/* Each side knows the other's id and hello; B dialed, A accepted. */
	assert_memory_equal(a.up_id, b.key.pk, NODEKEY_LEN);
	assert_memory_equal(b.up_id, a.key.pk, NODEKEY_LEN);
	assert_string_equal(a.up_hello.site, "site-b");
	assert_string_equal(b.up_hello.site, "site-a");
	assert_int_equal(b.up_hello.listen_port, peer_net_port(a.net));
	assert_int_equal(a.up_hello.listen_port, 0);
	assert_string_equal(b.up_hello.software, "ferry-test");
	assert_true(peer_conn_initiated(b.conn));
	assert_false(peer_conn_initiated(a.conn));
	assert_int_equal(peer_conn_version(a.conn), WIRE_VERSION);
	assert_string_equal(peer_conn_host(a.conn), "127.0.0.1");
	assert_string_equal(peer_conn_target_host(b.conn), "127.0.0.1");
	assert_null(peer_conn_target_host(a.conn));
	assert_ptr_equal(peer_net_conn_by_id(a.net, b.key.pk), a.conn);
	peer_conn_set_link(a.conn, PEER_LINK_LAN);
	assert_int_equal(peer_conn_link(a.conn), PEER_LINK_LAN);
	/* Helpers may not send a HELLO. */
	m = (struct wire_msg){.type = WIRE_HELLO};
	m.hello.version_min = m.hello.version_max = 1;
	assert_int_equal(peer_conn_send(a.conn, &m), FERRY_EINVAL);

	/* Messages both ways. */
	m = (struct wire_msg){.type = WIRE_MANIFEST_REQ};
	strcpy(m.manifest_req.name, "llama");
	m.manifest_req.version = 9;
	assert_int_equal(peer_conn_send(a.conn, &m), 0);
	m = (struct wire_msg){.type = WIRE_HAVE};
	strcpy(m.have.name, "whisper");
	m.have.version = 2;
	m.have.nchunks = 9;
	m.have.bitmap = bits;
	m.have.bitmap_len = 2;
	assert_int_equal(peer_conn_send(b.conn, &m), 0);
	run_until(got_have, pair);
	assert_string_equal(b.got_req.name, "llama");
	assert_true(b.got_req.version == 9);
	assert_string_equal(a.have_name, "whisper");
	assert_int_equal(a.have_bitmap_len, 2);
	assert_memory_equal(a.have_bitmap, bits, 2);
	run_until(rtt_measured, &a);

	/*
	 * 16 MiB A -> B queued at once, then a ping: it must overtake the queued
	 * data, so its PONG is back long before the stream ends.
	 */
	b.dst = xcalloc(1, STREAM_BYTES);
	peer_conn_stats(a.conn, &st);
	b.watch = &a;
	b.watch_samples = st.rtt_samples;
	for (uint32_t i = 0; i < STREAM_BYTES / STREAM_CHUNK; i++)
		assert_int_equal(peer_conn_send_chunk(a.conn, i, src + (size_t)i * STREAM_CHUNK,
						      STREAM_CHUNK, 0),
				 0);
	assert_true(peer_conn_queued(a.conn) >= STREAM_BYTES - 2 * STREAM_CHUNK);
	peer_conn_ping(a.conn);
	run_until(stream_done, &b);
	assert_false(b.order_broken);
	assert_memory_equal(b.dst, src, STREAM_BYTES);
	assert_true(b.watch_at >= 0);
	if (b.watch_at >= (int64_t)STREAM_BYTES / 2)
		fail_msg("the PONG came back only after %lld of %u bytes", (long long)b.watch_at,
			 STREAM_BYTES);
	peer_conn_stats(a.conn, &st);
	assert_true(st.rtt_ms >= 0);
	assert_true(st.bytes_out > STREAM_BYTES);
	assert_int_equal(st.queued, 0);

	/* "Queued enough" is the config's mark on a LAN, at most 128 KiB on a WAN. */
	assert_true(peer_conn_wants_data(a.conn));
	peer_conn_set_link(a.conn, PEER_LINK_WAN);
	assert_int_equal(peer_conn_send_chunk(a.conn, 0, src, STREAM_CHUNK,
					      STREAM_CHUNK - 3 * WIRE_CHUNK_DATA_MAX),
			 0);
	assert_true(peer_conn_queued(a.conn) >= PEER_WAN_LOWAT);
	assert_false(peer_conn_wants_data(a.conn));
	peer_conn_set_link(a.conn, PEER_LINK_LAN);
	assert_true(peer_conn_wants_data(a.conn));
	run_until(a_drained, &a);

	/* 16 MiB B -> A, paced by on_writable: the queue stays bounded. */
	memset(b.dst, 0, STREAM_BYTES);
	a.dst = b.dst;
	b.dst = NULL;
	b.src = src;
	pace(&b, b.conn);
	run_until(stream_done, &a);
	assert_memory_equal(a.dst, src, STREAM_BYTES);
	assert_true(b.n_writable > 0);
	assert_true(b.max_queued < 2 * 256 * 1024 + WIRE_CHUNK_DATA_LEN_MAX);
	peer_conn_stats(a.conn, &st);
	assert_true(st.bytes_in > STREAM_BYTES);
	assert_true(st.msgs_in >= STREAM_BYTES / WIRE_CHUNK_DATA_MAX);

	/* Closing one side: both see the connection go, for their own reason. */
	peer_conn_close(a.conn, FERRY_ECANCELED);
	run_until(both_down, pair);
	assert_int_equal(a.downs, 1);
	assert_int_equal(a.last_down, FERRY_ECANCELED);
	assert_int_equal(b.downs, 1);
	assert_int_equal(b.last_down, FERRY_EIO);
	free(a.dst);
	free(src);
	node_free(&b);
	node_free(&a);
	assert_loop_clean();
}

static bool raw_eof(void *arg)
{
	return raw_poll(arg);
}

static bool dial_failed(void *arg)
{
	return ((struct tnode *)arg)->dial_errors > 0;
}

/* Without the network key nobody gets a byte out of a responder. */
static void test_wrong_key(void **state)
{
	struct tnode a, c;
	struct peer_net_config ca, cc;
	uint8_t wrongkey[SESSION_KEY_LEN], msg1[SESSION_HS_MSG_MAX];
	struct nodekey k;
	struct session_hs *hs;
	struct raw r = {0};
	size_t len;

	(void)state;
	node_init(&a, "a");
	ca = node_config(&a, true);
	node_start(&a, &ca);

	/* A genuine message 1 made with the wrong network key. */
	memset(wrongkey, 0x43, sizeof(wrongkey));
	nodekey_generate(&k);
	hs = session_hs_new(SESSION_INITIATOR, &k, wrongkey, (uint64_t)time(NULL));
	assert_int_equal(session_hs_write(hs, NULL, 0, msg1, sizeof(msg1), &len), 0);
	session_hs_free(hs);
	r.fd = raw_connect(peer_net_port(a.net));
	raw_send(r.fd, msg1, len);
	run_until(raw_eof, &r);
	assert_int_equal(r.len, 0);
	close(r.fd);

	/* Garbage of the same size. */
	memset(&r, 0, sizeof(r));
	memset(msg1 + 2, 0x5a, len - 2);
	r.fd = raw_connect(peer_net_port(a.net));
	raw_send(r.fd, msg1, len);
	run_until(raw_eof, &r);
	assert_int_equal(r.len, 0);
	close(r.fd);
	assert_int_equal(net_stats(&a).hs_failed, 2);

	/* A peer_net with another network key cannot connect either. */
	node_init(&c, "c");
	cc = node_config(&c, false);
	cc.netkey = wrongkey;
	node_start(&c, &cc);
	assert_int_equal(peer_net_dial(c.net, "127.0.0.1", peer_net_port(a.net), NULL, 0), 0);
	run_until(dial_failed, &c);
	assert_int_equal(c.ups, 0);
	assert_int_equal(a.ups, 0);
	assert_int_equal(net_stats(&a).hs_failed, 3);
	node_free(&c);
	node_free(&a);
	assert_loop_clean();
}

static bool unauth_is(void *arg)
{
	struct tnode *n = arg;

	return net_stats(n).unauth == (unsigned)n->watch_samples;
}

/* A client that connects and says nothing is closed at the deadline, silently. */
static void test_deadline(void **state)
{
	struct tnode a;
	struct peer_net_config ca;
	struct raw r = {0};

	(void)state;
	node_init(&a, "a");
	ca = node_config(&a, true);
	ca.hs_timeout_ms = 300;
	node_start(&a, &ca);
	r.fd = raw_connect(peer_net_port(a.net));
	a.watch_samples = 1;
	run_until(unauth_is, &a);
	/* Accepted and waiting: still open. */
	assert_false(raw_poll(&r));
	run_until(raw_eof, &r);
	assert_int_equal(r.len, 0);
	assert_int_equal(net_stats(&a).unauth, 0);
	assert_int_equal(net_stats(&a).hs_failed, 1);
	close(r.fd);
	node_free(&a);
	assert_loop_clean();
}

static bool accepted_is(void *arg)
{
	struct tnode *n = arg;

	return net_stats(n).accepted == n->watch_samples;
}

static void test_unauth_cap(void **state)
{
	struct tnode a;
	struct peer_net_config ca;
	struct raw r[6];

	(void)state;
	memset(r, 0, sizeof(r));
	node_init(&a, "a");
	ca = node_config(&a, true);
	ca.unauth_max = 4;
	node_start(&a, &ca);
	for (int i = 0; i < 4; i++)
		r[i].fd = raw_connect(peer_net_port(a.net));
	a.watch_samples = 4;
	run_until(unauth_is, &a);

	/* The fifth is closed as soon as it is accepted; the first four stay open. */
	r[4].fd = raw_connect(peer_net_port(a.net));
	run_until(raw_eof, &r[4]);
	assert_int_equal(r[4].len, 0);
	assert_int_equal(net_stats(&a).refused_cap, 1);
	for (int i = 0; i < 4; i++)
		assert_false(raw_poll(&r[i]));

	/* One leaves: there is room again. */
	close(r[0].fd);
	a.watch_samples = 3;
	run_until(unauth_is, &a);
	r[5].fd = raw_connect(peer_net_port(a.net));
	a.watch_samples = 6;
	run_until(accepted_is, &a);
	a.watch_samples = 4;
	run_until(unauth_is, &a);
	assert_false(raw_poll(&r[5]));
	assert_int_equal(net_stats(&a).refused_cap, 1);
	for (int i = 1; i < 6; i++)
		close(r[i].fd);
	node_free(&a);
	assert_loop_clean();
}

/*
 * A raw initiator that completes the handshake with the given hello, so the
 * test controls what a "peer" says afterwards (or that it says nothing).
 */
static struct session_tx *raw_handshake(struct raw *r, uint16_t port, const struct nodekey *k,
					const struct wire_hello *hello, struct wire_hello *theirs)
{
	uint8_t out[SESSION_HS_MSG_MAX], payload[SESSION_HELLO_MAX], *hb;
	struct session_hs *hs = session_hs_new(SESSION_INITIATOR, k, netkey, (uint64_t)time(NULL));
	struct wire_msg m = {.type = WIRE_HELLO, .hello = *hello}, d;
	struct session_keys keys;
	struct session_tx *tx;
	size_t len, used, plen, hlen;
	int rc;

	memset(r, 0, sizeof(*r));
	r->fd = raw_connect(port);
	assert_int_equal(session_hs_write(hs, NULL, 0, out, sizeof(out), &len), 0);
	raw_send(r->fd, out, len);
	for (;;) {
		run_until(raw_has_data, r);
		rc = session_hs_read(hs, r->buf, r->len, &used, payload, sizeof(payload), &plen);
		if (rc != FERRY_EAGAIN)
			break;
		assert_false(r->eof);
	}
	assert_int_equal(rc, 0);
	memmove(r->buf, r->buf + used, r->len - used);
	r->len -= used;
	assert_int_equal(wire_decode(payload, plen, &d), 0);
	assert_int_equal(d.type, WIRE_HELLO);
	*theirs = d.hello;
	assert_int_equal(wire_encode(&m, &hb, &hlen), 0);
	assert_int_equal(session_hs_write(hs, hb, hlen, out, sizeof(out), &len), 0);
	free(hb);
	raw_send(r->fd, out, len);
	assert_int_equal(session_hs_split(hs, &keys), 0);
	tx = session_tx_new(keys.tx);
	session_keys_wipe(&keys);
	session_hs_free(hs);
	return tx;
}

/* A node that speaks only versions this one does not is refused, with a clear reason. */
static void test_version_mismatch(void **state)
{
	struct tnode a;
	struct peer_net_config ca;
	struct wire_hello mine = {.version_min = WIRE_VERSION + 2, .version_max = WIRE_VERSION + 3},
			  theirs;
	struct nodekey k;
	struct raw r;

	(void)state;
	node_init(&a, "a");
	ca = node_config(&a, true);
	node_start(&a, &ca);
	nodekey_generate(&k);
	session_tx_free(raw_handshake(&r, peer_net_port(a.net), &k, &mine, &theirs));
	assert_int_equal(theirs.version_min, WIRE_VERSION_MIN);
	assert_int_equal(theirs.version_max, WIRE_VERSION);
	assert_string_equal(theirs.site, "a");
	run_until(raw_eof, &r);
	assert_int_equal(a.ups, 0);
	assert_int_equal(net_stats(&a).hs_failed, 1);
	close(r.fd);
	node_free(&a);
	assert_loop_clean();
}

struct raw_listener {
	int fd;
	int conn;
};

static bool raw_accepted(void *arg)
{
	struct raw_listener *l = arg;

	l->conn = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK);
	return l->conn >= 0;
}

/* Read one handshake message from r into payload; the rest stays in r. */
static void raw_hs_read(struct raw *r, struct session_hs *hs, uint8_t *payload, size_t *plen)
{
	size_t used;
	int rc;

	for (;;) {
		raw_poll(r);
		rc = session_hs_read(hs, r->buf, r->len, &used, payload, SESSION_HELLO_MAX, plen);
		if (rc != FERRY_EAGAIN)
			break;
		assert_false(r->eof);
		uv_run(loop, UV_RUN_NOWAIT);
		usleep(1000);
	}
	assert_int_equal(rc, 0);
	memmove(r->buf, r->buf + used, r->len - used);
	r->len -= used;
}

/* Dialing a node that speaks other versions: message 3 still goes out, then the close. */
static void test_version_mismatch_dialer(void **state)
{
	struct tnode a;
	struct peer_net_config ca;
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t salen = sizeof(sa);
	struct raw_listener l;
	struct raw r = {0};
	struct nodekey k;
	struct session_hs *hs;
	struct wire_msg m = {.type = WIRE_HELLO}, d;
	uint8_t out[SESSION_HS_MSG_MAX], payload[SESSION_HELLO_MAX], *hb;
	size_t len, plen, hlen;

	(void)state;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	l.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	assert_int_equal(bind(l.fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(l.fd, 4), 0);
	assert_int_equal(getsockname(l.fd, (struct sockaddr *)&sa, &salen), 0);
	node_init(&a, "a");
	ca = node_config(&a, false);
	node_start(&a, &ca);
	assert_int_equal(peer_net_dial(a.net, "127.0.0.1", ntohs(sa.sin_port), NULL, 0), 0);
	run_until(raw_accepted, &l);
	r.fd = l.conn;

	nodekey_generate(&k);
	hs = session_hs_new(SESSION_RESPONDER, &k, netkey, (uint64_t)time(NULL));
	raw_hs_read(&r, hs, payload, &plen);
	m.hello.version_min = WIRE_VERSION + 2;
	m.hello.version_max = WIRE_VERSION + 3;
	assert_int_equal(wire_encode(&m, &hb, &hlen), 0);
	assert_int_equal(session_hs_write(hs, hb, hlen, out, sizeof(out), &len), 0);
	free(hb);
	raw_send(r.fd, out, len);
	raw_hs_read(&r, hs, payload, &plen);
	assert_int_equal(wire_decode(payload, plen, &d), 0);
	assert_int_equal(d.hello.version_max, WIRE_VERSION);
	session_hs_free(hs);
	run_until(raw_eof, &r);
	assert_int_equal(r.len, 0);
	run_until(dial_failed, &a);
	assert_int_equal(a.last_dial_error, FERRY_EVERSION);
	assert_int_equal(a.ups, 0);
	close(r.fd);
	close(l.fd);
	node_free(&a);
	assert_loop_clean();
}

static bool down_once(void *arg)
{
	return ((struct tnode *)arg)->downs > 0;
}

/* A peer that completes the handshake, then stays silent, is dropped as dead. */
static void test_dead_peer(void **state)
{
	struct tnode a;
	struct peer_net_config ca;
	struct wire_hello mine = {.version_min = 1, .version_max = 1}, theirs;
	struct nodekey k;
	struct raw r;

	(void)state;
	node_init(&a, "a");
	ca = node_config(&a, true);
	ca.ping_interval_ms = 50;
	ca.dead_timeout_ms = 300;
	node_start(&a, &ca);
	nodekey_generate(&k);
	session_tx_free(raw_handshake(&r, peer_net_port(a.net), &k, &mine, &theirs));
	run_until(is_up, &a);
	assert_memory_equal(a.up_id, k.pk, NODEKEY_LEN);
	run_until(down_once, &a);
	assert_int_equal(a.last_down, FERRY_ETIMEDOUT);
	/* It did ping the silent peer meanwhile. */
	run_until(raw_eof, &r);
	assert_true(r.len > 0);
	close(r.fd);
	node_free(&a);
	assert_loop_clean();
}

/* Send all of p[0..n) on a non-blocking socket, running the loop while it is full. */
static void raw_send_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL);

		if (k < 0) {
			assert_true(errno == EAGAIN || errno == EINTR);
			uv_run(loop, UV_RUN_NOWAIT);
			continue;
		}
		p += k;
		n -= (size_t)k;
	}
}

/*
 * Send nframes full frames of one message whose encoding starts with
 * [type, ...] (garbage after that), with the more bit on all but, if last,
 * the final one.
 */
static void raw_send_big(int fd, struct session_tx *tx, uint8_t type, int nframes, bool last)
{
	uint8_t *f = xmalloc(SESSION_FRAME_MAX + SESSION_FRAME_OVERHEAD);

	for (int i = 0; i < nframes; i++) {
		memset(f + SESSION_FRAME_HDR, 0x42, SESSION_FRAME_MAX);
		if (i == 0) {
			f[SESSION_FRAME_HDR] = 0x92;
			f[SESSION_FRAME_HDR + 1] = type;
		}
		assert_int_equal(session_seal_frame_inplace(tx, f, SESSION_FRAME_MAX,
							    !(last && i == nframes - 1)),
				 0);
		raw_send_all(fd, f, SESSION_FRAME_MAX + SESSION_FRAME_OVERHEAD);
	}
	free(f);
}

struct downs_at {
	struct tnode *n;
	int downs;
};

static bool downs_reach(void *arg)
{
	struct downs_at *d = arg;

	return d->n->downs >= d->downs;
}

static bool ups_reach(void *arg)
{
	struct downs_at *d = arg;

	return d->n->ups >= d->downs;
}

/*
 * Only a MANIFEST may be larger than the small cap, and only two at once in
 * the node: peers with fresh identities cannot make it hold 16 MiB each.
 */
static void test_big_message_budget(void **state)
{
	struct tnode a;
	struct peer_net_config ca;
	struct wire_hello mine = {.version_min = 1, .version_max = 1}, theirs;
	struct nodekey k;
	struct raw r[5];
	struct session_tx *tx[5];
	struct downs_at d = {.n = &a};
	int busy = -1;

	(void)state;
	node_init(&a, "a");
	ca = node_config(&a, true);
	node_start(&a, &ca);
	for (int i = 0; i < 5; i++) {
		nodekey_generate(&k);
		tx[i] = raw_handshake(&r[i], peer_net_port(a.net), &k, &mine, &theirs);
		d.downs = i + 1;
		run_until(ups_reach, &d);
	}
	/* A CHUNK_DATA past 256 KiB is refused at once. */
	raw_send_big(r[0].fd, tx[0], WIRE_CHUNK_DATA, 5, false);
	d.downs = 1;
	run_until(downs_reach, &d);
	assert_int_equal(a.last_down, FERRY_ETOOBIG);
	/* Three large MANIFESTs at once: exactly one is turned away. */
	for (int i = 1; i <= 3; i++)
		raw_send_big(r[i].fd, tx[i], WIRE_MANIFEST, 5, false);
	d.downs = 2;
	run_until(downs_reach, &d);
	assert_int_equal(a.last_down, FERRY_EBUSY);
	for (int i = 1; i <= 3; i++) {
		raw_poll(&r[i]);
		if (r[i].eof)
			busy = i;
	}
	assert_true(busy > 0);
	/* One of the two others finishes (a malformed MANIFEST): its slot is free again. */
	raw_send_big(r[busy == 1 ? 2 : 1].fd, tx[busy == 1 ? 2 : 1], WIRE_MANIFEST, 1, true);
	d.downs = 3;
	run_until(downs_reach, &d);
	assert_int_equal(a.last_down, FERRY_EPROTO);
	raw_send_big(r[4].fd, tx[4], WIRE_MANIFEST, 5, true);
	d.downs = 4;
	run_until(downs_reach, &d);
	assert_int_equal(a.last_down, FERRY_EPROTO);
	for (int i = 0; i < 5; i++) {
		session_tx_free(tx[i]);
		close(r[i].fd);
	}
	node_free(&a);
	assert_loop_clean();
}

static bool skipped_one(void *arg)
{
	struct tnode *n = arg;
	struct peer_conn_stats st;

	peer_conn_stats(n->conn, &st);
	return st.unknown_in > 0;
}

/* An unknown message type is skipped; a malformed known one drops the connection. */
static void test_unknown_and_malformed(void **state)
{
	struct tnode a;
	struct peer_net_config ca;
	struct wire_hello mine = {.version_min = 1, .version_max = 1}, theirs;
	struct nodekey k;
	struct session_tx *tx;
	struct peer_conn_stats st;
	uint8_t sealed[256];
	static const uint8_t unknown[] = {0x92, 0x63, 0x01};	     /* [99, 1] */
	static const uint8_t bad_cancel[] = {0x92, 0x0a, 0xa1, 'x'}; /* [10, "x"] */
	size_t len;
	struct raw r;

	(void)state;
	node_init(&a, "a");
	ca = node_config(&a, true);
	node_start(&a, &ca);
	nodekey_generate(&k);
	tx = raw_handshake(&r, peer_net_port(a.net), &k, &mine, &theirs);
	run_until(is_up, &a);
	assert_int_equal(session_seal(tx, unknown, sizeof(unknown), sealed, sizeof(sealed), &len),
			 0);
	raw_send(r.fd, sealed, len);
	run_until(skipped_one, &a);
	peer_conn_stats(a.conn, &st);
	assert_int_equal(st.unknown_in, 1);
	assert_int_equal(a.downs, 0);
	assert_int_equal(
	    session_seal(tx, bad_cancel, sizeof(bad_cancel), sealed, sizeof(sealed), &len), 0);
	raw_send(r.fd, sealed, len);
	run_until(down_once, &a);
	assert_int_equal(a.last_down, FERRY_EPROTO);
	session_tx_free(tx);
	close(r.fd);
	node_free(&a);
	assert_loop_clean();
}

struct target_seen {
	enum peer_target_state state;
	int last_error;
	int n;
};

static void target_cb(void *arg, const struct peer_target_info *info)
{
	struct target_seen *s = arg;

	s->state = info->state;
	s->last_error = info->last_error;
	s->n++;
}

static struct target_seen target_of(struct tnode *n)
{
	struct target_seen s = {0};

	peer_net_targets(n->net, target_cb, &s);
	return s;
}

static bool is_self(void *arg)
{
	struct target_seen s = target_of(arg);

	return s.n == 1 && s.state == PEER_TARGET_SELF;
}

static bool settled(void *arg)
{
	struct tnode **p = arg;
	struct peer_conn *ab, *ba;

	ab = peer_net_conn_by_id(p[0]->net, p[1]->key.pk);
	ba = peer_net_conn_by_id(p[1]->net, p[0]->key.pk);
	return ab != NULL && ba != NULL && net_stats(p[0]).up == 1 && net_stats(p[1]).up == 1 &&
	       net_stats(p[0]).dialing == 0 && net_stats(p[1]).dialing == 0 &&
	       net_stats(p[0]).unauth == 0 && net_stats(p[1]).unauth == 0 &&
	       net_stats(p[0]).duplicates + net_stats(p[1]).duplicates > 0 &&
	       peer_conn_initiated(ab) != peer_conn_initiated(ba);
}

static bool lanes_3(void *arg)
{
	struct tnode **p = arg;

	return p[0]->lane_ups == 2 && p[1]->lane_ups == 2;
}

static bool a_lane_down(void *arg)
{
	return ((struct tnode *)arg)->lane_downs > 0;
}

/*
 * Lanes: B dials A with two lanes beside the connection; A sends a chunk
 * per lane in turn and B gets every byte in order, each through its one
 * conn. A lane B no longer wants goes at both ends, the conn stays, and
 * lanes go silently with their conn.
 */
static void test_lanes(void **state)
{
	struct tnode a, b, *pair[2] = {&a, &b};
	struct peer_conn_stats st;
	uint8_t *src = stream_src(11);
	struct wire_msg m = {.type = WIRE_CHUNK_DATA};

	(void)state;
	pair_connect(&a, "a", &b, "b", 0);
	assert_int_equal(peer_conn_lanes_up(a.conn), 1);
	/* The accepting end does not dial lanes. */
	peer_conn_set_lanes(a.conn, 3);
	run_for(100);
	assert_int_equal(a.lane_ups + b.lane_ups, 0);

	peer_conn_set_lanes(b.conn, 3);
	run_until(lanes_3, pair);
	assert_int_equal(peer_conn_lanes_up(a.conn), 7);
	assert_int_equal(peer_conn_lanes_up(b.conn), 7);
	peer_conn_stats(b.conn, &st);
	assert_int_equal(st.lanes, 3);
	assert_int_equal(a.ups, 1);
	assert_int_equal(b.ups, 1);

	b.dst = xcalloc(1, STREAM_BYTES);
	for (uint32_t req = 0; req < STREAM_BYTES / STREAM_CHUNK; req++) {
		m.chunk_data.req = req;
		m.chunk_data.total = STREAM_CHUNK;
		for (size_t off = 0; off < STREAM_CHUNK; off += WIRE_CHUNK_DATA_MAX) {
			m.chunk_data.offset = (uint32_t)off;
			m.chunk_data.data = src + (size_t)req * STREAM_CHUNK + off;
			m.chunk_data.len = MIN((size_t)WIRE_CHUNK_DATA_MAX, STREAM_CHUNK - off);
			assert_int_equal(peer_conn_lane_send(a.conn, req % 3, &m), 0);
		}
	}
	assert_int_equal(peer_conn_lane_send(a.conn, 3, &m), FERRY_ENOENT);
	assert_false(peer_conn_lane_wants_data(a.conn, 1));
	run_until(stream_done, &b);
	assert_memory_equal(b.dst, src, STREAM_BYTES);
	assert_false(b.order_broken);
	assert_false(b.data_elsewhere);
	assert_true(peer_conn_lane_wants_data(a.conn, 1));

	/* B keeps one lane: A hears that lane 2 went, the conn stays up. */
	peer_conn_set_lanes(b.conn, 2);
	run_until(a_lane_down, &a);
	assert_int_equal(a.last_lane_down, 2);
	assert_int_equal(b.lane_downs, 0);
	assert_int_equal(peer_conn_lanes_up(a.conn), 3);
	assert_int_equal(peer_conn_lanes_up(b.conn), 3);
	assert_int_equal(a.downs + b.downs, 0);

	/* The conn goes: its lanes go with it, with no on_lane. */
	peer_conn_close(b.conn, FERRY_ECANCELED);
	run_until(both_down, pair);
	run_for(100);
	assert_int_equal(a.lane_downs, 1);
	assert_int_equal(b.lane_downs, 0);
	free(b.dst);
	free(src);
	node_free(&b);
	node_free(&a);
	assert_loop_clean();
}

/* Two nodes dialing each other keep one connection: the one the lower id dialed. */
static void test_duplicate(void **state)
{
	struct tnode a, b, *pair[2] = {&a, &b};
	struct peer_net_config ca, cb;
	struct peer_conn *ab, *ba;
	struct tnode *low;
	struct target_seen ta, tb;

	(void)state;
	node_init(&a, "a");
	node_init(&b, "b");
	ca = node_config(&a, true);
	cb = node_config(&b, true);
	node_start(&a, &ca);
	node_start(&b, &cb);
	assert_int_equal(
	    peer_net_dial(a.net, "127.0.0.1", peer_net_port(b.net), NULL, PEER_DIAL_PERSISTENT), 0);
	assert_int_equal(
	    peer_net_dial(b.net, "127.0.0.1", peer_net_port(a.net), NULL, PEER_DIAL_PERSISTENT), 0);
	run_until(settled, pair);
	/* Let redials and pings happen: nothing changes any more. */
	run_for(300);
	assert_true(settled(pair));
	ab = peer_net_conn_by_id(a.net, b.key.pk);
	ba = peer_net_conn_by_id(b.net, a.key.pk);
	low = memcmp(a.key.pk, b.key.pk, NODEKEY_LEN) < 0 ? &a : &b;
	assert_int_equal(peer_conn_initiated(ab), low == &a);
	assert_int_equal(peer_conn_initiated(ba), low == &b);
	assert_int_equal(a.ups - a.downs, 1);
	assert_int_equal(b.ups - b.downs, 1);
	ta = target_of(&a);
	tb = target_of(&b);
	assert_int_equal(low == &a ? ta.state : tb.state, PEER_TARGET_UP);
	assert_int_equal(low == &a ? tb.state : ta.state, PEER_TARGET_COVERED);

	/* A node that dials itself gives up on that address. */
	assert_int_equal(peer_net_undial(a.net, "127.0.0.1", peer_net_port(b.net)), 0);
	assert_int_equal(peer_net_undial(a.net, "127.0.0.1", peer_net_port(b.net)), FERRY_ENOENT);
	assert_int_equal(
	    peer_net_dial(a.net, "127.0.0.1", peer_net_port(a.net), NULL, PEER_DIAL_PERSISTENT), 0);
	run_until(is_self, &a);
	run_for(200);
	assert_true(is_self(&a));
	assert_int_equal(a.ups - a.downs, 1);
	node_free(&a);
	node_free(&b);
	assert_loop_clean();
}

static bool refused_twice(void *arg)
{
	struct tnode *n = arg;

	return n->dial_errors >= 2 && target_of(n).state == PEER_TARGET_BACKOFF;
}

static bool up_twice(void *arg)
{
	struct tnode *n = arg;

	return n->ups == 2 && n->conn != NULL;
}

/* A persistent peer is redialed with backoff until its listener is back. */
static void test_reconnect(void **state)
{
	struct tnode a, b;
	struct peer_net_config ca, cb;
	uint16_t port;
	struct target_seen t;

	(void)state;
	node_init(&a, "a");
	node_init(&b, "b");
	ca = node_config(&a, true);
	cb = node_config(&b, false);
	node_start(&a, &ca);
	node_start(&b, &cb);
	port = peer_net_port(a.net);
	assert_int_equal(peer_net_dial(b.net, "127.0.0.1", port, NULL, PEER_DIAL_PERSISTENT), 0);
	run_until(is_up, &b);

	/* The listener goes away: B sees the connection drop, then refused dials. */
	node_free(&a);
	run_until(down_once, &b);
	assert_int_equal(b.last_down, FERRY_EIO);
	run_until(refused_twice, &b);
	assert_int_equal(b.last_dial_error, FERRY_ECONNREFUSED);

	/* It comes back on the same port with the same key: B reconnects by itself. */
	ca.listen_port = port;
	a.conn = NULL;
	node_start(&a, &ca);
	run_until(up_twice, &b);
	assert_memory_equal(b.up_id, a.key.pk, NODEKEY_LEN);
	t = target_of(&b);
	assert_int_equal(t.state, PEER_TARGET_UP);
	assert_int_equal(t.last_error, 0);
	node_free(&b);
	node_free(&a);
	assert_loop_clean();
}

/* Calls peer_conn_revive on a's conn every 100 ms while the loop runs. */
static void revive_cb(uv_timer_t *t)
{
	struct tnode *a = t->data;

	if (a->conn != NULL)
		peer_conn_revive(a->conn);
}

static bool got_manifest_req(void *arg)
{
	return ((struct tnode *)arg)->n_manifest_req > 0;
}

static bool revived_and_up(void *arg)
{
	struct tnode **p = arg;

	return p[0]->ups == 2 && p[0]->conn != NULL && p[1]->ups == 2 && p[1]->conn != NULL;
}

/*
 * A conn whose peer answers is left alone; one whose peer has gone silent
 * (here: b stops reading, so a's ping gets no answer) is replaced by a fresh
 * connection, at both ends, and the fresh one carries messages. A frame that
 * b sent after a's ping does not count as an answer: a waits for quiet.
 */
static void test_revive(void **state)
{
	struct tnode a, b, *pair[2] = {&a, &b};
	struct peer_net_config ca, cb;
	struct wire_msg m = {.type = WIRE_MANIFEST_REQ};
	struct peer_conn *old;
	uv_timer_t timer;

	(void)state;
	node_init(&a, "a");
	node_init(&b, "b");
	ca = node_config(&a, false);
	cb = node_config(&b, true);
	node_start(&a, &ca);
	node_start(&b, &cb);
	assert_int_equal(
	    peer_net_dial(a.net, "127.0.0.1", peer_net_port(b.net), NULL, PEER_DIAL_PERSISTENT), 0);
	run_until(both_up, pair);
	uv_timer_init(loop, &timer);
	timer.data = &a;
	uv_timer_start(&timer, revive_cb, 100, 100);

	/* b answers the pings: nothing happens. */
	run_for(PEER_PROBE_AFTER_MS + 1000);
	assert_int_equal(net_stats(&a).probes, 0);
	assert_int_equal(a.ups, 1);
	assert_int_equal(a.downs, 0);

	/* b stops reading, sends one more frame after a's ping, then falls silent. */
	old = b.conn;
	peer_conn_set_reading(b.conn, false);
	run_for(300);
	m.manifest_req.version = 3;
	strcpy(m.manifest_req.name, "late");
	assert_int_equal(peer_conn_send(b.conn, &m), 0);
	run_until(got_manifest_req, &a);
	assert_int_equal(net_stats(&a).probes, 0);
	/* a probes, connects, and replaces the conn. */
	run_until(revived_and_up, pair);
	assert_int_equal(net_stats(&a).revived, 1);
	assert_int_equal(a.downs, 1);
	assert_int_equal(a.last_down, FERRY_ETIMEDOUT);
	/* b never read the reset of the old conn: the newer one from the same dialer won. */
	assert_int_equal(b.downs, 1);
	assert_int_equal(b.last_down, FERRY_EEXIST);
	assert_ptr_not_equal(b.conn, old);
	assert_int_equal(target_of(&a).state, PEER_TARGET_UP);
	m.manifest_req.version = 7;
	strcpy(m.manifest_req.name, "llm");
	assert_int_equal(peer_conn_send(a.conn, &m), 0);
	run_until(got_manifest_req, &b);
	assert_string_equal(b.got_req.name, "llm");

	uv_close((uv_handle_t *)&timer, NULL);
	node_free(&a);
	node_free(&b);
	assert_loop_clean();
}

static void test_addr(void **state)
{
	char host[64];
	uint16_t port;

	(void)state;
	assert_int_equal(peer_addr_parse("hq.example.org:7440", host, sizeof(host), &port), 0);
	assert_string_equal(host, "hq.example.org");
	assert_int_equal(port, 7440);
	assert_int_equal(peer_addr_parse("[fe80::1]:1", host, sizeof(host), &port), 0);
	assert_string_equal(host, "fe80::1");
	assert_int_equal(port, 1);
	assert_int_equal(peer_addr_parse("fe80::1:7440", host, sizeof(host), &port), FERRY_EINVAL);
	assert_int_equal(peer_addr_parse("host", host, sizeof(host), &port), FERRY_EINVAL);
	assert_int_equal(peer_addr_parse("host:0", host, sizeof(host), &port), FERRY_EINVAL);
	assert_int_equal(peer_addr_parse("host:65536", host, sizeof(host), &port), FERRY_EINVAL);
	assert_int_equal(peer_addr_parse("host:12x", host, sizeof(host), &port), FERRY_EINVAL);
	assert_int_equal(peer_addr_parse(":1", host, sizeof(host), &port), FERRY_EINVAL);
	assert_int_equal(peer_addr_parse("[::1:1", host, sizeof(host), &port), FERRY_EINVAL);
	assert_int_equal(peer_addr_parse("averyveryverylonghostname:1", host, 8, &port),
			 FERRY_EINVAL);
	assert_string_equal(peer_addr_format(host, sizeof(host), "::1", 80), "[::1]:80");
	assert_string_equal(peer_addr_format(host, sizeof(host), "10.0.0.1", 80), "10.0.0.1:80");
}

/* Bad configurations are refused with nothing left behind. */
static void test_config_errors(void **state)
{
	struct tnode a;
	struct peer_net_config ca;
	struct peer_net *net;

	(void)state;
	node_init(&a, "a");
	ca = node_config(&a, true);
	ca.listen_host = "localhost";
	assert_int_equal(peer_net_new(loop, &ca, &net), FERRY_EINVAL);
	assert_null(net);
	ca = node_config(&a, true);
	ca.cb.on_message = NULL;
	assert_int_equal(peer_net_new(loop, &ca, &net), FERRY_EINVAL);

	/* A port in use: the bind error names it. */
	ca = node_config(&a, true);
	node_start(&a, &ca);
	ca.listen_port = peer_net_port(a.net);
	assert_int_equal(peer_net_new(loop, &ca, &net), -EADDRINUSE);
	assert_null(net);
	assert_int_equal(peer_net_dial(a.net, "", 1, NULL, 0), FERRY_EINVAL);
	assert_int_equal(peer_net_dial(a.net, "h", 0, NULL, 0), FERRY_EINVAL);
	node_free(&a);
	assert_loop_clean();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_connect_and_stream, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_wrong_key, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_deadline, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unauth_cap, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_version_mismatch, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_version_mismatch_dialer, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dead_peer, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unknown_and_malformed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_big_message_budget, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_lanes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_duplicate, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reconnect, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_revive, setup, teardown),
	    cmocka_unit_test(test_addr),
	    cmocka_unit_test_setup_teardown(test_config_errors, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
