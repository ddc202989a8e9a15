/*
 * ferryd.conf: parsing, defaults, printing back; see include/ferry/config.h.
 *
 * Everything is driven by keys[] below. Each key has a value type (struct
 * ctype: parse, print, compare, copy, free one value) and the offset of its
 * field in struct config; a repeatable key points at an array and its count.
 * Defaults are strings in the table, parsed by the same code as the file, so
 * a default can never be something the file could not say.
 */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>
#include <unistd.h>

#include "ferry/config.h"
#include "ferry/error.h"
#include "ferry/util.h"

/* A value of any key type, so one parse buffer fits them all. */
union value {
	char *s;
	struct config_addr a;
	bool b;
	unsigned u;
	uint64_t n;
	struct config_publisher p;
	struct config_window w;
};

struct key;

/* A value type. parse writes *dst only when it returns 0; on failure the
 * detail (ferry_errmsg) names the bad value but not the key. */
struct ctype {
	size_t size;
	int (*parse)(const struct key *k, const char *v, union value *dst);
	/* These take a pointer to a field of struct config or an array element:
	 * the concrete type, never a whole union. */
	void (*print)(FILE *f, const void *v);
	bool (*equal)(const void *a, const void *b);
	/* NULL for a value that owns nothing: copied byte by byte. */
	void (*copy)(union value *dst, const void *src);
	void (*free)(void *v);
};

struct key {
	struct config_key pub;
	const struct ctype *t;
	size_t off;	  /* the field, or for a repeatable key the array pointer */
	size_t count_off; /* repeatable keys: the element count */
	bool empty_ok;	  /* "" is a valid (single) value */
};

/* Too many errors means the file is not a config at all (a binary, a typo'd -c). */
#define MAX_ERRORS 100

/* ---- value types ---- */

static int bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int bad(const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return ferry_errf(FERRY_ECONFIG, "%s", msg);
}

static void str_print(FILE *f, const void *v)
{
	fputs(*(char *const *)v, f);
}

static bool str_equal(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b) == 0;
}

static void str_copy(union value *dst, const void *src)
{
	dst->s = xstrdup(*(char *const *)src);
}

static void str_free(void *v)
{
	free(*(char **)v);
	*(char **)v = NULL;
}

static int string_parse(const struct key *k, const char *v, union value *dst)
{
	dst->s = xstrdup(v);
	return 0;
}

static const struct ctype t_string = {sizeof(char *), string_parse, str_print,
				      str_equal,      str_copy,	    str_free};

static int path_parse(const struct key *k, const char *v, union value *dst)
{
	size_t n = strlen(v);

	if (n == 0 && k->empty_ok)
		return string_parse(k, v, dst);
	if (v[0] != '/')
		return bad("'%s' is not an absolute path", v);
	if (n >= PATH_MAX)
		return bad("path is %zu bytes long; the limit is %d", n, PATH_MAX - 1);
	return string_parse(k, v, dst);
}

static const struct ctype t_path = {sizeof(char *), path_parse, str_print,
				    str_equal,	    str_copy,	str_free};

static int sockpath_parse(const struct key *k, const char *v, union value *dst)
{
	size_t n = strlen(v), cap = sizeof(((struct sockaddr_un *)0)->sun_path) - 1;

	if (n > cap)
		return bad("'%s' is %zu bytes long; a Unix socket path holds at most %zu", v, n,
			   cap);
	return path_parse(k, v, dst);
}

static const struct ctype t_sockpath = {sizeof(char *), sockpath_parse, str_print,
					str_equal,	str_copy,	str_free};

/* Letters, digits and the given punctuation; first character not punctuation. */
static bool is_word(const char *v, size_t max, const char *punct, bool lower)
{
	size_t n = strlen(v);

	if (n == 0 || n > max || strchr(punct, v[0]) != NULL)
		return false;
	for (const char *p = v; *p; p++) {
		unsigned char c = (unsigned char)*p;

		if (lower ? (islower(c) || isdigit(c)) : isalnum(c))
			continue;
		if (c >= 0x80 || strchr(punct, c) == NULL)
			return false;
	}
	return true;
}

static int site_parse(const struct key *k, const char *v, union value *dst)
{
	if (*v != '\0' && !is_word(v, 64, "._-", true))
		return bad("'%s' is not a site name (a-z, 0-9, '.', '_', '-', starting with a "
			   "letter or digit, at most 64 characters)",
			   v);
	return string_parse(k, v, dst);
}

static const struct ctype t_site = {sizeof(char *), site_parse, str_print,
				    str_equal,	    str_copy,	str_free};

static int group_parse(const struct key *k, const char *v, union value *dst)
{
	if (*v != '\0' && !is_word(v, 32, "._-", false))
		return bad("'%s' is not a group name", v);
	return string_parse(k, v, dst);
}

static int congestion_parse(const struct key *k, const char *v, union value *dst)
{
	if (*v != '\0' && !is_word(v, 15, "_-", true))
		return bad("'%s' is not a TCP congestion control name (such as bbr or cubic: a-z, "
			   "0-9, '_', '-', at most 15 characters)",
			   v);
	return string_parse(k, v, dst);
}

static const struct ctype t_congestion = {sizeof(char *), congestion_parse, str_print,
					  str_equal,	  str_copy,	    str_free};

static const struct ctype t_group = {sizeof(char *), group_parse, str_print,
				     str_equal,	     str_copy,	  str_free};

static int glob_parse(const struct key *k, const char *v, union value *dst)
{
	size_t n = strlen(v);

	if (n == 0 || n > 128 || strspn(v, "abcdefghijklmnopqrstuvwxyz0123456789._-*?[]!") != n)
		return bad("'%s' is not a glob of model names (a-z, 0-9, '.', '_', '-' and the "
			   "wildcards * ? [...])",
			   v);
	return string_parse(k, v, dst);
}

static const struct ctype t_glob = {sizeof(char *), glob_parse, str_print,
				    str_equal,	    str_copy,	str_free};

static int port_parse(const char *s, const char *v, uint16_t *port)
{
	unsigned long p = 0;

	if (*s == '\0' || strlen(s) > 5 || strspn(s, "0123456789") != strlen(s) ||
	    (p = strtoul(s, NULL, 10)) == 0 || p > 65535)
		return bad("'%s' in '%s' is not a port number (1-65535)", s, v);
	*port = (uint16_t)p;
	return 0;
}

static bool is_hostname(const char *h)
{
	size_t n = strlen(h);

	if (n == 0 || n > 253 || h[0] == '.' || h[0] == '-')
		return false;
	for (const char *p = h; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '.' && *p != '-')
			return false;
	return true;
}

/* "host:port", "[v6]:port", "host" (default port); a listen address must be
 * a literal, since binding to a name that resolves to several addresses would
 * be a guess. */
static int addr_parse_common(const char *v, bool listen, struct config_addr *out)
{
	char host[256];
	const char *port = NULL, *colon;
	uint8_t buf[16];
	bool v6 = false;
	size_t hn;

	if (v[0] == '[') {
		const char *close = strchr(v, ']');

		if (close == NULL)
			return bad("'%s' has '[' without ']'", v);
		hn = (size_t)(close - v - 1);
		if (close[1] == ':')
			port = close + 2;
		else if (close[1] != '\0')
			return bad("'%s': expected ':PORT' after ']'", v);
		if (hn == 0 || hn >= sizeof(host))
			return bad("'%s' is not an IPv6 address in brackets", v);
		memcpy(host, v + 1, hn);
		host[hn] = '\0';
		if (inet_pton(AF_INET6, host, buf) != 1)
			return bad("'%s' is not an IPv6 address", host);
		v6 = true;
	} else {
		colon = strchr(v, ':');
		if (colon != NULL && strchr(colon + 1, ':') != NULL)
			return bad("'%s': an IPv6 address goes in brackets, as in [%s]:%d", v, v,
				   CONFIG_DEFAULT_PORT);
		hn = colon ? (size_t)(colon - v) : strlen(v);
		if (hn == 0)
			return bad("'%s' has no host before the port", v);
		if (hn >= sizeof(host))
			return bad("host name in '%s' is too long", v);
		memcpy(host, v, hn);
		host[hn] = '\0';
		if (colon != NULL)
			port = colon + 1;
	}
	if (!v6) {
		bool literal = inet_pton(AF_INET, host, buf) == 1;

		if (listen && !literal)
			return bad("'%s' is not an IP address (listen takes an address such as "
				   "0.0.0.0:%d or [::]:%d, or off)",
				   host, CONFIG_DEFAULT_PORT, CONFIG_DEFAULT_PORT);
		if (!literal && !is_hostname(host))
			return bad("'%s' is not a host name or address", host);
	}
	out->port = CONFIG_DEFAULT_PORT;
	if (port != NULL && port_parse(port, v, &out->port) < 0)
		return FERRY_ECONFIG;
	out->host = xstrdup(host);
	return 0;
}

static int listen_parse(const struct key *k, const char *v, union value *dst)
{
	if (strcmp(v, "off") == 0) {
		dst->a.host = NULL;
		dst->a.port = 0;
		return 0;
	}
	return addr_parse_common(v, true, &dst->a);
}

static int peer_parse(const struct key *k, const char *v, union value *dst)
{
	return addr_parse_common(v, false, &dst->a);
}

static void addr_print(FILE *f, const void *v)
{
	const struct config_addr *a = v;

	if (a->host == NULL)
		fputs("off", f);
	else if (strchr(a->host, ':') != NULL)
		fprintf(f, "[%s]:%u", a->host, a->port);
	else
		fprintf(f, "%s:%u", a->host, a->port);
}

static bool addr_equal(const void *va, const void *vb)
{
	const struct config_addr *a = va, *b = vb;

	if (a->host == NULL || b->host == NULL)
		return a->host == b->host;
	return strcmp(a->host, b->host) == 0 && a->port == b->port;
}

static void addr_copy(union value *dst, const void *src)
{
	const struct config_addr *a = src;

	dst->a.host = a->host ? xstrdup(a->host) : NULL;
	dst->a.port = a->port;
}

static void addr_free(void *v)
{
	struct config_addr *a = v;

	free(a->host);
	a->host = NULL;
}

static const struct ctype t_listen = {
    sizeof(struct config_addr), listen_parse, addr_print, addr_equal, addr_copy, addr_free};
static const struct ctype t_peer = {
    sizeof(struct config_addr), peer_parse, addr_print, addr_equal, addr_copy, addr_free};

static void plain_free(void *v)
{
}

static int bool_parse(const struct key *k, const char *v, union value *dst)
{
	static const char *const yes[] = {"on", "yes", "true", "1"}, *const no[] = {"off", "no",
										    "false", "0"};

	for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
		if (strcasecmp(v, yes[i]) == 0) {
			dst->b = true;
			return 0;
		}
		if (strcasecmp(v, no[i]) == 0) {
			dst->b = false;
			return 0;
		}
	}
	return bad("'%s' is not on or off", v);
}

static void bool_print(FILE *f, const void *v)
{
	fputs(*(const bool *)v ? "on" : "off", f);
}

static bool bool_equal(const void *a, const void *b)
{
	return *(const bool *)a == *(const bool *)b;
}

static const struct ctype t_bool = {sizeof(bool), bool_parse, bool_print,
				    bool_equal,	  NULL,	      plain_free};

/* A count of versions: at least one (the active one), and a sane upper bound. */
static int count_parse(const struct key *k, const char *v, union value *dst)
{
	unsigned long n;

	if (*v == '\0' || strlen(v) > 4 || strspn(v, "0123456789") != strlen(v) ||
	    (n = strtoul(v, NULL, 10)) < 1 || n > 1000)
		return bad("'%s' is not a whole number from 1 to 1000", v);
	dst->u = (unsigned)n;
	return 0;
}

static void count_print(FILE *f, const void *v)
{
	fprintf(f, "%u", *(const unsigned *)v);
}

static bool count_equal(const void *a, const void *b)
{
	return *(const unsigned *)a == *(const unsigned *)b;
}

static const struct ctype t_count = {sizeof(unsigned), count_parse, count_print,
				     count_equal,      NULL,	    plain_free};

static bool u64_equal(const void *a, const void *b)
{
	return *(const uint64_t *)a == *(const uint64_t *)b;
}

static int size_parse(const struct key *k, const char *v, union value *dst)
{
	uint64_t n;

	if (parse_size(v, &n) < 0)
		return bad("%s", ferry_errmsg(FERRY_EINVAL));
	dst->n = n;
	return 0;
}

/* The largest unit that divides the value exactly, so printing loses nothing. */
static void size_print(FILE *f, const void *v)
{
	static const char units[] = "KMGT";
	uint64_t n = *(const uint64_t *)v;
	int u = -1;

	while (n != 0 && n % 1024 == 0 && u < 3) {
		n /= 1024;
		u++;
	}
	if (u < 0)
		fprintf(f, "%llu", (unsigned long long)n);
	else
		fprintf(f, "%llu%c", (unsigned long long)n, units[u]);
}

static const struct ctype t_size = {sizeof(uint64_t), size_parse, size_print,
				    u64_equal,	      NULL,	  plain_free};

static int rate_parse(const struct key *k, const char *v, union value *dst)
{
	uint64_t n;

	if (parse_rate(v, &n) < 0)
		return bad("%s", ferry_errmsg(FERRY_EINVAL));
	dst->n = n;
	return 0;
}

static void rate_fprint(FILE *f, uint64_t n)
{
	static const char *const units[] = {"kbit", "mbit", "gbit", "tbit"};
	int u = -1;

	while (n != 0 && n % 1000 == 0 && u < 3) {
		n /= 1000;
		u++;
	}
	if (u < 0)
		fprintf(f, "%llu", (unsigned long long)n);
	else
		fprintf(f, "%llu%s", (unsigned long long)n, units[u]);
}

static void rate_print(FILE *f, const void *v)
{
	rate_fprint(f, *(const uint64_t *)v);
}

static const struct ctype t_rate = {sizeof(uint64_t), rate_parse, rate_print,
				    u64_equal,	      NULL,	  plain_free};

static int publisher_parse(const struct key *k, const char *v, union value *dst)
{
	if (fcrypto_b64_decode(dst->p.pk, FERRY_PK_LEN, v) < 0)
		return bad("'%s' is not a base64 Ed25519 public key (44 characters, the last line "
			   "ferryctl keygen prints)",
			   v);
	return 0;
}

static void publisher_print(FILE *f, const void *v)
{
	const struct config_publisher *p = v;
	char b64[FERRY_B64_32_LEN];

	fputs(fcrypto_b64_encode(b64, p->pk, FERRY_PK_LEN), f);
}

static bool publisher_equal(const void *a, const void *b)
{
	const struct config_publisher *pa = a, *pb = b;

	return memcmp(pa->pk, pb->pk, FERRY_PK_LEN) == 0;
}

static const struct ctype t_publisher = {sizeof(struct config_publisher),
					 publisher_parse,
					 publisher_print,
					 publisher_equal,
					 NULL,
					 plain_free};

/* Weekday names in tm_wday order. */
static const char *const wday_names[7] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};
#define ALL_DAYS 0x7f

static int wday_parse(const char *s, size_t n)
{
	for (int d = 0; d < 7; d++)
		if (n == 3 && strncasecmp(s, wday_names[d], 3) == 0)
			return d;
	return -1;
}

/* "daily", or a comma list of days and ranges: "mon-fri", "sat,sun", "fri-mon". */
static int days_parse(const char *s, uint8_t *days)
{
	const char *p = s;

	if (strcasecmp(s, "daily") == 0) {
		*days = ALL_DAYS;
		return 0;
	}
	*days = 0;
	for (;;) {
		size_t n = strcspn(p, ",-");
		int from = wday_parse(p, n), to = from;

		if (from < 0)
			goto bad;
		p += n;
		if (*p == '-') {
			p++;
			n = strcspn(p, ",");
			to = wday_parse(p, n);
			if (to < 0)
				goto bad;
			p += n;
		}
		/* A range may wrap past Sunday: "fri-mon". */
		for (int d = from;; d = (d + 1) % 7) {
			*days |= (uint8_t)(1u << d);
			if (d == to)
				break;
		}
		if (*p == '\0')
			return 0;
		p++; /* the comma */
	}
bad:
	return bad("'%s' is not a list of days (as in mon-fri, sat,sun or daily)", s);
}

/* "HH:MM" (or "H:MM") from 00:00 to 24:00; returns minutes or -1. */
static int hhmm_parse(const char *s, size_t n)
{
	int h = 0, m;
	size_t i = 0;

	if (n != 4 && n != 5)
		return -1;
	for (; i < n - 3; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -1;
		h = h * 10 + (s[i] - '0');
	}
	if (s[i] != ':' || !isdigit((unsigned char)s[i + 1]) || !isdigit((unsigned char)s[i + 2]))
		return -1;
	m = (s[i + 1] - '0') * 10 + (s[i + 2] - '0');
	if (m > 59 || h > 24 || (h == 24 && m != 0))
		return -1;
	return h * 60 + m;
}

static int window_parse(const struct key *k, const char *v, union value *dst)
{
	char days[64], span[64], rate[64], extra[2];
	struct config_window w = {0};
	const char *dash;
	int start, end;

	if (sscanf(v, "%63s %63s %63s %1s", days, span, rate, extra) != 3)
		return bad("'%s' is not a window (DAYS HH:MM-HH:MM RATE, as in mon-fri "
			   "08:00-18:00 1mbit)",
			   v);
	if (days_parse(days, &w.days) < 0)
		return FERRY_ECONFIG;
	dash = strchr(span, '-');
	start = dash ? hhmm_parse(span, (size_t)(dash - span)) : -1;
	end = dash ? hhmm_parse(dash + 1, strlen(dash + 1)) : -1;
	if (start < 0 || end < 0 || start == 24 * 60)
		return bad("'%s' is not a time range (HH:MM-HH:MM from 00:00 to 24:00)", span);
	if (start == end)
		return bad("'%s' is an empty time range", span);
	w.start = (uint16_t)start;
	w.end = (uint16_t)end;
	if (parse_rate(rate, &w.rate) < 0)
		return bad("%s", ferry_errmsg(FERRY_EINVAL));
	dst->w = w;
	return 0;
}

/* Days in the order an operator reads a week (mon..sun); runs of three or
 * more as ranges. The result parses back to the same set. */
static void days_print(FILE *f, uint8_t days)
{
	static const int order[7] = {1, 2, 3, 4, 5, 6, 0};
	bool first = true;

	if (days == ALL_DAYS) {
		fputs("daily", f);
		return;
	}
	for (int i = 0; i < 7;) {
		int j = i;

		if (!(days & (1u << order[i]))) {
			i++;
			continue;
		}
		while (j + 1 < 7 && (days & (1u << order[j + 1])))
			j++;
		if (!first)
			fputc(',', f);
		first = false;
		if (j - i >= 2)
			fprintf(f, "%s-%s", wday_names[order[i]], wday_names[order[j]]);
		else if (j == i)
			fputs(wday_names[order[i]], f);
		else
			fprintf(f, "%s,%s", wday_names[order[i]], wday_names[order[j]]);
		i = j + 1;
	}
}

static void window_print(FILE *f, const void *v)
{
	const struct config_window *w = v;

	days_print(f, w->days);
	fprintf(f, " %02u:%02u-%02u:%02u ", w->start / 60, w->start % 60, w->end / 60, w->end % 60);
	rate_fprint(f, w->rate);
}

static bool window_equal(const void *va, const void *vb)
{
	const struct config_window *a = va, *b = vb;

	return a->days == b->days && a->start == b->start && a->end == b->end && a->rate == b->rate;
}

static const struct ctype t_window = {
    sizeof(struct config_window), window_parse, window_print, window_equal, NULL, plain_free};

/* ---- the table ---- */

#define F(field) offsetof(struct config, field)
#define ONE(sec, field, T, tname, def, restart_, empty, desc)                                      \
	{                                                                                          \
		{sec, #field, tname, def, false, restart_, desc}, &T, F(field), 0, empty           \
	}
#define LIST(sec, name, field, T, tname, def, desc)                                                \
	{                                                                                          \
		{sec, name, tname, def, true, false, desc}, &T, F(field), F(n_##field), false      \
	}

static const struct key keys[] = {
    ONE("node", state_dir, t_path, "path", LOCALSTATEDIR "/lib/ferry", true, false,
	"directory of the chunk store, node key, lock and materialized models"),
    ONE("node", socket, t_sockpath, "path", RUNSTATEDIR "/ferry/ferryd.sock", true, false,
	"Unix socket ferryctl connects to"),
    ONE("node", socket_group, t_group, "group", "ferry", true, true,
	"group that may use the socket (mode 0660); empty leaves the group alone"),
    ONE("node", listen, t_listen, "address", "0.0.0.0:7440", true, false,
	"address and TCP port for peers, or off to only dial out"),
    ONE("node", site, t_site, "name", "", false, true,
	"the site (LAN behind one WAN link) this node belongs to"),
    ONE("node", network_key_file, t_path, "path", SYSCONFDIR "/ferry/network.key", true, false,
	"file holding the network's pre-shared key"),
    ONE("node", min_free_space, t_size, "size", "2G", false, false,
	"free space always left on the store's file system"),
    ONE("node", metrics_textfile, t_path, "path", "", false, true,
	"file rewritten with Prometheus metrics for node_exporter; empty for none"),
    LIST("peers", "peer", peers, t_peer, "address", "", "a peer to dial, HOST[:PORT]"),
    ONE("peers", lan_discovery, t_bool, "boolean", "on", false, false,
	"find peers on the LAN with multicast beacons"),
    ONE("peers", wan_congestion, t_congestion, "name", "bbr", true, true,
	"TCP congestion control for peers of other sites; empty for the system's default"),
    LIST("trust", "publisher", publishers, t_publisher, "key", "",
	 "base64 Ed25519 public key of a trusted publisher"),
    LIST("models", "want", want, t_glob, "glob", "*", "glob of model names this node holds"),
    ONE("models", keep_versions, t_count, "count", "2", false, false,
	"versions of each model kept in the store"),
    ONE("models", auto_activate, t_bool, "boolean", "on", false, false,
	"activate a newer version as soon as it is complete"),
    ONE("models", on_activate, t_string, "command", "", false, true,
	"command run after a version is activated"),
    ONE("models", cache_quota, t_size, "size", "0", false, false,
	"store size above which old versions are evicted; 0 for no quota"),
    ONE("limits", download_rate, t_rate, "rate", "0", false, false,
	"limit on all incoming peer traffic; 0 for none"),
    ONE("limits", upload_rate, t_rate, "rate", "0", false, false,
	"limit on all outgoing peer traffic; 0 for none"),
    ONE("limits", wan_download_rate, t_rate, "rate", "0", false, false,
	"limit on incoming traffic from other sites; 0 for none"),
    ONE("limits", wan_upload_rate, t_rate, "rate", "0", false, false,
	"limit on outgoing traffic to other sites; 0 for none"),
    LIST("limits", "wan_window", wan_windows, t_window, "window", "",
	 "DAYS HH:MM-HH:MM RATE: WAN limit for both directions in that window"),
};

#define NKEYS ARRAY_SIZE(keys)

const struct config_key *config_key_at(size_t i)
{
	return i < NKEYS ? &keys[i].pub : NULL;
}

/* ---- access to one key's value(s) in a config ---- */

static void *field(const struct config *c, const struct key *k)
{
	return (char *)c + k->off;
}

static size_t *count_of(const struct config *c, const struct key *k)
{
	return (size_t *)((char *)c + k->count_off);
}

/* The i-th value of k in c (the only one for a single key). */
static void *value_at(const struct config *c, const struct key *k, size_t i)
{
	if (!k->pub.repeatable)
		return field(c, k);
	return *(char **)field(c, k) + i * k->t->size;
}

static size_t n_values(const struct config *c, const struct key *k)
{
	return k->pub.repeatable ? *count_of(c, k) : 1;
}

static void clear_key(struct config *c, const struct key *k)
{
	size_t n = n_values(c, k);

	for (size_t i = 0; i < n; i++)
		k->t->free(value_at(c, k, i));
	if (k->pub.repeatable) {
		free(*(void **)field(c, k));
		*(void **)field(c, k) = NULL;
		*count_of(c, k) = 0;
	}
}

static void copy_value(const struct key *k, union value *dst, const void *src)
{
	if (k->t->copy != NULL)
		k->t->copy(dst, src);
	else
		memcpy(dst, src, k->t->size);
}

/* Store a parsed value, taking over what it owns. */
static void put_value(struct config *c, const struct key *k, const union value *v)
{
	if (k->pub.repeatable) {
		void **arr = field(c, k);
		size_t *n = count_of(c, k);

		*arr = xreallocarray(*arr, *n + 1, k->t->size);
		memcpy((char *)*arr + *n * k->t->size, v, k->t->size);
		(*n)++;
	} else {
		k->t->free(field(c, k));
		memcpy(field(c, k), v, k->t->size);
	}
}

/*
 * Reject a value that would not read back the same from a file: one with
 * white space at an end, or a ';' or '#' at its start or after white space
 * (which the reader takes for a comment). The reader strips both, so from a
 * file only "key =;x" gets here; config_default_dev's directory can too.
 */
static int check_writable(const char *v)
{
	size_t n = strlen(v);

	if (n > 0 && (isspace((unsigned char)v[0]) || isspace((unsigned char)v[n - 1])))
		return bad("'%s' cannot be a value: it starts or ends with white space", v);
	for (size_t i = 0; i < n; i++)
		if ((v[i] == ';' || v[i] == '#') && (i == 0 || isspace((unsigned char)v[i - 1])))
			return bad("'%s' cannot be a value: a ';' or '#' at its start or after a "
				   "space begins a comment",
				   v);
	return 0;
}

/*
 * Set k from the text v. For a repeatable key, fresh discards the list it
 * had (the base's or default) before adding, and an empty v leaves it empty.
 */
static int set_key(struct config *c, const struct key *k, const char *v, bool fresh)
{
	union value tmp;
	int rc;

	rc = check_writable(v);
	if (rc < 0)
		return rc;
	if (k->pub.repeatable) {
		if (fresh)
			clear_key(c, k);
		if (*v == '\0')
			return 0;
	}
	memset(&tmp, 0, sizeof(tmp));
	rc = k->t->parse(k, v, &tmp);
	if (rc < 0)
		return rc;
	put_value(c, k, &tmp);
	return 0;
}

static struct config *config_new(void)
{
	struct config *c = xcalloc(1, sizeof(*c));

	c->path = xstrdup("");
	return c;
}

void config_free(struct config *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < NKEYS; i++)
		clear_key(c, &keys[i]);
	free(c->path);
	free(c);
}

static struct config *config_copy(const struct config *src)
{
	struct config *c = config_new();

	free(c->path);
	c->path = xstrdup(src->path);
	for (size_t i = 0; i < NKEYS; i++) {
		const struct key *k = &keys[i];
		size_t n = n_values(src, k);

		for (size_t j = 0; j < n; j++) {
			union value v;

			copy_value(k, &v, value_at(src, k, j));
			put_value(c, k, &v);
		}
	}
	return c;
}

struct config *config_default(void)
{
	struct config *c = config_new();

	for (size_t i = 0; i < NKEYS; i++) {
		/* The defaults are constants checked by the unit test; a bad one is a
		 * bug in this file, not input. */
		if (set_key(c, &keys[i], keys[i].pub.def, true) < 0)
			fatal("config: bad default for %s: %s", keys[i].pub.key,
			      ferry_errmsg(FERRY_ECONFIG));
	}
	return c;
}

static const struct key *find_key(const char *section, const char *name)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (strcmp(keys[i].pub.section, section) == 0 && strcmp(keys[i].pub.key, name) == 0)
			return &keys[i];
	return NULL;
}

int config_default_dev(const char *dir, struct config **out)
{
	/* Paths are DIR + suffix; the other keys get a fixed value. */
	static const struct {
		const char *key, *suffix, *value;
	} dev[] = {
	    {"state_dir", "/state", NULL},
	    {"socket", "/ferryd.sock", NULL},
	    {"network_key_file", "/network.key", NULL},
	    {"socket_group", NULL, ""},
	    {"listen", NULL, "127.0.0.1:7440"},
	};
	struct config *c = config_default();
	char *abs = NULL, cwd[PATH_MAX];
	int rc = 0;

	*out = NULL;
	if (dir[0] != '/') {
		if (getcwd(cwd, sizeof(cwd)) == NULL) {
			rc = ferry_errno(errno, "current directory");
			goto out;
		}
		abs = xasprintf("%s/%s", cwd, dir);
	} else {
		abs = xstrdup(dir);
	}
	for (size_t i = 0; i < ARRAY_SIZE(dev); i++) {
		char *v =
		    dev[i].value ? xstrdup(dev[i].value) : xasprintf("%s%s", abs, dev[i].suffix);
		const struct key *k = find_key("node", dev[i].key);

		rc = set_key(c, k, v, true);
		free(v);
		if (rc < 0) {
			rc = ferry_errf(FERRY_ECONFIG, "development config under %s: %s: %s", abs,
					k->pub.key, ferry_errmsg(FERRY_ECONFIG));
			goto out;
		}
	}
	*out = c;
	c = NULL;
out:
	free(abs);
	config_free(c);
	return rc;
}

/* ---- the parser ---- */

struct errs {
	FILE *f;
	char *buf;
	size_t len;
	unsigned n;
	const char *name;
	char *first; /* the first error, for ferry_errmsg() */
};

static void err_at(struct errs *e, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void err_at(struct errs *e, unsigned line, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (e->n == 0)
		e->first = xasprintf("%s:%u: %s", e->name, line, msg);
	e->n++;
	fprintf(e->f, "%s:%u: %s\n", e->name, line, msg);
}

static char *trim(char *s)
{
	char *end;

	while (isspace((unsigned char)*s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		*--end = '\0';
	return s;
}

static bool known_section(const char *s)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (strcmp(keys[i].pub.section, s) == 0)
			return true;
	return false;
}

/* The section of a key that is in the table under another section, for a hint. */
static const char *other_section(const char *name)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (strcmp(keys[i].pub.key, name) == 0)
			return keys[i].pub.section;
	return NULL;
}

/* Parse one line already stripped of comments and white space. */
static void parse_line(struct config *c, struct errs *e, unsigned lineno, char *line,
		       const char **section, bool *skipping, unsigned *first_line)
{
	const struct key *k;
	char *eq, *name, *value;
	const char *hint;

	if (line[0] == '[') {
		size_t n = strlen(line);
		char *sec;

		if (line[n - 1] != ']') {
			err_at(e, lineno, "malformed section header '%s' (no closing ']')", line);
			*skipping = true;
			*section = NULL;
			return;
		}
		line[n - 1] = '\0';
		sec = trim(line + 1);
		*section = NULL;
		*skipping = !known_section(sec);
		if (*skipping) {
			err_at(e, lineno, "unknown section [%s]", sec);
			return;
		}
		for (size_t i = 0; i < NKEYS; i++)
			if (strcmp(keys[i].pub.section, sec) == 0)
				*section = keys[i].pub.section;
		return;
	}
	eq = strchr(line, '=');
	if (eq == NULL) {
		err_at(e, lineno, "expected 'key = value' or '[section]', got '%s'", line);
		return;
	}
	*eq = '\0';
	name = trim(line);
	value = trim(eq + 1);
	if (*name == '\0') {
		err_at(e, lineno, "missing key name before '='");
		return;
	}
	/* Keys of an unknown section were reported with the section. */
	if (*skipping)
		return;
	if (*section == NULL) {
		err_at(e, lineno, "key '%s' is set before any [section]", name);
		return;
	}
	k = find_key(*section, name);
	if (k == NULL) {
		hint = other_section(name);
		if (hint != NULL)
			err_at(e, lineno, "unknown key '%s' in [%s] (it belongs in [%s])", name,
			       *section, hint);
		else
			err_at(e, lineno, "unknown key '%s' in [%s]", name, *section);
		return;
	}
	if (first_line[k - keys] != 0 && !k->pub.repeatable) {
		err_at(e, lineno, "duplicate key '%s' in [%s] (first set on line %u)", name,
		       *section, first_line[k - keys]);
		return;
	}
	if (set_key(c, k, value, first_line[k - keys] == 0) < 0)
		err_at(e, lineno, "%s: %s", name, ferry_errmsg(FERRY_ECONFIG));
	if (first_line[k - keys] == 0)
		first_line[k - keys] = lineno;
}

/* Cut a comment: ';' or '#' at the start of the line or after white space. */
static void strip_comment(char *line)
{
	for (size_t i = 0; line[i] != '\0'; i++) {
		if ((line[i] == ';' || line[i] == '#') &&
		    (i == 0 || isspace((unsigned char)line[i - 1]))) {
			line[i] = '\0';
			return;
		}
	}
}

int config_parse(const char *name, const char *text, size_t len, const struct config *base,
		 struct config **out, char **errors)
{
	struct errs e = {.name = name};
	unsigned first_line[NKEYS] = {0}, lineno = 0;
	const char *section = NULL;
	bool skipping = false;
	struct config *c;
	size_t pos = 0;
	int rc = 0;

	*out = NULL;
	if (errors != NULL)
		*errors = NULL;
	e.f = open_memstream(&e.buf, &e.len);
	if (e.f == NULL)
		fatal("out of memory collecting config errors");
	c = base ? config_copy(base) : config_default();
	free(c->path);
	c->path = xstrdup(name);
	/* A byte order mark from a Windows editor is not part of the first key. */
	if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
		pos = 3;
	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - (text + pos)) : len - pos;
		char *line = xmalloc(n + 1), *l;
		bool ctrl = false;

		memcpy(line, text + pos, n);
		line[n] = '\0';
		pos += n + 1;
		lineno++;
		if (n > 0 && line[n - 1] == '\r')
			line[--n] = '\0';
		for (size_t i = 0; i < n; i++) {
			unsigned char ch = (unsigned char)line[i];

			if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
				err_at(&e, lineno, "control character 0x%02x in line", ch);
				ctrl = true;
				break;
			}
		}
		if (!ctrl) {
			strip_comment(line);
			l = trim(line);
			if (*l != '\0')
				parse_line(c, &e, lineno, l, &section, &skipping, first_line);
		}
		free(line);
		if (e.n >= MAX_ERRORS) {
			fprintf(e.f, "%s:%u: too many errors, giving up\n", name, lineno);
			break;
		}
	}
	fclose(e.f);
	if (e.n > 0) {
		/* Set last: parsing later lines records details of their own. */
		rc = ferry_errf(FERRY_ECONFIG, "%s", e.first);
		config_free(c);
		c = NULL;
	}
	if (errors != NULL && e.n > 0) {
		*errors = e.buf;
		e.buf = NULL;
	}
	free(e.buf);
	free(e.first);
	*out = c;
	return rc;
}

int config_load(const char *path, const struct config *base, struct config **out, char **errors)
{
	char *text = NULL;
	size_t len = 0;
	int rc;

	*out = NULL;
	if (errors != NULL)
		*errors = NULL;
	rc = read_file(path, CONFIG_MAX_FILE, &text, &len);
	if (rc < 0) {
		if (errors != NULL)
			*errors = xasprintf("%s\n", ferry_errmsg(rc));
		return rc;
	}
	rc = config_parse(path, text, len, base, out, errors);
	free(text);
	return rc;
}

/* ---- printing and comparing ---- */

void config_print(const struct config *c, FILE *f)
{
	const char *section = NULL;

	for (size_t i = 0; i < NKEYS; i++) {
		const struct key *k = &keys[i];
		size_t n = n_values(c, k);

		if (section == NULL || strcmp(section, k->pub.section) != 0) {
			fprintf(f, "%s[%s]\n", section ? "\n" : "", k->pub.section);
			section = k->pub.section;
		}
		if (n == 0)
			fprintf(f, "%s =\n", k->pub.key);
		for (size_t j = 0; j < n; j++) {
			const void *v = value_at(c, k, j);

			/* "key =" rather than "key = " for an empty string. */
			if (k->t->print == str_print && **(char *const *)v == '\0') {
				fprintf(f, "%s =\n", k->pub.key);
				continue;
			}
			fprintf(f, "%s = ", k->pub.key);
			k->t->print(f, v);
			fputc('\n', f);
		}
	}
}

static bool key_equal(const struct config *a, const struct config *b, const struct key *k)
{
	size_t n = n_values(a, k);

	if (n != n_values(b, k))
		return false;
	for (size_t j = 0; j < n; j++)
		if (!k->t->equal(value_at(a, k, j), value_at(b, k, j)))
			return false;
	return true;
}

bool config_equal(const struct config *a, const struct config *b)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (!key_equal(a, b, &keys[i]))
			return false;
	return true;
}

void config_keep_restart_keys(struct config *next, const struct config *cur,
			      void (*changed)(const struct config_key *key, void *arg), void *arg)
{
	for (size_t i = 0; i < NKEYS; i++) {
		const struct key *k = &keys[i];
		union value v;

		if (!k->pub.restart || key_equal(next, cur, k))
			continue;
		if (changed != NULL)
			changed(&k->pub, arg);
		/* Restart keys are single values (the table has no repeatable one). */
		copy_value(k, &v, value_at(cur, k, 0));
		put_value(next, k, &v);
	}
}

/* ---- schedules and globs ---- */

static bool window_covers(const struct config_window *w, int wday, int minute)
{
	int yesterday = (wday + 6) % 7;

	if (w->start < w->end)
		return (w->days & (1u << wday)) && minute >= w->start && minute < w->end;
	/* Crosses midnight: the evening of a listed day or the morning after one. */
	return ((w->days & (1u << wday)) && minute >= w->start) ||
	       ((w->days & (1u << yesterday)) && minute < w->end);
}

bool config_wan_rate_at(const struct config *c, time_t t, uint64_t *rate)
{
	struct tm tm;
	int minute;

	if (localtime_r(&t, &tm) == NULL)
		return false;
	minute = tm.tm_hour * 60 + tm.tm_min;
	for (size_t i = c->n_wan_windows; i-- > 0;) {
		if (window_covers(&c->wan_windows[i], tm.tm_wday, minute)) {
			*rate = c->wan_windows[i].rate;
			return true;
		}
	}
	return false;
}

bool config_wants(const struct config *c, const char *name)
{
	for (size_t i = 0; i < c->n_want; i++)
		if (fnmatch(c->want[i], name, 0) == 0)
			return true;
	return false;
}
