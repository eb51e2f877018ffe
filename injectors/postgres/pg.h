/*
 * pg.h: the PostgreSQL protocol of credgate: what it declares (its
 * name, the attributes it gives policy, its settings) and its sessions
 * (pg_front.c).  Includes nothing from policy/, vault-client/ or proxy/.
 */
#ifndef CG_INJ_PG_H
#define CG_INJ_PG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "injectors/injector.h"

/* The protocol "postgres" (pg_proto.c) and its sessions (pg_front.c). */
extern const struct inj_proto inj_pg_proto;
extern const struct inj_ops inj_pg_ops;

/* The attributes a PostgreSQL login gives policy: ids in inj_pg_proto.attrs. */
enum inj_pg_attr {
	INJ_PG_ATTR_DATABASE = 0,	/* "database": as the caller's startup names it */
	INJ_PG_ATTR_USER,		/* "user": the same */
	INJ_PG_NATTRS,
};

/* A route's settings: routes.[].credential.* and routes.[].postgres.*. */
struct inj_pg_cfg {
	char *username_field;		/* secret field: the upstream user */
	char *password_field;		/* secret field: its password */
	char *database;			/* sent upstream; NULL: the caller's */
	bool allow_plaintext_token;	/* a token over a connection without TLS */
	bool certificate_login;		/* a verified client certificate logs in
					   without a password */
	bool end_at_token_expiry;	/* the session ends when its token expires */
	char *reset_query;		/* before a login is reused; "" = never reuse */
	char **startup_parameters;	/* the caller's, passed on (any letter case) */
	size_t nstartup_parameters;
	int64_t idle_timeout_ms;	/* a session without traffic; 0 = none */
	int64_t max_session_ms;		/* a session's length; 0 = none */
};

#endif /* CG_INJ_PG_H */
