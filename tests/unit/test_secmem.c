/*
 * test_secmem.c: the secure pool allocator: zeroed blocks, alignment,
 * wipe on free, coalescing, exhaustion, realloc, ownership and the jansson
 * hook.
 */
#include "tests/unit/unit.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

#define POOL (64 * 1024)

static int
setup(void **state)
{
	(void)state;
	/* Best effort: the test must not depend on RLIMIT_MEMLOCK. */
	return secmem_init(POOL, false) == 0 ? 0 : -1;
}

static bool
all_zero(const unsigned char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (p[i] != 0)
			return false;
	}
	return true;
}

static void
test_init_once(void **state)
{
	size_t used, total;

	(void)state;
	secmem_stats(&used, &total);
	assert_int_equal(total, POOL);		/* already a page multiple */
	assert_int_equal(used, 0);
	/* A second init changes nothing. */
	assert_int_equal(secmem_init(4 * POOL, true), 0);
	secmem_stats(NULL, &total);
	assert_int_equal(total, POOL);
}

static void
test_alloc_zeroed_aligned(void **state)
{
	static const size_t sizes[] = { 0, 1, 15, 16, 17, 31, 32, 33, 100, 4096 };
	void *p[CG_ARRAY_LEN(sizes)];
	size_t i, used;

	(void)state;
	for (i = 0; i < CG_ARRAY_LEN(sizes); i++) {
		p[i] = secmem_alloc(sizes[i]);
		assert_non_null(p[i]);
		assert_int_equal((uintptr_t)p[i] % 16, 0);
		assert_true(secmem_owns(p[i]));
		assert_true(all_zero(p[i], sizes[i]));
		memset(p[i], 0x5a, sizes[i]);
	}
	/* Distinct, non-overlapping. */
	for (i = 1; i < CG_ARRAY_LEN(sizes); i++)
		assert_true((unsigned char *)p[i] >= (unsigned char *)p[i - 1] + sizes[i - 1]);
	secmem_stats(&used, NULL);
	assert_true(used > 0);
	for (i = 0; i < CG_ARRAY_LEN(sizes); i++)
		secmem_free(p[i]);
	secmem_stats(&used, NULL);
	assert_int_equal(used, 0);
	secmem_free(NULL);
}

static void
test_free_wipes(void **state)
{
	unsigned char *p, *keep;

	(void)state;
	p = secmem_alloc(200);
	assert_non_null(p);
	memset(p, 0xa5, 200);
	keep = p;
	secmem_free(p);
	/* The pool stays mapped: the freed bytes must now read as zero. */
	assert_true(all_zero(keep, 200));
}

static void
test_free_wipes_middle(void **state)
{
	unsigned char *a, *b, *c;

	(void)state;
	a = secmem_alloc(64);
	b = secmem_alloc(64);
	c = secmem_alloc(64);
	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(c);
	memset(a, 1, 64);
	memset(b, 2, 64);
	memset(c, 3, 64);
	secmem_free(b);
	assert_true(all_zero(b, 64));
	/* Neighbours untouched. */
	assert_int_equal(a[63], 1);
	assert_int_equal(c[0], 3);
	secmem_free(a);
	secmem_free(c);
	/* Merged headers are wiped too: the whole span reads as zero. */
	assert_true(all_zero(a, (size_t)(c + 64 - a)));
}

static void
test_exhaustion_and_coalescing(void **state)
{
	void *blocks[POOL / 32];
	size_t n = 0, i, used, total;
	void *big;

	(void)state;
	/* More than the pool can hold. */
	assert_null(secmem_alloc(POOL));
	assert_null(secmem_alloc(SIZE_MAX));
	assert_null(secmem_alloc(SIZE_MAX - 8));

	/* Fill the pool with small blocks until it refuses. */
	while (n < CG_ARRAY_LEN(blocks) && (blocks[n] = secmem_alloc(100)) != NULL)
		n++;
	assert_true(n > 100);
	assert_true(n < CG_ARRAY_LEN(blocks));
	assert_null(secmem_alloc(100));
	secmem_stats(&used, &total);
	assert_true(used <= total);
	assert_true(total - used < 128);

	/* Free every other block: plenty of bytes, but no room for 300. */
	for (i = 0; i < n; i += 2)
		secmem_free(blocks[i]);
	assert_null(secmem_alloc(300));
	/* A small one still fits in a hole. */
	blocks[0] = secmem_alloc(100);
	assert_non_null(blocks[0]);

	/* Free the rest, in a different order: everything must merge. */
	for (i = n; i-- > 0;) {
		if (i % 2 == 1)
			secmem_free(blocks[i]);
	}
	secmem_free(blocks[0]);
	secmem_stats(&used, NULL);
	assert_int_equal(used, 0);

	big = secmem_alloc(POOL - 16);
	assert_non_null(big);
	assert_true(all_zero(big, POOL - 16));
	secmem_free(big);
	secmem_stats(&used, NULL);
	assert_int_equal(used, 0);
}

static void
test_secmem_realloc(void **state)
{
	unsigned char *p, *q, *r, *blocker;
	size_t i, used;

	(void)state;
	p = secmem_realloc(NULL, 10);
	assert_non_null(p);
	for (i = 0; i < 10; i++)
		p[i] = (unsigned char)(i + 1);
	/* Block something right after p so growing must move. */
	blocker = secmem_alloc(16);
	assert_non_null(blocker);
	q = secmem_realloc(p, 1000);
	assert_non_null(q);
	assert_ptr_not_equal(q, p);
	for (i = 0; i < 10; i++)
		assert_int_equal(q[i], i + 1);
	assert_true(all_zero(q + 10, 990));
	/* The old block was wiped when it was released. */
	assert_true(all_zero(p, 10));

	/* Shrinking keeps the start and clears the tail. */
	r = secmem_realloc(q, 5);
	assert_ptr_equal(r, q);
	assert_int_equal(r[4], 5);
	assert_int_equal(r[5], 0);

	/* Growth beyond the pool fails and leaves the block alone. */
	assert_null(secmem_realloc(r, 2 * POOL));
	assert_int_equal(r[0], 1);

	assert_null(secmem_realloc(r, 0));	/* frees */
	secmem_free(blocker);
	secmem_stats(&used, NULL);
	assert_int_equal(used, 0);
}

static void
test_strndup_owns(void **state)
{
	char *s;
	int on_stack = 0;
	char *heap;

	(void)state;
	s = secmem_strndup("secret-value", 6);
	assert_non_null(s);
	assert_string_equal(s, "secret");
	assert_true(secmem_owns(s));
	secmem_free(s);
	s = secmem_strndup("ab", 100);
	assert_string_equal(s, "ab");
	secmem_free(s);
	assert_null(secmem_strndup(NULL, 3));

	heap = malloc(8);
	assert_non_null(heap);
	assert_false(secmem_owns(heap));
	assert_false(secmem_owns(&on_stack));
	assert_false(secmem_owns(NULL));
	free(heap);
}

static void
test_ct_equal_wipe(void **state)
{
	unsigned char buf[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };

	(void)state;
	assert_true(cg_ct_equal("abc", "abc", 3));
	assert_false(cg_ct_equal("abc", "abd", 3));
	assert_false(cg_ct_equal("xbc", "abc", 3));
	assert_true(cg_ct_equal("a", "b", 0));
	cg_wipe(buf, 4);
	assert_true(all_zero(buf, 4));
	assert_int_equal(buf[4], 5);
	cg_wipe(NULL, 0);
}

static void
test_json_in_pool(void **state)
{
	json_t *v, *h;
	size_t used0, used1;
	bool was;

	(void)state;
	secmem_stats(&used0, NULL);
	secmem_use_for_json();

	/* Outside a secure scope, JSON stays on the heap: claims, audit. */
	h = json_pack("{s:s}", "sub", "repo:acme/batch");
	assert_non_null(h);
	assert_false(secmem_owns(h));
	secmem_stats(&used1, NULL);
	assert_int_equal(used1, used0);

	was = secmem_json_secure(true);
	assert_false(was);
	/* Scopes nest: an inner one gives back the outer state. */
	assert_true(secmem_json_secure(true));
	assert_true(secmem_json_secure(true));
	v = json_pack("{s:s, s:[i,i]}", "password", "hunter2", "n", 1, 2);
	assert_true(secmem_json_secure(was) == true);
	assert_non_null(v);
	secmem_stats(&used1, NULL);
	assert_true(used1 > used0);
	assert_true(secmem_owns(v));
	assert_true(secmem_owns(json_string_value(json_object_get(v, "password"))));

	/* Each block goes back where it came from, in or out of a scope. */
	json_object_set_new(h, "n", json_integer(7));
	json_decref(v);
	secmem_stats(&used1, NULL);
	assert_int_equal(used1, used0);
	secmem_json_secure(true);
	json_decref(h);
	secmem_json_secure(false);
	secmem_stats(&used1, NULL);
	assert_int_equal(used1, used0);
	json_set_alloc_funcs(malloc, free);
}

static void *
churn(void *arg)
{
	unsigned char *p[16];
	size_t i, k, n;
	unsigned tag = (unsigned)(uintptr_t)arg;

	for (k = 0; k < 2000; k++) {
		for (i = 0; i < CG_ARRAY_LEN(p); i++) {
			n = 1 + (k * 7 + i * 13) % 200;
			p[i] = secmem_alloc(n);
			if (p[i] == NULL)
				return (void *)1;
			if (!all_zero(p[i], n))
				return (void *)2;
			memset(p[i], (int)tag, n);
		}
		for (i = 0; i < CG_ARRAY_LEN(p); i++) {
			/* Nobody else wrote into our blocks. */
			if (p[i][0] != (unsigned char)tag)
				return (void *)3;
			secmem_free(p[i]);
		}
	}
	return NULL;
}

static void
test_threads(void **state)
{
	pthread_t t[4];
	void *ret;
	size_t i, used;

	(void)state;
	for (i = 0; i < CG_ARRAY_LEN(t); i++)
		assert_int_equal(pthread_create(&t[i], NULL, churn,
		    (void *)(uintptr_t)(0x11 * (i + 1))), 0);
	for (i = 0; i < CG_ARRAY_LEN(t); i++) {
		assert_int_equal(pthread_join(t[i], &ret), 0);
		assert_null(ret);
	}
	secmem_stats(&used, NULL);
	assert_int_equal(used, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init_once),
		cmocka_unit_test(test_alloc_zeroed_aligned),
		cmocka_unit_test(test_free_wipes),
		cmocka_unit_test(test_free_wipes_middle),
		cmocka_unit_test(test_exhaustion_and_coalescing),
		cmocka_unit_test(test_secmem_realloc),
		cmocka_unit_test(test_strndup_owns),
		cmocka_unit_test(test_ct_equal_wipe),
		cmocka_unit_test(test_json_in_pool),
		cmocka_unit_test(test_threads),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
