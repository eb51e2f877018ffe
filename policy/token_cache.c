/*
 * token_cache.c: a worker's cache of verified tokens (see policy.h), so
 * that a repeated bearer token costs one SHA-256 and a hash lookup instead
 * of a signature check.
 *
 * It owns the entries: their digest keys, one reference to each cached
 * identity, the hash table, the LRU list and the expiry heap.  It verifies
 * nothing itself: a miss goes to jwt_verify(), and a hit only repeats the
 * time-dependent claim checks, the same way jwt.c does them.  It never
 * stores a token, and it must not touch an issuer or key set except
 * through the issuer array the caller hands it on that very call.
 *
 * Structures, all intrusive in struct tc_entry:
 *   - a chained hash table indexed by the first bytes of the digest (the
 *     digest is uniform and only verified tokens are inserted, so chains
 *     stay short whatever callers send); lookups compare all 32 bytes;
 *   - a doubly linked list from most to least recently used, for eviction;
 *   - a binary min-heap on exp, so that expired entries leave first and
 *     never outlive their token's exp.
 * A full cache that almost never answers (a stream of tokens each seen
 * once) admits only some of its misses: inserting every one would cost an
 * insertion and an eviction per request and flush the entries that still
 * serve.  A token that comes back is admitted within a few of its misses,
 * and hits end the thrashing at the next window.
 * One cache belongs to one thread; nothing here locks.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "common.h"
#include "policy.h"

#define TC_DIGEST_LEN	32	/* SHA-256 */
#define TC_MIN_BUCKETS	16

/* Admission when the cache thrashes: lookups are counted in windows of
 * TC_WINDOW; a full cache that answered fewer than one in TC_THRASH of a
 * window's lookups takes only one in TC_ADMIT of its next misses. */
#define TC_WINDOW	1024
#define TC_THRASH	64
#define TC_ADMIT	16

/* The clamps of jwt.c's claim checks, so that a hit decides exactly as a
 * full verification would; keep them equal to JWT_TIME_LIMIT and
 * JWT_SPAN_LIMIT there. */
#define TC_TIME_LIMIT	((int64_t)1 << 61)
#define TC_SPAN_LIMIT	((int64_t)1 << 40)

struct tc_entry {
	unsigned char key[TC_DIGEST_LEN];	/* SHA-256 of the token; wiped */
	struct policy_identity *id;	/* the cache's reference */
	const struct policy_issuer *issuer;	/* verified it; compared as a
						   pointer only, never read */
	const struct jwks *keys;	/* the set that verified it (the identity
					   holds it); compared only */
	bool has_nbf;		/* the token carries nbf / iat: the */
	bool has_iat;		/* identity holds 0 when it does not */
	struct tc_entry *hnext;	/* bucket chain */
	struct tc_entry *newer;	/* LRU list, towards the most recent */
	struct tc_entry *older;	/* and towards the least recent */
	size_t heap_idx;	/* position in tc->heap */
};

struct token_cache {
	struct tc_entry **buckets;
	size_t mask;		/* buckets - 1; a power of two less one */
	struct tc_entry **heap;	/* min-heap on id->exp, max entries */
	size_t n;		/* entries held */
	size_t max;
	struct tc_entry *newest;
	struct tc_entry *oldest;
	EVP_MD *sha256;		/* fetched once, not per token */
	EVP_MD_CTX *mdctx;
	uint64_t hits;
	uint64_t misses;
	unsigned win_lookups;	/* in the current window */
	unsigned win_hits;
	bool thrashing;		/* the last window was full and almost all misses */
	unsigned skipped;	/* misses not admitted since the last admitted */
};

static int64_t
clamp64(int64_t v, int64_t lo, int64_t hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

/* ------------------------------------------------------------------ */
/* Expiry heap                                                         */
/* ------------------------------------------------------------------ */

static int64_t
heap_exp(const struct token_cache *tc, size_t i)
{
	return tc->heap[i]->id->exp;
}

static void
heap_set(struct token_cache *tc, size_t i, struct tc_entry *e)
{
	tc->heap[i] = e;
	e->heap_idx = i;
}

static void
heap_up(struct token_cache *tc, size_t i)
{
	struct tc_entry *e = tc->heap[i];

	while (i > 0) {
		size_t parent = (i - 1) / 2;

		if (tc->heap[parent]->id->exp <= e->id->exp)
			break;
		heap_set(tc, i, tc->heap[parent]);
		i = parent;
	}
	heap_set(tc, i, e);
}

static void
heap_down(struct token_cache *tc, size_t i)
{
	struct tc_entry *e = tc->heap[i];

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= tc->n)
			break;
		if (c + 1 < tc->n && heap_exp(tc, c + 1) < heap_exp(tc, c))
			c++;
		if (e->id->exp <= heap_exp(tc, c))
			break;
		heap_set(tc, i, tc->heap[c]);
		i = c;
	}
	heap_set(tc, i, e);
}

/* ------------------------------------------------------------------ */
/* Entries                                                             */
/* ------------------------------------------------------------------ */

static size_t
bucket_of(const struct token_cache *tc, const unsigned char *key)
{
	uint64_t h;

	memcpy(&h, key, sizeof(h));
	return (size_t)h & tc->mask;
}

static struct tc_entry *
lookup(const struct token_cache *tc, const unsigned char *key)
{
	struct tc_entry *e;

	for (e = tc->buckets[bucket_of(tc, key)]; e != NULL; e = e->hnext) {
		if (cg_ct_equal(e->key, key, TC_DIGEST_LEN))
			return e;
	}
	return NULL;
}

static void
lru_unlink(struct token_cache *tc, struct tc_entry *e)
{
	if (e->newer != NULL)
		e->newer->older = e->older;
	else
		tc->newest = e->older;
	if (e->older != NULL)
		e->older->newer = e->newer;
	else
		tc->oldest = e->newer;
	e->newer = e->older = NULL;
}

static void
lru_push_newest(struct token_cache *tc, struct tc_entry *e)
{
	e->newer = NULL;
	e->older = tc->newest;
	if (tc->newest != NULL)
		tc->newest->newer = e;
	else
		tc->oldest = e;
	tc->newest = e;
}

/* Takes e out of every structure and frees it with its reference. */
static void
entry_drop(struct token_cache *tc, struct tc_entry *e)
{
	struct tc_entry **pp;
	size_t i = e->heap_idx;

	for (pp = &tc->buckets[bucket_of(tc, e->key)]; *pp != e; pp = &(*pp)->hnext) {
		if (*pp == NULL)
			abort();	/* an entry missing from its bucket */
	}
	*pp = e->hnext;
	lru_unlink(tc, e);

	if (i >= tc->n || tc->heap[i] != e)
		abort();
	tc->n--;
	if (i != tc->n) {
		/* The last leaf fills the hole and moves whichever way it must. */
		struct tc_entry *m = tc->heap[tc->n];

		heap_set(tc, i, m);
		heap_down(tc, i);
		heap_up(tc, m->heap_idx);
	}
	tc->heap[tc->n] = NULL;

	policy_identity_free(e->id);
	cg_wipe(e, sizeof(*e));	/* the digest is derived from a bearer token */
	free(e);
}

/*
 * Adds an entry for key holding a new reference to id.  Makes room first:
 * an expired entry if there is one, else the least recently used.  A
 * failed allocation only means the token is not cached.
 */
static void
entry_insert(struct token_cache *tc, const unsigned char *key,
    struct policy_identity *id, int64_t now_s)
{
	struct tc_entry *e;
	size_t b;

	if (tc->n == tc->max) {
		if (heap_exp(tc, 0) <= now_s)
			entry_drop(tc, tc->heap[0]);
		else
			entry_drop(tc, tc->oldest);
	}
	if ((e = calloc(1, sizeof(*e))) == NULL)
		return;
	memcpy(e->key, key, TC_DIGEST_LEN);
	e->id = policy_identity_ref(id);
	e->issuer = id->issuer;
	e->keys = id->keys;
	e->has_nbf = json_object_get(id->claims, "nbf") != NULL;
	e->has_iat = json_object_get(id->claims, "iat") != NULL;

	b = bucket_of(tc, key);
	e->hnext = tc->buckets[b];
	tc->buckets[b] = e;
	lru_push_newest(tc, e);
	heap_set(tc, tc->n, e);
	tc->n++;
	heap_up(tc, e->heap_idx);
}

/*
 * Whether e may answer for this issuer array: its issuer must be the one
 * jwt_verify() would pick for the token's iss (the first with that iss),
 * with the key set it had when it verified the token.
 */
static const struct policy_issuer *
entry_issuer(const struct tc_entry *e, struct policy_issuer *const *issuers,
    size_t nissuers)
{
	const char *iss = e->id->iss;
	size_t i;

	for (i = 0; i < nissuers; i++) {
		const struct policy_issuer *is = issuers[i];

		if (is == NULL)
			continue;
		if (is == e->issuer)
			return policy_keyring_current(is->ring) == e->keys ? is : NULL;
		if (is->iss != NULL && iss != NULL && strcmp(is->iss, iss) == 0)
			return NULL;
	}
	return NULL;
}

/*
 * The time-dependent checks of jwt.c's check_claims(), in its order and
 * with its reasons, against the live issuer's skew and lifetime.
 */
static int
recheck_times(const struct tc_entry *e, const struct policy_issuer *is,
    int64_t now, const char **reason)
{
	const struct policy_identity *id = e->id;
	int64_t skew, life;

	skew = clamp64(is->clock_skew_s, 0, TC_SPAN_LIMIT);
	life = clamp64(is->max_lifetime_s, 0, TC_SPAN_LIMIT);
	now = clamp64(now, -TC_TIME_LIMIT, TC_TIME_LIMIT);

	if (now >= id->exp + skew) {
		*reason = "token expired";
		return CG_ERR_EXPIRED;
	}
	if (e->has_nbf && now + skew < id->nbf) {
		*reason = "token not yet valid";
		return CG_ERR_EXPIRED;
	}
	if (e->has_iat && id->iat > now + skew) {
		*reason = "iat in the future";
		return CG_ERR_VERIFY;
	}
	if (id->exp - (e->has_iat ? id->iat : now) > life) {
		*reason = "token lifetime too long";
		return CG_ERR_VERIFY;
	}
	return 0;
}

/* Counts a lookup; at the end of a window, decides whether the cache
 * thrashes. */
static void
window_count(struct token_cache *tc)
{
	if (++tc->win_lookups < TC_WINDOW)
		return;
	tc->thrashing = tc->n == tc->max &&
	    (uint64_t)tc->win_hits * TC_THRASH < tc->win_lookups;
	tc->win_lookups = 0;
	tc->win_hits = 0;
}

/* Whether a verified token that missed goes into the cache. */
static bool
admit(struct token_cache *tc)
{
	if (!tc->thrashing || tc->n < tc->max)
		return true;
	if (++tc->skipped < TC_ADMIT)
		return false;
	tc->skipped = 0;
	return true;
}

static bool
digest(struct token_cache *tc, const char *token, size_t len, unsigned char *md)
{
	unsigned int mdlen = 0;

	return EVP_DigestInit_ex2(tc->mdctx, tc->sha256, NULL) == 1 &&
	    EVP_DigestUpdate(tc->mdctx, token, len) == 1 &&
	    EVP_DigestFinal_ex(tc->mdctx, md, &mdlen) == 1 &&
	    mdlen == TC_DIGEST_LEN;
}

/* ------------------------------------------------------------------ */
/* Public                                                              */
/* ------------------------------------------------------------------ */

struct token_cache *
token_cache_new(size_t max_entries)
{
	struct token_cache *tc;
	size_t nb = TC_MIN_BUCKETS;

	if (max_entries == 0)
		return NULL;
	if (max_entries > TOKEN_CACHE_MAX_ENTRIES)
		max_entries = TOKEN_CACHE_MAX_ENTRIES;
	while (nb < max_entries)
		nb <<= 1;
	if ((tc = calloc(1, sizeof(*tc))) == NULL)
		return NULL;
	tc->max = max_entries;
	tc->mask = nb - 1;
	if ((tc->buckets = calloc(nb, sizeof(*tc->buckets))) == NULL ||
	    (tc->heap = calloc(max_entries, sizeof(*tc->heap))) == NULL ||
	    (tc->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL)) == NULL ||
	    (tc->mdctx = EVP_MD_CTX_new()) == NULL) {
		token_cache_free(tc);
		return NULL;
	}
	return tc;
}

void
token_cache_flush(struct token_cache *tc)
{
	if (tc == NULL)
		return;
	while (tc->oldest != NULL)
		entry_drop(tc, tc->oldest);
}

void
token_cache_free(struct token_cache *tc)
{
	if (tc == NULL)
		return;
	if (tc->buckets != NULL && tc->heap != NULL)
		token_cache_flush(tc);
	free(tc->buckets);
	free(tc->heap);
	EVP_MD_CTX_free(tc->mdctx);
	EVP_MD_free(tc->sha256);
	free(tc);
}

void
token_cache_forget_issuers(struct token_cache *tc,
    struct policy_issuer *const *issuers, size_t nissuers)
{
	struct tc_entry *e, *next;
	size_t i;

	if (tc == NULL)
		return;
	for (e = tc->oldest; e != NULL; e = next) {
		next = e->newer;
		for (i = 0; i < nissuers; i++) {
			if (issuers[i] != NULL && issuers[i] == e->issuer) {
				entry_drop(tc, e);
				break;
			}
		}
	}
}

void
token_cache_expire(struct token_cache *tc, int64_t now_s)
{
	if (tc == NULL)
		return;
	while (tc->n > 0 && heap_exp(tc, 0) <= now_s)
		entry_drop(tc, tc->heap[0]);
}

int
token_cache_verify(struct token_cache *tc, struct policy_issuer *const *issuers,
    size_t nissuers, const char *token, size_t len, int64_t now_s,
    size_t max_len, struct policy_identity **out, const char **reason,
    bool *hit, const struct policy_issuer **nokey)
{
	unsigned char md[TC_DIGEST_LEN];
	const struct policy_issuer *is;
	struct policy_identity *id = NULL;
	struct tc_entry *e;
	int r;

	*out = NULL;
	*reason = "internal error";
	if (hit != NULL)
		*hit = false;
	if (nokey != NULL)
		*nokey = NULL;
	if (tc == NULL || token == NULL)
		return jwt_verify(issuers, nissuers, token, len, now_s, max_len,
		    out, reason, nokey);
	if (len > max_len) {
		/* Before hashing: an oversized token costs nothing. */
		*reason = "token too large";
		return CG_ERR_LIMIT;
	}

	/* Entries die at their token's exp, whether or not they are asked
	 * for again; in the skew grace after exp the token verifies in full. */
	token_cache_expire(tc, now_s);

	if (!digest(tc, token, len, md)) {
		/* Cannot key it: verify without the cache. */
		tc->misses++;
		return jwt_verify(issuers, nissuers, token, len, now_s, max_len,
		    out, reason, nokey);
	}

	if ((e = lookup(tc, md)) != NULL) {
		if ((is = entry_issuer(e, issuers, nissuers)) == NULL) {
			/* Other keys or another generation: stale. */
			entry_drop(tc, e);
		} else {
			tc->hits++;
			tc->win_hits++;
			window_count(tc);
			if (hit != NULL)
				*hit = true;
			if ((r = recheck_times(e, is, now_s, reason)) != 0) {
				entry_drop(tc, e);
				goto out;
			}
			lru_unlink(tc, e);
			lru_push_newest(tc, e);
			*out = policy_identity_ref(e->id);
			*reason = "verified";
			r = 0;
			goto out;
		}
	}

	tc->misses++;
	window_count(tc);
	if ((r = jwt_verify(issuers, nissuers, token, len, now_s, max_len, &id,
	    reason, nokey)) != 0)
		goto out;
	if (now_s < id->exp && id->issuer != NULL && id->keys != NULL && admit(tc))
		entry_insert(tc, md, id, now_s);
	*out = id;
	r = 0;
 out:
	cg_wipe(md, sizeof(md));
	return r;
}

void
token_cache_stats(const struct token_cache *tc, uint64_t *hits,
    uint64_t *misses, size_t *entries)
{
	if (hits != NULL)
		*hits = tc != NULL ? tc->hits : 0;
	if (misses != NULL)
		*misses = tc != NULL ? tc->misses : 0;
	if (entries != NULL)
		*entries = tc != NULL ? tc->n : 0;
}
