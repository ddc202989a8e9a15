/*
 * ratelimit: token buckets for ferry's traffic, per direction (down, up) and
 * per link class (LAN, WAN), under one global bucket per direction.
 *
 * Pure: the current time (ms, any monotonic clock) is passed in. A transfer
 * in direction d on class c draws on two buckets, the global one of d and the
 * one of (d, c); it may start when neither is in debt. It takes its whole
 * size at once, which may leave a bucket negative: a 64 KiB frame at 10
 * kbit/s still goes out, and the next transfer waits until the debt is paid
 * back, so the long-run average holds. A bucket holds at most 100 ms of
 * its rate, and never less than one 64 KiB frame.
 *
 * Rates are bits per second; 0 means unlimited. Each setting has up to
 * three layers, and the first that is set is in force:
 *
 *   runtime  an override (`ferryctl limit NAME RATE`), until cleared
 *   window   for wan_download and wan_upload: the wan_window in force, if any
 *   config   the value from ferryd.conf (0 if it has no key for it)
 *
 * So a window replaces the configured WAN rates while it lasts (it may raise
 * them, or lift them with 0), and an operator's override beats both.
 * docs/scheduling.md explains the choices.
 */
#ifndef FERRY_RATELIMIT_H
#define FERRY_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum ratelimit_dir { RL_DOWN = 0, RL_UP = 1 };
enum ratelimit_class { RL_LAN = 0, RL_WAN = 1 };

/*
 * The settings, one per configurable rate. The names (ratelimit_name) are
 * those of `ferryctl limit NAME RATE`; the config keys add "_rate".
 */
#define RATELIMIT_SETTINGS(X)                                                                      \
	X(RL_DOWNLOAD, "download")	   /* all downloads */                                     \
	X(RL_UPLOAD, "upload")		   /* all uploads */                                       \
	X(RL_WAN_DOWNLOAD, "wan_download") /* downloads from other sites */                        \
	X(RL_WAN_UPLOAD, "wan_upload")	   /* uploads to other sites */                            \
	X(RL_LAN_DOWNLOAD, "lan_download") /* downloads from this site */                          \
	X(RL_LAN_UPLOAD, "lan_upload")	   /* uploads to this site */

enum ratelimit_which {
#define RL_ENUM(name, str) name,
	RATELIMIT_SETTINGS(RL_ENUM)
#undef RL_ENUM
	    RL__SETTINGS
};

/* Largest rate accepted: 1 Tbit/s. */
#define RATELIMIT_MAX_RATE 1000000000000ull
/* Largest transfer one call accounts for; larger ones are counted as this. */
#define RATELIMIT_MAX_BYTES (1ull << 40)

/* A new limiter with every rate unlimited. Free with ratelimit_free() (NULL is a no-op). */
struct ratelimit *ratelimit_new(void);
void ratelimit_free(struct ratelimit *rl);

/* Where the rate in force of a setting comes from. */
enum ratelimit_source { RL_SRC_CONFIG = 0, RL_SRC_WINDOW, RL_SRC_RUNTIME };

/*
 * Set the config layer of one setting at time now. Any change of the rate in
 * force takes effect at once: tokens earned up to now are kept (at most one
 * burst of the new rate); a debt is kept and paid at the new rate; a bucket
 * that was unlimited starts full. FERRY_EINVAL for an unknown setting or a
 * rate above RATELIMIT_MAX_RATE.
 */
int ratelimit_set(struct ratelimit *rl, enum ratelimit_which which, uint64_t bits_per_sec,
		  uint64_t now);

/*
 * Set the window layer: in_force says whether a wan_window covers now, and
 * bits_per_sec is its rate (0 = unlimited). While one is in force it is the
 * rate of wan_download and wan_upload unless they are overridden. Returns
 * FERRY_EINVAL for a rate above RATELIMIT_MAX_RATE (and changes nothing).
 */
int ratelimit_set_window(struct ratelimit *rl, bool in_force, uint64_t bits_per_sec, uint64_t now);
/* Whether a window is in force; if so, *bits_per_sec (may be NULL) is its rate. */
bool ratelimit_window(const struct ratelimit *rl, uint64_t *bits_per_sec);

/*
 * Override one setting at run time (the runtime layer) until
 * ratelimit_clear_override(); 0 = unlimited. Errors as ratelimit_set.
 */
int ratelimit_override(struct ratelimit *rl, enum ratelimit_which which, uint64_t bits_per_sec,
		       uint64_t now);
/* Drop a setting's override: the window or config layer is in force again. */
int ratelimit_clear_override(struct ratelimit *rl, enum ratelimit_which which, uint64_t now);

/* The rate in force of a setting (0 = unlimited), or 0 for an unknown one. */
uint64_t ratelimit_get(const struct ratelimit *rl, enum ratelimit_which which);
/* Which layer ratelimit_get's value comes from (RL_SRC_CONFIG for an unknown setting). */
enum ratelimit_source ratelimit_source(const struct ratelimit *rl, enum ratelimit_which which);
/* The config layer of a setting, whatever is in force (0 for an unknown one). */
uint64_t ratelimit_configured(const struct ratelimit *rl, enum ratelimit_which which);
/* "config", "window" or "runtime"; NULL for an unknown source. */
const char *ratelimit_source_name(enum ratelimit_source src);

/* The rate that limits (dir, class) traffic now, the lowest of those that apply; 0 = none. */
uint64_t ratelimit_effective(const struct ratelimit *rl, enum ratelimit_dir dir,
			     enum ratelimit_class cls);

/*
 * Book bytes to send (or receive) and learn when: 0 = now, else the number
 * of ms to wait first. The bytes are taken either way, so do not ask again
 * for them: send them when the wait is over. Booking is what keeps the
 * limiter fair: callers are served in the order they asked, whatever the
 * size of their frames.
 */
uint64_t ratelimit_take(struct ratelimit *rl, enum ratelimit_dir dir, enum ratelimit_class cls,
			uint64_t bytes, uint64_t now);

/*
 * Account for bytes already moved (data read from a socket), whatever the
 * buckets hold. Returns the ms to wait before moving more (0 = none): stop
 * reading that long.
 */
uint64_t ratelimit_charge(struct ratelimit *rl, enum ratelimit_dir dir, enum ratelimit_class cls,
			  uint64_t bytes, uint64_t now);

/* Total bytes taken or charged for (dir, class) since ratelimit_new(). */
uint64_t ratelimit_bytes(const struct ratelimit *rl, enum ratelimit_dir dir,
			 enum ratelimit_class cls);

/* "wan_download" and so on; NULL for an unknown setting. */
const char *ratelimit_name(enum ratelimit_which which);
/* The setting of a name; FERRY_EINVAL with a detail listing the names if unknown. */
int ratelimit_by_name(const char *name);

#endif
