/*
 * jwt.c: verifies a compact JWS token (RFC 7515, 7519) against the trusted
 * issuers and turns it into a struct policy_identity.
 *
 * It owns the token checks, key selection, signature verification and claim
 * checks.  It never fetches anything: the keys are the issuer's loaded JWKS
 * (jwks.c).  Rules and identities themselves belong to rules.c and
 * identity.c.
 *
 * Order of the checks (each failure has its own static reason text):
 *   size and shape -> header -> payload and issuer -> allowed algorithm ->
 *   key selection -> signature -> claims -> identity.
 *
 * Header members that name or carry keys ("jku", "x5u", "jwk", "x5c",
 * "x5t", "x5t#S256") are ignored, not refused: several issuers send "x5t"
 * next to "kid", and refusing them would gain nothing.  Only "alg", "kid",
 * "typ" and "crit" are ever read, so those members cannot select a key; a
 * token signed by a key it carries itself verifies only if that key is also
 * in the issuer's JWKS.
 *
 * Signatures: PS256, ES256 and ES384 verify with cjose (the key handed to
 * it is the cjose twin of the JWKS entry we selected, and cjose only runs
 * after our own checks below).  Those checks are needed because cjose
 * 0.6.2 alone would accept too much:
 *   - ES*: it splits any signature in two halves (sig_len / 2) and only
 *     checks that the key is EC, so a DER signature or an ES256 token
 *     against a P-384 key would reach ECDSA; we require exactly 64 / 96
 *     bytes, r != 0, s != 0 and the key's curve to match the algorithm;
 *   - PS*: it decrypts signatures shorter than the modulus; we require the
 *     exact modulus length;
 *   - it parses the header again with plain jansson (duplicates allowed);
 *     we have already refused duplicates and compare its view of "alg"
 *     with ours before verifying.
 * EdDSA (Ed25519) is not in cjose 0.6.2 and verifies with OpenSSL EVP.
 * RS256, the common case, verifies with OpenSSL too (verify_rs256): the
 * same RSASSA-PKCS1-v1_5 check, without cjose parsing the token again.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <cjose/cjose.h>

#include "common.h"
#include "policy.h"
#include "jwt_int.h"
#include "policy/spiffe.h"

/* Times are clamped into this range so that sums and differences with
 * clamped skew and lifetime cannot overflow int64_t. */
#define JWT_TIME_LIMIT		((int64_t)1 << 61)
#define JWT_SPAN_LIMIT		((int64_t)1 << 40)

struct jwt_parts {
	const char *hdr_b64;
	size_t hdr_b64_len;
	const char *pay_b64;
	size_t pay_b64_len;
	const char *sig_b64;
	size_t sig_b64_len;
	size_t signed_len;	/* bytes of "header.payload" */
};

/* The base64url alphabet. */
static const bool b64url_char[256] = {
	['A' ... 'Z'] = true, ['a' ... 'z'] = true, ['0' ... '9'] = true,
	['-'] = true, ['_'] = true,
};

/* Exactly two dots, three non-empty segments, only base64url bytes. */
static int
split_token(const char *t, size_t len, struct jwt_parts *p)
{
	const unsigned char *u = (const unsigned char *)t;
	size_t i, dots[2], ndots = 0;

	memset(p, 0, sizeof(*p));
	for (i = 0; i < len; i++) {
		if (b64url_char[u[i]])
			continue;
		if (u[i] != '.' || ndots == 2)
			return CG_ERR_FORMAT;
		dots[ndots++] = i;
	}
	if (ndots != 2 || dots[0] == 0 || dots[1] == dots[0] + 1 ||
	    dots[1] + 1 == len)
		return CG_ERR_FORMAT;
	p->hdr_b64 = t;
	p->hdr_b64_len = dots[0];
	p->pay_b64 = t + dots[0] + 1;
	p->pay_b64_len = dots[1] - dots[0] - 1;
	p->sig_b64 = t + dots[1] + 1;
	p->sig_b64_len = len - dots[1] - 1;
	p->signed_len = dots[1];
	return 0;
}

/*
 * Decodes one segment (strict base64url) into a new buffer of *outlen
 * bytes.  Returns 0, CG_ERR_FORMAT or CG_ERR_NOMEM.
 */
static int
decode_segment(const char *s, size_t slen, unsigned char **out, size_t *outlen)
{
	unsigned char *buf;
	size_t max = b64url_decoded_max(slen);

	*out = NULL;
	*outlen = 0;
	if ((buf = malloc(max + 1)) == NULL)
		return CG_ERR_NOMEM;
	if (b64url_decode(s, slen, buf, outlen) != 0 || *outlen == 0) {
		cg_wipe(buf, max + 1);
		free(buf);
		*outlen = 0;
		return CG_ERR_FORMAT;
	}
	*out = buf;
	return 0;
}

static void
free_segment(unsigned char *buf, size_t len)
{
	if (buf == NULL)
		return;
	cg_wipe(buf, len);
	free(buf);
}

/*
 * Decodes and parses a header or payload segment as a strict JSON object.
 * The three reasons are the caller's, for its segment.
 */
static int
load_segment(const char *s, size_t slen, json_t **out, const char **reason,
    const char *bad_enc, const char *bad_json, const char *not_obj)
{
	unsigned char *raw = NULL;
	size_t rawlen = 0;
	json_t *v = NULL;
	int r;

	*out = NULL;
	if ((r = decode_segment(s, slen, &raw, &rawlen)) != 0) {
		*reason = r == CG_ERR_NOMEM ? "out of memory" : bad_enc;
		goto out;
	}
	if ((r = cg_json_strict_load((const char *)raw, rawlen,
	    JWT_MAX_JSON_DEPTH, &v)) != 0) {
		/* Syntax, duplicate member and depth errors all mean the
		 * segment is not the strict JSON we accept. */
		if (r == CG_ERR_NOMEM)
			*reason = "out of memory";
		else {
			*reason = bad_json;
			r = CG_ERR_FORMAT;
		}
		goto out;
	}
	if (!json_is_object(v)) {
		*reason = not_obj;
		r = CG_ERR_FORMAT;
		goto out;
	}
	*out = v;
	v = NULL;
	r = 0;
 out:
	json_decref(v);
	free_segment(raw, rawlen);
	return r;
}

/* A JSON string without embedded NUL; its value or NULL. */
static const char *
json_cstr(json_t *v)
{
	const char *s;

	if (v == NULL || !json_is_string(v))
		return NULL;
	s = json_string_value(v);
	if (strlen(s) != json_string_length(v))
		return NULL;
	return s;
}

/* Step 2: the protected header.  Sets *alg (one JWT_* bit) and *kid. */
static int
check_header(json_t *hdr, unsigned *alg, json_t **kid, const char **reason)
{
	json_t *v;
	const char *name;

	*alg = 0;
	*kid = NULL;
	if ((name = json_cstr(json_object_get(hdr, "alg"))) == NULL) {
		*reason = "alg missing or not a string";
		return CG_ERR_FORMAT;
	}
	if (strcmp(name, "none") == 0) {
		*reason = "alg none refused";
		return CG_ERR_UNSUPPORTED;
	}
	if (strncmp(name, "HS", 2) == 0) {
		*reason = "HMAC algorithms refused";
		return CG_ERR_UNSUPPORTED;
	}
	if ((*alg = jwt_alg_parse(name)) == 0 || jwt_alg_name(*alg) == NULL) {
		*alg = 0;
		*reason = "unknown algorithm";
		return CG_ERR_UNSUPPORTED;
	}
	if (json_object_get(hdr, "crit") != NULL) {
		/* We understand no extension; RFC 7515 §4.1.11. */
		*reason = "crit header refused";
		return CG_ERR_UNSUPPORTED;
	}
	if ((v = json_object_get(hdr, "typ")) != NULL && !json_is_string(v)) {
		*reason = "typ is not a string";
		return CG_ERR_FORMAT;
	}
	if ((v = json_object_get(hdr, "kid")) != NULL) {
		if (json_cstr(v) == NULL) {
			*reason = "kid is not a string";
			return CG_ERR_FORMAT;
		}
		*kid = v;
	}
	return 0;
}

/* Step 3: the issuer whose iss equals the token's, byte for byte. */
static struct policy_issuer *
find_issuer(struct policy_issuer *const *issuers, size_t nissuers, json_t *iss)
{
	size_t i, n = json_string_length(iss);

	for (i = 0; i < nissuers; i++) {
		const struct policy_issuer *is = issuers[i];

		if (is != NULL && is->iss != NULL && strlen(is->iss) == n &&
		    memcmp(is->iss, json_string_value(iss), n) == 0)
			return issuers[i];
	}
	return NULL;
}

/* Whether the token's sub claims to be a SPIFFE ID. */
static bool
spiffe_sub(json_t *claims)
{
	json_t *sub = json_object_get(claims, "sub");

	return json_cstr(sub) != NULL && strncmp(json_string_value(sub), SPIFFE_SCHEME,
	    SPIFFE_SCHEME_LEN) == 0;
}

/*
 * Step 3 for a JWT-SVID: a token that no issuer claims by iss goes to the
 * issuer of the trust domain its sub names, when that issuer does not
 * pin an iss of its own (SPIFFE makes iss optional) or pins this one.
 * The sub is checked in full afterwards (svid_subject()).
 */
static struct policy_issuer *
find_trust_domain(struct policy_issuer *const *issuers, size_t nissuers, json_t *claims,
    json_t *iss)
{
	const char *sub, *td, *end;
	size_t i, n;

	if (!spiffe_sub(claims))
		return NULL;
	sub = json_string_value(json_object_get(claims, "sub"));
	td = sub + SPIFFE_SCHEME_LEN;
	end = strchr(td, '/');
	n = end != NULL ? (size_t)(end - td) : strlen(td);
	for (i = 0; i < nissuers; i++) {
		const struct policy_issuer *is = issuers[i];

		if (is == NULL || is->trust_domain == NULL || strlen(is->trust_domain) != n ||
		    memcmp(is->trust_domain, td, n) != 0)
			continue;
		if (is->iss != NULL && (iss == NULL || strcmp(is->iss, json_string_value(iss)) != 0))
			continue;
		return issuers[i];
	}
	return NULL;
}

/* A JWT-SVID's sub: a SPIFFE ID with a path in the issuer's trust domain. */
static int
svid_subject(const struct policy_issuer *is, json_t *claims, struct spiffe_id **out,
    const char **reason)
{
	json_t *sub = json_object_get(claims, "sub");
	struct spiffe_id *id;
	char err[128];

	*out = NULL;
	if (json_cstr(sub) == NULL) {
		*reason = "sub missing or not a string";
		return CG_ERR_VERIFY;
	}
	if ((id = malloc(sizeof(*id))) == NULL) {
		*reason = "out of memory";
		return CG_ERR_NOMEM;
	}
	if (spiffe_id_parse(json_string_value(sub), json_string_length(sub), id, err,
	    sizeof(err)) != 0 || id->path[0] == '\0' ||
	    strcmp(id->trust_domain, is->trust_domain) != 0) {
		free(id);
		*reason = "sub is not a SPIFFE ID of the trust domain";
		return CG_ERR_VERIFY;
	}
	*out = id;
	return 0;
}

/*
 * How far a candidate key got; when every candidate fails, the reason of
 * the one that got furthest is reported.
 */
enum sig_stage {
	SIG_STAGE_NONE = 0,
	SIG_STAGE_LENGTH,	/* signature length wrong for the key */
	SIG_STAGE_ZERO,		/* ECDSA r or s is zero */
	SIG_STAGE_CRYPTO,	/* the signature does not verify */
};

static bool
all_zero(const unsigned char *p, size_t n)
{
	unsigned char acc = 0;
	size_t i;

	for (i = 0; i < n; i++)
		acc |= p[i];
	return acc == 0;
}

static int
verify_eddsa(const struct jwks_key *k, const char *msg, size_t msglen,
    const unsigned char *sig, size_t siglen)
{
	EVP_MD_CTX *ctx;
	int ok;

	if ((ctx = EVP_MD_CTX_new()) == NULL)
		return CG_ERR_NOMEM;
	ok = EVP_DigestVerifyInit_ex(ctx, NULL, NULL, NULL, NULL, k->pkey, NULL) == 1 &&
	    EVP_DigestVerify(ctx, sig, siglen, (const unsigned char *)msg, msglen) == 1;
	EVP_MD_CTX_free(ctx);
	return ok ? 0 : CG_ERR_VERIFY;
}

/*
 * RS256 with OpenSSL: a SHA-256 of the signed part, checked against the
 * key's prepared context.  The context is shared by every thread, so each
 * verification works on a copy: cheaper than setting one up (a fetch of
 * the algorithm each time), and than cjose, which decodes and parses the
 * whole token again.
 */
static int
verify_rs256(const struct jwks_key *k, const char *msg, size_t msglen,
    const unsigned char *sig, size_t siglen)
{
	unsigned char dig[EVP_MAX_MD_SIZE];
	unsigned int diglen = 0;
	EVP_PKEY_CTX *ctx;
	int ok;

	if (EVP_Digest(msg, msglen, dig, &diglen, k->sha256, NULL) != 1 ||
	    (ctx = EVP_PKEY_CTX_dup(k->rs256)) == NULL) {
		ERR_clear_error();
		return CG_ERR_NOMEM;
	}
	ok = EVP_PKEY_verify(ctx, sig, siglen, dig, diglen) == 1;
	EVP_PKEY_CTX_free(ctx);
	if (!ok)
		ERR_clear_error();	/* nothing later mistakes it for its own */
	return ok ? 0 : CG_ERR_VERIFY;
}

/*
 * PS256, ES256, ES384 with cjose.  A fresh JWS object per attempt:
 * cjose keeps per-verification state in it.
 */
static int
verify_cjose(const struct jwks_key *k, unsigned alg, const char *token,
    size_t len)
{
	cjose_jws_t *jws;
	cjose_err cerr;
	const char *calg;
	int r = CG_ERR_VERIFY;

	if ((jws = cjose_jws_import(token, len, &cerr)) == NULL)
		return CG_ERR_VERIFY;
	calg = cjose_header_get(cjose_jws_get_protected(jws), CJOSE_HDR_ALG, &cerr);
	if (calg == NULL || strcmp(calg, jwt_alg_name(alg)) != 0)
		goto out;
	if (cjose_jws_verify(jws, k->cjwk, &cerr))
		r = 0;
 out:
	cjose_jws_release(jws);
	return r;
}

/*
 * Step 6 for one key already known to fit alg.  Returns 0 when the
 * signature verifies, CG_ERR_VERIFY with *stage set, or CG_ERR_NOMEM.
 */
static int
verify_with_key(const struct jwks_key *k, unsigned alg, const char *token,
    size_t len, const struct jwt_parts *p, const unsigned char *sig,
    size_t siglen, enum sig_stage *stage)
{
	int r;

	if (siglen != k->sig_len) {
		/* Also refuses DER-encoded ECDSA signatures. */
		*stage = SIG_STAGE_LENGTH;
		return CG_ERR_VERIFY;
	}
	if (k->kty == JWKS_KTY_EC &&
	    (all_zero(sig, siglen / 2) || all_zero(sig + siglen / 2, siglen / 2))) {
		*stage = SIG_STAGE_ZERO;
		return CG_ERR_VERIFY;
	}
	*stage = SIG_STAGE_CRYPTO;
	if (alg == JWT_EDDSA)
		r = verify_eddsa(k, token, p->signed_len, sig, siglen);
	else if (alg == JWT_RS256)
		r = verify_rs256(k, token, p->signed_len, sig, siglen);
	else
		r = verify_cjose(k, alg, token, len);
	return r;
}

/* The algorithms a key's type and curve allow, before any "alg" pin. */
static unsigned
key_type_algs(const struct jwks_key *k)
{
	switch (k->crv) {
	case JWKS_CRV_NONE:
		return k->kty == JWKS_KTY_RSA ? JWT_RS256 | JWT_PS256 : 0;
	case JWKS_CRV_P256:
		return JWT_ES256;
	case JWKS_CRV_P384:
		return JWT_ES384;
	case JWKS_CRV_ED25519:
		return JWT_EDDSA;
	}
	return 0;
}

/* A token's kid selects only keys that carry the same kid. */
static bool
kid_eq(const struct jwks_key *k, json_t *kid)
{
	size_t n = json_string_length(kid);

	return k->has_kid && strlen(k->kid) == n &&
	    memcmp(k->kid, json_string_value(kid), n) == 0;
}

/* Step 5 and 6: selects the key and verifies the signature. */
static int
select_and_verify(const struct jwks *ks, unsigned alg, json_t *kid,
    const char *token, size_t len, const struct jwt_parts *p,
    const struct jwks_key **used, const char **reason)
{
	const struct jwks_key *k;
	unsigned char *sig = NULL;
	size_t siglen = 0, i;
	enum sig_stage stage, best = SIG_STAGE_NONE;
	int r;

	*used = NULL;
	if (ks == NULL || ks->nkeys == 0) {
		*reason = "issuer has no keys";
		return CG_ERR_NOTFOUND;
	}
	if (kid != NULL) {
		for (i = 0, k = NULL; i < ks->nkeys; i++) {
			if (kid_eq(&ks->keys[i], kid)) {
				k = &ks->keys[i];
				break;
			}
		}
		if (k == NULL) {
			*reason = "unknown key id";
			return CG_ERR_NOTFOUND;
		}
		if ((key_type_algs(k) & alg) == 0) {
			*reason = "algorithm does not match key type";
			return CG_ERR_UNSUPPORTED;
		}
		if ((k->algs & alg) == 0) {
			*reason = "key pinned to another algorithm";
			return CG_ERR_UNSUPPORTED;
		}
	} else {
		for (i = 0; i < ks->nkeys; i++)
			if ((ks->keys[i].algs & alg) != 0)
				break;
		if (i == ks->nkeys) {
			*reason = "no key for algorithm";
			return CG_ERR_NOTFOUND;
		}
	}

	if ((r = decode_segment(p->sig_b64, p->sig_b64_len, &sig, &siglen)) != 0) {
		*reason = r == CG_ERR_NOMEM ? "out of memory" :
		    "malformed signature encoding";
		return r;
	}
	for (i = 0; i < ks->nkeys; i++) {
		k = &ks->keys[i];
		/* With a kid only that key (checked above); without one,
		 * every key that fits the algorithm. */
		if (kid != NULL ? !kid_eq(k, kid) : (k->algs & alg) == 0)
			continue;
		stage = SIG_STAGE_NONE;
		r = verify_with_key(k, alg, token, len, p, sig, siglen, &stage);
		if (r == 0) {
			*used = k;
			goto out;
		}
		if (r != CG_ERR_VERIFY) {
			*reason = "out of memory";
			goto out;
		}
		if (stage > best)
			best = stage;
	}
	r = CG_ERR_VERIFY;
	switch (best) {
	case SIG_STAGE_LENGTH:
		*reason = "bad signature length";
		break;
	case SIG_STAGE_ZERO:
		*reason = "ECDSA signature with zero r or s";
		break;
	default:
		*reason = "bad signature";
		break;
	}
 out:
	free_segment(sig, siglen);
	return r;
}

static int64_t
clamp64(int64_t v, int64_t lo, int64_t hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

/*
 * A NumericDate as int64, clamped.  Reals are rounded toward the safe
 * side: down for exp (expires earlier), up for nbf and iat.
 */
static int64_t
numeric_date(json_t *v, bool round_up)
{
	double d;
	int64_t t;

	if (json_is_integer(v))
		return clamp64(json_integer_value(v), -JWT_TIME_LIMIT, JWT_TIME_LIMIT);
	d = json_real_value(v);
	if (d >= (double)JWT_TIME_LIMIT)
		return JWT_TIME_LIMIT;
	if (d <= -(double)JWT_TIME_LIMIT)
		return -JWT_TIME_LIMIT;
	t = (int64_t)d;		/* toward zero */
	if (round_up && (double)t < d)
		t++;
	else if (!round_up && (double)t > d)
		t--;
	return t;
}

static bool
aud_accepted(const struct policy_issuer *is, json_t *aud)
{
	size_t i, n = json_string_length(aud);

	for (i = 0; i < is->naudiences; i++) {
		if (is->audiences[i] != NULL && strlen(is->audiences[i]) == n &&
		    memcmp(is->audiences[i], json_string_value(aud), n) == 0)
			return true;
	}
	return false;
}

/* Step 7: the registered claims, after the signature is good. */
static int
check_claims(const struct policy_issuer *is, json_t *claims, int64_t now,
    int64_t *exp_out, int64_t *iat_out, int64_t *nbf_out, const char **reason)
{
	json_t *exp_v, *nbf_v, *iat_v, *aud, *v;
	int64_t exp, nbf = 0, iat = 0, skew, life;
	size_t i;
	bool ok;

	*exp_out = *iat_out = *nbf_out = 0;
	skew = clamp64(is->clock_skew_s, 0, JWT_SPAN_LIMIT);
	life = clamp64(is->max_lifetime_s, 0, JWT_SPAN_LIMIT);
	now = clamp64(now, -JWT_TIME_LIMIT, JWT_TIME_LIMIT);

	if ((exp_v = json_object_get(claims, "exp")) == NULL) {
		*reason = "exp missing";
		return CG_ERR_VERIFY;
	}
	if (!json_is_number(exp_v)) {
		*reason = "exp is not a number";
		return CG_ERR_VERIFY;
	}
	exp = numeric_date(exp_v, false);
	if ((nbf_v = json_object_get(claims, "nbf")) != NULL) {
		if (!json_is_number(nbf_v)) {
			*reason = "nbf is not a number";
			return CG_ERR_VERIFY;
		}
		nbf = numeric_date(nbf_v, true);
	}
	if ((iat_v = json_object_get(claims, "iat")) != NULL) {
		if (!json_is_number(iat_v)) {
			*reason = "iat is not a number";
			return CG_ERR_VERIFY;
		}
		iat = numeric_date(iat_v, true);
	}
	if (now >= exp + skew) {
		*reason = "token expired";
		return CG_ERR_EXPIRED;
	}
	if (nbf_v != NULL && now + skew < nbf) {
		*reason = "token not yet valid";
		return CG_ERR_EXPIRED;
	}
	if (iat_v != NULL && iat > now + skew) {
		*reason = "iat in the future";
		return CG_ERR_VERIFY;
	}
	if (exp - (iat_v != NULL ? iat : now) > life) {
		*reason = "token lifetime too long";
		return CG_ERR_VERIFY;
	}

	if ((aud = json_object_get(claims, "aud")) == NULL) {
		*reason = "aud missing";
		return CG_ERR_VERIFY;
	}
	if (json_is_string(aud))
		ok = aud_accepted(is, aud);
	else if (json_is_array(aud) && json_array_size(aud) > 0) {
		ok = false;
		json_array_foreach(aud, i, v) {
			if (!json_is_string(v)) {
				*reason = "aud is not a string or array of strings";
				return CG_ERR_VERIFY;
			}
			if (aud_accepted(is, v))
				ok = true;
		}
	} else {
		*reason = "aud is not a string or array of strings";
		return CG_ERR_VERIFY;
	}
	if (!ok) {
		*reason = "audience not accepted";
		return CG_ERR_VERIFY;
	}

	if ((v = json_object_get(claims, "sub")) != NULL && json_cstr(v) == NULL) {
		*reason = "sub is not a string";
		return CG_ERR_VERIFY;
	}
	if ((v = json_object_get(claims, "jti")) != NULL && json_cstr(v) == NULL) {
		*reason = "jti is not a string";
		return CG_ERR_VERIFY;
	}
	*exp_out = exp;
	*iat_out = iat_v != NULL ? iat : 0;
	*nbf_out = nbf_v != NULL ? nbf : 0;
	return 0;
}

int
jwt_verify(struct policy_issuer *const *issuers, size_t nissuers,
    const char *token, size_t len, int64_t now_s, size_t max_len,
    struct policy_identity **out, const char **reason,
    const struct policy_issuer **nokey)
{
	struct jwt_parts parts;
	struct jwks *ks = NULL;
	struct spiffe_id *spiffe = NULL;
	json_t *hdr = NULL, *claims = NULL, *kid = NULL, *iss;
	const struct policy_issuer *is;
	const struct jwks_key *key = NULL;
	struct policy_identity *id = NULL;
	int64_t exp = 0, iat = 0, nbf = 0;
	const char *name;
	unsigned alg = 0;
	int r;

	*out = NULL;
	*reason = "internal error";
	if (nokey != NULL)
		*nokey = NULL;

	/* 1. Size and shape. */
	if (len > max_len) {
		*reason = "token too large";
		return CG_ERR_LIMIT;
	}
	if (token == NULL || split_token(token, len, &parts) != 0) {
		*reason = "malformed token";
		return CG_ERR_FORMAT;
	}

	/* 2. Header. */
	if ((r = load_segment(parts.hdr_b64, parts.hdr_b64_len, &hdr, reason,
	    "malformed header encoding", "header is not strict JSON",
	    "header is not a JSON object")) != 0)
		goto out;
	if ((r = check_header(hdr, &alg, &kid, reason)) != 0)
		goto out;

	/* 3. Payload and issuer. */
	if ((r = load_segment(parts.pay_b64, parts.pay_b64_len, &claims, reason,
	    "malformed payload encoding", "payload is not strict JSON",
	    "payload is not a JSON object")) != 0)
		goto out;
	if ((iss = json_object_get(claims, "iss")) != NULL && json_cstr(iss) == NULL) {
		*reason = "iss missing or not a string";
		r = CG_ERR_VERIFY;
		goto out;
	}
	if ((is = iss != NULL ? find_issuer(issuers, nissuers, iss) : NULL) == NULL &&
	    (is = find_trust_domain(issuers, nissuers, claims, iss)) == NULL) {
		*reason = iss != NULL ? "unknown issuer" : spiffe_sub(claims) ?
		    "unknown trust domain" : "iss missing or not a string";
		r = iss == NULL && !spiffe_sub(claims) ? CG_ERR_VERIFY : CG_ERR_NOTFOUND;
		goto out;
	}
	/* A trust domain's token (JWT-SVID) names a workload of it in sub. */
	if (is->trust_domain != NULL && (r = svid_subject(is, claims, &spiffe, reason)) != 0)
		goto out;

	/* 4. Algorithm allowed for this issuer. */
	if ((is->algs & alg) == 0) {
		*reason = "algorithm not allowed";
		r = CG_ERR_UNSUPPORTED;
		goto out;
	}

	/* 5, 6. Key and signature, with the ring's current set: the
	 * identity keeps it, so that a cache knows which set verified. */
	ks = policy_keyring_get(is->ring);
	if ((r = select_and_verify(ks, alg, kid, token, len, &parts, &key,
	    reason)) != 0) {
		if (r == CG_ERR_NOTFOUND && nokey != NULL)
			*nokey = is;
		goto out;
	}

	/* 7. Claims. */
	if ((r = check_claims(is, claims, now_s, &exp, &iat, &nbf, reason)) != 0)
		goto out;

	/* 8. Identity. */
	if ((id = calloc(1, sizeof(*id))) == NULL) {
		*reason = "out of memory";
		r = CG_ERR_NOMEM;
		goto out;
	}
	id->refs = 1;
	id->issuer = is;
	id->method = is->trust_domain != NULL ? "jwt-svid" : "jwt";
	id->claims = claims;
	claims = NULL;
	id->keys = ks;
	ks = NULL;
	id->spiffe = spiffe;
	spiffe = NULL;
	id->iss = json_cstr(json_object_get(id->claims, "iss"));
	id->sub = json_cstr(json_object_get(id->claims, "sub"));
	id->jti = json_cstr(json_object_get(id->claims, "jti"));
	id->aud = json_object_get(id->claims, "aud");
	id->exp = exp;
	id->iat = iat;
	id->nbf = nbf;
	name = jwt_alg_name(alg);	/* at most "EdDSA" */
	memcpy(id->alg, name, strlen(name) + 1);
	if (key->has_kid)
		memcpy(id->kid, key->kid, strlen(key->kid) + 1);
	*out = id;
	*reason = "verified";
	r = 0;
 out:
	free(spiffe);
	jwks_free(ks);
	json_decref(hdr);
	json_decref(claims);
	return r;
}
