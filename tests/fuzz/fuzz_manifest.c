/*
 * Fuzz the manifest decoders. The first input byte picks a mode:
 *   0  manifest_decode_body() on the rest;
 *   1  manifest_envelope() and manifest_open() on the rest, as a signed
 *      manifest from a peer or a bundle, trusting the fixed publisher;
 *   2  the rest as a body that the fixed publisher signs and seals, then
 *      manifest_open(): it reaches every check behind the signature.
 * Whatever decodes must hold only what the checks allow (names, labels and
 * paths checked again here by code of our own, no path twice nor a path
 * inside another file's path), must encode again, and the encoding must
 * decode to the same manifest and encode to the same bytes. A manifest that
 * opens must be the one its body decodes to, with the hash of its signed
 * bytes; with its publisher not trusted it must not open.
 */
#include "config.h"

#include "ferry/error.h"
#include "ferry/fcrypto.h"
#include "ferry/manifest.h"
#include "ferry/util.h"
#include "fuzz.h"

static struct trust trusted, other;
static uint8_t other_key[1][32];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	if (fcrypto_init() != 0)
		abort();
	trusted.n = 1;
	trusted.keys = xmalloc(sizeof(*trusted.keys));
	memcpy(trusted.keys[0], fuzz_publisher_sk + 32, 32);
	fuzz_fill(other_key[0], 32, 77);
	other.n = 1;
	other.keys = other_key;
	return 0;
}

/* No path twice, and no path that is a directory of another. */
static bool paths_distinct(const struct manifest *m)
{
	for (uint32_t i = 0; i < m->nfiles; i++) {
		for (uint32_t j = 0; j < m->nfiles; j++) {
			const char *a = m->files[i].path, *b = m->files[j].path;
			size_t la = strlen(a);

			if (i != j && strncmp(a, b, la) == 0 && (b[la] == '\0' || b[la] == '/'))
				return false;
		}
	}
	return true;
}

static void check_content(const struct manifest *m)
{
	FUZZ_CHECK(m->format == MANIFEST_FORMAT);
	FUZZ_CHECK(fuzz_name_ok(m->name) && manifest_name_check(m->name) == 0);
	FUZZ_CHECK(m->version >= 1);
	FUZZ_CHECK(strlen(m->label) <= MANIFEST_LABEL_MAX &&
		   fuzz_text_ok(m->label, strlen(m->label)));
	FUZZ_CHECK(m->nfiles <= MANIFEST_FILES_MAX);
	for (uint32_t i = 0; i < m->nfiles; i++) {
		const struct manifest_file *f = &m->files[i];

		FUZZ_CHECK(fuzz_path_ok(f->path) && manifest_path_check(f->path) == 0);
		FUZZ_CHECK((f->mode & ~0777u) == 0);
		FUZZ_CHECK((f->size == 0) == (f->npieces == 0));
	}
	FUZZ_CHECK(paths_distinct(m));
}

static bool manifests_equal(const struct manifest *a, const struct manifest *b)
{
	if (a->format != b->format || strcmp(a->name, b->name) != 0 || a->version != b->version ||
	    strcmp(a->label, b->label) != 0 || a->created != b->created ||
	    memcmp(a->publisher, b->publisher, 32) != 0 || a->nfiles != b->nfiles)
		return false;
	for (uint32_t i = 0; i < a->nfiles; i++) {
		const struct manifest_file *x = &a->files[i], *y = &b->files[i];

		if (strcmp(x->path, y->path) != 0 || x->size != y->size || x->mode != y->mode ||
		    memcmp(x->sha256, y->sha256, 32) != 0 || x->npieces != y->npieces ||
		    (x->npieces > 0 && memcmp(x->pieces, y->pieces, 32 * (size_t)x->npieces) != 0))
			return false;
	}
	return true;
}

/* A decoded manifest encodes; the encoding decodes to it and encodes to the same bytes. */
static void check_decoded(const struct manifest *m)
{
	struct manifest *again;
	uint8_t *body, *body2;
	size_t len, len2;

	check_content(m);
	FUZZ_CHECK(manifest_encode(m, &body, &len) == 0);
	FUZZ_CHECK(manifest_decode_body(body, len, &again) == 0);
	FUZZ_CHECK(manifests_equal(m, again));
	FUZZ_CHECK(manifest_encode(again, &body2, &len2) == 0);
	FUZZ_CHECK(len == len2 && memcmp(body, body2, len) == 0);
	manifest_free(again);
	free(body);
	free(body2);
}

static void decode_body(const uint8_t *p, size_t n)
{
	struct manifest *m;

	if (manifest_decode_body(p, n, &m) == 0) {
		check_decoded(m);
		manifest_free(m);
	} else {
		FUZZ_CHECK(m == NULL);
	}
}

/* Open signed bytes as a peer's manifest would be opened. */
static void open_signed(const uint8_t *p, size_t n)
{
	struct manifest *m, *plain = NULL;
	const uint8_t *body;
	uint8_t sig[64], hash[32], id[32];
	size_t blen;
	int rc;

	if (manifest_envelope(p, n, &body, &blen, sig) != 0) {
		FUZZ_CHECK(manifest_open(p, n, &trusted, &m, hash) != 0 && m == NULL);
		return;
	}
	FUZZ_CHECK(body > p && body + blen <= p + n);
	rc = manifest_open(p, n, &trusted, &m, hash);
	if (rc != 0) {
		FUZZ_CHECK(m == NULL);
		return;
	}
	check_decoded(m);
	fcrypto_id(id, p, n);
	FUZZ_CHECK(memcmp(hash, id, 32) == 0);
	FUZZ_CHECK(manifest_decode_body(body, blen, &plain) == 0 && manifests_equal(m, plain));
	manifest_free(plain);
	manifest_free(m);
	/* The same bytes under another trust list, or none, do not open. */
	FUZZ_CHECK(manifest_open(p, n, &other, &m, NULL) == FERRY_EUNTRUSTED && m == NULL);
	FUZZ_CHECK(manifest_open(p, n, NULL, &m, NULL) == FERRY_EUNTRUSTED && m == NULL);
}

static void sign_and_open(const uint8_t *body, size_t len)
{
	struct manifest *m, *plain;
	uint8_t sig[64], *signed_bytes;
	size_t n;
	int rc_body, rc;

	if (manifest_sign(body, len, fuzz_publisher_sk, sig) != 0)
		return;
	if (manifest_seal(body, len, sig, &signed_bytes, &n) != 0)
		return;
	rc_body = manifest_decode_body(body, len, &plain);
	rc = manifest_open(signed_bytes, n, &trusted, &m, NULL);
	/* A good signature by a trusted key leaves exactly the body's own verdict. */
	FUZZ_CHECK(rc == rc_body);
	if (rc == 0) {
		FUZZ_CHECK(manifests_equal(m, plain));
		manifest_free(m);
		manifest_free(plain);
	}
	open_signed(signed_bytes, n);
	free(signed_bytes);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = {data, size};

	switch (fuzz_u8(&in) % 3) {
	case 0:
		decode_body(in.p, in.n);
		break;
	case 1:
		open_signed(in.p, in.n);
		break;
	default:
		sign_and_open(in.p, in.n);
		break;
	}
	return 0;
}
