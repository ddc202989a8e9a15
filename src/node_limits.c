/*
 * The node's rate limits: which rates are in force, from ferryd.conf, the
 * wan_window schedule and `ferryctl limit` (docs/scheduling.md, "Rate
 * limiting"; the layers are ratelimit.h's). The buckets themselves are
 * charged where bytes move (node_fetch.c).
 *
 * The config layer and the window are set by node__limits_apply(): at start,
 * on every reload and on every one-second tick, which is what switches a
 * wan_window on and off within a second of its boundary (local time, as
 * config_wan_rate_at() reads it). Overrides live in the limiter only: a
 * reload keeps them, a restart forgets them.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ferry/config.h"
#include "ferry/error.h"
#include "ferry/log.h"
#include "ferry/node.h"
#include "ferry/peer.h"
#include "ferry/ratelimit.h"
#include "ferry/util.h"
#include "node_int.h"

/* "2.0 Mbit/s", or "unlimited" for 0. */
static const char *rate_str(char *buf, size_t cap, uint64_t bps)
{
	if (bps == 0)
		snprintf(buf, cap, "unlimited");
	else
		fmt_rate(buf, cap, (double)bps);
	return buf;
}

/* The config key of each setting; NULL where ferryd.conf has none. */
static uint64_t config_value(const struct config *cfg, enum ratelimit_which which, const char **key)
{
	uint64_t v = 0;

	*key = NULL;
	switch (which) {
	case RL_DOWNLOAD:
		*key = "download_rate";
		v = cfg->download_rate;
		break;
	case RL_UPLOAD:
		*key = "upload_rate";
		v = cfg->upload_rate;
		break;
	case RL_WAN_DOWNLOAD:
		*key = "wan_download_rate";
		v = cfg->wan_download_rate;
		break;
	case RL_WAN_UPLOAD:
		*key = "wan_upload_rate";
		v = cfg->wan_upload_rate;
		break;
	case RL_LAN_DOWNLOAD:
	case RL_LAN_UPLOAD:
	case RL__SETTINGS:
		break;
	}
	/* The config module takes any rate; above 1 Tbit/s is as good as none. */
	return MIN(v, RATELIMIT_MAX_RATE);
}

/* The rates the buckets run at, per direction and link class. */
static void in_force(const struct node *n, uint64_t r[2][2])
{
	for (int d = 0; d < 2; d++)
		for (int c = 0; c < 2; c++)
			r[d][c] = ratelimit_effective(n->rl, (enum ratelimit_dir)d,
						      (enum ratelimit_class)c);
}

/*
 * A rate in force changed: the pauses peers are in were computed at the old
 * rates (at 16 kbit/s a 60 KiB frame's is 30 s), so end them now. Each peer
 * asks the limiter again with its next frame, and any debt left is paid at
 * the new rate.
 */
static void wake_peers(struct node *n, const uint64_t before[2][2])
{
	uint64_t after[2][2];

	in_force(n, after);
	if (memcmp(before, after, sizeof(after)) == 0)
		return;
	for (struct npeer *p = n->peers; p != NULL; p = p->next) {
		if (p->c == NULL)
			continue;
		if (p->read_paused) {
			uv_timer_stop(&p->read_timer);
			p->read_paused = false;
			node__reading_update(p);
		}
		if (p->send_waiting) {
			uv_timer_stop(&p->send_timer);
			p->send_waiting = false;
			node__serve_pump(p);
		}
	}
}

/* Set the config layer and the window from n->cfg and the time now. */
static void apply_config(struct node *n)
{
	uint64_t now = node__now(n), wrate = 0, was_rate = 0;
	bool win = config_wan_rate_at(n->cfg, time(NULL), &wrate);
	bool was = ratelimit_window(n->rl, &was_rate);
	char a[32], b[32];

	for (int i = 0; i < RL__SETTINGS; i++) {
		enum ratelimit_which w = (enum ratelimit_which)i;
		const char *key;
		uint64_t v = config_value(n->cfg, w, &key);

		if (ratelimit_configured(n->rl, w) == v)
			continue;
		if (ratelimit_source(n->rl, w) == RL_SRC_RUNTIME)
			log_notice(LOG_CONFIG,
				   "%s is now %s in the configuration, but %s stays at %s (set by "
				   "ferryctl limit) until ferryd restarts or 'ferryctl limit %s "
				   "config'",
				   key, rate_str(a, sizeof(a), v), ratelimit_name(w),
				   rate_str(b, sizeof(b), ratelimit_get(n->rl, w)),
				   ratelimit_name(w));
		ratelimit_set(n->rl, w, v, now);
	}
	wrate = MIN(wrate, RATELIMIT_MAX_RATE);
	if (win == was && (!win || wrate == was_rate))
		return;
	ratelimit_set_window(n->rl, win, wrate, now);
	if (win)
		log_info(LOG_CONFIG, "a wan_window is in force: WAN limit %s each way",
			 rate_str(a, sizeof(a), wrate));
	else
		log_info(LOG_CONFIG, "no wan_window is in force: WAN limits %s down, %s up",
			 rate_str(a, sizeof(a), n->cfg->wan_download_rate),
			 rate_str(b, sizeof(b), n->cfg->wan_upload_rate));
}

void node__limits_apply(struct node *n)
{
	uint64_t before[2][2];

	in_force(n, before);
	apply_config(n);
	wake_peers(n, before);
}

static void fill_row(struct node *n, enum ratelimit_which w, struct node_limit_row *row)
{
	row->name = ratelimit_name(w);
	row->rate_bps = ratelimit_get(n->rl, w);
	row->source = ratelimit_source_name(ratelimit_source(n->rl, w));
	row->config_bps = ratelimit_configured(n->rl, w);
}

void node_limits(struct node *n, void (*cb)(void *arg, const struct node_limit_row *row), void *arg)
{
	struct node_limit_row row;

	for (int i = 0; i < RL__SETTINGS; i++) {
		fill_row(n, (enum ratelimit_which)i, &row);
		cb(arg, &row);
	}
}

int node_limit_set(struct node *n, const char *name, const char *rate, struct node_limit_row *row)
{
	static const char *const source_note[] = {
	    [RL_SRC_CONFIG] = "as the configuration says",
	    [RL_SRC_WINDOW] = "as the wan_window in force says",
	    [RL_SRC_RUNTIME] = "set by ferryctl until ferryd restarts",
	};
	uint64_t now = node__now(n), bps = 0, before[2][2];
	enum ratelimit_which w;
	char buf[32];
	int rc;

	if (name == NULL || rate == NULL)
		return ferry_errf(FERRY_EINVAL, "a rate limit needs a name and a rate");
	if ((rc = ratelimit_by_name(name)) < 0)
		return rc;
	w = (enum ratelimit_which)rc;
	in_force(n, before);
	if (strcmp(rate, "config") == 0) {
		rc = ratelimit_clear_override(n->rl, w, now);
	} else if (parse_rate(rate, &bps) < 0) {
		return ferry_errf(FERRY_EINVAL,
				  "'%s' is not a rate (examples: 500kbit, 4mbit, 1gbit; 0 = "
				  "unlimited; config = as ferryd.conf says)",
				  rate);
	} else {
		rc = ratelimit_override(n->rl, w, bps, now);
	}
	if (rc < 0)
		return rc;
	wake_peers(n, before);
	log_info(LOG_CONFIG, "%s limit is now %s (%s)", name,
		 rate_str(buf, sizeof(buf), ratelimit_get(n->rl, w)),
		 source_note[ratelimit_source(n->rl, w)]);
	if (row != NULL)
		fill_row(n, w, row);
	return 0;
}

void node__limits_status(struct node *n, struct node_status *out)
{
	out->limit_download = ratelimit_get(n->rl, RL_DOWNLOAD);
	out->limit_upload = ratelimit_get(n->rl, RL_UPLOAD);
	out->limit_wan_download = ratelimit_get(n->rl, RL_WAN_DOWNLOAD);
	out->limit_wan_upload = ratelimit_get(n->rl, RL_WAN_UPLOAD);
	out->limit_lan_download = ratelimit_get(n->rl, RL_LAN_DOWNLOAD);
	out->limit_lan_upload = ratelimit_get(n->rl, RL_LAN_UPLOAD);
}
