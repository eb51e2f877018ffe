/*
 * test_oidc.c: oidc_discovery_parse() and http_cache_max_age(), table
 * driven, with the documents real issuers publish (their shape, our own
 * words) and one of each refusal.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common.h"
#include "policy/oidc.h"

#define GH "https://token.actions.githubusercontent.com"

/* A discovery document shaped as GitHub Actions publishes it. */
static const char gh_doc[] =
    "{\"issuer\":\"" GH "\",\"jwks_uri\":\"" GH "/.well-known/jwks\","
    "\"subject_types_supported\":[\"public\",\"pairwise\"],"
    "\"response_types_supported\":[\"id_token\"],"
    "\"claims_supported\":[\"sub\",\"aud\",\"exp\",\"iat\",\"iss\",\"jti\",\"nbf\","
    "\"ref\",\"repository\",\"repository_owner\",\"environment\"],"
    "\"id_token_signing_alg_values_supported\":[\"RS256\"],"
    "\"scopes_supported\":[\"openid\"]}";

/* As a Kubernetes API server publishes it (a path in the issuer). */
static const char k8s_doc[] =
    "{\"issuer\":\"https://kubernetes.default.svc.cluster.local\","
    "\"jwks_uri\":\"https://10.0.0.1:6443/openid/v1/jwks\","
    "\"response_types_supported\":[\"id_token\"],"
    "\"subject_types_supported\":[\"public\"],"
    "\"id_token_signing_alg_values_supported\":[\"RS256\"]}";

static void
expect_ok(const char *doc, const char *issuer, const char *want)
{
	char *uri = NULL, err[256];

	if (oidc_discovery_parse(doc, strlen(doc), issuer, &uri, err, sizeof(err)) != 0)
		fail_msg("refused: %s", err);
	assert_non_null(uri);
	assert_string_equal(uri, want);
	free(uri);
}

static void
expect_fail(const char *doc, size_t len, const char *issuer, int code, const char *frag)
{
	char *uri = (char *)1, err[256];
	int r;

	memset(err, 'x', sizeof(err));
	r = oidc_discovery_parse(doc, len, issuer, &uri, err, sizeof(err));
	if (r != code)
		fail_msg("got %d (%s), want %d for %.60s", r, err, code, doc ? doc : "(null)");
	assert_null(uri);
	assert_non_null(memchr(err, '\0', sizeof(err)));
	if (strstr(err, frag) == NULL)
		fail_msg("err \"%s\" lacks \"%s\"", err, frag);
}

static void
test_discovery_accepts(void **state)
{
	(void)state;
	expect_ok(gh_doc, GH, GH "/.well-known/jwks");
	expect_ok(k8s_doc, "https://kubernetes.default.svc.cluster.local",
	    "https://10.0.0.1:6443/openid/v1/jwks");
	/* Members in any order, others of any shape. */
	expect_ok("{\"x\":{\"y\":[1,2,{}]},\"jwks_uri\":\"https://a/k\",\"issuer\":\"i\"}",
	    "i", "https://a/k");
	/* A scheme in any case is https. */
	expect_ok("{\"issuer\":\"i\",\"jwks_uri\":\"HTTPS://a/k\"}", "i", "HTTPS://a/k");
}

static void
test_discovery_refuses(void **state)
{
	static const struct {
		const char *doc;
		const char *issuer;
		int code;
		const char *frag;
	} cases[] = {
		/* The issuer must be the configured one, byte for byte. */
		{ gh_doc, GH "/", CG_ERR_VERIFY, "another issuer" },
		{ gh_doc, "https://TOKEN.actions.githubusercontent.com", CG_ERR_VERIFY,
		  "another issuer" },
		{ "{\"issuer\":\"i\\u0000x\",\"jwks_uri\":\"https://a/k\"}", "i",
		  CG_ERR_FORMAT, "not strict JSON" },
		{ "{\"issuer\":\"ix\",\"jwks_uri\":\"https://a/k\"}", "i",
		  CG_ERR_VERIFY, "another issuer" },
		{ "{\"jwks_uri\":\"https://a/k\"}", "i", CG_ERR_FORMAT, "\"issuer\"" },
		{ "{\"issuer\":1,\"jwks_uri\":\"https://a/k\"}", "i", CG_ERR_FORMAT,
		  "\"issuer\"" },
		/* jwks_uri: present, a string, https, clean. */
		{ "{\"issuer\":\"i\"}", "i", CG_ERR_FORMAT, "\"jwks_uri\"" },
		{ "{\"issuer\":\"i\",\"jwks_uri\":[\"https://a/k\"]}", "i", CG_ERR_FORMAT,
		  "\"jwks_uri\"" },
		{ "{\"issuer\":\"i\",\"jwks_uri\":\"http://a/k\"}", "i", CG_ERR_FORMAT,
		  "https URL" },
		{ "{\"issuer\":\"i\",\"jwks_uri\":\"https://\"}", "i", CG_ERR_FORMAT,
		  "https URL" },
		{ "{\"issuer\":\"i\",\"jwks_uri\":\"https://a/k x\"}", "i", CG_ERR_FORMAT,
		  "https URL" },
		{ "{\"issuer\":\"i\",\"jwks_uri\":\"https://a/k\\r\\nX: y\"}", "i",
		  CG_ERR_FORMAT, "https URL" },
		{ "{\"issuer\":\"i\",\"jwks_uri\":\"https://a/\\u00e9\"}", "i", CG_ERR_FORMAT,
		  "https URL" },
		{ "{\"issuer\":\"i\",\"jwks_uri\":\"file:///etc/passwd\"}", "i",
		  CG_ERR_FORMAT, "https URL" },
		/* Strict JSON. */
		{ "{\"issuer\":\"i\",\"issuer\":\"j\",\"jwks_uri\":\"https://a/k\"}", "j",
		  CG_ERR_FORMAT, "not strict JSON" },
		{ "{\"issuer\":\"i\",\"jwks_uri\":\"https://a/k\"} x", "i", CG_ERR_FORMAT,
		  "not strict JSON" },
		{ "[\"issuer\"]", "i", CG_ERR_FORMAT, "not a JSON object" },
		{ "", "i", CG_ERR_FORMAT, "not strict JSON" },
		{ "{\"issuer\":\"i\",\"jwks_uri\":\"https://a/k\",\"d\":"
		  "[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]}", "i", CG_ERR_FORMAT,
		  "not strict JSON" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < CG_ARRAY_LEN(cases); i++)
		expect_fail(cases[i].doc, strlen(cases[i].doc), cases[i].issuer,
		    cases[i].code, cases[i].frag);
	expect_fail(NULL, 0, "i", CG_ERR_FORMAT, "no discovery document");
	expect_fail(gh_doc, sizeof(gh_doc) - 1, NULL, CG_ERR_FORMAT, "no discovery document");
}

static void
test_discovery_limits(void **state)
{
	size_t n = OIDC_DISCOVERY_MAX, pre, i;
	char *doc = malloc(n + 2), *uri = NULL, err[256];
	char longuri[OIDC_URL_MAX + 64];

	(void)state;
	assert_non_null(doc);
	/* Exactly at the limit it parses; a byte more does not. */
	pre = (size_t)snprintf(doc, n, "{\"issuer\":\"i\",\"jwks_uri\":\"https://a/k\",\"p\":\"");
	for (i = pre; i < n - 2; i++)
		doc[i] = 'a';
	doc[n - 2] = '"';
	doc[n - 1] = '}';
	assert_int_equal(oidc_discovery_parse(doc, n, "i", &uri, err, sizeof(err)), 0);
	free(uri);
	doc[n - 1] = ' ';
	doc[n] = '}';
	expect_fail(doc, n + 1, "i", CG_ERR_LIMIT, "larger than");
	free(doc);

	/* The longest jwks_uri, and one byte longer. */
	for (i = 0; i < 2; i++) {
		size_t len = OIDC_URL_MAX + i, at;
		char *d;

		at = (size_t)snprintf(longuri, sizeof(longuri), "https://a/");
		memset(longuri + at, 'k', len - at);
		longuri[len] = '\0';
		assert_non_null(d = malloc(sizeof(longuri) + 64));
		strcpy(d, "{\"issuer\":\"i\",\"jwks_uri\":\"");
		strcat(d, longuri);
		strcat(d, "\"}");
		if (i == 0)
			expect_ok(d, "i", longuri);
		else
			expect_fail(d, strlen(d), "i", CG_ERR_FORMAT, "https URL");
		free(d);
	}
}

static void
test_cache_control(void **state)
{
	static const struct {
		const char *v;
		int code;
		int64_t secs;
	} cases[] = {
		{ "max-age=300", 0, 300 },
		{ "public, max-age=3600, must-revalidate", 0, 3600 },
		{ "  MAX-AGE = 60 ", 0, 60 },
		{ "private,max-age=0", 0, 0 },
		{ "max-age=300, max-age=5", 0, 300 },		/* the first */
		{ "x=\"a, max-age=5\", max-age=7", 0, 7 },	/* quoted skipped */
		{ "no-cache", 0, 0 },
		{ "max-age=600, no-store", 0, 0 },
		{ "No-Cache=\"Set-Cookie\"", 0, 0 },
		{ "max-age=99999999999999999999999", 0, (int64_t)10 * 365 * 24 * 3600 },
		{ "public", CG_ERR_NOTFOUND, 0 },
		{ "", CG_ERR_NOTFOUND, 0 },
		{ ",,, ,", CG_ERR_NOTFOUND, 0 },
		{ "max-age", CG_ERR_NOTFOUND, 0 },
		{ "max-age=", CG_ERR_NOTFOUND, 0 },
		{ "max-age=-5", CG_ERR_NOTFOUND, 0 },
		{ "max-age=5s", CG_ERR_NOTFOUND, 0 },
		{ "max-age=\"300\"", CG_ERR_NOTFOUND, 0 },
		{ "s-maxage=300", CG_ERR_NOTFOUND, 0 },
		{ "max-agex=300", CG_ERR_NOTFOUND, 0 },
		{ "x=\"unterminated, max-age=5", CG_ERR_NOTFOUND, 0 },
	};
	int64_t s;
	size_t i;

	(void)state;
	for (i = 0; i < CG_ARRAY_LEN(cases); i++) {
		s = -1;
		if (http_cache_max_age(cases[i].v, &s) != cases[i].code ||
		    (cases[i].code == 0 && s != cases[i].secs))
			fail_msg("\"%s\": got %lld", cases[i].v, (long long)s);
	}
	assert_int_equal(http_cache_max_age(NULL, &s), CG_ERR_NOTFOUND);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_discovery_accepts),
		cmocka_unit_test(test_discovery_refuses),
		cmocka_unit_test(test_discovery_limits),
		cmocka_unit_test(test_cache_control),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
