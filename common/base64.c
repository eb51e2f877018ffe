/*
 * base64.c: strict base64url decoding (JOSE) and the two encoders
 * (base64url without padding; standard base64 with padding for HTTP Basic).
 * Decoding refuses anything that is not the one canonical form.
 */
#include "config.h"

#include "common.h"

static const char b64url_alpha[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
static const char b64_alpha[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int
b64url_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

size_t
b64url_decoded_max(size_t inlen)
{
	return (inlen / 4) * 3 + ((inlen % 4) * 3) / 4;
}

int
b64url_decode(const char *in, size_t inlen, unsigned char *out, size_t *outlen)
{
	uint32_t acc = 0;
	size_t i, o = 0, rem;
	int v;

	*outlen = 0;
	rem = inlen % 4;
	if (rem == 1)
		return CG_ERR_FORMAT;
	for (i = 0; i < inlen; i++) {
		if ((v = b64url_value((unsigned char)in[i])) < 0)
			return CG_ERR_FORMAT;
		acc = (acc << 6) | (uint32_t)v;
		if ((i & 3) == 3) {
			out[o++] = (unsigned char)(acc >> 16);
			out[o++] = (unsigned char)(acc >> 8);
			out[o++] = (unsigned char)acc;
			acc = 0;
		}
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
