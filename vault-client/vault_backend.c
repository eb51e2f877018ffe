/*
 * vault_backend.c: the Vault (and OpenBao) secret backend behind vault.h's
 * ops: log in, keep the token alive, read secrets, renew and revoke
 * leases.  On the control thread only; every request goes through
 * outbound.c, so nothing here blocks.  Owns the token (secure memory) and
 * its timers, and the operations in flight.  Responses are read by
 * vault_parse.c; nothing here formats a secret, a token or a lease id.
 *
 * An operation waits for a token when there is none, then is sent.
 * Failures that may pass (no connection, 429, 5xx, a timeout) are retried
 * with capped exponential backoff and jitter, a bounded number of
 * times; then the operation fails with its reason, and the secret cache's
 * negative cache and max_stale take over.  A 403 drops the token and logs
 * in once more before it stands.
 */
#include "config.h"

#include <sys/queue.h>
#include <sys/stat.h>

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <openssl/rand.h>

#include "common/common.h"
#include "common/outbound.h"
#include "vault-client/vault.h"
#include "vault-client/vault_parse.h"

#define VB_API_MAX		512
#define VB_FILE_MAX		(64 * 1024)
#define VB_TOKEN_CHECK_MS	1000
/* A login that failed is not tried again sooner (requests fail at once). */
#define VB_LOGIN_RETRY_MS	1000
/* A token is renewed, or replaced, when two thirds of its life are gone. */
#define VB_RENEW_AT(ttl_ms)	((ttl_ms) * 2 / 3)
/* A renewal that grants less than this is not worth keeping: log in. */
#define VB_MIN_TTL_MS		10000

enum vb_op_kind { VB_FETCH, VB_RENEW, VB_REVOKE };

struct vb;

struct vb_op {
	struct vb *b;
	enum vb_op_kind kind;
	int vkind;			/* enum vault_kind, for fetches */
	char api[VB_API_MAX];		/* without /v1/ */
	char *path;			/* credgate's secret path */
	char *lease_id;			/* secure; renew and revoke */
	int64_t increment_ms;
	secret_cb fetch_cb;
	secret_renew_cb renew_cb;
	secret_done_cb done_cb;
	void *arg;
	int attempts;
	bool relogged;			/* a 403 already led to a new login */
	struct ob_call *call;
	struct event *retry;
	TAILQ_ENTRY(vb_op) link;
};
TAILQ_HEAD(vb_ops, vb_op);

enum vb_token_state {
	VB_TOKEN_NONE,		/* no token; a login starts when asked */
	VB_TOKEN_LOGIN,		/* logging in; operations wait */
	VB_TOKEN_READY,
	VB_TOKEN_FAILED,	/* the last login failed (retry_at) */
};

struct vb {
	struct event_base *base;
	struct ob_client *http;
	struct vault_opts o;		/* strings and lists owned */
	char *strings;			/* one block the strings of o point into */
	const char *auth_mount;
	unsigned char version_key[VAULT_VERSION_KEY_LEN];

	enum vb_token_state tstate;
	char *token;			/* secure, NUL-terminated */
	bool token_renewable;
	int64_t token_expires;		/* monotonic ms; 0: never */
	int64_t login_retry_at;
	enum vault_reason login_reason;
	struct ob_call *login_call;	/* a login in flight */
	struct ob_call *renew_call;	/* a renew-self in flight */
	struct event *token_timer;
	int login_attempts;
	/* The token file (method token): what was read last. */
	struct stat token_st;
	int64_t token_checked;

	struct vb_ops waiting;		/* for a token */
	struct vb_ops active;		/* sent, or waiting to be retried */
	struct vault_stats st;
	enum vault_reason last_reason;
	bool last_ok;
};

static const char *const vb_reason_names[VAULT_R_COUNT] = {
	[VAULT_R_NOT_FOUND] = "secret_not_found",
	[VAULT_R_DENIED] = "vault_permission_denied",
	[VAULT_R_LOGIN] = "vault_login_failed",
	[VAULT_R_SEALED] = "vault_sealed",
	[VAULT_R_UNAVAILABLE] = "vault_unavailable",
	[VAULT_R_TIMEOUT] = "vault_timeout",
	[VAULT_R_RATE_LIMITED] = "vault_rate_limited",
	[VAULT_R_SERVER_ERROR] = "vault_server_error",
	[VAULT_R_BAD_REQUEST] = "vault_bad_request",
	[VAULT_R_BAD_RESPONSE] = "vault_bad_response",
	[VAULT_R_NO_MOUNT] = "vault_path_unknown",
	[VAULT_R_INTERNAL] = "vault_internal",
};

const char *
vault_reason_name(enum vault_reason r)
{
	return (unsigned)r < VAULT_R_COUNT ? vb_reason_names[r] : "vault_internal";
}

static const char *const vb_method_names[] = {
	[VAULT_AUTH_TOKEN] = "token",
	[VAULT_AUTH_APPROLE] = "approle",
	[VAULT_AUTH_KUBERNETES] = "kubernetes",
	[VAULT_AUTH_JWT] = "jwt",
	[VAULT_AUTH_CERT] = "cert",
};

/* ------------------------------------------------------------------ */
/* Paths                                                               */
/* ------------------------------------------------------------------ */

/* Characters a secret path may hold: Vault's own path rules are wider,
 * but nothing here needs escaping in a URL. */
static bool
vb_path_ok(const char *p, size_t n)
{
	size_t i;

	if (n == 0 || p[0] == '/' || p[n - 1] == '/')
		return false;
	for (i = 0; i < n; i++) {
		char ch = p[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.' ||
		    ch == '/' || ch == '@' || ch == '+' || ch == '='))
			return false;
		if (ch == '/' && i + 1 < n && p[i + 1] == '/')
			return false;
		if (ch == '.' && (i == 0 || p[i - 1] == '/') &&
		    (i + 1 == n || p[i + 1] == '/' ||
		    (p[i + 1] == '.' && (i + 2 == n || p[i + 2] == '/'))))
			return false;
	}
	return true;
}

/* Length of the longest mount in list that path is under, 0 if none. */
static size_t
vb_mount_len(const char *const *list, size_t n, const char *path)
{
	size_t i, len, best = 0;

	for (i = 0; i < n; i++) {
		len = strlen(list[i]);
		while (len > 0 && list[i][len - 1] == '/')
			len--;
		if (len > best && strncmp(path, list[i], len) == 0 && path[len] == '/')
			best = len;
	}
	return best;
}

int
vault_path_resolve(const struct vault_opts *o, const char *path, int *kind, char *api,
    size_t apilen, char *err, size_t errlen)
{
	size_t m1, m2, md, plen;
	const char *q, *rest;
	char *end;
	long long ver = 0;

	*kind = VAULT_KV1;
	api[0] = '\0';
	q = strchr(path, '?');
	plen = q != NULL ? (size_t)(q - path) : strlen(path);
	if (!vb_path_ok(path, plen)) {
		cg_errf(err, errlen, "%s: not a Vault path (letters, digits and -_.@+= "
		    "between single slashes)", path);
		return CG_ERR_FORMAT;
	}
	m1 = vb_mount_len(o->kv1_mounts, o->nkv1_mounts, path);
	m2 = vb_mount_len(o->kv2_mounts, o->nkv2_mounts, path);
	md = vb_mount_len(o->database_mounts, o->ndatabase_mounts, path);
	if (m1 == 0 && m2 == 0 && md == 0) {
		cg_errf(err, errlen, "%s: under none of the mounts in secrets.vault "
		    "(kv1_mounts, kv2_mounts, database_mounts)", path);
		return CG_ERR_NOTFOUND;
	}
	if (q != NULL) {
		if (m2 == 0 || m2 < m1 || m2 < md || strncmp(q, "?version=", 9) != 0 ||
		    q[9] < '1' || q[9] > '9' ||
		    (ver = strtoll(q + 9, &end, 10)) <= 0 || *end != '\0' || ver > 1000000000) {
			cg_errf(err, errlen, "%s: only a KV v2 path takes a suffix, "
			    "?version=<n> with n from 1", path);
			return CG_ERR_FORMAT;
		}
	}
	if (md > m1 && md > m2) {
		rest = path + md + 1;
		if (strncmp(rest, "creds/", 6) == 0 && strchr(rest + 6, '/') == NULL)
			*kind = VAULT_DB_CREDS;
		else if (strncmp(rest, "static-creds/", 13) == 0 &&
		    strchr(rest + 13, '/') == NULL)
			*kind = VAULT_DB_STATIC;
		else {
			cg_errf(err, errlen, "%s: a database mount's path is creds/<role> "
			    "or static-creds/<role>", path);
			return CG_ERR_FORMAT;
		}
		if ((size_t)snprintf(api, apilen, "%.*s", (int)plen, path) >= apilen)
			goto long_path;
		return 0;
	}
	if (m2 > m1) {
		*kind = VAULT_KV2;
		if ((size_t)snprintf(api, apilen, "%.*s/data/%.*s%s%lld", (int)m2, path,
		    (int)(plen - m2 - 1), path + m2 + 1, ver > 0 ? "?version=" : "",
		    ver) >= apilen)
			goto long_path;
		if (ver == 0)
			api[strlen(api) - 1] = '\0';	/* the "0" */
		return 0;
	}
	if ((size_t)snprintf(api, apilen, "%.*s", (int)plen, path) >= apilen)
		goto long_path;
	return 0;
 long_path:
	cg_errf(err, errlen, "%s: path too long", path);
	return CG_ERR_LIMIT;
}

/* ------------------------------------------------------------------ */
/* Requests                                                            */
/* ------------------------------------------------------------------ */

/* A JSON body in secure memory: json_dumpb() of o.  NULL on failure. */
static char *
vb_body(json_t *o, size_t *len)
{
	size_t n;
	char *buf;

	*len = 0;
	if (o == NULL || (n = json_dumpb(o, NULL, 0, JSON_COMPACT)) == 0)
		return NULL;
	if ((buf = secmem_alloc(n + 1)) == NULL)
		return NULL;
	if (json_dumpb(o, buf, n, JSON_COMPACT) != n) {
		secmem_free(buf);
		return NULL;
	}
	*len = n;
	return buf;
}

/*
 * Sends method api with body (may be NULL) and the token when with_token;
 * cb gets the response.  0 or CG_ERR_*.
 */
static int
vb_send(struct vb *b, const char *method, const char *api, const char *body, size_t blen,
    bool with_token, ob_cb cb, void *arg, struct ob_call **call)
{
	const char *headers[3];
	struct ob_request rq;
	char url[VB_API_MAX + 300], *tokh = NULL, nsh[300];
	size_t nh = 0, n;
	int r;

	if ((size_t)snprintf(url, sizeof(url), "%s/v1/%s", b->o.address, api) >= sizeof(url))
		return CG_ERR_LIMIT;
	headers[nh++] = "X-Vault-Request: true";
	if (b->o.namespace_ != NULL) {
		snprintf(nsh, sizeof(nsh), "X-Vault-Namespace: %s", b->o.namespace_);
		headers[nh++] = nsh;
	}
	if (with_token) {
		n = strlen(b->token) + sizeof("X-Vault-Token: ");
		if ((tokh = secmem_alloc(n)) == NULL)
			return CG_ERR_NOMEM;
		snprintf(tokh, n, "X-Vault-Token: %s", b->token);
		headers[nh++] = tokh;
	}
	memset(&rq, 0, sizeof(rq));
	rq.method = method;
	rq.url = url;
	rq.headers = headers;
	rq.nheaders = nh;
	rq.body = body;
	rq.body_len = blen;
	r = ob_request(b->http, &rq, cb, arg, call);
	secmem_free(tokh);
	if (r == 0)
		b->st.requests++;
	return r;
}

/* The reason a response that is not a success stands for. */
static enum vault_reason
vb_reason_of(const struct ob_response *r)
{
	if (r->fail == OB_TIMEOUT)
		return VAULT_R_TIMEOUT;
	if (r->fail == OB_TOO_LARGE)
		return VAULT_R_BAD_RESPONSE;
	if (r->fail != OB_OK)
		return VAULT_R_UNAVAILABLE;
	switch (r->status) {
	case 404:
		return VAULT_R_NOT_FOUND;
	case 403:
		return VAULT_R_DENIED;
	case 429:
		return VAULT_R_RATE_LIMITED;
	case 503:
		return vault_errors_sealed(r->body, r->body_len) ? VAULT_R_SEALED :
		    VAULT_R_UNAVAILABLE;
	default:
		if (r->status >= 500)
			return VAULT_R_SERVER_ERROR;
		if (r->status >= 300 && r->status < 400)
			return VAULT_R_UNAVAILABLE;	/* a standby's redirect */
		return VAULT_R_BAD_REQUEST;
	}
}

static bool
vb_retryable(enum vault_reason why)
{
	return why == VAULT_R_UNAVAILABLE || why == VAULT_R_TIMEOUT ||
	    why == VAULT_R_RATE_LIMITED || why == VAULT_R_SERVER_ERROR ||
	    why == VAULT_R_SEALED;
}

/* Notes an answer (or none) for status(). */
static void
vb_outcome(struct vb *b, const struct ob_response *r)
{
	enum vault_reason why;

	b->st.reachable = r->fail == OB_OK;
	if (r->fail == OB_OK && r->status < 300) {
		b->last_ok = true;
		return;
	}
	why = vb_reason_of(r);
	if (vb_retryable(why)) {
		b->last_ok = false;
		b->last_reason = why;
	}
}

static void
vb_log_failure(const char *what, const char *path, const struct ob_response *r,
    enum vault_reason why)
{
	char text[200], q[240];

	if (r->fail != OB_OK) {
		cg_warn("msg=vault_request_failed op=%s path=%s reason=%s error=%s", what,
		    path != NULL ? path : "-", vault_reason_name(why),
		    cg_log_quote(text, sizeof(text), r->error, strlen(r->error)));
		return;
	}
	vault_parse_errors(r->body, r->body_len, text, sizeof(text));
	cg_warn("msg=vault_request_failed op=%s path=%s reason=%s status=%ld errors=%s",
	    what, path != NULL ? path : "-", vault_reason_name(why), r->status,
	    cg_log_quote(q, sizeof(q), text, strlen(text)));
}

static int64_t
vb_backoff(const struct vb *b, int attempt)
{
	return cg_backoff_ms(b->o.backoff_ms, b->o.backoff_max_ms, attempt);
}

static void
vb_timer_arm(struct event *ev, int64_t ms)
{
	struct timeval tv = cg_ms_tv(ms);

	evtimer_add(ev, &tv);
}

/* ------------------------------------------------------------------ */
/* Operations                                                          */
/* ------------------------------------------------------------------ */

static void vb_op_send(struct vb_op *op);
static void vb_login(struct vb *b);

static void
vb_op_free(struct vb_op *op, struct vb_ops *from)
{
	if (from != NULL)
		TAILQ_REMOVE(from, op, link);
	ob_call_cancel(op->call);
	if (op->retry != NULL)
		event_free(op->retry);
	free(op->path);
	secmem_free(op->lease_id);
	free(op);
}

/* Ends op with err (0: success) and its callback. */
static void
vb_op_finish(struct vb_op *op, int err, struct secret *s, int64_t granted_ms,
    enum vault_reason why)
{
	struct vb *b = op->b;
	const char *reason = err == 0 ? NULL : vault_reason_name(why);

	if (err != 0)
		b->st.failures[why]++;
	TAILQ_REMOVE(&b->active, op, link);
	op->call = NULL;
	switch (op->kind) {
	case VB_FETCH:
		if (err == 0)
			b->st.reads++;
		op->fetch_cb(err, s, reason, op->arg);
		break;
	case VB_RENEW:
		if (err == 0)
			b->st.lease_renewals++;
		op->renew_cb(err, granted_ms, reason, op->arg);
		break;
	case VB_REVOKE:
		if (err == 0)
			b->st.lease_revocations++;
		op->done_cb(err, reason, op->arg);
		break;
	}
	vb_op_free(op, NULL);
}

static int
vb_err_of(enum vault_reason why)
{
	switch (why) {
	case VAULT_R_NOT_FOUND:
		return CG_ERR_NOTFOUND;
	case VAULT_R_DENIED:
	case VAULT_R_LOGIN:
		return CG_ERR_PERM;
	case VAULT_R_BAD_RESPONSE:
		return CG_ERR_FORMAT;
	case VAULT_R_INTERNAL:
		return CG_ERR_INTERNAL;
	default:
		return CG_ERR_IO;
	}
}

static void
vb_op_retry_event(evutil_socket_t fd, short what, void *arg)
{
	struct vb_op *op = arg;

	(void)fd;
	(void)what;
	vb_op_send(op);
}

/* After a failure that may pass: again later, or the end. */
static void
vb_op_failed(struct vb_op *op, enum vault_reason why)
{
	struct vb *b = op->b;

	if (vb_retryable(why) && op->attempts <= b->o.retries) {
		if (op->retry == NULL &&
		    (op->retry = evtimer_new(b->base, vb_op_retry_event, op)) == NULL) {
			vb_op_finish(op, CG_ERR_NOMEM, NULL, 0, VAULT_R_INTERNAL);
			return;
		}
		b->st.retries++;
		vb_timer_arm(op->retry, vb_backoff(b, op->attempts - 1));
		return;
	}
	vb_op_finish(op, vb_err_of(why), NULL, 0, why);
}

static void
vb_op_response(const struct ob_response *r, void *arg)
{
	struct vb_op *op = arg;
	struct vb *b = op->b;
	struct secret *s = NULL;
	enum vault_reason why;
	const char *pwhy = NULL;
	bool renewable;
	int64_t ttl_s;
	int e;

	op->call = NULL;
	vb_outcome(b, r);
	if (r->fail == OB_OK && r->status >= 200 && r->status < 300) {
		switch (op->kind) {
		case VB_FETCH:
			e = vault_parse_secret(op->vkind, op->path, b->version_key, r->body,
			    r->body_len, &s, &pwhy);
			if (e == CG_ERR_NOTFOUND) {
				vb_op_finish(op, e, NULL, 0, VAULT_R_NOT_FOUND);
			} else if (e != 0) {
				cg_warn("msg=vault_bad_response path=%s why=\"%s\"", op->path,
				    pwhy != NULL ? pwhy : "?");
				vb_op_finish(op, CG_ERR_FORMAT, NULL, 0, VAULT_R_BAD_RESPONSE);
			} else {
				vb_op_finish(op, 0, s, 0, VAULT_R_COUNT);
				secret_unref(s);
			}
			return;
		case VB_RENEW:
			if (vault_parse_renew(r->body, r->body_len, &ttl_s, &renewable, &pwhy) != 0) {
				vb_op_finish(op, CG_ERR_FORMAT, NULL, 0, VAULT_R_BAD_RESPONSE);
				return;
			}
			vb_op_finish(op, 0, NULL, ttl_s * 1000, VAULT_R_COUNT);
			return;
		case VB_REVOKE:
			vb_op_finish(op, 0, NULL, 0, VAULT_R_COUNT);
			return;
		}
	}
	why = vb_reason_of(r);
	vb_log_failure(op->kind == VB_FETCH ? "read" : op->kind == VB_RENEW ? "renew" : "revoke",
	    op->path, r, why);
	if (why == VAULT_R_DENIED && !op->relogged && b->o.method != VAULT_AUTH_TOKEN) {
		/* The token may have been revoked: one new login, then again. */
		op->relogged = true;
		secmem_free(b->token);
		b->token = NULL;
		b->tstate = VB_TOKEN_NONE;
		TAILQ_REMOVE(&b->active, op, link);
		TAILQ_INSERT_TAIL(&b->waiting, op, link);
		vb_login(b);
		return;
	}
	if (why == VAULT_R_DENIED && !op->relogged) {
		/* A token from a file: read it again, it may have been replaced. */
		op->relogged = true;
		b->token_checked = 0;
		memset(&b->token_st, 0, sizeof(b->token_st));
		secmem_free(b->token);
		b->token = NULL;
		b->tstate = VB_TOKEN_NONE;
		TAILQ_REMOVE(&b->active, op, link);
		TAILQ_INSERT_TAIL(&b->waiting, op, link);
		vb_login(b);
		return;
	}
	if (op->kind != VB_FETCH && (r->status == 400 || r->status == 404) && r->fail == OB_OK) {
		/* The lease is gone (expired, revoked, or not renewable). */
		b->st.failures[VAULT_R_NOT_FOUND]++;
		TAILQ_REMOVE(&b->active, op, link);
		if (op->kind == VB_RENEW)
			op->renew_cb(CG_ERR_EXPIRED, 0, "vault_lease_gone", op->arg);
		else
			op->done_cb(0, NULL, op->arg);	/* nothing left to revoke */
		vb_op_free(op, NULL);
		return;
	}
	vb_op_failed(op, why);
}

static void
vb_op_send(struct vb_op *op)
{
	struct vb *b = op->b;
	json_t *o = NULL;
	char *body = NULL;
	size_t blen = 0;
	bool was;
	int r;

	if (b->tstate != VB_TOKEN_READY) {
		TAILQ_REMOVE(&b->active, op, link);
		TAILQ_INSERT_TAIL(&b->waiting, op, link);
		vb_login(b);
		return;
	}
	op->attempts++;
	if (op->kind == VB_FETCH) {
		r = vb_send(b, "GET", op->api, NULL, 0, true, vb_op_response, op, &op->call);
	} else {
		was = secmem_json_secure(true);
		o = op->kind == VB_RENEW ?
		    json_pack("{s:s, s:I}", "lease_id", op->lease_id, "increment",
		    (json_int_t)(op->increment_ms / 1000)) :
		    json_pack("{s:s}", "lease_id", op->lease_id);
		body = vb_body(o, &blen);
		json_decref(o);
		secmem_json_secure(was);
		r = body == NULL ? CG_ERR_NOMEM :
		    vb_send(b, "PUT", op->api, body, blen, true, vb_op_response, op, &op->call);
		secmem_free(body);
	}
	if (r != 0)
		vb_op_finish(op, r, NULL, 0, VAULT_R_INTERNAL);
}

/* Sends every operation that waited for a token, or fails them all. */
static void
vb_release_waiting(struct vb *b, int err, enum vault_reason why)
{
	struct vb_op *op;

	while ((op = TAILQ_FIRST(&b->waiting)) != NULL) {
		TAILQ_REMOVE(&b->waiting, op, link);
		TAILQ_INSERT_TAIL(&b->active, op, link);
		if (err == 0)
			vb_op_send(op);
		else
			vb_op_finish(op, err, NULL, 0, why);
	}
}

/* ------------------------------------------------------------------ */
/* The token                                                           */
/* ------------------------------------------------------------------ */

static void vb_token_timer_arm(struct vb *b, int64_t ttl_ms);

/* A file's contents, trimmed, into secure memory (*out).  The file must
 * not be readable by group or others. */
static int
vb_read_secret_file(const char *file, char **out, struct stat *st, char *err, size_t errlen)
{
	return cg_file_read_token(file, CG_FILE_FOLLOW | CG_FILE_NO_GROUP_WORLD, VB_FILE_MAX,
	    out, st, err, errlen);
}

/* Ends a login: operations go, or fail. */
static void
vb_login_done(struct vb *b, int err, enum vault_reason why)
{
	int64_t now = cg_mono_ms();

	b->login_call = NULL;
	if (err != 0) {
		b->tstate = VB_TOKEN_FAILED;
		b->login_reason = why;
		b->login_retry_at = now + VB_LOGIN_RETRY_MS;
		b->st.failures[why]++;
		vb_release_waiting(b, vb_err_of(why), why);
		return;
	}
	b->tstate = VB_TOKEN_READY;
	b->login_attempts = 0;
	vb_release_waiting(b, 0, VAULT_R_COUNT);
}

/* The token (new or renewed) lives ttl_s more. */
static void
vb_token_lifetime(struct vb *b, int64_t ttl_s, bool renewable)
{
	b->token_renewable = renewable;
	b->token_expires = ttl_s > 0 ? cg_mono_ms() + ttl_s * 1000 : 0;
	vb_token_timer_arm(b, ttl_s * 1000);
}

static void
vb_login_response(const struct ob_response *r, void *arg)
{
	struct vb *b = arg;
	struct vault_auth a;
	enum vault_reason why;
	const char *pwhy = NULL;
	bool renewable;
	int64_t ttl_s;

	b->login_call = NULL;
	vb_outcome(b, r);
	if (r->fail == OB_OK && r->status == 200) {
		if (b->o.method == VAULT_AUTH_TOKEN) {
			if (vault_parse_lookup(r->body, r->body_len, &ttl_s, &renewable,
			    &pwhy) != 0) {
				cg_warn("msg=vault_bad_response op=lookup-self why=\"%s\"", pwhy);
				vb_login_done(b, CG_ERR_FORMAT, VAULT_R_BAD_RESPONSE);
				return;
			}
		} else {
			if (vault_parse_auth(r->body, r->body_len, &a, &pwhy) != 0) {
				cg_warn("msg=vault_bad_response op=login why=\"%s\"", pwhy);
				vb_login_done(b, CG_ERR_FORMAT, VAULT_R_BAD_RESPONSE);
				return;
			}
			secmem_free(b->token);
			b->token = a.token;
			a.token = NULL;
			ttl_s = a.ttl_s;
			renewable = a.renewable;
		}
		b->st.logins++;
		cg_info("msg=vault_login method=%s ttl_s=%lld renewable=%s",
		    vb_method_names[b->o.method], (long long)ttl_s, renewable ? "yes" : "no");
		vb_token_lifetime(b, ttl_s, renewable);
		vb_login_done(b, 0, VAULT_R_COUNT);
		return;
	}
	why = vb_reason_of(r);
	vb_log_failure("login", NULL, r, why);
	if (vb_retryable(why) && ++b->login_attempts <= b->o.retries) {
		b->st.retries++;
		vb_timer_arm(b->token_timer, vb_backoff(b, b->login_attempts - 1));
		return;
	}
	b->login_attempts = 0;
	if (!vb_retryable(why))
		why = VAULT_R_LOGIN;
	secmem_free(b->token);
	b->token = NULL;
	vb_login_done(b, CG_ERR_PERM, why);
}

/* The login request for the method; 0 or CG_ERR_* (err says why). */
static int
vb_login_send(struct vb *b, char *err, size_t errlen)
{
	char api[VB_API_MAX], *a = NULL, *c = NULL, *body = NULL;
	json_t *o = NULL;
	size_t blen = 0;
	bool was;
	int r;

	if (b->o.method == VAULT_AUTH_TOKEN) {
		secmem_free(b->token);
		b->token = NULL;
		if ((r = vb_read_secret_file(b->o.token_file, &b->token, &b->token_st, err,
		    errlen)) != 0)
			return r;
		b->token_checked = cg_mono_ms();
		return vb_send(b, "GET", "auth/token/lookup-self", NULL, 0, true,
		    vb_login_response, b, &b->login_call);
	}
	snprintf(api, sizeof(api), "auth/%s/login", b->auth_mount);
	switch (b->o.method) {
	case VAULT_AUTH_APPROLE:
		if ((r = vb_read_secret_file(b->o.role_id_file, &a, NULL, err, errlen)) != 0 ||
		    (b->o.secret_id_file != NULL &&
		    (r = vb_read_secret_file(b->o.secret_id_file, &c, NULL, err, errlen)) != 0))
			goto out;
		break;
	case VAULT_AUTH_KUBERNETES:
	case VAULT_AUTH_JWT:
		if ((r = vb_read_secret_file(b->o.jwt_file, &c, NULL, err, errlen)) != 0)
			goto out;
		break;
	default:
		break;
	}
	was = secmem_json_secure(true);
	o = json_object();
	switch (b->o.method) {
	case VAULT_AUTH_APPROLE:
		json_object_set_new(o, "role_id", json_string(a));
		if (c != NULL)
			json_object_set_new(o, "secret_id", json_string(c));
		break;
	case VAULT_AUTH_KUBERNETES:
	case VAULT_AUTH_JWT:
		json_object_set_new(o, "role", json_string(b->o.role));
		json_object_set_new(o, "jwt", json_string(c));
		break;
	case VAULT_AUTH_CERT:
		if (b->o.role != NULL)
			json_object_set_new(o, "name", json_string(b->o.role));
		break;
	case VAULT_AUTH_TOKEN:
		break;
	}
	body = vb_body(o, &blen);
	json_decref(o);
	secmem_json_secure(was);
	if (body == NULL) {
		r = CG_ERR_NOMEM;
		cg_errf(err, errlen, "out of secure memory");
		goto out;
	}
	r = vb_send(b, "POST", api, body, blen, false, vb_login_response, b, &b->login_call);
	if (r != 0)
		cg_errf(err, errlen, "cannot start the login request");
 out:
	secmem_free(a);
	secmem_free(c);
	secmem_free(body);
	return r;
}

/* Starts a login unless one runs; operations in b->waiting wait for it. */
static void
vb_login(struct vb *b)
{
	char err[256], q[300];
	int r;

	if (b->tstate == VB_TOKEN_LOGIN)
		return;
	if (b->tstate == VB_TOKEN_FAILED && cg_mono_ms() < b->login_retry_at) {
		vb_release_waiting(b, vb_err_of(b->login_reason), b->login_reason);
		return;
	}
	b->tstate = VB_TOKEN_LOGIN;
	err[0] = '\0';
	if ((r = vb_login_send(b, err, sizeof(err))) != 0) {
		cg_err("msg=vault_login_failed method=%s error=%s",
		    vb_method_names[b->o.method], cg_log_quote(q, sizeof(q), err, strlen(err)));
		vb_login_done(b, r, VAULT_R_LOGIN);
	}
}

static void
vb_renew_self_response(const struct ob_response *r, void *arg)
{
	struct vb *b = arg;
	struct vault_auth a;
	enum vault_reason why;

	b->renew_call = NULL;
	vb_outcome(b, r);
	if (r->fail == OB_OK && r->status == 200 &&
	    vault_parse_auth(r->body, r->body_len, &a, NULL) == 0) {
		int64_t ttl_s = a.ttl_s;
		bool renewable = a.renewable;

		vault_auth_clear(&a);	/* the same token */
		b->st.token_renewals++;
		if (ttl_s * 1000 >= VB_MIN_TTL_MS || b->o.method == VAULT_AUTH_TOKEN) {
			vb_token_lifetime(b, ttl_s, renewable);
			return;
		}
	} else {
		why = vb_reason_of(r);
		vb_log_failure("renew-self", NULL, r, why);
		b->st.failures[why]++;
		if (b->o.method == VAULT_AUTH_TOKEN) {
			/* Nothing to log in with: try again until it ends. */
			if (b->token_expires == 0 || b->token_expires - cg_mono_ms() > 2000)
				vb_timer_arm(b->token_timer, vb_backoff(b, 2));
			return;
		}
	}
	/* Near the end of its life (or its max TTL): a new login, kept apart
	 * from the operations, which go on with the old token meanwhile. */
	b->tstate = VB_TOKEN_NONE;
	vb_login(b);
}

/* The token's timer: its maintenance when two thirds of its life are
 * gone, or a login retry. */
static void
vb_token_event(evutil_socket_t fd, short what, void *arg)
{
	struct vb *b = arg;
	json_t *o;
	char *body;
	size_t blen;
	bool was;

	(void)fd;
	(void)what;
	if (b->tstate == VB_TOKEN_LOGIN && b->login_call == NULL) {
		/* A login's backoff ended. */
		char err[256];
		int r;

		if ((r = vb_login_send(b, err, sizeof(err))) != 0)
			vb_login_done(b, r, VAULT_R_LOGIN);
		return;
	}
	if (b->tstate != VB_TOKEN_READY || b->login_call != NULL || b->renew_call != NULL)
		return;
	if (b->token_renewable) {
		/* No increment: the token's own TTL again, within its max. */
		was = secmem_json_secure(true);
		o = json_object();
		body = vb_body(o, &blen);
		json_decref(o);
		secmem_json_secure(was);
		if (body != NULL && vb_send(b, "POST", "auth/token/renew-self", body, blen, true,
		    vb_renew_self_response, b, &b->renew_call) == 0) {
			secmem_free(body);
			return;
		}
		secmem_free(body);
	}
	if (b->o.method == VAULT_AUTH_TOKEN)
		return;		/* a file token that cannot be renewed ends */
	b->tstate = VB_TOKEN_NONE;
	vb_login(b);
}

static void
vb_token_timer_arm(struct vb *b, int64_t ttl_ms)
{
	evtimer_del(b->token_timer);
	if (ttl_ms > 0)
		vb_timer_arm(b->token_timer, VB_RENEW_AT(ttl_ms));
}

/* Method token: a token file that changed is read again (at most once a
 * second, when an operation asks). */
static void
vb_token_file_check(struct vb *b)
{
	struct cg_file_stamp now_st, read_st;
	int64_t now = cg_mono_ms();

	if (b->o.method != VAULT_AUTH_TOKEN || b->tstate != VB_TOKEN_READY ||
	    now - b->token_checked < VB_TOKEN_CHECK_MS)
		return;
	b->token_checked = now;
	cg_file_stamp_path(b->o.token_file, &now_st);
	if (now_st.err != 0)
		return;
	cg_file_stamp_of(&b->token_st, &read_st);
	if (!cg_file_stamp_eq(&now_st, &read_st)) {
		cg_info("msg=vault_token_file_changed file=%s", b->o.token_file);
		b->tstate = VB_TOKEN_NONE;
	}
}

/* ------------------------------------------------------------------ */
/* The backend's ops                                                   */
/* ------------------------------------------------------------------ */

static struct vb_op *
vb_op_new(struct vb *b, enum vb_op_kind kind, const char *path)
{
	struct vb_op *op;

	if ((op = calloc(1, sizeof(*op))) == NULL)
		return NULL;
	op->b = b;
	op->kind = kind;
	if (path != NULL && (op->path = strdup(path)) == NULL) {
		free(op);
		return NULL;
	}
	return op;
}

/* Queues op: sent now when there is a token, else after a login. */
static void
vb_op_start(struct vb *b, struct vb_op *op)
{
	vb_token_file_check(b);
	TAILQ_INSERT_TAIL(&b->active, op, link);
	if (b->tstate == VB_TOKEN_READY) {
		vb_op_send(op);
		return;
	}
	TAILQ_REMOVE(&b->active, op, link);
	TAILQ_INSERT_TAIL(&b->waiting, op, link);
	vb_login(b);
}

/*
 * Callbacks never run inside the call that started them: an operation
 * that fails at once (no mount, a login that cannot be tried yet) is
 * finished from a zero timer.
 */
static void
vb_deferred_event(evutil_socket_t fd, short what, void *arg)
{
	struct vb_op *op = arg;
	struct vb *b = op->b;

	(void)fd;
	(void)what;
	event_free(op->retry);
	op->retry = NULL;
	TAILQ_INSERT_TAIL(&b->active, op, link);
	if (op->kind == VB_FETCH && op->vkind < 0) {
		vb_op_finish(op, CG_ERR_NOTFOUND, NULL, 0, VAULT_R_NO_MOUNT);
		return;
	}
	TAILQ_REMOVE(&b->active, op, link);
	vb_op_start(b, op);
}

static int
vb_defer(struct vb *b, struct vb_op *op)
{
	if ((op->retry = evtimer_new(b->base, vb_deferred_event, op)) == NULL)
		return CG_ERR_NOMEM;
	vb_timer_arm(op->retry, 0);
	return 0;
}

static int
vb_fetch(void *ctx, const char *path, secret_cb cb, void *arg)
{
	struct vb *b = ctx;
	struct vb_op *op;
	char err[256], base[VB_API_MAX];
	const char *mark;
	int r;

	if ((op = vb_op_new(b, VB_FETCH, path)) == NULL)
		return CG_ERR_NOMEM;
	op->fetch_cb = cb;
	op->arg = arg;
	/* A session's own key names its path before the mark. */
	if ((mark = strstr(path, SECRET_SESSION_MARK)) != NULL) {
		if ((size_t)(mark - path) >= sizeof(base))
			op->vkind = -1;
		else
			snprintf(base, sizeof(base), "%.*s", (int)(mark - path), path);
	}
	if (op->vkind == 0 && vault_path_resolve(&b->o, mark != NULL ? base : path,
	    &op->vkind, op->api, sizeof(op->api), err, sizeof(err)) != 0)
		op->vkind = -1;
	/* Deferred: ops wait on one tick so that callbacks never run inside. */
	if ((r = vb_defer(b, op)) != 0) {
		vb_op_free(op, NULL);
		return r;
	}
	return 0;
}

/* A renewal (renew_cb) or a revocation (done_cb) of lease_id, started on
 * the next tick as every operation. */
static int
vb_lease_op(struct vb *b, enum vb_op_kind kind, const char *lease_id, int64_t increment_ms,
    secret_renew_cb renew_cb, secret_done_cb done_cb, void *arg)
{
	struct vb_op *op;
	int r;

	if ((op = vb_op_new(b, kind, NULL)) == NULL)
		return CG_ERR_NOMEM;
	snprintf(op->api, sizeof(op->api), "sys/leases/%s",
	    kind == VB_RENEW ? "renew" : "revoke");
	op->increment_ms = increment_ms;
	op->renew_cb = renew_cb;
	op->done_cb = done_cb;
	op->arg = arg;
	if ((op->lease_id = secmem_strndup(lease_id, strlen(lease_id))) == NULL)
		r = CG_ERR_NOMEM;
	else
		r = vb_defer(b, op);
	if (r != 0)
		vb_op_free(op, NULL);
	return r;
}

static int
vb_renew(void *ctx, const char *lease_id, int64_t increment_ms, secret_renew_cb cb,
    void *arg)
{
	return vb_lease_op(ctx, VB_RENEW, lease_id, increment_ms, cb, NULL, arg);
}

static int
vb_revoke(void *ctx, const char *lease_id, secret_done_cb cb, void *arg)
{
	return vb_lease_op(ctx, VB_REVOKE, lease_id, 0, NULL, cb, arg);
}

static enum secret_backend_state
vb_status(void *ctx, const char **reason)
{
	struct vb *b = ctx;

	if (b->tstate == VB_TOKEN_FAILED) {
		*reason = vault_reason_name(b->login_reason);
		return SECRET_BACKEND_DOWN;
	}
	if (!b->last_ok && b->st.requests > 0) {
		*reason = vault_reason_name(b->last_reason);
		return SECRET_BACKEND_DOWN;
	}
	*reason = NULL;
	return SECRET_BACKEND_OK;
}

static void
vb_free(void *ctx)
{
	struct vb *b = ctx;
	struct vb_op *op;

	while ((op = TAILQ_FIRST(&b->waiting)) != NULL)
		vb_op_free(op, &b->waiting);
	while ((op = TAILQ_FIRST(&b->active)) != NULL)
		vb_op_free(op, &b->active);
	ob_call_cancel(b->login_call);
	ob_call_cancel(b->renew_call);
	if (b->token_timer != NULL)
		event_free(b->token_timer);
	ob_client_free(b->http);
	secmem_free(b->token);
	cg_wipe(b->version_key, sizeof(b->version_key));
	free(b->strings);
	free(b);
}

static const struct secret_backend_ops vb_ops = {
	.name = "vault",
	.fetch = vb_fetch,
	.renew = vb_renew,
	.revoke = vb_revoke,
	.status = vb_status,
	.free = vb_free,
};

bool
vault_backend_stats(const struct secret_backend *sb, struct vault_stats *st)
{
	const struct vb *b;

	memset(st, 0, sizeof(*st));
	if (sb == NULL || sb->ops != &vb_ops)
		return false;
	b = sb->ctx;
	*st = b->st;
	if (b->tstate != VB_TOKEN_READY)
		st->token_ttl_ms = -1;
	else if (b->token_expires == 0)
		st->token_ttl_ms = 0;
	else if ((st->token_ttl_ms = b->token_expires - cg_mono_ms()) < 1)
		st->token_ttl_ms = 1;
	return true;
}

/* ------------------------------------------------------------------ */
/* Making one                                                          */
/* ------------------------------------------------------------------ */

/* Copies the strings and lists of o into one block of b. */
static int
vb_copy_opts(struct vb *b, const struct vault_opts *o)
{
	const char **sp[] = { &b->o.address, &b->o.namespace_, &b->o.ca_file, &b->o.ca_path,
	    &b->o.server_name, &b->o.cert, &b->o.key, &b->o.auth_mount, &b->o.role,
	    &b->o.token_file, &b->o.role_id_file, &b->o.secret_id_file, &b->o.jwt_file };
	struct { const char *const **l; size_t n; } lists[] = {
		{ &b->o.kv1_mounts, o->nkv1_mounts },
		{ &b->o.kv2_mounts, o->nkv2_mounts },
		{ &b->o.database_mounts, o->ndatabase_mounts },
	};
	size_t i, j, total = 0, nptr = 0;
	const char **ptrs;
	char *p;

	b->o = *o;
	for (i = 0; i < CG_ARRAY_LEN(sp); i++)
		total += *sp[i] != NULL ? strlen(*sp[i]) + 1 : 0;
	for (i = 0; i < CG_ARRAY_LEN(lists); i++) {
		for (j = 0; j < lists[i].n; j++)
			total += strlen((*lists[i].l)[j]) + 1;
		nptr += lists[i].n;
	}
	if ((b->strings = malloc(nptr * sizeof(char *) + total + 1)) == NULL)
		return CG_ERR_NOMEM;
	ptrs = (const char **)(void *)b->strings;
	p = b->strings + nptr * sizeof(char *);
	for (i = 0; i < CG_ARRAY_LEN(sp); i++) {
		if (*sp[i] == NULL)
			continue;
		j = strlen(*sp[i]) + 1;
		memcpy(p, *sp[i], j);
		*sp[i] = p;
		p += j;
	}
	for (i = 0; i < CG_ARRAY_LEN(lists); i++) {
		const char *const *src = *lists[i].l;

		*lists[i].l = ptrs;
		for (j = 0; j < lists[i].n; j++) {
			size_t n = strlen(src[j]) + 1;

			memcpy(p, src[j], n);
			*ptrs++ = p;
			p += n;
		}
	}
	return 0;
}

int
vault_backend_new(struct event_base *base, const struct vault_opts *o,
    struct secret_backend **out, char *err, size_t errlen)
{
	struct ob_client_opts hc;
	struct secret_backend *sb = NULL;
	struct vb *b;
	size_t n;

	*out = NULL;
	if (o->address == NULL || (strncmp(o->address, "https://", 8) != 0 &&
	    strncmp(o->address, "http://", 7) != 0)) {
		cg_errf(err, errlen, "address: an http:// or https:// URL is needed");
		return CG_ERR_FORMAT;
	}
	if (o->key != NULL) {
		/* libcurl reads the client key itself: its mode is checked
		 * here, as for every private key credgate reads. */
		struct cg_file kf;
		int r;

		if ((r = cg_file_read(o->key, CG_FILE_FOLLOW | CG_FILE_NO_WORLD, VB_FILE_MAX, 0,
		    &kf, err, errlen)) != 0)
			return r;
		cg_file_free(&kf);
	}
	if ((b = calloc(1, sizeof(*b))) == NULL)
		return CG_ERR_NOMEM;
	TAILQ_INIT(&b->waiting);
	TAILQ_INIT(&b->active);
	b->base = base;
	b->last_ok = true;
	if (vb_copy_opts(b, o) != 0)
		goto nomem;
	/* No trailing slash: URLs are address + "/v1/...". */
	n = strlen(b->o.address);
	while (n > 0 && b->o.address[n - 1] == '/')
		((char *)(uintptr_t)b->o.address)[--n] = '\0';
	b->auth_mount = b->o.auth_mount != NULL ? b->o.auth_mount : vb_method_names[o->method];
	if (b->o.backoff_ms < 1)
		b->o.backoff_ms = 1;
	if (b->o.backoff_max_ms < b->o.backoff_ms)
		b->o.backoff_max_ms = b->o.backoff_ms;
	if (RAND_bytes(b->version_key, sizeof(b->version_key)) != 1) {
		vb_free(b);
		cg_errf(err, errlen, "no randomness for the version key");
		return CG_ERR_INTERNAL;
	}
	memset(&hc, 0, sizeof(hc));
	hc.ca_file = b->o.ca_file;
	hc.ca_path = b->o.ca_path;
	hc.server_name = b->o.server_name;
	hc.cert = b->o.cert;
	hc.key = b->o.key;
	hc.connect_timeout_ms = o->connect_timeout_ms;
	hc.timeout_ms = o->timeout_ms;
	hc.max_response = VAULT_MAX_RESPONSE;
	if (ob_client_new(base, &hc, &b->http) != 0 ||
	    (b->token_timer = evtimer_new(base, vb_token_event, b)) == NULL ||
	    (sb = malloc(sizeof(*sb))) == NULL)
		goto nomem;
	sb->ops = &vb_ops;
	sb->ctx = b;
	*out = sb;
	return 0;
 nomem:
	vb_free(b);
	cg_errf(err, errlen, "out of memory");
	return CG_ERR_NOMEM;
}
