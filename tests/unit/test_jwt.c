/*
 * test_jwt.c: jwt_verify() end to end with keys generated at test time:
 * each algorithm verifies, and each refusal comes with its own return code
 * and reason.
 */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/unit/unit.h"
#include "common.h"
#include "policy/policy.h"
#include "policy/spiffe.h"
#include "tests/unit/jwt_sign.h"

#include <openssl/err.h>

#define NOW	1800000000LL
#define ISS_A	"https://issuer.example"
#define ISS_B	"https://b.example"
#define AUD	"api://credgate"
#define SKEW	60
#define LIFE	3600

static EVP_PKEY *k_rsa, *k_rsa_pinned, *k_p256, *k_p384, *k_ed, *k_b_ec;
static EVP_PKEY *k_att_ec, *k_att_rsa;
static struct policy_issuer *iss_a, *iss_b;
static struct policy_issuer *issuers[2];

static struct policy_issuer *
issuer_new(const char *iss, unsigned algs, const char *jwks_json)
{
	struct policy_issuer *is = calloc(1, sizeof(*is));
	struct jwks *ks;
	char err[256];

	assert_non_null(is);
	is->name = strdup(iss);
	is->iss = strdup(iss);
	is->naudiences = 2;
	is->audiences = calloc(2, sizeof(char *));
	assert_non_null(is->audiences);
	is->audiences[0] = strdup(AUD);
	is->audiences[1] = strdup("urn:other");
	is->algs = algs;
	is->max_lifetime_s = LIFE;
	is->clock_skew_s = SKEW;
	if (jwks_load_mem(jwks_json, strlen(jwks_json), &ks, err,
	    sizeof(err)) != 0)
		fail_msg("jwks: %s", err);
	assert_non_null(is->ring = policy_keyring_new(ks));
	return is;
}

static int
setup(void **state)
{
	char *j[5], *set;

	k_rsa = ts_keygen("RSA", 2048);
	k_rsa_pinned = ts_keygen("RSA", 2048);
	k_p256 = ts_keygen("P-256", 0);
	k_p384 = ts_keygen("P-384", 0);
	k_ed = ts_keygen("Ed25519", 0);
	k_b_ec = ts_keygen("P-256", 0);
	k_att_ec = ts_keygen("P-256", 0);
	k_att_rsa = ts_keygen("RSA", 2048);

	j[0] = ts_jwk(k_rsa, "rsa1", NULL, "\"use\":\"sig\"");
	j[1] = ts_jwk(k_rsa_pinned, "rsa-ps", "PS256", NULL);
	j[2] = ts_jwk(k_p256, "ec256", NULL, NULL);
	j[3] = ts_jwk(k_p384, "ec384", "ES384", NULL);
	j[4] = ts_jwk(k_ed, "ed1", NULL, NULL);
	set = ts_fmt("{\"keys\":[%s,%s,%s,%s,%s]}", j[0], j[1], j[2], j[3], j[4]);
	iss_a = issuer_new(ISS_A, JWT_ALG_ALL, set);
	free(set);
	for (size_t i = 0; i < 5; i++)
		free(j[i]);

	/* Issuer B: RS256 and ES256 allowed, one EC key and no kid. */
	j[0] = ts_jwk(k_b_ec, NULL, NULL, NULL);
	set = ts_fmt("{\"keys\":[%s]}", j[0]);
	iss_b = issuer_new(ISS_B, JWT_RS256 | JWT_ES256, set);
	free(set);
	free(j[0]);

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
	EVP_PKEY_free(k_rsa);
	EVP_PKEY_free(k_rsa_pinned);
	EVP_PKEY_free(k_p256);
	EVP_PKEY_free(k_p384);
	EVP_PKEY_free(k_ed);
	EVP_PKEY_free(k_b_ec);
	EVP_PKEY_free(k_att_ec);
	EVP_PKEY_free(k_att_rsa);
	(void)state;
	return 0;
}

static char *
payload_default(void)
{
	return ts_fmt("{\"iss\":\"%s\",\"sub\":\"svc-a\",\"aud\":\"%s\","
	    "\"iat\":%lld,\"exp\":%lld,\"jti\":\"t-1\",\"team\":\"core\"}",
	    ISS_A, AUD, NOW - 10, NOW + 300);
}

static char *
header(const char *alg, const char *kid)
{
	if (kid == NULL)
		return ts_fmt("{\"alg\":\"%s\",\"typ\":\"JWT\"}", alg);
	return ts_fmt("{\"alg\":\"%s\",\"kid\":\"%s\",\"typ\":\"JWT\"}", alg, kid);
}

/* A token with the given header and payload (NULL: defaults), signed. */
static char *
token(EVP_PKEY *k, const char *alg, const char *kid, const char *hdr_json,
    const char *payload_json)
{
	char *h = hdr_json != NULL ? strdup(hdr_json) : header(alg, kid);
	char *p = payload_json != NULL ? strdup(payload_json) : payload_default();
	char *t = ts_token(k, alg, h, p);

	free(h);
	free(p);
	return t;
}

static int
verify_at(const char *t, size_t len, int64_t now, size_t max_len,
    struct policy_identity **id, const char **reason)
{
	return jwt_verify(issuers, 2, t, len, now, max_len, id, reason, NULL);
}

/* Verifies t at NOW and checks the code and reason. */
static void
expect_at(const char *t, int64_t now, int code, const char *why)
{
	struct policy_identity *id = (struct policy_identity *)1;
	const char *reason = NULL;
	int r;

	r = verify_at(t, strlen(t), now, JWT_DEFAULT_MAX_LEN, &id, &reason);
	assert_non_null(reason);
	if (r != code || strcmp(reason, why) != 0)
		fail_msg("got %d \"%s\", want %d \"%s\"", r, reason, code, why);
	if (code == 0) {
		assert_non_null(id);
		policy_identity_free(id);
	} else
		assert_null(id);
}

static void
expect(const char *t, int code, const char *why)
{
	expect_at(t, NOW, code, why);
}

/* Signs and checks in one go; frees the token. */
static void
expect_tok(char *t, int code, const char *why)
{
	expect(t, code, why);
	free(t);
}

/* ------------------------------------------------------------------ */
/* Valid tokens                                                        */
/* ------------------------------------------------------------------ */

/* used_kid: the kid of the key that verified (also when the token has none). */
static void
check_identity2(EVP_PKEY *k, const char *alg, const char *kid, const char *used_kid)
{
	struct policy_identity *id = NULL;
	const char *reason = NULL;
	char *t = token(k, alg, kid, NULL, NULL);

	assert_int_equal(verify_at(t, strlen(t), NOW, JWT_DEFAULT_MAX_LEN,
	    &id, &reason), 0);
	assert_non_null(id);
	assert_ptr_equal(id->issuer, iss_a);
	assert_string_equal(id->method, "jwt");
	assert_string_equal(id->iss, ISS_A);
	assert_string_equal(id->sub, "svc-a");
	assert_string_equal(id->jti, "t-1");
	assert_true(json_is_string(id->aud));
	assert_string_equal(json_string_value(id->aud), AUD);
	assert_int_equal(id->exp, NOW + 300);
	assert_int_equal(id->iat, NOW - 10);
	assert_int_equal(id->nbf, 0);
	assert_string_equal(id->alg, alg);
	assert_string_equal(id->kid, used_kid);
	assert_string_equal(json_string_value(json_object_get(id->claims, "team")),
	    "core");
	/* iss/sub/jti point into the claims the identity owns. */
	assert_ptr_equal(id->sub, json_string_value(json_object_get(id->claims, "sub")));
	policy_identity_free(id);
	free(t);
}

static void
check_identity(EVP_PKEY *k, const char *alg, const char *kid)
{
	check_identity2(k, alg, kid, kid);
}

static void
test_valid_rs256(void **state)
{
	check_identity(k_rsa, "RS256", "rsa1");
	(void)state;
}

static void
test_valid_ps256(void **state)
{
	check_identity(k_rsa, "PS256", "rsa1");
	check_identity(k_rsa_pinned, "PS256", "rsa-ps");
	(void)state;
}

static void
test_valid_es256(void **state)
{
	check_identity(k_p256, "ES256", "ec256");
	(void)state;
}

static void
test_valid_es384(void **state)
{
	check_identity(k_p384, "ES384", "ec384");
	(void)state;
}

static void
test_valid_eddsa(void **state)
{
	check_identity(k_ed, "EdDSA", "ed1");
	(void)state;
}

static void
test_no_kid(void **state)
{
	/* Without a kid every key of the right type is tried. */
	check_identity2(k_rsa, "RS256", NULL, "rsa1");
	check_identity2(k_rsa_pinned, "PS256", NULL, "rsa-ps");
	check_identity2(k_p384, "ES384", NULL, "ec384");
	check_identity2(k_ed, "EdDSA", NULL, "ed1");
	/* ... and one of them must verify. */
	expect_tok(token(k_att_rsa, "RS256", NULL, NULL, NULL), CG_ERR_VERIFY,
	    "bad signature");
	(void)state;
}

static void
test_typ(void **state)
{
	expect_tok(token(k_p256, "ES256", NULL,
	    "{\"alg\":\"ES256\",\"kid\":\"ec256\",\"typ\":\"at+jwt\"}", NULL), 0,
	    "verified");
	expect_tok(token(k_p256, "ES256", NULL,
	    "{\"alg\":\"ES256\",\"kid\":\"ec256\",\"typ\":\"whatever\"}", NULL), 0,
	    "verified");
	expect_tok(token(k_p256, "ES256", NULL,
	    "{\"alg\":\"ES256\",\"kid\":\"ec256\",\"typ\":1}", NULL),
	    CG_ERR_FORMAT, "typ is not a string");
	expect_tok(token(k_p256, "ES256", NULL,
	    "{\"alg\":\"ES256\",\"kid\":7}", NULL),
	    CG_ERR_FORMAT, "kid is not a string");
	(void)state;
}

/* ------------------------------------------------------------------ */
/* Size and shape                                                      */
/* ------------------------------------------------------------------ */

static void
test_too_large(void **state)
{
	struct policy_identity *id = NULL;
	const char *reason = NULL;
	char *t = token(k_p256, "ES256", "ec256", NULL, NULL);
	size_t len = strlen(t);

	assert_int_equal(verify_at(t, len, NOW, len, &id, &reason), 0);
	policy_identity_free(id);
	id = NULL;
	assert_int_equal(verify_at(t, len, NOW, len - 1, &id, &reason), CG_ERR_LIMIT);
	assert_string_equal(reason, "token too large");
	assert_null(id);
	/* The size check comes before anything else. */
	assert_int_equal(verify_at("x", JWT_DEFAULT_MAX_LEN + 1, NOW,
	    JWT_DEFAULT_MAX_LEN, &id, &reason), CG_ERR_LIMIT);
	assert_string_equal(reason, "token too large");
	free(t);
	(void)state;
}

static void
test_shape(void **state)
{
	char *t = token(k_p256, "ES256", "ec256", NULL, NULL);
	char *dot2 = strrchr(t, '.');
	char *s;

	/* Two segments. */
	s = strndup(t, (size_t)(dot2 - t));
	expect(s, CG_ERR_FORMAT, "malformed token");
	free(s);
	/* Four segments. */
	s = ts_fmt("%s.AAAA", t);
	expect(s, CG_ERR_FORMAT, "malformed token");
	free(s);
	/* Empty signature, empty payload, empty header. */
	s = strndup(t, (size_t)(dot2 - t) + 1);
	expect(s, CG_ERR_FORMAT, "malformed token");
	free(s);
	s = ts_fmt("%.*s..%s", (int)(strchr(t, '.') - t), t, dot2 + 1);
	expect(s, CG_ERR_FORMAT, "malformed token");
	free(s);
	expect(strchr(t, '.'), CG_ERR_FORMAT, "malformed token");
	expect("", CG_ERR_FORMAT, "malformed token");
	expect("..", CG_ERR_FORMAT, "malformed token");
	/* Padding, '+', '/', space, in each segment. */
	s = ts_fmt("%s=", t);
	expect(s, CG_ERR_FORMAT, "malformed token");
	free(s);
	for (const char *bad = "+/= \n"; *bad != '\0'; bad++) {
		s = strdup(t);
		s[1] = *bad;
		expect(s, CG_ERR_FORMAT, "malformed token");
		free(s);
		s = strdup(t);
		s[strlen(s) - 2] = *bad;
		expect(s, CG_ERR_FORMAT, "malformed token");
		free(s);
	}
	free(t);
	(void)state;
}

static char
b64_next(char c)
{
	static const char a[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

	return a[(strchr(a, c) - a + 1) % 64];
}

static void
test_trailing_bits(void **state)
{
	/* A header of 16 bytes encodes to 22 characters: the last one holds
	 * 4 spare bits, which must be zero. */
	const char *h = "{\"alg\":\"ES256\"} ";
	char *p = payload_default(), *in, *t, *dot;
	unsigned char *sig;
	size_t siglen;

	assert_int_equal(strlen(h) % 3, 1);
	in = ts_signing_input(h, p);
	sig = ts_sig(k_p256, "ES256", in, strlen(in), 0, &siglen);
	t = ts_join(in, sig, siglen);
	expect(t, 0, "verified");
	dot = strchr(t, '.');
	dot[-1] = b64_next(dot[-1]);
	expect(t, CG_ERR_FORMAT, "malformed header encoding");
	free(t);
	/* Signature: 64 bytes -> 86 characters, 2 spare bits. */
	t = ts_join(in, sig, siglen);
	t[strlen(t) - 1] = b64_next(t[strlen(t) - 1]);
	expect(t, CG_ERR_FORMAT, "malformed signature encoding");
	free(t);
	free(sig);
	free(in);
	free(p);
	(void)state;
}

static void
test_payload_trailing_bits(void **state)
{
	char *p = payload_default(), *p2, *in, *t, *dot;
	unsigned char *sig;
	size_t siglen;

	/* Pad the payload JSON with spaces until its encoding has spare bits. */
	while (strlen(p) % 3 == 0) {
		p2 = ts_fmt("%s ", p);
		free(p);
		p = p2;
	}
	in = ts_signing_input("{\"alg\":\"ES256\"}", p);
	sig = ts_sig(k_p256, "ES256", in, strlen(in), 0, &siglen);
	t = ts_join(in, sig, siglen);
	expect(t, 0, "verified");
	dot = strrchr(t, '.');
	dot[-1] = b64_next(dot[-1]);
	expect(t, CG_ERR_FORMAT, "malformed payload encoding");
	free(t);
	free(sig);
	free(in);
	free(p);
	(void)state;
}

/* ------------------------------------------------------------------ */
/* Header                                                              */
/* ------------------------------------------------------------------ */

static void
test_header_json(void **state)
{
	char *deep, *lb, *rb;

	expect_tok(token(k_p256, "ES256", NULL, "not json", NULL),
	    CG_ERR_FORMAT, "header is not strict JSON");
	expect_tok(token(k_p256, "ES256", NULL, "{\"alg\":\"ES256\"}x", NULL),
	    CG_ERR_FORMAT, "header is not strict JSON");
	expect_tok(token(k_p256, "ES256", NULL,
	    "{\"alg\":\"ES256\",\"alg\":\"ES256\",\"kid\":\"ec256\"}", NULL),
	    CG_ERR_FORMAT, "header is not strict JSON");
	/* Last-one-wins parsers would pick the second alg: we refuse. */
	expect_tok(token(k_p256, "ES256", NULL,
	    "{\"alg\":\"none\",\"alg\":\"ES256\"}", NULL),
	    CG_ERR_FORMAT, "header is not strict JSON");
	expect_tok(token(k_p256, "ES256", NULL, "[\"ES256\"]", NULL),
	    CG_ERR_FORMAT, "header is not a JSON object");
	expect_tok(token(k_p256, "ES256", NULL, "\"ES256\"", NULL),
	    CG_ERR_FORMAT, "header is not a JSON object");

	/* Nesting: the header object plus 15 arrays is the limit. */
	lb = calloc(1, 64);
	rb = calloc(1, 64);
	memset(lb, '[', JWT_MAX_JSON_DEPTH - 1);
	memset(rb, ']', JWT_MAX_JSON_DEPTH - 1);
	deep = ts_fmt("{\"alg\":\"ES256\",\"x\":%s%s}", lb, rb);
	expect_tok(token(k_p256, "ES256", NULL, deep, NULL), 0, "verified");
	free(deep);
	deep = ts_fmt("{\"alg\":\"ES256\",\"x\":[%s%s]}", lb, rb);
	expect_tok(token(k_p256, "ES256", NULL, deep, NULL),
	    CG_ERR_FORMAT, "header is not strict JSON");
	free(deep);
	free(lb);
	free(rb);
	(void)state;
}

static void
test_alg(void **state)
{
	char *in, *t;

	/* alg none with any signature bytes. */
	in = ts_signing_input("{\"alg\":\"none\"}", "{\"iss\":\"" ISS_A "\"}");
	t = ts_fmt("%s.AAAA", in);
	expect(t, CG_ERR_UNSUPPORTED, "alg none refused");
	free(t);
	free(in);
	expect_tok(token(k_p256, "ES256", NULL, "{\"alg\":\"HS256\",\"kid\":\"ec256\"}",
	    NULL), CG_ERR_UNSUPPORTED, "HMAC algorithms refused");
	expect_tok(token(k_p256, "ES256", NULL, "{\"alg\":\"RS512\"}", NULL),
	    CG_ERR_UNSUPPORTED, "unknown algorithm");
	expect_tok(token(k_p256, "ES256", NULL, "{\"alg\":\"es256\"}", NULL),
	    CG_ERR_UNSUPPORTED, "unknown algorithm");
	expect_tok(token(k_p256, "ES256", NULL, "{\"kid\":\"ec256\"}", NULL),
	    CG_ERR_FORMAT, "alg missing or not a string");
	expect_tok(token(k_p256, "ES256", NULL, "{\"alg\":[\"ES256\"]}", NULL),
	    CG_ERR_FORMAT, "alg missing or not a string");
	expect_tok(token(k_p256, "ES256", NULL, "{\"alg\":\"ES256\\u0000x\"}", NULL),
	    CG_ERR_FORMAT, "header is not strict JSON");
	(void)state;
}

static void
test_crit(void **state)
{
	expect_tok(token(k_p256, "ES256", NULL,
	    "{\"alg\":\"ES256\",\"kid\":\"ec256\",\"crit\":[\"exp\"],\"exp\":1}", NULL),
	    CG_ERR_UNSUPPORTED, "crit header refused");
	expect_tok(token(k_p256, "ES256", NULL,
	    "{\"alg\":\"ES256\",\"kid\":\"ec256\",\"crit\":[]}", NULL),
	    CG_ERR_UNSUPPORTED, "crit header refused");
	(void)state;
}

static void
test_alg_not_allowed(void **state)
{
	char *p = ts_fmt("{\"iss\":\"%s\",\"aud\":\"%s\",\"exp\":%lld}",
	    ISS_B, AUD, NOW + 60);

	/* Issuer B allows RS256 and ES256 only. */
	expect_tok(token(k_rsa, "PS256", NULL, NULL, p), CG_ERR_UNSUPPORTED,
	    "algorithm not allowed");
	/* No kid, and only an EC key: nothing can verify RS256. */
	expect_tok(token(k_rsa, "RS256", NULL, NULL, p), CG_ERR_NOTFOUND,
	    "no key for algorithm");
	/* The EC key without a kid verifies a token without a kid ... */
	expect_tok(token(k_b_ec, "ES256", NULL, NULL, p), 0, "verified");
	/* ... but no kid selects it. */
	expect_tok(token(k_b_ec, "ES256", "", NULL, p), CG_ERR_NOTFOUND,
	    "unknown key id");
	free(p);
	(void)state;
}

static void
test_key_selection(void **state)
{
	/* RS256 header naming an EC key. */
	expect_tok(token(k_p256, "RS256", "ec256", NULL, NULL), CG_ERR_UNSUPPORTED,
	    "algorithm does not match key type");
	/* ES256 with the P-384 key, ES384 with the P-256 key. */
	expect_tok(token(k_p384, "ES256", "ec384", NULL, NULL), CG_ERR_UNSUPPORTED,
	    "algorithm does not match key type");
	expect_tok(token(k_p256, "ES384", "ec256", NULL, NULL), CG_ERR_UNSUPPORTED,
	    "algorithm does not match key type");
	/* EdDSA with an RSA key, RS256 with the Ed25519 key. */
	expect_tok(token(k_ed, "EdDSA", "rsa1", NULL, NULL), CG_ERR_UNSUPPORTED,
	    "algorithm does not match key type");
	expect_tok(token(k_rsa, "RS256", "ed1", NULL, NULL), CG_ERR_UNSUPPORTED,
	    "algorithm does not match key type");
	/* The key pinned to PS256 refuses RS256. */
	expect_tok(token(k_rsa_pinned, "RS256", "rsa-ps", NULL, NULL),
	    CG_ERR_UNSUPPORTED, "key pinned to another algorithm");
	/* Unknown kid, and a kid that differs only by case. */
	expect_tok(token(k_p256, "ES256", "nope", NULL, NULL), CG_ERR_NOTFOUND,
	    "unknown key id");
	expect_tok(token(k_p256, "ES256", "EC256", NULL, NULL), CG_ERR_NOTFOUND,
	    "unknown key id");
	/* A kid selects exactly one key: signed by another key of that type. */
	expect_tok(token(k_rsa_pinned, "PS256", "rsa1", NULL, NULL), CG_ERR_VERIFY,
	    "bad signature");
	(void)state;
}

/* PKCS#1 v1.5 over signing_input with another digest than RS256's. */
static char *
rsa_token_with_digest(EVP_PKEY *k, const char *md, const char *hdr, const char *pay)
{
	char *in = ts_signing_input(hdr, pay), *t;
	unsigned char sig[1024];
	size_t siglen = sizeof(sig);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	assert_non_null(ctx);
	assert_int_equal(EVP_DigestSignInit_ex(ctx, NULL, md, NULL, NULL, k, NULL), 1);
	assert_int_equal(EVP_DigestSign(ctx, sig, &siglen, (const unsigned char *)in,
	    strlen(in)), 1);
	EVP_MD_CTX_free(ctx);
	t = ts_join(in, sig, siglen);
	free(in);
	return t;
}

/*
 * RS256 is checked with OpenSSL directly.  PSS padding under an RS256
 * header (test_rs_ps_confusion), flipped bytes and a changed payload
 * (test_flipped_signature) are refused there; here, the digest inside
 * the PKCS#1 v1.5 block, every bit of the last byte, and OpenSSL's error
 * queue.
 */
static void
test_rs256_signature_checks(void **state)
{
	char *h = header("RS256", "rsa1"), *p = payload_default(), *good, *in, *t, *dot;
	unsigned char *sig;
	size_t siglen;

	good = token(k_rsa, "RS256", "rsa1", NULL, NULL);
	expect(good, 0, "verified");
	/* PKCS#1 v1.5 with SHA-384 and SHA-1 DigestInfo by the right key. */
	expect_tok(rsa_token_with_digest(k_rsa, "SHA384", h, p), CG_ERR_VERIFY, "bad signature");
	expect_tok(rsa_token_with_digest(k_rsa, "SHA1", h, p), CG_ERR_VERIFY, "bad signature");
	/* Every bit of the last signature byte matters. */
	for (int bit = 0; bit < 8; bit++) {
		t = strdup(good);
		dot = strrchr(t, '.');
		sig = malloc(strlen(dot));
		assert_non_null(sig);
		assert_int_equal(b64url_decode(dot + 1, strlen(dot + 1), sig, &siglen), 0);
		sig[siglen - 1] ^= (unsigned char)(1u << bit);
		*dot = '\0';
		in = ts_join(t, sig, siglen);
		expect_tok(in, CG_ERR_VERIFY, "bad signature");
		free(sig);
		free(t);
	}
	/* A failed check leaves nothing in OpenSSL's error queue. */
	assert_int_equal(ERR_peek_error(), 0);
	free(good);
	free(h);
	free(p);
	(void)state;
}

/* The key's prepared RS256 context is shared: verify from two threads. */
static void *
rs256_worker(void *arg)
{
	const char *t = arg;
	struct policy_identity *id;
	const char *reason;
	intptr_t fails = 0;

	for (int i = 0; i < 300; i++) {
		id = NULL;
		if (verify_at(t, strlen(t), NOW, JWT_DEFAULT_MAX_LEN, &id, &reason) != 0)
			fails++;
		policy_identity_free(id);
	}
	return (void *)fails;
}

static void
test_rs256_from_threads(void **state)
{
	char *t = token(k_rsa, "RS256", "rsa1", NULL, NULL);
	pthread_t th[2];
	void *fails;

	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&th[i], NULL, rs256_worker, t), 0);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(pthread_join(th[i], &fails), 0);
		assert_int_equal((intptr_t)fails, 0);
	}
	free(t);
	(void)state;
}

static void
test_embedded_keys_ignored(void **state)
{
	char *jwk = ts_jwk(k_att_ec, "att", NULL, NULL);
	char *h;

	/* Signed by the attacker's key, which the header carries. */
	h = ts_fmt("{\"alg\":\"ES256\",\"jwk\":%s,"
	    "\"jku\":\"https://evil.example/jwks\","
	    "\"x5u\":\"https://evil.example/cert\","
	    "\"x5c\":[\"MIIB\"],\"x5t\":\"AAAA\"}", jwk);
	expect_tok(token(k_att_ec, "ES256", NULL, h, NULL), CG_ERR_VERIFY,
	    "bad signature");
	free(h);
	h = ts_fmt("{\"alg\":\"ES256\",\"kid\":\"att\",\"jwk\":%s}", jwk);
	expect_tok(token(k_att_ec, "ES256", NULL, h, NULL), CG_ERR_NOTFOUND,
	    "unknown key id");
	free(h);
	h = ts_fmt("{\"alg\":\"ES256\",\"kid\":\"ec256\",\"jwk\":%s,"
	    "\"jku\":\"https://evil.example/jwks\"}", jwk);
	expect_tok(token(k_att_ec, "ES256", NULL, h, NULL), CG_ERR_VERIFY,
	    "bad signature");
	/* The same header on a token signed by the real key: no effect. */
	expect_tok(token(k_p256, "ES256", NULL, h, NULL), 0, "verified");
	free(h);
	free(jwk);
	(void)state;
}

/* ------------------------------------------------------------------ */
/* Signatures                                                          */
/* ------------------------------------------------------------------ */

static void
test_ecdsa_forms(void **state)
{
	char *h = header("ES256", "ec256"), *p = payload_default();
	char *in = ts_signing_input(h, p), *t;
	unsigned char *sig, *der;
	size_t siglen, derlen;

	sig = ts_sig(k_p256, "ES256", in, strlen(in), 0, &siglen);
	assert_int_equal(siglen, 64);
	t = ts_join(in, sig, siglen);
	expect(t, 0, "verified");
	free(t);

	/* DER-encoded signature over the same input. */
	der = ts_sig(k_p256, "ES256", in, strlen(in), 1, &derlen);
	assert_int_not_equal(derlen, 64);
	t = ts_join(in, der, derlen);
	expect(t, CG_ERR_VERIFY, "bad signature length");
	free(t);
	free(der);

	/* r = 0, s = 0, both. */
	memset(sig, 0, 32);
	t = ts_join(in, sig, siglen);
	expect(t, CG_ERR_VERIFY, "ECDSA signature with zero r or s");
	free(t);
	free(sig);
	sig = ts_sig(k_p256, "ES256", in, strlen(in), 0, &siglen);
	memset(sig + 32, 0, 32);
	t = ts_join(in, sig, siglen);
	expect(t, CG_ERR_VERIFY, "ECDSA signature with zero r or s");
	free(t);
	memset(sig, 0, 64);
	t = ts_join(in, sig, siglen);
	expect(t, CG_ERR_VERIFY, "ECDSA signature with zero r or s");
	free(t);

	/* One byte short, one byte long. */
	t = ts_join(in, sig, 63);
	expect(t, CG_ERR_VERIFY, "bad signature length");
	free(t);
	free(sig);
	free(in);
	free(h);
	free(p);

	/* ES384: 96 bytes; the 64-byte form is refused by length. */
	h = header("ES384", "ec384");
	p = payload_default();
	in = ts_signing_input(h, p);
	sig = ts_sig(k_p384, "ES384", in, strlen(in), 0, &siglen);
	assert_int_equal(siglen, 96);
	t = ts_join(in, sig, 64);
	expect(t, CG_ERR_VERIFY, "bad signature length");
	free(t);
	memset(sig + 48, 0, 48);
	t = ts_join(in, sig, 96);
	expect(t, CG_ERR_VERIFY, "ECDSA signature with zero r or s");
	free(t);
	free(sig);
	der = ts_sig(k_p384, "ES384", in, strlen(in), 1, &derlen);
	t = ts_join(in, der, derlen);
	expect(t, CG_ERR_VERIFY, "bad signature length");
	free(t);
	free(der);
	free(in);
	free(h);
	free(p);
	(void)state;
}

static void
flip_each(EVP_PKEY *k, const char *alg, const char *kid, size_t want_len)
{
	char *h = header(alg, kid), *p = payload_default();
	char *in = ts_signing_input(h, p), *t;
	unsigned char *sig;
	size_t siglen, i;
	const size_t pos[] = { 0, 1, want_len / 2, want_len - 1 };

	sig = ts_sig(k, alg, in, strlen(in), 0, &siglen);
	assert_int_equal(siglen, want_len);
	for (i = 0; i < CG_ARRAY_LEN(pos); i++) {
		sig[pos[i]] ^= 0x01;
		t = ts_join(in, sig, siglen);
		expect(t, CG_ERR_VERIFY, "bad signature");
		free(t);
		sig[pos[i]] ^= 0x01;
	}
	/* Wrong length: one byte dropped. */
	t = ts_join(in, sig + 1, siglen - 1);
	expect(t, CG_ERR_VERIFY, "bad signature length");
	free(t);
	/* A changed payload under the original signature. */
	free(in);
	free(p);
	p = ts_fmt("{\"iss\":\"%s\",\"sub\":\"svc-b\",\"aud\":\"%s\","
	    "\"iat\":%lld,\"exp\":%lld,\"jti\":\"t-1\",\"team\":\"core\"}",
	    ISS_A, AUD, NOW - 10, NOW + 300);
	in = ts_signing_input(h, p);
	t = ts_join(in, sig, siglen);
	expect(t, CG_ERR_VERIFY, "bad signature");
	free(t);
	free(sig);
	free(in);
	free(h);
	free(p);
}

static void
test_flipped_signature(void **state)
{
	flip_each(k_rsa, "RS256", "rsa1", 256);
	flip_each(k_rsa, "PS256", "rsa1", 256);
	flip_each(k_p256, "ES256", "ec256", 64);
	flip_each(k_p384, "ES384", "ec384", 96);
	flip_each(k_ed, "EdDSA", "ed1", 64);
	(void)state;
}

static void
test_rs_ps_confusion(void **state)
{
	char *h = header("PS256", "rsa1"), *p = payload_default();
	char *in = ts_signing_input(h, p), *t;
	unsigned char *sig;
	size_t siglen;

	/* A PKCS#1 v1.5 signature under a PS256 header, and the reverse. */
	sig = ts_sig(k_rsa, "RS256", in, strlen(in), 0, &siglen);
	t = ts_join(in, sig, siglen);
	expect(t, CG_ERR_VERIFY, "bad signature");
	free(t);
	free(sig);
	free(in);
	free(h);
	h = header("RS256", "rsa1");
	in = ts_signing_input(h, p);
	sig = ts_sig(k_rsa, "PS256", in, strlen(in), 0, &siglen);
	t = ts_join(in, sig, siglen);
	expect(t, CG_ERR_VERIFY, "bad signature");
	free(t);
	free(sig);
	free(in);
	free(h);
	free(p);
	(void)state;
}

/* ------------------------------------------------------------------ */
/* Payload and claims                                                  */
/* ------------------------------------------------------------------ */

static void
test_payload_json(void **state)
{
	char *p, *lb, *rb;

	p = ts_fmt("{\"iss\":\"%s\",\"aud\":\"%s\",\"exp\":%lld,\"exp\":%lld}",
	    ISS_A, AUD, NOW + 60, NOW + 60);
	expect_tok(token(k_p256, "ES256", "ec256", NULL, p), CG_ERR_FORMAT,
	    "payload is not strict JSON");
	free(p);
	expect_tok(token(k_p256, "ES256", "ec256", NULL, "[1]"), CG_ERR_FORMAT,
	    "payload is not a JSON object");
	expect_tok(token(k_p256, "ES256", "ec256", NULL, "{\"iss\":"), CG_ERR_FORMAT,
	    "payload is not strict JSON");

	lb = calloc(1, 64);
	rb = calloc(1, 64);
	memset(lb, '[', JWT_MAX_JSON_DEPTH - 1);
	memset(rb, ']', JWT_MAX_JSON_DEPTH - 1);
	p = ts_fmt("{\"iss\":\"%s\",\"aud\":\"%s\",\"exp\":%lld,\"x\":%s%s}",
	    ISS_A, AUD, NOW + 60, lb, rb);
	expect_tok(token(k_p256, "ES256", "ec256", NULL, p), 0, "verified");
	free(p);
	p = ts_fmt("{\"iss\":\"%s\",\"aud\":\"%s\",\"exp\":%lld,\"x\":{\"y\":%s%s}}",
	    ISS_A, AUD, NOW + 60, lb, rb);
	expect_tok(token(k_p256, "ES256", "ec256", NULL, p), CG_ERR_FORMAT,
	    "payload is not strict JSON");
	free(p);
	free(lb);
	free(rb);
	(void)state;
}

static void
test_issuer(void **state)
{
	char *p;

	p = ts_fmt("{\"iss\":\"%s/\",\"aud\":\"%s\",\"exp\":%lld}", ISS_A, AUD, NOW + 60);
	expect_tok(token(k_p256, "ES256", "ec256", NULL, p), CG_ERR_NOTFOUND,
	    "unknown issuer");
	free(p);
	p = ts_fmt("{\"iss\":\"HTTPS://issuer.example\",\"aud\":\"%s\",\"exp\":%lld}",
	    AUD, NOW + 60);
	expect_tok(token(k_p256, "ES256", "ec256", NULL, p), CG_ERR_NOTFOUND,
	    "unknown issuer");
	free(p);
	p = ts_fmt("{\"iss\":\"https://elsewhere.example\",\"aud\":\"%s\",\"exp\":%lld}",
	    AUD, NOW + 60);
	expect_tok(token(k_p256, "ES256", "ec256", NULL, p), CG_ERR_NOTFOUND,
	    "unknown issuer");
	free(p);
	p = ts_fmt("{\"aud\":\"%s\",\"exp\":%lld}", AUD, NOW + 60);
	expect_tok(token(k_p256, "ES256", "ec256", NULL, p), CG_ERR_VERIFY,
	    "iss missing or not a string");
	free(p);
	p = ts_fmt("{\"iss\":[\"%s\"],\"aud\":\"%s\",\"exp\":%lld}", ISS_A, AUD, NOW + 60);
	expect_tok(token(k_p256, "ES256", "ec256", NULL, p), CG_ERR_VERIFY,
	    "iss missing or not a string");
	free(p);
	/* The issuer's own keys only: issuer B's key for an issuer A token. */
	expect_tok(token(k_b_ec, "ES256", NULL, NULL, NULL), CG_ERR_VERIFY,
	    "bad signature");
	(void)state;
}

/* Claim cases: payload members after iss, the time of the check, result. */
static const struct claim_case {
	const char *name;
	const char *members;	/* printf format taking NOW as %lld, several times */
	int64_t now;
	int code;
	const char *reason;
} claim_cases[] = {
	{ "ok", "\"aud\":\"api://credgate\",\"exp\":%lld", NOW, 0, "verified" },
	{ "exp missing", "\"aud\":\"api://credgate\",\"x\":%lld", NOW,
	    CG_ERR_VERIFY, "exp missing" },
	{ "exp string", "\"aud\":\"api://credgate\",\"exp\":\"%lld\"", NOW - 100,
	    CG_ERR_VERIFY, "exp is not a number" },
	{ "exp bool", "\"aud\":\"api://credgate\",\"exp\":true,\"x\":%lld", NOW,
	    CG_ERR_VERIFY, "exp is not a number" },
	{ "exp real", "\"aud\":\"api://credgate\",\"exp\":%lld.5", NOW - 100, 0,
	    "verified" },
	/* exp = NOW: valid until NOW + SKEW - 1. */
	{ "exp in skew", "\"aud\":\"api://credgate\",\"exp\":%lld", NOW + SKEW - 1, 0,
	    "verified" },
	{ "expired", "\"aud\":\"api://credgate\",\"exp\":%lld", NOW + SKEW,
	    CG_ERR_EXPIRED, "token expired" },
	{ "expired real", "\"aud\":\"api://credgate\",\"exp\":%lld.9", NOW + SKEW,
	    CG_ERR_EXPIRED, "token expired" },
	/* nbf = NOW: valid from NOW - SKEW. */
	{ "nbf in skew", "\"aud\":\"api://credgate\",\"nbf\":%lld,\"exp\":1800000600",
	    NOW - SKEW, 0, "verified" },
	{ "nbf future", "\"aud\":\"api://credgate\",\"nbf\":%lld,\"exp\":1800000600",
	    NOW - SKEW - 1, CG_ERR_EXPIRED, "token not yet valid" },
	{ "nbf string", "\"aud\":\"api://credgate\",\"nbf\":\"%lld\",\"exp\":1800000600",
	    NOW, CG_ERR_VERIFY, "nbf is not a number" },
	/* iat = NOW. */
	{ "iat in skew", "\"aud\":\"api://credgate\",\"iat\":%lld,\"exp\":1800000600",
	    NOW - SKEW, 0, "verified" },
	{ "iat future", "\"aud\":\"api://credgate\",\"iat\":%lld,\"exp\":1800000600",
	    NOW - SKEW - 1, CG_ERR_VERIFY, "iat in the future" },
	{ "iat string", "\"aud\":\"api://credgate\",\"iat\":\"%lld\",\"exp\":1800000600",
	    NOW, CG_ERR_VERIFY, "iat is not a number" },
	/* Lifetime: exp - iat <= 3600. */
	{ "lifetime max", "\"aud\":\"api://credgate\",\"iat\":%lld,\"exp\":1800003600",
	    NOW, 0, "verified" },
	{ "lifetime long", "\"aud\":\"api://credgate\",\"iat\":%lld,\"exp\":1800003601",
	    NOW, CG_ERR_VERIFY, "token lifetime too long" },
	/* Without iat: exp - now <= 3600. */
	{ "no iat max", "\"aud\":\"api://credgate\",\"x\":%lld,\"exp\":1800003600",
	    NOW, 0, "verified" },
	{ "no iat long", "\"aud\":\"api://credgate\",\"x\":%lld,\"exp\":1800003601",
	    NOW, CG_ERR_VERIFY, "token lifetime too long" },
	{ "huge exp", "\"aud\":\"api://credgate\",\"x\":%lld,\"exp\":1e300",
	    NOW, CG_ERR_VERIFY, "token lifetime too long" },
	{ "huge int exp", "\"aud\":\"api://credgate\",\"x\":%lld,"
	    "\"exp\":9223372036854775807", NOW, CG_ERR_VERIFY, "token lifetime too long" },
	/* Audience. */
	{ "aud missing", "\"exp\":%lld", NOW, CG_ERR_VERIFY, "aud missing" },
	{ "aud wrong", "\"aud\":\"api://other\",\"exp\":%lld", NOW, CG_ERR_VERIFY,
	    "audience not accepted" },
	{ "aud prefix", "\"aud\":\"api://credgate/\",\"exp\":%lld", NOW, CG_ERR_VERIFY,
	    "audience not accepted" },
	{ "aud empty", "\"aud\":[],\"exp\":%lld", NOW, CG_ERR_VERIFY,
	    "aud is not a string or array of strings" },
	{ "aud number", "\"aud\":5,\"exp\":%lld", NOW, CG_ERR_VERIFY,
	    "aud is not a string or array of strings" },
	{ "aud non-string", "\"aud\":[\"api://credgate\",5],\"exp\":%lld", NOW,
	    CG_ERR_VERIFY, "aud is not a string or array of strings" },
	{ "aud array ok", "\"aud\":[\"x\",\"urn:other\"],\"exp\":%lld", NOW, 0,
	    "verified" },
	{ "aud array wrong", "\"aud\":[\"x\",\"y\"],\"exp\":%lld", NOW, CG_ERR_VERIFY,
	    "audience not accepted" },
	/* sub, jti. */
	{ "sub number", "\"aud\":\"api://credgate\",\"sub\":1,\"exp\":%lld", NOW,
	    CG_ERR_VERIFY, "sub is not a string" },
	{ "jti object", "\"aud\":\"api://credgate\",\"jti\":{},\"exp\":%lld", NOW,
	    CG_ERR_VERIFY, "jti is not a string" },
};

static void
test_claims(void **state)
{
	size_t i;

	for (i = 0; i < CG_ARRAY_LEN(claim_cases); i++) {
		const struct claim_case *c = &claim_cases[i];
		char *fmt = ts_fmt("{\"iss\":\"%s\",%s}", ISS_A, c->members);
		char *p, *t;

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
		p = ts_fmt(fmt, NOW);
#pragma GCC diagnostic pop
		t = token(k_ed, "EdDSA", "ed1", NULL, p);
		print_message("claims: %s\n", c->name);
		expect_at(t, c->now, c->code, c->reason);
		free(t);
		free(p);
		free(fmt);
	}
	(void)state;
}

static void
test_claims_after_signature(void **state)
{
	char *p = ts_fmt("{\"iss\":\"%s\",\"aud\":\"%s\",\"exp\":%lld}", ISS_A, AUD,
	    NOW - 1000);

	/* An expired token with a bad signature is a bad signature. */
	expect_tok(token(k_att_ec, "ES256", "ec256", NULL, p), CG_ERR_VERIFY,
	    "bad signature");
	expect_tok(token(k_p256, "ES256", "ec256", NULL, p), CG_ERR_EXPIRED,
	    "token expired");
	free(p);
	(void)state;
}

static void
test_nbf_iat_values(void **state)
{
	struct policy_identity *id = NULL;
	const char *reason;
	char *p = ts_fmt("{\"iss\":\"%s\",\"aud\":[\"%s\"],\"nbf\":%lld,\"iat\":%lld,"
	    "\"exp\":%lld}", ISS_A, AUD, NOW - 5, NOW - 6, NOW + 7);
	char *t = token(k_p384, "ES384", NULL, NULL, p);

	assert_int_equal(verify_at(t, strlen(t), NOW, JWT_DEFAULT_MAX_LEN, &id,
	    &reason), 0);
	assert_int_equal(id->nbf, NOW - 5);
	assert_int_equal(id->iat, NOW - 6);
	assert_int_equal(id->exp, NOW + 7);
	assert_null(id->sub);
	assert_null(id->jti);
	assert_true(json_is_array(id->aud));
	assert_string_equal(id->kid, "ec384");
	policy_identity_free(id);
	free(t);
	free(p);
	(void)state;
}

/* ------------------------------------------------------------------ */
/* Robustness                                                          */
/* ------------------------------------------------------------------ */

static void
truncate_each(char *t)
{
	struct policy_identity *id;
	const char *reason;
	size_t len = strlen(t), i;
	char *copy;
	int r;

	for (i = 0; i < len; i++) {
		/* An exact-size heap copy so that ASan sees any overread. */
		copy = malloc(i == 0 ? 1 : i);
		assert_non_null(copy);
		memcpy(copy, t, i);
		id = (struct policy_identity *)1;
		reason = NULL;
		r = verify_at(copy, i, NOW, JWT_DEFAULT_MAX_LEN, &id, &reason);
		assert_true(r < 0);
		assert_null(id);
		assert_non_null(reason);
		assert_null(strstr(reason, "verified"));
		free(copy);
	}
	free(t);
}

static void
test_truncated(void **state)
{
	truncate_each(token(k_rsa, "RS256", "rsa1", NULL, NULL));
	truncate_each(token(k_rsa, "PS256", NULL, NULL, NULL));
	truncate_each(token(k_p256, "ES256", "ec256", NULL, NULL));
	truncate_each(token(k_p384, "ES384", "ec384", NULL, NULL));
	truncate_each(token(k_ed, "EdDSA", "ed1", NULL, NULL));
	(void)state;
}

static void
test_mutated(void **state)
{
	char *t = token(k_p256, "ES256", "ec256", NULL, NULL);
	size_t len = strlen(t), i;
	struct policy_identity *id;
	const char *reason;
	int r;

	/* Any single changed byte is refused. */
	for (i = 0; i < len; i++) {
		char saved = t[i];

		t[i] = t[i] == 'A' ? 'B' : 'A';
		id = NULL;
		r = verify_at(t, len, NOW, JWT_DEFAULT_MAX_LEN, &id, &reason);
		if (r == 0)
			fail_msg("byte %zu changed and still verified", i);
		assert_null(id);
		t[i] = saved;
	}
	free(t);
	(void)state;
}

/*
 * JWT-SVIDs: an issuer with a trust domain takes tokens whose sub is a
 * SPIFFE ID of it, with or without iss (unless it pins one), verified
 * with its bundle's JWT keys (use "jwt-svid").
 */
static void
test_jwt_svid(void **state)
{
	EVP_PKEY *k = ts_keygen("P-256", 0);
	char *jwk = ts_jwk(k, "td1", NULL, "\"use\":\"jwt-svid\"");
	char *set = ts_fmt("{\"keys\":[%s]}", jwk);
	struct policy_issuer *td = issuer_new(ISS_A, JWT_ALG_ALL, set);
	struct policy_issuer *list[3] = { iss_a, iss_b, td };
	struct policy_identity *id = NULL;
	const char *reason = NULL;
	static const struct {
		const char *iss;	/* NULL: none */
		const char *sub;
		int code;
		const char *reason;
	} cases[] = {
		{ NULL, "spiffe://prod.example.org/ns/pay/sa/api", 0, "verified" },
		{ "https://spire.example", "spiffe://prod.example.org/w", 0, "verified" },
		{ NULL, "spiffe://prod.example.org", CG_ERR_VERIFY,
		  "sub is not a SPIFFE ID of the trust domain" },
		{ NULL, "spiffe://prod.example.org/a//b", CG_ERR_VERIFY,
		  "sub is not a SPIFFE ID of the trust domain" },
		{ NULL, "spiffe://PROD.example.org/w", CG_ERR_NOTFOUND,
		  "unknown trust domain" },
		{ NULL, "spiffe://other.example.org/w", CG_ERR_NOTFOUND,
		  "unknown trust domain" },
		{ NULL, "svc-a", CG_ERR_VERIFY, "iss missing or not a string" },
		/* An ordinary issuer's iss wins: its keys, not the domain's. */
		{ ISS_A, "spiffe://prod.example.org/w", CG_ERR_NOTFOUND, "unknown key id" },
	};
	char *p, *t, issm[128];
	size_t i;

	(void)state;
	free(td->iss);
	td->iss = NULL;
	assert_non_null(td->trust_domain = strdup("prod.example.org"));
	free(td->name);
	assert_non_null(td->name = strdup("prod"));
	for (i = 0; i < CG_ARRAY_LEN(cases); i++) {
		if (cases[i].iss != NULL)
			snprintf(issm, sizeof(issm), "\"iss\":\"%s\",", cases[i].iss);
		else
			issm[0] = '\0';
		p = ts_fmt("{%s\"sub\":\"%s\",\"aud\":\"%s\",\"iat\":%lld,\"exp\":%lld}",
		    issm, cases[i].sub, AUD, NOW - 10, NOW + 300);
		t = token(k, "ES256", "td1", NULL, p);
		id = NULL;
		if (jwt_verify(list, 3, t, strlen(t), NOW, JWT_DEFAULT_MAX_LEN, &id, &reason,
		    NULL) != cases[i].code ||
		    (cases[i].reason != NULL && strcmp(reason, cases[i].reason) != 0))
			fail_msg("case %zu: %s", i, reason);
		if (cases[i].code == 0) {
			assert_ptr_equal(id->issuer, td);
			assert_string_equal(id->method, "jwt-svid");
			assert_non_null(id->spiffe);
			assert_string_equal(id->spiffe->trust_domain, "prod.example.org");
			assert_string_equal(id->sub, cases[i].sub);
		}
		policy_identity_free(id);
		free(p);
		free(t);
	}
	/* An ordinary token keeps its method and has no SPIFFE ID. */
	t = token(k_p256, "ES256", "ec256", NULL, NULL);
	assert_int_equal(jwt_verify(list, 3, t, strlen(t), NOW, JWT_DEFAULT_MAX_LEN, &id,
	    &reason, NULL), 0);
	assert_string_equal(id->method, "jwt");
	assert_null(id->spiffe);
	policy_identity_free(id);
	free(t);

	/* Pinned to an iss: only tokens that carry it. */
	assert_non_null(td->iss = strdup("https://spire.example"));
	p = ts_fmt("{\"sub\":\"spiffe://prod.example.org/w\",\"aud\":\"%s\","
	    "\"iat\":%lld,\"exp\":%lld}", AUD, NOW - 10, NOW + 300);
	t = token(k, "ES256", "td1", NULL, p);
	assert_int_equal(jwt_verify(list, 3, t, strlen(t), NOW, JWT_DEFAULT_MAX_LEN, &id,
	    &reason, NULL), CG_ERR_NOTFOUND);
	assert_string_equal(reason, "unknown trust domain");
	free(p);
	free(t);

	policy_issuer_free(td);
	free(set);
	free(jwk);
	EVP_PKEY_free(k);
}

static void
test_no_issuers(void **state)
{
	struct policy_identity *id = NULL;
	const char *reason = NULL;
	char *t = token(k_p256, "ES256", "ec256", NULL, NULL);
	struct policy_issuer empty = { 0 };
	struct policy_issuer *list[1] = { &empty };
	const struct policy_issuer *nokey = &empty;

	assert_int_equal(jwt_verify(NULL, 0, t, strlen(t), NOW, JWT_DEFAULT_MAX_LEN,
	    &id, &reason, &nokey), CG_ERR_NOTFOUND);
	assert_string_equal(reason, "unknown issuer");
	assert_null(nokey);	/* not for want of a key */
	/* An issuer whose key set is not loaded fails closed, and says it
	 * lacks keys. */
	empty.iss = (char *)ISS_A;
	empty.algs = JWT_ALG_ALL;
	assert_int_equal(jwt_verify(list, 1, t, strlen(t), NOW, JWT_DEFAULT_MAX_LEN,
	    &id, &reason, &nokey), CG_ERR_NOTFOUND);
	assert_string_equal(reason, "issuer has no keys");
	assert_ptr_equal(nokey, &empty);
	assert_null(id);
	/* A ring without a set is the same. */
	assert_non_null(empty.ring = policy_keyring_new(NULL));
	nokey = NULL;
	assert_int_equal(jwt_verify(list, 1, t, strlen(t), NOW, JWT_DEFAULT_MAX_LEN,
	    &id, &reason, &nokey), CG_ERR_NOTFOUND);
	assert_ptr_equal(nokey, &empty);
	policy_keyring_unref(empty.ring);
	free(t);
	(void)state;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_rs256),
		cmocka_unit_test(test_valid_ps256),
		cmocka_unit_test(test_valid_es256),
		cmocka_unit_test(test_valid_es384),
		cmocka_unit_test(test_valid_eddsa),
		cmocka_unit_test(test_no_kid),
		cmocka_unit_test(test_typ),
		cmocka_unit_test(test_too_large),
		cmocka_unit_test(test_shape),
		cmocka_unit_test(test_trailing_bits),
		cmocka_unit_test(test_payload_trailing_bits),
		cmocka_unit_test(test_header_json),
		cmocka_unit_test(test_alg),
		cmocka_unit_test(test_crit),
		cmocka_unit_test(test_alg_not_allowed),
		cmocka_unit_test(test_key_selection),
		cmocka_unit_test(test_embedded_keys_ignored),
		cmocka_unit_test(test_ecdsa_forms),
		cmocka_unit_test(test_flipped_signature),
		cmocka_unit_test(test_rs_ps_confusion),
		cmocka_unit_test(test_payload_json),
		cmocka_unit_test(test_issuer),
		cmocka_unit_test(test_claims),
		cmocka_unit_test(test_claims_after_signature),
		cmocka_unit_test(test_nbf_iat_values),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_mutated),
		cmocka_unit_test(test_no_issuers),
		cmocka_unit_test(test_jwt_svid),
		cmocka_unit_test(test_rs256_signature_checks),
		cmocka_unit_test(test_rs256_from_threads),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
