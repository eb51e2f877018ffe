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

#include "injectors/http/http.h"
#include "injectors/http/http_parse.h"

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
	struct inj_cred cred = { kv_field, fields, NULL };
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
	struct inj_cred cred = { kv_field, fields, NULL };
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
		struct inj_cred cred = { kv_field, &token_fields, NULL };
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
	struct inj_cred cred = { kv_field, &token_fields, NULL };
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
	assert_int_equal(inj_http_write_response(&p.h, framing, cl, close, rid, NULL, NULL,
	    NULL, out), 0);
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
/* The credential must not come back                                   */
/* ------------------------------------------------------------------ */

struct strip_case {
	const char *in;
	const char *out;
	size_t removed;
};

/* The parameter api_key out of URI references. */
static const struct strip_case strip_cases[] = {
	{ "/dir/?api_key=S", "/dir/", 1 },
	{ "http://h:8080/dir/?api_key=S", "http://h:8080/dir/", 1 },
	{ "/d?a=1&api_key=S&b=2", "/d?a=1&b=2", 1 },
	{ "/d?api_key=S&b=2#frag", "/d?b=2#frag", 1 },
	{ "/d?a=1&api_key=S#f?api_key=x", "/d?a=1#f?api_key=x", 1 },
	{ "/d?api_key=S#", "/d#", 1 },
	{ "/d#f?api_key=S", "/d#f?api_key=S", 0 },	/* a fragment is no query */
	{ "/d?api_key", "/d", 1 },
	{ "/d?api_key=", "/d", 1 },
	{ "/d?api_key=a=b", "/d", 1 },
	{ "/d?%61pi_key=S", "/d", 1 },			/* the name percent-decoded */
	{ "/d?api%5fkey=S&x", "/d?x", 1 },
	{ "/d?api_key=1&api_key=2", "/d", 2 },		/* every one */
	{ "/d?a=1&&api_key=S&&b", "/d?a=1&b", 1 },	/* empty pairs go with it */
	{ "/d?&api_key=S&", "/d", 1 },
	{ "/d?a=1&&b", "/d?a=1&&b", 0 },		/* untouched without one */
	{ "/d?", "/d?", 0 },
	{ "?api_key=S", "", 1 },
	{ "?api_key=S#x", "#x", 1 },
	{ "", "", 0 },
	{ "/d", "/d", 0 },
	{ "/d?API_KEY=S", "/d?API_KEY=S", 0 },		/* names are case-sensitive */
	{ "/d?api_keyx=1&xapi_key=2", "/d?api_keyx=1&xapi_key=2", 0 },
	{ "/d?api_key%3D=S", "/d?api_key%3D=S", 0 },
	{ "/d?api_key%=S&api_key%4=T", "/d?api_key%=S&api_key%4=T", 0 },
	{ "/d?a=api_key=S", "/d?a=api_key=S", 0 },	/* a value, not a name */
	{ "/d?a=%ZZ&api_key=S", "/d?a=%ZZ", 1 },
	{ "/d?=x&api_key=S", "/d?=x", 1 },
	{ "/d/?api_key=S?x=1", "/d/", 1 },		/* '?' inside a pair is its text */
	{ "/d?b=1;api_key=S", "/d?b=1;api_key=S", 0 },	/* ';' separates nothing */
};

static void
test_url_strip(void **state)
{
	char out[128];
	size_t i, n, len;

	for (i = 0; i < CG_ARRAY_LEN(strip_cases); i++) {
		const struct strip_case *t = &strip_cases[i];

		n = strlen(t->in);
		memset(out, '#', sizeof(out));
		len = 999;
		if (inj_http_url_strip(t->in, n, "api_key", out, &len) != t->removed ||
		    len != strlen(t->out) || memcmp(out, t->out, len) != 0) {
			print_error("case %zu: \"%s\" -> \"%.*s\" (%zu bytes), want \"%s\"\n",
			    i, t->in, (int)(len < sizeof(out) ? len : 0), out, len, t->out);
			fail();
		}
		assert_true(len <= n);
		/* Counting alone agrees, and a second pass finds nothing. */
		assert_int_equal(inj_http_url_strip(t->in, n, "api_key", NULL, NULL),
		    t->removed);
		assert_int_equal(inj_http_url_strip(out, len, "api_key", NULL, NULL), 0);
	}
}

/* The report as text: "~Name" scrubbed, "-Name" dropped, in order. */
static void
echo_text(const struct inj_echo *e, char *buf, size_t size)
{
	size_t i, o = 0;

	buf[0] = '\0';
	for (i = 0; i < e->nnames; i++)
		o += (size_t)snprintf(buf + o, size - o, "%s%c%.*s", i ? " " : "",
		    e->names[i].dropped ? '-' : '~', (int)e->names[i].name.len,
		    e->names[i].name.p);
}

struct echo_case {
	const char *name;
	const struct inj_http_cfg *cfg;
	const struct kvs *cred;
	const char *in;		/* the upstream's head */
	const char *want;	/* the caller's head (no body, no request id) */
	unsigned scrubbed, dropped;
	const char *names;	/* see echo_text() */
};

/* A token that needs percent-encoding, and that base64 spells with '+'. */
static const struct kv qtok_kv[] = { { "token", "t0k en/+~", 0 } };
static const struct kvs qtok = { qtok_kv, 1 };
static const struct kv short_kv[] = { { "token", "ab", 0 } };
static const struct kvs short_tok = { short_kv, 1 };
static const struct kv basic_kv[] = {
	{ "username", "svc", 0 }, { "password", "open sesame", 0 },
};
static const struct kvs basic_fields = { basic_kv, 2 };
static const struct kv basic_short_kv[] = {
	{ "username", "svc", 0 }, { "password", "abc", 0 },
};
static const struct kvs basic_short = { basic_short_kv, 2 };
static const struct kv tmpl_kv[] = { { "key", "k1k1k1", 0 }, { "id", "7", 0 } };
static const struct kvs tmpl_fields = { tmpl_kv, 2 };

static const struct inj_http_cfg q_cfg = {
	.kind = INJ_HTTP_QUERY, .query_param = MUT("api_key"),
};
static const struct inj_http_cfg basic_cfg = { .kind = INJ_HTTP_BASIC };
static const struct inj_http_cfg bearer_cfg = { .kind = INJ_HTTP_BEARER };
static const struct inj_http_cfg header_cfg = {
	.kind = INJ_HTTP_HEADER, .header = MUT("X-Api-Key"),
	.value_template = MUT("Key ${key}/${id}"),
};

#define R301(f)	"HTTP/1.1 301 Moved Permanently\r\n" f "\r\n"
#define W301(f)	"HTTP/1.1 301 Moved Permanently\r\n" f "\r\n"
#define R200(f)	"HTTP/1.1 200 OK\r\n" f "\r\n"

static const struct echo_case echo_cases[] = {
	/* nginx's directory redirect hands back the request's query. */
	{ "directory redirect", &q_cfg, &qtok,
	    R301("Server: nginx\r\nLocation: http://h:8080/dir/?api_key=t0k%20en%2F%2B~\r\n"),
	    W301("Server: nginx\r\nLocation: http://h:8080/dir/\r\n"), 1, 0, "~Location" },
	{ "rest of the URL kept", &q_cfg, &qtok,
	    R301("Location: /d/?a=1&api_key=t0k%20en%2F%2B~&b=%2F#top\r\n"),
	    W301("Location: /d/?a=1&b=%2F#top\r\n"), 1, 0, "~Location" },
	{ "any value of the parameter", &q_cfg, &qtok,
	    R301("Location: /d/?api_key=other&api_key=more\r\n"),
	    W301("Location: /d/\r\n"), 1, 0, "~Location" },
	{ "Content-Location", &q_cfg, &qtok,
	    R200("content-location: /x?api_key=t0k%20en%2F%2B~\r\n"),
	    R200("content-location: /x\r\n"), 1, 0, "~content-location" },
	{ "each Link reference", &q_cfg, &qtok,
	    R200("Link: </p?api_key=t0k%20en%2F%2B~>; rel=next, "
	    "</q?a=1&api_key=1>; rel=\"prev\"\r\nLink: <https://x/>; rel=start\r\n"),
	    R200("Link: </p>; rel=next, </q?a=1>; rel=\"prev\"\r\n"
	    "Link: <https://x/>; rel=start\r\n"), 1, 0, "~Link" },
	{ "Refresh url=", &q_cfg, &qtok,
	    R200("Refresh: 5; url=/r?api_key=t0k%20en%2F%2B~&b=1\r\n"),
	    R200("Refresh: 5; url=/r?b=1\r\n"), 1, 0, "~Refresh" },
	{ "Refresh quoted", &q_cfg, &qtok,
	    R200("Refresh: 0;URL='/r?api_key=x'\r\n"),
	    R200("Refresh: 0;URL='/r'\r\n"), 1, 0, "~Refresh" },
	{ "Refresh without url=", &q_cfg, &qtok,
	    R200("Refresh: 1, /r?api_key=x#f\r\n"),
	    R200("Refresh: 1, /r#f\r\n"), 1, 0, "~Refresh" },
	{ "secret elsewhere in the URL", &q_cfg, &qtok,
	    R301("Location: /t0k%20en%2F%2B~/?api_key=t0k%20en%2F%2B~\r\nX-A: 1\r\n"),
	    W301("X-A: 1\r\n"), 0, 1, "-Location" },
	{ "secret in the fragment", &q_cfg, &qtok,
	    R301("Location: /d/#t0k%20en%2F%2B~\r\n"),
	    W301(""), 0, 1, "-Location" },
	{ "other parameters stay", &q_cfg, &qtok,
	    R301("Location: /d?API_KEY=1&key=2\r\nX-Note: api_key=3\r\n"),
	    W301("Location: /d?API_KEY=1&key=2\r\nX-Note: api_key=3\r\n"), 0, 0, "" },
	{ "raw echo", &q_cfg, &qtok,
	    R200("X-Echo: t0k en/+~\r\nX-Keep: t0k en\r\n"),
	    R200("X-Keep: t0k en\r\n"), 0, 1, "-X-Echo" },
	{ "as injected", &q_cfg, &qtok,
	    R200("X-Echo: t0k%20en%2F%2B~\r\n"), R200(""), 0, 1, "-X-Echo" },
	{ "lower-case hex", &q_cfg, &qtok,
	    R200("X-Echo: a=t0k%20en%2f%2b~;\r\n"), R200(""), 0, 1, "-X-Echo" },
	{ "plus for space", &q_cfg, &qtok,
	    R200("X-Echo: t0k+en%2F%2B~\r\n"), R200(""), 0, 1, "-X-Echo" },
	{ "slash left raw", &q_cfg, &qtok,
	    R200("X-Echo: t0k%20en/%2B~\r\n"), R200(""), 0, 1, "-X-Echo" },
	{ "every byte encoded", &q_cfg, &qtok,
	    R200("X-Echo: %74%30%6b%20%65%6e%2f%2b%7e\r\n"), R200(""), 0, 1, "-X-Echo" },
	{ "base64", &q_cfg, &qtok,
	    R200("Set-Cookie: s=dDBrIGVuLyt+; Path=/\r\n"), R200(""), 0, 1, "-Set-Cookie" },
	{ "base64, '+' encoded", &q_cfg, &qtok,
	    R200("X-B: dDBrIGVuLyt%2B\r\nX-C: dDBrIGVuLyt\r\nX-D: dDBrIGVuLyt%2b\r\n"),
	    R200("X-C: dDBrIGVuLyt\r\n"), 0, 2, "-X-B -X-D" },
	{ "names once, counts all", &q_cfg, &qtok,
	    R301("Location: /a?api_key=1\r\nX-Echo: t0k en/+~\r\nx-echo: t0k en/+~\r\n"
	    "Link: </b?api_key=1>\r\nX-Ok: 1\r\n"),
	    W301("Location: /a\r\nLink: </b>\r\nX-Ok: 1\r\n"), 2, 2,
	    "~Location -X-Echo ~Link" },
	{ "reason phrase", &q_cfg, &qtok,
	    "HTTP/1.1 400 bad t0k en/+~\r\nX-Ok: 1\r\n\r\n",
	    "HTTP/1.1 400 \r\nX-Ok: 1\r\n\r\n", 0, 1, "-:reason-phrase" },
	{ "a name that holds it", &q_cfg, &qtok,
	    R200("X-dDBrIGVuLyt+: 1\r\nX-Ok: 1\r\n"), R200("X-Ok: 1\r\n"),
	    0, 1, "-:field-name" },
	{ "short secret: parameter only", &q_cfg, &short_tok,
	    R301("Location: /d?api_key=ab&x=1\r\nX-Echo: ab\r\n"),
	    W301("Location: /d?x=1\r\nX-Echo: ab\r\n"), 1, 0, "~Location" },
	{ "basic: base64 of user:password", &basic_cfg, &basic_fields,
	    R200("X-Echo: Basic c3ZjOm9wZW4gc2VzYW1l\r\n"
	    "WWW-Authenticate: Basic realm=\"x\"\r\n"),
	    R200("WWW-Authenticate: Basic realm=\"x\"\r\n"), 0, 1, "-X-Echo" },
	{ "basic: password", &basic_cfg, &basic_fields,
	    R200("X-1: open sesame\r\nX-2: open%20sesame\r\nX-3: open+sesame\r\n"
	    "X-4: b3BlbiBzZXNhbWU=\r\nX-5: svc\r\nX-6: open\r\n"),
	    R200("X-5: svc\r\nX-6: open\r\n"), 0, 4, "-X-1 -X-2 -X-3 -X-4" },
	{ "basic: no URL scrubbing", &basic_cfg, &basic_fields,
	    R301("Location: /d?api_key=x\r\n"), W301("Location: /d?api_key=x\r\n"), 0, 0, "" },
	{ "basic: short password", &basic_cfg, &basic_short,
	    R200("X-1: abc\r\nX-2: Basic c3ZjOmFiYw==\r\n"), R200("X-1: abc\r\n"),
	    0, 1, "-X-2" },
	{ "bearer", &bearer_cfg, &token_fields,
	    R200("X-Seen: Bearer legacy-token\r\nX-Ok: legacy\r\n"), R200("X-Ok: legacy\r\n"),
	    0, 1, "-X-Seen" },
	{ "header: each template field", &header_cfg, &tmpl_fields,
	    R200("X-Api-Key: Key k1k1k1/7\r\nX-Id: 7\r\nX-Part: k1k1\r\n"),
	    R200("X-Id: 7\r\nX-Part: k1k1\r\n"), 0, 1, "-X-Api-Key" },
};

static void
test_secret_echo(void **state)
{
	struct inj_echo echo;
	struct parsed p;
	struct evbuffer *out;
	size_t i, before, after;
	char names[256], *got;

	for (i = 0; i < CG_ARRAY_LEN(echo_cases); i++) {
		const struct echo_case *t = &echo_cases[i];
		struct inj_cred cred = { kv_field, t->cred, NULL };

		out = evbuffer_new();
		assert_non_null(out);
		parse(&p, t->in, strlen(t->in), false);
		secmem_stats(&before, NULL);
		if (inj_http_write_response(&p.h, INJ_FRAMING_NONE, 0, false, NULL, t->cfg,
		    &cred, &echo, out) != 0) {
			print_error("%s: write_response failed\n", t->name);
			fail();
		}
		secmem_stats(&after, NULL);
		assert_int_equal(after, before);	/* searched-for bytes freed */
		got = drain(out);
		echo_text(&echo, names, sizeof(names));
		if (strcmp(got, t->want) != 0 || strcmp(names, t->names) != 0 ||
		    echo.scrubbed != t->scrubbed || echo.dropped != t->dropped) {
			print_error("%s:\n--- got (%u scrubbed, %u dropped: %s)\n%s"
			    "--- want (%u, %u: %s)\n%s", t->name, echo.scrubbed,
			    echo.dropped, names, got, t->scrubbed, t->dropped, t->names,
			    t->want);
			fail();
		}
		free(got);
		evbuffer_free(out);
	}
}

/* Every spelling of a secret, in every field, under every kind. */
static void
test_secret_echo_all_fields(void **state)
{
	static const char *const spellings[] = {
		"t0k en/+~", "t0k%20en%2F%2B~", "t0k%20en%2f%2b~", "t0k+en%2F%2B~",
		"dDBrIGVuLyt+",
	};
	static const char *const names[] = {
		"X-Echo", "Set-Cookie", "WWW-Authenticate", "Location", "Link",
		"Refresh", "Content-Location", "Vary",
	};
	struct inj_cred cred = { kv_field, &qtok, NULL };
	struct inj_http_cfg cfg = { .kind = INJ_HTTP_BEARER };
	struct inj_echo echo;
	struct parsed p;
	struct evbuffer *out;
	char in[256];
	size_t i, j, k;

	for (k = 0; k < 2; k++) {
		cfg = k == 0 ? bearer_cfg : q_cfg;
		cfg.field = MUT("token");
		for (i = 0; i < CG_ARRAY_LEN(spellings); i++) {
			for (j = 0; j < CG_ARRAY_LEN(names); j++) {
				snprintf(in, sizeof(in), "HTTP/1.1 200 OK\r\n%s: <x%sy>\r\n\r\n",
				    names[j], spellings[i]);
				parse(&p, in, strlen(in), false);
				out = evbuffer_new();
				assert_non_null(out);
				assert_int_equal(inj_http_write_response(&p.h, INJ_FRAMING_NONE,
				    0, false, NULL, &cfg, &cred, &echo, out), 0);
				assert_int_equal(evbuffer_get_length(out),
				    strlen("HTTP/1.1 200 OK\r\n\r\n"));
				assert_int_equal(echo.dropped, 1);
				evbuffer_free(out);
			}
		}
	}
}

/* Nothing can be searched for without the credential's field: nothing
 * is written. */
static void
test_secret_echo_missing_field(void **state)
{
	static const struct kv kv[] = { { "other", "value", 0 } };
	static const struct kvs f = { kv, 1 };
	struct inj_cred cred = { kv_field, &f, NULL };
	struct inj_echo echo;
	struct evbuffer *out = evbuffer_new();
	struct parsed p;
	size_t before, after;

	parse(&p, S(R200("X-A: 1\r\n")), false);
	assert_int_equal(evbuffer_add(out, "KEEP", 4), 0);
	secmem_stats(&before, NULL);
	assert_int_equal(inj_http_write_response(&p.h, INJ_FRAMING_NONE, 0, false, NULL,
	    &q_cfg, &cred, &echo, out), CG_ERR_NOTFOUND);
	assert_int_equal(inj_http_write_response(&p.h, INJ_FRAMING_NONE, 0, false, NULL,
	    &header_cfg, &cred, &echo, out), CG_ERR_NOTFOUND);
	assert_int_equal(inj_http_write_response(&p.h, INJ_FRAMING_NONE, 0, false, NULL,
	    &basic_cfg, &cred, &echo, out), CG_ERR_NOTFOUND);
	secmem_stats(&after, NULL);
	assert_int_equal(after, before);
	assert_int_equal(evbuffer_get_length(out), 4);
	assert_int_equal(echo.scrubbed + echo.dropped, 0);
	evbuffer_free(out);
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
		cmocka_unit_test(test_url_strip),
		cmocka_unit_test(test_secret_echo),
		cmocka_unit_test(test_secret_echo_all_fields),
		cmocka_unit_test(test_secret_echo_missing_field),
		cmocka_unit_test(test_read_proof),
		cmocka_unit_test(test_cfg),
		cmocka_unit_test(test_hop_by_hop_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
