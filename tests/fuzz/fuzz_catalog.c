/*
 * Fuzz catalog_accept() on a fresh store for every input, against a model of
 * the trust and version rules of DESIGN.md ("Trust and versions").
 *
 * Input: u16 length and a manifest body, then records of three bytes:
 * flags, version, label. For each record the body is decoded, given that
 * version, that label (one character) and, with flag 2, a second model name,
 * encoded, signed by the trusted publisher and offered to catalog_accept()
 * with CATALOG_EXPLICIT if flag 1 is set. With flag 4 the body is signed as
 * it is instead (so bodies that do not decode reach the catalog too).
 *
 * The model: per name a high-water mark, per name and version the hash of
 * the manifest held. A manifest already held is KNOWN; one below the mark is
 * refused unless explicit; a second manifest of a version held wins only with
 * a lower hash; what is stored is OLDER below the mark, REPLACED at a held
 * version, NEWEST otherwise, and only the NEWEST raise the mark. After each
 * step the store must agree: the head's mark, and catalog_load() of what is
 * held. A manifest that does not open is refused with manifest_open()'s code.
 */
#include "config.h"

#include <ftw.h>
#include <unistd.h>

#include "ferry/catalog.h"
#include "ferry/error.h"
#include "ferry/fcrypto.h"
#include "ferry/manifest.h"
#include "ferry/store.h"
#include "ferry/util.h"
#include "fuzz.h"

#define HELD_MAX 64

struct held {
	char name[MANIFEST_NAME_MAX + 1];
	uint64_t version;
	uint8_t hash[32];
};

static char tmp[] = "/tmp/ferry-fuzz-catalog-XXXXXX";
static char *dir;
static struct trust trust;
static struct held held[HELD_MAX];
static size_t nheld;

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	return remove(path);
}

static void cleanup(void)
{
	nftw(tmp, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
	free(dir);
	free(trust.keys);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	if (fcrypto_init() != 0 || mkdtemp(tmp) == NULL)
		abort();
	dir = xasprintf("%s/state", tmp);
	trust.n = 1;
	trust.keys = xmalloc(sizeof(*trust.keys));
	memcpy(trust.keys[0], fuzz_publisher_sk + 32, 32);
	atexit(cleanup);
	return 0;
}

static struct held *find(const char *name, uint64_t version)
{
	for (size_t i = 0; i < nheld; i++)
		if (strcmp(held[i].name, name) == 0 && held[i].version == version)
			return &held[i];
	return NULL;
}

static uint64_t mark(const char *name)
{
	uint64_t hwm = 0;

	for (size_t i = 0; i < nheld; i++)
		if (strcmp(held[i].name, name) == 0)
			hwm = MAX(hwm, held[i].version);
	return hwm;
}

/* The signed form of body, or NULL if the publisher will not sign it. */
static uint8_t *seal(const uint8_t *body, size_t len, size_t *n)
{
	uint8_t sig[64], *out;

	if (manifest_sign(body, len, fuzz_publisher_sk, sig) != 0 ||
	    manifest_seal(body, len, sig, &out, n) != 0)
		return NULL;
	return out;
}

/* A variant of the manifest in body: another version, label and maybe name. */
static uint8_t *variant(const uint8_t *body, size_t len, uint8_t flags, uint8_t version,
			uint8_t label, size_t *n)
{
	struct manifest *m;
	uint8_t *out = NULL, *enc;
	char *name, lab[2] = {(char)label, '\0'};
	char *old_name, *old_label;
	size_t elen;

	if (manifest_decode_body(body, len, &m) != 0)
		return NULL;
	old_name = m->name;
	old_label = m->label;
	name = flags & 2 ? xasprintf("%.62sx", m->name) : xstrdup(m->name);
	m->name = name;
	m->label = lab;
	m->version = version;
	if (manifest_encode(m, &enc, &elen) == 0) {
		out = seal(enc, elen, n);
		free(enc);
	}
	m->name = old_name;
	m->label = old_label;
	free(name);
	manifest_free(m);
	return out;
}

/* Offer one signed manifest and check the outcome against the model. */
static void offer(struct store *st, const uint8_t *sm, size_t n, unsigned flags)
{
	struct manifest *m, *got = NULL;
	uint8_t hash[32];
	struct held *h;
	uint64_t hwm;
	int rc_open, rc, want;

	rc_open = manifest_open(sm, n, &trust, &m, hash);
	rc = catalog_accept(st, &trust, sm, n, flags, &got);
	if (rc_open != 0) {
		FUZZ_CHECK(rc == rc_open && got == NULL);
		return;
	}
	h = find(m->name, m->version);
	hwm = mark(m->name);
	if (h != NULL && memcmp(h->hash, hash, 32) == 0)
		want = CATALOG_KNOWN;
	else if (m->version < hwm && !(flags & CATALOG_EXPLICIT))
		want = FERRY_EOLDVERSION;
	else if (h != NULL && memcmp(hash, h->hash, 32) > 0)
		want = FERRY_EOLDVERSION;
	else if (m->version < hwm)
		want = CATALOG_OLDER;
	else if (h != NULL)
		want = CATALOG_REPLACED;
	else
		want = CATALOG_NEWEST;
	FUZZ_CHECK(rc == want);
	FUZZ_CHECK((rc > 0) == (got != NULL));
	if (rc > 0 && rc != CATALOG_KNOWN) {
		if (h == NULL) {
			FUZZ_CHECK(nheld < HELD_MAX);
			h = &held[nheld++];
			snprintf(h->name, sizeof(h->name), "%s", m->name);
			h->version = m->version;
		}
		memcpy(h->hash, hash, 32);
	}
	manifest_free(got);
	manifest_free(m);
}

/* The store holds what the model holds. */
static void check_store(struct store *st)
{
	for (size_t i = 0; i < nheld; i++) {
		struct store_rd *rd;
		struct store_head head;
		struct manifest *m;

		FUZZ_CHECK(store_rd_begin(st, &rd) == 0);
		FUZZ_CHECK(store_head_get(rd, held[i].name, &head) == 0);
		FUZZ_CHECK(head.hwm == mark(held[i].name));
		store_rd_end(rd);
		FUZZ_CHECK(catalog_load(st, &trust, held[i].name, held[i].version, &m) == 0);
		FUZZ_CHECK(strcmp(m->name, held[i].name) == 0 && m->version == held[i].version);
		manifest_free(m);
		FUZZ_CHECK(catalog_load(st, &trust, held[i].name, 0, &m) == 0);
		FUZZ_CHECK(m->version == mark(held[i].name));
		manifest_free(m);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = {data, size};
	size_t len, steps = 0;
	const uint8_t *body = fuzz_bytes(&in, fuzz_u16(&in), &len);
	struct store *st;

	nheld = 0;
	nftw(dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
	FUZZ_CHECK(store_open(dir, STORE_CREATE, &st) == 0);
	while (in.n >= 3 && steps++ < HELD_MAX) {
		uint8_t flags = fuzz_u8(&in), version = fuzz_u8(&in), label = fuzz_u8(&in);
		uint8_t *sm;
		size_t n;

		sm =
		    flags & 4 ? seal(body, len, &n) : variant(body, len, flags, version, label, &n);
		if (sm == NULL)
			continue;
		offer(st, sm, n, flags & 1 ? CATALOG_EXPLICIT : 0);
		free(sm);
	}
	check_store(st);
	store_close(st);
	return 0;
}
