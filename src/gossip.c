/*
 * Gossip policy: digests, forwarding, peer picks and the book of known
 * peers. Pure; see include/ferry/gossip.h and docs/gossip.md.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "ferry/catalog.h"
#include "ferry/error.h"
#include "ferry/gossip.h"
#include "ferry/util.h"

/* Dial backoff: first wait, cap. */
#define BACKOFF_BASE_MS 1000u
#define BACKOFF_MAX_MS	(10u * 60u * 1000u)

bool gossip_wins(const struct gossip_entry *a, const struct gossip_entry *b)
{
	if (a->version != b->version)
		return a->version > b->version;
	return memcmp(a->hash, b->hash, 32) < 0;
}

static int entry_cmp(const void *pa, const void *pb)
{
	const struct gossip_entry *a = *(const struct gossip_entry *const *)pa;
	const struct gossip_entry *b = *(const struct gossip_entry *const *)pb;
	int c = strcmp(a->name, b->name);

	/* Stable on equal names: later entries sort after earlier ones. */
	if (c == 0)
		c = a < b ? -1 : a > b;
	return c;
}

/* Pointers to e[0..n) sorted by name; for repeated names only the last is kept. */
static const struct gossip_entry **sorted_unique(const struct gossip_entry *e, size_t n,
						 size_t *nout)
{
	const struct gossip_entry **v = xreallocarray(NULL, n ? n : 1, sizeof(*v));
	size_t k = 0;

	for (size_t i = 0; i < n; i++)
		v[i] = &e[i];
	qsort(v, n, sizeof(*v), entry_cmp);
	for (size_t i = 0; i < n; i++) {
		if (i + 1 < n && strcmp(v[i]->name, v[i + 1]->name) == 0)
			continue;
		v[k++] = v[i];
	}
	*nout = k;
	return v;
}

static void todo_add(struct gossip_todo **out, size_t *n, size_t *cap, enum gossip_verb verb,
		     const struct gossip_entry *e)
{
	struct gossip_todo *t;

	if (*n == *cap) {
		*cap = *cap ? 2 * *cap : 16;
		*out = xreallocarray(*out, *cap, sizeof(**out));
	}
	t = &(*out)[(*n)++];
	t->verb = verb;
	memcpy(t->name, e->name, sizeof(t->name));
	t->name[sizeof(t->name) - 1] = '\0';
	t->version = e->version;
	memcpy(t->hash, e->hash, 32);
}

void gossip_diff(const struct gossip_entry *mine, size_t nm, const struct gossip_entry *theirs,
		 size_t nt, struct gossip_todo **out, size_t *nout)
{
	size_t na, nb, i = 0, j = 0, n = 0, cap = 0;
	const struct gossip_entry **a = sorted_unique(mine, nm, &na);
	const struct gossip_entry **b = sorted_unique(theirs, nt, &nb);

	*out = NULL;
	while (i < na || j < nb) {
		int c = i == na ? 1 : j == nb ? -1 : strcmp(a[i]->name, b[j]->name);

		if (c < 0) {
			todo_add(out, &n, &cap, GOSSIP_SEND, a[i++]);
		} else if (c > 0) {
			todo_add(out, &n, &cap, GOSSIP_ASK, b[j++]);
		} else {
			if (gossip_wins(a[i], b[j]))
				todo_add(out, &n, &cap, GOSSIP_SEND, a[i]);
			else if (gossip_wins(b[j], a[i]))
				todo_add(out, &n, &cap, GOSSIP_ASK, b[j]);
			i++;
			j++;
		}
	}
	free(a);
	free(b);
	*nout = n;
}

bool gossip_forward(int outcome)
{
	return outcome == CATALOG_NEWEST || outcome == CATALOG_REPLACED;
}

size_t gossip_fanout(size_t connected)
{
	return connected > 10 ? 3 : 2;
}

uint64_t gossip_rand(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1Dull;
}

size_t gossip_pick(size_t n, size_t k, uint64_t *rng, size_t *out)
{
	size_t *idx, m = MIN(n, k);

	if (m == 0)
		return 0;
	idx = xreallocarray(NULL, n, sizeof(*idx));
	for (size_t i = 0; i < n; i++)
		idx[i] = i;
	for (size_t i = 0; i < m; i++) {
		size_t r = i + (size_t)(gossip_rand(rng) % (n - i)), t = idx[i];

		idx[i] = idx[r];
		idx[r] = t;
		out[i] = idx[i];
	}
	free(idx);
	return m;
}

struct gossip_book {
	uint8_t self[32];
	struct gossip_peer *v;
	size_t n, cap;
};

struct gossip_book *gossip_book_new(const uint8_t self[static 32])
{
	struct gossip_book *b = xcalloc(1, sizeof(*b));

	memcpy(b->self, self, 32);
	return b;
}

void gossip_book_free(struct gossip_book *b)
{
	if (b == NULL)
		return;
	free(b->v);
	free(b);
}

/* "host:port" with a plausible host and a port 1..65535; "" is allowed (not dialable). */
static bool addr_ok(const char *addr)
{
	const char *colon, *host_end;
	size_t len = strlen(addr);
	unsigned long port = 0;

	if (len == 0)
		return true;
	if (len > GOSSIP_ADDR_MAX)
		return false;
	colon = strrchr(addr, ':');
	if (colon == NULL || colon == addr || colon[1] == '\0' || strlen(colon + 1) > 5)
		return false;
	for (const char *p = colon + 1; *p; p++) {
		if (*p < '0' || *p > '9')
			return false;
		port = port * 10 + (unsigned long)(*p - '0');
	}
	if (port == 0 || port > 65535)
		return false;
	host_end = colon;
	if (addr[0] == '[') {
		if (host_end[-1] != ']' || host_end - addr < 3)
			return false;
		for (const char *p = addr + 1; p < host_end - 1; p++)
			if (!strchr("0123456789abcdefABCDEF:.", *p))
				return false;
		return true;
	}
	for (const char *p = addr; p < host_end; p++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_",
			    *p))
			return false;
	return true;
}

static ssize_t book_find(const struct gossip_book *b, const uint8_t id[32])
{
	for (size_t i = 0; i < b->n; i++)
		if (memcmp(b->v[i].id, id, 32) == 0)
			return (ssize_t)i;
	return -1;
}

/* The learned entry (PEX or LAN) seen least recently and not connected, or -1. */
static ssize_t book_victim(const struct gossip_book *b)
{
	ssize_t best = -1;

	for (size_t i = 0; i < b->n; i++) {
		const struct gossip_peer *p = &b->v[i];

		if (p->source > GOSSIP_SRC_LAN || p->connected)
			continue;
		if (best < 0 || p->last_seen < b->v[best].last_seen)
			best = (ssize_t)i;
	}
	return best;
}

int gossip_book_learn(struct gossip_book *b, const uint8_t id[static 32], const char *addr,
		      const char *site, enum gossip_source src, int64_t seen)
{
	struct gossip_peer *p;
	ssize_t i;
	bool changed = false;

	if (memcmp(id, b->self, 32) == 0)
		return ferry_errf(FERRY_EINVAL, "a peer entry names this node itself");
	if (!addr_ok(addr))
		return ferry_errf(FERRY_EINVAL, "peer address '%.80s' is not host:port", addr);
	if (strlen(site) > GOSSIP_SITE_MAX)
		return ferry_errf(FERRY_EINVAL, "peer site '%.80s' is longer than %d bytes", site,
				  GOSSIP_SITE_MAX);
	i = book_find(b, id);
	if (i < 0) {
		if (b->n == GOSSIP_BOOK_MAX) {
			i = book_victim(b);
			if (i < 0 || (src <= GOSSIP_SRC_LAN && b->v[i].last_seen >= seen))
				return ferry_errf(FERRY_ENOSPC, "the book of known peers is full");
			b->v[i] = b->v[--b->n];
		}
		if (b->n == b->cap) {
			b->cap = b->cap ? 2 * b->cap : 16;
			b->v = xreallocarray(b->v, b->cap, sizeof(*b->v));
		}
		p = &b->v[b->n++];
		memset(p, 0, sizeof(*p));
		memcpy(p->id, id, 32);
		p->source = src;
		snprintf(p->addr, sizeof(p->addr), "%s", addr);
		snprintf(p->site, sizeof(p->site), "%s", site);
		p->last_seen = seen;
		return 1;
	}
	p = &b->v[i];
	/* An empty address never replaces a dialable one. */
	if (src >= p->source && addr[0] != '\0') {
		if (strcmp(p->addr, addr) != 0 || strcmp(p->site, site) != 0)
			changed = true;
		snprintf(p->addr, sizeof(p->addr), "%s", addr);
		snprintf(p->site, sizeof(p->site), "%s", site);
		if (src != p->source)
			changed = true;
		p->source = src;
	}
	if (seen > p->last_seen) {
		p->last_seen = seen;
		changed = true;
	}
	return changed ? 1 : 0;
}

struct gossip_peer *gossip_book_get(struct gossip_book *b, const uint8_t id[static 32])
{
	ssize_t i = book_find(b, id);

	return i < 0 ? NULL : &b->v[i];
}

size_t gossip_book_count(const struct gossip_book *b)
{
	return b->n;
}

struct gossip_peer *gossip_book_at(struct gossip_book *b, size_t i)
{
	return i < b->n ? &b->v[i] : NULL;
}

void gossip_book_dial_failed(struct gossip_book *b, const uint8_t id[static 32], uint64_t now_ms,
			     uint64_t *rng)
{
	struct gossip_peer *p = gossip_book_get(b, id);
	uint64_t wait;

	if (p == NULL)
		return;
	wait = p->fails >= 20 ? BACKOFF_MAX_MS
			      : MIN((uint64_t)BACKOFF_BASE_MS << p->fails, BACKOFF_MAX_MS);
	/* +-25% jitter, so nodes restarted together do not dial in step. */
	wait = wait * 3 / 4 + gossip_rand(rng) % (wait / 2 + 1);
	p->fails++;
	p->next_dial = now_ms + wait;
}

void gossip_book_up(struct gossip_book *b, const uint8_t id[static 32], int64_t now_unix)
{
	struct gossip_peer *p = gossip_book_get(b, id);

	if (p == NULL)
		return;
	p->fails = 0;
	p->next_dial = 0;
	if (now_unix > p->last_seen)
		p->last_seen = now_unix;
}

/* A dial candidate, sorted most recently seen first. */
struct by_seen {
	size_t i;
	int64_t seen;
};

static int by_seen_cmp(const void *pa, const void *pb)
{
	const struct by_seen *a = pa, *b = pb;

	if (a->seen != b->seen)
		return a->seen > b->seen ? -1 : 1;
	return a->i < b->i ? -1 : a->i > b->i;
}

size_t gossip_book_pick_dial(struct gossip_book *b, uint64_t now_ms, size_t max, size_t *out)
{
	struct by_seen *c = xreallocarray(NULL, b->n ? b->n : 1, sizeof(*c));
	size_t n = 0;

	for (size_t i = 0; i < b->n; i++) {
		const struct gossip_peer *p = &b->v[i];

		if (p->connected || p->addr[0] == '\0' || p->next_dial > now_ms)
			continue;
		c[n].i = i;
		c[n++].seen = p->last_seen;
	}
	qsort(c, n, sizeof(*c), by_seen_cmp);
	n = MIN(n, max);
	for (size_t k = 0; k < n; k++)
		out[k] = c[k].i;
	free(c);
	return n;
}

size_t gossip_book_pick_share(struct gossip_book *b, const uint8_t asker[static 32],
			      int64_t now_unix, int64_t max_age_s, size_t max, uint64_t *rng,
			      size_t *out)
{
	size_t *cand = xreallocarray(NULL, b->n ? b->n : 1, sizeof(*cand)), nc = 0, *pick, k;

	for (size_t i = 0; i < b->n; i++) {
		const struct gossip_peer *p = &b->v[i];

		if (p->addr[0] == '\0' || memcmp(p->id, asker, 32) == 0)
			continue;
		if (!p->connected && (p->last_seen == 0 || now_unix - p->last_seen > max_age_s))
			continue;
		cand[nc++] = i;
	}
	pick = xreallocarray(NULL, nc ? nc : 1, sizeof(*pick));
	k = gossip_pick(nc, max, rng, pick);
	for (size_t i = 0; i < k; i++)
		out[i] = cand[pick[i]];
	free(pick);
	free(cand);
	return k;
}
