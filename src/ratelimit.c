/*
 * Token buckets; see include/ferry/ratelimit.h.
 *
 * Tokens are counted in units of 1/8000 byte (one bit-millisecond per
 * second), so refilling for dt ms at r bits/s adds exactly r * dt units and
 * no fraction is lost between calls.
 */
#include "config.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/error.h"
#include "ferry/ratelimit.h"
#include "ferry/util.h"

#define UNITS_PER_BYTE	8000
#define BURST_MS	100
#define BURST_MIN_BYTES 65536

struct bucket {
	uint64_t rate; /* bits/s; 0 = unlimited */
	int64_t tokens;
	uint64_t last; /* time of the last refill */
};

struct ratelimit {
	uint64_t cfg[RL__SETTINGS];	/* the config layer */
	uint64_t runtime[RL__SETTINGS]; /* the runtime layer, where overridden[] */
	bool overridden[RL__SETTINGS];
	bool window_on; /* the window layer */
	uint64_t window;
	struct bucket global[2];
	struct bucket cls[2][2];
	uint64_t bytes[2][2];
};

static const char *const names[] = {
#define RL_NAME(name, str) str,
    RATELIMIT_SETTINGS(RL_NAME)
#undef RL_NAME
};

static int64_t burst(uint64_t rate)
{
	return (int64_t)MAX(rate * BURST_MS, (uint64_t)BURST_MIN_BYTES * UNITS_PER_BYTE);
}

static void refill(struct bucket *b, uint64_t now)
{
	int64_t cap = burst(b->rate);
	uint64_t dt;

	if (!b->rate || now <= b->last)
		return;
	dt = now - b->last;
	b->last = now;
	if (b->tokens >= cap)
		return;
	/* Compare before multiplying, so a long idle time cannot overflow. */
	if (dt >= (uint64_t)(cap - b->tokens) / b->rate + 1)
		b->tokens = cap;
	else
		b->tokens = MIN(cap, b->tokens + (int64_t)(b->rate * dt));
}

static void bucket_rate(struct bucket *b, uint64_t rate, uint64_t now)
{
	if (rate == b->rate)
		return;
	if (!b->rate) {
		b->tokens = burst(rate);
		b->last = now;
	} else {
		refill(b, now);
		b->tokens = MIN(b->tokens, burst(rate));
	}
	b->rate = rate;
}

static bool windowed(enum ratelimit_which which)
{
	return which == RL_WAN_DOWNLOAD || which == RL_WAN_UPLOAD;
}

static enum ratelimit_source source_of(const struct ratelimit *rl, enum ratelimit_which which)
{
	if (rl->overridden[which])
		return RL_SRC_RUNTIME;
	if (rl->window_on && windowed(which))
		return RL_SRC_WINDOW;
	return RL_SRC_CONFIG;
}

static uint64_t in_force(const struct ratelimit *rl, enum ratelimit_which which)
{
	switch (source_of(rl, which)) {
	case RL_SRC_RUNTIME:
		return rl->runtime[which];
	case RL_SRC_WINDOW:
		return rl->window;
	case RL_SRC_CONFIG:
		break;
	}
	return rl->cfg[which];
}

static void apply(struct ratelimit *rl, uint64_t now)
{
	bucket_rate(&rl->global[RL_DOWN], in_force(rl, RL_DOWNLOAD), now);
	bucket_rate(&rl->global[RL_UP], in_force(rl, RL_UPLOAD), now);
	bucket_rate(&rl->cls[RL_DOWN][RL_LAN], in_force(rl, RL_LAN_DOWNLOAD), now);
	bucket_rate(&rl->cls[RL_UP][RL_LAN], in_force(rl, RL_LAN_UPLOAD), now);
	bucket_rate(&rl->cls[RL_DOWN][RL_WAN], in_force(rl, RL_WAN_DOWNLOAD), now);
	bucket_rate(&rl->cls[RL_UP][RL_WAN], in_force(rl, RL_WAN_UPLOAD), now);
}

struct ratelimit *ratelimit_new(void)
{
	return xcalloc(1, sizeof(struct ratelimit));
}

void ratelimit_free(struct ratelimit *rl)
{
	free(rl);
}

static int check(enum ratelimit_which which, uint64_t bits_per_sec)
{
	if ((unsigned)which >= RL__SETTINGS)
		return ferry_errf(FERRY_EINVAL, "rate limit setting %d is unknown", (int)which);
	if (bits_per_sec > RATELIMIT_MAX_RATE)
		return ferry_errf(FERRY_EINVAL, "%s rate %llu bit/s is above the limit of %llu",
				  names[which], (unsigned long long)bits_per_sec,
				  (unsigned long long)RATELIMIT_MAX_RATE);
	return 0;
}

int ratelimit_set(struct ratelimit *rl, enum ratelimit_which which, uint64_t bits_per_sec,
		  uint64_t now)
{
	int rc = check(which, bits_per_sec);

	if (rc < 0)
		return rc;
	rl->cfg[which] = bits_per_sec;
	apply(rl, now);
	return 0;
}

int ratelimit_set_window(struct ratelimit *rl, bool in_force, uint64_t bits_per_sec, uint64_t now)
{
	if (bits_per_sec > RATELIMIT_MAX_RATE)
		return ferry_errf(
		    FERRY_EINVAL, "wan_window rate %llu bit/s is above the limit of %llu",
		    (unsigned long long)bits_per_sec, (unsigned long long)RATELIMIT_MAX_RATE);
	rl->window_on = in_force;
	rl->window = in_force ? bits_per_sec : 0;
	apply(rl, now);
	return 0;
}

bool ratelimit_window(const struct ratelimit *rl, uint64_t *bits_per_sec)
{
	if (rl->window_on && bits_per_sec != NULL)
		*bits_per_sec = rl->window;
	return rl->window_on;
}

int ratelimit_override(struct ratelimit *rl, enum ratelimit_which which, uint64_t bits_per_sec,
		       uint64_t now)
{
	int rc = check(which, bits_per_sec);

	if (rc < 0)
		return rc;
	rl->overridden[which] = true;
	rl->runtime[which] = bits_per_sec;
	apply(rl, now);
	return 0;
}

int ratelimit_clear_override(struct ratelimit *rl, enum ratelimit_which which, uint64_t now)
{
	int rc = check(which, 0);

	if (rc < 0)
		return rc;
	rl->overridden[which] = false;
	rl->runtime[which] = 0;
	apply(rl, now);
	return 0;
}

uint64_t ratelimit_get(const struct ratelimit *rl, enum ratelimit_which which)
{
	return (unsigned)which < RL__SETTINGS ? in_force(rl, which) : 0;
}

enum ratelimit_source ratelimit_source(const struct ratelimit *rl, enum ratelimit_which which)
{
	return (unsigned)which < RL__SETTINGS ? source_of(rl, which) : RL_SRC_CONFIG;
}

uint64_t ratelimit_configured(const struct ratelimit *rl, enum ratelimit_which which)
{
	return (unsigned)which < RL__SETTINGS ? rl->cfg[which] : 0;
}

const char *ratelimit_source_name(enum ratelimit_source src)
{
	static const char *const srcs[] = {"config", "window", "runtime"};

	return (unsigned)src < ARRAY_SIZE(srcs) ? srcs[src] : NULL;
}

uint64_t ratelimit_effective(const struct ratelimit *rl, enum ratelimit_dir dir,
			     enum ratelimit_class cls)
{
	uint64_t a = rl->global[dir & 1].rate, b = rl->cls[dir & 1][cls & 1].rate;

	/* The lower of the two, where 0 means unlimited. */
	if (!a || !b)
		return a | b;
	return MIN(a, b);
}

/* ms until b is out of debt (0 if it is not in debt). */
static uint64_t debt_wait(const struct bucket *b)
{
	if (!b->rate || b->tokens >= 0)
		return 0;
	return ((uint64_t)-b->tokens + b->rate - 1) / b->rate;
}

static void take(struct bucket *b, uint64_t bytes)
{
	if (b->rate)
		b->tokens -= (int64_t)(bytes * UNITS_PER_BYTE);
}

static void refill_both(struct ratelimit *rl, enum ratelimit_dir dir, enum ratelimit_class cls,
			uint64_t now)
{
	refill(&rl->global[dir & 1], now);
	refill(&rl->cls[dir & 1][cls & 1], now);
}

static uint64_t pending(const struct ratelimit *rl, enum ratelimit_dir dir,
			enum ratelimit_class cls)
{
	return MAX(debt_wait(&rl->global[dir & 1]), debt_wait(&rl->cls[dir & 1][cls & 1]));
}

static void consume(struct ratelimit *rl, enum ratelimit_dir dir, enum ratelimit_class cls,
		    uint64_t bytes)
{
	bytes = MIN(bytes, RATELIMIT_MAX_BYTES);
	take(&rl->global[dir & 1], bytes);
	take(&rl->cls[dir & 1][cls & 1], bytes);
	rl->bytes[dir & 1][cls & 1] += bytes;
}

uint64_t ratelimit_take(struct ratelimit *rl, enum ratelimit_dir dir, enum ratelimit_class cls,
			uint64_t bytes, uint64_t now)
{
	uint64_t wait;

	/*
	 * The bytes are booked even when the caller must wait: asking is
	 * queueing, so callers are served in the order they asked, and one
	 * that always asks first cannot starve the others.
	 */
	refill_both(rl, dir, cls, now);
	wait = pending(rl, dir, cls);
	consume(rl, dir, cls, bytes);
	return wait;
}

uint64_t ratelimit_charge(struct ratelimit *rl, enum ratelimit_dir dir, enum ratelimit_class cls,
			  uint64_t bytes, uint64_t now)
{
	refill_both(rl, dir, cls, now);
	consume(rl, dir, cls, bytes);
	return pending(rl, dir, cls);
}

uint64_t ratelimit_bytes(const struct ratelimit *rl, enum ratelimit_dir dir,
			 enum ratelimit_class cls)
{
	return rl->bytes[dir & 1][cls & 1];
}

const char *ratelimit_name(enum ratelimit_which which)
{
	return (unsigned)which < RL__SETTINGS ? names[which] : NULL;
}

int ratelimit_by_name(const char *name)
{
	for (size_t i = 0; i < RL__SETTINGS; i++)
		if (!strcmp(name, names[i]))
			return (int)i;
	return ferry_errf(FERRY_EINVAL,
			  "'%s' is not a rate limit (download, upload, wan_download, wan_upload, "
			  "lan_download or lan_upload)",
			  name);
}
