/* Unit tests for the token-bucket rate limiter, on a simulated clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ferry/error.h"
#include "ferry/ratelimit.h"
#include "ferry/util.h"

#define KIB 1024u

/* One greedy sender: it books a frame, sends it when told, and books the next. */
struct flow {
	enum ratelimit_dir dir;
	enum ratelimit_class cls;
	uint32_t frame;	 /* bytes per frame; 0 = random 1..64 KiB */
	uint32_t booked; /* a frame booked for time next */
	uint64_t next;	 /* when it sends or asks next */
	uint64_t sent;	 /* bytes sent so far */
	uint64_t rnd;
};

static uint32_t frame_size(struct flow *f)
{
	f->rnd = f->rnd * 6364136223846793005ull + 1442695040888963407ull;
	return f->frame ? f->frame : (uint32_t)(f->rnd >> 33) % (64 * KIB) + 1;
}

/* Run the flows over [from, until) ms of simulated time; a frame booked past until stays booked. */
static void run(struct ratelimit *rl, struct flow *f, size_t n, uint64_t from, uint64_t until)
{
	uint64_t now = from;

	for (size_t i = 0; i < n; i++)
		if (f[i].next < from)
			f[i].next = from;
	while (now < until) {
		uint64_t soonest = UINT64_MAX;

		for (size_t i = 0; i < n; i++) {
			while (f[i].next <= now) {
				uint32_t b;
				uint64_t w;

				if (f[i].booked) {
					f[i].sent += f[i].booked;
					f[i].booked = 0;
				}
				b = frame_size(&f[i]);
				w = ratelimit_take(rl, f[i].dir, f[i].cls, b, now);
				if (w) {
					f[i].booked = b;
					f[i].next = now + w;
					break;
				}
				f[i].sent += b;
			}
			if (f[i].next < soonest)
				soonest = f[i].next;
		}
		now = soonest;
	}
}

/* |got - want| <= pct % of want */
static void assert_within(double got, double want, double pct)
{
	double d = got > want ? got - want : want - got;

	if (d > want * pct / 100)
		fail_msg("got %.0f, want %.0f within %.1f%%", got, want, pct);
}

static void test_average_rate(void **state)
{
	static const uint64_t rates[] = {1000000, 4000000, 100000000};
	static const uint32_t frames[] = {64 * KIB, 0, 1500};

	for (size_t r = 0; r < 3; r++) {
		for (size_t k = 0; k < 3; k++) {
			struct ratelimit *rl = ratelimit_new();
			struct flow f = {
			    .dir = RL_DOWN, .cls = RL_WAN, .frame = frames[k], .rnd = k};

			assert_int_equal(ratelimit_set(rl, RL_WAN_DOWNLOAD, rates[r], 0), 0);
			run(rl, &f, 1, 0, 60000);
			assert_within((double)f.sent, (double)rates[r] / 8 * 60, 2);
			/* Booked bytes count as taken. */
			assert_int_equal(ratelimit_bytes(rl, RL_DOWN, RL_WAN), f.sent + f.booked);
			assert_int_equal(ratelimit_bytes(rl, RL_DOWN, RL_LAN), 0);
			ratelimit_free(rl);
		}
	}
}

/* After an idle time a bucket holds 100 ms of its rate, at least 64 KiB, plus one frame of debt. */
static void test_burst(void **state)
{
	struct {
		uint64_t rate, burst;
	} cases[] = {{8000000, 100000}, {1000000, 64 * KIB}, {80000000, 1000000}};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct ratelimit *rl = ratelimit_new();
		uint64_t sent = 0;

		assert_int_equal(ratelimit_set(rl, RL_UPLOAD, cases[i].rate, 0), 0);
		/* Drain, wait out the debt, then stay idle for 10 s. */
		assert_true(ratelimit_charge(rl, RL_UP, RL_LAN, 1u << 20, 0) < 10000);
		while (!ratelimit_take(rl, RL_UP, RL_LAN, 1000, 20000))
			sent += 1000;
		assert_true(sent >= cases[i].burst);
		assert_true(sent <= cases[i].burst + 1000);
		ratelimit_free(rl);
	}
}

static void test_unlimited(void **state)
{
	struct ratelimit *rl = ratelimit_new();

	for (int i = 0; i < 1000; i++)
		assert_int_equal(ratelimit_take(rl, RL_DOWN, RL_WAN, 1u << 30, 5), 0);
	assert_int_equal(ratelimit_charge(rl, RL_UP, RL_LAN, 1u << 30, 5), 0);
	assert_int_equal(ratelimit_effective(rl, RL_DOWN, RL_WAN), 0);

	/* Limited, in debt, then unlimited again: the debt is forgotten at once. */
	assert_int_equal(ratelimit_set(rl, RL_DOWNLOAD, 10000, 10), 0);
	assert_int_equal(ratelimit_take(rl, RL_DOWN, RL_WAN, 1u << 20, 10), 0);
	assert_true(ratelimit_take(rl, RL_DOWN, RL_LAN, 1, 10) > 0);
	assert_int_equal(ratelimit_set(rl, RL_DOWNLOAD, 0, 11), 0);
	assert_int_equal(ratelimit_take(rl, RL_DOWN, RL_WAN, 1u << 20, 11), 0);
	ratelimit_free(rl);
}

/* A frame larger than the burst still goes out; the debt delays the next one. */
static void test_debt(void **state)
{
	struct ratelimit *rl = ratelimit_new();
	struct flow f = {.dir = RL_UP, .cls = RL_WAN, .frame = 64 * KIB};
	uint64_t w;

	assert_int_equal(ratelimit_set(rl, RL_WAN_UPLOAD, 10000, 0), 0); /* 1250 B/s */
	assert_int_equal(ratelimit_take(rl, RL_UP, RL_WAN, 200 * KIB, 0), 0);
	/* 64 KiB of burst paid for part of it: the rest, (200 - 64) KiB at 1250 B/s, is debt. */
	w = ratelimit_take(rl, RL_UP, RL_WAN, 1000, 0);
	assert_int_equal(w, (136 * KIB * 1000 + 1249) / 1250);
	/* Booked behind it: a second frame waits for both. */
	assert_int_equal(ratelimit_take(rl, RL_UP, RL_WAN, 1000, 0), w + 800);
	assert_int_equal(ratelimit_charge(rl, RL_UP, RL_WAN, 0, w + 1600), 0);
	ratelimit_free(rl);

	/* 64 KiB frames at 10 kbit/s for an hour: ~69 of them, the average holds. */
	rl = ratelimit_new();
	assert_int_equal(ratelimit_set(rl, RL_WAN_UPLOAD, 10000, 0), 0);
	run(rl, &f, 1, 0, 3600000);
	assert_true(f.sent <= 1250ull * 3600 + 2 * 64 * KIB);
	assert_true(f.sent + 64 * KIB >= 1250ull * 3600);
	ratelimit_free(rl);
}

static void test_runtime_change(void **state)
{
	struct ratelimit *rl = ratelimit_new();
	struct flow f = {.dir = RL_DOWN, .cls = RL_LAN, .frame = 0, .rnd = 7};

	assert_int_equal(ratelimit_set(rl, RL_DOWNLOAD, 1000000, 0), 0);
	run(rl, &f, 1, 0, 30000);
	assert_int_equal(ratelimit_set(rl, RL_DOWNLOAD, 4000000, 30000), 0);
	assert_int_equal(ratelimit_get(rl, RL_DOWNLOAD), 4000000);
	run(rl, &f, 1, 30000, 60000);
	assert_within((double)f.sent, 125000.0 * 30 + 500000.0 * 30, 2);

	/* Down again: the bucket keeps at most one burst of the new rate. */
	assert_int_equal(ratelimit_set(rl, RL_DOWNLOAD, 500000, 60000), 0);
	f.sent = 0;
	run(rl, &f, 1, 60000, 120000);
	assert_within((double)f.sent, 62500.0 * 60, 2);
	ratelimit_free(rl);
}

/* A window replaces the WAN rates while it lasts; LAN and WAN share the global bucket. */
static void test_classes_and_window(void **state)
{
	struct ratelimit *rl = ratelimit_new();
	struct flow f[2] = {
	    {.dir = RL_DOWN, .cls = RL_LAN, .frame = 16 * KIB},
	    {.dir = RL_DOWN, .cls = RL_WAN, .frame = 16 * KIB},
	};

	assert_int_equal(ratelimit_set(rl, RL_DOWNLOAD, 8000000, 0), 0);
	assert_int_equal(ratelimit_set(rl, RL_WAN_DOWNLOAD, 2000000, 0), 0);
	assert_int_equal(ratelimit_effective(rl, RL_DOWN, RL_WAN), 2000000);
	assert_int_equal(ratelimit_effective(rl, RL_DOWN, RL_LAN), 8000000);
	assert_int_equal(ratelimit_effective(rl, RL_UP, RL_WAN), 0);
	run(rl, f, 2, 0, 60000);
	assert_within((double)f[1].sent, 250000.0 * 60, 2);
	assert_within((double)(f[0].sent + f[1].sent), 1000000.0 * 60, 2);

	/* A 1 Mbit/s window in force: the WAN slows to it, in both directions. */
	assert_int_equal(ratelimit_set_window(rl, true, 1000000, 60000), 0);
	assert_int_equal(ratelimit_effective(rl, RL_DOWN, RL_WAN), 1000000);
	assert_int_equal(ratelimit_effective(rl, RL_UP, RL_WAN), 1000000);
	assert_int_equal(ratelimit_source(rl, RL_WAN_DOWNLOAD), RL_SRC_WINDOW);
	assert_int_equal(ratelimit_source(rl, RL_DOWNLOAD), RL_SRC_CONFIG);
	f[0].sent = f[1].sent = 0;
	run(rl, f, 2, 60000, 120000);
	assert_within((double)f[1].sent, 125000.0 * 60, 2);
	assert_within((double)f[0].sent, 875000.0 * 60, 2);

	/* A faster window raises the configured WAN rate (ferryd.conf(5): "in place of"). */
	assert_int_equal(ratelimit_set_window(rl, true, 4000000, 120000), 0);
	assert_int_equal(ratelimit_effective(rl, RL_DOWN, RL_WAN), 4000000);
	f[0].sent = f[1].sent = 0;
	run(rl, f, 2, 120000, 180000);
	assert_within((double)f[1].sent, 500000.0 * 60, 2);

	/* A window of 0 lifts the WAN limits: only the global 8 Mbit/s is left. */
	assert_int_equal(ratelimit_set_window(rl, true, 0, 180000), 0);
	assert_int_equal(ratelimit_effective(rl, RL_DOWN, RL_WAN), 8000000);
	assert_int_equal(ratelimit_effective(rl, RL_UP, RL_WAN), 0);

	/* The window ends: the configured rates are back. */
	assert_int_equal(ratelimit_set_window(rl, false, 0, 240000), 0);
	assert_false(ratelimit_window(rl, NULL));
	assert_int_equal(ratelimit_effective(rl, RL_DOWN, RL_WAN), 2000000);
	assert_int_equal(ratelimit_effective(rl, RL_UP, RL_WAN), 0);
	assert_int_equal(ratelimit_source(rl, RL_WAN_DOWNLOAD), RL_SRC_CONFIG);
	ratelimit_free(rl);
}

/*
 * The layers: a runtime override beats the window and the config; a config
 * change under an override is kept for when the override is cleared.
 */
static void test_layers(void **state)
{
	struct ratelimit *rl = ratelimit_new();
	struct flow f = {.dir = RL_DOWN, .cls = RL_WAN, .frame = 64 * KIB};
	uint64_t rate = 0;

	assert_int_equal(ratelimit_set(rl, RL_WAN_DOWNLOAD, 2000000, 0), 0);
	assert_int_equal(ratelimit_set_window(rl, true, 1000000, 0), 0);
	assert_true(ratelimit_window(rl, &rate));
	assert_int_equal(rate, 1000000);
	assert_int_equal(ratelimit_override(rl, RL_WAN_DOWNLOAD, 4000000, 0), 0);
	assert_int_equal(ratelimit_get(rl, RL_WAN_DOWNLOAD), 4000000);
	assert_int_equal(ratelimit_source(rl, RL_WAN_DOWNLOAD), RL_SRC_RUNTIME);
	assert_string_equal(ratelimit_source_name(ratelimit_source(rl, RL_WAN_DOWNLOAD)),
			    "runtime");
	/* The upload direction is not overridden: the window holds it. */
	assert_int_equal(ratelimit_get(rl, RL_WAN_UPLOAD), 1000000);
	run(rl, &f, 1, 0, 30000);
	assert_within((double)f.sent, 500000.0 * 30, 2);

	/* An override to 0 means unlimited, not "no override". */
	assert_int_equal(ratelimit_override(rl, RL_WAN_DOWNLOAD, 0, 30000), 0);
	assert_int_equal(ratelimit_source(rl, RL_WAN_DOWNLOAD), RL_SRC_RUNTIME);
	assert_int_equal(ratelimit_effective(rl, RL_DOWN, RL_WAN), 0);

	/* A reload changes the config layer; the override stays in force. */
	assert_int_equal(ratelimit_set(rl, RL_WAN_DOWNLOAD, 3000000, 40000), 0);
	assert_int_equal(ratelimit_get(rl, RL_WAN_DOWNLOAD), 0);
	assert_int_equal(ratelimit_configured(rl, RL_WAN_DOWNLOAD), 3000000);

	/* Cleared: the window is in force again, and after it the new config value. */
	assert_int_equal(ratelimit_clear_override(rl, RL_WAN_DOWNLOAD, 40000), 0);
	assert_int_equal(ratelimit_get(rl, RL_WAN_DOWNLOAD), 1000000);
	f.sent = 0;
	f.booked = 0;
	run(rl, &f, 1, 40000, 100000);
	assert_within((double)f.sent, 125000.0 * 60, 2);
	assert_int_equal(ratelimit_set_window(rl, false, 0, 100000), 0);
	assert_int_equal(ratelimit_get(rl, RL_WAN_DOWNLOAD), 3000000);
	assert_int_equal(ratelimit_source(rl, RL_WAN_DOWNLOAD), RL_SRC_CONFIG);

	/* Errors change nothing. */
	assert_int_equal(ratelimit_override(rl, RL_UPLOAD, RATELIMIT_MAX_RATE + 1, 100000),
			 FERRY_EINVAL);
	assert_int_equal(ratelimit_source(rl, RL_UPLOAD), RL_SRC_CONFIG);
	assert_int_equal(ratelimit_set_window(rl, true, RATELIMIT_MAX_RATE + 1, 100000),
			 FERRY_EINVAL);
	assert_non_null(strstr(ferry_errmsg(FERRY_EINVAL), "wan_window rate"));
	assert_false(ratelimit_window(rl, NULL));
	assert_int_equal(ratelimit_clear_override(rl, RL__SETTINGS, 0), FERRY_EINVAL);
	assert_null(ratelimit_source_name((enum ratelimit_source)3));
	ratelimit_free(rl);
}

/* Bytes already read are charged; the reader learns how long to pause. */
static void test_charge(void **state)
{
	struct ratelimit *rl = ratelimit_new();

	assert_int_equal(ratelimit_set(rl, RL_LAN_DOWNLOAD, 8000000, 0), 0);
	/* 1 MiB read at once against a 100 kB burst, at 1 MB/s. */
	assert_int_equal(ratelimit_charge(rl, RL_DOWN, RL_LAN, 1u << 20, 0),
			 ((1u << 20) - 100000 + 999) / 1000);
	assert_true(ratelimit_take(rl, RL_DOWN, RL_LAN, 1, 100) > 0);
	assert_int_equal(ratelimit_take(rl, RL_DOWN, RL_WAN, 1, 100), 0); /* other class */
	assert_int_equal(ratelimit_take(rl, RL_UP, RL_LAN, 1, 100), 0);	  /* other direction */
	assert_int_equal(ratelimit_bytes(rl, RL_DOWN, RL_LAN), (1u << 20) + 1);
	ratelimit_free(rl);
}

static void test_names(void **state)
{
	struct ratelimit *rl = ratelimit_new();

	assert_int_equal(ratelimit_by_name("wan_download"), RL_WAN_DOWNLOAD);
	assert_int_equal(ratelimit_by_name("lan_upload"), RL_LAN_UPLOAD);
	/* wan_window is a config key, not a rate one can set. */
	assert_int_equal(ratelimit_by_name("wan_window"), FERRY_EINVAL);
	assert_string_equal(ratelimit_name(RL_UPLOAD), "upload");
	assert_null(ratelimit_name(RL__SETTINGS));
	assert_int_equal(ratelimit_by_name("wan_speed"), FERRY_EINVAL);
	assert_non_null(strstr(ferry_errmsg(FERRY_EINVAL), "'wan_speed' is not a rate limit"));
	assert_int_equal(ratelimit_set(rl, RL__SETTINGS, 1, 0), FERRY_EINVAL);
	assert_int_equal(ratelimit_set(rl, RL_UPLOAD, RATELIMIT_MAX_RATE + 1, 0), FERRY_EINVAL);
	assert_non_null(strstr(ferry_errmsg(FERRY_EINVAL), "upload rate"));
	ratelimit_free(rl);
	ratelimit_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_average_rate),   cmocka_unit_test(test_burst),
	    cmocka_unit_test(test_unlimited),	   cmocka_unit_test(test_debt),
	    cmocka_unit_test(test_runtime_change), cmocka_unit_test(test_classes_and_window),
	    cmocka_unit_test(test_layers),	   cmocka_unit_test(test_charge),
	    cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
