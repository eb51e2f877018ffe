/*
 * http_parse.c: the strict HTTP/1.1 front parser (RFC 9112 §2-§7 and §11,
 * RFC 9110 §5).  Owns the scan of one message head, the request and
 * response framing rules, and the run of llhttp (strict mode, no lenient
 * flag ever) over the head and the body, with our own scan of the chunked
 * framing next to it.  It never touches a socket, a connection or a
 * credential; anything ambiguous is an error, never a guess.
 *
 * Choices worth knowing:
 * - a well-formed HTTP-version other than 1.0 and 1.1 ("HTTP/1.2",
 *   "HTTP/2.0") is answered with 505; a malformed one with 400;
 * - an origin-form target must follow RFC 3986 (pchar, well-formed
 *   percent-encoding) and may not hold dot-segments ("/a/../b", also
 *   percent-encoded), so that the path the policy sees is the path the
 *   upstream serves;
 * - an absolute-form target ("http://host:port/path?q") is accepted for
 *   the schemes http and https only, with no userinfo, and its path and
 *   query are held to the same rules;
 * - whitespace around a field value is no part of it, also for
 *   Content-Length and Transfer-Encoding ("5<HTAB>" is 5); whitespace
 *   inside one ("5 5") is refused;
 * - chunk lines allow no whitespace at all (no BWS around ';' or '='),
 *   and are at most CHUNK_LINE_MAX bytes;
 * - a trailer section over max_trailer is a 400 (0 allows no trailer
 *   field at all); trailer fields are checked and then dropped;
 * - every error in response mode is a 502.
 */
#include "config.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "injectors/http/http_parse.h"

#define CL_MAX		(UINT64_C(1) << 53)
#define CHUNK_LINE_MAX	4096

static int
fail(struct http_error *err, int status, const char *reason)
{
	err->status = status;
	err->reason = reason;
	return HTTP_PARSE_ERROR;
}

static bool
is_ctl(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

/* Bytes a start line may hold (no control at all), and bytes a field
 * value may hold (HTAB too); obs-text is allowed in both. */
static const bool line_char[256] = {
	[0x20 ... 0x7e] = true, [0x80 ... 0xff] = true,
};
static const bool value_char[256] = {
	['\t'] = true, [0x20 ... 0x7e] = true, [0x80 ... 0xff] = true,
};

/* From pos, the first byte below stop that is not in the table. */
static size_t
skip_class(const unsigned char *b, size_t pos, size_t stop, const bool *tab)
{
	while (pos < stop && tab[b[pos]])
		pos++;
	return pos;
}

/*
 * skip_class() for line_char and value_char, eight bytes at a time while
 * the bytes are plain: a word with no byte below 0x20 and none equal to
 * 0x7f is in both classes.  The test can flag a word that is plain after
 * all (never the other way); the byte loop then decides.
 */
static size_t
skip_text(const unsigned char *b, size_t pos, size_t stop, const bool *tab)
{
	const uint64_t ones = UINT64_C(0x0101010101010101);
	const uint64_t highs = UINT64_C(0x8080808080808080);
	uint64_t x, del;

	while (pos < stop && stop - pos >= 8) {
		memcpy(&x, b + pos, sizeof(x));
		del = x ^ (ones * 0x7f);
		if ((((x - ones * 0x20) & ~x) | ((del - ones) & ~del)) & highs)
			break;
		pos += 8;
	}
	return skip_class(b, pos, stop, tab);
}

static bool
is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool
span_eq(const char *p, size_t len, const char *lit)
{
	size_t n = strlen(lit);

	return len == n && memcmp(p, lit, n) == 0;
}

/* ------------------------------------------------------------------ */
/* The head                                                            */
/* ------------------------------------------------------------------ */

/* "HTTP/" DIGIT "." DIGIT: 0 for 1.0 / 1.1 (minor set), 1 for another
 * well-formed version, -1 for a malformed one. */
static int
parse_version(const char *p, size_t n, int *minor)
{
	if (n != 8 || memcmp(p, "HTTP/", 5) != 0 || !is_digit(p[5]) ||
	    p[6] != '.' || !is_digit(p[7]))
		return -1;
	if (p[5] != '1' || (p[7] != '0' && p[7] != '1'))
		return 1;
	*minor = p[7] - '0';
	return 0;
}

static bool
is_alpha(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/*
 * Splits a request-target of the shape scheme "://" authority
 * path-abempty [ "?" query ] (RFC 3986 §3): the scheme, the authority
 * (up to the first '/', '?' or '#') and the offset where the path starts.
 * False for any other shape: origin-form, asterisk-form, authority-form,
 * an absolute-URI without an authority.  Checks nothing else.
 */
static bool
split_absolute(const char *p, size_t n, struct http_span *scheme,
    struct http_span *authority, size_t *path_at)
{
	size_t i, a;

	if (n == 0 || !is_alpha((unsigned char)p[0]))
		return false;
	for (i = 1; i < n && (is_alpha((unsigned char)p[i]) ||
	    is_digit((unsigned char)p[i]) || p[i] == '+' || p[i] == '-' || p[i] == '.'); i++)
		;
	if (n - i < 3 || memcmp(p + i, "://", 3) != 0)
		return false;
	scheme->p = p;
	scheme->len = i;
	a = i + 3;
	for (i = a; i < n && p[i] != '/' && p[i] != '?' && p[i] != '#'; i++)
		;
	authority->p = p + a;
	authority->len = i - a;
	*path_at = i;
	return true;
}

static int
parse_request_line(const char *line, size_t n, struct http_head *h,
    struct http_error *err)
{
	struct http_span scheme, authority;
	size_t path_at;
	size_t i = 0, start;
	int r;

	while (i < n && http_is_tchar((unsigned char)line[i]))
		i++;
	if (i == 0 || i >= n || line[i] != ' ')
		return fail(err, 400, "malformed request line");
	h->method.p = line;
	h->method.len = i;
	start = ++i;
	while (i < n && (unsigned char)line[i] > 0x20 && (unsigned char)line[i] < 0x7f)
		i++;
	if (i == start || i >= n || line[i] != ' ')
		return fail(err, 400, "malformed request line");
	h->target.p = line + start;
	h->target.len = i - start;
	i++;
	r = parse_version(line + i, n - i, &h->version_minor);
	if (r > 0)
		return fail(err, 505, "HTTP version not supported");
	if (r < 0)
		return fail(err, 400, "malformed request line");

	/* In absolute-form the path is what follows the authority, and may
	 * be empty (which means "/"). */
	if (!split_absolute(h->target.p, h->target.len, &scheme, &authority, &path_at))
		path_at = 0;
	h->path.p = h->target.p + path_at;
	h->path.len = h->target.len - path_at;
	h->query.p = NULL;
	h->query.len = 0;
	for (i = path_at; i < h->target.len; i++) {
		if (h->target.p[i] == '?') {
			h->path.len = i - path_at;
			h->query.p = h->target.p + i + 1;
			h->query.len = h->target.len - i - 1;
			break;
		}
	}
	return 0;
}

static int
parse_status_line(const char *line, size_t n, struct http_head *h,
    struct http_error *err)
{
	size_t i;

	if (n < 12 || parse_version(line, 8, &h->version_minor) != 0 ||
	    line[8] != ' ' || !is_digit(line[9]) || !is_digit(line[10]) ||
	    !is_digit(line[11]) || line[9] < '1' || line[9] > '5')
		return fail(err, 502, "malformed status line");
	h->status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
	h->reason.p = line + n;
	h->reason.len = 0;
	if (n == 12)
		return 0;
	if (line[12] != ' ')
		return fail(err, 502, "malformed status line");
	/* reason-phrase = *( HTAB / SP / VCHAR / obs-text ); controls were
	 * refused by the scan already. */
	for (i = 13; i < n; i++) {
		if (is_ctl((unsigned char)line[i]) && line[i] != '\t')
			return fail(err, 502, "malformed status line");
	}
	h->reason.p = line + 13;
	h->reason.len = n - 13;
	return 0;
}

/*
 * Byte k is needed: an error if the head would then be longer than
 * max_head, "need more" if it has not arrived yet.
 */
#define NEED(k) do {							\
	if ((k) >= lim->max_head)					\
		return fail(err, is_request ? 431 : 502,		\
		    "header section too large");			\
	if ((k) >= len)							\
		return HTTP_PARSE_NEED_MORE;				\
} while (0)

int
http_parse_head(const char *buf, size_t len, bool is_request,
    const struct http_limits *lim, struct http_head *h, struct http_field *fields,
    struct http_error *err)
{
	const unsigned char *b = (const unsigned char *)buf;
	int bad = is_request ? 400 : 502;
	size_t pos, stop, line_len, nf = 0, name_start, name_end, vstart, vend;
	unsigned char c;

	memset(h, 0, sizeof(*h));
	err->status = 0;
	err->reason = NULL;

	/* Bytes up to stop cannot trip NEED(); the scans below skip the
	 * plain ones, and the checks after each scan are those of a byte
	 * by byte loop. */
	stop = len < lim->max_head ? len : lim->max_head;

	/* The start line. */
	for (pos = 0;; pos++) {
		pos = skip_text(b, pos, stop < lim->max_line ? stop : lim->max_line,
		    line_char);
		NEED(pos);
		c = b[pos];
		if (c == '\r')
			break;
		if (c == '\n')
			return fail(err, bad, pos == 0 ?
			    "empty line before the start line" :
			    "bare LF in the start line");
		if (is_ctl(c) && (is_request || c != '\t'))
			return fail(err, bad, "control character in the start line");
		if (pos >= lim->max_line)
			return fail(err, is_request ? 414 : 502,
			    "start line too long");
	}
	if (pos == 0)
		return fail(err, bad, "empty line before the start line");
	line_len = pos;
	NEED(pos + 1);
	if (b[pos + 1] != '\n')
		return fail(err, bad, "bare CR in the start line");
	pos += 2;

	/* The field lines. */
	for (;;) {
		NEED(pos);
		c = b[pos];
		if (c == '\r') {
			NEED(pos + 1);
			if (b[pos + 1] != '\n')
				return fail(err, bad, "bare CR in the header section");
			pos += 2;
			break;
		}
		if (c == '\n')
			return fail(err, bad, "bare LF in the header section");
		if (c == ' ' || c == '\t')
			return fail(err, bad, "obsolete line folding");
		if (nf >= lim->max_fields)
			return fail(err, is_request ? 431 : 502,
			    "too many header fields");

		name_start = pos;
		for (;; pos++) {
			pos = skip_class(b, pos, stop, http_tchar);
			NEED(pos);
			c = b[pos];
			if (c == ':')
				break;
			if (c == ' ' || c == '\t')
				return fail(err, bad, "whitespace before the colon");
			if (c == '\r' || c == '\n')
				return fail(err, bad, "field line without a colon");
			if (!http_is_tchar(c))
				return fail(err, bad, "invalid field name");
		}
		if (pos == name_start)
			return fail(err, bad, "empty field name");
		name_end = pos++;

		vstart = pos;
		for (;; pos++) {
			pos = skip_text(b, pos, stop, value_char);
			NEED(pos);
			c = b[pos];
			if (c == '\r')
				break;
			if (c == '\n')
				return fail(err, bad, "bare LF in the header section");
			if (is_ctl(c) && c != '\t')
				return fail(err, bad, "control character in a field value");
		}
		vend = pos;
		NEED(pos + 1);
		if (b[pos + 1] != '\n')
			return fail(err, bad, "bare CR in the header section");
		pos += 2;

		while (vstart < vend && (b[vstart] == ' ' || b[vstart] == '\t'))
			vstart++;
		while (vend > vstart && (b[vend - 1] == ' ' || b[vend - 1] == '\t'))
			vend--;
		fields[nf].name.p = buf + name_start;
		fields[nf].name.len = name_end - name_start;
		fields[nf].value.p = buf + vstart;
		fields[nf].value.len = vend - vstart;
		fields[nf].drop = false;
		nf++;
	}

	if (is_request) {
		if (parse_request_line(buf, line_len, h, err) != 0)
			goto bad;
	} else {
		if (parse_status_line(buf, line_len, h, err) != 0)
			goto bad;
	}
	h->fields = fields;
	h->nfields = nf;
	h->head_len = pos;
	return HTTP_PARSE_DONE;
 bad:
	memset(h, 0, sizeof(*h));
	return HTTP_PARSE_ERROR;
}

#undef NEED

/* ------------------------------------------------------------------ */
/* Framing and request semantics                                       */
/* ------------------------------------------------------------------ */

/* Content-Length = 1*DIGIT, at most 2^53. */
static bool
parse_content_length(const struct http_span *v, uint64_t *out)
{
	uint64_t n = 0;
	size_t i;

	if (v->len == 0)
		return false;
	for (i = 0; i < v->len; i++) {
		if (!is_digit((unsigned char)v->p[i]))
			return false;
		n = n * 10 + (uint64_t)(v->p[i] - '0');
		if (n > CL_MAX)
			return false;
	}
	*out = n;
	return true;
}

/*
 * The Content-Length and Transfer-Encoding rules that requests and
 * responses share.  Sets *chunked, or *has_length and *length.
 */
static int
check_framing_fields(const struct http_head *h, int status, bool *chunked,
    bool *has_length, uint64_t *length, struct http_error *err)
{
	const struct http_field *cl, *te;
	size_t iter = 0;

	*chunked = *has_length = false;
	*length = 0;

	cl = http_head_find(h, "Content-Length", &iter);
	if (cl != NULL && http_head_find(h, "Content-Length", &iter) != NULL)
		return fail(err, status, "several Content-Length fields");
	iter = 0;
	te = http_head_find(h, "Transfer-Encoding", &iter);
	if (te != NULL && http_head_find(h, "Transfer-Encoding", &iter) != NULL)
		return fail(err, status, "several Transfer-Encoding fields");
	if (cl != NULL && te != NULL)
		return fail(err, status, "both Content-Length and Transfer-Encoding");
	if (te != NULL) {
		if (h->version_minor == 0)
			return fail(err, status, "Transfer-Encoding in HTTP/1.0");
		if (!cg_strcase_eq(te->value.p, te->value.len, "chunked", 7))
			return fail(err, status, "Transfer-Encoding other than chunked");
		*chunked = true;
	}
	if (cl != NULL) {
		if (!parse_content_length(&cl->value, length))
			return fail(err, status, "invalid Content-Length");
		*has_length = true;
	}
	return 0;
}

static bool
is_unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || is_digit(c) ||
	    c == '-' || c == '.' || c == '_' || c == '~';
}

static bool
is_sub_delim(unsigned char c)
{
	return c != '\0' && strchr("!$&'()*+,;=", c) != NULL;
}

/* pchar without pct-encoded (checked by the caller). */
static bool
is_pchar(unsigned char c)
{
	return is_unreserved(c) || is_sub_delim(c) || c == ':' || c == '@';
}

/* One path segment: is it "." or "..", also percent-encoded? */
static bool
is_dot_segment(const char *p, size_t n)
{
	size_t i = 0, dots = 0;

	while (i < n) {
		if (p[i] == '.')
			i++;
		else if (i + 2 < n && p[i] == '%' && p[i + 1] == '2' &&
		    (p[i + 2] == 'e' || p[i + 2] == 'E'))
			i += 3;
		else
			return false;
		dots++;
	}
	return dots == 1 || dots == 2;
}

/*
 * absolute-path [ "?" query ], as in origin-form (RFC 9112 §3.2.1); for
 * absolute-form, path-abempty [ "?" query ] (RFC 3986 §3), which may also
 * be empty or start with '?'.
 */
static bool
valid_path_query(const char *p, size_t n)
{
	size_t i, seg = 1;
	bool in_query;

	if (n == 0)
		return true;
	if (p[0] != '/' && p[0] != '?')
		return false;
	in_query = p[0] == '?';
	for (i = 1; i <= n; i++) {
		unsigned char c = i < n ? (unsigned char)p[i] : '\0';

		if (!in_query && (i == n || c == '/' || c == '?')) {
			if (is_dot_segment(p + seg, i - seg))
				return false;
			seg = i + 1;
			if (c == '?')
				in_query = true;
			continue;
		}
		if (i == n)
			break;
		if (c == '%') {
			if (i + 2 >= n || cg_hexval((unsigned char)p[i + 1]) < 0 ||
			    cg_hexval((unsigned char)p[i + 2]) < 0)
				return false;
			i += 2;
			continue;
		}
		if (is_pchar(c) || (in_query && (c == '/' || c == '?')))
			continue;
		return false;
	}
	return true;
}

/* Host = uri-host [ ":" port ]; uri-host = IP-literal / IPv4address /
 * reg-name (RFC 9110 §7.2, RFC 3986 §3.2.2). */
static bool
valid_host(const struct http_span *v)
{
	const char *p = v->p;
	size_t n = v->len, i, hend;
	unsigned long port;
	char addr[INET6_ADDRSTRLEN + 1];
	unsigned char bin[16];

	if (n == 0)
		return false;
	if (p[0] == '[') {
		for (hend = 1; hend < n && p[hend] != ']'; hend++)
			;
		if (hend >= n || hend - 1 == 0 || hend - 1 >= sizeof(addr))
			return false;
		memcpy(addr, p + 1, hend - 1);
		addr[hend - 1] = '\0';
		if (inet_pton(AF_INET6, addr, bin) != 1)
			return false;
		hend++;
	} else {
		for (hend = 0; hend < n && p[hend] != ':'; hend++) {
			unsigned char c = (unsigned char)p[hend];

			if (c == '%') {
				if (hend + 2 >= n || cg_hexval((unsigned char)p[hend + 1]) < 0 ||
				    cg_hexval((unsigned char)p[hend + 2]) < 0)
					return false;
				hend += 2;
			} else if (!is_unreserved(c) && !is_sub_delim(c))
				return false;
		}
		if (hend == 0)
			return false;
	}
	if (hend == n)
		return true;
	if (p[hend] != ':' || hend + 1 == n || n - hend - 1 > 5)
		return false;
	port = 0;
	for (i = hend + 1; i < n; i++) {
		if (!is_digit((unsigned char)p[i]))
			return false;
		port = port * 10 + (unsigned long)(p[i] - '0');
	}
	return port <= 65535;
}

/*
 * absolute-form (RFC 9112 §3.2.2): "http" or "https" (any case), an
 * authority that is a valid Host value (no userinfo, a host, an optional
 * port), then a path and query as strict as in origin-form.
 */
static int
check_absolute_form(const struct http_head *h, struct http_error *err)
{
	struct http_span scheme, authority;
	size_t path_at;

	if (!split_absolute(h->target.p, h->target.len, &scheme, &authority, &path_at))
		return fail(err, 400, "request-target not in origin-form or absolute-form");
	if (!cg_strcase_eq(scheme.p, scheme.len, "http", 4) &&
	    !cg_strcase_eq(scheme.p, scheme.len, "https", 5))
		return fail(err, 400, "request-target scheme not http or https");
	if (memchr(authority.p, '@', authority.len) != NULL)
		return fail(err, 400, "userinfo in the request-target");
	if (!valid_host(&authority))
		return fail(err, 400, "invalid authority in the request-target");
	if (!valid_path_query(h->target.p + path_at, h->target.len - path_at))
		return fail(err, 400, "invalid request-target");
	return 0;
}

bool
http_request_authority(const struct http_head *h, struct http_span *authority,
    bool *host_differs)
{
	const struct http_field *host;
	struct http_span scheme;
	size_t path_at, iter = 0;

	authority->p = NULL;
	authority->len = 0;
	*host_differs = false;
	if (h->target.len == 0 || h->target.p[0] == '/' ||
	    !split_absolute(h->target.p, h->target.len, &scheme, authority, &path_at))
		return false;
	host = http_head_find(h, "Host", &iter);
	*host_differs = host != NULL && host->value.len > 0 &&
	    !cg_strcase_eq(host->value.p, host->value.len, authority->p, authority->len);
	return true;
}

int
http_request_check(const struct http_head *h, struct http_framing *f,
    struct http_error *err)
{
	const struct http_field *host;
	size_t iter = 0;
	bool chunked, has_length;
	uint64_t length;

	memset(f, 0, sizeof(*f));
	err->status = 0;
	err->reason = NULL;

	if (span_eq(h->method.p, h->method.len, "CONNECT"))
		return fail(err, 501, "CONNECT not supported");
	if (span_eq(h->target.p, h->target.len, "*")) {
		if (!span_eq(h->method.p, h->method.len, "OPTIONS"))
			return fail(err, 400, "asterisk-form only with OPTIONS");
	} else if (h->target.len > 0 && h->target.p[0] == '/') {
		if (!valid_path_query(h->target.p, h->target.len))
			return fail(err, 400, "invalid request-target");
	} else if (check_absolute_form(h, err) != 0)
		return -1;

	host = http_head_find(h, "Host", &iter);
	if (host != NULL && http_head_find(h, "Host", &iter) != NULL)
		return fail(err, 400, "several Host fields");
	if (host == NULL) {
		if (h->version_minor == 1)
			return fail(err, 400, "no Host field");
	} else if (host->value.len == 0) {
		if (h->version_minor == 1)
			return fail(err, 400, "empty Host field");
	} else if (!valid_host(&host->value))
		return fail(err, 400, "invalid Host field");

	if (check_framing_fields(h, 400, &chunked, &has_length, &length, err) != 0)
		return -1;
	if (chunked)
		f->kind = HTTP_BODY_CHUNKED;
	else if (has_length) {
		f->kind = HTTP_BODY_LENGTH;
		f->length = length;
	} else
		f->kind = HTTP_BODY_NONE;
	return 0;
}

int
http_response_check(const struct http_head *resp, const char *req_method,
    size_t req_method_len, struct http_framing *f, struct http_error *err)
{
	bool chunked, has_length;
	uint64_t length;

	memset(f, 0, sizeof(*f));
	err->status = 0;
	err->reason = NULL;

	if (check_framing_fields(resp, 502, &chunked, &has_length, &length, err) != 0)
		return -1;
	if ((req_method != NULL && span_eq(req_method, req_method_len, "HEAD")) ||
	    resp->status / 100 == 1 || resp->status == 204 || resp->status == 304)
		f->kind = HTTP_BODY_NONE;
	else if (chunked)
		f->kind = HTTP_BODY_CHUNKED;
	else if (has_length) {
		f->kind = HTTP_BODY_LENGTH;
		f->length = length;
	} else
		f->kind = HTTP_BODY_UNTIL_CLOSE;
	return 0;
}

/* ------------------------------------------------------------------ */
/* The chunked framing, scanned by us next to llhttp                   */
/* ------------------------------------------------------------------ */

/*
 * llhttp 8.1 in strict mode refuses most malformed chunk lines, but
 * accepts a bare LF after the last chunk, empty chunk-extension names and
 * values, obs-fold and empty field names in the trailer section.  This
 * scan holds the whole grammar (RFC 9112 §7.1) without whitespace and is
 * authoritative for where the message ends; llhttp must agree.
 */
enum chunk_state {
	CK_OFF = 0,		/* not chunked */
	CK_SIZE_START,		/* first hex digit of a chunk size */
	CK_SIZE,
	CK_EXT_NAME_START,	/* after ';' */
	CK_EXT_NAME,
	CK_EXT_VAL_START,	/* after '=' */
	CK_EXT_VAL_TOKEN,
	CK_EXT_VAL_QUOTED,
	CK_EXT_VAL_QESC,	/* after '\' in a quoted value */
	CK_EXT_VAL_END,		/* after the closing quote */
	CK_SIZE_LF,		/* after the CR of a chunk line */
	CK_DATA,
	CK_DATA_CR,
	CK_DATA_LF,
	CK_TR_START,		/* start of a trailer line or the final CRLF */
	CK_TR_NAME,
	CK_TR_VALUE,
	CK_TR_LF,
	CK_END_LF,
	CK_DONE,
};

/* Trailer fields we refuse: framing, routing and credentials. */
static const char *const forbidden_trailers[] = {
	"content-length", "transfer-encoding", "host", "authorization",
	"proxy-authorization", "connection", "trailer", "upgrade", "expect",
};

static bool
trailer_forbidden(const struct http_msg *m)
{
	size_t i;

	if (m->chunk.name_len > sizeof(m->chunk.name))
		return false;
	for (i = 0; i < CG_ARRAY_LEN(forbidden_trailers); i++) {
		if (span_eq(m->chunk.name, m->chunk.name_len, forbidden_trailers[i]))
			return true;
	}
	return false;
}

/* The byte just read breaks the grammar. */
#define SCAN_FAIL(text) do { why = (text); goto bad; } while (0)

static bool
is_qdtext(unsigned char c)
{
	return c == '\t' || c == ' ' || c == 0x21 || (c >= 0x23 && c <= 0x5b) ||
	    (c >= 0x5d && c <= 0x7e) || c >= 0x80;
}

/*
 * Scans data[0..len); *used gets the bytes up to and including the end of
 * the message, or len.  Returns 0, or HTTP_PARSE_ERROR with *used set to
 * the offset of the offending byte and *reason to why (m->err is left to
 * the caller, which first lets llhttp see the bytes before that one).
 */
static int
chunk_scan(struct http_msg *m, const char *data, size_t len, size_t *used,
    const char **reason)
{
	const char *why;
	size_t i = 0, take;
	unsigned char c;
	int d;

	while (i < len && m->chunk.state != CK_DONE) {
		if (m->chunk.state == CK_DATA) {
			take = len - i;
			if (take > m->chunk.size)
				take = (size_t)m->chunk.size;
			m->chunk.size -= take;
			i += take;
			if (m->chunk.size == 0)
				m->chunk.state = CK_DATA_CR;
			continue;
		}
		c = (unsigned char)data[i++];
		if (m->chunk.state <= CK_SIZE_LF && ++m->chunk.line_len > CHUNK_LINE_MAX)
			SCAN_FAIL("chunk line too long");
		if (m->chunk.state >= CK_TR_NAME && m->chunk.state <= CK_TR_LF &&
		    ++m->trailer_bytes > m->max_trailer)
			SCAN_FAIL("trailer section too large");

		switch ((enum chunk_state)m->chunk.state) {
		case CK_SIZE_START:
		case CK_SIZE:
			if ((d = cg_hexval(c)) >= 0) {
				if (m->chunk.size > (UINT64_MAX >> 4))
					SCAN_FAIL("chunk size overflow");
				m->chunk.size = (m->chunk.size << 4) | (uint64_t)d;
				m->chunk.state = CK_SIZE;
			} else if (m->chunk.state == CK_SIZE_START)
				SCAN_FAIL("invalid chunk size");
			else if (c == ';')
				m->chunk.state = CK_EXT_NAME_START;
			else if (c == '\r')
				m->chunk.state = CK_SIZE_LF;
			else
				SCAN_FAIL("invalid chunk size");
			break;
		case CK_EXT_NAME_START:
			if (!http_is_tchar(c))
				SCAN_FAIL("invalid chunk extension");
			m->chunk.state = CK_EXT_NAME;
			break;
		case CK_EXT_NAME:
			if (c == '=')
				m->chunk.state = CK_EXT_VAL_START;
			else if (c == ';')
				m->chunk.state = CK_EXT_NAME_START;
			else if (c == '\r')
				m->chunk.state = CK_SIZE_LF;
			else if (!http_is_tchar(c))
				SCAN_FAIL("invalid chunk extension");
			break;
		case CK_EXT_VAL_START:
			if (c == '"')
				m->chunk.state = CK_EXT_VAL_QUOTED;
			else if (http_is_tchar(c))
				m->chunk.state = CK_EXT_VAL_TOKEN;
			else
				SCAN_FAIL("invalid chunk extension");
			break;
		case CK_EXT_VAL_TOKEN:
			if (c == ';')
				m->chunk.state = CK_EXT_NAME_START;
			else if (c == '\r')
				m->chunk.state = CK_SIZE_LF;
			else if (!http_is_tchar(c))
				SCAN_FAIL("invalid chunk extension");
			break;
		case CK_EXT_VAL_QUOTED:
			if (c == '"')
				m->chunk.state = CK_EXT_VAL_END;
			else if (c == '\\')
				m->chunk.state = CK_EXT_VAL_QESC;
			else if (!is_qdtext(c))
				SCAN_FAIL("invalid chunk extension");
			break;
		case CK_EXT_VAL_QESC:
			if (is_ctl(c) && c != '\t')
				SCAN_FAIL("invalid chunk extension");
			m->chunk.state = CK_EXT_VAL_QUOTED;
			break;
		case CK_EXT_VAL_END:
			if (c == ';')
				m->chunk.state = CK_EXT_NAME_START;
			else if (c == '\r')
				m->chunk.state = CK_SIZE_LF;
			else
				SCAN_FAIL("invalid chunk extension");
			break;
		case CK_SIZE_LF:
			if (c != '\n')
				SCAN_FAIL("bare CR in a chunk line");
			m->chunk.line_len = 0;
			if (m->chunk.size == 0) {
				m->in_trailers = true;
				m->chunk.state = CK_TR_START;
			} else
				m->chunk.state = CK_DATA;
			break;
		case CK_DATA_CR:
			if (c != '\r')
				SCAN_FAIL("no CRLF after chunk data");
			m->chunk.state = CK_DATA_LF;
			break;
		case CK_DATA_LF:
			if (c != '\n')
				SCAN_FAIL("no CRLF after chunk data");
			m->chunk.state = CK_SIZE_START;
			break;
		case CK_TR_START:
			if (c == '\r') {
				m->chunk.state = CK_END_LF;
				break;
			}
			if (c == '\n')
				SCAN_FAIL("bare LF in trailers");
			if (c == ' ' || c == '\t')
				SCAN_FAIL("obsolete line folding in trailers");
			if (!http_is_tchar(c))
				SCAN_FAIL("invalid trailer field");
			if (++m->trailer_bytes > m->max_trailer)
				SCAN_FAIL("trailer section too large");
			m->chunk.name_len = 0;
			m->chunk.state = CK_TR_NAME;
			__attribute__((fallthrough));
		case CK_TR_NAME:
			if (c == ':') {
				if (trailer_forbidden(m))
					SCAN_FAIL("forbidden field in trailers");
				m->chunk.state = CK_TR_VALUE;
				break;
			}
			if (!http_is_tchar(c))
				SCAN_FAIL("invalid trailer field");
			if (m->chunk.name_len < sizeof(m->chunk.name))
				m->chunk.name[m->chunk.name_len] =
				    (char)((c >= 'A' && c <= 'Z') ? c + 32 : c);
			if (m->chunk.name_len <= sizeof(m->chunk.name))
				m->chunk.name_len++;
			break;
		case CK_TR_VALUE:
			if (c == '\r')
				m->chunk.state = CK_TR_LF;
			else if (is_ctl(c) && c != '\t')
				SCAN_FAIL("invalid trailer field");
			break;
		case CK_TR_LF:
			if (c != '\n')
				SCAN_FAIL("bare CR in trailers");
			m->chunk.state = CK_TR_START;
			break;
		case CK_END_LF:
			if (c != '\n')
				SCAN_FAIL("bare CR in trailers");
			m->chunk.state = CK_DONE;
			break;
		case CK_OFF:
		case CK_DATA:
		case CK_DONE:
			abort();
		}
	}
	*used = i;
	return 0;
 bad:
	*reason = why;
	*used = i - 1;
	return HTTP_PARSE_ERROR;
}

#undef SCAN_FAIL

/* ------------------------------------------------------------------ */
/* llhttp                                                              */
/* ------------------------------------------------------------------ */

static int
msg_error(struct http_msg *m, int status, const char *reason)
{
	if (m->err.status == 0) {
		m->err.status = m->is_request ? status : 502;
		m->err.reason = reason;
	}
	return -1;
}

static int
on_headers_complete(llhttp_t *p)
{
	struct http_msg *m = p->data;

	m->head_done = true;
	if (!m->is_request) {
		int st = p->status_code;

		if (st / 100 == 1 || st == 204 || st == 304)
			m->skip_body = true;
	}
	if (m->skip_body)
		return 1;
	if (p->flags & F_CHUNKED) {
		m->chunk.state = CK_SIZE_START;
		m->chunk.line_len = 0;
		m->chunk.size = 0;
	} else if (m->is_request && m->max_body != 0 &&
	    (p->flags & F_CONTENT_LENGTH) && p->content_length > m->max_body)
		return msg_error(m, 413, "body too large");
	return 0;
}

static int
on_chunk_header(llhttp_t *p)
{
	struct http_msg *m = p->data;

	if (m->is_request && m->max_body != 0 &&
	    p->content_length > m->max_body - m->body_bytes)
		return msg_error(m, 413, "body too large");
	return 0;
}

static int
on_body(llhttp_t *p, const char *at, size_t n)
{
	struct http_msg *m = p->data;

	if (m->is_request && m->max_body != 0 && n > m->max_body - m->body_bytes)
		return msg_error(m, 413, "body too large");
	m->body_bytes += n;
	if (m->on_body != NULL && m->on_body(m->arg, at, n) != 0) {
		if (m->err.status == 0) {
			m->err.status = 500;
			m->err.reason = "body callback failed";
		}
		return -1;
	}
	return 0;
}

static int
on_message_complete(llhttp_t *p)
{
	struct http_msg *m = p->data;

	m->complete = true;
	return HPE_PAUSED;
}

static const llhttp_settings_t msg_settings = {
	.on_headers_complete = on_headers_complete,
	.on_chunk_header = on_chunk_header,
	.on_body = on_body,
	.on_message_complete = on_message_complete,
};

static int
msg_fail(struct http_msg *m, int status, const char *reason)
{
	msg_error(m, status, reason);
	return HTTP_PARSE_ERROR;
}

/* An error from llhttp (or from one of our callbacks, which set m->err). */
static int
llhttp_fail(struct http_msg *m, llhttp_errno_t e)
{
	if (m->err.status != 0)
		return HTTP_PARSE_ERROR;
	if (m->is_request && e == HPE_INVALID_METHOD)
		msg_error(m, 501, "method not implemented");
	else
		msg_error(m, 400, "malformed message");
	return HTTP_PARSE_ERROR;
}

/*
 * Runs llhttp over a head that http_parse_head() accepted, without the
 * whitespace that ends each field value.  That whitespace is not part of
 * the value (RFC 9110 §5.5; http_parse_head() trims it too), but llhttp
 * 8.1 in strict mode refuses a trailing HTAB after a Content-Length or
 * Transfer-Encoding value (a trailing SP it takes), and would answer 400
 * to a well-formed message, or 502 to a well-formed response.  Leading
 * whitespace llhttp skips itself.  The head goes to llhttp in runs that
 * leave those bytes out, so nothing is copied; the start line is given
 * as it is (a reason phrase may end with whitespace).
 *
 * Returns HPE_OK when llhttp took the whole head and waits for a body;
 * else the first error or pause, after which nothing more is given.
 */
static llhttp_errno_t
msg_head_execute(struct http_msg *m, const char *head, size_t head_len)
{
	const char *end = head + head_len, *run, *cr, *ws;
	llhttp_errno_t e;

	if ((run = memchr(head, '\n', head_len)) == NULL)
		return llhttp_execute(&m->parser, head, head_len);
	cr = ++run;
	run = head;
	while ((cr = memchr(cr, '\r', (size_t)(end - cr))) != NULL) {
		for (ws = cr; ws[-1] == ' ' || ws[-1] == '\t'; ws--)
			;
		if (ws != cr) {
			if ((e = llhttp_execute(&m->parser, run, (size_t)(ws - run))) !=
			    HPE_OK)
				return e;
			run = cr;
		}
		cr++;
	}
	return llhttp_execute(&m->parser, run, (size_t)(end - run));
}

int
http_msg_begin(struct http_msg *m, bool is_request, const char *head, size_t head_len,
    const char *req_method, size_t req_method_len, uint64_t max_body, size_t max_trailer,
    http_body_cb on_body_cb, void *arg)
{
	llhttp_errno_t e;

	memset(m, 0, sizeof(*m));
	m->is_request = is_request;
	m->max_body = max_body;
	m->max_trailer = max_trailer;
	m->on_body = on_body_cb;
	m->arg = arg;
	if (!is_request && req_method != NULL &&
	    span_eq(req_method, req_method_len, "HEAD"))
		m->skip_body = true;
	m->settings = msg_settings;
	llhttp_init(&m->parser, is_request ? HTTP_REQUEST : HTTP_RESPONSE,
	    &msg_settings);
	m->parser.data = m;

	if (head == NULL || head_len == 0)
		return msg_fail(m, 400, "empty head");
	e = msg_head_execute(m, head, head_len);
	if (e == HPE_OK) {
		if (!m->head_done)
			return msg_fail(m, 400, "head not accepted");
		return HTTP_PARSE_DONE;
	}
	if ((e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE) && m->complete) {
		if (llhttp_get_error_pos(&m->parser) != head + head_len)
			return msg_fail(m, 400, "head not accepted");
		return HTTP_PARSE_DONE;
	}
	return llhttp_fail(m, e);
}

int
http_msg_feed(struct http_msg *m, const char *data, size_t len, size_t *consumed)
{
	llhttp_errno_t e;
	size_t n = len;
	bool chunked = m->chunk.state != CK_OFF;
	const char *scan_err = NULL;

	*consumed = 0;
	if (m->err.status != 0)
		return HTTP_PARSE_ERROR;
	if (m->complete)
		return HTTP_PARSE_DONE;
	if (!m->head_done)
		return msg_fail(m, 500, "no head");
	if (len == 0)
		return HTTP_PARSE_NEED_MORE;
	if (chunked && chunk_scan(m, data, len, &n, &scan_err) != 0) {
		/* The bytes before the bad one go through llhttp as if
		 * they had come alone, so that the outcome does not depend
		 * on how the input was cut into pieces. */
		m->parser.data = m;
		if (n > 0 && (e = llhttp_execute(&m->parser, data, n)) != HPE_OK)
			return llhttp_fail(m, e);
		return msg_fail(m, 400, scan_err);
	}

	m->parser.data = m;
	e = llhttp_execute(&m->parser, data, n);
	if (e == HPE_OK) {
		if (chunked && m->chunk.state == CK_DONE)
			return msg_fail(m, 400, "chunked framing disagreement");
		*consumed = n;
		return HTTP_PARSE_NEED_MORE;
	}
	if ((e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE) && m->complete) {
		const char *end = llhttp_get_error_pos(&m->parser);

		if (end < data || end > data + n ||
		    (chunked && (m->chunk.state != CK_DONE || end != data + n)))
			return msg_fail(m, 400, "chunked framing disagreement");
		*consumed = (size_t)(end - data);
		return HTTP_PARSE_DONE;
	}
	return llhttp_fail(m, e);
}

int
http_msg_eof(struct http_msg *m)
{
	llhttp_errno_t e;

	if (m->err.status != 0)
		return HTTP_PARSE_ERROR;
	if (m->complete)
		return HTTP_PARSE_DONE;
	if (m->head_done && !m->is_request && m->chunk.state == CK_OFF &&
	    llhttp_message_needs_eof(&m->parser)) {
		m->parser.data = m;
		e = llhttp_finish(&m->parser);
		if ((e == HPE_OK || e == HPE_PAUSED) && m->complete)
			return HTTP_PARSE_DONE;
	}
	msg_error(m, 400, "connection closed inside a message");
	return HTTP_PARSE_ERROR;
}
