/*
 * pg_scram.h: the client side of SCRAM-SHA-256 and SCRAM-SHA-256-PLUS
 * (RFC 5802, RFC 7677) as PostgreSQL speaks it, apart from I/O: credgate
 * logging in to a server with the credential it holds.
 *
 * The key derivation (PBKDF2 over the password, thousands of rounds) is
 * apart from the exchange, so that its result can be kept per credential
 * version, salt and iteration count and not redone per login.  Nothing
 * here logs, and every buffer that held key material is wiped.
 */
#ifndef CG_INJ_PG_SCRAM_H
#define CG_INJ_PG_SCRAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"

#define INJ_PG_SCRAM_KEY_LEN	32		/* SHA-256 */
#define INJ_PG_SCRAM_MSG_MAX	1024		/* a SCRAM message, either way */
#define INJ_PG_SCRAM_SALT_MAX	128		/* bytes of salt accepted */
/* Iterations a server may ask for: above this, a hostile or broken server
 * could make every login cost seconds of CPU. */
#define INJ_PG_SCRAM_ITER_MAX	1000000u

/* What the key derivation yields: enough to log in, not the password. */
struct inj_pg_scram_keys {
	unsigned char client_key[INJ_PG_SCRAM_KEY_LEN];
	unsigned char server_key[INJ_PG_SCRAM_KEY_LEN];
};

/*
 * SaltedPassword = PBKDF2-HMAC-SHA-256(pw, salt, iterations), and from it
 * ClientKey and ServerKey.  The password is used as it is (PostgreSQL
 * falls back to the raw bytes where SASLprep does not apply).  Returns 0,
 * or CG_ERR_FORMAT (iterations 0 or over INJ_PG_SCRAM_ITER_MAX) or
 * CG_ERR_INTERNAL.
 */
int inj_pg_scram_derive(const char *pw, size_t pwlen, const unsigned char *salt,
    size_t saltlen, unsigned iterations, struct inj_pg_scram_keys *out) CG_WUR;

/* One exchange.  Zero it before inj_pg_scram_first(); wipe it after. */
struct inj_pg_scram {
	bool plus;			/* channel binding tls-server-end-point */
	unsigned char cbind[64];	/* the binding data (a certificate hash) */
	size_t cbind_len;
	char nonce[64];			/* the client's, then the whole one */
	size_t nonce_len;
	size_t cnonce_len;		/* the client's part of nonce */
	char first_bare[INJ_PG_SCRAM_MSG_MAX];	/* client-first-message-bare */
	size_t first_bare_len;
	char server_first[INJ_PG_SCRAM_MSG_MAX];
	size_t server_first_len;
	unsigned char server_signature[INJ_PG_SCRAM_KEY_LEN];
	bool signed_;			/* server_signature is set */
};

/*
 * Starts an exchange: writes client-first-message into out (size bytes,
 * NUL-terminated; *outlen without the NUL).  user: the SCRAM user name
 * (PostgreSQL ignores it; "" is usual); without '=' or ','.  With plus,
 * cbind holds the tls-server-end-point data (at most 64 bytes).  nonce:
 * the client nonce (printable, no ','), or NULL for 18 random bytes in
 * base64.  Returns 0, CG_ERR_FORMAT or CG_ERR_LIMIT.
 */
int inj_pg_scram_first(struct inj_pg_scram *s, const char *user, bool plus,
    const unsigned char *cbind, size_t cbind_len, const char *nonce, char *out, size_t size,
    size_t *outlen) CG_WUR;

/*
 * Reads server-first-message ("r=<nonce>,s=<salt>,i=<iterations>"): the
 * nonce must extend the client's, the salt be base64, the count a number
 * from 1 to INJ_PG_SCRAM_ITER_MAX.  Returns 0 with the salt (at most
 * INJ_PG_SCRAM_SALT_MAX bytes) and iterations, or CG_ERR_FORMAT, or
 * CG_ERR_VERIFY for a nonce the client did not start with.
 */
int inj_pg_scram_server_first(struct inj_pg_scram *s, const char *msg, size_t len,
    unsigned char *salt, size_t *saltlen, unsigned *iterations) CG_WUR;

/*
 * Writes client-final-message with its proof from keys, and keeps the
 * server signature to expect.  Returns 0 or CG_ERR_LIMIT / CG_ERR_INTERNAL.
 */
int inj_pg_scram_final(struct inj_pg_scram *s, const struct inj_pg_scram_keys *keys,
    char *out, size_t size, size_t *outlen) CG_WUR;

/*
 * Checks server-final-message: "v=<signature>" must be the one expected
 * (compared in constant time).  Returns 0; CG_ERR_VERIFY for another
 * signature or an "e=" error from the server; CG_ERR_FORMAT otherwise.
 */
int inj_pg_scram_server_final(struct inj_pg_scram *s, const char *msg, size_t len) CG_WUR;

#endif /* CG_INJ_PG_SCRAM_H */
