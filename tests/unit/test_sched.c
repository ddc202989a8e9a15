/*
 * Unit tests for the scheduler, on a simulated clock. The last tests run a
 * small discrete-event simulation of a site (three members behind one WAN
 * link to an HQ node) with a scheduler per member.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ferry/error.h"
#include "ferry/sched.h"
#include "ferry/util.h"

#define KIB 1024u

/* Deterministic pseudo-random ids: tag picks the family, n the member. */
static void mkid(uint8_t id[32], uint32_t tag, uint32_t n)
{
	uint64_t x = (uint64_t)tag << 32 | n;

	for (int i = 0; i < 32; i++) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		id[i] = (uint8_t)(x >> 56);
	}
}

static struct sched_chunk *mkchunks(uint32_t tag, size_t n, uint32_t len)
{
	struct sched_chunk *c = calloc(n, sizeof(*c));

	for (size_t i = 0; i < n; i++) {
		mkid(c[i].id, tag, (uint32_t)i);
		c[i].len = len;
	}
	return c;
}

/* Index of id in chunks[0..n), or -1. */
static int chunk_index(const struct sched_chunk *chunks, size_t n, const uint8_t id[32])
{
	for (size_t i = 0; i < n; i++)
		if (!memcmp(chunks[i].id, id, 32))
			return (int)i;
	return -1;
}

/* A bitmap with bits [from, to) set. */
static void bits_range(uint8_t *b, size_t nbytes, size_t from, size_t to)
{
	memset(b, 0, nbytes);
	for (size_t i = from; i < to; i++)
		b[i / 8] |= (uint8_t)(1u << (i % 8));
}

static void add_peer(struct sched *s, uint32_t h, uint32_t tag, enum sched_link link, uint64_t now)
{
	uint8_t id[32];

	mkid(id, tag, h);
	assert_int_equal(sched_peer_add(s, h, id, link, now), 0);
}

static struct sched *new_sched(uint64_t seed)
{
	uint8_t self[32];

	mkid(self, 99, 0);
	return sched_new(NULL, self, seed);
}

/* Rarest first: chunks held by fewer peers come first; ties are shuffled by the seed. */
static void test_rarest_first(void **state)
{
	struct sched_chunk *chunks = mkchunks(1, 10, 1000);
	static const size_t held[5] = {10, 10, 8, 5, 2}; /* peer h holds chunks [0, held[h]) */
	int first_of_rarest[64];
	bool differs = false;

	for (uint64_t seed = 0; seed < 64; seed++) {
		struct sched *s = new_sched(seed);
		struct sched_chunk out[16];
		uint8_t bits[2];
		unsigned last = 0;

		assert_int_equal(sched_want(s, 7, chunks, 10, NULL, 0), 0);
		for (uint32_t h = 1; h <= 4; h++) {
			add_peer(s, h, 2, SCHED_LAN, 0);
			bits_range(bits, 2, 0, held[h]);
			assert_int_equal(sched_peer_have(s, h, 7, bits, 10, 0), 0);
		}
		assert_int_equal(sched_next(s, 1, 0, out, 16), 10);
		for (int i = 0; i < 10; i++) {
			struct sched_chunk_info ci;
			int k = chunk_index(chunks, 10, out[i].id);

			assert_true(k >= 0);
			assert_int_equal(sched_chunk_info(s, out[i].id, &ci), 0);
			assert_true(ci.holders >= last);
			last = ci.holders;
			/* holders: chunks 8, 9 have 1, 5..7 have 2, 2..4 have 3, 0, 1 have 4 */
			assert_int_equal(ci.holders, k >= 8 ? 1 : k >= 5 ? 2 : k >= 2 ? 3 : 4);
		}
		first_of_rarest[seed] = chunk_index(chunks, 10, out[0].id);
		if (seed && first_of_rarest[seed] != first_of_rarest[0])
			differs = true;
		sched_free(s);
	}
	assert_true(differs);

	/* The same seed gives the same order. */
	for (int run = 0; run < 2; run++) {
		struct sched *s = new_sched(5);
		struct sched_chunk out[16];
		uint8_t bits[2];

		assert_int_equal(sched_want(s, 7, chunks, 10, NULL, 0), 0);
		for (uint32_t h = 1; h <= 4; h++) {
			add_peer(s, h, 2, SCHED_LAN, 0);
			bits_range(bits, 2, 0, held[h]);
			assert_int_equal(sched_peer_have(s, h, 7, bits, 10, 0), 0);
		}
		assert_int_equal(sched_next(s, 1, 0, out, 16), 10);
		assert_int_equal(chunk_index(chunks, 10, out[0].id), first_of_rarest[5]);
		sched_free(s);
	}
	free(chunks);
}

/* A chunk a LAN peer holds is never asked of a WAN peer. */
static void test_lan_preferred(void **state)
{
	struct sched *s = new_sched(1);
	struct sched_chunk *chunks = mkchunks(3, 10, 1000);
	struct sched_chunk out[16];
	struct sched_reqs cancel = {0};
	uint8_t bits[2];
	bool asked[10] = {0};
	int n;

	assert_int_equal(sched_want(s, 1, chunks, 10, NULL, 0), 0);
	add_peer(s, 0, 4, SCHED_WAN, 0);
	add_peer(s, 1, 4, SCHED_LAN, 0);
	bits_range(bits, 2, 0, 10);
	assert_int_equal(sched_peer_have(s, 0, 1, bits, 10, 0), 0);
	bits_range(bits, 2, 0, 5);
	assert_int_equal(sched_peer_have(s, 1, 1, bits, 10, 0), 0);

	/* The WAN peer gets only chunks 5..9 this node owns in the site split. */
	n = sched_next(s, 0, 0, out, 16);
	assert_true(n >= 0);
	for (int i = 0; i < n; i++) {
		int k = chunk_index(chunks, 10, out[i].id);

		assert_true(k >= 5);
		asked[k] = true;
	}
	for (int k = 5; k < 10; k++) {
		struct sched_chunk_info ci;

		assert_int_equal(sched_chunk_info(s, chunks[k].id, &ci), 0);
		assert_int_equal(asked[k], ci.mine);
		if (asked[k])
			assert_int_equal(sched_chunk_done(s, 0, chunks[k].id, 100, &cancel), 0);
	}
	assert_int_equal(cancel.n, 0);

	/* The other member fetched nothing for a long time: its share comes to us, LAN chunks
	 * don't. */
	assert_int_equal(sched_tick(s, 600000, &cancel), 0);
	n = sched_next(s, 0, 600000, out, 16);
	for (int i = 0; i < n; i++) {
		int k = chunk_index(chunks, 10, out[i].id);

		assert_true(k >= 5);
		assert_false(asked[k]);
		asked[k] = true;
	}
	for (int k = 5; k < 10; k++)
		assert_true(asked[k]);
	/* The LAN peer gets 0..4. */
	assert_int_equal(sched_next(s, 1, 600000, out, 16), 5);
	for (int i = 0; i < 5; i++)
		assert_true(chunk_index(chunks, 10, out[i].id) < 5);
	sched_reqs_free(&cancel);
	sched_free(s);
	free(chunks);
}

/*
 * One WAN peer behind a link of rate R and round-trip T: the window grows to
 * gain x R x T and bytes in flight never exceed it (nor the initial window
 * before the first measurement).
 */
/* A scheduler with params p wanting chunks[0..n) as version 1, and WAN peer 0 (tag) holding them
 * all. */
static struct sched *one_holder(const struct sched_params *p, const struct sched_chunk *chunks,
				size_t n, uint32_t tag)
{
	uint8_t self[32], *bits = calloc(n / 8 + 1, 1);
	struct sched *s;

	mkid(self, 99, 0);
	s = sched_new(p, self, 1);
	assert_int_equal(sched_want(s, 1, chunks, n, NULL, 0), 0);
	add_peer(s, 0, tag, SCHED_WAN, 0);
	bits_range(bits, n / 8 + 1, 0, n);
	assert_int_equal(sched_peer_have(s, 0, 1, bits, n, 0), 0);
	free(bits);
	return s;
}

/*
 * A WAN peer sends two chunks at once (its lanes), each at half its rate,
 * reporting data as it comes: the measured rate stays the peer's rate,
 * though the two chunks of a pair end a few ms apart.
 */
static void test_rate_lanes(void **state)
{
	const uint32_t rate = 500 * 1000, len = 256 * KIB, frame = 16 * KIB; /* bytes/s */
	const size_t n = 400;
	struct sched_params p;
	struct sched_chunk *chunks = mkchunks(7, n, len);
	struct sched *s;
	struct sched_chunk out[64];
	struct sched_peer_info pi;
	int queue[400], lane[2] = {-1, -1};
	uint32_t sent[2] = {0, 0}, reported[2] = {0, 0};
	size_t qh = 0, qt = 0, done = 0;
	double max_rate = 0;

	(void)state;
	sched_params_default(&p);
	s = one_holder(&p, chunks, n, 8);
	assert_int_equal(sched_peer_rtt(s, 0, 200000, 0), 0);
	/* 1 ms steps; each lane moves rate / 2 bytes a second, lane 1 a frame behind lane 0. */
	for (uint64_t ms = 0; done < n && ms < 3600 * 1000; ms++) {
		int k = sched_next(s, 0, ms, out, 64);

		assert_true(k >= 0);
		for (int i = 0; i < k; i++)
			queue[qt++] = chunk_index(chunks, n, out[i].id);
		for (int l = 0; l < 2; l++) {
			uint32_t upto;

			if (lane[l] < 0 && qh < qt && (l == 0 || ms >= frame * 2000ull / rate)) {
				lane[l] = queue[qh++];
				sent[l] = reported[l] = 0;
			}
			if (lane[l] < 0)
				continue;
			sent[l] = MIN(len, sent[l] + rate / 2000);
			/* Data is reported a whole frame at a time, as it arrives. */
			upto = sent[l] == len ? len : sent[l] / frame * frame;
			if (upto > reported[l]) {
				assert_int_equal(sched_chunk_progress(s, 0, chunks[lane[l]].id,
								      upto - reported[l], ms),
						 0);
				reported[l] = upto;
			}
			if (sent[l] == len) {
				assert_int_equal(
				    sched_chunk_done(s, 0, chunks[lane[l]].id, ms, NULL), 0);
				lane[l] = -1;
				done++;
				assert_int_equal(sched_peer_info(s, 0, &pi), 0);
				if (done > 20)
					max_rate = MAX(max_rate, (double)pi.rate_bps / 8);
			}
		}
	}
	assert_int_equal(done, n);
	assert_int_equal(sched_peer_info(s, 0, &pi), 0);
	assert_true(pi.rate_bps >= 0.9 * rate * 8 && pi.rate_bps <= 1.1 * rate * 8);
	assert_true(max_rate <= 1.25 * rate);
	sched_free(s);
	free(chunks);
}

/*
 * A peer serving over four connections may have five requests however small
 * its window in bytes; one connection keeps the minimum of two.
 */
static void test_streams(void **state)
{
	const size_t n = 64;
	struct sched_params p;
	struct sched_chunk *chunks = mkchunks(9, n, 256 * KIB);
	struct sched *s;
	struct sched_chunk out[64];
	struct sched_peer_info pi;

	(void)state;
	sched_params_default(&p);
	p.init_window_bytes = 1;
	s = one_holder(&p, chunks, n, 10);
	assert_int_equal(sched_next(s, 0, 0, out, 64), 2);
	assert_int_equal(sched_next(s, 0, 0, out, 64), 0);
	assert_int_equal(sched_peer_info(s, 0, &pi), 0);
	assert_int_equal(pi.streams, 1);
	assert_int_equal(sched_peer_streams(s, 0, 4), 0);
	assert_int_equal(sched_next(s, 0, 1, out, 64), 3);
	assert_int_equal(sched_peer_info(s, 0, &pi), 0);
	assert_int_equal(pi.streams, 4);
	assert_int_equal(pi.requests, 5);
	assert_int_equal(sched_peer_streams(s, 7, 4), FERRY_ENOENT);
	sched_free(s);
	free(chunks);
}

static void test_window_bdp(void **state)
{
	const double rate = 1250000, rtt_us = 200000; /* 10 Mbit/s, 200 ms */
	const size_t n = 3000;
	struct sched_params p;
	struct sched_chunk *chunks = mkchunks(5, n, 64 * KIB);
	struct sched *s;
	struct sched_chunk out[64];
	uint64_t *arrive = calloc(n, sizeof(*arrive)), server_free = 0, t = 0;
	int *queue = calloc(n, sizeof(*queue)); /* indices in order of arrival */
	size_t qh = 0, qt = 0, done = 0;
	double limit = 2 * rate * rtt_us / 1e6;
	struct sched_peer_info pi;
	uint64_t max_after = 0;

	sched_params_default(&p);
	p.init_window_bytes = 128 * KIB;
	s = one_holder(&p, chunks, n, 6);
	assert_int_equal(sched_peer_rtt(s, 0, (uint32_t)rtt_us, 0), 0);

	for (;;) {
		int k = sched_next(s, 0, t / 1000, out, 64);

		assert_true(k >= 0);
		for (int i = 0; i < k; i++) {
			int c = chunk_index(chunks, n, out[i].id);
			uint64_t start = MAX(server_free, t + (uint64_t)rtt_us / 2);

			server_free = start + (uint64_t)(out[i].len * 1e6 / rate);
			arrive[c] = server_free + (uint64_t)rtt_us / 2;
			queue[qt++] = c;
		}
		assert_int_equal(sched_peer_info(s, 0, &pi), 0);
		if (pi.rate_bps && !max_after) {
			/* The first sample came from an idle pipe: the RTT is not in it. */
			assert_true(pi.rate_bps >= 0.95 * rate * 8 &&
				    pi.rate_bps <= 1.05 * rate * 8);
		}
		if (pi.rate_bps)
			max_after = MAX(max_after, pi.inflight_bytes);
		else
			assert_true(pi.inflight_bytes <= 128 * KIB);
		if (qh == qt)
			break;
		t = arrive[queue[qh]];
		assert_int_equal(sched_chunk_done(s, 0, chunks[queue[qh]].id, t / 1000, NULL), 0);
		qh++;
		done++;
		if (done == n / 2) {
			/* Half-way: the window has grown to the BDP and the rate is measured. */
			assert_true(pi.window_bytes >= 0.8 * limit);
			assert_true(pi.rate_bps >= 0.95 * rate * 8 &&
				    pi.rate_bps <= 1.05 * rate * 8);
		}
	}
	assert_int_equal(done, n);
	/* ms clock granularity can make a 52 ms chunk look 2% faster: allow 5%. */
	assert_true(max_after <= 1.05 * limit);
	assert_true(max_after >= 0.8 * limit);

	/* The node reconnects within a minute: rate, RTT and window carry over. */
	{
		struct sched_peer_info back;
		uint64_t ms = t / 1000;

		assert_int_equal(sched_peer_info(s, 0, &pi), 0);
		assert_int_equal(sched_peer_remove(s, 0, ms), 0);
		add_peer(s, 0, 6, SCHED_WAN, ms + 1000);
		assert_int_equal(sched_peer_info(s, 0, &back), 0);
		assert_true(back.rate_bps == pi.rate_bps && back.rtt_us == pi.rtt_us);
		assert_true(back.window_bytes == pi.window_bytes && back.window_bytes > 128 * KIB);
		/* After longer it starts afresh. */
		assert_int_equal(sched_peer_remove(s, 0, ms + 2000), 0);
		add_peer(s, 0, 6, SCHED_WAN, ms + 2000 + 60001);
		assert_int_equal(sched_peer_info(s, 0, &back), 0);
		assert_true(back.rate_bps == 0 && back.window_bytes == 128 * KIB);
	}
	sched_free(s);
	free(chunks);
	free(arrive);
	free(queue);
}

/* A request without progress for its stall time is taken away and asked of another peer. */
static void test_stall_reissue(void **state)
{
	struct sched *s = new_sched(2);
	struct sched_chunk *chunks = mkchunks(7, 2, 1000);
	struct sched_chunk out[4];
	struct sched_reqs cancel = {0};
	struct sched_peer_info pi;
	uint8_t bits[1] = {0x3};

	assert_int_equal(sched_want(s, 1, chunks, 2, NULL, 0), 0);
	add_peer(s, 0, 8, SCHED_WAN, 0);
	add_peer(s, 1, 8, SCHED_WAN, 0);
	assert_int_equal(sched_peer_have(s, 0, 1, bits, 2, 0), 0);
	assert_int_equal(sched_peer_have(s, 1, 1, bits, 2, 0), 0);
	assert_int_equal(sched_next(s, 0, 0, out, 4), 2);

	/* Chunk 0 keeps trickling in; chunk 1 makes no progress. Stall time: 3 s. */
	for (uint64_t t = 1000; t < 2999; t += 1000) {
		assert_int_equal(sched_chunk_progress(s, 0, chunks[0].id, 100, t), 0);
		assert_int_equal(sched_tick(s, t, &cancel), 0);
	}
	assert_int_equal(sched_tick(s, 2999, &cancel), 0);
	assert_int_equal(sched_tick(s, 3000, &cancel), 1);
	assert_int_equal(cancel.n, 1);
	assert_int_equal(cancel.v[0].peer, 0);
	assert_memory_equal(cancel.v[0].id, chunks[1].id, 32);

	/* Peer 0 is not asked for it again; peer 1 is. */
	assert_int_equal(sched_next(s, 0, 3000, out, 4), 0);
	assert_int_equal(sched_next(s, 1, 3000, out, 4), 1);
	assert_memory_equal(out[0].id, chunks[1].id, 32);
	assert_int_equal(sched_peer_info(s, 0, &pi), 0);
	assert_int_equal(pi.stalls, 1);
	assert_int_equal(pi.requests, 1);

	cancel.n = 0;
	assert_int_equal(sched_chunk_done(s, 1, chunks[1].id, 3500, &cancel), 0);
	assert_int_equal(cancel.n, 0); /* peer 0's copy was cancelled already */
	/* Peer 0 is still working on chunk 0 at 4 s: no stall. */
	assert_int_equal(sched_tick(s, 4000, &cancel), 0);
	sched_free(s);

	/* The only holder is not asked again: its request waits until someone else has it. */
	cancel.n = 0;
	s = new_sched(2);
	assert_int_equal(sched_want(s, 1, chunks, 1, NULL, 0), 0);
	add_peer(s, 0, 8, SCHED_WAN, 0);
	assert_int_equal(sched_peer_have(s, 0, 1, bits, 1, 0), 0);
	assert_int_equal(sched_next(s, 0, 0, out, 4), 1);
	assert_int_equal(sched_tick(s, 600000, &cancel), 0);
	assert_int_equal(cancel.n, 0);
	add_peer(s, 1, 8, SCHED_WAN, 600000);
	assert_int_equal(sched_peer_have(s, 1, 1, bits, 1, 600000), 0);
	assert_int_equal(sched_tick(s, 601000, &cancel), 1);
	assert_int_equal(cancel.n, 1);
	assert_int_equal(sched_next(s, 1, 601000, out, 4), 1);
	sched_reqs_free(&cancel);
	sched_free(s);
	free(chunks);
}

/* End-game: duplicates go to LAN peers; WAN peers get one only for a stalled request. */
static void test_endgame(void **state)
{
	struct sched *s = new_sched(3);
	struct sched_chunk *chunks = mkchunks(9, 2, 1000);
	struct sched_chunk out[4];
	struct sched_reqs cancel = {0};
	uint8_t bits[1] = {0x3};

	assert_int_equal(sched_want(s, 1, chunks, 2, NULL, 0), 0);
	add_peer(s, 1, 10, SCHED_LAN, 0);
	add_peer(s, 2, 10, SCHED_LAN, 0);
	assert_int_equal(sched_peer_have(s, 1, 1, bits, 2, 0), 0);
	assert_int_equal(sched_peer_have(s, 2, 1, bits, 2, 0), 0);
	assert_int_equal(sched_next(s, 1, 0, out, 1), 1);
	/* Chunk left that nobody was asked for: peer 2 gets it, not a duplicate. */
	assert_int_equal(sched_next(s, 2, 0, out + 1, 1), 1);
	assert_memory_not_equal(out[0].id, out[1].id, 32);
	/* Everything in flight: each LAN peer gets the other's chunk as a duplicate. */
	assert_int_equal(sched_next(s, 2, 0, out + 2, 2), 1);
	assert_memory_equal(out[2].id, out[0].id, 32);
	assert_int_equal(sched_next(s, 1, 0, out + 3, 2), 1);
	assert_memory_equal(out[3].id, out[1].id, 32);
	assert_int_equal(sched_next(s, 1, 0, out, 2), 0);

	/* The first copy to arrive wins; the other request is to be cancelled. */
	assert_int_equal(sched_chunk_done(s, 1, out[0].id, 10, &cancel), 0);
	assert_int_equal(cancel.n, 1);
	assert_int_equal(cancel.v[0].peer, 2);
	assert_memory_equal(cancel.v[0].id, out[0].id, 32);
	sched_free(s);

	/* WAN only. */
	cancel.n = 0;
	s = new_sched(3);
	assert_int_equal(sched_want(s, 1, chunks, 1, NULL, 0), 0);
	add_peer(s, 1, 11, SCHED_WAN, 0);
	add_peer(s, 2, 11, SCHED_WAN, 0);
	assert_int_equal(sched_peer_have(s, 1, 1, bits, 1, 0), 0);
	assert_int_equal(sched_peer_have(s, 2, 1, bits, 1, 0), 0);
	assert_int_equal(sched_next(s, 1, 0, out, 2), 1);
	assert_int_equal(sched_next(s, 2, 0, out, 2), 0);
	assert_int_equal(sched_chunk_progress(s, 1, chunks[0].id, 300, 500), 0);
	assert_int_equal(sched_tick(s, 3499, &cancel), 0);
	assert_int_equal(sched_next(s, 2, 3499, out, 2), 0);
	assert_int_equal(sched_tick(s, 3500, &cancel), 1);
	assert_int_equal(cancel.n, 0); /* it had data: left to race */
	assert_int_equal(sched_next(s, 2, 3500, out, 2), 1);
	assert_int_equal(sched_chunk_done(s, 2, chunks[0].id, 4000, &cancel), 0);
	assert_int_equal(cancel.n, 1);
	assert_int_equal(cancel.v[0].peer, 1);
	sched_reqs_free(&cancel);
	sched_free(s);
	free(chunks);
}

/*
 * WAN end-game: once everything is in flight, a WAN peer that is delivering
 * gets a duplicate of a chunk queued at a WAN peer that would take more than
 * twice as long, not one at a peer less than twice as slow, and not while it
 * has sent nothing for a while (a blackhole).
 *
 * Setup: chunk out[0] waits at peer 2 (no rate measured: the 1 Mbit/s guess,
 * 256 KiB + 200 ms RTT ≈ 2.3 s); peer 1 delivers the other three at time
 * `at` ms, which measures its rate over at - 200 ms.
 */
static struct sched *endgame_wan_setup(struct sched_chunk *chunks, struct sched_chunk out[4],
				       uint64_t at)
{
	struct sched *s = new_sched(4);
	struct sched_reqs cancel = {0};
	uint8_t bits[1] = {0xf};

	assert_int_equal(sched_want(s, 1, chunks, 4, NULL, 0), 0);
	add_peer(s, 1, 12, SCHED_WAN, 0);
	add_peer(s, 2, 12, SCHED_WAN, 0);
	assert_int_equal(sched_peer_have(s, 1, 1, bits, 4, 0), 0);
	assert_int_equal(sched_peer_have(s, 2, 1, bits, 4, 0), 0);
	assert_int_equal(sched_peer_rtt(s, 1, 200000, 0), 0);
	assert_int_equal(sched_peer_rtt(s, 2, 200000, 0), 0);
	assert_int_equal(sched_next(s, 2, 0, out, 1), 1);
	assert_int_equal(sched_next(s, 1, 0, out + 1, 3), 3);
	for (int i = 1; i < 4; i++)
		assert_int_equal(sched_chunk_done(s, 1, out[i].id, at, &cancel), 0);
	assert_int_equal(cancel.n, 0);
	sched_reqs_free(&cancel);
	return s;
}

/*
 * A WAN peer far slower than the fastest WAN peer (a node of another site,
 * two WAN links away) is not asked for chunks the fastest holds while the
 * fastest delivers; once the fastest has been silent for stall_min_ms it is,
 * and so it is for a chunk that just stalled at the fastest.
 */
static void test_wan_slow_peer(void **state)
{
	struct sched_chunk *chunks = mkchunks(17, 40, 256 * KIB);
	struct sched_chunk out[8];
	struct sched_reqs cancel = {0};
	struct sched *s = new_sched(9);
	uint8_t bits[5];
	int n;

	(void)state;
	assert_int_equal(sched_want(s, 1, chunks, 40, NULL, 0), 0);
	bits_range(bits, 5, 0, 40);
	for (uint32_t h = 1; h <= 2; h++) {
		add_peer(s, h, 20 + h, SCHED_WAN, 0);
		assert_int_equal(sched_peer_have(s, h, 1, bits, 40, 0), 0);
		assert_int_equal(sched_peer_rtt(s, h, 200000, 0), 0);
	}
	/* Peer 2 delivers one chunk in 3 s (87 kB/s), peer 1 a window every second in 0.5 s. */
	assert_int_equal(sched_next(s, 2, 0, out, 1), 1);
	assert_int_equal(sched_chunk_done(s, 2, out[0].id, 3000, &cancel), 0);
	for (uint64_t t = 0; t < 3000; t += 1000) {
		n = sched_next(s, 1, t, out, 4);
		assert_true(n > 0);
		for (int i = 0; i < n; i++)
			assert_int_equal(sched_chunk_done(s, 1, out[i].id, t + 500, &cancel), 0);
	}
	assert_int_equal(cancel.n, 0);
	/* Peer 1 delivered at 3000: peer 2 gets nothing, peer 1 more. */
	assert_int_equal(sched_next(s, 2, 3100, out, 4), 0);
	n = sched_next(s, 1, 3100, out, 4);
	assert_true(n > 1);
	/*
	 * Peer 1 sends data of out[1] but none of out[0], which stalls there:
	 * peer 1 is still the fastest but is not asked for out[0] again, so
	 * peer 2 is, and only for that one.
	 */
	assert_int_equal(sched_chunk_progress(s, 1, out[1].id, 1000, 5000), 0);
	assert_int_equal(sched_chunk_progress(s, 1, out[1].id, 1000, 6000), 0);
	assert_int_equal(sched_tick(s, 6100, &cancel), 1);
	assert_int_equal(cancel.n, 1);
	assert_memory_equal(cancel.v[0].id, out[0].id, 32);
	assert_int_equal(sched_next(s, 2, 6100, out + n, 4), 1);
	assert_memory_equal(out[n].id, out[0].id, 32);
	/* Peer 1 silent for longer than stall_min_ms: peer 2 is asked for the rest too. */
	assert_int_equal(sched_next(s, 2, 6400, out + n, 4), 0);
	assert_true(sched_next(s, 2, 6000 + 3001, out + n, 4) > 0);
	sched_reqs_free(&cancel);
	sched_free(s);
	free(chunks);
}

/*
 * A request with no data at a WAN peer that delivered before and has sent
 * nothing since, for quiet_ms (stall_min_ms here), is raced by an idle peer
 * even though the estimates say it would win: its measured rate no longer
 * tells when the chunk will come.
 */
static void endgame_wan_quiet(void)
{
	struct sched_chunk *chunks = mkchunks(19, 4, 256 * KIB);
	struct sched_chunk out[4], dup[4];
	struct sched_reqs cancel = {0};
	struct sched *s = new_sched(4);
	uint8_t bits[1] = {0xf};

	assert_int_equal(sched_want(s, 1, chunks, 4, NULL, 0), 0);
	for (uint32_t h = 1; h <= 2; h++) {
		add_peer(s, h, 12, SCHED_WAN, 0);
		assert_int_equal(sched_peer_have(s, h, 1, bits, 4, 0), 0);
		assert_int_equal(sched_peer_rtt(s, h, 200000, 0), 0);
	}
	assert_int_equal(sched_next(s, 2, 0, out, 2), 2);
	assert_int_equal(sched_next(s, 1, 0, out + 2, 2), 2);
	/* Peer 2: a chunk in 0.5 s, then nothing; peer 1: two in 3.3 s. */
	assert_int_equal(sched_chunk_done(s, 2, out[1].id, 500, &cancel), 0);
	assert_int_equal(sched_chunk_done(s, 1, out[2].id, 3300, &cancel), 0);
	assert_int_equal(sched_chunk_done(s, 1, out[3].id, 3300, &cancel), 0);
	assert_int_equal(cancel.n, 0);
	assert_int_equal(sched_next(s, 1, 3400, dup, 4), 0);
	assert_int_equal(sched_next(s, 1, 3501, dup, 4), 1);
	assert_memory_equal(dup[0].id, out[0].id, 32);
	sched_reqs_free(&cancel);
	sched_free(s);
	free(chunks);
}

static void test_endgame_wan(void **state)
{
	struct sched_chunk *chunks = mkchunks(13, 4, 256 * KIB);
	struct sched_chunk out[4], dup[4];
	struct sched_reqs cancel = {0};
	struct sched *s;

	/* Peer 1 at ≈ 2 MB/s: one more chunk in ≈ 0.33 s, against ≈ 2.3 s. */
	s = endgame_wan_setup(chunks, out, 600);
	assert_int_equal(sched_next(s, 1, 600, dup, 4), 1);
	assert_memory_equal(dup[0].id, out[0].id, 32);
	assert_int_equal(sched_next(s, 1, 600, dup, 4), 0); /* one duplicate per chunk */
	assert_int_equal(sched_next(s, 2, 600, dup, 4), 0);
	assert_int_equal(sched_chunk_done(s, 1, out[0].id, 800, &cancel), 0);
	assert_int_equal(cancel.n, 1);
	assert_int_equal(cancel.v[0].peer, 2);
	assert_memory_equal(cancel.v[0].id, out[0].id, 32);
	sched_free(s);

	/*
	 * The same, but peer 1 has sent nothing for longer than stall_min_ms:
	 * idle, its rate still stands for 30 s, then no longer.
	 */
	s = endgame_wan_setup(chunks, out, 600);
	assert_int_equal(sched_next(s, 1, 600 + 3001, dup, 4), 1);
	assert_memory_equal(dup[0].id, out[0].id, 32);
	sched_free(s);
	s = endgame_wan_setup(chunks, out, 600);
	assert_int_equal(sched_next(s, 1, 600 + 30001, dup, 4), 0);
	sched_free(s);

	/*
	 * Peer 2 sent 16 KiB of its chunk in 3.6 s: at that pace the rest takes
	 * 54 s, and idle peer 1 races it. With 240 KiB in, the rest takes 0.24
	 * s, less than twice peer 1's 0.33 s: no race.
	 */
	s = endgame_wan_setup(chunks, out, 600);
	assert_int_equal(sched_chunk_progress(s, 2, out[0].id, 16 * KIB, 3000), 0);
	assert_int_equal(sched_next(s, 1, 3601, dup, 4), 1);
	assert_memory_equal(dup[0].id, out[0].id, 32);
	sched_free(s);
	s = endgame_wan_setup(chunks, out, 600);
	assert_int_equal(sched_chunk_progress(s, 2, out[0].id, 240 * KIB, 3000), 0);
	assert_int_equal(sched_next(s, 1, 3601, dup, 4), 0);
	sched_free(s);

	/* Peer 1 at ≈ 230 kB/s: ≈ 1.3 s a chunk, more than half of 2.3 s. */
	s = endgame_wan_setup(chunks, out, 3600);
	assert_int_equal(sched_next(s, 1, 3600, dup, 4), 0);
	sched_free(s);
	sched_reqs_free(&cancel);
	free(chunks);
	endgame_wan_quiet();
}

/*
 * Version 1 of chunks[0..n) wanted, two WAN peers (0 and 1) holding all of
 * it, and each asked for per chunks: out[0..per) of peer 0, out[per..2 per)
 * of peer 1.
 */
static void two_wan_peers(struct sched *s, const struct sched_chunk *chunks, size_t n, uint32_t tag,
			  struct sched_chunk *out, size_t per)
{
	uint8_t bits[1] = {(uint8_t)((1u << n) - 1)};

	assert_int_equal(sched_want(s, 1, chunks, n, NULL, 0), 0);
	for (uint32_t h = 0; h < 2; h++) {
		add_peer(s, h, tag, SCHED_WAN, 0);
		assert_int_equal(sched_peer_have(s, h, 1, bits, n, 0), 0);
	}
	assert_int_equal(sched_next(s, 0, 0, out, per), (int)per);
	assert_int_equal(sched_next(s, 1, 0, out + per, per), (int)per);
}

/*
 * One WAN flow going quiet while the other WAN peers have nothing in flight
 * is not our link down: it may be one starved flow (the last chunk of a
 * swarm run, trickling in from the other site). Its request stalls as ever,
 * and the idle peer that delivered lately may race it.
 */
static void test_lone_flow_stalls(void **state)
{
	struct sched_chunk *chunks = mkchunks(16, 2, 1000);
	struct sched_chunk out[2];
	struct sched_reqs cancel = {0};
	struct sched *s = new_sched(6);

	(void)state;
	two_wan_peers(s, chunks, 2, 16, out, 1);
	assert_int_equal(sched_chunk_progress(s, 0, out[0].id, 10, 500), 0);
	assert_int_equal(sched_chunk_done(s, 1, out[1].id, 500, &cancel), 0);
	assert_int_equal(sched_tick(s, 3000, &cancel), 0);
	assert_int_equal(sched_tick(s, 4000, &cancel), 1);
	sched_reqs_free(&cancel);
	sched_free(s);
	free(chunks);
}

/*
 * Our own WAN link down: two WAN peers that were sending both go silent. No
 * request stalls (asking the other would only fetch it twice once the link
 * is back) until the owner timeout; when data flows again each request has
 * a full stall time to resume in.
 */
static void test_wan_silent_no_stall(void **state)
{
	struct sched_chunk *chunks = mkchunks(14, 4, 1000);
	struct sched_chunk out[4];
	struct sched_reqs cancel = {0};
	struct sched *s;

	for (int cap = 0; cap < 2; cap++) {
		s = new_sched(5);
		two_wan_peers(s, chunks, 4, 15, out, 2);
		/* out[0] and out[2] get data at 500 ms, then nothing (stall time 3 s). */
		assert_int_equal(sched_chunk_progress(s, 0, out[0].id, 10, 500), 0);
		assert_int_equal(sched_chunk_progress(s, 1, out[2].id, 10, 500), 0);
		if (cap) {
			/* Silent past the owner timeout (≈ 10.6 s): stalls again. */
			assert_int_equal(sched_tick(s, 500 + 10700, &cancel), 4);
			sched_free(s);
			continue;
		}
		assert_int_equal(sched_tick(s, 4000, &cancel), 0);
		assert_int_equal(sched_tick(s, 8000, &cancel), 0);
		assert_int_equal(cancel.n, 0);
		/* The link is back at 9 s: three more seconds for everyone. */
		for (uint64_t t = 9000; t < 12000; t += 500) {
			assert_int_equal(sched_chunk_progress(s, 0, out[0].id, 10, t), 0);
			assert_int_equal(sched_tick(s, t, &cancel), 0);
		}
		assert_int_equal(sched_tick(s, 11999, &cancel), 0);
		/* The three that got nothing since the link came back. */
		assert_int_equal(sched_tick(s, 12000, &cancel), 3);
		assert_int_equal(cancel.n, 2); /* out[2] had data: it races on */
		sched_free(s);
	}
	sched_reqs_free(&cancel);
	free(chunks);
}

/* A stalled request that had data races on, and is abandoned after four more stall times. */
static void test_abandon(void **state)
{
	struct sched *s = new_sched(4);
	struct sched_chunk *chunks = mkchunks(12, 1, 1000);
	struct sched_chunk out[2];
	struct sched_reqs cancel = {0};
	uint8_t bits[1] = {0x1};

	assert_int_equal(sched_want(s, 1, chunks, 1, NULL, 0), 0);
	add_peer(s, 1, 13, SCHED_WAN, 0);
	add_peer(s, 2, 13, SCHED_WAN, 0);
	assert_int_equal(sched_peer_have(s, 1, 1, bits, 1, 0), 0);
	assert_int_equal(sched_peer_have(s, 2, 1, bits, 1, 0), 0);
	assert_int_equal(sched_next(s, 1, 0, out, 2), 1);
	assert_int_equal(sched_chunk_progress(s, 1, chunks[0].id, 10, 0), 0);
	assert_int_equal(sched_tick(s, 3000, &cancel), 1);
	assert_int_equal(cancel.n, 0);
	assert_int_equal(sched_next(s, 1, 3000, out, 2), 0); /* not again from the same peer */
	assert_int_equal(sched_next(s, 2, 3000, out, 2), 1);
	for (uint64_t t = 4000; t < 15000; t += 1000) {
		assert_int_equal(sched_chunk_progress(s, 2, chunks[0].id, 10, t), 0);
		assert_int_equal(sched_tick(s, t, &cancel), 0);
	}
	assert_int_equal(sched_tick(s, 14999, &cancel), 0);
	assert_int_equal(cancel.n, 0);
	assert_int_equal(sched_tick(s, 15000, &cancel), 0);
	assert_int_equal(cancel.n, 1);
	assert_int_equal(cancel.v[0].peer, 1);
	sched_reqs_free(&cancel);
	sched_free(s);
	free(chunks);
}

/* A resumed chunk that failed its check: asked again, no offence counted. */
static void test_chunk_abandon(void **state)
{
	struct sched *s = new_sched(6);
	struct sched_chunk *chunks = mkchunks(16, 1, 1000);
	struct sched_chunk out[2];
	struct sched_verdict v;
	uint8_t bits[1] = {1};

	(void)state;
	assert_int_equal(sched_want(s, 1, chunks, 1, NULL, 0), 0);
	add_peer(s, 1, 17, SCHED_WAN, 0);
	assert_int_equal(sched_peer_have(s, 1, 1, bits, 1, 0), 0);
	assert_int_equal(sched_next(s, 1, 0, out, 2), 1);
	assert_int_equal(sched_next(s, 1, 0, out, 2), 0);
	assert_int_equal(sched_chunk_abandon(s, 1, chunks[0].id), 0);
	assert_int_equal(sched_next(s, 1, 10, out, 2), 1);
	assert_memory_equal(out[0].id, chunks[0].id, 32);
	assert_int_equal(sched_chunk_bad(s, 1, chunks[0].id, 20, &v), 0);
	assert_int_equal(v.offences, 1);
	assert_int_equal(sched_chunk_abandon(s, 9, chunks[0].id), FERRY_ENOENT);
	sched_free(s);
	free(chunks);
}

static void test_bad_chunk_bans(void **state)
{
	struct sched *s = new_sched(5);
	struct sched_chunk *chunks = mkchunks(14, 1, 1000);
	struct sched_chunk out[2];
	struct sched_verdict v;
	uint8_t node[32], bits[1] = {1};
	uint64_t t = 0;

	mkid(node, 15, 1);
	assert_int_equal(sched_want(s, 1, chunks, 1, NULL, 0), 0);
	add_peer(s, 2, 15, SCHED_WAN, 0); /* another holder */
	assert_int_equal(sched_peer_have(s, 2, 1, bits, 1, 0), 0);
	for (int round = 0; round < 2; round++) {
		for (int i = 1; i <= 3; i++) {
			assert_int_equal(sched_peer_add(s, 1, node, SCHED_WAN, t), 0);
			assert_int_equal(sched_peer_have(s, 1, 1, bits, 1, t), 0);
			assert_int_equal(sched_next(s, 1, t, out, 2), 1);
			assert_int_equal(sched_chunk_bad(s, 1, chunks[0].id, t, &v), 0);
			assert_int_equal(v.offences, i);
			/* The chunk is free again, for the other holder. */
			assert_int_equal(sched_next(s, 2, t, out, 2), 1);
			assert_int_equal(sched_peer_remove(s, 2, t), 0);
			add_peer(s, 2, 15, SCHED_WAN, t);
			assert_int_equal(sched_peer_have(s, 2, 1, bits, 1, t), 0);
			if (i < 3) {
				assert_int_equal(v.action, SCHED_DROP);
				assert_int_equal(v.ban_until, 0);
			} else {
				/* 10 min, then 20 min. */
				assert_int_equal(v.action, SCHED_BAN);
				assert_int_equal(v.ban_until, t + (600000ull << round));
			}
			assert_int_equal(sched_peer_remove(s, 1, t), 0);
			t += 1000;
		}
		t -= 1000;
		assert_int_equal(sched_banned_until(s, node, t + 1), t + (600000ull << round));
		assert_int_equal(sched_peer_add(s, 1, node, SCHED_WAN, t + 1), FERRY_EPERM);
		assert_non_null(strstr(ferry_errmsg(FERRY_EPERM), "banned"));
		t += 600000ull << round;
		assert_int_equal(sched_banned_until(s, node, t), 0);
	}

	/* Offences further apart than the period do not add up. */
	for (int i = 0; i < 4; i++) {
		assert_int_equal(sched_peer_add(s, 1, node, SCHED_WAN, t), 0);
		assert_int_equal(sched_chunk_bad(s, 1, chunks[0].id, t, &v), 0);
		assert_int_equal(v.action, SCHED_DROP);
		assert_int_equal(v.offences, 1);
		assert_int_equal(sched_peer_remove(s, 1, t), 0);
		t += 3600ull * 1000;
	}
	/* After a clean week the next ban is the first one again. */
	t += 7ull * 24 * 3600 * 1000;
	assert_int_equal(sched_peer_add(s, 1, node, SCHED_WAN, t), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(sched_chunk_bad(s, 1, chunks[0].id, t, &v), 0);
	assert_int_equal(v.action, SCHED_BAN);
	assert_int_equal(v.ban_until, t + 600000);
	sched_free(s);
	free(chunks);
}

/* Three members, each with its own scheduler, HQ over the WAN holding everything. */
struct site {
	struct sched *s[3];
	uint8_t member[3][32];
	struct sched_chunk *chunks;
	size_t n;
};

static void site_init(struct site *st, size_t n, uint32_t len)
{
	uint8_t hq[32], *bits = calloc(n / 8 + 1, 1);

	mkid(hq, 20, 0);
	st->n = n;
	st->chunks = mkchunks(21, n, len);
	bits_range(bits, n / 8 + 1, 0, n);
	for (int i = 0; i < 3; i++)
		mkid(st->member[i], 22, (uint32_t)i);
	for (int i = 0; i < 3; i++) {
		struct sched_params p;

		sched_params_default(&p);
		p.max_window_reqs = 1u << 20;
		p.init_window_bytes = p.max_window_bytes = 1ull << 40;
		st->s[i] = sched_new(&p, st->member[i], (uint64_t)i);
		assert_int_equal(sched_want(st->s[i], 1, st->chunks, n, NULL, 0), 0);
		assert_int_equal(sched_peer_add(st->s[i], 0, hq, SCHED_WAN, 0), 0);
		assert_int_equal(sched_peer_have(st->s[i], 0, 1, bits, n, 0), 0);
		for (int j = 0; j < 3; j++)
			if (j != i)
				assert_int_equal(sched_peer_add(st->s[i], (uint32_t)(j + 1),
								st->member[j], SCHED_LAN, 0),
						 0);
	}
	free(bits);
}

static void site_free(struct site *st)
{
	for (int i = 0; i < 3; i++)
		sched_free(st->s[i]);
	free(st->chunks);
}

/* Which member owns chunk k, as every scheduler sees it: exactly one says mine. */
static int site_owner(struct site *st, size_t k, int live)
{
	int owner = -1;

	for (int i = 0; i < live; i++) {
		struct sched_chunk_info ci;

		assert_int_equal(sched_chunk_info(st->s[i], st->chunks[k].id, &ci), 0);
		if (ci.mine) {
			assert_int_equal(owner, -1);
			owner = i;
		}
		assert_true(ci.wan_ok == ci.mine);
	}
	assert_true(owner >= 0);
	return owner;
}

static void test_site_split(void **state)
{
	struct site st;
	const size_t n = 3000;
	int *owner = calloc(n, sizeof(*owner));
	size_t share[3] = {0}, moved[2] = {0};
	struct sched_chunk *out = calloc(n, sizeof(*out));
	int k;

	site_init(&st, n, 1000);
	for (size_t c = 0; c < n; c++) {
		owner[c] = site_owner(&st, c, 3);
		share[owner[c]]++;
	}
	for (int i = 0; i < 3; i++)
		assert_true(share[i] >= 850 && share[i] <= 1150);

	/* What member 0 actually asks HQ for is its share. */
	k = sched_next(st.s[0], 0, 0, out, n);
	assert_int_equal(k, share[0]);
	for (int i = 0; i < k; i++)
		assert_int_equal(owner[chunk_index(st.chunks, n, out[i].id)], 0);

	/* Member 2 leaves: its share moves, the others keep theirs. */
	for (int i = 0; i < 2; i++)
		assert_int_equal(sched_peer_remove(st.s[i], 3, 0), 0);
	for (size_t c = 0; c < n; c++) {
		int now_owner = site_owner(&st, c, 2);

		if (owner[c] < 2)
			assert_int_equal(now_owner, owner[c]);
		else
			moved[now_owner]++;
	}
	assert_int_equal(moved[0] + moved[1], share[2]);
	assert_true(moved[0] > share[2] / 3 && moved[1] > share[2] / 3);
	/* Member 0 may now ask for what moved to it. */
	assert_int_equal(sched_next(st.s[0], 0, 0, out, n), moved[0]);
	free(out);
	free(owner);
	site_free(&st);
}

/* For each of the n chunks: the member (0..2) that st.s[i] says fetches it. */
static void site_fetchers(struct site *st, int i, int *fetcher)
{
	for (size_t c = 0; c < st->n; c++) {
		struct sched_chunk_info ci;

		assert_int_equal(sched_chunk_info(st->s[i], st->chunks[c].id, &ci), 0);
		fetcher[c] = -1;
		for (int j = 0; j < 3; j++)
			if (!memcmp(ci.fetcher, st->member[j], 32))
				fetcher[c] = j;
		assert_true(fetcher[c] >= 0);
	}
}

/*
 * A member whose own share has arrived takes over part of the others'
 * shares: the chunks for which it ranks above their owner by the rehashed
 * rendezvous value. The owner, once it hears the taker's share has arrived,
 * computes the same and leaves them. The taker takes over again, half of
 * what is left, each time what it took has arrived. A chunk another member
 * claimed is not asked for, even of our own share, until the claim runs
 * out (the owner timeout: 2 x (1000 x 3 / 125000 B/s + 300 ms) + 10 s).
 */
static void test_take_over(void **state)
{
	struct site st;
	const size_t n = 300;
	const uint64_t timeout = 2 * (24 + 300) + 10000;
	int *owner = calloc(n, sizeof(*owner)), *f0 = calloc(n, sizeof(*f0)),
	    *f1 = calloc(n, sizeof(*f1));
	struct sched_chunk *out = calloc(n, sizeof(*out));
	struct sched_reqs cancel = {0};
	size_t share[3] = {0}, taken[3] = {0}, first = 0;
	uint64_t t;
	int k;

	(void)state;
	site_init(&st, n, 1000);
	for (size_t c = 0; c < n; c++)
		share[owner[c] = site_owner(&st, c, 3)]++;
	/* Member 0 asks for its share, nothing more, until all of it has arrived. */
	k = sched_next(st.s[0], 0, 0, out, n);
	assert_int_equal(k, share[0]);
	for (int i = 0; i < k; i++) {
		assert_int_equal(owner[chunk_index(st.chunks, n, out[i].id)], 0);
		if (i < k - 1)
			assert_int_equal(sched_chunk_done(st.s[0], 0, out[i].id, 100, &cancel), 0);
	}
	assert_int_equal(sched_next(st.s[0], 0, 100, out, n), 0);
	assert_int_equal(sched_chunk_done(st.s[0], 0, out[k - 1].id, 100, &cancel), 0);
	/* Now it fetches about half of each other member's share. */
	site_fetchers(&st, 0, f0);
	for (size_t c = 0; c < n; c++) {
		if (owner[c] != 0 && f0[c] == 0) {
			taken[owner[c]]++;
			first++;
		}
	}
	for (int j = 1; j < 3; j++)
		assert_true(taken[j] > share[j] / 4 && taken[j] < share[j] * 3 / 4);
	/*
	 * Member 1 hears that member 0 holds its whole share: it sees the same
	 * fetcher for every chunk, and asks only for the rest of its own share.
	 */
	for (size_t c = 0; c < n; c++)
		if (owner[c] == 0)
			assert_int_equal(sched_peer_have_chunk(st.s[1], 1, st.chunks[c].id, 200),
					 0);
	site_fetchers(&st, 1, f1);
	for (size_t c = 0; c < n; c++)
		if (owner[c] != 0)
			assert_int_equal(f1[c], f0[c]);
	k = sched_next(st.s[1], 0, 200, out, n);
	assert_int_equal(k, share[1] - taken[1]);
	for (int i = 0; i < k; i++) {
		int c = chunk_index(st.chunks, n, out[i].id);

		assert_int_equal(owner[c], 1);
		assert_int_equal(f0[c], 1);
	}
	/*
	 * Member 0 hears nothing from the others: it fetches what it took over
	 * (in windows the rate measured so far sizes), then half of the rest,
	 * and so on, seven times: about 1/2^7 of the others' shares is left to
	 * them (a sixteenth, at most, here).
	 */
	for (t = 100; (k = sched_next(st.s[0], 0, t, out, n)) > 0; t += 100) {
		site_fetchers(&st, 0, f0);
		for (int i = 0; i < k; i++) {
			int c = chunk_index(st.chunks, n, out[i].id);

			assert_int_equal(f0[c], 0);
			assert_int_equal(sched_chunk_done(st.s[0], 0, out[i].id, t + 100, &cancel),
					 0);
			first -= first > 0;
		}
	}
	assert_int_equal(first, 0);
	k = 0;
	for (size_t c = 0; c < n; c++) {
		struct sched_chunk_info ci;

		assert_int_equal(sched_chunk_info(st.s[0], st.chunks[c].id, &ci), 0);
		k += !ci.done;
	}
	assert_true(k > 0 && (size_t)k <= (share[1] + share[2]) / 16);
	/* Member 2 hears claims of all chunks: nothing is left for it to ask. */
	for (size_t c = 0; c < n; c++)
		assert_int_equal(
		    sched_peer_claim(st.s[2], owner[c] == 1 ? 2 : 1, st.chunks[c].id, 0), 0);
	assert_int_equal(sched_next(st.s[2], 0, timeout - 1, out, n), 0);
	/*
	 * The claims run out (noticed at the next tick; by then the others
	 * count as lagging too): member 2 asks for its share again.
	 */
	assert_int_equal(sched_tick(st.s[2], timeout, &cancel), 0);
	k = sched_next(st.s[2], 0, timeout, out, n);
	for (int i = 0; i < k; i++)
		share[2] -= owner[chunk_index(st.chunks, n, out[i].id)] == 2;
	assert_int_equal(share[2], 0);
	/* A claim from a peer that is not a member is ignored. */
	assert_int_equal(sched_peer_claim(st.s[2], 0, st.chunks[0].id, timeout), 0);
	assert_int_equal(sched_peer_claim(st.s[2], 9, st.chunks[0].id, timeout), FERRY_ENOENT);
	sched_reqs_free(&cancel);
	free(out);
	free(f1);
	free(f0);
	free(owner);
	site_free(&st);
}

/* Whether chunk k's fetcher, as st->s[i] sees it, is member j. */
static bool fetched_by(struct site *st, int i, size_t k, int j)
{
	struct sched_chunk_info ci;

	assert_int_equal(sched_chunk_info(st->s[i], st->chunks[k].id, &ci), 0);
	return memcmp(ci.fetcher, st->member[j], 32) == 0;
}

/*
 * A chunk we asked a WAN peer for stays ours while the other members hold it
 * for us (our CLAIM, for an owner timeout), even if the request ends without
 * it. Here members 1 and 2 lagged, so member 0 asked HQ for everything; then
 * member 1 came back and HQ went away. Member 1 leaves the chunks of its
 * share that member 0 claimed to member 0: were they its again, nobody would
 * ask for them until the claims ran out.
 */
static void test_own_claim(void **state)
{
	struct site st;
	const size_t n = 30;
	const uint64_t timeout = 2 * (24 + 300) + 10000;
	struct sched_chunk *out = calloc(n, sizeof(*out));
	struct sched_reqs cancel = {0};
	uint8_t bits[4];
	int owner[30], k, c1 = -1, d1 = -1, e1 = -1;
	bool again = false;

	(void)state;
	site_init(&st, n, 1000);
	for (size_t c = 0; c < n; c++) {
		owner[c] = site_owner(&st, c, 3);
		if (owner[c] == 1 && d1 < 0)
			d1 = (int)c;
		else if (owner[c] == 1 && c1 < 0)
			c1 = (int)c;
		else if (owner[c] == 1 && e1 < 0)
			e1 = (int)c;
	}
	assert_true(e1 >= 0);
	assert_int_equal(sched_tick(st.s[0], timeout, &cancel), 0);
	assert_int_equal(sched_next(st.s[0], 0, timeout, out, n), n);
	/* Member 1 brings in a chunk of its share: it is not lagging any more. */
	assert_int_equal(sched_peer_have_chunk(st.s[0], 2, st.chunks[d1].id, timeout + 1), 0);
	assert_int_equal(sched_peer_remove(st.s[0], 0, timeout + 1), 0);
	add_peer(st.s[0], 9, 30, SCHED_WAN, timeout + 1);
	bits_range(bits, sizeof(bits), 0, n);
	assert_int_equal(sched_peer_have(st.s[0], 9, 1, bits, n, timeout + 1), 0);
	assert_true(fetched_by(&st, 0, (size_t)c1, 0));
	k = sched_next(st.s[0], 9, timeout + 1, out, n);
	for (int i = 0; i < k; i++)
		again = again || chunk_index(st.chunks, n, out[i].id) == c1;
	assert_true(again);
	/*
	 * That peer goes too. Once our claim has run out (noticed at the next
	 * tick), the chunk is member 1's again: it brought in another chunk of
	 * its share lately.
	 */
	assert_int_equal(sched_peer_remove(st.s[0], 9, timeout + 2), 0);
	assert_true(fetched_by(&st, 0, (size_t)c1, 0));
	assert_int_equal(sched_peer_have_chunk(st.s[0], 2, st.chunks[e1].id, 2 * timeout), 0);
	assert_int_equal(sched_tick(st.s[0], 2 * timeout + 10, &cancel), 0);
	assert_true(fetched_by(&st, 0, (size_t)c1, 1));
	sched_reqs_free(&cancel);
	free(out);
	site_free(&st);
}

/*
 * A member that fetches nothing of its share for the owner timeout loses it
 * to the next member in rank. The timeout is 2 x (mean length x members /
 * WAN rate + RTT) + slack = 2 x (1000 x 3 / 125000 B/s + 300 ms) + 10 s.
 */
static void test_owner_timeout(void **state)
{
	struct site st;
	const size_t n = 300;
	const uint64_t timeout = 2 * (24 + 300) + 10000;
	struct sched_reqs cancel = {0};
	size_t checked = 0;

	site_init(&st, n, 1000);
	/* Member 2 fetches one chunk of its own: it is alive. */
	for (size_t c = 0; c < n; c++) {
		if (site_owner(&st, c, 3) == 2) {
			assert_int_equal(sched_peer_have_chunk(st.s[0], 3, st.chunks[c].id, 5000),
					 0);
			break;
		}
	}
	assert_int_equal(sched_tick(st.s[0], timeout - 1, &cancel), 0);
	for (size_t c = 0; c < n; c++) {
		struct sched_chunk_info ci;

		assert_int_equal(sched_chunk_info(st.s[0], st.chunks[c].id, &ci), 0);
		assert_int_equal(ci.wan_ok, ci.mine && !ci.lan_holders);
	}
	/* Member 1 is lagging now: its chunks go to member 0 where 0 ranks above member 2. */
	assert_int_equal(sched_tick(st.s[0], timeout, &cancel), 0);
	for (size_t c = 0; c < n; c++) {
		struct sched_chunk_info ci;
		uint64_t h0 = sched_rendezvous(st.chunks[c].id, st.member[0]);
		uint64_t h2 = sched_rendezvous(st.chunks[c].id, st.member[2]);

		assert_int_equal(sched_chunk_info(st.s[0], st.chunks[c].id, &ci), 0);
		if (ci.lan_holders || !memcmp(ci.owner, st.member[2], 32))
			assert_false(ci.wan_ok);
		else if (!memcmp(ci.owner, st.member[1], 32)) {
			assert_int_equal(ci.wan_ok, h0 > h2);
			checked++;
		} else
			assert_true(ci.wan_ok);
	}
	assert_true(checked > 50);
	/* Later member 2 is lagging too: member 0 may fetch everything not on the LAN. */
	assert_int_equal(sched_tick(st.s[0], 5000 + timeout, &cancel), 0);
	for (size_t c = 0; c < n; c++) {
		struct sched_chunk_info ci;

		assert_int_equal(sched_chunk_info(st.s[0], st.chunks[c].id, &ci), 0);
		assert_int_equal(ci.wan_ok, !ci.lan_holders);
	}
	sched_reqs_free(&cancel);
	site_free(&st);
}

/* What s may fetch over the WAN: every chunk (all: members lagging), or only its own share. */
static void assert_wan_ok(struct sched *s, const struct site *st, bool all)
{
	for (size_t c = 0; c < st->n; c++) {
		struct sched_chunk_info ci;

		assert_int_equal(sched_chunk_info(s, st->chunks[c].id, &ci), 0);
		assert_int_equal(ci.wan_ok, all || ci.mine);
	}
}

/*
 * While our own WAN requests get nothing, the WAN is down, not the members:
 * nobody is judged lagging, and when data flows again members start afresh.
 */
static void test_wan_outage_no_lag(void **state)
{
	struct site st;
	const size_t n = 300;
	const uint64_t timeout = 2 * (24 + 300) + 10000;
	struct sched_chunk *out = calloc(n, sizeof(*out));
	struct sched_reqs cancel = {0};
	struct sched *s;
	int k;

	site_init(&st, n, 1000);
	s = st.s[0];
	k = sched_next(s, 0, 0, out, n);
	assert_true(k > 50);
	assert_int_equal(sched_tick(s, timeout, &cancel), 0); /* HQ is the only holder: no stall */
	assert_int_equal(cancel.n, 0);
	assert_wan_ok(s, &st, false);
	/* Data flows again at timeout + 1; the members have a timeout from then. */
	for (uint64_t t = timeout + 1; t < 2 * timeout + 1; t += 1000) {
		assert_int_equal(sched_chunk_progress(s, 0, out[0].id, 10, t), 0);
		assert_int_equal(sched_tick(s, t, &cancel), 0);
	}
	assert_wan_ok(s, &st, false);
	assert_int_equal(sched_chunk_progress(s, 0, out[0].id, 10, 2 * timeout + 1), 0);
	assert_int_equal(sched_tick(s, 2 * timeout + 1, &cancel), 0);
	assert_wan_ok(s, &st, true);
	sched_reqs_free(&cancel);
	free(out);
	site_free(&st);
}

/*
 * A WAN outage shorter than the owner timeout: members get a fresh start when
 * our data flows again, not a lag verdict for the time the link was down.
 */
static void test_short_outage_no_lag(void **state)
{
	struct site st;
	const size_t n = 300;
	const uint64_t timeout = 2 * (24 + 300) + 10000, back = 10000;
	struct sched_chunk *out = calloc(n, sizeof(*out)), two;
	struct sched_reqs cancel = {0};
	uint8_t hq2[32], bits[n / 8 + 1];
	struct sched_peer_info pi;
	struct sched *s;
	size_t m = 0;
	uint64_t t;

	site_init(&st, n, 1000);
	s = st.s[0];
	/* A second WAN holder with one chunk of ours: two peers fall silent together. */
	while (site_owner(&st, m, 3) != 0)
		m++;
	memset(bits, 0, sizeof(bits));
	bits_range(bits, sizeof(bits), m, m + 1);
	mkid(hq2, 20, 1);
	assert_int_equal(sched_peer_add(s, 4, hq2, SCHED_WAN, 0), 0);
	assert_int_equal(sched_peer_have(s, 4, 1, bits, n, 0), 0);
	assert_int_equal(sched_next(s, 4, 0, &two, 1), 1);
	assert_true(sched_next(s, 0, 0, out, n) > 50);
	/* Data for 3 s, nothing for 7 s, then data again until the verdicts. */
	for (t = 500; t <= back + timeout + 500; t += 500) {
		if (t <= 3000 || t >= back) {
			assert_int_equal(sched_chunk_progress(s, 0, out[0].id, 10, t), 0);
			assert_int_equal(sched_chunk_progress(s, 4, two.id, 10, t), 0);
		}
		assert_int_equal(sched_tick(s, t, &cancel), 0);
		if (t + 500 > timeout && t < back + timeout)
			assert_wan_ok(s, &st, false);
	}
	/* A full timeout of data since the link came back, none gained: lagging. */
	assert_wan_ok(s, &st, true);
	/* A ping sent before the link came back timed the outage: left out. */
	t = back + timeout + 1000;
	assert_int_equal(sched_peer_rtt(s, 0, (uint32_t)(t - 2000) * 1000, t), 0);
	assert_int_equal(sched_peer_info(s, 0, &pi), 0);
	assert_int_equal(pi.rtt_us, 0);
	assert_int_equal(sched_peer_rtt(s, 0, 250000, t), 0);
	assert_int_equal(sched_peer_info(s, 0, &pi), 0);
	assert_int_equal(pi.rtt_us, 250000);
	sched_reqs_free(&cancel);
	free(out);
	site_free(&st);
}

static void test_want_have_progress(void **state)
{
	struct sched *s = new_sched(6);
	struct sched_chunk *chunks = mkchunks(30, 12, 1000);
	struct sched_chunk out[16];
	struct sched_reqs cancel = {0};
	struct sched_progress pr;
	struct sched_chunk_info ci;
	uint8_t bits[2], local[1] = {0x01};

	chunks[3] = chunks[2]; /* listed twice */
	chunks[11].len = 5000;
	add_peer(s, 1, 31, SCHED_LAN, 0);
	/* The first 8 chunks are known; chunk 0 is in the store already. */
	assert_int_equal(sched_want(s, 1, chunks, 8, local, 0), 0);
	bits_range(bits, 2, 0, 12); /* the peer's have covers the whole list */
	assert_int_equal(sched_peer_have(s, 1, 1, bits, 12, 0), 0);
	assert_int_equal(sched_progress(s, 1, 0, &pr), 0);
	assert_int_equal(pr.want_chunks, 7);
	assert_int_equal(pr.want_bytes, 7000);
	assert_int_equal(pr.have_chunks, 1);
	assert_int_equal(pr.have_bytes, 1000);
	/* The rest of the list arrives; the bits kept for it apply. */
	assert_int_equal(sched_want(s, 1, chunks + 8, 4, NULL, 0), 0);
	assert_int_equal(sched_chunk_info(s, chunks[11].id, &ci), 0);
	assert_int_equal(ci.holders, 1);
	assert_int_equal(sched_progress(s, 1, 0, &pr), 0);
	assert_int_equal(pr.want_bytes, 15000);

	assert_int_equal(sched_next(s, 1, 0, out, 16), 10);
	assert_int_equal(sched_progress(s, 1, 0, &pr), 0);
	assert_int_equal(pr.inflight_bytes, 14000);
	assert_int_equal(sched_chunk_progress(s, 1, out[0].id, 500, 1000), 0);
	assert_int_equal(sched_chunk_done(s, 1, out[0].id, 1500, &cancel), 0);
	assert_int_equal(sched_progress(s, 1, 2500, &pr), 0);
	assert_int_equal(pr.sources, 1);
	assert_int_equal(pr.have_chunks, 2);
	assert_int_equal(pr.rate_bps, out[0].len * 8 / 2); /* over the 2 full seconds so far */
	/* A chunk that reached the store another way. */
	assert_int_equal(sched_chunk_done(s, SCHED_PEER_NONE, out[1].id, 1600, &cancel), 0);
	assert_int_equal(cancel.n, 1);
	assert_int_equal(cancel.v[0].peer, 1);

	/* A second version shares chunk 5; unwanting the first cancels the rest. */
	assert_int_equal(sched_want(s, 2, chunks + 5, 1, NULL, 0), 0);
	cancel.n = 0;
	assert_int_equal(sched_unwant(s, 1, &cancel), 0);
	/* The 8 requests left, less the one for chunk 5 if it was among them. */
	assert_int_equal(cancel.n, 8 - (memcmp(out[0].id, chunks[5].id, 32) &&
					memcmp(out[1].id, chunks[5].id, 32)));
	assert_int_equal(sched_chunk_info(s, chunks[0].id, &ci), FERRY_ENOENT);
	assert_int_equal(sched_chunk_info(s, chunks[5].id, &ci), 0);
	assert_int_equal(sched_progress(s, 1, 0, &pr), FERRY_ENOENT);
	assert_int_equal(sched_unwant(s, 1, &cancel), FERRY_ENOENT);
	sched_reqs_free(&cancel);
	sched_free(s);
	free(chunks);
}

/* sched_poll_max never asks for more bytes than its budget; sched_inflight counts them. */
static void test_poll_budget(void **state)
{
	struct sched *s = new_sched(3);
	struct sched_chunk *chunks = mkchunks(4, 10, 1000);
	struct sched_reqs reqs = {0};
	uint8_t bits[2];

	(void)state;
	assert_int_equal(sched_want(s, 1, chunks, 10, NULL, 0), 0);
	for (uint32_t h = 0; h < 2; h++) {
		add_peer(s, h, 10 + h, SCHED_LAN, 0);
		bits_range(bits, 2, 0, 10);
		assert_int_equal(sched_peer_have(s, h, 1, bits, 10, 0), 0);
	}
	assert_int_equal(sched_inflight(s), 0);
	/* 3500 bytes: three chunks of 1000 fit, the fourth does not. */
	assert_int_equal(sched_poll_max(s, 0, 3500, &reqs), 3);
	assert_int_equal(reqs.n, 3);
	assert_int_equal(sched_inflight(s), 3000);
	reqs.n = 0;
	assert_int_equal(sched_poll_max(s, 0, 999, &reqs), 0);
	assert_int_equal(sched_inflight(s), 3000);
	/* Without a budget the rest goes out (and end-game duplicates on the LAN). */
	assert_true(sched_poll(s, 0, &reqs) >= 7);
	assert_true(sched_inflight(s) >= 10000);
	sched_reqs_free(&reqs);
	sched_free(s);
	free(chunks);
}

static void test_bad_input(void **state)
{
	struct sched *s = new_sched(7);
	struct sched_chunk *chunks = mkchunks(40, 3, 1000);
	struct sched_progress pr;
	uint8_t id[32], bits[1] = {0xff};
	struct sched_chunk out[1];

	mkid(id, 41, 0);
	chunks[2].len = 0;
	assert_int_equal(sched_want(s, 1, chunks, 3, NULL, 0), FERRY_EINVAL);
	assert_non_null(strstr(ferry_errmsg(FERRY_EINVAL), "chunk 2"));
	assert_int_equal(sched_progress(s, 1, 0, &pr), FERRY_ENOENT); /* nothing was kept */
	chunks[2].len = SCHED_CHUNK_MAX_LEN + 1;
	assert_int_equal(sched_want(s, 1, chunks, 3, NULL, 0), FERRY_EINVAL);
	assert_int_equal(sched_want(s, 1, chunks, SCHED_VERSION_MAX_CHUNKS + 1ull, NULL, 0),
			 FERRY_ETOOBIG);
	assert_int_equal(sched_want(s, 1, chunks, 2, NULL, 0), 0);

	assert_int_equal(sched_peer_add(s, SCHED_PEER_MAX, id, SCHED_LAN, 0), FERRY_EINVAL);
	assert_int_equal(sched_peer_add(s, 1, id, (enum sched_link)7, 0), FERRY_EINVAL);
	assert_int_equal(sched_peer_add(s, 1, id, SCHED_LAN, 0), 0);
	assert_int_equal(sched_peer_add(s, 1, id, SCHED_LAN, 0), FERRY_EEXIST);
	assert_int_equal(sched_next(s, 2, 0, out, 1), FERRY_ENOENT);
	assert_non_null(strstr(ferry_errmsg(FERRY_ENOENT), "peer handle 2"));
	assert_int_equal(sched_peer_remove(s, 2, 0), FERRY_ENOENT);
	assert_int_equal(sched_peer_have(s, 1, 9, bits, 8, 0), FERRY_ENOENT);
	assert_int_equal(sched_peer_have(s, 1, 1, bits, SCHED_VERSION_MAX_CHUNKS + 1ull, 0),
			 FERRY_EINVAL);
	/* Unknown ids and unrequested chunks are ignored. */
	assert_int_equal(sched_peer_have_chunk(s, 1, id, 0), 0);
	assert_int_equal(sched_chunk_progress(s, 1, id, 10, 0), 0);
	assert_int_equal(sched_chunk_done(s, 1, id, 0, NULL), 0);
	assert_int_equal(sched_chunk_progress(s, 1, chunks[0].id, 10, 0), 0);
	sched_free(s);
	sched_free(NULL);
	free(chunks);
}

/*
 * A discrete-event simulation of one site: HQ (node 0) reaches members 1..3
 * over one shared WAN link (a FIFO at wan_rate, 100 ms each way); members
 * serve each other over the LAN (each member's uplink a FIFO at 100 Mbit/s,
 * 1 ms each way). A member that completes a chunk tells the others (an
 * incremental have), and so does one that asks HQ for a chunk (a claim). Each fetching member runs
 * a scheduler with default parameters, polled after every event and ticked every second.
 */
enum sim_ev { EV_REQ, EV_SERVED, EV_DATA, EV_HAVE, EV_CLAIM, EV_CANCEL, EV_TICK };

struct ev {
	uint64_t t, seq;
	enum sim_ev type;
	int a, b;
	uint32_t chunk;
};

struct job {
	int to;
	uint32_t chunk;
};

struct server {
	double rate;  /* bytes/s */
	uint64_t lat; /* one way, us */
	struct job *q;
	size_t qh, qt;
	bool busy;
	struct job cur;
};

struct sim {
	struct ev *heap;
	size_t nheap, capheap;
	uint64_t seq, now; /* us */
	struct sched *s[4];
	uint8_t node[4][32];
	bool *have[4];
	size_t left[4];
	struct server srv[4];
	unsigned *wan;
	struct sched_chunk *chunks;
	size_t n;
	struct sched_reqs reqs, cancel;
	uint64_t lan_dups, wan_reqs, wan_cancels;
	uint64_t out_from, out_to; /* a WAN blackhole, us: WAN traffic waits it out */
};

static bool ev_before(const struct ev *x, const struct ev *y)
{
	return x->t < y->t || (x->t == y->t && x->seq < y->seq);
}

static void ev_push(struct sim *m, uint64_t t, enum sim_ev type, int a, int b, uint32_t chunk)
{
	size_t i;

	if (m->nheap == m->capheap) {
		m->capheap = m->capheap ? 2 * m->capheap : 1024;
		m->heap = realloc(m->heap, m->capheap * sizeof(*m->heap));
	}
	i = m->nheap++;
	m->heap[i] =
	    (struct ev){.t = t, .seq = m->seq++, .type = type, .a = a, .b = b, .chunk = chunk};
	while (i && ev_before(&m->heap[i], &m->heap[(i - 1) / 2])) {
		struct ev tmp = m->heap[i];

		m->heap[i] = m->heap[(i - 1) / 2];
		m->heap[(i - 1) / 2] = tmp;
		i = (i - 1) / 2;
	}
}

static struct ev ev_pop(struct sim *m)
{
	struct ev top = m->heap[0];
	size_t i = 0;

	m->heap[0] = m->heap[--m->nheap];
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, k = i;
		struct ev tmp;

		if (l < m->nheap && ev_before(&m->heap[l], &m->heap[k]))
			k = l;
		if (r < m->nheap && ev_before(&m->heap[r], &m->heap[k]))
			k = r;
		if (k == i)
			break;
		tmp = m->heap[i];
		m->heap[i] = m->heap[k];
		m->heap[k] = tmp;
		i = k;
	}
	return top;
}

/* The chunk index is kept in the last four bytes of its id. */
static uint32_t sim_index(const uint8_t id[32])
{
	return (uint32_t)id[28] << 24 | (uint32_t)id[29] << 16 | (uint32_t)id[30] << 8 | id[31];
}

static void sim_send(struct sim *m, int member)
{
	m->reqs.n = 0;
	assert_true(sched_poll(m->s[member], m->now / 1000, &m->reqs) >= 0);
	for (size_t i = 0; i < m->reqs.n; i++) {
		int srv = (int)m->reqs.v[i].peer;

		m->wan_reqs += srv == 0;
		ev_push(m, m->now + m->srv[srv].lat, EV_REQ, srv, member,
			sim_index(m->reqs.v[i].id));
		for (int j = 1; j <= 3 && srv == 0; j++)
			if (j != member && m->s[j])
				ev_push(m, m->now + m->srv[member].lat, EV_CLAIM, j, member,
					sim_index(m->reqs.v[i].id));
	}
}

static void sim_cancels(struct sim *m, int member)
{
	for (size_t i = 0; i < m->cancel.n; i++) {
		int srv = (int)m->cancel.v[i].peer;

		m->wan_cancels += srv == 0;
		ev_push(m, m->now + m->srv[srv].lat, EV_CANCEL, srv, member,
			sim_index(m->cancel.v[i].id));
	}
	m->cancel.n = 0;
}

static void sim_serve(struct sim *m, int srv)
{
	struct server *sv = &m->srv[srv];

	if (sv->busy || sv->qh == sv->qt)
		return;
	sv->cur = sv->q[sv->qh++];
	sv->busy = true;
	ev_push(m, m->now + (uint64_t)(m->chunks[sv->cur.chunk].len * 1e6 / sv->rate), EV_SERVED,
		srv, 0, 0);
}

static void sim_event(struct sim *m, const struct ev *e)
{
	struct server *sv;
	const uint8_t *id = e->type == EV_SERVED ? NULL : m->chunks[e->chunk].id;
	bool wan = (e->type == EV_REQ || e->type == EV_SERVED || e->type == EV_CANCEL) ? e->a == 0
		   : e->type == EV_DATA						       ? e->b == 0
										       : false;

	/* Like TCP through a blackhole: nothing is lost, everything on the WAN waits. */
	if (wan && m->now >= m->out_from && m->now < m->out_to) {
		ev_push(m, m->now + (m->out_to - m->out_from), e->type, e->a, e->b, e->chunk);
		return;
	}
	switch (e->type) {
	case EV_REQ: /* a request reaches server a from member b */
		sv = &m->srv[e->a];
		sv->q[sv->qt++] = (struct job){.to = e->b, .chunk = e->chunk};
		sim_serve(m, e->a);
		break;
	case EV_SERVED:
		sv = &m->srv[e->a];
		sv->busy = false;
		ev_push(m, m->now + sv->lat, EV_DATA, sv->cur.to, e->a, sv->cur.chunk);
		sim_serve(m, e->a);
		break;
	case EV_DATA: /* chunk arrives at member a from node b */
		if (e->b == 0)
			m->wan[e->chunk]++;
		assert_int_equal(
		    sched_chunk_done(m->s[e->a], (uint32_t)e->b, id, m->now / 1000, &m->cancel), 0);
		if (!m->have[e->a][e->chunk]) {
			m->have[e->a][e->chunk] = true;
			m->left[e->a]--;
			for (int j = 1; j <= 3; j++)
				if (j != e->a && m->s[j])
					ev_push(m, m->now + m->srv[e->a].lat, EV_HAVE, j, e->a,
						e->chunk);
		} else {
			m->lan_dups += e->b != 0;
		}
		sim_cancels(m, e->a);
		sim_send(m, e->a);
		break;
	case EV_HAVE: /* member a learns that member b holds the chunk */
		assert_int_equal(
		    sched_peer_have_chunk(m->s[e->a], (uint32_t)e->b, id, m->now / 1000), 0);
		sim_send(m, e->a);
		break;
	case EV_CLAIM: /* member a learns that member b asked HQ for the chunk */
		assert_int_equal(sched_peer_claim(m->s[e->a], (uint32_t)e->b, id, m->now / 1000),
				 0);
		break;
	case EV_CANCEL: /* a cancel reaches server a: drop the job if it has not started */
		sv = &m->srv[e->a];
		for (size_t i = sv->qh; i < sv->qt; i++) {
			if (sv->q[i].to == e->b && sv->q[i].chunk == e->chunk) {
				memmove(sv->q + i, sv->q + i + 1,
					(sv->qt - i - 1) * sizeof(*sv->q));
				sv->qt--;
				break;
			}
		}
		break;
	case EV_TICK:
		assert_true(sched_tick(m->s[e->a], m->now / 1000, &m->cancel) >= 0);
		sim_cancels(m, e->a);
		sim_send(m, e->a);
		if (m->left[e->a])
			ev_push(m, m->now + 1000000, EV_TICK, e->a, 0, 0);
		break;
	}
}

/*
 * Run the site until every fetching member has every chunk, checking that it
 * took no longer than the WAN needs at full rate (plus the outage). fetching[i]
 * says whether member i runs a scheduler; one that does not is still up (a LAN
 * peer of the others) but never fetches, like a member that does not want the
 * version. *wan_out (caller frees) counts the WAN deliveries of each chunk.
 */
static void sim_run(size_t n, double wan_rate, const bool fetching[4], uint64_t out_from_ms,
		    uint64_t out_to_ms, unsigned **wan_out)
{
	struct sim m = {.n = n, .out_from = out_from_ms * 1000, .out_to = out_to_ms * 1000};
	uint8_t *bits = calloc(n / 8 + 1, 1);
	uint64_t rnd = 12345, bytes = 0;
	double ideal;
	bool busy = true;

	m.chunks = calloc(n, sizeof(*m.chunks));
	m.wan = calloc(n, sizeof(*m.wan));
	for (size_t i = 0; i < n; i++) {
		mkid(m.chunks[i].id, 50, (uint32_t)i);
		m.chunks[i].id[28] = (uint8_t)(i >> 24);
		m.chunks[i].id[29] = (uint8_t)(i >> 16);
		m.chunks[i].id[30] = (uint8_t)(i >> 8);
		m.chunks[i].id[31] = (uint8_t)i;
		rnd = rnd * 6364136223846793005ull + 1442695040888963407ull;
		m.chunks[i].len = 64 * KIB + (uint32_t)(rnd >> 33) % (960 * KIB);
	}
	bits_range(bits, n / 8 + 1, 0, n);
	for (int i = 0; i < 4; i++) {
		mkid(m.node[i], 51, (uint32_t)i);
		m.srv[i] = (struct server){.rate = i ? 12.5e6 : wan_rate,
					   .lat = i ? 1000 : 100000,
					   .q = calloc(8 * n, sizeof(struct job))};
	}
	for (int i = 1; i <= 3; i++) {
		if (!fetching[i])
			continue;
		m.have[i] = calloc(n, sizeof(bool));
		m.left[i] = n;
		m.s[i] = sched_new(NULL, m.node[i], (uint64_t)i);
		assert_int_equal(sched_want(m.s[i], 1, m.chunks, n, NULL, 0), 0);
		assert_int_equal(sched_peer_add(m.s[i], 0, m.node[0], SCHED_WAN, 0), 0);
		assert_int_equal(sched_peer_rtt(m.s[i], 0, 200000, 0), 0);
		assert_int_equal(sched_peer_have(m.s[i], 0, 1, bits, n, 0), 0);
		for (int j = 1; j <= 3; j++) {
			if (j == i)
				continue;
			assert_int_equal(
			    sched_peer_add(m.s[i], (uint32_t)j, m.node[j], SCHED_LAN, 0), 0);
			assert_int_equal(sched_peer_rtt(m.s[i], (uint32_t)j, 2000, 0), 0);
		}
		sim_send(&m, i);
		ev_push(&m, 1000000, EV_TICK, i, 0, 0);
	}
	while (busy && m.nheap) {
		struct ev e = ev_pop(&m);

		m.now = e.t;
		assert_true(m.now < 36000ull * 1000000); /* ten hours: something is stuck */
		sim_event(&m, &e);
		busy = false;
		for (int i = 1; i <= 3; i++)
			busy |= fetching[i] && m.left[i];
	}
	for (int i = 1; i <= 3; i++) {
		struct sched_progress pr;

		if (!fetching[i])
			continue;
		assert_int_equal(m.left[i], 0);
		assert_int_equal(sched_progress(m.s[i], 1, m.now / 1000, &pr), 0);
		assert_int_equal(pr.have_chunks, n);
		assert_int_equal(pr.have_bytes, pr.want_bytes);
		sched_free(m.s[i]);
		free(m.have[i]);
	}
	for (int i = 0; i < 4; i++)
		free(m.srv[i].q);
	sched_reqs_free(&m.reqs);
	sched_reqs_free(&m.cancel);
	print_message("%zu chunks: %llu WAN requests, %llu WAN cancels, %llu LAN duplicates\n", n,
		      (unsigned long long)m.wan_reqs, (unsigned long long)m.wan_cancels,
		      (unsigned long long)m.lan_dups);
	/* The WAN link is the bottleneck: it must have been kept busy. */
	for (size_t i = 0; i < n; i++)
		bytes += m.chunks[i].len;
	ideal = (double)bytes / wan_rate + (double)(out_to_ms - out_from_ms) / 1000;
	print_message("done in %.1f s, %.1f s at full WAN rate\n", m.now / 1e6, ideal);
	assert_true(m.now / 1e6 <= 1.05 * ideal);
	free(m.heap);
	free(m.chunks);
	free(bits);
	*wan_out = m.wan;
}

static void test_sim_site(void **state)
{
	const size_t n = 300;
	const double rate = 500000; /* 4 Mbit/s */
	const bool all[4] = {false, true, true, true}, two[4] = {false, true, true, false};
	unsigned *wan;

	sim_run(n, rate, all, 0, 0, &wan);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(wan[i], 1);
	free(wan);

	/* Member 3 is up but fetches nothing: after the owner timeout its share moves. */
	sim_run(n, rate, two, 0, 0, &wan);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(wan[i], 1);
	free(wan);

	/* A two-minute WAN blackhole. */
	sim_run(n, rate, all, 60000, 180000, &wan);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(wan[i], 1);
	free(wan);
}

/*
 * The rendezvous hash is part of the contract between nodes: the values
 * docs/scheduling.md gives (checked there against a second implementation).
 */
static void test_rendezvous_vectors(void **state)
{
	uint8_t zero[32] = {0}, inc[32], dec[32], ones[32];

	for (int i = 0; i < 32; i++) {
		inc[i] = (uint8_t)i;
		dec[i] = (uint8_t)(0xff - i);
		ones[i] = 1;
	}
	assert_int_equal(sched_rendezvous(zero, zero), 0xe220a8397b1dcdafull);
	assert_int_equal(sched_rendezvous(inc, dec), 0xa8741f37b5dce9beull);
	assert_int_equal(sched_rendezvous(inc, ones), 0x311d3fc0e6385c46ull);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rarest_first),
	    cmocka_unit_test(test_lan_preferred),
	    cmocka_unit_test(test_window_bdp),
	    cmocka_unit_test(test_rate_lanes),
	    cmocka_unit_test(test_streams),
	    cmocka_unit_test(test_poll_budget),
	    cmocka_unit_test(test_stall_reissue),
	    cmocka_unit_test(test_endgame),
	    cmocka_unit_test(test_endgame_wan),
	    cmocka_unit_test(test_wan_slow_peer),
	    cmocka_unit_test(test_take_over),
	    cmocka_unit_test(test_own_claim),
	    cmocka_unit_test(test_wan_silent_no_stall),
	    cmocka_unit_test(test_lone_flow_stalls),
	    cmocka_unit_test(test_abandon),
	    cmocka_unit_test(test_chunk_abandon),
	    cmocka_unit_test(test_bad_chunk_bans),
	    cmocka_unit_test(test_site_split),
	    cmocka_unit_test(test_owner_timeout),
	    cmocka_unit_test(test_wan_outage_no_lag),
	    cmocka_unit_test(test_short_outage_no_lag),
	    cmocka_unit_test(test_want_have_progress),
	    cmocka_unit_test(test_bad_input),
	    cmocka_unit_test(test_rendezvous_vectors),
	    cmocka_unit_test(test_sim_site),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
