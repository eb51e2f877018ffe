/*
 * pg_auth.h: what credgate keeps and computes to log in to PostgreSQL
 * with a password it holds, apart from I/O: the MD5 response, and a small
 * cache of SCRAM keys so that the key derivation (thousands of PBKDF2
 * rounds) runs once per credential version, salt and count instead of
 * once per login.
 *
 * A cache belongs to one credential version: the engine keeps it in the
 * route's slot, which it empties when the route's credential changes.
 * Its keys live in secure memory and are wiped when it is freed.
 */
#ifndef CG_INJ_PG_AUTH_H
#define CG_INJ_PG_AUTH_H

#include <stddef.h>

#include "common.h"
#include "injectors/postgres/pg_scram.h"

/* "md5" and 32 hex digits, and a NUL. */
#define INJ_PG_MD5_LEN	35

/*
 * The answer to AuthenticationMD5Password: "md5" followed by
 * md5(md5(password || user) || salt) in lower-case hex.  out gets
 * INJ_PG_MD5_LEN + 1 bytes.  Returns 0 or CG_ERR_INTERNAL.
 */
int inj_pg_md5_response(const char *user, size_t userlen, const char *pw, size_t pwlen,
    const unsigned char salt[4], char out[INJ_PG_MD5_LEN + 1]) CG_WUR;

/* SCRAM keys by (salt, iterations), for one credential version. */
#define INJ_PG_KEYCACHE_MAX	8	/* servers of one route: few salts */
struct inj_pg_keycache;

/* A new, empty cache in secure memory; NULL when out of memory. */
struct inj_pg_keycache *inj_pg_keycache_new(void);
void inj_pg_keycache_free(struct inj_pg_keycache *c);	/* NULL-safe; wipes */

/*
 * The keys for salt and iterations: from the cache, or derived from pw
 * (inj_pg_scram_derive()) and kept, the oldest entry making room.  c may
 * be NULL (nothing is kept).  *derived (may be NULL) says whether the
 * derivation ran.  Returns 0, or what inj_pg_scram_derive() returns.
 */
int inj_pg_keycache_get(struct inj_pg_keycache *c, const char *pw, size_t pwlen,
    const unsigned char *salt, size_t saltlen, unsigned iterations,
    struct inj_pg_scram_keys *out, bool *derived) CG_WUR;

#endif /* CG_INJ_PG_AUTH_H */
