/*
 * wire: the messages peers exchange once a session is up (and the hello that
 * the handshake carries). One table, WIRE_MESSAGES, defines every message:
 * its name, its type number, how the transport treats it and the largest
 * encoding this version produces; the enum, the names for logs, the encoder
 * and decoder dispatch and the table in docs/protocol.md ("Messages") all
 * follow from it (the unit test checks the document against the table).
 *
 * Every message is a msgpack array whose first element is the type number:
 *
 *   [type, field1, field2, ...]
 *
 * with the fields of each type in the order given below and in the document.
 * A decoder accepts and skips elements after the last field it knows, so a
 * later version may append fields to a message without breaking older nodes.
 * All msgpack goes through mpk.h.
 *
 * Versions. A node speaks WIRE_VERSION_MIN..WIRE_VERSION (its own version and
 * the one before, once there is one). Each hello carries the sender's range;
 * both sides pick the highest version in both ranges (wire_negotiate), or
 * close the connection if the ranges do not meet. HELLO's first three
 * elements ([1, version_min, version_max]) never change between versions.
 *
 * Unknown types. wire_decode() fails with FERRY_EPROTO for a type number it
 * does not know but leaves that number in msg->type; the transport skips
 * such messages (wire_type_known() says which), so a later version may add
 * optional messages. A known type that does not decode is a protocol error.
 *
 * Ownership of decoded messages: fixed-size fields and strings (names,
 * sites, addresses) are copied into the struct, NUL-terminated; byte strings
 * (manifest bytes, bitmaps, chunk data) are borrowed views into the input
 * buffer and valid only as long as it is; lists (digest entries, positions,
 * peers) are allocated by the decoder and freed by wire_msg_clear(). Decoding
 * never allocates more than the message's caps allow, and checks every count
 * and length against them before using it.
 */
#ifndef FERRY_WIRE_H
#define FERRY_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ferry/manifest.h"

/*
 * Protocol version history:
 *   1  the first version.
 */
#define WIRE_VERSION	 1
#define WIRE_VERSION_MIN 1

/* Caps, checked by the encoder and the decoder alike. */
#define WIRE_SITE_MAX	     64	 /* bytes of a site name */
#define WIRE_SOFTWARE_MAX    64	 /* bytes of the software version string */
#define WIRE_ADDR_MAX	     255 /* bytes of a "host:port" address */
#define WIRE_LANE_MAX	     7	 /* the highest lane number a HELLO may give */
#define WIRE_NAME_MAX	     MANIFEST_NAME_MAX
#define WIRE_DIGEST_MAX	     1024	/* entries in one DIGEST */
#define WIRE_HAVE_CHUNKS_MAX (1u << 24) /* chunk positions in one version */
#define WIRE_HAVE_BITMAP_MAX 32768	/* bitmap bytes in one HAVE (262144 positions) */
#define WIRE_HAVE_ADD_MAX    4096	/* positions in one HAVE_ADD */
#define WIRE_PEERS_MAX	     64		/* entries in one PEERS */
#define WIRE_CHUNK_DATA_MAX  61440	/* data bytes in one CHUNK_DATA: 60 KiB */
/* Largest encoded chunk or index piece: 1 MiB raw plus the codec header. */
#define WIRE_CHUNK_ENC_MAX (1024u * 1024u + 5u)
#define WIRE_ID_LEN	   32

/*
 * Upper bounds of encodings, for the table: an array header and an integer
 * take at most 5 and 9 bytes, a string or binary its bytes plus 5.
 */
#define WIRE__HDR	 (5 + 9)
#define WIRE__U		 9
#define WIRE__S(n)	 ((n) + 5)
#define WIRE__DIGEST_ENT (5 + WIRE__S(WIRE_NAME_MAX) + WIRE__U + WIRE__S(WIRE_ID_LEN))
#define WIRE__PEER_ENT	 (5 + WIRE__S(WIRE_ID_LEN) + WIRE__S(WIRE_ADDR_MAX) + WIRE__S(WIRE_SITE_MAX))

#define WIRE_HELLO_LEN_MAX                                                                         \
	(WIRE__HDR + 4 * WIRE__U + WIRE__S(WIRE_SITE_MAX) + WIRE__S(WIRE_SOFTWARE_MAX) + 1)
#define WIRE_DIGEST_LEN_MAX	  (WIRE__HDR + 1 + 5 + WIRE_DIGEST_MAX * WIRE__DIGEST_ENT)
#define WIRE_MANIFEST_REQ_LEN_MAX (WIRE__HDR + WIRE__S(WIRE_NAME_MAX) + WIRE__U)
#define WIRE_MANIFEST_LEN_MAX	  (WIRE__HDR + WIRE__S(MANIFEST_SIGNED_MAX))
#define WIRE_HAVE_LEN_MAX                                                                          \
	(WIRE__HDR + WIRE__S(WIRE_NAME_MAX) + 3 * WIRE__U + 1 + WIRE__S(WIRE_HAVE_BITMAP_MAX))
#define WIRE_HAVE_ADD_LEN_MAX                                                                      \
	(WIRE__HDR + WIRE__S(WIRE_NAME_MAX) + WIRE__U + 5 + WIRE_HAVE_ADD_MAX * WIRE__U)
#define WIRE_CHUNK_REQ_LEN_MAX	(WIRE__HDR + 2 * WIRE__U + WIRE__S(WIRE_ID_LEN))
#define WIRE_CHUNK_DATA_LEN_MAX (WIRE__HDR + 3 * WIRE__U + WIRE__S(WIRE_CHUNK_DATA_MAX))
#define WIRE_REQ_LEN_MAX	(WIRE__HDR + WIRE__U)
#define WIRE_PING_LEN_MAX	(WIRE__HDR + 2 * WIRE__U)
#define WIRE_PEERS_LEN_MAX	(WIRE__HDR + 5 + WIRE_PEERS_MAX * WIRE__PEER_ENT)

/* The largest message of this version: the transport's cap on one message. */
#define WIRE_MSG_MAX WIRE_MANIFEST_LEN_MAX

/* Flags of a message type (the table's fourth column). */
enum wire_flags {
	/* Only as the payload of handshake messages 2 and 3; refused afterwards. */
	WIRE_F_HANDSHAKE = 1u << 0,
	/* Bulk data: queued behind every control message by the transport. */
	WIRE_F_BULK = 1u << 1,
	/* Answered by the transport itself and not passed to the daemon. */
	WIRE_F_TRANSPORT = 1u << 2,
};

/*
 * X(NAME, member, type number, flags, largest encoding, what it is for).
 * Type numbers are never reused: a retired message keeps its number.
 */
#define WIRE_MESSAGES(X)                                                                           \
	X(HELLO, hello, 1, WIRE_F_HANDSHAKE, WIRE_HELLO_LEN_MAX,                                   \
	  "who the sender is and which protocol versions it speaks")                               \
	X(DIGEST, digest, 2, 0, WIRE_DIGEST_LEN_MAX,                                               \
	  "anti-entropy: the newest manifest the sender holds per model name")                     \
	X(MANIFEST_REQ, manifest_req, 3, 0, WIRE_MANIFEST_REQ_LEN_MAX,                             \
	  "ask for the signed manifest of one version")                                            \
	X(MANIFEST, manifest, 4, 0, WIRE_MANIFEST_LEN_MAX,                                         \
	  "a signed manifest: an answer, or an eager push of a new version")                       \
	X(HAVE, have, 5, 0, WIRE_HAVE_LEN_MAX, "which chunks of one version the sender holds")     \
	X(HAVE_ADD, have_add, 6, 0, WIRE_HAVE_ADD_LEN_MAX,                                         \
	  "chunks of one version the sender has received since")                                   \
	X(CHUNK_REQ, chunk_req, 7, 0, WIRE_CHUNK_REQ_LEN_MAX,                                      \
	  "ask for one encoded chunk or index piece by id")                                        \
	X(CHUNK_DATA, chunk_data, 8, WIRE_F_BULK, WIRE_CHUNK_DATA_LEN_MAX,                         \
	  "a piece of the encoded chunk a request asked for")                                      \
	X(CHUNK_NONE, chunk_none, 9, 0, WIRE_REQ_LEN_MAX,                                          \
	  "the sender does not have (or will not send) what a request asked for")                  \
	X(CANCEL, cancel, 10, 0, WIRE_REQ_LEN_MAX, "the requester no longer wants a request")      \
	X(PING, ping, 11, WIRE_F_TRANSPORT, WIRE_PING_LEN_MAX,                                     \
	  "liveness and round-trip time; answered with PONG")                                      \
	X(PONG, pong, 12, WIRE_F_TRANSPORT, WIRE_PING_LEN_MAX, "the answer to a PING")             \
	X(PEERS, peers, 13, 0, WIRE_PEERS_LEN_MAX, "peer exchange: nodes the sender knows")        \
	X(CLAIM, claim, 14, 0, WIRE_HAVE_ADD_LEN_MAX,                                              \
	  "chunks of one version the sender asked a WAN peer for (to its site's members)")

enum wire_type {
	WIRE_NONE = 0, /* no message (decode failed before the type was read) */
#define WIRE__ENUM(NAME, member, num, flags, maxlen, doc) WIRE_##NAME = (num),
	WIRE_MESSAGES(WIRE__ENUM)
#undef WIRE__ENUM
};

struct wire_hello {
	uint32_t version_min; /* 1 <= version_min <= version_max */
	uint32_t version_max;
	char site[WIRE_SITE_MAX + 1];	      /* the sender's site ("" = none) */
	uint16_t listen_port;		      /* the sender's peer port; 0 = it does not listen */
	char software[WIRE_SOFTWARE_MAX + 1]; /* e.g. "ferry 0.1.0", for operators */
	uint64_t uptime_s;		      /* seconds since the sender started */
	uint8_t lane; /* 0: a connection of its own; k: lane k of the dialer's connection */
};

struct wire_digest_entry {
	char name[WIRE_NAME_MAX + 1];
	uint64_t version;
	uint8_t hash[WIRE_ID_LEN]; /* BLAKE2b-256 of the signed manifest */
};

struct wire_digest {
	bool more;  /* more DIGEST messages of the same round follow */
	uint32_t n; /* <= WIRE_DIGEST_MAX */
	struct wire_digest_entry *entries;
};

struct wire_manifest_req {
	char name[WIRE_NAME_MAX + 1];
	uint64_t version; /* 0 = the newest the receiver holds */
};

struct wire_manifest {
	const uint8_t *bytes; /* the signed manifest, <= MANIFEST_SIGNED_MAX bytes; borrowed */
	size_t len;
};

/*
 * Position i of a version is the i-th chunk entry of the concatenation of
 * its files' chunk indexes, files in manifest order, each index in order
 * (pieces in order, entries in order). Index pieces have no position: a node
 * sends HAVE for a version only once it holds every index piece of it.
 */
struct wire_have {
	char name[WIRE_NAME_MAX + 1];
	uint64_t version;
	uint32_t nchunks; /* positions in the version, <= WIRE_HAVE_CHUNKS_MAX */
	bool complete;	  /* the sender holds every chunk; first = 0, no bitmap */
	uint32_t first;	  /* position of bitmap bit 0; a multiple of 8 */
	/*
	 * Bit j (byte j / 8, bit j % 8, least significant first) says whether the
	 * sender holds position first + j; it replaces what an earlier HAVE said
	 * of those positions. Borrowed. Bits past nchunks are 0.
	 */
	const uint8_t *bitmap;
	size_t bitmap_len; /* <= WIRE_HAVE_BITMAP_MAX */
};

/* HAVE_ADD and CLAIM. */
struct wire_have_add {
	char name[WIRE_NAME_MAX + 1];
	uint64_t version;
	uint32_t n;	     /* 1..WIRE_HAVE_ADD_MAX */
	uint32_t *positions; /* each < WIRE_HAVE_CHUNKS_MAX */
};

struct wire_chunk_req {
	uint32_t req; /* chosen by the requester, unique among its open requests */
	uint8_t id[WIRE_ID_LEN];
	uint32_t offset; /* send from this byte of the encoded chunk (resume); usually 0 */
};

struct wire_chunk_data {
	uint32_t req;
	uint32_t offset;     /* of data in the encoded chunk */
	uint32_t total;	     /* the encoded chunk's length, 1..WIRE_CHUNK_ENC_MAX */
	const uint8_t *data; /* borrowed */
	size_t len;	     /* 1..WIRE_CHUNK_DATA_MAX; offset + len <= total */
};

/* CHUNK_NONE and CANCEL. */
struct wire_req {
	uint32_t req;
};

/* PING and PONG. */
struct wire_ping {
	uint64_t nonce;
	uint64_t stamp; /* the pinger's clock (opaque to the other side), echoed in PONG */
};

struct wire_peer_entry {
	uint8_t id[WIRE_ID_LEN];
	char addr[WIRE_ADDR_MAX + 1]; /* "host:port" or "[v6]:port" */
	char site[WIRE_SITE_MAX + 1];
};

struct wire_peers {
	uint32_t n; /* <= WIRE_PEERS_MAX */
	struct wire_peer_entry *entries;
};

/*
 * One message. Set type and fill the member of the same name; members of
 * other types are ignored. CHUNK_NONE and CANCEL use req, PONG uses pong
 * (same layout as ping), CLAIM uses claim (same layout as have_add).
 */
struct wire_msg {
	enum wire_type type;
	union {
		struct wire_hello hello;
		struct wire_digest digest;
		struct wire_manifest_req manifest_req;
		struct wire_manifest manifest;
		struct wire_have have;
		struct wire_have_add have_add;
		struct wire_have_add claim;
		struct wire_chunk_req chunk_req;
		struct wire_chunk_data chunk_data;
		struct wire_req chunk_none;
		struct wire_req cancel;
		struct wire_ping ping;
		struct wire_ping pong;
		struct wire_peers peers;
	};
	void *owned__; /* what wire_decode() allocated; freed by wire_msg_clear() */
};

/* "CHUNK_DATA" for WIRE_CHUNK_DATA; NULL for a number no message has. */
const char *wire_name(unsigned type);
/* True if this version defines the type. */
bool wire_type_known(unsigned type);
/* The type's enum wire_flags; 0 for an unknown type. */
unsigned wire_flags(unsigned type);
/* The largest encoding of the type in this version; 0 for an unknown type. */
size_t wire_len_max(unsigned type);

/*
 * Check a message against its caps and rules (the ones listed with each
 * struct and in docs/protocol.md). 0, or FERRY_EINVAL with a detail naming
 * the message, the field and the value.
 */
int wire_check(const struct wire_msg *m);

/*
 * Encode m. On success *out is malloc'd (owned by the caller) with *len
 * bytes, at most wire_len_max(m->type). FERRY_EINVAL (wire_check fails, or
 * an unknown type): nothing is allocated and *out is NULL.
 */
int wire_encode(const struct wire_msg *m, uint8_t **out, size_t *len);

/*
 * Decode one message from untrusted bytes p[0..n). On success *m holds it
 * (see the ownership note at the top: strings copied, byte strings borrowed
 * from p, lists owned by m until wire_msg_clear()). On failure nothing is
 * owned by m and the result is
 *   FERRY_EPROTO  malformed, a cap or rule broken, or an unknown type (then
 *                 m->type is that number, for wire_type_known()); the detail
 *                 names the message, the field and the offending value.
 * Always call wire_msg_clear() afterwards; it is a no-op after a failure.
 */
int wire_decode(const uint8_t *p, size_t n, struct wire_msg *m);

/* Free what wire_decode() allocated in m (not m itself). Safe to call twice. */
void wire_msg_clear(struct wire_msg *m);

/*
 * The version two nodes use: the highest in both lo_a..hi_a and lo_b..hi_b.
 * FERRY_EVERSION if the ranges do not meet, with a detail naming both ranges
 * and which side should be upgraded.
 */
int wire_negotiate_range(uint32_t lo_a, uint32_t hi_a, uint32_t lo_b, uint32_t hi_b,
			 uint32_t *version);
/* wire_negotiate_range() of this node's range and the one a hello announced. */
int wire_negotiate(const struct wire_hello *remote, uint32_t *version);

#endif
