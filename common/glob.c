/*
 * glob.c: cg_glob_match(), the one pattern language of rules and config
 * ('*', '?', '\' escape; no classes).  Iterative, with a single backtrack
 * point, so that hostile patterns cannot make it exponential.
 */
#include "config.h"

#include "common.h"

bool
cg_glob_match(const char *pat, const char *s, size_t slen)
{
	const char *p = pat;
	const char *star_p = NULL;	/* pattern just after the last '*' */
	size_t star_s = 0;		/* where that '*' matches up to, in s */
	size_t i = 0;

	if (pat == NULL || (s == NULL && slen > 0))
		return false;

	while (i < slen) {
		if (*p == '*') {
			while (*p == '*')
				p++;
			if (*p == '\0')
				return true;	/* trailing '*' eats the rest */
			star_p = p;
			star_s = i;
			continue;
		}
		if (*p == '?') {
			p++;
			i++;
			continue;
		}
		if (*p != '\0') {
			const char *lit = p;

			if (*lit == '\\' && lit[1] != '\0')
				lit++;
			if (*lit == s[i]) {
				p = lit + 1;
				i++;
				continue;
			}
		}
		/* Mismatch: let the last '*' swallow one more byte. */
		if (star_p == NULL)
			return false;
		p = star_p;
		i = ++star_s;
	}
	while (*p == '*')
		p++;
	return *p == '\0';
}

bool
cg_glob_has_magic(const char *pat)
{
	const char *p;

	if (pat == NULL)
		return false;
	for (p = pat; *p != '\0'; p++) {
		if (*p == '\\') {
			if (p[1] == '\0')
				break;
			p++;
			continue;
		}
		if (*p == '*' || *p == '?')
			return true;
	}
	return false;
}

int
cg_hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}
