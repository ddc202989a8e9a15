/*
 * Error codes and messages.
 *
 * Every fallible function returns 0 on success or a negative FERRY_E* code. Codes
 * equal to -errno where one exists; the rest live below FERRY_E__BASE. All codes
 * and their strings are generated from the one table FERRY_ERRNO_MAP.
 *
 * A code says what kind of failure it was; the *detail* says what and where
 * ("chunk 3fa1… at offset 1048576 of weights.bin: stored bytes do not match
 * their id"). The function that detects a failure records the detail with
 * ferry_errf(); callers print ferry_errmsg(). The detail is per thread.
 */
#ifndef FERRY_ERROR_H
#define FERRY_ERROR_H

#include <errno.h>

#define FERRY_E__BASE (-2000)

/* X(name, value, message) */
#define FERRY_ERRNO_MAP(X)                                                                         \
	X(NOMEM, -ENOMEM, "out of memory")                                                         \
	X(INVAL, -EINVAL, "invalid argument")                                                      \
	X(NOENT, -ENOENT, "not found")                                                             \
	X(EXIST, -EEXIST, "already exists")                                                        \
	X(IO, -EIO, "input/output error")                                                          \
	X(NOSPC, -ENOSPC, "no space left on device")                                               \
	X(ACCES, -EACCES, "permission denied")                                                     \
	X(PERM, -EPERM, "operation not permitted")                                                 \
	X(AGAIN, -EAGAIN, "try again")                                                             \
	X(NAMETOOLONG, -ENAMETOOLONG, "name too long")                                             \
	X(LOOP, -ELOOP, "symbolic link not allowed")                                               \
	X(TOOBIG, -E2BIG, "too large")                                                             \
	X(BUSY, -EBUSY, "resource busy")                                                           \
	X(TIMEDOUT, -ETIMEDOUT, "timed out")                                                       \
	X(CONNREFUSED, -ECONNREFUSED, "connection refused")                                        \
	X(CANCELED, -ECANCELED, "canceled")                                                        \
	X(CORRUPT, FERRY_E__BASE - 1, "data does not match its hash")                              \
	X(BADSIG, FERRY_E__BASE - 2, "signature does not verify")                                  \
	X(UNTRUSTED, FERRY_E__BASE - 3, "not signed by a trusted publisher")                       \
	X(OLDVERSION, FERRY_E__BASE - 4, "version is not newer than the one already accepted")     \
	X(FORMAT, FERRY_E__BASE - 5, "malformed data")                                             \
	X(VERSION, FERRY_E__BASE - 6, "unsupported format version")                                \
	X(LOCKED, FERRY_E__BASE - 7, "store is in use by a running ferryd")                        \
	X(PROTO, FERRY_E__BASE - 8, "protocol error")                                              \
	X(CONFIG, FERRY_E__BASE - 9, "bad configuration")                                          \
	X(PATH, FERRY_E__BASE - 10, "unsafe path")                                                 \
	X(INCOMPLETE, FERRY_E__BASE - 11, "not all chunks are present")                            \
	X(MAPFULL, FERRY_E__BASE - 12, "store map is full")                                        \
	X(AUTH, FERRY_E__BASE - 13, "authentication failed")

enum {
#define FERRY_E_ENUM(name, value, msg) FERRY_E##name = (value),
	FERRY_ERRNO_MAP(FERRY_E_ENUM)
#undef FERRY_E_ENUM
};

/* Return the fixed message of a code; never NULL, for unknown codes too. */
const char *ferry_strerror(int code);

/*
 * Record a detail message for the current thread and return code, so a
 * failing path reads `return ferry_errf(FERRY_ECORRUPT, "chunk %s ...", ...)`.
 * The arguments may point into the previous detail (it is formatted first).
 */
int ferry_errf(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * The message to show for code: the last detail recorded on this thread if it
 * was recorded with the same code, otherwise ferry_strerror(code). The
 * returned string is valid until the next ferry_errf() on this thread.
 */
const char *ferry_errmsg(int code);

/* Forget the current thread's detail. */
void ferry_errclear(void);

/* Map an errno value (positive) to a code, recording "what: strerror" as detail. */
int ferry_errno(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
