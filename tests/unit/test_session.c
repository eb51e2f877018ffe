/*
 * test_session.c: the engine's session (proxy/conn.c) on its own, driven
 * by a fake protocol through struct inj_ops: the one timer, plain relay
 * with backpressure, close from either side, TLS started late by the
 * protocol, and finish() flushing the last bytes.
 *
 * The process is built by server_new() from a configuration written at
 * test time; its one worker's event loop is run from the test thread, a
 * step at a time, and no worker thread is started.  The caller is a
 * loopback TCP connection whose accepted end is handed to conn_accept();
 * the upstream is a listening socket of the test's own.
 */
#include "tests/unit/unit.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "common.h"
#include "proxy/conf.h"
#include "proxy/server.h"
#include "proxy/session.h"
#include "vault-client/vault.h"

/* ------------------------------------------------------------------ */
/* The fake protocol                                                   */
/* ------------------------------------------------------------------ */

enum fake_mode {
	FAKE_TIMER,	/* arms arm_ms at start; rearm_ms when the caller sends */
	FAKE_RELAY,	/* connects upstream at start, then relays */
	FAKE_STARTTLS,	/* "S" -> "S", start_tls(), then connects and relays */
	FAKE_FINISH,	/* "F"/"L" -> big answer, finish() without/with linger */
	FAKE_UPTLS,	/* connects upstream, "S" up, "S" back, start_tls() upstream,
			   then relays */
	FAKE_LOGIN,	/* connects upstream as fk.login, then done(reusable) and
			   closes */
};

#define FINISH_BYTES	(1024 * 1024)

struct fake {
	struct inj_host *h;
	const struct inj_host_ops *ops;
	const struct inj_params *params;
};

/* What the fake saw, for the test to assert on. */
static struct {
	enum fake_mode mode;
	int64_t arm_ms, rearm_ms;
	unsigned starts, frees, timeouts, tls_done, connected, eofs;
	unsigned up_tls_done, up_failed;
	struct secret *login;	/* FAKE_LOGIN: the credential it connects as */
	bool pooled;		/* ... and whether it got a pooled connection */
	int up_start_tls_rc;
	char up_answer;
	int64_t armed_at, rearmed_at, timeout_at;
	int start_tls_rc;
	bool tls_param;
	char got_before_tls;
	char freed_reason[96];
} fk;

/* A byte of the test pattern at offset i. */
static unsigned char
pat(uint64_t i)
{
	return (unsigned char)((i * 2654435761u) >> 13);
}

static void
pat_add(struct evbuffer *b, uint64_t from, size_t n)
{
	unsigned char chunk[4096];
	size_t k, m;

	while (n > 0) {
		m = n < sizeof(chunk) ? n : sizeof(chunk);
		for (k = 0; k < m; k++)
			chunk[k] = pat(from + k);
		assert_int_equal(evbuffer_add(b, chunk, m), 0);
		from += m;
		n -= m;
	}
}

static void
pat_check(struct evbuffer *b, uint64_t from)
{
	size_t n = evbuffer_get_length(b), k;
	unsigned char *p = evbuffer_pullup(b, -1);

	for (k = 0; k < n; k++)
		if (p[k] != pat(from + k))
			fail_msg("byte %zu differs from what was sent", (size_t)(from + k));
}

static int
fake_start(void *st, struct inj_host *h, const struct inj_host_ops *ops,
    const struct inj_params *params)
{
	struct fake *f = st;
	bool connected = false;

	f->h = h;
	f->ops = ops;
	f->params = params;
	fk.starts++;
	ops->reading(h, INJ_CLIENT, INJ_READ_ON);
	switch (fk.mode) {
	case FAKE_TIMER:
		fk.armed_at = cg_mono_ms();
		ops->arm(h, fk.arm_ms);
		break;
	case FAKE_RELAY:
		if (ops->connect(h, NULL, NULL, &connected) != 0)
			return CG_ERR_IO;
		if (connected)
			ops->relay(h);
		break;
	case FAKE_LOGIN: {
		struct inj_cred cred = { NULL, fk.login, fk.login };

		ops->arm(h, 10000);
		if (ops->connect(h, &cred, NULL, &connected) != 0)
			return CG_ERR_IO;
		fk.pooled = connected;
		if (connected) {
			fk.connected++;
			ops->done(h, true);
			ops->close(h, "fake_done");
		}
		break;
	}
	case FAKE_UPTLS:
		ops->arm(h, 10000);
		if (ops->connect(h, NULL, NULL, &connected) != 0 || connected)
			return CG_ERR_IO;	/* nothing to pool: a new connection */
		break;
	default:
		ops->arm(h, 10000);
		break;
	}
	return 0;
}

static void
fake_free(void *st)
{
	struct fake *f = st;

	fk.frees++;
	/* The session is still whole here: why it closed, for the test. */
	snprintf(fk.freed_reason, sizeof(fk.freed_reason), "%s",
	    ((struct conn *)(void *)f->h)->close_reason);
}

static void
fake_readable(void *st, enum inj_side side)
{
	struct fake *f = st;
	struct evbuffer *in = f->ops->input(f->h, side);
	struct evbuffer *out = f->ops->output(f->h, INJ_CLIENT);
	char ch = 0;

	if (side == INJ_UPSTREAM && fk.mode == FAKE_UPTLS && evbuffer_get_length(in) > 0) {
		/* The server's answer: the one byte, then its TLS. */
		evbuffer_remove(in, &ch, 1);
		fk.up_answer = ch;
		fk.up_start_tls_rc = f->ops->start_tls(f->h, INJ_UPSTREAM);
		if (fk.up_start_tls_rc != 0)
			f->ops->close(f->h, "start_tls_failed");
		return;
	}
	if (side != INJ_CLIENT || evbuffer_get_length(in) == 0)
		return;
	switch (fk.mode) {
	case FAKE_TIMER:
		evbuffer_drain(in, evbuffer_get_length(in));
		if (fk.rearm_ms > 0) {
			fk.rearmed_at = cg_mono_ms();
			f->ops->arm(f->h, fk.rearm_ms);
		}
		break;
	case FAKE_STARTTLS:
		/* Only the one byte: what follows is the caller's TLS. */
		evbuffer_remove(in, &ch, 1);
		fk.got_before_tls = ch;
		f->ops->reading(f->h, INJ_CLIENT, INJ_READ_OFF);
		evbuffer_add(out, "S", 1);
		fk.start_tls_rc = f->ops->start_tls(f->h, INJ_CLIENT);
		if (fk.start_tls_rc != 0)
			f->ops->close(f->h, "start_tls_failed");
		break;
	case FAKE_FINISH:
		evbuffer_remove(in, &ch, 1);
		evbuffer_drain(in, evbuffer_get_length(in));
		pat_add(out, 0, FINISH_BYTES);
		f->ops->finish(f->h, "fake_finish", ch == 'L');
		break;
	default:
		break;
	}
}

static void
fake_writable(void *st, enum inj_side side)
{
	(void)st;
	(void)side;
}

static void
fake_eof(void *st, enum inj_side side, bool error)
{
	struct fake *f = st;

	(void)error;
	fk.eofs++;
	f->ops->close(f->h, side == INJ_CLIENT ? "fake_client_eof" : "fake_upstream_eof");
}

static void
fake_connected(void *st, bool ok, const char *reason)
{
	struct fake *f = st;

	(void)reason;
	if (!ok) {
		fk.up_failed++;
		f->ops->close(f->h, "fake_connect_failed");
		return;
	}
	fk.connected++;
	if (fk.mode == FAKE_LOGIN) {
		/* Logged in: the connection goes back to the pool. */
		f->ops->done(f->h, true);
		f->ops->close(f->h, "fake_done");
		return;
	}
	if (fk.mode == FAKE_UPTLS) {
		/* Ask the server in the protocol's own way first. */
		evbuffer_add(f->ops->output(f->h, INJ_UPSTREAM), "S", 1);
		f->ops->reading(f->h, INJ_UPSTREAM, INJ_READ_ON);
		return;
	}
	f->ops->relay(f->h);
}

static void
fake_tls_done(void *st, enum inj_side side)
{
	struct fake *f = st;
	bool connected = false;

	if (side == INJ_UPSTREAM) {
		fk.up_tls_done++;
		f->ops->relay(f->h);
		return;
	}
	fk.tls_done++;
	fk.tls_param = f->params->tls;
	if (f->ops->connect(f->h, NULL, NULL, &connected) != 0)
		f->ops->close(f->h, "fake_connect_failed");
	else if (connected)
		f->ops->relay(f->h);
}

static void
fake_allowed(void *st, const struct inj_cred *cred)
{
	(void)st;
	(void)cred;
}

static void
fake_refuse(void *st, enum inj_refusal why, const char *reason)
{
	(void)st;
	(void)why;
	(void)reason;
}

static void
fake_timeout(void *st)
{
	(void)st;
	fk.timeouts++;
	fk.timeout_at = cg_mono_ms();
}

static bool
fake_drain(void *st)
{
	(void)st;
	return true;
}

static void
fake_slot_free(void *slot)
{
	(void)slot;
}

static const char *
fake_inject_name(const void *cfg)
{
	(void)cfg;
	return "fake";
}

static const char *
fake_refusal_code(enum inj_refusal why)
{
	return why == INJ_REFUSE_PROOF ? "proof" : "other";
}

static const char fake_busy[] = "busy\n";

static const struct inj_ops fake_ops = {
	.name = "fake",
	.tls_late = true,
	.state_size = sizeof(struct fake),
	.start = fake_start,
	.free = fake_free,
	.readable = fake_readable,
	.writable = fake_writable,
	.eof = fake_eof,
	.connected = fake_connected,
	.tls_done = fake_tls_done,
	.allowed = fake_allowed,
	.refuse = fake_refuse,
	.timeout = fake_timeout,
	.drain = fake_drain,
	.slot_free = fake_slot_free,
	.inject_name = fake_inject_name,
	.refusal_code = fake_refusal_code,
	.busy = fake_busy,
	.busy_len = sizeof(fake_busy) - 1,
};

/* ------------------------------------------------------------------ */
/* The fixture: a process of one worker, a caller, an upstream         */
/* ------------------------------------------------------------------ */

static struct {
	char dir[256];
	struct cg_process *p;
	struct cg_worker *w;
	struct cg_route_rt *rt;
	struct event *tick;
	int up_lfd;		/* the upstream's listening socket */
	int cli;		/* the caller's end */
	int up;			/* the upstream's end, once accepted */
} fx;

static void
ossl_check(int ok, const char *what)
{
	if (!ok) {
		ERR_print_errors_fp(stderr);
		fail_msg("%s failed", what);
	}
}

static void
write_text(const char *name, const char *text, mode_t mode)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", fx.dir, name);
	assert_non_null(f = fopen(path, "w"));
	assert_int_equal(fchmod(fileno(f), mode), 0);
	assert_true(fputs(text, f) >= 0);
	assert_int_equal(fclose(f), 0);
}

/* A self-signed certificate for "localhost" and its key. */
static void
selfsigned(long serial, EVP_PKEY **kp, X509 **xp)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *name;

	ossl_check(k != NULL && x != NULL, "key and certificate");
	ossl_check(X509_set_version(x, X509_VERSION_3), "version");
	ossl_check(ASN1_INTEGER_set(X509_get_serialNumber(x), serial), "serial");
	ossl_check(X509_gmtime_adj(X509_getm_notBefore(x), -3600) != NULL, "notBefore");
	ossl_check(X509_gmtime_adj(X509_getm_notAfter(x), 86400) != NULL, "notAfter");
	name = X509_get_subject_name(x);
	ossl_check(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
	    (const unsigned char *)"localhost", -1, -1, 0), "CN");
	ossl_check(X509_set_issuer_name(x, name), "issuer");
	ossl_check(X509_set_pubkey(x, k), "pubkey");
	ossl_check(X509_sign(x, k, EVP_sha256()) > 0, "sign");
	*kp = k;
	*xp = x;
}

/* The listener's certificate and key (the upstream's CA too), in fx.dir. */
static void
make_cert(void)
{
	EVP_PKEY *k;
	X509 *x;
	char path[512];
	FILE *f;

	selfsigned(1, &k, &x);
	snprintf(path, sizeof(path), "%s/cert.pem", fx.dir);
	assert_non_null(f = fopen(path, "w"));
	ossl_check(PEM_write_X509(f, x), "PEM_write_X509");
	assert_int_equal(fclose(f), 0);
	snprintf(path, sizeof(path), "%s/key.pem", fx.dir);
	assert_non_null(f = fopen(path, "w"));
	assert_int_equal(fchmod(fileno(f), 0600), 0);
	ossl_check(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL), "PEM_write_PrivateKey");
	assert_int_equal(fclose(f), 0);
	X509_free(x);
	EVP_PKEY_free(k);
}

static void
nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	assert_true(fl >= 0);
	assert_int_equal(fcntl(fd, F_SETFL, fl | O_NONBLOCK), 0);
}

/* A loopback listening socket (non-blocking); its port in *port. */
static int
loopback_listen(int *port, int rcvbuf)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	/* Small receive buffers on the upstream: backpressure comes soon. */
	if (rcvbuf > 0)
		assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf,
		    sizeof(rcvbuf)), 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 8), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	nonblock(fd);
	*port = ntohs(sa.sin_port);
	return fd;
}

static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
}

/* One pass of the worker's loop, waiting 5 ms at most. */
static void
step(void)
{
	struct timeval tv = { 0, 5000 };

	evtimer_add(fx.tick, &tv);
	assert_true(event_base_loop(fx.w->base, EVLOOP_ONCE) >= 0);
}

/* Runs the loop until cond holds; fails after ms. */
#define RUN_UNTIL(cond, ms) do {						\
		int64_t end_ = cg_mono_ms() + (ms);				\
		while (!(cond)) {						\
			if (cg_mono_ms() > end_)				\
				fail_msg("timed out waiting for %s", #cond);	\
			step();							\
		}								\
	} while (0)

/*
 * libevent times events on a coarse monotonic clock (a tick of a few
 * milliseconds): a timer may fire that much before cg_mono_ms() says.
 */
#define CLOCK_SLACK_MS	10

/* Runs the loop for ms. */
static void
run_for(int64_t ms)
{
	int64_t end = cg_mono_ms() + ms;

	while (cg_mono_ms() < end)
		step();
}

static int
setup(void **state)
{
	const char *tmp = getenv("TMPDIR");
	struct cg_errors errs = { 0 };
	struct cg_config *cfg = NULL;
	char text[4096], err[256] = "";
	int up_port, lport, lfd;
	size_t i;

	(void)state;
	memset(&fx, 0, sizeof(fx));
	memset(&fk, 0, sizeof(fk));
	fx.cli = fx.up = -1;
	cg_log_level_set(CG_LOG_WARN);
	snprintf(fx.dir, sizeof(fx.dir), "%s/cg-session-XXXXXX", tmp != NULL ? tmp : P_tmpdir);
	assert_non_null(mkdtemp(fx.dir));
	make_cert();
	write_text("secrets.json", "{ \"a/b\": { \"username\": \"u\", \"password\": \"p\" } }\n",
	    0600);
	fx.up_lfd = loopback_listen(&up_port, 16384);
	/* A free port for the route's listener, which the test never uses:
	 * sessions are handed to conn_accept() directly. */
	lfd = loopback_listen(&lport, 0);
	close(lfd);
	snprintf(text, sizeof(text),
	    "credgate = { workers = 1; audit = { file = \"%s/audit.log\"; }; };\n"
	    "issuers = ();\n"
	    "secrets = { file = \"%s/secrets.json\"; };\n"
	    "routes = ( { name = \"a\"; listen = \"127.0.0.1:%d\";\n"
	    "\ttls = { cert = \"%s/cert.pem\"; key = \"%s/key.pem\"; };\n"
	    "\tupstream = { host = \"127.0.0.1\"; port = %d;\n"
	    "\t\ttls = { enabled = true; ca = \"%s/cert.pem\"; server_name = \"localhost\"; }; };\n"
	    "\tcredential = { path = \"a/b\"; }; owner = \"o\"; purpose = \"p\";\n"
	    "\tenvironment = \"e\"; expires = \"2099-01-01\"; } );\n",
	    fx.dir, fx.dir, lport, fx.dir, fx.dir, up_port, fx.dir);
	if (cg_config_load_string(text, "credgate.conf", 0, &cfg, &errs) != 0) {
		for (i = 0; i < errs.n; i++)
			print_message("  %s\n", errs.msgs[i]);
		fail_msg("configuration not loaded");
	}
	cg_errors_clear(&errs);
	if (server_new("credgate.conf", cfg, &fx.p, err, sizeof(err)) != 0)
		fail_msg("server_new: %s", err);
	fx.w = &fx.p->workers[0];
	assert_int_equal(fx.p->gen->nroutes, 1);
	fx.rt = &fx.w->gen->routes[0];
	assert_non_null(fx.rt->server_ctx);
	fx.rt->proto = &fake_ops;
	assert_non_null(fx.tick = evtimer_new(fx.w->base, tick_cb, NULL));
	return 0;
}

static int
teardown(void **state)
{
	const char *const files[] = { "cert.pem", "key.pem", "secrets.json", "audit.log" };
	char path[512];
	size_t i;

	(void)state;
	if (fx.cli >= 0)
		close(fx.cli);
	if (fx.up >= 0)
		close(fx.up);
	close(fx.up_lfd);
	event_free(fx.tick);
	server_free(fx.p);
	for (i = 0; i < CG_ARRAY_LEN(files); i++) {
		snprintf(path, sizeof(path), "%s/%s", fx.dir, files[i]);
		(void)unlink(path);
	}
	(void)rmdir(fx.dir);
	return 0;
}

/*
 * A caller connects: its end stays with the test (non-blocking), the
 * accepted end goes to conn_accept() as the worker would hand it over.
 * first: bytes sent before the accept (read at once by conn_accept).
 */
static void
caller_connect(const char *first)
{
	struct sockaddr_storage ss;
	struct sockaddr_in sa = { .sin_family = AF_INET };
	struct cg_pending_slot slot;
	socklen_t len = sizeof(ss);
	int lfd, port, fd, small = 32768, why = 0;

	lfd = loopback_listen(&port, 0);
	assert_true((fx.cli = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
	/* Small buffers on the caller: what the engine does not read stays
	 * in the kernel, and a slow reader is soon one. */
	assert_int_equal(setsockopt(fx.cli, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
	assert_int_equal(setsockopt(fx.cli, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((uint16_t)port);
	assert_int_equal(connect(fx.cli, (struct sockaddr *)&sa, sizeof(sa)), 0);
	if (first != NULL)
		assert_int_equal(send(fx.cli, first, strlen(first), 0), (ssize_t)strlen(first));
	do {
		fd = accept(lfd, (struct sockaddr *)&ss, &len);
	} while (fd < 0 && errno == EAGAIN);
	assert_true(fd >= 0);
	close(lfd);
	/* And on the engine's end, whose send buffer would otherwise grow to
	 * megabytes: its queued output is what the tests look at. */
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
	nonblock(fd);
	nonblock(fx.cli);
	assert_true(worker_conn_admit(fx.w, fx.rt, &why));
	assert_true(pending_add(fx.p->pending, (struct sockaddr *)&ss, 1000, &slot));
	conn_accept(fx.w, fx.rt, fd, (struct sockaddr *)&ss, (int)len, &slot);
}

/* The one live session, or NULL. */
static struct conn *
session(void)
{
	return TAILQ_FIRST(&fx.w->conns);
}

static bool
up_accepted(void)
{
	if (fx.up < 0 && (fx.up = accept(fx.up_lfd, NULL, NULL)) >= 0)
		nonblock(fx.up);
	return fx.up >= 0;
}

/* Reads what fd has into b; true at the end of the stream. */
static bool
take(int fd, struct evbuffer *b)
{
	int n;

	while ((n = evbuffer_read(b, fd, 65536)) > 0)
		;
	return n == 0;
}

static void
send_all(int fd, const char *s)
{
	assert_int_equal(send(fd, s, strlen(s), MSG_NOSIGNAL), (ssize_t)strlen(s));
}

static bool
has(struct evbuffer *b, const char *s)
{
	return evbuffer_get_length(b) == strlen(s) &&
	    memcmp(evbuffer_pullup(b, -1), s, strlen(s)) == 0;
}

/* A session in plain relay, its upstream accepted by the test. */
static struct conn *
relaying(void)
{
	struct conn *c;

	fk.mode = FAKE_RELAY;
	caller_connect(NULL);
	RUN_UNTIL(up_accepted() && fk.connected == 1, 2000);
	assert_non_null(c = session());
	assert_int_equal(c->state, CONN_RELAY);
	return c;
}

/* ------------------------------------------------------------------ */
/* 1. States and the one timer                                         */
/* ------------------------------------------------------------------ */

static void
test_timer_fires_once(void **state)
{
	struct conn *c;

	(void)state;
	fk.mode = FAKE_TIMER;
	fk.arm_ms = 50;
	caller_connect(NULL);
	assert_int_equal(fk.starts, 1);
	assert_non_null(c = session());
	assert_int_equal(c->state, CONN_PROTO);
	assert_int_equal(fx.w->nconns, 1);
	RUN_UNTIL(fk.timeouts == 1, 2000);
	assert_true(fk.timeout_at - fk.armed_at >= 50 - CLOCK_SLACK_MS);
	/* Once: nothing re-armed it. */
	run_for(200);
	assert_int_equal(fk.timeouts, 1);
	assert_ptr_equal(session(), c);
	assert_int_equal(c->state, CONN_PROTO);
}

static void
test_timer_rearm_later(void **state)
{
	int64_t t0;

	(void)state;
	fk.mode = FAKE_TIMER;
	fk.arm_ms = 100;
	fk.rearm_ms = 400;
	caller_connect(NULL);
	t0 = cg_mono_ms();
	send_all(fx.cli, "x");
	RUN_UNTIL(fk.rearmed_at != 0, 2000);
	/* The first deadline is gone, not kept beside the new one. */
	while (cg_mono_ms() - t0 < 300) {
		step();
		assert_int_equal(fk.timeouts, 0);
	}
	RUN_UNTIL(fk.timeouts == 1, 2000);
	assert_true(fk.timeout_at - fk.rearmed_at >= 400 - CLOCK_SLACK_MS);
	run_for(150);
	assert_int_equal(fk.timeouts, 1);
}

static void
test_timer_rearm_earlier(void **state)
{
	(void)state;
	fk.mode = FAKE_TIMER;
	fk.arm_ms = 5000;
	fk.rearm_ms = 30;
	caller_connect(NULL);
	run_for(50);
	assert_int_equal(fk.timeouts, 0);
	send_all(fx.cli, "x");
	RUN_UNTIL(fk.timeouts == 1, 1000);
	assert_true(fk.timeout_at - fk.rearmed_at >= 30 - CLOCK_SLACK_MS);
	assert_true(fk.timeout_at - fk.armed_at < 5000);
}

/* ------------------------------------------------------------------ */
/* 2. Plain relay and backpressure                                     */
/* ------------------------------------------------------------------ */

static void
test_relay_both_ways(void **state)
{
	struct evbuffer *to_up = evbuffer_new(), *to_cli = evbuffer_new();
	struct conn *c;
	int i;

	(void)state;
	c = relaying();
	for (i = 0; i < 3; i++) {
		evbuffer_drain(to_up, evbuffer_get_length(to_up));
		evbuffer_drain(to_cli, evbuffer_get_length(to_cli));
		send_all(fx.cli, "ping from the caller");
		RUN_UNTIL((take(fx.up, to_up), has(to_up, "ping from the caller")), 2000);
		send_all(fx.up, "pong from the upstream");
		RUN_UNTIL((take(fx.cli, to_cli), has(to_cli, "pong from the upstream")), 2000);
	}
	assert_int_equal(c->state, CONN_RELAY);
	assert_int_equal(fk.timeouts, 0);
	evbuffer_free(to_up);
	evbuffer_free(to_cli);
}

/*
 * The caller writes until its socket takes no more; the upstream reads
 * nothing.  Returns the bytes the caller got out.
 */
static uint64_t
caller_flood(uint64_t sent)
{
	unsigned char chunk[16384];
	ssize_t n;
	size_t k;

	for (;;) {
		for (k = 0; k < sizeof(chunk); k++)
			chunk[k] = pat(sent + k);
		n = send(fx.cli, chunk, sizeof(chunk), MSG_NOSIGNAL);
		if (n < 0) {
			assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
			return sent;
		}
		sent += (uint64_t)n;
	}
}

static void
test_relay_backpressure(void **state)
{
	struct evbuffer *got = evbuffer_new();
	struct conn *c;
	uint64_t sent = 0, bytes_in;
	size_t queued;
	int64_t end;
	int quiet = 0;

	(void)state;
	c = relaying();
	/* Until the engine stops reading: its upstream output over the high
	 * watermark, and nothing more taken from the caller for a while. */
	end = cg_mono_ms() + 10000;
	while (quiet < 20) {
		assert_true(cg_mono_ms() < end);
		bytes_in = c->bytes_in;
		sent = caller_flood(sent);
		step();
		quiet = c->relay_cli_paused && c->bytes_in == bytes_in ? quiet + 1 : 0;
	}
	queued = evbuffer_get_length(bufferevent_get_output(c->up));
	assert_true(queued > RELAY_HIGH);
	/* Bounded: one read's worth past the mark at most. */
	assert_true(queued <= RELAY_HIGH + CONN_READ_MAX);
	assert_int_equal(evbuffer_get_length(bufferevent_get_input(c->cli)), 0);
	/* What the engine did not read waits in the kernel, on the caller's
	 * side of the connection. */
	assert_true(sent > c->bytes_in);
	bytes_in = c->bytes_in;
	run_for(100);
	assert_int_equal(c->bytes_in, bytes_in);
	assert_int_equal(evbuffer_get_length(bufferevent_get_output(c->up)), queued);

	/* The upstream reads: everything arrives, in order, and the caller's
	 * side is read again. */
	RUN_UNTIL((take(fx.up, got), evbuffer_get_length(got) == sent), 10000);
	pat_check(got, 0);
	assert_false(c->relay_cli_paused);
	assert_int_equal(c->bytes_in, sent);
	assert_int_equal(c->state, CONN_RELAY);
	evbuffer_free(got);
}

/* ------------------------------------------------------------------ */
/* 3. Close from either side                                           */
/* ------------------------------------------------------------------ */

static void
test_caller_closes(void **state)
{
	struct evbuffer *got = evbuffer_new();

	(void)state;
	(void)relaying();
	send_all(fx.cli, "last words");
	close(fx.cli);
	fx.cli = -1;
	/* What it sent goes on; then the upstream connection is closed. */
	RUN_UNTIL(take(fx.up, got), 2000);
	assert_true(has(got, "last words"));
	RUN_UNTIL(fk.frees == 1, 2000);
	assert_string_equal(fk.freed_reason, "client_closed");
	assert_int_equal(fx.w->nconns, 0);
	assert_true(TAILQ_EMPTY(&fx.w->conns));
	assert_true(TAILQ_EMPTY(&fx.w->dead));
	assert_int_equal(fk.eofs, 0);	/* relaying: the engine's own */
	evbuffer_free(got);
}

/*
 * The upstream answers total bytes, more than the caller's socket takes,
 * then closes; the caller does not read yet.  Under the high watermark
 * the engine has read it all and closes its side once the answer is out;
 * over it, the upstream is read again (and its end seen) as the caller
 * drains.
 */
static void
upstream_closes(size_t total)
{
	struct evbuffer *out = evbuffer_new(), *got = evbuffer_new();
	struct conn *c;
	ssize_t n;

	c = relaying();
	pat_add(out, 0, total);
	while (evbuffer_get_length(out) > 0) {
		n = evbuffer_write(out, fx.up);
		assert_true(n > 0 || errno == EAGAIN);
		step();
	}
	close(fx.up);
	fx.up = -1;
	if (total < RELAY_HIGH) {
		RUN_UNTIL(c->state == CONN_CLOSING, 2000);
		assert_ptr_equal(session(), c);
		assert_null(c->up);
		assert_true(evbuffer_get_length(bufferevent_get_output(c->cli)) > 0);
	} else {
		run_for(100);
		assert_int_equal(c->state, CONN_RELAY);
		assert_true(c->relay_up_paused);
	}
	/* The caller reads: all of it, then the end of the stream. */
	RUN_UNTIL(take(fx.cli, got), 10000);
	assert_int_equal(evbuffer_get_length(got), total);
	pat_check(got, 0);
	RUN_UNTIL(fk.frees == 1, 2000);
	assert_string_equal(fk.freed_reason, "upstream_closed");
	assert_int_equal(fx.w->nconns, 0);
	evbuffer_free(out);
	evbuffer_free(got);
}

static void
test_upstream_closes(void **state)
{
	(void)state;
	upstream_closes(RELAY_HIGH - 16384);
}

static void
test_upstream_closes_paused(void **state)
{
	(void)state;
	upstream_closes(4 * RELAY_HIGH);
}

/* ------------------------------------------------------------------ */
/* 4. TLS started late, by the protocol                                */
/* The test's side of a TLS handshake, stepping the loop meanwhile. */
static void
handshake(SSL *ssl, bool server)
{
	int64_t end = cg_mono_ms() + 5000;
	int r, e;

	while ((r = server ? SSL_accept(ssl) : SSL_connect(ssl)) != 1) {
		e = SSL_get_error(ssl, r);
		if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
			ERR_print_errors_fp(stderr);
			fail_msg("TLS handshake: %d", e);
		}
		assert_true(cg_mono_ms() < end);
		step();
	}
}

/* ------------------------------------------------------------------ */

static void
test_start_tls_late(void **state)
{
	struct evbuffer *got = evbuffer_new();
	SSL_CTX *ctx;
	SSL *ssl;
	char buf[64], ch = 0;
	int r;
	int64_t end;

	(void)state;
	fk.mode = FAKE_STARTTLS;
	caller_connect("S");
	/* The answer before TLS, in plain. */
	RUN_UNTIL(recv(fx.cli, &ch, 1, 0) == 1, 2000);
	assert_int_equal(ch, 'S');
	assert_int_equal(fk.got_before_tls, 'S');
	assert_int_equal(fk.start_tls_rc, 0);
	assert_true(session()->tls);

	/* The caller's handshake over the same connection. */
	assert_non_null(ctx = SSL_CTX_new(TLS_client_method()));
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	assert_non_null(ssl = SSL_new(ctx));
	assert_int_equal(SSL_set_fd(ssl, fx.cli), 1);
	handshake(ssl, false);
	RUN_UNTIL(fk.tls_done == 1, 2000);
	assert_true(fk.tls_param);

	/* Bytes both ways over TLS, relayed to and from the upstream. */
	RUN_UNTIL(up_accepted() && fk.connected == 1, 2000);
	assert_int_equal(session()->state, CONN_RELAY);
	assert_int_equal(SSL_write(ssl, "over tls", 8), 8);
	RUN_UNTIL((take(fx.up, got), has(got, "over tls")), 2000);
	send_all(fx.up, "and back");
	end = cg_mono_ms() + 2000;
	while ((r = SSL_read(ssl, buf, sizeof(buf))) <= 0) {
		assert_int_equal(SSL_get_error(ssl, r), SSL_ERROR_WANT_READ);
		assert_true(cg_mono_ms() < end);
		step();
	}
	assert_int_equal(r, 8);
	assert_memory_equal(buf, "and back", 8);
	/* The caller's bytes count as the protocol saw them: "S", then the
	 * plaintext, not the handshake's or the records' bytes. */
	assert_int_equal(session()->bytes_in, 1 + 8);
	assert_int_equal(session()->bytes_out, 1 + 8);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	evbuffer_free(got);
}

/*
 * TLS towards the upstream, started by the protocol over a connection in
 * use: plain "S" up and back, then a handshake the upstream side (the
 * test, as server) verifies the engine completes, then bytes over TLS.
 */
static void
test_start_tls_upstream(void **state)
{
	struct evbuffer *got = evbuffer_new();
	SSL_CTX *ctx;
	SSL *ssl;
	char path[512], buf[64], ch = 0;
	int r;
	int64_t end;

	(void)state;
	fk.mode = FAKE_UPTLS;
	caller_connect(NULL);
	RUN_UNTIL(up_accepted(), 2000);
	RUN_UNTIL(recv(fx.up, &ch, 1, 0) == 1, 2000);
	assert_int_equal(ch, 'S');
	send_all(fx.up, "S");
	RUN_UNTIL(fk.up_answer == 'S', 2000);
	assert_int_equal(fk.up_start_tls_rc, 0);

	assert_non_null(ctx = SSL_CTX_new(TLS_server_method()));
	snprintf(path, sizeof(path), "%s/cert.pem", fx.dir);
	assert_int_equal(SSL_CTX_use_certificate_file(ctx, path, SSL_FILETYPE_PEM), 1);
	snprintf(path, sizeof(path), "%s/key.pem", fx.dir);
	assert_int_equal(SSL_CTX_use_PrivateKey_file(ctx, path, SSL_FILETYPE_PEM), 1);
	assert_non_null(ssl = SSL_new(ctx));
	assert_int_equal(SSL_set_fd(ssl, fx.up), 1);
	handshake(ssl, true);
	RUN_UNTIL(fk.up_tls_done == 1, 2000);
	assert_int_equal(fk.up_failed, 0);
	assert_true(session()->up_tls);
	assert_int_equal(session()->state, CONN_RELAY);

	/* The caller's plain bytes reach the upstream over TLS, and back. */
	send_all(fx.cli, "to the server");
	end = cg_mono_ms() + 2000;
	while ((r = SSL_read(ssl, buf, sizeof(buf))) <= 0) {
		assert_int_equal(SSL_get_error(ssl, r), SSL_ERROR_WANT_READ);
		assert_true(cg_mono_ms() < end);
		step();
	}
	assert_int_equal(r, 13);
	assert_memory_equal(buf, "to the server", 13);
	assert_int_equal(SSL_write(ssl, "and back", 8), 8);
	RUN_UNTIL((take(fx.cli, got), has(got, "and back")), 2000);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	evbuffer_free(got);
}

/* A server whose certificate the route does not trust: the late
 * handshake fails and the protocol hears it as a failed upstream. */
static void
test_start_tls_upstream_untrusted(void **state)
{
	SSL_CTX *ctx;
	SSL *ssl;
	EVP_PKEY *k;
	X509 *x;
	char ch = 0;
	int r;
	int64_t end;

	(void)state;
	fk.mode = FAKE_UPTLS;
	caller_connect(NULL);
	RUN_UNTIL(up_accepted(), 2000);
	RUN_UNTIL(recv(fx.up, &ch, 1, 0) == 1, 2000);
	send_all(fx.up, "S");
	RUN_UNTIL(fk.up_answer == 'S', 2000);
	assert_int_equal(fk.up_start_tls_rc, 0);

	/* Another self-signed certificate for the same name. */
	selfsigned(2, &k, &x);
	assert_non_null(ctx = SSL_CTX_new(TLS_server_method()));
	assert_int_equal(SSL_CTX_use_certificate(ctx, x), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(ctx, k), 1);
	assert_non_null(ssl = SSL_new(ctx));
	assert_int_equal(SSL_set_fd(ssl, fx.up), 1);
	end = cg_mono_ms() + 3000;
	while (fk.up_failed == 0 && cg_mono_ms() < end) {
		r = SSL_accept(ssl);
		if (r == 1 || (SSL_get_error(ssl, r) != SSL_ERROR_WANT_READ &&
		    SSL_get_error(ssl, r) != SSL_ERROR_WANT_WRITE))
			ERR_clear_error();
		step();
	}
	assert_int_equal(fk.up_failed, 1);
	assert_int_equal(fk.up_tls_done, 0);
	RUN_UNTIL(fk.frees == 1, 2000);
	assert_string_equal(fk.freed_reason, "fake_connect_failed");
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	X509_free(x);
	EVP_PKEY_free(k);
}

/* Upstream connections accepted since the last call (kept open). */
static unsigned
up_accept_new(int *fds, unsigned *nfds, unsigned max)
{
	unsigned n = 0;
	int fd;

	while (*nfds < max && (fd = accept(fx.up_lfd, NULL, NULL)) >= 0) {
		fds[(*nfds)++] = fd;
		n++;
	}
	return n;
}

/* One session of FAKE_LOGIN as s, to its close; how many new upstream
 * connections it made. */
static unsigned
login_session(struct secret *s, int *fds, unsigned *nfds, unsigned max)
{
	unsigned before = fk.connected, made = 0;

	fk.login = s;
	fk.pooled = false;
	caller_connect(NULL);
	RUN_UNTIL(fk.connected == before + 1 &&
	    (made += up_accept_new(fds, nfds, max), session() == NULL), 2000);
	run_for(20);
	made += up_accept_new(fds, nfds, max);
	close(fx.cli);
	fx.cli = -1;
	return made;
}

/*
 * A connection that carries a login goes back to the pool under the
 * credential version it logged in with: the next session with that
 * version takes it, a session holding another version never does.
 */
static void
test_pool_by_credential_version(void **state)
{
	const char *names[] = { "username", "password" };
	const char *v1[] = { "svc", "one" }, *v2[] = { "svc", "two" };
	const size_t l1[] = { 3, 3 }, l2[] = { 3, 3 };
	struct secret *s1, *s2, *s1b;
	int fds[8];
	unsigned nfds = 0, i;

	(void)state;
	fk.mode = FAKE_LOGIN;
	assert_int_equal(secret_new("a/b", "1", 2, names, v1, l1, &s1), 0);
	assert_int_equal(secret_new("a/b", "2", 2, names, v2, l2, &s2), 0);
	/* The same version fetched again: another object, the same login. */
	assert_int_equal(secret_new("a/b", "1", 2, names, v1, l1, &s1b), 0);

	assert_int_equal(login_session(s1, fds, &nfds, 8), 1);
	assert_false(fk.pooled);
	assert_true(worker_up_any(fx.w));
	/* Version 2 never gets version 1's connection. */
	assert_int_equal(login_session(s2, fds, &nfds, 8), 1);
	assert_false(fk.pooled);
	/* Version 1 takes its own back, and so does a new fetch of it. */
	assert_int_equal(login_session(s1, fds, &nfds, 8), 0);
	assert_true(fk.pooled);
	assert_int_equal(login_session(s1b, fds, &nfds, 8), 0);
	assert_true(fk.pooled);
	assert_int_equal(login_session(s2, fds, &nfds, 8), 0);
	assert_true(fk.pooled);
	assert_int_equal(nfds, 2);

	for (i = 0; i < nfds; i++)
		close(fds[i]);
	worker_up_clear(fx.w);
	secret_unref(s1);
	secret_unref(s2);
	secret_unref(s1b);
}

/* ------------------------------------------------------------------ */
/* 5. finish() flushes the queued output before closing                */
/* ------------------------------------------------------------------ */

static void
test_finish_flushes(void **state)
{
	struct evbuffer *got = evbuffer_new();
	struct conn *c;

	(void)state;
	fk.mode = FAKE_FINISH;
	caller_connect("F");
	assert_non_null(c = session());
	/* The caller does not read yet: the answer waits, the session with it. */
	run_for(100);
	assert_ptr_equal(session(), c);
	assert_int_equal(c->state, CONN_CLOSING);
	assert_true(evbuffer_get_length(bufferevent_get_output(c->cli)) > 0);
	assert_int_equal(fk.frees, 0);
	RUN_UNTIL(take(fx.cli, got), 5000);
	assert_int_equal(evbuffer_get_length(got), FINISH_BYTES);
	pat_check(got, 0);
	RUN_UNTIL(fk.frees == 1, 2000);
	assert_string_equal(fk.freed_reason, "fake_finish");
	assert_int_equal(fx.w->nconns, 0);
	evbuffer_free(got);
}

static void
test_finish_linger(void **state)
{
	struct evbuffer *got = evbuffer_new();
	struct conn *c;

	(void)state;
	fk.mode = FAKE_FINISH;
	caller_connect("L");
	assert_non_null(c = session());
	/* All of the answer, then our side's end of the stream, while the
	 * session stays to read and drop what the caller still sends. */
	RUN_UNTIL(take(fx.cli, got), 5000);
	assert_int_equal(evbuffer_get_length(got), FINISH_BYTES);
	pat_check(got, 0);
	assert_ptr_equal(session(), c);
	assert_true(c->lingering);
	send_all(fx.cli, "still sending");
	RUN_UNTIL(c->lingered >= strlen("still sending"), 2000);
	assert_int_equal(fk.frees, 0);
	close(fx.cli);
	fx.cli = -1;
	RUN_UNTIL(fk.frees == 1, 2000);
	assert_string_equal(fk.freed_reason, "fake_finish");
	assert_int_equal(fx.w->nconns, 0);
	evbuffer_free(got);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_timer_fires_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timer_rearm_later, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timer_rearm_earlier, setup, teardown),
		cmocka_unit_test_setup_teardown(test_relay_both_ways, setup, teardown),
		cmocka_unit_test_setup_teardown(test_relay_backpressure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_caller_closes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_upstream_closes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_upstream_closes_paused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_start_tls_late, setup, teardown),
		cmocka_unit_test_setup_teardown(test_start_tls_upstream, setup, teardown),
		cmocka_unit_test_setup_teardown(test_start_tls_upstream_untrusted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pool_by_credential_version, setup, teardown),
		cmocka_unit_test_setup_teardown(test_finish_flushes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_finish_linger, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
