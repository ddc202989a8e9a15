/*
 * Small helpers every module uses: allocation that dies on failure (so call
 * sites stay simple; out-of-memory is fatal, as in tmux), hex formatting,
 * whole-buffer reads and writes, and size/rate parsing shared by the config
 * and ferryctl.
 */
#ifndef FERRY_UTIL_H
#define FERRY_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
/* <sys/param.h> (pulled in by <uv.h>) defines the same two macros. */
#ifndef MIN
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#endif
#ifndef MAX
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#endif

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
/* realloc for an array, checking n * size for overflow. */
void *xreallocarray(void *p, size_t n, size_t size);
char *xstrdup(const char *s);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Print "fatal: ..." and exit(1). */
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* Lower-case hex of n bytes into out, which holds 2n+1 chars. Returns out. */
char *hex_encode(char *out, const uint8_t *in, size_t n);
/* Parse exactly 2n hex chars. 0 or FERRY_EFORMAT. */
int hex_decode(uint8_t *out, size_t n, const char *in);
/* Short printable form of a 32-byte id: the first 12 hex chars, into a static-free buffer. */
#define ID_SHORT_LEN 13
char *id_short(char out[static ID_SHORT_LEN], const uint8_t id[static 32]);

/* write(2)/read(2) until done; retry EINTR. 0 or a negative errno code. */
int write_full(int fd, const void *buf, size_t n);
/* Reads exactly n bytes; FERRY_EIO with detail on a short read (EOF). */
int read_full(int fd, void *buf, size_t n);
/* Read a whole (small) file into a NUL-terminated buffer (*out owned by caller). cap limits size. */
int read_file(const char *path, size_t cap, char **out, size_t *len);

/* "512M", "200G", "1048576" (powers of 1024; K M G T) to bytes. 0 or FERRY_EINVAL. */
int parse_size(const char *s, uint64_t *out);
/* tc-style rates: "500kbit", "4mbit", "1gbit", "100kbps" (bytes), "0" to bits/second. */
int parse_rate(const char *s, uint64_t *bits_per_sec);
/* Human-readable bytes ("1.5 MiB") into buf. Returns buf. */
char *fmt_bytes(char *buf, size_t cap, uint64_t bytes);
/* Human-readable rate from bits/s ("3.2 Mbit/s") into buf. */
char *fmt_rate(char *buf, size_t cap, double bits_per_sec);

/* Monotonic milliseconds. */
uint64_t now_ms(void);

#endif
