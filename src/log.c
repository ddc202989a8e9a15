/* Logging with syslog-priority prefixes; see include/ferry/log.h. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ferry/log.h"
#include "ferry/util.h"

static const char *const group_names[LOG__GROUPS] = {
	[LOG_MAIN] = "main",	   [LOG_STORE] = "store",   [LOG_PEER] = "peer",
	[LOG_GOSSIP] = "gossip",   [LOG_FETCH] = "fetch",   [LOG_CTL] = "ctl",
	[LOG_CONFIG] = "config",   [LOG_CRYPTO] = "crypto", [LOG_PUBLISH] = "publish",
	[LOG_SIDELOAD] = "sideload",
};

static bool debug_on[LOG__GROUPS];
static const char *ident;

bool log_enabled(enum log_prio prio, enum log_group grp)
{
	if (prio < LOG_P_DEBUG)
		return true;
	return (unsigned)grp < LOG__GROUPS && debug_on[grp];
}

void log_set_debug(enum log_group grp, bool on)
{
	if (grp == LOG__GROUPS) {
		for (size_t i = 0; i < LOG__GROUPS; i++)
			debug_on[i] = on;
	} else if ((unsigned)grp < LOG__GROUPS) {
		debug_on[grp] = on;
	}
}

int log_group_by_name(const char *name)
{
	for (size_t i = 0; i < LOG__GROUPS; i++)
		if (strcmp(group_names[i], name) == 0)
			return (int)i;
	return -1;
}

void log_set_ident(const char *s)
{
	ident = s;
}

void log_msg(enum log_prio prio, enum log_group grp, const char *fmt, ...)
{
	char line[2048];
	int n;
	va_list ap;

	if (!log_enabled(prio, grp))
		return;
	n = snprintf(line, sizeof(line), "<%d>%s%s%s: ", (int)prio, ident ? ident : "",
		     ident ? " " : "", (unsigned)grp < LOG__GROUPS ? group_names[grp] : "?");
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	/* One write per line so lines from several threads do not interleave. */
	n = (int)strlen(line);
	if ((size_t)n < sizeof(line) - 1) {
		line[n++] = '\n';
		line[n] = '\0';
	} else {
		line[sizeof(line) - 2] = '\n';
	}
	fputs(line, stderr);
}
