/*
 * pg_auth.c: the MD5 response and the SCRAM key cache of one credential
 * version (see pg_auth.h).  The cache's entries are kept in secure
 * memory and wiped with it; nothing here logs.
 */
#include "config.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "injectors/postgres/pg_auth.h"

/* md5 of the pieces, as 32 lower-case hex digits into hex (33 bytes). */
static int
md5_hex(const void *a, size_t alen, const void *b, size_t blen, char hex[33])
{
	static const char digits[] = "0123456789abcdef";
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned int n = 0, i;
	EVP_MD_CTX *ctx;
	int r = CG_ERR_INTERNAL;

	if ((ctx = EVP_MD_CTX_new()) == NULL)
		return CG_ERR_INTERNAL;
	if (EVP_DigestInit_ex(ctx, EVP_md5(), NULL) == 1 &&
	    EVP_DigestUpdate(ctx, a, alen) == 1 && EVP_DigestUpdate(ctx, b, blen) == 1 &&
	    EVP_DigestFinal_ex(ctx, d, &n) == 1 && n == 16) {
		for (i = 0; i < 16; i++) {
			hex[2 * i] = digits[d[i] >> 4];
			hex[2 * i + 1] = digits[d[i] & 15];
		}
		hex[32] = '\0';
		r = 0;
	}
	EVP_MD_CTX_free(ctx);
	cg_wipe(d, sizeof(d));
	return r;
}

int
inj_pg_md5_response(const char *user, size_t userlen, const char *pw, size_t pwlen,
    const unsigned char salt[4], char out[INJ_PG_MD5_LEN + 1])
{
	char inner[33];
	int r;

	memcpy(out, "md5", 3);
	if ((r = md5_hex(pw, pwlen, user, userlen, inner)) == 0)
		r = md5_hex(inner, 32, salt, 4, out + 3);
	cg_wipe(inner, sizeof(inner));
	if (r != 0)
		cg_wipe(out, INJ_PG_MD5_LEN + 1);
	return r;
}

struct keycache_entry {
	bool used;
	unsigned iterations;
	size_t saltlen;
	unsigned char salt[INJ_PG_SCRAM_SALT_MAX];
	struct inj_pg_scram_keys keys;
	uint64_t stamp;			/* when last used: the oldest goes first */
};

struct inj_pg_keycache {
	uint64_t clock;
	struct keycache_entry e[INJ_PG_KEYCACHE_MAX];
};

struct inj_pg_keycache *
inj_pg_keycache_new(void)
{
	struct inj_pg_keycache *c = secmem_alloc(sizeof(*c));

	if (c != NULL)
		memset(c, 0, sizeof(*c));
	return c;
}

void
inj_pg_keycache_free(struct inj_pg_keycache *c)
{
	secmem_free(c);		/* wipes */
}

int
inj_pg_keycache_get(struct inj_pg_keycache *c, const char *pw, size_t pwlen,
    const unsigned char *salt, size_t saltlen, unsigned iterations,
    struct inj_pg_scram_keys *out, bool *derived)
{
	struct keycache_entry *e, *victim = NULL;
	size_t i;
	int r;

	if (derived != NULL)
		*derived = false;
	for (i = 0; c != NULL && i < INJ_PG_KEYCACHE_MAX; i++) {
		e = &c->e[i];
		if (e->used && e->iterations == iterations && e->saltlen == saltlen &&
		    CRYPTO_memcmp(e->salt, salt, saltlen) == 0) {
			e->stamp = ++c->clock;
			*out = e->keys;
			return 0;
		}
		if (victim == NULL || !e->used || (victim->used && e->stamp < victim->stamp))
			victim = e;
	}
	if ((r = inj_pg_scram_derive(pw, pwlen, salt, saltlen, iterations, out)) != 0)
		return r;
	if (derived != NULL)
		*derived = true;
	if (victim != NULL && saltlen <= sizeof(victim->salt)) {
		victim->used = true;
		victim->iterations = iterations;
		victim->saltlen = saltlen;
		memcpy(victim->salt, salt, saltlen);
		victim->keys = *out;
		victim->stamp = ++c->clock;
	}
	return 0;
}
