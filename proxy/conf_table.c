/*
 * conf_table.c: the table of every credgate.conf setting.
 *
 * One row per path, groups and lists included, in the order credgate -T
 * prints them.  conf.c reads this table for type checks, bounds,
 * defaults, enum choices, required settings and unknown-setting detection;
 * the man page test checks that credgate.conf(5) documents every row and
 * its default.  Nothing here parses or allocates.
 *
 * Paths use "[]" for the elements of a list.  Bounds of durations are in
 * milliseconds.  `def` is the default exactly as it would be written in
 * the file (and as the man page shows it).
 */
#include <string.h>

#include "proxy/conf.h"

#define MS_S	1000LL
#define MS_M	(60 * MS_S)
#define MS_H	(60 * MS_M)

#define GROUP(p, req, h) \
	{ .path = (p), .type = CG_SET_GROUP, .required = (req), .reloadable = true, .help = (h) }
#define LIST(p, req, h) \
	{ .path = (p), .type = CG_SET_LIST, .required = (req), .reloadable = true, \
	  .empty_ok = true, .help = (h) }
#define STR(p, d, req, h) \
	{ .path = (p), .type = CG_SET_STRING, .def = (d), .required = (req), \
	  .reloadable = true, .help = (h) }
#define STRS(p, d, ch, req, h) \
	{ .path = (p), .type = CG_SET_STRING_LIST, .def = (d), .choices = (ch), \
	  .required = (req), .reloadable = true, .help = (h) }
#define ENUM(p, d, ch, h) \
	{ .path = (p), .type = CG_SET_ENUM, .def = (d), .choices = (ch), \
	  .reloadable = true, .help = (h) }
#define INT(p, d, lo, hi, req, h) \
	{ .path = (p), .type = CG_SET_INT, .def = (d), .min = (lo), .max = (hi), \
	  .required = (req), .reloadable = true, .help = (h) }
#define DUR(p, d, lo, hi, h) \
	{ .path = (p), .type = CG_SET_DURATION, .def = (d), .min = (lo), .max = (hi), \
	  .reloadable = true, .help = (h) }

/* An optional string read at start only: a reload keeps the running value. */
#define FIXED_STR(p, h) \
	{ .path = (p), .type = CG_SET_STRING, .reloadable = false, .help = (h) }

#define TLS_CIPHERS	"\"ECDHE+AESGCM:ECDHE+CHACHA20\""
#define TLS_SUITES \
	"\"TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256\""

/* The conditions of one allow or deny rule; both lists take the same. */
#define RULE_ROWS(r) \
	LIST("routes.[]." r, false, "rules of this kind, tried in order"), \
	STR("routes.[]." r ".[].name", NULL, true, "rule name, unique within the route"), \
	STRS("routes.[]." r ".[].issuer", NULL, NULL, false, \
	    "issuer names or iss values (globs); one must match"), \
	STRS("routes.[]." r ".[].audience", NULL, NULL, false, \
	    "audiences (globs); one must match one of the token's aud values"), \
	LIST("routes.[]." r ".[].claims", false, "claim conditions; each must hold"), \
	STR("routes.[]." r ".[].claims.[].claim", NULL, true, "dotted path of the claim"), \
	STRS("routes.[]." r ".[].claims.[].value", NULL, NULL, true, \
	    "accepted values (globs); one must match"), \
	STRS("routes.[]." r ".[].methods", NULL, NULL, false, \
	    "HTTP methods (globs, case-sensitive); one must match"), \
	STRS("routes.[]." r ".[].paths", NULL, NULL, false, \
	    "request paths without the query (globs); one must match"), \
	LIST("routes.[]." r ".[].attributes", false, \
	    "conditions on attributes of the request; each must hold"), \
	STR("routes.[]." r ".[].attributes.[].attribute", NULL, true, \
	    "name of an attribute of the route's protocol"), \
	STRS("routes.[]." r ".[].attributes.[].value", NULL, NULL, true, \
	    "accepted values (globs); one must match"), \
	STRS("routes.[]." r ".[].client_subject", NULL, NULL, false, \
	    "verified client certificate subjects, RFC 2253 (globs); one must match"), \
	STRS("routes.[]." r ".[].client_san", NULL, NULL, false, \
	    "verified client certificate SANs, \"dns:\", \"uri:\", \"email:\" or \"ip:\" " \
	    "and the value (globs); one must match")

const struct cg_setting cg_settings[] = {
	GROUP("credgate", false, "process-wide settings"),
	ENUM("credgate.log_level", "\"info\"", "error|warn|info|debug", "least severe level logged"),
	FIXED_STR("credgate.log_file", "file log lines are appended to instead of standard error"),
	{ .path = "credgate.workers", .type = CG_SET_INT, .def = "0", .min = 0, .max = 256,
	  .reloadable = false, .help = "worker threads; 0 = one per online core" },
	FIXED_STR("credgate.user", "user to run as after binding"),
	FIXED_STR("credgate.group", "group to run as after binding"),
	INT("credgate.max_connections", "10000", 1, 1000000, false,
	    "most open caller connections, all routes together"),
	INT("credgate.max_pending_per_client", "256", 1, 1000000, false,
	    "most connections one client address holds before sending a request head"),
	DUR("credgate.shutdown_timeout", "\"30s\"", 0, MS_H,
	    "time requests in flight get to finish on SIGTERM"),
	{ .path = "credgate.secure_memory", .type = CG_SET_ENUM, .def = "\"required\"",
	  .choices = "required|best-effort", .reloadable = false,
	  .help = "whether the secure pool must be locked in memory" },
	{ .path = "credgate.secure_memory_size", .type = CG_SET_INT, .def = "4194304",
	  .min = 65536, .max = 1073741824, .reloadable = false,
	  .help = "bytes of the secure pool that holds secrets" },
	GROUP("credgate.token_cache", false, "verified tokens kept to skip signature checks"),
	INT("credgate.token_cache.size", "10000", 0, 10000000, false,
	    "most cached tokens; 0 disables the cache"),
	GROUP("credgate.admin", false, "the admin endpoint: health and metrics"),
	FIXED_STR("credgate.admin.listen",
	    "address of the admin endpoint, host:port or a port on loopback"),
	GROUP("credgate.audit", false, "where audit events go"),
	STR("credgate.audit.file", NULL, false, "file audit events are appended to"),
	{ .path = "credgate.audit.stdout", .type = CG_SET_BOOL, .def = "false",
	  .reloadable = true, .help = "also write audit events to standard output" },
	GROUP("credgate.limits", false, "sizes of what callers send"),
	INT("credgate.limits.request_line", "8192", 256, 65536, false,
	    "longest HTTP request line, in bytes"),
	INT("credgate.limits.header_bytes", "32768", 1024, 1048576, false,
	    "largest HTTP request head, in bytes"),
	INT("credgate.limits.header_count", "100", 8, 500, false,
	    "most header fields in one request"),
	INT("credgate.limits.token_bytes", "8192", 256, 65536, false,
	    "longest identity token, in bytes"),
	GROUP("credgate.timeouts", false, "how long credgate waits"),
	DUR("credgate.timeouts.client_header", "\"10s\"", 100, MS_H,
	    "time for a caller to send a whole request head"),
	DUR("credgate.timeouts.client_idle", "\"60s\"", 100, 24 * MS_H,
	    "idle time of a caller connection between requests"),
	DUR("credgate.timeouts.upstream_connect", "\"5s\"", 100, 10 * MS_M,
	    "time to connect to the upstream"),
	DUR("credgate.timeouts.upstream_response", "\"60s\"", 100, 24 * MS_H,
	    "time for the upstream to answer"),

	LIST("issuers", true, "trusted identity issuers"),
	STR("issuers.[].name", NULL, true, "issuer name used by rules and audit"),
	STR("issuers.[].issuer", NULL, true, "exact iss value of its tokens"),
	STRS("issuers.[].audiences", NULL, NULL, true, "accepted aud values"),
	STRS("issuers.[].algorithms", "[ \"RS256\", \"PS256\", \"ES256\", \"ES384\", \"EdDSA\" ]",
	    "RS256|PS256|ES256|ES384|EdDSA", false, "accepted signature algorithms"),
	STR("issuers.[].jwks_file", NULL, true, "JWKS file with the issuer's public keys"),
	DUR("issuers.[].max_lifetime", "\"1h\"", MS_S, 24 * MS_H,
	    "longest accepted token lifetime (exp - iat)"),
	DUR("issuers.[].clock_skew", "\"60s\"", 0, 10 * MS_M,
	    "tolerance for exp, nbf and iat"),
	{ .path = "issuers.[].audit_claims", .type = CG_SET_STRING_LIST, .reloadable = true,
	  .empty_ok = true, .help = "claims copied into audit events" },

	GROUP("secrets", true, "where legacy credentials come from"),
	ENUM("secrets.backend", "\"file\"", "file", "secret store"),
	STR("secrets.file", NULL, false, "JSON file of secrets (backend file)"),
	DUR("secrets.cache_ttl", "\"5m\"", 0, 24 * MS_H,
	    "how long a fetched secret is reused; 0 disables the cache"),

	LIST("routes", true, "legacy services credgate fronts"),
	STR("routes.[].name", NULL, true, "route name, unique"),
	STR("routes.[].listen", NULL, true, "address callers connect to, host:port"),
	ENUM("routes.[].protocol", "\"http\"", "http", "protocol spoken on both sides"),
	INT("routes.[].max_connections", "0", 0, 1000000, false,
	    "most open caller connections of this route; 0 = no own limit"),
	INT("routes.[].keepalive_requests", "1000", 1, 1000000000, false,
	    "requests one caller connection may make; the last response closes it"),
	DUR("routes.[].keepalive_time", "\"1h\"", MS_S, 7 * 24 * MS_H,
	    "age after which a caller connection closes with its next response"),
	GROUP("routes.[].tls", false, "TLS towards callers; on when cert and key are set"),
	STR("routes.[].tls.cert", NULL, false, "PEM certificate chain of the listener"),
	STR("routes.[].tls.key", NULL, false, "PEM private key of the listener"),
	STR("routes.[].tls.client_ca", NULL, false, "PEM CA bundle for client certificates"),
	ENUM("routes.[].tls.verify_client", "\"none\"", "none|optional|required",
	    "whether callers are asked for a client certificate"),
	ENUM("routes.[].tls.min_version", "\"TLSv1.2\"", "TLSv1.2|TLSv1.3",
	    "oldest TLS version accepted"),
	STR("routes.[].tls.ciphers", TLS_CIPHERS, false, "TLS 1.2 ciphers (OpenSSL syntax)"),
	STR("routes.[].tls.ciphersuites", TLS_SUITES, false, "TLS 1.3 cipher suites"),
	STR("routes.[].tls.curves", "\"X25519:P-256:P-384\"", false,
	    "key exchange groups, in order of preference"),
	GROUP("routes.[].upstream", true, "the legacy service"),
	STR("routes.[].upstream.host", NULL, true, "upstream host name or address"),
	INT("routes.[].upstream.port", NULL, 1, 65535, true, "upstream TCP port"),
	INT("routes.[].upstream.keepalive", "64", 0, 4096, false,
	    "idle upstream connections each worker keeps for this route; 0 = none"),
	GROUP("routes.[].upstream.tls", false, "TLS towards the upstream"),
	{ .path = "routes.[].upstream.tls.enabled", .type = CG_SET_BOOL, .def = "false",
	  .reloadable = true, .help = "connect to the upstream over TLS" },
	STR("routes.[].upstream.tls.ca", NULL, false,
	    "PEM CA bundle the upstream is verified with; default the system store"),
	{ .path = "routes.[].upstream.tls.verify", .type = CG_SET_BOOL, .def = "true",
	  .reloadable = true, .help = "verify the upstream's certificate and name" },
	STR("routes.[].upstream.tls.server_name", NULL, false,
	    "name sent (SNI) and verified; default upstream.host"),
	STR("routes.[].upstream.tls.cert", NULL, false, "PEM client certificate chain"),
	STR("routes.[].upstream.tls.key", NULL, false, "PEM private key of the client certificate"),
	ENUM("routes.[].upstream.tls.min_version", "\"TLSv1.2\"", "TLSv1.2|TLSv1.3",
	    "oldest TLS version offered"),
	STR("routes.[].upstream.tls.ciphers", TLS_CIPHERS, false,
	    "TLS 1.2 ciphers (OpenSSL syntax)"),
	STR("routes.[].upstream.tls.ciphersuites", TLS_SUITES, false, "TLS 1.3 cipher suites"),
	GROUP("routes.[].credential", true, "the legacy credential and how it is injected"),
	STR("routes.[].credential.path", NULL, true, "secret path in the store"),
	ENUM("routes.[].credential.inject", "\"basic\"", "basic|bearer|header|query",
	    "how the credential reaches the upstream"),
	STR("routes.[].credential.username_field", "\"username\"", false,
	    "secret field with the user name (basic)"),
	STR("routes.[].credential.password_field", "\"password\"", false,
	    "secret field with the password (basic)"),
	STR("routes.[].credential.field", "\"token\"", false,
	    "secret field injected (bearer, query)"),
	STR("routes.[].credential.header", NULL, false, "header name (header)"),
	/* sensitive: a credential may be written into it */
	{ .path = "routes.[].credential.template", .type = CG_SET_STRING, .reloadable = true,
	  .sensitive = true, .help = "header value with ${field} references (header)" },
	STR("routes.[].credential.query_param", NULL, false, "query parameter name (query)"),
	ENUM("routes.[].mode", "\"enforce\"", "enforce|dry-run",
	    "enforce decisions, or only record them"),
	INT("routes.[].max_body", "10485760", 0, 1099511627776LL, false,
	    "largest request body, in bytes"),
	ENUM("routes.[].audit_failure", "\"deny\"", "deny|allow",
	    "what happens when the audit event cannot be written"),
	STR("routes.[].owner", NULL, true, "who owns this access"),
	STR("routes.[].purpose", NULL, true, "why the access exists"),
	STR("routes.[].environment", NULL, true, "environment of the upstream"),
	STR("routes.[].expires", NULL, true, "date or time after which the route denies"),
	RULE_ROWS("allow"),
	RULE_ROWS("deny"),
};

const size_t cg_nsettings = CG_ARRAY_LEN(cg_settings);

const struct cg_setting *
cg_setting_find(const char *path)
{
	size_t i;

	for (i = 0; i < cg_nsettings; i++)
		if (strcmp(cg_settings[i].path, path) == 0)
			return &cg_settings[i];
	return NULL;
}
