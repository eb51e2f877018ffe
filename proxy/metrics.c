/*
 * metrics.c: the per-worker counter objects, their route blocks, and the
 * Prometheus text rendering of the sum of all workers.
 *
 * Owns struct cg_metrics and struct cg_route_metrics.  Knows nothing of
 * connections, configuration or sockets; the recorders live inline in
 * metrics.h and the memory-model argument is written there.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "policy/keyfetch.h"
#include "proxy/metrics.h"

const int64_t metrics_bounds_us[METRICS_NBOUNDS] = {
	500, 1000, 2500, 5000, 10000, 25000, 50000,
	100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000,
};

/* The "le" label of each bucket, the same bounds in seconds. */
static const char *const bucket_le[METRICS_NBUCKETS] = {
	"0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05",
	"0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf",
};

static const char *const decision_name[METRICS_NDECISIONS] = {
	"allow", "deny", "would_deny",
};

static const char *const class_name[METRICS_NCLASSES] = {
	"1xx", "2xx", "3xx", "4xx", "5xx", "none",
};

static const char *const login_name[METRICS_NLOGINS] = {
	"ok", "reused", "refused", "failed",
};

/* In label order, which is also the enum's. */
static const char *const refusal_name[METRICS_NREFUSALS] = {
	"global_limit", "route_limit", "client_limit", "wait_timeout",
};

struct cg_metrics *
metrics_new(void)
{
	struct cg_metrics *m;

	if (posix_memalign((void **)&m, METRICS_CACHELINE, sizeof(*m)) != 0)
		return NULL;
	memset(m, 0, sizeof(*m));
	if (pthread_mutex_init(&m->lock, NULL) != 0) {
		free(m);
		return NULL;
	}
	return m;
}

void
metrics_free(struct cg_metrics *m)
{
	struct cg_route_metrics *r, *next;

	if (m == NULL)
		return;
	for (r = m->routes; r != NULL; r = next) {
		next = r->next;
		free(r->name);
		free(r);
	}
	pthread_mutex_destroy(&m->lock);
	free(m);
}

struct cg_route_metrics *
metrics_route(struct cg_metrics *m, const char *route)
{
	struct cg_route_metrics *r;

	pthread_mutex_lock(&m->lock);
	for (r = m->routes; r != NULL; r = r->next)
		if (strcmp(r->name, route) == 0)
			goto out;
	if (posix_memalign((void **)&r, METRICS_CACHELINE, sizeof(*r)) != 0) {
		r = NULL;
		goto out;
	}
	memset(r, 0, sizeof(*r));
	if ((r->name = strdup(route)) == NULL) {
		free(r);
		r = NULL;
		goto out;
	}
	/* A scrape walks the list only under the lock, so plain stores do. */
	r->next = m->routes;
	m->routes = r;
 out:
	pthread_mutex_unlock(&m->lock);
	return r;
}

void
metrics_set_token_cache(struct cg_metrics *m, uint64_t hits, uint64_t misses)
{
	metrics_set_(&m->w.token_cache_hits, hits);
	metrics_set_(&m->w.token_cache_misses, misses);
}

void
metrics_set_secret_cache(struct cg_metrics *m, uint64_t hits, uint64_t misses)
{
	metrics_set_(&m->w.secret_cache_hits, hits);
	metrics_set_(&m->w.secret_cache_misses, misses);
}

/* ------------------------------------------------------------------ */
/* Summing                                                             */
/* ------------------------------------------------------------------ */

static uint64_t
rd(const uint64_t *c)
{
	return __atomic_load_n(c, __ATOMIC_RELAXED);
}

/* One route's counters summed over the workers. */
struct route_sum {
	const char *name;	/* borrowed from a block, which outlives the render */
	uint64_t requests[METRICS_NDECISIONS][METRICS_NCLASSES];
	uint64_t buckets[METRICS_NBUCKETS];
	uint64_t sum_us;
	uint64_t open;
	uint64_t total;
	uint64_t refused[METRICS_NREFUSALS];
	uint64_t evicted;
	uint64_t secret_echo;
	uint64_t up_idle, up_new, up_reused;
	uint64_t logins[METRICS_NLOGINS];
	uint64_t key_cache[2];
};

static void
route_sum_add(struct route_sum *s, const struct cg_route_metrics *r)
{
	size_t i, j;

	for (i = 0; i < METRICS_NDECISIONS; i++)
		for (j = 0; j < METRICS_NCLASSES; j++)
			s->requests[i][j] += rd(&r->requests[i][j]);
	for (i = 0; i < METRICS_NBUCKETS; i++)
		s->buckets[i] += rd(&r->latency_buckets[i]);
	s->sum_us += rd(&r->latency_sum_us);
	s->open += rd(&r->conns_open);
	s->total += rd(&r->conns_total);
	for (i = 0; i < METRICS_NREFUSALS; i++)
		s->refused[i] += rd(&r->refused[i]);
	s->evicted += rd(&r->evicted);
	s->secret_echo += rd(&r->secret_echo);
	s->up_idle += rd(&r->up_idle);
	s->up_new += rd(&r->up_new);
	s->up_reused += rd(&r->up_reused);
	for (i = 0; i < METRICS_NLOGINS; i++)
		s->logins[i] += rd(&r->logins[i]);
	s->key_cache[0] += rd(&r->key_cache[0]);
	s->key_cache[1] += rd(&r->key_cache[1]);
}

/* Whether route s has had a login: the login families list only those. */
static bool
route_logins(const struct route_sum *s)
{
	size_t i;

	for (i = 0; i < METRICS_NLOGINS; i++)
		if (s->logins[i] != 0)
			return true;
	return s->key_cache[0] != 0 || s->key_cache[1] != 0;
}

static int
block_cmp(const void *a, const void *b)
{
	const struct cg_route_metrics *x = *(const struct cg_route_metrics *const *)a;
	const struct cg_route_metrics *y = *(const struct cg_route_metrics *const *)b;

	return strcmp(x->name, y->name);
}

/*
 * Sums the route blocks of every worker by name, in name order.  Returns 0
 * and *out (*nout entries, to free), or CG_ERR_NOMEM.
 */
static int
sum_routes(struct cg_metrics *const *workers, size_t nworkers, struct route_sum **out,
    size_t *nout)
{
	struct cg_route_metrics **blocks = NULL, **grown, *r;
	struct route_sum *sums = NULL;
	size_t nblocks = 0, cap = 0, nsums = 0, i;
	int ret = CG_ERR_NOMEM;

	*out = NULL;
	*nout = 0;
	for (i = 0; i < nworkers; i++) {
		if (workers[i] == NULL)
			continue;
		pthread_mutex_lock(&workers[i]->lock);
		for (r = workers[i]->routes; r != NULL; r = r->next) {
			if (nblocks == cap) {
				cap = cap ? cap * 2 : 16;
				if ((grown = realloc(blocks, cap * sizeof(*blocks))) == NULL) {
					pthread_mutex_unlock(&workers[i]->lock);
					goto out;
				}
				blocks = grown;
			}
			blocks[nblocks++] = r;
		}
		pthread_mutex_unlock(&workers[i]->lock);
	}
	/* Blocks are never freed and their names never change: no lock now. */
	if (nblocks > 0) {
		qsort(blocks, nblocks, sizeof(*blocks), block_cmp);
		if ((sums = calloc(nblocks, sizeof(*sums))) == NULL)
			goto out;
	}
	for (i = 0; i < nblocks; i++) {
		if (nsums == 0 || strcmp(sums[nsums - 1].name, blocks[i]->name) != 0)
			sums[nsums++].name = blocks[i]->name;
		route_sum_add(&sums[nsums - 1], blocks[i]);
	}
	*out = sums;
	*nout = nsums;
	sums = NULL;
	ret = 0;
 out:
	free(sums);
	free(blocks);
	return ret;
}

/* ------------------------------------------------------------------ */
/* Text                                                                */
/* ------------------------------------------------------------------ */

struct writer {
	struct evbuffer *out;
	bool failed;
};

static void
put(struct writer *w, const char *s)
{
	if (!w->failed && evbuffer_add(w->out, s, strlen(s)) != 0)
		w->failed = true;
}

static void put_f(struct writer *w, const char *fmt, ...) CG_PRINTF(2, 3);

static void
put_f(struct writer *w, const char *fmt, ...)
{
	va_list ap;

	if (w->failed)
		return;
	va_start(ap, fmt);
	if (evbuffer_add_vprintf(w->out, fmt, ap) < 0)
		w->failed = true;
	va_end(ap);
}

/* A label value, quoted, with \, " and newline escaped as the format says. */
static void
put_label(struct writer *w, const char *name, const char *value, bool first)
{
	const char *p, *run;

	put_f(w, "%s%s=\"", first ? "" : ",", name);
	for (run = p = value; *p != '\0'; p++) {
		const char *esc = *p == '\\' ? "\\\\" : *p == '"' ? "\\\"" :
		    *p == '\n' ? "\\n" : NULL;

		if (esc == NULL)
			continue;
		if (!w->failed && p > run && evbuffer_add(w->out, run, (size_t)(p - run)) != 0)
			w->failed = true;
		put(w, esc);
		run = p + 1;
	}
	put(w, run);
	put(w, "\"");
}

/*
 * A fixed-point value with `digits` decimals (microseconds: 6,
 * milliseconds: 3), as the shortest exact decimal: 1500 us -> "0.0015",
 * 2000000 us -> "2".
 */
static void
put_fixed(struct writer *w, uint64_t v, unsigned digits)
{
	uint64_t scale = 1, frac;
	char fs[24];
	unsigned i, n;

	for (i = 0; i < digits; i++)
		scale *= 10;
	frac = v % scale;
	if (frac == 0) {
		put_f(w, "%" PRIu64, v / scale);
		return;
	}
	n = digits;
	while (frac % 10 == 0) {
		frac /= 10;
		n--;
	}
	snprintf(fs, sizeof(fs), "%0*" PRIu64, (int)n, frac);
	put_f(w, "%" PRIu64 ".%s", v / scale, fs);
}

static void
family(struct writer *w, const char *name, const char *type, const char *help)
{
	put_f(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A family with one unlabelled sample. */
static void
scalar(struct writer *w, const char *name, const char *type, const char *help, uint64_t v)
{
	family(w, name, type, help);
	put_f(w, "%s %" PRIu64 "\n", name, v);
}

static void
route_sample(struct writer *w, const char *name, const struct route_sum *s, uint64_t v)
{
	put_f(w, "%s{", name);
	put_label(w, "route", s->name, true);
	put_f(w, "} %" PRIu64 "\n", v);
}

/* What the Vault backend did (the control thread's own counters). */
static void
render_vault(struct writer *w, const struct vault_stats *v)
{
	int i;

	scalar(w, "credgate_vault_up", "gauge",
	    "1 when the last request to Vault got an answer.", v->reachable ? 1 : 0);
	family(w, "credgate_vault_token_ttl_seconds", "gauge",
	    "Remaining lifetime of credgate's Vault token; 0: no expiry; -1: no token.");
	put_f(w, "credgate_vault_token_ttl_seconds %lld\n",
	    v->token_ttl_ms < 0 ? -1LL : (long long)((v->token_ttl_ms + 999) / 1000));
	scalar(w, "credgate_vault_logins_total", "counter",
	    "Logins to Vault that gave a token.", v->logins);
	scalar(w, "credgate_vault_token_renewals_total", "counter",
	    "Renewals of credgate's own Vault token.", v->token_renewals);
	scalar(w, "credgate_vault_reads_total", "counter",
	    "Secrets read from Vault.", v->reads);
	scalar(w, "credgate_vault_lease_renewals_total", "counter",
	    "Leases of secrets renewed.", v->lease_renewals);
	scalar(w, "credgate_vault_lease_revocations_total", "counter",
	    "Leases of secrets revoked.", v->lease_revocations);
	scalar(w, "credgate_vault_requests_total", "counter",
	    "HTTP requests sent to Vault, retries included.", v->requests);
	scalar(w, "credgate_vault_retries_total", "counter",
	    "Requests to Vault sent again after a failure that may pass.", v->retries);
	family(w, "credgate_vault_failures_total", "counter",
	    "Failed logins, reads, renewals and revocations, by reason.");
	for (i = 0; i < VAULT_R_COUNT; i++) {
		put_f(w, "credgate_vault_failures_total{");
		put_label(w, "reason", vault_reason_name((enum vault_reason)i), true);
		put_f(w, "} %" PRIu64 "\n", v->failures[i]);
	}
}

/* One sample per key source, labelled by its (first) issuer's name. */
static void
key_sample(struct writer *w, const char *name, const char *issuer, const char *label,
    const char *lvalue, const char *value)
{
	put_f(w, "%s{", name);
	put_label(w, "issuer", issuer, true);
	if (label != NULL)
		put_label(w, label, lvalue, false);
	put_f(w, "} %s\n", value);
}

/* What the key fetcher did, per source (the control thread's counters). */
static void
render_keys(struct writer *w, const struct keyfetch *kf)
{
	struct keyfetch_stats st;
	char v[32];
	size_t i;

	if (keyfetch_count(kf) == 0)
		return;
	family(w, "credgate_issuer_keys", "gauge",
	    "Keys an issuer's fetched key set holds now; 0: none (never fetched, or "
	    "dropped past max_key_age).");
	for (i = 0; keyfetch_stats(kf, i, &st); i++) {
		snprintf(v, sizeof(v), "%zu", st.loaded ? st.nkeys : 0);
		key_sample(w, "credgate_issuer_keys", st.issuer, NULL, NULL, v);
	}
	family(w, "credgate_issuer_keys_age_seconds", "gauge",
	    "Time since an issuer's keys were last fetched successfully; -1: never.");
	for (i = 0; keyfetch_stats(kf, i, &st); i++) {
		snprintf(v, sizeof(v), "%lld", st.age_ms < 0 ? -1LL : (long long)(st.age_ms / 1000));
		key_sample(w, "credgate_issuer_keys_age_seconds", st.issuer, NULL, NULL, v);
	}
	family(w, "credgate_issuer_key_fetches_total", "counter",
	    "Fetches of an issuer's key set (discovery included), by result.");
	for (i = 0; keyfetch_stats(kf, i, &st); i++) {
		snprintf(v, sizeof(v), "%" PRIu64, st.fetches_ok);
		key_sample(w, "credgate_issuer_key_fetches_total", st.issuer, "result", "ok", v);
		snprintf(v, sizeof(v), "%" PRIu64, st.fetches_failed);
		key_sample(w, "credgate_issuer_key_fetches_total", st.issuer, "result",
		    "failed", v);
	}
	family(w, "credgate_issuer_key_changes_total", "counter",
	    "New key sets published for an issuer.");
	for (i = 0; keyfetch_stats(kf, i, &st); i++) {
		snprintf(v, sizeof(v), "%" PRIu64, st.changes);
		key_sample(w, "credgate_issuer_key_changes_total", st.issuer, NULL, NULL, v);
	}
	family(w, "credgate_issuer_unknown_kid_total", "counter",
	    "Tokens that named a key the issuer's set lacked: fetched at once, or "
	    "answered by the rate limit (kid_refetch_interval).");
	for (i = 0; keyfetch_stats(kf, i, &st); i++) {
		snprintf(v, sizeof(v), "%" PRIu64, st.kid_fetches);
		key_sample(w, "credgate_issuer_unknown_kid_total", st.issuer, "action",
		    "fetched", v);
		snprintf(v, sizeof(v), "%" PRIu64, st.kid_limited);
		key_sample(w, "credgate_issuer_unknown_kid_total", st.issuer, "action",
		    "rate_limited", v);
	}
}

static uint64_t
ms_nonneg(int64_t ms)
{
	return ms > 0 ? (uint64_t)ms : 0;
}

int
metrics_render(struct evbuffer *out, struct cg_metrics *const *workers, size_t nworkers,
    const struct cg_process_metrics *p)
{
	struct writer w = { out, false };
	struct route_sum *rs;
	uint64_t tc_hits = 0, tc_misses = 0, sc_hits = 0, sc_misses = 0, audit_fail = 0, cum;
	size_t nrs, i, j, k;
	int r;

	if ((r = sum_routes(workers, nworkers, &rs, &nrs)) != 0)
		return r;
	for (i = 0; i < nworkers; i++) {
		const struct cg_metrics *m = workers[i];

		if (m == NULL)
			continue;
		tc_hits += rd(&m->w.token_cache_hits);
		tc_misses += rd(&m->w.token_cache_misses);
		sc_hits += rd(&m->w.secret_cache_hits);
		sc_misses += rd(&m->w.secret_cache_misses);
		audit_fail += rd(&m->w.audit_write_failures);
	}

	/* Families in name order. */
	scalar(&w, "credgate_audit_write_failures_total", "counter",
	    "Audit events that could not be written.", audit_fail);

	if (p != NULL) {
		family(&w, "credgate_build_info", "gauge",
		    "Always 1; the version of the running program is a label.");
		put(&w, "credgate_build_info{");
		put_label(&w, "version", p->version != NULL ? p->version : "unknown", true);
		put(&w, "} 1\n");
		scalar(&w, "credgate_config_generation", "gauge",
		    "Generation number of the configuration new connections get.",
		    p->config_generation);
		scalar(&w, "credgate_config_last_reload_success", "gauge",
		    "Whether the last configuration load or reload was applied (1) or refused (0).",
		    p->last_reload_success ? 1 : 0);
		family(&w, "credgate_config_last_reload_timestamp_seconds", "gauge",
		    "Unix time of the last configuration load or reload attempt.");
		put(&w, "credgate_config_last_reload_timestamp_seconds ");
		put_fixed(&w, ms_nonneg(p->last_reload_ms), 3);
		put(&w, "\n");
	}

	family(&w, "credgate_connections_evicted_total", "counter",
	    "Client connections closed before a complete request head to make room "
	    "for a new one, by route.");
	for (i = 0; i < nrs; i++)
		route_sample(&w, "credgate_connections_evicted_total", &rs[i], rs[i].evicted);

	family(&w, "credgate_connections_open", "gauge",
	    "Client connections open now, by route.");
	for (i = 0; i < nrs; i++)
		route_sample(&w, "credgate_connections_open", &rs[i], rs[i].open);

	family(&w, "credgate_connections_refused_total", "counter",
	    "Client connections refused for a connection limit, by route and reason.");
	for (i = 0; i < nrs; i++)
		for (k = 0; k < METRICS_NREFUSALS; k++) {
			put(&w, "credgate_connections_refused_total{");
			put_label(&w, "route", rs[i].name, true);
			put_label(&w, "reason", refusal_name[k], false);
			put_f(&w, "} %" PRIu64 "\n", rs[i].refused[k]);
		}

	family(&w, "credgate_connections_total", "counter",
	    "Client connections accepted, by route.");
	for (i = 0; i < nrs; i++)
		route_sample(&w, "credgate_connections_total", &rs[i], rs[i].total);

	if (p != NULL) {
		scalar(&w, "credgate_draining", "gauge",
		    "Whether the process is draining after SIGTERM (1) or serving (0).",
		    p->draining ? 1 : 0);
	}

	family(&w, "credgate_logins_total", "counter",
	    "Logins of protocols that log in upstream (PostgreSQL), by route and result.");
	for (i = 0; i < nrs; i++)
		for (k = 0; k < METRICS_NLOGINS && route_logins(&rs[i]); k++) {
			put(&w, "credgate_logins_total{");
			put_label(&w, "route", rs[i].name, true);
			put_label(&w, "result", login_name[k], false);
			put_f(&w, "} %" PRIu64 "\n", rs[i].logins[k]);
		}

	if (p != NULL) {
		family(&w, "credgate_process_start_time_seconds", "gauge",
		    "Unix time the process started.");
		put(&w, "credgate_process_start_time_seconds ");
		put_fixed(&w, ms_nonneg(p->start_time_ms), 3);
		put(&w, "\n");
	}

	family(&w, "credgate_request_duration_seconds", "histogram",
	    "Time from the first byte of a request to the end of its response, by route.");
	for (i = 0; i < nrs; i++) {
		cum = 0;
		for (k = 0; k < METRICS_NBUCKETS; k++) {
			cum += rs[i].buckets[k];
			put(&w, "credgate_request_duration_seconds_bucket{");
			put_label(&w, "route", rs[i].name, true);
			put_label(&w, "le", bucket_le[k], false);
			put_f(&w, "} %" PRIu64 "\n", cum);
		}
		put(&w, "credgate_request_duration_seconds_sum{");
		put_label(&w, "route", rs[i].name, true);
		put(&w, "} ");
		put_fixed(&w, rs[i].sum_us, 6);
		put(&w, "\n");
		route_sample(&w, "credgate_request_duration_seconds_count", &rs[i], cum);
	}

	family(&w, "credgate_requests_total", "counter",
	    "Requests by route, policy decision and response status class.");
	for (i = 0; i < nrs; i++)
		for (j = 0; j < METRICS_NDECISIONS; j++)
			for (k = 0; k < METRICS_NCLASSES; k++) {
				if (k == METRICS_CLASS_NONE && rs[i].requests[j][k] == 0)
					continue;
				put(&w, "credgate_requests_total{");
				put_label(&w, "route", rs[i].name, true);
				put_label(&w, "decision", decision_name[j], false);
				put_label(&w, "code_class", class_name[k], false);
				put_f(&w, "} %" PRIu64 "\n", rs[i].requests[j][k]);
			}

	family(&w, "credgate_scram_keys_total", "counter",
	    "SCRAM keys of upstream logins, derived or taken from the cache, by route.");
	for (i = 0; i < nrs; i++)
		for (k = 0; k < 2 && route_logins(&rs[i]); k++) {
			put(&w, "credgate_scram_keys_total{");
			put_label(&w, "route", rs[i].name, true);
			put_label(&w, "source", k ? "cache" : "derived", false);
			put_f(&w, "} %" PRIu64 "\n", rs[i].key_cache[k]);
		}

	scalar(&w, "credgate_secret_cache_hits_total", "counter",
	    "Credential lookups answered from the secret cache.", sc_hits);
	scalar(&w, "credgate_secret_cache_misses_total", "counter",
	    "Credential lookups that had to go to the secret store.", sc_misses);

	if (p != NULL && p->vault)
		render_vault(&w, &p->vault_st);
	if (p != NULL && p->keys != NULL)
		render_keys(&w, p->keys);

	family(&w, "credgate_secret_echo_total", "counter",
	    "Upstream response heads that carried the injected credential back, "
	    "written without it, by route.");
	for (i = 0; i < nrs; i++)
		route_sample(&w, "credgate_secret_echo_total", &rs[i], rs[i].secret_echo);

	scalar(&w, "credgate_token_cache_hits_total", "counter",
	    "Tokens found in the verified-token cache.", tc_hits);
	scalar(&w, "credgate_token_cache_misses_total", "counter",
	    "Tokens not in the verified-token cache, verified in full.", tc_misses);

	if (p != NULL && p->ntrust > 0) {
		family(&w, "credgate_trust_bundle_age_seconds", "gauge",
		    "Seconds since the trust bundle in force was read, by trust domain.");
		for (i = 0; i < p->ntrust; i++) {
			put(&w, "credgate_trust_bundle_age_seconds{");
			put_label(&w, "trust_domain", p->trust[i].name, true);
			put(&w, "} ");
			put_fixed(&w, ms_nonneg(p->trust[i].age_ms), 3);
			put(&w, "\n");
		}
		family(&w, "credgate_trust_bundle_reloads_total", "counter",
		    "Re-reads of a changed trust bundle file, by trust domain and result.");
		for (i = 0; i < p->ntrust; i++)
			for (k = 0; k < 2; k++) {
				put(&w, "credgate_trust_bundle_reloads_total{");
				put_label(&w, "trust_domain", p->trust[i].name, true);
				put_label(&w, "result", k ? "failed" : "ok", false);
				put_f(&w, "} %" PRIu64 "\n", k ? p->trust[i].reloads_failed :
				    p->trust[i].reloads_ok);
			}
	}

	family(&w, "credgate_upstream_connections_idle", "gauge",
	    "Idle upstream connections kept for reuse, by route.");
	for (i = 0; i < nrs; i++)
		route_sample(&w, "credgate_upstream_connections_idle", &rs[i], rs[i].up_idle);

	family(&w, "credgate_upstream_connections_total", "counter",
	    "Upstream connections requests used, opened or reused, by route.");
	for (i = 0; i < nrs; i++)
		for (k = 0; k < 2; k++) {
			put(&w, "credgate_upstream_connections_total{");
			put_label(&w, "route", rs[i].name, true);
			put_label(&w, "kind", k ? "reused" : "opened", false);
			put_f(&w, "} %" PRIu64 "\n", k ? rs[i].up_reused : rs[i].up_new);
		}

	free(rs);
	return w.failed ? CG_ERR_NOMEM : 0;
}
