/*
 * conf.c: credgate.conf from libconfig text to one struct cg_config, and
 * back to text for `credgate -T`.
 *
 * Loading runs in two passes over the parsed libconfig tree, after a scan
 * of the text for what libconfig loses (\x00 escapes in strings, the name
 * of a duplicate setting).  The first is driven by the settings rows alone
 * (conf_table.c and each route's protocol's): unknown settings, types,
 * bounds, enum choices, empty values and missing required settings.  The
 * second fills the structs from the rows, each bound to its field (values
 * or the rows' defaults), builds the lists, and does what a row cannot:
 * names and listen syntax, uniqueness, cross references, the protocols'
 * checks, TLS settings that go together, JWKS, trust bundle, secrets and
 * certificate files and their owners, the run-as user and group, and the warnings; for
 * `credgate -t` also each route's secret and fields, and the audit file.
 * Every problem is collected; the load fails when any of them is not a
 * warning.  The dump, the freeing and the reload comparison walk the same
 * rows.
 *
 * This file owns struct cg_config and everything hanging from it; it does
 * not touch sockets, the secret cache or running connections, and knows
 * no protocol: each one's settings are its rows.
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

#include "policy/keyfetch.h"
#include "policy/spiffe.h"
#include "policy/svid.h"
#include "proxy/conf.h"
#include "proxy/conf_int.h"
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
	struct cg_config *cfg;	/* being built */
	/* The protocol of the route being checked or built, whose rows count
	 * besides the table's (NULL elsewhere). */
	const struct inj_proto *proto;
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
static void warn_unused(struct load *ld, const struct cg_setting *rows, size_t n,
    const char *prefix, const config_setting_t *e, const char *etpath, const char *dpath,
    void *const *bases);
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

/*
 * Row i of the rows in force for proto: the table's, then the protocol's
 * (none for NULL); NULL past the last.
 */
static const struct cg_setting *
rows_at(const struct inj_proto *proto, size_t i)
{
	if (i < cg_nsettings)
		return &cg_settings[i];
	i -= cg_nsettings;
	return proto != NULL && i < proto->nsettings ? &proto->settings[i] : NULL;
}

#define FOR_ROWS(proto, i, r) \
	for ((i) = 0; ((r) = rows_at((proto), (i))) != NULL; (i)++)

static const struct cg_setting *
find_row(const struct inj_proto *proto, const char *tpath)
{
	const struct cg_setting *r;
	size_t i;

	FOR_ROWS(proto, i, r)
		if (strcmp(r->path, tpath) == 0)
			return r;
	return NULL;
}

/* A row of the table itself, which this file names for its checks. */
static const struct cg_setting *
row(const char *tpath)
{
	const struct cg_setting *r = find_row(NULL, tpath);

	if (r == NULL)
		abort();	/* conf.c names a path the table lacks */
	return r;
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

/* p below parent ("" the root), and not in a list below it: its path
 * relative to parent, else NULL. */
static const char *
below(const char *p, const char *parent)
{
	size_t n = strlen(parent);

	if (n == 0)
		return strstr(p, "[]") == NULL ? p : NULL;
	if (strncmp(p, parent, n) != 0 || p[n] != '.' || strstr(p + n + 1, "[]") != NULL)
		return NULL;
	return p + n + 1;
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

	if (*v == '\0' && !(r->empty_ok && r->type == CG_SET_STRING))
		ld_err(ld, s, dpath, "must not be empty");
	else if (r->choices != NULL && choice_index(r, v) < 0)
		ld_err(ld, s, dpath, "%s is not one of %s", QUOTE(q, v),
		    choices_text(r, ch, sizeof(ch)));
	else if (r->ops != NULL && r->ops->check != NULL)
		r->ops->check(ld, r, s, dpath);
}

static config_setting_t *member(const config_setting_t *g, const char *tpath, int type);

/*
 * The protocol named name (NULL: the default).  A name credgate has no
 * protocol of is reported (protocol_check()); the rest of the route is
 * then read as of the default protocol, so that its other mistakes are
 * reported too.
 */
static const struct inj_proto *
proto_named(const char *name)
{
	const struct inj_proto *p = name != NULL ? inj_proto_find(name) : NULL;
	char buf[64];

	if (p == NULL)
		p = inj_proto_find(def_unquoted(row("routes.[].protocol"), buf, sizeof(buf)));
	if (p == NULL)
		abort();	/* the table's default names no protocol */
	return p;
}

/* The protocol route element e names (see proto_named()). */
static const struct inj_proto *
route_proto(const config_setting_t *e)
{
	const config_setting_t *m = member(e, "routes.[].protocol", CONFIG_TYPE_STRING);

	return proto_named(m != NULL ? config_setting_get_string(m) : NULL);
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
			if (config_setting_type(e) != CONFIG_TYPE_GROUP) {
				ld_err(ld, e, dsub, "expected a group { ... }, not %s",
				    type_name(config_setting_type(e)));
				continue;
			}
			/* a route: its protocol's rows count too, also after
			 * the lists inside it (its rules) */
			if (r->ops == &conf_ops_routes)
				ld->proto = route_proto(e);
			check_group(ld, e, sub, dsub);
			if (r->ops == &conf_ops_routes)
				ld->proto = NULL;
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

static void
check_group(struct load *ld, const config_setting_t *g, const char *tpath, const char *dpath)
{
	char tsub[CFG_PATH_MAX], dsub[CFG_PATH_MAX];
	const struct cg_setting *r;
	int i, n = config_setting_length(g);
	size_t k;

	for (i = 0; i < n; i++) {
		const config_setting_t *m = config_setting_get_elem(g, (unsigned)i);
		const char *name = config_setting_name(m);

		path_join(tsub, sizeof(tsub), tpath, name);
		path_join(dsub, sizeof(dsub), dpath, name);
		if ((r = find_row(ld->proto, tsub)) == NULL) {
			ld_err(ld, m, dsub, "unknown setting");
			continue;
		}
		check_value(ld, r, m, tsub, dsub);
	}
	FOR_ROWS(ld->proto, k, r) {
		if (!r->required || !is_child(r->path, tpath))
			continue;
		if (config_setting_get_member(g, last_name(r->path)) != NULL)
			continue;
		path_join(dsub, sizeof(dsub), dpath, last_name(r->path));
		ld_err(ld, g, dsub, "required setting missing");
	}
}

/* ------------------------------------------------------------------ */
/* Pass 2: reading values (already checked) with the rows' defaults    */
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

/*
 * The setting at rel (a dotted path below element e) if written, else the
 * nearest enclosing one that is; e itself when none is.  For messages.
 */
static const config_setting_t *
nearest(const config_setting_t *e, const char *rel)
{
	const config_setting_t *at = e, *m;
	char name[CFG_PATH_MAX];
	const char *p = rel, *dot;

	while (at != NULL && *p != '\0') {
		dot = strchr(p, '.');
		snprintf(name, sizeof(name), "%.*s", (int)(dot != NULL ? (size_t)(dot - p) :
		    strlen(p)), p);
		if (!config_setting_is_group(at) ||
		    (m = config_setting_get_member(at, name)) == NULL)
			break;
		at = m;
		p = dot != NULL ? dot + 1 : "";
	}
	return at;
}

/* The setting at rel below element e when written, else NULL. */
static const config_setting_t *
lookup_rel(const config_setting_t *e, const char *rel)
{
	const config_setting_t *m = nearest(e, rel);
	const char *name = last_name(rel);

	if (m == NULL || m == e || config_setting_name(m) == NULL ||
	    strcmp(config_setting_name(m), name) != 0)
		return NULL;
	return m;
}

/* m is a string: a copy; else the row's default (NULL when none). */
static char *
get_string(struct load *ld, const struct cg_setting *r, const config_setting_t *m)
{
	char buf[256];

	if (m != NULL && config_setting_type(m) == CONFIG_TYPE_STRING)
		return ld_strdup(ld, config_setting_get_string(m));
	return ld_strdup(ld, def_unquoted(r, buf, sizeof(buf)));
}

static int64_t
get_int(struct load *ld, const struct cg_setting *r, const config_setting_t *m)
{
	int64_t v;

	if (m != NULL && (config_setting_type(m) == CONFIG_TYPE_INT ||
	    config_setting_type(m) == CONFIG_TYPE_INT64) && int_value(ld, m, &v) &&
	    v >= r->min && v <= r->max)
		return v;
	return r->def != NULL ? strtoll(r->def, NULL, 10) : 0;
}

static int64_t
get_duration(struct load *ld, const struct cg_setting *r, const config_setting_t *m)
{
	char buf[64];
	int64_t v;

	if (m != NULL && duration_value(ld, m, r->path, false, &v) == 0 &&
	    v >= r->min && v <= r->max)
		return v;
	if (r->def == NULL ||
	    cg_duration_parse(def_unquoted(r, buf, sizeof(buf)), &v) != 0)
		return r->min;
	return v;
}

static bool
get_bool(const struct cg_setting *r, const config_setting_t *m)
{
	if (m != NULL && config_setting_type(m) == CONFIG_TYPE_BOOL)
		return config_setting_get_bool(m) != 0;
	return r->def != NULL && strcmp(r->def, "true") == 0;
}

/* Index of the value among the row's choices (the default's when unset). */
static int
get_enum(const struct cg_setting *r, const config_setting_t *m)
{
	char buf[64];
	int i;

	if (m != NULL && config_setting_type(m) == CONFIG_TYPE_STRING &&
	    (i = choice_index(r, config_setting_get_string(m))) >= 0)
		return i;
	if (r->def == NULL || (i = choice_index(r, def_unquoted(r, buf, sizeof(buf)))) < 0)
		return 0;
	return i;
}

/* A string or array of strings, copied; *n = 0 and NULL when unset. */
static char **
get_strings(struct load *ld, const config_setting_t *m, size_t *n)
{
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

/* A list row's value, or its default (libconfig syntax) when unset. */
static char **
get_strings_or_default(struct load *ld, const struct cg_setting *r, const config_setting_t *m,
    size_t *n)
{
	char text[1024];
	config_t lc;
	char **v;

	if (m != NULL || r->def == NULL)
		return get_strings(ld, m, n);
	snprintf(text, sizeof(text), "x = %s;", r->def);
	config_init(&lc);
	if (config_read_string(&lc, text) != CONFIG_TRUE)
		abort();	/* the table's own default: tests parse each */
	v = get_strings(ld, config_lookup(&lc, "x"), n);
	config_destroy(&lc);
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
/* Fields, as the rows bind them                                       */
/* ------------------------------------------------------------------ */

/* r's field; its scope's struct must be at hand. */
static void *
field(const struct cg_setting *r, void *const *bases)
{
	if (bases[r->scope] == NULL)
		abort();	/* a row used outside its scope */
	return (char *)bases[r->scope] + r->off;
}

static const void *
cfield(const struct cg_setting *r, const void *const *bases)
{
	if (bases[r->scope] == NULL)
		abort();
	return (const char *)bases[r->scope] + r->off;
}

/* INT and ENUM fields are 4 or 8 bytes (the table test checks). */
static void
store_int(const struct cg_setting *r, void *f, int64_t v)
{
	int32_t v32 = (int32_t)v;

	if (r->size == sizeof(int64_t))
		memcpy(f, &v, sizeof(v));
	else if (r->size == sizeof(int32_t))
		memcpy(f, &v32, sizeof(v32));
	else
		abort();	/* a row bound to a field of another size */
}

static int64_t
load_int(const struct cg_setting *r, const void *f)
{
	int64_t v;
	int32_t v32;

	if (r->size == sizeof(int64_t)) {
		memcpy(&v, f, sizeof(v));
		return v;
	}
	if (r->size != sizeof(int32_t))
		abort();
	memcpy(&v32, f, sizeof(v32));
	return v32;
}

/* A STRING_LIST row's count in base, a struct of its scope. */
static size_t *
list_n(const struct cg_setting *r, void *base)
{
	return (size_t *)(void *)((char *)base + r->off_n);
}

/* Fills r's field from m (NULL: unset) or the row's default. */
static void
fill_value(struct load *ld, const struct cg_setting *r, const config_setting_t *m,
    const char *dpath, void *const *bases)
{
	void *f;

	if (r->ops != NULL && r->ops->parse != NULL) {
		r->ops->parse(ld, r, m, dpath, bases);
		return;
	}
	if (r->scope == CG_SCOPE_NONE || bases[r->scope] == NULL)
		return;
	f = field(r, bases);
	switch (r->type) {
	case CG_SET_BOOL:
		*(bool *)f = get_bool(r, m);
		break;
	case CG_SET_INT:
		store_int(r, f, get_int(ld, r, m));
		break;
	case CG_SET_ENUM:
		store_int(r, f, get_enum(r, m));
		break;
	case CG_SET_DURATION:
		*(int64_t *)f = get_duration(ld, r, m);
		break;
	case CG_SET_STRING:
		*(char **)f = get_string(ld, r, m);
		break;
	case CG_SET_STRING_LIST:
		*(char ***)f = get_strings_or_default(ld, r, m, list_n(r, bases[r->scope]));
		break;
	case CG_SET_GROUP:
	case CG_SET_LIST:
		break;
	}
}

/*
 * Fills every field below table path tpath from group g (NULL: nothing
 * written, defaults only), in the rows' order: groups within, and the
 * lists whose rows build their elements (a rule's claims); other lists are
 * built by their owners.  dpath is g's path for messages.
 */
static void
fill_group(struct load *ld, const config_setting_t *g, const char *tpath, const char *dpath,
    void *const *bases)
{
	const struct cg_setting *r;
	char dsub[CFG_PATH_MAX];
	size_t i;

	FOR_ROWS(ld->proto, i, r) {
		const config_setting_t *m;

		if (!is_child(r->path, tpath))
			continue;
		m = g != NULL ? config_setting_get_member(g, last_name(r->path)) : NULL;
		path_join(dsub, sizeof(dsub), dpath, last_name(r->path));
		switch (r->type) {
		case CG_SET_GROUP:
			fill_group(ld, m != NULL && config_setting_type(m) == CONFIG_TYPE_GROUP ?
			    m : NULL, r->path, dsub, bases);
			break;
		case CG_SET_LIST:
			if (r->ops != NULL && r->ops->parse != NULL)
				r->ops->parse(ld, r, m, dsub, bases);
			break;
		default:
			fill_value(ld, r, m, dsub, bases);
		}
	}
}

/* Frees what the fields below tpath hold (not in lists) and zeroes them. */
static void
clear_group(const char *tpath, const struct inj_proto *proto, void *const *bases)
{
	const struct cg_setting *r;
	size_t i, *n;
	void *f;

	FOR_ROWS(proto, i, r) {
		if (below(r->path, tpath) == NULL || r->type == CG_SET_GROUP ||
		    r->type == CG_SET_LIST)
			continue;
		if (r->ops != NULL) {
			/* its hooks own its fields; none to free without clear */
			if (r->ops->clear != NULL)
				r->ops->clear(r, bases);
			continue;
		}
		if (r->scope == CG_SCOPE_NONE || bases[r->scope] == NULL)
			continue;
		f = field(r, bases);
		if (r->type == CG_SET_STRING) {
			free(*(char **)f);
			*(char **)f = NULL;
		} else if (r->type == CG_SET_STRING_LIST) {
			n = list_n(r, bases[r->scope]);
			free_strings(*(char ***)f, *n);
			*(char ***)f = NULL;
			*n = 0;
		}
	}
}

static void d_quoted(FILE *f, const char *s);
static const char *duration_text(int64_t ms, char *out, size_t size);

/* "[ "a", "b" ]" */
static void
print_strings(FILE *f, char *const *v, size_t n)
{
	size_t i;

	fputs("[", f);
	for (i = 0; i < n; i++) {
		fputs(i > 0 ? ", " : " ", f);
		d_quoted(f, v[i]);
	}
	fputs(" ]", f);
}

/*
 * r's value as libconfig text (what follows "name = "); false when the
 * setting is not set.  Sensitive values too: the caller redacts.
 */
static bool
print_value(const struct cg_setting *r, const void *const *bases, FILE *out)
{
	const void *f;
	char buf[64];
	int64_t v;
	size_t n;

	if (r->ops != NULL && r->ops->print != NULL)
		return r->ops->print(r, bases, out);
	if (r->scope == CG_SCOPE_NONE || bases[r->scope] == NULL)
		return false;
	f = cfield(r, bases);
	switch (r->type) {
	case CG_SET_BOOL:
		fputs(*(const bool *)f ? "true" : "false", out);
		return true;
	case CG_SET_INT:
		v = load_int(r, f);
		/* libconfig needs the L suffix beyond 32 bits */
		fprintf(out, "%" PRId64 "%s", v, v > INT32_MAX || v < INT32_MIN ? "L" : "");
		return true;
	case CG_SET_ENUM:
		d_quoted(out, choice_name(r, (int)load_int(r, f), buf, sizeof(buf)));
		return true;
	case CG_SET_DURATION:
		d_quoted(out, duration_text(*(const int64_t *)f, buf, sizeof(buf)));
		return true;
	case CG_SET_STRING:
		if (*(char *const *)f == NULL)
			return false;
		d_quoted(out, *(char *const *)f);
		return true;
	case CG_SET_STRING_LIST:
		memcpy(&n, (const char *)bases[r->scope] + r->off_n, sizeof(n));
		print_strings(out, *(char **const *)f, n);
		return true;
	case CG_SET_GROUP:
	case CG_SET_LIST:
		break;
	}
	return false;
}

/* Sets r's field in dst to its value in src (structs of r's scope). */
static bool
copy_value(const struct cg_setting *r, void *dst, const void *src)
{
	const void *sf = (const char *)src + r->off;
	void *df = (char *)dst + r->off;

	if (r->ops != NULL) {
		if (r->ops->copy == NULL)
			abort();	/* a row that needs a restart, but cannot be kept */
		return r->ops->copy(r, dst, src);
	}
	switch (r->type) {
	case CG_SET_BOOL:
	case CG_SET_INT:
	case CG_SET_ENUM:
	case CG_SET_DURATION:
		memcpy(df, sf, r->size);
		return true;
	case CG_SET_STRING: {
		const char *s = *(char *const *)sf;
		char **d = df;

		free(*d);
		*d = NULL;
		return s == NULL || (*d = strdup(s)) != NULL;
	}
	case CG_SET_STRING_LIST: {
		char *const *s = *(char **const *)sf;
		size_t n, i, *dn = list_n(r, dst);
		char **d;

		memcpy(&n, (const char *)src + r->off_n, sizeof(n));
		free_strings(*(char ***)df, *dn);
		*(char ***)df = NULL;
		*dn = 0;
		if (s == NULL)
			return true;
		if ((d = calloc(n + 1, sizeof(*d))) == NULL)
			return false;
		for (i = 0; i < n; i++)
			if ((d[i] = strdup(s[i])) == NULL) {
				free_strings(d, i);
				return false;
			}
		*(char ***)df = d;
		*dn = n;
		return true;
	}
	case CG_SET_GROUP:
	case CG_SET_LIST:
		break;
	}
	return true;
}

/* ------------------------------------------------------------------ */
/* Rows the loader handles itself (conf_int.h)                         */
/* ------------------------------------------------------------------ */

static int parse_listen(const char *s, char **host, int *port);
static const char *listen_text(const char *host, int port, char *out, size_t size);

/* What credgate.workers = 0 stands for: the online cores, 1 to 256. */
static uint32_t
online_cores(const struct cg_setting *r)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	if (n < 1)
		return 1;
	return n > r->max ? (uint32_t)r->max : (uint32_t)n;
}

/* credgate.workers: workers_conf as written, workers resolved. */
static void
workers_parse(struct load *ld, const struct cg_setting *r, const config_setting_t *m,
    const char *dpath, void *const *bases)
{
	struct cg_config *cfg = bases[CG_SCOPE_PROCESS];

	cfg->workers_conf = (uint32_t)get_int(ld, r, m);
	cfg->workers = cfg->workers_conf != 0 ? cfg->workers_conf : online_cores(r);
}

static bool
workers_print(const struct cg_setting *r, const void *const *bases, FILE *f)
{
	const struct cg_config *cfg = bases[CG_SCOPE_PROCESS];

	fprintf(f, "%" PRIu32, cfg->workers_conf);
	return true;
}

static bool
workers_copy(const struct cg_setting *r, void *dst, const void *src)
{
	struct cg_config *d = dst;
	const struct cg_config *s = src;

	d->workers_conf = s->workers_conf;
	d->workers = s->workers;
	return true;
}

const struct cg_setting_ops conf_ops_workers = {
	.parse = workers_parse, .print = workers_print, .copy = workers_copy,
};

/*
 * credgate.admin.listen: "host:port", "[v6]:port", or only a port ("9180"
 * or ":9180"), which means 127.0.0.1.
 */
static void
admin_listen_parse(struct load *ld, const struct cg_setting *r, const config_setting_t *m,
    const char *dpath, void *const *bases)
{
	struct cg_config *cfg = bases[CG_SCOPE_PROCESS];
	char q[CFG_QUOTE_MAX + 16], *text = NULL;
	const char *v, *p;
	int rc;

	if (m == NULL || config_setting_type(m) != CONFIG_TYPE_STRING ||
	    *(v = config_setting_get_string(m)) == '\0')
		return;		/* none, or reported */
	p = v[0] == ':' ? v + 1 : v;
	while (isdigit((unsigned char)*p))
		p++;
	if (*p == '\0' && p != v + (v[0] == ':')) {
		if (asprintf(&text, "127.0.0.1:%s", v[0] == ':' ? v + 1 : v) < 0) {
			ld->nomem = true;
			return;
		}
		rc = parse_listen(text, &cfg->admin_listen_host, &cfg->admin_listen_port);
		free(text);
	} else
		rc = parse_listen(v, &cfg->admin_listen_host, &cfg->admin_listen_port);
	if (rc == CG_ERR_NOMEM)
		ld->nomem = true;
	else if (rc == 2)
		ld_err(ld, m, dpath, "%s: port not in 1..65535", QUOTE(q, v));
	else if (rc != 0)
		ld_err(ld, m, dpath, "%s is not host:port, [v6]:port or a port", QUOTE(q, v));
}

static bool
admin_listen_print(const struct cg_setting *r, const void *const *bases, FILE *f)
{
	const struct cg_config *cfg = bases[CG_SCOPE_PROCESS];
	char buf[512];

	if (cfg->admin_listen_host == NULL)
		return false;
	d_quoted(f, listen_text(cfg->admin_listen_host, cfg->admin_listen_port, buf,
	    sizeof(buf)));
	return true;
}

static void
admin_listen_clear(const struct cg_setting *r, void *const *bases)
{
	struct cg_config *cfg = bases[CG_SCOPE_PROCESS];

	free(cfg->admin_listen_host);
	cfg->admin_listen_host = NULL;
	cfg->admin_listen_port = 0;
}

static bool
admin_listen_copy(const struct cg_setting *r, void *dst, const void *src)
{
	struct cg_config *d = dst;
	const struct cg_config *s = src;

	free(d->admin_listen_host);
	d->admin_listen_host = NULL;
	d->admin_listen_port = s->admin_listen_port;
	return s->admin_listen_host == NULL ||
	    (d->admin_listen_host = strdup(s->admin_listen_host)) != NULL;
}

const struct cg_setting_ops conf_ops_admin_listen = {
	.parse = admin_listen_parse, .print = admin_listen_print,
	.clear = admin_listen_clear, .copy = admin_listen_copy,
};

/* The longest unix socket path (struct sockaddr_un's, with its NUL). */
#define UNIX_PATH_MAX	108

/*
 * A route's listen address: parse_listen()'s, or "unix:" and an absolute
 * path (a unix socket; *host gets the path, *port 0).  Returns as
 * parse_listen() does, and 3 for a path that is not absolute, has a NUL
 * or is too long.
 */
static int
parse_route_listen(const char *s, char **host, int *port)
{
	const char *path;

	if (strncmp(s, "unix:", 5) != 0)
		return parse_listen(s, host, port);
	*host = NULL;
	*port = 0;
	path = s + 5;
	if (path[0] != '/' || strlen(path) >= UNIX_PATH_MAX || strstr(path, "/../") != NULL ||
	    path[strlen(path) - 1] == '/')
		return 3;
	if ((*host = strdup(path)) == NULL)
		return CG_ERR_NOMEM;
	return 0;
}

/*
 * routes.[].listen: "host:port", "[v6]:port" or "unix:/path".  What
 * cannot be parsed stays unset; build_route() says why, in its order of
 * messages.
 */
static void
listen_parse(struct load *ld, const struct cg_setting *r, const config_setting_t *m,
    const char *dpath, void *const *bases)
{
	struct cg_route *rt = bases[CG_SCOPE_ROUTE];

	if (m == NULL || config_setting_type(m) != CONFIG_TYPE_STRING)
		return;
	if (parse_route_listen(config_setting_get_string(m), &rt->listen_host,
	    &rt->listen_port) == CG_ERR_NOMEM)
		ld->nomem = true;
}

static bool
listen_print(const struct cg_setting *r, const void *const *bases, FILE *f)
{
	const struct cg_route *rt = bases[CG_SCOPE_ROUTE];
	char buf[512];

	if (rt->listen_host == NULL)
		return false;
	d_quoted(f, listen_text(rt->listen_host, rt->listen_port, buf, sizeof(buf)));
	return true;
}

static void
listen_clear(const struct cg_setting *r, void *const *bases)
{
	struct cg_route *rt = bases[CG_SCOPE_ROUTE];

	free(rt->listen_host);
	rt->listen_host = NULL;
	rt->listen_port = 0;
}

const struct cg_setting_ops conf_ops_listen = {
	.parse = listen_parse, .print = listen_print, .clear = listen_clear,
};

/* routes.[].protocol: one of the protocols credgate has. */
static void
protocol_check(struct load *ld, const struct cg_setting *r, const config_setting_t *m,
    const char *dpath)
{
	char q[CFG_QUOTE_MAX + 16], names[256];
	const char *v = config_setting_get_string(m);
	size_t i, o = 0;
	int n;

	if (inj_proto_find(v) != NULL)
		return;
	names[0] = '\0';
	for (i = 0; inj_protos[i] != NULL && o < sizeof(names); i++) {
		n = snprintf(names + o, sizeof(names) - o, "%s%s", i > 0 ? ", " : "",
		    inj_protos[i]->name);
		if (n < 0)
			break;
		o += (size_t)n;
	}
	ld_err(ld, m, dpath, "%s is not one of %s", QUOTE(q, v), names);
}

/* The name as written, and the protocol, whose rows then count too. */
static void
protocol_parse(struct load *ld, const struct cg_setting *r, const config_setting_t *m,
    const char *dpath, void *const *bases)
{
	struct cg_route *rt = bases[CG_SCOPE_ROUTE];

	rt->protocol = get_string(ld, r, m);
	rt->proto = proto_named(rt->protocol);
	if (rt->proto->cfg_size > sizeof(rt->proto_cfg))
		abort();	/* CG_PROTO_CFG_MAX is too small for it */
	ld->proto = rt->proto;
}

static bool
protocol_print(const struct cg_setting *r, const void *const *bases, FILE *f)
{
	const struct cg_route *rt = bases[CG_SCOPE_ROUTE];

	if (rt->protocol == NULL)
		return false;
	d_quoted(f, rt->protocol);
	return true;
}

static void
protocol_clear(const struct cg_setting *r, void *const *bases)
{
	struct cg_route *rt = bases[CG_SCOPE_ROUTE];

	free(rt->protocol);
	rt->protocol = NULL;
	rt->proto = NULL;
}

const struct cg_setting_ops conf_ops_protocol = {
	.check = protocol_check, .parse = protocol_parse, .print = protocol_print,
	.clear = protocol_clear,
};

/* An ENUM kept as its choice's text (char *), for what reads it as text. */
static void
choice_text_parse(struct load *ld, const struct cg_setting *r, const config_setting_t *m,
    const char *dpath, void *const *bases)
{
	*(char **)field(r, bases) = get_string(ld, r, m);
}

static bool
choice_text_print(const struct cg_setting *r, const void *const *bases, FILE *f)
{
	const char *v = *(char *const *)cfield(r, bases);

	if (v == NULL)
		return false;
	d_quoted(f, v);
	return true;
}

static void
choice_text_clear(const struct cg_setting *r, void *const *bases)
{
	char **f = field(r, bases);

	free(*f);
	*f = NULL;
}

static bool
choice_text_copy(const struct cg_setting *r, void *dst, const void *src)
{
	const char *s = *(char *const *)(const void *)((const char *)src + r->off);
	char **d = (char **)(void *)((char *)dst + r->off);

	free(*d);
	*d = NULL;
	return s == NULL || (*d = strdup(s)) != NULL;
}

const struct cg_setting_ops conf_ops_choice_text = {
	.parse = choice_text_parse, .print = choice_text_print,
	.clear = choice_text_clear, .copy = choice_text_copy,
};

/* issuers.[].algorithms: names kept as JWT_* bits; unset: every choice. */
static void
algorithms_parse(struct load *ld, const struct cg_setting *r, const config_setting_t *m,
    const char *dpath, void *const *bases)
{
	unsigned *algs = field(r, bases);
	char name[32], **v;
	size_t k, n;
	int i;

	*algs = 0;
	if (m == NULL) {
		for (i = 0; *choice_name(r, i, name, sizeof(name)) != '\0'; i++)
			*algs |= jwt_alg_parse(name);
		return;
	}
	v = get_strings(ld, m, &n);
	for (k = 0; k < n; k++)
		*algs |= jwt_alg_parse(v[k]);
	free_strings(v, n);
}

static bool
algorithms_print(const struct cg_setting *r, const void *const *bases, FILE *f)
{
	const unsigned *algs = cfield(r, bases);
	char *names[8], buf[8][16];
	size_t n = 0;
	int i;

	for (i = 0; i < 8; i++) {
		choice_name(r, i, buf[n], sizeof(buf[n]));
		if (buf[n][0] == '\0')
			break;
		if (*algs & jwt_alg_parse(buf[n])) {
			names[n] = buf[n];
			n++;
		}
	}
	print_strings(f, names, n);
	return true;
}

const struct cg_setting_ops conf_ops_algorithms = {
	.parse = algorithms_parse, .print = algorithms_print,
};

/* A duration kept in whole seconds (int64_t). */
static void
seconds_parse(struct load *ld, const struct cg_setting *r, const config_setting_t *m,
    const char *dpath, void *const *bases)
{
	int64_t ms = get_duration(ld, r, m);
	char q[CFG_QUOTE_MAX + 16];

	if (ms % 1000 != 0 && m != NULL && config_setting_type(m) == CONFIG_TYPE_STRING)
		ld_err(ld, m, dpath, "%s is not a whole number of seconds",
		    QUOTE(q, config_setting_get_string(m)));
	*(int64_t *)field(r, bases) = ms / 1000;
}

static bool
seconds_print(const struct cg_setting *r, const void *const *bases, FILE *f)
{
	char buf[64];

	d_quoted(f, duration_text(*(const int64_t *)cfield(r, bases) * 1000, buf, sizeof(buf)));
	return true;
}

const struct cg_setting_ops conf_ops_seconds = {
	.parse = seconds_parse, .print = seconds_print,
};

/* A new zeroed condition at the end of rule's; NULL when out of memory. */
static struct policy_cond *
append_cond(struct load *ld, struct policy_rule *rule)
{
	struct policy_cond *c;

	if ((c = realloc(rule->conds, (rule->nconds + 1) * sizeof(*c))) == NULL) {
		ld->nomem = true;
		return NULL;
	}
	rule->conds = c;
	c += rule->nconds++;
	memset(c, 0, sizeof(*c));
	return c;
}

/*
 * A rule's condition of the row's kind (conf_cond_spec), when set; the
 * condition remembers its row (origin) for the dump and for messages.
 */
static void
cond_parse(struct load *ld, const struct cg_setting *r, const config_setting_t *m,
    const char *dpath, void *const *bases)
{
	const struct conf_cond_spec *spec = r->arg;
	struct policy_cond *c;
	size_t n;
	char **v;

	if ((v = get_strings(ld, m, &n)) == NULL)
		return;
	if ((c = append_cond(ld, bases[CG_SCOPE_RULE])) == NULL) {
		free_strings(v, n);
		return;
	}
	c->kind = spec->kind;
	c->origin = r;
	c->values = v;
	c->nvalues = n;
	if (spec->attr != NULL)
		c->attr = ld_strdup(ld, spec->attr);
}

/* The condition of rule that row r made; NULL if none. */
static const struct policy_cond *
cond_of(const struct policy_rule *rule, const struct cg_setting *r, size_t i)
{
	size_t k;

	for (k = 0; k < rule->nconds; k++)
		if (rule->conds[k].origin == r && i-- == 0)
			return &rule->conds[k];
	return NULL;
}

static bool
cond_print(const struct cg_setting *r, const void *const *bases, FILE *f)
{
	const struct policy_cond *c = cond_of(bases[CG_SCOPE_RULE], r, 0);

	if (c == NULL)
		return false;
	print_strings(f, c->values, c->nvalues);
	return true;
}

/*
 * Pass 1: a value that can never hold as written.  A spiffe_id pattern
 * must be able to match a SPIFFE ID, a trust_domain value must be a trust
 * domain; the other kinds are globs, which match what they match.
 */
static void
cond_check(struct load *ld, const struct cg_setting *r, const config_setting_t *m,
    const char *dpath)
{
	const struct conf_cond_spec *spec = r->arg;
	const char *v = config_setting_get_string(m);
	char q[CFG_QUOTE_MAX + 16], why[256];

	switch (spec->kind) {
	case POLICY_COND_SPIFFE_ID:
		if (spiffe_pattern_check(v, why, sizeof(why)) != 0)
			ld_err(ld, m, dpath, "%s: %s", QUOTE(q, v), why);
		break;
	case POLICY_COND_TRUST_DOMAIN:
		if (spiffe_trust_domain_check(v, strlen(v), why, sizeof(why)) != 0)
			ld_err(ld, m, dpath, "%s is not a trust domain as SPIFFE IDs carry it: %s",
			    QUOTE(q, v), why);
		break;
	default:
		break;
	}
}

const struct cg_setting_ops conf_ops_cond = {
	.check = cond_check,
	.parse = cond_parse, .print = cond_print,	/* policy_rule_clear() frees */
};

/*
 * claims, attributes: one condition per element, filled from the element's
 * rows (CG_SCOPE_COND).  Every element makes one, a wrong one too (which
 * pass 1 reported), so that element i is the i-th condition of the row.
 */
static void
cond_list_parse(struct load *ld, const struct cg_setting *r, const config_setting_t *m,
    const char *dpath, void *const *bases)
{
	const struct conf_cond_spec *spec = r->arg;
	void *sub[CG_SCOPE_COUNT];
	char tpath[CFG_PATH_MAX], dsub[CFG_PATH_MAX];
	struct policy_cond *c;
	int i, n;

	if (m == NULL || config_setting_type(m) != CONFIG_TYPE_LIST)
		return;
	path_join(tpath, sizeof(tpath), r->path, "[]");
	n = config_setting_length(m);
	for (i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(m, (unsigned)i);

		if ((c = append_cond(ld, bases[CG_SCOPE_RULE])) == NULL)
			return;
		c->kind = spec->kind;
		c->origin = r;
		if (config_setting_type(e) != CONFIG_TYPE_GROUP)
			continue;
		memcpy(sub, bases, sizeof(sub));
		sub[CG_SCOPE_COND] = c;
		path_index(dsub, sizeof(dsub), dpath, (size_t)i);
		fill_group(ld, e, tpath, dsub, sub);
	}
}

static size_t
cond_list_count(const struct cg_setting *r, const void *const *bases)
{
	const struct policy_rule *rule = bases[CG_SCOPE_RULE];
	size_t k, n = 0;

	for (k = 0; k < rule->nconds; k++)
		n += rule->conds[k].origin == r;
	return n;
}

static void
cond_list_elem(const struct cg_setting *r, const void *const *bases, size_t i,
    const void **sub, const struct inj_proto **proto)
{
	sub[CG_SCOPE_COND] = cond_of(bases[CG_SCOPE_RULE], r, i);
}

const struct cg_setting_ops conf_ops_cond_list = {
	.parse = cond_list_parse, .count = cond_list_count, .elem = cond_list_elem,
};

/* The lists build_issuers(), build_trust_domains(), build_routes() and
 * build_rules() fill. */
static size_t
issuers_count(const struct cg_setting *r, const void *const *bases)
{
	return ((const struct cg_config *)bases[CG_SCOPE_PROCESS])->nissuers;
}

static void
issuers_elem(const struct cg_setting *r, const void *const *bases, size_t i,
    const void **sub, const struct inj_proto **proto)
{
	const struct cg_config *cfg = bases[CG_SCOPE_PROCESS];

	sub[CG_SCOPE_ISSUER] = cfg->issuers[i];
	sub[CG_SCOPE_ISSUER_EXT] = &cfg->issuer_ext[i];
}

const struct cg_setting_ops conf_ops_issuers = {
	.count = issuers_count, .elem = issuers_elem,
};

static size_t
trust_domains_count(const struct cg_setting *r, const void *const *bases)
{
	return ((const struct cg_config *)bases[CG_SCOPE_PROCESS])->ntrust_domains;
}

static void
trust_domains_elem(const struct cg_setting *r, const void *const *bases, size_t i,
    const void **sub, const struct inj_proto **proto)
{
	sub[CG_SCOPE_TRUST_DOMAIN] =
	    &((const struct cg_config *)bases[CG_SCOPE_PROCESS])->trust_domains[i];
}

const struct cg_setting_ops conf_ops_trust_domains = {
	.count = trust_domains_count, .elem = trust_domains_elem,
};

static size_t
routes_count(const struct cg_setting *r, const void *const *bases)
{
	return ((const struct cg_config *)bases[CG_SCOPE_PROCESS])->nroutes;
}

static void
routes_elem(const struct cg_setting *r, const void *const *bases, size_t i,
    const void **sub, const struct inj_proto **proto)
{
	const struct cg_route *rt = &((const struct cg_config *)bases[CG_SCOPE_PROCESS])->routes[i];

	sub[CG_SCOPE_ROUTE] = rt;
	sub[CG_SCOPE_PROTO] = rt->proto_cfg;
	*proto = rt->proto;
}

const struct cg_setting_ops conf_ops_routes = {
	.count = routes_count, .elem = routes_elem,
};

/* allow, deny: bound to the route's array of rules and its count. */
static size_t
rules_count(const struct cg_setting *r, const void *const *bases)
{
	size_t n;

	memcpy(&n, (const char *)bases[r->scope] + r->off_n, sizeof(n));
	return n;
}

static void
rules_elem(const struct cg_setting *r, const void *const *bases, size_t i,
    const void **sub, const struct inj_proto **proto)
{
	const struct policy_rule *rules = *(struct policy_rule *const *)cfield(r, bases);

	sub[CG_SCOPE_RULE] = &rules[i];
}

const struct cg_setting_ops conf_ops_rules = {
	.count = rules_count, .elem = rules_elem,
};

/* ------------------------------------------------------------------ */
/* Pass 2: building                                                    */
/* ------------------------------------------------------------------ */

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
	const config_setting_t *au = member(cg, "credgate.audit", CONFIG_TYPE_GROUP);
	void *bases[CG_SCOPE_COUNT] = { [CG_SCOPE_PROCESS] = cfg };

	_Static_assert(CG_LOG_ERROR == 0 && CG_LOG_WARN == 1 && CG_LOG_INFO == 2 &&
	    CG_LOG_DEBUG == 3, "credgate.log_level choices follow enum cg_log_level");
	_Static_assert(CG_SECMEM_REQUIRED == 0 && CG_SECMEM_BEST_EFFORT == 1,
	    "credgate.secure_memory choices follow enum cg_secure_memory");

	fill_group(ld, cg, "credgate", "credgate", bases);

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

/* An https URL as far as a configuration can tell: the scheme, a host
 * without credentials (they would reach logs with the URL), no white space. */
static bool
https_url(const char *s)
{
	size_t auth;

	if (s == NULL || strncasecmp(s, "https://", 8) != 0 || s[8] == '\0' ||
	    strpbrk(s, " \t\r\n") != NULL)
		return false;
	auth = strcspn(s + 8, "/?#");
	return memchr(s + 8, '@', auth) == NULL;
}

/*
 * Where an issuer's keys come from: a file, a jwks_uri, or OIDC discovery
 * under its issuer, and the settings of a fetch.  With files, what the
 * fetches read (CA bundle, bearer token) must be there.
 */
static void
issuer_keys_check(struct load *ld, const config_setting_t *g, const char *dpath,
    const struct policy_issuer *is)
{
	bool file = !keyfetch_fetched(is);
	bool uri = is->jwks_uri != NULL && is->jwks_uri[0] != '\0';
	char sub[CFG_PATH_MAX], q[160], err[256];
	struct cg_file f;
	char *tok = NULL;

	if ((is->iss == NULL || is->iss[0] == '\0') &&
	    (is->trust_domain == NULL || is->trust_domain[0] == '\0')) {
		ld_err(ld, g, dpath, "needs issuer (the iss of its tokens) or trust_domain "
		    "(a SPIFFE trust domain whose JWT-SVIDs it verifies)");
		return;
	}
	if (is->trust_domain != NULL && is->trust_domain[0] != '\0') {
		char id[SPIFFE_TD_MAX + SPIFFE_SCHEME_LEN + 2];
		struct spiffe_id parsed;

		snprintf(id, sizeof(id), "%s%s", SPIFFE_SCHEME, is->trust_domain);
		if (strlen(is->trust_domain) > SPIFFE_TD_MAX || strchr(is->trust_domain, '/') ||
		    spiffe_id_parse(id, strlen(id), &parsed, err, sizeof(err)) != 0) {
			path_join(sub, sizeof(sub), dpath, "trust_domain");
			ld_err(ld, member(g, "issuers.[].trust_domain", -1), sub,
			    "%s: not a SPIFFE trust domain (lower-case letters, digits, "
			    "'.', '-' and '_')", QUOTE(q, is->trust_domain));
		}
		if (!file && !uri && (is->iss == NULL || is->iss[0] == '\0')) {
			path_join(sub, sizeof(sub), dpath, "trust_domain");
			ld_err(ld, member(g, "issuers.[].trust_domain", -1), sub,
			    "needs jwks_file or jwks_uri (the trust domain's JWT bundle), or an "
			    "https issuer to discover it under");
			return;
		}
	}
	if (file && uri) {
		path_join(sub, sizeof(sub), dpath, "jwks_uri");
		ld_err(ld, member(g, "issuers.[].jwks_uri", -1), sub,
		    "give jwks_file or jwks_uri, not both");
		return;
	}
	if (file)
		return;
	if (uri && !https_url(is->jwks_uri)) {
		path_join(sub, sizeof(sub), dpath, "jwks_uri");
		ld_err(ld, member(g, "issuers.[].jwks_uri", -1), sub,
		    "not an https URL without credentials (a bearer token goes in "
		    "bearer_token_file)");
	}
	if (!uri && is->iss != NULL && is->iss[0] != '\0' && !https_url(is->iss)) {
		path_join(sub, sizeof(sub), dpath, "issuer");
		ld_err(ld, member(g, "issuers.[].issuer", -1), sub,
		    "%s: without jwks_file or jwks_uri the keys are found by OIDC "
		    "discovery, which needs an https issuer", QUOTE(q, is->iss));
	}
	if (is->refresh_min_ms > is->refresh_max_ms) {
		path_join(sub, sizeof(sub), dpath, "refresh_min");
		ld_err(ld, member(g, "issuers.[].refresh_min", -1), sub,
		    "longer than refresh_max");
	}
	if (is->max_key_age_ms < 2 * is->refresh_min_ms) {
		path_join(sub, sizeof(sub), dpath, "max_key_age");
		ld_err(ld, member(g, "issuers.[].max_key_age", -1), sub,
		    "shorter than twice refresh_min: the keys would expire between two "
		    "fetches");
	}
	if (!(ld->flags & CG_CONFIG_LOAD_FILES))
		return;
	if (is->ca_file != NULL && is->ca_file[0] != '\0') {
		if (cg_file_read(is->ca_file, CG_FILE_FOLLOW, 16 * 1024 * 1024, 0, &f, err,
		    sizeof(err)) != 0) {
			path_join(sub, sizeof(sub), dpath, "ca_file");
			ld_err(ld, member(g, "issuers.[].ca_file", -1), sub, "%s", err);
		}
		cg_file_free(&f);
	}
	if (is->bearer_token_file != NULL && is->bearer_token_file[0] != '\0') {
		if (cg_file_read_token(is->bearer_token_file, CG_FILE_FOLLOW |
		    CG_FILE_NO_OTHERS_WRITE, 64 * 1024, &tok, NULL, err, sizeof(err)) != 0) {
			path_join(sub, sizeof(sub), dpath, "bearer_token_file");
			ld_err(ld, member(g, "issuers.[].bearer_token_file", -1), sub, "%s",
			    err);
		}
		secmem_free(tok);
	}
}

static void
build_issuers(struct load *ld, const config_setting_t *root, struct cg_config *cfg)
{
	const config_setting_t *list = member(root, "issuers", CONFIG_TYPE_LIST);
	int i, n = list != NULL ? config_setting_length(list) : 0;
	char dpath[CFG_PATH_MAX], sub[CFG_PATH_MAX], q[CFG_QUOTE_MAX + 16];

	if (n == 0) {
		const config_setting_t *tds = member(root, "trust_domains", CONFIG_TYPE_LIST);

		/* A caller may still prove itself with an X.509-SVID. */
		if (list != NULL && (tds == NULL || config_setting_length(tds) == 0))
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
		size_t k;

		if (config_setting_type(g) != CONFIG_TYPE_GROUP)
			continue;
		if ((is = calloc(1, sizeof(*is))) == NULL) {
			ld->nomem = true;
			return;
		}
		cfg->issuers[cfg->nissuers++] = is;
		path_index(dpath, sizeof(dpath), "issuers", (size_t)i);
		ext->line = line_of(g);
		fill_group(ld, g, "issuers.[]", dpath,
		    (void *[CG_SCOPE_COUNT]){ [CG_SCOPE_ISSUER] = is, [CG_SCOPE_ISSUER_EXT] = ext });
		warn_unused(ld, cg_settings, cg_nsettings, "issuers.[]", g, "issuers.[]", dpath,
		    (void *[CG_SCOPE_COUNT]){ [CG_SCOPE_ISSUER] = is, [CG_SCOPE_ISSUER_EXT] = ext });

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
			if (is->trust_domain != NULL && o->trust_domain != NULL &&
			    is->trust_domain[0] != '\0' &&
			    strcmp(is->trust_domain, o->trust_domain) == 0) {
				path_join(sub, sizeof(sub), dpath, "trust_domain");
				ld_err(ld, member(g, "issuers.[].trust_domain", -1), sub,
				    "trust domain %s already configured at line %d",
				    QUOTE(q, is->trust_domain), cfg->issuer_ext[k].line);
			}
			if (is->iss != NULL && o->iss != NULL && is->iss[0] != '\0' &&
			    strcmp(is->iss, o->iss) == 0) {
				path_join(sub, sizeof(sub), dpath, "issuer");
				ld_err(ld, member(g, "issuers.[].issuer", -1), sub,
				    "issuer %s already configured at line %d", QUOTE(q, is->iss),
				    cfg->issuer_ext[k].line);
			}
		}
		issuer_keys_check(ld, g, dpath, is);
		if ((ld->flags & CG_CONFIG_LOAD_FILES) && !keyfetch_fetched(is)) {
			struct jwks *ks = NULL;
			char err[256] = "";
			int r;

			if ((r = jwks_load_file(is->jwks_file, &ks, err, sizeof(err))) != 0) {
				path_join(sub, sizeof(sub), dpath, "jwks_file");
				ld_err(ld, member(g, "issuers.[].jwks_file", -1), sub, "%s",
				    err[0] != '\0' ? err : cg_strerror(r));
			} else {
				if (jwks_skipped_symmetric(ks) > 0) {
					path_join(sub, sizeof(sub), dpath, "jwks_file");
					ld_warn(ld, member(g, "issuers.[].jwks_file", -1), sub,
					    "%zu symmetric (oct) key(s) ignored: a shared "
					    "secret proves nothing about who signed",
					    jwks_skipped_symmetric(ks));
				}
				if ((is->ring = policy_keyring_new(ks)) == NULL) {
					path_join(sub, sizeof(sub), dpath, "jwks_file");
					ld_err(ld, member(g, "issuers.[].jwks_file", -1), sub,
					    "out of memory");
				}
			}
		}
	}
}

#define K8S_TOKEN_FILE	"/var/run/secrets/kubernetes.io/serviceaccount/token"

void
cg_vault_opts(const struct cg_config *cfg, struct vault_opts *o)
{
	const struct cg_vault_conf *v = &cfg->vault;
	static const char *const methods[] = {
		[VAULT_AUTH_TOKEN] = "token", [VAULT_AUTH_APPROLE] = "approle",
		[VAULT_AUTH_KUBERNETES] = "kubernetes", [VAULT_AUTH_JWT] = "jwt",
		[VAULT_AUTH_CERT] = "cert",
	};
	size_t i;

	memset(o, 0, sizeof(*o));
	o->address = v->address;
	o->namespace_ = v->namespace_;
	o->ca_file = v->ca_file;
	o->ca_path = v->ca_path;
	o->server_name = v->server_name;
	o->cert = v->cert;
	o->key = v->key;
	o->connect_timeout_ms = v->connect_timeout_ms;
	o->timeout_ms = v->request_timeout_ms;
	o->retries = (int)v->retries;
	o->backoff_ms = v->backoff_ms;
	o->backoff_max_ms = v->backoff_max_ms;
	for (i = 0; i < CG_ARRAY_LEN(methods); i++)
		if (v->method != NULL && strcmp(v->method, methods[i]) == 0)
			o->method = (enum vault_auth_method)i;
	o->auth_mount = v->mount;
	o->role = v->role;
	o->token_file = v->token_file;
	o->role_id_file = v->role_id_file;
	o->secret_id_file = v->secret_id_file;
	o->jwt_file = v->jwt_file;
	if (o->method == VAULT_AUTH_KUBERNETES && o->jwt_file == NULL)
		o->jwt_file = K8S_TOKEN_FILE;
	o->kv1_mounts = (const char *const *)v->kv1_mounts;
	o->nkv1_mounts = v->nkv1_mounts;
	o->kv2_mounts = (const char *const *)v->kv2_mounts;
	o->nkv2_mounts = v->nkv2_mounts;
	o->database_mounts = (const char *const *)v->database_mounts;
	o->ndatabase_mounts = v->ndatabase_mounts;
}

/* What the auth method needs, and an address Vault can be reached at. */
static void
check_vault(struct load *ld, const config_setting_t *g, const struct cg_config *cfg)
{
	const struct cg_vault_conf *v = &cfg->vault;
	const config_setting_t *vg = member(g, "secrets.vault", CONFIG_TYPE_GROUP);
	const config_setting_t *at = vg != NULL ? vg : g;
	const char *m = v->method != NULL ? v->method : "token";
	struct vault_opts o;

	if (v->address == NULL) {
		ld_err(ld, at, "secrets.vault.address", "required when backend is \"vault\"");
		return;
	}
	if (strncmp(v->address, "https://", 8) != 0 && strncmp(v->address, "http://", 7) != 0)
		ld_err(ld, member(vg, "secrets.vault.address", -1), "secrets.vault.address",
		    "%s: not an http:// or https:// URL", v->address);
	else if (strncmp(v->address, "http://", 7) == 0 &&
	    strncmp(v->address + 7, "127.", 4) != 0 &&
	    strncmp(v->address + 7, "localhost", 9) != 0 &&
	    strncmp(v->address + 7, "[::1]", 5) != 0)
		ld_warn(ld, member(vg, "secrets.vault.address", -1), "secrets.vault.address",
		    "%s: plain HTTP to a host that is not this one: the token and every "
		    "secret cross the network in clear", v->address);
	cg_vault_opts(cfg, &o);
#define NEED(field, name, why) do { \
	if ((field) == NULL) \
		ld_err(ld, at, "secrets.vault.auth." name, "required with method %s%s", m, why); \
} while (0)
	switch (o.method) {
	case VAULT_AUTH_TOKEN:
		NEED(o.token_file, "token_file", "");
		break;
	case VAULT_AUTH_APPROLE:
		NEED(o.role_id_file, "role_id_file", "");
		break;
	case VAULT_AUTH_KUBERNETES:
		NEED(o.role, "role", "");
		break;
	case VAULT_AUTH_JWT:
		NEED(o.role, "role", "");
		NEED(o.jwt_file, "jwt_file", "");
		break;
	case VAULT_AUTH_CERT:
		NEED(o.cert, "tls.cert", " (secrets.vault.tls.cert)");
		NEED(o.key, "tls.key", " (secrets.vault.tls.key)");
		break;
	}
#undef NEED
}

/* With the vault backend: every route's credential.path is under a mount
 * of the kind its path names; per_session only there, on database creds. */
static void
check_vault_paths(struct load *ld, const config_setting_t *root, const struct cg_config *cfg)
{
	const config_setting_t *list = member(root, "routes", CONFIG_TYPE_LIST);
	int i, n = list != NULL ? config_setting_length(list) : 0, kind;
	char rpath[CFG_PATH_MAX], path[CFG_PATH_MAX], api[512], err[300];
	struct vault_opts o;
	size_t k = 0;
	bool vault = cfg->secrets_backend != NULL && strcmp(cfg->secrets_backend, "vault") == 0;

	if (vault)
		cg_vault_opts(cfg, &o);
	for (i = 0; i < n && k < cfg->nroutes; i++) {
		const config_setting_t *rg = config_setting_get_elem(list, (unsigned)i);
		const struct cg_route *rt;

		if (config_setting_type(rg) != CONFIG_TYPE_GROUP)
			continue;
		rt = &cfg->routes[k++];
		if (rt->secret_path == NULL)
			continue;	/* reported */
		path_index(rpath, sizeof(rpath), "routes", (size_t)i);
		if (!vault) {
			if (rt->per_session) {
				path_join(path, sizeof(path), rpath, "credential.per_session");
				ld_err(ld, nearest(rg, "credential.per_session"), path,
				    "needs secrets.backend = \"vault\" (a dynamic database credential "
				    "per session)");
			}
			continue;
		}
		if (vault_path_resolve(&o, rt->secret_path, &kind, api, sizeof(api), err,
		    sizeof(err)) != 0) {
			path_join(path, sizeof(path), rpath, "credential.path");
			ld_err(ld, nearest(rg, "credential.path"), path, "%s", err);
		} else if (rt->per_session && kind != VAULT_DB_CREDS) {
			path_join(path, sizeof(path), rpath, "credential.per_session");
			ld_err(ld, nearest(rg, "credential.per_session"), path,
			    "%s: a credential per session needs a database mount's creds/<role> path",
			    rt->secret_path);
		}
	}
}

static void
build_secrets(struct load *ld, const config_setting_t *root, struct cg_config *cfg)
{
	const config_setting_t *g = member(root, "secrets", CONFIG_TYPE_GROUP);

	fill_group(ld, g, "secrets", "secrets",
	    (void *[CG_SCOPE_COUNT]){ [CG_SCOPE_PROCESS] = cfg });
	if (g == NULL)
		return;		/* reported as missing */
	if (cfg->secrets_backend != NULL && strcmp(cfg->secrets_backend, "file") == 0 &&
	    cfg->secrets_file == NULL)
		ld_err(ld, g, "secrets.file", "required when backend is \"file\"");
	if (cfg->secrets_backend != NULL && strcmp(cfg->secrets_backend, "vault") == 0)
		check_vault(ld, g, cfg);
	if ((ld->flags & CG_CONFIG_LOAD_FILES) && cfg->secrets_file != NULL &&
	    cfg->secrets_file[0] != '\0' &&
	    (cfg->secrets_backend == NULL || strcmp(cfg->secrets_backend, "file") == 0)) {
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
 * Where condition c of a rule (element g at dpath) was written, for
 * messages: its setting, or for an element of a list (attributes) that
 * element's name setting; *path gets its path.
 */
static const config_setting_t *
cond_at(const struct policy_rule *rule, const struct policy_cond *c,
    const config_setting_t *g, const char *dpath, char *path, size_t size)
{
	const struct cg_setting *r = c->origin, *name;
	const config_setting_t *list, *e;
	char sub[CFG_PATH_MAX], t[CFG_PATH_MAX];
	size_t k, i = 0;

	path_join(path, size, dpath, last_name(r->path));
	if (r->type != CG_SET_LIST)
		return member(g, r->path, -1);
	for (k = 0; &rule->conds[k] != c; k++)
		i += rule->conds[k].origin == r;
	path_index(sub, sizeof(sub), path, i);
	/* the element's name row: its first child (attribute, claim) */
	path_join(t, sizeof(t), r->path, "[]");
	for (k = 0; (name = rows_at(NULL, k)) != NULL && !is_child(name->path, t); k++)
		;
	path_join(path, size, sub, name != NULL ? last_name(name->path) : "");
	if ((list = member(g, r->path, CONFIG_TYPE_LIST)) == NULL ||
	    (e = config_setting_get_elem(list, (unsigned)i)) == NULL || name == NULL)
		return NULL;
	return member(e, name->path, -1);
}

/*
 * Every attribute condition of rule names an attribute of the route's
 * protocol (when the protocol is unknown, that is reported instead).
 */
static void
resolve_attrs(struct load *ld, const struct cg_route *rt, struct policy_rule *rule,
    const config_setting_t *g, const char *dpath)
{
	char q[CFG_QUOTE_MAX + 16], qp[CFG_QUOTE_MAX + 16], names[256], path[CFG_PATH_MAX];
	const config_setting_t *at;
	size_t i;

	if (rt->proto == NULL || policy_rule_resolve_attrs(rule, rt->proto->attrs) == 0)
		return;
	quote_into(qp, sizeof(qp), rt->proto->name, CFG_QUOTE_MAX);
	attrs_text(rt->proto->attrs, names, sizeof(names));
	for (i = 0; i < rule->nconds; i++) {
		const struct policy_cond *c = &rule->conds[i];

		/* no name: a wrong element, reported in pass 1 */
		if (c->kind != POLICY_COND_ATTR || c->attr_ref != 0 || c->attr == NULL)
			continue;
		at = cond_at(rule, c, g, dpath, path, sizeof(path));
		ld_err(ld, at != NULL ? at : g, path, "protocol %s has no attribute %s (it has %s)",
		    qp, QUOTE(q, c->attr), names);
	}
}

/* Whether an issuer verifies JWT-SVIDs of trust domain td (NULL: any). */
static bool
issuer_of_domain(const struct cg_config *cfg, const char *td)
{
	size_t k;

	for (k = 0; k < cfg->nissuers; k++)
		if (cfg->issuers[k]->trust_domain != NULL &&
		    cfg->issuers[k]->trust_domain[0] != '\0' &&
		    (td == NULL || strcmp(cfg->issuers[k]->trust_domain, td) == 0))
			return true;
	return false;
}

/*
 * A spiffe_id or trust_domain condition that can hold for no SPIFFE ID the
 * route takes: the request's SPIFFE ID is that of an X.509-SVID of a trust
 * domain of routes.[].tls.trust_domains, or of a JWT-SVID of an issuer
 * with a trust_domain.
 */
static void
warn_svid_cond(struct load *ld, const struct cg_config *cfg, const struct cg_route *rt,
    const config_setting_t *at, const char *path, const struct policy_cond *c)
{
	char q[CFG_QUOTE_MAX + 16], qt[CFG_QUOTE_MAX + 16], td[SPIFFE_TD_MAX + 1];
	const struct cg_trust_domain *d;
	const char *v, *end;
	size_t i, j, len;
	bool found;

	if (rt->tls.ntrust_domains == 0 && !issuer_of_domain(cfg, NULL)) {
		ld_warn(ld, at, path, "holds only for a verified SPIFFE ID: the route's listener "
		    "accepts no X.509-SVID (tls.trust_domains) and no issuer has a trust_domain");
		return;
	}
	for (i = 0; i < c->nvalues; i++) {
		v = c->values[i];
		if (c->kind == POLICY_COND_SPIFFE_ID) {
			if (strncmp(v, SPIFFE_SCHEME, SPIFFE_SCHEME_LEN) != 0)
				continue;	/* an error already */
			v += SPIFFE_SCHEME_LEN;
		}
		end = strchr(v, '/');
		len = end != NULL ? (size_t)(end - v) : strlen(v);
		if (len == 0 || len > SPIFFE_TD_MAX)
			continue;
		memcpy(td, v, len);
		td[len] = '\0';
		found = issuer_of_domain(cfg, td);
		for (j = 0; j < rt->tls.ntrust_domains && !found; j++)
			found = (d = cg_config_trust_domain(cfg, rt->tls.trust_domains[j])) != NULL &&
			    d->trust_domain != NULL && strcmp(d->trust_domain, td) == 0;
		if (!found)
			ld_warn(ld, at, path, "%s: trust domain %s is neither one the route's "
			    "tls.trust_domains accept nor an issuer's trust_domain: it holds for "
			    "no SPIFFE ID", QUOTE(q, c->values[i]), QUOTE(qt, td));
	}
}

/* Builds routes.[ri].allow or .deny, the rows' list kind (rules). */
static void
build_rules(struct load *ld, const struct cg_config *cfg, struct cg_route *rt,
    const config_setting_t *rg, const struct cg_setting *kind, const char *rpath,
    struct seen_rule *seen, size_t *nseen)
{
	char tl[CFG_PATH_MAX], tp[CFG_PATH_MAX], dl[CFG_PATH_MAX], dpath[CFG_PATH_MAX];
	char sub[CFG_PATH_MAX], q[CFG_QUOTE_MAX + 16];
	const struct cg_setting *paths, *issuer;
	struct policy_rule **out = field(kind, (void *[CG_SCOPE_COUNT]){ [CG_SCOPE_ROUTE] = rt });
	size_t *nout = (size_t *)(void *)((char *)rt + kind->off_n);
	const config_setting_t *list;
	int i, n;

	path_join(dl, sizeof(dl), rpath, last_name(kind->path));
	path_join(tl, sizeof(tl), kind->path, "[]");
	if ((list = member(rg, kind->path, -1)) == NULL || !config_setting_is_aggregate(list) ||
	    (n = config_setting_length(list)) == 0)
		return;
	if ((*out = calloc((size_t)n, sizeof(**out))) == NULL) {
		ld->nomem = true;
		return;
	}
	path_join(tp, sizeof(tp), tl, "paths");
	paths = row(tp);
	path_join(tp, sizeof(tp), tl, "issuer");
	issuer = row(tp);
	for (i = 0; i < n; i++) {
		const config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
		const config_setting_t *m;
		struct policy_rule *rule;
		size_t k, v;

		if (config_setting_type(g) != CONFIG_TYPE_GROUP)
			continue;
		rule = &(*out)[(*nout)++];
		path_index(dpath, sizeof(dpath), dl, (size_t)i);
		fill_group(ld, g, tl, dpath, (void *[CG_SCOPE_COUNT]){ [CG_SCOPE_RULE] = rule });
		if (rule->name != NULL && rule->name[0] != '\0') {
			path_join(tp, sizeof(tp), tl, "name");
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
		for (k = 0; k < rule->nconds; k++) {
			const struct policy_cond *c = &rule->conds[k];

			if (c->origin == issuer) {
				path_join(sub, sizeof(sub), dpath, last_name(issuer->path));
				for (v = 0; v < c->nvalues; v++)
					check_issuer_ref(ld, cfg, member(g, issuer->path, -1), sub,
					    c->values[v]);
			} else if (c->kind == POLICY_COND_SPIFFE_ID ||
			    c->kind == POLICY_COND_TRUST_DOMAIN) {
				const struct cg_setting *o = c->origin;

				path_join(sub, sizeof(sub), dpath, last_name(o->path));
				warn_svid_cond(ld, cfg, rt, member(g, o->path, -1), sub, c);
			} else if (c->origin == paths) {
				path_join(sub, sizeof(sub), dpath, last_name(paths->path));
				for (v = 0; v < c->nvalues; v++)
					if (c->values[v][0] != '/' && c->values[v][0] != '*' &&
					    c->values[v][0] != '?')
						ld_warn(ld, member(g, paths->path, -1), sub,
						    "%s does not start with \"/\" and matches no "
						    "request path", QUOTE(q, c->values[v]));
			}
		}
		resolve_attrs(ld, rt, rule, g, dpath);
	}
}

/* Routes a row check's messages (cg_setting_report) to ld. */
struct row_report {
	struct load *ld;
	const config_setting_t *elem;	/* the route's group */
	const char *dpath;		/* its path: "routes.[3]" */
	size_t errors;
	bool quiet;			/* only count */
};

static void
row_report(void *arg, bool warning, const char *rel, const char *text)
{
	struct row_report *rr = arg;
	char path[CFG_PATH_MAX];

	if (!warning)
		rr->errors++;
	if (rr->quiet)
		return;
	if (rel[0] == '\0')
		snprintf(path, sizeof(path), "%s", rr->dpath);
	else
		path_join(path, sizeof(path), rr->dpath, rel);
	if (warning)
		ld_warn(rr->ld, nearest(rr->elem, rel), path, "%s", text);
	else
		ld_err(rr->ld, nearest(rr->elem, rel), path, "%s", text);
}

/*
 * Warns about each setting that rows[0..n) (those below prefix when not
 * NULL) have written in element e (table path etpath, path dpath) but
 * that has no effect given the others.
 */
static void
warn_unused(struct load *ld, const struct cg_setting *rows, size_t n, const char *prefix,
    const config_setting_t *e, const char *etpath, const char *dpath, void *const *bases)
{
	char warn[256], path[CFG_PATH_MAX];
	const config_setting_t *m;
	const char *rel;
	size_t i;

	for (i = 0; i < n; i++) {
		const struct cg_setting *r = &rows[i];

		if (r->unused == NULL || (prefix != NULL && below(r->path, prefix) == NULL) ||
		    (rel = below(r->path, etpath)) == NULL || (m = lookup_rel(e, rel)) == NULL ||
		    bases[r->scope] == NULL)
			continue;
		if (r->unused(bases[r->scope], warn, sizeof(warn)) == NULL)
			continue;
		path_join(path, sizeof(path), dpath, rel);
		ld_warn(ld, m, path, "%s", warn);
	}
}

/* The checks of the route's protocol's rows; the number of errors. */
static size_t
proto_checks(struct load *ld, const config_setting_t *rg, const char *rpath,
    const struct cg_route *rt, bool quiet)
{
	struct row_report rr = { .ld = ld, .elem = rg, .dpath = rpath, .quiet = quiet };
	struct cg_setting_report rep = { .report = row_report, .arg = &rr };
	size_t i;

	for (i = 0; rt->proto != NULL && i < rt->proto->nsettings; i++)
		if (rt->proto->settings[i].check != NULL)
			rt->proto->settings[i].check(rt->proto_cfg, &rep);
	return rr.errors;
}

/* What the route's protocol says of its own settings. */
static void
build_proto(struct load *ld, const config_setting_t *rg, const char *rpath, struct cg_route *rt)
{
	static const char *const http_only[] = {
		"routes.[].max_body", "routes.[].keepalive_requests", "routes.[].keepalive_time",
	};
	size_t i;

	if (rt->proto == NULL)
		return;
	warn_unused(ld, rt->proto->settings, rt->proto->nsettings, NULL, rg, "routes.[]", rpath,
	    (void *[CG_SCOPE_COUNT]){ [CG_SCOPE_ROUTE] = rt, [CG_SCOPE_PROTO] = rt->proto_cfg });
	for (i = 0; i < CG_ARRAY_LEN(http_only); i++)
		warn_unused(ld, cg_setting_find(http_only[i]), 1, NULL, rg, "routes.[]", rpath,
		    (void *[CG_SCOPE_COUNT]){ [CG_SCOPE_ROUTE] = rt });
	(void)proto_checks(ld, rg, rpath, rt, false);
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

/*
 * trust_domains: names and trust domains unique and well formed, and with
 * CG_CONFIG_LOAD_FILES each bundle file read (a file others may change is
 * refused, as a client_ca would be).
 */
static void
build_trust_domains(struct load *ld, const config_setting_t *root, struct cg_config *cfg)
{
	const config_setting_t *list = member(root, "trust_domains", CONFIG_TYPE_LIST);
	int i, n = list != NULL ? config_setting_length(list) : 0;
	char dpath[CFG_PATH_MAX], sub[CFG_PATH_MAX], q[CFG_QUOTE_MAX + 16], why[512];
	size_t k;

	if (n == 0)
		return;
	if ((cfg->trust_domains = calloc((size_t)n, sizeof(*cfg->trust_domains))) == NULL) {
		ld->nomem = true;
		return;
	}
	for (i = 0; i < n; i++) {
		const config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
		struct cg_trust_domain *td;
		const config_setting_t *m;
		size_t nerr = ld->nerr;

		if (config_setting_type(g) != CONFIG_TYPE_GROUP)
			continue;
		td = &cfg->trust_domains[cfg->ntrust_domains++];
		td->line = line_of(g);
		path_index(dpath, sizeof(dpath), "trust_domains", (size_t)i);
		fill_group(ld, g, "trust_domains.[]", dpath,
		    (void *[CG_SCOPE_COUNT]){ [CG_SCOPE_TRUST_DOMAIN] = td });

		if (td->name != NULL && td->name[0] != '\0') {
			m = member(g, "trust_domains.[].name", -1);
			path_join(sub, sizeof(sub), dpath, "name");
			if (!name_ok(td->name))
				ld_err(ld, m, sub, "%s: only letters, digits, '_', '.' and '-' "
				    "are allowed", QUOTE(q, td->name));
			for (k = 0; k + 1 < cfg->ntrust_domains; k++)
				if (cfg->trust_domains[k].name != NULL &&
				    strcmp(cfg->trust_domains[k].name, td->name) == 0) {
					ld_err(ld, m, sub, "trust domain name %s already used at "
					    "line %d", QUOTE(q, td->name),
					    cfg->trust_domains[k].line);
					break;
				}
		}
		if (td->trust_domain != NULL && td->trust_domain[0] != '\0') {
			m = member(g, "trust_domains.[].trust_domain", -1);
			path_join(sub, sizeof(sub), dpath, "trust_domain");
			if (spiffe_trust_domain_check(td->trust_domain, strlen(td->trust_domain),
			    why, sizeof(why)) != 0)
				ld_err(ld, m, sub, "%s is not a trust domain as SPIFFE IDs carry "
				    "it: %s", QUOTE(q, td->trust_domain), why);
			for (k = 0; k + 1 < cfg->ntrust_domains; k++)
				if (cfg->trust_domains[k].trust_domain != NULL &&
				    strcmp(cfg->trust_domains[k].trust_domain,
				    td->trust_domain) == 0) {
					ld_err(ld, m, sub, "trust domain %s already configured at "
					    "line %d", QUOTE(q, td->trust_domain),
					    cfg->trust_domains[k].line);
					break;
				}
		}
		if (!(ld->flags & CG_CONFIG_LOAD_FILES) || td->x509_bundle_file == NULL ||
		    td->x509_bundle_file[0] == '\0')
			continue;
		check_tls_file(ld, g, "trust_domains.[].x509_bundle_file", dpath, false);
		if (ld->nerr != nerr)
			continue;	/* reported: the file, or this element */
		path_join(sub, sizeof(sub), dpath, "x509_bundle_file");
		if (svid_bundle_load_file(td->x509_bundle_file, &td->bundle, &td->bundle_certs,
		    &td->bundle_st, why, sizeof(why)) != 0)
			ld_err(ld, member(g, "trust_domains.[].x509_bundle_file", -1), sub,
			    "%s", why);
	}
}

/* A trust domain that no listener accepts SVIDs of. */
static void
warn_unused_trust_domains(struct load *ld, const config_setting_t *root,
    const struct cg_config *cfg)
{
	const config_setting_t *list = member(root, "trust_domains", CONFIG_TYPE_LIST);
	char path[CFG_PATH_MAX], q[CFG_QUOTE_MAX + 16];
	int i, n = list != NULL ? config_setting_length(list) : 0;
	size_t k = 0, r, j;
	bool used;

	for (i = 0; i < n && k < cfg->ntrust_domains; i++) {
		const config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
		const struct cg_trust_domain *td;

		if (config_setting_type(g) != CONFIG_TYPE_GROUP)
			continue;
		td = &cfg->trust_domains[k++];
		used = false;
		for (r = 0; r < cfg->nroutes && !used; r++)
			for (j = 0; j < cfg->routes[r].tls.ntrust_domains && !used; j++)
				used = td->name != NULL &&
				    strcmp(cfg->routes[r].tls.trust_domains[j], td->name) == 0;
		if (used || td->name == NULL)
			continue;
		path_index(path, sizeof(path), "trust_domains", (size_t)i);
		ld_warn(ld, g, path, "no route accepts the X.509-SVIDs of trust domain %s "
		    "(routes.[].tls.trust_domains)", QUOTE(q, td->name));
	}
}

/*
 * routes.[].tls.trust_domains: names of configured trust domains, each
 * once; the listener then verifies client certificates as X.509-SVIDs of
 * those domains, which takes the place of client_ca and needs a client
 * certificate asked for.
 */
static void
check_tls_trust_domains(struct load *ld, const config_setting_t *g, const char *dpath,
    const struct cg_config *cfg, const struct cg_route *rt)
{
	const struct cg_tls_server *t = &rt->tls;
	const config_setting_t *m = member(g, "routes.[].tls.trust_domains", -1);
	char path[CFG_PATH_MAX], sub[CFG_PATH_MAX], q[CFG_QUOTE_MAX + 16];
	size_t i, k;

	if (t->ntrust_domains == 0)
		return;
	path_join(path, sizeof(path), dpath, "trust_domains");
	if (t->cert == NULL)
		ld_err(ld, m, path, "requires cert and key: the listener serves TLS only "
		    "with both");
	if (t->client_ca != NULL)
		ld_err(ld, m, path, "cannot go with client_ca: a client certificate is "
		    "verified against the one or the other");
	if (t->verify_client == CG_TLS_VERIFY_NONE)
		ld_err(ld, m, path, "requires verify_client \"optional\" or \"required\": "
		    "no client certificate is asked for");
	for (i = 0; i < t->ntrust_domains; i++) {
		const config_setting_t *e = m;

		if (m != NULL && config_setting_is_array(m)) {
			e = config_setting_get_elem(m, (unsigned)i);
			path_index(sub, sizeof(sub), path, i);
		} else
			snprintf(sub, sizeof(sub), "%s", path);
		if (cg_config_trust_domain(cfg, t->trust_domains[i]) == NULL) {
			ld_err(ld, e, sub, "unknown trust domain %s (trust_domains.[].name)",
			    QUOTE(q, t->trust_domains[i]));
			continue;
		}
		for (k = 0; k < i; k++)
			if (strcmp(t->trust_domains[k], t->trust_domains[i]) == 0) {
				ld_err(ld, e, sub, "trust domain %s named twice",
				    QUOTE(q, t->trust_domains[i]));
				break;
			}
	}
}

/* routes.[].tls: cert and key together turn TLS on for callers. */
static void
build_tls_server(struct load *ld, const config_setting_t *rg, const char *rpath,
    const struct cg_config *cfg, struct cg_route *rt)
{
	const config_setting_t *g = member(rg, "routes.[].tls", CONFIG_TYPE_GROUP);
	struct cg_tls_server *t = &rt->tls;
	char dpath[CFG_PATH_MAX], sub[CFG_PATH_MAX], vname[32];

	_Static_assert(CG_TLS_VERIFY_NONE == 0 && CG_TLS_VERIFY_OPTIONAL == 1 &&
	    CG_TLS_VERIFY_REQUIRED == 2, "tls.verify_client choices follow enum cg_tls_verify");

	path_join(dpath, sizeof(dpath), rpath, "tls");
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
	check_tls_trust_domains(ld, g, dpath, cfg, rt);
	if (t->verify_client != CG_TLS_VERIFY_NONE && t->client_ca == NULL &&
	    t->ntrust_domains == 0) {
		path_join(sub, sizeof(sub), dpath, "verify_client");
		ld_err(ld, member(g, "routes.[].tls.verify_client", -1), sub,
		    "\"%s\" requires client_ca", choice_name(row("routes.[].tls.verify_client"),
		    (int)t->verify_client, vname, sizeof(vname)));
	}
	if (!t->enabled) {
		warn_unused(ld, cg_settings, cg_nsettings, "routes.[].tls", rg, "routes.[]", rpath,
		    (void *[CG_SCOPE_COUNT]){ [CG_SCOPE_ROUTE] = rt });
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
build_tls_client(struct load *ld, const config_setting_t *rg, const char *rpath,
    struct cg_route *rt)
{
	const config_setting_t *up = member(rg, "routes.[].upstream", CONFIG_TYPE_GROUP);
	const config_setting_t *g = member(up, "routes.[].upstream.tls", CONFIG_TYPE_GROUP);
	struct cg_tls_client *t = &rt->upstream_tls;
	char dpath[CFG_PATH_MAX], sub[CFG_PATH_MAX], q[CFG_QUOTE_MAX + 16];

	path_join(dpath, sizeof(dpath), rpath, "upstream.tls");
	if (g == NULL)
		return;
	if (!t->enabled) {
		warn_unused(ld, cg_settings, cg_nsettings, "routes.[].upstream.tls", rg,
		    "routes.[]", rpath, (void *[CG_SCOPE_COUNT]){ [CG_SCOPE_ROUTE] = rt });
		return;
	}
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
	const config_setting_t *m;
	struct seen_rule *seen = NULL;
	size_t k, nseen = 0, nrules = 0;

	_Static_assert(POLICY_ENFORCE == 0 && POLICY_DRY_RUN == 1,
	    "routes.[].mode choices follow enum policy_mode");
	_Static_assert(CG_AUDIT_FAIL_DENY == 0 && CG_AUDIT_FAIL_ALLOW == 1,
	    "routes.[].audit_failure choices follow enum cg_audit_failure");

	path_index(rpath, sizeof(rpath), "routes", idx);
	rt->line = line_of(rg);
	/* the protocol's rows count from its row on (protocol_parse()) */
	fill_group(ld, rg, "routes.[]", rpath, (void *[CG_SCOPE_COUNT]){
	    [CG_SCOPE_ROUTE] = rt, [CG_SCOPE_PROTO] = rt->proto_cfg });
	build_proto(ld, rg, rpath, rt);

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

	if ((m = member(rg, "routes.[].listen", CONFIG_TYPE_STRING)) != NULL &&
	    config_setting_get_string(m)[0] != '\0') {
		const char *listen = config_setting_get_string(m);
		char *host = NULL;
		int port, r = 0;

		path_join(sub, sizeof(sub), rpath, "listen");
		/* listen_parse() filled what parses; say why the rest does not */
		if (rt->listen_host == NULL &&
		    (r = parse_route_listen(listen, &host, &port)) == 0)
			r = 1;
		free(host);
		if (r == CG_ERR_NOMEM)
			ld->nomem = true;
		else if (r == 2)
			ld_err(ld, m, sub, "%s: port not in 1..65535", QUOTE(q, listen));
		else if (r == 3)
			ld_err(ld, m, sub, "%s: a unix socket needs an absolute path of at most "
			    "%d bytes", QUOTE(q, listen), UNIX_PATH_MAX - 1);
		else if (r != 0)
			ld_err(ld, m, sub, "%s is not host:port, [v6]:port or unix:/path",
			    QUOTE(q, listen));
		for (k = 0; r == 0 && k + 1 < cfg->nroutes; k++) {
			const struct cg_route *o = &cfg->routes[k];

			if (o->listen_host != NULL && o->listen_port == rt->listen_port &&
			    strcmp(o->listen_host, rt->listen_host) == 0) {
				ld_err(ld, m, sub, "listen address %s already used at line %d",
				    QUOTE(q, listen), o->line);
				break;
			}
		}
	}
	build_tls_server(ld, rg, rpath, cfg, rt);
	build_tls_client(ld, rg, rpath, rt);

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
		ld->proto = NULL;
		return;
	}
	build_rules(ld, cfg, rt, rg, row("routes.[].allow"), rpath, seen, &nseen);
	build_rules(ld, cfg, rt, rg, row("routes.[].deny"), rpath, seen, &nseen);
	free(seen);
	ld->proto = NULL;
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
	if (host[0] == '/')
		snprintf(out, size, "unix:%s", host);
	else
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
 * lacks it.  r is the setting that names the field; ref is set for a
 * template reference.
 */
static void
check_field(struct load *ld, const config_setting_t *rg, const char *rpath,
    const struct cg_route *rt, const struct cg_setting *r, const char *field_name, bool ref)
{
	char path[CFG_PATH_MAX], qn[CFG_QUOTE_MAX + 16];
	char qp[CFG_QUOTE_MAX + 16], qf[CFG_QUOTE_MAX + 16];
	const char *rel = below(r->path, "routes.[]");

	if (file_backend_names_has(ld->secrets, rt->secret_path, field_name))
		return;
	path_join(path, sizeof(path), rpath, rel);
	ld_err(ld, nearest(rg, rel), path, "route %s: secret %s has no field %s%s%s%s",
	    QUOTE(qn, rt->policy.name), QUOTE(qp, rt->secret_path), QUOTE(qf, field_name),
	    ref ? " (the template's ${" : "", ref ? field_name : "", ref ? "})" : "");
}

/*
 * For `credgate -t` with the file backend: each route's secret is in the
 * secrets file, with every field its injection reads (the protocol's rows
 * that name fields, or templates of references, and that are in use).
 * Names only: no value is read into a message.
 */
static void
check_route_secrets(struct load *ld, const config_setting_t *root, const struct cg_config *cfg)
{
	const config_setting_t *list = member(root, "routes", CONFIG_TYPE_LIST);
	char rpath[CFG_PATH_MAX], path[CFG_PATH_MAX], qn[CFG_QUOTE_MAX + 16], warn[256];
	char qp[CFG_QUOTE_MAX + 16], qf[CFG_QUOTE_MAX + 16];
	int i, n = list != NULL ? config_setting_length(list) : 0;
	size_t k = 0, j;

	if (ld->secrets == NULL)
		return;		/* not asked for, or the file is reported */
	for (i = 0; i < n && k < cfg->nroutes; i++) {
		const config_setting_t *rg = config_setting_get_elem(list, (unsigned)i);
		const struct cg_route *rt;
		const char *t, *p, *end;
		bool checked = false;

		if (config_setting_type(rg) != CONFIG_TYPE_GROUP)
			continue;
		rt = &cfg->routes[k++];
		if (member(rg, "routes.[].credential", CONFIG_TYPE_GROUP) == NULL ||
		    rt->secret_path == NULL || rt->secret_path[0] == '\0' ||
		    rt->policy.name == NULL || rt->proto == NULL)
			continue;	/* reported */
		path_index(rpath, sizeof(rpath), "routes", (size_t)i);
		if (!file_backend_names_has(ld->secrets, rt->secret_path, NULL)) {
			path_join(path, sizeof(path), rpath, "credential.path");
			ld_err(ld, nearest(rg, "credential.path"), path,
			    "route %s: no secret %s in %s", QUOTE(qn, rt->policy.name),
			    QUOTE(qp, rt->secret_path), QUOTE(qf, cfg->secrets_file));
			continue;
		}
		for (j = 0; j < rt->proto->nsettings; j++) {
			const struct cg_setting *r = &rt->proto->settings[j];

			if (r->secret == CG_SECRET_NONE || r->type != CG_SET_STRING ||
			    (r->unused != NULL && r->unused(rt->proto_cfg, warn, sizeof(warn)) != NULL) ||
			    (t = *(char *const *)(const void *)(rt->proto_cfg + r->off)) == NULL)
				continue;
			if (r->secret == CG_SECRET_FIELD) {
				check_field(ld, rg, rpath, rt, r, t, false);
				continue;
			}
			/*
			 * A template: only one the protocol accepts, in which
			 * each "${" opens a reference that the next "}" closes.
			 * A name is reported once.
			 */
			if (!checked && proto_checks(ld, rg, rpath, rt, true) != 0)
				break;	/* reported */
			checked = true;
			for (p = t; (p = strstr(p, "${")) != NULL && (end = strchr(p, '}')) != NULL;
			    p = end + 1) {
				char *name = strndup(p + 2, (size_t)(end - p - 2)), *first = NULL;

				if (name == NULL || asprintf(&first, "${%s}", name) < 0) {
					free(name);
					ld->nomem = true;
					return;
				}
				if (strstr(t, first) == p)
					check_field(ld, rg, rpath, rt, r, name, true);
				free(first);
				free(name);
			}
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

/*
 * Rules that trust too much, reported before they reach production:
 *  - an allow rule that names nothing narrower than an issuer or an
 *    audience lets every caller with a valid token of that issuer in
 *    (for GitHub Actions: any workflow of any repository of any owner);
 *  - an allow rule on a CI issuer (GitHub Actions, GitLab CI: by the
 *    issuer or by the claims it names) that names the repository or
 *    project but no branch, environment or workflow lets any branch's job
 *    in, a pull request's included.
 * A claim condition narrows only when one of its values is more than "*".
 */
#define GITHUB_ISS	"https://token.actions.githubusercontent.com"

static bool
cond_narrows(const struct policy_cond *c)
{
	size_t v;

	for (v = 0; v < c->nvalues; v++)
		if (c->values[v] != NULL && strspn(c->values[v], "*") != strlen(c->values[v]))
			return true;
	return false;
}

/*
 * A spiffe_id condition narrows when one of its values names less than
 * every workload of its trust domain ("spiffe://td/" and only '*').  A
 * trust_domain condition, like an issuer, narrows nothing.
 */
static bool
spiffe_cond_narrows(const struct policy_cond *c)
{
	const char *path;
	size_t v;

	if (c->kind != POLICY_COND_SPIFFE_ID)
		return false;
	for (v = 0; v < c->nvalues; v++) {
		if (c->values[v] == NULL || strlen(c->values[v]) < SPIFFE_SCHEME_LEN)
			continue;
		if ((path = strchr(c->values[v] + SPIFFE_SCHEME_LEN, '/')) == NULL ||
		    strspn(path + 1, "*") != strlen(path + 1))
			return true;
	}
	return false;
}

static bool
claim_is(const struct policy_cond *c, const char *const *names)
{
	size_t i;

	if (c->kind != POLICY_COND_CLAIM || c->claim == NULL || !cond_narrows(c))
		return false;
	for (i = 0; names[i] != NULL; i++)
		if (strcmp(c->claim, names[i]) == 0)
			return true;
	return false;
}

/* GitHub's sub pins a branch, tag or environment when every value names
 * one ("repo:acme/app:ref:refs/heads/main", "...:environment:prod"). */
static bool
sub_pins(const struct policy_cond *c)
{
	size_t v;

	if (c->kind != POLICY_COND_CLAIM || c->claim == NULL || strcmp(c->claim, "sub") != 0 ||
	    c->nvalues == 0)
		return false;
	for (v = 0; v < c->nvalues; v++) {
		const char *at = strstr(c->values[v], ":ref:");
		size_t skip = sizeof(":ref:") - 1;

		if (at == NULL) {
			at = strstr(c->values[v], ":environment:");
			skip = sizeof(":environment:") - 1;
		}
		if (at == NULL || at[skip] == '\0' || at[skip] == '*')
			return false;
	}
	return true;
}

/* Whether the rule's issuer conditions name a CI issuer. */
static bool
rule_ci_issuer(const struct cg_config *cfg, const struct policy_rule *rule)
{
	size_t c, v, i;

	for (c = 0; c < rule->nconds; c++) {
		const struct policy_cond *pc = &rule->conds[c];

		if (pc->kind != POLICY_COND_ISSUER)
			continue;
		for (v = 0; v < pc->nvalues; v++)
			for (i = 0; i < cfg->nissuers; i++) {
				const struct policy_issuer *is = cfg->issuers[i];
				bool named = (is->name != NULL && cg_glob_match(pc->values[v],
				    is->name, strlen(is->name))) || (is->iss != NULL &&
				    cg_glob_match(pc->values[v], is->iss, strlen(is->iss)));

				if (named && is->iss != NULL &&
				    (strcmp(is->iss, GITHUB_ISS) == 0 ||
				    strncmp(is->iss, "https://gitlab.", 15) == 0 ||
				    strstr(is->iss, "/_services/token") != NULL))
					return true;
			}
	}
	return false;
}

static void
warn_broad_rule(struct load *ld, const struct cg_config *cfg, const struct policy_rule *rule,
    const config_setting_t *g, const char *path)
{
	static const char *const repo[] = { "repository", "repository_owner", "repository_id",
	    "repository_owner_id", "project_path", "project_id", "namespace_path",
	    "namespace_id", NULL };
	static const char *const pins[] = { "ref", "ref_path", "environment", "job_workflow_ref",
	    "workflow_ref", "job_workflow_sha", "workflow_sha", "ref_protected",
	    "environment_protected", NULL };
	bool narrow = false, ci = rule_ci_issuer(cfg, rule), repo_named = false, pinned = false;
	bool svid = false;
	char q[CFG_QUOTE_MAX + 16];
	size_t c;

	for (c = 0; c < rule->nconds; c++) {
		const struct policy_cond *pc = &rule->conds[c];

		if (pc->kind == POLICY_COND_CLAIM ? cond_narrows(pc) :
		    pc->kind == POLICY_COND_CLIENT_SUBJECT || pc->kind == POLICY_COND_CLIENT_SAN ||
		    spiffe_cond_narrows(pc))
			narrow = true;
		if (pc->kind == POLICY_COND_SPIFFE_ID || pc->kind == POLICY_COND_TRUST_DOMAIN)
			svid = true;
		if (claim_is(pc, repo))
			repo_named = true;
		if (claim_is(pc, pins) || sub_pins(pc))
			pinned = true;
	}
	if (!narrow && svid) {
		ld_warn(ld, g, path, "allow rule %s accepts every workload of the trust domains "
		    "it names: name the workloads with spiffe_id, such as "
		    "\"spiffe://<trust domain>/ns/<namespace>/*\"",
		    QUOTE(q, rule->name != NULL ? rule->name : "-"));
		return;
	}
	if (!narrow) {
		ld_warn(ld, g, path, "allow rule %s accepts every caller with a valid token of "
		    "the issuers it names (for GitHub Actions: any repository of any owner): "
		    "add a claim condition, such as repository_owner and repository, "
		    "project_path, or kubernetes.io.namespace",
		    QUOTE(q, rule->name != NULL ? rule->name : "-"));
		return;
	}
	if ((ci || repo_named) && repo_named && !pinned)
		ld_warn(ld, g, path, "allow rule %s trusts a CI job by its repository or owner alone: "
		    "any branch's job can pass, a pull request's included; pin ref, "
		    "environment or job_workflow_ref too",
		    QUOTE(q, rule->name != NULL ? rule->name : "-"));
	else if (ci && !pinned)
		ld_warn(ld, g, path, "allow rule %s on a CI issuer pins no branch, environment "
		    "or workflow: name ref, environment or job_workflow_ref",
		    QUOTE(q, rule->name != NULL ? rule->name : "-"));
}

static void
warn_broad_rules(struct load *ld, const config_setting_t *root, const struct cg_config *cfg)
{
	const config_setting_t *list = member(root, "routes", CONFIG_TYPE_LIST);
	char rpath[CFG_PATH_MAX], apath[CFG_PATH_MAX], path[CFG_PATH_MAX];
	size_t i, k = 0, a, j;
	int n = list != NULL ? config_setting_length(list) : 0;

	for (i = 0; i < (size_t)n && k < cfg->nroutes; i++) {
		const config_setting_t *rg = config_setting_get_elem(list, (unsigned)i);
		const config_setting_t *al;
		const struct policy_route *pr;

		if (config_setting_type(rg) != CONFIG_TYPE_GROUP)
			continue;
		pr = &cfg->routes[k++].policy;
		if ((al = member(rg, "routes.[].allow", -1)) == NULL ||
		    !config_setting_is_aggregate(al))
			continue;
		path_index(rpath, sizeof(rpath), "routes", i);
		path_join(apath, sizeof(apath), rpath, "allow");
		for (a = 0, j = 0; a < (size_t)config_setting_length(al) && j < pr->nallow; a++) {
			const config_setting_t *g = config_setting_get_elem(al, (unsigned)a);

			if (config_setting_type(g) != CONFIG_TYPE_GROUP)
				continue;
			path_index(path, sizeof(path), apath, a);
			warn_broad_rule(ld, cfg, &pr->allow[j++], g, path);
		}
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
	build_trust_domains(&ld, root, cfg);
	build_routes(&ld, root, cfg);
	check_admin_listen(&ld, root, cfg);
	check_route_secrets(&ld, root, cfg);
	check_vault_paths(&ld, root, cfg);
	if (ld.nerr == 0) {
		size_t i;

		warn_unused_issuers(&ld, root, cfg);
		warn_broad_rules(&ld, root, cfg);
		warn_unused_trust_domains(&ld, root, cfg);
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
	clear_group("", NULL, (void *[CG_SCOPE_COUNT]){ [CG_SCOPE_PROCESS] = cfg });
	for (i = 0; i < cfg->nissuers; i++) {
		clear_group("issuers.[]", NULL, (void *[CG_SCOPE_COUNT]){
		    [CG_SCOPE_ISSUER] = cfg->issuers[i], [CG_SCOPE_ISSUER_EXT] = &cfg->issuer_ext[i] });
		policy_issuer_free(cfg->issuers[i]);
	}
	free(cfg->issuers);
	free(cfg->issuer_ext);
	for (i = 0; i < cfg->ntrust_domains; i++) {
		struct cg_trust_domain *td = &cfg->trust_domains[i];

		clear_group("trust_domains.[]", NULL,
		    (void *[CG_SCOPE_COUNT]){ [CG_SCOPE_TRUST_DOMAIN] = td });
		X509_STORE_free(td->bundle);
	}
	free(cfg->trust_domains);
	for (i = 0; i < cfg->nroutes; i++) {
		struct cg_route *rt = &cfg->routes[i];

		clear_group("routes.[]", rt->proto, (void *[CG_SCOPE_COUNT]){
		    [CG_SCOPE_ROUTE] = rt, [CG_SCOPE_PROTO] = rt->proto_cfg });
		policy_route_clear(&rt->policy);
	}
	free(cfg->routes);
	free(cfg);
}

const struct cg_trust_domain *
cg_config_trust_domain(const struct cg_config *cfg, const char *name)
{
	size_t i;

	for (i = 0; cfg != NULL && name != NULL && i < cfg->ntrust_domains; i++)
		if (cfg->trust_domains[i].name != NULL &&
		    strcmp(cfg->trust_domains[i].name, name) == 0)
			return &cfg->trust_domains[i];
	return NULL;
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

/*
 * One setting: "name = value;", or for a value that may hold a credential
 * "<redacted>", or a comment when it is not set or has no effect.
 */
static void
d_value(struct dump *d, const struct cg_setting *r, const void *const *bases)
{
	const char *name = last_name(r->path), *why;
	char warn[256], *text = NULL;
	size_t len = 0;
	FILE *f;
	bool set;

	if (r->unused != NULL && bases[r->scope] != NULL &&
	    (why = r->unused(bases[r->scope], warn, sizeof(warn))) != NULL) {
		d_indent(d);
		fprintf(d->f, "# %s is not used %s\n", name, why);
		return;
	}
	if ((f = open_memstream(&text, &len)) == NULL) {
		d->f = NULL;
		return;
	}
	set = print_value(r, bases, f);
	if (fclose(f) != 0) {
		free(text);
		d->f = NULL;
		return;
	}
	d_indent(d);
	if (!set)
		fprintf(d->f, "# %s is not set\n", name);
	else
		fprintf(d->f, "%s = %s;\n", name, r->sensitive ? "\"<redacted>\"" : text);
	free(text);
}

static void d_list(struct dump *d, const struct cg_setting *r, const void *const *bases,
    const struct inj_proto *proto);

/* Every setting below tpath, in the rows' order. */
static void
d_group(struct dump *d, const char *tpath, const void *const *bases,
    const struct inj_proto *proto)
{
	const struct cg_setting *r;
	size_t i;

	FOR_ROWS(proto, i, r) {
		if (d->f == NULL)
			return;
		if (!is_child(r->path, tpath))
			continue;
		switch (r->type) {
		case CG_SET_GROUP:
			d_open(d, r->path, false);
			d_group(d, r->path, bases, proto);
			d_close(d, false);
			break;
		case CG_SET_LIST:
			d_list(d, r, bases, proto);
			break;
		default:
			d_value(d, r, bases);
		}
	}
}

static void
d_list(struct dump *d, const struct cg_setting *r, const void *const *bases,
    const struct inj_proto *proto)
{
	const void *sub[CG_SCOPE_COUNT];
	const struct inj_proto *p;
	char tpath[CFG_PATH_MAX];
	size_t i, n = r->ops != NULL && r->ops->count != NULL ? r->ops->count(r, bases) : 0;

	if (n == 0) {
		d_indent(d);
		fprintf(d->f, "%s = ( );\n", last_name(r->path));
		return;
	}
	path_join(tpath, sizeof(tpath), r->path, "[]");
	d_open(d, r->path, true);
	for (i = 0; i < n && d->f != NULL; i++) {
		memcpy(sub, bases, sizeof(sub));
		p = proto;
		r->ops->elem(r, bases, i, sub, &p);
		d_elem(d, i);
		d_group(d, tpath, sub, p);
	}
	if (d->f == NULL)
		return;
	d_elems_end(d, n);
	d_close(d, true);
}

int
cg_config_dump(const struct cg_config *cfg, FILE *out)
{
	struct dump d = { .f = out };

	d_group(&d, "", (const void *[CG_SCOPE_COUNT]){ [CG_SCOPE_PROCESS] = cfg }, NULL);
	if (d.f == NULL)
		return CG_ERR_NOMEM;
	if (fflush(out) != 0 || ferror(out))
		return CG_ERR_IO;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Reload                                                              */
/* ------------------------------------------------------------------ */

/* r's value in the struct of its scope, as -T would print it; NULL when
 * unset ("" when out of memory, *nomem set). */
static char *
value_text(const struct cg_setting *r, const void *base, bool *nomem)
{
	const void *bases[CG_SCOPE_COUNT] = { [0] = NULL };
	char *text = NULL;
	size_t len = 0;
	FILE *f;
	bool set;

	bases[r->scope] = base;
	if ((f = open_memstream(&text, &len)) == NULL) {
		*nomem = true;
		return NULL;
	}
	set = print_value(r, bases, f);
	if (fclose(f) != 0)
		*nomem = true;
	if (!set) {
		free(text);
		return NULL;
	}
	return text;
}

int
cg_config_keep_fixed(const struct cg_config *run, struct cg_config *next,
    void (*changed)(const char *path, void *arg), void *arg)
{
	bool nomem = false;
	char *a, *b;
	size_t i;

	for (i = 0; i < cg_nsettings; i++) {
		const struct cg_setting *r = &cg_settings[i];

		if (r->reloadable || r->type == CG_SET_GROUP || r->type == CG_SET_LIST)
			continue;
		if (r->scope != CG_SCOPE_PROCESS)
			abort();	/* only process settings may need a restart */
		a = value_text(r, run, &nomem);
		b = value_text(r, next, &nomem);
		if ((a == NULL) != (b == NULL) || (a != NULL && strcmp(a, b) != 0)) {
			changed(r->path, arg);
			if (!copy_value(r, next, run))
				nomem = true;
		}
		free(a);
		free(b);
	}
	return nomem ? CG_ERR_NOMEM : 0;
}
