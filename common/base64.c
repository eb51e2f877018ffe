/*
 * base64.c: strict decoding and encoding of base64url without padding
 * (JOSE) and of standard base64 with padding (HTTP Basic, SCRAM).
 * Decoding refuses anything that is not the one canonical form.
 */
#include "config.h"

#include "common.h"

static const char b64url_alpha[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
static const char b64_alpha[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/*
 * One more than the value of each byte of the alphabet; 0 for every other,
 * which b64_value() turns into a value with bit 6 set.
 */
#define B64_ALNUM_VALUES \
	['A'] = 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, \
	20, 21, 22, 23, 24, 25, 26, \
	['a'] = 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, \
	44, 45, 46, 47, 48, 49, 50, 51, 52, \
	['0'] = 53, 54, 55, 56, 57, 58, 59, 60, 61, 62

static const unsigned char b64url_values[256] = {
	B64_ALNUM_VALUES, ['-'] = 63, ['_'] = 64,
};

/* The same for the standard alphabet. */
static const unsigned char b64_values[256] = {
	B64_ALNUM_VALUES, ['+'] = 63, ['/'] = 64,
};

static inline uint32_t
b64_value(const unsigned char *values, unsigned char c)
{
	return (uint32_t)values[c] - 1;
}

size_t
b64url_decoded_max(size_t inlen)
{
	return (inlen / 4) * 3 + ((inlen % 4) * 3) / 4;
}

/* Decodes unpadded text of the alphabet whose values are given. */
static int
decode(const unsigned char *values, const char *in, size_t inlen, unsigned char *out,
    size_t *outlen)
{
	uint32_t acc, a, b, c, d;
	size_t i, o = 0, rem;

	*outlen = 0;
	rem = inlen % 4;
	if (rem == 1)
		return CG_ERR_FORMAT;
	/* Whole quanta of four: one test for all four bytes. */
	for (i = 0; i + 4 <= inlen; i += 4) {
		a = b64_value(values, (unsigned char)in[i]);
		b = b64_value(values, (unsigned char)in[i + 1]);
		c = b64_value(values, (unsigned char)in[i + 2]);
		d = b64_value(values, (unsigned char)in[i + 3]);
		if ((a | b | c | d) & 0x40)
			return CG_ERR_FORMAT;
		acc = (a << 18) | (b << 12) | (c << 6) | d;
		out[o++] = (unsigned char)(acc >> 16);
		out[o++] = (unsigned char)(acc >> 8);
		out[o++] = (unsigned char)acc;
	}
	acc = 0;
	for (; i < inlen; i++) {
		if ((a = b64_value(values, (unsigned char)in[i])) & 0x40)
			return CG_ERR_FORMAT;
		acc = (acc << 6) | a;
	}
	if (rem == 2) {
		/* 12 bits: one byte and 4 bits that must be zero. */
		if ((acc & 0x0f) != 0)
			return CG_ERR_FORMAT;
		out[o++] = (unsigned char)(acc >> 4);
	} else if (rem == 3) {
		/* 18 bits: two bytes and 2 bits that must be zero. */
		if ((acc & 0x03) != 0)
			return CG_ERR_FORMAT;
		out[o++] = (unsigned char)(acc >> 10);
		out[o++] = (unsigned char)(acc >> 2);
	}
	*outlen = o;
	return 0;
}

int
b64url_decode(const char *in, size_t inlen, unsigned char *out, size_t *outlen)
{
	return decode(b64url_values, in, inlen, out, outlen);
}

size_t
b64_decoded_max(size_t inlen)
{
	return (inlen / 4) * 3;
}

int
b64_decode(const char *in, size_t inlen, unsigned char *out, size_t *outlen)
{
	size_t pad = 0;

	*outlen = 0;
	if (inlen % 4 != 0)
		return CG_ERR_FORMAT;
	while (pad < 2 && pad < inlen && in[inlen - 1 - pad] == '=')
		pad++;
	return decode(b64_values, in, inlen - pad, out, outlen);
}

size_t
b64url_encoded_len(size_t n)
{
	return (n / 3) * 4 + ((n % 3) * 4 + 2) / 3;
}

static void
encode(const char *alpha, bool pad, const unsigned char *in, size_t n, char *out)
{
	size_t i, o = 0;
	uint32_t acc;

	for (i = 0; i + 3 <= n; i += 3) {
		acc = ((uint32_t)in[i] << 16) | ((uint32_t)in[i + 1] << 8) | in[i + 2];
		out[o++] = alpha[(acc >> 18) & 63];
		out[o++] = alpha[(acc >> 12) & 63];
		out[o++] = alpha[(acc >> 6) & 63];
		out[o++] = alpha[acc & 63];
	}
	if (n - i == 1) {
		acc = (uint32_t)in[i] << 16;
		out[o++] = alpha[(acc >> 18) & 63];
		out[o++] = alpha[(acc >> 12) & 63];
		if (pad) {
			out[o++] = '=';
			out[o++] = '=';
		}
	} else if (n - i == 2) {
		acc = ((uint32_t)in[i] << 16) | ((uint32_t)in[i + 1] << 8);
		out[o++] = alpha[(acc >> 18) & 63];
		out[o++] = alpha[(acc >> 12) & 63];
		out[o++] = alpha[(acc >> 6) & 63];
		if (pad)
			out[o++] = '=';
	}
	out[o] = '\0';
}

void
b64url_encode(const unsigned char *in, size_t n, char *out)
{
	encode(b64url_alpha, false, in, n, out);
}

size_t
b64_encoded_len(size_t n)
{
	return ((n + 2) / 3) * 4;
}

void
b64_encode(const unsigned char *in, size_t n, char *out)
{
	encode(b64_alpha, true, in, n, out);
}
