/*
 * keyfetch.h: the control thread's fetcher of issuers' key sets.
 *
 * An issuer without a jwks_file has its keys fetched over HTTPS: from its
 * jwks_uri, or from the jwks_uri its OpenID Connect discovery document
 * names (<issuer>/.well-known/openid-configuration).  One source per
 * distinct way of fetching (URLs, CA, bearer token file, times), shared
 * by every issuer and configuration generation that fetches the same way,
 * with one key ring (policy.h) the workers read.  A source:
 *   - fetches at start, then again when Cache-Control says the keys go
 *     stale, bounded by the issuer's refresh_min and refresh_max;
 *   - fetches at once when a worker asks (a token named a key the ring
 *     lacks), at most once per kid_refetch interval; every wish is
 *     answered, by a fetch or by the rate limit, so that no caller waits
 *     longer than one fetch;
 *   - publishes a set only when it differs from the current one;
 *   - keeps the last good set through failed fetches (retried with
 *     backoff) for max_key_age after its last good fetch, then drops it;
 *   - follows a redirect only to the same scheme, host and port as the
 *     URL it fetched, at most KEYFETCH_MAX_REDIRECTS times, and sends the
 *     bearer token only to the origin of the configured URL;
 *   - bounds every fetch by fetch_timeout and the answer by the JWKS size
 *     limit.
 * Runs on one event base (the control thread's); only the rings' wish
 * path reaches it from other threads, through an eventfd.
 */
#ifndef CG_POLICY_KEYFETCH_H
#define CG_POLICY_KEYFETCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "policy/policy.h"

struct event_base;
struct keyfetch;

#define KEYFETCH_MAX_REDIRECTS	3
#define KEYFETCH_RETRY_MIN_MS	1000	/* the first retry after a failure */

/*
 * A fetcher on base.  notify(arg) runs on base's thread whenever a ring
 * got a new set, lost its set, or had a wish answered: the workers are
 * to look at their waiting callers.  0, CG_ERR_NOMEM or CG_ERR_IO.
 */
int keyfetch_new(struct event_base *base, void (*notify)(void *), void *arg,
    struct keyfetch **out) CG_WUR;
/* Stops every fetch and answers every wish; NULL-safe.  The rings live
 * on with their holders. */
void keyfetch_free(struct keyfetch *kf);

/* Whether the issuer's keys are fetched (no jwks_file). */
bool keyfetch_fetched(const struct policy_issuer *is);

/*
 * Gives each fetched issuer of issuers[] its source's ring (is->ring, a
 * new reference): an existing source that fetches the same way, with its
 * keys and schedule, or a new one, whose first fetch starts now.  Returns
 * 0 or CG_ERR_NOMEM (with err set); issuers already given a ring are left
 * as they are.
 */
int keyfetch_attach(struct keyfetch *kf, struct policy_issuer *const *issuers, size_t n,
    char *err, size_t errlen) CG_WUR;
/* Stops the sources that no issuer of issuers[] uses (their waiting
 * callers are answered). */
void keyfetch_prune(struct keyfetch *kf, struct policy_issuer *const *issuers, size_t n);

/* One source, for metrics and readiness (control thread only). */
struct keyfetch_stats {
	const char *issuer;	/* the name of the first issuer that uses it */
	bool loaded;		/* holds a key set now */
	bool ever;		/* a fetch ever succeeded */
	int64_t age_ms;		/* since the last good fetch; -1 if none */
	size_t nkeys;
	uint64_t fetches_ok;
	uint64_t fetches_failed;
	uint64_t kid_fetches;	/* fetches a wish started */
	uint64_t kid_limited;	/* wishes the rate limit answered */
	uint64_t changes;	/* new sets published */
	const char *last_error;	/* "" when the last fetch succeeded */
};
size_t keyfetch_count(const struct keyfetch *kf);
/* Fills *st for source i (< keyfetch_count()); false past the end. */
bool keyfetch_stats(const struct keyfetch *kf, size_t i, struct keyfetch_stats *st);

/*
 * Whether every fetched issuer of issuers[] holds keys; if not, false
 * and a one-line reason in why: the first issuer whose keys were never
 * loaded or were dropped for age, with the last error.
 */
bool keyfetch_ready(const struct keyfetch *kf, struct policy_issuer *const *issuers,
    size_t n, char *why, size_t whylen);

#endif
