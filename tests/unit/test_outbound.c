/*
 * test_outbound.c: outbound requests through libcurl's multi interface on
 * a libevent base, against a small HTTP server that runs in the same base
 * on a loopback port and answers each case with canned bytes: what the
 * server receives (method, headers, body), statuses, bodies at and over
 * the limit, timeouts, refused connections, connections that break,
 * cancelled calls, clients freed with calls pending, two calls at once,
 * callbacks that start or cancel calls, refused URLs, and the server name
 * over plain HTTP and over TLS (certificate checks, SNI, a client
 * certificate), with a small PKI made at test time.
 */
#include "tests/unit/unit.h"

#include <sys/queue.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "common.h"
#include "common/outbound.h"

/* ------------------------------------------------------------------ */
/* The server                                                          */
/* ------------------------------------------------------------------ */

enum srv_mode {
	SRV_REPLY,	/* answer each request with T.reply */
	SRV_SILENT,	/* read requests, answer nothing */
	SRV_ECHO,	/* 200 whose body is the request target; see T.hold */
};

struct srv_conn {
	struct bufferevent *bev;
	bool close_after;	/* free once the output has drained */
	LIST_ENTRY(srv_conn) link;
};

struct held {
	struct srv_conn *sc;
	char target[64];
};

#define MAX_REQ 16

static struct {
	struct event_base *base;
	struct evconnlistener *lis;
	int port;
	int baseline_events;		/* the listener's, before any client */

	enum srv_mode mode;
	const char *reply;		/* SRV_REPLY */
	size_t reply_len;
	bool close_after;		/* close once the reply is out */
	size_t hold;			/* SRV_ECHO: answer when this many wait */
	struct held held[4];
	size_t nheld;

	char *req[MAX_REQ];		/* every request received, whole */
	size_t req_len[MAX_REQ];
	size_t nreq;
	size_t naccepted;
	size_t neof;			/* connections the client closed */
	LIST_HEAD(, srv_conn) conns;

	SSL_CTX *tls;			/* not NULL: the server speaks TLS */
	char sni[64];			/* what the last TLS request came with */
	char peer_cn[64];

	struct ob_client *c;
	bool in_request;		/* inside ob_request() */
	size_t ncb;			/* callbacks, all calls */
} T;

static void
srv_conn_free(struct srv_conn *sc)
{
	LIST_REMOVE(sc, link);
	bufferevent_free(sc->bev);
	free(sc);
}

static void
srv_write(struct srv_conn *sc, const char *p, size_t n)
{
	assert_int_equal(bufferevent_write(sc->bev, p, n), 0);
}

static void
srv_echo(struct srv_conn *sc, const char *target)
{
	char buf[256];
	int n;

	n = snprintf(buf, sizeof(buf), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n%s",
	    strlen(target), target);
	srv_write(sc, buf, (size_t)n);
}

/* The value of Content-Length in the header block hdr (NUL-terminated), or 0. */
static size_t
srv_content_length(const char *hdr)
{
	const char *p;

	for (p = strstr(hdr, "\r\n"); p != NULL; p = strstr(p + 2, "\r\n")) {
		if (strncasecmp(p + 2, "Content-Length:", 15) == 0)
			return (size_t)strtoul(p + 17, NULL, 10);
	}
	return 0;
}

/* One whole request, recorded and answered. */
static void
srv_request(struct srv_conn *sc, char *req, size_t len)
{
	const char *sp, *sp2;
	struct held *h;

	SSL *ssl = bufferevent_openssl_get_ssl(sc->bev);
	const char *sni;
	X509 *peer;

	if (ssl != NULL) {
		sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
		snprintf(T.sni, sizeof(T.sni), "%s", sni != NULL ? sni : "");
		T.peer_cn[0] = '\0';
		if ((peer = SSL_get0_peer_certificate(ssl)) != NULL)
			(void)X509_NAME_get_text_by_NID(X509_get_subject_name(peer),
			    NID_commonName, T.peer_cn, sizeof(T.peer_cn));
	}
	assert_true(T.nreq < MAX_REQ);
	T.req[T.nreq] = req;
	T.req_len[T.nreq] = len;
	T.nreq++;
	switch (T.mode) {
	case SRV_REPLY:
		srv_write(sc, T.reply, T.reply_len);
		sc->close_after = T.close_after;
		break;
	case SRV_SILENT:
		break;
	case SRV_ECHO:
		assert_true(T.nheld < CG_ARRAY_LEN(T.held));
		h = &T.held[T.nheld++];
		h->sc = sc;
		assert_non_null(sp = strchr(req, ' '));
		assert_non_null(sp2 = strchr(sp + 1, ' '));
		assert_true((size_t)(sp2 - sp - 1) < sizeof(h->target));
		memcpy(h->target, sp + 1, (size_t)(sp2 - sp - 1));
		h->target[sp2 - sp - 1] = '\0';
		/* Last in, first answered: each answer must find its own call. */
		if (T.nheld >= T.hold) {
			while (T.nheld > 0) {
				h = &T.held[--T.nheld];
				srv_echo(h->sc, h->target);
			}
		}
		break;
	}
}

static void
srv_read_cb(struct bufferevent *bev, void *arg)
{
	struct srv_conn *sc = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct evbuffer_ptr end;
	size_t hlen, total;
	char *req;

	for (;;) {
		end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
		if (end.pos < 0)
			return;
		hlen = (size_t)end.pos + 4;
		assert_non_null(req = malloc(hlen + 1));
		assert_int_equal(evbuffer_copyout(in, req, hlen), (ev_ssize_t)hlen);
		req[hlen] = '\0';
		total = hlen + srv_content_length(req);
		free(req);
		if (evbuffer_get_length(in) < total)
			return;
		assert_non_null(req = malloc(total + 1));
		assert_int_equal(evbuffer_remove(in, req, total), (int)total);
		req[total] = '\0';
		srv_request(sc, req, total);
		if (sc->close_after) {
			if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
				srv_conn_free(sc);
			return;
		}
	}
}

static void
srv_write_cb(struct bufferevent *bev, void *arg)
{
	struct srv_conn *sc = arg;

	if (sc->close_after && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		srv_conn_free(sc);
}

static void
srv_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct srv_conn *sc = arg;

	(void)bev;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		T.neof++;
		srv_conn_free(sc);
	}
}

static void
srv_accept_cb(struct evconnlistener *lis, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	struct srv_conn *sc;

	(void)lis;
	(void)sa;
	(void)salen;
	(void)arg;
	SSL *ssl;

	assert_non_null(sc = calloc(1, sizeof(*sc)));
	if (T.tls != NULL) {
		assert_non_null(ssl = SSL_new(T.tls));
		/* Frees ssl too, and closes fd, when it fails. */
		sc->bev = bufferevent_openssl_socket_new(T.base, fd, ssl,
		    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
		assert_non_null(sc->bev);
		bufferevent_openssl_set_allow_dirty_shutdown(sc->bev, 1);
	} else
		assert_non_null(sc->bev = bufferevent_socket_new(T.base, fd,
		    BEV_OPT_CLOSE_ON_FREE));
	bufferevent_setcb(sc->bev, srv_read_cb, srv_write_cb, srv_event_cb, sc);
	assert_int_equal(bufferevent_enable(sc->bev, EV_READ | EV_WRITE), 0);
	LIST_INSERT_HEAD(&T.conns, sc, link);
	T.naccepted++;
}

static void
srv_reply(const char *reply, size_t len, bool close_after)
{
	T.mode = SRV_REPLY;
	T.reply = reply;
	T.reply_len = len;
	T.close_after = close_after;
}

#define SRV_REPLY_STR(s) srv_reply((s), sizeof(s) - 1, false)

/* ------------------------------------------------------------------ */
/* The loop                                                            */
/* ------------------------------------------------------------------ */

static void
guard_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	*(bool *)arg = true;
}

/*
 * Runs the loop until *n reaches want (n NULL: until ms pass).  False when
 * ms passed first.
 */
static bool
run_until(const size_t *n, size_t want, int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	struct event *g;
	bool fired = false;

	assert_non_null(g = evtimer_new(T.base, guard_cb, &fired));
	assert_int_equal(evtimer_add(g, &tv), 0);
	while (!fired && (n == NULL || *n < want))
		assert_int_not_equal(event_base_loop(T.base, EVLOOP_ONCE), -1);
	event_free(g);
	return n == NULL || *n >= want;
}

static void
run_for(int ms)
{
	(void)run_until(NULL, 0, ms);
}

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------ */
/* The client                                                          */
/* ------------------------------------------------------------------ */

/* What one call's callback saw. */
struct res {
	size_t n;		/* times called */
	bool in_request;	/* called from inside ob_request() */
	enum ob_fail fail;
	long status;
	char *body;		/* a copy */
	size_t body_len;
	bool nul;		/* body[body_len] == '\0' */
	bool secure;		/* body in the secure pool */
	const char *body_at;	/* where it was, to look after the callback */
	char *error;		/* a copy, or NULL */
	char *cache_control;	/* copies, or NULL */
	char *location;
};

static void
res_clear(struct res *x)
{
	free(x->body);
	free(x->error);
	free(x->cache_control);
	free(x->location);
	memset(x, 0, sizeof(*x));
}

static void
on_response(const struct ob_response *r, void *arg)
{
	struct res *x = arg;

	x->n++;
	T.ncb++;
	x->in_request = T.in_request;
	x->fail = r->fail;
	x->status = r->status;
	free(x->body);
	x->body = malloc(r->body_len + 1);
	assert_non_null(x->body);
	memcpy(x->body, r->body, r->body_len);
	x->body[r->body_len] = '\0';
	x->body_len = r->body_len;
	x->nul = r->body[r->body_len] == '\0';
	x->secure = secmem_owns(r->body);
	x->body_at = r->body;
	free(x->error);
	x->error = r->error != NULL ? strdup(r->error) : NULL;
	free(x->cache_control);
	x->cache_control = r->cache_control != NULL ? strdup(r->cache_control) : NULL;
	free(x->location);
	x->location = r->location != NULL ? strdup(r->location) : NULL;
}

static const struct ob_client_opts default_opts = {
	.connect_timeout_ms = 1000,
	.timeout_ms = 2000,
	.max_response = 64 * 1024,
};

static void
client_new(const struct ob_client_opts *o)
{
	ob_client_free(T.c);
	T.c = NULL;
	assert_int_equal(ob_client_new(T.base, o, &T.c), 0);
	assert_non_null(T.c);
}

/* Starts method on url with headers and body; ob_request()'s result. */
static int
start_url(const char *method, const char *url, const char *const *headers, size_t nh,
    const char *body, size_t blen, struct res *x, struct ob_call **call)
{
	struct ob_request rq;
	int r;

	memset(&rq, 0, sizeof(rq));
	rq.method = method;
	rq.url = url;
	rq.headers = headers;
	rq.nheaders = nh;
	rq.body = body;
	rq.body_len = blen;
	T.in_request = true;
	r = ob_request(T.c, &rq, on_response, x, call);
	T.in_request = false;
	return r;
}

/* The same on path of the test server. */
static int
start(const char *method, const char *path, const char *const *headers, size_t nh,
    const char *body, size_t blen, struct res *x, struct ob_call **call)
{
	char url[256];

	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", T.port, path);
	return start_url(method, url, headers, nh, body, blen, x, call);
}

/* A GET of path that must start, and its callback, which must come. */
static void
get(const char *path, struct res *x)
{
	size_t before = T.ncb;

	assert_int_equal(start("GET", path, NULL, 0, NULL, 0, x, NULL), 0);
	assert_int_equal(x->n, 0);
	assert_true(run_until(&T.ncb, before + 1, 2500));
	assert_int_equal(x->n, 1);
	assert_false(x->in_request);
	assert_int_equal(ob_client_pending(T.c), 0);
}

/* ------------------------------------------------------------------ */
/* Looking at what the server received                                 */
/* ------------------------------------------------------------------ */

/* The body of request i: what follows the header block. */
static const char *
req_body(size_t i, size_t *len)
{
	const char *e;

	assert_true(i < T.nreq);
	assert_non_null(e = strstr(T.req[i], "\r\n\r\n"));
	*len = T.req_len[i] - (size_t)(e + 4 - T.req[i]);
	return e + 4;
}

/* How many header lines of request i are named name. */
static int
req_count(size_t i, const char *name)
{
	const char *p, *end;
	size_t n = strlen(name);
	int count = 0;

	assert_true(i < T.nreq);
	end = strstr(T.req[i], "\r\n\r\n");
	for (p = strstr(T.req[i], "\r\n"); p != NULL && p < end; p = strstr(p + 2, "\r\n")) {
		if (strncasecmp(p + 2, name, n) == 0 && p[2 + n] == ':')
			count++;
	}
	return count;
}

/* Whether request i has the header line exactly. */
static bool
req_has_line(size_t i, const char *line)
{
	char buf[512];
	const char *end;

	assert_true(i < T.nreq);
	snprintf(buf, sizeof(buf), "\r\n%s\r\n", line);
	end = strstr(T.req[i], "\r\n\r\n");
	return strstr(T.req[i], buf) != NULL && strstr(T.req[i], buf) <= end;
}

/* Whether request i starts with the request line method target. */
static bool
req_is(size_t i, const char *method, const char *target)
{
	char buf[512];

	assert_true(i < T.nreq);
	snprintf(buf, sizeof(buf), "%s %s HTTP/1.1\r\n", method, target);
	return strncmp(T.req[i], buf, strlen(buf)) == 0;
}

/* ------------------------------------------------------------------ */
/* Set-up                                                              */
/* ------------------------------------------------------------------ */

static int
setup(void **state)
{
	struct sockaddr_in sin;
	socklen_t slen = sizeof(sin);

	(void)state;
	memset(&T, 0, sizeof(T));
	LIST_INIT(&T.conns);
	if ((T.base = event_base_new()) == NULL)
		return -1;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((T.lis = evconnlistener_new_bind(T.base, srv_accept_cb, NULL,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 16, (struct sockaddr *)&sin,
	    sizeof(sin))) == NULL)
		return -1;
	if (getsockname(evconnlistener_get_fd(T.lis), (struct sockaddr *)&sin, &slen) != 0)
		return -1;
	T.port = ntohs(sin.sin_port);
	T.baseline_events = event_base_get_num_events(T.base, EVENT_BASE_COUNT_ADDED);
	return ob_client_new(T.base, &default_opts, &T.c) == 0 ? 0 : -1;
}

static int
teardown(void **state)
{
	size_t i;

	(void)state;
	ob_client_free(T.c);
	while (!LIST_EMPTY(&T.conns))
		srv_conn_free(LIST_FIRST(&T.conns));
	evconnlistener_free(T.lis);
	SSL_CTX_free(T.tls);
	for (i = 0; i < T.nreq; i++)
		free(T.req[i]);
	event_base_free(T.base);
	memset(&T, 0, sizeof(T));
	return 0;
}

/* ------------------------------------------------------------------ */
/* Tests                                                               */
/* ------------------------------------------------------------------ */

/* A 200 with a body (a NUL inside: body_len, not strlen, counts). */
static void
test_get_200(void **state)
{
	static const char reply[] =
	    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n"
	    "{\"a\":\"b\0c\"}\n";
	struct ob_call *call = NULL;
	struct res x = { 0 };
	size_t used0, used, i, blen;
	char host[64];

	(void)state;
	SRV_REPLY_STR(reply);
	secmem_stats(&used0, NULL);
	assert_int_equal(start("GET", "/v1/secret/data/db?version=2", NULL, 0, NULL, 0, &x,
	    &call), 0);
	assert_non_null(call);
	/* Never from inside ob_request(): the loop has not run yet. */
	assert_int_equal(x.n, 0);
	assert_int_equal(ob_client_pending(T.c), 1);
	assert_true(run_until(&T.ncb, 1, 2500));
	/* Once, and not again however long the loop runs. */
	run_for(50);
	assert_int_equal(x.n, 1);
	assert_false(x.in_request);
	assert_int_equal(ob_client_pending(T.c), 0);
	assert_int_equal(x.fail, OB_OK);
	assert_int_equal(x.status, 200);
	assert_null(x.error);
	assert_int_equal(x.body_len, 12);
	assert_memory_equal(x.body, "{\"a\":\"b\0c\"}\n", 12);
	assert_true(x.nul);
	assert_true(x.secure);
	/* Wiped once the callback returned, and the secure pool is back. */
	for (i = 0; i < x.body_len; i++)
		assert_int_equal(x.body_at[i], 0);
	secmem_stats(&used, NULL);
	assert_int_equal(used, used0);

	/* A GET carries no body, and says none. */
	assert_int_equal(T.nreq, 1);
	assert_true(req_is(0, "GET", "/v1/secret/data/db?version=2"));
	snprintf(host, sizeof(host), "Host: 127.0.0.1:%d", T.port);
	assert_true(req_has_line(0, host));
	(void)req_body(0, &blen);
	assert_int_equal(blen, 0);
	assert_int_equal(req_count(0, "Content-Length"), 0);
	assert_int_equal(req_count(0, "Transfer-Encoding"), 0);
	assert_int_equal(req_count(0, "Content-Type"), 0);
	assert_int_equal(req_count(0, "Expect"), 0);
	assert_null(x.cache_control);
	assert_null(x.location);
	res_clear(&x);
}

/* Cache-Control and Location of the response come back (the last one
 * when repeated); a redirect is not followed. */
static void
test_response_headers(void **state)
{
	static const char reply[] =
	    "HTTP/1.1 302 Found\r\nLocation: https://elsewhere.example/keys\r\n"
	    "cache-control: no-cache\r\nCache-Control: public, max-age=300\r\n"
	    "Content-Length: 0\r\n\r\n";
	struct res x = { 0 };

	(void)state;
	SRV_REPLY_STR(reply);
	assert_int_equal(start("GET", "/keys", NULL, 0, NULL, 0, &x, NULL), 0);
	assert_true(run_until(&T.ncb, 1, 2500));
	assert_int_equal(x.fail, OB_OK);
	assert_int_equal(x.status, 302);
	assert_non_null(x.cache_control);
	assert_string_equal(x.cache_control, "public, max-age=300");
	assert_non_null(x.location);
	assert_string_equal(x.location, "https://elsewhere.example/keys");
	assert_int_equal(T.nreq, 1);
	res_clear(&x);
}

/* Methods, headers and bodies reach the server exactly. */
static void
test_request_sent(void **state)
{
	static const struct {
		const char *method;
		const char *body;	/* NULL: none */
	} cases[] = {
		{ "PUT", "{\"lease_id\":\"db/creds/x\",\"increment\":60}" },
		{ "POST", "{\"role_id\":\"r\",\"secret_id\":\"s\"}" },
		{ "POST", "" },
		{ "LIST", NULL },
		{ "GET", NULL },
		{ "LIST", "{\"x\":1}" },
		{ "GET", "{\"x\":1}" },	/* still a GET */
	};
	char hdr_token[64], hdr_other[64], body[128], url[128], cl[64];
	const char *headers[2] = { hdr_token, hdr_other };
	struct res x = { 0 };
	const char *got;
	size_t i, glen, blen;

	(void)state;
	SRV_REPLY_STR("HTTP/1.1 204 No Content\r\n\r\n");
	for (i = 0; i < CG_ARRAY_LEN(cases); i++) {
		/* Every pointer of the request is read during ob_request() only. */
		snprintf(hdr_token, sizeof(hdr_token), "X-Vault-Token: abc");
		snprintf(hdr_other, sizeof(hdr_other), "X-Vault-Request: true");
		snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/path/%zu", T.port, i);
		blen = 0;
		if (cases[i].body != NULL) {
			blen = strlen(cases[i].body);
			memcpy(body, cases[i].body, blen + 1);
		}
		assert_int_equal(start_url(cases[i].method, url, headers, 2,
		    cases[i].body != NULL ? body : NULL, blen, &x, NULL), 0);
		memset(hdr_token, 'Z', sizeof(hdr_token) - 1);
		memset(hdr_other, 'Z', sizeof(hdr_other) - 1);
		memset(url, 'Z', sizeof(url) - 1);
		memset(body, 'Z', sizeof(body) - 1);
		assert_true(run_until(&T.ncb, i + 1, 2500));
		assert_int_equal(x.fail, OB_OK);
		assert_int_equal(x.status, 204);
		assert_int_equal(x.body_len, 0);
		assert_true(x.nul);

		assert_int_equal(T.nreq, i + 1);
		snprintf(url, sizeof(url), "/v1/path/%zu", i);
		assert_true(req_is(i, cases[i].method, url));
		assert_true(req_has_line(i, "X-Vault-Token: abc"));
		assert_true(req_has_line(i, "X-Vault-Request: true"));
		assert_int_equal(req_count(i, "X-Vault-Token"), 1);
		assert_int_equal(req_count(i, "Expect"), 0);
		got = req_body(i, &glen);
		if (cases[i].body == NULL) {
			assert_int_equal(glen, 0);
			assert_int_equal(req_count(i, "Content-Length"), 0);
			assert_int_equal(req_count(i, "Content-Type"), 0);
		} else {
			assert_int_equal(glen, blen);
			assert_memory_equal(got, cases[i].body, blen);
			snprintf(cl, sizeof(cl), "Content-Length: %zu", blen);
			assert_true(req_has_line(i, cl));
			assert_true(req_has_line(i, "Content-Type: application/json"));
			assert_int_equal(req_count(i, "Content-Type"), 1);
		}
		assert_int_equal(req_count(i, "Transfer-Encoding"), 0);
	}
	res_clear(&x);
}

/* An HTTP error status is an answer, not a failure: status and body. */
static void
test_error_status(void **state)
{
	static const struct {
		const char *reply;
		long status;
		const char *body;
	} cases[] = {
		{ "HTTP/1.1 404 Not Found\r\nContent-Length: 13\r\n\r\n{\"errors\":[]}",
		  404, "{\"errors\":[]}" },
		{ "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 23\r\n\r\n"
		  "{\"errors\":[\"sealed\"]}\r\n", 503, "{\"errors\":[\"sealed\"]}\r\n" },
	};
	struct res x = { 0 };
	size_t i;

	(void)state;
	for (i = 0; i < CG_ARRAY_LEN(cases); i++) {
		srv_reply(cases[i].reply, strlen(cases[i].reply), false);
		get("/v1/x", &x);
		assert_int_equal(x.fail, OB_OK);
		assert_int_equal(x.status, cases[i].status);
		assert_null(x.error);
		assert_int_equal(x.body_len, strlen(cases[i].body));
		assert_string_equal(x.body, cases[i].body);
		assert_true(x.nul);
		assert_true(x.secure);
		res_clear(&x);
	}
}

/* max_response bytes are fine, one more is not; across libcurl's chunks. */
static void
test_max_response(void **state)
{
	static const struct {
		size_t max, len;
		enum ob_fail fail;
	} cases[] = {
		{ 64, 64, OB_OK },
		{ 64, 65, OB_TOO_LARGE },
		{ 64, 0, OB_OK },
		{ 40000, 40000, OB_OK },
		{ 40000, 40001, OB_TOO_LARGE },
		{ 40000, 100000, OB_TOO_LARGE },
	};
	struct ob_client_opts o = default_opts;
	struct res x = { 0 };
	char *reply, *body;
	size_t i, j, n;
	int h;

	(void)state;
	for (i = 0; i < CG_ARRAY_LEN(cases); i++) {
		o.max_response = cases[i].max;
		client_new(&o);
		assert_non_null(reply = malloc(cases[i].len + 100));
		h = snprintf(reply, 100, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n",
		    cases[i].len);
		body = reply + h;
		for (j = 0; j < cases[i].len; j++)
			body[j] = (char)('a' + j % 26);
		n = (size_t)h + cases[i].len;
		srv_reply(reply, n, false);
		get("/big", &x);
		assert_int_equal(x.fail, cases[i].fail);
		if (cases[i].fail == OB_OK) {
			assert_int_equal(x.status, 200);
			assert_int_equal(x.body_len, cases[i].len);
			assert_memory_equal(x.body, body, cases[i].len);
			assert_true(x.nul);
		} else {
			assert_non_null(x.error);
			assert_true(x.body_len <= cases[i].max);
		}
		free(reply);
		res_clear(&x);
	}
}

/* A server that never answers: OB_TIMEOUT after about timeout_ms. */
static void
test_timeout(void **state)
{
	struct ob_client_opts o = default_opts;
	struct res x = { 0 };
	int64_t t0, took;

	(void)state;
	o.timeout_ms = 300;
	client_new(&o);
	T.mode = SRV_SILENT;
	t0 = now_ms();
	get("/v1/slow", &x);
	took = now_ms() - t0;
	assert_int_equal(T.nreq, 1);
	assert_int_equal(x.fail, OB_TIMEOUT);
	assert_non_null(x.error);
	assert_true(took >= 290);
	assert_true(took < 2000);
	res_clear(&x);
}

/* Nothing listens on the port: OB_CONNECT. */
static void
test_connect_refused(void **state)
{
	struct sockaddr_in sin;
	socklen_t slen = sizeof(sin);
	struct res x = { 0 };
	char url[64];
	int fd;

	(void)state;
	assert_true((fd = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &slen), 0);
	close(fd);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/x", ntohs(sin.sin_port));
	assert_int_equal(start_url("GET", url, NULL, 0, NULL, 0, &x, NULL), 0);
	assert_int_equal(x.n, 0);
	assert_true(run_until(&T.ncb, 1, 2500));
	assert_false(x.in_request);
	assert_int_equal(x.fail, OB_CONNECT);
	assert_non_null(x.error);
	assert_int_equal(x.body_len, 0);
	assert_true(x.nul);
	assert_int_equal(ob_client_pending(T.c), 0);
	res_clear(&x);
}

/* The server closes before the answer is whole: a failure, OB_TRANSFER. */
static void
test_broken_answer(void **state)
{
	static const char *const replies[] = {
		"",
		"HTTP/1.1 200",
		"HTTP/1.1 200 OK\r\n",
		"HTTP/1.1 200 OK\r\nContent-Le",
		"HTTP/1.1 200 OK\r\nX-Vault-Index: 1\r\n",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"data\":",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\n",
	};
	static const char whole[] = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{\"a\":1}";
	struct res x = { 0 };
	size_t i;

	(void)state;
	for (i = 0; i < CG_ARRAY_LEN(replies); i++) {
		client_new(&default_opts);
		srv_reply(replies[i], strlen(replies[i]), true);
		get("/v1/x", &x);
		if (x.fail != OB_TRANSFER)
			fail_msg("reply %zu: %d (status %ld), not OB_TRANSFER", i,
			    (int)x.fail, x.status);
		assert_non_null(x.error);
		assert_true(x.nul);
		res_clear(&x);
	}
	/* But a whole header and a body that ends with the connection are fine. */
	client_new(&default_opts);
	srv_reply(whole, sizeof(whole) - 1, true);
	get("/v1/x", &x);
	assert_int_equal(x.fail, OB_OK);
	assert_int_equal(x.status, 200);
	assert_string_equal(x.body, "{\"a\":1}");
	res_clear(&x);
}

/* A cancelled call has no callback, and its connection is closed. */
static void
test_cancel(void **state)
{
	struct ob_call *call;
	struct res x = { 0 };

	(void)state;
	ob_call_cancel(NULL);

	/* Before the request was even sent. */
	SRV_REPLY_STR("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
	assert_int_equal(start("GET", "/v1/a", NULL, 0, NULL, 0, &x, &call), 0);
	assert_non_null(call);
	ob_call_cancel(call);
	assert_int_equal(ob_client_pending(T.c), 0);
	run_for(100);
	assert_int_equal(x.n, 0);
	assert_int_equal(T.nreq, 0);

	/* The server has the request, and its answer is on the way. */
	assert_int_equal(start("PUT", "/v1/b", NULL, 0, "{}", 2, &x, &call), 0);
	assert_true(run_until(&T.nreq, 1, 2500));
	assert_int_equal(ob_client_pending(T.c), 1);
	ob_call_cancel(call);
	assert_int_equal(ob_client_pending(T.c), 0);
	assert_true(run_until(&T.neof, 1, 2500));
	run_for(100);
	assert_int_equal(x.n, 0);
	assert_int_equal(T.ncb, 0);

	/* The client still works. */
	get("/v1/c", &x);
	assert_int_equal(x.fail, OB_OK);
	assert_string_equal(x.body, "ok");
	res_clear(&x);
}

/* A client freed with calls pending: no callbacks, nothing left behind. */
static void
test_free_pending(void **state)
{
	struct res x[3] = { { 0 } };
	size_t i;

	(void)state;
	T.mode = SRV_SILENT;
	/* Two the server holds, one not yet sent. */
	assert_int_equal(start("GET", "/v1/a", NULL, 0, NULL, 0, &x[0], NULL), 0);
	assert_int_equal(start("PUT", "/v1/b", NULL, 0, "{}", 2, &x[1], NULL), 0);
	assert_true(run_until(&T.nreq, 2, 2500));
	assert_int_equal(start("GET", "/v1/c", NULL, 0, NULL, 0, &x[2], NULL), 0);
	assert_int_equal(ob_client_pending(T.c), 3);
	ob_client_free(T.c);
	T.c = NULL;
	assert_true(run_until(&T.neof, T.naccepted, 2500));
	run_for(50);
	assert_int_equal(T.ncb, 0);
	for (i = 0; i < CG_ARRAY_LEN(x); i++)
		assert_int_equal(x[i].n, 0);
	/* No socket event or timer of the client remains on the base. */
	assert_int_equal(event_base_get_num_events(T.base, EVENT_BASE_COUNT_ADDED),
	    T.baseline_events);
	ob_client_free(NULL);

	/* And a client that never ran the loop. */
	client_new(&default_opts);
	assert_int_equal(start("GET", "/v1/d", NULL, 0, NULL, 0, &x[0], NULL), 0);
	ob_client_free(T.c);
	T.c = NULL;
	run_for(50);
	assert_int_equal(T.ncb, 0);
	assert_int_equal(event_base_get_num_events(T.base, EVENT_BASE_COUNT_ADDED),
	    T.baseline_events);
}

/*
 * Two calls in flight at once, answered in the other order; then two more
 * on the same connections: each body reaches its own call.
 */
static void
test_two_in_flight(void **state)
{
	static const char *const paths[][2] = {
		{ "/v1/first", "/v1/second" },
		{ "/v1/third", "/v1/fourth-longer" },
	};
	struct res x[2] = { { 0 } };
	size_t round, i;

	(void)state;
	T.mode = SRV_ECHO;
	T.hold = 2;
	for (round = 0; round < CG_ARRAY_LEN(paths); round++) {
		for (i = 0; i < 2; i++)
			assert_int_equal(start("GET", paths[round][i], NULL, 0, NULL, 0, &x[i],
			    NULL), 0);
		assert_int_equal(ob_client_pending(T.c), 2);
		assert_true(run_until(&T.ncb, 2 * (round + 1), 2500));
		for (i = 0; i < 2; i++) {
			assert_int_equal(x[i].n, 1);
			assert_int_equal(x[i].fail, OB_OK);
			assert_int_equal(x[i].status, 200);
			assert_string_equal(x[i].body, paths[round][i]);
			res_clear(&x[i]);
		}
		assert_int_equal(ob_client_pending(T.c), 0);
	}
	/* Kept alive and used again. */
	assert_int_equal(T.naccepted, 2);
	/* Freeing the client closes them and takes their events off the base. */
	ob_client_free(T.c);
	T.c = NULL;
	assert_true(run_until(&T.neof, 2, 2500));
	assert_int_equal(event_base_get_num_events(T.base, EVENT_BASE_COUNT_ADDED),
	    T.baseline_events);
}

/* A callback may start the next call. */
static struct res chain_x;

static void
on_chain(const struct ob_response *r, void *arg)
{
	on_response(r, arg);
	assert_int_equal(start("GET", "/v1/next", NULL, 0, NULL, 0, &chain_x, NULL), 0);
	assert_int_equal(chain_x.n, 0);
}

/* A callback may cancel another call, even one that has ended too. */
static struct ob_call *other_call;

static void
on_cancel_other(const struct ob_response *r, void *arg)
{
	on_response(r, arg);
	ob_call_cancel(other_call);
	other_call = NULL;
}

static void
test_callback_cancels_other(void **state)
{
	struct ob_client_opts o = default_opts;
	struct ob_request rq;
	struct res x = { 0 }, y = { 0 };
	char url[64];

	(void)state;
	/* Both time out on the same tick of libcurl's timer. */
	o.timeout_ms = 200;
	client_new(&o);
	T.mode = SRV_SILENT;
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/a", T.port);
	memset(&rq, 0, sizeof(rq));
	rq.method = "GET";
	rq.url = url;
	assert_int_equal(ob_request(T.c, &rq, on_cancel_other, &x, NULL), 0);
	assert_int_equal(start("GET", "/v1/b", NULL, 0, NULL, 0, &y, &other_call), 0);
	assert_true(run_until(&T.ncb, 1, 2500));
	run_for(100);
	assert_int_equal(x.n, 1);
	assert_int_equal(x.fail, OB_TIMEOUT);
	assert_int_equal(y.n, 0);
	assert_null(other_call);
	assert_int_equal(ob_client_pending(T.c), 0);
	res_clear(&x);
}

/* A callback may free the whole client, other calls pending with it. */
static void
on_free_client(const struct ob_response *r, void *arg)
{
	on_response(r, arg);
	ob_client_free(T.c);
	T.c = NULL;
}

static void
test_callback_frees_client(void **state)
{
	struct ob_request rq;
	struct res x = { 0 }, y = { 0 };
	char url[64];

	(void)state;
	/* y's request is at the server, unanswered; x's is answered. */
	T.mode = SRV_SILENT;
	assert_int_equal(start("GET", "/v1/y", NULL, 0, NULL, 0, &y, NULL), 0);
	assert_true(run_until(&T.nreq, 1, 2500));
	SRV_REPLY_STR("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/x", T.port);
	memset(&rq, 0, sizeof(rq));
	rq.method = "GET";
	rq.url = url;
	assert_int_equal(ob_request(T.c, &rq, on_free_client, &x, NULL), 0);
	assert_true(run_until(&T.ncb, 1, 2500));
	assert_null(T.c);
	assert_true(run_until(&T.neof, 2, 2500));
	run_for(50);
	assert_int_equal(x.n, 1);
	assert_int_equal(x.fail, OB_OK);
	assert_string_equal(x.body, "ok");
	assert_int_equal(y.n, 0);
	assert_int_equal(event_base_get_num_events(T.base, EVENT_BASE_COUNT_ADDED),
	    T.baseline_events);
	res_clear(&x);
}

static void
test_callback_starts_call(void **state)
{
	struct ob_request rq;
	struct res x = { 0 };
	char url[64];

	(void)state;
	T.mode = SRV_ECHO;
	T.hold = 1;
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/first", T.port);
	memset(&rq, 0, sizeof(rq));
	rq.method = "GET";
	rq.url = url;
	assert_int_equal(ob_request(T.c, &rq, on_chain, &x, NULL), 0);
	assert_true(run_until(&T.ncb, 2, 2500));
	assert_string_equal(x.body, "/v1/first");
	assert_int_equal(chain_x.n, 1);
	assert_false(chain_x.in_request);
	assert_string_equal(chain_x.body, "/v1/next");
	assert_int_equal(ob_client_pending(T.c), 0);
	res_clear(&x);
	res_clear(&chain_x);
}

/* s with PORT replaced by the server's port. */
static void
url_port(char *out, size_t size, const char *s)
{
	const char *p = strstr(s, "PORT");

	if (p == NULL)
		snprintf(out, size, "%s", s);
	else
		snprintf(out, size, "%.*s%d%s", (int)(p - s), s, T.port, p + 4);
}

/* URLs libcurl refuses: CG_ERR_FORMAT and no callback, with or without a
 * server name. */
static void
test_bad_url(void **state)
{
	static const char *const urls[] = {
		"",
		"ftp://127.0.0.1:PORT/v1/x",
		"file:///etc/passwd",
		"gopher://127.0.0.1:PORT/",
		"http://[::1/v1/x",
		"http://127.0.0.1:PORT/v1/a b",
		"http://127.0.0.1:99999/v1/x",
		"127.0.0.1:PORT/v1/x",
	};
	struct ob_client_opts o = default_opts;
	struct ob_call *call;
	struct res x = { 0 };
	char url[128];
	size_t i, pass;
	int r;

	(void)state;
	SRV_REPLY_STR("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
	for (pass = 0; pass < 2; pass++) {
		if (pass == 1) {
			o.server_name = "vault.example";
			client_new(&o);
		}
		for (i = 0; i < CG_ARRAY_LEN(urls); i++) {
			url_port(url, sizeof(url), urls[i]);
			call = (struct ob_call *)(uintptr_t)1;
			r = start_url("GET", url, NULL, 0, NULL, 0, &x, &call);
			if (r != CG_ERR_FORMAT)
				fail_msg("\"%s\": %d, not CG_ERR_FORMAT", url, r);
			assert_null(call);
			assert_int_equal(ob_client_pending(T.c), 0);
		}
		run_for(100);
		assert_int_equal(T.ncb, 0);
		assert_int_equal(T.nreq, 0);
	}
	/* The same client goes on working; a scheme's case does not matter. */
	url_port(url, sizeof(url), "HTTP://127.0.0.1:PORT/v1/ok");
	assert_int_equal(start_url("GET", url, NULL, 0, NULL, 0, &x, NULL), 0);
	assert_true(run_until(&T.ncb, 1, 2500));
	assert_int_equal(x.fail, OB_OK);
	assert_string_equal(x.body, "ok");
	assert_true(req_is(0, "GET", "/v1/ok"));
	res_clear(&x);
}

/* A method or a header line that would change the request's framing:
 * CG_ERR_FORMAT, nothing sent. */
static void
test_bad_request(void **state)
{
	static const struct {
		const char *method;
		const char *header;
	} cases[] = {
		{ "GET", "X-Vault-Token: abc\r\nX-Injected: 1" },
		{ "GET", "X-Vault-Token: abc\nX-Injected: 1" },
		{ "GET", "X-Vault-Token: abc\r" },
		{ "GET", "X-Vault-Token: abc\n" },
		{ "GET /v1/other HTTP/1.1\r\nX-Injected: 1\r\n\r\nGET", "X-A: 1" },
		{ "GET /v1/other", "X-A: 1" },
		{ "", "X-A: 1" },
		{ "list", "X-A: 1" },
	};
	struct ob_call *call;
	struct res x = { 0 };
	const char *h[2];
	size_t i;
	int r;

	(void)state;
	SRV_REPLY_STR("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
	h[0] = "X-Vault-Request: true";
	for (i = 0; i < CG_ARRAY_LEN(cases); i++) {
		h[1] = cases[i].header;
		call = (struct ob_call *)(uintptr_t)1;
		r = start(cases[i].method, "/v1/x", h, 2, "{}", 2, &x, &call);
		if (r != CG_ERR_FORMAT)
			fail_msg("case %zu: %d, not CG_ERR_FORMAT", i, r);
		assert_null(call);
		assert_int_equal(ob_client_pending(T.c), 0);
	}
	run_for(100);
	assert_int_equal(T.ncb, 0);
	assert_int_equal(T.nreq, 0);
	/* The same headers, each on its own, are fine. */
	h[1] = "X-Vault-Token: abc";
	assert_int_equal(start("LIST", "/v1/x", h, 2, NULL, 0, &x, NULL), 0);
	assert_true(run_until(&T.ncb, 1, 2500));
	assert_int_equal(x.fail, OB_OK);
	assert_true(req_is(0, "LIST", "/v1/x"));
	assert_true(req_has_line(0, "X-Vault-Token: abc"));
	res_clear(&x);
}

/*
 * A server name over plain HTTP: the connection still goes to the URL's
 * host and port, and the Host header carries the name.
 */
static void
test_server_name_http(void **state)
{
	struct ob_client_opts o = default_opts;
	const char *const headers[] = { "X-Vault-Token: abc" };
	struct res x = { 0 };
	char host[64], url[64];
	size_t blen;

	(void)state;
	o.server_name = "vault.example";
	client_new(&o);
	SRV_REPLY_STR("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/kv/x?list=true", T.port);
	assert_int_equal(start_url("PUT", url, headers, 1, "{}", 2, &x, NULL), 0);
	assert_true(run_until(&T.ncb, 1, 2500));
	assert_int_equal(x.fail, OB_OK);
	assert_int_equal(x.status, 200);
	assert_string_equal(x.body, "ok");
	assert_int_equal(T.nreq, 1);
	assert_true(req_is(0, "PUT", "/v1/kv/x?list=true"));
	snprintf(host, sizeof(host), "Host: vault.example:%d", T.port);
	assert_true(req_has_line(0, host));
	assert_int_equal(req_count(0, "Host"), 1);
	assert_true(req_has_line(0, "X-Vault-Token: abc"));
	assert_memory_equal(req_body(0, &blen), "{}", 2);
	assert_int_equal(blen, 2);
	res_clear(&x);
}

/* ------------------------------------------------------------------ */
/* TLS                                                                 */
/* ------------------------------------------------------------------ */

/* A CA, a server certificate for vault.example only, a client's. */
static struct {
	char dir[64];
	char ca[128], cli[128], cli_key[128];
	EVP_PKEY *ca_key, *srv_key, *cli_key_k;
	X509 *ca_cert, *srv_cert, *cli_cert;
} P;

static void
pki_ext(X509 *x, X509V3_CTX *v3, const char *name, const char *value)
{
	X509_EXTENSION *e;

	assert_non_null(e = X509V3_EXT_conf(NULL, v3, name, value));
	assert_int_equal(X509_add_ext(x, e, -1), 1);
	X509_EXTENSION_free(e);
}

/* A certificate for k named cn; signed by the CA, or by k itself as the CA
 * when san is NULL. */
static X509 *
pki_cert(EVP_PKEY *k, const char *cn, const char *san, const char *eku)
{
	static long serial = 1;
	X509 *x, *issuer;
	X509V3_CTX v3;

	assert_non_null(x = X509_new());
	assert_int_equal(X509_set_version(x, 2), 1);
	assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), serial++), 1);
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), -3600));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 3600));
	assert_int_equal(X509_set_pubkey(x, k), 1);
	assert_int_equal(X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN",
	    MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0), 1);
	issuer = san == NULL ? x : P.ca_cert;
	assert_int_equal(X509_set_issuer_name(x, X509_get_subject_name(issuer)), 1);
	X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
	pki_ext(x, &v3, "subjectKeyIdentifier", "hash");
	pki_ext(x, &v3, "authorityKeyIdentifier", "keyid:always");
	if (san == NULL) {
		pki_ext(x, &v3, "basicConstraints", "critical,CA:TRUE");
		pki_ext(x, &v3, "keyUsage", "critical,keyCertSign,cRLSign");
	} else {
		pki_ext(x, &v3, "basicConstraints", "critical,CA:FALSE");
		pki_ext(x, &v3, "keyUsage", "critical,digitalSignature");
		pki_ext(x, &v3, "extendedKeyUsage", eku);
		if (san[0] != '\0')
			pki_ext(x, &v3, "subjectAltName", san);
	}
	assert_true(X509_sign(x, san == NULL ? k : P.ca_key, EVP_sha256()) > 0);
	return x;
}

static void
pki_write(const char *path, X509 *x, EVP_PKEY *k)
{
	FILE *f;

	assert_non_null(f = fopen(path, "w"));
	if (x != NULL)
		assert_int_equal(PEM_write_X509(f, x), 1);
	if (k != NULL)
		assert_int_equal(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL), 1);
	assert_int_equal(fclose(f), 0);
}

static int
pki_setup(void **state)
{
	(void)state;
	snprintf(P.dir, sizeof(P.dir), "/tmp/test_outbound.XXXXXX");
	if (mkdtemp(P.dir) == NULL)
		return -1;
	snprintf(P.ca, sizeof(P.ca), "%s/ca.pem", P.dir);
	snprintf(P.cli, sizeof(P.cli), "%s/client.pem", P.dir);
	snprintf(P.cli_key, sizeof(P.cli_key), "%s/client.key", P.dir);
	P.ca_key = EVP_EC_gen("P-256");
	P.srv_key = EVP_EC_gen("P-256");
	P.cli_key_k = EVP_EC_gen("P-256");
	if (P.ca_key == NULL || P.srv_key == NULL || P.cli_key_k == NULL)
		return -1;
	P.ca_cert = pki_cert(P.ca_key, "test CA", NULL, NULL);
	P.srv_cert = pki_cert(P.srv_key, "vault.example", "DNS:vault.example", "serverAuth");
	P.cli_cert = pki_cert(P.cli_key_k, "credgate-client", "", "clientAuth");
	pki_write(P.ca, P.ca_cert, NULL);
	pki_write(P.cli, P.cli_cert, NULL);
	pki_write(P.cli_key, NULL, P.cli_key_k);
	return 0;
}

static int
pki_teardown(void **state)
{
	(void)state;
	(void)unlink(P.ca);
	(void)unlink(P.cli);
	(void)unlink(P.cli_key);
	(void)rmdir(P.dir);
	X509_free(P.ca_cert);
	X509_free(P.srv_cert);
	X509_free(P.cli_cert);
	EVP_PKEY_free(P.ca_key);
	EVP_PKEY_free(P.srv_key);
	EVP_PKEY_free(P.cli_key_k);
	memset(&P, 0, sizeof(P));
	return 0;
}

/* The test server speaks TLS as vault.example; with want_client, it asks
 * for a client certificate from the CA and refuses to go on without. */
static void
tls_server(bool want_client)
{
	SSL_CTX_free(T.tls);
	assert_non_null(T.tls = SSL_CTX_new(TLS_server_method()));
	assert_int_equal(SSL_CTX_use_certificate(T.tls, P.srv_cert), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(T.tls, P.srv_key), 1);
	if (want_client) {
		assert_int_equal(X509_STORE_add_cert(SSL_CTX_get_cert_store(T.tls), P.ca_cert), 1);
		SSL_CTX_set_verify(T.tls, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	}
}

/*
 * Over TLS the certificate is checked against the server name when one is
 * set, against the URL's host when not, and against the CA given; the
 * server name is the SNI and the Host, while the connection goes to the
 * URL's address.  A request goes out only over a verified connection.
 */
static void
test_tls_server_name(void **state)
{
	static const struct {
		bool ca;
		const char *server_name;
		enum ob_fail fail;
	} cases[] = {
		{ true, "vault.example", OB_OK },
		{ true, NULL, OB_CONNECT },		/* 127.0.0.1 is not in it */
		{ true, "other.example", OB_CONNECT },
		{ false, "vault.example", OB_CONNECT },	/* the system's CAs */
	};
	struct ob_client_opts o = default_opts;
	struct res x = { 0 };
	char url[64], host[64];
	size_t i, nreq;

	(void)state;
	tls_server(false);
	SRV_REPLY_STR("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
	snprintf(url, sizeof(url), "https://127.0.0.1:%d/v1/x", T.port);
	for (i = 0; i < CG_ARRAY_LEN(cases); i++) {
		o.ca_file = cases[i].ca ? P.ca : NULL;
		o.server_name = cases[i].server_name;
		client_new(&o);
		nreq = T.nreq;
		assert_int_equal(start_url("GET", url, NULL, 0, NULL, 0, &x, NULL), 0);
		assert_true(run_until(&T.ncb, i + 1, 2500));
		if (x.fail != cases[i].fail)
			fail_msg("case %zu: %d (%s), not %d", i, (int)x.fail,
			    x.error != NULL ? x.error : "-", (int)cases[i].fail);
		if (cases[i].fail != OB_OK) {
			assert_int_equal(T.nreq, nreq);
			assert_non_null(x.error);
		} else {
			assert_int_equal(T.nreq, nreq + 1);
			assert_int_equal(x.status, 200);
			assert_string_equal(x.body, "ok");
			assert_string_equal(T.sni, "vault.example");
			snprintf(host, sizeof(host), "Host: vault.example:%d", T.port);
			assert_true(req_has_line(nreq, host));
		}
		res_clear(&x);
	}
}

/* The client certificate and key are presented when the server asks. */
static void
test_tls_client_cert(void **state)
{
	struct ob_client_opts o = default_opts;
	struct res x = { 0 };
	char url[64];

	(void)state;
	tls_server(true);
	SRV_REPLY_STR("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
	snprintf(url, sizeof(url), "https://127.0.0.1:%d/v1/auth/cert/login", T.port);
	o.ca_file = P.ca;
	o.server_name = "vault.example";
	o.cert = P.cli;
	o.key = P.cli_key;
	client_new(&o);
	assert_int_equal(start_url("POST", url, NULL, 0, "{}", 2, &x, NULL), 0);
	assert_true(run_until(&T.ncb, 1, 2500));
	assert_int_equal(x.fail, OB_OK);
	assert_int_equal(x.status, 200);
	assert_int_equal(T.nreq, 1);
	assert_string_equal(T.peer_cn, "credgate-client");
	res_clear(&x);

	/* Without one the server refuses, and the request never arrives. */
	o.cert = NULL;
	o.key = NULL;
	client_new(&o);
	assert_int_equal(start_url("POST", url, NULL, 0, "{}", 2, &x, NULL), 0);
	assert_true(run_until(&T.ncb, 2, 2500));
	assert_int_not_equal(x.fail, OB_OK);
	assert_non_null(x.error);
	assert_int_equal(T.nreq, 1);
	res_clear(&x);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_response_headers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_get_200, setup, teardown),
		cmocka_unit_test_setup_teardown(test_request_sent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_error_status, setup, teardown),
		cmocka_unit_test_setup_teardown(test_max_response, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connect_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_broken_answer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_pending, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_in_flight, setup, teardown),
		cmocka_unit_test_setup_teardown(test_callback_starts_call, setup, teardown),
		cmocka_unit_test_setup_teardown(test_callback_cancels_other, setup, teardown),
		cmocka_unit_test_setup_teardown(test_callback_frees_client, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_url, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_request, setup, teardown),
		cmocka_unit_test_setup_teardown(test_server_name_http, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tls_server_name, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tls_client_cert, setup, teardown),
	};
	static const char *const proxy_env[] = {
		"http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
	};
	size_t i;
	int r;

	/* As credgate does: the TLS server here writes to clients that left. */
	signal(SIGPIPE, SIG_IGN);
	/* libcurl honours these; the server here is on loopback, never behind one. */
	for (i = 0; i < CG_ARRAY_LEN(proxy_env); i++)
		(void)unsetenv(proxy_env[i]);
	if (outbound_global_init() != 0) {
		fprintf(stderr, "outbound_global_init failed\n");
		return 1;
	}
	r = cmocka_run_group_tests(tests, pki_setup, pki_teardown);
	outbound_global_cleanup();
	return r;
}
