/*
 * misbehave: the classification of a peer's failures into offences
 * (misbehave.h). Pure: the counting and the bans are sched.c's.
 */
#include "config.h"

#include "ferry/error.h"
#include "ferry/misbehave.h"

enum misbehave misbehave_of_close(int reason)
{
	switch (reason) {
	case FERRY_EAUTH:
		return MISBEHAVE_BAD_FRAME;
	case FERRY_EPROTO:
		return MISBEHAVE_PROTOCOL;
	case FERRY_ETOOBIG:
		return MISBEHAVE_OVERSIZE;
	default:
		return MISBEHAVE_NONE;
	}
}

enum misbehave misbehave_of_manifest(int rc)
{
	return rc == FERRY_EBADSIG ? MISBEHAVE_FORGED_MANIFEST : MISBEHAVE_NONE;
}

const char *misbehave_name(enum misbehave m)
{
	switch (m) {
	case MISBEHAVE_NONE:
		break;
	case MISBEHAVE_BAD_CHUNK:
		return "a bad chunk";
	case MISBEHAVE_BAD_FRAME:
		return "a frame that does not authenticate";
	case MISBEHAVE_PROTOCOL:
		return "a malformed frame or message";
	case MISBEHAVE_OVERSIZE:
		return "a message over its cap";
	case MISBEHAVE_FORGED_MANIFEST:
		return "a forged manifest";
	}
	return "no offence";
}
