/*
 * jwt_sign.h: test-time key generation, JWK export and JWS signing for the
 * JWT and JWKS unit tests.  Keys are made fresh with OpenSSL on each run;
 * nothing here is used by credgate itself.  Every function aborts the test
 * program on an OpenSSL failure, so callers need not check.
 */
#ifndef CG_TEST_JWT_SIGN_H
#define CG_TEST_JWT_SIGN_H

#include <stddef.h>
#include <openssl/evp.h>

/* "RSA" (bits used), "P-256", "P-384" or "Ed25519". */
EVP_PKEY *ts_keygen(const char *type, int bits);

/*
 * The public JWK of key as a JSON object text (malloc'd).  kid and alg are
 * left out when NULL; extra, when not NULL, is raw JSON members appended
 * inside the object (e.g. "\"use\":\"enc\"").
 */
char *ts_jwk(EVP_PKEY *key, const char *kid, const char *alg, const char *extra);

/* The JWK's members one by one, base64url (malloc'd). */
char *ts_jwk_member(EVP_PKEY *key, const char *member);

/* base64url of n bytes (malloc'd, NUL-terminated). */
char *ts_b64(const void *p, size_t n);

/*
 * The raw JWS signature (malloc'd, *siglen bytes) of msg with key for alg
 * ("RS256", "PS256", "ES256", "ES384", "EdDSA").  For ECDSA, der selects the
 * DER encoding instead of the JWS r||s form.
 */
unsigned char *ts_sig(EVP_PKEY *key, const char *alg, const char *msg,
    size_t msglen, int der, size_t *siglen);

/* "b64(header).b64(payload)" (malloc'd). */
char *ts_signing_input(const char *header_json, const char *payload_json);

/* signing_input + "." + b64(sig) (malloc'd). */
char *ts_join(const char *signing_input, const unsigned char *sig, size_t siglen);

/* A complete token: header and payload JSON as given, signed with key. */
char *ts_token(EVP_PKEY *key, const char *alg, const char *header_json,
    const char *payload_json);

/* printf into a new string (malloc'd). */
char *ts_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif /* CG_TEST_JWT_SIGN_H */
