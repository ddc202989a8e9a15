/*
 * The node's side of misbehaviour (misbehave.h): count a peer's offence
 * against its node id and log a ban once, with the peer's id, address and
 * what it did. The counting and the length of bans are sched.c's; refusing
 * a banned node at the handshake is node__allow's. docs/protocol.md,
 * "Misbehaviour".
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>

#include "ferry/log.h"
#include "ferry/misbehave.h"
#include "ferry/peer.h"
#include "ferry/sched.h"
#include "node_int.h"

void node__ban_note(struct node *n, const struct npeer *p, enum misbehave kind,
		    const struct sched_verdict *v)
{
	uint64_t now = node__now(n);
	char pid[ID_SHORT_LEN];

	if (v->action != SCHED_BAN)
		return;
	log_warn(LOG_PEER, "banning peer %s (%s) for %" PRIu64 " s after %u offences, the last %s",
		 id_short(pid, p->id), p->c != NULL ? peer_conn_addr(p->c) : p->addr,
		 v->ban_until > now ? (v->ban_until - now + 999) / 1000 : 0, v->offences,
		 misbehave_name(kind));
}

void node__misbehaved(struct node *n, struct npeer *p, enum misbehave kind)
{
	struct sched_verdict v = {0};

	/* What was already on its way from a dropped peer is not held against it again. */
	if (kind == MISBEHAVE_NONE || p->dropped)
		return;
	p->dropped = true;
	sched_offence(n->sched, p->id, node__now(n), &v);
	node__ban_note(n, p, kind, &v);
}
