/*
 * Write the seed corpora of the fuzz harnesses: small valid inputs of each
 * kind, so that fuzzing starts from messages that get past the first checks.
 * Usage: gen_corpus DIR  (writes DIR/<target>/<name>; `make fuzz-corpus`
 * regenerates tests/fuzz/corpus). The output is the same on every run: the
 * keys are the fixed ones of fuzz.h and nothing random is used.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ferry/bundle.h"
#include "ferry/catalog.h"
#include "ferry/chunker.h"
#include "ferry/codec.h"
#include "ferry/config.h"
#include "ferry/ctl.h"
#include "ferry/discovery.h"
#include "ferry/error.h"
#include "ferry/fcrypto.h"
#include "ferry/have.h"
#include "ferry/index.h"
#include "ferry/manifest.h"
#include "ferry/mpk.h"
#include "ferry/publish.h"
#include "ferry/store.h"
#include "ferry/util.h"
#include "ferry/wire.h"
#include "fuzz.h"

static const char *top;

/* A growable byte string. */
struct buf {
	uint8_t *p;
	size_t len;
};

static void put(struct buf *b, const void *p, size_t n)
{
	b->p = xrealloc(b->p, b->len + n + 1);
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

static void put_u8(struct buf *b, uint8_t v)
{
	put(b, &v, 1);
}

static void put_u16(struct buf *b, uint16_t v)
{
	put_u8(b, (uint8_t)(v >> 8));
	put_u8(b, (uint8_t)v);
}

static void put_u24(struct buf *b, uint32_t v)
{
	put_u8(b, (uint8_t)(v >> 16));
	put_u16(b, (uint16_t)v);
}

static void put_str(struct buf *b, const char *s)
{
	put(b, s, strlen(s));
}

/* Write b as DIR/target/name and empty it. */
static void save(const char *target, const char *name, struct buf *b)
{
	char *dir = xasprintf("%s/%s", top, target), *path = xasprintf("%s/%s", dir, name);
	int fd;

	if (mkdir(dir, 0755) != 0 && errno != EEXIST)
		fatal("mkdir %s: %s", dir, strerror(errno));
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write_full(fd, b->p, b->len) != 0 || close(fd) != 0)
		fatal("writing %s: %s", path, strerror(errno));
	free(b->p);
	b->p = NULL;
	b->len = 0;
	free(dir);
	free(path);
}

static void save_mpk(const char *name, struct mpk_w *w)
{
	struct buf b = {0};

	if (mpk_w_take(w, &b.p, &b.len) != 0)
		fatal("mpk writer failed");
	save("mpk", name, &b);
}

static void gen_mpk(void)
{
	static const uint8_t odd[] = {
	    0xd4, 0x01, 0x02,					  /* fixext 1 */
	    0xc7, 0x03, 0x05, 'a',  'b',  'c',			  /* ext 8 */
	    0xca, 0x3f, 0x80, 0x00, 0x00,			  /* float 32: 1.0 */
	    0xd0, 0x05,						  /* int 8 holding 5 */
	    0xd3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, /* int 64: -2 */
	    0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, /* uint 64 max */
	    0xdc, 0x00, 0x01, 0xc0,				  /* array 16 of one nil */
	    0xdf, 0x00, 0x00, 0x00, 0x01, 0xa1, 'k',  0xc3,	  /* map 32: {"k": true} */
	};
	struct buf b = {0};
	struct mpk_w w;
	uint8_t id[32];
	char text[300];

	/* Something like a manifest body: a map of the usual types. */
	memset(id, 0x11, sizeof(id));
	mpk_w_init(&w);
	mpk_w_map(&w, 6);
	mpk_w_cstr(&w, "format");
	mpk_w_uint(&w, 1);
	mpk_w_cstr(&w, "name");
	mpk_w_cstr(&w, "llama-3-8b");
	mpk_w_cstr(&w, "created");
	mpk_w_int(&w, -1767225600);
	mpk_w_cstr(&w, "id");
	mpk_w_bin(&w, id, sizeof(id));
	mpk_w_cstr(&w, "files");
	mpk_w_array(&w, 2);
	for (int i = 0; i < 2; i++) {
		mpk_w_map(&w, 3);
		mpk_w_cstr(&w, "path");
		mpk_w_cstr(&w, i == 0 ? "weights/model.safetensors" : "config.json");
		mpk_w_cstr(&w, "size");
		mpk_w_uint(&w, i == 0 ? 16060522496ull : 654);
		mpk_w_cstr(&w, "ratio");
		mpk_w_double(&w, 0.68);
	}
	mpk_w_cstr(&w, "flags");
	mpk_w_array(&w, 2);
	mpk_w_bool(&w, true);
	mpk_w_nil(&w);
	save_mpk("map", &w);

	/* Every integer width, both signs. */
	mpk_w_init(&w);
	mpk_w_array(&w, 12);
	mpk_w_uint(&w, 0);
	mpk_w_uint(&w, 127);
	mpk_w_uint(&w, 255);
	mpk_w_uint(&w, 65535);
	mpk_w_uint(&w, 4294967295u);
	mpk_w_uint(&w, UINT64_MAX);
	mpk_w_int(&w, -1);
	mpk_w_int(&w, -33);
	mpk_w_int(&w, -129);
	mpk_w_int(&w, -32769);
	mpk_w_int(&w, -2147483649ll);
	mpk_w_int(&w, INT64_MIN);
	save_mpk("ints", &w);

	/* Strings and binaries of each length class. */
	memset(text, 'x', sizeof(text));
	mpk_w_init(&w);
	mpk_w_str(&w, text, 31);
	mpk_w_str(&w, text, 32);
	mpk_w_str(&w, text, 256);
	mpk_w_bin(&w, (const uint8_t *)text, 0);
	mpk_w_bin(&w, (const uint8_t *)text, 256);
	save_mpk("strings", &w);

	/* Nesting at the limit, and one deeper. */
	for (int depth = MPK_DEPTH_MAX; depth <= MPK_DEPTH_MAX + 1; depth++) {
		mpk_w_init(&w);
		for (int i = 0; i < depth; i++)
			mpk_w_array(&w, 1);
		mpk_w_uint(&w, 7);
		save_mpk(depth == MPK_DEPTH_MAX ? "deep" : "too-deep", &w);
	}

	put(&b, odd, sizeof(odd));
	save("mpk", "encodings", &b);
}

/* One chunker record: plant a window of kind at pos. */
static void window(struct buf *b, uint32_t pos, uint8_t kind)
{
	put_u24(b, pos);
	put_u8(b, kind);
}

static void gen_chunker(void)
{
	const uint32_t max = CHUNK_MAX_SIZE + 4 * CHUNK_MIN_SIZE;
	struct buf b = {0};

	/* Zeros to the end: every chunk is cut at the maximum size. */
	put_u24(&b, max);
	put_u8(&b, 0);
	save("chunker", "zeros", &b);

	/* Pseudo-random bytes: natural cuts. */
	put_u24(&b, max);
	put_u8(&b, 1);
	put_u24(&b, 12345);
	save("chunker", "random", &b);

	/* Windows at the edges the scan cares about: minimum, normal, blocks, lanes. */
	put_u24(&b, max);
	put_u8(&b, 1);
	put_u24(&b, 777);
	window(&b, CHUNK_MIN_SIZE + 4096 - 64, 2);
	window(&b, 2 * CHUNK_MIN_SIZE + 3 * 4096 - 1, 1);
	window(&b, CHUNK_AVG_SIZE - 64, 1);
	window(&b, CHUNK_AVG_SIZE + 100000, 3);
	window(&b, CHUNK_MAX_SIZE + 5000, 4);
	save("chunker", "windows", &b);

	/* The earliest cut there can be, then a short second chunk. */
	put_u24(&b, 3 * CHUNK_MIN_SIZE);
	put_u8(&b, 0);
	window(&b, CHUNK_MIN_SIZE, 0);
	save("chunker", "window-at-min", &b);

	/* A short file of repeated text. */
	put_u24(&b, 200000);
	put_u8(&b, 2);
	put_str(&b, "the quick brown fox jumps over the lazy dog ");
	save("chunker", "text", &b);
}

/* The messages of a handshake between the fixed keys, with hellos h2 and h3. */
static void handshake(uint8_t wire[3][SESSION_HS_MSG_MAX], size_t len[3], uint64_t t,
		      const char *h2, const char *h3)
{
	struct session_hs *hs[2] = {fuzz_hs_fixed(SESSION_INITIATOR),
				    fuzz_hs_fixed(SESSION_RESPONDER)};
	uint8_t p1[12], pl[SESSION_HELLO_MAX];
	const uint8_t *hello[3] = {p1, (const uint8_t *)h2, (const uint8_t *)h3};
	size_t hlen[3] = {sizeof(p1), strlen(h2), strlen(h3)}, used, plen;

	fuzz_msg1_payload(p1, t);
	for (int m = 0; m < 3; m++) {
		if (session_hs_write(hs[m % 2], hello[m], hlen[m], wire[m], SESSION_HS_MSG_MAX,
				     &len[m]) != 0 ||
		    session_hs_read(hs[1 - m % 2], wire[m], len[m], &used, pl, sizeof(pl), &plen) !=
			0)
			fatal("handshake message %d: %s", m + 1, ferry_errmsg(FERRY_EAUTH));
	}
	session_hs_free(hs[0]);
	session_hs_free(hs[1]);
}

static void gen_handshake(void)
{
	uint8_t wire[3][SESSION_HS_MSG_MAX], p1[12];
	size_t len[3];
	struct buf b = {0};

	handshake(wire, len, FUZZ_NOW, "", "");
	/* Mode 0: message 1, offered in two parts. */
	put_u8(&b, 0);
	put_u16(&b, 30);
	put(&b, wire[0], len[0]);
	save("handshake", "msg1", &b);
	/* Mode 1: message 1's payload: good, another version, a clock too far off. */
	fuzz_msg1_payload(p1, FUZZ_NOW + 100);
	put_u8(&b, 1);
	put_u16(&b, 65535);
	put(&b, p1, sizeof(p1));
	save("handshake", "payload", &b);
	p1[1] = 2;
	put_u8(&b, 1);
	put_u16(&b, 10);
	put(&b, p1, sizeof(p1));
	save("handshake", "payload-version", &b);
	fuzz_msg1_payload(p1, FUZZ_NOW - SESSION_CLOCK_SKEW_MAX - 1);
	put_u8(&b, 1);
	put_u16(&b, 65535);
	put(&b, p1, sizeof(p1));
	put_str(&b, "frames follow");
	save("handshake", "payload-skew", &b);
	/* Modes 2 and 3: messages 2 and 3 with hellos. */
	handshake(wire, len, FUZZ_NOW, "responder hello", "initiator hello");
	put_u8(&b, 2);
	put_u16(&b, 40);
	put_u8(&b, 0);
	put(&b, wire[1], len[1]);
	save("handshake", "msg2", &b);
	put_u8(&b, 2);
	put_u16(&b, 65535);
	put_u8(&b, 0);
	put(&b, wire[1], 2);
	memset(wire[1] + 2, 0, 32); /* the all-zero point: a low-order key */
	put(&b, wire[1] + 2, len[1] - 2);
	save("handshake", "msg2-low-order", &b);
	put_u8(&b, 3);
	put_u16(&b, 65535);
	put_u8(&b, 0);
	put(&b, wire[2], len[2]);
	save("handshake", "msg3", &b);
	/* Mode 4: whole handshakes, unchanged and with one byte changed. */
	put_u8(&b, 4);
	put_u16(&b, 65535);
	put_u16(&b, 5);
	put_u16(&b, 0);
	put_u8(&b, 0);
	put_str(&b, "helloinitiator says hi");
	save("handshake", "whole", &b);
	put_u8(&b, 4);
	put_u16(&b, 7);
	put_u16(&b, 0);
	put_u16(&b, 100);
	put_u8(&b, 0x40);
	save("handshake", "whole-changed", &b);
}

static void gen_frames(void)
{
	uint8_t key[SESSION_KEY_LEN], out[512];
	struct session_tx *tx;
	struct buf b = {0};
	size_t len;

	/* Mode 0: the bytes of two sealed messages, the second in two frames. */
	fuzz_key(key, FUZZ_NETKEY);
	tx = session_tx_new(key);
	put_u8(&b, 0);
	put_u8(&b, 0);
	put_u8(&b, 7);
	if (session_seal(tx, "ping", 4, out, sizeof(out), &len) != 0)
		fatal("seal");
	put(&b, out, len);
	memcpy(out + SESSION_FRAME_HDR, "have ", 5);
	session_seal_frame_inplace(tx, out, 5, true);
	put(&b, out, 5 + SESSION_FRAME_OVERHEAD);
	memcpy(out + SESSION_FRAME_HDR, "chunks", 6);
	session_seal_frame_inplace(tx, out, 6, false);
	put(&b, out, 6 + SESSION_FRAME_OVERHEAD);
	session_tx_free(tx);
	save("frames", "stream", &b);

	/* Mode 1 scripts. Small messages and frames of a message. */
	put_u8(&b, 1);
	put_u8(&b, 0);
	put_u8(&b, 3);
	put_u8(&b, 0);
	put_u8(&b, 5);
	put_str(&b, "hello");
	put_u8(&b, 0);
	put_u8(&b, 0);
	put_u8(&b, 2);
	put_u8(&b, 1);
	put_u8(&b, 3);
	put_str(&b, "abc");
	put_u8(&b, 2);
	put_u8(&b, 0);
	put_u8(&b, 0);
	save("frames", "script", &b);
	/* Large messages: many frames, then a small one (the buffer shrinks). */
	put_u8(&b, 1);
	put_u8(&b, 0);
	put_u8(&b, 200);
	put_u8(&b, 1);
	put_u16(&b, 1700);
	put_u8(&b, 1);
	put_u16(&b, 30000);
	put_u8(&b, 0);
	put_u8(&b, 1);
	put_u8(&b, 'x');
	save("frames", "script-large", &b);
	/* A message over a cap of 100 bytes, then a changed byte, then raw bytes. */
	put_u8(&b, 1);
	put_u8(&b, 4);
	put_u8(&b, 9);
	put_u8(&b, 0);
	put_u8(&b, 3);
	put_str(&b, "one");
	put_u8(&b, 1);
	put_u16(&b, 3);
	put_u8(&b, 3);
	put_u16(&b, 10);
	put_u8(&b, 0x01);
	put_u8(&b, 4);
	put_u8(&b, 4);
	put_u8(&b, 0x80);
	put_u8(&b, 0);
	put_u8(&b, 0);
	put_u8(&b, 20);
	save("frames", "script-bad", &b);
}

static void gen_keyfile(void)
{
	char *path = xasprintf("%s/.gen-netkey", top), *text;
	uint8_t key[32];
	char hex[2 * NODEKEY_LEN + 1], b64[2 * FERRY_SK_LEN];
	struct buf b = {0};
	size_t len;

	/* The node key: the magic line, then the secret key in hex. */
	fuzz_key(key, FUZZ_STATIC_R);
	put_u8(&b, 0);
	put_str(&b, NODEKEY_MAGIC "\n");
	put_str(&b, hex_encode(hex, key, sizeof(key)));
	put_str(&b, "\n");
	save("keyfile", "node", &b);

	/* The fixed publisher key, as fcrypto_publisher_key_write lays it out. */
	put_u8(&b, 1);
	put_str(&b, "ferry-publisher-key v1\n");
	put_str(&b, fcrypto_b64_encode(b64, fuzz_publisher_sk, FERRY_SK_LEN));
	put_str(&b, "\npublic ");
	put_str(&b, fcrypto_b64_encode(b64, fuzz_publisher_sk + 32, FERRY_PK_LEN));
	put_str(&b, "\n");
	save("keyfile", "publisher", &b);

	/* The network key, through our own writer. */
	fuzz_key(key, FUZZ_NETKEY);
	unlink(path);
	if (fcrypto_netkey_write(path, key) != 0 || read_file(path, 4096, &text, &len) != 0)
		fatal("%s", ferry_errmsg(FERRY_EIO));
	unlink(path);
	put_u8(&b, 2);
	put(&b, text, len);
	save("keyfile", "network", &b);
	free(text);
	free(path);
}

static void gen_text(void)
{
	static const struct {
		uint8_t which;
		const char *name, *text;
	} seeds[] = {
	    {0, "size", "512M"},
	    {0, "size-plain", " 1048576 "},
	    {0, "size-fraction", "1.5GiB"},
	    {1, "rate", "4mbit"},
	    {1, "rate-bytes", "100kbps"},
	    {1, "rate-zero", "0"},
	    {2, "hex", "00ff7Fa5"},
	    {6, "name", "llama-3.1_8b"},
	    {7, "path", "weights/caf\xc3\xa9/model-00001.safetensors"},
	    {7, "path-up", "weights/../../etc/passwd"},
	    {3, "node-id", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},
	};
	uint8_t key[FERRY_SK_LEN];
	char b64[2 * FERRY_SK_LEN];
	struct buf b = {0};

	for (size_t i = 0; i < ARRAY_SIZE(seeds); i++) {
		put_u8(&b, seeds[i].which);
		put_str(&b, seeds[i].text);
		save("text", seeds[i].name, &b);
	}
	fuzz_fill(key, sizeof(key), 9);
	put_u8(&b, 4);
	put_str(&b, fcrypto_b64_encode(b64, key, FERRY_PK_LEN));
	save("text", "base64-32", &b);
	put_u8(&b, 5);
	put_str(&b, " \t");
	put_str(&b, fcrypto_b64_encode(b64, key, FERRY_SK_LEN));
	put_str(&b, "\r\n");
	save("text", "base64-64", &b);
}

/* Weights-like data: 2-byte elements whose high bytes take few values. */
static void weights(uint8_t *p, size_t n, uint64_t seed)
{
	uint64_t s = seed;

	for (size_t i = 0; i < n; i++)
		p[i] = i % 2 ? (uint8_t)(0x3c + fuzz_rand(&s) % 4) : (uint8_t)(fuzz_rand(&s) >> 56);
}

static void gen_codec(void)
{
	static const char *const names[CODEC__COUNT] = {"raw", "zstd", "plane2", "plane4"};
	struct codec_ctx *c = codec_ctx_new();
	uint8_t raw[4096], enc[4096 + CODEC_HDR_LEN];
	struct buf b = {0};
	size_t len;

	/* Mode 0: a chunk encoded with each codec, decoded into a buffer of its size. */
	weights(raw, sizeof(raw), 5);
	for (int tag = 0; tag < CODEC__COUNT; tag++) {
		if (codec_encode_as(c, tag, raw, tag == CODEC_RAW ? 64 : sizeof(raw), enc, &len) !=
		    0)
			fatal("codec_encode_as %s", names[tag]);
		put_u8(&b, 0);
		put_u8(&b, 0);
		put(&b, enc, len);
		save("codec", names[tag], &b);
	}
	/* Mode 1: text to encode. */
	put_u8(&b, 1);
	put_str(&b, "{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 4096}");
	save("codec", "encode-text", &b);
	/* Mode 2: a whole chunk of 2-byte elements with a noisy low byte, and of 4-byte ones. */
	put_u8(&b, 2);
	put_u24(&b, CHUNK_MAX_SIZE);
	put_u8(&b, 1 | 1 << 1);
	put_str(&b, "\x3c\x3d\x3c\xbc\x3d\x3c");
	save("codec", "shaped-2", &b);
	put_u8(&b, 2);
	put_u24(&b, 100003);
	put_u8(&b, 0 | 3 << 1);
	put_str(&b, "\x00\x00\x80\x3f\x00\x00\x00\x40");
	save("codec", "shaped-4", &b);
	codec_ctx_free(c);
}

/* A manifest of the fixed publisher with three files. Strings are static. */
static void sample_manifest(struct manifest *m, struct manifest_file files[3],
			    uint8_t pieces[2][32])
{
	memset(m, 0, sizeof(*m));
	memset(files, 0, 3 * sizeof(files[0]));
	m->format = MANIFEST_FORMAT;
	m->name = "llama-3-8b";
	m->version = 3;
	m->label = "bf16, 2026-01";
	m->created = FUZZ_NOW;
	memcpy(m->publisher, fuzz_publisher_sk + 32, 32);
	m->nfiles = 3;
	m->files = files;
	files[0].path = "config.json";
	files[0].size = 654;
	files[0].mode = 0644;
	files[0].npieces = 1;
	files[0].pieces = &pieces[0];
	files[1].path = "weights/model-00001.safetensors";
	files[1].size = 5000000000ull;
	files[1].mode = 0644;
	files[1].npieces = 1;
	files[1].pieces = &pieces[1];
	files[2].path = "weights/EMPTY";
	files[2].mode = 0600;
	memset(files[0].sha256, 0xa1, 32);
	memset(files[1].sha256, 0xb2, 32);
	memset(pieces[0], 0xc3, 32);
	memset(pieces[1], 0xd4, 32);
}

static uint8_t *sample_body(size_t *len)
{
	struct manifest m;
	struct manifest_file files[3];
	uint8_t pieces[2][32], *body;

	sample_manifest(&m, files, pieces);
	if (manifest_encode(&m, &body, len) != 0)
		fatal("manifest_encode: %s", ferry_errmsg(FERRY_EINVAL));
	return body;
}

static void gen_manifest(void)
{
	uint8_t *body, *sealed, sig[64], id[32];
	size_t len, n;
	struct buf b = {0};
	struct mpk_w w;

	body = sample_body(&len);
	put_u8(&b, 0);
	put(&b, body, len);
	save("manifest", "body", &b);
	put_u8(&b, 2);
	put(&b, body, len);
	save("manifest", "sign", &b);
	if (manifest_sign(body, len, fuzz_publisher_sk, sig) != 0 ||
	    manifest_seal(body, len, sig, &sealed, &n) != 0)
		fatal("manifest_sign");
	put_u8(&b, 1);
	put(&b, sealed, n);
	save("manifest", "signed", &b);
	free(sealed);
	free(body);

	/* Keys in another order, and keys of a later format to skip. */
	memset(id, 0x42, sizeof(id));
	mpk_w_init(&w);
	mpk_w_map(&w, 9);
	mpk_w_cstr(&w, "files");
	mpk_w_array(&w, 1);
	mpk_w_map(&w, 6);
	mpk_w_cstr(&w, "index");
	mpk_w_array(&w, 1);
	mpk_w_bin(&w, id, 32);
	mpk_w_cstr(&w, "path");
	mpk_w_cstr(&w, "tokenizer/vocab.txt");
	mpk_w_cstr(&w, "future");
	mpk_w_map(&w, 1);
	mpk_w_cstr(&w, "a");
	mpk_w_array(&w, 2);
	mpk_w_nil(&w);
	mpk_w_double(&w, 1.5);
	mpk_w_cstr(&w, "size");
	mpk_w_uint(&w, 1);
	mpk_w_cstr(&w, "mode");
	mpk_w_uint(&w, 0100755);
	mpk_w_cstr(&w, "sha256");
	mpk_w_bin(&w, id, 32);
	mpk_w_cstr(&w, "publisher");
	mpk_w_bin(&w, fuzz_publisher_sk + 32, 32);
	mpk_w_cstr(&w, "created");
	mpk_w_int(&w, -5);
	mpk_w_cstr(&w, "version");
	mpk_w_uint(&w, 1);
	mpk_w_cstr(&w, "name");
	mpk_w_cstr(&w, "whisper.small_en");
	mpk_w_cstr(&w, "label");
	mpk_w_str(&w, "caf\xc3\xa9", 5);
	mpk_w_cstr(&w, "x-note");
	mpk_w_bin(&w, id, 3);
	mpk_w_cstr(&w, "format");
	mpk_w_uint(&w, 1);
	mpk_w_cstr(&w, "x-later");
	mpk_w_bool(&w, true);
	if (mpk_w_take(&w, &body, &len) != 0)
		fatal("mpk writer failed");
	put_u8(&b, 2);
	put(&b, body, len);
	save("manifest", "unknown-keys", &b);
	free(body);
}

static void gen_index(void)
{
	struct chunk_ref refs[3];
	struct index_piece *pieces;
	size_t npieces;
	struct buf b = {0};

	for (int i = 0; i < 3; i++) {
		memset(refs[i].id, 0x10 * (i + 1), 32);
		refs[i].codec = (uint8_t)i;
		refs[i].raw_len = i == 2 ? CHUNK_MAX_SIZE : 262144;
		refs[i].enc_len = i == 0 ? 262144 + CODEC_HDR_LEN : 200000;
	}
	if (index_encode(refs, 3, &pieces, &npieces) != 0 || npieces != 1)
		fatal("index_encode");
	put_u8(&b, 0);
	put(&b, pieces[0].bytes, pieces[0].len);
	save("index", "piece", &b);
	/* Mode 1: the entries again, used in turn to fill one full piece and part of another. */
	put_u8(&b, 1);
	put_u16(&b, INDEX_PIECE_ENTRIES + 3);
	put(&b, pieces[0].bytes + INDEX_HDR_LEN, pieces[0].len - INDEX_HDR_LEN);
	save("index", "entries", &b);
	index_pieces_free(pieces, npieces);
}

static void gen_config(void)
{
	static const char design[] =
	    "[node]\n"
	    "state_dir = /var/lib/ferry\n"
	    "socket = /run/ferry/ferryd.sock\n"
	    "socket_group = ferry\n"
	    "listen = 0.0.0.0:7440          ; \"off\" for a node that only dials out\n"
	    "site = clinic-a\n"
	    "network_key_file = /etc/ferry/network.key\n"
	    "min_free_space = 2G            ; never fill the disk past this\n"
	    "metrics_textfile =\n"
	    "[peers]\n"
	    "peer = hq.example.org:7440     ; repeatable\n"
	    "peer = [fd00::1]:7441\n"
	    "lan_discovery = on\n"
	    "[trust]\n"
	    "publisher = ebVWLo/mVPlAeLES6KmLp5AfhTrmlb7X4OORC60ElmQ=\n"
	    "[models]\n"
	    "want = *\n"
	    "want = whisper-*\n"
	    "keep_versions = 2\n"
	    "auto_activate = on\n"
	    "on_activate = systemctl restart inference\n"
	    "cache_quota = 0\n"
	    "[limits]\n"
	    "download_rate = 0\n"
	    "upload_rate = 500kbit\n"
	    "wan_download_rate = 4mbit\n"
	    "wan_upload_rate = 0\n"
	    "wan_window = mon-fri 08:00-18:00 1mbit\n"
	    "wan_window = daily 22:00-06:00 0\n";
	struct config *c = config_default();
	struct buf b = {0};
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	put_str(&b, design);
	save("config", "design", &b);
	if (f == NULL)
		fatal("open_memstream: %s", strerror(errno));
	config_print(c, f);
	fclose(f);
	put(&b, text, len);
	save("config", "defaults", &b);
	free(text);
	config_free(c);
}

/* One catalog step: flags, version, label. */
static void step(struct buf *b, uint8_t flags, uint8_t version, char label)
{
	put_u8(b, flags);
	put_u8(b, version);
	put_u8(b, (uint8_t)label);
}

static void gen_catalog(void)
{
	struct buf b = {0};
	uint8_t *body;
	size_t len;

	body = sample_body(&len);
	put_u16(&b, (uint16_t)len);
	put(&b, body, len);
	step(&b, 0, 1, 'a');
	step(&b, 0, 3, 'b');
	step(&b, 0, 2, 'c'); /* below the mark: refused */
	step(&b, 1, 2, 'c'); /* asked for: stored, older */
	step(&b, 0, 3, 'd'); /* same version, another hash */
	step(&b, 0, 3, 'e');
	step(&b, 0, 3, 'b'); /* known, or the loser of the hash comparison */
	step(&b, 2, 1, 'a'); /* another model */
	step(&b, 4, 0, 0);   /* the body as it is */
	save("catalog", "steps", &b);
	free(body);
}

static void save_wire(const char *name, const struct wire_msg *m)
{
	struct buf b = {0};

	if (wire_encode(m, &b.p, &b.len) != 0)
		fatal("wire_encode %s: %s", name, ferry_errmsg(FERRY_EINVAL));
	save("wire", name, &b);
}

static void gen_wire(void)
{
	static const uint8_t bitmap[] = {0xff, 0x0f, 0x00, 0x21};
	struct wire_digest_entry digest[2];
	struct wire_peer_entry peers[2];
	uint32_t positions[3] = {0, 7, 4095};
	uint8_t *body, sig[64], *sealed;
	struct wire_msg m;
	size_t len, n;

	memset(&m, 0, sizeof(m));
	m.type = WIRE_HELLO;
	m.hello.version_min = WIRE_VERSION_MIN;
	m.hello.version_max = WIRE_VERSION;
	snprintf(m.hello.site, sizeof(m.hello.site), "clinic-a");
	m.hello.listen_port = 7440;
	snprintf(m.hello.software, sizeof(m.hello.software), "ferry 0.1.0");
	m.hello.uptime_s = 86400;
	save_wire("hello", &m);

	memset(&m, 0, sizeof(m));
	memset(digest, 0, sizeof(digest));
	m.type = WIRE_DIGEST;
	m.digest.more = true;
	m.digest.n = 2;
	m.digest.entries = digest;
	snprintf(digest[0].name, sizeof(digest[0].name), "llama-3-8b");
	digest[0].version = 3;
	memset(digest[0].hash, 0x33, 32);
	snprintf(digest[1].name, sizeof(digest[1].name), "whisper");
	digest[1].version = 12;
	memset(digest[1].hash, 0x44, 32);
	save_wire("digest", &m);

	memset(&m, 0, sizeof(m));
	m.type = WIRE_MANIFEST_REQ;
	snprintf(m.manifest_req.name, sizeof(m.manifest_req.name), "llama-3-8b");
	m.manifest_req.version = 3;
	save_wire("manifest-req", &m);

	body = sample_body(&len);
	if (manifest_sign(body, len, fuzz_publisher_sk, sig) != 0 ||
	    manifest_seal(body, len, sig, &sealed, &n) != 0)
		fatal("manifest_sign");
	memset(&m, 0, sizeof(m));
	m.type = WIRE_MANIFEST;
	m.manifest.bytes = sealed;
	m.manifest.len = n;
	save_wire("manifest", &m);
	free(sealed);
	free(body);

	memset(&m, 0, sizeof(m));
	m.type = WIRE_HAVE;
	snprintf(m.have.name, sizeof(m.have.name), "llama-3-8b");
	m.have.version = 3;
	m.have.nchunks = 30;
	m.have.first = 0;
	m.have.bitmap = bitmap;
	m.have.bitmap_len = sizeof(bitmap);
	save_wire("have", &m);
	m.have.complete = true;
	m.have.bitmap = NULL;
	m.have.bitmap_len = 0;
	save_wire("have-complete", &m);

	memset(&m, 0, sizeof(m));
	m.type = WIRE_HAVE_ADD;
	snprintf(m.have_add.name, sizeof(m.have_add.name), "llama-3-8b");
	m.have_add.version = 3;
	m.have_add.n = 3;
	m.have_add.positions = positions;
	save_wire("have-add", &m);
	m.type = WIRE_CLAIM;
	save_wire("claim", &m);

	memset(&m, 0, sizeof(m));
	m.type = WIRE_CHUNK_REQ;
	m.chunk_req.req = 17;
	memset(m.chunk_req.id, 0x55, 32);
	m.chunk_req.offset = 61440;
	save_wire("chunk-req", &m);

	memset(&m, 0, sizeof(m));
	m.type = WIRE_CHUNK_DATA;
	m.chunk_data.req = 17;
	m.chunk_data.offset = 61440;
	m.chunk_data.total = 200000;
	m.chunk_data.data = (const uint8_t *)"encoded chunk bytes";
	m.chunk_data.len = 19;
	save_wire("chunk-data", &m);

	memset(&m, 0, sizeof(m));
	m.type = WIRE_CHUNK_NONE;
	m.chunk_none.req = 17;
	save_wire("chunk-none", &m);
	m.type = WIRE_CANCEL;
	save_wire("cancel", &m);

	memset(&m, 0, sizeof(m));
	m.type = WIRE_PING;
	m.ping.nonce = 0x0123456789abcdefull;
	m.ping.stamp = 1767225600123ull;
	save_wire("ping", &m);
	m.type = WIRE_PONG;
	save_wire("pong", &m);

	memset(&m, 0, sizeof(m));
	memset(peers, 0, sizeof(peers));
	m.type = WIRE_PEERS;
	m.peers.n = 2;
	m.peers.entries = peers;
	memset(peers[0].id, 0x66, 32);
	snprintf(peers[0].addr, sizeof(peers[0].addr), "hq.example.org:7440");
	memset(peers[1].id, 0x77, 32);
	snprintf(peers[1].addr, sizeof(peers[1].addr), "[fd00::1]:7440");
	snprintf(peers[1].site, sizeof(peers[1].site), "clinic-a");
	save_wire("peers", &m);
}

/* Copy one msgpack value from r to w, with a top-level "created" set to FUZZ_NOW. */
static void copy_value(struct mpk_r *r, struct mpk_w *w, int depth)
{
	const uint8_t *p;
	const char *str;
	uint32_t n;
	uint64_t u;
	int64_t i;
	bool b;
	size_t len;

	switch (mpk_r_peek(r)) {
	case MPK_MAP:
		mpk_r_map(r, &n);
		mpk_w_map(w, n);
		for (uint32_t k = 0; k < n; k++) {
			mpk_r_str(r, &str, &len);
			mpk_w_str(w, str, len);
			if (depth == 0 && len == 7 && memcmp(str, "created", 7) == 0) {
				mpk_r_skip(r);
				mpk_w_int(w, FUZZ_NOW);
			} else {
				copy_value(r, w, depth + 1);
			}
		}
		break;
	case MPK_ARRAY:
		mpk_r_array(r, &n);
		mpk_w_array(w, n);
		for (uint32_t k = 0; k < n; k++)
			copy_value(r, w, depth + 1);
		break;
	case MPK_UINT:
		mpk_r_uint(r, &u);
		mpk_w_uint(w, u);
		break;
	case MPK_INT:
		mpk_r_int(r, &i);
		mpk_w_int(w, i);
		break;
	case MPK_BOOL:
		mpk_r_bool(r, &b);
		mpk_w_bool(w, b);
		break;
	case MPK_STR:
		mpk_r_str(r, &str, &len);
		mpk_w_str(w, str, len);
		break;
	case MPK_BIN:
		mpk_r_bin(r, &p, &len);
		mpk_w_bin(w, p, len);
		break;
	default:
		fatal("copy_value: unexpected msgpack type");
	}
}

/* A file's bytes, with its top-level "created" pinned so that the seed is the same every run. */
static void slurp_pinned(const char *path, struct buf *out)
{
	struct mpk_r r;
	struct mpk_w w;
	char *text;
	size_t len;

	if (read_file(path, 1 << 20, &text, &len) != 0)
		fatal("%s: %s", path, ferry_errmsg(FERRY_EIO));
	mpk_r_init(&r, text, len);
	mpk_w_init(&w);
	copy_value(&r, &w, 0);
	if (mpk_r_done(&r) != 0 || mpk_w_take(&w, &out->p, &out->len) != 0)
		fatal("%s: not the msgpack expected", path);
	free(text);
}

/* One file of a fuzz_bundle input: kind, number, u16 length, contents. */
static void bundle_file(struct buf *b, uint8_t kind, uint8_t num, const char *path, bool pin)
{
	struct buf f = {0};
	char *text;

	if (pin) {
		slurp_pinned(path, &f);
	} else {
		if (read_file(path, 1 << 20, &text, &f.len) != 0)
			fatal("%s: %s", path, ferry_errmsg(FERRY_EIO));
		f.p = (uint8_t *)text;
	}
	if (f.len > UINT16_MAX)
		fatal("%s: too large for a seed", path);
	put_u8(b, kind);
	put_u8(b, num);
	put_u16(b, (uint16_t)f.len);
	put(b, f.p, f.len);
	free(f.p);
}

/* A store holding one small published model, and a bundle and have-file of it. */
static void gen_sideload(void)
{
	char tmp[] = "/tmp/ferry-gen-corpus-XXXXXX";
	char *model, *state, *media, *path;
	struct publish_opts po = {
	    .name = "tiny-model", .version = 2, .label = "seed", .threads = 1, .created = FUZZ_NOW};
	struct bundle_ref ref = {"tiny-model", 2};
	struct bundle_create_opts bo = {0};
	uint8_t data[6000], *body, sig[64], *sealed;
	size_t len, n;
	struct buf b = {0};
	struct store *st;
	int dfd, fd;

	if (mkdtemp(tmp) == NULL)
		fatal("mkdtemp: %s", strerror(errno));
	model = xasprintf("%s/model", tmp);
	state = xasprintf("%s/state", tmp);
	media = xasprintf("%s/media", tmp);
	if (mkdir(model, 0755) != 0 || mkdir(media, 0755) != 0)
		fatal("mkdir: %s", strerror(errno));
	weights(data, sizeof(data), 11);
	path = xasprintf("%s/weights.bin", model);
	put(&b, data, sizeof(data));
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write_full(fd, b.p, b.len) != 0 || close(fd) != 0)
		fatal("%s: %s", path, strerror(errno));
	free(b.p);
	b.p = NULL;
	b.len = 0;
	free(path);

	memcpy(po.publisher, fuzz_publisher_sk + 32, 32);
	if (store_open(state, STORE_CREATE, &st) != 0)
		fatal("store_open: %s", ferry_errmsg(FERRY_EIO));
	dfd = open(model, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || publish_ingest(st, dfd, &po, &body, &len, NULL) != 0)
		fatal("publish_ingest: %s", ferry_errmsg(FERRY_EIO));
	close(dfd);
	if (manifest_sign(body, len, fuzz_publisher_sk, sig) != 0 ||
	    manifest_seal(body, len, sig, &sealed, &n) != 0)
		fatal("manifest_sign");
	{
		struct trust t = {1, (uint8_t(*)[32])(fuzz_publisher_sk + 32)};

		if (catalog_accept(st, &t, sealed, n, 0, NULL) < 0)
			fatal("catalog_accept: %s", ferry_errmsg(FERRY_EINVAL));
		dfd = open(media, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd < 0 || bundle_create(st, &t, dfd, &ref, 1, NULL, &bo, NULL) != 0)
			fatal("bundle_create: %s", ferry_errmsg(FERRY_EIO));
		close(dfd);
	}
	free(body);
	free(sealed);

	/* The have-file of the store. */
	path = xasprintf("%s/have", tmp);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || have_write(st, fd, NULL, NULL) != 0 || close(fd) != 0)
		fatal("have_write: %s", ferry_errmsg(FERRY_EIO));
	slurp_pinned(path, &b);
	save("have", "have", &b);
	unlink(path);
	free(path);
	store_close(st);

	/* The bundle as fuzz_bundle's input: plain files, then the same as links. */
	for (int links = 0; links < 2; links++) {
		put_u8(&b, (uint8_t)links);
		path = xasprintf("%s/" BUNDLE_DIR "/bundle.rec", media);
		bundle_file(&b, 0, 0, path, true);
		free(path);
		path = xasprintf("%s/" BUNDLE_DIR "/manifest-0001.fm", media);
		bundle_file(&b, 1, 1, path, false);
		free(path);
		path = xasprintf("%s/" BUNDLE_DIR "/pack-0001.dat", media);
		bundle_file(&b, 2, 1, path, false);
		free(path);
		path = xasprintf("%s/" BUNDLE_DIR "/pack-0001.idx", media);
		bundle_file(&b, 3, 1, path, false);
		free(path);
		save("bundle", links ? "links" : "bundle", &b);
	}
	path = xasprintf("rm -rf '%s'", tmp);
	if (system(path) != 0)
		fatal("%s failed", path);
	free(path);
	free(model);
	free(state);
	free(media);
}

/* Beacon bytes 0..128 as discovery.h lays them out. */
static void beacon_fields(uint8_t f[128], const char *site)
{
	uint64_t t = FUZZ_NOW + 5;

	memset(f, 0, 128);
	memcpy(f, "FLAN", 4);
	f[4] = DISCOVERY_VERSION;
	f[6] = 7440 >> 8;
	f[7] = 7440 & 0xff;
	for (int i = 0; i < 8; i++)
		f[8 + i] = (uint8_t)(t >> (56 - 8 * i));
	fuzz_key(f + 16, FUZZ_STATIC_I);
	f[48] = (uint8_t)strlen(site);
	memcpy(f + 49, site, strlen(site));
	memset(f + 113, 0x5a, 8);
}

static void gen_discovery(void)
{
	uint8_t netkey[32], key[32], f[128], buf[32 + 128], mac[32];
	struct buf b = {0};

	fuzz_key(netkey, FUZZ_NETKEY);
	discovery_key(key, netkey);
	beacon_fields(f, "clinic-a");
	/* Mode 0: a whole beacon, its MAC made as discovery.h says. */
	memcpy(buf, key, 32);
	memcpy(buf + 32, f, 128);
	fcrypto_id(mac, buf, sizeof(buf));
	put_u8(&b, 0);
	put(&b, f, sizeof(f));
	put(&b, mac, 16);
	save("discovery", "beacon", &b);
	/* Mode 1: the fields, authenticated by the harness. */
	put_u8(&b, 1);
	put_u8(&b, 0);
	put(&b, f, sizeof(f));
	save("discovery", "fields", &b);
	f[5] = 1; /* a reply */
	f[48] = 0;
	put_u8(&b, 1);
	put_u8(&b, 1);
	put(&b, f, sizeof(f));
	save("discovery", "fields-reply", &b);
}

static void save_ctl(const char *name, uint8_t mode, uint8_t *msg, size_t len, bool keep_hdr)
{
	struct buf b = {0};

	put_u8(&b, mode);
	if (keep_hdr)
		put(&b, msg, len);
	else
		put(&b, msg + CTL_HDR_LEN, len - CTL_HDR_LEN);
	save("ctl", name, &b);
	free(msg);
}

static void gen_ctl(void)
{
	struct ctl_request req;
	struct ctl_status status;
	struct ctl_progress progress;
	struct ctl_manifest man;
	uint8_t sig[64], *msg, *body;
	size_t len, blen;

	memset(&req, 0, sizeof(req));
	req.version = CTL_PROTO_VERSION;
	req.cmd = "fetch";
	ctl_request_str(&req, "name", "llama-3-8b");
	ctl_request_uint(&req, "version", 3);
	ctl_request_bool(&req, "wait", true);
	ctl_request_int(&req, "delta", -7);
	ctl_request_bin(&req, "blob", "\x00\x01\x02", 3);
	if (ctl_request_encode(&req, &msg, &len) != 0)
		fatal("ctl_request_encode");
	/* Mode 0 takes the length prefix too. */
	save_ctl("request", 0, msg, len, true);

	memset(sig, 0x5e, sizeof(sig));
	ctl_signature_encode(sig, &msg, &len);
	save_ctl("signature", 1, msg, len, false);

	ctl_result_encode(FERRY_ENOSPC, "not enough space for llama-3-8b@3: needs 16 GB", &msg,
			  &len);
	save_ctl("result", 2, msg, len, false);

	memset(&status, 0, sizeof(status));
	fuzz_key(status.node.node_id, FUZZ_STATIC_R);
	status.node.site = "clinic-a";
	status.node.uptime_s = 3600;
	status.node.store_bytes = 1u << 30;
	status.node.peers_connected = 2;
	status.node.rate_in_bps = 3.2e6;
	status.node.store_error = "disk full";
	status.ferryd_version = "0.1.0";
	if (ctl_data_encode(CTL_DATA_STATUS, &status, &msg, &len) != 0)
		fatal("ctl_data_encode");
	save_ctl("data-status", 2, msg, len, false);

	memset(&progress, 0, sizeof(progress));
	progress.name = "llama-3-8b";
	progress.p.version = 3;
	progress.p.need_bytes = 16000000000ull;
	progress.p.have_bytes = 4000000000ull;
	progress.p.sources = 3;
	progress.p.rate_bps = 3.3e6;
	if (ctl_data_encode(CTL_DATA_PROGRESS, &progress, &msg, &len) != 0)
		fatal("ctl_data_encode");
	save_ctl("data-progress", 2, msg, len, false);

	body = sample_body(&blen);
	memset(&man, 0, sizeof(man));
	man.body = body;
	man.body_len = blen;
	man.stats.files = 3;
	man.stats.chunks = 61000;
	if (ctl_data_encode(CTL_DATA_MANIFEST, &man, &msg, &len) != 0)
		fatal("ctl_data_encode");
	save_ctl("data-manifest", 2, msg, len, false);
	free(body);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: gen_corpus DIR\n");
		return 2;
	}
	if (fcrypto_init() != 0)
		fatal("libsodium cannot start");
	top = argv[1];
	if (mkdir(top, 0755) != 0 && errno != EEXIST)
		fatal("mkdir %s: %s", top, strerror(errno));
	gen_mpk();
	gen_chunker();
	gen_handshake();
	gen_frames();
	gen_keyfile();
	gen_text();
	gen_codec();
	gen_manifest();
	gen_index();
	gen_config();
	gen_catalog();
	gen_wire();
	gen_sideload();
	gen_discovery();
	gen_ctl();
	return 0;
}
