/*
 * vault.h: where the legacy credential comes from.
 *
 * A secret backend maps a secret path to named fields, a version and,
 * optionally, a lease.  Every backend implements the same asynchronous
 * interface (fetch; renew and revoke a lease; report its status).  One
 * secret cache per process sits in front of it, owned by the control
 * thread: expiry from its TTL and the lease, refresh ahead, single flight,
 * serving stale within a bound, a short negative cache, lease renewal and
 * revocation.  Each worker thread reads it through its own secret view,
 * without a lock on a hit.  This ships the `file` backend; the Vault HTTP
 * backend implements the same ops later.
 *
 * Secret bytes live only in secure memory (common.h secmem_*).  There is no
 * function that formats a secret's value: logs and audit name path and
 * version only.  Nothing here includes policy/, injectors/ or proxy/.
 */
#ifndef CG_VAULT_H
#define CG_VAULT_H

#include <sys/types.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"

struct event_base;

/* ------------------------------------------------------------------ */
/* Secrets                                                             */
/* ------------------------------------------------------------------ */
struct secret;	/* opaque, immutable, reference-counted, in secure memory */

/*
 * The lease a secret was issued with (Vault's lease_id, lease_duration and
 * renewable).  A lease id is no credential by itself, but it is kept with
 * the secret in secure memory all the same and never logged.
 */
struct secret_lease {
	const char *id;		/* "" or NULL: nothing to renew or revoke */
	int64_t duration_ms;	/* as granted; 0: the lease sets no bound */
	bool renewable;
};

/*
 * Builds a secret (for backends and tests): copies path, version and each
 * field into secure memory.  Returns 0 or CG_ERR_NOMEM.  refcount starts
 * at 1.
 */
int secret_new(const char *path, const char *version, size_t nfields,
    const char *const *names, const char *const *values, const size_t *value_lens,
    struct secret **out) CG_WUR;
/* The same, with the lease it was issued with (NULL: none). */
int secret_new_leased(const char *path, const char *version,
    const struct secret_lease *lease, size_t nfields, const char *const *names,
    const char *const *values, const size_t *value_lens, struct secret **out) CG_WUR;
/* Takes a reference / drops one.  Safe from any thread (atomic count);
 * the last unref wipes and frees, on whichever thread it happens. */
struct secret *secret_ref(struct secret *s);
void secret_unref(struct secret *s);	/* NULL-safe; wipes at zero */

const char *secret_path(const struct secret *s);
const char *secret_version(const struct secret *s);	/* never NULL */
size_t secret_nfields(const struct secret *s);
const char *secret_field_name(const struct secret *s, size_t i);
/* Borrowed value of field name (NUL-terminated, len in *len); NULL if absent. */
const char *secret_field(const struct secret *s, const char *name, size_t *len);
/* The lease s was issued with; NULL when it has none (no id and no
 * duration).  Borrowed from s. */
const struct secret_lease *secret_lease(const struct secret *s);
/*
 * True when s was handed out stale: the cache served it past its expiry
 * because refreshing it failed (secrets.max_stale).  A stale secret is a
 * copy the cache made for that purpose; the fresh one never changes.
 */
bool secret_stale(const struct secret *s);

/* ------------------------------------------------------------------ */
/* Backends                                                            */
/* ------------------------------------------------------------------ */

/*
 * Called exactly once per accepted fetch, never from inside the call that
 * started it.  On success err is 0 and s is a reference the callee lends
 * for the duration of the call (take secret_ref() to keep it); its lease,
 * if any, is secret_lease(s).  On failure s is NULL and err a CG_ERR_*
 * (CG_ERR_NOTFOUND: the store says there is no such secret; anything else:
 * the store could not be asked); reason is a short static text without any
 * secret byte.
 */
typedef void (*secret_cb)(int err, struct secret *s, const char *reason, void *arg);
/* A renewal's answer: err 0 and the duration granted (which may be
 * shorter than asked), or a CG_ERR_* (CG_ERR_NOTFOUND or CG_ERR_EXPIRED:
 * the lease is gone) with a short static reason. */
typedef void (*secret_renew_cb)(int err, int64_t duration_ms, const char *reason, void *arg);
/* A revocation's answer: err 0 or a CG_ERR_* with a short static reason. */
typedef void (*secret_done_cb)(int err, const char *reason, void *arg);

/* What a backend says about itself (for readiness). */
enum secret_backend_state {
	SECRET_BACKEND_OK = 0,
	SECRET_BACKEND_DEGRADED,	/* answers, from something old or partial */
	SECRET_BACKEND_DOWN,		/* cannot answer */
};

/*
 * A backend.  Every callback comes from the event loop of the base the
 * backend was made on, exactly once per call that returned 0, and never
 * from inside that call.
 */
struct secret_backend_ops {
	const char *name;	/* "file", "vault" */
	/* Starts a fetch; 0 when cb will follow, else CG_ERR_* and no cb. */
	int (*fetch)(void *ctx, const char *path, secret_cb cb, void *arg);
	/* True when the backend's source has changed since the last call
	 * (the cache then drops its entries and fetches them again).  May be
	 * NULL. */
	bool (*changed)(void *ctx);
	/* Asks to extend lease_id by increment_ms; as fetch.  NULL when the
	 * backend has no renewable leases. */
	int (*renew)(void *ctx, const char *lease_id, int64_t increment_ms,
	    secret_renew_cb cb, void *arg);
	/* Revokes lease_id; as fetch.  NULL when the backend has no leases. */
	int (*revoke)(void *ctx, const char *lease_id, secret_done_cb cb, void *arg);
	/* Its state now, with a short static reason (NULL when OK), from what
	 * it already knows: it must not block or do I/O.  NULL: always OK. */
	enum secret_backend_state (*status)(void *ctx, const char **reason);
	/* Ends the backend: pending fetches, renewals and revocations are
	 * dropped without their callbacks. */
	void (*free)(void *ctx);
};

struct secret_backend {
	const struct secret_backend_ops *ops;
	void *ctx;
};
/* NULL-safe.  Calls ops->free(ctx) (which drops pending calls without
 * calling their callbacks), then free(b): a backend's constructor allocates
 * struct secret_backend with malloc(). */
void secret_backend_free(struct secret_backend *b);
/* ops->status, or OK when the backend has none; *reason gets a static
 * text, never NULL ("ok" when OK). */
enum secret_backend_state secret_backend_status(const struct secret_backend *b,
    const char **reason);
/* "ok", "degraded", "down". */
const char *secret_backend_state_name(enum secret_backend_state st);

/*
 * The file backend: a JSON object of named secrets, each an object of
 * string fields plus an optional "version" string:
 *
 *   { "mainframe/batch": { "username": "svc", "password": "...",
 *                          "version": "3" } }
 *
 * Refused (CG_ERR_PERM) if the file is group- or world-readable or
 * writable, not a regular file, or owned by anyone but root and the user
 * credgate runs as (see file_backend_set_owner()).  The file is read into
 * secure memory and parsed there; it is re-read when its inode, size or
 * mtime change (checked at most once per second, when a fetch or
 * changed() asks).  A secret without "version" gets the file's mtime as its
 * version; file secrets have no lease.  A changed file that cannot be
 * loaded, or a file gone, keeps the last good secrets: status() then says
 * DEGRADED until a good file is loaded, from what the last check saw (it
 * never reads the file itself).  err receives a one-line reason (file name
 * and problem, never a value).
 */
int file_backend_new(struct event_base *base, const char *path,
    struct secret_backend **out, char *err, size_t errlen) CG_WUR;
/* Synchronous check: 0 when file holds a secret at path.  Reads the file
 * at every call: not for anything a client can repeat at will. */
int file_backend_has(const char *file, const char *path, char *err, size_t errlen) CG_WUR;
/* Synchronous check for `credgate -t`: loads and validates, keeps nothing. */
int file_backend_check(const char *path, char *err, size_t errlen) CG_WUR;
/*
 * Who besides root may own the secrets file: the user credgate runs as
 * after its privilege drop.  Any other owner could read or rewrite the
 * secrets whatever the file's mode says.  Process-wide, read at each load
 * of the file; until it is set, the effective uid at the time of the load.
 */
void file_backend_set_owner(uid_t uid);

/*
 * What a secrets file names, without a single value: its secret paths and
 * the field names of each, for `credgate -t` to check that every route's
 * secret and the fields its injection reads are there.
 */
struct file_backend_names;
/*
 * Loads and checks file as the backend does (owner: root or owner, not
 * the process-wide setting) and keeps the names only.  Returns 0 and *out
 * (free with file_backend_names_free()), or CG_ERR_* with a reason in err
 * and *out NULL.
 */
int file_backend_names_load(const char *file, uid_t owner, struct file_backend_names **out,
    char *err, size_t errlen) CG_WUR;
/* True when n holds a secret at path and, unless field is NULL, that
 * secret has the field ("version" is not a field). */
bool file_backend_names_has(const struct file_backend_names *n, const char *path,
    const char *field);
void file_backend_names_free(struct file_backend_names *n);	/* NULL-safe */
/*
 * How often (at most) the file backend stats its file for changes, in
 * milliseconds; 1000 unless set.  Process-wide, read when a check is due;
 * for tests.
 */
void file_backend_set_check_interval_ms(int64_t ms);

/* ------------------------------------------------------------------ */
/* The Vault (and OpenBao) backend                                     */
/* ------------------------------------------------------------------ */

enum vault_auth_method {
	VAULT_AUTH_TOKEN,	/* a token file, renewed with renew-self */
	VAULT_AUTH_APPROLE,	/* role_id and secret_id files */
	VAULT_AUTH_KUBERNETES,	/* a service-account token file and a role */
	VAULT_AUTH_JWT,		/* a JWT file and a role */
	VAULT_AUTH_CERT,	/* the TLS client certificate (and a role name) */
};

/* Why a request to Vault failed: an audit reason and a metric label each. */
enum vault_reason {
	VAULT_R_NOT_FOUND,	/* "secret_not_found": 404, or a deleted version */
	VAULT_R_DENIED,		/* "vault_permission_denied": 403 after a re-login */
	VAULT_R_LOGIN,		/* "vault_login_failed": the auth method refused */
	VAULT_R_SEALED,		/* "vault_sealed": 503 and sealed */
	VAULT_R_UNAVAILABLE,	/* "vault_unavailable": no connection, or 503 */
	VAULT_R_TIMEOUT,	/* "vault_timeout" */
	VAULT_R_RATE_LIMITED,	/* "vault_rate_limited": 429 */
	VAULT_R_SERVER_ERROR,	/* "vault_server_error": other 5xx */
	VAULT_R_BAD_REQUEST,	/* "vault_bad_request": another 4xx */
	VAULT_R_BAD_RESPONSE,	/* "vault_bad_response": not what the API says */
	VAULT_R_NO_MOUNT,	/* "vault_path_unknown": the path is under no mount */
	VAULT_R_INTERNAL,	/* "vault_internal": out of memory and the like */
	VAULT_R_COUNT
};
const char *vault_reason_name(enum vault_reason r);

struct vault_opts {
	const char *address;		/* "https://vault.example:8200" */
	const char *namespace_;		/* X-Vault-Namespace; NULL: none */
	const char *ca_file, *ca_path;	/* NULL: the system's CAs */
	const char *server_name;	/* the name Vault's certificate carries */
	const char *cert, *key;		/* client certificate (cert auth, or a
					   listener that asks for one) */
	int64_t connect_timeout_ms, timeout_ms;
	int retries;			/* after the first attempt */
	int64_t backoff_ms, backoff_max_ms;
	enum vault_auth_method method;
	const char *auth_mount;		/* NULL: the method's name */
	const char *role;		/* kubernetes, jwt; cert: the role name */
	const char *token_file;		/* token */
	const char *role_id_file, *secret_id_file;	/* approle */
	const char *jwt_file;		/* kubernetes, jwt */
	const char *const *kv1_mounts;
	size_t nkv1_mounts;
	const char *const *kv2_mounts;
	size_t nkv2_mounts;
	const char *const *database_mounts;
	size_t ndatabase_mounts;
};

/* What a secret path reads, by the kind of its mount. */
enum vault_kind {
	VAULT_KV1,		/* <mount>/<path>: data is the secret */
	VAULT_KV2,		/* <mount>/data/<path>: data.data, data.metadata */
	VAULT_DB_CREDS,		/* <mount>/creds/<role>: a lease */
	VAULT_DB_STATIC,	/* <mount>/static-creds/<role>: ttl to rotation */
};

/*
 * Where a secret path of credgate.conf is read: the API path (without
 * "/v1/") for the longest mount it is under, and how to read it.  Paths
 * are "<kv1 mount>/<path>", "<kv2 mount>/<path>" (the latest version) or
 * "<kv2 mount>/<path>?version=<n>", "<database mount>/creds/<role>" and
 * "<database mount>/static-creds/<role>".  Returns 0, CG_ERR_NOTFOUND (no
 * mount) or CG_ERR_FORMAT (a path Vault would not take), with a reason.
 */
int vault_path_resolve(const struct vault_opts *o, const char *path, int *kind /* enum vault_kind */,
    char *api, size_t apilen, char *err, size_t errlen) CG_WUR;

/*
 * The Vault backend on base (the control thread's): logs in with the
 * configured method when first asked, keeps its token alive (renew-self,
 * or a new login ahead of the end of the token's life), reads secrets,
 * renews and revokes leases.  opts is copied.  Nothing blocks: every
 * request goes through libcurl's multi interface on base.  0 or CG_ERR_*
 * with a one-line reason in err.
 */
int vault_backend_new(struct event_base *base, const struct vault_opts *opts,
    struct secret_backend **out, char *err, size_t errlen) CG_WUR;

/* What the Vault backend did, for metrics and readiness. */
struct vault_stats {
	uint64_t logins, token_renewals, reads, lease_renewals, lease_revocations;
	uint64_t requests;			/* every HTTP request, retries too */
	uint64_t retries;
	uint64_t failures[VAULT_R_COUNT];	/* by reason */
	int64_t token_ttl_ms;		/* remaining; -1 none yet; 0 no expiry */
	bool reachable;			/* the last request got an answer */
};
/* False (and *st cleared) when b is not a Vault backend. */
bool vault_backend_stats(const struct secret_backend *b, struct vault_stats *st);

/* ------------------------------------------------------------------ */
/* The secret cache: one per process, on the control thread           */
/* ------------------------------------------------------------------ */
struct secret_cache;
struct secret_wait;	/* a pending request; cancel it if the caller goes away */

/*
 * How long what the cache fetched is served.  An entry expires at the
 * earlier of ttl_ms after its fetch and two thirds of its lease's duration
 * after the lease was granted or last renewed.  A use in the last quarter
 * of an entry's life starts a refresh in the background (the use is served
 * from the cache).  A renewable lease is renewed at three fifths of its
 * duration instead, ahead of that expiry.  When a refresh fails, the entry
 * is served past its expiry for up to max_stale_ms more (never past the
 * end of its lease), marked stale; 0 turns that off, and so does a ttl_ms
 * of 0 (no cache).  A store that says the secret is gone (CG_ERR_NOTFOUND)
 * ends it at once.  A failed fetch is remembered for negative_ttl_ms: asks
 * within it get the same error without the backend being asked (0:
 * failures are not remembered), and a failing refresh is retried no more
 * often.  A change of the backend's source (ops->changed) forgets all.
 */
struct secret_cache_opts {
	int64_t ttl_ms;
	int64_t max_stale_ms;
	int64_t negative_ttl_ms;
};

/*
 * A cache on base (the control thread's) in front of backend, which it
 * takes over even on failure.  secret_cache_new() takes ttl_ms only
 * (max_stale_ms and negative_ttl_ms 0).  Returns 0, CG_ERR_LIMIT for a
 * negative time, CG_ERR_INTERNAL for a backend without fetch, or
 * CG_ERR_NOMEM.
 */
int secret_cache_new(struct event_base *base, struct secret_backend *backend,
    int64_t ttl_ms, struct secret_cache **out) CG_WUR;
int secret_cache_new_opts(struct event_base *base, struct secret_backend *backend,
    const struct secret_cache_opts *opts, struct secret_cache **out) CG_WUR;
/* New times; entries cached now get them at once.  0 or
 * CG_ERR_LIMIT (nothing changed). */
int secret_cache_configure(struct secret_cache *c, const struct secret_cache_opts *opts) CG_WUR;
/*
 * Asks the backend every interval_ms whether its source changed (ops->
 * changed), so that a change reaches every view without a request asking
 * first; 0 stops.  Returns 0 or CG_ERR_NOMEM.
 */
int secret_cache_watch(struct secret_cache *c, int64_t interval_ms) CG_WUR;
/*
 * Ends the cache: revokes the leases it holds (ops permitting; answers
 * are not waited for: see secret_cache_revoke_all()), cancels all waits
 * without their callbacks and frees the backend.  NULL-safe.  Every view
 * must have been freed before (abort() otherwise).  Callable from one of
 * the cache's own callbacks.
 */
void secret_cache_free(struct secret_cache *c);

/*
 * On the control thread.  Returns 0 and a new reference in *out when a
 * servable entry is cached (no callback); a stale one (secret_stale()) is
 * servable while a refresh of it fails, within max_stale.  Returns the
 * remembered CG_ERR_* of a fetch that failed within negative_ttl, without
 * a callback.  Otherwise returns CG_ERR_AGAIN, sets *wait, and cb follows
 * once (with a lent reference as in secret_cb, maybe a stale one) unless
 * the wait is cancelled first.  However many requests wait for one path,
 * the backend sees one fetch (single flight).  Any other return is an
 * immediate error.  Workers use a secret_view instead.
 */
int secret_cache_get(struct secret_cache *c, const char *path, struct secret **out,
    secret_cb cb, void *arg, struct secret_wait **wait) CG_WUR;
/* Cancels a wait of the cache or of a view; NULL-safe; no cb after. */
void secret_cache_cancel(struct secret_wait *w);

/*
 * Readiness of path, on the control thread, without waiting and without
 * asking the backend synchronously: 0 when the last fetch of path
 * succeeded (or a stale entry is being served), CG_ERR_AGAIN when it was
 * never fetched, else the CG_ERR_* of the failed last fetch with its
 * static reason in *reason.  When that answer may be out of date (never
 * fetched, fetched before the source changed, or a failure older than
 * negative_ttl) a fetch starts in the background.
 */
int secret_cache_check(struct secret_cache *c, const char *path, const char **reason) CG_WUR;
/* The backend's status (secret_backend_status()). */
enum secret_backend_state secret_cache_status(const struct secret_cache *c,
    const char **reason);

/*
 * At shutdown, on the control thread: drops every entry, revoking each
 * lease (ops permitting).  Returns how many revocations are in flight;
 * run the event loop while secret_cache_busy() is true (with a deadline)
 * to let them finish.
 */
size_t secret_cache_revoke_all(struct secret_cache *c);
bool secret_cache_busy(const struct secret_cache *c);

/* For tests: the clock the cache and its views read (monotonic ms),
 * instead of cg_mono_ms().  Set it before any view is made.  With a
 * clock set, no timer runs lease work: call secret_cache_tick() after
 * moving the clock. */
void secret_cache_set_clock(struct secret_cache *c, int64_t (*now)(void *), void *arg);
/* Renews and drops leased entries that are due now. */
void secret_cache_tick(struct secret_cache *c);

struct secret_cache_stats {
	uint64_t hits, misses, fetches, errors;
	uint64_t stale;			/* answers with a stale entry */
	uint64_t negative;		/* answers with a remembered failure */
	uint64_t refreshes;		/* fetches started ahead of expiry */
	uint64_t renewals, renew_failures;
	uint64_t revocations, revoke_failures;
	uint64_t view_requests;		/* GETs from views */
};
void secret_cache_stats(const struct secret_cache *c, struct secret_cache_stats *st);
/* The backend the cache fronts (for vault_backend_stats()). */
const struct secret_backend *secret_cache_backend(const struct secret_cache *c);

/* ------------------------------------------------------------------ */
/* Secret views: one per worker thread                                 */
/* ------------------------------------------------------------------ */
struct secret_view;

/*
 * A worker's view of cache c, served on the worker's base.  It keeps, per
 * path, a reference to the cache's secret and when to stop serving it; the
 * cache fills it through the view's mailbox (answers, and every change it
 * makes: new values, renewals, drops), which base listens on.  Make it on
 * the control thread, before base runs.  0, or CG_ERR_NOMEM / CG_ERR_IO.
 */
int secret_view_new(struct secret_cache *c, struct event_base *base,
    struct secret_view **out) CG_WUR;
/*
 * Ends the view: waits are cancelled without callbacks, references
 * dropped.  From the view's thread (its callbacks included), or from any
 * thread once the view's base no longer runs.  NULL-safe.
 */
void secret_view_free(struct secret_view *v);
/*
 * On the view's thread, the same contract as secret_cache_get() except
 * that errors always come through cb: returns 0 and a new reference in *out
 * when the view holds an entry still served (a lookup and a reference: no
 * lock, no system call; an entry in its last part of life also asks the
 * cache to refresh it, once).  Otherwise returns CG_ERR_AGAIN, sets
 * *wait, asks the cache (one request per path however many wait) and cb
 * follows on the view's base, once, unless the wait is cancelled first.
 * Any other return (CG_ERR_NOMEM, CG_ERR_INTERNAL) is an immediate error.
 */
int secret_view_get(struct secret_view *v, const char *path, struct secret **out,
    secret_cb cb, void *arg, struct secret_wait **wait) CG_WUR;
void secret_view_cancel(struct secret_wait *w);	/* NULL-safe; no cb after */

/*
 * A session's own secret: the key "<path>#session=<id>" names path to the
 * backend but an entry of its own to the cache and the views, fetched for
 * that session alone (a dynamic database credential of its own), renewed
 * for as long as its lease allows whatever cache_ttl says, and never
 * handed to another session.  secret_session_key() writes the key (0, or
 * CG_ERR_LIMIT when it does not fit); secret_view_release() ends it when
 * the session ends: the view forgets it and the cache revokes its lease
 * (later, if the fetch is still in flight).  From the view's thread.
 */
#define SECRET_SESSION_MARK	"#session="
int secret_session_key(char *out, size_t outlen, const char *path, unsigned worker,
    uint64_t id) CG_WUR;
void secret_view_release(struct secret_view *v, const char *key);

#endif /* CG_VAULT_H */
