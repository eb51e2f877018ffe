/*
 * fake_host.c: the engine's side of a session, faked (fake_host.h).
 * Records what the protocol asks of the engine and plays the engine's
 * part as proxy/conn.c does, without sockets, TLS or timers.
 */
#include "tests/unit/fake_host.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#define FH(h)	((struct fake_host *)(void *)(h))

static void fh_log(struct fake_host *fh, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
fh_log(struct fake_host *fh, const char *fmt, ...)
{
	size_t n = strlen(fh->log);
	va_list ap;

	if (n + 1 >= sizeof(fh->log))
		return;
	va_start(ap, fmt);
	vsnprintf(fh->log + n, sizeof(fh->log) - n, fmt, ap);
	va_end(ap);
	n = strlen(fh->log);
	if (n + 1 < sizeof(fh->log)) {
		fh->log[n] = ' ';
		fh->log[n + 1] = '\0';
	}
}

static void
fh_copy(char *dst, size_t size, const char *src, size_t len)
{
	if (src == NULL)
		len = 0;
	if (len >= size)
		len = size - 1;
	if (len > 0)
		memcpy(dst, src, len);
	dst[len] = '\0';
}

/* The upstream connection closes: its object goes, its bytes too. */
static void
fh_up_close(struct fake_host *fh)
{
	if (fh->up_data != NULL) {
		if (fh->ops->up_data_free == NULL)
			abort();	/* the protocol keeps none, yet set one */
		fh->ops->up_data_free(fh->up_data);
		fh->up_data = NULL;
	}
	fh->up_open = false;
	fh->connecting = false;
	fh->tls_pending[INJ_UPSTREAM] = false;
	fh->reading[INJ_UPSTREAM] = INJ_READ_OFF;
	evbuffer_drain(fh->wire[INJ_UPSTREAM], evbuffer_get_length(fh->wire[INJ_UPSTREAM]));
	fh->wire_eof[INJ_UPSTREAM] = fh->wire_error[INJ_UPSTREAM] = false;
}

/* A new upstream connection: nothing sent or received on it yet. */
static void
fh_up_open(struct fake_host *fh)
{
	fh_up_close(fh);
	evbuffer_drain(fh->in[INJ_UPSTREAM], evbuffer_get_length(fh->in[INJ_UPSTREAM]));
	evbuffer_drain(fh->out[INJ_UPSTREAM], evbuffer_get_length(fh->out[INJ_UPSTREAM]));
	fh->up_open = true;
}

static void
fh_end(struct fake_host *fh, const char *what, const char *reason)
{
	fh_log(fh, "%s", what);
	if (fh->ended)
		return;
	fh->ended = true;
	fh->deciding = false;
	fh_copy(fh->end_reason, sizeof(fh->end_reason), reason, reason ? strlen(reason) : 0);
	fh_up_close(fh);
	fh->reading[INJ_CLIENT] = INJ_READ_OFF;
}

/* ------------------------------------------------------------------ */
/* What the fake engine lends                                          */
/* ------------------------------------------------------------------ */

static struct evbuffer *
h_input(struct inj_host *h, enum inj_side side)
{
	struct fake_host *fh = FH(h);

	return side == INJ_UPSTREAM && !fh->up_open ? NULL : fh->in[side];
}

static struct evbuffer *
h_output(struct inj_host *h, enum inj_side side)
{
	struct fake_host *fh = FH(h);

	return side == INJ_UPSTREAM && !fh->up_open ? NULL : fh->out[side];
}

static void
h_reading(struct inj_host *h, enum inj_side side, enum inj_read how)
{
	struct fake_host *fh = FH(h);

	fh->reading_calls[side]++;
	fh->reading[side] = how;
}

static void
h_arm(struct inj_host *h, int64_t ms)
{
	struct fake_host *fh = FH(h);

	fh->arms++;
	fh->armed_ms = ms;
}

static int
h_start_tls(struct inj_host *h, enum inj_side side)
{
	struct fake_host *fh = FH(h);

	fh->start_tls[side]++;
	fh_log(fh, "start_tls:%s", side == INJ_CLIENT ? "client" : "upstream");
	if (fh->ended)
		fh->late_calls++;
	if (fh->start_tls_rc != 0)
		return fh->start_tls_rc;
	if (side == INJ_CLIENT) {
		if (fh->params.tls || !fh->params.tls_offered)
			return CG_ERR_UNSUPPORTED;
		/* What was not read yet is the handshake's. */
		evbuffer_drain(fh->in[INJ_CLIENT], evbuffer_get_length(fh->in[INJ_CLIENT]));
		fh->params.tls = true;
	} else if (!fh->up_open || fh->connecting)
		return CG_ERR_UNSUPPORTED;
	fh->tls_pending[side] = true;
	return 0;
}

static int
h_connect(struct inj_host *h, const struct inj_cred *cred, const char *tag,
    bool *connected)
{
	struct fake_host *fh = FH(h);

	*connected = false;
	fh->connects++;
	fh->connect_cred = cred != NULL;
	fh->connect_pooled = false;
	fh_copy(fh->tag, sizeof(fh->tag), tag, tag != NULL ? strlen(tag) : 0);
	fh_log(fh, "connect");
	if (fh->ended)
		fh->late_calls++;
	if (tag != NULL && strlen(tag) > INJ_TAG_MAX)
		abort();	/* over the contract's bound */
	switch (fh->connect_mode) {
	case FH_CONNECT_FAIL:
		return CG_ERR_IO;
	case FH_CONNECT_POOLED:
		/* The engine pools logins only: a credential is needed. */
		if (cred != NULL && fh->pool_conn) {
			fh_up_open(fh);
			fh->up_data = fh->pool_data;
			fh->pool_data = NULL;
			fh->pool_conn = false;
			fh->connect_pooled = true;
			*connected = true;
			return 0;
		}
		break;
	case FH_CONNECT_LATER:
		break;
	}
	fh_up_open(fh);
	fh->connecting = true;
	return 0;
}

static void **
h_up_data(struct inj_host *h)
{
	struct fake_host *fh = FH(h);

	return fh->up_open ? &fh->up_data : NULL;
}

static size_t
h_tls_binding(struct inj_host *h, enum inj_side side, unsigned char *out, size_t size)
{
	struct fake_host *fh = FH(h);

	if (side != INJ_UPSTREAM || !fh->up_open || fh->tls_pending[INJ_UPSTREAM] ||
	    fh->binding_len == 0 || fh->binding_len > size)
		return 0;
	memcpy(out, fh->binding, fh->binding_len);
	return fh->binding_len;
}

static void
h_drop_upstream(struct inj_host *h)
{
	struct fake_host *fh = FH(h);

	fh->drops++;
	fh_log(fh, "drop");
	fh_up_close(fh);
}

static int
h_begin(struct inj_host *h, const struct inj_request *req, const struct inj_params **params,
    bool *last)
{
	struct fake_host *fh = FH(h);
	size_t i;

	*params = &fh->params;
	*last = false;
	fh->begins++;
	fh_log(fh, "begin");
	if (fh->ended)
		fh->late_calls++;
	if (req == NULL)
		fh->begins_null++;
	else {
		if (req->nattrs > INJ_ATTRS_MAX)
			abort();
		fh->nattrs = req->nattrs;
		fh->database[0] = fh->user[0] = '\0';
		for (i = 0; i < req->nattrs; i++) {
			const struct inj_attr *a = &req->attrs[i];

			if (strcmp(a->name, "database") == 0)
				fh_copy(fh->database, sizeof(fh->database), a->value, a->len);
			else if (strcmp(a->name, "user") == 0)
				fh_copy(fh->user, sizeof(fh->user), a->value, a->len);
		}
	}
	if (fh->begin_rc != 0) {
		/* The route was withdrawn: the engine refuses before it returns. */
		fh->ops->refuse(fh->st, INJ_REFUSE_UNAVAILABLE, "route withdrawn");
		return fh->begin_rc;
	}
	return 0;
}

static void
h_proof(struct inj_host *h, const char *proof, size_t len)
{
	struct fake_host *fh = FH(h);

	fh->proofs++;
	fh_log(fh, "proof");
	if (fh->ended)
		fh->late_calls++;
	free(fh->proof);
	if ((fh->proof = malloc(len + 1)) == NULL)
		abort();
	memcpy(fh->proof, proof, len);
	fh->proof[len] = '\0';
	fh->proof_len = len;
	fh->deciding = true;
}

static void
h_deny(struct inj_host *h, const char *code, const char *reason)
{
	struct fake_host *fh = FH(h);

	fh->denies++;
	fh_copy(fh->deny_code, sizeof(fh->deny_code), code, strlen(code));
	fh_copy(fh->deny_reason, sizeof(fh->deny_reason), reason, strlen(reason));
	fh_log(fh, "deny:%s", code);
	if (fh->ended)
		fh->late_calls++;
}

static void
h_audit_error(struct inj_host *h, const char *reason)
{
	struct fake_host *fh = FH(h);

	fh->audit_errors++;
	fh_copy(fh->audit_reason, sizeof(fh->audit_reason), reason, strlen(reason));
	fh_log(fh, "audit_error");
}

static void
h_audit_echo(struct inj_host *h, int status, const struct inj_echo *echo)
{
	(void)status;
	(void)echo;
	fh_log(FH(h), "audit_echo");
}

static void
h_relay(struct inj_host *h)
{
	fh_log(FH(h), "relay");
}

static void
h_refused(struct inj_host *h, int status, const char *reason)
{
	struct fake_host *fh = FH(h);

	fh->refusals++;
	fh->refused_status = status;
	fh_copy(fh->refused_reason, sizeof(fh->refused_reason), reason, strlen(reason));
	fh_log(fh, "refused:%d", status);
	if (fh->ended)
		fh->late_calls++;
}

static void
h_answered(struct inj_host *h, int status)
{
	struct fake_host *fh = FH(h);

	fh->answers++;
	fh->answered_status = status;
	fh_log(fh, "answered:%d", status);
	if (fh->ended)
		fh->late_calls++;
}

static void
h_done(struct inj_host *h, bool reusable)
{
	struct fake_host *fh = FH(h);

	fh->dones++;
	fh->reusable = reusable;
	fh_log(fh, "done:%d", reusable ? 1 : 0);
	if (fh->ended)
		fh->late_calls++;
	fh->deciding = false;
	if (reusable && fh->up_open && !fh->connecting && !fh->tls_pending[INJ_UPSTREAM]) {
		/* To the pool, with what the protocol keeps of the login. */
		if (fh->pool_data != NULL && fh->ops->up_data_free != NULL)
			fh->ops->up_data_free(fh->pool_data);
		fh->pool_conn = true;
		fh->pool_data = fh->up_data;
		fh->up_data = NULL;
	}
	fh_up_close(fh);
}

static void
h_finish(struct inj_host *h, const char *reason, bool linger)
{
	struct fake_host *fh = FH(h);

	fh->finishes++;
	if (!fh->ended)
		fh->linger = linger;
	fh_end(fh, "finish", reason);
}

static void
h_close(struct inj_host *h, const char *reason)
{
	struct fake_host *fh = FH(h);

	fh->closes++;
	fh_end(fh, "close", reason);
}

static const char *
h_request_id(struct inj_host *h)
{
	(void)h;
	return "";
}

static bool
h_draining(struct inj_host *h)
{
	return FH(h)->draining;
}

static void *
h_scratch(struct inj_host *h, size_t *size)
{
	struct fake_host *fh = FH(h);

	*size = sizeof(fh->scratch);
	return fh->scratch;
}

static void **
h_route_slot(struct inj_host *h)
{
	struct fake_host *fh = FH(h);

	return fh->slot_on ? &fh->slot : NULL;
}

static void
h_count(struct inj_host *h, enum inj_count what)
{
	struct fake_host *fh = FH(h);

	if ((size_t)what >= sizeof(fh->counts) / sizeof(fh->counts[0]))
		abort();
	fh->counts[what]++;
}

static bool
h_peer_proof(struct inj_host *h)
{
	struct fake_host *fh = FH(h);

	fh->peer_proofs++;
	fh_log(fh, "peer_proof");
	if (fh->ended)
		fh->late_calls++;
	if (!fh->peer)
		return false;
	fh->deciding = true;
	return true;
}

static const struct inj_host_ops fh_ops = {
	.input = h_input,
	.output = h_output,
	.reading = h_reading,
	.arm = h_arm,
	.start_tls = h_start_tls,
	.connect = h_connect,
	.up_data = h_up_data,
	.tls_binding = h_tls_binding,
	.drop_upstream = h_drop_upstream,
	.begin = h_begin,
	.proof = h_proof,
	.peer_proof = h_peer_proof,
	.deny = h_deny,
	.audit_error = h_audit_error,
	.audit_echo = h_audit_echo,
	.relay = h_relay,
	.refused = h_refused,
	.answered = h_answered,
	.done = h_done,
	.finish = h_finish,
	.close = h_close,
	.request_id = h_request_id,
	.draining = h_draining,
	.scratch = h_scratch,
	.route_slot = h_route_slot,
	.count = h_count,
};

/* ------------------------------------------------------------------ */
/* The credential                                                      */
/* ------------------------------------------------------------------ */

static const char *
fh_cred_field(const void *ctx, const char *name, size_t *len)
{
	const struct fh_cred *c = ctx;
	const char *v = NULL;

	if (strcmp(name, "username") == 0)
		v = c->username;
	else if (strcmp(name, "password") == 0)
		v = c->password;
	*len = v != NULL ? strlen(v) : 0;
	return v;
}

void
fh_cred_init(struct fh_cred *c, const char *username, const char *password)
{
	memset(c, 0, sizeof(*c));
	c->username = username;
	c->password = password;
	c->cred.field = fh_cred_field;
	c->cred.ctx = c;
	c->cred.id = c;
}

/* ------------------------------------------------------------------ */
/* The test's side                                                     */
/* ------------------------------------------------------------------ */

struct inj_host *
fh_host(struct fake_host *fh)
{
	return (struct inj_host *)(void *)fh;
}

struct fake_host *
fh_new(const struct inj_ops *ops)
{
	struct fake_host *fh = calloc(1, sizeof(*fh));
	int s;

	if (fh == NULL)
		abort();
	fh->ops = ops;
	for (s = 0; s < 2; s++) {
		fh->in[s] = evbuffer_new();
		fh->out[s] = evbuffer_new();
		fh->wire[s] = evbuffer_new();
		if (fh->in[s] == NULL || fh->out[s] == NULL || fh->wire[s] == NULL)
			abort();
	}
	fh->params.max_line = 8192;
	fh->params.max_head = 65536;
	fh->params.max_fields = 100;
	fh->params.max_proof = 8192;
	fh->params.header_timeout_ms = 10000;
	fh->params.idle_timeout_ms = 60000;
	fh->params.connect_timeout_ms = 5000;
	fh->params.response_timeout_ms = 30000;
	fh->params.peer_ip = "127.0.0.1";
	fh->params.upstream_name = "127.0.0.1:5432";
	return fh;
}

void
fh_free(struct fake_host *fh)
{
	int s;

	if (fh == NULL)
		return;
	if (fh->st != NULL) {
		fh->ops->free(fh->st);
		free(fh->st);
	}
	fh_up_close(fh);
	if (fh->pool_data != NULL && fh->ops->up_data_free != NULL)
		fh->ops->up_data_free(fh->pool_data);
	if (fh->slot != NULL && fh->ops->slot_free != NULL)
		fh->ops->slot_free(fh->slot);
	for (s = 0; s < 2; s++) {
		evbuffer_free(fh->in[s]);
		evbuffer_free(fh->out[s]);
		evbuffer_free(fh->wire[s]);
	}
	free(fh->proof);
	free(fh);
}

int
fh_start(struct fake_host *fh)
{
	int r;

	if (fh->st != NULL)
		abort();
	if ((fh->st = calloc(1, fh->ops->state_size ? fh->ops->state_size : 1)) == NULL)
		abort();
	r = fh->ops->start(fh->st, fh_host(fh), &fh_ops, &fh->params);
	if (r != 0) {
		fh_end(fh, "start_failed", "start failed");
		return r;
	}
	fh_run(fh);
	return 0;
}

void
fh_send(struct fake_host *fh, enum inj_side side, const void *data, size_t len)
{
	if (evbuffer_add(fh->wire[side], data, len) != 0)
		abort();
}

void
fh_peer_close(struct fake_host *fh, enum inj_side side, bool error)
{
	fh->wire_eof[side] = true;
	fh->wire_error[side] = error;
}

/* The engine reads a side while the protocol asks it to and the side
 * has a connection that is up (TLS included). */
static bool
fh_can_read(const struct fake_host *fh, enum inj_side side)
{
	if (fh->ended || fh->st == NULL || fh->reading[side] == INJ_READ_OFF ||
	    fh->tls_pending[side])
		return false;
	return side == INJ_CLIENT || (fh->up_open && !fh->connecting);
}

void
fh_run(struct fake_host *fh)
{
	bool moved;
	int s;

	do {
		moved = false;
		for (s = 0; s < 2; s++) {
			if (!fh_can_read(fh, (enum inj_side)s))
				continue;
			if (evbuffer_get_length(fh->wire[s]) > 0) {
				if (evbuffer_add_buffer(fh->in[s], fh->wire[s]) != 0)
					abort();
				moved = true;
				/* While the engine decides, the caller's bytes
				 * wait in the input. */
				if (s == INJ_CLIENT && fh->deciding)
					continue;
				fh->ops->readable(fh->st, (enum inj_side)s);
			} else if (fh->wire_eof[s]) {
				fh->wire_eof[s] = false;
				moved = true;
				fh->ops->eof(fh->st, (enum inj_side)s, fh->wire_error[s]);
			}
		}
	} while (moved);
}

bool
fh_allow(struct fake_host *fh, const struct inj_cred *cred)
{
	if (fh->ended || !fh->deciding)
		return false;
	fh->deciding = false;
	fh->ops->allowed(fh->st, cred);
	fh_run(fh);
	return true;
}

bool
fh_refuse(struct fake_host *fh, enum inj_refusal why, const char *reason)
{
	if (fh->ended || !fh->deciding)
		return false;
	fh->deciding = false;
	fh->ops->refuse(fh->st, why, reason);
	fh_run(fh);
	return true;
}

bool
fh_connected(struct fake_host *fh, bool ok, const char *reason)
{
	if (fh->ended)
		return false;
	if (fh->connecting) {
		fh->connecting = false;
		if (!ok)
			fh_up_close(fh);
	} else if (!ok && fh->tls_pending[INJ_UPSTREAM]) {
		/* The upstream's handshake failed: it is freed first. */
		fh_up_close(fh);
	} else
		return false;
	fh->ops->connected(fh->st, ok, ok ? NULL : reason);
	fh_run(fh);
	return true;
}

bool
fh_tls_done(struct fake_host *fh, enum inj_side side)
{
	if (fh->ended || !fh->tls_pending[side])
		return false;
	fh->tls_pending[side] = false;
	fh->ops->tls_done(fh->st, side);
	fh_run(fh);
	return true;
}

bool
fh_timeout(struct fake_host *fh)
{
	if (fh->ended || fh->st == NULL)
		return false;
	if (fh->deciding) {
		/* The engine's own timer while it decides. */
		fh->deciding = false;
		fh->ops->refuse(fh->st, INJ_REFUSE_UNAVAILABLE, "credential timeout");
	} else
		fh->ops->timeout(fh->st);
	fh_run(fh);
	return true;
}

bool
fh_writable(struct fake_host *fh, enum inj_side side)
{
	if (fh->ended || fh->st == NULL || (side == INJ_UPSTREAM && !fh->up_open) ||
	    evbuffer_get_length(fh->out[side]) > INJ_RELAY_LOW)
		return false;
	fh->ops->writable(fh->st, side);
	fh_run(fh);
	return true;
}

bool
fh_drain(struct fake_host *fh, bool *may_close)
{
	*may_close = false;
	if (fh->ended || fh->st == NULL)
		return false;
	*may_close = fh->ops->drain(fh->st);
	if (*may_close) {
		fh->closes++;
		fh_end(fh, "close", "drain");
	}
	return true;
}

void
fh_pool_move(struct fake_host *dst, struct fake_host *src)
{
	if (dst->pool_data != NULL && dst->ops->up_data_free != NULL)
		dst->ops->up_data_free(dst->pool_data);
	dst->pool_conn = src->pool_conn;
	dst->pool_data = src->pool_data;
	src->pool_conn = false;
	src->pool_data = NULL;
}
