/*
 * policy.h: who is calling and whether they may.
 *
 * JWKS loading, JWT verification (RS256, PS256, ES256, ES384, EdDSA) and
 * rule evaluation.  Nothing here does I/O on connections, and nothing here
 * includes vault-client/, injectors/ or proxy/.
 */
#ifndef CG_POLICY_H
#define CG_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "common.h"

/* ------------------------------------------------------------------ */
/* Algorithms                                                          */
/* ------------------------------------------------------------------ */
enum jwt_alg {
	JWT_RS256 = 1u << 0,
	JWT_PS256 = 1u << 1,
	JWT_ES256 = 1u << 2,
	JWT_ES384 = 1u << 3,
	JWT_EDDSA = 1u << 4,
};
#define JWT_ALG_ALL (JWT_RS256 | JWT_PS256 | JWT_ES256 | JWT_ES384 | JWT_EDDSA)

/* "RS256" -> JWT_RS256 ...; 0 if unknown (exact, case-sensitive). */
unsigned jwt_alg_parse(const char *name);
/* Name of one bit; NULL if not exactly one known bit. */
const char *jwt_alg_name(unsigned alg);

/* ------------------------------------------------------------------ */
/* Key sets                                                            */
/* ------------------------------------------------------------------ */
struct jwks;	/* opaque, immutable once loaded */

/*
 * Loads a JWKS ({"keys":[...]}) from a file or memory.  Accepts RSA (n, e;
 * at least 2048 bits), EC (P-256, P-384: crv, x, y; the point must be on the
 * curve) and OKP (Ed25519: crv, x) public keys; skips keys whose "use" is
 * not "sig" and keys of unknown kty, and rejects private key members,
 * duplicate kids, duplicate JSON keys and malformed base64url.  On failure
 * returns CG_ERR_* and writes a one-line reason into err (errlen bytes).
 * An empty usable set is an error.
 */
int jwks_load_file(const char *path, struct jwks **out, char *err, size_t errlen) CG_WUR;
int jwks_load_mem(const char *buf, size_t len, struct jwks **out, char *err, size_t errlen) CG_WUR;
void jwks_free(struct jwks *ks);
size_t jwks_count(const struct jwks *ks);

/* ------------------------------------------------------------------ */
/* Issuers and verified identities                                     */
/* ------------------------------------------------------------------ */
struct policy_issuer {
	char *name;		/* config name, used by rules and audit */
	char *iss;		/* exact "iss" value */
	char **audiences;	/* accepted "aud" values */
	size_t naudiences;
	unsigned algs;		/* allowed JWT_* bits */
	char *jwks_file;
	struct jwks *keys;	/* owned */
	int64_t max_lifetime_s;	/* exp - iat must not exceed; default 3600 */
	int64_t clock_skew_s;	/* default 60 */
};
void policy_issuer_free(struct policy_issuer *is);	/* NULL-safe; frees is */

struct policy_identity {
	const struct policy_issuer *issuer;	/* borrowed from the config */
	const char *method;	/* "jwt" */
	json_t *claims;		/* the payload object, owned */
	const char *iss;	/* these point into claims */
	const char *sub;	/* NULL if absent */
	const char *jti;	/* NULL if absent */
	json_t *aud;		/* borrowed from claims; string or array */
	int64_t exp;
	int64_t iat;		/* 0 if absent */
	int64_t nbf;		/* 0 if absent */
	char alg[8];		/* verified algorithm name */
	char kid[128];		/* key id used, "" if none */
};
void policy_identity_free(struct policy_identity *id);	/* NULL-safe */

/*
 * Builds an identity from claims without any verification (policy tests
 * only).  Takes a new reference to claims.  issuer may be NULL.
 */
int policy_identity_from_claims(const struct policy_issuer *issuer, json_t *claims,
    struct policy_identity **out) CG_WUR;

#define JWT_DEFAULT_MAX_LEN 8192
#define JWT_MAX_JSON_DEPTH 16

/*
 * Verifies a compact JWS token (len bytes, not NUL-terminated) against the
 * issuer whose iss equals the token's "iss" exactly, at time now_s.
 * Tokens longer than max_len are refused before any parsing.
 *
 * Returns 0 and a new identity in *out, or a CG_ERR_* with *reason set to
 * a short static text for audit and log (never shown to callers, never
 * containing token bytes).  *out is NULL on failure.
 */
int jwt_verify(struct policy_issuer *const *issuers, size_t nissuers,
    const char *token, size_t len, int64_t now_s, size_t max_len,
    struct policy_identity **out, const char **reason) CG_WUR;

/*
 * Looks up a claim by dotted path ("a.b.c") in an identity's claims; a key
 * that itself holds dots is found when the whole remaining path matches it
 * first.  Returns a borrowed reference or NULL.
 */
json_t *policy_claim_lookup(json_t *claims, const char *path);

/* ------------------------------------------------------------------ */
/* Rules                                                               */
/* ------------------------------------------------------------------ */
enum policy_cond_kind {
	POLICY_COND_ISSUER,	/* issuer config name or iss URL */
	POLICY_COND_AUDIENCE,	/* one of the token's aud values */
	POLICY_COND_CLAIM,	/* claim at a dotted path */
	POLICY_COND_METHOD,	/* HTTP method, exact and case-sensitive */
	POLICY_COND_PATH,	/* request path (no query), glob */
};

/*
 * One condition: holds when the subject matches any of values (each a glob,
 * see cg_glob_match).  For a claim: a string is matched as is, a number or
 * boolean by its JSON text ("42", "true"), an array when any element
 * matches; an object or absent claim never matches.
 */
struct policy_cond {
	enum policy_cond_kind kind;
	char *claim;		/* POLICY_COND_CLAIM only */
	char **values;
	size_t nvalues;
};

/* Holds when every condition holds (an empty rule matches everything). */
struct policy_rule {
	char *name;
	struct policy_cond *conds;
	size_t nconds;
};

enum policy_mode {
	POLICY_ENFORCE = 0,
	POLICY_DRY_RUN = 1,
};

struct policy_route {
	char *name;
	enum policy_mode mode;
	int64_t expires;	/* Unix seconds; requests at or after it are refused */
	struct policy_rule *allow;
	size_t nallow;
	struct policy_rule *deny;
	size_t ndeny;
};
/* Frees what the route holds (not the struct itself). */
void policy_route_clear(struct policy_route *r);
void policy_rule_clear(struct policy_rule *rule);

struct policy_request {
	const struct policy_identity *id;
	const char *method;
	size_t method_len;
	const char *path;
	size_t path_len;
	int64_t now_s;
};

enum policy_result {
	POLICY_ALLOW = 0,
	POLICY_DENY = 1,
	POLICY_WOULD_DENY = 2,	/* dry-run: denied by policy, forwarded */
};

struct policy_decision {
	enum policy_result result;
	const char *rule;	/* name of the deciding rule, borrowed; NULL if none */
	const char *reason;	/* static text: "allowed by rule", "denied by rule",
				   "no rule matched", "route expired" */
};

/*
 * Decides: an expired route is DENY in every mode; then deny rules (first
 * match wins), then allow rules (first match), else DENY "no rule matched".
 * In dry-run a DENY from rules becomes WOULD_DENY (an expired route stays
 * DENY).
 */
void policy_decide(const struct policy_route *r, const struct policy_request *q,
    struct policy_decision *d);
/* "allow", "deny", "would_deny" */
const char *policy_result_name(enum policy_result r);

#endif /* CG_POLICY_H */
