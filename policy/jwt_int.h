/*
 * jwt_int.h: the layout of a loaded key set, shared by jwks.c (which builds
 * it) and jwt.c (which selects keys from it and verifies with them).
 * Nothing outside policy/ includes this header.
 */
#ifndef CG_JWT_INT_H
#define CG_JWT_INT_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/evp.h>
#include <cjose/cjose.h>

#include "policy.h"

/* Limits on what a JWKS may hold. */
#define JWKS_MAX_FILE_SIZE	JWKS_MAX_BYTES	/* bytes, file or memory */
#define JWKS_MAX_ENTRIES	100	/* entries of "keys", usable or not */
#define JWKS_MAX_JSON_DEPTH	16
#define JWKS_KID_MAX		127	/* fits policy_identity.kid with its NUL */
#define JWKS_RSA_MIN_BITS	2048
#define JWKS_RSA_MAX_BITS	8192
#define JWKS_RSA_MAX_E_BYTES	8

enum jwks_kty {
	JWKS_KTY_RSA = 1,
	JWKS_KTY_EC,
	JWKS_KTY_OKP,
};

enum jwks_crv {
	JWKS_CRV_NONE = 0,	/* RSA */
	JWKS_CRV_P256,
	JWKS_CRV_P384,
	JWKS_CRV_ED25519,
};

struct jwks_key {
	char kid[JWKS_KID_MAX + 1];	/* "" when absent or empty */
	bool has_kid;		/* "kid" was present: only then can a token's
				   kid select this key */
	enum jwks_kty kty;
	enum jwks_crv crv;
	unsigned pinned_alg;	/* JWT_* bit from the key's "alg", 0 if none */
	unsigned algs;		/* JWT_* bits this key may verify: its type,
				   narrowed by pinned_alg */
	size_t sig_len;		/* exact signature length in bytes */
	EVP_PKEY *pkey;		/* always set; EdDSA verifies with it */
	EVP_PKEY_CTX *rs256;	/* RSA: pkey ready to verify RS256; read-only,
				   each verification works on a copy */
	EVP_MD *sha256;		/* RSA: the digest RS256 signs */
	cjose_jwk_t *cjwk;	/* RSA and EC: what cjose verifies PS256 and
				   ES* with, built from the same numbers as pkey */
};

struct jwks {
	struct jwks_key *keys;
	size_t nkeys;
	size_t nskipped_oct;	/* symmetric entries skipped */
	unsigned refs;		/* __atomic_* only */
	unsigned char digest[32];	/* SHA-256 over each key's kid, algs and
					   public key (DER), for jwks_same() */
};

#endif /* CG_JWT_INT_H */
