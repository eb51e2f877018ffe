/*
 * http_parse.h: the HTTP/1.1 front parser.  Takes bytes, returns "need
 * more", "one message (head)" or "error"; never touches a socket.
 *
 * Two layers:
 * - http_parse_head(): our own strict scan of one message head (request or
 *   status line and header section) into a struct http_head whose spans
 *   point into the caller's contiguous buffer;
 * - struct http_msg: llhttp (strict mode) run over the same head, which
 *   must agree, and then over the body: de-chunks, checks chunk syntax and
 *   trailers, and hands decoded body bytes to a callback.  llhttp is not
 *   shown the whitespace that ends a field value, which is no part of the
 *   value and which it refuses after some (see http_msg_begin()).
 */
#ifndef CG_HTTP_PARSE_H
#define CG_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <llhttp.h>

#include "common.h"

enum http_parse_result {
	HTTP_PARSE_ERROR = -1,
	HTTP_PARSE_NEED_MORE = 0,
	HTTP_PARSE_DONE = 1,
};

struct http_limits {
	size_t max_line;	/* request line or status line, bytes without CRLF */
	size_t max_head;	/* whole head incl. request line and final CRLF */
	size_t max_fields;	/* header fields; fields[] holds at least this many */
	size_t max_trailer;	/* trailer section bytes (default 4096) */
};

/* An error: the status to answer with and a short static reason (for the
 * log and the audit event, never holding input bytes). */
struct http_error {
	int status;		/* 400, 413, 414, 431, 501, 502 ... */
	const char *reason;
};

/*
 * Scans buf[0..len) for one complete head.
 * - NEED_MORE: no complete head yet and no rule broken so far (call again
 *   with more bytes; the scan restarts from the beginning, which is fine for
 *   heads of a few KiB).  A head already longer than the limits is an ERROR
 *   (414 for the request line, 431 for the header section).
 * - DONE: h filled in, h->head_len bytes consumed, spans into buf, fields
 *   stored in fields[] (at most lim->max_fields entries).
 * - ERROR: err set.  Refused: bare LF or bare CR anywhere; NUL and other
 *   control bytes except HTAB (and DEL); obs-fold; whitespace before the
 *   colon; an empty or non-token field name; a malformed request line
 *   (method a token, one SP, request-target of visible ASCII, one SP,
 *   "HTTP/1.0" or "HTTP/1.1"); for responses a malformed status line.
 *   Leading empty lines before a request line are refused as well.
 */
int http_parse_head(const char *buf, size_t len, bool is_request,
    const struct http_limits *lim, struct http_head *h, struct http_field *fields,
    struct http_error *err);

/* How a message's body is framed. */
enum http_framing_kind {
	HTTP_BODY_NONE = 0,
	HTTP_BODY_LENGTH,
	HTTP_BODY_CHUNKED,
	HTTP_BODY_UNTIL_CLOSE,	/* responses only */
};
struct http_framing {
	enum http_framing_kind kind;
	uint64_t length;	/* HTTP_BODY_LENGTH */
};

/*
 * Request semantics (RFC 9112 §6.3, §3.2; RFC 9110 §7.2), after
 * http_parse_head():
 * - Host: exactly one for HTTP/1.1 (at most one for 1.0), a valid
 *   uri-host[:port] and non-empty for 1.1;
 * - Content-Length: at most one field, 1*DIGIT with no sign, list, or
 *   inner whitespace, at most 2^53;
 * - Transfer-Encoding: at most one field whose value is exactly "chunked"
 *   (any case); not with Content-Length; not in HTTP/1.0;
 * - request-target: origin-form ("/..."), "*" for OPTIONS, or absolute-form
 *   (RFC 9112 §3.2.2) with the scheme "http" or "https" (any case), an
 *   authority that is a valid Host value (no userinfo) and a path and query
 *   held to the origin-form rules; other forms (authority-form, other
 *   schemes) are refused with 400; CONNECT is refused with 501;
 * - Upgrade requests are served without the upgrade (the field is dropped).
 * Returns 0 and the framing, or -1 with err set.
 *
 * In absolute-form, http_parse_head() sets path and query to the parts of
 * the target after the authority; path may then be empty, which stands for
 * "/" (RFC 9112 §3.2.1).
 */
int http_request_check(const struct http_head *h, struct http_framing *f,
    struct http_error *err);

/*
 * For a request that http_request_check() accepted with a target in
 * absolute-form: returns true and the target's authority (a span into the
 * target), which is the host the request is for (RFC 9112 §3.2.2: a Host
 * field is then ignored).  *host_differs says whether the request has a
 * non-empty Host field that names another (compared without regard to
 * case).  Returns false, an empty span and *host_differs false for other
 * forms.
 */
bool http_request_authority(const struct http_head *h, struct http_span *authority,
    bool *host_differs);

/*
 * Response framing (RFC 9112 §6.3) given the request method: HEAD, 1xx,
 * 204 and 304 have no body; then chunked, Content-Length, else until close.
 * The same Content-Length and Transfer-Encoding rules apply (err status
 * 502 for a malformed upstream response).
 */
int http_response_check(const struct http_head *resp, const char *req_method,
    size_t req_method_len, struct http_framing *f, struct http_error *err);

/* Called with each run of decoded body bytes; return 0, or -1 to stop with
 * an error (the parser then reports HTTP_PARSE_ERROR, err status 500). */
typedef int (*http_body_cb)(void *arg, const char *p, size_t n);

/*
 * One message through llhttp.  Holds no pointers into the caller's buffers
 * between calls.
 */
struct http_msg {
	llhttp_t parser;
	llhttp_settings_t settings;
	bool is_request;
	bool head_done;
	bool complete;
	bool skip_body;		/* responses to HEAD, 1xx, 204, 304 */
	bool in_trailers;
	size_t trailer_bytes;
	size_t max_trailer;
	uint64_t body_bytes;	/* decoded body bytes so far */
	uint64_t max_body;	/* 0 = no limit */
	http_body_cb on_body;
	void *arg;
	struct http_error err;
	/* Our own scan of the chunked framing, run over the same bytes as
	 * llhttp, which is lenient about a few things (see http_parse.c).
	 * Private to http_parse.c. */
	struct {
		uint8_t state;
		uint8_t name_len;	/* trailer field name bytes kept */
		char name[24];		/* lowercased, for the forbidden list */
		uint32_t line_len;	/* bytes of the current chunk line */
		uint64_t size;		/* chunk size, then bytes left in it */
	} chunk;
};

/*
 * Starts a message: runs llhttp over the head found by http_parse_head()
 * (head, head_len), less the SP and HTAB before the CRLF of each field
 * line: "Content-Length: 5<HTAB>" is framed as http_parse_head() reads it,
 * where llhttp alone would refuse it.  For responses, req_method says
 * whether the body is skipped.  Returns HTTP_PARSE_DONE when llhttp
 * accepted the head exactly (complete is already true for a message
 * without a body), or HTTP_PARSE_ERROR with m->err set.
 */
int http_msg_begin(struct http_msg *m, bool is_request, const char *head, size_t head_len,
    const char *req_method, size_t req_method_len, uint64_t max_body, size_t max_trailer,
    http_body_cb on_body, void *arg);

/*
 * Feeds body bytes.  *consumed says how many of len were used (bytes after
 * the end of the message are left for the next one).  Returns NEED_MORE
 * (all consumed, message not complete), DONE (message complete), or ERROR
 * (err set: 400 for bad chunk syntax or a forbidden trailer field such as
 * Content-Length, Transfer-Encoding or Host; 413 past max_body).
 */
int http_msg_feed(struct http_msg *m, const char *data, size_t len, size_t *consumed);

/* The peer closed: completes an until-close body (DONE), else ERROR. */
int http_msg_eof(struct http_msg *m);

#endif /* CG_HTTP_PARSE_H */
