/*
 * The catalog: trust and version rules over the store; see
 * include/ferry/catalog.h and DESIGN.md "Trust and versions".
 *
 * Decisions read the head and the stored manifest of a name, then write in
 * one batch. catalog_lock makes that read-decide-write step atomic against
 * other accepts in this process (only one process writes a store), and keeps
 * accepts out while catalog_gc marks what the stored manifests reference.
 */
#include "config.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/catalog.h"
#include "ferry/codec.h"
#include "ferry/error.h"
#include "ferry/fcrypto.h"
#include "ferry/idset.h"
#include "ferry/index.h"
#include "ferry/log.h"
#include "ferry/manifest.h"
#include "ferry/store.h"
#include "ferry/util.h"

/* Deletions per gc write transaction: small commits, readers never wait long. */
#define GC_BATCH 4096

static pthread_mutex_t catalog_lock = PTHREAD_MUTEX_INITIALIZER;

/* ---- reading stored manifests and index pieces ---- */

int catalog_piece_refs(struct store_rd *rd, const uint8_t id[static 32], struct chunk_ref **refs,
		       size_t *nrefs)
{
	const uint8_t *enc;
	size_t len, raw_len;
	char hex[65];
	int rc, tag;

	if ((rc = store_chunk_get(rd, id, &enc, &len)) != 0)
		return rc;
	rc = codec_peek(enc, len, &tag, &raw_len);
	if (rc == 0 && (tag != CODEC_RAW || raw_len != len - CODEC_HDR_LEN))
		return ferry_errf(FERRY_EFORMAT, "index piece %s is stored as %s, not raw",
				  hex_encode(hex, id, 32), codec_name(tag));
	if (rc == 0)
		rc = index_decode(enc + CODEC_HDR_LEN, raw_len, refs, nrefs);
	if (rc)
		return ferry_errf(rc, "index piece %s: %s", hex_encode(hex, id, 32),
				  ferry_errmsg(rc));
	return 0;
}

/* ---- accepting ---- */

int catalog_accept(struct store *st, const struct trust *t, const uint8_t *signed_bytes, size_t n,
		   unsigned flags, struct manifest **out)
{
	struct manifest *m = NULL;
	struct store_rd *rd = NULL;
	struct store_wr *wr = NULL;
	struct store_head head;
	uint8_t hash[32], old_hash[32];
	const uint8_t *old;
	size_t oldlen;
	bool have_old = false;
	char a[ID_SHORT_LEN], b[ID_SHORT_LEN];
	int rc, outcome = 0;

	if (out)
		*out = NULL;
	/* manifest_open refuses version 0, which means "none" in a head. */
	if ((rc = manifest_open(signed_bytes, n, t, &m, hash)) != 0)
		return rc;

	pthread_mutex_lock(&catalog_lock);
	if ((rc = store_rd_begin(st, &rd)) != 0)
		goto out;
	if ((rc = store_head_get(rd, m->name, &head)) != 0)
		goto out;
	rc = store_manifest_get(rd, m->name, m->version, &old, &oldlen);
	if (rc == 0) {
		if (oldlen == n && memcmp(old, signed_bytes, n) == 0) {
			outcome = CATALOG_KNOWN;
			goto out;
		}
		have_old = true;
		fcrypto_id(old_hash, old, oldlen);
	} else if (rc != FERRY_ENOENT) {
		goto out;
	}
	store_rd_end(rd);
	rd = NULL;

	if (m->version < head.hwm && !(flags & CATALOG_EXPLICIT)) {
		rc = ferry_errf(FERRY_EOLDVERSION,
				"model '%s' version %" PRIu64 " is older than version %" PRIu64
				" already accepted",
				m->name, m->version, head.hwm);
		goto out;
	}
	/* Two manifests of one version: every node keeps the lower hash. */
	if (have_old && memcmp(hash, old_hash, sizeof(hash)) > 0) {
		rc = ferry_errf(FERRY_EOLDVERSION,
				"model '%s' version %" PRIu64
				": another manifest of this version is already accepted and wins "
				"(hash %s… is lower than %s…)",
				m->name, m->version, id_short(a, old_hash), id_short(b, hash));
		goto out;
	}
	if (m->version < head.hwm)
		outcome = CATALOG_OLDER;
	else if (have_old)
		outcome = CATALOG_REPLACED;
	else
		outcome = CATALOG_NEWEST;

	if ((rc = store_wr_begin(st, &wr)) != 0)
		goto out;
	rc = store_wr_manifest_put(wr, m->name, m->version, signed_bytes, n);
	if (rc == 0 && m->version > head.hwm) {
		head.hwm = m->version;
		rc = store_wr_head_put(wr, m->name, &head);
	}
	if (rc) {
		store_wr_abort(wr);
		goto out;
	}
	if ((rc = store_wr_commit(wr)) != 0)
		goto out;
	log_debug(LOG_STORE, "model %s version %" PRIu64 " accepted (%d)", m->name, m->version,
		  outcome);
out:
	store_rd_end(rd);
	pthread_mutex_unlock(&catalog_lock);
	if (rc) {
		manifest_free(m);
		return rc;
	}
	if (out)
		*out = m;
	else
		manifest_free(m);
	return outcome;
}

/* ---- loading ---- */

static int newest_version(void *arg, const char *name, uint64_t version, const uint8_t *bytes,
			  size_t len)
{
	*(uint64_t *)arg = version;
	return 0;
}

int catalog_load(struct store *st, const struct trust *t, const char *name, uint64_t version,
		 struct manifest **out)
{
	struct store_rd *rd;
	const uint8_t *bytes;
	size_t len;
	int rc;

	*out = NULL;
	if ((rc = manifest_name_check(name)) != 0)
		return rc;
	if ((rc = store_rd_begin(st, &rd)) != 0)
		return rc;
	if (version == 0) {
		rc = store_manifest_foreach(rd, name, newest_version, &version);
		if (rc == 0 && version == 0)
			rc = ferry_errf(FERRY_ENOENT, "no model '%s'", name);
		if (rc)
			goto out;
	}
	rc = store_manifest_get(rd, name, version, &bytes, &len);
	if (rc == FERRY_ENOENT)
		rc = ferry_errf(FERRY_ENOENT, "model '%s' has no version %" PRIu64, name, version);
	if (rc == 0)
		rc = manifest_open(bytes, len, t, out, NULL);
out:
	store_rd_end(rd);
	return rc;
}

int catalog_parse_ref(const char *ref, char *name, size_t cap, uint64_t *version)
{
	const char *at = strchr(ref, '@');
	size_t n = at ? (size_t)(at - ref) : strlen(ref);
	uint64_t v = 0;

	*version = 0;
	if (n == 0 || n >= cap)
		return ferry_errf(FERRY_EINVAL,
				  "'%s' is not a model reference (NAME or NAME@VERSION)", ref);
	if (at) {
		const char *p = at + 1;

		if (*p == '\0')
			return ferry_errf(FERRY_EINVAL, "'%s': no version after '@'", ref);
		for (; *p; p++) {
			if (*p < '0' || *p > '9')
				return ferry_errf(FERRY_EINVAL,
						  "'%s': version '%s' is not a number", ref,
						  at + 1);
			if (v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
				return ferry_errf(FERRY_EINVAL, "'%s': version is too large", ref);
			v = v * 10 + (uint64_t)(*p - '0');
		}
		if (v == 0)
			return ferry_errf(FERRY_EINVAL, "'%s': versions start at 1", ref);
	}
	memcpy(name, ref, n);
	name[n] = '\0';
	if (manifest_name_check(name) != 0) {
		int rc = ferry_errf(FERRY_EINVAL, "'%s': '%s' is not a model name", ref, name);

		name[0] = '\0';
		return rc;
	}
	*version = v;
	return 0;
}

/* ---- presence ---- */

/*
 * Chunks are counted once each however often they occur, so need_bytes is
 * what a fetch must still store. Index pieces are not counted in the totals
 * (they are small); a missing one makes the index incomplete and leaves its
 * file out of the totals.
 */
int catalog_presence(struct store_rd *rd, const struct manifest *m, struct catalog_presence *out)
{
	struct idset *seen = idset_new(0);
	int rc = 0;

	memset(out, 0, sizeof(*out));
	out->index_complete = true;
	for (uint32_t f = 0; f < m->nfiles; f++) {
		const struct manifest_file *file = &m->files[f];
		struct catalog_presence part = {0};
		bool known = true;

		for (uint32_t p = 0; p < file->npieces && known; p++) {
			struct chunk_ref *refs = NULL;
			size_t nrefs = 0;

			rc = catalog_piece_refs(rd, file->pieces[p], &refs, &nrefs);
			if (rc == FERRY_ENOENT) {
				known = false;
				rc = 0;
				break;
			}
			if (rc)
				goto out;
			for (size_t i = 0; i < nrefs; i++) {
				if (!idset_add(seen, refs[i].id, 0))
					continue;
				part.need_chunks++;
				part.need_bytes += refs[i].enc_len;
				if (store_chunk_has(rd, refs[i].id)) {
					part.have_chunks++;
					part.have_bytes += refs[i].enc_len;
				}
			}
			free(refs);
		}
		if (!known) {
			out->index_complete = false;
			continue;
		}
		out->need_chunks += part.need_chunks;
		out->need_bytes += part.need_bytes;
		out->have_chunks += part.have_chunks;
		out->have_bytes += part.have_bytes;
	}
out:
	idset_free(seen);
	return rc;
}

/* ---- garbage collection ---- */

struct gc_mark {
	struct store_rd *rd;
	struct idset *live;
};

/* Mark a stored manifest's index pieces and every chunk they list. */
static int gc_mark_manifest(void *arg, const char *name, uint64_t version, const uint8_t *bytes,
			    size_t len)
{
	struct gc_mark *g = arg;
	struct manifest *m = NULL;
	const uint8_t *body = NULL;
	uint8_t sig[64];
	size_t blen = 0;
	int rc;

	/* gc has no trust list: it keeps what every stored manifest references. */
	rc = manifest_envelope(bytes, len, &body, &blen, sig);
	if (rc == 0)
		rc = manifest_decode_body(body, blen, &m);
	if (rc)
		return ferry_errf(rc, "model '%s' version %" PRIu64 ": %s", name, version,
				  ferry_errmsg(rc));
	for (uint32_t f = 0; f < m->nfiles && rc == 0; f++) {
		for (uint32_t p = 0; p < m->files[f].npieces && rc == 0; p++) {
			struct chunk_ref *refs = NULL;
			size_t nrefs = 0;

			idset_add(g->live, m->files[f].pieces[p], 0);
			rc = catalog_piece_refs(g->rd, m->files[f].pieces[p], &refs, &nrefs);
			/* Without the piece its chunks are unknown; nothing to mark. */
			if (rc == FERRY_ENOENT) {
				rc = 0;
				continue;
			}
			for (size_t i = 0; i < nrefs; i++)
				idset_add(g->live, refs[i].id, 0);
			free(refs);
		}
	}
	manifest_free(m);
	return rc;
}

struct gc_sweep {
	const struct idset *live;
	uint8_t (*dead)[32];
	size_t *sizes;
	size_t ndead, cap;
};

static int gc_collect(void *arg, const uint8_t id[32], const uint8_t *enc, size_t len)
{
	struct gc_sweep *s = arg;

	if (idset_has(s->live, id))
		return 0;
	if (s->ndead == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 256;
		s->dead = xreallocarray(s->dead, s->cap, 32);
		s->sizes = xreallocarray(s->sizes, s->cap, sizeof(*s->sizes));
	}
	memcpy(s->dead[s->ndead], id, 32);
	s->sizes[s->ndead++] = len;
	return 0;
}

int catalog_gc(struct store *st, uint64_t *freed_chunks, uint64_t *freed_bytes)
{
	struct idset *live = idset_new(0);
	struct gc_sweep sweep = {0};
	struct store_rd *rd = NULL;
	struct store_wr *wr = NULL;
	struct gc_mark mark;
	int rc;

	*freed_chunks = 0;
	*freed_bytes = 0;
	sweep.live = live;
	/* No manifest may arrive between marking and sweeping. */
	pthread_mutex_lock(&catalog_lock);
	if ((rc = store_rd_begin(st, &rd)) != 0)
		goto out;
	mark = (struct gc_mark){rd, live};
	/* Any manifest that cannot be read stops gc before it deletes anything. */
	if ((rc = store_manifest_foreach(rd, NULL, gc_mark_manifest, &mark)) != 0)
		goto out;
	if ((rc = store_chunk_foreach(rd, gc_collect, &sweep)) != 0)
		goto out;
	store_rd_end(rd);
	rd = NULL;

	for (size_t i = 0; i < sweep.ndead; i += GC_BATCH) {
		size_t end = MIN(sweep.ndead, i + GC_BATCH);

		if ((rc = store_wr_begin(st, &wr)) != 0)
			goto out;
		for (size_t j = i; j < end; j++)
			store_wr_chunk_del(wr, sweep.dead[j]);
		if ((rc = store_wr_commit(wr)) != 0)
			goto out;
		for (size_t j = i; j < end; j++)
			*freed_bytes += sweep.sizes[j];
		*freed_chunks = end;
	}
	if (sweep.ndead > 0) {
		char buf[32];

		log_info(LOG_STORE, "gc freed %zu chunks, %s", sweep.ndead,
			 fmt_bytes(buf, sizeof(buf), *freed_bytes));
	}
out:
	store_rd_end(rd);
	pthread_mutex_unlock(&catalog_lock);
	free(sweep.dead);
	free(sweep.sizes);
	idset_free(live);
	return rc;
}
