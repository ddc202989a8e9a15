/*
 * What the control server (ctl.c) lends its command files (ctl_ops.c): a
 * connection's arguments, its node, and the way to answer. Internal to
 * ferryd; every function runs on the loop thread.
 */
#ifndef FERRY_CTL_INT_H
#define FERRY_CTL_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "ferry/ctl.h"

struct conn;
struct node;

/* The request's argument key (NULL / def / false if absent). Checked by the command table. */
const char *ctl__arg_str(const struct conn *c, const char *key);
uint64_t ctl__arg_uint(const struct conn *c, const char *key, uint64_t def);
bool ctl__arg_bool(const struct conn *c, const char *key);
struct node *ctl__node(const struct conn *c);
/* Queue one data record of kind (rec: the kind's struct, ctl.h). */
void ctl__send(struct conn *c, enum ctl_data_kind kind, const void *rec);
/* End the exchange with a result (msg NULL: ferry_errmsg(code), or "" for 0). */
void ctl__finish(struct conn *c, int code, const char *msg);
/*
 * Before a node call whose callback answers: the connection waits for it
 * (and outlives a client that leaves). If the call fails to start, undo it
 * with ctl__unwait. The callback first calls ctl__callback_gone and touches
 * nothing if it returns true.
 */
void ctl__wait(struct conn *c);
void ctl__unwait(struct conn *c);
bool ctl__callback_gone(struct conn *c);
/* Run the reload hook (ctl_server_set_reload); FERRY_EINVAL if there is none. */
int ctl__reload(struct conn *c, char **why);

/* ctl_ops.c: the commands of the command table in ctl.c. */
void ctl__run_activate(struct conn *c);
void ctl__run_rollback(struct conn *c);
void ctl__run_pin(struct conn *c);
void ctl__run_unpin(struct conn *c);
void ctl__run_gc(struct conn *c);
void ctl__run_metrics(struct conn *c);
void ctl__run_reload(struct conn *c);
void ctl__run_verify(struct conn *c);

#endif
