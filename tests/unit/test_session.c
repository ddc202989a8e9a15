/* Unit tests for the session layer (handshake, framing) and the node key file. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
/* Only to check Split's keys against the vector's Noise transport messages. */
#include <sodium.h>

#include "ferry/error.h"
#include "ferry/nodekey.h"
#include "ferry/session.h"
#include "ferry/util.h"

#define NOW 1767225600u

/* ---- helpers ---- */

/* The value of "name=" in a vector file under tests/vectors, hex-decoded. */
static uint8_t *vec_get(const char *file, const char *name, size_t *len)
{
	char *path = xasprintf("%s/tests/vectors/%s", TOP_SRCDIR, file), *text, *p, *key;
	size_t tlen, n;
	uint8_t *out;

	assert_int_equal(read_file(path, 1 << 20, &text, &tlen), 0);
	key = xasprintf("\n%s=", name);
	p = strstr(text, key);
	assert_non_null(p);
	p += strlen(key);
	n = strcspn(p, "\n");
	assert_int_equal(n % 2, 0);
	out = xmalloc(n / 2 + 1);
	p[n] = '\0';
	assert_int_equal(hex_decode(out, n / 2, p), 0);
	*len = n / 2;
	free(key);
	free(text);
	free(path);
	return out;
}

static void vec_key(const char *file, const char *name, uint8_t out[32])
{
	size_t len;
	uint8_t *v = vec_get(file, name, &len);

	assert_int_equal(len, 32);
	memcpy(out, v, 32);
	free(v);
}

static void key_from_sk(struct nodekey *k, const uint8_t sk[32])
{
	memcpy(k->sk, sk, 32);
	nodekey_derive_public(k);
}

struct pair {
	struct nodekey ki, kr;
	uint8_t netkey[32];
	struct session_hs *i, *r;
	uint8_t m1[SESSION_HS_MSG_MAX], m2[SESSION_HS_MSG_MAX], m3[SESSION_HS_MSG_MAX];
	size_t l1, l2, l3;
};

static const uint8_t hello_r[] = "responder hello";
static const uint8_t hello_i[] = "initiator hello, a little longer";

static void pair_new(struct pair *p, uint64_t now_i, uint64_t now_r)
{
	nodekey_generate(&p->ki);
	nodekey_generate(&p->kr);
	memset(p->netkey, 0x42, sizeof(p->netkey));
	p->i = session_hs_new(SESSION_INITIATOR, &p->ki, p->netkey, now_i);
	p->r = session_hs_new(SESSION_RESPONDER, &p->kr, p->netkey, now_r);
}

static void pair_free(struct pair *p)
{
	session_hs_free(p->i);
	session_hs_free(p->r);
}

/* Read one whole message; returns the result code. */
static int hs_read_all(struct session_hs *hs, const uint8_t *m, size_t len, uint8_t *pl,
		       size_t *plen)
{
	size_t used = 0;
	int rc = session_hs_read(hs, m, len, &used, pl, SESSION_HELLO_MAX, plen);

	if (rc == 0)
		assert_int_equal(used, len);
	return rc;
}

/* Run the handshake to its end, checking every step. */
static void pair_run(struct pair *p)
{
	uint8_t pl[SESSION_HELLO_MAX];
	size_t plen;

	assert_int_equal(session_hs_step(p->i), SESSION_HS_WRITE);
	assert_int_equal(session_hs_step(p->r), SESSION_HS_READ);
	assert_int_equal(session_hs_write(p->i, NULL, 0, p->m1, sizeof(p->m1), &p->l1), 0);
	assert_int_equal(p->l1, SESSION_HS_MSG1_LEN);
	assert_int_equal(hs_read_all(p->r, p->m1, p->l1, pl, &plen), 0);
	assert_int_equal(plen, 0);
	assert_null(session_hs_remote_static(p->r));

	assert_int_equal(
	    session_hs_write(p->r, hello_r, sizeof(hello_r), p->m2, sizeof(p->m2), &p->l2), 0);
	assert_int_equal(p->l2, SESSION_HS_MSG2_MIN + sizeof(hello_r));
	assert_int_equal(hs_read_all(p->i, p->m2, p->l2, pl, &plen), 0);
	assert_int_equal(plen, sizeof(hello_r));
	assert_memory_equal(pl, hello_r, plen);
	assert_memory_equal(session_hs_remote_static(p->i), p->kr.pk, 32);

	assert_int_equal(
	    session_hs_write(p->i, hello_i, sizeof(hello_i), p->m3, sizeof(p->m3), &p->l3), 0);
	assert_int_equal(p->l3, SESSION_HS_MSG3_MIN + sizeof(hello_i));
	assert_int_equal(hs_read_all(p->r, p->m3, p->l3, pl, &plen), 0);
	assert_int_equal(plen, sizeof(hello_i));
	assert_memory_equal(pl, hello_i, plen);
	assert_memory_equal(session_hs_remote_static(p->r), p->ki.pk, 32);
	assert_int_equal(session_hs_step(p->i), SESSION_HS_DONE);
	assert_int_equal(session_hs_step(p->r), SESSION_HS_DONE);
}

/* ---- handshake ---- */

/* The published XXpsk0 vector, through the raw (plain Noise) constructor. */
static void test_vector_noise(void **state)
{
	const char *f = "noise_xxpsk0_25519_chachapoly_blake2b.txt";
	uint8_t si[32], sr[32], ei[32], er[32], psk[32], nonce[12] = {0};
	uint8_t out[SESSION_HS_MSG_MAX], pl[SESSION_HELLO_MAX], ct[64];
	struct nodekey ki, kr;
	struct session_keys keys_i, keys_r;
	size_t prologue_len, len, used, plen;
	uint8_t *prologue;
	struct session_hs *hs[2];

	vec_key(f, "init_static", si);
	vec_key(f, "resp_static", sr);
	vec_key(f, "gen_init_ephemeral", ei);
	vec_key(f, "gen_resp_ephemeral", er);
	vec_key(f, "preshared_key", psk);
	prologue = vec_get(f, "prologue", &prologue_len);
	key_from_sk(&ki, si);
	key_from_sk(&kr, sr);
	hs[0] = session__hs_new_raw(SESSION_INITIATOR, &ki, psk, prologue, prologue_len, ei);
	hs[1] = session__hs_new_raw(SESSION_RESPONDER, &kr, psk, prologue, prologue_len, er);

	for (int m = 0; m < 3; m++) {
		char name[32];
		size_t plen_v, ctlen_v;
		uint8_t *payload, *expect;
		struct session_hs *w = hs[m % 2], *r = hs[1 - m % 2];

		snprintf(name, sizeof(name), "msg_%d_payload", m);
		payload = vec_get(f, name, &plen_v);
		snprintf(name, sizeof(name), "msg_%d_ciphertext", m);
		expect = vec_get(f, name, &ctlen_v);
		assert_int_equal(session_hs_write(w, payload, plen_v, out, sizeof(out), &len), 0);
		/* The wire form is the Noise message behind a 2-byte length. */
		assert_int_equal(len, ctlen_v + 2);
		assert_int_equal(out[0] << 8 | out[1], ctlen_v);
		assert_memory_equal(out + 2, expect, ctlen_v);
		assert_int_equal(session_hs_read(r, out, len, &used, pl, sizeof(pl), &plen), 0);
		assert_int_equal(used, len);
		assert_int_equal(plen, plen_v);
		assert_memory_equal(pl, payload, plen);
		free(payload);
		free(expect);
	}
	assert_memory_equal(session_hs_remote_static(hs[0]), kr.pk, 32);
	assert_memory_equal(session_hs_remote_static(hs[1]), ki.pk, 32);
	assert_int_equal(session_hs_split(hs[0], &keys_i), 0);
	assert_int_equal(session_hs_split(hs[1], &keys_r), 0);
	assert_memory_equal(keys_i.tx, keys_r.rx, 32);
	assert_memory_equal(keys_i.rx, keys_r.tx, 32);
	assert_memory_equal(keys_i.hash, keys_r.hash, SESSION_HASH_LEN);

	/* Split's keys: Noise transport messages with nonce 0 and no associated data. */
	for (int m = 3; m < 5; m++) {
		char name[32];
		size_t plen_v, ctlen_v;
		uint8_t *payload, *expect;
		unsigned long long clen;

		snprintf(name, sizeof(name), "msg_%d_payload", m);
		payload = vec_get(f, name, &plen_v);
		snprintf(name, sizeof(name), "msg_%d_ciphertext", m);
		expect = vec_get(f, name, &ctlen_v);
		crypto_aead_chacha20poly1305_ietf_encrypt(ct, &clen, payload, plen_v, NULL, 0, NULL,
							  nonce, m == 3 ? keys_i.tx : keys_r.tx);
		assert_int_equal(clen, ctlen_v);
		assert_memory_equal(ct, expect, ctlen_v);
		free(payload);
		free(expect);
	}
	session_hs_free(hs[0]);
	session_hs_free(hs[1]);
	free(prologue);
}

/*
 * ferry's own vector, made with an independent implementation (flynn/noise)
 * from docs/protocol.md: the prologue, message 1's payload, the wire length
 * prefix and the framing.
 */
static void test_vector_ferry(void **state)
{
	const char *f = "noise_ferry.txt";
	uint8_t si[32], sr[32], ei[32], er[32], netkey[32], p1[12] = {0, 1, 0, 0};
	uint8_t out[SESSION_HS_MSG_MAX], pl[SESSION_HELLO_MAX], frames[256];
	struct nodekey ki, kr;
	struct session_keys keys_i, keys_r;
	struct session_hs *hs[2], *real;
	struct session_rx *rx;
	struct session_tx *tx;
	const uint8_t *msg;
	size_t len, used, plen, wlen[3], hl;
	uint8_t *wire[3], *hash, *exp;

	vec_key(f, "init_static", si);
	vec_key(f, "resp_static", sr);
	vec_key(f, "init_ephemeral", ei);
	vec_key(f, "resp_ephemeral", er);
	vec_key(f, "netkey", netkey);
	for (int i = 0; i < 8; i++)
		p1[4 + i] = (uint8_t)((uint64_t)NOW >> (56 - 8 * i));
	key_from_sk(&ki, si);
	key_from_sk(&kr, sr);
	wire[0] = vec_get(f, "msg1", &wlen[0]);
	wire[1] = vec_get(f, "msg2", &wlen[1]);
	wire[2] = vec_get(f, "msg3", &wlen[2]);

	/* A real responder accepts the independent message 1, with no public-key work. */
	real = session_hs_new(SESSION_RESPONDER, &kr, netkey, NOW + 100);
	assert_int_equal(session_hs_read(real, wire[0], wlen[0], &used, pl, sizeof(pl), &plen), 0);
	assert_int_equal(session__hs_pk_ops(real), 0);
	session_hs_free(real);

	/* With the vector's ephemeral keys every byte matches. */
	hs[0] =
	    session__hs_new_raw(SESSION_INITIATOR, &ki, netkey, (const uint8_t *)SESSION_PROLOGUE,
				strlen(SESSION_PROLOGUE), ei);
	hs[1] =
	    session__hs_new_raw(SESSION_RESPONDER, &kr, netkey, (const uint8_t *)SESSION_PROLOGUE,
				strlen(SESSION_PROLOGUE), er);
	for (int m = 0; m < 3; m++) {
		size_t hlen = 0;
		uint8_t *hello = m == 0 ? NULL : vec_get(f, m == 1 ? "hello2" : "hello3", &hlen);
		struct session_hs *w = hs[m % 2], *r = hs[1 - m % 2];

		assert_int_equal(session_hs_write(w, m == 0 ? p1 : hello,
						  m == 0 ? sizeof(p1) : hlen, out, sizeof(out),
						  &len),
				 0);
		assert_int_equal(len, wlen[m]);
		assert_memory_equal(out, wire[m], len);
		assert_int_equal(session_hs_read(r, wire[m], wlen[m], &used, pl, sizeof(pl), &plen),
				 0);
		free(hello);
	}
	assert_int_equal(session_hs_split(hs[0], &keys_i), 0);
	assert_int_equal(session_hs_split(hs[1], &keys_r), 0);
	hash = vec_get(f, "handshake_hash", &hl);
	assert_int_equal(hl, SESSION_HASH_LEN);
	assert_memory_equal(keys_i.hash, hash, hl);

	/* Frames: our sealing gives the same bytes, and the decoder reads theirs. */
	exp = vec_get(f, "i2r_frames", &hl);
	tx = session_tx_new(keys_i.tx);
	assert_int_equal(session_seal(tx, "", 0, frames, sizeof(frames), &len), 0);
	memcpy(frames + len + 4, "first part|", 11);
	assert_int_equal(session_seal_frame_inplace(tx, frames + len, 11, true), 0);
	len += 11 + SESSION_FRAME_OVERHEAD;
	memcpy(frames + len + 4, "second part", 11);
	assert_int_equal(session_seal_frame_inplace(tx, frames + len, 11, false), 0);
	len += 11 + SESSION_FRAME_OVERHEAD;
	assert_int_equal(len, hl);
	assert_memory_equal(frames, exp, hl);
	rx = session_rx_new(keys_r.rx, 1000);
	assert_int_equal(session_rx_feed(rx, exp, hl, &used, &msg, &len), 1);
	assert_int_equal(len, 0);
	assert_int_equal(session_rx_feed(rx, exp + used, hl - used, &used, &msg, &len), 1);
	assert_int_equal(len, 22);
	assert_memory_equal(msg, "first part|second part", 22);
	session_rx_free(rx);
	session_tx_free(tx);
	free(exp);

	exp = vec_get(f, "r2i_frames", &hl);
	rx = session_rx_new(keys_i.rx, 1000);
	assert_int_equal(session_rx_feed(rx, exp, hl, &used, &msg, &len), 1);
	assert_int_equal(used, hl);
	assert_int_equal(len, 4);
	assert_memory_equal(msg, "pong", 4);
	session_rx_free(rx);
	free(exp);

	free(hash);
	for (int m = 0; m < 3; m++)
		free(wire[m]);
	session_hs_free(hs[0]);
	session_hs_free(hs[1]);
}

static void test_handshake(void **state)
{
	struct session_keys ki, kr;
	struct pair p;

	pair_new(&p, NOW, NOW);
	pair_run(&p);
	assert_int_equal(session_hs_split(p.i, &ki), 0);
	assert_int_equal(session_hs_split(p.r, &kr), 0);
	/* Separate keys per direction, and each side's send key is the other's receive key. */
	assert_memory_equal(ki.tx, kr.rx, 32);
	assert_memory_equal(ki.rx, kr.tx, 32);
	assert_memory_not_equal(ki.tx, ki.rx, 32);
	assert_memory_equal(ki.hash, kr.hash, SESSION_HASH_LEN);
	/* The responder generated one ephemeral key and did two DH (ee, es) and se. */
	assert_int_equal(session__hs_pk_ops(p.r), 4);
	session_keys_wipe(&ki);
	session_keys_wipe(&kr);
	pair_free(&p);
}

/* Two handshakes between the same nodes give unrelated keys: ephemeral keys. */
static void test_handshake_fresh_keys(void **state)
{
	struct session_keys k1, k2;
	struct pair a, b;

	pair_new(&a, NOW, NOW);
	pair_new(&b, NOW, NOW);
	session_hs_free(b.i);
	session_hs_free(b.r);
	b.ki = a.ki;
	b.kr = a.kr;
	b.i = session_hs_new(SESSION_INITIATOR, &b.ki, b.netkey, NOW);
	b.r = session_hs_new(SESSION_RESPONDER, &b.kr, b.netkey, NOW);
	pair_run(&a);
	pair_run(&b);
	assert_int_equal(session_hs_split(a.i, &k1), 0);
	assert_int_equal(session_hs_split(b.i, &k2), 0);
	assert_memory_not_equal(k1.tx, k2.tx, 32);
	assert_memory_not_equal(k1.rx, k2.rx, 32);
	pair_free(&a);
	pair_free(&b);
}

static void test_wrong_netkey(void **state)
{
	uint8_t m1[SESSION_HS_MSG_MAX], m2[SESSION_HS_MSG_MAX], pl[SESSION_HELLO_MAX];
	size_t l1, l2, used, plen;
	struct pair p;

	pair_new(&p, NOW, NOW);
	session_hs_free(p.r);
	p.netkey[7] ^= 1;
	p.r = session_hs_new(SESSION_RESPONDER, &p.kr, p.netkey, NOW);
	assert_int_equal(session_hs_write(p.i, NULL, 0, m1, sizeof(m1), &l1), 0);
	assert_int_equal(session_hs_read(p.r, m1, l1, &used, pl, sizeof(pl), &plen), FERRY_EAUTH);
	assert_non_null(strstr(ferry_errmsg(FERRY_EAUTH), "network"));
	/* Rejected at message 1, before any key generation or DH; and it stays failed. */
	assert_int_equal(session__hs_pk_ops(p.r), 0);
	assert_int_equal(session_hs_step(p.r), SESSION_HS_FAILED);
	assert_int_equal(session_hs_write(p.r, NULL, 0, m2, sizeof(m2), &l2), FERRY_EINVAL);
	assert_int_equal(l2, 0);
	assert_int_equal(session_hs_read(p.r, m1, l1, &used, pl, sizeof(pl), &plen), FERRY_EINVAL);
	pair_free(&p);
}

/* Message 1 with the clock skew at and beyond the limit, both ways. */
static void test_clock_skew(void **state)
{
	static const struct {
		int64_t skew;
		int rc;
	} cases[] = {
	    {0, 0},
	    {SESSION_CLOCK_SKEW_MAX, 0},
	    {-SESSION_CLOCK_SKEW_MAX, 0},
	    {SESSION_CLOCK_SKEW_MAX + 1, FERRY_EPROTO},
	    {-SESSION_CLOCK_SKEW_MAX - 1, FERRY_EPROTO},
	    {-86400 * 365, FERRY_EPROTO},
	};

	for (size_t c = 0; c < ARRAY_SIZE(cases); c++) {
		uint8_t m1[SESSION_HS_MSG_MAX], pl[8];
		size_t l1, used, plen;
		struct pair p;

		pair_new(&p, NOW, (uint64_t)((int64_t)NOW + cases[c].skew));
		assert_int_equal(session_hs_write(p.i, NULL, 0, m1, sizeof(m1), &l1), 0);
		assert_int_equal(session_hs_read(p.r, m1, l1, &used, pl, sizeof(pl), &plen),
				 cases[c].rc);
		if (cases[c].rc != 0) {
			assert_non_null(strstr(ferry_errmsg(FERRY_EPROTO), "clock"));
			assert_int_equal(session__hs_pk_ops(p.r), 0);
		}
		pair_free(&p);
	}
}

/*
 * Change one bit of one handshake message (index msg) at position pos and
 * check the receiver refuses it.
 */
static void tamper_one(int msg, size_t pos, uint8_t bit)
{
	uint8_t pl[SESSION_HELLO_MAX], *m;
	size_t len, used, plen;
	struct session_hs *to;
	struct pair p;
	int rc;

	pair_new(&p, NOW, NOW);
	assert_int_equal(session_hs_write(p.i, NULL, 0, p.m1, sizeof(p.m1), &p.l1), 0);
	if (msg > 0) {
		assert_int_equal(hs_read_all(p.r, p.m1, p.l1, pl, &plen), 0);
		assert_int_equal(
		    session_hs_write(p.r, hello_r, sizeof(hello_r), p.m2, sizeof(p.m2), &p.l2), 0);
	}
	if (msg > 1) {
		assert_int_equal(hs_read_all(p.i, p.m2, p.l2, pl, &plen), 0);
		assert_int_equal(
		    session_hs_write(p.i, hello_i, sizeof(hello_i), p.m3, sizeof(p.m3), &p.l3), 0);
	}
	m = msg == 0 ? p.m1 : msg == 1 ? p.m2 : p.m3;
	len = msg == 0 ? p.l1 : msg == 1 ? p.l2 : p.l3;
	to = msg == 1 ? p.i : p.r;
	if (pos >= len)
		goto out;
	m[pos] ^= bit;
	rc = session_hs_read(to, m, len, &used, pl, sizeof(pl), &plen);
	if (pos < 2) {
		/* The length prefix: out of bounds, shorter (then the tag fails), or
		 * longer than what arrived (waiting for bytes that never come). */
		assert_true(rc == FERRY_EPROTO || rc == FERRY_EAUTH || rc == FERRY_EAGAIN);
		if (msg == 0)
			assert_int_equal(rc, FERRY_EPROTO);
	} else {
		assert_int_equal(rc, FERRY_EAUTH);
	}
	if (msg == 0)
		assert_int_equal(session__hs_pk_ops(p.r), 0);
out:
	pair_free(&p);
}

static void test_tamper_every_byte(void **state)
{
	for (int msg = 0; msg < 3; msg++)
		for (size_t pos = 0; pos < SESSION_HS_MSG2_MIN + sizeof(hello_i); pos++) {
			tamper_one(msg, pos, 0x01);
			tamper_one(msg, pos, 0x80);
		}
}

/* Partial input, trailing bytes, and calls out of turn. */
static void test_hs_stream_and_misuse(void **state)
{
	uint8_t buf[SESSION_HS_MSG_MAX + 10], pl[SESSION_HELLO_MAX], big[SESSION_HELLO_MAX + 1];
	size_t used, plen, len;
	struct session_keys k;
	struct pair p;

	/* The payload is sent and checked after a round trip: give it defined bytes. */
	memset(big, 0x5a, sizeof(big));
	pair_new(&p, NOW, NOW);
	assert_int_equal(session_hs_read(p.i, buf, 0, &used, pl, sizeof(pl), &plen), FERRY_EINVAL);
	assert_int_equal(session_hs_write(p.r, NULL, 0, buf, sizeof(buf), &len), FERRY_EINVAL);
	assert_int_equal(session_hs_split(p.i, &k), FERRY_EINVAL);
	assert_int_equal(session_hs_write(p.i, pl, 1, buf, sizeof(buf), &len), FERRY_EINVAL);
	assert_int_equal(session_hs_write(p.i, NULL, 0, buf, 10, &len), FERRY_EINVAL);
	assert_int_equal(session_hs_write(p.i, NULL, 0, p.m1, sizeof(p.m1), &p.l1), 0);
	/* Each prefix of message 1 asks for more and changes nothing. */
	for (size_t n = 0; n < p.l1; n++)
		assert_int_equal(session_hs_read(p.r, p.m1, n, &used, pl, sizeof(pl), &plen),
				 FERRY_EAGAIN);
	assert_int_equal(hs_read_all(p.r, p.m1, p.l1, pl, &plen), 0);
	assert_int_equal(session_hs_write(p.r, big, sizeof(big), buf, sizeof(buf), &len),
			 FERRY_EINVAL);
	assert_int_equal(session_hs_write(p.r, big, SESSION_HELLO_MAX, buf, sizeof(buf), &len), 0);
	assert_int_equal(len, SESSION_HS_MSG_MAX);
	/* Bytes after the message are not consumed; too small a payload buffer is refused. */
	memset(buf + len, 0xaa, 10);
	assert_int_equal(session_hs_read(p.i, buf, len + 10, &used, pl, 100, &plen), FERRY_EINVAL);
	assert_int_equal(session_hs_step(p.i), SESSION_HS_READ);
	assert_int_equal(session_hs_read(p.i, buf, len + 10, &used, pl, sizeof(pl), &plen), 0);
	assert_int_equal(used, len);
	assert_int_equal(plen, SESSION_HELLO_MAX);
	pair_free(&p);

	/* A length prefix above the bound is refused from its 2 bytes alone. */
	pair_new(&p, NOW, NOW);
	buf[0] = 0xff;
	buf[1] = 0xff;
	assert_int_equal(session_hs_read(p.r, buf, 2, &used, pl, sizeof(pl), &plen), FERRY_EPROTO);
	pair_free(&p);
}

/* ---- framing ---- */

struct link {
	struct session_tx *tx;
	struct session_rx *rx;
};

static void link_new(struct link *l, size_t cap)
{
	uint8_t key[32];

	for (int i = 0; i < 32; i++)
		key[i] = (uint8_t)(i * 7 + 1);
	l->tx = session_tx_new(key);
	l->rx = session_rx_new(key, cap);
}

static void link_free(struct link *l)
{
	session_tx_free(l->tx);
	session_rx_free(l->rx);
}

static uint8_t *seal(struct link *l, const uint8_t *msg, size_t len, size_t *outlen)
{
	uint8_t *out = xmalloc(session_sealed_len(len));

	assert_int_equal(session_seal(l->tx, msg, len, out, session_sealed_len(len), outlen), 0);
	assert_int_equal(*outlen, session_sealed_len(len));
	return out;
}

static uint8_t *pattern_bytes(size_t len, unsigned seed)
{
	uint8_t *p = xmalloc(len + 1);

	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(i * 31 + seed + (i >> 8));
	return p;
}

static void test_frame_sizes(void **state)
{
	static const size_t sizes[] = {
	    0, 1, SESSION_FRAME_MAX - 1, SESSION_FRAME_MAX, SESSION_FRAME_MAX + 1, 1 << 20};
	struct link l;

	link_new(&l, SESSION_MSG_MAX_DEFAULT);
	for (size_t s = 0; s < ARRAY_SIZE(sizes); s++) {
		size_t len = sizes[s], wlen, used, got;
		uint8_t *msg = pattern_bytes(len, (unsigned)s), *wire = seal(&l, msg, len, &wlen);
		size_t frames = len == 0 ? 1 : (len + SESSION_FRAME_MAX - 1) / SESSION_FRAME_MAX;
		const uint8_t *out;

		assert_int_equal(wlen, len + frames * SESSION_FRAME_OVERHEAD);
		/* Every frame but the last has the more bit. */
		assert_int_equal(wire[0] & 0x80, frames > 1 ? 0x80 : 0);
		assert_int_equal(session_rx_feed(l.rx, wire, wlen, &used, &out, &got), 1);
		assert_int_equal(used, wlen);
		assert_int_equal(got, len);
		assert_non_null(out);
		assert_memory_equal(out, msg, len);
		assert_true(session_rx_idle(l.rx));
		free(msg);
		free(wire);
	}
	link_free(&l);
}

/* A stream of messages of the sizes above, fed one byte at a time. */
static void test_frame_byte_at_a_time(void **state)
{
	static const size_t sizes[] = {0,
				       1,
				       SESSION_FRAME_MAX - 1,
				       SESSION_FRAME_MAX,
				       0,
				       SESSION_FRAME_MAX + 1,
				       3 * SESSION_FRAME_MAX + 5};
	size_t total = 0, off = 0, m = 0;
	uint8_t *stream, *msgs[ARRAY_SIZE(sizes)];
	struct link l;

	link_new(&l, SESSION_MSG_MAX_DEFAULT);
	for (size_t s = 0; s < ARRAY_SIZE(sizes); s++)
		total += session_sealed_len(sizes[s]);
	stream = xmalloc(total);
	for (size_t s = 0; s < ARRAY_SIZE(sizes); s++) {
		size_t wlen;

		msgs[s] = pattern_bytes(sizes[s], (unsigned)s + 100);
		assert_int_equal(
		    session_seal(l.tx, msgs[s], sizes[s], stream + off, total - off, &wlen), 0);
		off += wlen;
	}
	for (size_t i = 0; i < total; i++) {
		const uint8_t *out;
		size_t used, got;
		int rc = session_rx_feed(l.rx, stream + i, 1, &used, &out, &got);

		assert_int_equal(used, 1);
		assert_true(rc == 0 || rc == 1);
		if (rc == 1) {
			assert_true(m < ARRAY_SIZE(sizes));
			assert_int_equal(got, sizes[m]);
			assert_memory_equal(out, msgs[m], got);
			m++;
		}
		assert_int_equal(session_rx_idle(l.rx), rc == 1);
	}
	assert_int_equal(m, ARRAY_SIZE(sizes));
	for (size_t s = 0; s < ARRAY_SIZE(sizes); s++)
		free(msgs[s]);
	free(stream);
	link_free(&l);
}

/* Seal a and b, then feed the receiver per `order` (indexes into {a, b}). */
static int feed_order(const char *order)
{
	uint8_t *w[2];
	size_t wl[2], used, got;
	const uint8_t *out;
	struct link l;
	int rc = 0;

	link_new(&l, SESSION_MSG_MAX_DEFAULT);
	w[0] = seal(&l, (const uint8_t *)"first", 5, &wl[0]);
	w[1] = seal(&l, (const uint8_t *)"second", 6, &wl[1]);
	for (const char *o = order; *o != '\0' && rc >= 0; o++) {
		int k = *o - 'a';

		rc = session_rx_feed(l.rx, w[k], wl[k], &used, &out, &got);
	}
	free(w[0]);
	free(w[1]);
	link_free(&l);
	return rc;
}

static void test_frame_replay_reorder_drop(void **state)
{
	assert_int_equal(feed_order("ab"), 1);
	assert_int_equal(feed_order("aa"), FERRY_EAUTH); /* replayed */
	assert_int_equal(feed_order("ba"), FERRY_EAUTH); /* reordered */
	assert_int_equal(feed_order("b"), FERRY_EAUTH);	 /* first dropped */
	assert_int_equal(feed_order("aba"), FERRY_EAUTH);
	assert_non_null(strstr(ferry_errmsg(FERRY_EAUTH), "does not authenticate"));
}

/* Change the wire bytes of a 2-frame message and expect code. */
static void tamper_frame(void (*change)(uint8_t *wire, size_t len), int code)
{
	size_t len = SESSION_FRAME_MAX + 100, wlen, used, got;
	uint8_t *msg = pattern_bytes(len, 9), *wire;
	const uint8_t *out;
	struct link l;
	int rc;

	link_new(&l, SESSION_MSG_MAX_DEFAULT);
	wire = seal(&l, msg, len, &wlen);
	change(wire, wlen);
	rc = session_rx_feed(l.rx, wire, wlen, &used, &out, &got);
	assert_int_equal(rc, code);
	/* Errors are final. */
	assert_int_equal(session_rx_feed(l.rx, wire, wlen, &used, &out, &got), code);
	free(msg);
	free(wire);
	link_free(&l);
}

static void flip_payload(uint8_t *w, size_t len)
{
	w[100] ^= 1;
}

static void flip_tag(uint8_t *w, size_t len)
{
	w[len - 1] ^= 0x80;
}

static void shorter_len(uint8_t *w, size_t len)
{
	w[3] = 0x0f; /* 65552 -> 65551: the frame boundary moves */
}

static void clear_more(uint8_t *w, size_t len)
{
	w[0] &= 0x7f;
}

static void set_more_on_last(uint8_t *w, size_t len)
{
	w[SESSION_FRAME_MAX + SESSION_FRAME_OVERHEAD] |= 0x80;
}

static void huge_len(uint8_t *w, size_t len)
{
	w[1] = 0x7f;
}

static void tiny_len(uint8_t *w, size_t len)
{
	w[0] = w[1] = w[2] = 0;
	w[3] = 15;
}

static void test_frame_tamper(void **state)
{
	tamper_frame(flip_payload, FERRY_EAUTH);
	tamper_frame(flip_tag, FERRY_EAUTH);
	tamper_frame(shorter_len, FERRY_EAUTH);
	tamper_frame(clear_more, FERRY_EAUTH);
	tamper_frame(set_more_on_last, FERRY_EAUTH);
	tamper_frame(huge_len, FERRY_EPROTO);
	tamper_frame(tiny_len, FERRY_EPROTO);
}

/* A frame cut short: the decoder waits, is not idle, and the next bytes fail. */
static void test_frame_truncated(void **state)
{
	uint8_t *a, *b;
	size_t la, lb, used, got;
	const uint8_t *out;
	struct link l;

	link_new(&l, SESSION_MSG_MAX_DEFAULT);
	a = seal(&l, (const uint8_t *)"hello there", 11, &la);
	b = seal(&l, (const uint8_t *)"next", 4, &lb);
	assert_int_equal(session_rx_feed(l.rx, a, la - 3, &used, &out, &got), 0);
	assert_int_equal(used, la - 3);
	assert_false(session_rx_idle(l.rx));
	assert_int_equal(session_rx_feed(l.rx, b, lb, &used, &out, &got), FERRY_EAUTH);
	free(a);
	free(b);
	link_free(&l);
}

/* A header over the cap is refused from its 4 bytes, before any buffering. */
static void test_frame_cap(void **state)
{
	uint8_t hdr[4] = {0x00, 0x00, 0x04, 0x10}; /* 1024 + 16 */
	size_t used, got, wlen;
	const uint8_t *out;
	uint8_t *msg, *wire;
	struct link l;

	link_new(&l, 1000);
	assert_int_equal(session_rx_feed(l.rx, hdr, 4, &used, &out, &got), FERRY_ETOOBIG);
	assert_non_null(strstr(ferry_errmsg(FERRY_ETOOBIG), "cap"));
	link_free(&l);

	/* Exactly at the cap passes; a multi-frame message over it fails at its 2nd header. */
	link_new(&l, SESSION_FRAME_MAX + 10);
	msg = pattern_bytes(SESSION_FRAME_MAX + 11, 3);
	wire = seal(&l, msg, SESSION_FRAME_MAX + 10, &wlen);
	assert_int_equal(session_rx_feed(l.rx, wire, wlen, &used, &out, &got), 1);
	assert_int_equal(got, SESSION_FRAME_MAX + 10);
	free(wire);
	wire = seal(&l, msg, SESSION_FRAME_MAX + 11, &wlen);
	assert_int_equal(session_rx_feed(l.rx, wire, SESSION_FRAME_MAX + SESSION_FRAME_OVERHEAD + 4,
					 &used, &out, &got),
			 FERRY_ETOOBIG);
	assert_int_equal(used, 0);
	free(wire);
	free(msg);
	link_free(&l);
}

/* In-place sealing gives the same bytes as session_seal; bad arguments are refused. */
static void test_seal_inplace(void **state)
{
	uint8_t frame[100 + SESSION_FRAME_OVERHEAD], *wire, *msg = pattern_bytes(100, 5);
	size_t wlen;
	struct link a, b;

	link_new(&a, 1000);
	link_new(&b, 1000);
	wire = seal(&a, msg, 100, &wlen);
	memcpy(frame + SESSION_FRAME_HDR, msg, 100);
	assert_int_equal(session_seal_frame_inplace(b.tx, frame, 100, false), 0);
	assert_memory_equal(frame, wire, wlen);
	assert_int_equal(session_seal_frame_inplace(b.tx, frame, 0, true), FERRY_EINVAL);
	assert_int_equal(session_seal_frame_inplace(b.tx, frame, SESSION_FRAME_MAX + 1, false),
			 FERRY_EINVAL);
	assert_int_equal(session_seal(b.tx, msg, 100, frame, 50, &wlen), FERRY_EINVAL);
	free(wire);
	free(msg);
	link_free(&a);
	link_free(&b);
}

/* Keys from a real handshake carry messages both ways. */
static void test_handshake_then_frames(void **state)
{
	struct session_keys ki, kr;
	struct session_tx *tx_i, *tx_r;
	struct session_rx *rx_i, *rx_r;
	uint8_t wire[64];
	size_t wl, used, got;
	const uint8_t *out;
	struct pair p;

	pair_new(&p, NOW, NOW);
	pair_run(&p);
	assert_int_equal(session_hs_split(p.i, &ki), 0);
	assert_int_equal(session_hs_split(p.r, &kr), 0);
	tx_i = session_tx_new(ki.tx);
	rx_i = session_rx_new(ki.rx, 100);
	tx_r = session_tx_new(kr.tx);
	rx_r = session_rx_new(kr.rx, 100);
	assert_int_equal(session_seal(tx_i, "ping", 4, wire, sizeof(wire), &wl), 0);
	assert_int_equal(session_rx_feed(rx_r, wire, wl, &used, &out, &got), 1);
	assert_memory_equal(out, "ping", 4);
	assert_int_equal(session_seal(tx_r, "pong", 4, wire, sizeof(wire), &wl), 0);
	assert_int_equal(session_rx_feed(rx_i, wire, wl, &used, &out, &got), 1);
	assert_memory_equal(out, "pong", 4);
	/* A frame reflected back to its sender does not open. */
	assert_int_equal(session_seal(tx_i, "echo", 4, wire, sizeof(wire), &wl), 0);
	assert_int_equal(session_rx_feed(rx_i, wire, wl, &used, &out, &got), FERRY_EAUTH);
	session_tx_free(tx_i);
	session_tx_free(tx_r);
	session_rx_free(rx_i);
	session_rx_free(rx_r);
	pair_free(&p);
}

/* ---- node key ---- */

static char *tmpdir(void)
{
	char *d = xstrdup("/tmp/ferry-test-session.XXXXXX");

	assert_non_null(mkdtemp(d));
	return d;
}

static void write_text(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	assert_int_equal(chmod(path, mode), 0);
}

static void test_nodekey(void **state)
{
	char *dir = tmpdir(), *path = xasprintf("%s/node.key", dir), id[NODEKEY_ID_HEX_LEN];
	struct nodekey k1, k2;
	uint8_t pk[32];
	struct stat st;
	char *text;
	size_t len;

	assert_int_equal(nodekey_load_or_create(dir, &k1), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(read_file(path, 4096, &text, &len), 0);
	assert_int_equal(len, strlen(NODEKEY_MAGIC) + 1 + 64 + 1);
	assert_memory_equal(text, NODEKEY_MAGIC "\n", strlen(NODEKEY_MAGIC) + 1);
	free(text);
	/* Loaded again: the same identity, and the public key matches the secret one. */
	assert_int_equal(nodekey_load_or_create(dir, &k2), 0);
	assert_memory_equal(k1.sk, k2.sk, 32);
	assert_memory_equal(k1.pk, k2.pk, 32);
	session_x25519_public(pk, k1.sk);
	assert_memory_equal(pk, k1.pk, 32);
	assert_int_equal(nodekey_id_parse(pk, nodekey_id_hex(id, k1.pk)), 0);
	assert_memory_equal(pk, k1.pk, 32);
	assert_int_equal(nodekey_id_parse(pk, "abc"), FERRY_EFORMAT);

	/* Readable by others: refused, with the fix in the message. */
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(nodekey_load_or_create(dir, &k2), FERRY_EACCES);
	assert_non_null(strstr(ferry_errmsg(FERRY_EACCES), "chmod 600"));
	assert_non_null(strstr(ferry_errmsg(FERRY_EACCES), path));

	/* Malformed files are refused naming the file, never replaced. */
	write_text(path, "ferry-node-key-v1\nabcd\n", 0600);
	assert_int_equal(nodekey_load_or_create(dir, &k2), FERRY_EFORMAT);
	assert_non_null(strstr(ferry_errmsg(FERRY_EFORMAT), path));
	write_text(path, "something-else\n", 0600);
	assert_int_equal(nodekey_load(path, &k2), FERRY_EFORMAT);
	write_text(path,
		   "ferry-node-key-v1\n"
		   "zz0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n",
		   0600);
	assert_int_equal(nodekey_load(path, &k2), FERRY_EFORMAT);
	assert_non_null(strstr(ferry_errmsg(FERRY_EFORMAT), "hex"));
	write_text(path,
		   "ferry-node-key-v1\n"
		   "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\nextra",
		   0600);
	assert_int_equal(nodekey_load(path, &k2), FERRY_EFORMAT);
	/* Without its final newline it is still a key. */
	write_text(path,
		   "ferry-node-key-v1\n"
		   "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
		   0600);
	assert_int_equal(nodekey_load(path, &k2), 0);
	assert_int_equal(k2.sk[31], 0x1f);

	unlink(path);
	rmdir(dir);
	assert_int_equal(nodekey_load_or_create(dir, &k2), FERRY_ENOENT);
	assert_non_null(strstr(ferry_errmsg(FERRY_ENOENT), dir));
	nodekey_wipe(&k1);
	free(path);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_vector_noise),
	    cmocka_unit_test(test_vector_ferry),
	    cmocka_unit_test(test_handshake),
	    cmocka_unit_test(test_handshake_fresh_keys),
	    cmocka_unit_test(test_wrong_netkey),
	    cmocka_unit_test(test_clock_skew),
	    cmocka_unit_test(test_tamper_every_byte),
	    cmocka_unit_test(test_hs_stream_and_misuse),
	    cmocka_unit_test(test_frame_sizes),
	    cmocka_unit_test(test_frame_byte_at_a_time),
	    cmocka_unit_test(test_frame_replay_reorder_drop),
	    cmocka_unit_test(test_frame_tamper),
	    cmocka_unit_test(test_frame_truncated),
	    cmocka_unit_test(test_frame_cap),
	    cmocka_unit_test(test_seal_inplace),
	    cmocka_unit_test(test_handshake_then_frames),
	    cmocka_unit_test(test_nodekey),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
