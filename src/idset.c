/*
 * idset: open addressing over one array of slots, so a lookup usually
 * touches a single cache line (id, value and used flag sit together).
 */
#include <stdlib.h>
#include <string.h>

#include "ferry/idset.h"
#include "ferry/util.h"

/* The smallest table: small sets (one bundle, one manifest) stay cheap. */
#define IDSET_MIN_CAP 64

struct slot {
	uint8_t id[32];
	uint32_t val;
	bool used;
};

struct idset {
	struct slot *slots;
	size_t cap; /* a power of two, more than twice n */
	size_t n;
};

/* The smallest power of two that keeps expect ids at most half the table. */
static size_t cap_for(size_t expect)
{
	size_t cap = IDSET_MIN_CAP;

	while (cap < 2 * expect + 2)
		cap *= 2;
	return cap;
}

/* The slot that holds id, or the empty one where it would go. */
static struct slot *find(const struct idset *s, const uint8_t id[32])
{
	uint64_t h;

	memcpy(&h, id, sizeof(h));
	for (size_t i = (size_t)h & (s->cap - 1);; i = (i + 1) & (s->cap - 1))
		if (!s->slots[i].used || memcmp(s->slots[i].id, id, 32) == 0)
			return &s->slots[i];
}

struct idset *idset_new(size_t expect)
{
	struct idset *s = xcalloc(1, sizeof(*s));

	s->cap = cap_for(expect);
	s->slots = xcalloc(s->cap, sizeof(*s->slots));
	return s;
}

void idset_free(struct idset *s)
{
	if (s == NULL)
		return;
	free(s->slots);
	free(s);
}

void idset_clear(struct idset *s, size_t expect)
{
	size_t cap = cap_for(expect);

	if (cap != s->cap) {
		free(s->slots);
		s->slots = xcalloc(cap, sizeof(*s->slots));
		s->cap = cap;
	} else {
		memset(s->slots, 0, cap * sizeof(*s->slots));
	}
	s->n = 0;
}

size_t idset_count(const struct idset *s)
{
	return s->n;
}

bool idset_has(const struct idset *s, const uint8_t id[static 32])
{
	return find(s, id)->used;
}

int64_t idset_get(const struct idset *s, const uint8_t id[static 32])
{
	const struct slot *e = find(s, id);

	return e->used ? (int64_t)e->val : -1;
}

/* Double the table before an add would make it more than half full. */
static void grow(struct idset *s)
{
	struct slot *old = s->slots;
	size_t oldcap = s->cap;

	if (2 * (s->n + 1) <= s->cap)
		return;
	s->cap *= 2;
	s->slots = xcalloc(s->cap, sizeof(*s->slots));
	for (size_t i = 0; i < oldcap; i++)
		if (old[i].used)
			*find(s, old[i].id) = old[i];
	free(old);
}

uint32_t *idset_put(struct idset *s, const uint8_t id[static 32], uint32_t init)
{
	struct slot *e;

	grow(s);
	e = find(s, id);
	if (!e->used) {
		memcpy(e->id, id, 32);
		e->val = init;
		e->used = true;
		s->n++;
	}
	return &e->val;
}

bool idset_add(struct idset *s, const uint8_t id[static 32], uint32_t val)
{
	size_t n = s->n;

	idset_put(s, id, val);
	return s->n != n;
}
