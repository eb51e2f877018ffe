/*
 * test_admin.c: the admin endpoint over real loopback sockets.  The admin
 * runs on the test's event loop (main thread); each exchange is a client
 * thread with blocking sockets, and the loop runs until that thread is
 * done.
 */
#include "tests/unit/unit.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "proxy/admin.h"

#define METRICS_BODY	"# HELP credgate_x A test.\n# TYPE credgate_x gauge\ncredgate_x 7\n"

struct fixture {
	struct event_base *base;
	struct cg_admin *admin;
	/* What the hooks answer; set by the main thread between exchanges. */
	bool ready;
	const char *why;
	int render_result;
	int render_calls;
	int ready_calls;
};

static int
hook_render(void *arg, struct evbuffer *out)
{
	struct fixture *f = arg;

	f->render_calls++;
	if (evbuffer_add(out, METRICS_BODY, strlen(METRICS_BODY)) != 0)
		return CG_ERR_NOMEM;
	return f->render_result;
}

static bool
hook_ready(void *arg, char *why, size_t whylen)
{
	struct fixture *f = arg;

	f->ready_calls++;
	if (!f->ready)
		snprintf(why, whylen, "%s", f->why);
	return f->ready;
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct admin_hooks hooks = { hook_render, hook_ready, NULL };
	char err[160];

	if (f == NULL)
		return -1;
	signal(SIGPIPE, SIG_IGN);
	cg_log_level_set(CG_LOG_WARN);
	f->ready = true;
	hooks.arg = f;
	if ((f->base = event_base_new()) == NULL)
		return -1;
	if (admin_new(f->base, "127.0.0.1", 0, &hooks, &f->admin, err, sizeof(err)) != 0) {
		print_error("admin_new: %s\n", err);
		return -1;
	}
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	admin_free(f->admin);
	event_base_free(f->base);
	free(f);
	return 0;
}

/* ------------------------------------------------------------------ */
/* The client side                                                     */
/* ------------------------------------------------------------------ */

enum send_mode {
	SEND_WHOLE,		/* one send */
	SEND_BYTEWISE,		/* one byte per send, a short pause between */
	SEND_AND_HOLD,		/* send, then wait for the response without EOF */
};

struct client {
	int port;
	const char *req;
	size_t reqlen;
	enum send_mode mode;
	int idle_conns;		/* opened (and kept silent) before the request */
	char resp[16384];
	size_t resplen;
	bool eof;		/* the server closed after the response */
	int done;		/* set last, atomically */
};

static int
client_connect(int port)
{
	struct sockaddr_in sin;
	struct timeval tv = { 10, 0 };
	int fd;

	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void *
client_main(void *arg)
{
	struct client *cl = arg;
	int idle[ADMIN_MAX_CONNS + 1];
	int fd, i;
	ssize_t n;

	for (i = 0; i < cl->idle_conns; i++)
		idle[i] = client_connect(cl->port);
	if ((fd = client_connect(cl->port)) < 0)
		goto out;
	if (cl->mode == SEND_BYTEWISE) {
		struct timespec ts = { 0, 1000000 };
		size_t k;

		for (k = 0; k < cl->reqlen; k++) {
			if (send(fd, cl->req + k, 1, MSG_NOSIGNAL) != 1)
				break;
			nanosleep(&ts, NULL);
		}
	} else if (cl->reqlen > 0) {
		n = send(fd, cl->req, cl->reqlen, MSG_NOSIGNAL);
		(void)n;
	}
	for (;;) {
		n = recv(fd, cl->resp + cl->resplen, sizeof(cl->resp) - 1 - cl->resplen, 0);
		if (n == 0)
			cl->eof = true;
		if (n <= 0)
			break;
		cl->resplen += (size_t)n;
		if (cl->resplen == sizeof(cl->resp) - 1)
			break;
	}
	cl->resp[cl->resplen] = '\0';
	close(fd);
 out:
	for (i = 0; i < cl->idle_conns; i++)
		if (idle[i] >= 0)
			close(idle[i]);
	__atomic_store_n(&cl->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* Runs the loop until cond() or 15 s; fails on the deadline. */
static void
run_until(struct fixture *f, bool (*cond)(void *), void *arg)
{
	struct timespec t0, t;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (!cond(arg)) {
		event_base_loop(f->base, EVLOOP_NONBLOCK);
		{
			struct timespec ts = { 0, 200000 };

			nanosleep(&ts, NULL);
		}
		clock_gettime(CLOCK_MONOTONIC, &t);
		if (t.tv_sec - t0.tv_sec > 15)
			fail_msg("timed out waiting");
	}
}

static bool
client_done(void *arg)
{
	struct client *cl = arg;

	return __atomic_load_n(&cl->done, __ATOMIC_ACQUIRE) != 0;
}

static bool
admin_idle(void *arg)
{
	struct fixture *f = arg;

	return admin_nconns(f->admin) == 0;
}

/* One exchange; the response lands in cl->resp. */
static void
exchange(struct fixture *f, struct client *cl, const char *req, enum send_mode mode)
{
	pthread_t t;

	memset(cl, 0, sizeof(*cl));
	cl->port = admin_port(f->admin);
	cl->req = req;
	cl->reqlen = strlen(req);
	cl->mode = mode;
	assert_int_equal(pthread_create(&t, NULL, client_main, cl), 0);
	run_until(f, client_done, cl);
	assert_int_equal(pthread_join(t, NULL), 0);
	/* Every connection is gone once the client closed its side. */
	run_until(f, admin_idle, f);
}

/* ------------------------------------------------------------------ */
/* Looking at a response                                               */
/* ------------------------------------------------------------------ */

struct resp {
	int status;
	char head[4096];	/* status line and fields, lowercased names kept as sent */
	const char *body;
	size_t bodylen;
};

static void
parse_resp(const struct client *cl, struct resp *r)
{
	const char *end = strstr(cl->resp, "\r\n\r\n");

	memset(r, 0, sizeof(*r));
	if (end == NULL)
		fail_msg("no complete response head in: \"%s\"", cl->resp);
	assert_true((size_t)(end - cl->resp) < sizeof(r->head));
	memcpy(r->head, cl->resp, (size_t)(end - cl->resp) + 2);
	assert_int_equal(sscanf(cl->resp, "HTTP/1.1 %d ", &r->status), 1);
	r->body = end + 4;
	r->bodylen = cl->resplen - (size_t)(r->body - cl->resp);
}

/* True when the head holds "name: value" exactly as a field line. */
static void
assert_field(const struct resp *r, const char *field)
{
	char line[512];

	snprintf(line, sizeof(line), "\r\n%s\r\n", field);
	if (strstr(r->head, line) == NULL)
		fail_msg("field \"%s\" not in head:\n%s", field, r->head);
}

static void
assert_body(const struct resp *r, const char *body)
{
	char cl[64];

	snprintf(cl, sizeof(cl), "Content-Length: %zu", strlen(body));
	assert_field(r, cl);
	assert_int_equal(r->bodylen, strlen(body));
	assert_memory_equal(r->body, body, r->bodylen);
}

/* ------------------------------------------------------------------ */
/* Tests                                                               */
/* ------------------------------------------------------------------ */

static void
test_healthz(void **state)
{
	struct fixture *f = *state;
	struct client cl;
	struct resp r;

	exchange(f, &cl, "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n", SEND_WHOLE);
	parse_resp(&cl, &r);
	assert_int_equal(r.status, 200);
	assert_true(strncmp(r.head, "HTTP/1.1 200 OK\r\n", 17) == 0);
	assert_field(&r, "Connection: close");
	assert_field(&r, "Content-Type: text/plain; charset=utf-8");
	assert_body(&r, "ok\n");
	assert_true(cl.eof);

	/* A query string is ignored; HTTP/1.0 without Host is fine. */
	exchange(f, &cl, "GET /healthz?verbose=1 HTTP/1.0\r\n\r\n", SEND_WHOLE);
	parse_resp(&cl, &r);
	assert_int_equal(r.status, 200);
	assert_body(&r, "ok\n");

	/* Fed one byte at a time. */
	exchange(f, &cl, "GET /healthz HTTP/1.1\r\nHost: a\r\nUser-Agent: t\r\n\r\n",
	    SEND_BYTEWISE);
	parse_resp(&cl, &r);
	assert_int_equal(r.status, 200);
	assert_body(&r, "ok\n");
}

static void
test_readyz(void **state)
{
	struct fixture *f = *state;
	struct client cl;
	struct resp r;

	exchange(f, &cl, "GET /readyz HTTP/1.1\r\nHost: localhost\r\n\r\n", SEND_WHOLE);
	parse_resp(&cl, &r);
	assert_int_equal(r.status, 200);
	assert_body(&r, "ready\n");
	assert_int_equal(f->ready_calls, 1);

	f->ready = false;
	f->why = "draining";
	exchange(f, &cl, "GET /readyz HTTP/1.1\r\nHost: localhost\r\n\r\n", SEND_WHOLE);
	parse_resp(&cl, &r);
	assert_int_equal(r.status, 503);
	assert_true(strncmp(r.head, "HTTP/1.1 503 Service Unavailable\r\n", 34) == 0);
	assert_body(&r, "not ready: draining\n");

	/* A reason stays on one line. */
	f->why = "route api: secret\r\nX-Evil: 1";
	exchange(f, &cl, "GET /readyz HTTP/1.1\r\nHost: localhost\r\n\r\n", SEND_WHOLE);
	parse_resp(&cl, &r);
	assert_int_equal(r.status, 503);
	assert_body(&r, "not ready: route api: secret??X-Evil: 1\n");

	/* HEAD: the status and the length, no body. */
	exchange(f, &cl, "HEAD /readyz HTTP/1.1\r\nHost: localhost\r\n\r\n", SEND_WHOLE);
	parse_resp(&cl, &r);
	assert_int_equal(r.status, 503);
	assert_field(&r, "Content-Length: 40");
	assert_int_equal(r.bodylen, 0);

	f->ready = true;
	exchange(f, &cl, "GET /readyz HTTP/1.1\r\nHost: localhost\r\n\r\n", SEND_WHOLE);
	parse_resp(&cl, &r);
	assert_int_equal(r.status, 200);
}

static void
test_metrics(void **state)
{
	struct fixture *f = *state;
	struct client cl;
	struct resp r;
	char len[64];

	exchange(f, &cl, "GET /metrics HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n",
	    SEND_WHOLE);
	parse_resp(&cl, &r);
	assert_int_equal(r.status, 200);
	assert_field(&r, "Content-Type: text/plain; version=0.0.4; charset=utf-8");
	assert_field(&r, "Connection: close");
	assert_body(&r, METRICS_BODY);
	assert_int_equal(f->render_calls, 1);

	/* HEAD: the same head, no body. */
	exchange(f, &cl, "HEAD /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n", SEND_WHOLE);
	parse_resp(&cl, &r);
	assert_int_equal(r.status, 200);
	assert_field(&r, "Content-Type: text/plain; version=0.0.4; charset=utf-8");
	snprintf(len, sizeof(len), "Content-Length: %zu", strlen(METRICS_BODY));
	assert_field(&r, len);
	assert_int_equal(r.bodylen, 0);

	/* The hook fails: 500, and nothing it appended is sent. */
	f->render_result = CG_ERR_NOMEM;
	exchange(f, &cl, "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n", SEND_WHOLE);
	parse_resp(&cl, &r);
	assert_int_equal(r.status, 500);
	assert_body(&r, "Internal Server Error\n");
	f->render_result = 0;
}

/* Status for each request: paths, methods, malformed heads. */
static void
test_statuses(void **state)
{
	static const struct {
		const char *req;
		int status;
	} cases[] = {
		{ "GET / HTTP/1.1\r\nHost: a\r\n\r\n", 404 },
		{ "GET /nope HTTP/1.1\r\nHost: a\r\n\r\n", 404 },
		{ "GET /healthz/ HTTP/1.1\r\nHost: a\r\n\r\n", 404 },
		{ "GET /HEALTHZ HTTP/1.1\r\nHost: a\r\n\r\n", 404 },
		{ "GET /metricsx HTTP/1.1\r\nHost: a\r\n\r\n", 404 },
		{ "POST /nope HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", 404 },
		{ "POST /healthz HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", 405 },
		{ "DELETE /metrics HTTP/1.1\r\nHost: a\r\n\r\n", 405 },
		{ "PUT /readyz HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc", 405 },
		{ "get /healthz HTTP/1.1\r\nHost: a\r\n\r\n", 405 },	/* methods are case-sensitive */
		{ "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", 404 },
		/* Malformed: 400 (or the parser's own status). */
		{ "GET /healthz HTTP/1.1\nHost: a\n\n", 400 },
		{ "GET  /healthz HTTP/1.1\r\nHost: a\r\n\r\n", 400 },
		{ "GET /healthz HTTP/1.1\r\n\r\n", 400 },			/* no Host */
		{ "GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400 },
		{ "GET /healthz HTTP/1.1\r\nHost : a\r\n\r\n", 400 },
		{ "GET /healthz HTTP/1.1\r\nHost: a\r\nX: 1\r\n  folded\r\n\r\n", 400 },
		{ "GET http://a/healthz HTTP/1.1\r\nHost: a\r\n\r\n", 400 },
		{ "\r\nGET /healthz HTTP/1.1\r\nHost: a\r\n\r\n", 400 },
		{ "GET /healthz HTTP/2.0\r\nHost: a\r\n\r\n", 505 },
		{ "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 501 },
		{ "\x16\x03\x01\x02\x01\r\n\r\n", 400 },	/* TLS to a plain port */
	};
	struct fixture *f = *state;
	struct client cl;
	struct resp r;
	size_t i;

	for (i = 0; i < CG_ARRAY_LEN(cases); i++) {
		exchange(f, &cl, cases[i].req, SEND_WHOLE);
		parse_resp(&cl, &r);
		if (r.status != cases[i].status)
			fail_msg("case %zu: status %d, want %d", i, r.status, cases[i].status);
		assert_field(&r, "Connection: close");
		assert_true(cl.eof);
		if (r.status == 405)
			assert_field(&r, "Allow: GET, HEAD");
		if (r.status == 400)
			assert_body(&r, "Bad Request\n");
		if (r.status == 404)
			assert_body(&r, "Not Found\n");
	}
}

/* A head over 8 KiB is refused. */
static void
test_head_limit(void **state)
{
	struct fixture *f = *state;
	struct client cl;
	struct resp r;
	char *req;
	size_t n;

	req = malloc(ADMIN_MAX_HEAD + 64);
	assert_non_null(req);
	n = (size_t)snprintf(req, 64, "GET /healthz HTTP/1.1\r\nHost: a\r\nX-Pad: ");
	memset(req + n, 'p', ADMIN_MAX_HEAD - n);
	memcpy(req + ADMIN_MAX_HEAD, "\r\n\r\n", 5);
	exchange(f, &cl, req, SEND_WHOLE);
	parse_resp(&cl, &r);
	assert_int_equal(r.status, 431);
	assert_true(cl.eof);

	/* A request line over 4 KiB. */
	n = (size_t)snprintf(req, 64, "GET /");
	memset(req + n, 'a', 4096);
	memcpy(req + n + 4096, " HTTP/1.1\r\nHost: a\r\n\r\n", 23);
	exchange(f, &cl, req, SEND_WHOLE);
	parse_resp(&cl, &r);
	assert_int_equal(r.status, 414);

	/* Just under the limit still works. */
	n = (size_t)snprintf(req, 64, "GET /healthz HTTP/1.1\r\nHost: a\r\nX-Pad: ");
	memset(req + n, 'p', ADMIN_MAX_HEAD - 4 - n);
	memcpy(req + ADMIN_MAX_HEAD - 4, "\r\n\r\n", 5);
	assert_int_equal(strlen(req), ADMIN_MAX_HEAD);
	exchange(f, &cl, req, SEND_WHOLE);
	parse_resp(&cl, &r);
	assert_int_equal(r.status, 200);
	free(req);
}

/* A head that does not come in time gets 408 and the connection closes. */
static void
test_header_timeout(void **state)
{
	struct fixture *f = *state;
	struct client cl;
	struct resp r;

	admin_set_header_timeout(f->admin, 150);
	exchange(f, &cl, "GET /heal", SEND_AND_HOLD);
	parse_resp(&cl, &r);
	assert_int_equal(r.status, 408);
	assert_body(&r, "Request Timeout\n");
	assert_true(cl.eof);

	/* Nothing at all. */
	exchange(f, &cl, "", SEND_AND_HOLD);
	parse_resp(&cl, &r);
	assert_int_equal(r.status, 408);
	admin_set_header_timeout(f->admin, ADMIN_HEADER_TIMEOUT_MS);
}

/* Pipelined requests: one response, then close, and the response is not
 * lost to a reset over the unread second request. */
static void
test_one_request_per_connection(void **state)
{
	struct fixture *f = *state;
	struct client cl;
	struct resp r;

	exchange(f, &cl, "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"
	    "GET /readyz HTTP/1.1\r\nHost: a\r\n\r\n", SEND_WHOLE);
	parse_resp(&cl, &r);
	assert_int_equal(r.status, 200);
	assert_body(&r, "ok\n");
	assert_null(strstr(cl.resp, "ready"));
	assert_int_equal(f->ready_calls, 0);
	assert_true(cl.eof);
}

/* At most ADMIN_MAX_CONNS at once; one more gets 503. */
static void
test_connection_limit(void **state)
{
	struct fixture *f = *state;
	struct client cl;
	struct resp r;
	pthread_t t;

	memset(&cl, 0, sizeof(cl));
	cl.port = admin_port(f->admin);
	/* Sends nothing: the refusal closes at once, and bytes it never read
	 * could make the kernel reset the connection over the 503. */
	cl.req = "";
	cl.idle_conns = ADMIN_MAX_CONNS;
	assert_int_equal(pthread_create(&t, NULL, client_main, &cl), 0);
	run_until(f, client_done, &cl);
	assert_int_equal(pthread_join(t, NULL), 0);
	parse_resp(&cl, &r);
	assert_int_equal(r.status, 503);
	assert_body(&r, "too many connections");
	/* The idle ones closed: all freed, and the admin serves again. */
	run_until(f, admin_idle, f);
	exchange(f, &cl, "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n", SEND_WHOLE);
	parse_resp(&cl, &r);
	assert_int_equal(r.status, 200);
}

static void
test_new_errors(void **state)
{
	struct fixture *f = *state;
	struct admin_hooks hooks = { NULL, NULL, NULL };
	struct cg_admin *a = (struct cg_admin *)&hooks;
	struct client cl;
	struct resp r;
	char err[160];

	/* The port is taken. */
	assert_int_equal(admin_new(f->base, "127.0.0.1", admin_port(f->admin), &hooks, &a,
	    err, sizeof(err)), CG_ERR_IO);
	assert_null(a);
	assert_non_null(strstr(err, "cannot listen"));
	assert_int_equal(admin_new(f->base, "no such host.invalid", 0, &hooks, &a, err,
	    sizeof(err)), CG_ERR_NOTFOUND);
	assert_null(a);
	assert_int_equal(admin_new(f->base, "127.0.0.1", 65536, &hooks, &a, err,
	    sizeof(err)), CG_ERR_FORMAT);

	/* Without hooks: always ready, and no /metrics. */
	assert_int_equal(admin_new(f->base, "127.0.0.1", 0, &hooks, &a, err, sizeof(err)), 0);
	assert_true(admin_port(a) > 0);
	admin_free(f->admin);
	f->admin = a;
	exchange(f, &cl, "GET /readyz HTTP/1.1\r\nHost: a\r\n\r\n", SEND_WHOLE);
	parse_resp(&cl, &r);
	assert_int_equal(r.status, 200);
	exchange(f, &cl, "GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n", SEND_WHOLE);
	parse_resp(&cl, &r);
	assert_int_equal(r.status, 404);
	admin_free(NULL);
}

/* admin_free() with connections still open frees them all. */
static void
test_free_with_connections(void **state)
{
	struct fixture *f = *state;
	int fds[3], i;

	for (i = 0; i < 3; i++)
		assert_true((fds[i] = client_connect(admin_port(f->admin))) >= 0);
	while (admin_nconns(f->admin) < 3)
		event_base_loop(f->base, EVLOOP_ONCE);
	admin_free(f->admin);
	f->admin = NULL;
	for (i = 0; i < 3; i++)
		close(fds[i]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_healthz, setup, teardown),
		cmocka_unit_test_setup_teardown(test_readyz, setup, teardown),
		cmocka_unit_test_setup_teardown(test_metrics, setup, teardown),
		cmocka_unit_test_setup_teardown(test_statuses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_head_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_header_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_one_request_per_connection, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connection_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_new_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_with_connections, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
