/*
 * The control protocol between ferryd and ferryctl, and ferryd's control
 * server. This header is shared by both programs (as chrony's candm.h is):
 * the daemon serves it in ctl.c, the client speaks it in ctl_client.c, and
 * the encoders and decoders both use live in ctl_proto.c. The protocol is
 * written down in docs/protocol.md, "Control protocol".
 *
 * Glossary:
 *   message  4-byte big-endian length L (1 <= L <= CTL_MSG_MAX), then L bytes
 *            of msgpack: one map whose key "t" is the message type.
 *   request  client -> daemon, the first message of a connection: a command
 *            name, named arguments and the client's protocol version. A
 *            directory descriptor may travel with it (SCM_RIGHTS).
 *   data     daemon -> client: one typed record (a status, a peer row, a
 *            progress update, a manifest body to sign). Zero or more.
 *   result   daemon -> client: the last message of every exchange, a status
 *            code (0 or a FERRY_E* value) and a one-sentence message.
 *   signature client -> daemon, publish only: the signature of the manifest
 *            body the daemon sent as data.
 *
 * One connection carries one command. The envelope of every message and the
 * result message never change between versions, so a client can always read
 * why a daemon refused it.
 *
 * History of CTL_PROTO_VERSION:
 *   1  first version: status, peers, models, fetch (with wait), cancel,
 *      publish (two steps), export. Added later without a new version (an
 *      older daemon answers an unknown command with a result saying so):
 *      activate, rollback, pin, unpin, gc, metrics, reload, verify,
 *      limits, limit, sideload, bundle_create, have (with
 *      their data kinds and a second descriptor: bundle_create's have-file).
 */
#ifndef FERRY_CTL_H
#define FERRY_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ferry/bundle.h"
#include "ferry/node.h"
#include "ferry/publish.h"

#define CTL_PROTO_VERSION 1
/* Length prefix of every message. */
#define CTL_HDR_LEN 4
/*
 * Largest message the client accepts, checked before anything is allocated:
 * room for a manifest body of MANIFEST_SIGNED_MAX bytes and its envelope.
 */
#define CTL_MSG_MAX (17u * 1024u * 1024u)
/*
 * Largest message the daemon accepts (a request or a signature). Requests
 * are small, so a client cannot make ferryd allocate more than this per
 * connection.
 */
#define CTL_REQUEST_MAX (128u * 1024u)
/* Most arguments a request carries, and the longest key and string value. */
#define CTL_ARGS_MAX 16
#define CTL_KEY_MAX  32
#define CTL_STR_MAX  4096
/* Most models one bundle_create request names. */
#define CTL_BUNDLE_MODELS_MAX 64
/* Longest command name. */
#define CTL_CMD_MAX 32
/* Longest result message the daemon sends (it cuts longer ones). */
#define CTL_RESULT_MSG_MAX 4096

/* The value of key "t". */
enum ctl_msg_type {
	CTL_MSG_REQUEST = 1,
	CTL_MSG_DATA = 2,
	CTL_MSG_RESULT = 3,
	CTL_MSG_SIGNATURE = 4,
};

/* Who may run a command: read commands anyone who can connect, write commands root or ferryd's own
 * user. */
enum ctl_kind { CTL_READ, CTL_WRITE };

/* The type of an argument value. */
enum ctl_type {
	CTL_T_STR = 1, /* msgpack str: UTF-8 by convention, no NUL inside */
	CTL_T_UINT,    /* msgpack integer >= 0 */
	CTL_T_INT,     /* msgpack integer */
	CTL_T_BOOL,
	CTL_T_BIN,
};

/* One named argument of a request. */
struct ctl_arg {
	const char *key; /* NUL-terminated, 1..CTL_KEY_MAX bytes */
	enum ctl_type type;
	const char *str; /* STR: NUL-terminated; BIN: the bytes */
	size_t len;	 /* STR and BIN: length in bytes (without the NUL) */
	uint64_t u;	 /* UINT */
	int64_t i;	 /* INT */
	bool b;		 /* BOOL */
};

/* A request: a command name and its arguments. */
struct ctl_request {
	uint64_t version; /* CTL_PROTO_VERSION when sent by this build */
	const char *cmd;
	size_t n_args;
	struct ctl_arg args[CTL_ARGS_MAX];
	char *mem; /* decoded requests: owns every string above (ctl_request_clear) */
};

/* ---- framing ------------------------------------------------------------ */

/* Write the length prefix of a message of len bytes. */
void ctl_hdr_put(uint8_t hdr[static CTL_HDR_LEN], uint32_t len);
/*
 * Read a length prefix into *len. FERRY_ETOOBIG if it declares more than max
 * (CTL_MSG_MAX or CTL_REQUEST_MAX), FERRY_EPROTO if it declares an empty
 * message.
 */
int ctl_hdr_get(const uint8_t hdr[static CTL_HDR_LEN], uint32_t max, uint32_t *len);

/* ---- requests ----------------------------------------------------------- */

/* Append an argument to req (which borrows key and the value). At most CTL_ARGS_MAX. */
void ctl_request_str(struct ctl_request *req, const char *key, const char *v);
void ctl_request_uint(struct ctl_request *req, const char *key, uint64_t v);
void ctl_request_int(struct ctl_request *req, const char *key, int64_t v);
void ctl_request_bool(struct ctl_request *req, const char *key, bool v);
void ctl_request_bin(struct ctl_request *req, const char *key, const void *p, size_t n);

/*
 * Encode req as a whole message, length prefix included: *out is malloc'd
 * and owned by the caller. FERRY_EINVAL if an argument breaks the limits
 * above (named in the detail), FERRY_ETOOBIG if the message would be larger
 * than CTL_MSG_MAX.
 */
int ctl_request_encode(const struct ctl_request *req, uint8_t **out, size_t *len);

/*
 * Decode a request message body (without its length prefix), from an
 * untrusted client. FERRY_EVERSION if the client speaks another protocol
 * version (decided before anything else is looked at, so a newer request
 * layout is reported as a version mismatch); FERRY_EPROTO, with a detail
 * naming what is wrong, if it is not a request, a key or string is too long
 * or holds a NUL, a key repeats, or there are too many arguments. It does not
 * check the command or its arguments (that is the command table's job). On
 * success *out owns its strings: release them with ctl_request_clear().
 */
int ctl_request_decode(const uint8_t *p, size_t n, struct ctl_request *out);
/* Free what a decoded request owns and zero it. */
void ctl_request_clear(struct ctl_request *req);
/* The argument named key, or NULL. */
const struct ctl_arg *ctl_request_arg(const struct ctl_request *req, const char *key);

/* ---- data records ------------------------------------------------------- */

/* The kinds of data message, each with the struct it carries. */
enum ctl_data_kind {
	CTL_DATA_STATUS = 1, /* struct ctl_status */
	CTL_DATA_PEER,	     /* struct node_peer_row */
	CTL_DATA_MODEL,	     /* struct node_model_row */
	CTL_DATA_PROGRESS,   /* struct ctl_progress */
	CTL_DATA_MANIFEST,   /* struct ctl_manifest (publish: the body to sign) */
	CTL_DATA_ACTIVATION, /* struct ctl_activation (activate, rollback) */
	CTL_DATA_PIN,	     /* struct ctl_pin (pin, unpin) */
	CTL_DATA_GC,	     /* struct ctl_gc (gc: the totals) */
	CTL_DATA_EVICTED,    /* struct ctl_evicted (gc: one evicted version) */
	CTL_DATA_TEXT,	     /* struct ctl_text (metrics: the Prometheus text) */
	CTL_DATA_PROBLEM,    /* struct ctl_problem (verify: one bad chunk) */
	CTL_DATA_VERIFY,     /* struct ctl_verify (verify: the totals) */
	CTL_DATA_LIMIT,	     /* struct node_limit_row */
	CTL_DATA_BUNDLE_PROGRESS, /* struct ctl_bundle_progress (sideload, bundle_create) */
	CTL_DATA_BUNDLE_MANIFEST, /* struct ctl_bundle_manifest (sideload: one per manifest file) */
	CTL_DATA_BUNDLE_PROBLEM,  /* struct ctl_bundle_problem (sideload: one per problem listed) */
	CTL_DATA_BUNDLE_REPORT,	  /* struct ctl_bundle_report (sideload: the counts, last) */
	CTL_DATA_BUNDLE_CREATED,  /* struct bundle_create_stats (bundle_create, after its model rows) */
	CTL_DATA_HAVE,		  /* struct ctl_have (have) */
};

/* status: the node's status and the daemon's version. */
struct ctl_status {
	struct node_status node;
	const char *ferryd_version;
};

/* fetch: one progress report of NAME. */
struct ctl_progress {
	const char *name;
	struct node_progress p;
};

/* publish, step 1: the unsigned manifest body and what ingesting it did. */
struct ctl_manifest {
	const uint8_t *body;
	size_t body_len;
	struct publish_stats stats;
};

/* activate, rollback: what is active now and what was before. */
struct ctl_activation {
	const char *name;
	uint64_t active;   /* the active version now */
	uint64_t previous; /* the rollback target now: after a switch, what was active before */
	uint64_t held;	   /* auto-activation waits for a version above this (0: none) */
	bool switched;	   /* false: the version was active already */
	bool materialized; /* its files were written (false: a verified copy was there) */
	bool hook_ran;
	const char *hook_error; /* why on_activate failed (the switch stands); NULL if it did not */
	unsigned removed;	/* materialized versions removed beyond keep_versions */
};

/* pin, unpin: how many versions changed (0: they were so already). */
struct ctl_pin {
	const char *name;
	uint64_t version; /* as asked (0: the active one / every pin) */
	bool pinned;	  /* pin (true) or unpin */
	uint64_t changed;
};

/* gc: the totals, after one ctl_evicted record per evicted version. */
struct ctl_gc {
	uint64_t freed_chunks, freed_bytes; /* encoded bytes of the chunks dropped */
	uint64_t usage_before, usage_after; /* store bytes */
	uint64_t short_by; /* still over cache_quota / under min_free_space by this much */
};

struct ctl_evicted {
	const char *name;
	uint64_t version;
	uint64_t bytes;
};

/* metrics: a text document. */
struct ctl_text {
	const char *text;
};

/* verify: one bad chunk or index piece (struct export_problem), or a materialized file. */
struct ctl_problem {
	const char *path;    /* file of the version */
	uint64_t offset;     /* where the chunk starts in it */
	uint8_t chunk[32];   /* chunk or index piece id; zero for a materialized file */
	const char *problem; /* "corrupt", "missing", or "files" (the materialized copy) */
	bool index_piece;
	const char *detail; /* "files": what differs; NULL otherwise */
};

/* verify: the totals (the result is FERRY_ECORRUPT / FERRY_EINCOMPLETE when bad). */
struct ctl_verify {
	const char *name;
	uint64_t version;
	uint64_t chunks, bytes, corrupt, missing; /* struct export_verify_stats */
	bool materialized;			  /* models/NAME/VERSION exists and was checked */
	bool files_ok; /* ... and holds exactly the version's files (size and SHA-256) */
};

/* sideload, bundle_create: where the job is (struct bundle_progress on the wire). */
struct ctl_bundle_progress {
	const char *phase; /* "manifests", "index", "chunks", "done" */
	const char *file;  /* the bundle file at hand, NULL between files */
	uint64_t bytes_done, bytes_total, chunks_done, chunks_total;
};

/* sideload: what became of one manifest file (struct bundle_manifest_result). */
struct ctl_bundle_manifest {
	const char *file, *name;
	uint64_t version;
	int64_t outcome; /* enum catalog_outcome (> 0), or the FERRY_E* code it was refused with */
	bool complete;
};

/* sideload: one thing refused or missing (struct bundle_problem). */
struct ctl_bundle_problem {
	int64_t code;
	const char *file;
	uint64_t offset;
	bool has_id;
	uint8_t id[32];
	const char *message;
};

/* sideload: the counts of struct bundle_report. */
struct ctl_bundle_report {
	uint64_t manifests, manifests_refused;
	uint64_t chunks_imported, bytes_imported, chunks_present, chunks_bad, chunks_missing;
	uint64_t chunks_unreferenced, problems_total;
	bool delta;
};

/* have: what the have-file lists. */
struct ctl_have {
	uint64_t versions, chunks;
};

/* The kind's name as it appears on the wire ("status"); NULL for an unknown kind. */
const char *ctl_data_kind_name(enum ctl_data_kind kind);

/*
 * Encode a data message of kind, rec pointing to the kind's struct (above),
 * length prefix included. *out is malloc'd and owned by the caller.
 * FERRY_ETOOBIG if it would exceed CTL_MSG_MAX.
 */
int ctl_data_encode(enum ctl_data_kind kind, const void *rec, uint8_t **out, size_t *len);

/*
 * Decode the record of a data message (struct ctl_msg's data slice) into rec,
 * the kind's struct, which is zeroed first: fields the message lacks stay 0
 * and keys this build does not know are skipped, so a newer daemon may add
 * fields. FERRY_EPROTO if a known key has a value of the wrong type or size.
 * Strings in rec are NUL-terminated copies owned by *mem (the caller frees
 * it, also on failure); binaries (the manifest body) point into p.
 */
int ctl_data_decode(enum ctl_data_kind kind, const uint8_t *p, size_t n, void *rec, char **mem);

/* ---- results and signatures --------------------------------------------- */

/*
 * Encode a result message: code 0 or a FERRY_E* value and a sentence
 * (cut to CTL_RESULT_MSG_MAX bytes; NULL is ""). Length prefix included;
 * *out is malloc'd and owned by the caller. Never fails.
 */
void ctl_result_encode(int code, const char *msg, uint8_t **out, size_t *len);

/* Encode the signature message of publish's second step (length prefix included). */
void ctl_signature_encode(const uint8_t sig[static 64], uint8_t **out, size_t *len);
/* Decode a signature message body. FERRY_EPROTO if it is anything else. */
int ctl_signature_decode(const uint8_t *p, size_t n, uint8_t sig[static 64]);

/* A message from the daemon, decoded by ctl_msg_decode(). */
struct ctl_msg {
	enum ctl_msg_type type; /* CTL_MSG_DATA or CTL_MSG_RESULT */
	/* DATA: */
	int kind;	     /* enum ctl_data_kind; 0 for a kind this build does not know */
	const uint8_t *data; /* the record, for ctl_data_decode(); borrowed from the message */
	size_t data_len;
	/* RESULT: */
	int code;	 /* 0 or a FERRY_E* value (negative) */
	const char *msg; /* not NUL-terminated; borrowed from the message */
	size_t msg_len;
};

/*
 * Decode a message body from the daemon (without its length prefix). Views
 * in *out borrow p. FERRY_EPROTO if it is neither a data nor a result
 * message, or a result whose code is positive.
 */
int ctl_msg_decode(const uint8_t *p, size_t n, struct ctl_msg *out);

/* ---- the server (ferryd) ------------------------------------------------ */

struct uv_loop_s;
struct config;
struct ctl_server;

/* Most arguments one command takes. */
#define CTL_CMD_ARGS_MAX 8

/* One argument a command takes. */
struct ctl_arg_spec {
	const char *key;
	enum ctl_type type; /* an INT argument also accepts a UINT value up to INT64_MAX */
	bool required;
};

/*
 * A command of the table that drives the server's dispatch, its permission
 * and argument checks, and the unit test that holds docs/protocol.md to it.
 */
struct ctl_cmd_info {
	const char *name;
	enum ctl_kind kind;
	bool takes_fd; /* a directory descriptor travels with the request */
	struct ctl_arg_spec args[CTL_CMD_ARGS_MAX]; /* up to the first NULL key */
	const char *replies; /* the data kinds it sends ("peer*": any number) */
};

/*
 * What the descriptor of a takes_fd command must be, when it is not one
 * directory: CTL_FD_FILE, one regular file (have's output); CTL_FD_SECOND,
 * a directory and optionally a regular file after it (bundle_create's
 * have-file). 0 for every other command.
 */
enum ctl_fd_flags { CTL_FD_FILE = 1, CTL_FD_SECOND = 2 };
unsigned ctl_cmd_fd_flags(const char *name);

/* The i-th command of the table, for documentation and tests; NULL past the end. */
const struct ctl_cmd_info *ctl_cmd_at(size_t i);

/*
 * Listen on cfg->socket: create its parent directory if missing (0755),
 * remove a stale socket file (only if it is a socket that nobody answers
 * on), bind, chmod 0660 and, if cfg->socket_group is set, chgrp to it.
 * Errors: FERRY_EBUSY if a process already answers there (another ferryd),
 * FERRY_EEXIST if the path is something other than a socket, FERRY_ECONFIG
 * for an unknown socket_group or a path too long for a Unix socket, and the
 * errno code of a failing system call, each with a detail naming the path.
 * cfg is only read during the call; node is borrowed until close.
 */
int ctl_server_new(struct uv_loop_s *loop, struct node *node, const struct config *cfg,
		   struct ctl_server **out);

/*
 * What `reload` runs: re-read the config file and apply it as SIGHUP does.
 * Returns 0 or an error; on a refused config *why gets every problem, one
 * "FILE:LINE: ..." a line (malloc'd, freed by the server; may stay NULL).
 * Without one set, reload answers that this ferryd cannot reload.
 */
typedef int ctl_reload_fn(void *arg, char **why);
void ctl_server_set_reload(struct ctl_server *s, ctl_reload_fn *fn, void *arg);

/*
 * Stop listening, remove the socket file, drop every client and free s;
 * cb(arg) runs on the loop thread once the server's handles are closed.
 * A connection still waiting for a node callback (an ingest or export on the
 * worker pool) is detached and freed when that callback arrives, so the node
 * must deliver its callbacks (node_stop does) before it is freed.
 */
void ctl_server_close(struct ctl_server *s, void (*cb)(void *arg), void *arg);

/*
 * For tests: how long a client may take to send a request or a signature,
 * and how long the daemon waits for a client that does not read (default
 * 10 s, 120 s, 30 s). Applies to connections accepted afterwards.
 */
void ctl__set_timeouts(unsigned request_ms, unsigned signature_ms, unsigned write_ms);

#endif
