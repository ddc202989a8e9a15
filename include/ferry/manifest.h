/*
 * Manifests: the signed record of one version of a model. The body is
 * msgpack with a format version field; the signature is Ed25519 over the
 * exact encoded body bytes; the signed form wraps both. Layouts are in
 * docs/formats.md with test vectors in tests/unit/test_manifest.c.
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
	uint32_t format;
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

/* Encode the body (the bytes that are signed). *body is malloc'd, owned by the caller. */
int manifest_encode(const struct manifest *m, uint8_t **body, size_t *len);
/* Wrap a body and its signature into the signed form. *out is malloc'd. */
int manifest_seal(const uint8_t *body, size_t len, const uint8_t sig[static 64], uint8_t **out,
		  size_t *outlen);
/* Decode a body without any signature check (ferryctl uses it to show what it signs). */
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

/* Total of the files' sizes. */
uint64_t manifest_total_size(const struct manifest *m);
void manifest_free(struct manifest *m);

#endif
