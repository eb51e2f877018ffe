/*
 * test_vault_parse.c: Vault's (and OpenBao's) JSON responses to C values
 * (vault-client/vault_parse.c): the auth block of each login method and
 * of a renew-self, a token lookup, a lease renewal, the reads of each
 * secret engine with their versions and leases, and the errors body.
 * Every valid response is also fed cut at every length.  The fixtures
 * follow the servers' shapes with made-up values; what may be a secret
 * must land in secure memory, and the pool must be back where it was
 * after every parse.
 */
#include "config.h"

#include "tests/unit/unit.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "vault-client/vault.h"
#include "vault-client/vault_parse.h"

/* Two keys for the versions of unversioned secrets. */
static const unsigned char KEY_A[VAULT_VERSION_KEY_LEN] = {
	0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11,
	0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11,
	0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11,
	0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11,
};
static const unsigned char KEY_B[VAULT_VERSION_KEY_LEN] = {
	0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11,
	0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11,
	0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11,
	0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x12,
};

static size_t
in_use(void)
{
	size_t used, total;

	secmem_stats(&used, &total);
	return used;
}

/* ------------------------------------------------------------------ */
/* Fixtures                                                            */
/* ------------------------------------------------------------------ */

/* AppRole login: the envelope's own lease fields are zero, the token's
 * are in auth. */
#define AUTH_APPROLE \
	"{\"request_id\":\"aaaaaaaa-0000-4000-8000-000000000001\",\"lease_id\":\"\"," \
	"\"renewable\":false,\"lease_duration\":0,\"data\":null,\"wrap_info\":null," \
	"\"warnings\":null,\"auth\":{\"client_token\":\"s.test-token\"," \
	"\"accessor\":\"test-accessor-1\",\"policies\":[\"test-read\",\"default\"]," \
	"\"token_policies\":[\"test-read\",\"default\"]," \
	"\"metadata\":{\"role_name\":\"test-role\"},\"lease_duration\":3600," \
	"\"renewable\":true,\"entity_id\":\"aaaaaaaa-0000-4000-8000-0000000000e1\"," \
	"\"token_type\":\"service\",\"orphan\":true,\"mfa_requirement\":null," \
	"\"num_uses\":0}}"

/* AppRole login with a warning about an ignored parameter. */
#define AUTH_WARNINGS \
	"{\"request_id\":\"aaaaaaaa-0000-4000-8000-000000000002\",\"lease_id\":\"\"," \
	"\"renewable\":false,\"lease_duration\":0,\"data\":null,\"wrap_info\":null," \
	"\"warnings\":[\"Endpoint ignored these unrecognized parameters: [test_extra]\"]," \
	"\"auth\":{\"client_token\":\"s.test-token-warned\",\"accessor\":\"test-accessor-2\"," \
	"\"policies\":[\"default\"],\"metadata\":{\"role_name\":\"test-role\"}," \
	"\"lease_duration\":1800,\"renewable\":true,\"entity_id\":\"\"," \
	"\"token_type\":\"service\",\"orphan\":true,\"mfa_requirement\":null,\"num_uses\":0}}"

/* JWT login: metadata holds the role and the claim mappings. */
#define AUTH_JWT \
	"{\"request_id\":\"aaaaaaaa-0000-4000-8000-000000000003\",\"lease_id\":\"\"," \
	"\"renewable\":false,\"lease_duration\":0,\"data\":null,\"wrap_info\":null," \
	"\"warnings\":null,\"auth\":{\"client_token\":\"s.test-jwt-token\"," \
	"\"accessor\":\"test-accessor-3\",\"policies\":[\"test-read\",\"default\"]," \
	"\"token_policies\":[\"test-read\",\"default\"],\"identity_policies\":[\"test-id\"]," \
	"\"metadata\":{\"role\":\"test-jwt-role\",\"repository\":\"test/repo\"}," \
	"\"lease_duration\":900,\"renewable\":true," \
	"\"entity_id\":\"aaaaaaaa-0000-4000-8000-0000000000e3\",\"token_type\":\"service\"," \
	"\"orphan\":true,\"mfa_requirement\":null,\"num_uses\":0}}"

/* Kubernetes login, pretty-printed and ending in a newline. */
#define AUTH_K8S \
	"{\n  \"request_id\": \"aaaaaaaa-0000-4000-8000-000000000004\",\n" \
	"  \"lease_id\": \"\",\n  \"renewable\": false,\n  \"lease_duration\": 0,\n" \
	"  \"data\": null,\n  \"wrap_info\": null,\n  \"warnings\": null,\n" \
	"  \"auth\": {\n    \"client_token\": \"s.test-k8s-token\",\n" \
	"    \"accessor\": \"test-accessor-4\",\n    \"policies\": [\"default\"],\n" \
	"    \"metadata\": {\n      \"role\": \"test-k8s-role\",\n" \
	"      \"service_account_name\": \"test-sa\",\n" \
	"      \"service_account_namespace\": \"test-ns\",\n" \
	"      \"service_account_secret_name\": \"\",\n" \
	"      \"service_account_uid\": \"aaaaaaaa-0000-4000-8000-0000000000f4\"\n    },\n" \
	"    \"lease_duration\": 1200,\n    \"renewable\": true,\n" \
	"    \"entity_id\": \"aaaaaaaa-0000-4000-8000-0000000000e4\",\n" \
	"    \"token_type\": \"service\",\n    \"orphan\": true,\n" \
	"    \"mfa_requirement\": null,\n    \"num_uses\": 0\n  }\n}\n"

/* Cert login of a token that never expires and cannot be renewed. */
#define AUTH_CERT \
	"{\"request_id\":\"aaaaaaaa-0000-4000-8000-000000000005\",\"lease_id\":\"\"," \
	"\"renewable\":false,\"lease_duration\":0,\"data\":null,\"wrap_info\":null," \
	"\"warnings\":null,\"auth\":{\"client_token\":\"s.test-cert-token\"," \
	"\"accessor\":\"test-accessor-5\",\"policies\":[\"default\"]," \
	"\"metadata\":{\"authority_key_id\":\"01:02:03\",\"cert_name\":\"test-client\"," \
	"\"common_name\":\"client.test.invalid\",\"serial_number\":\"42\"," \
	"\"subject_key_id\":\"03:02:01\"},\"lease_duration\":0,\"renewable\":false," \
	"\"entity_id\":\"\",\"token_type\":\"service\",\"orphan\":true," \
	"\"mfa_requirement\":null,\"num_uses\":0}}"

/* Vault (not OpenBao) adds mount_type to the envelope. */
#define AUTH_MOUNT_TYPE \
	"{\"request_id\":\"aaaaaaaa-0000-4000-8000-000000000006\",\"lease_id\":\"\"," \
	"\"renewable\":false,\"lease_duration\":0,\"data\":null,\"wrap_info\":null," \
	"\"warnings\":null,\"auth\":{\"client_token\":\"hvs.test-token-vault\"," \
	"\"accessor\":\"test-accessor-6\",\"policies\":[\"default\"],\"metadata\":null," \
	"\"lease_duration\":2700,\"renewable\":true,\"entity_id\":\"\"," \
	"\"token_type\":\"service\",\"orphan\":true,\"mfa_requirement\":null," \
	"\"num_uses\":0},\"mount_type\":\"approle\"}"

/* The same keys in another order, auth first and its fields reversed. */
#define AUTH_SHUFFLED \
	"{\"auth\":{\"num_uses\":0,\"mfa_requirement\":null,\"orphan\":true," \
	"\"token_type\":\"service\",\"entity_id\":\"\",\"renewable\":true," \
	"\"lease_duration\":60,\"metadata\":{\"role_name\":\"test-role\"}," \
	"\"policies\":[\"default\"],\"accessor\":\"test-accessor-7\"," \
	"\"client_token\":\"s.test-token-shuffled\"},\"mount_type\":\"approle\"," \
	"\"warnings\":null,\"wrap_info\":null,\"data\":null,\"lease_duration\":0," \
	"\"renewable\":false,\"lease_id\":\"\"," \
	"\"request_id\":\"aaaaaaaa-0000-4000-8000-000000000007\"}"

/* auth/token/renew-self capped by the token's max TTL. */
#define AUTH_RENEW_SELF \
	"{\"request_id\":\"aaaaaaaa-0000-4000-8000-000000000008\",\"lease_id\":\"\"," \
	"\"renewable\":false,\"lease_duration\":0,\"data\":null,\"wrap_info\":null," \
	"\"warnings\":[\"TTL of \\\"1h\\\" exceeded the effective max_ttl of \\\"10m\\\"; " \
	"TTL value is capped accordingly\"],\"auth\":{\"client_token\":\"s.test-token\"," \
	"\"accessor\":\"test-accessor-1\",\"policies\":[\"default\"]," \
	"\"metadata\":{\"role_name\":\"test-role\"},\"lease_duration\":600," \
	"\"renewable\":true,\"entity_id\":\"\",\"token_type\":\"service\"," \
	"\"orphan\":true,\"mfa_requirement\":null,\"num_uses\":0}}"

/* auth/token/lookup-self of a token with a lease. */
#define LOOKUP_SELF \
	"{\"request_id\":\"aaaaaaaa-0000-4000-8000-000000000011\",\"lease_id\":\"\"," \
	"\"renewable\":false,\"lease_duration\":0,\"data\":{\"accessor\":\"test-accessor-1\"," \
	"\"creation_time\":1700000000,\"creation_ttl\":3600,\"display_name\":\"approle\"," \
	"\"entity_id\":\"\",\"expire_time\":\"2030-01-01T01:00:00.000000001Z\"," \
	"\"explicit_max_ttl\":0,\"id\":\"s.test-token\"," \
	"\"issue_time\":\"2030-01-01T00:00:00.000000001Z\"," \
	"\"meta\":{\"role_name\":\"test-role\"},\"num_uses\":0,\"orphan\":true," \
	"\"path\":\"auth/approle/login\",\"policies\":[\"default\"],\"renewable\":true," \
	"\"ttl\":3540,\"type\":\"service\"},\"wrap_info\":null,\"warnings\":null,\"auth\":null}"

/* lookup-self of a token that never expires: no renewable key. */
#define LOOKUP_ROOT \
	"{\"request_id\":\"aaaaaaaa-0000-4000-8000-000000000012\",\"lease_id\":\"\"," \
	"\"renewable\":false,\"lease_duration\":0,\"data\":{\"accessor\":\"test-accessor-0\"," \
	"\"creation_time\":1700000000,\"creation_ttl\":0,\"display_name\":\"root\"," \
	"\"entity_id\":\"\",\"expire_time\":null,\"explicit_max_ttl\":0," \
	"\"id\":\"s.test-root-token\",\"meta\":null,\"num_uses\":0,\"orphan\":true," \
	"\"path\":\"auth/token/root\",\"policies\":[\"root\"],\"ttl\":0,\"type\":\"service\"}," \
	"\"wrap_info\":null,\"warnings\":null,\"auth\":null}"

/* sys/leases/renew. */
#define RENEW_LEASE \
	"{\"request_id\":\"aaaaaaaa-0000-4000-8000-000000000021\"," \
	"\"lease_id\":\"database/creds/test-role/TESTleaseTESTleaseTEST01\"," \
	"\"renewable\":true,\"lease_duration\":3600,\"data\":null,\"wrap_info\":null," \
	"\"warnings\":null,\"auth\":null}"

/* A renewal capped by the lease's max TTL, with its warning. */
#define RENEW_CAPPED \
	"{\"request_id\":\"aaaaaaaa-0000-4000-8000-000000000022\"," \
	"\"lease_id\":\"database/creds/test-role/TESTleaseTESTleaseTEST01\"," \
	"\"renewable\":true,\"lease_duration\":300,\"data\":null,\"wrap_info\":null," \
	"\"warnings\":[\"TTL of \\\"1h\\\" exceeded the effective max_ttl of \\\"5m\\\"; " \
	"TTL value is capped accordingly\"],\"auth\":null}"

/* KV v1: data is the secret; non-string values are not fields, and the
 * advisory lease_duration is no lease. */
#define KV1_READ \
	"{\"request_id\":\"aaaaaaaa-0000-4000-8000-000000000031\",\"lease_id\":\"\"," \
	"\"renewable\":false,\"lease_duration\":2764800,\"data\":{" \
	"\"password\":\"test-password-not-real\",\"username\":\"test_user\"," \
	"\"port\":5432,\"ratio\":0.5,\"enabled\":true,\"nothing\":null," \
	"\"nested\":{\"inner\":\"not-a-field\"},\"list\":[\"not-a-field\"]}," \
	"\"wrap_info\":null,\"warnings\":null,\"auth\":null}"

/* KV v2: the secret in data.data, the version in data.metadata. */
#define KV2_READ \
	"{\"request_id\":\"aaaaaaaa-0000-4000-8000-000000000032\",\"lease_id\":\"\"," \
	"\"renewable\":false,\"lease_duration\":0,\"data\":{\"data\":{" \
	"\"password\":\"test-password-not-real\",\"username\":\"test_user\"}," \
	"\"metadata\":{\"created_time\":\"2030-01-01T00:00:00.000000001Z\"," \
	"\"custom_metadata\":{\"owner\":\"test-team\"},\"deletion_time\":\"\"," \
	"\"destroyed\":false,\"version\":3}},\"wrap_info\":null,\"warnings\":null,\"auth\":null}"

/* KV v2, a deleted version (a 404 with the envelope, no errors key). */
#define KV2_DELETED \
	"{\"request_id\":\"aaaaaaaa-0000-4000-8000-000000000033\",\"lease_id\":\"\"," \
	"\"renewable\":false,\"lease_duration\":0,\"data\":{\"data\":null," \
	"\"metadata\":{\"created_time\":\"2030-01-01T00:00:00.000000001Z\"," \
	"\"custom_metadata\":null,\"deletion_time\":\"2030-01-02T00:00:00.000000001Z\"," \
	"\"destroyed\":false,\"version\":2}},\"wrap_info\":null,\"warnings\":null,\"auth\":null}"

/* KV v2, a destroyed version. */
#define KV2_DESTROYED \
	"{\"request_id\":\"aaaaaaaa-0000-4000-8000-000000000034\",\"lease_id\":\"\"," \
	"\"renewable\":false,\"lease_duration\":0,\"data\":{\"data\":null," \
	"\"metadata\":{\"created_time\":\"2030-01-01T00:00:00.000000001Z\"," \
	"\"custom_metadata\":null,\"deletion_time\":\"\",\"destroyed\":true," \
	"\"version\":1}},\"wrap_info\":null,\"warnings\":null,\"auth\":null}"

/* Dynamic database credentials and their lease. */
#define DB_CREDS \
	"{\"request_id\":\"aaaaaaaa-0000-4000-8000-000000000041\"," \
	"\"lease_id\":\"database/creds/test-role/TESTleaseTESTleaseTEST01\"," \
	"\"renewable\":true,\"lease_duration\":3600,\"data\":{" \
	"\"password\":\"test-password-not-real\",\"username\":\"v-test-role-TEST0001\"}," \
	"\"wrap_info\":null,\"warnings\":null,\"auth\":null}"

/* Static database credentials: ttl to the next rotation, no lease id. */
#define DB_STATIC \
	"{\"request_id\":\"aaaaaaaa-0000-4000-8000-000000000042\",\"lease_id\":\"\"," \
	"\"renewable\":false,\"lease_duration\":0,\"data\":{" \
	"\"last_vault_rotation\":\"2030-01-01T00:00:00.000000001Z\"," \
	"\"password\":\"test-password-not-real\",\"rotation_period\":86400," \
	"\"ttl\":75845,\"username\":\"test_user\"},\"wrap_info\":null,\"warnings\":null," \
	"\"auth\":null}"

#define ERR_DENIED	"{\"errors\":[\"permission denied\"]}"
#define ERR_MULTI \
	"{\"errors\":[\"2 errors occurred:\\n\\t* permission denied\\n\\t* invalid token\\n\\n\"]}"
#define ERR_SEALED	"{\"errors\":[\"Vault is sealed\"]}"
#define ERR_EMPTY	"{\"errors\":[]}"

#define S(x)	(x), (sizeof(x) - 1)

/* ------------------------------------------------------------------ */
/* vault_parse_auth                                                    */
/* ------------------------------------------------------------------ */

static void
test_auth_shapes(void **state)
{
	static const struct {
		const char *name, *body;
		const char *token;
		int64_t ttl_s;
		bool renewable;
	} cases[] = {
		{ "approle", AUTH_APPROLE, "s.test-token", 3600, true },
		{ "warnings", AUTH_WARNINGS, "s.test-token-warned", 1800, true },
		{ "jwt", AUTH_JWT, "s.test-jwt-token", 900, true },
		{ "kubernetes", AUTH_K8S, "s.test-k8s-token", 1200, true },
		{ "cert", AUTH_CERT, "s.test-cert-token", 0, false },
		{ "mount_type", AUTH_MOUNT_TYPE, "hvs.test-token-vault", 2700, true },
		{ "shuffled", AUTH_SHUFFLED, "s.test-token-shuffled", 60, true },
		{ "renew-self", AUTH_RENEW_SELF, "s.test-token", 600, true },
		{ "minimal", "{\"auth\":{\"client_token\":\"t\"}}", "t", 0, false },
		{ "nulls", "{\"auth\":{\"client_token\":\"t\",\"lease_duration\":null,"
		    "\"renewable\":null}}", "t", 0, false },
		{ "escaped token", "{\"auth\":{\"client_token\":\"s.a\\/b\\u0041\"}}",
		    "s.a/bA", 0, false },
	};
	size_t i, before = in_use();

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct vault_auth a;
		const char *why = NULL;

		memset(&a, 0x5a, sizeof(a));
		if (vault_parse_auth(cases[i].body, strlen(cases[i].body), &a, &why) != 0)
			fail_msg("%s: refused: %s", cases[i].name, why);
		assert_null(why);
		assert_non_null(a.token);
		assert_string_equal(a.token, cases[i].token);
		assert_true(secmem_owns(a.token));
		assert_int_equal(a.ttl_s, cases[i].ttl_s);
		assert_int_equal(a.renewable, cases[i].renewable);
		vault_auth_clear(&a);
		assert_null(a.token);
		assert_int_equal(a.ttl_s, 0);
		assert_false(a.renewable);
		assert_int_equal(in_use(), before);
	}
}

static void
test_auth_clear_wipes(void **state)
{
	struct vault_auth a;
	char *keep;
	size_t n, i, before = in_use();

	(void)state;
	assert_int_equal(vault_parse_auth(S(AUTH_APPROLE), &a, NULL), 0);
	keep = a.token;
	n = strlen(keep);
	assert_int_equal(n, strlen("s.test-token"));
	vault_auth_clear(&a);
	assert_null(a.token);
	/* The pool stays mapped: the token's bytes must now read as zero. */
	for (i = 0; i < n; i++)
		assert_int_equal(keep[i], 0);
	assert_int_equal(in_use(), before);
	/* Clearing twice, and clearing what was never filled, is safe. */
	vault_auth_clear(&a);
	memset(&a, 0, sizeof(a));
	vault_auth_clear(&a);
}

static void
test_auth_refused(void **state)
{
	static const struct {
		const char *name, *body;
	} cases[] = {
		{ "missing auth", "{\"request_id\":\"x\",\"data\":null}" },
		{ "empty object", "{}" },
		{ "auth null", "{\"lease_id\":\"\",\"data\":{\"a\":\"b\"},\"auth\":null}" },
		{ "auth string", "{\"auth\":\"s.test-token\"}" },
		{ "auth array", "{\"auth\":[{\"client_token\":\"s.test-token\"}]}" },
		{ "no client_token", "{\"auth\":{\"accessor\":\"a\",\"lease_duration\":60}}" },
		{ "empty client_token", "{\"auth\":{\"client_token\":\"\",\"lease_duration\":60}}" },
		{ "client_token null", "{\"auth\":{\"client_token\":null}}" },
		{ "client_token number", "{\"auth\":{\"client_token\":12345}}" },
		{ "client_token object", "{\"auth\":{\"client_token\":{\"id\":\"t\"}}}" },
		{ "lease_duration string", "{\"auth\":{\"client_token\":\"t\","
		    "\"lease_duration\":\"3600\",\"renewable\":true}}" },
		{ "lease_duration real", "{\"auth\":{\"client_token\":\"t\","
		    "\"lease_duration\":3600.0}}" },
		{ "lease_duration negative", "{\"auth\":{\"client_token\":\"t\","
		    "\"lease_duration\":-1}}" },
		{ "lease_duration bool", "{\"auth\":{\"client_token\":\"t\","
		    "\"lease_duration\":true}}" },
		{ "renewable string", "{\"auth\":{\"client_token\":\"t\","
		    "\"lease_duration\":60,\"renewable\":\"true\"}}" },
		{ "renewable number", "{\"auth\":{\"client_token\":\"t\",\"renewable\":1}}" },
		{ "not JSON", "permission denied" },
		{ "empty body", "" },
		{ "blank body", " \n" },
		{ "HTML", "<html><body>502 Bad Gateway</body></html>" },
		{ "array at top", "[{\"auth\":{\"client_token\":\"t\"}}]" },
		{ "string at top", "\"s.test-token\"" },
		{ "null at top", "null" },
		{ "duplicate auth", "{\"auth\":{\"client_token\":\"t1\"},"
		    "\"auth\":{\"client_token\":\"t2\"}}" },
		{ "duplicate client_token", "{\"auth\":{\"client_token\":\"t1\","
		    "\"client_token\":\"t2\"}}" },
		{ "duplicate elsewhere", "{\"auth\":{\"client_token\":\"t\"},"
		    "\"warnings\":null,\"warnings\":null}" },
		{ "trailing bytes", AUTH_APPROLE "x" },
		{ "trailing object", AUTH_APPROLE "{}" },
		{ "two bodies", AUTH_APPROLE AUTH_APPROLE },
		{ "NUL in token", "{\"auth\":{\"client_token\":\"s.test\\u0000token\"}}" },
		{ "unterminated", "{\"auth\":{\"client_token\":\"t\"}" },
		{ "single quotes", "{'auth':{'client_token':'t'}}" },
		{ "nested too deep", "{\"auth\":{\"client_token\":\"t\",\"metadata\":"
		    "[[[[[[[[[[[[[[[[[[\"x\"]]]]]]]]]]]]]]]]]]}}" },
	};
	size_t i, before = in_use();

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct vault_auth a;
		const char *why = NULL;
		int r;

		memset(&a, 0x5a, sizeof(a));
		r = vault_parse_auth(cases[i].body, strlen(cases[i].body), &a, &why);
		if (r != CG_ERR_FORMAT)
			fail_msg("%s: got %d, want CG_ERR_FORMAT", cases[i].name, r);
		assert_non_null(why);
		assert_null(a.token);
		assert_int_equal(a.ttl_s, 0);
		assert_false(a.renewable);
		assert_int_equal(in_use(), before);
	}
}

/* A raw NUL ends nothing: the length given is what is parsed. */
static void
test_auth_nul_bytes(void **state)
{
	static const char body[] = "{\"auth\":{\"client_token\":\"t\"}}\0";
	struct vault_auth a;

	(void)state;
	assert_int_equal(vault_parse_auth(body, sizeof(body) - 1, &a, NULL), CG_ERR_FORMAT);
	assert_int_equal(vault_parse_auth(body, sizeof(body) - 2, &a, NULL), 0);
	assert_string_equal(a.token, "t");
	vault_auth_clear(&a);
	/* Only the bytes given are read: a body cut before its end fails
	 * even though the buffer goes on. */
	assert_int_equal(vault_parse_auth(body, sizeof(body) - 3, &a, NULL), CG_ERR_FORMAT);
}

/* ------------------------------------------------------------------ */
/* vault_parse_lookup, vault_parse_renew                               */
/* ------------------------------------------------------------------ */

static void
test_lookup(void **state)
{
	static const struct {
		const char *name, *body;
		int r;
		int64_t ttl_s;
		bool renewable;
	} cases[] = {
		{ "lookup-self", LOOKUP_SELF, 0, 3540, true },
		{ "root token", LOOKUP_ROOT, 0, 0, false },
		{ "not renewable", "{\"data\":{\"ttl\":10,\"renewable\":false}}", 0, 10, false },
		{ "empty data", "{\"data\":{}}", 0, 0, false },
		/* The envelope's own renewable is not the token's. */
		{ "top-level fields", "{\"renewable\":true,\"lease_duration\":99,"
		    "\"data\":{\"ttl\":5}}", 0, 5, false },
		{ "data null", "{\"data\":null,\"auth\":null}", CG_ERR_FORMAT, 0, false },
		{ "no data", "{\"ttl\":3540,\"renewable\":true}", CG_ERR_FORMAT, 0, false },
		{ "data array", "{\"data\":[{\"ttl\":1}]}", CG_ERR_FORMAT, 0, false },
		{ "ttl string", "{\"data\":{\"ttl\":\"3540\",\"renewable\":true}}",
		    CG_ERR_FORMAT, 0, false },
		{ "ttl real", "{\"data\":{\"ttl\":3540.5}}", CG_ERR_FORMAT, 0, false },
		{ "ttl negative", "{\"data\":{\"ttl\":-3}}", CG_ERR_FORMAT, 0, false },
		{ "renewable string", "{\"data\":{\"ttl\":1,\"renewable\":\"yes\"}}",
		    CG_ERR_FORMAT, 0, false },
		{ "not JSON", "forbidden", CG_ERR_FORMAT, 0, false },
		{ "array at top", "[]", CG_ERR_FORMAT, 0, false },
		{ "duplicate ttl", "{\"data\":{\"ttl\":1,\"ttl\":2}}", CG_ERR_FORMAT, 0, false },
		{ "trailing bytes", LOOKUP_SELF ",", CG_ERR_FORMAT, 0, false },
	};
	size_t i, before = in_use();

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int64_t ttl = -7;
		bool ren = true;
		const char *why = NULL;
		int r;

		r = vault_parse_lookup(cases[i].body, strlen(cases[i].body), &ttl, &ren, &why);
		if (r != cases[i].r)
			fail_msg("%s: got %d, want %d (%s)", cases[i].name, r, cases[i].r,
			    why != NULL ? why : "-");
		/* A failure leaves nothing half read: 0 and false. */
		assert_int_equal(ttl, cases[i].ttl_s);
		assert_int_equal(ren, cases[i].renewable);
		if (r != 0)
			assert_non_null(why);
		assert_int_equal(in_use(), before);
	}
}

static void
test_renew(void **state)
{
	static const struct {
		const char *name, *body;
		int r;
		int64_t ttl_s;
		bool renewable;
	} cases[] = {
		{ "renew", RENEW_LEASE, 0, 3600, true },
		{ "capped", RENEW_CAPPED, 0, 300, true },
		{ "not renewable", "{\"lease_id\":\"x\",\"renewable\":false,"
		    "\"lease_duration\":30}", 0, 30, false },
		{ "no fields", "{}", 0, 0, false },
		/* data's fields are not the lease's. */
		{ "data ignored", "{\"data\":{\"lease_duration\":5,\"renewable\":true}}",
		    0, 0, false },
		{ "lease_duration string", "{\"lease_duration\":\"3600\",\"renewable\":true}",
		    CG_ERR_FORMAT, 0, false },
		{ "lease_duration real", "{\"lease_duration\":1.5}", CG_ERR_FORMAT, 0, false },
		{ "lease_duration negative", "{\"lease_duration\":-60}", CG_ERR_FORMAT, 0, false },
		{ "renewable string", "{\"lease_duration\":60,\"renewable\":\"true\"}",
		    CG_ERR_FORMAT, 0, false },
		{ "not JSON", "lease not found", CG_ERR_FORMAT, 0, false },
		{ "array at top", "[{\"lease_duration\":60}]", CG_ERR_FORMAT, 0, false },
		{ "duplicate", "{\"lease_duration\":60,\"lease_duration\":6000}",
		    CG_ERR_FORMAT, 0, false },
		{ "trailing bytes", RENEW_LEASE "]", CG_ERR_FORMAT, 0, false },
	};
	size_t i, before = in_use();

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int64_t ttl = -7;
		bool ren = true;
		const char *why = NULL;
		int r;

		r = vault_parse_renew(cases[i].body, strlen(cases[i].body), &ttl, &ren, &why);
		if (r != cases[i].r)
			fail_msg("%s: got %d, want %d (%s)", cases[i].name, r, cases[i].r,
			    why != NULL ? why : "-");
		/* A failure leaves nothing half read: 0 and false. */
		assert_int_equal(ttl, cases[i].ttl_s);
		assert_int_equal(ren, cases[i].renewable);
		if (r != 0)
			assert_non_null(why);
		assert_int_equal(in_use(), before);
	}
}

/* ------------------------------------------------------------------ */
/* vault_parse_secret                                                  */
/* ------------------------------------------------------------------ */

/* A version of "h" and 16 lowercase hex digits. */
static void
assert_digest_version(const char *v)
{
	size_t i;

	assert_int_equal(strlen(v), 17);
	assert_int_equal(v[0], 'h');
	for (i = 1; i < 17; i++)
		assert_non_null(strchr("0123456789abcdef", v[i]));
}

static void
assert_field(const struct secret *s, const char *name, const char *want)
{
	size_t len = 0;
	const char *v = secret_field(s, name, &len);

	if (v == NULL)
		fail_msg("no field %s", name);
	assert_int_equal(len, strlen(want));
	assert_memory_equal(v, want, len);
	assert_true(secmem_owns(v));
}

static void
test_secret_kinds(void **state)
{
	static const struct {
		const char *name;
		enum vault_kind kind;
		const char *body;
		size_t nfields;
		const char *f[3][2];	/* name, value */
		const char *version;	/* NULL: a digest */
		bool lease;
		const char *lease_id;	/* NULL: none */
		int64_t duration_ms;
		bool renewable;
	} cases[] = {
		{ "kv1", VAULT_KV1, KV1_READ, 2,
		    { { "password", "test-password-not-real" }, { "username", "test_user" } },
		    NULL, false, NULL, 0, false },
		{ "kv1 empty", VAULT_KV1, "{\"data\":{}}", 0, { { NULL, NULL } },
		    NULL, false, NULL, 0, false },
		{ "kv2", VAULT_KV2, KV2_READ, 2,
		    { { "password", "test-password-not-real" }, { "username", "test_user" } },
		    "3", false, NULL, 0, false },
		{ "kv2 non-strings", VAULT_KV2, "{\"data\":{\"data\":{\"a\":\"1\",\"b\":2,"
		    "\"c\":[\"3\"]},\"metadata\":{\"version\":12}}}", 1,
		    { { "a", "1" } }, "12", false, NULL, 0, false },
		{ "db creds", VAULT_DB_CREDS, DB_CREDS, 2,
		    { { "password", "test-password-not-real" },
		    { "username", "v-test-role-TEST0001" } },
		    NULL, true, "database/creds/test-role/TESTleaseTESTleaseTEST01",
		    3600000, true },
		{ "db creds not renewable", VAULT_DB_CREDS, "{\"lease_id\":\"db/creds/r/L\","
		    "\"lease_duration\":60,\"data\":{\"username\":\"u\",\"password\":\"p\"}}", 2,
		    { { "password", "p" }, { "username", "u" } },
		    NULL, true, "db/creds/r/L", 60000, false },
		{ "db static", VAULT_DB_STATIC, DB_STATIC, 3,
		    { { "last_vault_rotation", "2030-01-01T00:00:00.000000001Z" },
		    { "password", "test-password-not-real" }, { "username", "test_user" } },
		    NULL, true, NULL, 75845000, false },
		{ "db static no ttl", VAULT_DB_STATIC, "{\"data\":{\"username\":\"u\","
		    "\"password\":\"p\"}}", 2, { { "password", "p" }, { "username", "u" } },
		    NULL, false, NULL, 0, false },
	};
	size_t i, j, before = in_use();

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct secret_lease *l;
		struct secret *s = (struct secret *)&s;
		const char *why = NULL;
		int r;

		r = vault_parse_secret(cases[i].kind, "test/path", KEY_A, cases[i].body,
		    strlen(cases[i].body), &s, &why);
		if (r != 0)
			fail_msg("%s: refused (%d): %s", cases[i].name, r, why);
		assert_null(why);
		assert_non_null(s);
		assert_string_equal(secret_path(s), "test/path");
		if (secret_nfields(s) != cases[i].nfields)
			fail_msg("%s: %zu fields", cases[i].name, secret_nfields(s));
		for (j = 0; j < cases[i].nfields; j++)
			assert_field(s, cases[i].f[j][0], cases[i].f[j][1]);
		/* Fields come sorted by name, whatever the server's order. */
		for (j = 1; j < cases[i].nfields; j++)
			assert_true(strcmp(secret_field_name(s, j - 1), secret_field_name(s, j)) < 0);
		if (cases[i].version != NULL)
			assert_string_equal(secret_version(s), cases[i].version);
		else
			assert_digest_version(secret_version(s));
		l = secret_lease(s);
		if (!cases[i].lease) {
			if (l != NULL)
				fail_msg("%s: unexpected lease", cases[i].name);
		} else {
			assert_non_null(l);
			if (cases[i].lease_id == NULL)
				assert_null(l->id);
			else {
				assert_string_equal(l->id, cases[i].lease_id);
				assert_true(secmem_owns(l->id));
			}
			assert_int_equal(l->duration_ms, cases[i].duration_ms);
			assert_int_equal(l->renewable, cases[i].renewable);
		}
		assert_true(secmem_owns(s));
		secret_unref(s);
		assert_int_equal(in_use(), before);
	}
}

static void
test_secret_refused(void **state)
{
	static const struct {
		const char *name;
		enum vault_kind kind;
		const char *body;
		int r;
	} cases[] = {
		/* Every kind needs a data object. */
		{ "kv1 no data", VAULT_KV1, "{\"lease_id\":\"\"}", CG_ERR_FORMAT },
		{ "kv1 data null", VAULT_KV1, "{\"data\":null}", CG_ERR_FORMAT },
		{ "kv1 data string", VAULT_KV1, "{\"data\":\"x\"}", CG_ERR_FORMAT },
		{ "kv1 data array", VAULT_KV1, "{\"data\":[\"x\"]}", CG_ERR_FORMAT },
		{ "kv2 no data", VAULT_KV2, "{}", CG_ERR_FORMAT },
		{ "db creds no data", VAULT_DB_CREDS, "{\"lease_id\":\"l\",\"data\":null}",
		    CG_ERR_FORMAT },
		{ "db static no data", VAULT_DB_STATIC, "{\"data\":false}", CG_ERR_FORMAT },
		/* KV v2: a deleted or destroyed version is gone; the version
		 * info is required. */
		{ "kv2 deleted", VAULT_KV2, KV2_DELETED, CG_ERR_NOTFOUND },
		{ "kv2 destroyed", VAULT_KV2, KV2_DESTROYED, CG_ERR_NOTFOUND },
		{ "kv2 no metadata", VAULT_KV2, "{\"data\":{\"data\":{\"a\":\"b\"}}}",
		    CG_ERR_FORMAT },
		{ "kv2 metadata null", VAULT_KV2, "{\"data\":{\"data\":{\"a\":\"b\"},"
		    "\"metadata\":null}}", CG_ERR_FORMAT },
		{ "kv2 no version", VAULT_KV2, "{\"data\":{\"data\":{\"a\":\"b\"},"
		    "\"metadata\":{\"destroyed\":false}}}", CG_ERR_FORMAT },
		{ "kv2 version string", VAULT_KV2, "{\"data\":{\"data\":{\"a\":\"b\"},"
		    "\"metadata\":{\"version\":\"3\"}}}", CG_ERR_FORMAT },
		{ "kv2 version real", VAULT_KV2, "{\"data\":{\"data\":{\"a\":\"b\"},"
		    "\"metadata\":{\"version\":3.0}}}", CG_ERR_FORMAT },
		{ "kv2 deleted without metadata", VAULT_KV2, "{\"data\":{\"data\":null}}",
		    CG_ERR_FORMAT },
		{ "kv2 data.data missing", VAULT_KV2, "{\"data\":{\"metadata\":"
		    "{\"version\":1}}}", CG_ERR_FORMAT },
		{ "kv2 data.data string", VAULT_KV2, "{\"data\":{\"data\":\"x\","
		    "\"metadata\":{\"version\":1}}}", CG_ERR_FORMAT },
		/* The wrong-path answer of KV v2: no metadata either. */
		{ "kv2 read as kv1 path", VAULT_KV2, "{\"data\":null,\"warnings\":"
		    "[\"Invalid path for a versioned K/V secrets engine.\"]}", CG_ERR_FORMAT },
		/* Database creds: username and password as strings; a lease id. */
		{ "db creds no username", VAULT_DB_CREDS, "{\"lease_id\":\"l\","
		    "\"lease_duration\":60,\"data\":{\"password\":\"p\"}}", CG_ERR_FORMAT },
		{ "db creds no password", VAULT_DB_CREDS, "{\"lease_id\":\"l\","
		    "\"lease_duration\":60,\"data\":{\"username\":\"u\"}}", CG_ERR_FORMAT },
		{ "db creds password number", VAULT_DB_CREDS, "{\"lease_id\":\"l\","
		    "\"data\":{\"username\":\"u\",\"password\":1234}}", CG_ERR_FORMAT },
		{ "db creds rsa key only", VAULT_DB_CREDS, "{\"lease_id\":\"l\","
		    "\"data\":{\"username\":\"u\",\"rsa_private_key\":\"k\"}}", CG_ERR_FORMAT },
		{ "db creds no lease_id", VAULT_DB_CREDS, "{\"lease_duration\":60,"
		    "\"data\":{\"username\":\"u\",\"password\":\"p\"}}", CG_ERR_FORMAT },
		{ "db creds lease_id null", VAULT_DB_CREDS, "{\"lease_id\":null,"
		    "\"data\":{\"username\":\"u\",\"password\":\"p\"}}", CG_ERR_FORMAT },
		{ "db creds lease_duration string", VAULT_DB_CREDS, "{\"lease_id\":\"l\","
		    "\"lease_duration\":\"60\",\"data\":{\"username\":\"u\",\"password\":\"p\"}}",
		    CG_ERR_FORMAT },
		{ "db creds renewable string", VAULT_DB_CREDS, "{\"lease_id\":\"l\","
		    "\"renewable\":\"true\",\"data\":{\"username\":\"u\",\"password\":\"p\"}}",
		    CG_ERR_FORMAT },
		{ "db static no username", VAULT_DB_STATIC, "{\"data\":{\"password\":\"p\","
		    "\"ttl\":5}}", CG_ERR_FORMAT },
		{ "db static no password", VAULT_DB_STATIC, "{\"data\":{\"username\":\"u\","
		    "\"ttl\":5}}", CG_ERR_FORMAT },
		{ "db static ttl string", VAULT_DB_STATIC, "{\"data\":{\"username\":\"u\","
		    "\"password\":\"p\",\"ttl\":\"5\"}}", CG_ERR_FORMAT },
		{ "db static ttl negative", VAULT_DB_STATIC, "{\"data\":{\"username\":\"u\","
		    "\"password\":\"p\",\"ttl\":-5}}", CG_ERR_FORMAT },
		/* Not a response at all. */
		{ "not JSON", VAULT_KV1, "<html></html>", CG_ERR_FORMAT },
		{ "array at top", VAULT_KV2, "[{\"data\":{}}]", CG_ERR_FORMAT },
		{ "duplicate field", VAULT_KV1, "{\"data\":{\"password\":\"a\","
		    "\"password\":\"b\"}}", CG_ERR_FORMAT },
		{ "duplicate data", VAULT_DB_CREDS, "{\"lease_id\":\"l\",\"data\":"
		    "{\"username\":\"u\",\"password\":\"p\"},\"data\":{\"username\":\"v\","
		    "\"password\":\"q\"}}", CG_ERR_FORMAT },
		{ "trailing bytes", VAULT_KV2, KV2_READ "\"", CG_ERR_FORMAT },
		{ "NUL in value", VAULT_KV1, "{\"data\":{\"password\":\"a\\u0000b\"}}",
		    CG_ERR_FORMAT },
	};
	size_t i, before = in_use();

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct secret *s = (struct secret *)&s;
		const char *why = NULL;
		int r;

		r = vault_parse_secret(cases[i].kind, "test/path", KEY_A, cases[i].body,
		    strlen(cases[i].body), &s, &why);
		if (r != cases[i].r)
			fail_msg("%s: got %d, want %d (%s)", cases[i].name, r, cases[i].r,
			    why != NULL ? why : "-");
		assert_null(s);
		assert_non_null(why);
		/* The reason is a static text, never a value. */
		assert_null(strstr(why, "test-password"));
		assert_int_equal(in_use(), before);
	}
}

/* The digest version of body read as kind under key; fails the test on
 * error. */
static void
version_of(enum vault_kind kind, const unsigned char *key, const char *body,
    char out[18])
{
	struct secret *s = NULL;
	const char *why = NULL;

	if (vault_parse_secret(kind, "test/path", key, body, strlen(body), &s, &why) != 0)
		fail_msg("refused: %s: %s", body, why);
	assert_digest_version(secret_version(s));
	memcpy(out, secret_version(s), 18);
	secret_unref(s);
}

static void
test_version_digest(void **state)
{
	char v1[18], v2[18];

	(void)state;
	/* The order the server wrote the fields in does not matter. */
	version_of(VAULT_KV1, KEY_A, "{\"data\":{\"username\":\"u\",\"password\":\"p\","
	    "\"host\":\"db.test.invalid\"}}", v1);
	version_of(VAULT_KV1, KEY_A, "{\"data\":{\"host\":\"db.test.invalid\","
	    "\"password\":\"p\",\"username\":\"u\"}}", v2);
	assert_string_equal(v1, v2);
	/* Nor does anything but the string fields. */
	version_of(VAULT_KV1, KEY_A, "{\"lease_duration\":60,\"data\":{\"port\":1,"
	    "\"password\":\"p\",\"username\":\"u\",\"host\":\"db.test.invalid\"}}", v2);
	assert_string_equal(v1, v2);
	/* Nor the kind, for the same fields. */
	version_of(VAULT_DB_STATIC, KEY_A, "{\"data\":{\"ttl\":10,\"password\":\"p\","
	    "\"host\":\"db.test.invalid\",\"username\":\"u\"}}", v2);
	assert_string_equal(v1, v2);
	/* A changed value is another version. */
	version_of(VAULT_KV1, KEY_A, "{\"data\":{\"username\":\"u\",\"password\":\"q\","
	    "\"host\":\"db.test.invalid\"}}", v2);
	assert_string_not_equal(v1, v2);
	/* So is a renamed, added or removed field. */
	version_of(VAULT_KV1, KEY_A, "{\"data\":{\"username\":\"u\",\"passwd\":\"p\","
	    "\"host\":\"db.test.invalid\"}}", v2);
	assert_string_not_equal(v1, v2);
	version_of(VAULT_KV1, KEY_A, "{\"data\":{\"username\":\"u\",\"password\":\"p\","
	    "\"host\":\"db.test.invalid\",\"x\":\"\"}}", v2);
	assert_string_not_equal(v1, v2);
	version_of(VAULT_KV1, KEY_A, "{\"data\":{\"username\":\"u\",\"password\":\"p\"}}", v2);
	assert_string_not_equal(v1, v2);
	/* Another key gives another version of the same fields. */
	version_of(VAULT_KV1, KEY_B, "{\"data\":{\"username\":\"u\",\"password\":\"p\","
	    "\"host\":\"db.test.invalid\"}}", v2);
	assert_string_not_equal(v1, v2);

	/* Where a name ends and its value starts is part of the digest. */
	version_of(VAULT_KV1, KEY_A, "{\"data\":{\"ab\":\"c\"}}", v1);
	version_of(VAULT_KV1, KEY_A, "{\"data\":{\"a\":\"bc\"}}", v2);
	assert_string_not_equal(v1, v2);
	version_of(VAULT_KV1, KEY_A, "{\"data\":{\"a\":\"b\",\"c\":\"\"}}", v1);
	version_of(VAULT_KV1, KEY_A, "{\"data\":{\"a\":\"\",\"bc\":\"\"}}", v2);
	assert_string_not_equal(v1, v2);
	/* No fields still have a version. */
	version_of(VAULT_KV1, KEY_A, "{\"data\":{}}", v1);
	version_of(VAULT_KV1, KEY_A, "{\"data\":{\"a\":\"\"}}", v2);
	assert_string_not_equal(v1, v2);
}

/* Seconds that milliseconds cannot hold are refused, not wrapped. */
static void
test_huge_durations(void **state)
{
	static const struct {
		enum { H_AUTH, H_LOOKUP, H_RENEW, H_SECRET } call;
		enum vault_kind kind;
		const char *body;
		int r;
		int64_t ms;
	} cases[] = {
		{ H_SECRET, VAULT_DB_CREDS, "{\"lease_id\":\"l\",\"lease_duration\":"
		    "9223372036854775,\"data\":{\"username\":\"u\",\"password\":\"p\"}}",
		    0, INT64_C(9223372036854775000) },
		{ H_SECRET, VAULT_DB_CREDS, "{\"lease_id\":\"l\",\"lease_duration\":"
		    "9223372036854776,\"data\":{\"username\":\"u\",\"password\":\"p\"}}",
		    CG_ERR_FORMAT, 0 },
		{ H_SECRET, VAULT_DB_CREDS, "{\"lease_id\":\"l\",\"lease_duration\":"
		    "9223372036854775807,\"data\":{\"username\":\"u\",\"password\":\"p\"}}",
		    CG_ERR_FORMAT, 0 },
		/* Wraps to a small positive number of milliseconds. */
		{ H_SECRET, VAULT_DB_CREDS, "{\"lease_id\":\"l\",\"lease_duration\":"
		    "18446744073709552,\"data\":{\"username\":\"u\",\"password\":\"p\"}}",
		    CG_ERR_FORMAT, 0 },
		{ H_SECRET, VAULT_DB_STATIC, "{\"data\":{\"username\":\"u\","
		    "\"password\":\"p\",\"ttl\":9223372036854775}}",
		    0, INT64_C(9223372036854775000) },
		{ H_SECRET, VAULT_DB_STATIC, "{\"data\":{\"username\":\"u\","
		    "\"password\":\"p\",\"ttl\":9223372036854775807}}", CG_ERR_FORMAT, 0 },
		{ H_AUTH, 0, "{\"auth\":{\"client_token\":\"t\",\"lease_duration\":"
		    "9223372036854775}}", 0, INT64_C(9223372036854775) },
		{ H_AUTH, 0, "{\"auth\":{\"client_token\":\"t\",\"lease_duration\":"
		    "9223372036854775807}}", CG_ERR_FORMAT, 0 },
		{ H_LOOKUP, 0, "{\"data\":{\"ttl\":9223372036854775807}}", CG_ERR_FORMAT, 0 },
		{ H_RENEW, 0, "{\"lease_duration\":9223372036854775807}", CG_ERR_FORMAT, 0 },
	};
	size_t i, before = in_use();

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *body = cases[i].body;
		struct secret *s = NULL;
		struct vault_auth a;
		int64_t got = 0;
		bool ren;
		int r = CG_ERR_INTERNAL;

		switch (cases[i].call) {
		case H_AUTH:
			r = vault_parse_auth(body, strlen(body), &a, NULL);
			got = a.ttl_s;
			vault_auth_clear(&a);
			break;
		case H_LOOKUP:
			r = vault_parse_lookup(body, strlen(body), &got, &ren, NULL);
			break;
		case H_RENEW:
			r = vault_parse_renew(body, strlen(body), &got, &ren, NULL);
			break;
		case H_SECRET:
			r = vault_parse_secret(cases[i].kind, "p", KEY_A, body, strlen(body),
			    &s, NULL);
			if (r == 0)
				got = secret_lease(s)->duration_ms;
			secret_unref(s);
			break;
		}
		if (r != cases[i].r)
			fail_msg("case %zu: got %d, want %d", i, r, cases[i].r);
		if (r == 0)
			assert_int_equal(got, cases[i].ms);
		assert_int_equal(in_use(), before);
	}
}

/* A body of n string fields ("f00".."fNN"), plus extra non-string ones. */
static char *
many_fields(enum vault_kind kind, size_t n, size_t extra)
{
	size_t cap = 64 + (n + extra) * 32, at = 0, i;
	char *b = malloc(cap);

	assert_non_null(b);
	at += (size_t)snprintf(b + at, cap - at, "%s",
	    kind == VAULT_KV2 ? "{\"data\":{\"metadata\":{\"version\":7},\"data\":{" :
	    "{\"data\":{");
	for (i = 0; i < n + extra; i++)
		at += (size_t)snprintf(b + at, cap - at, i < n ? "%s\"f%03zu\":\"v%zu\"" :
		    "%s\"n%03zu\":%zu", i > 0 ? "," : "", i, i);
	at += (size_t)snprintf(b + at, cap - at, "%s", kind == VAULT_KV2 ? "}}}" : "}}");
	assert_true(at < cap);
	return b;
}

static void
test_field_limit(void **state)
{
	static const struct {
		enum vault_kind kind;
		size_t n, extra;
		int r;
	} cases[] = {
		{ VAULT_KV1, 64, 0, 0 },
		{ VAULT_KV1, 65, 0, CG_ERR_LIMIT },
		{ VAULT_KV1, 200, 0, CG_ERR_LIMIT },
		/* Only string fields count. */
		{ VAULT_KV1, 64, 100, 0 },
		{ VAULT_KV2, 64, 0, 0 },
		{ VAULT_KV2, 65, 0, CG_ERR_LIMIT },
	};
	size_t i, before = in_use();

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *body = many_fields(cases[i].kind, cases[i].n, cases[i].extra);
		struct secret *s = NULL;
		const char *why = NULL;
		int r;

		r = vault_parse_secret(cases[i].kind, "p", KEY_A, body, strlen(body), &s, &why);
		if (r != cases[i].r)
			fail_msg("case %zu: got %d, want %d", i, r, cases[i].r);
		if (r == 0) {
			assert_int_equal(secret_nfields(s), cases[i].n);
			assert_field(s, "f063", "v63");
			assert_field(s, "f000", "v0");
		} else {
			assert_null(s);
			assert_non_null(why);
		}
		secret_unref(s);
		free(body);
		assert_int_equal(in_use(), before);
	}
}

static void
test_escapes(void **state)
{
	static const char body[] = "{\"data\":{"
	    "\"password\":\"q\\\"b\\\\s\\/n\\nt\\tr\\rf\\fb\\bu\\u00e9\\ud83d\\ude00x\","
	    "\"raw\":\"\xc3\xa9\","
	    "\"na\\u006de\":\"v\"}}";
	static const char want[] = "q\"b\\s/n\nt\tr\rf\fb\bu\xc3\xa9\xf0\x9f\x98\x80x";
	struct secret *s = NULL;

	(void)state;
	assert_int_equal(vault_parse_secret(VAULT_KV1, "p", KEY_A, S(body), &s, NULL), 0);
	assert_field(s, "password", want);
	assert_field(s, "raw", "\xc3\xa9");
	assert_field(s, "name", "v");
	secret_unref(s);

	/* Lone surrogates and invalid UTF-8 are not JSON. */
	assert_int_equal(vault_parse_secret(VAULT_KV1, "p", KEY_A,
	    S("{\"data\":{\"p\":\"\\ud83d\"}}"), &s, NULL), CG_ERR_FORMAT);
	assert_int_equal(vault_parse_secret(VAULT_KV1, "p", KEY_A,
	    S("{\"data\":{\"p\":\"\xff\"}}"), &s, NULL), CG_ERR_FORMAT);
	assert_int_equal(vault_parse_secret(VAULT_KV1, "p", KEY_A,
	    S("{\"data\":{\"p\":\"a\nb\"}}"), &s, NULL), CG_ERR_FORMAT);
	assert_null(s);
}

/* A body of exactly len bytes: one field padded to fit. */
static char *
sized_body(size_t len)
{
	static const char head[] = "{\"data\":{\"password\":\"", tail[] = "\"}}";
	char *b = malloc(len);

	assert_non_null(b);
	assert_true(len > sizeof(head) + sizeof(tail));
	memcpy(b, head, sizeof(head) - 1);
	memset(b + sizeof(head) - 1, 'x', len - (sizeof(head) - 1) - (sizeof(tail) - 1));
	memcpy(b + len - (sizeof(tail) - 1), tail, sizeof(tail) - 1);
	return b;
}

static void
test_size_limit(void **state)
{
	struct secret *s = NULL;
	struct vault_auth a;
	const char *why = NULL;
	char *b;
	char text[32];
	int64_t ttl;
	bool ren;
	size_t before = in_use(), len = 0;

	(void)state;
	b = sized_body(VAULT_MAX_RESPONSE);
	assert_int_equal(vault_parse_secret(VAULT_KV1, "p", KEY_A, b, VAULT_MAX_RESPONSE,
	    &s, NULL), 0);
	assert_non_null(secret_field(s, "password", &len));
	assert_int_equal(len, VAULT_MAX_RESPONSE - strlen("{\"data\":{\"password\":\"\"}}"));
	secret_unref(s);
	free(b);
	assert_int_equal(in_use(), before);

	b = sized_body(VAULT_MAX_RESPONSE + 1);
	assert_int_equal(vault_parse_secret(VAULT_KV1, "p", KEY_A, b, VAULT_MAX_RESPONSE + 1,
	    &s, &why), CG_ERR_LIMIT);
	assert_null(s);
	assert_non_null(why);
	assert_int_equal(vault_parse_auth(b, VAULT_MAX_RESPONSE + 1, &a, NULL), CG_ERR_LIMIT);
	assert_null(a.token);
	assert_int_equal(vault_parse_lookup(b, VAULT_MAX_RESPONSE + 1, &ttl, &ren, NULL),
	    CG_ERR_LIMIT);
	assert_int_equal(vault_parse_renew(b, VAULT_MAX_RESPONSE + 1, &ttl, &ren, NULL),
	    CG_ERR_LIMIT);
	assert_string_equal(vault_parse_errors(b, VAULT_MAX_RESPONSE + 1, text,
	    sizeof(text)), "");
	free(b);
	assert_int_equal(in_use(), before);
}

/* Blocks that fill the secure pool; the teardown gives back what a
 * failed test left. */
static void *fill_blocks[4096];
static size_t fill_n;

static void
fill_pool(void)
{
	static const size_t sizes[] = { 1 << 20, 1 << 16, 1 << 12, 1 << 8, 1 };
	size_t i, cap = sizeof(fill_blocks) / sizeof(fill_blocks[0]);

	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		while (fill_n < cap && (fill_blocks[fill_n] = secmem_alloc(sizes[i])) != NULL)
			fill_n++;
	}
	assert_true(fill_n < cap);
}

static int
unfill_pool(void **state)
{
	(void)state;
	while (fill_n > 0)
		secmem_free(fill_blocks[--fill_n]);
	return 0;
}

/*
 * With the secure pool full, a valid response is out of memory, not
 * malformed: the pool is filled, then given back a block at a time, and
 * each parse must fail with CG_ERR_NOMEM and leave the pool as it was
 * until one succeeds.
 */
static void
test_out_of_secure_memory(void **state)
{
	static const struct {
		enum { O_AUTH, O_LOOKUP, O_SECRET } call;
		enum vault_kind kind;
		const char *body;
	} cases[] = {
		{ O_AUTH, 0, AUTH_APPROLE },
		{ O_LOOKUP, 0, LOOKUP_SELF },
		{ O_SECRET, VAULT_KV2, KV2_READ },
		{ O_SECRET, VAULT_DB_CREDS, DB_CREDS },
	};
	size_t k, nomem;

	(void)state;
	for (k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		const char *body = cases[k].body;

		fill_pool();
		for (nomem = 0;; nomem++) {
			size_t before = in_use();
			struct secret *s = NULL;
			struct vault_auth a;
			const char *why = NULL;
			int64_t ttl;
			bool ren;
			int r = CG_ERR_INTERNAL;

			switch (cases[k].call) {
			case O_AUTH:
				r = vault_parse_auth(body, strlen(body), &a, &why);
				vault_auth_clear(&a);
				break;
			case O_LOOKUP:
				r = vault_parse_lookup(body, strlen(body), &ttl, &ren, &why);
				break;
			case O_SECRET:
				r = vault_parse_secret(cases[k].kind, "p", KEY_A, body, strlen(body),
				    &s, &why);
				secret_unref(s);
				break;
			}
			assert_int_equal(in_use(), before);
			if (r == 0)
				break;
			if (r != CG_ERR_NOMEM)
				fail_msg("case %zu, %zu blocks left: got %d (%s)", k, fill_n, r, why);
			assert_null(s);
			assert_non_null(why);
			assert_true(fill_n > 0);
			secmem_free(fill_blocks[--fill_n]);
		}
		/* The pool was full: the first parses ran out of it. */
		assert_true(nomem > 0);
		unfill_pool(NULL);
	}
}

/* ------------------------------------------------------------------ */
/* vault_parse_errors, vault_errors_sealed                             */
/* ------------------------------------------------------------------ */

static void
test_errors(void **state)
{
	static const struct {
		const char *name, *body;
		size_t outlen;
		const char *want;
	} cases[] = {
		{ "one", ERR_DENIED, 256, "permission denied" },
		{ "go multi-error", ERR_MULTI, 256, "permission denied; invalid token" },
		{ "go one error", "{\"errors\":[\"1 error occurred:\\n\\t* permission denied"
		    "\\n\\n\"]}", 256, "permission denied" },
		{ "two messages", "{\"errors\":[\"invalid role or secret ID\","
		    "\"missing client token\"]}", 256,
		    "invalid role or secret ID; missing client token" },
		{ "message and multi-error", "{\"errors\":[\"a\",\"2 errors occurred:\\n"
		    "\\t* b\\n\\t* c\\n\\n\"]}", 256, "a; b; c" },
		{ "with data", "{\"errors\":[\"lease not found\"],\"data\":{\"x\":1}}", 256,
		    "lease not found" },
		{ "rate limit", "{\"errors\":[\"request path \\\"secret/data/x\\\": rate "
		    "limit quota exceeded\"]}", 256,
		    "request path \"secret/data/x\": rate limit quota exceeded" },
		{ "non-printable", "{\"errors\":[\"bad\\u0001byte\\ttab\\r\\u007f \xc3\xa9"
		    "\"]}", 256, "bad?byte?tab?? ??" },
		{ "newline in plain text", "{\"errors\":[\"line one\\nline two\"]}", 256,
		    "line one?line two" },
		{ "non-strings skipped", "{\"errors\":[1,null,\"only this\",{}]}", 256,
		    "only this" },
		/* An empty message adds no separator. */
		{ "empty message between", "{\"errors\":[\"a\",\"\",\"b\"]}", 256, "a; b" },
		{ "empty message last", "{\"errors\":[\"a\",\"\"]}", 256, "a" },
		{ "empty message first", "{\"errors\":[\"\",\"a\"]}", 256, "a" },
		{ "empty multi-error", "{\"errors\":[\"a\",\"0 errors occurred:\\n\\n\"]}",
		    256, "a" },
		{ "cut", ERR_DENIED, 8, "permiss" },
		{ "cut in separator", ERR_MULTI, 19, "permission denied;" },
		{ "cut to nothing", ERR_DENIED, 1, "" },
		{ "empty array", ERR_EMPTY, 256, "" },
		{ "errors null", "{\"errors\":null}", 256, "" },
		{ "errors string", "{\"errors\":\"permission denied\"}", 256, "" },
		{ "no errors", "{\"data\":null}", 256, "" },
		{ "not JSON", "permission denied", 256, "" },
		{ "empty body", "", 256, "" },
		{ "array at top", "[\"permission denied\"]", 256, "" },
		{ "duplicate", "{\"errors\":[\"a\"],\"errors\":[\"b\"]}", 256, "" },
		{ "trailing bytes", ERR_DENIED "x", 256, "" },
	};
	size_t i, before = in_use();

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char out[256];

		memset(out, 'Z', sizeof(out));
		assert_true(cases[i].outlen <= sizeof(out));
		assert_ptr_equal(vault_parse_errors(cases[i].body, strlen(cases[i].body), out,
		    cases[i].outlen), out);
		if (strcmp(out, cases[i].want) != 0)
			fail_msg("%s: got \"%s\", want \"%s\"", cases[i].name, out, cases[i].want);
		/* Nothing written past outlen. */
		if (cases[i].outlen < sizeof(out))
			assert_int_equal(out[cases[i].outlen], 'Z');
		assert_int_equal(in_use(), before);
	}
}

static void
test_errors_outlen_zero(void **state)
{
	char out[4] = "abc";

	(void)state;
	assert_ptr_equal(vault_parse_errors(S(ERR_DENIED), out, 0), out);
	assert_string_equal(out, "abc");
}

static void
test_sealed(void **state)
{
	static const struct {
		const char *body;
		bool sealed;
	} cases[] = {
		{ ERR_SEALED, true },
		{ "{\"errors\":[\"1 error occurred:\\n\\t* Vault is sealed\\n\\n\"]}", true },
		{ "{\"errors\":[\"permission denied\",\"Vault is sealed\"]}", true },
		{ ERR_DENIED, false },
		{ ERR_MULTI, false },
		{ ERR_EMPTY, false },
		{ "{\"errors\":[\"vault is sealed\"]}", false },
		{ "{\"errors\":[\"Vault is\"]}", false },
		{ "{\"data\":{\"msg\":\"Vault is sealed\"}}", false },
		/* The health answer of a sealed server is no errors body. */
		{ "{\"initialized\":true,\"sealed\":true,\"standby\":true}", false },
		{ "Vault is sealed", false },
		{ "", false },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (vault_errors_sealed(cases[i].body, strlen(cases[i].body)) != cases[i].sealed)
			fail_msg("case %zu: %s", i, cases[i].body);
	}
}

/* ------------------------------------------------------------------ */
/* Every valid response cut at every length                            */
/* ------------------------------------------------------------------ */

enum call { C_AUTH, C_LOOKUP, C_RENEW, C_SECRET, C_ERRORS };

/* Parses body with call (kind for secrets); returns the result, after
 * freeing whatever it built.  For errors: 0 when text came out. */
static int
parse_with(enum call call, enum vault_kind kind, const char *body, size_t len)
{
	struct vault_auth a;
	struct secret *s = NULL;
	const char *why = NULL;
	char text[64];
	int64_t ttl = -1;
	bool ren = true;
	int r = CG_ERR_INTERNAL;

	switch (call) {
	case C_AUTH:
		r = vault_parse_auth(body, len, &a, &why);
		assert_true((r == 0) == (a.token != NULL));
		vault_auth_clear(&a);
		break;
	case C_LOOKUP:
		r = vault_parse_lookup(body, len, &ttl, &ren, &why);
		break;
	case C_RENEW:
		r = vault_parse_renew(body, len, &ttl, &ren, &why);
		break;
	case C_SECRET:
		r = vault_parse_secret(kind, "test/path", KEY_A, body, len, &s, &why);
		assert_true((r == 0) == (s != NULL));
		secret_unref(s);
		break;
	case C_ERRORS:
		r = vault_parse_errors(body, len, text, sizeof(text))[0] != '\0' ? 0 :
		    CG_ERR_FORMAT;
		break;
	}
	if (call != C_ERRORS && r != 0) {
		assert_non_null(why);
		if (call == C_LOOKUP || call == C_RENEW) {
			assert_int_equal(ttl, 0);
			assert_false(ren);
		}
	}
	return r;
}

static void
test_prefixes(void **state)
{
	static const struct {
		enum call call;
		enum vault_kind kind;
		const char *body;
		int full;	/* the result of the whole body */
	} cases[] = {
		{ C_AUTH, 0, AUTH_APPROLE, 0 },
		{ C_AUTH, 0, AUTH_WARNINGS, 0 },
		{ C_AUTH, 0, AUTH_JWT, 0 },
		{ C_AUTH, 0, AUTH_CERT, 0 },
		{ C_AUTH, 0, AUTH_MOUNT_TYPE, 0 },
		{ C_AUTH, 0, AUTH_SHUFFLED, 0 },
		{ C_AUTH, 0, AUTH_RENEW_SELF, 0 },
		{ C_LOOKUP, 0, LOOKUP_SELF, 0 },
		{ C_LOOKUP, 0, LOOKUP_ROOT, 0 },
		{ C_RENEW, 0, RENEW_LEASE, 0 },
		{ C_RENEW, 0, RENEW_CAPPED, 0 },
		{ C_SECRET, VAULT_KV1, KV1_READ, 0 },
		{ C_SECRET, VAULT_KV2, KV2_READ, 0 },
		{ C_SECRET, VAULT_KV2, KV2_DELETED, CG_ERR_NOTFOUND },
		{ C_SECRET, VAULT_DB_CREDS, DB_CREDS, 0 },
		{ C_SECRET, VAULT_DB_STATIC, DB_STATIC, 0 },
		{ C_ERRORS, 0, ERR_DENIED, 0 },
		{ C_ERRORS, 0, ERR_MULTI, 0 },
		{ C_ERRORS, 0, ERR_SEALED, 0 },
	};
	size_t i, n, len, before = in_use();

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		len = strlen(cases[i].body);
		for (n = 0; n <= len; n++) {
			/* An exact copy, so that a read past n is a read
			 * past the allocation. */
			char *b = malloc(n > 0 ? n : 1);
			int r;

			assert_non_null(b);
			memcpy(b, cases[i].body, n);
			r = parse_with(cases[i].call, cases[i].kind, b, n);
			free(b);
			if (n == len && r != cases[i].full)
				fail_msg("case %zu whole: got %d", i, r);
			if (n < len && r == 0)
				fail_msg("case %zu: prefix of %zu bytes accepted", i, n);
			if (n < len && cases[i].call != C_ERRORS && r != CG_ERR_FORMAT)
				fail_msg("case %zu: prefix of %zu bytes: %d", i, n, r);
			assert_int_equal(in_use(), before);
		}
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_auth_shapes),
		cmocka_unit_test(test_auth_clear_wipes),
		cmocka_unit_test(test_auth_refused),
		cmocka_unit_test(test_auth_nul_bytes),
		cmocka_unit_test(test_lookup),
		cmocka_unit_test(test_renew),
		cmocka_unit_test(test_secret_kinds),
		cmocka_unit_test(test_secret_refused),
		cmocka_unit_test(test_version_digest),
		cmocka_unit_test(test_huge_durations),
		cmocka_unit_test(test_field_limit),
		cmocka_unit_test(test_escapes),
		cmocka_unit_test(test_size_limit),
		cmocka_unit_test_teardown(test_out_of_secure_memory, unfill_pool),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_errors_outlen_zero),
		cmocka_unit_test(test_sealed),
		cmocka_unit_test(test_prefixes),
	};

	/* Room for a 1 MiB response, its parse tree and the secret made
	 * of it. */
	if (secmem_init(8 * 1024 * 1024, false) != 0)
		return 1;
	secmem_use_for_json();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
