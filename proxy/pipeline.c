/*
 * pipeline.c: what the engine does with what a protocol hands over, the
 * same for every protocol: a request begins (the newest configuration is
 * adopted), its proof is verified, policy decides, the decision is
 * audited, the credential is fetched, and the protocol is told to go on
 * (allowed) or to refuse.  Asynchronous where the credential must be
 * waited for, or, under audit_failure "deny", its audit event written.
 *
 * Holds a reference to one secret at a time per session and never sees
 * the cache's insides; never touches the protocol's bytes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "proxy/metrics.h"
#include "proxy/session.h"
#include "vault-client/vault.h"

static bool
request_id_ok(const char *v)
{
	size_t i, n = strlen(v);

	if (n == 0 || n > 64)
		return false;
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)v[i];

		if (!(ch >= '0' && ch <= '9') && !(ch >= 'a' && ch <= 'z') &&
		    !(ch >= 'A' && ch <= 'Z') && ch != '-' && ch != '_' &&
		    ch != '.' && ch != ':')
			return false;
	}
	return true;
}

/*
 * Every request is decided under the worker's newest generation, so that
 * a key, rule or route that a reload withdrew applies to the next request
 * on every open session, not only to new ones.  The route is the one the
 * newest generation has on this session's listener, under the same name
 * and protocol.  False when there is none: the route was withdrawn.
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
	if (rt == NULL || strcmp(rt->route->policy.name, c->route->policy.name) != 0 ||
	    rt->proto != c->proto)
		return false;
	/* Same name, same connection counters and metric block. */
	cg_gen_unref(c->gen);
	c->gen = cg_gen_ref(g);
	c->rt = rt;
	c->route = rt->route;
	c->cfg = g->cfg;
	conn_params_set(c);
	return true;
}

/* What the protocol is told of the route (again after a generation change). */
void
conn_params_set(struct conn *c)
{
	const struct cg_config *cfg = c->cfg;
	struct inj_params *p = &c->params;

	p->cfg = c->rt->proto_cfg;
	p->max_body = c->route->max_body;
	p->max_line = cfg->max_request_line;
	p->max_head = cfg->max_header_bytes;
	p->max_fields = cfg->max_header_count;
	p->header_timeout_ms = cfg->client_header_timeout_ms;
	p->idle_timeout_ms = cfg->client_idle_timeout_ms;
	p->connect_timeout_ms = cfg->upstream_connect_timeout_ms;
	p->response_timeout_ms = cfg->upstream_response_timeout_ms;
	p->max_proof = cfg->max_token_bytes;
	p->peer_ip = c->peer_ip;
	p->upstream_name = c->rt->upstream_name;
	p->tls = c->tls;
	p->tls_offered = c->rt->server_ctx != NULL;
	p->upstream_tls = c->rt->client_ctx != NULL;
}

/* The request's end: what it held goes. */
void
conn_request_end(struct conn *c)
{
	secret_view_cancel(c->wait);
	c->wait = NULL;
	conn_key_wait_end(c);
	c->key_waited = false;
	secret_unref(c->cred);
	c->cred = NULL;
	memset(&c->icred, 0, sizeof(c->icred));
	policy_identity_free(c->ident);
	c->ident = NULL;
	c->decided = false;
	c->refusal_code = NULL;
	memset(&c->dec, 0, sizeof(c->dec));
	c->in_request = false;
	c->req = NULL;
	c->request_id[0] = '\0';
}

/*
 * Whether this request is the session's last: routes.[].keepalive_requests
 * and keepalive_time bound a session's life however busy it is.
 */
bool
conn_last_request(const struct conn *c)
{
	return c->requests >= c->route->keepalive_requests ||
	    c->req_start_ms - c->born_ms >= c->route->keepalive_time_ms;
}

int
conn_begin(struct conn *c, const struct inj_request *req)
{
	c->requests++;
	if (req == NULL)
		return 0;
	worker_conn_unpend(c->w, c);
	c->in_request = true;
	c->req = req;
	c->req_start_ms = cg_mono_ms();
	if (req->request_id != NULL && request_id_ok(req->request_id))
		snprintf(c->request_id, sizeof(c->request_id), "%s", req->request_id);
	else
		worker_request_id(c->w, c->request_id);
	if (!conn_adopt_gen(c)) {
		conn_deny(c, c->proto->refusal_code(INJ_REFUSE_UNAVAILABLE), "route withdrawn");
		conn_refuse(c, INJ_REFUSE_UNAVAILABLE, "route withdrawn");
		return CG_ERR_NOTFOUND;
	}
	return 0;
}

void
conn_metrics_request(struct conn *c, int status)
{
	metrics_request(c->rm, c->dec.result == POLICY_WOULD_DENY ? METRICS_WOULD_DENY :
	    c->decided && c->dec.result == POLICY_ALLOW ? METRICS_ALLOW : METRICS_DENY,
	    status, (cg_mono_ms() - (c->req_start_ms ? c->req_start_ms : c->born_ms)) * 1000);
}

/* Refused before a decision could be made: audited as a deny, with the
 * protocol's code of its answer. */
void
conn_deny(struct conn *c, const char *code, const char *reason)
{
	c->refusal_code = code;
	c->dec.result = POLICY_DENY;
	c->dec.rule = NULL;
	c->dec.reason = reason;
	(void)audit_session_decision(c, reason);
}

static const char *
conn_cred_field(const void *ctx, const char *name, size_t *len)
{
	return secret_field((const struct secret *)ctx, name, len);
}

/* The decision allows the request, and its event is written (or may be lost). */
static void
conn_proceed(struct conn *c)
{
	if (c->dec.result == POLICY_WOULD_DENY)
		cg_info("msg=would_deny conn=%llu route=%s peer=%s rid=%s rule=%s reason=\"%s\"",
		    (unsigned long long)c->id, c->route->policy.name, c->peer,
		    c->request_id, c->dec.rule ? c->dec.rule : "-", c->dec.reason);
	c->icred.field = conn_cred_field;
	c->icred.ctx = c->cred;
	c->icred.id = c->cred;
	conn_allowed(c);
}

/*
 * Allowed.  Under audit_failure "deny" nothing goes upstream before the
 * decision event is written: the request waits, in CONN_DECIDE, for the
 * end of this pass of the loop, where conn_audit_flush() writes the
 * events of the pass and lets it go on, or refuses it.
 */
static void
conn_decided(struct conn *c)
{
	bool deny = c->route->audit_failure == CG_AUDIT_FAIL_DENY;

	if (audit_session_decision(c, NULL) != 0 && deny) {
		conn_refuse(c, INJ_REFUSE_UNAVAILABLE, "audit unavailable");
		return;
	}
	if (deny && worker_audit_pending(c->w)) {
		worker_audit_wait(c->w, c, true);
		return;
	}
	conn_proceed(c);
}

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
		/* The store's own reason (static, never a value): it tells
		 * secret_not_found from vault_unavailable and the like. */
		audit_session_error(c, reason != NULL ? reason : "credential unavailable");
		conn_refuse(c, INJ_REFUSE_UNAVAILABLE, "credential unavailable");
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

/*
 * Policy decides on what the caller proved (c->ident, the verified
 * certificate; with peer_only the certificate alone), then the
 * credential is fetched: allowed() or refuse() follows.
 */
static void
conn_decide(struct conn *c, bool peer_only)
{
	const struct cg_route *route = c->route;
	const struct inj_request *req = c->req;
	struct policy_attr attrs[INJ_ATTRS_MAX];
	struct policy_request q;
	size_t i;
	int r;

	/* May they?  The attributes come in the protocol's order: by id. */
	memset(&q, 0, sizeof(q));
	q.id = c->ident;
	q.peer_only = peer_only;
	for (i = 0; req != NULL && i < req->nattrs && i < INJ_ATTRS_MAX; i++) {
		attrs[i].value = req->attrs[i].value;
		attrs[i].len = req->attrs[i].len;
	}
	q.attrs = attrs;
	q.nattrs = i;
	q.now_s = cg_now_ms() / 1000;
	q.peer = c->peer_ok ? &c->ppeer : NULL;
	/* The caller's SPIFFE ID: its X.509-SVID's, else its JWT-SVID's. */
	q.spiffe = c->peer_ok && c->ppeer.spiffe != NULL ? c->ppeer.spiffe :
	    c->ident != NULL ? c->ident->spiffe : NULL;
	policy_decide(&route->policy, &q, &c->dec);
	c->decided = true;
	if (c->dec.result == POLICY_DENY) {
		c->refusal_code = c->proto->refusal_code(INJ_REFUSE_DENIED);
		if (audit_session_decision(c, NULL) != 0 &&
		    route->audit_failure == CG_AUDIT_FAIL_DENY) {
			conn_refuse(c, INJ_REFUSE_UNAVAILABLE, "audit unavailable");
			return;
		}
		conn_refuse(c, INJ_REFUSE_DENIED, c->dec.reason);
		return;
	}

	/* The credential: from the cache, or wait for it with reads off
	 * (only then: toggling reads costs system calls on every request).
	 * A per-session route's session has a credential of its own. */
	conn_state_set(c, CONN_DECIDE);
	if (route->per_session && c->session_key == NULL) {
		char key[CG_SESSION_KEY_MAX];

		if (secret_session_key(key, sizeof(key), route->secret_path, c->w->index,
		    c->id) != 0 || (c->session_key = strdup(key)) == NULL) {
			conn_secret_ready(CG_ERR_NOMEM, NULL, "out of memory", c);
			return;
		}
	}
	r = secret_view_get(c->w->secrets, c->session_key != NULL ? c->session_key :
	    route->secret_path, &c->cred, conn_secret_ready_cb, c, &c->wait);
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

/* The request no longer waits for a key ring; its copy of the proof goes. */
void
conn_key_wait_end(struct conn *c)
{
	if (c->key_wait) {
		TAILQ_REMOVE(&c->w->key_waiters, c, key_link);
		c->key_wait = false;
	}
	if (c->key_token != NULL) {
		cg_wipe(c->key_token, c->key_token_len);
		free(c->key_token);
		c->key_token = NULL;
		c->key_token_len = 0;
	}
	c->key_issuer = NULL;
}

/*
 * The token's issuer lacks the key it names: when its keys are fetched,
 * ask the fetcher for them and wait for the ring's answer: the end of a
 * fetch that started after the token failed, or a refusal by the rate
 * limit (never longer than two fetches).  False when there is nothing to
 * wait for (keys from a file, a second time, no memory); the caller
 * refuses then.
 */
static bool
conn_key_wait(struct conn *c, const struct policy_issuer *is, const char *proof, size_t len)
{
	if (c->key_waited || is->ring == NULL || len == 0)
		return false;
	if ((c->key_token = malloc(len)) == NULL)
		return false;
	memcpy(c->key_token, proof, len);
	c->key_token_len = len;
	c->key_issuer = is;
	c->key_started = policy_keyring_started(is->ring);
	c->key_refusals = policy_keyring_refusals(is->ring);
	c->key_serial = policy_keyring_serial(is->ring);
	if (!policy_keyring_want(is->ring)) {
		conn_key_wait_end(c);
		return false;
	}
	c->key_wait = true;
	c->key_waited = true;
	TAILQ_INSERT_TAIL(&c->w->key_waiters, c, key_link);
	conn_state_set(c, CONN_DECIDE);
	conn_cli_reading(c, false);
	return true;
}

/* Callers whose ring answered verify their proof again (once). */
static void
conn_key_resume(struct conn *c)
{
	char *tok = c->key_token;
	size_t len = c->key_token_len;

	c->key_token = NULL;
	c->key_token_len = 0;
	conn_key_wait_end(c);
	if (!c->closed && c->state == CONN_DECIDE)
		conn_proof(c, tok, len);
	cg_wipe(tok, len);
	free(tok);
	conn_flush(c);
}

/*
 * Whether a new set (published before the wish's answer) holds the key
 * now: a cheap try, as the answer may be one more fetch away.  An identity
 * that verifies lands in the token cache, so the resume costs a lookup.
 */
static bool
conn_key_arrived(struct conn *c)
{
	const struct cg_config *cfg = c->cfg;
	const struct policy_issuer *nokey = NULL;
	struct policy_identity *id = NULL;
	const char *why;
	int r;

	r = token_cache_verify(c->gen == c->w->gen ? c->w->tokens : NULL, cfg->issuers,
	    cfg->nissuers, c->key_token, c->key_token_len, cg_now_ms() / 1000,
	    cfg->max_token_bytes, &id, &why, NULL, &nokey);
	policy_identity_free(id);
	return r == 0 || nokey == NULL;
}

void
conn_keys_answered(struct cg_worker *w)
{
	struct conn *c, *next;
	struct policy_keyring *ring;
	uint64_t serial;

	for (c = TAILQ_FIRST(&w->key_waiters); c != NULL; c = next) {
		next = TAILQ_NEXT(c, key_link);
		ring = c->key_issuer->ring;
		if (policy_keyring_answered(ring) > c->key_started ||
		    policy_keyring_refusals(ring) != c->key_refusals) {
			conn_key_resume(c);
			continue;
		}
		if ((serial = policy_keyring_serial(ring)) == c->key_serial)
			continue;
		c->key_serial = serial;
		if (conn_key_arrived(c))
			conn_key_resume(c);
	}
}

void
conn_proof(struct conn *c, const char *proof, size_t len)
{
	const struct cg_config *cfg = c->cfg;
	const struct policy_issuer *nokey = NULL;
	struct token_cache *tc;
	const char *why;
	char reason[160];
	bool hit = false;
	int r;

	/* The cache serves only the worker's current generation: entries
	 * point at its issuers, which an older generation's free would reuse. */
	tc = c->gen == c->w->gen ? c->w->tokens : NULL;
	r = token_cache_verify(tc, cfg->issuers, cfg->nissuers, proof, len,
	    cg_now_ms() / 1000, cfg->max_token_bytes, &c->ident, &why, &hit, &nokey);
	if (tc != NULL)
		metrics_token_cache(c->w->metrics, hit);
	if (r != 0 && nokey != NULL && conn_key_wait(c, nokey, proof, len))
		return;
	if (r != 0) {
		snprintf(reason, sizeof(reason), "invalid token: %s", why);
		conn_deny(c, c->proto->refusal_code(INJ_REFUSE_PROOF), reason);
		conn_refuse(c, INJ_REFUSE_PROOF, reason);
		return;
	}
	c->params.proof_expires = c->ident->exp;
	conn_decide(c, false);
}

/* The verified client certificate as the whole proof. */
bool
conn_peer_proof(struct conn *c)
{
	if (!c->peer_ok)
		return false;
	c->params.proof_expires = 0;
	conn_decide(c, true);
	return true;
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

	lost = worker_audit_write(w, &waiters);
	while ((c = TAILQ_FIRST(&waiters)) != NULL) {
		TAILQ_REMOVE(&waiters, c, audit_link);
		c->audit_wait = false;
		if (c->closed || c->state != CONN_DECIDE)
			continue;
		if (lost > 0)
			conn_refuse(c, INJ_REFUSE_UNAVAILABLE, "audit unavailable");
		else
			conn_proceed(c);
		conn_flush(c);
	}
}
