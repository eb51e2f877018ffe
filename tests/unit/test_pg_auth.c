/*
 * test_pg_auth.c: the MD5 response and the SCRAM key cache
 * (injectors/postgres/pg_auth.c): the response against a value computed
 * apart (Python's hashlib, as PostgreSQL defines it), and the cache:
 * one derivation per salt and count, the oldest entry making room, keys
 * equal to a fresh derivation, and secure memory given back wiped.
 */
#include "tests/unit/unit.h"

#include "config.h"

#include <stdio.h>
#include <string.h>

#include "injectors/postgres/pg_auth.h"

static void
test_md5(void **state)
{
	const unsigned char salt[4] = { 1, 2, 3, 4 };
	char out[INJ_PG_MD5_LEN + 1];

	(void)state;
	/* md5(md5("secret" || "svc") || salt), from hashlib. */
	assert_int_equal(inj_pg_md5_response("svc", 3, "secret", 6, salt, out), 0);
	assert_string_equal(out, "md518681c010dc8cfdc87c519c86b5e4024");
	assert_int_equal(strlen(out), INJ_PG_MD5_LEN);
	/* Another salt, another answer. */
	assert_int_equal(inj_pg_md5_response("svc", 3, "secret", 6,
	    (const unsigned char *)"\1\2\3\5", out), 0);
	assert_string_not_equal(out, "md518681c010dc8cfdc87c519c86b5e4024");
}

static void
test_keycache(void **state)
{
	struct inj_pg_keycache *c;
	struct inj_pg_scram_keys k, fresh;
	unsigned char salt[16];
	size_t used0, used, total;
	bool derived;
	unsigned i;

	(void)state;
	secmem_stats(&used0, &total);
	assert_non_null(c = inj_pg_keycache_new());
	secmem_stats(&used, &total);
	assert_true(used > used0);

	memset(salt, 's', sizeof(salt));
	assert_int_equal(inj_pg_keycache_get(c, "pw", 2, salt, 16, 4096, &k, &derived), 0);
	assert_true(derived);
	assert_int_equal(inj_pg_scram_derive("pw", 2, salt, 16, 4096, &fresh), 0);
	assert_memory_equal(&k, &fresh, sizeof(k));
	/* The same salt and count again: no derivation, the same keys. */
	memset(&k, 0, sizeof(k));
	assert_int_equal(inj_pg_keycache_get(c, "pw", 2, salt, 16, 4096, &k, &derived), 0);
	assert_false(derived);
	assert_memory_equal(&k, &fresh, sizeof(k));
	/* Another count, or another salt, is another entry. */
	assert_int_equal(inj_pg_keycache_get(c, "pw", 2, salt, 16, 8192, &k, &derived), 0);
	assert_true(derived);
	assert_memory_not_equal(&k, &fresh, sizeof(k));
	salt[0] = 't';
	assert_int_equal(inj_pg_keycache_get(c, "pw", 2, salt, 16, 4096, &k, &derived), 0);
	assert_true(derived);
	assert_int_equal(inj_pg_keycache_get(c, "pw", 2, salt, 15, 4096, &k, &derived), 0);
	assert_true(derived);

	/* Fill it: the least recently used entry goes, the others stay. */
	salt[0] = 's';
	assert_int_equal(inj_pg_keycache_get(c, "pw", 2, salt, 16, 4096, &k, &derived), 0);
	assert_false(derived);
	for (i = 0; i < INJ_PG_KEYCACHE_MAX; i++) {
		salt[1] = (unsigned char)('A' + i);
		assert_int_equal(inj_pg_keycache_get(c, "pw", 2, salt, 16, 16, &k, &derived), 0);
		assert_true(derived);
		/* The first entry is used between each: it stays. */
		salt[1] = 's';
		assert_int_equal(inj_pg_keycache_get(c, "pw", 2, salt, 16, 4096, &k,
		    &derived), 0);
		assert_false(derived);
	}
	salt[1] = 'A';
	assert_int_equal(inj_pg_keycache_get(c, "pw", 2, salt, 16, 16, &k, &derived), 0);
	assert_true(derived);	/* evicted long ago */
	salt[1] = (unsigned char)('A' + INJ_PG_KEYCACHE_MAX - 1);
	assert_int_equal(inj_pg_keycache_get(c, "pw", 2, salt, 16, 16, &k, &derived), 0);
	assert_false(derived);

	/* No cache: every call derives. */
	assert_int_equal(inj_pg_keycache_get(NULL, "pw", 2, salt, 16, 16, &k, &derived), 0);
	assert_true(derived);
	/* A bad count is the derivation's error, and nothing is kept. */
	assert_int_equal(inj_pg_keycache_get(c, "pw", 2, salt, 16, 0, &k, &derived),
	    CG_ERR_FORMAT);
	assert_false(derived);

	inj_pg_keycache_free(c);
	secmem_stats(&used, &total);
	assert_int_equal(used, used0);
	inj_pg_keycache_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_md5),
		cmocka_unit_test(test_keycache),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
