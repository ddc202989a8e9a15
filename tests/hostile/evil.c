/*
 * The hostile peer (evil.h). One connection at a time is driven by
 * conn_run(): TCP connect, the Noise handshake as initiator, the mode's
 * announcements and misdeeds, then a poll loop that answers what the node
 * asks (or not) until the node closes the connection or the hold time runs
 * out. Half-open runs its own loop over many sockets.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ferry/codec.h"
#include "ferry/error.h"
#include "ferry/fcrypto.h"
#include "ferry/index.h"
#include "ferry/manifest.h"
#include "ferry/mpk.h"
#include "ferry/store.h"
#include "ferry/util.h"
#include "ferry/wire.h"

#include "evil.h"

/* Request ids used for data nobody asked for: far from the node's own counter. */
#define EVIL_REQ_BASE 0xf0000000u
/* Bytes queued for the slow writer at most (more would never be sent anyway). */
#define SLOWQ_MAX (4u << 20)
/* Bytes of a message that are kept for replay at most (a PING's frame is 40). */
#define REPLAY_MAX 256
/* Versions of the forged manifests above the real one. */
#define FORGED_BADSIG_DELTA    1000
#define FORGED_UNTRUSTED_DELTA 2000

static const struct {
	const char *name;
	const char *doc;
} modes[] = {
#define EVIL__NAME(e, name, doc) {name, doc},
    EVIL_MODES(EVIL__NAME)
#undef EVIL__NAME
};

int evil_mode_parse(const char *name)
{
	for (int i = 0; i < EVIL__MODES; i++)
		if (strcmp(modes[i].name, name) == 0)
			return i;
	return -1;
}

const char *evil_mode_name(enum evil_mode mode)
{
	return (unsigned)mode < EVIL__MODES ? modes[mode].name : "?";
}

void evil_modes_usage(FILE *f)
{
	for (int i = 0; i < EVIL__MODES; i++)
		fprintf(f, "  %-16s %s\n", modes[i].name, modes[i].doc);
}

void evil_opts_default(struct evil_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->mode = EVIL_HONEST;
	o->host = "127.0.0.1";
	o->count = 64;
	o->repeat = 1;
	o->gap_ms = 200;
	o->hold_ms = 30000;
	o->interval_ms = 3000;
	o->flood_bytes = 4u << 20;
	o->variant = -1;
}

/* The model announced, read once from the store. */
struct model {
	bool loaded;
	struct store *st;
	char name[MANIFEST_NAME_MAX + 1];
	uint64_t version;
	uint8_t *signed_bytes;
	size_t signed_len;
	uint8_t hash[FERRY_ID_LEN];
	struct manifest *m;
	uint8_t (*pieces)[FERRY_ID_LEN];
	uint32_t npieces;
	uint32_t nchunks;
	/* forged-manifest: a newer version with a random signature, one signed by a stranger. */
	uint8_t *badsig, *untrusted;
	size_t badsig_len, untrusted_len;
	uint64_t badsig_version, untrusted_version;
	uint8_t badsig_hash[FERRY_ID_LEN], untrusted_hash[FERRY_ID_LEN];
};

struct evil {
	const struct evil_opts *o;
	struct evil_result *res;
	FILE *out;
	struct model md;
	uint64_t t0, deadline;
	/* replay: the handshake of the first connection. */
	uint8_t msg1[SESSION_HS_MSG1_LEN];
	bool have_msg1;
	uint8_t *msg3;
	size_t msg3_len;
};

struct conn {
	unsigned idx;
	int fd;
	struct nodekey key;
	uint8_t peer_id[NODEKEY_LEN];
	char peer_short[13];
	struct session_tx *tx;
	struct session_rx *rx;
	uint64_t start_ms;
	uint64_t msgs_in, bytes_in;
	bool closed; /* the node closed it */
	/* The sealed bytes of the latest small message, for replay. */
	uint8_t last_frame[REPLAY_MAX];
	size_t last_frame_len;
	/* slow: bytes waiting to be dribbled. */
	bool slow;
	uint8_t *slowq;
	size_t slowq_len, slowq_pos;
	uint64_t slow_next_ms;
	uint32_t evil_req;
	uint64_t ping_nonce; /* our PING awaiting its PONG; 0 = none */
	bool ponged;
};

static void say(struct evil *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(struct evil *e, const char *fmt, ...)
{
	va_list ap;

	fprintf(e->out, "[%6.1f] ", (double)(now_ms() - e->t0) / 1000.0);
	va_start(ap, fmt);
	vfprintf(e->out, fmt, ap);
	va_end(ap);
	fputc('\n', e->out);
	fflush(e->out);
}

static bool stopped(const struct evil *e)
{
	return (e->o->stop != NULL && *e->o->stop) || now_ms() >= e->deadline;
}

static void sleep_ms(struct evil *e, unsigned ms)
{
	uint64_t until = now_ms() + ms;

	while (!stopped(e) && now_ms() < until)
		poll(NULL, 0, 20);
}

/* ---- the model ---- */

static int newest_cb(void *arg, const char *name, uint64_t version, const uint8_t *bytes,
		     size_t len)
{
	uint64_t *v = arg;

	(void)name;
	(void)bytes;
	(void)len;
	*v = version > *v ? version : *v;
	return 0;
}

/* A copy of a stored chunk (or index piece), or NULL. */
static uint8_t *chunk_copy(struct model *md, const uint8_t id[FERRY_ID_LEN], size_t *len)
{
	struct store_rd *rd = NULL;
	const uint8_t *enc;
	uint8_t *copy = NULL;

	if (store_rd_begin(md->st, &rd) != 0)
		return NULL;
	if (store_chunk_get(rd, id, &enc, len) == 0) {
		copy = xmalloc(*len);
		memcpy(copy, enc, *len);
	}
	store_rd_end(rd);
	return copy;
}

static bool is_piece(const struct model *md, const uint8_t id[FERRY_ID_LEN])
{
	for (uint32_t i = 0; i < md->npieces; i++)
		if (memcmp(md->pieces[i], id, FERRY_ID_LEN) == 0)
			return true;
	return false;
}

/* Count the chunk positions: decode every index piece. */
static int model_count(struct model *md)
{
	struct codec_ctx *cc = codec_ctx_new();
	uint8_t *raw = xmalloc(INDEX_PIECE_MAX);
	int rc = 0;

	for (uint32_t i = 0; i < md->npieces && rc == 0; i++) {
		size_t len, rawlen, nrefs;
		uint8_t *enc = chunk_copy(md, md->pieces[i], &len);
		struct chunk_ref *refs = NULL;

		if (enc == NULL) {
			rc = ferry_errf(FERRY_ENOENT,
					"index piece %u of %s@%" PRIu64 " is not in the store", i,
					md->name, md->version);
			break;
		}
		if ((rc = codec_decode(cc, enc, len, raw, INDEX_PIECE_MAX, &rawlen)) == 0 &&
		    (rc = index_decode(raw, rawlen, &refs, &nrefs)) == 0)
			md->nchunks += (uint32_t)nrefs;
		free(refs);
		free(enc);
	}
	free(raw);
	codec_ctx_free(cc);
	return rc;
}

/* A manifest like md's at another version, signed with sig_sk, or with a random signature. */
static int forge(struct model *md, uint64_t version, const uint8_t *sig_sk, uint8_t **out,
		 size_t *outlen, uint8_t hash[FERRY_ID_LEN])
{
	struct manifest m = *md->m;
	uint8_t *body = NULL, sig[FERRY_SIG_LEN];
	size_t blen;
	int rc;

	m.version = version;
	if (sig_sk != NULL)
		fcrypto_sk_to_pk(m.publisher, sig_sk);
	if ((rc = manifest_encode(&m, &body, &blen)) != 0)
		return rc;
	if (sig_sk != NULL)
		rc = manifest_sign(body, blen, sig_sk, sig);
	else
		fcrypto_random(sig, sizeof(sig));
	if (rc == 0 && (rc = manifest_seal(body, blen, sig, out, outlen)) == 0)
		fcrypto_id(hash, *out, *outlen);
	free(body);
	return rc;
}

static int model_load(struct evil *e)
{
	struct model *md = &e->md;
	const struct evil_opts *o = e->o;
	struct store_rd *rd = NULL;
	const uint8_t *bytes, *body;
	size_t len, blen;
	uint8_t sig[FERRY_SIG_LEN];
	int rc;

	if (o->store_dir == NULL)
		return 0;
	if (o->model == NULL)
		return ferry_errf(FERRY_EINVAL, "--store needs --model");
	if ((rc = store_open(o->store_dir, 0, &md->st)) != 0)
		return rc;
	snprintf(md->name, sizeof(md->name), "%s", o->model);
	md->version = o->version;
	if ((rc = store_rd_begin(md->st, &rd)) != 0)
		return rc;
	if (md->version == 0)
		store_manifest_foreach(rd, md->name, newest_cb, &md->version);
	rc = store_manifest_get(rd, md->name, md->version, &bytes, &len);
	if (rc == 0) {
		md->signed_bytes = xmalloc(len);
		memcpy(md->signed_bytes, bytes, len);
		md->signed_len = len;
	}
	store_rd_end(rd);
	if (rc != 0)
		return ferry_errf(FERRY_ENOENT, "%s has no manifest %s@%" PRIu64, o->store_dir,
				  md->name, md->version);
	fcrypto_id(md->hash, md->signed_bytes, md->signed_len);
	/* The store accepted it, so only the body is decoded here (no trust list needed). */
	if ((rc = manifest_envelope(md->signed_bytes, md->signed_len, &body, &blen, sig)) != 0 ||
	    (rc = manifest_decode_body(body, blen, &md->m)) != 0)
		return rc;
	for (uint32_t f = 0; f < md->m->nfiles; f++) {
		const struct manifest_file *mf = &md->m->files[f];

		md->pieces = xreallocarray(md->pieces, md->npieces + mf->npieces + 1, FERRY_ID_LEN);
		memcpy(md->pieces[md->npieces], mf->pieces, (size_t)mf->npieces * FERRY_ID_LEN);
		md->npieces += mf->npieces;
	}
	if ((rc = model_count(md)) != 0)
		return rc;
	if (o->mode == EVIL_FORGED_MANIFEST) {
		uint8_t pk[FERRY_PK_LEN], sk[FERRY_SK_LEN];

		md->badsig_version = md->version + FORGED_BADSIG_DELTA;
		md->untrusted_version = md->version + FORGED_UNTRUSTED_DELTA;
		fcrypto_sign_keypair(pk, sk);
		rc = forge(md, md->badsig_version, NULL, &md->badsig, &md->badsig_len,
			   md->badsig_hash);
		if (rc == 0)
			rc = forge(md, md->untrusted_version, sk, &md->untrusted,
				   &md->untrusted_len, md->untrusted_hash);
		fcrypto_wipe(sk, sizeof(sk));
		if (rc != 0)
			return rc;
	}
	md->loaded = true;
	say(e, "model %s@%" PRIu64 ": %u index pieces, %u chunk positions", md->name, md->version,
	    md->npieces, md->nchunks);
	return 0;
}

static void model_free(struct model *md)
{
	manifest_free(md->m);
	free(md->signed_bytes);
	free(md->pieces);
	free(md->badsig);
	free(md->untrusted);
	store_close(md->st);
}

/* ---- sockets ---- */

static int tcp_connect(struct evil *e, int *out)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
	struct addrinfo *ai = NULL;
	char port[8];
	int fd = -1, rc, one = 1, err = 0;
	socklen_t elen = sizeof(err);
	struct pollfd pfd;

	snprintf(port, sizeof(port), "%u", (unsigned)e->o->port);
	if ((rc = getaddrinfo(e->o->host, port, &hints, &ai)) != 0)
		return ferry_errf(FERRY_EINVAL, "%s: %s", e->o->host, gai_strerror(rc));
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		rc = ferry_errno(errno, "socket");
		goto out;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
		rc = ferry_errno(errno, "connect %s:%s", e->o->host, port);
		goto out;
	}
	pfd = (struct pollfd){.fd = fd, .events = POLLOUT};
	if (poll(&pfd, 1, 5000) != 1) {
		rc = ferry_errf(FERRY_ETIMEDOUT, "connect %s:%s", e->o->host, port);
		goto out;
	}
	getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen);
	if (err != 0) {
		rc = ferry_errno(err, "connect %s:%s", e->o->host, port);
		goto out;
	}
	*out = fd;
	fd = -1;
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	freeaddrinfo(ai);
	return rc;
}

/* Write everything; FERRY_EIO once the node has closed, FERRY_ECANCELED when stopped. */
static int raw_write(struct evil *e, struct conn *c, const void *p, size_t n)
{
	const uint8_t *b = p;

	while (n > 0) {
		ssize_t k = send(c->fd, b, n, MSG_NOSIGNAL);

		if (k > 0) {
			b += k;
			n -= (size_t)k;
			e->res->bytes_out += (uint64_t)k;
			continue;
		}
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			struct pollfd pfd = {.fd = c->fd, .events = POLLOUT};

			if (stopped(e))
				return FERRY_ECANCELED;
			poll(&pfd, 1, 100);
			continue;
		}
		c->closed = true;
		return FERRY_EIO;
	}
	return 0;
}

/*
 * Read what is there within timeout_ms into buf: the count, 0 on timeout,
 * FERRY_EIO once the node has closed.
 */
static ssize_t raw_read(struct evil *e, struct conn *c, uint8_t *buf, size_t cap, int timeout_ms)
{
	struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
	ssize_t k;

	if (poll(&pfd, 1, timeout_ms) <= 0)
		return 0;
	k = recv(c->fd, buf, cap, 0);
	if (k > 0) {
		c->bytes_in += (uint64_t)k;
		e->res->bytes_in += (uint64_t)k;
		return k;
	}
	if (k < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	c->closed = true;
	return FERRY_EIO;
}

/* ---- sending messages ---- */

/* Seal plaintext as one message and write it (or queue it for the slow writer). */
static int send_plain(struct evil *e, struct conn *c, const uint8_t *p, size_t n)
{
	size_t cap = session_sealed_len(n), len;
	uint8_t *out = xmalloc(cap);
	int rc;

	if ((rc = session_seal(c->tx, p, n, out, cap, &len)) != 0)
		goto out;
	if (len <= REPLAY_MAX) {
		memcpy(c->last_frame, out, len);
		c->last_frame_len = len;
	}
	if (c->slow) {
		if (c->slowq_len - c->slowq_pos + len <= SLOWQ_MAX) {
			c->slowq = xrealloc(c->slowq, c->slowq_len + len);
			memcpy(c->slowq + c->slowq_len, out, len);
			c->slowq_len += len;
		}
		goto out;
	}
	rc = raw_write(e, c, out, len);
out:
	free(out);
	return rc;
}

static int send_msg(struct evil *e, struct conn *c, const struct wire_msg *m)
{
	uint8_t *enc = NULL;
	size_t len;
	int rc;

	if ((rc = wire_encode(m, &enc, &len)) != 0) {
		say(e, "conn %u: cannot encode %s: %s", c->idx, wire_name(m->type),
		    ferry_errmsg(rc));
		return rc;
	}
	rc = send_plain(e, c, enc, len);
	free(enc);
	return rc;
}

/* Take a writer's bytes and send them as one message. */
static int send_mpk(struct evil *e, struct conn *c, struct mpk_w *w)
{
	uint8_t *p = NULL;
	size_t n;
	int rc;

	if ((rc = mpk_w_take(w, &p, &n)) != 0)
		return rc;
	rc = send_plain(e, c, p, n);
	free(p);
	return rc;
}

static int send_ping(struct evil *e, struct conn *c, uint64_t nonce)
{
	struct wire_msg m = {.type = WIRE_PING};

	m.ping.nonce = nonce;
	m.ping.stamp = now_ms();
	c->ping_nonce = nonce;
	c->ponged = false;
	return send_msg(e, c, &m);
}

static int send_manifest(struct evil *e, struct conn *c, const uint8_t *bytes, size_t len)
{
	struct wire_msg m = {.type = WIRE_MANIFEST};

	m.manifest.bytes = bytes;
	m.manifest.len = len;
	return send_msg(e, c, &m);
}

static int send_digest(struct evil *e, struct conn *c, uint64_t version,
		       const uint8_t hash[FERRY_ID_LEN])
{
	struct wire_digest_entry ent = {0};
	struct wire_msg m = {.type = WIRE_DIGEST};

	snprintf(ent.name, sizeof(ent.name), "%s", e->md.name);
	ent.version = version;
	memcpy(ent.hash, hash, FERRY_ID_LEN);
	m.digest.n = 1;
	m.digest.entries = &ent;
	return send_msg(e, c, &m);
}

static int send_have(struct evil *e, struct conn *c, uint64_t version)
{
	struct wire_msg m = {.type = WIRE_HAVE};

	snprintf(m.have.name, sizeof(m.have.name), "%s", e->md.name);
	m.have.version = version;
	m.have.nchunks = e->md.nchunks;
	m.have.complete = true;
	return send_msg(e, c, &m);
}

/* CHUNK_DATA for enc[from..total) in pieces; total may differ from len (more-bytes). */
/* Bytes [from, to) of a chunk of total bytes. */
static int send_chunk_part(struct evil *e, struct conn *c, uint32_t req, const uint8_t *enc,
			   size_t total, size_t from, size_t to)
{
	int rc = 0;

	for (size_t off = from; off < to && rc == 0; off += WIRE_CHUNK_DATA_MAX) {
		struct wire_msg m = {.type = WIRE_CHUNK_DATA};

		m.chunk_data.req = req;
		m.chunk_data.offset = (uint32_t)off;
		m.chunk_data.total = (uint32_t)total;
		m.chunk_data.data = enc + off;
		m.chunk_data.len = MIN((size_t)WIRE_CHUNK_DATA_MAX, to - off);
		rc = send_msg(e, c, &m);
	}
	return rc;
}

static int send_chunk(struct evil *e, struct conn *c, uint32_t req, const uint8_t *enc,
		      size_t total, size_t from)
{
	return send_chunk_part(e, c, req, enc, total, from, total);
}

/* What an honest node says once it is up: its newest manifest and that it holds all of it. */
static int announce(struct evil *e, struct conn *c)
{
	struct model *md = &e->md;
	int rc;

	if (!md->loaded)
		return 0;
	if (e->o->mode == EVIL_FORGED_MANIFEST) {
		say(e,
		    "conn %u: pushing %s@%" PRIu64 " with a random signature and %s@%" PRIu64
		    " signed by an untrusted key",
		    c->idx, md->name, md->badsig_version, md->name, md->untrusted_version);
		/* The untrusted one first: the forgery makes the node drop the connection. */
		if ((rc = send_digest(e, c, md->untrusted_version, md->untrusted_hash)) != 0 ||
		    (rc = send_manifest(e, c, md->untrusted, md->untrusted_len)) != 0 ||
		    (rc = send_manifest(e, c, md->badsig, md->badsig_len)) != 0 ||
		    (rc = send_have(e, c, md->badsig_version)) != 0)
			return rc;
		return send_have(e, c, md->untrusted_version);
	}
	if ((rc = send_digest(e, c, md->version, md->hash)) != 0 ||
	    (rc = send_manifest(e, c, md->signed_bytes, md->signed_len)) != 0)
		return rc;
	return send_have(e, c, md->version);
}

/* ---- answering ---- */

static int on_chunk_req(struct evil *e, struct conn *c, const struct wire_chunk_req *q)
{
	struct model *md = &e->md;
	struct wire_msg none = {.type = WIRE_CHUNK_NONE};
	uint8_t *enc;
	size_t len;
	bool piece;
	int rc = 0;

	e->res->reqs++;
	{
		char hex[13];

		say(e, "conn %u: CHUNK_REQ %u for %s %s at %u", c->idx, q->req,
		    is_piece(md, q->id) ? "index piece" : "chunk", hex_encode(hex, q->id, 6),
		    q->offset);
	}
	if (e->o->mode == EVIL_SILENT)
		return 0;
	none.chunk_none.req = q->req;
	if (!md->loaded || (enc = chunk_copy(md, q->id, &len)) == NULL)
		return send_msg(e, c, &none);
	piece = is_piece(md, q->id);
	if (q->offset >= len) {
		rc = send_msg(e, c, &none);
		goto out;
	}
	if (piece) {
		rc = send_chunk(e, c, q->req, enc, len, q->offset);
		goto out;
	}
	switch (e->o->mode) {
	case EVIL_WRONG_BYTES:
		/* The length stays right, so only the check against the id can catch it. */
		enc[len - 1] ^= 0x5a;
		e->res->bad_answers++;
		rc = send_chunk(e, c, q->req, enc, len, q->offset);
		break;
	case EVIL_MORE_BYTES: {
		uint8_t *junk = xcalloc(1, WIRE_CHUNK_DATA_MAX);
		uint8_t *more = xmalloc(len + 1);
		size_t sent = 0;

		/* Data for requests never made: the node must drop it without keeping it. */
		while (sent < e->o->flood_bytes && rc == 0) {
			rc = send_chunk(e, c, EVIL_REQ_BASE + c->evil_req++, junk,
					WIRE_CHUNK_DATA_MAX, 0);
			sent += WIRE_CHUNK_DATA_MAX;
		}
		/* Then the chunk and one byte more than it has. */
		memcpy(more, enc, len);
		more[len] = 0;
		if (rc == 0) {
			e->res->bad_answers++;
			rc = send_chunk(e, c, q->req, more, len + 1, q->offset);
		}
		free(more);
		free(junk);
		break;
	}
	case EVIL_STALL:
		if (c->idx == 0 && q->offset < len / 2)
			rc = send_chunk_part(e, c, q->req, enc, len, q->offset, len / 2);
		break;
	default:
		rc = send_chunk(e, c, q->req, enc, len, q->offset);
		break;
	}
out:
	free(enc);
	return rc;
}

static int on_manifest_req(struct evil *e, struct conn *c, const struct wire_manifest_req *q)
{
	struct model *md = &e->md;

	e->res->manifest_reqs++;
	if (!md->loaded || e->o->mode == EVIL_SILENT || strcmp(q->name, md->name) != 0)
		return 0;
	if (md->badsig != NULL && q->version == md->badsig_version)
		return send_manifest(e, c, md->badsig, md->badsig_len);
	if (md->untrusted != NULL && (q->version == md->untrusted_version || q->version == 0))
		return send_manifest(e, c, md->untrusted, md->untrusted_len);
	if (q->version == 0 || q->version == md->version)
		return send_manifest(e, c, md->signed_bytes, md->signed_len);
	return 0;
}

static int on_message(struct evil *e, struct conn *c, const struct wire_msg *m)
{
	switch (m->type) {
	case WIRE_PING: {
		struct wire_msg pong = {.type = WIRE_PONG};

		e->res->pings++;
		if (e->o->mode == EVIL_SILENT)
			return 0;
		pong.pong = m->ping;
		return send_msg(e, c, &pong);
	}
	case WIRE_PONG:
		e->res->pongs++;
		if (m->pong.nonce == c->ping_nonce)
			c->ponged = true;
		return 0;
	case WIRE_MANIFEST_REQ:
		return on_manifest_req(e, c, &m->manifest_req);
	case WIRE_CHUNK_REQ:
		return on_chunk_req(e, c, &m->chunk_req);
	case WIRE_CANCEL:
		say(e, "conn %u: CANCEL %u", c->idx, m->cancel.req);
		return 0;
	default:
		return 0;
	}
}

/* Decrypt and handle what arrived. A negative code if the node broke the framing. */
static int feed(struct evil *e, struct conn *c, const uint8_t *p, size_t n)
{
	while (n > 0) {
		const uint8_t *msg;
		size_t used, len;
		struct wire_msg m = {0};
		int rc = session_rx_feed(c->rx, p, n, &used, &msg, &len);

		if (rc < 0) {
			say(e, "conn %u: the node's frames do not open: %s", c->idx,
			    ferry_errmsg(rc));
			return rc;
		}
		p += used;
		n -= used;
		if (rc == 0)
			break;
		c->msgs_in++;
		if (wire_decode(msg, len, &m) == 0)
			rc = on_message(e, c, &m);
		else
			rc = 0; /* an unknown type from a newer node: skipped */
		wire_msg_clear(&m);
		if (rc == FERRY_EIO || rc == FERRY_ECANCELED)
			return rc;
	}
	return 0;
}

/* Write the next byte of the slow queue if its time has come. */
static int slow_tick(struct evil *e, struct conn *c)
{
	uint64_t now = now_ms();
	int rc;

	if (c->slowq_pos >= c->slowq_len || now < c->slow_next_ms)
		return 0;
	c->slow_next_ms = now + e->o->interval_ms;
	if ((rc = raw_write(e, c, c->slowq + c->slowq_pos, 1)) == 0)
		c->slowq_pos++;
	return rc;
}

/*
 * Answer the node until it closes (FERRY_EIO), the time runs out (0), or
 * until stop_on_pong and our PING was answered (1).
 */
static int conn_loop(struct evil *e, struct conn *c, uint64_t until, bool stop_on_pong)
{
	uint8_t *buf = xmalloc(SESSION_FRAME_MAX + SESSION_FRAME_OVERHEAD);
	int rc = 0;

	while (rc == 0) {
		uint64_t now = now_ms();
		int timeout = 100;
		ssize_t k;

		if (stop_on_pong && c->ponged) {
			rc = 1;
			break;
		}
		if (stopped(e) || now >= until)
			break;
		if (c->slow && (rc = slow_tick(e, c)) != 0)
			break;
		k = raw_read(e, c, buf, SESSION_FRAME_MAX + SESSION_FRAME_OVERHEAD, timeout);
		if (k < 0)
			rc = (int)k;
		else if (k > 0)
			rc = feed(e, c, buf, (size_t)k);
	}
	free(buf);
	return rc;
}

/* ---- the handshake ---- */

static int hello_bytes(struct evil *e, uint8_t **out, size_t *len)
{
	struct wire_msg m = {.type = WIRE_HELLO};

	m.hello.version_min = WIRE_VERSION_MIN;
	m.hello.version_max = WIRE_VERSION;
	snprintf(m.hello.site, sizeof(m.hello.site), "%s", e->o->site ? e->o->site : "");
	m.hello.listen_port = 0; /* never dialed back: the node only meets it when it calls */
	snprintf(m.hello.software, sizeof(m.hello.software), "ferry evil_peer %s",
		 evil_mode_name(e->o->mode));
	m.hello.uptime_s = (now_ms() - e->t0) / 1000u;
	return wire_encode(&m, out, len);
}

/* Write a handshake message, byte by byte for slow --slow-hs. */
static int hs_send(struct evil *e, struct conn *c, const uint8_t *p, size_t n)
{
	if (e->o->mode != EVIL_SLOW || !e->o->slow_hs)
		return raw_write(e, c, p, n);
	say(e, "conn %u: dribbling handshake message 1, one byte every %u ms", c->idx,
	    e->o->interval_ms);
	for (size_t i = 0; i < n; i++) {
		int rc = raw_write(e, c, p + i, 1);
		uint8_t b;

		if (rc != 0)
			return rc;
		if (i + 1 < n) {
			uint64_t until = now_ms() + e->o->interval_ms;

			/* Watch for the node closing while we dribble. */
			while (now_ms() < until && !stopped(e))
				if (raw_read(e, c, &b, 1, 50) < 0)
					return FERRY_EIO;
			if (stopped(e))
				return FERRY_ECANCELED;
		}
	}
	return 0;
}

/*
 * Run the handshake as initiator with netkey. 0 once message 3 is written
 * and the transport keys are made; FERRY_EIO if the node closed it.
 */
static int handshake(struct evil *e, struct conn *c, const uint8_t netkey[SESSION_KEY_LEN])
{
	struct session_hs *hs =
	    session_hs_new(SESSION_INITIATOR, &c->key, netkey, (uint64_t)time(NULL));
	uint8_t *buf = xmalloc(SESSION_HS_MSG_MAX * 2), *payload = xmalloc(SESSION_HELLO_MAX);
	uint8_t *hello = NULL;
	size_t have = 0, used = 0, plen, len, hlen;
	struct session_keys keys;
	uint64_t until = now_ms() + 15000;
	int rc;

	if ((rc = session_hs_write(hs, NULL, 0, buf, SESSION_HS_MSG_MAX, &len)) != 0)
		goto out;
	if (!e->have_msg1 && len == sizeof(e->msg1)) {
		memcpy(e->msg1, buf, len);
		e->have_msg1 = true;
	}
	if ((rc = hs_send(e, c, buf, len)) != 0)
		goto out;
	/* Message 2. */
	for (;;) {
		ssize_t k = raw_read(e, c, buf + have, SESSION_HS_MSG_MAX * 2 - have, 100);

		if (k < 0) {
			rc = (int)k;
			goto out;
		}
		have += (size_t)k;
		rc = session_hs_read(hs, buf, have, &used, payload, SESSION_HELLO_MAX, &plen);
		if (rc != FERRY_EAGAIN)
			break;
		if (stopped(e) || now_ms() >= until) {
			rc = FERRY_ETIMEDOUT;
			goto out;
		}
	}
	if (rc != 0) {
		say(e, "conn %u: message 2 does not authenticate: %s", c->idx, ferry_errmsg(rc));
		goto out;
	}
	memcpy(c->peer_id, session_hs_remote_static(hs), NODEKEY_LEN);
	hex_encode(c->peer_short, c->peer_id, 6);
	/* Message 3 with our hello. */
	if ((rc = hello_bytes(e, &hello, &hlen)) != 0 ||
	    (rc = session_hs_write(hs, hello, hlen, buf, SESSION_HS_MSG_MAX, &len)) != 0)
		goto out;
	if (e->msg3 == NULL) {
		e->msg3 = xmalloc(len);
		memcpy(e->msg3, buf, len);
		e->msg3_len = len;
	}
	if ((rc = raw_write(e, c, buf, len)) != 0 || (rc = session_hs_split(hs, &keys)) != 0)
		goto out;
	c->tx = session_tx_new(keys.tx);
	c->rx = session_rx_new(keys.rx, SESSION_MSG_MAX_DEFAULT);
	session_keys_wipe(&keys);
	/* The responder writes nothing between message 2 and 3, so nothing is left over. */
	rc = 0;
out:
	free(hello);
	free(payload);
	free(buf);
	session_hs_free(hs);
	return rc;
}

/* ---- the modes that act once up ---- */

/* The variant of a connection: --variant, or cycling through count of them. */
static unsigned variant_of(const struct evil *e, const struct conn *c, unsigned count)
{
	return e->o->variant >= 0 ? (unsigned)e->o->variant : c->idx % count;
}

/* Read and drop whatever comes, without decrypting (we are inside a message). */
static int drain(struct evil *e, struct conn *c, uint64_t until)
{
	uint8_t buf[4096];

	while (now_ms() < until && !stopped(e))
		if (raw_read(e, c, buf, sizeof(buf), 100) < 0)
			return FERRY_EIO;
	return 0;
}

/*
 * Frame headers past the frame cap (variants 0 and 1), a message of valid
 * frames past the message cap (2), or one held just under the cap and kept
 * alive with a 1-byte frame every 20 s (3, only with --variant: the node
 * holds the whole message in memory while it lasts).
 */
static int do_oversize(struct evil *e, struct conn *c)
{
	unsigned variant = variant_of(e, c, EVIL_OVERSIZE_VARIANTS);
	size_t flen = SESSION_FRAME_HDR + SESSION_FRAME_MAX + SESSION_TAG_LEN;
	uint64_t sent = 0, cap = (uint64_t)WIRE_MSG_MAX + 4 * SESSION_FRAME_MAX;
	uint8_t *frame;
	int rc = 0;

	if (variant < 2) {
		uint32_t h = variant == 0 ? 0x7fffffffu : 0xffffffffu;
		uint8_t hdr[4] = {(uint8_t)(h >> 24), (uint8_t)(h >> 16), (uint8_t)(h >> 8),
				  (uint8_t)h};
		uint8_t junk[64] = {0};

		say(e, "conn %u: oversize: a frame header declaring 0x%08x", c->idx, h);
		if ((rc = raw_write(e, c, hdr, sizeof(hdr))) != 0)
			return rc;
		return raw_write(e, c, junk, sizeof(junk));
	}
	if (variant == 3)
		cap = WIRE_MSG_MAX - 2 * SESSION_FRAME_MAX;
	say(e, "conn %u: oversize: %" PRIu64 " bytes of MORE frames (the message cap is %zu)",
	    c->idx, cap, (size_t)WIRE_MSG_MAX);
	frame = xcalloc(1, flen);
	while (sent < cap && rc == 0) {
		memset(frame + SESSION_FRAME_HDR, 0x42, SESSION_FRAME_MAX);
		if ((rc = session_seal_frame_inplace(c->tx, frame, SESSION_FRAME_MAX, true)) != 0)
			break;
		rc = raw_write(e, c, frame, flen);
		sent += SESSION_FRAME_MAX;
	}
	say(e, "conn %u: oversize: %" PRIu64 " bytes of one message written", c->idx, sent);
	while (variant == 3 && rc == 0 && !stopped(e) && now_ms() < c->start_ms + e->o->hold_ms) {
		/* Something every 20 s, so the node never sees the connection as dead. */
		if ((rc = drain(e, c, MIN(now_ms() + 20000, c->start_ms + e->o->hold_ms))) != 0)
			break;
		frame[SESSION_FRAME_HDR] = 0x42;
		if ((rc = session_seal_frame_inplace(c->tx, frame, 1, true)) == 0)
			rc = raw_write(e, c, frame, SESSION_FRAME_OVERHEAD + 1);
	}
	free(frame);
	return rc == FERRY_EIO && variant != 3 ? 0 : rc;
}

/* Malformed message number variant (the plaintext of one sealed message). */
static void garbage(unsigned variant, struct mpk_w *w, const char **what)
{
	static const uint8_t zero_id[WIRE_ID_LEN];

	switch (variant) {
	case 0:
		*what = "the never-used msgpack byte 0xc1";
		mpk_w_nil(w); /* replaced below */
		break;
	case 1:
		*what = "an integer instead of an array";
		mpk_w_uint(w, WIRE_CHUNK_REQ);
		break;
	case 2:
		*what = "an array declaring 2^32-1 elements";
		break;
	case 3:
		*what = "a CHUNK_REQ followed by an element nested 100000 arrays deep";
		mpk_w_array(w, 5);
		mpk_w_uint(w, WIRE_CHUNK_REQ);
		mpk_w_uint(w, 1);
		mpk_w_bin(w, zero_id, sizeof(zero_id));
		mpk_w_uint(w, 0);
		for (int i = 0; i < 100000; i++)
			mpk_w_array(w, 1);
		mpk_w_nil(w);
		break;
	case 4:
		*what = "a CHUNK_REQ with fields of the wrong types";
		mpk_w_array(w, 4);
		mpk_w_uint(w, WIRE_CHUNK_REQ);
		mpk_w_cstr(w, "req");
		mpk_w_cstr(w, "id");
		mpk_w_int(w, -1);
		break;
	case 5:
		*what = "a CHUNK_DATA whose bin declares 2^32-1 bytes";
		break;
	case 6:
		*what = "a HELLO after the handshake";
		mpk_w_array(w, 7);
		mpk_w_uint(w, WIRE_HELLO);
		mpk_w_uint(w, WIRE_VERSION_MIN);
		mpk_w_uint(w, WIRE_VERSION);
		mpk_w_cstr(w, "");
		mpk_w_uint(w, 0);
		mpk_w_cstr(w, "evil");
		mpk_w_uint(w, 0);
		break;
	case 7:
		*what = "a CHUNK_DATA running past its total";
		mpk_w_array(w, 5);
		mpk_w_uint(w, WIRE_CHUNK_DATA);
		mpk_w_uint(w, 1);
		mpk_w_uint(w, 100);
		mpk_w_uint(w, 101);
		mpk_w_bin(w, zero_id, 32);
		break;
	case 8:
		*what = "an empty message";
		break;
	case 9:
		*what = "type 0";
		mpk_w_array(w, 1);
		mpk_w_uint(w, 0);
		break;
	case 10:
		*what = "a PING followed by a stray byte";
		mpk_w_array(w, 3);
		mpk_w_uint(w, WIRE_PING);
		mpk_w_uint(w, 1);
		mpk_w_uint(w, 2);
		mpk_w_nil(w); /* after the array: the stray byte */
		break;
	default:
		*what = "a DIGEST of 1025 entries (the cap is 1024)";
		mpk_w_array(w, 3);
		mpk_w_uint(w, WIRE_DIGEST);
		mpk_w_bool(w, false);
		mpk_w_array(w, WIRE_DIGEST_MAX + 1);
		for (unsigned i = 0; i <= WIRE_DIGEST_MAX; i++) {
			mpk_w_array(w, 3);
			mpk_w_cstr(w, "m");
			mpk_w_uint(w, i + 1);
			mpk_w_bin(w, zero_id, sizeof(zero_id));
		}
		break;
	}
}

static int do_garbage(struct evil *e, struct conn *c)
{
	unsigned variant = variant_of(e, c, EVIL_GARBAGE_VARIANTS);
	struct mpk_w w;
	uint8_t *p = NULL;
	size_t n = 0;
	const char *what = "";
	int rc;

	/* Unknown types first: a later version's optional messages, to be skipped. */
	for (unsigned i = 0; i < 100; i++) {
		mpk_w_init(&w);
		mpk_w_array(&w, 3);
		mpk_w_uint(&w, 200 + i % 50);
		mpk_w_cstr(&w, "from a later version");
		mpk_w_uint(&w, i);
		if ((rc = send_mpk(e, c, &w)) != 0)
			return rc;
	}
	if ((rc = send_ping(e, c, 0x600d)) != 0)
		return rc;
	rc = conn_loop(e, c, now_ms() + 5000, true);
	if (rc < 0)
		return rc;
	say(e, "conn %u: garbage: 100 messages of unknown types, then %s", c->idx,
	    rc == 1 ? "PONG received: still up" : "no PONG within 5 s");
	mpk_w_init(&w);
	garbage(variant, &w, &what);
	if ((rc = mpk_w_take(&w, &p, &n)) != 0)
		return rc;
	if (variant == 0) {
		p[0] = 0xc1;
	} else if (variant == 2) {
		static const uint8_t big[] = {0xdd, 0xff, 0xff, 0xff, 0xff, 0x07, 0x01};

		free(p);
		p = xmalloc(sizeof(big));
		memcpy(p, big, sizeof(big));
		n = sizeof(big);
	} else if (variant == 5) {
		static const uint8_t big[] = {0x95, 0x08, 0x01, 0x00, 0x0a, 0xc6, 0xff,
					      0xff, 0xff, 0xff, 0x00, 0x00, 0x00};

		free(p);
		p = xmalloc(sizeof(big));
		memcpy(p, big, sizeof(big));
		n = sizeof(big);
	}
	say(e, "conn %u: garbage: sending %s (%zu bytes)", c->idx, what, n);
	rc = send_plain(e, c, p, n);
	free(p);
	return rc;
}

/* Re-send the sealed bytes of the PING just sent: the nonce no longer matches. */
static int do_replay_frame(struct evil *e, struct conn *c)
{
	uint8_t frame[REPLAY_MAX];
	size_t len;
	int rc;

	if ((rc = send_ping(e, c, 0x7e9)) != 0)
		return rc;
	memcpy(frame, c->last_frame, c->last_frame_len);
	len = c->last_frame_len;
	rc = conn_loop(e, c, now_ms() + 5000, true);
	if (rc < 0)
		return rc;
	say(e, "conn %u: replay: PING %s; re-sending its %zu-byte frame", c->idx,
	    rc == 1 ? "answered" : "not answered within 5 s", len);
	return raw_write(e, c, frame, len);
}

/* ---- one connection ---- */

static void conn_free(struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	session_tx_free(c->tx);
	session_rx_free(c->rx);
	free(c->slowq);
	nodekey_wipe(&c->key);
}

/* The end of a connection that had completed its handshake. */
static void conn_outcome(struct evil *e, struct conn *c, int rc)
{
	double secs = (double)(now_ms() - c->start_ms) / 1000.0;

	if (rc == FERRY_EIO && c->msgs_in == 0) {
		e->res->refused++;
		say(e,
		    "conn %u: refused after the handshake: closed before any message "
		    "(not allowed: banned?)",
		    c->idx);
	} else if (rc == FERRY_EIO) {
		e->res->dropped++;
		say(e, "conn %u: dropped by the node after %.1f s (%" PRIu64 " messages in)",
		    c->idx, secs, c->msgs_in);
	} else if (rc == 0 || rc == FERRY_ECANCELED || rc == 1) {
		e->res->survived++;
		say(e, "conn %u: still up after %.1f s (%" PRIu64 " messages in)", c->idx, secs,
		    c->msgs_in);
	} else {
		say(e, "conn %u: ended after %.1f s: %s", c->idx, secs, ferry_errmsg(rc));
	}
}

/* A replay of the first connection's handshake messages on a new connection. */
static int replay_handshake(struct evil *e, struct conn *c)
{
	uint8_t buf[SESSION_HS_MSG_MAX];
	uint64_t until = now_ms() + 3000;
	size_t got = 0;
	ssize_t k = 0;
	int rc;

	say(e, "conn %u: replay: the first connection's message 1", c->idx);
	if ((rc = raw_write(e, c, e->msg1, sizeof(e->msg1))) != 0)
		return rc;
	while (now_ms() < until && !stopped(e) && got < SESSION_HS_MSG2_MIN) {
		k = raw_read(e, c, buf, sizeof(buf), 100);
		if (k < 0)
			break;
		got += (size_t)k;
	}
	if (got > 0)
		e->res->replay_msg2++;
	say(e, "conn %u: replay: %zu bytes back; now the first connection's message 3", c->idx,
	    got);
	if (k >= 0 && (rc = raw_write(e, c, e->msg3, e->msg3_len)) != 0)
		return rc;
	until = now_ms() + e->o->hold_ms;
	while (now_ms() < until && !stopped(e))
		if (raw_read(e, c, buf, sizeof(buf), 100) < 0)
			return FERRY_EIO;
	return 0;
}

static int conn_run(struct evil *e, unsigned idx)
{
	const struct evil_opts *o = e->o;
	struct conn c = {.idx = idx, .fd = -1};
	uint8_t netkey[SESSION_KEY_LEN];
	char ours[13];
	int rc;

	c.key = o->key;
	if (o->fresh_key)
		nodekey_generate(&c.key);
	memcpy(netkey, o->netkey, sizeof(netkey));
	if (o->mode == EVIL_WRONG_KEY)
		fcrypto_random(netkey, sizeof(netkey));
	e->res->conns++;
	if ((rc = tcp_connect(e, &c.fd)) != 0) {
		e->res->connect_failed++;
		say(e, "conn %u: %s", idx, ferry_errmsg(rc));
		goto out;
	}
	c.start_ms = now_ms();
	if (o->mode == EVIL_REPLAY && e->have_msg1 && e->msg3 != NULL) {
		rc = replay_handshake(e, &c);
		if (rc == FERRY_EIO) {
			e->res->hs_closed++;
			say(e, "conn %u: closed by the node during the replayed handshake", idx);
		} else {
			say(e, "conn %u: the replayed handshake was not closed within the hold",
			    idx);
		}
		rc = 0;
		goto out;
	}
	rc = handshake(e, &c, netkey);
	if (rc != 0) {
		if (rc == FERRY_EIO)
			e->res->hs_closed++;
		if (rc == FERRY_EIO && c.bytes_in == 0)
			e->res->silent_close++;
		say(e, "conn %u: handshake ended after %.1f s with %" PRIu64 " bytes received: %s",
		    idx, (double)(now_ms() - c.start_ms) / 1000.0, c.bytes_in,
		    rc == FERRY_EIO ? "closed by the node" : ferry_errmsg(rc));
		rc = 0;
		goto out;
	}
	e->res->up++;
	hex_encode(ours, c.key.pk, 6);
	say(e, "conn %u: up, peer %s, as %s, our id %s", idx, c.peer_short, evil_mode_name(o->mode),
	    ours);
	rc = announce(e, &c);
	if (rc == 0 && o->mode == EVIL_SLOW) {
		c.slow = true;
		say(e, "conn %u: from now on one byte every %u ms", idx, o->interval_ms);
	}
	if (rc == 0 && o->mode == EVIL_OVERSIZE)
		rc = do_oversize(e, &c);
	if (rc == 0 && o->mode == EVIL_GARBAGE_MSGS)
		rc = do_garbage(e, &c);
	if (rc == 0 && o->mode == EVIL_REPLAY)
		rc = do_replay_frame(e, &c);
	if (rc == 0)
		rc = conn_loop(e, &c, c.start_ms + o->hold_ms, false);
	conn_outcome(e, &c, rc);
	rc = 0;
out:
	conn_free(&c);
	return rc;
}

/* ---- half-open ---- */

/*
 * Poll the half-open sockets for timeout_ms: count answers (there must be
 * none) and closes, as "at once" (within a second of the connect, which
 * only the cap on unauthenticated connections does) or later.
 */
static void ho_poll(struct evil *e, struct pollfd *pfd, const uint64_t *opened, unsigned n,
		    int timeout_ms, unsigned *live, unsigned *fast, unsigned *later)
{
	uint8_t buf[256];

	if (poll(pfd, n, timeout_ms) <= 0)
		return;
	for (unsigned i = 0; i < n; i++) {
		ssize_t k;

		if (pfd[i].fd < 0 || pfd[i].revents == 0)
			continue;
		k = recv(pfd[i].fd, buf, sizeof(buf), 0);
		if (k > 0) {
			e->res->ho_answered++;
			e->res->bytes_in += (uint64_t)k;
			continue;
		}
		if (k < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (now_ms() - opened[i] < 1000)
			(*fast)++;
		else
			(*later)++;
		close(pfd[i].fd);
		pfd[i].fd = -1;
		(*live)--;
	}
}

static int half_open(struct evil *e, unsigned round)
{
	const struct evil_opts *o = e->o;
	unsigned n = o->count;
	struct pollfd *pfd = xcalloc(n, sizeof(*pfd));
	uint64_t *opened = xcalloc(n, sizeof(*opened));
	uint8_t msg1[SESSION_HS_MSG1_LEN];
	size_t len;
	unsigned live = 0, partial = 0, failed = 0, fast = 0, later = 0;
	uint64_t until;
	struct session_hs *hs;

	/* Part of a genuine message 1: a node must wait for the rest, up to its deadline. */
	hs = session_hs_new(SESSION_INITIATOR, &o->key, o->netkey, (uint64_t)time(NULL));
	session_hs_write(hs, NULL, 0, msg1, sizeof(msg1), &len);
	session_hs_free(hs);
	for (unsigned i = 0; i < n; i++)
		pfd[i] = (struct pollfd){.fd = -1, .events = POLLIN};
	for (unsigned i = 0; i < n && !stopped(e); i++) {
		struct conn c = {.idx = i, .fd = -1};

		e->res->conns++;
		if (tcp_connect(e, &c.fd) != 0) {
			e->res->connect_failed++;
			failed++;
			continue;
		}
		opened[i] = now_ms();
		if (i % 2 == 1) {
			raw_write(e, &c, msg1, 30);
			partial++;
		}
		pfd[i].fd = c.fd;
		live++;
		/* Closes while connecting the rest count at their own time. */
		ho_poll(e, pfd, opened, i + 1, 0, &live, &fast, &later);
	}
	say(e,
	    "half-open round %u: %u connections made (%u with 30 bytes of message 1), "
	    "%u failed, %u already closed",
	    round, n - failed, partial, failed, fast + later);
	until = now_ms() + o->hold_ms;
	while (live > 0 && now_ms() < until && !stopped(e))
		ho_poll(e, pfd, opened, n, 100, &live, &fast, &later);
	e->res->ho_closed_fast += fast;
	e->res->ho_closed_deadline += later;
	e->res->ho_open += live;
	say(e,
	    "half-open round %u: closed by the node at once %u, later %u; still open %u; "
	    "answered %u",
	    round, fast, later, live, e->res->ho_answered);
	for (unsigned i = 0; i < n; i++)
		if (pfd[i].fd >= 0)
			close(pfd[i].fd);
	free(opened);
	free(pfd);
	return 0;
}

/* ---- the run ---- */

int evil_run(const struct evil_opts *o, struct evil_result *res)
{
	struct evil e = {.o = o, .res = res, .out = o->out ? o->out : stdout};
	int rc;

	memset(res, 0, sizeof(*res));
	e.t0 = now_ms();
	e.deadline = o->duration_ms ? e.t0 + o->duration_ms : UINT64_MAX;
	if ((rc = fcrypto_init()) != 0 || (rc = model_load(&e)) != 0)
		goto out;
	if (!o->fresh_key) {
		char hex[NODEKEY_ID_HEX_LEN];

		say(&e, "our node id %s", nodekey_id_hex(hex, o->key.pk));
	}
	if (o->store_dir == NULL && (o->mode == EVIL_WRONG_BYTES || o->mode == EVIL_MORE_BYTES ||
				     o->mode == EVIL_FORGED_MANIFEST))
		say(&e, "note: no --store: nothing to announce, so the node will ask for nothing");
	for (unsigned i = 0; i < MAX(o->repeat, 1u) && !stopped(&e); i++) {
		if (i > 0)
			sleep_ms(&e, o->gap_ms);
		if (o->mode == EVIL_HALF_OPEN)
			rc = half_open(&e, i);
		else
			rc = conn_run(&e, i);
		if (rc != 0)
			break;
		if (i == 0 && res->connect_failed == res->conns && o->mode != EVIL_HALF_OPEN) {
			rc = ferry_errf(FERRY_ECONNREFUSED, "cannot connect to %s:%u", o->host,
					(unsigned)o->port);
			break;
		}
	}
	say(&e,
	    "summary: mode=%s conns=%u connect_failed=%u up=%u hs_closed=%u refused=%u "
	    "dropped=%u survived=%u reqs=%u bad_answers=%u pings=%u pongs=%u manifest_reqs=%u "
	    "silent_close=%u replay_msg2=%u ho_closed_fast=%u ho_closed_deadline=%u ho_open=%u "
	    "ho_answered=%u bytes_in=%" PRIu64 " bytes_out=%" PRIu64,
	    evil_mode_name(o->mode), res->conns, res->connect_failed, res->up, res->hs_closed,
	    res->refused, res->dropped, res->survived, res->reqs, res->bad_answers, res->pings,
	    res->pongs, res->manifest_reqs, res->silent_close, res->replay_msg2,
	    res->ho_closed_fast, res->ho_closed_deadline, res->ho_open, res->ho_answered,
	    res->bytes_in, res->bytes_out);
out:
	if (rc != 0)
		say(&e, "error: %s", ferry_errmsg(rc));
	model_free(&e.md);
	free(e.msg3);
	return rc;
}
