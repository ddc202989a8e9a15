/*
 * The eviction policy of evict.h: rank versions per model, drop the
 * protected ones, order the rest by last use and take as many as the limits
 * require. Pure functions of their arguments.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "ferry/evict.h"
#include "ferry/util.h"

uint64_t evict_need(const struct evict_limits *l)
{
	uint64_t need = 0;

	if (l->quota > 0 && l->usage > l->quota)
		need = l->usage - l->quota;
	if (l->fs_free < l->min_free_space)
		need = MAX(need, l->min_free_space - l->fs_free);
	return need;
}

bool evict_protected(const struct evict_version *v)
{
	return v->active || v->previous || v->pinned;
}

/* By name, then version descending: the newest of a model comes first. */
static int by_name_newest(const void *a, const void *b, void *arg)
{
	const struct evict_version *v = arg;
	const struct evict_version *x = &v[*(const size_t *)a], *y = &v[*(const size_t *)b];
	int c = strcmp(x->name, y->name);

	if (c != 0)
		return c;
	return x->version < y->version ? 1 : x->version > y->version ? -1 : 0;
}

/* Least recently used first; then lower version, then name, for a stable order. */
static int by_lru(const void *a, const void *b, void *arg)
{
	const struct evict_version *v = arg;
	const struct evict_version *x = &v[*(const size_t *)a], *y = &v[*(const size_t *)b];

	if (x->last_used != y->last_used)
		return x->last_used < y->last_used ? -1 : 1;
	if (x->version != y->version)
		return x->version < y->version ? -1 : 1;
	return strcmp(x->name, y->name);
}

size_t evict_candidates(const struct evict_version *v, size_t n, unsigned keep_versions,
			size_t *out)
{
	size_t *idx, nout = 0, rank = 0;

	if (n == 0)
		return 0;
	idx = xreallocarray(NULL, n, sizeof(*idx));
	for (size_t i = 0; i < n; i++)
		idx[i] = i;
	qsort_r(idx, n, sizeof(*idx), by_name_newest, (void *)v);
	for (size_t i = 0; i < n; i++) {
		const struct evict_version *e = &v[idx[i]];

		/* Entries of the same version share a rank: a duplicate is not a newer version. */
		if (i == 0 || strcmp(e->name, v[idx[i - 1]].name) != 0)
			rank = 0;
		else if (e->version != v[idx[i - 1]].version)
			rank++;
		if (rank < keep_versions || evict_protected(e))
			continue;
		out[nout++] = idx[i];
	}
	free(idx);
	qsort_r(out, nout, sizeof(*out), by_lru, (void *)v);
	return nout;
}

size_t evict_plan(const struct evict_version *v, size_t n, const struct evict_limits *l,
		  size_t *out, uint64_t *short_by)
{
	uint64_t need = evict_need(l), got = 0;
	size_t ncand, k = 0;

	if (short_by != NULL)
		*short_by = 0;
	if (need == 0)
		return 0;
	ncand = evict_candidates(v, n, l->keep_versions, out);
	while (k < ncand && got < need) {
		uint64_t b = v[out[k]].bytes;

		got = got > UINT64_MAX - b ? UINT64_MAX : got + b;
		k++;
	}
	if (got < need && short_by != NULL)
		*short_by = need - got;
	return k;
}
