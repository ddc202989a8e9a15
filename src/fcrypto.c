/*
 * The crypto module: libsodium and OpenSSL's libcrypto are included here and
 * nowhere else (session.c aside); see include/ferry/fcrypto.h. Key file
 * formats are in docs/formats.md ("Key files").
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <sodium.h>

#include "ferry/error.h"
#include "ferry/fcrypto.h"
#include "ferry/util.h"

/* A key file is a few short lines; anything bigger is not one. */
#define KEY_FILE_CAP 4096
/* Size of the base64 of a secret key, with its NUL. */
#define SK_B64_LEN sodium_base64_ENCODED_LEN(FERRY_SK_LEN, sodium_base64_VARIANT_ORIGINAL)

int fcrypto_init(void)
{
	if (sodium_init() < 0)
		return ferry_errf(FERRY_EIO, "libsodium failed to initialise");
	return 0;
}

void fcrypto_id(uint8_t out[static FERRY_ID_LEN], const void *in, size_t n)
{
	crypto_generichash(out, FERRY_ID_LEN, in, n, NULL, 0);
}

/*
 * SHA-256 goes through OpenSSL because its SHA-NI code is about six times
 * libsodium's here. The EVP calls fail only on misuse or allocation failure,
 * so a failure is fatal rather than an error for every caller to handle.
 */
struct fcrypto_sha256 {
	EVP_MD_CTX *ctx;
};

static void sha256_start(struct fcrypto_sha256 *s)
{
	if (EVP_DigestInit_ex(s->ctx, EVP_sha256(), NULL) != 1)
		fatal("SHA-256: OpenSSL EVP_DigestInit_ex failed");
}

struct fcrypto_sha256 *fcrypto_sha256_new(void)
{
	struct fcrypto_sha256 *s = xmalloc(sizeof(*s));

	s->ctx = EVP_MD_CTX_new();
	if (s->ctx == NULL)
		fatal("SHA-256: out of memory");
	sha256_start(s);
	return s;
}

void fcrypto_sha256_update(struct fcrypto_sha256 *s, const void *p, size_t n)
{
	if (EVP_DigestUpdate(s->ctx, p, n) != 1)
		fatal("SHA-256: OpenSSL EVP_DigestUpdate failed");
}

void fcrypto_sha256_final(struct fcrypto_sha256 *s, uint8_t out[static FERRY_SHA256_LEN])
{
	unsigned int len = 0;

	if (EVP_DigestFinal_ex(s->ctx, out, &len) != 1 || len != FERRY_SHA256_LEN)
		fatal("SHA-256: OpenSSL EVP_DigestFinal_ex failed");
}

void fcrypto_sha256_reset(struct fcrypto_sha256 *s)
{
	sha256_start(s);
}

void fcrypto_sha256_free(struct fcrypto_sha256 *s)
{
	if (s == NULL)
		return;
	EVP_MD_CTX_free(s->ctx);
	free(s);
}

void fcrypto_sign_keypair(uint8_t pk[static FERRY_PK_LEN], uint8_t sk[static FERRY_SK_LEN])
{
	crypto_sign_keypair(pk, sk);
}

void fcrypto_sign(uint8_t sig[static FERRY_SIG_LEN], const void *msg, size_t n,
		  const uint8_t sk[static FERRY_SK_LEN])
{
	crypto_sign_detached(sig, NULL, msg, n, sk);
}

int fcrypto_verify(const uint8_t sig[static FERRY_SIG_LEN], const void *msg, size_t n,
		   const uint8_t pk[static FERRY_PK_LEN])
{
	if (crypto_sign_verify_detached(sig, msg, n, pk) != 0)
		return ferry_errf(FERRY_EBADSIG, "Ed25519 signature does not verify");
	return 0;
}

void fcrypto_sk_to_pk(uint8_t pk[static FERRY_PK_LEN], const uint8_t sk[static FERRY_SK_LEN])
{
	crypto_sign_ed25519_sk_to_pk(pk, sk);
}

void fcrypto_random(void *p, size_t n)
{
	randombytes_buf(p, n);
}

uint32_t fcrypto_random_uniform(uint32_t upper)
{
	return randombytes_uniform(upper);
}

void fcrypto_wipe(void *p, size_t n)
{
	sodium_memzero(p, n);
}

bool fcrypto_equal(const void *a, const void *b, size_t n)
{
	return sodium_memcmp(a, b, n) == 0;
}

char *fcrypto_b64_encode(char *out, const uint8_t *in, size_t n)
{
	return sodium_bin2base64(out, sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL),
				 in, n, sodium_base64_VARIANT_ORIGINAL);
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int fcrypto_b64_decode(uint8_t *out, size_t n, const char *in)
{
	size_t len, got = 0;
	const char *end = NULL;
	int rc;

	while (is_blank(*in))
		in++;
	len = strlen(in);
	while (len > 0 && is_blank(in[len - 1]))
		len--;
	/*
	 * Only the base64 alphabet: libsodium 1.0.18 decodes some bytes >= 0x80
	 * as if they were base64 digits (found by fuzz_text), which would give
	 * one key several accepted spellings.
	 */
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '+' || c == '/' || c == '=')) {
			sodium_memzero(out, n);
			return ferry_errf(FERRY_EFORMAT, "not base64 of %zu bytes", n);
		}
	}
	/*
	 * libsodium stops at the first character that is not base64 and says
	 * where; anything left over, or a length other than n, is not ours.
	 * Its decoder also rejects missing padding and non-zero spare bits, so
	 * each value has exactly one accepted encoding.
	 */
	rc = sodium_base642bin(out, n, in, len, NULL, &got, &end, sodium_base64_VARIANT_ORIGINAL);
	if (rc != 0 || got != n || end != in + len) {
		sodium_memzero(out, n);
		return ferry_errf(FERRY_EFORMAT, "not base64 of %zu bytes", n);
	}
	return 0;
}

/* Key files. */

/* The kinds of key file, so that one given in place of the other is named. */
struct key_kind {
	const char *magic; /* first line without " v1" */
	const char *what;
	size_t lines; /* lines with content, the magic line included */
};

static const struct key_kind publisher_kind = {"ferry-publisher-key", "a publisher key file", 3};
static const struct key_kind netkey_kind = {"ferry-network-key", "a network key file", 2};
static const struct key_kind *const key_kinds[] = {&publisher_kind, &netkey_kind};

/*
 * Write text to path as a new file of mode 0600: a temporary file beside it,
 * fsync, then a rename that fails if path exists (RENAME_NOREPLACE, or
 * link(2) where the file system lacks it), and an fsync of the directory.
 * So a crash leaves either no key file or a whole one, and an existing key
 * is never replaced, even by a concurrent writer.
 */
static int key_file_write(const char *path, const char *text, size_t len)
{
	char *tmp = xasprintf("%s.tmp-XXXXXX", path), *dir = xstrdup(path), *slash;
	bool created = false;
	int fd, dfd, rc = 0;

	if (access(path, F_OK) == 0) {
		rc = ferry_errf(FERRY_EEXIST,
				"%s: already exists (a key file is never overwritten)", path);
		goto out;
	}
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		rc = ferry_errno(errno, "%s: cannot create a temporary file beside it", path);
		goto out;
	}
	created = true;
	if (fchmod(fd, 0600) < 0)
		rc = ferry_errno(errno, "%s: chmod 0600", tmp);
	else if ((rc = write_full(fd, text, len)) < 0)
		rc = ferry_errno(-rc, "%s: write", tmp);
	else if (fsync(fd) < 0)
		rc = ferry_errno(errno, "%s: fsync", tmp);
	if (close(fd) < 0 && rc == 0)
		rc = ferry_errno(errno, "%s: close", tmp);
	if (rc < 0)
		goto out;

	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) < 0) {
		if (errno == EINVAL || errno == ENOSYS || errno == ENOTSUP) {
			if (link(tmp, path) < 0)
				rc = -errno;
		} else {
			rc = -errno;
		}
		if (rc == FERRY_EEXIST) {
			rc = ferry_errf(FERRY_EEXIST,
					"%s: already exists (a key file is never overwritten)",
					path);
			goto out;
		}
		if (rc < 0) {
			rc = ferry_errno(-rc, "%s: cannot move %s into place", path, tmp);
			goto out;
		}
		/* Linked: the temporary name is removed below. */
	} else {
		created = false;
	}

	slash = strrchr(dir, '/');
	if (slash == NULL)
		strcpy(dir, ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	/* EINVAL: a file system that cannot sync a directory (and needs not). */
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || (fsync(dfd) < 0 && errno != EINVAL))
		rc = ferry_errno(errno, "%s: written, but fsync of its directory %s", path, dir);
	if (dfd >= 0)
		close(dfd);
out:
	if (created)
		unlink(tmp);
	free(tmp);
	free(dir);
	return rc;
}

int fcrypto_publisher_key_write(const char *path, const uint8_t sk[static FERRY_SK_LEN])
{
	char sk64[SK_B64_LEN];
	char pk64[FERRY_B64_32_LEN], text[256];
	uint8_t pk[FERRY_PK_LEN];
	int len, rc;

	fcrypto_sk_to_pk(pk, sk);
	fcrypto_b64_encode(sk64, sk, FERRY_SK_LEN);
	fcrypto_b64_encode(pk64, pk, FERRY_PK_LEN);
	len = snprintf(text, sizeof(text), "%s v1\n%s\npublic %s\n", publisher_kind.magic, sk64,
		       pk64);
	rc = key_file_write(path, text, (size_t)len);
	sodium_memzero(sk64, sizeof(sk64));
	sodium_memzero(text, sizeof(text));
	return rc;
}

int fcrypto_netkey_write(const char *path, const uint8_t key[static FERRY_NETKEY_LEN])
{
	char key64[FERRY_B64_32_LEN], text[128];
	int len, rc;

	fcrypto_b64_encode(key64, key, FERRY_NETKEY_LEN);
	len = snprintf(text, sizeof(text), "%s v1\n%s\n", netkey_kind.magic, key64);
	rc = key_file_write(path, text, (size_t)len);
	sodium_memzero(key64, sizeof(key64));
	sodium_memzero(text, sizeof(text));
	return rc;
}

/* Strip trailing blanks (a CR from an editor, spaces) from a line in place. */
static char *rstrip(char *s)
{
	size_t len = strlen(s);

	while (len > 0 && is_blank(s[len - 1]))
		s[--len] = '\0';
	return s;
}

/*
 * Read path into *buf (owned by the caller, who wipes and frees it) and split
 * it into kind->lines lines in line[]. Checks the first line and that nothing
 * but blank lines follows; the caller checks the others.
 */
static int key_file_lines(const char *path, const struct key_kind *kind, char **buf, size_t *len,
			  char **line)
{
	char *p, *want = xasprintf("%s v1", kind->magic);
	size_t n = 0, last = 0, extra = 0, prefix = strlen(kind->magic);
	int rc;

	*buf = NULL;
	rc = read_file(path, KEY_FILE_CAP, buf, len);
	if (rc < 0)
		goto out;
	if (strlen(*buf) != *len) {
		rc = ferry_errf(FERRY_EFORMAT, "%s: contains a NUL byte: not %s", path, kind->what);
		goto out;
	}
	p = *buf;
	for (size_t no = 1; p != NULL; no++) {
		char *l = p, *nl = strchr(p, '\n');

		if (nl != NULL)
			*nl = '\0';
		p = nl != NULL ? nl + 1 : NULL;
		rstrip(l);
		if (*l != '\0')
			last = no;
		if (n < kind->lines)
			line[n++] = l;
		else if (*l != '\0' && extra == 0)
			extra = no;
	}
	if (strcmp(line[0], want) != 0) {
		for (size_t k = 0; k < ARRAY_SIZE(key_kinds); k++) {
			const struct key_kind *other = key_kinds[k];
			size_t olen = strlen(other->magic);

			if (other != kind && strncmp(line[0], other->magic, olen) == 0 &&
			    (line[0][olen] == ' ' || line[0][olen] == '\0')) {
				rc = ferry_errf(FERRY_EFORMAT, "%s: line 1: this is %s, not %s",
						path, other->what, kind->what);
				goto out;
			}
		}
		if (strncmp(line[0], kind->magic, prefix) == 0 && line[0][prefix] == ' ')
			rc = ferry_errf(FERRY_EVERSION,
					"%s: line 1: '%.40s': this ferry reads only '%s'", path,
					line[0], want);
		else
			rc = ferry_errf(FERRY_EFORMAT, "%s: line 1: not %s (expected '%s')", path,
					kind->what, want);
		goto out;
	}
	if (extra != 0) {
		rc = ferry_errf(FERRY_EFORMAT, "%s: line %zu: unexpected text after the key", path,
				extra);
		goto out;
	}
	/* Blank lines at the end are allowed, so a required line may be one. */
	if (last < kind->lines) {
		rc = ferry_errf(FERRY_EFORMAT, "%s: line %zu: missing (%s has %zu lines)", path,
				last + 1, kind->what, kind->lines);
		goto out;
	}
out:
	free(want);
	return rc;
}

static void wipe_free(char *buf, size_t len)
{
	if (buf == NULL)
		return;
	sodium_memzero(buf, len);
	free(buf);
}

int fcrypto_publisher_key_read(const char *path, uint8_t sk[static FERRY_SK_LEN])
{
	uint8_t seed_pk[FERRY_PK_LEN], derived[FERRY_SK_LEN], pk[FERRY_PK_LEN];
	char *buf, *line[3];
	const char *pub;
	size_t len = 0;
	int rc;

	rc = key_file_lines(path, &publisher_kind, &buf, &len, line);
	if (rc < 0)
		goto out;
	if (fcrypto_b64_decode(sk, FERRY_SK_LEN, line[1]) < 0) {
		rc = ferry_errf(
		    FERRY_EFORMAT,
		    "%s: line 2: not a base64 key (expected the %d-byte secret key in %d "
		    "base64 characters)",
		    path, FERRY_SK_LEN, (int)SK_B64_LEN - 1);
		goto out;
	}
	/* The secret key is seed || public key: both halves must agree. */
	crypto_sign_seed_keypair(seed_pk, derived, sk);
	if (!fcrypto_equal(derived, sk, FERRY_SK_LEN)) {
		rc = ferry_errf(FERRY_EFORMAT,
				"%s: line 2: damaged secret key (its public half does not match "
				"its seed)",
				path);
		goto out;
	}
	if (strncmp(line[2], "public ", 7) != 0) {
		rc = ferry_errf(FERRY_EFORMAT, "%s: line 3: expected 'public <base64 key>'", path);
		goto out;
	}
	pub = line[2] + 7;
	if (fcrypto_b64_decode(pk, FERRY_PK_LEN, pub) < 0) {
		rc = ferry_errf(FERRY_EFORMAT, "%s: line 3: not a base64 key", path);
		goto out;
	}
	if (!fcrypto_equal(pk, seed_pk, FERRY_PK_LEN)) {
		rc = ferry_errf(FERRY_EFORMAT,
				"%s: line 3: the public key does not belong to the secret key",
				path);
		goto out;
	}
out:
	if (rc < 0)
		sodium_memzero(sk, FERRY_SK_LEN);
	sodium_memzero(derived, sizeof(derived));
	wipe_free(buf, len);
	return rc;
}

int fcrypto_netkey_read(const char *path, uint8_t key[static FERRY_NETKEY_LEN])
{
	char *buf, *line[2];
	size_t len = 0;
	int rc;

	rc = key_file_lines(path, &netkey_kind, &buf, &len, line);
	if (rc < 0)
		goto out;
	if (fcrypto_b64_decode(key, FERRY_NETKEY_LEN, line[1]) < 0)
		rc = ferry_errf(FERRY_EFORMAT,
				"%s: line 2: not a base64 key (expected %d bytes in %d base64 "
				"characters)",
				path, FERRY_NETKEY_LEN, FERRY_B64_32_LEN - 1);
out:
	if (rc < 0)
		sodium_memzero(key, FERRY_NETKEY_LEN);
	wipe_free(buf, len);
	return rc;
}
