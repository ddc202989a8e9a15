/*
 * Logging to stderr with syslog-priority prefixes ("<4>store: ..."), which
 * journald turns into priorities. Debug messages are per group and off unless
 * switched on (log_set_debug), so per-chunk messages cost one branch.
 */
#ifndef FERRY_LOG_H
#define FERRY_LOG_H

#include <stdbool.h>

enum log_group {
	LOG_MAIN,
	LOG_STORE,
	LOG_PEER,
	LOG_GOSSIP,
	LOG_FETCH,
	LOG_CTL,
	LOG_CONFIG,
	LOG_CRYPTO,
	LOG_PUBLISH,
	LOG_SIDELOAD,
	LOG__GROUPS
};

enum log_prio { LOG_P_ERR = 3, LOG_P_WARN = 4, LOG_P_NOTICE = 5, LOG_P_INFO = 6, LOG_P_DEBUG = 7 };

void log_msg(enum log_prio prio, enum log_group grp, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* True when a message of prio in grp would be printed. */
bool log_enabled(enum log_prio prio, enum log_group grp);
/* Switch debug messages of one group (or all, with LOG__GROUPS) on or off. */
void log_set_debug(enum log_group grp, bool on);
/* Group name ("store") to group; -1 if unknown. */
int log_group_by_name(const char *name);
/* Prefix every line with this program name (default none). */
void log_set_ident(const char *ident);

#define log_err(g, ...) log_msg(LOG_P_ERR, (g), __VA_ARGS__)
#define log_warn(g, ...) log_msg(LOG_P_WARN, (g), __VA_ARGS__)
#define log_notice(g, ...) log_msg(LOG_P_NOTICE, (g), __VA_ARGS__)
#define log_info(g, ...) log_msg(LOG_P_INFO, (g), __VA_ARGS__)
#define log_debug(g, ...)                                                                          \
	do {                                                                                       \
		if (log_enabled(LOG_P_DEBUG, (g)))                                                 \
			log_msg(LOG_P_DEBUG, (g), __VA_ARGS__);                                    \
	} while (0)

#endif
