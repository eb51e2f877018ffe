/*
 * errors.c: the text of each CG_ERR_* code, the one formatter of error
 * reasons into a caller's buffer, and the small byte utilities
 * (constant-time compare, wipe, ASCII case-insensitive compare) that have
 * no better home.  Nothing here allocates or logs.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common.h"

void
cg_verrf(char *err, size_t errlen, const char *fmt, va_list ap)
{
	if (err == NULL || errlen == 0)
		return;
	vsnprintf(err, errlen, fmt, ap);
}

void
cg_errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	cg_verrf(err, errlen, fmt, ap);
	va_end(ap);
}

const char *
cg_strerror(int err)
{
	switch (err) {
	case CG_OK:
		return "success";
	case CG_ERR_NOMEM:
		return "out of memory";
	case CG_ERR_FORMAT:
		return "malformed input";
	case CG_ERR_LIMIT:
		return "over a limit";
	case CG_ERR_IO:
		return "system call failed";
	case CG_ERR_NOTFOUND:
		return "not found";
	case CG_ERR_VERIFY:
		return "verification failed";
	case CG_ERR_PERM:
		return "permission denied";
	case CG_ERR_AGAIN:
		return "not ready";
	case CG_ERR_INTERNAL:
		return "internal error";
	case CG_ERR_EXPIRED:
		return "expired";
	case CG_ERR_UNSUPPORTED:
		return "unsupported";
	}
	return "unknown error";
}

void
cg_wipe(void *p, size_t n)
{
	if (p == NULL || n == 0)
		return;
#ifdef HAVE_EXPLICIT_BZERO
	explicit_bzero(p, n);
#else
	{
		volatile unsigned char *v = p;

		while (n-- > 0)
			*v++ = 0;
	}
#endif
}

bool
cg_ct_equal(const void *a, const void *b, size_t n)
{
	const volatile unsigned char *x = a, *y = b;
	unsigned char acc = 0;
	size_t i;

	for (i = 0; i < n; i++)
		acc |= x[i] ^ y[i];
	return acc == 0;
}

static inline unsigned char
ascii_lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
}

bool
cg_strcase_eq(const char *a, size_t alen, const char *b, size_t blen)
{
	size_t i;

	if (alen != blen)
		return false;
	for (i = 0; i < alen; i++) {
		if (ascii_lower((unsigned char)a[i]) !=
		    ascii_lower((unsigned char)b[i]))
			return false;
	}
	return true;
}
