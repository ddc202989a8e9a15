/*
 * evil: a hostile ferry peer for tests. It holds a valid node key and the
 * network key, so it gets through the handshake like any node of the
 * network, and then misbehaves at one layer or another (the modes below).
 * It speaks session.h and wire.h directly over blocking sockets driven by
 * poll(2), not through peer.c, so it can break every rule the transport
 * keeps. It only dials: the node under test is the responder.
 *
 * With a store (a copy of an honest node's state directory holding the
 * model), it announces the model like an honest node would (DIGEST,
 * MANIFEST, HAVE complete) and serves the index pieces honestly, so the node
 * under test trusts it enough to ask it for chunks; what it then does with
 * those requests is the mode.
 *
 * Every event is written as one line to the output stream ("conn 3: up, peer
 * 1a2b3c4d5e6f", "conn 3: closed by the node after 0.4 s", "summary: ...")
 * for the scenario scripts to read; struct evil_result counts the same for
 * C tests.
 */
#ifndef FERRY_TESTS_EVIL_H
#define FERRY_TESTS_EVIL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "ferry/nodekey.h"
#include "ferry/session.h"

/* X(enum name, command-line name, what it does). */
#define EVIL_MODES(X)                                                                              \
	X(WRONG_BYTES, "wrong-bytes", "answer chunk requests with bytes that fail their id")       \
	X(MORE_BYTES, "more-bytes",                                                                \
	  "flood data for requests never made, then answer with more bytes than the chunk has")    \
	X(SILENT, "silent", "announce everything, then never answer anything (not even PING)")     \
	X(SLOW, "slow", "announce everything, then write one byte every --interval ms")            \
	X(STALL, "stall",                                                                          \
	  "the first half of each chunk on the first connection, no chunk data on later ones")     \
	X(HALF_OPEN, "half-open", "open --count TCP connections: nothing, or part of message 1")   \
	X(OVERSIZE, "oversize", "frame headers over the cap; a message over the message cap")      \
	X(REPLAY, "replay", "re-send a sent frame; replay a handshake on a new connection")        \
	X(GARBAGE_MSGS, "garbage-msgs", "unknown message types, then malformed msgpack")           \
	X(FORGED_MANIFEST, "forged-manifest",                                                      \
	  "manifests with a bad signature and signed by an untrusted key")                         \
	X(WRONG_KEY, "wrong-key", "handshake with another network key")                            \
	X(HONEST, "honest", "announce and serve the model correctly (a control)")

enum evil_mode {
#define EVIL__ENUM(e, name, doc) EVIL_##e,
	EVIL_MODES(EVIL__ENUM)
#undef EVIL__ENUM
	    EVIL__MODES
};

/* Number of malformed-message variants garbage-msgs cycles through, one per connection. */
#define EVIL_GARBAGE_VARIANTS 12
/*
 * Number of oversize variants cycled through, one per connection; variant 3
 * (a message held just under the cap) only runs when asked for.
 */
#define EVIL_OVERSIZE_VARIANTS 3

struct evil_opts {
	enum evil_mode mode;
	const char *host; /* the node to dial */
	uint16_t port;
	struct nodekey key; /* this peer's identity */
	bool fresh_key;	    /* a new random identity for every connection */
	uint8_t netkey[SESSION_KEY_LEN];
	const char *store_dir; /* a state dir holding the model, or NULL */
	const char *model;     /* model name to announce (with store_dir) */
	uint64_t version;      /* 0 = the newest in the store */
	const char *site;      /* site in the hello; NULL = "" */
	unsigned count;	       /* half-open: connections */
	unsigned repeat;       /* connections made one after another (>= 1) */
	unsigned gap_ms;       /* pause between them */
	unsigned hold_ms;      /* how long one connection is kept at most */
	unsigned duration_ms;  /* stop everything after this; 0 = no limit */
	unsigned interval_ms;  /* slow: between two bytes */
	bool slow_hs;	       /* slow: dribble the handshake too */
	size_t flood_bytes;    /* more-bytes: unrequested data per request */
	int variant;	       /* oversize, garbage-msgs: this variant only; -1 = cycle */
	volatile int *stop;    /* set non-zero from elsewhere to stop (tests); may be NULL */
	FILE *out;	       /* event lines; NULL = stdout */
};

struct evil_result {
	unsigned conns;		 /* TCP connections made */
	unsigned connect_failed; /* refused or timed out at the TCP level */
	unsigned up;		 /* handshakes completed (message 3 written) */
	unsigned hs_closed;	 /* closed by the node during the handshake */
	unsigned refused;      /* closed after message 3 before any message: not allowed (banned) */
	unsigned dropped;      /* closed by the node after messages had flowed */
	unsigned survived;     /* still up when the connection's time ran out */
	unsigned reqs;	       /* CHUNK_REQ received */
	unsigned pings, pongs; /* PING received, PONG received */
	unsigned manifest_reqs; /* MANIFEST_REQ received */
	unsigned bad_answers;	/* chunk answers sent that broke a rule (the mode's offence) */
	uint64_t bytes_in;	/* bytes received, all connections */
	uint64_t bytes_out;	/* bytes written */
	/* half-open */
	unsigned ho_closed_fast;     /* closed by the node within 1 s */
	unsigned ho_closed_deadline; /* closed later, before the hold ran out */
	unsigned ho_open;	     /* still open when the hold ran out */
	unsigned ho_answered;	     /* got bytes back (must stay 0: no message 1 completed) */
	/* replay and wrong-key */
	unsigned replay_msg2;  /* a replayed message 1 that was answered */
	unsigned silent_close; /* closed with no byte ever received */
};

/* The enum of a mode's command-line name; -1 if none. */
int evil_mode_parse(const char *name);
const char *evil_mode_name(enum evil_mode mode);
/* Print the modes with their descriptions, one per line. */
void evil_modes_usage(FILE *f);

/* Defaults for everything but mode, host, port, key and netkey. */
void evil_opts_default(struct evil_opts *o);

/*
 * Run the mode. 0 when it ran to its end (whatever the node did), or a
 * negative FERRY_E* code for a local failure (the store cannot be read, the
 * model is not in it, the first TCP connection fails). *res is filled either
 * way.
 */
int evil_run(const struct evil_opts *o, struct evil_result *res);

#endif
