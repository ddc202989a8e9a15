/*
 * idset: a set of 32-byte chunk ids, each carrying a 32-bit value that the
 * caller gives meaning to (an index into its own array, the head of a list,
 * or nothing). Open addressing with linear probing, kept at most half full,
 * growing by doubling. Chunk ids are BLAKE2b hashes, so their first 8 bytes
 * serve as the hash unchanged: the sets are filled only from ids that the
 * node computed or that a trusted manifest lists.
 *
 * Not thread-safe: a set belongs to one thread at a time.
 */
#ifndef FERRY_IDSET_H
#define FERRY_IDSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct idset;

/*
 * A new empty set with room for expect ids before it first grows (0 is
 * fine). The caller frees it with idset_free(). Dies on out-of-memory.
 */
struct idset *idset_new(size_t expect);

/* Free s and everything in it; idset_free(NULL) does nothing. */
void idset_free(struct idset *s);

/* Empty s, sized again for expect ids. Pointers from idset_put() die. */
void idset_clear(struct idset *s, size_t expect);

/* How many ids s holds. */
size_t idset_count(const struct idset *s);

/* True if id is in s. */
bool idset_has(const struct idset *s, const uint8_t id[static 32]);

/* The value stored with id, or -1 if id is not in s. */
int64_t idset_get(const struct idset *s, const uint8_t id[static 32]);

/*
 * Add id with val. Returns true if id was new; false if it was in s
 * already, in which case its value stays as it was. Dies on out-of-memory.
 */
bool idset_add(struct idset *s, const uint8_t id[static 32], uint32_t val);

/*
 * The value of id, for the caller to read and change in place, adding id
 * with init first if it is not in s. The pointer is borrowed: valid until
 * the next idset_add(), idset_put(), idset_clear() or idset_free() on s.
 */
uint32_t *idset_put(struct idset *s, const uint8_t id[static 32], uint32_t init);

#endif
