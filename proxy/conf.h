/*
 * conf.h: credgate.conf, from the file to one immutable generation.
 *
 * One settings table drives parsing, `credgate -t`, the effective-config
 * dump of `credgate -T`, reload and the test that credgate.conf(5)
 * documents every row: the rows of conf_table.c and those each protocol
 * declares (struct inj_proto), each bound to the field it fills
 * (common/settings.h).  A loaded struct cg_config is never changed; a
 * reload builds a new one.
 */
#ifndef CG_CONFIG_H
#define CG_CONFIG_H

#include <sys/stat.h>
#include <sys/types.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common.h"
#include "settings.h"
#include "policy/policy.h"
#include "injectors/injector.h"
#include "injectors/http/http.h"

enum cg_audit_failure {
	CG_AUDIT_FAIL_DENY = 0,
	CG_AUDIT_FAIL_ALLOW = 1,
};

enum cg_secure_memory {
	CG_SECMEM_REQUIRED = 0,
	CG_SECMEM_BEST_EFFORT = 1,
};

enum cg_tls_verify {
	CG_TLS_VERIFY_NONE = 0,		/* no client certificate asked for */
	CG_TLS_VERIFY_OPTIONAL = 1,	/* asked for; verified if sent */
	CG_TLS_VERIFY_REQUIRED = 2,	/* handshake fails without a valid one */
};

/*
 * routes.[].tls: the listener serves TLS when cert and key are set (the
 * load refuses one without the other).  The strings with a default in the
 * table are always filled in; cert, key and client_ca are NULL when unset,
 * trust_domains empty.
 * With CG_CONFIG_LOAD_FILES the files were regular, readable and not
 * writable by others (keys: no access for others) at load time; the TLS
 * code reads them itself, at start and on reload.
 */
struct cg_tls_server {
	bool enabled;			/* cert != NULL */
	char *cert;			/* routes.[].tls.cert: PEM chain */
	char *key;			/* routes.[].tls.key: PEM private key */
	char *client_ca;		/* routes.[].tls.client_ca: PEM CA bundle */
	char **trust_domains;		/* routes.[].tls.trust_domains: names of
					   cg_config.trust_domains whose X.509-SVIDs
					   are accepted instead (never both) */
	size_t ntrust_domains;
	enum cg_tls_verify verify_client; /* routes.[].tls.verify_client */
	char *min_version;		/* "TLSv1.2" | "TLSv1.3" */
	char *ciphers;			/* TLS 1.2 cipher list (OpenSSL syntax) */
	char *ciphersuites;		/* TLS 1.3 suites */
	char *curves;			/* groups, "X25519:P-256:P-384" */
};

/*
 * routes.[].upstream.tls.  verify, min_version, ciphers and ciphersuites
 * always hold their values (defaults filled in); ca, server_name, cert and
 * key are NULL when unset.  Nothing but enabled is used while enabled is
 * false.
 */
struct cg_tls_client {
	bool enabled;			/* routes.[].upstream.tls.enabled */
	char *ca;			/* CA bundle; NULL = the system store */
	bool verify;			/* false only by explicit setting; -t warns */
	bool verify_name;		/* with verify: the name too (else the chain
					   only, libpq's verify-ca) */
	char *server_name;		/* SNI and name to verify; when enabled, never
					   NULL: a copy of upstream.host if not set.
					   May be an IP address (verify as IP, no SNI) */
	char *cert;			/* client certificate (optional) */
	char *key;
	char *min_version;
	char *ciphers;
	char *ciphersuites;
};

/* The largest protocol configuration a route holds (struct inj_proto's
 * cfg_size); a test checks that every protocol's fits. */
#define CG_PROTO_CFG_MAX	256

struct cg_route {
	struct policy_route policy;	/* name, mode, expires, allow, deny */
	char *listen_host;		/* routes.[].listen "host:port" */
	int listen_port;
	char *protocol;			/* routes.[].protocol: "http" */
	const struct inj_proto *proto;	/* that protocol (in a load that fails for naming
					   none credgate has, the default's) */
	char *upstream_host;
	int upstream_port;
	char *secret_path;		/* routes.[].credential.path */
	bool per_session;		/* routes.[].credential.per_session */
	/*
	 * The protocol's own settings, which its rows (CG_SCOPE_PROTO) fill:
	 * the protocol's struct (cfg_size bytes, at most CG_PROTO_CFG_MAX),
	 * read only by the protocol (struct inj_http_cfg for "http").
	 */
	union {
		unsigned char proto_cfg[CG_PROTO_CFG_MAX];
		max_align_t proto_align;
	};
	uint64_t max_body;		/* bytes of request body; 0 = none allowed */
	enum cg_audit_failure audit_failure;
	char *owner;
	char *purpose;
	char *environment;
	char *expires_text;		/* as written, for -T and audit */
	uint32_t max_connections;	/* routes.[].max_connections; 0 = no own limit */
	uint32_t keepalive_requests;	/* routes.[].keepalive_requests */
	int64_t keepalive_time_ms;	/* routes.[].keepalive_time */
	uint32_t upstream_keepalive;	/* routes.[].upstream.keepalive: idle per worker */
	int64_t upstream_idle_ms;	/* routes.[].upstream.idle_timeout */
	struct cg_tls_server tls;	/* routes.[].tls.* */
	struct cg_tls_client upstream_tls; /* routes.[].upstream.tls.* */
	int line;			/* where the route starts in the file */
};

/*
 * What an issuer carries besides struct policy_issuer (which policy/ owns):
 * cg_config.issuer_ext[i] belongs to cg_config.issuers[i].  The audit
 * writer copies the claims named here into identity.claims.
 */
struct cg_issuer_ext {
	char **audit_claims;		/* issuers.[].audit_claims; may be empty */
	size_t naudit_claims;
	int line;			/* where the issuer starts in the file */
};

/*
 * trust_domains.[]: a SPIFFE trust domain whose X.509-SVIDs a listener may
 * accept (routes.[].tls.trust_domains).  With CG_CONFIG_LOAD_FILES its
 * bundle was read at load: bundle, bundle_certs and bundle_st describe what
 * was read; the running process re-reads the file when it changes
 * (proxy/trust.h).  Without, bundle is NULL.
 */
struct cg_trust_domain {
	char *name;			/* trust_domains.[].name: what routes and audit name */
	char *trust_domain;		/* trust_domains.[].trust_domain: "prod.example.org" */
	char *x509_bundle_file;		/* trust_domains.[].x509_bundle_file */
	int64_t max_svid_lifetime_s;	/* trust_domains.[].max_svid_lifetime; 0 = no limit */
	struct x509_store_st *bundle;	/* its X.509 authorities (X509_STORE), owned */
	size_t bundle_certs;		/* how many */
	struct stat bundle_st;		/* the file as it was read */
	int line;			/* where the trust domain starts in the file */
};

struct cg_config {
	char *file;			/* path as given */

	int log_level;			/* credgate.log_level */
	char *log_file;			/* credgate.log_file; NULL = stderr */
	uint32_t workers;		/* credgate.workers; 0 in the file = one per core,
					   resolved to the core count at load */
	uint32_t workers_conf;		/* credgate.workers as written (0 kept), for -T */
	char *user;			/* credgate.user: drop to it after binding; NULL = stay */
	char *group;			/* credgate.group; NULL = user's primary group */
	uid_t run_uid;			/* who credgate runs as after the privilege drop:
					   credgate.user's uid (looked up only with
					   CG_CONFIG_LOAD_FILES), else the effective uid
					   at load.  Besides root, the only owner the
					   secrets file and private keys may have */
	uint32_t max_connections;	/* credgate.max_connections, all routes */
	uint32_t max_pending_per_client; /* credgate.max_pending_per_client */
	int64_t shutdown_timeout_ms;	/* credgate.shutdown_timeout */
	uint32_t token_cache_size;	/* credgate.token_cache.size; 0 = off */
	char *admin_listen_host;	/* credgate.admin.listen; NULL = no admin;
					   "127.0.0.1" for a bare port; no brackets */
	int admin_listen_port;
	enum cg_secure_memory secure_memory;
	uint64_t secure_memory_size;

	char *audit_file;		/* credgate.audit.file; NULL = none */
	bool audit_stdout;

	uint32_t max_request_line;	/* credgate.limits.* */
	uint32_t max_header_bytes;
	uint32_t max_header_count;
	uint32_t max_token_bytes;

	int64_t client_header_timeout_ms;	/* credgate.timeouts.* */
	int64_t client_idle_timeout_ms;
	int64_t upstream_connect_timeout_ms;
	int64_t upstream_response_timeout_ms;

	char *secrets_backend;		/* "file" or "vault" */
	char *secrets_file;
	struct cg_vault_conf {		/* secrets.vault */
		char *address, *namespace_;
		char *ca_file, *ca_path, *server_name, *cert, *key;	/* tls.* */
		int64_t connect_timeout_ms, request_timeout_ms;
		uint32_t retries;
		int64_t backoff_ms, backoff_max_ms;
		char *method, *mount, *role;	/* auth.* */
		char *token_file, *role_id_file, *secret_id_file, *jwt_file;
		char **kv1_mounts, **kv2_mounts, **database_mounts;
		size_t nkv1_mounts, nkv2_mounts, ndatabase_mounts;
	} vault;
	int64_t secret_cache_ttl_ms;
	int64_t secret_max_stale_ms;	/* secrets.max_stale */
	int64_t secret_negative_ttl_ms;	/* secrets.negative_ttl */

	struct policy_issuer **issuers;
	struct cg_issuer_ext *issuer_ext;	/* nissuers entries, parallel to issuers */
	size_t nissuers;
	struct cg_trust_domain *trust_domains;	/* ntrust_domains entries */
	size_t ntrust_domains;
	struct cg_route *routes;
	size_t nroutes;
};

/*
 * Every problem found while loading, each "file:line: path: problem".
 *
 * A warning is a message whose problem starts with "warning: " (for
 * example a route whose expires has passed, an issuer that no allow rule
 * accepts, a setting that its inject kind ignores).  Warnings are counted
 * in `warnings` and never make a load fail; every other message does.
 * Warnings are reported only for a configuration without errors, so that
 * a wrong value is not followed by warnings about its consequences.
 * Start with a zeroed struct; cg_errors_clear() frees and zeroes it.
 */
struct cg_errors {
	char **msgs;
	size_t n;
	size_t warnings;	/* how many of msgs are warnings ("warning: ...") */
};
/* Appends one formatted message (no newline).  A message that cannot be
 * stored for lack of memory is dropped; the load still fails. */
void cg_errors_add(struct cg_errors *e, const char *fmt, ...) CG_PRINTF(2, 3);
void cg_errors_clear(struct cg_errors *e);

enum cg_config_flags {
	/*
	 * Also load JWKS files and trust bundles, check the secrets file and
	 * the TLS certificate, key and CA files (the secrets file and private keys
	 * owned by root or run_uid), and look up credgate.user and
	 * credgate.group (off for fuzzing).
	 */
	CG_CONFIG_LOAD_FILES = 1 << 0,
	/*
	 * What only `credgate -t` checks, with CG_CONFIG_LOAD_FILES: that the
	 * secrets file holds every route's secret with the fields its
	 * injection reads, and that credgate.audit.file can be opened for
	 * appending (or, when it does not exist, created in its directory).
	 * Not at start or on reload: a secret may be stored after credgate
	 * starts, and the running process opens the audit file itself.
	 * Nothing is created or written.
	 */
	CG_CONFIG_CHECK = 1 << 1,
};

/*
 * Loads, applies defaults and validates.  Collects every error before
 * failing.  The file must be a regular file (a symbolic link to one is
 * followed) of at most 4 MiB.  Returns 0 and *out, or CG_ERR_FORMAT (or
 * CG_ERR_IO when the file cannot be read) with errs filled in.
 */
int cg_config_load(const char *file, unsigned flags, struct cg_config **out,
    struct cg_errors *errs) CG_WUR;
/* Same from text; name is used in messages. */
int cg_config_load_string(const char *text, const char *name, unsigned flags,
    struct cg_config **out, struct cg_errors *errs) CG_WUR;
void cg_config_free(struct cg_config *cfg);	/* NULL-safe */

/*
 * Prints the effective configuration (every setting, defaults filled in,
 * sensitive values redacted) as libconfig text that loads back to the
 * same configuration.
 */
int cg_config_dump(const struct cg_config *cfg, FILE *out) CG_WUR;

const struct cg_route *cg_config_route(const struct cg_config *cfg, const char *name);
/* The trust domain cfg names name (trust_domains.[].name); NULL if none. */
const struct cg_trust_domain *cg_config_trust_domain(const struct cg_config *cfg,
    const char *name);

/*
 * The settings table (conf_table.c): the rows of the process, issuer,
 * secrets and route settings, in the order credgate -T prints them.  Each
 * protocol adds its own rows (struct inj_proto), under routes.[].
 */
extern const struct cg_setting cg_settings[];
extern const size_t cg_nsettings;

/*
 * Every row, the table's then each protocol's: the i-th for i below
 * cg_setting_count(), for the man page test and the table's own checks.
 */
size_t cg_setting_count(void);
const struct cg_setting *cg_setting_at(size_t i);

/* The row for a table path ("routes.[].name"), any protocol's included;
 * NULL if none. */
const struct cg_setting *cg_setting_find(const char *path);

/*
 * For a reload: every setting that needs a restart (a row that is not
 * reloadable) whose value in next differs from its value in run is passed
 * to changed() by its path, and next gets run's value back, so that the new
 * generation holds what the process runs with.  Returns 0, or CG_ERR_NOMEM
 * (next may then hold some of run's values and some of its own).
 */
int cg_config_keep_fixed(const struct cg_config *run, struct cg_config *next,
    void (*changed)(const char *path, void *arg), void *arg) CG_WUR;

struct vault_opts;
/* The Vault backend's options from cfg's secrets.vault (pointers into cfg;
 * defaults applied: the auth mount, the Kubernetes token file). */
void cg_vault_opts(const struct cg_config *cfg, struct vault_opts *o);

#endif /* CG_CONFIG_H */
