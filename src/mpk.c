/*
 * The msgpack module; see include/ferry/mpk.h. The writer drives msgpack-c's
 * packer into our own buffer; the reader is written here so that no declared
 * length from outside can make us allocate.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "ferry/error.h"
#include "ferry/mpk.h"
#include "ferry/util.h"

/* Writer */

static int w_append(void *data, const char *buf, size_t len)
{
	struct mpk_w *w = data;

	/* An empty str/bin may come with buf == NULL, which memcpy must not see. */
	if (len == 0)
		return 0;
	if (w->cap - w->len < len) {
		size_t cap = w->cap ? w->cap : 256;

		while (cap - w->len < len) {
			if (cap > SIZE_MAX / 2)
				fatal("msgpack writer: buffer of %zu bytes overflows", w->len);
			cap *= 2;
		}
		w->buf = xrealloc(w->buf, cap);
		w->cap = cap;
	}
	memcpy(w->buf + w->len, buf, len);
	w->len += len;
	return 0;
}

static inline void w_packer(struct mpk_w *w, msgpack_packer *pk)
{
	msgpack_packer_init(pk, w, w_append);
}

/* msgpack lengths and counts are 32-bit; record a larger one for mpk_w_take(). */
static bool w_fits(struct mpk_w *w, size_t n)
{
	if (n <= UINT32_MAX)
		return true;
	if (w->err == 0)
		w->err =
		    ferry_errf(FERRY_ETOOBIG, "msgpack: %zu is over the format's 2^32-1 limit", n);
	return false;
}

void mpk_w_init(struct mpk_w *w)
{
	w->buf = NULL;
	w->len = 0;
	w->cap = 0;
	w->err = 0;
}

void mpk_w_map(struct mpk_w *w, size_t n)
{
	msgpack_packer pk;

	if (!w_fits(w, n))
		return;
	w_packer(w, &pk);
	msgpack_pack_map(&pk, n);
}

void mpk_w_array(struct mpk_w *w, size_t n)
{
	msgpack_packer pk;

	if (!w_fits(w, n))
		return;
	w_packer(w, &pk);
	msgpack_pack_array(&pk, n);
}

void mpk_w_uint(struct mpk_w *w, uint64_t v)
{
	msgpack_packer pk;

	w_packer(w, &pk);
	msgpack_pack_uint64(&pk, v);
}

void mpk_w_int(struct mpk_w *w, int64_t v)
{
	msgpack_packer pk;

	w_packer(w, &pk);
	msgpack_pack_int64(&pk, v);
}

void mpk_w_double(struct mpk_w *w, double v)
{
	msgpack_packer pk;

	w_packer(w, &pk);
	msgpack_pack_double(&pk, v);
}

void mpk_w_str(struct mpk_w *w, const void *p, size_t n)
{
	msgpack_packer pk;

	if (!w_fits(w, n))
		return;
	w_packer(w, &pk);
	msgpack_pack_str_with_body(&pk, p, n);
}

void mpk_w_cstr(struct mpk_w *w, const char *s)
{
	mpk_w_str(w, s, strlen(s));
}

void mpk_w_bin(struct mpk_w *w, const void *p, size_t n)
{
	msgpack_packer pk;

	if (!w_fits(w, n))
		return;
	w_packer(w, &pk);
	msgpack_pack_bin_with_body(&pk, p, n);
}

void mpk_w_bool(struct mpk_w *w, bool v)
{
	msgpack_packer pk;

	w_packer(w, &pk);
	if (v)
		msgpack_pack_true(&pk);
	else
		msgpack_pack_false(&pk);
}

void mpk_w_nil(struct mpk_w *w)
{
	msgpack_packer pk;

	w_packer(w, &pk);
	msgpack_pack_nil(&pk);
}

int mpk_w_take(struct mpk_w *w, uint8_t **out, size_t *len)
{
	int err = w->err;

	if (err != 0) {
		mpk_w_free(w);
		*out = NULL;
		*len = 0;
		return err;
	}
	*out = w->buf ? w->buf : xmalloc(1);
	*len = w->len;
	mpk_w_init(w);
	return 0;
}

void mpk_w_free(struct mpk_w *w)
{
	free(w->buf);
	mpk_w_init(w);
}

/* Reader */

static const char *const type_names[] = {
    [MPK_NONE] = "nothing", [MPK_NIL] = "nil",	   [MPK_BOOL] = "bool", [MPK_UINT] = "uint",
    [MPK_INT] = "int",	    [MPK_FLOAT] = "float", [MPK_STR] = "str",	[MPK_BIN] = "bin",
    [MPK_ARRAY] = "array",  [MPK_MAP] = "map",	   [MPK_EXT] = "ext",
};

static enum mpk_type byte_type(unsigned b)
{
	if (b <= 0x7f)
		return MPK_UINT;
	if (b <= 0x8f)
		return MPK_MAP;
	if (b <= 0x9f)
		return MPK_ARRAY;
	if (b <= 0xbf)
		return MPK_STR;
	if (b >= 0xe0)
		return MPK_INT;
	switch (b) {
	case 0xc0:
		return MPK_NIL;
	case 0xc2:
	case 0xc3:
		return MPK_BOOL;
	case 0xc4:
	case 0xc5:
	case 0xc6:
		return MPK_BIN;
	case 0xc7:
	case 0xc8:
	case 0xc9:
	case 0xd4:
	case 0xd5:
	case 0xd6:
	case 0xd7:
	case 0xd8:
		return MPK_EXT;
	case 0xca:
	case 0xcb:
		return MPK_FLOAT;
	case 0xcc:
	case 0xcd:
	case 0xce:
	case 0xcf:
		return MPK_UINT;
	case 0xd0:
	case 0xd1:
	case 0xd2:
	case 0xd3:
		return MPK_INT;
	case 0xd9:
	case 0xda:
	case 0xdb:
		return MPK_STR;
	case 0xdc:
	case 0xdd:
		return MPK_ARRAY;
	case 0xde:
	case 0xdf:
		return MPK_MAP;
	default:
		return MPK_NONE; /* 0xc1 is never used */
	}
}

/*
 * The decoded header of the next value. hlen is the size of everything
 * before the payload (type byte, length field, ext type; for integers and
 * floats, the value too); body is the payload's size (str, bin, ext). For
 * integers u is the value, and when neg is set, u holds its two's-complement
 * bits. For arrays and maps u is the count (maps: pairs).
 */
struct head {
	enum mpk_type type;
	bool neg;
	uint64_t u;
	size_t hlen;
	size_t body;
};

static inline uint16_t be16(const uint8_t *p)
{
	return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}

static inline uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t be64(const uint8_t *p)
{
	return (uint64_t)be32(p) << 32 | be32(p + 4);
}

static int r_error(struct mpk_r *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Record the first failure, with a detail naming the offset of the value that failed. */
static int r_error(struct mpk_r *r, const char *fmt, ...)
{
	char what[192];
	va_list ap;

	if (r->err != 0)
		return r->err;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	r->err = ferry_errf(FERRY_EFORMAT, "msgpack: %s at byte %zu", what, r->off);
	return r->err;
}

static int r_truncated(struct mpk_r *r, const struct head *h, size_t left)
{
	return r_error(r, "%s needs %zu bytes, %zu left", type_names[h->type], h->hlen, left);
}

/* The payload must fit in what is left. */
static int r_body(struct mpk_r *r, const struct head *h, size_t left)
{
	if (left < h->hlen)
		return r_truncated(r, h, left);
	if (left - h->hlen < h->body)
		return r_error(r, "%s declares %zu bytes, %zu left", type_names[h->type], h->body,
			       left - h->hlen);
	return 0;
}

/* Every element takes at least one byte, so a count larger than what is left is a lie. */
static int r_count(struct mpk_r *r, const struct head *h, size_t left)
{
	size_t per = h->type == MPK_MAP ? 2 : 1;

	if (h->u > (left - h->hlen) / per)
		return r_error(r, "%s declares %llu elements, %zu bytes left", type_names[h->type],
			       (unsigned long long)h->u * per, left - h->hlen);
	return 0;
}

/*
 * Decode the header of the next value without consuming it, checking that the
 * header and payload fit in what is left.
 */
static int r_head(struct mpk_r *r, struct head *h)
{
	const uint8_t *p = r->p + r->off;
	size_t left = r->n - r->off;
	size_t lenbytes = 0; /* size of an explicit length or count field */
	uint64_t len;
	unsigned b;

	if (r->err != 0)
		return r->err;
	if (left == 0)
		return r_error(r, "input ends where a value was expected");
	b = p[0];
	h->type = byte_type(b);
	h->neg = false;
	h->u = 0;
	h->hlen = 1;
	h->body = 0;
	if (b <= 0x7f) {
		h->u = b;
		return 0;
	}
	if (b >= 0xe0) {
		h->neg = true;
		h->u = (uint64_t)(int64_t)(int8_t)b;
		return 0;
	}
	if (b <= 0x9f) {
		h->u = b & 0x0f;
		return r_count(r, h, left);
	}
	if (b <= 0xbf) {
		h->body = b & 0x1f;
		return r_body(r, h, left);
	}
	switch (b) {
	case 0xc0:
		return 0;
	case 0xc2:
	case 0xc3:
		h->u = b & 1;
		return 0;
	case 0xc4:
	case 0xc5:
	case 0xc6:
		lenbytes = (size_t)1 << (b - 0xc4);
		break;
	case 0xc7:
	case 0xc8:
	case 0xc9:
		lenbytes = (size_t)1 << (b - 0xc7);
		break;
	case 0xca:
		h->hlen = 5;
		break;
	case 0xcb:
		h->hlen = 9;
		break;
	case 0xcc:
	case 0xcd:
	case 0xce:
	case 0xcf:
		h->hlen = 1 + ((size_t)1 << (b - 0xcc));
		break;
	case 0xd0:
	case 0xd1:
	case 0xd2:
	case 0xd3:
		h->hlen = 1 + ((size_t)1 << (b - 0xd0));
		break;
	case 0xd4:
	case 0xd5:
	case 0xd6:
	case 0xd7:
	case 0xd8:
		/* fixext: a type byte, then 1, 2, 4, 8 or 16 bytes */
		h->hlen = 2;
		h->body = (size_t)1 << (b - 0xd4);
		return r_body(r, h, left);
	case 0xd9:
	case 0xda:
	case 0xdb:
		lenbytes = (size_t)1 << (b - 0xd9);
		break;
	case 0xdc:
	case 0xde:
		lenbytes = 2;
		break;
	case 0xdd:
	case 0xdf:
		lenbytes = 4;
		break;
	default:
		return r_error(r, "byte 0x%02x starts no value", b);
	}

	if (lenbytes == 0) {
		/* An integer or a float: the value is part of the header. */
		if (left < h->hlen)
			return r_truncated(r, h, left);
		switch (b) {
		case 0xcc:
			h->u = p[1];
			break;
		case 0xcd:
			h->u = be16(p + 1);
			break;
		case 0xce:
			h->u = be32(p + 1);
			break;
		case 0xcf:
		case 0xd3:
			h->u = be64(p + 1);
			break;
		case 0xd0:
			h->u = (uint64_t)(int64_t)(int8_t)p[1];
			break;
		case 0xd1:
			h->u = (uint64_t)(int64_t)(int16_t)be16(p + 1);
			break;
		case 0xd2:
			h->u = (uint64_t)(int64_t)(int32_t)be32(p + 1);
			break;
		}
		h->neg = h->type == MPK_INT && (h->u >> 63) != 0;
		return 0;
	}

	h->hlen = 1 + lenbytes;
	if (left < h->hlen)
		return r_truncated(r, h, left);
	len = lenbytes == 1 ? p[1] : lenbytes == 2 ? be16(p + 1) : be32(p + 1);
	if (h->type == MPK_ARRAY || h->type == MPK_MAP) {
		h->u = len;
		return r_count(r, h, left);
	}
	h->body = (size_t)len;
	if (h->type == MPK_EXT)
		h->hlen++; /* the ext type byte */
	return r_body(r, h, left);
}

/* Decode the next header and check its type. */
static int r_expect(struct mpk_r *r, struct head *h, enum mpk_type want)
{
	int err = r_head(r, h);

	if (err != 0)
		return err;
	if (h->type != want)
		return r_error(r, "expected %s, found %s", type_names[want], type_names[h->type]);
	return 0;
}

static inline void r_consume(struct mpk_r *r, const struct head *h)
{
	r->off += h->hlen + h->body;
}

void mpk_r_init(struct mpk_r *r, const void *p, size_t n)
{
	r->p = p;
	r->n = n;
	r->off = 0;
	r->err = 0;
}

int mpk_r_map(struct mpk_r *r, uint32_t *n)
{
	struct head h;

	*n = 0; /* a caller that loops to *n before checking the error does nothing */
	if (r_expect(r, &h, MPK_MAP) != 0)
		return r->err;
	*n = (uint32_t)h.u;
	r_consume(r, &h);
	return 0;
}

int mpk_r_array(struct mpk_r *r, uint32_t *n)
{
	struct head h;

	*n = 0; /* a caller that loops to *n before checking the error does nothing */
	if (r_expect(r, &h, MPK_ARRAY) != 0)
		return r->err;
	*n = (uint32_t)h.u;
	r_consume(r, &h);
	return 0;
}

/* Decode an integer of either encoding. */
static int r_integer(struct mpk_r *r, struct head *h)
{
	if (r_head(r, h) != 0)
		return r->err;
	if (h->type != MPK_UINT && h->type != MPK_INT)
		return r_error(r, "expected an integer, found %s", type_names[h->type]);
	return 0;
}

int mpk_r_uint(struct mpk_r *r, uint64_t *v)
{
	struct head h;

	if (r_integer(r, &h) != 0)
		return r->err;
	if (h.neg)
		return r_error(r, "negative integer where one >= 0 was expected");
	*v = h.u;
	r_consume(r, &h);
	return 0;
}

int mpk_r_int(struct mpk_r *r, int64_t *v)
{
	struct head h;

	if (r_integer(r, &h) != 0)
		return r->err;
	if (h.neg)
		*v = -(int64_t)(~h.u) - 1;
	else if (h.u > INT64_MAX)
		return r_error(r, "integer %llu does not fit in int64", (unsigned long long)h.u);
	else
		*v = (int64_t)h.u;
	r_consume(r, &h);
	return 0;
}

int mpk_r_double(struct mpk_r *r, double *v)
{
	const uint8_t *p;
	struct head h;

	if (r_expect(r, &h, MPK_FLOAT) != 0)
		return r->err;
	p = r->p + r->off + 1;
	if (h.hlen == 5) {
		uint32_t bits = be32(p);
		float f;

		memcpy(&f, &bits, sizeof(f));
		*v = f;
	} else {
		uint64_t bits = be64(p);

		memcpy(v, &bits, sizeof(*v));
	}
	r_consume(r, &h);
	return 0;
}

int mpk_r_str(struct mpk_r *r, const char **s, size_t *len)
{
	struct head h;

	if (r_expect(r, &h, MPK_STR) != 0)
		return r->err;
	*s = (const char *)(r->p + r->off + h.hlen);
	*len = h.body;
	r_consume(r, &h);
	return 0;
}

int mpk_r_bin(struct mpk_r *r, const uint8_t **p, size_t *len)
{
	struct head h;

	if (r_expect(r, &h, MPK_BIN) != 0)
		return r->err;
	*p = r->p + r->off + h.hlen;
	*len = h.body;
	r_consume(r, &h);
	return 0;
}

int mpk_r_bin_fixed(struct mpk_r *r, void *out, size_t n)
{
	struct head h;

	if (r_expect(r, &h, MPK_BIN) != 0)
		return r->err;
	if (h.body != n)
		return r_error(r, "bin of %zu bytes where %zu were expected", h.body, n);
	memcpy(out, r->p + r->off + h.hlen, n);
	r_consume(r, &h);
	return 0;
}

int mpk_r_bool(struct mpk_r *r, bool *v)
{
	struct head h;

	if (r_expect(r, &h, MPK_BOOL) != 0)
		return r->err;
	*v = h.u != 0;
	r_consume(r, &h);
	return 0;
}

int mpk_r_nil(struct mpk_r *r)
{
	struct head h;

	if (r_expect(r, &h, MPK_NIL) != 0)
		return r->err;
	r_consume(r, &h);
	return 0;
}

int mpk_r_skip(struct mpk_r *r)
{
	/* pending[d]: values still to skip at nesting depth d (0 = the value itself). */
	uint64_t pending[MPK_DEPTH_MAX + 1];
	int depth = 0;
	struct head h;

	pending[0] = 1;
	while (depth >= 0) {
		if (pending[depth] == 0) {
			depth--;
			continue;
		}
		pending[depth]--;
		if (r_head(r, &h) != 0)
			return r->err;
		if (h.type != MPK_ARRAY && h.type != MPK_MAP) {
			r_consume(r, &h);
			continue;
		}
		if (depth == MPK_DEPTH_MAX)
			return r_error(r, "containers nested more than %d deep", MPK_DEPTH_MAX);
		r_consume(r, &h);
		pending[++depth] = h.type == MPK_MAP ? 2 * h.u : h.u;
	}
	return 0;
}

int mpk_r_done(struct mpk_r *r)
{
	if (r->err != 0)
		return r->err;
	if (r->off != r->n)
		return r_error(r, "%zu bytes left over after the value", r->n - r->off);
	return 0;
}

enum mpk_type mpk_r_peek(const struct mpk_r *r)
{
	if (r->err != 0 || r->off >= r->n)
		return MPK_NONE;
	return byte_type(r->p[r->off]);
}
