/*
 * cache_int.h: what the files of vault-client/ share behind vault.h: the
 * stale copy of a secret (secret.c, for cache.c).  Not for use outside
 * vault-client/.
 */
#ifndef CG_VAULT_CACHE_INT_H
#define CG_VAULT_CACHE_INT_H

#include "vault-client/vault.h"

/*
 * A copy of s, in its own block of secure memory, for which secret_stale()
 * is true: what the cache hands out when it serves s past its expiry.
 * Returns 0 and *out (refcount 1), or CG_ERR_NOMEM.
 */
int secret_stale_copy(const struct secret *s, struct secret **out) CG_WUR;

#endif /* CG_VAULT_CACHE_INT_H */
