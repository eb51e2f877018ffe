/*
 * test_token_cache.c: the verified-token cache with tokens signed at test
 * time: hits and misses, identity references, expiry at exp and exp+skew,
 * nbf, key changes, eviction order, failures and size limits that are
 * never cached, and a model check of many lookups against a plain list.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/unit/unit.h"
#include "common.h"
#include "policy/policy.h"
#include "tests/unit/jwt_sign.h"

#define NOW	1800000000LL
#define ISS_A	"https://issuer.example"
#define ISS_B	"https://b.example"
#define AUD	"api://credgate"
#define SKEW	60
#define LIFE	3600
#define EXP	(NOW + 300)

static EVP_PKEY *k_a, *k_b;
static char *jwks_a, *jwks_b;
static struct policy_issuer *iss_a, *iss_b;
static struct policy_issuer *issuers[2];

static struct policy_issuer *
issuer_new(const char *iss, const char *jwks_json)
{
	struct policy_issuer *is = calloc(1, sizeof(*is));
	struct jwks *ks;
	char err[256];

	assert_non_null(is);
	is->name = strdup(iss);
	is->iss = strdup(iss);
	is->naudiences = 1;
	is->audiences = calloc(1, sizeof(char *));
	assert_non_null(is->audiences);
	is->audiences[0] = strdup(AUD);
	is->algs = JWT_ALG_ALL;
	is->max_lifetime_s = LIFE;
	is->clock_skew_s = SKEW;
	if (jwks_load_mem(jwks_json, strlen(jwks_json), &ks, err,
	    sizeof(err)) != 0)
		fail_msg("jwks: %s", err);
	assert_non_null(is->ring = policy_keyring_new(ks));
	return is;
}

static char *
jwks_of(EVP_PKEY *k, const char *kid)
{
	char *j = ts_jwk(k, kid, NULL, NULL);
	char *set = ts_fmt("{\"keys\":[%s]}", j);

	free(j);
	return set;
}

static int
setup(void **state)
{
	k_a = ts_keygen("P-256", 0);
	k_b = ts_keygen("P-256", 0);
	jwks_a = jwks_of(k_a, "a1");
	jwks_b = jwks_of(k_b, "b1");
	iss_a = issuer_new(ISS_A, jwks_a);
	iss_b = issuer_new(ISS_B, jwks_b);
	issuers[0] = iss_a;
	issuers[1] = iss_b;
	(void)state;
	return 0;
}

static int
teardown(void **state)
{
	policy_issuer_free(iss_a);
	policy_issuer_free(iss_b);
	free(jwks_a);
	free(jwks_b);
	EVP_PKEY_free(k_a);
	EVP_PKEY_free(k_b);
	(void)state;
	return 0;
}

/* A token from issuer A (ES256, kid a1) with the given times and jti.
 * nbf < 0 leaves nbf out. */
static char *
tok_times(const char *jti, int64_t iat, int64_t exp, int64_t nbf)
{
	char *p, *t, nbfs[48] = "";

	if (nbf >= 0)
		snprintf(nbfs, sizeof(nbfs), ",\"nbf\":%lld", (long long)nbf);
	p = ts_fmt("{\"iss\":\"%s\",\"sub\":\"svc-a\",\"aud\":\"%s\","
	    "\"iat\":%lld,\"exp\":%lld%s,\"jti\":\"%s\",\"team\":\"core\"}",
	    ISS_A, AUD, (long long)iat, (long long)exp, nbfs, jti);
	t = ts_token(k_a, "ES256", "{\"alg\":\"ES256\",\"kid\":\"a1\",\"typ\":\"JWT\"}", p);
	free(p);
	return t;
}

static char *
tok(const char *jti)
{
	return tok_times(jti, NOW - 10, EXP, -1);
}

/* The same from issuer B. */
static char *
tok_b(const char *jti)
{
	char *p, *t;

	p = ts_fmt("{\"iss\":\"%s\",\"sub\":\"svc-b\",\"aud\":\"%s\","
	    "\"iat\":%lld,\"exp\":%lld,\"jti\":\"%s\"}",
	    ISS_B, AUD, NOW - 10, EXP, jti);
	t = ts_token(k_b, "ES256", "{\"alg\":\"ES256\",\"kid\":\"b1\"}", p);
	free(p);
	return t;
}

struct res {
	int r;
	const char *reason;
	bool hit;
	struct policy_identity *id;
};

static struct res
cv_in(struct token_cache *tc, struct policy_issuer *const *is, size_t nis,
    const char *t, int64_t now, size_t max_len)
{
	struct res x = { 0, NULL, true, (struct policy_identity *)1 };

	x.r = token_cache_verify(tc, is, nis, t, strlen(t), now, max_len, &x.id,
	    &x.reason, &x.hit, NULL);
	assert_non_null(x.reason);
	if (x.r == 0)
		assert_non_null(x.id);
	else
		assert_null(x.id);
	return x;
}

static struct res
cv(struct token_cache *tc, const char *t, int64_t now)
{
	return cv_in(tc, issuers, 2, t, now, JWT_DEFAULT_MAX_LEN);
}

/* Verifies t at now, expecting success and hit or miss; drops the id. */
static void
expect_ok(struct token_cache *tc, const char *t, int64_t now, bool hit)
{
	struct res x = cv(tc, t, now);

	if (x.r != 0 || x.hit != hit)
		fail_msg("got %d \"%s\" hit=%d, want 0 hit=%d", x.r, x.reason,
		    x.hit, hit);
	policy_identity_free(x.id);
}

/* Expects the refusal jwt_verify() gives at the same time. */
static void
expect_fail(struct token_cache *tc, const char *t, int64_t now, bool hit)
{
	struct policy_identity *id = NULL;
	const char *why = NULL;
	struct res x;
	int want;

	want = jwt_verify(issuers, 2, t, strlen(t), now, JWT_DEFAULT_MAX_LEN,
	    &id, &why, NULL);
	assert_int_not_equal(want, 0);
	x = cv(tc, t, now);
	if (x.r != want || strcmp(x.reason, why) != 0 || x.hit != hit)
		fail_msg("got %d \"%s\" hit=%d, want %d \"%s\" hit=%d", x.r,
		    x.reason, x.hit, want, why, hit);
}

static void
expect_stats(struct token_cache *tc, uint64_t hits, uint64_t misses,
    size_t entries)
{
	uint64_t h, m;
	size_t n;

	token_cache_stats(tc, &h, &m, &n);
	if (h != hits || m != misses || n != entries)
		fail_msg("stats hits=%llu misses=%llu entries=%zu, want %llu %llu %zu",
		    (unsigned long long)h, (unsigned long long)m, n,
		    (unsigned long long)hits, (unsigned long long)misses, entries);
}

/* ------------------------------------------------------------------ */

static void
test_refcount(void **state)
{
	json_t *claims = json_pack("{s:s, s:s}", "iss", ISS_A, "sub", "x");
	struct policy_identity *id = NULL;

	assert_int_equal(policy_identity_from_claims(NULL, claims, &id), 0);
	json_decref(claims);
	assert_int_equal(id->refs, 1);
	assert_ptr_equal(policy_identity_ref(id), id);
	assert_int_equal(id->refs, 2);
	policy_identity_free(id);
	assert_int_equal(id->refs, 1);
	assert_string_equal(id->sub, "x");
	policy_identity_free(id);
	assert_null(policy_identity_ref(NULL));
	policy_identity_free(NULL);
	(void)state;
}

static void
test_miss_then_hit(void **state)
{
	struct token_cache *tc = token_cache_new(16);
	char *t = tok("t-1");
	struct res a, b, c;

	assert_non_null(tc);
	expect_stats(tc, 0, 0, 0);
	a = cv(tc, t, NOW);
	assert_int_equal(a.r, 0);
	assert_false(a.hit);
	assert_string_equal(a.reason, "verified");
	assert_int_equal(a.id->refs, 2);	/* the caller's and the cache's */
	expect_stats(tc, 0, 1, 1);

	b = cv(tc, t, NOW + 1);
	assert_int_equal(b.r, 0);
	assert_true(b.hit);
	assert_string_equal(b.reason, "verified");
	assert_ptr_equal(b.id, a.id);
	assert_int_equal(b.id->refs, 3);
	assert_ptr_equal(b.id->issuer, iss_a);
	assert_string_equal(b.id->sub, "svc-a");
	assert_string_equal(b.id->jti, "t-1");
	assert_int_equal(b.id->exp, EXP);
	assert_string_equal(b.id->alg, "ES256");
	assert_string_equal(b.id->kid, "a1");
	assert_string_equal(json_string_value(json_object_get(b.id->claims,
	    "team")), "core");
	expect_stats(tc, 1, 1, 1);
	policy_identity_free(a.id);
	policy_identity_free(b.id);

	/* A caller's reference outlives the cache. */
	c = cv(tc, t, NOW + 2);
	assert_true(c.hit);
	assert_int_equal(c.id->refs, 2);
	token_cache_free(tc);
	assert_int_equal(c.id->refs, 1);
	assert_string_equal(c.id->sub, "svc-a");
	assert_string_equal(json_string_value(json_object_get(c.id->claims,
	    "team")), "core");
	policy_identity_free(c.id);
	free(t);
	(void)state;
}

static void
test_expiry(void **state)
{
	struct token_cache *tc = token_cache_new(16);
	char *t = tok("t-exp");

	expect_ok(tc, t, NOW, false);
	expect_ok(tc, t, EXP - 1, true);
	expect_stats(tc, 1, 1, 1);
	/* At exp the entry is gone; the skew grace verifies in full and is
	 * not cached. */
	expect_ok(tc, t, EXP, false);
	expect_stats(tc, 1, 2, 0);
	expect_ok(tc, t, EXP + SKEW - 1, false);
	expect_stats(tc, 1, 3, 0);
	expect_fail(tc, t, EXP + SKEW, false);
	expect_fail(tc, t, EXP + SKEW + 1000, false);
	expect_stats(tc, 1, 5, 0);

	/* Straight from a cached entry to past exp + skew. */
	token_cache_flush(tc);
	expect_ok(tc, t, NOW, false);
	expect_stats(tc, 1, 6, 1);
	expect_fail(tc, t, EXP + SKEW, false);
	expect_stats(tc, 1, 7, 0);

	/* token_cache_expire() on its own. */
	expect_ok(tc, t, NOW, false);
	token_cache_expire(tc, EXP - 1);
	expect_stats(tc, 1, 8, 1);
	token_cache_expire(tc, EXP);
	expect_stats(tc, 1, 8, 0);

	/* A token verified in its grace is never cached. */
	expect_ok(tc, t, EXP + 5, false);
	expect_stats(tc, 1, 9, 0);
	token_cache_free(tc);
	free(t);
	(void)state;
}

static void
test_nbf(void **state)
{
	struct token_cache *tc = token_cache_new(16);
	char *t = tok_times("t-nbf", NOW + 100, NOW + 600, NOW + 100);

	/* Not yet valid: refused, not cached. */
	expect_fail(tc, t, NOW, false);
	expect_stats(tc, 0, 1, 0);
	expect_ok(tc, t, NOW + 100 - SKEW, false);
	expect_ok(tc, t, NOW + 200, true);
	expect_stats(tc, 1, 2, 1);
	/* The clock steps back: a hit that nbf refuses, and the entry goes. */
	expect_fail(tc, t, NOW + 100 - SKEW - 1, true);
	expect_stats(tc, 2, 2, 0);
	expect_fail(tc, t, NOW + 100 - SKEW - 1, false);
	expect_stats(tc, 2, 3, 0);
	token_cache_free(tc);
	free(t);

	/* Without nbf, iat is what a step back runs into. */
	tc = token_cache_new(16);
	t = tok_times("t-iat", NOW + 100, NOW + 600, -1);
	expect_ok(tc, t, NOW + 100, false);
	expect_fail(tc, t, NOW, true);
	expect_stats(tc, 1, 1, 0);
	token_cache_free(tc);
	free(t);
	(void)state;
}

static void
test_same_claims_other_token(void **state)
{
	struct token_cache *tc = token_cache_new(16);
	char *t1 = tok("same"), *t2 = tok("same");	/* ECDSA: new signature */

	assert_string_not_equal(t1, t2);
	expect_ok(tc, t1, NOW, false);
	expect_ok(tc, t2, NOW, false);
	expect_ok(tc, t1, NOW, true);
	expect_ok(tc, t2, NOW, true);
	expect_stats(tc, 2, 2, 2);

	/* A prefix or an extension of a cached token is another token. */
	t1[strlen(t1) - 1] = '\0';
	expect_fail(tc, t1, NOW, false);
	expect_stats(tc, 2, 3, 2);
	token_cache_free(tc);
	free(t1);
	free(t2);
	(void)state;
}

static void
test_lru(void **state)
{
	struct token_cache *tc = token_cache_new(3);
	char *t[5];
	size_t i;

	for (i = 0; i < 5; i++) {
		char jti[8];

		snprintf(jti, sizeof(jti), "l-%zu", i);
		t[i] = tok(jti);
	}
	expect_ok(tc, t[0], NOW, false);
	expect_ok(tc, t[1], NOW, false);
	expect_ok(tc, t[2], NOW, false);
	expect_ok(tc, t[0], NOW, true);		/* order now 0 2 1 */
	expect_ok(tc, t[3], NOW, false);	/* evicts 1 */
	expect_stats(tc, 1, 4, 3);
	expect_ok(tc, t[0], NOW, true);
	expect_ok(tc, t[2], NOW, true);
	expect_ok(tc, t[3], NOW, true);		/* order 3 2 0 */
	expect_ok(tc, t[1], NOW, false);	/* evicts 0 */
	expect_ok(tc, t[0], NOW, false);	/* evicts 2 */
	expect_ok(tc, t[3], NOW, true);
	expect_ok(tc, t[1], NOW, true);
	expect_ok(tc, t[0], NOW, true);
	expect_ok(tc, t[2], NOW, false);	/* evicts 3 */
	expect_stats(tc, 7, 7, 3);
	for (i = 0; i < 5; i++)
		free(t[i]);
	token_cache_free(tc);

	/* Expired entries leave before the least recently used. */
	tc = token_cache_new(3);
	t[0] = tok_times("e-0", NOW - 10, NOW + 100, -1);
	t[1] = tok("e-1");
	t[2] = tok("e-2");
	t[3] = tok("e-3");
	expect_ok(tc, t[1], NOW, false);	/* least recently used */
	expect_ok(tc, t[2], NOW, false);
	expect_ok(tc, t[0], NOW, false);
	expect_ok(tc, t[3], NOW + 100, false);
	expect_ok(tc, t[1], NOW + 100, true);
	expect_ok(tc, t[2], NOW + 100, true);
	expect_stats(tc, 2, 4, 3);
	for (i = 0; i < 4; i++)
		free(t[i]);
	token_cache_free(tc);

	/* One entry. */
	tc = token_cache_new(1);
	t[0] = tok("o-0");
	t[1] = tok("o-1");
	expect_ok(tc, t[0], NOW, false);
	expect_ok(tc, t[0], NOW, true);
	expect_ok(tc, t[1], NOW, false);
	expect_ok(tc, t[0], NOW, false);
	expect_stats(tc, 1, 3, 1);
	free(t[0]);
	free(t[1]);
	token_cache_free(tc);
	(void)state;
}

static void
test_disabled(void **state)
{
	char *t = tok("t-off");
	struct res x;
	int i;

	assert_null(token_cache_new(0));
	for (i = 0; i < 2; i++) {
		x = cv(NULL, t, NOW);
		assert_int_equal(x.r, 0);
		assert_false(x.hit);
		assert_int_equal(x.id->refs, 1);
		policy_identity_free(x.id);
	}
	expect_fail(NULL, t, EXP + SKEW, false);
	expect_stats(NULL, 0, 0, 0);
	token_cache_stats(NULL, NULL, NULL, NULL);
	token_cache_flush(NULL);
	token_cache_expire(NULL, NOW);
	token_cache_forget_issuers(NULL, issuers, 2);
	token_cache_free(NULL);

	/* hit may be NULL. */
	{
		struct token_cache *tc = token_cache_new(4);
		struct policy_identity *id = NULL;
		const char *why = NULL;

		for (i = 0; i < 2; i++) {
			assert_int_equal(token_cache_verify(tc, issuers, 2, t,
			    strlen(t), NOW, JWT_DEFAULT_MAX_LEN, &id, &why, NULL, NULL), 0);
			policy_identity_free(id);
		}
		expect_stats(tc, 1, 1, 1);
		token_cache_free(tc);
	}
	free(t);
	(void)state;
}

static void
test_keys_changed(void **state)
{
	struct token_cache *tc = token_cache_new(16);
	struct policy_issuer *a2 = issuer_new(ISS_A, jwks_a);
	struct policy_issuer *gen1[1] = { iss_a }, *gen2[1] = { a2 };
	struct policy_issuer *shadow[2] = { a2, iss_a };
	struct jwks *saved;
	char *t = tok("t-keys");
	struct res x;

	x = cv_in(tc, gen1, 1, t, NOW, JWT_DEFAULT_MAX_LEN);
	assert_int_equal(x.r, 0);
	policy_identity_free(x.id);
	x = cv_in(tc, gen1, 1, t, NOW, JWT_DEFAULT_MAX_LEN);
	assert_true(x.hit);
	policy_identity_free(x.id);

	/* A new generation: another issuer with the same iss and keys. */
	x = cv_in(tc, gen2, 1, t, NOW, JWT_DEFAULT_MAX_LEN);
	assert_int_equal(x.r, 0);
	assert_false(x.hit);
	assert_ptr_equal(x.id->issuer, a2);
	policy_identity_free(x.id);
	expect_stats(tc, 1, 2, 1);
	x = cv_in(tc, gen2, 1, t, NOW, JWT_DEFAULT_MAX_LEN);
	assert_true(x.hit);
	assert_ptr_equal(x.id->issuer, a2);
	policy_identity_free(x.id);

	/* Back to the old one: the new entry does not serve it either. */
	x = cv_in(tc, gen1, 1, t, NOW, JWT_DEFAULT_MAX_LEN);
	assert_false(x.hit);
	assert_ptr_equal(x.id->issuer, iss_a);
	policy_identity_free(x.id);

	/* The entry's issuer is present but another with its iss comes
	 * first: jwt_verify() would use that one. */
	x = cv_in(tc, shadow, 2, t, NOW, JWT_DEFAULT_MAX_LEN);
	assert_false(x.hit);
	assert_ptr_equal(x.id->issuer, a2);
	policy_identity_free(x.id);

	/* The same issuer struct with its keys swapped. */
	x = cv_in(tc, gen1, 1, t, NOW, JWT_DEFAULT_MAX_LEN);
	assert_false(x.hit);
	policy_identity_free(x.id);
	saved = policy_keyring_get(iss_a->ring);
	policy_keyring_set(iss_a->ring, policy_keyring_get(a2->ring));
	x = cv_in(tc, gen1, 1, t, NOW, JWT_DEFAULT_MAX_LEN);
	assert_int_equal(x.r, 0);
	assert_false(x.hit);
	policy_identity_free(x.id);
	x = cv_in(tc, gen1, 1, t, NOW, JWT_DEFAULT_MAX_LEN);
	assert_true(x.hit);
	policy_identity_free(x.id);
	policy_keyring_set(iss_a->ring, saved);
	x = cv_in(tc, gen1, 1, t, NOW, JWT_DEFAULT_MAX_LEN);
	assert_false(x.hit);
	policy_identity_free(x.id);

	/* The issuer is gone from the array: refused as jwt_verify() would. */
	x = cv_in(tc, &issuers[1], 1, t, NOW, JWT_DEFAULT_MAX_LEN);
	assert_int_equal(x.r, CG_ERR_NOTFOUND);
	assert_string_equal(x.reason, "unknown issuer");
	assert_false(x.hit);
	expect_stats(tc, 3, 8, 0);

	/* Dropping a generation's entries before freeing it. */
	x = cv_in(tc, gen2, 1, t, NOW, JWT_DEFAULT_MAX_LEN);
	policy_identity_free(x.id);
	expect_stats(tc, 3, 9, 1);
	token_cache_forget_issuers(tc, gen1, 1);
	expect_stats(tc, 3, 9, 1);
	token_cache_forget_issuers(tc, gen2, 1);
	expect_stats(tc, 3, 9, 0);
	policy_issuer_free(a2);
	token_cache_free(tc);
	free(t);
	(void)state;
}

/*
 * Key rotation through the ring: a cached token stays a hit while its set
 * is current; once the set is replaced by one without its key, the token is
 * verified again and refused for want of a key, and the refusal names the
 * issuer; a set that holds the key again serves it after one check.
 */
static void
test_rotation_drops_a_key(void **state)
{
	struct token_cache *tc = token_cache_new(8);
	const struct policy_issuer *nokey = NULL;
	struct policy_identity *id = NULL;
	struct jwks *only_b = NULL, *saved;
	const char *why = NULL;
	char *t = tok("rot");
	char err[256];
	bool hit = true;

	expect_ok(tc, t, NOW, false);
	expect_ok(tc, t, NOW, true);
	saved = policy_keyring_get(iss_a->ring);
	assert_int_equal(jwks_load_mem(jwks_b, strlen(jwks_b), &only_b, err,
	    sizeof(err)), 0);
	policy_keyring_set(iss_a->ring, only_b);
	assert_int_equal(token_cache_verify(tc, issuers, 2, t, strlen(t), NOW,
	    JWT_DEFAULT_MAX_LEN, &id, &why, &hit, &nokey), CG_ERR_NOTFOUND);
	assert_string_equal(why, "unknown key id");
	assert_false(hit);
	assert_null(id);
	assert_ptr_equal(nokey, iss_a);
	/* A refusal is not cached: asked again, the same. */
	assert_int_equal(token_cache_verify(tc, issuers, 2, t, strlen(t), NOW,
	    JWT_DEFAULT_MAX_LEN, &id, &why, &hit, &nokey), CG_ERR_NOTFOUND);
	policy_keyring_set(iss_a->ring, saved);
	expect_ok(tc, t, NOW, false);
	expect_ok(tc, t, NOW, true);
	token_cache_free(tc);
	free(t);
	(void)state;
}

static void
test_failures_not_cached(void **state)
{
	struct token_cache *tc = token_cache_new(16);
	char *good = tok("t-bad"), *bad = strdup(good), *sig;
	const char *cases[] = { "x", "a.b.c", "", NULL };
	size_t i;

	/* Flip a byte of the signature. */
	sig = strrchr(bad, '.') + 5;
	*sig = *sig == 'A' ? 'B' : 'A';
	expect_fail(tc, bad, NOW, false);
	expect_fail(tc, bad, NOW, false);
	expect_stats(tc, 0, 2, 0);
	for (i = 0; cases[i] != NULL; i++) {
		expect_fail(tc, cases[i], NOW, false);
		expect_fail(tc, cases[i], NOW, false);
	}
	expect_stats(tc, 0, 8, 0);
	/* The good one still verifies and is cached. */
	expect_ok(tc, good, NOW, false);
	expect_ok(tc, good, NOW, true);
	expect_fail(tc, bad, NOW, false);
	expect_stats(tc, 1, 10, 1);
	token_cache_free(tc);
	free(good);
	free(bad);
	(void)state;
}

static void
test_max_len(void **state)
{
	struct token_cache *tc = token_cache_new(16);
	char *t = tok("t-len");
	size_t len = strlen(t);
	struct res x;

	x = cv_in(tc, issuers, 2, t, NOW, len - 1);
	assert_int_equal(x.r, CG_ERR_LIMIT);
	assert_string_equal(x.reason, "token too large");
	assert_false(x.hit);
	expect_stats(tc, 0, 0, 0);
	x = cv_in(tc, issuers, 2, t, NOW, len);
	assert_int_equal(x.r, 0);
	policy_identity_free(x.id);
	/* A cached token is still held to the limit of each call. */
	x = cv_in(tc, issuers, 2, t, NOW, len - 1);
	assert_int_equal(x.r, CG_ERR_LIMIT);
	assert_false(x.hit);
	expect_stats(tc, 0, 1, 1);
	x = cv_in(tc, issuers, 2, t, NOW, len);
	assert_true(x.hit);
	policy_identity_free(x.id);
	token_cache_free(tc);
	free(t);
	(void)state;
}

static void
test_flush(void **state)
{
	struct token_cache *tc = token_cache_new(16);
	char *a = tok("f-a"), *b = tok_b("f-b");
	struct policy_issuer *only_b[1] = { iss_b };
	struct res held;

	expect_ok(tc, a, NOW, false);
	expect_ok(tc, b, NOW, false);
	held = cv(tc, b, NOW);
	assert_true(held.hit);
	expect_stats(tc, 1, 2, 2);
	token_cache_flush(tc);
	expect_stats(tc, 1, 2, 0);
	assert_int_equal(held.id->refs, 1);
	assert_string_equal(held.id->sub, "svc-b");
	policy_identity_free(held.id);
	expect_ok(tc, a, NOW, false);
	expect_ok(tc, b, NOW, false);
	expect_ok(tc, a, NOW, true);
	token_cache_flush(tc);
	token_cache_flush(tc);
	expect_stats(tc, 2, 4, 0);

	/* Forgetting one issuer keeps the other's entries. */
	expect_ok(tc, a, NOW, false);
	expect_ok(tc, b, NOW, false);
	token_cache_forget_issuers(tc, only_b, 1);
	expect_stats(tc, 2, 6, 1);
	expect_ok(tc, a, NOW, true);
	expect_ok(tc, b, NOW, false);
	token_cache_free(tc);
	free(a);
	free(b);
	(void)state;
}

/*
 * A stream of tokens each seen once makes a full cache thrash: after a
 * window of such misses it admits one miss in 16, so that a token used
 * now and then keeps its entry; a token that comes back is admitted
 * within 16 of its misses; hits end it at the next window.
 */
#define TH_COLD 1700

static void
test_thrashing_admits_few(void **state)
{
	struct token_cache *tc = token_cache_new(16);
	char *cold[TH_COLD], *hot[8];
	size_t i, c = 0, n;
	uint64_t hits = 0, misses = 0;
	struct res x;

	for (i = 0; i < TH_COLD; i++) {
		char jti[16];

		snprintf(jti, sizeof(jti), "c-%zu", i);
		cold[i] = tok(jti);
	}
	for (i = 0; i < CG_ARRAY_LEN(hot); i++) {
		char jti[16];

		snprintf(jti, sizeof(jti), "h-%zu", i);
		hot[i] = tok(jti);
	}

	/* A full window of misses, every one admitted: the cache is full. */
	for (; c < 1024; c++)
		expect_ok(tc, cold[c], NOW, false);
	misses += 1024;
	expect_stats(tc, hits, misses, 16);

	/* Thrashing now: a returning token is in within 16 of its misses. */
	for (n = 1; n <= 16; n++) {
		x = cv(tc, hot[0], NOW);
		assert_int_equal(x.r, 0);
		policy_identity_free(x.id);
		if (x.hit)
			break;
		misses++;
	}
	assert_true(n >= 2 && n <= 16);
	hits++;

	/* Seen once every 80 cold tokens, it keeps its entry: of the 80
	 * misses between, only 5 are admitted, and the hit rate stays under
	 * one in 64. */
	while (c + 80 <= 1024 + 80 * 8) {
		for (i = 0; i < 80; i++)
			expect_ok(tc, cold[c++], NOW, false);
		misses += 80;
		expect_ok(tc, hot[0], NOW, true);
		hits++;
	}
	expect_stats(tc, hits, misses, 16);

	/* A hot set brings the hits back: after the window the cache admits
	 * every miss again, and a new token hits on its second use. */
	for (n = 0; n < 2048; n++) {
		x = cv(tc, hot[n % CG_ARRAY_LEN(hot)], NOW);
		assert_int_equal(x.r, 0);
		policy_identity_free(x.id);
	}
	assert_true(c + 1 < TH_COLD);
	expect_ok(tc, cold[c], NOW, false);
	expect_ok(tc, cold[c], NOW, true);

	for (i = 0; i < TH_COLD; i++)
		free(cold[i]);
	for (i = 0; i < CG_ARRAY_LEN(hot); i++)
		free(hot[i]);
	token_cache_free(tc);
	(void)state;
}

/*
 * Many lookups of tokens with different exps at a slowly moving clock,
 * checked against a plain recency list: hit or miss, result, entries.
 */
#define M_TOKENS	64
#define M_MAX		16
#define M_STEPS		4000

static void
test_model(void **state)
{
	struct token_cache *tc = token_cache_new(M_MAX);
	char *t[M_TOKENS];
	int64_t exp[M_TOKENS], now = NOW;
	int model[M_MAX], nm = 0;	/* token indexes, most recent first */
	uint64_t hits = 0, misses = 0, rnd = 0x2545f4914f6cdd1dULL;
	int i, j, step;

	for (i = 0; i < M_TOKENS; i++) {
		char jti[8];

		rnd = rnd * 6364136223846793005ULL + 1442695040888963407ULL;
		snprintf(jti, sizeof(jti), "m-%d", i);
		/* exps in no order, some equal; all expire within the run */
		exp[i] = NOW + 20 + (int64_t)((rnd >> 33) % 60) * 15;
		t[i] = tok_times(jti, NOW - 10, exp[i], -1);
	}
	for (step = 0; step < M_STEPS; step++) {
		struct res x;
		bool in = false;

		rnd = rnd * 6364136223846793005ULL + 1442695040888963407ULL;
		/* A hot set of 20 most of the time, so that there are hits,
		 * and any token otherwise, so that there are evictions. */
		i = (int)((rnd >> 33) % (uint64_t)((rnd >> 12) % 4 != 0 ? 20 : M_TOKENS));
		if ((rnd >> 20) % 4 == 0)
			now += (int64_t)((rnd >> 40) % 3);

		/* The model: expired entries leave first. */
		for (j = 0; j < nm; ) {
			if (exp[model[j]] <= now) {
				memmove(&model[j], &model[j + 1],
				    (size_t)(nm - j - 1) * sizeof(int));
				nm--;
			} else
				j++;
		}
		for (j = 0; j < nm; j++) {
			if (model[j] == i) {
				in = true;
				memmove(&model[1], &model[0], (size_t)j * sizeof(int));
				model[0] = i;
				break;
			}
		}
		if (in)
			hits++;
		else {
			misses++;
			if (now < exp[i]) {
				if (nm == M_MAX)
					nm--;
				memmove(&model[1], &model[0], (size_t)nm * sizeof(int));
				model[0] = i;
				nm++;
			}
		}

		x = cv(tc, t[i], now);
		if (x.hit != in)
			fail_msg("step %d token %d: hit=%d, model %d", step, i,
			    x.hit, in);
		if (now < exp[i] + SKEW) {
			assert_int_equal(x.r, 0);
			assert_int_equal(x.id->exp, exp[i]);
			policy_identity_free(x.id);
		} else {
			assert_int_equal(x.r, CG_ERR_EXPIRED);
			assert_string_equal(x.reason, "token expired");
		}
		expect_stats(tc, hits, misses, (size_t)nm);
	}
	/* The run went through every regime. */
	assert_true(hits > M_STEPS / 4);
	assert_true(misses > M_STEPS / 4);
	assert_true(now > NOW + 20 + 59 * 15 + SKEW);
	for (i = 0; i < M_TOKENS; i++)
		free(t[i]);
	token_cache_free(tc);
	(void)state;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_refcount),
		cmocka_unit_test(test_miss_then_hit),
		cmocka_unit_test(test_expiry),
		cmocka_unit_test(test_nbf),
		cmocka_unit_test(test_same_claims_other_token),
		cmocka_unit_test(test_lru),
		cmocka_unit_test(test_disabled),
		cmocka_unit_test(test_keys_changed),
		cmocka_unit_test(test_rotation_drops_a_key),
		cmocka_unit_test(test_failures_not_cached),
		cmocka_unit_test(test_max_len),
		cmocka_unit_test(test_flush),
		cmocka_unit_test(test_model),
		cmocka_unit_test(test_thrashing_admits_few),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
