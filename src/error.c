/* Error codes and per-thread detail messages; see include/ferry/error.h. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ferry/error.h"

static _Thread_local int detail_code;
static _Thread_local char detail[1024];

const char *ferry_strerror(int code)
{
	switch (code) {
#define FERRY_E_CASE(name, value, msg)                                                             \
	case (value):                                                                              \
		return (msg);
		FERRY_ERRNO_MAP(FERRY_E_CASE)
#undef FERRY_E_CASE
	}
	if (code < 0 && code > FERRY_E__BASE)
		return strerror(-code);
	return "unknown error";
}

static int verrf(int code, const char *fmt, va_list ap)
{
	char tmp[sizeof(detail)];

	vsnprintf(tmp, sizeof(tmp), fmt, ap);
	memcpy(detail, tmp, sizeof(detail));
	detail_code = code;
	return code;
}

int ferry_errf(int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	verrf(code, fmt, ap);
	va_end(ap);
	return code;
}

int ferry_errno(int err, const char *fmt, ...)
{
	char what[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return ferry_errf(-err, "%s: %s", what, strerror(err));
}

const char *ferry_errmsg(int code)
{
	if (detail_code == code && detail[0] != '\0')
		return detail;
	return ferry_strerror(code);
}

void ferry_errclear(void)
{
	detail_code = 0;
	detail[0] = '\0';
}
