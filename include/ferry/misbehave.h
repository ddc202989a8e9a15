/*
 * misbehave: which failures of a peer count against it. A peer whose
 * authenticated session sends a chunk that does not match its id, a frame
 * that does not authenticate, a frame or message that breaks the protocol,
 * a message over its cap, or a manifest whose signature by a trusted
 * publisher does not verify, is disconnected and the offence is counted
 * against its node id (sched_offence: enough of them within a period earn
 * a ban that grows with each repeat and always ends). Everything else that
 * closes a connection (a slow or silent peer, a reset, a manifest this node
 * does not trust, a format it does not read) may happen to an honest peer
 * and counts nothing. docs/protocol.md, "Misbehaviour", gives the reasons.
 */
#ifndef FERRY_MISBEHAVE_H
#define FERRY_MISBEHAVE_H

enum misbehave {
	MISBEHAVE_NONE = 0,  /* not an offence */
	MISBEHAVE_BAD_CHUNK, /* a chunk or index piece not matching its id, or data
				breaking the request's rules */
	MISBEHAVE_BAD_FRAME, /* a frame that does not authenticate (forged, replayed) */
	MISBEHAVE_PROTOCOL,  /* a frame length out of range or a message that does not decode */
	MISBEHAVE_OVERSIZE,  /* a message over its cap */
	MISBEHAVE_FORGED_MANIFEST, /* a trusted publisher's manifest whose signature fails */
};

/*
 * The offence of a peer whose up connection the transport closed with reason
 * (peer.h's on_down): FERRY_EAUTH, FERRY_EPROTO and FERRY_ETOOBIG are the
 * peer's; any other code (timeouts, resets, duplicates, this node's own
 * reasons) is MISBEHAVE_NONE.
 */
enum misbehave misbehave_of_close(int reason);

/*
 * The offence of a peer that sent a manifest manifest_open() refused with rc:
 * only FERRY_EBADSIG. Honest nodes verify a manifest before they store or
 * forward it, so a bad signature by a key this node trusts cannot come from
 * one; an untrusted publisher (FERRY_EUNTRUSTED) or a format this node does
 * not read can.
 */
enum misbehave misbehave_of_manifest(int rc);

/* What the peer did, for log lines ("a message over its cap"); never NULL. */
const char *misbehave_name(enum misbehave m);

#endif
