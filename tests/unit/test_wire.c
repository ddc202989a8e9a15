/* Unit tests for the peer messages: round trips, hostile input, limits, versions. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ferry/error.h"
#include "ferry/mpk.h"
#include "ferry/session.h"
#include "ferry/util.h"
#include "ferry/wire.h"

static uint8_t bytes_a[WIRE_CHUNK_DATA_MAX];
static struct wire_digest_entry digest_ents[3];
static uint32_t positions[5] = {0, 7, 8, 1000, WIRE_HAVE_CHUNKS_MAX - 1};
static struct wire_peer_entry peer_ents[2];
static uint8_t bitmap[3] = {0xff, 0x00, 0x05}; /* positions 8..30 of 27 chunks from 8 */

static void fill(void *p, size_t n, uint8_t seed)
{
	uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(seed + i * 31);
}

/* A message of each type with every field set to something other than zero. */
static void sample(enum wire_type type, struct wire_msg *m)
{
	memset(m, 0, sizeof(*m));
	m->type = type;
	fill(bytes_a, sizeof(bytes_a), 7);
	switch (type) {
	case WIRE_HELLO:
		m->hello.version_min = 1;
		m->hello.version_max = 3;
		strcpy(m->hello.site, "clinic-a");
		m->hello.listen_port = 7440;
		strcpy(m->hello.software, "ferry 0.1.0");
		m->hello.uptime_s = 86400ull * 400;
		m->hello.lane = 3;
		break;
	case WIRE_DIGEST:
		for (int i = 0; i < 3; i++) {
			snprintf(digest_ents[i].name, sizeof(digest_ents[i].name), "model-%d", i);
			digest_ents[i].version = (uint64_t)i << 40 | 5;
			fill(digest_ents[i].hash, 32, (uint8_t)i);
		}
		m->digest.more = true;
		m->digest.n = 3;
		m->digest.entries = digest_ents;
		break;
	case WIRE_MANIFEST_REQ:
		strcpy(m->manifest_req.name, "llama.q4");
		m->manifest_req.version = 12;
		break;
	case WIRE_MANIFEST:
		m->manifest.bytes = bytes_a;
		m->manifest.len = 5000;
		break;
	case WIRE_HAVE:
		strcpy(m->have.name, "whisper");
		m->have.version = 3;
		m->have.nchunks = 8 + 23;
		m->have.first = 8;
		m->have.bitmap = bitmap;
		m->have.bitmap_len = sizeof(bitmap);
		break;
	case WIRE_HAVE_ADD:
		strcpy(m->have_add.name, "whisper");
		m->have_add.version = 3;
		m->have_add.n = 5;
		m->have_add.positions = positions;
		break;
	case WIRE_CLAIM:
		strcpy(m->claim.name, "whisper");
		m->claim.version = 4;
		m->claim.n = 4;
		m->claim.positions = positions + 1;
		break;
	case WIRE_CHUNK_REQ:
		m->chunk_req.req = 0xfffffff0u;
		fill(m->chunk_req.id, 32, 99);
		m->chunk_req.offset = 61440;
		break;
	case WIRE_CHUNK_DATA:
		m->chunk_data.req = 77;
		m->chunk_data.offset = 61440;
		m->chunk_data.total = WIRE_CHUNK_ENC_MAX;
		m->chunk_data.data = bytes_a;
		m->chunk_data.len = WIRE_CHUNK_DATA_MAX;
		break;
	case WIRE_CHUNK_NONE:
		m->chunk_none.req = 5;
		break;
	case WIRE_CANCEL:
		m->cancel.req = 6;
		break;
	case WIRE_PING:
	case WIRE_PONG:
		m->ping.nonce = 0x0123456789abcdefull;
		m->ping.stamp = 1700000000123ull;
		break;
	case WIRE_PEERS:
		fill(peer_ents[0].id, 32, 1);
		strcpy(peer_ents[0].addr, "10.0.0.2:7440");
		strcpy(peer_ents[0].site, "hq");
		fill(peer_ents[1].id, 32, 2);
		strcpy(peer_ents[1].addr, "[fe80::1]:7441");
		strcpy(peer_ents[1].site, "");
		m->peers.n = 2;
		m->peers.entries = peer_ents;
		break;
	case WIRE_NONE:
		fail();
	}
}

static const enum wire_type all_types[] = {
#define T(NAME, member, num, flags, maxlen, doc) WIRE_##NAME,
    WIRE_MESSAGES(T)
#undef T
};

static void assert_same(const struct wire_msg *a, const struct wire_msg *b)
{
	assert_int_equal(a->type, b->type);
	switch (a->type) {
	case WIRE_HELLO:
		assert_int_equal(a->hello.version_min, b->hello.version_min);
		assert_int_equal(a->hello.version_max, b->hello.version_max);
		assert_string_equal(a->hello.site, b->hello.site);
		assert_int_equal(a->hello.listen_port, b->hello.listen_port);
		assert_string_equal(a->hello.software, b->hello.software);
		assert_true(a->hello.uptime_s == b->hello.uptime_s);
		assert_int_equal(a->hello.lane, b->hello.lane);
		break;
	case WIRE_DIGEST:
		assert_int_equal(a->digest.more, b->digest.more);
		assert_int_equal(a->digest.n, b->digest.n);
		for (uint32_t i = 0; i < a->digest.n; i++) {
			assert_string_equal(a->digest.entries[i].name, b->digest.entries[i].name);
			assert_true(a->digest.entries[i].version == b->digest.entries[i].version);
			assert_memory_equal(a->digest.entries[i].hash, b->digest.entries[i].hash,
					    32);
		}
		break;
	case WIRE_MANIFEST_REQ:
		assert_string_equal(a->manifest_req.name, b->manifest_req.name);
		assert_true(a->manifest_req.version == b->manifest_req.version);
		break;
	case WIRE_MANIFEST:
		assert_int_equal(a->manifest.len, b->manifest.len);
		assert_memory_equal(a->manifest.bytes, b->manifest.bytes, a->manifest.len);
		break;
	case WIRE_HAVE:
		assert_string_equal(a->have.name, b->have.name);
		assert_true(a->have.version == b->have.version);
		assert_int_equal(a->have.nchunks, b->have.nchunks);
		assert_int_equal(a->have.complete, b->have.complete);
		assert_int_equal(a->have.first, b->have.first);
		assert_int_equal(a->have.bitmap_len, b->have.bitmap_len);
		assert_memory_equal(a->have.bitmap, b->have.bitmap, a->have.bitmap_len);
		break;
	case WIRE_HAVE_ADD:
	case WIRE_CLAIM:
		assert_string_equal(a->have_add.name, b->have_add.name);
		assert_true(a->have_add.version == b->have_add.version);
		assert_int_equal(a->have_add.n, b->have_add.n);
		assert_memory_equal(a->have_add.positions, b->have_add.positions,
				    a->have_add.n * sizeof(uint32_t));
		break;
	case WIRE_CHUNK_REQ:
		assert_int_equal(a->chunk_req.req, b->chunk_req.req);
		assert_memory_equal(a->chunk_req.id, b->chunk_req.id, 32);
		assert_int_equal(a->chunk_req.offset, b->chunk_req.offset);
		break;
	case WIRE_CHUNK_DATA:
		assert_int_equal(a->chunk_data.req, b->chunk_data.req);
		assert_int_equal(a->chunk_data.offset, b->chunk_data.offset);
		assert_int_equal(a->chunk_data.total, b->chunk_data.total);
		assert_int_equal(a->chunk_data.len, b->chunk_data.len);
		assert_memory_equal(a->chunk_data.data, b->chunk_data.data, a->chunk_data.len);
		break;
	case WIRE_CHUNK_NONE:
	case WIRE_CANCEL:
		assert_int_equal(a->cancel.req, b->cancel.req);
		break;
	case WIRE_PING:
	case WIRE_PONG:
		assert_true(a->ping.nonce == b->ping.nonce);
		assert_true(a->ping.stamp == b->ping.stamp);
		break;
	case WIRE_PEERS:
		assert_int_equal(a->peers.n, b->peers.n);
		for (uint32_t i = 0; i < a->peers.n; i++) {
			assert_memory_equal(a->peers.entries[i].id, b->peers.entries[i].id, 32);
			assert_string_equal(a->peers.entries[i].addr, b->peers.entries[i].addr);
			assert_string_equal(a->peers.entries[i].site, b->peers.entries[i].site);
		}
		break;
	case WIRE_NONE:
		fail();
	}
}

static void test_round_trip(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(all_types); i++) {
		struct wire_msg m, d;
		uint8_t *buf;
		size_t len;

		sample(all_types[i], &m);
		assert_int_equal(wire_encode(&m, &buf, &len), 0);
		assert_true(len <= wire_len_max(m.type));
		assert_int_equal(wire_decode(buf, len, &d), 0);
		assert_same(&m, &d);
		/* Byte strings are views into the input, not copies. */
		if (m.type == WIRE_CHUNK_DATA)
			assert_true(d.chunk_data.data > buf && d.chunk_data.data < buf + len);
		wire_msg_clear(&d);
		wire_msg_clear(&d);
		free(buf);
	}
}

static void test_complete_have(void **state)
{
	struct wire_msg m = {.type = WIRE_HAVE}, d;
	uint8_t *buf;
	size_t len;

	(void)state;
	strcpy(m.have.name, "m");
	m.have.version = 1;
	m.have.nchunks = 4000;
	m.have.complete = true;
	assert_int_equal(wire_encode(&m, &buf, &len), 0);
	assert_int_equal(wire_decode(buf, len, &d), 0);
	assert_true(d.have.complete);
	assert_int_equal(d.have.bitmap_len, 0);
	free(buf);
	/* A complete HAVE carries no bitmap. */
	m.have.bitmap = bitmap;
	m.have.bitmap_len = 1;
	assert_int_equal(wire_encode(&m, &buf, &len), FERRY_EINVAL);
	assert_null(buf);
}

/* Every proper prefix of every message is refused, and nothing leaks or crashes. */
static void test_truncated(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(all_types); i++) {
		struct wire_msg m, d;
		uint8_t *buf, *copy;
		size_t len;

		sample(all_types[i], &m);
		assert_int_equal(wire_encode(&m, &buf, &len), 0);
		for (size_t k = 0; k < len; k++) {
			/* An exact-size copy, so a read past the end is a real overrun under ASan.
			 */
			copy = xmalloc(k + 1);
			memcpy(copy, buf, k);
			assert_int_equal(wire_decode(copy, k, &d), FERRY_EPROTO);
			wire_msg_clear(&d);
			free(copy);
		}
		free(buf);
	}
}

/* Encode [type, ...] from a writer the test fills; decode; return the code. */
static int decode_w(struct mpk_w *w, struct wire_msg *d)
{
	uint8_t *buf;
	size_t len;
	int rc;

	assert_int_equal(mpk_w_take(w, &buf, &len), 0);
	rc = wire_decode(buf, len, d);
	if (rc == 0)
		wire_msg_clear(d);
	free(buf);
	return rc;
}

/* A HELLO of protocol 1..1 with these fields, software "" and uptime 1, into a fresh w. */
static void hello_w(struct mpk_w *w, const char *site, uint64_t port, uint64_t lane)
{
	mpk_w_init(w);
	mpk_w_array(w, 8);
	mpk_w_uint(w, WIRE_HELLO);
	mpk_w_uint(w, 1);
	mpk_w_uint(w, 1);
	mpk_w_cstr(w, site);
	mpk_w_uint(w, port);
	mpk_w_cstr(w, "");
	mpk_w_uint(w, 1);
	mpk_w_uint(w, lane);
}

static void expect_proto(struct mpk_w *w, const char *needle)
{
	struct wire_msg d;
	int rc = decode_w(w, &d);

	assert_int_equal(rc, FERRY_EPROTO);
	if (strstr(ferry_errmsg(rc), needle) == NULL)
		fail_msg("detail '%s' does not mention '%s'", ferry_errmsg(rc), needle);
}

static void test_oversized(void **state)
{
	struct mpk_w w;
	uint8_t id[32] = {0};

	(void)state;
	/* DIGEST with one entry over the cap, every entry present. */
	mpk_w_init(&w);
	mpk_w_array(&w, 3);
	mpk_w_uint(&w, WIRE_DIGEST);
	mpk_w_bool(&w, false);
	mpk_w_array(&w, WIRE_DIGEST_MAX + 1);
	for (int i = 0; i < WIRE_DIGEST_MAX + 1; i++) {
		mpk_w_array(&w, 3);
		mpk_w_cstr(&w, "m");
		mpk_w_uint(&w, 1);
		mpk_w_bin(&w, id, 32);
	}
	expect_proto(&w, "at most 1024");

	/* A count far beyond the bytes that follow: refused before any allocation. */
	mpk_w_init(&w);
	mpk_w_array(&w, 2);
	mpk_w_uint(&w, WIRE_PEERS);
	mpk_w_array(&w, 0xffffffffu);
	expect_proto(&w, "malformed");

	mpk_w_init(&w);
	mpk_w_array(&w, 4);
	mpk_w_uint(&w, WIRE_HAVE_ADD);
	mpk_w_cstr(&w, "m");
	mpk_w_uint(&w, 1);
	mpk_w_array(&w, WIRE_HAVE_ADD_MAX + 1);
	for (int i = 0; i < WIRE_HAVE_ADD_MAX + 1; i++)
		mpk_w_uint(&w, (uint64_t)i);
	expect_proto(&w, "at most 4096");

	mpk_w_init(&w);
	mpk_w_array(&w, 2);
	mpk_w_uint(&w, WIRE_PEERS);
	mpk_w_array(&w, WIRE_PEERS_MAX + 1);
	for (int i = 0; i < WIRE_PEERS_MAX + 1; i++) {
		mpk_w_array(&w, 3);
		mpk_w_bin(&w, id, 32);
		mpk_w_cstr(&w, "h:1");
		mpk_w_cstr(&w, "");
	}
	expect_proto(&w, "at most 64");

	/* CHUNK_DATA: one byte over 60 KiB; data past the total; total over 1 MiB + 5. */
	mpk_w_init(&w);
	mpk_w_array(&w, 5);
	mpk_w_uint(&w, WIRE_CHUNK_DATA);
	mpk_w_uint(&w, 1);
	mpk_w_uint(&w, 0);
	mpk_w_uint(&w, 100000);
	mpk_w_bin(&w, bytes_a, 0);
	expect_proto(&w, "1..61440");

	{
		uint8_t *big = xcalloc(1, WIRE_CHUNK_DATA_MAX + 1);

		mpk_w_init(&w);
		mpk_w_array(&w, 5);
		mpk_w_uint(&w, WIRE_CHUNK_DATA);
		mpk_w_uint(&w, 1);
		mpk_w_uint(&w, 0);
		mpk_w_uint(&w, 100000);
		mpk_w_bin(&w, big, WIRE_CHUNK_DATA_MAX + 1);
		expect_proto(&w, "at most 61440");
		free(big);
	}

	mpk_w_init(&w);
	mpk_w_array(&w, 5);
	mpk_w_uint(&w, WIRE_CHUNK_DATA);
	mpk_w_uint(&w, 1);
	mpk_w_uint(&w, 90);
	mpk_w_uint(&w, 100);
	mpk_w_bin(&w, bytes_a, 11);
	expect_proto(&w, "run past the total");

	mpk_w_init(&w);
	mpk_w_array(&w, 5);
	mpk_w_uint(&w, WIRE_CHUNK_DATA);
	mpk_w_uint(&w, 1);
	mpk_w_uint(&w, 0);
	mpk_w_uint(&w, WIRE_CHUNK_ENC_MAX + 1);
	mpk_w_bin(&w, bytes_a, 10);
	expect_proto(&w, "total");

	/* HAVE: bitmap past nchunks; a padding bit set; a count over the cap. */
	mpk_w_init(&w);
	mpk_w_array(&w, 7);
	mpk_w_uint(&w, WIRE_HAVE);
	mpk_w_cstr(&w, "m");
	mpk_w_uint(&w, 1);
	mpk_w_uint(&w, 9);
	mpk_w_bool(&w, false);
	mpk_w_uint(&w, 0);
	mpk_w_bin(&w, bitmap, 3);
	expect_proto(&w, "runs past");

	mpk_w_init(&w);
	mpk_w_array(&w, 7);
	mpk_w_uint(&w, WIRE_HAVE);
	mpk_w_cstr(&w, "m");
	mpk_w_uint(&w, 1);
	mpk_w_uint(&w, 10);
	mpk_w_bool(&w, false);
	mpk_w_uint(&w, 8);
	mpk_w_bin(&w, (const uint8_t[]){0x04}, 1);
	expect_proto(&w, "past the last chunk");

	mpk_w_init(&w);
	mpk_w_array(&w, 7);
	mpk_w_uint(&w, WIRE_HAVE);
	mpk_w_cstr(&w, "m");
	mpk_w_uint(&w, 1);
	mpk_w_uint(&w, WIRE_HAVE_CHUNKS_MAX + 1);
	mpk_w_bool(&w, true);
	mpk_w_uint(&w, 0);
	mpk_w_bin(&w, bitmap, 0);
	expect_proto(&w, "nchunks");

	/* Strings: not a model name; a control character in a site; an empty address. */
	mpk_w_init(&w);
	mpk_w_array(&w, 3);
	mpk_w_uint(&w, WIRE_MANIFEST_REQ);
	mpk_w_cstr(&w, "../etc");
	mpk_w_uint(&w, 1);
	expect_proto(&w, "not a model name");

	hello_w(&w, "a\nb", 1, 0);
	expect_proto(&w, "site");
	/* A lane number past WIRE_LANE_MAX. */
	hello_w(&w, "", 1, WIRE_LANE_MAX + 1);
	expect_proto(&w, "lane 8, at most 7");

	mpk_w_init(&w);
	mpk_w_array(&w, 2);
	mpk_w_uint(&w, WIRE_PEERS);
	mpk_w_array(&w, 1);
	mpk_w_array(&w, 3);
	mpk_w_bin(&w, id, 32);
	mpk_w_cstr(&w, "");
	mpk_w_cstr(&w, "");
	expect_proto(&w, "address is empty");

	/* A listen port over 65535; an id of the wrong length. */
	hello_w(&w, "", 65536, 0);
	expect_proto(&w, "listen port");

	mpk_w_init(&w);
	mpk_w_array(&w, 4);
	mpk_w_uint(&w, WIRE_CHUNK_REQ);
	mpk_w_uint(&w, 1);
	mpk_w_bin(&w, id, 31);
	mpk_w_uint(&w, 0);
	expect_proto(&w, "malformed");

	/* Too few fields, a field of the wrong type, bytes after the message. */
	mpk_w_init(&w);
	mpk_w_array(&w, 2);
	mpk_w_uint(&w, WIRE_PING);
	mpk_w_uint(&w, 1);
	expect_proto(&w, "1 fields, needs 2");

	mpk_w_init(&w);
	mpk_w_array(&w, 2);
	mpk_w_uint(&w, WIRE_CANCEL);
	mpk_w_cstr(&w, "1");
	expect_proto(&w, "CANCEL: malformed");

	mpk_w_init(&w);
	mpk_w_array(&w, 2);
	mpk_w_uint(&w, WIRE_CANCEL);
	mpk_w_uint(&w, 1);
	mpk_w_uint(&w, 1);
	expect_proto(&w, "malformed");
}

/* The encoder refuses what a decoder of the same version would. */
static void test_encoder_checks(void **state)
{
	struct wire_msg m;
	uint8_t *buf;
	size_t len;

	(void)state;
	sample(WIRE_CHUNK_DATA, &m);
	m.chunk_data.len = WIRE_CHUNK_DATA_MAX + 1;
	assert_int_equal(wire_encode(&m, &buf, &len), FERRY_EINVAL);
	assert_null(buf);
	sample(WIRE_HAVE_ADD, &m);
	m.have_add.n = 0;
	assert_int_equal(wire_encode(&m, &buf, &len), FERRY_EINVAL);
	sample(WIRE_CLAIM, &m);
	m.claim.positions[m.claim.n - 1] = WIRE_HAVE_CHUNKS_MAX;
	assert_int_equal(wire_encode(&m, &buf, &len), FERRY_EINVAL);
	assert_non_null(strstr(ferry_errmsg(FERRY_EINVAL), "CLAIM whisper@4: position"));
	m.claim.positions[m.claim.n - 1] = WIRE_HAVE_CHUNKS_MAX - 1;
	sample(WIRE_MANIFEST_REQ, &m);
	strcpy(m.manifest_req.name, "Upper");
	assert_int_equal(wire_encode(&m, &buf, &len), FERRY_EINVAL);
	sample(WIRE_HELLO, &m);
	m.hello.version_min = 4;
	assert_int_equal(wire_encode(&m, &buf, &len), FERRY_EINVAL);
	m.type = (enum wire_type)200;
	assert_int_equal(wire_encode(&m, &buf, &len), FERRY_EINVAL);
}

static void test_unknown_type(void **state)
{
	struct mpk_w w;
	struct wire_msg d;
	int rc;

	(void)state;
	mpk_w_init(&w);
	mpk_w_array(&w, 3);
	mpk_w_uint(&w, 99);
	mpk_w_cstr(&w, "future");
	mpk_w_uint(&w, 1);
	rc = decode_w(&w, &d);
	assert_int_equal(rc, FERRY_EPROTO);
	assert_int_equal(d.type, 99);
	assert_false(wire_type_known(d.type));
	assert_non_null(strstr(ferry_errmsg(rc), "unknown message type 99"));

	/* Type 0 is reserved: malformed, not skippable. */
	mpk_w_init(&w);
	mpk_w_array(&w, 1);
	mpk_w_uint(&w, 0);
	assert_int_equal(decode_w(&w, &d), FERRY_EPROTO);
	assert_int_equal(d.type, WIRE_NONE);
	assert_null(wire_name(0));
	assert_string_equal(wire_name(WIRE_CHUNK_DATA), "CHUNK_DATA");
	assert_true(wire_flags(WIRE_CHUNK_DATA) & WIRE_F_BULK);
	assert_false(wire_flags(WIRE_PING) & WIRE_F_BULK);
}

/* Fields a later version appends are skipped, in messages and in list entries. */
static void test_appended_fields(void **state)
{
	struct mpk_w w;
	struct wire_msg d;
	uint8_t *buf, id[32] = {1};
	size_t len;

	(void)state;
	mpk_w_init(&w);
	mpk_w_array(&w, 10);
	mpk_w_uint(&w, WIRE_HELLO);
	mpk_w_uint(&w, 1);
	mpk_w_uint(&w, 2);
	mpk_w_cstr(&w, "s");
	mpk_w_uint(&w, 7440);
	mpk_w_cstr(&w, "ferry 9");
	mpk_w_uint(&w, 5);
	mpk_w_uint(&w, 1);
	mpk_w_map(&w, 1);
	mpk_w_cstr(&w, "new");
	mpk_w_array(&w, 2);
	mpk_w_nil(&w);
	mpk_w_bool(&w, true);
	mpk_w_cstr(&w, "more");
	assert_int_equal(mpk_w_take(&w, &buf, &len), 0);
	assert_int_equal(wire_decode(buf, len, &d), 0);
	assert_int_equal(d.hello.version_max, 2);
	assert_string_equal(d.hello.software, "ferry 9");
	assert_int_equal(d.hello.lane, 1);
	free(buf);

	mpk_w_init(&w);
	mpk_w_array(&w, 2);
	mpk_w_uint(&w, WIRE_PEERS);
	mpk_w_array(&w, 1);
	mpk_w_array(&w, 4);
	mpk_w_bin(&w, id, 32);
	mpk_w_cstr(&w, "h:1");
	mpk_w_cstr(&w, "x");
	mpk_w_uint(&w, 42);
	assert_int_equal(mpk_w_take(&w, &buf, &len), 0);
	assert_int_equal(wire_decode(buf, len, &d), 0);
	assert_int_equal(d.peers.n, 1);
	assert_string_equal(d.peers.entries[0].site, "x");
	wire_msg_clear(&d);
	free(buf);
}

/* The largest message of each bounded type stays within its table column. */
static void test_len_max(void **state)
{
	struct wire_msg m = {.type = WIRE_DIGEST};
	struct wire_digest_entry *e = xcalloc(WIRE_DIGEST_MAX, sizeof(*e));
	struct wire_peer_entry *p = xcalloc(WIRE_PEERS_MAX, sizeof(*p));
	uint32_t *pos = xcalloc(WIRE_HAVE_ADD_MAX, sizeof(*pos));
	uint8_t *bm = xcalloc(1, WIRE_HAVE_BITMAP_MAX);
	uint8_t *buf;
	size_t len;

	(void)state;
	for (int i = 0; i < WIRE_DIGEST_MAX; i++) {
		memset(e[i].name, 'z', WIRE_NAME_MAX);
		e[i].version = UINT64_MAX;
	}
	m.digest.n = WIRE_DIGEST_MAX;
	m.digest.entries = e;
	assert_int_equal(wire_encode(&m, &buf, &len), 0);
	assert_true(len <= WIRE_DIGEST_LEN_MAX);
	free(buf);

	memset(&m, 0, sizeof(m));
	m.type = WIRE_PEERS;
	for (int i = 0; i < WIRE_PEERS_MAX; i++) {
		memset(p[i].addr, 'a', WIRE_ADDR_MAX);
		memset(p[i].site, 's', WIRE_SITE_MAX);
	}
	m.peers.n = WIRE_PEERS_MAX;
	m.peers.entries = p;
	assert_int_equal(wire_encode(&m, &buf, &len), 0);
	assert_true(len <= WIRE_PEERS_LEN_MAX);
	free(buf);

	memset(&m, 0, sizeof(m));
	m.type = WIRE_HAVE_ADD;
	strcpy(m.have_add.name, "m");
	m.have_add.version = UINT64_MAX;
	for (int i = 0; i < WIRE_HAVE_ADD_MAX; i++)
		pos[i] = WIRE_HAVE_CHUNKS_MAX - 1;
	m.have_add.n = WIRE_HAVE_ADD_MAX;
	m.have_add.positions = pos;
	assert_int_equal(wire_encode(&m, &buf, &len), 0);
	assert_true(len <= WIRE_HAVE_ADD_LEN_MAX);
	free(buf);

	memset(&m, 0, sizeof(m));
	m.type = WIRE_HAVE;
	strcpy(m.have.name, "m");
	m.have.nchunks = WIRE_HAVE_CHUNKS_MAX;
	m.have.first = WIRE_HAVE_CHUNKS_MAX - 8 * WIRE_HAVE_BITMAP_MAX;
	memset(bm, 0xff, WIRE_HAVE_BITMAP_MAX);
	m.have.bitmap = bm;
	m.have.bitmap_len = WIRE_HAVE_BITMAP_MAX;
	assert_int_equal(wire_encode(&m, &buf, &len), 0);
	assert_true(len <= WIRE_HAVE_LEN_MAX);
	free(buf);

	/* The largest CHUNK_DATA fits one session frame; the largest HELLO one handshake. */
	sample(WIRE_CHUNK_DATA, &m);
	m.chunk_data.req = UINT32_MAX;
	m.chunk_data.offset = WIRE_CHUNK_ENC_MAX - WIRE_CHUNK_DATA_MAX;
	assert_int_equal(wire_encode(&m, &buf, &len), 0);
	assert_true(len <= SESSION_FRAME_MAX);
	free(buf);
	sample(WIRE_HELLO, &m);
	memset(m.hello.site, 's', WIRE_SITE_MAX);
	memset(m.hello.software, 'v', WIRE_SOFTWARE_MAX);
	m.hello.version_min = m.hello.version_max = UINT32_MAX;
	m.hello.uptime_s = UINT64_MAX;
	m.hello.lane = WIRE_LANE_MAX;
	assert_int_equal(wire_encode(&m, &buf, &len), 0);
	assert_true(len <= SESSION_HELLO_MAX);
	free(buf);
	free(e);
	free(p);
	free(pos);
	free(bm);
}

/* Exact bytes, as docs/protocol.md shows them. */
static void test_vectors(void **state)
{
	static const uint8_t ping[] = {0x93, 0x0b, 0x01, 0xcd, 0x01, 0x00};
	static const uint8_t cancel[] = {0x92, 0x0a, 0xce, 0x00, 0x01, 0x00, 0x00};
	struct wire_msg m = {.type = WIRE_PING};
	uint8_t *buf;
	size_t len;

	(void)state;
	m.ping.nonce = 1;
	m.ping.stamp = 256;
	assert_int_equal(wire_encode(&m, &buf, &len), 0);
	assert_int_equal(len, sizeof(ping));
	assert_memory_equal(buf, ping, len);
	free(buf);
	m.type = WIRE_CANCEL;
	m.cancel.req = 65536;
	assert_int_equal(wire_encode(&m, &buf, &len), 0);
	assert_int_equal(len, sizeof(cancel));
	assert_memory_equal(buf, cancel, len);
	free(buf);
}

static void test_negotiate(void **state)
{
	struct wire_hello h = {.version_min = WIRE_VERSION_MIN, .version_max = WIRE_VERSION};
	uint32_t v;
	int rc;

	(void)state;
	assert_int_equal(wire_negotiate_range(1, 1, 1, 1, &v), 0);
	assert_int_equal(v, 1);
	/* An upgraded node (1..2) with an old one (1..1) speaks 1; two new ones speak 2. */
	assert_int_equal(wire_negotiate_range(1, 2, 1, 1, &v), 0);
	assert_int_equal(v, 1);
	assert_int_equal(wire_negotiate_range(1, 2, 2, 3, &v), 0);
	assert_int_equal(v, 2);
	assert_int_equal(wire_negotiate_range(2, 3, 1, 2, &v), 0);
	assert_int_equal(v, 2);
	/* Two versions apart: nothing in common; the message names the old node's range. */
	rc = wire_negotiate_range(3, 4, 1, 2, &v);
	assert_int_equal(rc, FERRY_EVERSION);
	assert_int_equal(v, 0);
	assert_non_null(strstr(ferry_errmsg(rc), "upgrade the node that speaks 1..2"));
	rc = wire_negotiate_range(1, 1, 2, 3, &v);
	assert_int_equal(rc, FERRY_EVERSION);
	assert_non_null(strstr(ferry_errmsg(rc), "upgrade the node that speaks 1..1"));
	assert_int_equal(wire_negotiate_range(2, 1, 1, 2, &v), FERRY_EVERSION);

	assert_int_equal(wire_negotiate(&h, &v), 0);
	assert_int_equal(v, WIRE_VERSION);
	h.version_max = WIRE_VERSION + 5;
	assert_int_equal(wire_negotiate(&h, &v), 0);
	assert_int_equal(v, WIRE_VERSION);
	h.version_min = WIRE_VERSION + 1;
	rc = wire_negotiate(&h, &v);
	assert_int_equal(rc, FERRY_EVERSION);
	assert_non_null(strstr(ferry_errmsg(rc), "upgrade this node"));
	h.version_min = 0;
	h.version_max = WIRE_VERSION_MIN - 1;
	rc = wire_negotiate(&h, &v);
	assert_int_equal(rc, FERRY_EVERSION);
}

/* docs/protocol.md lists every message with its number, queue and size, as the table says. */
static void test_docs_table(void **state)
{
	char *path = xasprintf("%s/docs/protocol.md", TOP_SRCDIR), *text;
	size_t len;

	(void)state;
	assert_int_equal(read_file(path, 1 << 20, &text, &len), 0);
	for (size_t i = 0; i < ARRAY_SIZE(all_types); i++) {
		unsigned fl = wire_flags(all_types[i]);
		const char *queue = fl & WIRE_F_HANDSHAKE ? "handshake"
				    : fl & WIRE_F_BULK	  ? "bulk"
							  : "control";
		char *row = xasprintf("\n| %u | `%s` | %s | %zu |", (unsigned)all_types[i],
				      wire_name(all_types[i]), queue, wire_len_max(all_types[i]));
		char *section = xasprintf("\n### %s\n", wire_name(all_types[i]));

		if (strstr(text, row) == NULL)
			fail_msg("docs/protocol.md has no row '%s'", row + 1);
		if (strstr(text, section) == NULL)
			fail_msg("docs/protocol.md has no section '%s'", section + 1);
		free(row);
		free(section);
	}
	free(text);
	free(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_round_trip),	    cmocka_unit_test(test_complete_have),
	    cmocka_unit_test(test_truncated),	    cmocka_unit_test(test_oversized),
	    cmocka_unit_test(test_encoder_checks),  cmocka_unit_test(test_unknown_type),
	    cmocka_unit_test(test_appended_fields), cmocka_unit_test(test_len_max),
	    cmocka_unit_test(test_vectors),	    cmocka_unit_test(test_negotiate),
	    cmocka_unit_test(test_docs_table),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
