/*
 * oidc.h: the outside documents a key set fetcher reads besides the JWKS
 * itself: an OpenID Connect discovery document, and a response's
 * Cache-Control.  Pure parsers, apart from any I/O, for the fetcher
 * (keyfetch.c) and the fuzzer.
 */
#ifndef CG_POLICY_OIDC_H
#define CG_POLICY_OIDC_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"

#define OIDC_DISCOVERY_MAX	(256 * 1024)	/* bytes of a discovery document */
#define OIDC_URL_MAX		2048		/* bytes of a jwks_uri */
#define OIDC_JSON_DEPTH		16

/*
 * Parses an OpenID Provider Configuration document (len bytes at buf, at
 * most OIDC_DISCOVERY_MAX) as a key fetcher needs it: a strict JSON object
 * (no duplicate members, bounded nesting) whose "issuer" equals issuer
 * byte for byte (OpenID Connect Discovery 1.0, section 4.3) and whose
 * "jwks_uri" is an https URL of at most OIDC_URL_MAX bytes without
 * control characters or white space.  Other members are not looked at.
 * Returns 0 and a malloc'd copy of jwks_uri in *jwks_uri; CG_ERR_LIMIT for
 * an oversized document; CG_ERR_VERIFY when the issuer differs;
 * CG_ERR_FORMAT for anything else; CG_ERR_NOMEM.  On failure a one-line
 * reason goes into err (errlen bytes); it quotes neither the document nor
 * a URL from it.
 */
int oidc_discovery_parse(const char *buf, size_t len, const char *issuer, char **jwks_uri,
    char *err, size_t errlen) CG_WUR;

/*
 * How long a response may be reused, from its Cache-Control value (NULL:
 * absent): 0 with no-store or no-cache, else max-age's seconds (the first
 * one; values beyond 10 years are taken as 10 years).  Directive names are
 * case-insensitive; unknown directives, and quoted values, are skipped.
 * Returns 0 with *seconds set, or CG_ERR_NOTFOUND when the value says
 * nothing about freshness (or is malformed where max-age stands).
 */
int http_cache_max_age(const char *value, int64_t *seconds) CG_WUR;

#endif
