/*
 * http_rewrite.c: the HTTP injector.  Owns reading the caller's bearer token from a
 * parsed request head, and writing the upstream request head (hop-by-hop
 * fields and the caller's credentials removed, the legacy credential,
 * forwarding fields and framing added) and the caller's response head.
 *
 * It works on struct http_head only: it never parses bytes from a socket,
 * never calls the vault or the policy, and keeps no state.  Every byte of
 * the credential is composed in secure memory and handed to the output
 * buffer by reference, so that libevent never copies it into (or leaves it
 * in) ordinary heap memory; the reference is wiped and freed when libevent
 * lets go of it.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "injectors/http/http.h"

#define DEFAULT_USERNAME_FIELD	"username"
#define DEFAULT_PASSWORD_FIELD	"password"
#define DEFAULT_TOKEN_FIELD	"token"

static const char *const kind_names[] = {
	[INJ_HTTP_BASIC] = "basic",
	[INJ_HTTP_BEARER] = "bearer",
	[INJ_HTTP_HEADER] = "header",
	[INJ_HTTP_QUERY] = "query",
};

int
inj_http_kind_parse(const char *s)
{
	size_t i;

	if (s == NULL)
		return -1;
	for (i = 0; i < CG_ARRAY_LEN(kind_names); i++) {
		if (strcmp(s, kind_names[i]) == 0)
			return (int)i;
	}
	return -1;
}

const char *
inj_http_kind_name(enum inj_http_kind k)
{
	if ((size_t)k >= CG_ARRAY_LEN(kind_names))
		return "unknown";
	return kind_names[k];
}

static inline bool
name_is(const char *p, size_t len, const char *lit)
{
	return cg_strcase_eq(p, len, lit, strlen(lit));
}

/* A field name with its length, for the tables every field is checked
 * against. */
struct field_name {
	const char *s;
	size_t n;
};
#define FIELD_NAME(s)	{ s, sizeof(s) - 1 }

static bool
name_in(const char *p, size_t len, const struct field_name *tab, size_t ntab)
{
	size_t i;

	for (i = 0; i < ntab; i++) {
		if (len == tab[i].n && cg_strcase_eq(p, len, tab[i].s, tab[i].n))
			return true;
	}
	return false;
}

static bool
is_unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	    (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~';
}

/* A byte allowed in a field value (RFC 9110 §5.5): no CR, LF, NUL or other
 * control except HTAB. */
static bool
is_field_byte(unsigned char c)
{
	return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static bool
is_token(const char *s, size_t n)
{
	size_t i;

	if (n == 0)
		return false;
	for (i = 0; i < n; i++) {
		if (!http_is_tchar((unsigned char)s[i]))
			return false;
	}
	return true;
}

static const struct field_name hop_by_hop[] = {
	FIELD_NAME("Connection"), FIELD_NAME("Keep-Alive"),
	FIELD_NAME("Proxy-Connection"), FIELD_NAME("TE"),
	FIELD_NAME("Transfer-Encoding"), FIELD_NAME("Upgrade"),
	FIELD_NAME("Proxy-Authorization"), FIELD_NAME("Proxy-Authenticate"),
	FIELD_NAME("Trailer"),
};

bool
inj_http_is_hop_by_hop(const char *name, size_t len)
{
	return name_in(name, len, hop_by_hop, CG_ARRAY_LEN(hop_by_hop));
}

/* Fields that we write ourselves or that frame the message: a configured
 * header may not be one of them. */
static const char *const reserved_headers[] = {
	"Content-Length", "Host", "Expect", "X-Forwarded-For", "Forwarded",
	"X-Request-Id",
};

/* ------------------------------------------------------------------ */
/* Configuration                                                       */
/* ------------------------------------------------------------------ */

static bool
is_field_ref_char(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	    (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
}

/*
 * Walks a value template: literal text and ${name} references.  Calls
 * lit() for each literal run and ref() for each reference name; stops at
 * the first callback that fails.  Returns 0, CG_ERR_FORMAT for a malformed
 * template (unterminated or empty reference), or the callback's error.
 */
typedef int (*tmpl_lit_cb)(void *arg, const char *p, size_t n);
typedef int (*tmpl_ref_cb)(void *arg, const char *name, size_t n);

static int
tmpl_walk(const char *t, tmpl_lit_cb lit, tmpl_ref_cb ref, void *arg)
{
	size_t i = 0, start = 0, j;
	int r;

	while (t[i] != '\0') {
		if (t[i] != '$' || t[i + 1] != '{') {
			i++;
			continue;
		}
		if (i > start && (r = lit(arg, t + start, i - start)) != 0)
			return r;
		for (j = i + 2; t[j] != '\0' && t[j] != '}'; j++) {
			if (!is_field_ref_char((unsigned char)t[j]))
				return CG_ERR_FORMAT;
		}
		if (t[j] != '}' || j == i + 2)
			return CG_ERR_FORMAT;
		if ((r = ref(arg, t + i + 2, j - i - 2)) != 0)
			return r;
		i = start = j + 1;
	}
	if (i > start && (r = lit(arg, t + start, i - start)) != 0)
		return r;
	return 0;
}

static int
check_lit(void *arg, const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (!is_field_byte((unsigned char)p[i]))
			return CG_ERR_FORMAT;
	}
	return 0;
}

static int
check_ref(void *arg, const char *name, size_t n)
{
	return 0;
}

int
inj_http_cfg_check(const struct inj_http_cfg *cfg, char *err, size_t errlen)
{
	size_t i, n;

	if (errlen > 0)
		err[0] = '\0';
	switch (cfg->kind) {
	case INJ_HTTP_BASIC:
		if ((cfg->username_field != NULL && cfg->username_field[0] == '\0') ||
		    (cfg->password_field != NULL && cfg->password_field[0] == '\0')) {
			snprintf(err, errlen, "empty credential field name");
			return CG_ERR_FORMAT;
		}
		return 0;
	case INJ_HTTP_BEARER:
		if (cfg->field != NULL && cfg->field[0] == '\0') {
			snprintf(err, errlen, "empty credential field name");
			return CG_ERR_FORMAT;
		}
		return 0;
	case INJ_HTTP_HEADER:
		if (cfg->header == NULL || !is_token(cfg->header, strlen(cfg->header))) {
			snprintf(err, errlen, "header must be a field name (token)");
			return CG_ERR_FORMAT;
		}
		n = strlen(cfg->header);
		if (inj_http_is_hop_by_hop(cfg->header, n)) {
			snprintf(err, errlen, "header %s is hop-by-hop", cfg->header);
			return CG_ERR_FORMAT;
		}
		for (i = 0; i < CG_ARRAY_LEN(reserved_headers); i++) {
			if (name_is(cfg->header, n, reserved_headers[i])) {
				snprintf(err, errlen, "header %s is set by credgate",
				    cfg->header);
				return CG_ERR_FORMAT;
			}
		}
		if (cfg->value_template == NULL || cfg->value_template[0] == '\0') {
			snprintf(err, errlen, "value_template is empty");
			return CG_ERR_FORMAT;
		}
		if (tmpl_walk(cfg->value_template, check_lit, check_ref, NULL) != 0) {
			snprintf(err, errlen, "value_template: malformed ${field} "
			    "reference or control character");
			return CG_ERR_FORMAT;
		}
		return 0;
	case INJ_HTTP_QUERY:
		if (cfg->query_param == NULL || cfg->query_param[0] == '\0') {
			snprintf(err, errlen, "query_param is empty");
			return CG_ERR_FORMAT;
		}
		for (i = 0; cfg->query_param[i] != '\0'; i++) {
			if (!is_unreserved((unsigned char)cfg->query_param[i])) {
				snprintf(err, errlen, "query_param needs percent-encoding");
				return CG_ERR_FORMAT;
			}
		}
		if (cfg->field != NULL && cfg->field[0] == '\0') {
			snprintf(err, errlen, "empty credential field name");
			return CG_ERR_FORMAT;
		}
		return 0;
	}
	snprintf(err, errlen, "unknown inject kind");
	return CG_ERR_FORMAT;
}

void
inj_http_cfg_clear(struct inj_http_cfg *cfg)
{
	if (cfg == NULL)
		return;
	free(cfg->username_field);
	free(cfg->password_field);
	free(cfg->field);
	free(cfg->header);
	free(cfg->value_template);
	free(cfg->query_param);
	memset(cfg, 0, sizeof(*cfg));
}

const char *
inj_http_target_header(const struct inj_http_cfg *cfg)
{
	switch (cfg->kind) {
	case INJ_HTTP_BASIC:
	case INJ_HTTP_BEARER:
		return "Authorization";
	case INJ_HTTP_HEADER:
		return cfg->header;
	case INJ_HTTP_QUERY:
		return NULL;
	}
	return NULL;
}

/* ------------------------------------------------------------------ */
/* The caller's proof                                                  */
/* ------------------------------------------------------------------ */

static bool
is_token68_char(unsigned char c)
{
	/* token68 (RFC 9110 11.2), less its trailing "=" padding. */
	static const bool tab[256] = {
		['A' ... 'Z'] = true, ['a' ... 'z'] = true, ['0' ... '9'] = true,
		['-'] = true, ['.'] = true, ['_'] = true, ['~'] = true,
		['+'] = true, ['/'] = true,
	};

	return tab[c];
}

int
inj_http_read_proof(const struct http_head *req, struct http_span *token,
    const char **reason)
{
	const struct http_field *f, *other;
	const char *v;
	size_t iter = 0, n, i, start;

	token->p = NULL;
	token->len = 0;
	*reason = NULL;

	if ((f = http_head_find(req, "Authorization", &iter)) == NULL) {
		*reason = "no bearer token";
		return CG_ERR_NOTFOUND;
	}
	if ((other = http_head_find(req, "Authorization", &iter)) != NULL) {
		*reason = "multiple Authorization fields";
		return CG_ERR_FORMAT;
	}
	v = f->value.p;
	n = f->value.len;
	for (i = 0; i < n && http_is_tchar((unsigned char)v[i]); i++)
		;
	if (!cg_strcase_eq(v, i, "Bearer", 6)) {
		*reason = "not a bearer token";
		return CG_ERR_FORMAT;
	}
	if (i >= n || v[i] != ' ') {
		*reason = "malformed bearer token";
		return CG_ERR_FORMAT;
	}
	while (i < n && v[i] == ' ')
		i++;
	start = i;
	while (i < n && is_token68_char((unsigned char)v[i]))
		i++;
	if (i == start) {
		*reason = "malformed bearer token";
		return CG_ERR_FORMAT;
	}
	while (i < n && v[i] == '=')
		i++;
	if (i != n) {
		*reason = "malformed bearer token";
		return CG_ERR_FORMAT;
	}
	token->p = v + start;
	token->len = n - start;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Secret text: composed in secure memory, handed over by reference     */
/* ------------------------------------------------------------------ */

struct sbuf {
	char *p;		/* secmem */
	size_t len, cap;
	int err;		/* first error, sticky */
};

static void
sbuf_free(struct sbuf *s)
{
	secmem_free(s->p);	/* wipes */
	memset(s, 0, sizeof(*s));
}

static void
sbuf_add(struct sbuf *s, const void *p, size_t n)
{
	char *np;
	size_t ncap;

	if (s->err != 0)
		return;
	if (n > s->cap - s->len) {
		ncap = s->cap == 0 ? 256 : s->cap;
		while (ncap - s->len < n) {
			if (ncap > SIZE_MAX / 2) {
				s->err = CG_ERR_NOMEM;
				return;
			}
			ncap *= 2;
		}
		/* Not secmem_realloc: the old block must be wiped, and a
		 * fresh copy keeps that explicit. */
		if ((np = secmem_alloc(ncap)) == NULL) {
			s->err = CG_ERR_NOMEM;
			return;
		}
		if (s->len > 0)
			memcpy(np, s->p, s->len);
		secmem_free(s->p);
		s->p = np;
		s->cap = ncap;
	}
	memcpy(s->p + s->len, p, n);
	s->len += n;
}

static void
sbuf_adds(struct sbuf *s, const char *str)
{
	sbuf_add(s, str, strlen(str));
}

static void
sbuf_pct(struct sbuf *s, const char *p, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	char e[3];
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if (is_unreserved(c))
			sbuf_add(s, &p[i], 1);
		else {
			e[0] = '%';
			e[1] = hex[c >> 4];
			e[2] = hex[c & 15];
			sbuf_add(s, e, 3);
		}
	}
	cg_wipe(e, sizeof(e));
}

static void
sref_cleanup(const void *data, size_t len, void *extra)
{
	secmem_free(extra);	/* wipes */
}

/* Moves s into out as a reference chain; s is empty afterwards. */
static int
sbuf_hand_over(struct sbuf *s, struct evbuffer *out)
{
	if (s->err != 0)
		return s->err;
	if (s->len == 0) {
		sbuf_free(s);
		return 0;
	}
	if (evbuffer_add_reference(out, s->p, s->len, sref_cleanup, s->p) != 0) {
		sbuf_free(s);
		return CG_ERR_NOMEM;
	}
	memset(s, 0, sizeof(*s));	/* the chain owns the block now */
	return 0;
}

/* ------------------------------------------------------------------ */
/* The request head                                                    */
/* ------------------------------------------------------------------ */

static const char *
cred_field(const struct inj_cred *cred, const char *name, size_t *len)
{
	const char *v;

	*len = 0;
	if (cred == NULL || cred->field == NULL)
		return NULL;
	v = cred->field(cred->ctx, name, len);
	if (v == NULL)
		*len = 0;
	return v;
}

static bool
header_safe(const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (!is_field_byte((unsigned char)p[i]))
			return false;
	}
	return true;
}

struct tmpl_ctx {
	struct sbuf *s;
	const struct inj_cred *cred;
	const char **reason;
};

static int
expand_lit(void *arg, const char *p, size_t n)
{
	struct tmpl_ctx *t = arg;

	if (!header_safe(p, n)) {
		*t->reason = "credential value not allowed in a header";
		return CG_ERR_FORMAT;
	}
	sbuf_add(t->s, p, n);
	return t->s->err;
}

static int
expand_ref(void *arg, const char *name, size_t n)
{
	struct tmpl_ctx *t = arg;
	char key[128];
	const char *v;
	size_t vlen;

	if (n >= sizeof(key)) {
		*t->reason = "credential field missing";
		return CG_ERR_NOTFOUND;
	}
	memcpy(key, name, n);
	key[n] = '\0';
	if ((v = cred_field(t->cred, key, &vlen)) == NULL) {
		*t->reason = "credential field missing";
		return CG_ERR_NOTFOUND;
	}
	if (!header_safe(v, vlen)) {
		*t->reason = "credential value not allowed in a header";
		return CG_ERR_FORMAT;
	}
	sbuf_add(t->s, v, vlen);
	return t->s->err;
}

/* The credential field line ("Name: value\r\n") into s. */
static int
compose_cred_header(const struct inj_http_cfg *cfg, const struct inj_cred *cred,
    struct sbuf *s, const char **reason)
{
	struct sbuf up = { 0 };
	const char *user, *pass, *tok, *fname;
	size_t ulen, plen, tlen, blen;
	char *b64 = NULL;
	struct tmpl_ctx t;
	int r;

	switch (cfg->kind) {
	case INJ_HTTP_BASIC:
		fname = cfg->username_field != NULL ? cfg->username_field :
		    DEFAULT_USERNAME_FIELD;
		user = cred_field(cred, fname, &ulen);
		fname = cfg->password_field != NULL ? cfg->password_field :
		    DEFAULT_PASSWORD_FIELD;
		pass = cred_field(cred, fname, &plen);
		if (user == NULL || pass == NULL) {
			*reason = "credential field missing";
			return CG_ERR_NOTFOUND;
		}
		if (memchr(user, ':', ulen) != NULL) {
			*reason = "username holds a colon";
			return CG_ERR_FORMAT;
		}
		sbuf_add(&up, user, ulen);
		sbuf_add(&up, ":", 1);
		sbuf_add(&up, pass, plen);
		if ((r = up.err) != 0)
			goto out;
		blen = b64_encoded_len(up.len);
		if ((b64 = secmem_alloc(blen + 1)) == NULL) {
			r = CG_ERR_NOMEM;
			goto out;
		}
		b64_encode((const unsigned char *)up.p, up.len, b64);
		sbuf_adds(s, "Authorization: Basic ");
		sbuf_add(s, b64, blen);
		sbuf_adds(s, "\r\n");
		r = s->err;
		break;
	case INJ_HTTP_BEARER:
		fname = cfg->field != NULL ? cfg->field : DEFAULT_TOKEN_FIELD;
		if ((tok = cred_field(cred, fname, &tlen)) == NULL) {
			*reason = "credential field missing";
			return CG_ERR_NOTFOUND;
		}
		if (tlen == 0 || !header_safe(tok, tlen)) {
			*reason = "credential value not allowed in a header";
			return CG_ERR_FORMAT;
		}
		sbuf_adds(s, "Authorization: Bearer ");
		sbuf_add(s, tok, tlen);
		sbuf_adds(s, "\r\n");
		r = s->err;
		break;
	case INJ_HTTP_HEADER:
		if (cfg->header == NULL || cfg->value_template == NULL) {
			*reason = "header injection not configured";
			return CG_ERR_FORMAT;
		}
		sbuf_adds(s, cfg->header);
		sbuf_adds(s, ": ");
		t.s = s;
		t.cred = cred;
		t.reason = reason;
		if ((r = tmpl_walk(cfg->value_template, expand_lit, expand_ref, &t)) != 0) {
			if (*reason == NULL)
				*reason = "malformed value template";
			goto out;
		}
		sbuf_adds(s, "\r\n");
		r = s->err;
		break;
	default:
		r = 0;
		break;
	}
 out:
	if (b64 != NULL)
		secmem_free(b64);	/* wipes */
	sbuf_free(&up);
	return r;
}

/* Does a query pair's name, percent-decoded, equal want?  A name with
 * malformed percent-encoding equals nothing. */
static bool
query_name_is(const char *p, size_t n, const char *want)
{
	size_t i = 0, k = 0, wlen = strlen(want);
	int hi, lo;
	unsigned char c;

	while (i < n) {
		c = (unsigned char)p[i];
		if (c == '%') {
			if (i + 2 >= n || (hi = cg_hexval(p[i + 1])) < 0 ||
			    (lo = cg_hexval(p[i + 2])) < 0)
				return false;
			c = (unsigned char)(hi << 4 | lo);
			i += 3;
		} else
			i++;
		if (k >= wlen || (unsigned char)want[k] != c)
			return false;
		k++;
	}
	return k == wlen;
}

/* The request line with the credential as a query parameter, into s. */
static int
compose_query_line(const struct http_head *req, const struct inj_http_cfg *cfg,
    const struct inj_cred *cred, struct sbuf *s, const char **reason)
{
	const char *q, *v, *fname;
	size_t qlen, i, start, end, vlen;
	bool first = true;

	if (cfg->query_param == NULL || cfg->query_param[0] == '\0') {
		*reason = "query injection not configured";
		return CG_ERR_FORMAT;
	}
	fname = cfg->field != NULL ? cfg->field : DEFAULT_TOKEN_FIELD;
	if ((v = cred_field(cred, fname, &vlen)) == NULL) {
		*reason = "credential field missing";
		return CG_ERR_NOTFOUND;
	}
	/* An empty path is that of an absolute-form target without one. */
	if (req->path.len > 0 && req->path.p[0] != '/') {
		*reason = "no path to add a query parameter to";
		return CG_ERR_FORMAT;
	}
	sbuf_add(s, req->method.p, req->method.len);
	sbuf_adds(s, " ");
	if (req->path.len > 0)
		sbuf_add(s, req->path.p, req->path.len);
	else
		sbuf_adds(s, "/");
	q = req->query.p;
	qlen = req->query.len;
	for (i = 0; q != NULL && i <= qlen; i = end + 1) {
		start = i;
		for (end = start; end < qlen && q[end] != '&'; end++)
			;
		if (end == start)
			continue;
		for (i = start; i < end && q[i] != '='; i++)
			;
		if (query_name_is(q + start, i - start, cfg->query_param))
			continue;
		sbuf_adds(s, first ? "?" : "&");
		sbuf_add(s, q + start, end - start);
		first = false;
	}
	sbuf_adds(s, first ? "?" : "&");
	sbuf_adds(s, cfg->query_param);
	sbuf_adds(s, "=");
	sbuf_pct(s, v, vlen);
	sbuf_adds(s, " HTTP/1.1\r\n");
	return s->err;
}

/*
 * The Connection fields of a head, found once for all of its fields
 * instead of once per field: a head has one or none.
 */
#define CONN_FIELDS_MAX 4
struct conn_fields {
	const struct http_head *h;
	const struct http_field *f[CONN_FIELDS_MAX];
	size_t n;
	bool more;		/* over CONN_FIELDS_MAX: searched each time */
};

static void
conn_fields_find(const struct http_head *h, struct conn_fields *cf)
{
	const struct http_field *c;
	size_t iter = 0;

	cf->h = h;
	cf->n = 0;
	cf->more = false;
	while ((c = http_head_find(h, "Connection", &iter)) != NULL) {
		if (cf->n == CONN_FIELDS_MAX) {
			cf->more = true;
			return;
		}
		cf->f[cf->n++] = c;
	}
}

static bool
named_in_value(const struct http_field *c, const struct http_field *f)
{
	struct http_span e;
	size_t pos = 0;

	while (http_list_next(&c->value, &pos, &e))
		if (cg_strcase_eq(e.p, e.len, f->name.p, f->name.len))
			return true;
	return false;
}

/* Is field f named in any Connection field of the head? */
static bool
named_in_connection(const struct conn_fields *cf, const struct http_field *f)
{
	const struct http_field *c;
	size_t i, iter = 0;

	if (cf->more) {
		while ((c = http_head_find(cf->h, "Connection", &iter)) != NULL)
			if (named_in_value(c, f))
				return true;
		return false;
	}
	for (i = 0; i < cf->n; i++)
		if (named_in_value(cf->f[i], f))
			return true;
	return false;
}

static bool
drop_request_field(const struct conn_fields *cf, const struct http_field *f,
    const char *target, bool own_host)
{
	static const struct field_name dropped[] = {
		FIELD_NAME("Content-Length"), FIELD_NAME("Expect"),
		FIELD_NAME("Authorization"), FIELD_NAME("X-Request-Id"),
		FIELD_NAME("X-Forwarded-For"), FIELD_NAME("Forwarded"),
	};

	if (f->drop || inj_http_is_hop_by_hop(f->name.p, f->name.len) ||
	    name_in(f->name.p, f->name.len, dropped, CG_ARRAY_LEN(dropped)))
		return true;
	if (target != NULL && name_is(f->name.p, f->name.len, target))
		return true;
	/* Host stays even when Connection names it: the request was
	 * checked with it, and HTTP/1.1 upstream needs it; it goes only for
	 * the one we write. */
	if (name_is(f->name.p, f->name.len, "Host"))
		return own_host;
	return named_in_connection(cf, f);
}

/* A caller's forwarding field that we join into ours. */
static bool
forward_value(const struct conn_fields *cf, const struct http_field *f)
{
	return f->value.len > 0 && !f->drop && !named_in_connection(cf, f);
}

/* Appends the strings up to the NULL that ends the list; 0 or -1.  Heads
 * are put together with this instead of printf, on every message. */
static int CG_SENTINEL
add_strs(struct evbuffer *b, ...)
{
	const char *s;
	va_list ap;
	int r = 0;

	va_start(ap, b);
	while (r == 0 && (s = va_arg(ap, const char *)) != NULL)
		r = evbuffer_add(b, s, strlen(s));
	va_end(ap);
	return r;
}

static int
add_content_length(struct evbuffer *b, unsigned long long v)
{
	char num[24];
	size_t n = cg_fmt_u64(num, v);

	return evbuffer_add(b, "Content-Length: ", 16) != 0 ||
	    evbuffer_add(b, num, n) != 0 || evbuffer_add(b, "\r\n", 2) != 0 ? -1 : 0;
}

/*
 * Writes "name: <the caller's values of name, joined with ", ">", followed
 * by ", " if anything was written; *any says whether it was.  Writes
 * nothing when the caller sent no value.
 */
static int
add_joined(struct evbuffer *b, const struct conn_fields *cf, const char *name,
    bool *any)
{
	const struct http_field *f;
	size_t iter = 0;

	*any = false;
	while ((f = http_head_find(cf->h, name, &iter)) != NULL) {
		if (!forward_value(cf, f))
			continue;
		if (!*any && add_strs(b, name, ": ", NULL) != 0)
			return -1;
		if (*any && evbuffer_add(b, ", ", 2) != 0)
			return -1;
		if (evbuffer_add(b, f->value.p, f->value.len) != 0)
			return -1;
		*any = true;
	}
	return 0;
}

static bool
is_plain_token(const char *s)
{
	return s != NULL && is_token(s, strlen(s));
}

/* node for Forwarded (RFC 7239 §6): IPv6 in brackets and quotes, tokens
 * bare, anything else quoted. */
static int
add_forwarded_node(struct evbuffer *b, const char *addr)
{
	size_t i;

	if (strchr(addr, ':') != NULL)
		return evbuffer_add_printf(b, "\"[%s]\"", addr) < 0 ? -1 : 0;
	if (is_plain_token(addr))
		return evbuffer_add(b, addr, strlen(addr));
	if (evbuffer_add(b, "\"", 1) != 0)
		return -1;
	for (i = 0; addr[i] != '\0'; i++) {
		if ((addr[i] == '"' || addr[i] == '\\') && evbuffer_add(b, "\\", 1) != 0)
			return -1;
		if (evbuffer_add(b, &addr[i], 1) != 0)
			return -1;
	}
	return evbuffer_add(b, "\"", 1);
}

static bool
ctx_string_ok(const char *s)
{
	return s != NULL && s[0] != '\0' && header_safe(s, strlen(s));
}

/* Does req carry a Host field to forward? */
static bool
has_host(const struct http_head *req)
{
	const struct http_field *f;
	size_t iter = 0;

	while ((f = http_head_find(req, "Host", &iter)) != NULL) {
		if (f->value.len > 0 && !f->drop)
			return true;
	}
	return false;
}

/* A target in absolute-form is sent as its path and query (an origin
 * server is sent origin-form, RFC 9112 §3.2.2). */
static bool
target_is_absolute(const struct http_head *req)
{
	return req->target.len > 0 && req->target.p[0] != '/' &&
	    !(req->target.len == 1 && req->target.p[0] == '*');
}

/* The request line for every kind but INJ_HTTP_QUERY; 0 or -1. */
static int
add_request_line(struct evbuffer *b, const struct http_head *req)
{
	if (evbuffer_add(b, req->method.p, req->method.len) != 0 ||
	    evbuffer_add(b, " ", 1) != 0)
		return -1;
	if (!target_is_absolute(req)) {
		if (evbuffer_add(b, req->target.p, req->target.len) != 0)
			return -1;
	} else {
		if (req->path.len == 0) {
			if (evbuffer_add(b, "/", 1) != 0)
				return -1;
		} else if (evbuffer_add(b, req->path.p, req->path.len) != 0)
			return -1;
		if (req->query.p != NULL && (evbuffer_add(b, "?", 1) != 0 ||
		    evbuffer_add(b, req->query.p, req->query.len) != 0))
			return -1;
	}
	return evbuffer_add(b, " HTTP/1.1\r\n", 11);
}

int
inj_http_write_request(const struct http_head *req, const struct inj_http_cfg *cfg,
    const struct inj_cred *cred, const struct inj_http_req_ctx *ctx,
    struct evbuffer *out, const char **reason)
{
	struct evbuffer *tmp = NULL;
	struct sbuf line = { 0 }, cred_line = { 0 };
	const char *target = inj_http_target_header(cfg);
	const char *addr = ctx != NULL ? ctx->client_addr : NULL;
	const char *dummy, *host = NULL;
	struct conn_fields cf;
	size_t i, host_len = 0;
	bool any;
	int r;

	if (reason == NULL)
		reason = &dummy;
	*reason = NULL;
	conn_fields_find(req, &cf);

	/* The secret parts first: nothing is written if they fail. */
	if (cfg->kind == INJ_HTTP_QUERY) {
		if ((r = compose_query_line(req, cfg, cred, &line, reason)) != 0)
			goto out;
	} else if ((r = compose_cred_header(cfg, cred, &cred_line, reason)) != 0)
		goto out;
	if (ctx != NULL && ctx->framing == INJ_FRAMING_CLOSE) {
		*reason = "a request cannot be framed by closing";
		r = CG_ERR_FORMAT;
		goto out;
	}
	if ((addr != NULL && !ctx_string_ok(addr)) ||
	    (ctx != NULL && ctx->proto != NULL && !is_plain_token(ctx->proto)) ||
	    (ctx != NULL && ctx->request_id != NULL && !ctx_string_ok(ctx->request_id))) {
		*reason = "invalid forwarding value";
		r = CG_ERR_FORMAT;
		goto out;
	}
	if (ctx != NULL && ctx->host.len > 0) {
		host = ctx->host.p;
		host_len = ctx->host.len;
	} else if (ctx != NULL && ctx->default_host != NULL && !has_host(req)) {
		host = ctx->default_host;
		host_len = strlen(host);
	}
	if (host != NULL && (host_len == 0 || !header_safe(host, host_len))) {
		*reason = "invalid Host value";
		r = CG_ERR_FORMAT;
		goto out;
	}

	r = CG_ERR_NOMEM;
	if ((tmp = evbuffer_new()) == NULL)
		goto out;

	/* Request line, and our Host first (RFC 9112 §3.2). */
	if (cfg->kind == INJ_HTTP_QUERY) {
		if (sbuf_hand_over(&line, tmp) != 0)
			goto out;
	} else if (add_request_line(tmp, req) != 0)
		goto out;
	if (host != NULL && (evbuffer_add(tmp, "Host: ", 6) != 0 ||
	    evbuffer_add(tmp, host, host_len) != 0 || evbuffer_add(tmp, "\r\n", 2) != 0))
		goto out;

	/* The caller's fields that may pass. */
	for (i = 0; i < req->nfields; i++) {
		const struct http_field *f = &req->fields[i];

		if (drop_request_field(&cf, f, target, host != NULL))
			continue;
		if (evbuffer_add(tmp, f->name.p, f->name.len) != 0 ||
		    evbuffer_add(tmp, ": ", 2) != 0 ||
		    evbuffer_add(tmp, f->value.p, f->value.len) != 0 ||
		    evbuffer_add(tmp, "\r\n", 2) != 0)
			goto out;
	}

	/* Ours, after the filtering so that none of it can be removed. */
	if (cfg->kind != INJ_HTTP_QUERY && sbuf_hand_over(&cred_line, tmp) != 0)
		goto out;

	if (add_joined(tmp, &cf, "X-Forwarded-For", &any) != 0)
		goto out;
	if (addr != NULL) {
		if (add_strs(tmp, any ? ", " : "X-Forwarded-For: ", addr, NULL) != 0)
			goto out;
		any = true;
	}
	if (any && evbuffer_add(tmp, "\r\n", 2) != 0)
		goto out;

	if (add_joined(tmp, &cf, "Forwarded", &any) != 0)
		goto out;
	if (addr != NULL) {
		if (add_strs(tmp, any ? ", " : "Forwarded: ", "for=", NULL) != 0 ||
		    add_forwarded_node(tmp, addr) != 0)
			goto out;
		if (ctx->proto != NULL && add_strs(tmp, ";proto=", ctx->proto, NULL) != 0)
			goto out;
		any = true;
	}
	if (any && evbuffer_add(tmp, "\r\n", 2) != 0)
		goto out;

	if (ctx != NULL && ctx->request_id != NULL &&
	    add_strs(tmp, "X-Request-Id: ", ctx->request_id, "\r\n", NULL) != 0)
		goto out;

	if (ctx != NULL && ctx->framing == INJ_FRAMING_LENGTH) {
		if (add_content_length(tmp, ctx->content_length) != 0)
			goto out;
	} else if (ctx != NULL && ctx->framing == INJ_FRAMING_CHUNKED) {
		if (evbuffer_add(tmp, "Transfer-Encoding: chunked\r\n", 28) != 0)
			goto out;
	}
	if (evbuffer_add(tmp, "\r\n", 2) != 0)
		goto out;

	if (evbuffer_add_buffer(out, tmp) != 0)
		goto out;
	r = 0;
 out:
	if (r == CG_ERR_NOMEM && *reason == NULL)
		*reason = "out of memory";
	sbuf_free(&line);
	sbuf_free(&cred_line);
	if (tmp != NULL)
		evbuffer_free(tmp);	/* reference chains wipe themselves */
	return r;
}

/* ------------------------------------------------------------------ */
/* The response: the credential must not come back                    */
/* ------------------------------------------------------------------ */

/*
 * An upstream can hand the credential back in its response head: nginx
 * answers "GET /dir?api_key=..." with "301 Location: /dir/?api_key=...",
 * an application echoes a request field into a response field.  The
 * response head is written without any field that holds it.
 */

/* A byte string no response field may hold. */
struct needle {
	const char *p;
	size_t len;
};

/*
 * What one response is searched for: the secret values the request was
 * written with, borrowed from the credential, and their base64, made here.
 */
struct inj_http_echo_set {
	const char *param;	/* query: removed from URL fields; else NULL */
	struct needle *v;	/* in block */
	size_t n;
	char *block;		/* secmem: v[], then the base64 forms */
	size_t block_len;
};

/* Two passes over the secret values: the first counts, the second fills. */
struct echo_build {
	struct inj_http_echo_set *set;
	const struct inj_cred *cred;
	bool fill;
	bool overflow;		/* second pass: more than the first counted */
	size_t nneedles;	/* first pass */
	size_t text_len;	/* first pass: base64 bytes, each with a NUL */
	char *text;		/* second pass: the next free byte in block */
	char *text_end;		/* second pass: the end of block */
};

/* Room for one more needle (and len bytes of text) in the second pass. */
static bool
echo_room(struct echo_build *b, size_t len)
{
	if (b->set->n == b->nneedles || (size_t)(b->text_end - b->text) < len) {
		b->overflow = true;
		return false;
	}
	return true;
}

/* The base64 of p[0..n), cut to its whole groups: the same four
 * characters stand for those bytes wherever they start a group, with or
 * without padding after them. */
static void
echo_add_b64(struct echo_build *b, const char *p, size_t n)
{
	size_t blen = b64_encoded_len(n);

	if (!b->fill) {
		b->nneedles++;
		b->text_len += blen + 1;
		return;
	}
	if (!echo_room(b, blen + 1))
		return;
	b64_encode((const unsigned char *)p, n, b->text);
	b->set->v[b->set->n].p = b->text;
	b->set->v[b->set->n].len = n / 3 * 4;
	b->set->n++;
	b->text += blen + 1;
}

/* One secret value: itself and its base64. */
static void
echo_add_value(struct echo_build *b, const char *p, size_t n)
{
	if (n < INJ_ECHO_MIN_LEN)
		return;
	if (!b->fill)
		b->nneedles++;
	else if (echo_room(b, 0)) {
		b->set->v[b->set->n].p = p;
		b->set->v[b->set->n].len = n;
		b->set->n++;
	}
	echo_add_b64(b, p, n);
}

static int
echo_lit(void *arg, const char *p, size_t n)
{
	return 0;	/* the template's own text is no secret */
}

static int
echo_ref(void *arg, const char *name, size_t n)
{
	struct echo_build *b = arg;
	char key[128];
	const char *v;
	size_t vlen;

	if (n >= sizeof(key))
		return CG_ERR_NOTFOUND;
	memcpy(key, name, n);
	key[n] = '\0';
	if ((v = cred_field(b->cred, key, &vlen)) == NULL)
		return CG_ERR_NOTFOUND;
	echo_add_value(b, v, vlen);
	return 0;
}

/* Walks the secret values of cfg's kind, as compose_cred_header() and
 * compose_query_line() read them. */
static int
echo_walk(const struct inj_http_cfg *cfg, struct echo_build *b)
{
	struct sbuf up = { 0 };
	const char *user, *pass, *v, *fname;
	size_t ulen, plen, vlen;
	int r;

	switch (cfg->kind) {
	case INJ_HTTP_BASIC:
		fname = cfg->username_field != NULL ? cfg->username_field :
		    DEFAULT_USERNAME_FIELD;
		user = cred_field(b->cred, fname, &ulen);
		fname = cfg->password_field != NULL ? cfg->password_field :
		    DEFAULT_PASSWORD_FIELD;
		pass = cred_field(b->cred, fname, &plen);
		if (user == NULL || pass == NULL)
			return CG_ERR_NOTFOUND;
		echo_add_value(b, pass, plen);
		if (ulen + 1 + plen < INJ_ECHO_MIN_LEN)
			return 0;
		if (!b->fill) {
			echo_add_b64(b, NULL, ulen + 1 + plen);
			return 0;
		}
		sbuf_add(&up, user, ulen);
		sbuf_add(&up, ":", 1);
		sbuf_add(&up, pass, plen);
		if ((r = up.err) == 0)
			echo_add_b64(b, up.p, up.len);
		sbuf_free(&up);		/* wipes */
		return r;
	case INJ_HTTP_BEARER:
	case INJ_HTTP_QUERY:
		fname = cfg->field != NULL ? cfg->field : DEFAULT_TOKEN_FIELD;
		if ((v = cred_field(b->cred, fname, &vlen)) == NULL)
			return CG_ERR_NOTFOUND;
		echo_add_value(b, v, vlen);
		return 0;
	case INJ_HTTP_HEADER:
		if (cfg->value_template == NULL)
			return CG_ERR_FORMAT;
		return tmpl_walk(cfg->value_template, echo_lit, echo_ref, b);
	}
	return CG_ERR_FORMAT;
}

static void
echo_set_free(struct inj_http_echo_set *set)
{
	if (set->block != NULL)
		secmem_free(set->block);	/* wipes */
	memset(set, 0, sizeof(*set));
}

/* The needles of cfg and cred, in one block of secure memory. */
static int
echo_set_build(struct inj_http_echo_set *set, const struct inj_http_cfg *cfg,
    const struct inj_cred *cred)
{
	struct echo_build b = { .set = set, .cred = cred };
	size_t table;
	int r;

	memset(set, 0, sizeof(*set));
	if (cfg->kind == INJ_HTTP_QUERY) {
		if (cfg->query_param == NULL || cfg->query_param[0] == '\0')
			return CG_ERR_FORMAT;
		set->param = cfg->query_param;
	}
	if ((r = echo_walk(cfg, &b)) != 0)
		return r;
	if (b.nneedles == 0)
		return 0;
	table = b.nneedles * sizeof(struct needle);
	set->block_len = table + b.text_len;
	if ((set->block = secmem_alloc(set->block_len)) == NULL) {
		echo_set_free(set);
		return CG_ERR_NOMEM;
	}
	set->v = (struct needle *)(void *)set->block;
	b.fill = true;
	b.text = set->block + table;
	b.text_end = set->block + set->block_len;
	if ((r = echo_walk(cfg, &b)) == 0 && b.overflow)
		r = CG_ERR_FORMAT;	/* the credential changed under us */
	if (r != 0)
		echo_set_free(set);
	return r;
}

/*
 * Does h[0..n) hold the needle in a percent-encoded spelling: each of its
 * bytes as itself, as '%' and two hex digits of either case, or a space
 * as '+'?  Quadratic at worst in n and the needle's length, both bounded
 * by the head limits; run only on values with a '%' or a '+'.
 */
static bool
pct_holds(const char *h, size_t n, const struct needle *nd)
{
	size_t i, j, k;
	int hi, lo;

	if (nd->len == 0 || nd->len > n)
		return false;
	for (i = 0; n - i >= nd->len; i++) {
		for (j = i, k = 0; k < nd->len && j < n; k++) {
			unsigned char c = (unsigned char)nd->p[k];
			unsigned char x = (unsigned char)h[j];

			if (x == '%' && n - j > 2 && (hi = cg_hexval(h[j + 1])) >= 0 &&
			    (lo = cg_hexval(h[j + 2])) >= 0 && (unsigned)(hi << 4 | lo) == c)
				j += 3;
			else if (x == c || (x == '+' && c == ' '))
				j++;
			else
				break;
		}
		if (k == nd->len)
			return true;
	}
	return false;
}

/* Does the value hold any of the set's needles? */
static bool
echo_holds(const struct inj_http_echo_set *set, const char *p, size_t n)
{
	bool encoded;
	size_t i;

	if (set->n == 0 || n == 0)
		return false;
	encoded = memchr(p, '%', n) != NULL || memchr(p, '+', n) != NULL;
	for (i = 0; i < set->n; i++) {
		if (set->v[i].len > n)
			continue;
		if (memmem(p, n, set->v[i].p, set->v[i].len) != NULL)
			return true;
		if (encoded && pct_holds(p, n, &set->v[i]))
			return true;
	}
	return false;
}

/* Counts (out NULL) or writes the query pairs of u[qs..qe) that stay. */
static size_t
strip_query(const char *u, size_t qs, size_t qe, const char *param, char *out,
    size_t *o)
{
	size_t start, end, eq, removed = 0;
	bool first = true;

	for (start = qs; start <= qe; start = end + 1) {
		for (end = start; end < qe && u[end] != '&'; end++)
			;
		for (eq = start; eq < end && u[eq] != '='; eq++)
			;
		if (end > start && query_name_is(u + start, eq - start, param)) {
			removed++;
			continue;
		}
		if (out == NULL || end == start)
			continue;
		out[(*o)++] = first ? '?' : '&';
		memcpy(out + *o, u + start, end - start);
		*o += end - start;
		first = false;
	}
	return removed;
}

size_t
inj_http_url_strip(const char *u, size_t n, const char *param, char *out,
    size_t *outlen)
{
	const char *hash, *q;
	size_t qe, removed, o;

	hash = memchr(u, '#', n);
	qe = hash != NULL ? (size_t)(hash - u) : n;
	q = memchr(u, '?', qe);
	removed = q != NULL ? strip_query(u, (size_t)(q - u) + 1, qe, param, NULL, NULL) : 0;
	if (out == NULL)
		return removed;
	if (removed == 0) {
		if (n > 0)
			memcpy(out, u, n);
		*outlen = n;
		return 0;
	}
	o = (size_t)(q - u);
	memcpy(out, u, o);
	(void)strip_query(u, o + 1, qe, param, out, &o);
	memcpy(out + o, u + qe, n - qe);
	*outlen = o + n - qe;
	return removed;
}

/* Which response fields hold URLs, and where. */
enum url_field {
	URL_NONE = 0,
	URL_WHOLE,	/* Location, Content-Location: the value */
	URL_LINK,	/* Link: each <URI-Reference> */
	URL_REFRESH,	/* Refresh: "5; url=..." */
};

static enum url_field
url_field_kind(const char *name, size_t len)
{
	if (name_is(name, len, "Location") || name_is(name, len, "Content-Location"))
		return URL_WHOLE;
	if (name_is(name, len, "Link"))
		return URL_LINK;
	if (name_is(name, len, "Refresh"))
		return URL_REFRESH;
	return URL_NONE;
}

static bool
is_ows(char c)
{
	return c == ' ' || c == '\t';
}

/*
 * The URL of a Refresh value as browsers read it: a delay, then ';' or
 * ',', then optionally "url" and '=', then the URL, maybe in quotes.
 */
static bool
refresh_url(const char *v, size_t n, size_t *s, size_t *e)
{
	size_t i = 0, j;
	char quote;

	while (i < n && (is_ows(v[i]) || (v[i] >= '0' && v[i] <= '9') || v[i] == '.'))
		i++;
	if (i < n && (v[i] == ';' || v[i] == ','))
		i++;
	while (i < n && is_ows(v[i]))
		i++;
	if (n - i >= 3 && cg_strcase_eq(v + i, 3, "url", 3)) {
		for (j = i + 3; j < n && is_ows(v[j]); j++)
			;
		if (j < n && v[j] == '=') {
			for (j++; j < n && is_ows(v[j]); j++)
				;
			i = j;
		}
	}
	if (i < n && (v[i] == '"' || v[i] == '\'')) {
		quote = v[i++];
		for (j = i; j < n && v[j] != quote; j++)
			;
	} else
		j = n;
	*s = i;
	*e = j;
	return j > i;
}

/*
 * The next URL span [*s, *e) of a field of kind k, from *pos on.  Link
 * references are taken wherever a '<' is, quoted text included: that
 * strips more than needed at worst, never less.
 */
static bool
url_span_next(enum url_field k, const char *v, size_t n, size_t *pos, size_t *s,
    size_t *e)
{
	const char *lt, *gt;

	if (*pos > n)
		return false;
	switch (k) {
	case URL_WHOLE:
		*s = 0;
		*e = n;
		*pos = n + 1;
		return true;
	case URL_REFRESH:
		*pos = n + 1;
		return refresh_url(v, n, s, e);
	case URL_LINK:
		if ((lt = memchr(v + *pos, '<', n - *pos)) == NULL ||
		    (gt = memchr(lt + 1, '>', n - (size_t)(lt + 1 - v))) == NULL) {
			*pos = n + 1;
			return false;
		}
		*s = (size_t)(lt + 1 - v);
		*e = (size_t)(gt - v);
		*pos = *e + 1;
		return true;
	case URL_NONE:
		break;
	}
	return false;
}

/*
 * The value of a URL field without param: 0 when there was none to remove
 * (nothing allocated), 1 with *out (secure memory, *outlen bytes; the
 * caller frees it with secmem_free()), or CG_ERR_NOMEM.
 */
static int
url_field_strip(enum url_field k, const char *v, size_t n, const char *param,
    char **out, size_t *outlen)
{
	size_t pos = 0, s, e, o = 0, done = 0, len;
	size_t removed = 0;
	char *buf;

	*out = NULL;
	*outlen = 0;
	while (url_span_next(k, v, n, &pos, &s, &e))
		removed += inj_http_url_strip(v + s, e - s, param, NULL, NULL);
	if (removed == 0)
		return 0;
	if ((buf = secmem_alloc(n)) == NULL)
		return CG_ERR_NOMEM;
	pos = 0;
	while (url_span_next(k, v, n, &pos, &s, &e)) {
		memcpy(buf + o, v + done, s - done);
		o += s - done;
		(void)inj_http_url_strip(v + s, e - s, param, buf + o, &len);
		o += len;
		done = e;
	}
	memcpy(buf + o, v + done, n - done);
	*out = buf;
	*outlen = o + n - done;
	return 1;
}

/* Notes a field in the report, each (name, dropped) once. */
static void
echo_note(struct inj_echo *echo, const char *name, size_t len, bool dropped)
{
	size_t i;

	if (echo == NULL)
		return;
	if (dropped)
		echo->dropped++;
	else
		echo->scrubbed++;
	for (i = 0; i < echo->nnames; i++) {
		if (echo->names[i].dropped == dropped &&
		    cg_strcase_eq(echo->names[i].name.p, echo->names[i].name.len, name, len))
			return;
	}
	if (echo->nnames == INJ_ECHO_NAMES)
		return;
	echo->names[echo->nnames].name.p = name;
	echo->names[echo->nnames].name.len = len;
	echo->names[echo->nnames].dropped = dropped;
	echo->nnames++;
}

/* What the report calls a reason phrase it left out, and a field whose
 * very name holds a secret (not a name: ':' is no field name's). */
static const char reason_phrase_name[] = ":reason-phrase";
static const char secret_name[] = ":field-name";

/*
 * One field for the caller: with its URL stripped of the parameter, or
 * left out when it still holds a secret.
 */
static int
add_response_field(struct evbuffer *b, const struct http_field *f,
    const struct inj_http_echo_set *set, struct inj_echo *echo)
{
	const char *v = f->value.p;
	size_t vlen = f->value.len, slen;
	enum url_field k;
	char *stripped = NULL;
	int r;

	if (echo_holds(set, f->name.p, f->name.len)) {
		echo_note(echo, secret_name, sizeof(secret_name) - 1, true);
		return 0;
	}
	if (set->param != NULL && (k = url_field_kind(f->name.p, f->name.len)) != URL_NONE) {
		if ((r = url_field_strip(k, v, vlen, set->param, &stripped, &slen)) < 0)
			return r;
		if (r > 0) {
			v = stripped;
			vlen = slen;
		}
	}
	if (echo_holds(set, v, vlen)) {
		echo_note(echo, f->name.p, f->name.len, true);
		r = 0;
		goto out;
	}
	if (stripped != NULL)
		echo_note(echo, f->name.p, f->name.len, false);
	r = CG_ERR_NOMEM;
	if (evbuffer_add(b, f->name.p, f->name.len) != 0 ||
	    evbuffer_add(b, ": ", 2) != 0 ||
	    evbuffer_add(b, v, vlen) != 0 ||
	    evbuffer_add(b, "\r\n", 2) != 0)
		goto out;
	r = 0;
 out:
	if (stripped != NULL)
		secmem_free(stripped);	/* wipes */
	return r;
}

/* ------------------------------------------------------------------ */
/* The response head                                                   */
/* ------------------------------------------------------------------ */

int
inj_http_echo_set_new(const struct inj_http_cfg *cfg, const struct inj_cred *cred,
    struct inj_http_echo_set **out)
{
	struct inj_http_echo_set *set;
	int r;

	*out = NULL;
	if ((set = calloc(1, sizeof(*set))) == NULL)
		return CG_ERR_NOMEM;
	if ((r = echo_set_build(set, cfg, cred)) != 0) {
		free(set);
		return r;
	}
	*out = set;
	return 0;
}

void
inj_http_echo_set_free(struct inj_http_echo_set *set)
{
	if (set == NULL)
		return;
	echo_set_free(set);	/* wipes */
	free(set);
}

int
inj_http_write_response(const struct http_head *resp, enum inj_http_framing framing,
    unsigned long long content_length, bool close, const char *request_id,
    const struct inj_http_cfg *cfg, const struct inj_cred *cred,
    struct inj_echo *echo, struct evbuffer *out)
{
	struct inj_http_echo_set *set = NULL;
	int r;

	if (echo != NULL)
		memset(echo, 0, sizeof(*echo));
	if (cfg != NULL && cred != NULL && (r = inj_http_echo_set_new(cfg, cred, &set)) != 0)
		return r;
	r = inj_http_write_response_set(resp, framing, content_length, close, request_id,
	    set, echo, out);
	inj_http_echo_set_free(set);
	return r;
}

int
inj_http_write_response_set(const struct http_head *resp, enum inj_http_framing framing,
    unsigned long long content_length, bool close, const char *request_id,
    const struct inj_http_echo_set *setp, struct inj_echo *echo, struct evbuffer *out)
{
	static const struct inj_http_echo_set none;
	const struct inj_http_echo_set *set = setp != NULL ? setp : &none;
	char status[] = "HTTP/1.1 000 ";
	struct evbuffer *tmp = NULL;
	struct conn_fields cf;
	size_t i;
	int r;
	/* A response without a body (HEAD, 304) keeps the upstream's
	 * Content-Length, which describes the representation; 1xx and 204
	 * must not carry one. */
	bool keep_cl = framing == INJ_FRAMING_NONE && resp->status / 100 != 1 &&
	    resp->status != 204;

	if (echo != NULL)
		memset(echo, 0, sizeof(*echo));
	if (request_id != NULL && !ctx_string_ok(request_id))
		return CG_ERR_FORMAT;
	if (resp->status < 100 || resp->status > 999)
		return CG_ERR_FORMAT;	/* the parser admits three digits only */
	conn_fields_find(resp, &cf);
	r = CG_ERR_NOMEM;
	if ((tmp = evbuffer_new()) == NULL)
		goto out;
	status[9] = (char)('0' + resp->status / 100);
	status[10] = (char)('0' + resp->status / 10 % 10);
	status[11] = (char)('0' + resp->status % 10);
	if (evbuffer_add(tmp, status, 13) != 0)
		goto out;
	if (echo_holds(set, resp->reason.p, resp->reason.len))
		echo_note(echo, reason_phrase_name, sizeof(reason_phrase_name) - 1, true);
	else if (evbuffer_add(tmp, resp->reason.p, resp->reason.len) != 0)
		goto out;
	if (evbuffer_add(tmp, "\r\n", 2) != 0)
		goto out;
	for (i = 0; i < resp->nfields; i++) {
		const struct http_field *f = &resp->fields[i];

		if (f->drop || inj_http_is_hop_by_hop(f->name.p, f->name.len) ||
		    name_is(f->name.p, f->name.len, "Transfer-Encoding") ||
		    (!keep_cl && name_is(f->name.p, f->name.len, "Content-Length")) ||
		    (request_id != NULL &&
		    name_is(f->name.p, f->name.len, "X-Request-Id")) ||
		    named_in_connection(&cf, f))
			continue;
		if ((r = add_response_field(tmp, f, set, echo)) != 0)
			goto out;
	}
	r = CG_ERR_NOMEM;
	if (request_id != NULL &&
	    add_strs(tmp, "X-Request-Id: ", request_id, "\r\n", NULL) != 0)
		goto out;
	if (framing == INJ_FRAMING_LENGTH) {
		if (add_content_length(tmp, content_length) != 0)
			goto out;
	} else if (framing == INJ_FRAMING_CHUNKED) {
		if (evbuffer_add(tmp, "Transfer-Encoding: chunked\r\n", 28) != 0)
			goto out;
	}
	/* A body that ends with the connection needs the connection to end. */
	if ((close || framing == INJ_FRAMING_CLOSE) &&
	    evbuffer_add(tmp, "Connection: close\r\n", 19) != 0)
		goto out;
	if (evbuffer_add(tmp, "\r\n", 2) != 0)
		goto out;
	if (evbuffer_add_buffer(out, tmp) != 0)
		goto out;
	r = 0;
 out:
	if (tmp != NULL)
		evbuffer_free(tmp);
	if (r != 0 && echo != NULL)
		memset(echo, 0, sizeof(*echo));
	return r;
}
