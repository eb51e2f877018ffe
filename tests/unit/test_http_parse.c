/*
 * test_http_parse.c: the strict HTTP/1.1 front parser.  Every message is
 * run whole and one byte at a time (the head on growing prefixes, the body
 * one byte per call), and both runs must give the same answer.
 */
#include "tests/unit/unit.h"

#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "injectors/http/http_parse.h"

#define S(lit) lit, sizeof(lit) - 1

#define MAXMSG 4
#define INCOMPLETE (-2)

struct msg_result {
	char method[32];
	char path[256];
	char query[256];
	int framing;
	uint64_t length;
	size_t nfields;
	char body[512];
	size_t body_len;
	bool body_overflow;
};

struct run_result {
	int status;		/* 0: every message parsed; INCOMPLETE; else error */
	const char *reason;
	size_t nmsgs;
	struct msg_result m[MAXMSG];
};

struct run_opts {
	struct http_limits lim;
	uint64_t max_body;
};

static const struct run_opts default_opts = {
	.lim = { .max_line = 200, .max_head = 1024, .max_fields = 16, .max_trailer = 64 },
	.max_body = 1000,
};

static void
copy_span(char *dst, size_t size, const struct http_span *s)
{
	size_t n = s->len < size - 1 ? s->len : size - 1;

	memcpy(dst, s->p != NULL ? s->p : "", n);
	dst[n] = '\0';
}

static int
collect_body(void *arg, const char *p, size_t n)
{
	struct msg_result *m = arg;

	if (m->body_len + n > sizeof(m->body)) {
		m->body_overflow = true;
		return 0;
	}
	memcpy(m->body + m->body_len, p, n);
	m->body_len += n;
	return 0;
}

/* One head from in[0..len): whole, or on growing prefixes (each a fresh
 * allocation of exactly that size, so that ASan sees any overread). */
static int
parse_head(const char *in, size_t len, bool is_request, bool bytewise,
    const struct http_limits *lim, struct http_head *h, struct http_field *fields,
    struct http_error *err, char **keep)
{
	size_t k;
	char *buf;
	int r;

	*keep = NULL;
	if (!bytewise) {
		buf = malloc(len > 0 ? len : 1);
		assert_non_null(buf);
		memcpy(buf, in, len);
		r = http_parse_head(buf, len, is_request, lim, h, fields, err);
		*keep = buf;
		return r;
	}
	for (k = 1; k <= len; k++) {
		buf = malloc(k);
		assert_non_null(buf);
		memcpy(buf, in, k);
		r = http_parse_head(buf, k, is_request, lim, h, fields, err);
		if (r != HTTP_PARSE_NEED_MORE) {
			*keep = buf;
			return r;
		}
		free(buf);
	}
	return HTTP_PARSE_NEED_MORE;
}

/* Runs a request stream through head, checks and body, message after
 * message, like the connection does. */
static void
run_requests(const char *in, size_t len, const struct run_opts *o, bool bytewise,
    struct run_result *res)
{
	struct http_field fields[HTTP_MAX_FIELDS_HARD];
	struct http_head h;
	struct http_error err;
	struct http_framing f;
	struct http_msg msg;
	size_t off = 0, used, k;
	char *buf;
	int r;

	memset(res, 0, sizeof(*res));
	while (off < len) {
		struct msg_result *m;

		if (res->nmsgs == MAXMSG)
			fail_msg("too many messages");
		m = &res->m[res->nmsgs];
		r = parse_head(in + off, len - off, true, bytewise, &o->lim, &h, fields,
		    &err, &buf);
		if (r == HTTP_PARSE_NEED_MORE) {
			res->status = INCOMPLETE;
			free(buf);
			return;
		}
		if (r == HTTP_PARSE_ERROR) {
			res->status = err.status;
			res->reason = err.reason;
			free(buf);
			return;
		}
		assert_int_equal(r, HTTP_PARSE_DONE);
		assert_true(h.head_len > 0 && h.head_len <= len - off);
		assert_true(h.nfields <= o->lim.max_fields);
		if (http_request_check(&h, &f, &err) != 0) {
			res->status = err.status;
			res->reason = err.reason;
			free(buf);
			return;
		}
		copy_span(m->method, sizeof(m->method), &h.method);
		copy_span(m->path, sizeof(m->path), &h.path);
		copy_span(m->query, sizeof(m->query), &h.query);
		m->framing = f.kind;
		m->length = f.length;
		m->nfields = h.nfields;
		r = http_msg_begin(&msg, true, buf, h.head_len, NULL, 0, o->max_body,
		    o->lim.max_trailer, collect_body, m);
		free(buf);
		res->nmsgs++;
		if (r != HTTP_PARSE_DONE) {
			assert_int_equal(r, HTTP_PARSE_ERROR);
			res->status = msg.err.status;
			res->reason = msg.err.reason;
			return;
		}
		off += h.head_len;
		if (msg.complete)
			continue;
		/* The body. */
		if (!bytewise) {
			r = http_msg_feed(&msg, in + off, len - off, &used);
			assert_true(used <= len - off);
			off += used;
		} else {
			r = HTTP_PARSE_NEED_MORE;
			for (k = off; k < len && r == HTTP_PARSE_NEED_MORE; k++) {
				char one = in[k];

				r = http_msg_feed(&msg, &one, 1, &used);
				assert_true(used <= 1);
				off += used;
			}
		}
		if (r == HTTP_PARSE_ERROR) {
			res->status = msg.err.status;
			res->reason = msg.err.reason;
			return;
		}
		if (r == HTTP_PARSE_NEED_MORE) {
			assert_int_equal(http_msg_eof(&msg), HTTP_PARSE_ERROR);
			res->status = INCOMPLETE;
			return;
		}
		assert_int_equal(r, HTTP_PARSE_DONE);
		assert_true(msg.complete);
		assert_int_equal(http_msg_feed(&msg, "x", 1, &used), HTTP_PARSE_DONE);
		assert_int_equal(used, 0);
	}
}

/* Runs both ways and insists on the same outcome. */
static void
run_both(const char *name, const char *in, size_t len, const struct run_opts *o,
    struct run_result *res)
{
	struct run_result b;
	size_t i;

	run_requests(in, len, o, false, res);
	run_requests(in, len, o, true, &b);
	if (res->status != b.status || res->nmsgs != b.nmsgs) {
		print_error("case %s: whole gives %d (%s, %zu msgs), byte by byte %d (%s, %zu msgs)\n",
		    name, res->status, res->reason ? res->reason : "-", res->nmsgs,
		    b.status, b.reason ? b.reason : "-", b.nmsgs);
		fail();
	}
	for (i = 0; i < res->nmsgs; i++) {
		const struct msg_result *x = &res->m[i], *y = &b.m[i];

		if (strcmp(x->method, y->method) != 0 || strcmp(x->path, y->path) != 0 ||
		    strcmp(x->query, y->query) != 0 || x->framing != y->framing ||
		    x->length != y->length || x->nfields != y->nfields ||
		    x->body_len != y->body_len ||
		    memcmp(x->body, y->body, x->body_len) != 0) {
			print_error("case %s: message %zu differs whole / byte by byte\n",
			    name, i);
			fail();
		}
	}
}

/* ------------------------------------------------------------------ */
/* Valid requests                                                      */
/* ------------------------------------------------------------------ */

struct valid_case {
	const char *name;
	const char *in;
	size_t len;
	size_t nmsgs;
	const char *method, *path, *query;
	enum http_framing_kind framing;
	uint64_t length;
	const char *body;
	size_t nfields;
	const char *last_path;
};

static const struct valid_case valid_cases[] = {
	{ "simple GET", S("GET /a/b?x=1&y=%41 HTTP/1.1\r\nHost: example.com\r\n"
	    "User-Agent: t/1\r\nAccept: */*\r\n\r\n"),
	    1, "GET", "/a/b", "x=1&y=%41", HTTP_BODY_NONE, 0, "", 3, "/a/b" },
	{ "keep-alive pair", S("GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
	    "GET /2?q HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"),
	    2, "GET", "/1", "", HTTP_BODY_NONE, 0, "", 1, "/2" },
	{ "POST with Content-Length", S("POST /p HTTP/1.1\r\nHost: a:8080\r\n"
	    "Content-Length: 5\r\n\r\nhello"),
	    1, "POST", "/p", "", HTTP_BODY_LENGTH, 5, "hello", 2, "/p" },
	{ "POST with Content-Length 0 then GET", S("POST /p HTTP/1.1\r\nHost: a\r\n"
	    "Content-Length: 0\r\n\r\nGET /n HTTP/1.1\r\nHost: a\r\n\r\n"),
	    2, "POST", "/p", "", HTTP_BODY_LENGTH, 0, "", 2, "/n" },
	{ "chunked with extensions and trailers", S("POST /c HTTP/1.1\r\nHost: a\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n"
	    "5;a;b\r\nhello\r\n6;n=\"x y\";z\r\n world\r\n000A\r\n0123456789\r\n"
	    "0;last=1\r\nX-Checksum: abc\r\nX-Other:\t1 \r\n\r\n"),
	    1, "POST", "/c", "", HTTP_BODY_CHUNKED, 0, "hello world0123456789", 2, "/c" },
	{ "chunked then pipelined GET", S("POST /c HTTP/1.1\r\nHost: a\r\n"
	    "Transfer-Encoding: ChUnKeD\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
	    "GET /after HTTP/1.1\r\nHost: a\r\n\r\n"),
	    2, "POST", "/c", "", HTTP_BODY_CHUNKED, 0, "abc", 2, "/after" },
	{ "HTTP/1.0 without Host", S("GET / HTTP/1.0\r\n\r\n"),
	    1, "GET", "/", "", HTTP_BODY_NONE, 0, "", 0, "/" },
	{ "HTTP/1.0 with empty Host", S("GET /x HTTP/1.0\r\nHost:\r\n\r\n"),
	    1, "GET", "/x", "", HTTP_BODY_NONE, 0, "", 1, "/x" },
	{ "OPTIONS *", S("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"),
	    1, "OPTIONS", "*", "", HTTP_BODY_NONE, 0, "", 1, "*" },
	{ "IPv6 Host with port", S("GET / HTTP/1.1\r\nHost: [2001:db8::1]:443\r\n\r\n"),
	    1, "GET", "/", "", HTTP_BODY_NONE, 0, "", 1, "/" },
	{ "IPv4 Host, reg-name chars", S("GET / HTTP/1.1\r\nHost: 192.0.2.1:65535\r\n\r\n"),
	    1, "GET", "/", "", HTTP_BODY_NONE, 0, "", 1, "/" },
	{ "reg-name with pct and sub-delims", S("GET / HTTP/1.1\r\nHost: a-b.c_d~%41!$&'()*+,;=\r\n\r\n"),
	    1, "GET", "/", "", HTTP_BODY_NONE, 0, "", 1, "/" },
	{ "obs-text and HTAB in a value, empty value", S("GET /%7Ea:@!$&'()*+,;= HTTP/1.1\r\n"
	    "Host: a\r\nX-A: \xe2\x82\xac\tb\r\nX-Empty:\r\n\r\n"),
	    1, "GET", "/%7Ea:@!$&'()*+,;=", "", HTTP_BODY_NONE, 0, "", 3, "/%7Ea:@!$&'()*+,;=" },
	{ "query with slash and question mark", S("GET /p?a=/b?c HTTP/1.1\r\nHost: a\r\n\r\n"),
	    1, "GET", "/p", "a=/b?c", HTTP_BODY_NONE, 0, "", 1, "/p" },
	{ "dot inside a segment is fine", S("GET /a..b/.c/d. HTTP/1.1\r\nHost: a\r\n\r\n"),
	    1, "GET", "/a..b/.c/d.", "", HTTP_BODY_NONE, 0, "", 1, "/a..b/.c/d." },
	{ "Upgrade request served as a plain request", S("GET /ws HTTP/1.1\r\nHost: a\r\n"
	    "Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n"),
	    1, "GET", "/ws", "", HTTP_BODY_NONE, 0, "", 3, "/ws" },
	{ "Content-Length with leading zeros", S("PUT /z HTTP/1.1\r\nHost: a\r\n"
	    "Content-Length: 003\r\n\r\nxyz"),
	    1, "PUT", "/z", "", HTTP_BODY_LENGTH, 3, "xyz", 2, "/z" },

	/* Whitespace around a field value is not part of it (RFC 9110 §5.5,
	 * RFC 9112 §5.1), also around the values that frame the body. */
	{ "CL then HTAB", S("POST /p HTTP/1.1\r\nHost: a\r\n"
	    "Content-Length: 5\t\r\n\r\nhello"),
	    1, "POST", "/p", "", HTTP_BODY_LENGTH, 5, "hello", 2, "/p" },
	{ "CL then SP", S("POST /p HTTP/1.1\r\nHost: a\r\n"
	    "Content-Length: 5 \r\n\r\nhello"),
	    1, "POST", "/p", "", HTTP_BODY_LENGTH, 5, "hello", 2, "/p" },
	{ "CL between HTABs and SPs", S("POST /p HTTP/1.1\r\nHost: a\r\n"
	    "Content-Length:\t \t5 \t \t\r\n\r\nhello"),
	    1, "POST", "/p", "", HTTP_BODY_LENGTH, 5, "hello", 2, "/p" },
	{ "CL without OWS, then HTAB", S("POST /p HTTP/1.1\r\nHost: a\r\n"
	    "content-length:5\t\r\nX: y\t\r\n\r\nhello"),
	    1, "POST", "/p", "", HTTP_BODY_LENGTH, 5, "hello", 3, "/p" },
	{ "CL 0 then HTAB, then a GET", S("POST /p HTTP/1.1\r\nHost: a\t\r\n"
	    "Content-Length: 0\t\r\n\r\nGET /n HTTP/1.1\r\nHost: a\r\n\r\n"),
	    2, "POST", "/p", "", HTTP_BODY_LENGTH, 0, "", 2, "/n" },
	{ "TE chunked then HTAB", S("POST /c HTTP/1.1\r\nHost: a\r\n"
	    "Transfer-Encoding: chunked\t\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
	    1, "POST", "/c", "", HTTP_BODY_CHUNKED, 0, "hello", 2, "/c" },
	{ "TE chunked then SP", S("POST /c HTTP/1.1\r\nHost: a\r\n"
	    "Transfer-Encoding: chunked \r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
	    1, "POST", "/c", "", HTTP_BODY_CHUNKED, 0, "hello", 2, "/c" },
	{ "TE chunked between HTABs and SPs, then a GET", S("POST /c HTTP/1.1\r\n"
	    "Host: a\r\nTransfer-Encoding:\t CHUNKED\t \t\r\n\r\n"
	    "3\r\nabc\r\n0\r\n\r\nGET /n HTTP/1.1\r\nHost: a\r\n\r\n"),
	    2, "POST", "/c", "", HTTP_BODY_CHUNKED, 0, "abc", 2, "/n" },
	{ "Connection close then HTAB", S("GET /k HTTP/1.1\r\nHost: a\r\n"
	    "Connection: close\t\r\n\r\n"),
	    1, "GET", "/k", "", HTTP_BODY_NONE, 0, "", 2, "/k" },

	/* absolute-form (RFC 9112 §3.2.2): the path and query after the
	 * authority; an empty path stands for "/". */
	{ "absolute-form", S("GET http://example.com:8080/path?q HTTP/1.1\r\n"
	    "Host: example.com:8080\r\n\r\n"),
	    1, "GET", "/path", "q", HTTP_BODY_NONE, 0, "", 1, "/path" },
	{ "absolute-form, Host differs", S("GET http://a/x/y HTTP/1.1\r\nHost: b\r\n\r\n"),
	    1, "GET", "/x/y", "", HTTP_BODY_NONE, 0, "", 1, "/x/y" },
	{ "absolute-form https, no path", S("GET HTTPS://a.example HTTP/1.1\r\n"
	    "Host: a.example\r\n\r\n"),
	    1, "GET", "", "", HTTP_BODY_NONE, 0, "", 1, "" },
	{ "absolute-form, no path, a query", S("GET hTtP://a?x=1&y=http://b/?c HTTP/1.1\r\n"
	    "Host: a\r\n\r\n"),
	    1, "GET", "", "x=1&y=http://b/?c", HTTP_BODY_NONE, 0, "", 1, "" },
	{ "absolute-form, IPv6 and port, HTTP/1.0 without Host",
	    S("GET http://[2001:db8::1]:8080/a?b HTTP/1.0\r\n\r\n"),
	    1, "GET", "/a", "b", HTTP_BODY_NONE, 0, "", 0, "/a" },
	{ "absolute-form POST, then origin-form", S("POST http://a/p HTTP/1.1\r\nHost: a\r\n"
	    "Content-Length: 2\r\n\r\nokGET /n HTTP/1.1\r\nHost: a\r\n\r\n"),
	    2, "POST", "/p", "", HTTP_BODY_LENGTH, 2, "ok", 2, "/n" },
	{ "absolute-form, empty segments and pct", S("GET http://a//b//%41:@ HTTP/1.1\r\n"
	    "Host: a\r\n\r\n"),
	    1, "GET", "//b//%41:@", "", HTTP_BODY_NONE, 0, "", 1, "//b//%41:@" },
};

static void
test_valid(void **state)
{
	size_t i;

	for (i = 0; i < CG_ARRAY_LEN(valid_cases); i++) {
		const struct valid_case *c = &valid_cases[i];
		struct run_result r;

		run_both(c->name, c->in, c->len, &default_opts, &r);
		if (r.status != 0 || r.nmsgs != c->nmsgs) {
			print_error("case %s: status %d (%s), %zu messages\n", c->name,
			    r.status, r.reason ? r.reason : "-", r.nmsgs);
			fail();
		}
		assert_string_equal(r.m[0].method, c->method);
		assert_string_equal(r.m[0].path, c->path);
		assert_string_equal(r.m[0].query, c->query);
		assert_int_equal(r.m[0].framing, c->framing);
		assert_int_equal(r.m[0].length, c->length);
		assert_int_equal(r.m[0].nfields, c->nfields);
		assert_int_equal(r.m[0].body_len, strlen(c->body));
		assert_memory_equal(r.m[0].body, c->body, r.m[0].body_len);
		assert_string_equal(r.m[r.nmsgs - 1].path, c->last_path);
	}
}

/* The fields of a parsed head: names, trimmed values, spans in the buffer. */
static void
test_fields(void **state)
{
	static const char in[] = "GET / HTTP/1.1\r\nHost:  a \r\nX-T:\t b  c\t\r\n"
	    "X-E:  \r\n\r\nBODY";
	struct http_field fields[8];
	struct http_limits lim = default_opts.lim;
	struct http_head h;
	struct http_error err;

	assert_int_equal(http_parse_head(in, sizeof(in) - 1, true, &lim, &h, fields, &err),
	    HTTP_PARSE_DONE);
	assert_int_equal(h.head_len, sizeof(in) - 1 - 4);
	assert_int_equal(h.version_minor, 1);
	assert_int_equal(h.nfields, 3);
	assert_ptr_equal(h.fields, fields);
	assert_memory_equal(fields[0].name.p, "Host", 4);
	assert_int_equal(fields[0].value.len, 1);
	assert_ptr_equal(fields[0].value.p, in + 23);
	assert_int_equal(fields[1].value.len, 4);
	assert_memory_equal(fields[1].value.p, "b  c", 4);
	assert_int_equal(fields[2].value.len, 0);
	assert_false(fields[0].drop);
	assert_ptr_equal(h.method.p, in);
	assert_int_equal(h.target.len, 1);
}

/* Every byte value at every offset of a long field value (the scan takes
 * eight bytes at a time): a value byte is kept in the value, any other
 * control byte is refused, in a request and in a response. */
static void
test_value_bytes_at_every_offset(void **state)
{
	static const char req[] = "GET / HTTP/1.1\r\nHost: a\r\nX: ";
	static const char resp[] = "HTTP/1.1 200 OK\r\nX: ";
	struct http_field fields[8];
	struct http_limits lim = default_opts.lim;
	struct http_head h;
	struct http_error err;
	char in[128], *buf;
	size_t off, pre, n, vlen = 40;
	unsigned c;
	int r, resp_mode;

	(void)state;
	for (resp_mode = 0; resp_mode < 2; resp_mode++)
		for (c = 0; c < 256; c++)
			for (off = 1; off + 1 < vlen; off++) {
				if (c == '\r' || c == '\n')
					continue;
				pre = resp_mode ? sizeof(resp) - 1 : sizeof(req) - 1;
				memcpy(in, resp_mode ? resp : req, pre);
				memset(in + pre, 'v', vlen);
				in[pre + off] = (char)c;
				memcpy(in + pre + vlen, "\r\n\r\n", 4);
				n = pre + vlen + 4;
				buf = malloc(n);	/* exactly: ASan sees an overread */
				assert_non_null(buf);
				memcpy(buf, in, n);
				r = http_parse_head(buf, n, !resp_mode, &lim, &h, fields, &err);
				if (c == '\t' || (c >= 0x20 && c != 0x7f)) {
					if (r != HTTP_PARSE_DONE)
						fail_msg("byte 0x%02x at %zu refused: %s", c, off,
						    err.reason);
					assert_int_equal(fields[h.nfields - 1].value.len, vlen);
					assert_memory_equal(fields[h.nfields - 1].value.p,
					    in + pre, vlen);
				} else {
					if (r != HTTP_PARSE_ERROR)
						fail_msg("byte 0x%02x at %zu taken", c, off);
					assert_int_equal(err.status, resp_mode ? 502 : 400);
					assert_string_equal(err.reason,
					    "control character in a field value");
				}
				free(buf);
			}
}

/* ------------------------------------------------------------------ */
/* Attacks: each refused with the exact status                          */
/* ------------------------------------------------------------------ */

struct bad_case {
	const char *name;
	const char *in;
	size_t len;
	int status;
};

#define REQ_CHUNKED "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
#define REQ_H(fields) "GET / HTTP/1.1\r\nHost: a\r\n" fields "\r\n"
#define REQ_HOST(v) "GET / HTTP/1.1\r\nHost: " v "\r\n\r\n"
#define REQ_TARGET(t) "GET " t " HTTP/1.1\r\nHost: a\r\n\r\n"

static const struct bad_case bad_cases[] = {
	/* Content-Length and Transfer-Encoding. */
	{ "CL and TE", S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), 400 },
	{ "TE and CL", S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
	    "Content-Length: 5\r\n\r\n0\r\n\r\n"), 400 },
	{ "two equal CL", S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
	    "Content-Length: 5\r\n\r\nhello"), 400 },
	{ "two CL, case differs", S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
	    "content-length: 6\r\n\r\nhello"), 400 },
	{ "CL with plus", S(REQ_H("Content-Length: +5\r\n")), 400 },
	{ "CL with minus", S(REQ_H("Content-Length: -5\r\n")), 400 },
	{ "CL hex", S(REQ_H("Content-Length: 0x5\r\n")), 400 },
	{ "CL list", S(REQ_H("Content-Length: 5, 5\r\n")), 400 },
	{ "CL list no space", S(REQ_H("Content-Length: 5,5\r\n")), 400 },
	{ "CL inner space", S(REQ_H("Content-Length: 5 5\r\n")), 400 },
	{ "CL inner HTAB", S(REQ_H("Content-Length: 5\t5\r\n")), 400 },
	{ "CL inner HTAB, then HTAB", S(REQ_H("Content-Length: 5\t5\t\r\n")), 400 },
	{ "CL then HTAB and bare CR", S(REQ_H("Content-Length: 5\t\r5\r\n")), 400 },
	{ "CL then HTAB and obs-fold", S(REQ_H("Content-Length: 5\t\r\n 5\r\n")), 400 },
	{ "CL then HTAB, twice", S(REQ_H("Content-Length: 5\t\r\n"
	    "Content-Length: 5\t\r\n")), 400 },
	{ "CL only HTAB", S(REQ_H("Content-Length:\t\r\n")), 400 },
	{ "CL then VT", S(REQ_H("Content-Length: 5\x0b\r\n")), 400 },
	{ "CL empty", S(REQ_H("Content-Length:\r\n")), 400 },
	{ "CL over 2^53", S(REQ_H("Content-Length: 9007199254740993\r\n")), 400 },
	{ "CL huge", S(REQ_H("Content-Length: 99999999999999999999999\r\n")), 400 },
	{ "TE gzip, chunked", S("POST / HTTP/1.1\r\nHost: a\r\n"
	    "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"), 400 },
	{ "TE chunked, gzip", S("POST / HTTP/1.1\r\nHost: a\r\n"
	    "Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n"), 400 },
	{ "TE chunked, chunked", S("POST / HTTP/1.1\r\nHost: a\r\n"
	    "Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n"), 400 },
	{ "TE chunked, inner HTAB", S("POST / HTTP/1.1\r\nHost: a\r\n"
	    "Transfer-Encoding: chunked\tx\r\n\r\n0\r\n\r\n"), 400 },
	{ "TE chunked then HTAB, and CL", S("POST / HTTP/1.1\r\nHost: a\r\n"
	    "Transfer-Encoding: chunked\t\r\nContent-Length: 5\t\r\n\r\n0\r\n\r\n"), 400 },
	{ "TE chunked then HTAB and obs-fold", S("POST / HTTP/1.1\r\nHost: a\r\n"
	    "Transfer-Encoding: chunked\t\r\n\tgzip\r\n\r\n0\r\n\r\n"), 400 },
	{ "TE identity", S("POST / HTTP/1.1\r\nHost: a\r\n"
	    "Transfer-Encoding: identity\r\n\r\n"), 400 },
	{ "TE chunked with parameter", S("POST / HTTP/1.1\r\nHost: a\r\n"
	    "Transfer-Encoding: chunked;q=1\r\n\r\n"), 400 },
	{ "two TE fields", S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), 400 },
	{ "TE in HTTP/1.0", S("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "0\r\n\r\n"), 400 },

	/* Chunk syntax. */
	{ "chunk size overflow", S(REQ_CHUNKED "fffffffffffffffff\r\nx\r\n0\r\n\r\n"), 400 },
	{ "chunk size with plus", S(REQ_CHUNKED "+5\r\nhello\r\n0\r\n\r\n"), 400 },
	{ "chunk size with minus", S(REQ_CHUNKED "-5\r\nhello\r\n0\r\n\r\n"), 400 },
	{ "chunk size 0x", S(REQ_CHUNKED "0x5\r\nhello\r\n0\r\n\r\n"), 400 },
	{ "chunk size empty", S(REQ_CHUNKED "\r\nhello\r\n0\r\n\r\n"), 400 },
	{ "chunk size leading space", S(REQ_CHUNKED " 5\r\nhello\r\n0\r\n\r\n"), 400 },
	{ "chunk size trailing space", S(REQ_CHUNKED "5 \r\nhello\r\n0\r\n\r\n"), 400 },
	{ "chunk size trailing tab", S(REQ_CHUNKED "5\t\r\nhello\r\n0\r\n\r\n"), 400 },
	{ "chunk size bare LF", S(REQ_CHUNKED "5\nhello\r\n0\r\n\r\n"), 400 },
	{ "chunk size bare CR", S(REQ_CHUNKED "5\rhello\r\n0\r\n\r\n"), 400 },
	{ "chunk data without CRLF", S(REQ_CHUNKED "5\r\nhelloXX0\r\n\r\n"), 400 },
	{ "chunk data bare LF", S(REQ_CHUNKED "5\r\nhello\n0\r\n\r\n"), 400 },
	{ "chunk data bare CR", S(REQ_CHUNKED "5\r\nhello\r0\r\n\r\n"), 400 },
	{ "chunk longer than its size", S(REQ_CHUNKED "3\r\nhello\r\n0\r\n\r\n"), 400 },
	{ "last chunk bare LF", S(REQ_CHUNKED "0\n\r\n"), 400 },
	{ "last chunk then bare LF", S(REQ_CHUNKED "0\r\n\n"), 400 },
	{ "last chunk then bare CR", S(REQ_CHUNKED "0\r\n\rX"), 400 },
	{ "extension empty", S(REQ_CHUNKED "5;\r\nhello\r\n0\r\n\r\n"), 400 },
	{ "extension empty name", S(REQ_CHUNKED "5;=x\r\nhello\r\n0\r\n\r\n"), 400 },
	{ "extension empty value", S(REQ_CHUNKED "5;a=\r\nhello\r\n0\r\n\r\n"), 400 },
	{ "extension space before ;", S(REQ_CHUNKED "5 ;a\r\nhello\r\n0\r\n\r\n"), 400 },
	{ "extension space before =", S(REQ_CHUNKED "5;a =b\r\nhello\r\n0\r\n\r\n"), 400 },
	{ "extension unterminated quote", S(REQ_CHUNKED "5;a=\"x\r\nhello\r\n0\r\n\r\n"), 400 },
	{ "extension control char", S(REQ_CHUNKED "5;a\x01\r\nhello\r\n0\r\n\r\n"), 400 },
	{ "extension bare LF", S(REQ_CHUNKED "5;a=b\nhello\r\n0\r\n\r\n"), 400 },
	{ "extension value not a token", S(REQ_CHUNKED "5;a=b@c\r\nhello\r\n0\r\n\r\n"), 400 },

	/* Trailers. */
	{ "trailer Content-Length", S(REQ_CHUNKED "0\r\nContent-Length: 5\r\n\r\n"), 400 },
	{ "trailer Transfer-Encoding", S(REQ_CHUNKED "0\r\ntransfer-ENCODING: chunked\r\n\r\n"), 400 },
	{ "trailer Host", S(REQ_CHUNKED "0\r\nHOST: b\r\n\r\n"), 400 },
	{ "trailer Authorization", S(REQ_CHUNKED "0\r\nAuthorization: x\r\n\r\n"), 400 },
	{ "trailer empty name", S(REQ_CHUNKED "0\r\n: a\r\n\r\n"), 400 },
	{ "trailer name not a token", S(REQ_CHUNKED "0\r\nX(y): a\r\n\r\n"), 400 },
	{ "trailer space before colon", S(REQ_CHUNKED "0\r\nX : a\r\n\r\n"), 400 },
	{ "trailer obs-fold", S(REQ_CHUNKED "0\r\nX: a\r\n b\r\n\r\n"), 400 },
	{ "trailer bare LF", S(REQ_CHUNKED "0\r\nX: a\n\r\n"), 400 },
	{ "trailer bare CR", S(REQ_CHUNKED "0\r\nX: a\rb\r\n\r\n"), 400 },
	{ "trailer NUL", S(REQ_CHUNKED "0\r\nX: a\0b\r\n\r\n"), 400 },
	{ "trailer no colon", S(REQ_CHUNKED "0\r\nXa\r\n\r\n"), 400 },

	/* Line ends and bytes in the head. */
	{ "bare LF after request line", S("GET / HTTP/1.1\nHost: a\r\n\r\n"), 400 },
	{ "bare LF after a field", S("GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n"), 400 },
	{ "bare LF ending the head", S("GET / HTTP/1.1\r\nHost: a\r\n\n"), 400 },
	{ "all bare LF", S("GET / HTTP/1.1\nHost: a\n\n"), 400 },
	{ "bare CR in request line", S("GET /\r HTTP/1.1\r\nHost: a\r\n\r\n"), 400 },
	{ "bare CR in a value", S("GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n"), 400 },
	{ "bare CR ending the head", S("GET / HTTP/1.1\r\nHost: a\r\n\rX"), 400 },
	{ "NUL in a value", S(REQ_H("X: a\0b\r\n")), 400 },
	{ "NUL in request line", S("GET /\0 HTTP/1.1\r\nHost: a\r\n\r\n"), 400 },
	{ "NUL in a name", S(REQ_H("X\0: b\r\n")), 400 },
	{ "0x01 in a value", S(REQ_H("X: a\x01\r\n")), 400 },
	{ "0x1f in a value", S(REQ_H("X: a\x1f\r\n")), 400 },
	{ "DEL in a value", S(REQ_H("X: a\x7f\r\n")), 400 },
	{ "ESC in request line", S("GET /\x1b HTTP/1.1\r\nHost: a\r\n\r\n"), 400 },
	{ "space before colon", S("GET / HTTP/1.1\r\nHost : a\r\n\r\n"), 400 },
	{ "tab before colon", S("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n"), 400 },
	{ "obs-fold", S(REQ_H("X: a\r\n b\r\n")), 400 },
	{ "obs-fold with tab", S(REQ_H("X: a\r\n\tb\r\n")), 400 },
	{ "space before first field", S("GET / HTTP/1.1\r\n Host: a\r\n\r\n"), 400 },
	{ "name not a token", S(REQ_H("X@Y: 1\r\n")), 400 },
	{ "name with slash", S(REQ_H("X/Y: 1\r\n")), 400 },
	{ "name obs-text", S(REQ_H("X\xc3\xa9: 1\r\n")), 400 },
	{ "empty name", S(REQ_H(": 1\r\n")), 400 },
	{ "field without colon", S(REQ_H("Xyz\r\n")), 400 },
	{ "leading CRLF", S("\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), 400 },
	{ "leading LF", S("\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), 400 },
	{ "two spaces after method", S("GET  / HTTP/1.1\r\nHost: a\r\n\r\n"), 400 },
	{ "two spaces before version", S("GET /  HTTP/1.1\r\nHost: a\r\n\r\n"), 400 },
	{ "tab as separator", S("GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n"), 400 },
	{ "leading space", S(" GET / HTTP/1.1\r\nHost: a\r\n\r\n"), 400 },
	{ "trailing space", S("GET / HTTP/1.1 \r\nHost: a\r\n\r\n"), 400 },
	{ "missing version", S("GET /\r\nHost: a\r\n\r\n"), 400 },
	{ "missing target", S("GET HTTP/1.1\r\nHost: a\r\n\r\n"), 400 },
	{ "HTTP/1.2", S("GET / HTTP/1.2\r\nHost: a\r\n\r\n"), 505 },
	{ "HTTP/2.0", S("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), 505 },
	{ "HTTP/0.9", S("GET / HTTP/0.9\r\nHost: a\r\n\r\n"), 505 },
	{ "lowercase http/1.1", S("GET / http/1.1\r\nHost: a\r\n\r\n"), 400 },
	{ "HTTP/1.10", S("GET / HTTP/1.10\r\nHost: a\r\n\r\n"), 400 },
	{ "HTTP/11", S("GET / HTTP/11\r\nHost: a\r\n\r\n"), 400 },
	{ "method not a token", S("G(T / HTTP/1.1\r\nHost: a\r\n\r\n"), 400 },
	{ "obs-text in target", S("GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n"), 400 },
	{ "unknown method", S("FOO / HTTP/1.1\r\nHost: a\r\n\r\n"), 501 },
	{ "lowercase method", S("get / HTTP/1.1\r\nHost: a\r\n\r\n"), 501 },

	/* Host. */
	{ "Host missing", S("GET / HTTP/1.1\r\n\r\n"), 400 },
	{ "Host repeated", S("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"), 400 },
	{ "Host repeated in 1.0", S("GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n"), 400 },
	{ "Host empty", S("GET / HTTP/1.1\r\nHost:\r\n\r\n"), 400 },
	{ "Host blank", S("GET / HTTP/1.1\r\nHost:   \r\n\r\n"), 400 },
	{ "Host with space", S(REQ_HOST("a b")), 400 },
	{ "Host with slash", S(REQ_HOST("a/b")), 400 },
	{ "Host with userinfo", S(REQ_HOST("u@a")), 400 },
	{ "Host bad pct", S(REQ_HOST("a%zz")), 400 },
	{ "Host truncated pct", S(REQ_HOST("a%4")), 400 },
	{ "Host port not digits", S(REQ_HOST("a:http")), 400 },
	{ "Host port empty", S(REQ_HOST("a:")), 400 },
	{ "Host port over 65535", S(REQ_HOST("a:65536")), 400 },
	{ "Host port too long", S(REQ_HOST("a:000080")), 400 },
	{ "Host two ports", S(REQ_HOST("a:80:80")), 400 },
	{ "Host only port", S(REQ_HOST(":80")), 400 },
	{ "Host IPv6 unbracketed", S(REQ_HOST("2001:db8::1")), 400 },
	{ "Host IPv6 unterminated", S(REQ_HOST("[::1")), 400 },
	{ "Host IPv6 bad", S(REQ_HOST("[zz::1]")), 400 },
	{ "Host IPv6 empty", S(REQ_HOST("[]")), 400 },
	{ "Host IPv6 zone", S(REQ_HOST("[fe80::1%25eth0]")), 400 },
	{ "Host IPv6 junk after", S(REQ_HOST("[::1]x")), 400 },
	{ "Host absolute URI", S(REQ_HOST("http://a")), 400 },

	/* request-target. */
	{ "absolute-form, scheme ftp", S(REQ_TARGET("ftp://a/")), 400 },
	{ "absolute-form, scheme httpx", S(REQ_TARGET("httpx://a/")), 400 },
	{ "absolute-form, scheme ws", S(REQ_TARGET("ws://a/")), 400 },
	{ "absolute-URI without authority", S(REQ_TARGET("http:/a")), 400 },
	{ "absolute-URI, opaque", S(REQ_TARGET("http:a")), 400 },
	{ "scheme starting with a digit", S(REQ_TARGET("1http://a/")), 400 },
	{ "absolute-form, empty authority", S(REQ_TARGET("http:///a")), 400 },
	{ "absolute-form, empty authority, nothing else", S(REQ_TARGET("http://")), 400 },
	{ "absolute-form, userinfo", S(REQ_TARGET("http://u@a/")), 400 },
	{ "absolute-form, userinfo with password", S(REQ_TARGET("http://u:p@a/")), 400 },
	{ "absolute-form, empty userinfo", S(REQ_TARGET("http://@a/")), 400 },
	{ "absolute-form, port not digits", S(REQ_TARGET("http://a:x/")), 400 },
	{ "absolute-form, empty port", S(REQ_TARGET("http://a:/")), 400 },
	{ "absolute-form, port over 65535", S(REQ_TARGET("http://a:65536/")), 400 },
	{ "absolute-form, IPv6 unterminated", S(REQ_TARGET("http://[::1/")), 400 },
	{ "absolute-form, IPv6 unbracketed", S(REQ_TARGET("http://::1/")), 400 },
	{ "absolute-form, bad pct in host", S(REQ_TARGET("http://a%zz/")), 400 },
	{ "absolute-form, dot-dot", S(REQ_TARGET("http://a/b/../c")), 400 },
	{ "absolute-form, encoded dot-dot", S(REQ_TARGET("http://a/b/%2E%2e")), 400 },
	{ "absolute-form, dot", S(REQ_TARGET("http://a/./c")), 400 },
	{ "absolute-form, fragment", S(REQ_TARGET("http://a/b#c")), 400 },
	{ "absolute-form, fragment after authority", S(REQ_TARGET("http://a#c")), 400 },
	{ "absolute-form, backslash", S(REQ_TARGET("http://a/b\\c")), 400 },
	{ "absolute-form, backslash in authority", S(REQ_TARGET("http://a\\b/")), 400 },
	{ "absolute-form, bad pct in query", S(REQ_TARGET("http://a/?%4")), 400 },
	{ "absolute-form in HTTP/1.1 without Host",
	    S("GET http://a/ HTTP/1.1\r\n\r\n"), 400 },
	{ "absolute-form, two Host fields",
	    S("GET http://a/ HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"), 400 },
	{ "absolute-form, invalid Host",
	    S("GET http://a/ HTTP/1.1\r\nHost: a b\r\n\r\n"), 400 },
	{ "absolute-form with CONNECT",
	    S("CONNECT http://a/ HTTP/1.1\r\nHost: a\r\n\r\n"), 501 },
	{ "authority-form", S(REQ_TARGET("a:80")), 400 },
	{ "asterisk with GET", S(REQ_TARGET("*")), 400 },
	{ "CONNECT", S("CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n"), 501 },
	{ "CONNECT origin-form", S("CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n"), 501 },
	{ "dot-dot segment", S(REQ_TARGET("/a/../b")), 400 },
	{ "dot segment", S(REQ_TARGET("/./a")), 400 },
	{ "trailing dot-dot", S(REQ_TARGET("/a/..")), 400 },
	{ "encoded dot-dot", S(REQ_TARGET("/a/%2e%2E/b")), 400 },
	{ "half encoded dot-dot", S(REQ_TARGET("/a/.%2e?x")), 400 },
	{ "fragment", S(REQ_TARGET("/a#b")), 400 },
	{ "backslash", S(REQ_TARGET("/a\\b")), 400 },
	{ "bad pct in path", S(REQ_TARGET("/a%2")), 400 },
	{ "bad pct in query", S(REQ_TARGET("/a?b=%g0")), 400 },
	{ "pipe in path", S(REQ_TARGET("/a|b")), 400 },
	{ "quote in query", S(REQ_TARGET("/a?\"")), 400 },
};

static void
test_bad(void **state)
{
	size_t i;

	for (i = 0; i < CG_ARRAY_LEN(bad_cases); i++) {
		const struct bad_case *c = &bad_cases[i];
		struct run_result r;

		run_both(c->name, c->in, c->len, &default_opts, &r);
		if (r.status != c->status) {
			print_error("case %s: want %d, got %d (%s)\n", c->name, c->status,
			    r.status, r.reason ? r.reason : "-");
			fail();
		}
		assert_non_null(r.reason);
	}
}

/* ------------------------------------------------------------------ */
/* Limits: at the limit passes, one over fails                         */
/* ------------------------------------------------------------------ */

/* Builds "GET /<pad> HTTP/1.1\r\nHost: a\r\n<extra fields>\r\n". */
static char *
build_request(size_t line_len, size_t nextra, size_t head_len)
{
	size_t cap = line_len + head_len + nextra * 16 + 256, n, i;
	char *b = malloc(cap);

	assert_non_null(b);
	assert_true(line_len >= 15);
	memcpy(b, "GET /", 5);
	memset(b + 5, 'a', line_len - 14);
	memcpy(b + line_len - 9, " HTTP/1.1\r\nHost: a\r\n", 20);
	n = line_len + 2 + 9;
	for (i = 0; i < nextra; i++)
		n += (size_t)snprintf(b + n, cap - n, "X-%03zu: v\r\n", i);
	if (head_len > 0) {
		/* Pad with one field to reach head_len exactly. */
		size_t need = head_len - n - 2;

		assert_true(need >= 4);
		memcpy(b + n, "P: ", 3);
		memset(b + n + 3, 'p', need - 5);
		memcpy(b + n + need - 2, "\r\n", 2);
		n += need;
	}
	memcpy(b + n, "\r\n", 2);
	n += 2;
	b[n] = '\0';
	if (head_len > 0)
		assert_int_equal(n, head_len);
	return b;
}

static int
status_of(const char *in, size_t len, const struct run_opts *o)
{
	struct run_result r;

	run_both("limit", in, len, o, &r);
	return r.status;
}

static void
test_limits_head(void **state)
{
	struct run_opts o = default_opts;
	char *b;

	/* The request line: max_line bytes pass, one more is 414. */
	b = build_request(o.lim.max_line, 0, 0);
	assert_int_equal(status_of(b, strlen(b), &o), 0);
	free(b);
	b = build_request(o.lim.max_line + 1, 0, 0);
	assert_int_equal(status_of(b, strlen(b), &o), 414);
	/* ... also before the line ends. */
	assert_int_equal(status_of(b, o.lim.max_line + 1, &o), 414);
	assert_int_equal(status_of(b, o.lim.max_line, &o), INCOMPLETE);
	free(b);

	/* Fields: max_fields pass, one more is 431 (Host is one). */
	b = build_request(20, o.lim.max_fields - 1, 0);
	assert_int_equal(status_of(b, strlen(b), &o), 0);
	free(b);
	b = build_request(20, o.lim.max_fields, 0);
	assert_int_equal(status_of(b, strlen(b), &o), 431);
	/* ... as soon as the extra field starts. */
	assert_int_equal(status_of(b, strlen(b) - 3, &o), 431);
	free(b);

	/* The whole head: max_head bytes pass, one more is 431. */
	b = build_request(20, 0, o.lim.max_head);
	assert_int_equal(status_of(b, strlen(b), &o), 0);
	free(b);
	b = build_request(20, 0, o.lim.max_head + 1);
	assert_int_equal(status_of(b, strlen(b), &o), 431);
	/* ... as soon as max_head bytes hold no complete head. */
	assert_int_equal(status_of(b, o.lim.max_head, &o), 431);
	assert_int_equal(status_of(b, o.lim.max_head - 1, &o), INCOMPLETE);
	free(b);
}

static void
test_limits_body(void **state)
{
	struct run_opts o = default_opts;
	char buf[256];
	int n;

	o.max_body = 5;
	assert_int_equal(status_of(S("POST / HTTP/1.1\r\nHost: a\r\n"
	    "Content-Length: 5\r\n\r\nhello"), &o), 0);
	/* Refused from the head, before any body byte. */
	assert_int_equal(status_of(S("POST / HTTP/1.1\r\nHost: a\r\n"
	    "Content-Length: 6\r\n\r\n"), &o), 413);
	assert_int_equal(status_of(S(REQ_CHUNKED "3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n"), &o), 0);
	assert_int_equal(status_of(S(REQ_CHUNKED "3\r\nhel\r\n3\r\nlo!\r\n0\r\n\r\n"), &o), 413);
	/* Refused at the chunk line, before its data. */
	assert_int_equal(status_of(S(REQ_CHUNKED "3\r\nhel\r\n3\r\n"), &o), 413);
	assert_int_equal(status_of(S(REQ_CHUNKED "6\r\n"), &o), 413);

	/* Trailers: max_trailer bytes of field lines pass, one more fails. */
	o = default_opts;
	o.lim.max_trailer = 8;
	assert_int_equal(status_of(S(REQ_CHUNKED "0\r\nX-A: b\r\n\r\n"), &o), 0);
	assert_int_equal(status_of(S(REQ_CHUNKED "0\r\nX-A: bc\r\n\r\n"), &o), 400);
	assert_int_equal(status_of(S(REQ_CHUNKED "0\r\nX: 1\r\nY: 2\r\n\r\n"), &o), 400);
	o.lim.max_trailer = 12;
	assert_int_equal(status_of(S(REQ_CHUNKED "0\r\nX: 1\r\nY: 2\r\n\r\n"), &o), 0);
	o.lim.max_trailer = 0;
	assert_int_equal(status_of(S(REQ_CHUNKED "0\r\n\r\n"), &o), 0);
	assert_int_equal(status_of(S(REQ_CHUNKED "0\r\nX: 1\r\n\r\n"), &o), 400);

	/* A chunk line of extensions has a bound too. */
	o = default_opts;
	n = snprintf(buf, sizeof(buf), "%s", REQ_CHUNKED "1");
	{
		size_t len = (size_t)n + 5000 * 2 + 32;
		char *big = malloc(len);
		size_t k = (size_t)n, j;

		assert_non_null(big);
		memcpy(big, buf, k);
		for (j = 0; j < 5000; j++) {
			big[k++] = ';';
			big[k++] = 'a';
		}
		memcpy(big + k, "\r\nx\r\n0\r\n\r\n", 10);
		k += 10;
		assert_int_equal(status_of(big, k, &o), 400);
		free(big);
	}
}

static void
test_content_length_bound(void **state)
{
	struct http_field fields[4];
	struct http_limits lim = default_opts.lim;
	struct http_head h;
	struct http_error err;
	struct http_framing f;
	static const char at[] = "POST / HTTP/1.1\r\nHost: a\r\n"
	    "Content-Length: 9007199254740992\r\n\r\n";

	assert_int_equal(http_parse_head(at, sizeof(at) - 1, true, &lim, &h, fields, &err),
	    HTTP_PARSE_DONE);
	assert_int_equal(http_request_check(&h, &f, &err), 0);
	assert_int_equal(f.kind, HTTP_BODY_LENGTH);
	assert_true(f.length == (UINT64_C(1) << 53));
}

/* The host an absolute-form request is for, and whether its Host field
 * named another. */
static void
test_request_authority(void **state)
{
	static const struct {
		const char *in;
		bool absolute;
		const char *authority;
		bool differs;
	} cases[] = {
		{ "GET http://Example.com:8080/p HTTP/1.1\r\nHost: example.COM:8080\r\n\r\n",
		    true, "Example.com:8080", false },
		{ "GET http://a/p HTTP/1.1\r\nHost: b\r\n\r\n", true, "a", true },
		{ "GET http://a/p HTTP/1.1\r\nHost: a:80\r\n\r\n", true, "a", true },
		{ "GET https://[::1]:8443?q HTTP/1.1\r\nHost: [::1]:8443\r\n\r\n",
		    true, "[::1]:8443", false },
		{ "GET http://a HTTP/1.0\r\n\r\n", true, "a", false },
		{ "GET http://a/ HTTP/1.0\r\nHost:\r\n\r\n", true, "a", false },
		{ "GET /p HTTP/1.1\r\nHost: b\r\n\r\n", false, "", false },
		{ "GET /http://a/ HTTP/1.1\r\nHost: b\r\n\r\n", false, "", false },
		{ "OPTIONS * HTTP/1.1\r\nHost: b\r\n\r\n", false, "", false },
	};
	struct http_field fields[8];
	struct http_limits lim = default_opts.lim;
	struct http_head h;
	struct http_error err;
	struct http_framing f;
	struct http_span auth;
	bool differs;
	size_t i;

	for (i = 0; i < CG_ARRAY_LEN(cases); i++) {
		assert_int_equal(http_parse_head(cases[i].in, strlen(cases[i].in), true, &lim,
		    &h, fields, &err), HTTP_PARSE_DONE);
		assert_int_equal(http_request_check(&h, &f, &err), 0);
		differs = !cases[i].differs;
		assert_int_equal(http_request_authority(&h, &auth, &differs),
		    cases[i].absolute);
		assert_int_equal(differs, cases[i].differs);
		assert_int_equal(auth.len, strlen(cases[i].authority));
		if (auth.len > 0)
			assert_memory_equal(auth.p, cases[i].authority, auth.len);
	}
}

/* A truncated message never passes for a complete one. */
static void
test_incomplete(void **state)
{
	static const char *const ins[] = {
		"GET / HTTP/1.1\r\nHost: a\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\n\r",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhell",
		REQ_CHUNKED "5\r\nhello\r\n",
		REQ_CHUNKED "5\r\nhello\r\n0\r\n",
		REQ_CHUNKED "5\r\nhello\r\n0\r\nX: y\r\n",
		REQ_CHUNKED "0\r\n\r",
	};
	size_t i;

	for (i = 0; i < CG_ARRAY_LEN(ins); i++)
		assert_int_equal(status_of(ins[i], strlen(ins[i]), &default_opts), INCOMPLETE);
}

/* ------------------------------------------------------------------ */
/* Responses                                                           */
/* ------------------------------------------------------------------ */

struct resp_case {
	const char *name;
	const char *in;
	size_t len;
	const char *req_method;
	int status;		/* 0: accepted */
	enum http_framing_kind framing;
	uint64_t length;
	const char *body;	/* decoded, for accepted ones */
	bool needs_eof;
};

static const struct resp_case resp_cases[] = {
	{ "200 with length", S("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcEXTRA"),
	    "GET", 0, HTTP_BODY_LENGTH, 3, "abc", false },
	{ "200 chunked", S("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "2\r\nab\r\n1;x=y\r\nc\r\n0\r\nX-T: 1\r\n\r\nEXTRA"),
	    "GET", 0, HTTP_BODY_CHUNKED, 0, "abc", false },
	{ "200 until close", S("HTTP/1.1 200 OK\r\nServer: x\r\n\r\nabc"),
	    "GET", 0, HTTP_BODY_UNTIL_CLOSE, 0, "abc", true },
	{ "HTTP/1.0 until close", S("HTTP/1.0 200 OK\r\n\r\nabc"),
	    "GET", 0, HTTP_BODY_UNTIL_CLOSE, 0, "abc", true },
	{ "HEAD with length", S("HTTP/1.1 200 OK\r\nContent-Length: 30\r\n\r\nEXTRA"),
	    "HEAD", 0, HTTP_BODY_NONE, 0, "", false },
	{ "HEAD chunked", S("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nEXTRA"),
	    "HEAD", 0, HTTP_BODY_NONE, 0, "", false },
	{ "204", S("HTTP/1.1 204 No Content\r\n\r\nEXTRA"),
	    "DELETE", 0, HTTP_BODY_NONE, 0, "", false },
	{ "304 with length", S("HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\nEXTRA"),
	    "GET", 0, HTTP_BODY_NONE, 0, "", false },
	{ "103", S("HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nEXTRA"),
	    "GET", 0, HTTP_BODY_NONE, 0, "", false },
	{ "100", S("HTTP/1.1 100 Continue\r\n\r\nEXTRA"),
	    "POST", 0, HTTP_BODY_NONE, 0, "", false },
	{ "no reason phrase", S("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n"),
	    "GET", 0, HTTP_BODY_LENGTH, 0, "", false },
	{ "empty reason phrase", S("HTTP/1.1 404 \r\nContent-Length: 1\r\n\r\nx"),
	    "GET", 0, HTTP_BODY_LENGTH, 1, "x", false },
	{ "CL then HTAB", S("HTTP/1.1 200 OK\r\nContent-Length: 3\t\r\n\r\nabcEXTRA"),
	    "GET", 0, HTTP_BODY_LENGTH, 3, "abc", false },
	{ "CL between SPs and HTABs", S("HTTP/1.1 200 OK\r\nContent-Length: \t3 \t\r\n"
	    "\r\nabcEXTRA"), "GET", 0, HTTP_BODY_LENGTH, 3, "abc", false },
	{ "TE chunked then HTAB", S("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\t\r\n"
	    "\r\n2\r\nab\r\n1\r\nc\r\n0\r\n\r\nEXTRA"),
	    "GET", 0, HTTP_BODY_CHUNKED, 0, "abc", false },
	{ "TE chunked between SPs and HTABs", S("HTTP/1.1 200 OK\r\n"
	    "Transfer-Encoding:\t chunked \t\r\n\r\n3\r\nabc\r\n0\r\n\r\nEXTRA"),
	    "GET", 0, HTTP_BODY_CHUNKED, 0, "abc", false },
	{ "HEAD, CL then HTAB", S("HTTP/1.1 200 OK\r\nContent-Length: 30\t\r\n\r\nEXTRA"),
	    "HEAD", 0, HTTP_BODY_NONE, 0, "", false },
	{ "CL inner HTAB", S("HTTP/1.1 200 OK\r\nContent-Length: 3\t3\r\n\r\n"),
	    "GET", 502, 0, 0, NULL, false },
	{ "CL then HTAB and obs-fold", S("HTTP/1.1 200 OK\r\nContent-Length: 3\t\r\n"
	    " 3\r\n\r\n"), "GET", 502, 0, 0, NULL, false },
	{ "CL and TE", S("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n"), "GET", 502, 0, 0, NULL, false },
	{ "two CL", S("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n"),
	    "GET", 502, 0, 0, NULL, false },
	{ "CL list", S("HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\n"),
	    "GET", 502, 0, 0, NULL, false },
	{ "TE gzip, chunked", S("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
	    "GET", 502, 0, 0, NULL, false },
	{ "TE in HTTP/1.0", S("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
	    "GET", 502, 0, 0, NULL, false },
	{ "bare LF", S("HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n"),
	    "GET", 502, 0, 0, NULL, false },
	{ "obs-fold", S("HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n"),
	    "GET", 502, 0, 0, NULL, false },
	{ "two-digit status", S("HTTP/1.1 20 OK\r\n\r\n"), "GET", 502, 0, 0, NULL, false },
	{ "status 600", S("HTTP/1.1 600 X\r\n\r\n"), "GET", 502, 0, 0, NULL, false },
	{ "HTTP/2.0", S("HTTP/2.0 200 OK\r\n\r\n"), "GET", 502, 0, 0, NULL, false },
	{ "bad chunk", S("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "2 \r\nab\r\n0\r\n\r\n"), "GET", 502, 0, 0, NULL, false },
	{ "trailer Content-Length", S("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "0\r\nContent-Length: 1\r\n\r\n"), "GET", 502, 0, 0, NULL, false },
};

static void
run_response(const struct resp_case *c, bool bytewise, int *status, char *body,
    size_t *body_len)
{
	struct http_field fields[16];
	struct http_limits lim = default_opts.lim;
	struct http_head h;
	struct http_error err;
	struct http_framing f;
	struct http_msg msg;
	struct msg_result m;
	size_t off, used, k;
	char *buf;
	int r;

	memset(&m, 0, sizeof(m));
	*status = 0;
	*body_len = 0;
	r = parse_head(c->in, c->len, false, bytewise, &lim, &h, fields, &err, &buf);
	if (r != HTTP_PARSE_DONE) {
		assert_int_equal(r, HTTP_PARSE_ERROR);
		*status = err.status;
		free(buf);
		return;
	}
	if (http_response_check(&h, c->req_method, strlen(c->req_method), &f, &err) != 0) {
		*status = err.status;
		free(buf);
		return;
	}
	if (c->status == 0) {
		assert_int_equal(f.kind, c->framing);
		assert_int_equal(f.length, c->length);
	}
	r = http_msg_begin(&msg, false, buf, h.head_len, c->req_method,
	    strlen(c->req_method), 0, 64, collect_body, &m);
	free(buf);
	if (r != HTTP_PARSE_DONE) {
		*status = msg.err.status;
		return;
	}
	off = h.head_len;
	if (!msg.complete) {
		if (!bytewise) {
			r = http_msg_feed(&msg, c->in + off, c->len - off, &used);
			off += used;
		} else {
			r = HTTP_PARSE_NEED_MORE;
			for (k = off; k < c->len && r == HTTP_PARSE_NEED_MORE; k++) {
				r = http_msg_feed(&msg, c->in + k, 1, &used);
				off += used;
			}
		}
		if (r == HTTP_PARSE_ERROR) {
			*status = msg.err.status;
			return;
		}
		if (r == HTTP_PARSE_NEED_MORE) {
			assert_true(c->needs_eof);
			assert_int_equal(http_msg_eof(&msg), HTTP_PARSE_DONE);
		} else
			assert_false(c->needs_eof);
	}
	assert_true(msg.complete);
	/* Whatever follows the message is left alone. */
	if (!c->needs_eof)
		assert_true(c->len - off == 0 ||
		    (c->len - off == 5 && memcmp(c->in + off, "EXTRA", 5) == 0));
	memcpy(body, m.body, m.body_len);
	*body_len = m.body_len;
}

static void
test_responses(void **state)
{
	size_t i, la, lb;
	char ba[512], bb[512];
	int sa, sb;

	for (i = 0; i < CG_ARRAY_LEN(resp_cases); i++) {
		const struct resp_case *c = &resp_cases[i];

		run_response(c, false, &sa, ba, &la);
		run_response(c, true, &sb, bb, &lb);
		if (sa != c->status || sb != c->status) {
			print_error("case %s: want %d, got %d whole and %d byte by byte\n",
			    c->name, c->status, sa, sb);
			fail();
		}
		if (c->status == 0) {
			assert_int_equal(la, strlen(c->body));
			assert_memory_equal(ba, c->body, la);
			assert_int_equal(lb, la);
			assert_memory_equal(bb, ba, la);
		}
	}
}

/* An until-close body ends only with EOF; a request never does. */
static void
test_eof(void **state)
{
	static const char req[] = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\n";
	static const char resp[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
	struct http_msg m;
	size_t used;

	assert_int_equal(http_msg_begin(&m, true, req, sizeof(req) - 1, NULL, 0, 0, 0,
	    NULL, NULL), HTTP_PARSE_DONE);
	assert_false(m.complete);
	assert_int_equal(http_msg_feed(&m, "ab", 2, &used), HTTP_PARSE_NEED_MORE);
	assert_int_equal(used, 2);
	assert_int_equal(m.body_bytes, 2);
	assert_int_equal(http_msg_eof(&m), HTTP_PARSE_ERROR);
	assert_int_equal(m.err.status, 400);

	assert_int_equal(http_msg_begin(&m, false, resp, sizeof(resp) - 1, "GET", 3, 0, 0,
	    NULL, NULL), HTTP_PARSE_DONE);
	assert_int_equal(http_msg_feed(&m, "1\r\na\r\n", 6, &used), HTTP_PARSE_NEED_MORE);
	assert_int_equal(http_msg_eof(&m), HTTP_PARSE_ERROR);
	assert_int_equal(m.err.status, 502);
}

/* The body callback can stop the message. */
static int
refuse_body(void *arg, const char *p, size_t n)
{
	return -1;
}

static void
test_body_cb_error(void **state)
{
	static const char req[] = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\n";
	struct http_msg m;
	size_t used;

	assert_int_equal(http_msg_begin(&m, true, req, sizeof(req) - 1, NULL, 0, 0, 0,
	    refuse_body, NULL), HTTP_PARSE_DONE);
	assert_int_equal(http_msg_feed(&m, "abcd", 4, &used), HTTP_PARSE_ERROR);
	assert_int_equal(m.err.status, 500);
	assert_int_equal(http_msg_feed(&m, "abcd", 4, &used), HTTP_PARSE_ERROR);
}

/* llhttp must take exactly the head we found. */
static void
test_begin_needs_whole_head(void **state)
{
	static const char req[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
	struct http_msg m;

	assert_int_equal(http_msg_begin(&m, true, req, sizeof(req) - 2, NULL, 0, 0, 0,
	    NULL, NULL), HTTP_PARSE_ERROR);
	assert_int_equal(m.err.status, 400);
	assert_int_equal(http_msg_begin(&m, true, req, sizeof(req) - 1, NULL, 0, 0, 0,
	    NULL, NULL), HTTP_PARSE_DONE);
	assert_true(m.complete);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_fields),
		cmocka_unit_test(test_value_bytes_at_every_offset),
		cmocka_unit_test(test_bad),
		cmocka_unit_test(test_limits_head),
		cmocka_unit_test(test_limits_body),
		cmocka_unit_test(test_content_length_bound),
		cmocka_unit_test(test_request_authority),
		cmocka_unit_test(test_incomplete),
		cmocka_unit_test(test_responses),
		cmocka_unit_test(test_eof),
		cmocka_unit_test(test_body_cb_error),
		cmocka_unit_test(test_begin_needs_whole_head),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
