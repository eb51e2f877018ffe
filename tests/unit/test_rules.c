/*
 * test_rules.c: policy_decide() over a table of routes, identities and
 * requests, over a table of verified client certificates (subject and
 * SAN conditions), over a table of verified SPIFFE IDs (spiffe_id and
 * trust_domain conditions) and over a table of request attributes of other
 * protocols; attribute names resolved to ids; claim lookup by dotted path;
 * identities built from claims; algorithm names.
 */
#include "tests/unit/unit.h"

#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"
#include "policy/spiffe.h"

/* ------------------------------------------------------------------ */
/* Compact, static descriptions of rules, turned into heap routes.     */
/* ------------------------------------------------------------------ */
struct tcond {
	enum policy_cond_kind kind;
	const char *name;	/* the claim's path, or the attribute's name */
	const char *values[4];	/* NULL-terminated; values[0] NULL ends the list */
};

struct trule {
	const char *name;	/* NULL ends the list */
	struct tcond conds[4];
};

#define ISS(...)	{ POLICY_COND_ISSUER, NULL, { __VA_ARGS__, NULL } }
#define AUD(...)	{ POLICY_COND_AUDIENCE, NULL, { __VA_ARGS__, NULL } }
#define CLAIM(c, ...)	{ POLICY_COND_CLAIM, c, { __VA_ARGS__, NULL } }
#define ATTR(a, ...)	{ POLICY_COND_ATTR, a, { __VA_ARGS__, NULL } }
#define METHOD(...)	ATTR("method", __VA_ARGS__)
#define PATH(...)	ATTR("path", __VA_ARGS__)
#define SUBJECT(...)	{ POLICY_COND_CLIENT_SUBJECT, NULL, { __VA_ARGS__, NULL } }
#define SAN(...)	{ POLICY_COND_CLIENT_SAN, NULL, { __VA_ARGS__, NULL } }
#define SPIFFE(...)	{ POLICY_COND_SPIFFE_ID, NULL, { __VA_ARGS__, NULL } }
#define TD(...)		{ POLICY_COND_TRUST_DOMAIN, NULL, { __VA_ARGS__, NULL } }
#define RULES(...)	((const struct trule[]){ __VA_ARGS__, { NULL, { { 0 } } } })
#define NONE		NULL

/* The everyday route: admins anywhere, readers on /api, no contractors. */
#define BASIC_DENY RULES( \
	{ "no-contractors", { CLAIM("org.type", "contractor") } })
#define BASIC_ALLOW RULES( \
	{ "admins", { CLAIM("groups", "admin") } }, \
	{ "readers", { METHOD("GET", "HEAD"), PATH("/api/*") } })

#define ALICE_ADMIN "{\"iss\":\"https://idp.example.com\",\"sub\":\"alice\"," \
	"\"groups\":[\"dev\",\"admin\"],\"org\":{\"type\":\"staff\"}}"
#define BOB_DEV "{\"iss\":\"https://idp.example.com\",\"sub\":\"bob\"," \
	"\"groups\":[\"dev\"],\"org\":{\"type\":\"staff\"}}"
#define CAROL_CONTRACTOR "{\"iss\":\"https://idp.example.com\",\"sub\":\"carol\"," \
	"\"groups\":[\"admin\"],\"org\":{\"type\":\"contractor\"}}"

#define ALLOW POLICY_ALLOW
#define DENY POLICY_DENY
#define WOULD POLICY_WOULD_DENY
#define R_ALLOWED "allowed by rule"
#define R_DENIED "denied by rule"
#define R_NOMATCH "no rule matched"
#define R_EXPIRED "route expired"
#define NOW 1800000000

struct rcase {
	const char *what;
	const struct trule *deny;
	const struct trule *allow;
	enum policy_mode mode;
	int64_t expires;
	const char *claims;	/* NULL: no identity */
	const char *method;	/* NULL: not an HTTP request */
	const char *path;
	int64_t now;
	enum policy_result result;
	const char *rule;
	const char *reason;
};

static const struct rcase rcases[] = {
	/* Order and outcome. */
	{ "allow by claim", BASIC_DENY, BASIC_ALLOW, POLICY_ENFORCE, 0,
	  ALICE_ADMIN, "POST", "/admin", NOW, ALLOW, "admins", R_ALLOWED },
	{ "deny wins over allow", BASIC_DENY, BASIC_ALLOW, POLICY_ENFORCE, 0,
	  CAROL_CONTRACTOR, "GET", "/api/x", NOW, DENY, "no-contractors", R_DENIED },
	{ "allow by method and path", BASIC_DENY, BASIC_ALLOW, POLICY_ENFORCE, 0,
	  BOB_DEV, "HEAD", "/api/v1/users", NOW, ALLOW, "readers", R_ALLOWED },
	{ "method not listed", BASIC_DENY, BASIC_ALLOW, POLICY_ENFORCE, 0,
	  BOB_DEV, "POST", "/api/v1/users", NOW, DENY, NULL, R_NOMATCH },
	{ "path outside glob", BASIC_DENY, BASIC_ALLOW, POLICY_ENFORCE, 0,
	  BOB_DEV, "GET", "/apix", NOW, DENY, NULL, R_NOMATCH },
	{ "method is case-sensitive", BASIC_DENY, BASIC_ALLOW, POLICY_ENFORCE, 0,
	  BOB_DEV, "get", "/api/x", NOW, DENY, NULL, R_NOMATCH },
	{ "no method, no path", BASIC_DENY, BASIC_ALLOW, POLICY_ENFORCE, 0,
	  BOB_DEV, NULL, NULL, NOW, DENY, NULL, R_NOMATCH },
	{ "no identity: claim rules fail", BASIC_DENY, BASIC_ALLOW, POLICY_ENFORCE, 0,
	  NULL, "POST", "/admin", NOW, DENY, NULL, R_NOMATCH },
	{ "no identity: other rules still apply", BASIC_DENY, BASIC_ALLOW,
	  POLICY_ENFORCE, 0, NULL, "GET", "/api/x", NOW, ALLOW, "readers", R_ALLOWED },
	{ "no rules at all", NONE, NONE, POLICY_ENFORCE, 0,
	  ALICE_ADMIN, "GET", "/", NOW, DENY, NULL, R_NOMATCH },
	{ "first deny wins", RULES({ "d1", { PATH("/x*") } }, { "d2", { PATH("*") } }),
	  RULES({ "all", { { 0 } } }), POLICY_ENFORCE, 0,
	  BOB_DEV, "GET", "/xyz", NOW, DENY, "d1", R_DENIED },
	{ "second deny when first fails", RULES({ "d1", { PATH("/x*") } }, { "d2", { PATH("*") } }),
	  RULES({ "all", { { 0 } } }), POLICY_ENFORCE, 0,
	  BOB_DEV, "GET", "/abc", NOW, DENY, "d2", R_DENIED },
	{ "first allow wins", NONE,
	  RULES({ "a1", { METHOD("GET") } }, { "a2", { { 0 } } }), POLICY_ENFORCE, 0,
	  BOB_DEV, "GET", "/", NOW, ALLOW, "a1", R_ALLOWED },
	{ "empty rule matches all", NONE, RULES({ "everyone", { { 0 } } }),
	  POLICY_ENFORCE, 0, NULL, NULL, NULL, NOW, ALLOW, "everyone", R_ALLOWED },
	{ "empty deny rule denies all", RULES({ "closed", { { 0 } } }), BASIC_ALLOW,
	  POLICY_ENFORCE, 0, ALICE_ADMIN, "GET", "/api/x", NOW, DENY, "closed", R_DENIED },
	{ "every condition must hold", NONE,
	  RULES({ "alice-admin", { CLAIM("sub", "alice"), PATH("/admin/*") } }),
	  POLICY_ENFORCE, 0, ALICE_ADMIN, "GET", "/user/1", NOW, DENY, NULL, R_NOMATCH },
	{ "every condition holds", NONE,
	  RULES({ "alice-admin", { CLAIM("sub", "alice"), PATH("/admin/*") } }),
	  POLICY_ENFORCE, 0, ALICE_ADMIN, "GET", "/admin/1", NOW, ALLOW, "alice-admin", R_ALLOWED },
	{ "one of several values", NONE,
	  RULES({ "writers", { METHOD("PUT", "POST", "PATCH") } }), POLICY_ENFORCE, 0,
	  BOB_DEV, "PATCH", "/", NOW, ALLOW, "writers", R_ALLOWED },
	{ "method glob", NONE, RULES({ "p", { METHOD("P*") } }), POLICY_ENFORCE, 0,
	  BOB_DEV, "PUT", "/", NOW, ALLOW, "p", R_ALLOWED },
	{ "escaped glob is literal", NONE, RULES({ "lit", { PATH("/files/\\*") } }),
	  POLICY_ENFORCE, 0, BOB_DEV, "GET", "/files/a", NOW, DENY, NULL, R_NOMATCH },
	{ "escaped glob matches itself", NONE, RULES({ "lit", { PATH("/files/\\*") } }),
	  POLICY_ENFORCE, 0, BOB_DEV, "GET", "/files/*", NOW, ALLOW, "lit", R_ALLOWED },

	/* Dry-run. */
	{ "dry-run deny", BASIC_DENY, BASIC_ALLOW, POLICY_DRY_RUN, 0,
	  CAROL_CONTRACTOR, "GET", "/api/x", NOW, WOULD, "no-contractors", R_DENIED },
	{ "dry-run no match", BASIC_DENY, BASIC_ALLOW, POLICY_DRY_RUN, 0,
	  BOB_DEV, "POST", "/", NOW, WOULD, NULL, R_NOMATCH },
	{ "dry-run allow", BASIC_DENY, BASIC_ALLOW, POLICY_DRY_RUN, 0,
	  ALICE_ADMIN, "POST", "/", NOW, ALLOW, "admins", R_ALLOWED },

	/* Expiry: at or after, every mode, before any rule. */
	{ "expired route", BASIC_DENY, BASIC_ALLOW, POLICY_ENFORCE, NOW,
	  ALICE_ADMIN, "GET", "/", NOW, DENY, NULL, R_EXPIRED },
	{ "expired route in dry-run", BASIC_DENY, BASIC_ALLOW, POLICY_DRY_RUN, NOW,
	  ALICE_ADMIN, "GET", "/", NOW + 1, DENY, NULL, R_EXPIRED },
	{ "expired route over a deny rule", BASIC_DENY, BASIC_ALLOW, POLICY_DRY_RUN, NOW,
	  CAROL_CONTRACTOR, "GET", "/", NOW, DENY, NULL, R_EXPIRED },
	{ "one second before expiry", BASIC_DENY, BASIC_ALLOW, POLICY_ENFORCE, NOW,
	  ALICE_ADMIN, "GET", "/", NOW - 1, ALLOW, "admins", R_ALLOWED },
	{ "expires 0 never expires", NONE, RULES({ "all", { { 0 } } }),
	  POLICY_ENFORCE, 0, NULL, NULL, NULL, INT64_MAX, ALLOW, "all", R_ALLOWED },

	/* Issuer: config name or iss, glob. */
	{ "issuer by name", NONE, RULES({ "i", { ISS("corp") } }), POLICY_ENFORCE, 0,
	  BOB_DEV, NULL, NULL, NOW, ALLOW, "i", R_ALLOWED },
	{ "issuer by iss", NONE, RULES({ "i", { ISS("https://idp.example.com") } }),
	  POLICY_ENFORCE, 0, BOB_DEV, NULL, NULL, NOW, ALLOW, "i", R_ALLOWED },
	{ "issuer by glob", NONE, RULES({ "i", { ISS("other", "https://*.example.com") } }),
	  POLICY_ENFORCE, 0, BOB_DEV, NULL, NULL, NOW, ALLOW, "i", R_ALLOWED },
	{ "issuer mismatch", NONE, RULES({ "i", { ISS("other", "https://idp.example.org") } }),
	  POLICY_ENFORCE, 0, BOB_DEV, NULL, NULL, NOW, DENY, NULL, R_NOMATCH },
	{ "issuer without identity", NONE, RULES({ "i", { ISS("*") } }),
	  POLICY_ENFORCE, 0, NULL, NULL, NULL, NOW, DENY, NULL, R_NOMATCH },

	/* Audience: string or array. */
	{ "aud string", NONE, RULES({ "a", { AUD("api://svc") } }), POLICY_ENFORCE, 0,
	  "{\"aud\":\"api://svc\"}", NULL, NULL, NOW, ALLOW, "a", R_ALLOWED },
	{ "aud array member", NONE, RULES({ "a", { AUD("api://svc") } }), POLICY_ENFORCE, 0,
	  "{\"aud\":[\"x\",\"api://svc\"]}", NULL, NULL, NOW, ALLOW, "a", R_ALLOWED },
	{ "aud glob", NONE, RULES({ "a", { AUD("api://*") } }), POLICY_ENFORCE, 0,
	  "{\"aud\":[\"x\",\"api://db\"]}", NULL, NULL, NOW, ALLOW, "a", R_ALLOWED },
	{ "aud not in array", NONE, RULES({ "a", { AUD("api://svc") } }), POLICY_ENFORCE, 0,
	  "{\"aud\":[\"x\",\"api://svc2\"]}", NULL, NULL, NOW, DENY, NULL, R_NOMATCH },
	{ "aud absent", NONE, RULES({ "a", { AUD("*") } }), POLICY_ENFORCE, 0,
	  "{\"sub\":\"x\"}", NULL, NULL, NOW, DENY, NULL, R_NOMATCH },
	{ "aud not a string", NONE, RULES({ "a", { AUD("*") } }), POLICY_ENFORCE, 0,
	  "{\"aud\":[7,{\"a\":1}]}", NULL, NULL, NOW, DENY, NULL, R_NOMATCH },

	/* Claims: nesting, dotted keys, arrays, numbers, booleans. */
	{ "nested claim", NONE, RULES({ "c", { CLAIM("org.team.name", "payments") } }),
	  POLICY_ENFORCE, 0, "{\"org\":{\"team\":{\"name\":\"payments\"}}}",
	  NULL, NULL, NOW, ALLOW, "c", R_ALLOWED },
	{ "nested claim mismatch", NONE, RULES({ "c", { CLAIM("org.team.name", "payments") } }),
	  POLICY_ENFORCE, 0, "{\"org\":{\"team\":{\"name\":\"billing\"}}}",
	  NULL, NULL, NOW, DENY, NULL, R_NOMATCH },
	{ "URL claim key with dots", NONE,
	  RULES({ "c", { CLAIM("https://example.com/groups", "ops") } }), POLICY_ENFORCE, 0,
	  "{\"https://example.com/groups\":[\"ops\"]}", NULL, NULL, NOW, ALLOW, "c", R_ALLOWED },
	{ "dotted key inside object", NONE, RULES({ "c", { CLAIM("ext.k8s.io/ns", "prod") } }),
	  POLICY_ENFORCE, 0, "{\"ext\":{\"k8s.io/ns\":\"prod\"}}", NULL, NULL, NOW,
	  ALLOW, "c", R_ALLOWED },
	{ "array membership", NONE, RULES({ "c", { CLAIM("groups", "ops", "sre") } }),
	  POLICY_ENFORCE, 0, "{\"groups\":[\"dev\",\"sre\"]}", NULL, NULL, NOW,
	  ALLOW, "c", R_ALLOWED },
	{ "array without member", NONE, RULES({ "c", { CLAIM("groups", "ops", "sre") } }),
	  POLICY_ENFORCE, 0, "{\"groups\":[\"dev\",\"qa\"]}", NULL, NULL, NOW,
	  DENY, NULL, R_NOMATCH },
	{ "empty array", NONE, RULES({ "c", { CLAIM("groups", "*") } }),
	  POLICY_ENFORCE, 0, "{\"groups\":[]}", NULL, NULL, NOW, DENY, NULL, R_NOMATCH },
	{ "nested array is not flattened", NONE, RULES({ "c", { CLAIM("groups", "ops") } }),
	  POLICY_ENFORCE, 0, "{\"groups\":[[\"ops\"]]}", NULL, NULL, NOW,
	  DENY, NULL, R_NOMATCH },
	{ "integer claim", NONE, RULES({ "c", { CLAIM("level", "42") } }),
	  POLICY_ENFORCE, 0, "{\"level\":42}", NULL, NULL, NOW, ALLOW, "c", R_ALLOWED },
	{ "integer claim glob", NONE, RULES({ "c", { CLAIM("level", "4?") } }),
	  POLICY_ENFORCE, 0, "{\"level\":42}", NULL, NULL, NOW, ALLOW, "c", R_ALLOWED },
	{ "negative integer", NONE, RULES({ "c", { CLAIM("level", "-1") } }),
	  POLICY_ENFORCE, 0, "{\"level\":-1}", NULL, NULL, NOW, ALLOW, "c", R_ALLOWED },
	{ "integer is not real text", NONE, RULES({ "c", { CLAIM("level", "42.0") } }),
	  POLICY_ENFORCE, 0, "{\"level\":42}", NULL, NULL, NOW, DENY, NULL, R_NOMATCH },
	{ "string number is a string", NONE, RULES({ "c", { CLAIM("level", "42") } }),
	  POLICY_ENFORCE, 0, "{\"level\":\"42\"}", NULL, NULL, NOW, ALLOW, "c", R_ALLOWED },
	{ "real claim", NONE, RULES({ "c", { CLAIM("score", "1.5") } }),
	  POLICY_ENFORCE, 0, "{\"score\":1.5}", NULL, NULL, NOW, ALLOW, "c", R_ALLOWED },
	{ "integral real claim", NONE, RULES({ "c", { CLAIM("score", "2.0") } }),
	  POLICY_ENFORCE, 0, "{\"score\":2.0}", NULL, NULL, NOW, ALLOW, "c", R_ALLOWED },
	{ "real shortest form", NONE, RULES({ "c", { CLAIM("score", "0.1") } }),
	  POLICY_ENFORCE, 0, "{\"score\":0.1}", NULL, NULL, NOW, ALLOW, "c", R_ALLOWED },
	{ "number array", NONE, RULES({ "c", { CLAIM("ids", "2") } }),
	  POLICY_ENFORCE, 0, "{\"ids\":[1,2,3]}", NULL, NULL, NOW, ALLOW, "c", R_ALLOWED },
	{ "true claim", NONE, RULES({ "c", { CLAIM("mfa", "true") } }),
	  POLICY_ENFORCE, 0, "{\"mfa\":true}", NULL, NULL, NOW, ALLOW, "c", R_ALLOWED },
	{ "false claim", NONE, RULES({ "c", { CLAIM("mfa", "true") } }),
	  POLICY_ENFORCE, 0, "{\"mfa\":false}", NULL, NULL, NOW, DENY, NULL, R_NOMATCH },
	{ "false claim matches false", NONE, RULES({ "c", { CLAIM("mfa", "false") } }),
	  POLICY_ENFORCE, 0, "{\"mfa\":false}", NULL, NULL, NOW, ALLOW, "c", R_ALLOWED },
	{ "null claim never matches", NONE, RULES({ "c", { CLAIM("x", "null", "*") } }),
	  POLICY_ENFORCE, 0, "{\"x\":null}", NULL, NULL, NOW, DENY, NULL, R_NOMATCH },
	{ "object claim never matches", NONE, RULES({ "c", { CLAIM("org", "*") } }),
	  POLICY_ENFORCE, 0, "{\"org\":{\"a\":1}}", NULL, NULL, NOW, DENY, NULL, R_NOMATCH },
	{ "missing claim", NONE, RULES({ "c", { CLAIM("team", "*") } }),
	  POLICY_ENFORCE, 0, "{\"sub\":\"x\"}", NULL, NULL, NOW, DENY, NULL, R_NOMATCH },
	{ "missing nested claim", NONE, RULES({ "c", { CLAIM("org.team", "*") } }),
	  POLICY_ENFORCE, 0, "{\"org\":\"flat\"}", NULL, NULL, NOW, DENY, NULL, R_NOMATCH },
	{ "empty string claim", NONE, RULES({ "c", { CLAIM("team", "") } }),
	  POLICY_ENFORCE, 0, "{\"team\":\"\"}", NULL, NULL, NOW, ALLOW, "c", R_ALLOWED },
	{ "missing claim in deny rule", RULES({ "d", { CLAIM("banned", "true") } }),
	  RULES({ "all", { { 0 } } }), POLICY_ENFORCE, 0, "{\"sub\":\"x\"}",
	  NULL, NULL, NOW, ALLOW, "all", R_ALLOWED },
};

/* ------------------------------------------------------------------ */
/* Client certificate conditions: subject and SANs of a verified peer. */
/* ------------------------------------------------------------------ */
struct tpeer {
	const char *subject;
	const char *sans[4];	/* NULL-terminated */
};

#define SPIFFE_BATCH "uri:spiffe://example.org/ns/prod/sa/batch"
static const struct tpeer peer_batch = { "CN=batch,O=Example",
	{ "dns:batch.example.org", SPIFFE_BATCH, "email:ops@example.org", NULL } };
static const struct tpeer peer_ip = { "CN=10.0.0.7", { "ip:10.0.0.7", "ip:fd00::7", NULL } };
static const struct tpeer peer_no_sans = { "CN=batch,O=Example", { NULL } };
static const struct tpeer peer_no_subject = { NULL, { SPIFFE_BATCH, NULL } };
static const struct tpeer peer_empty_subject = { "", { NULL } };
static const struct tpeer peer_evil_domain = { "CN=batch,O=Example",
	{ "uri:spiffe://example.org.evil/ns/prod/sa/batch", NULL } };
static const struct tpeer peer_other_domain = { "CN=batch,O=Example",
	{ "uri:spiffe://other.org/ns/prod/sa/batch", NULL } };

#define SPIFFE_ALLOW RULES({ "spiffe", { SAN("uri:spiffe://example.org/*") } })

struct pcase {
	const char *what;
	const struct trule *deny;
	const struct trule *allow;
	enum policy_mode mode;
	const struct tpeer *peer;	/* NULL: no verified client certificate */
	const char *claims;		/* NULL: no identity */
	enum policy_result result;
	const char *rule;
	const char *reason;
};

static const struct pcase pcases[] = {
	/* Subject: RFC 2253 text, whole-value glob, bytes as they are. */
	{ "subject exact", NONE, RULES({ "s", { SUBJECT("CN=batch,O=Example") } }),
	  POLICY_ENFORCE, &peer_batch, NULL, ALLOW, "s", R_ALLOWED },
	{ "subject glob", NONE, RULES({ "s", { SUBJECT("CN=batch,*") } }),
	  POLICY_ENFORCE, &peer_batch, NULL, ALLOW, "s", R_ALLOWED },
	{ "subject is matched whole", NONE, RULES({ "s", { SUBJECT("CN=batch") } }),
	  POLICY_ENFORCE, &peer_batch, NULL, DENY, NULL, R_NOMATCH },
	{ "subject is case-sensitive", NONE, RULES({ "s", { SUBJECT("cn=batch,o=example") } }),
	  POLICY_ENFORCE, &peer_batch, NULL, DENY, NULL, R_NOMATCH },
	{ "subject in X.500 order does not match", NONE,
	  RULES({ "s", { SUBJECT("O=Example,CN=batch") } }),
	  POLICY_ENFORCE, &peer_batch, NULL, DENY, NULL, R_NOMATCH },
	{ "subject one of several", NONE,
	  RULES({ "s", { SUBJECT("CN=other,O=Example", "CN=batch,O=Example") } }),
	  POLICY_ENFORCE, &peer_batch, NULL, ALLOW, "s", R_ALLOWED },
	{ "subject without a peer", NONE, RULES({ "s", { SUBJECT("*") } }),
	  POLICY_ENFORCE, NULL, ALICE_ADMIN, DENY, NULL, R_NOMATCH },
	{ "subject unknown", NONE, RULES({ "s", { SUBJECT("*") } }),
	  POLICY_ENFORCE, &peer_no_subject, NULL, DENY, NULL, R_NOMATCH },
	{ "empty subject matches *", NONE, RULES({ "s", { SUBJECT("*") } }),
	  POLICY_ENFORCE, &peer_empty_subject, NULL, ALLOW, "s", R_ALLOWED },
	{ "empty subject is not CN=*", NONE, RULES({ "s", { SUBJECT("CN=*") } }),
	  POLICY_ENFORCE, &peer_empty_subject, NULL, DENY, NULL, R_NOMATCH },

	/* SANs: type prefix, any SAN, globs across '/'. */
	{ "spiffe trust domain", NONE, SPIFFE_ALLOW, POLICY_ENFORCE, &peer_batch, NULL,
	  ALLOW, "spiffe", R_ALLOWED },
	{ "spiffe exact id", NONE, RULES({ "id", { SAN(SPIFFE_BATCH) } }), POLICY_ENFORCE,
	  &peer_batch, NULL, ALLOW, "id", R_ALLOWED },
	{ "spiffe other trust domain", NONE, SPIFFE_ALLOW, POLICY_ENFORCE, &peer_other_domain,
	  NULL, DENY, NULL, R_NOMATCH },
	{ "spiffe look-alike trust domain", NONE, SPIFFE_ALLOW, POLICY_ENFORCE,
	  &peer_evil_domain, NULL, DENY, NULL, R_NOMATCH },
	{ "glob without a type never matches a value alone", NONE,
	  RULES({ "s", { SAN("spiffe://example.org/*") } }), POLICY_ENFORCE, &peer_batch, NULL,
	  DENY, NULL, R_NOMATCH },
	{ "type must match", NONE, RULES({ "s", { SAN("dns:spiffe://example.org/*") } }),
	  POLICY_ENFORCE, &peer_batch, NULL, DENY, NULL, R_NOMATCH },
	{ "type is case-sensitive", NONE, RULES({ "s", { SAN("URI:spiffe://example.org/*") } }),
	  POLICY_ENFORCE, &peer_batch, NULL, DENY, NULL, R_NOMATCH },
	{ "dns SAN", NONE, RULES({ "s", { SAN("dns:*.example.org") } }), POLICY_ENFORCE,
	  &peer_batch, NULL, ALLOW, "s", R_ALLOWED },
	{ "dns SAN whole value", NONE, RULES({ "s", { SAN("dns:example.org") } }),
	  POLICY_ENFORCE, &peer_batch, NULL, DENY, NULL, R_NOMATCH },
	{ "email SAN", NONE, RULES({ "s", { SAN("email:ops@example.org") } }), POLICY_ENFORCE,
	  &peer_batch, NULL, ALLOW, "s", R_ALLOWED },
	{ "ip SAN", NONE, RULES({ "s", { SAN("ip:10.0.0.7") } }), POLICY_ENFORCE, &peer_ip, NULL,
	  ALLOW, "s", R_ALLOWED },
	{ "ip SAN is not a prefix", NONE, RULES({ "s", { SAN("ip:10.0.0.70") } }),
	  POLICY_ENFORCE, &peer_ip, NULL, DENY, NULL, R_NOMATCH },
	{ "ipv6 SAN, second of two", NONE, RULES({ "s", { SAN("ip:fd00::7") } }),
	  POLICY_ENFORCE, &peer_ip, NULL, ALLOW, "s", R_ALLOWED },
	{ "one of several values", NONE,
	  RULES({ "s", { SAN("uri:spiffe://other.org/*", "email:ops@*") } }), POLICY_ENFORCE,
	  &peer_batch, NULL, ALLOW, "s", R_ALLOWED },
	{ "no SANs", NONE, RULES({ "s", { SAN("*") } }), POLICY_ENFORCE, &peer_no_sans, NULL,
	  DENY, NULL, R_NOMATCH },
	{ "SAN without a peer", NONE, RULES({ "s", { SAN("*") } }), POLICY_ENFORCE, NULL,
	  ALICE_ADMIN, DENY, NULL, R_NOMATCH },
	{ "SAN of a peer without subject", NONE, SPIFFE_ALLOW, POLICY_ENFORCE,
	  &peer_no_subject, NULL, ALLOW, "spiffe", R_ALLOWED },

	/* With other conditions and rules. */
	{ "certificate and claim both hold", NONE,
	  RULES({ "both", { SAN("uri:spiffe://example.org/*"), CLAIM("groups", "admin") } }),
	  POLICY_ENFORCE, &peer_batch, ALICE_ADMIN, ALLOW, "both", R_ALLOWED },
	{ "certificate holds, claim does not", NONE,
	  RULES({ "both", { SAN("uri:spiffe://example.org/*"), CLAIM("groups", "admin") } }),
	  POLICY_ENFORCE, &peer_batch, BOB_DEV, DENY, NULL, R_NOMATCH },
	{ "claim holds, no certificate", NONE,
	  RULES({ "both", { SAN("uri:spiffe://example.org/*"), CLAIM("groups", "admin") } }),
	  POLICY_ENFORCE, NULL, ALICE_ADMIN, DENY, NULL, R_NOMATCH },
	{ "subject deny wins over SAN allow", RULES({ "no-batch", { SUBJECT("CN=batch,*") } }),
	  SPIFFE_ALLOW, POLICY_ENFORCE, &peer_batch, NULL, DENY, "no-batch", R_DENIED },
	{ "SAN deny needs a peer", RULES({ "no-other", { SAN("uri:spiffe://other.org/*") } }),
	  RULES({ "all", { { 0 } } }), POLICY_ENFORCE, NULL, NULL, ALLOW, "all", R_ALLOWED },
	{ "dry-run SAN mismatch", NONE, SPIFFE_ALLOW, POLICY_DRY_RUN, &peer_other_domain,
	  NULL, WOULD, NULL, R_NOMATCH },
	{ "dry-run SAN match", NONE, SPIFFE_ALLOW, POLICY_DRY_RUN, &peer_batch,
	  NULL, ALLOW, "spiffe", R_ALLOWED },
};

/* ------------------------------------------------------------------ */
/* SPIFFE ID conditions: the request's verified SPIFFE ID.             */
/* ------------------------------------------------------------------ */
#define ID_API		"spiffe://prod.example.org/ns/prod/sa/api"
#define ID_BATCH	"spiffe://prod.example.org/ns/prod/sa/batch"
#define ID_STAGING	"spiffe://staging.example.org/ns/prod/sa/api"
#define ID_TD		"spiffe://prod.example.org"

#define PROD_NS RULES({ "prod-ns", { SPIFFE("spiffe://prod.example.org/ns/prod/*") } })

struct scase {
	const char *what;
	const struct trule *deny;
	const struct trule *allow;
	enum policy_mode mode;
	const char *spiffe;	/* the request's SPIFFE ID; NULL: none */
	bool peer_only;		/* the certificate is the whole proof */
	const char *claims;	/* NULL: no identity */
	enum policy_result result;
	const char *rule;
};

static const struct scase scases[] = {
	/* spiffe_id: exact, or a glob on the path; the trust domain is exact. */
	{ "exact ID", NONE, RULES({ "api", { SPIFFE(ID_API) } }), POLICY_ENFORCE, ID_API,
	  false, NULL, ALLOW, "api" },
	{ "exact ID, another workload", NONE, RULES({ "api", { SPIFFE(ID_API) } }),
	  POLICY_ENFORCE, ID_BATCH, false, NULL, DENY, NULL },
	{ "path glob", NONE, PROD_NS, POLICY_ENFORCE, ID_BATCH, false, NULL, ALLOW, "prod-ns" },
	{ "path glob, same path in another trust domain", NONE, PROD_NS, POLICY_ENFORCE,
	  ID_STAGING, false, NULL, DENY, NULL },
	{ "every workload of a trust domain", NONE,
	  RULES({ "all", { SPIFFE("spiffe://prod.example.org/*") } }), POLICY_ENFORCE,
	  ID_BATCH, false, NULL, ALLOW, "all" },
	{ "the trust domain's own ID is no workload", NONE,
	  RULES({ "all", { SPIFFE("spiffe://prod.example.org/*") } }), POLICY_ENFORCE,
	  ID_TD, false, NULL, DENY, NULL },
	{ "a pattern without a path names the trust domain's ID", NONE,
	  RULES({ "td", { SPIFFE(ID_TD) } }), POLICY_ENFORCE, ID_TD, false, NULL, ALLOW, "td" },
	{ "... and no workload", NONE, RULES({ "td", { SPIFFE(ID_TD) } }), POLICY_ENFORCE,
	  ID_API, false, NULL, DENY, NULL },
	{ "a look-alike trust domain", NONE,
	  RULES({ "all", { SPIFFE("spiffe://prod.example.org/*") } }), POLICY_ENFORCE,
	  "spiffe://prod.example.org.evil/ns/prod/sa/api", false, NULL, DENY, NULL },
	{ "a cg_glob pattern is no spiffe_id_match pattern", NONE,
	  RULES({ "glob", { SPIFFE("spiffe://*/ns/prod/sa/api") } }), POLICY_ENFORCE, ID_API,
	  false, NULL, DENY, NULL },
	{ "one of several", NONE,
	  RULES({ "two", { SPIFFE("spiffe://other.org/*", ID_BATCH) } }), POLICY_ENFORCE,
	  ID_BATCH, false, NULL, ALLOW, "two" },
	{ "no SPIFFE ID", NONE, PROD_NS, POLICY_ENFORCE, NULL, false, ALICE_ADMIN, DENY, NULL },

	/* trust_domain: exact, never a glob. */
	{ "trust domain", NONE, RULES({ "prod", { TD("prod.example.org") } }), POLICY_ENFORCE,
	  ID_API, false, NULL, ALLOW, "prod" },
	{ "trust domain of the domain's own ID", NONE,
	  RULES({ "prod", { TD("prod.example.org") } }), POLICY_ENFORCE, ID_TD, false, NULL,
	  ALLOW, "prod" },
	{ "another trust domain", NONE, RULES({ "prod", { TD("prod.example.org") } }),
	  POLICY_ENFORCE, ID_STAGING, false, NULL, DENY, NULL },
	{ "trust domain is no glob", NONE, RULES({ "prod", { TD("*.example.org") } }),
	  POLICY_ENFORCE, ID_API, false, NULL, DENY, NULL },
	{ "trust domain is not a suffix", NONE, RULES({ "prod", { TD("example.org") } }),
	  POLICY_ENFORCE, ID_API, false, NULL, DENY, NULL },
	{ "trust domain one of several", NONE,
	  RULES({ "both", { TD("staging.example.org", "prod.example.org") } }),
	  POLICY_ENFORCE, ID_API, false, NULL, ALLOW, "both" },
	{ "trust domain without a SPIFFE ID", NONE, RULES({ "prod", { TD("prod.example.org") } }),
	  POLICY_ENFORCE, NULL, false, ALICE_ADMIN, DENY, NULL },

	/* Alongside claims, and deny rules. */
	{ "ID and claim both hold", NONE,
	  RULES({ "both", { SPIFFE(ID_API), CLAIM("groups", "admin") } }), POLICY_ENFORCE,
	  ID_API, false, ALICE_ADMIN, ALLOW, "both" },
	{ "ID holds, claim does not", NONE,
	  RULES({ "both", { SPIFFE(ID_API), CLAIM("groups", "admin") } }), POLICY_ENFORCE,
	  ID_API, false, BOB_DEV, DENY, NULL },
	{ "deny by ID wins", RULES({ "no-batch", { SPIFFE(ID_BATCH) } }), PROD_NS,
	  POLICY_ENFORCE, ID_BATCH, false, NULL, DENY, "no-batch" },
	{ "deny by trust domain wins", RULES({ "no-staging", { TD("staging.example.org") } }),
	  RULES({ "all", { { 0 } } }), POLICY_ENFORCE, ID_STAGING, false, ALICE_ADMIN, DENY,
	  "no-staging" },
	{ "deny by ID needs an ID", RULES({ "no-batch", { SPIFFE(ID_BATCH) } }),
	  RULES({ "all", { { 0 } } }), POLICY_ENFORCE, NULL, false, ALICE_ADMIN, ALLOW, "all" },
	{ "dry-run ID mismatch", NONE, PROD_NS, POLICY_DRY_RUN, ID_STAGING, false, NULL,
	  WOULD, NULL },

	/* The certificate as the whole proof: a rule on the ID or its trust
	 * domain names it. */
	{ "peer only: spiffe_id names the certificate", NONE, PROD_NS, POLICY_ENFORCE, ID_API,
	  true, NULL, ALLOW, "prod-ns" },
	{ "peer only: trust_domain names it", NONE, RULES({ "prod", { TD("prod.example.org") } }),
	  POLICY_ENFORCE, ID_API, true, NULL, ALLOW, "prod" },
	{ "peer only: a rule on neither", NONE,
	  RULES({ "all", { { 0 } } }, { "get", { METHOD("GET") } }), POLICY_ENFORCE, ID_API,
	  true, NULL, DENY, NULL },
	{ "peer only: the ID rule after one that does not name it", NONE,
	  RULES({ "all", { { 0 } } }, { "api", { SPIFFE(ID_API), METHOD("GET") } }),
	  POLICY_ENFORCE, ID_API, true, NULL, ALLOW, "api" },
};

/* ------------------------------------------------------------------ */
/* Request attributes of a protocol other than HTTP.                   */
/* ------------------------------------------------------------------ */

/* The attributes of a database protocol, as a protocol would declare them. */
static const char *const db_attrs[] = { "database", "user", "command", NULL };

#define DB(...)		ATTR("database", __VA_ARGS__)
#define USER(...)	ATTR("user", __VA_ARGS__)
#define ABSENT		NULL

struct acase {
	const char *what;
	const struct trule *deny;
	const struct trule *allow;
	enum policy_mode mode;
	const char *vals[3];	/* by db_attrs' ids; NULL: the request has none */
	size_t nattrs;		/* how many the request carries */
	size_t len0;		/* > 0: the length of vals[0] (bytes beyond are not its) */
	enum policy_result result;
	const char *rule;
};

static const struct acase acases[] = {
	/* One attribute. */
	{ "attribute matches", NONE, RULES({ "prod", { DB("prod_*") } }), POLICY_ENFORCE,
	  { "prod_main", "alice", "SELECT" }, 3, 0, ALLOW, "prod" },
	{ "attribute does not match", NONE, RULES({ "prod", { DB("prod_*") } }), POLICY_ENFORCE,
	  { "test_main", "alice", "SELECT" }, 3, 0, DENY, NULL },
	{ "one of several values", NONE, RULES({ "u", { USER("bob", "alice") } }), POLICY_ENFORCE,
	  { "db", "alice", ABSENT }, 3, 0, ALLOW, "u" },
	{ "values are case-sensitive", NONE, RULES({ "u", { USER("alice") } }), POLICY_ENFORCE,
	  { "db", "Alice", ABSENT }, 3, 0, DENY, NULL },
	{ "the value's length bounds it", NONE, RULES({ "exact", { DB("prod") } }),
	  POLICY_ENFORCE, { "production", "alice", ABSENT }, 3, 4, ALLOW, "exact" },
	{ "a longer value is not a prefix match", NONE, RULES({ "exact", { DB("prod") } }),
	  POLICY_ENFORCE, { "production", "alice", ABSENT }, 3, 0, DENY, NULL },

	/* An attribute the request does not carry never matches. */
	{ "absent attribute, any value", NONE, RULES({ "any-db", { DB("*") } }), POLICY_ENFORCE,
	  { ABSENT, "alice", "SELECT" }, 3, 0, DENY, NULL },
	{ "empty attribute is not absent", NONE, RULES({ "any-db", { DB("*") } }), POLICY_ENFORCE,
	  { "", "alice", "SELECT" }, 3, 0, ALLOW, "any-db" },
	{ "attribute beyond what the request carries", NONE,
	  RULES({ "any-user", { USER("*") } }), POLICY_ENFORCE,
	  { "db", "alice", "SELECT" }, 1, 0, DENY, NULL },
	{ "absent attribute in a deny rule denies nothing",
	  RULES({ "no-admin", { USER("admin") } }), RULES({ "all", { { 0 } } }), POLICY_ENFORCE,
	  { "db", ABSENT, ABSENT }, 3, 0, ALLOW, "all" },
	{ "no attributes at all", NONE, RULES({ "any-db", { DB("*") } }), POLICY_ENFORCE,
	  { ABSENT, ABSENT, ABSENT }, 0, 0, DENY, NULL },

	/* Several attributes: every one must hold. */
	{ "every attribute holds", NONE,
	  RULES({ "ro", { DB("prod_*"), USER("report*"), ATTR("command", "SELECT") } }),
	  POLICY_ENFORCE, { "prod_main", "reporter", "SELECT" }, 3, 0, ALLOW, "ro" },
	{ "one attribute fails", NONE,
	  RULES({ "ro", { DB("prod_*"), USER("report*"), ATTR("command", "SELECT") } }),
	  POLICY_ENFORCE, { "prod_main", "reporter", "DELETE" }, 3, 0, DENY, NULL },
	{ "one attribute absent", NONE,
	  RULES({ "ro", { DB("prod_*"), USER("report*"), ATTR("command", "SELECT") } }),
	  POLICY_ENFORCE, { "prod_main", "reporter", ABSENT }, 3, 0, DENY, NULL },
	{ "two conditions on one attribute", NONE,
	  RULES({ "both", { DB("prod_*"), DB("*_main") } }), POLICY_ENFORCE,
	  { "prod_main", ABSENT, ABSENT }, 3, 0, ALLOW, "both" },
	{ "two conditions on one attribute, one fails", NONE,
	  RULES({ "both", { DB("prod_*"), DB("*_main") } }), POLICY_ENFORCE,
	  { "prod_copy", ABSENT, ABSENT }, 3, 0, DENY, NULL },
	{ "attributes with a deny rule", RULES({ "no-drop", { ATTR("command", "DROP*") } }),
	  RULES({ "prod", { DB("prod_*") } }), POLICY_ENFORCE,
	  { "prod_main", "alice", "DROP TABLE" }, 3, 0, DENY, "no-drop" },
	{ "dry-run attribute mismatch", NONE, RULES({ "prod", { DB("prod_*") } }), POLICY_DRY_RUN,
	  { "test", "alice", "SELECT" }, 3, 0, WOULD, NULL },
};

static struct policy_issuer corp_issuer = {
	.name = (char *)"corp",
	.iss = (char *)"https://idp.example.com",
};

static char *
xstrdup(const char *s)
{
	char *d = strdup(s);

	assert_non_null(d);
	return d;
}

/* HTTP's attributes, in the order its protocol declares them. */
static const char *const http_attrs[] = { "method", "path", NULL };

static struct policy_rule *
build_rules(const struct trule *t, size_t *n, const char *const *attrs)
{
	struct policy_rule *rules;
	size_t i, j, k, nc, nv;

	*n = 0;
	if (t == NULL)
		return NULL;
	while (t[*n].name != NULL)
		(*n)++;
	rules = calloc(*n + 1, sizeof(*rules));
	assert_non_null(rules);
	for (i = 0; i < *n; i++) {
		rules[i].name = xstrdup(t[i].name);
		for (nc = 0; nc < CG_ARRAY_LEN(t[i].conds) &&
		    t[i].conds[nc].values[0] != NULL; nc++)
			;
		rules[i].nconds = nc;
		rules[i].conds = calloc(nc + 1, sizeof(*rules[i].conds));
		assert_non_null(rules[i].conds);
		for (j = 0; j < nc; j++) {
			const struct tcond *tc = &t[i].conds[j];
			struct policy_cond *c = &rules[i].conds[j];

			c->kind = tc->kind;
			if (tc->kind == POLICY_COND_CLAIM)
				c->claim = xstrdup(tc->name);
			else if (tc->kind == POLICY_COND_ATTR)
				c->attr = xstrdup(tc->name);
			for (nv = 0; tc->values[nv] != NULL; nv++)
				;
			c->values = calloc(nv, sizeof(*c->values));
			assert_non_null(c->values);
			for (k = 0; k < nv; k++)
				c->values[k] = xstrdup(tc->values[k]);
			c->nvalues = nv;
		}
		assert_int_equal(policy_rule_resolve_attrs(&rules[i], attrs), 0);
	}
	return rules;
}

/* The HTTP request of a case: attrs[id] by http_attrs' order. */
static void
http_request(struct policy_request *q, struct policy_attr attrs[2], const char *method,
    const char *path)
{
	attrs[0].value = method;
	attrs[0].len = method != NULL ? strlen(method) : 0;
	attrs[1].value = path;
	attrs[1].len = path != NULL ? strlen(path) : 0;
	q->attrs = attrs;
	q->nattrs = 2;
}

static void
test_decide_table(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < CG_ARRAY_LEN(rcases); i++) {
		const struct rcase *c = &rcases[i];
		struct policy_route route = { 0 };
		struct policy_request q = { 0 };
		struct policy_attr attrs[2];
		struct policy_decision d;
		struct policy_identity *id = NULL;
		json_t *claims;

		route.name = xstrdup("route");
		route.mode = c->mode;
		route.expires = c->expires;
		route.deny = build_rules(c->deny, &route.ndeny, http_attrs);
		route.allow = build_rules(c->allow, &route.nallow, http_attrs);
		if (c->claims != NULL) {
			claims = json_loads(c->claims, 0, NULL);
			assert_non_null(claims);
			assert_int_equal(policy_identity_from_claims(&corp_issuer,
			    claims, &id), 0);
			json_decref(claims);
		}
		q.id = id;
		http_request(&q, attrs, c->method, c->path);
		q.now_s = c->now;

		memset(&d, 0xff, sizeof(d));
		policy_decide(&route, &q, &d);
		if (d.result != c->result)
			fail_msg("%s: result %s, want %s", c->what,
			    policy_result_name(d.result), policy_result_name(c->result));
		if (c->rule == NULL ? d.rule != NULL :
		    (d.rule == NULL || strcmp(d.rule, c->rule) != 0))
			fail_msg("%s: rule %s, want %s", c->what,
			    d.rule ? d.rule : "(none)", c->rule ? c->rule : "(none)");
		if (d.reason == NULL || strcmp(d.reason, c->reason) != 0)
			fail_msg("%s: reason %s, want %s", c->what,
			    d.reason ? d.reason : "(null)", c->reason);

		policy_identity_free(id);
		policy_route_clear(&route);
		assert_null(route.name);
		assert_null(route.allow);
		assert_int_equal(route.ndeny, 0);
	}
}

static void
test_decide_peer_table(void **state)
{
	size_t i, n;

	(void)state;
	for (i = 0; i < CG_ARRAY_LEN(pcases); i++) {
		const struct pcase *c = &pcases[i];
		struct policy_route route = { 0 };
		struct policy_request q = { 0 };
		struct policy_attr attrs[2];
		struct policy_decision d;
		struct policy_identity *id = NULL;
		struct policy_peer peer;
		json_t *claims;

		route.name = xstrdup("route");
		route.mode = c->mode;
		route.deny = build_rules(c->deny, &route.ndeny, http_attrs);
		route.allow = build_rules(c->allow, &route.nallow, http_attrs);
		if (c->claims != NULL) {
			claims = json_loads(c->claims, 0, NULL);
			assert_non_null(claims);
			assert_int_equal(policy_identity_from_claims(&corp_issuer,
			    claims, &id), 0);
			json_decref(claims);
		}
		if (c->peer != NULL) {
			for (n = 0; c->peer->sans[n] != NULL; n++)
				;
			peer.subject = c->peer->subject;
			peer.sans = c->peer->sans;
			peer.nsans = n;
			q.peer = &peer;
		}
		q.id = id;
		http_request(&q, attrs, "GET", "/");
		q.now_s = NOW;

		memset(&d, 0xff, sizeof(d));
		policy_decide(&route, &q, &d);
		if (d.result != c->result)
			fail_msg("%s: result %s, want %s", c->what,
			    policy_result_name(d.result), policy_result_name(c->result));
		if (c->rule == NULL ? d.rule != NULL :
		    (d.rule == NULL || strcmp(d.rule, c->rule) != 0))
			fail_msg("%s: rule %s, want %s", c->what,
			    d.rule ? d.rule : "(none)", c->rule ? c->rule : "(none)");
		if (d.reason == NULL || strcmp(d.reason, c->reason) != 0)
			fail_msg("%s: reason %s, want %s", c->what,
			    d.reason ? d.reason : "(null)", c->reason);

		policy_identity_free(id);
		policy_route_clear(&route);
	}
}

/*
 * The certificate as the whole proof (peer_only, no identity): only an
 * allow rule that names the certificate can allow; deny rules apply as
 * ever.
 */
static void
test_decide_peer_only(void **state)
{
	const struct {
		const char *what;
		const struct trule *deny, *allow;
		bool peer_only;
		enum policy_result result;
		const char *rule;
	} cases[] = {
		{ "a rule with no condition", NONE, RULES({ "all", { { 0 } } }), true,
		  DENY, NULL },
		{ "... without peer_only", NONE, RULES({ "all", { { 0 } } }), false,
		  ALLOW, "all" },
		{ "a rule on the method alone", NONE, RULES({ "get", { METHOD("GET") } }), true,
		  DENY, NULL },
		{ "a rule on the SAN", NONE, SPIFFE_ALLOW, true, ALLOW, "spiffe" },
		{ "the SAN rule after one that does not name it", NONE,
		  RULES({ "all", { { 0 } } }, { "spiffe", { SAN("uri:spiffe://example.org/*") } }),
		  true, ALLOW, "spiffe" },
		{ "a deny rule without a word on the certificate", RULES({ "no", { { 0 } } }),
		  SPIFFE_ALLOW, true, DENY, "no" },
	};
	size_t i, n;

	(void)state;
	for (i = 0; i < CG_ARRAY_LEN(cases); i++) {
		struct policy_route route = { 0 };
		struct policy_request q = { 0 };
		struct policy_attr attrs[2];
		struct policy_decision d;
		struct policy_peer peer;

		route.name = xstrdup("route");
		route.deny = build_rules(cases[i].deny, &route.ndeny, http_attrs);
		route.allow = build_rules(cases[i].allow, &route.nallow, http_attrs);
		for (n = 0; peer_batch.sans[n] != NULL; n++)
			;
		peer.subject = peer_batch.subject;
		peer.sans = peer_batch.sans;
		peer.nsans = n;
		q.peer = &peer;
		q.peer_only = cases[i].peer_only;
		http_request(&q, attrs, "GET", "/");
		q.now_s = NOW;
		policy_decide(&route, &q, &d);
		if (d.result != cases[i].result)
			fail_msg("%s: result %s", cases[i].what, policy_result_name(d.result));
		if (cases[i].rule == NULL ? d.rule != NULL :
		    (d.rule == NULL || strcmp(d.rule, cases[i].rule) != 0))
			fail_msg("%s: rule %s", cases[i].what, d.rule ? d.rule : "(none)");
		policy_route_clear(&route);
	}
}

static void
test_decide_spiffe_table(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < CG_ARRAY_LEN(scases); i++) {
		const struct scase *c = &scases[i];
		struct policy_route route = { 0 };
		struct policy_request q = { 0 };
		struct policy_attr attrs[2];
		struct policy_decision d;
		struct policy_identity *id = NULL;
		struct spiffe_id sid;
		struct policy_peer peer = { 0 };
		char err[128];
		json_t *claims;

		route.name = xstrdup("route");
		route.mode = c->mode;
		route.deny = build_rules(c->deny, &route.ndeny, http_attrs);
		route.allow = build_rules(c->allow, &route.nallow, http_attrs);
		if (c->claims != NULL) {
			claims = json_loads(c->claims, 0, NULL);
			assert_non_null(claims);
			assert_int_equal(policy_identity_from_claims(&corp_issuer,
			    claims, &id), 0);
			json_decref(claims);
		}
		if (c->spiffe != NULL) {
			assert_int_equal(spiffe_id_parse(c->spiffe, strlen(c->spiffe), &sid, err,
			    sizeof(err)), 0);
			peer.subject = "CN=svid";
			peer.spiffe = &sid;
			q.peer = &peer;
			q.spiffe = &sid;
		}
		q.id = id;
		q.peer_only = c->peer_only;
		http_request(&q, attrs, "GET", "/");
		q.now_s = NOW;

		memset(&d, 0xff, sizeof(d));
		policy_decide(&route, &q, &d);
		if (d.result != c->result)
			fail_msg("%s: result %s, want %s", c->what,
			    policy_result_name(d.result), policy_result_name(c->result));
		if (c->rule == NULL ? d.rule != NULL :
		    (d.rule == NULL || strcmp(d.rule, c->rule) != 0))
			fail_msg("%s: rule %s, want %s", c->what,
			    d.rule ? d.rule : "(none)", c->rule ? c->rule : "(none)");
		policy_identity_free(id);
		policy_route_clear(&route);
	}
}

static void
test_decide_cond_without_values(void **state)
{
	struct policy_cond cond = { .kind = POLICY_COND_ATTR, .attr = (char *)"path",
	    .attr_ref = 2 };
	struct policy_rule rule = { .name = (char *)"r", .conds = &cond, .nconds = 1 };
	struct policy_route route = { .allow = &rule, .nallow = 1 };
	struct policy_attr attrs[2] = { { "GET", 3 }, { "/", 1 } };
	struct policy_request q = { .attrs = attrs, .nattrs = 2 };
	struct policy_decision d;

	(void)state;
	/* A condition with nothing to match holds for nothing. */
	policy_decide(&route, &q, &d);
	assert_int_equal(d.result, POLICY_DENY);
	assert_null(d.rule);

	/* Nor does an attribute condition whose name was never resolved. */
	cond.attr_ref = 0;
	cond.values = (char *[]){ (char *)"*" };
	cond.nvalues = 1;
	policy_decide(&route, &q, &d);
	assert_int_equal(d.result, POLICY_DENY);
	cond.attr_ref = 2;
	policy_decide(&route, &q, &d);
	assert_int_equal(d.result, POLICY_ALLOW);
}

static void
test_decide_attrs_table(void **state)
{
	size_t i, k;

	(void)state;
	for (i = 0; i < CG_ARRAY_LEN(acases); i++) {
		const struct acase *c = &acases[i];
		struct policy_route route = { 0 };
		struct policy_attr attrs[3];
		struct policy_request q = { 0 };
		struct policy_decision d;

		route.mode = c->mode;
		route.deny = build_rules(c->deny, &route.ndeny, db_attrs);
		route.allow = build_rules(c->allow, &route.nallow, db_attrs);
		for (k = 0; k < 3; k++) {
			attrs[k].value = c->vals[k];
			attrs[k].len = c->vals[k] != NULL ? strlen(c->vals[k]) : 0;
		}
		if (c->len0 > 0)
			attrs[0].len = c->len0;
		q.attrs = c->nattrs > 0 ? attrs : NULL;
		q.nattrs = c->nattrs;
		q.now_s = NOW;

		memset(&d, 0xff, sizeof(d));
		policy_decide(&route, &q, &d);
		if (d.result != c->result)
			fail_msg("%s: result %s, want %s", c->what,
			    policy_result_name(d.result), policy_result_name(c->result));
		if (c->rule == NULL ? d.rule != NULL :
		    (d.rule == NULL || strcmp(d.rule, c->rule) != 0))
			fail_msg("%s: rule %s, want %s", c->what,
			    d.rule ? d.rule : "(none)", c->rule ? c->rule : "(none)");
		policy_route_clear(&route);
	}
}

/* Attribute names to ids: an id is the name's index in the protocol's list. */
struct resolve_case {
	const char *what;
	const char *names[4];		/* conditions, NULL-terminated; "" a claim */
	const char *const *attrs;	/* the protocol's; NULL: none */
	size_t unknown;
	unsigned refs[4];		/* attr_ref of each condition */
};

static const struct resolve_case resolve_cases[] = {
	{ "HTTP's two", { "method", "path", NULL }, http_attrs, 0, { 1, 2 } },
	{ "in any order", { "path", "method", "path", NULL }, http_attrs, 0, { 2, 1, 2 } },
	{ "another protocol's", { "user", "command", NULL }, db_attrs, 0, { 2, 3 } },
	{ "methods where there is no method", { "method", "database", NULL }, db_attrs, 1,
	  { 0, 1 } },
	{ "a name HTTP lacks", { "database", NULL }, http_attrs, 1, { 0 } },
	{ "every name unknown", { "Method", "path ", "", NULL }, http_attrs, 2, { 0, 0, 0 } },
	{ "no attributes at all", { "method", NULL }, NULL, 1, { 0 } },
	{ "no attribute conditions", { "", NULL }, NULL, 0, { 0 } },
};

static void
test_resolve_attrs(void **state)
{
	size_t i, k, n;

	(void)state;
	for (i = 0; i < CG_ARRAY_LEN(resolve_cases); i++) {
		const struct resolve_case *c = &resolve_cases[i];
		struct policy_cond conds[4];
		struct policy_rule rule = { .name = (char *)"r", .conds = conds };

		memset(conds, 0, sizeof(conds));
		for (n = 0; c->names[n] != NULL; n++) {
			/* "" stands for a claim condition, which is left alone */
			conds[n].kind = c->names[n][0] != '\0' ? POLICY_COND_ATTR : POLICY_COND_CLAIM;
			conds[n].attr = xstrdup(c->names[n]);
			conds[n].attr_ref = 9;	/* overwritten for each attribute */
		}
		rule.nconds = n;
		if (policy_rule_resolve_attrs(&rule, c->attrs) != c->unknown)
			fail_msg("%s: unknown count", c->what);
		for (k = 0; k < n; k++) {
			unsigned want = conds[k].kind == POLICY_COND_ATTR ? c->refs[k] : 9;

			if (conds[k].attr_ref != want)
				fail_msg("%s: condition %zu: attr_ref %u, want %u", c->what, k,
				    conds[k].attr_ref, want);
			free(conds[k].attr);
		}
	}
}

struct lookup_case {
	const char *claims;
	const char *path;
	const char *want;	/* JSON text of the result; NULL: not found */
};

static const struct lookup_case lookup_cases[] = {
	{ "{\"a\":1}", "a", "1" },
	{ "{\"a\":{\"b\":{\"c\":\"x\"}}}", "a.b.c", "\"x\"" },
	{ "{\"a\":{\"b\":{\"c\":\"x\"}}}", "a.b", "{\"c\": \"x\"}" },
	{ "{\"a\":{\"b\":1}}", "a.c", NULL },
	{ "{\"a\":{\"b\":1}}", "a.b.c", NULL },
	{ "{\"a\":[1,2]}", "a.0", NULL },		/* no array indexing */
	{ "{\"a.b\":1,\"a\":{\"b\":2}}", "a.b", "1" },	/* whole key first */
	{ "{\"a\":{\"b\":2}}", "a.b", "2" },
	{ "{\"a.b\":{\"c\":3}}", "a.b.c", "3" },
	{ "{\"a\":{\"b.c\":4}}", "a.b.c", "4" },
	{ "{\"a\":{\"b\":{\"x\":1}},\"a.b\":{\"c\":5}}", "a.b.c", "5" },
	/* A failed first split does not stop later ones. */
	{ "{\"a\":{\"z\":1},\"a.b\":{\"c\":6}}", "a.b.c", "6" },
	{ "{\"https://example.com/roles\":[\"r\"]}", "https://example.com/roles", "[\"r\"]" },
	{ "{\"x\":{\"https://example.com/roles\":\"r\"}}", "x.https://example.com/roles", "\"r\"" },
	{ "{\"\":{\"\":7}}", ".", "7" },
	{ "{\"a\":1}", "", NULL },
	{ "{\"a\":1}", "a.", NULL },
	{ "{\"a\":{\"\":8}}", "a.", "8" },
	{ "{\"a\":null}", "a", "null" },
};

static void
test_claim_lookup(void **state)
{
	json_t *str;
	size_t i;

	(void)state;
	for (i = 0; i < CG_ARRAY_LEN(lookup_cases); i++) {
		const struct lookup_case *c = &lookup_cases[i];
		json_t *claims = json_loads(c->claims, 0, NULL), *v;
		char *txt;

		assert_non_null(claims);
		v = policy_claim_lookup(claims, c->path);
		if (c->want == NULL) {
			if (v != NULL)
				fail_msg("case %zu (%s): found something", i, c->path);
		} else {
			if (v == NULL)
				fail_msg("case %zu (%s): not found", i, c->path);
			txt = json_dumps(v, JSON_ENCODE_ANY);
			assert_non_null(txt);
			if (strcmp(txt, c->want) != 0)
				fail_msg("case %zu (%s): got %s want %s", i,
				    c->path, txt, c->want);
			free(txt);
		}
		json_decref(claims);
	}
	str = json_string("a");
	assert_non_null(str);
	assert_null(policy_claim_lookup(NULL, "a"));
	assert_null(policy_claim_lookup(str, "a"));
	json_decref(str);
}

static void
test_identity_from_claims(void **state)
{
	struct policy_identity *id = (struct policy_identity *)0x1;
	json_t *claims;

	(void)state;
	claims = json_loads("{\"iss\":\"https://i\",\"sub\":\"s\",\"jti\":\"j\","
	    "\"aud\":[\"a\"],\"exp\":200,\"iat\":100,\"nbf\":90}", 0, NULL);
	assert_non_null(claims);
	assert_int_equal(policy_identity_from_claims(&corp_issuer, claims, &id), 0);
	json_decref(claims);		/* the identity holds its own reference */
	assert_ptr_equal(id->issuer, &corp_issuer);
	assert_string_equal(id->method, "jwt");
	assert_string_equal(id->iss, "https://i");
	assert_string_equal(id->sub, "s");
	assert_string_equal(id->jti, "j");
	assert_true(json_is_array(id->aud));
	assert_int_equal(id->exp, 200);
	assert_int_equal(id->iat, 100);
	assert_int_equal(id->nbf, 90);
	policy_identity_free(id);

	claims = json_loads("{\"aud\":5,\"sub\":7}", 0, NULL);
	assert_int_equal(policy_identity_from_claims(NULL, claims, &id), 0);
	assert_null(id->issuer);
	assert_null(id->iss);
	assert_null(id->sub);
	assert_null(id->aud);
	assert_int_equal(id->exp, 0);
	policy_identity_free(id);
	json_decref(claims);

	claims = json_loads("[1]", 0, NULL);
	assert_int_equal(policy_identity_from_claims(NULL, claims, &id),
	    CG_ERR_FORMAT);
	assert_null(id);
	json_decref(claims);
	policy_identity_free(NULL);
}

static void
test_issuer_free(void **state)
{
	struct policy_issuer *is = calloc(1, sizeof(*is));

	(void)state;
	assert_non_null(is);
	is->name = xstrdup("corp");
	is->iss = xstrdup("https://i");
	is->naudiences = 2;
	is->audiences = calloc(2, sizeof(char *));
	assert_non_null(is->audiences);
	is->audiences[0] = xstrdup("a");
	is->audiences[1] = xstrdup("b");
	is->jwks_file = xstrdup("keys.json");
	policy_issuer_free(is);		/* the sanitizer build checks for leaks */
	policy_issuer_free(NULL);
}

static void
test_names(void **state)
{
	static const struct {
		const char *name;
		unsigned bit;
	} algs[] = {
		{ "RS256", JWT_RS256 }, { "PS256", JWT_PS256 }, { "ES256", JWT_ES256 },
		{ "ES384", JWT_ES384 }, { "EdDSA", JWT_EDDSA },
	};
	size_t i;

	(void)state;
	for (i = 0; i < CG_ARRAY_LEN(algs); i++) {
		assert_int_equal(jwt_alg_parse(algs[i].name), algs[i].bit);
		assert_string_equal(jwt_alg_name(algs[i].bit), algs[i].name);
	}
	assert_int_equal(jwt_alg_parse("rs256"), 0);
	assert_int_equal(jwt_alg_parse("none"), 0);
	assert_int_equal(jwt_alg_parse("HS256"), 0);
	assert_int_equal(jwt_alg_parse("RS256 "), 0);
	assert_int_equal(jwt_alg_parse(""), 0);
	assert_int_equal(jwt_alg_parse(NULL), 0);
	assert_null(jwt_alg_name(0));
	assert_null(jwt_alg_name(JWT_RS256 | JWT_ES256));
	assert_null(jwt_alg_name(1u << 5));

	assert_string_equal(policy_result_name(POLICY_ALLOW), "allow");
	assert_string_equal(policy_result_name(POLICY_DENY), "deny");
	assert_string_equal(policy_result_name(POLICY_WOULD_DENY), "would_deny");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_decide_table),
		cmocka_unit_test(test_decide_peer_table),
		cmocka_unit_test(test_decide_peer_only),
		cmocka_unit_test(test_decide_spiffe_table),
		cmocka_unit_test(test_decide_cond_without_values),
		cmocka_unit_test(test_decide_attrs_table),
		cmocka_unit_test(test_resolve_attrs),
		cmocka_unit_test(test_claim_lookup),
		cmocka_unit_test(test_identity_from_claims),
		cmocka_unit_test(test_issuer_free),
		cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
