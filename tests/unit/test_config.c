/*
 * test_config.c: credgate.conf loading, validation messages, defaults, the
 * effective-config dump and the man page's coverage of the settings table.
 */
#include "tests/unit/unit.h"

#include <sys/stat.h>
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <libconfig.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "proxy/conf.h"
#include "injectors/postgres/pg.h"

/* A route's HTTP settings, as the HTTP protocol reads them. */
#define HTTP_CFG(rt)	((const struct inj_http_cfg *)(const void *)(rt)->proto_cfg)
/* And a PostgreSQL route's. */
#define PG_CFG(rt)	((const struct inj_pg_cfg *)(const void *)(rt)->proto_cfg)
#include "proxy/conf_int.h"

#define EXAMPLE TEST_SRCDIR "/../../examples/quickstart.conf"
#define PG_EXAMPLE TEST_SRCDIR "/../../examples/postgres.conf"
#define SPIFFE_EXAMPLE TEST_SRCDIR "/../../examples/spiffe.conf"
#define MANPAGE TEST_SRCDIR "/../../man/credgate.conf.5"

/* ------------------------------------------------------------------ */
/* A small valid configuration, one setting per line where it matters  */
/* ------------------------------------------------------------------ */
static const char *const base_lines[] = {
	/* 1 */ "credgate = { audit = { stdout = true; }; };",
	/* 2 */ "issuers = ( { name = \"ci\"; issuer = \"https://ci.example\"; "
		"audiences = \"credgate\"; jwks_file = \"/etc/credgate/ci.jwks\"; } );",
	/* 3 */ "secrets = { file = \"/etc/credgate/secrets.json\"; };",
	/* 4 */ "routes = ( {",
	/* 5 */ "\tname = \"a\";",
	/* 6 */ "\tlisten = \"127.0.0.1:8080\";",
	/* 7 */ "\tupstream = { host = \"127.0.0.1\"; port = 8081; };",
	/* 8 */ "\tcredential = { path = \"a/b\"; };",
	/* 9 */ "\towner = \"o\"; purpose = \"p\"; environment = \"test\"; expires = \"2099-01-01\";",
	/* 10 */ "\tallow = ( { name = \"r\"; issuer = \"ci\"; claims = ( { claim = \"team\"; value = \"core\"; } ); } );",
	/* 11 */ "} );",
};
#define NBASE CG_ARRAY_LEN(base_lines)

/* A unix socket path one byte too long (108 with its '/'). */
#define UNIX_LONG "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" \
	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
/* ... as a message quotes it: its first 96 bytes. */
#define UNIX_LONG_Q "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" \
	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa..."

/* A second route, replacing line 11: its lines are 12 to 14. */
#define ROUTE_B(name, listen) \
	"}, {\n" \
	"\tname = \"" name "\"; listen = \"" listen "\";\n" \
	"\tupstream = { host = \"h\"; port = 1; }; credential = { path = \"x\"; };\n" \
	"\towner = \"o\"; purpose = \"p\"; environment = \"e\"; expires = \"2099-01-01\";\n" \
	"} );"

struct edit {
	int line;		/* 1-based line of base_lines to replace; 0 ends */
	const char *text;	/* may hold newlines; "" keeps the line empty */
};

/* The base configuration with edits applied; caller frees. */
static char *
base_with(const struct edit *edits)
{
	char *out = NULL;
	size_t len = 0, i, k;
	FILE *f = open_memstream(&out, &len);

	assert_non_null(f);
	for (i = 0; i < NBASE; i++) {
		const char *line = base_lines[i];

		for (k = 0; edits != NULL && edits[k].line != 0; k++)
			if ((size_t)edits[k].line == i + 1)
				line = edits[k].text;
		fprintf(f, "%s\n", line);
	}
	fclose(f);
	return out;
}

static void
print_errors(const struct cg_errors *e)
{
	size_t i;

	for (i = 0; i < e->n; i++)
		print_message("  %s\n", e->msgs[i]);
}

static struct cg_config *
load_ok(const char *text)
{
	struct cg_errors errs = { 0 };
	struct cg_config *cfg = NULL;
	int r = cg_config_load_string(text, "credgate.conf", 0, &cfg, &errs);

	if (r != 0)
		print_errors(&errs);
	assert_int_equal(r, 0);
	assert_non_null(cfg);
	cg_errors_clear(&errs);
	return cfg;
}

static char *
dump_text(const struct cg_config *cfg)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);

	assert_non_null(f);
	assert_int_equal(cg_config_dump(cfg, f), 0);
	fclose(f);
	return out;
}

/* ------------------------------------------------------------------ */
/* Messages                                                            */
/* ------------------------------------------------------------------ */
struct msg_case {
	const char *what;
	struct edit edits[5];	/* ends at line 0 */
	int rc;			/* 0 or CG_ERR_FORMAT */
	const char *want[6];	/* every message, in order */
};

#define E(n, t) { (n), (t) }
#define L9(...) E(9, "\t" __VA_ARGS__)
/* line 1 with more process-wide settings; line 6 and 7 with more route settings */
#define G1(...) E(1, "credgate = { audit = { stdout = true; }; " __VA_ARGS__ " };")
#define L6(...) E(6, "\tlisten = \"127.0.0.1:8080\"; " __VA_ARGS__)
#define L7(...) E(7, "\tupstream = { host = \"127.0.0.1\"; port = 8081; " __VA_ARGS__ " };")
/* trust domains after line 3 (from line 4 on, a line further down every
 * later line); TD_PROD is one that checks */
#define TD3(...) E(3, "secrets = { file = \"/etc/credgate/secrets.json\"; };\n" \
	"trust_domains = ( " __VA_ARGS__ " );")
#define TD_PROD "{ name = \"prod\"; trust_domain = \"prod.example.org\"; x509_bundle_file = \"/b\"; }"
#define TLS_SVID(...) L6("tls = { cert = \"/c\"; key = \"/k\"; " __VA_ARGS__ " };")

static const struct msg_case msg_cases[] = {
	{ "wrong type", { E(1, "credgate = { audit = { stdout = true; }; log_level = 3; };") },
	  CG_ERR_FORMAT,
	  { "credgate.conf:1: credgate.log_level: expected a string, not an integer" } },
	{ "wrong type: bool", { E(1, "credgate = { audit = { stdout = \"yes\"; }; };") },
	  CG_ERR_FORMAT,
	  { "credgate.conf:1: credgate.audit.stdout: expected a boolean (true or false), "
	    "not a string" } },
	{ "wrong type: group", { E(7, "\tupstream = \"127.0.0.1:8081\";") }, CG_ERR_FORMAT,
	  { "credgate.conf:7: routes.[0].upstream: expected a group { ... }, not a string" } },
	{ "wrong type: list element", { E(10, "\tallow = ( \"r\" );") }, CG_ERR_FORMAT,
	  { "credgate.conf:10: routes.[0].allow.[0]: expected a group { ... }, not a string" } },
	{ "port out of bounds",
	  { E(7, "\tupstream = { host = \"127.0.0.1\"; port = 70000; };") }, CG_ERR_FORMAT,
	  { "credgate.conf:7: routes.[0].upstream.port: 70000 not in 1..65535" } },
	{ "header_count out of bounds",
	  { E(1, "credgate = { audit = { stdout = true; }; limits = { header_count = 7; }; };") },
	  CG_ERR_FORMAT,
	  { "credgate.conf:1: credgate.limits.header_count: 7 not in 8..500" } },
	{ "header_count upper bound",
	  { E(1, "credgate = { audit = { stdout = true; }; limits = { header_count = 501; }; };") },
	  CG_ERR_FORMAT,
	  { "credgate.conf:1: credgate.limits.header_count: 501 not in 8..500" } },
	{ "bad enum",
	  { E(1, "credgate = { audit = { stdout = true; }; log_level = \"verbose\"; };") },
	  CG_ERR_FORMAT,
	  { "credgate.conf:1: credgate.log_level: \"verbose\" is not one of "
	    "error, warn, info, debug" } },
	{ "bad duration",
	  { E(1, "credgate = { audit = { stdout = true; }; timeouts = { client_idle = \"10x\"; }; };") },
	  CG_ERR_FORMAT,
	  { "credgate.conf:1: credgate.timeouts.client_idle: \"10x\" is not a duration "
	    "(like \"250ms\", \"10s\", \"5m\", \"1h\")" } },
	{ "duration out of bounds",
	  { E(1, "credgate = { audit = { stdout = true; }; timeouts = { client_header = \"2h\"; }; };") },
	  CG_ERR_FORMAT,
	  { "credgate.conf:1: credgate.timeouts.client_header: \"2h\" not in 100ms..1h" } },
	{ "duration not whole seconds",
	  { E(2, "issuers = ( { name = \"ci\"; issuer = \"https://ci.example\"; "
		"audiences = \"credgate\"; jwks_file = \"/j\"; max_lifetime = \"1500ms\"; } );") },
	  CG_ERR_FORMAT,
	  { "credgate.conf:2: issuers.[0].max_lifetime: \"1500ms\" is not a whole number of seconds" } },
	{ "unknown setting", { L9("ownr = \"o\"; purpose = \"p\"; environment = \"t\"; expires = \"2099-01-01\";") },
	  CG_ERR_FORMAT,
	  { "credgate.conf:9: routes.[0].ownr: unknown setting",
	    "credgate.conf:4: routes.[0].owner: required setting missing" } },
	{ "unknown top-level setting", { E(3, "secrets = { file = \"/s\"; }; route = ();") },
	  CG_ERR_FORMAT, { "credgate.conf:3: route: unknown setting" } },
	{ "missing owner", { L9("purpose = \"p\"; environment = \"t\"; expires = \"2099-01-01\";") },
	  CG_ERR_FORMAT, { "credgate.conf:4: routes.[0].owner: required setting missing" } },
	{ "missing purpose", { L9("owner = \"o\"; environment = \"t\"; expires = \"2099-01-01\";") },
	  CG_ERR_FORMAT, { "credgate.conf:4: routes.[0].purpose: required setting missing" } },
	{ "missing environment", { L9("owner = \"o\"; purpose = \"p\"; expires = \"2099-01-01\";") },
	  CG_ERR_FORMAT, { "credgate.conf:4: routes.[0].environment: required setting missing" } },
	{ "missing expires", { L9("owner = \"o\"; purpose = \"p\"; environment = \"t\";") },
	  CG_ERR_FORMAT, { "credgate.conf:4: routes.[0].expires: required setting missing" } },
	{ "missing listen", { E(6, "") }, CG_ERR_FORMAT,
	  { "credgate.conf:4: routes.[0].listen: required setting missing" } },
	{ "missing upstream", { E(7, "") }, CG_ERR_FORMAT,
	  { "credgate.conf:4: routes.[0].upstream: required setting missing" } },
	{ "missing credential.path", { E(8, "\tcredential = { inject = \"bearer\"; };") },
	  CG_ERR_FORMAT,
	  { "credgate.conf:8: routes.[0].credential.path: required setting missing" } },
	{ "missing secrets", { E(3, "") }, CG_ERR_FORMAT,
	  { "credgate.conf:1: secrets: required setting missing" } },
	{ "missing secrets.file", { E(3, "secrets = { cache_ttl = 0; };") }, CG_ERR_FORMAT,
	  { "credgate.conf:3: secrets.file: required when backend is \"file\"" } },
	{ "empty string", { L9("owner = \"\"; purpose = \"p\"; environment = \"t\"; expires = \"2099-01-01\";") },
	  CG_ERR_FORMAT, { "credgate.conf:9: routes.[0].owner: must not be empty" } },
	{ "empty list of strings", { E(10, "\tallow = ( { name = \"r\"; issuer = \"ci\"; methods = []; } );") },
	  CG_ERR_FORMAT, { "credgate.conf:10: routes.[0].allow.[0].methods: must not be empty" } },
	{ "bad algorithm",
	  { E(2, "issuers = ( { name = \"ci\"; issuer = \"https://ci.example\"; "
		"audiences = \"credgate\"; jwks_file = \"/j\"; algorithms = [ \"RS256\", \"HS256\" ]; } );") },
	  CG_ERR_FORMAT,
	  { "credgate.conf:2: issuers.[0].algorithms.[1]: \"HS256\" is not one of "
	    "RS256, PS256, ES256, ES384, EdDSA" } },
	{ "duplicate route name", { E(11, ROUTE_B("a", "127.0.0.1:8090")) }, CG_ERR_FORMAT,
	  { "credgate.conf:12: routes.[1].name: route name \"a\" already used at line 4" } },
	{ "duplicate listen address", { E(11, ROUTE_B("b", "127.0.0.1:8080")) }, CG_ERR_FORMAT,
	  { "credgate.conf:12: routes.[1].listen: listen address \"127.0.0.1:8080\" "
	    "already used at line 4" } },
	{ "duplicate rule name",
	  { E(10, "\tallow = ( { name = \"r\"; issuer = \"ci\"; } ); deny = ( { name = \"r\"; } );") },
	  CG_ERR_FORMAT,
	  { "credgate.conf:10: routes.[0].deny.[0].name: rule name \"r\" already used at line 10" } },
	{ "duplicate issuer name",
	  { E(2, "issuers = ( { name = \"ci\"; issuer = \"https://a\"; audiences = \"x\"; jwks_file = \"/j\"; },\n"
		"{ name = \"ci\"; issuer = \"https://b\"; audiences = \"x\"; jwks_file = \"/j\"; } );") },
	  CG_ERR_FORMAT,
	  { "credgate.conf:3: issuers.[1].name: issuer name \"ci\" already used at line 2" } },
	{ "bad route name", { E(5, "\tname = \"a b\";") }, CG_ERR_FORMAT,
	  { "credgate.conf:5: routes.[0].name: \"a b\": only letters, digits, '_', '.' and '-' "
	    "are allowed" } },
	{ "unknown issuer in a rule", { E(10, "\tallow = ( { name = \"r\"; issuer = \"cii\"; } );") },
	  CG_ERR_FORMAT,
	  { "credgate.conf:10: routes.[0].allow.[0].issuer: unknown issuer \"cii\"" } },
	{ "bad expires", { L9("owner = \"o\"; purpose = \"p\"; environment = \"t\"; expires = \"soon\";") },
	  CG_ERR_FORMAT,
	  { "credgate.conf:9: routes.[0].expires: \"soon\" is not a date (YYYY-MM-DD) or an "
	    "RFC 3339 time" } },
	{ "bad listen: no port", { E(6, "\tlisten = \"127.0.0.1\";") }, CG_ERR_FORMAT,
	  { "credgate.conf:6: routes.[0].listen: \"127.0.0.1\" is not host:port, [v6]:port or unix:/path" } },
	{ "bad listen: bare v6", { E(6, "\tlisten = \"::1:8080\";") }, CG_ERR_FORMAT,
	  { "credgate.conf:6: routes.[0].listen: \"::1:8080\" is not host:port, [v6]:port or unix:/path" } },
	{ "bad listen: bad v6", { E(6, "\tlisten = \"[::g]:8080\";") }, CG_ERR_FORMAT,
	  { "credgate.conf:6: routes.[0].listen: \"[::g]:8080\" is not host:port, [v6]:port or unix:/path" } },
	{ "listen: a unix socket", { E(6, "\tlisten = \"unix:/run/credgate/.s.PGSQL.5432\";") },
	  0, { NULL } },
	{ "bad listen: a relative unix path", { E(6, "\tlisten = \"unix:run/x.sock\";") },
	  CG_ERR_FORMAT,
	  { "credgate.conf:6: routes.[0].listen: \"unix:run/x.sock\": a unix socket needs an "
	    "absolute path of at most 107 bytes" } },
	{ "bad listen: a unix path too long", { E(6, "\tlisten = \"unix:/" UNIX_LONG "\";") },
	  CG_ERR_FORMAT,
	  { "credgate.conf:6: routes.[0].listen: \"unix:/" UNIX_LONG_Q "\": a unix socket needs "
	    "an absolute path of at most 107 bytes" } },
	{ "bad listen: port 0", { E(6, "\tlisten = \"127.0.0.1:0\";") }, CG_ERR_FORMAT,
	  { "credgate.conf:6: routes.[0].listen: \"127.0.0.1:0\": port not in 1..65535" } },
	{ "bad listen: port 65536", { E(6, "\tlisten = \"[::1]:65536\";") }, CG_ERR_FORMAT,
	  { "credgate.conf:6: routes.[0].listen: \"[::1]:65536\": port not in 1..65535" } },
	{ "header inject without header",
	  { E(8, "\tcredential = { path = \"a/b\"; inject = \"header\"; template = \"T ${token}\"; };") },
	  CG_ERR_FORMAT,
	  { "credgate.conf:8: routes.[0].credential.header: required when inject is \"header\"" } },
	{ "query inject without query_param",
	  { E(8, "\tcredential = { path = \"a/b\"; inject = \"query\"; };") }, CG_ERR_FORMAT,
	  { "credgate.conf:8: routes.[0].credential.query_param: required when inject is \"query\"" } },
	{ "64-bit integer recovered from libconfig's 32 bits",
	  { E(10, "\tallow = ( { name = \"r\"; issuer = \"ci\"; } ); max_body = 1099511627777;") },
	  CG_ERR_FORMAT,
	  { "credgate.conf:10: routes.[0].max_body: 1099511627777 not in 0..1099511627776" } },
	{ "integer beyond 64 bits",
	  { E(10, "\tallow = ( { name = \"r\"; issuer = \"ci\"; } ); max_body = 99999999999999999999;") },
	  CG_ERR_FORMAT, { "credgate.conf:10: routes.[0].max_body: integer too large" } },
	{ "syntax error", { E(1, "credgate = { log_level = ; };") }, CG_ERR_FORMAT,
	  { "credgate.conf:1: syntax error" } },
	{ "several errors in one file",
	  { E(1, "credgate = { audit = { stdout = true; }; limits = { header_count = 7; }; };"),
	    E(7, "\tupstream = { host = \"127.0.0.1\"; port = 70000; };"),
	    L9("ownr = \"o\"; purpose = \"p\"; environment = \"t\"; expires = \"soon\";"),
	    E(10, "\tallow = ( { name = \"r\"; issuer = \"cii\"; } );") },
	  CG_ERR_FORMAT,
	  { "credgate.conf:1: credgate.limits.header_count: 7 not in 8..500",
	    "credgate.conf:7: routes.[0].upstream.port: 70000 not in 1..65535",
	    "credgate.conf:9: routes.[0].ownr: unknown setting",
	    "credgate.conf:4: routes.[0].owner: required setting missing",
	    "credgate.conf:9: routes.[0].expires: \"soon\" is not a date (YYYY-MM-DD) or an "
	    "RFC 3339 time",
	    "credgate.conf:10: routes.[0].allow.[0].issuer: unknown issuer \"cii\"" } },

	/* \x00, which libconfig drops from a string without a word */
	{ "NUL escape in a path pattern",
	  { E(10, "\tallow = ( { name = \"r\"; issuer = \"ci\"; paths = [ \"/x\", \"/public\\x00-suffix\" ]; } );") },
	  CG_ERR_FORMAT,
	  { "credgate.conf:10: routes.[0].allow.[0].paths.[1]: \\x00 (a NUL byte) in a string: "
	    "no setting may hold one" } },
	{ "NUL escape, upper case, in a string list of one",
	  { E(10, "\tallow = ( { name = \"r\"; issuer = \"ci\"; paths = \"/a\\X00\"; } );") },
	  CG_ERR_FORMAT,
	  { "credgate.conf:10: routes.[0].allow.[0].paths: \\x00 (a NUL byte) in a string: "
	    "no setting may hold one" } },
	{ "NUL escape in a joined string, on its line",
	  { L9("owner = \"o\" /* \"\\x00\" */\n\t\t\"w\" # \"\\x00\"\n\t\t\"\\x00\"; purpose = \"p\"; "
	    "environment = \"t\"; expires = \"2099-01-01\";") },
	  CG_ERR_FORMAT,
	  { "credgate.conf:11: routes.[0].owner: \\x00 (a NUL byte) in a string: "
	    "no setting may hold one" } },
	{ "NUL escapes in several settings",
	  { G1("log_file = \"/l\\x00\";"),
	    E(11, "}, {\n\tname = \"b\"; listen = \"h:1\"; upstream = { host = \"h\"; port = 1; };\n"
	      "\tcredential = { path = \"\\x00\"; }; owner = \"o\"; purpose = \"p\"; environment = \"e\";\n"
	      "\texpires = \"2099-01-01\"; } );") },
	  CG_ERR_FORMAT,
	  { "credgate.conf:1: credgate.log_file: \\x00 (a NUL byte) in a string: no setting may "
	    "hold one",
	    "credgate.conf:13: routes.[1].credential.path: \\x00 (a NUL byte) in a string: no "
	    "setting may hold one",
	    "credgate.conf:13: routes.[1].credential.path: must not be empty" } },
	{ "an escaped backslash before x00 is text",
	  { L9("owner = \"o\\\\x00\"; purpose = \"\\\\\\x01\"; environment = \"\\x0\"; "
	    "expires = \"2099-01-01\";") }, 0, { NULL } },

	/* a duplicate setting, named */
	{ "duplicate setting",
	  { L9("owner = \"o\"; purpose = \"p\"; owner = \"x\"; environment = \"t\"; expires = \"2099-01-01\";") },
	  CG_ERR_FORMAT,
	  { "credgate.conf:9: routes.[0].owner: duplicate setting: already set at line 9" } },
	{ "duplicate setting on its own line",
	  { E(7, "\tupstream = { host = \"127.0.0.1\"; port = 8081;\n\t\tport\n\t\t= 1; };") },
	  CG_ERR_FORMAT,
	  { "credgate.conf:8: routes.[0].upstream.port: duplicate setting: already set at line 7" } },
	{ "duplicate top-level setting",
	  { E(3, "secrets = { file = \"/s\"; };\nsecrets = { file = \"/t\"; };") }, CG_ERR_FORMAT,
	  { "credgate.conf:4: secrets: duplicate setting: already set at line 3" } },
	{ "duplicate setting in a later list element, after strings and comments",
	  { E(1, "/* { ( \" */ credgate = { audit = { stdout = true; }; }; # } \""),
	    L9("owner = \"o } ) \\\" {\"; purpose = \"p\"; environment = \"t\"; expires = \"2099-01-01\";"),
	    E(11, "}, {\n\tname = \"b\"; allow = ( { name = \"x\"; methods = [ \"GET\", \"P\" \"UT\" ]; },\n"
	      "\t\t{ name = \"y\"; paths = \"/\"; paths = \"/z\"; } ); } );") },
	  CG_ERR_FORMAT,
	  { "credgate.conf:13: routes.[1].allow.[1].paths: duplicate setting: already set at line 13" } },
	{ "the same name in two groups is no duplicate",
	  { E(7, "\tupstream = { host = \"127.0.0.1\"; port = 8081; tls = { enabled = false; }; };"),
	    L6("tls = { };") }, 0, { NULL } },

	/* warnings: reported, counted, and the load succeeds */
	{ "warning: expired route",
	  { L9("owner = \"o\"; purpose = \"p\"; environment = \"t\"; expires = \"2020-01-01\";") }, 0,
	  { "credgate.conf:9: routes.[0].expires: warning: \"2020-01-01\" has passed: the route "
	    "denies every request" } },
	{ "warning: an HTTP setting on a postgres route",
	  { E(5, "\tname = \"a\"; protocol = \"postgres\"; max_body = 5; keepalive_time = \"1m\";") },
	  0,
	  { "credgate.conf:5: routes.[0].max_body: warning: ignored: only http routes use it",
	    "credgate.conf:5: routes.[0].keepalive_time: warning: ignored: only http routes use it" } },
	{ "warning: issuer that no rule accepts",
	  { E(10, "\tallow = ( { name = \"r\"; issuer = \"other-*\"; "
	    "claims = ( { claim = \"team\"; value = \"core\"; } ); } );") }, 0,
	  { "credgate.conf:2: issuers.[0]: warning: no allow rule accepts issuer \"ci\"" } },
	{ "warning: a rule that names only its issuer",
	  { E(10, "\tallow = ( { name = \"r\"; issuer = \"ci\"; audience = \"credgate\"; "
	    "claims = ( { claim = \"team\"; value = [ \"*\", \"**\" ]; } ); } );") }, 0,
	  { "credgate.conf:10: routes.[0].allow.[0]: warning: allow rule \"r\" accepts every "
	    "caller with a valid token of the issuers it names (for GitHub Actions: any "
	    "repository of any owner): add a claim condition, such as repository_owner and "
	    "repository, project_path, or kubernetes.io.namespace" } },
	{ "warning: a CI rule by repository alone",
	  { E(2, "issuers = ( { name = \"ci\"; issuer = \"https://token.actions.githubusercontent.com\"; "
	    "audiences = \"credgate\"; jwks_file = \"/etc/credgate/ci.jwks\"; } );"),
	    E(10, "\tallow = ( { name = \"r\"; issuer = \"ci\"; "
	    "claims = ( { claim = \"team\"; value = \"core\"; } ); } );") }, 0,
	  { "credgate.conf:10: routes.[0].allow.[0]: warning: allow rule \"r\" on a CI issuer pins "
	    "no branch, environment or workflow: name ref, environment or job_workflow_ref" } },
	{ "no warning: a CI rule that pins a branch",
	  { E(10, "\tallow = ( { name = \"r\"; issuer = \"ci\"; claims = ( "
	    "{ claim = \"repository\"; value = \"acme/app\"; }, "
	    "{ claim = \"ref\"; value = \"refs/heads/main\"; } ); } );") }, 0,
	  { NULL } },
	{ "warning: setting the inject kind ignores",
	  { E(8, "\tcredential = { path = \"a/b\"; header = \"X-Key\"; };") }, 0,
	  { "credgate.conf:8: routes.[0].credential.header: warning: ignored when inject is "
	    "\"basic\"" } },
	{ "warning: a header template that references no field",
	  { E(8, "\tcredential = { path = \"a/b\"; inject = \"header\"; header = \"X-Key\";\n"
	    "\t\ttemplate = \"Basic c3ZjOnMzY3JldA==\"; };") }, 0,
	  { "credgate.conf:9: routes.[0].credential.template: warning: references no ${field} of "
	    "the secret: the header value is written in the configuration; keep the credential "
	    "in the secret store" } },
	{ "a header template with a reference", { E(8, "\tcredential = { path = \"a/b\"; "
	    "inject = \"header\"; header = \"X-Key\"; template = \"$Basic ${b64}\"; };") }, 0,
	  { NULL } },
	{ "warning: no audit sink", { E(1, "") }, 0,
	  { "credgate.conf:1: credgate.audit: warning: no audit file and stdout = false: "
	    "decisions are not recorded" } },
	{ "warning: path pattern without a slash",
	  { E(10, "\tallow = ( { name = \"r\"; issuer = \"ci\"; claims = ( { claim = \"team\"; value = \"core\"; } ); paths = \"jobs/*\"; } );") }, 0,
	  { "credgate.conf:10: routes.[0].allow.[0].paths: warning: \"jobs/*\" does not start "
	    "with \"/\" and matches no request path" } },
	/* conditions on the request's attributes, by the names its protocol declares */
	{ "attribute of the protocol",
	  { E(10, "\tallow = ( { name = \"r\"; issuer = \"ci\"; claims = ( { claim = \"team\"; value = \"core\"; } ); attributes = (\n"
	    "\t\t{ attribute = \"method\"; value = [ \"GET\", \"HEAD\" ]; } ); } );") }, 0, { NULL } },
	{ "attribute the protocol does not have",
	  { E(10, "\tallow = ( { name = \"r\"; issuer = \"ci\"; attributes = (\n"
	    "\t\t{ attribute = \"path\"; value = \"/x\"; },\n"
	    "\t\t{ attribute = \"database\"; value = \"prod\"; } ); } );") }, CG_ERR_FORMAT,
	  { "credgate.conf:12: routes.[0].allow.[0].attributes.[1].attribute: protocol \"http\" "
	    "has no attribute \"database\" (it has method, path)" } },
	{ "attribute names are case-sensitive",
	  { E(10, "\tallow = ( { name = \"r\"; issuer = \"ci\"; } );\n"
	    "\tdeny = ( { name = \"d\"; attributes = ( { attribute = \"Method\"; value = \"*\"; } ); } );") },
	  CG_ERR_FORMAT,
	  { "credgate.conf:11: routes.[0].deny.[0].attributes.[0].attribute: protocol \"http\" "
	    "has no attribute \"Method\" (it has method, path)" } },
	{ "attribute without a value",
	  { E(10, "\tallow = ( { name = \"r\"; issuer = \"ci\"; "
	    "attributes = ( { attribute = \"path\"; } ); } );") }, CG_ERR_FORMAT,
	  { "credgate.conf:10: routes.[0].allow.[0].attributes.[0].value: required setting missing" } },
	{ "issuer named by iss and by glob",
	  { E(10, "\tallow = ( { name = \"r\"; issuer = [ \"https://ci.example\", \"c*\" ]; "
	    "claims = ( { claim = \"team\"; value = \"core\"; } ); } );") },
	  0, { NULL } },

	/* process settings */
	{ "workers upper bound", { G1("workers = 257;") }, CG_ERR_FORMAT,
	  { "credgate.conf:1: credgate.workers: 257 not in 0..256" } },
	{ "workers negative", { G1("workers = -1;") }, CG_ERR_FORMAT,
	  { "credgate.conf:1: credgate.workers: -1 not in 0..256" } },
	{ "workers bounds are inclusive", { G1("workers = 256;") }, 0, { NULL } },
	{ "max_connections lower bound", { G1("max_connections = 0;") }, CG_ERR_FORMAT,
	  { "credgate.conf:1: credgate.max_connections: 0 not in 1..1000000" } },
	{ "max_connections upper bound", { G1("max_connections = 1000001;") }, CG_ERR_FORMAT,
	  { "credgate.conf:1: credgate.max_connections: 1000001 not in 1..1000000" } },
	{ "shutdown_timeout upper bound", { G1("shutdown_timeout = \"61m\";") }, CG_ERR_FORMAT,
	  { "credgate.conf:1: credgate.shutdown_timeout: \"61m\" not in 0..1h" } },
	{ "shutdown_timeout bounds are inclusive", { G1("shutdown_timeout = \"1h\";") }, 0,
	  { NULL } },
	{ "token_cache.size upper bound", { G1("token_cache = { size = 10000001; };") },
	  CG_ERR_FORMAT,
	  { "credgate.conf:1: credgate.token_cache.size: 10000001 not in 0..10000000" } },
	{ "token_cache.size negative", { G1("token_cache = { size = -1; };") }, CG_ERR_FORMAT,
	  { "credgate.conf:1: credgate.token_cache.size: -1 not in 0..10000000" } },
	{ "token_cache must be a group", { G1("token_cache = 5;") }, CG_ERR_FORMAT,
	  { "credgate.conf:1: credgate.token_cache: expected a group { ... }, not an integer" } },
	{ "log_file empty", { G1("log_file = \"\";") }, CG_ERR_FORMAT,
	  { "credgate.conf:1: credgate.log_file: must not be empty" } },
	{ "user empty", { G1("user = \"\";") }, CG_ERR_FORMAT,
	  { "credgate.conf:1: credgate.user: must not be empty" } },
	{ "group wrong type", { G1("group = 0;") }, CG_ERR_FORMAT,
	  { "credgate.conf:1: credgate.group: expected a string, not an integer" } },
	{ "user and group are looked up only with files",
	  { G1("user = \"no-such-user-cg\"; group = \"no-such-group-cg\";") }, 0, { NULL } },
	{ "admin.listen: a host alone", { G1("admin = { listen = \"localhost\"; };") },
	  CG_ERR_FORMAT,
	  { "credgate.conf:1: credgate.admin.listen: \"localhost\" is not host:port, "
	    "[v6]:port or a port" } },
	{ "admin.listen: a colon alone", { G1("admin = { listen = \":\"; };") }, CG_ERR_FORMAT,
	  { "credgate.conf:1: credgate.admin.listen: \":\" is not host:port, [v6]:port or a port" } },
	{ "admin.listen: port 70000", { G1("admin = { listen = \"70000\"; };") }, CG_ERR_FORMAT,
	  { "credgate.conf:1: credgate.admin.listen: \"70000\": port not in 1..65535" } },
	{ "admin.listen: port 0", { G1("admin = { listen = \":0\"; };") }, CG_ERR_FORMAT,
	  { "credgate.conf:1: credgate.admin.listen: \":0\": port not in 1..65535" } },
	{ "admin.listen: a route's address", { G1("admin = { listen = \"127.0.0.1:8080\"; };") },
	  CG_ERR_FORMAT,
	  { "credgate.conf:1: credgate.admin.listen: listen address \"127.0.0.1:8080\" already "
	    "used by route \"a\" at line 4" } },
	{ "admin.listen: a bare port is loopback", { G1("admin = { listen = \":8080\"; };") },
	  CG_ERR_FORMAT,
	  { "credgate.conf:1: credgate.admin.listen: listen address \"127.0.0.1:8080\" already "
	    "used by route \"a\" at line 4" } },
	{ "admin.listen: IPv4 wildcard", { G1("admin = { listen = \"0.0.0.0:8080\"; };") },
	  CG_ERR_FORMAT,
	  { "credgate.conf:1: credgate.admin.listen: \"0.0.0.0:8080\" overlaps listen address "
	    "\"127.0.0.1:8080\" of route \"a\" at line 4" } },
	{ "admin.listen: IPv6 wildcard", { G1("admin = { listen = \"[::]:8080\"; };") },
	  CG_ERR_FORMAT,
	  { "credgate.conf:1: credgate.admin.listen: \"[::]:8080\" overlaps listen address "
	    "\"127.0.0.1:8080\" of route \"a\" at line 4" } },
	{ "admin.listen: a route on the wildcard",
	  { G1("admin = { listen = \"9180\"; };"), E(6, "\tlisten = \"0.0.0.0:9180\";") },
	  CG_ERR_FORMAT,
	  { "credgate.conf:1: credgate.admin.listen: \"127.0.0.1:9180\" overlaps listen address "
	    "\"0.0.0.0:9180\" of route \"a\" at line 4" } },
	{ "admin.listen: same port, other address",
	  { G1("admin = { listen = \"[::1]:8080\"; };"), E(11, ROUTE_B("b", "0.0.0.0:9180")) },
	  0, { NULL } },

	/* route connection limit */
	{ "route max_connections upper bound", { L6("max_connections = 1000001;") }, CG_ERR_FORMAT,
	  { "credgate.conf:6: routes.[0].max_connections: 1000001 not in 0..1000000" } },
	{ "keepalive_requests lower bound", { L6("keepalive_requests = 0;") }, CG_ERR_FORMAT,
	  { "credgate.conf:6: routes.[0].keepalive_requests: 0 not in 1..1000000000" } },
	{ "keepalive_time lower bound", { L6("keepalive_time = \"500ms\";") }, CG_ERR_FORMAT,
	  { "credgate.conf:6: routes.[0].keepalive_time: \"500ms\" not in 1s..7d" } },
	{ "max_pending_per_client lower bound", { G1("max_pending_per_client = 0;") },
	  CG_ERR_FORMAT,
	  { "credgate.conf:1: credgate.max_pending_per_client: 0 not in 1..1000000" } },

	/* TLS towards callers */
	{ "tls: cert without key", { L6("tls = { cert = \"/c.pem\"; };") }, CG_ERR_FORMAT,
	  { "credgate.conf:6: routes.[0].tls.key: required when cert is set" } },
	{ "tls: key without cert", { L6("tls = { key = \"/k.pem\"; };") }, CG_ERR_FORMAT,
	  { "credgate.conf:6: routes.[0].tls.cert: required when key is set" } },
	{ "tls: client_ca without cert", { L6("tls = { client_ca = \"/ca.pem\"; };") },
	  CG_ERR_FORMAT,
	  { "credgate.conf:6: routes.[0].tls.client_ca: requires cert and key: the listener "
	    "serves TLS only with both" } },
	{ "tls: verify_client without client_ca",
	  { L6("tls = { cert = \"/c\"; key = \"/k\"; verify_client = \"required\"; };") },
	  CG_ERR_FORMAT,
	  { "credgate.conf:6: routes.[0].tls.verify_client: \"required\" requires client_ca" } },
	{ "tls: optional verify_client without client_ca",
	  { L6("tls = { cert = \"/c\"; key = \"/k\"; verify_client = \"optional\"; };") },
	  CG_ERR_FORMAT,
	  { "credgate.conf:6: routes.[0].tls.verify_client: \"optional\" requires client_ca" } },
	{ "tls: bad verify_client",
	  { L6("tls = { cert = \"/c\"; key = \"/k\"; verify_client = \"yes\"; };") },
	  CG_ERR_FORMAT,
	  { "credgate.conf:6: routes.[0].tls.verify_client: \"yes\" is not one of "
	    "none, optional, required" } },
	{ "tls: bad min_version",
	  { L6("tls = { cert = \"/c\"; key = \"/k\"; min_version = \"TLSv1.1\"; };") },
	  CG_ERR_FORMAT,
	  { "credgate.conf:6: routes.[0].tls.min_version: \"TLSv1.1\" is not one of "
	    "TLSv1.2, TLSv1.3" } },
	{ "tls: ciphers that select nothing",
	  { L6("tls = { cert = \"/c\"; key = \"/k\"; ciphers = \"NO-SUCH-CIPHER\"; };") },
	  CG_ERR_FORMAT,
	  { "credgate.conf:6: routes.[0].tls.ciphers: \"NO-SUCH-CIPHER\" selects no cipher" } },
	{ "tls: unknown cipher suites",
	  { L6("tls = { cert = \"/c\"; key = \"/k\"; ciphersuites = \"TLS_NOPE\"; };") },
	  CG_ERR_FORMAT,
	  { "credgate.conf:6: routes.[0].tls.ciphersuites: \"TLS_NOPE\" names no TLS 1.3 "
	    "cipher suite" } },
	{ "tls: unknown curve",
	  { L6("tls = { cert = \"/c\"; key = \"/k\"; curves = \"X25519:P-999\"; };") },
	  CG_ERR_FORMAT,
	  { "credgate.conf:6: routes.[0].tls.curves: \"X25519:P-999\" names a group that is "
	    "not known" } },
	{ "tls: unknown setting", { L6("tls = { certificate = \"/c\"; };") }, CG_ERR_FORMAT,
	  { "credgate.conf:6: routes.[0].tls.certificate: unknown setting" } },
	{ "tls: every setting",
	  { L6("tls = { cert = \"/c\"; key = \"/k\"; client_ca = \"/ca\"; "
	    "verify_client = \"required\"; min_version = \"TLSv1.3\"; ciphers = \"ECDHE+AESGCM\"; "
	    "ciphersuites = \"TLS_AES_256_GCM_SHA384\"; curves = \"P-384\"; };") }, 0, { NULL } },
	{ "warning: tls settings without cert",
	  { L6("tls = { min_version = \"TLSv1.3\"; curves = \"X25519\"; };") }, 0,
	  { "credgate.conf:6: routes.[0].tls.min_version: warning: ignored without cert and key",
	    "credgate.conf:6: routes.[0].tls.curves: warning: ignored without cert and key" } },
	{ "warning: client_ca that is not used",
	  { L6("tls = { cert = \"/c\"; key = \"/k\"; client_ca = \"/ca\"; };") }, 0,
	  { "credgate.conf:6: routes.[0].tls.client_ca: warning: not used while verify_client "
	    "is \"none\"" } },

	/* SPIFFE trust domains, and the listeners that accept their SVIDs */
	{ "trust domains: every setting",
	  { TD3(TD_PROD ",\n{ name = \"staging\"; trust_domain = \"staging.example.org\"; "
	    "x509_bundle_file = \"/s\"; max_svid_lifetime = \"1h\"; }"),
	    TLS_SVID("verify_client = \"optional\"; trust_domains = [ \"prod\", \"staging\" ];"),
	    E(10, "\tallow = ( { name = \"r\"; issuer = \"ci\"; spiffe_id = [ "
	    "\"spiffe://prod.example.org/ns/*\", \"spiffe://staging.example.org/a\" ];\n"
	    "\t\ttrust_domain = \"prod.example.org\"; } );") }, 0, { NULL } },
	{ "trust domains: settings missing", { TD3("{ name = \"prod\"; }") }, CG_ERR_FORMAT,
	  { "credgate.conf:4: trust_domains.[0].trust_domain: required setting missing",
	    "credgate.conf:4: trust_domains.[0].x509_bundle_file: required setting missing" } },
	{ "trust domains: an uppercase trust domain",
	  { TD3("{ name = \"prod\"; trust_domain = \"Prod.example.org\"; x509_bundle_file = \"/b\"; }") },
	  CG_ERR_FORMAT,
	  { "credgate.conf:4: trust_domains.[0].trust_domain: \"Prod.example.org\" is not a trust "
	    "domain as SPIFFE IDs carry it: SPIFFE ID trust domain, byte 0: uppercase is not "
	    "allowed" } },
	{ "trust domains: a SPIFFE ID for a trust domain",
	  { TD3("{ name = \"prod\"; trust_domain = \"spiffe://prod.example.org\"; "
	    "x509_bundle_file = \"/b\"; }") }, CG_ERR_FORMAT,
	  { "credgate.conf:4: trust_domains.[0].trust_domain: \"spiffe://prod.example.org\" is not "
	    "a trust domain as SPIFFE IDs carry it: a trust domain is written without "
	    "\"spiffe://\"" } },
	{ "trust domains: a bad name",
	  { TD3("{ name = \"prod td\"; trust_domain = \"prod.example.org\"; x509_bundle_file = \"/b\"; }") },
	  CG_ERR_FORMAT,
	  { "credgate.conf:4: trust_domains.[0].name: \"prod td\": only letters, digits, '_', '.' "
	    "and '-' are allowed" } },
	{ "trust domains: the same name twice",
	  { TD3(TD_PROD ",\n{ name = \"prod\"; trust_domain = \"staging.example.org\"; "
	    "x509_bundle_file = \"/s\"; }") }, CG_ERR_FORMAT,
	  { "credgate.conf:5: trust_domains.[1].name: trust domain name \"prod\" already used at "
	    "line 4" } },
	{ "trust domains: the same trust domain twice",
	  { TD3(TD_PROD ",\n{ name = \"prod2\"; trust_domain = \"prod.example.org\"; "
	    "x509_bundle_file = \"/s\"; }") }, CG_ERR_FORMAT,
	  { "credgate.conf:5: trust_domains.[1].trust_domain: trust domain \"prod.example.org\" "
	    "already configured at line 4" } },
	{ "trust domains: max_svid_lifetime bounds",
	  { TD3("{ name = \"prod\"; trust_domain = \"prod.example.org\"; x509_bundle_file = \"/b\"; "
	    "max_svid_lifetime = \"366d\"; }") }, CG_ERR_FORMAT,
	  { "credgate.conf:4: trust_domains.[0].max_svid_lifetime: \"366d\" not in 0..365d" } },
	{ "trust domains: a list of groups", { TD3("\"prod\"") }, CG_ERR_FORMAT,
	  { "credgate.conf:4: trust_domains.[0]: expected a group { ... }, not a string" } },
	{ "warning: a trust domain no route accepts", { TD3(TD_PROD) }, 0,
	  { "credgate.conf:4: trust_domains.[0]: warning: no route accepts the X.509-SVIDs of "
	    "trust domain \"prod\" (routes.[].tls.trust_domains)" } },
	{ "tls: trust_domains, an unknown name",
	  { TD3(TD_PROD), TLS_SVID("verify_client = \"required\"; "
	    "trust_domains = [ \"prod\", \"nope\" ];") }, CG_ERR_FORMAT,
	  { "credgate.conf:7: routes.[0].tls.trust_domains.[1]: unknown trust domain \"nope\" "
	    "(trust_domains.[].name)" } },
	{ "tls: trust_domains, a name twice",
	  { TD3(TD_PROD), TLS_SVID("verify_client = \"required\"; "
	    "trust_domains = [ \"prod\", \"prod\" ];") }, CG_ERR_FORMAT,
	  { "credgate.conf:7: routes.[0].tls.trust_domains.[1]: trust domain \"prod\" named twice" } },
	{ "tls: trust_domains with client_ca",
	  { TD3(TD_PROD), TLS_SVID("verify_client = \"required\"; client_ca = \"/ca\"; "
	    "trust_domains = \"prod\";") }, CG_ERR_FORMAT,
	  { "credgate.conf:7: routes.[0].tls.trust_domains: cannot go with client_ca: a client "
	    "certificate is verified against the one or the other" } },
	{ "tls: trust_domains without verify_client",
	  { TD3(TD_PROD), TLS_SVID("trust_domains = \"prod\";") }, CG_ERR_FORMAT,
	  { "credgate.conf:7: routes.[0].tls.trust_domains: requires verify_client \"optional\" "
	    "or \"required\": no client certificate is asked for" } },
	{ "tls: trust_domains without cert",
	  { TD3(TD_PROD), L6("tls = { verify_client = \"required\"; trust_domains = \"prod\"; };") },
	  CG_ERR_FORMAT,
	  { "credgate.conf:7: routes.[0].tls.trust_domains: requires cert and key: the listener "
	    "serves TLS only with both" } },
	{ "tls: an empty trust_domains is none",
	  { TLS_SVID("verify_client = \"required\"; trust_domains = [ ];") }, CG_ERR_FORMAT,
	  { "credgate.conf:6: routes.[0].tls.verify_client: \"required\" requires client_ca" } },
	{ "no issuer, but trust domains: no warning",
	  { E(2, "issuers = ( );"), TD3(TD_PROD),
	    TLS_SVID("verify_client = \"required\"; trust_domains = \"prod\";"),
	    E(10, "\tallow = ( { name = \"r\"; trust_domain = \"prod.example.org\";\n"
	    "\t\tspiffe_id = \"spiffe://prod.example.org/ns/ci/*\"; } );") }, 0,
	  { NULL } },
	{ "warning: a rule on a whole trust domain",
	  { E(2, "issuers = ( );"), TD3(TD_PROD),
	    TLS_SVID("verify_client = \"required\"; trust_domains = \"prod\";"),
	    E(10, "\tallow = ( { name = \"r\"; trust_domain = \"prod.example.org\";\n"
	    "\t\tspiffe_id = [ \"spiffe://prod.example.org/*\", \"spiffe://prod.example.org/**\" ]; "
	    "} );") }, 0,
	  { "credgate.conf:11: routes.[0].allow.[0]: warning: allow rule \"r\" accepts every "
	    "workload of the trust domains it names: name the workloads with spiffe_id, such as "
	    "\"spiffe://<trust domain>/ns/<namespace>/*\"" } },
	{ "warning: no issuer and no trust domain", { E(2, "issuers = ( );"),
	    E(10, "\tallow = ( { name = \"r\"; claims = ( { claim = \"sub\"; value = \"x\"; } ); } );") },
	  0, { "credgate.conf:2: issuers: warning: none configured: no caller can be verified" } },

	/* spiffe_id and trust_domain conditions */
	{ "spiffe_id: a pattern that matches nothing",
	  { TD3(TD_PROD), TLS_SVID("verify_client = \"required\"; trust_domains = \"prod\";"),
	    E(10, "\tallow = ( { name = \"r\"; spiffe_id = \"spiffe://prod.example.org/a/\"; } );") },
	  CG_ERR_FORMAT,
	  { "credgate.conf:11: routes.[0].allow.[0].spiffe_id: \"spiffe://prod.example.org/a/\": "
	    "SPIFFE ID pattern ends with '/' and matches no SPIFFE ID" } },
	{ "spiffe_id: a glob in the trust domain, in a list",
	  { E(10, "\tallow = ( { name = \"r\"; issuer = \"ci\"; } );\n"
	    "\tdeny = ( { name = \"d\"; spiffe_id = [ \"spiffe://a.org/x\", \"spiffe://*.org/x\", "
	    "\"spiffe://A.org\" ]; } );") }, CG_ERR_FORMAT,
	  { "credgate.conf:11: routes.[0].deny.[0].spiffe_id.[1]: \"spiffe://*.org/x\": SPIFFE ID "
	    "pattern, byte 9: the trust domain is matched exactly, without '*', '?' or '\\'",
	    "credgate.conf:11: routes.[0].deny.[0].spiffe_id.[2]: \"spiffe://A.org\": SPIFFE ID "
	    "trust domain, byte 9: uppercase is not allowed" } },
	{ "spiffe_id: not a SPIFFE ID",
	  { E(10, "\tallow = ( { name = \"r\"; issuer = \"ci\"; spiffe_id = \"uri:spiffe://a.org/*\"; } );") },
	  CG_ERR_FORMAT,
	  { "credgate.conf:10: routes.[0].allow.[0].spiffe_id: \"uri:spiffe://a.org/*\": SPIFFE ID "
	    "pattern does not start with \"spiffe://\"" } },
	{ "trust_domain: a pattern is no trust domain",
	  { E(10, "\tallow = ( { name = \"r\"; issuer = \"ci\"; trust_domain = \"*.example.org\"; } );") },
	  CG_ERR_FORMAT,
	  { "credgate.conf:10: routes.[0].allow.[0].trust_domain: \"*.example.org\" is not a trust "
	    "domain as SPIFFE IDs carry it: SPIFFE ID trust domain, byte 0: byte outside the "
	    "allowed set" } },
	{ "warning: spiffe_id on a route that accepts no SVID",
	  { E(10, "\tallow = ( { name = \"r\"; issuer = \"ci\"; spiffe_id = \"spiffe://a.org/ns/*\"; } );") },
	  0,
	  { "credgate.conf:10: routes.[0].allow.[0].spiffe_id: warning: holds only for a verified "
	    "SPIFFE ID: the route's listener accepts no X.509-SVID (tls.trust_domains) and no "
	    "issuer has a trust_domain" } },
	{ "spiffe_id of a JWT-SVID issuer's trust domain",
	  { E(2, "issuers = ( { name = \"ci\"; issuer = \"https://ci.example\"; "
		"audiences = \"credgate\"; jwks_file = \"/etc/credgate/ci.jwks\"; },\n"
	    "{ name = \"spire\"; trust_domain = \"prod.example.org\"; audiences = \"credgate\"; "
	    "jwks_file = \"/etc/credgate/prod.jwks\"; } );"),
	    E(10, "\tallow = ( { name = \"r\"; issuer = [ \"ci\", \"spire\" ]; "
	    "spiffe_id = [ \"spiffe://prod.example.org/ns/*\", \"spiffe://a.org/x\" ]; } );") },
	  0,
	  { "credgate.conf:11: routes.[0].allow.[0].spiffe_id: warning: \"spiffe://a.org/x\": "
	    "trust domain \"a.org\" is neither one the route's tls.trust_domains accept nor an "
	    "issuer's trust_domain: it holds for no SPIFFE ID" } },
	{ "warning: a trust domain the route does not accept",
	  { TD3(TD_PROD), TLS_SVID("verify_client = \"required\"; trust_domains = \"prod\";"),
	    E(10, "\tallow = ( { name = \"r\"; spiffe_id = [ \"spiffe://prod.example.org/ns/*\",\n"
	    "\t\t\"spiffe://staging.example.org/*\" ]; } );\n"
	    "\tdeny = ( { name = \"d\"; trust_domain = \"example.org\"; } );") }, 0,
	  { "credgate.conf:11: routes.[0].allow.[0].spiffe_id: warning: "
	    "\"spiffe://staging.example.org/*\": trust domain \"staging.example.org\" is neither "
	    "one the route's tls.trust_domains accept nor an issuer's trust_domain: it holds for "
	    "no SPIFFE ID",
	    "credgate.conf:13: routes.[0].deny.[0].trust_domain: warning: \"example.org\": trust "
	    "domain \"example.org\" is neither one the route's tls.trust_domains accept nor an "
	    "issuer's trust_domain: it holds for no SPIFFE ID" } },

	/* TLS towards the upstream */
	{ "upstream tls: enabled is a boolean", { L7("tls = { enabled = \"yes\"; };") },
	  CG_ERR_FORMAT,
	  { "credgate.conf:7: routes.[0].upstream.tls.enabled: expected a boolean (true or false), "
	    "not a string" } },
	{ "upstream tls: cert without key",
	  { L7("tls = { enabled = true; cert = \"/c\"; };") }, CG_ERR_FORMAT,
	  { "credgate.conf:7: routes.[0].upstream.tls.key: required when cert is set" } },
	{ "upstream tls: key without cert",
	  { L7("tls = { enabled = true; key = \"/k\"; };") }, CG_ERR_FORMAT,
	  { "credgate.conf:7: routes.[0].upstream.tls.cert: required when key is set" } },
	{ "upstream tls: bad server_name",
	  { L7("tls = { enabled = true; server_name = \"a b\"; };") }, CG_ERR_FORMAT,
	  { "credgate.conf:7: routes.[0].upstream.tls.server_name: \"a b\" is not a host name "
	    "or address" } },
	{ "upstream tls: host unfit as the default server_name",
	  { E(7, "\tupstream = { host = \"a/b\"; port = 8081; tls = { enabled = true; }; };") },
	  CG_ERR_FORMAT,
	  { "credgate.conf:7: routes.[0].upstream.host: \"a/b\" is not a host name or address, "
	    "as TLS needs; set upstream.tls.server_name" } },
	{ "upstream tls: any host with a server_name",
	  { E(7, "\tupstream = { host = \"a/b\"; port = 8081; "
	    "tls = { enabled = true; server_name = \"b.example\"; }; };") }, 0, { NULL } },
	{ "upstream tls: bad min_version",
	  { L7("tls = { enabled = true; min_version = \"SSLv3\"; };") }, CG_ERR_FORMAT,
	  { "credgate.conf:7: routes.[0].upstream.tls.min_version: \"SSLv3\" is not one of "
	    "TLSv1.2, TLSv1.3" } },
	{ "upstream tls: ciphers that select nothing",
	  { L7("tls = { enabled = true; ciphers = \"eNULL:!eNULL\"; };") }, CG_ERR_FORMAT,
	  { "credgate.conf:7: routes.[0].upstream.tls.ciphers: \"eNULL:!eNULL\" selects no cipher" } },
	{ "upstream tls: unknown cipher suites",
	  { L7("tls = { enabled = true; ciphersuites = \"x\"; };") }, CG_ERR_FORMAT,
	  { "credgate.conf:7: routes.[0].upstream.tls.ciphersuites: \"x\" names no TLS 1.3 "
	    "cipher suite" } },
	{ "upstream tls: curves is a listener setting",
	  { L7("tls = { enabled = true; curves = \"X25519\"; };") }, CG_ERR_FORMAT,
	  { "credgate.conf:7: routes.[0].upstream.tls.curves: unknown setting" } },
	{ "upstream tls: every setting",
	  { L7("tls = { enabled = true; ca = \"/ca\"; verify = true; server_name = \"::1\"; "
	    "cert = \"/c\"; key = \"/k\"; min_version = \"TLSv1.3\"; ciphers = \"ECDHE+AESGCM\"; "
	    "ciphersuites = \"TLS_AES_128_GCM_SHA256\"; };") }, 0, { NULL } },
	{ "warning: upstream verification off",
	  { L7("tls = { enabled = true; verify = false; };") }, 0,
	  { "credgate.conf:7: routes.[0].upstream.tls.verify: warning: upstream certificate "
	    "verification is off" } },
	{ "warning: upstream tls settings while disabled",
	  { L7("tls = { ca = \"/ca\"; verify = false; server_name = \"x\"; };") }, 0,
	  { "credgate.conf:7: routes.[0].upstream.tls.ca: warning: ignored when enabled is false",
	    "credgate.conf:7: routes.[0].upstream.tls.verify: warning: ignored when enabled is false",
	    "credgate.conf:7: routes.[0].upstream.tls.server_name: warning: ignored when enabled "
	    "is false" } },
	{ "upstream tls: enabled = false alone", { L7("tls = { enabled = false; };") }, 0,
	  { NULL } },
};

static void
test_messages(void **state)
{
	size_t i, k, nwant, nwarn;

	(void)state;
	for (i = 0; i < CG_ARRAY_LEN(msg_cases); i++) {
		const struct msg_case *c = &msg_cases[i];
		struct cg_errors errs = { 0 };
		struct cg_config *cfg = NULL;
		char *text = base_with(c->edits);
		int r;

		print_message("case: %s\n", c->what);
		r = cg_config_load_string(text, "credgate.conf", 0, &cfg, &errs);
		for (nwant = 0, nwarn = 0; nwant < CG_ARRAY_LEN(c->want) && c->want[nwant]; nwant++)
			if (strstr(c->want[nwant], ": warning: ") != NULL)
				nwarn++;
		if (r != c->rc || errs.n != nwant)
			print_errors(&errs);
		assert_int_equal(r, c->rc);
		assert_int_equal(errs.n, nwant);
		assert_int_equal(errs.warnings, nwarn);
		for (k = 0; k < nwant; k++)
			assert_string_equal(errs.msgs[k], c->want[k]);
		if (c->rc == 0)
			assert_non_null(cfg);
		else
			assert_null(cfg);
		cg_config_free(cfg);
		cg_errors_clear(&errs);
		assert_int_equal(errs.n, 0);
		free(text);
	}
}

static void
test_missing_file(void **state)
{
	struct cg_errors errs = { 0 };
	struct cg_config *cfg = (struct cg_config *)&errs;

	(void)state;
	assert_int_equal(cg_config_load(TEST_SRCDIR "/no-such.conf", 0, &cfg, &errs), CG_ERR_IO);
	assert_null(cfg);
	assert_int_equal(errs.n, 1);
	assert_string_equal(errs.msgs[0], TEST_SRCDIR "/no-such.conf: No such file or directory");
	cg_errors_clear(&errs);
}

/* A FIFO or a folder named as the configuration: refused at once. */
static void
test_not_a_file(void **state)
{
	struct cg_errors errs = { 0 };
	struct cg_config *cfg = (struct cg_config *)&errs;
	char dir[] = "/tmp/cg-conf-XXXXXX", fifo[64], want[128];

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	assert_int_equal(cg_config_load(fifo, 0, &cfg, &errs), CG_ERR_IO);
	assert_null(cfg);
	assert_int_equal(errs.n, 1);
	snprintf(want, sizeof(want), "%s: not a regular file", fifo);
	assert_string_equal(errs.msgs[0], want);
	cg_errors_clear(&errs);
	assert_int_equal(cg_config_load(dir, 0, &cfg, &errs), CG_ERR_IO);
	snprintf(want, sizeof(want), "%s: not a regular file", dir);
	assert_string_equal(errs.msgs[0], want);
	cg_errors_clear(&errs);
	unlink(fifo);
	rmdir(dir);
}

/* ------------------------------------------------------------------ */
/* What the new process and TLS settings load to                       */
/* ------------------------------------------------------------------ */
static void round_trip(const char *text, const char *what);

static void
test_admin_listen(void **state)
{
	static const struct {
		const char *listen;
		const char *host;
		int port;
		const char *dumped;
	} cases[] = {
		{ "9180", "127.0.0.1", 9180, "127.0.0.1:9180" },
		{ ":9180", "127.0.0.1", 9180, "127.0.0.1:9180" },
		{ "1", "127.0.0.1", 1, "127.0.0.1:1" },
		{ "65535", "127.0.0.1", 65535, "127.0.0.1:65535" },
		{ "[::1]:9180", "::1", 9180, "[::1]:9180" },
		{ "0.0.0.0:9180", "0.0.0.0", 9180, "0.0.0.0:9180" },
		{ "admin.example:443", "admin.example", 443, "admin.example:443" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < CG_ARRAY_LEN(cases); i++) {
		char line[256], want[256], *text, *d;
		struct edit edits[2] = { { 1, line }, { 0, NULL } };
		struct cg_config *cfg;

		print_message("admin.listen = %s\n", cases[i].listen);
		snprintf(line, sizeof(line), "credgate = { audit = { stdout = true; }; "
		    "admin = { listen = \"%s\"; }; };", cases[i].listen);
		text = base_with(edits);
		cfg = load_ok(text);
		assert_string_equal(cfg->admin_listen_host, cases[i].host);
		assert_int_equal(cfg->admin_listen_port, cases[i].port);
		d = dump_text(cfg);
		snprintf(want, sizeof(want), "\t\tlisten = \"%s\";\n", cases[i].dumped);
		assert_non_null(strstr(d, want));
		round_trip(text, cases[i].listen);
		cg_config_free(cfg);
		free(d);
		free(text);
	}
}

/* workers = 0 stays 0 in the dump; the struct holds the core count. */
static void
test_workers(void **state)
{
	static const struct edit zero[] = {
		E(1, "credgate = { audit = { stdout = true; }; workers = 0; };"), { 0, NULL } };
	static const struct edit two[] = {
		E(1, "credgate = { audit = { stdout = true; }; workers = 2; };"), { 0, NULL } };
	char *text = base_with(zero), *d;
	struct cg_config *cfg = load_ok(text);
	long cores = sysconf(_SC_NPROCESSORS_ONLN);

	(void)state;
	assert_int_equal(cfg->workers_conf, 0);
	assert_int_equal(cfg->workers, cores < 1 ? 1 : cores > 256 ? 256 : cores);
	d = dump_text(cfg);
	assert_non_null(strstr(d, "\tworkers = 0;\n"));
	free(d);
	cg_config_free(cfg);
	free(text);

	text = base_with(two);
	cfg = load_ok(text);
	assert_int_equal(cfg->workers_conf, 2);
	assert_int_equal(cfg->workers, 2);
	cg_config_free(cfg);
	free(text);
}

/* ------------------------------------------------------------------ */
/* With CG_CONFIG_LOAD_FILES: accounts and certificate files           */
/* ------------------------------------------------------------------ */
struct files_case {
	const char *what;
	const char *user, *group;	/* NULL: the test's own */
	/* names in the test folder; NULL: a good file */
	const char *cert, *key, *client_ca, *up_ca, *up_cert, *up_key;
	const char *want;		/* the one error, %s = the folder; NULL: loads */
};

static const struct files_case files_cases[] = {
	{ "every file good", NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL },
	{ "private keys readable by the group", NULL, NULL, NULL, "key-group.pem", NULL,
	  NULL, NULL, "key-group.pem", NULL },
	{ "no such user", "no-such-user-cg", NULL, NULL, NULL, NULL, NULL, NULL, NULL,
	  "credgate.conf:2: credgate.user: \"no-such-user-cg\": no such user" },
	{ "no such group", NULL, "no-such-group-cg", NULL, NULL, NULL, NULL, NULL, NULL,
	  "credgate.conf:2: credgate.group: \"no-such-group-cg\": no such group" },
	{ "missing cert", NULL, NULL, "missing.pem", NULL, NULL, NULL, NULL, NULL,
	  "credgate.conf:6: routes.[0].tls.cert: \"%s/missing.pem\": No such file or directory" },
	{ "cert is a folder", NULL, NULL, "sub", NULL, NULL, NULL, NULL, NULL,
	  "credgate.conf:6: routes.[0].tls.cert: \"%s/sub\": not a regular file" },
	{ "key readable by others", NULL, NULL, NULL, "key-world.pem", NULL, NULL, NULL, NULL,
	  "credgate.conf:7: routes.[0].tls.key: \"%s/key-world.pem\": mode 0644 lets others at "
	  "the private key; chmod o-rwx" },
	{ "client_ca writable by others", NULL, NULL, NULL, NULL, "ca-writable.pem", NULL, NULL,
	  NULL, "credgate.conf:8: routes.[0].tls.client_ca: \"%s/ca-writable.pem\": mode 0666 "
	  "lets others change it; chmod o-w" },
	{ "missing upstream ca", NULL, NULL, NULL, NULL, NULL, "missing.pem", NULL, NULL,
	  "credgate.conf:10: routes.[0].upstream.tls.ca: \"%s/missing.pem\": No such file or "
	  "directory" },
	{ "upstream cert is a folder", NULL, NULL, NULL, NULL, NULL, NULL, "sub", NULL,
	  "credgate.conf:11: routes.[0].upstream.tls.cert: \"%s/sub\": not a regular file" },
	{ "upstream key readable by others", NULL, NULL, NULL, NULL, NULL, NULL, NULL,
	  "key-world.pem", "credgate.conf:12: routes.[0].upstream.tls.key: "
	  "\"%s/key-world.pem\": mode 0644 lets others at the private key; chmod o-rwx" },
};

static void
make_file(const char *dir, const char *name, const char *text, mode_t mode)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_true(fputs(text, f) >= 0);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(path, mode), 0);
}

/* A self-signed CA certificate, as PEM (malloc'd). */
static char *
ca_pem(void)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *name = X509_get_subject_name(x);
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	BIO *bio = BIO_new(BIO_s_mem());
	char *data, *out;
	long n;

	assert_non_null(key);
	assert_int_equal(X509_set_version(x, X509_VERSION_3), 1);
	assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	    (const unsigned char *)"prod root", -1, -1, 0), 1);
	assert_int_equal(X509_set_issuer_name(x, name), 1);
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), 0));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 86400));
	assert_int_equal(X509_set_pubkey(x, key), 1);
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints, "critical,CA:TRUE");
	assert_non_null(ext);
	assert_int_equal(X509_add_ext(x, ext, -1), 1);
	X509_EXTENSION_free(ext);
	assert_true(X509_sign(x, key, EVP_sha256()) > 0);
	assert_int_equal(PEM_write_bio_X509(bio, x), 1);
	n = BIO_get_mem_data(bio, &data);
	out = strndup(data, (size_t)n);
	assert_non_null(out);
	BIO_free(bio);
	X509_free(x);
	EVP_PKEY_free(key);
	return out;
}

/*
 * With CG_CONFIG_LOAD_FILES each trust domain's bundle is read at load:
 * one that cannot be read, that is empty or no PEM bundle, or that others
 * may change, is an error naming the setting.
 */
static void
test_trust_bundles(void **state)
{
	static const struct {
		const char *file;
		const char *want;	/* NULL: loads; "%s" is the folder */
	} cases[] = {
		{ "prod.pem", NULL },
		{ "missing.pem", "credgate.conf:2: trust_domains.[0].x509_bundle_file: "
		  "\"%s/missing.pem\": No such file or directory" },
		{ "empty.pem", "credgate.conf:2: trust_domains.[0].x509_bundle_file: "
		  "%s/empty.pem: empty: a bundle holds PEM certificates" },
		{ "jwks.json", "credgate.conf:2: trust_domains.[0].x509_bundle_file: "
		  "%s/jwks.json: holds no PEM certificate" },
		{ "writable.pem", "credgate.conf:2: trust_domains.[0].x509_bundle_file: "
		  "\"%s/writable.pem\": mode 0666 lets others change it; chmod o-w" },
		{ "sub", "credgate.conf:2: trust_domains.[0].x509_bundle_file: "
		  "\"%s/sub\": not a regular file" },
	};
	static const char *const made[] = {
		"prod.pem", "empty.pem", "jwks.json", "writable.pem", "secrets.json",
	};
	const char *tmp = getenv("TMPDIR");
	char dir[512], path[600], want[1024], *pem = ca_pem(), *text;
	struct stat st;
	size_t i;

	(void)state;
	snprintf(dir, sizeof(dir), "%s/cg-bundles-XXXXXX", tmp != NULL ? tmp : P_tmpdir);
	assert_non_null(mkdtemp(dir));
	make_file(dir, "prod.pem", pem, 0644);
	make_file(dir, "empty.pem", "", 0644);
	make_file(dir, "jwks.json", "{ \"keys\": [] }\n", 0644);
	make_file(dir, "writable.pem", pem, 0666);
	make_file(dir, "secrets.json", "{ \"a/b\": { \"username\": \"u\", \"password\": \"p\" } }\n",
	    0600);
	snprintf(path, sizeof(path), "%s/sub", dir);
	assert_int_equal(mkdir(path, 0755), 0);

	for (i = 0; i < CG_ARRAY_LEN(cases); i++) {
		struct cg_errors errs = { 0 };
		struct cg_config *cfg = NULL;
		const char *at;
		int r;

		print_message("case: %s\n", cases[i].file);
		assert_true(asprintf(&text, "credgate = { audit = { stdout = true; }; };\n"
		    "trust_domains = ( { name = \"prod\"; trust_domain = \"prod.example.org\"; "
		    "x509_bundle_file = \"%s/%s\"; } );\n"
		    "issuers = ();\n"
		    "secrets = { file = \"%s/secrets.json\"; };\n"
		    "routes = ( { name = \"a\"; listen = \"127.0.0.1:8080\";\n"
		    "\tupstream = { host = \"h\"; port = 1; };\n"
		    "\tcredential = { path = \"a/b\"; }; owner = \"o\"; purpose = \"p\";\n"
		    "\tenvironment = \"e\"; expires = \"2099-01-01\"; } );\n", dir,
		    cases[i].file, dir) > 0);
		r = cg_config_load_string(text, "credgate.conf", CG_CONFIG_LOAD_FILES, &cfg, &errs);
		if (cases[i].want == NULL) {
			/* loaded; the one warning: no route takes its SVIDs */
			if (r != 0 || errs.n != 1)
				print_errors(&errs);
			assert_int_equal(r, 0);
			assert_int_equal(errs.warnings, 1);
			assert_non_null(cfg->trust_domains[0].bundle);
			assert_int_equal(cfg->trust_domains[0].bundle_certs, 1);
			snprintf(path, sizeof(path), "%s/%s", dir, cases[i].file);
			assert_int_equal(stat(path, &st), 0);
			assert_int_equal(cfg->trust_domains[0].bundle_st.st_ino, st.st_ino);
			assert_int_equal(cfg->trust_domains[0].bundle_st.st_size, st.st_size);
		} else {
			at = strstr(cases[i].want, "%s");
			snprintf(want, sizeof(want), "%.*s%s%s", (int)(at - cases[i].want),
			    cases[i].want, dir, at + 2);
			if (r != CG_ERR_FORMAT || errs.n != 1)
				print_errors(&errs);
			assert_int_equal(r, CG_ERR_FORMAT);
			assert_int_equal(errs.n, 1);
			assert_string_equal(errs.msgs[0], want);
		}
		cg_config_free(cfg);
		cg_errors_clear(&errs);
		free(text);
	}
	for (i = 0; i < CG_ARRAY_LEN(made); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, made[i]);
		assert_int_equal(unlink(path), 0);
	}
	snprintf(path, sizeof(path), "%s/sub", dir);
	assert_int_equal(rmdir(path), 0);
	assert_int_equal(rmdir(dir), 0);
	free(pem);
}

static void
test_load_files(void **state)
{
	static const char *const made[] = {
		"secrets.json", "cert.pem", "key.pem", "key-group.pem", "key-world.pem",
		"ca.pem", "ca-writable.pem",
	};
	const char *tmp = getenv("TMPDIR");
	char dir[512], path[600];
	struct passwd *pw = getpwuid(getuid());
	struct group *gr = getgrgid(getgid());
	char *user, *group;
	size_t i;

	(void)state;
	assert_non_null(pw);
	assert_non_null(gr);
	user = strdup(pw->pw_name);
	group = strdup(gr->gr_name);
	snprintf(dir, sizeof(dir), "%s/cg-config-XXXXXX", tmp != NULL ? tmp : P_tmpdir);
	assert_non_null(mkdtemp(dir));
	make_file(dir, "secrets.json", "{ \"a/b\": { \"username\": \"u\", \"password\": \"p\" } }\n",
	    0600);
	make_file(dir, "cert.pem", "certificate\n", 0644);
	make_file(dir, "key.pem", "key\n", 0600);
	make_file(dir, "key-group.pem", "key\n", 0640);
	make_file(dir, "key-world.pem", "key\n", 0644);
	make_file(dir, "ca.pem", "ca\n", 0644);
	make_file(dir, "ca-writable.pem", "ca\n", 0666);
	snprintf(path, sizeof(path), "%s/sub", dir);
	assert_int_equal(mkdir(path, 0755), 0);

	for (i = 0; i < CG_ARRAY_LEN(files_cases); i++) {
		const struct files_case *c = &files_cases[i];
		struct cg_errors errs = { 0 };
		struct cg_config *cfg = NULL;
		char *text = NULL, want[1024];
		size_t len = 0;
		FILE *f = open_memstream(&text, &len);
		int r;

		print_message("case: %s\n", c->what);
		assert_non_null(f);
		fprintf(f, "credgate = { audit = { stdout = true; };\n"
		    "\tuser = \"%s\"; group = \"%s\"; };\n"
		    "issuers = ();\n"
		    "secrets = { file = \"%s/secrets.json\"; };\n"
		    "routes = ( { name = \"a\"; listen = \"127.0.0.1:8080\";\n"
		    "\ttls = { cert = \"%s/%s\";\n"
		    "\t\tkey = \"%s/%s\";\n"
		    "\t\tclient_ca = \"%s/%s\"; verify_client = \"required\"; };\n"
		    "\tupstream = { host = \"h\"; port = 1; tls = { enabled = true;\n"
		    "\t\tca = \"%s/%s\";\n"
		    "\t\tcert = \"%s/%s\";\n"
		    "\t\tkey = \"%s/%s\"; }; };\n"
		    "\tcredential = { path = \"a/b\"; }; owner = \"o\"; purpose = \"p\";\n"
		    "\tenvironment = \"e\"; expires = \"2099-01-01\"; } );\n",
		    c->user != NULL ? c->user : user, c->group != NULL ? c->group : group, dir,
		    dir, c->cert != NULL ? c->cert : "cert.pem",
		    dir, c->key != NULL ? c->key : "key.pem",
		    dir, c->client_ca != NULL ? c->client_ca : "ca.pem",
		    dir, c->up_ca != NULL ? c->up_ca : "ca.pem",
		    dir, c->up_cert != NULL ? c->up_cert : "cert.pem",
		    dir, c->up_key != NULL ? c->up_key : "key.pem");
		assert_int_equal(fclose(f), 0);

		r = cg_config_load_string(text, "credgate.conf", CG_CONFIG_LOAD_FILES, &cfg, &errs);
		if (c->want == NULL) {
			/* the one warning: this configuration trusts no issuer */
			if (r != 0 || errs.n != 1)
				print_errors(&errs);
			assert_int_equal(r, 0);
			assert_int_equal(errs.n, 1);
			assert_int_equal(errs.warnings, 1);
			assert_string_equal(errs.msgs[0], "credgate.conf:3: issuers: warning: "
			    "none configured: no caller can be verified");
			assert_true(cfg->routes[0].tls.enabled);
		} else {
			const char *at = strstr(c->want, "%s");

			if (at != NULL)
				snprintf(want, sizeof(want), "%.*s%s%s", (int)(at - c->want), c->want,
				    dir, at + 2);
			else
				snprintf(want, sizeof(want), "%s", c->want);
			if (r != CG_ERR_FORMAT || errs.n != 1)
				print_errors(&errs);
			assert_int_equal(r, CG_ERR_FORMAT);
			assert_int_equal(errs.n, 1);
			assert_string_equal(errs.msgs[0], want);
		}
		cg_config_free(cfg);
		cg_errors_clear(&errs);
		free(text);
	}

	for (i = 0; i < CG_ARRAY_LEN(made); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, made[i]);
		assert_int_equal(unlink(path), 0);
	}
	snprintf(path, sizeof(path), "%s/sub", dir);
	assert_int_equal(rmdir(path), 0);
	assert_int_equal(rmdir(dir), 0);
	free(user);
	free(group);
}

/* ------------------------------------------------------------------ */
/* With CG_CONFIG_CHECK: secrets, fields, the audit file; file owners   */
/* ------------------------------------------------------------------ */
static const char check_secrets[] =
	"{ \"a/b\": { \"username\": \"u\", \"password\": \"CANARY-pw\", \"token\": \"CANARY-t\",\n"
	"           \"key\": \"CANARY-k\", \"version\": \"2\" },\n"
	"  \"only/user\": { \"username\": \"u\" } }\n";

/*
 * Loads a configuration whose line 1 is the credgate group (audit file,
 * then global), line 3 the secrets file, line 6 the route's credential
 * group (cred, which may span lines) and lines 8 on a listener TLS group
 * (tls; "" for none).  Returns the load's result; errs is filled.
 */
static int
check_load(const char *dir, const char *audit, const char *global, const char *cred,
    const char *tls, unsigned flags, struct cg_errors *errs)
{
	struct cg_config *cfg = NULL;
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	int r;

	assert_non_null(f);
	fprintf(f, "credgate = { audit = { file = \"%s\"; }; %s };\n"
	    "issuers = ();\n"
	    "secrets = { file = \"%s/secrets.json\"; };\n"
	    "routes = ( { name = \"a\"; listen = \"127.0.0.1:8080\";\n"
	    "\tupstream = { host = \"h\"; port = 1; };\n"
	    "\tcredential = { %s };\n"
	    "\towner = \"o\"; purpose = \"p\"; environment = \"e\"; expires = \"2099-01-01\";\n"
	    "%s} );\n", audit, global, dir, cred, tls);
	assert_int_equal(fclose(f), 0);
	r = cg_config_load_string(text, "credgate.conf", flags, &cfg, errs);
	assert_true((r == 0) == (cfg != NULL));
	cg_config_free(cfg);
	free(text);
	return r;
}

/* want with each "%s" replaced by dir; caller frees. */
static char *
with_dir(const char *want, const char *dir)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);
	const char *p;

	assert_non_null(f);
	for (p = want; *p != '\0'; p++) {
		if (p[0] == '%' && p[1] == 's') {
			fputs(dir, f);
			p++;
		} else
			fputc(*p, f);
	}
	assert_int_equal(fclose(f), 0);
	return out;
}

/* The errors of a load, each with "%s" standing for dir; NULL ends. */
static void
assert_errors(const struct cg_errors *errs, const char *dir, const char *const *want)
{
	size_t n, i;

	for (n = 0; want[n] != NULL; n++)
		;
	if (errs->n != n)
		print_errors(errs);
	assert_int_equal(errs->n, n);
	for (i = 0; i < n; i++) {
		char *w = with_dir(want[i], dir);

		assert_string_equal(errs->msgs[i], w);
		assert_null(strstr(errs->msgs[i], "CANARY"));
		free(w);
	}
}

struct check_case {
	const char *what;
	const char *cred;		/* inside routes.[0].credential */
	const char *want[4];		/* every error; none: loads */
};

static const struct check_case check_cases[] = {
	{ "basic: all there", "path = \"a/b\";", { NULL } },
	{ "bearer: all there", "path = \"a/b\"; inject = \"bearer\";", { NULL } },
	{ "header: all there",
	  "path = \"a/b\"; inject = \"header\"; header = \"X-Key\"; template = \"K ${key}${key}\";",
	  { NULL } },
	{ "no such secret", "path = \"a/c\";",
	  { "credgate.conf:6: routes.[0].credential.path: route \"a\": no secret \"a/c\" in "
	    "\"%s/secrets.json\"" } },
	{ "a secret path is not a prefix", "path = \"a\";",
	  { "credgate.conf:6: routes.[0].credential.path: route \"a\": no secret \"a\" in "
	    "\"%s/secrets.json\"" } },
	{ "basic: the default password field", "path = \"only/user\";",
	  { "credgate.conf:6: routes.[0].credential.password_field: route \"a\": secret "
	    "\"only/user\" has no field \"password\"" } },
	{ "basic: fields named in the file", "path = \"a/b\";\n"
	  "\t\tusername_field = \"login\"; password_field = \"pass\"; ",
	  { "credgate.conf:7: routes.[0].credential.username_field: route \"a\": secret \"a/b\" "
	    "has no field \"login\"",
	    "credgate.conf:7: routes.[0].credential.password_field: route \"a\": secret \"a/b\" "
	    "has no field \"pass\"" } },
	{ "basic: version is not a field", "path = \"a/b\"; password_field = \"version\";",
	  { "credgate.conf:6: routes.[0].credential.password_field: route \"a\": secret \"a/b\" "
	    "has no field \"version\"" } },
	{ "bearer: the default field", "path = \"only/user\"; inject = \"bearer\";",
	  { "credgate.conf:6: routes.[0].credential.field: route \"a\": secret \"only/user\" "
	    "has no field \"token\"" } },
	{ "query: a field named in the file",
	  "path = \"a/b\"; inject = \"query\"; query_param = \"k\";\n\t\tfield = \"apikey\";",
	  { "credgate.conf:7: routes.[0].credential.field: route \"a\": secret \"a/b\" has no "
	    "field \"apikey\"" } },
	{ "header: every reference, each once",
	  "path = \"a/b\"; inject = \"header\"; header = \"X-Key\";\n"
	  "\t\ttemplate = \"${key}:${nope}/${nope}${user}$x\";",
	  { "credgate.conf:7: routes.[0].credential.template: route \"a\": secret \"a/b\" has no "
	    "field \"nope\" (the template's ${nope})",
	    "credgate.conf:7: routes.[0].credential.template: route \"a\": secret \"a/b\" has no "
	    "field \"user\" (the template's ${user})" } },
};

static void
test_check(void **state)
{
	const char *tmp = getenv("TMPDIR");
	char dir[512], audit[600], path[700], *text;
	struct cg_errors errs = { 0 };
	struct stat st;
	size_t i;
	int r;

	(void)state;
	snprintf(dir, sizeof(dir), "%s/cg-check-XXXXXX", tmp != NULL ? tmp : P_tmpdir);
	assert_non_null(mkdtemp(dir));
	make_file(dir, "secrets.json", check_secrets, 0600);
	make_file(dir, "audit.log", "{\"earlier\":1}\n", 0640);
	snprintf(audit, sizeof(audit), "%s/audit.log", dir);

	for (i = 0; i < CG_ARRAY_LEN(check_cases); i++) {
		const struct check_case *c = &check_cases[i];

		print_message("case: %s\n", c->what);
		r = check_load(dir, audit, "", c->cred, "",
		    CG_CONFIG_LOAD_FILES | CG_CONFIG_CHECK, &errs);
		assert_int_equal(r, c->want[0] != NULL ? CG_ERR_FORMAT : 0);
		if (r == 0) {
			/* the one warning: this configuration trusts no issuer */
			assert_int_equal(errs.n, 1);
			assert_int_equal(errs.warnings, 1);
		} else
			assert_errors(&errs, dir, c->want);
		cg_errors_clear(&errs);

		/* at start and on reload a secret may come later */
		r = check_load(dir, audit, "", c->cred, "", CG_CONFIG_LOAD_FILES, &errs);
		if (r != 0)
			print_errors(&errs);
		assert_int_equal(r, 0);
		cg_errors_clear(&errs);
	}

	/* The audit file: appendable, or creatable; nothing is written. */
	{
		static const struct {
			const char *file;	/* in dir */
			const char *want;	/* the one error; NULL: fine */
		} audits[] = {
			{ "audit.log", NULL },
			{ "fresh.log", NULL },
			{ "sub", "credgate.conf:1: credgate.audit.file: \"%s/sub\" cannot be opened for "
			  "appending: Is a directory" },
			{ "link.log", "credgate.conf:1: credgate.audit.file: \"%s/link.log\" cannot be "
			  "opened for appending: Too many levels of symbolic links (credgate does not "
			  "follow a symbolic link here)" },
			{ "no/audit.log", "credgate.conf:1: credgate.audit.file: \"%s/no/audit.log\": "
			  "directory \"%s/no\": No such file or directory" },
			{ "audit.log/x", "credgate.conf:1: credgate.audit.file: \"%s/audit.log/x\" "
			  "cannot be opened for appending: Not a directory" },
			{ "ro/audit.log", "credgate.conf:1: credgate.audit.file: \"%s/ro/audit.log\" "
			  "does not exist and cannot be created in \"%s/ro\": Permission denied" },
		};

		snprintf(path, sizeof(path), "%s/sub", dir);
		assert_int_equal(mkdir(path, 0755), 0);
		snprintf(path, sizeof(path), "%s/ro", dir);
		assert_int_equal(mkdir(path, 0555), 0);
		snprintf(path, sizeof(path), "%s/link.log", dir);
		assert_int_equal(symlink(audit, path), 0);
		for (i = 0; i < CG_ARRAY_LEN(audits); i++) {
			const char *want[2] = { audits[i].want, NULL };
			char file[700];

			print_message("audit file: %s\n", audits[i].file);
			if (strncmp(audits[i].file, "ro/", 3) == 0 && geteuid() == 0)
				continue;	/* root may create files anywhere */
			snprintf(file, sizeof(file), "%s/%s", dir, audits[i].file);
			r = check_load(dir, file, "", "path = \"a/b\";",
			    "", CG_CONFIG_LOAD_FILES | CG_CONFIG_CHECK, &errs);
			if (want[0] == NULL) {
				if (r != 0)
					print_errors(&errs);
				assert_int_equal(r, 0);
			} else {
				assert_int_equal(r, CG_ERR_FORMAT);
				assert_errors(&errs, dir, want);
			}
			cg_errors_clear(&errs);
			/* and not checked at start, where credgate opens it */
			assert_int_equal(check_load(dir, file, "", "path = \"a/b\";", "",
			    CG_CONFIG_LOAD_FILES, &errs), 0);
			cg_errors_clear(&errs);
		}
		text = unit_read_file(audit, NULL);
		assert_string_equal(text, "{\"earlier\":1}\n");
		free(text);
		snprintf(path, sizeof(path), "%s/fresh.log", dir);
		assert_int_equal(lstat(path, &st), -1);
		assert_int_equal(errno, ENOENT);
		snprintf(path, sizeof(path), "%s/link.log", dir);
		assert_int_equal(unlink(path), 0);
		snprintf(path, sizeof(path), "%s/sub", dir);
		assert_int_equal(rmdir(path), 0);
		snprintf(path, sizeof(path), "%s/ro", dir);
		assert_int_equal(rmdir(path), 0);
	}

	snprintf(path, sizeof(path), "%s/secrets.json", dir);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(unlink(audit), 0);
	assert_int_equal(rmdir(dir), 0);
}

/* What libconfig reads through @include is checked as the file itself. */
static void
test_include(void **state)
{
	const char *tmp = getenv("TMPDIR");
	char dir[512], path[600], *inc, *text, *want;
	struct cg_errors errs = { 0 };
	struct cg_config *cfg = NULL;
	static const struct {
		const char *inc;	/* the included file */
		const char *want;	/* the one error; %s = the folder */
	} cases[] = {
		{ "\tlog_file = \"/log\"\n\t\t\"\\x00\";\n",
		  "%s/inc.conf:2: credgate.log_file: \\x00 (a NUL byte) in a string: no setting "
		  "may hold one" },
		{ "\tlog_level = \"warn\";\n",
		  "%s/inc.conf:1: credgate.log_level: duplicate setting: already set at "
		  "credgate.conf:2" },
	};
	size_t i;

	(void)state;
	snprintf(dir, sizeof(dir), "%s/cg-include-XXXXXX", tmp != NULL ? tmp : P_tmpdir);
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/inc.conf", dir);
	for (i = 0; i < CG_ARRAY_LEN(cases); i++) {
		make_file(dir, "inc.conf", cases[i].inc, 0644);
		assert_true(asprintf(&inc, "credgate = {\n\tlog_level = \"info\";\n"
		    "\t@include \"%s\"\n\taudit = { stdout = true; }; };", path) > 0);
		text = base_with((const struct edit[]){ { 1, inc }, { 0, NULL } });
		assert_int_equal(cg_config_load_string(text, "credgate.conf", 0, &cfg, &errs),
		    CG_ERR_FORMAT);
		want = with_dir(cases[i].want, dir);
		if (errs.n != 1)
			print_errors(&errs);
		assert_int_equal(errs.n, 1);
		assert_string_equal(errs.msgs[0], want);
		cg_errors_clear(&errs);
		free(want);
		free(text);
		free(inc);
	}
	assert_int_equal(unlink(path), 0);
	assert_int_equal(rmdir(dir), 0);
}

/*
 * The secrets file and private keys belong to root or the user credgate
 * runs as (credgate.user, else the effective uid).  As root, files are
 * given to another uid; otherwise credgate.user names root, so that the
 * test's own files have the wrong owner.
 */
static void
test_file_owners(void **state)
{
	const char *tmp = getenv("TMPDIR");
	bool root = geteuid() == 0;
	struct passwd *pw = getpwuid(65534);
	char dir[512], audit[600], path[700], tls[1400], user[128], want1[512], want2[512];
	const char *want[3] = { want1, want2, NULL };
	struct cg_errors errs = { 0 };
	uid_t other = root ? 65534 : geteuid();
	int r;

	(void)state;
	snprintf(dir, sizeof(dir), "%s/cg-owner-XXXXXX", tmp != NULL ? tmp : P_tmpdir);
	assert_non_null(mkdtemp(dir));
	make_file(dir, "secrets.json", check_secrets, 0600);
	make_file(dir, "cert.pem", "certificate\n", 0644);
	make_file(dir, "key.pem", "key\n", 0600);
	snprintf(audit, sizeof(audit), "%s/audit.log", dir);
	snprintf(tls, sizeof(tls), "\ttls = { cert = \"%s/cert.pem\";\n\t\tkey = \"%s/key.pem\"; };\n",
	    dir, dir);
	snprintf(user, sizeof(user), "%s", root ? "" : "user = \"root\";");
	if (root) {
		snprintf(path, sizeof(path), "%s/secrets.json", dir);
		assert_int_equal(chown(path, other, (gid_t)-1), 0);
		snprintf(path, sizeof(path), "%s/key.pem", dir);
		assert_int_equal(chown(path, other, (gid_t)-1), 0);
	}
	snprintf(want1, sizeof(want1), "credgate.conf:3: secrets.file: %%s/secrets.json: owned by "
	    "uid %u, not by root or the user credgate runs as (uid 0); chown it",
	    (unsigned)other);
	snprintf(want2, sizeof(want2), "credgate.conf:9: routes.[0].tls.key: \"%%s/key.pem\": "
	    "owned by uid %u, not by root or the user credgate runs as (uid 0); chown it",
	    (unsigned)other);

	/* at start (and on reload) as with -t */
	r = check_load(dir, audit, user, "path = \"a/b\";", tls, CG_CONFIG_LOAD_FILES, &errs);
	assert_int_equal(r, CG_ERR_FORMAT);
	assert_errors(&errs, dir, want);
	cg_errors_clear(&errs);
	r = check_load(dir, audit, user, "path = \"a/b\";", tls,
	    CG_CONFIG_LOAD_FILES | CG_CONFIG_CHECK, &errs);
	assert_int_equal(r, CG_ERR_FORMAT);
	assert_errors(&errs, dir, want);
	cg_errors_clear(&errs);

	/* The user credgate runs as may own them. */
	if (root && pw != NULL) {
		snprintf(user, sizeof(user), "user = \"%s\";", pw->pw_name);
		r = check_load(dir, audit, user, "path = \"a/b\";", tls,
		    CG_CONFIG_LOAD_FILES | CG_CONFIG_CHECK, &errs);
		if (r != 0)
			print_errors(&errs);
		assert_int_equal(r, 0);
		cg_errors_clear(&errs);
	} else if (!root) {
		r = check_load(dir, audit, "", "path = \"a/b\";", tls,
		    CG_CONFIG_LOAD_FILES | CG_CONFIG_CHECK, &errs);
		assert_int_equal(r, 0);
		cg_errors_clear(&errs);
	}
	/* Without the files nothing is looked at. */
	assert_int_equal(check_load(dir, audit, user, "path = \"a/b\";", tls, 0, &errs), 0);
	cg_errors_clear(&errs);

	snprintf(path, sizeof(path), "%s/secrets.json", dir);
	assert_int_equal(unlink(path), 0);
	snprintf(path, sizeof(path), "%s/cert.pem", dir);
	assert_int_equal(unlink(path), 0);
	snprintf(path, sizeof(path), "%s/key.pem", dir);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(rmdir(dir), 0);
}

/* ------------------------------------------------------------------ */
/* The example and the mapping into the structs                        */
/* ------------------------------------------------------------------ */
static void
test_example(void **state)
{
	struct cg_errors errs = { 0 };
	struct cg_config *cfg = NULL;
	const struct cg_route *rt;
	const struct policy_rule *rule;
	int r;

	(void)state;
	r = cg_config_load(EXAMPLE, 0, &cfg, &errs);
	if (r != 0 || errs.n != 0)
		print_errors(&errs);
	assert_int_equal(r, 0);
	assert_int_equal(errs.n, 0);
	assert_string_equal(cfg->file, EXAMPLE);

	assert_int_equal(cfg->log_level, CG_LOG_INFO);
	assert_int_equal(cfg->secure_memory, CG_SECMEM_REQUIRED);
	assert_string_equal(cfg->audit_file, "/var/log/credgate/audit.log");
	assert_false(cfg->audit_stdout);
	assert_int_equal(cfg->upstream_connect_timeout_ms, 5000);
	assert_string_equal(cfg->secrets_backend, "file");
	assert_string_equal(cfg->secrets_file, "/etc/credgate/secrets.json");
	assert_int_equal(cfg->secret_cache_ttl_ms, 300000);

	assert_int_equal(cfg->nissuers, 1);
	assert_string_equal(cfg->issuers[0]->name, "github-actions");
	assert_string_equal(cfg->issuers[0]->iss, "https://token.actions.githubusercontent.com");
	assert_int_equal(cfg->issuers[0]->naudiences, 1);
	assert_string_equal(cfg->issuers[0]->audiences[0], "credgate");
	assert_int_equal(cfg->issuers[0]->algs, JWT_RS256);
	assert_int_equal(cfg->issuers[0]->max_lifetime_s, 3600);
	assert_int_equal(cfg->issuers[0]->clock_skew_s, 60);
	assert_null(cfg->issuers[0]->ring);	/* no CG_CONFIG_LOAD_FILES */
	assert_int_equal(cfg->issuer_ext[0].naudit_claims, 4);
	assert_string_equal(cfg->issuer_ext[0].audit_claims[3], "run_id");

	assert_int_equal(cfg->nroutes, 1);
	assert_null(cg_config_route(cfg, "nope"));
	rt = cg_config_route(cfg, "mainframe");
	assert_non_null(rt);
	assert_string_equal(rt->policy.name, "mainframe");
	assert_string_equal(rt->listen_host, "127.0.0.1");
	assert_int_equal(rt->listen_port, 8080);
	assert_string_equal(rt->upstream_host, "127.0.0.1");
	assert_int_equal(rt->upstream_port, 8081);
	assert_string_equal(rt->secret_path, "mainframe/batch");
	assert_int_equal(HTTP_CFG(rt)->kind, INJ_HTTP_BASIC);
	assert_string_equal(HTTP_CFG(rt)->username_field, "username");
	assert_null(HTTP_CFG(rt)->header);
	assert_int_equal(rt->policy.mode, POLICY_ENFORCE);
	assert_int_equal(rt->policy.expires, 1814399999);	/* 2027-06-30T23:59:59Z */
	assert_string_equal(rt->expires_text, "2027-06-30");
	assert_int_equal(rt->max_body, 10485760);
	assert_int_equal(rt->audit_failure, CG_AUDIT_FAIL_DENY);
	assert_int_equal(rt->line, 88);
	assert_false(rt->tls.enabled);
	assert_false(rt->upstream_tls.enabled);
	assert_null(cfg->admin_listen_host);
	assert_int_equal(cfg->workers_conf, 0);

	assert_int_equal(rt->policy.nallow, 2);
	rule = &rt->policy.allow[0];
	assert_string_equal(rule->name, "ci-main");
	assert_int_equal(rule->nconds, 6);
	assert_int_equal(rule->conds[0].kind, POLICY_COND_ISSUER);
	assert_string_equal(rule->conds[0].values[0], "github-actions");
	assert_int_equal(rule->conds[1].kind, POLICY_COND_AUDIENCE);
	assert_int_equal(rule->conds[2].kind, POLICY_COND_CLAIM);
	assert_string_equal(rule->conds[2].claim, "repository");
	assert_int_equal(rule->conds[3].kind, POLICY_COND_CLAIM);
	assert_string_equal(rule->conds[3].claim, "ref");
	assert_int_equal(rule->conds[3].nvalues, 2);
	assert_string_equal(rule->conds[3].values[1], "refs/tags/v*");
	/* methods and paths are conditions on HTTP's attributes of those names */
	assert_ptr_equal(rt->proto, inj_proto_find("http"));
	assert_int_equal(rule->conds[4].kind, POLICY_COND_ATTR);
	assert_string_equal(rule->conds[4].attr, "method");
	assert_int_equal(rule->conds[4].attr_ref, INJ_HTTP_ATTR_METHOD + 1);
	assert_int_equal(rule->conds[4].nvalues, 2);
	assert_int_equal(rule->conds[5].kind, POLICY_COND_ATTR);
	assert_string_equal(rule->conds[5].attr, "path");
	assert_int_equal(rule->conds[5].attr_ref, INJ_HTTP_ATTR_PATH + 1);
	assert_int_equal(rt->policy.ndeny, 1);
	assert_string_equal(rt->policy.deny[0].name, "no-delete");
	assert_int_equal(rt->policy.deny[0].nconds, 1);
	assert_int_equal(rt->policy.deny[0].conds[0].kind, POLICY_COND_ATTR);
	assert_string_equal(rt->policy.deny[0].conds[0].attr, "method");
	assert_string_equal(rt->policy.deny[0].conds[0].values[0], "DELETE");

	cg_config_free(cfg);
	cg_config_free(NULL);
	cg_errors_clear(&errs);
}

/* examples/postgres.conf: a PostgreSQL route with TLS on both sides, its
 * defaults left commented, rules on claims and the login's attributes. */
static void
test_example_postgres(void **state)
{
	struct cg_errors errs = { 0 };
	struct cg_config *cfg = NULL;
	const struct cg_route *rt;
	const struct inj_pg_cfg *pc;
	const struct policy_rule *rule;
	size_t i;
	int r;

	(void)state;
	r = cg_config_load(PG_EXAMPLE, 0, &cfg, &errs);
	if (r != 0 || errs.n != 0)
		print_errors(&errs);
	assert_int_equal(r, 0);
	assert_int_equal(errs.n, 0);

	assert_int_equal(cfg->nissuers, 1);
	assert_string_equal(cfg->issuers[0]->name, "github-actions");
	assert_string_equal(cfg->secrets_file, "/etc/credgate/secrets.json");
	assert_int_equal(cfg->nroutes, 1);
	rt = cg_config_route(cfg, "ledger");
	assert_non_null(rt);
	assert_ptr_equal(rt->proto, inj_proto_find("postgres"));
	assert_string_equal(rt->upstream_host, "ledger-db.internal.example.com");
	assert_int_equal(rt->upstream_port, 5432);
	assert_string_equal(rt->secret_path, "ledger/ci");
	assert_true(rt->tls.enabled);
	assert_string_equal(rt->tls.key, "/etc/credgate/tls/db-gw.key");
	assert_true(rt->upstream_tls.enabled);
	assert_true(rt->upstream_tls.verify);
	assert_string_equal(rt->upstream_tls.ca, "/etc/credgate/tls/ledger-db-ca.pem");
	assert_string_equal(rt->upstream_tls.server_name, "ledger-db.internal.example.com");

	pc = PG_CFG(rt);
	assert_string_equal(pc->username_field, "username");
	assert_string_equal(pc->password_field, "password");
	assert_string_equal(pc->database, "ledger");
	assert_false(pc->allow_plaintext_token);
	/* left commented: the defaults */
	assert_string_equal(pc->reset_query, "DISCARD ALL");
	assert_int_equal(pc->nstartup_parameters, 6);
	assert_string_equal(pc->startup_parameters[0], "application_name");
	assert_false(pc->end_at_token_expiry);
	assert_int_equal(pc->idle_timeout_ms, 15 * 60 * 1000);
	assert_int_equal(pc->max_session_ms, 2 * 3600 * 1000);

	assert_int_equal(rt->policy.nallow, 2);
	for (i = 0; i < rt->policy.nallow; i++) {
		rule = &rt->policy.allow[i];
		assert_int_equal(rule->conds[rule->nconds - 1].kind, POLICY_COND_ATTR);
		assert_string_equal(rule->conds[rule->nconds - 1].attr, "database");
		assert_int_equal(rule->conds[rule->nconds - 1].attr_ref,
		    INJ_PG_ATTR_DATABASE + 1);
		assert_string_equal(rule->conds[rule->nconds - 1].values[0], "ledger");
	}
	assert_string_equal(rt->policy.allow[0].name, "ci-migrations");
	assert_int_equal(rt->policy.ndeny, 1);
	rule = &rt->policy.deny[0];
	assert_string_equal(rule->name, "no-admin-names");
	assert_int_equal(rule->nconds, 1);
	assert_int_equal(rule->conds[0].kind, POLICY_COND_ATTR);
	assert_int_equal(rule->conds[0].attr_ref, INJ_PG_ATTR_USER + 1);
	assert_int_equal(rule->conds[0].nvalues, 3);

	cg_config_free(cfg);
	cg_errors_clear(&errs);
}

/* A rule may name every condition at once, each kept in order. */
static void
test_rule_conditions(void **state)
{
	static const struct edit every[] = {
		E(10, "\tallow = ( { name = \"r\"; issuer = \"ci\"; audience = \"x\";\n"
		    "\t\tclaims = ( { claim = \"a\"; value = \"1\"; }, { claim = \"b\"; value = \"2\"; } );\n"
		    "\t\tmethods = \"GET\"; paths = \"/\"; client_subject = \"CN=x\";\n"
		    "\t\tattributes = ( { attribute = \"path\"; value = \"/*\"; } );\n"
		    "\t\tclient_san = \"dns:x\"; } );"), { 0, NULL } };
	static const enum policy_cond_kind want[] = {
		POLICY_COND_ISSUER, POLICY_COND_AUDIENCE, POLICY_COND_CLAIM, POLICY_COND_CLAIM,
		POLICY_COND_ATTR, POLICY_COND_ATTR, POLICY_COND_ATTR, POLICY_COND_CLIENT_SUBJECT,
		POLICY_COND_CLIENT_SAN,
	};
	char *text = base_with(every);
	struct cg_config *cfg = load_ok(text);
	const struct policy_rule *rule = &cfg->routes[0].policy.allow[0];
	size_t i;

	(void)state;
	assert_int_equal(rule->nconds, CG_ARRAY_LEN(want));
	for (i = 0; i < CG_ARRAY_LEN(want); i++) {
		assert_int_equal(rule->conds[i].kind, want[i]);
		assert_int_equal(rule->conds[i].nvalues, 1);
	}
	assert_string_equal(rule->conds[3].claim, "b");
	assert_string_equal(rule->conds[6].attr, "path");
	assert_int_equal(rule->conds[6].attr_ref, INJ_HTTP_ATTR_PATH + 1);
	assert_string_equal(rule->conds[6].values[0], "/*");
	assert_string_equal(rule->conds[8].values[0], "dns:x");
	round_trip(text, "every condition");
	cg_config_free(cfg);
	free(text);
}

/* ------------------------------------------------------------------ */
/* Defaults: every default in the table is what the struct gets        */
/* ------------------------------------------------------------------ */
static int64_t g_log_level(const struct cg_config *c) { return c->log_level; }
static int64_t g_secmem(const struct cg_config *c) { return c->secure_memory; }
static int64_t g_secmem_size(const struct cg_config *c) { return (int64_t)c->secure_memory_size; }
static int64_t g_stdout(const struct cg_config *c) { return c->audit_stdout; }
static int64_t g_req_line(const struct cg_config *c) { return c->max_request_line; }
static int64_t g_hdr_bytes(const struct cg_config *c) { return c->max_header_bytes; }
static int64_t g_hdr_count(const struct cg_config *c) { return c->max_header_count; }
static int64_t g_tok_bytes(const struct cg_config *c) { return c->max_token_bytes; }
static int64_t g_t_hdr(const struct cg_config *c) { return c->client_header_timeout_ms; }
static int64_t g_t_idle(const struct cg_config *c) { return c->client_idle_timeout_ms; }
static int64_t g_t_conn(const struct cg_config *c) { return c->upstream_connect_timeout_ms; }
static int64_t g_t_resp(const struct cg_config *c) { return c->upstream_response_timeout_ms; }
static int64_t g_algs(const struct cg_config *c) { return c->issuers[0]->algs; }
static int64_t g_lifetime(const struct cg_config *c) { return c->issuers[0]->max_lifetime_s * 1000; }
static int64_t g_skew(const struct cg_config *c) { return c->issuers[0]->clock_skew_s * 1000; }
static int64_t g_rmin(const struct cg_config *c) { return c->issuers[0]->refresh_min_ms; }
static int64_t g_rmax(const struct cg_config *c) { return c->issuers[0]->refresh_max_ms; }
static int64_t g_kage(const struct cg_config *c) { return c->issuers[0]->max_key_age_ms; }
static int64_t g_kid(const struct cg_config *c) { return c->issuers[0]->kid_refetch_ms; }
static int64_t g_ftmo(const struct cg_config *c) { return c->issuers[0]->fetch_timeout_ms; }
static int64_t g_svid_life(const struct cg_config *c)
{
	return c->trust_domains[0].max_svid_lifetime_s * 1000;
}
static int64_t g_cache_ttl(const struct cg_config *c) { return c->secret_cache_ttl_ms; }
static int64_t g_max_stale(const struct cg_config *c) { return c->secret_max_stale_ms; }
static int64_t g_neg_ttl(const struct cg_config *c) { return c->secret_negative_ttl_ms; }
static int64_t g_v_conn(const struct cg_config *c) { return c->vault.connect_timeout_ms; }
static int64_t g_v_req(const struct cg_config *c) { return c->vault.request_timeout_ms; }
static int64_t g_v_retries(const struct cg_config *c) { return c->vault.retries; }
static int64_t g_v_backoff(const struct cg_config *c) { return c->vault.backoff_ms; }
static int64_t g_v_backoff_max(const struct cg_config *c) { return c->vault.backoff_max_ms; }
static const char *s_v_method(const struct cg_config *c) { return c->vault.method; }
static const char *
l_v_kv1(const struct cg_config *c, size_t i)
{
	return i < c->vault.nkv1_mounts ? c->vault.kv1_mounts[i] : NULL;
}
static const char *
l_v_kv2(const struct cg_config *c, size_t i)
{
	return i < c->vault.nkv2_mounts ? c->vault.kv2_mounts[i] : NULL;
}
static const char *
l_v_db(const struct cg_config *c, size_t i)
{
	return i < c->vault.ndatabase_mounts ? c->vault.database_mounts[i] : NULL;
}
static int64_t g_per_session(const struct cg_config *c) { return c->routes[0].per_session; }
static int64_t g_inject(const struct cg_config *c) { return HTTP_CFG(&c->routes[0])->kind; }
static int64_t g_mode(const struct cg_config *c) { return c->routes[0].policy.mode; }
static int64_t g_max_body(const struct cg_config *c) { return (int64_t)c->routes[0].max_body; }
static int64_t g_audit_fail(const struct cg_config *c) { return c->routes[0].audit_failure; }
static const char *s_backend(const struct cg_config *c) { return c->secrets_backend; }
static const char *s_protocol(const struct cg_config *c) { return c->routes[0].protocol; }
static const char *s_user(const struct cg_config *c) { return HTTP_CFG(&c->routes[0])->username_field; }
static const char *s_pass(const struct cg_config *c) { return HTTP_CFG(&c->routes[0])->password_field; }
static const char *s_field(const struct cg_config *c) { return HTTP_CFG(&c->routes[0])->field; }
static int64_t g_workers(const struct cg_config *c) { return c->workers_conf; }
static int64_t g_max_conns(const struct cg_config *c) { return c->max_connections; }
static int64_t g_shutdown(const struct cg_config *c) { return c->shutdown_timeout_ms; }
static int64_t g_tcache(const struct cg_config *c) { return c->token_cache_size; }
static int64_t g_rt_conns(const struct cg_config *c) { return c->routes[0].max_connections; }
static int64_t g_pending(const struct cg_config *c) { return c->max_pending_per_client; }
static int64_t g_ka_reqs(const struct cg_config *c) { return c->routes[0].keepalive_requests; }
static int64_t g_ka_time(const struct cg_config *c) { return c->routes[0].keepalive_time_ms; }
static int64_t g_up_ka(const struct cg_config *c) { return c->routes[0].upstream_keepalive; }
static int64_t g_up_idle(const struct cg_config *c) { return c->routes[0].upstream_idle_ms; }
static int64_t g_verify_client(const struct cg_config *c) { return c->routes[0].tls.verify_client; }
static const char *s_tls_min(const struct cg_config *c) { return c->routes[0].tls.min_version; }
static const char *s_tls_ciphers(const struct cg_config *c) { return c->routes[0].tls.ciphers; }
static const char *s_tls_suites(const struct cg_config *c) { return c->routes[0].tls.ciphersuites; }
static const char *s_tls_curves(const struct cg_config *c) { return c->routes[0].tls.curves; }
static int64_t g_up_tls(const struct cg_config *c) { return c->routes[0].upstream_tls.enabled; }
static int64_t g_up_verify(const struct cg_config *c) { return c->routes[0].upstream_tls.verify; }
static int64_t g_up_verify_name(const struct cg_config *c)
{
	return c->routes[0].upstream_tls.verify_name;
}
static const char *s_up_min(const struct cg_config *c) { return c->routes[0].upstream_tls.min_version; }
static const char *s_up_ciphers(const struct cg_config *c) { return c->routes[0].upstream_tls.ciphers; }
static const char *s_up_suites(const struct cg_config *c)
{
	return c->routes[0].upstream_tls.ciphersuites;
}

/* test_defaults() loads the base with a PostgreSQL route second. */
#define PG1(c)	PG_CFG(&(c)->routes[1])
static const char *s_pg_user(const struct cg_config *c) { return PG1(c)->username_field; }
static const char *s_pg_pass(const struct cg_config *c) { return PG1(c)->password_field; }
static int64_t g_pg_plain(const struct cg_config *c) { return PG1(c)->allow_plaintext_token; }
static int64_t g_pg_cert(const struct cg_config *c) { return PG1(c)->certificate_login; }
static const char *s_pg_reset(const struct cg_config *c) { return PG1(c)->reset_query; }
static int64_t g_pg_idle(const struct cg_config *c) { return PG1(c)->idle_timeout_ms; }
static int64_t g_pg_max(const struct cg_config *c) { return PG1(c)->max_session_ms; }
static int64_t g_pg_expiry(const struct cg_config *c) { return PG1(c)->end_at_token_expiry; }
static const char *
l_pg_params(const struct cg_config *c, size_t i)
{
	return i < PG1(c)->nstartup_parameters ? PG1(c)->startup_parameters[i] : NULL;
}

static const struct def_check {
	const char *path;
	int64_t (*num)(const struct cg_config *);	/* INT, DURATION (ms), ENUM (index), BOOL */
	const char *(*str)(const struct cg_config *);	/* STRING, and ENUM by name */
	const struct inj_proto *proto;	/* the protocol of the row; NULL: none or http */
	const char *(*elem)(const struct cg_config *, size_t);	/* STRING_LIST; NULL:
							   algorithms */
} def_checks[] = {
	{ "credgate.log_level", g_log_level, NULL, NULL, NULL },
	{ "credgate.workers", g_workers, NULL, NULL, NULL },
	{ "credgate.max_connections", g_max_conns, NULL, NULL, NULL },
	{ "credgate.max_pending_per_client", g_pending, NULL, NULL, NULL },
	{ "credgate.shutdown_timeout", g_shutdown, NULL, NULL, NULL },
	{ "credgate.secure_memory", g_secmem, NULL, NULL, NULL },
	{ "credgate.secure_memory_size", g_secmem_size, NULL, NULL, NULL },
	{ "credgate.token_cache.size", g_tcache, NULL, NULL, NULL },
	{ "credgate.audit.stdout", g_stdout, NULL, NULL, NULL },
	{ "credgate.limits.request_line", g_req_line, NULL, NULL, NULL },
	{ "credgate.limits.header_bytes", g_hdr_bytes, NULL, NULL, NULL },
	{ "credgate.limits.header_count", g_hdr_count, NULL, NULL, NULL },
	{ "credgate.limits.token_bytes", g_tok_bytes, NULL, NULL, NULL },
	{ "credgate.timeouts.client_header", g_t_hdr, NULL, NULL, NULL },
	{ "credgate.timeouts.client_idle", g_t_idle, NULL, NULL, NULL },
	{ "credgate.timeouts.upstream_connect", g_t_conn, NULL, NULL, NULL },
	{ "credgate.timeouts.upstream_response", g_t_resp, NULL, NULL, NULL },
	{ "issuers.[].algorithms", g_algs, NULL, NULL, NULL },
	{ "issuers.[].max_lifetime", g_lifetime, NULL, NULL, NULL },
	{ "issuers.[].clock_skew", g_skew, NULL, NULL, NULL },
	{ "issuers.[].refresh_min", g_rmin, NULL, NULL, NULL },
	{ "issuers.[].refresh_max", g_rmax, NULL, NULL, NULL },
	{ "issuers.[].max_key_age", g_kage, NULL, NULL, NULL },
	{ "issuers.[].kid_refetch_interval", g_kid, NULL, NULL, NULL },
	{ "issuers.[].fetch_timeout", g_ftmo, NULL, NULL, NULL },
	{ "trust_domains.[].max_svid_lifetime", g_svid_life, NULL, NULL, NULL },
	{ "secrets.backend", NULL, s_backend, NULL, NULL },
	{ "secrets.cache_ttl", g_cache_ttl, NULL, NULL, NULL },
	{ "secrets.max_stale", g_max_stale, NULL, NULL, NULL },
	{ "secrets.negative_ttl", g_neg_ttl, NULL, NULL, NULL },
	{ "secrets.vault.connect_timeout", g_v_conn, NULL, NULL, NULL },
	{ "secrets.vault.request_timeout", g_v_req, NULL, NULL, NULL },
	{ "secrets.vault.retries", g_v_retries, NULL, NULL, NULL },
	{ "secrets.vault.backoff", g_v_backoff, NULL, NULL, NULL },
	{ "secrets.vault.backoff_max", g_v_backoff_max, NULL, NULL, NULL },
	{ "secrets.vault.auth.method", NULL, s_v_method, NULL, NULL },
	{ "secrets.vault.kv1_mounts", NULL, NULL, NULL, l_v_kv1 },
	{ "secrets.vault.kv2_mounts", NULL, NULL, NULL, l_v_kv2 },
	{ "secrets.vault.database_mounts", NULL, NULL, NULL, l_v_db },
	{ "routes.[].credential.per_session", g_per_session, NULL, NULL, NULL },
	{ "routes.[].protocol", NULL, s_protocol, NULL, NULL },
	{ "routes.[].max_connections", g_rt_conns, NULL, NULL, NULL },
	{ "routes.[].keepalive_requests", g_ka_reqs, NULL, NULL, NULL },
	{ "routes.[].keepalive_time", g_ka_time, NULL, NULL, NULL },
	{ "routes.[].upstream.keepalive", g_up_ka, NULL, NULL, NULL },
	{ "routes.[].upstream.idle_timeout", g_up_idle, NULL, NULL, NULL },
	{ "routes.[].tls.verify_client", g_verify_client, NULL, NULL, NULL },
	{ "routes.[].tls.min_version", NULL, s_tls_min, NULL, NULL },
	{ "routes.[].tls.ciphers", NULL, s_tls_ciphers, NULL, NULL },
	{ "routes.[].tls.ciphersuites", NULL, s_tls_suites, NULL, NULL },
	{ "routes.[].tls.curves", NULL, s_tls_curves, NULL, NULL },
	{ "routes.[].upstream.tls.enabled", g_up_tls, NULL, NULL, NULL },
	{ "routes.[].upstream.tls.verify", g_up_verify, NULL, NULL, NULL },
	{ "routes.[].upstream.tls.verify_name", g_up_verify_name, NULL, NULL, NULL },
	{ "routes.[].upstream.tls.min_version", NULL, s_up_min, NULL, NULL },
	{ "routes.[].upstream.tls.ciphers", NULL, s_up_ciphers, NULL, NULL },
	{ "routes.[].upstream.tls.ciphersuites", NULL, s_up_suites, NULL, NULL },
	{ "routes.[].credential.inject", g_inject, NULL, NULL, NULL },
	{ "routes.[].credential.username_field", NULL, s_user, NULL, NULL },
	{ "routes.[].credential.password_field", NULL, s_pass, NULL, NULL },
	{ "routes.[].credential.field", NULL, s_field, NULL, NULL },
	{ "routes.[].mode", g_mode, NULL, NULL, NULL },
	{ "routes.[].max_body", g_max_body, NULL, NULL, NULL },
	{ "routes.[].audit_failure", g_audit_fail, NULL, NULL, NULL },
	{ "routes.[].credential.username_field", NULL, s_pg_user, &inj_pg_proto, NULL },
	{ "routes.[].credential.password_field", NULL, s_pg_pass, &inj_pg_proto, NULL },
	{ "routes.[].postgres.allow_plaintext_token", g_pg_plain, NULL, &inj_pg_proto, NULL },
	{ "routes.[].postgres.certificate_login", g_pg_cert, NULL, &inj_pg_proto, NULL },
	{ "routes.[].postgres.reset_query", NULL, s_pg_reset, &inj_pg_proto, NULL },
	{ "routes.[].postgres.startup_parameters", NULL, NULL, &inj_pg_proto, l_pg_params },
	{ "routes.[].postgres.idle_timeout", g_pg_idle, NULL, &inj_pg_proto, NULL },
	{ "routes.[].postgres.max_session", g_pg_max, NULL, &inj_pg_proto, NULL },
	{ "routes.[].postgres.end_at_token_expiry", g_pg_expiry, NULL, &inj_pg_proto, NULL },
};

/* Which protocol declares the row at index i of the table: -1 for none. */
static int
row_proto(size_t i)
{
	int k;

	if (i < cg_nsettings)
		return -1;
	i -= cg_nsettings;
	for (k = 0; inj_protos[k] != NULL; k++) {
		if (i < inj_protos[k]->nsettings)
			return k;
		i -= inj_protos[k]->nsettings;
	}
	return -2;
}

/* The check of row i's default: its protocol's own, else the general one. */
static const struct def_check *
def_check_find(size_t i)
{
	const struct cg_setting *r = cg_setting_at(i);
	const struct inj_proto *rp = row_proto(i) >= 0 ? inj_protos[row_proto(i)] : NULL;
	size_t k;

	for (k = 0; k < CG_ARRAY_LEN(def_checks); k++)
		if (strcmp(def_checks[k].path, r->path) == 0 && def_checks[k].proto == rp)
			return &def_checks[k];
	for (k = 0; k < CG_ARRAY_LEN(def_checks); k++)
		if (strcmp(def_checks[k].path, r->path) == 0 && def_checks[k].proto == NULL &&
		    (rp == NULL || rp == &inj_http_proto))
			return &def_checks[k];
	return NULL;
}

/* The default of r parsed by libconfig itself, as "x = <def>;". */
static config_setting_t *
parse_default(config_t *lc, const struct cg_setting *r)
{
	char text[512];

	snprintf(text, sizeof(text), "x = %s;", r->def);
	config_init(lc);
	if (config_read_string(lc, text) != CONFIG_TRUE)
		fail_msg("%s: default %s does not parse", r->path, r->def);
	return config_lookup(lc, "x");
}

static int
choice_index(const char *choices, const char *s)
{
	size_t len = strlen(s);
	const char *p = choices;
	int i = 0;

	for (;;) {
		const char *bar = strchr(p, '|');
		size_t n = bar != NULL ? (size_t)(bar - p) : strlen(p);

		if (n == len && memcmp(p, s, n) == 0)
			return i;
		if (bar == NULL)
			return -1;
		p = bar + 1;
		i++;
	}
}

static void
test_defaults(void **state)
{
	static const struct edit no_globals[] = { E(1, ""),
	    E(3, "secrets = { file = \"/etc/credgate/secrets.json\"; };\n"
	    "trust_domains = ( { name = \"td\"; trust_domain = \"example.org\";\n"
	    "\tx509_bundle_file = \"/etc/credgate/td.pem\"; } );"), E(11, "}, {\n"
	    "\tname = \"db\"; listen = \"127.0.0.1:5432\"; protocol = \"postgres\";\n"
	    "\tupstream = { host = \"h\"; port = 1; }; credential = { path = \"x\"; };\n"
	    "\towner = \"o\"; purpose = \"p\"; environment = \"e\"; expires = \"2099-01-01\";\n"
	    "} );"), { 0, NULL } };
	char *text = base_with(no_globals);
	struct cg_config *cfg = load_ok(text);
	size_t i, checked = 0;
	const struct def_check *dc;
	long want_workers;

	(void)state;
	for (i = 0; i < cg_setting_count(); i++) {
		const struct cg_setting *r = cg_setting_at(i);
		config_setting_t *v;
		config_t lc;
		int64_t want = 0;

		if (r->def == NULL)
			continue;
		if ((dc = def_check_find(i)) == NULL)
			fail_msg("%s: default without a check in def_checks", r->path);
		v = parse_default(&lc, r);
		assert_non_null(v);
		print_message("default %s = %s\n", r->path, r->def);
		switch (r->type) {
		case CG_SET_INT:
			want = config_setting_get_int64(v);
			if (config_setting_type(v) == CONFIG_TYPE_INT)
				want = config_setting_get_int(v);
			assert_true(want >= r->min && want <= r->max);
			break;
		case CG_SET_BOOL:
			want = config_setting_get_bool(v);
			break;
		case CG_SET_DURATION:
			assert_int_equal(cg_duration_parse(config_setting_get_string(v), &want), 0);
			assert_true(want >= r->min && want <= r->max);
			break;
		case CG_SET_ENUM:
			want = choice_index(r->choices, config_setting_get_string(v));
			assert_true(want >= 0);
			break;
		case CG_SET_STRING:
			assert_non_null(dc->str);
			assert_string_equal(dc->str(cfg), config_setting_get_string(v));
			break;
		case CG_SET_STRING_LIST:
			if (dc->elem != NULL) {
				int e, n = config_setting_length(v);

				for (e = 0; e < n; e++)
					assert_string_equal(dc->elem(cfg, (size_t)e),
					    config_setting_get_string_elem(v, (unsigned)e));
				assert_null(dc->elem(cfg, (size_t)n));
				break;
			}
			for (int e = 0; e < config_setting_length(v); e++)
				want |= jwt_alg_parse(config_setting_get_string_elem(v, (unsigned)e));
			assert_int_equal(want, JWT_ALG_ALL);
			break;
		default:
			fail_msg("%s: a default on a group or list", r->path);
		}
		if (dc->num != NULL)
			assert_int_equal(dc->num(cfg), want);
		else if (r->type == CG_SET_ENUM)
			assert_string_equal(dc->str(cfg), config_setting_get_string(v));
		config_destroy(&lc);
		checked++;
	}
	assert_int_equal(checked, CG_ARRAY_LEN(def_checks));

	/* workers = 0 runs one worker per online core */
	want_workers = sysconf(_SC_NPROCESSORS_ONLN);
	if (want_workers < 1)
		want_workers = 1;
	if (want_workers > 256)
		want_workers = 256;
	assert_int_equal(cfg->workers, want_workers);

	/* settings without a default */
	assert_null(cfg->audit_file);
	assert_null(cfg->log_file);
	assert_null(cfg->user);
	assert_null(cfg->group);
	assert_null(cfg->admin_listen_host);
	assert_int_equal(cfg->admin_listen_port, 0);
	assert_false(cfg->routes[0].tls.enabled);
	assert_null(cfg->routes[0].tls.cert);
	assert_null(cfg->routes[0].tls.key);
	assert_null(cfg->routes[0].tls.client_ca);
	assert_null(cfg->routes[0].upstream_tls.ca);
	assert_null(cfg->routes[0].upstream_tls.server_name);	/* TLS is off */
	assert_null(cfg->routes[0].upstream_tls.cert);
	assert_null(cfg->routes[0].upstream_tls.key);
	assert_null(HTTP_CFG(&cfg->routes[0])->header);
	assert_null(HTTP_CFG(&cfg->routes[0])->value_template);
	assert_null(HTTP_CFG(&cfg->routes[0])->query_param);
	assert_int_equal(cfg->issuer_ext[0].naudit_claims, 0);
	cg_config_free(cfg);
	free(text);
}


/*
 * The table itself: paths unique, parents present, bounds sane.  Two
 * protocols may each declare one path (a credential's user name field),
 * as the same kind of setting with the same default: a route takes the
 * rows of its own protocol only.
 */
static void
test_table(void **state)
{
	size_t i, k;

	(void)state;
	for (i = 0; i < cg_setting_count(); i++) {
		const struct cg_setting *r = cg_setting_at(i);
		char parent[256];
		char *dot;

		assert_true(row_proto(i) >= -1);
		assert_non_null(r->help);
		for (k = 0; k < i; k++) {
			const struct cg_setting *o = cg_setting_at(k);

			if (strcmp(o->path, r->path) != 0)
				continue;
			if (row_proto(i) < 0 || row_proto(k) < 0 || row_proto(i) == row_proto(k))
				fail_msg("%s declared twice", r->path);
			assert_ptr_equal(cg_setting_find(r->path), o);
			assert_int_equal(o->type, r->type);
			assert_true((o->def == NULL && r->def == NULL) ||
			    (o->def != NULL && r->def != NULL && strcmp(o->def, r->def) == 0));
		}
		assert_true(r->min <= r->max);
		assert_true((r->type == CG_SET_ENUM) == (r->choices != NULL) ||
		    r->type == CG_SET_STRING_LIST);
		snprintf(parent, sizeof(parent), "%s", r->path);
		if ((dot = strrchr(parent, '.')) == NULL)
			continue;
		*dot = '\0';
		if (strlen(parent) > 3 && strcmp(parent + strlen(parent) - 3, ".[]") == 0) {
			parent[strlen(parent) - 3] = '\0';
			assert_int_equal(cg_setting_find(parent)->type, CG_SET_LIST);
		} else
			assert_int_equal(cg_setting_find(parent)->type, CG_SET_GROUP);
	}
	assert_null(cg_setting_find("routes.[].nope"));
	/* -T redacts what may hold a credential */
	assert_true(cg_setting_find("routes.[].credential.template")->sensitive);
	assert_false(cg_setting_find("routes.[].credential.header")->sensitive);
}

/*
 * Each row is bound to a field the loader can fill, print, free and keep:
 * of its type's size, inside its struct, and a protocol's inside the room
 * a route keeps for it.
 */
static void
test_bindings(void **state)
{
	const struct cg_setting *r;
	size_t i, k, nproto = 0;

	(void)state;
	for (i = 0; i < cg_setting_count(); i++) {
		r = cg_setting_at(i);
		print_message("row %s\n", r->path);
		if (r->type == CG_SET_GROUP) {
			assert_int_equal(r->scope, CG_SCOPE_NONE);
			assert_null(r->ops);
			continue;
		}
		if (r->type == CG_SET_LIST) {
			/* its elements are built and walked by the loader */
			assert_non_null(r->ops);
			assert_non_null(r->ops->count);
			assert_non_null(r->ops->elem);
			continue;
		}
		assert_true(r->scope > CG_SCOPE_NONE && r->scope < CG_SCOPE_COUNT);
		if (r->ops != NULL)
			continue;	/* its hooks know its fields */
		switch (r->type) {
		case CG_SET_BOOL:
			assert_int_equal(r->size, sizeof(bool));
			break;
		case CG_SET_INT:
			assert_true(r->size == 4 || r->size == 8);
			assert_true(r->size == 8 || (r->max <= INT32_MAX && r->min >= INT32_MIN));
			break;
		case CG_SET_ENUM:
			assert_int_equal(r->size, sizeof(enum cg_tls_verify));
			break;
		case CG_SET_DURATION:
			assert_int_equal(r->size, sizeof(int64_t));
			break;
		case CG_SET_STRING:
			assert_int_equal(r->size, sizeof(char *));
			break;
		case CG_SET_STRING_LIST:
			assert_int_equal(r->size, sizeof(char **));
			assert_int_not_equal(r->off_n, r->off);
			break;
		default:
			fail_msg("%s: a value row of no value type", r->path);
		}
	}
	/* A reload can keep the running value of what needs a restart. */
	for (i = 0; i < cg_nsettings; i++) {
		r = &cg_settings[i];
		if (r->reloadable || r->type == CG_SET_GROUP || r->type == CG_SET_LIST)
			continue;
		assert_int_equal(r->scope, CG_SCOPE_PROCESS);
		assert_true(r->ops == NULL || r->ops->copy != NULL);
	}
	/* Each protocol's rows: below routes.[], in its struct, which fits. */
	for (k = 0; inj_protos[k] != NULL; k++) {
		const struct inj_proto *p = inj_protos[k];

		assert_ptr_equal(inj_proto_find(p->name), p);
		assert_true(p->cfg_size <= CG_PROTO_CFG_MAX);
		assert_non_null(p->attrs);
		for (i = 0; p->attrs[i] != NULL; i++)
			;
		assert_true(i <= INJ_ATTRS_MAX);
		for (i = 0; i < p->nsettings; i++) {
			r = &p->settings[i];
			assert_memory_equal(r->path, INJ_ROUTE_PREFIX, strlen(INJ_ROUTE_PREFIX));
			assert_true(r->reloadable);
			if (r->scope != CG_SCOPE_NONE) {
				assert_int_equal(r->scope, CG_SCOPE_PROTO);
				assert_true(r->off + r->size <= p->cfg_size);
			}
			nproto++;
		}
	}
	assert_int_equal(cg_setting_count(), cg_nsettings + nproto);
	assert_null(cg_setting_at(cg_setting_count()));
	assert_null(inj_proto_find("gopher"));
	assert_null(inj_proto_find(NULL));
	/* HTTP's rows are its own, and found as the table's are */
	assert_ptr_equal(cg_setting_find("routes.[].credential.inject"),
	    &inj_http_proto.settings[0]);
}

/* ------------------------------------------------------------------ */
/* Dump, reparse, dump                                                 */
/* ------------------------------------------------------------------ */
static const char full_config[] =
	"credgate = {\n"
	"  log_level = \"debug\"; secure_memory = \"best-effort\"; secure_memory_size = 65536;\n"
	"  log_file = \"/var/log/credgate/credgate.log\"; workers = 4; user = \"credgate\";\n"
	"  group = \"nogroup\"; max_connections = 1000000; shutdown_timeout = 0;\n"
	"  token_cache = { size = 0; }; admin = { listen = \"9180\"; };\n"
	"  audit = { file = \"/var/log/credgate/a \\\"q\\\" \\\\ b.log\"; stdout = true; };\n"
	"  limits = { request_line = 256; header_bytes = 1048576; header_count = 8; token_bytes = 65536; };\n"
	"  timeouts = { client_header = \"100ms\"; client_idle = \"24h\"; upstream_connect = 7;\n"
	"    upstream_response = \"1h30m\"; };\n"
	"};\n"
	"issuers = (\n"
	"  { name = \"a\"; issuer = \"https://a.example\"; audiences = [ \"x\", \"y\" ];\n"
	"    algorithms = \"EdDSA\"; jwks_file = \"/etc/credgate/a.jwks\"; max_lifetime = \"1s\";\n"
	"    clock_skew = 0; audit_claims = \"sub\"; },\n"
	"  { name = \"b.c-d_e\"; issuer = \"https://b.example\"; audiences = \"x\";\n"
	"    jwks_file = \"/etc/credgate/b.jwks\"; audit_claims = []; }\n"
	");\n"
	"secrets = { backend = \"file\"; file = \"/etc/credgate/secrets.json\"; cache_ttl = \"0\";\n"
	"    max_stale = \"90s\"; negative_ttl = \"0\"; };\n"
	"trust_domains = (\n"
	"  { name = \"prod\"; trust_domain = \"prod.example.org\";\n"
	"    x509_bundle_file = \"/etc/credgate/prod.bundle.pem\"; max_svid_lifetime = \"1h\"; },\n"
	"  { name = \"staging\"; trust_domain = \"staging.example.org\";\n"
	"    x509_bundle_file = \"/etc/credgate/staging.bundle.pem\"; }\n"
	");\n"
	"routes = (\n"
	"  { name = \"basic\"; listen = \"[::1]:8080\"; max_connections = 1000000;\n"
	"    tls = { cert = \"/etc/credgate/tls/a.crt\"; key = \"/etc/credgate/tls/a.key\";\n"
	"      client_ca = \"/etc/credgate/tls/clients.pem\"; verify_client = \"optional\";\n"
	"      min_version = \"TLSv1.3\"; ciphers = \"ECDHE+AESGCM\";\n"
	"      ciphersuites = \"TLS_AES_256_GCM_SHA384\"; curves = \"X25519\"; };\n"
	"    upstream = { host = \"::1\"; port = 65535;\n"
	"      tls = { enabled = true; ca = \"/etc/credgate/tls/up-ca.pem\"; server_name = \"mf.example\";\n"
	"        cert = \"/etc/credgate/tls/me.crt\"; key = \"/etc/credgate/tls/me.key\";\n"
	"        min_version = \"TLSv1.3\"; ciphers = \"ECDHE+CHACHA20\";\n"
	"        ciphersuites = \"TLS_CHACHA20_POLY1305_SHA256\"; }; };\n"
	"    credential = { path = \"a/b\"; username_field = \"u\"; password_field = \"p\"; };\n"
	"    mode = \"dry-run\"; max_body = 1099511627776; audit_failure = \"allow\";\n"
	"    owner = \"o\\tx\"; purpose = \"line one\\nline two \\x01 caf\xc3\xa9\"; environment = \"e\";\n"
	"    expires = \"2099-12-31T12:00:00Z\";\n"
	"    allow = ( { name = \"r1\"; issuer = [ \"a\", \"b*\" ]; audience = \"x\";\n"
	"                claims = ( { claim = \"a.b\"; value = \"v*\"; }, { claim = \"n\"; value = [ \"1\", \"2\" ]; } );\n"
	"                methods = \"GET\"; paths = [ \"/x/*\", \"*\" ]; },\n"
	"              { name = \"r2\"; } );\n"
	"    deny = ( { name = \"d1\"; paths = \"/admin/*\"; claims = ();\n"
	"               attributes = ( { attribute = \"method\"; value = [ \"DELETE\", \"P*\" ]; } ); } ); },\n"
	"  { name = \"bearer\"; listen = \"localhost:1\";\n"
	"    upstream = { host = \"h\"; port = 1; tls = { enabled = true; verify = false; }; };\n"
	"    credential = { path = \"p\"; inject = \"bearer\"; field = \"tok\"; }; max_body = 0;\n"
	"    owner = \"o\"; purpose = \"p\"; environment = \"e\"; expires = \"2099-01-01\"; },\n"
	"  { name = \"header\"; listen = \"0.0.0.0:2\"; upstream = { host = \"h\"; port = 2; };\n"
	"    tls = { cert = \"/c\"; key = \"/k\"; };\n"
	"    credential = { path = \"p\"; inject = \"header\"; header = \"X-Api-Key\"; template = \"Token ${token}\"; };\n"
	"    owner = \"o\"; purpose = \"p\"; environment = \"e\"; expires = \"2099-01-01\"; },\n"
	"  { name = \"query\"; listen = \"127.0.0.1:3\"; upstream = { host = \"h\"; port = 3; };\n"
	"    credential = { path = \"p\"; inject = \"query\"; query_param = \"api_key\"; };\n"
	"    owner = \"o\"; purpose = \"p\"; environment = \"e\"; expires = \"2099-01-01\"; },\n"
	"  { name = \"svid\"; listen = \"127.0.0.1:4\"; upstream = { host = \"h\"; port = 4; };\n"
	"    tls = { cert = \"/c\"; key = \"/k\"; trust_domains = [ \"prod\", \"staging\" ];\n"
	"      verify_client = \"required\"; };\n"
	"    credential = { path = \"p\"; };\n"
	"    allow = ( { name = \"api\"; spiffe_id = [ \"spiffe://prod.example.org/ns/*/sa/api\",\n"
	"                  \"spiffe://staging.example.org\" ]; trust_domain = \"prod.example.org\"; } );\n"
	"    deny = ( { name = \"no-staging\"; trust_domain = [ \"staging.example.org\" ]; } );\n"
	"    owner = \"o\"; purpose = \"p\"; environment = \"e\"; expires = \"2099-01-01\"; },\n"
	"  { name = \"db\"; listen = \"127.0.0.1:5432\"; protocol = \"postgres\";\n"
	"    upstream = { host = \"h\"; port = 5433; };\n"
	"    credential = { path = \"p\"; username_field = \"login\"; password_field = \"pw\"; };\n"
	"    postgres = { database = \"ledger\"; allow_plaintext_token = true; reset_query = \"\";\n"
	"      startup_parameters = [ \"application_name\", \"search_path\" ];\n"
	"      idle_timeout = \"10m\"; max_session = 0; end_at_token_expiry = true; };\n"
	"    allow = ( { name = \"ci\"; attributes = ( { attribute = \"database\"; value = \"ledger\"; } ); } );\n"
	"    owner = \"o\"; purpose = \"p\"; environment = \"e\"; expires = \"2099-01-01\"; }\n"
	");\n";

static void
round_trip(const char *text, const char *what)
{
	struct cg_config *a, *b;
	char *d1, *d2;

	print_message("round trip: %s\n", what);
	a = load_ok(text);
	d1 = dump_text(a);
	b = load_ok(d1);
	d2 = dump_text(b);
	if (strcmp(d1, d2) != 0)
		print_message("first:\n%s\nsecond:\n%s\n", d1, d2);
	assert_string_equal(d1, d2);
	cg_config_free(a);
	cg_config_free(b);
	free(d1);
	free(d2);
}

static void
test_round_trip(void **state)
{
	char *example = unit_read_file(EXAMPLE, NULL), *base = base_with(NULL);
	char *spiffe = unit_read_file(SPIFFE_EXAMPLE, NULL);

	(void)state;
	round_trip(example, "example");
	round_trip(spiffe, "spiffe example");
	round_trip(base, "base");
	round_trip(full_config, "full");
	free(example);
	free(spiffe);
	free(base);
}

/* The dump holds every value as loaded, not only the same text twice. */
static void
test_dump_values(void **state)
{
	struct cg_config *a = load_ok(full_config), *b;
	char *d = dump_text(a);
	const struct cg_route *rt;
	size_t i;

	(void)state;
	b = load_ok(d);
	assert_int_equal(b->log_level, CG_LOG_DEBUG);
	assert_int_equal(b->secure_memory, CG_SECMEM_BEST_EFFORT);
	assert_string_equal(b->audit_file, "/var/log/credgate/a \"q\" \\ b.log");
	assert_int_equal(b->upstream_connect_timeout_ms, 7000);
	assert_int_equal(b->upstream_response_timeout_ms, 5400000);
	assert_int_equal(b->secret_cache_ttl_ms, 0);
	assert_int_equal(b->secret_max_stale_ms, 90000);
	assert_int_equal(b->secret_negative_ttl_ms, 0);
	assert_int_equal(b->issuers[0]->algs, JWT_EDDSA);
	assert_int_equal(b->issuers[0]->clock_skew_s, 0);
	assert_int_equal(b->issuers[0]->max_lifetime_s, 1);
	assert_int_equal(b->issuer_ext[0].naudit_claims, 1);
	assert_int_equal(b->issuer_ext[1].naudit_claims, 0);
	assert_int_equal(b->issuers[1]->algs, JWT_ALG_ALL);
	rt = cg_config_route(b, "basic");
	assert_string_equal(rt->listen_host, "::1");
	assert_int_equal(rt->listen_port, 8080);
	assert_int_equal(rt->max_body, 1099511627776ULL);
	assert_int_equal(rt->policy.mode, POLICY_DRY_RUN);
	assert_int_equal(rt->audit_failure, CG_AUDIT_FAIL_ALLOW);
	assert_string_equal(rt->owner, "o\tx");
	assert_string_equal(rt->purpose, "line one\nline two \x01 caf\xc3\xa9");
	assert_string_equal(HTTP_CFG(rt)->username_field, "u");
	assert_int_equal(rt->policy.nallow, 2);
	assert_int_equal(rt->policy.allow[0].nconds, 6);
	assert_int_equal(rt->policy.allow[1].nconds, 0);
	assert_int_equal(rt->policy.ndeny, 1);
	assert_int_equal(rt->policy.deny[0].nconds, 2);
	assert_string_equal(rt->policy.deny[0].conds[1].attr, "method");
	assert_int_equal(rt->policy.deny[0].conds[1].attr_ref, INJ_HTTP_ATTR_METHOD + 1);
	assert_int_equal(rt->policy.deny[0].conds[1].nvalues, 2);
	assert_non_null(strstr(d, "\t\t\t\t\t\tattribute = \"method\";\n"));
	rt = cg_config_route(b, "header");
	assert_string_equal(HTTP_CFG(rt)->header, "X-Api-Key");
	/* A template may hold a credential: the dump shows a marker instead. */
	assert_string_equal(HTTP_CFG(cg_config_route(a, "header"))->value_template,
	    "Token ${token}");
	assert_string_equal(HTTP_CFG(rt)->value_template, "<redacted>");
	assert_non_null(strstr(d, "\t\t\ttemplate = \"<redacted>\";\n"));
	assert_null(strstr(d, "Token"));
	rt = cg_config_route(b, "query");
	assert_string_equal(HTTP_CFG(rt)->query_param, "api_key");
	assert_string_equal(HTTP_CFG(rt)->field, "token");
	assert_int_equal(cg_config_route(b, "bearer")->max_body, 0);

	assert_string_equal(b->log_file, "/var/log/credgate/credgate.log");
	assert_int_equal(b->workers, 4);
	assert_int_equal(b->workers_conf, 4);
	assert_string_equal(b->user, "credgate");
	assert_string_equal(b->group, "nogroup");
	assert_int_equal(b->max_connections, 1000000);
	assert_int_equal(b->shutdown_timeout_ms, 0);
	assert_int_equal(b->token_cache_size, 0);
	assert_string_equal(b->admin_listen_host, "127.0.0.1");
	assert_int_equal(b->admin_listen_port, 9180);
	rt = cg_config_route(b, "basic");
	assert_int_equal(rt->max_connections, 1000000);
	assert_true(rt->tls.enabled);
	assert_string_equal(rt->tls.cert, "/etc/credgate/tls/a.crt");
	assert_string_equal(rt->tls.key, "/etc/credgate/tls/a.key");
	assert_string_equal(rt->tls.client_ca, "/etc/credgate/tls/clients.pem");
	assert_int_equal(rt->tls.verify_client, CG_TLS_VERIFY_OPTIONAL);
	assert_string_equal(rt->tls.min_version, "TLSv1.3");
	assert_string_equal(rt->tls.ciphers, "ECDHE+AESGCM");
	assert_string_equal(rt->tls.ciphersuites, "TLS_AES_256_GCM_SHA384");
	assert_string_equal(rt->tls.curves, "X25519");
	assert_true(rt->upstream_tls.enabled);
	assert_true(rt->upstream_tls.verify);
	assert_string_equal(rt->upstream_tls.ca, "/etc/credgate/tls/up-ca.pem");
	assert_string_equal(rt->upstream_tls.server_name, "mf.example");
	assert_string_equal(rt->upstream_tls.cert, "/etc/credgate/tls/me.crt");
	assert_string_equal(rt->upstream_tls.key, "/etc/credgate/tls/me.key");
	assert_string_equal(rt->upstream_tls.min_version, "TLSv1.3");
	assert_string_equal(rt->upstream_tls.ciphers, "ECDHE+CHACHA20");
	assert_string_equal(rt->upstream_tls.ciphersuites, "TLS_CHACHA20_POLY1305_SHA256");
	rt = cg_config_route(b, "bearer");
	assert_false(rt->tls.enabled);
	assert_true(rt->upstream_tls.enabled);
	assert_false(rt->upstream_tls.verify);
	assert_string_equal(rt->upstream_tls.server_name, "h");	/* upstream.host */
	assert_null(rt->upstream_tls.ca);
	assert_null(rt->upstream_tls.cert);
	rt = cg_config_route(b, "header");
	assert_true(rt->tls.enabled);
	assert_null(rt->tls.client_ca);
	assert_int_equal(rt->tls.verify_client, CG_TLS_VERIFY_NONE);
	assert_string_equal(rt->tls.curves, "X25519:P-256:P-384");
	assert_false(rt->upstream_tls.enabled);
	assert_null(rt->upstream_tls.server_name);
	assert_non_null(strstr(d, "\t\tlisten = \"127.0.0.1:9180\";\n"));
	assert_non_null(strstr(d, "\tworkers = 4;\n"));
	assert_int_equal(b->ntrust_domains, 2);
	assert_string_equal(b->trust_domains[0].name, "prod");
	assert_string_equal(b->trust_domains[0].trust_domain, "prod.example.org");
	assert_string_equal(b->trust_domains[0].x509_bundle_file, "/etc/credgate/prod.bundle.pem");
	assert_int_equal(b->trust_domains[0].max_svid_lifetime_s, 3600);
	assert_int_equal(b->trust_domains[1].max_svid_lifetime_s, 0);
	assert_null(b->trust_domains[0].bundle);	/* files not loaded */
	assert_ptr_equal(cg_config_trust_domain(b, "staging"), &b->trust_domains[1]);
	assert_null(cg_config_trust_domain(b, "stag"));
	rt = cg_config_route(b, "svid");
	assert_int_equal(rt->tls.ntrust_domains, 2);
	assert_string_equal(rt->tls.trust_domains[1], "staging");
	assert_null(rt->tls.client_ca);
	assert_int_equal(rt->policy.allow[0].nconds, 2);
	assert_int_equal(rt->policy.allow[0].conds[0].kind, POLICY_COND_SPIFFE_ID);
	assert_int_equal(rt->policy.allow[0].conds[0].nvalues, 2);
	assert_string_equal(rt->policy.allow[0].conds[0].values[1], "spiffe://staging.example.org");
	assert_int_equal(rt->policy.allow[0].conds[1].kind, POLICY_COND_TRUST_DOMAIN);
	assert_int_equal(rt->policy.deny[0].conds[0].kind, POLICY_COND_TRUST_DOMAIN);
	assert_non_null(strstr(d, "\t\t\ttrust_domains = [ \"prod\", \"staging\" ];\n"));
	assert_non_null(strstr(d, "\t\tmax_svid_lifetime = \"1h\";\n"));
	assert_non_null(strstr(d, "\t\tmax_svid_lifetime = \"0\";\n"));
	assert_int_equal(cg_config_route(b, "header")->tls.ntrust_domains, 0);

	/* the dump is what -T prints: every setting, defaults included */
	for (i = 0; i < cg_setting_count(); i++) {
		const char *name = strrchr(cg_setting_at(i)->path, '.');
		char want[128];

		name = name != NULL ? name + 1 : cg_setting_at(i)->path;
		if (strcmp(name, "[]") == 0)
			continue;
		snprintf(want, sizeof(want), "%s = ", name);
		if (strstr(d, want) == NULL) {
			snprintf(want, sizeof(want), "# %s is not", name);
			if (strstr(d, want) == NULL)
				fail_msg("%s missing from the dump", cg_setting_at(i)->path);
		}
	}
	assert_non_null(strstr(d, "max_body = 1099511627776L;"));
	rt = cg_config_route(b, "db");
	assert_ptr_equal(rt->proto, &inj_pg_proto);
	assert_string_equal(PG_CFG(rt)->username_field, "login");
	assert_string_equal(PG_CFG(rt)->password_field, "pw");
	assert_string_equal(PG_CFG(rt)->database, "ledger");
	assert_true(PG_CFG(rt)->allow_plaintext_token);
	assert_string_equal(PG_CFG(rt)->reset_query, "");
	assert_int_equal(PG_CFG(rt)->nstartup_parameters, 2);
	assert_string_equal(PG_CFG(rt)->startup_parameters[1], "search_path");
	assert_int_equal(PG_CFG(rt)->idle_timeout_ms, 600000);
	assert_int_equal(PG_CFG(rt)->max_session_ms, 0);
	assert_true(PG_CFG(rt)->end_at_token_expiry);
	assert_string_equal(rt->policy.allow[0].conds[0].attr, "database");
	assert_int_equal(rt->policy.allow[0].conds[0].attr_ref, INJ_PG_ATTR_DATABASE + 1);
	cg_config_free(a);
	cg_config_free(b);
	free(d);
}

/* ------------------------------------------------------------------ */
/* Reload: what needs a restart keeps its running value                */
/* ------------------------------------------------------------------ */
struct changed {
	const char *paths[32];
	size_t n;
};

static void
note_changed(const char *path, void *arg)
{
	struct changed *c = arg;

	assert_true(c->n < CG_ARRAY_LEN(c->paths));
	c->paths[c->n++] = path;
}

/* The text of row path's line in the dump of cfg ("\tname = ...;"). */
static char *
dumped_line(const struct cg_config *cfg, const char *name)
{
	char *d = dump_text(cfg), *at, *end, *line;
	char want[128];

	snprintf(want, sizeof(want), "\t%s = ", name);
	if ((at = strstr(d, want)) == NULL) {
		snprintf(want, sizeof(want), "# %s is not set", name);
		at = strstr(d, want);
	}
	assert_non_null(at);
	end = strchr(at, '\n');
	line = strndup(at, (size_t)(end - at));
	free(d);
	return line;
}

static void
test_keep_fixed(void **state)
{
	/* a running configuration, and a new file that changes settings of
	 * both kinds */
	static const struct edit run_edits[] = {
		E(1, "credgate = { audit = { stdout = true; }; workers = 2; };"), { 0, NULL } };
	static const struct edit next_edits[] = {
		E(1, "credgate = { workers = 3; user = \"nobody\"; log_level = \"debug\";\n"
		    "\tsecure_memory_size = 65536; token_cache = { size = 5; };\n"
		    "\tadmin = { listen = \"9180\"; }; max_connections = 7;\n"
		    "\taudit = { file = \"/var/log/credgate/a.log\"; stdout = false; };\n"
		    "\ttimeouts = { client_idle = \"5s\"; }; };"),
		E(3, "secrets = { file = \"/etc/credgate/other.json\"; cache_ttl = \"1m\"; };"),
		{ 0, NULL } };
	/* in the table's order */
	static const char *const want[] = {
		"credgate.workers", "credgate.user", "credgate.secure_memory_size",
		"credgate.token_cache.size", "credgate.admin.listen", "credgate.audit.file",
		"credgate.audit.stdout", "secrets.file", "secrets.cache_ttl",
	};
	static const char *const kept[] = {
		"workers", "user", "secure_memory_size", "size", "listen", "file", "stdout",
		"cache_ttl",
	};
	char *run_text = base_with(run_edits), *next_text = base_with(next_edits);
	struct cg_config *run = load_ok(run_text), *next = load_ok(next_text), *same;
	struct changed c = { .n = 0 };
	size_t i;

	(void)state;
	assert_int_equal(cg_config_keep_fixed(run, next, note_changed, &c), 0);
	for (i = 0; i < c.n; i++)
		print_message("changed %s\n", c.paths[i]);
	assert_int_equal(c.n, CG_ARRAY_LEN(want));
	for (i = 0; i < c.n; i++)
		assert_string_equal(c.paths[i], want[i]);
	/* next now holds the running values of those ... */
	for (i = 0; i < CG_ARRAY_LEN(kept); i++) {
		char *a = dumped_line(run, kept[i]), *b = dumped_line(next, kept[i]);

		assert_string_equal(a, b);
		free(a);
		free(b);
	}
	assert_int_equal(next->workers, 2);
	assert_int_equal(next->workers_conf, 2);
	assert_null(next->user);
	assert_null(next->admin_listen_host);
	assert_int_equal(next->admin_listen_port, 0);
	assert_null(next->audit_file);
	assert_true(next->audit_stdout);
	assert_string_equal(next->secrets_file, "/etc/credgate/secrets.json");
	assert_int_equal(next->secret_cache_ttl_ms, 300000);
	assert_int_equal(next->token_cache_size, 10000);
	assert_int_equal(next->secure_memory_size, 4194304);
	/* ... and its own of what a reload applies */
	assert_int_equal(next->log_level, CG_LOG_DEBUG);
	assert_int_equal(next->max_connections, 7);
	assert_int_equal(next->client_idle_timeout_ms, 5000);

	/* Nothing to keep: nothing reported, nothing changed. */
	c.n = 0;
	same = load_ok(run_text);
	assert_int_equal(cg_config_keep_fixed(run, same, note_changed, &c), 0);
	assert_int_equal(c.n, 0);
	/* And back: next (now holding run's) against a fresh next. */
	cg_config_free(same);
	same = load_ok(next_text);
	assert_int_equal(cg_config_keep_fixed(same, next, note_changed, &c), 0);
	assert_int_equal(c.n, CG_ARRAY_LEN(want));
	assert_string_equal(next->user, "nobody");
	assert_string_equal(next->admin_listen_host, "127.0.0.1");
	assert_int_equal(next->admin_listen_port, 9180);
	assert_string_equal(next->audit_file, "/var/log/credgate/a.log");
	assert_int_equal(next->workers, 3);
	cg_config_free(same);
	cg_config_free(run);
	cg_config_free(next);
	free(run_text);
	free(next_text);
}

/* ------------------------------------------------------------------ */
/* The man page documents every row and its default                    */
/* ------------------------------------------------------------------ */

/*
 * The text of path's entry: an entry starts with ".TP" (or ".TQ", for
 * entries that share a description) and ".B <path>" on the next line, and
 * ends at the next .TP, .SH or .SS.
 */
static char *
man_entry(const char *man, const char *path)
{
	char key[256];
	const char *start = NULL, *end;

	snprintf(key, sizeof(key), "\n.TP\n.B %s\n", path);
	if ((start = strstr(man, key)) == NULL) {
		snprintf(key, sizeof(key), "\n.TQ\n.B %s\n", path);
		start = strstr(man, key);
	}
	if (start == NULL)
		return NULL;
	start++;
	for (end = start + strlen(key) - 1; *end != '\0'; end = strchr(end, '\n') + 1) {
		if (strncmp(end, ".TP", 3) == 0 || strncmp(end, ".SH", 3) == 0 ||
		    strncmp(end, ".SS", 3) == 0)
			break;
		if (strchr(end, '\n') == NULL) {
			end += strlen(end);
			break;
		}
	}
	return strndup(start, (size_t)(end - start));
}

static void
test_man_page(void **state)
{
	char *man = unit_read_file(MANPAGE, NULL);
	size_t i;

	(void)state;
	for (i = 0; i < cg_setting_count(); i++) {
		const struct cg_setting *r = cg_setting_at(i);
		char *entry = man_entry(man, r->path);
		char want[256];

		if (entry == NULL)
			fail_msg("credgate.conf.5 has no entry \".TP\\n.B %s\"", r->path);
		if (r->def != NULL)
			snprintf(want, sizeof(want), "Default: %s", r->def);
		else if (r->required)
			snprintf(want, sizeof(want), "Required.");
		else
			snprintf(want, sizeof(want), "Default: none");
		if (strstr(entry, want) == NULL)
			fail_msg("credgate.conf.5: entry %s lacks \"%s\"", r->path, want);
		/* what a reload does not apply says so, and only that */
		if ((strstr(entry, "at start only") != NULL) != !r->reloadable)
			fail_msg("credgate.conf.5: entry %s %s \"at start only\"", r->path,
			    r->reloadable ? "says" : "lacks");
		free(entry);
	}
	free(man);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_bindings),
		cmocka_unit_test(test_messages),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_not_a_file),
		cmocka_unit_test(test_admin_listen),
		cmocka_unit_test(test_workers),
		cmocka_unit_test(test_load_files),
		cmocka_unit_test(test_trust_bundles),
		cmocka_unit_test(test_check),
		cmocka_unit_test(test_file_owners),
		cmocka_unit_test(test_include),
		cmocka_unit_test(test_example),
		cmocka_unit_test(test_example_postgres),
		cmocka_unit_test(test_rule_conditions),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_dump_values),
		cmocka_unit_test(test_keep_fixed),
		cmocka_unit_test(test_man_page),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
