/*
 * Fuzz the frame decoder (session_rx_feed) with a fixed key.
 *
 * Input: u8 mode, u8 message cap (an index into caps[]), u8 seed of the
 * sizes of the pieces the stream is fed in (as a socket would cut it), then
 *   mode even: the rest is the stream, arbitrary bytes;
 *   mode odd:  the rest is a script that builds a stream the decoder must
 *              read back exactly. Each op is a byte (mod 5) and its operands:
 *     0 u8 L, L bytes    seal one message of those bytes (session_seal)
 *     1 u16 K            seal one message of K * 40 pseudo-random bytes
 *                        (up to 2.6 MB: many frames, the large-buffer paths)
 *     2 u8 more, u8 L, L bytes
 *                        seal one frame in place (session_seal_frame_inplace)
 *                        with the "more" bit from the low bit of more:
 *                        messages of frames of any size
 *     3 u16 back, u8 xor change a byte already in the stream
 *     4 u8 L, L bytes    put raw bytes into the stream
 * Every message the decoder delivers must be the next one sealed, and must
 * come from before the first changed or raw byte; it must stop with an
 * error only at a change, at raw bytes or at a message over the cap; given
 * an unchanged stream of messages under the cap, it must deliver them all.
 */
#include "config.h"

#include "ferry/error.h"
#include "ferry/util.h"
#include "fuzz.h"

#define STREAM_MAX (4u << 20)
#define MSGS_MAX   4096

static const size_t caps[] = {
    SESSION_MSG_MAX_DEFAULT, 0,	      1, 16, 100, SESSION_FRAME_MAX, SESSION_FRAME_MAX + 1,
    2 * SESSION_FRAME_MAX,   1u << 20};

struct expect {
	size_t end; /* where its last frame ends in the stream */
	size_t len;
	const uint8_t *data; /* its bytes: in big[], or malloc'd if owned */
	bool owned;
};

struct script {
	uint8_t *stream;
	uint8_t *sealed; /* the stream as sealed, before any byte was changed */
	size_t len;
	size_t raw; /* offset of the first raw byte, or SIZE_MAX */
	size_t bad; /* offset of the first changed or raw byte, or SIZE_MAX */
	struct expect msg[MSGS_MAX];
	size_t nmsg;	    /* complete messages */
	uint8_t *open_data; /* the bytes so far of a message whose last frame is not sealed */
	size_t open_len;
	bool open;
};

#define BIG_MAX (65535u * 40)

static uint8_t key[SESSION_KEY_LEN];
static struct script sc;
/* Pseudo-random bytes, made once, that large messages are cut from. */
static uint8_t big[BIG_MAX + 256];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_key(key, FUZZ_NETKEY);
	fuzz_fill(big, sizeof(big), 1);
	sc.stream = malloc(STREAM_MAX);
	sc.sealed = malloc(STREAM_MAX);
	if (sc.stream == NULL || sc.sealed == NULL)
		abort();
	return 0;
}

static void add_msg(const uint8_t *data, size_t len, bool owned)
{
	struct expect *e = &sc.msg[sc.nmsg++];

	e->end = sc.len;
	e->data = data;
	e->len = len;
	e->owned = owned;
}

static uint8_t *dup_bytes(const uint8_t *p, size_t n)
{
	uint8_t *d = malloc(n + 1);

	FUZZ_CHECK(d != NULL);
	memcpy(d, p, n);
	return d;
}

/* Seal data[0..n) as one whole message: session_seal(). */
static void op_message(struct session_tx *tx, const uint8_t *data, size_t n, bool in_big)
{
	size_t need = session_sealed_len(n), out, none;

	if (sc.open || sc.nmsg == MSGS_MAX || 2 * need > STREAM_MAX - sc.len)
		return;
	FUZZ_CHECK(session_seal(tx, data, n, sc.stream + sc.len, STREAM_MAX - sc.len, &out) == 0);
	FUZZ_CHECK(out == need);
	/* Too little room is refused before anything is written. */
	FUZZ_CHECK(session_seal(tx, data, n, sc.stream + sc.len + out, need - 1, &none) ==
		   FERRY_EINVAL);
	FUZZ_CHECK(none == 0);
	memcpy(sc.sealed + sc.len, sc.stream + sc.len, out);
	sc.len += out;
	add_msg(in_big ? data : dup_bytes(data, n), n, !in_big);
}

/* Seal one frame in place; a frame without the more bit ends the message. */
static void op_frame(struct session_tx *tx, bool more, const uint8_t *data, size_t n)
{
	uint8_t *f = sc.stream + sc.len;

	if (n + SESSION_FRAME_OVERHEAD > STREAM_MAX - sc.len || (!sc.open && sc.nmsg == MSGS_MAX))
		return;
	memcpy(f + SESSION_FRAME_HDR, data, n);
	if (session_seal_frame_inplace(tx, f, n, more) != 0) {
		FUZZ_CHECK(more && n == 0);
		return;
	}
	if (!sc.open) {
		sc.open = true;
		sc.open_len = 0;
		sc.open_data = NULL;
	}
	memcpy(sc.sealed + sc.len, f, n + SESSION_FRAME_OVERHEAD);
	sc.len += n + SESSION_FRAME_OVERHEAD;
	sc.open_data = realloc(sc.open_data, sc.open_len + n + 1);
	FUZZ_CHECK(sc.open_data != NULL);
	memcpy(sc.open_data + sc.open_len, data, n);
	sc.open_len += n;
	if (!more) {
		add_msg(sc.open_data, sc.open_len, true);
		sc.open = false;
		sc.open_data = NULL;
		sc.open_len = 0;
	}
}

static void build(struct fuzz_in *in)
{
	struct session_tx *tx = session_tx_new(key);

	while (in->n > 0) {
		uint8_t op = fuzz_u8(in);
		const uint8_t *p;
		size_t n;

		switch (op % 5) {
		case 0:
			p = fuzz_bytes(in, fuzz_u8(in), &n);
			op_message(tx, p, n, false);
			break;
		case 1: {
			uint16_t k = fuzz_u16(in);

			op_message(tx, big + k % 256, (size_t)k * 40, true);
			break;
		}
		case 2: {
			bool more = fuzz_u8(in) & 1;

			p = fuzz_bytes(in, fuzz_u8(in), &n);
			op_frame(tx, more, p, n);
			break;
		}
		case 3: {
			size_t back = fuzz_u16(in);
			uint8_t x = fuzz_u8(in);

			/* Two changes of one byte may cancel out: the end compares. */
			if (sc.len > 0)
				sc.stream[sc.len - 1 - back % sc.len] ^= x;
			break;
		}
		default:
			p = fuzz_bytes(in, fuzz_u8(in), &n);
			if (n > 0 && n <= STREAM_MAX - sc.len) {
				memcpy(sc.stream + sc.len, p, n);
				memcpy(sc.sealed + sc.len, p, n);
				sc.raw = MIN(sc.raw, sc.len);
				sc.len += n;
			}
			break;
		}
	}
	session_tx_free(tx);
	sc.bad = sc.raw;
	for (size_t i = 0; i < MIN(sc.len, sc.raw); i++) {
		if (sc.stream[i] != sc.sealed[i]) {
			sc.bad = i;
			break;
		}
	}
}

/* Feed the stream in pieces; check each delivered message against the script. */
static void feed(size_t cap, uint8_t seed, bool scripted)
{
	struct session_rx *rx = session_rx_new(key, cap);
	uint64_t s = seed + 1;
	size_t off = 0, got = 0;
	int rc = 0;

	while (off < sc.len) {
		size_t piece = (size_t)(fuzz_rand(&s) % 70000) + 1;
		size_t used = 0, piece_off = 0;
		const uint8_t *msg;
		size_t len;

		piece = MIN(piece, sc.len - off);
		/* Call again with the rest until the piece is used up, as the header says. */
		while (piece_off < piece) {
			rc = session_rx_feed(rx, sc.stream + off + piece_off, piece - piece_off,
					     &used, &msg, &len);
			if (rc < 0)
				break;
			FUZZ_CHECK(used <= piece - piece_off);
			piece_off += used;
			if (rc == 0) {
				FUZZ_CHECK(piece_off == piece);
				break;
			}
			FUZZ_CHECK(msg != NULL && len <= cap);
			FUZZ_CHECK(session_rx_idle(rx));
			if (scripted) {
				struct expect *e = &sc.msg[got];

				FUZZ_CHECK(got < sc.nmsg);
				FUZZ_CHECK(e->end <= sc.bad);
				FUZZ_CHECK(off + piece_off == e->end);
				FUZZ_CHECK(len == e->len && memcmp(msg, e->data, len) == 0);
			}
			got++;
		}
		if (rc < 0)
			break;
		off += piece;
	}
	if (rc < 0) {
		const uint8_t *msg;
		size_t used, len;

		/* Errors are final. */
		FUZZ_CHECK(session_rx_feed(rx, sc.stream, sc.len, &used, &msg, &len) == rc);
		if (scripted) {
			/*
			 * Where the next message's frames (or, after the last one, the
			 * rest of the stream) hold no change and no raw bytes, only the
			 * cap can stop the decoder.
			 */
			bool last = got == sc.nmsg;
			size_t end = last ? sc.len : sc.msg[got].end;
			size_t size = last ? sc.open_len : sc.msg[got].len;

			if (end <= sc.bad)
				FUZZ_CHECK(rc == FERRY_ETOOBIG && size > cap);
		}
	} else if (scripted && sc.bad == SIZE_MAX) {
		/* An honest stream under the cap is read whole; a message left open stays buffered.
		 */
		FUZZ_CHECK(got == sc.nmsg);
		FUZZ_CHECK(session_rx_idle(rx) == !sc.open);
	}
	session_rx_free(rx);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = {data, size};
	uint8_t mode = fuzz_u8(&in);
	size_t cap = caps[fuzz_u8(&in) % ARRAY_SIZE(caps)];
	uint8_t seed = fuzz_u8(&in);
	bool scripted = mode % 2 == 1;

	sc.len = 0;
	sc.nmsg = 0;
	sc.raw = SIZE_MAX;
	sc.bad = SIZE_MAX;
	sc.open = false;
	sc.open_data = NULL;
	sc.open_len = 0;
	if (scripted) {
		build(&in);
	} else {
		memcpy(sc.stream, in.p, MIN(in.n, (size_t)STREAM_MAX));
		sc.len = MIN(in.n, (size_t)STREAM_MAX);
	}
	feed(cap, seed, scripted);
	for (size_t i = 0; i < sc.nmsg; i++)
		if (sc.msg[i].owned)
			free((void *)sc.msg[i].data);
	free(sc.open_data);
	return 0;
}
