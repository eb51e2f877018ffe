/*
 * pg_parse.c: the PostgreSQL wire protocol (version 3) apart from I/O:
 * the parsers of what a caller sends before login and of what a server
 * answers while it logs credgate in, and the writers of the messages
 * credgate sends either way.  Owns no state; never touches a socket and
 * never copies a byte of a password anywhere but the output it is given.
 */
#include "config.h"

#include <string.h>

#include <event2/buffer.h>

#include "injectors/postgres/pg_parse.h"

static uint32_t
get32(const char *p)
{
	const unsigned char *u = (const unsigned char *)p;

	return (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 | u[3];
}

static void
put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

static int
pg_fail(struct inj_pg_error *err, const char *sqlstate, const char *reason)
{
	err->sqlstate = sqlstate;
	err->reason = reason;
	return INJ_PG_ERROR;
}

/*
 * The next NUL-terminated string of [*p, end): its span, *p past its NUL.
 * False when no NUL comes before end.
 */
static bool
next_str(const char **p, const char *end, struct inj_pg_str *s)
{
	const char *nul = memchr(*p, '\0', (size_t)(end - *p));

	if (nul == NULL)
		return false;
	s->p = *p;
	s->len = (size_t)(nul - *p);
	*p = nul + 1;
	return true;
}

static bool
str_case_eq(const struct inj_pg_str *a, const struct inj_pg_str *b)
{
	return cg_strcase_eq(a->p, a->len, b->p, b->len);
}

static int
parse_params(const char *p, const char *end, struct inj_pg_startup *out,
    struct inj_pg_error *err)
{
	struct inj_pg_param *pa;
	size_t i;

	for (;;) {
		if (p >= end)
			return pg_fail(err, "08P01",
			    "invalid startup packet layout: expected terminator as last byte");
		if (*p == '\0') {
			if (p + 1 != end)
				return pg_fail(err, "08P01",
				    "invalid startup packet layout: bytes after the terminator");
			break;
		}
		if (out->nparams == INJ_PG_PARAMS_MAX)
			return pg_fail(err, "08P01", "too many startup parameters");
		pa = &out->params[out->nparams];
		if (!next_str(&p, end, &pa->name) || !next_str(&p, end, &pa->value))
			return pg_fail(err, "08P01",
			    "invalid startup packet layout: expected terminator as last byte");
		for (i = 0; i < out->nparams; i++)
			if (str_case_eq(&out->params[i].name, &pa->name))
				return pg_fail(err, "08P01", "startup parameter given twice");
		out->nparams++;
	}
	if (inj_pg_startup_param(out, "user") == NULL)
		return pg_fail(err, "28000", "no PostgreSQL user name specified in startup packet");
	return INJ_PG_DONE;
}

int
inj_pg_parse_startup(const char *buf, size_t len, size_t max, struct inj_pg_startup *out,
    struct inj_pg_error *err)
{
	uint32_t plen, code;

	memset(out, 0, sizeof(*out));
	if (len < 8)
		return INJ_PG_NEED_MORE;
	plen = get32(buf);
	code = get32(buf + 4);
	if (plen < 8 || plen > max)
		return pg_fail(err, "08P01", "invalid length of startup packet");
	if (len < plen)
		return INJ_PG_NEED_MORE;
	out->len = plen;
	switch (code) {
	case INJ_PG_SSL_CODE:
	case INJ_PG_GSSENC_CODE:
		if (plen != 8)
			return pg_fail(err, "08P01", "invalid length of startup packet");
		out->kind = code == INJ_PG_SSL_CODE ? INJ_PG_SSL_REQUEST : INJ_PG_GSSENC_REQUEST;
		return INJ_PG_DONE;
	case INJ_PG_CANCEL_CODE:
		if (plen < 16 || plen - 12 > INJ_PG_KEY_MAX)
			return pg_fail(err, "08P01", "invalid length of cancel request");
		out->kind = INJ_PG_CANCEL_REQUEST;
		out->pid = get32(buf + 8);
		out->key.p = buf + 12;
		out->key.len = plen - 12;
		return INJ_PG_DONE;
	}
	out->kind = INJ_PG_STARTUP;
	out->major = code >> 16;
	out->minor = code & 0xffff;
	if (out->major != INJ_PG_MAJOR)
		return pg_fail(err, "0A000", "unsupported frontend protocol: only 3.0 to 3.2");
	return parse_params(buf + 8, buf + plen, out, err);
}

const struct inj_pg_str *
inj_pg_startup_param(const struct inj_pg_startup *s, const char *name)
{
	size_t i, n = strlen(name);

	for (i = 0; i < s->nparams; i++)
		if (s->params[i].name.len == n && memcmp(s->params[i].name.p, name, n) == 0)
			return &s->params[i].value;
	return NULL;
}

const char *const inj_pg_startup_allow_default[] = {
	"application_name", "client_encoding", "DateStyle", "TimeZone", "IntervalStyle",
	"extra_float_digits", NULL,
};

/* Names that say who the session is or how it starts: never the caller's. */
static const char *const startup_never[] = {
	"user", "database", "options", "replication", NULL,
};

static bool
name_in(const struct inj_pg_str *name, const char *const *list)
{
	size_t i;

	for (i = 0; list != NULL && list[i] != NULL; i++)
		if (cg_strcase_eq(name->p, name->len, list[i], strlen(list[i])))
			return true;
	return false;
}

size_t
inj_pg_startup_upstream(const struct inj_pg_startup *in, const char *const *allow,
    const char *user, const char *database, struct inj_pg_param *out,
    struct inj_pg_str *unknown, size_t *nunknown)
{
	const struct inj_pg_param *pa;
	size_t i, n = 0;

	*nunknown = 0;
	out[n].name = (struct inj_pg_str){ "user", 4 };
	out[n++].value = (struct inj_pg_str){ user, strlen(user) };
	if (database != NULL) {
		out[n].name = (struct inj_pg_str){ "database", 8 };
		out[n++].value = (struct inj_pg_str){ database, strlen(database) };
	}
	for (i = 0; i < in->nparams; i++) {
		pa = &in->params[i];
		if (pa->name.len >= 5 && memcmp(pa->name.p, "_pq_.", 5) == 0) {
			unknown[(*nunknown)++] = pa->name;
			continue;
		}
		if (name_in(&pa->name, startup_never) || !name_in(&pa->name, allow) ||
		    n == INJ_PG_PARAMS_MAX)
			continue;
		out[n++] = *pa;
	}
	return n;
}

int
inj_pg_parse_msg(const char *buf, size_t len, size_t max, struct inj_pg_msg *out,
    struct inj_pg_error *err)
{
	uint32_t mlen;

	memset(out, 0, sizeof(*out));
	if (len < 5)
		return INJ_PG_NEED_MORE;
	mlen = get32(buf + 1);
	if (mlen < 4 || (size_t)mlen + 1 > max)
		return pg_fail(err, "08P01", "invalid message length");
	if (len < (size_t)mlen + 1)
		return INJ_PG_NEED_MORE;
	out->type = buf[0];
	out->body.p = buf + 5;
	out->body.len = mlen - 4;
	out->len = (size_t)mlen + 1;
	return INJ_PG_DONE;
}

/* The body is exactly one NUL-terminated string. */
static int
one_str(const struct inj_pg_msg *m, struct inj_pg_str *s)
{
	const char *p = m->body.p, *end = m->body.p + m->body.len;

	return next_str(&p, end, s) && p == end ? 0 : CG_ERR_FORMAT;
}

int
inj_pg_password(const struct inj_pg_msg *m, struct inj_pg_str *pw, struct inj_pg_error *err)
{
	memset(pw, 0, sizeof(*pw));
	if (m->type != 'p' || one_str(m, pw) != 0) {
		(void)pg_fail(err, "08P01", "invalid password packet");
		return CG_ERR_FORMAT;
	}
	return 0;
}

int
inj_pg_parse_auth(const struct inj_pg_msg *m, struct inj_pg_auth *out,
    struct inj_pg_error *err)
{
	const char *p, *end = m->body.p + m->body.len;
	struct inj_pg_str mech;

	memset(out, 0, sizeof(*out));
	if (m->type != 'R' || m->body.len < 4)
		goto bad;
	out->code = get32(m->body.p);
	p = m->body.p + 4;
	switch (out->code) {
	case INJ_PG_AUTH_OK:
	case INJ_PG_AUTH_CLEARTEXT:
		if (p != end)
			goto bad;
		break;
	case INJ_PG_AUTH_MD5:
		if (end - p != 4)
			goto bad;
		memcpy(out->salt, p, 4);
		break;
	case INJ_PG_AUTH_SASL:
		for (;;) {
			if (p >= end)
				goto bad;
			if (*p == '\0') {
				if (p + 1 != end)
					goto bad;
				break;
			}
			if (!next_str(&p, end, &mech))
				goto bad;
			if (mech.len == 13 && memcmp(mech.p, "SCRAM-SHA-256", 13) == 0)
				out->scram_sha256 = true;
			else if (mech.len == 18 && memcmp(mech.p, "SCRAM-SHA-256-PLUS", 18) == 0)
				out->scram_sha256_plus = true;
		}
		break;
	case INJ_PG_AUTH_SASL_CONTINUE:
	case INJ_PG_AUTH_SASL_FINAL:
		out->data.p = p;
		out->data.len = (size_t)(end - p);
		break;
	default:
		break;		/* the caller refuses what it does not know */
	}
	return 0;
 bad:
	(void)pg_fail(err, "08P01", "invalid authentication request from the server");
	return CG_ERR_FORMAT;
}

int
inj_pg_parse_notice(const struct inj_pg_msg *m, struct inj_pg_notice *out,
    struct inj_pg_error *err)
{
	const char *p = m->body.p, *end = m->body.p + m->body.len;
	struct inj_pg_str v, sev = { NULL, 0 };
	char code;

	memset(out, 0, sizeof(*out));
	if (m->type != 'E' && m->type != 'N')
		goto bad;
	for (;;) {
		if (p >= end)
			goto bad;
		if ((code = *p++) == '\0') {
			if (p != end)
				goto bad;
			break;
		}
		if (!next_str(&p, end, &v))
			goto bad;
		switch (code) {
		case 'S':
			sev = v;
			break;
		case 'V':
			out->severity = v;
			break;
		case 'C':
			out->sqlstate = v;
			break;
		case 'M':
			out->message = v;
			break;
		default:
			break;
		}
	}
	if (out->severity.p == NULL)
		out->severity = sev;
	return 0;
 bad:
	(void)pg_fail(err, "08P01", "invalid error message from the server");
	return CG_ERR_FORMAT;
}

int
inj_pg_parse_key(const struct inj_pg_msg *m, uint32_t *pid, struct inj_pg_str *key,
    struct inj_pg_error *err)
{
	*pid = 0;
	memset(key, 0, sizeof(*key));
	if (m->type != 'K' || m->body.len < 8 || m->body.len - 4 > INJ_PG_KEY_MAX) {
		(void)pg_fail(err, "08P01", "invalid cancel key from the server");
		return CG_ERR_FORMAT;
	}
	*pid = get32(m->body.p);
	key->p = m->body.p + 4;
	key->len = m->body.len - 4;
	return 0;
}

int
inj_pg_parse_param_status(const struct inj_pg_msg *m, struct inj_pg_str *name,
    struct inj_pg_str *value, struct inj_pg_error *err)
{
	const char *p = m->body.p, *end = m->body.p + m->body.len;

	if (m->type != 'S' || !next_str(&p, end, name) || !next_str(&p, end, value) ||
	    p != end) {
		(void)pg_fail(err, "08P01", "invalid parameter status from the server");
		return CG_ERR_FORMAT;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Writers                                                             */
/* ------------------------------------------------------------------ */

/*
 * Appends a message of type (0: a startup packet, which has none) whose
 * body is the n pieces given, all at once: nothing is left half written.
 */
struct piece {
	const void *p;
	size_t len;
};

static int
pg_put(struct evbuffer *out, char type, const struct piece *pc, size_t n)
{
	unsigned char hdr[5];
	size_t i, body = 0, h = 0;
	struct evbuffer *tmp;
	int r = 0;

	for (i = 0; i < n; i++)
		body += pc[i].len;
	if (body > 0x3fffffff)
		return CG_ERR_FORMAT;
	if (type != 0)
		hdr[h++] = (unsigned char)type;
	put32(hdr + h, (uint32_t)(body + 4));
	h += 4;
	if ((tmp = evbuffer_new()) == NULL)
		return CG_ERR_NOMEM;
	if (evbuffer_add(tmp, hdr, h) != 0)
		r = CG_ERR_NOMEM;
	for (i = 0; r == 0 && i < n; i++)
		if (pc[i].len > 0 && evbuffer_add(tmp, pc[i].p, pc[i].len) != 0)
			r = CG_ERR_NOMEM;
	if (r == 0 && evbuffer_add_buffer(out, tmp) != 0)
		r = CG_ERR_NOMEM;
	/* What passed through may be a password. */
	while (evbuffer_get_length(tmp) > 0) {
		struct evbuffer_iovec v;

		if (evbuffer_peek(tmp, -1, NULL, &v, 1) < 1)
			break;
		cg_wipe(v.iov_base, v.iov_len);
		evbuffer_drain(tmp, v.iov_len);
	}
	evbuffer_free(tmp);
	return r;
}

static bool
has_nul(const char *s, size_t n)
{
	return memchr(s, '\0', n) != NULL;
}

int
inj_pg_write_error(struct evbuffer *out, const char *severity, const char *sqlstate,
    const char *message)
{
	struct piece pc[] = {
		{ "S", 1 }, { severity, strlen(severity) + 1 },
		{ "V", 1 }, { severity, strlen(severity) + 1 },
		{ "C", 1 }, { sqlstate, strlen(sqlstate) + 1 },
		{ "M", 1 }, { message, strlen(message) + 1 },
		{ "", 1 },
	};

	if (strlen(sqlstate) != 5)
		return CG_ERR_FORMAT;
	return pg_put(out, 'E', pc, sizeof(pc) / sizeof(pc[0]));
}

int
inj_pg_write_auth(struct evbuffer *out, uint32_t code, const void *data, size_t len)
{
	unsigned char c[4];
	struct piece pc[] = { { c, 4 }, { data, data != NULL ? len : 0 } };

	put32(c, code);
	return pg_put(out, 'R', pc, 2);
}

int
inj_pg_write_negotiate(struct evbuffer *out, unsigned minor,
    const struct inj_pg_str *options, size_t noptions)
{
	struct piece pc[2 + 2 * INJ_PG_PARAMS_MAX];
	unsigned char v[4], n[4];
	size_t i, k = 0;

	if (noptions > INJ_PG_PARAMS_MAX)
		return CG_ERR_FORMAT;
	put32(v, minor);
	put32(n, (uint32_t)noptions);
	pc[k++] = (struct piece){ v, 4 };
	pc[k++] = (struct piece){ n, 4 };
	for (i = 0; i < noptions; i++) {
		if (has_nul(options[i].p, options[i].len))
			return CG_ERR_FORMAT;
		pc[k++] = (struct piece){ options[i].p, options[i].len };
		pc[k++] = (struct piece){ "", 1 };
	}
	return pg_put(out, 'v', pc, k);
}

int
inj_pg_write_startup(struct evbuffer *out, const struct inj_pg_param *params, size_t nparams)
{
	struct piece pc[2 + 4 * INJ_PG_PARAMS_MAX];
	unsigned char v[4];
	size_t i, k = 0;

	if (nparams > INJ_PG_PARAMS_MAX)
		return CG_ERR_FORMAT;
	put32(v, (uint32_t)INJ_PG_MAJOR << 16);
	pc[k++] = (struct piece){ v, 4 };
	for (i = 0; i < nparams; i++) {
		if (params[i].name.len == 0 || has_nul(params[i].name.p, params[i].name.len) ||
		    has_nul(params[i].value.p, params[i].value.len))
			return CG_ERR_FORMAT;
		pc[k++] = (struct piece){ params[i].name.p, params[i].name.len };
		pc[k++] = (struct piece){ "", 1 };
		pc[k++] = (struct piece){ params[i].value.p, params[i].value.len };
		pc[k++] = (struct piece){ "", 1 };
	}
	pc[k++] = (struct piece){ "", 1 };
	return pg_put(out, 0, pc, k);
}

int
inj_pg_write_password(struct evbuffer *out, const void *pw, size_t len, bool sasl)
{
	struct piece pc[] = { { pw, len }, { "", sasl ? 0 : 1 } };

	if (!sasl && has_nul(pw, len))
		return CG_ERR_FORMAT;
	return pg_put(out, 'p', pc, 2);
}

int
inj_pg_write_sasl_initial(struct evbuffer *out, const char *mechanism, const void *data,
    size_t len)
{
	unsigned char n[4];
	struct piece pc[] = { { mechanism, strlen(mechanism) + 1 }, { n, 4 }, { data, len } };

	if (len > 0x3fffffff)
		return CG_ERR_FORMAT;
	put32(n, (uint32_t)len);
	return pg_put(out, 'p', pc, 3);
}

int
inj_pg_write_query(struct evbuffer *out, const char *sql)
{
	struct piece pc[] = { { sql, strlen(sql) + 1 } };

	return pg_put(out, 'Q', pc, 1);
}

int
inj_pg_write_ssl_request(struct evbuffer *out)
{
	unsigned char c[4];
	struct piece pc[] = { { c, 4 } };

	put32(c, INJ_PG_SSL_CODE);
	return pg_put(out, 0, pc, 1);
}

static int
write_pid_key(struct evbuffer *out, char type, uint32_t code, uint32_t pid,
    const void *key, size_t keylen)
{
	unsigned char c[4], p[4];
	struct piece pc[] = { { c, 4 }, { p, 4 }, { key, keylen } };

	if (keylen < 4 || keylen > INJ_PG_KEY_MAX)
		return CG_ERR_FORMAT;
	put32(c, code);
	put32(p, pid);
	/* A cancel request leads with its code; BackendKeyData has a type. */
	return type == 0 ? pg_put(out, 0, pc, 3) : pg_put(out, type, pc + 1, 2);
}

int
inj_pg_write_cancel(struct evbuffer *out, uint32_t pid, const void *key, size_t keylen)
{
	return write_pid_key(out, 0, INJ_PG_CANCEL_CODE, pid, key, keylen);
}

int
inj_pg_write_key(struct evbuffer *out, uint32_t pid, const void *key, size_t keylen)
{
	return write_pid_key(out, 'K', 0, pid, key, keylen);
}

int
inj_pg_write_param_status(struct evbuffer *out, const char *name, const char *value)
{
	struct piece pc[] = { { name, strlen(name) + 1 }, { value, strlen(value) + 1 } };

	return pg_put(out, 'S', pc, 2);
}

int
inj_pg_write_ready(struct evbuffer *out, char status)
{
	struct piece pc[] = { { &status, 1 } };

	if (status != 'I' && status != 'T' && status != 'E')
		return CG_ERR_FORMAT;
	return pg_put(out, 'Z', pc, 1);
}
