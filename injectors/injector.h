/*
 * injector.h: how the credential reaches the upstream, one file per
 * protocol.  An injector reads the caller's identity proof in its protocol
 * and writes the upstream side with a credential it is handed; it never
 * calls the vault or the policy, and includes nothing from policy/,
 * vault-client/ or proxy/.
 */
#ifndef CG_INJECTOR_H
#define CG_INJECTOR_H

#include <stdbool.h>
#include <stddef.h>

#include "common.h"

struct evbuffer;

/*
 * The credential as the injector sees it: named fields, borrowed for the
 * duration of one call.  field() returns a NUL-terminated value and its
 * length, or NULL when the field is absent.
 */
struct inj_cred {
	const char *(*field)(const void *ctx, const char *name, size_t *len);
	const void *ctx;
};

#endif /* CG_INJECTOR_H */
