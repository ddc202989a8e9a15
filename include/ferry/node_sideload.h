/*
 * The node's sideload jobs (docs/sideload.md): importing a bundle, writing
 * one and writing a have-file, for ferryctl through the control socket.
 * They extend node.h and follow its rules: called on the loop thread, long
 * work off the loop, callbacks on the loop thread, never called when the
 * function returned an error, and every descriptor passed in is taken over
 * (closed by the node, also on error).
 *
 * Importing writes the store, so it runs as a job of the store thread (the
 * store's one writer; received chunks wait in its queue meanwhile). Writing a
 * bundle or a have-file only reads the store and runs on libuv's worker pool.
 */
#ifndef FERRY_NODE_SIDELOAD_H
#define FERRY_NODE_SIDELOAD_H

#include <stddef.h>
#include <stdint.h>

#include "ferry/bundle.h"
#include "ferry/node.h"

/*
 * Progress of a sideload or bundle creation, on the loop thread, at most as
 * often as the bundle module reports it and at least once at the end. p is
 * borrowed for the call.
 */
typedef void (*node_bundle_progress_fn)(void *arg, const struct bundle_progress *p);

/*
 * Import dirfd/ferry-bundle/ (dirfd: the directory that holds it) as
 * bundle_import() does, with the node's trusted publishers. Afterwards every
 * accepted version is tracked like a fetched one: its chunks count as
 * present, the node says HAVE for it to its peers at once, a newer version
 * is gossiped, and a complete newest version is activated automatically
 * when auto_activate is on. cb gets bundle_import's code and its report
 * (borrowed for the call). FERRY_ECANCELED if ferryd stops meanwhile
 * (what was verified and committed stays).
 */
int node_sideload(struct node *n, int dirfd, node_bundle_progress_fn progress,
		  void (*cb)(void *arg, int rc, const struct bundle_report *rep), void *arg);

/* What bundle creation wrote, for node_bundle_create's callback. */
struct node_bundle_created {
	struct bundle_create_stats stats;
	struct node_model_row *rows; /* the versions written, as NAME alone resolved */
	size_t nrows;
};

/*
 * Write outdirfd/ferry-bundle/ with refs[0..nrefs) as bundle_create() does
 * (refs are copied). havefd (-1: none) is a have-file read with have_read();
 * with it only what that node lacks is written. pack_max 0 is the default.
 * cb gets the code and, on success, what was written (borrowed).
 */
int node_bundle_create(struct node *n, int outdirfd, int havefd, const struct bundle_ref *refs,
		       size_t nrefs, uint64_t pack_max, node_bundle_progress_fn progress,
		       void (*cb)(void *arg, int rc, const struct node_bundle_created *res),
		       void *arg);

/*
 * Write the node's have-file into fd (a regular file opened for writing,
 * which the caller renames into place) as have_write() does. cb gets the
 * code and the counts written.
 */
int node_have(struct node *n, int fd,
	      void (*cb)(void *arg, int rc, uint64_t nversions, uint64_t nchunks), void *arg);

#endif
