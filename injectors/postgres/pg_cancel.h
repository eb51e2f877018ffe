/*
 * pg_cancel.h: the cancel keys credgate hands its PostgreSQL callers.
 *
 * A caller gets credgate's own BackendKeyData, never the upstream's: a
 * process id and key drawn at random, which a CancelRequest must name
 * exactly.  The map from those to the upstream server's own pid and key
 * is process-wide (a CancelRequest comes on a new connection, which any
 * worker may accept), behind one lock; entries live as long as their
 * session's login.
 */
#ifndef CG_INJ_PG_CANCEL_H
#define CG_INJ_PG_CANCEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "injectors/postgres/pg_parse.h"

/* Bytes of the keys credgate makes: protocol 3.0 has room for 4, 3.2
 * for up to 256 (PostgreSQL 18 itself makes 32). */
#define INJ_PG_KEY_V30	4
#define INJ_PG_KEY_V32	32

/* One session's keys: credgate's and the upstream's. */
struct inj_pg_cancel {
	uint32_t pid;				/* credgate's, given to the caller */
	unsigned char key[INJ_PG_KEY_V32];
	size_t keylen;
	uint32_t up_pid;			/* the upstream server's */
	unsigned char up_key[INJ_PG_KEY_MAX];
	size_t up_keylen;
	char upstream[96];			/* "host:port" the upstream is */
	struct inj_pg_cancel *next;		/* the map's */
	bool listed;
};

/*
 * Draws a new pid and key (keylen bytes, INJ_PG_KEY_V30 or _V32) for e,
 * whose upstream fields are set, and lists it.  0, or CG_ERR_INTERNAL
 * when no random bytes could be had.
 */
int inj_pg_cancel_add(struct inj_pg_cancel *e, size_t keylen) CG_WUR;

/* Takes e off the map (NULL-safe, idempotent) and wipes its keys. */
void inj_pg_cancel_del(struct inj_pg_cancel *e);

/*
 * The upstream keys of the session that gave out pid and key, if its
 * upstream is upstream: copied into *out (upstream fields only).
 * False when no session matches: the request is dropped silently, as
 * PostgreSQL does.
 */
bool inj_pg_cancel_find(uint32_t pid, const void *key, size_t keylen, const char *upstream,
    struct inj_pg_cancel *out);

#endif /* CG_INJ_PG_CANCEL_H */
