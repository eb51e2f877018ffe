/*
 * metrics.h: counters for the admin endpoint's /metrics, and their
 * rendering in the Prometheus text exposition format (version 0.0.4).
 *
 * Each worker owns one struct cg_metrics and is the only thread that
 * writes it; the control thread reads every worker's object when /metrics
 * is scraped and sums them.  A recording call is a handful of plain loads
 * and stores: no lock, no atomic read-modify-write, no shared cache line.
 *
 * Memory model.  A counter is a uint64_t that its one writer updates with
 * __atomic_load_n + __atomic_store_n (relaxed), and that the scraper reads
 * with __atomic_load_n (relaxed).  Because there is a single writer, the
 * load-add-store needs no read-modify-write instruction; because both sides
 * use atomic accesses there is no data race under the C11 memory model
 * (a plain increment read by another thread would be one, even where the
 * hardware would not tear it).  On x86-64 and aarch64 a relaxed atomic
 * access of an aligned 64-bit word is an ordinary mov / ldr / str, so the
 * hot path costs what plain increments cost.  The scraper may see the
 * counters of one worker at slightly different moments (relaxed gives no
 * order between different words); each counter on its own is never torn
 * and never goes backwards.
 *
 * This file must not touch connections or configuration: the caller says
 * what happened, metrics.c counts it.
 */
#ifndef CG_METRICS_H
#define CG_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>

#include "common.h"
#include "vault-client/vault.h"

struct evbuffer;

/* What the policy decided for a request (label "decision"). */
enum metrics_decision {
	METRICS_ALLOW = 0,	/* "allow" */
	METRICS_DENY = 1,	/* "deny" */
	METRICS_WOULD_DENY = 2,	/* "would_deny": dry-run mode, let through */
	METRICS_NDECISIONS
};

/*
 * Status classes (label "code_class"): "1xx" .. "5xx" for statuses
 * 100..599; any other status (for example 0 when the client got no
 * response at all) is counted as "none", a series rendered only once it
 * is non-zero.
 */
#define METRICS_NCLASSES	6
#define METRICS_CLASS_NONE	5

/* Why a connection was refused (label "reason"). */
enum metrics_refusal {
	METRICS_REFUSED_GLOBAL_LIMIT = 0, /* "global_limit": credgate.max_connections */
	METRICS_REFUSED_ROUTE_LIMIT = 1,  /* "route_limit": routes.[].max_connections */
	METRICS_REFUSED_CLIENT_LIMIT = 2, /* "client_limit": credgate.max_pending_per_client */
	METRICS_REFUSED_WAIT_TIMEOUT = 3, /* "wait_timeout": waited for a slot too long */
	METRICS_NREFUSALS
};

/* How a protocol's login ended (label "result"): logins_total. */
enum metrics_login {
	METRICS_LOGIN_OK = 0,		/* "ok": logged in upstream anew */
	METRICS_LOGIN_REUSED = 1,	/* "reused": an earlier caller's login, reset */
	METRICS_LOGIN_REFUSED = 2,	/* "refused": credgate refused the caller */
	METRICS_LOGIN_FAILED = 3,	/* "failed": the upstream login failed */
	METRICS_NLOGINS
};

/*
 * Latency histogram bounds, microseconds, for the Prometheus "le" labels
 * 0.0005 .. 10 seconds; a last bucket counts what is above them (+Inf).
 * Buckets are stored per interval and made cumulative when rendered.
 */
#define METRICS_NBOUNDS		14
#define METRICS_NBUCKETS	(METRICS_NBOUNDS + 1)
extern const int64_t metrics_bounds_us[METRICS_NBOUNDS];

#define METRICS_CACHELINE	64

/*
 * One route's counters in one worker.  Made by metrics_route(), owned by
 * the struct cg_metrics and freed only with it, so a pointer the caller
 * keeps stays valid across reloads (a route dropped by a reload keeps its
 * block; its counters keep being rendered, as Prometheus counters should).
 * Fields are written only through the metrics_* functions below.
 */
struct cg_route_metrics {
	uint64_t requests[METRICS_NDECISIONS][METRICS_NCLASSES];
	uint64_t latency_buckets[METRICS_NBUCKETS];	/* per interval, not cumulative */
	uint64_t latency_sum_us;
	uint64_t conns_open;		/* gauge: opened and not yet closed */
	uint64_t conns_total;
	uint64_t refused[METRICS_NREFUSALS];
	uint64_t evicted;		/* closed before a request head, for a new one */
	uint64_t secret_echo;		/* responses the credential was taken out of */
	uint64_t up_idle;		/* gauge: idle upstream connections kept */
	uint64_t up_new;		/* upstream connections opened */
	uint64_t up_reused;		/* ... and taken from the idle ones instead */
	uint64_t logins[METRICS_NLOGINS];
	uint64_t key_cache[2];		/* SCRAM keys: [0] derived, [1] from the cache */
	/* Lookup and rendering only (never on the hot path). */
	struct cg_route_metrics *next;
	char *name;			/* owned; never changes */
} __attribute__((aligned(METRICS_CACHELINE)));

/*
 * One worker's object.  Visible only so that the recorders below can be
 * inline; fields are written through the metrics_* functions and the rest
 * is private to metrics.c.
 */
struct cg_metrics {
	struct {
		uint64_t token_cache_hits;
		uint64_t token_cache_misses;
		uint64_t secret_cache_hits;
		uint64_t secret_cache_misses;
		uint64_t audit_write_failures;
	} __attribute__((aligned(METRICS_CACHELINE))) w;
	/* Private: the route list, guarded by lock (never on the hot path;
	 * the lock sits on its own cache line, away from w). */
	pthread_mutex_t lock;
	struct cg_route_metrics *routes;
};

/* One trust domain's bundle (label "trust_domain": its name). */
struct metrics_trust {
	const char *name;
	uint64_t reloads_ok;		/* re-reads of its file that took */
	uint64_t reloads_failed;	/* ... that did not: the last good bundle stayed */
	int64_t age_ms;			/* since the bundle in force was read */
};

/*
 * Process-wide state, owned and written by the control thread, which is
 * also where metrics_render() runs; so these are plain fields.
 */
struct keyfetch;
struct cg_process_metrics {
	uint64_t config_generation;	/* 1 for the first configuration, +1 per reload */
	bool last_reload_success;	/* the last load (or reload) was applied */
	int64_t last_reload_ms;		/* Unix ms of that load; 0 renders as 0 */
	bool draining;			/* SIGTERM received */
	int64_t start_time_ms;		/* Unix ms the process started */
	const char *version;		/* build_info's "version"; NULL = "unknown" */
	bool vault;			/* the secret store is Vault: vault_st is its own */
	struct vault_stats vault_st;	/* filled just before a render */
	const struct keyfetch *keys;	/* issuers' fetched keys; NULL: none */
	const struct metrics_trust *trust; /* ntrust entries, filled just before a
					   render, in the configuration's order */
	size_t ntrust;
};

/* Returns a new, zeroed object, or NULL when out of memory. */
struct cg_metrics *metrics_new(void);
/* Frees m and every route block it made; NULL-safe.  No thread may use m
 * or a block of it any more. */
void metrics_free(struct cg_metrics *m);

/*
 * The block for route name in m, made (zeroed) on first use.  Any thread
 * may call it (a mutex guards the list against a concurrent scrape); it is
 * meant for start and reload, and the caller keeps the pointer.  name is
 * copied.  Returns NULL only when out of memory.
 */
struct cg_route_metrics *metrics_route(struct cg_metrics *m, const char *route);

/* ------------------------------------------------------------------ */
/* Recording: only the worker that owns the object calls these.        */
/* ------------------------------------------------------------------ */

static inline void
metrics_add_(uint64_t *c, uint64_t n)
{
	__atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
}

static inline void
metrics_set_(uint64_t *c, uint64_t v)
{
	__atomic_store_n(c, v, __ATOMIC_RELAXED);
}

/* Index into latency_buckets for a latency (negative counts as 0). */
static inline unsigned
metrics_bucket_(int64_t latency_us)
{
	unsigned i;

	for (i = 0; i < METRICS_NBOUNDS; i++)
		if (latency_us <= metrics_bounds_us[i])
			break;
	return i;
}

/*
 * One finished request on route r: decision (enum metrics_decision; an
 * out-of-range value counts as deny), the status the client got, and the
 * time from the first byte of the request to the end of the response, in
 * microseconds.  Counts credgate_requests_total and the latency histogram.
 */
static inline void
metrics_request(struct cg_route_metrics *r, int decision, int status, int64_t latency_us)
{
	unsigned d = (unsigned)decision < METRICS_NDECISIONS ? (unsigned)decision : METRICS_DENY;
	unsigned k = status >= 100 && status <= 599 ? (unsigned)(status / 100 - 1) :
	    METRICS_CLASS_NONE;

	if (latency_us < 0)
		latency_us = 0;
	metrics_add_(&r->requests[d][k], 1);
	metrics_add_(&r->latency_buckets[metrics_bucket_(latency_us)], 1);
	metrics_add_(&r->latency_sum_us, (uint64_t)latency_us);
}

/* A client connection accepted on route r / closed.  Every open must be
 * matched by one close on the same object. */
static inline void
metrics_conn_open(struct cg_route_metrics *r)
{
	metrics_add_(&r->conns_open, 1);
	metrics_add_(&r->conns_total, 1);
}

static inline void
metrics_conn_close(struct cg_route_metrics *r)
{
	uint64_t v = __atomic_load_n(&r->conns_open, __ATOMIC_RELAXED);

	if (v > 0)	/* an unmatched close is a caller bug; never wrap */
		metrics_set_(&r->conns_open, v - 1);
}

/* A connection on route r refused (and closed at once) for a limit;
 * reason is an enum metrics_refusal.  Not counted as opened. */
static inline void
metrics_conn_refused(struct cg_route_metrics *r, int reason)
{
	if ((unsigned)reason < METRICS_NREFUSALS)
		metrics_add_(&r->refused[reason], 1);
}

/* A connection on route r that had not sent a request head, closed to
 * make room for a new one at a connection limit. */
static inline void
metrics_conn_evicted(struct cg_route_metrics *r)
{
	metrics_add_(&r->evicted, 1);
}

/* A response head on route r that held the injected credential (or its
 * query parameter), written to the caller without it. */
static inline void
metrics_secret_echo(struct cg_route_metrics *r)
{
	metrics_add_(&r->secret_echo, 1);
}

/* An upstream connection for a request on route r: opened, or taken
 * from the idle ones (reused). */
static inline void
metrics_upstream(struct cg_route_metrics *r, bool reused)
{
	metrics_add_(reused ? &r->up_reused : &r->up_new, 1);
}

/* An idle upstream connection of route r kept (+1) or let go (-1). */
static inline void
metrics_up_idle(struct cg_route_metrics *r, int delta)
{
	uint64_t v = __atomic_load_n(&r->up_idle, __ATOMIC_RELAXED);

	if (delta > 0)
		metrics_set_(&r->up_idle, v + 1);
	else if (v > 0)
		metrics_set_(&r->up_idle, v - 1);
}

/* A login on route r ended as result (enum metrics_login). */
static inline void
metrics_login(struct cg_route_metrics *r, int result)
{
	if ((unsigned)result < METRICS_NLOGINS)
		metrics_add_(&r->logins[result], 1);
}

/* SCRAM keys for a login on route r: from the cache (hit) or derived. */
static inline void
metrics_key_cache(struct cg_route_metrics *r, bool hit)
{
	metrics_add_(&r->key_cache[hit ? 1 : 0], 1);
}

/* Verified-token cache: one lookup that hit or missed. */
static inline void
metrics_token_cache(struct cg_metrics *m, bool hit)
{
	metrics_add_(hit ? &m->w.token_cache_hits : &m->w.token_cache_misses, 1);
}

/* Secret cache: one lookup that hit or missed. */
static inline void
metrics_secret_cache(struct cg_metrics *m, bool hit)
{
	metrics_add_(hit ? &m->w.secret_cache_hits : &m->w.secret_cache_misses, 1);
}

/* Audit events that could not be written. */
static inline void
metrics_audit_failures(struct cg_metrics *m, uint64_t n)
{
	metrics_add_(&m->w.audit_write_failures, n);
}

/*
 * Absolute values, for a cache that keeps its own statistics
 * (token_cache_stats(), secret_cache_stats()), instead of the per-lookup
 * calls above; use one style per counter.  Values are summed over workers:
 * for a cache shared by several workers, set them on one worker's object
 * only.  Call from the owning worker, or from any one thread if the owner
 * never records these counters itself.
 */
void metrics_set_token_cache(struct cg_metrics *m, uint64_t hits, uint64_t misses);
void metrics_set_secret_cache(struct cg_metrics *m, uint64_t hits, uint64_t misses);

/* ------------------------------------------------------------------ */
/* Rendering: on the control thread, when /metrics is scraped.         */
/* ------------------------------------------------------------------ */

/*
 * Appends the text exposition (format 0.0.4) of the sum of nworkers
 * workers' counters and of p (NULL: process metrics left out) to out.
 * Families come in name order, each with # HELP and # TYPE; routes in name
 * order (bytes, as strcmp), each name once however many workers know it;
 * label values escaped (\\, \", \n).  Every series of every known route
 * is rendered, zeros included, except code_class="none" (only once
 * non-zero).  workers[] entries may be NULL (skipped).
 * Returns 0, or CG_ERR_NOMEM (out then holds a partial text the caller
 * must drop).
 */
int metrics_render(struct evbuffer *out, struct cg_metrics *const *workers, size_t nworkers,
    const struct cg_process_metrics *p) CG_WUR;

#endif /* CG_METRICS_H */
