/*
 * The node's lifecycle, status, publish and export; see include/ferry/node.h.
 * Gossip and connections live in node_gossip.c, fetching and serving in
 * node_fetch.c, the shared state in node_int.h.
 *
 * Start order (node_new): store, node key, network key, store thread,
 * scheduler and limiter, known peers, catalog (tracked versions), network,
 * timers. node_stop undoes it in reverse: timers, network (every
 * connection goes down through node__on_down), worker-pool work, store
 * thread (which commits what was received), and finally the callback.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "ferry/catalog.h"
#include "ferry/discovery.h"
#include "ferry/error.h"
#include "ferry/fcrypto.h"
#include "ferry/log.h"
#include "ferry/peer.h"
#include "ferry/publish.h"
#include "ferry/ratelimit.h"
#include "ferry/sched.h"
#include "ferry/store.h"
#include "ferry/storeq.h"
#include "node_int.h"

/* Seconds between saves of the known-peer book. */
#define BOOK_SAVE_MS 10000
/* The value layout of a known peer in STORE_DB_PEERS (docs/gossip.md). */
#define PEER_REC_VERSION 1

uint64_t node__now(const struct node *n)
{
	return uv_now(n->loop);
}

static struct config *config_copy(const struct config *cfg)
{
	struct config *c = NULL;
	char *errors = NULL;
	int rc = config_parse(cfg->path, "", 0, cfg, &c, &errors);

	/* Parsing nothing over a valid config cannot fail. */
	if (rc < 0)
		fatal("copying the configuration: %s", errors ? errors : ferry_errmsg(rc));
	free(errors);
	return c;
}

static void trust_set(struct trust *t, const struct config *cfg)
{
	free(t->keys);
	t->n = cfg->n_publishers;
	t->keys = xreallocarray(NULL, t->n ? t->n : 1, 32);
	for (size_t i = 0; i < t->n; i++)
		memcpy(t->keys[i], cfg->publishers[i].pk, 32);
}

/* ---- the known-peer book in the store ---- */

struct gossip_peer *node__book_entry(struct node *n, const uint8_t id[32])
{
	struct gossip_peer *p = gossip_book_get(n->book, id);

	if (p == NULL && gossip_book_learn(n->book, id, "", "", GOSSIP_SRC_PEX, 0) >= 0)
		p = gossip_book_get(n->book, id);
	return p;
}

static int book_load_one(void *arg, const uint8_t *key, size_t klen, const uint8_t *val,
			 size_t vlen)
{
	struct node *n = arg;
	char addr[GOSSIP_ADDR_MAX + 1], site[GOSSIP_SITE_MAX + 1];
	size_t alen, slen;
	uint64_t seen = 0;

	if (klen != 32 || vlen < 12 || val[0] != PEER_REC_VERSION)
		return 0;
	for (int i = 0; i < 8; i++)
		seen = seen << 8 | val[2 + i];
	alen = val[10];
	if (vlen < 11 + alen + 1)
		return 0;
	slen = val[11 + alen];
	if (vlen != 12 + alen + slen || alen > GOSSIP_ADDR_MAX || slen > GOSSIP_SITE_MAX)
		return 0;
	memcpy(addr, val + 11, alen);
	addr[alen] = '\0';
	memcpy(site, val + 12 + alen, slen);
	site[slen] = '\0';
	if (val[1] < GOSSIP_SRC_PEX || val[1] > GOSSIP_SRC_OUTBOUND)
		return 0;
	gossip_book_learn(n->book, key, addr, site, (enum gossip_source)val[1], (int64_t)seen);
	return 0;
}

static int book_load(struct node *n)
{
	struct store_rd *rd;
	int rc = store_rd_begin(n->st, &rd);

	if (rc < 0)
		return rc;
	rc = store_blob_foreach(rd, STORE_DB_PEERS, book_load_one, n);
	store_rd_end(rd);
	return rc;
}

struct book_save {
	size_t n;
	uint8_t (*ids)[32];
	uint8_t **vals;
	size_t *lens;
};

static int book_save_work(void *arg, struct store *st)
{
	struct book_save *s = arg;
	struct store_wr *wr;
	int rc = store_wr_begin(st, &wr);

	if (rc < 0)
		return rc;
	for (size_t i = 0; i < s->n && rc == 0; i++)
		rc = store_wr_blob_put(wr, STORE_DB_PEERS, s->ids[i], 32, s->vals[i], s->lens[i]);
	if (rc < 0) {
		store_wr_abort(wr);
		return rc;
	}
	return store_wr_commit(wr);
}

static void book_save_done(void *arg, int rc)
{
	struct book_save *s = arg;

	if (rc < 0)
		log_warn(LOG_PEER, "cannot save the known peers: %s", ferry_strerror(rc));
	for (size_t i = 0; i < s->n; i++)
		free(s->vals[i]);
	free(s->vals);
	free(s->lens);
	free(s->ids);
	free(s);
}

/* Write every book entry that has an address (the book is small: GOSSIP_BOOK_MAX). */
static void book_save(struct node *n)
{
	struct book_save *s = xcalloc(1, sizeof(*s));
	size_t cnt = gossip_book_count(n->book);

	s->ids = xreallocarray(NULL, cnt ? cnt : 1, 32);
	s->vals = xreallocarray(NULL, cnt ? cnt : 1, sizeof(*s->vals));
	s->lens = xreallocarray(NULL, cnt ? cnt : 1, sizeof(*s->lens));
	for (size_t i = 0; i < cnt; i++) {
		const struct gossip_peer *p = gossip_book_at(n->book, i);
		size_t alen = strlen(p->addr), slen = strlen(p->site), k = s->n;
		uint8_t *v;

		if (alen == 0)
			continue;
		v = xmalloc(12 + alen + slen);
		v[0] = PEER_REC_VERSION;
		v[1] = (uint8_t)p->source;
		for (int b = 0; b < 8; b++)
			v[2 + b] = (uint8_t)((uint64_t)p->last_seen >> (56 - 8 * b));
		v[10] = (uint8_t)alen;
		memcpy(v + 11, p->addr, alen);
		v[11 + alen] = (uint8_t)slen;
		memcpy(v + 12 + alen, p->site, slen);
		memcpy(s->ids[k], p->id, 32);
		s->vals[k] = v;
		s->lens[k] = 12 + alen + slen;
		s->n++;
	}
	storeq_job(n->sq, book_save_work, book_save_done, s);
	n->book_dirty = false;
	n->last_book_save_ms = node__now(n);
}

/* ---- timers ---- */

static void rate_sample(struct nrate *r, uint64_t bytes, double dt_s)
{
	double inst = dt_s > 0 ? (double)(bytes - r->last_bytes) * 8.0 / dt_s : 0;

	r->last_bytes = bytes;
	/* About a 5-second average at one sample a second. */
	r->bps = r->bps * 0.8 + inst * 0.2;
}

static void on_tick(uv_timer_t *t)
{
	struct node *n = t->data;
	char msg[sizeof(n->store_error)];

	if (n->stopping)
		return;
	rate_sample(&n->rate_in, n->bytes_received, 1.0);
	rate_sample(&n->rate_out, n->bytes_served, 1.0);
	for (struct npeer *p = n->peers; p != NULL; p = p->next) {
		rate_sample(&p->rate_in, p->bytes_received, 1.0);
		rate_sample(&p->rate_out, p->bytes_served, 1.0);
	}
	if (storeq_error(n->sq, msg, sizeof(msg)))
		snprintf(n->store_error, sizeof(n->store_error), "%s", msg);
	else
		n->store_error[0] = '\0';
	node__limits_apply(n);
	node__fetch_tick(n);
	node__gossip_tick(n);
	node__metrics_tick(n);
	if (n->book_dirty && node__now(n) - n->last_book_save_ms >= BOOK_SAVE_MS)
		book_save(n);
}

static void on_handle_closed(uv_handle_t *h)
{
	struct node *n = h->data;

	n->handles_open--;
	node__stop_progress(n);
}

/* ---- lifecycle ---- */

static uint64_t seed64(void)
{
	uint64_t s = 0;

	while (s == 0)
		fcrypto_random(&s, sizeof(s));
	return s;
}

static int netkey_load(struct node *n)
{
	int rc = fcrypto_netkey_read(n->cfg->network_key_file, n->netkey);

	if (rc == FERRY_ENOENT)
		return ferry_errf(
		    rc,
		    "network key file %s does not exist: every node of a network "
		    "needs the same key (make one with `ferryctl netkey --out %s` and "
		    "copy it to every node)",
		    n->cfg->network_key_file, n->cfg->network_key_file);
	if (rc < 0)
		return ferry_errf(rc, "network key file %s: %s", n->cfg->network_key_file,
				  ferry_errmsg(rc));
	return 0;
}

/* A LAN beacon from another node of this network: remember it; the dial loop does the rest. */
static void on_lan_found(void *arg, const struct discovery_beacon *b, const char *host)
{
	struct node *n = arg;
	char addr[GOSSIP_ADDR_MAX + 1];

	peer_addr_format(addr, sizeof(addr), host, b->port);
	if (gossip_book_learn(n->book, b->id, addr, b->site, GOSSIP_SRC_LAN, (int64_t)time(NULL)) ==
	    1) {
		char id[ID_SHORT_LEN];

		log_info(LOG_PEER, "LAN discovery: node %s at %s", id_short(id, b->id), addr);
		n->book_dirty = true;
	}
}

static void disc_start(struct node *n)
{
	struct discovery_beacon self = {0};
	int rc;

	if (!n->cfg->lan_discovery || peer_net_port(n->net) == 0)
		return;
	memcpy(self.id, n->key.pk, 32);
	self.port = peer_net_port(n->net);
	snprintf(self.site, sizeof(self.site), "%s", n->cfg->site);
	rc = discovery_start(n->loop, n->netkey, &self, DISCOVERY_PORT, on_lan_found, n, &n->disc);
	if (rc < 0) {
		log_warn(LOG_PEER, "%s: running without LAN discovery", ferry_errmsg(rc));
		return;
	}
	n->handles_open++;
}

static void on_disc_stopped(void *arg)
{
	struct node *n = arg;

	n->handles_open--;
	node__stop_progress(n);
}

static int net_start(struct node *n)
{
	struct peer_net_config pc = {
	    .key = &n->key,
	    .netkey = n->netkey,
	    .listen_host = n->cfg->listen.host,
	    .listen_port = n->cfg->listen.port,
	    .site = n->cfg->site,
	    .wan_congestion = n->cfg->wan_congestion,
	    .cb =
		{
		    .ctx = n,
		    .allow = node__allow,
		    .on_up = node__on_up,
		    .on_message = node__on_message,
		    .on_writable = node__on_writable,
		    .on_lane = node__on_lane,
		    .on_down = node__on_down,
		    .on_dial_error = node__on_dial_error,
		},
	};
	int rc = peer_net_new(n->loop, &pc, &n->net);

	if (rc < 0)
		return rc;
	if (peer_net_port(n->net) != 0)
		log_notice(LOG_PEER, "listening on %s port %u", n->cfg->listen.host,
			   (unsigned)peer_net_port(n->net));
	return node__gossip_start(n);
}

static void flag_set(void *arg)
{
	*(bool *)arg = true;
}

int node_new(struct uv_loop_s *loop, const struct config *cfg, struct node **out)
{
	struct node *n = xcalloc(1, sizeof(*n));
	struct storeq_params qp;
	char hex[NODEKEY_ID_HEX_LEN], msg[512];
	int rc;

	*out = NULL;
	n->loop = loop;
	n->cfg = config_copy(cfg);
	n->started_ms = uv_now(loop);
	n->started_unix = (int64_t)time(NULL);
	n->test_corrupt_serve = getenv("FERRY_TEST_CORRUPT_SERVE") != NULL &&
				strcmp(getenv("FERRY_TEST_CORRUPT_SERVE"), "1") == 0;
	n->test_gossip_all = getenv("FERRY_TEST_GOSSIP_ALL") != NULL &&
			     strcmp(getenv("FERRY_TEST_GOSSIP_ALL"), "1") == 0;
	trust_set(&n->trust, n->cfg);

	if ((rc = fcrypto_init()) < 0)
		goto fail;
	if ((rc = store_open(n->cfg->state_dir, STORE_WRITE | STORE_CREATE, &n->st)) < 0)
		goto fail;
	if ((rc = nodekey_load_or_create(n->cfg->state_dir, &n->key)) < 0)
		goto fail;
	if ((rc = netkey_load(n)) < 0)
		goto fail;
	storeq_params_default(&qp);
	qp.min_free_space = n->cfg->min_free_space;
	if ((rc = storeq_new(loop, n->st, &qp, node__on_commit, n, &n->sq)) < 0)
		goto fail;
	n->rng = seed64();
	n->sched = sched_new(NULL, n->key.pk, n->rng);
	n->rl = ratelimit_new();
	node__limits_apply(n);
	n->book = gossip_book_new(n->key.pk);
	if ((rc = book_load(n)) < 0)
		log_warn(LOG_PEER, "cannot read the known peers: %s", ferry_errmsg(rc));
	node__fetch_init(n);
	if ((rc = node__load_catalog(n)) < 0)
		goto fail;
	if ((rc = net_start(n)) < 0)
		goto fail;
	disc_start(n);

	uv_timer_init(loop, &n->tick);
	n->tick.data = n;
	uv_timer_start(&n->tick, on_tick, 1000, 1000);
	n->handles_open++;
	if (n->test_corrupt_serve)
		log_warn(LOG_MAIN,
			 "FERRY_TEST_CORRUPT_SERVE is set: this node serves corrupt chunks "
			 "(a test hook)");
	if (n->test_gossip_all)
		log_warn(LOG_MAIN, "FERRY_TEST_GOSSIP_ALL is set: this node pushes every stored "
				   "manifest, old ones too (a test hook)");
	log_notice(LOG_MAIN, "node %s ready", nodekey_id_hex(hex, n->key.pk));
	*out = n;
	return 0;
fail:
	snprintf(msg, sizeof(msg), "%s", ferry_errmsg(rc));
	if (n->sq != NULL) {
		bool closed = false;

		/* Other handles of the caller (signals) keep the loop alive: run it only until
		 * this. */
		storeq_close(n->sq, flag_set, &closed);
		n->sq = NULL;
		while (!closed)
			uv_run(loop, UV_RUN_ONCE);
	}
	node_free(n);
	return ferry_errf(rc, "%s", msg);
}

static void on_sq_closed(void *arg)
{
	struct node *n = arg;

	n->sq_closed = true;
	node__stop_progress(n);
}

void node__stop_progress(struct node *n)
{
	if (!n->stopping)
		return;
	if (n->npeers > 0 || n->pending_work > 0)
		return;
	if (n->sq != NULL) {
		struct storeq *sq = n->sq;

		n->sq = NULL;
		storeq_close(sq, on_sq_closed, n);
		return;
	}
	if (!n->sq_closed || n->handles_open > 0 || n->stop_cb == NULL)
		return;
	{
		void (*cb)(void *) = n->stop_cb;

		n->stop_cb = NULL;
		cb(n->stop_arg);
	}
}

struct store_job {
	struct node *n;
	int (*work)(void *arg, struct store *st);
	void (*done)(void *arg, int rc);
	void *arg;
	char msg[1024]; /* ferry_errmsg() of a failed work, for the loop thread */
};

static int store_job_work(void *arg, struct store *st)
{
	struct store_job *sj = arg;
	int rc = sj->work(sj->arg, st);

	if (rc < 0)
		snprintf(sj->msg, sizeof(sj->msg), "%s", ferry_errmsg(rc));
	return rc;
}

static void store_job_done(void *arg, int rc)
{
	struct store_job *sj = arg;
	struct node *n = sj->n;

	n->pending_work--;
	if (rc < 0)
		ferry_errf(rc, "%s", sj->msg);
	sj->done(sj->arg, rc);
	free(sj);
	node__stop_progress(n);
}

void node__store_job(struct node *n, int (*work)(void *arg, struct store *st),
		     void (*done)(void *arg, int rc), void *arg)
{
	struct store_job *sj = xcalloc(1, sizeof(*sj));

	sj->n = n;
	sj->work = work;
	sj->done = done;
	sj->arg = arg;
	n->pending_work++;
	storeq_job(n->sq, store_job_work, store_job_done, sj);
}

void node_stop(struct node *n, void (*cb)(void *arg), void *arg)
{
	if (n->stopping)
		return;
	n->stopping = true;
	n->stop_cb = cb;
	n->stop_arg = arg;
	log_info(LOG_MAIN,
		 "stopping: closing connections and flushing the store (%" PRIu64
		 " bytes of chunks received, %" PRIu64 " served since start)",
		 n->bytes_received, n->bytes_served);
	if (n->book_dirty)
		book_save(n);
	uv_timer_stop(&n->tick);
	uv_close((uv_handle_t *)&n->tick, on_handle_closed);
	uv_timer_stop(&n->ae_timer);
	uv_close((uv_handle_t *)&n->ae_timer, on_handle_closed);
	for (struct npeer *p = n->peers; p != NULL; p = p->next)
		node__peer_timers_close(p);
	if (n->disc != NULL) {
		discovery_stop(n->disc, on_disc_stopped, n);
		n->disc = NULL;
	}
	peer_net_free(n->net);
	n->net = NULL;
	node__stop_progress(n);
}

void node_free(struct node *n)
{
	if (n == NULL)
		return;
	node__fetch_free(n);
	node__autos_free(n);
	sched_free(n->sched);
	ratelimit_free(n->rl);
	gossip_book_free(n->book);
	store_close(n->st);
	nodekey_wipe(&n->key);
	fcrypto_wipe(n->netkey, sizeof(n->netkey));
	free(n->trust.keys);
	free(n->newest);
	for (struct nwant *w = n->wants, *next; w != NULL; w = next) {
		next = w->next;
		free(w);
	}
	config_free(n->cfg);
	free(n);
}

int node_reload(struct node *n, const struct config *cfg)
{
	struct config *old = n->cfg;

	n->cfg = config_copy(cfg);
	trust_set(&n->trust, n->cfg);
	storeq_set_min_free(n->sq, n->cfg->min_free_space);
	node__limits_apply(n);
	node__gossip_reload(n, old);
	if (n->cfg->lan_discovery && n->disc == NULL) {
		disc_start(n);
	} else if (!n->cfg->lan_discovery && n->disc != NULL) {
		discovery_stop(n->disc, on_disc_stopped, n);
		n->disc = NULL;
	}
	if (strcmp(old->site, n->cfg->site) != 0)
		log_warn(LOG_CONFIG, "site changed to '%s': peers hear of it when ferryd restarts",
			 n->cfg->site);
	node__wants_update(n);
	config_free(old);
	return 0;
}

/* ---- status ---- */

void node_status(struct node *n, struct node_status *out)
{
	struct store_stats ss = {0};
	char msg[sizeof(n->store_error)];
	struct peer_net_stats ps;

	memset(out, 0, sizeof(*out));
	memcpy(out->node_id, n->key.pk, 32);
	out->site = n->cfg->site;
	out->uptime_s = (node__now(n) - n->started_ms) / 1000u;
	if (store_stats(n->st, &ss) == 0) {
		out->store_bytes = ss.chunk_bytes;
		out->store_chunks = ss.chunks;
		out->fs_free = ss.fs_free;
	}
	out->min_free_space = n->cfg->min_free_space;
	out->cache_quota = n->cfg->cache_quota;
	out->peers_connected = n->npeers;
	out->peers_known = (unsigned)gossip_book_count(n->book);
	out->rate_in_bps = n->rate_in.bps;
	out->rate_out_bps = n->rate_out.bps;
	out->bytes_received = n->bytes_received;
	out->bytes_served = n->bytes_served;
	out->rx_lan = n->rx_link[0];
	out->rx_wan = n->rx_link[1];
	out->tx_lan = n->tx_link[0];
	out->tx_wan = n->tx_link[1];
	out->chunks_verified = n->chunks_verified;
	out->chunks_rejected = n->chunks_rejected;
	peer_net_stats(n->net, &ps);
	out->reconnects = ps.revived;
	out->resumed_bytes = n->resumed_bytes;
	if (n->sq != NULL && storeq_error(n->sq, msg, sizeof(msg)))
		snprintf(n->store_error, sizeof(n->store_error), "%s", msg);
	out->store_error = n->store_error[0] ? n->store_error : NULL;
	node__limits_status(n, out);
}

static struct npeer *peer_by_id(struct node *n, const uint8_t id[32])
{
	for (struct npeer *p = n->peers; p != NULL; p = p->next)
		if (memcmp(p->id, id, 32) == 0)
			return p;
	return NULL;
}

struct targets_arg {
	struct node *n;
	void (*cb)(void *arg, const struct node_peer_row *row);
	void *arg;
};

/* Configured targets that never answered have no book entry: show them by address. */
static void target_row(void *arg, const struct peer_target_info *ti)
{
	struct targets_arg *a = arg;
	struct node_peer_row row = {0};
	char addr[GOSSIP_ADDR_MAX + 1];

	if (ti->node_id != NULL && gossip_book_get(a->n->book, ti->node_id) != NULL)
		return;
	if (ti->state == PEER_TARGET_SELF)
		return;
	peer_addr_format(addr, sizeof(addr), ti->host, ti->port);
	row.address = addr;
	row.site = "";
	row.state = ti->state == PEER_TARGET_BACKOFF ? "backoff" : "connecting";
	row.rtt_ms = -1;
	a->cb(a->arg, &row);
}

void node_peers(struct node *n, void (*cb)(void *arg, const struct node_peer_row *row), void *arg)
{
	uint64_t now = node__now(n);
	struct targets_arg ta = {n, cb, arg};

	for (size_t i = 0; i < gossip_book_count(n->book); i++) {
		struct gossip_peer *g = gossip_book_at(n->book, i);
		struct npeer *p = peer_by_id(n, g->id);
		struct node_peer_row row = {0};
		struct peer_conn_stats cs;
		struct sched_peer_info si;
		uint64_t until = sched_banned_until(n->sched, g->id, now);

		memcpy(row.node_id, g->id, 32);
		row.address = g->addr;
		row.site = g->site;
		row.rtt_ms = -1;
		row.last_seen = g->last_seen;
		row.bytes_received = g->bytes_received;
		row.bytes_served = g->bytes_served;
		if (p != NULL && p->c != NULL) {
			row.state = "connected";
			row.lan = p->lan;
			peer_conn_stats(p->c, &cs);
			row.rtt_ms = cs.rtt_ms;
			row.rate_in_bps = p->rate_in.bps;
			row.rate_out_bps = p->rate_out.bps;
			row.last_seen = cs.last_seen_unix;
			row.lanes = cs.lanes;
			if (peer_conn_congestion(p->c)[0] != '\0')
				row.congestion = peer_conn_congestion(p->c);
			if (p->in_sched && sched_peer_info(n->sched, p->h, &si) == 0) {
				row.window_bytes = si.window_bytes;
				row.window_rtt_us = si.rtt_us;
			}
			if (p->addr[0] == '\0')
				row.address = peer_conn_addr(p->c);
		} else if (until > 0) {
			row.state = "banned";
			row.banned_until = (int64_t)time(NULL) + (int64_t)((until - now + 999) / 1000);
		} else if (g->next_dial > now) {
			row.state = "backoff";
		} else {
			row.state = "idle";
		}
		cb(arg, &row);
	}
	if (n->net != NULL)
		peer_net_targets(n->net, target_row, &ta);
}

struct models_arg {
	struct node *n;
	struct store_rd *rd;
	void (*cb)(void *arg, const struct node_model_row *row);
	void *arg;
};

static int model_row(void *arg, const char *name, uint64_t version, const uint8_t *bytes,
		     size_t len)
{
	struct models_arg *a = arg;
	struct node_model_row row = {0};
	struct manifest *m = NULL;
	struct store_head head = {0};
	struct nver *v = node__ver_find(a->n, name, version);

	if (v != NULL) {
		m = v->m;
	} else if (manifest_open(bytes, len, &a->n->trust, &m, NULL) < 0) {
		return 0;
	}
	row.name = name;
	row.version = version;
	row.label = m->label;
	row.size = manifest_total_size(m);
	if (v != NULL && v->state != NV_NEED_INDEX) {
		row.present_pct =
		    v->need_bytes ? 100.0 * (double)v->have_bytes / (double)v->need_bytes : 100.0;
	} else {
		struct catalog_presence cp;

		if (catalog_presence(a->rd, m, &cp) == 0)
			row.present_pct = cp.index_complete && cp.need_bytes == 0
					      ? 100.0
					      : (cp.need_bytes ? 100.0 * (double)cp.have_bytes /
								     (double)cp.need_bytes
							       : 0.0);
	}
	store_head_get(a->rd, name, &head);
	row.active = head.active == version;
	row.pinned = store_pinned(a->rd, name, version);
	row.wanted = v != NULL && v->wanted;
	a->cb(a->arg, &row);
	if (v == NULL)
		manifest_free(m);
	return 0;
}

void node_models(struct node *n, void (*cb)(void *arg, const struct node_model_row *row), void *arg)
{
	struct models_arg a = {.n = n, .cb = cb, .arg = arg};

	if (store_rd_begin(n->st, &a.rd) < 0)
		return;
	store_manifest_foreach(a.rd, NULL, model_row, &a);
	store_rd_end(a.rd);
}

/* ---- fetch, progress, cancel ---- */

static uint64_t fs_free_above_floor(struct node *n)
{
	struct statvfs v;
	uint64_t avail;

	if (statvfs(n->cfg->state_dir, &v) != 0)
		return UINT64_MAX;
	avail = (uint64_t)v.f_bavail * v.f_frsize;
	return avail > n->cfg->min_free_space ? avail - n->cfg->min_free_space : 0;
}

static struct nwant *want_find(struct node *n, const char *name, uint64_t version)
{
	for (struct nwant *w = n->wants; w != NULL; w = w->next)
		if (strcmp(w->name, name) == 0 && w->version == version)
			return w;
	return NULL;
}

/* The newest stored version of name, 0 if none. */
static uint64_t newest_of(struct node *n, const char *name)
{
	for (size_t i = 0; i < n->nnewest; i++)
		if (strcmp(n->newest[i].name, name) == 0)
			return n->newest[i].version;
	return 0;
}

int node_fetch(struct node *n, const char *name, uint64_t version, struct node_progress *out)
{
	struct nwant *w;
	uint64_t resolved = version ? version : newest_of(n, name);
	int rc = manifest_name_check(name);

	memset(out, 0, sizeof(*out));
	if (rc < 0)
		return rc;
	if (resolved != 0) {
		struct nver *v = node__ver_find(n, name, resolved);

		if (v != NULL && v->state != NV_NEED_INDEX) {
			node__ver_progress(n, v, out);
			if (!out->complete &&
			    out->need_bytes - out->have_bytes > fs_free_above_floor(n)) {
				char a[32], b[32];

				return ferry_errf(
				    FERRY_ENOSPC,
				    "%s@%" PRIu64 " needs %s more, and only %s are free "
				    "above min_free_space",
				    name, resolved,
				    fmt_bytes(a, sizeof(a), out->need_bytes - out->have_bytes),
				    fmt_bytes(b, sizeof(b), fs_free_above_floor(n)));
			}
		}
	}
	if (want_find(n, name, resolved) == NULL) {
		w = xcalloc(1, sizeof(*w));
		snprintf(w->name, sizeof(w->name), "%s", name);
		w->version = resolved;
		w->next = n->wants;
		n->wants = w;
		log_info(LOG_FETCH, "fetch %s@%" PRIu64 " requested", name, resolved);
	}
	node__wants_update(n);
	rc = node_progress(n, name, resolved, out);
	if (rc == FERRY_ENOENT) {
		memset(out, 0, sizeof(*out));
		out->waiting_manifest = true;
		rc = 0;
	}
	return rc;
}

int node_progress(struct node *n, const char *name, uint64_t version, struct node_progress *out)
{
	struct nver *v;

	memset(out, 0, sizeof(*out));
	if (version == 0)
		version = newest_of(n, name);
	if (version == 0) {
		if (want_find(n, name, 0) != NULL) {
			out->waiting_manifest = true;
			return 0;
		}
		return ferry_errf(FERRY_ENOENT, "no model '%s'", name);
	}
	v = node__ver_find(n, name, version);
	if (v != NULL) {
		node__ver_progress(n, v, out);
		return 0;
	}
	if (want_find(n, name, version) != NULL) {
		out->version = version;
		out->waiting_manifest = true;
		return 0;
	}
	{
		struct manifest *m = NULL;
		struct catalog_presence cp;
		struct store_rd *rd;
		int rc = catalog_load(n->st, &n->trust, name, version, &m);

		if (rc < 0)
			return rc;
		rc = store_rd_begin(n->st, &rd);
		if (rc == 0) {
			rc = catalog_presence(rd, m, &cp);
			store_rd_end(rd);
		}
		if (rc == 0) {
			out->version = version;
			out->need_bytes = cp.need_bytes;
			out->have_bytes = cp.have_bytes;
			out->complete = cp.index_complete && cp.have_chunks == cp.need_chunks;
		}
		manifest_free(m);
		return rc;
	}
}

int node_cancel(struct node *n, const char *name, uint64_t version)
{
	bool found = false;

	for (struct nwant **pw = &n->wants; *pw != NULL;) {
		struct nwant *w = *pw;

		if (strcmp(w->name, name) == 0 &&
		    (version == 0 || w->version == version || w->version == 0)) {
			*pw = w->next;
			free(w);
			found = true;
		} else {
			pw = &w->next;
		}
	}
	if (!found && config_wants(n->cfg, name))
		return ferry_errf(FERRY_EPERM,
				  "'%s' is fetched because a want = line of %s matches it; "
				  "change the configuration to stop it",
				  name, n->cfg->path[0] ? n->cfg->path : "the configuration");
	if (!found)
		return ferry_errf(FERRY_ENOENT, "%s@%" PRIu64 " is not being fetched by request",
				  name, version);
	log_info(LOG_FETCH, "fetch of %s@%" PRIu64 " cancelled", name, version);
	node__wants_update(n);
	return 0;
}

/* ---- publish ---- */

struct ingest_job {
	int dirfd;
	struct publish_opts opts;
	char *name, *label;
	uint8_t *body;
	size_t len;
	struct publish_stats stats;
	void (*cb)(void *arg, int rc, const uint8_t *body, size_t len,
		   const struct publish_stats *stats);
	void *arg;
};

/*
 * Runs on the store thread: publishing writes chunks, and the store has one
 * writer. Received chunks wait meanwhile (the node stops requesting when
 * the queue is full).
 */
static int ingest_work(void *arg, struct store *st)
{
	struct ingest_job *j = arg;
	int rc = publish_ingest(st, j->dirfd, &j->opts, &j->body, &j->len, &j->stats);

	close(j->dirfd);
	return rc;
}

static void ingest_done(void *arg, int rc)
{
	struct ingest_job *j = arg;

	j->cb(j->arg, rc, j->body, j->len, &j->stats);
	free(j->body);
	free(j->name);
	free(j->label);
	free(j);
}

int node_publish_ingest(struct node *n, int dirfd, const struct publish_opts *opts,
			void (*cb)(void *arg, int rc, const uint8_t *body, size_t len,
				   const struct publish_stats *stats),
			void *arg)
{
	struct ingest_job *j;
	int rc;

	if (n->stopping) {
		close(dirfd);
		return ferry_errf(FERRY_ECANCELED, "ferryd is stopping");
	}
	if ((rc = manifest_name_check(opts->name)) < 0) {
		close(dirfd);
		return rc;
	}
	j = xcalloc(1, sizeof(*j));
	j->dirfd = dirfd;
	j->opts = *opts;
	j->name = xstrdup(opts->name);
	j->label = opts->label ? xstrdup(opts->label) : NULL;
	j->opts.name = j->name;
	j->opts.label = j->label;
	j->cb = cb;
	j->arg = arg;
	log_info(LOG_PUBLISH, "ingesting %s@%" PRIu64, j->name, opts->version);
	node__store_job(n, ingest_work, ingest_done, j);
	return 0;
}

struct accept_job {
	struct node *n;
	uint8_t *bytes;
	size_t len;
	const struct trust *trust;
	unsigned flags;
	struct manifest *m;
	void (*cb)(void *arg, int rc);
	void *arg;
};

static int accept_work(void *arg, struct store *st)
{
	struct accept_job *j = arg;

	return catalog_accept(st, j->trust, j->bytes, j->len, j->flags, &j->m);
}

static void publish_accept_done(void *arg, int rc)
{
	struct accept_job *j = arg;
	struct node *n = j->n;

	if (rc < 0) {
		j->cb(j->arg, rc);
	} else {
		uint8_t hash[32];

		fcrypto_id(hash, j->bytes, j->len);
		log_notice(LOG_PUBLISH, "published %s@%" PRIu64 " (%s)", j->m->name, j->m->version,
			   j->m->label);
		if (rc == CATALOG_NEWEST || rc == CATALOG_REPLACED)
			node__newest_update(n, j->m->name, j->m->version, hash);
		if (!n->stopping) {
			node__version_known(n, j->m, hash);
			j->m = NULL;
			if (gossip_forward(rc))
				node__push_manifest(n, j->bytes, j->len, NULL);
		}
		j->cb(j->arg, 0);
	}
	manifest_free(j->m);
	free(j->bytes);
	free(j);
}

int node_publish_commit(struct node *n, const uint8_t *signed_bytes, size_t len,
			void (*cb)(void *arg, int rc), void *arg)
{
	struct accept_job *j;

	if (n->stopping)
		return ferry_errf(FERRY_ECANCELED, "ferryd is stopping");
	if (len == 0 || len > MANIFEST_SIGNED_MAX)
		return ferry_errf(FERRY_EINVAL, "a signed manifest of %zu bytes", len);
	j = xcalloc(1, sizeof(*j));
	j->n = n;
	j->bytes = xmalloc(len);
	memcpy(j->bytes, signed_bytes, len);
	j->len = len;
	j->trust = &n->trust;
	j->flags = CATALOG_EXPLICIT;
	j->cb = cb;
	j->arg = arg;
	node__store_job(n, accept_work, publish_accept_done, j);
	return 0;
}

/* ---- export ---- */

struct export_job {
	uv_work_t w;
	struct node *n;
	char name[MANIFEST_NAME_MAX + 1];
	uint64_t version;
	int fd;
	unsigned flags;
	int rc;
	char msg[512];
	void (*cb)(void *arg, int rc);
	void *arg;
};

struct versions {
	uint64_t *v;
	size_t n;
};

static int collect_version(void *arg, const char *name, uint64_t version, const uint8_t *bytes,
			   size_t len)
{
	struct versions *vs = arg;

	vs->v = xreallocarray(vs->v, vs->n + 1, sizeof(*vs->v));
	vs->v[vs->n++] = version;
	return 0;
}

/* The newest version of name whose every chunk is present; FERRY_ENOENT/EINCOMPLETE if none. */
static int newest_complete(struct node *n, const char *name, struct manifest **out)
{
	struct versions vs = {0};
	struct store_rd *rd;
	int rc = store_rd_begin(n->st, &rd);

	if (rc < 0)
		return rc;
	rc = store_manifest_foreach(rd, name, collect_version, &vs);
	store_rd_end(rd);
	if (rc < 0)
		goto out;
	if (vs.n == 0) {
		rc = ferry_errf(FERRY_ENOENT, "no model '%s'", name);
		goto out;
	}
	rc = ferry_errf(FERRY_EINCOMPLETE, "no version of '%s' is complete yet", name);
	for (size_t i = vs.n; i-- > 0;) {
		struct manifest *m = NULL;
		struct catalog_presence cp;

		if (catalog_load(n->st, &n->trust, name, vs.v[i], &m) < 0)
			continue;
		if (store_rd_begin(n->st, &rd) == 0) {
			int prc = catalog_presence(rd, m, &cp);

			store_rd_end(rd);
			if (prc == 0 && cp.index_complete && cp.have_chunks == cp.need_chunks) {
				*out = m;
				rc = 0;
				break;
			}
		}
		manifest_free(m);
	}
out:
	free(vs.v);
	return rc;
}

static void export_work(uv_work_t *w)
{
	struct export_job *j = w->data;
	struct manifest *m = NULL;
	int rc;

	if (j->version == 0)
		rc = newest_complete(j->n, j->name, &m);
	else
		rc = catalog_load(j->n->st, &j->n->trust, j->name, j->version, &m);
	if (rc == 0)
		rc = export_version(j->n->st, m, j->fd, j->flags);
	if (rc < 0)
		snprintf(j->msg, sizeof(j->msg), "%s", ferry_errmsg(rc));
	manifest_free(m);
	close(j->fd);
	j->rc = rc;
}

static void export_done(uv_work_t *w, int status)
{
	struct export_job *j = w->data;
	struct node *n = j->n;

	n->pending_work--;
	if (j->rc < 0)
		ferry_errf(j->rc, "%s", j->msg);
	j->cb(j->arg, j->rc);
	free(j);
	node__stop_progress(n);
}

int node_export(struct node *n, const char *name, uint64_t version, int outdirfd, unsigned flags,
		void (*cb)(void *arg, int rc), void *arg)
{
	struct export_job *j;
	int rc = manifest_name_check(name);

	if (rc == 0 && n->stopping)
		rc = ferry_errf(FERRY_ECANCELED, "ferryd is stopping");
	if (rc < 0) {
		close(outdirfd);
		return rc;
	}
	j = xcalloc(1, sizeof(*j));
	j->w.data = j;
	j->n = n;
	snprintf(j->name, sizeof(j->name), "%s", name);
	j->version = version;
	j->fd = outdirfd;
	j->flags = flags;
	j->cb = cb;
	j->arg = arg;
	rc = uv_queue_work(n->loop, &j->w, export_work, export_done);
	if (rc < 0) {
		close(outdirfd);
		free(j);
		return ferry_errf(FERRY_EIO, "cannot queue the export: %s", uv_strerror(rc));
	}
	n->pending_work++;
	return 0;
}
