/*
 * test_pg_front.c: the PostgreSQL front's state machine
 * (injectors/postgres/pg_front.c) on its own, driven through its
 * operations (inj_pg_ops) by a fake engine (fake_host.h).  The protocol
 * is the real one; so are the messages, written by the tests with
 * pg_parse.h's writers and read back with its parsers: what the caller
 * and the upstream receive is asserted message by message.
 *
 * The upstream is played by the test: a login by cleartext password, MD5
 * or SCRAM-SHA-256 (its server side computed here, RFC 5802), then
 * ParameterStatus, BackendKeyData and ReadyForQuery, then queries.
 */
#include "tests/unit/unit.h"

#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "common.h"
#include "injectors/postgres/pg.h"
#include "injectors/postgres/pg_auth.h"
#include "injectors/postgres/pg_parse.h"
#include "tests/unit/fake_host.h"

#define S(lit)		lit, sizeof(lit) - 1

/* The route's credential: what credgate logs in upstream with. */
#define SVC_USER	"svc_ledger"
#define SVC_PASS	"canary-Pa55word"
/* The upstream's own cancel key. */
#define UP_PID		4242u
#define UP_KEY		"UPKY"

/* One test's session: the fake engine, the route's settings, the credential. */
struct t {
	struct fake_host *fh;
	struct inj_pg_cfg cfg;
	struct fh_cred cred;
};

static char *default_params[] = {
	"application_name", "client_encoding", "DateStyle", "TimeZone", "IntervalStyle",
	"extra_float_digits",
};

static struct fake_host *
host_new(struct t *t)
{
	struct fake_host *fh = fh_new(&inj_pg_ops);

	fh->params.cfg = &t->cfg;
	fh->params.tls_offered = true;
	fh->params.max_proof = 4096;
	fh->slot_on = true;
	return fh;
}

static int
setup(void **state)
{
	struct t *t = calloc(1, sizeof(*t));

	assert_non_null(t);
	t->cfg.username_field = "username";
	t->cfg.password_field = "password";
	t->cfg.allow_plaintext_token = true;
	t->cfg.reset_query = "DISCARD ALL";
	t->cfg.startup_parameters = default_params;
	t->cfg.nstartup_parameters = sizeof(default_params) / sizeof(default_params[0]);
	t->cfg.idle_timeout_ms = 3600 * 1000;
	fh_cred_init(&t->cred, SVC_USER, SVC_PASS);
	t->fh = host_new(t);
	*state = t;
	return 0;
}

static int
teardown(void **state)
{
	struct t *t = *state;

	fh_free(t->fh);
	free(t);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Packets and messages                                                */
/* ------------------------------------------------------------------ */

static void
put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

static uint32_t
get32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* A startup packet of code (version or request code) and body (the
 * NUL-separated pairs and their final NUL): into out, its length. */
static size_t
packet(unsigned char *out, size_t size, uint32_t code, const void *body, size_t len)
{
	assert_true(8 + len <= size);
	put32(out, (uint32_t)(8 + len));
	put32(out + 4, code);
	if (len > 0)
		memcpy(out + 8, body, len);
	return 8 + len;
}

#define V3(minor)	(3u << 16 | (minor))

/* The caller sends a StartupMessage 3.minor with kv. */
static void
send_startup(struct t *t, unsigned minor, const char *kv, size_t kvlen)
{
	unsigned char b[1024];
	size_t n = packet(b, sizeof(b), V3(minor), kv, kvlen);

	fh_send(t->fh, INJ_CLIENT, b, n);
	fh_run(t->fh);
}

static void
send_code(struct t *t, uint32_t code)
{
	unsigned char b[8];

	(void)packet(b, sizeof(b), code, NULL, 0);
	fh_send(t->fh, INJ_CLIENT, b, 8);
	fh_run(t->fh);
}

/* Whatever a writer appends to a scratch buffer goes on side's wire. */
static void
send_buf(struct t *t, enum inj_side side, struct evbuffer *b)
{
	size_t n = evbuffer_get_length(b);
	unsigned char *p = evbuffer_pullup(b, (ssize_t)n);

	fh_send(t->fh, side, p, n);
	evbuffer_drain(b, n);
	fh_run(t->fh);
}

static void
send_password(struct t *t, const char *pw, size_t len)
{
	struct evbuffer *b = evbuffer_new();

	assert_int_equal(inj_pg_write_password(b, pw, len, false), 0);
	send_buf(t, INJ_CLIENT, b);
	evbuffer_free(b);
}

/* A message taken whole from the head of b (inj_pg_parse_msg()). */
struct msg {
	char type;
	char body[8192];
	size_t len;		/* of body */
};

static void
take(struct evbuffer *b, struct msg *m)
{
	struct inj_pg_msg pm;
	struct inj_pg_error err;
	size_t avail = evbuffer_get_length(b);
	const char *p;

	assert_true(avail >= 5);
	p = (const char *)evbuffer_pullup(b, (ssize_t)avail);
	assert_int_equal(inj_pg_parse_msg(p, avail, sizeof(m->body) + 5, &pm, &err), INJ_PG_DONE);
	m->type = pm.type;
	m->len = pm.body.len;
	memcpy(m->body, pm.body.p, pm.body.len);
	m->body[m->len] = '\0';
	evbuffer_drain(b, pm.len);
}

static struct inj_pg_msg
as_pg(const struct msg *m)
{
	return (struct inj_pg_msg){ m->type, { m->body, m->len }, m->len + 5 };
}

/* The next message of b is an ErrorResponse, FATAL, of sqlstate; its
 * message text into text (may be NULL). */
static void
expect_fatal(struct evbuffer *b, const char *sqlstate, char *text, size_t size)
{
	struct msg m;
	struct inj_pg_msg pm;
	struct inj_pg_notice n;
	struct inj_pg_error err;

	take(b, &m);
	assert_int_equal(m.type, 'E');
	pm = as_pg(&m);
	assert_int_equal(inj_pg_parse_notice(&pm, &n, &err), 0);
	assert_int_equal(n.severity.len, 5);
	assert_memory_equal(n.severity.p, "FATAL", 5);
	assert_int_equal(n.sqlstate.len, 5);
	assert_memory_equal(n.sqlstate.p, sqlstate, 5);
	if (text != NULL)
		snprintf(text, size, "%.*s", (int)n.message.len, n.message.p);
}

/* The next message of b is an Authentication request of code. */
static void
expect_auth(struct evbuffer *b, uint32_t code)
{
	struct msg m;
	struct inj_pg_msg pm;
	struct inj_pg_auth a;
	struct inj_pg_error err;

	take(b, &m);
	assert_int_equal(m.type, 'R');
	pm = as_pg(&m);
	assert_int_equal(inj_pg_parse_auth(&pm, &a, &err), 0);
	assert_int_equal(a.code, code);
}

static void
expect_empty(struct evbuffer *b)
{
	assert_int_equal(evbuffer_get_length(b), 0);
}

/* The caller's output holds exactly one FATAL of sqlstate, and the
 * session ends without a password asked. */
static void
expect_only_fatal(struct t *t, const char *sqlstate)
{
	expect_fatal(t->fh->out[INJ_CLIENT], sqlstate, NULL, 0);
	expect_empty(t->fh->out[INJ_CLIENT]);
	assert_true(t->fh->ended);
	assert_int_equal(t->fh->proofs, 0);
	assert_int_equal(t->fh->connects, 0);
}

/* The StartupMessage credgate sent upstream, parsed (spans into buf). */
static void
take_upstream_startup(struct t *t, char *buf, size_t size, struct inj_pg_startup *su)
{
	struct evbuffer *out = t->fh->out[INJ_UPSTREAM];
	struct inj_pg_error err;
	unsigned char hdr[4];
	size_t len;

	assert_int_equal(evbuffer_copyout(out, hdr, 4), 4);
	len = get32(hdr);
	assert_true(len <= size && len <= evbuffer_get_length(out));
	assert_int_equal(evbuffer_remove(out, buf, len), (int)len);
	assert_int_equal(inj_pg_parse_startup(buf, len, INJ_PG_STARTUP_MAX, su, &err),
	    INJ_PG_DONE);
	assert_int_equal(su->kind, INJ_PG_STARTUP);
}

static void
expect_param(const struct inj_pg_startup *su, const char *name, const char *value)
{
	const struct inj_pg_str *v = inj_pg_startup_param(su, name);

	if (value == NULL) {
		assert_null(v);
		return;
	}
	assert_non_null(v);
	assert_int_equal(v->len, strlen(value));
	assert_memory_equal(v->p, value, v->len);
}

/* ------------------------------------------------------------------ */
/* The upstream, played by the test                                    */
/* ------------------------------------------------------------------ */

static void
up_auth(struct t *t, uint32_t code, const void *data, size_t len)
{
	struct evbuffer *b = evbuffer_new();

	assert_int_equal(inj_pg_write_auth(b, code, data, len), 0);
	send_buf(t, INJ_UPSTREAM, b);
	evbuffer_free(b);
}

static void
up_raw(struct t *t, const void *data, size_t len)
{
	fh_send(t->fh, INJ_UPSTREAM, data, len);
	fh_run(t->fh);
}

/* AuthenticationOk, two parameters, its key, ReadyForQuery (idle). */
static void
up_ok_ready(struct t *t)
{
	struct evbuffer *b = evbuffer_new();

	assert_int_equal(inj_pg_write_auth(b, INJ_PG_AUTH_OK, NULL, 0), 0);
	assert_int_equal(inj_pg_write_param_status(b, "server_version", "17.2"), 0);
	assert_int_equal(inj_pg_write_param_status(b, "client_encoding", "UTF8"), 0);
	assert_int_equal(inj_pg_write_key(b, UP_PID, UP_KEY, 4), 0);
	assert_int_equal(inj_pg_write_ready(b, 'I'), 0);
	send_buf(t, INJ_UPSTREAM, b);
	evbuffer_free(b);
}

/* The caller's greeting after a login: AuthenticationOk, the server's
 * parameters, credgate's own key (into pid and key, 4 bytes), idle. */
static void
expect_greeting(struct t *t, uint32_t *pid, unsigned char key[4])
{
	struct evbuffer *out = t->fh->out[INJ_CLIENT];
	struct inj_pg_str a, b, k;
	struct inj_pg_error err;
	struct inj_pg_msg pm;
	struct msg m;

	expect_auth(out, INJ_PG_AUTH_OK);
	take(out, &m);
	pm = as_pg(&m);
	assert_int_equal(m.type, 'S');
	assert_int_equal(inj_pg_parse_param_status(&pm, &a, &b, &err), 0);
	assert_string_equal(a.p, "server_version");
	assert_string_equal(b.p, "17.2");
	take(out, &m);
	pm = as_pg(&m);
	assert_int_equal(m.type, 'S');
	assert_int_equal(inj_pg_parse_param_status(&pm, &a, &b, &err), 0);
	assert_string_equal(a.p, "client_encoding");
	assert_string_equal(b.p, "UTF8");
	take(out, &m);
	pm = as_pg(&m);
	assert_int_equal(m.type, 'K');
	assert_int_equal(inj_pg_parse_key(&pm, pid, &k, &err), 0);
	assert_int_equal(k.len, 4);
	memcpy(key, k.p, 4);
	/* credgate's key, never the upstream's. */
	assert_int_not_equal(*pid, UP_PID);
	assert_memory_not_equal(key, UP_KEY, 4);
	take(out, &m);
	assert_int_equal(m.type, 'Z');
	assert_int_equal(m.len, 1);
	assert_int_equal(m.body[0], 'I');
	expect_empty(out);
}

static const char q_select[] = "Q\0\0\0\x0d" "select 1\0";
static const char up_answer[] =
    "T\0\0\0\x21" "\0\x01" "?column?\0" "\0\0\0\0" "\0\0" "\0\0\0\x17" "\0\x04" "\xff\xff\xff\xff"
    "\0\0"
    "D\0\0\0\x0b" "\0\x01" "\0\0\0\x01" "1"
    "C\0\0\0\x0d" "SELECT 1\0"
    "Z\0\0\0\x05" "I";

static void
expect_bytes(struct evbuffer *b, const void *want, size_t len)
{
	size_t n = evbuffer_get_length(b);

	assert_int_equal(n, len);
	assert_memory_equal(evbuffer_pullup(b, (ssize_t)n), want, len);
	evbuffer_drain(b, n);
}

/* ------------------------------------------------------------------ */
/* Logins, as far as a test needs them                                 */
/* ------------------------------------------------------------------ */

#define CALLER_KV	"user\0ci\0database\0ledger\0application_name\0app\0\0"

/* start(), the caller's StartupMessage: the password is asked. */
static void
to_password(struct t *t)
{
	assert_int_equal(fh_start(t->fh), 0);
	send_startup(t, 0, S(CALLER_KV));
	expect_auth(t->fh->out[INJ_CLIENT], INJ_PG_AUTH_CLEARTEXT);
	expect_empty(t->fh->out[INJ_CLIENT]);
}

/* ... and the token: the engine decides. */
static void
to_decide(struct t *t)
{
	to_password(t);
	send_password(t, S("tok.en.jwt"));
	assert_int_equal(t->fh->proofs, 1);
	assert_true(t->fh->deciding);
}

/* ... allowed, connected: the upstream has credgate's StartupMessage. */
static void
to_login(struct t *t)
{
	char buf[1024];
	struct inj_pg_startup su;

	to_decide(t);
	assert_true(fh_allow(t->fh, &t->cred.cred));
	assert_int_equal(t->fh->connects, 1);
	assert_true(fh_connected(t->fh, true, NULL));
	take_upstream_startup(t, buf, sizeof(buf), &su);
	expect_empty(t->fh->out[INJ_UPSTREAM]);
}

/* ... the upstream logs credgate in with a cleartext password: relaying,
 * the caller's key in pid and key. */
static void
to_relay(struct t *t, uint32_t *pid, unsigned char key[4])
{
	struct msg m;

	to_login(t);
	up_auth(t, INJ_PG_AUTH_CLEARTEXT, NULL, 0);
	take(t->fh->out[INJ_UPSTREAM], &m);
	assert_int_equal(m.type, 'p');
	assert_string_equal(m.body, SVC_PASS);
	up_ok_ready(t);
	expect_greeting(t, pid, key);
	assert_int_equal(t->fh->answers, 1);
	assert_int_equal(t->fh->answered_status, 200);
	assert_int_equal(t->fh->counts[INJ_COUNT_LOGIN_OK], 1);
	assert_int_equal(t->fh->reading[INJ_CLIENT], INJ_READ_ON);
	assert_int_equal(t->fh->reading[INJ_UPSTREAM], INJ_READ_ON);
}

/* ------------------------------------------------------------------ */
/* The caller's startup                                                */
/* ------------------------------------------------------------------ */

static void
test_startup_whole(void **state)
{
	struct t *t = *state;

	assert_int_equal(fh_start(t->fh), 0);
	assert_int_equal(t->fh->reading[INJ_CLIENT], INJ_READ_ON);
	assert_int_equal(t->fh->armed_ms, t->fh->params.header_timeout_ms);
	send_startup(t, 0, S("user\0ci\0database\0ledger\0\0"));
	expect_auth(t->fh->out[INJ_CLIENT], INJ_PG_AUTH_CLEARTEXT);
	expect_empty(t->fh->out[INJ_CLIENT]);
	assert_int_equal(t->fh->begins, 1);
	assert_int_equal(t->fh->nattrs, INJ_PG_NATTRS);
	assert_string_equal(t->fh->database, "ledger");
	assert_string_equal(t->fh->user, "ci");
	assert_false(t->fh->ended);
	expect_empty(t->fh->out[INJ_UPSTREAM]);
	assert_int_equal(t->fh->connects, 0);
}

static void
test_startup_bytewise(void **state)
{
	struct t *t = *state;
	unsigned char b[256];
	size_t n, i;

	assert_int_equal(fh_start(t->fh), 0);
	/* No database: PostgreSQL's default is the user's name. */
	n = packet(b, sizeof(b), V3(0), S("user\0ci\0application_name\0x\0\0"));
	for (i = 0; i < n; i++) {
		expect_empty(t->fh->out[INJ_CLIENT]);
		assert_int_equal(t->fh->begins, 0);
		fh_send(t->fh, INJ_CLIENT, b + i, 1);
		fh_run(t->fh);
	}
	expect_auth(t->fh->out[INJ_CLIENT], INJ_PG_AUTH_CLEARTEXT);
	expect_empty(t->fh->out[INJ_CLIENT]);
	assert_int_equal(t->fh->begins, 1);
	assert_string_equal(t->fh->database, "ci");
	assert_string_equal(t->fh->user, "ci");
	assert_false(t->fh->ended);
}

static void
test_ssl_request_offered(void **state)
{
	struct t *t = *state;
	char c;

	assert_int_equal(fh_start(t->fh), 0);
	send_code(t, INJ_PG_SSL_CODE);
	assert_int_equal(evbuffer_get_length(t->fh->out[INJ_CLIENT]), 1);
	assert_int_equal(evbuffer_remove(t->fh->out[INJ_CLIENT], &c, 1), 1);
	assert_int_equal(c, 'S');
	assert_int_equal(t->fh->start_tls[INJ_CLIENT], 1);
	assert_true(t->fh->params.tls);
	/* Over TLS, the startup goes on. */
	t->cfg.allow_plaintext_token = false;
	assert_true(fh_tls_done(t->fh, INJ_CLIENT));
	send_startup(t, 0, S("user\0ci\0\0"));
	expect_auth(t->fh->out[INJ_CLIENT], INJ_PG_AUTH_CLEARTEXT);
	expect_empty(t->fh->out[INJ_CLIENT]);
	assert_int_equal(t->fh->denies, 0);
}

static void
test_ssl_request_not_offered(void **state)
{
	struct t *t = *state;
	unsigned char b[256];
	size_t n;
	char c;

	t->fh->params.tls_offered = false;
	assert_int_equal(fh_start(t->fh), 0);
	/* The request and the startup after its answer in one read. */
	n = packet(b, sizeof(b), INJ_PG_SSL_CODE, NULL, 0);
	n += packet(b + n, sizeof(b) - n, V3(0), S("user\0ci\0\0"));
	fh_send(t->fh, INJ_CLIENT, b, n);
	fh_run(t->fh);
	assert_int_equal(evbuffer_remove(t->fh->out[INJ_CLIENT], &c, 1), 1);
	assert_int_equal(c, 'N');
	expect_auth(t->fh->out[INJ_CLIENT], INJ_PG_AUTH_CLEARTEXT);
	expect_empty(t->fh->out[INJ_CLIENT]);
	assert_int_equal(t->fh->start_tls[INJ_CLIENT], 0);
	assert_false(t->fh->params.tls);
}

static void
test_ssl_request_then_bytes(void **state)
{
	struct t *t = *state;
	unsigned char b[256];
	size_t n;

	assert_int_equal(fh_start(t->fh), 0);
	n = packet(b, sizeof(b), INJ_PG_SSL_CODE, NULL, 0);
	n += packet(b + n, sizeof(b) - n, V3(0), S("user\0ci\0\0"));
	fh_send(t->fh, INJ_CLIENT, b, n);
	fh_run(t->fh);
	/* Bytes that would pass as if they came over TLS: refused. */
	expect_only_fatal(t, "08P01");
	assert_int_equal(t->fh->start_tls[INJ_CLIENT], 0);
	assert_int_equal(t->fh->refusals, 1);
	assert_int_equal(t->fh->refused_status, 400);
	assert_int_equal(t->fh->finishes, 1);
}

static void
test_ssl_request_twice(void **state)
{
	struct t *t = *state;
	char c;

	assert_int_equal(fh_start(t->fh), 0);
	send_code(t, INJ_PG_SSL_CODE);
	assert_true(fh_tls_done(t->fh, INJ_CLIENT));
	assert_int_equal(evbuffer_remove(t->fh->out[INJ_CLIENT], &c, 1), 1);
	send_code(t, INJ_PG_SSL_CODE);
	expect_only_fatal(t, "08P01");
}

static void
test_gssenc_request(void **state)
{
	struct t *t = *state;
	char c;

	assert_int_equal(fh_start(t->fh), 0);
	send_code(t, INJ_PG_GSSENC_CODE);
	assert_int_equal(evbuffer_get_length(t->fh->out[INJ_CLIENT]), 1);
	assert_int_equal(evbuffer_remove(t->fh->out[INJ_CLIENT], &c, 1), 1);
	assert_int_equal(c, 'N');
	/* libpq then asks for SSL, then starts up. */
	send_code(t, INJ_PG_SSL_CODE);
	assert_int_equal(evbuffer_remove(t->fh->out[INJ_CLIENT], &c, 1), 1);
	assert_int_equal(c, 'S');
	assert_true(fh_tls_done(t->fh, INJ_CLIENT));
	send_startup(t, 0, S("user\0ci\0\0"));
	expect_auth(t->fh->out[INJ_CLIENT], INJ_PG_AUTH_CLEARTEXT);
	assert_false(t->fh->ended);
}

static void
test_direct_tls(void **state)
{
	struct t *t = *state;
	static const unsigned char hello[] = { 0x16, 0x03, 0x01, 0x00, 0x20 };

	assert_int_equal(fh_start(t->fh), 0);
	fh_send(t->fh, INJ_CLIENT, hello, sizeof(hello));
	fh_run(t->fh);
	assert_int_equal(t->fh->start_tls[INJ_CLIENT], 1);
	expect_empty(t->fh->out[INJ_CLIENT]);
	assert_false(t->fh->ended);
	assert_true(fh_tls_done(t->fh, INJ_CLIENT));
	send_startup(t, 0, S("user\0ci\0\0"));
	expect_auth(t->fh->out[INJ_CLIENT], INJ_PG_AUTH_CLEARTEXT);
}

static void
test_direct_tls_not_offered(void **state)
{
	struct t *t = *state;
	static const unsigned char hello[] = { 0x16, 0x03, 0x01, 0x00, 0x20 };

	t->fh->params.tls_offered = false;
	assert_int_equal(fh_start(t->fh), 0);
	fh_send(t->fh, INJ_CLIENT, hello, sizeof(hello));
	fh_run(t->fh);
	assert_int_equal(t->fh->start_tls[INJ_CLIENT], 0);
	assert_int_equal(t->fh->closes, 1);
	assert_string_equal(t->fh->end_reason, "tls_not_offered");
	expect_empty(t->fh->out[INJ_CLIENT]);
}

/* Startup packets refused, with their SQLSTATE. */
static void
test_startup_refused(void **state)
{
	static const struct {
		const char *name;
		uint32_t code;
		const char *kv;
		size_t kvlen;
		const char *sqlstate;
		int status;
	} cases[] = {
		{ "protocol 2.0", 2u << 16, S("user\0ci\0\0"), "0A000", 400 },
		{ "protocol 4.0", 4u << 16, S("user\0ci\0\0"), "0A000", 400 },
		{ "parameter twice", V3(0), S("user\0ci\0options\0a\0OPTIONS\0b\0\0"), "08P01",
		  400 },
		{ "user twice", V3(0), S("user\0ci\0user\0postgres\0\0"), "08P01", 400 },
		{ "no user", V3(0), S("database\0ledger\0\0"), "28000", 403 },
		{ "no terminator", V3(0), S("user\0ci\0"), "08P01", 400 },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct t *t;
		unsigned char b[256];
		size_t n;

		assert_int_equal(setup((void **)&t), 0);
		assert_int_equal(fh_start(t->fh), 0);
		n = packet(b, sizeof(b), cases[i].code, cases[i].kv, cases[i].kvlen);
		fh_send(t->fh, INJ_CLIENT, b, n);
		fh_run(t->fh);
		expect_only_fatal(t, cases[i].sqlstate);
		assert_int_equal(t->fh->refused_status, cases[i].status);
		assert_int_equal(t->fh->begins, 0);
		teardown((void **)&t);
	}
}

static void
test_startup_too_long(void **state)
{
	struct t *t = *state;
	unsigned char b[8];

	assert_int_equal(fh_start(t->fh), 0);
	put32(b, INJ_PG_STARTUP_MAX + 1);
	put32(b + 4, V3(0));
	fh_send(t->fh, INJ_CLIENT, b, 8);
	fh_run(t->fh);
	expect_only_fatal(t, "08P01");
}

/* A NegotiateProtocolVersion: newest minor, the options named. */
static void
expect_negotiate(struct evbuffer *b, unsigned minor, const char *option)
{
	struct msg m;

	take(b, &m);
	assert_int_equal(m.type, 'v');
	assert_int_equal(get32((unsigned char *)m.body), minor);
	if (option == NULL) {
		assert_int_equal(m.len, 8);
		assert_int_equal(get32((unsigned char *)m.body + 4), 0);
		return;
	}
	assert_int_equal(get32((unsigned char *)m.body + 4), 1);
	assert_int_equal(m.len, 8 + strlen(option) + 1);
	assert_string_equal(m.body + 8, option);
}

static void
test_negotiate_minor(void **state)
{
	struct t *t = *state;

	assert_int_equal(fh_start(t->fh), 0);
	send_startup(t, 5, S("user\0ci\0\0"));
	expect_negotiate(t->fh->out[INJ_CLIENT], INJ_PG_MINOR_MAX, NULL);
	expect_auth(t->fh->out[INJ_CLIENT], INJ_PG_AUTH_CLEARTEXT);
	expect_empty(t->fh->out[INJ_CLIENT]);
}

static void
test_negotiate_option(void **state)
{
	struct t *t = *state;

	assert_int_equal(fh_start(t->fh), 0);
	send_startup(t, 0, S("user\0ci\0_pq_.x\0on\0\0"));
	expect_negotiate(t->fh->out[INJ_CLIENT], 0, "_pq_.x");
	expect_auth(t->fh->out[INJ_CLIENT], INJ_PG_AUTH_CLEARTEXT);
	expect_empty(t->fh->out[INJ_CLIENT]);
}

static void
test_plaintext_token_refused(void **state)
{
	struct t *t = *state;
	char text[200];

	t->cfg.allow_plaintext_token = false;
	assert_int_equal(fh_start(t->fh), 0);
	send_startup(t, 0, S("user\0ci\0\0"));
	expect_fatal(t->fh->out[INJ_CLIENT], "28000", text, sizeof(text));
	assert_non_null(strstr(text, "TLS"));
	expect_empty(t->fh->out[INJ_CLIENT]);	/* no password asked */
	assert_int_equal(t->fh->denies, 1);
	assert_string_equal(t->fh->deny_code, "28000");
	assert_int_equal(t->fh->refused_status, 403);
	assert_true(t->fh->ended);
	assert_int_equal(t->fh->proofs, 0);
}

/* certificate_login: a verified client certificate is the whole proof;
 * without one the password is asked for as ever. */
static void
test_certificate_login(void **state)
{
	struct t *t = *state;
	struct inj_pg_startup su;
	char buf[1024];

	t->cfg.certificate_login = true;
	t->fh->peer = true;
	assert_int_equal(fh_start(t->fh), 0);
	send_startup(t, 0, S(CALLER_KV));
	expect_empty(t->fh->out[INJ_CLIENT]);	/* no password asked */
	assert_int_equal(t->fh->peer_proofs, 1);
	assert_int_equal(t->fh->proofs, 0);
	assert_true(t->fh->deciding);
	assert_true(fh_allow(t->fh, &t->cred.cred));
	assert_true(fh_connected(t->fh, true, NULL));
	take_upstream_startup(t, buf, sizeof(buf), &su);
}

static void
test_certificate_login_without_certificate(void **state)
{
	struct t *t = *state;

	t->cfg.certificate_login = true;
	t->fh->peer = false;
	assert_int_equal(fh_start(t->fh), 0);
	send_startup(t, 0, S(CALLER_KV));
	assert_int_equal(t->fh->peer_proofs, 1);
	expect_auth(t->fh->out[INJ_CLIENT], INJ_PG_AUTH_CLEARTEXT);
	assert_int_equal(t->fh->reading[INJ_CLIENT], INJ_READ_ON);
	send_password(t, S("tok.en.jwt"));
	assert_int_equal(t->fh->proofs, 1);
}

/* Without the setting, a certificate changes nothing. */
static void
test_certificate_without_certificate_login(void **state)
{
	struct t *t = *state;

	t->fh->peer = true;
	to_password(t);
	assert_int_equal(t->fh->peer_proofs, 0);
}

static void
test_route_withdrawn(void **state)
{
	struct t *t = *state;

	t->fh->begin_rc = CG_ERR_NOTFOUND;
	assert_int_equal(fh_start(t->fh), 0);
	send_startup(t, 0, S("user\0ci\0\0"));
	expect_fatal(t->fh->out[INJ_CLIENT], "08006", NULL, 0);
	expect_empty(t->fh->out[INJ_CLIENT]);
	assert_int_equal(t->fh->refusals, 1);
	assert_int_equal(t->fh->refused_status, 503);
	assert_true(t->fh->ended);
}

/* ------------------------------------------------------------------ */
/* The password (token)                                                */
/* ------------------------------------------------------------------ */

static void
test_password_to_proof(void **state)
{
	struct t *t = *state;
	static const char tok[] = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJjaSJ9.c2ln";

	to_password(t);
	send_password(t, S(tok));
	assert_int_equal(t->fh->proofs, 1);
	assert_int_equal(t->fh->proof_len, sizeof(tok) - 1);
	assert_memory_equal(t->fh->proof, tok, sizeof(tok) - 1);
	/* The token left the input; nothing more is read while deciding. */
	assert_int_equal(evbuffer_get_length(t->fh->in[INJ_CLIENT]), 0);
	assert_int_equal(t->fh->reading[INJ_CLIENT], INJ_READ_OFF);
	expect_empty(t->fh->out[INJ_CLIENT]);
	expect_empty(t->fh->out[INJ_UPSTREAM]);
	assert_false(t->fh->ended);
}

static void
test_password_bytewise(void **state)
{
	struct t *t = *state;
	struct evbuffer *b = evbuffer_new();
	unsigned char *p;
	size_t n, i;

	to_password(t);
	assert_int_equal(inj_pg_write_password(b, S("tok.en"), false), 0);
	n = evbuffer_get_length(b);
	p = evbuffer_pullup(b, (ssize_t)n);
	for (i = 0; i < n; i++) {
		assert_int_equal(t->fh->proofs, 0);
		fh_send(t->fh, INJ_CLIENT, p + i, 1);
		fh_run(t->fh);
	}
	evbuffer_free(b);
	assert_int_equal(t->fh->proofs, 1);
	assert_string_equal(t->fh->proof, "tok.en");
}

static void
test_password_at_max(void **state)
{
	struct t *t = *state;
	char tok[64];

	memset(tok, 'a', sizeof(tok));
	t->fh->params.max_proof = sizeof(tok);
	to_password(t);
	send_password(t, tok, sizeof(tok));
	assert_int_equal(t->fh->proofs, 1);
	assert_int_equal(t->fh->proof_len, sizeof(tok));
}

static void
test_password_over_max(void **state)
{
	struct t *t = *state;
	char tok[65];

	memset(tok, 'a', sizeof(tok));
	t->fh->params.max_proof = sizeof(tok) - 1;
	to_password(t);
	send_password(t, tok, sizeof(tok));
	expect_fatal(t->fh->out[INJ_CLIENT], "08P01", NULL, 0);
	expect_empty(t->fh->out[INJ_CLIENT]);
	assert_int_equal(t->fh->proofs, 0);
	assert_int_equal(t->fh->denies, 1);
	assert_string_equal(t->fh->deny_code, "08P01");
	/* Audit says which limit it was. */
	assert_string_equal(t->fh->deny_reason, "password message over max_token_bytes");
	assert_true(t->fh->ended);
}

static void
test_password_wrong_type(void **state)
{
	struct t *t = *state;
	/* A Query where the password should be. */
	static const char q[] = "Q\0\0\0\x0d" "select 1\0";

	to_password(t);
	fh_send(t->fh, INJ_CLIENT, q, sizeof(q) - 1);
	fh_run(t->fh);
	expect_fatal(t->fh->out[INJ_CLIENT], "08P01", NULL, 0);
	expect_empty(t->fh->out[INJ_CLIENT]);
	assert_int_equal(t->fh->proofs, 0);
	assert_string_equal(t->fh->deny_code, "08P01");
	assert_string_equal(t->fh->deny_reason, "malformed password message");
}

static void
test_password_empty(void **state)
{
	struct t *t = *state;
	char text[200];

	to_password(t);
	send_password(t, "", 0);
	expect_fatal(t->fh->out[INJ_CLIENT], "28P01", text, sizeof(text));
	assert_string_equal(text, "password authentication failed for user \"ci\"");
	expect_empty(t->fh->out[INJ_CLIENT]);
	assert_int_equal(t->fh->proofs, 0);
	assert_string_equal(t->fh->deny_code, "28P01");
}

/* The startup, the password and a query in one read (a client that
 * does not wait for each answer): the query waits for the login. */
static void
test_pipelined(void **state)
{
	struct t *t = *state;
	struct evbuffer *b = evbuffer_new();
	unsigned char pkt[256], key[4], *p;
	struct msg m;
	uint32_t pid;
	size_t n;

	assert_int_equal(fh_start(t->fh), 0);
	n = packet(pkt, sizeof(pkt), V3(0), S("user\0ci\0\0"));
	assert_int_equal(evbuffer_add(b, pkt, n), 0);
	assert_int_equal(inj_pg_write_password(b, S("tok"), false), 0);
	assert_int_equal(evbuffer_add(b, q_select, sizeof(q_select) - 1), 0);
	n = evbuffer_get_length(b);
	p = evbuffer_pullup(b, (ssize_t)n);
	fh_send(t->fh, INJ_CLIENT, p, n);
	fh_run(t->fh);
	evbuffer_free(b);
	expect_auth(t->fh->out[INJ_CLIENT], INJ_PG_AUTH_CLEARTEXT);
	assert_int_equal(t->fh->proofs, 1);
	assert_string_equal(t->fh->proof, "tok");
	assert_true(fh_allow(t->fh, &t->cred.cred));
	assert_true(fh_connected(t->fh, true, NULL));
	/* The login only: the query is not the upstream's yet. */
	evbuffer_drain(t->fh->out[INJ_UPSTREAM], evbuffer_get_length(t->fh->out[INJ_UPSTREAM]));
	up_auth(t, INJ_PG_AUTH_CLEARTEXT, NULL, 0);
	take(t->fh->out[INJ_UPSTREAM], &m);
	assert_string_equal(m.body, SVC_PASS);
	expect_empty(t->fh->out[INJ_UPSTREAM]);
	up_ok_ready(t);
	expect_greeting(t, &pid, key);
	expect_bytes(t->fh->out[INJ_UPSTREAM], q_select, sizeof(q_select) - 1);
}

/* ------------------------------------------------------------------ */
/* The engine's refusals                                               */
/* ------------------------------------------------------------------ */

static void
test_refusals(void **state)
{
	static const struct {
		enum inj_refusal why;
		const char *sqlstate;
		int status;
		const char *text;
	} cases[] = {
		{ INJ_REFUSE_PROOF, "28P01", 401,
		  "password authentication failed for user \"ci\"" },
		{ INJ_REFUSE_DENIED, "28000", 403,
		  "access denied for user \"ci\" to database \"ledger\"" },
		{ INJ_REFUSE_UNAVAILABLE, "08006", 503, NULL },
		{ INJ_REFUSE_UPSTREAM, "08006", 502,
		  "credgate could not connect to the database server" },
		{ INJ_REFUSE_TIMEOUT, "08006", 504, NULL },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct t *t;
		char text[200];

		assert_int_equal(setup((void **)&t), 0);
		to_decide(t);
		assert_true(fh_refuse(t->fh, cases[i].why, "the engine's reason"));
		expect_fatal(t->fh->out[INJ_CLIENT], cases[i].sqlstate, text, sizeof(text));
		if (cases[i].text != NULL)
			assert_string_equal(text, cases[i].text);
		expect_empty(t->fh->out[INJ_CLIENT]);
		assert_int_equal(t->fh->refusals, 1);
		assert_int_equal(t->fh->refused_status, cases[i].status);
		assert_string_equal(t->fh->refused_reason, "the engine's reason");
		assert_int_equal(t->fh->finishes, 1);
		assert_int_equal(t->fh->connects, 0);
		assert_int_equal(t->fh->dones, 0);
		assert_int_equal(t->fh->counts[INJ_COUNT_LOGIN_REFUSED], 1);
		/* What audit records is what the caller got. */
		assert_string_equal(inj_pg_ops.refusal_code(cases[i].why), cases[i].sqlstate);
		teardown((void **)&t);
	}
}

/* ------------------------------------------------------------------ */
/* Logging in upstream                                                 */
/* ------------------------------------------------------------------ */

static void
test_upstream_startup(void **state)
{
	struct t *t = *state;
	struct inj_pg_startup su;
	char buf[1024];

	assert_int_equal(fh_start(t->fh), 0);
	send_startup(t, 0, S("user\0ci\0database\0ledger\0application_name\0app\0"
	    "options\0-c role=postgres\0replication\0database\0foo\0bar\0"
	    "DateStyle\0ISO\0\0"));
	expect_auth(t->fh->out[INJ_CLIENT], INJ_PG_AUTH_CLEARTEXT);
	send_password(t, S("tok"));
	/* Nothing upstream before the decision. */
	assert_int_equal(t->fh->connects, 0);
	assert_true(fh_allow(t->fh, &t->cred.cred));
	assert_int_equal(t->fh->connects, 1);
	assert_true(t->fh->connect_cred);
	assert_int_equal(strncmp(t->fh->tag, "pg:", 3), 0);
	assert_int_equal(strlen(t->fh->tag), 3 + 32);
	assert_int_equal(t->fh->armed_ms, t->fh->params.connect_timeout_ms);
	expect_empty(t->fh->out[INJ_UPSTREAM]);
	assert_true(fh_connected(t->fh, true, NULL));
	assert_int_equal(t->fh->reading[INJ_UPSTREAM], INJ_READ_ON);
	assert_int_equal(t->fh->armed_ms, t->fh->params.response_timeout_ms);
	take_upstream_startup(t, buf, sizeof(buf), &su);
	assert_int_equal(su.major, 3);
	assert_int_equal(su.minor, 0);
	expect_param(&su, "user", SVC_USER);
	expect_param(&su, "database", "ledger");
	expect_param(&su, "application_name", "app");
	expect_param(&su, "DateStyle", "ISO");
	expect_param(&su, "options", NULL);
	expect_param(&su, "replication", NULL);
	expect_param(&su, "foo", NULL);
	assert_int_equal(su.nparams, 4);
	expect_empty(t->fh->out[INJ_UPSTREAM]);
	expect_empty(t->fh->out[INJ_CLIENT]);
}

static void
test_upstream_startup_route_database(void **state)
{
	struct t *t = *state;
	struct inj_pg_startup su;
	char buf[1024];
	char tag[sizeof(t->fh->tag)];

	t->cfg.database = "books";
	to_decide(t);
	assert_true(fh_allow(t->fh, &t->cred.cred));
	assert_true(fh_connected(t->fh, true, NULL));
	take_upstream_startup(t, buf, sizeof(buf), &su);
	expect_param(&su, "user", SVC_USER);
	expect_param(&su, "database", "books");

	/* Another database, another pool tag. */
	snprintf(tag, sizeof(tag), "%s", t->fh->tag);
	fh_free(t->fh);
	t->fh = host_new(t);
	t->cfg.database = NULL;
	to_decide(t);
	assert_true(fh_allow(t->fh, &t->cred.cred));
	assert_string_not_equal(t->fh->tag, tag);
}

static void
test_connect_fails(void **state)
{
	struct t *t = *state;

	to_decide(t);
	t->fh->connect_mode = FH_CONNECT_FAIL;
	assert_true(fh_allow(t->fh, &t->cred.cred));
	expect_fatal(t->fh->out[INJ_CLIENT], "08006", NULL, 0);
	expect_empty(t->fh->out[INJ_CLIENT]);
	assert_int_equal(t->fh->audit_errors, 1);
	assert_int_equal(t->fh->refused_status, 502);
	assert_true(t->fh->ended);
}

static void
test_connected_false(void **state)
{
	struct t *t = *state;

	to_decide(t);
	assert_true(fh_allow(t->fh, &t->cred.cred));
	assert_true(fh_connected(t->fh, false, "connection refused"));
	expect_fatal(t->fh->out[INJ_CLIENT], "08006", NULL, 0);
	assert_int_equal(t->fh->audit_errors, 1);
	assert_string_equal(t->fh->audit_reason, "connection refused");
	assert_true(t->fh->ended);
}

static void
test_login_cleartext(void **state)
{
	struct t *t = *state;
	unsigned char key[4];
	uint32_t pid;

	to_relay(t, &pid, key);
	assert_int_equal(t->fh->audit_errors, 0);
	assert_false(t->fh->ended);
	assert_int_equal(t->fh->refusals, 0);
}

static void
test_login_md5(void **state)
{
	struct t *t = *state;
	static const unsigned char salt[4] = { 0x01, 0x02, 0xfe, 0xff };
	char want[INJ_PG_MD5_LEN + 1];
	unsigned char key[4];
	struct msg m;
	uint32_t pid;

	to_login(t);
	up_auth(t, INJ_PG_AUTH_MD5, salt, 4);
	take(t->fh->out[INJ_UPSTREAM], &m);
	assert_int_equal(m.type, 'p');
	assert_int_equal(inj_pg_md5_response(S(SVC_USER), S(SVC_PASS), salt, want), 0);
	assert_int_equal(strncmp(want, "md5", 3), 0);
	assert_int_equal(m.len, INJ_PG_MD5_LEN + 1);
	assert_string_equal(m.body, want);
	expect_empty(t->fh->out[INJ_CLIENT]);
	up_ok_ready(t);
	expect_greeting(t, &pid, key);
}

/* The server's side of SCRAM-SHA-256 (RFC 5802, RFC 7677). */
struct scram_srv {
	const char *mech;	/* the mechanism the client must choose */
	const char *gs2;	/* and its GS2 header */
	unsigned char cbind[64];	/* the channel binding it must send */
	size_t cbind_len;
	unsigned char salt[16];
	unsigned iter;
	char bare[512];		/* client-first-message-bare */
	char first[512];	/* server-first-message */
	char nonce[256];
	unsigned char server_key[32];
	unsigned char signature[32];	/* the ServerSignature to send */
};

static void
hmac256(const unsigned char *key, size_t klen, const void *data, size_t len,
    unsigned char out[32])
{
	unsigned int n = 0;

	assert_non_null(HMAC(EVP_sha256(), key, (int)klen, data, len, out, &n));
	assert_int_equal(n, 32);
}

/* Reads the client's SASLInitialResponse, answers server-first. */
static void
scram_srv_first(struct t *t, struct scram_srv *s)
{
	char b64[64], data[600];
	struct msg m;
	size_t mechlen, n;

	size_t gs2len;

	if (s->mech == NULL) {
		s->mech = "SCRAM-SHA-256";
		s->gs2 = "n,,";
	}
	gs2len = strlen(s->gs2);
	take(t->fh->out[INJ_UPSTREAM], &m);
	assert_int_equal(m.type, 'p');
	mechlen = strlen(m.body);
	assert_string_equal(m.body, s->mech);
	n = get32((unsigned char *)m.body + mechlen + 1);
	assert_int_equal(m.len, mechlen + 1 + 4 + n);
	/* No authzid; PostgreSQL ignores the name. */
	assert_true(n > gs2len && n < sizeof(s->bare));
	assert_memory_equal(m.body + mechlen + 5, s->gs2, gs2len);
	memcpy(s->bare, m.body + mechlen + 5 + gs2len, n - gs2len);
	s->bare[n - gs2len] = '\0';
	assert_int_equal(strncmp(s->bare, "n=,r=", 5), 0);
	memset(s->salt, 0x5a, sizeof(s->salt));
	s->iter = 4096;
	snprintf(s->nonce, sizeof(s->nonce), "%s%s", s->bare + 5, "3rfcNHYJY1ZVvWVs7j");
	b64_encode(s->salt, sizeof(s->salt), b64);
	snprintf(s->first, sizeof(s->first), "r=%s,s=%s,i=%u", s->nonce, b64, s->iter);
	snprintf(data, sizeof(data), "%s", s->first);
	up_auth(t, INJ_PG_AUTH_SASL_CONTINUE, data, strlen(data));
}

/* Reads the client's final message and checks its proof; keeps the
 * signature to answer with. */
static void
scram_srv_final(struct t *t, struct scram_srv *s)
{
	unsigned char salted[32], ckey[32], stored[32], csig[32], proof[64], cb[128];
	char auth[2048], cfinal[1024], want[256], *p;
	size_t prooflen, i, cblen, wlen;
	struct msg m;

	take(t->fh->out[INJ_UPSTREAM], &m);
	assert_int_equal(m.type, 'p');
	assert_int_equal(strlen(m.body), m.len);	/* no NUL: a SASLResponse */
	snprintf(cfinal, sizeof(cfinal), "%s", m.body);
	/* c= the GS2 header and binding data in base64 ("biws" for "n,,"),
	 * the whole nonce, the proof. */
	cblen = strlen(s->gs2);
	memcpy(cb, s->gs2, cblen);
	memcpy(cb + cblen, s->cbind, s->cbind_len);
	memcpy(want, "c=", 2);
	b64_encode(cb, cblen + s->cbind_len, want + 2);
	wlen = strlen(want);
	snprintf(want + wlen, sizeof(want) - wlen, ",r=");
	wlen += 3;
	assert_int_equal(strncmp(cfinal, want, wlen), 0);
	assert_non_null(p = strstr(cfinal, ",p="));
	assert_int_equal((size_t)(p - cfinal) - wlen, strlen(s->nonce));
	assert_memory_equal(cfinal + wlen, s->nonce, strlen(s->nonce));
	assert_int_equal(b64_decode(p + 3, strlen(p + 3), proof, &prooflen), 0);
	assert_int_equal(prooflen, 32);
	*p = '\0';	/* client-final-message-without-proof */
	snprintf(auth, sizeof(auth), "%s,%s,%s", s->bare, s->first, cfinal);

	assert_int_equal(PKCS5_PBKDF2_HMAC(SVC_PASS, (int)strlen(SVC_PASS), s->salt,
	    (int)sizeof(s->salt), (int)s->iter, EVP_sha256(), 32, salted), 1);
	hmac256(salted, 32, "Client Key", 10, ckey);
	assert_non_null(SHA256(ckey, 32, stored));
	hmac256(stored, 32, auth, strlen(auth), csig);
	for (i = 0; i < 32; i++)
		assert_int_equal(proof[i], ckey[i] ^ csig[i]);
	hmac256(salted, 32, "Server Key", 10, s->server_key);
	hmac256(s->server_key, 32, auth, strlen(auth), s->signature);
}

static void
scram_srv_sign(struct t *t, const struct scram_srv *s)
{
	char b64[64], data[80];

	b64_encode(s->signature, 32, b64);
	snprintf(data, sizeof(data), "v=%s", b64);
	up_auth(t, INJ_PG_AUTH_SASL_FINAL, data, strlen(data));
}

static void
scram_offer(struct t *t)
{
	up_auth(t, INJ_PG_AUTH_SASL, S("SCRAM-SHA-256\0\0"));
}

static void
test_login_scram(void **state)
{
	struct t *t = *state;
	struct scram_srv s;
	unsigned char key[4];
	uint32_t pid;
	void *slot;

	memset(&s, 0, sizeof(s));
	to_login(t);
	scram_offer(t);
	scram_srv_first(t, &s);
	scram_srv_final(t, &s);
	expect_empty(t->fh->out[INJ_CLIENT]);
	scram_srv_sign(t, &s);
	assert_false(t->fh->ended);
	expect_empty(t->fh->out[INJ_CLIENT]);
	up_ok_ready(t);
	expect_greeting(t, &pid, key);
	assert_int_equal(t->fh->audit_errors, 0);
	assert_int_equal(t->fh->counts[INJ_COUNT_KEY_DERIVED], 1);
	/* The keys were kept in the route's slot for the next login. */
	assert_non_null(slot = t->fh->slot);
	t->fh->slot = NULL;
	fh_free(t->fh);
	t->fh = host_new(t);
	t->fh->slot = slot;
	memset(&s, 0, sizeof(s));
	to_login(t);
	scram_offer(t);
	scram_srv_first(t, &s);
	scram_srv_final(t, &s);
	scram_srv_sign(t, &s);
	up_ok_ready(t);
	expect_greeting(t, &pid, key);
	assert_int_equal(t->fh->counts[INJ_COUNT_KEY_DERIVED], 0);
	assert_int_equal(t->fh->counts[INJ_COUNT_KEY_CACHED], 1);
}

/* The login fails: 08006 to the caller, audited, the session ends. */
static void
expect_login_failed(struct t *t, const char *reason)
{
	char text[200];

	expect_fatal(t->fh->out[INJ_CLIENT], "08006", text, sizeof(text));
	assert_string_equal(text, "credgate could not connect to the database server");
	expect_empty(t->fh->out[INJ_CLIENT]);
	assert_int_equal(t->fh->audit_errors, 1);
	if (reason != NULL)
		assert_non_null(strstr(t->fh->audit_reason, reason));
	assert_int_equal(t->fh->refusals, 1);
	assert_int_equal(t->fh->refused_status, 502);
	assert_int_equal(t->fh->answers, 0);
	assert_int_equal(t->fh->dones, 0);
	assert_int_equal(t->fh->counts[INJ_COUNT_LOGIN_FAILED], 1);
	assert_int_equal(t->fh->counts[INJ_COUNT_LOGIN_OK], 0);
	assert_true(t->fh->ended);
	assert_false(t->fh->up_open);
	assert_false(t->fh->pool_conn);
}

static void
test_scram_bad_signature(void **state)
{
	struct t *t = *state;
	struct scram_srv s;

	memset(&s, 0, sizeof(s));
	to_login(t);
	scram_offer(t);
	scram_srv_first(t, &s);
	scram_srv_final(t, &s);
	s.signature[7] ^= 0x01;
	scram_srv_sign(t, &s);
	expect_login_failed(t, "signature");
}

static void
test_scram_no_final(void **state)
{
	struct t *t = *state;
	struct scram_srv s;

	memset(&s, 0, sizeof(s));
	to_login(t);
	scram_offer(t);
	scram_srv_first(t, &s);
	scram_srv_final(t, &s);
	/* A server that does not prove it knows the password. */
	up_ok_ready(t);
	expect_login_failed(t, "SCRAM");
}

static void
test_scram_ok_after_initial(void **state)
{
	struct t *t = *state;
	struct msg m;

	to_login(t);
	scram_offer(t);
	take(t->fh->out[INJ_UPSTREAM], &m);
	assert_int_equal(m.type, 'p');
	up_ok_ready(t);
	expect_login_failed(t, "SCRAM");
}

static void
test_login_scram_plus(void **state)
{
	struct t *t = *state;
	struct scram_srv s;
	unsigned char key[4];
	uint32_t pid;

	memset(&s, 0, sizeof(s));
	s.mech = "SCRAM-SHA-256-PLUS";
	s.gs2 = "p=tls-server-end-point,,";
	memset(s.cbind, 0xab, 32);
	s.cbind_len = 32;
	memcpy(t->fh->binding, s.cbind, 32);
	t->fh->binding_len = 32;
	to_login(t);
	up_auth(t, INJ_PG_AUTH_SASL, S("SCRAM-SHA-256\0SCRAM-SHA-256-PLUS\0\0"));
	scram_srv_first(t, &s);
	scram_srv_final(t, &s);
	scram_srv_sign(t, &s);
	up_ok_ready(t);
	expect_greeting(t, &pid, key);
}

static void
test_login_scram_without_binding(void **state)
{
	struct t *t = *state;
	struct scram_srv s;
	unsigned char key[4];
	uint32_t pid;

	/* Both offered, no binding to be had (the upstream is not TLS):
	 * plain SCRAM-SHA-256. */
	memset(&s, 0, sizeof(s));
	to_login(t);
	up_auth(t, INJ_PG_AUTH_SASL, S("SCRAM-SHA-256\0SCRAM-SHA-256-PLUS\0\0"));
	scram_srv_first(t, &s);
	scram_srv_final(t, &s);
	scram_srv_sign(t, &s);
	up_ok_ready(t);
	expect_greeting(t, &pid, key);
}

static void
test_scram_plus_only_without_binding(void **state)
{
	struct t *t = *state;

	to_login(t);
	up_auth(t, INJ_PG_AUTH_SASL, S("SCRAM-SHA-256-PLUS\0\0"));
	expect_login_failed(t, "channel binding");
}

static void
test_unknown_auth(void **state)
{
	struct t *t = *state;

	to_login(t);
	up_auth(t, INJ_PG_AUTH_GSS, NULL, 0);
	expect_login_failed(t, "(7)");
	expect_empty(t->fh->out[INJ_UPSTREAM]);
}

static void
test_upstream_error_during_login(void **state)
{
	struct t *t = *state;
	static const char err[] = "E\0\0\0\x50" "SFATAL\0" "VFATAL\0" "C28P01\0"
	    "Mpassword authentication failed for user \"svc_ledger\"\0" "\0";
	char text[200];

	to_login(t);
	up_raw(t, err, sizeof(err) - 1);
	expect_fatal(t->fh->out[INJ_CLIENT], "08006", text, sizeof(text));
	/* The upstream's own words are for audit, not for the caller. */
	assert_null(strstr(text, "svc_ledger"));
	expect_empty(t->fh->out[INJ_CLIENT]);
	assert_int_equal(t->fh->audit_errors, 1);
	assert_non_null(strstr(t->fh->audit_reason, "28P01"));
	assert_non_null(strstr(t->fh->audit_reason, "password authentication failed"));
	assert_true(t->fh->ended);
}

static void
test_upstream_closes_during_login(void **state)
{
	struct t *t = *state;

	to_login(t);
	fh_peer_close(t->fh, INJ_UPSTREAM, false);
	fh_run(t->fh);
	expect_login_failed(t, "closed");
}

/* An upstream that breaks the login's rules: each case is what it sends
 * after credgate's StartupMessage, and what audit is told. */
static void
test_login_violations(void **state)
{
	static const struct {
		const char *name;
		const char *bytes;
		size_t len;
		const char *reason;
	} cases[] = {
		{ "parameter before AuthenticationOk", S("S\0\0\0\x08" "a\0" "b\0"),
		  "malformed parameter" },
		{ "key before AuthenticationOk", S("K\0\0\0\x0c" "\0\0\0\x01" "abcd"),
		  "malformed cancel key" },
		{ "ready before AuthenticationOk", S("Z\0\0\0\x05" "I"),
		  "ready before logging in" },
		{ "authentication after AuthenticationOk",
		  S("R\0\0\0\x08\0\0\0\0" "R\0\0\0\x08\0\0\0\x03"), "after its end" },
		{ "a message of the relay", S("D\0\0\0\x06\0\0"), "unexpected message" },
		{ "length under 4", S("R\0\0\0\x03"), "malformed message" },
		{ "MD5 without its salt", S("R\0\0\0\x0b\0\0\0\x05" "abc"),
		  "malformed authentication request" },
		{ "no mechanism credgate speaks", S("R\0\0\0\x10\0\0\0\x0a" "GSSAPI\0\0"),
		  "no SASL mechanism" },
		{ "SASL continue first", S("R\0\0\0\x0c\0\0\0\x0b" "r=ab"), "out of order" },
		{ "SASL final first", S("R\0\0\0\x0c\0\0\0\x0c" "v=ab"), "does not verify" },
		{ "ready that is not one byte", S("R\0\0\0\x08\0\0\0\0" "Z\0\0\0\x06" "II"),
		  "ready before logging in" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct t *t;

		assert_int_equal(setup((void **)&t), 0);
		to_login(t);
		up_raw(t, cases[i].bytes, cases[i].len);
		expect_login_failed(t, cases[i].reason);
		teardown((void **)&t);
	}
}

/* A server nonce that does not extend credgate's. */
static void
test_scram_foreign_nonce(void **state)
{
	struct t *t = *state;
	static const char first[] = "r=someoneelsesnonce,s=c2FsdHNhbHQ=,i=4096";

	to_login(t);
	scram_offer(t);
	up_auth(t, INJ_PG_AUTH_SASL_CONTINUE, first, sizeof(first) - 1);
	expect_login_failed(t, "malformed SCRAM message");
}

/* A credential without the fields the route names. */
static void
test_credential_fields(void **state)
{
	struct t *t = *state;
	struct fh_cred nopw, nouser;

	fh_cred_init(&nopw, SVC_USER, NULL);
	fh_cred_init(&nouser, NULL, SVC_PASS);
	to_decide(t);
	assert_true(fh_allow(t->fh, &nouser.cred));
	assert_true(fh_connected(t->fh, true, NULL));
	expect_login_failed(t, "no usable user name");
	expect_empty(t->fh->out[INJ_UPSTREAM]);

	fh_free(t->fh);
	t->fh = host_new(t);
	to_decide(t);
	assert_true(fh_allow(t->fh, &nopw.cred));
	assert_true(fh_connected(t->fh, true, NULL));
	evbuffer_drain(t->fh->out[INJ_UPSTREAM], evbuffer_get_length(t->fh->out[INJ_UPSTREAM]));
	up_auth(t, INJ_PG_AUTH_CLEARTEXT, NULL, 0);
	expect_login_failed(t, "no usable password");
	expect_empty(t->fh->out[INJ_UPSTREAM]);
}

/* Notices while logging in are the login's: not the caller's. */
static void
test_login_notice(void **state)
{
	struct t *t = *state;
	static const char notice[] = "N\0\0\0\x15" "SWARNING\0" "Mhello\0" "\0";
	unsigned char key[4];
	struct msg m;
	uint32_t pid;

	to_login(t);
	up_raw(t, notice, sizeof(notice) - 1);
	up_auth(t, INJ_PG_AUTH_CLEARTEXT, NULL, 0);
	take(t->fh->out[INJ_UPSTREAM], &m);
	up_raw(t, notice, sizeof(notice) - 1);
	up_ok_ready(t);
	expect_greeting(t, &pid, key);
}

static void
test_client_closes_during_login(void **state)
{
	struct t *t = *state;

	to_login(t);
	/* The engine reads no caller now; a close it learns of all the same
	 * (a failed write) ends the session, the login unfinished: closed,
	 * not a request done. */
	inj_pg_ops.eof(t->fh->st, INJ_CLIENT, true);
	assert_true(t->fh->ended);
	assert_int_equal(t->fh->closes, 1);
	assert_string_equal(t->fh->end_reason, "client_closed_during_login");
	assert_int_equal(t->fh->dones, 0);
	assert_false(t->fh->up_open);
	assert_false(t->fh->pool_conn);
	expect_empty(t->fh->out[INJ_CLIENT]);
}

static void
test_login_bytewise(void **state)
{
	struct t *t = *state;
	struct evbuffer *b = evbuffer_new();
	unsigned char key[4], *p;
	struct msg m;
	uint32_t pid;
	size_t n, i;

	to_login(t);
	assert_int_equal(inj_pg_write_auth(b, INJ_PG_AUTH_CLEARTEXT, NULL, 0), 0);
	n = evbuffer_get_length(b);
	p = evbuffer_pullup(b, (ssize_t)n);
	for (i = 0; i < n; i++)
		up_raw(t, p + i, 1);
	evbuffer_drain(b, n);
	take(t->fh->out[INJ_UPSTREAM], &m);
	assert_string_equal(m.body, SVC_PASS);
	assert_int_equal(inj_pg_write_auth(b, INJ_PG_AUTH_OK, NULL, 0), 0);
	assert_int_equal(inj_pg_write_param_status(b, "server_version", "17.2"), 0);
	assert_int_equal(inj_pg_write_param_status(b, "client_encoding", "UTF8"), 0);
	assert_int_equal(inj_pg_write_key(b, UP_PID, UP_KEY, 4), 0);
	assert_int_equal(inj_pg_write_ready(b, 'I'), 0);
	n = evbuffer_get_length(b);
	p = evbuffer_pullup(b, (ssize_t)n);
	for (i = 0; i < n; i++) {
		expect_empty(t->fh->out[INJ_CLIENT]);
		up_raw(t, p + i, 1);
	}
	evbuffer_free(b);
	expect_greeting(t, &pid, key);
}

/* ------------------------------------------------------------------ */
/* TLS to the upstream                                                 */
/* ------------------------------------------------------------------ */

static void
to_upstream_ssl(struct t *t)
{
	unsigned char b[8];
	uint32_t code;

	t->fh->params.upstream_tls = true;
	to_decide(t);
	assert_true(fh_allow(t->fh, &t->cred.cred));
	assert_true(fh_connected(t->fh, true, NULL));
	assert_int_equal(evbuffer_get_length(t->fh->out[INJ_UPSTREAM]), 8);
	assert_int_equal(evbuffer_remove(t->fh->out[INJ_UPSTREAM], b, 8), 8);
	assert_int_equal(get32(b), 8);
	code = get32(b + 4);
	assert_int_equal(code, INJ_PG_SSL_CODE);
}

static void
test_upstream_tls(void **state)
{
	struct t *t = *state;
	struct inj_pg_startup su;
	unsigned char key[4];
	char buf[1024];
	struct msg m;
	uint32_t pid;

	to_upstream_ssl(t);
	up_raw(t, "S", 1);
	assert_int_equal(t->fh->start_tls[INJ_UPSTREAM], 1);
	expect_empty(t->fh->out[INJ_UPSTREAM]);
	assert_true(fh_tls_done(t->fh, INJ_UPSTREAM));
	take_upstream_startup(t, buf, sizeof(buf), &su);
	expect_param(&su, "user", SVC_USER);
	up_auth(t, INJ_PG_AUTH_CLEARTEXT, NULL, 0);
	take(t->fh->out[INJ_UPSTREAM], &m);
	assert_string_equal(m.body, SVC_PASS);
	up_ok_ready(t);
	expect_greeting(t, &pid, key);
}

static void
test_upstream_tls_bytes_after_s(void **state)
{
	struct t *t = *state;

	to_upstream_ssl(t);
	up_raw(t, "SR\0\0\0\x08\0\0\0\x03", 10);
	assert_int_equal(t->fh->start_tls[INJ_UPSTREAM], 0);
	expect_login_failed(t, "after its SSL answer");
	expect_empty(t->fh->out[INJ_UPSTREAM]);
}

static void
test_upstream_tls_refused(void **state)
{
	struct t *t = *state;

	to_upstream_ssl(t);
	up_raw(t, "N", 1);
	assert_int_equal(t->fh->start_tls[INJ_UPSTREAM], 0);
	expect_login_failed(t, "does not offer TLS");
	expect_empty(t->fh->out[INJ_UPSTREAM]);
}

static void
test_upstream_tls_handshake_fails(void **state)
{
	struct t *t = *state;

	to_upstream_ssl(t);
	up_raw(t, "S", 1);
	assert_true(fh_connected(t->fh, false, "certificate verify failed"));
	expect_login_failed(t, "certificate verify failed");
}

/* ------------------------------------------------------------------ */
/* Relaying                                                            */
/* ------------------------------------------------------------------ */

static void
test_relay(void **state)
{
	struct t *t = *state;
	unsigned char key[4];
	uint32_t pid;

	to_relay(t, &pid, key);
	fh_send(t->fh, INJ_CLIENT, q_select, sizeof(q_select) - 1);
	fh_run(t->fh);
	expect_bytes(t->fh->out[INJ_UPSTREAM], q_select, sizeof(q_select) - 1);
	up_raw(t, up_answer, sizeof(up_answer) - 1);
	expect_bytes(t->fh->out[INJ_CLIENT], up_answer, sizeof(up_answer) - 1);
	assert_false(t->fh->ended);
	assert_int_equal(t->fh->dones, 0);
}

static void
test_relay_bytewise(void **state)
{
	struct t *t = *state;
	struct evbuffer *seen = evbuffer_new();
	unsigned char key[4];
	uint32_t pid;
	size_t i;

	to_relay(t, &pid, key);
	for (i = 0; i < sizeof(q_select) - 1; i++) {
		fh_send(t->fh, INJ_CLIENT, q_select + i, 1);
		fh_run(t->fh);
		evbuffer_add_buffer(seen, t->fh->out[INJ_UPSTREAM]);
	}
	expect_bytes(seen, q_select, sizeof(q_select) - 1);
	for (i = 0; i < sizeof(up_answer) - 1; i++) {
		up_raw(t, up_answer + i, 1);
		evbuffer_add_buffer(seen, t->fh->out[INJ_CLIENT]);
	}
	expect_bytes(seen, up_answer, sizeof(up_answer) - 1);
	evbuffer_free(seen);
	assert_false(t->fh->ended);
}

/* The caller's Terminate after an idle ReadyForQuery: the login is reset
 * and goes back to the pool. */
static void
terminate_reused(struct t *t)
{
	static const char x[] = "X\0\0\0\x04";
	static const char reset_answer[] = "C\0\0\0\x10" "DISCARD ALL\0" "Z\0\0\0\x05" "I";
	struct evbuffer *want = evbuffer_new();
	size_t n;

	fh_send(t->fh, INJ_CLIENT, x, sizeof(x) - 1);
	fh_run(t->fh);
	assert_int_equal(inj_pg_write_query(want, "DISCARD ALL"), 0);
	n = evbuffer_get_length(want);
	/* The reset query goes up, not the Terminate. */
	expect_bytes(t->fh->out[INJ_UPSTREAM], evbuffer_pullup(want, (ssize_t)n), n);
	evbuffer_free(want);
	assert_int_equal(t->fh->dones, 0);
	assert_int_equal(t->fh->reading[INJ_CLIENT], INJ_READ_OFF);
	assert_int_equal(t->fh->armed_ms, t->fh->params.response_timeout_ms);
	up_raw(t, reset_answer, sizeof(reset_answer) - 1);
	assert_int_equal(t->fh->dones, 1);
	assert_true(t->fh->reusable);
	assert_true(t->fh->pool_conn);
	assert_non_null(t->fh->pool_data);
	assert_int_equal(t->fh->finishes, 1);
	expect_empty(t->fh->out[INJ_CLIENT]);
}

static void
test_terminate_reuses(void **state)
{
	struct t *t = *state;
	unsigned char key[4];
	uint32_t pid;

	to_relay(t, &pid, key);
	fh_send(t->fh, INJ_CLIENT, q_select, sizeof(q_select) - 1);
	fh_run(t->fh);
	up_raw(t, up_answer, sizeof(up_answer) - 1);
	evbuffer_drain(t->fh->out[INJ_CLIENT], evbuffer_get_length(t->fh->out[INJ_CLIENT]));
	evbuffer_drain(t->fh->out[INJ_UPSTREAM], evbuffer_get_length(t->fh->out[INJ_UPSTREAM]));
	terminate_reused(t);
}

static void
test_terminate_in_transaction(void **state)
{
	struct t *t = *state;
	static const char begin[] = "Q\0\0\0\x0a" "begin\0";
	static const char up_begin[] = "C\0\0\0\x0a" "BEGIN\0" "Z\0\0\0\x05" "T";
	static const char x[] = "X\0\0\0\x04";
	unsigned char key[4];
	uint32_t pid;

	to_relay(t, &pid, key);
	fh_send(t->fh, INJ_CLIENT, begin, sizeof(begin) - 1);
	fh_run(t->fh);
	up_raw(t, up_begin, sizeof(up_begin) - 1);
	expect_bytes(t->fh->out[INJ_CLIENT], up_begin, sizeof(up_begin) - 1);
	evbuffer_drain(t->fh->out[INJ_UPSTREAM], evbuffer_get_length(t->fh->out[INJ_UPSTREAM]));
	fh_send(t->fh, INJ_CLIENT, x, sizeof(x) - 1);
	fh_run(t->fh);
	assert_int_equal(t->fh->dones, 1);
	assert_false(t->fh->reusable);
	assert_false(t->fh->pool_conn);
	assert_int_equal(t->fh->finishes, 1);
}

static void
test_terminate_without_reset_query(void **state)
{
	struct t *t = *state;
	static const char x[] = "X\0\0\0\x04";
	unsigned char key[4];
	uint32_t pid;

	t->cfg.reset_query = "";
	to_relay(t, &pid, key);
	fh_send(t->fh, INJ_CLIENT, x, sizeof(x) - 1);
	fh_run(t->fh);
	assert_int_equal(t->fh->dones, 1);
	assert_false(t->fh->reusable);
	assert_false(t->fh->pool_conn);
	assert_int_equal(t->fh->finishes, 1);
}

static void
test_terminate_while_draining(void **state)
{
	struct t *t = *state;
	static const char x[] = "X\0\0\0\x04";
	unsigned char key[4];
	uint32_t pid;

	to_relay(t, &pid, key);
	t->fh->draining = true;
	fh_send(t->fh, INJ_CLIENT, x, sizeof(x) - 1);
	fh_run(t->fh);
	assert_int_equal(t->fh->dones, 1);
	assert_false(t->fh->reusable);
}

static void
test_pooled_login(void **state)
{
	struct t *t = *state;
	struct fake_host *first;
	unsigned char key[4], key2[4];
	uint32_t pid, pid2;

	to_relay(t, &pid, key);
	terminate_reused(t);
	first = t->fh;
	t->fh = host_new(t);
	fh_pool_move(t->fh, first);
	fh_free(first);

	t->fh->connect_mode = FH_CONNECT_POOLED;
	to_decide(t);
	assert_true(fh_allow(t->fh, &t->cred.cred));
	assert_int_equal(t->fh->connects, 1);
	assert_true(t->fh->up_open);
	assert_false(t->fh->connecting);
	/* What the first login learnt, a new key, no upstream traffic. */
	expect_greeting(t, &pid2, key2);
	assert_true(pid2 != pid || memcmp(key, key2, 4) != 0);
	expect_empty(t->fh->out[INJ_UPSTREAM]);
	assert_int_equal(t->fh->answers, 1);
	assert_int_equal(t->fh->counts[INJ_COUNT_LOGIN_REUSED], 1);
	assert_int_equal(t->fh->counts[INJ_COUNT_LOGIN_OK], 0);
	/* It relays at once. */
	fh_send(t->fh, INJ_CLIENT, q_select, sizeof(q_select) - 1);
	fh_run(t->fh);
	expect_bytes(t->fh->out[INJ_UPSTREAM], q_select, sizeof(q_select) - 1);
}

static void
test_idle_timeout(void **state)
{
	struct t *t = *state;
	unsigned char key[4];
	char text[200];
	uint32_t pid;

	t->cfg.idle_timeout_ms = 1;
	to_relay(t, &pid, key);
	assert_true(t->fh->armed_ms <= 1);
	usleep(5000);
	assert_true(fh_timeout(t->fh));
	expect_fatal(t->fh->out[INJ_CLIENT], "57P05", text, sizeof(text));
	assert_string_equal(text, "terminating connection due to idle timeout");
	expect_empty(t->fh->out[INJ_CLIENT]);
	assert_int_equal(t->fh->dones, 1);
	assert_false(t->fh->reusable);
	assert_int_equal(t->fh->finishes, 1);
	assert_string_equal(t->fh->end_reason, "idle_timeout");
}

static void
test_max_session(void **state)
{
	struct t *t = *state;
	unsigned char key[4];
	char text[200];
	uint32_t pid;

	t->cfg.max_session_ms = 1;
	to_relay(t, &pid, key);
	assert_true(t->fh->armed_ms <= 1);
	usleep(5000);
	/* Traffic does not extend it. */
	fh_send(t->fh, INJ_CLIENT, q_select, sizeof(q_select) - 1);
	fh_run(t->fh);
	up_raw(t, up_answer, sizeof(up_answer) - 1);
	evbuffer_drain(t->fh->out[INJ_CLIENT], evbuffer_get_length(t->fh->out[INJ_CLIENT]));
	assert_true(fh_timeout(t->fh));
	expect_fatal(t->fh->out[INJ_CLIENT], "57P01", text, sizeof(text));
	assert_string_equal(text, "terminating connection: max_session reached");
	assert_string_equal(t->fh->end_reason, "max_session");
	assert_int_equal(t->fh->dones, 1);
	assert_false(t->fh->reusable);
}

static void
test_token_expiry(void **state)
{
	struct t *t = *state;
	unsigned char key[4];
	char text[200];
	uint32_t pid;

	t->cfg.end_at_token_expiry = true;
	t->fh->params.proof_expires = cg_now_ms() / 1000 - 1;
	to_relay(t, &pid, key);
	assert_int_equal(t->fh->armed_ms, 0);
	assert_true(fh_timeout(t->fh));
	expect_fatal(t->fh->out[INJ_CLIENT], "57P01", text, sizeof(text));
	assert_string_equal(text, "terminating connection: its token expired");
	assert_string_equal(t->fh->end_reason, "token_expired");
}

/* A relayed message cut short: the end of the session cannot add an
 * error into it (the caller's framing would break). */
static void
test_idle_timeout_mid_message(void **state)
{
	struct t *t = *state;
	unsigned char key[4];
	uint32_t pid;

	t->cfg.idle_timeout_ms = 1;
	to_relay(t, &pid, key);
	up_raw(t, "D\0\0\0\x0b\0\x01", 7);
	expect_bytes(t->fh->out[INJ_CLIENT], "D\0\0\0\x0b\0\x01", 7);
	usleep(5000);
	assert_true(fh_timeout(t->fh));
	expect_empty(t->fh->out[INJ_CLIENT]);
	assert_int_equal(t->fh->finishes, 1);
}

/* What the server reports while relaying and resetting is what the next
 * caller of the pooled login is told. */
static void
test_pooled_params(void **state)
{
	struct t *t = *state;
	struct fake_host *first;
	struct evbuffer *b = evbuffer_new(), *out;
	struct inj_pg_str a, v;
	struct inj_pg_error err;
	struct inj_pg_msg pm;
	unsigned char key[4];
	struct msg m;
	uint32_t pid;
	size_t i;
	static const char *const want[][2] = {
		{ "server_version", "17.2" }, { "client_encoding", "UTF8" },
		{ "TimeZone", "UTC" },
	};

	to_relay(t, &pid, key);
	assert_int_equal(inj_pg_write_param_status(b, "client_encoding", "LATIN1"), 0);
	assert_int_equal(inj_pg_write_param_status(b, "TimeZone", "UTC"), 0);
	send_buf(t, INJ_UPSTREAM, b);
	evbuffer_drain(t->fh->out[INJ_CLIENT], evbuffer_get_length(t->fh->out[INJ_CLIENT]));
	fh_send(t->fh, INJ_CLIENT, "X\0\0\0\x04", 5);
	fh_run(t->fh);
	assert_int_equal(inj_pg_write_param_status(b, "client_encoding", "UTF8"), 0);
	assert_int_equal(evbuffer_add(b, "C\0\0\0\x10" "DISCARD ALL\0" "Z\0\0\0\x05" "I", 23), 0);
	send_buf(t, INJ_UPSTREAM, b);
	evbuffer_free(b);
	assert_true(t->fh->reusable);

	first = t->fh;
	t->fh = host_new(t);
	fh_pool_move(t->fh, first);
	fh_free(first);
	t->fh->connect_mode = FH_CONNECT_POOLED;
	to_decide(t);
	assert_true(fh_allow(t->fh, &t->cred.cred));
	out = t->fh->out[INJ_CLIENT];
	expect_auth(out, INJ_PG_AUTH_OK);
	for (i = 0; i < 3; i++) {
		take(out, &m);
		assert_int_equal(m.type, 'S');
		pm = as_pg(&m);
		assert_int_equal(inj_pg_parse_param_status(&pm, &a, &v, &err), 0);
		assert_string_equal(a.p, want[i][0]);
		assert_string_equal(v.p, want[i][1]);
	}
	take(out, &m);
	assert_int_equal(m.type, 'K');
	take(out, &m);
	assert_int_equal(m.type, 'Z');
	expect_empty(out);
}

static void
test_timer_early(void **state)
{
	struct t *t = *state;
	unsigned char key[4];
	uint32_t pid;

	to_relay(t, &pid, key);
	/* A timer that fires before any bound: re-armed, nothing said. */
	t->fh->arms = 0;
	assert_true(fh_timeout(t->fh));
	assert_int_equal(t->fh->arms, 1);
	assert_true(t->fh->armed_ms > 0);
	expect_empty(t->fh->out[INJ_CLIENT]);
	assert_false(t->fh->ended);
}

static void
test_backpressure(void **state)
{
	struct t *t = *state;
	size_t body = INJ_RELAY_HIGH + 1000, n;
	unsigned char *big = malloc(body + 5);
	unsigned char key[4];
	uint32_t pid;

	assert_non_null(big);
	to_relay(t, &pid, key);
	big[0] = 'Q';
	put32(big + 1, (uint32_t)(body + 4));
	memset(big + 5, 'a', body - 1);
	big[body + 4] = '\0';
	fh_send(t->fh, INJ_CLIENT, big, body + 5);
	fh_run(t->fh);
	free(big);
	assert_int_equal(evbuffer_get_length(t->fh->out[INJ_UPSTREAM]), body + 5);
	/* Over the high mark: the caller is not read. */
	assert_int_equal(t->fh->reading[INJ_CLIENT], INJ_READ_OFF);
	fh_send(t->fh, INJ_CLIENT, q_select, sizeof(q_select) - 1);
	fh_run(t->fh);
	assert_int_equal(evbuffer_get_length(t->fh->out[INJ_UPSTREAM]), body + 5);
	/* Still over the low mark: not yet. */
	n = evbuffer_get_length(t->fh->out[INJ_UPSTREAM]) - INJ_RELAY_LOW - 1;
	evbuffer_drain(t->fh->out[INJ_UPSTREAM], n);
	assert_false(fh_writable(t->fh, INJ_UPSTREAM));
	assert_int_equal(t->fh->reading[INJ_CLIENT], INJ_READ_OFF);
	/* Drained: read again, and what waited goes up. */
	evbuffer_drain(t->fh->out[INJ_UPSTREAM], evbuffer_get_length(t->fh->out[INJ_UPSTREAM]));
	assert_true(fh_writable(t->fh, INJ_UPSTREAM));
	assert_int_equal(t->fh->reading[INJ_CLIENT], INJ_READ_ON);
	expect_bytes(t->fh->out[INJ_UPSTREAM], q_select, sizeof(q_select) - 1);
	assert_false(t->fh->ended);
}

static void
test_backpressure_upstream(void **state)
{
	struct t *t = *state;
	size_t body = INJ_RELAY_HIGH + 1000;
	unsigned char *big = malloc(body + 5);
	unsigned char key[4];
	uint32_t pid;

	assert_non_null(big);
	to_relay(t, &pid, key);
	big[0] = 'D';
	put32(big + 1, (uint32_t)(body + 4));
	memset(big + 5, 'b', body);
	up_raw(t, big, body + 5);
	free(big);
	assert_int_equal(t->fh->reading[INJ_UPSTREAM], INJ_READ_OFF);
	up_raw(t, "Z\0\0\0\x05" "I", 6);
	assert_int_equal(evbuffer_get_length(t->fh->out[INJ_CLIENT]), body + 5);
	evbuffer_drain(t->fh->out[INJ_CLIENT], evbuffer_get_length(t->fh->out[INJ_CLIENT]));
	assert_true(fh_writable(t->fh, INJ_CLIENT));
	assert_int_equal(t->fh->reading[INJ_UPSTREAM], INJ_READ_ON);
	expect_bytes(t->fh->out[INJ_CLIENT], "Z\0\0\0\x05" "I", 6);
}

static void
test_upstream_closes_in_relay(void **state)
{
	struct t *t = *state;
	static const char fatal[] = "E\0\0\0\x2b" "SFATAL\0" "C57P01\0" "Mterminating connection\0"
	    "\0";
	unsigned char key[4];
	uint32_t pid;

	to_relay(t, &pid, key);
	fh_send(t->fh, INJ_UPSTREAM, fatal, sizeof(fatal) - 1);
	fh_peer_close(t->fh, INJ_UPSTREAM, false);
	fh_run(t->fh);
	/* What the server said last reaches the caller. */
	expect_bytes(t->fh->out[INJ_CLIENT], fatal, sizeof(fatal) - 1);
	assert_int_equal(t->fh->dones, 1);
	assert_false(t->fh->reusable);
	assert_int_equal(t->fh->finishes, 1);
	assert_string_equal(t->fh->end_reason, "upstream_closed");
}

static void
test_client_closes_in_relay(void **state)
{
	struct t *t = *state;
	unsigned char key[4];
	uint32_t pid;

	to_relay(t, &pid, key);
	fh_peer_close(t->fh, INJ_CLIENT, false);
	fh_run(t->fh);
	/* Between queries and idle: reset and kept, as after Terminate. */
	assert_int_equal(evbuffer_get_length(t->fh->out[INJ_UPSTREAM]), 17);
	up_raw(t, "C\0\0\0\x10" "DISCARD ALL\0" "Z\0\0\0\x05" "I", 23);
	assert_int_equal(t->fh->dones, 1);
	assert_true(t->fh->reusable);
}

static void
test_relay_bad_framing(void **state)
{
	struct t *t = *state;
	unsigned char key[4];
	uint32_t pid;

	to_relay(t, &pid, key);
	fh_send(t->fh, INJ_CLIENT, "Q\0\0\0\x03", 5);
	fh_run(t->fh);
	assert_int_equal(t->fh->dones, 1);
	assert_false(t->fh->reusable);
	assert_int_equal(t->fh->closes, 1);
	expect_empty(t->fh->out[INJ_UPSTREAM]);
}

/* ------------------------------------------------------------------ */
/* Cancel                                                              */
/* ------------------------------------------------------------------ */

static void
send_cancel(struct t *t, uint32_t pid, const unsigned char *key, size_t keylen)
{
	unsigned char b[64];
	size_t n;

	n = packet(b, sizeof(b), INJ_PG_CANCEL_CODE, NULL, 0);
	put32(b + n, pid);
	memcpy(b + n + 4, key, keylen);
	put32(b, (uint32_t)(n + 4 + keylen));
	fh_send(t->fh, INJ_CLIENT, b, n + 4 + keylen);
	fh_run(t->fh);
}

static void
test_cancel_forwarded(void **state)
{
	struct t *t = *state;
	struct inj_pg_startup su;
	struct inj_pg_error err;
	struct t *c;
	unsigned char key[4], b[64];
	uint32_t pid;
	size_t n;

	to_relay(t, &pid, key);
	/* Another connection cancels the first one's query. */
	assert_int_equal(setup((void **)&c), 0);
	assert_int_equal(fh_start(c->fh), 0);
	send_cancel(c, pid, key, 4);
	assert_int_equal(c->fh->connects, 1);
	assert_false(c->fh->connect_cred);
	assert_int_equal(c->fh->begins, 0);
	assert_int_equal(c->fh->reading[INJ_CLIENT], INJ_READ_OFF);
	assert_true(fh_connected(c->fh, true, NULL));
	n = evbuffer_get_length(c->fh->out[INJ_UPSTREAM]);
	assert_int_equal(n, 16);
	assert_int_equal(evbuffer_remove(c->fh->out[INJ_UPSTREAM], b, n), (int)n);
	assert_int_equal(inj_pg_parse_startup((char *)b, n, INJ_PG_STARTUP_MAX, &su, &err),
	    INJ_PG_DONE);
	assert_int_equal(su.kind, INJ_PG_CANCEL_REQUEST);
	/* The upstream's own key. */
	assert_int_equal(su.pid, UP_PID);
	assert_int_equal(su.key.len, 4);
	assert_memory_equal(su.key.p, UP_KEY, 4);
	expect_empty(c->fh->out[INJ_CLIENT]);
	/* The server reads it and closes; so does credgate. */
	fh_peer_close(c->fh, INJ_UPSTREAM, false);
	fh_run(c->fh);
	assert_int_equal(c->fh->closes, 1);
	assert_string_equal(c->fh->end_reason, "cancel_forwarded");
	expect_empty(c->fh->out[INJ_CLIENT]);
	teardown((void **)&c);
}

static void
test_cancel_unknown(void **state)
{
	struct t *t = *state;
	unsigned char key[4], bad[4];
	uint32_t pid;
	struct t *c;

	to_relay(t, &pid, key);
	memcpy(bad, key, 4);
	bad[0] ^= 1;
	assert_int_equal(setup((void **)&c), 0);
	assert_int_equal(fh_start(c->fh), 0);
	send_cancel(c, pid, bad, 4);
	assert_int_equal(c->fh->connects, 0);
	assert_int_equal(c->fh->closes, 1);
	assert_string_equal(c->fh->end_reason, "cancel_unknown_key");
	expect_empty(c->fh->out[INJ_CLIENT]);
	teardown((void **)&c);

	/* The right key once the session that gave it out has ended. */
	fh_free(t->fh);
	t->fh = host_new(t);
	assert_int_equal(setup((void **)&c), 0);
	assert_int_equal(fh_start(c->fh), 0);
	send_cancel(c, pid, key, 4);
	assert_int_equal(c->fh->connects, 0);
	assert_string_equal(c->fh->end_reason, "cancel_unknown_key");
	teardown((void **)&c);
}

static void
test_cancel_upstream_tls(void **state)
{
	struct t *t = *state;
	struct inj_pg_startup su;
	struct inj_pg_error err;
	unsigned char key[4], b[64];
	uint32_t pid;
	struct t *c;

	to_relay(t, &pid, key);
	assert_int_equal(setup((void **)&c), 0);
	c->fh->params.upstream_tls = true;
	assert_int_equal(fh_start(c->fh), 0);
	send_cancel(c, pid, key, 4);
	assert_true(fh_connected(c->fh, true, NULL));
	assert_int_equal(evbuffer_remove(c->fh->out[INJ_UPSTREAM], b, 8), 8);
	assert_int_equal(get32(b + 4), INJ_PG_SSL_CODE);
	expect_empty(c->fh->out[INJ_UPSTREAM]);
	fh_send(c->fh, INJ_UPSTREAM, "S", 1);
	fh_run(c->fh);
	assert_int_equal(c->fh->start_tls[INJ_UPSTREAM], 1);
	/* Nothing of the key before TLS is up. */
	expect_empty(c->fh->out[INJ_UPSTREAM]);
	assert_true(fh_tls_done(c->fh, INJ_UPSTREAM));
	assert_int_equal(evbuffer_remove(c->fh->out[INJ_UPSTREAM], b, 16), 16);
	assert_int_equal(inj_pg_parse_startup((char *)b, 16, INJ_PG_STARTUP_MAX, &su, &err),
	    INJ_PG_DONE);
	assert_int_equal(su.kind, INJ_PG_CANCEL_REQUEST);
	assert_int_equal(su.pid, UP_PID);
	assert_memory_equal(su.key.p, UP_KEY, 4);
	assert_true(fh_timeout(c->fh));
	assert_string_equal(c->fh->end_reason, "cancel_forwarded");
	teardown((void **)&c);
}

/* Protocol 3.2: credgate's key is 32 bytes, and cancels with it. */
static void
test_cancel_key_v32(void **state)
{
	struct t *t = *state;
	struct inj_pg_str k;
	struct inj_pg_error err;
	struct inj_pg_msg pm;
	unsigned char key[32];
	uint32_t pid = 0;
	struct msg m;
	struct t *c;

	assert_int_equal(fh_start(t->fh), 0);
	send_startup(t, 2, S("user\0ci\0\0"));
	expect_auth(t->fh->out[INJ_CLIENT], INJ_PG_AUTH_CLEARTEXT);
	send_password(t, S("tok"));
	assert_true(fh_allow(t->fh, &t->cred.cred));
	assert_true(fh_connected(t->fh, true, NULL));
	up_auth(t, INJ_PG_AUTH_CLEARTEXT, NULL, 0);
	up_ok_ready(t);
	expect_auth(t->fh->out[INJ_CLIENT], INJ_PG_AUTH_OK);
	do {
		take(t->fh->out[INJ_CLIENT], &m);
	} while (m.type == 'S');
	assert_int_equal(m.type, 'K');
	pm = as_pg(&m);
	assert_int_equal(inj_pg_parse_key(&pm, &pid, &k, &err), 0);
	assert_int_equal(k.len, 32);
	memcpy(key, k.p, 32);
	take(t->fh->out[INJ_CLIENT], &m);
	assert_int_equal(m.type, 'Z');

	assert_int_equal(setup((void **)&c), 0);
	assert_int_equal(fh_start(c->fh), 0);
	send_cancel(c, pid, key, 32);
	assert_int_equal(c->fh->connects, 1);
	teardown((void **)&c);
	/* Its first 4 bytes alone are not the key. */
	assert_int_equal(setup((void **)&c), 0);
	assert_int_equal(fh_start(c->fh), 0);
	send_cancel(c, pid, key, 4);
	assert_int_equal(c->fh->connects, 0);
	teardown((void **)&c);
}

/* ------------------------------------------------------------------ */
/* Timers and drain                                                    */
/* ------------------------------------------------------------------ */

static void
test_startup_timeout(void **state)
{
	struct t *t = *state;
	char text[200];

	assert_int_equal(fh_start(t->fh), 0);
	fh_send(t->fh, INJ_CLIENT, "\0\0\0", 3);
	fh_run(t->fh);
	assert_true(fh_timeout(t->fh));
	expect_fatal(t->fh->out[INJ_CLIENT], "08P01", text, sizeof(text));
	assert_string_equal(text, "authentication timeout");
	expect_empty(t->fh->out[INJ_CLIENT]);
	assert_int_equal(t->fh->refused_status, 408);
	assert_int_equal(t->fh->finishes, 1);
}

static void
test_startup_timeout_silent(void **state)
{
	struct t *t = *state;

	assert_int_equal(fh_start(t->fh), 0);
	assert_true(fh_timeout(t->fh));
	expect_empty(t->fh->out[INJ_CLIENT]);
	assert_int_equal(t->fh->closes, 1);
	assert_string_equal(t->fh->end_reason, "startup_timeout");
}

static void
test_password_timeout(void **state)
{
	struct t *t = *state;

	to_password(t);
	assert_true(fh_timeout(t->fh));
	expect_fatal(t->fh->out[INJ_CLIENT], "08P01", NULL, 0);
	expect_empty(t->fh->out[INJ_CLIENT]);
	assert_int_equal(t->fh->refusals, 1);
	assert_int_equal(t->fh->dones, 0);
}

static void
test_login_timeout(void **state)
{
	struct t *t = *state;

	to_login(t);
	assert_true(fh_timeout(t->fh));
	expect_login_failed(t, "upstream login timeout");
}

static void
test_drain(void **state)
{
	struct t *t = *state;
	bool may;

	assert_int_equal(fh_start(t->fh), 0);
	assert_true(fh_drain(t->fh, &may));
	assert_true(may);
	fh_free(t->fh);
	t->fh = host_new(t);
	to_password(t);
	assert_true(fh_drain(t->fh, &may));
	assert_false(may);
}

int
main(void)
{
#define T(name)	cmocka_unit_test_setup_teardown(name, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_startup_whole),
		T(test_startup_bytewise),
		T(test_ssl_request_offered),
		T(test_ssl_request_not_offered),
		T(test_ssl_request_then_bytes),
		T(test_ssl_request_twice),
		T(test_gssenc_request),
		T(test_direct_tls),
		T(test_direct_tls_not_offered),
		cmocka_unit_test(test_startup_refused),
		T(test_startup_too_long),
		T(test_negotiate_minor),
		T(test_negotiate_option),
		T(test_plaintext_token_refused),
		T(test_certificate_login),
		T(test_certificate_login_without_certificate),
		T(test_certificate_without_certificate_login),
		T(test_route_withdrawn),
		T(test_password_to_proof),
		T(test_password_bytewise),
		T(test_password_at_max),
		T(test_password_over_max),
		T(test_password_wrong_type),
		T(test_password_empty),
		T(test_pipelined),
		cmocka_unit_test(test_refusals),
		T(test_upstream_startup),
		T(test_upstream_startup_route_database),
		T(test_connect_fails),
		T(test_connected_false),
		T(test_login_cleartext),
		T(test_login_md5),
		T(test_login_scram),
		T(test_scram_bad_signature),
		T(test_scram_no_final),
		T(test_scram_ok_after_initial),
		T(test_login_scram_plus),
		T(test_login_scram_without_binding),
		T(test_scram_plus_only_without_binding),
		T(test_unknown_auth),
		T(test_upstream_error_during_login),
		T(test_upstream_closes_during_login),
		cmocka_unit_test(test_login_violations),
		T(test_scram_foreign_nonce),
		T(test_credential_fields),
		T(test_login_notice),
		T(test_client_closes_during_login),
		T(test_login_bytewise),
		T(test_upstream_tls),
		T(test_upstream_tls_bytes_after_s),
		T(test_upstream_tls_refused),
		T(test_upstream_tls_handshake_fails),
		T(test_relay),
		T(test_relay_bytewise),
		T(test_terminate_reuses),
		T(test_terminate_in_transaction),
		T(test_terminate_without_reset_query),
		T(test_terminate_while_draining),
		T(test_pooled_login),
		T(test_idle_timeout),
		T(test_max_session),
		T(test_token_expiry),
		T(test_idle_timeout_mid_message),
		T(test_pooled_params),
		T(test_timer_early),
		T(test_backpressure),
		T(test_backpressure_upstream),
		T(test_upstream_closes_in_relay),
		T(test_client_closes_in_relay),
		T(test_relay_bad_framing),
		T(test_cancel_forwarded),
		T(test_cancel_unknown),
		T(test_cancel_upstream_tls),
		T(test_cancel_key_v32),
		T(test_startup_timeout),
		T(test_startup_timeout_silent),
		T(test_password_timeout),
		T(test_login_timeout),
		T(test_drain),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
