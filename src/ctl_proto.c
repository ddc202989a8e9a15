/*
 * The control protocol's encoders and decoders (include/ferry/ctl.h), shared
 * by ferryd's server and ferryctl's client. Pure: bytes in, structs out.
 *
 * Data records are described by one field table per kind ({key, type,
 * offset}); the same table drives the encoder and the decoder, so the two
 * cannot disagree about a key or its type.
 *
 * Every decoder copies the strings it returns into one allocation as large
 * as the message: each string or binary takes at least one header byte in
 * msgpack, so its copy with a terminating NUL always fits, and the copy is
 * made without growing anything by a length the peer declared.
 */
#include "config.h"

#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/ctl.h"
#include "ferry/error.h"
#include "ferry/mpk.h"
#include "ferry/util.h"

/* ---- framing ------------------------------------------------------------ */

void ctl_hdr_put(uint8_t hdr[static CTL_HDR_LEN], uint32_t len)
{
	hdr[0] = (uint8_t)(len >> 24);
	hdr[1] = (uint8_t)(len >> 16);
	hdr[2] = (uint8_t)(len >> 8);
	hdr[3] = (uint8_t)len;
}

int ctl_hdr_get(const uint8_t hdr[static CTL_HDR_LEN], uint32_t max, uint32_t *len)
{
	uint32_t n = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 |
		     (uint32_t)hdr[3];

	*len = n;
	if (n == 0)
		return ferry_errf(FERRY_EPROTO, "control message of length 0");
	if (n > max)
		return ferry_errf(FERRY_ETOOBIG,
				  "control message of %u bytes is larger than the limit of %u", n,
				  max);
	return 0;
}

/* Turn a writer holding one message body into a framed message. */
static int frame(struct mpk_w *w, size_t max, uint8_t **out, size_t *len)
{
	uint8_t *body = NULL, *msg;
	size_t n = 0;
	int rc;

	rc = mpk_w_take(w, &body, &n);
	if (rc < 0)
		return rc;
	if (n > max) {
		free(body);
		return ferry_errf(FERRY_ETOOBIG,
				  "control message of %zu bytes is larger than the limit of %zu", n,
				  max);
	}
	msg = xmalloc(n + CTL_HDR_LEN);
	ctl_hdr_put(msg, (uint32_t)n);
	memcpy(msg + CTL_HDR_LEN, body, n);
	free(body);
	*out = msg;
	*len = n + CTL_HDR_LEN;
	return 0;
}

/* ---- strings ------------------------------------------------------------ */

/* A bump allocator over one buffer at least as large as the message. */
struct arena {
	char *p;
	size_t used, cap;
};

static const char *arena_str(struct arena *a, const char *s, size_t n)
{
	char *d = a->p + a->used;

	/* Cannot fail for input taken from the message (see the file comment). */
	if (a->cap - a->used < n + 1)
		fatal("control decoder: string arena of %zu bytes overflows", a->cap);
	memcpy(d, s, n);
	d[n] = '\0';
	a->used += n + 1;
	return d;
}

/* Read a string of 1..max bytes with no control character; what names it in errors. */
static int read_name(struct mpk_r *r, size_t max, const char *what, const char **s, size_t *n)
{
	size_t off = mpk_r_offset(r);

	if (mpk_r_str(r, s, n) < 0)
		return ferry_errf(FERRY_EPROTO, "%s at byte %zu is not a string", what, off);
	if (*n == 0 || *n > max)
		return ferry_errf(FERRY_EPROTO, "%s at byte %zu has %zu bytes (1 to %zu allowed)",
				  what, off, *n, max);
	/* Names end up in logs and messages: no NUL, no control characters. */
	for (size_t i = 0; i < *n; i++)
		if ((unsigned char)(*s)[i] < 0x20 || (*s)[i] == 0x7f)
			return ferry_errf(FERRY_EPROTO,
					  "%s at byte %zu contains a control character", what, off);
	return 0;
}

static bool key_is(const char *k, size_t n, const char *want)
{
	return strlen(want) == n && memcmp(k, want, n) == 0;
}

/* ---- requests ----------------------------------------------------------- */

static struct ctl_arg *req_add(struct ctl_request *req, const char *key, enum ctl_type type)
{
	struct ctl_arg *a;

	if (req->n_args >= CTL_ARGS_MAX)
		fatal("control request: more than %d arguments", CTL_ARGS_MAX);
	a = &req->args[req->n_args++];
	memset(a, 0, sizeof(*a));
	a->key = key;
	a->type = type;
	return a;
}

void ctl_request_str(struct ctl_request *req, const char *key, const char *v)
{
	struct ctl_arg *a = req_add(req, key, CTL_T_STR);

	a->str = v;
	a->len = strlen(v);
}

void ctl_request_uint(struct ctl_request *req, const char *key, uint64_t v)
{
	req_add(req, key, CTL_T_UINT)->u = v;
}

void ctl_request_int(struct ctl_request *req, const char *key, int64_t v)
{
	req_add(req, key, CTL_T_INT)->i = v;
}

void ctl_request_bool(struct ctl_request *req, const char *key, bool v)
{
	req_add(req, key, CTL_T_BOOL)->b = v;
}

void ctl_request_bin(struct ctl_request *req, const char *key, const void *p, size_t n)
{
	struct ctl_arg *a = req_add(req, key, CTL_T_BIN);

	a->str = p;
	a->len = n;
}

int ctl_request_encode(const struct ctl_request *req, uint8_t **out, size_t *len)
{
	struct mpk_w w;
	size_t i;

	*out = NULL;
	*len = 0;
	if (req->cmd == NULL || req->cmd[0] == '\0' || strlen(req->cmd) > CTL_CMD_MAX)
		return ferry_errf(FERRY_EINVAL, "command name '%s' is empty or too long",
				  req->cmd ? req->cmd : "");
	if (req->n_args > CTL_ARGS_MAX)
		return ferry_errf(FERRY_EINVAL, "%zu arguments (at most %d)", req->n_args,
				  CTL_ARGS_MAX);
	for (i = 0; i < req->n_args; i++) {
		const struct ctl_arg *a = &req->args[i];
		size_t kl = strlen(a->key);

		if (kl == 0 || kl > CTL_KEY_MAX)
			return ferry_errf(FERRY_EINVAL, "argument name '%s' is empty or too long",
					  a->key);
		if (a->type == CTL_T_STR &&
		    (a->len > CTL_STR_MAX || memchr(a->str, '\0', a->len) != NULL))
			return ferry_errf(FERRY_EINVAL,
					  "argument %s is longer than %d bytes or holds a NUL",
					  a->key, CTL_STR_MAX);
	}

	mpk_w_init(&w);
	mpk_w_map(&w, 4);
	mpk_w_cstr(&w, "t");
	mpk_w_uint(&w, CTL_MSG_REQUEST);
	mpk_w_cstr(&w, "v");
	mpk_w_uint(&w, req->version);
	mpk_w_cstr(&w, "cmd");
	mpk_w_cstr(&w, req->cmd);
	mpk_w_cstr(&w, "args");
	mpk_w_map(&w, req->n_args);
	for (i = 0; i < req->n_args; i++) {
		const struct ctl_arg *a = &req->args[i];

		mpk_w_cstr(&w, a->key);
		switch (a->type) {
		case CTL_T_STR:
			mpk_w_str(&w, a->str, a->len);
			break;
		case CTL_T_UINT:
			mpk_w_uint(&w, a->u);
			break;
		case CTL_T_INT:
			mpk_w_int(&w, a->i);
			break;
		case CTL_T_BOOL:
			mpk_w_bool(&w, a->b);
			break;
		case CTL_T_BIN:
			mpk_w_bin(&w, a->str, a->len);
			break;
		}
	}
	return frame(&w, CTL_REQUEST_MAX, out, len);
}

/* Pass 1 of decoding: the protocol version, whatever the rest holds. */
static int request_version(const uint8_t *p, size_t n, uint64_t *version)
{
	struct mpk_r r;
	uint32_t count, i;
	bool found = false;

	mpk_r_init(&r, p, n);
	if (mpk_r_map(&r, &count) < 0)
		return ferry_errf(FERRY_EPROTO, "the request is not a msgpack map");
	for (i = 0; i < count; i++) {
		const char *k;
		size_t kl;

		bool is_v = false;

		if (mpk_r_peek(&r) == MPK_STR) {
			if (mpk_r_str(&r, &k, &kl) < 0)
				break;
			is_v = key_is(k, kl, "v");
		} else if (mpk_r_skip(&r) < 0) {
			break;
		}
		if (is_v) {
			if (mpk_r_uint(&r, version) < 0)
				break;
			found = true;
		} else if (mpk_r_skip(&r) < 0) {
			break;
		}
	}
	if (mpk_r_error(&r) < 0)
		return ferry_errf(FERRY_EPROTO, "malformed request: %s",
				  ferry_errmsg(FERRY_EFORMAT));
	if (!found)
		return ferry_errf(FERRY_EPROTO, "the request carries no protocol version");
	if (*version != CTL_PROTO_VERSION)
		return ferry_errf(FERRY_EVERSION,
				  "the client speaks control protocol version %llu and this ferryd "
				  "speaks version %d: use the ferryctl that came with this ferryd",
				  (unsigned long long)*version, CTL_PROTO_VERSION);
	return 0;
}

static int decode_arg_value(struct mpk_r *r, struct arena *a, struct ctl_arg *arg)
{
	size_t off = mpk_r_offset(r);
	const char *s;
	const uint8_t *b;
	int64_t iv;
	size_t n;

	switch (mpk_r_peek(r)) {
	case MPK_STR:
		if (mpk_r_str(r, &s, &n) < 0)
			break;
		if (n > CTL_STR_MAX)
			return ferry_errf(FERRY_EPROTO,
					  "argument %s has a string of %zu bytes (at most %d)",
					  arg->key, n, CTL_STR_MAX);
		if (memchr(s, '\0', n) != NULL)
			return ferry_errf(FERRY_EPROTO, "argument %s contains a NUL byte",
					  arg->key);
		arg->type = CTL_T_STR;
		arg->str = arena_str(a, s, n);
		arg->len = n;
		return 0;
	case MPK_UINT:
		if (mpk_r_uint(r, &arg->u) < 0)
			break;
		arg->type = CTL_T_UINT;
		return 0;
	case MPK_INT:
		if (mpk_r_int(r, &iv) < 0)
			break;
		/* Non-negative values are UINT whatever their encoding. */
		if (iv >= 0) {
			arg->type = CTL_T_UINT;
			arg->u = (uint64_t)iv;
		} else {
			arg->type = CTL_T_INT;
			arg->i = iv;
		}
		return 0;
	case MPK_BOOL:
		if (mpk_r_bool(r, &arg->b) < 0)
			break;
		arg->type = CTL_T_BOOL;
		return 0;
	case MPK_BIN:
		if (mpk_r_bin(r, &b, &n) < 0)
			break;
		arg->type = CTL_T_BIN;
		arg->str = arena_str(a, (const char *)b, n);
		arg->len = n;
		return 0;
	default:
		return ferry_errf(FERRY_EPROTO,
				  "argument %s at byte %zu is not a string, integer, boolean or "
				  "binary",
				  arg->key, off);
	}
	return ferry_errf(FERRY_EPROTO, "argument %s at byte %zu is malformed", arg->key, off);
}

static int decode_args(struct mpk_r *r, struct arena *a, struct ctl_request *req)
{
	uint32_t count, i;
	size_t j;
	int rc;

	if (mpk_r_map(r, &count) < 0)
		return ferry_errf(FERRY_EPROTO, "the request's args is not a map");
	if (count > CTL_ARGS_MAX)
		return ferry_errf(FERRY_EPROTO, "the request has %u arguments (at most %d)", count,
				  CTL_ARGS_MAX);
	for (i = 0; i < count; i++) {
		struct ctl_arg *arg = &req->args[req->n_args];
		const char *k;
		size_t kl;

		memset(arg, 0, sizeof(*arg));
		rc = read_name(r, CTL_KEY_MAX, "an argument name", &k, &kl);
		if (rc < 0)
			return rc;
		for (j = 0; j < req->n_args; j++)
			if (key_is(k, kl, req->args[j].key))
				return ferry_errf(FERRY_EPROTO, "argument %.*s appears twice",
						  (int)kl, k);
		arg->key = arena_str(a, k, kl);
		rc = decode_arg_value(r, a, arg);
		if (rc < 0)
			return rc;
		req->n_args++;
	}
	return 0;
}

int ctl_request_decode(const uint8_t *p, size_t n, struct ctl_request *out)
{
	struct arena a = {.p = NULL, .cap = n + 1};
	struct mpk_r r;
	uint32_t count, i;
	uint64_t t = 0;
	bool have_t = false, have_args = false;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = request_version(p, n, &out->version);
	if (rc < 0)
		return rc;
	a.p = out->mem = xmalloc(a.cap);

	mpk_r_init(&r, p, n);
	mpk_r_map(&r, &count);
	for (i = 0; i < count; i++) {
		const char *k, *s;
		size_t kl, sl;

		rc = read_name(&r, CTL_KEY_MAX, "a request key", &k, &kl);
		if (rc < 0)
			goto out;
		if (key_is(k, kl, "t")) {
			if (mpk_r_uint(&r, &t) < 0) {
				rc = ferry_errf(FERRY_EPROTO, "the message type is not an integer");
				goto out;
			}
			have_t = true;
		} else if (key_is(k, kl, "cmd")) {
			if (out->cmd != NULL) {
				rc = ferry_errf(FERRY_EPROTO, "the request names two commands");
				goto out;
			}
			rc = read_name(&r, CTL_CMD_MAX, "the command name", &s, &sl);
			if (rc < 0)
				goto out;
			out->cmd = arena_str(&a, s, sl);
		} else if (key_is(k, kl, "args")) {
			if (have_args) {
				rc = ferry_errf(FERRY_EPROTO, "the request has two args maps");
				goto out;
			}
			have_args = true;
			rc = decode_args(&r, &a, out);
			if (rc < 0)
				goto out;
		} else if (mpk_r_skip(&r) < 0) {
			break;
		}
	}
	if (mpk_r_done(&r) < 0) {
		rc = ferry_errf(FERRY_EPROTO, "malformed request: %s", ferry_errmsg(FERRY_EFORMAT));
		goto out;
	}
	if (!have_t || t != CTL_MSG_REQUEST) {
		rc = ferry_errf(FERRY_EPROTO, "expected a request (message type %d)",
				CTL_MSG_REQUEST);
		goto out;
	}
	if (out->cmd == NULL) {
		rc = ferry_errf(FERRY_EPROTO, "the request names no command");
		goto out;
	}
	rc = 0;
out:
	if (rc < 0)
		ctl_request_clear(out);
	return rc;
}

void ctl_request_clear(struct ctl_request *req)
{
	free(req->mem);
	memset(req, 0, sizeof(*req));
}

const struct ctl_arg *ctl_request_arg(const struct ctl_request *req, const char *key)
{
	for (size_t i = 0; i < req->n_args; i++)
		if (strcmp(req->args[i].key, key) == 0)
			return &req->args[i];
	return NULL;
}

/* ---- data records ------------------------------------------------------- */

enum field_type {
	F_U64,	  /* uint64_t */
	F_UNS,	  /* unsigned */
	F_I64,	  /* int64_t */
	F_DOUBLE, /* double */
	F_BOOL,	  /* bool */
	F_STR,	  /* const char *; NULL is left out when encoding */
	F_ID,	  /* uint8_t[32] as a 32-byte binary */
	F_BODY,	  /* struct ctl_manifest's body and body_len */
};

struct field {
	const char *key;
	enum field_type type;
	size_t off;
};

#define ST(f) offsetof(struct ctl_status, f)
static const struct field status_fields[] = {
    {"node_id", F_ID, ST(node.node_id)},
    {"site", F_STR, ST(node.site)},
    {"uptime_s", F_U64, ST(node.uptime_s)},
    {"store_bytes", F_U64, ST(node.store_bytes)},
    {"store_chunks", F_U64, ST(node.store_chunks)},
    {"fs_free", F_U64, ST(node.fs_free)},
    {"min_free_space", F_U64, ST(node.min_free_space)},
    {"cache_quota", F_U64, ST(node.cache_quota)},
    {"peers_connected", F_UNS, ST(node.peers_connected)},
    {"peers_known", F_UNS, ST(node.peers_known)},
    {"rate_in_bps", F_DOUBLE, ST(node.rate_in_bps)},
    {"rate_out_bps", F_DOUBLE, ST(node.rate_out_bps)},
    {"store_error", F_STR, ST(node.store_error)},
    {"bytes_received", F_U64, ST(node.bytes_received)},
    {"bytes_served", F_U64, ST(node.bytes_served)},
    {"rx_lan", F_U64, ST(node.rx_lan)},
    {"rx_wan", F_U64, ST(node.rx_wan)},
    {"tx_lan", F_U64, ST(node.tx_lan)},
    {"tx_wan", F_U64, ST(node.tx_wan)},
    {"chunks_verified", F_U64, ST(node.chunks_verified)},
    {"chunks_rejected", F_U64, ST(node.chunks_rejected)},
    {"reconnects", F_U64, ST(node.reconnects)},
    {"resumed_bytes", F_U64, ST(node.resumed_bytes)},
    {"ferryd_version", F_STR, ST(ferryd_version)},
    {"limit_download_bps", F_U64, ST(node.limit_download)},
    {"limit_upload_bps", F_U64, ST(node.limit_upload)},
    {"limit_wan_download_bps", F_U64, ST(node.limit_wan_download)},
    {"limit_wan_upload_bps", F_U64, ST(node.limit_wan_upload)},
    {"limit_lan_download_bps", F_U64, ST(node.limit_lan_download)},
    {"limit_lan_upload_bps", F_U64, ST(node.limit_lan_upload)},
    {NULL, 0, 0},
};

#define PR(f) offsetof(struct node_peer_row, f)
static const struct field peer_fields[] = {
    {"node_id", F_ID, PR(node_id)},
    {"address", F_STR, PR(address)},
    {"site", F_STR, PR(site)},
    {"state", F_STR, PR(state)},
    {"lan", F_BOOL, PR(lan)},
    {"rtt_ms", F_DOUBLE, PR(rtt_ms)},
    {"rate_in_bps", F_DOUBLE, PR(rate_in_bps)},
    {"rate_out_bps", F_DOUBLE, PR(rate_out_bps)},
    {"last_seen", F_I64, PR(last_seen)},
    {"banned_until", F_I64, PR(banned_until)},
    {"bytes_received", F_U64, PR(bytes_received)},
    {"bytes_served", F_U64, PR(bytes_served)},
    {"window_bytes", F_U64, PR(window_bytes)},
    {"window_rtt_us", F_U64, PR(window_rtt_us)},
    {"lanes", F_U64, PR(lanes)},
    {"congestion", F_STR, PR(congestion)},
    {NULL, 0, 0},
};

#define MR(f) offsetof(struct node_model_row, f)
static const struct field model_fields[] = {
    {"name", F_STR, MR(name)},
    {"version", F_U64, MR(version)},
    {"label", F_STR, MR(label)},
    {"size", F_U64, MR(size)},
    {"present_pct", F_DOUBLE, MR(present_pct)},
    {"active", F_BOOL, MR(active)},
    {"pinned", F_BOOL, MR(pinned)},
    {"wanted", F_BOOL, MR(wanted)},
    {NULL, 0, 0},
};

#define PG(f) offsetof(struct ctl_progress, f)
static const struct field progress_fields[] = {
    {"name", F_STR, PG(name)},
    {"version", F_U64, PG(p.version)},
    {"need_bytes", F_U64, PG(p.need_bytes)},
    {"have_bytes", F_U64, PG(p.have_bytes)},
    {"inflight_bytes", F_U64, PG(p.inflight_bytes)},
    {"sources", F_UNS, PG(p.sources)},
    {"rate_bps", F_DOUBLE, PG(p.rate_bps)},
    {"complete", F_BOOL, PG(p.complete)},
    {"waiting_manifest", F_BOOL, PG(p.waiting_manifest)},
    {NULL, 0, 0},
};

#define MF(f) offsetof(struct ctl_manifest, f)
static const struct field manifest_fields[] = {
    {"body", F_BODY, 0},
    {"files", F_U64, MF(stats.files)},
    {"raw_bytes", F_U64, MF(stats.raw_bytes)},
    {"chunks", F_U64, MF(stats.chunks)},
    {"new_chunks", F_U64, MF(stats.new_chunks)},
    {"new_raw_bytes", F_U64, MF(stats.new_raw_bytes)},
    {"new_enc_bytes", F_U64, MF(stats.new_enc_bytes)},
    {"enc_bytes", F_U64, MF(stats.enc_bytes)},
    {NULL, 0, 0},
};

#define AC(f) offsetof(struct ctl_activation, f)
static const struct field activation_fields[] = {
    {"name", F_STR, AC(name)},		{"active", F_U64, AC(active)},
    {"previous", F_U64, AC(previous)},	{"held", F_U64, AC(held)},
    {"switched", F_BOOL, AC(switched)}, {"materialized", F_BOOL, AC(materialized)},
    {"hook_ran", F_BOOL, AC(hook_ran)}, {"hook_error", F_STR, AC(hook_error)},
    {"removed", F_UNS, AC(removed)},	{NULL, 0, 0},
};

#define PN(f) offsetof(struct ctl_pin, f)
static const struct field pin_fields[] = {
    {"name", F_STR, PN(name)},
    {"version", F_U64, PN(version)},
    {"pinned", F_BOOL, PN(pinned)},
    {"changed", F_U64, PN(changed)},
    {NULL, 0, 0},
};

#define GC(f) offsetof(struct ctl_gc, f)
static const struct field gc_fields[] = {
    {"freed_chunks", F_U64, GC(freed_chunks)}, {"freed_bytes", F_U64, GC(freed_bytes)},
    {"usage_before", F_U64, GC(usage_before)}, {"usage_after", F_U64, GC(usage_after)},
    {"short_by", F_U64, GC(short_by)},	       {NULL, 0, 0},
};

#define EV(f) offsetof(struct ctl_evicted, f)
static const struct field evicted_fields[] = {
    {"name", F_STR, EV(name)},
    {"version", F_U64, EV(version)},
    {"bytes", F_U64, EV(bytes)},
    {NULL, 0, 0},
};

static const struct field text_fields[] = {
    {"text", F_STR, offsetof(struct ctl_text, text)},
    {NULL, 0, 0},
};

#define PB(f) offsetof(struct ctl_problem, f)
static const struct field problem_fields[] = {
    {"path", F_STR, PB(path)},
    {"offset", F_U64, PB(offset)},
    {"chunk", F_ID, PB(chunk)},
    {"problem", F_STR, PB(problem)},
    {"index_piece", F_BOOL, PB(index_piece)},
    {"detail", F_STR, PB(detail)},
    {NULL, 0, 0},
};

#define VF(f) offsetof(struct ctl_verify, f)
static const struct field verify_fields[] = {
    {"name", F_STR, VF(name)},
    {"version", F_U64, VF(version)},
    {"chunks", F_U64, VF(chunks)},
    {"bytes", F_U64, VF(bytes)},
    {"corrupt", F_U64, VF(corrupt)},
    {"missing", F_U64, VF(missing)},
    {"materialized", F_BOOL, VF(materialized)},
    {"files_ok", F_BOOL, VF(files_ok)},
    {NULL, 0, 0},
};

#define LR(f) offsetof(struct node_limit_row, f)
static const struct field limit_fields[] = {
    {"name", F_STR, LR(name)},
    {"rate_bps", F_U64, LR(rate_bps)},
    {"source", F_STR, LR(source)},
    {"config_bps", F_U64, LR(config_bps)},
    {NULL, 0, 0},
};

#define BP(f) offsetof(struct ctl_bundle_progress, f)
static const struct field bundle_progress_fields[] = {
    {"phase", F_STR, BP(phase)},
    {"file", F_STR, BP(file)},
    {"bytes_done", F_U64, BP(bytes_done)},
    {"bytes_total", F_U64, BP(bytes_total)},
    {"chunks_done", F_U64, BP(chunks_done)},
    {"chunks_total", F_U64, BP(chunks_total)},
    {NULL, 0, 0},
};

#define BM(f) offsetof(struct ctl_bundle_manifest, f)
static const struct field bundle_manifest_fields[] = {
    {"file", F_STR, BM(file)},
    {"name", F_STR, BM(name)},
    {"version", F_U64, BM(version)},
    {"outcome", F_I64, BM(outcome)},
    {"complete", F_BOOL, BM(complete)},
    {NULL, 0, 0},
};

#define BX(f) offsetof(struct ctl_bundle_problem, f)
static const struct field bundle_problem_fields[] = {
    {"code", F_I64, BX(code)},
    {"file", F_STR, BX(file)},
    {"offset", F_U64, BX(offset)},
    {"has_id", F_BOOL, BX(has_id)},
    {"id", F_ID, BX(id)},
    {"message", F_STR, BX(message)},
    {NULL, 0, 0},
};

#define BR(f) offsetof(struct ctl_bundle_report, f)
static const struct field bundle_report_fields[] = {
    {"manifests", F_U64, BR(manifests)},
    {"manifests_refused", F_U64, BR(manifests_refused)},
    {"chunks_imported", F_U64, BR(chunks_imported)},
    {"bytes_imported", F_U64, BR(bytes_imported)},
    {"chunks_present", F_U64, BR(chunks_present)},
    {"chunks_bad", F_U64, BR(chunks_bad)},
    {"chunks_missing", F_U64, BR(chunks_missing)},
    {"chunks_unreferenced", F_U64, BR(chunks_unreferenced)},
    {"problems_total", F_U64, BR(problems_total)},
    {"delta", F_BOOL, BR(delta)},
    {NULL, 0, 0},
};

#define BC(f) offsetof(struct bundle_create_stats, f)
static const struct field bundle_created_fields[] = {
    {"manifests", F_UNS, BC(manifests)},
    {"packs", F_UNS, BC(packs)},
    {"packs_kept", F_UNS, BC(packs_kept)},
    {"chunks", F_U64, BC(chunks)},
    {"bytes", F_U64, BC(bytes)},
    {"skipped_chunks", F_U64, BC(skipped_chunks)},
    {"skipped_bytes", F_U64, BC(skipped_bytes)},
    {"written_bytes", F_U64, BC(written_bytes)},
    {"raw_bytes", F_U64, BC(raw_bytes)},
    {NULL, 0, 0},
};

#define HV(f) offsetof(struct ctl_have, f)
static const struct field have_fields[] = {
    {"versions", F_U64, HV(versions)},
    {"chunks", F_U64, HV(chunks)},
    {NULL, 0, 0},
};

static const struct {
	const char *name;
	const struct field *fields;
} kinds[] = {
    [CTL_DATA_STATUS] = {"status", status_fields},
    [CTL_DATA_PEER] = {"peer", peer_fields},
    [CTL_DATA_MODEL] = {"model", model_fields},
    [CTL_DATA_PROGRESS] = {"progress", progress_fields},
    [CTL_DATA_MANIFEST] = {"manifest", manifest_fields},
    [CTL_DATA_ACTIVATION] = {"activation", activation_fields},
    [CTL_DATA_PIN] = {"pin", pin_fields},
    [CTL_DATA_GC] = {"gc", gc_fields},
    [CTL_DATA_EVICTED] = {"evicted", evicted_fields},
    [CTL_DATA_TEXT] = {"text", text_fields},
    [CTL_DATA_PROBLEM] = {"problem", problem_fields},
    [CTL_DATA_VERIFY] = {"verify", verify_fields},
    [CTL_DATA_LIMIT] = {"limit", limit_fields},
    [CTL_DATA_BUNDLE_PROGRESS] = {"bundle_progress", bundle_progress_fields},
    [CTL_DATA_BUNDLE_MANIFEST] = {"bundle_manifest", bundle_manifest_fields},
    [CTL_DATA_BUNDLE_PROBLEM] = {"bundle_problem", bundle_problem_fields},
    [CTL_DATA_BUNDLE_REPORT] = {"bundle_report", bundle_report_fields},
    [CTL_DATA_BUNDLE_CREATED] = {"bundle_created", bundle_created_fields},
    [CTL_DATA_HAVE] = {"have", have_fields},
};

const char *ctl_data_kind_name(enum ctl_data_kind kind)
{
	if ((unsigned)kind >= ARRAY_SIZE(kinds))
		return NULL;
	return kinds[kind].name;
}

static const struct field *kind_fields(enum ctl_data_kind kind)
{
	if ((unsigned)kind >= ARRAY_SIZE(kinds) || kinds[kind].fields == NULL)
		fatal("control protocol: unknown data kind %d", (int)kind);
	return kinds[kind].fields;
}

#define AT(rec, f, T)  ((T *)((char *)(rec) + (f)->off))
#define CAT(rec, f, T) ((const T *)((const char *)(rec) + (f)->off))

int ctl_data_encode(enum ctl_data_kind kind, const void *rec, uint8_t **out, size_t *len)
{
	const struct field *fields = kind_fields(kind), *f;
	struct mpk_w w;
	size_t n = 0;

	for (f = fields; f->key != NULL; f++)
		if (f->type != F_STR || *CAT(rec, f, const char *) != NULL)
			n++;
	mpk_w_init(&w);
	mpk_w_map(&w, 3);
	mpk_w_cstr(&w, "t");
	mpk_w_uint(&w, CTL_MSG_DATA);
	mpk_w_cstr(&w, "k");
	mpk_w_cstr(&w, kinds[kind].name);
	mpk_w_cstr(&w, "d");
	mpk_w_map(&w, n);
	for (f = fields; f->key != NULL; f++) {
		if (f->type == F_STR && *CAT(rec, f, const char *) == NULL)
			continue;
		mpk_w_cstr(&w, f->key);
		switch (f->type) {
		case F_U64:
			mpk_w_uint(&w, *CAT(rec, f, uint64_t));
			break;
		case F_UNS:
			mpk_w_uint(&w, *CAT(rec, f, unsigned));
			break;
		case F_I64:
			mpk_w_int(&w, *CAT(rec, f, int64_t));
			break;
		case F_DOUBLE:
			mpk_w_double(&w, *CAT(rec, f, double));
			break;
		case F_BOOL:
			mpk_w_bool(&w, *CAT(rec, f, bool));
			break;
		case F_STR:
			mpk_w_cstr(&w, *CAT(rec, f, const char *));
			break;
		case F_ID:
			mpk_w_bin(&w, CAT(rec, f, uint8_t), 32);
			break;
		case F_BODY: {
			const struct ctl_manifest *m = rec;

			mpk_w_bin(&w, m->body, m->body_len);
			break;
		}
		}
	}
	return frame(&w, CTL_MSG_MAX, out, len);
}

static int decode_field(struct mpk_r *r, const struct field *f, void *rec, struct arena *a)
{
	const char *s;
	const uint8_t *b;
	uint64_t u;
	int64_t i;
	size_t n;

	switch (f->type) {
	case F_U64:
		return mpk_r_uint(r, AT(rec, f, uint64_t));
	case F_UNS:
		if (mpk_r_uint(r, &u) < 0)
			return FERRY_EFORMAT;
		*AT(rec, f, unsigned) = u > UINT_MAX ? UINT_MAX : (unsigned)u;
		return 0;
	case F_I64:
		return mpk_r_int(r, AT(rec, f, int64_t));
	case F_DOUBLE:
		/* An integer is as good a number. */
		if (mpk_r_peek(r) == MPK_UINT || mpk_r_peek(r) == MPK_INT) {
			if (mpk_r_int(r, &i) < 0)
				return FERRY_EFORMAT;
			*AT(rec, f, double) = (double)i;
			return 0;
		}
		return mpk_r_double(r, AT(rec, f, double));
	case F_BOOL:
		return mpk_r_bool(r, AT(rec, f, bool));
	case F_STR:
		if (mpk_r_str(r, &s, &n) < 0)
			return FERRY_EFORMAT;
		*AT(rec, f, const char *) = arena_str(a, s, n);
		return 0;
	case F_ID:
		return mpk_r_bin_fixed(r, AT(rec, f, uint8_t), 32);
	case F_BODY: {
		struct ctl_manifest *m = rec;

		if (mpk_r_bin(r, &b, &n) < 0)
			return FERRY_EFORMAT;
		m->body = b;
		m->body_len = n;
		return 0;
	}
	}
	return FERRY_EFORMAT;
}

/* The size of the struct each kind decodes into. */
static size_t kind_size(enum ctl_data_kind kind)
{
	switch (kind) {
	case CTL_DATA_STATUS:
		return sizeof(struct ctl_status);
	case CTL_DATA_PEER:
		return sizeof(struct node_peer_row);
	case CTL_DATA_MODEL:
		return sizeof(struct node_model_row);
	case CTL_DATA_PROGRESS:
		return sizeof(struct ctl_progress);
	case CTL_DATA_MANIFEST:
		return sizeof(struct ctl_manifest);
	case CTL_DATA_ACTIVATION:
		return sizeof(struct ctl_activation);
	case CTL_DATA_PIN:
		return sizeof(struct ctl_pin);
	case CTL_DATA_GC:
		return sizeof(struct ctl_gc);
	case CTL_DATA_EVICTED:
		return sizeof(struct ctl_evicted);
	case CTL_DATA_TEXT:
		return sizeof(struct ctl_text);
	case CTL_DATA_PROBLEM:
		return sizeof(struct ctl_problem);
	case CTL_DATA_VERIFY:
		return sizeof(struct ctl_verify);
	case CTL_DATA_LIMIT:
		return sizeof(struct node_limit_row);
	case CTL_DATA_BUNDLE_PROGRESS:
		return sizeof(struct ctl_bundle_progress);
	case CTL_DATA_BUNDLE_MANIFEST:
		return sizeof(struct ctl_bundle_manifest);
	case CTL_DATA_BUNDLE_PROBLEM:
		return sizeof(struct ctl_bundle_problem);
	case CTL_DATA_BUNDLE_REPORT:
		return sizeof(struct ctl_bundle_report);
	case CTL_DATA_BUNDLE_CREATED:
		return sizeof(struct bundle_create_stats);
	case CTL_DATA_HAVE:
		return sizeof(struct ctl_have);
	}
	return 0;
}

int ctl_data_decode(enum ctl_data_kind kind, const uint8_t *p, size_t n, void *rec, char **mem)
{
	const struct field *fields = kind_fields(kind), *f;
	struct arena a = {.p = xmalloc(n + 1), .cap = n + 1};
	struct mpk_r r;
	uint32_t count, i;

	*mem = a.p;
	memset(rec, 0, kind_size(kind));
	mpk_r_init(&r, p, n);
	if (mpk_r_map(&r, &count) < 0)
		return ferry_errf(FERRY_EPROTO, "the %s record is not a map", kinds[kind].name);
	for (i = 0; i < count; i++) {
		const char *k;
		size_t kl, off;

		if (mpk_r_str(&r, &k, &kl) < 0)
			break;
		off = mpk_r_offset(&r);
		for (f = fields; f->key != NULL; f++)
			if (key_is(k, kl, f->key))
				break;
		if (f->key == NULL) {
			if (mpk_r_skip(&r) < 0)
				break;
			continue;
		}
		if (decode_field(&r, f, rec, &a) < 0)
			return ferry_errf(
			    FERRY_EPROTO,
			    "field %s of the %s record at byte %zu has the wrong type", f->key,
			    kinds[kind].name, off);
	}
	if (mpk_r_done(&r) < 0)
		return ferry_errf(FERRY_EPROTO, "malformed %s record: %s", kinds[kind].name,
				  ferry_errmsg(FERRY_EFORMAT));
	return 0;
}

/* ---- results, signatures and daemon messages ------------------------------ */

void ctl_result_encode(int code, const char *msg, uint8_t **out, size_t *len)
{
	struct mpk_w w;
	size_t n = msg ? strlen(msg) : 0;

	if (n > CTL_RESULT_MSG_MAX)
		n = CTL_RESULT_MSG_MAX;
	mpk_w_init(&w);
	mpk_w_map(&w, 3);
	mpk_w_cstr(&w, "t");
	mpk_w_uint(&w, CTL_MSG_RESULT);
	mpk_w_cstr(&w, "code");
	mpk_w_int(&w, code);
	mpk_w_cstr(&w, "msg");
	mpk_w_str(&w, msg ? msg : "", n);
	if (frame(&w, CTL_MSG_MAX, out, len) < 0)
		fatal("control protocol: cannot encode a result");
}

void ctl_signature_encode(const uint8_t sig[static 64], uint8_t **out, size_t *len)
{
	struct mpk_w w;

	mpk_w_init(&w);
	mpk_w_map(&w, 2);
	mpk_w_cstr(&w, "t");
	mpk_w_uint(&w, CTL_MSG_SIGNATURE);
	mpk_w_cstr(&w, "sig");
	mpk_w_bin(&w, sig, 64);
	if (frame(&w, CTL_MSG_MAX, out, len) < 0)
		fatal("control protocol: cannot encode a signature");
}

int ctl_signature_decode(const uint8_t *p, size_t n, uint8_t sig[static 64])
{
	struct mpk_r r;
	uint32_t count, i;
	uint64_t t = 0;
	bool have_sig = false;

	mpk_r_init(&r, p, n);
	mpk_r_map(&r, &count);
	for (i = 0; i < count && mpk_r_error(&r) == 0; i++) {
		const char *k;
		size_t kl;

		if (mpk_r_str(&r, &k, &kl) < 0)
			break;
		if (key_is(k, kl, "t")) {
			mpk_r_uint(&r, &t);
		} else if (key_is(k, kl, "sig")) {
			if (mpk_r_bin_fixed(&r, sig, 64) < 0)
				return ferry_errf(FERRY_EPROTO,
						  "the signature is not a 64-byte binary");
			have_sig = true;
		} else {
			mpk_r_skip(&r);
		}
	}
	if (mpk_r_done(&r) < 0)
		return ferry_errf(FERRY_EPROTO, "malformed signature message: %s",
				  ferry_errmsg(FERRY_EFORMAT));
	if (t != CTL_MSG_SIGNATURE || !have_sig)
		return ferry_errf(FERRY_EPROTO,
				  "expected the manifest's signature (message type %d)",
				  CTL_MSG_SIGNATURE);
	return 0;
}

int ctl_msg_decode(const uint8_t *p, size_t n, struct ctl_msg *out)
{
	struct mpk_r r;
	uint32_t count, i;
	uint64_t t = 0;
	int64_t code = 0;
	bool have_code = false;

	memset(out, 0, sizeof(*out));
	mpk_r_init(&r, p, n);
	mpk_r_map(&r, &count);
	for (i = 0; i < count && mpk_r_error(&r) == 0; i++) {
		const char *k, *s;
		size_t kl, sl, start;

		if (mpk_r_str(&r, &k, &kl) < 0)
			break;
		if (key_is(k, kl, "t")) {
			mpk_r_uint(&r, &t);
		} else if (key_is(k, kl, "k")) {
			if (mpk_r_str(&r, &s, &sl) < 0)
				break;
			for (size_t j = 1; j < ARRAY_SIZE(kinds); j++)
				if (key_is(s, sl, kinds[j].name))
					out->kind = (int)j;
		} else if (key_is(k, kl, "d")) {
			start = mpk_r_offset(&r);
			if (mpk_r_skip(&r) < 0)
				break;
			out->data = p + start;
			out->data_len = mpk_r_offset(&r) - start;
		} else if (key_is(k, kl, "code")) {
			mpk_r_int(&r, &code);
			have_code = true;
		} else if (key_is(k, kl, "msg")) {
			mpk_r_str(&r, &out->msg, &out->msg_len);
		} else {
			mpk_r_skip(&r);
		}
	}
	if (mpk_r_done(&r) < 0)
		return ferry_errf(FERRY_EPROTO, "malformed message from ferryd: %s",
				  ferry_errmsg(FERRY_EFORMAT));
	if (t == CTL_MSG_DATA && out->data != NULL) {
		out->type = CTL_MSG_DATA;
		return 0;
	}
	if (t == CTL_MSG_RESULT && have_code) {
		if (code > 0 || code < INT32_MIN)
			return ferry_errf(FERRY_EPROTO, "ferryd sent the status code %lld",
					  (long long)code);
		out->type = CTL_MSG_RESULT;
		out->code = (int)code;
		if (out->msg == NULL)
			out->msg = "";
		return 0;
	}
	return ferry_errf(FERRY_EPROTO, "ferryd sent a message of type %llu, not data or a result",
			  (unsigned long long)t);
}
