/* Have-files; see include/ferry/have.h, and docs/formats.md "Have files" for the bytes. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ferry/error.h"
#include "ferry/fcrypto.h"
#include "ferry/have.h"
#include "ferry/mpk.h"
#include "ferry/store.h"
#include "ferry/util.h"

static const char have_type[] = "ferry-have";

enum { K_TYPE, K_FORMAT, K_CREATED, K_VERSIONS, K_CHUNKS, K__COUNT };
static const char *const have_keys[K__COUNT] = {"type", "format", "created", "versions", "chunks"};

enum { V_NAME, V_VERSION, V_HASH, V__COUNT };
static const char *const version_keys[V__COUNT] = {"name", "version", "hash"};

/* ---- writing ---- */

struct collect {
	struct have *h;
	size_t cap_versions, cap_chunks;
};

static int collect_version(void *arg, const char *name, uint64_t version, const uint8_t *bytes,
			   size_t len)
{
	struct collect *c = arg;
	struct have_version *v;

	if (c->h->nversions == c->cap_versions) {
		c->cap_versions = c->cap_versions ? 2 * c->cap_versions : 16;
		c->h->versions =
		    xreallocarray(c->h->versions, c->cap_versions, sizeof(*c->h->versions));
	}
	v = &c->h->versions[c->h->nversions++];
	memset(v, 0, sizeof(*v));
	/* Stored names were checked when their manifest was accepted. */
	snprintf(v->name, sizeof(v->name), "%s", name);
	v->version = version;
	fcrypto_id(v->hash, bytes, len);
	return 0;
}

static int collect_chunk(void *arg, const uint8_t id[32], const uint8_t *enc, size_t len)
{
	struct collect *c = arg;

	if (c->h->nchunks == c->cap_chunks) {
		c->cap_chunks = c->cap_chunks ? 2 * c->cap_chunks : 1024;
		c->h->chunks = xreallocarray(c->h->chunks, c->cap_chunks, 32);
	}
	memcpy(c->h->chunks[c->h->nchunks++], id, 32);
	return 0;
}

static void encode(const struct have *h, struct mpk_w *w)
{
	mpk_w_map(w, K__COUNT);
	mpk_w_cstr(w, have_keys[K_TYPE]);
	mpk_w_cstr(w, have_type);
	mpk_w_cstr(w, have_keys[K_FORMAT]);
	mpk_w_uint(w, HAVE_FORMAT);
	mpk_w_cstr(w, have_keys[K_CREATED]);
	mpk_w_int(w, h->created);
	mpk_w_cstr(w, have_keys[K_VERSIONS]);
	mpk_w_array(w, h->nversions);
	for (size_t i = 0; i < h->nversions; i++) {
		mpk_w_map(w, V__COUNT);
		mpk_w_cstr(w, version_keys[V_NAME]);
		mpk_w_cstr(w, h->versions[i].name);
		mpk_w_cstr(w, version_keys[V_VERSION]);
		mpk_w_uint(w, h->versions[i].version);
		mpk_w_cstr(w, version_keys[V_HASH]);
		mpk_w_bin(w, h->versions[i].hash, 32);
	}
	mpk_w_cstr(w, have_keys[K_CHUNKS]);
	mpk_w_bin(w, h->chunks, 32 * h->nchunks);
}

int have_write(struct store *st, int fd, size_t *nversions, size_t *nchunks)
{
	struct have h = {.created = (int64_t)time(NULL)};
	struct collect c = {.h = &h};
	struct store_rd *rd = NULL;
	struct mpk_w w;
	uint8_t *buf = NULL;
	size_t len;
	int rc;

	mpk_w_init(&w);
	/* One read transaction: the versions and the chunks are one snapshot. */
	if ((rc = store_rd_begin(st, &rd)) != 0)
		goto out;
	rc = store_manifest_foreach(rd, NULL, collect_version, &c);
	if (rc == 0)
		rc = store_chunk_foreach(rd, collect_chunk, &c);
	store_rd_end(rd);
	if (rc != 0)
		goto out;
	if (h.nversions > HAVE_VERSIONS_MAX) {
		rc = ferry_errf(FERRY_ETOOBIG,
				"the store holds %zu model versions; a have-file lists at most %u",
				h.nversions, HAVE_VERSIONS_MAX);
		goto out;
	}
	encode(&h, &w);
	if ((rc = mpk_w_take(&w, &buf, &len)) != 0)
		goto out;
	if (len > HAVE_FILE_MAX) {
		rc = ferry_errf(FERRY_ETOOBIG,
				"the have-file would be %zu bytes, over the %u bytes a node reads",
				len, HAVE_FILE_MAX);
		goto out;
	}
	if ((rc = write_full(fd, buf, len)) != 0) {
		rc = ferry_errf(rc, "writing the have-file: %s", ferry_strerror(rc));
		goto out;
	}
	if (fsync(fd) != 0 && errno != EINVAL) {
		rc = ferry_errno(errno, "writing the have-file");
		goto out;
	}
	if (nversions)
		*nversions = h.nversions;
	if (nchunks)
		*nchunks = h.nchunks;
out:
	mpk_w_free(&w);
	free(buf);
	free(h.versions);
	free(h.chunks);
	return rc;
}

/* ---- reading ---- */

/* Read fd to its end, refusing more than HAVE_FILE_MAX bytes without reading them all. */
static int slurp(int fd, uint8_t **out, size_t *len)
{
	size_t used = 0, cap = 64 * 1024;
	struct stat sb;
	uint8_t *buf;

	/* A regular file says its size: a huge (or sparse) one is refused unread. */
	if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size > (off_t)HAVE_FILE_MAX)
		return ferry_errf(FERRY_ETOOBIG,
				  "the have-file is %lld bytes; a have-file is at most %u bytes",
				  (long long)sb.st_size, HAVE_FILE_MAX);
	buf = xmalloc(cap);

	for (;;) {
		ssize_t n;

		if (used == cap) {
			if (cap > HAVE_FILE_MAX) {
				free(buf);
				return ferry_errf(FERRY_ETOOBIG,
						  "the have-file is over %u bytes; a have-file is "
						  "never that large",
						  HAVE_FILE_MAX);
			}
			cap = MIN(2 * cap, (size_t)HAVE_FILE_MAX + 1);
			buf = xrealloc(buf, cap);
		}
		n = read(fd, buf + used, cap - used);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int rc = ferry_errno(errno, "reading the have-file");

			free(buf);
			return rc;
		}
		if (n == 0)
			break;
		used += (size_t)n;
	}
	*out = buf;
	*len = used;
	return 0;
}

static int key_find(const char *k, size_t n, const char *const *keys, int nkeys)
{
	for (int i = 0; i < nkeys; i++)
		if (strlen(keys[i]) == n && memcmp(keys[i], k, n) == 0)
			return i;
	return -1;
}

static int wrap(const struct mpk_r *r, const char *where)
{
	int err = mpk_r_error(r);

	return ferry_errf(err, "have-file %s: %s", where, ferry_errmsg(err));
}

static int decode_version(struct mpk_r *r, struct have_version *v, size_t idx)
{
	unsigned seen = 0;
	uint32_t n;
	char where[48];

	snprintf(where, sizeof(where), "version %zu", idx);
	if (mpk_r_map(r, &n) != 0)
		return wrap(r, where);
	for (uint32_t i = 0; i < n; i++) {
		const char *k, *s;
		size_t kl, sl;
		int key;

		if (mpk_r_str(r, &k, &kl) != 0)
			return wrap(r, where);
		key = key_find(k, kl, version_keys, V__COUNT);
		if (key < 0) {
			mpk_r_skip(r);
			continue;
		}
		if (seen & (1u << key))
			return ferry_errf(FERRY_EFORMAT, "have-file %s: key '%s' appears twice",
					  where, version_keys[key]);
		seen |= 1u << key;
		switch (key) {
		case V_NAME:
			if (mpk_r_str(r, &s, &sl) != 0)
				break;
			if (sl >= sizeof(v->name) || memchr(s, '\0', sl) != NULL)
				return ferry_errf(FERRY_EFORMAT,
						  "have-file %s: the model name is not a name",
						  where);
			memcpy(v->name, s, sl);
			v->name[sl] = '\0';
			if (manifest_name_check(v->name) != 0)
				return ferry_errf(FERRY_EFORMAT, "have-file %s: %s", where,
						  ferry_errmsg(FERRY_EINVAL));
			break;
		case V_VERSION:
			mpk_r_uint(r, &v->version);
			break;
		case V_HASH:
			mpk_r_bin_fixed(r, v->hash, 32);
			break;
		}
		if (mpk_r_error(r) != 0)
			return wrap(r, where);
	}
	if (seen != (1u << V__COUNT) - 1)
		return ferry_errf(FERRY_EFORMAT, "have-file %s: a key is missing", where);
	return 0;
}

static int decode(const uint8_t *p, size_t len, struct have *h)
{
	struct mpk_r r, versions = {0};
	const uint8_t *ids = NULL;
	const char *k, *s;
	size_t kl, sl, idlen = 0;
	unsigned seen = 0;
	uint64_t format = 0;
	uint32_t n, nv;
	int rc;

	mpk_r_init(&r, p, len);
	if (mpk_r_map(&r, &n) != 0)
		return ferry_errf(FERRY_EFORMAT, "not a ferry have-file (it does not start with a "
						 "msgpack map)");
	for (uint32_t i = 0; i < n; i++) {
		int key;

		if (mpk_r_str(&r, &k, &kl) != 0)
			return wrap(&r, "top level");
		key = key_find(k, kl, have_keys, K__COUNT);
		if (key < 0) {
			/* Unknown keys are for newer writers: skipped. */
			if (mpk_r_skip(&r) != 0)
				return wrap(&r, "top level");
			continue;
		}
		if (seen & (1u << key))
			return ferry_errf(FERRY_EFORMAT, "have-file: key '%s' appears twice",
					  have_keys[key]);
		seen |= 1u << key;
		switch (key) {
		case K_TYPE:
			if (mpk_r_str(&r, &s, &sl) == 0 &&
			    (sl != strlen(have_type) || memcmp(s, have_type, sl) != 0))
				return ferry_errf(FERRY_EFORMAT,
						  "not a ferry have-file (its type is "
						  "not '%s')",
						  have_type);
			break;
		case K_FORMAT:
			mpk_r_uint(&r, &format);
			break;
		case K_CREATED:
			mpk_r_int(&r, &h->created);
			break;
		case K_VERSIONS:
			/* Decoded below, once the format is known. */
			versions = r;
			mpk_r_skip(&r);
			break;
		case K_CHUNKS:
			mpk_r_bin(&r, &ids, &idlen);
			break;
		}
		if (mpk_r_error(&r) != 0)
			return wrap(&r, have_keys[key]);
	}
	if (mpk_r_done(&r) != 0)
		return wrap(&r, "end");
	if (!(seen & (1u << K_TYPE)))
		return ferry_errf(FERRY_EFORMAT, "not a ferry have-file (it has no type)");
	if (!(seen & (1u << K_FORMAT)) || format != HAVE_FORMAT)
		return ferry_errf(FERRY_EVERSION,
				  "have-file format %llu: this ferry reads only format %u",
				  (unsigned long long)format, HAVE_FORMAT);
	if (seen != (1u << K__COUNT) - 1)
		return ferry_errf(FERRY_EFORMAT, "have-file: a key is missing");

	if (idlen % 32 != 0)
		return ferry_errf(
		    FERRY_EFORMAT,
		    "have-file chunks: %zu bytes is not a whole number of 32-byte ids", idlen);
	for (size_t i = 32; i < idlen; i += 32)
		if (memcmp(ids + i - 32, ids + i, 32) >= 0)
			return ferry_errf(FERRY_EFORMAT,
					  "have-file chunks: id %zu is not above the one before it "
					  "(ids must be sorted, with no duplicates)",
					  i / 32);
	h->nchunks = idlen / 32;
	h->chunks = xreallocarray(NULL, h->nchunks ? h->nchunks : 1, 32);
	memcpy(h->chunks, ids, idlen);

	/* mpk_r_array bounds nv by the bytes left; this bounds it by our limit too. */
	if (mpk_r_array(&versions, &nv) != 0)
		return wrap(&versions, "versions");
	if (nv > HAVE_VERSIONS_MAX)
		return ferry_errf(FERRY_EFORMAT, "have-file lists %u model versions, over %u", nv,
				  HAVE_VERSIONS_MAX);
	h->versions = xcalloc(nv ? nv : 1, sizeof(*h->versions));
	h->nversions = nv;
	for (uint32_t i = 0; i < nv; i++)
		if ((rc = decode_version(&versions, &h->versions[i], i)) != 0)
			return rc;
	return 0;
}

int have_read(int fd, struct have **out)
{
	struct have *h = xcalloc(1, sizeof(*h));
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc;

	*out = NULL;
	rc = slurp(fd, &buf, &len);
	if (rc == 0)
		rc = decode(buf, len, h);
	free(buf);
	if (rc != 0) {
		have_free(h);
		return rc;
	}
	*out = h;
	return 0;
}

bool have_has_chunk(const struct have *h, const uint8_t id[static 32])
{
	size_t lo = 0, hi = h->nchunks;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = memcmp(h->chunks[mid], id, 32);

		if (c == 0)
			return true;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

void have_free(struct have *h)
{
	if (h == NULL)
		return;
	free(h->versions);
	free(h->chunks);
	free(h);
}
