/*
 * test_secret.c: the secret type (vault-client/secret.c): building,
 * lookups, reference counting, leases, the stale copy, and that every
 * byte lives in secure memory and goes back to the pool at the last unref.
 */
#include "config.h"

#include "tests/unit/unit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "vault-client/cache_int.h"
#include "vault-client/vault.h"

static size_t
in_use(void)
{
	size_t used, total;

	secmem_stats(&used, &total);
	return used;
}

static void
test_new_and_lookup(void **state)
{
	const char *names[] = { "username", "password" };
	const char *values[] = { "svc", "s3cret" };
	struct secret *s = NULL;
	const char *v;
	size_t len = 99;

	(void)state;
	assert_int_equal(secret_new("mainframe/batch", "3", 2, names, values,
	    NULL, &s), 0);
	assert_non_null(s);
	assert_string_equal(secret_path(s), "mainframe/batch");
	assert_string_equal(secret_version(s), "3");
	assert_int_equal(secret_nfields(s), 2);
	assert_string_equal(secret_field_name(s, 0), "username");
	assert_string_equal(secret_field_name(s, 1), "password");
	assert_null(secret_field_name(s, 2));

	v = secret_field(s, "password", &len);
	assert_non_null(v);
	assert_int_equal(len, 6);
	assert_string_equal(v, "s3cret");
	v = secret_field(s, "username", &len);
	assert_string_equal(v, "svc");
	assert_int_equal(len, 3);

	/* Absent, prefix and case variants are not matches. */
	len = 99;
	assert_null(secret_field(s, "pass", &len));
	assert_int_equal(len, 0);
	assert_null(secret_field(s, "Password", NULL));
	assert_null(secret_field(s, "version", NULL));
	assert_null(secret_field(s, "", NULL));

	/* The copies are the secret's own. */
	assert_ptr_not_equal(secret_field(s, "password", NULL), values[1]);
	secret_unref(s);
}

static void
test_everything_in_secmem(void **state)
{
	const char *names[] = { "password" };
	const char *values[] = { "hunter2" };
	struct secret *s = NULL;

	(void)state;
	assert_int_equal(secret_new("p", "v1", 1, names, values, NULL, &s), 0);
	assert_true(secmem_owns(s));
	assert_true(secmem_owns(secret_path(s)));
	assert_true(secmem_owns(secret_version(s)));
	assert_true(secmem_owns(secret_field_name(s, 0)));
	assert_true(secmem_owns(secret_field(s, "password", NULL)));
	secret_unref(s);
}

static void
test_lengths_and_nul(void **state)
{
	static const char raw[] = { 'a', '\0', 'b' };
	const char *names[] = { "bin", "empty", "nullval" };
	const char *values[] = { raw, "", NULL };
	size_t lens[] = { sizeof(raw), 0, 0 };
	struct secret *s = NULL;
	const char *v;
	size_t len;

	(void)state;
	assert_int_equal(secret_new("p", NULL, 3, names, values, lens, &s), 0);
	/* No version given: the empty string, never NULL. */
	assert_non_null(secret_version(s));
	assert_string_equal(secret_version(s), "");

	v = secret_field(s, "bin", &len);
	assert_int_equal(len, 3);
	assert_memory_equal(v, raw, 3);
	assert_int_equal(v[3], '\0');
	v = secret_field(s, "empty", &len);
	assert_non_null(v);
	assert_int_equal(len, 0);
	assert_string_equal(v, "");
	v = secret_field(s, "nullval", &len);
	assert_non_null(v);
	assert_int_equal(len, 0);
	secret_unref(s);
}

static void
test_no_fields(void **state)
{
	struct secret *s = NULL;

	(void)state;
	assert_int_equal(secret_new("only/version", "7", 0, NULL, NULL, NULL,
	    &s), 0);
	assert_int_equal(secret_nfields(s), 0);
	assert_null(secret_field_name(s, 0));
	assert_null(secret_field(s, "x", NULL));
	secret_unref(s);
}

static void
test_refused(void **state)
{
	const char *names[] = { "a", "b", "a" };
	const char *values[] = { "1", "2", "3" };
	const char *nullname[] = { "a", NULL };
	size_t bad_lens[] = { 1, 4 };
	const char *nullvals[] = { "x", NULL };
	struct secret *s = (struct secret *)&s;
	size_t before = in_use();

	(void)state;
	/* Two values for one name. */
	assert_int_equal(secret_new("p", "1", 3, names, values, NULL, &s),
	    CG_ERR_FORMAT);
	assert_null(s);
	s = (struct secret *)&s;
	assert_int_not_equal(secret_new(NULL, "1", 1, names, values, NULL, &s), 0);
	assert_null(s);
	assert_int_not_equal(secret_new("p", "1", 2, nullname, values, NULL,
	    &s), 0);
	assert_null(s);
	/* A length without bytes behind it. */
	assert_int_not_equal(secret_new("p", "1", 2, names, nullvals, bad_lens,
	    &s), 0);
	assert_null(s);
	assert_int_equal(in_use(), before);
}

static void
test_refcount_and_release(void **state)
{
	const char *names[] = { "password" };
	const char *values[] = { "correct horse battery staple" };
	struct secret *s = NULL, *r;
	size_t before, during;

	(void)state;
	before = in_use();
	assert_int_equal(secret_new("svc/db", "2", 1, names, values, NULL, &s),
	    0);
	during = in_use();
	assert_true(during > before);

	r = secret_ref(s);
	assert_ptr_equal(r, s);
	assert_non_null(secret_ref(s));
	secret_unref(s);
	secret_unref(s);
	/* One reference left: still whole, still counted. */
	assert_int_equal(in_use(), during);
	assert_string_equal(secret_field(r, "password", NULL), values[0]);
	assert_string_equal(secret_path(r), "svc/db");

	secret_unref(r);
	assert_int_equal(in_use(), before);

	secret_unref(NULL);	/* NULL-safe */
	assert_null(secret_ref(NULL));
}

static void
test_many(void **state)
{
	struct secret *v[64];
	char path[32], val[32];
	const char *names[] = { "k" };
	const char *values[] = { val };
	size_t before = in_use(), i;

	(void)state;
	for (i = 0; i < CG_ARRAY_LEN(v); i++) {
		snprintf(path, sizeof(path), "p/%zu", i);
		snprintf(val, sizeof(val), "value-%zu", i);
		assert_int_equal(secret_new(path, NULL, 1, names, values, NULL,
		    &v[i]), 0);
	}
	for (i = 0; i < CG_ARRAY_LEN(v); i++) {
		snprintf(val, sizeof(val), "value-%zu", i);
		assert_string_equal(secret_field(v[i], "k", NULL), val);
		secret_unref(v[i]);
	}
	assert_int_equal(in_use(), before);
}

static void
test_lease(void **state)
{
	static const char lease_id[] = "database/creds/ro/FAKEleaseIDforTests00001";
	const char *names[] = { "username", "password" };
	const char *values[] = { "v-ro-1", "FAKE-password-not-a-secret" };
	struct secret_lease in = { lease_id, 3600000, true };
	const struct secret_lease *l;
	struct secret *s = NULL;
	size_t before = in_use();

	(void)state;
	/* Without one. */
	assert_int_equal(secret_new("p", "1", 1, names, values, NULL, &s), 0);
	assert_null(secret_lease(s));
	assert_false(secret_stale(s));
	secret_unref(s);
	in.id = "";
	in.duration_ms = 0;
	assert_int_equal(secret_new_leased("p", "1", &in, 1, names, values,
	    NULL, &s), 0);
	assert_null(secret_lease(s));
	secret_unref(s);

	/* With one: copied into the secret's own secure memory. */
	in.id = lease_id;
	in.duration_ms = 3600000;
	assert_int_equal(secret_new_leased("database/creds/ro", "", &in, 2,
	    names, values, NULL, &s), 0);
	l = secret_lease(s);
	assert_non_null(l);
	assert_string_equal(l->id, lease_id);
	assert_ptr_not_equal(l->id, lease_id);
	assert_true(secmem_owns(l->id));
	assert_int_equal(l->duration_ms, 3600000);
	assert_true(l->renewable);
	assert_string_equal(secret_field(s, "password", NULL), values[1]);
	secret_unref(s);

	/* A duration alone (KV's advisory lease_duration): a bound, but
	 * nothing to renew or revoke. */
	in.id = NULL;
	in.duration_ms = 5000;
	assert_int_equal(secret_new_leased("kv/x", "1", &in, 0, NULL, NULL,
	    NULL, &s), 0);
	l = secret_lease(s);
	assert_non_null(l);
	assert_null(l->id);
	assert_int_equal(l->duration_ms, 5000);
	assert_false(l->renewable);
	secret_unref(s);

	in.duration_ms = -1;
	assert_int_not_equal(secret_new_leased("kv/x", "1", &in, 0, NULL, NULL,
	    NULL, &s), 0);
	assert_null(s);
	assert_int_equal(in_use(), before);
}

static void
test_stale_copy(void **state)
{
	const char *names[] = { "username", "password" };
	const char *values[] = { "svc", "hunter2" };
	struct secret_lease in = { "lease/FAKE", 60000, true };
	struct secret *s = NULL, *c = NULL;
	size_t before = in_use(), i;

	(void)state;
	assert_int_equal(secret_new_leased("svc/db", "4", &in, 2, names, values,
	    NULL, &s), 0);
	assert_int_equal(secret_stale_copy(s, &c), 0);
	assert_ptr_not_equal(c, s);
	assert_true(secret_stale(c));
	assert_false(secret_stale(s));
	secret_unref(s);	/* the copy stands alone */

	assert_true(secmem_owns(c));
	assert_string_equal(secret_path(c), "svc/db");
	assert_string_equal(secret_version(c), "4");
	assert_int_equal(secret_nfields(c), 2);
	for (i = 0; i < 2; i++) {
		assert_string_equal(secret_field_name(c, i), names[i]);
		assert_string_equal(secret_field(c, names[i], NULL), values[i]);
		assert_true(secmem_owns(secret_field(c, names[i], NULL)));
	}
	assert_string_equal(secret_lease(c)->id, "lease/FAKE");
	assert_true(secmem_owns(secret_lease(c)->id));
	secret_unref(c);
	assert_int_equal(in_use(), before);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_new_and_lookup),
		cmocka_unit_test(test_everything_in_secmem),
		cmocka_unit_test(test_lengths_and_nul),
		cmocka_unit_test(test_no_fields),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_refcount_and_release),
		cmocka_unit_test(test_many),
		cmocka_unit_test(test_lease),
		cmocka_unit_test(test_stale_copy),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
