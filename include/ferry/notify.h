/*
 * Telling the service manager how the daemon is doing (sd_notify(3)):
 * READY=1 once it serves, STATUS=... lines for `systemctl status`,
 * RELOADING=1 around a reload, STOPPING=1, and WATCHDOG=1 pings.
 *
 * With libsystemd (HAVE_LIBSYSTEMD) this is sd_notify(); without it, the
 * documented datagram protocol on $NOTIFY_SOCKET (a path, or '@' for an
 * abstract socket). Outside systemd ($NOTIFY_SOCKET unset) every call is a
 * successful no-op, so the daemon runs the same from a shell.
 */
#ifndef FERRY_NOTIFY_H
#define FERRY_NOTIFY_H

#include <stdint.h>

/*
 * Send state, one or more newline-separated "KEY=value" assignments.
 * 0 if sent or if there is no service manager to tell; a negative code
 * (FERRY_EINVAL for a malformed $NOTIFY_SOCKET, or the errno of socket or
 * sendmsg) if it could not be sent.
 */
int notify_send(const char *state);

/* notify_send() of a formatted state. */
int notify_sendf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * The watchdog interval the service manager expects pings within, in
 * microseconds, or 0 when it expects none ($WATCHDOG_USEC unset, or
 * $WATCHDOG_PID names another process). Ping at half of it.
 */
uint64_t notify_watchdog_usec(void);

#endif
