/*
 * Fuzz the have-file reader (have_read): a file from another site's node,
 * carried on removable media. The input is the file, given through a memfd.
 *
 * A have-file that reads must hold only model names that the rules allow,
 * chunk ids in strictly ascending order, and have_has_chunk() must find
 * every listed id and no id between two listed ones.
 */
#include "config.h"

#include <sys/mman.h>
#include <unistd.h>

#include "ferry/error.h"
#include "ferry/have.h"
#include "ferry/util.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int fd = memfd_create("have", MFD_CLOEXEC);
	struct have *h;

	FUZZ_CHECK(fd >= 0);
	FUZZ_CHECK(write_full(fd, data, size) == 0 && lseek(fd, 0, SEEK_SET) == 0);
	if (have_read(fd, &h) != 0) {
		FUZZ_CHECK(h == NULL);
		close(fd);
		return 0;
	}
	close(fd);
	FUZZ_CHECK(h->nversions <= HAVE_VERSIONS_MAX);
	for (size_t i = 0; i < h->nversions; i++)
		FUZZ_CHECK(fuzz_name_ok(h->versions[i].name));
	for (size_t i = 0; i < h->nchunks; i++) {
		uint8_t between[32];

		FUZZ_CHECK(i == 0 || memcmp(h->chunks[i - 1], h->chunks[i], 32) < 0);
		FUZZ_CHECK(have_has_chunk(h, h->chunks[i]));
		/* The id just above this one, unless it is the next listed one. */
		memcpy(between, h->chunks[i], 32);
		for (int k = 31; k >= 0 && ++between[k] == 0; k--)
			;
		if (i + 1 == h->nchunks || memcmp(between, h->chunks[i + 1], 32) != 0)
			FUZZ_CHECK(!have_has_chunk(h, between) ||
				   memcmp(between, h->chunks[i], 32) < 0);
	}
	have_free(h);
	return 0;
}
