/*
 * Fuzz the handshake reader (session_hs_read) on both sides. Every key,
 * ephemeral key and the clock are fixed (fuzz.h), so a run is deterministic
 * and the seeds made by gen_corpus authenticate.
 *
 * The first input byte picks a mode; the next two are a split point: the message
 * is offered first cut short there, then whole, as bytes arrive off a socket.
 *   0  a real responder reads the rest as message 1;
 *   1  a real responder reads a message 1 that authenticates, made from the
 *      next 12 bytes as its payload (version, flags, time) and followed by the
 *      rest as the peer's first frames: the version and clock checks;
 *   2  an initiator that sent message 1 reads the rest as message 2
 *      (the next byte picks the payload buffer's size);
 *   3  a responder that read message 1 and sent message 2 reads the rest as
 *      message 3 (the next byte picks the payload buffer's size);
 *   4  a whole handshake: u16 length of the responder's hello, u16 position
 *      and u8 xor of one changed byte in the three messages (xor 0: none),
 *      then the hellos. Unchanged, both sides must finish with the same keys
 *      and each must read the other's hello; changed, the side that reads
 *      the changed message must not accept it.
 */
#include "config.h"

#include "ferry/error.h"
#include "ferry/util.h"
#include "fuzz.h"

/* Payload buffer sizes the caller may offer: too small ones must be refused, not overrun. */
static const size_t caps[] = {SESSION_HELLO_MAX, 0, 1, 15, 16, 100, 4095};

static uint8_t payload[SESSION_HELLO_MAX];

/* What a read promises, whatever the input. */
static void check_read(struct session_hs *hs, enum session_hs_step before, int rc, size_t n,
		       size_t cap, size_t consumed, size_t plen)
{
	if (rc == 0) {
		FUZZ_CHECK(consumed >= 2 && consumed <= n && plen <= cap);
		FUZZ_CHECK(session_hs_step(hs) != before);
		return;
	}
	FUZZ_CHECK(consumed == 0 && plen == 0);
	if (rc == FERRY_EAGAIN || rc == FERRY_EINVAL)
		FUZZ_CHECK(session_hs_step(hs) == before);
	else
		FUZZ_CHECK(session_hs_step(hs) == SESSION_HS_FAILED);
}

/*
 * Offer wire[0..n) cut short at split, then whole, as an I/O layer would:
 * cut short, the reader must ask for more (or already have a whole message,
 * or refuse it) without changing its state.
 */
static int read_split(struct session_hs *hs, const uint8_t *wire, size_t n, size_t split,
		      size_t cap, size_t *consumed, size_t *plen)
{
	enum session_hs_step before = session_hs_step(hs);
	int rc;

	if (split < n) {
		rc = session_hs_read(hs, wire, split, consumed, payload, cap, plen);
		check_read(hs, before, rc, split, cap, *consumed, *plen);
		if (rc != FERRY_EAGAIN)
			return rc;
	}
	rc = session_hs_read(hs, wire, n, consumed, payload, cap, plen);
	check_read(hs, before, rc, n, cap, *consumed, *plen);
	return rc;
}

/* Write the next message of hs into out; the fixed keys never make this fail. */
static size_t write_msg(struct session_hs *hs, const uint8_t *pl, size_t plen, uint8_t *out)
{
	size_t len;

	FUZZ_CHECK(session_hs_write(hs, pl, plen, out, SESSION_HS_MSG_MAX, &len) == 0);
	return len;
}

static void responder_msg1(struct fuzz_in *in, size_t split)
{
	struct session_hs *hs = fuzz_hs_responder();
	size_t consumed, plen;

	read_split(hs, in->p, in->n, split, sizeof(payload), &consumed, &plen);
	/* Message 1 alone never costs the responder public-key work. */
	FUZZ_CHECK(session__hs_pk_ops(hs) == 0);
	session_hs_free(hs);
}

static void responder_msg1_payload(struct fuzz_in *in, size_t split)
{
	struct session_hs *init = fuzz_hs_fixed(SESSION_INITIATOR), *resp = fuzz_hs_responder();
	uint8_t wire[SESSION_HS_MSG_MAX + 256], p1[12] = {0};
	size_t got, len, extra, consumed, plen;
	const uint8_t *pl = fuzz_bytes(in, sizeof(p1), &got), *rest;
	int rc;

	memcpy(p1, pl, got);
	len = write_msg(init, p1, sizeof(p1), wire);
	rest = fuzz_bytes(in, sizeof(wire) - len, &extra);
	memcpy(wire + len, rest, extra);
	rc = read_split(resp, wire, len + extra, split, sizeof(payload), &consumed, &plen);
	if (rc == 0)
		FUZZ_CHECK(consumed == len && plen == 0);
	FUZZ_CHECK(session__hs_pk_ops(resp) == 0);
	session_hs_free(init);
	session_hs_free(resp);
}

static void initiator_msg2(struct fuzz_in *in, size_t split)
{
	struct session_hs *hs = fuzz_hs_fixed(SESSION_INITIATOR);
	uint8_t wire[SESSION_HS_MSG_MAX], p1[12];
	size_t cap = caps[fuzz_u8(in) % ARRAY_SIZE(caps)], consumed, plen;

	fuzz_msg1_payload(p1, FUZZ_NOW);
	write_msg(hs, p1, sizeof(p1), wire);
	if (read_split(hs, in->p, in->n, split, cap, &consumed, &plen) == 0)
		FUZZ_CHECK(session_hs_remote_static(hs) != NULL);
	session_hs_free(hs);
}

static void responder_msg3(struct fuzz_in *in, size_t split)
{
	struct session_hs *init = fuzz_hs_fixed(SESSION_INITIATOR);
	struct session_hs *resp = fuzz_hs_fixed(SESSION_RESPONDER);
	uint8_t wire[SESSION_HS_MSG_MAX], p1[12];
	size_t cap = caps[fuzz_u8(in) % ARRAY_SIZE(caps)], len, consumed, plen;

	fuzz_msg1_payload(p1, FUZZ_NOW);
	len = write_msg(init, p1, sizeof(p1), wire);
	FUZZ_CHECK(session_hs_read(resp, wire, len, &consumed, payload, sizeof(payload), &plen) ==
		   0);
	write_msg(resp, NULL, 0, wire);
	if (read_split(resp, in->p, in->n, split, cap, &consumed, &plen) == 0) {
		struct session_keys keys;

		FUZZ_CHECK(session_hs_remote_static(resp) != NULL);
		FUZZ_CHECK(session_hs_split(resp, &keys) == 0);
		session_keys_wipe(&keys);
	}
	session_hs_free(init);
	session_hs_free(resp);
}

static void whole(struct fuzz_in *in, size_t split)
{
	struct session_hs *hs[2] = {fuzz_hs_fixed(SESSION_INITIATOR),
				    fuzz_hs_fixed(SESSION_RESPONDER)};
	size_t hello2_len = fuzz_u16(in), flip_at = fuzz_u16(in), len[3], off = 0;
	uint8_t flip = fuzz_u8(in), p1[12], wire[3][SESSION_HS_MSG_MAX];
	const uint8_t *hello[3];
	size_t hello_len[3];
	struct session_keys keys[2];
	bool failed = false;

	fuzz_msg1_payload(p1, FUZZ_NOW);
	hello[0] = p1;
	hello_len[0] = sizeof(p1);
	hello[1] = fuzz_bytes(in, MIN(hello2_len, (size_t)SESSION_HELLO_MAX), &hello_len[1]);
	hello[2] = fuzz_bytes(in, SESSION_HELLO_MAX, &hello_len[2]);
	for (int m = 0; m < 3 && !failed; m++) {
		struct session_hs *w = hs[m % 2], *r = hs[1 - m % 2];
		size_t consumed, plen;
		bool changed = false;
		int rc;

		len[m] = write_msg(w, hello[m], hello_len[m], wire[m]);
		if (flip != 0 && flip_at >= off && flip_at < off + len[m]) {
			wire[m][flip_at - off] ^= flip;
			changed = true;
		}
		off += len[m];
		rc = read_split(r, wire[m], len[m], split, sizeof(payload), &consumed, &plen);
		if (changed) {
			FUZZ_CHECK(rc != 0);
			failed = true;
			continue;
		}
		FUZZ_CHECK(rc == 0 && consumed == len[m]);
		FUZZ_CHECK(plen == hello_len[m] && memcmp(payload, hello[m], plen) == 0);
	}
	if (!failed) {
		FUZZ_CHECK(session_hs_split(hs[0], &keys[0]) == 0);
		FUZZ_CHECK(session_hs_split(hs[1], &keys[1]) == 0);
		FUZZ_CHECK(memcmp(keys[0].tx, keys[1].rx, SESSION_KEY_LEN) == 0);
		FUZZ_CHECK(memcmp(keys[0].rx, keys[1].tx, SESSION_KEY_LEN) == 0);
		FUZZ_CHECK(memcmp(keys[0].hash, keys[1].hash, SESSION_HASH_LEN) == 0);
		session_keys_wipe(&keys[0]);
		session_keys_wipe(&keys[1]);
	}
	session_hs_free(hs[0]);
	session_hs_free(hs[1]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = {data, size};
	uint8_t mode = fuzz_u8(&in);
	size_t split = fuzz_u16(&in);

	switch (mode % 5) {
	case 0:
		responder_msg1(&in, split);
		break;
	case 1:
		responder_msg1_payload(&in, split);
		break;
	case 2:
		initiator_msg2(&in, split);
		break;
	case 3:
		responder_msg3(&in, split);
		break;
	default:
		whole(&in, split);
		break;
	}
	return 0;
}
