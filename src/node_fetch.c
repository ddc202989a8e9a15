/*
 * Fetching and serving: tracked versions, index pieces, HAVE and HAVE_ADD,
 * chunk requests through the scheduler, reassembly, verification on the
 * worker pool, the store thread, and serving other peers' requests under
 * the rate limits. See docs/gossip.md ("Fetching").
 *
 * A chunk's way in:
 *
 *   sched_poll -> CHUNK_REQ -> CHUNK_DATA frames (reassembled per request)
 *     -> worker: decode + BLAKE2b == id?
 *          no  -> sched_chunk_bad: drop the peer, ban on repeat
 *          yes -> sched_chunk_done (no more requests for it), storeq_put
 *     -> store thread commits the batch -> node__on_commit:
 *          present bits set, HAVE_ADD to every peer, completion
 *
 * A node advertises a chunk once it is committed (at most one durability
 * window, 500 ms, after it arrived), so it never offers what a crash could
 * take back; a chain A -> B -> C still moves at link speed, delayed by that
 * window per hop.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ferry/catalog.h"
#include "ferry/codec.h"
#include "ferry/error.h"
#include "ferry/fcrypto.h"
#include "ferry/idset.h"
#include "ferry/log.h"
#include "ferry/peer.h"
#include "ferry/ratelimit.h"
#include "ferry/sched.h"
#include "ferry/store.h"
#include "ferry/storeq.h"
#include "ferry/wire.h"
#include "node_int.h"

/* Seconds between MANIFEST_REQs for a fetch whose manifest nobody offered yet. */
#define WANT_ASK_MS 10000
/* Sources remembered per version for the completion line. */
#define SOURCES_MAX 64
/*
 * Received chunk bytes allowed to wait for their check (decode + BLAKE2b on
 * the thread pool). Above it no new requests go out and peers whose data
 * pushed it over stop being read until half of it has drained, so a sender
 * faster than this node's CPUs fills the TCP window, not this daemon's heap.
 */
#define VERIFY_QUEUE_MAX (4u << 20)
/*
 * Chunk bytes asked for and not yet committed (in flight, waiting for
 * their check, queued for the store thread): new requests go out only
 * within it. Without it a stall of the store thread let the requests
 * already in flight pile up behind it (45 MB queued on loopback, where the
 * measured round trip and so the window grow with the queue); 24 MiB still
 * covers a 1 Gbit/s link with a 150 ms round trip.
 */
#define RECV_BUDGET (24u << 20)

static char *sid(char buf[static ID_SHORT_LEN], const uint8_t id[32])
{
	return id_short(buf, id);
}

static bool bit_get(const uint8_t *bits, uint32_t i)
{
	return bits[i / 8] >> (i % 8) & 1;
}

static void bit_set(uint8_t *bits, uint32_t i)
{
	bits[i / 8] |= (uint8_t)(1u << (i % 8));
}

/* ---- idmap: chunk id -> positions in incomplete tracked versions ---- */

struct idpos {
	struct nver *v;
	uint32_t pos;
	uint32_t next; /* index into pos pool, UINT32_MAX = end */
};

struct idmap {
	struct idset *heads; /* chunk id -> its first idpos in pool */
	struct idpos *pool;
	size_t npool, cappool;
};

static void idmap_reset(struct idmap *m, size_t expect)
{
	if (m->heads == NULL)
		m->heads = idset_new(expect);
	else
		idset_clear(m->heads, expect);
	m->npool = 0;
}

/* The first position of id in pool, or UINT32_MAX if no incomplete version needs it. */
static uint32_t idmap_first(const struct idmap *m, const uint8_t id[32])
{
	int64_t head = idset_get(m->heads, id);

	return head < 0 ? UINT32_MAX : (uint32_t)head;
}

static void idmap_add(struct idmap *m, const uint8_t id[32], struct nver *v, uint32_t pos)
{
	uint32_t *head;

	if (m->npool == m->cappool) {
		m->cappool = m->cappool ? 2 * m->cappool : 1024;
		m->pool = xreallocarray(m->pool, m->cappool, sizeof(*m->pool));
	}
	head = idset_put(m->heads, id, UINT32_MAX);
	m->pool[m->npool] = (struct idpos){.v = v, .pos = pos, .next = *head};
	*head = (uint32_t)m->npool++;
}

/* Rebuild from the tracked versions that are ready and incomplete. */
static void idmap_rebuild(struct node *n)
{
	size_t total = 0;

	for (struct nver *v = n->vers; v != NULL; v = v->next)
		if (v->state == NV_READY)
			total += v->n;
	idmap_reset(n->idmap, total);
	for (struct nver *v = n->vers; v != NULL; v = v->next)
		if (v->state == NV_READY)
			for (uint32_t i = 0; i < v->n; i++)
				if (!bit_get(v->present, i))
					idmap_add(n->idmap, v->refs[i].id, v, i);
}

/* ---- versions ---- */

struct nver *node__ver_find(struct node *n, const char *name, uint64_t version)
{
	for (struct nver *v = n->vers; v != NULL; v = v->next)
		if (v->version == version && strcmp(v->name, name) == 0)
			return v;
	return NULL;
}

static uint64_t newest_of(const struct node *n, const char *name)
{
	for (size_t i = 0; i < n->nnewest; i++)
		if (strcmp(n->newest[i].name, name) == 0)
			return n->newest[i].version;
	return 0;
}

static bool is_explicit(const struct node *n, const char *name, uint64_t version)
{
	uint64_t newest = newest_of(n, name);

	for (const struct nwant *w = n->wants; w != NULL; w = w->next)
		if (strcmp(w->name, name) == 0 &&
		    (w->version == version || (w->version == 0 && version == newest)))
			return true;
	return false;
}

static bool is_wanted(const struct node *n, const char *name, uint64_t version)
{
	return is_explicit(n, name, version) ||
	       (config_wants(n->cfg, name) && version == newest_of(n, name));
}

static void send_msg(struct npeer *p, const struct wire_msg *m)
{
	if (p->c != NULL)
		peer_conn_send(p->c, m);
}

static void send_have(struct npeer *p, const struct nver *v)
{
	struct wire_msg m = {.type = WIRE_HAVE};
	uint32_t first = 0;

	if (v->state == NV_NEED_INDEX || v->n == 0)
		return;
	snprintf(m.have.name, sizeof(m.have.name), "%s", v->name);
	m.have.version = v->version;
	m.have.nchunks = v->n;
	if (v->state == NV_COMPLETE) {
		m.have.complete = true;
		send_msg(p, &m);
		return;
	}
	do {
		size_t bytes = MIN((size_t)(v->n - first + 7) / 8, (size_t)WIRE_HAVE_BITMAP_MAX);

		m.have.first = first;
		m.have.bitmap = v->present + first / 8;
		m.have.bitmap_len = bytes;
		send_msg(p, &m);
		first += (uint32_t)bytes * 8;
	} while (first < v->n);
}

static void send_have_all(struct node *n, const struct nver *v)
{
	for (struct npeer *p = n->peers; p != NULL; p = p->next)
		send_have(p, v);
}

/*
 * Tell p we hold none of v any more: HAVEs with every bit clear over all its
 * positions (a HAVE replaces what earlier ones said about the positions it
 * covers). Only for a version we may have announced (its index was whole).
 */
static void send_have_none(struct npeer *p, const struct nver *v)
{
	struct wire_msg m = {.type = WIRE_HAVE};
	size_t cap = MIN((size_t)(v->n + 7) / 8, (size_t)WIRE_HAVE_BITMAP_MAX);
	uint8_t *zeros;
	uint32_t first = 0;

	if (v->state == NV_NEED_INDEX || v->n == 0)
		return;
	zeros = xcalloc(cap, 1);
	snprintf(m.have.name, sizeof(m.have.name), "%s", v->name);
	m.have.version = v->version;
	m.have.nchunks = v->n;
	do {
		size_t bytes = MIN((size_t)(v->n - first + 7) / 8, cap);

		m.have.first = first;
		m.have.bitmap = zeros;
		m.have.bitmap_len = bytes;
		send_msg(p, &m);
		first += (uint32_t)bytes * 8;
	} while (first < v->n);
	free(zeros);
}

static void ver_free(struct nver *v)
{
	for (uint32_t i = 0; i < v->npieces; i++)
		free(v->piece_refs[i]);
	free(v->piece_ids);
	free(v->piece_refs);
	free(v->piece_nrefs);
	free(v->piece_asked);
	free(v->piece_tries);
	free(v->piece_failed);
	free(v->piece_nfailed);
	free(v->refs);
	free(v->present);
	free(v->sources);
	manifest_free(v->m);
	free(v);
}

static struct nhave *have_find(struct npeer *p, const char *name, uint64_t version)
{
	for (struct nhave *h = p->haves; h != NULL; h = h->next)
		if (h->version == version && strcmp(h->name, name) == 0)
			return h;
	return NULL;
}

/* Tell sched what p holds of v (a READY version in sched). */
static void have_claims_drop(struct npeer *p, struct nhave *h)
{
	if (h->claims == NULL)
		return;
	free(h->claims);
	h->claims = NULL;
	p->have_bytes -= ((size_t)h->nchunks + 7) / 8;
}

static void sched_have_replay(struct node *n, struct npeer *p, struct nver *v)
{
	struct nhave *h = have_find(p, v->name, v->version);
	uint8_t *ones;

	if (h == NULL || !p->in_sched || !v->in_sched || h->nchunks != v->n)
		return;
	if (!h->complete) {
		sched_peer_have(n->sched, p->h, v->vid, h->bits, h->nchunks, node__now(n));
	} else {
		ones = xmalloc((v->n + 7) / 8);
		memset(ones, 0xff, (v->n + 7) / 8);
		sched_peer_have(n->sched, p->h, v->vid, ones, v->n, node__now(n));
		free(ones);
	}
	/* What it asked WAN peers for before we fetched v (node__on_claim kept it). */
	for (uint32_t i = 0; h->claims != NULL && i < v->n; i++)
		if (bit_get(h->claims, i))
			sched_peer_claim(n->sched, p->h, v->refs[i].id, node__now(n));
	have_claims_drop(p, h);
}

/* ---- positions by version, for HAVE_ADD and CLAIM ---- */

struct posbatch {
	struct nver **v;
	uint32_t **pos;
	size_t *npos, n;
};

static void posbatch_add(struct posbatch *b, struct nver *v, uint32_t pos)
{
	size_t t;

	for (t = 0; t < b->n && b->v[t] != v; t++)
		;
	if (t == b->n) {
		b->v = xreallocarray(b->v, b->n + 1, sizeof(*b->v));
		b->pos = xreallocarray(b->pos, b->n + 1, sizeof(*b->pos));
		b->npos = xreallocarray(b->npos, b->n + 1, sizeof(*b->npos));
		b->v[t] = v;
		b->pos[t] = NULL;
		b->npos[t] = 0;
		b->n++;
	}
	b->pos[t] = xreallocarray(b->pos[t], b->npos[t] + 1, sizeof(**b->pos));
	b->pos[t][b->npos[t]++] = pos;
}

/*
 * Send b as HAVE_ADD or CLAIM messages to every peer (lan_only: to those of
 * our site; to, if not NULL: to that one only).
 */
static void posbatch_send(struct node *n, const struct posbatch *b, enum wire_type type,
			  bool lan_only, const struct npeer *to)
{
	for (size_t t = 0; t < b->n; t++) {
		for (size_t off = 0; off < b->npos[t] && !n->stopping; off += WIRE_HAVE_ADD_MAX) {
			struct wire_msg m = {.type = type};

			snprintf(m.have_add.name, sizeof(m.have_add.name), "%s", b->v[t]->name);
			m.have_add.version = b->v[t]->version;
			m.have_add.n = (uint32_t)MIN(b->npos[t] - off, (size_t)WIRE_HAVE_ADD_MAX);
			m.have_add.positions = b->pos[t] + off;
			for (struct npeer *p = n->peers; p != NULL; p = p->next)
				if ((!lan_only || p->lan) && (to == NULL || p == to))
					send_msg(p, &m);
		}
	}
}

static void posbatch_free(struct posbatch *b)
{
	for (size_t t = 0; t < b->n; t++)
		free(b->pos[t]);
	free(b->v);
	free(b->pos);
	free(b->npos);
}

/* ---- partly received chunks ---- */

static void part_free(struct node *n, struct npart **pp)
{
	struct npart *t = *pp;

	*pp = t->next;
	n->part_bytes -= t->total;
	free(t->buf);
	free(t);
}

/* The link that points at the part of chunk id, or at the list's end (NULL) if none. */
static struct npart **part_find(struct node *n, const uint8_t id[32])
{
	struct npart **pp = &n->parts;

	while (*pp != NULL && memcmp((*pp)->id, id, 32) != 0)
		pp = &(*pp)->next;
	return pp;
}

/*
 * p went down in the middle of chunk request r, or r stalled: keep what
 * arrived, so that whichever peer is asked for the chunk next (p's node after
 * a reconnect, or another holder: every holder stores the publisher's encoded
 * bytes) sends only the rest. The oldest go first beyond NODE_PART_MAX.
 */
static void part_keep(struct node *n, const struct npeer *p, struct nreq *r)
{
	struct npart *t, **pp;

	if (r->piece != NULL || r->got == 0 || r->got >= r->total || r->total > NODE_PART_MAX)
		return;
	pp = part_find(n, r->id);
	if (*pp != NULL) {
		if ((*pp)->got >= r->got)
			return;
		part_free(n, pp);
	}
	t = xcalloc(1, sizeof(*t));
	memcpy(t->id, r->id, 32);
	memcpy(t->node, p->id, 32);
	t->buf = r->buf;
	t->total = r->total;
	t->got = r->got;
	t->kept_ms = node__now(n);
	r->buf = NULL;
	t->next = n->parts;
	n->parts = t;
	n->part_bytes += t->total;
	while (n->part_bytes > NODE_PART_MAX) {
		for (pp = &n->parts; (*pp)->next != NULL; pp = &(*pp)->next)
			;
		part_free(n, pp);
	}
}

/*
 * A new request r of p: start it where a part of its chunk ends. When the part
 * came from another node and the chunk then fails its check, neither is
 * blamed (chunk_verified).
 */
static void part_resume(struct node *n, const struct npeer *p, struct nreq *r)
{
	struct npart **pp = part_find(n, r->id), *t = *pp;

	if (t == NULL)
		return;
	if (t->total == r->want_len) {
		r->buf = t->buf;
		r->total = t->total;
		r->got = t->got;
		r->mixed = memcmp(t->node, p->id, 32) != 0;
		t->buf = NULL;
		n->resumed_bytes += t->got;
	}
	part_free(n, pp);
}

/* The chunk id arrived whole: a part of it is of no use any more. */
static void part_drop(struct node *n, const uint8_t id[32])
{
	struct npart **pp = part_find(n, id);

	if (*pp != NULL)
		part_free(n, pp);
}

/* Parts older than NODE_PART_MS: nobody was asked for their chunk since. */
static void part_expire(struct node *n, uint64_t now)
{
	for (struct npart **pp = &n->parts; *pp != NULL;) {
		if (now - (*pp)->kept_ms >= NODE_PART_MS)
			part_free(n, pp);
		else
			pp = &(*pp)->next;
	}
}

/*
 * Cancel the requests of cancel at their peers. keep: keep what arrived of
 * each as a part (the request stalled; whoever is asked next sends only the
 * rest), rather than drop it (the chunk arrived or is no longer wanted).
 */
/*
 * Cancel the request *pr at p: send CANCEL, unlink it (*pr becomes the next),
 * keep what arrived of a chunk as a part if keep, and free it.
 */
static void req_cancel(struct node *n, struct npeer *p, struct nreq **pr, bool keep)
{
	struct nreq *r = *pr;
	struct wire_msg m = {.type = WIRE_CANCEL};

	m.cancel.req = r->req;
	send_msg(p, &m);
	*pr = r->next;
	p->nreqs--;
	if (keep)
		part_keep(n, p, r);
	free(r->buf);
	free(r);
}

static void send_cancel_for(struct node *n, const struct sched_reqs *cancel, bool keep)
{
	for (size_t i = 0; i < cancel->n; i++) {
		struct npeer *p = cancel->v[i].peer < ARRAY_SIZE(n->by_handle)
				      ? n->by_handle[cancel->v[i].peer]
				      : NULL;

		if (p == NULL)
			continue;
		for (struct nreq **pr = &p->reqs; *pr != NULL; pr = &(*pr)->next) {
			struct nreq *r = *pr;

			if (r->piece == NULL && memcmp(r->id, cancel->v[i].id, 32) == 0) {
				char pid[ID_SHORT_LEN], cid[ID_SHORT_LEN];

				log_debug(LOG_FETCH,
					  "cancelled chunk %s at peer %s after %.1f s, %" PRIu32
					  " bytes in",
					  sid(cid, r->id), sid(pid, p->id),
					  (double)(node__now(n) - r->sent_ms) / 1000, r->got);
				req_cancel(n, p, pr, keep);
				break;
			}
		}
	}
}

static void ver_sched_in(struct node *n, struct nver *v)
{
	struct sched_chunk *chunks;
	uint8_t *local;
	int rc;

	if (v->in_sched || v->state != NV_READY || !v->wanted)
		return;
	chunks = xreallocarray(NULL, v->n, sizeof(*chunks));
	for (uint32_t i = 0; i < v->n; i++) {
		memcpy(chunks[i].id, v->refs[i].id, 32);
		chunks[i].len = v->refs[i].enc_len;
	}
	local = v->present;
	v->vid = n->next_vid++;
	rc = sched_want(n->sched, v->vid, chunks, v->n, local, node__now(n));
	free(chunks);
	if (rc < 0) {
		log_err(LOG_FETCH, "cannot fetch %s@%" PRIu64 ": %s", v->name, v->version,
			ferry_errmsg(rc));
		return;
	}
	v->in_sched = true;
	if (v->started_ms == 0)
		v->started_ms = node__now(n);
	for (struct npeer *p = n->peers; p != NULL; p = p->next)
		sched_have_replay(n, p, v);
}

static void ver_sched_out(struct node *n, struct nver *v)
{
	struct sched_reqs cancel = {0};

	if (!v->in_sched)
		return;
	sched_unwant(n->sched, v->vid, &cancel);
	send_cancel_for(n, &cancel, false);
	sched_reqs_free(&cancel);
	v->in_sched = false;
}

/* A complete version satisfies the fetches that asked for it (NAME@V, or NAME when it is the
 * newest). */
static void wants_drop(struct node *n, const struct nver *v)
{
	uint64_t newest = newest_of(n, v->name);

	for (struct nwant **pw = &n->wants; *pw != NULL;) {
		struct nwant *w = *pw;

		if (strcmp(w->name, v->name) == 0 &&
		    (w->version == v->version || (w->version == 0 && v->version == newest))) {
			*pw = w->next;
			free(w);
		} else {
			pw = &w->next;
		}
	}
}

static void ver_complete(struct node *n, struct nver *v)
{
	char sz[32];

	v->state = NV_COMPLETE;
	ver_sched_out(n, v);
	if (v->recv_bytes > 0 || v->wanted)
		log_notice(LOG_FETCH,
			   "model %s version %" PRIu64 " complete (%" PRIu64
			   " bytes from %u peers)",
			   v->name, v->version, v->recv_bytes, v->nsources);
	else
		log_info(LOG_FETCH, "model %s version %" PRIu64 " is complete (%s)", v->name,
			 v->version, fmt_bytes(sz, sizeof(sz), v->need_bytes));
	wants_drop(n, v);
	free(v->refs);
	v->refs = NULL;
	send_have_all(n, v);
	node__auto_activate(n, v->name, v->version);
}

/* The index is whole: lay out the positions, find what is present, start fetching. */
static void ver_ready(struct node *n, struct nver *v)
{
	struct store_rd *rd;
	uint32_t k = 0;
	size_t total = 0;

	for (uint32_t i = 0; i < v->npieces; i++)
		total += v->piece_nrefs[i];
	if (total > WIRE_HAVE_CHUNKS_MAX) {
		log_err(LOG_FETCH, "%s@%" PRIu64 " has %zu chunks, more than the protocol's %u",
			v->name, v->version, total, (unsigned)WIRE_HAVE_CHUNKS_MAX);
		return;
	}
	v->n = (uint32_t)total;
	v->refs = xreallocarray(NULL, total ? total : 1, sizeof(*v->refs));
	for (uint32_t i = 0; i < v->npieces; i++) {
		memcpy(v->refs + k, v->piece_refs[i], v->piece_nrefs[i] * sizeof(*v->refs));
		k += (uint32_t)v->piece_nrefs[i];
		free(v->piece_refs[i]);
		v->piece_refs[i] = NULL;
	}
	v->present = xcalloc((total + 7) / 8 + 1, 1);
	v->need_bytes = v->have_bytes = 0;
	v->n_present = 0;
	if (store_rd_begin(n->st, &rd) == 0) {
		for (uint32_t i = 0; i < v->n; i++) {
			v->need_bytes += v->refs[i].enc_len;
			if (store_chunk_has(rd, v->refs[i].id)) {
				bit_set(v->present, i);
				v->n_present++;
				v->have_bytes += v->refs[i].enc_len;
			}
		}
		store_rd_end(rd);
	}
	if (v->n_present == v->n) {
		v->state = NV_COMPLETE;
		wants_drop(n, v);
		free(v->refs);
		v->refs = NULL;
		send_have_all(n, v);
		node__auto_activate(n, v->name, v->version);
		return;
	}
	v->state = NV_READY;
	if (v->wanted)
		log_info(LOG_FETCH,
			 "fetching %s@%" PRIu64 ": %" PRIu64 " of %" PRIu64 " bytes present",
			 v->name, v->version, v->have_bytes, v->need_bytes);
	idmap_rebuild(n);
	ver_sched_in(n, v);
	send_have_all(n, v);
}

static void fetch_pieces(struct node *n, struct nver *v);

/* Decode index piece i of v from the store if it is there. */
static void piece_load(struct store_rd *rd, struct nver *v, uint32_t i)
{
	const uint8_t *enc;
	size_t len, raw_len;
	int tag;

	if (v->piece_refs[i] != NULL || store_chunk_get(rd, v->piece_ids[i], &enc, &len) != 0)
		return;
	if (codec_peek(enc, len, &tag, &raw_len) != 0 || tag != CODEC_RAW ||
	    raw_len != len - CODEC_HDR_LEN ||
	    index_decode(enc + CODEC_HDR_LEN, raw_len, &v->piece_refs[i], &v->piece_nrefs[i]) != 0)
		return;
	v->pieces_present++;
}

void node__version_known(struct node *n, struct manifest *m, const uint8_t hash[32])
{
	struct nver *v = node__ver_find(n, m->name, m->version);
	struct store_rd *rd = NULL;
	uint32_t np = 0, k = 0;
	bool wanted;

	if (v != NULL) {
		manifest_free(m);
		node__wants_update(n);
		return;
	}
	wanted = is_wanted(n, m->name, m->version);
	for (uint32_t f = 0; f < m->nfiles; f++)
		np += m->files[f].npieces;

	v = xcalloc(1, sizeof(*v));
	v->m = m;
	v->name = m->name;
	v->version = m->version;
	memcpy(v->hash, hash, 32);
	v->wanted = wanted;
	v->npieces = np;
	v->piece_ids = xreallocarray(NULL, np ? np : 1, 32);
	v->piece_refs = xcalloc(np ? np : 1, sizeof(*v->piece_refs));
	v->piece_nrefs = xcalloc(np ? np : 1, sizeof(*v->piece_nrefs));
	v->piece_asked = xcalloc(np ? np : 1, 1);
	v->piece_tries = xcalloc(np ? np : 1, sizeof(*v->piece_tries));
	v->piece_failed = xcalloc(np ? np : 1, sizeof(*v->piece_failed));
	v->piece_nfailed = xcalloc(np ? np : 1, sizeof(*v->piece_nfailed));
	for (uint32_t f = 0; f < m->nfiles; f++)
		for (uint32_t i = 0; i < m->files[f].npieces; i++)
			memcpy(v->piece_ids[k++], m->files[f].pieces[i], 32);

	if (store_rd_begin(n->st, &rd) == 0) {
		for (uint32_t i = 0; i < np; i++)
			piece_load(rd, v, i);
		store_rd_end(rd);
	}
	if (!wanted && v->pieces_present < np) {
		/* Neither fetched nor whole enough to offer: leave it to the catalog. */
		for (uint32_t i = 0; i < np; i++)
			free(v->piece_refs[i]);
		free(v->piece_ids);
		free(v->piece_refs);
		free(v->piece_nrefs);
		free(v->piece_asked);
		free(v->piece_tries);
		free(v->piece_failed);
		free(v->piece_nfailed);
		free(v);
		manifest_free(m);
		node__wants_update(n);
		return;
	}
	v->next = n->vers;
	n->vers = v;
	if (v->pieces_present == np) {
		ver_ready(n, v);
	} else {
		v->state = NV_NEED_INDEX;
		log_info(LOG_FETCH,
			 "fetching the index of %s@%" PRIu64 " (%u of %u pieces present)", v->name,
			 v->version, v->pieces_present, np);
		fetch_pieces(n, v);
	}
	node__wants_update(n);
}

/* Stored versions that became wanted (reload, fetch) but are not tracked yet. */
static void track_stored_wanted(struct node *n)
{
	for (size_t i = 0; i < n->nnewest; i++) {
		const struct gossip_entry *e = &n->newest[i];
		struct manifest *m = NULL;

		if (!is_wanted(n, e->name, e->version) || node__ver_find(n, e->name, e->version))
			continue;
		if (catalog_load(n->st, &n->trust, e->name, e->version, &m) == 0)
			node__version_known(n, m, e->hash);
	}
	for (struct nwant *w = n->wants; w != NULL; w = w->next) {
		struct manifest *m = NULL;
		struct store_rd *rd;
		const uint8_t *bytes;
		size_t len;
		uint8_t hash[32];

		if (w->version == 0 || node__ver_find(n, w->name, w->version))
			continue;
		if (store_rd_begin(n->st, &rd) < 0)
			continue;
		if (store_manifest_get(rd, w->name, w->version, &bytes, &len) == 0 &&
		    manifest_open(bytes, len, &n->trust, &m, hash) == 0) {
			store_rd_end(rd);
			node__version_known(n, m, hash);
			/* The list may have changed (completion removes wants): start over later.
			 */
			return;
		}
		store_rd_end(rd);
	}
}

void node__wants_update(struct node *n)
{
	/* version_known calls back in here; one pass at a time is enough. */
	if (n->wants_busy)
		return;
	n->wants_busy = true;
	track_stored_wanted(n);
	for (struct nver *v = n->vers; v != NULL; v = v->next) {
		bool w = is_wanted(n, v->name, v->version);

		v->explicit = is_explicit(n, v->name, v->version);
		if (w == v->wanted)
			continue;
		v->wanted = w;
		if (w) {
			if (v->state != NV_COMPLETE)
				log_info(LOG_FETCH, "now fetching %s@%" PRIu64, v->name,
					 v->version);
			if (v->state == NV_READY)
				ver_sched_in(n, v);
			else if (v->state == NV_NEED_INDEX)
				fetch_pieces(n, v);
		} else {
			if (v->state != NV_COMPLETE)
				log_info(LOG_FETCH, "no longer fetching %s@%" PRIu64, v->name,
					 v->version);
			ver_sched_out(n, v);
		}
	}
	n->wants_busy = false;
	node__fetch_poll(n);
}

void node__version_gone(struct node *n, const char *name, uint64_t version)
{
	struct nver **pv = &n->vers, *v;

	while (*pv != NULL && ((*pv)->version != version || strcmp((*pv)->name, name) != 0))
		pv = &(*pv)->next;
	if ((v = *pv) == NULL)
		return;
	for (struct npeer *p = n->peers; p != NULL; p = p->next)
		send_have_none(p, v);
	ver_sched_out(n, v);
	if (v->state == NV_COMPLETE) {
		/* Nothing refers to a complete version: no piece requests, not in the idmap. */
		*pv = v->next;
		ver_free(v);
		log_info(LOG_FETCH, "%s@%" PRIu64 " was evicted: no longer offered to peers", name,
			 version);
		return;
	}
	/*
	 * Being fetched (requests and verifications may point at it): keep
	 * tracking it, holding nothing, as the store now does.
	 */
	if (v->present != NULL)
		memset(v->present, 0, (v->n + 7) / 8);
	v->n_present = 0;
	v->have_bytes = 0;
	idmap_rebuild(n);
	ver_sched_in(n, v);
	log_info(LOG_FETCH, "%s@%" PRIu64 " was evicted while incomplete: its chunks are gone",
		 name, version);
}

void node__ver_progress(struct node *n, struct nver *v, struct node_progress *out)
{
	struct sched_progress sp;

	memset(out, 0, sizeof(*out));
	out->version = v->version;
	out->need_bytes = v->need_bytes;
	out->have_bytes = v->have_bytes;
	out->complete = v->state == NV_COMPLETE;
	if (v->state == NV_COMPLETE)
		out->have_bytes = out->need_bytes;
	if (v->in_sched && sched_progress(n->sched, v->vid, node__now(n), &sp) == 0) {
		out->inflight_bytes = sp.inflight_bytes;
		out->sources = sp.sources;
		out->rate_bps = (double)sp.rate_bps;
	}
}

/* ---- requests ---- */

static struct nreq *req_new(struct npeer *p, const uint8_t id[32])
{
	struct nreq *r = xcalloc(1, sizeof(*r));

	r->req = p->next_req++;
	memcpy(r->id, id, 32);
	r->sent_ms = r->progress_ms = node__now(p->n);
	r->next = p->reqs;
	p->reqs = r;
	p->nreqs++;
	return r;
}

static void req_send(struct npeer *p, const struct nreq *r)
{
	struct wire_msg m = {.type = WIRE_CHUNK_REQ};
	char pid[ID_SHORT_LEN], cid[ID_SHORT_LEN];

	m.chunk_req.req = r->req;
	memcpy(m.chunk_req.id, r->id, 32);
	m.chunk_req.offset = r->got;
	send_msg(p, &m);
	log_debug(LOG_FETCH, "asked peer %s for %s %s from byte %" PRIu32, sid(pid, p->id),
		  r->piece != NULL ? "index piece" : "chunk", sid(cid, r->id), r->got);
}

/* Whether p is one of the last peers that failed piece i of v. */
static bool piece_failed_by(const struct nver *v, uint32_t i, const struct npeer *p)
{
	uint32_t k = MIN(v->piece_nfailed[i], (uint32_t)NODE_PIECE_FAILED_MAX);

	for (uint32_t j = 0; j < k; j++)
		if (memcmp(v->piece_failed[i][j], p->id, 32) == 0)
			return true;
	return false;
}

/* p timed out, had no piece i of v or sent a bad one: ask another peer next. */
static void piece_fail(struct nver *v, uint32_t i, const struct npeer *p)
{
	v->piece_asked[i] = 0;
	v->piece_tries[i]++;
	if (!piece_failed_by(v, i, p))
		memcpy(v->piece_failed[i][v->piece_nfailed[i]++ % NODE_PIECE_FAILED_MAX], p->id,
		       32);
}

/*
 * The peer to ask for piece i of v: one that said HAVE for v and has not
 * failed it, the one with the fewest requests out; when every holder failed
 * it, rotate over them all with each try (any peer if nobody said HAVE).
 */
static struct npeer *piece_source(struct node *n, struct nver *v, uint32_t i)
{
	struct npeer *cand[64], *best = NULL;
	size_t k = 0;

	for (struct npeer *p = n->peers; p != NULL && k < ARRAY_SIZE(cand); p = p->next) {
		if (p->c == NULL || have_find(p, v->name, v->version) == NULL)
			continue;
		cand[k++] = p;
		if (!piece_failed_by(v, i, p) && (best == NULL || p->nreqs < best->nreqs))
			best = p;
	}
	if (best != NULL)
		return best;
	if (k == 0)
		for (struct npeer *p = n->peers; p != NULL && k < ARRAY_SIZE(cand); p = p->next)
			if (p->c != NULL)
				cand[k++] = p;
	return k ? cand[v->piece_tries[i] % k] : NULL;
}

/* Whether a connected holder of v other than p has not failed piece i. */
static bool piece_other_source(struct node *n, const struct nver *v, uint32_t i,
			       const struct npeer *p)
{
	for (struct npeer *q = n->peers; q != NULL; q = q->next)
		if (q != p && q->c != NULL && have_find(q, v->name, v->version) != NULL &&
		    !piece_failed_by(v, i, q))
			return true;
	return false;
}

static void fetch_pieces(struct node *n, struct nver *v)
{
	if (n->stopping || v->state != NV_NEED_INDEX || !v->wanted)
		return;
	for (uint32_t i = 0; i < v->npieces; i++) {
		struct npeer *p;
		struct nreq *r;

		if (v->piece_refs[i] != NULL || v->piece_asked[i])
			continue;
		p = piece_source(n, v, i);
		if (p == NULL)
			return;
		r = req_new(p, v->piece_ids[i]);
		r->piece = v;
		r->piece_idx = i;
		v->piece_asked[i] = 1;
		req_send(p, r);
	}
}

/* Add chunk id to a batch of claims, at its position in a version we fetch. */
static void claim_add(struct node *n, struct posbatch *b, const uint8_t id[32])
{
	for (uint32_t k = idmap_first(n->idmap, id); k != UINT32_MAX; k = n->idmap->pool[k].next) {
		if (n->idmap->pool[k].v->in_sched) {
			posbatch_add(b, n->idmap->pool[k].v, n->idmap->pool[k].pos);
			return;
		}
	}
}

/*
 * Tell the members of our site (LAN peers) which chunks we just asked a WAN
 * peer for, so that none of them asks for the same (docs/scheduling.md,
 * "Site members share the WAN work").
 */
static void send_claims(struct node *n, const struct sched_reqs *reqs)
{
	struct posbatch b = {0};
	bool lan = false;

	for (struct npeer *p = n->peers; p != NULL && !lan; p = p->next)
		lan = p->lan && p->c != NULL;
	for (size_t i = 0; i < reqs->n && lan; i++) {
		struct npeer *p = reqs->v[i].peer < ARRAY_SIZE(n->by_handle)
				      ? n->by_handle[reqs->v[i].peer]
				      : NULL;

		if (p != NULL && !p->lan)
			claim_add(n, &b, reqs->v[i].id);
	}
	posbatch_send(n, &b, WIRE_CLAIM, true, NULL);
	posbatch_free(&b);
}

/*
 * A member of our site is up: claim to it what we have asked WAN peers for
 * (after our HAVEs, which it keeps the claims of a version it does not
 * fetch yet with).
 */
static void claims_to(struct node *n, struct npeer *p)
{
	struct posbatch b = {0};

	for (struct npeer *q = n->peers; q != NULL; q = q->next)
		for (struct nreq *r = q->reqs; r != NULL && !q->lan; r = r->next)
			if (r->piece == NULL)
				claim_add(n, &b, r->id);
	posbatch_send(n, &b, WIRE_CLAIM, true, p);
	posbatch_free(&b);
}

void node__fetch_poll(struct node *n)
{
	struct sched_reqs reqs = {0};
	uint64_t held;

	if (n->stopping || n->sq == NULL || storeq_busy(n->sq) ||
	    n->verify_bytes >= VERIFY_QUEUE_MAX)
		return;
	held = sched_inflight(n->sched) + n->verify_bytes + storeq_queued_bytes(n->sq);
	if (held >= RECV_BUDGET ||
	    sched_poll_max(n->sched, node__now(n), RECV_BUDGET - held, &reqs) < 0)
		return;
	for (size_t i = 0; i < reqs.n; i++) {
		struct npeer *p =
		    reqs.v[i].peer < ARRAY_SIZE(n->by_handle) ? n->by_handle[reqs.v[i].peer] : NULL;
		struct nreq *r;

		if (p == NULL || p->c == NULL)
			continue;
		r = req_new(p, reqs.v[i].id);
		r->want_len = reqs.v[i].len;
		part_resume(n, p, r);
		req_send(p, r);
	}
	send_claims(n, &reqs);
	sched_reqs_free(&reqs);
}

static void req_unlink(struct npeer *p, struct nreq *r)
{
	for (struct nreq **pr = &p->reqs; *pr != NULL; pr = &(*pr)->next) {
		if (*pr == r) {
			*pr = r->next;
			p->nreqs--;
			return;
		}
	}
}

static struct nreq *req_find(struct npeer *p, uint32_t req)
{
	for (struct nreq *r = p->reqs; r != NULL; r = r->next)
		if (r->req == req)
			return r;
	return NULL;
}

/* ---- peers coming and going ---- */

void node__peer_up_fetch(struct node *n, struct npeer *p)
{
	for (struct nver *v = n->vers; v != NULL; v = v->next)
		send_have(p, v);
	if (p->lan)
		claims_to(n, p);
	for (struct nver *v = n->vers; v != NULL; v = v->next)
		fetch_pieces(n, v);
	node__fetch_poll(n);
}

static void serve_free(struct nserve *s)
{
	free(s->enc);
	free(s);
}

void node__peer_down_fetch(struct node *n, struct npeer *p)
{
	while (p->reqs != NULL) {
		struct nreq *r = p->reqs;

		p->reqs = r->next;
		if (r->piece != NULL)
			r->piece->piece_asked[r->piece_idx] = 0;
		part_keep(n, p, r);
		free(r->buf);
		free(r);
	}
	p->nreqs = 0;
	while (p->serve != NULL) {
		struct nserve *s = p->serve;

		p->serve = s->next;
		serve_free(s);
	}
	p->serve_tail = &p->serve;
	p->nserve = 0;
	while (p->haves != NULL) {
		struct nhave *h = p->haves;

		p->haves = h->next;
		free(h->bits);
		free(h->claims);
		free(h);
	}
	p->have_bytes = 0;
	p->nhaves = 0;
	uv_timer_stop(&p->read_timer);
	uv_timer_stop(&p->send_timer);
	/* Index pieces asked of p go to another peer (sched does the same for chunks). */
	p->c = NULL;
	for (struct nver *v = n->vers; v != NULL; v = v->next)
		fetch_pieces(n, v);
}

/* ---- HAVE and HAVE_ADD ---- */

/*
 * p holds less than it said (a chunk it no longer has, a version it evicted).
 * sched has no "forget one holder" call: forget the peer's holdings and
 * replay what its HAVEs say now.
 */
static void sched_forget_holdings(struct node *n, struct npeer *p, uint64_t now)
{
	if (!p->in_sched)
		return;
	sched_peer_remove(n->sched, p->h, now);
	p->in_sched =
	    sched_peer_add(n->sched, p->h, p->id, p->lan ? SCHED_LAN : SCHED_WAN, now) == 0;
	for (struct nver *v = n->vers; v != NULL; v = v->next)
		if (v->state == NV_READY)
			sched_have_replay(n, p, v);
}

void node__on_have(struct node *n, struct npeer *p, const struct wire_msg *m)
{
	const struct wire_have *w = &m->have;
	struct nhave *h = have_find(p, w->name, w->version);
	struct nver *v = node__ver_find(n, w->name, w->version);
	size_t bytes = ((size_t)w->nchunks + 7) / 8;

	if (h != NULL && h->nchunks != w->nchunks) {
		have_claims_drop(p, h);
		p->have_bytes -= h->bits ? bytes : 0;
		free(h->bits);
		h->bits = NULL;
		h->complete = false;
		h->nchunks = w->nchunks;
	}
	if (h == NULL) {
		if (p->nhaves >= NODE_HAVE_VERSIONS)
			return;
		p->nhaves++;
		h = xcalloc(1, sizeof(*h));
		snprintf(h->name, sizeof(h->name), "%s", w->name);
		h->version = w->version;
		h->nchunks = w->nchunks;
		h->next = p->haves;
		p->haves = h;
	}
	if (w->complete) {
		char pid[ID_SHORT_LEN];

		/* Only versions we track: a name we refused has no business in our log. */
		if (!h->complete && v != NULL)
			log_debug(LOG_FETCH, "peer %s holds all of %s@%" PRIu64, sid(pid, p->id),
				  w->name, w->version);
		if (h->bits != NULL)
			p->have_bytes -= bytes;
		free(h->bits);
		h->bits = NULL;
		h->complete = true;
	} else {
		bool was_complete = h->complete, lost = false, held = false;
		char pid[ID_SHORT_LEN];

		if (h->bits == NULL) {
			if (p->have_bytes + bytes > NODE_HAVE_BUDGET)
				return;
			h->bits = xmalloc(bytes ? bytes : 1);
			/* After a complete HAVE, positions this one does not cover stay held. */
			memset(h->bits, was_complete ? 0xff : 0, bytes ? bytes : 1);
			p->have_bytes += bytes;
		}
		h->complete = false;
		if (w->first / 8 < bytes) {
			size_t k = MIN(w->bitmap_len, bytes - w->first / 8);
			uint8_t *at = h->bits + w->first / 8;

			for (size_t i = 0; i < k; i++)
				lost = lost || (at[i] & (uint8_t)~w->bitmap[i]) != 0;
			memcpy(at, w->bitmap, k);
		}
		for (size_t i = 0; i < bytes && !held; i++)
			held = h->bits[i] != 0;
		if (lost && !held && v != NULL)
			log_debug(LOG_FETCH, "peer %s no longer holds %s@%" PRIu64, sid(pid, p->id),
				  w->name, w->version);
		if (lost && v != NULL && v->state == NV_READY)
			sched_forget_holdings(n, p, node__now(n));
	}
	if (v == NULL)
		return;
	if (v->state == NV_READY)
		sched_have_replay(n, p, v);
	else if (v->state == NV_NEED_INDEX)
		fetch_pieces(n, v);
	node__fetch_poll(n);
}

void node__on_have_add(struct node *n, struct npeer *p, const struct wire_msg *m)
{
	const struct wire_have_add *w = &m->have_add;
	struct nhave *h = have_find(p, w->name, w->version);
	struct nver *v = node__ver_find(n, w->name, w->version);

	if (h == NULL || h->complete || h->bits == NULL)
		return;
	for (uint32_t i = 0; i < w->n; i++) {
		uint32_t pos = w->positions[i];

		if (pos >= h->nchunks)
			continue;
		bit_set(h->bits, pos);
		if (v != NULL && v->state == NV_READY && v->in_sched && p->in_sched && pos < v->n &&
		    h->nchunks == v->n)
			sched_peer_have_chunk(n->sched, p->h, v->refs[pos].id, node__now(n));
	}
	node__fetch_poll(n);
}

/*
 * A member's claims of a version we do not fetch yet (our index of it is on
 * its way) are kept with what it holds of it, for sched_have_replay: a member
 * that starts late must not ask for what the others already have in flight.
 */
void node__on_claim(struct node *n, struct npeer *p, const struct wire_msg *m)
{
	const struct wire_have_add *w = &m->claim;
	struct nver *v = node__ver_find(n, w->name, w->version);
	struct nhave *h;
	size_t bytes;

	if (!p->lan)
		return;
	if (v != NULL && v->state == NV_READY && v->in_sched && p->in_sched) {
		for (uint32_t i = 0; i < w->n; i++)
			if (w->positions[i] < v->n)
				sched_peer_claim(n->sched, p->h, v->refs[w->positions[i]].id,
						 node__now(n));
		return;
	}
	if ((h = have_find(p, w->name, w->version)) == NULL)
		return;
	bytes = ((size_t)h->nchunks + 7) / 8;
	if (h->claims == NULL) {
		if (p->have_bytes + bytes > NODE_HAVE_BUDGET)
			return;
		h->claims = xcalloc(bytes ? bytes : 1, 1);
		p->have_bytes += bytes;
	}
	for (uint32_t i = 0; i < w->n; i++)
		if (w->positions[i] < h->nchunks)
			bit_set(h->claims, w->positions[i]);
}

/* ---- receiving chunk data ---- */

static __thread struct codec_ctx *tl_codec;

struct verify_job {
	uv_work_t w;
	struct node *n;
	uint8_t peer_id[32];
	uint32_t h;
	uint8_t id[32];
	uint8_t *enc;
	size_t len;
	struct nver *piece; /* NULL for a chunk */
	uint32_t piece_idx;
	bool mixed;		/* assembled from two nodes' data (nreq.mixed) */
	struct chunk_ref *refs; /* a piece's decoded entries */
	size_t nrefs;
	int rc;
	char msg[256];
};

static void verify_work(uv_work_t *w)
{
	struct verify_job *j = w->data;
	uint8_t got[32], *raw = NULL;
	size_t raw_len = 0, out_len = 0;
	int tag, rc;

	if (tl_codec == NULL)
		tl_codec = codec_ctx_new();
	rc = codec_peek(j->enc, j->len, &tag, &raw_len);
	if (rc == 0 && j->piece != NULL && tag != CODEC_RAW)
		rc = ferry_errf(FERRY_EFORMAT, "an index piece encoded as %s, not raw",
				codec_name(tag));
	if (rc == 0) {
		raw = xmalloc(raw_len ? raw_len : 1);
		rc = codec_decode(tl_codec, j->enc, j->len, raw, raw_len, &out_len);
	}
	if (rc == 0) {
		fcrypto_id(got, raw, out_len);
		if (!fcrypto_equal(got, j->id, 32))
			rc = ferry_errf(FERRY_ECORRUPT, "the bytes do not match the id");
	}
	if (rc == 0 && j->piece != NULL)
		rc = index_decode(raw, out_len, &j->refs, &j->nrefs);
	if (rc < 0)
		snprintf(j->msg, sizeof(j->msg), "%s", ferry_errmsg(rc));
	free(raw);
	j->rc = rc;
}

static struct npeer *peer_of(struct node *n, uint32_t h, const uint8_t id[32])
{
	struct npeer *p = h < ARRAY_SIZE(n->by_handle) ? n->by_handle[h] : NULL;

	return p != NULL && p->c != NULL && memcmp(p->id, id, 32) == 0 ? p : NULL;
}

static void source_note(struct nver *v, const uint8_t peer[32], size_t bytes)
{
	v->recv_bytes += bytes;
	for (uint32_t i = 0; i < v->nsources; i++)
		if (memcmp(v->sources[i], peer, 32) == 0)
			return;
	if (v->nsources < SOURCES_MAX) {
		v->sources = xreallocarray(v->sources, v->nsources + 1, 32);
		memcpy(v->sources[v->nsources++], peer, 32);
	}
}

/*
 * p sent something that is not what it claimed (a chunk or index piece
 * that does not match its id, or data that breaks the request's rules):
 * the scheduler records the offence and says whether to drop or ban; the
 * connection is closed either way.
 */
static void peer_offence(struct node *n, struct npeer *p, const uint8_t id[32])
{
	struct sched_verdict verdict = {0};
	uint64_t now = node__now(n);

	/* What was already on its way from a dropped peer is not held against it again. */
	if (p->dropped)
		return;
	if (!p->in_sched) {
		/* Benched: it has no requests to forget, but the offence counts the same. */
		node__misbehaved(n, p, MISBEHAVE_BAD_CHUNK);
	} else {
		p->dropped = true;
		if (sched_chunk_bad(n->sched, p->h, id, now, &verdict) == 0)
			node__ban_note(n, p, MISBEHAVE_BAD_CHUNK, &verdict);
	}
	peer_conn_close(p->c, FERRY_ECORRUPT);
}

static void piece_verified(struct node *n, struct verify_job *j, struct npeer *p)
{
	struct nver *v = j->piece;
	char pid[ID_SHORT_LEN], cid[ID_SHORT_LEN];

	v->piece_asked[j->piece_idx] = 0;
	if (j->rc < 0) {
		if (p != NULL)
			piece_fail(v, j->piece_idx, p);
		else
			v->piece_tries[j->piece_idx]++;
		log_warn(LOG_FETCH, "peer %s sent a bad index piece %s of %s@%" PRIu64 ": %s",
			 sid(pid, j->peer_id), sid(cid, j->id), v->name, v->version, j->msg);
		if (p != NULL)
			peer_offence(n, p, j->id);
		free(j->enc);
		fetch_pieces(n, v);
		return;
	}
	if (v->piece_refs[j->piece_idx] == NULL) {
		v->piece_refs[j->piece_idx] = j->refs;
		v->piece_nrefs[j->piece_idx] = j->nrefs;
		j->refs = NULL;
		v->pieces_present++;
	}
	storeq_put(n->sq, j->id, j->enc, j->len);
	if (v->state == NV_NEED_INDEX && v->pieces_present == v->npieces)
		ver_ready(n, v);
}

static void chunk_verified(struct node *n, struct verify_job *j, struct npeer *p)
{
	struct sched_reqs cancel = {0};
	uint64_t now = node__now(n);
	char pid[ID_SHORT_LEN], cid[ID_SHORT_LEN];

	if (j->rc < 0 && j->mixed) {
		log_warn(LOG_FETCH,
			 "chunk %s, resumed from data another peer sent before it dropped and "
			 "finished by peer %s, is bad: %s; fetching it again whole, blaming "
			 "neither",
			 sid(cid, j->id), sid(pid, j->peer_id), j->msg);
		free(j->enc);
		if (p != NULL && p->in_sched)
			sched_chunk_abandon(n->sched, p->h, j->id);
		return;
	}
	if (j->rc < 0) {
		log_warn(LOG_FETCH, "peer %s sent a bad chunk %s: %s", sid(pid, j->peer_id),
			 sid(cid, j->id), j->msg);
		free(j->enc);
		if (p != NULL)
			peer_offence(n, p, j->id);
		return;
	}
	part_drop(n, j->id);
	sched_chunk_done(n->sched, p != NULL ? p->h : SCHED_PEER_NONE, j->id, now, &cancel);
	send_cancel_for(n, &cancel, false);
	sched_reqs_free(&cancel);
	/* Credit the versions it belongs to, for the completion line. */
	{
		struct nver *last = NULL;

		for (uint32_t k = idmap_first(n->idmap, j->id); k != UINT32_MAX;
		     k = n->idmap->pool[k].next) {
			struct nver *v = n->idmap->pool[k].v;

			if (v != last)
				source_note(v, j->peer_id, j->len);
			last = v;
		}
	}
	storeq_put(n->sq, j->id, j->enc, j->len);
}

void node__reading_update(struct npeer *p)
{
	if (p->c != NULL)
		peer_conn_set_reading(p->c, !p->read_paused && !p->verify_paused);
}

/* Reading resumes on the peers the check backlog held, unless a rate limit holds them too. */
static void verify_resume(struct node *n)
{
	if (!n->verify_holding)
		return;
	n->verify_holding = false;
	for (struct npeer *p = n->peers; p != NULL; p = p->next) {
		if (p->verify_paused) {
			p->verify_paused = false;
			node__reading_update(p);
		}
	}
}

static void verify_done(uv_work_t *w, int status)
{
	struct verify_job *j = w->data;
	struct node *n = j->n;
	struct npeer *p = peer_of(n, j->h, j->peer_id);

	n->pending_work--;
	n->verify_bytes -= j->len;
	if (n->verify_bytes < VERIFY_QUEUE_MAX / 2)
		verify_resume(n);
	if (j->rc == 0)
		n->chunks_verified++;
	else
		n->chunks_rejected++;
	if (n->stopping) {
		/* Still worth keeping: the store thread commits it before it ends. */
		if (j->rc == 0 && n->sq != NULL) {
			storeq_put(n->sq, j->id, j->enc, j->len);
			j->enc = NULL;
		}
		free(j->enc);
		free(j->refs);
		free(j);
		node__stop_progress(n);
		return;
	}
	if (j->piece != NULL)
		piece_verified(n, j, p);
	else
		chunk_verified(n, j, p);
	free(j->refs);
	free(j);
	node__fetch_poll(n);
	/* Nothing asked for and nothing left to check: the fetch has drained. */
	if (n->verify_bytes == 0 && sched_inflight(n->sched) == 0)
		storeq_flush(n->sq);
}

static void verify_submit(struct node *n, struct npeer *p, struct nreq *r)
{
	struct verify_job *j = xcalloc(1, sizeof(*j));
	int rc;

	j->w.data = j;
	j->n = n;
	memcpy(j->peer_id, p->id, 32);
	j->h = p->h;
	memcpy(j->id, r->id, 32);
	j->enc = r->buf;
	j->len = r->total;
	j->piece = r->piece;
	j->piece_idx = r->piece_idx;
	j->mixed = r->mixed;
	r->buf = NULL;
	rc = uv_queue_work(n->loop, &j->w, verify_work, verify_done);
	if (rc < 0) {
		log_err(LOG_FETCH, "cannot queue a chunk check: %s", uv_strerror(rc));
		if (j->piece != NULL)
			j->piece->piece_asked[j->piece_idx] = 0;
		free(j->enc);
		free(j);
		return;
	}
	n->pending_work++;
	n->verify_bytes += j->len;
}

static void on_read_timer(uv_timer_t *t)
{
	struct npeer *p = t->data;

	if (p->read_paused) {
		p->read_paused = false;
		node__reading_update(p);
	}
}

static enum ratelimit_class rl_class(const struct npeer *p)
{
	return p->lan ? RL_LAN : RL_WAN;
}

/* A bad or inconsistent answer: the peer is dropped (as for a bad chunk). */
static void data_bad(struct node *n, struct npeer *p, struct nreq *r, const char *why)
{
	char pid[ID_SHORT_LEN], cid[ID_SHORT_LEN];

	log_warn(LOG_FETCH, "peer %s: %s for %s %s", sid(pid, p->id), why,
		 r->piece ? "index piece" : "chunk", sid(cid, r->id));
	peer_offence(n, p, r->id);
}

void node__on_chunk_data(struct node *n, struct npeer *p, const struct wire_msg *m)
{
	const struct wire_chunk_data *d = &m->chunk_data;
	struct nreq *r = req_find(p, d->req);
	struct gossip_peer *g = gossip_book_get(n->book, p->id);
	uint64_t now = node__now(n), wait;
	char pid[ID_SHORT_LEN], cid[ID_SHORT_LEN];

	p->bytes_received += d->len;
	n->bytes_received += d->len;
	n->rx_link[p->lan ? 0 : 1] += d->len;
	if (g != NULL)
		g->bytes_received += d->len;
	wait = ratelimit_charge(n->rl, RL_DOWN, rl_class(p), d->len + 32, now);
	if (wait > 0 && !p->read_paused) {
		p->read_paused = true;
		node__reading_update(p);
		uv_timer_start(&p->read_timer, on_read_timer, wait, 0);
	}
	if (r == NULL)
		return; /* cancelled: the rest is still on its way */
	if (r->buf == NULL) {
		if (r->piece == NULL && d->total != r->want_len) {
			data_bad(n, p, r, "wrong length");
			return;
		}
		if (d->total > WIRE_CHUNK_ENC_MAX) {
			data_bad(n, p, r, "too long");
			return;
		}
		r->total = d->total;
		r->buf = xmalloc(d->total);
	}
	if (d->total != r->total || d->offset != r->got || d->len > r->total - r->got) {
		data_bad(n, p, r, "data out of order");
		return;
	}
	memcpy(r->buf + r->got, d->data, d->len);
	r->got += (uint32_t)d->len;
	r->progress_ms = now;
	if (r->piece == NULL) {
		p->last_data_ms = now;
		if (p->in_sched)
			sched_chunk_progress(n->sched, p->h, r->id, (uint32_t)d->len, now);
	}
	if (r->got < r->total)
		return;
	log_debug(LOG_FETCH, "peer %s sent %s %s: %" PRIu32 " bytes in %.1f s", sid(pid, p->id),
		  r->piece != NULL ? "index piece" : "chunk", sid(cid, r->id), r->total,
		  (double)(now - r->sent_ms) / 1000);
	req_unlink(p, r);
	verify_submit(n, p, r);
	free(r->buf);
	free(r);
	if (n->verify_bytes >= VERIFY_QUEUE_MAX && !p->verify_paused) {
		p->verify_paused = true;
		n->verify_holding = true;
		node__reading_update(p);
	}
}

void node__on_chunk_none(struct node *n, struct npeer *p, const struct wire_msg *m)
{
	struct nreq *r = req_find(p, m->chunk_none.req);
	char pid[ID_SHORT_LEN], cid[ID_SHORT_LEN];

	if (r == NULL)
		return;
	req_unlink(p, r);
	log_debug(LOG_FETCH, "peer %s has no %s", sid(pid, p->id), sid(cid, r->id));
	if (r->piece != NULL) {
		/* The next peer is asked on the next tick or HAVE, not in a tight loop. */
		piece_fail(r->piece, r->piece_idx, p);
	} else {
		/*
		 * It advertised the chunk and no longer has it (collected since).
		 * sched has no "forget one holder" call: forget the peer's holdings
		 * and replay them without this chunk.
		 */
		uint64_t now = node__now(n);

		for (struct nver *v = n->vers; v != NULL; v = v->next) {
			struct nhave *h = have_find(p, v->name, v->version);

			if (v->state != NV_READY || h == NULL || h->nchunks != v->n)
				continue;
			if (h->complete) {
				h->bits = xmalloc((h->nchunks + 7) / 8 + 1);
				memset(h->bits, 0xff, (h->nchunks + 7) / 8 + 1);
				h->complete = false;
			}
			for (uint32_t i = 0; i < v->n; i++)
				if (memcmp(v->refs[i].id, r->id, 32) == 0)
					h->bits[i / 8] &= (uint8_t) ~(1u << (i % 8));
		}
		sched_forget_holdings(n, p, now);
	}
	free(r->buf);
	free(r);
	node__fetch_poll(n);
}

/* ---- serving ---- */

static void on_send_timer(uv_timer_t *t)
{
	struct npeer *p = t->data;

	p->send_waiting = false;
	node__serve_pump(p);
}

static void serve_remove(struct npeer *p, struct nserve *s)
{
	for (struct nserve **ps = &p->serve; *ps != NULL; ps = &(*ps)->next) {
		if (*ps != s)
			continue;
		*ps = s->next;
		if (*ps == NULL)
			p->serve_tail = ps;
		p->nserve--;
		serve_free(s);
		return;
	}
}

static void send_none(struct npeer *p, uint32_t req)
{
	struct wire_msg m = {.type = WIRE_CHUNK_NONE};

	m.chunk_none.req = req;
	send_msg(p, &m);
}

/* Copy the head request's chunk out of the store; false if it is not there. */
static bool serve_load(struct node *n, struct nserve *s)
{
	struct store_rd *rd;
	const uint8_t *enc;
	size_t len;
	bool ok = false;

	if (store_rd_begin(n->st, &rd) < 0)
		return false;
	if (store_chunk_get(rd, s->id, &enc, &len) == 0 && s->offset < len) {
		s->enc = xmalloc(len);
		memcpy(s->enc, enc, len);
		s->len = len;
		s->pos = s->offset;
		ok = true;
	}
	store_rd_end(rd);
	/* The test hook spares index pieces, so a receiver gets as far as asking for data. */
	if (ok && n->test_corrupt_serve &&
	    !(len >= CODEC_HDR_LEN + 4 && memcmp(s->enc + CODEC_HDR_LEN, "FIDX", 4) == 0))
		s->enc[len / 2] ^= 0x5a;
	return ok;
}

/*
 * The request lane k serves: the one it has begun, else (if it may begin
 * one) the oldest no lane has begun.
 */
static struct nserve *serve_next(struct npeer *p, unsigned lane, bool begin)
{
	struct nserve *fresh = NULL;

	for (struct nserve *s = p->serve; s != NULL; s = s->next) {
		if (s->lane == (int)lane)
			return s;
		if (s->lane < 0 && fresh == NULL && begin)
			fresh = s;
	}
	return fresh;
}

/*
 * Send s's next frame on lane k: 1 when sent (or s was answered CHUNK_NONE),
 * 0 when the rate limit or the conn makes the pump wait.
 */
static int serve_frame(struct node *n, struct npeer *p, struct nserve *s, unsigned lane)
{
	struct wire_msg m = {.type = WIRE_CHUNK_DATA};
	struct gossip_peer *g;
	size_t frame;

	if (s->enc == NULL && !serve_load(n, s)) {
		send_none(p, s->req);
		serve_remove(p, s);
		return 1;
	}
	frame = MIN(s->len - s->pos, (size_t)WIRE_CHUNK_DATA_MAX);
	if (!p->send_booked) {
		uint64_t wait = ratelimit_take(n->rl, RL_UP, rl_class(p), frame + 32, node__now(n));

		p->send_booked = true;
		if (wait > 0) {
			p->send_waiting = true;
			uv_timer_start(&p->send_timer, on_send_timer, wait, 0);
			return 0;
		}
	}
	m.chunk_data.req = s->req;
	m.chunk_data.offset = (uint32_t)s->pos;
	m.chunk_data.total = (uint32_t)s->len;
	m.chunk_data.data = s->enc + s->pos;
	m.chunk_data.len = frame;
	if (peer_conn_lane_send(p->c, lane, &m) < 0)
		return 0;
	p->send_booked = false;
	s->lane = (int)lane;
	s->pos += frame;
	p->bytes_served += frame;
	n->bytes_served += frame;
	n->tx_link[p->lan ? 0 : 1] += frame;
	g = gossip_book_get(n->book, p->id);
	if (g != NULL)
		g->bytes_served += frame;
	if (s->pos == s->len)
		serve_remove(p, s);
	return 1;
}

/*
 * Serve queued requests, a frame at a time on each lane that wants data. A
 * request stays on the lane that sent its first frame, so its frames arrive
 * in order; each lane of a WAN peer carries its own request at once. While
 * lanes are up the connection itself begins no request: its share of the
 * link is one flow's, and the pings, HAVE_ADDs and CLAIMs on it would wait
 * behind what is queued there (pings took 3-6 s with 8 flows a peer).
 */
void node__serve_pump(struct npeer *p)
{
	struct node *n = p->n;
	bool sent = true;

	while (sent && p->c != NULL && p->serve != NULL && !p->send_waiting) {
		unsigned up = peer_conn_lanes_up(p->c);

		sent = false;
		for (unsigned k = 0; k < PEER_LANES_MAX && p->c != NULL && p->serve != NULL; k++) {
			struct nserve *s;

			if (!(up & 1u << k) || !peer_conn_lane_wants_data(p->c, k) ||
			    (s = serve_next(p, k, k > 0 || up == 1)) == NULL)
				continue;
			if (serve_frame(n, p, s, k) == 0)
				return;
			sent = true;
		}
	}
}

/*
 * Lane k of p came up (more room to serve) or went down: what it had begun
 * sending is lost with it, and the requester asks again once its request
 * stalls (its frames must arrive in order, so another lane cannot finish it).
 */
void node__serve_lane(struct npeer *p, unsigned lane, bool up)
{
	if (!up) {
		for (struct nserve *s = p->serve, *next; s != NULL; s = next) {
			next = s->next;
			if (s->lane == (int)lane)
				serve_remove(p, s);
		}
	}
	node__serve_pump(p);
}

void node__on_chunk_req(struct node *n, struct npeer *p, const struct wire_msg *m)
{
	const struct wire_chunk_req *q = &m->chunk_req;
	struct nserve *s;

	if (p->nserve >= NODE_SERVE_MAX) {
		send_none(p, q->req);
		return;
	}
	s = xcalloc(1, sizeof(*s));
	s->lane = -1;
	s->req = q->req;
	memcpy(s->id, q->id, 32);
	s->offset = q->offset;
	*p->serve_tail = s;
	p->serve_tail = &s->next;
	p->nserve++;
	node__serve_pump(p);
}

void node__on_cancel(struct node *n, struct npeer *p, const struct wire_msg *m)
{
	for (struct nserve *s = p->serve; s != NULL; s = s->next) {
		if (s->req == m->cancel.req) {
			serve_remove(p, s);
			break;
		}
	}
	node__serve_pump(p);
}

/* ---- commits ---- */

void node__on_commit(void *arg, const uint8_t (*ids)[32], size_t cnt)
{
	struct node *n = arg;
	struct posbatch b = {0};

	for (size_t i = 0; i < cnt; i++) {
		for (uint32_t k = idmap_first(n->idmap, ids[i]); k != UINT32_MAX;
		     k = n->idmap->pool[k].next) {
			struct nver *v = n->idmap->pool[k].v;
			uint32_t pos = n->idmap->pool[k].pos;

			if (v->state != NV_READY || bit_get(v->present, pos))
				continue;
			bit_set(v->present, pos);
			v->n_present++;
			v->have_bytes += v->refs[pos].enc_len;
			posbatch_add(&b, v, pos);
		}
	}
	log_debug(LOG_FETCH, "committed %zu chunks; %" PRIu64 " bytes received in all", cnt,
		  n->bytes_received);
	posbatch_send(n, &b, WIRE_HAVE_ADD, false, NULL);
	for (size_t t = 0; t < b.n; t++)
		if (b.v[t]->n_present == b.v[t]->n)
			ver_complete(n, b.v[t]);
	for (size_t t = 0; t < b.n; t++) {
		if (b.v[t]->state == NV_COMPLETE) {
			idmap_rebuild(n);
			break;
		}
	}
	posbatch_free(&b);
	node__fetch_poll(n);
}

void node__ver_rescan(struct node *n, struct nver *v)
{
	struct store_rd *rd;
	uint8_t(*ids)[32] = NULL;
	size_t cnt = 0;

	if (v->state == NV_COMPLETE || store_rd_begin(n->st, &rd) < 0)
		return;
	if (v->state == NV_NEED_INDEX) {
		for (uint32_t i = 0; i < v->npieces; i++)
			piece_load(rd, v, i);
		store_rd_end(rd);
		/* ver_ready finds the chunks present, says HAVE, completes or fetches the rest. */
		if (v->pieces_present == v->npieces)
			ver_ready(n, v);
		return;
	}
	for (uint32_t i = 0; i < v->n; i++) {
		if (bit_get(v->present, i) || !store_chunk_has(rd, v->refs[i].id))
			continue;
		ids = xreallocarray(ids, cnt + 1, sizeof(*ids));
		memcpy(ids[cnt++], v->refs[i].id, 32);
	}
	store_rd_end(rd);
	/* As if they had just been committed: HAVE_ADD to the peers, completion, activation. */
	if (cnt > 0)
		node__on_commit(n, (const uint8_t(*)[32])ids, cnt);
	free(ids);
}

/* ---- timers, limits ---- */

static void ask_wanted_manifests(struct node *n)
{
	for (struct nwant *w = n->wants; w != NULL; w = w->next) {
		struct wire_msg m = {.type = WIRE_MANIFEST_REQ};

		if ((w->version != 0 && node__ver_find(n, w->name, w->version) != NULL) ||
		    (w->version == 0 && newest_of(n, w->name) != 0))
			continue;
		snprintf(m.manifest_req.name, sizeof(m.manifest_req.name), "%s", w->name);
		m.manifest_req.version = w->version;
		for (struct npeer *p = n->peers; p != NULL; p = p->next)
			send_msg(p, &m);
	}
}

/*
 * Take p out of sched until its bench ends: every chunk request of it is
 * cancelled and offered to the other holders at once, instead of each one
 * stalling in turn while sched keeps refilling p's window.
 */
static void peer_bench(struct node *n, struct npeer *p, uint64_t now)
{
	char pid[ID_SHORT_LEN];
	uint64_t span = (uint64_t)NODE_BENCH_MS << MIN(p->benches, 3u);

	for (struct nreq **pr = &p->reqs; *pr != NULL;) {
		if ((*pr)->piece != NULL)
			pr = &(*pr)->next;
		else
			req_cancel(n, p, pr, true);
	}
	sched_peer_remove(n->sched, p->h, now);
	p->in_sched = false;
	p->bench_until = now + span;
	p->benches++;
	log_info(LOG_FETCH,
		 "peer %s sent no chunk data since a request that stalled: no chunk "
		 "requests to it for %" PRIu64 " s",
		 sid(pid, p->id), span / 1000u);
}

/* Bench the peers of cancel (stalled requests without data) that sent nothing since. */
static void bench_silent(struct node *n, const struct sched_reqs *cancel, uint64_t now)
{
	for (size_t i = 0; i < cancel->n; i++) {
		struct npeer *p = cancel->v[i].peer < ARRAY_SIZE(n->by_handle)
				      ? n->by_handle[cancel->v[i].peer]
				      : NULL;

		if (p == NULL || !p->in_sched)
			continue;
		for (struct nreq *r = p->reqs; r != NULL; r = r->next) {
			if (r->piece == NULL && memcmp(r->id, cancel->v[i].id, 32) == 0) {
				if (p->last_data_ms < r->sent_ms)
					peer_bench(n, p, now);
				break;
			}
		}
	}
}

/* Put the peers whose bench ended back into sched with what they hold. */
static void unbench(struct node *n, uint64_t now)
{
	for (struct npeer *p = n->peers; p != NULL; p = p->next) {
		if (p->c == NULL || p->in_sched || p->bench_until == 0 || now < p->bench_until)
			continue;
		p->bench_until = 0;
		if (sched_peer_add(n->sched, p->h, p->id, p->lan ? SCHED_LAN : SCHED_WAN, now) != 0)
			continue;
		p->in_sched = true;
		for (struct nver *v = n->vers; v != NULL; v = v->next)
			if (v->state == NV_READY)
				sched_have_replay(n, p, v);
	}
}

/*
 * How long a piece request of p may go without data: short when another
 * holder that has not failed the piece is up (at least 4 RTT of p), else long.
 */
static uint64_t piece_timeout(struct node *n, struct npeer *p, const struct nreq *r)
{
	struct peer_conn_stats st;
	uint64_t t = NODE_PIECE_STALL_MS;

	if (!piece_other_source(n, r->piece, r->piece_idx, p))
		return NODE_PIECE_TIMEOUT_MS;
	if (p->c != NULL) {
		peer_conn_stats(p->c, &st);
		if (st.rtt_ms > 0 && 4 * st.rtt_ms > (double)t)
			t = 4 * st.rtt_ms >= NODE_PIECE_TIMEOUT_MS ? NODE_PIECE_TIMEOUT_MS
								   : (uint64_t)(4 * st.rtt_ms);
	}
	return t;
}

/*
 * WAN peers that owe us data (a request out) and have sent none for
 * NODE_REVIVE_QUIET_MS get their path checked: after an outage of our link, a
 * fresh connection gets data moving again at once, where the old one waits
 * out TCP's backed-off retransmission timer (docs/scheduling.md, "Outages").
 * The check is a ping first, so a peer that was just asked is no concern.
 */
static void revive_quiet(struct node *n, uint64_t now)
{
	for (struct npeer *p = n->peers; p != NULL; p = p->next) {
		if (p->c == NULL || p->lan || p->read_paused || p->verify_paused || p->reqs == NULL)
			continue;
		if (now - p->last_data_ms >= NODE_REVIVE_QUIET_MS)
			peer_conn_revive(p->c);
	}
}

/*
 * Give sched each new RTT sample of a peer's connection (a PING's round
 * trip over the loaded connection: what a request waits for its first
 * byte), and the smoothed RTT to a peer sched has just taken in; and how
 * many connections (lanes) serve it at once.
 */
static void rtt_feed(struct node *n, uint64_t now)
{
	for (struct npeer *p = n->peers; p != NULL; p = p->next) {
		struct peer_conn_stats st;
		struct sched_peer_info si;
		unsigned streams;
		double ms;

		if (p->c == NULL || !p->in_sched || sched_peer_info(n->sched, p->h, &si) < 0)
			continue;
		peer_conn_stats(p->c, &st);
		/* With lanes up, the lanes serve and the connection does not. */
		streams = st.lanes > 1 ? st.lanes - 1 : 1;
		if (si.streams != streams)
			sched_peer_streams(n->sched, p->h, streams);
		if (!st.rtt_samples || (si.rtt_us && st.rtt_samples == p->rtt_fed))
			continue;
		ms = si.rtt_us ? st.rtt_last_ms : st.rtt_ms;
		sched_peer_rtt(n->sched, p->h, (uint32_t)MIN(ms * 1000, (double)UINT32_MAX), now);
		p->rtt_fed = st.rtt_samples;
	}
}

void node__fetch_tick(struct node *n)
{
	struct sched_reqs cancel = {0};
	uint64_t now = node__now(n);

	rtt_feed(n, now);
	sched_tick(n->sched, now, &cancel);
	bench_silent(n, &cancel, now);
	send_cancel_for(n, &cancel, true);
	sched_reqs_free(&cancel);
	unbench(n, now);
	/* Index pieces without data for their timeout go to a peer that has not failed them. */
	for (struct npeer *p = n->peers; p != NULL; p = p->next) {
		for (struct nreq **pr = &p->reqs; *pr != NULL;) {
			struct nreq *r = *pr;

			if (r->piece == NULL || now - r->progress_ms < piece_timeout(n, p, r)) {
				pr = &r->next;
				continue;
			}
			piece_fail(r->piece, r->piece_idx, p);
			req_cancel(n, p, pr, false);
		}
	}
	revive_quiet(n, now);
	part_expire(n, now);
	for (struct nver *v = n->vers; v != NULL; v = v->next)
		fetch_pieces(n, v);
	if (now - n->last_ask_ms >= WANT_ASK_MS) {
		n->last_ask_ms = now;
		ask_wanted_manifests(n);
	}
	node__fetch_poll(n);
}

/* ---- setup ---- */

void node__fetch_init(struct node *n)
{
	n->idmap = xcalloc(1, sizeof(*n->idmap));
	idmap_reset(n->idmap, 0);
}

void node__fetch_free(struct node *n)
{
	while (n->parts != NULL)
		part_free(n, &n->parts);
	while (n->vers != NULL) {
		struct nver *v = n->vers;

		n->vers = v->next;
		ver_free(v);
	}
	if (n->idmap != NULL) {
		idset_free(n->idmap->heads);
		free(n->idmap->pool);
		free(n->idmap);
	}
}
