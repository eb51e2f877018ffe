/*
 * test_pg_scram.c: the SCRAM-SHA-256 client (injectors/postgres/
 * pg_scram.c) against RFC 7677's example exchange, and what it refuses
 * from a server: a nonce it did not start, bad salts and counts, a wrong
 * or missing server signature.
 */
#include "tests/unit/unit.h"

#include "config.h"

#include <stdio.h>
#include <string.h>

#include "injectors/postgres/pg_scram.h"

#define S(lit) lit, sizeof(lit) - 1

/* RFC 7677 §3. */
#define RFC_CNONCE	"rOprNGfwEbeRWgbNEkqO"
#define RFC_SFIRST	"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0," \
			"s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
#define RFC_CFINAL	"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0," \
			"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
#define RFC_SFINAL	"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

static void
rfc_start(struct inj_pg_scram *s, struct inj_pg_scram_keys *k)
{
	unsigned char salt[INJ_PG_SCRAM_SALT_MAX];
	char out[INJ_PG_SCRAM_MSG_MAX];
	size_t n, saltlen;
	unsigned it;

	memset(s, 0, sizeof(*s));
	assert_int_equal(inj_pg_scram_first(s, "user", false, NULL, 0, RFC_CNONCE, out,
	    sizeof(out), &n), 0);
	assert_string_equal(out, "n,,n=user,r=" RFC_CNONCE);
	assert_int_equal(n, strlen(out));
	assert_int_equal(inj_pg_scram_server_first(s, S(RFC_SFIRST), salt, &saltlen, &it), 0);
	assert_int_equal(it, 4096);
	assert_int_equal(saltlen, 16);
	assert_int_equal(inj_pg_scram_derive("pencil", 6, salt, saltlen, it, k), 0);
}

static void
test_rfc7677(void **state)
{
	struct inj_pg_scram s;
	struct inj_pg_scram_keys k;
	char out[INJ_PG_SCRAM_MSG_MAX];
	size_t n;

	(void)state;
	rfc_start(&s, &k);
	assert_int_equal(inj_pg_scram_final(&s, &k, out, sizeof(out), &n), 0);
	assert_string_equal(out, RFC_CFINAL);
	assert_int_equal(n, strlen(RFC_CFINAL));
	assert_int_equal(inj_pg_scram_server_final(&s, S(RFC_SFINAL)), 0);
}

static void
test_server_final_refused(void **state)
{
	struct inj_pg_scram s;
	struct inj_pg_scram_keys k;
	char out[INJ_PG_SCRAM_MSG_MAX];
	size_t n;

	(void)state;
	rfc_start(&s, &k);
	/* Before the final message nothing is expected. */
	assert_int_equal(inj_pg_scram_server_final(&s, S(RFC_SFINAL)), CG_ERR_FORMAT);
	assert_int_equal(inj_pg_scram_final(&s, &k, out, sizeof(out), &n), 0);
	/* Another signature (one bit), an error, garbage. */
	assert_int_equal(inj_pg_scram_server_final(&s,
	    S("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G5=")), CG_ERR_FORMAT);
	assert_int_equal(inj_pg_scram_server_final(&s,
	    S("v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")), CG_ERR_VERIFY);
	assert_int_equal(inj_pg_scram_server_final(&s, S("e=invalid-proof")), CG_ERR_VERIFY);
	assert_int_equal(inj_pg_scram_server_final(&s, S("v=")), CG_ERR_VERIFY);
	assert_int_equal(inj_pg_scram_server_final(&s, S("x=1")), CG_ERR_FORMAT);
	/* A wrong password gives another proof. */
	rfc_start(&s, &k);
	assert_int_equal(inj_pg_scram_derive("pencil!", 7, (const unsigned char *)"salt", 4,
	    4096, &k), 0);
	assert_int_equal(inj_pg_scram_final(&s, &k, out, sizeof(out), &n), 0);
	assert_string_not_equal(out, RFC_CFINAL);
	assert_int_equal(inj_pg_scram_server_final(&s, S(RFC_SFINAL)), CG_ERR_VERIFY);
}

static void
test_server_first_refused(void **state)
{
	static const struct {
		const char *msg;
		int r;
	} cases[] = {
		{ "r=someoneelse%xyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", CG_ERR_VERIFY },
		{ "r=" RFC_CNONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", CG_ERR_VERIFY },
		{ "r=" RFC_CNONCE "x,s=W22ZaJ0SNY7soEsUEjb6gQ=,i=4096", CG_ERR_FORMAT },
		{ "r=" RFC_CNONCE "x,s=,i=4096", CG_ERR_FORMAT },
		{ "r=" RFC_CNONCE "x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=0", CG_ERR_FORMAT },
		{ "r=" RFC_CNONCE "x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=04096", CG_ERR_FORMAT },
		{ "r=" RFC_CNONCE "x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1000001", CG_ERR_FORMAT },
		{ "r=" RFC_CNONCE "x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=-1", CG_ERR_FORMAT },
		{ "r=" RFC_CNONCE "x,s=W22ZaJ0SNY7soEsUEjb6gQ==", CG_ERR_FORMAT },
		{ "m=ext,r=" RFC_CNONCE "x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", CG_ERR_FORMAT },
		{ "r=" RFC_CNONCE "x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,x=ext", 0 },
		{ "r=" RFC_CNONCE "x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1000000", 0 },
	};
	unsigned char salt[INJ_PG_SCRAM_SALT_MAX];
	char out[INJ_PG_SCRAM_MSG_MAX];
	struct inj_pg_scram s;
	size_t n, saltlen, i;
	unsigned it;
	int r;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(&s, 0, sizeof(s));
		assert_int_equal(inj_pg_scram_first(&s, "", false, NULL, 0, RFC_CNONCE, out,
		    sizeof(out), &n), 0);
		r = inj_pg_scram_server_first(&s, cases[i].msg, strlen(cases[i].msg), salt,
		    &saltlen, &it);
		if (r != cases[i].r)
			fail_msg("%s: %d, not %d", cases[i].msg, r, cases[i].r);
	}
}

static void
test_first_and_binding(void **state)
{
	const unsigned char hash[32] = { 1, 2, 3 };
	char out[INJ_PG_SCRAM_MSG_MAX], out2[INJ_PG_SCRAM_MSG_MAX];
	struct inj_pg_scram s, s2;
	struct inj_pg_scram_keys k;
	size_t n;

	(void)state;
	/* A random nonce each time, in base64; PostgreSQL's empty user name. */
	memset(&s, 0, sizeof(s));
	memset(&s2, 0, sizeof(s2));
	assert_int_equal(inj_pg_scram_first(&s, "", false, NULL, 0, NULL, out, sizeof(out),
	    &n), 0);
	assert_int_equal(inj_pg_scram_first(&s2, "", false, NULL, 0, NULL, out2, sizeof(out2),
	    &n), 0);
	assert_int_equal(strncmp(out, "n,,n=,r=", 8), 0);
	assert_int_equal(strlen(out), 8 + 24);
	assert_string_not_equal(out, out2);
	/* Names that would break the message. */
	assert_int_equal(inj_pg_scram_first(&s, "a,b", false, NULL, 0, NULL, out, sizeof(out),
	    &n), CG_ERR_FORMAT);
	assert_int_equal(inj_pg_scram_first(&s, "", false, NULL, 0, "a,b", out, sizeof(out),
	    &n), CG_ERR_FORMAT);
	/* PLUS: the header says so, and the binding data goes into c=. */
	memset(&s, 0, sizeof(s));
	assert_int_equal(inj_pg_scram_first(&s, "", true, hash, sizeof(hash), "abc", out,
	    sizeof(out), &n), 0);
	assert_string_equal(out, "p=tls-server-end-point,,n=,r=abc");
	assert_int_equal(inj_pg_scram_first(&s, "", true, NULL, 0, "abc", out, sizeof(out),
	    &n), CG_ERR_FORMAT);
	memset(&s, 0, sizeof(s));
	assert_int_equal(inj_pg_scram_first(&s, "", true, hash, sizeof(hash), "abc", out,
	    sizeof(out), &n), 0);
	assert_int_equal(inj_pg_scram_server_first(&s, S("r=abcdef,s=c2FsdA==,i=16"),
	    (unsigned char[INJ_PG_SCRAM_SALT_MAX]){ 0 }, &n, &(unsigned){ 0 }), 0);
	assert_int_equal(inj_pg_scram_derive("pw", 2, (const unsigned char *)"salt", 4, 16,
	    &k), 0);
	assert_int_equal(inj_pg_scram_final(&s, &k, out, sizeof(out), &n), 0);
	/* base64("p=tls-server-end-point,," + hash) */
	assert_int_equal(strncmp(out, "c=cD10bHMtc2VydmVyLWVuZC1wb2ludCwsAQID", 38), 0);
	/* Iteration bounds of the derivation itself. */
	assert_int_equal(inj_pg_scram_derive("pw", 2, (const unsigned char *)"s", 1, 0, &k),
	    CG_ERR_FORMAT);
	assert_int_equal(inj_pg_scram_derive("pw", 2, (const unsigned char *)"s", 1,
	    INJ_PG_SCRAM_ITER_MAX + 1, &k), CG_ERR_FORMAT);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc7677),
		cmocka_unit_test(test_server_final_refused),
		cmocka_unit_test(test_server_first_refused),
		cmocka_unit_test(test_first_and_binding),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
