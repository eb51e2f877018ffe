/*
 * test_jwks.c: jwks_load_mem() and jwks_load_file() with keys generated at
 * test time: what a key set may hold, what it must not, and the limits.
 */
#include "config.h"

#include <sys/stat.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/unit/unit.h"
#include "common.h"
#include "policy/policy.h"
#include "tests/unit/jwt_sign.h"

static EVP_PKEY *k_rsa, *k_rsa_small, *k_p256, *k_p384, *k_ed;

static int
setup(void **state)
{
	k_rsa = ts_keygen("RSA", 2048);
	k_rsa_small = ts_keygen("RSA", 1024);
	k_p256 = ts_keygen("P-256", 0);
	k_p384 = ts_keygen("P-384", 0);
	k_ed = ts_keygen("Ed25519", 0);
	(void)state;
	return 0;
}

static int
teardown(void **state)
{
	EVP_PKEY_free(k_rsa);
	EVP_PKEY_free(k_rsa_small);
	EVP_PKEY_free(k_p256);
	EVP_PKEY_free(k_p384);
	EVP_PKEY_free(k_ed);
	(void)state;
	return 0;
}

/*
 * Loads {"keys":[<keys>]} and checks the result: code, the number of keys
 * on success, and that err holds `want` (a fragment) on failure.
 */
static void
load(const char *keys, int code, size_t count, const char *want)
{
	char *set = ts_fmt("{\"keys\":[%s]}", keys);
	struct jwks *ks = (struct jwks *)1;
	char err[256];
	int r;

	memset(err, 'x', sizeof(err));
	r = jwks_load_mem(set, strlen(set), &ks, err, sizeof(err));
	if (r != code)
		fail_msg("got %d (%s), want %d", r, r == 0 ? "" : err, code);
	if (code == 0) {
		assert_non_null(ks);
		assert_int_equal(jwks_count(ks), count);
		jwks_free(ks);
	} else {
		assert_null(ks);
		assert_non_null(memchr(err, '\0', sizeof(err)));
		if (strstr(err, want) == NULL)
			fail_msg("err \"%s\" lacks \"%s\"", err, want);
	}
	free(set);
}

/* load() with one key and a JSON text freed afterwards. */
static void
load1(char *key, int code, size_t count, const char *want)
{
	load(key, code, count, want);
	free(key);
}

static void
test_each_kty(void **state)
{
	char *a = ts_jwk(k_rsa, "r", NULL, NULL);
	char *b = ts_jwk(k_p256, "e1", "ES256", "\"use\":\"sig\"");
	char *c = ts_jwk(k_p384, "e2", NULL, "\"key_ops\":[\"verify\"]");
	char *d = ts_jwk(k_ed, "o", "EdDSA", NULL);
	char *all = ts_fmt("%s,%s,%s,%s", a, b, c, d);

	load(a, 0, 1, NULL);
	load(b, 0, 1, NULL);
	load(c, 0, 1, NULL);
	load(d, 0, 1, NULL);
	load(all, 0, 4, NULL);
	free(a);
	free(b);
	free(c);
	free(d);
	free(all);
	/* RS256 and PS256 pins on RSA keys, no kid at all. */
	load1(ts_jwk(k_rsa, NULL, "PS256", NULL), 0, 1, NULL);
	load1(ts_jwk(k_rsa, NULL, "RS256", NULL), 0, 1, NULL);
	(void)state;
}

static void
test_rsa_size(void **state)
{
	char *n, *e, *key, *set;
	struct jwks *ks;
	char err[512];

	load1(ts_jwk(k_rsa_small, "small", NULL, NULL), CG_ERR_UNSUPPORTED, 0,
	    "shorter than 2048 bits");
	/* A leading zero octet does not make a short modulus long. */
	n = ts_jwk_member(k_rsa, "n");
	e = ts_jwk_member(k_rsa, "e");
	/* Three zero octets ("AAAA") in front of the modulus. */
	key = ts_fmt("{\"kty\":\"RSA\",\"n\":\"AAAA%s\",\"e\":\"%s\"}", n, e);
	load1(key, CG_ERR_FORMAT, 0, "leading zero");
	/* An even exponent. */
	key = ts_fmt("{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"AQAA\"}", n);
	load1(key, CG_ERR_FORMAT, 0, "not usable");
	/* The error never carries the key. */
	key = ts_fmt("{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"AQAA\"}", n);
	set = ts_fmt("{\"keys\":[%s]}", key);
	assert_int_equal(jwks_load_mem(set, strlen(set), &ks, err, sizeof(err)),
	    CG_ERR_FORMAT);
	assert_null(strstr(err, "AQAA"));
	n[8] = '\0';
	assert_null(strstr(err, n));
	free(set);
	free(key);
	free(n);
	free(e);
	(void)state;
}

static void
test_ec_point(void **state)
{
	char *x = ts_jwk_member(k_p256, "x"), *y = ts_jwk_member(k_p256, "y");
	char *y2 = strdup(y), *key;
	char *x384 = ts_jwk_member(k_p384, "x"), *y384 = ts_jwk_member(k_p384, "y");

	/* Change y: the point leaves the curve. */
	y2[5] = y2[5] == 'A' ? 'B' : 'A';
	key = ts_fmt("{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"}", x, y2);
	load1(key, CG_ERR_FORMAT, 0, "not on the curve");
	/* The point (0, 0). */
	load("{\"kty\":\"EC\",\"crv\":\"P-256\","
	    "\"x\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\","
	    "\"y\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}",
	    CG_ERR_FORMAT, 0, "not on the curve");
	/* The P-256 point announced as P-384: wrong lengths. */
	key = ts_fmt("{\"kty\":\"EC\",\"crv\":\"P-384\",\"x\":\"%s\",\"y\":\"%s\"}", x, y);
	load1(key, CG_ERR_FORMAT, 0, "length");
	/* A P-384 point announced as P-256. */
	key = ts_fmt("{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"}", x384, y384);
	load1(key, CG_ERR_FORMAT, 0, "length");
	/* x three bytes short. */
	key = ts_fmt("{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"}", x + 4, y);
	load1(key, CG_ERR_FORMAT, 0, "length");
	/* y missing. */
	key = ts_fmt("{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\"}", x);
	load1(key, CG_ERR_FORMAT, 0, "missing \"y\"");
	/* Ed25519 key of 31 bytes. */
	load("{\"kty\":\"OKP\",\"crv\":\"Ed25519\","
	    "\"x\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}",
	    CG_ERR_FORMAT, 0, "32 bytes");
	free(x);
	free(y);
	free(y2);
	free(x384);
	free(y384);
	(void)state;
}

static void
test_private_member(void **state)
{
	static const char *const members[] = { "d", "p", "q", "dp", "dq", "qi", "k" };
	char *extra, *d;
	size_t i;

	for (i = 0; i < CG_ARRAY_LEN(members); i++) {
		extra = ts_fmt("\"%s\":\"AQAB\"", members[i]);
		load1(ts_jwk(k_rsa, "r", NULL, extra), CG_ERR_FORMAT, 0,
		    "private key member");
		free(extra);
	}
	/* A real EC private key, and in a key we would otherwise skip. */
	d = ts_jwk_member(k_p256, "d");
	extra = ts_fmt("\"d\":\"%s\"", d);
	load1(ts_jwk(k_p256, "e", NULL, extra), CG_ERR_FORMAT, 0, "private key member");
	free(extra);
	extra = ts_fmt("\"use\":\"enc\",\"d\":\"%s\"", d);
	load1(ts_jwk(k_p256, "e", NULL, extra), CG_ERR_FORMAT, 0, "private key member");
	free(extra);
	free(d);
	(void)state;
}

/* A symmetric key is a shared secret, not a proof of who signed: it is
 * skipped and counted (the caller warns), and the other keys stay. */
static void
test_symmetric_skipped(void **state)
{
	char *rsa = ts_jwk(k_rsa, "r", NULL, NULL);
	char *set = ts_fmt("{\"keys\":[{\"kty\":\"oct\",\"k\":\"c2VjcmV0\","
	    "\"kid\":\"r\",\"alg\":\"HS256\"},%s]}", rsa);
	struct jwks *ks = NULL;
	char err[256];

	load("{\"kty\":\"oct\",\"k\":\"c2VjcmV0\"}", CG_ERR_NOTFOUND, 0,
	    "no usable signature key");
	assert_int_equal(jwks_load_mem(set, strlen(set), &ks, err, sizeof(err)), 0);
	assert_int_equal(jwks_count(ks), 1);
	assert_int_equal(jwks_skipped_symmetric(ks), 1);
	jwks_free(ks);
	free(set);
	free(rsa);
	(void)state;
}

/* References, and jwks_same(): equal keys in equal order, nothing else. */
static void
test_refs_and_same(void **state)
{
	char *r = ts_jwk(k_rsa, "r", NULL, NULL), *e = ts_jwk(k_p256, "e", NULL, NULL);
	char *e2 = ts_jwk(k_p256, "e2", NULL, NULL);
	char *r_pinned = ts_jwk(k_rsa, "r", "RS256", NULL);
	char *texts[5];
	struct jwks *ks[5];
	char err[256];
	size_t i;

	texts[0] = ts_fmt("{\"keys\":[%s,%s]}", r, e);
	texts[1] = ts_fmt("{ \"keys\" : [ %s , %s ], \"x\": 1 }", r, e);
	texts[2] = ts_fmt("{\"keys\":[%s,%s]}", e, r);
	texts[3] = ts_fmt("{\"keys\":[%s,%s]}", r, e2);
	texts[4] = ts_fmt("{\"keys\":[%s,%s]}", r_pinned, e);
	for (i = 0; i < 5; i++)
		assert_int_equal(jwks_load_mem(texts[i], strlen(texts[i]), &ks[i],
		    err, sizeof(err)), 0);
	assert_true(jwks_same(ks[0], ks[1]));	/* another text, same keys */
	assert_false(jwks_same(ks[0], ks[2]));	/* order */
	assert_false(jwks_same(ks[0], ks[3]));	/* a kid */
	assert_false(jwks_same(ks[0], ks[4]));	/* an alg pin alone */
	assert_false(jwks_same(ks[0], NULL));
	assert_true(jwks_same(NULL, NULL));

	/* A reference keeps the set; the last one frees it (ASan checks). */
	assert_ptr_equal(jwks_ref(ks[0]), ks[0]);
	jwks_free(ks[0]);
	assert_int_equal(jwks_count(ks[0]), 2);
	assert_null(jwks_ref(NULL));
	for (i = 0; i < 5; i++) {
		jwks_free(ks[i]);
		free(texts[i]);
	}
	free(r);
	free(e);
	free(e2);
	free(r_pinned);
	(void)state;
}

/* A ring publishes whole sets, counts publications, and forwards wishes
 * only when it has a fetcher. */
static int wakes;
static void
count_wake(void *arg)
{
	assert_ptr_equal(arg, &wakes);
	wakes++;
}

static void
test_keyring(void **state)
{
	char *r = ts_jwk(k_rsa, "r", NULL, NULL);
	char *set = ts_fmt("{\"keys\":[%s]}", r);
	struct policy_keyring *ring;
	struct jwks *a, *b, *got;
	char err[256];

	assert_int_equal(jwks_load_mem(set, strlen(set), &a, err, sizeof(err)), 0);
	assert_int_equal(jwks_load_mem(set, strlen(set), &b, err, sizeof(err)), 0);
	assert_non_null(ring = policy_keyring_new(NULL));
	assert_null(policy_keyring_get(ring));
	assert_null(policy_keyring_current(ring));
	assert_int_equal(policy_keyring_serial(ring), 0);

	policy_keyring_set(ring, a);
	assert_ptr_equal(policy_keyring_current(ring), a);
	assert_int_equal(policy_keyring_serial(ring), 1);
	got = policy_keyring_get(ring);
	assert_ptr_equal(got, a);
	/* Replaced: the holder keeps the old set, the ring has the new. */
	policy_keyring_set(ring, b);
	assert_ptr_equal(policy_keyring_current(ring), b);
	assert_int_equal(policy_keyring_serial(ring), 2);
	assert_int_equal(jwks_count(got), 1);
	jwks_free(got);

	/* Fetches are numbered as they start and answered as they end;
	 * a refusal is counted apart; none of it touches the set. */
	assert_int_equal(policy_keyring_started(ring), 0);
	assert_int_equal(policy_keyring_fetch_start(ring), 1);
	assert_int_equal(policy_keyring_fetch_start(ring), 2);
	assert_int_equal(policy_keyring_started(ring), 2);
	assert_int_equal(policy_keyring_answered(ring), 0);
	policy_keyring_fetch_done(ring, 1);
	assert_int_equal(policy_keyring_answered(ring), 1);
	policy_keyring_fetch_done(ring, 2);
	policy_keyring_fetch_done(ring, 1);	/* never backwards */
	assert_int_equal(policy_keyring_answered(ring), 2);
	assert_int_equal(policy_keyring_refusals(ring), 0);
	policy_keyring_refuse(ring);
	assert_int_equal(policy_keyring_refusals(ring), 1);
	assert_int_equal(policy_keyring_serial(ring), 2);
	assert_ptr_equal(policy_keyring_current(ring), b);
	assert_int_equal(policy_keyring_started(NULL), 0);
	assert_int_equal(policy_keyring_answered(NULL), 0);
	assert_int_equal(policy_keyring_refusals(NULL), 0);

	/* No fetcher: a wish is not taken. */
	assert_false(policy_keyring_want(ring));
	assert_false(policy_keyring_take_want(ring));
	policy_keyring_set_waker(ring, count_wake, &wakes);
	assert_true(policy_keyring_want(ring));
	assert_true(policy_keyring_want(ring));
	assert_int_equal(wakes, 2);
	assert_true(policy_keyring_take_want(ring));
	assert_false(policy_keyring_take_want(ring));
	policy_keyring_set_waker(ring, NULL, NULL);
	assert_false(policy_keyring_want(ring));

	assert_ptr_equal(policy_keyring_ref(ring), ring);
	policy_keyring_unref(ring);
	policy_keyring_unref(ring);
	policy_keyring_unref(NULL);
	free(set);
	free(r);
	(void)state;
}

static void
test_duplicates(void **state)
{
	char *a = ts_jwk(k_rsa, "same", NULL, NULL);
	char *b = ts_jwk(k_p256, "same", NULL, NULL);
	char *c = ts_jwk(k_p256, "same", NULL, "\"use\":\"enc\"");
	char *na = ts_jwk(k_rsa, NULL, NULL, NULL);
	char *nb = ts_jwk(k_p256, NULL, NULL, NULL);
	char *keys;

	keys = ts_fmt("%s,%s", a, b);
	load(keys, CG_ERR_FORMAT, 0, "duplicate \"kid\"");
	free(keys);
	/* The skipped encryption key does not count. */
	keys = ts_fmt("%s,%s", a, c);
	load(keys, 0, 1, NULL);
	free(keys);
	/* Keys without a kid are not duplicates of each other. */
	keys = ts_fmt("%s,%s", na, nb);
	load(keys, 0, 2, NULL);
	free(keys);
	/* A duplicate JSON member. */
	load("{\"kty\":\"OKP\",\"kty\":\"OKP\",\"crv\":\"Ed25519\","
	    "\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}",
	    CG_ERR_FORMAT, 0, "not strict JSON");
	free(a);
	free(b);
	free(c);
	free(na);
	free(nb);
	(void)state;
}

static void
test_skipped(void **state)
{
	char *sig = ts_jwk(k_ed, "s", NULL, NULL);
	char *enc = ts_jwk(k_rsa, "enc", NULL, "\"use\":\"enc\"");
	char *ops = ts_jwk(k_p256, "ops", NULL, "\"key_ops\":[\"encrypt\"]");
	char *pin = ts_jwk(k_rsa, "r384", "RS384", NULL);
	char *keys;

	keys = ts_fmt("%s,%s,%s,%s,{\"kty\":\"oct2\"},"
	    "{\"kty\":\"EC\",\"crv\":\"P-521\",\"x\":\"AA\",\"y\":\"AA\"},"
	    "{\"kty\":\"OKP\",\"crv\":\"X25519\",\"x\":\"AA\"}",
	    sig, enc, ops, pin);
	load(keys, 0, 1, NULL);
	free(keys);
	/* Nothing usable is an error. */
	keys = ts_fmt("%s,%s", enc, ops);
	load(keys, CG_ERR_NOTFOUND, 0, "no usable");
	free(keys);
	load("", CG_ERR_NOTFOUND, 0, "no usable");
	free(sig);
	free(enc);
	free(ops);
	free(pin);
	(void)state;
}

/* The next base64url character: sets the lowest bit of a canonical final
 * character, whose spare bits are zero. */
static char
b64_next(char c)
{
	static const char a[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

	return a[(strchr(a, c) - a + 1) % 64];
}

static void
test_malformed(void **state)
{
	char *n = ts_jwk_member(k_rsa, "n"), *x = ts_jwk_member(k_ed, "x");
	char *bad, *key;
	struct jwks *ks;
	char err[256];

	/* '+' and '/' instead of '-' and '_', padding, a stray trailing bit. */
	bad = strdup(n);
	bad[10] = '+';
	key = ts_fmt("{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"AQAB\"}", bad);
	load1(key, CG_ERR_FORMAT, 0, "\"n\" is not valid base64url");
	bad[10] = '/';
	key = ts_fmt("{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"AQAB\"}", bad);
	load1(key, CG_ERR_FORMAT, 0, "\"n\" is not valid base64url");
	free(bad);
	key = ts_fmt("{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"%s=\"}", x);
	load1(key, CG_ERR_FORMAT, 0, "\"x\" is not valid base64url");
	/* 32 bytes: 43 characters, the last holding 2 spare bits. */
	bad = strdup(x);
	bad[42] = b64_next(bad[42]);
	key = ts_fmt("{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"%s\"}", bad);
	load1(key, CG_ERR_FORMAT, 0, "\"x\" is not valid base64url");
	free(bad);
	key = ts_fmt("{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"AQ AB\"}", n);
	load1(key, CG_ERR_FORMAT, 0, "\"e\" is not valid base64url");
	key = ts_fmt("{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":65537}", n);
	load1(key, CG_ERR_FORMAT, 0, "\"e\" is not valid base64url");

	/* Shapes. */
	load("{\"kty\":1}", CG_ERR_FORMAT, 0, "\"kty\" missing");
	load("{\"crv\":\"Ed25519\"}", CG_ERR_FORMAT, 0, "\"kty\" missing");
	load("[]", CG_ERR_FORMAT, 0, "not a JSON object");
	load("{\"kty\":\"RSA\",\"use\":1}", CG_ERR_FORMAT, 0, "\"use\" is not a string");
	key = ts_jwk(k_ed, NULL, "ES256", NULL);
	load1(key, CG_ERR_FORMAT, 0, "does not match the key type");
	key = ts_jwk(k_ed, "a\\u0000b", NULL, NULL);
	load1(key, CG_ERR_FORMAT, 0, "not strict JSON");
	key = ts_fmt("{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"%s\",\"kid\":"
	    "\"%0128d\"}", x, 0);
	load1(key, CG_ERR_LIMIT, 0, "longer than");
	key = ts_fmt("{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"%s\",\"kid\":"
	    "\"%0127d\"}", x, 0);
	load1(key, 0, 1, NULL);

	assert_int_equal(jwks_load_mem("{\"keys\":{}}", 11, &ks, err, sizeof(err)),
	    CG_ERR_FORMAT);
	assert_null(ks);
	assert_int_equal(jwks_load_mem("[]", 2, &ks, err, sizeof(err)), CG_ERR_FORMAT);
	assert_int_equal(jwks_load_mem("{\"keys\":[]} x", 13, &ks, err, sizeof(err)),
	    CG_ERR_FORMAT);
	assert_int_equal(jwks_load_mem("", 0, &ks, err, sizeof(err)), CG_ERR_FORMAT);
	free(n);
	free(x);
	(void)state;
}

static void
test_too_many(void **state)
{
	char *one = ts_jwk(k_ed, NULL, NULL, NULL), *keys = strdup(one), *tmp;
	size_t i;

	for (i = 1; i < 100; i++) {
		tmp = ts_fmt("%s,%s", keys, one);
		free(keys);
		keys = tmp;
	}
	load(keys, 0, 100, NULL);
	tmp = ts_fmt("%s,%s", keys, one);
	load(tmp, CG_ERR_LIMIT, 0, "more than");
	free(tmp);
	free(keys);
	free(one);
	(void)state;
}

static char *
write_tmp(const char *data, size_t len)
{
	const char *dir = getenv("TMPDIR");
	char *path = ts_fmt("%s/cg-jwks-XXXXXX", dir != NULL ? dir : P_tmpdir);
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
	return path;
}

static void
test_file(void **state)
{
	char *key = ts_jwk(k_p256, "f", NULL, NULL);
	char *set = ts_fmt("{\"keys\":[%s]}", key);
	char *big, *path;
	struct jwks *ks = NULL;
	char err[256];
	size_t setlen = strlen(set);
	const size_t limit = 1024 * 1024;

	path = write_tmp(set, setlen);
	assert_int_equal(jwks_load_file(path, &ks, err, sizeof(err)), 0);
	assert_int_equal(jwks_count(ks), 1);
	jwks_free(ks);
	unlink(path);
	free(path);

	/* Exactly 1 MiB (valid JSON padded with spaces) loads; one more
	 * byte is refused, from a file and from memory. */
	big = malloc(limit + 1);
	assert_non_null(big);
	memset(big, ' ', limit + 1);
	memcpy(big, set, setlen);
	path = write_tmp(big, limit);
	assert_int_equal(jwks_load_file(path, &ks, err, sizeof(err)), 0);
	jwks_free(ks);
	unlink(path);
	free(path);
	path = write_tmp(big, limit + 1);
	assert_int_equal(jwks_load_file(path, &ks, err, sizeof(err)), CG_ERR_LIMIT);
	assert_null(ks);
	assert_non_null(strstr(err, "larger than"));
	unlink(path);
	free(path);
	assert_int_equal(jwks_load_mem(big, limit + 1, &ks, err, sizeof(err)),
	    CG_ERR_LIMIT);
	assert_int_equal(jwks_load_mem(big, limit, &ks, err, sizeof(err)), 0);
	jwks_free(ks);
	free(big);

	/* Missing file, a directory. */
	assert_int_equal(jwks_load_file("/nonexistent/jwks.json", &ks, err,
	    sizeof(err)), CG_ERR_IO);
	assert_non_null(strstr(err, "cannot open"));
	assert_int_equal(jwks_load_file(".", &ks, err, sizeof(err)), CG_ERR_FORMAT);
	assert_non_null(strstr(err, "not a regular file"));

	/* A FIFO without a writer: refused at once, not waited on. */
	{
		char dir[] = "/tmp/cg-jwks-XXXXXX", fifo[64];

		assert_non_null(mkdtemp(dir));
		snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
		assert_int_equal(mkfifo(fifo, 0600), 0);
		assert_int_equal(jwks_load_file(fifo, &ks, err, sizeof(err)),
		    CG_ERR_FORMAT);
		assert_null(ks);
		assert_non_null(strstr(err, "not a regular file"));
		assert_non_null(strstr(err, fifo));
		unlink(fifo);
		rmdir(dir);
	}

	/* Tiny err buffers and none at all are fine. */
	assert_int_equal(jwks_load_mem("[]", 2, &ks, err, 1), CG_ERR_FORMAT);
	assert_int_equal(err[0], '\0');
	assert_int_equal(jwks_load_mem("[]", 2, &ks, NULL, 0), CG_ERR_FORMAT);
	jwks_free(NULL);
	assert_int_equal(jwks_count(NULL), 0);
	free(set);
	free(key);
	(void)state;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_each_kty),
		cmocka_unit_test(test_rsa_size),
		cmocka_unit_test(test_ec_point),
		cmocka_unit_test(test_private_member),
		cmocka_unit_test(test_symmetric_skipped),
		cmocka_unit_test(test_refs_and_same),
		cmocka_unit_test(test_keyring),
		cmocka_unit_test(test_duplicates),
		cmocka_unit_test(test_skipped),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_too_many),
		cmocka_unit_test(test_file),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
