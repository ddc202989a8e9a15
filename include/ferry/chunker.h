/*
 * Content-defined chunking: FastCDC with a gear rolling hash and normalized
 * chunking (Xia et al., USENIX ATC 2016). The gear table, masks and sizes are
 * part of the format: changing any of them changes every chunk id. They are
 * written down in docs/formats.md and pinned by tests/unit/test_chunker.c.
 */
#ifndef FERRY_CHUNKER_H
#define FERRY_CHUNKER_H

#include <stddef.h>
#include <stdint.h>

#define CHUNK_MIN_SIZE (64u * 1024u)
#define CHUNK_AVG_SIZE (256u * 1024u)
#define CHUNK_MAX_SIZE (1024u * 1024u)

/*
 * Return the length of the chunk that starts at p. n is the number of bytes
 * available from p; the function looks at no more than CHUNK_MAX_SIZE of
 * them. The caller must pass n >= CHUNK_MAX_SIZE unless p + n is the end of
 * the file. The result is in [1, min(n, CHUNK_MAX_SIZE)] for n > 0, and 0 for
 * n == 0. Pure and thread-safe.
 */
size_t chunker_cut(const uint8_t *p, size_t n);

/*
 * The gear table, part of the format (rule in docs/formats.md). Exported only
 * so that the unit test can recompute it; other modules have no use for it.
 */
extern const uint64_t chunker__gear[256];

#endif
