/*
 * fuzz_http.c: libFuzzer harness for the HTTP/1.1 front parser and the
 * HTTP injector.  The first byte chooses the mode (bit 0: response
 * stream, bit 1: the request was HEAD) and how the body is cut into
 * pieces; the rest is a stream of pipelined messages run through
 * http_parse_head, the request or response checks, http_msg and the
 * injector: for requests the request head, for responses the response
 * head with the credential searched for and the query parameter stripped
 * from URL fields (the output never holds the secret, and stripping
 * keeps its contract on every field value).
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "injectors/http/http.h"
#include "injectors/http/http_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_FIELDS 16

static const struct http_limits lim = {
	.max_line = 256, .max_head = 1024, .max_fields = MAX_FIELDS, .max_trailer = 128,
};

static bool
span_in(const struct http_span *s, const char *base, size_t len)
{
	if (s->len == 0)
		return true;
	return s->p >= base && s->len <= len && (size_t)(s->p - base) <= len - s->len;
}

static void
check_head(const struct http_head *h, const char *base, size_t avail)
{
	size_t i;

	if (h->head_len == 0 || h->head_len > avail || h->head_len > lim.max_head ||
	    h->nfields > MAX_FIELDS)
		abort();
	if (!span_in(&h->method, base, h->head_len) ||
	    !span_in(&h->target, base, h->head_len) ||
	    !span_in(&h->path, base, h->head_len) ||
	    !span_in(&h->query, base, h->head_len) ||
	    !span_in(&h->reason, base, h->head_len))
		abort();
	for (i = 0; i < h->nfields; i++) {
		if (h->fields[i].name.len == 0 ||
		    !span_in(&h->fields[i].name, base, h->head_len) ||
		    !span_in(&h->fields[i].value, base, h->head_len))
			abort();
	}
}

static int
count_body(void *arg, const char *p, size_t n)
{
	uint64_t *total = arg;

	if (n == 0)
		abort();
	*total += n;
	return 0;
}

static const char *
fuzz_cred(const void *ctx, const char *name, size_t *len)
{
	*len = 6;
	return "secret";
}

/* A request the checks accepted, through the injector as the proxy hands
 * it over: an absolute-form target's authority as Host, the upstream's
 * Host for a request without one. */
static void
inject(const struct http_head *h)
{
	struct inj_http_req_ctx ctx = {
		.client_addr = "2001:db8::1", .proto = "https", .request_id = "r",
		.default_host = "upstream:8080", .framing = INJ_FRAMING_NONE,
	};
	struct inj_http_cfg cfg = {
		.kind = INJ_HTTP_QUERY, .query_param = (char *)(uintptr_t)"key",
	};
	struct inj_cred cred = { fuzz_cred, NULL, NULL };
	struct http_span tok;
	struct evbuffer *out;
	const char *reason;
	bool differs;

	if (inj_http_read_proof(h, &tok, &reason) == 0 && tok.len == 0)
		abort();
	if (http_request_authority(h, &ctx.host, &differs)) {
		if (ctx.host.len == 0 || !span_in(&ctx.host, h->target.p, h->target.len) ||
		    h->path.p < ctx.host.p + ctx.host.len)
			abort();
	} else if (ctx.host.len != 0 || differs)
		abort();
	if ((out = evbuffer_new()) == NULL)
		return;
	if (inj_http_write_request(h, &cfg, &cred, &ctx, out, &reason) != 0 &&
	    h->path.len == 0)
		abort();	/* an absolute-form target without a path is "/" */
	cfg.kind = INJ_HTTP_BEARER;
	if (inj_http_write_request(h, &cfg, &cred, &ctx, out, &reason) != 0)
		abort();	/* nothing in an accepted request refuses it */
	evbuffer_free(out);
}

/* The stripping contract on any bytes: no longer than its input, the
 * same count whether written or not, nothing left to remove after it,
 * the input unchanged when nothing was removed. */
static void
check_strip(const char *u, size_t n)
{
	char *out;
	size_t len = 0, removed;

	if ((out = malloc(n + 1)) == NULL)
		return;
	removed = inj_http_url_strip(u, n, "key", out, &len);
	if (len > n || removed != inj_http_url_strip(u, n, "key", NULL, NULL) ||
	    inj_http_url_strip(out, len, "key", NULL, NULL) != 0 ||
	    (removed == 0 && (len != n || memcmp(out, u, n) != 0)))
		abort();
	free(out);
}

static void
respond(const struct http_head *h)
{
	static const struct inj_http_cfg cfgs[] = {
		{ .kind = INJ_HTTP_QUERY, .query_param = (char *)(uintptr_t)"key" },
		{ .kind = INJ_HTTP_BASIC },
	};
	struct inj_cred cred = { fuzz_cred, NULL, NULL };
	struct inj_echo echo;
	struct evbuffer *out;
	const char *p;
	size_t i, n;
	int r;

	for (i = 0; i < h->nfields; i++)
		check_strip(h->fields[i].value.p, h->fields[i].value.len);
	for (i = 0; i < sizeof(cfgs) / sizeof(cfgs[0]); i++) {
		if ((out = evbuffer_new()) == NULL)
			return;
		r = inj_http_write_response(h, INJ_FRAMING_CHUNKED, 0, false, "r", &cfgs[i],
		    &cred, &echo, out);
		if (r != 0 && r != CG_ERR_NOMEM && r != CG_ERR_FORMAT)
			abort();
		n = evbuffer_get_length(out);
		if (r != 0 && n != 0)
			abort();
		if (echo.nnames > INJ_ECHO_NAMES ||
		    echo.nnames > echo.scrubbed + echo.dropped)
			abort();
		/* The secret ("secret"), nor its base64, ever goes out. */
		p = (const char *)evbuffer_pullup(out, -1);
		if (n > 0 && (memmem(p, n, "secret", 6) != NULL ||
		    memmem(p, n, "c2VjcmV0", 8) != NULL))
			abort();
		evbuffer_free(out);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http_field fields[MAX_FIELDS];
	struct http_head h;
	struct http_error err;
	struct http_framing f;
	struct http_msg msg;
	const char *buf, *method;
	size_t off = 0, used, piece, n, msgs;
	bool response;
	uint64_t body;
	int r;

	if (size == 0)
		return 0;
	response = data[0] & 1;
	method = data[0] & 2 ? "HEAD" : "GET";
	piece = 1 + ((data[0] >> 2) % 16);
	buf = (const char *)data + 1;
	size--;

	for (msgs = 0; msgs < 8 && off < size; msgs++) {
		r = http_parse_head(buf + off, size - off, !response, &lim, &h, fields, &err);
		if (r == HTTP_PARSE_NEED_MORE)
			break;
		if (r == HTTP_PARSE_ERROR) {
			if (err.status < 400 || err.status > 599 || err.reason == NULL)
				abort();
			break;
		}
		if (r != HTTP_PARSE_DONE)
			abort();
		check_head(&h, buf + off, size - off);
		if (!response) {
			if (http_request_check(&h, &f, &err) != 0)
				break;
			if (f.kind == HTTP_BODY_UNTIL_CLOSE)
				abort();
			inject(&h);
		} else if (http_response_check(&h, method, strlen(method), &f, &err) != 0)
			break;
		else
			respond(&h);

		body = 0;
		if (http_msg_begin(&msg, !response, buf + off, h.head_len, method,
		    strlen(method), 4096, lim.max_trailer, count_body, &body) !=
		    HTTP_PARSE_DONE)
			break;
		off += h.head_len;
		r = msg.complete ? HTTP_PARSE_DONE : HTTP_PARSE_NEED_MORE;
		while (r == HTTP_PARSE_NEED_MORE && off < size) {
			n = size - off < piece ? size - off : piece;
			r = http_msg_feed(&msg, buf + off, n, &used);
			if (used > n || (r == HTTP_PARSE_NEED_MORE && used != n))
				abort();
			off += used;
		}
		if (r == HTTP_PARSE_NEED_MORE)
			r = http_msg_eof(&msg);
		if (r != HTTP_PARSE_DONE)
			break;
		/* What the framing promised is what came. */
		if (f.kind == HTTP_BODY_NONE && body != 0)
			abort();
		if (f.kind == HTTP_BODY_LENGTH && body != f.length)
			abort();
		if (!response && body > 4096)
			abort();
	}
	return 0;
}
