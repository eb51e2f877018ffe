/*
 * http_proto.c: what HTTP declares as a protocol of credgate: its name,
 * the request attributes it gives policy, and its settings rows, bound to
 * struct inj_http_cfg (the credential settings users write under
 * routes.[].credential).  Owns no state; reads no file.
 */
#include <stdio.h>
#include <string.h>

#include "injectors/http/http.h"

/* In the order of enum inj_http_attr. */
static const char *const http_attrs[] = {
	[INJ_HTTP_ATTR_METHOD] = "method",
	[INJ_HTTP_ATTR_PATH] = "path",
	[INJ_HTTP_NATTRS] = NULL,
};

_Static_assert(INJ_HTTP_BASIC == 0 && INJ_HTTP_BEARER == 1 && INJ_HTTP_HEADER == 2 &&
    INJ_HTTP_QUERY == 3, "credential.inject choices follow enum inj_http_kind");

/* Rows by name, for the check's messages (a path below the route). */
enum {
	ROW_INJECT,
	ROW_USERNAME_FIELD,
	ROW_PASSWORD_FIELD,
	ROW_FIELD,
	ROW_HEADER,
	ROW_TEMPLATE,
	ROW_QUERY_PARAM,
	NROWS,
};

static const struct cg_setting http_settings[NROWS];

static const char *
rel(int row)
{
	return http_settings[row].path + strlen(INJ_ROUTE_PREFIX);
}

/* A setting read only by the inject kinds of kinds (1 << INJ_HTTP_*). */
static const char *
unused_unless(const void *base, unsigned kinds, char *warn, size_t warnlen)
{
	const struct inj_http_cfg *ic = base;

	if (kinds & (1u << ic->kind))
		return NULL;
	snprintf(warn, warnlen, "ignored when inject is \"%s\"", inj_http_kind_name(ic->kind));
	return "by this inject kind";
}

static const char *
unused_basic(const void *base, char *warn, size_t warnlen)
{
	return unused_unless(base, 1u << INJ_HTTP_BASIC, warn, warnlen);
}

static const char *
unused_field(const void *base, char *warn, size_t warnlen)
{
	return unused_unless(base, 1u << INJ_HTTP_BEARER | 1u << INJ_HTTP_QUERY, warn, warnlen);
}

static const char *
unused_header(const void *base, char *warn, size_t warnlen)
{
	return unused_unless(base, 1u << INJ_HTTP_HEADER, warn, warnlen);
}

static const char *
unused_query(const void *base, char *warn, size_t warnlen)
{
	return unused_unless(base, 1u << INJ_HTTP_QUERY, warn, warnlen);
}

/* What the inject kind needs, and inj_http_cfg_check() on the whole. */
static void
http_check(const void *base, const struct cg_setting_report *rep)
{
	const struct inj_http_cfg *ic = base;
	char group[64], err[256];
	const char *dot;

	/* the credential group, which holds the inject setting */
	dot = strrchr(rel(ROW_INJECT), '.');
	snprintf(group, sizeof(group), "%.*s", (int)(dot - rel(ROW_INJECT)), rel(ROW_INJECT));
	if (ic->kind == INJ_HTTP_HEADER) {
		if (ic->header == NULL)
			cg_setting_err(rep, rel(ROW_HEADER), "required when inject is \"header\"");
		if (ic->value_template == NULL)
			cg_setting_err(rep, rel(ROW_TEMPLATE), "required when inject is \"header\"");
		if (ic->header == NULL || ic->value_template == NULL)
			return;
	}
	if (ic->kind == INJ_HTTP_QUERY && ic->query_param == NULL) {
		cg_setting_err(rep, rel(ROW_QUERY_PARAM), "required when inject is \"query\"");
		return;
	}
	if (ic->username_field == NULL || ic->password_field == NULL || ic->field == NULL)
		return;		/* out of memory, which the loader reports */
	if (inj_http_cfg_check(ic, err, sizeof(err)) != 0)
		cg_setting_err(rep, group, "%s", err[0] != '\0' ? err : "invalid injection settings");
	else if (ic->kind == INJ_HTTP_HEADER && strstr(ic->value_template, "${") == NULL)
		/* a credential written into the configuration, not the store */
		cg_setting_warn(rep, rel(ROW_TEMPLATE), "references no ${field} of the secret: the "
		    "header value is written in the configuration; keep the credential in the "
		    "secret store");
}

#define HTTP_FIELD(m)	CG_FIELD(CG_SCOPE_PROTO, struct inj_http_cfg, m)

static const struct cg_setting http_settings[NROWS] = {
	[ROW_INJECT] = {
		.path = "routes.[].credential.inject", .type = CG_SET_ENUM, .def = "\"basic\"",
		.choices = "basic|bearer|header|query", .reloadable = true,
		.help = "how the credential reaches the upstream",
		HTTP_FIELD(kind), .check = http_check,
	},
	[ROW_USERNAME_FIELD] = {
		.path = "routes.[].credential.username_field", .type = CG_SET_STRING,
		.def = "\"username\"", .reloadable = true,
		.help = "secret field with the user name (basic)",
		HTTP_FIELD(username_field), .unused = unused_basic, .secret = CG_SECRET_FIELD,
	},
	[ROW_PASSWORD_FIELD] = {
		.path = "routes.[].credential.password_field", .type = CG_SET_STRING,
		.def = "\"password\"", .reloadable = true,
		.help = "secret field with the password (basic)",
		HTTP_FIELD(password_field), .unused = unused_basic, .secret = CG_SECRET_FIELD,
	},
	[ROW_FIELD] = {
		.path = "routes.[].credential.field", .type = CG_SET_STRING,
		.def = "\"token\"", .reloadable = true,
		.help = "secret field injected (bearer, query)",
		HTTP_FIELD(field), .unused = unused_field, .secret = CG_SECRET_FIELD,
	},
	[ROW_HEADER] = {
		.path = "routes.[].credential.header", .type = CG_SET_STRING, .reloadable = true,
		.help = "header name (header)",
		HTTP_FIELD(header), .unused = unused_header,
	},
	/* sensitive: a credential may be written into it */
	[ROW_TEMPLATE] = {
		.path = "routes.[].credential.template", .type = CG_SET_STRING,
		.reloadable = true, .sensitive = true,
		.help = "header value with ${field} references (header)",
		HTTP_FIELD(value_template), .unused = unused_header,
		.secret = CG_SECRET_TEMPLATE,
	},
	[ROW_QUERY_PARAM] = {
		.path = "routes.[].credential.query_param", .type = CG_SET_STRING,
		.reloadable = true, .help = "query parameter name (query)",
		HTTP_FIELD(query_param), .unused = unused_query,
	},
};

const struct inj_proto inj_http_proto = {
	.name = "http",
	.ops = &inj_http_ops,
	.attrs = http_attrs,
	.settings = http_settings,
	.nsettings = NROWS,
	.cfg_size = sizeof(struct inj_http_cfg),
};
