/*
 * ferryd's control server (include/ferry/ctl.h, docs/protocol.md "Control
 * protocol"): a Unix stream socket on which ferryctl sends one request per
 * connection and reads data messages and one result.
 *
 * Why not uv_pipe_t: requests may carry a directory descriptor
 * (SCM_RIGHTS), and libuv hands received descriptors out only on IPC pipes,
 * only as TCP or pipe handles (uv_accept), never as a plain directory fd.
 * So the server makes its own listening socket and watches it and each
 * client with uv_poll, doing accept4/recvmsg/send itself. That also lets it
 * bound every read by the protocol's limits and send with MSG_NOSIGNAL, so a
 * client that hangs up is an EPIPE for one connection, never a signal.
 *
 * A connection's life:
 *
 *   REQUEST --(request read, dispatched)--> BUSY   (node op on the worker pool)
 *      |                                    STREAM (fetch --wait: progress ticks)
 *      |                                    SIGNATURE (publish: waiting to sign)
 *      +------------------------------------> DONE  (result queued; closed once sent)
 *
 * Every state has a deadline on the connection's timer: the request and the
 * signature must arrive in time, and a client that stops reading is dropped,
 * so a slow or silent client holds one of CTL_CLIENTS_MAX slots for a bounded
 * time and affects no one else. A client that hangs up early is noticed by the
 * poll (EOF or UV_DISCONNECT) in any state.
 *
 * Memory: a connection is freed when its handles are closed and no node
 * callback for it is outstanding (pending == 0); a callback for a closed
 * connection only drops its reference.
 */
#include "config.h"

#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

#include "ferry/catalog.h"
#include "ferry/config.h"
#include "ferry/ctl.h"
#include "ferry/error.h"
#include "ferry/log.h"
#include "ferry/manifest.h"
#include "ferry/node.h"
#include "ferry/node_sideload.h"
#include "ferry/util.h"
/* After util.h: see the note in ferryd.c about <sys/param.h>'s MIN/MAX. */
#include <uv.h>

#include "ctl_int.h"

/* At most this many clients at once; more are told to try again. */
#define CTL_CLIENTS_MAX 64
/* fetch --wait: one progress message this often; completion is looked for more often. */
#define PROGRESS_MS 500
#define COMPLETE_POLL_MS 50
/* After accept4 fails for lack of descriptors, wait this long before trying again. */
#define ACCEPT_PAUSE_MS 1000
/* A client may have at most this much unread output queued (a long peer list). */
#define OUT_MAX (2u * CTL_MSG_MAX)

static unsigned request_ms = 10000, signature_ms = 120000, write_ms = 30000;

void ctl__set_timeouts(unsigned req, unsigned sig, unsigned wr)
{
	request_ms = req;
	signature_ms = sig;
	write_ms = wr;
}

struct ctl_server {
	uv_loop_t *loop;
	struct node *node;
	char *path;
	dev_t dev; /* the socket file we made, so close removes only ours */
	ino_t ino;
	int fd;
	uv_poll_t poll;
	uv_timer_t accept_timer;
	struct conn *conns;
	unsigned n_conns;
	unsigned handles; /* open handles of the server and its connections */
	bool full_warned;
	bool closing;
	void (*close_cb)(void *arg);
	void *close_arg;
	ctl_reload_fn *reload; /* ctl_server_set_reload; NULL: reload is refused */
	void *reload_arg;
};

enum conn_state { C_REQUEST, C_BUSY, C_STREAM, C_SIGNATURE, C_DONE };

struct conn {
	struct conn *next, *prev;
	struct ctl_server *srv; /* NULL once its handles are closed */
	int fd;
	uv_poll_t poll;
	uv_timer_t timer;
	int handles; /* 2 while open, 0 once both close callbacks ran */
	bool closed;
	unsigned pending; /* node callbacks still to come */
	enum conn_state state;
	struct ucred cred;
	/* Input: one message at a time. */
	uint8_t hdr[CTL_HDR_LEN];
	size_t hdr_got;
	uint8_t *in;
	uint32_t in_len;
	size_t in_got;
	int passed_fd; /* from SCM_RIGHTS; -1 if none */
	int passed_fd2; /* a second one (CTL_FD_SECOND); -1 if none */
	/* Output queue. */
	uint8_t *out;
	size_t out_off, out_len, out_cap;
	uint64_t out_progress; /* uv_now when output last moved */
	/* The command. */
	struct ctl_request req;
	char *name; /* fetch --wait */
	uint64_t version;
	uint64_t progress_sent; /* uv_now of the last progress message */
	uint8_t *body; /* publish: the body sent for signing */
	size_t body_len;
	uint8_t *signed_bytes; /* publish: what node_publish_commit is given */
};

struct cmd {
	struct ctl_cmd_info info;
	void (*run)(struct conn *c);
};

static void conn_close(struct conn *c);
static void update_poll(struct conn *c);

/* ---- output ------------------------------------------------------------- */

static uv_loop_t *conn_loop(const struct conn *c)
{
	return c->poll.loop;
}

static void flush(struct conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0) {
			log_debug(LOG_CTL, "client uid %u went away: %s", (unsigned)c->cred.uid,
				  n < 0 ? strerror(errno) : "short write");
			conn_close(c);
			return;
		}
		c->out_off += (size_t)n;
		c->out_progress = uv_now(conn_loop(c));
	}
	if (c->out_off == c->out_len) {
		c->out_off = c->out_len = 0;
		if (c->state == C_DONE) {
			conn_close(c);
			return;
		}
	}
	update_poll(c);
}

/* Queue a framed message (taking it over) and try to send it. */
static void queue(struct conn *c, uint8_t *msg, size_t len)
{
	if (c->closed) {
		free(msg);
		return;
	}
	if (c->out_off > 0) {
		memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
		c->out_len -= c->out_off;
		c->out_off = 0;
	}
	if (c->out_len + len > OUT_MAX) {
		log_warn(LOG_CTL, "dropping control client uid %u: it does not read its replies",
			 (unsigned)c->cred.uid);
		free(msg);
		conn_close(c);
		return;
	}
	if (c->out_len == 0)
		c->out_progress = uv_now(conn_loop(c));
	if (c->out_cap - c->out_len < len) {
		c->out_cap = MAX(c->out_len + len, 2 * c->out_cap);
		c->out = xrealloc(c->out, c->out_cap);
	}
	memcpy(c->out + c->out_len, msg, len);
	c->out_len += len;
	free(msg);
	flush(c);
}

static void send_data(struct conn *c, enum ctl_data_kind kind, const void *rec)
{
	uint8_t *msg;
	size_t len;
	int rc = ctl_data_encode(kind, rec, &msg, &len);

	if (rc < 0) {
		log_warn(LOG_CTL, "cannot encode a %s record: %s", ctl_data_kind_name(kind),
			 ferry_errmsg(rc));
		return;
	}
	queue(c, msg, len);
}

static void on_write_deadline(uv_timer_t *t);

/*
 * End the exchange: queue the result (code 0 or FERRY_E*; msg NULL means
 * ferry_errmsg(code) for a failure and "" for success) and close once sent.
 */
static void finish(struct conn *c, int code, const char *msg)
{
	uint8_t *out;
	size_t len;

	if (c->closed)
		return;
	if (msg == NULL)
		msg = code < 0 ? ferry_errmsg(code) : "";
	if (code < 0)
		log_debug(LOG_CTL, "uid %u: %s: %s", (unsigned)c->cred.uid,
			  c->req.cmd ? c->req.cmd : "(no command)", msg);
	c->state = C_DONE;
	uv_timer_stop(&c->timer);
	uv_timer_start(&c->timer, on_write_deadline, write_ms, 0);
	ctl_result_encode(code, msg, &out, &len);
	queue(c, out, len);
}

static void on_write_deadline(uv_timer_t *t)
{
	struct conn *c = t->data;
	uint64_t idle = uv_now(conn_loop(c)) - c->out_progress;

	if (c->out_len == 0 || idle >= write_ms) {
		log_warn(LOG_CTL, "dropping control client uid %u: it stopped reading",
			 (unsigned)c->cred.uid);
		conn_close(c);
		return;
	}
	uv_timer_start(&c->timer, on_write_deadline, write_ms - idle, 0);
}

/* ---- arguments ---------------------------------------------------------- */

static const char *arg_str(const struct conn *c, const char *key)
{
	const struct ctl_arg *a = ctl_request_arg(&c->req, key);

	return a ? a->str : NULL;
}

static uint64_t arg_uint(const struct conn *c, const char *key, uint64_t def)
{
	const struct ctl_arg *a = ctl_request_arg(&c->req, key);

	return a ? a->u : def;
}

static int64_t arg_int(const struct conn *c, const char *key, int64_t def)
{
	const struct ctl_arg *a = ctl_request_arg(&c->req, key);

	return a ? a->i : def;
}

static bool arg_bool(const struct conn *c, const char *key)
{
	const struct ctl_arg *a = ctl_request_arg(&c->req, key);

	return a ? a->b : false;
}

static int take_fd(struct conn *c)
{
	int fd = c->passed_fd;

	c->passed_fd = -1;
	return fd;
}

static struct node *conn_node(const struct conn *c)
{
	return c->srv->node;
}

/* "name" or "name@version" for messages and logs. */
static const char *ref_str(char *buf, size_t cap, const char *name, uint64_t version)
{
	if (version == 0)
		snprintf(buf, cap, "%s", name);
	else
		snprintf(buf, cap, "%s@%" PRIu64, name, version);
	return buf;
}

/*
 * A node callback arrived: drop its reference. Returns true if the
 * connection is gone (and then it may have been freed: do not touch it).
 */
static bool callback_gone(struct conn *c)
{
	c->pending--;
	if (!c->closed)
		return false;
	if (c->handles == 0 && c->pending == 0) {
		ctl_request_clear(&c->req);
		free(c);
	}
	return true;
}

/* ---- commands ----------------------------------------------------------- */

static void run_status(struct conn *c)
{
	struct ctl_status st;

	memset(&st, 0, sizeof(st));
	node_status(conn_node(c), &st.node);
	st.ferryd_version = PACKAGE_VERSION;
	send_data(c, CTL_DATA_STATUS, &st);
	finish(c, 0, NULL);
}

static void on_peer_row(void *arg, const struct node_peer_row *row)
{
	send_data(arg, CTL_DATA_PEER, row);
}

static void run_peers(struct conn *c)
{
	node_peers(conn_node(c), on_peer_row, c);
	finish(c, 0, NULL);
}

static void on_model_row(void *arg, const struct node_model_row *row)
{
	send_data(arg, CTL_DATA_MODEL, row);
}

static void run_models(struct conn *c)
{
	node_models(conn_node(c), on_model_row, c);
	finish(c, 0, NULL);
}

static void send_progress(struct conn *c, const char *name, const struct node_progress *p)
{
	struct ctl_progress pr = {.name = name, .p = *p};

	send_data(c, CTL_DATA_PROGRESS, &pr);
}

static void on_progress_tick(uv_timer_t *t)
{
	struct conn *c = t->data;
	struct node_progress p;
	char ref[MANIFEST_NAME_MAX + 32];
	int rc;

	/* A client that does not read gets no new updates, and is dropped in the end. */
	if (c->out_len > 0) {
		if (uv_now(conn_loop(c)) - c->out_progress >= write_ms) {
			log_warn(LOG_CTL, "dropping control client uid %u: it stopped reading",
				 (unsigned)c->cred.uid);
			conn_close(c);
		}
		return;
	}
	rc = node_progress(conn_node(c), c->name, c->version, &p);
	if (rc < 0) {
		char *msg =
		    xasprintf("fetch of %s stopped: %s",
			      ref_str(ref, sizeof(ref), c->name, c->version), ferry_errmsg(rc));

		finish(c, rc, msg);
		free(msg);
		return;
	}
	if (c->version == 0)
		c->version = p.version;
	if (!p.complete && uv_now(conn_loop(c)) - c->progress_sent < PROGRESS_MS)
		return;
	c->progress_sent = uv_now(conn_loop(c));
	send_progress(c, c->name, &p);
	if (p.complete)
		finish(c, 0, NULL);
}

static void run_fetch(struct conn *c)
{
	const char *name = arg_str(c, "name");
	uint64_t version = arg_uint(c, "version", 0);
	struct node_progress p;
	int rc;

	memset(&p, 0, sizeof(p));
	rc = node_fetch(conn_node(c), name, version, &p);
	if (rc < 0) {
		finish(c, rc, NULL);
		return;
	}
	send_progress(c, name, &p);
	if (!arg_bool(c, "wait") || p.complete) {
		finish(c, 0, NULL);
		return;
	}
	c->name = xstrdup(name);
	c->version = p.version ? p.version : version;
	c->state = C_STREAM;
	c->progress_sent = uv_now(conn_loop(c));
	uv_timer_start(&c->timer, on_progress_tick, COMPLETE_POLL_MS, COMPLETE_POLL_MS);
}

static void run_cancel(struct conn *c)
{
	finish(c, node_cancel(conn_node(c), arg_str(c, "name"), arg_uint(c, "version", 0)), NULL);
}

static void on_signature_deadline(uv_timer_t *t)
{
	struct conn *c = t->data;

	finish(c,
	       ferry_errf(FERRY_ETIMEDOUT, "no signature arrived within %u s", signature_ms / 1000),
	       NULL);
}

static void on_ingested(void *arg, int rc, const uint8_t *body, size_t len,
			const struct publish_stats *stats)
{
	struct conn *c = arg;
	struct ctl_manifest m;

	if (callback_gone(c))
		return;
	if (rc < 0) {
		finish(c, rc, NULL);
		return;
	}
	c->body = xmalloc(len ? len : 1);
	memcpy(c->body, body, len);
	c->body_len = len;
	memset(&m, 0, sizeof(m));
	m.body = c->body;
	m.body_len = len;
	if (stats != NULL)
		m.stats = *stats;
	c->state = C_SIGNATURE;
	uv_timer_start(&c->timer, on_signature_deadline, signature_ms, 0);
	send_data(c, CTL_DATA_MANIFEST, &m);
	update_poll(c);
}

static void run_publish(struct conn *c)
{
	const struct ctl_arg *pk = ctl_request_arg(&c->req, "publisher");
	struct publish_opts opts;
	int rc;

	memset(&opts, 0, sizeof(opts));
	opts.name = arg_str(c, "name");
	opts.version = arg_uint(c, "version", 0);
	opts.label = arg_str(c, "label");
	opts.created = arg_int(c, "created", 0);
	if (pk->len != sizeof(opts.publisher)) {
		finish(c,
		       ferry_errf(FERRY_EINVAL, "publisher is %zu bytes, not a 32-byte public key",
				  pk->len),
		       NULL);
		return;
	}
	memcpy(opts.publisher, pk->str, sizeof(opts.publisher));
	c->state = C_BUSY;
	c->pending++;
	rc = node_publish_ingest(conn_node(c), take_fd(c), &opts, on_ingested, c);
	if (rc < 0) {
		c->pending--;
		finish(c, rc, NULL);
	}
}

static void on_committed(void *arg, int rc)
{
	struct conn *c = arg;

	if (callback_gone(c))
		return;
	finish(c, rc, NULL);
}

static void got_signature(struct conn *c)
{
	uint8_t sig[64];
	size_t len;
	int rc;

	uv_timer_stop(&c->timer);
	rc = ctl_signature_decode(c->in, c->in_len, sig);
	if (rc == 0)
		rc = manifest_seal(c->body, c->body_len, sig, &c->signed_bytes, &len);
	if (rc < 0) {
		finish(c, rc, NULL);
		return;
	}
	c->state = C_BUSY;
	c->pending++;
	rc = node_publish_commit(conn_node(c), c->signed_bytes, len, on_committed, c);
	if (rc < 0) {
		c->pending--;
		finish(c, rc, NULL);
	}
}

static void on_exported(void *arg, int rc)
{
	struct conn *c = arg;

	if (callback_gone(c))
		return;
	finish(c, rc, NULL);
}

static void run_export(struct conn *c)
{
	unsigned flags = arg_bool(c, "sha256") ? EXPORT_SHA256 : 0;
	int rc;

	c->state = C_BUSY;
	c->pending++;
	rc = node_export(conn_node(c), arg_str(c, "name"), arg_uint(c, "version", 0), take_fd(c),
			 flags, on_exported, c);
	if (rc < 0) {
		c->pending--;
		finish(c, rc, NULL);
	}
}

/* ---- for the command files (ctl_int.h) ---------------------------------- */

const char *ctl__arg_str(const struct conn *c, const char *key)
{
	return arg_str(c, key);
}

uint64_t ctl__arg_uint(const struct conn *c, const char *key, uint64_t def)
{
	return arg_uint(c, key, def);
}

bool ctl__arg_bool(const struct conn *c, const char *key)
{
	return arg_bool(c, key);
}

struct node *ctl__node(const struct conn *c)
{
	return conn_node(c);
}

void ctl__send(struct conn *c, enum ctl_data_kind kind, const void *rec)
{
	send_data(c, kind, rec);
}

void ctl__finish(struct conn *c, int code, const char *msg)
{
	finish(c, code, msg);
}

void ctl__wait(struct conn *c)
{
	c->state = C_BUSY;
	c->pending++;
}

void ctl__unwait(struct conn *c)
{
	c->pending--;
}

bool ctl__callback_gone(struct conn *c)
{
	return callback_gone(c);
}

int ctl__reload(struct conn *c, char **why)
{
	struct ctl_server *s = c->srv;

	*why = NULL;
	if (s->reload == NULL)
		return ferry_errf(FERRY_EINVAL, "this ferryd cannot reload its configuration");
	return s->reload(s->reload_arg, why);
}

void ctl_server_set_reload(struct ctl_server *s, ctl_reload_fn *fn, void *arg)
{
	s->reload = fn;
	s->reload_arg = arg;
}

static void on_limit_row(void *arg, const struct node_limit_row *row)
{
	send_data(arg, CTL_DATA_LIMIT, row);
}

static void run_limits(struct conn *c)
{
	node_limits(conn_node(c), on_limit_row, c);
	finish(c, 0, NULL);
}

/* The work and its messages are node_limit_set's (src/node_limits.c). */
static void run_limit(struct conn *c)
{
	struct node_limit_row row;
	int rc = node_limit_set(conn_node(c), arg_str(c, "limit"), arg_str(c, "rate"), &row);

	if (rc == 0)
		send_data(c, CTL_DATA_LIMIT, &row);
	finish(c, rc, NULL);
}

/* sideload, bundle_create: the bundle module's progress as a data record. */
static void on_bundle_progress(void *arg, const struct bundle_progress *p)
{
	static const char *const phases[] = {"manifests", "index", "chunks", "done"};
	struct ctl_bundle_progress r = {
	    .phase = (unsigned)p->phase < ARRAY_SIZE(phases) ? phases[p->phase] : "?",
	    .file = p->file,
	    .bytes_done = p->bytes_done,
	    .bytes_total = p->bytes_total,
	    .chunks_done = p->chunks_done,
	    .chunks_total = p->chunks_total};

	send_data(arg, CTL_DATA_BUNDLE_PROGRESS, &r);
}

/* The report as records, then bundle_import's code (FERRY_ECORRUPT if anything was refused). */
static void on_sideloaded(void *arg, int rc, const struct bundle_report *rep)
{
	struct conn *c = arg;
	struct ctl_bundle_report r;

	if (callback_gone(c))
		return;
	for (size_t i = 0; i < rep->nmanifests; i++) {
		const struct bundle_manifest_result *m = &rep->manifests[i];
		struct ctl_bundle_manifest rm = {.file = m->file,
						 .name = m->name,
						 .version = m->version,
						 .outcome = m->outcome,
						 .complete = m->complete};

		send_data(c, CTL_DATA_BUNDLE_MANIFEST, &rm);
	}
	for (size_t i = 0; i < rep->nproblems; i++) {
		const struct bundle_problem *p = &rep->problems[i];
		struct ctl_bundle_problem rp = {.code = p->code,
						.file = p->file,
						.offset = p->offset,
						.has_id = p->has_id,
						.message = p->message ? p->message : ""};

		memcpy(rp.id, p->id, sizeof(rp.id));
		send_data(c, CTL_DATA_BUNDLE_PROBLEM, &rp);
	}
	memset(&r, 0, sizeof(r));
	r.manifests = rep->nmanifests;
	r.manifests_refused = rep->manifests_refused;
	r.chunks_imported = rep->chunks_imported;
	r.bytes_imported = rep->bytes_imported;
	r.chunks_present = rep->chunks_present;
	r.chunks_bad = rep->chunks_bad;
	r.chunks_missing = rep->chunks_missing;
	r.chunks_unreferenced = rep->chunks_unreferenced;
	r.problems_total = rep->problems_total;
	r.delta = rep->delta;
	send_data(c, CTL_DATA_BUNDLE_REPORT, &r);
	finish(c, rc, NULL);
}

static void run_sideload(struct conn *c)
{
	int rc;

	c->state = C_BUSY;
	c->pending++;
	rc = node_sideload(conn_node(c), take_fd(c), on_bundle_progress, on_sideloaded, c);
	if (rc < 0) {
		c->pending--;
		finish(c, rc, NULL);
	}
}

static void on_bundle_created(void *arg, int rc, const struct node_bundle_created *res)
{
	struct conn *c = arg;

	if (callback_gone(c))
		return;
	if (rc == 0) {
		for (size_t i = 0; i < res->nrows; i++)
			send_data(c, CTL_DATA_MODEL, &res->rows[i]);
		send_data(c, CTL_DATA_BUNDLE_CREATED, &res->stats);
	}
	finish(c, rc, NULL);
}

/* bundle_create's "models": NAME[@VERSION] separated by spaces. */
static void run_bundle_create(struct conn *c)
{
	char *list = xstrdup(arg_str(c, "models")), *save = NULL;
	struct bundle_ref refs[CTL_BUNDLE_MODELS_MAX];
	char names[CTL_BUNDLE_MODELS_MAX][MANIFEST_NAME_MAX + 1];
	size_t n = 0;
	int rc = 0, havefd;

	for (char *t = strtok_r(list, " ", &save); t != NULL && rc == 0;
	     t = strtok_r(NULL, " ", &save)) {
		if (n == CTL_BUNDLE_MODELS_MAX) {
			rc = ferry_errf(FERRY_EINVAL, "more than %u models in one bundle",
					CTL_BUNDLE_MODELS_MAX);
		} else if ((rc = catalog_parse_ref(t, names[n], sizeof(names[n]),
						   &refs[n].version)) == 0) {
			refs[n].name = names[n];
			n++;
		}
	}
	free(list);
	if (rc < 0) {
		finish(c, rc, NULL);
		return;
	}
	c->state = C_BUSY;
	c->pending++;
	havefd = c->passed_fd2;
	c->passed_fd2 = -1;
	rc = node_bundle_create(conn_node(c), take_fd(c), havefd, refs, n,
				arg_uint(c, "pack_size", 0), on_bundle_progress, on_bundle_created,
				c);
	if (rc < 0) {
		c->pending--;
		finish(c, rc, NULL);
	}
}

static void on_have_written(void *arg, int rc, uint64_t nversions, uint64_t nchunks)
{
	struct conn *c = arg;
	struct ctl_have h = {.versions = nversions, .chunks = nchunks};

	if (callback_gone(c))
		return;
	if (rc == 0)
		send_data(c, CTL_DATA_HAVE, &h);
	finish(c, rc, NULL);
}

static void run_have(struct conn *c)
{
	int rc;

	c->state = C_BUSY;
	c->pending++;
	rc = node_have(conn_node(c), take_fd(c), on_have_written, c);
	if (rc < 0) {
		c->pending--;
		finish(c, rc, NULL);
	}
}

/*
 * The command table: dispatch, permissions, argument checks, and (through
 * ctl_cmd_at) the test that keeps docs/protocol.md in step with it.
 */
static const struct cmd commands[] = {
    {{"status", CTL_READ, false, {{NULL, 0, false}}, "status"}, run_status},
    {{"peers", CTL_READ, false, {{NULL, 0, false}}, "peer*"}, run_peers},
    {{"models", CTL_READ, false, {{NULL, 0, false}}, "model*"}, run_models},
    {{"fetch",
      CTL_WRITE,
      false,
      {{"name", CTL_T_STR, true}, {"version", CTL_T_UINT, false}, {"wait", CTL_T_BOOL, false}},
      "progress+"},
     run_fetch},
    {{"cancel", CTL_WRITE, false, {{"name", CTL_T_STR, true}, {"version", CTL_T_UINT, false}}, ""},
     run_cancel},
    {{"publish",
      CTL_WRITE,
      true,
      {{"name", CTL_T_STR, true},
       {"version", CTL_T_UINT, true},
       {"label", CTL_T_STR, false},
       {"publisher", CTL_T_BIN, true},
       {"created", CTL_T_INT, false}},
      "manifest"},
     run_publish},
    {{"export",
      CTL_READ,
      true,
      {{"name", CTL_T_STR, true}, {"version", CTL_T_UINT, false}, {"sha256", CTL_T_BOOL, false}},
      ""},
     run_export},
    {{"activate",
      CTL_WRITE,
      false,
      {{"name", CTL_T_STR, true}, {"version", CTL_T_UINT, true}},
      "activation"},
     ctl__run_activate},
    {{"rollback", CTL_WRITE, false, {{"name", CTL_T_STR, true}}, "activation"}, ctl__run_rollback},
    {{"pin", CTL_WRITE, false, {{"name", CTL_T_STR, true}, {"version", CTL_T_UINT, false}}, "pin"},
     ctl__run_pin},
    {{"unpin",
      CTL_WRITE,
      false,
      {{"name", CTL_T_STR, true}, {"version", CTL_T_UINT, false}},
      "pin"},
     ctl__run_unpin},
    {{"gc", CTL_WRITE, false, {{NULL, 0, false}}, "evicted* gc"}, ctl__run_gc},
    {{"metrics", CTL_READ, false, {{NULL, 0, false}}, "text"}, ctl__run_metrics},
    {{"reload", CTL_WRITE, false, {{NULL, 0, false}}, ""}, ctl__run_reload},
    {{"verify",
      CTL_READ,
      false,
      {{"name", CTL_T_STR, true}, {"version", CTL_T_UINT, false}},
      "problem* verify"},
     ctl__run_verify},
    {{"limits", CTL_READ, false, {{NULL, 0, false}}, "limit*"}, run_limits},
    {{"limit", CTL_WRITE, false, {{"limit", CTL_T_STR, true}, {"rate", CTL_T_STR, true}}, "limit"},
     run_limit},
    {{"sideload", CTL_WRITE, true, {{NULL, 0, false}},
      "bundle_progress* bundle_manifest* bundle_problem* bundle_report"},
     run_sideload},
    {{"bundle_create",
      CTL_READ,
      true,
      {{"models", CTL_T_STR, true}, {"pack_size", CTL_T_UINT, false}},
      "bundle_progress* model* bundle_created"},
     run_bundle_create},
    {{"have", CTL_READ, true, {{NULL, 0, false}}, "have"}, run_have},
};

/* The commands whose descriptors are more than one directory (enum ctl_fd_flags). */
static const struct {
	const char *name;
	unsigned flags;
} fd_kinds[] = {
    {"bundle_create", CTL_FD_SECOND},
    {"have", CTL_FD_FILE},
};

unsigned ctl_cmd_fd_flags(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(fd_kinds); i++)
		if (strcmp(fd_kinds[i].name, name) == 0)
			return fd_kinds[i].flags;
	return 0;
}

const struct ctl_cmd_info *ctl_cmd_at(size_t i)
{
	return i < ARRAY_SIZE(commands) ? &commands[i].info : NULL;
}

static const char *const type_names[] = {
    [CTL_T_STR] = "a string",	[CTL_T_UINT] = "an unsigned integer",
    [CTL_T_INT] = "an integer", [CTL_T_BOOL] = "a boolean",
    [CTL_T_BIN] = "a binary",
};

/* Check the request's arguments against the command's; normalise INT ones. */
static int check_args(struct conn *c, const struct cmd *cmd)
{
	const struct ctl_arg_spec *s;
	const char *name;
	struct stat st;
	unsigned fdf = ctl_cmd_fd_flags(cmd->info.name);

	for (size_t i = 0; i < c->req.n_args; i++) {
		struct ctl_arg *a = &c->req.args[i];

		for (s = cmd->info.args; s->key != NULL; s++)
			if (strcmp(s->key, a->key) == 0)
				break;
		if (s->key == NULL)
			return ferry_errf(FERRY_EINVAL, "%s takes no argument '%s'", cmd->info.name,
					  a->key);
		if (s->type == CTL_T_INT && a->type == CTL_T_UINT && a->u <= INT64_MAX) {
			a->type = CTL_T_INT;
			a->i = (int64_t)a->u;
		}
		if (a->type != s->type)
			return ferry_errf(FERRY_EINVAL, "argument '%s' of %s must be %s", a->key,
					  cmd->info.name, type_names[s->type]);
	}
	for (s = cmd->info.args; s->key != NULL; s++)
		if (s->required && ctl_request_arg(&c->req, s->key) == NULL)
			return ferry_errf(FERRY_EINVAL, "%s needs the argument '%s'",
					  cmd->info.name, s->key);
	/* Names reach the log below, so they are checked before anything else sees them. */
	if ((name = arg_str(c, "name")) != NULL && manifest_name_check(name) < 0)
		return FERRY_EINVAL;
	if (cmd->info.takes_fd && c->passed_fd < 0)
		return ferry_errf(FERRY_EINVAL,
				  "%s needs a directory descriptor passed with the request "
				  "(SCM_RIGHTS)",
				  cmd->info.name);
	if (cmd->info.takes_fd && !(fdf & CTL_FD_FILE) &&
	    (fstat(c->passed_fd, &st) != 0 || !S_ISDIR(st.st_mode)))
		return ferry_errf(FERRY_EINVAL,
				  "the descriptor that came with %s is not a directory",
				  cmd->info.name);
	if (cmd->info.takes_fd && (fdf & CTL_FD_FILE) &&
	    (fstat(c->passed_fd, &st) != 0 || !S_ISREG(st.st_mode)))
		return ferry_errf(FERRY_EINVAL,
				  "the descriptor that came with %s is not a regular file",
				  cmd->info.name);
	if (c->passed_fd2 >= 0 && !(fdf & CTL_FD_SECOND))
		return ferry_errf(FERRY_EINVAL, "%s takes one descriptor, but two came with it",
				  cmd->info.name);
	if (c->passed_fd2 >= 0 && (fstat(c->passed_fd2, &st) != 0 || !S_ISREG(st.st_mode)))
		return ferry_errf(FERRY_EINVAL,
				  "the second descriptor that came with %s is not a regular file",
				  cmd->info.name);
	if (!cmd->info.takes_fd && c->passed_fd >= 0)
		return ferry_errf(FERRY_EINVAL, "%s takes no descriptor, but one came with it",
				  cmd->info.name);
	return 0;
}

static int check_permission(const struct conn *c, const struct cmd *cmd)
{
	uid_t me = geteuid();

	if (cmd->info.kind == CTL_READ || c->cred.uid == 0 || c->cred.uid == me)
		return 0;
	return ferry_errf(FERRY_EPERM,
			  "%s changes what ferryd does, so it needs root or ferryd's own user "
			  "(uid %u); you are uid %u",
			  cmd->info.name, (unsigned)me, (unsigned)c->cred.uid);
}

static void log_write(const struct conn *c, const struct cmd *cmd)
{
	const char *name = arg_str(c, "name") ? arg_str(c, "name") : arg_str(c, "limit");
	char ref[MANIFEST_NAME_MAX + 32];

	log_info(LOG_CTL, "%s%s%s requested by uid %u (pid %d)", cmd->info.name, name ? " " : "",
		 name ? ref_str(ref, sizeof(ref), name, arg_uint(c, "version", 0)) : "",
		 (unsigned)c->cred.uid, (int)c->cred.pid);
}

static void dispatch(struct conn *c)
{
	const struct cmd *cmd = NULL;
	int rc;

	uv_timer_stop(&c->timer);
	rc = ctl_request_decode(c->in, c->in_len, &c->req);
	if (rc < 0) {
		finish(c, rc, NULL);
		return;
	}
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		if (strcmp(commands[i].info.name, c->req.cmd) == 0)
			cmd = &commands[i];
	if (cmd == NULL) {
		finish(
		    c,
		    ferry_errf(FERRY_EINVAL,
			       "this ferryd has no command '%s' (is ferryctl newer than ferryd?)",
			       c->req.cmd),
		    NULL);
		return;
	}
	rc = check_permission(c, cmd);
	if (rc == 0)
		rc = check_args(c, cmd);
	if (rc < 0) {
		finish(c, rc, NULL);
		return;
	}
	if (cmd->info.kind == CTL_WRITE)
		log_write(c, cmd);
	else
		log_debug(LOG_CTL, "%s requested by uid %u", cmd->info.name, (unsigned)c->cred.uid);
	cmd->run(c);
}

/* ---- input -------------------------------------------------------------- */

/* Keep descriptors that came with the bytes: up to two, with the request only. */
static int take_rights(struct conn *c, struct msghdr *mh)
{
	int bad = 0;

	if (mh->msg_flags & MSG_CTRUNC)
		bad = ferry_errf(FERRY_EPROTO, "too many descriptors came with the request");
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm != NULL; cm = CMSG_NXTHDR(mh, cm)) {
		size_t n;
		int *fds;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		fds = (int *)(void *)CMSG_DATA(cm);
		for (size_t i = 0; i < n; i++) {
			int fd;

			memcpy(&fd, &fds[i], sizeof(fd));
			if (c->passed_fd < 0 && c->state == C_REQUEST && bad == 0) {
				c->passed_fd = fd;
			} else if (c->passed_fd2 < 0 && c->state == C_REQUEST && bad == 0) {
				c->passed_fd2 = fd;
			} else {
				close(fd);
				if (bad == 0)
					bad = ferry_errf(FERRY_EPROTO,
							 "at most two descriptors may come with "
							 "the request");
			}
		}
	}
	return bad;
}

/*
 * Read at most want bytes into dst. Returns the count, 0 at EOF, -EAGAIN
 * when nothing is there, or another negative code.
 */
static ssize_t read_some(struct conn *c, void *dst, size_t want)
{
	union {
		char buf[CMSG_SPACE(4 * sizeof(int))];
		struct cmsghdr align;
	} ctrl;
	struct iovec iov = {.iov_base = dst, .iov_len = want};
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = ctrl.buf,
			    .msg_controllen = sizeof(ctrl.buf)};
	ssize_t n;
	int rc;

	do
		n = recvmsg(c->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	rc = take_rights(c, &mh);
	return rc < 0 ? rc : n;
}

/* Read the next message. 1 when it is complete in c->in, 0 for more later, < 0 to stop. */
static int read_message(struct conn *c)
{
	ssize_t n;
	int rc;

	while (c->hdr_got < CTL_HDR_LEN) {
		n = read_some(c, c->hdr + c->hdr_got, CTL_HDR_LEN - c->hdr_got);
		if (n <= 0)
			return n == -EAGAIN ? 0 : n == 0 ? FERRY_ECONNREFUSED : (int)n;
		c->hdr_got += (size_t)n;
		if (c->hdr_got < CTL_HDR_LEN)
			continue;
		rc = ctl_hdr_get(c->hdr, CTL_REQUEST_MAX, &c->in_len);
		if (rc < 0)
			return rc;
		c->in = xmalloc(c->in_len);
		c->in_got = 0;
	}
	while (c->in_got < c->in_len) {
		n = read_some(c, c->in + c->in_got, c->in_len - c->in_got);
		if (n <= 0)
			return n == -EAGAIN ? 0 : n == 0 ? FERRY_ECONNREFUSED : (int)n;
		c->in_got += (size_t)n;
	}
	return 1;
}

static void end_message(struct conn *c)
{
	free(c->in);
	c->in = NULL;
	c->in_len = 0;
	c->hdr_got = 0;
	c->in_got = 0;
}

static void on_readable(struct conn *c)
{
	uint8_t junk[64];
	ssize_t n;
	int rc;

	if (c->state == C_REQUEST || c->state == C_SIGNATURE) {
		rc = read_message(c);
		if (rc == 0)
			return;
		if (rc == FERRY_ECONNREFUSED || rc == -ECONNRESET) {
			conn_close(c); /* the client left */
			return;
		}
		if (rc < 0) {
			/* Tell a confused client why; a hostile one is gone either way. */
			log_debug(LOG_CTL, "bad control message from uid %u: %s",
				  (unsigned)c->cred.uid, ferry_errmsg(rc));
			finish(c, rc, NULL);
			return;
		}
		if (c->state == C_REQUEST)
			dispatch(c);
		else
			got_signature(c);
		end_message(c);
		return;
	}
	/* No input is expected now: EOF means the client left; bytes are a protocol error. */
	n = read_some(c, junk, sizeof(junk));
	if (n == -EAGAIN)
		return;
	if (n > 0 && c->state != C_DONE)
		log_debug(LOG_CTL, "control client uid %u sent bytes out of turn",
			  (unsigned)c->cred.uid);
	conn_close(c);
}

static void on_conn_poll(uv_poll_t *h, int status, int events)
{
	struct conn *c = h->data;

	if (status < 0) {
		conn_close(c);
		return;
	}
	if (events & UV_WRITABLE)
		flush(c);
	if (!c->closed && (events & (UV_READABLE | UV_DISCONNECT)))
		on_readable(c);
}

static void update_poll(struct conn *c)
{
	int events = UV_READABLE | UV_DISCONNECT;

	if (c->closed)
		return;
	if (c->out_len > c->out_off)
		events |= UV_WRITABLE;
	uv_poll_start(&c->poll, events, on_conn_poll);
}

static void on_request_deadline(uv_timer_t *t)
{
	struct conn *c = t->data;

	log_debug(LOG_CTL, "control client uid %u sent no request in time", (unsigned)c->cred.uid);
	finish(c, ferry_errf(FERRY_ETIMEDOUT, "no request arrived within %u s", request_ms / 1000),
	       NULL);
}

/* ---- connections -------------------------------------------------------- */

static void server_maybe_done(struct ctl_server *s);

static void on_conn_handle_closed(uv_handle_t *h)
{
	struct conn *c = h->data;
	struct ctl_server *s = c->srv;

	if (--c->handles > 0)
		return;
	close(c->fd);
	c->srv = NULL;
	s->handles -= 2;
	if (c->pending == 0) {
		ctl_request_clear(&c->req);
		free(c);
	}
	server_maybe_done(s);
}

/* Drop a connection: close its handles; memory goes once nothing refers to it. */
static void conn_close(struct conn *c)
{
	struct ctl_server *s = c->srv;

	if (c->closed)
		return;
	c->closed = true;
	if (c->next != NULL)
		c->next->prev = c->prev;
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	s->n_conns--;
	if (s->n_conns < CTL_CLIENTS_MAX)
		s->full_warned = false;
	if (c->passed_fd >= 0)
		close(c->passed_fd);
	c->passed_fd = -1;
	if (c->passed_fd2 >= 0)
		close(c->passed_fd2);
	c->passed_fd2 = -1;
	free(c->in);
	free(c->out);
	free(c->name);
	free(c->body);
	free(c->signed_bytes);
	c->in = c->out = c->body = c->signed_bytes = NULL;
	c->name = NULL;
	uv_close((uv_handle_t *)&c->poll, on_conn_handle_closed);
	uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
}

/* Too many clients: say so in a result and hang up (a fresh socket takes it at once). */
static void refuse_busy(struct ctl_server *s, int fd)
{
	uint8_t *msg;
	size_t len;
	char *text =
	    xasprintf("ferryd is serving %d control clients already; try again", CTL_CLIENTS_MAX);

	if (!s->full_warned)
		log_warn(LOG_CTL, "%s", text);
	s->full_warned = true;
	ctl_result_encode(FERRY_EBUSY, text, &msg, &len);
	if (send(fd, msg, len, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		log_debug(LOG_CTL, "cannot tell a client to retry: %s", strerror(errno));
	free(msg);
	free(text);
	close(fd);
}

static void accept_one(struct ctl_server *s, int fd)
{
	socklen_t sl = sizeof(struct ucred);
	struct conn *c;

	if (s->n_conns >= CTL_CLIENTS_MAX) {
		refuse_busy(s, fd);
		return;
	}
	c = xcalloc(1, sizeof(*c));
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &c->cred, &sl) != 0) {
		log_warn(LOG_CTL, "cannot identify a control client: %s", strerror(errno));
		close(fd);
		free(c);
		return;
	}
	c->srv = s;
	c->fd = fd;
	c->passed_fd = -1;
	c->passed_fd2 = -1;
	c->state = C_REQUEST;
	uv_poll_init(s->loop, &c->poll, fd);
	uv_timer_init(s->loop, &c->timer);
	c->poll.data = c->timer.data = c;
	c->handles = 2;
	s->handles += 2;
	c->next = s->conns;
	if (s->conns != NULL)
		s->conns->prev = c;
	s->conns = c;
	s->n_conns++;
	uv_timer_start(&c->timer, on_request_deadline, request_ms, 0);
	update_poll(c);
}

static void on_listen_poll(uv_poll_t *h, int status, int events);

static void on_accept_pause(uv_timer_t *t)
{
	struct ctl_server *s = t->data;

	uv_poll_start(&s->poll, UV_READABLE, on_listen_poll);
}

static void on_listen_poll(uv_poll_t *h, int status, int events)
{
	struct ctl_server *s = h->data;

	(void)events;
	if (status < 0) {
		log_warn(LOG_CTL, "control socket: %s", uv_strerror(status));
		return;
	}
	for (;;) {
		int fd = accept4(s->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd >= 0) {
			accept_one(s, fd);
			continue;
		}
		if (errno == EINTR || errno == ECONNABORTED)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return;
		/* Out of descriptors or memory: the socket stays readable, so pause. */
		log_warn(LOG_CTL, "cannot accept a control client: %s", strerror(errno));
		uv_poll_stop(&s->poll);
		uv_timer_start(&s->accept_timer, on_accept_pause, ACCEPT_PAUSE_MS, 0);
		return;
	}
}

/* ---- the socket --------------------------------------------------------- */

/* mkdir -p of path's directory, 0755 for what it creates. */
static int make_parent(const char *path)
{
	char *dir = xstrdup(path), *p;
	int rc = 0;

	p = strrchr(dir, '/');
	if (p == NULL || p == dir)
		goto out;
	*p = '\0';
	for (p = dir + 1; rc == 0; p++) {
		bool end = *p == '\0';

		if (*p != '/' && !end)
			continue;
		*p = '\0';
		if (mkdir(dir, 0755) != 0 && errno != EEXIST)
			rc = ferry_errno(errno,
					 "cannot create the directory %s for the control "
					 "socket",
					 dir);
		if (end)
			break;
		*p = '/';
	}
out:
	free(dir);
	return rc;
}

/* Remove a socket file nobody answers on; refuse if someone does or it is no socket. */
static int clear_stale(const char *path, const struct sockaddr_un *sa)
{
	struct stat st;
	int fd, rc;

	if (lstat(path, &st) != 0)
		return errno == ENOENT ? 0 : ferry_errno(errno, "%s", path);
	if (!S_ISSOCK(st.st_mode))
		return ferry_errf(FERRY_EEXIST,
				  "%s exists and is not a socket; ferryd will not replace it",
				  path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return ferry_errno(errno, "socket");
	rc = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
	if (rc == 0) {
		close(fd);
		return ferry_errf(FERRY_EBUSY,
				  "another process is listening on %s (is ferryd already running?)",
				  path);
	}
	rc = errno;
	close(fd);
	if (rc != ECONNREFUSED)
		return ferry_errno(rc, "cannot check the old socket %s", path);
	if (unlink(path) != 0 && errno != ENOENT)
		return ferry_errno(errno, "cannot remove the stale socket %s", path);
	log_notice(LOG_CTL, "removed the stale control socket %s", path);
	return 0;
}

static int lookup_group(const char *name, gid_t *gid)
{
	struct group gr, *res = NULL;
	char buf[4096];
	int e = getgrnam_r(name, &gr, buf, sizeof(buf), &res);

	if (res == NULL) {
		if (e != 0 && e != ENOENT && e != ESRCH)
			return ferry_errno(e, "cannot look up socket_group '%s'", name);
		return ferry_errf(FERRY_ECONFIG,
				  "socket_group '%s' is not a group on this system: create it, or "
				  "set \"socket_group =\" to leave the socket's group alone",
				  name);
	}
	*gid = gr.gr_gid;
	return 0;
}

int ctl_server_new(uv_loop_t *loop, struct node *node, const struct config *cfg,
		   struct ctl_server **out)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct ctl_server *s = NULL;
	const char *path = cfg->socket;
	gid_t gid = (gid_t)-1;
	struct stat st;
	int fd = -1, rc;

	*out = NULL;
	if (path[0] == '\0' || strlen(path) >= sizeof(sa.sun_path))
		return ferry_errf(FERRY_ECONFIG,
				  "socket = %s: a Unix socket path must be 1 to %zu bytes", path,
				  sizeof(sa.sun_path) - 1);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if (cfg->socket_group[0] != '\0' && (rc = lookup_group(cfg->socket_group, &gid)) < 0)
		return rc;
	if ((rc = make_parent(path)) < 0 || (rc = clear_stale(path, &sa)) < 0)
		return rc;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return ferry_errno(errno, "socket");
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		rc = ferry_errno(errno, "cannot bind the control socket %s", path);
		close(fd);
		return rc;
	}
	/* Before listen(), nobody can connect whatever the mode bind gave it. */
	if (chmod(path, 0660) != 0) {
		rc = ferry_errno(errno, "cannot chmod the control socket %s", path);
		goto fail;
	}
	if (gid != (gid_t)-1 && chown(path, (uid_t)-1, gid) != 0) {
		rc = ferry_errno(errno, "cannot give the control socket %s to group %s", path,
				 cfg->socket_group);
		goto fail;
	}
	if (lstat(path, &st) != 0) {
		rc = ferry_errno(errno, "%s", path);
		goto fail;
	}
	if (listen(fd, 32) != 0) {
		rc = ferry_errno(errno, "cannot listen on the control socket %s", path);
		goto fail;
	}

	s = xcalloc(1, sizeof(*s));
	s->loop = loop;
	s->node = node;
	s->path = xstrdup(path);
	s->dev = st.st_dev;
	s->ino = st.st_ino;
	s->fd = fd;
	rc = uv_poll_init(loop, &s->poll, fd);
	if (rc < 0) {
		rc = ferry_errf(FERRY_EIO, "cannot watch the control socket: %s", uv_strerror(rc));
		free(s->path);
		free(s);
		goto fail;
	}
	uv_timer_init(loop, &s->accept_timer);
	s->poll.data = s->accept_timer.data = s;
	s->handles = 2;
	uv_poll_start(&s->poll, UV_READABLE, on_listen_poll);
	log_info(LOG_CTL, "control socket %s (mode 0660%s%s)", path,
		 gid != (gid_t)-1 ? ", group " : "", gid != (gid_t)-1 ? cfg->socket_group : "");
	*out = s;
	return 0;
fail:
	unlink(path);
	close(fd);
	return rc;
}

static void server_maybe_done(struct ctl_server *s)
{
	if (!s->closing || s->handles > 0)
		return;
	close(s->fd);
	free(s->path);
	if (s->close_cb != NULL)
		s->close_cb(s->close_arg);
	free(s);
}

static void on_server_handle_closed(uv_handle_t *h)
{
	struct ctl_server *s = h->data;

	s->handles--;
	server_maybe_done(s);
}

void ctl_server_close(struct ctl_server *s, void (*cb)(void *arg), void *arg)
{
	struct stat st;

	s->closing = true;
	s->close_cb = cb;
	s->close_arg = arg;
	if (lstat(s->path, &st) == 0 && st.st_dev == s->dev && st.st_ino == s->ino)
		unlink(s->path);
	uv_close((uv_handle_t *)&s->poll, on_server_handle_closed);
	uv_close((uv_handle_t *)&s->accept_timer, on_server_handle_closed);
	while (s->conns != NULL) {
		struct conn *c = s->conns;

		/* Tell a waiting client why it ends (if its socket takes it at once). */
		if (c->state != C_DONE)
			finish(c, ferry_errf(FERRY_ECANCELED, "ferryd is shutting down"), NULL);
		conn_close(c);
	}
}
