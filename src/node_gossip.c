/*
 * The node's connections and gossip: peers coming up and going down,
 * manifests (eager push, anti-entropy digests, requests), peer exchange and
 * dialing learned peers. The decisions are gossip.c's; this file moves the
 * messages. See docs/gossip.md.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ferry/catalog.h"
#include "ferry/error.h"
#include "ferry/fcrypto.h"
#include "ferry/log.h"
#include "ferry/peer.h"
#include "ferry/sched.h"
#include "ferry/store.h"
#include "ferry/storeq.h"
#include "ferry/wire.h"
#include "node_int.h"

/* Digest entries accepted from one peer in one round (WIRE_DIGEST_MAX per message). */
#define DIGEST_ROUND_MAX (64u * WIRE_DIGEST_MAX)
/* Anti-entropy rounds between peer exchanges with the peers of the round. */
#define PEX_EVERY_ROUNDS 12
/* A learned peer is shared with others if seen within this many seconds. */
#define PEX_MAX_AGE_S (7 * 24 * 3600)
/* A learned peer being dialed is not dialed again within this many ms. */
#define DIAL_PENDING_MS 30000

static char *short_id(char buf[static ID_SHORT_LEN], const uint8_t id[32])
{
	return id_short(buf, id);
}

/* ---- sending ---- */

static void send_msg(struct npeer *p, const struct wire_msg *m)
{
	int rc;

	if (p->c == NULL)
		return;
	rc = peer_conn_send(p->c, m);
	if (rc < 0)
		log_debug(LOG_GOSSIP, "cannot send %s: %s", wire_name(m->type), ferry_errmsg(rc));
}

static void send_manifest(struct npeer *p, const uint8_t *bytes, size_t len)
{
	struct wire_msg m = {.type = WIRE_MANIFEST};

	m.manifest.bytes = bytes;
	m.manifest.len = len;
	send_msg(p, &m);
}

void node__push_manifest(struct node *n, const uint8_t *bytes, size_t len,
			 const struct npeer *except)
{
	for (struct npeer *p = n->peers; p != NULL; p = p->next)
		if (p != except)
			send_manifest(p, bytes, len);
}

/* Send our stored manifest of name@version (0 = newest) to p, if we hold it. */
static void send_stored_manifest(struct node *n, struct npeer *p, const char *name,
				 uint64_t version)
{
	struct store_rd *rd;
	const uint8_t *bytes;
	size_t len;

	if (version == 0) {
		for (size_t i = 0; i < n->nnewest; i++)
			if (strcmp(n->newest[i].name, name) == 0)
				version = n->newest[i].version;
		if (version == 0)
			return;
	}
	if (store_rd_begin(n->st, &rd) < 0)
		return;
	/* peer_conn_send copies the message, so the view may go with the transaction. */
	if (store_manifest_get(rd, name, version, &bytes, &len) == 0)
		send_manifest(p, bytes, len);
	store_rd_end(rd);
}

static void send_digest(struct node *n, struct npeer *p)
{
	size_t off = 0;

	do {
		struct wire_msg m = {.type = WIRE_DIGEST};
		size_t k = MIN(n->nnewest - off, (size_t)WIRE_DIGEST_MAX);
		struct wire_digest_entry *e = xcalloc(k ? k : 1, sizeof(*e));

		for (size_t i = 0; i < k; i++) {
			snprintf(e[i].name, sizeof(e[i].name), "%s", n->newest[off + i].name);
			e[i].version = n->newest[off + i].version;
			memcpy(e[i].hash, n->newest[off + i].hash, 32);
		}
		off += k;
		m.digest.more = off < n->nnewest;
		m.digest.n = (uint32_t)k;
		m.digest.entries = e;
		send_msg(p, &m);
		free(e);
	} while (off < n->nnewest);
}

static void send_peers(struct node *n, struct npeer *p)
{
	size_t idx[WIRE_PEERS_MAX], k;
	struct wire_msg m = {.type = WIRE_PEERS};
	struct wire_peer_entry *e;

	k = gossip_book_pick_share(n->book, p->id, (int64_t)time(NULL), PEX_MAX_AGE_S,
				   WIRE_PEERS_MAX, &n->rng, idx);
	if (k == 0)
		return;
	e = xcalloc(k, sizeof(*e));
	for (size_t i = 0; i < k; i++) {
		const struct gossip_peer *g = gossip_book_at(n->book, idx[i]);

		memcpy(e[i].id, g->id, 32);
		snprintf(e[i].addr, sizeof(e[i].addr), "%s", g->addr);
		snprintf(e[i].site, sizeof(e[i].site), "%s", g->site);
	}
	m.peers.n = (uint32_t)k;
	m.peers.entries = e;
	send_msg(p, &m);
	free(e);
}

/* The test hook FERRY_TEST_GOSSIP_ALL: every stored manifest, older versions too. */
static int push_one(void *arg, const char *name, uint64_t version, const uint8_t *bytes, size_t len)
{
	send_manifest(arg, bytes, len);
	return 0;
}

static void push_all_stored(struct node *n, struct npeer *p)
{
	struct store_rd *rd;

	if (store_rd_begin(n->st, &rd) < 0)
		return;
	store_manifest_foreach(rd, NULL, push_one, p);
	store_rd_end(rd);
}

/* ---- the newest manifest per name (our digest) ---- */

void node__newest_update(struct node *n, const char *name, uint64_t version, const uint8_t hash[32])
{
	struct gossip_entry e;

	memset(&e, 0, sizeof(e));
	snprintf(e.name, sizeof(e.name), "%s", name);
	e.version = version;
	memcpy(e.hash, hash, 32);
	for (size_t i = 0; i < n->nnewest; i++) {
		if (strcmp(n->newest[i].name, name) == 0) {
			if (gossip_wins(&e, &n->newest[i]))
				n->newest[i] = e;
			return;
		}
	}
	n->newest = xreallocarray(n->newest, n->nnewest + 1, sizeof(*n->newest));
	n->newest[n->nnewest++] = e;
}

static int newest_again(void *arg, const char *name, uint64_t version, const uint8_t *bytes,
			size_t len)
{
	struct node *n = arg;
	struct manifest *m = NULL;
	uint8_t hash[32];

	if (manifest_open(bytes, len, &n->trust, &m, hash) == 0)
		node__newest_update(n, name, version, hash);
	manifest_free(m);
	return 0;
}

void node__newest_gone(struct node *n, const char *name, uint64_t version)
{
	struct store_rd *rd;
	size_t i;

	for (i = 0; i < n->nnewest; i++)
		if (strcmp(n->newest[i].name, name) == 0)
			break;
	if (i == n->nnewest || n->newest[i].version != version)
		return;
	n->newest[i] = n->newest[--n->nnewest];
	if (store_rd_begin(n->st, &rd) < 0)
		return;
	store_manifest_foreach(rd, name, newest_again, n);
	store_rd_end(rd);
}

static bool rejected(const struct node *n, const uint8_t hash[32])
{
	for (unsigned i = 0; i < MIN(n->nrejects, (unsigned)NODE_REJECT_MAX); i++)
		if (memcmp(n->rejects[i], hash, 32) == 0)
			return true;
	return false;
}

static void reject_note(struct node *n, const uint8_t hash[32])
{
	if (rejected(n, hash))
		return;
	memcpy(n->rejects[n->nrejects % NODE_REJECT_MAX], hash, 32);
	n->nrejects++;
}

/* ---- accepting manifests from peers ---- */

struct recv_job {
	struct node *n;
	uint8_t from[32];
	uint8_t *bytes;
	size_t len;
	uint8_t hash[32];
	char name[MANIFEST_NAME_MAX + 1];
	uint64_t version;
	unsigned flags;
	struct manifest *m;
	char msg[512];
};

static int recv_work(void *arg, struct store *st)
{
	struct recv_job *j = arg;
	int rc = catalog_accept(st, &j->n->trust, j->bytes, j->len, j->flags, &j->m);

	if (rc < 0)
		snprintf(j->msg, sizeof(j->msg), "%s", ferry_errmsg(rc));
	return rc;
}

static struct npeer *peer_find(struct node *n, const uint8_t id[32])
{
	for (struct npeer *p = n->peers; p != NULL; p = p->next)
		if (memcmp(p->id, id, 32) == 0)
			return p;
	return NULL;
}

static void recv_done(void *arg, int rc)
{
	struct recv_job *j = arg;
	struct node *n = j->n;
	char pid[ID_SHORT_LEN];

	short_id(pid, j->from);
	if (rc == FERRY_EOLDVERSION) {
		log_info(LOG_GOSSIP, "refused %s@%" PRIu64 " from peer %s: %s", j->name, j->version,
			 pid, j->msg);
		reject_note(n, j->hash);
	} else if (rc < 0) {
		log_warn(LOG_GOSSIP, "refused a manifest (%s@%" PRIu64 ") from peer %s: %s",
			 j->name, j->version, pid, j->msg);
		reject_note(n, j->hash);
	} else if (rc != CATALOG_KNOWN) {
		if (rc == CATALOG_NEWEST || rc == CATALOG_REPLACED) {
			node__newest_update(n, j->m->name, j->m->version, j->hash);
			log_notice(LOG_GOSSIP, "new version %s@%" PRIu64 "%s%s%s from peer %s",
				   j->m->name, j->m->version, j->m->label[0] ? " (" : "",
				   j->m->label, j->m->label[0] ? ")" : "", pid);
		} else {
			log_info(LOG_GOSSIP, "stored older version %s@%" PRIu64 " from peer %s",
				 j->m->name, j->m->version, pid);
		}
		if (!n->stopping) {
			if (gossip_forward(rc))
				node__push_manifest(n, j->bytes, j->len, peer_find(n, j->from));
			node__version_known(n, j->m, j->hash);
			j->m = NULL;
		}
	}
	manifest_free(j->m);
	free(j->bytes);
	free(j);
}

/* An explicit want of name@version makes an older manifest welcome. */
static bool explicitly_wanted(const struct node *n, const char *name, uint64_t version)
{
	for (const struct nwant *w = n->wants; w != NULL; w = w->next)
		if (w->version == version && strcmp(w->name, name) == 0)
			return true;
	return false;
}

void node__manifest_received(struct node *n, struct npeer *from, const uint8_t *bytes, size_t len)
{
	struct recv_job *j;
	struct manifest *m = NULL;
	uint8_t hash[32];
	char pid[ID_SHORT_LEN];
	int rc;

	fcrypto_id(hash, bytes, len);
	if (rejected(n, hash))
		return;
	for (size_t i = 0; i < n->nnewest; i++)
		if (memcmp(n->newest[i].hash, hash, 32) == 0)
			return;
	/*
	 * Verify on the loop (one signature check) so that what no trusted
	 * publisher signed never reaches the store thread, and so that the
	 * name and version are known for the explicit-want rule.
	 */
	rc = manifest_open(bytes, len, &n->trust, &m, NULL);
	if (rc < 0) {
		log_warn(LOG_GOSSIP, "refused a manifest from peer %s: %s", short_id(pid, from->id),
			 ferry_errmsg(rc));
		if (misbehave_of_manifest(rc) != MISBEHAVE_NONE) {
			/* Not remembered as rejected: each copy costs its sender an offence. */
			node__misbehaved(n, from, misbehave_of_manifest(rc));
			peer_conn_close(from->c, rc);
			return;
		}
		reject_note(n, hash);
		return;
	}
	j = xcalloc(1, sizeof(*j));
	j->n = n;
	memcpy(j->from, from->id, 32);
	j->bytes = xmalloc(len);
	memcpy(j->bytes, bytes, len);
	j->len = len;
	memcpy(j->hash, hash, 32);
	snprintf(j->name, sizeof(j->name), "%s", m->name);
	j->version = m->version;
	j->flags = explicitly_wanted(n, m->name, m->version) ? CATALOG_EXPLICIT : 0;
	manifest_free(m);
	storeq_job(n->sq, recv_work, recv_done, j);
}

/* ---- messages ---- */

static void on_digest(struct node *n, struct npeer *p, const struct wire_digest *d)
{
	struct gossip_todo *todo;
	size_t ntodo;

	if (p->ndigest + d->n > DIGEST_ROUND_MAX) {
		char pid[ID_SHORT_LEN];

		log_warn(LOG_GOSSIP, "peer %s sent a digest of more than %u entries: ignored",
			 short_id(pid, p->id), DIGEST_ROUND_MAX);
		free(p->digest);
		p->digest = NULL;
		p->ndigest = 0;
		return;
	}
	p->digest = xreallocarray(p->digest, p->ndigest + d->n + 1, sizeof(*p->digest));
	for (uint32_t i = 0; i < d->n; i++) {
		struct gossip_entry *e = &p->digest[p->ndigest++];

		memset(e, 0, sizeof(*e));
		snprintf(e->name, sizeof(e->name), "%s", d->entries[i].name);
		e->version = d->entries[i].version;
		memcpy(e->hash, d->entries[i].hash, 32);
	}
	if (d->more)
		return;
	gossip_diff(n->newest, n->nnewest, p->digest, p->ndigest, &todo, &ntodo);
	free(p->digest);
	p->digest = NULL;
	p->ndigest = 0;
	for (size_t i = 0; i < ntodo; i++) {
		if (todo[i].verb == GOSSIP_SEND) {
			send_stored_manifest(n, p, todo[i].name, todo[i].version);
		} else if (!rejected(n, todo[i].hash) && manifest_name_check(todo[i].name) == 0) {
			struct wire_msg m = {.type = WIRE_MANIFEST_REQ};

			snprintf(m.manifest_req.name, sizeof(m.manifest_req.name), "%s",
				 todo[i].name);
			m.manifest_req.version = todo[i].version;
			send_msg(p, &m);
		}
	}
	free(todo);
}

static void on_peers(struct node *n, struct npeer *p, const struct wire_peers *pe)
{
	for (uint32_t i = 0; i < pe->n; i++) {
		const struct wire_peer_entry *e = &pe->entries[i];

		if (gossip_book_learn(n->book, e->id, e->addr, e->site, GOSSIP_SRC_PEX, 0) == 1)
			n->book_dirty = true;
	}
}

void node__on_message(struct peer_conn *c, const struct wire_msg *m, void *ctx)
{
	struct node *n = ctx;
	struct npeer *p = peer_conn_data(c);

	if (p == NULL || n->stopping)
		return;
	switch (m->type) {
	case WIRE_DIGEST:
		on_digest(n, p, &m->digest);
		break;
	case WIRE_MANIFEST_REQ:
		send_stored_manifest(n, p, m->manifest_req.name, m->manifest_req.version);
		break;
	case WIRE_MANIFEST:
		node__manifest_received(n, p, m->manifest.bytes, m->manifest.len);
		break;
	case WIRE_HAVE:
		node__on_have(n, p, m);
		break;
	case WIRE_HAVE_ADD:
		node__on_have_add(n, p, m);
		break;
	case WIRE_CLAIM:
		node__on_claim(n, p, m);
		break;
	case WIRE_CHUNK_REQ:
		node__on_chunk_req(n, p, m);
		break;
	case WIRE_CHUNK_DATA:
		node__on_chunk_data(n, p, m);
		break;
	case WIRE_CHUNK_NONE:
		node__on_chunk_none(n, p, m);
		break;
	case WIRE_CANCEL:
		node__on_cancel(n, p, m);
		break;
	case WIRE_PEERS:
		on_peers(n, p, &m->peers);
		break;
	default:
		break;
	}
}

void node__on_writable(struct peer_conn *c, void *ctx)
{
	struct npeer *p = peer_conn_data(c);

	if (p != NULL)
		node__serve_pump(p);
}

_Static_assert(NODE_WAN_LANES <= PEER_LANES_MAX, "the transport keeps NODE_WAN_LANES lanes");

void node__on_lane(struct peer_conn *c, unsigned lane, bool up, void *ctx)
{
	struct npeer *p = peer_conn_data(c);

	if (p != NULL)
		node__serve_lane(p, lane, up);
}

/* ---- connections ---- */

bool node__allow(struct peer_net *net, const uint8_t id[32], const struct wire_hello *hello,
		 void *ctx)
{
	struct node *n = ctx;

	return !n->stopping && sched_banned_until(n->sched, id, node__now(n)) == 0;
}

/* The address other nodes can dial p at: what we dialed, or its IP and listen port. */
static void dialable_addr(struct npeer *p, const struct wire_hello *hello)
{
	char host[GOSSIP_ADDR_MAX + 1];
	uint16_t port = 0;

	p->addr[0] = '\0';
	if (peer_conn_initiated(p->c)) {
		const char *th = peer_conn_target_host(p->c);

		if (th != NULL &&
		    peer_addr_parse(peer_conn_addr(p->c), host, sizeof(host), &port) == 0)
			peer_addr_format(p->addr, sizeof(p->addr), th, port);
	} else if (hello->listen_port != 0) {
		peer_addr_format(p->addr, sizeof(p->addr), peer_conn_host(p->c),
				 hello->listen_port);
	}
}

static int handle_alloc(struct node *n, struct npeer *p)
{
	for (uint32_t h = 0; h < ARRAY_SIZE(n->by_handle); h++) {
		if (n->by_handle[h] == NULL) {
			n->by_handle[h] = p;
			p->h = h;
			return 0;
		}
	}
	return ferry_errf(FERRY_EBUSY, "too many connections");
}

static void on_peer_timer_closed(uv_handle_t *h)
{
	struct npeer *p = h->data;
	struct node *n = p->n;

	n->handles_open--;
	if (--p->open_timers == 0 && p->c == NULL)
		free(p);
	node__stop_progress(n);
}

void node__peer_timers_close(struct npeer *p)
{
	if (!uv_is_closing((uv_handle_t *)&p->read_timer)) {
		uv_close((uv_handle_t *)&p->read_timer, on_peer_timer_closed);
		uv_close((uv_handle_t *)&p->send_timer, on_peer_timer_closed);
	}
}

void node__on_up(struct peer_conn *c, const uint8_t id[32], const struct wire_hello *hello,
		 void *ctx)
{
	struct node *n = ctx;
	struct npeer *p = xcalloc(1, sizeof(*p));
	struct gossip_peer *g;
	int64_t now_unix = (int64_t)time(NULL);
	char pid[ID_SHORT_LEN];
	int rc;

	p->n = n;
	p->c = c;
	memcpy(p->id, id, 32);
	snprintf(p->site, sizeof(p->site), "%s", hello->site);
	p->lan = n->cfg->site[0] != '\0' && strcmp(hello->site, n->cfg->site) == 0;
	p->serve_tail = &p->serve;
	peer_conn_set_data(c, p);
	peer_conn_set_link(c, p->lan ? PEER_LINK_LAN : PEER_LINK_WAN);
	if (!p->lan && strcmp(peer_conn_congestion(c), "bbr") != 0)
		peer_conn_set_lanes(c, NODE_WAN_LANES);
	dialable_addr(p, hello);
	uv_timer_init(n->loop, &p->read_timer);
	uv_timer_init(n->loop, &p->send_timer);
	p->read_timer.data = p->send_timer.data = p;
	p->open_timers = 2;
	n->handles_open += 2;
	p->next = n->peers;
	n->peers = p;
	n->npeers++;
	short_id(pid, id);

	if (gossip_book_learn(n->book, id, p->addr, p->site,
			      peer_conn_initiated(c) ? GOSSIP_SRC_OUTBOUND : GOSSIP_SRC_INBOUND,
			      now_unix) == 1)
		n->book_dirty = true;
	gossip_book_up(n->book, id, now_unix);
	g = gossip_book_get(n->book, id);
	if (g != NULL)
		g->connected = true;

	if ((rc = handle_alloc(n, p)) < 0 ||
	    (rc = sched_peer_add(n->sched, p->h, id, p->lan ? SCHED_LAN : SCHED_WAN,
				 node__now(n))) < 0) {
		log_warn(LOG_PEER, "dropping peer %s: %s", pid, ferry_errmsg(rc));
		peer_conn_close(c, rc);
		return;
	}
	p->in_sched = true;
	log_debug(LOG_PEER, "peer %s: %s link, sched handle %u", pid, p->lan ? "LAN" : "WAN",
		  (unsigned)p->h);

	node__peer_up_fetch(n, p);
	send_digest(n, p);
	send_peers(n, p);
	if (n->test_gossip_all)
		push_all_stored(n, p);
}

void node__on_down(struct peer_conn *c, int reason, void *ctx)
{
	struct node *n = ctx;
	struct npeer *p = peer_conn_data(c);
	struct gossip_peer *g;
	char pid[ID_SHORT_LEN];

	if (p == NULL)
		return;
	node__misbehaved(n, p, misbehave_of_close(reason));
	log_debug(LOG_PEER, "peer %s: forgetting its requests and holdings (%s)",
		  short_id(pid, p->id), ferry_strerror(reason));
	node__peer_down_fetch(n, p);
	if (p->in_sched)
		sched_peer_remove(n->sched, p->h, node__now(n));
	if (n->by_handle[p->h] == p)
		n->by_handle[p->h] = NULL;
	g = gossip_book_get(n->book, p->id);
	if (g != NULL) {
		g->connected = false;
		g->last_seen = MAX(g->last_seen, (int64_t)time(NULL));
		n->book_dirty = true;
	}
	for (struct npeer **pp = &n->peers; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	}
	n->npeers--;
	free(p->digest);
	p->c = NULL;
	peer_conn_set_data(c, NULL);
	node__peer_timers_close(p);
	if (p->open_timers == 0)
		free(p);
	node__stop_progress(n);
}

static bool same_addr(const char *addr, const char *host, uint16_t port)
{
	char buf[GOSSIP_ADDR_MAX + 1];

	peer_addr_format(buf, sizeof(buf), host, port);
	return strcmp(buf, addr) == 0;
}

void node__on_dial_error(struct peer_net *net, const char *host, uint16_t port, int reason,
			 void *ctx)
{
	struct node *n = ctx;

	log_debug(LOG_PEER, "dial %s:%u failed: %s", host, (unsigned)port, ferry_strerror(reason));
	for (size_t i = 0; i < gossip_book_count(n->book); i++) {
		struct gossip_peer *g = gossip_book_at(n->book, i);

		if (same_addr(g->addr, host, port))
			gossip_book_dial_failed(n->book, g->id, node__now(n), &n->rng);
	}
}

static bool configured(const struct config *cfg, const char *addr)
{
	for (size_t i = 0; i < cfg->n_peers; i++)
		if (same_addr(addr, cfg->peers[i].host, cfg->peers[i].port))
			return true;
	return false;
}

/* Keep up to NODE_TARGET_CONNS connections by dialing known peers; configured ones dial themselves.
 */
static void dial_learned(struct node *n)
{
	size_t idx[NODE_TARGET_CONNS], k;
	uint64_t now = node__now(n);

	if (n->npeers >= NODE_TARGET_CONNS)
		return;
	k = gossip_book_pick_dial(n->book, now, NODE_TARGET_CONNS - n->npeers, idx);
	for (size_t i = 0; i < k; i++) {
		struct gossip_peer *g = gossip_book_at(n->book, idx[i]);
		char host[GOSSIP_ADDR_MAX + 1];
		uint16_t port;

		g->next_dial = now + DIAL_PENDING_MS;
		if (configured(n->cfg, g->addr) ||
		    peer_addr_parse(g->addr, host, sizeof(host), &port) < 0)
			continue;
		if (sched_banned_until(n->sched, g->id, now) > 0)
			continue;
		peer_net_dial(n->net, host, port, g->id, 0);
	}
}

static void on_ae(uv_timer_t *t)
{
	struct node *n = t->data;
	struct npeer **v;
	size_t cnt = 0, idx[8], k;

	if (n->stopping || n->npeers == 0)
		return;
	n->ae_rounds++;
	v = xreallocarray(NULL, n->npeers, sizeof(*v));
	for (struct npeer *p = n->peers; p != NULL; p = p->next)
		v[cnt++] = p;
	k = gossip_pick(cnt, MIN(gossip_fanout(cnt), ARRAY_SIZE(idx)), &n->rng, idx);
	for (size_t i = 0; i < k; i++) {
		send_digest(n, v[idx[i]]);
		if (n->ae_rounds % PEX_EVERY_ROUNDS == 0)
			send_peers(n, v[idx[i]]);
	}
	free(v);
}

static void dial_configured(struct node *n, const struct config *cfg)
{
	for (size_t i = 0; i < cfg->n_peers; i++) {
		int rc = peer_net_dial(n->net, cfg->peers[i].host, cfg->peers[i].port, NULL,
				       PEER_DIAL_PERSISTENT);

		if (rc < 0)
			log_warn(LOG_PEER, "cannot dial %s:%u: %s", cfg->peers[i].host,
				 (unsigned)cfg->peers[i].port, ferry_errmsg(rc));
	}
}

int node__gossip_start(struct node *n)
{
	uv_timer_init(n->loop, &n->ae_timer);
	n->ae_timer.data = n;
	/* Rounds are jittered per node so a network started at once does not pulse. */
	uv_timer_start(&n->ae_timer, on_ae,
		       GOSSIP_ROUND_MS / 2 + gossip_rand(&n->rng) % GOSSIP_ROUND_MS,
		       GOSSIP_ROUND_MS);
	n->handles_open++;
	dial_configured(n, n->cfg);
	return 0;
}

void node__gossip_reload(struct node *n, const struct config *old)
{
	for (size_t i = 0; i < old->n_peers; i++) {
		bool kept = false;

		for (size_t j = 0; j < n->cfg->n_peers && !kept; j++)
			kept = old->peers[i].port == n->cfg->peers[j].port &&
			       strcmp(old->peers[i].host, n->cfg->peers[j].host) == 0;
		if (!kept)
			peer_net_undial(n->net, old->peers[i].host, old->peers[i].port);
	}
	dial_configured(n, n->cfg);
}

void node__gossip_tick(struct node *n)
{
	dial_learned(n);
}

/* ---- the stored catalog at start ---- */

struct stored {
	char name[MANIFEST_NAME_MAX + 1];
	uint64_t version;
	uint8_t *bytes;
	size_t len;
};

struct stored_list {
	struct stored *v;
	size_t n;
};

static int collect_stored(void *arg, const char *name, uint64_t version, const uint8_t *bytes,
			  size_t len)
{
	struct stored_list *l = arg;
	struct stored *s;

	l->v = xreallocarray(l->v, l->n + 1, sizeof(*l->v));
	s = &l->v[l->n++];
	snprintf(s->name, sizeof(s->name), "%s", name);
	s->version = version;
	s->bytes = xmalloc(len ? len : 1);
	memcpy(s->bytes, bytes, len);
	s->len = len;
	return 0;
}

int node__load_catalog(struct node *n)
{
	struct stored_list l = {0};
	struct manifest **ms;
	uint8_t(*hashes)[32];
	struct store_rd *rd;
	int rc = store_rd_begin(n->st, &rd);

	if (rc < 0)
		return rc;
	rc = store_manifest_foreach(rd, NULL, collect_stored, &l);
	store_rd_end(rd);
	if (rc < 0)
		goto out;
	ms = xcalloc(l.n ? l.n : 1, sizeof(*ms));
	hashes = xreallocarray(NULL, l.n ? l.n : 1, 32);
	/* First every name's newest, so wants are decided against it. */
	for (size_t i = 0; i < l.n; i++) {
		int orc = manifest_open(l.v[i].bytes, l.v[i].len, &n->trust, &ms[i], hashes[i]);

		if (orc < 0) {
			log_info(LOG_GOSSIP, "stored %s@%" PRIu64 " is ignored: %s", l.v[i].name,
				 l.v[i].version, ferry_errmsg(orc));
			continue;
		}
		node__newest_update(n, ms[i]->name, ms[i]->version, hashes[i]);
	}
	for (size_t i = 0; i < l.n; i++) {
		if (ms[i] != NULL)
			node__version_known(n, ms[i], hashes[i]);
	}
	free(ms);
	free(hashes);
out:
	for (size_t i = 0; i < l.n; i++)
		free(l.v[i].bytes);
	free(l.v);
	return rc;
}
