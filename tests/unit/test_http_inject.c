/*
 * test_http_inject.c: the HTTP injector.  Reading the caller's bearer
 * token, and the exact upstream request and caller response heads it
 * writes: what is removed, what is added, and that nothing is written when
 * it refuses.
 */
#include "tests/unit/unit.h"

#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "injectors/injector.h"
#include "proxy/http_parse.h"

#define S(lit) lit, sizeof(lit) - 1
/* Configuration strings are not const in struct inj_http_cfg. */
#define MUT(s) ((char *)(uintptr_t)(s))

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

struct kv {
	const char *name;
	const char *value;
	size_t len;		/* 0: strlen(value) */
};

struct kvs {
	const struct kv *v;
	size_t n;
};

static const char *
kv_field(const void *ctx, const char *name, size_t *len)
{
	const struct kvs *t = ctx;
	size_t i;

	for (i = 0; i < t->n; i++) {
		if (strcmp(t->v[i].name, name) == 0) {
			*len = t->v[i].len ? t->v[i].len : strlen(t->v[i].value);
			return t->v[i].value;
		}
	}
	return NULL;
}

struct parsed {
	struct http_head h;
	struct http_field fields[32];
};

static void
parse(struct parsed *p, const char *in, size_t len, bool is_request)
{
	static const struct http_limits lim = {
		.max_line = 1024, .max_head = 8192, .max_fields = 32, .max_trailer = 0,
	};
	struct http_error err;

	if (http_parse_head(in, len, is_request, &lim, &p->h, p->fields, &err) !=
	    HTTP_PARSE_DONE) {
		print_error("parse: %d %s\n", err.status, err.reason);
		fail();
	}
}

/* The buffer's bytes as a string (caller frees). */
static char *
drain(struct evbuffer *b)
{
	size_t n = evbuffer_get_length(b);
	char *s = malloc(n + 1);

	assert_non_null(s);
	assert_int_equal(evbuffer_remove(b, s, n), (int)n);
	s[n] = '\0';
	return s;
}

static const struct inj_http_req_ctx plain_ctx = {
	.client_addr = "192.0.2.7",
	.proto = "https",
	.request_id = "req-1",
	.framing = INJ_FRAMING_NONE,
};

/* Writes the request and compares the whole head. */
static void
expect_request(const char *in, size_t len, const struct inj_http_cfg *cfg,
    const struct kvs *fields, const struct inj_http_req_ctx *ctx, const char *want)
{
	struct parsed p;
	struct inj_cred cred = { kv_field, fields };
	struct evbuffer *out = evbuffer_new();
	const char *reason = "unset";
	char *got;
	int r;

	assert_non_null(out);
	parse(&p, in, len, true);
	r = inj_http_write_request(&p.h, cfg, &cred, ctx, out, &reason);
	if (r != 0) {
		print_error("write_request: %d %s\n", r, reason ? reason : "-");
		fail();
	}
	got = drain(out);
	assert_string_equal(got, want);
	free(got);
	evbuffer_free(out);
}

/* Writes the request, expects an error and an untouched buffer. */
static void
expect_refused(const char *in, size_t len, const struct inj_http_cfg *cfg,
    const struct kvs *fields, const struct inj_http_req_ctx *ctx, int want_r,
    const char *want_reason)
{
	struct parsed p;
	struct inj_cred cred = { kv_field, fields };
	struct evbuffer *out = evbuffer_new();
	const char *reason = NULL;
	size_t before, after;

	assert_non_null(out);
	assert_int_equal(evbuffer_add(out, "KEEP", 4), 0);
	parse(&p, in, len, true);
	secmem_stats(&before, NULL);
	assert_int_equal(inj_http_write_request(&p.h, cfg, &cred, ctx, out, &reason), want_r);
	secmem_stats(&after, NULL);
	assert_int_equal(after, before);	/* temporaries freed (and wiped) */
	assert_non_null(reason);
	if (want_reason != NULL)
		assert_string_equal(reason, want_reason);
	assert_int_equal(evbuffer_get_length(out), 4);
	evbuffer_free(out);
}

static const struct kv token_kv[] = { { "token", "legacy-token", 0 } };
static const struct kvs token_fields = { token_kv, 1 };

/* ------------------------------------------------------------------ */
/* Each inject kind's exact output                                     */
/* ------------------------------------------------------------------ */

static void
test_bearer(void **state)
{
	struct inj_http_cfg cfg = { .kind = INJ_HTTP_BEARER };

	expect_request(S("GET /x?a=1 HTTP/1.1\r\nHost: svc\r\n"
	    "Authorization: Bearer caller.jwt\r\nAccept: */*\r\n\r\n"),
	    &cfg, &token_fields, &plain_ctx,
	    "GET /x?a=1 HTTP/1.1\r\n"
	    "Host: svc\r\n"
	    "Accept: */*\r\n"
	    "Authorization: Bearer legacy-token\r\n"
	    "X-Forwarded-For: 192.0.2.7\r\n"
	    "Forwarded: for=192.0.2.7;proto=https\r\n"
	    "X-Request-Id: req-1\r\n"
	    "\r\n");
}

static void
test_bearer_custom_field(void **state)
{
	static const struct kv kv[] = { { "api", "A.b-c" , 0 } };
	static const struct kvs f = { kv, 1 };
	struct inj_http_cfg cfg = { .kind = INJ_HTTP_BEARER, .field = MUT("api") };
	struct inj_http_req_ctx ctx = { .framing = INJ_FRAMING_NONE };

	/* HTTP/1.0 in, HTTP/1.1 out; no forwarding fields without an address. */
	expect_request(S("GET / HTTP/1.0\r\n\r\n"), &cfg, &f, &ctx,
	    "GET / HTTP/1.1\r\nAuthorization: Bearer A.b-c\r\n\r\n");
}

static void
test_basic(void **state)
{
	static const struct kv kv[] = {
		{ "username", "Aladdin", 0 }, { "password", "open sesame", 0 },
		{ "u2", "svc", 0 }, { "p2", "pa:ss\r\n", 0 },
	};
	static const struct kvs f = { kv, 4 };
	struct inj_http_cfg cfg = { .kind = INJ_HTTP_BASIC };
	struct inj_http_req_ctx ctx = { .framing = INJ_FRAMING_NONE };

	expect_request(S("GET / HTTP/1.1\r\nHost: a\r\nauthorization: Basic eDp5\r\n\r\n"),
	    &cfg, &f, &ctx,
	    "GET / HTTP/1.1\r\nHost: a\r\n"
	    "Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n\r\n");
	/* Other field names; any byte is fine once base64-encoded. */
	cfg.username_field = MUT("u2");
	cfg.password_field = MUT("p2");
	expect_request(S("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), &cfg, &f, &ctx,
	    "GET / HTTP/1.1\r\nHost: a\r\n"
	    "Authorization: Basic c3ZjOnBhOnNzDQo=\r\n\r\n");
}

static void
test_header(void **state)
{
	static const struct kv kv[] = { { "key", "k1", 0 }, { "id", "7", 0 } };
	static const struct kvs f = { kv, 2 };
	struct inj_http_cfg cfg = {
		.kind = INJ_HTTP_HEADER,
		.header = MUT("X-Api-Key"),
		.value_template = MUT("Key ${key}/${id} $x {y}"),
	};
	struct inj_http_req_ctx ctx = { .framing = INJ_FRAMING_NONE };

	/* The caller's own copies go, in any letter case; its Authorization
	 * goes too. */
	expect_request(S("GET / HTTP/1.1\r\nHost: a\r\nx-api-key: mine\r\n"
	    "X-API-KEY: also\r\nAUTHORIZATION: Bearer t\r\nX-Keep: 1\r\n\r\n"),
	    &cfg, &f, &ctx,
	    "GET / HTTP/1.1\r\nHost: a\r\nX-Keep: 1\r\n"
	    "X-Api-Key: Key k1/7 $x {y}\r\n\r\n");
}

static void
test_query(void **state)
{
	static const struct kv kv[] = { { "token", "s e/c&=\xc3\xa9~", 0 } };
	static const struct kvs f = { kv, 1 };
	struct inj_http_cfg cfg = { .kind = INJ_HTTP_QUERY, .query_param = MUT("api_key") };
	struct inj_http_req_ctx ctx = { .framing = INJ_FRAMING_NONE };

	/* Every pair named api_key goes, also percent-encoded; lookalikes
	 * stay. */
	expect_request(S("GET /v1/items?api_key=evil&b=2&%61pi_key=evil2&api_keyx=3"
	    "&c&API_KEY=4&api%5Fkey&api_key%3D=5 HTTP/1.1\r\nHost: a\r\n\r\n"),
	    &cfg, &f, &ctx,
	    "GET /v1/items?b=2&api_keyx=3&c&API_KEY=4&api_key%3D=5"
	    "&api_key=s%20e%2Fc%26%3D%C3%A9~ HTTP/1.1\r\nHost: a\r\n\r\n");
	expect_request(S("GET /v1 HTTP/1.1\r\nHost: a\r\n\r\n"), &cfg, &f, &ctx,
	    "GET /v1?api_key=s%20e%2Fc%26%3D%C3%A9~ HTTP/1.1\r\nHost: a\r\n\r\n");
	expect_request(S("GET /v1?api_key=x HTTP/1.1\r\nHost: a\r\n\r\n"), &cfg, &f, &ctx,
	    "GET /v1?api_key=s%20e%2Fc%26%3D%C3%A9~ HTTP/1.1\r\nHost: a\r\n\r\n");
	expect_request(S("GET /v1? HTTP/1.1\r\nHost: a\r\n\r\n"), &cfg, &f, &ctx,
	    "GET /v1?api_key=s%20e%2Fc%26%3D%C3%A9~ HTTP/1.1\r\nHost: a\r\n\r\n");
	/* No path to add it to. */
	expect_refused(S("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"), &cfg, &f, &ctx,
	    CG_ERR_FORMAT, NULL);
}

/* ------------------------------------------------------------------ */
/* The request line and Host                                           */
/* ------------------------------------------------------------------ */

#define SPAN(lit) { lit, sizeof(lit) - 1 }

/* A target in absolute-form goes out in origin-form; the Host is the one
 * the proxy says (the target's authority), first, in place of the
 * caller's. */
static void
test_absolute_form(void **state)
{
	static const struct kv kv[] = { { "token", "t/k", 0 } };
	static const struct kvs qf = { kv, 1 };
	struct inj_http_cfg cfg = { .kind = INJ_HTTP_BEARER };
	struct inj_http_cfg qcfg = { .kind = INJ_HTTP_QUERY, .query_param = MUT("api_key") };
	struct inj_http_req_ctx ctx = {
		.framing = INJ_FRAMING_NONE,
		.host = SPAN("example.com:8080"),
		.default_host = "upstream:81",
	};
	struct inj_http_req_ctx bare = { .framing = INJ_FRAMING_NONE };

	expect_request(S("GET http://example.com:8080/path?q HTTP/1.1\r\nAccept: */*\r\n"
	    "Host: other\r\nConnection: Host\r\n\r\n"),
	    &cfg, &token_fields, &ctx,
	    "GET /path?q HTTP/1.1\r\nHost: example.com:8080\r\nAccept: */*\r\n"
	    "Authorization: Bearer legacy-token\r\n\r\n");
	/* HTTP/1.0 without Host: the authority, not the upstream's. */
	expect_request(S("GET HTTP://example.com:8080 HTTP/1.0\r\n\r\n"),
	    &cfg, &token_fields, &ctx,
	    "GET / HTTP/1.1\r\nHost: example.com:8080\r\n"
	    "Authorization: Bearer legacy-token\r\n\r\n");
	/* No path: "/"; an empty query stays as sent. */
	expect_request(S("GET http://a?x=1 HTTP/1.1\r\nHost: a\r\n\r\n"),
	    &cfg, &token_fields, &bare,
	    "GET /?x=1 HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer legacy-token\r\n\r\n");
	expect_request(S("GET https://a/p? HTTP/1.1\r\nHost: a\r\n\r\n"),
	    &cfg, &token_fields, &bare,
	    "GET /p? HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer legacy-token\r\n\r\n");
	/* The query parameter goes into the path and query, not the URI. */
	expect_request(S("GET http://example.com:8080?b=2&api_key=evil HTTP/1.1\r\n"
	    "Host: example.com:8080\r\n\r\n"), &qcfg, &qf, &ctx,
	    "GET /?b=2&api_key=t%2Fk HTTP/1.1\r\nHost: example.com:8080\r\n\r\n");
	expect_request(S("GET http://a/v1 HTTP/1.1\r\nHost: a\r\n\r\n"), &qcfg, &qf, &bare,
	    "GET /v1?api_key=t%2Fk HTTP/1.1\r\nHost: a\r\n\r\n");
}

/* A request without Host (HTTP/1.0) gets the upstream's; one with a Host
 * keeps it where it is. */
static void
test_default_host(void **state)
{
	struct inj_http_cfg cfg = { .kind = INJ_HTTP_BEARER };
	struct inj_http_req_ctx ctx = {
		.client_addr = "192.0.2.7",
		.framing = INJ_FRAMING_NONE,
		.default_host = "[2001:db8::5]:8080",
	};

	expect_request(S("GET /a?b HTTP/1.0\r\nAccept: */*\r\n\r\n"),
	    &cfg, &token_fields, &ctx,
	    "GET /a?b HTTP/1.1\r\nHost: [2001:db8::5]:8080\r\nAccept: */*\r\n"
	    "Authorization: Bearer legacy-token\r\nX-Forwarded-For: 192.0.2.7\r\n"
	    "Forwarded: for=192.0.2.7\r\n\r\n");
	/* An empty Host is no Host. */
	expect_request(S("GET / HTTP/1.0\r\nX-A: 1\r\nHost:\r\n\r\n"),
	    &cfg, &token_fields, &ctx,
	    "GET / HTTP/1.1\r\nHost: [2001:db8::5]:8080\r\nX-A: 1\r\n"
	    "Authorization: Bearer legacy-token\r\nX-Forwarded-For: 192.0.2.7\r\n"
	    "Forwarded: for=192.0.2.7\r\n\r\n");
	expect_request(S("GET / HTTP/1.0\r\nX-A: 1\r\nHost: legacy\r\n\r\n"),
	    &cfg, &token_fields, &ctx,
	    "GET / HTTP/1.1\r\nX-A: 1\r\nHost: legacy\r\n"
	    "Authorization: Bearer legacy-token\r\nX-Forwarded-For: 192.0.2.7\r\n"
	    "Forwarded: for=192.0.2.7\r\n\r\n");
	expect_request(S("GET / HTTP/1.1\r\nHost: legacy\r\n\r\n"),
	    &cfg, &token_fields, &ctx,
	    "GET / HTTP/1.1\r\nHost: legacy\r\n"
	    "Authorization: Bearer legacy-token\r\nX-Forwarded-For: 192.0.2.7\r\n"
	    "Forwarded: for=192.0.2.7\r\n\r\n");
	/* Without a default, as before: none. */
	ctx.default_host = NULL;
	ctx.client_addr = NULL;
	expect_request(S("GET / HTTP/1.0\r\n\r\n"), &cfg, &token_fields, &ctx,
	    "GET / HTTP/1.1\r\nAuthorization: Bearer legacy-token\r\n\r\n");

	/* A Host that cannot be written refuses the request. */
	ctx.default_host = "up\r\nX-Evil: 1";
	expect_refused(S("GET / HTTP/1.0\r\n\r\n"), &cfg, &token_fields, &ctx,
	    CG_ERR_FORMAT, "invalid Host value");
	ctx.default_host = "";
	expect_refused(S("GET / HTTP/1.0\r\n\r\n"), &cfg, &token_fields, &ctx,
	    CG_ERR_FORMAT, "invalid Host value");
	ctx.default_host = NULL;
	ctx.host.p = "a\nb";
	ctx.host.len = 3;
	expect_refused(S("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), &cfg, &token_fields, &ctx,
	    CG_ERR_FORMAT, "invalid Host value");
}

/* ------------------------------------------------------------------ */
/* What the caller cannot get through                                  */
/* ------------------------------------------------------------------ */

static void
test_hop_by_hop(void **state)
{
	static const struct kv kv[] = { { "key", "k1", 0 } };
	static const struct kvs f = { kv, 1 };
	struct inj_http_cfg cfg = {
		.kind = INJ_HTTP_HEADER,
		.header = MUT("X-Api-Key"),
		.value_template = MUT("${key}"),
	};
	struct inj_http_req_ctx ctx = { .framing = INJ_FRAMING_NONE };

	/* Naming Authorization or the injected header in Connection does
	 * not remove what we add; the named fields themselves go. */
	expect_request(S("POST /p HTTP/1.1\r\nHost: a\r\n"
	    "Connection: Authorization, X-Api-Key, keep-alive\r\n"
	    "connection: x-drop-me\r\n"
	    "Keep-Alive: timeout=5\r\nX-Drop-Me: 1\r\nX-Api-Key: mine\r\n"
	    "TE: trailers\r\nUpgrade: websocket\r\nProxy-Authorization: Basic eA==\r\n"
	    "Proxy-Connection: keep-alive\r\nTrailer: X-T\r\nProxy-Authenticate: x\r\n"
	    "Transfer-Encoding: chunked\r\nContent-Length: 5\r\nExpect: 100-continue\r\n"
	    "X-Request-Id: caller-chosen\r\nAuthorization: Bearer caller\r\n"
	    "authorization: Bearer second\r\nX-Keep: yes\r\n\r\n"),
	    &cfg, &f, &ctx,
	    "POST /p HTTP/1.1\r\nHost: a\r\nX-Keep: yes\r\nX-Api-Key: k1\r\n\r\n");

	/* Host is not hop-by-hop, whatever Connection says. */
	cfg.kind = INJ_HTTP_BEARER;
	expect_request(S("GET / HTTP/1.1\r\nHost: a\r\nConnection: host, X-A\r\n"
	    "X-A: 1\r\n\r\n"),
	    &cfg, &token_fields, &ctx,
	    "GET / HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer legacy-token\r\n\r\n");
	expect_request(S("GET / HTTP/1.1\r\nHost: a\r\nConnection: Authorization\r\n"
	    "Authorization: Bearer caller\r\n\r\n"),
	    &cfg, &token_fields, &ctx,
	    "GET / HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer legacy-token\r\n\r\n");

	/* Fields the proxy marked are not forwarded. */
	{
		struct parsed p;
		struct inj_cred cred = { kv_field, &token_fields };
		struct evbuffer *out = evbuffer_new();
		const char *reason;
		char *got;

		parse(&p, S("GET / HTTP/1.1\r\nHost: a\r\nCookie: x\r\nX-A: 1\r\n\r\n"), true);
		p.fields[1].drop = true;
		assert_int_equal(inj_http_write_request(&p.h, &cfg, &cred, &ctx, out,
		    &reason), 0);
		got = drain(out);
		assert_string_equal(got, "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n"
		    "Authorization: Bearer legacy-token\r\n\r\n");
		free(got);
		evbuffer_free(out);
	}
}

static void
test_forwarding(void **state)
{
	struct inj_http_cfg cfg = { .kind = INJ_HTTP_BEARER };
	struct inj_http_req_ctx ctx = {
		.client_addr = "2001:db8::1",
		.proto = "http",
		.request_id = "r-2",
		.framing = INJ_FRAMING_NONE,
	};

	/* Existing values kept, in order, ours appended; IPv6 quoted and
	 * bracketed in Forwarded; the caller's X-Request-Id replaced. */
	expect_request(S("GET / HTTP/1.1\r\nHost: a\r\n"
	    "X-Forwarded-For: 198.51.100.1\r\nX-Request-Id: mine\r\n"
	    "Forwarded: for=198.51.100.1;proto=https\r\n"
	    "x-forwarded-for: 198.51.100.2, 10.0.0.1\r\n"
	    "forwarded: for=\"[2001:db8::9]\"\r\n\r\n"),
	    &cfg, &token_fields, &ctx,
	    "GET / HTTP/1.1\r\nHost: a\r\n"
	    "Authorization: Bearer legacy-token\r\n"
	    "X-Forwarded-For: 198.51.100.1, 198.51.100.2, 10.0.0.1, 2001:db8::1\r\n"
	    "Forwarded: for=198.51.100.1;proto=https, for=\"[2001:db8::9]\", "
	    "for=\"[2001:db8::1]\";proto=http\r\n"
	    "X-Request-Id: r-2\r\n\r\n");

	/* A caller's forwarding fields named in Connection are not kept. */
	ctx.client_addr = "192.0.2.1";
	ctx.proto = NULL;
	ctx.request_id = NULL;
	expect_request(S("GET / HTTP/1.1\r\nHost: a\r\nConnection: X-Forwarded-For\r\n"
	    "X-Forwarded-For: 6.6.6.6\r\n\r\n"),
	    &cfg, &token_fields, &ctx,
	    "GET / HTTP/1.1\r\nHost: a\r\n"
	    "Authorization: Bearer legacy-token\r\n"
	    "X-Forwarded-For: 192.0.2.1\r\n"
	    "Forwarded: for=192.0.2.1\r\n\r\n");
}

static void
test_framing(void **state)
{
	struct inj_http_cfg cfg = { .kind = INJ_HTTP_BEARER };
	struct inj_http_req_ctx ctx = { .framing = INJ_FRAMING_LENGTH, .content_length = 42 };

	expect_request(S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 42\r\n\r\n"),
	    &cfg, &token_fields, &ctx,
	    "POST / HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer legacy-token\r\n"
	    "Content-Length: 42\r\n\r\n");
	ctx.framing = INJ_FRAMING_CHUNKED;
	expect_request(S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"),
	    &cfg, &token_fields, &ctx,
	    "POST / HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer legacy-token\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n");
	ctx.framing = INJ_FRAMING_CLOSE;
	expect_refused(S("POST / HTTP/1.1\r\nHost: a\r\n\r\n"), &cfg, &token_fields, &ctx,
	    CG_ERR_FORMAT, NULL);
}

/* ------------------------------------------------------------------ */
/* Refusals: nothing written                                           */
/* ------------------------------------------------------------------ */

static void
test_missing_field(void **state)
{
	static const struct kv kv[] = { { "username", "u", 0 } };
	static const struct kvs f = { kv, 1 };
	static const char req[] = "GET /?q=1 HTTP/1.1\r\nHost: a\r\n\r\n";
	struct inj_http_cfg cfg = { .kind = INJ_HTTP_BASIC };

	expect_refused(S(req), &cfg, &f, &plain_ctx, CG_ERR_NOTFOUND,
	    "credential field missing");
	cfg.kind = INJ_HTTP_BEARER;
	expect_refused(S(req), &cfg, &f, &plain_ctx, CG_ERR_NOTFOUND,
	    "credential field missing");
	cfg.kind = INJ_HTTP_QUERY;
	cfg.query_param = MUT("k");
	expect_refused(S(req), &cfg, &f, &plain_ctx, CG_ERR_NOTFOUND,
	    "credential field missing");
	cfg.kind = INJ_HTTP_HEADER;
	cfg.header = MUT("X-K");
	cfg.value_template = MUT("${username}:${nope}");
	expect_refused(S(req), &cfg, &f, &plain_ctx, CG_ERR_NOTFOUND,
	    "credential field missing");
}

static void
test_header_injection_refused(void **state)
{
	static const struct kv kv[] = {
		{ "crlf", "v\r\nX-Evil: 1", 0 }, { "lf", "v\nx", 0 },
		{ "cr", "v\rx", 0 }, { "nul", "v\0x", 3 }, { "ok", "v", 0 },
		{ "colon", "a:b", 0 },
	};
	static const struct kvs f = { kv, 6 };
	static const char req[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
	static const char *const bad[] = { "crlf", "lf", "cr", "nul" };
	struct inj_http_cfg cfg = { .kind = INJ_HTTP_HEADER, .header = MUT("X-K") };
	char tmpl[32];
	size_t i;

	for (i = 0; i < CG_ARRAY_LEN(bad); i++) {
		snprintf(tmpl, sizeof(tmpl), "${ok} ${%s}", bad[i]);
		cfg.kind = INJ_HTTP_HEADER;
		cfg.value_template = tmpl;
		expect_refused(S(req), &cfg, &f, &plain_ctx, CG_ERR_FORMAT,
		    "credential value not allowed in a header");
		cfg.kind = INJ_HTTP_BEARER;
		cfg.field = MUT(bad[i]);
		expect_refused(S(req), &cfg, &f, &plain_ctx, CG_ERR_FORMAT,
		    "credential value not allowed in a header");
		cfg.field = NULL;
	}
	/* Basic: a colon in the user name would move the split. */
	cfg.kind = INJ_HTTP_BASIC;
	cfg.username_field = MUT("colon");
	cfg.password_field = MUT("ok");
	expect_refused(S(req), &cfg, &f, &plain_ctx, CG_ERR_FORMAT, NULL);
}

/* The credential is freed (and wiped) when the buffer lets go of it. */
static void
test_secret_lifetime(void **state)
{
	struct inj_http_cfg cfg = { .kind = INJ_HTTP_BEARER };
	struct inj_cred cred = { kv_field, &token_fields };
	struct evbuffer *out = evbuffer_new();
	struct parsed p;
	const char *reason;
	size_t base, during, after;

	parse(&p, S("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), true);
	secmem_stats(&base, NULL);
	assert_int_equal(inj_http_write_request(&p.h, &cfg, &cred, &plain_ctx, out,
	    &reason), 0);
	secmem_stats(&during, NULL);
	assert_true(during > base);
	evbuffer_free(out);
	secmem_stats(&after, NULL);
	assert_int_equal(after, base);
}

/* ------------------------------------------------------------------ */
/* Responses                                                           */
/* ------------------------------------------------------------------ */

static void
expect_response(const char *in, size_t len, enum inj_http_framing framing,
    unsigned long long cl, bool close, const char *rid, const char *want)
{
	struct parsed p;
	struct evbuffer *out = evbuffer_new();
	char *got;

	parse(&p, in, len, false);
	assert_int_equal(inj_http_write_response(&p.h, framing, cl, close, rid, out), 0);
	got = drain(out);
	assert_string_equal(got, want);
	free(got);
	evbuffer_free(out);
}

static void
test_response(void **state)
{
	static const char up[] = "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop\r\n"
	    "Keep-Alive: timeout=5\r\nX-Hop: 1\r\nTransfer-Encoding: chunked\r\n"
	    "Content-Type: text/plain\r\nX-Request-Id: up\r\nUpgrade: h2c\r\n"
	    "Proxy-Authenticate: Basic\r\nTrailer: X-T\r\nSet-Cookie: a=b\r\n\r\n";

	expect_response(S(up), INJ_FRAMING_LENGTH, 10, true, "rid",
	    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nSet-Cookie: a=b\r\n"
	    "X-Request-Id: rid\r\nContent-Length: 10\r\nConnection: close\r\n\r\n");
	expect_response(S(up), INJ_FRAMING_CHUNKED, 0, false, NULL,
	    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Request-Id: up\r\n"
	    "Set-Cookie: a=b\r\nTransfer-Encoding: chunked\r\n\r\n");
	/* Until close: the caller must see the close. */
	expect_response(S("HTTP/1.0 200 OK\r\nServer: s\r\n\r\n"), INJ_FRAMING_CLOSE, 0,
	    false, NULL, "HTTP/1.1 200 OK\r\nServer: s\r\nConnection: close\r\n\r\n");
	/* A HEAD or 304 answer keeps its Content-Length; a 204 drops one. */
	expect_response(S("HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n"),
	    INJ_FRAMING_NONE, 0, false, NULL,
	    "HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n");
	expect_response(S("HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"),
	    INJ_FRAMING_NONE, 0, false, NULL, "HTTP/1.1 204 No Content\r\n\r\n");
	/* No reason phrase. */
	expect_response(S("HTTP/1.1 404\r\nContent-Length: 1\r\n\r\n"),
	    INJ_FRAMING_LENGTH, 1, false, NULL,
	    "HTTP/1.1 404 \r\nContent-Length: 1\r\n\r\n");
}

/* ------------------------------------------------------------------ */
/* The caller's proof                                                  */
/* ------------------------------------------------------------------ */

struct proof_case {
	const char *name;
	const char *in;
	int r;
	const char *token;	/* r == 0 */
	const char *reason;	/* r != 0 */
};

#define PROOF(v) "GET / HTTP/1.1\r\nHost: a\r\nAuthorization: " v "\r\n\r\n"

static const struct proof_case proof_cases[] = {
	{ "valid", PROOF("Bearer eyJhbGci.eyJzdWIi.c2ln"), 0, "eyJhbGci.eyJzdWIi.c2ln", NULL },
	{ "lowercase scheme", PROOF("bearer abc"), 0, "abc", NULL },
	{ "uppercase scheme", PROOF("BEARER abc"), 0, "abc", NULL },
	{ "several spaces, padding", PROOF("Bearer   a-._~+/Z9=="), 0, "a-._~+/Z9==", NULL },
	{ "missing", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", CG_ERR_NOTFOUND, NULL,
	    "no bearer token" },
	{ "two fields", "GET / HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer a\r\n"
	    "authorization: Bearer a\r\n\r\n", CG_ERR_FORMAT, NULL,
	    "multiple Authorization fields" },
	{ "Basic", PROOF("Basic dXNlcjpwYXNz"), CG_ERR_FORMAT, NULL, "not a bearer token" },
	{ "other scheme", PROOF("Token abc"), CG_ERR_FORMAT, NULL, "not a bearer token" },
	{ "scheme glued", PROOF("Bearerabc"), CG_ERR_FORMAT, NULL, "not a bearer token" },
	{ "empty value", PROOF(""), CG_ERR_FORMAT, NULL, "not a bearer token" },
	{ "no token", PROOF("Bearer"), CG_ERR_FORMAT, NULL, NULL },
	{ "tab separator", PROOF("Bearer\tabc"), CG_ERR_FORMAT, NULL, NULL },
	{ "bad char @", PROOF("Bearer ab@c"), CG_ERR_FORMAT, NULL, NULL },
	{ "bad char comma", PROOF("Bearer abc,"), CG_ERR_FORMAT, NULL, NULL },
	{ "bad char quote", PROOF("Bearer \"abc\""), CG_ERR_FORMAT, NULL, NULL },
	{ "padding inside", PROOF("Bearer ab=c"), CG_ERR_FORMAT, NULL, NULL },
	{ "only padding", PROOF("Bearer =="), CG_ERR_FORMAT, NULL, NULL },
	{ "trailing garbage", PROOF("Bearer abc def"), CG_ERR_FORMAT, NULL, NULL },
	{ "auth-param form", PROOF("Bearer realm=\"x\""), CG_ERR_FORMAT, NULL, NULL },
	{ "obs-text", PROOF("Bearer ab\xc3\xa9"), CG_ERR_FORMAT, NULL, NULL },
};

static void
test_read_proof(void **state)
{
	size_t i;

	for (i = 0; i < CG_ARRAY_LEN(proof_cases); i++) {
		const struct proof_case *c = &proof_cases[i];
		struct parsed p;
		struct http_span tok;
		const char *reason = NULL;
		int r;

		parse(&p, c->in, strlen(c->in), true);
		r = inj_http_read_proof(&p.h, &tok, &reason);
		if (r != c->r) {
			print_error("case %s: want %d, got %d\n", c->name, c->r, r);
			fail();
		}
		if (r == 0) {
			assert_int_equal(tok.len, strlen(c->token));
			assert_memory_equal(tok.p, c->token, tok.len);
		} else {
			assert_non_null(reason);
			assert_null(tok.p);
			if (c->reason != NULL)
				assert_string_equal(reason, c->reason);
		}
	}
}

/* ------------------------------------------------------------------ */
/* Configuration                                                       */
/* ------------------------------------------------------------------ */

static void
test_cfg(void **state)
{
	struct inj_http_cfg cfg;
	char err[128];

	assert_int_equal(inj_http_kind_parse("basic"), INJ_HTTP_BASIC);
	assert_int_equal(inj_http_kind_parse("bearer"), INJ_HTTP_BEARER);
	assert_int_equal(inj_http_kind_parse("header"), INJ_HTTP_HEADER);
	assert_int_equal(inj_http_kind_parse("query"), INJ_HTTP_QUERY);
	assert_int_equal(inj_http_kind_parse("Basic"), -1);
	assert_int_equal(inj_http_kind_parse(""), -1);
	assert_string_equal(inj_http_kind_name(INJ_HTTP_QUERY), "query");

	memset(&cfg, 0, sizeof(cfg));
	cfg.kind = INJ_HTTP_HEADER;
	cfg.header = MUT("X-Api-Key");
	cfg.value_template = MUT("Token ${token}");
	assert_int_equal(inj_http_cfg_check(&cfg, err, sizeof(err)), 0);
	assert_string_equal(inj_http_target_header(&cfg), "X-Api-Key");
	cfg.header = MUT("Connection");
	assert_int_equal(inj_http_cfg_check(&cfg, err, sizeof(err)), CG_ERR_FORMAT);
	assert_true(err[0] != '\0');
	cfg.header = MUT("transfer-encoding");
	assert_int_equal(inj_http_cfg_check(&cfg, err, sizeof(err)), CG_ERR_FORMAT);
	cfg.header = MUT("Content-Length");
	assert_int_equal(inj_http_cfg_check(&cfg, err, sizeof(err)), CG_ERR_FORMAT);
	cfg.header = MUT("Host");
	assert_int_equal(inj_http_cfg_check(&cfg, err, sizeof(err)), CG_ERR_FORMAT);
	cfg.header = MUT("X Api");
	assert_int_equal(inj_http_cfg_check(&cfg, err, sizeof(err)), CG_ERR_FORMAT);
	cfg.header = MUT("X-Api-Key");
	cfg.value_template = MUT("Token ${token");
	assert_int_equal(inj_http_cfg_check(&cfg, err, sizeof(err)), CG_ERR_FORMAT);
	cfg.value_template = MUT("Token ${}");
	assert_int_equal(inj_http_cfg_check(&cfg, err, sizeof(err)), CG_ERR_FORMAT);
	cfg.value_template = MUT("Token ${a b}");
	assert_int_equal(inj_http_cfg_check(&cfg, err, sizeof(err)), CG_ERR_FORMAT);
	cfg.value_template = MUT("Token\r\n${a}");
	assert_int_equal(inj_http_cfg_check(&cfg, err, sizeof(err)), CG_ERR_FORMAT);

	memset(&cfg, 0, sizeof(cfg));
	cfg.kind = INJ_HTTP_QUERY;
	cfg.query_param = MUT("api_key");
	assert_int_equal(inj_http_cfg_check(&cfg, err, sizeof(err)), 0);
	assert_null(inj_http_target_header(&cfg));
	cfg.query_param = MUT("api key");
	assert_int_equal(inj_http_cfg_check(&cfg, err, sizeof(err)), CG_ERR_FORMAT);
	cfg.query_param = MUT("");
	assert_int_equal(inj_http_cfg_check(&cfg, err, sizeof(err)), CG_ERR_FORMAT);

	memset(&cfg, 0, sizeof(cfg));
	cfg.kind = INJ_HTTP_BASIC;
	assert_int_equal(inj_http_cfg_check(&cfg, err, sizeof(err)), 0);
	assert_string_equal(inj_http_target_header(&cfg), "Authorization");

	/* clear frees and zeroes. */
	cfg.kind = INJ_HTTP_HEADER;
	cfg.header = strdup("X-A");
	cfg.value_template = strdup("${a}");
	inj_http_cfg_clear(&cfg);
	assert_null(cfg.header);
	assert_null(cfg.value_template);
}

static void
test_hop_by_hop_names(void **state)
{
	assert_true(inj_http_is_hop_by_hop(S("connection")));
	assert_true(inj_http_is_hop_by_hop(S("KEEP-ALIVE")));
	assert_true(inj_http_is_hop_by_hop(S("Proxy-Connection")));
	assert_true(inj_http_is_hop_by_hop(S("te")));
	assert_true(inj_http_is_hop_by_hop(S("Transfer-Encoding")));
	assert_true(inj_http_is_hop_by_hop(S("Upgrade")));
	assert_true(inj_http_is_hop_by_hop(S("Proxy-Authorization")));
	assert_true(inj_http_is_hop_by_hop(S("Proxy-Authenticate")));
	assert_true(inj_http_is_hop_by_hop(S("Trailer")));
	assert_false(inj_http_is_hop_by_hop(S("Trailers")));
	assert_false(inj_http_is_hop_by_hop(S("Authorization")));
	assert_false(inj_http_is_hop_by_hop(S("T")));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bearer),
		cmocka_unit_test(test_bearer_custom_field),
		cmocka_unit_test(test_basic),
		cmocka_unit_test(test_header),
		cmocka_unit_test(test_query),
		cmocka_unit_test(test_absolute_form),
		cmocka_unit_test(test_default_host),
		cmocka_unit_test(test_hop_by_hop),
		cmocka_unit_test(test_forwarding),
		cmocka_unit_test(test_framing),
		cmocka_unit_test(test_missing_field),
		cmocka_unit_test(test_header_injection_refused),
		cmocka_unit_test(test_secret_lifetime),
		cmocka_unit_test(test_response),
		cmocka_unit_test(test_read_proof),
		cmocka_unit_test(test_cfg),
		cmocka_unit_test(test_hop_by_hop_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
