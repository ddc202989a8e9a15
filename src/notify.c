/* Service manager notifications; see include/ferry/notify.h. */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "ferry/error.h"
#include "ferry/notify.h"
#include "ferry/util.h"

#ifdef HAVE_LIBSYSTEMD

int notify_send(const char *state)
{
	int r = sd_notify(0, state);

	if (r < 0)
		return ferry_errno(-r, "sd_notify");
	return 0;
}

uint64_t notify_watchdog_usec(void)
{
	uint64_t usec = 0;

	if (sd_watchdog_enabled(0, &usec) <= 0)
		return 0;
	return usec;
}

#else

/* The protocol of sd_notify(3): one datagram to the AF_UNIX socket named by
 * $NOTIFY_SOCKET; a leading '@' names an abstract socket. */
int notify_send(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	socklen_t salen;
	size_t n;
	int fd, rc = 0;

	if (path == NULL || *path == '\0')
		return 0;
	n = strlen(path);
	if ((path[0] != '/' && path[0] != '@') || n < 2 || n > sizeof(sa.sun_path))
		return ferry_errf(FERRY_EINVAL, "NOTIFY_SOCKET '%s' is not a socket path", path);
	if (path[0] == '/' && n == sizeof(sa.sun_path))
		return ferry_errf(FERRY_EINVAL, "NOTIFY_SOCKET '%s' is too long", path);
	memcpy(sa.sun_path, path, n);
	if (path[0] == '@')
		sa.sun_path[0] = '\0';
	salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (path[0] == '/'));
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return ferry_errno(errno, "notify socket");
	if (sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa, salen) < 0)
		rc = ferry_errno(errno, "notify %s", path);
	close(fd);
	return rc;
}

uint64_t notify_watchdog_usec(void)
{
	const char *usec = getenv("WATCHDOG_USEC"), *pid = getenv("WATCHDOG_PID");
	unsigned long long v;
	char *end;

	if (usec == NULL)
		return 0;
	/* The manager sets WATCHDOG_PID when the pings must come from one process. */
	if (pid != NULL && strtoll(pid, &end, 10) != (long long)getpid())
		return 0;
	errno = 0;
	v = strtoull(usec, &end, 10);
	if (errno != 0 || end == usec || *end != '\0')
		return 0;
	return v;
}

#endif

int notify_sendf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n, rc;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		fatal("out of memory formatting a notification");
	rc = notify_send(s);
	free(s);
	return rc;
}
