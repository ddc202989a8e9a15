/*
 * store_check: open a ferry store read-only and verify every stored chunk
 * and index piece against its id (decode, then BLAKE2b-256 of the raw
 * bytes), and every stored manifest's envelope and body. For the crash-loop
 * and full-disk scenarios: a store that survived kill -9 or ENOSPC must
 * hold nothing that does not match its key.
 *
 *   store_check STATE_DIR
 *
 * Prints one line per bad entry and a summary line "chunks N bytes B
 * manifests M bad K"; exit status 0 if K is 0, 1 if not, 2 if the store
 * cannot be opened.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/chunker.h"
#include "ferry/codec.h"
#include "ferry/error.h"
#include "ferry/fcrypto.h"
#include "ferry/manifest.h"
#include "ferry/store.h"
#include "ferry/util.h"

struct check {
	struct codec_ctx *cc;
	uint8_t *raw;
	uint64_t chunks, bytes, manifests, bad;
};

static int check_chunk(void *arg, const uint8_t id[32], const uint8_t *enc, size_t len)
{
	struct check *k = arg;
	uint8_t got[FERRY_ID_LEN];
	char hex[2 * FERRY_ID_LEN + 1];
	size_t rawlen;
	int rc;

	k->chunks++;
	k->bytes += len;
	rc = codec_decode(k->cc, enc, len, k->raw, CHUNK_MAX_SIZE, &rawlen);
	if (rc != 0) {
		k->bad++;
		printf("bad chunk %s: does not decode: %s\n", hex_encode(hex, id, FERRY_ID_LEN),
		       ferry_errmsg(rc));
		return 0;
	}
	fcrypto_id(got, k->raw, rawlen);
	if (memcmp(got, id, FERRY_ID_LEN) != 0) {
		k->bad++;
		printf("bad chunk %s: its %zu raw bytes hash to another id\n",
		       hex_encode(hex, id, FERRY_ID_LEN), rawlen);
	}
	return 0;
}

static int check_manifest(void *arg, const char *name, uint64_t version, const uint8_t *bytes,
			  size_t len)
{
	struct check *k = arg;
	const uint8_t *body;
	size_t blen;
	uint8_t sig[FERRY_SIG_LEN];
	struct manifest *m = NULL;
	int rc;

	k->manifests++;
	if ((rc = manifest_envelope(bytes, len, &body, &blen, sig)) != 0 ||
	    (rc = manifest_decode_body(body, blen, &m)) != 0) {
		k->bad++;
		printf("bad manifest %s@%" PRIu64 ": %s\n", name, version, ferry_errmsg(rc));
	} else if (strcmp(m->name, name) != 0 || m->version != version) {
		k->bad++;
		printf("bad manifest %s@%" PRIu64 ": its body says %s@%" PRIu64 "\n", name, version,
		       m->name, m->version);
	}
	manifest_free(m);
	return 0;
}

int main(int argc, char **argv)
{
	struct check k = {0};
	struct store *st = NULL;
	struct store_rd *rd = NULL;
	int rc;

	if (argc != 2) {
		fputs("usage: store_check STATE_DIR\n", stderr);
		return 2;
	}
	if ((rc = fcrypto_init()) != 0 || (rc = store_open(argv[1], 0, &st)) != 0 ||
	    (rc = store_rd_begin(st, &rd)) != 0) {
		fprintf(stderr, "store_check: %s\n", ferry_errmsg(rc));
		store_close(st);
		return 2;
	}
	k.cc = codec_ctx_new();
	k.raw = xmalloc(CHUNK_MAX_SIZE);
	if ((rc = store_chunk_foreach(rd, check_chunk, &k)) == 0)
		rc = store_manifest_foreach(rd, NULL, check_manifest, &k);
	store_rd_end(rd);
	store_close(st);
	free(k.raw);
	codec_ctx_free(k.cc);
	if (rc != 0) {
		fprintf(stderr, "store_check: %s\n", ferry_errmsg(rc));
		return 2;
	}
	printf("chunks %" PRIu64 " bytes %" PRIu64 " manifests %" PRIu64 " bad %" PRIu64 "\n",
	       k.chunks, k.bytes, k.manifests, k.bad);
	return k.bad == 0 ? 0 : 1;
}
