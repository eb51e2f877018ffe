/*
 * conf.c: credgate.conf from libconfig text to one struct cg_config, and
 * back to text for `credgate -T`.
 *
 * Loading runs in two passes over the parsed libconfig tree, after a scan
 * of the text for what libconfig loses (\x00 escapes in strings, the name
 * of a duplicate setting).  The first is driven by the settings table
 * (conf_table.c) alone: unknown settings, types, bounds, enum choices,
 * empty values and missing required settings.  The second builds the
 * structs (defaults from the table) and does what a table cannot: names
 * and listen syntax, uniqueness, cross references, inject checks, TLS
 * settings that go together, JWKS, secrets and certificate files and their
 * owners, the run-as user and group, and the warnings; for `credgate -t`
 * also each route's secret and fields, and the audit file.  Every problem
 * is collected; the load fails when any of them is not a warning.
 *
 * This file owns struct cg_config and everything hanging from it; it does
 * not touch sockets, the secret cache or running connections.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1		/* asprintf, strndup */
#endif
#include <sys/stat.h>
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <libconfig.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "proxy/conf.h"
#include "vault-client/vault.h"

#define CFG_MAX_TEXT	(4 * 1024 * 1024)	/* larger files are refused */
#define CFG_PATH_MAX	512
#define CFG_MSG_MAX	1024
#define CFG_QUOTE_MAX	96			/* of a value echoed in a message */

/*
 * libconfig 1.5 silently keeps only the low 32 bits of an integer literal
 * without the "L" suffix.  Before parsing, every such literal outside the
 * 32-bit range is recorded here with its line, so that the value libconfig
 * kept can be mapped back to what was written (or refused when it does
 * not even fit in 64 bits).
 */
struct big_int {
	int line;
	int32_t kept;		/* what libconfig 1.5 stores for it */
	int64_t value;
	bool overflow;		/* does not fit in int64 */
};

struct load {
	const char *name;	/* file name for messages */
	unsigned flags;
	struct cg_errors *errs;
	size_t nerr;		/* errors of this load, warnings excluded */
	bool nomem;
	struct cg_errors warnings;	/* reported only when there is no error */
	struct big_int *big;
	size_t nbig;
	SSL_CTX *tls_ctx;	/* made on first use, to try cipher lists */
	uid_t owner;		/* cg_config.run_uid, known after build_global() */
	struct file_backend_names *secrets;	/* with CG_CONFIG_CHECK, after build_secrets() */
};

/* ------------------------------------------------------------------ */
/* Messages                                                            */
/* ------------------------------------------------------------------ */

static bool
errors_push(struct cg_errors *e, char *msg, bool warning)
{
	char **n;

	if ((n = realloc(e->msgs, (e->n + 1) * sizeof(*n))) == NULL) {
		free(msg);
		return false;
	}
	e->msgs = n;
	e->msgs[e->n++] = msg;
	if (warning)
		e->warnings++;
	return true;
}

void
cg_errors_add(struct cg_errors *e, const char *fmt, ...)
{
	va_list ap;
	char *msg;
	int r;

	va_start(ap, fmt);
	r = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (r < 0)
		return;
	(void)errors_push(e, msg, false);
}

void
cg_errors_clear(struct cg_errors *e)
{
	size_t i;

	if (e == NULL)
		return;
	for (i = 0; i < e->n; i++)
		free(e->msgs[i]);
	free(e->msgs);
	e->msgs = NULL;
	e->n = 0;
	e->warnings = 0;
}

/*
 * Writes s into out as a libconfig string literal, quotes included, with
 * '"', '\\' and control bytes escaped; at most max bytes of s (then "...").
 */
static void
quote_into(char *out, size_t size, const char *s, size_t max)
{
	size_t o = 0, i;
	char esc[8];

	if (size < 8) {
		if (size > 0)
			out[0] = '\0';
		return;
	}
	out[o++] = '"';
	for (i = 0; s[i] != '\0'; i++) {
		unsigned char c = (unsigned char)s[i];
		size_t n;

		switch (c) {
		case '"': strcpy(esc, "\\\""); break;
		case '\\': strcpy(esc, "\\\\"); break;
		case '\n': strcpy(esc, "\\n"); break;
		case '\r': strcpy(esc, "\\r"); break;
		case '\t': strcpy(esc, "\\t"); break;
		case '\f': strcpy(esc, "\\f"); break;
		default:
			if (c < 0x20 || c == 0x7f)
				snprintf(esc, sizeof(esc), "\\x%02x", c);
			else {
				esc[0] = (char)c;
				esc[1] = '\0';
			}
		}
		n = strlen(esc);
		if (i >= max || o + n + 5 > size) {
			memcpy(out + o, "...", 3);
			o += 3;
			break;
		}
		memcpy(out + o, esc, n);
		o += n;
	}
	out[o++] = '"';
	out[o] = '\0';
}

/* A value from the file, quoted for a message. */
#define QUOTE(buf, s) (quote_into((buf), sizeof(buf), (s), CFG_QUOTE_MAX), (buf))

static void ld_msg(struct load *ld, bool warning, const config_setting_t *at,
    const char *path, const char *fmt, va_list ap) CG_PRINTF(5, 0);

static void
ld_msg(struct load *ld, bool warning, const config_setting_t *at, const char *path,
    const char *fmt, va_list ap)
{
	char text[CFG_MSG_MAX];
	const char *file = NULL;
	char *msg;
	int line = 0;

	if (!warning)
		ld->nerr++;
	vsnprintf(text, sizeof(text), fmt, ap);
	if (at != NULL) {
		line = config_setting_source_line(at);
		file = config_setting_source_file(at);
	}
	if (file == NULL)
		file = ld->name;
	if (line <= 0)
		line = 1;	/* the root: a top-level setting is missing */
	if (asprintf(&msg, "%s:%d: %s: %s%s", file, line, path,
	    warning ? "warning: " : "", text) < 0) {
		ld->nomem = true;
		return;
	}
	if (!errors_push(warning ? &ld->warnings : ld->errs, msg, warning))
		ld->nomem = true;
}

static void ld_err_line(struct load *ld, const char *file, int line, const char *path,
    const char *fmt, ...) CG_PRINTF(5, 6);

/* An error at a line of a file (NULL: the configuration file itself). */
static void
ld_err_line(struct load *ld, const char *file, int line, const char *path, const char *fmt, ...)
{
	char text[CFG_MSG_MAX];
	va_list ap;
	char *msg;

	ld->nerr++;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (asprintf(&msg, "%s:%d: %s: %s", file != NULL ? file : ld->name, line, path,
	    text) < 0) {
		ld->nomem = true;
		return;
	}
	if (!errors_push(ld->errs, msg, false))
		ld->nomem = true;
}

static void ld_err(struct load *ld, const config_setting_t *at, const char *path,
    const char *fmt, ...) CG_PRINTF(4, 5);
static void ld_warn(struct load *ld, const config_setting_t *at, const char *path,
    const char *fmt, ...) CG_PRINTF(4, 5);

static void
ld_err(struct load *ld, const config_setting_t *at, const char *path, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	ld_msg(ld, false, at, path, fmt, ap);
	va_end(ap);
}

static void
ld_warn(struct load *ld, const config_setting_t *at, const char *path, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	ld_msg(ld, true, at, path, fmt, ap);
	va_end(ap);
}

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */
/* ------------------------------------------------------------------ */

static char *
ld_strdup(struct load *ld, const char *s)
{
	char *d;

	if (s == NULL)
		return NULL;
	if ((d = strdup(s)) == NULL)
		ld->nomem = true;
	return d;
}

/* "a.b" + "c" -> "a.b.c"; "" + "c" -> "c". */
static void
path_join(char *out, size_t size, const char *parent, const char *name)
{
	int n;

	if (parent[0] == '\0')
		n = snprintf(out, size, "%s", name);
	else
		n = snprintf(out, size, "%s.%s", parent, name);
	if (n < 0)
		out[0] = '\0';	/* a longer path is cut: it only names a setting */
}

static void
path_index(char *out, size_t size, const char *parent, size_t i)
{
	if (snprintf(out, size, "%s.[%zu]", parent, i) < 0)
		out[0] = '\0';
}

static const char *
last_name(const char *path)
{
	const char *p = strrchr(path, '.');

	return p != NULL ? p + 1 : path;
}

static const struct cg_setting *
row(const char *tpath)
{
	const struct cg_setting *r = cg_setting_find(tpath);

	if (r == NULL)
		abort();	/* conf.c names a path the table lacks */
	return r;
}

/* Index of s among r->choices ("a|b|c"), or -1. */
static int
choice_index(const struct cg_setting *r, const char *s)
{
	const char *p = r->choices;
	size_t len = strlen(s);
	int i = 0;

	while (p != NULL && *p != '\0') {
		const char *bar = strchr(p, '|');
		size_t n = bar != NULL ? (size_t)(bar - p) : strlen(p);

		if (n == len && memcmp(p, s, n) == 0)
			return i;
		i++;
		p = bar != NULL ? bar + 1 : NULL;
	}
	return -1;
}

/* Choice number i of r, copied into out; "" if none. */
static const char *
choice_name(const struct cg_setting *r, int i, char *out, size_t size)
{
	const char *p = r->choices;

	out[0] = '\0';
	while (p != NULL && *p != '\0') {
		const char *bar = strchr(p, '|');
		size_t n = bar != NULL ? (size_t)(bar - p) : strlen(p);

		if (i-- == 0) {
			snprintf(out, size, "%.*s", (int)n, p);
			break;
		}
		p = bar != NULL ? bar + 1 : NULL;
	}
	return out;
}

/* "a|b|c" -> "a, b, c" */
static const char *
choices_text(const struct cg_setting *r, char *out, size_t size)
{
	size_t i, o = 0;

	for (i = 0; r->choices[i] != '\0' && o + 3 < size; i++) {
		if (r->choices[i] == '|') {
			out[o++] = ',';
			out[o++] = ' ';
		} else
			out[o++] = r->choices[i];
	}
	out[o] = '\0';
	return out;
}

/* A default as the struct needs it: a string default without its quotes. */
static const char *
def_unquoted(const struct cg_setting *r, char *out, size_t size)
{
	size_t n;

	if (r->def == NULL)
		return NULL;
	n = strlen(r->def);
	if (n >= 2 && r->def[0] == '"' && r->def[n - 1] == '"')
		snprintf(out, size, "%.*s", (int)(n - 2), r->def + 1);
	else
		snprintf(out, size, "%s", r->def);
	return out;
}

static const char *
duration_text(int64_t ms, char *out, size_t size)
{
	if (ms == 0)
		snprintf(out, size, "0");
	else
		cg_duration_format(ms, out, size);
	return out;
}

static const char *
type_name(int t)
{
	switch (t) {
	case CONFIG_TYPE_GROUP: return "a group";
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64: return "an integer";
	case CONFIG_TYPE_FLOAT: return "a number with a fraction";
	case CONFIG_TYPE_STRING: return "a string";
	case CONFIG_TYPE_BOOL: return "a boolean";
	case CONFIG_TYPE_ARRAY: return "an array";
	case CONFIG_TYPE_LIST: return "a list";
	default: return "nothing";
	}
}

static const char *
want_name(enum cg_setting_type t)
{
	switch (t) {
	case CG_SET_BOOL: return "a boolean (true or false)";
	case CG_SET_INT: return "an integer";
	case CG_SET_STRING:
	case CG_SET_ENUM: return "a string";
	case CG_SET_DURATION: return "a duration string like \"10s\"";
	case CG_SET_STRING_LIST: return "a string or an array of strings";
	case CG_SET_GROUP: return "a group { ... }";
	case CG_SET_LIST: return "a list ( ... )";
	}
	return "?";
}

static bool
name_ok(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s != '\0'; s++)
		if (!isalnum((unsigned char)*s) && *s != '_' && *s != '.' && *s != '-')
			return false;
	return true;
}

/* ------------------------------------------------------------------ */
/* Integers beyond 32 bits (see struct big_int)                        */
/* ------------------------------------------------------------------ */

static void
big_add(struct load *ld, int line, int64_t v, bool neg, bool overflow)
{
	struct big_int *n;

	if ((n = realloc(ld->big, (ld->nbig + 1) * sizeof(*n))) == NULL) {
		ld->nomem = true;
		return;
	}
	ld->big = n;
	n[ld->nbig].line = line;
	n[ld->nbig].value = v;
	n[ld->nbig].overflow = overflow;
	/* strtol() clamps on overflow; libconfig then keeps the low bits */
	if (overflow)
		n[ld->nbig].kept = neg ? 0 : -1;
	else
		n[ld->nbig].kept = (int32_t)(uint32_t)(uint64_t)v;
	ld->nbig++;
}

static bool
is_name_char(int c)
{
	return isalnum(c) || c == '_' || c == '*' || c == '-';
}

/* Records the integer literals of text that libconfig 1.5 truncates. */
static void
scan_big_ints(struct load *ld, const char *text)
{
	const char *p = text;
	int line = 1;

	while (*p != '\0') {
		unsigned char c = (unsigned char)*p;

		if (c == '\n') {
			line++;
			p++;
		} else if (c == '#' || (c == '/' && p[1] == '/')) {
			while (*p != '\0' && *p != '\n')
				p++;
		} else if (c == '/' && p[1] == '*') {
			for (p += 2; *p != '\0' && !(p[0] == '*' && p[1] == '/'); p++)
				if (*p == '\n')
					line++;
			if (*p != '\0')
				p += 2;
		} else if (c == '"') {
			for (p++; *p != '\0' && *p != '"'; p++) {
				if (*p == '\\' && p[1] != '\0')
					p++;
				if (*p == '\n')
					line++;
			}
			if (*p != '\0')
				p++;
		} else if (isalpha(c) || c == '_' || c == '*' || c == '@') {
			for (p++; is_name_char((unsigned char)*p); p++)
				;
		} else if (isdigit(c) || ((c == '-' || c == '+') && isdigit((unsigned char)p[1]))) {
			bool neg = c == '-', overflow = false, hex = false;
			uint64_t v = 0, lim;
			const char *q = p;

			if (c == '-' || c == '+')
				q++;
			if (q[0] == '0' && (q[1] == 'x' || q[1] == 'X')) {
				hex = true;
				q += 2;
			}
			lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
			for (; hex ? isxdigit((unsigned char)*q) : isdigit((unsigned char)*q); q++) {
				unsigned d = isdigit((unsigned char)*q) ? (unsigned)(*q - '0') :
				    (unsigned)(tolower((unsigned char)*q) - 'a' + 10);
				unsigned base = hex ? 16 : 10;

				if (v > (lim - d) / base)
					overflow = true;
				else
					v = v * base + d;
			}
			p = q;
			if (!hex && (*q == '.' || *q == 'e' || *q == 'E')) {
				/* a float: skip the rest of it */
				while (isdigit((unsigned char)*p) || *p == '.' || *p == 'e' ||
				    *p == 'E' || *p == '+' || *p == '-')
					p++;
				continue;
			}
			if (*q == 'L') {
				while (*p == 'L')
					p++;
				continue;
			}
			if (overflow)
				big_add(ld, line, 0, neg, true);
			else if (neg && v > (uint64_t)INT32_MAX + 1)
				big_add(ld, line, v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v,
				    true, false);
			else if (!neg && v > (uint64_t)INT32_MAX)
				big_add(ld, line, (int64_t)v, false, false);
		} else
			p++;
	}
}

/* The integer s holds as written.  False when it does not fit in int64. */
static bool
int_value(const struct load *ld, const config_setting_t *s, int64_t *v)
{
	size_t i;
	int line;

	if (config_setting_type(s) == CONFIG_TYPE_INT64) {
		*v = config_setting_get_int64(s);
		return true;
	}
	*v = config_setting_get_int(s);
	if (config_setting_source_file(s) != NULL)
		return true;	/* from an @include: not scanned */
	line = config_setting_source_line(s);
	for (i = 0; i < ld->nbig; i++) {
		if (ld->big[i].line != line || ld->big[i].kept != *v)
			continue;
		if (ld->big[i].overflow)
			return false;
		*v = ld->big[i].value;
		return true;
	}
	return true;
}

/* ------------------------------------------------------------------ */
/* The text as written: NUL escapes and setting names                  */
/* ------------------------------------------------------------------ */

/*
 * libconfig 1.5 drops a \x00 escape from a string, so that "/a\x00b"
 * reads as "/ab", and its "duplicate setting name" error names no
 * setting.  Both are found in the text itself: scan_text() follows
 * libconfig's lexical rules and its nesting of groups, lists and arrays,
 * so that every setting name and every string literal is known with its
 * file, line and setting path ("routes.[0].allow.[1].paths.[0]"), and
 * follows @include as libconfig does.  It runs on text that libconfig has
 * parsed, whole or up to the line of its error, but stays bounded on any
 * input.
 */
#define SCAN_DEPTH	32	/* deeper nesting reports the path at this depth */
#define SCAN_INCLUDES	10	/* libconfig's own limit */

struct scan_frame {
	char kind;		/* '{' a group or the root, '(' a list, '[' an array */
	size_t plen;		/* length of the frame's path in scan.path */
	unsigned nelem;		/* list, array: elements so far */
};

/* A setting name as scanned, for the duplicate that libconfig refuses. */
struct scan_name {
	char *path;
	const char *file;	/* NULL: the configuration file; else an @include */
	int line;
	size_t seq;		/* order in the text */
};

struct scan {
	struct load *ld;
	char path[CFG_PATH_MAX];
	size_t len;		/* of path: the frame's, or the setting's being read */
	struct scan_frame f[SCAN_DEPTH];
	size_t depth;		/* frames in f; f[0] is the root */
	size_t deep;		/* frames beyond SCAN_DEPTH, not kept */
	bool want_value;	/* in a group: after "name =" */
	bool in_string;		/* the last token was a string: the next one joins it */
	int includes;		/* @include nesting */
	bool report_nul;	/* report \x00 in strings */
	bool collect;		/* collect names into names[] */
	struct scan_name *names;
	size_t nnames;
	char **files;		/* names of the @includes scanned, for names[] */
	size_t nfiles;
};

/* Sets the path to the frame's path plus ".name" (or ".[i]"). */
static void
scan_leaf(struct scan *sc, const char *name, size_t n, bool index, unsigned i)
{
	size_t base = sc->f[sc->depth - 1].plen;
	int w;

	if (index)
		w = snprintf(sc->path + base, sizeof(sc->path) - base, "%s[%u]",
		    base > 0 ? "." : "", i);
	else
		w = snprintf(sc->path + base, sizeof(sc->path) - base, "%s%.*s",
		    base > 0 ? "." : "", (int)n, name);
	if (w < 0)
		w = 0;
	sc->len = base + (size_t)w < sizeof(sc->path) ? base + (size_t)w : sizeof(sc->path) - 1;
}

/* A value starts: in a list or array it is the next element. */
static void
scan_value(struct scan *sc)
{
	struct scan_frame *top = &sc->f[sc->depth - 1];

	if (sc->deep == 0 && top->kind != '{')
		scan_leaf(sc, NULL, 0, true, top->nelem++);
}

static void
scan_push(struct scan *sc, char kind)
{
	scan_value(sc);
	sc->want_value = false;
	if (sc->depth == SCAN_DEPTH) {
		sc->deep++;
		return;
	}
	sc->f[sc->depth].kind = kind;
	sc->f[sc->depth].plen = sc->len;
	sc->f[sc->depth].nelem = 0;
	sc->depth++;
}

static void
scan_pop(struct scan *sc)
{
	sc->want_value = false;
	if (sc->deep > 0) {
		sc->deep--;
		return;
	}
	if (sc->depth > 1)
		sc->depth--;
	/* back to the setting the closed value belongs to */
	sc->len = sc->f[sc->depth].plen;
	sc->path[sc->len] = '\0';
}

static void
scan_add_name(struct scan *sc, const char *file, int line)
{
	struct scan_name *n;

	if ((n = realloc(sc->names, (sc->nnames + 1) * sizeof(*n))) == NULL) {
		sc->ld->nomem = true;
		return;
	}
	sc->names = n;
	n += sc->nnames;
	if ((n->path = strdup(sc->path)) == NULL) {
		sc->ld->nomem = true;
		return;
	}
	n->file = file;
	n->line = line;
	n->seq = sc->nnames++;
}

static void scan_text(struct scan *sc, const char *text, const char *file, int stop_line);

/* @include "name": libconfig opens the name as written, without escapes. */
static void
scan_include(struct scan *sc, const char *name, size_t n)
{
	char **files, *path;
	struct cg_file f;
	int r;

	if (sc->includes >= SCAN_INCLUDES)
		return;
	if ((files = realloc(sc->files, (sc->nfiles + 1) * sizeof(*files))) == NULL ||
	    (path = strndup(name, n)) == NULL) {
		if (files != NULL)
			sc->files = files;
		sc->ld->nomem = true;
		return;
	}
	sc->files = files;
	sc->files[sc->nfiles++] = path;	/* names[] point at it */
	if ((r = cg_file_read(path, CG_FILE_FOLLOW, CFG_MAX_TEXT, 0, &f, NULL, 0)) != 0) {
		if (r == CG_ERR_NOMEM)
			sc->ld->nomem = true;
		return;		/* libconfig could not either, and said so */
	}
	sc->includes++;
	scan_text(sc, f.data, path, 0);
	sc->includes--;
	cg_file_free(&f);
}

/*
 * Scans text (file: NULL for the configuration file, else the name of an
 * @include), up to the end or past line stop_line (0: no stop).
 */
static void
scan_text(struct scan *sc, const char *text, const char *file, int stop_line)
{
	const char *p = text;
	int line = 1;
	bool line_start = true;

	while (*p != '\0' && (stop_line == 0 || line <= stop_line)) {
		unsigned char c = (unsigned char)*p;

		if (c == '\n') {
			line++;
			line_start = true;
			p++;
			continue;
		}
		if (c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v') {
			p++;
			continue;
		}
		if (c == '#' || (c == '/' && p[1] == '/')) {
			while (*p != '\0' && *p != '\n')
				p++;
			continue;
		}
		if (c == '/' && p[1] == '*') {
			for (p += 2; *p != '\0' && !(p[0] == '*' && p[1] == '/'); p++)
				if (*p == '\n')
					line++;
			if (*p != '\0')
				p += 2;
			line_start = false;
			continue;
		}
		if (c == '@' && line_start && strncmp(p, "@include", 8) == 0 &&
		    (p[8] == ' ' || p[8] == '\t')) {
			const char *q = p + 8, *end;

			while (*q == ' ' || *q == '\t')
				q++;
			if (*q == '"' && (end = strchr(q + 1, '"')) != NULL &&
			    memchr(q + 1, '\n', (size_t)(end - q - 1)) == NULL) {
				scan_include(sc, q + 1, (size_t)(end - q - 1));
				p = end + 1;
				line_start = false;
				continue;
			}
		}
		line_start = false;
		if (c == '"') {
			int at = 0;

			if (!sc->in_string)
				scan_value(sc);
			for (p++; *p != '\0' && *p != '"'; p++) {
				if (*p == '\n') {
					line++;
				} else if (*p == '\\' && (p[1] == 'x' || p[1] == 'X') &&
				    isxdigit((unsigned char)p[2]) && isxdigit((unsigned char)p[3])) {
					if (p[2] == '0' && p[3] == '0' && at == 0)
						at = line;
					p += 3;
				} else if (*p == '\\' && p[1] != '\0' && strchr("\\\"ntrf", p[1]) != NULL)
					p++;
				/* any other backslash stands for itself */
			}
			if (*p == '"')
				p++;
			if (at != 0 && sc->report_nul)
				ld_err_line(sc->ld, file, at, sc->path[0] != '\0' ? sc->path : "(top)",
				    "\\x00 (a NUL byte) in a string: no setting may hold one");
			sc->in_string = true;
			sc->want_value = false;
			continue;
		}
		sc->in_string = false;
		if (c == '{' || c == '(' || c == '[') {
			scan_push(sc, c == '(' ? '(' : c == '[' ? '[' : '{');
			p++;
			continue;
		}
		if (c == '}' || c == ')' || c == ']') {
			scan_pop(sc);
			p++;
			continue;
		}
		if (c == '=' || c == ':') {
			sc->want_value = true;
			p++;
			continue;
		}
		if (c == ';' || c == ',') {
			sc->want_value = false;
			p++;
			continue;
		}
		if (isalnum(c) || c == '*' || c == '_' || c == '-' || c == '+' || c == '.') {
			const char *start = p;

			for (p++; isalnum((unsigned char)*p) || *p == '*' || *p == '_' ||
			    *p == '-' || *p == '+' || *p == '.'; p++)
				;
			if (sc->deep > 0)
				continue;
			if (sc->f[sc->depth - 1].kind != '{') {
				scan_value(sc);		/* a number or boolean element */
				continue;
			}
			if (sc->want_value) {
				sc->want_value = false;	/* a number or boolean */
				continue;
			}
			/* a setting name: its path, until its value ends */
			scan_leaf(sc, start, (size_t)(p - start), false, 0);
			if (sc->collect)
				scan_add_name(sc, file, line);
			continue;
		}
		p++;	/* not libconfig syntax; libconfig has refused it */
	}
}

static void
scan_init(struct scan *sc, struct load *ld)
{
	memset(sc, 0, sizeof(*sc));
	sc->ld = ld;
	sc->f[0].kind = '{';
	sc->depth = 1;
}

static void
scan_free(struct scan *sc)
{
	size_t i;

	for (i = 0; i < sc->nnames; i++)
		free(sc->names[i].path);
	free(sc->names);
	for (i = 0; i < sc->nfiles; i++)
		free(sc->files[i]);
	free(sc->files);
}

static int
scan_name_cmp(const void *a, const void *b)
{
	const struct scan_name *x = a, *y = b;
	int c = strcmp(x->path, y->path);

	if (c != 0)
		return c;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Reports a string holding \x00, anywhere in text and its @includes. */
static void
check_nul_escapes(struct load *ld, const char *text)
{
	struct scan sc;

	scan_init(&sc, ld);
	sc.report_nul = true;
	scan_text(&sc, text, NULL, 0);
	scan_free(&sc);
}

/*
 * libconfig refused a duplicate setting at file:line (file NULL: the
 * configuration file).  Reports it with the setting's path and where it
 * was first set; false when the text does not show it.
 */
static bool
report_duplicate(struct load *ld, const char *text, const char *file, int line)
{
	const struct scan_name *dup = NULL, *first = NULL;
	struct scan sc;
	size_t i;

	scan_init(&sc, ld);
	sc.collect = true;
	scan_text(&sc, text, NULL, file == NULL ? line : 0);
	if (sc.nnames > 1)
		qsort(sc.names, sc.nnames, sizeof(*sc.names), scan_name_cmp);
	/* the first name set twice whose second time is at that line */
	for (i = 1; i < sc.nnames; i++) {
		const struct scan_name *a = &sc.names[i - 1], *b = &sc.names[i];

		if (strcmp(a->path, b->path) != 0 || b->line != line ||
		    (b->file == NULL) != (file == NULL) ||
		    (file != NULL && strcmp(b->file, file) != 0))
			continue;
		while (a > sc.names && strcmp(a[-1].path, a->path) == 0)
			a--;
		if (dup == NULL || b->seq < dup->seq) {
			dup = b;
			first = a;
		}
	}
	if (dup != NULL) {
		if (first->file == dup->file || (first->file != NULL && dup->file != NULL &&
		    strcmp(first->file, dup->file) == 0))
			ld_err_line(ld, file, line, dup->path, "duplicate setting: already set at "
			    "line %d", first->line);
		else
			ld_err_line(ld, file, line, dup->path, "duplicate setting: already set at "
			    "%s:%d", first->file != NULL ? first->file : ld->name, first->line);
	}
	scan_free(&sc);
	return dup != NULL;
}

/* ------------------------------------------------------------------ */
/* Pass 1: the table checks                                            */
/* ------------------------------------------------------------------ */

static void check_group(struct load *ld, const config_setting_t *g, const char *tpath,
    const char *dpath);

/* Checks one string against r: not empty, one of the choices if any. */
static void
check_string(struct load *ld, const struct cg_setting *r, const config_setting_t *s,
    const char *dpath)
{
	const char *v = config_setting_get_string(s);
	char q[CFG_QUOTE_MAX + 16], ch[256];

	if (*v == '\0')
		ld_err(ld, s, dpath, "must not be empty");
	else if (r->choices != NULL && choice_index(r, v) < 0)
		ld_err(ld, s, dpath, "%s is not one of %s", QUOTE(q, v),
		    choices_text(r, ch, sizeof(ch)));
}

/*
 * A duration's value in ms: a string for cg_duration_parse or an integer
 * of seconds.  Returns 0, or -1 after reporting.
 */
static int
duration_value(struct load *ld, const config_setting_t *s, const char *dpath,
    bool report, int64_t *ms)
{
	char q[CFG_QUOTE_MAX + 16];
	int64_t v;

	if (config_setting_type(s) == CONFIG_TYPE_STRING) {
		const char *t = config_setting_get_string(s);

		if (cg_duration_parse(t, ms) != 0) {
			if (report)
				ld_err(ld, s, dpath, "%s is not a duration "
				    "(like \"250ms\", \"10s\", \"5m\", \"1h\")", QUOTE(q, t));
			return -1;
		}
		return 0;
	}
	if (!int_value(ld, s, &v) || v < 0 || v > INT64_MAX / 1000) {
		if (report)
			ld_err(ld, s, dpath, "%s is not a duration", v < 0 ?
			    "a negative number" : "this number");
		return -1;
	}
	*ms = v * 1000;
	return 0;
}

static void
check_value(struct load *ld, const struct cg_setting *r, const config_setting_t *s,
    const char *tpath, const char *dpath)
{
	int t = config_setting_type(s);
	char sub[CFG_PATH_MAX], ta[32], tb[32];
	int64_t v;
	int i, n;

	switch (r->type) {
	case CG_SET_GROUP:
		if (t != CONFIG_TYPE_GROUP)
			goto wrong;
		check_group(ld, s, tpath, dpath);
		return;
	case CG_SET_LIST:
		if (t != CONFIG_TYPE_LIST && !(t == CONFIG_TYPE_ARRAY && config_setting_length(s) == 0))
			goto wrong;
		n = config_setting_length(s);
		if (n == 0 && !r->empty_ok)
			ld_err(ld, s, dpath, "must not be empty");
		path_join(sub, sizeof(sub), tpath, "[]");
		for (i = 0; i < n; i++) {
			const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
			char dsub[CFG_PATH_MAX];

			path_index(dsub, sizeof(dsub), dpath, (size_t)i);
			if (config_setting_type(e) != CONFIG_TYPE_GROUP)
				ld_err(ld, e, dsub, "expected a group { ... }, not %s",
				    type_name(config_setting_type(e)));
			else
				check_group(ld, e, sub, dsub);
		}
		return;
	case CG_SET_BOOL:
		if (t != CONFIG_TYPE_BOOL)
			goto wrong;
		return;
	case CG_SET_INT:
		if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64)
			goto wrong;
		if (!int_value(ld, s, &v))
			ld_err(ld, s, dpath, "integer too large");
		else if (v < r->min || v > r->max)
			ld_err(ld, s, dpath, "%" PRId64 " not in %" PRId64 "..%" PRId64,
			    v, r->min, r->max);
		return;
	case CG_SET_STRING:
	case CG_SET_ENUM:
		if (t != CONFIG_TYPE_STRING)
			goto wrong;
		check_string(ld, r, s, dpath);
		return;
	case CG_SET_DURATION:
		if (t != CONFIG_TYPE_STRING && t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64)
			goto wrong;
		if (duration_value(ld, s, dpath, true, &v) != 0)
			return;
		if (v < r->min || v > r->max) {
			char q[CFG_QUOTE_MAX + 16];

			if (t == CONFIG_TYPE_STRING)
				quote_into(q, sizeof(q), config_setting_get_string(s),
				    CFG_QUOTE_MAX);
			else
				snprintf(q, sizeof(q), "%" PRId64, v / 1000);
			ld_err(ld, s, dpath, "%s not in %s..%s", q,
			    duration_text(r->min, ta, sizeof(ta)),
			    duration_text(r->max, tb, sizeof(tb)));
		}
		return;
	case CG_SET_STRING_LIST:
		if (t == CONFIG_TYPE_STRING) {
			check_string(ld, r, s, dpath);
			return;
		}
		if (t != CONFIG_TYPE_ARRAY && t != CONFIG_TYPE_LIST)
			goto wrong;
		n = config_setting_length(s);
		if (n == 0 && !r->empty_ok)
			ld_err(ld, s, dpath, "must not be empty");
		for (i = 0; i < n; i++) {
			const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);

			path_index(sub, sizeof(sub), dpath, (size_t)i);
			if (config_setting_type(e) != CONFIG_TYPE_STRING)
				ld_err(ld, e, sub, "expected a string, not %s",
				    type_name(config_setting_type(e)));
			else
				check_string(ld, r, e, sub);
		}
		return;
	}
 wrong:
	ld_err(ld, s, dpath, "expected %s, not %s", want_name(r->type), type_name(t));
}

/* True when row path p is a direct child of table path parent. */
static bool
is_child(const char *p, const char *parent)
{
	size_t n = strlen(parent);

	if (n == 0)
		return strchr(p, '.') == NULL;
	return strncmp(p, parent, n) == 0 && p[n] == '.' && strchr(p + n + 1, '.') == NULL;
}

static void
check_group(struct load *ld, const config_setting_t *g, const char *tpath, const char *dpath)
{
	char tsub[CFG_PATH_MAX], dsub[CFG_PATH_MAX];
	int i, n = config_setting_length(g);
	size_t k;

	for (i = 0; i < n; i++) {
		const config_setting_t *m = config_setting_get_elem(g, (unsigned)i);
		const char *name = config_setting_name(m);
		const struct cg_setting *r;

		path_join(tsub, sizeof(tsub), tpath, name);
		path_join(dsub, sizeof(dsub), dpath, name);
		if ((r = cg_setting_find(tsub)) == NULL) {
			ld_err(ld, m, dsub, "unknown setting");
			continue;
		}
		check_value(ld, r, m, tsub, dsub);
	}
	for (k = 0; k < cg_nsettings; k++) {
		const struct cg_setting *r = &cg_settings[k];

		if (!r->required || !is_child(r->path, tpath))
			continue;
		if (config_setting_get_member(g, last_name(r->path)) != NULL)
			continue;
		path_join(dsub, sizeof(dsub), dpath, last_name(r->path));
		ld_err(ld, g, dsub, "required setting missing");
	}
}

/* ------------------------------------------------------------------ */
/* Pass 2: reading values (already checked) with the table's defaults  */
/* ------------------------------------------------------------------ */

/* The member of g for row tpath when it has the right type, else NULL. */
static config_setting_t *
member(const config_setting_t *g, const char *tpath, int type)
{
	config_setting_t *m;

	if (g == NULL || (m = config_setting_get_member(g, last_name(tpath))) == NULL)
		return NULL;
	if (type >= 0 && config_setting_type(m) != type)
		return NULL;
	return m;
}

static char *
get_string(struct load *ld, const config_setting_t *g, const char *tpath)
{
	const config_setting_t *m = member(g, tpath, CONFIG_TYPE_STRING);
	char buf[256];

	if (m != NULL)
		return ld_strdup(ld, config_setting_get_string(m));
	return ld_strdup(ld, def_unquoted(row(tpath), buf, sizeof(buf)));
}

static int64_t
get_int(struct load *ld, const config_setting_t *g, const char *tpath)
{
	const struct cg_setting *r = row(tpath);
	const config_setting_t *m = member(g, tpath, -1);
	int64_t v;

	if (m != NULL && (config_setting_type(m) == CONFIG_TYPE_INT ||
	    config_setting_type(m) == CONFIG_TYPE_INT64) && int_value(ld, m, &v) &&
	    v >= r->min && v <= r->max)
		return v;
	return r->def != NULL ? strtoll(r->def, NULL, 10) : 0;
}

static int64_t
get_duration(struct load *ld, const config_setting_t *g, const char *tpath)
{
	const struct cg_setting *r = row(tpath);
	const config_setting_t *m = member(g, tpath, -1);
	char buf[64];
	int64_t v;

	if (m != NULL && duration_value(ld, m, tpath, false, &v) == 0 &&
	    v >= r->min && v <= r->max)
		return v;
	if (r->def == NULL ||
	    cg_duration_parse(def_unquoted(r, buf, sizeof(buf)), &v) != 0)
		return r->min;
	return v;
}

static bool
get_bool(const config_setting_t *g, const char *tpath)
{
	const config_setting_t *m = member(g, tpath, CONFIG_TYPE_BOOL);

	if (m != NULL)
		return config_setting_get_bool(m) != 0;
	return row(tpath)->def != NULL && strcmp(row(tpath)->def, "true") == 0;
}

/* Index of the value among the row's choices (the default's when unset). */
static int
get_enum(const config_setting_t *g, const char *tpath)
{
	const struct cg_setting *r = row(tpath);
	const config_setting_t *m = member(g, tpath, CONFIG_TYPE_STRING);
	char buf[64];
	int i;

	if (m != NULL && (i = choice_index(r, config_setting_get_string(m))) >= 0)
		return i;
	if (r->def == NULL || (i = choice_index(r, def_unquoted(r, buf, sizeof(buf)))) < 0)
		return 0;
	return i;
}

/* A string or array of strings, copied; *n = 0 and NULL when unset. */
static char **
get_strings(struct load *ld, const config_setting_t *g, const char *tpath, size_t *n)
{
	const config_setting_t *m = member(g, tpath, -1);
	char **v;
	int i, len;

	*n = 0;
	if (m == NULL)
		return NULL;
	if (config_setting_type(m) == CONFIG_TYPE_STRING) {
		if ((v = calloc(1, sizeof(*v))) == NULL ||
		    (v[0] = ld_strdup(ld, config_setting_get_string(m))) == NULL) {
			free(v);
			ld->nomem = true;
			return NULL;
		}
		*n = 1;
		return v;
	}
	if (config_setting_type(m) != CONFIG_TYPE_ARRAY &&
	    config_setting_type(m) != CONFIG_TYPE_LIST)
		return NULL;
	len = config_setting_length(m);
	if ((v = calloc((size_t)len + 1, sizeof(*v))) == NULL) {
		ld->nomem = true;
		return NULL;
	}
	for (i = 0; i < len; i++) {
		const char *s = config_setting_get_string_elem(m, (unsigned)i);

		if (s == NULL)
			continue;	/* reported in pass 1 */
		if ((v[*n] = ld_strdup(ld, s)) == NULL)
			break;
		(*n)++;
	}
	return v;
}

static void
free_strings(char **v, size_t n)
{
	size_t i;

	if (v == NULL)
		return;
	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static int
line_of(const config_setting_t *s)
{
	return s != NULL ? config_setting_source_line(s) : 0;
}

/* ------------------------------------------------------------------ */
/* Pass 2: building                                                    */
/* ------------------------------------------------------------------ */

static int parse_listen(const char *s, char **host, int *port);

/* What credgate.workers = 0 stands for: the online cores, 1 to 256. */
static uint32_t
online_cores(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	int64_t max = row("credgate.workers")->max;

	if (n < 1)
		return 1;
	return n > max ? (uint32_t)max : (uint32_t)n;
}

/*
 * credgate.user or credgate.group names an account of this system.  For a
 * user that exists, *uid gets its uid (uid is NULL for a group).
 */
static void
check_account(struct load *ld, const config_setting_t *g, const char *tpath, bool group,
    uid_t *uid)
{
	const config_setting_t *m = member(g, tpath, CONFIG_TYPE_STRING);
	char buf[16384], q[CFG_QUOTE_MAX + 16];
	const char *name;
	bool found;
	int r;

	if (m == NULL || *(name = config_setting_get_string(m)) == '\0')
		return;
	if (group) {
		struct group gr, *res = NULL;

		r = getgrnam_r(name, &gr, buf, sizeof(buf), &res);
		found = res != NULL;
	} else {
		struct passwd pw, *res = NULL;

		r = getpwnam_r(name, &pw, buf, sizeof(buf), &res);
		found = res != NULL;
		if (found && uid != NULL)
			*uid = pw.pw_uid;
	}
	if (found)
		return;
	if (r == 0 || r == ENOENT || r == ESRCH)
		ld_err(ld, m, tpath, "%s: no such %s", QUOTE(q, name), group ? "group" : "user");
	else
		ld_err(ld, m, tpath, "cannot look up %s: %s", QUOTE(q, name), strerror(r));
}

/*
 * credgate.admin.listen: "host:port", "[v6]:port", or only a port ("9180"
 * or ":9180"), which means 127.0.0.1.
 */
static void
build_admin(struct load *ld, const config_setting_t *ad, struct cg_config *cfg)
{
	const config_setting_t *m = member(ad, "credgate.admin.listen", CONFIG_TYPE_STRING);
	char q[CFG_QUOTE_MAX + 16], *text = NULL;
	const char *v, *p;
	int r;

	if (m == NULL || *(v = config_setting_get_string(m)) == '\0')
		return;		/* none, or reported as empty */
	p = v[0] == ':' ? v + 1 : v;
	while (isdigit((unsigned char)*p))
		p++;
	if (*p == '\0' && p != v + (v[0] == ':')) {
		if (asprintf(&text, "127.0.0.1:%s", v[0] == ':' ? v + 1 : v) < 0) {
			ld->nomem = true;
			return;
		}
		r = parse_listen(text, &cfg->admin_listen_host, &cfg->admin_listen_port);
		free(text);
	} else
		r = parse_listen(v, &cfg->admin_listen_host, &cfg->admin_listen_port);
	if (r == CG_ERR_NOMEM)
		ld->nomem = true;
	else if (r == 2)
		ld_err(ld, m, "credgate.admin.listen", "%s: port not in 1..65535", QUOTE(q, v));
	else if (r != 0)
		ld_err(ld, m, "credgate.admin.listen", "%s is not host:port, [v6]:port or a port",
		    QUOTE(q, v));
}

/*
 * For `credgate -t`: credgate.audit.file can be opened for appending as
 * credgate opens it at start, without creating, truncating or writing
 * anything.  A file that does not exist yet is created at start: then its
 * directory must exist and let this user create files in it.
 */
static void
check_audit_file(struct load *ld, const config_setting_t *m, const char *file)
{
	const char *path = "credgate.audit.file";
	char q[CFG_QUOTE_MAX + 16], qd[CFG_QUOTE_MAX + 16], *dir = NULL, *slash;
	struct stat st;
	int fd, e;

	/* O_NONBLOCK: a FIFO must not stall the check */
	fd = open(file, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
	if (fd >= 0) {
		close(fd);
		return;
	}
	if ((e = errno) == ENXIO)
		return;		/* a FIFO without a reader yet: start waits for one */
	if (e != ENOENT) {
		ld_err(ld, m, path, "%s cannot be opened for appending: %s%s", QUOTE(q, file),
		    strerror(e), e == ELOOP ? " (credgate does not follow a symbolic link "
		    "here)" : "");
		return;
	}
	if ((dir = ld_strdup(ld, file)) == NULL)
		return;
	if ((slash = strrchr(dir, '/')) == NULL)
		strcpy(dir, ".");
	else if (slash == dir)
		slash[1] = '\0';	/* "/audit.log": the root directory */
	else
		*slash = '\0';
	quote_into(qd, sizeof(qd), dir, CFG_QUOTE_MAX);
	if (stat(dir, &st) != 0) {
		e = errno;
		ld_err(ld, m, path, "%s: directory %s: %s", QUOTE(q, file), qd, strerror(e));
	} else if (!S_ISDIR(st.st_mode))
		ld_err(ld, m, path, "%s: %s is not a directory", QUOTE(q, file), qd);
	else if (faccessat(AT_FDCWD, dir, W_OK | X_OK, AT_EACCESS) != 0) {
		e = errno;
		ld_err(ld, m, path, "%s does not exist and cannot be created in %s: %s",
		    QUOTE(q, file), qd, strerror(e));
	}
	free(dir);
}

static void
build_global(struct load *ld, const config_setting_t *root, struct cg_config *cfg)
{
	const config_setting_t *cg = member(root, "credgate", CONFIG_TYPE_GROUP);
	const config_setting_t *tc = member(cg, "credgate.token_cache", CONFIG_TYPE_GROUP);
	const config_setting_t *ad = member(cg, "credgate.admin", CONFIG_TYPE_GROUP);
	const config_setting_t *au = member(cg, "credgate.audit", CONFIG_TYPE_GROUP);
	const config_setting_t *li = member(cg, "credgate.limits", CONFIG_TYPE_GROUP);
	const config_setting_t *to = member(cg, "credgate.timeouts", CONFIG_TYPE_GROUP);

	_Static_assert(CG_LOG_ERROR == 0 && CG_LOG_WARN == 1 && CG_LOG_INFO == 2 &&
	    CG_LOG_DEBUG == 3, "credgate.log_level choices follow enum cg_log_level");
	_Static_assert(CG_SECMEM_REQUIRED == 0 && CG_SECMEM_BEST_EFFORT == 1,
	    "credgate.secure_memory choices follow enum cg_secure_memory");

	cfg->log_level = get_enum(cg, "credgate.log_level");
	cfg->log_file = get_string(ld, cg, "credgate.log_file");
	cfg->workers_conf = (uint32_t)get_int(ld, cg, "credgate.workers");
	cfg->workers = cfg->workers_conf != 0 ? cfg->workers_conf : online_cores();
	cfg->user = get_string(ld, cg, "credgate.user");
	cfg->group = get_string(ld, cg, "credgate.group");
	cfg->max_connections = (uint32_t)get_int(ld, cg, "credgate.max_connections");
	cfg->max_pending_per_client =
	    (uint32_t)get_int(ld, cg, "credgate.max_pending_per_client");
	cfg->shutdown_timeout_ms = get_duration(ld, cg, "credgate.shutdown_timeout");
	cfg->token_cache_size = (uint32_t)get_int(ld, tc, "credgate.token_cache.size");
	build_admin(ld, ad, cfg);
	cfg->secure_memory = (enum cg_secure_memory)get_enum(cg, "credgate.secure_memory");
	cfg->secure_memory_size = (uint64_t)get_int(ld, cg, "credgate.secure_memory_size");
	cfg->audit_file = get_string(ld, au, "credgate.audit.file");
	cfg->audit_stdout = get_bool(au, "credgate.audit.stdout");
	cfg->max_request_line = (uint32_t)get_int(ld, li, "credgate.limits.request_line");
	cfg->max_header_bytes = (uint32_t)get_int(ld, li, "credgate.limits.header_bytes");
	cfg->max_header_count = (uint32_t)get_int(ld, li, "credgate.limits.header_count");
	cfg->max_token_bytes = (uint32_t)get_int(ld, li, "credgate.limits.token_bytes");
	cfg->client_header_timeout_ms = get_duration(ld, to, "credgate.timeouts.client_header");
	cfg->client_idle_timeout_ms = get_duration(ld, to, "credgate.timeouts.client_idle");
	cfg->upstream_connect_timeout_ms = get_duration(ld, to, "credgate.timeouts.upstream_connect");
	cfg->upstream_response_timeout_ms =
	    get_duration(ld, to, "credgate.timeouts.upstream_response");

	ld->owner = geteuid();
	if (ld->flags & CG_CONFIG_LOAD_FILES) {
		check_account(ld, cg, "credgate.user", false, &ld->owner);
		check_account(ld, cg, "credgate.group", true, NULL);
	}
	cfg->run_uid = ld->owner;
	if ((ld->flags & CG_CONFIG_LOAD_FILES) && (ld->flags & CG_CONFIG_CHECK) &&
	    cfg->audit_file != NULL && cfg->audit_file[0] != '\0')
		check_audit_file(ld, member(au, "credgate.audit.file", -1), cfg->audit_file);
	if (cfg->audit_file == NULL && !cfg->audit_stdout)
		ld_warn(ld, au != NULL ? au : cg, "credgate.audit",
		    "no audit file and stdout = false: decisions are not recorded");
}

/* An issuer duration in whole seconds. */
static int64_t
get_seconds(struct load *ld, const config_setting_t *g, const char *tpath, const char *dpath)
{
	int64_t ms = get_duration(ld, g, tpath);
	const config_setting_t *m = member(g, tpath, -1);
	char path[CFG_PATH_MAX], q[CFG_QUOTE_MAX + 16];

	if (ms % 1000 != 0 && m != NULL && config_setting_type(m) == CONFIG_TYPE_STRING) {
		path_join(path, sizeof(path), dpath, last_name(tpath));
		ld_err(ld, m, path, "%s is not a whole number of seconds",
		    QUOTE(q, config_setting_get_string(m)));
	}
	return ms / 1000;
}

static void
build_issuers(struct load *ld, const config_setting_t *root, struct cg_config *cfg)
{
	const config_setting_t *list = member(root, "issuers", CONFIG_TYPE_LIST);
	int i, n = list != NULL ? config_setting_length(list) : 0;
	char dpath[CFG_PATH_MAX], sub[CFG_PATH_MAX], q[CFG_QUOTE_MAX + 16];

	if (n == 0) {
		if (list != NULL)
			ld_warn(ld, list, "issuers", "none configured: no caller can be verified");
		return;
	}
	cfg->issuers = calloc((size_t)n, sizeof(*cfg->issuers));
	cfg->issuer_ext = calloc((size_t)n, sizeof(*cfg->issuer_ext));
	if (cfg->issuers == NULL || cfg->issuer_ext == NULL) {
		ld->nomem = true;
		return;
	}
	for (i = 0; i < n; i++) {
		const config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
		struct cg_issuer_ext *ext = &cfg->issuer_ext[cfg->nissuers];
		struct policy_issuer *is;
		char **algs;
		size_t k, nalgs;

		if (config_setting_type(g) != CONFIG_TYPE_GROUP)
			continue;
		if ((is = calloc(1, sizeof(*is))) == NULL) {
			ld->nomem = true;
			return;
		}
		cfg->issuers[cfg->nissuers++] = is;
		path_index(dpath, sizeof(dpath), "issuers", (size_t)i);
		ext->line = line_of(g);
		is->name = get_string(ld, g, "issuers.[].name");
		is->iss = get_string(ld, g, "issuers.[].issuer");
		is->audiences = get_strings(ld, g, "issuers.[].audiences", &is->naudiences);
		is->jwks_file = get_string(ld, g, "issuers.[].jwks_file");
		is->max_lifetime_s = get_seconds(ld, g, "issuers.[].max_lifetime", dpath);
		is->clock_skew_s = get_seconds(ld, g, "issuers.[].clock_skew", dpath);
		ext->audit_claims = get_strings(ld, g, "issuers.[].audit_claims",
		    &ext->naudit_claims);

		if ((algs = get_strings(ld, g, "issuers.[].algorithms", &nalgs)) == NULL &&
		    member(g, "issuers.[].algorithms", -1) == NULL)
			is->algs = JWT_ALG_ALL;	/* the default lists them all */
		for (k = 0; k < nalgs; k++)
			is->algs |= jwt_alg_parse(algs[k]);
		free_strings(algs, nalgs);

		if (is->name != NULL && is->name[0] != '\0' && !name_ok(is->name)) {
			path_join(sub, sizeof(sub), dpath, "name");
			ld_err(ld, member(g, "issuers.[].name", -1), sub,
			    "%s: only letters, digits, '_', '.' and '-' are allowed",
			    QUOTE(q, is->name));
		}
		for (k = 0; k + 1 < cfg->nissuers; k++) {
			const struct policy_issuer *o = cfg->issuers[k];

			if (is->name != NULL && o->name != NULL && is->name[0] != '\0' &&
			    strcmp(is->name, o->name) == 0) {
				path_join(sub, sizeof(sub), dpath, "name");
				ld_err(ld, member(g, "issuers.[].name", -1), sub,
				    "issuer name %s already used at line %d", QUOTE(q, is->name),
				    cfg->issuer_ext[k].line);
			}
			if (is->iss != NULL && o->iss != NULL && is->iss[0] != '\0' &&
			    strcmp(is->iss, o->iss) == 0) {
				path_join(sub, sizeof(sub), dpath, "issuer");
				ld_err(ld, member(g, "issuers.[].issuer", -1), sub,
				    "issuer %s already configured at line %d", QUOTE(q, is->iss),
				    cfg->issuer_ext[k].line);
			}
		}
		if ((ld->flags & CG_CONFIG_LOAD_FILES) && is->jwks_file != NULL &&
		    is->jwks_file[0] != '\0') {
			char err[256] = "";
			int r;

			if ((r = jwks_load_file(is->jwks_file, &is->keys, err, sizeof(err))) != 0) {
				path_join(sub, sizeof(sub), dpath, "jwks_file");
				ld_err(ld, member(g, "issuers.[].jwks_file", -1), sub, "%s",
				    err[0] != '\0' ? err : cg_strerror(r));
			}
		}
	}
}

static void
build_secrets(struct load *ld, const config_setting_t *root, struct cg_config *cfg)
{
	const config_setting_t *g = member(root, "secrets", CONFIG_TYPE_GROUP);

	cfg->secrets_backend = get_string(ld, g, "secrets.backend");
	cfg->secrets_file = get_string(ld, g, "secrets.file");
	cfg->secret_cache_ttl_ms = get_duration(ld, g, "secrets.cache_ttl");
	if (g == NULL)
		return;		/* reported as missing */
	if (cfg->secrets_backend != NULL && strcmp(cfg->secrets_backend, "file") == 0 &&
	    cfg->secrets_file == NULL)
		ld_err(ld, g, "secrets.file", "required when backend is \"file\"");
	if ((ld->flags & CG_CONFIG_LOAD_FILES) && cfg->secrets_file != NULL &&
	    cfg->secrets_file[0] != '\0') {
		char err[256] = "";
		int r;

		if ((r = file_backend_names_load(cfg->secrets_file, ld->owner, &ld->secrets,
		    err, sizeof(err))) != 0)
			ld_err(ld, member(g, "secrets.file", -1), "secrets.file", "%s",
			    err[0] != '\0' ? err : cg_strerror(r));
		if (r == CG_ERR_NOMEM)
			ld->nomem = true;
		if (!(ld->flags & CG_CONFIG_CHECK)) {
			file_backend_names_free(ld->secrets);
			ld->secrets = NULL;
		}
	}
}

/*
 * "host:port" or "[v6]:port".  Returns 0, 1 for bad syntax, 2 for a port
 * out of range, or CG_ERR_NOMEM.  *host is allocated (without brackets) on
 * success.
 */
static int
parse_listen(const char *s, char **host, int *port)
{
	const char *h, *colon, *p;
	size_t hlen, i;
	long v = 0;

	*host = NULL;
	*port = 0;
	if (s[0] == '[') {
		const char *end = strchr(s, ']');
		char buf[INET6_ADDRSTRLEN + 1];
		struct in6_addr a6;

		if (end == NULL || end[1] != ':')
			return 1;
		h = s + 1;
		hlen = (size_t)(end - h);
		if (hlen == 0 || hlen >= sizeof(buf))
			return 1;
		memcpy(buf, h, hlen);
		buf[hlen] = '\0';
		if (inet_pton(AF_INET6, buf, &a6) != 1)
			return 1;
		colon = end + 1;
	} else {
		if ((colon = strrchr(s, ':')) == NULL || colon == s)
			return 1;
		h = s;
		hlen = (size_t)(colon - s);
		for (i = 0; i < hlen; i++)
			if (!isalnum((unsigned char)h[i]) && h[i] != '.' && h[i] != '-')
				return 1;
	}
	p = colon + 1;
	if (*p == '\0' || strlen(p) > 5)
		return 1;
	for (; *p != '\0'; p++) {
		if (!isdigit((unsigned char)*p))
			return 1;
		v = v * 10 + (*p - '0');
	}
	if (v < 1 || v > 65535)
		return 2;
	if ((*host = strndup(h, hlen)) == NULL)
		return CG_ERR_NOMEM;
	*port = (int)v;
	return 0;
}

/* A rule name seen in the current route, for uniqueness. */
struct seen_rule {
	const char *name;
	int line;
};

/* Reports an issuer condition value that can name no configured issuer. */
static void
check_issuer_ref(struct load *ld, const struct cg_config *cfg, const config_setting_t *at,
    const char *path, const char *v)
{
	char q[CFG_QUOTE_MAX + 16];
	size_t k;

	if (cg_glob_has_magic(v))
		return;
	for (k = 0; k < cfg->nissuers; k++) {
		const struct policy_issuer *is = cfg->issuers[k];

		if ((is->name != NULL && cg_glob_match(v, is->name, strlen(is->name))) ||
		    (is->iss != NULL && cg_glob_match(v, is->iss, strlen(is->iss))))
			return;
	}
	ld_err(ld, at, path, "unknown issuer %s", QUOTE(q, v));
}

/*
 * Adds a condition of kind from the setting tpath of g, if set.  name is
 * the claim's path or the attribute's name; the condition remembers its
 * row (origin), for the dump and for messages.
 */
static bool
add_cond(struct load *ld, struct policy_rule *rule, enum policy_cond_kind kind,
    const config_setting_t *g, const char *tpath, const char *name)
{
	struct policy_cond *c;
	size_t n;
	char **v;

	if ((v = get_strings(ld, g, tpath, &n)) == NULL)
		return false;
	c = &rule->conds[rule->nconds++];
	c->kind = kind;
	c->values = v;
	c->nvalues = n;
	c->origin = row(tpath);
	if (kind == POLICY_COND_CLAIM)
		c->claim = ld_strdup(ld, name);
	else if (kind == POLICY_COND_ATTR)
		c->attr = ld_strdup(ld, name);
	return true;
}

/* The names of attrs, "a, b, c", into out. */
static const char *
attrs_text(const char *const *attrs, char *out, size_t size)
{
	size_t i, o = 0;
	int n;

	out[0] = '\0';
	for (i = 0; attrs != NULL && attrs[i] != NULL && o < size; i++) {
		n = snprintf(out + o, size - o, "%s%s", i > 0 ? ", " : "", attrs[i]);
		if (n < 0)
			break;
		o += (size_t)n;
	}
	return out;
}

/*
 * Where each condition of a rule was written, for messages: the setting
 * (or for an element of attributes, its attribute setting) and its path.
 */
struct cond_at {
	const config_setting_t *m;
	char path[CFG_PATH_MAX];
};

/*
 * Every attribute condition of rule names an attribute of the route's
 * protocol (when the protocol is unknown, that is reported instead).
 */
static void
resolve_attrs(struct load *ld, const struct cg_route *rt, struct policy_rule *rule,
    const config_setting_t *g, const struct cond_at *at)
{
	char q[CFG_QUOTE_MAX + 16], qp[CFG_QUOTE_MAX + 16], names[256];
	size_t i;

	if (rt->proto == NULL || policy_rule_resolve_attrs(rule, rt->proto->attrs) == 0)
		return;
	quote_into(qp, sizeof(qp), rt->proto->name, CFG_QUOTE_MAX);
	attrs_text(rt->proto->attrs, names, sizeof(names));
	for (i = 0; i < rule->nconds; i++) {
		const struct policy_cond *c = &rule->conds[i];

		if (c->kind != POLICY_COND_ATTR || c->attr_ref != 0)
			continue;
		ld_err(ld, at[i].m != NULL ? at[i].m : g, at[i].path,
		    "protocol %s has no attribute %s (it has %s)", qp,
		    QUOTE(q, c->attr != NULL ? c->attr : ""), names);
	}
}

/* Builds routes.[ri].allow or .deny into *out. */
static void
build_rules(struct load *ld, const struct cg_config *cfg, const struct cg_route *rt,
    const config_setting_t *rg, const char *kind, const char *rpath,
    struct policy_rule **out, size_t *nout, struct seen_rule *seen, size_t *nseen)
{
	char tl[64], tp[CFG_PATH_MAX], dl[CFG_PATH_MAX], dpath[CFG_PATH_MAX], sub[CFG_PATH_MAX];
	char q[CFG_QUOTE_MAX + 16];
	const config_setting_t *list;
	struct cond_at *at = NULL;
	int i, n;

	snprintf(tl, sizeof(tl), "routes.[].%s", kind);
	path_join(dl, sizeof(dl), rpath, kind);
	if ((list = member(rg, tl, -1)) == NULL || !config_setting_is_aggregate(list) ||
	    (n = config_setting_length(list)) == 0)
		return;
	if ((*out = calloc((size_t)n, sizeof(**out))) == NULL) {
		ld->nomem = true;
		return;
	}
	for (i = 0; i < n; i++) {
		const config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
		const config_setting_t *claims, *attrs, *m;
		struct policy_rule *rule;
		size_t k, ncl = 0, nat = 0;

		if (config_setting_type(g) != CONFIG_TYPE_GROUP)
			continue;
		rule = &(*out)[(*nout)++];
		path_index(dpath, sizeof(dpath), dl, (size_t)i);
		snprintf(tp, sizeof(tp), "%s.[].name", tl);
		rule->name = get_string(ld, g, tp);
		if (rule->name != NULL && rule->name[0] != '\0') {
			m = member(g, tp, -1);
			path_join(sub, sizeof(sub), dpath, "name");
			if (!name_ok(rule->name))
				ld_err(ld, m, sub, "%s: only letters, digits, '_', '.' and '-' "
				    "are allowed", QUOTE(q, rule->name));
			for (k = 0; k < *nseen; k++)
				if (strcmp(seen[k].name, rule->name) == 0) {
					ld_err(ld, m, sub, "rule name %s already used at line %d",
					    QUOTE(q, rule->name), seen[k].line);
					break;
				}
			seen[*nseen].name = rule->name;
			seen[(*nseen)++].line = line_of(m);
		}

		snprintf(tp, sizeof(tp), "%s.[].claims", tl);
		if ((claims = member(g, tp, CONFIG_TYPE_LIST)) != NULL)
			ncl = (size_t)config_setting_length(claims);
		snprintf(tp, sizeof(tp), "%s.[].attributes", tl);
		if ((attrs = member(g, tp, CONFIG_TYPE_LIST)) != NULL)
			nat = (size_t)config_setting_length(attrs);
		/* issuer, audience, methods, paths, client_subject, client_san,
		 * and one per claim and per attribute */
		free(at);
		if ((rule->conds = calloc(6 + ncl + nat, sizeof(*rule->conds))) == NULL ||
		    (at = calloc(6 + ncl + nat, sizeof(*at))) == NULL) {
			ld->nomem = true;
			break;
		}

		snprintf(tp, sizeof(tp), "%s.[].issuer", tl);
		if (add_cond(ld, rule, POLICY_COND_ISSUER, g, tp, NULL)) {
			const struct policy_cond *c = &rule->conds[rule->nconds - 1];

			path_join(sub, sizeof(sub), dpath, "issuer");
			for (k = 0; k < c->nvalues; k++)
				check_issuer_ref(ld, cfg, member(g, tp, -1), sub, c->values[k]);
		}
		snprintf(tp, sizeof(tp), "%s.[].audience", tl);
		(void)add_cond(ld, rule, POLICY_COND_AUDIENCE, g, tp, NULL);
		for (k = 0; k < ncl; k++) {
			const config_setting_t *cg = config_setting_get_elem(claims, (unsigned)k);
			char tc[CFG_PATH_MAX], *name;

			if (config_setting_type(cg) != CONFIG_TYPE_GROUP)
				continue;
			snprintf(tc, sizeof(tc), "%s.[].claims.[].claim", tl);
			if ((name = get_string(ld, cg, tc)) == NULL)
				continue;	/* reported as missing */
			snprintf(tc, sizeof(tc), "%s.[].claims.[].value", tl);
			(void)add_cond(ld, rule, POLICY_COND_CLAIM, cg, tc, name);
			free(name);
		}
		snprintf(tp, sizeof(tp), "%s.[].methods", tl);
		if (add_cond(ld, rule, POLICY_COND_ATTR, g, tp, "method")) {
			at[rule->nconds - 1].m = member(g, tp, -1);
			path_join(at[rule->nconds - 1].path, CFG_PATH_MAX, dpath, "methods");
		}
		snprintf(tp, sizeof(tp), "%s.[].paths", tl);
		if (add_cond(ld, rule, POLICY_COND_ATTR, g, tp, "path")) {
			const struct policy_cond *c = &rule->conds[rule->nconds - 1];

			at[rule->nconds - 1].m = member(g, tp, -1);
			path_join(at[rule->nconds - 1].path, CFG_PATH_MAX, dpath, "paths");
			path_join(sub, sizeof(sub), dpath, "paths");
			for (k = 0; k < c->nvalues; k++)
				if (c->values[k][0] != '/' && c->values[k][0] != '*' &&
				    c->values[k][0] != '?')
					ld_warn(ld, member(g, tp, -1), sub, "%s does not start "
					    "with \"/\" and matches no request path",
					    QUOTE(q, c->values[k]));
		}
		for (k = 0; k < nat; k++) {
			const config_setting_t *ag = config_setting_get_elem(attrs, (unsigned)k);
			char ta[CFG_PATH_MAX], *name;

			if (config_setting_type(ag) != CONFIG_TYPE_GROUP)
				continue;
			snprintf(ta, sizeof(ta), "%s.[].attributes.[].attribute", tl);
			if ((name = get_string(ld, ag, ta)) == NULL)
				continue;	/* reported as missing */
			snprintf(ta, sizeof(ta), "%s.[].attributes.[].value", tl);
			if (add_cond(ld, rule, POLICY_COND_ATTR, ag, ta, name)) {
				struct cond_at *a = &at[rule->nconds - 1];

				snprintf(ta, sizeof(ta), "%s.[].attributes", tl);
				rule->conds[rule->nconds - 1].origin = row(ta);
				snprintf(ta, sizeof(ta), "%s.[].attributes.[].attribute", tl);
				a->m = member(ag, ta, -1);
				path_join(sub, sizeof(sub), dpath, "attributes");
				path_index(a->path, sizeof(a->path), sub, (size_t)k);
				path_join(sub, sizeof(sub), a->path, "attribute");
				snprintf(a->path, sizeof(a->path), "%s", sub);
			}
			free(name);
		}
		snprintf(tp, sizeof(tp), "%s.[].client_subject", tl);
		(void)add_cond(ld, rule, POLICY_COND_CLIENT_SUBJECT, g, tp, NULL);
		snprintf(tp, sizeof(tp), "%s.[].client_san", tl);
		(void)add_cond(ld, rule, POLICY_COND_CLIENT_SAN, g, tp, NULL);
		resolve_attrs(ld, rt, rule, g, at);
	}
	free(at);
}

/* The credential settings each inject kind reads; the others are ignored. */
static const struct {
	const char *tpath;
	unsigned kinds;		/* 1 << INJ_HTTP_* */
} cred_use[] = {
	{ "routes.[].credential.username_field", 1u << INJ_HTTP_BASIC },
	{ "routes.[].credential.password_field", 1u << INJ_HTTP_BASIC },
	{ "routes.[].credential.field", 1u << INJ_HTTP_BEARER | 1u << INJ_HTTP_QUERY },
	{ "routes.[].credential.header", 1u << INJ_HTTP_HEADER },
	{ "routes.[].credential.template", 1u << INJ_HTTP_HEADER },
	{ "routes.[].credential.query_param", 1u << INJ_HTTP_QUERY },
};

static void
build_credential(struct load *ld, const config_setting_t *rg, const char *rpath,
    struct cg_route *rt)
{
	const config_setting_t *g = member(rg, "routes.[].credential", CONFIG_TYPE_GROUP);
	struct inj_http_cfg *ic = &rt->inject;
	char dpath[CFG_PATH_MAX], sub[CFG_PATH_MAX], kname[32], err[256];
	const struct cg_setting *kr = row("routes.[].credential.inject");
	size_t k;

	_Static_assert(INJ_HTTP_BASIC == 0 && INJ_HTTP_BEARER == 1 && INJ_HTTP_HEADER == 2 &&
	    INJ_HTTP_QUERY == 3, "credential.inject choices follow enum inj_http_kind");

	path_join(dpath, sizeof(dpath), rpath, "credential");
	rt->secret_path = get_string(ld, g, "routes.[].credential.path");
	ic->kind = (enum inj_http_kind)get_enum(g, "routes.[].credential.inject");
	choice_name(kr, (int)ic->kind, kname, sizeof(kname));
	ic->username_field = get_string(ld, g, "routes.[].credential.username_field");
	ic->password_field = get_string(ld, g, "routes.[].credential.password_field");
	ic->field = get_string(ld, g, "routes.[].credential.field");
	if (g == NULL)
		return;		/* reported as missing */

	for (k = 0; k < CG_ARRAY_LEN(cred_use); k++) {
		const config_setting_t *m = member(g, cred_use[k].tpath, -1);

		if (m == NULL || (cred_use[k].kinds & (1u << ic->kind)))
			continue;
		path_join(sub, sizeof(sub), dpath, last_name(cred_use[k].tpath));
		ld_warn(ld, m, sub, "ignored when inject is \"%s\"", kname);
	}
	if (ic->kind == INJ_HTTP_HEADER) {
		ic->header = get_string(ld, g, "routes.[].credential.header");
		ic->value_template = get_string(ld, g, "routes.[].credential.template");
		if (ic->header == NULL) {
			path_join(sub, sizeof(sub), dpath, "header");
			ld_err(ld, g, sub, "required when inject is \"header\"");
		}
		if (ic->value_template == NULL) {
			path_join(sub, sizeof(sub), dpath, "template");
			ld_err(ld, g, sub, "required when inject is \"header\"");
		}
		if (ic->header == NULL || ic->value_template == NULL)
			return;
	}
	if (ic->kind == INJ_HTTP_QUERY) {
		ic->query_param = get_string(ld, g, "routes.[].credential.query_param");
		if (ic->query_param == NULL) {
			path_join(sub, sizeof(sub), dpath, "query_param");
			ld_err(ld, g, sub, "required when inject is \"query\"");
			return;
		}
	}
	if (ic->username_field == NULL || ic->password_field == NULL || ic->field == NULL)
		return;		/* out of memory */
	err[0] = '\0';
	if (inj_http_cfg_check(ic, err, sizeof(err)) != 0)
		ld_err(ld, g, dpath, "%s", err[0] != '\0' ? err : "invalid injection settings");
	else if (ic->kind == INJ_HTTP_HEADER && strstr(ic->value_template, "${") == NULL) {
		/* a credential written into the configuration, not the store */
		path_join(sub, sizeof(sub), dpath, "template");
		ld_warn(ld, member(g, "routes.[].credential.template", -1), sub,
		    "references no ${field} of the secret: the header value is written in the "
		    "configuration; keep the credential in the secret store");
	}
}

/*
 * A file credgate reads at start and on reload (certificates, keys, CA
 * bundles): a regular file it can open that others cannot change; a
 * private key must not be readable by others either, and belongs to root
 * or the user credgate runs as.
 */
static void
check_tls_file(struct load *ld, const config_setting_t *g, const char *tpath,
    const char *dparent, bool private_key)
{
	const config_setting_t *m = member(g, tpath, CONFIG_TYPE_STRING);
	char path[CFG_PATH_MAX], q[CFG_QUOTE_MAX + 16];
	const char *file;
	struct stat st;
	int fd;

	if (!(ld->flags & CG_CONFIG_LOAD_FILES) || m == NULL ||
	    *(file = config_setting_get_string(m)) == '\0')
		return;
	path_join(path, sizeof(path), dparent, last_name(tpath));
	/* O_NONBLOCK: a FIFO named here must not stall the load */
	if ((fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)) < 0) {
		ld_err(ld, m, path, "%s: %s", QUOTE(q, file), strerror(errno));
		return;
	}
	if (fstat(fd, &st) != 0)
		ld_err(ld, m, path, "%s: fstat: %s", QUOTE(q, file), strerror(errno));
	else if (!S_ISREG(st.st_mode))
		ld_err(ld, m, path, "%s: not a regular file", QUOTE(q, file));
	else if (private_key && st.st_uid != 0 && st.st_uid != ld->owner)
		/* the owner can chmod it and read the key */
		ld_err(ld, m, path, "%s: owned by uid %u, not by root or the user credgate "
		    "runs as (uid %u); chown it", QUOTE(q, file), (unsigned)st.st_uid,
		    (unsigned)ld->owner);
	else if (private_key && (st.st_mode & 007) != 0)
		ld_err(ld, m, path, "%s: mode %04o lets others at the private key; chmod o-rwx",
		    QUOTE(q, file), (unsigned)(st.st_mode & 07777));
	else if ((st.st_mode & S_IWOTH) != 0)
		ld_err(ld, m, path, "%s: mode %04o lets others change it; chmod o-w",
		    QUOTE(q, file), (unsigned)(st.st_mode & 07777));
	close(fd);
}

/* A cipher, suite or group list written in the file that OpenSSL refuses. */
static void
check_tls_list(struct load *ld, const config_setting_t *g, const char *tpath,
    const char *dparent)
{
	const config_setting_t *m = member(g, tpath, CONFIG_TYPE_STRING);
	const char *name = last_name(tpath), *v, *why;
	char path[CFG_PATH_MAX], q[CFG_QUOTE_MAX + 16];
	int ok;

	if (m == NULL || *(v = config_setting_get_string(m)) == '\0')
		return;		/* the default, or reported as empty */
	if (ld->tls_ctx == NULL && (ld->tls_ctx = SSL_CTX_new(TLS_method())) == NULL) {
		ERR_clear_error();
		return;		/* cannot try it here; the listener will */
	}
	if (strcmp(name, "ciphers") == 0) {
		ok = SSL_CTX_set_cipher_list(ld->tls_ctx, v);
		why = "selects no cipher";
	} else if (strcmp(name, "ciphersuites") == 0) {
		ok = SSL_CTX_set_ciphersuites(ld->tls_ctx, v);
		why = "names no TLS 1.3 cipher suite";
	} else {
		/* a copy: OpenSSL's macro casts the const away */
		char *copy = ld_strdup(ld, v);

		ok = copy != NULL ? (int)SSL_CTX_set1_groups_list(ld->tls_ctx, copy) : 1;
		free(copy);
		why = "names a group that is not known";
	}
	ERR_clear_error();
	if (ok != 1) {
		path_join(path, sizeof(path), dparent, name);
		ld_err(ld, m, path, "%s %s", QUOTE(q, v), why);
	}
}

/* A name for SNI and certificate checks: a DNS name or an IP address. */
static bool
server_name_ok(const char *s)
{
	struct in6_addr a6;
	size_t n = strlen(s), i;

	if (n == 0 || n > 253)
		return false;
	if (inet_pton(AF_INET6, s, &a6) == 1)
		return true;
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '.' && s[i] != '-' && s[i] != '_')
			return false;
	return true;
}

/* routes.[].tls: cert and key together turn TLS on for callers. */
static void
build_tls_server(struct load *ld, const config_setting_t *rg, const char *rpath,
    struct cg_route *rt)
{
	static const char *const needs_cert[] = {
		"routes.[].tls.verify_client", "routes.[].tls.min_version",
		"routes.[].tls.ciphers", "routes.[].tls.ciphersuites", "routes.[].tls.curves",
	};
	const config_setting_t *g = member(rg, "routes.[].tls", CONFIG_TYPE_GROUP);
	struct cg_tls_server *t = &rt->tls;
	char dpath[CFG_PATH_MAX], sub[CFG_PATH_MAX], vname[32];
	size_t k;

	_Static_assert(CG_TLS_VERIFY_NONE == 0 && CG_TLS_VERIFY_OPTIONAL == 1 &&
	    CG_TLS_VERIFY_REQUIRED == 2, "tls.verify_client choices follow enum cg_tls_verify");

	path_join(dpath, sizeof(dpath), rpath, "tls");
	t->cert = get_string(ld, g, "routes.[].tls.cert");
	t->key = get_string(ld, g, "routes.[].tls.key");
	t->client_ca = get_string(ld, g, "routes.[].tls.client_ca");
	t->verify_client = (enum cg_tls_verify)get_enum(g, "routes.[].tls.verify_client");
	t->min_version = get_string(ld, g, "routes.[].tls.min_version");
	t->ciphers = get_string(ld, g, "routes.[].tls.ciphers");
	t->ciphersuites = get_string(ld, g, "routes.[].tls.ciphersuites");
	t->curves = get_string(ld, g, "routes.[].tls.curves");
	t->enabled = t->cert != NULL;
	if (g == NULL)
		return;

	if (t->cert != NULL && t->key == NULL) {
		path_join(sub, sizeof(sub), dpath, "key");
		ld_err(ld, g, sub, "required when cert is set");
	}
	if (t->key != NULL && t->cert == NULL) {
		path_join(sub, sizeof(sub), dpath, "cert");
		ld_err(ld, g, sub, "required when key is set");
	}
	if (t->client_ca != NULL && t->cert == NULL) {
		path_join(sub, sizeof(sub), dpath, "client_ca");
		ld_err(ld, member(g, "routes.[].tls.client_ca", -1), sub,
		    "requires cert and key: the listener serves TLS only with both");
	}
	if (t->verify_client != CG_TLS_VERIFY_NONE && t->client_ca == NULL) {
		path_join(sub, sizeof(sub), dpath, "verify_client");
		ld_err(ld, member(g, "routes.[].tls.verify_client", -1), sub,
		    "\"%s\" requires client_ca", choice_name(row("routes.[].tls.verify_client"),
		    (int)t->verify_client, vname, sizeof(vname)));
	}
	if (!t->enabled) {
		for (k = 0; k < CG_ARRAY_LEN(needs_cert); k++) {
			const config_setting_t *m = member(g, needs_cert[k], -1);

			if (m == NULL)
				continue;
			path_join(sub, sizeof(sub), dpath, last_name(needs_cert[k]));
			ld_warn(ld, m, sub, "ignored without cert and key");
		}
		return;
	}
	if (t->client_ca != NULL && t->verify_client == CG_TLS_VERIFY_NONE) {
		path_join(sub, sizeof(sub), dpath, "client_ca");
		ld_warn(ld, member(g, "routes.[].tls.client_ca", -1), sub,
		    "not used while verify_client is \"none\"");
	}
	check_tls_file(ld, g, "routes.[].tls.cert", dpath, false);
	check_tls_file(ld, g, "routes.[].tls.key", dpath, true);
	check_tls_file(ld, g, "routes.[].tls.client_ca", dpath, false);
	check_tls_list(ld, g, "routes.[].tls.ciphers", dpath);
	check_tls_list(ld, g, "routes.[].tls.ciphersuites", dpath);
	check_tls_list(ld, g, "routes.[].tls.curves", dpath);
}

/* routes.[].upstream.tls: every setting but enabled needs enabled = true. */
static void
build_tls_client(struct load *ld, const config_setting_t *up, const char *rpath,
    struct cg_route *rt)
{
	const config_setting_t *g = member(up, "routes.[].upstream.tls", CONFIG_TYPE_GROUP);
	const config_setting_t *m;
	struct cg_tls_client *t = &rt->upstream_tls;
	char dpath[CFG_PATH_MAX], sub[CFG_PATH_MAX], q[CFG_QUOTE_MAX + 16];
	int i, n;

	path_join(dpath, sizeof(dpath), rpath, "upstream.tls");
	t->enabled = get_bool(g, "routes.[].upstream.tls.enabled");
	t->verify = get_bool(g, "routes.[].upstream.tls.verify");
	t->min_version = get_string(ld, g, "routes.[].upstream.tls.min_version");
	t->ciphers = get_string(ld, g, "routes.[].upstream.tls.ciphers");
	t->ciphersuites = get_string(ld, g, "routes.[].upstream.tls.ciphersuites");
	if (g == NULL)
		return;
	if (!t->enabled) {
		n = config_setting_length(g);
		for (i = 0; i < n; i++) {
			const char *name;

			m = config_setting_get_elem(g, (unsigned)i);
			name = config_setting_name(m);
			if (name == NULL || strcmp(name, "enabled") == 0)
				continue;
			path_join(sub, sizeof(sub), dpath, name);
			ld_warn(ld, m, sub, "ignored when enabled is false");
		}
		return;
	}
	t->ca = get_string(ld, g, "routes.[].upstream.tls.ca");
	t->server_name = get_string(ld, g, "routes.[].upstream.tls.server_name");
	t->cert = get_string(ld, g, "routes.[].upstream.tls.cert");
	t->key = get_string(ld, g, "routes.[].upstream.tls.key");

	if (t->server_name != NULL) {
		if (t->server_name[0] != '\0' && !server_name_ok(t->server_name)) {
			path_join(sub, sizeof(sub), dpath, "server_name");
			ld_err(ld, member(g, "routes.[].upstream.tls.server_name", -1), sub,
			    "%s is not a host name or address", QUOTE(q, t->server_name));
		}
	} else if (rt->upstream_host != NULL) {
		/* the default, which -T then writes out */
		if (rt->upstream_host[0] != '\0' && !server_name_ok(rt->upstream_host)) {
			path_join(sub, sizeof(sub), rpath, "upstream.host");
			ld_err(ld, member(up, "routes.[].upstream.host", -1), sub,
			    "%s is not a host name or address, as TLS needs; set "
			    "upstream.tls.server_name", QUOTE(q, rt->upstream_host));
		}
		t->server_name = ld_strdup(ld, rt->upstream_host);
	}
	if (t->cert != NULL && t->key == NULL) {
		path_join(sub, sizeof(sub), dpath, "key");
		ld_err(ld, g, sub, "required when cert is set");
	}
	if (t->key != NULL && t->cert == NULL) {
		path_join(sub, sizeof(sub), dpath, "cert");
		ld_err(ld, g, sub, "required when key is set");
	}
	if (!t->verify) {
		path_join(sub, sizeof(sub), dpath, "verify");
		ld_warn(ld, member(g, "routes.[].upstream.tls.verify", -1), sub,
		    "upstream certificate verification is off");
	}
	check_tls_file(ld, g, "routes.[].upstream.tls.ca", dpath, false);
	check_tls_file(ld, g, "routes.[].upstream.tls.cert", dpath, false);
	check_tls_file(ld, g, "routes.[].upstream.tls.key", dpath, true);
	check_tls_list(ld, g, "routes.[].upstream.tls.ciphers", dpath);
	check_tls_list(ld, g, "routes.[].upstream.tls.ciphersuites", dpath);
}

static void
build_route(struct load *ld, const config_setting_t *rg, size_t idx, struct cg_config *cfg)
{
	struct cg_route *rt = &cfg->routes[cfg->nroutes++];
	char rpath[CFG_PATH_MAX], sub[CFG_PATH_MAX], q[CFG_QUOTE_MAX + 16];
	const config_setting_t *up = member(rg, "routes.[].upstream", CONFIG_TYPE_GROUP);
	const config_setting_t *m;
	struct seen_rule *seen = NULL;
	size_t k, nseen = 0, nrules = 0;
	char *listen;

	_Static_assert(POLICY_ENFORCE == 0 && POLICY_DRY_RUN == 1,
	    "routes.[].mode choices follow enum policy_mode");
	_Static_assert(CG_AUDIT_FAIL_DENY == 0 && CG_AUDIT_FAIL_ALLOW == 1,
	    "routes.[].audit_failure choices follow enum cg_audit_failure");

	path_index(rpath, sizeof(rpath), "routes", idx);
	rt->line = line_of(rg);
	rt->policy.name = get_string(ld, rg, "routes.[].name");
	rt->protocol = get_string(ld, rg, "routes.[].protocol");
	rt->proto = inj_proto_find(rt->protocol);
	rt->upstream_host = get_string(ld, up, "routes.[].upstream.host");
	rt->upstream_port = (int)get_int(ld, up, "routes.[].upstream.port");
	rt->max_connections = (uint32_t)get_int(ld, rg, "routes.[].max_connections");
	rt->keepalive_requests = (uint32_t)get_int(ld, rg, "routes.[].keepalive_requests");
	rt->keepalive_time_ms = get_duration(ld, rg, "routes.[].keepalive_time");
	rt->upstream_keepalive = (uint32_t)get_int(ld, up, "routes.[].upstream.keepalive");
	rt->policy.mode = (enum policy_mode)get_enum(rg, "routes.[].mode");
	rt->max_body = (uint64_t)get_int(ld, rg, "routes.[].max_body");
	rt->audit_failure = (enum cg_audit_failure)get_enum(rg, "routes.[].audit_failure");
	rt->owner = get_string(ld, rg, "routes.[].owner");
	rt->purpose = get_string(ld, rg, "routes.[].purpose");
	rt->environment = get_string(ld, rg, "routes.[].environment");
	rt->expires_text = get_string(ld, rg, "routes.[].expires");
	build_credential(ld, rg, rpath, rt);

	if (rt->policy.name != NULL && rt->policy.name[0] != '\0') {
		m = member(rg, "routes.[].name", -1);
		path_join(sub, sizeof(sub), rpath, "name");
		if (!name_ok(rt->policy.name))
			ld_err(ld, m, sub, "%s: only letters, digits, '_', '.' and '-' are allowed",
			    QUOTE(q, rt->policy.name));
		for (k = 0; k + 1 < cfg->nroutes; k++)
			if (cfg->routes[k].policy.name != NULL &&
			    strcmp(cfg->routes[k].policy.name, rt->policy.name) == 0) {
				ld_err(ld, m, sub, "route name %s already used at line %d",
				    QUOTE(q, rt->policy.name), cfg->routes[k].line);
				break;
			}
	}

	if ((listen = get_string(ld, rg, "routes.[].listen")) != NULL) {
		int r = parse_listen(listen, &rt->listen_host, &rt->listen_port);

		m = member(rg, "routes.[].listen", -1);
		path_join(sub, sizeof(sub), rpath, "listen");
		if (r == CG_ERR_NOMEM)
			ld->nomem = true;
		else if (r == 2)
			ld_err(ld, m, sub, "%s: port not in 1..65535", QUOTE(q, listen));
		else if (r != 0)
			ld_err(ld, m, sub, "%s is not host:port or [v6]:port", QUOTE(q, listen));
		for (k = 0; r == 0 && k + 1 < cfg->nroutes; k++) {
			const struct cg_route *o = &cfg->routes[k];

			if (o->listen_host != NULL && o->listen_port == rt->listen_port &&
			    strcmp(o->listen_host, rt->listen_host) == 0) {
				ld_err(ld, m, sub, "listen address %s already used at line %d",
				    QUOTE(q, listen), o->line);
				break;
			}
		}
		free(listen);
	}
	build_tls_server(ld, rg, rpath, rt);
	build_tls_client(ld, up, rpath, rt);

	if (rt->expires_text != NULL && rt->expires_text[0] != '\0') {
		m = member(rg, "routes.[].expires", -1);
		path_join(sub, sizeof(sub), rpath, "expires");
		if (cg_time_parse(rt->expires_text, &rt->policy.expires) != 0)
			ld_err(ld, m, sub, "%s is not a date (YYYY-MM-DD) or an RFC 3339 time",
			    QUOTE(q, rt->expires_text));
		else if (rt->policy.expires <= cg_now_ms() / 1000)
			ld_warn(ld, m, sub, "%s has passed: the route denies every request",
			    QUOTE(q, rt->expires_text));
	}

	/* every rule name of the route, allow and deny together */
	for (k = 0; k < 2; k++) {
		const config_setting_t *l = member(rg, k == 0 ? "routes.[].allow" :
		    "routes.[].deny", -1);

		if (l != NULL && config_setting_is_aggregate(l))
			nrules += (size_t)config_setting_length(l);
	}
	if (nrules > 0 && (seen = calloc(nrules, sizeof(*seen))) == NULL) {
		ld->nomem = true;
		return;
	}
	build_rules(ld, cfg, rt, rg, "allow", rpath, &rt->policy.allow, &rt->policy.nallow,
	    seen, &nseen);
	build_rules(ld, cfg, rt, rg, "deny", rpath, &rt->policy.deny, &rt->policy.ndeny,
	    seen, &nseen);
	free(seen);
}

static void
build_routes(struct load *ld, const config_setting_t *root, struct cg_config *cfg)
{
	const config_setting_t *list = member(root, "routes", CONFIG_TYPE_LIST);
	int i, n = list != NULL ? config_setting_length(list) : 0;

	if (n == 0)
		return;
	if ((cfg->routes = calloc((size_t)n, sizeof(*cfg->routes))) == NULL) {
		ld->nomem = true;
		return;
	}
	for (i = 0; i < n; i++) {
		const config_setting_t *g = config_setting_get_elem(list, (unsigned)i);

		if (config_setting_type(g) == CONFIG_TYPE_GROUP)
			build_route(ld, g, (size_t)i, cfg);
	}
}

/* The address is 0.0.0.0 or :: (any address of its family). */
static bool
is_wildcard(const char *host)
{
	struct in6_addr a6;
	struct in_addr a4;

	if (inet_pton(AF_INET, host, &a4) == 1)
		return a4.s_addr == htonl(INADDR_ANY);
	return inet_pton(AF_INET6, host, &a6) == 1 && IN6_IS_ADDR_UNSPECIFIED(&a6);
}

static const char *
listen_text(const char *host, int port, char *out, size_t size)
{
	snprintf(out, size, strchr(host, ':') != NULL ? "[%s]:%d" : "%s:%d", host, port);
	return out;
}

/*
 * The admin endpoint cannot share a route's address, nor take the port of
 * a route on an address that covers the other's (0.0.0.0 covers IPv4, ::
 * both families).
 */
static void
check_admin_listen(struct load *ld, const config_setting_t *root, const struct cg_config *cfg)
{
	const config_setting_t *cg = member(root, "credgate", CONFIG_TYPE_GROUP);
	const config_setting_t *ad = member(cg, "credgate.admin", CONFIG_TYPE_GROUP);
	const config_setting_t *m = member(ad, "credgate.admin.listen", CONFIG_TYPE_STRING);
	const char *ah = cfg->admin_listen_host;
	char a[CFG_QUOTE_MAX + 16], q[CFG_QUOTE_MAX + 16], name[CFG_QUOTE_MAX + 16], buf[512];
	size_t k;

	if (ah == NULL)
		return;
	for (k = 0; k < cfg->nroutes; k++) {
		const struct cg_route *rt = &cfg->routes[k];
		const char *rh = rt->listen_host;
		bool a6, r6;

		if (rh == NULL || rt->listen_port != cfg->admin_listen_port)
			continue;
		quote_into(a, sizeof(a), listen_text(ah, cfg->admin_listen_port, buf, sizeof(buf)),
		    CFG_QUOTE_MAX);
		quote_into(q, sizeof(q), listen_text(rh, rt->listen_port, buf, sizeof(buf)),
		    CFG_QUOTE_MAX);
		quote_into(name, sizeof(name), rt->policy.name != NULL ? rt->policy.name : "",
		    CFG_QUOTE_MAX);
		a6 = strchr(ah, ':') != NULL;
		r6 = strchr(rh, ':') != NULL;
		if (strcmp(ah, rh) == 0)
			ld_err(ld, m, "credgate.admin.listen", "listen address %s already used by "
			    "route %s at line %d", a, name, rt->line);
		else if ((is_wildcard(ah) && (a6 || a6 == r6)) ||
		    (is_wildcard(rh) && (r6 || a6 == r6)))
			ld_err(ld, m, "credgate.admin.listen", "%s overlaps listen address %s of "
			    "route %s at line %d", a, q, name, rt->line);
	}
}

/* True when some allow rule can accept a token of issuer is. */
static bool
issuer_accepted(const struct cg_config *cfg, const struct policy_issuer *is)
{
	size_t r, a, c, v;

	for (r = 0; r < cfg->nroutes; r++) {
		const struct policy_route *pr = &cfg->routes[r].policy;

		for (a = 0; a < pr->nallow; a++) {
			const struct policy_rule *rule = &pr->allow[a];
			bool named = true;

			for (c = 0; c < rule->nconds; c++) {
				const struct policy_cond *pc = &rule->conds[c];

				if (pc->kind != POLICY_COND_ISSUER)
					continue;
				named = false;
				for (v = 0; v < pc->nvalues && !named; v++)
					named = (is->name != NULL && cg_glob_match(pc->values[v],
					    is->name, strlen(is->name))) ||
					    (is->iss != NULL && cg_glob_match(pc->values[v],
					    is->iss, strlen(is->iss)));
			}
			if (named)
				return true;
		}
	}
	return false;
}

/*
 * One field a route's injection reads: reported when the route's secret
 * lacks it.  tpath is the setting that names the field; ref is set for a
 * template reference.
 */
static void
check_field(struct load *ld, const config_setting_t *cred, const char *rpath,
    const struct cg_route *rt, const char *tpath, const char *field, bool ref)
{
	char path[CFG_PATH_MAX], sub[CFG_PATH_MAX], qn[CFG_QUOTE_MAX + 16];
	char qp[CFG_QUOTE_MAX + 16], qf[CFG_QUOTE_MAX + 16];
	const config_setting_t *m = member(cred, tpath, -1);

	if (file_backend_names_has(ld->secrets, rt->secret_path, field))
		return;
	path_join(sub, sizeof(sub), rpath, "credential");
	path_join(path, sizeof(path), sub, last_name(tpath));
	ld_err(ld, m != NULL ? m : cred, path, "route %s: secret %s has no field %s%s%s%s",
	    QUOTE(qn, rt->policy.name), QUOTE(qp, rt->secret_path), QUOTE(qf, field),
	    ref ? " (the template's ${" : "", ref ? field : "", ref ? "})" : "");
}

/*
 * For `credgate -t` with the file backend: each route's secret is in the
 * secrets file, with every field its injection reads.  Names only: no
 * value is read into a message.
 */
static void
check_route_secrets(struct load *ld, const config_setting_t *root, const struct cg_config *cfg)
{
	const config_setting_t *list = member(root, "routes", CONFIG_TYPE_LIST);
	char rpath[CFG_PATH_MAX], path[CFG_PATH_MAX], qn[CFG_QUOTE_MAX + 16];
	char qp[CFG_QUOTE_MAX + 16], qf[CFG_QUOTE_MAX + 16];
	int i, n = list != NULL ? config_setting_length(list) : 0;
	size_t k = 0;

	if (ld->secrets == NULL)
		return;		/* not asked for, or the file is reported */
	for (i = 0; i < n && k < cfg->nroutes; i++) {
		const config_setting_t *rg = config_setting_get_elem(list, (unsigned)i);
		const config_setting_t *cred;
		const struct cg_route *rt;
		const struct inj_http_cfg *ic;
		const char *t, *p, *end;

		if (config_setting_type(rg) != CONFIG_TYPE_GROUP)
			continue;
		rt = &cfg->routes[k++];
		ic = &rt->inject;
		cred = member(rg, "routes.[].credential", CONFIG_TYPE_GROUP);
		if (cred == NULL || rt->secret_path == NULL || rt->secret_path[0] == '\0' ||
		    rt->policy.name == NULL)
			continue;	/* reported */
		path_index(rpath, sizeof(rpath), "routes", (size_t)i);
		if (!file_backend_names_has(ld->secrets, rt->secret_path, NULL)) {
			path_join(path, sizeof(path), rpath, "credential.path");
			ld_err(ld, member(cred, "routes.[].credential.path", -1), path,
			    "route %s: no secret %s in %s", QUOTE(qn, rt->policy.name),
			    QUOTE(qp, rt->secret_path), QUOTE(qf, cfg->secrets_file));
			continue;
		}
		switch (ic->kind) {
		case INJ_HTTP_BASIC:
			if (ic->username_field != NULL)
				check_field(ld, cred, rpath, rt, "routes.[].credential.username_field",
				    ic->username_field, false);
			if (ic->password_field != NULL)
				check_field(ld, cred, rpath, rt, "routes.[].credential.password_field",
				    ic->password_field, false);
			break;
		case INJ_HTTP_BEARER:
		case INJ_HTTP_QUERY:
			if (ic->field != NULL)
				check_field(ld, cred, rpath, rt, "routes.[].credential.field",
				    ic->field, false);
			break;
		case INJ_HTTP_HEADER:
			/*
			 * In a template that inj_http_cfg_check() accepts, each
			 * "${" opens a reference that the next "}" closes.  A
			 * name is reported once.
			 */
			if ((t = ic->value_template) == NULL ||
			    inj_http_cfg_check(ic, qf, sizeof(qf)) != 0)
				break;	/* reported */
			for (p = t; (p = strstr(p, "${")) != NULL && (end = strchr(p, '}')) != NULL;
			    p = end + 1) {
				char *name = strndup(p + 2, (size_t)(end - p - 2)), *first = NULL;

				if (name == NULL || asprintf(&first, "${%s}", name) < 0) {
					free(name);
					ld->nomem = true;
					return;
				}
				if (strstr(t, first) == p)
					check_field(ld, cred, rpath, rt,
					    "routes.[].credential.template", name, true);
				free(first);
				free(name);
			}
			break;
		}
	}
}

static void
warn_unused_issuers(struct load *ld, const config_setting_t *root, const struct cg_config *cfg)
{
	const config_setting_t *list = member(root, "issuers", CONFIG_TYPE_LIST);
	char path[CFG_PATH_MAX], q[CFG_QUOTE_MAX + 16];
	size_t i, k = 0;
	int n = list != NULL ? config_setting_length(list) : 0;

	for (i = 0; i < (size_t)n && k < cfg->nissuers; i++) {
		const config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
		const struct policy_issuer *is;

		if (config_setting_type(g) != CONFIG_TYPE_GROUP)
			continue;
		is = cfg->issuers[k++];
		if (is->name == NULL || issuer_accepted(cfg, is))
			continue;
		path_index(path, sizeof(path), "issuers", i);
		ld_warn(ld, g, path, "no allow rule accepts issuer %s", QUOTE(q, is->name));
	}
}

/* ------------------------------------------------------------------ */
/* Loading                                                             */
/* ------------------------------------------------------------------ */

static int
load_text(const char *text, const char *name, unsigned flags, struct cg_config **out,
    struct cg_errors *errs)
{
	struct load ld = { .name = name, .flags = flags, .errs = errs };
	struct cg_config *cfg = NULL;
	const config_setting_t *root;
	config_t lc;
	int r;

	config_init(&lc);
	scan_big_ints(&ld, text);
	if (config_read_string(&lc, text) != CONFIG_TRUE) {
		const char *f = config_error_file(&lc), *why = config_error_text(&lc);

		/* libconfig names no setting here; the text does */
		if (why == NULL || strcmp(why, "duplicate setting name") != 0 ||
		    !report_duplicate(&ld, text, f, config_error_line(&lc)))
			cg_errors_add(errs, "%s:%d: %s", f != NULL ? f : name,
			    config_error_line(&lc), why != NULL ? why : "syntax error");
		r = ld.nomem ? CG_ERR_NOMEM : CG_ERR_FORMAT;
		goto out;
	}
	root = config_root_setting(&lc);
	check_nul_escapes(&ld, text);
	check_group(&ld, root, "", "");

	if ((cfg = calloc(1, sizeof(*cfg))) == NULL || (cfg->file = strdup(name)) == NULL) {
		r = CG_ERR_NOMEM;
		goto out;
	}
	build_global(&ld, root, cfg);
	build_issuers(&ld, root, cfg);
	build_secrets(&ld, root, cfg);
	build_routes(&ld, root, cfg);
	check_admin_listen(&ld, root, cfg);
	check_route_secrets(&ld, root, cfg);
	if (ld.nerr == 0) {
		size_t i;

		warn_unused_issuers(&ld, root, cfg);
		for (i = 0; i < ld.warnings.n; i++) {
			if (!errors_push(errs, ld.warnings.msgs[i], true))
				ld.nomem = true;
			ld.warnings.msgs[i] = NULL;
		}
	}

	if (ld.nomem) {
		r = CG_ERR_NOMEM;
		goto out;
	}
	if (ld.nerr > 0) {
		r = CG_ERR_FORMAT;
		goto out;
	}
	*out = cfg;
	cfg = NULL;
	r = 0;
 out:
	if (ld.nomem && r == CG_ERR_FORMAT)
		r = CG_ERR_NOMEM;
	cg_config_free(cfg);
	cg_errors_clear(&ld.warnings);
	file_backend_names_free(ld.secrets);
	free(ld.big);
	SSL_CTX_free(ld.tls_ctx);
	ERR_clear_error();
	config_destroy(&lc);
	return r;
}

int
cg_config_load_string(const char *text, const char *name, unsigned flags,
    struct cg_config **out, struct cg_errors *errs)
{
	*out = NULL;
	return load_text(text, name, flags, out, errs);
}

int
cg_config_load(const char *file, unsigned flags, struct cg_config **out,
    struct cg_errors *errs)
{
	struct cg_file f;
	char why[512];
	int r;

	*out = NULL;
	/* A symbolic link is followed: configuration is often linked in place. */
	if ((r = cg_file_read(file, CG_FILE_FOLLOW, CFG_MAX_TEXT, 0, &f, why,
	    sizeof(why))) != 0) {
		if (r == CG_ERR_NOMEM)
			return r;
		cg_errors_add(errs, "%s", why);
		/* This function's codes: over the size limit is
		 * CG_ERR_FORMAT, any other failure to read CG_ERR_IO. */
		return r == CG_ERR_LIMIT ? CG_ERR_FORMAT : CG_ERR_IO;
	}
	if (memchr(f.data, '\0', f.len) != NULL) {
		cg_errors_add(errs, "%s: holds a NUL byte", file);
		r = CG_ERR_FORMAT;
	} else
		r = load_text(f.data, file, flags, out, errs);
	cg_file_free(&f);
	return r;
}

void
cg_config_free(struct cg_config *cfg)
{
	size_t i;

	if (cfg == NULL)
		return;
	free(cfg->file);
	free(cfg->log_file);
	free(cfg->user);
	free(cfg->group);
	free(cfg->admin_listen_host);
	free(cfg->audit_file);
	free(cfg->secrets_backend);
	free(cfg->secrets_file);
	for (i = 0; i < cfg->nissuers; i++) {
		policy_issuer_free(cfg->issuers[i]);
		free_strings(cfg->issuer_ext[i].audit_claims, cfg->issuer_ext[i].naudit_claims);
	}
	free(cfg->issuers);
	free(cfg->issuer_ext);
	for (i = 0; i < cfg->nroutes; i++) {
		struct cg_route *rt = &cfg->routes[i];

		policy_route_clear(&rt->policy);
		inj_http_cfg_clear(&rt->inject);
		free(rt->listen_host);
		free(rt->protocol);
		free(rt->upstream_host);
		free(rt->secret_path);
		free(rt->owner);
		free(rt->purpose);
		free(rt->environment);
		free(rt->expires_text);
		free(rt->tls.cert);
		free(rt->tls.key);
		free(rt->tls.client_ca);
		free(rt->tls.min_version);
		free(rt->tls.ciphers);
		free(rt->tls.ciphersuites);
		free(rt->tls.curves);
		free(rt->upstream_tls.ca);
		free(rt->upstream_tls.server_name);
		free(rt->upstream_tls.cert);
		free(rt->upstream_tls.key);
		free(rt->upstream_tls.min_version);
		free(rt->upstream_tls.ciphers);
		free(rt->upstream_tls.ciphersuites);
	}
	free(cfg->routes);
	free(cfg);
}

const struct cg_route *
cg_config_route(const struct cg_config *cfg, const char *name)
{
	size_t i;

	for (i = 0; cfg != NULL && i < cfg->nroutes; i++)
		if (cfg->routes[i].policy.name != NULL &&
		    strcmp(cfg->routes[i].policy.name, name) == 0)
			return &cfg->routes[i];
	return NULL;
}

/* ------------------------------------------------------------------ */
/* The effective configuration                                         */
/* ------------------------------------------------------------------ */

struct dump {
	FILE *f;
	int depth;
};

static void
d_indent(struct dump *d)
{
	int i;

	for (i = 0; i < d->depth; i++)
		fputc('\t', d->f);
}

static void
d_quoted(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		switch (c) {
		case '"': fputs("\\\"", f); break;
		case '\\': fputs("\\\\", f); break;
		case '\n': fputs("\\n", f); break;
		case '\r': fputs("\\r", f); break;
		case '\t': fputs("\\t", f); break;
		case '\f': fputs("\\f", f); break;
		default:
			if (c < 0x20 || c == 0x7f)
				fprintf(f, "\\x%02x", c);
			else
				fputc(c, f);
		}
	}
	fputc('"', f);
}

/* Starts "name = " for row tpath; false (and a line written) if redacted. */
static bool
d_start(struct dump *d, const char *tpath)
{
	const struct cg_setting *r = row(tpath);

	d_indent(d);
	fprintf(d->f, "%s = ", last_name(tpath));
	if (r->sensitive) {
		fputs("\"<redacted>\";\n", d->f);
		return false;
	}
	return true;
}

static void
d_unset(struct dump *d, const char *tpath)
{
	d_indent(d);
	fprintf(d->f, "# %s is not set\n", last_name(tpath));
}

static void
d_str(struct dump *d, const char *tpath, const char *v)
{
	if (v == NULL) {
		d_unset(d, tpath);
		return;
	}
	if (!d_start(d, tpath))
		return;
	d_quoted(d->f, v);
	fputs(";\n", d->f);
}

static void
d_int(struct dump *d, const char *tpath, int64_t v)
{
	if (!d_start(d, tpath))
		return;
	/* libconfig needs the L suffix beyond 32 bits */
	fprintf(d->f, "%" PRId64 "%s;\n", v, v > INT32_MAX || v < INT32_MIN ? "L" : "");
}

static void
d_bool(struct dump *d, const char *tpath, bool v)
{
	if (d_start(d, tpath))
		fprintf(d->f, "%s;\n", v ? "true" : "false");
}

static void
d_duration(struct dump *d, const char *tpath, int64_t ms)
{
	char buf[64];

	d_str(d, tpath, duration_text(ms, buf, sizeof(buf)));
}

static void
d_enum(struct dump *d, const char *tpath, int v)
{
	char buf[64];

	d_str(d, tpath, choice_name(row(tpath), v, buf, sizeof(buf)));
}

static void
d_strings(struct dump *d, const char *tpath, char *const *v, size_t n, bool set)
{
	size_t i;

	if (!set) {
		d_unset(d, tpath);
		return;
	}
	if (!d_start(d, tpath))
		return;
	fputs("[", d->f);
	for (i = 0; i < n; i++) {
		fputs(i > 0 ? ", " : " ", d->f);
		d_quoted(d->f, v[i]);
	}
	fputs(" ];\n", d->f);
}

static void
d_open(struct dump *d, const char *tpath, bool list)
{
	d_indent(d);
	fprintf(d->f, "%s = %s\n", last_name(tpath), list ? "(" : "{");
	d->depth++;
}

static void
d_close(struct dump *d, bool list)
{
	d->depth--;
	d_indent(d);
	fputs(list ? ");\n" : "};\n", d->f);
}

static void
d_empty_list(struct dump *d, const char *tpath)
{
	d_indent(d);
	fprintf(d->f, "%s = ( );\n", last_name(tpath));
}

/* Opens element i of a list; closes the previous one first. */
static void
d_elem(struct dump *d, size_t i)
{
	if (i > 0) {
		d->depth--;
		d_indent(d);
		fputs("},\n", d->f);
	}
	d_indent(d);
	fputs("{\n", d->f);
	d->depth++;
}

static void
d_elems_end(struct dump *d, size_t n)
{
	if (n == 0)
		return;
	d->depth--;
	d_indent(d);
	fputs("}\n", d->f);
}

/* The condition of rule written as row tpath; NULL if none. */
static const struct policy_cond *
find_cond(const struct policy_rule *rule, const char *tpath)
{
	const struct cg_setting *r = row(tpath);
	size_t i;

	for (i = 0; i < rule->nconds; i++)
		if (rule->conds[i].origin == r)
			return &rule->conds[i];
	return NULL;
}

static void
d_cond(struct dump *d, const struct policy_rule *rule, const char *tl, const char *name)
{
	char tp[CFG_PATH_MAX];
	const struct policy_cond *c;

	snprintf(tp, sizeof(tp), "%s.[].%s", tl, name);
	c = find_cond(rule, tp);
	d_strings(d, tp, c != NULL ? c->values : NULL, c != NULL ? c->nvalues : 0,
	    c != NULL);
}

/*
 * The list tl.[].list (claims, attributes) of rule: the conditions that
 * came from it, each as a group of the name (claim, attribute) and value.
 */
static void
d_cond_list(struct dump *d, const struct policy_rule *rule, const char *tl,
    const char *list, const char *name)
{
	char tp[CFG_PATH_MAX], tv[CFG_PATH_MAX], tn[CFG_PATH_MAX];
	const struct cg_setting *from;
	size_t k, n;

	snprintf(tp, sizeof(tp), "%s.[].%s", tl, list);
	snprintf(tn, sizeof(tn), "%s.[].%s.[].%s", tl, list, name);
	snprintf(tv, sizeof(tv), "%s.[].%s.[].value", tl, list);
	/* a claim's condition is marked with its value row, an attribute's
	 * with its list row: methods and paths are attribute conditions too */
	from = row(strcmp(list, "claims") == 0 ? tv : tp);
	for (k = 0, n = 0; k < rule->nconds; k++)
		n += rule->conds[k].origin == from;
	if (n == 0) {
		d_empty_list(d, tp);
		return;
	}
	d_open(d, tp, true);
	for (k = 0, n = 0; k < rule->nconds; k++) {
		const struct policy_cond *c = &rule->conds[k];

		if (c->origin != from)
			continue;
		d_elem(d, n++);
		d_str(d, tn, c->kind == POLICY_COND_CLAIM ? c->claim : c->attr);
		d_strings(d, tv, c->values, c->nvalues, true);
	}
	d_elems_end(d, n);
	d_close(d, true);
}

static void
d_rules(struct dump *d, const char *kind, const struct policy_rule *rules, size_t n)
{
	char tl[64], tp[CFG_PATH_MAX];
	size_t i;

	snprintf(tl, sizeof(tl), "routes.[].%s", kind);
	if (n == 0) {
		d_empty_list(d, tl);
		return;
	}
	d_open(d, tl, true);
	for (i = 0; i < n; i++) {
		const struct policy_rule *rule = &rules[i];

		d_elem(d, i);
		snprintf(tp, sizeof(tp), "%s.[].name", tl);
		d_str(d, tp, rule->name);
		d_cond(d, rule, tl, "issuer");
		d_cond(d, rule, tl, "audience");
		d_cond_list(d, rule, tl, "claims", "claim");
		d_cond(d, rule, tl, "methods");
		d_cond(d, rule, tl, "paths");
		d_cond_list(d, rule, tl, "attributes", "attribute");
		d_cond(d, rule, tl, "client_subject");
		d_cond(d, rule, tl, "client_san");
	}
	d_elems_end(d, n);
	d_close(d, true);
}

/* A setting that is off while the TLS it belongs to is off. */
static void
d_unused(struct dump *d, const char *tpath, const char *why)
{
	d_indent(d);
	fprintf(d->f, "# %s is not used %s\n", last_name(tpath), why);
}

static void
d_tls_server(struct dump *d, const struct cg_tls_server *t)
{
	static const char *const off[] = {
		"routes.[].tls.verify_client", "routes.[].tls.min_version",
		"routes.[].tls.ciphers", "routes.[].tls.ciphersuites", "routes.[].tls.curves",
	};
	size_t k;

	d_open(d, "routes.[].tls", false);
	d_str(d, "routes.[].tls.cert", t->cert);
	d_str(d, "routes.[].tls.key", t->key);
	d_str(d, "routes.[].tls.client_ca", t->client_ca);
	if (!t->enabled) {
		for (k = 0; k < CG_ARRAY_LEN(off); k++)
			d_unused(d, off[k], "without cert and key");
	} else {
		d_enum(d, "routes.[].tls.verify_client", (int)t->verify_client);
		d_str(d, "routes.[].tls.min_version", t->min_version);
		d_str(d, "routes.[].tls.ciphers", t->ciphers);
		d_str(d, "routes.[].tls.ciphersuites", t->ciphersuites);
		d_str(d, "routes.[].tls.curves", t->curves);
	}
	d_close(d, false);
}

static void
d_tls_client(struct dump *d, const struct cg_tls_client *t)
{
	static const char *const off[] = {
		"routes.[].upstream.tls.ca", "routes.[].upstream.tls.verify",
		"routes.[].upstream.tls.server_name", "routes.[].upstream.tls.cert",
		"routes.[].upstream.tls.key", "routes.[].upstream.tls.min_version",
		"routes.[].upstream.tls.ciphers", "routes.[].upstream.tls.ciphersuites",
	};
	size_t k;

	d_open(d, "routes.[].upstream.tls", false);
	d_bool(d, "routes.[].upstream.tls.enabled", t->enabled);
	if (!t->enabled) {
		for (k = 0; k < CG_ARRAY_LEN(off); k++)
			d_unused(d, off[k], "while enabled is false");
	} else {
		d_str(d, "routes.[].upstream.tls.ca", t->ca);
		d_bool(d, "routes.[].upstream.tls.verify", t->verify);
		d_str(d, "routes.[].upstream.tls.server_name", t->server_name);
		d_str(d, "routes.[].upstream.tls.cert", t->cert);
		d_str(d, "routes.[].upstream.tls.key", t->key);
		d_str(d, "routes.[].upstream.tls.min_version", t->min_version);
		d_str(d, "routes.[].upstream.tls.ciphers", t->ciphers);
		d_str(d, "routes.[].upstream.tls.ciphersuites", t->ciphersuites);
	}
	d_close(d, false);
}

static void
d_route(struct dump *d, const struct cg_route *rt)
{
	const struct inj_http_cfg *ic = &rt->inject;
	char listen[512];
	size_t k;

	d_str(d, "routes.[].name", rt->policy.name);
	if (rt->listen_host != NULL) {
		d_str(d, "routes.[].listen", listen_text(rt->listen_host, rt->listen_port,
		    listen, sizeof(listen)));
	} else
		d_unset(d, "routes.[].listen");
	d_str(d, "routes.[].protocol", rt->protocol);
	d_int(d, "routes.[].max_connections", rt->max_connections);
	d_int(d, "routes.[].keepalive_requests", rt->keepalive_requests);
	d_duration(d, "routes.[].keepalive_time", rt->keepalive_time_ms);
	d_tls_server(d, &rt->tls);
	d_open(d, "routes.[].upstream", false);
	d_str(d, "routes.[].upstream.host", rt->upstream_host);
	d_int(d, "routes.[].upstream.port", rt->upstream_port);
	d_int(d, "routes.[].upstream.keepalive", rt->upstream_keepalive);
	d_tls_client(d, &rt->upstream_tls);
	d_close(d, false);

	d_open(d, "routes.[].credential", false);
	d_str(d, "routes.[].credential.path", rt->secret_path);
	d_enum(d, "routes.[].credential.inject", (int)ic->kind);
	for (k = 0; k < CG_ARRAY_LEN(cred_use); k++) {
		const char *tp = cred_use[k].tpath, *v;

		if (!(cred_use[k].kinds & (1u << ic->kind))) {
			d_indent(d);
			fprintf(d->f, "# %s is not used by this inject kind\n", last_name(tp));
			continue;
		}
		switch (k) {
		case 0: v = ic->username_field; break;
		case 1: v = ic->password_field; break;
		case 2: v = ic->field; break;
		case 3: v = ic->header; break;
		case 4: v = ic->value_template; break;
		default: v = ic->query_param; break;
		}
		d_str(d, tp, v);
	}
	d_close(d, false);

	d_enum(d, "routes.[].mode", (int)rt->policy.mode);
	d_int(d, "routes.[].max_body", (int64_t)rt->max_body);
	d_enum(d, "routes.[].audit_failure", (int)rt->audit_failure);
	d_str(d, "routes.[].owner", rt->owner);
	d_str(d, "routes.[].purpose", rt->purpose);
	d_str(d, "routes.[].environment", rt->environment);
	d_str(d, "routes.[].expires", rt->expires_text);
	d_rules(d, "allow", rt->policy.allow, rt->policy.nallow);
	d_rules(d, "deny", rt->policy.deny, rt->policy.ndeny);
}

static void
d_issuer(struct dump *d, const struct policy_issuer *is, const struct cg_issuer_ext *ext)
{
	const struct cg_setting *ar = row("issuers.[].algorithms");
	char *names[8], buf[8][16];
	size_t n = 0;
	int i;

	d_str(d, "issuers.[].name", is->name);
	d_str(d, "issuers.[].issuer", is->iss);
	d_strings(d, "issuers.[].audiences", is->audiences, is->naudiences, true);
	for (i = 0; i < 8; i++) {
		choice_name(ar, i, buf[n], sizeof(buf[n]));
		if (buf[n][0] == '\0')
			break;
		if (is->algs & jwt_alg_parse(buf[n])) {
			names[n] = buf[n];
			n++;
		}
	}
	d_strings(d, "issuers.[].algorithms", names, n, true);
	d_str(d, "issuers.[].jwks_file", is->jwks_file);
	d_duration(d, "issuers.[].max_lifetime", is->max_lifetime_s * 1000);
	d_duration(d, "issuers.[].clock_skew", is->clock_skew_s * 1000);
	d_strings(d, "issuers.[].audit_claims", ext->audit_claims, ext->naudit_claims, true);
}

int
cg_config_dump(const struct cg_config *cfg, FILE *out)
{
	struct dump d = { .f = out };
	size_t i;

	d_open(&d, "credgate", false);
	d_enum(&d, "credgate.log_level", cfg->log_level);
	d_str(&d, "credgate.log_file", cfg->log_file);
	d_int(&d, "credgate.workers", cfg->workers_conf);
	d_str(&d, "credgate.user", cfg->user);
	d_str(&d, "credgate.group", cfg->group);
	d_int(&d, "credgate.max_connections", cfg->max_connections);
	d_int(&d, "credgate.max_pending_per_client", cfg->max_pending_per_client);
	d_duration(&d, "credgate.shutdown_timeout", cfg->shutdown_timeout_ms);
	d_enum(&d, "credgate.secure_memory", (int)cfg->secure_memory);
	d_int(&d, "credgate.secure_memory_size", (int64_t)cfg->secure_memory_size);
	d_open(&d, "credgate.token_cache", false);
	d_int(&d, "credgate.token_cache.size", cfg->token_cache_size);
	d_close(&d, false);
	d_open(&d, "credgate.admin", false);
	if (cfg->admin_listen_host != NULL) {
		char buf[512];

		d_str(&d, "credgate.admin.listen", listen_text(cfg->admin_listen_host,
		    cfg->admin_listen_port, buf, sizeof(buf)));
	} else
		d_unset(&d, "credgate.admin.listen");
	d_close(&d, false);
	d_open(&d, "credgate.audit", false);
	d_str(&d, "credgate.audit.file", cfg->audit_file);
	d_bool(&d, "credgate.audit.stdout", cfg->audit_stdout);
	d_close(&d, false);
	d_open(&d, "credgate.limits", false);
	d_int(&d, "credgate.limits.request_line", cfg->max_request_line);
	d_int(&d, "credgate.limits.header_bytes", cfg->max_header_bytes);
	d_int(&d, "credgate.limits.header_count", cfg->max_header_count);
	d_int(&d, "credgate.limits.token_bytes", cfg->max_token_bytes);
	d_close(&d, false);
	d_open(&d, "credgate.timeouts", false);
	d_duration(&d, "credgate.timeouts.client_header", cfg->client_header_timeout_ms);
	d_duration(&d, "credgate.timeouts.client_idle", cfg->client_idle_timeout_ms);
	d_duration(&d, "credgate.timeouts.upstream_connect", cfg->upstream_connect_timeout_ms);
	d_duration(&d, "credgate.timeouts.upstream_response", cfg->upstream_response_timeout_ms);
	d_close(&d, false);
	d_close(&d, false);

	if (cfg->nissuers == 0)
		d_empty_list(&d, "issuers");
	else {
		d_open(&d, "issuers", true);
		for (i = 0; i < cfg->nissuers; i++) {
			d_elem(&d, i);
			d_issuer(&d, cfg->issuers[i], &cfg->issuer_ext[i]);
		}
		d_elems_end(&d, cfg->nissuers);
		d_close(&d, true);
	}

	d_open(&d, "secrets", false);
	d_str(&d, "secrets.backend", cfg->secrets_backend);
	d_str(&d, "secrets.file", cfg->secrets_file);
	d_duration(&d, "secrets.cache_ttl", cfg->secret_cache_ttl_ms);
	d_close(&d, false);

	if (cfg->nroutes == 0)
		d_empty_list(&d, "routes");
	else {
		d_open(&d, "routes", true);
		for (i = 0; i < cfg->nroutes; i++) {
			d_elem(&d, i);
			d_route(&d, &cfg->routes[i]);
		}
		d_elems_end(&d, cfg->nroutes);
		d_close(&d, true);
	}

	if (fflush(out) != 0 || ferror(out))
		return CG_ERR_IO;
	return 0;
}
