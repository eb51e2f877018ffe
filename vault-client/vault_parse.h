/*
 * vault_parse.h: Vault's (and OpenBao's) JSON responses, apart from any
 * I/O: the auth block of a login, a token's lookup, a lease renewal, the
 * secret engines' reads, and the {"errors": [...]} body.  Everything that
 * may carry a secret is parsed inside the secure JSON scope and copied
 * into secure memory only.  Unknown keys are ignored and key order does
 * not matter; a wrong JSON type where a known key is read fails.
 */
#ifndef CG_VAULT_PARSE_H
#define CG_VAULT_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vault-client/vault.h"

/* Biggest response body parsed. */
#define VAULT_MAX_RESPONSE	(1024 * 1024)
/* Bytes of the key versions of unversioned secrets are derived with. */
#define VAULT_VERSION_KEY_LEN	32

/* The auth block of a login or a renew-self. */
struct vault_auth {
	char *token;		/* secure memory, NUL-terminated */
	int64_t ttl_s;		/* lease_duration; 0: no expiry */
	bool renewable;
};
/* Wipes and frees a->token. */
void vault_auth_clear(struct vault_auth *a);

/*
 * Each returns 0, CG_ERR_FORMAT (not JSON, a wrong type, a required key
 * missing, a negative time or one whose milliseconds overflow an
 * int64_t), CG_ERR_NOTFOUND (a KV v2 version deleted or destroyed: data
 * is null), CG_ERR_LIMIT (a body over VAULT_MAX_RESPONSE; a secret of more
 * than 64 string fields) or CG_ERR_NOMEM; *why (may be NULL) gets a short
 * static text on failure.
 */
int vault_parse_auth(const char *body, size_t len, struct vault_auth *out,
    const char **why) CG_WUR;
/* auth/token/lookup-self: data.ttl and data.renewable.  On failure (here
 * and in vault_parse_renew()) *ttl_s is 0 and *renewable false. */
int vault_parse_lookup(const char *body, size_t len, int64_t *ttl_s, bool *renewable,
    const char **why) CG_WUR;
/* sys/leases/renew: the top-level lease_duration and renewable. */
int vault_parse_renew(const char *body, size_t len, int64_t *ttl_s, bool *renewable,
    const char **why) CG_WUR;
/*
 * A read of path on a mount of kind: a secret with every string field
 * and its version (KV v2: metadata.version; otherwise "h" and 16 hex
 * digits of an HMAC-SHA-256 of the fields under key, so that a change of
 * value is a change of version and nothing about the value shows).
 * Database creds carry their lease; static creds a lease without id whose
 * duration is the time to the next rotation.
 */
int vault_parse_secret(enum vault_kind kind, const char *path, const unsigned char *key,
    const char *body, size_t len, struct secret **out, const char **why) CG_WUR;
/*
 * The {"errors": [...]} body, for a log line: the messages joined with
 * "; ", Go's multi-error framing ("2 errors occurred:\n\t* ...") taken
 * apart, anything but printable ASCII replaced, cut to outlen.  Returns
 * out ("" when there is none).
 */
char *vault_parse_errors(const char *body, size_t len, char *out, size_t outlen);
/* True when the errors body says the server is sealed. */
bool vault_errors_sealed(const char *body, size_t len);

#endif /* CG_VAULT_PARSE_H */
