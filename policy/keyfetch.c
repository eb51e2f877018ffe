/*
 * keyfetch.c: fetches issuers' key sets on the control thread and
 * publishes them through their rings (see keyfetch.h).
 *
 * It owns the sources (one per distinct way of fetching), their HTTP
 * clients, timers and state, and the eventfd that workers' wishes arrive
 * on.  It parses nothing itself: discovery documents and Cache-Control go
 * through oidc.c, key sets through jwks.c.  Log lines name the issuer and
 * what failed; never a token, and never a body.
 */
#include "config.h"

#include <sys/eventfd.h>
#include <sys/queue.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "common.h"
#include "common/outbound.h"
#include "policy/keyfetch.h"
#include "policy/oidc.h"
#include "policy/policy.h"

#define KF_WELL_KNOWN	"/.well-known/openid-configuration"
#define KF_TOKEN_MAX	(64 * 1024)	/* bytes of a bearer token file */
#define KF_ORIGIN_MAX	512

enum kf_stage {
	KF_DISCOVERY,	/* fetching the discovery document */
	KF_JWKS,	/* fetching the key set */
};

struct kf_source {
	struct keyfetch *kf;
	LIST_ENTRY(kf_source) link;
	char *spec;		/* every setting that makes it fetch its way */
	char *name;		/* the first issuer's name, for logs and metrics */
	char *iss;		/* for discovery and its check */
	char *jwks_uri;		/* configured; NULL: discovery */
	char *bearer_file;
	char *auth_origin;	/* where the bearer token may go */
	int64_t refresh_min_ms, refresh_max_ms, max_age_ms, kid_ms, timeout_ms;
	struct policy_keyring *ring;	/* a reference */
	struct ob_client *http;
	struct ob_call *call;	/* the fetch in flight */
	enum kf_stage stage;
	char *url;		/* being fetched */
	char origin[KF_ORIGIN_MAX];	/* redirects may stay here only */
	unsigned redirects;
	char *discovered;	/* the last discovery's jwks_uri */
	uint64_t fetch;		/* the ring's number of the fetch in flight */
	bool wish;		/* a wish came while a fetch was in flight: that
				   fetch may predate it, so another follows */
	struct event *timer;
	int64_t next_ms;	/* the next scheduled fetch (monotonic) */
	int64_t last_ok_ms;	/* -1: never */
	int64_t last_kid_ms;	/* -1: never */
	int fails;		/* in a row */
	char last_error[200];
	struct keyfetch_stats st;
	bool used;		/* marked by keyfetch_prune() */
};

struct keyfetch {
	struct event_base *base;
	void (*notify)(void *);
	void *notify_arg;
	int efd;
	struct event *wake;
	LIST_HEAD(, kf_source) sources;
	size_t nsources;
};

static void kf_fetch(struct kf_source *s, bool by_wish);
static void kf_schedule(struct kf_source *s);

bool
keyfetch_fetched(const struct policy_issuer *is)
{
	return is != NULL && (is->jwks_file == NULL || is->jwks_file[0] == '\0');
}

/* ------------------------------------------------------------------ */
/* URLs                                                                */
/* ------------------------------------------------------------------ */

/*
 * "scheme://host:port" of url, lower case, with the default port made
 * explicit; false when url does not parse, is not https, or carries
 * credentials (which would reach logs with the URL).
 */
static bool
kf_origin(const char *url, char *out, size_t size)
{
	CURLU *u;
	char *scheme = NULL, *host = NULL, *port = NULL, *user = NULL;
	bool ok = false;
	size_t i;

	if ((u = curl_url()) == NULL)
		return false;
	if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_NO_USER &&
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK &&
	    strcasecmp(scheme, "https") == 0) {
		int n = snprintf(out, size, "https://%s:%s", host, port);

		ok = n > 0 && (size_t)n < size;
		for (i = 0; ok && out[i] != '\0'; i++)
			if (out[i] >= 'A' && out[i] <= 'Z')
				out[i] = (char)(out[i] - 'A' + 'a');
	}
	curl_free(user);
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
	return ok;
}

/* location resolved against base (a malloc'd URL), or NULL. */
static char *
kf_resolve(const char *base, const char *location)
{
	CURLU *u;
	char *abs = NULL, *out = NULL;

	if ((u = curl_url()) == NULL)
		return NULL;
	if (curl_url_set(u, CURLUPART_URL, base, 0) == CURLUE_OK &&
	    curl_url_set(u, CURLUPART_URL, location, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_URL, &abs, 0) == CURLUE_OK)
		out = strdup(abs);
	curl_free(abs);
	curl_url_cleanup(u);
	return out;
}

/* The discovery URL of an issuer: a trailing '/' goes first (OpenID
 * Connect Discovery 1.0, section 4). */
static char *
kf_discovery_url(const char *iss)
{
	size_t n = strlen(iss);
	char *u;

	if (n > 0 && iss[n - 1] == '/')
		n--;
	if ((u = malloc(n + sizeof(KF_WELL_KNOWN))) == NULL)
		return NULL;
	memcpy(u, iss, n);
	memcpy(u + n, KF_WELL_KNOWN, sizeof(KF_WELL_KNOWN));
	return u;
}

/* ------------------------------------------------------------------ */
/* Outcomes                                                            */
/* ------------------------------------------------------------------ */

static void
kf_notify(struct kf_source *s)
{
	if (s->kf->notify != NULL)
		s->kf->notify(s->kf->notify_arg);
}

static void kf_wish(struct kf_source *s);

/*
 * The fetch in flight is over: the callers waiting for it (their wish came
 * before it started) go on.  A wish that came meanwhile may predate what
 * the fetch saw: when the fetch brought a new set, its callers verify with
 * that; when not, they get a fetch of their own, or the rate limit's
 * refusal.
 */
static void
kf_ended(struct kf_source *s, bool changed)
{
	policy_keyring_fetch_done(s->ring, s->fetch);
	if (s->wish) {
		s->wish = false;
		if (changed)
			policy_keyring_refuse(s->ring);
		else
			kf_wish(s);
	}
	kf_notify(s);
}

/* Drops the set once it is older than max_key_age; true when it did. */
static bool
kf_expire(struct kf_source *s, int64_t now)
{
	char q[sizeof(s->last_error) + 16];

	if (!s->st.loaded || s->last_ok_ms < 0 || now - s->last_ok_ms < s->max_age_ms)
		return false;
	policy_keyring_set(s->ring, NULL);
	s->st.loaded = false;
	s->st.nkeys = 0;
	cg_err("msg=issuer_keys_expired issuer=%s age_ms=%lld reason=\"no good fetch "
	    "within max_key_age\" last_error=%s", s->name, (long long)(now - s->last_ok_ms),
	    cg_log_quote(q, sizeof(q), s->last_error, strlen(s->last_error)));
	return true;
}

static void
kf_failed(struct kf_source *s, const char *fmt, ...) CG_PRINTF(2, 3);

static void
kf_failed(struct kf_source *s, const char *fmt, ...)
{
	char q[sizeof(s->last_error) + 16];
	int64_t now = cg_mono_ms();
	va_list ap;
	bool dropped;

	va_start(ap, fmt);
	vsnprintf(s->last_error, sizeof(s->last_error), fmt, ap);
	va_end(ap);
	s->st.fetches_failed++;
	s->fails++;
	cg_warn("msg=issuer_keys_fetch_failed issuer=%s url=%s error=%s keys=%s",
	    s->name, s->url != NULL ? s->url : "-",
	    cg_log_quote(q, sizeof(q), s->last_error, strlen(s->last_error)),
	    s->st.loaded ? "last_good_kept" : "none");
	dropped = kf_expire(s, now);
	s->next_ms = now + cg_backoff_ms(KEYFETCH_RETRY_MIN_MS,
	    s->refresh_min_ms > KEYFETCH_RETRY_MIN_MS ? s->refresh_min_ms :
	    KEYFETCH_RETRY_MIN_MS, s->fails - 1);
	free(s->url);
	s->url = NULL;
	kf_ended(s, dropped);
	kf_schedule(s);
}

/* A key set came: published when it differs, and the next fetch set by
 * its Cache-Control within the bounds. */
static void
kf_loaded(struct kf_source *s, const struct ob_response *r)
{
	struct jwks *ks = NULL;
	int64_t now = cg_mono_ms(), age_s, next;
	bool changed;
	char err[256];
	int rc;

	if ((rc = jwks_load_mem(r->body, r->body_len, &ks, err, sizeof(err))) != 0) {
		kf_failed(s, "key set refused: %s", err);
		return;
	}
	if (jwks_skipped_symmetric(ks) > 0)
		cg_warn("msg=issuer_keys_symmetric_ignored issuer=%s count=%zu",
		    s->name, jwks_skipped_symmetric(ks));
	changed = !jwks_same(policy_keyring_current(s->ring), ks);
	s->st.nkeys = jwks_count(ks);
	if (changed) {
		policy_keyring_set(s->ring, ks);
		s->st.changes++;
		cg_info("msg=issuer_keys_updated issuer=%s keys=%zu url=%s", s->name,
		    s->st.nkeys, s->url);
	} else
		jwks_free(ks);
	s->st.loaded = true;
	s->st.ever = true;
	s->st.fetches_ok++;
	s->last_ok_ms = now;
	s->fails = 0;
	s->last_error[0] = '\0';
	if (http_cache_max_age(r->cache_control, &age_s) != 0)
		age_s = s->refresh_max_ms / 1000;
	next = age_s * 1000;
	if (next < s->refresh_min_ms)
		next = s->refresh_min_ms;
	if (next > s->refresh_max_ms)
		next = s->refresh_max_ms;
	if (next > s->max_age_ms / 2)
		next = s->max_age_ms / 2;	/* two tries before the keys expire */
	s->next_ms = now + next;
	free(s->url);
	s->url = NULL;
	kf_ended(s, changed);
	kf_schedule(s);
}

static void kf_request(struct kf_source *s, const char *url);

static void
kf_response(const struct ob_response *r, void *arg)
{
	struct kf_source *s = arg;
	char origin[KF_ORIGIN_MAX], *next, err[256];
	int rc;

	s->call = NULL;
	if (r->fail != OB_OK) {
		kf_failed(s, "%s: %s", r->fail == OB_TIMEOUT ? "timed out" :
		    r->fail == OB_TOO_LARGE ? "answer too large" :
		    r->fail == OB_CONNECT ? "cannot connect" : "transfer failed",
		    r->error != NULL ? r->error : "");
		return;
	}
	if (r->status == 301 || r->status == 302 || r->status == 303 ||
	    r->status == 307 || r->status == 308) {
		if (s->redirects >= KEYFETCH_MAX_REDIRECTS) {
			kf_failed(s, "more than %d redirects", KEYFETCH_MAX_REDIRECTS);
			return;
		}
		if (r->location == NULL ||
		    (next = kf_resolve(s->url, r->location)) == NULL) {
			kf_failed(s, "HTTP %ld without a usable Location", r->status);
			return;
		}
		if (!kf_origin(next, origin, sizeof(origin)) ||
		    strcmp(origin, s->origin) != 0) {
			free(next);
			kf_failed(s, "redirect off %s refused", s->origin);
			return;
		}
		s->redirects++;
		kf_request(s, next);
		free(next);
		return;
	}
	if (r->status != 200) {
		kf_failed(s, "HTTP status %ld", r->status);
		return;
	}
	if (s->stage == KF_JWKS) {
		kf_loaded(s, r);
		return;
	}
	next = NULL;
	if ((rc = oidc_discovery_parse(r->body, r->body_len, s->iss, &next, err,
	    sizeof(err))) != 0) {
		kf_failed(s, "%s", err);
		return;
	}
	free(s->discovered);
	s->discovered = next;
	s->stage = KF_JWKS;
	s->redirects = 0;
	if (!kf_origin(next, s->origin, sizeof(s->origin))) {
		kf_failed(s, "jwks_uri is not an https URL without credentials");
		return;
	}
	kf_request(s, next);
}

/* Reads the bearer token: a header line in secure memory, or NULL. */
static char *
kf_auth_header(struct kf_source *s, char *err, size_t errlen)
{
	static const char pre[] = "Authorization: Bearer ";
	char *tok = NULL, *h;
	size_t n;

	if (cg_file_read_token(s->bearer_file, CG_FILE_FOLLOW | CG_FILE_NO_OTHERS_WRITE,
	    KF_TOKEN_MAX, &tok, NULL, err, errlen) != 0)
		return NULL;
	n = sizeof(pre) + strlen(tok);
	if ((h = secmem_alloc(n)) != NULL)
		snprintf(h, n, "%s%s", pre, tok);
	else
		cg_errf(err, errlen, "out of memory");
	secmem_free(tok);
	return h;
}

/* Starts a GET of url in the current stage; failures end the fetch. */
static void
kf_request(struct kf_source *s, const char *url)
{
	const char *headers[2] = { "Accept: application/json", NULL };
	struct ob_request rq;
	char *auth = NULL, *copy, err[256], origin[KF_ORIGIN_MAX];
	int rc;

	if ((copy = strdup(url)) == NULL) {
		kf_failed(s, "out of memory");
		return;
	}
	free(s->url);
	s->url = copy;
	memset(&rq, 0, sizeof(rq));
	rq.method = "GET";
	rq.url = s->url;
	rq.headers = headers;
	rq.nheaders = 1;
	/* The bearer token goes to the configured origin only: never to a
	 * host a discovery document names. */
	if (s->bearer_file != NULL && kf_origin(s->url, origin, sizeof(origin)) &&
	    strcmp(origin, s->auth_origin) == 0) {
		if ((auth = kf_auth_header(s, err, sizeof(err))) == NULL) {
			kf_failed(s, "bearer_token_file: %s", err);
			return;
		}
		headers[1] = auth;
		rq.nheaders = 2;
	}
	rc = ob_request(s->http, &rq, kf_response, s, &s->call);
	secmem_free(auth);
	if (rc != 0)
		kf_failed(s, "cannot start the request: %s", cg_strerror(rc));
}

/* Starts a fetch: the discovery document first, unless the issuer names
 * its jwks_uri, or a wish can use the jwks_uri found last time. */
static void
kf_fetch(struct kf_source *s, bool by_wish)
{
	char *url;

	if (s->call != NULL)
		return;
	evtimer_del(s->timer);
	s->fetch = policy_keyring_fetch_start(s->ring);
	s->redirects = 0;
	if (s->jwks_uri != NULL || (by_wish && s->discovered != NULL)) {
		s->stage = KF_JWKS;
		url = strdup(s->jwks_uri != NULL ? s->jwks_uri : s->discovered);
	} else {
		s->stage = KF_DISCOVERY;
		url = kf_discovery_url(s->iss);
	}
	if (url == NULL) {
		kf_failed(s, "out of memory");
		return;
	}
	if (!kf_origin(url, s->origin, sizeof(s->origin))) {
		free(url);	/* not logged: it may carry credentials */
		kf_failed(s, "not an https URL without credentials");
		return;
	}
	kf_request(s, url);
	free(url);
}

static void
kf_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct kf_source *s = arg;
	int64_t now = cg_mono_ms();

	(void)fd;
	(void)what;
	if (kf_expire(s, now))
		kf_notify(s);
	if (now >= s->next_ms)
		kf_fetch(s, false);
	else
		kf_schedule(s);
}

/* Arms the timer for the next fetch, or the set's expiry if sooner. */
static void
kf_schedule(struct kf_source *s)
{
	int64_t now = cg_mono_ms(), at = s->next_ms;
	struct timeval tv;

	if (s->call != NULL)
		return;
	if (s->st.loaded && s->last_ok_ms >= 0 && s->last_ok_ms + s->max_age_ms < at)
		at = s->last_ok_ms + s->max_age_ms;
	tv = cg_ms_tv(at > now ? at - now : 0);
	evtimer_add(s->timer, &tv);
}

/* A worker's wish: fetch now, or answer at once when the rate limit says
 * no; with a fetch in flight, the same once it ended. */
static void
kf_wish(struct kf_source *s)
{
	int64_t now = cg_mono_ms();

	if (s->call != NULL) {
		s->wish = true;
		return;
	}
	if (s->last_kid_ms >= 0 && now - s->last_kid_ms < s->kid_ms) {
		s->st.kid_limited++;
		policy_keyring_refuse(s->ring);
		kf_notify(s);
		return;
	}
	s->last_kid_ms = now;
	s->st.kid_fetches++;
	kf_fetch(s, true);
}

static void
kf_wake_cb(evutil_socket_t fd, short what, void *arg)
{
	struct keyfetch *kf = arg;
	struct kf_source *s;
	uint64_t v;

	(void)what;
	while (read(fd, &v, sizeof(v)) == -1 && errno == EINTR)
		;
	LIST_FOREACH(s, &kf->sources, link)
		if (policy_keyring_take_want(s->ring))
			kf_wish(s);
}

/* Any thread: a ring has a wish. */
static void
kf_waker(void *arg)
{
	struct keyfetch *kf = arg;
	uint64_t one = 1;

	while (write(kf->efd, &one, sizeof(one)) == -1 && errno == EINTR)
		;
}

/* ------------------------------------------------------------------ */
/* Sources                                                             */
/* ------------------------------------------------------------------ */

static void
kf_source_free(struct kf_source *s)
{
	if (s == NULL)
		return;
	ob_client_free(s->http);	/* no callback after this */
	s->call = NULL;
	if (s->ring != NULL) {
		policy_keyring_set_waker(s->ring, NULL, NULL);
		/* Callers waiting for this source get their answer. */
		policy_keyring_refuse(s->ring);
		policy_keyring_unref(s->ring);
	}
	if (s->timer != NULL)
		event_free(s->timer);
	free(s->spec);
	free(s->name);
	free(s->iss);
	free(s->jwks_uri);
	free(s->bearer_file);
	free(s->auth_origin);
	free(s->url);
	free(s->discovered);
	free(s);
}

/* Every setting that makes a source fetch its way, in one string. */
static char *
kf_spec(const struct policy_issuer *is)
{
	char *out = NULL;

	if (asprintf(&out, "%s\n%s\n%s\n%s\n%lld %lld %lld %lld %lld",
	    is->iss != NULL ? is->iss : "", is->jwks_uri != NULL ? is->jwks_uri : "",
	    is->ca_file != NULL ? is->ca_file : "",
	    is->bearer_token_file != NULL ? is->bearer_token_file : "",
	    (long long)is->refresh_min_ms, (long long)is->refresh_max_ms,
	    (long long)is->max_key_age_ms, (long long)is->kid_refetch_ms,
	    (long long)is->fetch_timeout_ms) < 0)
		return NULL;
	return out;
}

static char *
kf_strdup_or_null(const char *s)
{
	return s != NULL && s[0] != '\0' ? strdup(s) : NULL;
}

static struct kf_source *
kf_source_new(struct keyfetch *kf, const struct policy_issuer *is, char *spec)
{
	struct ob_client_opts o;
	struct kf_source *s;
	char origin[KF_ORIGIN_MAX];

	if ((s = calloc(1, sizeof(*s))) == NULL) {
		free(spec);
		return NULL;
	}
	s->kf = kf;
	s->spec = spec;
	s->last_ok_ms = -1;
	s->last_kid_ms = -1;
	s->refresh_min_ms = is->refresh_min_ms;
	s->refresh_max_ms = is->refresh_max_ms > is->refresh_min_ms ? is->refresh_max_ms :
	    is->refresh_min_ms;
	s->max_age_ms = is->max_key_age_ms;
	s->kid_ms = is->kid_refetch_ms;
	s->timeout_ms = is->fetch_timeout_ms > 0 ? is->fetch_timeout_ms : 10000;
	s->st.age_ms = -1;
	s->name = strdup(is->name != NULL ? is->name : "-");
	s->iss = strdup(is->iss != NULL ? is->iss : "");
	s->jwks_uri = kf_strdup_or_null(is->jwks_uri);
	s->bearer_file = kf_strdup_or_null(is->bearer_token_file);
	memset(&o, 0, sizeof(o));
	o.ca_file = is->ca_file != NULL && is->ca_file[0] != '\0' ? is->ca_file : NULL;
	o.connect_timeout_ms = s->timeout_ms;
	o.timeout_ms = s->timeout_ms;
	o.max_response = JWKS_MAX_BYTES;
	origin[0] = '\0';
	(void)kf_origin(s->jwks_uri != NULL ? s->jwks_uri : s->iss, origin, sizeof(origin));
	if (s->name == NULL || s->iss == NULL ||
	    (is->jwks_uri != NULL && is->jwks_uri[0] != '\0' && s->jwks_uri == NULL) ||
	    (is->bearer_token_file != NULL && is->bearer_token_file[0] != '\0' &&
	    s->bearer_file == NULL) || (s->auth_origin = strdup(origin)) == NULL ||
	    (s->timer = evtimer_new(kf->base, kf_timer_cb, s)) == NULL ||
	    (s->ring = policy_keyring_new(NULL)) == NULL ||
	    ob_client_new(kf->base, &o, &s->http) != 0) {
		kf_source_free(s);
		return NULL;
	}
	policy_keyring_set_waker(s->ring, kf_waker, kf);
	return s;
}

int
keyfetch_attach(struct keyfetch *kf, struct policy_issuer *const *issuers, size_t n,
    char *err, size_t errlen)
{
	struct kf_source *s;
	char *spec;
	size_t i;

	for (i = 0; i < n; i++) {
		struct policy_issuer *is = issuers[i];

		if (is == NULL || !keyfetch_fetched(is) || is->ring != NULL)
			continue;
		if ((spec = kf_spec(is)) == NULL)
			goto nomem;
		LIST_FOREACH(s, &kf->sources, link)
			if (strcmp(s->spec, spec) == 0)
				break;
		if (s != NULL)
			free(spec);
		else {
			if ((s = kf_source_new(kf, is, spec)) == NULL)
				goto nomem;
			LIST_INSERT_HEAD(&kf->sources, s, link);
			kf->nsources++;
			kf_fetch(s, false);
		}
		is->ring = policy_keyring_ref(s->ring);
	}
	return 0;
 nomem:
	cg_errf(err, errlen, "out of memory");
	return CG_ERR_NOMEM;
}

void
keyfetch_prune(struct keyfetch *kf, struct policy_issuer *const *issuers, size_t n)
{
	struct kf_source *s, *next;
	size_t i;

	LIST_FOREACH(s, &kf->sources, link) {
		s->used = false;
		for (i = 0; i < n && !s->used; i++)
			s->used = issuers[i] != NULL && issuers[i]->ring == s->ring;
	}
	for (s = LIST_FIRST(&kf->sources); s != NULL; s = next) {
		next = LIST_NEXT(s, link);
		if (s->used)
			continue;
		LIST_REMOVE(s, link);
		kf->nsources--;
		kf_source_free(s);
		if (kf->notify != NULL)
			kf->notify(kf->notify_arg);
	}
}

int
keyfetch_new(struct event_base *base, void (*notify)(void *), void *arg,
    struct keyfetch **out)
{
	struct keyfetch *kf;

	*out = NULL;
	if ((kf = calloc(1, sizeof(*kf))) == NULL)
		return CG_ERR_NOMEM;
	kf->base = base;
	kf->notify = notify;
	kf->notify_arg = arg;
	LIST_INIT(&kf->sources);
	if ((kf->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1) {
		free(kf);
		return CG_ERR_IO;
	}
	if ((kf->wake = event_new(base, kf->efd, EV_READ | EV_PERSIST, kf_wake_cb, kf)) == NULL ||
	    event_add(kf->wake, NULL) != 0) {
		keyfetch_free(kf);
		return CG_ERR_NOMEM;
	}
	*out = kf;
	return 0;
}

void
keyfetch_free(struct keyfetch *kf)
{
	struct kf_source *s;

	if (kf == NULL)
		return;
	while ((s = LIST_FIRST(&kf->sources)) != NULL) {
		LIST_REMOVE(s, link);
		kf_source_free(s);
	}
	if (kf->wake != NULL)
		event_free(kf->wake);
	close(kf->efd);
	free(kf);
}

size_t
keyfetch_count(const struct keyfetch *kf)
{
	return kf == NULL ? 0 : kf->nsources;
}

bool
keyfetch_stats(const struct keyfetch *kf, size_t i, struct keyfetch_stats *st)
{
	const struct kf_source *s;

	if (kf == NULL)
		return false;
	LIST_FOREACH(s, &kf->sources, link) {
		if (i-- > 0)
			continue;
		*st = s->st;
		st->issuer = s->name;
		st->age_ms = s->last_ok_ms >= 0 ? cg_mono_ms() - s->last_ok_ms : -1;
		st->last_error = s->last_error;
		return true;
	}
	return false;
}

bool
keyfetch_ready(const struct keyfetch *kf, struct policy_issuer *const *issuers,
    size_t n, char *why, size_t whylen)
{
	const struct kf_source *s;
	size_t i;

	for (i = 0; kf != NULL && i < n; i++) {
		if (issuers[i] == NULL || !keyfetch_fetched(issuers[i]))
			continue;
		LIST_FOREACH(s, &kf->sources, link)
			if (s->ring == issuers[i]->ring)
				break;
		if (s == NULL || s->st.loaded)
			continue;
		snprintf(why, whylen, "issuer %s: keys %s%s%s", s->name,
		    s->st.ever ? "older than max_key_age" : "not fetched yet",
		    s->last_error[0] != '\0' ? ": " : "", s->last_error);
		return false;
	}
	return true;
}
