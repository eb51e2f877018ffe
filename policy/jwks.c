/*
 * jwks.c: loads a JSON Web Key Set (RFC 7517) into an immutable struct jwks
 * of public signature keys, each as an OpenSSL EVP_PKEY and, for RSA and
 * EC, as the cjose key that jwt.c verifies with.
 *
 * It owns the file and memory readers, the per-key checks and jwks_free().
 * It does no network I/O and knows nothing about tokens.
 *
 * Choices, so that a key set means exactly one thing:
 *  - keys whose "use" is not "sig", whose "key_ops" lack "verify", whose kty
 *    is unknown, whose curve we do not support, or whose "alg" names an
 *    algorithm we do not verify, are skipped (not errors);
 *  - a symmetric ("oct") entry is skipped and counted, so that the caller
 *    warns: such a key is a shared secret, no proof of who signed;
 *  - any private member (d, p, q, dp, dq, qi, oth, k) in any other entry
 *    refuses the whole set: someone published a secret, and nothing from
 *    that source is trusted;
 *  - duplicate kids among the usable keys refuse the set;
 *  - every base64url member is strict (no padding, no stray bits) and
 *    integers are minimal (no leading zero octet, RFC 7518 §6.3.1);
 *  - error texts name the entry and the problem, never key material.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "common.h"
#include "policy.h"
#include "jwt_int.h"

static void
key_clear(struct jwks_key *k)
{
	EVP_PKEY_CTX_free(k->rs256);
	EVP_MD_free(k->sha256);
	EVP_PKEY_free(k->pkey);
	if (k->cjwk != NULL)
		cjose_jwk_release(k->cjwk);
	memset(k, 0, sizeof(*k));
}

struct jwks *
jwks_ref(struct jwks *ks)
{
	if (ks != NULL)
		__atomic_add_fetch(&ks->refs, 1, __ATOMIC_RELAXED);
	return ks;
}

void
jwks_free(struct jwks *ks)
{
	size_t i;

	if (ks == NULL || __atomic_sub_fetch(&ks->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	for (i = 0; i < ks->nkeys; i++)
		key_clear(&ks->keys[i]);
	free(ks->keys);
	free(ks);
}

size_t
jwks_count(const struct jwks *ks)
{
	return ks == NULL ? 0 : ks->nkeys;
}

size_t
jwks_skipped_symmetric(const struct jwks *ks)
{
	return ks == NULL ? 0 : ks->nskipped_oct;
}

bool
jwks_same(const struct jwks *a, const struct jwks *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return a->nkeys == b->nkeys &&
	    memcmp(a->digest, b->digest, sizeof(a->digest)) == 0;
}

/* The digest jwks_same() compares: each key's kid (with its length), the
 * algorithms it may verify and its public key in DER. */
static int
jwks_digest(struct jwks *ks)
{
	EVP_MD_CTX *md = NULL;
	unsigned char *der = NULL;
	unsigned int dlen = 0;
	size_t i, n;
	int len, r = CG_ERR_NOMEM;

	if ((md = EVP_MD_CTX_new()) == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
		goto out;
	for (i = 0; i < ks->nkeys; i++) {
		const struct jwks_key *k = &ks->keys[i];
		unsigned char head[2 * sizeof(size_t) + sizeof(unsigned)];

		n = k->has_kid ? strlen(k->kid) + 1 : 0;
		memcpy(head, &n, sizeof(n));
		memcpy(head + sizeof(n), &k->algs, sizeof(k->algs));
		der = NULL;
		if ((len = i2d_PUBKEY(k->pkey, &der)) <= 0)
			goto out;
		n = (size_t)len;
		memcpy(head + sizeof(n) + sizeof(k->algs), &n, sizeof(n));
		if (EVP_DigestUpdate(md, head, sizeof(head)) != 1 ||
		    EVP_DigestUpdate(md, k->kid, k->has_kid ? strlen(k->kid) + 1 : 0) != 1 ||
		    EVP_DigestUpdate(md, der, n) != 1)
			goto out;
		OPENSSL_free(der);
		der = NULL;
	}
	if (EVP_DigestFinal_ex(md, ks->digest, &dlen) != 1 || dlen != sizeof(ks->digest))
		goto out;
	r = 0;
 out:
	OPENSSL_free(der);
	EVP_MD_CTX_free(md);
	return r;
}

/*
 * Decodes member `name` of key object `jk` as strict base64url into a new
 * buffer.  Returns 0, CG_ERR_NOTFOUND when absent, CG_ERR_FORMAT when not a
 * string or not strict base64url, CG_ERR_NOMEM.
 */
static int
member_b64(json_t *jk, const char *name, unsigned char **out, size_t *outlen)
{
	json_t *v;
	const char *s;
	size_t slen, n = 0;
	unsigned char *buf = NULL;
	int r;

	*out = NULL;
	*outlen = 0;
	if ((v = json_object_get(jk, name)) == NULL)
		return CG_ERR_NOTFOUND;
	if (!json_is_string(v))
		return CG_ERR_FORMAT;
	s = json_string_value(v);
	slen = json_string_length(v);
	if (slen == 0)
		return CG_ERR_FORMAT;
	if ((buf = malloc(b64url_decoded_max(slen) + 1)) == NULL)
		return CG_ERR_NOMEM;
	if ((r = b64url_decode(s, slen, buf, &n)) != 0 || n == 0) {
		free(buf);
		return CG_ERR_FORMAT;
	}
	*out = buf;
	*outlen = n;
	return 0;
}

/* Same as member_b64 but reports into err with the entry index. */
static int
need_b64(json_t *jk, const char *name, size_t idx, unsigned char **out,
    size_t *outlen, char *err, size_t errlen)
{
	int r;

	if ((r = member_b64(jk, name, out, outlen)) == 0)
		return 0;
	if (r == CG_ERR_NOTFOUND) {
		cg_errf(err, errlen, "keys[%zu]: missing \"%s\"", idx, name);
		return CG_ERR_FORMAT;
	}
	if (r == CG_ERR_NOMEM) {
		cg_errf(err, errlen, "out of memory");
		return r;
	}
	cg_errf(err, errlen, "keys[%zu]: \"%s\" is not valid base64url", idx, name);
	return CG_ERR_FORMAT;
}

static int
rsa_load(json_t *jk, size_t idx, struct jwks_key *k, char *err, size_t errlen)
{
	unsigned char *n = NULL, *e = NULL;
	size_t nlen = 0, elen = 0;
	BIGNUM *bn_n = NULL, *bn_e = NULL;
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	cjose_jwk_rsa_keyspec spec;
	cjose_err cerr;
	int bits, r;

	if ((r = need_b64(jk, "n", idx, &n, &nlen, err, errlen)) != 0 ||
	    (r = need_b64(jk, "e", idx, &e, &elen, err, errlen)) != 0)
		goto out;
	if (n[0] == 0 || e[0] == 0) {
		cg_errf(err, errlen, "keys[%zu]: RSA integer with a leading zero octet", idx);
		r = CG_ERR_FORMAT;
		goto out;
	}
	if (nlen * 8 > JWKS_RSA_MAX_BITS) {
		cg_errf(err, errlen, "keys[%zu]: RSA modulus longer than %d bits",
		    idx, JWKS_RSA_MAX_BITS);
		r = CG_ERR_UNSUPPORTED;
		goto out;
	}
	if (elen > JWKS_RSA_MAX_E_BYTES || (e[elen - 1] & 1) == 0 ||
	    (elen == 1 && e[0] < 3) || (n[nlen - 1] & 1) == 0) {
		cg_errf(err, errlen, "keys[%zu]: RSA exponent or modulus not usable", idx);
		r = CG_ERR_FORMAT;
		goto out;
	}
	if ((bn_n = BN_bin2bn(n, (int)nlen, NULL)) == NULL ||
	    (bn_e = BN_bin2bn(e, (int)elen, NULL)) == NULL) {
		cg_errf(err, errlen, "out of memory");
		r = CG_ERR_NOMEM;
		goto out;
	}
	bits = BN_num_bits(bn_n);
	if (bits < JWKS_RSA_MIN_BITS) {
		cg_errf(err, errlen, "keys[%zu]: RSA modulus shorter than %d bits",
		    idx, JWKS_RSA_MIN_BITS);
		r = CG_ERR_UNSUPPORTED;
		goto out;
	}
	if ((bld = OSSL_PARAM_BLD_new()) == NULL ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e) ||
	    (params = OSSL_PARAM_BLD_to_param(bld)) == NULL ||
	    (ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL)) == NULL ||
	    EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &k->pkey, EVP_PKEY_PUBLIC_KEY, params) != 1) {
		cg_errf(err, errlen, "keys[%zu]: RSA key not accepted by OpenSSL", idx);
		r = CG_ERR_FORMAT;
		goto out;
	}
	if ((k->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL)) == NULL ||
	    (k->rs256 = EVP_PKEY_CTX_new_from_pkey(NULL, k->pkey, NULL)) == NULL ||
	    EVP_PKEY_verify_init(k->rs256) != 1 ||
	    EVP_PKEY_CTX_set_rsa_padding(k->rs256, RSA_PKCS1_PADDING) != 1 ||
	    EVP_PKEY_CTX_set_signature_md(k->rs256, k->sha256) != 1) {
		cg_errf(err, errlen, "keys[%zu]: RSA key cannot verify RS256 in OpenSSL", idx);
		r = CG_ERR_INTERNAL;
		goto out;
	}
	memset(&spec, 0, sizeof(spec));
	spec.n = n;
	spec.nlen = nlen;
	spec.e = e;
	spec.elen = elen;
	if ((k->cjwk = cjose_jwk_create_RSA_spec(&spec, &cerr)) == NULL) {
		cg_errf(err, errlen, "keys[%zu]: RSA key not accepted by cjose", idx);
		r = CG_ERR_FORMAT;
		goto out;
	}
	k->kty = JWKS_KTY_RSA;
	k->crv = JWKS_CRV_NONE;
	k->algs = JWT_RS256 | JWT_PS256;
	k->sig_len = nlen;	/* minimal encoding: nlen is the modulus length */
	r = 0;
 out:
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	BN_free(bn_n);
	BN_free(bn_e);
	free(n);
	free(e);
	return r;
}

static int
ec_load(json_t *jk, size_t idx, enum jwks_crv crv, struct jwks_key *k,
    char *err, size_t errlen)
{
	unsigned char *x = NULL, *y = NULL, pub[1 + 2 * 48];
	size_t xlen = 0, ylen = 0, clen;
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = NULL, *chk = NULL;
	cjose_jwk_ec_keyspec spec;
	cjose_err cerr;
	const char *group;
	int r;

	clen = crv == JWKS_CRV_P256 ? 32 : 48;
	group = crv == JWKS_CRV_P256 ? "prime256v1" : "secp384r1";
	if ((r = need_b64(jk, "x", idx, &x, &xlen, err, errlen)) != 0 ||
	    (r = need_b64(jk, "y", idx, &y, &ylen, err, errlen)) != 0)
		goto out;
	if (xlen != clen || ylen != clen) {
		cg_errf(err, errlen, "keys[%zu]: EC coordinate length is not %zu bytes",
		    idx, clen);
		r = CG_ERR_FORMAT;
		goto out;
	}
	pub[0] = 0x04;	/* uncompressed point */
	memcpy(pub + 1, x, clen);
	memcpy(pub + 1 + clen, y, clen);
	if ((bld = OSSL_PARAM_BLD_new()) == NULL ||
	    !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group, 0) ||
	    !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, 1 + 2 * clen) ||
	    (params = OSSL_PARAM_BLD_to_param(bld)) == NULL ||
	    (ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) == NULL ||
	    EVP_PKEY_fromdata_init(ctx) != 1) {
		cg_errf(err, errlen, "out of memory");
		r = CG_ERR_NOMEM;
		goto out;
	}
	/* Import refuses points off the curve; the public check below also
	 * refuses the point at infinity and points outside the subgroup. */
	if (EVP_PKEY_fromdata(ctx, &k->pkey, EVP_PKEY_PUBLIC_KEY, params) != 1 ||
	    (chk = EVP_PKEY_CTX_new_from_pkey(NULL, k->pkey, NULL)) == NULL ||
	    EVP_PKEY_public_check(chk) != 1) {
		cg_errf(err, errlen, "keys[%zu]: EC point is not on the curve", idx);
		r = CG_ERR_FORMAT;
		goto out;
	}
	memset(&spec, 0, sizeof(spec));
	spec.crv = crv == JWKS_CRV_P256 ? CJOSE_JWK_EC_P_256 : CJOSE_JWK_EC_P_384;
	spec.x = x;
	spec.xlen = xlen;
	spec.y = y;
	spec.ylen = ylen;
	if ((k->cjwk = cjose_jwk_create_EC_spec(&spec, &cerr)) == NULL) {
		cg_errf(err, errlen, "keys[%zu]: EC key not accepted by cjose", idx);
		r = CG_ERR_FORMAT;
		goto out;
	}
	k->kty = JWKS_KTY_EC;
	k->crv = crv;
	k->algs = crv == JWKS_CRV_P256 ? JWT_ES256 : JWT_ES384;
	k->sig_len = 2 * clen;
	r = 0;
 out:
	EVP_PKEY_CTX_free(chk);
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	free(x);
	free(y);
	return r;
}

static int
okp_load(json_t *jk, size_t idx, struct jwks_key *k, char *err, size_t errlen)
{
	unsigned char *x = NULL;
	size_t xlen = 0;
	int r;

	if ((r = need_b64(jk, "x", idx, &x, &xlen, err, errlen)) != 0)
		goto out;
	if (xlen != 32) {
		cg_errf(err, errlen, "keys[%zu]: Ed25519 key is not 32 bytes", idx);
		r = CG_ERR_FORMAT;
		goto out;
	}
	if ((k->pkey = EVP_PKEY_new_raw_public_key_ex(NULL, "ED25519", NULL,
	    x, xlen)) == NULL) {
		cg_errf(err, errlen, "keys[%zu]: Ed25519 key not accepted by OpenSSL", idx);
		r = CG_ERR_FORMAT;
		goto out;
	}
	k->kty = JWKS_KTY_OKP;
	k->crv = JWKS_CRV_ED25519;
	k->algs = JWT_EDDSA;
	k->sig_len = 64;
	r = 0;
 out:
	free(x);
	return r;
}

/* true when `v` is a string equal to `s` */
static bool
json_str_eq(json_t *v, const char *s)
{
	size_t n = strlen(s);

	return json_is_string(v) && json_string_length(v) == n &&
	    memcmp(json_string_value(v), s, n) == 0;
}

/*
 * Checks one entry of "keys".  Returns 0 with k filled, 1 when the entry is
 * to be skipped (k untouched), 2 when it is a symmetric key (skipped too),
 * or a CG_ERR_* with err set.
 */
static int
key_load(json_t *jk, size_t idx, struct jwks_key *k, char *err, size_t errlen)
{
	static const char *const private_members[] = {
		"d", "p", "q", "dp", "dq", "qi", "oth", "k",
	};
	json_t *kty, *crv, *use, *ops, *alg, *kid, *op;
	enum jwks_crv want_crv = JWKS_CRV_NONE;
	unsigned pinned = 0;
	size_t i;
	bool verify_op;
	int r;

	if (!json_is_object(jk)) {
		cg_errf(err, errlen, "keys[%zu]: not a JSON object", idx);
		return CG_ERR_FORMAT;
	}
	/* A symmetric key verifies nothing an issuer signs for many parties
	 * (whoever holds it can sign); it is skipped, and counted so that the
	 * caller warns, rather than refusing the issuer's other keys. */
	if (json_str_eq(json_object_get(jk, "kty"), "oct"))
		return 2;
	for (i = 0; i < CG_ARRAY_LEN(private_members); i++) {
		if (json_object_get(jk, private_members[i]) != NULL) {
			cg_errf(err, errlen, "keys[%zu]: private key member \"%s\" present",
			    idx, private_members[i]);
			return CG_ERR_FORMAT;
		}
	}
	if ((kty = json_object_get(jk, "kty")) == NULL || !json_is_string(kty)) {
		cg_errf(err, errlen, "keys[%zu]: \"kty\" missing or not a string", idx);
		return CG_ERR_FORMAT;
	}
	if ((use = json_object_get(jk, "use")) != NULL) {
		if (!json_is_string(use)) {
			cg_errf(err, errlen, "keys[%zu]: \"use\" is not a string", idx);
			return CG_ERR_FORMAT;
		}
		/* "jwt-svid" marks the JWT signing keys of a SPIFFE bundle
		 * (its "x509-svid" entries are CA certificates). */
		if (!json_str_eq(use, "sig") && !json_str_eq(use, "jwt-svid"))
			return 1;
	}
	if ((ops = json_object_get(jk, "key_ops")) != NULL) {
		if (!json_is_array(ops)) {
			cg_errf(err, errlen, "keys[%zu]: \"key_ops\" is not an array", idx);
			return CG_ERR_FORMAT;
		}
		verify_op = false;
		json_array_foreach(ops, i, op) {
			if (!json_is_string(op)) {
				cg_errf(err, errlen, "keys[%zu]: \"key_ops\" holds a non-string", idx);
				return CG_ERR_FORMAT;
			}
			if (json_str_eq(op, "verify"))
				verify_op = true;
		}
		if (!verify_op)
			return 1;
	}

	/* Key type and curve: unknown ones are skipped. */
	crv = json_object_get(jk, "crv");
	if (json_str_eq(kty, "RSA"))
		want_crv = JWKS_CRV_NONE;
	else if (json_str_eq(kty, "EC") || json_str_eq(kty, "OKP")) {
		if (crv == NULL || !json_is_string(crv)) {
			cg_errf(err, errlen, "keys[%zu]: \"crv\" missing or not a string", idx);
			return CG_ERR_FORMAT;
		}
		if (json_str_eq(kty, "EC") && json_str_eq(crv, "P-256"))
			want_crv = JWKS_CRV_P256;
		else if (json_str_eq(kty, "EC") && json_str_eq(crv, "P-384"))
			want_crv = JWKS_CRV_P384;
		else if (json_str_eq(kty, "OKP") && json_str_eq(crv, "Ed25519"))
			want_crv = JWKS_CRV_ED25519;
		else
			return 1;
	} else
		return 1;

	/* "alg" pins the key; a pin to an algorithm we do not verify makes
	 * the key useless to us, so it is skipped. */
	if ((alg = json_object_get(jk, "alg")) != NULL) {
		if (!json_is_string(alg) ||
		    strlen(json_string_value(alg)) != json_string_length(alg)) {
			cg_errf(err, errlen, "keys[%zu]: \"alg\" is not a string", idx);
			return CG_ERR_FORMAT;
		}
		if ((pinned = jwt_alg_parse(json_string_value(alg))) == 0)
			return 1;
	}
	if ((kid = json_object_get(jk, "kid")) != NULL) {
		if (!json_is_string(kid) ||
		    strlen(json_string_value(kid)) != json_string_length(kid)) {
			cg_errf(err, errlen, "keys[%zu]: \"kid\" is not a string", idx);
			return CG_ERR_FORMAT;
		}
		if (json_string_length(kid) > JWKS_KID_MAX) {
			cg_errf(err, errlen, "keys[%zu]: \"kid\" longer than %d bytes",
			    idx, JWKS_KID_MAX);
			return CG_ERR_LIMIT;
		}
	}

	memset(k, 0, sizeof(*k));
	if (want_crv == JWKS_CRV_NONE)
		r = rsa_load(jk, idx, k, err, errlen);
	else if (want_crv == JWKS_CRV_ED25519)
		r = okp_load(jk, idx, k, err, errlen);
	else
		r = ec_load(jk, idx, want_crv, k, err, errlen);
	if (r != 0) {
		key_clear(k);
		return r;
	}
	if (pinned != 0) {
		if ((k->algs & pinned) == 0) {
			cg_errf(err, errlen, "keys[%zu]: \"alg\" does not match the key type", idx);
			key_clear(k);
			return CG_ERR_FORMAT;
		}
		k->pinned_alg = pinned;
		k->algs = pinned;
	}
	if (kid != NULL) {
		k->has_kid = true;
		memcpy(k->kid, json_string_value(kid), json_string_length(kid));
		k->kid[json_string_length(kid)] = '\0';
	}
	return 0;
}

int
jwks_load_mem(const char *buf, size_t len, struct jwks **out, char *err, size_t errlen)
{
	struct jwks *ks = NULL;
	json_t *root = NULL, *keys, *jk;
	size_t i, j, n;
	int r;

	*out = NULL;
	cg_errf(err, errlen, "%s", "");
	if (buf == NULL && len != 0) {
		cg_errf(err, errlen, "no input");
		return CG_ERR_FORMAT;
	}
	if (len > JWKS_MAX_FILE_SIZE) {
		cg_errf(err, errlen, "key set larger than %d bytes", JWKS_MAX_FILE_SIZE);
		return CG_ERR_LIMIT;
	}
	if ((r = cg_json_strict_load(buf, len, JWKS_MAX_JSON_DEPTH, &root)) != 0) {
		if (r == CG_ERR_NOMEM)
			cg_errf(err, errlen, "out of memory");
		else
			cg_errf(err, errlen, "not strict JSON (syntax, duplicate member "
			    "or nesting deeper than %d)", JWKS_MAX_JSON_DEPTH);
		r = r == CG_ERR_NOMEM ? r : CG_ERR_FORMAT;
		goto out;
	}
	if (!json_is_object(root) || (keys = json_object_get(root, "keys")) == NULL ||
	    !json_is_array(keys)) {
		cg_errf(err, errlen, "not an object with a \"keys\" array");
		r = CG_ERR_FORMAT;
		goto out;
	}
	if ((n = json_array_size(keys)) > JWKS_MAX_ENTRIES) {
		cg_errf(err, errlen, "more than %d keys", JWKS_MAX_ENTRIES);
		r = CG_ERR_LIMIT;
		goto out;
	}
	if ((ks = calloc(1, sizeof(*ks))) == NULL) {
		cg_errf(err, errlen, "out of memory");
		r = CG_ERR_NOMEM;
		goto out;
	}
	ks->refs = 1;	/* jwks_free() on failure frees what was loaded */
	if (n > 0 && (ks->keys = calloc(n, sizeof(*ks->keys))) == NULL) {
		cg_errf(err, errlen, "out of memory");
		r = CG_ERR_NOMEM;
		goto out;
	}
	json_array_foreach(keys, i, jk) {
		struct jwks_key *k = &ks->keys[ks->nkeys];

		if ((r = key_load(jk, i, k, err, errlen)) < 0)
			goto out;
		if (r == 2)
			ks->nskipped_oct++;
		if (r != 0)
			continue;	/* skipped */
		for (j = 0; k->has_kid && j < ks->nkeys; j++) {
			if (ks->keys[j].has_kid && strcmp(ks->keys[j].kid, k->kid) == 0) {
				cg_errf(err, errlen, "keys[%zu]: duplicate \"kid\"", i);
				key_clear(k);
				r = CG_ERR_FORMAT;
				goto out;
			}
		}
		ks->nkeys++;
	}
	if (ks->nkeys == 0) {
		cg_errf(err, errlen, "no usable signature key");
		r = CG_ERR_NOTFOUND;
		goto out;
	}
	if ((r = jwks_digest(ks)) != 0) {
		cg_errf(err, errlen, "out of memory");
		goto out;
	}
	*out = ks;
	ks = NULL;
	r = 0;
 out:
	jwks_free(ks);
	json_decref(root);
	return r;
}

int
jwks_load_file(const char *path, struct jwks **out, char *err, size_t errlen)
{
	struct cg_file f;
	char why[512];
	int r;

	*out = NULL;
	cg_errf(err, errlen, "%s", "");
	/* A key set is public: ordinary memory, any mode, links followed. */
	if ((r = cg_file_read(path, CG_FILE_FOLLOW, JWKS_MAX_FILE_SIZE, 0, &f,
	    why, sizeof(why))) != 0) {
		/* This function's codes: a file that is not there or cannot
		 * be read is CG_ERR_IO, one that is not a regular file
		 * CG_ERR_FORMAT. */
		if (r == CG_ERR_NOTFOUND) {
			cg_errf(err, errlen, "cannot open %s", why);
			return CG_ERR_IO;
		}
		cg_errf(err, errlen, "%s", why);
		return r == CG_ERR_UNSUPPORTED ? CG_ERR_FORMAT : r;
	}
	r = jwks_load_mem(f.data, f.len, out, err, errlen);
	cg_file_free(&f);
	return r;
}
