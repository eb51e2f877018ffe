/*
 * settings.h: one row of credgate.conf's settings table.
 *
 * Every folder that has settings describes each in one row: proxy/ its
 * process, issuer, secrets and route settings (proxy/conf_table.c), each
 * protocol in injectors/ its own (next to its code, see struct inj_proto).
 * A row names the setting, its type, default, bounds and whether a reload
 * applies it, and binds it to the field it fills: a scope (which struct)
 * and an offset in it, as pgbouncer's CF_ABS() and Redis'
 * createIntConfig() do.  From the rows alone the loader (proxy/conf.c)
 * parses, applies defaults, checks types and bounds, prints the effective
 * configuration (`credgate -T`), frees, and compares two generations on
 * reload; the man page test reads them too.  Nothing here parses or
 * allocates, and this header includes nothing from the other folders.
 */
#ifndef CG_SETTINGS_H
#define CG_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"

enum cg_setting_type {
	CG_SET_BOOL,		/* bool */
	CG_SET_INT,		/* an integer field of 4 or 8 bytes */
	CG_SET_STRING,		/* char *, NULL when unset without default */
	CG_SET_DURATION,	/* int64_t milliseconds */
	CG_SET_ENUM,		/* an enum (4 bytes): the index among choices */
	CG_SET_STRING_LIST,	/* char ** and its size_t count: a string or an
				   array of strings */
	CG_SET_GROUP,		/* no field: holds settings */
	CG_SET_LIST,		/* no field: a list of groups (elements) */
};

/*
 * Which struct a row's field is in.  The loader hands each row the struct
 * of its scope for the element being read: the process's, one issuer's,
 * one route's and its protocol's, one rule's, one condition's, one trust
 * domain's.
 */
enum cg_setting_scope {
	CG_SCOPE_NONE = 0,	/* no field: groups, lists, and rows whose
				   handling the loader keeps (see ops) */
	CG_SCOPE_PROCESS,	/* the process-wide configuration (struct cg_config) */
	CG_SCOPE_ISSUER,	/* one issuer, as policy/ holds it (struct policy_issuer) */
	CG_SCOPE_ISSUER_EXT,	/* what the proxy keeps per issuer besides */
	CG_SCOPE_ROUTE,		/* one route (struct cg_route) */
	CG_SCOPE_PROTO,		/* the route's protocol's own configuration,
				   cfg_size bytes of its struct inj_proto */
	CG_SCOPE_RULE,		/* one allow or deny rule (struct policy_rule) */
	CG_SCOPE_COND,		/* one condition of a rule (struct policy_cond) */
	CG_SCOPE_TRUST_DOMAIN,	/* one SPIFFE trust domain (struct cg_trust_domain) */
	CG_SCOPE_COUNT,
};

/* What a string setting says about the route's secret, for `credgate -t`. */
enum cg_secret_ref {
	CG_SECRET_NONE = 0,
	CG_SECRET_FIELD,	/* the name of a field the injection reads */
	CG_SECRET_TEMPLATE,	/* text whose ${name} references name fields */
};

/*
 * How a row's check reports: rel names a setting by its path below the
 * struct's element (for a protocol's rows, the route: "credential.header";
 * "" the element itself).  The loader adds the file, the line (of that
 * setting, else of the nearest enclosing one written in the file) and the
 * full path.  text must not hold a secret.
 */
struct cg_setting_report {
	void (*report)(void *arg, bool warning, const char *rel, const char *text);
	void *arg;
};

void cg_setting_err(const struct cg_setting_report *rep, const char *rel, const char *fmt,
    ...) CG_PRINTF(3, 4);
void cg_setting_warn(const struct cg_setting_report *rep, const char *rel, const char *fmt,
    ...) CG_PRINTF(3, 4);

struct cg_setting_ops;	/* the loader's own handling of a row; proxy/ only */

struct cg_setting {
	const char *path;	/* "credgate.limits.header_bytes", "routes.[].name" */
	enum cg_setting_type type;
	const char *def;	/* default as written in the file; NULL = none */
	int64_t min, max;	/* bounds for INT and DURATION (ms) */
	const char *choices;	/* ENUM: "a|b|c", in the order of the field's enum */
	bool required;
	bool reloadable;	/* false: a reload keeps the running value and warns
				   that it needs a restart (process settings only) */
	bool sensitive;		/* may hold a credential: -T prints "<redacted>" */
	bool empty_ok;		/* STRING, STRING_LIST, LIST: an empty one is allowed */
	const char *help;	/* one line */

	/* The field it fills (see CG_FIELD). */
	enum cg_setting_scope scope;
	size_t off;		/* offsetof the field in the scope's struct */
	size_t size;		/* sizeof the field */
	size_t off_n;		/* STRING_LIST: offsetof its size_t count */

	/*
	 * Optional.  unused: when the setting has no effect given the others
	 * (a field the inject kind does not read), returns the phrase -T
	 * prints after "# <name> is not used " and writes the warning for a
	 * file that sets it into warn; NULL while in use.  check: runs once
	 * the element's rows are filled, for what involves several settings;
	 * base is the row's scope struct.  Both see only filled fields.
	 */
	const char *(*unused)(const void *base, char *warn, size_t warnlen);
	void (*check)(const void *base, const struct cg_setting_report *rep);
	enum cg_secret_ref secret;	/* what `credgate -t` looks up in the secret */

	const struct cg_setting_ops *ops;	/* proxy/: custom parse and print */
	const void *arg;			/* for ops */
};

/* Binds a row to member of type, a struct of scope sc. */
#define CG_FIELD(sc, type, member) \
	.scope = (sc), .off = offsetof(type, member), .size = sizeof(((type *)0)->member)
/* A STRING_LIST row: the array member and its size_t count. */
#define CG_FIELD_LIST(sc, type, member, count) \
	CG_FIELD(sc, type, member), .off_n = offsetof(type, count)

#endif /* CG_SETTINGS_H */
