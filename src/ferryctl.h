/*
 * ferryctl's command table and the helpers its command files share
 * (src/ferryctl.c, src/ferryctl_bundle.c). Internal to ferryctl.
 */
#ifndef FERRY_FERRYCTL_H
#define FERRY_FERRYCTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ferry/ctl.h"
#include "ferry/ctl_client.h"

#define EXIT_USAGE 2
#define MAX_POS	   16
#define MAX_OPTS   4

struct ctl_out;
struct store;
struct trust;

enum cmd_kind { CMD_READ, CMD_WRITE, CMD_LOCAL };

struct opt_spec {
	const char *name; /* without the leading "--" */
	const char *arg;  /* NULL for a flag */
	bool required;
};

struct ctl;

struct cmd {
	const char *name;
	enum cmd_kind kind;
	int (*fn)(struct ctl *c);     /* with --store, or a local command; NULL: daemon only */
	int (*daemon)(struct ctl *c); /* through ferryd's socket; NULL: --store only */
	const char *usage;	      /* the arguments, after the command name */
	const char *help;	      /* one line */
	const char *pos[MAX_POS + 1]; /* positional argument names; a last "X..." repeats */
	int npos_min;
	struct opt_spec opts[MAX_OPTS + 1];
	bool stream; /* with --json the command prints JSON Lines itself (c->out is NULL) */
};

struct ctl {
	const struct cmd *cmd;
	const char *socket;
	const char *store_dir;
	bool json;
	uint8_t (*trust)[32]; /* --trust keys */
	size_t ntrust;
	const char *pos[MAX_POS];
	int npos;
	const char *opt[MAX_OPTS]; /* values, or "" for a flag given; NULL if absent */
	struct ctl_out *out;
	size_t rows; /* rows printed by a list command */
};

/* A usage error: the message, the command's usage line; returns EXIT_USAGE. */
int usage_err(const struct cmd *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A failed command: prints "ferryctl: CMD: detail"; returns 1. */
int fail(const struct ctl *c, int code);
/* Open the store of --store DIR. */
int ctl_store_open(struct ctl *c, unsigned flags, struct store **st);
/* The trust list of a --store command; *in_file (may be NULL) counts the file's keys. */
int trust_load(const struct ctl *c, struct trust *t, size_t *in_file);

/* One exchange with ferryd: the request (with fd if >= 0), then its replies to on_data. */
int daemon_call(const struct ctl *c, const struct ctl_request *req, int fd,
		ctl_client_data_fn *on_data, void *arg);
/* Decode a data message that must be of kind; *mem owns its strings (free it, also on failure). */
int daemon_record(const struct ctl_msg *m, enum ctl_data_kind kind, void *rec, char **mem);

/* src/ferryctl_ops.c */
int cmd_activate(struct ctl *c);
int cmd_activate_daemon(struct ctl *c);
int cmd_rollback(struct ctl *c);
int cmd_rollback_daemon(struct ctl *c);
int cmd_pin(struct ctl *c);
int cmd_pin_daemon(struct ctl *c);
int cmd_gc_daemon(struct ctl *c);
int cmd_metrics_daemon(struct ctl *c);
int cmd_reload_daemon(struct ctl *c);
int cmd_verify_daemon(struct ctl *c);

/* src/ferryctl_limit.c */
int cmd_limit(struct ctl *c);
/* The limits lines of `ferryctl status`. */
void status_limits(struct ctl *c, const struct node_status *n);

/* The control socket of a daemon command (--socket PATH or the default). */
const char *socket_path(const struct ctl *c);

/* src/ferryctl_bundle.c: with --store, and through the daemon. */
int cmd_bundle(struct ctl *c);
int cmd_sideload(struct ctl *c);
int cmd_have(struct ctl *c);
int cmd_bundle_daemon(struct ctl *c);
int cmd_sideload_daemon(struct ctl *c);
int cmd_have_daemon(struct ctl *c);

#endif
