/*
 * Node identity: the node's static X25519 key pair. The node id is the public
 * key, shown as 64 lower-case hex characters (id_short() gives the first 12,
 * as for chunk ids). The key lives in STATE_DIR/node.key, created on first
 * start; its format is in docs/protocol.md ("Node key file").
 *
 * The X25519 arithmetic is done by session.c (the crypto module); this file
 * only reads, writes and checks the key file.
 */
#ifndef FERRY_NODEKEY_H
#define FERRY_NODEKEY_H

#include <stdint.h>

#define NODEKEY_LEN  32
#define NODEKEY_FILE "node.key"
/* First line of the key file. */
#define NODEKEY_MAGIC "ferry-node-key-v1"
/* Hex node id plus NUL. */
#define NODEKEY_ID_HEX_LEN (2 * NODEKEY_LEN + 1)

struct nodekey {
	uint8_t sk[NODEKEY_LEN]; /* X25519 secret key: secret, wipe with nodekey_wipe() */
	uint8_t pk[NODEKEY_LEN]; /* X25519 public key = node id */
};

/*
 * Load STATE_DIR/node.key, or create it if it does not exist: a fresh random
 * key written with mode 0600 to a temporary file in STATE_DIR, fsynced, then
 * linked into place (never over an existing file, so two processes racing on
 * first start end up with the same key) and the directory fsynced.
 *
 * Errors, each with a detail that names the file:
 *   FERRY_EFORMAT  the file is not a node key (wrong first line, wrong
 *                  length, not hex, trailing bytes);
 *   FERRY_EACCES   the file is readable or writable by group or others
 *                  (refused, as OpenSSH does; the message says how to fix it),
 *                  or it cannot be opened;
 *   FERRY_ENOENT   STATE_DIR does not exist;
 *   other negative errno codes from open/read/write/fsync/link.
 * On success the created key is logged once at notice level with its node id.
 */
int nodekey_load_or_create(const char *state_dir, struct nodekey *key);

/* Load a node key file at path with the checks above; never creates it. */
int nodekey_load(const char *path, struct nodekey *key);

/* A fresh random key pair (getrandom(2); dies if the kernel has no randomness). */
void nodekey_generate(struct nodekey *key);

/* Fill key->pk from key->sk (one X25519 base-point multiplication). */
void nodekey_derive_public(struct nodekey *key);

/* Hex node id of pk into out; returns out. */
char *nodekey_id_hex(char out[static NODEKEY_ID_HEX_LEN], const uint8_t pk[static NODEKEY_LEN]);

/* Parse a 64-hex-character node id. 0 or FERRY_EFORMAT (detail names the text). */
int nodekey_id_parse(uint8_t pk[static NODEKEY_LEN], const char *s);

/* Wipe the secret (and public) key. */
void nodekey_wipe(struct nodekey *key);

#endif
