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
struct jwks;	/* opaque, immutable once loaded, reference-counted */

#define JWKS_MAX_BYTES	(1024 * 1024)	/* a key set's document, file or fetched */

/*
 * Loads a JWKS ({"keys":[...]}) from a file or memory.  Accepts RSA (n, e;
 * at least 2048 bits), EC (P-256, P-384: crv, x, y; the point must be on the
 * curve) and OKP (Ed25519: crv, x) public keys; skips keys whose "use" is
 * neither "sig" nor "jwt-svid" (a SPIFFE bundle's JWT keys), keys of
 * unknown kty, and symmetric ("oct") keys, which it
 * counts (jwks_skipped_symmetric()) so that the caller can warn; rejects
 * private key members, duplicate kids, duplicate JSON keys and malformed
 * base64url.  On failure returns CG_ERR_* and writes a one-line reason into
 * err (errlen bytes).  An empty usable set is an error.  The set comes with
 * one reference.
 */
int jwks_load_file(const char *path, struct jwks **out, char *err, size_t errlen) CG_WUR;
int jwks_load_mem(const char *buf, size_t len, struct jwks **out, char *err, size_t errlen) CG_WUR;
/* One more reference (any thread); returns ks.  NULL stays NULL. */
struct jwks *jwks_ref(struct jwks *ks);
/* Drops one reference (any thread); the last frees the set.  NULL-safe. */
void jwks_free(struct jwks *ks);
size_t jwks_count(const struct jwks *ks);
/* Entries of kty "oct" the load skipped. */
size_t jwks_skipped_symmetric(const struct jwks *ks);
/* Whether two sets hold the same keys: kids, key material and algorithms,
 * in the same order (a digest made at load).  NULL equals only NULL. */
bool jwks_same(const struct jwks *a, const struct jwks *b);

/* ------------------------------------------------------------------ */
/* Key rings                                                           */
/* ------------------------------------------------------------------ */

/*
 * An issuer's current key set, shared by every worker and replaced as a
 * whole: the control thread publishes a new immutable set; a worker takes
 * a reference to the current one for one verification (a pointer copy and
 * an atomic increment under a mutex held for nothing else, so never while
 * a signature is checked) and a verified identity keeps that reference.
 * A cached verification is served only while its set is still the current
 * one (policy_keyring_current(), an atomic load without the lock).
 *
 * A ring whose keys come from a remote source has a fetcher (the control
 * thread's) that a worker can ask for an early fetch when a token names a
 * key the ring lacks.  A wish is answered only by a fetch that started
 * after it, or by a refusal (the fetcher's rate limit): the worker notes
 * policy_keyring_started() and policy_keyring_refusals() before it asks
 * (policy_keyring_want()), and its wish is answered once
 * policy_keyring_answered() passes the first or the second changes.  A new
 * set (policy_keyring_serial() changes) may be tried before that.
 *
 * Reference-counted; every function is safe from any thread.
 */
struct policy_keyring;

/* A new ring holding ks (its reference is taken; may be NULL). */
struct policy_keyring *policy_keyring_new(struct jwks *ks);
struct policy_keyring *policy_keyring_ref(struct policy_keyring *r);
void policy_keyring_unref(struct policy_keyring *r);	/* NULL-safe */
/* Publishes ks (its reference is taken; NULL: no keys) and bumps the
 * serial; the old set goes when its last holder drops it. */
void policy_keyring_set(struct policy_keyring *r, struct jwks *ks);
/* A new reference to the current set, or NULL when there is none. */
struct jwks *policy_keyring_get(struct policy_keyring *r);
/* The current set's address, to compare with; never dereference it. */
const struct jwks *policy_keyring_current(const struct policy_keyring *r);
uint64_t policy_keyring_serial(const struct policy_keyring *r);
/*
 * The fetcher side: set_waker (fn NULL: none) makes the ring fetchable;
 * take_want returns and clears the wish; fetch_start numbers a fetch
 * (1, 2, ...) as it starts and fetch_done marks it ended; refuse answers
 * the wishes made so far without a fetch.
 */
void policy_keyring_set_waker(struct policy_keyring *r, void (*fn)(void *), void *arg);
bool policy_keyring_take_want(struct policy_keyring *r);
uint64_t policy_keyring_fetch_start(struct policy_keyring *r);
void policy_keyring_fetch_done(struct policy_keyring *r, uint64_t fetch);
void policy_keyring_refuse(struct policy_keyring *r);
/*
 * The worker side: want asks for a fetch and returns false when the ring
 * has no fetcher (its keys come from a file: nothing to wait for).
 * started is the number of the last fetch started, answered that of the
 * last one ended, refusals the count of refusals.
 */
bool policy_keyring_want(struct policy_keyring *r);
uint64_t policy_keyring_started(const struct policy_keyring *r);
uint64_t policy_keyring_answered(const struct policy_keyring *r);
uint64_t policy_keyring_refusals(const struct policy_keyring *r);

/* ------------------------------------------------------------------ */
/* Issuers and verified identities                                     */
/* ------------------------------------------------------------------ */
struct spiffe_id;

struct policy_issuer {
	char *name;		/* config name, used by rules and audit */
	char *iss;		/* exact "iss" value; may be NULL with trust_domain */
	char *trust_domain;	/* a SPIFFE trust domain: its tokens are
				   JWT-SVIDs, whose sub must be a SPIFFE ID
				   of it; NULL: an ordinary issuer */
	char **audiences;	/* accepted "aud" values */
	size_t naudiences;
	unsigned algs;		/* allowed JWT_* bits */
	char *jwks_file;	/* keys from a file, or */
	char *jwks_uri;		/* from this URL, or (both NULL) from OIDC
				   discovery under iss */
	char *ca_file;		/* CAs for the HTTPS fetches; NULL: system's */
	char *bearer_token_file;	/* Authorization: Bearer, re-read per fetch */
	int64_t refresh_min_ms;	/* bounds of the refresh period that */
	int64_t refresh_max_ms;	/* Cache-Control asks for */
	int64_t max_key_age_ms;	/* last good keys are used this long */
	int64_t kid_refetch_ms;	/* unknown kids fetch at most this often */
	int64_t fetch_timeout_ms;
	struct policy_keyring *ring;	/* a reference; NULL: no keys yet */
	int64_t max_lifetime_s;	/* exp - iat must not exceed; default 3600 */
	int64_t clock_skew_s;	/* default 60 */
};
void policy_issuer_free(struct policy_issuer *is);	/* NULL-safe; frees is */

struct policy_identity {
	const struct policy_issuer *issuer;	/* borrowed from the config */
	const char *method;	/* "jwt", or "jwt-svid" from a trust domain */
	json_t *claims;		/* the payload object, owned */
	const char *iss;	/* these point into claims */
	const char *sub;	/* NULL if absent */
	const char *jti;	/* NULL if absent */
	json_t *aud;		/* borrowed from claims; string or array */
	int64_t exp;
	int64_t iat;		/* 0 if absent */
	int64_t nbf;		/* 0 if absent */
	struct jwks *keys;	/* the set that verified it, a reference;
				   NULL when not verified */
	struct spiffe_id *spiffe; /* a JWT-SVID's sub, parsed; owned; NULL
				   for other tokens */
	char alg[8];		/* verified algorithm name */
	char kid[128];		/* key id used, "" if none */
	unsigned refs;		/* references; 1 when made.  Not atomic: an
				   identity and every holder of it (a
				   connection, the token cache) live on one
				   worker thread */
};

/*
 * Identities are reference-counted and read-only once made: jwt_verify()
 * and policy_identity_from_claims() hand out the first reference, the token
 * cache and its callers share one identity through more.
 *
 * policy_identity_ref() takes one more reference and returns id (NULL
 * stays NULL).  policy_identity_free() drops one reference and frees the
 * identity (its claims included) when none is left; NULL-safe.  Dropping
 * more references than were taken is a broken invariant and aborts when it
 * can be seen (a count already at zero).
 */
struct policy_identity *policy_identity_ref(struct policy_identity *id);
void policy_identity_free(struct policy_identity *id);

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
 * containing token bytes).  *out is NULL on failure.  When the failure is
 * for want of a key (the issuer has none, none with the token's kid, none
 * for its algorithm) and nokey is not NULL, *nokey is that issuer (NULL
 * otherwise), whose ring a caller may ask for a fetch.
 */
int jwt_verify(struct policy_issuer *const *issuers, size_t nissuers,
    const char *token, size_t len, int64_t now_s, size_t max_len,
    struct policy_identity **out, const char **reason,
    const struct policy_issuer **nokey) CG_WUR;

/*
 * Looks up a claim by dotted path ("a.b.c") in an identity's claims; a key
 * that itself holds dots is found when the whole remaining path matches it
 * first.  Returns a borrowed reference or NULL.
 */
json_t *policy_claim_lookup(json_t *claims, const char *path);

/* ------------------------------------------------------------------ */
/* Verified-token cache (token_cache.c)                                */
/* ------------------------------------------------------------------ */

/*
 * A worker's cache of verified tokens, so that a repeated token costs a
 * hash and a lookup instead of a signature check.  One cache belongs to one
 * worker thread, with the identities it hands out; nothing here locks.
 *
 * An entry is keyed by the SHA-256 of the token's bytes (the token itself
 * is never stored; the digests are wiped when dropped) and holds one
 * reference to the identity jwt_verify() made, which holds the key set
 * that verified it.  It is served only while:
 *   - the caller's issuer array still holds that issuer pointer as the
 *     issuer jwt_verify() would pick for the token's "iss", and that key
 *     set is still the current one of the issuer's ring (so a token is
 *     verified again when its issuer's keys were replaced: a key that left
 *     the set no longer passes; the identity's reference keeps the old
 *     set's address from being reused meanwhile);
 *   - now_s is before the token's exp.  An entry never outlives exp: in the
 *     clock-skew grace after exp the token is verified again in full and not
 *     cached, and the entry is dropped;
 * and every hit checks the time-dependent claims again (exp and nbf with
 * the issuer's clock skew, iat, lifetime) exactly as jwt_verify() would,
 * so that a cached answer is always the answer jwt_verify() would give.
 * Only successful verifications are cached.
 *
 * An entry borrows its issuer: before an issuer array (a
 * configuration generation) is freed, drop its entries with
 * token_cache_forget_issuers() or token_cache_flush().
 *
 * The cache holds at most max_entries; when full, an expired entry goes
 * first, else the least recently used one.  A full cache that answered
 * fewer than one in 64 of its last 1024 lookups admits only one miss in
 * 16 until hits come back, so that a stream of tokens seen once neither
 * costs an insertion per request nor flushes the entries that serve.
 * Lookups are O(1) on average.
 *
 * Every function accepts a NULL cache, meaning "no cache".
 */
struct token_cache;

/* Above this many entries token_cache_new() uses this many. */
#define TOKEN_CACHE_MAX_ENTRIES ((size_t)1 << 22)

/*
 * A new empty cache for up to max_entries entries (clamped to
 * TOKEN_CACHE_MAX_ENTRIES).  Returns NULL when max_entries is 0 (the cache
 * is disabled) or when memory runs out (then a caller that asked for a
 * cache treats it as CG_ERR_NOMEM).
 */
struct token_cache *token_cache_new(size_t max_entries);

/*
 * Drops every entry and frees the cache; NULL-safe.  Identities that
 * callers still hold stay valid until they drop their own references.
 */
void token_cache_free(struct token_cache *tc);

/* Drops every entry (a new configuration generation with new keys). */
void token_cache_flush(struct token_cache *tc);

/* Drops the entries that any of these issuers verified. */
void token_cache_forget_issuers(struct token_cache *tc,
    struct policy_issuer *const *issuers, size_t nissuers);

/* Drops the entries whose token expired at or before now_s.  Verification
 * does this too; a worker may also call it from a timer. */
void token_cache_expire(struct token_cache *tc, int64_t now_s);

/*
 * jwt_verify() through the cache: the same arguments, return values,
 * reasons and *out on failure.  On success *out is a new reference that
 * the caller drops with policy_identity_free(); the identity may be shared
 * with the cache and with other callers, so it is read-only.
 *
 * Tokens longer than max_len are refused ("token too large",
 * CG_ERR_LIMIT) before they are hashed.  *hit (may be NULL) is true when
 * the answer came from an entry without a signature check: an identity,
 * or a refusal of a cached token on its time claims (the entry is then
 * dropped).  Failed verifications are not cached.  With tc NULL this is
 * jwt_verify() and *hit is false.
 */
int token_cache_verify(struct token_cache *tc, struct policy_issuer *const *issuers,
    size_t nissuers, const char *token, size_t len, int64_t now_s,
    size_t max_len, struct policy_identity **out, const char **reason,
    bool *hit, const struct policy_issuer **nokey) CG_WUR;

/*
 * Counters for metrics: calls answered from an entry, calls that were
 * looked up and not (an oversized or NULL token is neither), and entries
 * held now.  Any out pointer may be NULL; a NULL cache reports zeros.
 */
void token_cache_stats(const struct token_cache *tc, uint64_t *hits,
    uint64_t *misses, size_t *entries);

/* ------------------------------------------------------------------ */
/* Rules                                                               */
/* ------------------------------------------------------------------ */
enum policy_cond_kind {
	POLICY_COND_ISSUER,	/* issuer config name or iss URL */
	POLICY_COND_AUDIENCE,	/* one of the token's aud values */
	POLICY_COND_CLAIM,	/* claim at a dotted path */
	POLICY_COND_ATTR,	/* an attribute of the request (HTTP: method, path) */
	POLICY_COND_CLIENT_SUBJECT, /* verified client certificate's subject (RFC 2253) */
	POLICY_COND_CLIENT_SAN,	/* one of its SANs, "dns:", "uri:", "email:", "ip:" + value */
	POLICY_COND_SPIFFE_ID,	/* the request's SPIFFE ID, against spiffe_id_match()
				   patterns, not cg_glob_match() */
	POLICY_COND_TRUST_DOMAIN, /* its trust domain, compared exactly ("example.org") */
};

/*
 * One condition: holds when the subject matches any of values (each a glob,
 * see cg_glob_match; for POLICY_COND_SPIFFE_ID a spiffe_id_match() pattern,
 * for POLICY_COND_TRUST_DOMAIN an exact trust domain).  For a claim: a string is matched as is, a number or
 * boolean by its JSON text ("42", "true"), an array when any element
 * matches; an object or absent claim never matches.  For an attribute: its
 * bytes, as the request carries them; an attribute the request does not
 * carry never matches.
 */
struct policy_cond {
	enum policy_cond_kind kind;
	char *claim;		/* POLICY_COND_CLAIM: the claim's dotted path */
	char *attr;		/* POLICY_COND_ATTR: the attribute's name */
	unsigned attr_ref;	/* POLICY_COND_ATTR: 1 + the attribute's id, set by
				   policy_rule_resolve_attrs(); 0 (not resolved)
				   holds for no request */
	const void *origin;	/* the configuration's mark of where the condition
				   was written; policy/ never reads it */
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

struct spiffe_id;	/* policy/spiffe.h */

/*
 * A TLS client certificate that was presented and verified.  SAN values
 * carry their type as a prefix: "dns:api.example.com",
 * "uri:spiffe://example.org/ns/a/sa/b", "email:ops@example.com",
 * "ip:10.0.0.1".
 */
struct policy_peer {
	const char *subject;
	const char *const *sans;
	size_t nsans;
	const struct spiffe_id *spiffe;	/* the certificate's SPIFFE ID when it
					   was accepted as an X.509-SVID of a
					   trust domain (verified against that
					   domain's bundle); else NULL */
};

/*
 * Request attributes: what a protocol tells policy about a request (HTTP:
 * method and path; later a database and user, a bind DN, a command).  Each
 * protocol declares its attribute names in order (see injectors/injector.h);
 * an attribute's id is its index in that list.  Rules name attributes, and
 * the configuration resolves the names to ids once, at load, so that a
 * decision looks a value up by index.
 */
struct policy_attr {
	const char *value;	/* NULL: the request has no such attribute */
	size_t len;
};

struct policy_request {
	const struct policy_identity *id;
	const struct policy_peer *peer;	/* NULL: no verified client certificate */
	const struct spiffe_id *spiffe;	/* the caller's verified SPIFFE ID, which
					   the spiffe_id and trust_domain
					   conditions match: an X.509-SVID
					   peer's (peer->spiffe), else a
					   JWT-SVID's (id->spiffe); NULL: none */
	bool peer_only;			/* the certificate is the caller's whole
					   proof (id NULL): only an allow rule
					   that names it (client_subject,
					   client_san, spiffe_id, trust_domain)
					   can allow */
	const struct policy_attr *attrs; /* attrs[id], for ids below nattrs; borrowed */
	size_t nattrs;
	int64_t now_s;
};

/*
 * Resolves the names of rule's POLICY_COND_ATTR conditions against attrs,
 * the NULL-terminated attribute names of the route's protocol (NULL: none):
 * each condition gets the id of its name, its index in attrs.  Returns how
 * many conditions name an attribute attrs lacks; their attr_ref is 0, so
 * that they hold for no request.
 */
size_t policy_rule_resolve_attrs(struct policy_rule *rule, const char *const *attrs) CG_WUR;

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
