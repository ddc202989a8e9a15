/*
 * The crypto module: the only code that includes <sodium.h> or OpenSSL.
 * BLAKE2b-256 ids, SHA-256 of files (OpenSSL, which uses SHA-NI), Ed25519
 * publisher signatures, randomness, base64, constant-time comparison and
 * wiping of secrets. The peer handshake (session.c) is the other part of the
 * crypto module and shares this header's primitives.
 */
#ifndef FERRY_FCRYPTO_H
#define FERRY_FCRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FERRY_ID_LEN 32	      /* BLAKE2b-256 chunk and manifest ids */
#define FERRY_SHA256_LEN 32
#define FERRY_PK_LEN 32	      /* Ed25519 public key */
#define FERRY_SK_LEN 64	      /* Ed25519 secret key (libsodium form: seed || pk) */
#define FERRY_SIG_LEN 64
#define FERRY_NETKEY_LEN 32
/* base64 of 32 bytes, with padding, plus NUL. */
#define FERRY_B64_32_LEN 45

/* Initialise libsodium. 0, or FERRY_EIO if it cannot start. Safe to call again. */
int fcrypto_init(void);

/* BLAKE2b-256 of in[0..n) (no key). */
void fcrypto_id(uint8_t out[static FERRY_ID_LEN], const void *in, size_t n);

/* Streaming SHA-256. new() never fails (dies on OOM); free(NULL) is a no-op. */
struct fcrypto_sha256;
struct fcrypto_sha256 *fcrypto_sha256_new(void);
void fcrypto_sha256_update(struct fcrypto_sha256 *s, const void *p, size_t n);
/* Writes the digest; the state may be reused after fcrypto_sha256_reset(). */
void fcrypto_sha256_final(struct fcrypto_sha256 *s, uint8_t out[static FERRY_SHA256_LEN]);
void fcrypto_sha256_reset(struct fcrypto_sha256 *s);
void fcrypto_sha256_free(struct fcrypto_sha256 *s);

void fcrypto_sign_keypair(uint8_t pk[static FERRY_PK_LEN], uint8_t sk[static FERRY_SK_LEN]);
void fcrypto_sign(uint8_t sig[static FERRY_SIG_LEN], const void *msg, size_t n,
		  const uint8_t sk[static FERRY_SK_LEN]);
/* 0 if sig is pk's signature of msg, else FERRY_EBADSIG. */
int fcrypto_verify(const uint8_t sig[static FERRY_SIG_LEN], const void *msg, size_t n,
		   const uint8_t pk[static FERRY_PK_LEN]);
/* The public key inside a secret key. */
void fcrypto_sk_to_pk(uint8_t pk[static FERRY_PK_LEN], const uint8_t sk[static FERRY_SK_LEN]);

void fcrypto_random(void *p, size_t n);
/* Uniform in [0, upper). */
uint32_t fcrypto_random_uniform(uint32_t upper);
void fcrypto_wipe(void *p, size_t n);
/* Constant-time equality of two n-byte buffers. */
bool fcrypto_equal(const void *a, const void *b, size_t n);

/* Standard base64 with padding. Returns out. out holds 4*ceil(n/3)+1 chars. */
char *fcrypto_b64_encode(char *out, const uint8_t *in, size_t n);
/* Decode exactly n bytes; surrounding white space is ignored. 0 or FERRY_EFORMAT. */
int fcrypto_b64_decode(uint8_t *out, size_t n, const char *in);

/*
 * Key files (formats in docs/formats.md). Written with mode 0600 through a
 * temporary file and rename; an existing file is never overwritten
 * (FERRY_EEXIST). Reading checks the format and names the file in the detail.
 */
int fcrypto_publisher_key_write(const char *path, const uint8_t sk[static FERRY_SK_LEN]);
int fcrypto_publisher_key_read(const char *path, uint8_t sk[static FERRY_SK_LEN]);
int fcrypto_netkey_write(const char *path, const uint8_t key[static FERRY_NETKEY_LEN]);
int fcrypto_netkey_read(const char *path, uint8_t key[static FERRY_NETKEY_LEN]);

#endif
