/*
 * session.h: the engine's session, shared by the files that run it
 * (private to proxy/):
 *
 *   conn.c      lifecycle: accept, one state setter, timers, close and
 *               reap, drain, plain relay with watermarks, TLS on the
 *               caller's side at accept or later, and the callbacks the
 *               engine lends a protocol (struct inj_host_ops)
 *   sockio.c    the socket fast paths of plain sides
 *   upstream.c  upstream connect, TLS and the hand-over to the pool
 *   pipeline.c  proof -> verification -> decision -> audit -> credential
 *   audit.c     the events a session writes
 *
 * The engine knows no protocol: what is said on either side belongs to
 * the protocol (injectors/injector.h) the route names.
 */
#ifndef CG_SESSION_H
#define CG_SESSION_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "injectors/injector.h"
#include "policy/policy.h"
#include "proxy/audit.h"
#include "proxy/server.h"
#include "proxy/tls.h"

struct bufferevent;
struct event;
struct evbuffer;
struct evbuffer_cb_entry;
struct secret;
struct secret_wait;

#define RELAY_HIGH	INJ_RELAY_HIGH	/* queued output that stops reading the other side */
#define RELAY_LOW	INJ_RELAY_LOW	/* ... and lets it read again */
#define LINGER_MS	5000		/* to flush the final bytes */
#define LINGER_TIME_MS	10000		/* lingering close, all in all */
#define LINGER_READ_MS	2000		/* ... between two reads */
#define LINGER_BYTES	(4 * 1024 * 1024) /* ... dropped at most */
#define AUDIT_LINE_MAX	(64 * 1024)
#define CONN_ATTRS_LOG	511		/* bytes of an attribute in logs and audit */

enum conn_state {
	CONN_PROTO,	/* the protocol is in charge: reads the proof, talks
			   to the upstream; the protocol's timer (arm()) */
	CONN_DECIDE,	/* the pipeline waits for the credential or for its
			   audit event to be written; upstream_response
			   timer */
	CONN_RELAY,	/* plain relay both ways (relay()); idle timer */
	CONN_CLOSING,	/* flushing the final bytes; linger timer.  Then,
			   lingering: reading and dropping the caller's
			   input; linger read timer */
};

struct conn {
	TAILQ_ENTRY(conn) link;
	TAILQ_ENTRY(conn) audit_link;	/* in w->audit_waiters while audit_wait */
	TAILQ_ENTRY(conn) pend_link;	/* in w->pending while pending */
	TAILQ_ENTRY(conn) key_link;	/* in w->key_waiters while key_wait */
	uint64_t id;
	size_t cap;			/* bytes allocated, the protocol's state included */
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

	const struct inj_ops *proto;	/* the route's protocol */
	void *pst;			/* its state, proto->state_size bytes */
	struct inj_params params;	/* what the protocol is told of the route */

	struct bufferevent *cli;
	struct bufferevent *up;
	struct event *cli_rev;		/* plain client socket: read event (conn_read) */
	struct event *up_rev;		/* plain upstream socket, once connected */
	struct event *timer;
	bool up_connected;
	bool up_tls;			/* the upstream side is TLS */
	bool up_tls_pending;		/* ... started late, handshake not done */
	bool up_login;			/* it carries a login: pooled with that
					   credential version only, ... */
	char *up_login_key;		/* ... under this key; NULL: not pooled */
	unsigned up_reused;		/* requests served by a pooled upstream
					   connection */
	void *up_data;			/* the protocol's object of the upstream
					   connection (up_data()) */
	bool pending;			/* no complete request yet; counts in
					   w->proc->pending at pend_slot */
	struct cg_pending_slot pend_slot;
	bool linger;			/* after an early answer: the caller may
					   still be sending */
	bool lingering;			/* answer out, our side shut: reading and
					   dropping input until the caller closes */
	int64_t linger_end_ms;		/* lingering stops then (monotonic) */
	uint64_t lingered;		/* bytes dropped while lingering */
	struct evbuffer_cb_entry *under_cb; /* TLS started late: waiting for
					   the socket's bufferevent to write the
					   final bytes the TLS filter gave it */
	bool under_flushed;		/* ... it did: the timer closes next */
	bool cli_eof;
	bool cli_watched;		/* its read event was ever turned on */
	bool cli_want;			/* the protocol wants the caller read */
	bool starting;			/* in conn_accept: reads are not turned on yet */
	bool relay_cli_paused;		/* plain relay: backpressure */
	bool relay_up_paused;
	bool flushing;			/* conn_flush() is running */
	bool audit_wait;		/* decided; goes on once its event is written */
	bool tls;			/* the client side is TLS */
	bool tls_late;			/* ... started by the protocol (start_tls) */
	bool peer_ok;			/* a client certificate was verified */
	bool tls_checked;		/* the handshake's outcome was read */
	struct tls_peer tpeer;		/* its subject and SANs; an X.509-SVID's
					   SPIFFE ID (tpeer.svid) */
	struct policy_peer ppeer;	/* the same, as policy sees it */
	char **peer_sans;		/* "dns:...", "uri:..." for ppeer */
	const char *svid_refused;	/* the SPIFFE ID of an X.509-SVID the
					   handshake refused, for its audit event;
					   borrowed from the SSL, freed with cli */

	char peer_ip[INET6_ADDRSTRLEN];
	int peer_port;
	char peer[INET6_ADDRSTRLEN + 8];
	int64_t born_ms;		/* monotonic */
	uint64_t bytes_in;		/* from the client */
	uint64_t bytes_out;		/* to the client */
	struct evbuffer_cb_entry *count_in; /* what counts them, on ... */
	struct evbuffer_cb_entry *count_out;
	struct evbuffer *count_in_buf;	/* ... these buffers of the caller's side */
	struct evbuffer *count_out_buf;
	unsigned requests;
	int last_status;		/* sent to the caller, the protocol's or relayed */
	int upstream_status;		/* the upstream's, for that same answer;
					   0 when credgate answered itself */

	/* The request in flight: from begin() to done(). */
	bool in_request;
	int64_t req_start_ms;
	char request_id[72];
	const struct inj_request *req;	/* the protocol's, borrowed */
	struct policy_identity *ident;
	struct policy_decision dec;
	bool decided;
	const char *refusal_code;	/* the protocol's code of a refusal the
					   decision leads to, for its event */
	struct secret *cred;
	struct inj_cred icred;		/* cred, as the protocol sees it */
	struct secret_wait *wait;
	bool key_wait;			/* waits for its issuer's ring to answer */
	bool key_waited;		/* the request waited once: no second time */
	const struct policy_issuer *key_issuer;	/* in gen; lacked the key */
	uint64_t key_started;		/* its ring's fetches started, */
	uint64_t key_refusals;		/* refusals and set serial when */
	uint64_t key_serial;		/* the wait began */
	char *key_token;		/* the proof to verify again; wiped */
	size_t key_token_len;
	char *session_key;		/* per_session: the key of this session's own
					   credential, released when it closes */
};

/* Room for a per-session secret key: the path, the mark, two numbers. */
#define CG_SESSION_KEY_MAX	1200

/* conn.c */
void conn_close(struct conn *c, const char *reason);
void conn_state_set(struct conn *c, enum conn_state st);
void conn_arm(struct conn *c, int64_t ms);
void conn_flush(struct conn *c);
void conn_cli_reading(struct conn *c, bool on);
void conn_up_reading(struct conn *c, bool on);
/* The protocol is told the pipeline's outcome. */
void conn_allowed(struct conn *c);
void conn_refuse(struct conn *c, enum inj_refusal why, const char *reason);

/* sockio.c */
bool conn_push(struct bufferevent *bev, bool last);
void conn_write_done(struct bufferevent *bev, bool plain);
void conn_side_reading(struct bufferevent *bev, struct event *rev, bool on);
ssize_t conn_read(struct conn *c, struct bufferevent *bev, evutil_socket_t fd);
bool conn_retry_later(int err);
struct ssl_st;
struct bufferevent *conn_tls_filter(struct bufferevent *under, struct ssl_st *ssl,
    bool accepting);

/* upstream.c */
bool conn_up_plain(const struct conn *c);
int conn_up_connect(struct conn *c, const struct inj_cred *cred, const char *tag,
    bool *connected);
void conn_up_connected(struct conn *c);
void conn_up_free(struct conn *c);
int conn_up_start_tls(struct conn *c);
void conn_up_release(struct conn *c, bool reusable);
void conn_up_failed_reason(struct conn *c, struct bufferevent *bev, char *reason, size_t size);
size_t conn_tls_binding(struct bufferevent *bev, unsigned char *out, size_t size);

/* pipeline.c */
void conn_params_set(struct conn *c);
int conn_begin(struct conn *c, const struct inj_request *req);
bool conn_last_request(const struct conn *c);
void conn_proof(struct conn *c, const char *proof, size_t len);
void conn_key_wait_end(struct conn *c);
bool conn_peer_proof(struct conn *c);
void conn_deny(struct conn *c, const char *code, const char *reason);
void conn_request_end(struct conn *c);
void conn_metrics_request(struct conn *c, int status);

/* audit.c: the events of a session; each returns 0 when queued. */
int audit_session_decision(struct conn *c, const char *reason);
void audit_session_error(struct conn *c, const char *reason);
void audit_session_echo(struct conn *c, int status, const struct inj_echo *echo);
void audit_session_end(struct conn *c);

#endif /* CG_SESSION_H */
