/*
 * mpk: the msgpack module, the only code that includes <msgpack.h>.
 *
 * Writer: a growable buffer filled through msgpack-c's packer, which always
 * picks the shortest encoding of a value (so equal values encode to equal
 * bytes). The write functions cannot fail one by one; a value the format
 * cannot hold (a string, binary or container over 2^32-1) makes the writer
 * fail at mpk_w_take(), so a caller checks once at the end.
 *
 * Reader: our own pull parser over a byte slice. msgpack-c's unpacker
 * allocates zones sized by the lengths an input declares; bytes from peers
 * and USB drives must never make us allocate by a declared length, so the
 * reader never allocates at all: strings and binaries come back as borrowed
 * views into the slice, and container counts come back to the caller, which
 * checks them against its own limit before allocating anything. Every read
 * is bounds-checked, and errors are sticky (as OpenBSD's ibuf_get_*
 * readers): after the first failure every later call fails with the same
 * code, so a decoder may chain reads and check once. The first failure
 * records a detail naming the byte offset (ferry_errmsg(FERRY_EFORMAT)).
 *
 * Integers are read by value, not by encoding: mpk_r_uint accepts any
 * integer encoding whose value is >= 0, and mpk_r_int any whose value fits
 * in int64_t.
 */
#ifndef FERRY_MPK_H
#define FERRY_MPK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Deepest nesting of arrays and maps mpk_r_skip() walks through. */
#define MPK_DEPTH_MAX 32

/* A writer. Initialise with mpk_w_init(); the fields are private. */
struct mpk_w {
	uint8_t *buf;
	size_t len;
	size_t cap;
	int err;
};

/* Start an empty writer. Allocates nothing until the first value. */
void mpk_w_init(struct mpk_w *w);
/* Begin a map of n key/value pairs: the next 2n values are its keys and values. */
void mpk_w_map(struct mpk_w *w, size_t n);
/* Begin an array of n values: the next n values are its elements. */
void mpk_w_array(struct mpk_w *w, size_t n);
/* An unsigned integer, in the shortest of positive fixint and uint 8/16/32/64. */
void mpk_w_uint(struct mpk_w *w, uint64_t v);
/* A signed integer, shortest form; non-negative values are written as mpk_w_uint does. */
void mpk_w_int(struct mpk_w *w, int64_t v);
/* A float64. */
void mpk_w_double(struct mpk_w *w, double v);
/* A string of n bytes (UTF-8 by convention; not checked). */
void mpk_w_str(struct mpk_w *w, const void *p, size_t n);
/* A NUL-terminated string, without its NUL. */
void mpk_w_cstr(struct mpk_w *w, const char *s);
/* A binary of n bytes (bin 8/16/32). */
void mpk_w_bin(struct mpk_w *w, const void *p, size_t n);
/* true or false. */
void mpk_w_bool(struct mpk_w *w, bool v);
/* nil. */
void mpk_w_nil(struct mpk_w *w);
/*
 * Hand over what was written: *out (malloc'd, never NULL, owned by the
 * caller) and *len. Returns 0, or FERRY_ETOOBIG if a value was too large to
 * encode, in which case the buffer is freed and *out is NULL. Either way the
 * writer is empty again afterwards and may be reused.
 */
int mpk_w_take(struct mpk_w *w, uint8_t **out, size_t *len);
/* Discard what was written. The writer is empty again afterwards. */
void mpk_w_free(struct mpk_w *w);

/* The type of the next value, as encoded. */
enum mpk_type {
	MPK_NONE = 0, /* no value: end of input, an error, or the unused byte 0xc1 */
	MPK_NIL,
	MPK_BOOL,
	MPK_UINT, /* positive fixint, uint 8..64 */
	MPK_INT,  /* negative fixint, int 8..64 (whatever the value's sign) */
	MPK_FLOAT,
	MPK_STR,
	MPK_BIN,
	MPK_ARRAY,
	MPK_MAP,
	MPK_EXT,
};

/* A reader over a borrowed byte slice. The fields are private. */
struct mpk_r {
	const uint8_t *p;
	size_t n;
	size_t off;
	int err;
};

/*
 * Start reading p[0..n). The slice must outlive the reader and every view it
 * returns. Every mpk_r_* read below returns 0, or FERRY_EFORMAT (with a
 * detail naming the byte offset) if the next value is of another type, is
 * truncated or declares more than is left, or if an earlier read failed.
 */
void mpk_r_init(struct mpk_r *r, const void *p, size_t n);

/*
 * Read a map header; *n is its number of key/value pairs, which the caller
 * then reads as 2n values. Fails if the next value is not a map or if 2n is
 * more than the bytes left (each value takes at least one byte), so n is
 * always bounded by the input's size; the caller still checks n against its
 * own limit before allocating by it. On failure *n is 0.
 */
int mpk_r_map(struct mpk_r *r, uint32_t *n);
/* Read an array header; as mpk_r_map, with n elements (n <= bytes left). */
int mpk_r_array(struct mpk_r *r, uint32_t *n);
/* Read an integer whose value is >= 0, in any integer encoding. */
int mpk_r_uint(struct mpk_r *r, uint64_t *v);
/* Read an integer whose value fits in int64_t, in any integer encoding. */
int mpk_r_int(struct mpk_r *r, int64_t *v);
/* Read a float32 or float64 (a float32 is widened). */
int mpk_r_double(struct mpk_r *r, double *v);
/*
 * Read a string: *s points into the slice (not NUL-terminated, not checked
 * for UTF-8) and is valid as long as the slice is.
 */
int mpk_r_str(struct mpk_r *r, const char **s, size_t *len);
/* Read a binary: *p points into the slice, valid as long as the slice is. */
int mpk_r_bin(struct mpk_r *r, const uint8_t **p, size_t *len);
/* Read a binary of exactly n bytes into out (ids, keys, signatures); another length fails. */
int mpk_r_bin_fixed(struct mpk_r *r, void *out, size_t n);
/* Read true or false. */
int mpk_r_bool(struct mpk_r *r, bool *v);
/* Read a nil. */
int mpk_r_nil(struct mpk_r *r);
/*
 * Skip one value of any type, containers with everything in them. Fails on
 * nesting deeper than MPK_DEPTH_MAX arrays and maps. Allocates nothing and
 * uses a fixed amount of stack.
 */
int mpk_r_skip(struct mpk_r *r);
/* 0 if no read failed and every byte was consumed; FERRY_EFORMAT otherwise. */
int mpk_r_done(struct mpk_r *r);

/*
 * The type of the next value, from its first byte, without consuming it:
 * MPK_NONE at the end of the input, after an error, or at a byte that starts
 * no value. It does not check that the value is complete (the read that
 * follows does). Never fails and never records an error.
 */
enum mpk_type mpk_r_peek(const struct mpk_r *r);

/* Bytes not yet consumed. */
static inline size_t mpk_r_left(const struct mpk_r *r)
{
	return r->n - r->off;
}

/* Offset of the next value from the start of the slice (for messages). */
static inline size_t mpk_r_offset(const struct mpk_r *r)
{
	return r->off;
}

/* 0, or the sticky error code of the first failed read. */
static inline int mpk_r_error(const struct mpk_r *r)
{
	return r->err;
}

#endif
