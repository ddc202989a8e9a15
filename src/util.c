/* Small helpers; see include/ferry/util.h. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ferry/error.h"
#include "ferry/util.h"

void fatal(const char *fmt, ...)
{
	va_list ap;

	fputs("fatal: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (p == NULL)
		fatal("out of memory allocating %zu bytes", n);
	return p;
}

void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (p == NULL)
		fatal("out of memory allocating %zu x %zu bytes", n, size);
	return p;
}

void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	if (q == NULL)
		fatal("out of memory reallocating %zu bytes", n);
	return q;
}

void *xreallocarray(void *p, size_t n, size_t size)
{
	if (size != 0 && n > SIZE_MAX / size)
		fatal("allocation of %zu x %zu bytes overflows", n, size);
	return xrealloc(p, n * size);
}

char *xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;

	return memcpy(xmalloc(n), s, n);
}

char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		fatal("out of memory formatting a string");
	return s;
}

char *hex_encode(char *out, const uint8_t *in, size_t n)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
	return out;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int hex_decode(uint8_t *out, size_t n, const char *in)
{
	for (size_t i = 0; i < n; i++) {
		int hi = hexval((unsigned char)in[2 * i]), lo;

		if (hi < 0)
			return FERRY_EFORMAT;
		lo = hexval((unsigned char)in[2 * i + 1]);
		if (lo < 0)
			return FERRY_EFORMAT;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return in[2 * n] == '\0' ? 0 : FERRY_EFORMAT;
}

char *id_short(char out[static ID_SHORT_LEN], const uint8_t id[static 32])
{
	return hex_encode(out, id, (ID_SHORT_LEN - 1) / 2);
}

int write_full(int fd, const void *buf, size_t n)
{
	const uint8_t *p = buf;

	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int read_full(int fd, void *buf, size_t n)
{
	uint8_t *p = buf;

	while (n > 0) {
		ssize_t r = read(fd, p, n);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			return ferry_errf(FERRY_EIO, "unexpected end of file (%zu bytes short)", n);
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

int read_file(const char *path, size_t cap, char **out, size_t *len)
{
	size_t used = 0, alloc = 4096;
	char *buf;
	int fd, rc = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return ferry_errno(errno, "%s", path);
	buf = xmalloc(alloc);
	for (;;) {
		ssize_t r;

		if (alloc - used < 2) {
			if (alloc > cap) {
				rc = ferry_errf(FERRY_ETOOBIG, "%s: larger than %zu bytes", path, cap);
				goto out;
			}
			alloc *= 2;
			buf = xrealloc(buf, alloc);
		}
		r = read(fd, buf + used, alloc - used - 1);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			rc = ferry_errno(errno, "%s", path);
			goto out;
		}
		if (r == 0)
			break;
		used += (size_t)r;
	}
	buf[used] = '\0';
	*out = buf;
	*len = used;
	buf = NULL;
out:
	free(buf);
	close(fd);
	return rc;
}

/* Split "123.5kbit" into a number and a lower-case suffix. */
static int split_number(const char *s, double *num, char *suffix, size_t cap)
{
	char *end;
	size_t i = 0;

	while (isspace((unsigned char)*s))
		s++;
	if (!isdigit((unsigned char)*s))
		return FERRY_EINVAL;
	errno = 0;
	*num = strtod(s, &end);
	if (errno != 0 || *num < 0)
		return FERRY_EINVAL;
	while (*end != '\0' && !isspace((unsigned char)*end)) {
		if (i + 1 >= cap)
			return FERRY_EINVAL;
		suffix[i++] = (char)tolower((unsigned char)*end++);
	}
	suffix[i] = '\0';
	while (isspace((unsigned char)*end))
		end++;
	return *end == '\0' ? 0 : FERRY_EINVAL;
}

int parse_size(const char *s, uint64_t *out)
{
	static const struct {
		const char *suffix;
		double mult;
	} units[] = {
		{"", 1.0},
		{"b", 1.0},
		{"k", 1024.0},
		{"kb", 1024.0},
		{"kib", 1024.0},
		{"m", 1048576.0},
		{"mb", 1048576.0},
		{"mib", 1048576.0},
		{"g", 1073741824.0},
		{"gb", 1073741824.0},
		{"gib", 1073741824.0},
		{"t", 1099511627776.0},
		{"tb", 1099511627776.0},
		{"tib", 1099511627776.0},
	};
	char suffix[8];
	double num;

	if (split_number(s, &num, suffix, sizeof(suffix)) < 0)
		return ferry_errf(FERRY_EINVAL, "'%s' is not a size (examples: 512M, 200G)", s);
	for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
		if (strcmp(units[i].suffix, suffix) == 0) {
			double v = num * units[i].mult;

			if (v >= 18446744073709551615.0)
				break;
			*out = (uint64_t)v;
			return 0;
		}
	}
	return ferry_errf(FERRY_EINVAL, "'%s' is not a size (examples: 512M, 200G)", s);
}

int parse_rate(const char *s, uint64_t *bits_per_sec)
{
	/* tc(8) units: "bit" suffixes count bits, "bps" suffixes count bytes. */
	static const struct {
		const char *suffix;
		double mult;
	} units[] = {
		{"", 1.0},	      {"bit", 1.0},	    {"kbit", 1e3},	{"mbit", 1e6},
		{"gbit", 1e9},	      {"tbit", 1e12},	    {"kibit", 1024.0},	{"mibit", 1048576.0},
		{"gibit", 1073741824.0}, {"bps", 8.0},	    {"kbps", 8e3},	{"mbps", 8e6},
		{"gbps", 8e9},
	};
	char suffix[8];
	double num;

	if (split_number(s, &num, suffix, sizeof(suffix)) < 0)
		goto bad;
	for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
		if (strcmp(units[i].suffix, suffix) == 0) {
			double v = num * units[i].mult;

			if (v >= 18446744073709551615.0)
				goto bad;
			*bits_per_sec = (uint64_t)v;
			return 0;
		}
	}
bad:
	return ferry_errf(FERRY_EINVAL, "'%s' is not a rate (examples: 500kbit, 4mbit, 1gbit, 0)", s);
}

char *fmt_bytes(char *buf, size_t cap, uint64_t bytes)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
	double v = (double)bytes;
	size_t u = 0;

	while (v >= 1024.0 && u + 1 < ARRAY_SIZE(units)) {
		v /= 1024.0;
		u++;
	}
	if (u == 0)
		snprintf(buf, cap, "%llu B", (unsigned long long)bytes);
	else
		snprintf(buf, cap, "%.1f %s", v, units[u]);
	return buf;
}

char *fmt_rate(char *buf, size_t cap, double bps)
{
	if (bps >= 1e9)
		snprintf(buf, cap, "%.2f Gbit/s", bps / 1e9);
	else if (bps >= 1e6)
		snprintf(buf, cap, "%.1f Mbit/s", bps / 1e6);
	else if (bps >= 1e3)
		snprintf(buf, cap, "%.1f kbit/s", bps / 1e3);
	else
		snprintf(buf, cap, "%.0f bit/s", bps);
	return buf;
}

uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}
