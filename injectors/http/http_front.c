/*
 * http_front.c: the HTTP/1.1 protocol of a session, both sides.
 *
 * For each request: read the head, check its framing, hand the bearer
 * token and the request's attributes (method, path) to the engine, and
 * once the engine allows, write the request upstream with the credential
 * injected and relay the response, cleaned of anything that carries the
 * credential back.  Keep-alive and pipelining: requests are handled one
 * at a time, in order.
 *
 * Owns struct http_front and its one state setter.  Talks to the engine
 * only through the callbacks it lends (injectors/injector.h); never sees
 * a socket, the vault or the policy.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "injectors/http/http.h"
#include "injectors/http/http_parse.h"

#define REQ_HOLD_MAX	(16 * 1024)	/* request bytes held back until the message is whole */
#define RELAY_HIGH	INJ_RELAY_HIGH
#define RELAY_LOW	INJ_RELAY_LOW
#define PIPELINE_MAX	(64 * 1024)	/* pipelined bytes buffered while a request is in flight */
#define MAX_TRAILER	4096

enum http_state {
	HTTP_IDENTIFY,	/* reading a request head; header timer (idle timer
			   before the first byte of a later request) */
	HTTP_DECIDE,	/* the engine verifies, decides and fetches the
			   credential; its timer */
	HTTP_RELAY,	/* request up, response down; connect timer, then
			   response timer, re-armed on progress; idle timer
			   once the response head is out */
	HTTP_CLOSING,	/* the final answer is queued; the engine closes */
};

struct http_front {
	struct inj_host *h;
	const struct inj_host_ops *ho;
	const struct inj_params *p;	/* the engine's, for the request in flight */
	enum http_state state;
	unsigned requests;
	bool cli_eof;
	bool has_up;			/* an upstream connection is attached */
	bool up_connected;
	bool cli_read_paused;
	bool up_read_paused;

	/* The request in flight. */
	char *head;			/* copy of the request head; req's spans point here */
	char *target;			/* normalised request-target */
	struct http_span authority;	/* an absolute-form target's, in head */
	struct http_field *fields;
	struct http_head req;
	struct http_framing req_framing;
	struct http_msg req_msg;
	bool in_request;
	bool req_complete;
	bool req_forwarded;		/* the head went into hold or upstream */
	struct evbuffer *hold;		/* upstream-bound bytes not released yet */
	bool up_chunked;
	bool expect_continue;
	bool keep_alive;		/* the client may send another request */
	char rid[72];			/* the caller's X-Request-Id */
	char method[24];		/* for logs and audit once the head is wiped */
	struct inj_attr attrs[2];	/* method, path: lent to the engine */
	const char *flags[1];
	struct inj_request ireq;
	const struct inj_cred *cred;	/* the engine's, while the request lasts */

	/* The response in flight. */
	char *rhead;
	struct http_field *rfields;
	struct http_head resp;
	struct http_msg resp_msg;
	bool resp_head_done;
	bool resp_started;		/* bytes went to the client */
	bool resp_chunked;		/* re-chunking toward the client */
	bool resp_until_close;
};

static const char *const http_flag_host_mismatch = "host_mismatch";

static void http_read_head(struct http_front *f);
static void http_feed_request(struct http_front *f);
static void http_up_read(struct http_front *f);

static struct evbuffer *
http_in(struct http_front *f, enum inj_side side)
{
	return f->ho->input(f->h, side);
}

static struct evbuffer *
http_out(struct http_front *f, enum inj_side side)
{
	return f->ho->output(f->h, side);
}

/* The one place the state changes; arms the state's timer. */
static void
http_state_set(struct http_front *f, enum http_state st)
{
	const struct inj_params *p = f->p;

	f->state = st;
	switch (st) {
	case HTTP_IDENTIFY:
		if (f->requests == 0 || evbuffer_get_length(http_in(f, INJ_CLIENT)) > 0)
			f->ho->arm(f->h, p->header_timeout_ms);
		else
			f->ho->arm(f->h, p->idle_timeout_ms);
		break;
	case HTTP_DECIDE:
	case HTTP_CLOSING:
		break;		/* the engine's timers */
	case HTTP_RELAY:
		if (!f->up_connected)
			f->ho->arm(f->h, p->connect_timeout_ms);
		else if (!f->resp_head_done)
			f->ho->arm(f->h, p->response_timeout_ms);
		else
			f->ho->arm(f->h, p->idle_timeout_ms);
		break;
	}
}

/* Re-arms the relay timer after progress. */
static void
http_progress(struct http_front *f)
{
	if (f->state == HTTP_RELAY)
		http_state_set(f, HTTP_RELAY);
}

static void
http_request_reset(struct http_front *f)
{
	if (f->head != NULL) {
		cg_wipe(f->head, f->req.head_len);
		free(f->head);
		f->head = NULL;
	}
	free(f->target);
	f->target = NULL;
	free(f->fields);
	f->fields = NULL;
	if (f->rhead != NULL) {
		/* An upstream may echo the credential in its head. */
		cg_wipe(f->rhead, f->resp.head_len);
		free(f->rhead);
		f->rhead = NULL;
	}
	free(f->rfields);
	f->rfields = NULL;
	memset(&f->req, 0, sizeof(f->req));
	memset(&f->resp, 0, sizeof(f->resp));
	if (f->hold != NULL) {
		evbuffer_free(f->hold);
		f->hold = NULL;
	}
	f->cred = NULL;
	f->in_request = f->req_complete = f->req_forwarded = false;
	f->up_chunked = f->expect_continue = false;
	f->resp_head_done = f->resp_started = f->resp_chunked = false;
	f->resp_until_close = false;
	f->method[0] = '\0';
	memset(&f->ireq, 0, sizeof(f->ireq));
}

static const char *
http_status_text(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 408: return "Request Timeout";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 417: return "Expectation Failed";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	default: return "Error";
	}
}

/* Stops here: the engine closes once the output is out. */
static void
http_finish(struct http_front *f, const char *reason, bool linger)
{
	http_state_set(f, HTTP_CLOSING);
	f->has_up = false;
	f->ho->finish(f->h, reason, linger);
}

static void
http_close(struct http_front *f, const char *reason)
{
	http_state_set(f, HTTP_CLOSING);
	f->has_up = false;
	f->ho->close(f->h, reason);
}

/*
 * Answers the client with an error of our own and closes.  The reason goes
 * to the log only; the client sees the status text.  If the client already
 * has part of a response, all we can do is close.
 */
static void
http_reply(struct http_front *f, int status, const char *extra, const char *reason)
{
	struct evbuffer *out = http_out(f, INJ_CLIENT);
	const char *text = http_status_text(status);
	const char *rid = f->ho->request_id(f->h);
	bool linger;

	if (f->state == HTTP_CLOSING)
		return;
	f->ho->refused(f->h, status, reason);
	if (f->resp_started) {
		http_close(f, reason);
		return;
	}
	f->resp_started = true;
	evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\n"
	    "Content-Length: %zu\r\n", status, text, strlen(text) + 1);
	if (extra != NULL)
		evbuffer_add_printf(out, "%s\r\n", extra);
	if (rid[0])
		evbuffer_add_printf(out, "X-Request-Id: %s\r\n", rid);
	evbuffer_add_printf(out, "Connection: close\r\n\r\n%s\n", text);
	/* Answered early: the caller may still be sending its request. */
	linger = (f->in_request && !f->req_complete) ||
	    evbuffer_get_length(http_in(f, INJ_CLIENT)) > 0;
	http_finish(f, reason, linger);
}

/* ------------------------------------------------------------------ */
/* Reading the request                                                 */
/* ------------------------------------------------------------------ */

static void
span_rebase(struct http_span *s, const char *from, const char *to)
{
	if (s->p != NULL)
		s->p = to + (s->p - from);
}

static void
head_rebase(struct http_head *h, const char *from, const char *to)
{
	size_t i;

	span_rebase(&h->method, from, to);
	span_rebase(&h->target, from, to);
	span_rebase(&h->path, from, to);
	span_rebase(&h->query, from, to);
	span_rebase(&h->reason, from, to);
	for (i = 0; i < h->nfields; i++) {
		span_rebase(&h->fields[i].name, from, to);
		span_rebase(&h->fields[i].value, from, to);
	}
}

/*
 * A head parsed into the worker's scratch fields is kept: a copy of its
 * bytes and of exactly its fields, the spans moved to the copy.  Sizing
 * the fields to the head costs less than zeroing limits.header_count of
 * them per message, and keeps them small.
 */
static int
http_keep_head(struct http_head *h, const char *p, char **headp,
    struct http_field **fieldsp)
{
	char *head;
	struct http_field *fl;

	if ((head = malloc(h->head_len)) == NULL)
		return CG_ERR_NOMEM;
	if ((fl = malloc((h->nfields ? h->nfields : 1) * sizeof(*fl))) == NULL) {
		free(head);
		return CG_ERR_NOMEM;
	}
	memcpy(head, p, h->head_len);
	memcpy(fl, h->fields, h->nfields * sizeof(*fl));
	h->fields = fl;
	head_rebase(h, p, head);
	*headp = head;
	*fieldsp = fl;
	return 0;
}

static void
copy_span(char *dst, size_t size, const struct http_span *s)
{
	size_t n = s->len < size - 1 ? s->len : size - 1;

	if (n > 0)
		memcpy(dst, s->p, n);
	dst[n] = '\0';
}

static bool
is_unreserved(int ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	    (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_' || ch == '~';
}

/*
 * Puts the path in one canonical form so that policy and upstream see the
 * same thing: percent-encoded unreserved characters decoded, other escapes
 * upper-cased, empty segments merged, "." and ".." segments resolved.  A
 * ".." above the root, or an encoded '/', '\' or NUL, refuses the request:
 * they are how path rules get bypassed.
 */
static int
path_normalise(const char *p, size_t n, char *out, size_t *outlen)
{
	size_t i, o = 0, seg;
	int hi, lo, ch;

	for (i = 0; i < n; i++) {
		ch = (unsigned char)p[i];
		if (ch == '%') {
			if (n - i < 3)
				return -1;
			hi = cg_hexval((unsigned char)p[i + 1]);
			lo = cg_hexval((unsigned char)p[i + 2]);
			if (hi < 0 || lo < 0)
				return -1;
			ch = hi * 16 + lo;
			i += 2;
			if (ch == '/' || ch == '\\' || ch == 0)
				return -1;
			if (!is_unreserved(ch)) {
				out[o++] = '%';
				out[o++] = "0123456789ABCDEF"[ch >> 4];
				out[o++] = "0123456789ABCDEF"[ch & 15];
				continue;
			}
		}
		if (ch == '/' && o > 0 && out[o - 1] == '/')
			continue;	/* merge empty segments */
		out[o++] = (char)ch;
		/* Resolve a "." or ".." segment once it is complete. */
		if (i + 1 == n || p[i + 1] == '/') {
			seg = o;
			while (seg > 0 && out[seg - 1] != '/')
				seg--;
			if (o - seg == 1 && out[seg] == '.') {
				o = seg;
			} else if (o - seg == 2 && out[seg] == '.' && out[seg + 1] == '.') {
				if (seg <= 1)
					return -1;
				o = seg - 1;
				while (o > 0 && out[o - 1] != '/')
					o--;
			}
		}
	}
	if (o == 0)
		out[o++] = '/';
	*outlen = o;
	return 0;
}

static int
http_normalise_target(struct http_front *f)
{
	struct http_head *h = &f->req;
	size_t plen, cap;
	char *t;

	if (h->target.len == 1 && h->target.p[0] == '*')
		return 0;
	/* Normalising never makes the path longer. */
	cap = h->path.len + 1 + h->query.len + 1;
	if ((t = malloc(cap)) == NULL)
		return CG_ERR_NOMEM;
	if (path_normalise(h->path.p, h->path.len, t, &plen) != 0) {
		free(t);
		return CG_ERR_FORMAT;
	}
	h->path.p = t;
	h->path.len = plen;
	h->target.p = t;
	h->target.len = plen;
	if (h->query.p != NULL && h->query.len > 0) {
		t[plen] = '?';
		memcpy(t + plen + 1, h->query.p, h->query.len);
		h->query.p = t + plen + 1;
		h->target.len = plen + 1 + h->query.len;
	}
	free(f->target);
	f->target = t;
	return 0;
}

static int
http_req_body(void *arg, const char *p, size_t n)
{
	struct http_front *f = arg;
	struct evbuffer *dst = f->hold ? f->hold : http_out(f, INJ_UPSTREAM);

	if (f->up_chunked)
		evbuffer_add_printf(dst, "%zx\r\n", n);
	evbuffer_add(dst, p, n);
	if (f->up_chunked)
		evbuffer_add(dst, "\r\n", 2);
	return 0;
}

static bool
http_wants_close(const struct http_head *h)
{
	const struct http_field *fl;
	struct http_span e;
	size_t it = 0, pos;

	if (h->version_minor == 0)
		return true;
	while ((fl = http_head_find(h, "Connection", &it)) != NULL) {
		pos = 0;
		while (http_list_next(&fl->value, &pos, &e))
			if (cg_strcase_eq(e.p, e.len, "close", 5))
				return true;
	}
	return false;
}

/* The request's attributes, lent to the engine until the request ends. */
static void
http_attrs(struct http_front *f)
{
	f->attrs[0].name = "method";
	f->attrs[0].value = f->req.method.p;
	f->attrs[0].len = f->req.method.len;
	f->attrs[1].name = "path";
	f->attrs[1].value = f->req.path.p;
	f->attrs[1].len = f->req.path.len;
	f->ireq.attrs = f->attrs;
	f->ireq.nattrs = 2;
	f->ireq.flags = f->flags;
	f->ireq.nflags = 0;
}

/* A complete head is in f->req: check it and hand its proof over. */
static void
http_request(struct http_front *f)
{
	const struct http_field *fl;
	struct http_error e;
	struct http_span tok;
	const char *why;
	char reason[160];
	bool last, host_mismatch = false;
	size_t it = 0;
	int r;

	f->requests++;
	f->in_request = true;
	copy_span(f->method, sizeof(f->method), &f->req.method);
	f->ireq.request_id = NULL;
	if (http_head_count(&f->req, "X-Request-Id") == 1 &&
	    (fl = http_head_find(&f->req, "X-Request-Id", &it)) != NULL &&
	    fl->value.len <= 64) {
		copy_span(f->rid, sizeof(f->rid), &fl->value);
		f->ireq.request_id = f->rid;
	}
	http_attrs(f);
	f->authority.len = 0;
	if (f->ho->begin(f->h, &f->ireq, &f->p, &last) != 0) {
		f->keep_alive = false;
		return;		/* refused: the route was withdrawn */
	}
	f->keep_alive = !http_wants_close(&f->req) && !last;

	if (http_request_check(&f->req, &f->req_framing, &e) != 0) {
		http_reply(f, e.status, NULL, e.reason);
		return;
	}
	/* absolute-form: its authority is the Host (RFC 9112 §3.2.2), taken
	 * before the target is normalised into origin-form. */
	(void)http_request_authority(&f->req, &f->authority, &host_mismatch);
	if (host_mismatch) {
		f->flags[0] = http_flag_host_mismatch;
		f->ireq.nflags = 1;
	}
	if ((r = http_normalise_target(f)) != 0) {
		http_reply(f, r == CG_ERR_NOMEM ? 503 : 400, NULL,
		    r == CG_ERR_NOMEM ? "out of memory" : "request path not allowed");
		return;
	}
	f->attrs[1].value = f->req.path.p;
	f->attrs[1].len = f->req.path.len;
	it = 0;
	if ((fl = http_head_find(&f->req, "Expect", &it)) != NULL) {
		if (http_head_count(&f->req, "Expect") != 1 ||
		    !cg_strcase_eq(fl->value.p, fl->value.len, "100-continue", 12)) {
			http_reply(f, 417, NULL, "unsupported expectation");
			return;
		}
		f->expect_continue = f->req_framing.kind != HTTP_BODY_NONE;
	}
	if ((f->req_framing.kind == HTTP_BODY_LENGTH && f->req_framing.length > f->p->max_body) ||
	    (f->req_framing.kind == HTTP_BODY_CHUNKED && f->p->max_body == 0)) {
		http_reply(f, 413, NULL, "request body over max_body");
		return;
	}
	if (http_msg_begin(&f->req_msg, true, f->head, f->req.head_len, NULL, 0,
	    f->p->max_body, MAX_TRAILER, http_req_body, f) != HTTP_PARSE_DONE) {
		http_reply(f, f->req_msg.err.status ? f->req_msg.err.status : 400, NULL,
		    f->req_msg.err.reason ? f->req_msg.err.reason : "malformed request");
		return;
	}
	f->req_complete = f->req_msg.complete;

	/* Who is calling: one Authorization: Bearer field, nowhere else. */
	if (http_head_count(&f->req, "Authorization") > 1) {
		f->ho->deny(f->h, "400", "multiple Authorization fields");
		http_reply(f, 400, NULL, "multiple Authorization fields");
		return;
	}
	if ((r = inj_http_read_proof(&f->req, &tok, &why)) != 0) {
		snprintf(reason, sizeof(reason), "invalid token: %s", why);
		f->ho->deny(f->h, "401", reason);
		http_reply(f, 401, r == CG_ERR_NOTFOUND ? "WWW-Authenticate: Bearer" :
		    "WWW-Authenticate: Bearer error=\"invalid_token\"", reason);
		return;
	}
	/* allowed() or refuse() follows, maybe before proof() returns. */
	http_state_set(f, HTTP_DECIDE);
	f->ho->proof(f->h, tok.p, tok.len);
}

/*
 * The limits of a message head, and where its fields are parsed: the
 * worker's scratch memory, which bounds their number too.
 */
static struct http_field *
http_limits(struct http_front *f, struct http_limits *lim)
{
	struct http_field *fields;
	size_t size;

	fields = f->ho->scratch(f->h, &size);
	lim->max_line = f->p->max_line;
	lim->max_head = f->p->max_head;
	lim->max_fields = f->p->max_fields;
	if (lim->max_fields > size / sizeof(*fields))
		lim->max_fields = size / sizeof(*fields);
	lim->max_trailer = MAX_TRAILER;
	return fields;
}

static void
http_read_head(struct http_front *f)
{
	const struct inj_params *pr = f->p;
	struct evbuffer *in = http_in(f, INJ_CLIENT);
	struct http_limits lim;
	struct http_error e;
	struct http_field *fields;
	size_t len, want;
	const char *p;
	bool last;
	int r;

	len = evbuffer_get_length(in);
	if (len == 0) {
		if (f->cli_eof)
			http_close(f, "client_closed");
		return;
	}
	fields = http_limits(f, &lim);
	want = len < lim.max_head + 1 ? len : lim.max_head + 1;
	if ((p = (const char *)evbuffer_pullup(in, (ssize_t)want)) == NULL) {
		http_close(f, "out_of_memory");
		return;
	}
	memset(&f->req, 0, sizeof(f->req));
	r = http_parse_head(p, want, true, &lim, &f->req, fields, &e);
	if (r == HTTP_PARSE_NEED_MORE) {
		if (f->cli_eof)
			http_close(f, "client_closed_mid_head");
		else if (f->requests > 0 && !f->in_request) {
			/* The first byte of a later request: from idle to header timer. */
			f->in_request = true;
			f->ho->arm(f->h, pr->header_timeout_ms);
		}
		return;
	}
	if (r != HTTP_PARSE_DONE) {
		f->requests++;
		(void)f->ho->begin(f->h, NULL, &f->p, &last);
		http_reply(f, e.status, NULL, e.reason);
		return;
	}
	if (http_keep_head(&f->req, p, &f->head, &f->fields) != 0) {
		http_close(f, "out_of_memory");
		return;
	}
	evbuffer_drain(in, f->req.head_len);
	http_request(f);
}

/* ------------------------------------------------------------------ */
/* Forwarding                                                          */
/* ------------------------------------------------------------------ */

static void
http_release_hold(struct http_front *f)
{
	if (f->hold == NULL || !f->has_up)
		return;
	evbuffer_add_buffer(http_out(f, INJ_UPSTREAM), f->hold);
	evbuffer_free(f->hold);
	f->hold = NULL;
}

static void
http_upstream_failed(struct http_front *f, int status, const char *reason)
{
	f->ho->audit_error(f->h, reason);
	if (f->resp_started)
		http_close(f, reason);
	else
		http_reply(f, status, NULL, reason);
}

static void
http_forward(struct http_front *f)
{
	const struct inj_params *p = f->p;
	struct inj_http_req_ctx ctx;
	const char *why = NULL;
	bool connected;
	int r;

	memset(&ctx, 0, sizeof(ctx));
	ctx.client_addr = p->peer_ip;
	ctx.proto = p->tls ? "https" : "http";
	ctx.request_id = f->ho->request_id(f->h);
	ctx.host = f->authority;
	ctx.default_host = p->upstream_name;
	switch (f->req_framing.kind) {
	case HTTP_BODY_LENGTH:
		ctx.framing = INJ_FRAMING_LENGTH;
		ctx.content_length = f->req_framing.length;
		break;
	case HTTP_BODY_CHUNKED:
		ctx.framing = INJ_FRAMING_CHUNKED;
		f->up_chunked = true;
		break;
	default:
		ctx.framing = INJ_FRAMING_NONE;
		break;
	}
	if ((f->hold = evbuffer_new()) == NULL) {
		http_reply(f, 503, NULL, "out of memory");
		return;
	}
	r = inj_http_write_request(&f->req, p->cfg, f->cred, &ctx, f->hold, &why);
	if (r != 0) {
		cg_err("msg=inject_failed rid=%s reason=\"%s\"", ctx.request_id,
		    why ? why : cg_strerror(r));
		f->ho->audit_error(f->h, why ? why : "credential injection failed");
		http_reply(f, 503, NULL, "credential injection failed");
		return;
	}
	f->req_forwarded = true;
	/* The head (with the caller's token) is no longer needed; the
	 * method stays readable for logs and audit from its copy. */
	f->attrs[0].value = f->method;
	f->attrs[0].len = strlen(f->method);
	cg_wipe(f->head, f->req.head_len);

	if (!f->has_up) {
		if (f->ho->connect(f->h, NULL, NULL, &connected) != 0) {
			f->ho->audit_error(f->h, "upstream connect failed");
			http_reply(f, 502, NULL, "upstream connect failed");
			return;
		}
		f->has_up = true;
		f->up_connected = connected;
	}
	if (f->expect_continue && !f->req_complete &&
	    evbuffer_get_length(http_in(f, INJ_CLIENT)) == 0)
		evbuffer_add(http_out(f, INJ_CLIENT), "HTTP/1.1 100 Continue\r\n\r\n", 25);
	http_state_set(f, HTTP_RELAY);
	/* A whole first request needs nothing more from a plain caller until
	 * its response is out, so its socket is not watched before then: a
	 * caller that read its response and closed (Connection: close)
	 * costs no epoll_ctl at all.  A caller that goes away early is seen
	 * when the response is written to it, or at the response timeout. */
	f->ho->reading(f->h, INJ_CLIENT, f->req_complete ? INJ_READ_IF_WATCHED : INJ_READ_ON);
	http_feed_request(f);
}

static void
http_feed_request(struct http_front *f)
{
	struct evbuffer *in = http_in(f, INJ_CLIENT);
	struct evbuffer_iovec v;
	size_t used;
	int r;

	while (!f->req_complete && evbuffer_get_length(in) > 0) {
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		used = 0;
		r = http_msg_feed(&f->req_msg, v.iov_base, v.iov_len, &used);
		evbuffer_drain(in, used);
		if (r == HTTP_PARSE_ERROR) {
			http_reply(f, f->req_msg.err.status, NULL, f->req_msg.err.reason);
			return;
		}
		if (r == HTTP_PARSE_DONE)
			f->req_complete = true;
		else if (used == 0)
			break;
	}
	if (f->req_complete) {
		if (f->up_chunked) {
			evbuffer_add(f->hold ? f->hold : http_out(f, INJ_UPSTREAM),
			    "0\r\n\r\n", 5);
			f->up_chunked = false;
		}
		http_release_hold(f);
	} else if (f->hold != NULL && evbuffer_get_length(f->hold) > REQ_HOLD_MAX) {
		http_release_hold(f);
	}
	if (f->has_up && evbuffer_get_length(http_out(f, INJ_UPSTREAM)) > RELAY_HIGH) {
		f->ho->reading(f->h, INJ_CLIENT, INJ_READ_OFF);
		f->cli_read_paused = true;
	}
	if (f->cli_eof && !f->req_complete)
		http_close(f, "client_closed_mid_request");
}

/* ------------------------------------------------------------------ */
/* The response                                                        */
/* ------------------------------------------------------------------ */

static int
http_resp_body(void *arg, const char *p, size_t n)
{
	struct http_front *f = arg;
	struct evbuffer *out = http_out(f, INJ_CLIENT);

	if (f->resp_chunked)
		evbuffer_add_printf(out, "%zx\r\n", n);
	evbuffer_add(out, p, n);
	if (f->resp_chunked)
		evbuffer_add(out, "\r\n", 2);
	return 0;
}

static void
http_response_done(struct http_front *f)
{
	bool up_reuse;

	if (f->ho->draining(f->h))
		f->keep_alive = false;
	up_reuse = f->has_up && f->req_complete && !f->resp_until_close &&
	    llhttp_should_keep_alive(&f->resp_msg.parser);
	/* The upstream connection goes back to the worker's pool now: a
	 * caller that idles between requests holds none. */
	f->ho->done(f->h, up_reuse);
	f->has_up = f->up_connected = false;
	f->up_read_paused = false;
	if (!f->keep_alive || !f->req_complete) {
		/* Lingering when the upstream answered early. */
		http_finish(f, "done", !f->req_complete);
		return;
	}
	http_request_reset(f);
	http_state_set(f, HTTP_IDENTIFY);
	f->ho->reading(f->h, INJ_CLIENT, INJ_READ_ON);
	f->cli_read_paused = false;
	if (evbuffer_get_length(http_in(f, INJ_CLIENT)) > 0 || f->cli_eof)
		http_read_head(f);
}

static void
http_echo_set_free(void *set)
{
	inj_http_echo_set_free(set);
}

/*
 * What the response is searched for (see inj_http_write_response()):
 * made once per credential and kept in the route's slot, which the
 * engine empties when the route's credential changes.  Without a slot
 * the set is the request's own, in *own, which the caller frees.
 */
static int
http_echo_set(struct http_front *f, const struct inj_http_echo_set **set,
    struct inj_http_echo_set **own)
{
	struct inj_http_echo_set *made;
	void **slot;
	int r;

	*set = NULL;
	*own = NULL;
	if (f->cred == NULL)
		return 0;
	slot = f->ho->route_slot(f->h);
	if (slot != NULL && *slot != NULL) {
		*set = *slot;
		return 0;
	}
	if ((r = inj_http_echo_set_new(f->p->cfg, f->cred, &made)) != 0)
		return r;
	*set = made;
	if (slot == NULL)
		*own = made;
	else
		*slot = made;
	return 0;
}

/* The upstream's response head is in f->resp: check it and send it on. */
static int
http_response_head(struct http_front *f)
{
	enum inj_http_framing out;
	unsigned long long clen = 0;
	struct http_framing fr;
	struct http_error e;
	const struct http_field *cl;
	size_t it = 0, i;
	bool close_after;
	const struct inj_http_echo_set *set;
	struct inj_http_echo_set *own;
	struct inj_echo echo;
	int r;

	if (http_response_check(&f->resp, f->method, strlen(f->method), &fr, &e) != 0) {
		http_upstream_failed(f, 502, e.reason);
		return -1;
	}
	if (http_msg_begin(&f->resp_msg, false, f->rhead, f->resp.head_len, f->method,
	    strlen(f->method), 0, MAX_TRAILER, http_resp_body, f) != HTTP_PARSE_DONE) {
		http_upstream_failed(f, 502, f->resp_msg.err.reason ?
		    f->resp_msg.err.reason : "malformed upstream response");
		return -1;
	}
	f->resp_until_close = fr.kind == HTTP_BODY_UNTIL_CLOSE;
	switch (fr.kind) {
	case HTTP_BODY_LENGTH:
		out = INJ_FRAMING_LENGTH;
		clen = fr.length;
		break;
	case HTTP_BODY_CHUNKED:
		out = INJ_FRAMING_CHUNKED;
		f->resp_chunked = true;
		break;
	case HTTP_BODY_UNTIL_CLOSE:
		/* Re-chunked for a keep-alive client; else close after it. */
		if (f->keep_alive) {
			out = INJ_FRAMING_CHUNKED;
			f->resp_chunked = true;
		} else
			out = INJ_FRAMING_CLOSE;
		break;
	default:
		out = INJ_FRAMING_NONE;
		/* A response to HEAD (or a 304) keeps its Content-Length. */
		if (f->resp.status != 204 && (cl = http_head_find(&f->resp,
		    "Content-Length", &it)) != NULL && cl->value.len > 0 &&
		    cl->value.len < 17) {
			for (i = 0; i < cl->value.len; i++)
				clen = clen * 10 + (unsigned)(cl->value.p[i] - '0');
			out = INJ_FRAMING_LENGTH;
		}
		break;
	}
	close_after = !f->keep_alive || !f->req_complete || out == INJ_FRAMING_CLOSE ||
	    f->ho->draining(f->h);
	if (close_after)
		f->keep_alive = false;
	/* The credential is searched for in what goes back (the engine
	 * holds it until the response is done). */
	if ((r = http_echo_set(f, &set, &own)) == 0) {
		r = inj_http_write_response_set(&f->resp, out, clen, close_after,
		    f->ho->request_id(f->h), set, &echo, http_out(f, INJ_CLIENT));
		inj_http_echo_set_free(own);
	}
	if (r != 0) {
		http_upstream_failed(f, 502, "cannot write response head");
		return -1;
	}
	if (echo.scrubbed + echo.dropped > 0)
		f->ho->audit_echo(f->h, f->resp.status, &echo);
	f->resp_started = true;
	f->ho->answered(f->h, f->resp.status);
	return 0;
}

static void
http_up_read(struct http_front *f)
{
	struct evbuffer *in = http_in(f, INJ_UPSTREAM);
	struct evbuffer_iovec v;
	struct http_limits lim;
	struct http_error e;
	struct http_field *fields;
	size_t len, want, used;
	const char *p;
	int r;

	if (f->state != HTTP_RELAY) {
		/* Bytes from an idle upstream: it is confused; drop it. */
		f->ho->drop_upstream(f->h);
		f->has_up = f->up_connected = false;
		return;
	}
	http_progress(f);
	while (!f->resp_head_done) {
		if ((len = evbuffer_get_length(in)) == 0)
			return;
		fields = http_limits(f, &lim);
		want = len < lim.max_head + 1 ? len : lim.max_head + 1;
		if ((p = (const char *)evbuffer_pullup(in, (ssize_t)want)) == NULL) {
			http_upstream_failed(f, 502, "out of memory");
			return;
		}
		memset(&f->resp, 0, sizeof(f->resp));
		r = http_parse_head(p, want, false, &lim, &f->resp, fields, &e);
		if (r == HTTP_PARSE_NEED_MORE)
			return;
		if (r != HTTP_PARSE_DONE) {
			http_upstream_failed(f, 502, e.reason);
			return;
		}
		if (f->resp.status < 200) {
			/* Interim responses are ours to give (100) or not
			 * needed; 101 never comes since Upgrade is dropped. */
			if (f->resp.status == 101) {
				http_upstream_failed(f, 502, "unexpected 101 from upstream");
				return;
			}
			evbuffer_drain(in, f->resp.head_len);
			continue;
		}
		free(f->rhead);
		f->rhead = NULL;
		free(f->rfields);
		f->rfields = NULL;
		if (http_keep_head(&f->resp, p, &f->rhead, &f->rfields) != 0) {
			http_upstream_failed(f, 502, "out of memory");
			return;
		}
		evbuffer_drain(in, f->resp.head_len);
		f->resp_head_done = true;
		http_state_set(f, HTTP_RELAY);
		if (http_response_head(f) != 0)
			return;
		if (f->resp_msg.complete) {
			http_response_done(f);
			return;
		}
	}
	while (evbuffer_get_length(in) > 0) {
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		used = 0;
		r = http_msg_feed(&f->resp_msg, v.iov_base, v.iov_len, &used);
		evbuffer_drain(in, used);
		if (r == HTTP_PARSE_ERROR) {
			http_upstream_failed(f, 502, f->resp_msg.err.reason);
			return;
		}
		if (r == HTTP_PARSE_DONE) {
			if (f->resp_chunked)
				evbuffer_add(http_out(f, INJ_CLIENT), "0\r\n\r\n", 5);
			http_response_done(f);
			return;
		}
		if (used == 0)
			break;
	}
	if (evbuffer_get_length(http_out(f, INJ_CLIENT)) > RELAY_HIGH) {
		f->ho->reading(f->h, INJ_UPSTREAM, INJ_READ_OFF);
		f->up_read_paused = true;
	}
}

/* ------------------------------------------------------------------ */
/* The operations the engine calls                                     */
/* ------------------------------------------------------------------ */

static int
http_start(void *st, struct inj_host *h, const struct inj_host_ops *ho,
    const struct inj_params *params)
{
	struct http_front *f = st;

	f->h = h;
	f->ho = ho;
	f->p = params;
	http_state_set(f, HTTP_IDENTIFY);
	ho->reading(h, INJ_CLIENT, INJ_READ_ON);
	return 0;
}

static void
http_free(void *st)
{
	http_request_reset(st);
}

static void
http_readable(void *st, enum inj_side side)
{
	struct http_front *f = st;

	if (side == INJ_UPSTREAM) {
		http_up_read(f);
		return;
	}
	switch (f->state) {
	case HTTP_IDENTIFY:
		http_read_head(f);
		break;
	case HTTP_RELAY:
		http_progress(f);
		if (!f->req_complete)
			http_feed_request(f);
		else if (evbuffer_get_length(http_in(f, INJ_CLIENT)) > PIPELINE_MAX) {
			/* The next requests wait their turn, within bounds. */
			f->ho->reading(f->h, INJ_CLIENT, INJ_READ_OFF);
			f->cli_read_paused = true;
		}
		break;
	case HTTP_DECIDE:
	case HTTP_CLOSING:
		break;
	}
}

static void
http_writable(void *st, enum inj_side side)
{
	struct http_front *f = st;

	if (f->state == HTTP_CLOSING)
		return;
	if (side == INJ_UPSTREAM) {
		if (f->cli_read_paused &&
		    evbuffer_get_length(http_out(f, INJ_UPSTREAM)) <= RELAY_LOW) {
			f->cli_read_paused = false;
			f->ho->reading(f->h, INJ_CLIENT, INJ_READ_ON);
			http_feed_request(f);
		}
		return;
	}
	http_progress(f);
	if (f->up_read_paused && f->has_up &&
	    evbuffer_get_length(http_out(f, INJ_CLIENT)) <= RELAY_LOW) {
		f->up_read_paused = false;
		f->ho->reading(f->h, INJ_UPSTREAM, INJ_READ_ON);
		http_up_read(f);
	}
}

static void
http_eof(void *st, enum inj_side side, bool error)
{
	struct http_front *f = st;

	if (f->state == HTTP_CLOSING)
		return;
	if (side == INJ_CLIENT) {
		/* A half-close: answer what was sent, then close. */
		f->cli_eof = true;
		f->keep_alive = false;
		if (f->state == HTTP_IDENTIFY)
			http_read_head(f);
		else if (f->state == HTTP_RELAY && !f->req_complete)
			http_close(f, "client_closed_mid_request");
		return;
	}
	if (f->state != HTTP_RELAY) {
		f->ho->drop_upstream(f->h);	/* an idle upstream went away */
		f->has_up = f->up_connected = false;
		return;
	}
	if (!error && f->resp_head_done && f->resp_until_close) {
		/* Whatever is still buffered belongs to the body. */
		http_up_read(f);
		if (f->state != HTTP_RELAY || !f->resp_head_done)
			return;
		if (http_msg_eof(&f->resp_msg) == HTTP_PARSE_DONE) {
			if (f->resp_chunked)
				evbuffer_add(http_out(f, INJ_CLIENT), "0\r\n\r\n", 5);
			f->ho->drop_upstream(f->h);
			f->has_up = false;
			http_response_done(f);
			return;
		}
	}
	http_upstream_failed(f, 502, f->resp_started ? "upstream closed mid-response" :
	    "upstream closed before responding");
}

static void
http_connected(void *st, bool ok, const char *reason)
{
	struct http_front *f = st;

	if (f->state == HTTP_CLOSING)
		return;
	if (!ok) {
		f->has_up = f->up_connected = false;
		http_upstream_failed(f, 502, reason);
		return;
	}
	f->up_connected = true;
	if (f->state == HTTP_RELAY)
		http_state_set(f, HTTP_RELAY);
}

static void
http_tls_done(void *st, enum inj_side side)
{
	(void)st;
	(void)side;	/* HTTP starts TLS at accept only */
}

static void
http_allowed(void *st, const struct inj_cred *cred)
{
	struct http_front *f = st;

	if (f->state != HTTP_DECIDE)
		return;
	f->cred = cred;
	http_forward(f);
}

static void
http_refuse(void *st, enum inj_refusal why, const char *reason)
{
	struct http_front *f = st;

	switch (why) {
	case INJ_REFUSE_PROOF:
		http_reply(f, 401, "WWW-Authenticate: Bearer error=\"invalid_token\"", reason);
		break;
	case INJ_REFUSE_DENIED:
		http_reply(f, 403, NULL, reason);
		break;
	case INJ_REFUSE_UNAVAILABLE:
		http_reply(f, 503, NULL, reason);
		break;
	case INJ_REFUSE_UPSTREAM:
		http_reply(f, 502, NULL, reason);
		break;
	case INJ_REFUSE_TIMEOUT:
		http_reply(f, 504, NULL, reason);
		break;
	}
}

static void
http_timeout(void *st)
{
	struct http_front *f = st;

	switch (f->state) {
	case HTTP_IDENTIFY:
		if (f->in_request || f->requests == 0) {
			f->in_request = true;
			http_reply(f, 408, NULL, "header_timeout");
		} else
			http_close(f, "idle_timeout");
		break;
	case HTTP_RELAY:
		if (!f->up_connected)
			http_upstream_failed(f, 504, "upstream connect timeout");
		else if (!f->resp_head_done)
			http_upstream_failed(f, 504, "upstream response timeout");
		else
			http_close(f, "relay_idle_timeout");
		break;
	case HTTP_DECIDE:
	case HTTP_CLOSING:
		break;
	}
}

static bool
http_drain(void *st)
{
	struct http_front *f = st;

	f->keep_alive = false;
	return f->state == HTTP_IDENTIFY && !f->in_request &&
	    evbuffer_get_length(http_in(f, INJ_CLIENT)) == 0;
}

static const char *
http_refusal_code(enum inj_refusal why)
{
	switch (why) {
	case INJ_REFUSE_PROOF:
		return "401";
	case INJ_REFUSE_DENIED:
		return "403";
	case INJ_REFUSE_UNAVAILABLE:
		return "503";
	case INJ_REFUSE_UPSTREAM:
		return "502";
	case INJ_REFUSE_TIMEOUT:
		return "504";
	}
	return "500";
}

static const char http_busy[] =
    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
    "Content-Length: 20\r\nConnection: close\r\n\r\nService Unavailable\n";

static const char *
http_inject_name(const void *cfg)
{
	return inj_http_kind_name(((const struct inj_http_cfg *)cfg)->kind);
}

const struct inj_ops inj_http_ops = {
	.name = "http",
	.tls_late = false,
	.state_size = sizeof(struct http_front),
	.start = http_start,
	.free = http_free,
	.readable = http_readable,
	.writable = http_writable,
	.eof = http_eof,
	.connected = http_connected,
	.tls_done = http_tls_done,
	.allowed = http_allowed,
	.refuse = http_refuse,
	.timeout = http_timeout,
	.drain = http_drain,
	.slot_free = http_echo_set_free,
	.inject_name = http_inject_name,
	.refusal_code = http_refusal_code,
	.alpn = "http/1.1",
	.busy = http_busy,
	.busy_len = sizeof(http_busy) - 1,
};
