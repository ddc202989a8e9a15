/*
 * Prometheus text exposition of a metrics snapshot, and its atomic textfile
 * for node_exporter. One table lists the scalar metrics with their HELP text,
 * so names, help and values cannot drift apart.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ferry/error.h"
#include "ferry/metrics.h"
#include "ferry/util.h"

struct sbuf {
	char *p;
	size_t len, cap;
};

static void sb_grow(struct sbuf *b, size_t more)
{
	if (b->len + more + 1 <= b->cap)
		return;
	while (b->len + more + 1 > b->cap)
		b->cap = b->cap ? 2 * b->cap : 1024;
	b->p = xrealloc(b->p, b->cap);
}

__attribute__((format(printf, 2, 3))) static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		fatal("metrics: bad format %s", fmt);
	sb_grow(b, (size_t)n);
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

/* A label value, escaped as the text format requires. */
static void sb_label(struct sbuf *b, const char *s)
{
	for (; *s; s++) {
		sb_grow(b, 2);
		switch (*s) {
		case '\\':
			b->p[b->len++] = '\\';
			b->p[b->len++] = '\\';
			break;
		case '"':
			b->p[b->len++] = '\\';
			b->p[b->len++] = '"';
			break;
		case '\n':
			b->p[b->len++] = '\\';
			b->p[b->len++] = 'n';
			break;
		default:
			b->p[b->len++] = *s;
		}
	}
	b->p[b->len] = '\0';
}

static void header(struct sbuf *b, const char *name, const char *type, const char *help)
{
	sb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void scalar(struct sbuf *b, const char *name, const char *type, const char *help, uint64_t v)
{
	header(b, name, type, help);
	sb_printf(b, "%s %llu\n", name, (unsigned long long)v);
}

static const char *const link_names[METRICS__LINKS] = {"lan", "wan"};

static void per_link(struct sbuf *b, const char *name, const char *help, const uint64_t *v)
{
	header(b, name, "counter", help);
	for (int i = 0; i < METRICS__LINKS; i++)
		sb_printf(b, "%s{link=\"%s\"} %llu\n", name, link_names[i],
			  (unsigned long long)v[i]);
}

struct metrics_snapshot *metrics_snapshot_new(void)
{
	static const char *const known[] = {METRICS_PEER_STATES};
	struct metrics_snapshot *s = xcalloc(1, sizeof(*s));

	s->peers = xcalloc(ARRAY_SIZE(known), sizeof(*s->peers));
	for (size_t i = 0; i < ARRAY_SIZE(known); i++)
		s->peers[i].state = xstrdup(known[i]);
	s->npeers = ARRAY_SIZE(known);
	return s;
}

void metrics_snapshot_free(struct metrics_snapshot *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->npeers; i++)
		free(s->peers[i].state);
	for (size_t i = 0; i < s->nmodels; i++)
		free(s->models[i].name);
	for (size_t i = 0; i < s->nlimits; i++)
		free(s->limits[i].name);
	free(s->peers);
	free(s->models);
	free(s->limits);
	free(s);
}

void metrics_add_peer(struct metrics_snapshot *s, const char *state)
{
	for (size_t i = 0; i < s->npeers; i++)
		if (strcmp(s->peers[i].state, state) == 0) {
			s->peers[i].count++;
			return;
		}
	s->peers = xreallocarray(s->peers, s->npeers + 1, sizeof(*s->peers));
	s->peers[s->npeers++] = (struct metrics_peer_state){.state = xstrdup(state), .count = 1};
}

void metrics_add_model(struct metrics_snapshot *s, const char *name, uint64_t version,
		       double present, uint64_t size, bool active)
{
	/* NaN fails both comparisons and becomes 0. */
	if (!(present > 0))
		present = 0;
	if (present > 1)
		present = 1;
	s->models = xreallocarray(s->models, s->nmodels + 1, sizeof(*s->models));
	s->models[s->nmodels++] = (struct metrics_model){.name = xstrdup(name),
							 .version = version,
							 .present = present,
							 .size = size,
							 .active = active};
}

void metrics_add_limit(struct metrics_snapshot *s, const char *name, uint64_t rate_bps)
{
	s->limits = xreallocarray(s->limits, s->nlimits + 1, sizeof(*s->limits));
	s->limits[s->nlimits++] =
	    (struct metrics_limit){.name = xstrdup(name), .rate_bps = rate_bps};
}

/* Has an earlier model entry than i the same name? (each name gets one active-version line) */
static bool name_seen(const struct metrics_snapshot *s, size_t i)
{
	for (size_t j = 0; j < i; j++)
		if (strcmp(s->models[j].name, s->models[i].name) == 0)
			return true;
	return false;
}

static void models(struct sbuf *b, const struct metrics_snapshot *s)
{
	header(b, "ferry_model_present_ratio", "gauge",
	       "Fraction of a model version's encoded bytes present in the store.");
	for (size_t i = 0; i < s->nmodels; i++) {
		sb_printf(b, "ferry_model_present_ratio{name=\"");
		sb_label(b, s->models[i].name);
		sb_printf(b, "\",version=\"%llu\"} %.15g\n",
			  (unsigned long long)s->models[i].version, s->models[i].present);
	}
	header(b, "ferry_model_size_bytes", "gauge", "Raw size of a model version's files.");
	for (size_t i = 0; i < s->nmodels; i++) {
		sb_printf(b, "ferry_model_size_bytes{name=\"");
		sb_label(b, s->models[i].name);
		sb_printf(b, "\",version=\"%llu\"} %llu\n",
			  (unsigned long long)s->models[i].version,
			  (unsigned long long)s->models[i].size);
	}
	header(b, "ferry_model_active_version", "gauge",
	       "The version of a model that local inference uses; 0 for none.");
	for (size_t i = 0; i < s->nmodels; i++) {
		uint64_t active = 0;

		if (name_seen(s, i))
			continue;
		for (size_t j = i; j < s->nmodels; j++)
			if (s->models[j].active &&
			    strcmp(s->models[j].name, s->models[i].name) == 0)
				active = s->models[j].version;
		sb_printf(b, "ferry_model_active_version{name=\"");
		sb_label(b, s->models[i].name);
		sb_printf(b, "\"} %llu\n", (unsigned long long)active);
	}
}

char *metrics_render(const struct metrics_snapshot *s, size_t *len)
{
	struct sbuf b = {0};

	sb_grow(&b, 4096);
	per_link(&b, "ferry_peer_receive_bytes_total",
		 "Payload bytes received from peers, by link class (lan: same site).", s->rx_bytes);
	per_link(&b, "ferry_peer_transmit_bytes_total",
		 "Payload bytes sent to peers, by link class (lan: same site).", s->tx_bytes);
	scalar(&b, "ferry_chunks_verified_total", "counter",
	       "Chunks received from peers that matched their id.", s->chunks_verified);
	scalar(&b, "ferry_chunks_rejected_total", "counter",
	       "Chunks received from peers that did not match their id.", s->chunks_rejected);
	scalar(&b, "ferry_peer_reconnects_total", "counter",
	       "Peer connections replaced by a fresh one after their path went silent.",
	       s->reconnects);
	scalar(&b, "ferry_resumed_bytes_total", "counter",
	       "Chunk bytes kept across a dropped connection and not fetched again.",
	       s->resumed_bytes);
	header(&b, "ferry_peers", "gauge", "Known peers by connection state.");
	for (size_t i = 0; i < s->npeers; i++) {
		sb_printf(&b, "ferry_peers{state=\"");
		sb_label(&b, s->peers[i].state);
		sb_printf(&b, "\"} %llu\n", (unsigned long long)s->peers[i].count);
	}
	models(&b, s);
	header(&b, "ferry_rate_limit_bits_per_second", "gauge",
	       "Rate limit in force ([limits], its wan_window, or ferryctl limit); 0 for none.");
	for (size_t i = 0; i < s->nlimits; i++) {
		sb_printf(&b, "ferry_rate_limit_bits_per_second{limit=\"");
		sb_label(&b, s->limits[i].name);
		sb_printf(&b, "\"} %llu\n", (unsigned long long)s->limits[i].rate_bps);
	}
	scalar(&b, "ferry_store_bytes", "gauge", "Encoded bytes of the chunks in the store.",
	       s->store_bytes);
	scalar(&b, "ferry_store_chunks", "gauge", "Chunks in the store.", s->store_chunks);
	scalar(&b, "ferry_fs_free_bytes", "gauge", "Free bytes on the file system of the store.",
	       s->fs_free);
	scalar(&b, "ferry_min_free_bytes", "gauge",
	       "Free space ferryd always leaves on that file system (min_free_space).",
	       s->min_free_space);
	scalar(&b, "ferry_cache_quota_bytes", "gauge",
	       "Store size above which old versions are evicted (cache_quota); 0 for none.",
	       s->cache_quota);
	scalar(&b, "ferry_uptime_seconds", "gauge", "Seconds since ferryd started.", s->uptime_s);
	if (len != NULL)
		*len = b.len;
	return b.p;
}

int metrics_write_textfile(const char *path, const struct metrics_snapshot *s)
{
	const char *slash = strrchr(path, '/');
	char *tmp, *text = NULL;
	size_t len;
	int fd, r = 0;

	/* ".NAME.XXXXXX" next to path: same file system for rename, and no ".prom" suffix. */
	if (slash == NULL)
		tmp = xasprintf(".%s.XXXXXX", path);
	else
		tmp = xasprintf("%.*s/.%s.XXXXXX", (int)(slash - path), path, slash + 1);
	fd = mkstemp(tmp);
	if (fd < 0) {
		r = ferry_errno(errno, "metrics textfile %s: creating a temporary file", path);
		free(tmp);
		return r;
	}
	text = metrics_render(s, &len);
	r = write_full(fd, text, len);
	if (r < 0)
		r = ferry_errf(r, "metrics textfile %s: writing: %s", path, ferry_strerror(r));
	/* node_exporter runs as another user. */
	if (r == 0 && fchmod(fd, 0644) != 0)
		r = ferry_errno(errno, "metrics textfile %s: setting its mode", path);
	if (close(fd) != 0 && r == 0)
		r = ferry_errno(errno, "metrics textfile %s: closing", path);
	if (r == 0 && rename(tmp, path) != 0)
		r = ferry_errno(errno, "metrics textfile %s: renaming into place", path);
	if (r < 0)
		unlink(tmp);
	free(text);
	free(tmp);
	return r;
}
