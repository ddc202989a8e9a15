/*
 * The client side of the control protocol (include/ferry/ctl.h), for
 * ferryctl: plain blocking Unix sockets, one request per connection.
 *
 *   ctl_client_connect(path, &c);
 *   ctl_client_request(c, &req, dirfd);          // dirfd, or -1
 *   rc = ctl_client_replies(c, on_data, arg);    // data messages, then the result
 *   ctl_client_free(c);
 *
 * Every error is recorded with ferry_errf() as one sentence a person can act
 * on, so callers print ferry_errmsg(rc). The daemon's failures come back with
 * its own code and sentence.
 */
#ifndef FERRY_CTL_CLIENT_H
#define FERRY_CTL_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ferry/ctl.h"

struct ctl_client;

/*
 * Connect to the control socket at path. The errors name the path and the
 * likely fix: FERRY_ENOENT or FERRY_ECONNREFUSED ("... — is ferryd
 * running?"), FERRY_EACCES ("... — are you in the 'GROUP' group?", GROUP
 * being the socket's group). On success *out is owned by the caller
 * (ctl_client_free).
 */
int ctl_client_connect(const char *path, struct ctl_client **out);

/* Close the connection and free c. NULL is a no-op. */
void ctl_client_free(struct ctl_client *c);

/*
 * Send req (its version is set to CTL_PROTO_VERSION). If fd >= 0 it travels
 * with the request (SCM_RIGHTS); the caller still owns and closes it.
 */
int ctl_client_request(struct ctl_client *c, const struct ctl_request *req, int fd);
/*
 * The same with fd (>= 0) and a second descriptor fd2 (-1 for none) after
 * it: bundle_create's output directory and have-file (CTL_FD_SECOND).
 */
int ctl_client_request2(struct ctl_client *c, const struct ctl_request *req, int fd, int fd2);

/*
 * A data message arrived. m and its views are valid only during the call.
 * Return 0 to go on reading, or a negative code to stop: ctl_client_replies
 * then returns that code (the connection is useless afterwards).
 */
typedef int ctl_client_data_fn(void *arg, struct ctl_client *c, const struct ctl_msg *m);

/*
 * Read the daemon's replies: on_data (may be NULL) for each data message,
 * until the result. Returns the result's code: 0, or the daemon's FERRY_E*
 * code with its sentence as the detail. Transport failures (the daemon hung
 * up before the result, a malformed or oversized message) are FERRY_EIO or
 * FERRY_EPROTO with a detail.
 */
int ctl_client_replies(struct ctl_client *c, ctl_client_data_fn *on_data, void *arg);

/*
 * The sentence of a successful result ("" if it had none), valid until the
 * next call on c.
 */
const char *ctl_client_message(const struct ctl_client *c);

/* publish, step 2: send the signature of the manifest body received as data. */
int ctl_client_send_signature(struct ctl_client *c, const uint8_t sig[static 64]);

/*
 * One line of fetch progress for people, into buf (returned), e.g. (the
 * bar is 20 characters wide):
 *
 *   llama@7  [####      ]  42.0%  420.0 MiB of 1000.0 MiB  3.2 Mbit/s  ETA 2m05s  2 sources
 *
 * Without the bar when bar is false (for logs and pipes); "done" in place of
 * the ETA once complete; "llama: waiting for a peer to offer the manifest"
 * before any version is known; "llama@7: starting, size not known yet"
 * while the version's size is not known.
 */
char *ctl_progress_format(char *buf, size_t cap, const struct ctl_progress *p, bool bar);

#endif
