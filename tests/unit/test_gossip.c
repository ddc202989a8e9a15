/*
 * Unit tests for the gossip policy: digest comparison (what to send, what to
 * ask for), forwarding rules, peer picks, and the book of known peers
 * (validation of what peer exchange brings, backoff, eviction). A small
 * simulation checks that anti-entropy alone spreads a manifest to every
 * node of a network in a few rounds.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/catalog.h"
#include "ferry/error.h"
#include "ferry/gossip.h"
#include "ferry/util.h"

static struct gossip_entry ent(const char *name, uint64_t version, uint8_t hash0)
{
	struct gossip_entry e;

	memset(&e, 0, sizeof(e));
	snprintf(e.name, sizeof(e.name), "%s", name);
	e.version = version;
	memset(e.hash, 0x11, 32);
	e.hash[0] = hash0;
	return e;
}

static const struct gossip_todo *find(const struct gossip_todo *t, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(t[i].name, name) == 0)
			return &t[i];
	return NULL;
}

static void test_wins(void **state)
{
	struct gossip_entry a = ent("m", 2, 9), b = ent("m", 1, 0), c = ent("m", 2, 1);

	assert_true(gossip_wins(&a, &b));
	assert_false(gossip_wins(&b, &a));
	/* Same version: the lower hash wins, whichever side holds it. */
	assert_true(gossip_wins(&c, &a));
	assert_false(gossip_wins(&a, &c));
	assert_false(gossip_wins(&a, &a));
}

static void test_diff(void **state)
{
	struct gossip_entry mine[] = {
	    ent("alpha", 3, 5), /* they have 2: send */
	    ent("beta", 1, 5),	/* they have 4: ask */
	    ent("gamma", 7, 5), /* same: nothing */
	    ent("delta", 2, 9), /* same version, theirs has the lower hash: ask */
	    ent("eps", 2, 1),	/* same version, ours lower: send */
	    ent("only-mine", 1, 0),
	};
	struct gossip_entry theirs[] = {
	    ent("only-theirs", 5, 0), ent("gamma", 7, 5), ent("eps", 2, 8),
	    ent("delta", 2, 3),	      ent("beta", 4, 0),  ent("alpha", 2, 0),
	};
	struct gossip_todo *t;
	size_t n;

	gossip_diff(mine, ARRAY_SIZE(mine), theirs, ARRAY_SIZE(theirs), &t, &n);
	assert_int_equal(n, 6);
	assert_int_equal(find(t, n, "alpha")->verb, GOSSIP_SEND);
	assert_int_equal(find(t, n, "alpha")->version, 3);
	assert_int_equal(find(t, n, "beta")->verb, GOSSIP_ASK);
	assert_int_equal(find(t, n, "beta")->version, 4);
	assert_null(find(t, n, "gamma"));
	assert_int_equal(find(t, n, "delta")->verb, GOSSIP_ASK);
	assert_int_equal(find(t, n, "delta")->hash[0], 3);
	assert_int_equal(find(t, n, "eps")->verb, GOSSIP_SEND);
	assert_int_equal(find(t, n, "only-mine")->verb, GOSSIP_SEND);
	assert_int_equal(find(t, n, "only-theirs")->verb, GOSSIP_ASK);
	/* Sorted by name. */
	for (size_t i = 1; i < n; i++)
		assert_true(strcmp(t[i - 1].name, t[i].name) < 0);
	free(t);

	/* Equal digests: nothing to do; empty ones too. */
	gossip_diff(mine, ARRAY_SIZE(mine), mine, ARRAY_SIZE(mine), &t, &n);
	assert_int_equal(n, 0);
	assert_null(t);
	gossip_diff(NULL, 0, NULL, 0, &t, &n);
	assert_int_equal(n, 0);
}

/* A peer repeating a name: its last entry counts, and we act once. */
static void test_diff_repeated_names(void **state)
{
	struct gossip_entry mine[] = {ent("m", 3, 0)};
	struct gossip_entry theirs[] = {ent("m", 9, 0), ent("m", 1, 0), ent("m", 5, 0)};
	struct gossip_todo *t;
	size_t n;

	gossip_diff(mine, 1, theirs, 3, &t, &n);
	assert_int_equal(n, 1);
	assert_int_equal(t[0].verb, GOSSIP_ASK);
	assert_int_equal(t[0].version, 5);
	free(t);
}

static void test_forward(void **state)
{
	assert_true(gossip_forward(CATALOG_NEWEST));
	assert_true(gossip_forward(CATALOG_REPLACED));
	assert_false(gossip_forward(CATALOG_OLDER));
	assert_false(gossip_forward(CATALOG_KNOWN));
	assert_false(gossip_forward(FERRY_EUNTRUSTED));
	assert_false(gossip_forward(FERRY_EBADSIG));
	assert_false(gossip_forward(FERRY_EOLDVERSION));
}

static void test_pick(void **state)
{
	uint64_t rng = 12345;
	size_t out[10], counts[5] = {0};

	assert_int_equal(gossip_pick(0, 3, &rng, out), 0);
	assert_int_equal(gossip_pick(2, 3, &rng, out), 2);
	assert_true((out[0] == 0 && out[1] == 1) || (out[0] == 1 && out[1] == 0));
	for (int round = 0; round < 5000; round++) {
		size_t k = gossip_pick(5, 2, &rng, out);

		assert_int_equal(k, 2);
		assert_true(out[0] < 5 && out[1] < 5 && out[0] != out[1]);
		counts[out[0]]++;
		counts[out[1]]++;
	}
	/* Every index is picked about 2000 times; far from 0 and from 5000. */
	for (size_t i = 0; i < 5; i++)
		assert_true(counts[i] > 1500 && counts[i] < 2500);
	assert_int_equal(gossip_fanout(1), 2);
	assert_int_equal(gossip_fanout(50), 3);
}

/*
 * Anti-entropy alone (no eager push) spreads a new manifest through 64
 * nodes: each round every node compares digests with 2 random others and
 * both sides fix what differs. Everyone has it well within 20 rounds
 * (O(log N): log2(64) = 6).
 */
static void test_epidemic(void **state)
{
	enum { N = 64 };
	uint64_t have[N] = {0}, rng = 7;
	int rounds = 0;
	bool all;

	have[0] = 1;
	do {
		uint64_t next[N];

		memcpy(next, have, sizeof(next));
		for (size_t i = 0; i < N; i++) {
			size_t pick[2];
			size_t k = gossip_pick(N, 2, &rng, pick);

			for (size_t j = 0; j < k; j++) {
				struct gossip_entry a = ent("m", have[i], 0),
						    b = ent("m", have[pick[j]], 0);
				struct gossip_todo *t;
				size_t n;

				gossip_diff(have[i] ? &a : NULL, have[i] ? 1 : 0,
					    have[pick[j]] ? &b : NULL, have[pick[j]] ? 1 : 0, &t,
					    &n);
				for (size_t x = 0; x < n; x++) {
					if (t[x].verb == GOSSIP_SEND)
						next[pick[j]] = MAX(next[pick[j]], t[x].version);
					else
						next[i] = MAX(next[i], t[x].version);
				}
				free(t);
			}
		}
		memcpy(have, next, sizeof(have));
		rounds++;
		all = true;
		for (size_t i = 0; i < N; i++)
			all = all && have[i] == 1;
	} while (!all && rounds < 100);
	assert_true(all);
	assert_true(rounds <= 20);
}

static void id_of(uint8_t id[32], int n)
{
	memset(id, 0, 32);
	id[0] = (uint8_t)n;
	id[1] = (uint8_t)(n >> 8);
	id[31] = 0xee;
}

static void test_book_validation(void **state)
{
	uint8_t self[32], a[32];
	struct gossip_book *b;

	id_of(self, 0);
	id_of(a, 1);
	b = gossip_book_new(self);
	assert_int_equal(gossip_book_learn(b, self, "10.0.0.1:7440", "", GOSSIP_SRC_PEX, 1),
			 FERRY_EINVAL);
	assert_int_equal(gossip_book_learn(b, a, "10.0.0.1", "", GOSSIP_SRC_PEX, 1), FERRY_EINVAL);
	assert_int_equal(gossip_book_learn(b, a, "10.0.0.1:0", "", GOSSIP_SRC_PEX, 1),
			 FERRY_EINVAL);
	assert_int_equal(gossip_book_learn(b, a, "10.0.0.1:70000", "", GOSSIP_SRC_PEX, 1),
			 FERRY_EINVAL);
	assert_int_equal(gossip_book_learn(b, a, ":7440", "", GOSSIP_SRC_PEX, 1), FERRY_EINVAL);
	assert_int_equal(gossip_book_learn(b, a, "evil host:1", "", GOSSIP_SRC_PEX, 1),
			 FERRY_EINVAL);
	assert_int_equal(gossip_book_learn(b, a, "[::1:1", "", GOSSIP_SRC_PEX, 1), FERRY_EINVAL);
	assert_int_equal(gossip_book_count(b), 0);
	assert_int_equal(gossip_book_learn(b, a, "[fe80::1]:7440", "clinic", GOSSIP_SRC_PEX, 1), 1);
	assert_int_equal(gossip_book_learn(b, a, "[fe80::1]:7440", "clinic", GOSSIP_SRC_PEX, 1), 0);
	assert_int_equal(gossip_book_count(b), 1);
	gossip_book_free(b);
}

/* What we dialed ourselves is not overwritten by what a peer claims. */
static void test_book_sources(void **state)
{
	uint8_t self[32], a[32];
	struct gossip_book *b;
	struct gossip_peer *p;

	id_of(self, 0);
	id_of(a, 1);
	b = gossip_book_new(self);
	assert_int_equal(gossip_book_learn(b, a, "hq.example:7440", "hq", GOSSIP_SRC_OUTBOUND, 10),
			 1);
	assert_int_equal(gossip_book_learn(b, a, "6.6.6.6:1", "x", GOSSIP_SRC_PEX, 20), 1);
	p = gossip_book_get(b, a);
	assert_string_equal(p->addr, "hq.example:7440");
	assert_string_equal(p->site, "hq");
	assert_int_equal(p->last_seen, 20);
	/* An inbound session without a listen port keeps the known address. */
	gossip_book_learn(b, a, "", "hq", GOSSIP_SRC_OUTBOUND, 30);
	assert_string_equal(gossip_book_get(b, a)->addr, "hq.example:7440");
	gossip_book_free(b);
}

static void test_book_backoff(void **state)
{
	uint8_t self[32], a[32], c[32];
	struct gossip_book *b;
	uint64_t rng = 99, prev = 0;
	size_t out[4];

	id_of(self, 0);
	id_of(a, 1);
	id_of(c, 2);
	b = gossip_book_new(self);
	gossip_book_learn(b, a, "a:1", "", GOSSIP_SRC_PEX, 5);
	gossip_book_learn(b, c, "c:1", "", GOSSIP_SRC_PEX, 9);
	/* Most recently seen first. */
	assert_int_equal(gossip_book_pick_dial(b, 0, 4, out), 2);
	assert_memory_equal(gossip_book_at(b, out[0])->id, c, 32);
	assert_int_equal(gossip_book_pick_dial(b, 0, 1, out), 1);
	assert_memory_equal(gossip_book_at(b, out[0])->id, c, 32);

	/* Failures back off, growing, with jitter, capped at 10 min (+25%). */
	for (int i = 0; i < 30; i++) {
		uint64_t wait;

		gossip_book_dial_failed(b, c, 1000000, &rng);
		wait = gossip_book_get(b, c)->next_dial - 1000000;
		if (i < 8)
			assert_true(wait > prev);
		assert_true(wait <= 750000);
		prev = wait;
	}
	assert_int_equal(gossip_book_pick_dial(b, 1000000, 4, out), 1);
	assert_memory_equal(gossip_book_at(b, out[0])->id, a, 32);
	gossip_book_up(b, c, 100);
	assert_int_equal(gossip_book_pick_dial(b, 1000000, 4, out), 2);
	/* Connected peers are not dialed. */
	gossip_book_get(b, a)->connected = true;
	assert_int_equal(gossip_book_pick_dial(b, 1000000, 4, out), 1);
	gossip_book_free(b);
}

/* A flood of peer exchange entries cannot push out the peers we found ourselves. */
static void test_book_full(void **state)
{
	uint8_t self[32], id[32];
	struct gossip_book *b;
	size_t n_out = 0;

	id_of(self, 0);
	b = gossip_book_new(self);
	for (int i = 1; i <= 10; i++) {
		id_of(id, i);
		assert_int_equal(gossip_book_learn(b, id, "h:1", "", GOSSIP_SRC_OUTBOUND, 1000), 1);
	}
	for (int i = 11; i < 3000; i++) {
		id_of(id, i);
		gossip_book_learn(b, id, "h:1", "", GOSSIP_SRC_PEX, i);
	}
	assert_int_equal(gossip_book_count(b), GOSSIP_BOOK_MAX);
	for (size_t i = 0; i < gossip_book_count(b); i++)
		n_out += gossip_book_at(b, i)->source == GOSSIP_SRC_OUTBOUND;
	assert_int_equal(n_out, 10);
	/* The newest PEX entries replaced the oldest ones. */
	id_of(id, 2999);
	assert_non_null(gossip_book_get(b, id));
	id_of(id, 11);
	assert_null(gossip_book_get(b, id));
	gossip_book_free(b);
}

static void test_book_share(void **state)
{
	uint8_t self[32], id[32], asker[32];
	struct gossip_book *b;
	uint64_t rng = 5;
	size_t out[64], n;

	id_of(self, 0);
	id_of(asker, 1);
	b = gossip_book_new(self);
	gossip_book_learn(b, asker, "asker:1", "", GOSSIP_SRC_INBOUND, 1000);
	for (int i = 2; i < 100; i++) {
		id_of(id, i);
		/* Odd ones were seen long ago, one has no address. */
		gossip_book_learn(b, id, i == 50 ? "" : "h:1", "", GOSSIP_SRC_PEX,
				  i % 2 ? 10 : 1000);
	}
	n = gossip_book_pick_share(b, asker, 1000, 500, 64, &rng, out);
	assert_int_equal(n, 48);
	for (size_t i = 0; i < n; i++) {
		struct gossip_peer *p = gossip_book_at(b, out[i]);

		assert_memory_not_equal(p->id, asker, 32);
		assert_int_equal(p->last_seen, 1000);
		assert_true(p->addr[0] != '\0');
	}
	assert_int_equal(gossip_book_pick_share(b, asker, 1000, 500, 5, &rng, out), 5);
	gossip_book_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_wins),
	    cmocka_unit_test(test_diff),
	    cmocka_unit_test(test_diff_repeated_names),
	    cmocka_unit_test(test_forward),
	    cmocka_unit_test(test_pick),
	    cmocka_unit_test(test_epidemic),
	    cmocka_unit_test(test_book_validation),
	    cmocka_unit_test(test_book_sources),
	    cmocka_unit_test(test_book_backoff),
	    cmocka_unit_test(test_book_full),
	    cmocka_unit_test(test_book_share),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
