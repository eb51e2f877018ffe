/*
 * test_metrics.c: recording into per-worker counters and rendering their
 * sum in the Prometheus text format: exact text for a known set of
 * events, bucket and status-class boundaries, label escaping, route
 * blocks, trust bundles, and a worker recording while the control thread
 * scrapes.
 */
#include "tests/unit/unit.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "proxy/metrics.h"

/* Renders into a NUL-terminated string the caller frees. */
static char *
render(struct cg_metrics *const *w, size_t n, const struct cg_process_metrics *p)
{
	struct evbuffer *b = evbuffer_new();
	size_t len;
	char *s;

	assert_non_null(b);
	assert_int_equal(metrics_render(b, w, n, p), 0);
	len = evbuffer_get_length(b);
	s = malloc(len + 1);
	assert_non_null(s);
	assert_int_equal(evbuffer_remove(b, s, len), (int)len);
	s[len] = '\0';
	evbuffer_free(b);
	return s;
}

/* True when text holds line as a whole line. */
static bool
has_line(const char *text, const char *line)
{
	size_t n = strlen(line);
	const char *p;

	for (p = text; (p = strstr(p, line)) != NULL; p++)
		if ((p == text || p[-1] == '\n') && p[n] == '\n')
			return true;
	return false;
}

static void
assert_line(const char *text, const char *line)
{
	if (!has_line(text, line))
		fail_msg("line not found: %s\n--- in ---\n%s", line, text);
}

static const char expected_full[] =
"# HELP credgate_audit_write_failures_total Audit events that could not be written.\n"
"# TYPE credgate_audit_write_failures_total counter\n"
"credgate_audit_write_failures_total 1\n"
"# HELP credgate_build_info Always 1; the version of the running program is a label.\n"
"# TYPE credgate_build_info gauge\n"
"credgate_build_info{version=\"1.2.3\"} 1\n"
"# HELP credgate_config_generation Generation number of the configuration new connections get.\n"
"# TYPE credgate_config_generation gauge\n"
"credgate_config_generation 3\n"
"# HELP credgate_config_last_reload_success Whether the last configuration load or reload was applied (1) or refused (0).\n"
"# TYPE credgate_config_last_reload_success gauge\n"
"credgate_config_last_reload_success 1\n"
"# HELP credgate_config_last_reload_timestamp_seconds Unix time of the last configuration load or reload attempt.\n"
"# TYPE credgate_config_last_reload_timestamp_seconds gauge\n"
"credgate_config_last_reload_timestamp_seconds 1700000000.123\n"
"# HELP credgate_connections_evicted_total Client connections closed before a complete request head to make room for a new one, by route.\n"
"# TYPE credgate_connections_evicted_total counter\n"
"credgate_connections_evicted_total{route=\"api\"} 0\n"
"credgate_connections_evicted_total{route=\"zeta\"} 1\n"
"# HELP credgate_connections_open Client connections open now, by route.\n"
"# TYPE credgate_connections_open gauge\n"
"credgate_connections_open{route=\"api\"} 2\n"
"credgate_connections_open{route=\"zeta\"} 0\n"
"# HELP credgate_connections_refused_total Client connections refused for a connection limit, by route and reason.\n"
"# TYPE credgate_connections_refused_total counter\n"
"credgate_connections_refused_total{route=\"api\",reason=\"global_limit\"} 0\n"
"credgate_connections_refused_total{route=\"api\",reason=\"route_limit\"} 1\n"
"credgate_connections_refused_total{route=\"api\",reason=\"client_limit\"} 0\n"
"credgate_connections_refused_total{route=\"api\",reason=\"wait_timeout\"} 0\n"
"credgate_connections_refused_total{route=\"zeta\",reason=\"global_limit\"} 2\n"
"credgate_connections_refused_total{route=\"zeta\",reason=\"route_limit\"} 0\n"
"credgate_connections_refused_total{route=\"zeta\",reason=\"client_limit\"} 1\n"
"credgate_connections_refused_total{route=\"zeta\",reason=\"wait_timeout\"} 0\n"
"# HELP credgate_connections_total Client connections accepted, by route.\n"
"# TYPE credgate_connections_total counter\n"
"credgate_connections_total{route=\"api\"} 3\n"
"credgate_connections_total{route=\"zeta\"} 0\n"
"# HELP credgate_draining Whether the process is draining after SIGTERM (1) or serving (0).\n"
"# TYPE credgate_draining gauge\n"
"credgate_draining 0\n"
"# HELP credgate_logins_total Logins of protocols that log in upstream (PostgreSQL), by route and result.\n"
"# TYPE credgate_logins_total counter\n"
"# HELP credgate_process_start_time_seconds Unix time the process started.\n"
"# TYPE credgate_process_start_time_seconds gauge\n"
"credgate_process_start_time_seconds 1699999999\n"
"# HELP credgate_request_duration_seconds Time from the first byte of a request to the end of its response, by route.\n"
"# TYPE credgate_request_duration_seconds histogram\n"
"credgate_request_duration_seconds_bucket{route=\"api\",le=\"0.0005\"} 1\n"
"credgate_request_duration_seconds_bucket{route=\"api\",le=\"0.001\"} 2\n"
"credgate_request_duration_seconds_bucket{route=\"api\",le=\"0.0025\"} 3\n"
"credgate_request_duration_seconds_bucket{route=\"api\",le=\"0.005\"} 3\n"
"credgate_request_duration_seconds_bucket{route=\"api\",le=\"0.01\"} 3\n"
"credgate_request_duration_seconds_bucket{route=\"api\",le=\"0.025\"} 3\n"
"credgate_request_duration_seconds_bucket{route=\"api\",le=\"0.05\"} 3\n"
"credgate_request_duration_seconds_bucket{route=\"api\",le=\"0.1\"} 3\n"
"credgate_request_duration_seconds_bucket{route=\"api\",le=\"0.25\"} 3\n"
"credgate_request_duration_seconds_bucket{route=\"api\",le=\"0.5\"} 3\n"
"credgate_request_duration_seconds_bucket{route=\"api\",le=\"1\"} 3\n"
"credgate_request_duration_seconds_bucket{route=\"api\",le=\"2.5\"} 3\n"
"credgate_request_duration_seconds_bucket{route=\"api\",le=\"5\"} 3\n"
"credgate_request_duration_seconds_bucket{route=\"api\",le=\"10\"} 3\n"
"credgate_request_duration_seconds_bucket{route=\"api\",le=\"+Inf\"} 4\n"
"credgate_request_duration_seconds_sum{route=\"api\"} 12.0038\n"
"credgate_request_duration_seconds_count{route=\"api\"} 4\n"
"credgate_request_duration_seconds_bucket{route=\"zeta\",le=\"0.0005\"} 0\n"
"credgate_request_duration_seconds_bucket{route=\"zeta\",le=\"0.001\"} 0\n"
"credgate_request_duration_seconds_bucket{route=\"zeta\",le=\"0.0025\"} 0\n"
"credgate_request_duration_seconds_bucket{route=\"zeta\",le=\"0.005\"} 0\n"
"credgate_request_duration_seconds_bucket{route=\"zeta\",le=\"0.01\"} 0\n"
"credgate_request_duration_seconds_bucket{route=\"zeta\",le=\"0.025\"} 0\n"
"credgate_request_duration_seconds_bucket{route=\"zeta\",le=\"0.05\"} 0\n"
"credgate_request_duration_seconds_bucket{route=\"zeta\",le=\"0.1\"} 0\n"
"credgate_request_duration_seconds_bucket{route=\"zeta\",le=\"0.25\"} 0\n"
"credgate_request_duration_seconds_bucket{route=\"zeta\",le=\"0.5\"} 0\n"
"credgate_request_duration_seconds_bucket{route=\"zeta\",le=\"1\"} 0\n"
"credgate_request_duration_seconds_bucket{route=\"zeta\",le=\"2.5\"} 0\n"
"credgate_request_duration_seconds_bucket{route=\"zeta\",le=\"5\"} 0\n"
"credgate_request_duration_seconds_bucket{route=\"zeta\",le=\"10\"} 0\n"
"credgate_request_duration_seconds_bucket{route=\"zeta\",le=\"+Inf\"} 0\n"
"credgate_request_duration_seconds_sum{route=\"zeta\"} 0\n"
"credgate_request_duration_seconds_count{route=\"zeta\"} 0\n"
"# HELP credgate_requests_total Requests by route, policy decision and response status class.\n"
"# TYPE credgate_requests_total counter\n"
"credgate_requests_total{route=\"api\",decision=\"allow\",code_class=\"1xx\"} 0\n"
"credgate_requests_total{route=\"api\",decision=\"allow\",code_class=\"2xx\"} 1\n"
"credgate_requests_total{route=\"api\",decision=\"allow\",code_class=\"3xx\"} 0\n"
"credgate_requests_total{route=\"api\",decision=\"allow\",code_class=\"4xx\"} 0\n"
"credgate_requests_total{route=\"api\",decision=\"allow\",code_class=\"5xx\"} 0\n"
"credgate_requests_total{route=\"api\",decision=\"allow\",code_class=\"none\"} 1\n"
"credgate_requests_total{route=\"api\",decision=\"deny\",code_class=\"1xx\"} 0\n"
"credgate_requests_total{route=\"api\",decision=\"deny\",code_class=\"2xx\"} 0\n"
"credgate_requests_total{route=\"api\",decision=\"deny\",code_class=\"3xx\"} 0\n"
"credgate_requests_total{route=\"api\",decision=\"deny\",code_class=\"4xx\"} 1\n"
"credgate_requests_total{route=\"api\",decision=\"deny\",code_class=\"5xx\"} 0\n"
"credgate_requests_total{route=\"api\",decision=\"would_deny\",code_class=\"1xx\"} 0\n"
"credgate_requests_total{route=\"api\",decision=\"would_deny\",code_class=\"2xx\"} 0\n"
"credgate_requests_total{route=\"api\",decision=\"would_deny\",code_class=\"3xx\"} 0\n"
"credgate_requests_total{route=\"api\",decision=\"would_deny\",code_class=\"4xx\"} 0\n"
"credgate_requests_total{route=\"api\",decision=\"would_deny\",code_class=\"5xx\"} 1\n"
"credgate_requests_total{route=\"zeta\",decision=\"allow\",code_class=\"1xx\"} 0\n"
"credgate_requests_total{route=\"zeta\",decision=\"allow\",code_class=\"2xx\"} 0\n"
"credgate_requests_total{route=\"zeta\",decision=\"allow\",code_class=\"3xx\"} 0\n"
"credgate_requests_total{route=\"zeta\",decision=\"allow\",code_class=\"4xx\"} 0\n"
"credgate_requests_total{route=\"zeta\",decision=\"allow\",code_class=\"5xx\"} 0\n"
"credgate_requests_total{route=\"zeta\",decision=\"deny\",code_class=\"1xx\"} 0\n"
"credgate_requests_total{route=\"zeta\",decision=\"deny\",code_class=\"2xx\"} 0\n"
"credgate_requests_total{route=\"zeta\",decision=\"deny\",code_class=\"3xx\"} 0\n"
"credgate_requests_total{route=\"zeta\",decision=\"deny\",code_class=\"4xx\"} 0\n"
"credgate_requests_total{route=\"zeta\",decision=\"deny\",code_class=\"5xx\"} 0\n"
"credgate_requests_total{route=\"zeta\",decision=\"would_deny\",code_class=\"1xx\"} 0\n"
"credgate_requests_total{route=\"zeta\",decision=\"would_deny\",code_class=\"2xx\"} 0\n"
"credgate_requests_total{route=\"zeta\",decision=\"would_deny\",code_class=\"3xx\"} 0\n"
"credgate_requests_total{route=\"zeta\",decision=\"would_deny\",code_class=\"4xx\"} 0\n"
"credgate_requests_total{route=\"zeta\",decision=\"would_deny\",code_class=\"5xx\"} 0\n"
"# HELP credgate_scram_keys_total SCRAM keys of upstream logins, derived or taken from the cache, by route.\n"
"# TYPE credgate_scram_keys_total counter\n"
"# HELP credgate_secret_cache_hits_total Credential lookups answered from the secret cache.\n"
"# TYPE credgate_secret_cache_hits_total counter\n"
"credgate_secret_cache_hits_total 6\n"
"# HELP credgate_secret_cache_misses_total Credential lookups that had to go to the secret store.\n"
"# TYPE credgate_secret_cache_misses_total counter\n"
"credgate_secret_cache_misses_total 3\n"
"# HELP credgate_secret_echo_total Upstream response heads that carried the injected credential back, written without it, by route.\n"
"# TYPE credgate_secret_echo_total counter\n"
"credgate_secret_echo_total{route=\"api\"} 2\n"
"credgate_secret_echo_total{route=\"zeta\"} 0\n"
"# HELP credgate_token_cache_hits_total Tokens found in the verified-token cache.\n"
"# TYPE credgate_token_cache_hits_total counter\n"
"credgate_token_cache_hits_total 2\n"
"# HELP credgate_token_cache_misses_total Tokens not in the verified-token cache, verified in full.\n"
"# TYPE credgate_token_cache_misses_total counter\n"
"credgate_token_cache_misses_total 1\n"
"# HELP credgate_upstream_connections_idle Idle upstream connections kept for reuse, by route.\n"
"# TYPE credgate_upstream_connections_idle gauge\n"
"credgate_upstream_connections_idle{route=\"api\"} 1\n"
"credgate_upstream_connections_idle{route=\"zeta\"} 0\n"
"# HELP credgate_upstream_connections_total Upstream connections requests used, opened or reused, by route.\n"
"# TYPE credgate_upstream_connections_total counter\n"
"credgate_upstream_connections_total{route=\"api\",kind=\"opened\"} 2\n"
"credgate_upstream_connections_total{route=\"api\",kind=\"reused\"} 1\n"
"credgate_upstream_connections_total{route=\"zeta\",kind=\"opened\"} 0\n"
"credgate_upstream_connections_total{route=\"zeta\",kind=\"reused\"} 0\n";

/*
 * Two workers that both serve "api"; only the second knows "zeta" (made
 * first, so that the list order differs from the name order).
 */
static void
test_render_exact(void **state)
{
	struct cg_metrics *w[2] = { metrics_new(), metrics_new() };
	struct cg_route_metrics *a0, *a1, *z1;
	struct cg_process_metrics p = {
		.config_generation = 3,
		.last_reload_success = true,
		.last_reload_ms = 1700000000123LL,
		.draining = false,
		.start_time_ms = 1699999999000LL,
		.version = "1.2.3",
	};
	char *text;

	(void)state;
	assert_non_null(w[0]);
	assert_non_null(w[1]);
	z1 = metrics_route(w[1], "zeta");
	a0 = metrics_route(w[0], "api");
	a1 = metrics_route(w[1], "api");
	assert_non_null(a0);
	assert_non_null(a1);
	assert_non_null(z1);

	metrics_request(a0, METRICS_ALLOW, 200, 300);		/* le 0.0005 */
	metrics_request(a0, METRICS_DENY, 403, 1000);		/* le 0.001 (bounds inclusive) */
	metrics_conn_open(a0);
	metrics_conn_open(a0);
	metrics_conn_close(a0);
	metrics_conn_refused(a0, METRICS_REFUSED_ROUTE_LIMIT);
	metrics_token_cache(w[0], true);
	metrics_token_cache(w[0], true);
	metrics_token_cache(w[0], false);
	metrics_audit_failures(w[0], 1);
	metrics_set_secret_cache(w[0], 5, 2);
	metrics_secret_echo(a0);

	metrics_request(a1, METRICS_WOULD_DENY, 502, 12000000);	/* +Inf */
	metrics_request(a1, METRICS_ALLOW, 0, 2500);		/* no response; le 0.0025 */
	metrics_conn_open(a1);
	metrics_conn_refused(z1, METRICS_REFUSED_GLOBAL_LIMIT);
	metrics_conn_refused(z1, METRICS_REFUSED_GLOBAL_LIMIT);
	metrics_conn_refused(z1, METRICS_REFUSED_CLIENT_LIMIT);
	metrics_conn_evicted(z1);
	metrics_set_secret_cache(w[1], 1, 1);
	metrics_secret_echo(a1);
	metrics_upstream(a0, false);
	metrics_upstream(a1, false);
	metrics_upstream(a1, true);
	metrics_up_idle(a0, 1);
	metrics_up_idle(a1, 1);
	metrics_up_idle(a1, -1);
	metrics_up_idle(z1, -1);		/* an unmatched release never wraps */

	text = render(w, 2, &p);
	if (strcmp(text, expected_full) != 0)
		fail_msg("rendered text differs:\n%s", text);
	free(text);

	/* Stable: the same counters render the same text again. */
	text = render(w, 2, &p);
	assert_string_equal(text, expected_full);
	free(text);

	/* Worker order does not matter either. */
	{
		struct cg_metrics *rev[2] = { w[1], w[0] };

		text = render(rev, 2, &p);
		assert_string_equal(text, expected_full);
		free(text);
	}
	metrics_free(w[0]);
	metrics_free(w[1]);
}

/* Each latency lands in the first bucket whose bound it does not exceed. */
static void
test_buckets(void **state)
{
	static const struct {
		int64_t us;
		unsigned bucket;
	} cases[] = {
		{ -5, 0 }, { 0, 0 }, { 1, 0 }, { 500, 0 }, { 501, 1 }, { 1000, 1 },
		{ 1001, 2 }, { 2500, 2 }, { 5000, 3 }, { 10000, 4 }, { 25000, 5 },
		{ 50000, 6 }, { 100000, 7 }, { 250000, 8 }, { 500000, 9 },
		{ 1000000, 10 }, { 1000001, 11 }, { 2500000, 11 }, { 5000000, 12 },
		{ 10000000, 13 }, { 10000001, 14 }, { INT64_MAX, 14 },
	};
	size_t i;

	(void)state;
	for (i = 0; i < CG_ARRAY_LEN(cases); i++) {
		struct cg_metrics *m = metrics_new();
		struct cg_route_metrics *r = metrics_route(m, "r");
		unsigned k;

		metrics_request(r, METRICS_ALLOW, 200, cases[i].us);
		for (k = 0; k < METRICS_NBUCKETS; k++)
			if (r->latency_buckets[k] != (k == cases[i].bucket ? 1u : 0u))
				fail_msg("latency %lld: bucket %u holds %llu", (long long)cases[i].us,
				    k, (unsigned long long)r->latency_buckets[k]);
		metrics_free(m);
	}
}

/* Cumulative buckets, sum and count after a series across the bounds. */
static void
test_histogram_lines(void **state)
{
	struct cg_metrics *m = metrics_new();
	struct cg_route_metrics *r = metrics_route(m, "h");
	char *text;

	(void)state;
	metrics_request(r, METRICS_ALLOW, 200, 400);
	metrics_request(r, METRICS_ALLOW, 200, 400);
	metrics_request(r, METRICS_ALLOW, 200, 30000);
	metrics_request(r, METRICS_ALLOW, 200, 1000000);
	metrics_request(r, METRICS_ALLOW, 200, 7);
	text = render(&m, 1, NULL);
	assert_line(text, "credgate_request_duration_seconds_bucket{route=\"h\",le=\"0.0005\"} 3");
	assert_line(text, "credgate_request_duration_seconds_bucket{route=\"h\",le=\"0.025\"} 3");
	assert_line(text, "credgate_request_duration_seconds_bucket{route=\"h\",le=\"0.05\"} 4");
	assert_line(text, "credgate_request_duration_seconds_bucket{route=\"h\",le=\"0.5\"} 4");
	assert_line(text, "credgate_request_duration_seconds_bucket{route=\"h\",le=\"1\"} 5");
	assert_line(text, "credgate_request_duration_seconds_bucket{route=\"h\",le=\"+Inf\"} 5");
	assert_line(text, "credgate_request_duration_seconds_sum{route=\"h\"} 1.030807");
	assert_line(text, "credgate_request_duration_seconds_count{route=\"h\"} 5");
	assert_line(text, "credgate_requests_total{route=\"h\",decision=\"allow\",code_class=\"2xx\"} 5");
	/* Without process metrics, their families are left out. */
	assert_null(strstr(text, "credgate_build_info"));
	assert_null(strstr(text, "credgate_draining"));
	assert_null(strstr(text, "credgate_config_generation"));
	free(text);
	metrics_free(m);
}

/* Status classes at their edges; an unknown decision counts as deny. */
static void
test_status_classes(void **state)
{
	static const struct {
		int status;
		int decision;
		const char *line;
	} cases[] = {
		{ 100, 0, "credgate_requests_total{route=\"s\",decision=\"allow\",code_class=\"1xx\"} 1" },
		{ 199, 0, "credgate_requests_total{route=\"s\",decision=\"allow\",code_class=\"1xx\"} 1" },
		{ 200, 1, "credgate_requests_total{route=\"s\",decision=\"deny\",code_class=\"2xx\"} 1" },
		{ 308, 2, "credgate_requests_total{route=\"s\",decision=\"would_deny\",code_class=\"3xx\"} 1" },
		{ 499, 1, "credgate_requests_total{route=\"s\",decision=\"deny\",code_class=\"4xx\"} 1" },
		{ 599, 0, "credgate_requests_total{route=\"s\",decision=\"allow\",code_class=\"5xx\"} 1" },
		{ 600, 0, "credgate_requests_total{route=\"s\",decision=\"allow\",code_class=\"none\"} 1" },
		{ 99, 2, "credgate_requests_total{route=\"s\",decision=\"would_deny\",code_class=\"none\"} 1" },
		{ -1, 0, "credgate_requests_total{route=\"s\",decision=\"allow\",code_class=\"none\"} 1" },
		{ 200, 3, "credgate_requests_total{route=\"s\",decision=\"deny\",code_class=\"2xx\"} 1" },
		{ 200, -1, "credgate_requests_total{route=\"s\",decision=\"deny\",code_class=\"2xx\"} 1" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < CG_ARRAY_LEN(cases); i++) {
		struct cg_metrics *m = metrics_new();
		char *text;

		metrics_request(metrics_route(m, "s"), cases[i].decision, cases[i].status, 1);
		text = render(&m, 1, NULL);
		assert_line(text, cases[i].line);
		free(text);
		metrics_free(m);
	}
}

/* Label values: backslash, double quote and newline escaped; bytes
 * otherwise as they are; routes in byte order. */
static void
test_label_escaping(void **state)
{
	struct cg_metrics *m = metrics_new();
	struct cg_process_metrics p = { .version = "v\"1\\\n" };
	const char *open;
	char *text;

	(void)state;
	metrics_conn_open(metrics_route(m, "b\\c\"d\ne"));
	metrics_conn_open(metrics_route(m, "B"));
	metrics_conn_open(metrics_route(m, "\"q\""));
	metrics_conn_open(metrics_route(m, "caf\xc3\xa9 r"));
	text = render(&m, 1, &p);
	assert_line(text, "credgate_connections_open{route=\"b\\\\c\\\"d\\ne\"} 1");
	assert_line(text, "credgate_connections_open{route=\"\\\"q\\\"\"} 1");
	assert_line(text, "credgate_connections_open{route=\"caf\xc3\xa9 r\"} 1");
	assert_line(text, "credgate_build_info{version=\"v\\\"1\\\\\\n\"} 1");
	/* "\"q\"" < "B" < "b..." < "caf...", within one family */
	open = strstr(text, "credgate_connections_open{");
	assert_non_null(open);
	assert_true(strstr(open, "{route=\"\\\"q\\\"\"} 1") < strstr(open, "{route=\"B\"} 1"));
	assert_true(strstr(open, "{route=\"B\"} 1") < strstr(open, "{route=\"b\\\\"));
	assert_true(strstr(open, "{route=\"b\\\\") < strstr(open, "{route=\"caf"));
	/* No raw newline inside any sample line: each line starts as a sample
	 * name or a comment. */
	{
		const char *p2 = text;

		while (*p2 != '\0') {
			assert_true(strncmp(p2, "credgate_", 9) == 0 || strncmp(p2, "# ", 2) == 0);
			p2 = strchr(p2, '\n');
			assert_non_null(p2);
			p2++;
		}
	}
	free(text);

	/* Without a version, build_info says "unknown". */
	p.version = NULL;
	text = render(&m, 1, &p);
	assert_line(text, "credgate_build_info{version=\"unknown\"} 1");
	free(text);
	metrics_free(m);
}

/* Lookups find the same block; distinct names get distinct blocks. */
static void
test_route_blocks(void **state)
{
	struct cg_metrics *m = metrics_new();
	struct cg_route_metrics *a, *b, *a2;
	char name[8];

	(void)state;
	a = metrics_route(m, "alpha");
	b = metrics_route(m, "beta");
	assert_non_null(a);
	assert_non_null(b);
	assert_ptr_not_equal(a, b);
	/* A copy of the name, not the pointer, is what counts. */
	snprintf(name, sizeof(name), "%s", "alpha");
	a2 = metrics_route(m, name);
	assert_ptr_equal(a, a2);
	name[0] = 'X';
	assert_ptr_equal(metrics_route(m, "alpha"), a);
	assert_ptr_equal(metrics_route(m, "beta"), b);
	assert_ptr_not_equal(metrics_route(m, "Alpha"), a);
	assert_ptr_not_equal(metrics_route(m, "alph"), a);
	/* Blocks do not share cache lines with one another. */
	assert_int_equal((uintptr_t)a % METRICS_CACHELINE, 0);
	assert_int_equal((uintptr_t)b % METRICS_CACHELINE, 0);
	assert_int_equal((uintptr_t)&m->w % METRICS_CACHELINE, 0);
	/* Counting through a kept pointer shows up under the name. */
	metrics_conn_open(a);
	metrics_conn_open(a2);
	assert_int_equal(metrics_route(m, "alpha")->conns_total, 2);
	/* An unmatched close never wraps the gauge. */
	metrics_conn_close(b);
	assert_int_equal(b->conns_open, 0);
	metrics_free(m);
	metrics_free(NULL);
}

/* No workers, or NULL entries: families with zero values, no routes. */
static void
test_empty(void **state)
{
	struct cg_metrics *none[2] = { NULL, NULL };
	char *text;

	(void)state;
	text = render(none, 2, NULL);
	assert_line(text, "credgate_token_cache_hits_total 0");
	assert_line(text, "# TYPE credgate_request_duration_seconds histogram");
	assert_null(strstr(text, "route="));
	free(text);
	text = render(NULL, 0, NULL);
	assert_line(text, "credgate_audit_write_failures_total 0");
	free(text);
}

/* Absolute cache values replace, per-lookup calls add. */
static void
test_cache_counters(void **state)
{
	struct cg_metrics *m = metrics_new();
	char *text;

	(void)state;
	metrics_set_token_cache(m, 10, 4);
	metrics_set_token_cache(m, 12, 5);
	metrics_secret_cache(m, true);
	metrics_secret_cache(m, false);
	metrics_secret_cache(m, false);
	text = render(&m, 1, NULL);
	assert_line(text, "credgate_token_cache_hits_total 12");
	assert_line(text, "credgate_token_cache_misses_total 5");
	assert_line(text, "credgate_secret_cache_hits_total 1");
	assert_line(text, "credgate_secret_cache_misses_total 2");
	free(text);
	metrics_free(m);
}

/* Echoes count per route, summed over workers, zeros rendered; a route
 * made by one worker only is still one series. */
static void
test_secret_echo(void **state)
{
	struct cg_metrics *w[2] = { metrics_new(), metrics_new() };
	struct cg_route_metrics *q0, *q1, *b1;
	char *text;

	(void)state;
	q0 = metrics_route(w[0], "query");
	q1 = metrics_route(w[1], "query");
	b1 = metrics_route(w[1], "basic");
	assert_non_null(q0);
	assert_non_null(q1);
	assert_non_null(b1);
	text = render(w, 2, NULL);
	assert_line(text, "# TYPE credgate_secret_echo_total counter");
	assert_line(text, "credgate_secret_echo_total{route=\"query\"} 0");
	assert_line(text, "credgate_secret_echo_total{route=\"basic\"} 0");
	free(text);
	metrics_secret_echo(q0);
	metrics_secret_echo(q0);
	metrics_secret_echo(q1);
	metrics_secret_echo(b1);
	text = render(w, 2, NULL);
	assert_line(text, "credgate_secret_echo_total{route=\"query\"} 3");
	assert_line(text, "credgate_secret_echo_total{route=\"basic\"} 1");
	/* In name order, after the secret cache's families. */
	assert_true(strstr(text, "credgate_secret_echo_total{route=\"basic\"}") <
	    strstr(text, "credgate_secret_echo_total{route=\"query\"}"));
	assert_true(strstr(text, "# TYPE credgate_secret_cache_misses_total") <
	    strstr(text, "# TYPE credgate_secret_echo_total"));
	assert_true(strstr(text, "# TYPE credgate_secret_echo_total") <
	    strstr(text, "# TYPE credgate_token_cache_hits_total"));
	free(text);
	metrics_free(w[0]);
	metrics_free(w[1]);
}

/* Trust bundles: each domain's re-reads by result and the age of the
 * bundle in force, in the families' name order; none without domains. */
static void
test_trust_bundles(void **state)
{
	struct cg_metrics *w[1] = { metrics_new() };
	const struct metrics_trust trust[] = {
		{ "prod", 3, 1, 2500 },
		{ "staging \"b\"", 0, 0, -5 },
	};
	struct cg_process_metrics p = { .version = "x", .trust = trust, .ntrust = 2 };
	char *text;

	(void)state;
	assert_non_null(w[0]);
	text = render(w, 1, &p);
	assert_line(text, "# HELP credgate_trust_bundle_age_seconds Seconds since the trust "
	    "bundle in force was read, by trust domain.");
	assert_line(text, "# TYPE credgate_trust_bundle_age_seconds gauge");
	assert_line(text, "credgate_trust_bundle_age_seconds{trust_domain=\"prod\"} 2.5");
	/* a clock that went back is no negative age */
	assert_line(text, "credgate_trust_bundle_age_seconds{trust_domain=\"staging \\\"b\\\"\"} 0");
	assert_line(text, "# TYPE credgate_trust_bundle_reloads_total counter");
	assert_line(text, "credgate_trust_bundle_reloads_total{trust_domain=\"prod\",result=\"ok\"} 3");
	assert_line(text,
	    "credgate_trust_bundle_reloads_total{trust_domain=\"prod\",result=\"failed\"} 1");
	assert_line(text, "credgate_trust_bundle_reloads_total{trust_domain=\"staging "
	    "\\\"b\\\"\",result=\"failed\"} 0");
	assert_true(strstr(text, "# TYPE credgate_token_cache_misses_total") <
	    strstr(text, "# TYPE credgate_trust_bundle_age_seconds"));
	assert_true(strstr(text, "# TYPE credgate_trust_bundle_age_seconds") <
	    strstr(text, "# TYPE credgate_trust_bundle_reloads_total"));
	assert_true(strstr(text, "# TYPE credgate_trust_bundle_reloads_total") <
	    strstr(text, "# TYPE credgate_upstream_connections_idle"));
	free(text);

	p.ntrust = 0;
	text = render(w, 1, &p);
	assert_null(strstr(text, "credgate_trust_bundle"));
	free(text);
	metrics_free(w[0]);
}

/* Logins and SCRAM keys: listed for the routes that had any, by result
 * and source, summed over workers. */
static void
test_logins(void **state)
{
	struct cg_metrics *w[2] = { metrics_new(), metrics_new() };
	struct cg_route_metrics *d0, *d1, *h1;
	char *text;

	(void)state;
	d0 = metrics_route(w[0], "db");
	d1 = metrics_route(w[1], "db");
	h1 = metrics_route(w[1], "web");
	assert_non_null(d0);
	assert_non_null(d1);
	assert_non_null(h1);
	metrics_login(d0, METRICS_LOGIN_OK);
	metrics_login(d1, METRICS_LOGIN_OK);
	metrics_login(d1, METRICS_LOGIN_REUSED);
	metrics_login(d1, METRICS_LOGIN_REFUSED);
	metrics_login(d1, METRICS_NLOGINS);	/* out of range: not counted */
	metrics_key_cache(d0, false);
	metrics_key_cache(d1, true);
	metrics_key_cache(d1, true);
	text = render(w, 2, NULL);
	assert_line(text, "# TYPE credgate_logins_total counter");
	assert_line(text, "credgate_logins_total{route=\"db\",result=\"ok\"} 2");
	assert_line(text, "credgate_logins_total{route=\"db\",result=\"reused\"} 1");
	assert_line(text, "credgate_logins_total{route=\"db\",result=\"refused\"} 1");
	assert_line(text, "credgate_logins_total{route=\"db\",result=\"failed\"} 0");
	assert_line(text, "credgate_scram_keys_total{route=\"db\",source=\"derived\"} 1");
	assert_line(text, "credgate_scram_keys_total{route=\"db\",source=\"cache\"} 2");
	assert_null(strstr(text, "credgate_logins_total{route=\"web\""));
	assert_null(strstr(text, "credgate_scram_keys_total{route=\"web\""));
	free(text);
	metrics_free(w[0]);
	metrics_free(w[1]);
}

#define WORKER_REQUESTS 200000

static void *
worker_main(void *arg)
{
	struct cg_metrics *m = arg;
	struct cg_route_metrics *r = metrics_route(m, "busy");
	int i;

	for (i = 0; i < WORKER_REQUESTS; i++) {
		metrics_conn_open(r);
		metrics_request(r, METRICS_ALLOW, 200, i % 3000);
		metrics_token_cache(m, i & 1);
		metrics_conn_close(r);
		/* A route made while a scrape may run (no cmocka asserts
		 * off the main thread). */
		if (i % 50000 == 0 && metrics_route(m, i == 0 ? "late0" : "late1") == NULL)
			abort();
	}
	return NULL;
}

/* A worker records while the control thread scrapes; counters never go
 * backwards and the final scrape has everything. */
static void
test_concurrent_scrape(void **state)
{
	struct cg_metrics *w[2] = { metrics_new(), metrics_new() };
	pthread_t t[2];
	unsigned long long prev = 0;
	char *text, line[160];
	int i;

	(void)state;
	for (i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, worker_main, w[i]), 0);
	for (i = 0; i < 50; i++) {
		const char *key = "credgate_connections_total{route=\"busy\"} ";
		const char *at;
		unsigned long long v = 0;

		text = render(w, 2, NULL);
		if ((at = strstr(text, key)) != NULL)
			v = strtoull(at + strlen(key), NULL, 10);
		assert_true(v >= prev);
		prev = v;
		free(text);
	}
	for (i = 0; i < 2; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	text = render(w, 2, NULL);
	snprintf(line, sizeof(line), "credgate_connections_total{route=\"busy\"} %d",
	    2 * WORKER_REQUESTS);
	assert_line(text, line);
	assert_line(text, "credgate_connections_open{route=\"busy\"} 0");
	snprintf(line, sizeof(line), "credgate_request_duration_seconds_count{route=\"busy\"} %d",
	    2 * WORKER_REQUESTS);
	assert_line(text, line);
	snprintf(line, sizeof(line), "credgate_token_cache_hits_total %d", WORKER_REQUESTS);
	assert_line(text, line);
	assert_line(text, "credgate_connections_total{route=\"late0\"} 0");
	assert_line(text, "credgate_connections_total{route=\"late1\"} 0");
	free(text);
	metrics_free(w[0]);
	metrics_free(w[1]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_render_exact),
		cmocka_unit_test(test_buckets),
		cmocka_unit_test(test_histogram_lines),
		cmocka_unit_test(test_status_classes),
		cmocka_unit_test(test_label_escaping),
		cmocka_unit_test(test_route_blocks),
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_cache_counters),
		cmocka_unit_test(test_secret_echo),
		cmocka_unit_test(test_logins),
		cmocka_unit_test(test_trust_bundles),
		cmocka_unit_test(test_concurrent_scrape),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
