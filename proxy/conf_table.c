/*
 * conf_table.c: the table of the process, issuer, secrets, trust domain
 * and route settings of credgate.conf; each protocol adds its own rows next to its
 * code (struct inj_proto).
 *
 * One row per path, groups and lists included, in the order credgate -T
 * prints them, each bound to the field it fills.  conf.c reads the rows
 * for type checks, bounds, defaults, enum choices, required settings,
 * unknown-setting detection, filling the structs, the dump, freeing and
 * reload; the man page test checks that credgate.conf(5) documents every
 * row and its default.  Nothing here parses or allocates.
 *
 * Paths use "[]" for the elements of a list.  Bounds of durations are in
 * milliseconds.  `def` is the default exactly as it would be written in
 * the file (and as the man page shows it).  RELOAD marks what a reload
 * applies, RESTART what needs a restart (see cg_config_keep_fixed()).
 */
#include <stdio.h>
#include <string.h>

#include "policy/keyfetch.h"
#include "proxy/conf.h"
#include "proxy/conf_int.h"

#define MS_S	1000LL
#define MS_M	(60 * MS_S)
#define MS_H	(60 * MS_M)

#define RELOAD	.reloadable = true
#define RESTART	.reloadable = false

/* Fields, by the struct of their scope (common/settings.h). */
#define PROC(m)		CG_FIELD(CG_SCOPE_PROCESS, struct cg_config, m)
#define PROC_LIST(m, n)	CG_FIELD_LIST(CG_SCOPE_PROCESS, struct cg_config, m, n)
#define VAULT(m)	PROC(vault.m), .unused = unused_without_vault
#define ISS(m)		CG_FIELD(CG_SCOPE_ISSUER, struct policy_issuer, m)
#define ISS_LIST(m, n)	CG_FIELD_LIST(CG_SCOPE_ISSUER, struct policy_issuer, m, n)
#define EXT_LIST(m, n)	CG_FIELD_LIST(CG_SCOPE_ISSUER_EXT, struct cg_issuer_ext, m, n)
#define RT(m)		CG_FIELD(CG_SCOPE_ROUTE, struct cg_route, m)
#define RULE(m)		CG_FIELD(CG_SCOPE_RULE, struct policy_rule, m)
#define COND(m)		CG_FIELD(CG_SCOPE_COND, struct policy_cond, m)
#define TD(m)		CG_FIELD(CG_SCOPE_TRUST_DOMAIN, struct cg_trust_domain, m)
#define COND_VALUES	CG_FIELD_LIST(CG_SCOPE_COND, struct policy_cond, values, nvalues)

#define GROUP(p, req, h) \
	{ .path = (p), .type = CG_SET_GROUP, .required = (req), RELOAD, .help = (h) }
#define LIST(p, req, h, o, ...) \
	{ .path = (p), .type = CG_SET_LIST, .required = (req), RELOAD, .empty_ok = true, \
	  .help = (h), .ops = (o), __VA_ARGS__ }
#define STR(p, d, req, rl, h, ...) \
	{ .path = (p), .type = CG_SET_STRING, .def = (d), .required = (req), rl, \
	  .help = (h), __VA_ARGS__ }
#define STRS(p, d, ch, req, h, ...) \
	{ .path = (p), .type = CG_SET_STRING_LIST, .def = (d), .choices = (ch), \
	  .required = (req), RELOAD, .help = (h), __VA_ARGS__ }
#define VAULT_MOUNTS(p, d, h, m, n) \
	{ .path = (p), .type = CG_SET_STRING_LIST, .def = (d), RESTART, .empty_ok = true, \
	  .help = (h), PROC_LIST(vault.m, vault.n), .unused = unused_without_vault }
#define ENUM(p, d, ch, rl, h, ...) \
	{ .path = (p), .type = CG_SET_ENUM, .def = (d), .choices = (ch), rl, .help = (h), \
	  __VA_ARGS__ }
#define INT(p, d, lo, hi, req, rl, h, ...) \
	{ .path = (p), .type = CG_SET_INT, .def = (d), .min = (lo), .max = (hi), \
	  .required = (req), rl, .help = (h), __VA_ARGS__ }
#define DUR(p, d, lo, hi, rl, h, ...) \
	{ .path = (p), .type = CG_SET_DURATION, .def = (d), .min = (lo), .max = (hi), rl, \
	  .help = (h), __VA_ARGS__ }
#define BOOL(p, d, rl, h, ...) \
	{ .path = (p), .type = CG_SET_BOOL, .def = (d), rl, .help = (h), __VA_ARGS__ }

#define TLS_CIPHERS	"\"ECDHE+AESGCM:ECDHE+CHACHA20\""
#define TLS_SUITES \
	"\"TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256\""

/* A listener TLS setting has no effect without cert and key. */
static const char *
unused_without_tls(const void *base, char *warn, size_t warnlen)
{
	const struct cg_route *rt = base;

	if (rt->tls.enabled)
		return NULL;
	snprintf(warn, warnlen, "ignored without cert and key");
	return "without cert and key";
}

/* Nor an upstream TLS setting but enabled while enabled is false. */
static const char *
unused_without_upstream_tls(const void *base, char *warn, size_t warnlen)
{
	const struct cg_route *rt = base;

	if (rt->upstream_tls.enabled)
		return NULL;
	snprintf(warn, warnlen, "ignored when enabled is false");
	return "while enabled is false";
}

#define UP_TLS	.unused = unused_without_upstream_tls

/* Settings of HTTP's requests and keep-alive, which a session of another
 * protocol (one login, then bytes) has none of. */
static const char *
unused_without_http(const void *base, char *warn, size_t warnlen)
{
	const struct cg_route *rt = base;

	if (rt->proto == NULL || strcmp(rt->proto->name, "http") == 0)
		return NULL;
	snprintf(warn, warnlen, "ignored: only http routes use it");
	return "by a route of this protocol";
}

#define HTTP_ONLY	.unused = unused_without_http

/* How an issuer's keys are fetched means nothing when they come from a
 * file. */
static const char *
unused_with_jwks_file(const void *base, char *warn, size_t warnlen)
{
	if (keyfetch_fetched(base))
		return NULL;
	snprintf(warn, warnlen, "ignored: the keys come from jwks_file");
	return "when the keys come from jwks_file";
}

#define FETCHED	.unused = unused_with_jwks_file

/* secrets.file, with another backend. */
static const char *
unused_without_file(const void *base, char *warn, size_t warnlen)
{
	const struct cg_config *cfg = base;

	if (cfg->secrets_backend == NULL || strcmp(cfg->secrets_backend, "file") == 0)
		return NULL;
	snprintf(warn, warnlen, "ignored unless backend is \"file\"");
	return "unless backend is \"file\"";
}

/* The secrets.vault settings, with another backend. */
static const char *
unused_without_vault(const void *base, char *warn, size_t warnlen)
{
	const struct cg_config *cfg = base;

	if (cfg->secrets_backend != NULL && strcmp(cfg->secrets_backend, "vault") == 0)
		return NULL;
	snprintf(warn, warnlen, "ignored unless backend is \"vault\"");
	return "unless backend is \"vault\"";
}

static const struct conf_cond_spec cond_issuer = { POLICY_COND_ISSUER, NULL };
static const struct conf_cond_spec cond_audience = { POLICY_COND_AUDIENCE, NULL };
static const struct conf_cond_spec cond_claim = { POLICY_COND_CLAIM, NULL };
static const struct conf_cond_spec cond_method = { POLICY_COND_ATTR, "method" };
static const struct conf_cond_spec cond_path = { POLICY_COND_ATTR, "path" };
static const struct conf_cond_spec cond_attr = { POLICY_COND_ATTR, NULL };
static const struct conf_cond_spec cond_subject = { POLICY_COND_CLIENT_SUBJECT, NULL };
static const struct conf_cond_spec cond_san = { POLICY_COND_CLIENT_SAN, NULL };
static const struct conf_cond_spec cond_spiffe_id = { POLICY_COND_SPIFFE_ID, NULL };
static const struct conf_cond_spec cond_trust_domain = { POLICY_COND_TRUST_DOMAIN, NULL };

#define CONDITION(c)	.scope = CG_SCOPE_RULE, .ops = &conf_ops_cond, .arg = &(c)

/* The conditions of one allow or deny rule; both lists take the same. */
#define RULE_ROWS(r, list, n) \
	LIST("routes.[]." r, false, "rules of this kind, tried in order", &conf_ops_rules, \
	    CG_FIELD_LIST(CG_SCOPE_ROUTE, struct cg_route, policy.list, policy.n)), \
	STR("routes.[]." r ".[].name", NULL, true, RELOAD, "rule name, unique within the route", \
	    RULE(name)), \
	STRS("routes.[]." r ".[].issuer", NULL, NULL, false, \
	    "issuer names or iss values (globs); one must match", CONDITION(cond_issuer)), \
	STRS("routes.[]." r ".[].audience", NULL, NULL, false, \
	    "audiences (globs); one must match one of the token's aud values", \
	    CONDITION(cond_audience)), \
	LIST("routes.[]." r ".[].claims", false, "claim conditions; each must hold", \
	    &conf_ops_cond_list, .arg = &cond_claim), \
	STR("routes.[]." r ".[].claims.[].claim", NULL, true, RELOAD, "dotted path of the claim", \
	    COND(claim)), \
	STRS("routes.[]." r ".[].claims.[].value", NULL, NULL, true, \
	    "accepted values (globs); one must match", COND_VALUES), \
	STRS("routes.[]." r ".[].methods", NULL, NULL, false, \
	    "HTTP methods (globs, case-sensitive); one must match", CONDITION(cond_method)), \
	STRS("routes.[]." r ".[].paths", NULL, NULL, false, \
	    "request paths without the query (globs); one must match", CONDITION(cond_path)), \
	LIST("routes.[]." r ".[].attributes", false, \
	    "conditions on attributes of the request; each must hold", &conf_ops_cond_list, \
	    .arg = &cond_attr), \
	STR("routes.[]." r ".[].attributes.[].attribute", NULL, true, RELOAD, \
	    "name of an attribute of the route's protocol", COND(attr)), \
	STRS("routes.[]." r ".[].attributes.[].value", NULL, NULL, true, \
	    "accepted values (globs); one must match", COND_VALUES), \
	STRS("routes.[]." r ".[].client_subject", NULL, NULL, false, \
	    "verified client certificate subjects, RFC 2253 (globs); one must match", \
	    CONDITION(cond_subject)), \
	STRS("routes.[]." r ".[].client_san", NULL, NULL, false, \
	    "verified client certificate SANs, \"dns:\", \"uri:\", \"email:\" or \"ip:\" " \
	    "and the value (globs); one must match", CONDITION(cond_san)), \
	STRS("routes.[]." r ".[].spiffe_id", NULL, NULL, false, \
	    "SPIFFE IDs of the caller's verified X.509-SVID, \"spiffe://\", the trust domain " \
	    "and a glob on the path; one must match", CONDITION(cond_spiffe_id)), \
	STRS("routes.[]." r ".[].trust_domain", NULL, NULL, false, \
	    "trust domains of the caller's verified SPIFFE ID (exact); one must match", \
	    CONDITION(cond_trust_domain))

const struct cg_setting cg_settings[] = {
	GROUP("credgate", false, "process-wide settings"),
	ENUM("credgate.log_level", "\"info\"", "error|warn|info|debug", RELOAD,
	    "least severe level logged", PROC(log_level)),
	STR("credgate.log_file", NULL, false, RESTART,
	    "file log lines are appended to instead of standard error", PROC(log_file)),
	INT("credgate.workers", "0", 0, 256, false, RESTART,
	    "worker threads; 0 = one per online core", PROC(workers_conf),
	    .ops = &conf_ops_workers),
	STR("credgate.user", NULL, false, RESTART, "user to run as after binding", PROC(user)),
	STR("credgate.group", NULL, false, RESTART, "group to run as after binding",
	    PROC(group)),
	INT("credgate.max_connections", "10000", 1, 1000000, false, RELOAD,
	    "most open caller connections, all routes together", PROC(max_connections)),
	INT("credgate.max_pending_per_client", "256", 1, 1000000, false, RELOAD,
	    "most connections one client address holds before sending a request head",
	    PROC(max_pending_per_client)),
	DUR("credgate.shutdown_timeout", "\"30s\"", 0, MS_H, RELOAD,
	    "time requests in flight get to finish on SIGTERM", PROC(shutdown_timeout_ms)),
	ENUM("credgate.secure_memory", "\"required\"", "required|best-effort", RESTART,
	    "whether the secure pool must be locked in memory", PROC(secure_memory)),
	INT("credgate.secure_memory_size", "4194304", 65536, 1073741824, false, RESTART,
	    "bytes of the secure pool that holds secrets", PROC(secure_memory_size)),
	GROUP("credgate.token_cache", false, "verified tokens kept to skip signature checks"),
	INT("credgate.token_cache.size", "10000", 0, 10000000, false, RESTART,
	    "most cached tokens; 0 disables the cache", PROC(token_cache_size)),
	GROUP("credgate.admin", false, "the admin endpoint: health and metrics"),
	STR("credgate.admin.listen", NULL, false, RESTART,
	    "address of the admin endpoint, host:port or a port on loopback",
	    PROC(admin_listen_host), .ops = &conf_ops_admin_listen),
	GROUP("credgate.audit", false, "where audit events go"),
	STR("credgate.audit.file", NULL, false, RESTART, "file audit events are appended to",
	    PROC(audit_file)),
	BOOL("credgate.audit.stdout", "false", RESTART,
	    "also write audit events to standard output", PROC(audit_stdout)),
	GROUP("credgate.limits", false, "sizes of what callers send"),
	INT("credgate.limits.request_line", "8192", 256, 65536, false, RELOAD,
	    "longest HTTP request line, in bytes", PROC(max_request_line)),
	INT("credgate.limits.header_bytes", "32768", 1024, 1048576, false, RELOAD,
	    "largest HTTP request head, in bytes", PROC(max_header_bytes)),
	INT("credgate.limits.header_count", "100", 8, 500, false, RELOAD,
	    "most header fields in one request", PROC(max_header_count)),
	INT("credgate.limits.token_bytes", "8192", 256, 65536, false, RELOAD,
	    "longest identity token, in bytes", PROC(max_token_bytes)),
	GROUP("credgate.timeouts", false, "how long credgate waits"),
	DUR("credgate.timeouts.client_header", "\"10s\"", 100, MS_H, RELOAD,
	    "time for a caller to send a whole request head", PROC(client_header_timeout_ms)),
	DUR("credgate.timeouts.client_idle", "\"60s\"", 100, 24 * MS_H, RELOAD,
	    "idle time of a caller connection between requests", PROC(client_idle_timeout_ms)),
	DUR("credgate.timeouts.upstream_connect", "\"5s\"", 100, 10 * MS_M, RELOAD,
	    "time to connect to the upstream", PROC(upstream_connect_timeout_ms)),
	DUR("credgate.timeouts.upstream_response", "\"60s\"", 100, 24 * MS_H, RELOAD,
	    "time for the upstream to answer", PROC(upstream_response_timeout_ms)),

	LIST("issuers", true, "trusted identity issuers", &conf_ops_issuers),
	STR("issuers.[].name", NULL, true, RELOAD, "issuer name used by rules and audit",
	    ISS(name)),
	STR("issuers.[].issuer", NULL, false, RELOAD,
	    "exact iss value of its tokens (required without trust_domain)", ISS(iss)),
	STR("issuers.[].trust_domain", NULL, false, RELOAD,
	    "SPIFFE trust domain whose JWT-SVIDs the issuer verifies", ISS(trust_domain)),
	STRS("issuers.[].audiences", NULL, NULL, true, "accepted aud values",
	    ISS_LIST(audiences, naudiences)),
	STRS("issuers.[].algorithms", "[ \"RS256\", \"PS256\", \"ES256\", \"ES384\", \"EdDSA\" ]",
	    "RS256|PS256|ES256|ES384|EdDSA", false, "accepted signature algorithms",
	    ISS(algs), .ops = &conf_ops_algorithms),
	STR("issuers.[].jwks_file", NULL, false, RELOAD,
	    "JWKS file with the issuer's public keys (else they are fetched)", ISS(jwks_file)),
	STR("issuers.[].jwks_uri", NULL, false, RELOAD,
	    "https URL of the issuer's JWKS (else OIDC discovery under issuer)",
	    ISS(jwks_uri), FETCHED),
	STR("issuers.[].ca_file", NULL, false, RELOAD,
	    "PEM CA bundle for the key fetches (else the system's)", ISS(ca_file), FETCHED),
	STR("issuers.[].bearer_token_file", NULL, false, RELOAD,
	    "file whose token the key fetches send as Authorization: Bearer",
	    ISS(bearer_token_file), FETCHED),
	DUR("issuers.[].refresh_min", "\"1m\"", MS_S, 24 * MS_H, RELOAD,
	    "shortest time between two scheduled key fetches", ISS(refresh_min_ms), FETCHED),
	DUR("issuers.[].refresh_max", "\"1h\"", MS_S, 7 * 24 * MS_H, RELOAD,
	    "longest time between two key fetches; without Cache-Control, the period",
	    ISS(refresh_max_ms), FETCHED),
	DUR("issuers.[].max_key_age", "\"24h\"", 10 * MS_S, 30 * 24 * MS_H, RELOAD,
	    "how long the last fetched keys are used while fetches fail",
	    ISS(max_key_age_ms), FETCHED),
	DUR("issuers.[].kid_refetch_interval", "\"30s\"", 0, MS_H, RELOAD,
	    "shortest time between two fetches for a token whose kid is not known",
	    ISS(kid_refetch_ms), FETCHED),
	DUR("issuers.[].fetch_timeout", "\"10s\"", 100, 5 * MS_M, RELOAD,
	    "time a key fetch may take, redirects included", ISS(fetch_timeout_ms), FETCHED),
	DUR("issuers.[].max_lifetime", "\"1h\"", MS_S, 24 * MS_H, RELOAD,
	    "longest accepted token lifetime (exp - iat)", ISS(max_lifetime_s),
	    .ops = &conf_ops_seconds),
	DUR("issuers.[].clock_skew", "\"60s\"", 0, 10 * MS_M, RELOAD,
	    "tolerance for exp, nbf and iat", ISS(clock_skew_s), .ops = &conf_ops_seconds),
	STRS("issuers.[].audit_claims", NULL, NULL, false, "claims copied into audit events",
	    EXT_LIST(audit_claims, naudit_claims), .empty_ok = true),

	GROUP("secrets", true, "where legacy credentials come from"),
	ENUM("secrets.backend", "\"file\"", "file|vault", RESTART, "secret store",
	    PROC(secrets_backend), .ops = &conf_ops_choice_text),
	STR("secrets.file", NULL, false, RESTART, "JSON file of secrets (backend file)",
	    PROC(secrets_file), .unused = unused_without_file),
	DUR("secrets.cache_ttl", "\"5m\"", 0, 24 * MS_H, RESTART,
	    "how long a fetched secret is reused; 0 disables the cache",
	    PROC(secret_cache_ttl_ms)),
	DUR("secrets.max_stale", "\"5m\"", 0, 24 * MS_H, RESTART,
	    "how long past its expiry a secret is still served while refreshing it fails",
	    PROC(secret_max_stale_ms)),
	DUR("secrets.negative_ttl", "\"5s\"", 0, 10 * MS_M, RESTART,
	    "how long a failed fetch is remembered before the store is asked again",
	    PROC(secret_negative_ttl_ms)),
	GROUP("secrets.vault", false, "the Vault or OpenBao server (backend vault)"),
	STR("secrets.vault.address", NULL, false, RESTART,
	    "Vault's URL, https://host:port", VAULT(address)),
	STR("secrets.vault.namespace", NULL, false, RESTART,
	    "namespace every request is made in (X-Vault-Namespace)", VAULT(namespace_)),
	GROUP("secrets.vault.tls", false, "TLS towards Vault"),
	STR("secrets.vault.tls.ca_file", NULL, false, RESTART,
	    "PEM CA bundle Vault is verified with; default the system store",
	    VAULT(ca_file)),
	STR("secrets.vault.tls.ca_path", NULL, false, RESTART,
	    "directory of hashed CA certificates", VAULT(ca_path)),
	STR("secrets.vault.tls.server_name", NULL, false, RESTART,
	    "name Vault's certificate must carry (and SNI); default the address's host",
	    VAULT(server_name)),
	STR("secrets.vault.tls.cert", NULL, false, RESTART,
	    "PEM client certificate (auth method cert)", VAULT(cert)),
	STR("secrets.vault.tls.key", NULL, false, RESTART,
	    "PEM private key of the client certificate", VAULT(key)),
	DUR("secrets.vault.connect_timeout", "\"5s\"", 100, 10 * MS_M, RESTART,
	    "time to connect to Vault, TLS included", VAULT(connect_timeout_ms)),
	DUR("secrets.vault.request_timeout", "\"10s\"", 100, 10 * MS_M, RESTART,
	    "time for one request to Vault", VAULT(request_timeout_ms)),
	INT("secrets.vault.retries", "2", 0, 10, false, RESTART,
	    "retries of a request that failed in a way that may pass (no answer, 429, 5xx)",
	    VAULT(retries)),
	DUR("secrets.vault.backoff", "\"200ms\"", 1, 10 * MS_M, RESTART,
	    "first delay before a retry; it doubles each time, with jitter",
	    VAULT(backoff_ms)),
	DUR("secrets.vault.backoff_max", "\"5s\"", 1, 10 * MS_M, RESTART,
	    "longest delay before a retry", VAULT(backoff_max_ms)),
	GROUP("secrets.vault.auth", false, "how credgate logs in to Vault"),
	ENUM("secrets.vault.auth.method", "\"token\"", "token|approle|kubernetes|jwt|cert",
	    RESTART, "auth method", VAULT(method), .ops = &conf_ops_choice_text),
	STR("secrets.vault.auth.mount", NULL, false, RESTART,
	    "path the auth method is mounted at; default the method's name", VAULT(mount)),
	STR("secrets.vault.auth.role", NULL, false, RESTART,
	    "role to log in as (kubernetes, jwt; cert: the certificate role's name)",
	    VAULT(role)),
	STR("secrets.vault.auth.token_file", NULL, false, RESTART,
	    "file holding the Vault token (method token)", VAULT(token_file)),
	STR("secrets.vault.auth.role_id_file", NULL, false, RESTART,
	    "file holding the AppRole role_id (method approle)", VAULT(role_id_file)),
	STR("secrets.vault.auth.secret_id_file", NULL, false, RESTART,
	    "file holding the AppRole secret_id (method approle)", VAULT(secret_id_file)),
	STR("secrets.vault.auth.jwt_file", NULL, false, RESTART,
	    "file holding the JWT to log in with (methods kubernetes and jwt)",
	    VAULT(jwt_file)),
	VAULT_MOUNTS("secrets.vault.kv1_mounts", "[ ]",
	    "mount paths of KV version 1 secret engines", kv1_mounts, nkv1_mounts),
	VAULT_MOUNTS("secrets.vault.kv2_mounts", "[ \"secret\" ]",
	    "mount paths of KV version 2 secret engines", kv2_mounts, nkv2_mounts),
	VAULT_MOUNTS("secrets.vault.database_mounts", "[ \"database\" ]",
	    "mount paths of database secret engines", database_mounts, ndatabase_mounts),

	LIST("trust_domains", false, "SPIFFE trust domains whose X.509-SVIDs listeners accept",
	    &conf_ops_trust_domains),
	STR("trust_domains.[].name", NULL, true, RELOAD,
	    "trust domain name used by routes and audit", TD(name)),
	STR("trust_domains.[].trust_domain", NULL, true, RELOAD,
	    "the trust domain of its SPIFFE IDs, \"example.org\"", TD(trust_domain)),
	STR("trust_domains.[].x509_bundle_file", NULL, true, RELOAD,
	    "PEM file of the trust domain's X.509 authorities, re-read when it changes",
	    TD(x509_bundle_file)),
	DUR("trust_domains.[].max_svid_lifetime", "\"0\"", 0, 365 * 24 * MS_H, RELOAD,
	    "longest accepted X.509-SVID lifetime (notAfter - notBefore); 0 = no limit",
	    TD(max_svid_lifetime_s), .ops = &conf_ops_seconds),

	LIST("routes", true, "legacy services credgate fronts", &conf_ops_routes),
	STR("routes.[].name", NULL, true, RELOAD, "route name, unique", RT(policy.name)),
	STR("routes.[].listen", NULL, true, RELOAD, "address callers connect to, host:port",
	    RT(listen_host), .ops = &conf_ops_listen),
	STR("routes.[].protocol", "\"http\"", false, RELOAD, "protocol spoken on both sides",
	    RT(protocol), .ops = &conf_ops_protocol),
	INT("routes.[].max_connections", "0", 0, 1000000, false, RELOAD,
	    "most open caller connections of this route; 0 = no own limit",
	    RT(max_connections)),
	INT("routes.[].keepalive_requests", "1000", 1, 1000000000, false, RELOAD,
	    "requests one caller connection may make; the last response closes it",
	    RT(keepalive_requests), HTTP_ONLY),
	DUR("routes.[].keepalive_time", "\"1h\"", MS_S, 7 * 24 * MS_H, RELOAD,
	    "age after which a caller connection closes with its next response",
	    RT(keepalive_time_ms), HTTP_ONLY),
	GROUP("routes.[].tls", false, "TLS towards callers; on when cert and key are set"),
	STR("routes.[].tls.cert", NULL, false, RELOAD, "PEM certificate chain of the listener",
	    RT(tls.cert)),
	STR("routes.[].tls.key", NULL, false, RELOAD, "PEM private key of the listener",
	    RT(tls.key)),
	STR("routes.[].tls.client_ca", NULL, false, RELOAD,
	    "PEM CA bundle for client certificates", RT(tls.client_ca)),
	STRS("routes.[].tls.trust_domains", NULL, NULL, false,
	    "trust domains (names) whose X.509-SVIDs are accepted as client certificates, "
	    "instead of client_ca",
	    CG_FIELD_LIST(CG_SCOPE_ROUTE, struct cg_route, tls.trust_domains,
	    tls.ntrust_domains), .unused = unused_without_tls, .empty_ok = true),
	ENUM("routes.[].tls.verify_client", "\"none\"", "none|optional|required", RELOAD,
	    "whether callers are asked for a client certificate", RT(tls.verify_client),
	    .unused = unused_without_tls),
	ENUM("routes.[].tls.min_version", "\"TLSv1.2\"", "TLSv1.2|TLSv1.3", RELOAD,
	    "oldest TLS version accepted", RT(tls.min_version), .ops = &conf_ops_choice_text,
	    .unused = unused_without_tls),
	STR("routes.[].tls.ciphers", TLS_CIPHERS, false, RELOAD,
	    "TLS 1.2 ciphers (OpenSSL syntax)", RT(tls.ciphers), .unused = unused_without_tls),
	STR("routes.[].tls.ciphersuites", TLS_SUITES, false, RELOAD, "TLS 1.3 cipher suites",
	    RT(tls.ciphersuites), .unused = unused_without_tls),
	STR("routes.[].tls.curves", "\"X25519:P-256:P-384\"", false, RELOAD,
	    "key exchange groups, in order of preference", RT(tls.curves),
	    .unused = unused_without_tls),
	GROUP("routes.[].upstream", true, "the legacy service"),
	STR("routes.[].upstream.host", NULL, true, RELOAD, "upstream host name or address",
	    RT(upstream_host)),
	INT("routes.[].upstream.port", NULL, 1, 65535, true, RELOAD, "upstream TCP port",
	    RT(upstream_port)),
	INT("routes.[].upstream.keepalive", "64", 0, 4096, false, RELOAD,
	    "idle upstream connections each worker keeps for this route; 0 = none",
	    RT(upstream_keepalive)),
	DUR("routes.[].upstream.idle_timeout", "\"15s\"", MS_S, 24 * MS_H, RELOAD,
	    "an idle upstream connection kept for reuse closes after this",
	    RT(upstream_idle_ms)),
	GROUP("routes.[].upstream.tls", false, "TLS towards the upstream"),
	BOOL("routes.[].upstream.tls.enabled", "false", RELOAD,
	    "connect to the upstream over TLS", RT(upstream_tls.enabled)),
	STR("routes.[].upstream.tls.ca", NULL, false, RELOAD,
	    "PEM CA bundle the upstream is verified with; default the system store",
	    RT(upstream_tls.ca), UP_TLS),
	BOOL("routes.[].upstream.tls.verify", "true", RELOAD,
	    "verify the upstream's certificate and name", RT(upstream_tls.verify), UP_TLS),
	BOOL("routes.[].upstream.tls.verify_name", "true", RELOAD,
	    "with verify, check the certificate's name too (false: the chain only)",
	    RT(upstream_tls.verify_name), UP_TLS),
	STR("routes.[].upstream.tls.server_name", NULL, false, RELOAD,
	    "name sent (SNI) and verified; default upstream.host",
	    RT(upstream_tls.server_name), UP_TLS),
	STR("routes.[].upstream.tls.cert", NULL, false, RELOAD, "PEM client certificate chain",
	    RT(upstream_tls.cert), UP_TLS),
	STR("routes.[].upstream.tls.key", NULL, false, RELOAD,
	    "PEM private key of the client certificate", RT(upstream_tls.key), UP_TLS),
	ENUM("routes.[].upstream.tls.min_version", "\"TLSv1.2\"", "TLSv1.2|TLSv1.3", RELOAD,
	    "oldest TLS version offered", RT(upstream_tls.min_version),
	    .ops = &conf_ops_choice_text, UP_TLS),
	STR("routes.[].upstream.tls.ciphers", TLS_CIPHERS, false, RELOAD,
	    "TLS 1.2 ciphers (OpenSSL syntax)", RT(upstream_tls.ciphers), UP_TLS),
	STR("routes.[].upstream.tls.ciphersuites", TLS_SUITES, false, RELOAD,
	    "TLS 1.3 cipher suites", RT(upstream_tls.ciphersuites), UP_TLS),
	/* and the protocol's rows: how the credential is injected */
	GROUP("routes.[].credential", true, "the legacy credential and how it is injected"),
	STR("routes.[].credential.path", NULL, true, RELOAD, "secret path in the store",
	    RT(secret_path)),
	BOOL("routes.[].credential.per_session", "false", RELOAD,
	    "each caller session gets a dynamic database credential of its own, "
	    "revoked when it ends (backend vault, a database creds path)",
	    RT(per_session)),
	ENUM("routes.[].mode", "\"enforce\"", "enforce|dry-run", RELOAD,
	    "enforce decisions, or only record them", RT(policy.mode)),
	INT("routes.[].max_body", "10485760", 0, 1099511627776LL, false, RELOAD,
	    "largest request body, in bytes", RT(max_body), HTTP_ONLY),
	ENUM("routes.[].audit_failure", "\"deny\"", "deny|allow", RELOAD,
	    "what happens when the audit event cannot be written", RT(audit_failure)),
	STR("routes.[].owner", NULL, true, RELOAD, "who owns this access", RT(owner)),
	STR("routes.[].purpose", NULL, true, RELOAD, "why the access exists", RT(purpose)),
	STR("routes.[].environment", NULL, true, RELOAD, "environment of the upstream",
	    RT(environment)),
	STR("routes.[].expires", NULL, true, RELOAD, "date or time after which the route denies",
	    RT(expires_text)),
	RULE_ROWS("allow", allow, nallow),
	RULE_ROWS("deny", deny, ndeny),
};

const size_t cg_nsettings = CG_ARRAY_LEN(cg_settings);

size_t
cg_setting_count(void)
{
	size_t i, n = cg_nsettings;

	for (i = 0; inj_protos[i] != NULL; i++)
		n += inj_protos[i]->nsettings;
	return n;
}

const struct cg_setting *
cg_setting_at(size_t i)
{
	size_t k;

	if (i < cg_nsettings)
		return &cg_settings[i];
	i -= cg_nsettings;
	for (k = 0; inj_protos[k] != NULL; k++) {
		if (i < inj_protos[k]->nsettings)
			return &inj_protos[k]->settings[i];
		i -= inj_protos[k]->nsettings;
	}
	return NULL;
}

const struct cg_setting *
cg_setting_find(const char *path)
{
	const struct cg_setting *r;
	size_t i;

	for (i = 0; (r = cg_setting_at(i)) != NULL; i++)
		if (strcmp(r->path, path) == 0)
			return r;
	return NULL;
}
