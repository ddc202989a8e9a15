/*
 * Manifests: the signed record of one version of a model. The body is
 * msgpack with a format version field; the signature is Ed25519 over a
 * context string followed by the exact encoded body bytes (manifest_sign);
 * the signed form wraps both. Layouts are in
 * docs/formats.md with a test vector in tests/vectors/manifest-v1.hex.
 *
 * Everything decoded here is untrusted until manifest_open() has returned 0:
 * it checks the envelope, the signature against the trusted publishers, the
 * format version, the model name and every file path.
 */
#ifndef FERRY_MANIFEST_H
#define FERRY_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MANIFEST_FORMAT 1
#define MANIFEST_NAME_MAX 64
#define MANIFEST_LABEL_MAX 256
#define MANIFEST_PATH_MAX 4096
#define MANIFEST_COMPONENT_MAX 255
#define MANIFEST_FILES_MAX 100000
/* Largest signed manifest accepted from anywhere. */
#define MANIFEST_SIGNED_MAX (16u * 1024u * 1024u)

struct manifest_file {
	char *path;	    /* relative, '/'-separated, checked */
	uint64_t size;	    /* bytes */
	uint32_t mode;	    /* permission bits only (0777 mask) */
	uint8_t sha256[32]; /* SHA-256 of the whole file */
	uint32_t npieces;   /* chunk index pieces, in order */
	uint8_t (*pieces)[32];
};

struct manifest {
	uint32_t format; /* MANIFEST_FORMAT: manifest_encode() writes no other */
	char *name;
	uint64_t version;
	char *label;
	int64_t created; /* seconds since the epoch, UTC */
	uint8_t publisher[32];
	uint32_t nfiles;
	struct manifest_file *files;
};

/* The trusted publishers' public keys. */
struct trust {
	size_t n;
	uint8_t (*keys)[32];
};

/* 0 if name matches [a-z0-9][a-z0-9._-]{0,63}, else FERRY_EINVAL with a detail. */
int manifest_name_check(const char *name);
/* 0 if path is a safe relative path (DESIGN.md rules), else FERRY_EPATH with a detail. */
int manifest_path_check(const char *path);

/*
 * Encode the body (the bytes that are signed). *body is malloc'd, owned by the
 * caller. m is checked first as manifest_open() would check it, so nothing is
 * signed that nodes would reject: the same error codes as manifest_open().
 */
int manifest_encode(const struct manifest *m, uint8_t **body, size_t *len);
/*
 * Sign a body with a publisher's secret key. The signature covers the
 * domain-separated message "ferry-manifest-v1\0" || body (docs/formats.md),
 * never the bare body, so it cannot be replayed as another kind of signed
 * object. FERRY_EINVAL if sk's public key is not the body's publisher (the
 * manifest could never be accepted); FERRY_EFORMAT if the body has none.
 */
int manifest_sign(const uint8_t *body, size_t len, const uint8_t sk[static 64],
		  uint8_t sig[static 64]);
/*
 * Wrap a body and its signature into the signed form. *out is malloc'd.
 * FERRY_ETOOBIG if the result would exceed MANIFEST_SIGNED_MAX.
 */
int manifest_seal(const uint8_t *body, size_t len, const uint8_t sig[static 64], uint8_t **out,
		  size_t *outlen);
/*
 * Decode a body without any signature check (ferryctl uses it to show what it
 * signs). Every check of manifest_open() but the signature's is made; on
 * success *out is owned by the caller (manifest_free).
 */
int manifest_decode_body(const uint8_t *body, size_t len, struct manifest **out);

/*
 * Parse and verify a signed manifest: envelope, Ed25519 signature by a key in
 * t (FERRY_EUNTRUSTED if the publisher is not trusted, FERRY_EBADSIG if the
 * signature fails), format version (FERRY_EVERSION), name and paths
 * (FERRY_EINVAL/FERRY_EPATH), limits (FERRY_ETOOBIG), anything else
 * FERRY_EFORMAT. On success *out is owned by the caller (manifest_free) and
 * hash (if not NULL) receives the BLAKE2b-256 of the signed bytes.
 */
int manifest_open(const uint8_t *signed_bytes, size_t n, const struct trust *t,
		  struct manifest **out, uint8_t hash[32]);

/*
 * Split a signed manifest into its body (a borrowed view into signed_bytes)
 * and signature, checking only the envelope, not the signature: for code that
 * reads manifests the store already accepted (gc keeps what every stored
 * manifest references, whoever signed it). FERRY_EFORMAT/FERRY_ETOOBIG.
 */
int manifest_envelope(const uint8_t *signed_bytes, size_t n, const uint8_t **body, size_t *blen,
		      uint8_t sig[static 64]);

/* Total of the files' sizes (saturating at UINT64_MAX). */
uint64_t manifest_total_size(const struct manifest *m);
/* Free m and everything in it; manifest_free(NULL) is a no-op. */
void manifest_free(struct manifest *m);

#endif
