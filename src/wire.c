/*
 * The peer messages; see include/ferry/wire.h and docs/protocol.md
 * ("Messages"). Encoders and decoders share one set of rules (wire_check for
 * what we send, the decoders' checks for what we receive), so this node never
 * sends what another node of the same version would refuse.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/chunker.h"
#include "ferry/codec.h"
#include "ferry/error.h"
#include "ferry/index.h"
#include "ferry/manifest.h"
#include "ferry/mpk.h"
#include "ferry/session.h"
#include "ferry/util.h"
#include "ferry/wire.h"

_Static_assert(WIRE_CHUNK_ENC_MAX == MAX(CHUNK_MAX_SIZE, INDEX_PIECE_MAX) + CODEC_HDR_LEN,
	       "WIRE_CHUNK_ENC_MAX must hold the largest encoded chunk or index piece");
_Static_assert(WIRE_CHUNK_DATA_LEN_MAX <= SESSION_FRAME_MAX,
	       "one CHUNK_DATA message must fit one session frame");
_Static_assert(WIRE_HELLO_LEN_MAX <= SESSION_HELLO_MAX, "a hello must fit a handshake message");
_Static_assert(WIRE_HAVE_CHUNKS_MAX / 8 % WIRE_HAVE_BITMAP_MAX == 0,
	       "whole HAVE messages cover the largest version");

struct wire_type_info {
	const char *name;
	unsigned flags;
	size_t len_max;
	unsigned nfields; /* fields after the type number */
};

/* Fields per message, in the order they are encoded (docs/protocol.md). */
enum {
	NF_HELLO = 7,
	NF_DIGEST = 2,
	NF_MANIFEST_REQ = 2,
	NF_MANIFEST = 1,
	NF_HAVE = 6,
	NF_HAVE_ADD = 3,
	NF_CHUNK_REQ = 3,
	NF_CHUNK_DATA = 4,
	NF_CHUNK_NONE = 1,
	NF_CANCEL = 1,
	NF_PING = 2,
	NF_PONG = 2,
	NF_PEERS = 1,
	NF_CLAIM = 3,
};

static const struct wire_type_info types[] = {
#define WIRE__INFO(NAME, member, num, fl, maxlen, doc)                                             \
	[num] = {.name = #NAME, .flags = (fl), .len_max = (maxlen), .nfields = NF_##NAME},
    WIRE_MESSAGES(WIRE__INFO)
#undef WIRE__INFO
};

const char *wire_name(unsigned type)
{
	return type < ARRAY_SIZE(types) ? types[type].name : NULL;
}

bool wire_type_known(unsigned type)
{
	return wire_name(type) != NULL;
}

unsigned wire_flags(unsigned type)
{
	return wire_type_known(type) ? types[type].flags : 0;
}

size_t wire_len_max(unsigned type)
{
	return wire_type_known(type) ? types[type].len_max : 0;
}

/* Checks shared by the encoder and the decoder. */

/* Printable ASCII only: these strings end up in logs and tables. */
static bool text_ok(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
			return false;
	return true;
}

static int check_text(const char *msg, const char *field, const char *s, size_t max, bool empty_ok)
{
	size_t len = strnlen(s, max + 1);

	if (len > max)
		return ferry_errf(FERRY_EINVAL, "%s: %s is longer than %zu bytes", msg, field, max);
	if (len == 0 && !empty_ok)
		return ferry_errf(FERRY_EINVAL, "%s: %s is empty", msg, field);
	if (!text_ok(s, len))
		return ferry_errf(FERRY_EINVAL, "%s: %s '%.*s' has a byte that is not printable",
				  msg, field, (int)len, s);
	return 0;
}

static int check_name(const char *msg, const char *name)
{
	size_t len = strnlen(name, WIRE_NAME_MAX + 1);

	if (len > WIRE_NAME_MAX || manifest_name_check(name) != 0)
		return ferry_errf(FERRY_EINVAL, "%s: '%.*s' is not a model name", msg,
				  (int)MIN(len, (size_t)WIRE_NAME_MAX), name);
	return 0;
}

static int check_hello(const struct wire_hello *h)
{
	int rc;

	if (h->version_min == 0 || h->version_min > h->version_max)
		return ferry_errf(FERRY_EINVAL,
				  "HELLO: version range %u..%u is empty or starts at 0",
				  h->version_min, h->version_max);
	if ((rc = check_text("HELLO", "site", h->site, WIRE_SITE_MAX, true)) != 0)
		return rc;
	if ((rc = check_text("HELLO", "software", h->software, WIRE_SOFTWARE_MAX, true)) != 0)
		return rc;
	if (h->lane > WIRE_LANE_MAX)
		return ferry_errf(FERRY_EINVAL, "HELLO: lane %u, at most %u", h->lane,
				  WIRE_LANE_MAX);
	return 0;
}

static int check_digest(const struct wire_digest *d)
{
	int rc;

	if (d->n > WIRE_DIGEST_MAX)
		return ferry_errf(FERRY_EINVAL, "DIGEST: %u entries, at most %d", d->n,
				  WIRE_DIGEST_MAX);
	for (uint32_t i = 0; i < d->n; i++)
		if ((rc = check_name("DIGEST", d->entries[i].name)) != 0)
			return rc;
	return 0;
}

static int check_have(const struct wire_have *h)
{
	uint64_t bits = (uint64_t)h->bitmap_len * 8;

	if (h->nchunks > WIRE_HAVE_CHUNKS_MAX)
		return ferry_errf(FERRY_EINVAL, "HAVE %s@%llu: %u chunks, at most %u", h->name,
				  (unsigned long long)h->version, h->nchunks, WIRE_HAVE_CHUNKS_MAX);
	if (h->complete) {
		if (h->first != 0 || h->bitmap_len != 0)
			return ferry_errf(
			    FERRY_EINVAL, "HAVE %s@%llu: complete, yet a bitmap of %zu bytes at %u",
			    h->name, (unsigned long long)h->version, h->bitmap_len, h->first);
		return 0;
	}
	if (h->bitmap_len > WIRE_HAVE_BITMAP_MAX)
		return ferry_errf(FERRY_EINVAL, "HAVE %s@%llu: bitmap of %zu bytes, at most %d",
				  h->name, (unsigned long long)h->version, h->bitmap_len,
				  WIRE_HAVE_BITMAP_MAX);
	if (h->first % 8 != 0)
		return ferry_errf(FERRY_EINVAL,
				  "HAVE %s@%llu: first position %u is not a multiple of 8", h->name,
				  (unsigned long long)h->version, h->first);
	/* The bitmap covers positions first.. and may pad only the last byte. */
	if (h->bitmap_len > 0 && (h->first >= h->nchunks || h->first + bits - 8 >= h->nchunks))
		return ferry_errf(FERRY_EINVAL,
				  "HAVE %s@%llu: a bitmap of %zu bytes at position %u runs past "
				  "the %u chunks",
				  h->name, (unsigned long long)h->version, h->bitmap_len, h->first,
				  h->nchunks);
	if (h->bitmap_len > 0 && h->first + bits > h->nchunks) {
		unsigned used = (unsigned)(h->nchunks - (h->first + bits - 8));
		uint8_t last = h->bitmap[h->bitmap_len - 1];

		if (last >> used != 0)
			return ferry_errf(FERRY_EINVAL,
					  "HAVE %s@%llu: bits set past the last chunk %u", h->name,
					  (unsigned long long)h->version, h->nchunks - 1);
	}
	return 0;
}

/* HAVE_ADD and CLAIM (what: the message's name). */
static int check_have_add(const char *what, const struct wire_have_add *h)
{
	if (check_name(what, h->name) != 0)
		return FERRY_EINVAL;
	if (h->n == 0 || h->n > WIRE_HAVE_ADD_MAX)
		return ferry_errf(FERRY_EINVAL, "%s %s@%llu: %u positions, 1..%d allowed", what,
				  h->name, (unsigned long long)h->version, h->n, WIRE_HAVE_ADD_MAX);
	for (uint32_t i = 0; i < h->n; i++)
		if (h->positions[i] >= WIRE_HAVE_CHUNKS_MAX)
			return ferry_errf(FERRY_EINVAL, "%s %s@%llu: position %u, at most %u", what,
					  h->name, (unsigned long long)h->version, h->positions[i],
					  WIRE_HAVE_CHUNKS_MAX - 1);
	return 0;
}

static int check_chunk_req(const struct wire_chunk_req *c)
{
	if (c->offset >= WIRE_CHUNK_ENC_MAX)
		return ferry_errf(FERRY_EINVAL, "CHUNK_REQ %u: offset %u, at most %u", c->req,
				  c->offset, WIRE_CHUNK_ENC_MAX - 1);
	return 0;
}

static int check_chunk_data(const struct wire_chunk_data *c)
{
	if (c->total == 0 || c->total > WIRE_CHUNK_ENC_MAX)
		return ferry_errf(FERRY_EINVAL, "CHUNK_DATA %u: total %u, 1..%u allowed", c->req,
				  c->total, WIRE_CHUNK_ENC_MAX);
	if (c->len == 0 || c->len > WIRE_CHUNK_DATA_MAX)
		return ferry_errf(FERRY_EINVAL, "CHUNK_DATA %u: %zu bytes, 1..%d allowed", c->req,
				  c->len, WIRE_CHUNK_DATA_MAX);
	if (c->offset > c->total || c->len > c->total - c->offset)
		return ferry_errf(FERRY_EINVAL,
				  "CHUNK_DATA %u: %zu bytes at offset %u run past the total %u",
				  c->req, c->len, c->offset, c->total);
	return 0;
}

static int check_peers(const struct wire_peers *p)
{
	int rc;

	if (p->n > WIRE_PEERS_MAX)
		return ferry_errf(FERRY_EINVAL, "PEERS: %u entries, at most %d", p->n,
				  WIRE_PEERS_MAX);
	for (uint32_t i = 0; i < p->n; i++) {
		if ((rc = check_text("PEERS", "address", p->entries[i].addr, WIRE_ADDR_MAX,
				     false)) != 0 ||
		    (rc = check_text("PEERS", "site", p->entries[i].site, WIRE_SITE_MAX, true)) !=
			0)
			return rc;
	}
	return 0;
}

int wire_check(const struct wire_msg *m)
{
	switch (m->type) {
	case WIRE_HELLO:
		return check_hello(&m->hello);
	case WIRE_DIGEST:
		return check_digest(&m->digest);
	case WIRE_MANIFEST_REQ:
		return check_name("MANIFEST_REQ", m->manifest_req.name);
	case WIRE_MANIFEST:
		if (m->manifest.len == 0 || m->manifest.len > MANIFEST_SIGNED_MAX)
			return ferry_errf(FERRY_EINVAL, "MANIFEST: %zu bytes, 1..%u allowed",
					  m->manifest.len, MANIFEST_SIGNED_MAX);
		return 0;
	case WIRE_HAVE:
		if (check_name("HAVE", m->have.name) != 0)
			return FERRY_EINVAL;
		return check_have(&m->have);
	case WIRE_HAVE_ADD:
		return check_have_add("HAVE_ADD", &m->have_add);
	case WIRE_CLAIM:
		return check_have_add("CLAIM", &m->claim);
	case WIRE_CHUNK_REQ:
		return check_chunk_req(&m->chunk_req);
	case WIRE_CHUNK_DATA:
		return check_chunk_data(&m->chunk_data);
	case WIRE_CHUNK_NONE:
	case WIRE_CANCEL:
	case WIRE_PING:
	case WIRE_PONG:
		return 0;
	case WIRE_PEERS:
		return check_peers(&m->peers);
	case WIRE_NONE:
		break;
	}
	return ferry_errf(FERRY_EINVAL, "wire: unknown message type %u", (unsigned)m->type);
}

/* Encoding */

static void enc_have_add(struct mpk_w *w, const struct wire_have_add *h)
{
	mpk_w_cstr(w, h->name);
	mpk_w_uint(w, h->version);
	mpk_w_array(w, h->n);
	for (uint32_t i = 0; i < h->n; i++)
		mpk_w_uint(w, h->positions[i]);
}

static void enc_fields(struct mpk_w *w, const struct wire_msg *m)
{
	switch (m->type) {
	case WIRE_HELLO:
		mpk_w_uint(w, m->hello.version_min);
		mpk_w_uint(w, m->hello.version_max);
		mpk_w_cstr(w, m->hello.site);
		mpk_w_uint(w, m->hello.listen_port);
		mpk_w_cstr(w, m->hello.software);
		mpk_w_uint(w, m->hello.uptime_s);
		mpk_w_uint(w, m->hello.lane);
		break;
	case WIRE_DIGEST:
		mpk_w_bool(w, m->digest.more);
		mpk_w_array(w, m->digest.n);
		for (uint32_t i = 0; i < m->digest.n; i++) {
			const struct wire_digest_entry *e = &m->digest.entries[i];

			mpk_w_array(w, 3);
			mpk_w_cstr(w, e->name);
			mpk_w_uint(w, e->version);
			mpk_w_bin(w, e->hash, WIRE_ID_LEN);
		}
		break;
	case WIRE_MANIFEST_REQ:
		mpk_w_cstr(w, m->manifest_req.name);
		mpk_w_uint(w, m->manifest_req.version);
		break;
	case WIRE_MANIFEST:
		mpk_w_bin(w, m->manifest.bytes, m->manifest.len);
		break;
	case WIRE_HAVE:
		mpk_w_cstr(w, m->have.name);
		mpk_w_uint(w, m->have.version);
		mpk_w_uint(w, m->have.nchunks);
		mpk_w_bool(w, m->have.complete);
		mpk_w_uint(w, m->have.first);
		/* A complete HAVE may leave bitmap NULL; mpk copies from the pointer even for 0
		 * bytes. */
		mpk_w_bin(w, m->have.bitmap_len > 0 ? m->have.bitmap : (const uint8_t *)"",
			  m->have.bitmap_len);
		break;
	case WIRE_HAVE_ADD:
		enc_have_add(w, &m->have_add);
		break;
	case WIRE_CLAIM:
		enc_have_add(w, &m->claim);
		break;
	case WIRE_CHUNK_REQ:
		mpk_w_uint(w, m->chunk_req.req);
		mpk_w_bin(w, m->chunk_req.id, WIRE_ID_LEN);
		mpk_w_uint(w, m->chunk_req.offset);
		break;
	case WIRE_CHUNK_DATA:
		mpk_w_uint(w, m->chunk_data.req);
		mpk_w_uint(w, m->chunk_data.offset);
		mpk_w_uint(w, m->chunk_data.total);
		mpk_w_bin(w, m->chunk_data.data, m->chunk_data.len);
		break;
	case WIRE_CHUNK_NONE:
		mpk_w_uint(w, m->chunk_none.req);
		break;
	case WIRE_CANCEL:
		mpk_w_uint(w, m->cancel.req);
		break;
	case WIRE_PING:
	case WIRE_PONG:
		mpk_w_uint(w, m->ping.nonce);
		mpk_w_uint(w, m->ping.stamp);
		break;
	case WIRE_PEERS:
		mpk_w_array(w, m->peers.n);
		for (uint32_t i = 0; i < m->peers.n; i++) {
			const struct wire_peer_entry *e = &m->peers.entries[i];

			mpk_w_array(w, 3);
			mpk_w_bin(w, e->id, WIRE_ID_LEN);
			mpk_w_cstr(w, e->addr);
			mpk_w_cstr(w, e->site);
		}
		break;
	case WIRE_NONE:
		break;
	}
}

int wire_encode(const struct wire_msg *m, uint8_t **out, size_t *len)
{
	struct mpk_w w;
	int rc;

	*out = NULL;
	*len = 0;
	if ((rc = wire_check(m)) != 0)
		return rc;
	mpk_w_init(&w);
	mpk_w_array(&w, 1 + types[m->type].nfields);
	mpk_w_uint(&w, m->type);
	enc_fields(&w, m);
	/* Every value is capped far below msgpack's limits, so this cannot fail. */
	if ((rc = mpk_w_take(&w, out, len)) != 0)
		return rc;
	return 0;
}

/*
 * Decoding. Every read goes through the mpk reader, whose errors are sticky;
 * a rule broken by a value is recorded here the same way, so a decoder reads
 * all its fields and checks once at the end.
 */
struct dec {
	struct mpk_r r;
	const char *msg; /* message name, for details */
	int err;	 /* the first broken rule, FERRY_EPROTO with a detail */
};

static bool dec_ok(struct dec *d)
{
	return d->err == 0 && mpk_r_error(&d->r) == 0;
}

/* Record a broken rule (the first one wins). Returns false, for chaining. */
static bool __attribute__((format(printf, 2, 3))) dec_fail(struct dec *d, const char *fmt, ...)
{
	char buf[256];
	va_list ap;

	if (!dec_ok(d))
		return false;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	d->err = ferry_errf(FERRY_EPROTO, "%s: %s (at byte %zu)", d->msg, buf, mpk_r_offset(&d->r));
	return false;
}

static uint64_t get_u64(struct dec *d)
{
	uint64_t v = 0;

	if (dec_ok(d))
		mpk_r_uint(&d->r, &v);
	return v;
}

static uint32_t get_u32(struct dec *d, const char *field, uint64_t max)
{
	uint64_t v = get_u64(d);

	if (v > max) {
		dec_fail(d, "%s %llu, at most %llu", field, (unsigned long long)v,
			 (unsigned long long)max);
		return 0;
	}
	return (uint32_t)v;
}

static bool get_bool(struct dec *d)
{
	bool v = false;

	if (dec_ok(d))
		mpk_r_bool(&d->r, &v);
	return v;
}

static void get_id(struct dec *d, uint8_t id[WIRE_ID_LEN])
{
	if (dec_ok(d))
		mpk_r_bin_fixed(&d->r, id, WIRE_ID_LEN);
}

static void get_bin(struct dec *d, const char *field, size_t max, const uint8_t **p, size_t *len)
{
	*p = NULL;
	*len = 0;
	if (!dec_ok(d) || mpk_r_bin(&d->r, p, len) != 0)
		return;
	if (*len > max)
		dec_fail(d, "%s of %zu bytes, at most %zu", field, *len, max);
}

/* A string of printable ASCII, at most max bytes, copied into out[max + 1]. */
static void get_text(struct dec *d, const char *field, char *out, size_t max, bool empty_ok)
{
	const char *s;
	size_t len;

	out[0] = '\0';
	if (!dec_ok(d) || mpk_r_str(&d->r, &s, &len) != 0)
		return;
	if (len > max) {
		dec_fail(d, "%s of %zu bytes, at most %zu", field, len, max);
		return;
	}
	if (len == 0 && !empty_ok) {
		dec_fail(d, "%s is empty", field);
		return;
	}
	if (!text_ok(s, len)) {
		dec_fail(d, "%s has a byte that is not printable", field);
		return;
	}
	memcpy(out, s, len);
	out[len] = '\0';
}

static void get_name(struct dec *d, char out[WIRE_NAME_MAX + 1])
{
	get_text(d, "model name", out, WIRE_NAME_MAX, false);
	if (dec_ok(d) && manifest_name_check(out) != 0)
		dec_fail(d, "'%s' is not a model name", out);
}

/* An array header of at most max elements. */
static uint32_t get_array(struct dec *d, const char *field, uint32_t max)
{
	uint32_t n = 0;

	if (!dec_ok(d) || mpk_r_array(&d->r, &n) != 0)
		return 0;
	if (n > max) {
		dec_fail(d, "%s has %u entries, at most %u", field, n, max);
		return 0;
	}
	return n;
}

/* An entry of a list: an array of at least nfields; extra elements are skipped by dec_skip. */
static uint32_t get_entry(struct dec *d, const char *field, uint32_t nfields)
{
	uint32_t n = 0;

	if (!dec_ok(d) || mpk_r_array(&d->r, &n) != 0)
		return 0;
	if (n < nfields) {
		dec_fail(d, "%s entry has %u fields, needs %u", field, n, nfields);
		return 0;
	}
	return n - nfields;
}

static void dec_skip(struct dec *d, uint32_t n)
{
	while (n-- > 0 && dec_ok(d))
		mpk_r_skip(&d->r);
}

static void dec_hello(struct dec *d, struct wire_hello *h)
{
	h->version_min = get_u32(d, "version_min", UINT32_MAX);
	h->version_max = get_u32(d, "version_max", UINT32_MAX);
	get_text(d, "site", h->site, WIRE_SITE_MAX, true);
	h->listen_port = (uint16_t)get_u32(d, "listen port", UINT16_MAX);
	get_text(d, "software", h->software, WIRE_SOFTWARE_MAX, true);
	h->uptime_s = get_u64(d);
	h->lane = (uint8_t)get_u32(d, "lane", WIRE_LANE_MAX);
	if (dec_ok(d) && (h->version_min == 0 || h->version_min > h->version_max))
		dec_fail(d, "version range %u..%u is empty or starts at 0", h->version_min,
			 h->version_max);
}

static void dec_digest(struct dec *d, struct wire_msg *m)
{
	struct wire_digest *g = &m->digest;

	g->more = get_bool(d);
	g->n = get_array(d, "entries", WIRE_DIGEST_MAX);
	if (!dec_ok(d) || g->n == 0)
		return;
	g->entries = xcalloc(g->n, sizeof(*g->entries));
	m->owned__ = g->entries;
	for (uint32_t i = 0; i < g->n && dec_ok(d); i++) {
		uint32_t extra = get_entry(d, "digest", 3);

		get_name(d, g->entries[i].name);
		g->entries[i].version = get_u64(d);
		get_id(d, g->entries[i].hash);
		dec_skip(d, extra);
	}
}

static void dec_have(struct dec *d, struct wire_msg *m)
{
	struct wire_have *h = &m->have;

	get_name(d, h->name);
	h->version = get_u64(d);
	h->nchunks = get_u32(d, "nchunks", WIRE_HAVE_CHUNKS_MAX);
	h->complete = get_bool(d);
	h->first = get_u32(d, "first", WIRE_HAVE_CHUNKS_MAX);
	get_bin(d, "bitmap", WIRE_HAVE_BITMAP_MAX, &h->bitmap, &h->bitmap_len);
	if (dec_ok(d) && check_have(h) != 0)
		dec_fail(d, "%s", ferry_errmsg(FERRY_EINVAL));
}

/* HAVE_ADD and CLAIM: h is the message's have_add or claim. */
static void dec_have_add(struct dec *d, struct wire_msg *m, struct wire_have_add *h)
{
	get_name(d, h->name);
	h->version = get_u64(d);
	h->n = get_array(d, "positions", WIRE_HAVE_ADD_MAX);
	if (dec_ok(d) && h->n == 0)
		dec_fail(d, "no positions");
	if (!dec_ok(d))
		return;
	h->positions = xcalloc(h->n, sizeof(*h->positions));
	m->owned__ = h->positions;
	for (uint32_t i = 0; i < h->n && dec_ok(d); i++)
		h->positions[i] = get_u32(d, "position", WIRE_HAVE_CHUNKS_MAX - 1);
}

static void dec_chunk_data(struct dec *d, struct wire_chunk_data *c)
{
	c->req = get_u32(d, "request id", UINT32_MAX);
	c->offset = get_u32(d, "offset", WIRE_CHUNK_ENC_MAX);
	c->total = get_u32(d, "total", WIRE_CHUNK_ENC_MAX);
	get_bin(d, "data", WIRE_CHUNK_DATA_MAX, &c->data, &c->len);
	if (dec_ok(d) && check_chunk_data(c) != 0)
		dec_fail(d, "%s", ferry_errmsg(FERRY_EINVAL));
}

static void dec_peers(struct dec *d, struct wire_msg *m)
{
	struct wire_peers *p = &m->peers;

	p->n = get_array(d, "entries", WIRE_PEERS_MAX);
	if (!dec_ok(d) || p->n == 0)
		return;
	p->entries = xcalloc(p->n, sizeof(*p->entries));
	m->owned__ = p->entries;
	for (uint32_t i = 0; i < p->n && dec_ok(d); i++) {
		uint32_t extra = get_entry(d, "peer", 3);

		get_id(d, p->entries[i].id);
		get_text(d, "address", p->entries[i].addr, WIRE_ADDR_MAX, false);
		get_text(d, "site", p->entries[i].site, WIRE_SITE_MAX, true);
		dec_skip(d, extra);
	}
}

static void dec_fields(struct dec *d, struct wire_msg *m)
{
	switch (m->type) {
	case WIRE_HELLO:
		dec_hello(d, &m->hello);
		break;
	case WIRE_DIGEST:
		dec_digest(d, m);
		break;
	case WIRE_MANIFEST_REQ:
		get_name(d, m->manifest_req.name);
		m->manifest_req.version = get_u64(d);
		break;
	case WIRE_MANIFEST:
		get_bin(d, "manifest", MANIFEST_SIGNED_MAX, &m->manifest.bytes, &m->manifest.len);
		if (dec_ok(d) && m->manifest.len == 0)
			dec_fail(d, "empty manifest");
		break;
	case WIRE_HAVE:
		dec_have(d, m);
		break;
	case WIRE_HAVE_ADD:
		dec_have_add(d, m, &m->have_add);
		break;
	case WIRE_CLAIM:
		dec_have_add(d, m, &m->claim);
		break;
	case WIRE_CHUNK_REQ:
		m->chunk_req.req = get_u32(d, "request id", UINT32_MAX);
		get_id(d, m->chunk_req.id);
		m->chunk_req.offset = get_u32(d, "offset", WIRE_CHUNK_ENC_MAX - 1);
		break;
	case WIRE_CHUNK_DATA:
		dec_chunk_data(d, &m->chunk_data);
		break;
	case WIRE_CHUNK_NONE:
		m->chunk_none.req = get_u32(d, "request id", UINT32_MAX);
		break;
	case WIRE_CANCEL:
		m->cancel.req = get_u32(d, "request id", UINT32_MAX);
		break;
	case WIRE_PING:
	case WIRE_PONG:
		m->ping.nonce = get_u64(d);
		m->ping.stamp = get_u64(d);
		break;
	case WIRE_PEERS:
		dec_peers(d, m);
		break;
	case WIRE_NONE:
		break;
	}
}

int wire_decode(const uint8_t *p, size_t n, struct wire_msg *m)
{
	struct dec d = {.msg = "wire"};
	uint32_t count = 0;
	uint64_t type = 0;
	int rc;

	memset(m, 0, sizeof(*m));
	mpk_r_init(&d.r, p, n);
	mpk_r_array(&d.r, &count);
	if (dec_ok(&d) && count == 0)
		dec_fail(&d, "empty message");
	type = get_u64(&d);
	if (!dec_ok(&d))
		goto out;
	if (type > UINT32_MAX || !wire_type_known((unsigned)type)) {
		m->type = type > UINT32_MAX ? UINT32_MAX : (enum wire_type)type;
		return ferry_errf(FERRY_EPROTO, "wire: unknown message type %llu",
				  (unsigned long long)type);
	}
	m->type = (enum wire_type)type;
	d.msg = types[type].name;
	if (count - 1 < types[type].nfields) {
		dec_fail(&d, "%u fields, needs %u", count - 1, types[type].nfields);
		goto out;
	}
	dec_fields(&d, m);
	dec_skip(&d, count - 1 - types[type].nfields);
	if (dec_ok(&d))
		mpk_r_done(&d.r);
out:
	if (d.err != 0 || mpk_r_error(&d.r) != 0) {
		if (d.err != 0)
			rc = d.err;
		else
			rc = ferry_errf(FERRY_EPROTO, "%s: malformed: %s", d.msg,
					ferry_errmsg(mpk_r_error(&d.r)));
		wire_msg_clear(m);
		return rc;
	}
	return 0;
}

void wire_msg_clear(struct wire_msg *m)
{
	free(m->owned__);
	m->owned__ = NULL;
	switch (m->type) {
	case WIRE_DIGEST:
		m->digest.entries = NULL;
		m->digest.n = 0;
		break;
	case WIRE_HAVE_ADD:
		m->have_add.positions = NULL;
		m->have_add.n = 0;
		break;
	case WIRE_CLAIM:
		m->claim.positions = NULL;
		m->claim.n = 0;
		break;
	case WIRE_PEERS:
		m->peers.entries = NULL;
		m->peers.n = 0;
		break;
	default:
		break;
	}
}

int wire_negotiate_range(uint32_t lo_a, uint32_t hi_a, uint32_t lo_b, uint32_t hi_b,
			 uint32_t *version)
{
	uint32_t hi = MIN(hi_a, hi_b), lo = MAX(lo_a, lo_b);

	*version = 0;
	if (lo_a == 0 || lo_a > hi_a || lo_b == 0 || lo_b > hi_b || lo > hi)
		return ferry_errf(FERRY_EVERSION,
				  "protocol versions %u..%u and %u..%u have none in common: "
				  "upgrade the node that speaks %u..%u",
				  lo_a, hi_a, lo_b, hi_b, hi_a < lo_b ? lo_a : lo_b,
				  hi_a < lo_b ? hi_a : hi_b);
	*version = hi;
	return 0;
}

int wire_negotiate(const struct wire_hello *remote, uint32_t *version)
{
	uint32_t lo = remote->version_min, hi = remote->version_max;

	*version = 0;
	if (lo == 0 || lo > hi || hi < WIRE_VERSION_MIN || lo > WIRE_VERSION)
		return ferry_errf(FERRY_EVERSION,
				  "the peer speaks protocol versions %u..%u, this node %u..%u: "
				  "upgrade %s",
				  lo, hi, WIRE_VERSION_MIN, WIRE_VERSION,
				  hi < WIRE_VERSION_MIN ? "the peer" : "this node");
	*version = MIN(hi, (uint32_t)WIRE_VERSION);
	return 0;
}
