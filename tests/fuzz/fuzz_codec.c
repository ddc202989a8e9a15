/*
 * Fuzz the chunk codec (codec_peek, codec_decode), and its encoders on any
 * data. The first input byte picks a mode (mod 4):
 *   0, 3  decode the rest as an encoded chunk, into a buffer of exactly the
 *      declared raw length, or of the maximum chunk size, or one byte short
 *      (the next byte picks which). What decodes must have the declared
 *      length, and must come back the same through its own codec's encoder
 *      and the automatic choice;
 *   1  encode the rest as a raw chunk with each codec and with the automatic
 *      choice, and decode it again: the same bytes, never longer than raw
 *      plus the header;
 *   2  the same for a chunk of up to CHUNK_MAX_SIZE bytes built from the
 *      input: u24 length, u8 shape (bit 0: elements of 2 or 4 bytes; bits
 *      1-4: which byte positions of an element get pseudo-random noise; bits
 *      5-7: a right shift of the length), then a pattern the chunk repeats. Such chunks have byte
 * planes of very different entropy, as model weights do, so every plane mode and both strides are
 * used. One codec_ctx serves every run, as one does a thread of the daemon.
 */
#include "config.h"

#include "ferry/chunker.h"
#include "ferry/codec.h"
#include "ferry/error.h"
#include "ferry/util.h"
#include "fuzz.h"

static struct codec_ctx *ctx;
static uint8_t *chunk, *enc, *dec;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	ctx = codec_ctx_new();
	chunk = malloc(CHUNK_MAX_SIZE);
	enc = malloc(codec_bound(CHUNK_MAX_SIZE));
	dec = malloc(CHUNK_MAX_SIZE);
	if (chunk == NULL || enc == NULL || dec == NULL)
		abort();
	return 0;
}

/* Encode raw[0..n) as tag (or the automatic choice, tag < 0), decode, compare. */
static void round_trip(const uint8_t *raw, size_t n, int tag)
{
	size_t len, out_len;
	int used;

	if (tag < 0)
		FUZZ_CHECK(codec_encode(ctx, raw, n, enc, &len) == 0);
	else
		FUZZ_CHECK(codec_encode_as(ctx, tag, raw, n, enc, &len) == 0);
	FUZZ_CHECK(len >= CODEC_HDR_LEN && len <= codec_bound(n));
	used = enc[0];
	FUZZ_CHECK(used == CODEC_RAW || used == tag || tag < 0);
	FUZZ_CHECK(codec_decode(ctx, enc, len, dec, n, &out_len) == 0);
	FUZZ_CHECK(out_len == n && memcmp(dec, raw, n) == 0);
}

static void round_trips(const uint8_t *raw, size_t n)
{
	for (int tag = -1; tag < CODEC__COUNT; tag++)
		round_trip(raw, n, tag);
}

static void decode(struct fuzz_in *in)
{
	uint8_t which = fuzz_u8(in);
	size_t declared = 0, cap, len;
	uint8_t *raw;
	int tag, rc;

	if (codec_peek(in->p, in->n, &tag, &declared) == 0)
		FUZZ_CHECK(tag >= 0 && tag < CODEC__COUNT && declared <= CHUNK_MAX_SIZE);
	cap = which % 3 == 0   ? declared
	      : which % 3 == 1 ? CHUNK_MAX_SIZE
			       : declared - (declared > 0);
	/* Exactly cap bytes, so a write past them is caught. */
	raw = malloc(cap > 0 ? cap : 1);
	FUZZ_CHECK(raw != NULL);
	rc = codec_decode(ctx, in->p, in->n, raw, cap, &len);
	if (rc == 0) {
		FUZZ_CHECK(len == declared && len <= cap);
		if (len > 0) {
			round_trip(raw, len, tag);
			round_trip(raw, len, -1);
		}
	} else {
		FUZZ_CHECK(rc == FERRY_EFORMAT || rc == FERRY_ETOOBIG);
		FUZZ_CHECK(rc != FERRY_ETOOBIG || declared > cap);
	}
	free(raw);
}

static void shaped(struct fuzz_in *in)
{
	uint32_t len = fuzz_u24(in);
	uint8_t shape = fuzz_u8(in);
	/* Most chunks short, so that most runs are fast; the shift is the shape's top bits. */
	size_t n = len % (CHUNK_MAX_SIZE + 1) >> (shape >> 5);
	size_t k = shape & 1 ? 2 : 4;
	unsigned noisy = shape >> 1;
	uint64_t s = shape + 1;

	if (n == 0)
		return;
	for (size_t i = 0; i < n; i++) {
		uint8_t b = in->n > 0 ? in->p[i % in->n] : 0;

		if ((noisy >> (i % k)) & 1)
			b ^= (uint8_t)(fuzz_rand(&s) >> 56);
		chunk[i] = b;
	}
	round_trips(chunk, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = {data, size};

	switch (fuzz_u8(&in) % 4) {
	case 1:
		if (in.n > 0 && in.n <= CHUNK_MAX_SIZE)
			round_trips(in.p, in.n);
		break;
	case 2:
		shaped(&in);
		break;
	default:
		decode(&in);
		break;
	}
	return 0;
}
