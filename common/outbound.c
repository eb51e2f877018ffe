/*
 * outbound.c: libcurl's multi interface on a libevent base (see
 * outbound.h).  Owns the client's curl handles, one event per socket
 * libcurl watches and one timer; never touches anything of its callers
 * but through their callbacks.
 */
#include "config.h"

#include <sys/queue.h>

#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include "common/outbound.h"

struct ob_call {
	struct ob_client *c;
	CURL *easy;
	struct curl_slist *headers;
	struct curl_slist *connect_to;
	char *body;		/* secure */
	char *resp;		/* secure */
	size_t resp_len, resp_cap;
	bool head_done;		/* the last response's header block ended */
	bool too_large;
	ob_cb cb;
	void *arg;
	char errbuf[CURL_ERROR_SIZE];
	TAILQ_ENTRY(ob_call) link;
};
TAILQ_HEAD(ob_calls, ob_call);

struct ob_client {
	struct event_base *base;
	CURLM *multi;
	struct event *timer;
	struct ob_client_opts o;	/* its strings point into own[] */
	char *own[5];
	struct ob_calls calls;
	size_t ncalls;
	bool *freed;		/* set by ob_client_free() from a callback */
};

/* One event per socket libcurl asks us to watch. */
struct ob_sock {
	struct ob_client *c;
	struct event *ev;
};

/* ------------------------------------------------------------------ */
/* libcurl's memory: wiped when freed                                  */
/* ------------------------------------------------------------------ */

static void
ob_free(void *p)
{
	if (p == NULL)
		return;
	cg_wipe(p, malloc_usable_size(p));
	free(p);
}

static void *
ob_malloc(size_t n)
{
	return malloc(n);
}

static void *
ob_calloc(size_t n, size_t sz)
{
	return calloc(n, sz);
}

/* Never realloc() in place: the old block could be left unwiped. */
static void *
ob_realloc(void *p, size_t n)
{
	void *q;
	size_t old;

	if (p == NULL)
		return malloc(n);
	if ((q = malloc(n == 0 ? 1 : n)) == NULL)
		return NULL;
	old = malloc_usable_size(p);
	memcpy(q, p, old < n ? old : n);
	ob_free(p);
	return q;
}

static char *
ob_strdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *d;

	if ((d = malloc(n)) != NULL)
		memcpy(d, s, n);
	return d;
}

int
outbound_global_init(void)
{
	if (curl_global_init_mem(CURL_GLOBAL_DEFAULT, ob_malloc, ob_free, ob_realloc,
	    ob_strdup, ob_calloc) != CURLE_OK)
		return CG_ERR_INTERNAL;
	return 0;
}

void
outbound_global_cleanup(void)
{
	curl_global_cleanup();
}

/* ------------------------------------------------------------------ */
/* Driving libcurl from the event loop                                 */
/* ------------------------------------------------------------------ */

static void ob_done(struct ob_client *c);

static void
ob_sock_event(evutil_socket_t fd, short what, void *arg)
{
	struct ob_sock *s = arg;
	struct ob_client *c = s->c;
	int flags = 0, running;

	if (what & EV_READ)
		flags |= CURL_CSELECT_IN;
	if (what & EV_WRITE)
		flags |= CURL_CSELECT_OUT;
	(void)curl_multi_socket_action(c->multi, fd, flags, &running);
	ob_done(c);
}

static void
ob_timer_event(evutil_socket_t fd, short what, void *arg)
{
	struct ob_client *c = arg;
	int running;

	(void)fd;
	(void)what;
	(void)curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	ob_done(c);
}

static int
ob_socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct ob_client *c = userp;
	struct ob_sock *s = socketp;
	short ev = EV_PERSIST;

	(void)easy;
	if (what == CURL_POLL_REMOVE) {
		if (s != NULL) {
			if (s->ev != NULL)
				event_free(s->ev);
			free(s);
		}
		(void)curl_multi_assign(c->multi, fd, NULL);
		return 0;
	}
	if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
		ev |= EV_READ;
	if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
		ev |= EV_WRITE;
	if (s == NULL) {
		if ((s = calloc(1, sizeof(*s))) == NULL)
			return -1;
		s->c = c;
		(void)curl_multi_assign(c->multi, fd, s);
	} else if (s->ev != NULL) {
		/* NULL until the new one is made: a failure below leaves
		 * nothing freed twice at CURL_POLL_REMOVE. */
		event_free(s->ev);
		s->ev = NULL;
	}
	if ((s->ev = event_new(c->base, fd, ev, ob_sock_event, s)) == NULL ||
	    event_add(s->ev, NULL) != 0)
		return -1;
	return 0;
}

static int
ob_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	struct ob_client *c = userp;
	struct timeval tv;

	(void)multi;
	if (timeout_ms < 0) {
		evtimer_del(c->timer);
		return 0;
	}
	tv = cg_ms_tv(timeout_ms);
	return evtimer_add(c->timer, &tv) == 0 ? 0 : -1;
}

/* ------------------------------------------------------------------ */
/* Calls                                                               */
/* ------------------------------------------------------------------ */

static void
ob_call_free(struct ob_call *k)
{
	struct ob_client *c = k->c;
	struct curl_slist *h;

	if (k->easy != NULL) {
		(void)curl_multi_remove_handle(c->multi, k->easy);
		curl_easy_cleanup(k->easy);
	}
	for (h = k->headers; h != NULL; h = h->next)
		cg_wipe(h->data, strlen(h->data));
	curl_slist_free_all(k->headers);
	curl_slist_free_all(k->connect_to);
	secmem_free(k->body);
	secmem_free(k->resp);
	TAILQ_REMOVE(&c->calls, k, link);
	c->ncalls--;
	free(k);
}

static enum ob_fail
ob_fail_of(const struct ob_call *k, CURLcode rc)
{
	if (k->too_large)
		return OB_TOO_LARGE;
	switch (rc) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CACERT_BADFILE:
		return OB_CONNECT;
	case CURLE_OPERATION_TIMEDOUT:
		return OB_TIMEOUT;
	default:
		return OB_TRANSFER;
	}
}

/* The value of the final response's header name, or NULL: the last
 * one when it is repeated. */
static const char *
ob_header(struct ob_call *k, const char *name)
{
	struct curl_header *h = NULL;
	size_t n;

	if (curl_easy_header(k->easy, name, 0, CURLH_HEADER, -1, &h) != CURLHE_OK ||
	    h == NULL)
		return NULL;
	n = h->amount;
	if (n > 1 && curl_easy_header(k->easy, name, n - 1, CURLH_HEADER, -1, &h) != CURLHE_OK)
		return NULL;
	return h->value;
}

/* Hands every finished transfer to its callback. */
static void
ob_done(struct ob_client *c)
{
	struct ob_response r;
	struct ob_call *k;
	CURLMsg *m;
	CURLcode rc;
	bool freed = false;
	int left;
	char *p;

	while ((m = curl_multi_info_read(c->multi, &left)) != NULL) {
		if (m->msg != CURLMSG_DONE)
			continue;
		p = NULL;
		(void)curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &p);
		if ((k = (struct ob_call *)(void *)p) == NULL)
			continue;
		rc = m->data.result;
		memset(&r, 0, sizeof(r));
		if (rc == CURLE_OK && !k->head_done) {
			/* libcurl takes a close inside the header block for an end. */
			r.fail = OB_TRANSFER;
			r.error = "the connection closed inside the response header";
		} else if (rc == CURLE_OK) {
			r.fail = OB_OK;
			(void)curl_easy_getinfo(k->easy, CURLINFO_RESPONSE_CODE, &r.status);
			r.cache_control = ob_header(k, "Cache-Control");
			r.location = ob_header(k, "Location");
		} else {
			r.fail = ob_fail_of(k, rc);
			r.error = k->errbuf[0] != '\0' ? k->errbuf : curl_easy_strerror(rc);
		}
		r.body = k->resp != NULL ? k->resp : "";
		r.body_len = k->resp_len;
		c->freed = &freed;
		k->cb(&r, k->arg);
		if (freed)
			return;		/* and k went with the client */
		c->freed = NULL;
		ob_call_free(k);
	}
}

static size_t
ob_write_cb(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct ob_call *k = arg;
	size_t n = size * nmemb, cap;
	char *nb;

	if (n > k->c->o.max_response - k->resp_len) {
		k->too_large = true;
		return 0;
	}
	if (k->resp_len + n + 1 > k->resp_cap) {
		cap = k->resp_cap == 0 ? 4096 : k->resp_cap;
		while (cap < k->resp_len + n + 1)
			cap *= 2;
		if ((nb = secmem_realloc(k->resp, cap)) == NULL)
			return 0;
		k->resp = nb;
		k->resp_cap = cap;
	}
	memcpy(k->resp + k->resp_len, ptr, n);
	k->resp_len += n;
	k->resp[k->resp_len] = '\0';
	return n;
}

/*
 * Header lines are not kept (they may carry a token); only whether the
 * header block of the last response, after any 1xx, came to its end.
 */
static size_t
ob_header_cb(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct ob_call *k = arg;
	size_t n = size * nmemb;

	if (n >= 5 && memcmp(ptr, "HTTP/", 5) == 0)
		k->head_done = false;
	else if ((n == 2 && ptr[0] == '\r' && ptr[1] == '\n') || (n == 1 && ptr[0] == '\n'))
		k->head_done = true;
	return n;
}

/* The plaintext OpenSSL received is wiped once read. */
static CURLcode
ob_ssl_ctx_cb(CURL *easy, void *ssl_ctx, void *arg)
{
	(void)easy;
	(void)arg;
	SSL_CTX_set_options(ssl_ctx, SSL_OP_CLEANSE_PLAINTEXT);
	return CURLE_OK;
}

/*
 * Checks the URL now, so that one libcurl would refuse fails here and not
 * in a callback: libcurl must parse it, and its scheme must be http or
 * https, given and not guessed.  With a server name set, the URL's host is
 * replaced by it (so that libcurl sends and verifies it) and CONNECT_TO
 * leads to the real host.
 */
static int
ob_url(struct ob_call *k, const char *url, struct curl_slist **connect_to)
{
	const char *name = k->c->o.server_name;
	CURLU *u;
	char *scheme = NULL, *host = NULL, *port = NULL, *nurl = NULL, line[600];
	int r = CG_ERR_FORMAT;

	*connect_to = NULL;
	if ((u = curl_url()) == NULL)
		return CG_ERR_NOMEM;
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    (strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0) ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK)
		goto out;
	if (name == NULL) {
		r = curl_easy_setopt(k->easy, CURLOPT_URL, url) == CURLE_OK ? 0 : CG_ERR_NOMEM;
		goto out;
	}
	if ((size_t)snprintf(line, sizeof(line), "%s:%s:%s:%s", name, port, host, port) >=
	    sizeof(line))
		goto out;
	if (curl_url_set(u, CURLUPART_HOST, name, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_URL, &nurl, 0) != CURLUE_OK)
		goto out;
	if ((*connect_to = curl_slist_append(NULL, line)) == NULL ||
	    curl_easy_setopt(k->easy, CURLOPT_CONNECT_TO, *connect_to) != CURLE_OK ||
	    curl_easy_setopt(k->easy, CURLOPT_URL, nurl) != CURLE_OK)
		goto out;
	r = 0;
 out:
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_free(nurl);
	curl_url_cleanup(u);
	return r;
}

static int
ob_setup(struct ob_call *k, const struct ob_request *rq)
{
	const struct ob_client_opts *o = &k->c->o;
	struct curl_slist *h;
	CURL *e = k->easy;
	size_t i;

	/*
	 * libcurl sends the method and the header lines as given: a CR or LF
	 * in one (a token read from a file or a response) would end its line
	 * early and start another header, or another request.
	 */
	if (rq->method[0] == '\0' ||
	    rq->method[strspn(rq->method, "ABCDEFGHIJKLMNOPQRSTUVWXYZ")] != '\0')
		return CG_ERR_FORMAT;
	for (i = 0; i < rq->nheaders; i++) {
		if (strpbrk(rq->headers[i], "\r\n") != NULL)
			return CG_ERR_FORMAT;
	}
#define SET(opt, val) do { \
	if (curl_easy_setopt(e, (opt), (val)) != CURLE_OK) \
		return CG_ERR_INTERNAL; \
} while (0)
	SET(CURLOPT_PRIVATE, (void *)k);
	SET(CURLOPT_ERRORBUFFER, k->errbuf);
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_PROTOCOLS_STR, "http,https");
	SET(CURLOPT_FOLLOWLOCATION, 0L);
	SET(CURLOPT_USERAGENT, "credgate/" CG_PACKAGE_VERSION);
	SET(CURLOPT_CONNECTTIMEOUT_MS, (long)o->connect_timeout_ms);
	SET(CURLOPT_TIMEOUT_MS, (long)o->timeout_ms);
	SET(CURLOPT_WRITEFUNCTION, ob_write_cb);
	SET(CURLOPT_WRITEDATA, (void *)k);
	SET(CURLOPT_HEADERFUNCTION, ob_header_cb);
	SET(CURLOPT_HEADERDATA, (void *)k);
	SET(CURLOPT_SSL_VERIFYPEER, 1L);
	SET(CURLOPT_SSL_VERIFYHOST, 2L);
	SET(CURLOPT_SSL_CTX_FUNCTION, ob_ssl_ctx_cb);
	if (o->ca_file != NULL)
		SET(CURLOPT_CAINFO, o->ca_file);
	if (o->ca_path != NULL)
		SET(CURLOPT_CAPATH, o->ca_path);
	if (o->cert != NULL)
		SET(CURLOPT_SSLCERT, o->cert);
	if (o->key != NULL)
		SET(CURLOPT_SSLKEY, o->key);
	/* Always: a body alone would turn a GET into a POST. */
	SET(CURLOPT_CUSTOMREQUEST, rq->method);
	if (rq->body != NULL) {
		if ((k->body = secmem_alloc(rq->body_len + 1)) == NULL)
			return CG_ERR_NOMEM;
		memcpy(k->body, rq->body, rq->body_len);
		SET(CURLOPT_POSTFIELDSIZE, (long)rq->body_len);
		SET(CURLOPT_POSTFIELDS, k->body);
	}
	for (i = 0; i < rq->nheaders; i++) {
		if ((h = curl_slist_append(k->headers, rq->headers[i])) == NULL)
			return CG_ERR_NOMEM;
		k->headers = h;
	}
	/* No "Expect: 100-continue" round trip; JSON bodies only. */
	if ((h = curl_slist_append(k->headers, "Expect:")) == NULL)
		return CG_ERR_NOMEM;
	k->headers = h;
	if (rq->body != NULL) {
		if ((h = curl_slist_append(k->headers, "Content-Type: application/json")) == NULL)
			return CG_ERR_NOMEM;
		k->headers = h;
	}
	SET(CURLOPT_HTTPHEADER, k->headers);
#undef SET
	return ob_url(k, rq->url, &k->connect_to);
}

int
ob_request(struct ob_client *c, const struct ob_request *rq, ob_cb cb, void *arg,
    struct ob_call **call)
{
	struct ob_call *k;
	int r;

	if (call != NULL)
		*call = NULL;
	if ((k = calloc(1, sizeof(*k))) == NULL)
		return CG_ERR_NOMEM;
	k->c = c;
	k->cb = cb;
	k->arg = arg;
	TAILQ_INSERT_TAIL(&c->calls, k, link);
	c->ncalls++;
	if ((k->easy = curl_easy_init()) == NULL) {
		ob_call_free(k);
		return CG_ERR_NOMEM;
	}
	if ((r = ob_setup(k, rq)) != 0) {
		curl_easy_cleanup(k->easy);
		k->easy = NULL;
		ob_call_free(k);
		return r;
	}
	if (curl_multi_add_handle(c->multi, k->easy) != CURLM_OK) {
		curl_easy_cleanup(k->easy);
		k->easy = NULL;
		ob_call_free(k);
		return CG_ERR_INTERNAL;
	}
	if (call != NULL)
		*call = k;
	return 0;
}

void
ob_call_cancel(struct ob_call *k)
{
	if (k != NULL)
		ob_call_free(k);
}

size_t
ob_client_pending(const struct ob_client *c)
{
	return c->ncalls;
}

/* ------------------------------------------------------------------ */
/* Clients                                                             */
/* ------------------------------------------------------------------ */

/* Copies s into the next of c->own[] and points *field at it. */
static int
ob_dup(struct ob_client *c, size_t i, const char *s, const char **field)
{
	*field = NULL;
	if (s == NULL)
		return 0;
	if ((c->own[i] = strdup(s)) == NULL)
		return CG_ERR_NOMEM;
	*field = c->own[i];
	return 0;
}

int
ob_client_new(struct event_base *base, const struct ob_client_opts *opts,
    struct ob_client **out)
{
	struct ob_client *c;

	*out = NULL;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return CG_ERR_NOMEM;
	TAILQ_INIT(&c->calls);
	c->base = base;
	c->o = *opts;
	if (c->o.max_response == 0)
		c->o.max_response = 1024 * 1024;
	if (ob_dup(c, 0, opts->ca_file, &c->o.ca_file) != 0 ||
	    ob_dup(c, 1, opts->ca_path, &c->o.ca_path) != 0 ||
	    ob_dup(c, 2, opts->server_name, &c->o.server_name) != 0 ||
	    ob_dup(c, 3, opts->cert, &c->o.cert) != 0 ||
	    ob_dup(c, 4, opts->key, &c->o.key) != 0 ||
	    (c->timer = evtimer_new(base, ob_timer_event, c)) == NULL ||
	    (c->multi = curl_multi_init()) == NULL) {
		ob_client_free(c);
		return CG_ERR_NOMEM;
	}
	if (curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, ob_socket_cb) != CURLM_OK ||
	    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c) != CURLM_OK ||
	    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, ob_timer_cb) != CURLM_OK ||
	    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c) != CURLM_OK) {
		ob_client_free(c);
		return CG_ERR_INTERNAL;
	}
	*out = c;
	return 0;
}

void
ob_client_free(struct ob_client *c)
{
	if (c == NULL)
		return;
	if (c->freed != NULL)
		*c->freed = true;
	while (!TAILQ_EMPTY(&c->calls))
		ob_call_free(TAILQ_FIRST(&c->calls));
	if (c->multi != NULL)
		curl_multi_cleanup(c->multi);
	if (c->timer != NULL)
		event_free(c->timer);
	for (size_t i = 0; i < CG_ARRAY_LEN(c->own); i++)
		free(c->own[i]);
	free(c);
}
