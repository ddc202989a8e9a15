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
 * Rates are bits per second; 0 means unlimited. The WAN buckets run at the
 * lower of the configured wan_*_rate and the rate of the wan_window in force
 * (RL_WAN_WINDOW, which the config module's schedule sets; 0 = no window now).
 * docs/scheduling.md explains the choices.
 */
#ifndef FERRY_RATELIMIT_H
#define FERRY_RATELIMIT_H

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
	X(RL_LAN_UPLOAD, "lan_upload")	   /* uploads to this site */                              \
	X(RL_WAN_WINDOW, "wan_window")	   /* the wan_window in force, both ways; 0 = none */

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

/*
 * Change one setting at time now; takes effect at once. Tokens earned up to
 * now are kept (at most one burst of the new rate); a debt is kept and paid
 * at the new rate; a bucket that was unlimited starts full. FERRY_EINVAL for
 * an unknown setting or a rate above RATELIMIT_MAX_RATE.
 */
int ratelimit_set(struct ratelimit *rl, enum ratelimit_which which, uint64_t bits_per_sec,
		  uint64_t now);

/* The configured value of a setting (0 = unlimited), or 0 for an unknown one. */
uint64_t ratelimit_get(const struct ratelimit *rl, enum ratelimit_which which);

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
