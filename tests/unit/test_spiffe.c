/*
 * test_spiffe.c: spiffe_id_parse(), spiffe_id_match() and
 * spiffe_svid_check(), the last with EC P-256 certificates made at test
 * time (self-signed: the chain is not what is checked).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "tests/unit/unit.h"
#include "common.h"
#include "policy/spiffe.h"

/* ------------------------------------------------------------------ */
/* Parsing                                                             */
/* ------------------------------------------------------------------ */

/*
 * Parses s (strlen bytes) and checks the code; on success the two parts,
 * on failure that err holds the fragment `want` and *out is empty.
 */
static void
parse_case(const char *s, size_t len, int code, const char *td,
    const char *path, const char *want)
{
	struct spiffe_id id;
	char err[256];
	int r;

	memset(&id, 0xa5, sizeof(id));
	memset(err, 0, sizeof(err));
	r = spiffe_id_parse(s, len, &id, err, sizeof(err));
	if (r != code)
		fail_msg("\"%.80s\" (%zu bytes): got %d (%s), want %d", s, len,
		    r, err, code);
	if (code == 0) {
		assert_string_equal(id.trust_domain, td);
		assert_string_equal(id.path, path);
		return;
	}
	assert_string_equal(id.trust_domain, "");
	assert_string_equal(id.path, "");
	if (strstr(err, want) == NULL)
		fail_msg("\"%.80s\": reason \"%s\" lacks \"%s\"", s, err, want);
}

static void
test_parse_valid(void **state)
{
	static const struct {
		const char *s, *td, *path;
	} t[] = {
		{ "spiffe://example.org", "example.org", "" },
		{ "spiffe://example.org/workload", "example.org", "/workload" },
		{ "spiffe://example.org/ns/prod/sa/api", "example.org", "/ns/prod/sa/api" },
		{ "spiffe://a", "a", "" },
		{ "spiffe://my_td-1.example.org/X", "my_td-1.example.org", "/X" },
		{ "spiffe://td/Az09.-_", "td", "/Az09.-_" },
		{ "spiffe://td/...", "td", "/..." },
		{ "spiffe://td/.a/a./..b", "td", "/.a/a./..b" },
		{ "spiffe://td/a/b.c", "td", "/a/b.c" },
		{ "spiffe://1.2.3.4/x", "1.2.3.4", "/x" },
	};
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		parse_case(t[i].s, strlen(t[i].s), 0, t[i].td, t[i].path, NULL);
	(void)state;
}

static void
test_parse_refused(void **state)
{
	static const struct {
		const char *s;
		int code;
		const char *want;
	} t[] = {
		{ "", CG_ERR_FORMAT, "does not start with" },
		{ "spiffe:/", CG_ERR_FORMAT, "does not start with" },
		{ "spiffe:example.org", CG_ERR_FORMAT, "does not start with" },
		{ "https://example.org/x", CG_ERR_FORMAT, "does not start with" },
		{ " spiffe://example.org", CG_ERR_FORMAT, "does not start with" },
		{ "SPIFFE://example.org/x", CG_ERR_FORMAT, "must be lowercase" },
		{ "Spiffe://example.org", CG_ERR_FORMAT, "must be lowercase" },
		{ "spiffe://", CG_ERR_FORMAT, "trust domain is empty" },
		{ "spiffe:///x", CG_ERR_FORMAT, "trust domain is empty" },
		{ "spiffe://Example.org", CG_ERR_FORMAT, "byte 9: uppercase" },
		{ "spiffe://example.org:443/x", CG_ERR_FORMAT, "byte 20: a port" },
		{ "spiffe://user@example.org", CG_ERR_FORMAT, "byte 13: userinfo" },
		{ "spiffe://ex%41mple.org", CG_ERR_FORMAT, "trust domain, byte 11: percent" },
		{ "spiffe://example.org?q", CG_ERR_FORMAT, "a query" },
		{ "spiffe://example.org#f", CG_ERR_FORMAT, "a fragment" },
		{ "spiffe://exa mple.org", CG_ERR_FORMAT, "outside the allowed set" },
		{ "spiffe://example.org/", CG_ERR_FORMAT, "ends with '/'" },
		{ "spiffe://example.org/a/", CG_ERR_FORMAT, "ends with '/'" },
		{ "spiffe://example.org//a", CG_ERR_FORMAT, "byte 21: empty segment" },
		{ "spiffe://example.org/a//b", CG_ERR_FORMAT, "byte 23: empty segment" },
		{ "spiffe://example.org/.", CG_ERR_FORMAT, "byte 21: \".\" and \"..\"" },
		{ "spiffe://example.org/..", CG_ERR_FORMAT, "byte 21: \".\" and \"..\"" },
		{ "spiffe://example.org/a/./b", CG_ERR_FORMAT, "byte 23: \".\" and \"..\"" },
		{ "spiffe://example.org/a/../b", CG_ERR_FORMAT, "byte 23: \".\" and \"..\"" },
		{ "spiffe://example.org/a/..", CG_ERR_FORMAT, "\".\" and \"..\"" },
		{ "spiffe://example.org/a?x=1", CG_ERR_FORMAT, "path, byte 22: a query" },
		{ "spiffe://example.org/a#frag", CG_ERR_FORMAT, "path, byte 22: a fragment" },
		{ "spiffe://example.org/a%2Fb", CG_ERR_FORMAT, "path, byte 22: percent" },
		{ "spiffe://example.org/a b", CG_ERR_FORMAT, "path, byte 22: byte outside" },
		{ "spiffe://example.org/a:b", CG_ERR_FORMAT, "path, byte 22: a port" },
		{ "spiffe://example.org/\xc3\xa9", CG_ERR_FORMAT, "byte outside" },
	};
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		parse_case(t[i].s, strlen(t[i].s), t[i].code, NULL, NULL, t[i].want);
	(void)state;
}

/* The length is what counts, not a terminator: a NUL inside is refused,
 * and bytes past len are never read. */
static void
test_parse_len(void **state)
{
	static const char nul_td[] = "spiffe://exa\0mple.org/x";
	static const char nul_path[] = "spiffe://example.org/a\0b";
	struct spiffe_id id;
	char err[128];

	parse_case(nul_td, sizeof(nul_td) - 1, CG_ERR_FORMAT, NULL, NULL, "NUL byte");
	parse_case(nul_path, sizeof(nul_path) - 1, CG_ERR_FORMAT, NULL, NULL, "NUL byte");
	parse_case("spiffe://example.org/a?x", 22, 0, "example.org", "/a", NULL);
	parse_case("spiffe://example.org/abc", 9 + 11, 0, "example.org", "", NULL);

	memset(&id, 0xa5, sizeof(id));
	assert_int_equal(spiffe_id_parse(NULL, 0, &id, err, sizeof(err)), CG_ERR_FORMAT);
	assert_string_equal(id.trust_domain, "");
	assert_int_equal(spiffe_id_parse("spiffe://a", 10, NULL, err, sizeof(err)),
	    CG_ERR_FORMAT);
	/* No room for a reason is not an error of its own. */
	assert_int_equal(spiffe_id_parse("spiffe://A", 10, &id, NULL, 0), CG_ERR_FORMAT);
	(void)state;
}

/* Every proper prefix of a valid ID parses or fails cleanly, never more. */
static void
test_parse_prefixes(void **state)
{
	static const char full[] = "spiffe://example.org/ns/a.b/c";
	size_t n;

	for (n = 0; n <= sizeof(full) - 1; n++) {
		struct spiffe_id id;
		int r = spiffe_id_parse(full, n, &id, NULL, 0);

		/* A trust domain's prefix is a trust domain too. */
		if (n > SPIFFE_SCHEME_LEN && full[n - 1] != '/')
			assert_int_equal(r, 0);
		else
			assert_int_equal(r, CG_ERR_FORMAT);
	}
	(void)state;
}

static char *
repeat(char c, size_t n)
{
	char *s = malloc(n + 1);

	assert_non_null(s);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

static void
test_parse_limits(void **state)
{
	char *td255 = repeat('a', SPIFFE_TD_MAX), *td256 = repeat('a', SPIFFE_TD_MAX + 1);
	char buf[SPIFFE_ID_MAX + 2];
	size_t n;

	snprintf(buf, sizeof(buf), "spiffe://%s/x", td255);
	parse_case(buf, strlen(buf), 0, td255, "/x", NULL);
	snprintf(buf, sizeof(buf), "spiffe://%s/x", td256);
	parse_case(buf, strlen(buf), CG_ERR_LIMIT, NULL, NULL,
	    "trust domain longer than 255 bytes");
	/* A trust domain only: the limit holds at the end of the input. */
	snprintf(buf, sizeof(buf), "spiffe://%s", td256);
	parse_case(buf, strlen(buf), CG_ERR_LIMIT, NULL, NULL, "longer than 255");

	/* A whole ID of exactly SPIFFE_ID_MAX bytes: "spiffe://t/" then a
	 * path segment filling the rest. */
	memcpy(buf, "spiffe://t/", 11);
	for (n = 11; n < SPIFFE_ID_MAX; n++)
		buf[n] = (n % 64 == 0) ? '/' : 'p';
	buf[n] = '\0';
	assert_int_equal(strlen(buf), SPIFFE_ID_MAX);
	parse_case(buf, SPIFFE_ID_MAX, 0, "t", buf + 10, NULL);
	buf[SPIFFE_ID_MAX] = 'p';
	buf[SPIFFE_ID_MAX + 1] = '\0';
	parse_case(buf, SPIFFE_ID_MAX + 1, CG_ERR_LIMIT, NULL, NULL,
	    "longer than 2048 bytes");

	/* The longest path a struct must hold: a one-byte domain. */
	assert_int_equal(strlen(buf + 10) - 1, SPIFFE_PATH_MAX);
	free(td255);
	free(td256);
	(void)state;
}

/* ------------------------------------------------------------------ */
/* Matching                                                            */
/* ------------------------------------------------------------------ */

static void
test_match(void **state)
{
	static const struct {
		const char *id, *pattern;
		bool want;
	} t[] = {
		/* Exact IDs. */
		{ "spiffe://example.org/a/b", "spiffe://example.org/a/b", true },
		{ "spiffe://example.org/a/b", "spiffe://example.org/a/c", false },
		{ "spiffe://example.org/a/b", "spiffe://example.org/a", false },
		{ "spiffe://example.org/a", "spiffe://example.org/a/b", false },
		{ "spiffe://example.org/A", "spiffe://example.org/a", false },
		/* The trust domain is exact and literal. */
		{ "spiffe://example.org/a", "spiffe://other.org/a", false },
		{ "spiffe://example.org/a", "spiffe://example.or/a", false },
		{ "spiffe://example.org/a", "spiffe://example.org.x/a", false },
		{ "spiffe://example.org/a", "spiffe://*/a", false },
		{ "spiffe://example.org/a", "spiffe://example.*/a", false },
		{ "spiffe://example.org/a", "spiffe://EXAMPLE.org/a", false },
		/* No path in the pattern: only the trust domain's own ID. */
		{ "spiffe://example.org", "spiffe://example.org", true },
		{ "spiffe://example.org/a", "spiffe://example.org", false },
		{ "spiffe://example.org", "spiffe://other.org", false },
		/* A path of '/' and '*': every ID with a path, at any depth
		 * ('*' crosses '/'), but not the trust domain's own ID. */
		{ "spiffe://example.org/a", "spiffe://example.org/*", true },
		{ "spiffe://example.org/a/b/c", "spiffe://example.org/*", true },
		{ "spiffe://example.org", "spiffe://example.org/*", false },
		{ "spiffe://other.org/a", "spiffe://example.org/*", false },
		/* Globs within the path. */
		{ "spiffe://example.org/ns/prod/sa/api", "spiffe://example.org/ns/*", true },
		{ "spiffe://example.org/ns", "spiffe://example.org/ns/*", false },
		{ "spiffe://example.org/nsx/a", "spiffe://example.org/ns/*", false },
		{ "spiffe://example.org/ns/prod/sa/api", "spiffe://example.org/ns/*/sa/api", true },
		{ "spiffe://example.org/ns/a/b/sa/api", "spiffe://example.org/ns/*/sa/api", true },
		{ "spiffe://example.org/ns/a/sa/web", "spiffe://example.org/ns/*/sa/api", false },
		{ "spiffe://example.org/w1", "spiffe://example.org/w?", true },
		{ "spiffe://example.org/w12", "spiffe://example.org/w?", false },
		{ "spiffe://example.org/a", "spiffe://example.org/\\a", true },
		/* A trailing '/' in a pattern matches no ID. */
		{ "spiffe://example.org/a", "spiffe://example.org/a/", false },
		{ "spiffe://example.org", "spiffe://example.org/", false },
		/* Broken patterns match nothing. */
		{ "spiffe://example.org/a", "", false },
		{ "spiffe://example.org/a", "SPIFFE://example.org/a", false },
		{ "spiffe://example.org/a", "example.org/a", false },
		{ "spiffe://example.org/a", "spiffe:///a", false },
		{ "spiffe://example.org/a", "spiffe://", false },
	};
	struct spiffe_id id;
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		assert_int_equal(spiffe_id_parse(t[i].id, strlen(t[i].id), &id, NULL, 0), 0);
		if (spiffe_id_match(&id, t[i].pattern) != t[i].want)
			fail_msg("%s against \"%s\": want %s", t[i].id, t[i].pattern,
			    t[i].want ? "match" : "no match");
	}
	assert_false(spiffe_id_match(&id, NULL));
	assert_false(spiffe_id_match(NULL, "spiffe://example.org/*"));
	/* A cleared struct (a failed parse) matches nothing. */
	memset(&id, 0, sizeof(id));
	assert_false(spiffe_id_match(&id, "spiffe://"));
	assert_false(spiffe_id_match(&id, "spiffe:///*"));
	(void)state;
}

/* ------------------------------------------------------------------ */
/* X509-SVID leaves                                                    */
/* ------------------------------------------------------------------ */
/* What the configuration accepts: trust domains and patterns          */
/* ------------------------------------------------------------------ */

static void
test_trust_domain_check(void **state)
{
	static const struct {
		const char *s;
		int code;
		const char *want;
	} t[] = {
		{ "example.org", 0, NULL },
		{ "prod.example.org", 0, NULL },
		{ "my_td-1.example.org", 0, NULL },
		{ "a", 0, NULL },
		{ "", CG_ERR_FORMAT, "trust domain is empty" },
		{ "Example.org", CG_ERR_FORMAT, "trust domain, byte 0: uppercase" },
		{ "example.ORG", CG_ERR_FORMAT, "trust domain, byte 8: uppercase" },
		{ "example.org:443", CG_ERR_FORMAT, "byte 11: a port" },
		{ "user@example.org", CG_ERR_FORMAT, "byte 4: userinfo" },
		{ "example.org/ns", CG_ERR_FORMAT, "byte 11: byte outside" },
		{ "spiffe://example.org", CG_ERR_FORMAT, "written without \"spiffe://\"" },
		{ "SPIFFE://example.org", CG_ERR_FORMAT, "written without \"spiffe://\"" },
		{ "spiffe:example.org", CG_ERR_FORMAT, "byte 6: a port" },
		{ "ex%41mple.org", CG_ERR_FORMAT, "byte 2: percent" },
		{ "*.example.org", CG_ERR_FORMAT, "byte 0: byte outside" },
	};
	char err[256], long_td[SPIFFE_TD_MAX + 2];
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		memset(err, 0, sizeof(err));
		if (spiffe_trust_domain_check(t[i].s, strlen(t[i].s), err, sizeof(err)) !=
		    t[i].code)
			fail_msg("\"%s\": got \"%s\", want %d", t[i].s, err, t[i].code);
		if (t[i].want != NULL && strstr(err, t[i].want) == NULL)
			fail_msg("\"%s\": reason \"%s\" lacks \"%s\"", t[i].s, err, t[i].want);
	}
	/* The length counts, not a terminator; and the bounds are inclusive. */
	assert_int_equal(spiffe_trust_domain_check("example.org/x", 11, err, sizeof(err)), 0);
	assert_int_equal(spiffe_trust_domain_check(NULL, 0, err, sizeof(err)), CG_ERR_FORMAT);
	memset(long_td, 'a', sizeof(long_td));
	assert_int_equal(spiffe_trust_domain_check(long_td, SPIFFE_TD_MAX, err, sizeof(err)), 0);
	assert_int_equal(spiffe_trust_domain_check(long_td, SPIFFE_TD_MAX + 1, err,
	    sizeof(err)), CG_ERR_LIMIT);
	(void)state;
}

static void
test_pattern_check(void **state)
{
	static const struct {
		const char *s;
		int code;
		const char *want;
	} t[] = {
		{ "spiffe://example.org", 0, NULL },
		{ "spiffe://example.org/*", 0, NULL },
		{ "spiffe://example.org/ns/prod/sa/api", 0, NULL },
		{ "spiffe://example.org/ns/*/sa/?*", 0, NULL },
		{ "spiffe://example.org/a*b/c?", 0, NULL },
		{ "spiffe://example.org/\\a", 0, NULL },
		{ "spiffe://example.org/\\*literal", CG_ERR_FORMAT, "byte 22: byte outside" },
		{ "spiffe://example.org/.*", 0, NULL },
		{ "spiffe://example.org/...", 0, NULL },
		{ "spiffe://example.org/*/", CG_ERR_FORMAT, "ends with '/'" },
		{ "spiffe://example.org/", CG_ERR_FORMAT, "ends with '/'" },
		{ "spiffe://example.org//x", CG_ERR_FORMAT, "byte 21: empty segment" },
		{ "spiffe://example.org/a/./b", CG_ERR_FORMAT, "byte 23: \".\" and \"..\"" },
		{ "spiffe://example.org/..", CG_ERR_FORMAT, "byte 21: \".\" and \"..\"" },
		{ "spiffe://example.org/a/\\.", CG_ERR_FORMAT, "byte 23: \".\" and \"..\"" },
		{ "spiffe://example.org/a\\", CG_ERR_FORMAT, "ends with '\\'" },
		{ "spiffe://example.org/a\\/b", CG_ERR_FORMAT, "byte 23: byte outside" },
		{ "spiffe://example.org/a b", CG_ERR_FORMAT, "path pattern, byte 22: byte outside" },
		{ "spiffe://example.org/a?x=1", CG_ERR_FORMAT, "path pattern, byte 24: byte outside" },
		{ "spiffe://example.org/a%2F", CG_ERR_FORMAT, "byte 22: percent" },
		{ "spiffe://Example.org/*", CG_ERR_FORMAT, "trust domain, byte 9: uppercase" },
		{ "spiffe://*.example.org/x", CG_ERR_FORMAT,
		  "byte 9: the trust domain is matched exactly" },
		{ "spiffe://example.*", CG_ERR_FORMAT, "byte 17: the trust domain is matched" },
		{ "spiffe://", CG_ERR_FORMAT, "trust domain is empty" },
		{ "spiffe:///x", CG_ERR_FORMAT, "trust domain is empty" },
		{ "SPIFFE://example.org/x", CG_ERR_FORMAT, "must be lowercase" },
		{ "example.org/x", CG_ERR_FORMAT, "does not start with \"spiffe://\"" },
		{ "uri:spiffe://example.org/x", CG_ERR_FORMAT, "does not start with" },
		{ "spiffe://example.org:8443/x", CG_ERR_FORMAT, "byte 20: a port" },
		{ "spiffe://example.org#x", CG_ERR_FORMAT, "a fragment" },
	};
	char err[256], *big;
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		memset(err, 0, sizeof(err));
		if (spiffe_pattern_check(t[i].s, err, sizeof(err)) != t[i].code)
			fail_msg("\"%s\": got \"%s\", want %d", t[i].s, err, t[i].code);
		if (t[i].want != NULL && strstr(err, t[i].want) == NULL)
			fail_msg("\"%s\": reason \"%s\" lacks \"%s\"", t[i].s, err, t[i].want);
	}
	assert_int_equal(spiffe_pattern_check(NULL, err, sizeof(err)), CG_ERR_FORMAT);
	/* At most SPIFFE_ID_MAX bytes, as an ID. */
	big = malloc(SPIFFE_ID_MAX + 2);
	assert_non_null(big);
	memcpy(big, "spiffe://t/", 11);
	memset(big + 11, 'a', SPIFFE_ID_MAX - 11);
	big[SPIFFE_ID_MAX] = '\0';
	assert_int_equal(spiffe_pattern_check(big, err, sizeof(err)), 0);
	big[SPIFFE_ID_MAX] = '*';
	big[SPIFFE_ID_MAX + 1] = '\0';
	assert_int_equal(spiffe_pattern_check(big, err, sizeof(err)), CG_ERR_LIMIT);
	free(big);
	(void)state;
}

/* Every ID that parses is a pattern the configuration accepts, and
 * matches itself. */
static void
test_pattern_of_id(void **state)
{
	static const char *const ids[] = {
		"spiffe://example.org", "spiffe://example.org/a", "spiffe://td/Az09.-_/...",
		"spiffe://1.2.3.4/x/.a/a./..b",
	};
	struct spiffe_id id;
	char err[256];
	size_t i;

	for (i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		assert_int_equal(spiffe_id_parse(ids[i], strlen(ids[i]), &id, err,
		    sizeof(err)), 0);
		assert_int_equal(spiffe_pattern_check(ids[i], err, sizeof(err)), 0);
		assert_int_equal(spiffe_trust_domain_check(id.trust_domain,
		    strlen(id.trust_domain), err, sizeof(err)), 0);
		assert_true(spiffe_id_match(&id, ids[i]));
	}
	(void)state;
}

/* ------------------------------------------------------------------ */

#define NOW	((int64_t)1800000000)	/* 2027-01-15, any fixed instant */
#define HOUR	((int64_t)3600)

static EVP_PKEY *key;

static int
setup(void **state)
{
	key = EVP_EC_gen("P-256");
	(void)state;
	return key == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	EVP_PKEY_free(key);
	(void)state;
	return 0;
}

static void
add_ext(X509 *x, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;

	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	assert_non_null(ext);
	assert_int_equal(X509_add_ext(x, ext, -1), 1);
	X509_EXTENSION_free(ext);
}

/*
 * A self-signed certificate valid from nb to na (Unix seconds), with the
 * given subjectAltName, basicConstraints and keyUsage values in
 * OpenSSL's configuration syntax (NULL: no such extension).
 */
static X509 *
make_cert(const char *san, const char *bc, const char *ku, int64_t nb, int64_t na)
{
	X509 *x = X509_new();
	X509_NAME *name;

	assert_non_null(x);
	assert_int_equal(X509_set_version(x, X509_VERSION_3), 1);
	assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), 1), 1);
	name = X509_get_subject_name(x);
	assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	    (const unsigned char *)"svid", -1, -1, 0), 1);
	assert_int_equal(X509_set_issuer_name(x, name), 1);
	assert_non_null(ASN1_TIME_set(X509_getm_notBefore(x), (time_t)nb));
	assert_non_null(ASN1_TIME_set(X509_getm_notAfter(x), (time_t)na));
	assert_int_equal(X509_set_pubkey(x, key), 1);
	if (san != NULL)
		add_ext(x, NID_subject_alt_name, san);
	if (bc != NULL)
		add_ext(x, NID_basic_constraints, bc);
	if (ku != NULL)
		add_ext(x, NID_key_usage, ku);
	assert_true(X509_sign(x, key, EVP_sha256()) > 0);
	return x;
}

#define LEAF_SAN	"URI:spiffe://example.org/ns/prod/sa/api"
#define LEAF_KU		"critical,digitalSignature"

struct svid_case {
	const char *name;
	const char *san, *bc, *ku;
	int64_t nb, na;		/* relative to NOW */
	int64_t now;		/* relative to NOW */
	int64_t max_lifetime;
	int code;
	const char *want;	/* fragment of the reason, or the path */
};

static void
test_svid(void **state)
{
	static const struct svid_case t[] = {
		{ "valid leaf", LEAF_SAN, "critical,CA:FALSE", LEAF_KU,
		    -HOUR, HOUR, 0, 0, 0, "/ns/prod/sa/api" },
		{ "no basicConstraints", LEAF_SAN, NULL, LEAF_KU,
		    -HOUR, HOUR, 0, 0, 0, "/ns/prod/sa/api" },
		{ "no keyUsage", LEAF_SAN, NULL, NULL,
		    -HOUR, HOUR, 0, 0, CG_ERR_VERIFY, "no keyUsage" },
		{ "DNS names beside the URI", "DNS:api.example.org,URI:spiffe://example.org/w,DNS:b",
		    NULL, LEAF_KU, -HOUR, HOUR, 0, 0, 0, "/w" },
		{ "trust domain ID", "URI:spiffe://example.org", NULL, LEAF_KU,
		    -HOUR, HOUR, 0, 0, CG_ERR_VERIFY, "names a trust domain, not a workload" },
		{ "other usages beside digitalSignature", LEAF_SAN, NULL,
		    "digitalSignature,keyEncipherment,keyAgreement",
		    -HOUR, HOUR, 0, 0, 0, "/ns/prod/sa/api" },

		{ "CA leaf", LEAF_SAN, "critical,CA:TRUE", LEAF_KU,
		    -HOUR, HOUR, 0, 0, CG_ERR_VERIFY, "is a CA" },
		{ "CA leaf without key usage", LEAF_SAN, "CA:TRUE,pathlen:0", NULL,
		    -HOUR, HOUR, 0, 0, CG_ERR_VERIFY, "is a CA" },
		{ "two URI SANs", "URI:spiffe://example.org/a,URI:spiffe://example.org/b",
		    NULL, LEAF_KU, -HOUR, HOUR, 0, 0, CG_ERR_VERIFY, "2 URI subjectAltNames" },
		{ "SPIFFE and another URI", "URI:spiffe://example.org/a,URI:https://example.org/",
		    NULL, LEAF_KU, -HOUR, HOUR, 0, 0, CG_ERR_VERIFY, "2 URI subjectAltNames" },
		{ "no URI SAN", "DNS:api.example.org", NULL, LEAF_KU,
		    -HOUR, HOUR, 0, 0, CG_ERR_VERIFY, "0 URI subjectAltNames" },
		{ "no SAN at all", NULL, NULL, LEAF_KU,
		    -HOUR, HOUR, 0, 0, CG_ERR_VERIFY, "0 URI subjectAltNames" },
		{ "non-SPIFFE URI", "URI:https://example.org/a", NULL, LEAF_KU,
		    -HOUR, HOUR, 0, 0, CG_ERR_VERIFY, "URI subjectAltName: SPIFFE ID does not start" },
		{ "malformed SPIFFE URI", "URI:spiffe://example.org/a/", NULL, LEAF_KU,
		    -HOUR, HOUR, 0, 0, CG_ERR_VERIFY, "URI subjectAltName: SPIFFE ID path ends" },
		{ "keyCertSign usage", LEAF_SAN, NULL, "digitalSignature,keyCertSign",
		    -HOUR, HOUR, 0, 0, CG_ERR_VERIFY, "keyCertSign or cRLSign" },
		{ "cRLSign usage", LEAF_SAN, NULL, "digitalSignature,cRLSign",
		    -HOUR, HOUR, 0, 0, CG_ERR_VERIFY, "keyCertSign or cRLSign" },
		{ "no digitalSignature", LEAF_SAN, NULL, "keyEncipherment",
		    -HOUR, HOUR, 0, 0, CG_ERR_VERIFY, "lacks digitalSignature" },

		/* Validity: both ends inclusive. */
		{ "expired", LEAF_SAN, NULL, LEAF_KU,
		    -2 * HOUR, -HOUR, 0, 0, CG_ERR_EXPIRED, "expired (3600 s ago)" },
		{ "expired a second ago", LEAF_SAN, NULL, LEAF_KU,
		    -HOUR, 0, 1, 0, CG_ERR_EXPIRED, "expired (1 s ago)" },
		{ "last valid second", LEAF_SAN, NULL, LEAF_KU,
		    -HOUR, 0, 0, 0, 0, "/ns/prod/sa/api" },
		{ "not yet valid", LEAF_SAN, NULL, LEAF_KU,
		    HOUR, 2 * HOUR, 0, 0, CG_ERR_EXPIRED, "not yet valid (3600 s early)" },
		{ "one second early", LEAF_SAN, NULL, LEAF_KU,
		    0, HOUR, -1, 0, CG_ERR_EXPIRED, "not yet valid (1 s early)" },
		{ "first valid second", LEAF_SAN, NULL, LEAF_KU,
		    0, HOUR, 0, 0, 0, "/ns/prod/sa/api" },

		/* Lifetime: notAfter - notBefore against the limit. */
		{ "too long-lived", LEAF_SAN, NULL, LEAF_KU,
		    -HOUR, 24 * HOUR, 0, 24 * HOUR, CG_ERR_LIMIT,
		    "lifetime 90000 s exceeds the 86400 s allowed" },
		{ "one second too long", LEAF_SAN, NULL, LEAF_KU,
		    -HOUR, HOUR + 1, 0, 2 * HOUR, CG_ERR_LIMIT, "lifetime 7201 s" },
		{ "lifetime at the limit", LEAF_SAN, NULL, LEAF_KU,
		    -HOUR, HOUR, 0, 2 * HOUR, 0, "/ns/prod/sa/api" },
		{ "no lifetime limit", LEAF_SAN, NULL, LEAF_KU,
		    -365 * 24 * HOUR, 365 * 24 * HOUR, 0, 0, 0, "/ns/prod/sa/api" },
	};
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		X509 *x = make_cert(t[i].san, t[i].bc, t[i].ku, NOW + t[i].nb, NOW + t[i].na);
		struct spiffe_id id;
		char err[256];
		int r;

		memset(&id, 0xa5, sizeof(id));
		memset(err, 0, sizeof(err));
		r = spiffe_svid_check(x, NOW + t[i].now, t[i].max_lifetime, &id,
		    err, sizeof(err));
		X509_free(x);
		if (r != t[i].code)
			fail_msg("%s: got %d (%s), want %d", t[i].name, r, err, t[i].code);
		if (r == 0) {
			assert_string_equal(id.trust_domain, "example.org");
			assert_string_equal(id.path, t[i].want);
			continue;
		}
		assert_string_equal(id.trust_domain, "");
		assert_string_equal(id.path, "");
		if (strstr(err, t[i].want) == NULL)
			fail_msg("%s: reason \"%s\" lacks \"%s\"", t[i].name, err, t[i].want);
	}
	(void)state;
}

/* Two subjectAltName extensions: which one counts is ambiguous, so the
 * certificate is refused whatever each holds. */
static void
test_svid_repeated_ext(void **state)
{
	X509 *x = make_cert(LEAF_SAN, NULL, LEAF_KU, NOW - HOUR, NOW + HOUR);
	struct spiffe_id id;
	char err[256];

	add_ext(x, NID_subject_alt_name, "DNS:b.example.org");
	assert_true(X509_sign(x, key, EVP_sha256()) > 0);
	assert_int_equal(spiffe_svid_check(x, NOW, 0, &id, err, sizeof(err)), CG_ERR_VERIFY);
	assert_non_null(strstr(err, "malformed or repeated extensions"));
	X509_free(x);

	memset(&id, 0xa5, sizeof(id));
	assert_int_equal(spiffe_svid_check(NULL, NOW, 0, &id, err, sizeof(err)),
	    CG_ERR_FORMAT);
	assert_string_equal(id.trust_domain, "");
	(void)state;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_valid),
		cmocka_unit_test(test_parse_refused),
		cmocka_unit_test(test_parse_len),
		cmocka_unit_test(test_parse_prefixes),
		cmocka_unit_test(test_parse_limits),
		cmocka_unit_test(test_match),
		cmocka_unit_test(test_trust_domain_check),
		cmocka_unit_test(test_pattern_check),
		cmocka_unit_test(test_pattern_of_id),
		cmocka_unit_test(test_svid),
		cmocka_unit_test(test_svid_repeated_ext),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
