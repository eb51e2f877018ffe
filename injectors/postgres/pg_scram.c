/*
 * pg_scram.c: the client side of SCRAM-SHA-256(-PLUS) apart from I/O
 * (see pg_scram.h).  Owns no state beyond the exchange its caller holds;
 * wipes every intermediate key it makes.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "injectors/postgres/pg_scram.h"

static int
hmac(const unsigned char *key, const void *data, size_t len,
    unsigned char out[INJ_PG_SCRAM_KEY_LEN])
{
	unsigned int n = 0;

	if (HMAC(EVP_sha256(), key, INJ_PG_SCRAM_KEY_LEN, data, len, out, &n) == NULL ||
	    n != INJ_PG_SCRAM_KEY_LEN)
		return CG_ERR_INTERNAL;
	return 0;
}

int
inj_pg_scram_derive(const char *pw, size_t pwlen, const unsigned char *salt, size_t saltlen,
    unsigned iterations, struct inj_pg_scram_keys *out)
{
	unsigned char salted[INJ_PG_SCRAM_KEY_LEN];
	int r = 0;

	memset(out, 0, sizeof(*out));
	if (iterations == 0 || iterations > INJ_PG_SCRAM_ITER_MAX || pwlen > INT32_MAX ||
	    saltlen > INT32_MAX)
		return CG_ERR_FORMAT;
	if (PKCS5_PBKDF2_HMAC(pw, (int)pwlen, salt, (int)saltlen, (int)iterations,
	    EVP_sha256(), sizeof(salted), salted) != 1 ||
	    hmac(salted, "Client Key", 10, out->client_key) != 0 ||
	    hmac(salted, "Server Key", 10, out->server_key) != 0) {
		cg_wipe(out, sizeof(*out));
		r = CG_ERR_INTERNAL;
	}
	cg_wipe(salted, sizeof(salted));
	return r;
}

/* The GS2 header: what the client says of channel binding. */
static const char *
gs2_header(const struct inj_pg_scram *s)
{
	return s->plus ? "p=tls-server-end-point,," : "n,,";
}

static bool
printable_nonce(const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i] < 0x21 || p[i] > 0x7e || p[i] == ',')
			return false;
	return n > 0;
}

int
inj_pg_scram_first(struct inj_pg_scram *s, const char *user, bool plus,
    const unsigned char *cbind, size_t cbind_len, const char *nonce, char *out, size_t size,
    size_t *outlen)
{
	unsigned char raw[18];
	int n;

	*outlen = 0;
	if (strpbrk(user, "=,") != NULL || (plus && (cbind == NULL || cbind_len == 0 ||
	    cbind_len > sizeof(s->cbind))))
		return CG_ERR_FORMAT;
	s->plus = plus;
	if (plus) {
		memcpy(s->cbind, cbind, cbind_len);
		s->cbind_len = cbind_len;
	}
	if (nonce == NULL) {
		if (RAND_bytes(raw, sizeof(raw)) != 1)
			return CG_ERR_INTERNAL;
		b64_encode(raw, sizeof(raw), s->nonce);
		cg_wipe(raw, sizeof(raw));
	} else {
		if (!printable_nonce(nonce, strlen(nonce)) || strlen(nonce) >= sizeof(s->nonce) / 2)
			return CG_ERR_FORMAT;
		memcpy(s->nonce, nonce, strlen(nonce) + 1);
	}
	s->nonce_len = s->cnonce_len = strlen(s->nonce);
	n = snprintf(s->first_bare, sizeof(s->first_bare), "n=%s,r=%s", user, s->nonce);
	if (n < 0 || (size_t)n >= sizeof(s->first_bare))
		return CG_ERR_LIMIT;
	s->first_bare_len = (size_t)n;
	n = snprintf(out, size, "%s%s", gs2_header(s), s->first_bare);
	if (n < 0 || (size_t)n >= size)
		return CG_ERR_LIMIT;
	*outlen = (size_t)n;
	return 0;
}

/* The value of attribute a ("a=...") at *p, up to the next ',' or end. */
static bool
attr(const char **p, const char *end, char a, const char **v, size_t *vlen)
{
	const char *comma;

	if (end - *p < 2 || (*p)[0] != a || (*p)[1] != '=')
		return false;
	*v = *p + 2;
	comma = memchr(*v, ',', (size_t)(end - *v));
	*vlen = (size_t)((comma != NULL ? comma : end) - *v);
	*p = comma != NULL ? comma + 1 : end;
	return true;
}

int
inj_pg_scram_server_first(struct inj_pg_scram *s, const char *msg, size_t len,
    unsigned char *salt, size_t *saltlen, unsigned *iterations)
{
	const char *p = msg, *end = msg + len, *v;
	unsigned char buf[INJ_PG_SCRAM_SALT_MAX + 3];
	unsigned long it = 0;
	size_t vlen, i, n;

	*saltlen = 0;
	*iterations = 0;
	if (len == 0 || len >= sizeof(s->server_first) || memchr(msg, '\0', len) != NULL)
		return CG_ERR_FORMAT;
	if (!attr(&p, end, 'r', &v, &vlen))
		return CG_ERR_FORMAT;
	if (vlen <= s->cnonce_len || vlen >= sizeof(s->nonce) ||
	    memcmp(v, s->nonce, s->cnonce_len) != 0 || !printable_nonce(v, vlen))
		return CG_ERR_VERIFY;
	memcpy(s->nonce, v, vlen);
	s->nonce[vlen] = '\0';
	s->nonce_len = vlen;
	if (!attr(&p, end, 's', &v, &vlen) || vlen == 0 ||
	    b64_decoded_max(vlen) > sizeof(buf) || b64_decode(v, vlen, buf, &n) != 0 ||
	    n == 0 || n > INJ_PG_SCRAM_SALT_MAX)
		return CG_ERR_FORMAT;
	memcpy(salt, buf, n);
	*saltlen = n;
	if (!attr(&p, end, 'i', &v, &vlen) || vlen == 0 || vlen > 7)
		return CG_ERR_FORMAT;
	for (i = 0; i < vlen; i++) {
		if (v[i] < '0' || v[i] > '9')
			return CG_ERR_FORMAT;
		it = it * 10 + (unsigned long)(v[i] - '0');
	}
	if (it == 0 || it > INJ_PG_SCRAM_ITER_MAX || (vlen > 1 && v[0] == '0'))
		return CG_ERR_FORMAT;
	/* Extensions may follow; none is mandatory for a client that knows
	 * none (RFC 5802 §5.1: "m" comes first, and the nonce came first). */
	*iterations = (unsigned)it;
	memcpy(s->server_first, msg, len);
	s->server_first[len] = '\0';
	s->server_first_len = len;
	return 0;
}

int
inj_pg_scram_final(struct inj_pg_scram *s, const struct inj_pg_scram_keys *keys, char *out,
    size_t size, size_t *outlen)
{
	unsigned char cb[128], stored[INJ_PG_SCRAM_KEY_LEN], sig[INJ_PG_SCRAM_KEY_LEN];
	unsigned char proof[INJ_PG_SCRAM_KEY_LEN];
	char cb64[176 + 1], proof64[48], auth[3 * INJ_PG_SCRAM_MSG_MAX + 8];
	size_t cblen, i, wo, alen;
	int n, r = CG_ERR_INTERNAL;

	*outlen = 0;
	cblen = strlen(gs2_header(s));
	memcpy(cb, gs2_header(s), cblen);
	if (s->plus) {
		memcpy(cb + cblen, s->cbind, s->cbind_len);
		cblen += s->cbind_len;
	}
	b64_encode(cb, cblen, cb64);
	/* client-final-message-without-proof, then the AuthMessage. */
	n = snprintf(out, size, "c=%s,r=%s", cb64, s->nonce);
	if (n < 0 || (size_t)n >= size)
		return CG_ERR_LIMIT;
	wo = (size_t)n;
	n = snprintf(auth, sizeof(auth), "%s,%s,%.*s", s->first_bare, s->server_first,
	    (int)wo, out);
	if (n < 0 || (size_t)n >= sizeof(auth))
		return CG_ERR_LIMIT;
	alen = (size_t)n;
	if (SHA256(keys->client_key, sizeof(keys->client_key), stored) == NULL ||
	    hmac(stored, auth, alen, sig) != 0 ||
	    hmac(keys->server_key, auth, alen, s->server_signature) != 0)
		goto out;
	for (i = 0; i < sizeof(proof); i++)
		proof[i] = keys->client_key[i] ^ sig[i];
	b64_encode(proof, sizeof(proof), proof64);
	n = snprintf(out + wo, size - wo, ",p=%s", proof64);
	if (n < 0 || (size_t)n >= size - wo) {
		r = CG_ERR_LIMIT;
		goto out;
	}
	*outlen = wo + (size_t)n;
	s->signed_ = true;
	r = 0;
 out:
	cg_wipe(stored, sizeof(stored));
	cg_wipe(sig, sizeof(sig));
	cg_wipe(proof, sizeof(proof));
	cg_wipe(proof64, sizeof(proof64));
	if (r != 0)
		cg_wipe(out, size);
	return r;
}

int
inj_pg_scram_server_final(struct inj_pg_scram *s, const char *msg, size_t len)
{
	unsigned char got[INJ_PG_SCRAM_KEY_LEN + 3];
	const char *p = msg, *end = msg + len, *v;
	size_t vlen, n;

	if (!s->signed_)
		return CG_ERR_FORMAT;
	if (attr(&p, end, 'e', &v, &vlen))
		return CG_ERR_VERIFY;
	p = msg;
	if (!attr(&p, end, 'v', &v, &vlen) || b64_decoded_max(vlen) > sizeof(got) ||
	    b64_decode(v, vlen, got, &n) != 0)
		return CG_ERR_FORMAT;
	if (n != INJ_PG_SCRAM_KEY_LEN ||
	    CRYPTO_memcmp(got, s->server_signature, INJ_PG_SCRAM_KEY_LEN) != 0)
		return CG_ERR_VERIFY;
	return 0;
}
