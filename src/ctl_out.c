/* ferryctl output: text and JSON behind one vtable; see include/ferry/ctl_out.h. */
#include "config.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/ctl_out.h"
#include "ferry/util.h"

enum field_kind { F_STR, F_UINT, F_BYTES, F_PCT, F_BOOL };

struct field {
	enum field_kind kind;
	const char *key, *label;
	union {
		const char *s;
		uint64_t u;
		double d;
		bool b;
	} v;
};

struct ctl_out_ops {
	void (*field)(struct ctl_out *o, const struct field *f);
	void (*list_begin)(struct ctl_out *o, const char *key);
	void (*row_begin)(struct ctl_out *o);
	void (*row_end)(struct ctl_out *o);
	void (*list_end)(struct ctl_out *o);
	void (*note)(struct ctl_out *o, const char *text);
	void (*end)(struct ctl_out *o);
};

/* A cell or a "label: value" line of the text form. */
struct cell {
	char *label;
	char *text;
	bool right; /* numbers are right-aligned */
};

#define JSON_DEPTH 4

struct ctl_out {
	const struct ctl_out_ops *ops;
	FILE *f;
	/* text */
	struct cell *pending; /* top-level fields not yet printed */
	size_t npending;
	struct cell *cells; /* the current table, row-major */
	size_t ncells, ncols, nrows;
	bool in_list, in_row;
	int last_block; /* 0 nothing yet, 1 fields, 2 table, 3 note */
	/* JSON: built in memory and written whole by ctl_out_free, so that a
	 * command failing half-way prints no broken document */
	FILE *dest;
	char *doc;
	size_t doclen;
	int depth;
	bool first[JSON_DEPTH];
};

/* ---- shared helpers ---------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s, or 0 if it is not one. */
static size_t utf8_len(const unsigned char *s)
{
	unsigned char c = s[0];
	size_t n;
	unsigned char lo = 0x80, hi = 0xbf;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4;
	else
		return 0;
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f;
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f;
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return n;
}

void ctl_out_json_string(FILE *f, const char *str)
{
	const unsigned char *s = (const unsigned char *)str;

	fputc('"', f);
	while (*s != '\0') {
		size_t n;

		switch (*s) {
		case '"':
			fputs("\\\"", f);
			break;
		case '\\':
			fputs("\\\\", f);
			break;
		case '\n':
			fputs("\\n", f);
			break;
		case '\r':
			fputs("\\r", f);
			break;
		case '\t':
			fputs("\\t", f);
			break;
		case '\b':
			fputs("\\b", f);
			break;
		case '\f':
			fputs("\\f", f);
			break;
		default:
			if (*s < 0x20 || *s == 0x7f) {
				fprintf(f, "\\u%04x", *s);
				break;
			}
			n = utf8_len(s);
			if (n == 0) {
				fputs("\\ufffd", f);
				break;
			}
			fwrite(s, 1, n, f);
			s += n - 1;
		}
		s++;
	}
	fputc('"', f);
}

static char *field_text(const struct field *f, bool in_row)
{
	char buf[64];

	switch (f->kind) {
	case F_STR:
		return xstrdup(f->v.s ? f->v.s : "");
	case F_UINT:
		return xasprintf("%llu", (unsigned long long)f->v.u);
	case F_BYTES:
		return xstrdup(fmt_bytes(buf, sizeof(buf), f->v.u));
	case F_PCT:
		return xasprintf("%.1f%%", f->v.d);
	case F_BOOL:
		return xstrdup(f->v.b ? "yes" : in_row ? "" : "no");
	}
	return xstrdup("");
}

/* ---- text -------------------------------------------------------------- */

/* Text is printed for people: control characters would garble the terminal. */
static void put_printable(FILE *f, const char *s)
{
	for (; *s != '\0'; s++)
		fputc((unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s, f);
}

/* Append n spaces then s to a line being built. */
static void line_put(char **line, size_t *len, size_t pad, const char *s)
{
	size_t n = strlen(s);

	*line = xrealloc(*line, *len + pad + n + 1);
	memset(*line + *len, ' ', pad);
	memcpy(*line + *len + pad, s, n + 1);
	*len += pad + n;
}

/* Print a table line without trailing blanks (empty cells at the end leave none). */
static void line_flush(struct ctl_out *o, char *line, size_t len)
{
	while (len > 0 && line[len - 1] == ' ')
		len--;
	line[len] = '\0';
	put_printable(o->f, line);
	fputc('\n', o->f);
}

static void text_gap(struct ctl_out *o, int block)
{
	if (o->last_block != 0 && o->last_block != block && (block != 3 || o->last_block == 2))
		fputc('\n', o->f);
	o->last_block = block;
}

static void text_flush_fields(struct ctl_out *o)
{
	size_t w = 0;

	if (o->npending == 0)
		return;
	text_gap(o, 1);
	for (size_t i = 0; i < o->npending; i++)
		w = MAX(w, strlen(o->pending[i].label));
	for (size_t i = 0; i < o->npending; i++) {
		char *line = NULL;
		size_t len = 0;

		line_put(&line, &len, 0, o->pending[i].label);
		line_put(&line, &len, 0, ":");
		line_put(&line, &len, w - strlen(o->pending[i].label) + 1, o->pending[i].text);
		line_flush(o, line, len);
		free(line);
		free(o->pending[i].label);
		free(o->pending[i].text);
	}
	o->npending = 0;
}

static void text_field(struct ctl_out *o, const struct field *f)
{
	struct cell c = {
	    .label = xstrdup(f->label),
	    .text = field_text(f, o->in_row),
	    .right = f->kind != F_STR && f->kind != F_BOOL,
	};

	if (o->in_row) {
		o->cells = xreallocarray(o->cells, o->ncells + 1, sizeof(*o->cells));
		o->cells[o->ncells++] = c;
		if (o->nrows == 0)
			o->ncols++;
	} else {
		o->pending = xreallocarray(o->pending, o->npending + 1, sizeof(*o->pending));
		o->pending[o->npending++] = c;
	}
}

static void text_list_begin(struct ctl_out *o, const char *key)
{
	text_flush_fields(o);
	o->in_list = true;
	o->ncells = o->ncols = o->nrows = 0;
}

static void text_row_begin(struct ctl_out *o)
{
	o->in_row = true;
}

static void text_row_end(struct ctl_out *o)
{
	o->in_row = false;
	o->nrows++;
}

static void text_list_end(struct ctl_out *o)
{
	size_t *w, len = 0;
	char *line = NULL, *head;

	o->in_list = false;
	if (o->nrows == 0 || o->ncols == 0 || o->ncells != o->nrows * o->ncols) {
		for (size_t i = 0; i < o->ncells; i++) {
			free(o->cells[i].label);
			free(o->cells[i].text);
		}
		o->ncells = 0;
		return;
	}
	text_gap(o, 2);
	w = xcalloc(o->ncols, sizeof(*w));
	for (size_t c = 0; c < o->ncols; c++)
		w[c] = strlen(o->cells[c].label);
	for (size_t i = 0; i < o->ncells; i++)
		w[i % o->ncols] = MAX(w[i % o->ncols], strlen(o->cells[i].text));
	/* Row -1 is the heading: the first row's labels in capitals. */
	for (long r = -1; r < (long)o->nrows; r++) {
		size_t trail = 0; /* padding owed by the previous left-aligned cell */

		len = 0;
		for (size_t c = 0; c < o->ncols; c++) {
			const struct cell *x = &o->cells[(r < 0 ? 0 : (size_t)r) * o->ncols + c];
			const char *text = x->text;
			size_t gap = c == 0 ? 0 : trail + 2, pad = w[c];

			if (r < 0) {
				head = xstrdup(x->label);
				for (char *p = head; *p; p++)
					*p = (char)toupper((unsigned char)*p);
				text = head;
			}
			pad -= strlen(text);
			line_put(&line, &len, gap + (x->right ? pad : 0), text);
			trail = x->right ? 0 : pad;
			if (r < 0)
				free(head);
		}
		line_flush(o, line, len);
	}
	for (size_t i = 0; i < o->ncells; i++) {
		free(o->cells[i].label);
		free(o->cells[i].text);
	}
	free(line);
	free(w);
	o->ncells = 0;
}

static void text_note(struct ctl_out *o, const char *text)
{
	text_flush_fields(o);
	text_gap(o, 3);
	put_printable(o->f, text);
	fputc('\n', o->f);
}

static void text_end(struct ctl_out *o)
{
	text_flush_fields(o);
}

static const struct ctl_out_ops text_ops = {
    .field = text_field,
    .list_begin = text_list_begin,
    .row_begin = text_row_begin,
    .row_end = text_row_end,
    .list_end = text_list_end,
    .note = text_note,
    .end = text_end,
};

/* ---- JSON -------------------------------------------------------------- */

static void json_indent(struct ctl_out *o)
{
	fputc('\n', o->f);
	for (int i = 0; i < o->depth; i++)
		fputs("  ", o->f);
}

/* Start a member or an element at the current depth. */
static void json_item(struct ctl_out *o, const char *key)
{
	if (!o->first[o->depth])
		fputc(',', o->f);
	o->first[o->depth] = false;
	json_indent(o);
	if (key != NULL) {
		ctl_out_json_string(o->f, key);
		fputs(": ", o->f);
	}
}

static void json_open(struct ctl_out *o, char c)
{
	fputc(c, o->f);
	if (o->depth + 1 < JSON_DEPTH)
		o->depth++;
	o->first[o->depth] = true;
}

static void json_close(struct ctl_out *o, char c)
{
	bool empty = o->first[o->depth];

	if (o->depth > 0)
		o->depth--;
	if (!empty)
		json_indent(o);
	fputc(c, o->f);
}

static void json_field(struct ctl_out *o, const struct field *f)
{
	json_item(o, f->key);
	switch (f->kind) {
	case F_STR:
		ctl_out_json_string(o->f, f->v.s ? f->v.s : "");
		break;
	case F_UINT:
	case F_BYTES:
		fprintf(o->f, "%llu", (unsigned long long)f->v.u);
		break;
	case F_PCT:
		fprintf(o->f, "%.2f", f->v.d);
		break;
	case F_BOOL:
		fputs(f->v.b ? "true" : "false", o->f);
		break;
	}
}

static void json_list_begin(struct ctl_out *o, const char *key)
{
	json_item(o, key);
	json_open(o, '[');
}

static void json_row_begin(struct ctl_out *o)
{
	json_item(o, NULL);
	json_open(o, '{');
}

static void json_row_end(struct ctl_out *o)
{
	json_close(o, '}');
}

static void json_list_end(struct ctl_out *o)
{
	json_close(o, ']');
}

static void json_note(struct ctl_out *o, const char *text)
{
}

static void json_end(struct ctl_out *o)
{
	while (o->depth > 0)
		json_close(o, o->depth % 2 == 1 ? '}' : ']');
	fputc('\n', o->f);
}

static const struct ctl_out_ops json_ops = {
    .field = json_field,
    .list_begin = json_list_begin,
    .row_begin = json_row_begin,
    .row_end = json_row_end,
    .list_end = json_list_end,
    .note = json_note,
    .end = json_end,
};

/* ---- the interface ----------------------------------------------------- */

struct ctl_out *ctl_out_new(enum ctl_out_format fmt, FILE *f)
{
	struct ctl_out *o = xcalloc(1, sizeof(*o));

	o->f = f;
	o->ops = &text_ops;
	if (fmt == CTL_OUT_JSON) {
		o->ops = &json_ops;
		o->dest = f;
		o->f = open_memstream(&o->doc, &o->doclen);
		if (o->f == NULL)
			fatal("out of memory starting a JSON document");
		json_open(o, '{');
	}
	return o;
}

void ctl_out_free(struct ctl_out *o)
{
	if (o == NULL)
		return;
	o->ops->end(o);
	if (o->dest != NULL) {
		if (fclose(o->f) != 0)
			fatal("out of memory finishing a JSON document");
		fwrite(o->doc, 1, o->doclen, o->dest);
		o->f = o->dest;
		free(o->doc);
	}
	fflush(o->f);
	free(o->pending);
	free(o->cells);
	free(o);
}

void ctl_out_discard(struct ctl_out *o)
{
	if (o == NULL)
		return;
	for (size_t i = 0; i < o->npending; i++) {
		free(o->pending[i].label);
		free(o->pending[i].text);
	}
	for (size_t i = 0; i < o->ncells; i++) {
		free(o->cells[i].label);
		free(o->cells[i].text);
	}
	if (o->dest != NULL) {
		fclose(o->f);
		free(o->doc);
	}
	free(o->pending);
	free(o->cells);
	free(o);
}

static void put(struct ctl_out *o, struct field f)
{
	o->ops->field(o, &f);
}

void ctl_out_str(struct ctl_out *o, const char *key, const char *label, const char *v)
{
	put(o, (struct field){.kind = F_STR, .key = key, .label = label, .v.s = v});
}

void ctl_out_uint(struct ctl_out *o, const char *key, const char *label, uint64_t v)
{
	put(o, (struct field){.kind = F_UINT, .key = key, .label = label, .v.u = v});
}

void ctl_out_bytes(struct ctl_out *o, const char *key, const char *label, uint64_t v)
{
	put(o, (struct field){.kind = F_BYTES, .key = key, .label = label, .v.u = v});
}

void ctl_out_pct(struct ctl_out *o, const char *key, const char *label, double v)
{
	put(o, (struct field){.kind = F_PCT, .key = key, .label = label, .v.d = v});
}

void ctl_out_bool(struct ctl_out *o, const char *key, const char *label, bool v)
{
	put(o, (struct field){.kind = F_BOOL, .key = key, .label = label, .v.b = v});
}

void ctl_out_list_begin(struct ctl_out *o, const char *key)
{
	o->ops->list_begin(o, key);
}

void ctl_out_row_begin(struct ctl_out *o)
{
	o->ops->row_begin(o);
}

void ctl_out_row_end(struct ctl_out *o)
{
	o->ops->row_end(o);
}

void ctl_out_list_end(struct ctl_out *o)
{
	o->ops->list_end(o);
}

void ctl_out_note(struct ctl_out *o, const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		fatal("out of memory formatting a message");
	va_end(ap);
	o->ops->note(o, s);
	free(s);
}
