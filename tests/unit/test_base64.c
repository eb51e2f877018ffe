/*
 * test_base64.c: strict base64url decoding and both encoders.
 */
#include "tests/unit/unit.h"

#include <string.h>

#include "common.h"

struct enc_case {
	const char *in;
	size_t n;
	const char *url;
	const char *std;
};

/* RFC 4648 §10 vectors plus bytes that differ between the alphabets. */
static const struct enc_case enc_cases[] = {
	{ "", 0, "", "" },
	{ "f", 1, "Zg", "Zg==" },
	{ "fo", 2, "Zm8", "Zm8=" },
	{ "foo", 3, "Zm9v", "Zm9v" },
	{ "foob", 4, "Zm9vYg", "Zm9vYg==" },
	{ "fooba", 5, "Zm9vYmE", "Zm9vYmE=" },
	{ "foobar", 6, "Zm9vYmFy", "Zm9vYmFy" },
	{ "\xfb\xff", 2, "-_8", "+/8=" },
	{ "\xff\xff\xff", 3, "____", "////" },
	{ "\x00", 1, "AA", "AA==" },
};

static void
test_encode(void **state)
{
	char out[32];
	size_t i;

	(void)state;
	for (i = 0; i < CG_ARRAY_LEN(enc_cases); i++) {
		const struct enc_case *c = &enc_cases[i];

		assert_int_equal(b64url_encoded_len(c->n), strlen(c->url));
		b64url_encode((const unsigned char *)c->in, c->n, out);
		assert_string_equal(out, c->url);
		assert_int_equal(b64_encoded_len(c->n), strlen(c->std));
		b64_encode((const unsigned char *)c->in, c->n, out);
		assert_string_equal(out, c->std);
	}
}

static void
test_decode_vectors(void **state)
{
	unsigned char out[32];
	size_t i, olen;

	(void)state;
	for (i = 0; i < CG_ARRAY_LEN(enc_cases); i++) {
		const struct enc_case *c = &enc_cases[i];
		size_t ilen = strlen(c->url);

		assert_true(b64url_decoded_max(ilen) >= c->n);
		memset(out, 0xaa, sizeof(out));
		assert_int_equal(b64url_decode(c->url, ilen, out, &olen), 0);
		assert_int_equal(olen, c->n);
		assert_memory_equal(out, c->in, c->n);
	}
}

static void
test_decoded_max(void **state)
{
	static const struct {
		size_t in, max;
	} cases[] = {
		{ 0, 0 }, { 1, 0 }, { 2, 1 }, { 3, 2 }, { 4, 3 }, { 5, 3 },
		{ 6, 4 }, { 7, 5 }, { 8, 6 },
	};
	size_t i;

	(void)state;
	for (i = 0; i < CG_ARRAY_LEN(cases); i++)
		assert_int_equal(b64url_decoded_max(cases[i].in), cases[i].max);
}

static void
test_decode_rejects(void **state)
{
	static const char *const bad[] = {
		"A",		/* length 1 mod 4 */
		"Zm9vY",	/* length 1 mod 4 */
		"Zg==",		/* padding */
		"Zm8=",
		"Zg=",
		"+/8",		/* standard alphabet */
		"-/8",
		"Zm 9v",	/* whitespace */
		"Zm9v\n",
		"\tZm9",
		"Zh",		/* trailing bits not zero (1 byte) */
		"Zm9",		/* trailing bits not zero (2 bytes) */
		"AB",
		"AAB",
		"Zm9v*",
		"Zm\x80v",
	};
	unsigned char out[16];
	size_t i, olen;

	(void)state;
	for (i = 0; i < CG_ARRAY_LEN(bad); i++) {
		olen = 99;
		assert_int_equal(b64url_decode(bad[i], strlen(bad[i]), out, &olen),
		    CG_ERR_FORMAT);
		assert_int_equal(olen, 0);
	}
}

/* Every byte value, at every place of a whole quantum and of a tail. */
static void
test_decode_every_byte(void **state)
{
	static const char alpha[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	char in[8];
	unsigned char out[8];
	size_t olen;
	int v, pos;

	(void)state;
	for (v = 0; v < 256; v++) {
		const char *hit = v != 0 ? memchr(alpha, v, 64) : NULL;

		for (pos = 0; pos < 7; pos++) {
			/* "AAAA" "AAA": the tail keeps its last bits zero with 'A'. */
			memcpy(in, "AAAAAAA", 7);
			if (pos != 6 || hit == NULL || ((hit - alpha) & 3) == 0)
				in[pos] = (char)v;
			if (hit == NULL)
				assert_int_equal(b64url_decode(in, 7, out, &olen), CG_ERR_FORMAT);
			else
				assert_int_equal(b64url_decode(in, 7, out, &olen), 0);
		}
		if (hit != NULL) {
			/* Its value lands where it should. */
			memcpy(in, "AAAA", 4);
			in[3] = (char)v;
			assert_int_equal(b64url_decode(in, 4, out, &olen), 0);
			assert_int_equal(olen, 3);
			assert_int_equal(out[2], hit - alpha);
		}
	}
}

static void
test_decode_embedded_nul(void **state)
{
	unsigned char out[8];
	size_t olen;

	(void)state;
	/* inlen is explicit: a NUL inside the range is a bad character. */
	assert_int_equal(b64url_decode("Zm\0v", 4, out, &olen), CG_ERR_FORMAT);
	/* and bytes past inlen are not read. */
	assert_int_equal(b64url_decode("Zm9v!!", 4, out, &olen), 0);
	assert_int_equal(olen, 3);
}

static void
test_round_trip(void **state)
{
	unsigned char in[256], out[256];
	char enc[400];
	size_t n, i, olen;

	(void)state;
	for (i = 0; i < sizeof(in); i++)
		in[i] = (unsigned char)i;
	/* Every length up to 256 bytes, so every byte value and every tail. */
	for (n = 0; n <= sizeof(in); n++) {
		b64url_encode(in, n, enc);
		assert_int_equal(strlen(enc), b64url_encoded_len(n));
		assert_null(strpbrk(enc, "+/="));
		assert_int_equal(b64url_decode(enc, strlen(enc), out, &olen), 0);
		assert_int_equal(olen, n);
		assert_memory_equal(out, in, n);
	}
	/* Each single byte value on its own. */
	for (i = 0; i < 256; i++) {
		unsigned char b = (unsigned char)i;

		b64url_encode(&b, 1, enc);
		assert_int_equal(b64url_decode(enc, 2, out, &olen), 0);
		assert_int_equal(olen, 1);
		assert_int_equal(out[0], b);
	}
}

/* Standard base64 with padding: RFC 4648's vectors, and what is refused. */
static void
test_std_decode(void **state)
{
	static const struct {
		const char *in, *out;
	} ok[] = {
		{ "", "" }, { "Zg==", "f" }, { "Zm8=", "fo" }, { "Zm9v", "foo" },
		{ "Zm9vYg==", "foob" }, { "Zm9vYmE=", "fooba" }, { "Zm9vYmFy", "foobar" },
		{ "+/+/", "\xfb\xff\xbf" },
	};
	static const char *const bad[] = {
		"Zg", "Zg=", "Zg===", "Z===", "====", "Zh==", "Zm9=", "Zm 9v", "Zm9v\n",
		"-_-_", "Zg==Zg==", "=Zg=",
	};
	unsigned char out[16];
	size_t i, n;

	(void)state;
	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		assert_int_equal(b64_decode(ok[i].in, strlen(ok[i].in), out, &n), 0);
		assert_int_equal(n, strlen(ok[i].out));
		assert_memory_equal(out, ok[i].out, n);
		assert_true(n <= b64_decoded_max(strlen(ok[i].in)));
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (b64_decode(bad[i], strlen(bad[i]), out, &n) != CG_ERR_FORMAT)
			fail_msg("accepted \"%s\"", bad[i]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_encode),
		cmocka_unit_test(test_decode_vectors),
		cmocka_unit_test(test_decoded_max),
		cmocka_unit_test(test_decode_rejects),
		cmocka_unit_test(test_decode_every_byte),
		cmocka_unit_test(test_decode_embedded_nul),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_std_decode),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
