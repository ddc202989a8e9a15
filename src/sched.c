/*
 * The scheduler; see include/ferry/sched.h and docs/scheduling.md.
 *
 * State, all indexed by chunk *slot* (a dense index into s->ch, found from an
 * id through an open-addressing table):
 *   avail         bitset: wanted, missing, no active request, room for one more
 *   peer->has     bitset: the peer holds it
 *   version->in   bitset: the version lists it
 *   lvl[k]        number of available chunks held by k peers (rarity levels)
 *   avail_held    available chunks held by at least one peer; 0 = end-game
 * Requests live in a pool (s->reqs); a chunk lists up to SCHED_MAX_DUP of
 * them. A pick for a peer scans avail & has from a random position and takes
 * the rarest allowed chunk; a scan that finds nothing is remembered (dry) until
 * something that could change the answer happens (gen_avail, gen_has).
 */
#include "config.h"

#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/error.h"
#include "ferry/sched.h"
#include "ferry/util.h"

#define NONE UINT32_MAX
/* chunk->claim_peer: we asked a WAN peer for it (our own claim, as the members see it). */
#define CLAIM_SELF (UINT32_MAX - 1)
/* Candidates weighed per pick before the best so far is taken (bounds a pick's cost). */
#define SCAN_CAP 4096
/* Equally rare candidates a pick chooses among at random, once the rarest level is found. */
#define TIE_WINDOW 64
/* A rate sample spans at least this long, so chunks that arrive together are one sample. */
#define SAMPLE_MIN_MS 10
/* Per-version received-bytes buckets of one second: ten full ones and the current. */
#define RATE_SECS	 10
#define RATE_SLOTS	 (RATE_SECS + 1)
#define SOURCE_RECENT_MS 5000
#define OFFENDERS_MAX	 1024
/* No chunk data from any WAN peer for this long: the WAN is silent. */
#define WAN_SILENCE_MS 1000
/* An idle WAN peer's rate stands for end-game races this long after its last data. */
#define WAN_IDLE_RACE_MS 30000
#define GOLDEN	       0x9e3779b97f4a7c15ull
/* Rounds of taking over part of a slower member's share ("The site's WAN work"). */
#define TAKE_LEVELS 8

/* A node that reconnects within REJOIN_MS keeps the rate and RTT measured before. */
#define REJOIN_MAX 16
#define REJOIN_MS  60000

struct req {
	uint32_t chunk; /* slot; NONE while the entry is free */
	uint32_t peer;
	uint32_t next_free;
	uint32_t span; /* ms without progress before it stalls */
	uint32_t got;  /* bytes reported by sched_chunk_progress */
	uint64_t issued;
	uint64_t ref;	    /* issued, the last progress, or the stall */
	uint64_t last_data; /* time of the last progress; 0 if none */
	bool stalled;	    /* kept racing after a stall (it had data) */
};

struct chunk {
	uint8_t id[32];
	uint64_t hc;	/* fold of the id, the chunk half of the rendezvous hash */
	uint64_t above; /* members ranked above self for it; valid for epoch */
	uint32_t epoch;
	uint8_t top;  /* the member ranked first for it (its owner, lags aside); for epoch */
	bool counted; /* left to its fetchers (s->left, "The site's WAN work") */
	uint8_t fetch[TAKE_LEVELS]; /* its fetcher at each level, while counted */
	uint32_t len;
	uint32_t refs;	       /* wanted versions listing it; 0 = free slot */
	uint32_t stalled_peer; /* the last peer a request of it stalled on, or NONE */
	uint32_t claim_peer;   /* the member that last claimed it, CLAIM_SELF, or NONE */
	uint64_t claim_until;  /* its claim holds until then */
	uint16_t navail, nlan;
	uint8_t nreq, nactive;
	bool done, escalated;
	uint32_t req[SCHED_MAX_DUP];
};

struct peer {
	uint8_t node[32];
	enum sched_link link;
	int member; /* index in s->members, -1 if not a member */
	uint64_t *has;
	double rate;   /* bytes/s EWMA; valid when samples > 0 */
	double rtt_us; /* EWMA; 0 = no ping yet */
	uint32_t samples;
	uint64_t rx_bytes;  /* chunk data from it (progress; at an arrival, what progress missed) */
	bool acc_on;	    /* a rate sample is being gathered: */
	uint64_t acc_start; /* since then, */
	uint64_t acc_mark;  /* from rx_bytes this large */
	uint64_t inflight;	       /* bytes of active requests */
	uint32_t streams;	       /* requests it serves at once (sched_peer_streams) */
	uint32_t nactive;
	uint64_t last_done; /* arrival of its previous chunk */
	uint64_t received;
	uint64_t last_data; /* when it last sent us chunk data */
	uint32_t stalls;
	uint64_t halved_at; /* the rate is halved at most once per tick */
	uint64_t last_gain; /* as a member: it last fetched a chunk ranked above us */
	uint64_t gen_has, dry_avail, dry_has;
	bool dry;
};

struct pend {
	uint32_t peer;
	uint8_t *bits;
	size_t nbits;
};

struct version {
	uint32_t vid;
	uint32_t *slots; /* the list, in the order have bitmaps use */
	size_t n, cap;
	uint64_t *in;
	uint64_t want_bytes, have_bytes;
	uint32_t want_chunks, have_chunks;
	uint64_t started;
	uint64_t bsec[RATE_SLOTS], bbytes[RATE_SLOTS];
	struct pend *pend;
	size_t npend;
};

struct member {
	uint8_t id[32];
	uint64_t h;
	uint32_t peer; /* NONE for self */
};

/* What was measured of a node whose peer went away, for when it comes back. */
struct rejoin {
	uint8_t node[32];
	enum sched_link link;
	double rate, rtt_us;
	uint64_t last_data, at; /* at: when it went; 0 = unused */
};

struct offender {
	uint8_t node[32];
	uint64_t first, last, until;
	uint32_t count, bans;
};

struct sched {
	struct sched_params p;
	uint64_t rng, tabseed;

	struct chunk *ch;
	size_t cap, top; /* slots allocated, slots ever used */
	uint32_t *freeslots;
	size_t nfree;
	uint32_t *tab; /* slot + 1, 0 = empty */
	size_t tabcap, tabused;
	uint64_t *avail;
	uint32_t *lvl; /* SCHED_PEER_MAX + 1 levels */
	uint64_t avail_held, gen_avail;
	uint32_t wan_best; /* the fastest WAN peer delivering lately (NONE: none) */
	uint64_t tracked_bytes, tracked_n;

	struct req *reqs;
	size_t nreqs, reqcap;
	uint32_t freereq;

	struct peer **peers; /* by handle */
	size_t peercap;
	uint32_t *plist; /* handles in use */
	size_t npl, nwan;

	struct member members[SCHED_SITE_MAX];
	unsigned nmembers;
	uint32_t epoch;
	uint64_t lagmask;
	/* Per level and member: chunks left to it ("The site's WAN work"). */
	uint32_t left[TAKE_LEVELS][SCHED_SITE_MAX];
	uint64_t donemask[TAKE_LEVELS]; /* per level: members not lagging with none left */
	uint32_t left_epoch;		/* left is for this epoch and lagmask, unless stale */
	uint64_t left_lag;
	bool left_stale;
	bool claims;		/* some chunk may have a claim (sched_peer_claim) */
	uint64_t last_wan_data; /* when a WAN peer last sent chunk data */
	uint64_t wan_back;	/* when WAN data came back after wan_held */
	bool wan_held;		/* WAN stalls held: our link seemed down (wan_silent) */
	uint64_t wan_quiet;	/* our active WAN requests have got nothing since */
	bool wan_active;	/* we have active WAN requests */
	bool wan_stuck;

	struct version **vers;
	size_t nvers;

	struct offender *off;
	size_t noff;

	struct rejoin rejoin[REJOIN_MAX];
	unsigned rejoin_next;
};

/* Bits, hashing, randomness. */

static bool bit_get(const uint64_t *b, size_t i)
{
	return b[i >> 6] >> (i & 63) & 1;
}

static void bit_set(uint64_t *b, size_t i)
{
	b[i >> 6] |= 1ull << (i & 63);
}

static void bit_clr(uint64_t *b, size_t i)
{
	b[i >> 6] &= ~(1ull << (i & 63));
}

static bool byte_bit(const uint8_t *b, size_t i)
{
	return b[i >> 3] >> (i & 7) & 1;
}

/* The splitmix64 finalizer applied to z + golden ratio: see docs/scheduling.md. */
static uint64_t mix64(uint64_t z)
{
	z += GOLDEN;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t le64(const uint8_t *b)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | b[i];
	return v;
}

static uint64_t fold(const uint8_t id[32])
{
	uint64_t x = 0;

	for (int i = 0; i < 4; i++)
		x = mix64(x ^ le64(id + 8 * i));
	return x;
}

uint64_t sched_rendezvous(const uint8_t chunk[static 32], const uint8_t member[static 32])
{
	return mix64(fold(chunk) ^ fold(member));
}

static uint64_t rng_next(struct sched *s)
{
	s->rng += GOLDEN;
	return mix64(s->rng - GOLDEN);
}

/* Parameters and small peer estimates. */

void sched_params_default(struct sched_params *p)
{
	*p = (struct sched_params){
	    .min_window_reqs = 2,
	    .max_window_reqs = 256,
	    .init_window_bytes = 1u << 20,
	    .max_window_bytes = 64u << 20,
	    .window_gain_pct = 200,
	    .lan_rtt_us = 2000,
	    .wan_rtt_us = 300000,
	    .lan_rate_bps = 100000000,
	    .wan_rate_bps = 1000000,
	    .stall_min_ms = 3000,
	    .owner_slack_ms = 10000,
	    .ban_offences = 3,
	    .ban_period_ms = 3600ull * 1000,
	    .ban_base_ms = 600ull * 1000,
	    .ban_max_ms = 7ull * 24 * 3600 * 1000,
	};
}

static double peer_rate(const struct sched *s, const struct peer *p)
{
	double r;

	if (p->samples && p->rate > 0)
		return p->rate;
	r = (double)(p->link == SCHED_LAN ? s->p.lan_rate_bps : s->p.wan_rate_bps) / 8;
	return r > 1 ? r : 1;
}

static double peer_rtt_ms(const struct sched *s, const struct peer *p)
{
	if (p->rtt_us > 0)
		return p->rtt_us / 1000;
	return (double)(p->link == SCHED_LAN ? s->p.lan_rtt_us : s->p.wan_rtt_us) / 1000;
}

static uint64_t peer_window(const struct sched *s, const struct peer *p)
{
	double w;

	if (!p->samples)
		w = (double)s->p.init_window_bytes;
	else
		w = peer_rate(s, p) * peer_rtt_ms(s, p) / 1000 * s->p.window_gain_pct / 100;
	if (w > (double)s->p.max_window_bytes)
		w = (double)s->p.max_window_bytes;
	return (uint64_t)w;
}

static bool peer_room(const struct sched *s, const struct peer *p, uint64_t len)
{
	if (p->nactive >= s->p.max_window_reqs)
		return false;
	return p->nactive < MAX(s->p.min_window_reqs, p->streams + 1) ||
	       p->inflight + len <= peer_window(s, p);
}

static struct peer *peer_get(const struct sched *s, uint32_t h)
{
	if (h >= s->peercap || !s->peers[h]) {
		ferry_errf(FERRY_ENOENT, "peer handle %" PRIu32 " is not known to the scheduler",
			   h);
		return NULL;
	}
	return s->peers[h];
}

/* The chunk table. */

static size_t tab_home(const struct sched *s, const uint8_t id[32])
{
	return mix64(le64(id) ^ s->tabseed) & (s->tabcap - 1);
}

static uint32_t lookup(const struct sched *s, const uint8_t id[32])
{
	size_t mask = s->tabcap - 1, i;

	if (!s->tabcap)
		return NONE;
	for (i = tab_home(s, id); s->tab[i]; i = (i + 1) & mask)
		if (!memcmp(s->ch[s->tab[i] - 1].id, id, 32))
			return s->tab[i] - 1;
	return NONE;
}

static void tab_put(struct sched *s, uint32_t slot)
{
	size_t mask = s->tabcap - 1, i;

	for (i = tab_home(s, s->ch[slot].id); s->tab[i]; i = (i + 1) & mask)
		;
	s->tab[i] = slot + 1;
	s->tabused++;
}

static void tab_grow(struct sched *s)
{
	uint32_t *old = s->tab;
	size_t ocap = s->tabcap;

	s->tabcap = ocap ? ocap * 2 : 2048;
	s->tab = xcalloc(s->tabcap, sizeof(*s->tab));
	s->tabused = 0;
	for (size_t i = 0; i < ocap; i++)
		if (old[i])
			tab_put(s, old[i] - 1);
	free(old);
}

/* Remove slot from the table, shifting later entries of its probe run back. */
static void tab_del(struct sched *s, uint32_t slot)
{
	size_t mask = s->tabcap - 1, i, j;

	for (i = tab_home(s, s->ch[slot].id); s->tab[i] != slot + 1; i = (i + 1) & mask)
		;
	for (j = i;;) {
		size_t k;

		j = (j + 1) & mask;
		if (!s->tab[j])
			break;
		k = tab_home(s, s->ch[s->tab[j] - 1].id);
		if (i <= j ? (k <= i || k > j) : (k <= i && k > j)) {
			s->tab[i] = s->tab[j];
			i = j;
		}
	}
	s->tab[i] = 0;
	s->tabused--;
}

static uint64_t *grow_bits(uint64_t *b, size_t oldw, size_t neww)
{
	b = xreallocarray(b, neww, sizeof(*b));
	memset(b + oldw, 0, (neww - oldw) * sizeof(*b));
	return b;
}

static void grow_slots(struct sched *s)
{
	size_t ncap = s->cap ? s->cap * 2 : 1024, ow = s->cap / 64, nw = ncap / 64;

	s->ch = xreallocarray(s->ch, ncap, sizeof(*s->ch));
	memset(s->ch + s->cap, 0, (ncap - s->cap) * sizeof(*s->ch));
	s->avail = grow_bits(s->avail, ow, nw);
	for (size_t i = 0; i < s->npl; i++) {
		struct peer *p = s->peers[s->plist[i]];

		p->has = grow_bits(p->has, ow, nw);
	}
	for (size_t i = 0; i < s->nvers; i++)
		s->vers[i]->in = grow_bits(s->vers[i]->in, ow, nw);
	s->cap = ncap;
}

static uint32_t chunk_new(struct sched *s, const struct sched_chunk *sc, bool done)
{
	uint32_t slot;
	struct chunk *c;

	if (s->nfree) {
		slot = s->freeslots[--s->nfree];
	} else {
		if (s->top == s->cap)
			grow_slots(s);
		slot = (uint32_t)s->top++;
	}
	if ((s->tabused + 1) * 2 > s->tabcap)
		tab_grow(s);
	c = &s->ch[slot];
	memset(c, 0, sizeof(*c));
	memcpy(c->id, sc->id, 32);
	c->len = sc->len;
	c->hc = fold(sc->id);
	c->stalled_peer = NONE;
	c->claim_peer = NONE;
	c->done = done;
	tab_put(s, slot);
	return slot;
}

/* The site split and its WAN work. */

/* Members ranked above self for c (bit j for s->members[j]). */
static uint64_t above_mask(const struct sched *s, const struct chunk *c)
{
	const struct member *self = &s->members[0];
	uint64_t hs = mix64(c->hc ^ self->h), m = 0;

	for (unsigned j = 1; j < s->nmembers; j++) {
		uint64_t h = mix64(c->hc ^ s->members[j].h);

		if (h > hs || (h == hs && memcmp(s->members[j].id, self->id, 32) > 0))
			m |= 1ull << j;
	}
	return m;
}

/*
 * The member ranked first for c among those in mask (bit j for s->members[j])
 * by the rendezvous value hashed rehash more times with mix64: the split
 * with rehash 0, the take-over at level r with rehash r.
 */
static unsigned rank_first(const struct sched *s, const struct chunk *c, uint64_t mask,
			   unsigned rehash)
{
	uint64_t best = 0;
	unsigned top = SCHED_SITE_MAX;

	for (unsigned j = 0; j < s->nmembers; j++) {
		uint64_t h = mix64(c->hc ^ s->members[j].h);

		if (!(mask >> j & 1))
			continue;
		for (unsigned k = 0; k < rehash; k++)
			h = mix64(h);
		if (top == SCHED_SITE_MAX || h > best ||
		    (h == best && memcmp(s->members[j].id, s->members[top].id, 32) > 0)) {
			best = h;
			top = j;
		}
	}
	return top;
}

static void chunk_rank(struct sched *s, struct chunk *c)
{
	if (c->epoch != s->epoch) {
		c->above = above_mask(s, c);
		c->top = (uint8_t)rank_first(s, c, UINT64_MAX, 0);
		c->epoch = s->epoch;
	}
}

static uint64_t chunk_above(struct sched *s, struct chunk *c)
{
	chunk_rank(s, c);
	return c->above;
}

/*
 * The site's WAN work (docs/scheduling.md, "Site members share the WAN
 * work"). Every chunk has one fetcher among the members, decided alike on
 * every member from the same have and claim messages:
 *   level 0   its owner: the member ranked first among self and the members
 *             not lagging;
 *   level r   its level r-1 fetcher, unless that has chunks of level r-1
 *             left and some members (not lagging) have none: then the first
 *             of them and it by the rendezvous value hashed r more times.
 * except that a chunk asked of a WAN peer by a member (our active requests,
 * other members' claims, and ours for as long as the others hold them) has
 * that member as its fetcher at every level. A
 * chunk is *left* to its fetchers while wanted, missing here and on the LAN,
 * and held by a WAN peer: a member's level is done when what it fetches has
 * arrived, not when it has asked for it, or a member whose window is larger
 * than its share would take over the others' before they start. The counts
 * per level and member are kept as chunks change; when one reaches or
 * leaves zero the levels above change, and all are counted again before
 * the next use (left_sync).
 */
static int pin_of(const struct sched *s, const struct chunk *c)
{
	const struct peer *q;

	if (c->nactive || c->claim_peer == CLAIM_SELF)
		return 0;
	if (c->claim_peer == NONE)
		return -1;
	q = s->peers[c->claim_peer];
	return q != NULL && q->member > 0 ? q->member : -1;
}

static bool counts(const struct chunk *c)
{
	return c->refs && !c->done && !c->nlan && c->navail;
}

/*
 * c's fetcher at level r, given its pin (pin_of), those below (c->fetch)
 * and the levels' donemask.
 */
static uint8_t fetch_at(struct sched *s, struct chunk *c, int pin, unsigned r)
{
	unsigned prev = r ? c->fetch[r - 1] : 0;
	uint64_t d;

	if (pin >= 0)
		return (uint8_t)pin;
	if (r == 0) {
		chunk_rank(s, c);
		return (uint8_t)(s->lagmask >> c->top & 1 ? rank_first(s, c, ~s->lagmask, 0)
							  : c->top);
	}
	d = s->donemask[r - 1];
	if (!d || d >> prev & 1)
		return (uint8_t)prev;
	return (uint8_t)rank_first(s, c, d | 1ull << prev, r);
}

static void levels(struct sched *s, struct chunk *c)
{
	int pin = pin_of(s, c);

	for (unsigned r = 0; r < TAKE_LEVELS; r++)
		c->fetch[r] = fetch_at(s, c, pin, r);
}

static bool left_stale(const struct sched *s)
{
	return s->left_stale || s->left_epoch != s->epoch || s->left_lag != s->lagmask;
}

static void left_sync(struct sched *s)
{
	uint64_t old[TAKE_LEVELS];

	if (!left_stale(s))
		return;
	memcpy(old, s->donemask, sizeof(old));
	memset(s->left, 0, sizeof(s->left));
	for (uint32_t slot = 0; slot < s->top; slot++)
		s->ch[slot].counted = counts(&s->ch[slot]);
	for (unsigned r = 0; r < TAKE_LEVELS; r++) {
		for (uint32_t slot = 0; slot < s->top; slot++) {
			struct chunk *c = &s->ch[slot];

			if (!c->counted)
				continue;
			c->fetch[r] = fetch_at(s, c, pin_of(s, c), r);
			s->left[r][c->fetch[r]]++;
		}
		s->donemask[r] = 0;
		for (unsigned j = 0; j < s->nmembers; j++)
			if (!s->left[r][j] && !(s->lagmask >> j & 1))
				s->donemask[r] |= 1ull << j;
	}
	s->left_stale = false;
	s->left_epoch = s->epoch;
	s->left_lag = s->lagmask;
	if (memcmp(old, s->donemask, sizeof(old)))
		s->gen_avail++;
}

static void left_add(struct sched *s, const struct chunk *c, bool add)
{
	for (unsigned r = 0; r < TAKE_LEVELS; r++) {
		uint32_t *n = &s->left[r][c->fetch[r]];

		if (add ? !(*n)++ : !--*n) {
			s->left_stale = true;
			s->gen_avail++; /* the levels may change: picks that found nothing may not
					 */
		}
	}
}

/* Count c again after a change of its holders, requests, claim, done or refs. */
static void left_update(struct sched *s, struct chunk *c)
{
	if (s->nmembers == 1 || left_stale(s))
		return;
	if (c->counted)
		left_add(s, c, false);
	c->counted = counts(c);
	if (c->counted) {
		levels(s, c);
		left_add(s, c, true);
	}
}

/* The member that fetches c over the WAN. */
static unsigned fetcher_of(struct sched *s, struct chunk *c)
{
	if (s->nmembers == 1)
		return 0;
	left_sync(s);
	if (!c->counted)
		levels(s, c);
	return c->fetch[TAKE_LEVELS - 1];
}

/* Whether member m has no chunk of its own share (level 0) left. */
static bool share_done(struct sched *s, unsigned m)
{
	left_sync(s);
	return !s->left[0][m];
}

/* Availability and holders. */

static void avail_update(struct sched *s, uint32_t slot)
{
	struct chunk *c = &s->ch[slot];
	bool want = c->refs && !c->done && !c->nactive && c->nreq < SCHED_MAX_DUP;

	left_update(s, c);
	if (want == bit_get(s->avail, slot))
		return;
	if (want) {
		bit_set(s->avail, slot);
		s->lvl[c->navail]++;
		s->avail_held += c->navail > 0;
		s->gen_avail++;
	} else {
		bit_clr(s->avail, slot);
		s->lvl[c->navail]--;
		s->avail_held -= c->navail > 0;
	}
}

static void has_set(struct sched *s, struct peer *p, uint32_t slot, uint64_t now)
{
	struct chunk *c = &s->ch[slot];

	if (bit_get(p->has, slot))
		return;
	/*
	 * A member that gains a chunk nobody on the LAN had, which it ranks
	 * above us for, is fetching its share over the WAN: it is not lagging.
	 * Nor is one whose share has all arrived and that gains such a chunk:
	 * it is taking over part of another's share (fetcher_of).
	 */
	if (p->member > 0 && !c->done && !c->nlan &&
	    ((chunk_above(s, c) >> p->member & 1) || share_done(s, (unsigned)p->member))) {
		p->last_gain = now;
		s->lagmask &= ~(1ull << p->member);
	}
	bit_set(p->has, slot);
	if (bit_get(s->avail, slot)) {
		s->lvl[c->navail]--;
		s->lvl[c->navail + 1]++;
		s->avail_held += c->navail == 0;
	}
	c->navail++;
	c->nlan += p->link == SCHED_LAN;
	p->gen_has++;
	left_update(s, c);
}

static void has_clr(struct sched *s, struct peer *p, uint32_t slot)
{
	struct chunk *c = &s->ch[slot];

	if (!bit_get(p->has, slot))
		return;
	bit_clr(p->has, slot);
	if (bit_get(s->avail, slot)) {
		s->lvl[c->navail]--;
		s->lvl[c->navail - 1]++;
		s->avail_held -= c->navail == 1;
	}
	c->navail--;
	c->nlan -= p->link == SCHED_LAN;
	left_update(s, c);
	/* Fewer holders can let others take it (no LAN holder left, no other holder). */
	if (bit_get(s->avail, slot))
		s->gen_avail++;
}

/* Requests. */

static uint32_t req_alloc(struct sched *s)
{
	uint32_t ri;

	if (s->freereq != NONE) {
		ri = s->freereq;
		s->freereq = s->reqs[ri].next_free;
	} else {
		if (s->nreqs == s->reqcap) {
			s->reqcap = s->reqcap ? s->reqcap * 2 : 256;
			s->reqs = xreallocarray(s->reqs, s->reqcap, sizeof(*s->reqs));
		}
		ri = (uint32_t)s->nreqs++;
	}
	memset(&s->reqs[ri], 0, sizeof(s->reqs[ri]));
	return ri;
}

static uint32_t req_find(const struct sched *s, const struct chunk *c, uint32_t h)
{
	for (unsigned i = 0; i < c->nreq; i++)
		if (s->reqs[c->req[i]].peer == h)
			return c->req[i];
	return NONE;
}

/*
 * Whether peer h (holding c) may be asked for it: not while it has a request
 * for it, nor right after one stalled on it unless nobody else holds it.
 */
static bool may_ask(const struct sched *s, const struct chunk *c, uint32_t h)
{
	return req_find(s, c, h) == NONE && (c->stalled_peer != h || c->navail <= 1);
}

static void reqs_push(struct sched_reqs *out, uint32_t peer, const struct chunk *c)
{
	if (!out)
		return;
	if (out->n == out->cap) {
		out->cap = out->cap ? out->cap * 2 : 16;
		out->v = xreallocarray(out->v, out->cap, sizeof(*out->v));
	}
	out->v[out->n].peer = peer;
	out->v[out->n].len = c->len;
	memcpy(out->v[out->n].id, c->id, 32);
	out->n++;
}

void sched_reqs_free(struct sched_reqs *r)
{
	if (!r)
		return;
	free(r->v);
	r->v = NULL;
	r->n = r->cap = 0;
}

static void req_remove(struct sched *s, uint32_t ri)
{
	struct req *r = &s->reqs[ri];
	uint32_t slot = r->chunk;
	struct chunk *c = &s->ch[slot];
	struct peer *p = s->peers[r->peer];

	for (unsigned i = 0; i < c->nreq; i++) {
		if (c->req[i] == ri) {
			c->req[i] = c->req[--c->nreq];
			break;
		}
	}
	if (!r->stalled) {
		c->nactive--;
		p->nactive--;
		p->inflight -= c->len;
	}
	r->chunk = NONE;
	r->next_free = s->freereq;
	s->freereq = ri;
	avail_update(s, slot);
	if (bit_get(s->avail, slot))
		s->gen_avail++; /* that peer may be asked for it again */
}

static void issue(struct sched *s, uint32_t h, struct peer *p, uint32_t slot, uint64_t now)
{
	uint32_t ri = req_alloc(s);
	struct req *r = &s->reqs[ri];
	struct chunk *c = &s->ch[slot];
	double rtt = peer_rtt_ms(s, p);
	double expect = (double)(p->inflight + c->len) * 1000 / peer_rate(s, p) + rtt;
	double span = MAX(MAX(4 * rtt, 3 * expect), (double)s->p.stall_min_ms);

	r->chunk = slot;
	r->peer = h;
	r->issued = r->ref = now;
	r->span = span >= UINT32_MAX ? UINT32_MAX : (uint32_t)span;
	if (!p->nactive) {
		/* The pipe was idle: a sample must not span the gap. */
		p->acc_on = false;
		p->acc_mark = p->rx_bytes;
	}
	c->req[c->nreq++] = ri;
	c->nactive++;
	p->inflight += c->len;
	p->nactive++;
	avail_update(s, slot);
}

/*
 * A delivery-rate sample when a chunk arrived: the chunk data that came from
 * the peer (sched_chunk_progress, whichever requests it was for) over the
 * time the pipe was busy. Busy from the previous arrival if that came after
 * the request was sent, else from the request plus one RTT (the data could
 * not start sooner; at most 7/8 of the elapsed time, in case the RTT
 * estimate is stale). Counting data rather than whole chunks keeps the
 * sample right when the peer sends several chunks at once (its lanes: the
 * second of two that end 40 ms apart did not take 40 ms). Arrivals closer
 * together than SAMPLE_MIN_MS add up to one sample.
 */
static void rate_sample(struct sched *s, struct peer *p, const struct req *r, uint32_t len,
			uint64_t now)
{
	uint64_t end = r->last_data && r->last_data <= now ? r->last_data : now;
	double x;

	p->rx_bytes += len - MIN(len, r->got);
	if (end < r->issued)
		return;
	if (!p->acc_on) {
		p->acc_on = true;
		if (p->last_done > r->issued) {
			p->acc_start = p->last_done;
		} else {
			uint64_t el = end - r->issued, rtt = (uint64_t)(p->rtt_us / 1000);

			p->acc_start = r->issued + MIN(rtt, el - el / 8);
		}
	}
	if (end > p->last_done)
		p->last_done = end;
	if (end < p->acc_start + SAMPLE_MIN_MS)
		return;
	x = (double)(p->rx_bytes - p->acc_mark) * 1000 / (double)(end - p->acc_start);
	p->rate = p->samples ? p->rate + (x - p->rate) / 4 : x;
	p->samples++;
	p->acc_on = false;
	p->acc_mark = p->rx_bytes;
}

/* Site members. */

static uint64_t owner_timeout(const struct sched *s)
{
	double rate = 0, rtt = (double)s->p.wan_rtt_us / 1000, mean, t;

	for (size_t i = 0; i < s->npl; i++) {
		const struct peer *p = s->peers[s->plist[i]];

		if (p->link == SCHED_WAN && p->samples && p->rate > rate) {
			rate = p->rate;
			rtt = peer_rtt_ms(s, p);
		}
	}
	if (rate <= 0)
		rate = MAX((double)s->p.wan_rate_bps / 8, 1.0);
	mean = s->tracked_n ? (double)s->tracked_bytes / (double)s->tracked_n : 256 * 1024;
	t = 2 * (mean * s->nmembers * 1000 / rate + rtt) + s->p.owner_slack_ms;
	return t > 1e15 ? (uint64_t)1e15 : (uint64_t)t;
}

static void members_restart(struct sched *s, uint64_t now)
{
	for (unsigned j = 1; j < s->nmembers; j++)
		s->peers[s->members[j].peer]->last_gain = now;
	s->lagmask = 0;
}

/*
 * Members that fetched nothing ranked above us for the owner timeout lose
 * their shares to the next in rank. While our own WAN requests have been
 * getting nothing for that long too, the WAN is down, not the members: no
 * new member is judged lagging then, and when data flows again every member
 * gets a fresh start.
 */
static void update_lag(struct sched *s, uint64_t now)
{
	uint64_t t = owner_timeout(s), m = 0;
	bool stuck = s->wan_active && now >= s->wan_quiet + t;

	if (s->wan_stuck && !stuck)
		members_restart(s, now);
	s->wan_stuck = stuck;
	for (unsigned j = 1; j < s->nmembers; j++) {
		const struct peer *p = s->peers[s->members[j].peer];

		if (now >= p->last_gain + t)
			m |= 1ull << j;
	}
	if (stuck)
		m &= s->lagmask;
	if (m & ~s->lagmask)
		s->gen_avail++;
	s->lagmask = m;
}

static void members_rebuild(struct sched *s, uint64_t now)
{
	s->nmembers = 1;
	for (size_t i = 0; i < s->npl; i++) {
		struct peer *p = s->peers[s->plist[i]];
		struct member *m = &s->members[s->nmembers];

		p->member = -1;
		if (p->link != SCHED_LAN || s->nmembers == SCHED_SITE_MAX)
			continue;
		memcpy(m->id, p->node, 32);
		m->h = fold(p->node);
		m->peer = s->plist[i];
		p->member = (int)s->nmembers++;
	}
	s->epoch++;
	s->lagmask = 0;
	update_lag(s, now);
	s->gen_avail++;
}

/* Whether a LAN peer should be asked for c rather than a WAN peer. */
static bool lan_first(const struct sched *s, const struct chunk *c, uint32_t slot)
{
	if (!c->nlan)
		return false;
	if (!c->escalated)
		return true;
	/* After a stall, only a LAN holder that has not failed on it counts. */
	for (size_t i = 0; i < s->npl; i++) {
		const struct peer *q = s->peers[s->plist[i]];

		if (q->link == SCHED_LAN && bit_get(q->has, slot) && may_ask(s, c, s->plist[i]))
			return true;
	}
	return false;
}

/* Whether another member asked a WAN peer for c lately (sched_peer_claim). */
static bool claimed(const struct sched *s, const struct chunk *c, uint64_t now)
{
	const struct peer *q;

	if (c->claim_peer == NONE || c->claim_peer == CLAIM_SELF || now >= c->claim_until)
		return false;
	q = s->peers[c->claim_peer];
	return q != NULL && q->member > 0;
}

/*
 * Whether we may ask a WAN peer for the chunk in slot: nobody on the LAN has
 * it, no other member claimed it, and we fetch it (fetcher_of) or it is
 * escalated.
 */
static bool wan_ok(struct sched *s, uint32_t slot, uint64_t now)
{
	struct chunk *c = &s->ch[slot];

	if (lan_first(s, c, slot) || claimed(s, c, now))
		return false;
	return c->escalated || fetcher_of(s, c) == 0;
}

/* Picking. */

/* How long a WAN peer with requests out may send nothing before it counts as quiet. */
static double quiet_ms(const struct sched *s, const struct peer *p)
{
	return MAX(4 * peer_rtt_ms(s, p), (double)s->p.stall_min_ms);
}

/*
 * Whether WAN peer p's rate and RTT tell how fast it would deliver now: it is
 * delivering (sent chunk data within max(4 RTT, stall_min_ms)), or it is idle
 * (nothing asked of it) and delivered within WAN_IDLE_RACE_MS while our link
 * is up. A peer with requests out and no data lately is not: it may be stuck.
 */
static bool wan_fit(const struct sched *s, const struct peer *p, uint64_t now)
{
	if (!p->last_data)
		return false;
	if ((double)now <= (double)p->last_data + quiet_ms(s, p))
		return true;
	return p->nactive == 0 && !s->wan_held && now <= p->last_data + WAN_IDLE_RACE_MS;
}

/*
 * A WAN peer this many times slower than the fastest one is asked only for
 * chunks the fastest does not hold: in a swarm of sites, the nodes of another
 * site reach us across two WAN links, their flows starve behind HQ's on our
 * link, and what they are asked for arrives late or stalls and is fetched
 * twice (docs/scheduling.md).
 */
#define WAN_SLOW_FACTOR 3

/* The WAN peer with the best measured rate among those delivering or idle (wan_fit). */
static void wan_best_update(struct sched *s, uint64_t now)
{
	uint32_t best = NONE;
	double best_rate = 0;

	for (size_t i = 0; i < s->npl; i++) {
		const struct peer *q = s->peers[s->plist[i]];

		if (q->link != SCHED_WAN || !q->samples || !wan_fit(s, q, now))
			continue;
		if (best == NONE || peer_rate(s, q) > best_rate) {
			best = s->plist[i];
			best_rate = peer_rate(s, q);
		}
	}
	if (best != s->wan_best) {
		s->wan_best = best;
		s->gen_avail++; /* peers that found nothing to ask may find something now */
	}
}

/*
 * p is a WAN peer far slower than the fastest, which holds the chunk in slot
 * and may be asked for it (not the peer it just stalled at: the chunk would
 * wait until the fastest is no longer the fastest).
 */
static bool wan_slow_for(const struct sched *s, uint32_t h, const struct peer *p, uint32_t slot)
{
	const struct peer *b;

	if (p->link != SCHED_WAN || s->wan_best == NONE || s->wan_best == h)
		return false;
	b = s->peers[s->wan_best];
	return bit_get(b->has, slot) && may_ask(s, &s->ch[slot], s->wan_best) &&
	       peer_rate(s, p) * WAN_SLOW_FACTOR < peer_rate(s, b);
}

static unsigned min_level(const struct sched *s)
{
	for (size_t k = 1; k <= s->npl; k++)
		if (s->lvl[k])
			return (unsigned)k;
	return 0;
}

/*
 * The rarest available chunk p holds and may be asked for. The scan starts
 * at a random bit; among equally rare candidates one is drawn at random
 * (reservoir sampling), over the first TIE_WINDOW of them once the rarest
 * level that exists at all is reached, or over all that are seen.
 */
static uint32_t pick(struct sched *s, uint32_t h, struct peer *p, uint64_t now)
{
	size_t nw = s->top ? (s->top + 63) / 64 : 0, seen = 0, ties = 0, w0;
	unsigned target, b0, best_lvl = UINT_MAX;
	uint32_t best = NONE;
	uint64_t r;

	if (p->dry && p->dry_avail == s->gen_avail && p->dry_has == p->gen_has)
		return NONE;
	target = min_level(s);
	if (!target || !nw)
		goto out;
	r = rng_next(s);
	w0 = (size_t)(r % nw);
	b0 = (unsigned)(r >> 58);
	for (size_t k = 0; k <= nw; k++) {
		size_t w = (w0 + k) % nw;
		uint64_t bits = s->avail[w] & p->has[w];

		if (k == 0)
			bits &= ~0ull << b0;
		else if (k == nw)
			bits &= ~(~0ull << b0);
		while (bits) {
			uint32_t slot = (uint32_t)(w * 64 + (unsigned)__builtin_ctzll(bits));
			struct chunk *c = &s->ch[slot];

			bits &= bits - 1;
			if (!may_ask(s, c, h))
				continue;
			if (p->link == SCHED_WAN &&
			    (!wan_ok(s, slot, now) || wan_slow_for(s, h, p, slot)))
				continue;
			if (c->navail < best_lvl) {
				best = slot;
				best_lvl = c->navail;
				ties = 1;
			} else if (c->navail == best_lvl && rng_next(s) % ++ties == 0) {
				best = slot;
			}
			if ((best_lvl <= target && ties >= TIE_WINDOW) || ++seen >= SCAN_CAP)
				return best;
		}
	}
out:
	if (best == NONE) {
		p->dry = true;
		p->dry_avail = s->gen_avail;
		p->dry_has = p->gen_has;
	}
	return best;
}

/*
 * End-game, for a LAN peer: when every chunk some peer holds is in flight, a
 * duplicate of an in-flight chunk p holds, the least duplicated first, then
 * the longest waiting.
 */
static uint32_t pick_endgame(const struct sched *s, uint32_t h, const struct peer *p)
{
	uint32_t best = NONE;
	unsigned best_n = UINT_MAX;
	uint64_t best_t = UINT64_MAX;

	if (s->avail_held)
		return NONE;
	for (size_t i = 0; i < s->nreqs; i++) {
		const struct req *r = &s->reqs[i];
		const struct chunk *c;

		if (r->chunk == NONE || r->stalled)
			continue;
		c = &s->ch[r->chunk];
		if (!bit_get(p->has, r->chunk) || c->nreq >= SCHED_MAX_DUP || !may_ask(s, c, h))
			continue;
		if (c->nactive < best_n || (c->nactive == best_n && r->issued < best_t)) {
			best = r->chunk;
			best_n = c->nactive;
			best_t = r->issued;
		}
	}
	return best;
}

/* Estimated completion time of one more typical chunk at p, in ms. */
static double peer_ect(const struct sched *s, const struct peer *p)
{
	double mean = s->tracked_n ? (double)s->tracked_bytes / (double)s->tracked_n : 256 * 1024;

	return ((double)p->inflight + mean) * 1000 / peer_rate(s, p) + peer_rtt_ms(s, p);
}

/*
 * End-game, for a WAN peer p that is delivering or idle (wan_fit): when
 * every chunk some peer holds is in flight, a duplicate of a chunk whose one
 * request waits on
 * a WAN peer that would take more than twice as long as p to deliver it
 * (the time to drain that peer's queue, against p's time for one more chunk).
 * Without it the last chunks of a download trickle in from a slow source, a
 * node of another site whose flow crosses two WAN links and had been starved
 * by the faster ones, while the link sits idle (docs/scheduling.md).
 * A request that has data is judged by its own pace instead: the rest of
 * the chunk at the rate it came in since it was issued. It may be nearly
 * done, or trickle along on a flow that a long starvation left crawling
 * (15.7 s for the last 206501 bytes of one bench/swarm run, the site's link
 * idle for the last 8 s of it). A request with no data yet at a peer that
 * has sent nothing for quiet_ms (since our WAN came back, if it was down)
 * is raced whatever the estimates: the peer is stuck, or its flow starved,
 * and its rate and RTT, measured before, say nothing of when the chunk will
 * come (in one run, a node of the other site asked again after its bench
 * held a site's last chunk 8.8 s while HQ sat idle). Preferred: a request
 * with no data yet (the loser is cancelled before it costs bytes), then the
 * one issued last (the end of the slow queue).
 */
static uint32_t pick_endgame_wan(struct sched *s, uint32_t h, const struct peer *p, uint64_t now)
{
	uint32_t best = NONE;
	double mine = peer_ect(s, p);
	bool best_fresh = false;
	uint64_t best_t = 0;

	if (s->avail_held || !wan_fit(s, p, now))
		return NONE;
	for (size_t i = 0; i < s->nreqs; i++) {
		const struct req *r = &s->reqs[i];
		const struct peer *q;
		struct chunk *c;
		double theirs;
		bool fresh;

		if (r->chunk == NONE || r->stalled || r->peer == h)
			continue;
		c = &s->ch[r->chunk];
		q = s->peers[r->peer];
		if (q->link != SCHED_WAN || c->nactive != 1 || c->nreq >= SCHED_MAX_DUP ||
		    !bit_get(p->has, r->chunk) || !may_ask(s, c, h) || !wan_ok(s, r->chunk, now))
			continue;
		if (r->got)
			theirs = (double)(c->len - MIN(r->got, c->len)) *
				 (double)(now - r->issued) / r->got;
		else if (q->last_data &&
			 (double)now > (double)MAX(q->last_data, s->wan_back) + quiet_ms(s, q))
			theirs = HUGE_VAL;
		else
			theirs = (double)q->inflight * 1000 / peer_rate(s, q) + peer_rtt_ms(s, q);
		if (2 * mine >= theirs)
			continue;
		fresh = r->got == 0;
		if (best == NONE || (fresh && !best_fresh) ||
		    (fresh == best_fresh && r->issued > best_t)) {
			best = r->chunk;
			best_fresh = fresh;
			best_t = r->issued;
		}
	}
	return best;
}

/* Requests for p, at most max of them and *budget bytes (NULL: no byte budget). */
static size_t fill(struct sched *s, uint32_t h, struct peer *p, uint64_t now, size_t max,
		   uint64_t *budget, struct sched_chunk *arr, struct sched_reqs *vec)
{
	size_t n = 0;

	while (n < max && peer_room(s, p, 1) && (budget == NULL || *budget > 0)) {
		uint32_t slot = pick(s, h, p, now);
		struct chunk *c;

		if (slot == NONE && p->link == SCHED_LAN)
			slot = pick_endgame(s, h, p);
		else if (slot == NONE)
			slot = pick_endgame_wan(s, h, p, now);
		if (slot == NONE)
			break;
		c = &s->ch[slot];
		if (!peer_room(s, p, c->len) || (budget != NULL && c->len > *budget))
			break;
		issue(s, h, p, slot, now);
		if (p->link == SCHED_WAN && s->nmembers > 1) {
			/*
			 * The members hold it for us (CLAIM) for an owner timeout,
			 * even if this request ends without it: so do we.
			 */
			c->claim_peer = CLAIM_SELF;
			c->claim_until = now + owner_timeout(s);
			s->claims = true;
		}
		if (budget != NULL)
			*budget -= c->len;
		if (arr) {
			memcpy(arr[n].id, c->id, 32);
			arr[n].len = c->len;
		}
		reqs_push(vec, h, c);
		n++;
	}
	return n;
}

int sched_next(struct sched *s, uint32_t peer, uint64_t now, struct sched_chunk *out, size_t max)
{
	struct peer *p = peer_get(s, peer);

	if (!p)
		return FERRY_ENOENT;
	wan_best_update(s, now);
	return (int)fill(s, peer, p, now, MIN(max, (size_t)INT_MAX), NULL, out, NULL);
}

int sched_poll(struct sched *s, uint64_t now, struct sched_reqs *out)
{
	return sched_poll_max(s, now, UINT64_MAX, out);
}

uint64_t sched_inflight(const struct sched *s)
{
	uint64_t sum = 0;

	for (size_t i = 0; i < s->npl; i++)
		sum += s->peers[s->plist[i]]->inflight;
	return sum;
}

int sched_poll_max(struct sched *s, uint64_t now, uint64_t max_bytes, struct sched_reqs *out)
{
	uint32_t *order = xcalloc(s->npl, sizeof(*order));
	double *key = xcalloc(s->npl, sizeof(*key));
	size_t total = 0;

	wan_best_update(s, now);

	for (size_t i = 0; i < s->npl; i++) {
		const struct peer *p = s->peers[s->plist[i]];
		double k = peer_ect(s, p) + (p->link == SCHED_WAN ? 1e18 : 0);
		size_t j = i;

		for (; j > 0 && key[j - 1] > k; j--) {
			key[j] = key[j - 1];
			order[j] = order[j - 1];
		}
		key[j] = k;
		order[j] = s->plist[i];
	}
	for (size_t i = 0; i < s->npl; i++)
		total += fill(s, order[i], s->peers[order[i]], now, SIZE_MAX, &max_bytes, NULL, out);
	free(order);
	free(key);
	return total > INT_MAX ? INT_MAX : (int)total;
}

/* Versions. */

static struct version *version_get(const struct sched *s, uint32_t vid)
{
	for (size_t i = 0; i < s->nvers; i++)
		if (s->vers[i]->vid == vid)
			return s->vers[i];
	return NULL;
}

static void rate_add(struct version *v, uint64_t now, uint64_t bytes)
{
	uint64_t sec = now / 1000;
	size_t i = sec % RATE_SLOTS;

	if (v->bsec[i] != sec) {
		v->bsec[i] = sec;
		v->bbytes[i] = 0;
	}
	v->bbytes[i] += bytes;
}

static void rate_add_chunk(struct sched *s, uint32_t slot, uint64_t now, uint64_t bytes)
{
	for (size_t i = 0; i < s->nvers; i++)
		if (bit_get(s->vers[i]->in, slot))
			rate_add(s->vers[i], now, bytes);
}

static void pend_apply(struct sched *s, struct version *v, size_t from, uint64_t now)
{
	for (size_t k = 0; k < v->npend;) {
		struct pend *pd = &v->pend[k];
		struct peer *p = s->peers[pd->peer];
		size_t lim = MIN(pd->nbits, v->n);

		for (size_t i = from; i < lim; i++)
			if (byte_bit(pd->bits, i))
				has_set(s, p, v->slots[i], now);
		if (pd->nbits <= v->n) {
			free(pd->bits);
			v->pend[k] = v->pend[--v->npend];
		} else {
			k++;
		}
	}
}

static void pend_merge(struct version *v, uint32_t peer, const uint8_t *bits, size_t nbits)
{
	struct pend *pd = NULL;
	size_t nbytes = (nbits + 7) / 8;

	for (size_t k = 0; k < v->npend; k++)
		if (v->pend[k].peer == peer)
			pd = &v->pend[k];
	if (!pd) {
		v->pend = xreallocarray(v->pend, v->npend + 1, sizeof(*v->pend));
		pd = &v->pend[v->npend++];
		*pd = (struct pend){.peer = peer};
	}
	if (nbits > pd->nbits) {
		size_t ob = (pd->nbits + 7) / 8;

		pd->bits = xrealloc(pd->bits, nbytes);
		memset(pd->bits + ob, 0, nbytes - ob);
		pd->nbits = nbits;
	}
	for (size_t i = 0; i < nbytes; i++) {
		uint8_t b = bits[i];

		if (i == nbytes - 1 && nbits % 8)
			b &= (uint8_t)((1u << (nbits % 8)) - 1); /* not the bits past nbits */
		pd->bits[i] |= b;
	}
}

static void pend_drop_peer(struct sched *s, uint32_t peer)
{
	for (size_t i = 0; i < s->nvers; i++) {
		struct version *v = s->vers[i];

		for (size_t k = 0; k < v->npend;) {
			if (v->pend[k].peer == peer) {
				free(v->pend[k].bits);
				v->pend[k] = v->pend[--v->npend];
			} else {
				k++;
			}
		}
	}
}

int sched_want(struct sched *s, uint32_t vid, const struct sched_chunk *chunks, size_t n,
	       const uint8_t *local, uint64_t now)
{
	struct version *v = version_get(s, vid);
	size_t old_n = v ? v->n : 0;
	bool fresh = false;

	if (n > SCHED_VERSION_MAX_CHUNKS - old_n)
		return ferry_errf(FERRY_ETOOBIG,
				  "version %" PRIu32 " would list %zu chunks; the limit is %u", vid,
				  old_n + n, SCHED_VERSION_MAX_CHUNKS);
	for (size_t i = 0; i < n; i++) {
		if (!chunks[i].len || chunks[i].len > SCHED_CHUNK_MAX_LEN) {
			char hex[ID_SHORT_LEN];

			return ferry_errf(FERRY_EINVAL,
					  "chunk %zu (%s) of version %" PRIu32
					  ": encoded length %" PRIu32 " is out of range 1..%u",
					  i, id_short(hex, chunks[i].id), vid, chunks[i].len,
					  SCHED_CHUNK_MAX_LEN);
		}
	}
	if (!v) {
		v = xcalloc(1, sizeof(*v));
		v->vid = vid;
		v->in = xcalloc(s->cap / 64 ? s->cap / 64 : 1, sizeof(*v->in));
		v->started = now;
		s->vers = xreallocarray(s->vers, s->nvers + 1, sizeof(*s->vers));
		s->vers[s->nvers++] = v;
	}
	if (v->n + n > v->cap) {
		v->cap = MAX(v->n + n, v->cap * 2);
		v->slots = xreallocarray(v->slots, v->cap, sizeof(*v->slots));
	}
	for (size_t i = 0; i < n; i++) {
		uint32_t slot = lookup(s, chunks[i].id);
		struct chunk *c;

		if (slot == NONE)
			slot = chunk_new(s, &chunks[i], local && byte_bit(local, i));
		c = &s->ch[slot];
		v->slots[v->n++] = slot;
		if (bit_get(v->in, slot))
			continue;
		bit_set(v->in, slot);
		if (!c->refs++) {
			s->tracked_bytes += c->len;
			s->tracked_n++;
			avail_update(s, slot);
		}
		v->want_bytes += c->len;
		v->want_chunks++;
		if (c->done) {
			v->have_bytes += c->len;
			v->have_chunks++;
		} else {
			fresh = true;
		}
	}
	pend_apply(s, v, old_n, now);
	if (fresh) {
		/* New work: members need time to start on their shares. */
		members_restart(s, now);
		s->gen_avail++;
	}
	return 0;
}

/* Drop a slot no wanted version lists any more (refs already 0). */
static void chunk_forget(struct sched *s, uint32_t slot, struct sched_reqs *cancel)
{
	struct chunk *c = &s->ch[slot];

	while (c->nreq) {
		uint32_t ri = c->req[c->nreq - 1];

		reqs_push(cancel, s->reqs[ri].peer, c);
		req_remove(s, ri);
	}
	s->tracked_bytes -= c->len;
	s->tracked_n--;
	avail_update(s, slot);
	for (size_t i = 0; i < s->npl; i++)
		has_clr(s, s->peers[s->plist[i]], slot);
	tab_del(s, slot);
	memset(c, 0, sizeof(*c));
	s->freeslots = xreallocarray(s->freeslots, s->nfree + 1, sizeof(*s->freeslots));
	s->freeslots[s->nfree++] = slot;
}

int sched_unwant(struct sched *s, uint32_t vid, struct sched_reqs *cancel)
{
	struct version *v = version_get(s, vid);
	size_t nw = s->cap / 64;

	if (!v)
		return ferry_errf(FERRY_ENOENT, "version %" PRIu32 " is not wanted", vid);
	for (size_t w = 0; w < nw; w++) {
		uint64_t bits = v->in[w];

		while (bits) {
			uint32_t slot = (uint32_t)(w * 64 + (unsigned)__builtin_ctzll(bits));

			bits &= bits - 1;
			if (!--s->ch[slot].refs)
				chunk_forget(s, slot, cancel);
		}
	}
	for (size_t i = 0; i < s->nvers; i++) {
		if (s->vers[i] == v) {
			s->vers[i] = s->vers[--s->nvers];
			break;
		}
	}
	for (size_t k = 0; k < v->npend; k++)
		free(v->pend[k].bits);
	free(v->pend);
	free(v->slots);
	free(v->in);
	free(v);
	return 0;
}

/* Peers. */

static struct offender *offender_find(const struct sched *s, const uint8_t node[32])
{
	for (size_t i = 0; i < s->noff; i++)
		if (!memcmp(s->off[i].node, node, 32))
			return &s->off[i];
	return NULL;
}

uint64_t sched_banned_until(const struct sched *s, const uint8_t node_id[static 32], uint64_t now)
{
	const struct offender *o = offender_find(s, node_id);

	return o && o->until > now ? o->until : 0;
}

/*
 * A peer that goes away and comes back (a connection replaced after an
 * outage, a restart) starts with what was measured of it, not with the
 * initial window: a fresh peer is asked for init_window_bytes at once, and
 * after an outage every WAN peer is fresh at the same moment, so the
 * site's last chunks were spread over every source, slow ones included,
 * instead of going to whichever has room next.
 */
static void rejoin_keep(struct sched *s, const struct peer *p, uint64_t now)
{
	struct rejoin *r = &s->rejoin[s->rejoin_next];

	if (!p->samples)
		return;
	s->rejoin_next = (s->rejoin_next + 1) % REJOIN_MAX;
	memcpy(r->node, p->node, 32);
	r->link = p->link;
	r->rate = p->rate;
	r->rtt_us = p->rtt_us;
	r->last_data = p->last_data;
	r->at = now ? now : 1;
}

static void rejoin_restore(struct sched *s, struct peer *p, uint64_t now)
{
	for (unsigned i = 0; i < REJOIN_MAX; i++) {
		struct rejoin *r = &s->rejoin[i];

		if (!r->at || memcmp(r->node, p->node, 32) != 0)
			continue;
		if (r->link == p->link && now <= r->at + REJOIN_MS) {
			p->rate = r->rate;
			p->samples = 1;
			p->rtt_us = r->rtt_us;
			p->last_data = r->last_data;
		}
		r->at = 0;
	}
}

int sched_peer_add(struct sched *s, uint32_t peer, const uint8_t node_id[static 32],
		   enum sched_link link, uint64_t now)
{
	uint64_t until = sched_banned_until(s, node_id, now);
	struct peer *p;
	char hex[ID_SHORT_LEN];

	if (peer >= SCHED_PEER_MAX)
		return ferry_errf(FERRY_EINVAL, "peer handle %" PRIu32 " is not below %u", peer,
				  SCHED_PEER_MAX);
	if (link != SCHED_LAN && link != SCHED_WAN)
		return ferry_errf(FERRY_EINVAL, "peer %" PRIu32 ": link class %d is unknown", peer,
				  (int)link);
	if (peer < s->peercap && s->peers[peer])
		return ferry_errf(FERRY_EEXIST, "peer handle %" PRIu32 " is already in use", peer);
	if (until)
		return ferry_errf(FERRY_EPERM,
				  "node %s is banned for misbehaving for another %" PRIu64 " s",
				  id_short(hex, node_id), (until - now + 999) / 1000);
	if (peer >= s->peercap) {
		size_t ncap = MAX((size_t)peer + 1, s->peercap * 2);

		s->peers = xreallocarray(s->peers, ncap, sizeof(*s->peers));
		memset(s->peers + s->peercap, 0, (ncap - s->peercap) * sizeof(*s->peers));
		s->peercap = ncap;
	}
	p = xcalloc(1, sizeof(*p));
	memcpy(p->node, node_id, 32);
	p->link = link;
	p->member = -1;
	p->has = xcalloc(s->cap / 64 ? s->cap / 64 : 1, sizeof(*p->has));
	p->last_gain = now;
	rejoin_restore(s, p, now);
	s->peers[peer] = p;
	s->plist = xreallocarray(s->plist, s->npl + 1, sizeof(*s->plist));
	s->plist[s->npl++] = peer;
	if (link == SCHED_LAN)
		members_rebuild(s, now);
	else if (!s->nwan++)
		members_restart(s, now); /* the WAN is back: owners get a fresh start */
	return 0;
}

int sched_peer_remove(struct sched *s, uint32_t peer, uint64_t now)
{
	struct peer *p = peer_get(s, peer);
	size_t nw = s->cap / 64;

	if (!p)
		return FERRY_ENOENT;
	for (size_t i = 0; i < s->nreqs; i++)
		if (s->reqs[i].chunk != NONE && s->reqs[i].peer == peer)
			req_remove(s, (uint32_t)i);
	for (size_t w = 0; w < nw; w++) {
		while (p->has[w]) {
			uint32_t slot = (uint32_t)(w * 64 + (unsigned)__builtin_ctzll(p->has[w]));

			has_clr(s, p, slot);
		}
	}
	pend_drop_peer(s, peer);
	for (size_t i = 0; i < s->npl; i++) {
		if (s->plist[i] == peer) {
			s->plist[i] = s->plist[--s->npl];
			break;
		}
	}
	s->peers[peer] = NULL;
	rejoin_keep(s, p, now);
	if (s->wan_best == peer)
		s->wan_best = NONE;
	if (p->link == SCHED_LAN)
		members_rebuild(s, now);
	else
		s->nwan--;
	s->gen_avail++;
	free(p->has);
	free(p);
	return 0;
}

int sched_peer_rtt(struct sched *s, uint32_t peer, uint32_t rtt_us, uint64_t now)
{
	struct peer *p = peer_get(s, peer);
	double x = rtt_us ? rtt_us : 1;

	if (!p)
		return FERRY_ENOENT;
	if (p->link == SCHED_WAN &&
	    (s->wan_held || (s->wan_back && now < s->wan_back + rtt_us / 1000)))
		return 0;
	p->rtt_us = p->rtt_us > 0 ? p->rtt_us + (x - p->rtt_us) / 8 : x;
	return 0;
}

int sched_peer_streams(struct sched *s, uint32_t peer, uint32_t streams)
{
	struct peer *p = peer_get(s, peer);

	if (!p)
		return FERRY_ENOENT;
	p->streams = MAX(streams, 1u);
	s->gen_avail++; /* it may have room now */
	return 0;
}

int sched_peer_have(struct sched *s, uint32_t peer, uint32_t vid, const uint8_t *bitmap,
		    size_t nbits, uint64_t now)
{
	struct peer *p = peer_get(s, peer);
	struct version *v;
	size_t lim;

	if (!p)
		return FERRY_ENOENT;
	v = version_get(s, vid);
	if (!v)
		return ferry_errf(FERRY_ENOENT, "version %" PRIu32 " is not wanted", vid);
	if (nbits > SCHED_VERSION_MAX_CHUNKS)
		return ferry_errf(FERRY_EINVAL,
				  "peer %" PRIu32 ": have bitmap of %zu bits for version %" PRIu32
				  " exceeds %u",
				  peer, nbits, vid, SCHED_VERSION_MAX_CHUNKS);
	lim = MIN(nbits, v->n);
	for (size_t i = 0; i < lim; i++) {
		if (!(i & 7) && i + 8 <= lim && !bitmap[i >> 3]) {
			i += 7;
			continue;
		}
		if (byte_bit(bitmap, i))
			has_set(s, p, v->slots[i], now);
	}
	if (nbits > v->n)
		pend_merge(v, peer, bitmap, nbits);
	return 0;
}

int sched_peer_claim(struct sched *s, uint32_t peer, const uint8_t id[static 32], uint64_t now)
{
	const struct peer *p = peer_get(s, peer);
	uint32_t slot;

	if (!p)
		return FERRY_ENOENT;
	slot = lookup(s, id);
	if (p->member <= 0 || slot == NONE || s->ch[slot].done)
		return 0;
	s->ch[slot].claim_peer = peer;
	s->ch[slot].claim_until = now + owner_timeout(s);
	s->claims = true;
	s->gen_avail++;
	left_update(s, &s->ch[slot]);
	return 0;
}

int sched_peer_have_chunk(struct sched *s, uint32_t peer, const uint8_t id[static 32], uint64_t now)
{
	struct peer *p = peer_get(s, peer);
	uint32_t slot;

	if (!p)
		return FERRY_ENOENT;
	slot = lookup(s, id);
	if (slot != NONE)
		has_set(s, p, slot, now);
	return 0;
}

/* Arrivals. */

/*
 * Chunk data from a WAN peer: notes when the WAN comes back after it seemed
 * down (wan_silent). The members start afresh then as well: an outage shorter
 * than the owner timeout (update_lag never sees it) kept them from fetching
 * their shares as much as it kept us, and each needs a moment to get its own
 * connections going again.
 */
static void wan_data(struct sched *s, uint64_t now)
{
	if (s->wan_held) {
		s->wan_back = now;
		members_restart(s, now);
	}
	s->wan_held = false;
	s->last_wan_data = now;
}

int sched_chunk_progress(struct sched *s, uint32_t peer, const uint8_t id[static 32],
			 uint32_t bytes, uint64_t now)
{
	struct peer *p = peer_get(s, peer);
	uint32_t slot, ri;
	struct req *r;

	if (!p)
		return FERRY_ENOENT;
	slot = lookup(s, id);
	if (slot == NONE || (ri = req_find(s, &s->ch[slot], peer)) == NONE)
		return 0;
	r = &s->reqs[ri];
	bytes = MIN(bytes, s->ch[slot].len - r->got);
	r->got += bytes;
	p->rx_bytes += bytes;
	r->ref = r->last_data = p->last_data = now;
	if (p->link == SCHED_WAN)
		wan_data(s, now);
	rate_add_chunk(s, slot, now, bytes);
	return 0;
}

int sched_chunk_done(struct sched *s, uint32_t peer, const uint8_t id[static 32], uint64_t now,
		     struct sched_reqs *cancel)
{
	struct peer *p = NULL;
	uint32_t slot, ri;
	struct chunk *c;
	bool was_done;

	if (peer != SCHED_PEER_NONE && !(p = peer_get(s, peer)))
		return FERRY_ENOENT;
	slot = lookup(s, id);
	if (slot == NONE)
		return 0;
	c = &s->ch[slot];
	was_done = c->done;
	c->done = true;
	if (p && (ri = req_find(s, c, peer)) != NONE) {
		struct req *r = &s->reqs[ri];

		rate_sample(s, p, r, c->len, now);
		p->received += c->len;
		p->last_data = now;
		if (p->link == SCHED_WAN)
			wan_data(s, now);
		rate_add_chunk(s, slot, now, c->len - r->got);
		req_remove(s, ri);
	}
	if (was_done)
		return 0;
	while (c->nreq) {
		uint32_t other = c->req[c->nreq - 1];

		reqs_push(cancel, s->reqs[other].peer, c);
		req_remove(s, other);
	}
	avail_update(s, slot);
	for (size_t i = 0; i < s->nvers; i++) {
		if (bit_get(s->vers[i]->in, slot)) {
			s->vers[i]->have_bytes += c->len;
			s->vers[i]->have_chunks++;
		}
	}
	return 0;
}

static struct offender *offender_add(struct sched *s, const uint8_t node[32])
{
	struct offender *o;

	if (s->noff == OFFENDERS_MAX) {
		/* Forget the record that ended longest ago. */
		size_t old = 0;

		for (size_t i = 1; i < s->noff; i++)
			if (MAX(s->off[i].last, s->off[i].until) <
			    MAX(s->off[old].last, s->off[old].until))
				old = i;
		o = &s->off[old];
	} else {
		s->off = xreallocarray(s->off, s->noff + 1, sizeof(*s->off));
		o = &s->off[s->noff++];
	}
	memset(o, 0, sizeof(*o));
	memcpy(o->node, node, 32);
	return o;
}

int sched_chunk_bad(struct sched *s, uint32_t peer, const uint8_t id[static 32], uint64_t now,
		    struct sched_verdict *verdict)
{
	struct peer *p = peer_get(s, peer);
	uint32_t slot;

	if (!p)
		return FERRY_ENOENT;
	slot = lookup(s, id);
	if (slot != NONE) {
		uint32_t ri = req_find(s, &s->ch[slot], peer);

		if (ri != NONE)
			req_remove(s, ri);
		has_clr(s, p, slot); /* whatever it holds under that id is not the chunk */
	}
	return sched_offence(s, p->node, now, verdict);
}

int sched_chunk_abandon(struct sched *s, uint32_t peer, const uint8_t id[static 32])
{
	uint32_t slot, ri;

	if (!peer_get(s, peer))
		return FERRY_ENOENT;
	slot = lookup(s, id);
	if (slot != NONE && (ri = req_find(s, &s->ch[slot], peer)) != NONE) {
		req_remove(s, ri);
		s->gen_avail++;
	}
	return 0;
}

int sched_offence(struct sched *s, const uint8_t node_id[static 32], uint64_t now,
		  struct sched_verdict *verdict)
{
	struct offender *o = offender_find(s, node_id);

	if (!o)
		o = offender_add(s, node_id);
	if (o->last && now >= MAX(o->last, o->until) + s->p.ban_max_ms)
		o->bans = 0; /* a clean record as long as the longest ban */
	if (!o->count || now >= o->first + s->p.ban_period_ms) {
		o->first = now;
		o->count = 0;
	}
	o->count++;
	o->last = now;
	*verdict = (struct sched_verdict){.action = SCHED_DROP, .offences = o->count};
	if (o->count >= s->p.ban_offences) {
		uint64_t d = s->p.ban_base_ms;

		for (uint32_t i = 0; i < o->bans && d < s->p.ban_max_ms; i++)
			d *= 2;
		d = MIN(d, s->p.ban_max_ms);
		o->until = now + d;
		o->bans++;
		o->count = 0;
		verdict->action = SCHED_BAN;
		verdict->ban_until = o->until;
	}
	return 0;
}

/* Time. */

/*
 * Take a stalled request away from its peer and offer the chunk to others
 * (the caller checked that another peer holds it). One that had no data yet
 * is cancelled and forgotten; one that had data keeps racing, outside its
 * peer's window. The chunk is escalated: LAN preference and the site split no
 * longer hold it back.
 */
static void stall(struct sched *s, uint32_t ri, uint64_t now, struct sched_reqs *cancel)
{
	struct req *r = &s->reqs[ri];
	uint32_t slot = r->chunk;
	struct chunk *c = &s->ch[slot];
	struct peer *p = s->peers[r->peer];

	p->stalls++;
	if (p->samples && p->halved_at != now) {
		p->rate /= 2;
		p->halved_at = now;
	}
	c->escalated = true;
	c->stalled_peer = r->peer;
	if (!r->got) {
		reqs_push(cancel, r->peer, c);
		req_remove(s, ri);
	} else {
		r->stalled = true;
		r->ref = now;
		c->nactive--;
		p->nactive--;
		p->inflight -= c->len;
		avail_update(s, slot);
	}
	s->gen_avail++;
}

/*
 * Whether our own WAN link is down rather than a peer slow: no WAN peer has
 * sent chunk data for WAN_SILENCE_MS, for less than the owner timeout t
 * (beyond that, stalls take their course again), and two or more WAN peers
 * had sent some within t before that (one silent peer alone may just be
 * dead; several going silent together is the link).
 */
static bool wan_silent(const struct sched *s, uint64_t now, uint64_t t)
{
	unsigned recent = 0;

	if (!s->last_wan_data || now < s->last_wan_data + WAN_SILENCE_MS ||
	    now >= s->last_wan_data + t)
		return false;
	for (size_t i = 0; i < s->npl && recent < 2; i++) {
		const struct peer *p = s->peers[s->plist[i]];

		recent += p->link == SCHED_WAN && p->nactive && p->last_data &&
			  p->last_data + t >= s->last_wan_data;
	}
	return recent >= 2;
}

/* Claims run out: peers that found nothing to ask may find something now. */
static void claims_expire(struct sched *s, uint64_t now)
{
	s->claims = false;
	for (uint32_t slot = 0; slot < s->top; slot++) {
		struct chunk *c = &s->ch[slot];

		if (c->claim_peer != NONE && now >= c->claim_until) {
			c->claim_peer = NONE;
			left_update(s, c);
			s->gen_avail++;
		}
		s->claims = s->claims || c->claim_peer != NONE;
	}
}

int sched_tick(struct sched *s, uint64_t now, struct sched_reqs *cancel)
{
	uint64_t oldest_wan = UINT64_MAX;
	int stalls = 0;
	bool silent = wan_silent(s, now, owner_timeout(s));

	s->wan_held = s->wan_held || silent;
	if (s->claims)
		claims_expire(s, now);

	for (size_t i = 0; i < s->nreqs; i++) {
		struct req *r = &s->reqs[i];
		struct chunk *c;
		struct peer *p;

		if (r->chunk == NONE)
			continue;
		c = &s->ch[r->chunk];
		p = s->peers[r->peer];
		if (r->stalled) {
			if (now >= r->ref + 4ull * r->span) {
				reqs_push(cancel, r->peer, c);
				req_remove(s, (uint32_t)i);
			}
			continue;
		}
		if (p->link == SCHED_WAN) {
			oldest_wan = MIN(oldest_wan, r->issued);
			/*
			 * While our WAN link is down, another WAN peer is no
			 * better: a stall would only ask it too, and both copies
			 * would cross when the link is back. After it comes
			 * back, each request has a full span to resume in.
			 */
			if (silent || now < s->wan_back + r->span)
				continue;
		}
		/* Asking the only holder again would gain nothing. */
		if (now >= r->ref + r->span && c->navail > bit_get(p->has, r->chunk)) {
			stall(s, (uint32_t)i, now, cancel);
			stalls++;
		}
	}
	s->wan_active = oldest_wan != UINT64_MAX;
	s->wan_quiet = s->wan_active ? MAX(oldest_wan, s->last_wan_data) : 0;
	update_lag(s, now);
	return stalls;
}

/* Lifecycle. */

struct sched *sched_new(const struct sched_params *p, const uint8_t self_id[static 32],
			uint64_t seed)
{
	struct sched *s = xcalloc(1, sizeof(*s));

	if (p)
		s->p = *p;
	else
		sched_params_default(&s->p);
	s->rng = seed;
	s->tabseed = rng_next(s);
	s->lvl = xcalloc(SCHED_PEER_MAX + 1, sizeof(*s->lvl));
	s->freereq = NONE;
	s->wan_best = NONE;
	memcpy(s->members[0].id, self_id, 32);
	s->members[0].h = fold(self_id);
	s->members[0].peer = NONE;
	s->nmembers = 1;
	s->epoch = 1;
	return s;
}

void sched_free(struct sched *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->npl; i++) {
		free(s->peers[s->plist[i]]->has);
		free(s->peers[s->plist[i]]);
	}
	for (size_t i = 0; i < s->nvers; i++) {
		struct version *v = s->vers[i];

		for (size_t k = 0; k < v->npend; k++)
			free(v->pend[k].bits);
		free(v->pend);
		free(v->slots);
		free(v->in);
		free(v);
	}
	free(s->vers);
	free(s->peers);
	free(s->plist);
	free(s->reqs);
	free(s->off);
	free(s->lvl);
	free(s->avail);
	free(s->tab);
	free(s->freeslots);
	free(s->ch);
	free(s);
}

/* Reports. */

int sched_progress(const struct sched *s, uint32_t vid, uint64_t now, struct sched_progress *out)
{
	const struct version *v = version_get(s, vid);
	uint32_t *seen;
	size_t nseen = 0;
	uint64_t sec = now / 1000, secs, bytes = 0;

	if (!v)
		return ferry_errf(FERRY_ENOENT, "version %" PRIu32 " is not wanted", vid);
	memset(out, 0, sizeof(*out));
	out->want_bytes = v->want_bytes;
	out->have_bytes = v->have_bytes;
	out->want_chunks = v->want_chunks;
	out->have_chunks = v->have_chunks;
	seen = xcalloc(s->npl + 1, sizeof(*seen));
	for (size_t i = 0; i < s->nreqs; i++) {
		const struct req *r = &s->reqs[i];
		const struct chunk *c;
		size_t k;

		if (r->chunk == NONE || !bit_get(v->in, r->chunk))
			continue;
		c = &s->ch[r->chunk];
		/* Count a chunk once: at its first active request. */
		if (!r->stalled) {
			for (k = 0; k < c->nreq && s->reqs[c->req[k]].stalled; k++)
				;
			if (c->req[k] == i)
				out->inflight_bytes += c->len;
		}
		/* A source: working on this version and sending us data lately. */
		if (!s->peers[r->peer]->last_data ||
		    now >= s->peers[r->peer]->last_data + SOURCE_RECENT_MS)
			continue;
		for (k = 0; k < nseen && seen[k] != r->peer; k++)
			;
		if (k == nseen)
			seen[nseen++] = r->peer;
	}
	free(seen);
	out->sources = (uint32_t)nseen;
	secs = MIN((uint64_t)RATE_SECS, sec - MIN(sec, v->started / 1000));
	for (size_t i = 0; i < RATE_SLOTS; i++)
		if (v->bsec[i] < sec && v->bsec[i] + secs >= sec)
			bytes += v->bbytes[i];
	out->rate_bps = secs ? bytes * 8 / secs : 0;
	return 0;
}

int sched_peer_info(const struct sched *s, uint32_t peer, struct sched_peer_info *out)
{
	const struct peer *p = peer_get(s, peer);

	if (!p)
		return FERRY_ENOENT;
	*out = (struct sched_peer_info){
	    .link = p->link,
	    .rate_bps = p->samples ? (uint64_t)(p->rate * 8) : 0,
	    .rtt_us = (uint32_t)p->rtt_us,
	    .window_bytes = peer_window(s, p),
	    .inflight_bytes = p->inflight,
	    .requests = p->nactive,
	    .received_bytes = p->received,
	    .stalls = p->stalls,
	    .streams = MAX(p->streams, 1u),
	};
	return 0;
}

int sched_chunk_info(struct sched *s, const uint8_t id[static 32], struct sched_chunk_info *out)
{
	uint32_t slot = lookup(s, id);
	struct chunk *c;
	unsigned owner, fetcher;

	if (slot == NONE) {
		char hex[ID_SHORT_LEN];

		return ferry_errf(FERRY_ENOENT, "chunk %s is not wanted", id_short(hex, id));
	}
	c = &s->ch[slot];
	owner = rank_first(s, c, UINT64_MAX, false);
	fetcher = fetcher_of(s, c);
	*out = (struct sched_chunk_info){
	    .done = c->done,
	    .len = c->len,
	    .holders = c->navail,
	    .lan_holders = c->nlan,
	    .requests = c->nreq,
	    .mine = owner == 0,
	    .wan_ok = !c->done && !lan_first(s, c, slot) && (c->escalated || fetcher == 0),
	};
	memcpy(out->owner, s->members[owner].id, 32);
	memcpy(out->fetcher, s->members[fetcher].id, 32);
	return 0;
}
