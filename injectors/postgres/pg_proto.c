/*
 * pg_proto.c: what PostgreSQL declares as a protocol of credgate: its
 * name, the login attributes it gives policy, and its settings rows,
 * bound to struct inj_pg_cfg.  Owns no state; reads no file.
 */
#include <string.h>
#include <strings.h>

#include "injectors/postgres/pg.h"
#include "injectors/postgres/pg_parse.h"

/* In the order of enum inj_pg_attr. */
static const char *const pg_attrs[] = {
	[INJ_PG_ATTR_DATABASE] = "database",
	[INJ_PG_ATTR_USER] = "user",
	[INJ_PG_NATTRS] = NULL,
};

enum {
	ROW_USERNAME_FIELD,
	ROW_PASSWORD_FIELD,
	ROW_GROUP,
	ROW_DATABASE,
	ROW_PLAINTEXT,
	ROW_CERT_LOGIN,
	ROW_RESET,
	ROW_PARAMS,
	ROW_IDLE,
	ROW_MAX_SESSION,
	ROW_TOKEN_EXPIRY,
	NROWS,
};

static const struct cg_setting pg_settings[NROWS];

static const char *
rel(int row)
{
	return pg_settings[row].path + strlen(INJ_ROUTE_PREFIX);
}

/* What PostgreSQL itself would refuse, caught at load. */
static void
pg_check(const void *base, const struct cg_setting_report *rep)
{
	const struct inj_pg_cfg *pc = base;
	size_t i;

	if (pc->database != NULL && (pc->database[0] == '\0' || strlen(pc->database) > 63))
		cg_setting_err(rep, rel(ROW_DATABASE), "must be 1 to 63 bytes");
	if (pc->reset_query != NULL && strlen(pc->reset_query) > 1024)
		cg_setting_err(rep, rel(ROW_RESET), "longer than 1024 bytes");
	for (i = 0; i < pc->nstartup_parameters; i++) {
		const char *n = pc->startup_parameters[i];

		if (n[0] == '\0' || strlen(n) > 63 || strcspn(n, " \t\r\n=") != strlen(n))
			cg_setting_err(rep, rel(ROW_PARAMS), "\"%.63s\" is not a parameter name", n);
		else if (strcasecmp(n, "user") == 0 || strcasecmp(n, "database") == 0 ||
		    strcasecmp(n, "options") == 0 || strcasecmp(n, "replication") == 0 ||
		    strncasecmp(n, "_pq_.", 5) == 0)
			cg_setting_err(rep, rel(ROW_PARAMS), "\"%s\" never passes: credgate "
			    "decides it", n);
	}
	if (pc->idle_timeout_ms == 0 && pc->max_session_ms == 0 && !pc->end_at_token_expiry)
		cg_setting_warn(rep, rel(ROW_IDLE), "sessions have no bound: neither "
		    "idle_timeout, max_session nor end_at_token_expiry is set");
}

#define PG_FIELD(m)	CG_FIELD(CG_SCOPE_PROTO, struct inj_pg_cfg, m)

static const struct cg_setting pg_settings[NROWS] = {
	[ROW_USERNAME_FIELD] = {
		.path = "routes.[].credential.username_field", .type = CG_SET_STRING,
		.def = "\"username\"", .reloadable = true,
		.help = "secret field with the user name credgate logs in as",
		PG_FIELD(username_field), .secret = CG_SECRET_FIELD,
	},
	[ROW_PASSWORD_FIELD] = {
		.path = "routes.[].credential.password_field", .type = CG_SET_STRING,
		.def = "\"password\"", .reloadable = true,
		.help = "secret field with its password",
		PG_FIELD(password_field), .secret = CG_SECRET_FIELD,
	},
	[ROW_GROUP] = {
		.path = "routes.[].postgres", .type = CG_SET_GROUP, .reloadable = true,
		.help = "PostgreSQL settings of the route", .check = pg_check,
	},
	[ROW_DATABASE] = {
		.path = "routes.[].postgres.database", .type = CG_SET_STRING, .reloadable = true,
		.help = "database credgate logs in to (unset: the one the caller names)",
		PG_FIELD(database),
	},
	[ROW_PLAINTEXT] = {
		.path = "routes.[].postgres.allow_plaintext_token", .type = CG_SET_BOOL,
		.def = "false", .reloadable = true,
		.help = "accept a token on a connection without TLS",
		PG_FIELD(allow_plaintext_token),
	},
	[ROW_CERT_LOGIN] = {
		.path = "routes.[].postgres.certificate_login", .type = CG_SET_BOOL,
		.def = "false", .reloadable = true,
		.help = "a verified client certificate logs in without a password",
		PG_FIELD(certificate_login),
	},
	[ROW_RESET] = {
		.path = "routes.[].postgres.reset_query", .type = CG_SET_STRING,
		.def = "\"DISCARD ALL\"", .reloadable = true, .empty_ok = true,
		.help = "query that cleans a login before its reuse (\"\": no reuse)",
		PG_FIELD(reset_query),
	},
	[ROW_PARAMS] = {
		.path = "routes.[].postgres.startup_parameters", .type = CG_SET_STRING_LIST,
		.def = "[ \"application_name\", \"client_encoding\", \"DateStyle\", "
		    "\"TimeZone\", \"IntervalStyle\", \"extra_float_digits\" ]",
		.reloadable = true, .empty_ok = true,
		.help = "startup parameters of the caller passed on",
		CG_FIELD_LIST(CG_SCOPE_PROTO, struct inj_pg_cfg, startup_parameters,
		    nstartup_parameters),
	},
	[ROW_IDLE] = {
		.path = "routes.[].postgres.idle_timeout", .type = CG_SET_DURATION,
		.def = "\"1h\"", .min = 0, .max = 7 * 24 * 3600 * 1000LL, .reloadable = true,
		.help = "a session without traffic either way ends (0: never)",
		PG_FIELD(idle_timeout_ms),
	},
	[ROW_MAX_SESSION] = {
		.path = "routes.[].postgres.max_session", .type = CG_SET_DURATION,
		.def = "\"24h\"", .min = 0, .max = 30 * 24 * 3600 * 1000LL, .reloadable = true,
		.help = "longest session (0: no limit)",
		PG_FIELD(max_session_ms),
	},
	[ROW_TOKEN_EXPIRY] = {
		.path = "routes.[].postgres.end_at_token_expiry", .type = CG_SET_BOOL,
		.def = "false", .reloadable = true,
		.help = "end a session when the token it logged in with expires",
		PG_FIELD(end_at_token_expiry),
	},
};

const struct inj_proto inj_pg_proto = {
	.name = "postgres",
	.ops = &inj_pg_ops,
	.attrs = pg_attrs,
	.settings = pg_settings,
	.nsettings = NROWS,
	.cfg_size = sizeof(struct inj_pg_cfg),
};
