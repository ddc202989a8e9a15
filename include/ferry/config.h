/*
 * The daemon's configuration: ferryd.conf, an INI file (see ferryd.conf(5)).
 *
 * One table of keys in config.c ({section, key, type, default, repeatable,
 * description}) drives parsing, the defaults, printing back in canonical form
 * (`ferryd --check-config`) and the unit test that checks every key is in the
 * man page, so the three cannot drift apart.
 *
 * Syntax: "[section]" headers, "key = value" lines, blank lines, and comments
 * starting with ';' or '#' either at the start of a line or after white space
 * inside a value. White space around keys and values is trimmed. A key that is
 * not repeatable may appear once. The first line of a repeatable key replaces
 * its default list; an empty value ("want =") leaves the list empty.
 *
 * Errors read "FILE:LINE: what is wrong", naming the key and the bad value.
 * The parser does not stop at the first error: it reports every error of the
 * file, one per line.
 *
 * The module is pure: it reads a file when asked to and does nothing else
 * (no DNS, no file system checks of the paths it holds).
 */
#ifndef FERRY_CONFIG_H
#define FERRY_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "ferry/fcrypto.h"

/* The TCP port of `listen` and `peer` when the value names none. */
#define CONFIG_DEFAULT_PORT 7440
/* Largest config file read, so a wrong -c path (a disk image) fails fast. */
#define CONFIG_MAX_FILE (1u << 20)

/* A TCP endpoint. host is a name or an address literal without brackets. */
struct config_addr {
	char *host; /* NULL only for `listen = off` */
	uint16_t port;
};

/*
 * One `wan_window` line: on the days in `days`, from `start` for as long as
 * the window lasts, the WAN rate in both directions is `rate`.
 * A window whose end is not after its start runs past midnight into the next
 * day ("daily 22:00-06:00"): `days` names the days on which it starts.
 */
struct config_window {
	uint8_t days;	/* bit d set: starts on weekday d (0 = Sunday, as tm_wday) */
	uint16_t start; /* minutes after midnight, 0..1439 */
	uint16_t end;	/* minutes after midnight, 0..1440; end <= start crosses midnight */
	uint64_t rate;	/* bits per second; 0 = unlimited */
};

struct config_publisher {
	uint8_t pk[FERRY_PK_LEN]; /* Ed25519 public key */
};

/*
 * An effective configuration. Strings are never NULL: "" means "not set"
 * (metrics_textfile, on_activate, site, socket_group). Sizes are bytes, rates
 * bits per second with 0 meaning unlimited. Everything is owned by the struct
 * and freed by config_free().
 */
struct config {
	char *path; /* the file it was read from; "" for built-in defaults */

	/* [node] */
	char *state_dir;
	char *socket;
	char *socket_group; /* "": leave the socket's group alone */
	struct config_addr listen;
	char *site; /* "": this node is a site of its own */
	char *network_key_file;
	uint64_t min_free_space;
	char *metrics_textfile;

	/* [peers] */
	struct config_addr *peers;
	size_t n_peers;
	bool lan_discovery;
	char *wan_congestion; /* TCP congestion control for WAN peers; "": the system's */

	/* [trust] */
	struct config_publisher *publishers;
	size_t n_publishers;

	/* [models] */
	char **want; /* globs of model names (fnmatch(3)) */
	size_t n_want;
	unsigned keep_versions;
	bool auto_activate;
	char *on_activate;
	uint64_t cache_quota;

	/* [limits] */
	uint64_t download_rate;
	uint64_t upload_rate;
	uint64_t wan_download_rate;
	uint64_t wan_upload_rate;
	struct config_window *wan_windows; /* in file order; later lines win */
	size_t n_wan_windows;
};

/* What the table says about one key, for documentation and tests. */
struct config_key {
	const char *section;
	const char *key;
	const char *type; /* kind of value, as ferryd.conf(5) names it ("size", "rate", ...) */
	const char *def;  /* the default in canonical form; "" when empty */
	bool repeatable;  /* may appear on several lines, building a list */
	bool restart;	  /* a change takes effect only when ferryd restarts */
	const char *description; /* one line */
};

/* The i-th key of the table, in canonical order; NULL past the end. */
const struct config_key *config_key_at(size_t i);

/*
 * The built-in defaults: the system paths chosen at build time
 * (LOCALSTATEDIR/lib/ferry, RUNSTATEDIR/ferry/ferryd.sock, ...).
 * Never fails; the caller owns the result (config_free()).
 */
struct config *config_default(void);

/*
 * Development defaults that need no root: every path under dir (state_dir
 * DIR/state, socket DIR/ferryd.sock, network_key_file DIR/network.key),
 * listen on 127.0.0.1:7440 and no socket group. A relative dir is made
 * absolute against the current directory. On success *out is owned by the
 * caller; FERRY_ECONFIG if dir makes a bad value (a socket path too long for
 * a Unix socket), with the reason in ferry_errmsg().
 */
int config_default_dev(const char *dir, struct config **out);

/*
 * Parse text (len bytes, need not be NUL-terminated) on top of base: keys the
 * text does not set keep base's values. name is used in error messages and
 * stored as path. base is not modified; NULL means config_default().
 * On success returns 0 and *out (owned by the caller). On failure returns
 * FERRY_ECONFIG, *out is NULL, and if errors is not NULL *errors receives
 * every error, one "NAME:LINE: message\n" line each (owned by the caller);
 * ferry_errmsg() holds the first.
 */
int config_parse(const char *name, const char *text, size_t len, const struct config *base,
		 struct config **out, char **errors);

/*
 * Read and parse the file at path on top of base (see config_parse). A file
 * that cannot be read is one error, "PATH: reason", with its errno code
 * returned (FERRY_ENOENT, FERRY_EACCES, ...) instead of FERRY_ECONFIG.
 */
int config_load(const char *path, const struct config *base, struct config **out, char **errors);

/*
 * Print c in canonical form: every section and key in table order, one line
 * per value, "key =" for an empty value or list. Parsing the output gives a
 * config equal to c.
 */
void config_print(const struct config *c, FILE *f);

/* True if every key of a and b has the same value (path is not compared). */
bool config_equal(const struct config *a, const struct config *b);

/*
 * For a reload: keys that take effect only at a restart (the table's
 * `restart`) are given cur's value in next, so the running daemon keeps
 * seeing the state_dir or socket it opened. For each such key whose value
 * differed, changed(key, arg) is called first (to log it); changed may be NULL.
 */
void config_keep_restart_keys(struct config *next, const struct config *cur,
			      void (*changed)(const struct config_key *key, void *arg), void *arg);

/*
 * The WAN rate the wan_window lines set at time t (evaluated in local time).
 * Where windows overlap, the one on the later line wins. Returns true and
 * sets *rate (bits/s, 0 = unlimited) if a window covers t; false if none does,
 * and then wan_download_rate and wan_upload_rate apply.
 */
bool config_wan_rate_at(const struct config *c, time_t t, uint64_t *rate);

/* True if the model name matches one of the `want` globs. */
bool config_wants(const struct config *c, const char *name);

/* Free c and everything it owns. NULL is a no-op. */
void config_free(struct config *c);

#endif
