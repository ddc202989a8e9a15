/*
 * Manifests; see include/ferry/manifest.h, and docs/formats.md for the bytes.
 *
 * Glossary: the *body* is the msgpack map that describes a version; the
 * *signed form* (the envelope) is ["ferry-manifest", body, signature]; the
 * signature covers SIG_CONTEXT || body. Everything in a signed form is
 * untrusted until the signature has verified, so manifest_open() looks at
 * the body only shallowly (the top-level "format" and "publisher" keys, with
 * no allocation) before the signature check, and decodes it in depth after.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/chunker.h"
#include "ferry/error.h"
#include "ferry/fcrypto.h"
#include "ferry/index.h"
#include "ferry/manifest.h"
#include "ferry/mpk.h"
#include "ferry/util.h"

/* The first element of the signed form. */
static const char envelope_tag[] = "ferry-manifest";
/* What a signature covers begins with these bytes, NUL included. */
static const char sig_context[] = "ferry-manifest-v1";
#define SIG_CONTEXT_LEN sizeof(sig_context)

enum { K_FORMAT, K_NAME, K_VERSION, K_LABEL, K_CREATED, K_PUBLISHER, K_FILES, K__COUNT };
static const char *const body_keys[K__COUNT] = {
    "format", "name", "version", "label", "created", "publisher", "files",
};

enum { F_PATH, F_SIZE, F_MODE, F_SHA256, F_INDEX, F__COUNT };
static const char *const file_keys[F__COUNT] = {"path", "size", "mode", "sha256", "index"};

/* Encoded size of one index piece id (bin8 header + 32 bytes). */
#define PIECE_ID_ENCODED 34

/* Room for an escaped, shortened copy of untrusted text in an error detail. */
#define ESC_LEN 160

/*
 * Copy untrusted bytes for an error detail: printable ASCII as is, anything
 * else as \xNN, cut short with "..." so a detail stays readable and a
 * terminal never sees control characters from a peer.
 */
static const char *esc(char out[static ESC_LEN], const char *p, size_t n)
{
	size_t i, o = 0;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if (o + 8 >= ESC_LEN) {
			memcpy(out + o, "...", 3);
			o += 3;
			break;
		}
		if (c >= 0x20 && c < 0x7f && c != '\\') {
			out[o++] = (char)c;
		} else {
			snprintf(out + o, ESC_LEN - o, "\\x%02x", c);
			o += 4;
		}
	}
	out[o] = '\0';
	return out;
}

/* Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF. */
static bool utf8_valid(const unsigned char *p, size_t n)
{
	size_t i = 0;

	while (i < n) {
		unsigned c = p[i];
		size_t k;
		unsigned lo = 0x80, hi = 0xbf;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			k = 1;
		} else if (c >= 0xe0 && c <= 0xef) {
			k = 2;
			if (c == 0xe0)
				lo = 0xa0;
			else if (c == 0xed)
				hi = 0x9f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			k = 3;
			if (c == 0xf0)
				lo = 0x90;
			else if (c == 0xf4)
				hi = 0x8f;
		} else {
			return false;
		}
		if (n - i - 1 < k)
			return false;
		if (p[i + 1] < lo || p[i + 1] > hi)
			return false;
		for (size_t j = 2; j <= k; j++)
			if ((p[i + j] & 0xc0) != 0x80)
				return false;
		i += k + 1;
	}
	return true;
}

static bool has_control(const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f)
			return true;
	return false;
}

static int name_check_n(const char *p, size_t n)
{
	char e[ESC_LEN];
	size_t i;

	if (n == 0 || n > MANIFEST_NAME_MAX)
		goto bad;
	for (i = 0; i < n; i++) {
		char c = p[i];

		if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
			continue;
		if (i > 0 && (c == '.' || c == '_' || c == '-'))
			continue;
		goto bad;
	}
	return 0;
bad:
	return ferry_errf(FERRY_EINVAL, "model name '%s' does not match [a-z0-9][a-z0-9._-]{0,63}",
			  esc(e, p, n));
}

int manifest_name_check(const char *name)
{
	return name_check_n(name, strlen(name));
}

static int path_check_n(const char *p, size_t n)
{
	const char *why = NULL;
	char e[ESC_LEN];
	size_t i, start = 0;

	if (n == 0)
		return ferry_errf(FERRY_EPATH, "unsafe path '': it is empty");
	if (n > MANIFEST_PATH_MAX)
		why = "it is longer than 4096 bytes";
	else if (p[0] == '/')
		why = "it is absolute";
	for (i = 0; i <= n && why == NULL; i++) {
		size_t len;

		if (i < n) {
			unsigned char c = (unsigned char)p[i];

			if (c == '\0')
				why = "it contains a NUL byte";
			else if (c == '\\')
				why = "it contains a backslash";
			else if (c < 0x20 || c == 0x7f)
				why = "it contains a control character";
			if (c != '/')
				continue;
		}
		len = i - start;
		if (len == 0)
			why = "it has an empty component";
		else if (len == 1 && p[start] == '.')
			why = "it has a '.' component";
		else if (len == 2 && p[start] == '.' && p[start + 1] == '.')
			why = "it has a '..' component";
		else if (len > MANIFEST_COMPONENT_MAX)
			why = "a component is longer than 255 bytes";
		start = i + 1;
	}
	if (why == NULL && !utf8_valid((const unsigned char *)p, n))
		why = "it is not valid UTF-8";
	if (why != NULL)
		return ferry_errf(FERRY_EPATH, "unsafe path '%s': %s", esc(e, p, n), why);
	return 0;
}

int manifest_path_check(const char *path)
{
	return path_check_n(path, strlen(path));
}

static int label_check(const char *p, size_t n)
{
	char e[ESC_LEN];

	if (n > MANIFEST_LABEL_MAX)
		return ferry_errf(FERRY_ETOOBIG, "label of %zu bytes is longer than %u", n,
				  MANIFEST_LABEL_MAX);
	if (has_control(p, n) || !utf8_valid((const unsigned char *)p, n))
		return ferry_errf(FERRY_EINVAL,
				  "label '%s' is not UTF-8 text without control characters",
				  esc(e, p, n));
	return 0;
}

/*
 * The number of index pieces a file of this size can have: every chunk holds
 * 1..CHUNK_MAX_SIZE bytes and every piece but the last is full, so a forged
 * piece count cannot make a node fetch or allocate more than the size allows.
 */
static int pieces_check(const struct manifest_file *f)
{
	char e[ESC_LEN];
	uint64_t lo = 0, hi = 0;

	if (f->size > 0) {
		hi = (f->size - 1) / INDEX_PIECE_ENTRIES + 1;
		lo = (f->size - 1) / ((uint64_t)INDEX_PIECE_ENTRIES * CHUNK_MAX_SIZE) + 1;
	}
	if (f->npieces < lo || f->npieces > hi)
		return ferry_errf(FERRY_EFORMAT,
				  "file '%s' of %llu bytes has %u index pieces, not %llu..%llu",
				  esc(e, f->path, strlen(f->path)), (unsigned long long)f->size,
				  f->npieces, (unsigned long long)lo, (unsigned long long)hi);
	return 0;
}

/*
 * Path order for finding conflicts: byte order, except that '/' sorts before
 * every other byte. Then a path that is a directory of others ("a" of "a/b")
 * is followed directly by one of them, and duplicates are adjacent.
 */
static int path_order(const void *a, const void *b)
{
	const unsigned char *x = *(const unsigned char *const *)a;
	const unsigned char *y = *(const unsigned char *const *)b;

	for (;; x++, y++) {
		int cx = *x == '/' ? 1 : *x == '\0' ? 0 : *x + 1;
		int cy = *y == '/' ? 1 : *y == '\0' ? 0 : *y + 1;

		if (cx != cy)
			return cx - cy;
		if (cx == 0)
			return 0;
	}
}

static int paths_unique(const struct manifest *m)
{
	char e1[ESC_LEN], e2[ESC_LEN];
	const char **v;
	uint32_t i;
	int err = 0;

	if (m->nfiles < 2)
		return 0;
	v = xreallocarray(NULL, m->nfiles, sizeof(*v));
	for (i = 0; i < m->nfiles; i++)
		v[i] = m->files[i].path;
	qsort(v, m->nfiles, sizeof(*v), path_order);
	for (i = 1; i < m->nfiles && err == 0; i++) {
		size_t n = strlen(v[i - 1]);

		if (strcmp(v[i - 1], v[i]) == 0)
			err = ferry_errf(FERRY_EPATH, "path '%s' is listed twice",
					 esc(e1, v[i], strlen(v[i])));
		else if (strncmp(v[i - 1], v[i], n) == 0 && v[i][n] == '/')
			err = ferry_errf(FERRY_EPATH,
					 "path '%s' is a file and also a directory of '%s'",
					 esc(e1, v[i - 1], n), esc(e2, v[i], strlen(v[i])));
	}
	free(v);
	return err;
}

/* Every check a manifest passes before it is encoded or accepted. */
static int validate(const struct manifest *m)
{
	const char *label = m->label ? m->label : "";
	uint32_t i;
	int err;

	if (m->format != MANIFEST_FORMAT)
		return ferry_errf(FERRY_EVERSION,
				  "manifest format %u is not supported (this ferry reads %u)",
				  m->format, MANIFEST_FORMAT);
	if (m->name == NULL)
		return ferry_errf(FERRY_EINVAL, "manifest has no model name");
	if ((err = name_check_n(m->name, strlen(m->name))) != 0)
		return err;
	if (m->version == 0)
		return ferry_errf(FERRY_EINVAL, "model %s: version 0 (versions start at 1)",
				  m->name);
	if ((err = label_check(label, strlen(label))) != 0)
		return err;
	if (m->nfiles > MANIFEST_FILES_MAX)
		return ferry_errf(FERRY_ETOOBIG, "model %s: %u files, more than %u", m->name,
				  m->nfiles, MANIFEST_FILES_MAX);
	for (i = 0; i < m->nfiles; i++) {
		const struct manifest_file *f = &m->files[i];

		if (f->path == NULL)
			return ferry_errf(FERRY_EPATH, "model %s: file %u has no path", m->name, i);
		if ((err = path_check_n(f->path, strlen(f->path))) != 0 ||
		    (err = pieces_check(f)) != 0)
			return err;
		if (f->npieces > 0 && f->pieces == NULL)
			return ferry_errf(FERRY_EINVAL, "model %s: file %u lists no piece ids",
					  m->name, i);
	}
	return paths_unique(m);
}

/* Size of the signed form around a body of len bytes, as msgpack-c writes it. */
static size_t sealed_len(size_t len)
{
	size_t binhdr = len <= UINT8_MAX ? 2 : len <= UINT16_MAX ? 3 : 5;

	return 1 + 1 + (sizeof(envelope_tag) - 1) + binhdr + len + 2 + FERRY_SIG_LEN;
}

int manifest_encode(const struct manifest *m, uint8_t **body, size_t *len)
{
	struct mpk_w w;
	uint32_t i, j;
	int err;

	*body = NULL;
	*len = 0;
	if ((err = validate(m)) != 0)
		return err;
	mpk_w_init(&w);
	mpk_w_map(&w, K__COUNT);
	mpk_w_cstr(&w, body_keys[K_FORMAT]);
	mpk_w_uint(&w, m->format);
	mpk_w_cstr(&w, body_keys[K_NAME]);
	mpk_w_cstr(&w, m->name);
	mpk_w_cstr(&w, body_keys[K_VERSION]);
	mpk_w_uint(&w, m->version);
	mpk_w_cstr(&w, body_keys[K_LABEL]);
	mpk_w_cstr(&w, m->label ? m->label : "");
	mpk_w_cstr(&w, body_keys[K_CREATED]);
	mpk_w_int(&w, m->created);
	mpk_w_cstr(&w, body_keys[K_PUBLISHER]);
	mpk_w_bin(&w, m->publisher, sizeof(m->publisher));
	mpk_w_cstr(&w, body_keys[K_FILES]);
	mpk_w_array(&w, m->nfiles);
	for (i = 0; i < m->nfiles; i++) {
		const struct manifest_file *f = &m->files[i];

		mpk_w_map(&w, F__COUNT);
		mpk_w_cstr(&w, file_keys[F_PATH]);
		mpk_w_cstr(&w, f->path);
		mpk_w_cstr(&w, file_keys[F_SIZE]);
		mpk_w_uint(&w, f->size);
		mpk_w_cstr(&w, file_keys[F_MODE]);
		mpk_w_uint(&w, f->mode & 0777);
		mpk_w_cstr(&w, file_keys[F_SHA256]);
		mpk_w_bin(&w, f->sha256, sizeof(f->sha256));
		mpk_w_cstr(&w, file_keys[F_INDEX]);
		mpk_w_array(&w, f->npieces);
		for (j = 0; j < f->npieces; j++)
			mpk_w_bin(&w, f->pieces[j], sizeof(f->pieces[j]));
	}
	if ((err = mpk_w_take(&w, body, len)) != 0)
		return err;
	if (sealed_len(*len) > MANIFEST_SIGNED_MAX) {
		err = ferry_errf(FERRY_ETOOBIG,
				 "model %s: manifest of %zu bytes is larger than the %u allowed",
				 m->name, *len, MANIFEST_SIGNED_MAX);
		free(*body);
		*body = NULL;
		*len = 0;
	}
	return err;
}

/* Put where a read failed in front of the reader's detail. */
static int wrap(const struct mpk_r *r, const char *where)
{
	int err = mpk_r_error(r);

	return ferry_errf(err, "%s: %s", where, ferry_errmsg(err));
}

static int key_find(const char *k, size_t n, const char *const *keys, int nkeys)
{
	int i;

	for (i = 0; i < nkeys; i++)
		if (strlen(keys[i]) == n && memcmp(keys[i], k, n) == 0)
			return i;
	return -1;
}

/* What manifest_open() needs before the signature check, found without allocating. */
struct prescan {
	bool has_format;
	bool has_publisher;
	uint64_t format;
	uint8_t publisher[32];
};

/* Look at the top level of a body for its "format" and "publisher" keys. */
static int prescan(const uint8_t *body, size_t len, struct prescan *ps)
{
	struct mpk_r r;
	uint32_t n, i;

	memset(ps, 0, sizeof(*ps));
	mpk_r_init(&r, body, len);
	mpk_r_map(&r, &n);
	for (i = 0; i < n && mpk_r_error(&r) == 0; i++) {
		const char *k;
		size_t kl;
		int key;

		if (mpk_r_str(&r, &k, &kl) != 0)
			break;
		key = key_find(k, kl, body_keys, K__COUNT);
		if (key == K_FORMAT && !ps->has_format) {
			ps->has_format = mpk_r_uint(&r, &ps->format) == 0;
		} else if (key == K_PUBLISHER && !ps->has_publisher) {
			ps->has_publisher =
			    mpk_r_bin_fixed(&r, ps->publisher, sizeof(ps->publisher)) == 0;
		} else {
			mpk_r_skip(&r);
		}
	}
	if (mpk_r_error(&r) != 0)
		return wrap(&r, "manifest");
	return 0;
}

/* A string value as a new C string; an embedded NUL is rejected with code. */
static int take_str(struct mpk_r *r, const char *where, int code, char **out)
{
	char e[ESC_LEN];
	const char *s;
	size_t n;

	if (mpk_r_str(r, &s, &n) != 0)
		return wrap(r, where);
	if (memchr(s, '\0', n) != NULL)
		return ferry_errf(code, "%s '%s' contains a NUL byte", where, esc(e, s, n));
	free(*out);
	*out = xmalloc(n + 1);
	memcpy(*out, s, n);
	(*out)[n] = '\0';
	return 0;
}

static int decode_file(struct mpk_r *r, struct manifest_file *f, uint32_t idx)
{
	char where[64];
	unsigned seen = 0;
	uint32_t n, i, j;
	uint64_t u;
	int err = 0;

	snprintf(where, sizeof(where), "manifest files[%u]", idx);
	if (mpk_r_map(r, &n) != 0)
		return wrap(r, where);
	for (i = 0; i < n && err == 0; i++) {
		const char *k;
		size_t kl;
		int key;

		if (mpk_r_str(r, &k, &kl) != 0)
			return wrap(r, where);
		key = key_find(k, kl, file_keys, F__COUNT);
		if (key < 0) {
			if (mpk_r_skip(r) != 0)
				return wrap(r, where);
			continue;
		}
		if (seen & (1u << key))
			return ferry_errf(FERRY_EFORMAT, "%s: key '%s' appears twice", where,
					  file_keys[key]);
		seen |= 1u << key;
		snprintf(where, sizeof(where), "manifest files[%u].%s", idx, file_keys[key]);
		switch (key) {
		case F_PATH:
			err = take_str(r, where, FERRY_EPATH, &f->path);
			break;
		case F_SIZE:
			mpk_r_uint(r, &f->size);
			break;
		case F_MODE:
			if (mpk_r_uint(r, &u) == 0)
				f->mode = (uint32_t)(u & 0777);
			break;
		case F_SHA256:
			mpk_r_bin_fixed(r, f->sha256, sizeof(f->sha256));
			break;
		case F_INDEX:
			if (mpk_r_array(r, &f->npieces) != 0)
				break;
			/* Checked before allocating: every id takes PIECE_ID_ENCODED bytes. */
			if (f->npieces > mpk_r_left(r) / PIECE_ID_ENCODED) {
				err =
				    ferry_errf(FERRY_EFORMAT,
					       "%s: %u piece ids cannot fit in the %zu bytes left",
					       where, f->npieces, mpk_r_left(r));
				f->npieces = 0;
				break;
			}
			f->pieces = xreallocarray(NULL, f->npieces, sizeof(*f->pieces));
			for (j = 0; j < f->npieces; j++)
				mpk_r_bin_fixed(r, f->pieces[j], sizeof(f->pieces[j]));
			break;
		}
		if (err == 0 && mpk_r_error(r) != 0)
			err = wrap(r, where);
		snprintf(where, sizeof(where), "manifest files[%u]", idx);
	}
	if (err != 0)
		return err;
	for (i = 0; i < F__COUNT; i++)
		if (!(seen & (1u << i)))
			return ferry_errf(FERRY_EFORMAT, "%s: key '%s' is missing", where,
					  file_keys[i]);
	return 0;
}

static int decode_files(struct mpk_r *r, struct manifest *m)
{
	uint32_t n, i;
	int err;

	if (mpk_r_array(r, &n) != 0)
		return wrap(r, "manifest files");
	if (n > MANIFEST_FILES_MAX)
		return ferry_errf(FERRY_ETOOBIG, "manifest lists %u files, more than %u", n,
				  MANIFEST_FILES_MAX);
	/* n is at most the bytes left (mpk_r_array) and at most MANIFEST_FILES_MAX. */
	m->files = xcalloc(n, sizeof(*m->files));
	m->nfiles = n;
	for (i = 0; i < n; i++)
		if ((err = decode_file(r, &m->files[i], i)) != 0)
			return err;
	return 0;
}

static int decode(struct mpk_r *r, struct manifest *m)
{
	char where[64];
	unsigned seen = 0;
	uint32_t n, i;
	uint64_t u;
	int err = 0;

	if (mpk_r_map(r, &n) != 0)
		return wrap(r, "manifest");
	for (i = 0; i < n && err == 0; i++) {
		const char *k;
		size_t kl;
		int key;

		if (mpk_r_str(r, &k, &kl) != 0)
			return wrap(r, "manifest");
		key = key_find(k, kl, body_keys, K__COUNT);
		if (key < 0) {
			/* Unknown keys are for newer nodes: skipped (docs/formats.md). */
			if (mpk_r_skip(r) != 0)
				return wrap(r, "manifest");
			continue;
		}
		if (seen & (1u << key))
			return ferry_errf(FERRY_EFORMAT, "manifest: key '%s' appears twice",
					  body_keys[key]);
		seen |= 1u << key;
		snprintf(where, sizeof(where), "manifest %s", body_keys[key]);
		switch (key) {
		case K_FORMAT:
			if (mpk_r_uint(r, &u) == 0)
				m->format = u > UINT32_MAX ? UINT32_MAX : (uint32_t)u;
			break;
		case K_NAME:
			err = take_str(r, where, FERRY_EINVAL, &m->name);
			break;
		case K_VERSION:
			mpk_r_uint(r, &m->version);
			break;
		case K_LABEL:
			err = take_str(r, where, FERRY_EINVAL, &m->label);
			break;
		case K_CREATED:
			mpk_r_int(r, &m->created);
			break;
		case K_PUBLISHER:
			mpk_r_bin_fixed(r, m->publisher, sizeof(m->publisher));
			break;
		case K_FILES:
			err = decode_files(r, m);
			break;
		}
		if (err == 0 && mpk_r_error(r) != 0)
			err = wrap(r, where);
	}
	if (err != 0)
		return err;
	if (mpk_r_done(r) != 0)
		return wrap(r, "manifest");
	for (i = 0; i < K__COUNT; i++)
		if (!(seen & (1u << i)))
			return ferry_errf(FERRY_EFORMAT, "manifest: key '%s' is missing",
					  body_keys[i]);
	return validate(m);
}

int manifest_decode_body(const uint8_t *body, size_t len, struct manifest **out)
{
	struct prescan ps;
	struct manifest *m;
	struct mpk_r r;
	int err;

	*out = NULL;
	if (len > MANIFEST_SIGNED_MAX)
		return ferry_errf(FERRY_ETOOBIG,
				  "manifest of %zu bytes is larger than the %u allowed", len,
				  MANIFEST_SIGNED_MAX);
	/* A newer format may change anything else: check it before reading further. */
	if ((err = prescan(body, len, &ps)) != 0)
		return err;
	if (!ps.has_format)
		return ferry_errf(FERRY_EFORMAT, "manifest: key 'format' is missing");
	if (ps.format != MANIFEST_FORMAT)
		return ferry_errf(FERRY_EVERSION,
				  "manifest format %llu is not supported (this ferry reads %u)",
				  (unsigned long long)ps.format, MANIFEST_FORMAT);
	m = xcalloc(1, sizeof(*m));
	mpk_r_init(&r, body, len);
	if ((err = decode(&r, m)) != 0) {
		manifest_free(m);
		return err;
	}
	*out = m;
	return 0;
}

/* SIG_CONTEXT || body: what a signature covers. malloc'd. */
static uint8_t *signed_message(const uint8_t *body, size_t len, size_t *mlen)
{
	uint8_t *msg = xmalloc(SIG_CONTEXT_LEN + len);

	memcpy(msg, sig_context, SIG_CONTEXT_LEN);
	memcpy(msg + SIG_CONTEXT_LEN, body, len);
	*mlen = SIG_CONTEXT_LEN + len;
	return msg;
}

int manifest_sign(const uint8_t *body, size_t len, const uint8_t sk[static 64],
		  uint8_t sig[static 64])
{
	char b1[FERRY_B64_32_LEN], b2[FERRY_B64_32_LEN];
	uint8_t pk[FERRY_PK_LEN];
	struct prescan ps;
	uint8_t *msg;
	size_t mlen;
	int err;

	if ((err = prescan(body, len, &ps)) != 0)
		return err;
	if (!ps.has_publisher)
		return ferry_errf(FERRY_EFORMAT, "manifest: key 'publisher' is missing");
	fcrypto_sk_to_pk(pk, sk);
	if (memcmp(pk, ps.publisher, sizeof(pk)) != 0)
		return ferry_errf(FERRY_EINVAL,
				  "the key is publisher %s but the manifest names publisher %s",
				  fcrypto_b64_encode(b1, pk, sizeof(pk)),
				  fcrypto_b64_encode(b2, ps.publisher, sizeof(ps.publisher)));
	msg = signed_message(body, len, &mlen);
	fcrypto_sign(sig, msg, mlen, sk);
	free(msg);
	return 0;
}

int manifest_seal(const uint8_t *body, size_t len, const uint8_t sig[static 64], uint8_t **out,
		  size_t *outlen)
{
	struct mpk_w w;

	*out = NULL;
	*outlen = 0;
	if (len > MANIFEST_SIGNED_MAX || sealed_len(len) > MANIFEST_SIGNED_MAX)
		return ferry_errf(FERRY_ETOOBIG,
				  "signed manifest would be larger than the %u bytes allowed",
				  MANIFEST_SIGNED_MAX);
	mpk_w_init(&w);
	mpk_w_array(&w, 3);
	mpk_w_cstr(&w, envelope_tag);
	mpk_w_bin(&w, body, len);
	mpk_w_bin(&w, sig, FERRY_SIG_LEN);
	return mpk_w_take(&w, out, outlen);
}

int manifest_envelope(const uint8_t *signed_bytes, size_t n, const uint8_t **body, size_t *blen,
		      uint8_t sig[static 64])
{
	char e[ESC_LEN];
	struct mpk_r r;
	const char *tag;
	size_t tlen;
	uint32_t cnt;

	if (n > MANIFEST_SIGNED_MAX)
		return ferry_errf(FERRY_ETOOBIG,
				  "signed manifest of %zu bytes is larger than the %u allowed", n,
				  MANIFEST_SIGNED_MAX);
	mpk_r_init(&r, signed_bytes, n);
	if (mpk_r_array(&r, &cnt) != 0)
		return wrap(&r, "signed manifest");
	if (cnt != 3)
		return ferry_errf(FERRY_EFORMAT, "signed manifest: %u elements, not 3", cnt);
	if (mpk_r_str(&r, &tag, &tlen) != 0)
		return wrap(&r, "signed manifest");
	if (tlen != sizeof(envelope_tag) - 1 || memcmp(tag, envelope_tag, tlen) != 0)
		return ferry_errf(FERRY_EFORMAT, "signed manifest: tag '%s' is not '%s'",
				  esc(e, tag, tlen), envelope_tag);
	mpk_r_bin(&r, body, blen);
	mpk_r_bin_fixed(&r, sig, FERRY_SIG_LEN);
	if (mpk_r_done(&r) != 0)
		return wrap(&r, "signed manifest");
	/*
	 * One body and signature have one signed form, so nobody but the
	 * publisher can make another manifest hash for the same manifest.
	 */
	if (n != sealed_len(*blen))
		return ferry_errf(FERRY_EFORMAT,
				  "signed manifest: %zu bytes, but the shortest encoding is %zu", n,
				  sealed_len(*blen));
	return 0;
}

int manifest_open(const uint8_t *signed_bytes, size_t n, const struct trust *t,
		  struct manifest **out, uint8_t hash[32])
{
	char b64[FERRY_B64_32_LEN];
	uint8_t sig[FERRY_SIG_LEN];
	const uint8_t *body;
	struct prescan ps;
	size_t blen, mlen, i;
	uint8_t *msg;
	int err;

	*out = NULL;
	if ((err = manifest_envelope(signed_bytes, n, &body, &blen, sig)) != 0)
		return err;

	if ((err = prescan(body, blen, &ps)) != 0)
		return err;
	if (!ps.has_publisher) {
		if (ps.has_format && ps.format != MANIFEST_FORMAT)
			return ferry_errf(
			    FERRY_EVERSION,
			    "manifest format %llu is not supported (this ferry reads %u)",
			    (unsigned long long)ps.format, MANIFEST_FORMAT);
		return ferry_errf(FERRY_EFORMAT, "manifest: key 'publisher' is missing");
	}
	fcrypto_b64_encode(b64, ps.publisher, sizeof(ps.publisher));
	for (i = 0; t != NULL && i < t->n; i++)
		if (memcmp(t->keys[i], ps.publisher, sizeof(ps.publisher)) == 0)
			break;
	if (t == NULL || i == t->n)
		return ferry_errf(FERRY_EUNTRUSTED,
				  "manifest is signed by publisher %s, which is not trusted", b64);
	msg = signed_message(body, blen, &mlen);
	err = fcrypto_verify(sig, msg, mlen, ps.publisher);
	free(msg);
	if (err != 0)
		return ferry_errf(FERRY_EBADSIG,
				  "manifest signature by publisher %s does not verify", b64);

	if ((err = manifest_decode_body(body, blen, out)) != 0)
		return err;
	if (hash != NULL)
		fcrypto_id(hash, signed_bytes, n);
	return 0;
}

uint64_t manifest_total_size(const struct manifest *m)
{
	uint64_t total = 0;
	uint32_t i;

	for (i = 0; i < m->nfiles; i++) {
		if (m->files[i].size > UINT64_MAX - total)
			return UINT64_MAX;
		total += m->files[i].size;
	}
	return total;
}

void manifest_free(struct manifest *m)
{
	uint32_t i;

	if (m == NULL)
		return;
	for (i = 0; i < m->nfiles; i++) {
		free(m->files[i].path);
		free(m->files[i].pieces);
	}
	free(m->files);
	free(m->name);
	free(m->label);
	free(m);
}
