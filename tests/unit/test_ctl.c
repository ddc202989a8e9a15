/*
 * Unit tests for the control protocol: the framing and codecs (ctl_proto.c),
 * and the server (ctl.c) driven through the real client (ctl_client.c) over a
 * real Unix socket. The server runs on a libuv loop in a second thread, in
 * front of a fake node defined here (the node_* functions ctl.c calls), so
 * the tests control exactly what the daemon "knows".
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "ferry/activate.h"
#include "ferry/config.h"
#include "ferry/ctl.h"
#include "ferry/ctl_client.h"
#include "ferry/error.h"
#include "ferry/manifest.h"
#include "ferry/mpk.h"
#include "ferry/publish.h"
#include "ferry/node_sideload.h"
#include "ferry/util.h"
#include <uv.h>

/* ---- the fake node -------------------------------------------------------- */

struct node {
	uv_loop_t *loop;
	atomic_int progress_calls;
	int complete_after; /* node_progress reports complete from this call on */
	bool fetch_fails;
	int ingest_fd; /* the descriptor publish handed over (fstat'd, then closed) */
	bool ingest_was_dir;
	uint8_t signed_bytes[512];
	size_t signed_len;
	atomic_int canceled;
	char export_name[80];
	int bundle_fd2_regular; /* bundle_create: 1 if a regular second descriptor came, 0 if none */
	char bundle_models[80];
};

static const uint8_t fake_body[] = "a manifest body to sign";

void node_status(struct node *n, struct node_status *out)
{
	(void)n;
	memset(out, 0, sizeof(*out));
	memset(out->node_id, 0xab, sizeof(out->node_id));
	out->site = "clinic-a";
	out->uptime_s = 3600;
	out->store_bytes = 5u << 20;
	out->peers_connected = 2;
	out->rate_in_bps = 1.5e6;
}

void node_peers(struct node *n, void (*cb)(void *arg, const struct node_peer_row *row), void *arg)
{
	static const char *const addrs[] = {"10.0.0.1:7440", "10.0.0.2:7440", "hq:7440"};

	(void)n;
	for (int i = 0; i < 3; i++) {
		struct node_peer_row r = {.address = addrs[i], .site = "", .state = "connected"};

		r.node_id[0] = (uint8_t)i;
		r.rtt_ms = 10.0 * i;
		r.last_seen = 1700000000 + i;
		cb(arg, &r);
	}
}

void node_models(struct node *n, void (*cb)(void *arg, const struct node_model_row *row), void *arg)
{
	struct node_model_row r = {.name = "llama", .version = 3, .label = "q4", .size = 1000};

	(void)n;
	r.present_pct = 42.5;
	r.active = true;
	cb(arg, &r);
}

void node_limits(struct node *n, void (*cb)(void *arg, const struct node_limit_row *row), void *arg)
{
	struct node_limit_row r = {.name = "wan_download", .rate_bps = 2000000, .source = "config"};

	(void)n;
	cb(arg, &r);
}

int node_limit_set(struct node *n, const char *name, const char *rate, struct node_limit_row *row)
{
	(void)n;
	if (strcmp(name, "wan_download") != 0)
		return ferry_errf(FERRY_EINVAL, "'%s' is not a rate limit", name);
	*row = (struct node_limit_row){
	    .name = "wan_download", .rate_bps = strtoull(rate, NULL, 10), .source = "runtime"};
	return 0;
}

static void fill_progress(struct node *n, uint64_t version, struct node_progress *out)
{
	int calls = atomic_fetch_add(&n->progress_calls, 1) + 1;

	memset(out, 0, sizeof(*out));
	out->version = version ? version : 7;
	out->need_bytes = 1000;
	out->have_bytes = calls >= n->complete_after ? 1000 : (uint64_t)calls * 100;
	out->sources = 2;
	out->complete = calls >= n->complete_after;
}

int node_fetch(struct node *n, const char *name, uint64_t version, struct node_progress *out)
{
	(void)name;
	if (n->fetch_fails)
		return ferry_errf(FERRY_ENOSPC, "llama@7 needs 1 GiB more than the free space");
	fill_progress(n, version, out);
	return 0;
}

int node_progress(struct node *n, const char *name, uint64_t version, struct node_progress *out)
{
	(void)name;
	fill_progress(n, version, out);
	return 0;
}

int node_cancel(struct node *n, const char *name, uint64_t version)
{
	(void)version;
	if (strcmp(name, "missing") == 0)
		return ferry_errf(FERRY_ENOENT, "model 'missing' is not wanted");
	atomic_fetch_add(&n->canceled, 1);
	return 0;
}

/* Deliver a callback on a later loop iteration, as the worker pool would. */
struct later {
	uv_timer_t t;
	void (*fn)(struct later *l);
	void *cb, *cb2, *arg;
	int rc;
	struct node *n;
};

static void on_later_closed(uv_handle_t *h)
{
	free(h->data);
}

static void on_later(uv_timer_t *t)
{
	struct later *l = t->data;

	l->fn(l);
	uv_close((uv_handle_t *)t, on_later_closed);
}

static struct later *later(struct node *n, void (*fn)(struct later *), void *cb, void *arg,
			   int rc)
{
	struct later *l = xcalloc(1, sizeof(*l));

	l->fn = fn;
	l->cb = cb;
	l->arg = arg;
	l->rc = rc;
	l->n = n;
	uv_timer_init(n->loop, &l->t);
	l->t.data = l;
	uv_timer_start(&l->t, on_later, 5, 0);
	return l;
}

/* later() with a second callback (a progress function). */
static void later2(struct node *n, void (*fn)(struct later *), void *cb, void *cb2, void *arg,
		   int rc)
{
	later(n, fn, cb, arg, rc)->cb2 = cb2;
}

typedef void ingest_cb(void *arg, int rc, const uint8_t *body, size_t len,
		       const struct publish_stats *stats);

static void deliver_ingest(struct later *l)
{
	struct publish_stats st = {.files = 2, .raw_bytes = 4096, .chunks = 3};

	((ingest_cb *)l->cb)(l->arg, l->rc, fake_body, sizeof(fake_body), &st);
}

int node_publish_ingest(struct node *n, int dirfd, const struct publish_opts *opts, ingest_cb *cb,
			void *arg)
{
	struct stat st;

	n->ingest_was_dir = fstat(dirfd, &st) == 0 && S_ISDIR(st.st_mode);
	close(dirfd);
	if (opts->version == 1)
		return ferry_errf(FERRY_EOLDVERSION, "model '%s' is already at version 4",
				  opts->name);
	later(n, deliver_ingest, (void *)cb, arg, 0);
	return 0;
}

static void deliver_rc(struct later *l)
{
	((void (*)(void *, int))l->cb)(l->arg, l->rc);
}

int node_publish_commit(struct node *n, const uint8_t *signed_bytes, size_t len,
			void (*cb)(void *arg, int rc), void *arg)
{
	n->signed_len = MIN(len, sizeof(n->signed_bytes));
	memcpy(n->signed_bytes, signed_bytes, n->signed_len);
	later(n, deliver_rc, (void *)cb, arg, 0);
	return 0;
}

int node_export(struct node *n, const char *name, uint64_t version, int outdirfd, unsigned flags,
		void (*cb)(void *arg, int rc), void *arg)
{
	int fd = openat(outdirfd, "weights.bin", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	int rc = 0;

	(void)flags;
	snprintf(n->export_name, sizeof(n->export_name), "%s@%llu", name,
		 (unsigned long long)version);
	if (fd < 0 || write(fd, "w", 1) != 1)
		rc = FERRY_EIO;
	if (fd >= 0)
		close(fd);
	close(outdirfd);
	later(n, deliver_rc, (void *)cb, arg, rc);
	return 0;
}

/* activate, rollback, pin, gc, metrics, verify (ctl_ops.c): version 9 does not exist. */
typedef void activate_cb(void *arg, int rc, const struct activate_result *res);

static void deliver_activation(struct later *l)
{
	struct activate_result res = {.active = 4,
				      .previous = 3,
				      .switched = true,
				      .hook_ran = true,
				      .hook_rc = FERRY_ETIMEDOUT};

	if (l->rc < 0) {
		ferry_errf(l->rc, "cannot activate llama@9: no such version; llama stays at "
				  "version 3");
		((activate_cb *)l->cb)(l->arg, l->rc, NULL);
		return;
	}
	((activate_cb *)l->cb)(l->arg, 0, &res);
}

int node_activate(struct node *n, const char *name, uint64_t version, activate_cb *cb, void *arg)
{
	(void)name;
	later(n, deliver_activation, (void *)cb, arg, version == 9 ? FERRY_ENOENT : 0);
	return 0;
}

int node_rollback(struct node *n, const char *name, activate_cb *cb, void *arg)
{
	(void)name;
	later(n, deliver_activation, (void *)cb, arg, 0);
	return 0;
}

int node_pin(struct node *n, const char *name, uint64_t version, bool pin,
	     void (*cb)(void *arg, int rc), void *arg)
{
	(void)name;
	(void)pin;
	later(n, deliver_rc, (void *)cb, arg, version == 9 ? FERRY_ENOENT : 1);
	return 0;
}

typedef void gc_cb(void *arg, int rc, const struct activate_gc_result *res);

static void deliver_gc(struct later *l)
{
	struct activate_evicted ev[2] = {{"llama", 1, 100}, {"llama", 2, 200}};
	struct activate_gc_result res = {.evicted = ev, .nevicted = 2, .freed_bytes = 300};

	((gc_cb *)l->cb)(l->arg, 0, &res);
}

int node_gc(struct node *n, gc_cb *cb, void *arg)
{
	later(n, deliver_gc, (void *)cb, arg, 0);
	return 0;
}

char *node_metrics(struct node *n, size_t *len)
{
	(void)n;
	if (len != NULL)
		*len = 24;
	return xstrdup("ferry_uptime_seconds 42\n");
}

typedef void verify_cb(void *arg, int rc, const struct node_verify_result *res);

static void deliver_verify(struct later *l)
{
	struct export_problem p = {.path = "weights.bin", .offset = 4096, .code = FERRY_ECORRUPT};
	struct node_verify_result res = {.name = "llama",
					 .version = 3,
					 .chunks = 5,
					 .corrupt = 1,
					 .problems = &p,
					 .nproblems = 1,
					 .materialized = true};

	ferry_errf(FERRY_ECORRUPT, "llama@3 is damaged: 1 corrupt chunks, 0 missing");
	((verify_cb *)l->cb)(l->arg, FERRY_ECORRUPT, &res);
}

int node_verify(struct node *n, const char *name, uint64_t version, verify_cb *cb, void *arg)
{
	(void)name;
	(void)version;
	later(n, deliver_verify, (void *)cb, arg, 0);
	return 0;
}

/* sideload: one problem, so the result is FERRY_ECORRUPT after the records. */
static void deliver_sideload(struct later *l)
{
	struct bundle_progress p = {.phase = BUNDLE_PHASE_DONE, .bytes_done = 9, .bytes_total = 9};
	struct bundle_manifest_result m = {.file = "manifest-0001.fm", .name = "llama",
					   .version = 2, .outcome = 1};
	struct bundle_problem pb = {.code = FERRY_ECORRUPT, .file = "pack-0001.dat", .offset = 77,
				    .message = "pack-0001.dat: chunk refused"};
	struct bundle_report rep = {.manifests = &m, .nmanifests = 1, .chunks_bad = 1,
				    .problems_total = 1, .problems = &pb, .nproblems = 1};

	((node_bundle_progress_fn)l->cb2)(l->arg, &p);
	((void (*)(void *, int, const struct bundle_report *))l->cb)(l->arg, FERRY_ECORRUPT, &rep);
}

int node_sideload(struct node *n, int dirfd, node_bundle_progress_fn progress,
		  void (*cb)(void *arg, int rc, const struct bundle_report *rep), void *arg)
{
	close(dirfd);
	later2(n, deliver_sideload, (void *)cb, (void *)progress, arg, 0);
	return 0;
}

static void deliver_created(struct later *l)
{
	struct node_model_row row = {.name = "llama", .version = 2, .label = "x", .size = 10};
	struct node_bundle_created res = {.stats = {.manifests = 1, .packs = 1}, .rows = &row,
					  .nrows = 1};

	((void (*)(void *, int, const struct node_bundle_created *))l->cb)(l->arg, 0, &res);
}

int node_bundle_create(struct node *n, int outdirfd, int havefd, const struct bundle_ref *refs,
		       size_t nrefs, uint64_t pack_max, node_bundle_progress_fn progress,
		       void (*cb)(void *arg, int rc, const struct node_bundle_created *res),
		       void *arg)
{
	struct stat st;

	(void)pack_max;
	(void)progress;
	n->bundle_fd2_regular = havefd >= 0 && fstat(havefd, &st) == 0 && S_ISREG(st.st_mode);
	snprintf(n->bundle_models, sizeof(n->bundle_models), "%zu:%s@%llu", nrefs, refs[0].name,
		 (unsigned long long)refs[0].version);
	close(outdirfd);
	if (havefd >= 0)
		close(havefd);
	later(n, deliver_created, (void *)cb, arg, 0);
	return 0;
}

static void deliver_have(struct later *l)
{
	((void (*)(void *, int, uint64_t, uint64_t))l->cb)(l->arg, 0, 3, 42);
}

int node_have(struct node *n, int fd,
	      void (*cb)(void *arg, int rc, uint64_t nversions, uint64_t nchunks), void *arg)
{
	close(fd);
	later(n, deliver_have, (void *)cb, arg, 0);
	return 0;
}

/* ---- the server harness --------------------------------------------------- */

struct harness {
	char dir[64];
	char sock[128];
	struct config *cfg;
	uv_loop_t loop;
	uv_async_t stop;
	pthread_t thread;
	struct ctl_server *srv;
	struct node node;
	bool closed;
	bool stop_sent;
};

static void on_server_closed(void *arg)
{
	struct harness *h = arg;

	h->closed = true;
}

static void on_stop(uv_async_t *a)
{
	struct harness *h = a->data;

	ctl_server_close(h->srv, on_server_closed, h);
	uv_close((uv_handle_t *)a, NULL);
}

static void *loop_thread(void *arg)
{
	struct harness *h = arg;

	uv_run(&h->loop, UV_RUN_DEFAULT);
	return NULL;
}

static void harness_make(struct harness *h)
{
	memset(h, 0, sizeof(*h));
	strcpy(h->dir, "/tmp/test_ctl.XXXXXX");
	assert_non_null(mkdtemp(h->dir));
	chmod(h->dir, 0755); /* the unprivileged-client test connects from another uid */
	snprintf(h->sock, sizeof(h->sock), "%s/run/ferryd.sock", h->dir);
	assert_int_equal(config_default_dev(h->dir, &h->cfg), 0);
	free(h->cfg->socket);
	h->cfg->socket = xstrdup(h->sock);
	assert_int_equal(uv_loop_init(&h->loop), 0);
	h->node.loop = &h->loop;
	h->node.complete_after = 3;
}

static int harness_start(void **state)
{
	struct harness *h = xcalloc(1, sizeof(*h));

	ctl__set_timeouts(300, 300, 2000);
	harness_make(h);
	assert_int_equal(ctl_server_new(&h->loop, &h->node, h->cfg, &h->srv), 0);
	assert_int_equal(uv_async_init(&h->loop, &h->stop, on_stop), 0);
	h->stop.data = h;
	assert_int_equal(pthread_create(&h->thread, NULL, loop_thread, h), 0);
	*state = h;
	return 0;
}

static void rm_rf(const char *dir)
{
	char *cmd = xasprintf("rm -rf '%s'", dir);

	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
	free(cmd);
}

static int harness_stop(void **state)
{
	struct harness *h = *state;
	struct stat st;

	if (!h->stop_sent)
		uv_async_send(&h->stop);
	pthread_join(h->thread, NULL);
	assert_true(h->closed);
	assert_int_equal(uv_loop_close(&h->loop), 0);
	/* Closing removes the socket file. */
	assert_int_not_equal(lstat(h->sock, &st), 0);
	config_free(h->cfg);
	rm_rf(h->dir);
	free(h);
	return 0;
}

/* ---- a client that records what it got ------------------------------------ */

struct got {
	int n_data;
	int kinds[64];
	struct ctl_status status;
	struct node_peer_row peers[8];
	int n_peers;
	struct ctl_progress last_progress;
	int n_progress;
	char *mem[64];
	int n_mem;
	int stop_after_progress; /* return an error after this many progress messages */
	bool sign;		 /* answer a manifest with a signature */
	uint8_t sig[64];
	char body[64];
};

static int on_data(void *arg, struct ctl_client *c, const struct ctl_msg *m)
{
	struct got *g = arg;
	char **mem = &g->mem[g->n_mem++];
	struct ctl_manifest man;

	assert_true(g->n_mem < 64);
	g->kinds[g->n_data++] = m->kind;
	switch (m->kind) {
	case CTL_DATA_STATUS:
		assert_int_equal(ctl_data_decode(m->kind, m->data, m->data_len, &g->status, mem),
				 0);
		break;
	case CTL_DATA_PEER:
		assert_true(g->n_peers < 8);
		assert_int_equal(
		    ctl_data_decode(m->kind, m->data, m->data_len, &g->peers[g->n_peers++], mem),
		    0);
		break;
	case CTL_DATA_PROGRESS:
		assert_int_equal(
		    ctl_data_decode(m->kind, m->data, m->data_len, &g->last_progress, mem), 0);
		g->n_progress++;
		if (g->stop_after_progress && g->n_progress == g->stop_after_progress)
			return FERRY_ECANCELED;
		break;
	case CTL_DATA_MANIFEST:
		assert_int_equal(ctl_data_decode(m->kind, m->data, m->data_len, &man, mem), 0);
		assert_true(man.body_len < sizeof(g->body));
		memcpy(g->body, man.body, man.body_len);
		assert_int_equal(man.stats.files, 2);
		if (g->sign)
			return ctl_client_send_signature(c, g->sig);
		return FERRY_ECANCELED;
	default:
		break;
	}
	return 0;
}

static void got_free(struct got *g)
{
	for (int i = 0; i < g->n_mem; i++)
		free(g->mem[i]);
}

/* Run one request; rc is the result code, *msg (if not NULL) a copy of its message. */
static int call(const struct harness *h, struct ctl_request *req, int fd, struct got *g)
{
	struct ctl_client *c = NULL;
	int rc = ctl_client_connect(h->sock, &c);

	if (rc == 0)
		rc = ctl_client_request(c, req, fd);
	if (rc == 0)
		rc = ctl_client_replies(c, on_data, g);
	ctl_client_free(c);
	return rc;
}

static int call_cmd(const struct harness *h, const char *cmd, struct got *g)
{
	struct ctl_request req = {.cmd = cmd};

	return call(h, &req, -1, g);
}

/* ---- framing and codecs ---------------------------------------------------- */

static void test_header(void **state)
{
	uint8_t hdr[CTL_HDR_LEN];
	uint32_t len;

	(void)state;
	ctl_hdr_put(hdr, 0x01020304);
	assert_memory_equal(hdr, "\x01\x02\x03\x04", 4);
	ctl_hdr_put(hdr, 100);
	assert_int_equal(ctl_hdr_get(hdr, CTL_REQUEST_MAX, &len), 0);
	assert_int_equal(len, 100);
	ctl_hdr_put(hdr, 0);
	assert_int_equal(ctl_hdr_get(hdr, CTL_REQUEST_MAX, &len), FERRY_EPROTO);
	ctl_hdr_put(hdr, CTL_REQUEST_MAX + 1);
	assert_int_equal(ctl_hdr_get(hdr, CTL_REQUEST_MAX, &len), FERRY_ETOOBIG);
	assert_non_null(strstr(ferry_errmsg(FERRY_ETOOBIG), "larger than the limit"));
	memset(hdr, 0xff, sizeof(hdr));
	assert_int_equal(ctl_hdr_get(hdr, CTL_MSG_MAX, &len), FERRY_ETOOBIG);
}

static void test_request_round_trip(void **state)
{
	struct ctl_request req = {.cmd = "publish", .version = CTL_PROTO_VERSION}, got;
	const struct ctl_arg *a;
	uint8_t key[32], *msg;
	size_t len;

	(void)state;
	memset(key, 7, sizeof(key));
	ctl_request_str(&req, "name", "llama");
	ctl_request_uint(&req, "version", 1ull << 40);
	ctl_request_int(&req, "created", -5);
	ctl_request_bool(&req, "wait", true);
	ctl_request_bin(&req, "publisher", key, sizeof(key));
	assert_int_equal(ctl_request_encode(&req, &msg, &len), 0);
	assert_int_equal(((size_t)msg[2] << 8 | msg[3]) + CTL_HDR_LEN, len);
	assert_int_equal(ctl_request_decode(msg + CTL_HDR_LEN, len - CTL_HDR_LEN, &got), 0);
	assert_string_equal(got.cmd, "publish");
	assert_int_equal(got.version, CTL_PROTO_VERSION);
	assert_int_equal(got.n_args, 5);
	a = ctl_request_arg(&got, "name");
	assert_int_equal(a->type, CTL_T_STR);
	assert_string_equal(a->str, "llama");
	assert_int_equal(ctl_request_arg(&got, "version")->u, 1ull << 40);
	assert_int_equal(ctl_request_arg(&got, "created")->type, CTL_T_INT);
	assert_int_equal(ctl_request_arg(&got, "created")->i, -5);
	assert_true(ctl_request_arg(&got, "wait")->b);
	a = ctl_request_arg(&got, "publisher");
	assert_int_equal(a->type, CTL_T_BIN);
	assert_memory_equal(a->str, key, 32);
	assert_null(ctl_request_arg(&got, "label"));
	ctl_request_clear(&got);
	free(msg);
}

/* Build a request body by hand: {"t":1,"v":V,"cmd":CMD,"args":{...}} with extra pairs. */
static uint8_t *raw_request(uint64_t version, void (*extra)(struct mpk_w *w), size_t n_extra,
			    size_t *len)
{
	struct mpk_w w;
	uint8_t *p;

	mpk_w_init(&w);
	mpk_w_map(&w, 3 + n_extra);
	mpk_w_cstr(&w, "t");
	mpk_w_uint(&w, CTL_MSG_REQUEST);
	mpk_w_cstr(&w, "v");
	mpk_w_uint(&w, version);
	mpk_w_cstr(&w, "cmd");
	mpk_w_cstr(&w, "status");
	if (extra)
		extra(&w);
	assert_int_equal(mpk_w_take(&w, &p, len), 0);
	return p;
}

static void extra_nul(struct mpk_w *w)
{
	mpk_w_cstr(w, "args");
	mpk_w_map(w, 1);
	mpk_w_cstr(w, "name");
	mpk_w_str(w, "a\0b", 3);
}

static void extra_ctrl_key(struct mpk_w *w)
{
	mpk_w_cstr(w, "args");
	mpk_w_map(w, 1);
	mpk_w_cstr(w, "na\nme");
	mpk_w_cstr(w, "a");
}

static void extra_dup(struct mpk_w *w)
{
	mpk_w_cstr(w, "args");
	mpk_w_map(w, 2);
	mpk_w_cstr(w, "name");
	mpk_w_cstr(w, "a");
	mpk_w_cstr(w, "name");
	mpk_w_cstr(w, "b");
}

static void extra_many(struct mpk_w *w)
{
	mpk_w_cstr(w, "args");
	mpk_w_map(w, CTL_ARGS_MAX + 1);
	for (int i = 0; i <= CTL_ARGS_MAX; i++) {
		char k[8];

		snprintf(k, sizeof(k), "k%d", i);
		mpk_w_cstr(w, k);
		mpk_w_uint(w, 1);
	}
}

static void extra_long(struct mpk_w *w)
{
	char *s = xmalloc(CTL_STR_MAX + 1);

	memset(s, 'x', CTL_STR_MAX + 1);
	mpk_w_cstr(w, "args");
	mpk_w_map(w, 1);
	mpk_w_cstr(w, "label");
	mpk_w_str(w, s, CTL_STR_MAX + 1);
	free(s);
}

static void extra_nested(struct mpk_w *w)
{
	mpk_w_cstr(w, "args");
	mpk_w_map(w, 1);
	mpk_w_cstr(w, "name");
	mpk_w_array(w, 0);
}

static void extra_garbage_cmd(struct mpk_w *w)
{
	/* Anything at all after a version this ferryd does not speak. */
	mpk_w_cstr(w, "args");
	mpk_w_double(w, 1.5);
}

static void test_request_rejects(void **state)
{
	static const struct {
		void (*extra)(struct mpk_w *w);
		uint64_t version;
		int code;
		const char *words;
	} cases[] = {
	    {extra_nul, CTL_PROTO_VERSION, FERRY_EPROTO, "NUL"},
	    {extra_ctrl_key, CTL_PROTO_VERSION, FERRY_EPROTO, "control character"},
	    {extra_dup, CTL_PROTO_VERSION, FERRY_EPROTO, "appears twice"},
	    {extra_many, CTL_PROTO_VERSION, FERRY_EPROTO, "arguments (at most"},
	    {extra_long, CTL_PROTO_VERSION, FERRY_EPROTO, "bytes (at most"},
	    {extra_nested, CTL_PROTO_VERSION, FERRY_EPROTO, "not a string, integer"},
	    {extra_garbage_cmd, CTL_PROTO_VERSION, FERRY_EPROTO, "args is not a map"},
	    {extra_garbage_cmd, 99, FERRY_EVERSION, "version 99"},
	};
	struct ctl_request got;
	uint8_t *p;
	size_t len;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		p = raw_request(cases[i].version, cases[i].extra, 1, &len);
		assert_int_equal(ctl_request_decode(p, len, &got), cases[i].code);
		if (strstr(ferry_errmsg(cases[i].code), cases[i].words) == NULL)
			fail_msg("case %zu: '%s' lacks '%s'", i, ferry_errmsg(cases[i].code),
				 cases[i].words);
		assert_null(got.mem);
		free(p);
	}
	/* Not a map, and no version at all. */
	assert_int_equal(ctl_request_decode((const uint8_t *)"\x93\x01\x02\x03", 4, &got),
			 FERRY_EPROTO);
	assert_int_equal(ctl_request_decode((const uint8_t *)"\x81\xa1t\x01", 4, &got),
			 FERRY_EPROTO);
	assert_non_null(strstr(ferry_errmsg(FERRY_EPROTO), "no protocol version"));
}

/* Every prefix of a valid request is refused cleanly (ASan watches the reads). */
static void test_request_truncated(void **state)
{
	struct ctl_request req = {.cmd = "fetch", .version = CTL_PROTO_VERSION}, got;
	uint8_t *msg;
	size_t len;

	(void)state;
	ctl_request_str(&req, "name", "llama");
	ctl_request_uint(&req, "version", 3);
	ctl_request_bool(&req, "wait", true);
	assert_int_equal(ctl_request_encode(&req, &msg, &len), 0);
	for (size_t n = 0; n < len - CTL_HDR_LEN; n++) {
		uint8_t *copy = xmalloc(n ? n : 1);

		memcpy(copy, msg + CTL_HDR_LEN, n);
		assert_int_not_equal(ctl_request_decode(copy, n, &got), 0);
		free(copy);
	}
	free(msg);
}

static void test_request_encode_limits(void **state)
{
	struct ctl_request req = {.cmd = "fetch"};
	uint8_t *msg;
	size_t len;

	(void)state;
	ctl_request_str(&req, "", "x");
	assert_int_equal(ctl_request_encode(&req, &msg, &len), FERRY_EINVAL);
	req.n_args = 0;
	req.cmd = "a-command-name-much-longer-than-32-bytes";
	assert_int_equal(ctl_request_encode(&req, &msg, &len), FERRY_EINVAL);
}

static void test_data_round_trip(void **state)
{
	struct ctl_status st, got;
	struct ctl_progress pr = {.name = "llama"}, pgot;
	struct node_peer_row peer = {.address = "hq:7440", .site = "hq", .state = "backoff"}, pr2;
	struct ctl_msg m;
	uint8_t *msg;
	size_t len;
	char *mem;

	(void)state;
	memset(&st, 0, sizeof(st));
	memset(st.node.node_id, 0x5a, 32);
	st.node.site = "clinic-b";
	st.node.uptime_s = 77;
	st.node.fs_free = 1ull << 40;
	st.node.peers_known = 9;
	st.node.rate_out_bps = 123.25;
	st.ferryd_version = "1.2.3";
	st.node.limit_wan_upload = 1000000;
	assert_int_equal(ctl_data_encode(CTL_DATA_STATUS, &st, &msg, &len), 0);
	assert_int_equal(ctl_msg_decode(msg + CTL_HDR_LEN, len - CTL_HDR_LEN, &m), 0);
	assert_int_equal(m.type, CTL_MSG_DATA);
	assert_int_equal(m.kind, CTL_DATA_STATUS);
	assert_int_equal(ctl_data_decode(CTL_DATA_STATUS, m.data, m.data_len, &got, &mem), 0);
	assert_memory_equal(got.node.node_id, st.node.node_id, 32);
	assert_string_equal(got.node.site, "clinic-b");
	assert_int_equal(got.node.uptime_s, 77);
	assert_int_equal(got.node.fs_free, 1ull << 40);
	assert_int_equal(got.node.peers_known, 9);
	assert_true(got.node.rate_out_bps == 123.25);
	assert_null(got.node.store_error); /* NULL stays NULL */
	assert_string_equal(got.ferryd_version, "1.2.3");
	assert_int_equal(got.node.limit_wan_upload, 1000000);
	assert_int_equal(got.node.limit_download, 0);
	free(mem);
	free(msg);

	{
		struct node_limit_row lim = {.name = "upload",
					     .rate_bps = 8000000,
					     .source = "runtime",
					     .config_bps = 1000000},
				      lgot;

		assert_int_equal(ctl_data_encode(CTL_DATA_LIMIT, &lim, &msg, &len), 0);
		assert_int_equal(ctl_msg_decode(msg + CTL_HDR_LEN, len - CTL_HDR_LEN, &m), 0);
		assert_int_equal(m.kind, CTL_DATA_LIMIT);
		assert_string_equal(ctl_data_kind_name(CTL_DATA_LIMIT), "limit");
		assert_int_equal(ctl_data_decode(CTL_DATA_LIMIT, m.data, m.data_len, &lgot, &mem),
				 0);
		assert_string_equal(lgot.name, "upload");
		assert_int_equal(lgot.rate_bps, 8000000);
		assert_string_equal(lgot.source, "runtime");
		assert_int_equal(lgot.config_bps, 1000000);
		free(mem);
		free(msg);
	}

	pr.p.version = 4;
	pr.p.need_bytes = 10;
	pr.p.have_bytes = 5;
	pr.p.sources = 3;
	pr.p.waiting_manifest = true;
	assert_int_equal(ctl_data_encode(CTL_DATA_PROGRESS, &pr, &msg, &len), 0);
	assert_int_equal(ctl_msg_decode(msg + CTL_HDR_LEN, len - CTL_HDR_LEN, &m), 0);
	assert_int_equal(ctl_data_decode(CTL_DATA_PROGRESS, m.data, m.data_len, &pgot, &mem), 0);
	assert_string_equal(pgot.name, "llama");
	assert_int_equal(pgot.p.version, 4);
	assert_int_equal(pgot.p.have_bytes, 5);
	assert_int_equal(pgot.p.sources, 3);
	assert_true(pgot.p.waiting_manifest);
	assert_false(pgot.p.complete);
	free(mem);
	free(msg);

	peer.rtt_ms = -1;
	peer.last_seen = -3;
	peer.banned_until = 1700000600;
	assert_int_equal(ctl_data_encode(CTL_DATA_PEER, &peer, &msg, &len), 0);
	assert_int_equal(ctl_msg_decode(msg + CTL_HDR_LEN, len - CTL_HDR_LEN, &m), 0);
	assert_int_equal(ctl_data_decode(CTL_DATA_PEER, m.data, m.data_len, &pr2, &mem), 0);
	assert_string_equal(pr2.state, "backoff");
	assert_true(pr2.rtt_ms == -1);
	assert_int_equal(pr2.last_seen, -3);
	assert_int_equal(pr2.banned_until, 1700000600);
	free(mem);
	free(msg);
}

/* A newer daemon's extra field is skipped; a known field of the wrong type is an error. */
static void test_data_forward_compatible(void **state)
{
	struct node_model_row row;
	struct mpk_w w;
	uint8_t *p;
	size_t len;
	char *mem;

	(void)state;
	mpk_w_init(&w);
	mpk_w_map(&w, 3);
	mpk_w_cstr(&w, "name");
	mpk_w_cstr(&w, "llama");
	mpk_w_cstr(&w, "colour");
	mpk_w_map(&w, 1);
	mpk_w_cstr(&w, "x");
	mpk_w_array(&w, 0);
	mpk_w_cstr(&w, "version");
	mpk_w_uint(&w, 12);
	assert_int_equal(mpk_w_take(&w, &p, &len), 0);
	assert_int_equal(ctl_data_decode(CTL_DATA_MODEL, p, len, &row, &mem), 0);
	assert_string_equal(row.name, "llama");
	assert_int_equal(row.version, 12);
	assert_null(row.label);
	free(mem);
	free(p);

	mpk_w_map(&w, 1);
	mpk_w_cstr(&w, "version");
	mpk_w_cstr(&w, "twelve");
	assert_int_equal(mpk_w_take(&w, &p, &len), 0);
	assert_int_equal(ctl_data_decode(CTL_DATA_MODEL, p, len, &row, &mem), FERRY_EPROTO);
	assert_non_null(strstr(ferry_errmsg(FERRY_EPROTO), "field version of the model record"));
	free(mem);
	free(p);
}

static void test_result_and_signature(void **state)
{
	uint8_t *msg, sig[64], got[64];
	struct ctl_msg m;
	struct mpk_w w;
	size_t len;

	(void)state;
	ctl_result_encode(FERRY_ENOSPC, "not enough space for llama@3", &msg, &len);
	assert_int_equal(ctl_msg_decode(msg + CTL_HDR_LEN, len - CTL_HDR_LEN, &m), 0);
	assert_int_equal(m.type, CTL_MSG_RESULT);
	assert_int_equal(m.code, FERRY_ENOSPC);
	assert_int_equal(m.msg_len, strlen("not enough space for llama@3"));
	assert_memory_equal(m.msg, "not enough space for llama@3", m.msg_len);
	free(msg);

	/* A result with a positive code is nonsense. */
	mpk_w_init(&w);
	mpk_w_map(&w, 2);
	mpk_w_cstr(&w, "t");
	mpk_w_uint(&w, CTL_MSG_RESULT);
	mpk_w_cstr(&w, "code");
	mpk_w_uint(&w, 5);
	assert_int_equal(mpk_w_take(&w, &msg, &len), 0);
	assert_int_equal(ctl_msg_decode(msg, len, &m), FERRY_EPROTO);
	free(msg);

	memset(sig, 0x33, sizeof(sig));
	ctl_signature_encode(sig, &msg, &len);
	assert_int_equal(ctl_signature_decode(msg + CTL_HDR_LEN, len - CTL_HDR_LEN, got), 0);
	assert_memory_equal(got, sig, 64);
	/* A request is not a signature. */
	assert_int_equal(ctl_msg_decode(msg + CTL_HDR_LEN, len - CTL_HDR_LEN, &m), FERRY_EPROTO);
	free(msg);
}

static void test_progress_format(void **state)
{
	struct ctl_progress p = {.name = "llama"};
	char buf[256];

	(void)state;
	assert_string_equal(ctl_progress_format(buf, sizeof(buf), &p, true),
			    "llama: waiting for a peer to offer the manifest");
	p.p.version = 7;
	assert_string_equal(ctl_progress_format(buf, sizeof(buf), &p, true),
			    "llama@7: starting, size not known yet");
	p.p.need_bytes = 1000u << 20;
	p.p.have_bytes = 420u << 20;
	p.p.rate_bps = 4e6; /* 580 MiB at 4 Mbit/s: 1216.3 s */
	p.p.sources = 2;
	assert_string_equal(ctl_progress_format(buf, sizeof(buf), &p, true),
			    "llama@7  [########            ]  42.0%  420.0 MiB of 1000.0 MiB  "
			    "4.0 Mbit/s  ETA 20m16s  2 sources");
	p.p.rate_bps = 0;
	p.p.sources = 1;
	assert_string_equal(ctl_progress_format(buf, sizeof(buf), &p, false),
			    "llama@7   42.0%  420.0 MiB of 1000.0 MiB  0 bit/s  ETA --  1 source");
	p.p.have_bytes = p.p.need_bytes;
	p.p.complete = true;
	p.p.rate_bps = 3e9;
	assert_string_equal(
	    ctl_progress_format(buf, sizeof(buf), &p, false),
	    "llama@7  100.0%  1000.0 MiB of 1000.0 MiB  3.00 Gbit/s  done  1 source");
	p.p.complete = false;
	p.p.have_bytes = 0;
	p.p.rate_bps = 8e6 / 3600; /* 1000 MiB at 1 MB/h */
	assert_non_null(strstr(ctl_progress_format(buf, sizeof(buf), &p, false), "ETA 1048h"));
}

/* ---- the server ------------------------------------------------------------ */

static void test_status(void **state)
{
	struct harness *h = *state;
	struct got g = {0};
	char hex[65];

	assert_int_equal(call_cmd(h, "status", &g), 0);
	assert_int_equal(g.n_data, 1);
	assert_int_equal(g.kinds[0], CTL_DATA_STATUS);
	assert_string_equal(g.status.node.site, "clinic-a");
	assert_int_equal(g.status.node.uptime_s, 3600);
	assert_int_equal(g.status.node.peers_connected, 2);
	assert_string_equal(hex_encode(hex, g.status.node.node_id, 4), "abababab");
	assert_non_null(g.status.ferryd_version);
	got_free(&g);
}

static void test_peers_and_models(void **state)
{
	struct harness *h = *state;
	struct got g = {0};

	assert_int_equal(call_cmd(h, "peers", &g), 0);
	assert_int_equal(g.n_peers, 3);
	assert_string_equal(g.peers[2].address, "hq:7440");
	assert_int_equal(g.peers[1].last_seen, 1700000001);
	got_free(&g);
	memset(&g, 0, sizeof(g));
	assert_int_equal(call_cmd(h, "models", &g), 0);
	assert_int_equal(g.n_data, 1);
	assert_int_equal(g.kinds[0], CTL_DATA_MODEL);
	got_free(&g);
}

/* limits lists records; limit is a write command whose refusal reaches the client. */
static void test_limits(void **state)
{
	struct harness *h = *state;
	struct ctl_request req = {.cmd = "limit"};
	struct got g = {0};

	assert_int_equal(call_cmd(h, "limits", &g), 0);
	assert_int_equal(g.n_data, 1);
	assert_int_equal(g.kinds[0], CTL_DATA_LIMIT);
	got_free(&g);
	memset(&g, 0, sizeof(g));
	ctl_request_str(&req, "limit", "wan_download");
	assert_int_equal(call(h, &req, -1, &g), FERRY_EINVAL);
	assert_string_equal(ferry_errmsg(FERRY_EINVAL), "limit needs the argument 'rate'");
	ctl_request_str(&req, "rate", "4000000");
	assert_int_equal(call(h, &req, -1, &g), 0);
	assert_int_equal(g.n_data, 1);
	assert_int_equal(g.kinds[0], CTL_DATA_LIMIT);
	got_free(&g);
	memset(&g, 0, sizeof(g));
	req.n_args = 0;
	ctl_request_str(&req, "limit", "wan_speed");
	ctl_request_str(&req, "rate", "1mbit");
	assert_int_equal(call(h, &req, -1, &g), FERRY_EINVAL);
	assert_string_equal(ferry_errmsg(FERRY_EINVAL), "'wan_speed' is not a rate limit");
	assert_int_equal(g.n_data, 0);
}

static void test_unknown_and_bad_args(void **state)
{
	struct harness *h = *state;
	struct ctl_request req = {.cmd = "fetch"};
	struct got g = {0};

	assert_int_equal(call_cmd(h, "frobnicate", &g), FERRY_EINVAL);
	assert_string_equal(ferry_errmsg(FERRY_EINVAL),
			    "this ferryd has no command 'frobnicate' (is ferryctl newer than "
			    "ferryd?)");
	assert_int_equal(call(h, &req, -1, &g), FERRY_EINVAL);
	assert_string_equal(ferry_errmsg(FERRY_EINVAL), "fetch needs the argument 'name'");
	ctl_request_str(&req, "name", "llama");
	ctl_request_str(&req, "version", "3");
	assert_int_equal(call(h, &req, -1, &g), FERRY_EINVAL);
	assert_string_equal(ferry_errmsg(FERRY_EINVAL),
			    "argument 'version' of fetch must be an unsigned integer");
	req.n_args = 0;
	ctl_request_str(&req, "name", "Bad Name");
	assert_int_equal(call(h, &req, -1, &g), FERRY_EINVAL);
	assert_non_null(strstr(ferry_errmsg(FERRY_EINVAL), "Bad Name"));
	req.n_args = 0;
	ctl_request_str(&req, "name", "llama");
	ctl_request_bool(&req, "force", true);
	assert_int_equal(call(h, &req, -1, &g), FERRY_EINVAL);
	assert_string_equal(ferry_errmsg(FERRY_EINVAL), "fetch takes no argument 'force'");
	assert_int_equal(g.n_data, 0);
}

static void test_fetch(void **state)
{
	struct harness *h = *state;
	struct ctl_request req = {.cmd = "fetch"};
	struct got g = {0};

	ctl_request_str(&req, "name", "llama");
	assert_int_equal(call(h, &req, -1, &g), 0);
	/* Without wait: one progress message, then the result. */
	assert_int_equal(g.n_progress, 1);
	assert_string_equal(g.last_progress.name, "llama");
	assert_int_equal(g.last_progress.p.need_bytes, 1000);
	got_free(&g);

	h->node.fetch_fails = true;
	memset(&g, 0, sizeof(g));
	assert_int_equal(call(h, &req, -1, &g), FERRY_ENOSPC);
	assert_string_equal(ferry_errmsg(FERRY_ENOSPC),
			    "llama@7 needs 1 GiB more than the free space");
	h->node.fetch_fails = false;
}

static void test_fetch_wait(void **state)
{
	struct harness *h = *state;
	struct ctl_request req = {.cmd = "fetch"};
	struct got g = {0};

	atomic_store(&h->node.progress_calls, 0);
	h->node.complete_after = 14;
	ctl_request_str(&req, "name", "llama");
	ctl_request_uint(&req, "version", 7);
	ctl_request_bool(&req, "wait", true);
	assert_int_equal(call(h, &req, -1, &g), 0);
	/*
	 * The first report comes with the request; completion is looked for
	 * every 50 ms (14 looks: at least 650 ms) but reported only every
	 * 500 ms, and once more when complete.
	 */
	assert_int_equal(atomic_load(&h->node.progress_calls), 14);
	assert_true(g.n_progress >= 3);
	assert_true(g.n_progress <= 5);
	assert_true(g.last_progress.p.complete);
	assert_int_equal(g.last_progress.p.have_bytes, 1000);
	assert_int_equal(g.last_progress.p.version, 7);
	got_free(&g);
}

/* A client that leaves mid-stream: the daemon stops streaming and serves others. */
static void test_fetch_wait_client_leaves(void **state)
{
	struct harness *h = *state;
	struct ctl_request req = {.cmd = "fetch"};
	struct got g = {0};

	atomic_store(&h->node.progress_calls, 0);
	h->node.complete_after = 1000000;
	ctl_request_str(&req, "name", "llama");
	ctl_request_bool(&req, "wait", true);
	g.stop_after_progress = 2;
	assert_int_equal(call(h, &req, -1, &g), FERRY_ECANCELED);
	got_free(&g);
	memset(&g, 0, sizeof(g));
	assert_int_equal(call_cmd(h, "status", &g), 0);
	got_free(&g);
	h->node.complete_after = 3;
}

/* A daemon that stops while a client waits tells it so. */
static struct harness *stopping;

static int stop_on_progress(void *arg, struct ctl_client *c, const struct ctl_msg *m)
{
	(void)arg;
	(void)c;
	(void)m;
	if (!stopping->stop_sent) {
		stopping->stop_sent = true;
		uv_async_send(&stopping->stop);
	}
	return 0;
}

static void test_fetch_wait_shutdown(void **state)
{
	struct harness *h = *state;
	struct ctl_request req = {.cmd = "fetch"};
	struct ctl_client *c;

	h->node.complete_after = 1000000;
	stopping = h;
	ctl_request_str(&req, "name", "llama");
	ctl_request_bool(&req, "wait", true);
	assert_int_equal(ctl_client_connect(h->sock, &c), 0);
	assert_int_equal(ctl_client_request(c, &req, -1), 0);
	assert_int_equal(ctl_client_replies(c, stop_on_progress, NULL), FERRY_ECANCELED);
	assert_string_equal(ferry_errmsg(FERRY_ECANCELED), "ferryd is shutting down");
	ctl_client_free(c);
}

static void test_cancel(void **state)
{
	struct harness *h = *state;
	struct ctl_request req = {.cmd = "cancel"};
	struct got g = {0};

	ctl_request_str(&req, "name", "missing");
	assert_int_equal(call(h, &req, -1, &g), FERRY_ENOENT);
	assert_string_equal(ferry_errmsg(FERRY_ENOENT), "model 'missing' is not wanted");
	req.n_args = 0;
	ctl_request_str(&req, "name", "llama");
	assert_int_equal(call(h, &req, -1, &g), 0);
	assert_int_equal(atomic_load(&h->node.canceled), 1);
}

static void publish_request(struct ctl_request *req, uint64_t version, const uint8_t *pk)
{
	memset(req, 0, sizeof(*req));
	req->cmd = "publish";
	ctl_request_str(req, "name", "llama");
	ctl_request_uint(req, "version", version);
	ctl_request_str(req, "label", "q4 quantised");
	ctl_request_bin(req, "publisher", pk, 32);
}

static void test_publish(void **state)
{
	struct harness *h = *state;
	struct ctl_request req;
	struct got g = {0};
	uint8_t pk[32] = {1}, *sealed;
	size_t sealed_len;
	int dirfd = open(h->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	assert_true(dirfd >= 0);
	publish_request(&req, 5, pk);
	g.sign = true;
	memset(g.sig, 0x77, sizeof(g.sig));
	assert_int_equal(call(h, &req, dirfd, &g), 0);
	assert_true(h->node.ingest_was_dir);
	assert_string_equal(g.body, (const char *)fake_body);
	/* The daemon committed the body it sent, sealed with the signature we sent. */
	assert_int_equal(manifest_seal(fake_body, sizeof(fake_body), g.sig, &sealed, &sealed_len),
			 0);
	assert_int_equal(h->node.signed_len, sealed_len);
	assert_memory_equal(h->node.signed_bytes, sealed, sealed_len);
	free(sealed);
	got_free(&g);

	/* An ingest the node refuses at once. */
	memset(&g, 0, sizeof(g));
	publish_request(&req, 1, pk);
	assert_int_equal(call(h, &req, dirfd, &g), FERRY_EOLDVERSION);
	assert_string_equal(ferry_errmsg(FERRY_EOLDVERSION),
			    "model 'llama' is already at version 4");

	/* No descriptor, a descriptor that is no directory, a short key. */
	publish_request(&req, 5, pk);
	assert_int_equal(call(h, &req, -1, &g), FERRY_EINVAL);
	assert_non_null(strstr(ferry_errmsg(FERRY_EINVAL), "needs a directory descriptor"));
	assert_int_equal(call(h, &req, STDERR_FILENO, &g), FERRY_EINVAL);
	assert_non_null(strstr(ferry_errmsg(FERRY_EINVAL), "is not a directory"));
	req.args[3].len = 31;
	assert_int_equal(call(h, &req, dirfd, &g), FERRY_EINVAL);
	assert_non_null(strstr(ferry_errmsg(FERRY_EINVAL), "not a 32-byte public key"));

	/* A client that hangs up instead of signing leaves the daemon serving. */
	memset(&g, 0, sizeof(g));
	publish_request(&req, 6, pk);
	assert_int_equal(call(h, &req, dirfd, &g), FERRY_ECANCELED);
	got_free(&g);
	memset(&g, 0, sizeof(g));
	assert_int_equal(call_cmd(h, "status", &g), 0);
	got_free(&g);
	close(dirfd);
}

/* A client that gets the body and then never signs is timed out. */
static void test_publish_signature_deadline(void **state)
{
	struct harness *h = *state;
	struct ctl_request req;
	struct ctl_client *c;
	uint8_t pk[32] = {1};
	int dirfd = open(h->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	publish_request(&req, 9, pk);
	assert_int_equal(ctl_client_connect(h->sock, &c), 0);
	assert_int_equal(ctl_client_request(c, &req, dirfd), 0);
	close(dirfd);
	/* No on_data: the manifest arrives, nobody signs it. */
	assert_int_equal(ctl_client_replies(c, NULL, NULL), FERRY_ETIMEDOUT);
	assert_non_null(strstr(ferry_errmsg(FERRY_ETIMEDOUT), "no signature arrived"));
	ctl_client_free(c);
}

static void test_export(void **state)
{
	struct harness *h = *state;
	struct ctl_request req = {.cmd = "export"};
	struct got g = {0};
	char *out = xasprintf("%s/out", h->dir), *file = xasprintf("%s/out/weights.bin", h->dir);
	struct stat st;
	int dirfd;

	assert_int_equal(mkdir(out, 0755), 0);
	dirfd = open(out, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ctl_request_str(&req, "name", "llama");
	ctl_request_uint(&req, "version", 3);
	ctl_request_bool(&req, "sha256", true);
	assert_int_equal(call(h, &req, dirfd, &g), 0);
	assert_string_equal(h->node.export_name, "llama@3");
	assert_int_equal(stat(file, &st), 0);
	assert_int_equal(st.st_size, 1);
	close(dirfd);
	free(out);
	free(file);
}

/* The production commands: their records, a failure's sentence, a client that leaves. */
static void test_ops(void **state)
{
	struct harness *h = *state;
	struct ctl_request req = {.cmd = "activate"};
	struct ctl_client *c = NULL;
	struct got g = {0};

	ctl_request_str(&req, "name", "llama");
	ctl_request_uint(&req, "version", 9);
	assert_int_equal(call(h, &req, -1, &g), FERRY_ENOENT);
	assert_string_equal(ferry_errmsg(FERRY_ENOENT),
			    "cannot activate llama@9: no such version; llama stays at version 3");
	assert_int_equal(g.n_data, 0);
	req.n_args = 0;
	ctl_request_str(&req, "name", "llama");
	assert_int_equal(call(h, &req, -1, &g), FERRY_EINVAL); /* activate needs a version */
	ctl_request_uint(&req, "version", 4);
	assert_int_equal(call(h, &req, -1, &g), 0);
	assert_int_equal(g.n_data, 1);
	assert_int_equal(g.kinds[0], CTL_DATA_ACTIVATION);
	/* A client that leaves before the activation ends: the callback finds it gone. */
	assert_int_equal(ctl_client_connect(h->sock, &c), 0);
	assert_int_equal(ctl_client_request(c, &req, -1), 0);
	ctl_client_free(c);

	g.n_data = 0;
	assert_int_equal(call_cmd(h, "gc", &g), 0);
	assert_int_equal(g.n_data, 3);
	assert_int_equal(g.kinds[0], CTL_DATA_EVICTED);
	assert_int_equal(g.kinds[2], CTL_DATA_GC);
	g.n_data = 0;
	assert_int_equal(call_cmd(h, "metrics", &g), 0);
	assert_int_equal(g.kinds[0], CTL_DATA_TEXT);
	/* The harness sets no reload hook. */
	assert_int_equal(call_cmd(h, "reload", &g), FERRY_EINVAL);

	g.n_data = 0;
	memset(&req, 0, sizeof(req));
	req.cmd = "verify";
	ctl_request_str(&req, "name", "llama");
	assert_int_equal(call(h, &req, -1, &g), FERRY_ECORRUPT);
	assert_string_equal(ferry_errmsg(FERRY_ECORRUPT),
			    "llama@3 is damaged: 1 corrupt chunks, 0 missing");
	assert_int_equal(g.n_data, 2);
	assert_int_equal(g.kinds[0], CTL_DATA_PROBLEM);
	assert_int_equal(g.kinds[1], CTL_DATA_VERIFY);
	got_free(&g);
}

/* The sideload commands: their descriptors are checked, their records arrive. */
static void test_sideload_commands(void **state)
{
	struct harness *h = *state;
	struct ctl_request req = {.cmd = "sideload"};
	struct ctl_client *c = NULL;
	struct got g = {0};
	char *out = xasprintf("%s/out", h->dir), *file = xasprintf("%s/have", h->dir);
	int dirfd, fd;

	assert_int_equal(mkdir(out, 0755), 0);
	dirfd = open(out, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	fd = open(file, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	assert_true(dirfd >= 0 && fd >= 0);

	/* sideload: progress, manifest, problem, report, then the refusal's code. */
	assert_int_equal(call(h, &req, dirfd, &g), FERRY_ECORRUPT);
	assert_int_equal(g.n_data, 4);
	assert_int_equal(g.kinds[0], CTL_DATA_BUNDLE_PROGRESS);
	assert_int_equal(g.kinds[1], CTL_DATA_BUNDLE_MANIFEST);
	assert_int_equal(g.kinds[2], CTL_DATA_BUNDLE_PROBLEM);
	assert_int_equal(g.kinds[3], CTL_DATA_BUNDLE_REPORT);
	/* A file where a directory belongs is refused before the node sees it. */
	assert_int_equal(call(h, &req, fd, &g), FERRY_EINVAL);
	assert_non_null(strstr(ferry_errmsg(FERRY_EINVAL), "not a directory"));

	/* have takes a regular file, and no directory. */
	req.cmd = "have";
	assert_int_equal(call(h, &req, dirfd, &g), FERRY_EINVAL);
	assert_non_null(strstr(ferry_errmsg(FERRY_EINVAL), "not a regular file"));
	got_free(&g);
	memset(&g, 0, sizeof(g));
	assert_int_equal(call(h, &req, fd, &g), 0);
	assert_int_equal(g.n_data, 1);
	assert_int_equal(g.kinds[0], CTL_DATA_HAVE);

	/* bundle_create: a directory and a have-file; a second descriptor elsewhere is refused. */
	memset(&req, 0, sizeof(req));
	req.cmd = "bundle_create";
	ctl_request_str(&req, "models", "llama@2 mistral");
	got_free(&g);
	memset(&g, 0, sizeof(g));
	assert_int_equal(ctl_client_connect(h->sock, &c), 0);
	assert_int_equal(ctl_client_request2(c, &req, dirfd, fd), 0);
	assert_int_equal(ctl_client_replies(c, on_data, &g), 0);
	ctl_client_free(c);
	assert_string_equal(h->node.bundle_models, "2:llama@2");
	assert_int_equal(h->node.bundle_fd2_regular, 1);
	assert_int_equal(g.n_data, 2);
	assert_int_equal(g.kinds[0], CTL_DATA_MODEL);
	assert_int_equal(g.kinds[1], CTL_DATA_BUNDLE_CREATED);
	memset(&req, 0, sizeof(req));
	req.cmd = "bundle_create";
	ctl_request_str(&req, "models", "llama Bad!name");
	assert_int_equal(call(h, &req, dirfd, &g), FERRY_EINVAL);
	memset(&req, 0, sizeof(req));
	req.cmd = "sideload";
	assert_int_equal(ctl_client_connect(h->sock, &c), 0);
	assert_int_equal(ctl_client_request2(c, &req, dirfd, fd), 0);
	assert_int_equal(ctl_client_replies(c, on_data, &g), FERRY_EINVAL);
	assert_non_null(strstr(ferry_errmsg(FERRY_EINVAL), "takes one descriptor"));
	ctl_client_free(c);

	got_free(&g);
	close(fd);
	close(dirfd);
	free(out);
	free(file);
}

/* Send raw bytes on a fresh connection; return the result code the daemon sends (or 1 on EOF). */
static int raw_exchange(const struct harness *h, const void *bytes, size_t n)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	uint8_t hdr[CTL_HDR_LEN], buf[8192];
	struct ctl_msg m;
	uint32_t len;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), rc = 1;

	strcpy(sa.sun_path, h->sock);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	if (n > 0)
		assert_int_equal(send(fd, bytes, n, MSG_NOSIGNAL), (ssize_t)n);
	if (read_full(fd, hdr, sizeof(hdr)) == 0 && ctl_hdr_get(hdr, sizeof(buf), &len) == 0 &&
	    read_full(fd, buf, len) == 0 && ctl_msg_decode(buf, len, &m) == 0 &&
	    m.type == CTL_MSG_RESULT)
		rc = m.code;
	close(fd);
	return rc;
}

static void test_hostile_clients(void **state)
{
	struct harness *h = *state;
	struct got g = {0};
	uint8_t msg[64];

	/* A length far beyond the request limit: refused before any allocation. */
	ctl_hdr_put(msg, 0x7fffffff);
	assert_int_equal(raw_exchange(h, msg, 4), FERRY_ETOOBIG);
	/* Garbage that is not msgpack. */
	ctl_hdr_put(msg, 8);
	memcpy(msg + 4, "\xc1\xc1garbage", 8);
	assert_int_equal(raw_exchange(h, msg, 12), FERRY_EPROTO);
	/* A declared map far longer than the bytes. */
	ctl_hdr_put(msg, 5);
	memcpy(msg + 4, "\xdf\xff\xff\xff\xff", 5);
	assert_int_equal(raw_exchange(h, msg, 9), FERRY_EPROTO);
	/* Nothing at all (slowloris): the request deadline ends it. */
	assert_int_equal(raw_exchange(h, NULL, 0), FERRY_ETIMEDOUT);
	/* Half a header, then silence. */
	assert_int_equal(raw_exchange(h, msg, 2), FERRY_ETIMEDOUT);
	/* The daemon is still there for everyone else. */
	assert_int_equal(call_cmd(h, "status", &g), 0);
	got_free(&g);
}

static void test_too_many_clients(void **state)
{
	struct harness *h = *state;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct got g = {0};
	int fds[64], rc;

	/* Long enough for 64 idle clients to stay while we probe. */
	ctl__set_timeouts(60000, 300, 2000);
	strcpy(sa.sun_path, h->sock);
	for (int i = 0; i < 64; i++) {
		fds[i] = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		assert_int_equal(connect(fds[i], (struct sockaddr *)&sa, sizeof(sa)), 0);
	}
	assert_int_equal(call_cmd(h, "status", &g), FERRY_EBUSY);
	assert_non_null(strstr(ferry_errmsg(FERRY_EBUSY), "try again"));
	/* The refusal is read even when the daemon hung up before the request was written. */
	{
		struct ctl_client *c = NULL;
		struct ctl_request req = {.cmd = "status"};

		assert_int_equal(ctl_client_connect(h->sock, &c), 0);
		usleep(300000);
		assert_int_equal(ctl_client_request(c, &req, -1), 0);
		assert_int_equal(ctl_client_replies(c, on_data, &g), FERRY_EBUSY);
		assert_non_null(strstr(ferry_errmsg(FERRY_EBUSY), "try again"));
		ctl_client_free(c);
	}
	for (int i = 0; i < 64; i++)
		close(fds[i]);
	got_free(&g);
	memset(&g, 0, sizeof(g));
	/* Slots come back once the idle clients are gone. */
	for (int tries = 0; (rc = call_cmd(h, "status", &g)) == FERRY_EBUSY && tries < 100; tries++)
		usleep(10000);
	assert_int_equal(rc, 0);
	got_free(&g);
}

/* Write commands need root or the daemon's uid; read commands only need the socket. */
static void test_unprivileged_client(void **state)
{
	struct harness *h = *state;
	pid_t pid;
	int status;

	if (geteuid() != 0)
		skip();
	/* Stand in for "the client is in socket_group". */
	assert_int_equal(chmod(h->sock, 0666), 0);
	chmod(h->dir, 0755);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct ctl_request req = {.cmd = "fetch"};
		struct got g = {0};
		int bad = 0;

		if (setgroups(0, NULL) != 0 || setresgid(65534, 65534, 65534) != 0 ||
		    setresuid(65534, 65534, 65534) != 0)
			_exit(10);
		if (call_cmd(h, "status", &g) != 0)
			bad |= 1;
		ctl_request_str(&req, "name", "llama");
		if (call(h, &req, -1, &g) != FERRY_EPERM)
			bad |= 2;
		else if (strstr(ferry_errmsg(FERRY_EPERM), "needs root or ferryd's own user") ==
			 NULL)
			bad |= 4;
		_exit(bad);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(chmod(h->sock, 0660), 0);
}

static void test_client_errors(void **state)
{
	struct harness *h = *state;
	struct ctl_client *c = NULL;
	char *path = xasprintf("%s/nothing.sock", h->dir);
	char *want = xasprintf("cannot connect to %s: No such file or directory — is ferryd "
			       "running?",
			       path);

	assert_int_equal(ctl_client_connect(path, &c), FERRY_ENOENT);
	assert_string_equal(ferry_errmsg(FERRY_ENOENT), want);
	assert_null(c);
	free(path);
	free(want);
}

/* ---- socket setup ------------------------------------------------------------ */

static void test_socket_setup(void **state)
{
	struct harness h;
	struct ctl_server *s = NULL, *s2 = NULL;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct stat st;
	int fd;

	(void)state;
	harness_make(&h);
	/* A stale socket (bound, nobody listening) is replaced. */
	{
		char *run = xasprintf("%s/run", h.dir);

		assert_int_equal(mkdir(run, 0755), 0);
		free(run);
	}
	strcpy(sa.sun_path, h.sock);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	assert_int_equal(ctl_server_new(&h.loop, &h.node, h.cfg, &s), 0);
	assert_int_equal(stat(h.sock, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0660);
	/* A live one is not. */
	assert_int_equal(ctl_server_new(&h.loop, &h.node, h.cfg, &s2), FERRY_EBUSY);
	assert_non_null(strstr(ferry_errmsg(FERRY_EBUSY), "is ferryd already running?"));
	ctl_server_close(s, NULL, NULL);
	uv_run(&h.loop, UV_RUN_DEFAULT);
	assert_int_not_equal(lstat(h.sock, &st), 0);

	/* Something that is not a socket is left alone. */
	fd = open(h.sock, O_WRONLY | O_CREAT, 0644);
	close(fd);
	assert_int_equal(ctl_server_new(&h.loop, &h.node, h.cfg, &s2), FERRY_EEXIST);
	assert_int_equal(lstat(h.sock, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	unlink(h.sock);

	/* An unknown group is a configuration error that names it. */
	free(h.cfg->socket_group);
	h.cfg->socket_group = xstrdup("no-such-group-ferry");
	assert_int_equal(ctl_server_new(&h.loop, &h.node, h.cfg, &s2), FERRY_ECONFIG);
	assert_non_null(strstr(ferry_errmsg(FERRY_ECONFIG), "'no-such-group-ferry'"));
	/* A known one is given the socket. */
	if (getgrgid(getegid()) != NULL) {
		free(h.cfg->socket_group);
		h.cfg->socket_group = xstrdup(getgrgid(getegid())->gr_name);
		assert_int_equal(ctl_server_new(&h.loop, &h.node, h.cfg, &s), 0);
		assert_int_equal(stat(h.sock, &st), 0);
		assert_int_equal(st.st_gid, getegid());
		ctl_server_close(s, NULL, NULL);
		uv_run(&h.loop, UV_RUN_DEFAULT);
	}
	assert_int_equal(uv_loop_close(&h.loop), 0);
	config_free(h.cfg);
	rm_rf(h.dir);
}

/* ---- the table and the docs ---------------------------------------------------- */

/* Every command and argument of the table is in docs/protocol.md's control section. */
static void test_docs_cover_table(void **state)
{
	const char *src = getenv("FERRY_SRCDIR");
	char *path, *text = NULL, *section;
	size_t len;

	(void)state;
	if (src == NULL)
		skip();
	path = xasprintf("%s/docs/protocol.md", src);
	assert_int_equal(read_file(path, 1u << 20, &text, &len), 0);
	section = strstr(text, "\n## Control protocol");
	assert_non_null(section);
	for (size_t i = 0; ctl_cmd_at(i) != NULL; i++) {
		const struct ctl_cmd_info *c = ctl_cmd_at(i);
		char *row =
		    xasprintf("| `%s` | %s |", c->name, c->kind == CTL_WRITE ? "write" : "read");
		char *line = strstr(section, row), *end;

		if (line == NULL)
			fail_msg("docs/protocol.md has no row starting %s", row);
		end = strchr(line, '\n');
		for (const struct ctl_arg_spec *a = c->args; a->key != NULL; a++) {
			char *want = xasprintf("`%s`", a->key);
			char *at = strstr(line, want);

			if (at == NULL || (end != NULL && at > end))
				fail_msg("docs/protocol.md: the %s row does not name argument %s",
					 c->name, a->key);
			free(want);
		}
		free(row);
	}
	free(text);
	free(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_header),
	    cmocka_unit_test(test_request_round_trip),
	    cmocka_unit_test(test_request_rejects),
	    cmocka_unit_test(test_request_truncated),
	    cmocka_unit_test(test_request_encode_limits),
	    cmocka_unit_test(test_data_round_trip),
	    cmocka_unit_test(test_data_forward_compatible),
	    cmocka_unit_test(test_result_and_signature),
	    cmocka_unit_test(test_progress_format),
	    cmocka_unit_test_setup_teardown(test_status, harness_start, harness_stop),
	    cmocka_unit_test_setup_teardown(test_peers_and_models, harness_start, harness_stop),
	    cmocka_unit_test_setup_teardown(test_limits, harness_start, harness_stop),
	    cmocka_unit_test_setup_teardown(test_unknown_and_bad_args, harness_start, harness_stop),
	    cmocka_unit_test_setup_teardown(test_fetch, harness_start, harness_stop),
	    cmocka_unit_test_setup_teardown(test_fetch_wait, harness_start, harness_stop),
	    cmocka_unit_test_setup_teardown(test_fetch_wait_client_leaves, harness_start,
					    harness_stop),
	    cmocka_unit_test_setup_teardown(test_fetch_wait_shutdown, harness_start, harness_stop),
	    cmocka_unit_test_setup_teardown(test_cancel, harness_start, harness_stop),
	    cmocka_unit_test_setup_teardown(test_publish, harness_start, harness_stop),
	    cmocka_unit_test_setup_teardown(test_publish_signature_deadline, harness_start,
					    harness_stop),
	    cmocka_unit_test_setup_teardown(test_export, harness_start, harness_stop),
	    cmocka_unit_test_setup_teardown(test_ops, harness_start, harness_stop),
	    cmocka_unit_test_setup_teardown(test_hostile_clients, harness_start, harness_stop),
	    cmocka_unit_test_setup_teardown(test_too_many_clients, harness_start, harness_stop),
	    cmocka_unit_test_setup_teardown(test_unprivileged_client, harness_start, harness_stop),
	    cmocka_unit_test_setup_teardown(test_client_errors, harness_start, harness_stop),
	    cmocka_unit_test_setup_teardown(test_sideload_commands, harness_start, harness_stop),
	    cmocka_unit_test(test_socket_setup),
	    cmocka_unit_test(test_docs_cover_table),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
