/*
 * The peer session layer; see include/ferry/session.h and docs/protocol.md.
 *
 * The handshake follows the Noise Protocol Framework, revision 34, for the one
 * protocol Noise_XXpsk0_25519_ChaChaPoly_BLAKE2b:
 *
 *   CipherState   k, n: ChaChaPoly (IETF, 96-bit nonce = 4 zero bytes and n
 *                 little-endian) with the handshake hash h as associated data.
 *   SymmetricState  ck (chaining key) and h (handshake hash), 64 bytes each,
 *                 HKDF = HMAC-BLAKE2b as in RFC 2104 with a 128-byte block.
 *   HandshakeState  the static pair s, ephemeral pair e, the peer's rs and re,
 *                 the psk, and the pattern below, walked one message at a time.
 *
 * The transport after Split is ferry's own framing (4-byte authenticated
 * header, one counter nonce per direction), not Noise's transport messages.
 */
#include "config.h"

#include <string.h>

#include <sodium.h>

#include "ferry/error.h"
#include "ferry/session.h"
#include "ferry/util.h"

#define PROTOCOL_NAME	"Noise_XXpsk0_25519_ChaChaPoly_BLAKE2b"
#define HASHLEN		64
#define BLOCKLEN	128
#define DHLEN		32
#define HS_MSG1_PAYLOAD 12 /* u16 version, u16 flags, u64 time */
#define HS_PREFIX	2

/* Keep a receive buffer this large between messages; free anything larger. */
#define RX_KEEP ((size_t)(1u << 20) + SESSION_FRAME_MAX + SESSION_TAG_LEN)

_Static_assert(SESSION_HS_MSG1_LEN == HS_PREFIX + DHLEN + SESSION_TAG_LEN + HS_MSG1_PAYLOAD,
	       "message 1 size");
_Static_assert(SESSION_HS_MSG2_MIN == HS_PREFIX + 2 * DHLEN + 2 * SESSION_TAG_LEN,
	       "message 2 size");
_Static_assert(SESSION_HS_MSG3_MIN == HS_PREFIX + DHLEN + 2 * SESSION_TAG_LEN, "message 3 size");
_Static_assert(SESSION_HS_MSG_MAX <= 0xffff, "handshake lengths fit the 2-byte prefix");

enum token { T_END, T_E, T_S, T_EE, T_ES, T_SE, T_PSK };

/* XXpsk0: -> psk, e   <- e, ee, s, es   -> s, se */
static const enum token pattern[3][5] = {
    {T_PSK, T_E, T_END},
    {T_E, T_EE, T_S, T_ES, T_END},
    {T_S, T_SE, T_END},
};

struct session_hs {
	enum session_role role;
	int msg;     /* index of the next message, 0..3 */
	bool failed; /* an error happened: refuse everything */
	bool raw;    /* test-vector mode: caller's payload in message 1, no checks */
	bool fixed_e;
	uint64_t now;
	unsigned pk_ops;

	/* SymmetricState and its CipherState. */
	uint8_t ck[HASHLEN];
	uint8_t h[HASHLEN];
	uint8_t k[SESSION_KEY_LEN]; /* set by the psk token before any payload */
	uint64_t n;

	uint8_t s_sk[DHLEN], s_pk[DHLEN];
	uint8_t e_sk[DHLEN], e_pk[DHLEN];
	uint8_t rs[DHLEN], re[DHLEN];
	bool has_rs;
	uint8_t psk[SESSION_KEY_LEN];
};

struct session_tx {
	uint8_t key[SESSION_KEY_LEN];
	uint64_t n;
};

struct session_rx {
	uint8_t key[SESSION_KEY_LEN];
	uint64_t n;
	size_t msg_cap;
	int err; /* a final error, or 0 */

	/* The larger cap a message may be granted (session_rx_set_big). */
	size_t big_cap;
	int (*grant)(void *ctx, const uint8_t *head, size_t len);
	void *grant_ctx;
	bool big; /* the message being assembled was granted big_cap */

	uint8_t hdr[SESSION_FRAME_HDR];
	size_t hdr_have; /* header bytes of the current frame collected */
	bool in_frame;	 /* the header is complete; collecting ciphertext */
	bool more;
	size_t ct_len;	/* ciphertext length of the current frame, tag included */
	size_t ct_have; /* ciphertext bytes collected into buf + msg_len */

	/*
	 * The message being assembled: msg_len plaintext bytes of finished frames,
	 * then the current frame's ciphertext, decrypted in place when complete.
	 */
	uint8_t *buf;
	size_t buf_cap;
	size_t msg_len;
	bool delivered; /* the last call returned buf: start afresh next call */
};

static void put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static uint16_t get_be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_be64(uint8_t *p, uint64_t v)
{
	put_be32(p, (uint32_t)(v >> 32));
	put_be32(p + 4, (uint32_t)v);
}

static uint64_t get_be64(const uint8_t *p)
{
	return (uint64_t)get_be32(p) << 32 | get_be32(p + 4);
}

/* Noise's ChaChaPoly nonce: 32 bits of zeros, then n as 64-bit little-endian. */
static void nonce_of(uint8_t nonce[static 12], uint64_t n)
{
	memset(nonce, 0, 4);
	for (int i = 0; i < 8; i++)
		nonce[4 + i] = (uint8_t)(n >> (8 * i));
}

static void init_sodium(void)
{
	if (sodium_init() < 0)
		fatal("libsodium cannot start");
}

/* ---- HMAC-BLAKE2b and HKDF (Noise section 4.3) ---- */

/* HMAC(key, a || b) with BLAKE2b-512; key is at most BLOCKLEN bytes. */
static void hmac(uint8_t out[static HASHLEN], const uint8_t *key, size_t keylen, const uint8_t *a,
		 size_t alen, const uint8_t *b, size_t blen)
{
	crypto_generichash_blake2b_state st;
	uint8_t pad[BLOCKLEN], inner[HASHLEN];

	memset(pad, 0x36, sizeof(pad));
	for (size_t i = 0; i < keylen; i++)
		pad[i] ^= key[i];
	crypto_generichash_blake2b_init(&st, NULL, 0, HASHLEN);
	crypto_generichash_blake2b_update(&st, pad, sizeof(pad));
	crypto_generichash_blake2b_update(&st, a, alen);
	crypto_generichash_blake2b_update(&st, b, blen);
	crypto_generichash_blake2b_final(&st, inner, HASHLEN);

	memset(pad, 0x5c, sizeof(pad));
	for (size_t i = 0; i < keylen; i++)
		pad[i] ^= key[i];
	crypto_generichash_blake2b_init(&st, NULL, 0, HASHLEN);
	crypto_generichash_blake2b_update(&st, pad, sizeof(pad));
	crypto_generichash_blake2b_update(&st, inner, HASHLEN);
	crypto_generichash_blake2b_final(&st, out, HASHLEN);

	sodium_memzero(pad, sizeof(pad));
	sodium_memzero(inner, sizeof(inner));
	sodium_memzero(&st, sizeof(st));
}

/* HKDF(ck, ikm) with 2 or 3 outputs; out3 may be NULL. */
static void hkdf(const uint8_t ck[static HASHLEN], const uint8_t *ikm, size_t ikmlen,
		 uint8_t out1[static HASHLEN], uint8_t out2[static HASHLEN], uint8_t *out3)
{
	uint8_t temp[HASHLEN], one = 1, two = 2, three = 3;

	hmac(temp, ck, HASHLEN, ikm, ikmlen, NULL, 0);
	hmac(out1, temp, HASHLEN, &one, 1, NULL, 0);
	hmac(out2, temp, HASHLEN, out1, HASHLEN, &two, 1);
	if (out3 != NULL)
		hmac(out3, temp, HASHLEN, out2, HASHLEN, &three, 1);
	sodium_memzero(temp, sizeof(temp));
}

/* ---- SymmetricState ---- */

static void mix_hash(struct session_hs *hs, const uint8_t *data, size_t len)
{
	crypto_generichash_blake2b_state st;

	crypto_generichash_blake2b_init(&st, NULL, 0, HASHLEN);
	crypto_generichash_blake2b_update(&st, hs->h, HASHLEN);
	crypto_generichash_blake2b_update(&st, data, len);
	crypto_generichash_blake2b_final(&st, hs->h, HASHLEN);
}

static void mix_key(struct session_hs *hs, const uint8_t *ikm, size_t len)
{
	uint8_t temp_k[HASHLEN];

	hkdf(hs->ck, ikm, len, hs->ck, temp_k, NULL);
	memcpy(hs->k, temp_k, SESSION_KEY_LEN); /* HASHLEN 64: truncate to 32 */
	hs->n = 0;
	sodium_memzero(temp_k, sizeof(temp_k));
}

static void mix_key_and_hash(struct session_hs *hs, const uint8_t *ikm, size_t len)
{
	uint8_t temp_h[HASHLEN], temp_k[HASHLEN];

	hkdf(hs->ck, ikm, len, hs->ck, temp_h, temp_k);
	mix_hash(hs, temp_h, HASHLEN);
	memcpy(hs->k, temp_k, SESSION_KEY_LEN);
	hs->n = 0;
	sodium_memzero(temp_h, sizeof(temp_h));
	sodium_memzero(temp_k, sizeof(temp_k));
}

/*
 * out[0..len + 16) = ENCRYPT(k, n++, h, in); MixHash(ciphertext). XXpsk0 has a
 * key from its first token on, so Noise's plaintext case never arises.
 */
static size_t encrypt_and_hash(struct session_hs *hs, const uint8_t *in, size_t len, uint8_t *out)
{
	uint8_t nonce[12];

	nonce_of(nonce, hs->n++);
	crypto_aead_chacha20poly1305_ietf_encrypt_detached(out, out + len, NULL, in, len, hs->h,
							   HASHLEN, NULL, nonce, hs->k);
	mix_hash(hs, out, len + SESSION_TAG_LEN);
	return len + SESSION_TAG_LEN;
}

/* out[0..len - 16) = DECRYPT(k, n++, h, in[0..len)); MixHash(in). */
static int decrypt_and_hash(struct session_hs *hs, const uint8_t *in, size_t len, uint8_t *out)
{
	uint8_t nonce[12];
	size_t plen;

	if (len < SESSION_TAG_LEN)
		return FERRY_EPROTO;
	plen = len - SESSION_TAG_LEN;
	nonce_of(nonce, hs->n);
	if (crypto_aead_chacha20poly1305_ietf_decrypt_detached(out, NULL, in, plen, in + plen,
							       hs->h, HASHLEN, nonce, hs->k) != 0)
		return FERRY_EAUTH;
	hs->n++;
	mix_hash(hs, in, len);
	return 0;
}

/* ---- the handshake ---- */

void session_x25519_public(uint8_t pk[static 32], const uint8_t sk[static 32])
{
	init_sodium();
	crypto_scalarmult_curve25519_base(pk, sk);
}

static void init_symmetric(struct session_hs *hs, const uint8_t *prologue, size_t plen)
{
	/* The name is shorter than HASHLEN: h = name padded with zeros. */
	memset(hs->h, 0, HASHLEN);
	memcpy(hs->h, PROTOCOL_NAME, strlen(PROTOCOL_NAME));
	memcpy(hs->ck, hs->h, HASHLEN);
	mix_hash(hs, prologue, plen);
}

static struct session_hs *hs_alloc(enum session_role role, const struct nodekey *key,
				   const uint8_t psk[static SESSION_KEY_LEN])
{
	struct session_hs *hs = xcalloc(1, sizeof(*hs));

	init_sodium();
	hs->role = role;
	memcpy(hs->s_sk, key->sk, DHLEN);
	memcpy(hs->s_pk, key->pk, DHLEN);
	memcpy(hs->psk, psk, SESSION_KEY_LEN);
	return hs;
}

struct session_hs *session_hs_new(enum session_role role, const struct nodekey *key,
				  const uint8_t netkey[static SESSION_KEY_LEN], uint64_t now_unix)
{
	struct session_hs *hs = hs_alloc(role, key, netkey);

	hs->now = now_unix;
	init_symmetric(hs, (const uint8_t *)SESSION_PROLOGUE, strlen(SESSION_PROLOGUE));
	return hs;
}

struct session_hs *session__hs_new_raw(enum session_role role, const struct nodekey *key,
				       const uint8_t psk[static SESSION_KEY_LEN],
				       const uint8_t *prologue, size_t prologue_len,
				       const uint8_t *fixed_ephemeral)
{
	struct session_hs *hs = hs_alloc(role, key, psk);

	hs->raw = true;
	if (fixed_ephemeral != NULL) {
		memcpy(hs->e_sk, fixed_ephemeral, DHLEN);
		hs->fixed_e = true;
	}
	init_symmetric(hs, prologue, prologue_len);
	return hs;
}

unsigned session__hs_pk_ops(const struct session_hs *hs)
{
	return hs->pk_ops;
}

void session_hs_free(struct session_hs *hs)
{
	if (hs == NULL)
		return;
	sodium_memzero(hs, sizeof(*hs));
	free(hs);
}

void session_keys_wipe(struct session_keys *keys)
{
	sodium_memzero(keys, sizeof(*keys));
}

enum session_hs_step session_hs_step(const struct session_hs *hs)
{
	if (hs->failed)
		return SESSION_HS_FAILED;
	if (hs->msg == 3)
		return SESSION_HS_DONE;
	/* The initiator writes messages 0 and 2, the responder message 1. */
	return (hs->msg % 2 == 0) == (hs->role == SESSION_INITIATOR) ? SESSION_HS_WRITE
								     : SESSION_HS_READ;
}

const uint8_t *session_hs_remote_static(const struct session_hs *hs)
{
	return hs->has_rs ? hs->rs : NULL;
}

/* DH for the token: which of our keys meets which of theirs. */
static int dh_token(struct session_hs *hs, enum token t)
{
	bool init = hs->role == SESSION_INITIATOR;
	const uint8_t *mine, *theirs;
	uint8_t shared[DHLEN];
	int rc;

	switch (t) {
	case T_EE:
		mine = hs->e_sk, theirs = hs->re;
		break;
	case T_ES: /* initiator's e with responder's s */
		mine = init ? hs->e_sk : hs->s_sk, theirs = init ? hs->rs : hs->re;
		break;
	default: /* T_SE: initiator's s with responder's e */
		mine = init ? hs->s_sk : hs->e_sk, theirs = init ? hs->re : hs->rs;
		break;
	}
	hs->pk_ops++;
	/* libsodium refuses a result of all zeros: a low-order public key. */
	if (crypto_scalarmult_curve25519(shared, mine, theirs) != 0) {
		rc = ferry_errf(FERRY_EAUTH,
				"handshake message %d: the peer sent a low-order "
				"public key",
				hs->msg + 1);
		goto out;
	}
	mix_key(hs, shared, DHLEN);
	rc = 0;
out:
	sodium_memzero(shared, sizeof(shared));
	return rc;
}

/* Bytes of handshake message msg besides its payload's plaintext (no prefix). */
static size_t msg_overhead(int msg)
{
	static const size_t overhead[3] = {
	    DHLEN + SESSION_TAG_LEN,		 /* e, payload tag */
	    DHLEN + DHLEN + 2 * SESSION_TAG_LEN, /* e, s, tags */
	    DHLEN + 2 * SESSION_TAG_LEN,	 /* s, tags */
	};

	return overhead[msg];
}

/* Bounds of the payload plaintext of message msg. */
static size_t payload_min(const struct session_hs *hs, int msg)
{
	return msg == 0 && !hs->raw ? HS_MSG1_PAYLOAD : 0;
}

static size_t payload_max(const struct session_hs *hs, int msg)
{
	return msg == 0 && !hs->raw ? HS_MSG1_PAYLOAD : SESSION_HELLO_MAX;
}

static int fail(struct session_hs *hs, int rc)
{
	hs->failed = true;
	return rc;
}

int session_hs_write(struct session_hs *hs, const uint8_t *payload, size_t plen, uint8_t *out,
		     size_t cap, size_t *outlen)
{
	uint8_t msg1[HS_MSG1_PAYLOAD];
	uint8_t *p = out + HS_PREFIX;
	int rc;

	*outlen = 0;
	if (hs->failed)
		return ferry_errf(FERRY_EINVAL, "handshake: it failed earlier");
	if (session_hs_step(hs) != SESSION_HS_WRITE)
		return ferry_errf(FERRY_EINVAL,
				  "handshake: not this side's turn to write message %d",
				  hs->msg + 1);
	if (hs->msg == 0 && !hs->raw) {
		if (plen != 0)
			return ferry_errf(FERRY_EINVAL, "handshake message 1 takes no payload");
		put_be16(msg1, SESSION_HS_VERSION);
		put_be16(msg1 + 2, 0);
		put_be64(msg1 + 4, hs->now);
		payload = msg1;
		plen = sizeof(msg1);
	} else if (plen > SESSION_HELLO_MAX) {
		return ferry_errf(FERRY_EINVAL, "handshake payload of %zu bytes exceeds %d", plen,
				  SESSION_HELLO_MAX);
	}
	if (cap < HS_PREFIX + msg_overhead(hs->msg) + plen)
		return ferry_errf(FERRY_EINVAL, "handshake: output buffer of %zu bytes too small",
				  cap);

	for (const enum token *t = pattern[hs->msg]; *t != T_END; t++) {
		switch (*t) {
		case T_PSK:
			mix_key_and_hash(hs, hs->psk, SESSION_KEY_LEN);
			break;
		case T_E:
			if (!hs->fixed_e)
				randombytes_buf(hs->e_sk, DHLEN);
			crypto_scalarmult_curve25519_base(hs->e_pk, hs->e_sk);
			hs->pk_ops++;
			memcpy(p, hs->e_pk, DHLEN);
			p += DHLEN;
			mix_hash(hs, hs->e_pk, DHLEN);
			mix_key(hs, hs->e_pk, DHLEN); /* psk handshakes also MixKey(e) */
			break;
		case T_S:
			p += encrypt_and_hash(hs, hs->s_pk, DHLEN, p);
			break;
		default:
			rc = dh_token(hs, *t);
			if (rc != 0)
				return fail(hs, rc);
			break;
		}
	}
	p += encrypt_and_hash(hs, payload, plen, p);
	put_be16(out, (uint16_t)(p - out - HS_PREFIX));
	*outlen = (size_t)(p - out);
	hs->msg++;
	sodium_memzero(msg1, sizeof(msg1));
	return 0;
}

/* Check message 1's payload: version and time. */
static int check_msg1(struct session_hs *hs, const uint8_t *pl)
{
	uint16_t version = get_be16(pl);
	uint64_t t = get_be64(pl + 4);

	/* The flags (pl[2..4)) are reserved: ignored, so a later version may set them. */
	if (version != SESSION_HS_VERSION)
		return ferry_errf(FERRY_EPROTO, "handshake message 1: unsupported version %u",
				  version);
	if (t > hs->now + SESSION_CLOCK_SKEW_MAX || t + SESSION_CLOCK_SKEW_MAX < hs->now)
		return ferry_errf(FERRY_EPROTO,
				  "handshake message 1: the peer's clock is %lld s %s this node's "
				  "(limit %d s): check the clocks of both nodes",
				  (long long)(t > hs->now ? t - hs->now : hs->now - t),
				  t > hs->now ? "ahead of" : "behind", SESSION_CLOCK_SKEW_MAX);
	return 0;
}

int session_hs_read(struct session_hs *hs, const uint8_t *in, size_t n, size_t *consumed,
		    uint8_t *payload, size_t cap, size_t *plen)
{
	uint8_t msg1[HS_MSG1_PAYLOAD];
	const uint8_t *p, *end;
	size_t len, min, max, pl;
	int rc, msg = hs->msg;

	*consumed = 0;
	*plen = 0;
	if (hs->failed)
		return ferry_errf(FERRY_EINVAL, "handshake: it failed earlier");
	if (session_hs_step(hs) != SESSION_HS_READ)
		return ferry_errf(FERRY_EINVAL,
				  "handshake: not this side's turn to read message %d", msg + 1);
	if (n < HS_PREFIX)
		return FERRY_EAGAIN;
	len = get_be16(in);
	min = msg_overhead(msg) + payload_min(hs, msg);
	max = msg_overhead(msg) + payload_max(hs, msg);
	if (len < min || len > max)
		return fail(hs, ferry_errf(FERRY_EPROTO,
					   "handshake message %d: length %zu outside %zu..%zu",
					   msg + 1, len, min, max));
	pl = len - msg_overhead(msg);
	if (!(msg == 0 && !hs->raw) && cap < pl)
		return ferry_errf(FERRY_EINVAL,
				  "handshake message %d: payload of %zu bytes does not fit %zu",
				  msg + 1, pl, cap);
	if (n < HS_PREFIX + len)
		return FERRY_EAGAIN;

	p = in + HS_PREFIX;
	end = p + len;
	for (const enum token *t = pattern[msg]; *t != T_END; t++) {
		switch (*t) {
		case T_PSK:
			mix_key_and_hash(hs, hs->psk, SESSION_KEY_LEN);
			break;
		case T_E:
			memcpy(hs->re, p, DHLEN);
			p += DHLEN;
			mix_hash(hs, hs->re, DHLEN);
			mix_key(hs, hs->re, DHLEN);
			break;
		case T_S:
			rc = decrypt_and_hash(hs, p, DHLEN + SESSION_TAG_LEN, hs->rs);
			if (rc != 0)
				goto auth_failed;
			p += DHLEN + SESSION_TAG_LEN;
			hs->has_rs = true;
			break;
		default:
			rc = dh_token(hs, *t);
			if (rc != 0)
				return fail(hs, rc);
			break;
		}
	}
	if (msg == 0 && !hs->raw) {
		/*
		 * Message 1 is fixed-size and its AEAD tag is the first thing checked:
		 * no public-key work has happened yet, and none happens on failure.
		 */
		rc = decrypt_and_hash(hs, p, (size_t)(end - p), msg1);
		if (rc != 0)
			goto auth_failed;
		rc = check_msg1(hs, msg1);
		sodium_memzero(msg1, sizeof(msg1));
		if (rc != 0)
			return fail(hs, rc);
	} else {
		rc = decrypt_and_hash(hs, p, (size_t)(end - p), payload);
		if (rc != 0)
			goto auth_failed;
		*plen = pl;
	}
	*consumed = HS_PREFIX + len;
	hs->msg++;
	return 0;

auth_failed:
	return fail(hs,
		    ferry_errf(FERRY_EAUTH,
			       msg == 0 ? "handshake message 1 does not authenticate: the peer "
					  "does not hold this network's key, or the message was "
					  "changed on the way"
					: "handshake message %d does not authenticate: the message "
					  "was changed on the way, or the peer's network key "
					  "differs",
			       msg + 1));
}

int session_hs_split(struct session_hs *hs, struct session_keys *keys)
{
	uint8_t k1[HASHLEN], k2[HASHLEN];

	if (session_hs_step(hs) != SESSION_HS_DONE)
		return ferry_errf(FERRY_EINVAL, "handshake: split before the handshake finished");
	hkdf(hs->ck, NULL, 0, k1, k2, NULL);
	/* k1 protects initiator -> responder, k2 responder -> initiator. */
	if (hs->role == SESSION_INITIATOR) {
		memcpy(keys->tx, k1, SESSION_KEY_LEN);
		memcpy(keys->rx, k2, SESSION_KEY_LEN);
	} else {
		memcpy(keys->tx, k2, SESSION_KEY_LEN);
		memcpy(keys->rx, k1, SESSION_KEY_LEN);
	}
	memcpy(keys->hash, hs->h, SESSION_HASH_LEN);
	sodium_memzero(k1, sizeof(k1));
	sodium_memzero(k2, sizeof(k2));
	return 0;
}

/* ---- framing ---- */

struct session_tx *session_tx_new(const uint8_t key[static SESSION_KEY_LEN])
{
	struct session_tx *tx = xcalloc(1, sizeof(*tx));

	init_sodium();
	memcpy(tx->key, key, SESSION_KEY_LEN);
	return tx;
}

void session_tx_free(struct session_tx *tx)
{
	if (tx == NULL)
		return;
	sodium_memzero(tx, sizeof(*tx));
	free(tx);
}

size_t session_sealed_len(size_t len)
{
	size_t frames = len == 0 ? 1 : (len - 1) / SESSION_FRAME_MAX + 1;

	return len + frames * SESSION_FRAME_OVERHEAD;
}

/*
 * Seal one frame: header into hdr, ciphertext of in[0..len) into ct (may equal
 * in), tag after it. The header is the associated data, so its length and its
 * "more" bit are authenticated with the frame.
 */
static int seal_frame(struct session_tx *tx, uint8_t *hdr, uint8_t *ct, const uint8_t *in,
		      size_t len, bool more)
{
	uint8_t nonce[12];

	/* 2^64 - 1 is reserved by Noise; at one frame a nanosecond it is 584 years away. */
	if (tx->n == UINT64_MAX)
		return ferry_errf(FERRY_EPROTO, "session: frame counter exhausted");
	put_be32(hdr, (more ? SESSION_FRAME_MORE : 0) | (uint32_t)(len + SESSION_TAG_LEN));
	nonce_of(nonce, tx->n++);
	crypto_aead_chacha20poly1305_ietf_encrypt_detached(ct, ct + len, NULL, in, len, hdr,
							   SESSION_FRAME_HDR, NULL, nonce, tx->key);
	return 0;
}

int session_seal(struct session_tx *tx, const void *msg, size_t len, uint8_t *out, size_t cap,
		 size_t *outlen)
{
	const uint8_t *in = msg;
	size_t need, off = 0;
	uint8_t *o = out;
	int rc;

	*outlen = 0;
	if (len > SIZE_MAX / 2)
		return ferry_errf(FERRY_EINVAL, "session: message of %zu bytes is too large", len);
	need = session_sealed_len(len);
	if (cap < need)
		return ferry_errf(FERRY_EINVAL,
				  "session: %zu bytes of output for a message that needs %zu", cap,
				  need);
	do {
		size_t chunk = MIN(len - off, (size_t)SESSION_FRAME_MAX);
		bool more = off + chunk < len;

		rc = seal_frame(tx, o, o + SESSION_FRAME_HDR, in + off, chunk, more);
		if (rc != 0)
			return rc;
		o += chunk + SESSION_FRAME_OVERHEAD;
		off += chunk;
	} while (off < len);
	*outlen = need;
	return 0;
}

int session_seal_frame_inplace(struct session_tx *tx, uint8_t *frame, size_t len, bool more)
{
	if (len > SESSION_FRAME_MAX || (more && len == 0))
		return ferry_errf(FERRY_EINVAL, "session: cannot seal a frame of %zu bytes%s", len,
				  more ? " with the more bit" : "");
	return seal_frame(tx, frame, frame + SESSION_FRAME_HDR, frame + SESSION_FRAME_HDR, len,
			  more);
}

struct session_rx *session_rx_new(const uint8_t key[static SESSION_KEY_LEN], size_t msg_cap)
{
	struct session_rx *rx = xcalloc(1, sizeof(*rx));

	init_sodium();
	memcpy(rx->key, key, SESSION_KEY_LEN);
	/* Above this the buffer arithmetic could overflow; no message is that large. */
	rx->msg_cap = MIN(msg_cap, SIZE_MAX / 2);
	return rx;
}

void session_rx_set_big(struct session_rx *rx, size_t big_cap,
			int (*grant)(void *ctx, const uint8_t *head, size_t len), void *ctx)
{
	/* Never below msg_cap, so the cap arithmetic cannot wrap. */
	rx->big_cap = MAX(rx->msg_cap, MIN(big_cap, SIZE_MAX / 2));
	rx->grant = grant;
	rx->grant_ctx = ctx;
}

void session_rx_free(struct session_rx *rx)
{
	if (rx == NULL)
		return;
	if (rx->buf != NULL) {
		sodium_memzero(rx->buf, rx->buf_cap);
		free(rx->buf);
	}
	sodium_memzero(rx, sizeof(*rx));
	free(rx);
}

bool session_rx_idle(const struct session_rx *rx)
{
	return rx->hdr_have == 0 && !rx->in_frame && (rx->msg_len == 0 || rx->delivered);
}

static int rx_fail(struct session_rx *rx, int rc)
{
	rx->err = rc;
	return rc;
}

/* Parse the complete header in rx->hdr and make room for the frame. */
static int rx_begin_frame(struct session_rx *rx)
{
	uint32_t v = get_be32(rx->hdr);
	size_t need, cap;

	rx->more = (v & SESSION_FRAME_MORE) != 0;
	rx->ct_len = v & ~SESSION_FRAME_MORE;
	if (rx->ct_len < SESSION_TAG_LEN || rx->ct_len > SESSION_FRAME_MAX + SESSION_TAG_LEN)
		return rx_fail(rx,
			       ferry_errf(FERRY_EPROTO, "session: frame length %zu outside %d..%d",
					  rx->ct_len, SESSION_TAG_LEN,
					  SESSION_FRAME_MAX + SESSION_TAG_LEN));
	if (rx->more && rx->ct_len == SESSION_TAG_LEN)
		return rx_fail(rx,
			       ferry_errf(FERRY_EPROTO, "session: empty frame with the more bit"));
	cap = rx->big ? rx->big_cap : rx->msg_cap;
	if (rx->ct_len - SESSION_TAG_LEN > cap - rx->msg_len && !rx->big && rx->grant != NULL &&
	    rx->ct_len - SESSION_TAG_LEN <= rx->big_cap - rx->msg_len) {
		/* Only the owner knows which messages may be large: ask it, showing the start. */
		int rc = rx->grant(rx->grant_ctx, rx->buf, rx->msg_len);

		if (rc < 0)
			return rx_fail(rx, rc);
		rx->big = true;
		cap = rx->big_cap;
	}
	if (rx->ct_len - SESSION_TAG_LEN > cap - rx->msg_len)
		return rx_fail(rx, ferry_errf(FERRY_ETOOBIG,
					      "session: message of more than %zu bytes exceeds "
					      "the cap of %zu",
					      rx->msg_len + rx->ct_len - SESSION_TAG_LEN, cap));
	need = rx->msg_len + rx->ct_len;
	if (need > rx->buf_cap) {
		/* Grow geometrically, but never past what the cap allows. */
		cap = MAX(need, MIN(2 * rx->buf_cap, cap + SESSION_TAG_LEN));

		rx->buf = xrealloc(rx->buf, cap);
		rx->buf_cap = cap;
	}
	rx->in_frame = true;
	rx->ct_have = 0;
	return 0;
}

/* Decrypt the frame whose ciphertext is at ct into rx->buf + rx->msg_len. */
static int rx_open_frame(struct session_rx *rx, const uint8_t *ct)
{
	size_t plen = rx->ct_len - SESSION_TAG_LEN;
	uint8_t nonce[12];

	nonce_of(nonce, rx->n);
	if (crypto_aead_chacha20poly1305_ietf_decrypt_detached(
		rx->buf + rx->msg_len, NULL, ct, plen, ct + plen, rx->hdr, SESSION_FRAME_HDR, nonce,
		rx->key) != 0)
		return rx_fail(rx, ferry_errf(FERRY_EAUTH,
					      "session: frame %llu does not authenticate: it was "
					      "changed, replayed, reordered or one was dropped",
					      (unsigned long long)rx->n));
	rx->n++;
	rx->msg_len += plen;
	rx->in_frame = false;
	rx->hdr_have = 0;
	return 0;
}

int session_rx_feed(struct session_rx *rx, const uint8_t *in, size_t n, size_t *consumed,
		    const uint8_t **msg, size_t *len)
{
	static const uint8_t empty[1];
	const uint8_t *p = in, *end = in + n;
	int rc;

	*consumed = 0;
	*msg = NULL;
	*len = 0;
	if (rx->err != 0)
		return ferry_errf(rx->err, "session: the stream failed earlier");
	if (rx->delivered) {
		rx->delivered = false;
		rx->big = false;
		rx->msg_len = 0;
		if (rx->buf_cap > RX_KEEP) {
			sodium_memzero(rx->buf, rx->buf_cap);
			free(rx->buf);
			rx->buf = NULL;
			rx->buf_cap = 0;
		}
	}
	while (p < end) {
		if (!rx->in_frame) {
			size_t take = MIN(SESSION_FRAME_HDR - rx->hdr_have, (size_t)(end - p));

			memcpy(rx->hdr + rx->hdr_have, p, take);
			rx->hdr_have += take;
			p += take;
			if (rx->hdr_have < SESSION_FRAME_HDR)
				break;
			rc = rx_begin_frame(rx);
			if (rc != 0)
				return rc;
			if ((size_t)(end - p) >= rx->ct_len) {
				/* The whole frame is here: decrypt it straight from the input. */
				rc = rx_open_frame(rx, p);
				if (rc != 0)
					return rc;
				p += rx->ct_len;
			}
		} else {
			size_t take = MIN(rx->ct_len - rx->ct_have, (size_t)(end - p));
			uint8_t *ct = rx->buf + rx->msg_len;

			memcpy(ct + rx->ct_have, p, take);
			rx->ct_have += take;
			p += take;
			if (rx->ct_have < rx->ct_len)
				break;
			rc = rx_open_frame(rx, ct);
			if (rc != 0)
				return rc;
		}
		if (!rx->in_frame && rx->hdr_have == 0 && !rx->more) {
			rx->delivered = true;
			*msg = rx->msg_len > 0 ? rx->buf : empty;
			*len = rx->msg_len;
			*consumed = (size_t)(p - in);
			return 1;
		}
	}
	*consumed = (size_t)(p - in);
	return 0;
}
