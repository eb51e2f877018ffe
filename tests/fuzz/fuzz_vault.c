/*
 * fuzz_vault.c: libFuzzer harness for the parsers of Vault's responses
 * (vault-client/vault_parse.c).  The first input byte picks the secret
 * engine's kind (its value modulo 4, so the seeds start with '0' to '3');
 * the rest is the body, given to every parser: auth, lookup, renew, the
 * secret read as that kind, and the errors body.  Each result must agree
 * with its contract (a token or a secret exactly on success, in secure
 * memory; no negative time; an errors text of printable ASCII within its
 * buffer), and everything built is freed: the secure pool must be back
 * where it was after each input.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "vault-client/vault.h"
#include "vault-client/vault_parse.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const unsigned char fuzz_key[VAULT_VERSION_KEY_LEN] = "fuzz-version-key-0123456789abcd";

static size_t
in_use(void)
{
	size_t used, total;

	secmem_stats(&used, &total);
	return used;
}

/* out holds a terminated text of printable ASCII within outlen. */
static void
check_text(const char *out, size_t outlen)
{
	size_t i;

	for (i = 0; i < outlen && out[i] != '\0'; i++) {
		if ((unsigned char)out[i] < 0x20 || (unsigned char)out[i] >= 0x7f)
			abort();
	}
	if (i == outlen)
		abort();
}

static void
check_secret(const struct secret *s)
{
	const struct secret_lease *l = secret_lease(s);
	const char *v = secret_version(s);
	size_t i, n = secret_nfields(s);

	if (!secmem_owns(s) || v[0] == '\0' || n > 64)
		abort();
	for (i = 0; i < n; i++) {
		if (secret_field(s, secret_field_name(s, i), NULL) == NULL)
			abort();
	}
	if (l != NULL && l->duration_ms < 0)
		abort();
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	/* As the proxy runs: parse trees of responses in the secure pool. */
	if (secmem_init(8 * 1024 * 1024, false) != 0)
		abort();
	secmem_use_for_json();
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum vault_kind kinds[] = {
		VAULT_KV1, VAULT_KV2, VAULT_DB_CREDS, VAULT_DB_STATIC,
	};
	const char *body = (const char *)data + 1, *why;
	struct secret *s;
	struct vault_auth a;
	size_t len, before = in_use(), small;
	char text[256];
	int64_t ttl;
	bool ren;
	int r;

	if (size == 0)
		return 0;
	len = size - 1;

	why = NULL;
	r = vault_parse_auth(body, len, &a, &why);
	if ((r == 0) != (a.token != NULL) || r > 0 || (r != 0 && why == NULL))
		abort();
	if (r == 0 && (a.token[0] == '\0' || !secmem_owns(a.token) || a.ttl_s < 0))
		abort();
	vault_auth_clear(&a);

	why = NULL;
	r = vault_parse_lookup(body, len, &ttl, &ren, &why);
	if (r > 0 || (r != 0 && why == NULL) || (r == 0 && ttl < 0))
		abort();
	why = NULL;
	r = vault_parse_renew(body, len, &ttl, &ren, &why);
	if (r > 0 || (r != 0 && why == NULL) || (r == 0 && ttl < 0))
		abort();

	why = NULL;
	r = vault_parse_secret(kinds[data[0] % 4], "fuzz/path", fuzz_key, body, len, &s, &why);
	if ((r == 0) != (s != NULL) || r > 0 || (r != 0 && why == NULL))
		abort();
	if (s != NULL)
		check_secret(s);
	secret_unref(s);

	if (vault_parse_errors(body, len, text, sizeof(text)) != text)
		abort();
	check_text(text, sizeof(text));
	small = 1 + data[0] % 16;
	(void)vault_parse_errors(body, len, text, small);
	check_text(text, small);
	(void)vault_errors_sealed(body, len);

	if (in_use() != before)
		abort();
	return 0;
}
