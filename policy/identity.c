/*
 * identity.c: the verified identity and what it holds (claims, issuer
 * references, its reference count), claim lookup by dotted path, issuer
 * teardown and the JWT algorithm names.  Verification itself lives in
 * jwt.c and jwks.c; this file trusts nothing it is handed and checks
 * nothing cryptographic.
 */
#include "config.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"
#include "policy/spiffe.h"

static const struct {
	const char *name;
	unsigned bit;
} jwt_algs[] = {
	{ "RS256", JWT_RS256 },
	{ "PS256", JWT_PS256 },
	{ "ES256", JWT_ES256 },
	{ "ES384", JWT_ES384 },
	{ "EdDSA", JWT_EDDSA },
};

unsigned
jwt_alg_parse(const char *name)
{
	size_t i;

	if (name == NULL)
		return 0;
	for (i = 0; i < CG_ARRAY_LEN(jwt_algs); i++) {
		if (strcmp(name, jwt_algs[i].name) == 0)
			return jwt_algs[i].bit;
	}
	return 0;
}

const char *
jwt_alg_name(unsigned alg)
{
	size_t i;

	for (i = 0; i < CG_ARRAY_LEN(jwt_algs); i++) {
		if (alg == jwt_algs[i].bit)
			return jwt_algs[i].name;
	}
	return NULL;
}

void
policy_issuer_free(struct policy_issuer *is)
{
	size_t i;

	if (is == NULL)
		return;
	free(is->name);
	free(is->iss);
	free(is->trust_domain);
	for (i = 0; i < is->naudiences; i++)
		free(is->audiences[i]);
	free(is->audiences);
	free(is->jwks_file);
	free(is->jwks_uri);
	free(is->ca_file);
	free(is->bearer_token_file);
	policy_keyring_unref(is->ring);
	free(is);
}

struct policy_identity *
policy_identity_ref(struct policy_identity *id)
{
	if (id == NULL)
		return NULL;
	if (id->refs == 0 || id->refs == UINT_MAX)
		abort();	/* freed already, or a leak of references */
	id->refs++;
	return id;
}

void
policy_identity_free(struct policy_identity *id)
{
	if (id == NULL)
		return;
	if (id->refs == 0)
		abort();	/* a reference dropped twice */
	if (--id->refs > 0)
		return;
	json_decref(id->claims);
	jwks_free(id->keys);
	free(id->spiffe);
	free(id);
}

static int64_t
claim_int(json_t *claims, const char *key)
{
	json_t *v = json_object_get(claims, key);

	return json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
}

int
policy_identity_from_claims(const struct policy_issuer *issuer, json_t *claims,
    struct policy_identity **out)
{
	struct policy_identity *id;
	json_t *aud;

	*out = NULL;
	if (!json_is_object(claims))
		return CG_ERR_FORMAT;
	if ((id = calloc(1, sizeof(*id))) == NULL)
		return CG_ERR_NOMEM;
	id->refs = 1;
	id->issuer = issuer;
	id->method = "jwt";
	id->claims = json_incref(claims);
	id->iss = json_string_value(json_object_get(claims, "iss"));
	id->sub = json_string_value(json_object_get(claims, "sub"));
	id->jti = json_string_value(json_object_get(claims, "jti"));
	aud = json_object_get(claims, "aud");
	if (json_is_string(aud) || json_is_array(aud))
		id->aud = aud;
	id->exp = claim_int(claims, "exp");
	id->iat = claim_int(claims, "iat");
	id->nbf = claim_int(claims, "nbf");
	/* A trust domain's token is a JWT-SVID: its sub, when it is a SPIFFE
	 * ID of the domain, is the caller's SPIFFE ID, as jwt_verify() has it. */
	if (issuer != NULL && issuer->trust_domain != NULL && id->sub != NULL) {
		struct spiffe_id sid;
		char err[128];

		id->method = "jwt-svid";
		if (spiffe_id_parse(id->sub, strlen(id->sub), &sid, err, sizeof(err)) == 0 &&
		    sid.path[0] != '\0' && strcmp(sid.trust_domain, issuer->trust_domain) == 0 &&
		    (id->spiffe = malloc(sizeof(*id->spiffe))) != NULL)
			*id->spiffe = sid;
	}
	*out = id;
	return 0;
}

/* Deepest nesting a claim path may walk; far above any sane claim set. */
#define CLAIM_MAX_DEPTH 32

/*
 * Looks up buf (len bytes, a private copy we may cut with NULs) in obj:
 * first the whole text as one key, then each split at a dot, left to right.
 */
static json_t *
claim_lookup_in(json_t *obj, char *buf, size_t len, int depth)
{
	json_t *v, *child;
	size_t i;

	if (!json_is_object(obj) || depth > CLAIM_MAX_DEPTH)
		return NULL;
	buf[len] = '\0';
	if ((v = json_object_get(obj, buf)) != NULL)
		return v;
	for (i = 0; i < len; i++) {
		if (buf[i] != '.')
			continue;
		buf[i] = '\0';
		child = json_object_get(obj, buf);
		buf[i] = '.';
		if (child == NULL)
			continue;
		v = claim_lookup_in(child, buf + i + 1, len - i - 1, depth + 1);
		buf[len] = '\0';
		if (v != NULL)
			return v;
	}
	return NULL;
}

json_t *
policy_claim_lookup(json_t *claims, const char *path)
{
	json_t *v;
	char *buf;
	size_t len;

	if (!json_is_object(claims) || path == NULL || *path == '\0')
		return NULL;
	len = strlen(path);
	if ((buf = strdup(path)) == NULL)
		return NULL;
	v = claim_lookup_in(claims, buf, len, 0);
	free(buf);
	return v;
}
