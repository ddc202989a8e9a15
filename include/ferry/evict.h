/*
 * Eviction policy: which model versions to drop, and in what order. Pure:
 * the caller passes what the store holds and how full things are, and gets
 * back indexes; nothing here touches the store, the disk or the clock.
 * activate_gc() (activate.h) gathers the inputs and carries the plan out.
 *
 * The rules (ferryd.conf(5), DESIGN.md "Local inference"):
 *   - the active version, the previous one (the rollback target) and pinned
 *     versions are never evicted;
 *   - per model, the newest keep_versions versions are never evicted either;
 *   - what is left is a candidate, least recently used first;
 *   - candidates are evicted only while the store is above cache_quota or the
 *     file system is below min_free_space, and only as many as that takes.
 */
#ifndef FERRY_EVICT_H
#define FERRY_EVICT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One stored (or materialized) version of a model. */
struct evict_version {
	const char *name; /* model name (borrowed) */
	uint64_t version;
	uint64_t bytes;	   /* what evicting it is expected to free */
	int64_t last_used; /* unix seconds it was last active or materialized */
	bool active, previous, pinned;
};

struct evict_limits {
	uint64_t quota;		 /* cache_quota; 0 = none */
	uint64_t usage;		 /* bytes the store holds (encoded chunks) */
	uint64_t fs_free;	 /* free bytes, counting space the store will reuse */
	uint64_t min_free_space; /* bytes always left free */
	unsigned keep_versions;	 /* newest versions per model never evicted; 0 = none */
};

/*
 * Bytes that must be freed to meet both limits: the larger of usage above
 * the quota (when there is one) and the shortfall of fs_free below
 * min_free_space. 0 when both are met.
 */
uint64_t evict_need(const struct evict_limits *l);

/* True if v may never be evicted whatever the limits: active, previous or pinned. */
bool evict_protected(const struct evict_version *v);

/*
 * The candidates among v[0..n): neither protected nor among the newest
 * keep_versions of their model (ranked by version among the entries of v
 * with the same name). Their indexes go to out (room for n), least recently
 * used first; ties go to the lower version, then to the name in byte order,
 * so the order is the same on every run. Returns how many.
 */
size_t evict_candidates(const struct evict_version *v, size_t n, unsigned keep_versions,
			size_t *out);

/*
 * The versions to evict now: the shortest prefix of evict_candidates()
 * whose bytes add up to evict_need(l), or all candidates if they do not
 * suffice (then *short_by, if not NULL, receives the bytes still missing;
 * otherwise 0). Indexes go to out (room for n), least recently used first.
 * Returns how many; 0 when the limits are met.
 */
size_t evict_plan(const struct evict_version *v, size_t n, const struct evict_limits *l,
		  size_t *out, uint64_t *short_by);

#endif
