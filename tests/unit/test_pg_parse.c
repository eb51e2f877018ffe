/*
 * test_pg_parse.c: the PostgreSQL wire protocol parsers and writers
 * (injectors/postgres/pg_parse.c).  Every packet is parsed whole and on
 * each of its prefixes (a byte at a time): every prefix must ask for
 * more, and the whole must give the table's answer.  Writers are checked
 * byte for byte and read back by the parsers.
 */
#include "tests/unit/unit.h"

#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "injectors/postgres/pg_parse.h"

/* A packet under construction. */
struct pkt {
	unsigned char b[12000];
	size_t n;
};

static void
add(struct pkt *k, const void *p, size_t n)
{
	assert_true(k->n + n <= sizeof(k->b));
	memcpy(k->b + k->n, p, n);
	k->n += n;
}

static void
add32(struct pkt *k, uint32_t v)
{
	unsigned char c[4] = { v >> 24, v >> 16, v >> 8, v };

	add(k, c, 4);
}

/* Writes the length (the packet's whole size, less skip bytes of type). */
static void
fix_len(struct pkt *k, size_t at)
{
	uint32_t v = (uint32_t)(k->n - at);

	k->b[at] = (unsigned char)(v >> 24);
	k->b[at + 1] = (unsigned char)(v >> 16);
	k->b[at + 2] = (unsigned char)(v >> 8);
	k->b[at + 3] = (unsigned char)v;
}

/* A StartupMessage of version code with the NUL-separated pairs in kv
 * (kvlen bytes, the final NUL included by the caller or not). */
static void
startup(struct pkt *k, uint32_t code, const char *kv, size_t kvlen)
{
	k->n = 0;
	add32(k, 0);
	add32(k, code);
	add(k, kv, kvlen);
	fix_len(k, 0);
}

/* Parses k whole, and every prefix of it, which must need more. */
static int
parse_all_ways(const struct pkt *k, size_t max, struct inj_pg_startup *out,
    struct inj_pg_error *err)
{
	struct inj_pg_startup s;
	struct inj_pg_error e;
	size_t i;
	int r;

	r = inj_pg_parse_startup((const char *)k->b, k->n, max, out, err);
	for (i = 0; i < k->n; i++) {
		int rp = inj_pg_parse_startup((const char *)k->b, i, max, &s, &e);

		/* A prefix may fail early (a bad length is known at 8 bytes),
		 * never succeed early. */
		assert_int_not_equal(rp, INJ_PG_DONE);
		if (rp == INJ_PG_ERROR)
			assert_int_equal(r, INJ_PG_ERROR);
	}
	return r;
}

#define KV(lit) lit, sizeof(lit) - 1

static const struct {
	const char *name;
	uint32_t code;
	const char *kv;
	size_t kvlen;
	int result;
	const char *sqlstate;
	size_t nparams;
} startup_cases[] = {
	{ "user and database", 196608, KV("user\0ci\0database\0ledger\0\0"), INJ_PG_DONE, NULL, 2 },
	{ "3.2 is accepted", 196610, KV("user\0ci\0\0"), INJ_PG_DONE, NULL, 1 },
	{ "3.9 too: the caller negotiates", 196617, KV("user\0ci\0\0"), INJ_PG_DONE, NULL, 1 },
	{ "empty value", 196608, KV("user\0ci\0application_name\0\0\0"), INJ_PG_DONE, NULL, 2 },
	{ "protocol 2", 131072, KV("user\0ci\0\0"), INJ_PG_ERROR, "0A000", 0 },
	{ "protocol 4", 262144, KV("user\0ci\0\0"), INJ_PG_ERROR, "0A000", 0 },
	{ "no user", 196608, KV("database\0x\0\0"), INJ_PG_ERROR, "28000", 0 },
	{ "no parameters", 196608, KV("\0"), INJ_PG_ERROR, "28000", 0 },
	{ "no terminator", 196608, KV("user\0ci\0"), INJ_PG_ERROR, "08P01", 0 },
	{ "value not terminated", 196608, KV("user\0ci"), INJ_PG_ERROR, "08P01", 0 },
	{ "bytes after the terminator", 196608, KV("user\0ci\0\0x"), INJ_PG_ERROR, "08P01", 0 },
	{ "a parameter twice", 196608, KV("user\0ci\0options\0a\0options\0b\0\0"),
	  INJ_PG_ERROR, "08P01", 0 },
	{ "twice in another case", 196608, KV("user\0ci\0Options\0a\0options\0b\0\0"),
	  INJ_PG_ERROR, "08P01", 0 },
	{ "user twice", 196608, KV("user\0ci\0USER\0postgres\0\0"), INJ_PG_ERROR, "08P01", 0 },
	{ "empty body", 196608, KV(""), INJ_PG_ERROR, "08P01", 0 },
};

static void
test_startup_table(void **state)
{
	struct inj_pg_startup s;
	struct inj_pg_error e;
	struct pkt k;
	size_t i;
	int r;

	(void)state;
	for (i = 0; i < sizeof(startup_cases) / sizeof(startup_cases[0]); i++) {
		startup(&k, startup_cases[i].code, startup_cases[i].kv, startup_cases[i].kvlen);
		memset(&e, 0, sizeof(e));
		r = parse_all_ways(&k, INJ_PG_STARTUP_MAX, &s, &e);
		if (r != startup_cases[i].result)
			fail_msg("%s: %d, not %d (%s)", startup_cases[i].name, r,
			    startup_cases[i].result, e.reason ? e.reason : "-");
		if (r == INJ_PG_ERROR) {
			assert_string_equal(e.sqlstate, startup_cases[i].sqlstate);
			assert_non_null(e.reason);
			continue;
		}
		assert_int_equal(s.kind, INJ_PG_STARTUP);
		assert_int_equal(s.len, k.n);
		assert_int_equal(s.major, 3);
		assert_int_equal(s.minor, startup_cases[i].code & 0xffff);
		assert_int_equal(s.nparams, startup_cases[i].nparams);
	}
}

static void
test_startup_params(void **state)
{
	const struct inj_pg_str *v;
	struct inj_pg_startup s;
	struct inj_pg_error e;
	struct pkt k;

	(void)state;
	startup(&k, 196608, KV("user\0ci\0database\0ledger\0application_name\0psql\0\0"));
	assert_int_equal(parse_all_ways(&k, INJ_PG_STARTUP_MAX, &s, &e), INJ_PG_DONE);
	assert_non_null(v = inj_pg_startup_param(&s, "database"));
	assert_int_equal(v->len, 6);
	assert_memory_equal(v->p, "ledger", 6);
	assert_non_null(v = inj_pg_startup_param(&s, "application_name"));
	assert_memory_equal(v->p, "psql", 4);
	/* Exact case: PostgreSQL's own names are lower case. */
	assert_null(inj_pg_startup_param(&s, "Database"));
	assert_null(inj_pg_startup_param(&s, "options"));
}

static void
test_startup_limits(void **state)
{
	char kv[11000];
	struct inj_pg_startup s;
	struct inj_pg_error e;
	struct pkt k;
	size_t n, i;

	(void)state;
	/* The length field alone decides: too short, too long. */
	k.n = 0;
	add32(&k, 7);
	add32(&k, 196608);
	assert_int_equal(inj_pg_parse_startup((char *)k.b, k.n, INJ_PG_STARTUP_MAX, &s, &e),
	    INJ_PG_ERROR);
	assert_string_equal(e.sqlstate, "08P01");
	k.n = 0;
	add32(&k, 10001);
	add32(&k, 196608);
	assert_int_equal(inj_pg_parse_startup((char *)k.b, k.n, INJ_PG_STARTUP_MAX, &s, &e),
	    INJ_PG_ERROR);
	/* At the limit exactly: accepted. */
	n = (size_t)snprintf(kv, sizeof(kv), "user%cci%capplication_name%c", 0, 0, 0);
	while (n + 8 + 2 < INJ_PG_STARTUP_MAX)
		kv[n++] = 'a';
	kv[n++] = '\0';
	kv[n++] = '\0';
	startup(&k, 196608, kv, n);
	assert_int_equal(k.n, INJ_PG_STARTUP_MAX);
	assert_int_equal(inj_pg_parse_startup((char *)k.b, k.n, INJ_PG_STARTUP_MAX, &s, &e),
	    INJ_PG_DONE);
	/* A lower limit given by the caller holds. */
	assert_int_equal(inj_pg_parse_startup((char *)k.b, k.n, 2048, &s, &e), INJ_PG_ERROR);
	/* INJ_PG_PARAMS_MAX parameters, then one more. */
	for (i = 0, n = 0; i < INJ_PG_PARAMS_MAX; i++)
		n += (size_t)snprintf(kv + n, sizeof(kv) - n, "%s%zu%c1%c",
		    i == 0 ? "user" : "p", i, 0, 0);
	kv[n] = '\0';
	startup(&k, 196608, kv, n + 1);
	assert_int_equal(inj_pg_parse_startup((char *)k.b, k.n, INJ_PG_STARTUP_MAX, &s, &e),
	    INJ_PG_ERROR);	/* "user0" is not "user" */
	memcpy(kv, "user", 4);
	n = (size_t)snprintf(kv, sizeof(kv), "user%cci%c", 0, 0);
	for (i = 1; i < INJ_PG_PARAMS_MAX; i++)
		n += (size_t)snprintf(kv + n, sizeof(kv) - n, "p%zu%c1%c", i, 0, 0);
	kv[n] = '\0';
	startup(&k, 196608, kv, n + 1);
	assert_int_equal(inj_pg_parse_startup((char *)k.b, k.n, INJ_PG_STARTUP_MAX, &s, &e),
	    INJ_PG_DONE);
	assert_int_equal(s.nparams, INJ_PG_PARAMS_MAX);
	n += (size_t)snprintf(kv + n, sizeof(kv) - n, "one%cmore%c", 0, 0);
	kv[n] = '\0';
	startup(&k, 196608, kv, n + 1);
	assert_int_equal(inj_pg_parse_startup((char *)k.b, k.n, INJ_PG_STARTUP_MAX, &s, &e),
	    INJ_PG_ERROR);
	assert_string_equal(e.sqlstate, "08P01");
}

/* What goes upstream: the route's user and database, the allowed
 * settings as the caller wrote them, nothing else. */
static void
test_startup_upstream(void **state)
{
	static const char *const allow_options[] = { "options", "application_name", NULL };
	struct inj_pg_param out[INJ_PG_PARAMS_MAX];
	struct inj_pg_str unknown[INJ_PG_PARAMS_MAX];
	struct inj_pg_startup s;
	struct inj_pg_error e;
	struct pkt k;
	size_t n, nu;

	(void)state;
	startup(&k, 196610, KV("user\0postgres\0database\0template1\0"
	    "application_name\0psql\0options\0-c ignore_system_indexes=on\0"
	    "replication\0database\0Ignore_System_Indexes\0on\0client_encoding\0UTF8\0"
	    "_pq_.compression\0on\0DateStyle\0ISO\0\0"));
	assert_int_equal(parse_all_ways(&k, INJ_PG_STARTUP_MAX, &s, &e), INJ_PG_DONE);
	n = inj_pg_startup_upstream(&s, inj_pg_startup_allow_default, "svc_ledger", "ledger",
	    out, unknown, &nu);
	assert_int_equal(n, 5);
	assert_memory_equal(out[0].name.p, "user", 4);
	assert_int_equal(out[0].value.len, 10);
	assert_memory_equal(out[0].value.p, "svc_ledger", 10);
	assert_memory_equal(out[1].name.p, "database", 8);
	assert_memory_equal(out[1].value.p, "ledger", 6);
	assert_memory_equal(out[2].name.p, "application_name", 16);
	assert_memory_equal(out[2].value.p, "psql", 4);
	assert_memory_equal(out[3].name.p, "client_encoding", 15);
	assert_int_equal(out[4].name.len, 9);
	assert_memory_equal(out[4].name.p, "DateStyle", 9);
	assert_int_equal(nu, 1);
	assert_int_equal(unknown[0].len, 16);
	assert_memory_equal(unknown[0].p, "_pq_.compression", 16);

	/* No database: none is sent.  An allow list naming options (or user)
	 * still does not pass them. */
	n = inj_pg_startup_upstream(&s, allow_options, "svc", NULL, out, unknown, &nu);
	assert_int_equal(n, 2);
	assert_memory_equal(out[0].value.p, "svc", 3);
	assert_memory_equal(out[1].name.p, "application_name", 16);
	/* An empty allow list: the route's user alone. */
	n = inj_pg_startup_upstream(&s, NULL, "svc", NULL, out, unknown, &nu);
	assert_int_equal(n, 1);
}

static void
test_special_requests(void **state)
{
	struct inj_pg_startup s;
	struct inj_pg_error e;
	struct pkt k;
	unsigned char key[256];
	size_t i;

	(void)state;
	k.n = 0;
	add32(&k, 8);
	add32(&k, INJ_PG_SSL_CODE);
	assert_int_equal(parse_all_ways(&k, INJ_PG_STARTUP_MAX, &s, &e), INJ_PG_DONE);
	assert_int_equal(s.kind, INJ_PG_SSL_REQUEST);
	assert_int_equal(s.len, 8);
	k.n = 0;
	add32(&k, 8);
	add32(&k, INJ_PG_GSSENC_CODE);
	assert_int_equal(parse_all_ways(&k, INJ_PG_STARTUP_MAX, &s, &e), INJ_PG_DONE);
	assert_int_equal(s.kind, INJ_PG_GSSENC_REQUEST);
	/* An SSLRequest with a body is not one. */
	k.n = 0;
	add32(&k, 12);
	add32(&k, INJ_PG_SSL_CODE);
	add32(&k, 0);
	assert_int_equal(parse_all_ways(&k, INJ_PG_STARTUP_MAX, &s, &e), INJ_PG_ERROR);
	assert_string_equal(e.sqlstate, "08P01");
	/* Cancel: 3.0's 4-byte key and 3.2's longer ones, up to 256. */
	for (i = 0; i < sizeof(key); i++)
		key[i] = (unsigned char)i;
	for (i = 0; i <= 260; i++) {
		int want = i >= 4 && i <= 256 ? INJ_PG_DONE : INJ_PG_ERROR;

		k.n = 0;
		add32(&k, 0);
		add32(&k, INJ_PG_CANCEL_CODE);
		add32(&k, 4242);
		add(&k, key, i < sizeof(key) ? i : sizeof(key));
		while (k.n < 12 + i)
			add(&k, "x", 1);
		fix_len(&k, 0);
		assert_int_equal(parse_all_ways(&k, INJ_PG_STARTUP_MAX, &s, &e), want);
		if (want != INJ_PG_DONE)
			continue;
		assert_int_equal(s.kind, INJ_PG_CANCEL_REQUEST);
		assert_int_equal(s.pid, 4242);
		assert_int_equal(s.key.len, i);
		assert_memory_equal(s.key.p, key, i);
	}
}

static void
test_messages(void **state)
{
	struct inj_pg_msg m;
	struct inj_pg_error e;
	struct inj_pg_str pw;
	struct pkt k;
	size_t i;

	(void)state;
	/* A password message, whole and on every prefix. */
	k.n = 0;
	add(&k, "p", 1);
	add32(&k, 0);
	add(&k, "eyJ.token.sig", 14);
	fix_len(&k, 1);
	for (i = 0; i < k.n; i++)
		assert_int_equal(inj_pg_parse_msg((char *)k.b, i, 1024, &m, &e), INJ_PG_NEED_MORE);
	assert_int_equal(inj_pg_parse_msg((char *)k.b, k.n, 1024, &m, &e), INJ_PG_DONE);
	assert_int_equal(m.type, 'p');
	assert_int_equal(m.len, k.n);
	assert_int_equal(inj_pg_password(&m, &pw, &e), 0);
	assert_int_equal(pw.len, 13);
	assert_memory_equal(pw.p, "eyJ.token.sig", 13);
	/* Followed by more: only the one message is taken. */
	add(&k, "X\0\0\0\4", 5);
	assert_int_equal(inj_pg_parse_msg((char *)k.b, k.n, 1024, &m, &e), INJ_PG_DONE);
	assert_int_equal(m.len, k.n - 5);
	/* Over the caller's limit: refused as soon as the length is read. */
	assert_int_equal(inj_pg_parse_msg((char *)k.b, 5, 10, &m, &e), INJ_PG_ERROR);
	assert_string_equal(e.sqlstate, "08P01");
	/* A length under 4. */
	assert_int_equal(inj_pg_parse_msg("p\0\0\0\3", 5, 1024, &m, &e), INJ_PG_ERROR);
	/* A password with a NUL inside, or none at the end, or another type. */
	k.n = 0;
	add(&k, "p", 1);
	add32(&k, 0);
	add(&k, "a\0b", 4);
	fix_len(&k, 1);
	assert_int_equal(inj_pg_parse_msg((char *)k.b, k.n, 1024, &m, &e), INJ_PG_DONE);
	assert_int_equal(inj_pg_password(&m, &pw, &e), CG_ERR_FORMAT);
	assert_string_equal(e.sqlstate, "08P01");
	k.n = 0;
	add(&k, "p", 1);
	add32(&k, 0);
	add(&k, "abc", 3);
	fix_len(&k, 1);
	assert_int_equal(inj_pg_parse_msg((char *)k.b, k.n, 1024, &m, &e), INJ_PG_DONE);
	assert_int_equal(inj_pg_password(&m, &pw, &e), CG_ERR_FORMAT);
	k.b[0] = 'Q';
	add(&k, "", 1);
	fix_len(&k, 1);
	assert_int_equal(inj_pg_parse_msg((char *)k.b, k.n, 1024, &m, &e), INJ_PG_DONE);
	assert_int_equal(inj_pg_password(&m, &pw, &e), CG_ERR_FORMAT);
}

/* An 'R' message with the given body after the code; a's spans point
 * into a packet that lives until the next call. */
static int
auth(uint32_t code, const void *body, size_t n, struct inj_pg_auth *a)
{
	static struct pkt k;
	struct inj_pg_error e;
	struct inj_pg_msg m;

	k.n = 0;
	add(&k, "R", 1);
	add32(&k, 0);
	add32(&k, code);
	add(&k, body, n);
	fix_len(&k, 1);
	assert_int_equal(inj_pg_parse_msg((char *)k.b, k.n, 4096, &m, &e), INJ_PG_DONE);
	return inj_pg_parse_auth(&m, a, &e);
}

static void
test_auth_requests(void **state)
{
	struct inj_pg_auth a;

	(void)state;
	assert_int_equal(auth(0, "", 0, &a), 0);
	assert_int_equal(a.code, INJ_PG_AUTH_OK);
	assert_int_equal(auth(3, "", 0, &a), 0);
	assert_int_equal(a.code, INJ_PG_AUTH_CLEARTEXT);
	assert_int_equal(auth(3, "x", 1, &a), CG_ERR_FORMAT);
	assert_int_equal(auth(5, "\1\2\3\4", 4, &a), 0);
	assert_memory_equal(a.salt, "\1\2\3\4", 4);
	assert_int_equal(auth(5, "\1\2\3", 3, &a), CG_ERR_FORMAT);
	assert_int_equal(auth(10, KV("SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0"), &a), 0);
	assert_true(a.scram_sha256);
	assert_true(a.scram_sha256_plus);
	assert_int_equal(auth(10, KV("SCRAM-SHA-256\0\0"), &a), 0);
	assert_true(a.scram_sha256);
	assert_false(a.scram_sha256_plus);
	/* A mechanism whose name only starts like one is not it. */
	assert_int_equal(auth(10, KV("SCRAM-SHA-2560\0\0"), &a), 0);
	assert_false(a.scram_sha256);
	assert_int_equal(auth(10, KV("SCRAM-SHA-256\0"), &a), CG_ERR_FORMAT);
	assert_int_equal(auth(10, KV("SCRAM-SHA-256"), &a), CG_ERR_FORMAT);
	assert_int_equal(auth(11, KV("r=abc,s=c2FsdA==,i=4096"), &a), 0);
	assert_int_equal(a.data.len, 23);
	assert_int_equal(auth(12, KV("v=abc"), &a), 0);
	assert_memory_equal(a.data.p, "v=abc", 5);
	/* Codes credgate does not speak come back for the caller to refuse. */
	assert_int_equal(auth(7, "", 0, &a), 0);
	assert_int_equal(a.code, INJ_PG_AUTH_GSS);
}

static void
test_notice_key_status(void **state)
{
	struct inj_pg_notice n;
	struct inj_pg_error e;
	struct inj_pg_msg m;
	struct inj_pg_str name, value, key;
	uint32_t pid;
	struct pkt k;

	(void)state;
	k.n = 0;
	add(&k, "E", 1);
	add32(&k, 0);
	add(&k, KV("SFATAL\0VFATAL\0C28P01\0Mpassword authentication failed\0\0"));
	fix_len(&k, 1);
	assert_int_equal(inj_pg_parse_msg((char *)k.b, k.n, 4096, &m, &e), INJ_PG_DONE);
	assert_int_equal(inj_pg_parse_notice(&m, &n, &e), 0);
	assert_memory_equal(n.sqlstate.p, "28P01", 5);
	assert_memory_equal(n.severity.p, "FATAL", 5);
	assert_int_equal(n.message.len, 30);
	k.n -= 1;	/* no final NUL */
	fix_len(&k, 1);
	assert_int_equal(inj_pg_parse_msg((char *)k.b, k.n, 4096, &m, &e), INJ_PG_DONE);
	assert_int_equal(inj_pg_parse_notice(&m, &n, &e), CG_ERR_FORMAT);

	k.n = 0;
	add(&k, "K", 1);
	add32(&k, 0);
	add32(&k, 77);
	add(&k, "abcd", 4);
	fix_len(&k, 1);
	assert_int_equal(inj_pg_parse_msg((char *)k.b, k.n, 4096, &m, &e), INJ_PG_DONE);
	assert_int_equal(inj_pg_parse_key(&m, &pid, &key, &e), 0);
	assert_int_equal(pid, 77);
	assert_int_equal(key.len, 4);
	k.n -= 1;
	fix_len(&k, 1);
	assert_int_equal(inj_pg_parse_msg((char *)k.b, k.n, 4096, &m, &e), INJ_PG_DONE);
	assert_int_equal(inj_pg_parse_key(&m, &pid, &key, &e), CG_ERR_FORMAT);

	k.n = 0;
	add(&k, "S", 1);
	add32(&k, 0);
	add(&k, KV("server_version\00016.4\0"));
	fix_len(&k, 1);
	assert_int_equal(inj_pg_parse_msg((char *)k.b, k.n, 4096, &m, &e), INJ_PG_DONE);
	assert_int_equal(inj_pg_parse_param_status(&m, &name, &value, &e), 0);
	assert_int_equal(name.len, 14);
	assert_memory_equal(value.p, "16.4", 4);
}

/* The buffer's bytes, for comparison. */
static size_t
drain(struct evbuffer *b, unsigned char *out, size_t size)
{
	size_t n = evbuffer_get_length(b);

	assert_true(n <= size);
	assert_int_equal(evbuffer_remove(b, out, n), (int)n);
	return n;
}

static void
test_writers(void **state)
{
	struct evbuffer *b = evbuffer_new();
	unsigned char got[1024];
	struct inj_pg_param pa[2] = {
		{ { "user", 4 }, { "svc_ledger", 10 } },
		{ { "database", 8 }, { "ledger", 6 } },
	};
	struct inj_pg_str opt = { "_pq_.unknown", 12 };
	struct inj_pg_startup s;
	struct inj_pg_notice n;
	struct inj_pg_error e;
	struct inj_pg_msg m;
	struct inj_pg_str pw;
	size_t len;

	(void)state;
	assert_non_null(b);
	assert_int_equal(inj_pg_write_error(b, "FATAL", "28000", "access denied"), 0);
	len = drain(b, got, sizeof(got));
	assert_int_equal(inj_pg_parse_msg((char *)got, len, 4096, &m, &e), INJ_PG_DONE);
	assert_int_equal(m.len, len);
	assert_int_equal(inj_pg_parse_notice(&m, &n, &e), 0);
	assert_memory_equal(n.sqlstate.p, "28000", 5);
	assert_int_equal(n.message.len, 13);
	assert_int_equal(inj_pg_write_error(b, "FATAL", "2800", "x"), CG_ERR_FORMAT);
	assert_int_equal(evbuffer_get_length(b), 0);

	assert_int_equal(inj_pg_write_auth(b, INJ_PG_AUTH_CLEARTEXT, NULL, 0), 0);
	len = drain(b, got, sizeof(got));
	assert_int_equal(len, 9);
	assert_memory_equal(got, "R\0\0\0\10\0\0\0\3", 9);

	assert_int_equal(inj_pg_write_startup(b, pa, 2), 0);
	len = drain(b, got, sizeof(got));
	assert_int_equal(inj_pg_parse_startup((char *)got, len, INJ_PG_STARTUP_MAX, &s, &e),
	    INJ_PG_DONE);
	assert_int_equal(s.minor, 0);
	assert_int_equal(s.nparams, 2);
	assert_memory_equal(inj_pg_startup_param(&s, "database")->p, "ledger", 6);
	pa[1].value.p = "led\0ger";
	pa[1].value.len = 7;
	assert_int_equal(inj_pg_write_startup(b, pa, 2), CG_ERR_FORMAT);
	assert_int_equal(evbuffer_get_length(b), 0);

	assert_int_equal(inj_pg_write_password(b, "s3cret", 6, false), 0);
	len = drain(b, got, sizeof(got));
	assert_int_equal(inj_pg_parse_msg((char *)got, len, 4096, &m, &e), INJ_PG_DONE);
	assert_int_equal(inj_pg_password(&m, &pw, &e), 0);
	assert_int_equal(pw.len, 6);
	assert_int_equal(inj_pg_write_password(b, "s3\0cret", 7, false), CG_ERR_FORMAT);
	assert_int_equal(inj_pg_write_password(b, "n,,n=,r=abc", 11, true), 0);
	len = drain(b, got, sizeof(got));
	assert_int_equal(len, 16);	/* no NUL after SASL data */

	assert_int_equal(inj_pg_write_ssl_request(b), 0);
	len = drain(b, got, sizeof(got));
	assert_int_equal(inj_pg_parse_startup((char *)got, len, INJ_PG_STARTUP_MAX, &s, &e),
	    INJ_PG_DONE);
	assert_int_equal(s.kind, INJ_PG_SSL_REQUEST);

	assert_int_equal(inj_pg_write_cancel(b, 99, "wxyz", 4), 0);
	len = drain(b, got, sizeof(got));
	assert_int_equal(inj_pg_parse_startup((char *)got, len, INJ_PG_STARTUP_MAX, &s, &e),
	    INJ_PG_DONE);
	assert_int_equal(s.kind, INJ_PG_CANCEL_REQUEST);
	assert_int_equal(s.pid, 99);
	assert_memory_equal(s.key.p, "wxyz", 4);
	assert_int_equal(inj_pg_write_cancel(b, 99, "xyz", 3), CG_ERR_FORMAT);

	assert_int_equal(inj_pg_write_key(b, 7, "0123456789abcdef", 16), 0);
	len = drain(b, got, sizeof(got));
	assert_int_equal(len, 1 + 4 + 4 + 16);
	assert_int_equal(got[0], 'K');

	assert_int_equal(inj_pg_write_negotiate(b, 2, &opt, 1), 0);
	len = drain(b, got, sizeof(got));
	assert_int_equal(len, 1 + 4 + 4 + 4 + 13);
	assert_memory_equal(got + 9, "\0\0\0\1_pq_.unknown\0", 17);

	assert_int_equal(inj_pg_write_param_status(b, "server_version", "16.4"), 0);
	len = drain(b, got, sizeof(got));
	assert_int_equal(inj_pg_parse_msg((char *)got, len, 4096, &m, &e), INJ_PG_DONE);
	assert_int_equal(m.type, 'S');
	assert_int_equal(inj_pg_write_ready(b, 'I'), 0);
	len = drain(b, got, sizeof(got));
	assert_memory_equal(got, "Z\0\0\0\5I", 6);
	assert_int_equal(inj_pg_write_ready(b, 'x'), CG_ERR_FORMAT);
	evbuffer_free(b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_startup_table),
		cmocka_unit_test(test_startup_params),
		cmocka_unit_test(test_startup_limits),
		cmocka_unit_test(test_startup_upstream),
		cmocka_unit_test(test_special_requests),
		cmocka_unit_test(test_messages),
		cmocka_unit_test(test_auth_requests),
		cmocka_unit_test(test_notice_key_status),
		cmocka_unit_test(test_writers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
