/*
 * The peer session layer: the Noise handshake and the encrypted framing of
 * everything after it. Pure: bytes in, bytes out, the time passed in; no
 * sockets, no event loop. The wire format is in docs/protocol.md
 * ("Handshake", "Framing").
 *
 * Glossary
 *   network key  the 32-byte secret every node of one ferry network holds;
 *                used as the Noise pre-shared key (psk).
 *   node key     the node's static X25519 key pair (nodekey.h); the public
 *                half is the node id.
 *   hello        the caller's payload of handshake messages 2 and 3: opaque
 *                bytes here, at most SESSION_HELLO_MAX.
 *   frame        one encrypted unit on the wire after the handshake:
 *                4-byte header + ChaCha20-Poly1305 ciphertext of at most
 *                SESSION_FRAME_MAX plaintext bytes.
 *   message      what the layer above sends: one or more frames, all but the
 *                last with the "more" bit set.
 *
 * Handshake: Noise_XXpsk0_25519_ChaChaPoly_BLAKE2b, prologue "ferry/1".
 *
 *   initiator                                   responder
 *   session_hs_write(msg 1)  -- psk, e -->       session_hs_read   (tag checked
 *                                                 before any public-key work)
 *   session_hs_read          <-- e, ee, s, es -- session_hs_write(msg 2, hello)
 *   session_hs_write(msg 3, hello) -- s, se -->  session_hs_read
 *   session_hs_split                             session_hs_split
 *
 * session_hs_step() says what a handshake expects next. Any error is final:
 * the handshake refuses every later call and the connection must be closed.
 */
#ifndef FERRY_SESSION_H
#define FERRY_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ferry/nodekey.h"

#define SESSION_PROLOGUE "ferry/1"
#define SESSION_KEY_LEN	 32
#define SESSION_HASH_LEN 64 /* BLAKE2b-512: the handshake hash */
/* Version of the handshake's message 1 payload; see docs/protocol.md. */
#define SESSION_HS_VERSION 1
/* Largest accepted difference between the peers' clocks, in seconds. */
#define SESSION_CLOCK_SKEW_MAX 120
/* Cap on the hello payload of handshake messages 2 and 3. */
#define SESSION_HELLO_MAX 4096
/* Handshake message sizes on the wire, including the 2-byte length prefix. */
#define SESSION_HS_MSG1_LEN (2 + 32 + 12 + 16)
#define SESSION_HS_MSG2_MIN (2 + 32 + 48 + 16)
#define SESSION_HS_MSG3_MIN (2 + 48 + 16)
/* Largest handshake message on the wire: the I/O layer never buffers more. */
#define SESSION_HS_MSG_MAX (SESSION_HS_MSG2_MIN + SESSION_HELLO_MAX)

/* Framing. */
#define SESSION_FRAME_MAX      65536 /* plaintext bytes in one frame */
#define SESSION_FRAME_HDR      4
#define SESSION_TAG_LEN	       16
#define SESSION_FRAME_OVERHEAD (SESSION_FRAME_HDR + SESSION_TAG_LEN)
#define SESSION_FRAME_MORE     0x80000000u /* header bit: more frames follow */
/* A sensible cap on one reassembled message (session_rx_new's msg_cap). */
#define SESSION_MSG_MAX_DEFAULT (16u << 20)

enum session_role { SESSION_INITIATOR, SESSION_RESPONDER };

enum session_hs_step {
	SESSION_HS_WRITE, /* call session_hs_write() next */
	SESSION_HS_READ,  /* call session_hs_read() next */
	SESSION_HS_DONE,  /* call session_hs_split() */
	SESSION_HS_FAILED /* an error happened: close the connection */
};

/* Transport keys from a finished handshake, already oriented for this side. */
struct session_keys {
	uint8_t tx[SESSION_KEY_LEN];	/* seals what this side sends */
	uint8_t rx[SESSION_KEY_LEN];	/* opens what this side receives */
	uint8_t hash[SESSION_HASH_LEN]; /* handshake hash, equal on both sides (not secret) */
};

struct session_hs;

/*
 * Start a handshake. key is this node's static key pair (its public half is
 * used as is: no public-key work happens here), netkey the network key,
 * now_unix the current wall-clock time in seconds: the initiator puts it in
 * message 1, the responder checks message 1's time against it. Copies what it
 * needs; never fails (dies on out-of-memory). Free with session_hs_free().
 */
struct session_hs *session_hs_new(enum session_role role, const struct nodekey *key,
				  const uint8_t netkey[static SESSION_KEY_LEN], uint64_t now_unix);

/* What the handshake expects next. */
enum session_hs_step session_hs_step(const struct session_hs *hs);

/*
 * Write the next handshake message, ready for the wire (length prefix
 * included), into out[0..cap); its length goes to *outlen. Message 1 has no
 * caller payload (plen must be 0); messages 2 and 3 carry payload[0..plen),
 * plen <= SESSION_HELLO_MAX, encrypted. out needs plen + SESSION_HS_MSG2_MIN
 * bytes (SESSION_HS_MSG_MAX always suffices).
 * Errors: FERRY_EINVAL (not this side's turn, plen too large, cap too small:
 * caller bugs, the state is unchanged); FERRY_EAUTH (the peer's ephemeral key
 * is a low-order point: the handshake has failed).
 */
int session_hs_write(struct session_hs *hs, const uint8_t *payload, size_t plen, uint8_t *out,
		     size_t cap, size_t *outlen);

/*
 * Read the next handshake message from the front of in[0..n), which may hold
 * less or more than one message (bytes after it are the peer's first frames).
 * On success *consumed says how many bytes were the message and the peer's
 * hello (empty for message 1) is decrypted into payload[0..cap) with its length
 * in *plen; cap >= SESSION_HELLO_MAX always suffices.
 * Returns
 *   0               a message was read;
 *   FERRY_EAGAIN    in holds only part of a message: read more and call again
 *                   with all of it (*consumed is 0, the state is unchanged). The
 *                   length prefix is checked as soon as its 2 bytes are there,
 *                   so the caller never needs more than SESSION_HS_MSG_MAX bytes;
 *   FERRY_EAUTH     the message does not authenticate: the peer does not hold
 *                   the network key, or the bytes were changed on the way;
 *                   or a low-order public key;
 *   FERRY_EPROTO    a malformed message (length out of bounds, unknown
 *                   version), or message 1's time is more than
 *                   SESSION_CLOCK_SKEW_MAX seconds off this node's clock;
 *   FERRY_EINVAL    not this side's turn, or cap too small for the payload.
 * Every error but FERRY_EAGAIN and FERRY_EINVAL fails the handshake. A
 * responder does no public-key operation before message 1 has authenticated.
 */
int session_hs_read(struct session_hs *hs, const uint8_t *in, size_t n, size_t *consumed,
		    uint8_t *payload, size_t cap, size_t *plen);

/*
 * The peer's static public key (its node id), once known: after reading
 * message 2 (initiator) or message 3 (responder); NULL before. Borrowed: valid
 * until session_hs_free(). Check it against bans before writing message 3.
 */
const uint8_t *session_hs_remote_static(const struct session_hs *hs);

/*
 * Derive the transport keys after the last handshake message (the initiator
 * after writing message 3, the responder after reading it). 0, or
 * FERRY_EINVAL before that. The caller wipes *keys with session_keys_wipe()
 * once it has made its session_tx and session_rx.
 */
int session_hs_split(struct session_hs *hs, struct session_keys *keys);

/* Wipe every secret and free. NULL is a no-op. */
void session_hs_free(struct session_hs *hs);

void session_keys_wipe(struct session_keys *keys);

/*
 * Sending. A session_tx holds the send key and the frame counter (the nonce).
 * Frames must reach the wire in the order they were sealed, and the frames of
 * one message must be consecutive: to let control messages overtake bulk
 * data, the layer above sends bulk data as messages of at most
 * SESSION_FRAME_MAX bytes.
 */
struct session_tx;

/* Never fails (dies on out-of-memory). Free with session_tx_free(). */
struct session_tx *session_tx_new(const uint8_t key[static SESSION_KEY_LEN]);
void session_tx_free(struct session_tx *tx);

/* Bytes on the wire for a message of len bytes (len <= SIZE_MAX / 2). */
size_t session_sealed_len(size_t len);

/*
 * Seal msg[0..len) as one message into out[0..cap), split into frames of
 * SESSION_FRAME_MAX; *outlen = session_sealed_len(len). msg and out must not
 * overlap. FERRY_EINVAL if cap is too small or len > SIZE_MAX / 2 (nothing is
 * sealed then).
 */
int session_seal(struct session_tx *tx, const void *msg, size_t len, uint8_t *out, size_t cap,
		 size_t *outlen);

/*
 * Seal one frame in place, for a sender that builds its messages directly in
 * the frame buffer and so copies nothing: frame[0..len + SESSION_FRAME_OVERHEAD)
 * holds room for the header at frame[0..4), the plaintext at frame[4..4+len)
 * and room for the tag after it. more = true for every frame of a message but
 * its last. FERRY_EINVAL if len > SESSION_FRAME_MAX or (more && len == 0).
 */
int session_seal_frame_inplace(struct session_tx *tx, uint8_t *frame, size_t len, bool more);

/*
 * Receiving: a streaming decoder fed with whatever bytes the socket gave.
 * msg_cap caps one reassembled message (e.g. SESSION_MSG_MAX_DEFAULT): a frame
 * header that would take the message past it is refused before anything is
 * buffered or allocated. Memory grows with the largest message in flight and
 * falls back after a message above ~1 MiB.
 */
struct session_rx;

/* Never fails (dies on out-of-memory). Free with session_rx_free(). */
struct session_rx *session_rx_new(const uint8_t key[static SESSION_KEY_LEN], size_t msg_cap);
void session_rx_free(struct session_rx *rx);

/*
 * Let chosen messages grow past msg_cap, up to big_cap. When a frame would
 * take a message past msg_cap, rx calls grant(ctx, head, len) with the
 * message's plaintext so far (head: borrowed, only during the call; len is
 * whatever frames have arrived, so at least the first frame unless msg_cap is
 * below one frame). grant returns 0 to let this message grow to big_cap, or a
 * negative FERRY_E* code that fails the stream (session_rx_feed returns it).
 * The grant lasts until the message is delivered. Without this call every
 * message is capped at msg_cap.
 */
void session_rx_set_big(struct session_rx *rx, size_t big_cap,
			int (*grant)(void *ctx, const uint8_t *head, size_t len), void *ctx);

/*
 * Consume bytes from in[0..n) until one whole message is decrypted or the
 * input is used up; *consumed says how many bytes were taken. Call again with
 * the rest (in + *consumed) until all is consumed.
 * Returns
 *   1              a message: *msg, *len. Borrowed: valid until the next call
 *                  of session_rx_feed() or session_rx_free(). *msg is never
 *                  NULL, even for an empty message;
 *   0              all of in was consumed without completing a message;
 *   FERRY_EAUTH    a frame does not authenticate (tampered, replayed,
 *                  reordered, dropped, or its header was changed);
 *   FERRY_EPROTO   a frame length out of range (below the tag size, above
 *                  SESSION_FRAME_MAX plus tag, or an empty frame with the
 *                  "more" bit);
 *   FERRY_ETOOBIG  the message would exceed msg_cap.
 * Errors are final: every later call returns the same code; close the
 * connection.
 */
int session_rx_feed(struct session_rx *rx, const uint8_t *in, size_t n, size_t *consumed,
		    const uint8_t **msg, size_t *len);

/*
 * True when the stream stands between messages (no partial frame or message
 * buffered), so an end of stream here lost nothing that was sent whole.
 */
bool session_rx_idle(const struct session_rx *rx);

/* The X25519 public key of sk (used by nodekey.c; the crypto lives here). */
void session_x25519_public(uint8_t pk[static 32], const uint8_t sk[static 32]);

/*
 * Internals shared with the tests only.
 *
 * session__hs_new_raw: a handshake for checking against published Noise test
 * vectors: the given prologue, a fixed ephemeral secret key (32 bytes, or
 * NULL for a random one), and message 1 carries the caller's payload with no
 * time or version check. Messages are still length-prefixed and hello sizes
 * capped as above.
 * session__hs_pk_ops: how many X25519 operations (key generations and DH) the
 * handshake has done, so a test can show a rejected message 1 cost none.
 */
struct session_hs *session__hs_new_raw(enum session_role role, const struct nodekey *key,
				       const uint8_t psk[static SESSION_KEY_LEN],
				       const uint8_t *prologue, size_t prologue_len,
				       const uint8_t *fixed_ephemeral);
unsigned session__hs_pk_ops(const struct session_hs *hs);

#endif
