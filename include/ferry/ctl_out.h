/*
 * ferryctl's output: one interface, two implementations (after bgpctl's
 * output vtable). Commands describe what they print as typed fields, lists
 * and rows; the text implementation prints "Label: value" lines and aligned
 * tables for people, the JSON one prints one JSON document for scripts.
 *
 * A document is: ctl_out_new(), any mix of top-level fields and lists, then
 * ctl_out_free() (which ends the document and flushes it). Inside a list,
 * each row is ctl_out_row_begin(), fields, ctl_out_row_end(). Every row of a
 * list should set the same fields in the same order (they become the
 * table's columns). Keys are JSON member names (snake_case); labels are the
 * text form's headings.
 */
#ifndef FERRY_CTL_OUT_H
#define FERRY_CTL_OUT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

enum ctl_out_format { CTL_OUT_TEXT, CTL_OUT_JSON };

struct ctl_out;

/* Start a document written to f (not closed by ctl_out_free). Never fails. */
struct ctl_out *ctl_out_new(enum ctl_out_format fmt, FILE *f);
/* End the document, flush it and free o. NULL is a no-op. */
void ctl_out_free(struct ctl_out *o);
/*
 * Free o without ending the document (after a failure, whose message goes to
 * stderr). A JSON document is dropped whole (nothing of it was printed);
 * text already printed stays printed. NULL is a no-op.
 */
void ctl_out_discard(struct ctl_out *o);

/* Fields, at the top level or in a row. */
void ctl_out_str(struct ctl_out *o, const char *key, const char *label, const char *v);
void ctl_out_uint(struct ctl_out *o, const char *key, const char *label, uint64_t v);
/* A byte count: "1.5 GiB" as text, an integer in JSON. */
void ctl_out_bytes(struct ctl_out *o, const char *key, const char *label, uint64_t v);
/* A percentage (0..100): "68.2%" as text, a number in JSON. */
void ctl_out_pct(struct ctl_out *o, const char *key, const char *label, double v);
/* "yes" or "no" as text ("yes" or a blank cell in a table), true/false in JSON. */
void ctl_out_bool(struct ctl_out *o, const char *key, const char *label, bool v);

/* A list of rows: a table as text, an array of objects in JSON. */
void ctl_out_list_begin(struct ctl_out *o, const char *key);
void ctl_out_row_begin(struct ctl_out *o);
void ctl_out_row_end(struct ctl_out *o);
void ctl_out_list_end(struct ctl_out *o);

/*
 * A sentence for people ("exported 3 files to out/"): printed as a line of
 * text, left out of JSON (the fields carry the same facts).
 */
void ctl_out_note(struct ctl_out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Write s as a JSON string (quoted and escaped; invalid UTF-8 becomes U+FFFD). */
void ctl_out_json_string(FILE *f, const char *s);

#endif
