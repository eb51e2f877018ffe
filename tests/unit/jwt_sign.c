/*
 * jwt_sign.c: the signing side the unit tests need (key generation, JWK
 * export, JWS signatures in every form we accept or must refuse).  Uses
 * OpenSSL 3 EVP and ECDSA_SIG only; aborts on any failure.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "common.h"
#include "tests/unit/jwt_sign.h"

static void die(const char *what) __attribute__((noreturn));

static void
die(const char *what)
{
	fprintf(stderr, "jwt_sign: %s failed\n", what);
	abort();
}

static void *
xmalloc(size_t n)
{
	void *p = malloc(n == 0 ? 1 : n);

	if (p == NULL)
		die("malloc");
	return p;
}

char *
ts_fmt(const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		die("vasprintf");
	va_end(ap);
	return s;
}

char *
ts_b64(const void *p, size_t n)
{
	char *s = xmalloc(b64url_encoded_len(n) + 1);

	b64url_encode(p, n, s);
	return s;
}

EVP_PKEY *
ts_keygen(const char *type, int bits)
{
	EVP_PKEY *k = NULL;

	if (strcmp(type, "RSA") == 0)
		k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
	else if (strcmp(type, "P-256") == 0)
		k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	else if (strcmp(type, "P-384") == 0)
		k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	else if (strcmp(type, "Ed25519") == 0)
		k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	if (k == NULL)
		die("keygen");
	return k;
}

/* A BIGNUM parameter as exactly width bytes (0: minimal), base64url. */
static char *
bn_b64(EVP_PKEY *key, const char *param, int width)
{
	BIGNUM *bn = NULL;
	unsigned char buf[1024];
	int n;
	char *s;

	if (EVP_PKEY_get_bn_param(key, param, &bn) != 1)
		die("get_bn_param");
	if (width == 0)
		width = BN_num_bytes(bn);
	if (width > (int)sizeof(buf) || (n = BN_bn2binpad(bn, buf, width)) < 0)
		die("bn2binpad");
	BN_free(bn);
	s = ts_b64(buf, (size_t)n);
	return s;
}

static int
ec_width(EVP_PKEY *key)
{
	return EVP_PKEY_get_bits(key) == 256 ? 32 : 48;
}

char *
ts_jwk_member(EVP_PKEY *key, const char *member)
{
	unsigned char raw[32];
	size_t rawlen = sizeof(raw);

	if (EVP_PKEY_is_a(key, "RSA")) {
		if (strcmp(member, "n") == 0)
			return bn_b64(key, OSSL_PKEY_PARAM_RSA_N, 0);
		if (strcmp(member, "e") == 0)
			return bn_b64(key, OSSL_PKEY_PARAM_RSA_E, 0);
	} else if (EVP_PKEY_is_a(key, "EC")) {
		if (strcmp(member, "x") == 0)
			return bn_b64(key, OSSL_PKEY_PARAM_EC_PUB_X, ec_width(key));
		if (strcmp(member, "y") == 0)
			return bn_b64(key, OSSL_PKEY_PARAM_EC_PUB_Y, ec_width(key));
		if (strcmp(member, "d") == 0)
			return bn_b64(key, OSSL_PKEY_PARAM_PRIV_KEY, ec_width(key));
	} else if (EVP_PKEY_is_a(key, "ED25519")) {
		if (strcmp(member, "x") == 0) {
			if (EVP_PKEY_get_raw_public_key(key, raw, &rawlen) != 1)
				die("get_raw_public_key");
			return ts_b64(raw, rawlen);
		}
	}
	die("jwk member");
}

char *
ts_jwk(EVP_PKEY *key, const char *kid, const char *alg, const char *extra)
{
	char *a, *b, *core, *out, *opt;

	if (EVP_PKEY_is_a(key, "RSA")) {
		a = ts_jwk_member(key, "n");
		b = ts_jwk_member(key, "e");
		core = ts_fmt("\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"%s\"", a, b);
	} else if (EVP_PKEY_is_a(key, "EC")) {
		a = ts_jwk_member(key, "x");
		b = ts_jwk_member(key, "y");
		core = ts_fmt("\"kty\":\"EC\",\"crv\":\"%s\",\"x\":\"%s\",\"y\":\"%s\"",
		    ec_width(key) == 32 ? "P-256" : "P-384", a, b);
	} else {
		a = ts_jwk_member(key, "x");
		b = NULL;
		core = ts_fmt("\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"%s\"", a);
	}
	opt = ts_fmt("%s%s%s%s%s%s%s",
	    kid != NULL ? ",\"kid\":\"" : "", kid != NULL ? kid : "",
	    kid != NULL ? "\"" : "",
	    alg != NULL ? ",\"alg\":\"" : "", alg != NULL ? alg : "",
	    alg != NULL ? "\"" : "",
	    "");
	out = ts_fmt("{%s%s%s%s}", core, opt, extra != NULL ? "," : "",
	    extra != NULL ? extra : "");
	free(a);
	free(b);
	free(core);
	free(opt);
	return out;
}

unsigned char *
ts_sig(EVP_PKEY *key, const char *alg, const char *msg, size_t msglen,
    int der, size_t *siglen)
{
	EVP_MD_CTX *ctx;
	EVP_PKEY_CTX *pctx = NULL;
	const EVP_MD *md = NULL;
	unsigned char *sig, *raw;
	size_t len = 0, w;
	ECDSA_SIG *es;
	const unsigned char *p;
	const BIGNUM *r, *s;

	if (strcmp(alg, "RS256") == 0 || strcmp(alg, "PS256") == 0 ||
	    strcmp(alg, "ES256") == 0)
		md = EVP_sha256();
	else if (strcmp(alg, "ES384") == 0)
		md = EVP_sha384();
	if ((ctx = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestSignInit(ctx, &pctx, md, NULL, key) != 1)
		die("DigestSignInit");
	if (strcmp(alg, "PS256") == 0 &&
	    (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
	    EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1))
		die("pss");
	if (EVP_DigestSign(ctx, NULL, &len, (const unsigned char *)msg, msglen) != 1)
		die("DigestSign size");
	sig = xmalloc(len);
	if (EVP_DigestSign(ctx, sig, &len, (const unsigned char *)msg, msglen) != 1)
		die("DigestSign");
	EVP_MD_CTX_free(ctx);
	if (der || (strcmp(alg, "ES256") != 0 && strcmp(alg, "ES384") != 0)) {
		*siglen = len;
		return sig;
	}
	/* DER ECDSA-Sig-Value -> r||s, each left-padded to the curve size
	 * (of the key: tests sign with the wrong curve on purpose). */
	w = (size_t)ec_width(key);
	p = sig;
	if ((es = d2i_ECDSA_SIG(NULL, &p, (long)len)) == NULL)
		die("d2i_ECDSA_SIG");
	ECDSA_SIG_get0(es, &r, &s);
	raw = xmalloc(2 * w);
	if (BN_bn2binpad(r, raw, (int)w) < 0 || BN_bn2binpad(s, raw + w, (int)w) < 0)
		die("bn2binpad");
	ECDSA_SIG_free(es);
	free(sig);
	*siglen = 2 * w;
	return raw;
}

char *
ts_signing_input(const char *header_json, const char *payload_json)
{
	char *h = ts_b64(header_json, strlen(header_json));
	char *p = ts_b64(payload_json, strlen(payload_json));
	char *out = ts_fmt("%s.%s", h, p);

	free(h);
	free(p);
	return out;
}

char *
ts_join(const char *signing_input, const unsigned char *sig, size_t siglen)
{
	char *s = ts_b64(sig, siglen);
	char *out = ts_fmt("%s.%s", signing_input, s);

	free(s);
	return out;
}

char *
ts_token(EVP_PKEY *key, const char *alg, const char *header_json,
    const char *payload_json)
{
	char *in = ts_signing_input(header_json, payload_json);
	unsigned char *sig;
	size_t siglen;
	char *out;

	sig = ts_sig(key, alg, in, strlen(in), 0, &siglen);
	out = ts_join(in, sig, siglen);
	free(sig);
	free(in);
	return out;
}
