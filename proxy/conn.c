/*
 * conn.c: one client connection, from accept to close.
 *
 * For each request: read the head, check its framing, verify the caller's
 * token, decide, fetch the credential, write the audit event, forward the
 * request with the credential injected, relay the response.  Keep-alive and
 * pipelining: requests are handled one at a time, in order.
 *
 * Owns struct conn and everything it points to; conn_close() is the only
 * way out and the reaper the only place a connection is freed.  Holds a
 * reference to one secret at a time and never sees the cache's insides.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "injectors/http/http.h"
#include "policy/policy.h"
#include "proxy/audit.h"
#include "injectors/http/http_parse.h"
#include "proxy/metrics.h"
#include "proxy/server.h"
#include "proxy/tls.h"
#include "vault-client/vault.h"

#define REQ_HOLD_MAX	(16 * 1024)	/* request bytes held back until the message is whole */
#define RELAY_HIGH	(256 * 1024)	/* queued output that stops reading the other side */
#define RELAY_LOW	(64 * 1024)	/* ... and lets it read again */
#define PIPELINE_MAX	(64 * 1024)	/* pipelined bytes buffered while a request is in flight */
#define LINGER_MS	5000		/* to flush the final bytes */
#define LINGER_TIME_MS	10000		/* lingering close, all in all */
#define LINGER_READ_MS	2000		/* ... between two reads */
#define LINGER_BYTES	(4 * 1024 * 1024) /* ... dropped at most */
#define MAX_TRAILER	4096
#define AUDIT_LINE_MAX	(64 * 1024)

enum conn_state {
	CONN_IDENTIFY,	/* reading a request head; header timer (idle timer
			   before the first byte of a later request) */
	CONN_DECIDE,	/* waiting for the credential; client reads off;
			   upstream_response timer */
	CONN_RELAY,	/* request up, response down; connect timer, then
			   response timer, re-armed on progress */
	CONN_CLOSING,	/* flushing the final bytes; linger timer.  Then,
			   lingering: reading and dropping the caller's
			   input; linger read timer */
};

struct conn {
	TAILQ_ENTRY(conn) link;
	TAILQ_ENTRY(conn) audit_link;	/* in w->audit_waiters while audit_wait */
	TAILQ_ENTRY(conn) pend_link;	/* in w->pending while pending */
	uint64_t id;
	struct cg_worker *w;
	struct cg_gen *gen;		/* the generation of the request in flight: the
					   worker's newest when the request began */
	struct cg_route_rt *rt;		/* in gen */
	const struct cg_route *route;	/* in gen */
	const struct cg_config *cfg;	/* gen->cfg */
	struct cg_route_metrics *rm;
	enum conn_state state;
	bool closed;
	char close_reason[96];		/* why, for the close log line and session_end */

	struct bufferevent *cli;
	struct bufferevent *up;
	struct event *cli_rev;		/* plain client socket: read event (conn_read) */
	struct event *up_rev;		/* plain upstream socket, once connected */
	struct event *timer;
	bool up_connected;
	bool up_idle;			/* its last response is complete: reusable */
	bool pending;			/* no complete request head yet; counts in
					   w->proc->pending at pend_slot */
	struct cg_pending_slot pend_slot;
	bool linger;			/* after an early answer: the caller may
					   still be sending */
	bool lingering;			/* answer out, our side shut: reading and
					   dropping input until the caller closes */
	int64_t linger_end_ms;		/* lingering stops then (monotonic) */
	uint64_t lingered;		/* bytes dropped while lingering */
	bool cli_eof;
	bool cli_read_paused;
	bool cli_watched;		/* its read event was ever turned on */
	bool up_read_paused;
	bool flushing;			/* conn_flush() is running */
	bool audit_wait;		/* decided; forwards once its event is written */
	bool tls;			/* the client side is TLS */
	bool peer_ok;			/* a client certificate was verified */
	struct tls_peer tpeer;		/* its subject and SANs */
	struct policy_peer ppeer;	/* the same, as policy sees it */
	char **peer_sans;		/* "dns:...", "uri:..." for ppeer */

	char peer_ip[INET6_ADDRSTRLEN];
	int peer_port;
	char peer[INET6_ADDRSTRLEN + 8];
	int64_t born_ms;		/* monotonic */
	uint64_t bytes_in;		/* from the client */
	uint64_t bytes_out;		/* to the client */
	unsigned requests;
	int last_status;		/* sent to the caller, ours or relayed */
	int upstream_status;		/* the upstream's, for that same response;
					   0 when credgate answered itself */

	/* The request in flight. */
	char *head;			/* copy of the request head; req's spans point here */
	char *target;			/* normalised request-target */
	struct http_span authority;	/* an absolute-form target's, in head */
	bool host_mismatch;		/* its Host field named another (ignored) */
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
	int64_t req_start_ms;
	char request_id[72];
	char method[24];
	char path[512];			/* for logs and audit, truncated */
	struct policy_identity *ident;
	struct policy_decision dec;
	bool decided;
	struct secret *cred;
	struct secret_wait *wait;

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

static void conn_close(struct conn *c, const char *reason);
static void conn_read_head(struct conn *c);
static void conn_feed_request(struct conn *c);
static void conn_up_read(struct bufferevent *bev, void *arg);
static void conn_forward(struct conn *c);
static void conn_up_write(struct bufferevent *bev, void *arg);
static void conn_cli_write(struct bufferevent *bev, void *arg);

/* ------------------------------------------------------------------ */
/* Timers and state                                                    */
/* ------------------------------------------------------------------ */

static void
conn_arm(struct conn *c, int64_t ms)
{
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };

	evtimer_add(c->timer, &tv);
}

/* The one place the state changes; arms the state's timer. */
static void
conn_state_set(struct conn *c, enum conn_state st)
{
	const struct cg_config *cfg = c->cfg;

	c->state = st;
	switch (st) {
	case CONN_IDENTIFY:
		if (c->requests == 0 ||
		    evbuffer_get_length(bufferevent_get_input(c->cli)) > 0)
			conn_arm(c, cfg->client_header_timeout_ms);
		else
			conn_arm(c, cfg->client_idle_timeout_ms);
		break;
	case CONN_DECIDE:
		conn_arm(c, cfg->upstream_response_timeout_ms);
		break;
	case CONN_RELAY:
		if (!c->up_connected)
			conn_arm(c, cfg->upstream_connect_timeout_ms);
		else if (!c->resp_head_done)
			conn_arm(c, cfg->upstream_response_timeout_ms);
		else
			conn_arm(c, cfg->client_idle_timeout_ms);
		break;
	case CONN_CLOSING:
		conn_arm(c, LINGER_MS);
		break;
	}
}

/* Re-arms the current state's timer after progress. */
static void
conn_progress(struct conn *c)
{
	if (!c->closed && c->state == CONN_RELAY)
		conn_state_set(c, CONN_RELAY);
}

/* ------------------------------------------------------------------ */
/* Writing                                                             */
/* ------------------------------------------------------------------ */

/*
 * A plain socket is written to at once.  Its bufferevent keeps EV_WRITE
 * off; conn_flush() writes what the callbacks queued when they are done,
 * and turns EV_WRITE on only for what the socket did not take, off again
 * when that has drained (the write callbacks).  Arming a write event for
 * every message would cost two epoll_ctl calls each way of a request.  A
 * TLS bufferevent keeps EV_WRITE on and writes through libevent.
 */
static bool
conn_cli_plain(const struct conn *c)
{
	return !c->tls;
}

static bool
conn_up_plain(const struct conn *c)
{
	return c->rt->client_ctx == NULL;
}

/*
 * Writes all of out that one sendmsg() takes, held for more with
 * MSG_MORE when that is all there is.  Bytes a full socket did not take
 * are written later by libevent as usual; that write sends what MSG_MORE
 * held.
 */
static void
conn_send_held(struct evbuffer *out, evutil_socket_t fd)
{
	struct evbuffer_iovec v[16];
	struct iovec iov[16];
	struct msghdr msg;
	size_t all = 0;
	ssize_t sent;
	int i, n;

	n = evbuffer_peek(out, -1, NULL, v, 16);
	if (n > 16)
		n = 16;
	for (i = 0; i < n; i++) {
		iov[i].iov_base = v[i].iov_base;
		iov[i].iov_len = v[i].iov_len;
		all += v[i].iov_len;
	}
	memset(&msg, 0, sizeof(msg));
	msg.msg_iov = iov;
	msg.msg_iovlen = (size_t)n;
	sent = sendmsg(fd, &msg, MSG_NOSIGNAL |
	    (all == evbuffer_get_length(out) ? MSG_MORE : 0));
	if (sent > 0)
		evbuffer_drain(out, (size_t)sent);
}

/*
 * Writes bev's output now.  Returns true when it drained, so that the
 * caller runs what the write callback would have; false when there was
 * nothing to write or libevent has the rest (EV_WRITE on; a write error
 * then reaches the event callback the usual way).
 *
 * last: the connection closes once these bytes are written (a plain
 * caller's final ones).  They go with MSG_MORE and, when all of them
 * went, shutdown() follows at once, so that the kernel puts the FIN into
 * the segment that carries them: one segment less for both ends than a
 * write and a FIN of its own at close.  close() alone would not do:
 * with unread input it resets the connection and drops the bytes still
 * held, an error response among them.
 */
static bool
conn_push(struct bufferevent *bev, bool last)
{
	struct evbuffer *out = bufferevent_get_output(bev);
	evutil_socket_t fd = bufferevent_getfd(bev);

	if (evbuffer_get_length(out) == 0 || (bufferevent_get_enabled(bev) & EV_WRITE))
		return false;
	/* A socket bufferevent keeps its output's start frozen; libevent's
	 * own write callback thaws it the same way around its write. */
	evbuffer_unfreeze(out, 1);
	if (last)
		conn_send_held(out, fd);
	else
		(void)evbuffer_write(out, fd);
	evbuffer_freeze(out, 1);
	if (evbuffer_get_length(out) == 0) {
		if (last)
			(void)shutdown(fd, SHUT_WR);
		return true;
	}
	bufferevent_enable(bev, EV_WRITE);
	return false;
}

/*
 * Runs last in every callback of a connection: writes both sides' queued
 * output, and repeats while a drained side lets the other go on (a paused
 * read resumed, a final response flushed).
 */
static void
conn_flush(struct conn *c)
{
	bool again;

	if (c->flushing)
		return;
	c->flushing = true;
	do {
		again = false;
		if (!c->closed && c->up != NULL && c->up_connected && conn_up_plain(c) &&
		    conn_push(c->up, false)) {
			conn_up_write(c->up, c);
			again = true;
		}
		if (!c->closed && conn_cli_plain(c) &&
		    conn_push(c->cli, c->state == CONN_CLOSING)) {
			conn_cli_write(c->cli, c);
			again = true;
		}
	} while (again && !c->closed);
	c->flushing = false;
}

/* After libevent drained a plain socket's output, EV_WRITE goes off again. */
static void
conn_write_done(struct bufferevent *bev, bool plain)
{
	if (plain && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		bufferevent_disable(bev, EV_WRITE);
}

/* ------------------------------------------------------------------ */
/* Reading                                                             */
/* ------------------------------------------------------------------ */

/*
 * A plain socket is read by an event of our own into its bufferevent's
 * input, instead of by the bufferevent, which asks the kernel how much is
 * waiting (FIONREAD) before every read: one system call less per read.
 * The handlers are the same; an end of stream or an error reaches the
 * event handler as it would from libevent, with reading stopped.  A TLS
 * side, and an upstream not yet connected, are read by their bufferevent.
 */
static void
conn_side_reading(struct bufferevent *bev, struct event *rev, bool on)
{
	if (rev == NULL) {
		if (on)
			bufferevent_enable(bev, EV_READ);
		else
			bufferevent_disable(bev, EV_READ);
	} else if (on)
		event_add(rev, NULL);
	else
		event_del(rev);
}

static void
conn_cli_reading(struct conn *c, bool on)
{
	if (on)
		c->cli_watched = true;
	conn_side_reading(c->cli, c->cli_rev, on);
}

static void
conn_up_reading(struct conn *c, bool on)
{
	if (c->up != NULL)
		conn_side_reading(c->up, c->up_rev, on);
}

/*
 * One read of fd into bev's input.  Returns what read() returned, with
 * errno kept; -1 with ENOMEM when the buffer cannot grow (what was read
 * is then lost, and the caller closes).
 *
 * The bytes land in the worker's read buffer first and are copied into a
 * chain of their own size: reserving CONN_READ_MAX in the input itself
 * would cost a large allocation for every read, however few bytes come.
 */
static ssize_t
conn_read(struct conn *c, struct bufferevent *bev, evutil_socket_t fd)
{
	struct evbuffer *in = bufferevent_get_input(bev);
	char *buf = c->w->rbuf;
	ssize_t got;
	int r, saved;

	got = read(fd, buf, CONN_READ_MAX);
	saved = errno;
	if (got > 0) {
		/* A socket bufferevent keeps its input's end frozen; libevent
		 * thaws it the same way around its own reads. */
		evbuffer_unfreeze(in, 0);
		r = evbuffer_add(in, buf, (size_t)got);
		evbuffer_freeze(in, 0);
		cg_wipe(buf, (size_t)got);	/* tokens pass through here */
		if (r != 0) {
			errno = ENOMEM;
			return -1;
		}
	}
	errno = saved;
	return got;
}

static bool
conn_retry_later(int err)
{
	return err == EAGAIN || err == EWOULDBLOCK || err == EINTR;
}

static void conn_cli_read(struct bufferevent *bev, void *arg);
static void conn_cli_event(struct bufferevent *bev, short what, void *arg);
static void conn_up_event(struct bufferevent *bev, short what, void *arg);

static void
conn_cli_readable(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	ssize_t n = conn_read(c, c->cli, fd);

	if (n > 0)
		conn_cli_read(c->cli, c);
	else if (n == 0 || !conn_retry_later(errno)) {
		conn_cli_reading(c, false);
		conn_cli_event(c->cli, BEV_EVENT_READING |
		    (n == 0 ? BEV_EVENT_EOF : BEV_EVENT_ERROR), c);
	}
	conn_flush(c);
}

static void
conn_up_readable(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	ssize_t n;

	if (c->up == NULL)
		return;
	n = conn_read(c, c->up, fd);
	if (n > 0)
		conn_up_read(c->up, c);
	else if (n == 0 || !conn_retry_later(errno)) {
		conn_up_reading(c, false);
		conn_up_event(c->up, BEV_EVENT_READING |
		    (n == 0 ? BEV_EVENT_EOF : BEV_EVENT_ERROR), c);
	}
	conn_flush(c);
}

/*
 * A plain upstream that is connected is read by conn_up_readable from now
 * on.  On failure (no memory) its bufferevent keeps reading.
 */
static void
conn_up_own_reads(struct conn *c)
{
	if (c->up_rev != NULL || !conn_up_plain(c))
		return;
	c->up_rev = event_new(c->w->base, bufferevent_getfd(c->up), EV_READ | EV_PERSIST,
	    conn_up_readable, c);
	if (c->up_rev == NULL)
		return;
	/* Added before the bufferevent lets go: the descriptor stays watched
	 * throughout, so libevent changes nothing in epoll. */
	event_add(c->up_rev, NULL);
	bufferevent_disable(c->up, EV_READ);
}

/* Hands reading back to the upstream's bufferevent (it is let go). */
static void
conn_up_drop_reads(struct conn *c)
{
	if (c->up_rev != NULL) {
		event_free(c->up_rev);
		c->up_rev = NULL;
	}
}

/* ------------------------------------------------------------------ */
/* Audit                                                               */
/* ------------------------------------------------------------------ */

static void
conn_audit_begin(struct conn *c, struct jw *w, const char *event)
{
	char ts[40];

	jw_init(w, AUDIT_LINE_MAX);
	jw_obj_begin(w, NULL);
	jw_str(w, "time", cg_time_format_ms(cg_now_ms(), ts, sizeof(ts)));
	jw_str(w, "event", event);
	jw_str(w, "request_id", c->request_id[0] ? c->request_id : NULL);
	jw_str(w, "route", c->route->policy.name);
	jw_obj_begin(w, "client");
	jw_str(w, "addr", c->peer_ip);
	jw_int(w, "port", c->peer_port);
	jw_bool(w, "tls", c->tls);
	if (c->peer_ok) {
		jw_str(w, "subject", c->tpeer.subject);
		jw_str(w, "spiffe_id", c->tpeer.spiffe_id);
	}
	jw_obj_end(w);
}

static void
conn_audit_request(struct conn *c, struct jw *w)
{
	if (!c->in_request) {
		jw_null(w, "request");
		return;
	}
	jw_obj_begin(w, "request");
	jw_str(w, "method", c->method);
	jw_str(w, "path", c->path);
	if (c->host_mismatch)
		jw_bool(w, "host_mismatch", true);
	jw_obj_end(w);
}

static void
conn_audit_identity(struct conn *c, struct jw *w)
{
	const struct policy_identity *id = c->ident;
	const struct cg_issuer_ext *ext = NULL;
	json_t *v, *aud;
	size_t i;

	if (id == NULL) {
		jw_null(w, "identity");
		return;
	}
	jw_obj_begin(w, "identity");
	jw_str(w, "method", id->method);
	jw_str(w, "issuer", id->issuer ? id->issuer->name : NULL);
	jw_str(w, "iss", id->iss);
	jw_str(w, "sub", id->sub);
	jw_arr_begin(w, "aud");
	aud = id->aud;
	if (json_is_string(aud))
		jw_str(w, NULL, json_string_value(aud));
	else if (json_is_array(aud)) {
		json_array_foreach(aud, i, v) {
			if (json_is_string(v))
				jw_str(w, NULL, json_string_value(v));
		}
	}
	jw_arr_end(w);
	jw_str(w, "jti", id->jti);
	jw_str(w, "alg", id->alg);
	jw_str(w, "kid", id->kid[0] ? id->kid : NULL);
	jw_obj_begin(w, "claims");
	for (i = 0; i < c->cfg->nissuers; i++)
		if (c->cfg->issuers[i] == id->issuer)
			ext = &c->cfg->issuer_ext[i];
	for (i = 0; ext != NULL && i < ext->naudit_claims; i++) {
		if ((v = policy_claim_lookup(id->claims, ext->audit_claims[i])) != NULL)
			jw_json(w, ext->audit_claims[i], v);
	}
	jw_obj_end(w);
	jw_obj_end(w);
}

static void
conn_audit_credential(struct conn *c, struct jw *w)
{
	jw_obj_begin(w, "credential");
	jw_str(w, "source", c->cfg->secrets_backend);
	jw_str(w, "path", c->route->secret_path);
	jw_str(w, "version", c->cred ? secret_version(c->cred) : NULL);
	jw_str(w, "inject", inj_http_kind_name(c->route->inject.kind));
	jw_obj_end(w);
}

/*
 * Queues the event in the worker's batch, which conn_audit_flush() writes
 * at the end of this pass of the event loop.  Returns 0 when queued (the
 * write itself may still fail), or CG_ERR_LIMIT or CG_ERR_NOMEM when the
 * event is lost now.
 */
static int
conn_audit_end(struct conn *c, struct jw *w)
{
	int r;

	jw_obj_end(w);
	if (w->err) {
		cg_err("msg=audit_event_too_large conn=%llu route=%s",
		    (unsigned long long)c->id, c->route->policy.name);
		jw_free(w);
		metrics_audit_failures(c->w->metrics, 1);
		return CG_ERR_LIMIT;
	}
	r = cg_audit_batch_add(&c->w->audit, w->buf, w->len);
	jw_free(w);
	if (r == CG_ERR_NOMEM) {
		cg_err("msg=audit_write_failed conn=%llu route=%s error=\"out of memory\"",
		    (unsigned long long)c->id, c->route->policy.name);
		metrics_audit_failures(c->w->metrics, 1);
		return r;
	}
	if (!cg_audit_batch_empty(&c->w->audit))
		event_active(c->w->audit_ev, EV_TIMEOUT, 0);
	return 0;
}

/* A closed connection leaves the waiters of conn_audit_flush(). */
static void
conn_audit_unwait(struct conn *c)
{
	if (c->audit_wait) {
		TAILQ_REMOVE(&c->w->audit_waiters, c, audit_link);
		c->audit_wait = false;
	}
}

/* The decision event (see conn_decided() for when it is written). */
static int
conn_audit_decision(struct conn *c, const char *reason)
{
	struct jw w;

	conn_audit_begin(c, &w, "decision");
	conn_audit_identity(c, &w);
	conn_audit_request(c, &w);
	jw_obj_begin(&w, "decision");
	jw_str(&w, "result", policy_result_name(c->dec.result));
	jw_str(&w, "rule", c->dec.rule);
	jw_str(&w, "reason", reason ? reason : c->dec.reason);
	jw_str(&w, "mode", c->route->policy.mode == POLICY_DRY_RUN ? "dry-run" : "enforce");
	jw_obj_end(&w);
	conn_audit_credential(c, &w);
	jw_obj_begin(&w, "upstream");
	jw_str(&w, "addr", c->rt->upstream_name);
	jw_null(&w, "status");
	jw_obj_end(&w);
	return conn_audit_end(c, &w);
}

/* A failure after the decision (upstream, credential). */
static void
conn_audit_error(struct conn *c, const char *reason)
{
	struct jw w;

	conn_audit_begin(c, &w, "error");
	conn_audit_identity(c, &w);
	conn_audit_request(c, &w);
	conn_audit_credential(c, &w);
	jw_obj_begin(&w, "upstream");
	jw_str(&w, "addr", c->rt->upstream_name);
	jw_null(&w, "status");
	jw_obj_end(&w);
	jw_int(&w, "duration_ms", cg_mono_ms() -
	    (c->req_start_ms ? c->req_start_ms : c->born_ms));
	jw_str(&w, "reason", reason);
	(void)conn_audit_end(c, &w);
}

/*
 * The upstream's response head held the credential (or its query
 * parameter): the fields that were rewritten or left out, by name only.
 */
static void
conn_audit_echo(struct conn *c, const struct inj_http_echo *echo)
{
	struct jw w;
	size_t i;
	int k;

	conn_audit_begin(c, &w, "secret_echo");
	conn_audit_identity(c, &w);
	conn_audit_request(c, &w);
	conn_audit_credential(c, &w);
	jw_obj_begin(&w, "upstream");
	jw_str(&w, "addr", c->rt->upstream_name);
	jw_int(&w, "status", c->resp.status);
	jw_obj_end(&w);
	for (k = 0; k < 2; k++) {
		jw_arr_begin(&w, k ? "dropped" : "scrubbed");
		for (i = 0; i < echo->nnames; i++)
			if (echo->names[i].dropped == (k == 1))
				jw_strn(&w, NULL, echo->names[i].name.p,
				    echo->names[i].name.len < 64 ? echo->names[i].name.len : 64);
		jw_arr_end(&w);
	}
	jw_int(&w, "fields", echo->scrubbed + echo->dropped);
	(void)conn_audit_end(c, &w);
}

static void
conn_audit_session_end(struct conn *c)
{
	struct jw w;

	if (c->requests == 0 && c->bytes_in == 0)
		return;		/* a bare connect: nothing happened */
	conn_audit_begin(c, &w, "session_end");
	/* What the caller got last, and what the upstream said to it: a
	 * refusal of credgate's own (400, 401, 431...) has no upstream
	 * status. */
	if (c->last_status)
		jw_int(&w, "status", c->last_status);
	else
		jw_null(&w, "status");
	jw_obj_begin(&w, "upstream");
	jw_str(&w, "addr", c->rt->upstream_name);
	if (c->upstream_status)
		jw_int(&w, "status", c->upstream_status);
	else
		jw_null(&w, "status");
	jw_obj_end(&w);
	jw_obj_begin(&w, "bytes");
	jw_int(&w, "in", (long long)c->bytes_in);
	jw_int(&w, "out", (long long)c->bytes_out);
	jw_obj_end(&w);
	jw_int(&w, "requests", c->requests);
	jw_int(&w, "duration_ms", cg_mono_ms() - c->born_ms);
	jw_str(&w, "reason", c->close_reason);
	(void)conn_audit_end(c, &w);
}

/* ------------------------------------------------------------------ */
/* Closing                                                             */
/* ------------------------------------------------------------------ */

static void
conn_up_free(struct conn *c)
{
	if (c->up == NULL)
		return;
	conn_up_drop_reads(c);
	bufferevent_free(c->up);
	c->up = NULL;
	c->up_connected = false;
	c->up_read_paused = false;
	c->up_idle = false;
}

/*
 * Lets go of the upstream connection: an idle one (its last response
 * complete, reusable) goes to the worker's pool for the next client of
 * this route; any other is closed.
 */
static void
conn_up_release(struct conn *c)
{
	if (c->up == NULL)
		return;
	if (!c->up_idle || !c->up_connected || c->w->draining ||
	    evbuffer_get_length(bufferevent_get_input(c->up)) > 0 ||
	    evbuffer_get_length(bufferevent_get_output(c->up)) > 0) {
		conn_up_free(c);
		return;
	}
	if (c->rt->up_key[0] == '\0') {
		conn_up_free(c);
		return;
	}
	/* The pool's watch starts before ours ends: no epoll change. */
	worker_up_put(c->w, c->rt->up_key, c->up, c->route->upstream_keepalive);
	conn_up_drop_reads(c);
	c->up = NULL;
	c->up_connected = false;
	c->up_read_paused = false;
	c->up_idle = false;
}

static void
conn_request_reset(struct conn *c)
{
	if (c->head != NULL) {
		cg_wipe(c->head, c->req.head_len);
		free(c->head);
		c->head = NULL;
	}
	free(c->target);
	c->target = NULL;
	free(c->fields);
	c->fields = NULL;
	if (c->rhead != NULL) {
		/* An upstream may echo the credential in its head. */
		cg_wipe(c->rhead, c->resp.head_len);
		free(c->rhead);
		c->rhead = NULL;
	}
	free(c->rfields);
	c->rfields = NULL;
	memset(&c->req, 0, sizeof(c->req));
	memset(&c->resp, 0, sizeof(c->resp));
	if (c->hold != NULL) {
		evbuffer_free(c->hold);
		c->hold = NULL;
	}
	secret_cache_cancel(c->wait);
	c->wait = NULL;
	secret_unref(c->cred);
	c->cred = NULL;
	policy_identity_free(c->ident);
	c->ident = NULL;
	c->in_request = c->req_complete = c->req_forwarded = false;
	c->up_chunked = c->expect_continue = c->decided = false;
	c->resp_head_done = c->resp_started = c->resp_chunked = false;
	c->resp_until_close = false;
	c->request_id[0] = c->method[0] = c->path[0] = '\0';
}

/* The connection sent a complete request head, or closes. */
static void
conn_unpend(struct conn *c)
{
	if (!c->pending)
		return;
	c->pending = false;
	TAILQ_REMOVE(&c->w->pending, c, pend_link);
	pending_done(c->w->proc->pending, &c->pend_slot);
}

/*
 * Idempotent: stops all I/O, writes the close log line and the session_end
 * event, and hands the connection to the reaper, which frees it outside of
 * any callback of its own.
 */
static void
conn_set_reason(struct conn *c, const char *reason)
{
	if (c->close_reason[0] == '\0' && reason != NULL)
		snprintf(c->close_reason, sizeof(c->close_reason), "%s", reason);
}

static void
conn_close(struct conn *c, const char *reason)
{
	char q[128];

	if (c->closed)
		return;
	c->closed = true;
	conn_set_reason(c, reason);
	conn_audit_unwait(c);
	conn_unpend(c);
	evtimer_del(c->timer);
	conn_cli_reading(c, false);
	bufferevent_disable(c->cli, EV_READ | EV_WRITE);
	conn_up_release(c);
	secret_cache_cancel(c->wait);
	c->wait = NULL;
	cg_info("msg=close conn=%llu route=%s peer=%s reason=%s age_ms=%lld requests=%u "
	    "bytes_in=%llu bytes_out=%llu", (unsigned long long)c->id,
	    c->route->policy.name, c->peer,
	    cg_log_quote(q, sizeof(q), c->close_reason, strlen(c->close_reason)),
	    (long long)(cg_mono_ms() - c->born_ms), c->requests,
	    (unsigned long long)c->bytes_in, (unsigned long long)c->bytes_out);
	conn_audit_session_end(c);
	TAILQ_REMOVE(&c->w->conns, c, link);
	TAILQ_INSERT_TAIL(&c->w->dead, c, link);
	c->w->nconns--;
	worker_conn_release(c->w, c->rt);
	metrics_conn_close(c->rm);
	event_active(c->w->reaper, EV_TIMEOUT, 0);
}

static void
conn_peer_clear(struct conn *c)
{
	size_t i;

	for (i = 0; c->peer_sans != NULL && i < c->ppeer.nsans; i++)
		free(c->peer_sans[i]);
	free(c->peer_sans);
	c->peer_sans = NULL;
	memset(&c->ppeer, 0, sizeof(c->ppeer));
	tls_peer_clear(&c->tpeer);
	c->peer_ok = false;
}

static int
peer_add_sans(char **out, size_t *n, const char *prefix, char **vals, size_t nvals)
{
	size_t i;

	for (i = 0; i < nvals; i++)
		if (asprintf(&out[(*n)++], "%s%s", prefix, vals[i]) < 0) {
			out[--(*n)] = NULL;
			return CG_ERR_NOMEM;
		}
	return 0;
}

/*
 * The TLS handshake with the client is done: a verified client
 * certificate becomes what policy sees as the peer.  One whose names
 * cannot be read refuses the connection (fail closed).
 */
static void
conn_tls_established(struct conn *c)
{
	SSL *ssl = bufferevent_openssl_get_ssl(c->cli);
	struct tls_peer *p = &c->tpeer;
	size_t total, n = 0;

	if (ssl == NULL || tls_peer_identity(ssl, p) != 0) {
		conn_close(c, "tls_client_certificate_unreadable");
		return;
	}
	if (!p->verified)
		return;
	total = p->ndns + p->nuri + p->nemail + p->nip;
	if ((c->peer_sans = calloc(total ? total : 1, sizeof(char *))) == NULL ||
	    peer_add_sans(c->peer_sans, &n, "dns:", p->dns, p->ndns) != 0 ||
	    peer_add_sans(c->peer_sans, &n, "uri:", p->uri, p->nuri) != 0 ||
	    peer_add_sans(c->peer_sans, &n, "email:", p->email, p->nemail) != 0 ||
	    peer_add_sans(c->peer_sans, &n, "ip:", p->ip, p->nip) != 0) {
		c->ppeer.nsans = n;
		conn_close(c, "out_of_memory");
		return;
	}
	c->ppeer.subject = p->subject;
	c->ppeer.sans = (const char *const *)c->peer_sans;
	c->ppeer.nsans = n;
	c->peer_ok = true;
	cg_debug("msg=tls_client_verified conn=%llu subject=\"%s\" sans=%zu",
	    (unsigned long long)c->id, p->subject ? p->subject : "", n);
}

static void
conn_free(struct conn *c)
{
	struct cg_worker *w = c->w;

	conn_request_reset(c);
	conn_up_free(c);
	if (c->cli_rev != NULL)
		event_free(c->cli_rev);
	if (c->cli != NULL)
		bufferevent_free(c->cli);
	if (c->timer != NULL)
		event_free(c->timer);
	conn_peer_clear(c);
	cg_gen_unref(c->gen);
	/* Wiped, as calloc() would hand it out: the next accept takes it
	 * without a large allocation. */
	cg_wipe(c, sizeof(*c));
	if (w->nconn_spare < CONN_SPARE_MAX)
		w->conn_spare[w->nconn_spare++] = c;
	else
		free(c);
}

void
conn_spares_free(struct cg_worker *w)
{
	while (w->nconn_spare > 0)
		free(w->conn_spare[--w->nconn_spare]);
}

void
conn_reap(struct cg_worker *w)
{
	struct conn *c;

	while ((c = TAILQ_FIRST(&w->dead)) != NULL) {
		TAILQ_REMOVE(&w->dead, c, link);
		conn_free(c);
	}
}

bool
conn_evict_pending(struct cg_worker *w, const struct cg_route_shared *route)
{
	struct conn *c;

	TAILQ_FOREACH(c, &w->pending, pend_link) {
		if (route != NULL && c->rt->shared != route)
			continue;
		metrics_conn_evicted(c->rm);
		cg_log_limited(CG_LOG_WARN, "evicted",
		    "msg=connection_evicted conn=%llu route=%s peer=%s age_ms=%lld",
		    (unsigned long long)c->id, c->route->policy.name, c->peer,
		    (long long)(cg_mono_ms() - c->born_ms));
		conn_close(c, "evicted_for_new_connection");
		return true;
	}
	return false;
}

void
conn_close_all(struct cg_worker *w, const char *reason)
{
	struct conn *c;

	while ((c = TAILQ_FIRST(&w->conns)) != NULL)
		conn_close(c, reason);
}

/*
 * Draining: a connection waiting for its next request closes now; one in
 * the middle of a request finishes it and then closes (its response says
 * Connection: close if not already sent).
 */
void
conn_drain_all(struct cg_worker *w)
{
	struct conn *c, *next;

	for (c = TAILQ_FIRST(&w->conns); c != NULL; c = next) {
		next = TAILQ_NEXT(c, link);
		c->keep_alive = false;
		if (c->state == CONN_IDENTIFY && !c->in_request &&
		    evbuffer_get_length(bufferevent_get_input(c->cli)) == 0)
			conn_close(c, "drain");
	}
}

/*
 * The final bytes are out.  A caller that may still be sending (c->linger)
 * is not closed on at once: close() with unread input resets the
 * connection, and on a lossy network the reset can overtake the answer.
 * Our side is shut instead, and the caller's input read and dropped until
 * it closes too, for LINGER_TIME_MS and LINGER_BYTES at most, and
 * LINGER_READ_MS between reads (nginx's lingering close).
 */
static void
conn_drained_closing(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->cli);
	evutil_socket_t fd = bufferevent_getfd(c->cli);

	if (!c->linger || c->cli_eof || c->lingering) {
		conn_close(c, c->close_reason);
		return;
	}
	c->lingering = true;
	c->linger_end_ms = cg_mono_ms() + LINGER_TIME_MS;
	/* Plain: done already with the last write (conn_push); harmless. */
	if (fd >= 0)
		(void)shutdown(fd, SHUT_WR);
	c->lingered = evbuffer_get_length(in);
	evbuffer_drain(in, c->lingered);
	conn_arm(c, LINGER_READ_MS);
	conn_cli_reading(c, true);
}

/* Lingering: input read and dropped; closes at the limits. */
static void
conn_linger_read(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->cli);
	int64_t left = c->linger_end_ms - cg_mono_ms();

	c->lingered += evbuffer_get_length(in);
	evbuffer_drain(in, evbuffer_get_length(in));
	if (!c->lingering)
		return;
	if (c->lingered > LINGER_BYTES || left <= 0) {
		conn_close(c, c->close_reason);
		return;
	}
	conn_arm(c, left < LINGER_READ_MS ? left : LINGER_READ_MS);
}

/* Stops reading, lets the output drain, then closes (under the linger timer). */
static void
conn_finish(struct conn *c, const char *reason)
{
	if (c->closed || c->state == CONN_CLOSING)
		return;
	conn_set_reason(c, reason);
	conn_up_release(c);
	secret_cache_cancel(c->wait);
	c->wait = NULL;
	conn_cli_reading(c, false);
	conn_state_set(c, CONN_CLOSING);
	if (evbuffer_get_length(bufferevent_get_output(c->cli)) == 0)
		conn_drained_closing(c);
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

/*
 * Answers the client with an error of our own and closes.  The reason goes
 * to the log only; the client sees the status text.  If the client already
 * has part of a response, all we can do is close.
 */
static void
conn_reply(struct conn *c, int status, const char *extra, const char *reason)
{
	struct evbuffer *out = bufferevent_get_output(c->cli);
	const char *text = http_status_text(status);
	char q[160];

	if (c->closed || c->state == CONN_CLOSING)
		return;
	cg_info("msg=refused conn=%llu route=%s peer=%s status=%d reason=%s",
	    (unsigned long long)c->id, c->route->policy.name, c->peer, status,
	    cg_log_quote(q, sizeof(q), reason, strlen(reason)));
	if (c->resp_started) {
		conn_close(c, reason);
		return;
	}
	c->last_status = status;
	c->upstream_status = 0;
	c->resp_started = true;
	metrics_request(c->rm, c->dec.result == POLICY_WOULD_DENY ? METRICS_WOULD_DENY :
	    c->decided && c->dec.result == POLICY_ALLOW ? METRICS_ALLOW : METRICS_DENY,
	    status, (cg_mono_ms() - (c->req_start_ms ? c->req_start_ms : c->born_ms)) * 1000);
	evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\n"
	    "Content-Length: %zu\r\n", status, text, strlen(text) + 1);
	if (extra != NULL)
		evbuffer_add_printf(out, "%s\r\n", extra);
	if (c->request_id[0])
		evbuffer_add_printf(out, "X-Request-Id: %s\r\n", c->request_id);
	evbuffer_add_printf(out, "Connection: close\r\n\r\n%s\n", text);
	/* Answered early: the caller may still be sending its request. */
	c->linger = (c->in_request && !c->req_complete) ||
	    evbuffer_get_length(bufferevent_get_input(c->cli)) > 0;
	conn_finish(c, reason);
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
 * A head parsed into the worker's scratch fields (w->fields) is kept: a
 * copy of its bytes and of exactly its fields, the spans moved to the
 * copy.  Sizing the fields to the head costs less than zeroing
 * limits.header_count of them per message, and keeps them small.
 */
static int
conn_keep_head(struct http_head *h, const char *p, char **headp,
    struct http_field **fieldsp)
{
	char *head;
	struct http_field *f;

	if ((head = malloc(h->head_len)) == NULL)
		return CG_ERR_NOMEM;
	if ((f = malloc((h->nfields ? h->nfields : 1) * sizeof(*f))) == NULL) {
		free(head);
		return CG_ERR_NOMEM;
	}
	memcpy(head, p, h->head_len);
	memcpy(f, h->fields, h->nfields * sizeof(*f));
	h->fields = f;
	head_rebase(h, p, head);
	*headp = head;
	*fieldsp = f;
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
request_id_ok(const struct http_span *v)
{
	size_t i;

	if (v->len == 0 || v->len > 64)
		return false;
	for (i = 0; i < v->len; i++) {
		unsigned char ch = (unsigned char)v->p[i];

		if (!(ch >= '0' && ch <= '9') && !(ch >= 'a' && ch <= 'z') &&
		    !(ch >= 'A' && ch <= 'Z') && ch != '-' && ch != '_' &&
		    ch != '.' && ch != ':')
			return false;
	}
	return true;
}

/* c->peer: "ip:port", or "[ip]:port" for IPv6. */
static void
conn_format_peer(struct conn *c, bool v6)
{
	size_t ip = strlen(c->peer_ip), n = 0;
	char *p = c->peer;

	/* The longest address text (sizeof peer_ip less its NUL), brackets,
	 * colon, five digits and a NUL. */
	_Static_assert(sizeof(c->peer) >= sizeof(c->peer_ip) - 1 + 2 + 1 + 5 + 1,
	    "peer is too small");
	if (v6)
		p[n++] = '[';
	memcpy(p + n, c->peer_ip, ip);
	n += ip;
	if (v6)
		p[n++] = ']';
	p[n++] = ':';
	n += cg_fmt_u64(p + n, c->peer_port);
	p[n] = '\0';
}

static void
conn_set_request_id(struct conn *c)
{
	const struct http_field *f;
	size_t it = 0;

	if (http_head_count(&c->req, "X-Request-Id") == 1 &&
	    (f = http_head_find(&c->req, "X-Request-Id", &it)) != NULL &&
	    request_id_ok(&f->value)) {
		copy_span(c->request_id, sizeof(c->request_id), &f->value);
		return;
	}
	/* The worker's random prefix and a counter: unique across workers
	 * and restarts without asking the RNG on every request. */
	cg_fmt_hex64(c->request_id, c->w->rid_prefix);
	cg_fmt_hex64(c->request_id + 16, ++c->w->rid_counter);
	c->request_id[32] = '\0';
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
conn_normalise_target(struct conn *c)
{
	struct http_head *h = &c->req;
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
	free(c->target);
	c->target = t;
	return 0;
}

static int
conn_req_body(void *arg, const char *p, size_t n)
{
	struct conn *c = arg;
	struct evbuffer *dst = c->hold ? c->hold : bufferevent_get_output(c->up);

	if (c->up_chunked)
		evbuffer_add_printf(dst, "%zx\r\n", n);
	evbuffer_add(dst, p, n);
	if (c->up_chunked)
		evbuffer_add(dst, "\r\n", 2);
	return 0;
}

static bool
conn_wants_close(const struct http_head *h)
{
	const struct http_field *f;
	struct http_span e;
	size_t it = 0, pos;

	if (h->version_minor == 0)
		return true;
	while ((f = http_head_find(h, "Connection", &it)) != NULL) {
		pos = 0;
		while (http_list_next(&f->value, &pos, &e))
			if (cg_strcase_eq(e.p, e.len, "close", 5))
				return true;
	}
	return false;
}

/* After the decision: refuse, or go on to the credential. */
static void conn_decided(struct conn *c);

static void
conn_secret_ready(int err, struct secret *s, const char *reason, void *arg)
{
	struct conn *c = arg;

	c->wait = NULL;
	if (c->closed || c->state != CONN_DECIDE)
		return;
	if (err != 0) {
		cg_err("msg=secret_unavailable conn=%llu route=%s path=%s reason=\"%s\"",
		    (unsigned long long)c->id, c->route->policy.name,
		    c->route->secret_path, reason ? reason : cg_strerror(err));
		conn_audit_error(c, "credential unavailable");
		conn_reply(c, 503, NULL, "credential unavailable");
		return;
	}
	c->cred = secret_ref(s);
	conn_decided(c);
}

/* The secret cache's callback, when the credential had to be waited for. */
static void
conn_secret_ready_cb(int err, struct secret *s, const char *reason, void *arg)
{
	conn_secret_ready(err, s, reason, arg);
	conn_flush(arg);
}

static void
conn_identify_fail(struct conn *c, int status, const char *challenge, const char *reason)
{
	char why[160];

	c->dec.result = POLICY_DENY;
	c->dec.rule = NULL;
	c->dec.reason = reason;
	snprintf(why, sizeof(why), "invalid token: %s", reason);
	(void)conn_audit_decision(c, status == 401 ? why : reason);
	conn_reply(c, status, challenge, status == 401 ? why : reason);
}

/*
 * Every request is decided under the worker's newest generation, so that
 * a key, rule or route that a reload withdrew applies to the next request
 * on every open connection, not only to new connections.  The route is
 * the one the newest generation has on this connection's listener, under
 * the same name.  False when there is none: the route was withdrawn.
 * Nothing of the old generation is held between requests (the upstream
 * connection went back to the pool with its response).
 */
static bool
conn_adopt_gen(struct conn *c)
{
	struct cg_gen *g = c->w->gen;
	struct cg_route_rt *rt;

	if (c->gen == g)
		return true;
	rt = cg_gen_route_by_listen(g, c->rt->listen_key);
	if (rt == NULL || strcmp(rt->route->policy.name, c->route->policy.name) != 0)
		return false;
	/* Same name, same connection counters and metric block. */
	cg_gen_unref(c->gen);
	c->gen = cg_gen_ref(g);
	c->rt = rt;
	c->route = rt->route;
	c->cfg = g->cfg;
	return true;
}

/*
 * Whether this request is the connection's last: routes.[].keepalive_requests
 * and keepalive_time bound a connection's life however busy it is.
 */
static bool
conn_last_request(const struct conn *c)
{
	return c->requests >= c->route->keepalive_requests ||
	    c->req_start_ms - c->born_ms >= c->route->keepalive_time_ms;
}

/* A complete head is in c->req: check it, identify, decide. */
static void
conn_request(struct conn *c)
{
	const struct cg_config *cfg;
	const struct cg_route *route;
	struct policy_request q;
	struct http_error e;
	struct http_span tok;
	const struct http_field *f;
	struct token_cache *tc;
	const char *why;
	bool hit = false;
	size_t it;
	int r;

	c->requests++;
	c->in_request = true;
	c->req_start_ms = cg_mono_ms();
	copy_span(c->method, sizeof(c->method), &c->req.method);
	copy_span(c->path, sizeof(c->path), &c->req.path);
	conn_set_request_id(c);
	c->authority.len = 0;
	c->host_mismatch = false;
	if (!conn_adopt_gen(c)) {
		c->keep_alive = false;
		conn_identify_fail(c, 503, NULL, "route withdrawn");
		return;
	}
	cfg = c->cfg;
	route = c->route;
	c->keep_alive = !conn_wants_close(&c->req) && !conn_last_request(c);

	if (http_request_check(&c->req, &c->req_framing, &e) != 0) {
		conn_reply(c, e.status, NULL, e.reason);
		return;
	}
	/* absolute-form: its authority is the Host (RFC 9112 §3.2.2), taken
	 * before the target is normalised into origin-form. */
	(void)http_request_authority(&c->req, &c->authority, &c->host_mismatch);
	if ((r = conn_normalise_target(c)) != 0) {
		conn_reply(c, r == CG_ERR_NOMEM ? 503 : 400, NULL,
		    r == CG_ERR_NOMEM ? "out of memory" : "request path not allowed");
		return;
	}
	copy_span(c->path, sizeof(c->path), &c->req.path);
	it = 0;
	if ((f = http_head_find(&c->req, "Expect", &it)) != NULL) {
		if (http_head_count(&c->req, "Expect") != 1 ||
		    !cg_strcase_eq(f->value.p, f->value.len, "100-continue", 12)) {
			conn_reply(c, 417, NULL, "unsupported expectation");
			return;
		}
		c->expect_continue = c->req_framing.kind != HTTP_BODY_NONE;
	}
	if ((c->req_framing.kind == HTTP_BODY_LENGTH && c->req_framing.length > route->max_body) ||
	    (c->req_framing.kind == HTTP_BODY_CHUNKED && route->max_body == 0)) {
		conn_reply(c, 413, NULL, "request body over max_body");
		return;
	}
	if (http_msg_begin(&c->req_msg, true, c->head, c->req.head_len, NULL, 0,
	    route->max_body, MAX_TRAILER, conn_req_body, c) != HTTP_PARSE_DONE) {
		conn_reply(c, c->req_msg.err.status ? c->req_msg.err.status : 400, NULL,
		    c->req_msg.err.reason ? c->req_msg.err.reason : "malformed request");
		return;
	}
	c->req_complete = c->req_msg.complete;

	/* Who is calling: one Authorization: Bearer field, nowhere else. */
	if (http_head_count(&c->req, "Authorization") > 1) {
		conn_identify_fail(c, 400, NULL, "multiple Authorization fields");
		return;
	}
	if ((r = inj_http_read_proof(&c->req, &tok, &why)) != 0) {
		conn_identify_fail(c, 401, r == CG_ERR_NOTFOUND ?
		    "WWW-Authenticate: Bearer" :
		    "WWW-Authenticate: Bearer error=\"invalid_token\"", why);
		return;
	}
	/* The cache serves only the worker's current generation: entries
	 * point at its issuers, which an older generation's free would reuse. */
	tc = c->gen == c->w->gen ? c->w->tokens : NULL;
	r = token_cache_verify(tc, cfg->issuers, cfg->nissuers, tok.p, tok.len,
	    cg_now_ms() / 1000, cfg->max_token_bytes, &c->ident, &why, &hit);
	if (tc != NULL)
		metrics_token_cache(c->w->metrics, hit);
	if (r != 0) {
		conn_identify_fail(c, 401, "WWW-Authenticate: Bearer error=\"invalid_token\"", why);
		return;
	}

	/* May they? */
	memset(&q, 0, sizeof(q));
	q.id = c->ident;
	q.method = c->req.method.p;
	q.method_len = c->req.method.len;
	q.path = c->req.path.p;
	q.path_len = c->req.path.len;
	q.now_s = cg_now_ms() / 1000;
	q.peer = c->peer_ok ? &c->ppeer : NULL;
	policy_decide(&route->policy, &q, &c->dec);
	c->decided = true;
	if (c->dec.result == POLICY_DENY) {
		if (conn_audit_decision(c, NULL) != 0 && route->audit_failure == CG_AUDIT_FAIL_DENY) {
			conn_reply(c, 503, NULL, "audit unavailable");
			return;
		}
		conn_reply(c, 403, NULL, c->dec.reason);
		return;
	}

	/* The credential: from the cache, or wait for it with reads off
	 * (only then: toggling reads costs system calls on every request). */
	conn_state_set(c, CONN_DECIDE);
	r = secret_cache_get(c->w->secrets, route->secret_path, &c->cred,
	    conn_secret_ready_cb, c, &c->wait);
	metrics_secret_cache(c->w->metrics, r == 0);
	if (r == CG_ERR_AGAIN) {
		conn_cli_reading(c, false);
		return;
	}
	if (r != 0) {
		conn_secret_ready(r, NULL, cg_strerror(r), c);
		return;
	}
	conn_decided(c);
}

/* The decision allows the request, and its event is written (or may be lost). */
static void
conn_proceed(struct conn *c)
{
	if (c->dec.result == POLICY_WOULD_DENY)
		cg_info("msg=would_deny conn=%llu route=%s peer=%s rid=%s rule=%s reason=\"%s\"",
		    (unsigned long long)c->id, c->route->policy.name, c->peer,
		    c->request_id, c->dec.rule ? c->dec.rule : "-", c->dec.reason);
	conn_forward(c);
}

/*
 * Allowed.  Under audit_failure "deny" nothing is forwarded before the
 * decision event is written: the request waits, in CONN_DECIDE, for the
 * end of this pass of the loop, where conn_audit_flush() writes the
 * events of the pass and lets it go on, or refuses it.
 */
static void
conn_decided(struct conn *c)
{
	bool deny = c->route->audit_failure == CG_AUDIT_FAIL_DENY;

	if (conn_audit_decision(c, NULL) != 0 && deny) {
		conn_reply(c, 503, NULL, "audit unavailable");
		return;
	}
	if (deny && !cg_audit_batch_empty(&c->w->audit)) {
		if (!c->audit_wait) {
			c->audit_wait = true;
			TAILQ_INSERT_TAIL(&c->w->audit_waiters, c, audit_link);
		}
		return;
	}
	conn_proceed(c);
}

/*
 * The end of a pass of the worker's loop: writes the pass's audit events,
 * one write per sink, then lets the requests that waited for them go on,
 * or refuses them if the write failed.
 */
void
conn_audit_flush(struct cg_worker *w)
{
	struct conn_list waiters;
	struct conn *c;
	unsigned lost;
	int err = 0;

	if (cg_audit_batch_flush(&w->audit) != 0)
		err = errno;
	lost = w->audit.failed;
	w->audit.failed = 0;
	if (lost > 0) {
		metrics_audit_failures(w->metrics, lost);
		cg_log_limited(CG_LOG_ERROR, "audit_write",
		    "msg=audit_write_failed worker=%u events=%u error=\"%s\"",
		    w->index, lost, strerror(err ? err : EIO));
	}
	TAILQ_INIT(&waiters);
	TAILQ_CONCAT(&waiters, &w->audit_waiters, audit_link);
	while ((c = TAILQ_FIRST(&waiters)) != NULL) {
		TAILQ_REMOVE(&waiters, c, audit_link);
		c->audit_wait = false;
		if (c->closed || c->state != CONN_DECIDE)
			continue;
		if (lost > 0)
			conn_reply(c, 503, NULL, "audit unavailable");
		else
			conn_proceed(c);
		conn_flush(c);
	}
}

static void
conn_read_head(struct conn *c)
{
	const struct cg_config *cfg = c->cfg;
	struct evbuffer *in = bufferevent_get_input(c->cli);
	struct http_limits lim;
	struct http_error e;
	size_t len, want;
	const char *p;
	int r;

	len = evbuffer_get_length(in);
	if (len == 0) {
		if (c->cli_eof)
			conn_close(c, "client_closed");
		return;
	}
	lim.max_line = cfg->max_request_line;
	lim.max_head = cfg->max_header_bytes;
	lim.max_fields = cfg->max_header_count;
	lim.max_trailer = MAX_TRAILER;
	want = len < lim.max_head + 1 ? len : lim.max_head + 1;
	if ((p = (const char *)evbuffer_pullup(in, (ssize_t)want)) == NULL) {
		conn_close(c, "out_of_memory");
		return;
	}
	memset(&c->req, 0, sizeof(c->req));
	r = http_parse_head(p, want, true, &lim, &c->req, c->w->fields, &e);
	if (r == HTTP_PARSE_NEED_MORE) {
		if (c->cli_eof)
			conn_close(c, "client_closed_mid_head");
		else if (c->requests > 0 && !c->in_request) {
			/* The first byte of a later request: from idle to header timer. */
			c->in_request = true;
			conn_arm(c, cfg->client_header_timeout_ms);
		}
		return;
	}
	if (r != HTTP_PARSE_DONE) {
		c->requests++;
		conn_reply(c, e.status, NULL, e.reason);
		return;
	}
	if (conn_keep_head(&c->req, p, &c->head, &c->fields) != 0) {
		conn_close(c, "out_of_memory");
		return;
	}
	evbuffer_drain(in, c->req.head_len);
	conn_unpend(c);
	conn_request(c);
}

/* ------------------------------------------------------------------ */
/* Forwarding                                                          */
/* ------------------------------------------------------------------ */

static const char *
conn_cred_field(const void *ctx, const char *name, size_t *len)
{
	return secret_field((const struct secret *)ctx, name, len);
}

static void conn_up_read_cb(struct bufferevent *bev, void *arg);
static void conn_up_write_cb(struct bufferevent *bev, void *arg);
static void conn_up_event_cb(struct bufferevent *bev, short what, void *arg);

/*
 * Callbacks, watermark and events of an upstream bufferevent in use: a
 * plain one is read by the bufferevent only until it is connected
 * (conn_up_own_reads), and written by conn_flush().
 */
static void
conn_up_setup(struct conn *c, bool connected)
{
	bufferevent_setcb(c->up, conn_up_read_cb, conn_up_write_cb, conn_up_event_cb, c);
	bufferevent_setwatermark(c->up, EV_WRITE, RELAY_LOW, 0);
	c->up_connected = connected;
	if (!conn_up_plain(c))
		bufferevent_enable(c->up, EV_READ | EV_WRITE);
	else {
		bufferevent_disable(c->up, EV_WRITE);
		if (connected)
			conn_up_own_reads(c);
		else
			bufferevent_enable(c->up, EV_READ);
	}
}

static int
conn_up_connect(struct conn *c)
{
	SSL *ssl;

	if (c->rt->up_key[0] != '\0' && (c->up = worker_up_get(c->w, c->rt->up_key)) != NULL) {
		conn_up_setup(c, true);
		return 0;
	}
	if (c->rt->client_ctx != NULL) {
		ssl = tls_client_ssl_new(c->rt->client_ctx, &c->route->upstream_tls,
		    c->route->upstream_host);
		if (ssl == NULL)
			return CG_ERR_NOMEM;
		c->up = bufferevent_openssl_socket_new(c->w->base, -1, ssl,
		    BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
		if (c->up == NULL) {
			SSL_free(ssl);
			return CG_ERR_NOMEM;
		}
		bufferevent_openssl_set_allow_dirty_shutdown(c->up, 1);
	} else
		c->up = bufferevent_socket_new(c->w->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (c->up == NULL)
		return CG_ERR_NOMEM;
	conn_up_setup(c, false);
	if (bufferevent_socket_connect(c->up, (struct sockaddr *)&c->rt->upstream,
	    (int)c->rt->upstream_len) != 0) {
		int err = EVUTIL_SOCKET_ERROR();

		conn_up_free(c);
		if ((err == EMFILE || err == ENFILE) && worker_up_any(c->w)) {
			/* Out of descriptors: give up the idle ones, try again. */
			worker_up_clear(c->w);
			return conn_up_connect(c);
		}
		return CG_ERR_IO;
	}
	return 0;
}

static void
conn_release_hold(struct conn *c)
{
	if (c->hold == NULL || c->up == NULL)
		return;
	evbuffer_add_buffer(bufferevent_get_output(c->up), c->hold);
	evbuffer_free(c->hold);
	c->hold = NULL;
}

static void
conn_forward(struct conn *c)
{
	struct inj_http_req_ctx ctx;
	struct inj_cred cred;
	const char *why = NULL;
	int r;

	memset(&ctx, 0, sizeof(ctx));
	ctx.client_addr = c->peer_ip;
	ctx.proto = c->tls ? "https" : "http";
	ctx.request_id = c->request_id;
	ctx.host = c->authority;
	ctx.default_host = c->rt->upstream_name;
	switch (c->req_framing.kind) {
	case HTTP_BODY_LENGTH:
		ctx.framing = INJ_FRAMING_LENGTH;
		ctx.content_length = c->req_framing.length;
		break;
	case HTTP_BODY_CHUNKED:
		ctx.framing = INJ_FRAMING_CHUNKED;
		c->up_chunked = true;
		break;
	default:
		ctx.framing = INJ_FRAMING_NONE;
		break;
	}
	cred.field = conn_cred_field;
	cred.ctx = c->cred;
	if ((c->hold = evbuffer_new()) == NULL) {
		conn_reply(c, 503, NULL, "out of memory");
		return;
	}
	r = inj_http_write_request(&c->req, &c->route->inject, &cred, &ctx, c->hold, &why);
	if (r != 0) {
		cg_err("msg=inject_failed conn=%llu route=%s path=%s reason=\"%s\"",
		    (unsigned long long)c->id, c->route->policy.name,
		    c->route->secret_path, why ? why : cg_strerror(r));
		conn_audit_error(c, why ? why : "credential injection failed");
		conn_reply(c, 503, NULL, "credential injection failed");
		return;
	}
	c->req_forwarded = true;
	/* The head (with the caller's token) is no longer needed. */
	cg_wipe(c->head, c->req.head_len);

	c->up_idle = false;
	if (c->up == NULL && conn_up_connect(c) != 0) {
		conn_audit_error(c, "upstream connect failed");
		conn_reply(c, 502, NULL, "upstream connect failed");
		return;
	}
	if (c->expect_continue && !c->req_complete &&
	    evbuffer_get_length(bufferevent_get_input(c->cli)) == 0)
		evbuffer_add(bufferevent_get_output(c->cli), "HTTP/1.1 100 Continue\r\n\r\n", 25);
	conn_state_set(c, CONN_RELAY);
	/* A whole first request needs nothing more from a plain caller until
	 * its response is out, so its socket is not watched before then: a
	 * caller that read its response and closed (Connection: close)
	 * costs no epoll_ctl at all.  A caller that goes away early is seen
	 * when the response is written to it, or at the response timeout. */
	if (c->tls || !c->req_complete || c->cli_watched)
		conn_cli_reading(c, true);
	conn_feed_request(c);
}

static void
conn_feed_request(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->cli);
	struct evbuffer_iovec v;
	size_t used;
	int r;

	while (!c->req_complete && evbuffer_get_length(in) > 0) {
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		used = 0;
		r = http_msg_feed(&c->req_msg, v.iov_base, v.iov_len, &used);
		evbuffer_drain(in, used);
		if (r == HTTP_PARSE_ERROR) {
			conn_reply(c, c->req_msg.err.status, NULL, c->req_msg.err.reason);
			return;
		}
		if (r == HTTP_PARSE_DONE)
			c->req_complete = true;
		else if (used == 0)
			break;
	}
	if (c->req_complete) {
		if (c->up_chunked) {
			evbuffer_add(c->hold ? c->hold : bufferevent_get_output(c->up),
			    "0\r\n\r\n", 5);
			c->up_chunked = false;
		}
		conn_release_hold(c);
	} else if (c->hold != NULL && evbuffer_get_length(c->hold) > REQ_HOLD_MAX) {
		conn_release_hold(c);
	}
	if (c->up != NULL && evbuffer_get_length(bufferevent_get_output(c->up)) > RELAY_HIGH) {
		conn_cli_reading(c, false);
		c->cli_read_paused = true;
	}
	if (c->cli_eof && !c->req_complete)
		conn_close(c, "client_closed_mid_request");
}

/* ------------------------------------------------------------------ */
/* The response                                                        */
/* ------------------------------------------------------------------ */

static int
conn_resp_body(void *arg, const char *p, size_t n)
{
	struct conn *c = arg;
	struct evbuffer *out = bufferevent_get_output(c->cli);

	if (c->resp_chunked)
		evbuffer_add_printf(out, "%zx\r\n", n);
	evbuffer_add(out, p, n);
	if (c->resp_chunked)
		evbuffer_add(out, "\r\n", 2);
	return 0;
}

static void
conn_upstream_failed(struct conn *c, int status, const char *reason)
{
	conn_audit_error(c, reason);
	if (c->resp_started)
		conn_close(c, reason);
	else
		conn_reply(c, status, NULL, reason);
}

static void
conn_response_done(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->cli);
	bool up_reuse;
	char q[160];

	cg_info("msg=request conn=%llu route=%s peer=%s rid=%s method=%s path=%s status=%d "
	    "decision=%s rule=%s duration_ms=%lld", (unsigned long long)c->id,
	    c->route->policy.name, c->peer, c->request_id, c->method,
	    cg_log_quote(q, sizeof(q), c->path, strlen(c->path)), c->last_status,
	    policy_result_name(c->dec.result), c->dec.rule ? c->dec.rule : "-",
	    (long long)(cg_mono_ms() - c->req_start_ms));
	metrics_request(c->rm, c->dec.result == POLICY_WOULD_DENY ? METRICS_WOULD_DENY :
	    METRICS_ALLOW, c->last_status, (cg_mono_ms() - c->req_start_ms) * 1000);
	if (c->w->draining)
		c->keep_alive = false;
	up_reuse = c->req_complete && !c->resp_until_close &&
	    llhttp_should_keep_alive(&c->resp_msg.parser);
	/* The upstream connection goes back to the worker's pool now: a
	 * caller that idles between requests holds none. */
	if (!up_reuse)
		conn_up_free(c);
	else {
		c->up_idle = true;
		conn_up_release(c);
	}
	if (!c->keep_alive || !c->req_complete) {
		c->linger = !c->req_complete;	/* the upstream answered early */
		conn_finish(c, "done");
		return;
	}
	conn_request_reset(c);
	conn_state_set(c, CONN_IDENTIFY);
	conn_cli_reading(c, true);
	c->cli_read_paused = false;
	if (evbuffer_get_length(in) > 0 || c->cli_eof)
		conn_read_head(c);
}

void
conn_echo_slots_reset(struct cg_worker *w, size_t n)
{
	size_t i;

	for (i = 0; w->echo_slots != NULL && i < w->necho_slots; i++) {
		inj_http_echo_set_free(w->echo_slots[i].set);
		secret_unref(w->echo_slots[i].cred);
	}
	free(w->echo_slots);
	w->echo_slots = n > 0 ? calloc(n, sizeof(*w->echo_slots)) : NULL;
	w->necho_slots = w->echo_slots != NULL ? n : 0;
}

/*
 * What the response is searched for (see inj_http_write_response()):
 * made once per credential, kept by the worker for the route, and made
 * again when the route's credential changes.  A request of an older
 * generation (in flight across a reload) gets a set of its own, in *own,
 * which the caller frees.
 */
static int
conn_echo_set(struct conn *c, const struct inj_http_echo_set **set,
    struct inj_http_echo_set **own)
{
	struct inj_cred cred = { conn_cred_field, c->cred };
	struct cg_echo_slot *slot = NULL;
	struct inj_http_echo_set *made;
	int r;

	*set = NULL;
	*own = NULL;
	if (c->cred == NULL)
		return 0;
	if (c->gen == c->w->gen && c->w->echo_slots != NULL)
		slot = &c->w->echo_slots[c->rt - c->gen->routes];
	if (slot != NULL && slot->cred == c->cred) {
		*set = slot->set;
		return 0;
	}
	if ((r = inj_http_echo_set_new(&c->route->inject, &cred, &made)) != 0)
		return r;
	*set = made;
	if (slot == NULL) {
		*own = made;
		return 0;
	}
	inj_http_echo_set_free(slot->set);
	secret_unref(slot->cred);
	slot->cred = secret_ref(c->cred);
	slot->set = made;
	return 0;
}

/* The upstream's response head is in c->resp: check it and send it on. */
static int
conn_response_head(struct conn *c)
{
	enum inj_http_framing out;
	unsigned long long clen = 0;
	struct http_framing f;
	struct http_error e;
	const struct http_field *cl;
	size_t it = 0, i;
	bool close_after;
	const struct inj_http_echo_set *set;
	struct inj_http_echo_set *own;
	struct inj_http_echo echo;
	int r;

	if (http_response_check(&c->resp, c->method, strlen(c->method), &f, &e) != 0) {
		conn_upstream_failed(c, 502, e.reason);
		return -1;
	}
	if (http_msg_begin(&c->resp_msg, false, c->rhead, c->resp.head_len, c->method,
	    strlen(c->method), 0, MAX_TRAILER, conn_resp_body, c) != HTTP_PARSE_DONE) {
		conn_upstream_failed(c, 502, c->resp_msg.err.reason ?
		    c->resp_msg.err.reason : "malformed upstream response");
		return -1;
	}
	c->resp_until_close = f.kind == HTTP_BODY_UNTIL_CLOSE;
	switch (f.kind) {
	case HTTP_BODY_LENGTH:
		out = INJ_FRAMING_LENGTH;
		clen = f.length;
		break;
	case HTTP_BODY_CHUNKED:
		out = INJ_FRAMING_CHUNKED;
		c->resp_chunked = true;
		break;
	case HTTP_BODY_UNTIL_CLOSE:
		/* Re-chunked for a keep-alive client; else close after it. */
		if (c->keep_alive) {
			out = INJ_FRAMING_CHUNKED;
			c->resp_chunked = true;
		} else
			out = INJ_FRAMING_CLOSE;
		break;
	default:
		out = INJ_FRAMING_NONE;
		/* A response to HEAD (or a 304) keeps its Content-Length. */
		if (c->resp.status != 204 && (cl = http_head_find(&c->resp,
		    "Content-Length", &it)) != NULL && cl->value.len > 0 &&
		    cl->value.len < 17) {
			for (i = 0; i < cl->value.len; i++)
				clen = clen * 10 + (unsigned)(cl->value.p[i] - '0');
			out = INJ_FRAMING_LENGTH;
		}
		break;
	}
	close_after = !c->keep_alive || !c->req_complete || out == INJ_FRAMING_CLOSE ||
	    c->w->draining;
	if (close_after)
		c->keep_alive = false;
	/* The credential is searched for in what goes back (c->cred is held
	 * until the response is done). */
	if ((r = conn_echo_set(c, &set, &own)) == 0) {
		r = inj_http_write_response_set(&c->resp, out, clen, close_after,
		    c->request_id, set, &echo, bufferevent_get_output(c->cli));
		inj_http_echo_set_free(own);
	}
	if (r != 0) {
		conn_upstream_failed(c, 502, "cannot write response head");
		return -1;
	}
	if (echo.scrubbed + echo.dropped > 0) {
		cg_log_limited(CG_LOG_WARN, "secret_echo", "msg=secret_echo conn=%llu "
		    "route=%s status=%d scrubbed=%u dropped=%u", (unsigned long long)c->id,
		    c->route->policy.name, c->resp.status, echo.scrubbed, echo.dropped);
		conn_audit_echo(c, &echo);
		metrics_secret_echo(c->rm);
	}
	c->resp_started = true;
	c->last_status = c->upstream_status = c->resp.status;
	return 0;
}

static void
conn_up_read(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	const struct cg_config *cfg = c->cfg;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct evbuffer_iovec v;
	struct http_limits lim;
	struct http_error e;
	size_t len, want, used;
	const char *p;
	int r;

	if (c->closed)
		return;
	if (c->state != CONN_RELAY) {
		/* Bytes from an idle upstream: it is confused; drop it. */
		conn_up_free(c);
		return;
	}
	conn_progress(c);
	while (!c->resp_head_done) {
		if ((len = evbuffer_get_length(in)) == 0)
			return;
		lim.max_line = cfg->max_request_line;
		lim.max_head = cfg->max_header_bytes;
		lim.max_fields = cfg->max_header_count;
		lim.max_trailer = MAX_TRAILER;
		want = len < lim.max_head + 1 ? len : lim.max_head + 1;
		if ((p = (const char *)evbuffer_pullup(in, (ssize_t)want)) == NULL) {
			conn_upstream_failed(c, 502, "out of memory");
			return;
		}
		memset(&c->resp, 0, sizeof(c->resp));
		r = http_parse_head(p, want, false, &lim, &c->resp, c->w->fields, &e);
		if (r == HTTP_PARSE_NEED_MORE)
			return;
		if (r != HTTP_PARSE_DONE) {
			conn_upstream_failed(c, 502, e.reason);
			return;
		}
		if (c->resp.status < 200) {
			/* Interim responses are ours to give (100) or not
			 * needed; 101 never comes since Upgrade is dropped. */
			if (c->resp.status == 101) {
				conn_upstream_failed(c, 502, "unexpected 101 from upstream");
				return;
			}
			evbuffer_drain(in, c->resp.head_len);
			continue;
		}
		free(c->rhead);
		c->rhead = NULL;
		free(c->rfields);
		c->rfields = NULL;
		if (conn_keep_head(&c->resp, p, &c->rhead, &c->rfields) != 0) {
			conn_upstream_failed(c, 502, "out of memory");
			return;
		}
		evbuffer_drain(in, c->resp.head_len);
		c->resp_head_done = true;
		conn_state_set(c, CONN_RELAY);
		if (conn_response_head(c) != 0)
			return;
		if (c->resp_msg.complete) {
			conn_response_done(c);
			return;
		}
	}
	while (evbuffer_get_length(in) > 0) {
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		used = 0;
		r = http_msg_feed(&c->resp_msg, v.iov_base, v.iov_len, &used);
		evbuffer_drain(in, used);
		if (r == HTTP_PARSE_ERROR) {
			conn_upstream_failed(c, 502, c->resp_msg.err.reason);
			return;
		}
		if (r == HTTP_PARSE_DONE) {
			if (c->resp_chunked)
				evbuffer_add(bufferevent_get_output(c->cli), "0\r\n\r\n", 5);
			conn_response_done(c);
			return;
		}
		if (used == 0)
			break;
	}
	if (evbuffer_get_length(bufferevent_get_output(c->cli)) > RELAY_HIGH) {
		conn_up_reading(c, false);
		c->up_read_paused = true;
	}
}

static void
conn_up_write(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	if (c->closed)
		return;
	if (c->cli_read_paused && evbuffer_get_length(bufferevent_get_output(bev)) <= RELAY_LOW) {
		c->cli_read_paused = false;
		conn_cli_reading(c, true);
		conn_feed_request(c);
	}
}

static void
conn_up_event(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;
	char reason[160];
	int fd, one = 1;

	if (c->closed)
		return;
	if (what & BEV_EVENT_CONNECTED) {
		c->up_connected = true;
		if ((fd = bufferevent_getfd(bev)) >= 0)
			(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		conn_up_own_reads(c);
		if (c->state == CONN_RELAY)
			conn_state_set(c, CONN_RELAY);
		return;
	}
	if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
		return;
	if (c->state != CONN_RELAY) {
		conn_up_free(c);	/* an idle upstream connection went away */
		return;
	}
	if (!c->up_connected) {
		if (c->rt->client_ctx != NULL && bufferevent_openssl_get_ssl(bev) != NULL &&
		    bufferevent_get_openssl_error(bev) != 0) {
			SSL *ssl = bufferevent_openssl_get_ssl(bev);
			const char *vr = tls_verify_reason(ssl);
			unsigned long e = bufferevent_get_openssl_error(bev);
			char ebuf[120];

			ERR_error_string_n(e, ebuf, sizeof(ebuf));
			snprintf(reason, sizeof(reason), "upstream TLS handshake failed: %s",
			    vr != NULL ? vr : ebuf);
		} else
			snprintf(reason, sizeof(reason), "upstream connect failed: %s",
			    evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
		conn_upstream_failed(c, 502, reason);
		return;
	}
	if ((what & BEV_EVENT_EOF) && c->resp_head_done && c->resp_until_close) {
		/* Whatever is still buffered belongs to the body. */
		conn_up_read(bev, c);
		if (c->closed || c->state != CONN_RELAY || !c->resp_head_done)
			return;
		if (http_msg_eof(&c->resp_msg) == HTTP_PARSE_DONE) {
			if (c->resp_chunked)
				evbuffer_add(bufferevent_get_output(c->cli), "0\r\n\r\n", 5);
			conn_up_free(c);
			conn_response_done(c);
			return;
		}
	}
	conn_upstream_failed(c, 502, c->resp_started ? "upstream closed mid-response" :
	    "upstream closed before responding");
}

/* ------------------------------------------------------------------ */
/* The client side                                                     */
/* ------------------------------------------------------------------ */

static void
conn_cli_read(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	if (c->closed)
		return;
	switch (c->state) {
	case CONN_IDENTIFY:
		conn_read_head(c);
		break;
	case CONN_RELAY:
		conn_progress(c);
		if (!c->req_complete)
			conn_feed_request(c);
		else if (evbuffer_get_length(in) > PIPELINE_MAX) {
			/* The next requests wait their turn, within bounds. */
			conn_cli_reading(c, false);
			c->cli_read_paused = true;
		}
		break;
	case CONN_DECIDE:
		break;
	case CONN_CLOSING:
		conn_linger_read(c);
		break;
	}
}

static void
conn_cli_write(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	size_t left = evbuffer_get_length(bufferevent_get_output(bev));

	if (c->closed)
		return;
	if (c->state == CONN_CLOSING) {
		if (left == 0)
			conn_drained_closing(c);
		return;
	}
	conn_progress(c);
	if (c->up_read_paused && left <= RELAY_LOW && c->up != NULL) {
		c->up_read_paused = false;
		conn_up_reading(c, true);
		conn_up_read(c->up, c);
	}
}

static void
conn_cli_event(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;

	if (c->closed)
		return;
	if (what & BEV_EVENT_CONNECTED) {
		conn_tls_established(c);
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		unsigned long e = c->tls ? bufferevent_get_openssl_error(bev) : 0;

		if (e != 0) {
			char ebuf[120];

			ERR_error_string_n(e, ebuf, sizeof(ebuf));
			cg_log_limited(CG_LOG_INFO, "tls_handshake",
			    "msg=tls_failed conn=%llu route=%s peer=%s error=\"%s\"",
			    (unsigned long long)c->id, c->route->policy.name, c->peer, ebuf);
			conn_close(c, "tls_error");
			return;
		}
		conn_close(c, "client_error");
		return;
	}
	if (!(what & BEV_EVENT_EOF))
		return;
	/* A half-close: answer what was sent, then close. */
	c->cli_eof = true;
	c->keep_alive = false;
	switch (c->state) {
	case CONN_IDENTIFY:
		conn_read_head(c);
		break;
	case CONN_RELAY:
		if (!c->req_complete)
			conn_close(c, "client_closed_mid_request");
		break;
	case CONN_DECIDE:
		break;
	case CONN_CLOSING:
		conn_close(c, c->close_reason);
		break;
	}
}

static void
conn_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	if (c->closed)
		return;
	switch (c->state) {
	case CONN_IDENTIFY:
		if (c->in_request || c->requests == 0) {
			c->in_request = true;
			conn_reply(c, 408, NULL, "header_timeout");
		} else
			conn_close(c, "idle_timeout");
		break;
	case CONN_DECIDE:
		conn_audit_error(c, "credential timeout");
		conn_reply(c, 503, NULL, "credential timeout");
		break;
	case CONN_RELAY:
		if (!c->up_connected)
			conn_upstream_failed(c, 504, "upstream connect timeout");
		else if (!c->resp_head_done)
			conn_upstream_failed(c, 504, "upstream response timeout");
		else
			conn_close(c, "relay_idle_timeout");
		break;
	case CONN_CLOSING:
		conn_close(c, "linger_timeout");
		break;
	}
}

/*
 * What libevent calls: each runs the handler above, then conn_flush().  A
 * closed connection is still allocated here: the reaper frees it later.
 */
static void
conn_up_read_cb(struct bufferevent *bev, void *arg)
{
	conn_up_read(bev, arg);
	conn_flush(arg);
}

static void
conn_up_write_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	conn_write_done(bev, conn_up_plain(c));
	conn_up_write(bev, c);
	conn_flush(c);
}

static void
conn_up_event_cb(struct bufferevent *bev, short what, void *arg)
{
	conn_up_event(bev, what, arg);
	conn_flush(arg);
}

static void
conn_cli_read_cb(struct bufferevent *bev, void *arg)
{
	conn_cli_read(bev, arg);
	conn_flush(arg);
}

static void
conn_cli_write_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	conn_write_done(bev, conn_cli_plain(c));
	conn_cli_write(bev, c);
	conn_flush(c);
}

static void
conn_cli_event_cb(struct bufferevent *bev, short what, void *arg)
{
	conn_cli_event(bev, what, arg);
	conn_flush(arg);
}

static void
conn_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	conn_timeout(fd, what, arg);
	conn_flush(arg);
}

static void
conn_count(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	*(uint64_t *)arg += info->n_added;
}

void
conn_accept(struct cg_worker *w, struct cg_route_rt *rt, int fd, const struct sockaddr *sa,
    int salen, const struct cg_pending_slot *slot)
{
	struct conn *c;

	if (w->nconn_spare > 0)
		c = w->conn_spare[--w->nconn_spare];
	else if ((c = calloc(1, sizeof(*c))) == NULL) {
		pending_done(w->proc->pending, slot);
		worker_conn_release(w, rt);
		evutil_closesocket(fd);
		return;
	}
	/* Connection ids are unique across workers: the worker's index in
	 * the low bits. */
	c->id = (++w->next_conn_id << 8) | (w->index & 0xff);
	c->w = w;
	c->gen = cg_gen_ref(w->gen);
	c->rt = rt;
	c->route = rt->route;
	c->cfg = c->gen->cfg;
	c->rm = worker_route_metrics(w, rt);
	c->born_ms = cg_mono_ms();
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;

		inet_ntop(AF_INET6, &s6->sin6_addr, c->peer_ip, sizeof(c->peer_ip));
		c->peer_port = ntohs(s6->sin6_port);
	} else {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;

		_Static_assert(sizeof(c->peer_ip) >= INET_ADDRSTRLEN, "peer_ip");
		cg_fmt_ipv4(c->peer_ip, (const unsigned char *)&s4->sin_addr);
		c->peer_port = ntohs(s4->sin_port);
	}
	conn_format_peer(c, sa->sa_family == AF_INET6);
	(void)salen;
	/* TCP_NODELAY comes from the listening socket (listener_open). */
	if (rt->server_ctx != NULL) {
		SSL *ssl = SSL_new(rt->server_ctx);

		c->tls = true;
		c->cli = ssl == NULL ? NULL : bufferevent_openssl_socket_new(w->base, fd, ssl,
		    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
		if (c->cli == NULL)
			SSL_free(ssl);
		else
			bufferevent_openssl_set_allow_dirty_shutdown(c->cli, 1);
	} else
		c->cli = bufferevent_socket_new(w->base, fd, BEV_OPT_CLOSE_ON_FREE);
	c->timer = evtimer_new(w->base, conn_timeout_cb, c);
	if (!c->tls && c->cli != NULL)
		c->cli_rev = event_new(w->base, fd, EV_READ | EV_PERSIST, conn_cli_readable, c);
	if (c->cli == NULL || c->timer == NULL || (!c->tls && c->cli_rev == NULL)) {
		if (c->cli == NULL)
			evutil_closesocket(fd);
		pending_done(w->proc->pending, slot);
		worker_conn_release(w, rt);
		conn_free(c);
		return;
	}
	evbuffer_add_cb(bufferevent_get_input(c->cli), conn_count, &c->bytes_in);
	evbuffer_add_cb(bufferevent_get_output(c->cli), conn_count, &c->bytes_out);
	bufferevent_setcb(c->cli, conn_cli_read_cb, conn_cli_write_cb, conn_cli_event_cb, c);
	bufferevent_setwatermark(c->cli, EV_WRITE, RELAY_LOW, 0);
	TAILQ_INSERT_TAIL(&w->conns, c, link);
	w->nconns++;
	c->pending = true;
	c->pend_slot = *slot;
	TAILQ_INSERT_TAIL(&w->pending, c, pend_link);
	metrics_conn_open(c->rm);
	cg_debug("msg=accept conn=%llu route=%s peer=%s", (unsigned long long)c->id,
	    c->route->policy.name, c->peer);
	conn_state_set(c, CONN_IDENTIFY);
	/* A TLS handshake needs EV_WRITE; a plain socket is written by
	 * conn_flush() (a new bufferevent has EV_WRITE on). */
	if (c->tls) {
		bufferevent_enable(c->cli, EV_READ | EV_WRITE);
		return;
	}
	bufferevent_disable(c->cli, EV_WRITE);
	/* Callers usually have sent their request by the time it is
	 * accepted: read it now, and watch the socket only while a request
	 * head is still to come. */
	conn_cli_readable(fd, EV_READ, c);
	if (!c->closed && c->state == CONN_IDENTIFY)
		conn_cli_reading(c, true);
}
