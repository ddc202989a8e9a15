/*
 * The misbehaviour policy (docs/protocol.md, "Misbehaviour"): which failures
 * of a peer are offences, and what offences of every kind earn together
 * through the scheduler's ledger (sched_offence, sched_chunk_bad).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "ferry/error.h"
#include "ferry/misbehave.h"
#include "ferry/sched.h"

#define MIN_MS	(60ull * 1000)
#define HOUR_MS (60 * MIN_MS)
#define DAY_MS	(24 * HOUR_MS)

static struct sched *new_sched(void)
{
	uint8_t self[32];

	memset(self, 0xee, sizeof(self));
	return sched_new(NULL, self, 1);
}

static void node_id(uint8_t id[32], uint8_t tag)
{
	memset(id, tag, 32);
}

/* The transport's reasons: the peer's framing and messages count, the rest does not. */
static void test_close_reasons(void **state)
{
	(void)state;
	assert_int_equal(misbehave_of_close(FERRY_EAUTH), MISBEHAVE_BAD_FRAME);
	assert_int_equal(misbehave_of_close(FERRY_EPROTO), MISBEHAVE_PROTOCOL);
	assert_int_equal(misbehave_of_close(FERRY_ETOOBIG), MISBEHAVE_OVERSIZE);
	/* A slow, silent or vanished peer, a duplicate, this node's own reasons. */
	static const int innocent[] = {
	    0,		 FERRY_EIO,    FERRY_ETIMEDOUT, FERRY_EEXIST,	    FERRY_ECANCELED,
	    FERRY_EBUSY, FERRY_EPERM,  FERRY_ECORRUPT,	FERRY_ECONNREFUSED, FERRY_EVERSION,
	    -ECONNRESET, -EHOSTUNREACH};
	for (size_t i = 0; i < sizeof(innocent) / sizeof(innocent[0]); i++)
		assert_int_equal(misbehave_of_close(innocent[i]), MISBEHAVE_NONE);
}

/* Only a bad signature by a trusted key is a forgery; an honest relay sends nothing else. */
static void test_manifest_reasons(void **state)
{
	(void)state;
	assert_int_equal(misbehave_of_manifest(FERRY_EBADSIG), MISBEHAVE_FORGED_MANIFEST);
	assert_int_equal(misbehave_of_manifest(0), MISBEHAVE_NONE);
	/* Another network's publisher, a newer format, an older version: honest. */
	assert_int_equal(misbehave_of_manifest(FERRY_EUNTRUSTED), MISBEHAVE_NONE);
	assert_int_equal(misbehave_of_manifest(FERRY_EVERSION), MISBEHAVE_NONE);
	assert_int_equal(misbehave_of_manifest(FERRY_EFORMAT), MISBEHAVE_NONE);
	assert_int_equal(misbehave_of_manifest(FERRY_EOLDVERSION), MISBEHAVE_NONE);
	assert_int_equal(misbehave_of_manifest(FERRY_ETOOBIG), MISBEHAVE_NONE);
}

static void test_names(void **state)
{
	(void)state;
	assert_string_equal(misbehave_name(MISBEHAVE_OVERSIZE), "a message over its cap");
	assert_string_equal(misbehave_name(MISBEHAVE_FORGED_MANIFEST), "a forged manifest");
	assert_string_equal(misbehave_name(MISBEHAVE_BAD_FRAME),
			    "a frame that does not authenticate");
	assert_string_equal(misbehave_name(MISBEHAVE_NONE), "no offence");
	assert_non_null(misbehave_name((enum misbehave)99));
}

/*
 * One forged manifest (or any one offence) only drops the peer: an honest
 * relay whose store handed out a damaged copy is not banned for it.
 */
static void test_one_offence_drops(void **state)
{
	struct sched *s = new_sched();
	struct sched_verdict v;
	uint8_t id[32];

	(void)state;
	node_id(id, 1);
	assert_int_equal(sched_offence(s, id, 1000, &v), 0);
	assert_int_equal(v.action, SCHED_DROP);
	assert_int_equal(v.offences, 1);
	assert_int_equal(v.ban_until, 0);
	assert_int_equal(sched_banned_until(s, id, 1000), 0);
	/* It may connect again at once. */
	assert_int_equal(sched_peer_add(s, 0, id, SCHED_WAN, 1001), 0);
	sched_free(s);
}

/* Offences of different kinds add up: the third within an hour bans for 10 min. */
static void test_kinds_add_up(void **state)
{
	static const uint8_t bits[1] = {1};
	struct sched *s = new_sched();
	struct sched_chunk c = {.len = 100};
	struct sched_chunk out[1];
	struct sched_verdict v;
	uint8_t id[32], other[32];
	uint64_t t = 5 * HOUR_MS;

	(void)state;
	node_id(id, 2);
	node_id(other, 3);
	memset(c.id, 0xc1, sizeof(c.id));
	assert_int_equal(sched_want(s, 1, &c, 1, NULL, t), 0);
	/* A message over its cap, then a forged manifest: dropped twice. */
	assert_int_equal(sched_offence(s, id, t, &v), 0);
	assert_int_equal(v.action, SCHED_DROP);
	assert_int_equal(sched_offence(s, id, t + 10 * MIN_MS, &v), 0);
	assert_int_equal(v.action, SCHED_DROP);
	assert_int_equal(v.offences, 2);
	/* Another node's offences are its own. */
	assert_int_equal(sched_offence(s, other, t, &v), 0);
	assert_int_equal(v.offences, 1);
	/* Then a bad chunk, within the hour: banned. */
	t += 50 * MIN_MS;
	assert_int_equal(sched_peer_add(s, 0, id, SCHED_WAN, t), 0);
	assert_int_equal(sched_peer_have(s, 0, 1, bits, 1, t), 0);
	assert_int_equal(sched_next(s, 0, t, out, 1), 1);
	assert_int_equal(sched_chunk_bad(s, 0, c.id, t, &v), 0);
	assert_int_equal(v.action, SCHED_BAN);
	assert_int_equal(v.offences, 3);
	assert_int_equal(v.ban_until, t + 10 * MIN_MS);
	assert_int_equal(sched_peer_remove(s, 0, t), 0);
	/* No connection during the ban, one as soon as it ends. */
	assert_int_equal(sched_banned_until(s, id, t + 10 * MIN_MS - 1), t + 10 * MIN_MS);
	assert_int_equal(sched_peer_add(s, 0, id, SCHED_WAN, t + 10 * MIN_MS - 1), FERRY_EPERM);
	assert_non_null(strstr(ferry_errmsg(FERRY_EPERM), "banned for misbehaving"));
	assert_int_equal(sched_banned_until(s, id, t + 10 * MIN_MS), 0);
	assert_int_equal(sched_peer_add(s, 0, id, SCHED_WAN, t + 10 * MIN_MS), 0);
	assert_int_equal(sched_banned_until(s, other, t), 0);
	sched_free(s);
}

/* Two offences an hour apart never add up, however many there are. */
static void test_spread_out(void **state)
{
	struct sched *s = new_sched();
	struct sched_verdict v;
	uint8_t id[32];

	(void)state;
	node_id(id, 4);
	for (uint64_t t = 0; t < 48 * HOUR_MS; t += HOUR_MS / 2 + 1) {
		assert_int_equal(sched_offence(s, id, t, &v), 0);
		assert_int_equal(v.action, SCHED_DROP);
		assert_true(v.offences <= 2);
	}
	sched_free(s);
}

/*
 * A node that keeps at it is banned for longer each time (10 min doubling)
 * but never for more than 7 days, and never forever: every ban ends, and
 * after a clean week the next ban is the first one again.
 */
static void test_bans_grow_and_end(void **state)
{
	struct sched *s = new_sched();
	struct sched_verdict v = {0};
	uint64_t t = 0, want = 10 * MIN_MS;
	uint8_t id[32];

	(void)state;
	node_id(id, 5);
	for (int ban = 0; ban < 14; ban++) {
		for (int i = 0; i < 3; i++)
			assert_int_equal(sched_offence(s, id, t, &v), 0);
		assert_int_equal(v.action, SCHED_BAN);
		assert_int_equal(v.ban_until - t, want);
		assert_true(v.ban_until - t <= 7 * DAY_MS);
		/* Refused until the end, free at the end. */
		assert_int_equal(sched_banned_until(s, id, v.ban_until - 1), v.ban_until);
		t = v.ban_until;
		assert_int_equal(sched_banned_until(s, id, t), 0);
		want = want * 2 > 7 * DAY_MS ? 7 * DAY_MS : want * 2;
	}
	assert_int_equal(want, 7 * DAY_MS);
	/* A clean week after the last ban ended: back to 10 min. */
	t += 7 * DAY_MS;
	for (int i = 0; i < 3; i++)
		assert_int_equal(sched_offence(s, id, t, &v), 0);
	assert_int_equal(v.action, SCHED_BAN);
	assert_int_equal(v.ban_until - t, 10 * MIN_MS);
	sched_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_close_reasons),
	    cmocka_unit_test(test_manifest_reasons),
	    cmocka_unit_test(test_names),
	    cmocka_unit_test(test_one_offence_drops),
	    cmocka_unit_test(test_kinds_add_up),
	    cmocka_unit_test(test_spread_out),
	    cmocka_unit_test(test_bans_grow_and_end),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
