/*
 * vault_parse.c: Vault's JSON responses to C values (see vault_parse.h).
 * Pure: no I/O, no clock, no globals.  What may be a secret (a token, a
 * secret's fields, a lease id) is parsed in the secure JSON scope and
 * copied into secure memory only; nothing is logged.
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "common/common.h"
#include "vault-client/vault_parse.h"

#define VP_MAX_DEPTH	16
#define VP_MAX_FIELDS	64

#define WHY(t) do { if (why != NULL) *why = (t); } while (0)

/* Parses body in the secure scope; the caller decrefs in the same scope
 * or not: a json_t is freed to wherever it came from. */
static int
vp_load(const char *body, size_t len, json_t **root, const char **why)
{
	bool was;
	int r;

	*root = NULL;
	if (len > VAULT_MAX_RESPONSE) {
		WHY("response too large");
		return CG_ERR_LIMIT;
	}
	was = secmem_json_secure(true);
	r = cg_json_strict_load(body, len, VP_MAX_DEPTH, root);
	secmem_json_secure(was);
	if (r == CG_ERR_NOMEM) {
		/* The secure pool is full: the response may be fine, and a
		 * retry may parse it once memory is given back. */
		WHY("out of secure memory");
		return r;
	}
	if (r != 0) {
		WHY("response is not JSON");
		return CG_ERR_FORMAT;
	}
	if (!json_is_object(*root)) {
		json_decref(*root);
		*root = NULL;
		WHY("response is not a JSON object");
		return CG_ERR_FORMAT;
	}
	return 0;
}

/* Most seconds a duration may have: its milliseconds fit an int64_t. */
#define VP_MAX_SECONDS	(INT64_MAX / 1000)

/* An integer of seconds at key of o: absent is 0, a wrong type fails,
 * and so does a count of seconds whose milliseconds would overflow. */
static int
vp_seconds(const json_t *o, const char *key, int64_t *out)
{
	const json_t *v = json_object_get(o, key);

	*out = 0;
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    json_integer_value(v) > VP_MAX_SECONDS)
		return CG_ERR_FORMAT;
	*out = json_integer_value(v);
	return 0;
}

static int
vp_bool(const json_t *o, const char *key, bool *out)
{
	const json_t *v = json_object_get(o, key);

	*out = false;
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_boolean(v))
		return CG_ERR_FORMAT;
	*out = json_is_true(v);
	return 0;
}

void
vault_auth_clear(struct vault_auth *a)
{
	secmem_free(a->token);
	memset(a, 0, sizeof(*a));
}

int
vault_parse_auth(const char *body, size_t len, struct vault_auth *out, const char **why)
{
	json_t *root, *auth, *tok;
	int r;

	memset(out, 0, sizeof(*out));
	if ((r = vp_load(body, len, &root, why)) != 0)
		return r;
	r = CG_ERR_FORMAT;
	auth = json_object_get(root, "auth");
	if (!json_is_object(auth)) {
		WHY("response has no auth block");
		goto out;
	}
	tok = json_object_get(auth, "client_token");
	if (!json_is_string(tok) || json_string_length(tok) == 0) {
		WHY("auth block has no client_token");
		goto out;
	}
	if (vp_seconds(auth, "lease_duration", &out->ttl_s) != 0 ||
	    vp_bool(auth, "renewable", &out->renewable) != 0) {
		WHY("auth block has a wrong type");
		goto out;
	}
	if ((out->token = secmem_strndup(json_string_value(tok),
	    json_string_length(tok))) == NULL) {
		r = CG_ERR_NOMEM;
		WHY("out of secure memory");
		goto out;
	}
	r = 0;
 out:
	json_decref(root);
	if (r != 0)
		vault_auth_clear(out);
	return r;
}

int
vault_parse_lookup(const char *body, size_t len, int64_t *ttl_s, bool *renewable,
    const char **why)
{
	json_t *root, *data;
	int r;

	*ttl_s = 0;
	*renewable = false;
	if ((r = vp_load(body, len, &root, why)) != 0)
		return r;
	data = json_object_get(root, "data");
	if (!json_is_object(data) || vp_seconds(data, "ttl", ttl_s) != 0 ||
	    vp_bool(data, "renewable", renewable) != 0) {
		WHY("token lookup has no data.ttl");
		r = CG_ERR_FORMAT;
		/* Nothing half read: a good ttl before a bad renewable. */
		*ttl_s = 0;
		*renewable = false;
	}
	json_decref(root);
	return r;
}

int
vault_parse_renew(const char *body, size_t len, int64_t *ttl_s, bool *renewable,
    const char **why)
{
	json_t *root;
	int r;

	*ttl_s = 0;
	*renewable = false;
	if ((r = vp_load(body, len, &root, why)) != 0)
		return r;
	if (vp_seconds(root, "lease_duration", ttl_s) != 0 ||
	    vp_bool(root, "renewable", renewable) != 0) {
		WHY("renewal has a wrong type");
		r = CG_ERR_FORMAT;
		*ttl_s = 0;
		*renewable = false;
	}
	json_decref(root);
	return r;
}

/* "h" and 16 hex digits of HMAC-SHA-256(key, name || 0 || value || 0 ...),
 * the fields sorted by name.  Neither a name nor a value holds a NUL (the
 * strict loader refuses one), so no two sets of fields give one input. */
static int
vp_version_hmac(const unsigned char *key, size_t n, const char *const *names,
    const char *const *values, const size_t *lens, char out[18])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char mac[EVP_MAX_MD_SIZE];
	EVP_MAC *mac_alg = EVP_MAC_fetch(NULL, "HMAC", NULL);
	EVP_MAC_CTX *ctx = NULL;
	OSSL_PARAM params[2];
	size_t i, outl = 0;
	int r = CG_ERR_INTERNAL;

	if (mac_alg == NULL || (ctx = EVP_MAC_CTX_new(mac_alg)) == NULL)
		goto out;
	params[0] = OSSL_PARAM_construct_utf8_string("digest", (char *)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_end();
	if (EVP_MAC_init(ctx, key, VAULT_VERSION_KEY_LEN, params) != 1)
		goto out;
	for (i = 0; i < n; i++) {
		if (EVP_MAC_update(ctx, (const unsigned char *)names[i], strlen(names[i]) + 1) != 1 ||
		    EVP_MAC_update(ctx, (const unsigned char *)values[i], lens[i]) != 1 ||
		    EVP_MAC_update(ctx, (const unsigned char *)"", 1) != 1)
			goto out;
	}
	if (EVP_MAC_final(ctx, mac, &outl, sizeof(mac)) != 1 || outl < 8)
		goto out;
	out[0] = 'h';
	for (i = 0; i < 8; i++) {
		out[1 + 2 * i] = hex[mac[i] >> 4];
		out[2 + 2 * i] = hex[mac[i] & 15];
	}
	out[17] = '\0';
	r = 0;
 out:
	cg_wipe(mac, sizeof(mac));
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(mac_alg);
	return r;
}

/* Sorts field indexes by name, so that the HMAC does not depend on the
 * order the server wrote them in. */
static void
vp_sort(const char **names, const char **values, size_t *lens, size_t n)
{
	size_t i, j;

	for (i = 1; i < n; i++) {
		for (j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
			const char *tn = names[j], *tv = values[j];
			size_t tl = lens[j];

			names[j] = names[j - 1];
			values[j] = values[j - 1];
			lens[j] = lens[j - 1];
			names[j - 1] = tn;
			values[j - 1] = tv;
			lens[j - 1] = tl;
		}
	}
}

int
vault_parse_secret(enum vault_kind kind, const char *path, const unsigned char *key,
    const char *body, size_t len, struct secret **out, const char **why)
{
	const char *names[VP_MAX_FIELDS], *values[VP_MAX_FIELDS];
	size_t lens[VP_MAX_FIELDS], n = 0;
	struct secret_lease lease, *lp = NULL;
	json_t *root, *data, *fields, *meta, *v;
	const char *k;
	char version[24];
	int64_t secs;
	int r;

	*out = NULL;
	if ((r = vp_load(body, len, &root, why)) != 0)
		return r;
	r = CG_ERR_FORMAT;
	data = json_object_get(root, "data");
	if (!json_is_object(data)) {
		WHY("response has no data object");
		goto out;
	}
	fields = data;
	memset(&lease, 0, sizeof(lease));
	version[0] = '\0';
	switch (kind) {
	case VAULT_KV2:
		fields = json_object_get(data, "data");
		meta = json_object_get(data, "metadata");
		if (!json_is_object(meta) || !json_is_integer(v = json_object_get(meta, "version"))) {
			WHY("kv v2 response has no metadata.version");
			goto out;
		}
		snprintf(version, sizeof(version), "%lld", (long long)json_integer_value(v));
		if (json_is_null(fields)) {
			r = CG_ERR_NOTFOUND;
			WHY("kv v2 version deleted or destroyed");
			goto out;
		}
		if (!json_is_object(fields)) {
			WHY("kv v2 response has no data.data object");
			goto out;
		}
		break;
	case VAULT_DB_CREDS:
		v = json_object_get(root, "lease_id");
		if (!json_is_string(v) || vp_seconds(root, "lease_duration", &secs) != 0 ||
		    vp_bool(root, "renewable", &lease.renewable) != 0) {
			WHY("database creds response has no lease");
			goto out;
		}
		lease.id = json_string_value(v);
		lease.duration_ms = secs * 1000;
		lp = &lease;
		break;
	case VAULT_DB_STATIC:
		if (vp_seconds(data, "ttl", &secs) != 0) {
			WHY("static creds response has a wrong ttl");
			goto out;
		}
		lease.duration_ms = secs * 1000;
		lp = &lease;
		break;
	case VAULT_KV1:
		break;
	}
	json_object_foreach(fields, k, v) {
		if (!json_is_string(v))
			continue;
		if (n == VP_MAX_FIELDS) {
			r = CG_ERR_LIMIT;
			WHY("secret has too many fields");
			goto out;
		}
		names[n] = k;
		values[n] = json_string_value(v);
		lens[n] = json_string_length(v);
		n++;
	}
	if ((kind == VAULT_DB_CREDS || kind == VAULT_DB_STATIC) &&
	    (!json_is_string(json_object_get(fields, "username")) ||
	    !json_is_string(json_object_get(fields, "password")))) {
		WHY("database creds without username and password");
		goto out;
	}
	vp_sort(names, values, lens, n);
	if (version[0] == '\0' && (r = vp_version_hmac(key, n, names, values, lens,
	    version)) != 0) {
		WHY("version digest failed");
		goto out;
	}
	if ((r = secret_new_leased(path, version, lp, n, names, values, lens, out)) != 0)
		WHY(r == CG_ERR_NOMEM ? "out of secure memory" : "secret refused");
 out:
	json_decref(root);
	return r;
}

/* Appends text to out (len so far in *at), printable ASCII only. */
static void
vp_append(char *out, size_t outlen, size_t *at, const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n && *at + 1 < outlen; i++) {
		unsigned char ch = (unsigned char)s[i];

		out[(*at)++] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
	}
	out[*at] = '\0';
}

/* One message: Go's "N errors occurred:\n\t* a\n\t* b\n\n" becomes "a; b". */
static void
vp_append_message(char *out, size_t outlen, size_t *at, const char *s)
{
	const char *p, *e;
	bool first = true;

	if (strstr(s, " occurred:\n") == NULL) {
		vp_append(out, outlen, at, s, strlen(s));
		return;
	}
	for (p = s; (p = strstr(p, "\t* ")) != NULL; p = e) {
		p += 3;
		if ((e = strchr(p, '\n')) == NULL)
			e = p + strlen(p);
		if (!first)
			vp_append(out, outlen, at, "; ", 2);
		vp_append(out, outlen, at, p, (size_t)(e - p));
		first = false;
	}
}

char *
vault_parse_errors(const char *body, size_t len, char *out, size_t outlen)
{
	json_t *root = NULL, *errs, *v;
	size_t i, at = 0;

	if (outlen == 0)
		return out;
	out[0] = '\0';
	if (vp_load(body, len, &root, NULL) != 0)
		return out;
	errs = json_object_get(root, "errors");
	json_array_foreach(errs, i, v) {
		size_t mark = at, text;

		if (!json_is_string(v))
			continue;
		if (at > 0)
			vp_append(out, outlen, &at, "; ", 2);
		text = at;
		vp_append_message(out, outlen, &at, json_string_value(v));
		/* A message that adds nothing takes its separator back. */
		if (at == text) {
			at = mark;
			out[at] = '\0';
		}
	}
	json_decref(root);
	return out;
}

bool
vault_errors_sealed(const char *body, size_t len)
{
	char text[256];

	vault_parse_errors(body, len, text, sizeof(text));
	return strstr(text, "Vault is sealed") != NULL;
}
