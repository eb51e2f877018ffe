/*
 * conn.c: the engine's session, from accept to close, for any protocol.
 *
 * A session owns the caller's and the upstream's connections, one timer,
 * the protocol's state, and what the pipeline holds for the request in
 * flight.  The protocol (injectors/, found by routes.[].protocol) says
 * what is read and written on either side through the callbacks below;
 * the engine runs the sockets, TLS (at accept or when the protocol asks),
 * the timer, plain relay with watermarks, drain, and close.
 *
 * conn_close() is the only way out and the reaper the only place a
 * session is freed, outside of any callback of its own.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
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

#include "proxy/metrics.h"
#include "proxy/session.h"
#include "proxy/trust.h"
#include "vault-client/vault.h"

static void conn_cli_read(struct conn *c);
static void conn_cli_write(struct conn *c);
static void conn_up_read(struct conn *c);
static void conn_up_write(struct conn *c);
static void conn_cli_event(struct conn *c, short what);
static void conn_up_event(struct conn *c, short what);

/* ------------------------------------------------------------------ */
/* Timers and state                                                    */
/* ------------------------------------------------------------------ */

void
conn_arm(struct conn *c, int64_t ms)
{
	struct timeval tv = cg_ms_tv(ms);

	evtimer_add(c->timer, &tv);
}

/* The one place the engine's state changes; arms the state's timer (the
 * protocol arms its own in CONN_PROTO). */
void
conn_state_set(struct conn *c, enum conn_state st)
{
	c->state = st;
	switch (st) {
	case CONN_PROTO:
		break;
	case CONN_DECIDE:
		conn_arm(c, c->cfg->upstream_response_timeout_ms);
		break;
	case CONN_RELAY:
		conn_arm(c, c->cfg->client_idle_timeout_ms);
		break;
	case CONN_CLOSING:
		conn_arm(c, LINGER_MS);
		break;
	}
}

/* ------------------------------------------------------------------ */
/* Reading and writing                                                 */
/* ------------------------------------------------------------------ */

static bool
conn_cli_plain(const struct conn *c)
{
	return !c->tls;
}

/*
 * Runs last in every callback of a session: writes both sides' queued
 * output, and repeats while a drained side lets the other go on (a paused
 * read resumed, a final answer flushed).
 */
void
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
			conn_up_write(c);
			again = true;
		}
		if (!c->closed && conn_cli_plain(c) &&
		    conn_push(c->cli, c->state == CONN_CLOSING)) {
			conn_cli_write(c);
			again = true;
		}
	} while (again && !c->closed);
	c->flushing = false;
}

void
conn_cli_reading(struct conn *c, bool on)
{
	c->cli_want = on;
	if (c->starting)
		return;		/* conn_accept() reads first, then decides */
	if (on)
		c->cli_watched = true;
	conn_side_reading(c->cli, c->cli_rev, on);
}

void
conn_up_reading(struct conn *c, bool on)
{
	if (c->up != NULL)
		conn_side_reading(c->up, c->up_rev, on);
}

static void
conn_cli_readable(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	ssize_t n = conn_read(c, c->cli, fd);

	if (n > 0)
		conn_cli_read(c);
	else if (n == 0 || !conn_retry_later(errno)) {
		conn_cli_reading(c, false);
		conn_cli_event(c, BEV_EVENT_READING |
		    (n == 0 ? BEV_EVENT_EOF : BEV_EVENT_ERROR));
	}
	conn_flush(c);
}

void conn_up_readable(evutil_socket_t fd, short what, void *arg);
void
conn_up_readable(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	ssize_t n;

	if (c->up == NULL)
		return;
	n = conn_read(c, c->up, fd);
	if (n > 0)
		conn_up_read(c);
	else if (n == 0 || !conn_retry_later(errno)) {
		conn_up_reading(c, false);
		conn_up_event(c, BEV_EVENT_READING |
		    (n == 0 ? BEV_EVENT_EOF : BEV_EVENT_ERROR));
	}
	conn_flush(c);
}

/* ------------------------------------------------------------------ */
/* Closing                                                             */
/* ------------------------------------------------------------------ */

static void
conn_set_reason(struct conn *c, const char *reason)
{
	if (c->close_reason[0] == '\0' && reason != NULL)
		snprintf(c->close_reason, sizeof(c->close_reason), "%s", reason);
}

/*
 * Idempotent: stops all I/O, writes the close log line and the session_end
 * event, and hands the session to the reaper, which frees it outside of
 * any callback of its own.
 */
void
conn_close(struct conn *c, const char *reason)
{
	char q[128];

	if (c->closed)
		return;
	c->closed = true;
	conn_set_reason(c, reason);
	worker_audit_wait(c->w, c, false);
	worker_conn_unpend(c->w, c);
	evtimer_del(c->timer);
	conn_cli_reading(c, false);
	bufferevent_disable(c->cli, EV_READ | EV_WRITE);
	conn_up_free(c);
	secret_view_cancel(c->wait);
	c->wait = NULL;
	conn_key_wait_end(c);
	if (c->session_key != NULL) {
		/* Its own credential's lease goes with the session. */
		secret_view_release(c->w->secrets, c->session_key);
		free(c->session_key);
		c->session_key = NULL;
	}
	cg_info("msg=close conn=%llu route=%s peer=%s reason=%s age_ms=%lld requests=%u "
	    "bytes_in=%llu bytes_out=%llu", (unsigned long long)c->id,
	    c->route->policy.name, c->peer,
	    cg_log_quote(q, sizeof(q), c->close_reason, strlen(c->close_reason)),
	    (long long)(cg_mono_ms() - c->born_ms), c->requests,
	    (unsigned long long)c->bytes_in, (unsigned long long)c->bytes_out);
	audit_session_end(c);
	worker_conn_release(c->w, c->rt);
	metrics_conn_close(c->rm);
	worker_conn_dead(c->w, c);
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
 * cannot be read refuses the session (fail closed).
 */
static void
conn_tls_established(struct conn *c)
{
	SSL *ssl = bufferevent_openssl_get_ssl(c->cli);
	struct tls_peer *p = &c->tpeer;
	size_t total, n = 0;

	if (c->tls_checked)
		return;
	c->tls_checked = true;

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
	c->ppeer.spiffe = p->svid ? p->spiffe : NULL;
	c->peer_ok = true;
	cg_debug("msg=tls_client_verified conn=%llu subject=\"%s\" sans=%zu spiffe_id=%s "
	    "trust_domain=%s", (unsigned long long)c->id, p->subject ? p->subject : "", n,
	    p->svid ? p->spiffe_id : "-", p->svid ? p->trust_domain : "-");
}

/*
 * The handshake failed: when it was for an X.509-SVID that the listener's
 * trust domains refused, that is a decision of its own, logged and
 * audited with the SPIFFE ID the certificate claimed.  True when so (the
 * session is closed).
 */
static bool
conn_svid_refused(struct conn *c)
{
	SSL *ssl = c->tls ? bufferevent_openssl_get_ssl(c->cli) : NULL;
	const char *id, *why;
	char reason[480], qi[128], qr[512];

	if (!trust_ssl_refusal(ssl, &id, &why))
		return false;
	snprintf(reason, sizeof(reason), "X.509-SVID refused: %s", why);
	cg_info("msg=svid_refused conn=%llu route=%s peer=%s spiffe_id=%s reason=%s",
	    (unsigned long long)c->id, c->route->policy.name, c->peer,
	    id != NULL ? cg_log_quote(qi, sizeof(qi), id, strlen(id)) : "-",
	    cg_log_quote(qr, sizeof(qr), why, strlen(why)));
	c->svid_refused = id;
	conn_deny(c, NULL, reason);
	conn_close(c, "svid_refused");
	return true;
}

static void
conn_free(struct conn *c)
{
	struct cg_worker *w = c->w;
	size_t cap = c->cap;

	if (c->pst != NULL && c->proto != NULL)
		c->proto->free(c->pst);
	conn_request_end(c);
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
	cg_wipe(c, cap);
	c->cap = cap;
	if (!worker_spare_put(w, c))
		free(c);
}

void
conn_spares_free(struct cg_worker *w)
{
	void *c;

	while ((c = worker_spare_get(w)) != NULL)
		free(c);
}

void
conn_reap(struct cg_worker *w)
{
	struct conn *c;

	while ((c = worker_conn_next_dead(w)) != NULL)
		conn_free(c);
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
 * Draining: a session between requests closes now; one in the middle of
 * a request finishes it and then closes (the protocol says so in its
 * last answer).
 */
void
conn_drain_all(struct cg_worker *w)
{
	struct conn *c, *next;

	for (c = TAILQ_FIRST(&w->conns); c != NULL; c = next) {
		next = TAILQ_NEXT(c, link);
		if (c->state == CONN_CLOSING)
			continue;
		if (c->proto->drain(c->pst) && c->state == CONN_PROTO)
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
static void conn_under_drained(struct evbuffer *buf, const struct evbuffer_cb_info *info,
    void *arg);

static void
conn_drained_closing(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->cli);
	evutil_socket_t fd = bufferevent_getfd(c->cli);
	struct bufferevent *under = bufferevent_get_underlying(c->cli);

	/* TLS started late is a filter: its output drained into the socket's
	 * bufferevent, which may not have written it yet.  Closing (or
	 * shutting the socket) now would lose the final answer. */
	if (under != NULL && evbuffer_get_length(bufferevent_get_output(under)) > 0) {
		if (c->under_cb == NULL &&
		    (c->under_cb = evbuffer_add_cb(bufferevent_get_output(under),
		    conn_under_drained, c)) == NULL)
			conn_close(c, c->close_reason);
		return;		/* CONN_CLOSING's timer bounds the wait */
	}
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

/*
 * The socket under a late TLS filter wrote what it held: the close goes
 * on from the timer, outside libevent's write path that calls this.
 */
static void
conn_under_drained(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	struct conn *c = arg;

	if (info->n_deleted == 0 || evbuffer_get_length(buf) > 0 || c->under_flushed)
		return;
	c->under_flushed = true;
	conn_arm(c, 0);
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
conn_finish(struct conn *c, const char *reason, bool linger)
{
	if (c->closed || c->state == CONN_CLOSING)
		return;
	conn_set_reason(c, reason);
	c->linger = linger;
	conn_up_free(c);
	secret_view_cancel(c->wait);
	c->wait = NULL;
	conn_key_wait_end(c);
	conn_cli_reading(c, false);
	conn_state_set(c, CONN_CLOSING);
	if (evbuffer_get_length(bufferevent_get_output(c->cli)) == 0)
		conn_drained_closing(c);
}

/* ------------------------------------------------------------------ */
/* The pipeline's outcome, told to the protocol                        */
/* ------------------------------------------------------------------ */

void
conn_allowed(struct conn *c)
{
	if (c->closed || c->state == CONN_CLOSING)
		return;
	c->state = CONN_PROTO;
	c->proto->allowed(c->pst, &c->icred);
}

void
conn_refuse(struct conn *c, enum inj_refusal why, const char *reason)
{
	if (c->closed || c->state == CONN_CLOSING)
		return;
	c->state = CONN_PROTO;
	c->proto->refuse(c->pst, why, reason);
}

/* ------------------------------------------------------------------ */
/* Plain relay                                                         */
/* ------------------------------------------------------------------ */

/* Moves what one side sent to the other; stops reading it while the
 * other's output is over RELAY_HIGH. */
static void
conn_relay_move(struct conn *c, enum inj_side from)
{
	struct bufferevent *src = from == INJ_CLIENT ? c->cli : c->up;
	struct bufferevent *dst = from == INJ_CLIENT ? c->up : c->cli;
	struct evbuffer *out;

	if (src == NULL || dst == NULL)
		return;
	out = bufferevent_get_output(dst);
	evbuffer_add_buffer(out, bufferevent_get_input(src));
	conn_arm(c, c->cfg->client_idle_timeout_ms);
	if (evbuffer_get_length(out) > RELAY_HIGH) {
		if (from == INJ_CLIENT) {
			conn_cli_reading(c, false);
			c->relay_cli_paused = true;
		} else {
			conn_up_reading(c, false);
			c->relay_up_paused = true;
		}
	}
}

/* The other side drained: the paused one reads again. */
static void
conn_relay_drained(struct conn *c, enum inj_side to)
{
	struct bufferevent *dst = to == INJ_CLIENT ? c->cli : c->up;

	if (dst == NULL || evbuffer_get_length(bufferevent_get_output(dst)) > RELAY_LOW)
		return;
	if (to == INJ_UPSTREAM && c->relay_cli_paused) {
		c->relay_cli_paused = false;
		conn_cli_reading(c, true);
		conn_relay_move(c, INJ_CLIENT);
	} else if (to == INJ_CLIENT && c->relay_up_paused) {
		c->relay_up_paused = false;
		conn_up_reading(c, true);
		conn_relay_move(c, INJ_UPSTREAM);
	}
}

/* One side closed while relaying: what it sent goes on, then the session ends. */
static void
conn_relay_eof(struct conn *c, enum inj_side side, bool error)
{
	conn_relay_move(c, side);
	if (side == INJ_UPSTREAM) {
		conn_up_free(c);
		conn_finish(c, error ? "upstream_error" : "upstream_closed", false);
	} else
		conn_close(c, error ? "client_error" : "client_closed");
}

/* ------------------------------------------------------------------ */
/* Events                                                              */
/* ------------------------------------------------------------------ */

static void
conn_up_read(struct conn *c)
{
	if (c->closed)
		return;
	switch (c->state) {
	case CONN_PROTO:
		c->proto->readable(c->pst, INJ_UPSTREAM);
		break;
	case CONN_RELAY:
		conn_relay_move(c, INJ_UPSTREAM);
		break;
	default:
		/* Bytes from an upstream nothing was asked of: it is confused. */
		conn_up_free(c);
		break;
	}
}

static void
conn_up_write(struct conn *c)
{
	if (c->closed)
		return;
	if (c->state == CONN_PROTO)
		c->proto->writable(c->pst, INJ_UPSTREAM);
	else if (c->state == CONN_RELAY)
		conn_relay_drained(c, INJ_UPSTREAM);
}

static void
conn_up_event(struct conn *c, short what)
{
	char reason[160];

	if (c->closed)
		return;
	if (what & BEV_EVENT_CONNECTED) {
		if (c->up_tls_pending) {
			c->up_tls_pending = false;
			if (c->state == CONN_PROTO)
				c->proto->tls_done(c->pst, INJ_UPSTREAM);
			return;
		}
		conn_up_connected(c);
		if (c->state == CONN_PROTO)
			c->proto->connected(c->pst, true, NULL);
		return;
	}
	if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
		return;
	if (c->up_tls_pending && c->state == CONN_PROTO) {
		/* The handshake of a TLS start the protocol asked for failed. */
		conn_up_failed_reason(c, c->up, reason, sizeof(reason));
		conn_up_free(c);
		c->proto->connected(c->pst, false, reason);
		return;
	}
	if (c->state != CONN_PROTO && c->state != CONN_RELAY) {
		conn_up_free(c);	/* an idle upstream connection went away */
		return;
	}
	if (!c->up_connected) {
		conn_up_failed_reason(c, c->up, reason, sizeof(reason));
		conn_up_free(c);
		if (c->state == CONN_PROTO)
			c->proto->connected(c->pst, false, reason);
		else
			conn_close(c, "upstream_connect_failed");
		return;
	}
	if (c->state == CONN_RELAY)
		conn_relay_eof(c, INJ_UPSTREAM, (what & BEV_EVENT_ERROR) != 0);
	else
		c->proto->eof(c->pst, INJ_UPSTREAM, (what & BEV_EVENT_ERROR) != 0);
}

static void
conn_cli_read(struct conn *c)
{
	if (c->closed)
		return;
	/* Bytes over TLS may come before the handshake's event does (a TLS
	 * filter started late): who the peer is must be known first. */
	if (c->tls && !c->tls_checked) {
		conn_tls_established(c);
		if (c->closed)
			return;
	}
	switch (c->state) {
	case CONN_PROTO:
		c->proto->readable(c->pst, INJ_CLIENT);
		break;
	case CONN_RELAY:
		conn_relay_move(c, INJ_CLIENT);
		break;
	case CONN_DECIDE:
		break;		/* it waits in the input */
	case CONN_CLOSING:
		conn_linger_read(c);
		break;
	}
}

static void
conn_cli_write(struct conn *c)
{
	if (c->closed)
		return;
	switch (c->state) {
	case CONN_CLOSING:
		if (evbuffer_get_length(bufferevent_get_output(c->cli)) == 0)
			conn_drained_closing(c);
		break;
	case CONN_PROTO:
		c->proto->writable(c->pst, INJ_CLIENT);
		break;
	case CONN_RELAY:
		conn_relay_drained(c, INJ_CLIENT);
		break;
	case CONN_DECIDE:
		break;
	}
}

static void
conn_cli_event(struct conn *c, short what)
{
	if (c->closed)
		return;
	if (what & BEV_EVENT_CONNECTED) {
		conn_tls_established(c);
		if (!c->closed && c->tls_late && c->state == CONN_PROTO)
			c->proto->tls_done(c->pst, INJ_CLIENT);
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		unsigned long e = c->tls ? bufferevent_get_openssl_error(c->cli) : 0;

		if (conn_svid_refused(c))
			return;
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
	switch (c->state) {
	case CONN_PROTO:
	case CONN_DECIDE:
		c->proto->eof(c->pst, INJ_CLIENT, false);
		break;
	case CONN_RELAY:
		conn_relay_eof(c, INJ_CLIENT, false);
		break;
	case CONN_CLOSING:
		conn_close(c, c->close_reason);
		break;
	}
}

static void
conn_timeout(struct conn *c)
{
	if (c->closed)
		return;
	switch (c->state) {
	case CONN_PROTO:
		c->proto->timeout(c->pst);
		break;
	case CONN_DECIDE:
		audit_session_error(c, "credential timeout");
		conn_refuse(c, INJ_REFUSE_UNAVAILABLE, "credential timeout");
		break;
	case CONN_RELAY:
		conn_close(c, "relay_idle_timeout");
		break;
	case CONN_CLOSING:
		if (c->under_flushed) {
			evbuffer_remove_cb_entry(bufferevent_get_output(
			    bufferevent_get_underlying(c->cli)), c->under_cb);
			c->under_cb = NULL;
			c->under_flushed = false;
			conn_drained_closing(c);
			break;
		}
		conn_close(c, "linger_timeout");
		break;
	}
}

/*
 * What libevent calls: each runs the handler above, then conn_flush().  A
 * closed session is still allocated here: the reaper frees it later.
 */
void conn_up_read_cb(struct bufferevent *bev, void *arg);
void conn_up_write_cb(struct bufferevent *bev, void *arg);
void conn_up_event_cb(struct bufferevent *bev, short what, void *arg);

void
conn_up_read_cb(struct bufferevent *bev, void *arg)
{
	conn_up_read(arg);
	conn_flush(arg);
}

void
conn_up_write_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	conn_write_done(bev, conn_up_plain(c));
	conn_up_write(c);
	conn_flush(c);
}

void
conn_up_event_cb(struct bufferevent *bev, short what, void *arg)
{
	conn_up_event(arg, what);
	conn_flush(arg);
}

static void
conn_cli_read_cb(struct bufferevent *bev, void *arg)
{
	conn_cli_read(arg);
	conn_flush(arg);
}

static void
conn_cli_write_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	conn_write_done(bev, conn_cli_plain(c));
	conn_cli_write(c);
	conn_flush(c);
}

static void
conn_cli_event_cb(struct bufferevent *bev, short what, void *arg)
{
	conn_cli_event(arg, what);
	conn_flush(arg);
}

static void
conn_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	conn_timeout(arg);
	conn_flush(arg);
}

static void
conn_count(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	*(uint64_t *)arg += info->n_added;
}

/*
 * Counts the bytes of the caller's side as the protocol sees them: after
 * a late TLS start, those of the TLS filter, not the encrypted ones.
 */
static void
conn_count_bytes(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->cli);
	struct evbuffer *out = bufferevent_get_output(c->cli);

	if (c->count_in != NULL) {
		evbuffer_remove_cb_entry(c->count_in_buf, c->count_in);
		evbuffer_remove_cb_entry(c->count_out_buf, c->count_out);
	}
	c->count_in = evbuffer_add_cb(in, conn_count, &c->bytes_in);
	c->count_out = evbuffer_add_cb(out, conn_count, &c->bytes_out);
	c->count_in_buf = in;
	c->count_out_buf = out;
}

/* ------------------------------------------------------------------ */
/* What the engine lends a protocol                                    */
/* ------------------------------------------------------------------ */

#define HOST_CONN(h)	((struct conn *)(void *)(h))

static struct evbuffer *
host_input(struct inj_host *h, enum inj_side side)
{
	struct conn *c = HOST_CONN(h);
	struct bufferevent *b = side == INJ_CLIENT ? c->cli : c->up;

	return b != NULL ? bufferevent_get_input(b) : NULL;
}

static struct evbuffer *
host_output(struct inj_host *h, enum inj_side side)
{
	struct conn *c = HOST_CONN(h);
	struct bufferevent *b = side == INJ_CLIENT ? c->cli : c->up;

	return b != NULL ? bufferevent_get_output(b) : NULL;
}

static void
host_reading(struct inj_host *h, enum inj_side side, enum inj_read how)
{
	struct conn *c = HOST_CONN(h);

	if (side == INJ_UPSTREAM) {
		conn_up_reading(c, how != INJ_READ_OFF);
		return;
	}
	if (how == INJ_READ_IF_WATCHED && !c->tls && !c->cli_watched)
		return;
	conn_cli_reading(c, how != INJ_READ_OFF);
}

static void
host_arm(struct inj_host *h, int64_t ms)
{
	conn_arm(HOST_CONN(h), ms);
}

/*
 * TLS on the caller's side over a connection already in use: a TLS
 * filter over its bufferevent, which takes the bytes not read yet.
 */
static int
host_start_tls(struct inj_host *h, enum inj_side side)
{
	struct conn *c = HOST_CONN(h);
	struct bufferevent *tb;

	if (side == INJ_UPSTREAM)
		return conn_up_start_tls(c);
	if (c->tls || c->rt->server_ctx == NULL)
		return CG_ERR_UNSUPPORTED;
	if ((tb = conn_tls_filter(c->cli, SSL_new(c->rt->server_ctx), true)) == NULL)
		return CG_ERR_NOMEM;
	/* The filter reads the socket through its bufferevent from now on. */
	if (c->cli_rev != NULL) {
		event_free(c->cli_rev);
		c->cli_rev = NULL;
	}
	c->cli = tb;
	c->tls = c->tls_late = true;
	conn_count_bytes(c);
	c->params.tls = true;
	bufferevent_setcb(c->cli, conn_cli_read_cb, conn_cli_write_cb, conn_cli_event_cb, c);
	bufferevent_setwatermark(c->cli, EV_WRITE, RELAY_LOW, 0);
	bufferevent_enable(c->cli, EV_READ | EV_WRITE);
	return 0;
}

static int
host_connect(struct inj_host *h, const struct inj_cred *cred, const char *tag,
    bool *connected)
{
	return conn_up_connect(HOST_CONN(h), cred, tag, connected);
}

static void **
host_up_data(struct inj_host *h)
{
	struct conn *c = HOST_CONN(h);

	return c->up != NULL ? &c->up_data : NULL;
}

static size_t
host_tls_binding(struct inj_host *h, enum inj_side side, unsigned char *out, size_t size)
{
	struct conn *c = HOST_CONN(h);

	if (side == INJ_UPSTREAM)
		return c->up != NULL && c->up_tls && !c->up_tls_pending ?
		    conn_tls_binding(c->up, out, size) : 0;
	return 0;	/* credgate is the server there: nothing to bind to */
}

static void
host_drop_upstream(struct inj_host *h)
{
	conn_up_free(HOST_CONN(h));
}

static int
host_begin(struct inj_host *h, const struct inj_request *req,
    const struct inj_params **params, bool *last)
{
	struct conn *c = HOST_CONN(h);
	int r;

	r = conn_begin(c, req);
	*params = &c->params;
	*last = req != NULL && conn_last_request(c);
	return r;
}

static void
host_proof(struct inj_host *h, const char *proof, size_t len)
{
	conn_proof(HOST_CONN(h), proof, len);
}

static bool
host_peer_proof(struct inj_host *h)
{
	return conn_peer_proof(HOST_CONN(h));
}

static void
host_deny(struct inj_host *h, const char *code, const char *reason)
{
	conn_deny(HOST_CONN(h), code, reason);
}

static void
host_audit_error(struct inj_host *h, const char *reason)
{
	audit_session_error(HOST_CONN(h), reason);
}

static void
host_audit_echo(struct inj_host *h, int status, const struct inj_echo *echo)
{
	struct conn *c = HOST_CONN(h);

	cg_log_limited(CG_LOG_WARN, "secret_echo", "msg=secret_echo conn=%llu "
	    "route=%s status=%d scrubbed=%u dropped=%u", (unsigned long long)c->id,
	    c->route->policy.name, status, echo->scrubbed, echo->dropped);
	audit_session_echo(c, status, echo);
	metrics_secret_echo(c->rm);
}

static void
host_relay(struct inj_host *h)
{
	struct conn *c = HOST_CONN(h);

	conn_state_set(c, CONN_RELAY);
	conn_cli_reading(c, true);
	conn_up_reading(c, true);
	conn_relay_move(c, INJ_CLIENT);
	conn_relay_move(c, INJ_UPSTREAM);
}

static void
host_refused(struct inj_host *h, int status, const char *reason)
{
	struct conn *c = HOST_CONN(h);
	char q[160];

	cg_info("msg=refused conn=%llu route=%s peer=%s status=%d reason=%s",
	    (unsigned long long)c->id, c->route->policy.name, c->peer, status,
	    cg_log_quote(q, sizeof(q), reason, strlen(reason)));
	c->last_status = status;
	c->upstream_status = 0;
	conn_metrics_request(c, status);
}

static void
host_answered(struct inj_host *h, int status)
{
	struct conn *c = HOST_CONN(h);

	c->last_status = c->upstream_status = status;
}

/* The request's log line: its attributes, each quoted as needed. */
static void
conn_log_request(struct conn *c)
{
	const struct inj_request *q = c->req;
	char attrs[512], v[160];
	size_t i, n = 0;
	int k;

	attrs[0] = '\0';
	for (i = 0; q != NULL && i < q->nattrs && n < sizeof(attrs); i++) {
		k = snprintf(attrs + n, sizeof(attrs) - n, " %s=%s", q->attrs[i].name,
		    cg_log_quote(v, sizeof(v), q->attrs[i].value, q->attrs[i].len));
		if (k < 0)
			break;
		n += (size_t)k;
	}
	cg_info("msg=request conn=%llu route=%s peer=%s rid=%s%s status=%d "
	    "decision=%s rule=%s duration_ms=%lld", (unsigned long long)c->id,
	    c->route->policy.name, c->peer, c->request_id, attrs, c->last_status,
	    policy_result_name(c->dec.result), c->dec.rule ? c->dec.rule : "-",
	    (long long)(cg_mono_ms() - c->req_start_ms));
}

static void
host_done(struct inj_host *h, bool reusable)
{
	struct conn *c = HOST_CONN(h);

	if (cg_log_level_get() >= CG_LOG_INFO)
		conn_log_request(c);
	conn_metrics_request(c, c->last_status);
	/* The upstream connection goes back to the worker's pool now: a
	 * caller that idles between requests holds none. */
	conn_up_release(c, reusable);
	conn_request_end(c);
}

static void
host_finish(struct inj_host *h, const char *reason, bool linger)
{
	conn_finish(HOST_CONN(h), reason, linger);
}

static void
host_close(struct inj_host *h, const char *reason)
{
	conn_close(HOST_CONN(h), reason);
}

static const char *
host_request_id(struct inj_host *h)
{
	return HOST_CONN(h)->request_id;
}

static bool
host_draining(struct inj_host *h)
{
	return HOST_CONN(h)->w->draining;
}

static void *
host_scratch(struct inj_host *h, size_t *size)
{
	*size = WORKER_SCRATCH;
	return HOST_CONN(h)->w->scratch;
}

/*
 * The route's slot in this worker, for the credential of the request in
 * flight: emptied (its object freed) when the credential changed.  A
 * request of an older generation (in flight across a reload) has none.
 */
static void **
host_route_slot(struct inj_host *h)
{
	struct conn *c = HOST_CONN(h);

	if (c->cred == NULL || c->gen != c->w->gen)
		return NULL;
	return worker_route_slot(c->w, (size_t)(c->rt - c->gen->routes), c->cred, c->proto);
}

static void
host_count(struct inj_host *h, enum inj_count what)
{
	struct conn *c = HOST_CONN(h);

	switch (what) {
	case INJ_COUNT_LOGIN_OK:
		metrics_login(c->rm, METRICS_LOGIN_OK);
		break;
	case INJ_COUNT_LOGIN_REUSED:
		metrics_login(c->rm, METRICS_LOGIN_REUSED);
		break;
	case INJ_COUNT_LOGIN_REFUSED:
		metrics_login(c->rm, METRICS_LOGIN_REFUSED);
		break;
	case INJ_COUNT_LOGIN_FAILED:
		metrics_login(c->rm, METRICS_LOGIN_FAILED);
		break;
	case INJ_COUNT_KEY_DERIVED:
	case INJ_COUNT_KEY_CACHED:
		metrics_key_cache(c->rm, what == INJ_COUNT_KEY_CACHED);
		break;
	}
}

static const struct inj_host_ops conn_host_ops = {
	.input = host_input,
	.output = host_output,
	.reading = host_reading,
	.arm = host_arm,
	.start_tls = host_start_tls,
	.connect = host_connect,
	.up_data = host_up_data,
	.tls_binding = host_tls_binding,
	.drop_upstream = host_drop_upstream,
	.begin = host_begin,
	.proof = host_proof,
	.peer_proof = host_peer_proof,
	.deny = host_deny,
	.audit_error = host_audit_error,
	.audit_echo = host_audit_echo,
	.relay = host_relay,
	.refused = host_refused,
	.answered = host_answered,
	.done = host_done,
	.finish = host_finish,
	.close = host_close,
	.request_id = host_request_id,
	.draining = host_draining,
	.scratch = host_scratch,
	.route_slot = host_route_slot,
	.count = host_count,
};

/* ------------------------------------------------------------------ */
/* Accept                                                              */
/* ------------------------------------------------------------------ */


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

/* A session struct with room for the protocol's state after it. */
static struct conn *
conn_alloc(struct cg_worker *w, const struct inj_ops *proto)
{
	size_t need = (sizeof(struct conn) + 15) / 16 * 16 + proto->state_size;
	struct conn *c;

	while ((c = worker_spare_get(w)) != NULL) {
		if (c->cap >= need)
			return c;
		free(c);
	}
	if ((c = calloc(1, need)) != NULL)
		c->cap = need;
	return c;
}

void
conn_accept(struct cg_worker *w, struct cg_route_rt *rt, int fd, const struct sockaddr *sa,
    int salen, const struct cg_pending_slot *slot)
{
	struct conn *c;

	if ((c = conn_alloc(w, rt->proto)) == NULL) {
		pending_done(w->proc->pending, slot);
		worker_conn_release(w, rt);
		evutil_closesocket(fd);
		return;
	}
	c->id = worker_next_conn_id(w);
	c->w = w;
	c->gen = cg_gen_ref(w->gen);
	c->rt = rt;
	c->route = rt->route;
	c->cfg = c->gen->cfg;
	c->rm = worker_route_metrics(w, rt);
	c->proto = rt->proto;
	c->pst = (char *)c + (sizeof(struct conn) + 15) / 16 * 16;
	c->born_ms = cg_mono_ms();
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;

		inet_ntop(AF_INET6, &s6->sin6_addr, c->peer_ip, sizeof(c->peer_ip));
		c->peer_port = ntohs(s6->sin6_port);
	} else if (sa->sa_family == AF_UNIX) {
		/* A local process on the route's unix socket: no address. */
		memcpy(c->peer_ip, "unix", 5);
		c->peer_port = 0;
	} else {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;

		_Static_assert(sizeof(c->peer_ip) >= INET_ADDRSTRLEN, "peer_ip");
		cg_fmt_ipv4(c->peer_ip, (const unsigned char *)&s4->sin_addr);
		c->peer_port = ntohs(s4->sin_port);
	}
	conn_format_peer(c, sa->sa_family == AF_INET6);
	(void)salen;
	/* TCP_NODELAY comes from the listening socket (listener_open). */
	if (rt->server_ctx != NULL && !rt->proto->tls_late) {
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
		c->pst = NULL;
		conn_free(c);
		return;
	}
	conn_count_bytes(c);
	bufferevent_setcb(c->cli, conn_cli_read_cb, conn_cli_write_cb, conn_cli_event_cb, c);
	bufferevent_setwatermark(c->cli, EV_WRITE, RELAY_LOW, 0);
	c->pend_slot = *slot;
	worker_conn_add(w, c);
	metrics_conn_open(c->rm);
	cg_debug("msg=accept conn=%llu route=%s peer=%s", (unsigned long long)c->id,
	    c->route->policy.name, c->peer);
	conn_params_set(c);
	c->state = CONN_PROTO;
	c->starting = true;
	if (c->proto->start(c->pst, (struct inj_host *)(void *)c, &conn_host_ops,
	    &c->params) != 0) {
		c->starting = false;
		conn_close(c, "out_of_memory");
		return;
	}
	if (c->closed) {
		c->starting = false;	/* the protocol ended it at once */
		return;
	}
	/* A TLS handshake needs EV_WRITE; a plain socket is written by
	 * conn_flush() (a new bufferevent has EV_WRITE on). */
	if (c->tls) {
		c->starting = false;
		bufferevent_enable(c->cli, EV_READ | EV_WRITE);
		return;
	}
	bufferevent_disable(c->cli, EV_WRITE);
	/* Callers usually have sent their request by the time it is
	 * accepted: read it now, and watch the socket only while the
	 * protocol still wants to read. */
	conn_cli_readable(fd, EV_READ, c);
	c->starting = false;
	if (!c->closed && c->cli_want)
		conn_cli_reading(c, true);
}
