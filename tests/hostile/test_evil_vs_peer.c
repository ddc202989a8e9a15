/*
 * The hostile peer against the real transport: a peer_net listening on
 * 127.0.0.1 in this process, the evil peer (evil.h) dialing it from a
 * thread. Each test checks what an operator would: the transport closed the
 * offender with the right reason, answered nothing it must not answer, and
 * is still there for the next connection. Short deadlines and timeouts keep
 * the run quick; no assertion is about timing.
 */
#include "config.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "ferry/error.h"
#include "ferry/fcrypto.h"
#include "ferry/nodekey.h"
#include "ferry/peer.h"
#include "ferry/session.h"

#include "evil.h"

#define DOWNS_MAX 64

struct target {
	uv_loop_t loop;
	struct peer_net *net;
	struct nodekey key;
	uint8_t netkey[SESSION_KEY_LEN];
	int ups;
	int downs;
	int reasons[DOWNS_MAX];
	uint64_t unknown_in; /* unknown messages skipped on conns that went down */
};

struct run {
	struct evil_opts o;
	struct evil_result res;
	int rc;
	volatile int done;
};

static void on_up(struct peer_conn *c, const uint8_t id[NODEKEY_LEN],
		  const struct wire_hello *hello, void *ctx)
{
	struct target *t = ctx;

	(void)c;
	(void)id;
	(void)hello;
	t->ups++;
}

static void on_message(struct peer_conn *c, const struct wire_msg *m, void *ctx)
{
	(void)c;
	(void)m;
	(void)ctx;
}

static void on_down(struct peer_conn *c, int reason, void *ctx)
{
	struct target *t = ctx;
	struct peer_conn_stats st;

	peer_conn_stats(c, &st);
	t->unknown_in += st.unknown_in;
	if (t->downs < DOWNS_MAX)
		t->reasons[t->downs] = reason;
	t->downs++;
}

static void target_start(struct target *t, uint32_t hs_timeout_ms, uint32_t unauth_max,
			 uint32_t dead_timeout_ms)
{
	struct peer_net_config cfg = {0};

	memset(t, 0, sizeof(*t));
	assert_int_equal(uv_loop_init(&t->loop), 0);
	nodekey_generate(&t->key);
	fcrypto_random(t->netkey, sizeof(t->netkey));
	cfg.key = &t->key;
	cfg.netkey = t->netkey;
	cfg.listen_host = "127.0.0.1";
	cfg.hs_timeout_ms = hs_timeout_ms;
	cfg.unauth_max = unauth_max;
	cfg.dead_timeout_ms = dead_timeout_ms;
	cfg.ping_interval_ms = dead_timeout_ms / 3;
	cfg.cb.ctx = t;
	cfg.cb.on_up = on_up;
	cfg.cb.on_message = on_message;
	cfg.cb.on_down = on_down;
	assert_int_equal(peer_net_new(&t->loop, &cfg, &t->net), 0);
}

static void target_stop(struct target *t)
{
	peer_net_free(t->net);
	uv_run(&t->loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&t->loop), 0);
}

static void *run_thread(void *arg)
{
	struct run *r = arg;

	r->rc = evil_run(&r->o, &r->res);
	r->done = 1;
	return NULL;
}

static void on_poll(uv_timer_t *tm)
{
	struct run *r = tm->data;

	if (r->done)
		uv_stop(tm->loop);
}

static void on_poll_closed(uv_handle_t *h)
{
	(void)h;
}

/* Options for the evil peer in mode against t. */
static void evil_setup(struct target *t, struct run *r, enum evil_mode mode, unsigned repeat,
		       unsigned hold_ms)
{
	memset(r, 0, sizeof(*r));
	evil_opts_default(&r->o);
	r->o.mode = mode;
	r->o.host = "127.0.0.1";
	r->o.port = peer_net_port(t->net);
	nodekey_generate(&r->o.key);
	memcpy(r->o.netkey, t->netkey, SESSION_KEY_LEN);
	r->o.repeat = repeat;
	r->o.hold_ms = hold_ms;
	r->o.gap_ms = 50;
	r->o.out = stderr;
}

struct settle {
	struct target *t;
	int downs;
	unsigned ticks;
};

static void on_settle(uv_timer_t *tm)
{
	struct settle *s = tm->data;

	/* At most 5 s for the last closes to come through. */
	if (s->t->downs >= s->downs || ++s->ticks > 250)
		uv_stop(tm->loop);
}

/* Run the evil peer until it has finished, then until t has seen downs closes. */
static void evil_go(struct target *t, struct run *r, int downs)
{
	struct settle s = {.t = t, .downs = downs};
	pthread_t th;
	uv_timer_t tm;

	uv_timer_init(&t->loop, &tm);
	tm.data = r;
	uv_timer_start(&tm, on_poll, 20, 20);
	assert_int_equal(pthread_create(&th, NULL, run_thread, r), 0);
	uv_run(&t->loop, UV_RUN_DEFAULT);
	assert_int_equal(pthread_join(th, NULL), 0);
	tm.data = &s;
	uv_timer_start(&tm, on_settle, 20, 20);
	uv_run(&t->loop, UV_RUN_DEFAULT);
	uv_close((uv_handle_t *)&tm, on_poll_closed);
	uv_run(&t->loop, UV_RUN_NOWAIT);
	assert_int_equal(r->rc, 0);
}

static int count_reason(const struct target *t, int reason)
{
	int n = 0;

	for (int i = 0; i < t->downs && i < DOWNS_MAX; i++)
		n += t->reasons[i] == reason;
	return n;
}

/* A peer without the network key gets no byte back and never comes up. */
static void test_wrong_key(void **state)
{
	struct target t;
	struct run r;
	struct peer_net_stats st;

	(void)state;
	target_start(&t, 2000, 8, 3000);
	evil_setup(&t, &r, EVIL_WRONG_KEY, 3, 2000);
	evil_go(&t, &r, 0);
	assert_int_equal(r.res.up, 0);
	assert_int_equal(r.res.silent_close, 3);
	assert_int_equal(r.res.bytes_in, 0);
	assert_int_equal(t.ups, 0);
	peer_net_stats(t.net, &st);
	assert_int_equal(st.hs_failed, 3);
	assert_int_equal(st.unauth, 0);
	target_stop(&t);
}

/*
 * Frame headers over the frame cap (with and without MORE) and a message
 * growing past the message cap: each connection is closed, with the
 * framing's reason, and the next one is served again.
 */
static void test_oversize(void **state)
{
	struct target t;
	struct run r;

	(void)state;
	target_start(&t, 2000, 8, 10000);
	evil_setup(&t, &r, EVIL_OVERSIZE, EVIL_OVERSIZE_VARIANTS, 10000);
	evil_go(&t, &r, EVIL_OVERSIZE_VARIANTS);
	assert_int_equal(r.res.up, EVIL_OVERSIZE_VARIANTS);
	assert_int_equal(r.res.dropped, EVIL_OVERSIZE_VARIANTS);
	assert_int_equal(t.ups, EVIL_OVERSIZE_VARIANTS);
	assert_int_equal(t.downs, EVIL_OVERSIZE_VARIANTS);
	assert_int_equal(count_reason(&t, FERRY_EPROTO), 2);
	assert_int_equal(count_reason(&t, FERRY_ETOOBIG), 1);
	target_stop(&t);
}

/*
 * Connections that never finish message 1: those over the cap are closed as
 * soon as accepted, the rest at the handshake deadline; none is answered.
 */
static void test_half_open(void **state)
{
	struct target t;
	struct run r;
	struct peer_net_stats st;

	(void)state;
	target_start(&t, 1500, 4, 3000);
	evil_setup(&t, &r, EVIL_HALF_OPEN, 1, 4000);
	r.o.count = 24;
	evil_go(&t, &r, 0);
	assert_int_equal(r.res.conns, 24);
	assert_int_equal(r.res.connect_failed, 0);
	assert_int_equal(r.res.ho_answered, 0);
	assert_int_equal(r.res.ho_open, 0);
	assert_int_equal(r.res.ho_closed_fast + r.res.ho_closed_deadline, 24);
	peer_net_stats(t.net, &st);
	assert_int_equal(st.accepted, 24);
	assert_true(st.refused_cap >= 20 - 4);
	assert_int_equal(st.unauth, 0);
	assert_int_equal(t.ups, 0);
	target_stop(&t);
}

/*
 * A frame sent again no longer opens (its nonce has passed): closed for
 * authentication. A recorded message 1 is answered (it is genuine, and the
 * clock window is open), but the recorded message 3 that follows cannot
 * complete the handshake.
 */
static void test_replay(void **state)
{
	struct target t;
	struct run r;
	struct peer_net_stats st;

	(void)state;
	target_start(&t, 2000, 8, 10000);
	evil_setup(&t, &r, EVIL_REPLAY, 2, 3000);
	evil_go(&t, &r, 1);
	assert_int_equal(r.res.up, 1);
	assert_int_equal(r.res.pongs, 1);
	assert_int_equal(r.res.dropped, 1);
	assert_int_equal(r.res.replay_msg2, 1);
	assert_int_equal(r.res.hs_closed, 1);
	assert_int_equal(t.ups, 1);
	assert_int_equal(count_reason(&t, FERRY_EAUTH), 1);
	peer_net_stats(t.net, &st);
	assert_int_equal(st.hs_failed, 1);
	target_stop(&t);
}

/*
 * Messages of unknown types are skipped (the connection still answers a
 * PING); every malformed message closes the connection as a protocol error.
 */
static void test_garbage(void **state)
{
	struct target t;
	struct run r;

	(void)state;
	target_start(&t, 2000, 8, 10000);
	evil_setup(&t, &r, EVIL_GARBAGE_MSGS, EVIL_GARBAGE_VARIANTS, 5000);
	evil_go(&t, &r, EVIL_GARBAGE_VARIANTS);
	assert_int_equal(r.res.up, EVIL_GARBAGE_VARIANTS);
	assert_int_equal(r.res.pongs, EVIL_GARBAGE_VARIANTS);
	assert_int_equal(r.res.dropped, EVIL_GARBAGE_VARIANTS);
	assert_int_equal(t.downs, EVIL_GARBAGE_VARIANTS);
	assert_int_equal(count_reason(&t, FERRY_EPROTO), EVIL_GARBAGE_VARIANTS);
	assert_int_equal(t.unknown_in, 100u * EVIL_GARBAGE_VARIANTS);
	target_stop(&t);
}

/* One byte of message 1 at a time: the handshake deadline closes it. */
static void test_slow_handshake(void **state)
{
	struct target t;
	struct run r;
	struct peer_net_stats st;

	(void)state;
	target_start(&t, 1000, 8, 10000);
	evil_setup(&t, &r, EVIL_SLOW, 1, 10000);
	r.o.slow_hs = true;
	r.o.interval_ms = 200;
	evil_go(&t, &r, 0);
	assert_int_equal(r.res.up, 0);
	assert_int_equal(r.res.hs_closed, 1);
	assert_int_equal(r.res.bytes_in, 0);
	peer_net_stats(t.net, &st);
	assert_int_equal(st.hs_failed, 1);
	target_stop(&t);
}

/* A peer that answers no PING is closed as dead. */
static void test_silent(void **state)
{
	struct target t;
	struct run r;

	(void)state;
	target_start(&t, 2000, 8, 1500);
	evil_setup(&t, &r, EVIL_SILENT, 1, 10000);
	evil_go(&t, &r, 1);
	assert_int_equal(r.res.up, 1);
	assert_true(r.res.pings >= 1);
	assert_int_equal(r.res.pongs, 0);
	assert_int_equal(r.res.dropped, 1);
	assert_int_equal(count_reason(&t, FERRY_ETIMEDOUT), 1);
	target_stop(&t);
}

/*
 * The control: an honest peer answers PINGs and stays up past the dead
 * timeout, until it closes the connection itself.
 */
static void test_honest(void **state)
{
	struct target t;
	struct run r;

	(void)state;
	target_start(&t, 2000, 8, 1500);
	evil_setup(&t, &r, EVIL_HONEST, 1, 2500);
	evil_go(&t, &r, 1);
	assert_int_equal(r.res.up, 1);
	assert_true(r.res.pings >= 1);
	assert_int_equal(r.res.survived, 1);
	assert_int_equal(t.ups, 1);
	assert_int_equal(t.downs, 1);
	assert_int_equal(count_reason(&t, FERRY_EIO), 1);
	target_stop(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_honest),	   cmocka_unit_test(test_wrong_key),
	    cmocka_unit_test(test_oversize),	   cmocka_unit_test(test_half_open),
	    cmocka_unit_test(test_replay),	   cmocka_unit_test(test_garbage),
	    cmocka_unit_test(test_slow_handshake), cmocka_unit_test(test_silent),
	};

	if (fcrypto_init() != 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
