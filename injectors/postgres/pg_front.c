/*
 * pg_front.c: the PostgreSQL protocol of a session, both sides.
 *
 * The caller logs in as it would to PostgreSQL, its token as the
 * password; credgate hands the token and the login's database and user
 * to the engine, and once the engine allows, logs in upstream itself
 * with the route's credential (SCRAM-SHA-256 with or without channel
 * binding, MD5 or cleartext, as the server asks), tells the caller the
 * server's parameters and credgate's own cancel key, and relays.  It
 * frames the relayed messages (headers only) to know when the caller
 * leaves between queries, so that the upstream login, reset, can serve
 * the next caller of the same route, database and credential version.
 *
 * Owns struct pg_front and its one state setter.  Talks to the engine
 * only through the callbacks it lends (injectors/injector.h).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <openssl/evp.h>

#include "injectors/postgres/pg.h"
#include "injectors/postgres/pg_auth.h"
#include "injectors/postgres/pg_cancel.h"
#include "injectors/postgres/pg_parse.h"
#include "injectors/postgres/pg_scram.h"

/* The longest message of the upstream's login credgate reads whole. */
#define PG_LOGIN_MSG_MAX	(64 * 1024)
/* ParameterStatus kept per upstream login, and their sizes. */
#define PG_UP_PARAMS_MAX	32
#define PG_PARAM_NAME_MAX	64
#define PG_PARAM_VALUE_MAX	1024
/* A relayed message whose whole body credgate reads (ParameterStatus). */
#define PG_STATUS_MSG_MAX	(PG_PARAM_NAME_MAX + PG_PARAM_VALUE_MAX + 8)
/* The longest wait when no bound applies: the timer re-arms. */
#define PG_TIMER_MAX_MS		(3600 * 1000)

enum pg_state {
	PG_STARTUP,	/* reading the startup packet (and TLS); auth timer */
	PG_PASSWORD,	/* the password (token) was asked for; auth timer */
	PG_DECIDE,	/* the engine verifies and decides; its timers */
	PG_LOGIN,	/* connecting and logging in upstream; connect timer,
			   then response timer per step */
	PG_RELAY,	/* logged in: bytes both ways; the nearest of idle,
			   max_session and token expiry */
	PG_RESET,	/* the caller left; the reset query runs; response timer */
	PG_CANCEL,	/* forwarding a CancelRequest; connect timer */
	PG_CLOSING,	/* the last answer is queued; the engine closes */
};

enum pg_login_step {
	PG_LOGIN_CONNECT,	/* TCP connect */
	PG_LOGIN_SSL,		/* SSLRequest sent: one byte answers */
	PG_LOGIN_TLS,		/* TLS handshake */
	PG_LOGIN_AUTH,		/* StartupMessage sent: authentication */
	PG_LOGIN_PARAMS,	/* AuthenticationOk: parameters until ReadyForQuery */
};

/* What an upstream login keeps (up_data()): it goes to the pool with
 * the connection, for the next caller to be told. */
struct pg_up {
	uint32_t pid;
	unsigned char key[INJ_PG_KEY_MAX];
	size_t keylen;
	size_t nparams;
	char *names[PG_UP_PARAMS_MAX];
	char *values[PG_UP_PARAMS_MAX];
};

struct pg_front {
	struct inj_host *h;
	const struct inj_host_ops *ho;
	const struct inj_params *p;
	const struct inj_pg_cfg *cfg;	/* the route's, from begin() on */
	enum pg_state state;
	enum pg_login_step step;
	bool begun;			/* begin() was called: the login counts */
	bool ended;			/* refused() or done() was called */
	bool tls_asked;			/* SSLRequest or direct TLS seen */
	bool cli_eof;
	bool has_up;
	bool pooled;			/* the upstream login came from the pool */
	bool cli_paused, up_paused;	/* reads stopped by backpressure */
	bool unsynced;			/* extended-query messages since the last Sync */
	bool bad;			/* the upstream login must not be reused */
	bool cancel_listed;
	bool counted;			/* the login's result went to metrics */

	/* The caller's login. */
	char *startup;			/* copy of the startup packet */
	struct inj_pg_startup *su;	/* parsed from it */
	unsigned minor;			/* protocol minor agreed with the caller */
	struct inj_attr attrs[INJ_PG_NATTRS];
	struct inj_request ireq;
	const struct inj_cred *cred;	/* the engine's, until done() */
	char tag[INJ_TAG_MAX];

	/* Logging in upstream. */
	struct inj_pg_scram *scram;
	struct pg_up *up;		/* *up_data(), while there is a login */
	struct inj_pg_cancel cancel;	/* credgate's key for the caller */

	/* Relaying. */
	size_t cli_left, up_left;	/* bytes of a message in flight, to pass */
	unsigned pending;		/* queries and syncs without their ReadyForQuery */
	char txn;			/* the last ReadyForQuery's status */
	int64_t last_ms;		/* monotonic: the last bytes either way */
	int64_t end_ms;			/* monotonic: max_session's end; 0 none */
	int64_t expiry_ms;		/* wall clock: the token's; 0 none */
};

static void pg_login_read(struct pg_front *f);
static void pg_relay(struct pg_front *f, enum inj_side from);
static void pg_reset_read(struct pg_front *f);
static void pg_read_startup(struct pg_front *f);
static void pg_read_password(struct pg_front *f);

static struct evbuffer *
pg_in(struct pg_front *f, enum inj_side side)
{
	return f->ho->input(f->h, side);
}

static struct evbuffer *
pg_out(struct pg_front *f, enum inj_side side)
{
	return f->ho->output(f->h, side);
}

static uint32_t
get32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The relay's timer: the nearest of its bounds, re-armed when it fires
 * early (progress moves the idle bound without touching the timer). */
static int64_t
pg_relay_wait(const struct pg_front *f, int64_t now)
{
	int64_t wait = PG_TIMER_MAX_MS, w;

	if (f->cfg->idle_timeout_ms > 0) {
		w = f->last_ms + f->cfg->idle_timeout_ms - now;
		wait = w < wait ? w : wait;
	}
	if (f->end_ms > 0) {
		w = f->end_ms - now;
		wait = w < wait ? w : wait;
	}
	if (f->expiry_ms > 0) {
		w = f->expiry_ms - cg_now_ms();
		wait = w < wait ? w : wait;
	}
	return wait > 0 ? wait : 0;
}

/* The one place the state changes; arms the state's timer. */
static void
pg_state_set(struct pg_front *f, enum pg_state st)
{
	const struct inj_params *p = f->p;

	f->state = st;
	switch (st) {
	case PG_STARTUP:
	case PG_PASSWORD:
		f->ho->arm(f->h, p->header_timeout_ms);
		break;
	case PG_LOGIN:
	case PG_CANCEL:
		f->ho->arm(f->h, f->step == PG_LOGIN_CONNECT ? p->connect_timeout_ms :
		    p->response_timeout_ms);
		break;
	case PG_RESET:
		f->ho->arm(f->h, p->response_timeout_ms);
		break;
	case PG_RELAY:
		f->ho->arm(f->h, pg_relay_wait(f, cg_mono_ms()));
		break;
	case PG_DECIDE:
	case PG_CLOSING:
		break;		/* the engine's timers */
	}
}

/* ------------------------------------------------------------------ */
/* Ending                                                              */
/* ------------------------------------------------------------------ */

static void
pg_up_free(void *data)
{
	struct pg_up *u = data;
	size_t i;

	if (u == NULL)
		return;
	for (i = 0; i < u->nparams; i++) {
		free(u->names[i]);
		free(u->values[i]);
	}
	cg_wipe(u->key, sizeof(u->key));
	free(u);
}

static void
pg_scram_end(struct pg_front *f)
{
	if (f->scram != NULL) {
		cg_wipe(f->scram, sizeof(*f->scram));
		free(f->scram);
		f->scram = NULL;
	}
}

/* What the login held goes; the session may still run.  The startup
 * packet stays: the login's attributes, which the engine logs and audits
 * when the session ends, point into it. */
static void
pg_login_clear(struct pg_front *f)
{
	pg_scram_end(f);
	free(f->su);
	f->su = NULL;
}

static void
pg_close(struct pg_front *f, const char *reason)
{
	pg_state_set(f, PG_CLOSING);
	f->has_up = false;
	f->ho->close(f->h, reason);
}

/* The login's result, for metrics, once. */
static void
pg_count(struct pg_front *f, enum inj_count what)
{
	if (!f->counted && f->begun) {
		f->counted = true;
		f->ho->count(f->h, what);
	}
}

/* The login, counted once: done() after a login, refused() before. */
static void
pg_end(struct pg_front *f, bool reusable)
{
	if (f->begun && !f->ended) {
		f->ended = true;
		f->ho->done(f->h, reusable && f->has_up);
	} else if (f->has_up && !reusable)
		f->ho->drop_upstream(f->h);
	f->has_up = false;
	f->up = NULL;
	f->cred = NULL;
}

/*
 * Answers the caller with a FATAL ErrorResponse of credgate's own and
 * closes.  status: the HTTP-like code for metrics and logs; reason: the
 * precise cause, for the log only.  The caller sees sqlstate and message,
 * never more.
 */
static void
pg_fatal(struct pg_front *f, int status, const char *sqlstate, const char *message,
    const char *reason)
{
	if (f->state == PG_CLOSING)
		return;
	pg_count(f, strcmp(sqlstate, "08006") == 0 && f->cred != NULL ?
	    INJ_COUNT_LOGIN_FAILED : INJ_COUNT_LOGIN_REFUSED);
	if (!f->ended) {
		f->ended = true;
		f->ho->refused(f->h, status, reason);
	}
	if (inj_pg_write_error(pg_out(f, INJ_CLIENT), "FATAL", sqlstate, message) != 0) {
		pg_close(f, reason);
		return;
	}
	if (f->has_up)
		f->ho->drop_upstream(f->h);
	f->has_up = false;
	f->up = NULL;
	f->cred = NULL;
	pg_state_set(f, PG_CLOSING);
	f->ho->finish(f->h, reason, evbuffer_get_length(pg_in(f, INJ_CLIENT)) > 0);
}

/* The upstream failed before or while logging in: audited, and the
 * caller gets 08006 (nothing of the upstream's own answer). */
static void
pg_upstream_failed(struct pg_front *f, const char *reason)
{
	f->ho->audit_error(f->h, reason);
	pg_fatal(f, 502, "08006", "credgate could not connect to the database server",
	    reason);
}

/* The caller's name, as the messages that refuse it quote it. */
static const char *
pg_user(const struct pg_front *f, char *buf, size_t size)
{
	const struct inj_attr *a = &f->attrs[INJ_PG_ATTR_USER];
	size_t n = a->len < 63 ? a->len : 63;

	if (a->value == NULL)
		return "";
	snprintf(buf, size, "%.*s", (int)n, a->value);
	return buf;
}

/* ------------------------------------------------------------------ */
/* The caller's login                                                  */
/* ------------------------------------------------------------------ */

/* A startup packet credgate does not take. */
static void
pg_startup_refused(struct pg_front *f, const struct inj_pg_error *err)
{
	int status = strcmp(err->sqlstate, "28000") == 0 ? 403 : 400;

	pg_fatal(f, status, err->sqlstate, err->reason, err->reason);
}

/* The caller's parameters as credgate passes them upstream: into out
 * (INJ_PG_PARAMS_MAX entries); the count.  user and database may be
 * NULL (for the options only). */
static size_t
pg_upstream_params(const struct pg_front *f, const char *user, const char *database,
    struct inj_pg_param *out, struct inj_pg_str *unknown, size_t *nunknown)
{
	const char *allow[INJ_PG_PARAMS_MAX + 1];
	size_t i, n = 0;

	for (i = 0; f->cfg != NULL && i < f->cfg->nstartup_parameters && n < INJ_PG_PARAMS_MAX;
	    i++)
		allow[n++] = f->cfg->startup_parameters[i];
	allow[n] = NULL;
	return inj_pg_startup_upstream(f->su, allow, user != NULL ? user : "", database, out,
	    unknown, nunknown);
}

/* A StartupMessage (pkt, len bytes at the head of the caller's input):
 * the login begins. */
static void
pg_login_begin(struct pg_front *f, const char *pkt, size_t len)
{
	struct inj_pg_param params[INJ_PG_PARAMS_MAX];
	struct inj_pg_str unknown[INJ_PG_PARAMS_MAX];
	const struct inj_pg_str *user, *db;
	struct inj_pg_error err;
	size_t nunknown = 0;
	bool last;

	if ((f->startup = malloc(len)) == NULL || (f->su = calloc(1, sizeof(*f->su))) == NULL) {
		pg_close(f, "out of memory");
		return;
	}
	memcpy(f->startup, pkt, len);
	evbuffer_drain(pg_in(f, INJ_CLIENT), len);	/* pkt goes with it */
	if (inj_pg_parse_startup(f->startup, len, INJ_PG_STARTUP_MAX, f->su, &err) !=
	    INJ_PG_DONE) {
		pg_startup_refused(f, &err);
		return;
	}
	f->minor = f->su->minor > INJ_PG_MINOR_MAX ? INJ_PG_MINOR_MAX : f->su->minor;
	user = inj_pg_startup_param(f->su, "user");
	db = inj_pg_startup_param(f->su, "database");
	if (db == NULL || db->len == 0)
		db = user;	/* PostgreSQL's own default */
	f->attrs[INJ_PG_ATTR_DATABASE] = (struct inj_attr){ "database", db->p, db->len };
	f->attrs[INJ_PG_ATTR_USER] = (struct inj_attr){ "user", user->p, user->len };
	f->ireq.attrs = f->attrs;
	f->ireq.nattrs = INJ_PG_NATTRS;
	f->begun = true;
	if (f->ho->begin(f->h, &f->ireq, &f->p, &last) != 0)
		return;		/* refused already */
	f->cfg = f->p->cfg;

	/* What the caller asked for that credgate does not speak. */
	(void)pg_upstream_params(f, NULL, NULL, params, unknown, &nunknown);
	if ((f->su->minor > INJ_PG_MINOR_MAX || nunknown > 0) &&
	    inj_pg_write_negotiate(pg_out(f, INJ_CLIENT), f->minor, unknown, nunknown) != 0) {
		pg_close(f, "out of memory");
		return;
	}
	if (!f->p->tls && !f->cfg->allow_plaintext_token) {
		f->ho->deny(f->h, "28000", "token over a connection without TLS");
		pg_fatal(f, 403, "28000", "credgate requires TLS on this connection "
		    "(sslmode=require)", "token over a connection without TLS");
		return;
	}
	/* A verified client certificate may be the whole proof: no password
	 * is asked for, and the engine's answer may come before this returns. */
	if (f->cfg->certificate_login) {
		f->ho->reading(f->h, INJ_CLIENT, INJ_READ_OFF);
		pg_state_set(f, PG_DECIDE);
		if (f->ho->peer_proof(f->h))
			return;
		f->ho->reading(f->h, INJ_CLIENT, INJ_READ_ON);
	}
	if (inj_pg_write_auth(pg_out(f, INJ_CLIENT), INJ_PG_AUTH_CLEARTEXT, NULL, 0) != 0) {
		pg_close(f, "out of memory");
		return;
	}
	pg_state_set(f, PG_PASSWORD);
	if (evbuffer_get_length(pg_in(f, INJ_CLIENT)) > 0)
		pg_read_password(f);
}

/* A CancelRequest: forwarded to the upstream of the session it names,
 * or dropped without a word. */
static void
pg_cancel_begin(struct pg_front *f, const struct inj_pg_startup *su)
{
	bool connected;

	f->ho->reading(f->h, INJ_CLIENT, INJ_READ_OFF);
	if (!inj_pg_cancel_find(su->pid, su->key.p, su->key.len, f->p->upstream_name,
	    &f->cancel)) {
		pg_close(f, "cancel_unknown_key");
		return;
	}
	f->step = PG_LOGIN_CONNECT;
	pg_state_set(f, PG_CANCEL);
	if (f->ho->connect(f->h, NULL, NULL, &connected) != 0) {
		pg_close(f, "cancel_connect_failed");
		return;
	}
	f->has_up = true;
	if (connected) {
		/* A pooled connection is someone's session: never for this. */
		pg_close(f, "cancel_pooled_connection");
	}
}

static void
pg_cancel_send(struct pg_front *f)
{
	if (inj_pg_write_cancel(pg_out(f, INJ_UPSTREAM), f->cancel.up_pid, f->cancel.up_key,
	    f->cancel.up_keylen) != 0) {
		pg_close(f, "out of memory");
		return;
	}
	cg_wipe(f->cancel.up_key, sizeof(f->cancel.up_key));
	/* The server answers a cancel by closing, once it has read it: so
	 * does credgate then (pg_eof()), its timer bounding the wait. */
	f->step = PG_LOGIN_PARAMS;
	pg_state_set(f, PG_CANCEL);
	f->ho->reading(f->h, INJ_UPSTREAM, INJ_READ_ON);
}

static void
pg_read_startup(struct pg_front *f)
{
	struct evbuffer *in = pg_in(f, INJ_CLIENT);
	struct inj_pg_startup su;
	struct inj_pg_error err;
	size_t avail, n;
	const char *buf;
	unsigned char first;
	int r;

	while (f->state == PG_STARTUP) {
		avail = evbuffer_get_length(in);
		if (avail == 0) {
			if (f->cli_eof)
				pg_close(f, "client_closed");
			return;
		}
		/* PostgreSQL 17's direct TLS: a ClientHello, not a length. */
		if (evbuffer_copyout(in, &first, 1) == 1 && first == 0x16 && !f->p->tls) {
			if (!f->p->tls_offered || f->tls_asked) {
				pg_close(f, "tls_not_offered");
				return;
			}
			f->tls_asked = true;
			if (f->ho->start_tls(f->h, INJ_CLIENT) != 0)
				pg_close(f, "tls_failed");
			return;		/* tls_done() goes on */
		}
		n = avail < INJ_PG_STARTUP_MAX ? avail : INJ_PG_STARTUP_MAX;
		if ((buf = (const char *)evbuffer_pullup(in, (ssize_t)n)) == NULL) {
			pg_close(f, "out of memory");
			return;
		}
		r = inj_pg_parse_startup(buf, n, INJ_PG_STARTUP_MAX, &su, &err);
		if (r == INJ_PG_NEED_MORE) {
			if (f->cli_eof)
				pg_close(f, "client_closed_mid_startup");
			return;
		}
		if (r == INJ_PG_ERROR) {
			pg_startup_refused(f, &err);
			return;
		}
		switch (su.kind) {
		case INJ_PG_SSL_REQUEST:
			if (f->p->tls || f->tls_asked) {
				err = (struct inj_pg_error){ "08P01", "SSLRequest over TLS" };
				pg_startup_refused(f, &err);
				return;
			}
			f->tls_asked = true;
			if (!f->p->tls_offered) {
				evbuffer_drain(in, su.len);
				if (evbuffer_add(pg_out(f, INJ_CLIENT), "N", 1) != 0)
					pg_close(f, "out of memory");
				continue;
			}
			/* Bytes after the request would pass as if they came
			 * over TLS: PostgreSQL refuses them, and so does credgate. */
			if (avail > su.len) {
				err = (struct inj_pg_error){ "08P01",
				    "unencrypted data after SSL request" };
				pg_startup_refused(f, &err);
				return;
			}
			evbuffer_drain(in, su.len);
			if (evbuffer_add(pg_out(f, INJ_CLIENT), "S", 1) != 0 ||
			    f->ho->start_tls(f->h, INJ_CLIENT) != 0)
				pg_close(f, "tls_failed");
			return;		/* tls_done() goes on */
		case INJ_PG_GSSENC_REQUEST:
			evbuffer_drain(in, su.len);
			if (evbuffer_add(pg_out(f, INJ_CLIENT), "N", 1) != 0)
				pg_close(f, "out of memory");
			continue;
		case INJ_PG_CANCEL_REQUEST:
			pg_cancel_begin(f, &su);
			evbuffer_drain(in, su.len);
			return;
		case INJ_PG_STARTUP:
			pg_login_begin(f, buf, su.len);
			return;
		}
	}
}

static void
pg_read_password(struct pg_front *f)
{
	struct evbuffer *in = pg_in(f, INJ_CLIENT);
	struct inj_pg_error err;
	struct inj_pg_msg m;
	struct inj_pg_str pw;
	size_t avail = evbuffer_get_length(in), max = f->p->max_proof + 6, n;
	char *buf, *copy;
	int r;

	if (avail == 0) {
		if (f->cli_eof)
			pg_close(f, "client_closed_before_password");
		return;
	}
	n = avail < max ? avail : max;
	if ((buf = (char *)evbuffer_pullup(in, (ssize_t)n)) == NULL) {
		pg_close(f, "out of memory");
		return;
	}
	r = inj_pg_parse_msg(buf, n, max, &m, &err);
	if (r == INJ_PG_NEED_MORE) {
		if (f->cli_eof)
			pg_close(f, "client_closed_before_password");
		return;
	}
	if (r == INJ_PG_ERROR || m.type != 'p' || inj_pg_password(&m, &pw, &err) != 0) {
		const char *why = r == INJ_PG_ERROR && buf[0] == 'p' ?
		    "password message over max_token_bytes" : "malformed password message";

		f->ho->deny(f->h, "08P01", why);
		pg_fatal(f, 400, "08P01", "invalid password packet", why);
		return;
	}
	if (pw.len == 0) {
		char u[64], msg[128];

		f->ho->deny(f->h, "28P01", "empty password");
		snprintf(msg, sizeof(msg), "password authentication failed for user \"%s\"",
		    pg_user(f, u, sizeof(u)));
		pg_fatal(f, 401, "28P01", msg, "empty password");
		return;
	}
	/* The token leaves the input before the engine looks at it: the
	 * engine may answer (and the caller's buffer change) before proof()
	 * returns. */
	if ((copy = malloc(pw.len)) == NULL) {
		pg_close(f, "out of memory");
		return;
	}
	memcpy(copy, pw.p, pw.len);
	n = pw.len;
	cg_wipe(buf, m.len);
	evbuffer_drain(in, m.len);
	f->ho->reading(f->h, INJ_CLIENT, INJ_READ_OFF);
	pg_state_set(f, PG_DECIDE);
	f->ho->proof(f->h, copy, n);
	cg_wipe(copy, n);
	free(copy);
}

/* ------------------------------------------------------------------ */
/* Logging in upstream                                                 */
/* ------------------------------------------------------------------ */

/* A credential field as a C string PostgreSQL can take. */
static const char *
pg_cred_field(const struct pg_front *f, const char *name, size_t *len)
{
	const char *v = f->cred->field(f->cred->ctx, name, len);

	if (v == NULL || *len == 0 || memchr(v, '\0', *len) != NULL)
		return NULL;
	return v;
}

/* The database credgate logs in to: the route's, else the caller's. */
static const char *
pg_database(const struct pg_front *f, char *buf, size_t size)
{
	const struct inj_attr *a = &f->attrs[INJ_PG_ATTR_DATABASE];

	if (f->cfg->database != NULL)
		return f->cfg->database;
	snprintf(buf, size, "%.*s", (int)(a->len < size - 1 ? a->len : size - 1), a->value);
	return buf;
}

/*
 * The pool tag of this login: what besides the credential version an
 * upstream login must share to serve it (database and the parameters
 * passed), as a hash: logins differing in either never meet.
 */
static int
pg_make_tag(struct pg_front *f)
{
	struct inj_pg_param params[INJ_PG_PARAMS_MAX];
	struct inj_pg_str unknown[INJ_PG_PARAMS_MAX];
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	size_t i, k, n, nunknown;
	char db[64];
	EVP_MD_CTX *ctx;
	int ok;

	n = pg_upstream_params(f, "", pg_database(f, db, sizeof(db)), params, unknown,
	    &nunknown);
	if ((ctx = EVP_MD_CTX_new()) == NULL)
		return CG_ERR_NOMEM;
	ok = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
	for (i = 0; ok && i < n; i++) {
		char lower[PG_PARAM_NAME_MAX];
		size_t nl = params[i].name.len < sizeof(lower) ? params[i].name.len :
		    sizeof(lower);

		for (k = 0; k < nl; k++)
			lower[k] = (char)(params[i].name.p[k] >= 'A' && params[i].name.p[k] <= 'Z' ?
			    params[i].name.p[k] + 32 : params[i].name.p[k]);
		ok = EVP_DigestUpdate(ctx, lower, nl) && EVP_DigestUpdate(ctx, "", 1) &&
		    EVP_DigestUpdate(ctx, params[i].value.p, params[i].value.len) &&
		    EVP_DigestUpdate(ctx, "", 1);
	}
	ok = ok && EVP_DigestFinal_ex(ctx, md, &mdlen);
	EVP_MD_CTX_free(ctx);
	if (!ok || mdlen < 16)
		return CG_ERR_INTERNAL;
	memcpy(f->tag, "pg:", 3);
	for (i = 0; i < 16; i++)
		snprintf(f->tag + 3 + 2 * i, 3, "%02x", md[i]);
	return 0;
}

static void
pg_send_startup(struct pg_front *f)
{
	struct inj_pg_param params[INJ_PG_PARAMS_MAX];
	struct inj_pg_str unknown[INJ_PG_PARAMS_MAX];
	size_t n, nunknown, ulen;
	const char *user;
	char db[64];

	if ((user = pg_cred_field(f, f->cfg->username_field, &ulen)) == NULL) {
		pg_upstream_failed(f, "credential has no usable user name field");
		return;
	}
	n = pg_upstream_params(f, user, pg_database(f, db, sizeof(db)), params, unknown,
	    &nunknown);
	if (inj_pg_write_startup(pg_out(f, INJ_UPSTREAM), params, n) != 0) {
		pg_upstream_failed(f, "cannot write the upstream startup message");
		return;
	}
	f->step = PG_LOGIN_AUTH;
	pg_state_set(f, PG_LOGIN);
}

static void
pg_allowed(void *st, const struct inj_cred *cred)
{
	struct pg_front *f = st;
	bool connected;
	void **slot;

	if (f->state != PG_DECIDE)
		return;
	f->cred = cred;
	if (f->cfg->end_at_token_expiry && f->p->proof_expires > 0)
		f->expiry_ms = f->p->proof_expires * 1000;
	if (pg_make_tag(f) != 0) {
		pg_upstream_failed(f, "out of memory");
		return;
	}
	f->step = PG_LOGIN_CONNECT;
	pg_state_set(f, PG_LOGIN);
	if (f->ho->connect(f->h, cred, f->tag, &connected) != 0) {
		pg_upstream_failed(f, "upstream connect failed");
		return;
	}
	f->has_up = true;
	if (!connected)
		return;		/* connected() goes on */
	/* A pooled login: what it knows came with it. */
	slot = f->ho->up_data(f->h);
	if (slot == NULL || *slot == NULL) {
		pg_upstream_failed(f, "pooled upstream login without its state");
		return;
	}
	f->up = *slot;
	f->pooled = true;
	f->txn = 'I';
	pg_login_read(f);	/* sends the caller its greeting */
}

/* The caller's greeting, once the upstream login is ready. */
static void
pg_greet(struct pg_front *f)
{
	struct evbuffer *out = pg_out(f, INJ_CLIENT);
	size_t i;
	int r;

	f->cancel.up_pid = f->up->pid;
	memcpy(f->cancel.up_key, f->up->key, f->up->keylen);
	f->cancel.up_keylen = f->up->keylen;
	snprintf(f->cancel.upstream, sizeof(f->cancel.upstream), "%s", f->p->upstream_name);
	if (f->up->keylen > 0) {
		if (inj_pg_cancel_add(&f->cancel, f->minor >= 2 ? INJ_PG_KEY_V32 :
		    INJ_PG_KEY_V30) != 0) {
			pg_upstream_failed(f, "no random bytes for a cancel key");
			return;
		}
		f->cancel_listed = true;
	}
	r = inj_pg_write_auth(out, INJ_PG_AUTH_OK, NULL, 0);
	for (i = 0; r == 0 && i < f->up->nparams; i++)
		r = inj_pg_write_param_status(out, f->up->names[i], f->up->values[i]);
	if (r == 0 && f->cancel_listed)
		r = inj_pg_write_key(out, f->cancel.pid, f->cancel.key, f->cancel.keylen);
	if (r == 0)
		r = inj_pg_write_ready(out, f->txn);
	if (r != 0) {
		pg_close(f, "out of memory");
		return;
	}
	pg_login_clear(f);
	pg_count(f, f->pooled ? INJ_COUNT_LOGIN_REUSED : INJ_COUNT_LOGIN_OK);
	f->ho->answered(f->h, 200);
	f->last_ms = cg_mono_ms();
	if (f->cfg->max_session_ms > 0)
		f->end_ms = f->last_ms + f->cfg->max_session_ms;
	f->pending = 0;
	pg_state_set(f, PG_RELAY);
	f->ho->reading(f->h, INJ_CLIENT, INJ_READ_ON);
	f->ho->reading(f->h, INJ_UPSTREAM, INJ_READ_ON);
	pg_relay(f, INJ_CLIENT);
	if (f->state == PG_RELAY)
		pg_relay(f, INJ_UPSTREAM);
}

/* Remembers a server parameter (ParameterStatus) for the next caller
 * of the login; one over the bounds makes the login not reusable. */
static void
pg_up_param(struct pg_front *f, const struct inj_pg_str *name, const struct inj_pg_str *value)
{
	struct pg_up *u = f->up;
	char *v;
	size_t i;

	if (name->len >= PG_PARAM_NAME_MAX || value->len >= PG_PARAM_VALUE_MAX ||
	    memchr(value->p, '\0', value->len) != NULL) {
		f->bad = true;
		return;
	}
	for (i = 0; i < u->nparams; i++)
		if (strlen(u->names[i]) == name->len &&
		    memcmp(u->names[i], name->p, name->len) == 0)
			break;
	if (i == PG_UP_PARAMS_MAX) {
		f->bad = true;
		return;
	}
	if ((v = strndup(value->p, value->len)) == NULL) {
		f->bad = true;
		return;
	}
	if (i == u->nparams) {
		if ((u->names[i] = strndup(name->p, name->len)) == NULL) {
			free(v);
			f->bad = true;
			return;
		}
		u->nparams++;
	} else
		free(u->values[i]);
	u->values[i] = v;
}

/* The server asks credgate to authenticate. */
static void
pg_login_auth(struct pg_front *f, const struct inj_pg_msg *m)
{
	struct evbuffer *out = pg_out(f, INJ_UPSTREAM);
	struct inj_pg_auth a;
	struct inj_pg_error err;
	struct inj_pg_scram_keys keys;
	unsigned char salt[INJ_PG_SCRAM_SALT_MAX], cb[EVP_MAX_MD_SIZE];
	char msg[INJ_PG_SCRAM_MSG_MAX], md5[INJ_PG_MD5_LEN + 1], reason[96];
	size_t pwlen, ulen, len, saltlen, cblen;
	const char *pw, *user;
	unsigned iter;
	void **slot;
	bool derived = false;
	int r;

	if (inj_pg_parse_auth(m, &a, &err) != 0) {
		pg_upstream_failed(f, "upstream sent a malformed authentication request");
		return;
	}
	if (a.code == INJ_PG_AUTH_OK) {
		/* A SCRAM exchange proves the server too: not without its end.
		 * signed_ only says the signature to expect is known (since the
		 * client's final message); a verified SASLFinal ends the
		 * exchange, so one still open was never proven. */
		if (f->scram != NULL) {
			pg_upstream_failed(f, "upstream ended SCRAM without proving itself");
			return;
		}
		pg_scram_end(f);
		f->step = PG_LOGIN_PARAMS;
		return;
	}
	pw = pg_cred_field(f, f->cfg->password_field, &pwlen);
	user = pg_cred_field(f, f->cfg->username_field, &ulen);
	if (pw == NULL || user == NULL) {
		pg_upstream_failed(f, "credential has no usable password field");
		return;
	}
	switch (a.code) {
	case INJ_PG_AUTH_CLEARTEXT:
		r = inj_pg_write_password(out, pw, pwlen, false);
		break;
	case INJ_PG_AUTH_MD5:
		r = inj_pg_md5_response(user, ulen, pw, pwlen, a.salt, md5);
		if (r == 0)
			r = inj_pg_write_password(out, md5, INJ_PG_MD5_LEN, false);
		cg_wipe(md5, sizeof(md5));
		break;
	case INJ_PG_AUTH_SASL:
		if (f->scram != NULL || (!a.scram_sha256 && !a.scram_sha256_plus)) {
			pg_upstream_failed(f, "upstream offers no SASL mechanism credgate speaks");
			return;
		}
		if ((f->scram = calloc(1, sizeof(*f->scram))) == NULL) {
			pg_upstream_failed(f, "out of memory");
			return;
		}
		cblen = a.scram_sha256_plus ?
		    f->ho->tls_binding(f->h, INJ_UPSTREAM, cb, sizeof(cb)) : 0;
		if (cblen == 0 && !a.scram_sha256) {
			pg_upstream_failed(f, "upstream offers SCRAM only with channel binding, "
			    "which this connection cannot give");
			return;
		}
		r = inj_pg_scram_first(f->scram, "", cblen > 0, cb, cblen, NULL, msg,
		    sizeof(msg), &len);
		if (r == 0)
			r = inj_pg_write_sasl_initial(out, cblen > 0 ? "SCRAM-SHA-256-PLUS" :
			    "SCRAM-SHA-256", msg, len);
		break;
	case INJ_PG_AUTH_SASL_CONTINUE:
		if (f->scram == NULL || f->scram->server_first_len > 0) {
			pg_upstream_failed(f, "upstream sent SCRAM out of order");
			return;
		}
		r = inj_pg_scram_server_first(f->scram, a.data.p, a.data.len, salt, &saltlen,
		    &iter);
		if (r != 0) {
			pg_upstream_failed(f, "upstream sent a malformed SCRAM message");
			return;
		}
		slot = f->ho->route_slot(f->h);
		if (slot != NULL && *slot == NULL)
			*slot = inj_pg_keycache_new();
		r = inj_pg_keycache_get(slot != NULL ? *slot : NULL, pw, pwlen, salt, saltlen,
		    iter, &keys, &derived);
		if (r == 0)
			f->ho->count(f->h, derived ? INJ_COUNT_KEY_DERIVED : INJ_COUNT_KEY_CACHED);
		if (r == 0)
			r = inj_pg_scram_final(f->scram, &keys, msg, sizeof(msg), &len);
		cg_wipe(&keys, sizeof(keys));
		if (r == 0)
			r = inj_pg_write_password(out, msg, len, true);
		break;
	case INJ_PG_AUTH_SASL_FINAL:
		if (f->scram == NULL || f->scram->server_first_len == 0 ||
		    inj_pg_scram_server_final(f->scram, a.data.p, a.data.len) != 0) {
			pg_upstream_failed(f, "upstream's SCRAM signature does not verify");
			return;
		}
		pg_scram_end(f);	/* proven: AuthenticationOk may follow */
		return;
	default:
		snprintf(reason, sizeof(reason), "upstream asks for an authentication "
		    "method credgate does not speak (%u)", (unsigned)a.code);
		pg_upstream_failed(f, reason);
		return;
	}
	cg_wipe(msg, sizeof(msg));
	if (r != 0)
		pg_upstream_failed(f, "cannot answer the upstream's authentication request");
}

/* The upstream refused the login: its SQLSTATE and message go to audit. */
static void
pg_login_error(struct pg_front *f, const struct inj_pg_msg *m)
{
	struct inj_pg_notice n;
	struct inj_pg_error err;
	char reason[200];

	if (inj_pg_parse_notice(m, &n, &err) != 0) {
		pg_upstream_failed(f, "upstream refused the login");
		return;
	}
	snprintf(reason, sizeof(reason), "upstream refused the login: %.5s %.*s",
	    n.sqlstate.p != NULL ? n.sqlstate.p : "", (int)(n.message.len < 150 ?
	    n.message.len : 150), n.message.p != NULL ? n.message.p : "");
	f->bad = true;
	pg_upstream_failed(f, reason);
}

/* The upstream's login messages, whole ones, until ReadyForQuery. */
static void
pg_login_read(struct pg_front *f)
{
	struct evbuffer *in = pg_in(f, INJ_UPSTREAM);
	struct inj_pg_error err;
	struct inj_pg_msg m;
	struct inj_pg_str a, b;
	size_t avail, n;
	const char *buf;
	unsigned char c;
	uint32_t pid;

	if (f->pooled) {
		pg_greet(f);
		return;
	}
	if (f->step == PG_LOGIN_SSL) {
		if (evbuffer_copyout(in, &c, 1) != 1)
			return;
		if (c != 'S') {
			pg_upstream_failed(f, c == 'N' ? "upstream does not offer TLS" :
			    "upstream answered the SSL request with an error");
			return;
		}
		/* The rest must come over TLS, not with the answer. */
		if (evbuffer_get_length(in) > 1) {
			pg_upstream_failed(f, "upstream sent data after its SSL answer");
			return;
		}
		evbuffer_drain(in, 1);
		f->step = PG_LOGIN_TLS;
		if (f->ho->start_tls(f->h, INJ_UPSTREAM) != 0)
			pg_upstream_failed(f, "upstream TLS could not start");
		return;
	}
	while (f->state == PG_LOGIN && f->step >= PG_LOGIN_AUTH &&
	    (avail = evbuffer_get_length(in)) > 0) {
		n = avail < PG_LOGIN_MSG_MAX ? avail : PG_LOGIN_MSG_MAX;
		if ((buf = (const char *)evbuffer_pullup(in, (ssize_t)n)) == NULL) {
			pg_upstream_failed(f, "out of memory");
			return;
		}
		switch (inj_pg_parse_msg(buf, n, PG_LOGIN_MSG_MAX, &m, &err)) {
		case INJ_PG_NEED_MORE:
			return;
		case INJ_PG_ERROR:
			pg_upstream_failed(f, "upstream sent a malformed message while logging in");
			return;
		}
		pg_state_set(f, PG_LOGIN);	/* progress */
		switch (m.type) {
		case 'R':
			if (f->step != PG_LOGIN_AUTH) {
				pg_upstream_failed(f, "upstream sent authentication after its end");
				return;
			}
			pg_login_auth(f, &m);
			break;
		case 'E':
			pg_login_error(f, &m);
			return;
		case 'N':
		case 'v':	/* 3.0 asked, no option: nothing to learn */
			break;
		case 'S':
			if (f->step != PG_LOGIN_PARAMS ||
			    inj_pg_parse_param_status(&m, &a, &b, &err) != 0) {
				pg_upstream_failed(f, "upstream sent a malformed parameter");
				return;
			}
			pg_up_param(f, &a, &b);
			break;
		case 'K':
			if (f->step != PG_LOGIN_PARAMS ||
			    inj_pg_parse_key(&m, &pid, &a, &err) != 0) {
				pg_upstream_failed(f, "upstream sent a malformed cancel key");
				return;
			}
			f->up->pid = pid;
			memcpy(f->up->key, a.p, a.len);
			f->up->keylen = a.len;
			break;
		case 'Z':
			if (f->step != PG_LOGIN_PARAMS || m.body.len != 1) {
				pg_upstream_failed(f, "upstream was ready before logging in");
				return;
			}
			f->txn = m.body.p[0];
			evbuffer_drain(in, m.len);
			pg_greet(f);
			return;
		default:
			pg_upstream_failed(f, "upstream sent an unexpected message while "
			    "logging in");
			return;
		}
		if (f->state == PG_LOGIN)
			evbuffer_drain(in, m.len);
	}
}

static void
pg_connected(void *st, bool ok, const char *reason)
{
	struct pg_front *f = st;
	void **slot;

	if (f->state == PG_CLOSING)
		return;
	if (f->state == PG_CANCEL) {
		if (!ok) {
			f->has_up = false;
			pg_close(f, "cancel_connect_failed");
		} else if (f->step == PG_LOGIN_CONNECT && f->p->upstream_tls) {
			f->step = PG_LOGIN_SSL;
			if (inj_pg_write_ssl_request(pg_out(f, INJ_UPSTREAM)) != 0) {
				pg_close(f, "out of memory");
				return;
			}
			pg_state_set(f, PG_CANCEL);
			f->ho->reading(f->h, INJ_UPSTREAM, INJ_READ_ON);
		} else
			pg_cancel_send(f);
		return;
	}
	if (f->state != PG_LOGIN)
		return;
	if (!ok) {
		f->has_up = false;
		pg_upstream_failed(f, reason);
		return;
	}
	if (f->step != PG_LOGIN_CONNECT) {
		/* The upstream TLS handshake failed: a connected(false) comes. */
		return;
	}
	slot = f->ho->up_data(f->h);
	if (slot == NULL || (f->up = *slot = calloc(1, sizeof(struct pg_up))) == NULL) {
		pg_upstream_failed(f, "out of memory");
		return;
	}
	f->ho->reading(f->h, INJ_UPSTREAM, INJ_READ_ON);
	if (f->p->upstream_tls) {
		f->step = PG_LOGIN_SSL;
		pg_state_set(f, PG_LOGIN);
		if (inj_pg_write_ssl_request(pg_out(f, INJ_UPSTREAM)) != 0)
			pg_upstream_failed(f, "out of memory");
		return;
	}
	pg_send_startup(f);
}

static void
pg_tls_done(void *st, enum inj_side side)
{
	struct pg_front *f = st;

	if (side == INJ_CLIENT) {
		if (f->state != PG_STARTUP)
			return;
		pg_state_set(f, PG_STARTUP);
		if (evbuffer_get_length(pg_in(f, INJ_CLIENT)) > 0)
			pg_read_startup(f);
		return;
	}
	if (f->step != PG_LOGIN_TLS)
		return;
	if (f->state == PG_CANCEL) {
		pg_cancel_send(f);
		return;
	}
	if (f->state == PG_LOGIN)
		pg_send_startup(f);
}

/* ------------------------------------------------------------------ */
/* Relaying                                                            */
/* ------------------------------------------------------------------ */

/* The caller is gone, or said Terminate, between messages: the upstream
 * login is reset and kept when it is clean, else closed. */
static void
pg_client_left(struct pg_front *f, const char *reason)
{
	bool reusable = f->has_up && !f->bad && f->pending == 0 && !f->unsynced &&
	    f->txn == 'I' && f->cli_left == 0 && f->up_left == 0 &&
	    evbuffer_get_length(pg_in(f, INJ_UPSTREAM)) == 0 &&
	    f->cfg->reset_query != NULL && f->cfg->reset_query[0] != '\0' &&
	    !f->ho->draining(f->h);

	inj_pg_cancel_del(&f->cancel);
	f->cancel_listed = false;
	f->ho->reading(f->h, INJ_CLIENT, INJ_READ_OFF);
	if (!reusable || inj_pg_write_query(pg_out(f, INJ_UPSTREAM), f->cfg->reset_query) != 0) {
		if (f->has_up && evbuffer_get_length(pg_out(f, INJ_UPSTREAM)) == 0)
			(void)evbuffer_add(pg_out(f, INJ_UPSTREAM), "X\0\0\0\4", 5);
		pg_end(f, false);
		pg_state_set(f, PG_CLOSING);
		f->ho->finish(f->h, reason, false);
		return;
	}
	f->pending = 1;
	pg_state_set(f, PG_RESET);
	f->ho->reading(f->h, INJ_UPSTREAM, INJ_READ_ON);
	pg_reset_read(f);
}

/* A message header seen in the caller's stream. */
static bool
pg_client_msg(struct pg_front *f, char type)
{
	switch (type) {
	case 'Q':
	case 'F':
		f->pending++;
		break;
	case 'S':	/* Sync */
		f->pending++;
		f->unsynced = false;
		break;
	case 'P':
	case 'B':
	case 'E':
	case 'D':
	case 'C':
	case 'H':
		f->unsynced = true;
		break;
	case 'X':
		return false;
	}
	return true;
}

/*
 * Passes whole and partial messages from one side to the other in one
 * move, looking only at headers (and a ReadyForQuery's or
 * ParameterStatus's body from the upstream).  Stops at the caller's
 * Terminate, and for backpressure.
 */
static void
pg_relay(struct pg_front *f, enum inj_side from)
{
	enum inj_side to = from == INJ_CLIENT ? INJ_UPSTREAM : INJ_CLIENT;
	struct evbuffer *in = pg_in(f, from), *out = pg_out(f, to);
	size_t *left = from == INJ_CLIENT ? &f->cli_left : &f->up_left;
	size_t avail = evbuffer_get_length(in), pos = 0, at = 0, take;
	unsigned char hdr[6];
	struct evbuffer_ptr ptr;
	bool terminate = false;
	uint32_t len;

	if (f->state != PG_RELAY || avail == 0 ||
	    evbuffer_ptr_set(in, &ptr, 0, EVBUFFER_PTR_SET) != 0)
		return;
	/* ptr walks forward with pos (it points at "at"): one pass over the
	 * buffer's chains, however many messages it holds. */
	while (pos < avail) {
		if (*left > 0) {
			take = avail - pos < *left ? avail - pos : *left;
			pos += take;
			*left -= take;
			continue;
		}
		if (avail - pos < 5 || evbuffer_ptr_set(in, &ptr, pos - at, EVBUFFER_PTR_ADD) != 0 ||
		    evbuffer_copyout_from(in, &ptr, hdr, 5) != 5)
			break;
		at = pos;
		len = get32(hdr + 1);
		if (len < 4 || len > 0x3fffffff) {
			f->bad = true;
			if (from == INJ_UPSTREAM)
				f->ho->audit_error(f->h, "upstream broke the protocol's framing");
			pg_end(f, false);
			pg_close(f, "protocol_violation");
			return;
		}
		if (from == INJ_CLIENT) {
			if (!pg_client_msg(f, (char)hdr[0])) {
				terminate = true;
				break;
			}
		} else if (hdr[0] == 'Z' || hdr[0] == 'S') {
			/* Its body is read: wait for the whole message. */
			char body[PG_STATUS_MSG_MAX];
			struct inj_pg_msg m;
			struct inj_pg_str a, b;
			struct inj_pg_error err;

			if (len > PG_STATUS_MSG_MAX) {
				f->bad = true;	/* a parameter credgate cannot keep */
				pos += 5;
				*left = len - 4;
				continue;
			}
			if (avail - pos < 1 + (size_t)len)
				break;
			if (evbuffer_copyout_from(in, &ptr, body, 1 + len) != 1 + (ssize_t)len)
				break;
			m = (struct inj_pg_msg){ body[0], { body + 5, len - 4 }, 1 + len };
			if (hdr[0] == 'Z') {
				if (m.body.len == 1)
					f->txn = m.body.p[0];
				if (f->pending > 0)
					f->pending--;
			} else if (inj_pg_parse_param_status(&m, &a, &b, &err) == 0)
				pg_up_param(f, &a, &b);
			pos += 1 + len;
			continue;
		}
		pos += 5;
		*left = len - 4;
	}
	if (pos > 0) {
		if (evbuffer_remove_buffer(in, out, pos) != (int)pos) {
			pg_end(f, false);
			pg_close(f, "out of memory");
			return;
		}
		f->last_ms = cg_mono_ms();
	}
	if (terminate) {
		evbuffer_drain(in, evbuffer_get_length(in));
		pg_client_left(f, "client_terminated");
		return;
	}
	if (evbuffer_get_length(out) > INJ_RELAY_HIGH) {
		f->ho->reading(f->h, from, INJ_READ_OFF);
		if (from == INJ_CLIENT)
			f->cli_paused = true;
		else
			f->up_paused = true;
	}
}

/* The reset query's answer: kept out of the caller's way (it is gone). */
static void
pg_reset_read(struct pg_front *f)
{
	struct evbuffer *in = pg_in(f, INJ_UPSTREAM);
	struct inj_pg_error err;
	struct inj_pg_msg m;
	struct inj_pg_str a, b;
	size_t avail, n;
	const char *buf;

	while (f->state == PG_RESET && (avail = evbuffer_get_length(in)) > 0) {
		n = avail < PG_LOGIN_MSG_MAX ? avail : PG_LOGIN_MSG_MAX;
		if ((buf = (const char *)evbuffer_pullup(in, (ssize_t)n)) == NULL)
			break;
		switch (inj_pg_parse_msg(buf, n, PG_LOGIN_MSG_MAX, &m, &err)) {
		case INJ_PG_NEED_MORE:
			return;
		case INJ_PG_ERROR:
			f->bad = true;
			pg_end(f, false);
			pg_close(f, "upstream_protocol_violation");
			return;
		}
		switch (m.type) {
		case 'E':
			f->bad = true;
			break;
		case 'S':
			if (inj_pg_parse_param_status(&m, &a, &b, &err) == 0)
				pg_up_param(f, &a, &b);
			break;
		case 'Z':
			f->txn = m.body.len == 1 ? m.body.p[0] : 'E';
			evbuffer_drain(in, m.len);	/* m goes with it */
			pg_end(f, !f->bad && f->txn == 'I');
			pg_state_set(f, PG_CLOSING);
			f->ho->finish(f->h, "client_closed", false);
			return;
		}
		evbuffer_drain(in, m.len);
	}
}

/* ------------------------------------------------------------------ */
/* The operations the engine calls                                     */
/* ------------------------------------------------------------------ */

static int
pg_start(void *st, struct inj_host *h, const struct inj_host_ops *ho,
    const struct inj_params *params)
{
	struct pg_front *f = st;

	f->h = h;
	f->ho = ho;
	f->p = params;
	f->txn = 'I';
	pg_state_set(f, PG_STARTUP);
	ho->reading(h, INJ_CLIENT, INJ_READ_ON);
	return 0;
}

static void
pg_free(void *st)
{
	struct pg_front *f = st;

	inj_pg_cancel_del(&f->cancel);
	pg_login_clear(f);
	free(f->startup);
	f->startup = NULL;
}

static void
pg_readable(void *st, enum inj_side side)
{
	struct pg_front *f = st;

	switch (f->state) {
	case PG_STARTUP:
		if (side == INJ_CLIENT)
			pg_read_startup(f);
		break;
	case PG_PASSWORD:
		if (side == INJ_CLIENT)
			pg_read_password(f);
		break;
	case PG_LOGIN:
		if (side == INJ_UPSTREAM)
			pg_login_read(f);
		break;
	case PG_CANCEL:
		if (side == INJ_UPSTREAM && f->step == PG_LOGIN_SSL) {
			struct evbuffer *in = pg_in(f, INJ_UPSTREAM);
			unsigned char c;

			if (evbuffer_copyout(in, &c, 1) != 1)
				break;
			if (c != 'S' || evbuffer_get_length(in) > 1) {
				pg_close(f, "cancel_tls_refused");
				break;
			}
			evbuffer_drain(in, 1);
			f->step = PG_LOGIN_TLS;
			if (f->ho->start_tls(f->h, INJ_UPSTREAM) != 0)
				pg_close(f, "cancel_tls_failed");
		}
		break;
	case PG_RELAY:
		pg_relay(f, side);
		break;
	case PG_RESET:
		if (side == INJ_UPSTREAM)
			pg_reset_read(f);
		break;
	case PG_DECIDE:
	case PG_CLOSING:
		break;
	}
}

static void
pg_writable(void *st, enum inj_side side)
{
	struct pg_front *f = st;
	enum inj_side from = side == INJ_CLIENT ? INJ_UPSTREAM : INJ_CLIENT;
	bool *paused = from == INJ_CLIENT ? &f->cli_paused : &f->up_paused;

	if (f->state != PG_RELAY || !*paused ||
	    evbuffer_get_length(pg_out(f, side)) > INJ_RELAY_LOW)
		return;
	*paused = false;
	f->ho->reading(f->h, from, INJ_READ_ON);
	pg_relay(f, from);
}

static void
pg_eof(void *st, enum inj_side side, bool error)
{
	struct pg_front *f = st;

	if (f->state == PG_CLOSING)
		return;
	if (side == INJ_CLIENT) {
		f->cli_eof = true;
		switch (f->state) {
		case PG_STARTUP:
			pg_read_startup(f);
			break;
		case PG_PASSWORD:
			pg_read_password(f);
			break;
		case PG_RELAY:
			pg_relay(f, INJ_CLIENT);
			if (f->state == PG_RELAY) {
				if (error || evbuffer_get_length(pg_in(f, INJ_CLIENT)) > 0)
					f->bad = true;
				pg_client_left(f, error ? "client_error" : "client_closed");
			}
			break;
		case PG_RESET:
		case PG_CANCEL:
			break;
		default:
			/* Deciding or logging in: the engine's close lets go of
			 * what is in flight; nothing is reusable yet. */
			pg_close(f, "client_closed_during_login");
			break;
		}
		return;
	}
	/* The upstream went away. */
	f->has_up = false;
	switch (f->state) {
	case PG_LOGIN:
		pg_upstream_failed(f, "upstream closed while logging in");
		break;
	case PG_RELAY:
		/* What it said last (a FATAL, usually) reaches the caller. */
		pg_relay(f, INJ_UPSTREAM);
		if (f->state != PG_RELAY)
			break;
		f->ho->drop_upstream(f->h);
		pg_end(f, false);
		pg_state_set(f, PG_CLOSING);
		f->ho->finish(f->h, error ? "upstream_error" : "upstream_closed", false);
		break;
	case PG_RESET:
		f->ho->drop_upstream(f->h);
		pg_end(f, false);
		pg_close(f, "upstream_closed");
		break;
	case PG_CANCEL:
		pg_close(f, f->step == PG_LOGIN_PARAMS ? "cancel_forwarded" :
		    "cancel_upstream_closed");
		break;
	default:
		f->ho->drop_upstream(f->h);
		break;
	}
}

static void
pg_refuse(void *st, enum inj_refusal why, const char *reason)
{
	struct pg_front *f = st;
	char u[64], msg[200];

	switch (why) {
	case INJ_REFUSE_PROOF:
		snprintf(msg, sizeof(msg), "password authentication failed for user \"%s\"",
		    pg_user(f, u, sizeof(u)));
		pg_fatal(f, 401, "28P01", msg, reason);
		break;
	case INJ_REFUSE_DENIED:
		snprintf(msg, sizeof(msg), "access denied for user \"%s\" to database \"%.*s\"",
		    pg_user(f, u, sizeof(u)), (int)(f->attrs[INJ_PG_ATTR_DATABASE].len < 63 ?
		    f->attrs[INJ_PG_ATTR_DATABASE].len : 63),
		    f->attrs[INJ_PG_ATTR_DATABASE].value != NULL ?
		    f->attrs[INJ_PG_ATTR_DATABASE].value : "");
		pg_fatal(f, 403, "28000", msg, reason);
		break;
	case INJ_REFUSE_UNAVAILABLE:
		pg_fatal(f, 503, "08006", "credgate cannot serve this login now", reason);
		break;
	case INJ_REFUSE_UPSTREAM:
	case INJ_REFUSE_TIMEOUT:
		pg_fatal(f, why == INJ_REFUSE_TIMEOUT ? 504 : 502, "08006",
		    "credgate could not connect to the database server", reason);
		break;
	}
}

/* Ends a running session with an error of credgate's own, when the
 * caller is between messages (else it can only close). */
static void
pg_relay_end(struct pg_front *f, const char *sqlstate, const char *message,
    const char *reason)
{
	/* Mid-message, an error would break the caller's framing. */
	if (f->up_left == 0 &&
	    inj_pg_write_error(pg_out(f, INJ_CLIENT), "FATAL", sqlstate, message) != 0)
		reason = "out of memory";
	inj_pg_cancel_del(&f->cancel);
	pg_end(f, false);
	pg_state_set(f, PG_CLOSING);
	f->ho->finish(f->h, reason, false);
}

static void
pg_timeout(void *st)
{
	struct pg_front *f = st;
	int64_t now;

	switch (f->state) {
	case PG_STARTUP:
	case PG_PASSWORD:
		if (f->state == PG_STARTUP && evbuffer_get_length(pg_in(f, INJ_CLIENT)) == 0 &&
		    !f->tls_asked) {
			pg_close(f, "startup_timeout");
			break;
		}
		pg_fatal(f, 408, "08P01", "authentication timeout", "authentication_timeout");
		break;
	case PG_LOGIN:
		pg_upstream_failed(f, f->step == PG_LOGIN_CONNECT ? "upstream connect timeout" :
		    "upstream login timeout");
		break;
	case PG_RESET:
		pg_end(f, false);
		pg_close(f, "reset_timeout");
		break;
	case PG_CANCEL:
		pg_close(f, f->step == PG_LOGIN_PARAMS ? "cancel_forwarded" : "cancel_timeout");
		break;
	case PG_RELAY:
		now = cg_mono_ms();
		if (f->expiry_ms > 0 && cg_now_ms() >= f->expiry_ms)
			pg_relay_end(f, "57P01", "terminating connection: its token expired",
			    "token_expired");
		else if (f->end_ms > 0 && now >= f->end_ms)
			pg_relay_end(f, "57P01", "terminating connection: max_session reached",
			    "max_session");
		else if (f->cfg->idle_timeout_ms > 0 && now - f->last_ms >= f->cfg->idle_timeout_ms)
			pg_relay_end(f, "57P05", "terminating connection due to idle timeout",
			    "idle_timeout");
		else
			pg_state_set(f, PG_RELAY);	/* not yet: re-armed */
		break;
	case PG_DECIDE:
	case PG_CLOSING:
		break;
	}
}

static bool
pg_drain(void *st)
{
	struct pg_front *f = st;

	/* A running session is left alone until drain's deadline. */
	return f->state == PG_STARTUP && evbuffer_get_length(pg_in(f, INJ_CLIENT)) == 0 &&
	    !f->tls_asked;
}

static void
pg_slot_free(void *slot)
{
	inj_pg_keycache_free(slot);
}

static const char *
pg_inject_name(const void *cfg)
{
	(void)cfg;
	return "postgres_login";
}

static const char *
pg_refusal_code(enum inj_refusal why)
{
	switch (why) {
	case INJ_REFUSE_PROOF:
		return "28P01";
	case INJ_REFUSE_DENIED:
		return "28000";
	case INJ_REFUSE_UNAVAILABLE:
	case INJ_REFUSE_UPSTREAM:
	case INJ_REFUSE_TIMEOUT:
		return "08006";
	}
	return "08006";
}

/* ErrorResponse, FATAL, 53300: what PostgreSQL says at max_connections. */
static const char pg_busy[] =
    "E\0\0\0\x46" "SFATAL\0" "VFATAL\0" "C53300\0"
    "Msorry, too many clients already (credgate)\0" "\0";

const struct inj_ops inj_pg_ops = {
	.name = "postgres",
	.tls_late = true,
	.state_size = sizeof(struct pg_front),
	.start = pg_start,
	.free = pg_free,
	.readable = pg_readable,
	.writable = pg_writable,
	.eof = pg_eof,
	.connected = pg_connected,
	.tls_done = pg_tls_done,
	.allowed = pg_allowed,
	.refuse = pg_refuse,
	.timeout = pg_timeout,
	.drain = pg_drain,
	.slot_free = pg_slot_free,
	.inject_name = pg_inject_name,
	.up_data_free = pg_up_free,
	.refusal_code = pg_refusal_code,
	.alpn = "postgresql",
	.busy = pg_busy,
	.busy_len = sizeof(pg_busy) - 1,
};
