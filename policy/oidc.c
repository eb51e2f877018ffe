/*
 * oidc.c: the OpenID Connect discovery document and Cache-Control (see
 * oidc.h).  No I/O; errors never quote what they read.
 */
#include "config.h"

#include <ctype.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "common.h"
#include "policy/oidc.h"

/* A jwks_uri we will fetch: https, bounded, nothing a header or a log
 * line could be split with. */
static bool
uri_ok(const char *s, size_t n)
{
	size_t i;

	if (n < sizeof("https://x") - 1 || n > OIDC_URL_MAX ||
	    strncasecmp(s, "https://", 8) != 0)
		return false;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c <= 0x20 || c >= 0x7f)
			return false;
	}
	return true;
}

int
oidc_discovery_parse(const char *buf, size_t len, const char *issuer, char **jwks_uri,
    char *err, size_t errlen)
{
	json_t *root = NULL, *iss, *uri;
	int r;

	*jwks_uri = NULL;
	cg_errf(err, errlen, "%s", "");
	if (len > OIDC_DISCOVERY_MAX) {
		cg_errf(err, errlen, "discovery document larger than %d bytes",
		    OIDC_DISCOVERY_MAX);
		return CG_ERR_LIMIT;
	}
	if (buf == NULL || issuer == NULL) {
		cg_errf(err, errlen, "no discovery document");
		return CG_ERR_FORMAT;
	}
	if ((r = cg_json_strict_load(buf, len, OIDC_JSON_DEPTH, &root)) != 0) {
		if (r == CG_ERR_NOMEM) {
			cg_errf(err, errlen, "out of memory");
			return r;
		}
		cg_errf(err, errlen, "discovery document is not strict JSON");
		return CG_ERR_FORMAT;
	}
	r = CG_ERR_FORMAT;
	if (!json_is_object(root)) {
		cg_errf(err, errlen, "discovery document is not a JSON object");
		goto out;
	}
	if ((iss = json_object_get(root, "issuer")) == NULL || !json_is_string(iss)) {
		cg_errf(err, errlen, "discovery document without an \"issuer\" string");
		goto out;
	}
	if (json_string_length(iss) != strlen(issuer) ||
	    memcmp(json_string_value(iss), issuer, json_string_length(iss)) != 0) {
		cg_errf(err, errlen, "discovery document names another issuer");
		r = CG_ERR_VERIFY;
		goto out;
	}
	if ((uri = json_object_get(root, "jwks_uri")) == NULL || !json_is_string(uri)) {
		cg_errf(err, errlen, "discovery document without a \"jwks_uri\" string");
		goto out;
	}
	if (!uri_ok(json_string_value(uri), json_string_length(uri))) {
		cg_errf(err, errlen, "jwks_uri is not an https URL of at most %d bytes",
		    OIDC_URL_MAX);
		goto out;
	}
	if ((*jwks_uri = strdup(json_string_value(uri))) == NULL) {
		cg_errf(err, errlen, "out of memory");
		r = CG_ERR_NOMEM;
		goto out;
	}
	r = 0;
 out:
	json_decref(root);
	return r;
}

/* 10 years: longer than any refresh bound, short enough for any sum. */
#define CACHE_AGE_CAP	((int64_t)10 * 365 * 24 * 3600)

static bool
is_ows(char c)
{
	return c == ' ' || c == '\t';
}

int
http_cache_max_age(const char *value, int64_t *seconds)
{
	const char *p = value, *name, *val;
	size_t nlen, vlen;
	bool found = false;
	int64_t age = 0;

	*seconds = 0;
	if (value == NULL)
		return CG_ERR_NOTFOUND;
	while (*p != '\0') {
		while (is_ows(*p) || *p == ',')
			p++;
		if (*p == '\0')
			break;
		name = p;
		while (*p != '\0' && *p != '=' && *p != ',' && !is_ows(*p))
			p++;
		nlen = (size_t)(p - name);
		while (is_ows(*p))
			p++;
		val = NULL;
		vlen = 0;
		if (*p == '=') {
			p++;
			while (is_ows(*p))
				p++;
			if (*p == '"') {
				/* Quoted: skipped whole, commas inside
				 * included; never a max-age we take. */
				for (p++; *p != '\0' && *p != '"'; p++)
					if (*p == '\\' && p[1] != '\0')
						p++;
				if (*p == '"')
					p++;
			} else {
				val = p;
				while (*p != '\0' && *p != ',' && !is_ows(*p))
					p++;
				vlen = (size_t)(p - val);
			}
		}
		while (*p != '\0' && *p != ',')
			p++;	/* anything else up to the next directive */
		if ((nlen == 8 && strncasecmp(name, "no-store", 8) == 0) ||
		    (nlen == 8 && strncasecmp(name, "no-cache", 8) == 0)) {
			*seconds = 0;
			return 0;
		}
		if (!found && nlen == 7 && strncasecmp(name, "max-age", 7) == 0) {
			size_t i;

			if (val == NULL || vlen == 0)
				return CG_ERR_NOTFOUND;
			for (i = 0, age = 0; i < vlen; i++) {
				if (!isdigit((unsigned char)val[i]))
					return CG_ERR_NOTFOUND;
				if (age < CACHE_AGE_CAP)
					age = age * 10 + (val[i] - '0');
			}
			found = true;
		}
	}
	if (!found)
		return CG_ERR_NOTFOUND;
	*seconds = age > CACHE_AGE_CAP ? CACHE_AGE_CAP : age;
	return 0;
}
