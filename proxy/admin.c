/*
 * admin.c: the admin endpoint: /healthz, /readyz and /metrics over a small
 * HTTP/1.1 server with one request per connection.
 *
 * Owns its listener and its connections, nothing else: readiness and the
 * metrics text come from the server through struct admin_hooks.  Request
 * heads go through the same strict parser as the proxy's front
 * (http_parse_head(), http_request_check()).
 *
 * A connection goes READING -> WRITING -> LINGER and is freed from one of
 * its own callbacks; it has no other owner, and freeing its bufferevent and
 * timer together means no callback of it can follow.
 */
#include <errno.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "proxy/admin.h"
#include "injectors/http/http_parse.h"

#define ADMIN_MAX_FIELDS	64
#define ADMIN_MAX_LINE		4096	/* request line, within ADMIN_MAX_HEAD */
#define ADMIN_LINGER_MS		2000	/* to drain a response, then to see EOF */
#define ADMIN_ACCEPT_RETRY_MS	1000	/* after an accept error such as EMFILE */
#define ADMIN_BACKLOG		64
#define METRICS_CONTENT_TYPE	"text/plain; version=0.0.4; charset=utf-8"
#define TEXT_CONTENT_TYPE	"text/plain; charset=utf-8"

enum admin_state {
	ADMIN_READING,	/* waiting for the request head; header timer */
	ADMIN_WRITING,	/* response queued, reads off; linger timer */
	ADMIN_LINGER,	/* our side shut, input discarded until EOF; linger timer */
};

struct admin_conn {
	TAILQ_ENTRY(admin_conn) link;
	struct cg_admin *admin;
	struct bufferevent *bev;
	struct event *timer;
	enum admin_state state;
};

TAILQ_HEAD(admin_conn_list, admin_conn);

struct cg_admin {
	struct event_base *base;
	struct evconnlistener *listener;
	struct event *accept_retry;	/* re-enables the listener after an error */
	struct admin_hooks hooks;
	struct admin_conn_list conns;
	size_t nconns;
	int64_t header_timeout_ms;
	int port;
};

static void admin_conn_read(struct bufferevent *bev, void *arg);
static void admin_conn_write(struct bufferevent *bev, void *arg);
static void admin_conn_event(struct bufferevent *bev, short what, void *arg);

static void
admin_arm(struct admin_conn *c, int64_t ms)
{
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };

	evtimer_add(c->timer, &tv);
}

static void
admin_conn_free(struct admin_conn *c)
{
	TAILQ_REMOVE(&c->admin->conns, c, link);
	c->admin->nconns--;
	if (c->bev != NULL)
		bufferevent_free(c->bev);	/* closes the socket */
	if (c->timer != NULL)
		event_free(c->timer);
	free(c);
}

static const char *
status_text(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	default: return "Error";
	}
}

/*
 * Queues the whole response (body moved out of `body`, or left out for
 * HEAD), stops reading and lets the output drain.  On a queueing failure
 * the connection just closes.
 */
static void
admin_respond(struct admin_conn *c, int status, const char *ctype, const char *extra,
    struct evbuffer *body, bool head_only)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	size_t blen = body != NULL ? evbuffer_get_length(body) : 0;
	int r;

	r = evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
	    "Content-Length: %zu\r\nCache-Control: no-store\r\n%s%s"
	    "Connection: close\r\n\r\n", status, status_text(status), ctype, blen,
	    extra != NULL ? extra : "", extra != NULL ? "\r\n" : "");
	if (r < 0 || (!head_only && blen > 0 && evbuffer_add_buffer(out, body) != 0)) {
		admin_conn_free(c);
		return;
	}
	c->state = ADMIN_WRITING;
	bufferevent_disable(c->bev, EV_READ);
	bufferevent_enable(c->bev, EV_WRITE);
	admin_arm(c, ADMIN_LINGER_MS);
	/* admin_conn_write() follows once the output is empty. */
}

/* A plain-text response whose body is text. */
static void
admin_respond_text(struct admin_conn *c, int status, const char *extra, const char *text,
    bool head_only)
{
	struct evbuffer *body;

	if ((body = evbuffer_new()) == NULL || evbuffer_add(body, text, strlen(text)) != 0) {
		if (body != NULL)
			evbuffer_free(body);
		admin_conn_free(c);
		return;
	}
	admin_respond(c, status, TEXT_CONTENT_TYPE, extra, body, head_only);
	evbuffer_free(body);
}

/* An error of ours: "<status text>\n", GET-style. */
static void
admin_respond_error(struct admin_conn *c, int status, const char *reason)
{
	char text[64], q[96];

	cg_debug("msg=admin_refused status=%d reason=%s", status,
	    cg_log_quote(q, sizeof(q), reason, strlen(reason)));
	snprintf(text, sizeof(text), "%s\n", status_text(status));
	admin_respond_text(c, status, NULL, text, false);
}

static bool
span_is(const struct http_span *s, const char *lit)
{
	return s->len == strlen(lit) && memcmp(s->p, lit, s->len) == 0;
}

/* Replaces bytes outside printable ASCII so that a reason stays one line. */
static void
one_line(char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			*s = '?';
}

static void
admin_metrics(struct admin_conn *c, bool head_only)
{
	const struct admin_hooks *hk = &c->admin->hooks;
	struct evbuffer *body;
	char q[96];
	int r;

	if ((body = evbuffer_new()) == NULL) {
		admin_conn_free(c);
		return;
	}
	if ((r = hk->render_metrics(hk->arg, body)) != 0) {
		evbuffer_free(body);
		cg_warn("msg=admin_metrics_failed error=%s",
		    cg_log_quote(q, sizeof(q), cg_strerror(r), strlen(cg_strerror(r))));
		admin_respond_error(c, 500, "render_failed");
		return;
	}
	admin_respond(c, 200, METRICS_CONTENT_TYPE, NULL, body, head_only);
	evbuffer_free(body);
}

static void
admin_readyz(struct admin_conn *c, bool head_only)
{
	const struct admin_hooks *hk = &c->admin->hooks;
	char why[200], text[240];

	why[0] = '\0';
	if (hk->ready == NULL || hk->ready(hk->arg, why, sizeof(why))) {
		/* A ready hook may add what it saw ("vault ok, token ttl ..."). */
		why[sizeof(why) - 1] = '\0';
		one_line(why);
		if (why[0] == '\0')
			snprintf(text, sizeof(text), "ready\n");
		else
			snprintf(text, sizeof(text), "ready: %s\n", why);
		admin_respond_text(c, 200, NULL, text, head_only);
		return;
	}
	why[sizeof(why) - 1] = '\0';
	one_line(why);
	snprintf(text, sizeof(text), "not ready: %s\n", why[0] != '\0' ? why : "unknown");
	admin_respond_text(c, 503, NULL, text, head_only);
}

/* One complete, checked request head. */
static void
admin_request(struct admin_conn *c, const struct http_head *h)
{
	enum { HEALTHZ, READYZ, METRICS } what;
	bool get = span_is(&h->method, "GET"), head = span_is(&h->method, "HEAD");

	if (span_is(&h->path, "/healthz"))
		what = HEALTHZ;
	else if (span_is(&h->path, "/readyz"))
		what = READYZ;
	else if (span_is(&h->path, "/metrics") && c->admin->hooks.render_metrics != NULL)
		what = METRICS;
	else {
		admin_respond_error(c, 404, "no_such_path");
		return;
	}
	if (!get && !head) {
		admin_respond_text(c, 405, "Allow: GET, HEAD", "Method Not Allowed\n", false);
		return;
	}
	switch (what) {
	case HEALTHZ:
		admin_respond_text(c, 200, NULL, "ok\n", head);
		break;
	case READYZ:
		admin_readyz(c, head);
		break;
	case METRICS:
		admin_metrics(c, head);
		break;
	}
}

static void
admin_conn_read(struct bufferevent *bev, void *arg)
{
	struct admin_conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct http_field fields[ADMIN_MAX_FIELDS];
	struct http_limits lim = {
		.max_line = ADMIN_MAX_LINE,
		.max_head = ADMIN_MAX_HEAD,
		.max_fields = ADMIN_MAX_FIELDS,
		.max_trailer = 0,
	};
	struct http_framing fr;
	struct http_error e;
	struct http_head h;
	struct http_span auth;
	size_t len, want;
	const char *p;
	bool host_differs;
	int r;

	if (c->state == ADMIN_LINGER) {
		evbuffer_drain(in, evbuffer_get_length(in));
		return;
	}
	if (c->state != ADMIN_READING)
		return;
	len = evbuffer_get_length(in);
	want = len < ADMIN_MAX_HEAD + 1 ? len : ADMIN_MAX_HEAD + 1;
	if ((p = (const char *)evbuffer_pullup(in, (ssize_t)want)) == NULL) {
		admin_conn_free(c);
		return;
	}
	memset(&h, 0, sizeof(h));
	r = http_parse_head(p, want, true, &lim, &h, fields, &e);
	if (r == HTTP_PARSE_NEED_MORE) {
		if (want > ADMIN_MAX_HEAD)	/* the parser says so too; belt and braces */
			admin_respond_error(c, 431, "head_too_large");
		return;
	}
	if (r != HTTP_PARSE_DONE) {
		admin_respond_error(c, e.status, e.reason);
		return;
	}
	if (http_request_check(&h, &fr, &e) != 0) {
		admin_respond_error(c, e.status, e.reason);
		return;
	}
	/* Probes and scrapers send origin-form; the admin endpoint takes no
	 * absolute-form target, which the proxy's front serves. */
	if (http_request_authority(&h, &auth, &host_differs)) {
		admin_respond_error(c, 400, "absolute_form");
		return;
	}
	/* Spans point into the input buffer: answer before draining it. */
	admin_request(c, &h);
}

static void
admin_conn_write(struct bufferevent *bev, void *arg)
{
	struct admin_conn *c = arg;

	if (c->state != ADMIN_WRITING || evbuffer_get_length(bufferevent_get_output(bev)) > 0)
		return;
	/*
	 * All sent.  Closing now could reset the connection over bytes the
	 * peer sent that we never read and make it lose the response; so shut
	 * our side and read (and drop) until its EOF, under the linger timer.
	 */
	c->state = ADMIN_LINGER;
	if (shutdown(bufferevent_getfd(bev), SHUT_WR) != 0) {
		admin_conn_free(c);
		return;
	}
	evbuffer_drain(bufferevent_get_input(bev), evbuffer_get_length(bufferevent_get_input(bev)));
	bufferevent_disable(bev, EV_WRITE);
	bufferevent_enable(bev, EV_READ);
	admin_arm(c, ADMIN_LINGER_MS);
}

static void
admin_conn_event(struct bufferevent *bev, short what, void *arg)
{
	struct admin_conn *c = arg;

	(void)bev;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		admin_conn_free(c);
}

static void
admin_conn_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct admin_conn *c = arg;

	(void)fd;
	(void)what;
	if (c->state == ADMIN_READING)
		admin_respond_error(c, 408, "header_timeout");
	else
		admin_conn_free(c);
}

/* Over the connection limit: a best-effort 503, without blocking, and close. */
static void
admin_refuse(evutil_socket_t fd)
{
	static const char resp[] = "HTTP/1.1 503 Service Unavailable\r\n"
	    "Content-Type: " TEXT_CONTENT_TYPE "\r\nContent-Length: 20\r\n"
	    "Connection: close\r\n\r\ntoo many connections";
	ssize_t n;

	n = send(fd, resp, sizeof(resp) - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
	(void)n;
	evutil_closesocket(fd);
}

static void
admin_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
    void *arg)
{
	struct cg_admin *a = arg;
	struct admin_conn *c;

	(void)l;
	(void)sa;
	(void)salen;
	if (a->nconns >= ADMIN_MAX_CONNS) {
		cg_debug("msg=admin_refused reason=too_many_connections");
		admin_refuse(fd);
		return;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		evutil_closesocket(fd);
		return;
	}
	c->admin = a;
	c->state = ADMIN_READING;
	TAILQ_INSERT_TAIL(&a->conns, c, link);
	a->nconns++;
	if ((c->bev = bufferevent_socket_new(a->base, fd, BEV_OPT_CLOSE_ON_FREE)) == NULL) {
		evutil_closesocket(fd);
		admin_conn_free(c);
		return;
	}
	if ((c->timer = evtimer_new(a->base, admin_conn_timeout, c)) == NULL) {
		admin_conn_free(c);
		return;
	}
	bufferevent_setcb(c->bev, admin_conn_read, admin_conn_write, admin_conn_event, c);
	/* One more byte than the limit, so that an oversized head is seen. */
	bufferevent_setwatermark(c->bev, EV_READ, 0, ADMIN_MAX_HEAD + 1);
	bufferevent_enable(c->bev, EV_READ);
	admin_arm(c, a->header_timeout_ms);
}

static void
admin_accept_retry(evutil_socket_t fd, short what, void *arg)
{
	struct cg_admin *a = arg;

	(void)fd;
	(void)what;
	evconnlistener_enable(a->listener);
}

/* accept() failed (EMFILE, ENFILE, ENOBUFS...): pause instead of spinning. */
static void
admin_accept_error(struct evconnlistener *l, void *arg)
{
	struct cg_admin *a = arg;
	struct timeval tv = { ADMIN_ACCEPT_RETRY_MS / 1000, (ADMIN_ACCEPT_RETRY_MS % 1000) * 1000 };
	const char *why = evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR());
	char q[96];

	cg_warn("msg=admin_accept_failed error=%s retry_ms=%d",
	    cg_log_quote(q, sizeof(q), why, strlen(why)), ADMIN_ACCEPT_RETRY_MS);
	evconnlistener_disable(l);
	evtimer_add(a->accept_retry, &tv);
}

int
admin_new(struct event_base *base, const char *host, int port, const struct admin_hooks *hooks,
    struct cg_admin **out, char *err, size_t errlen)
{
	struct addrinfo hints, *res = NULL;
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	struct cg_admin *a = NULL;
	char portstr[8];
	int r, e;

	*out = NULL;
	if (errlen > 0)
		err[0] = '\0';
	if (port < 0 || port > 65535) {
		snprintf(err, errlen, "admin port %d not in 0..65535", port);
		return CG_ERR_FORMAT;
	}
	if ((a = calloc(1, sizeof(*a))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return CG_ERR_NOMEM;
	}
	a->base = base;
	a->hooks = *hooks;
	a->header_timeout_ms = ADMIN_HEADER_TIMEOUT_MS;
	a->port = -1;
	TAILQ_INIT(&a->conns);

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV | AI_PASSIVE;
	snprintf(portstr, sizeof(portstr), "%d", port);
	if ((e = getaddrinfo(host, portstr, &hints, &res)) != 0) {
		snprintf(err, errlen, "admin: cannot resolve %s: %s", host, gai_strerror(e));
		r = CG_ERR_NOTFOUND;
		goto out;
	}
	if ((a->accept_retry = evtimer_new(base, admin_accept_retry, a)) == NULL) {
		snprintf(err, errlen, "out of memory");
		r = CG_ERR_NOMEM;
		goto out;
	}
	a->listener = evconnlistener_new_bind(base, admin_accept, a,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
	    ADMIN_BACKLOG, res->ai_addr, (int)res->ai_addrlen);
	if (a->listener == NULL) {
		e = errno;
		snprintf(err, errlen, "admin: cannot listen on %s:%d: %s", host, port, strerror(e));
		errno = e;
		r = CG_ERR_IO;
		goto out;
	}
	evconnlistener_set_error_cb(a->listener, admin_accept_error);
	if (getsockname(evconnlistener_get_fd(a->listener), (struct sockaddr *)&ss, &sslen) == 0) {
		if (ss.ss_family == AF_INET)
			a->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		else if (ss.ss_family == AF_INET6)
			a->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	}
	cg_info("msg=admin_listening addr=%s%s%s:%d", strchr(host, ':') ? "[" : "", host,
	    strchr(host, ':') ? "]" : "", a->port);
	*out = a;
	a = NULL;
	r = 0;
 out:
	if (res != NULL)
		freeaddrinfo(res);
	admin_free(a);
	return r;
}

int
admin_port(const struct cg_admin *a)
{
	return a->port;
}

size_t
admin_nconns(const struct cg_admin *a)
{
	return a->nconns;
}

void
admin_set_header_timeout(struct cg_admin *a, int64_t ms)
{
	a->header_timeout_ms = ms;
}

void
admin_free(struct cg_admin *a)
{
	struct admin_conn *c;

	if (a == NULL)
		return;
	while ((c = TAILQ_FIRST(&a->conns)) != NULL)
		admin_conn_free(c);
	if (a->listener != NULL)
		evconnlistener_free(a->listener);
	if (a->accept_retry != NULL)
		event_free(a->accept_retry);
	free(a);
}
