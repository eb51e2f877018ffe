/*
 * spiffe.c: SPIFFE ID parsing and matching, and the X509-SVID leaf rules.
 *
 * Owns only the shape of an ID and of a leaf certificate.  It does not
 * verify signatures or chains, load trust bundles, or decide policy; it
 * holds no state.
 */
#include "config.h"

#include <string.h>
#include <strings.h>

#include <openssl/asn1.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "spiffe.h"

static bool
spiffe_td_byte(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	    c == '.' || c == '-' || c == '_';
}

static bool
spiffe_path_byte(unsigned char c)
{
	return spiffe_td_byte(c) || (c >= 'A' && c <= 'Z');
}

/*
 * Names what is wrong with a byte that is neither allowed in the part
 * being read nor its separator, so that the reason points at the rule.
 */
static void
spiffe_bad_byte(unsigned char c, const char *part, size_t at, char *err,
    size_t errlen)
{
	const char *why;

	switch (c) {
	case '?':
		why = "a query is not allowed";
		break;
	case '#':
		why = "a fragment is not allowed";
		break;
	case '%':
		why = "percent-encoding is not allowed";
		break;
	case '@':
		why = "userinfo is not allowed";
		break;
	case ':':
		why = "a port is not allowed";
		break;
	default:
		if (c >= 'A' && c <= 'Z')
			why = "uppercase is not allowed";
		else
			why = "byte outside the allowed set";
		break;
	}
	cg_errf(err, errlen, "SPIFFE ID %s, byte %zu: %s", part, at, why);
}

/*
 * Whether the tdlen bytes at td are all allowed in a trust domain; else the
 * reason names the first bad byte by its offset plus base (where the trust
 * domain starts in what the caller was given).
 */
static bool
spiffe_td_bytes(const char *td, size_t tdlen, size_t base, char *err, size_t errlen)
{
	size_t i;

	for (i = 0; i < tdlen; i++) {
		if (!spiffe_td_byte((unsigned char)td[i])) {
			spiffe_bad_byte((unsigned char)td[i], "trust domain", base + i,
			    err, errlen);
			return false;
		}
	}
	return true;
}

/* A trust domain of an ID or a pattern: present, bounded, of its bytes. */
static int
spiffe_td_check(const char *td, size_t tdlen, char *err, size_t errlen)
{
	if (tdlen == 0) {
		cg_errf(err, errlen, "SPIFFE ID trust domain is empty");
		return CG_ERR_FORMAT;
	}
	if (tdlen > SPIFFE_TD_MAX) {
		cg_errf(err, errlen, "SPIFFE ID trust domain longer than %d bytes",
		    SPIFFE_TD_MAX);
		return CG_ERR_LIMIT;
	}
	return spiffe_td_bytes(td, tdlen, SPIFFE_SCHEME_LEN, err, errlen) ? 0 : CG_ERR_FORMAT;
}

int
spiffe_id_parse(const char *s, size_t len, struct spiffe_id *out,
    char *err, size_t errlen)
{
	const char *td, *slash;
	size_t tdlen, i, seg;
	int r;

	if (out != NULL)
		memset(out, 0, sizeof(*out));
	if (s == NULL || out == NULL) {
		cg_errf(err, errlen, "SPIFFE ID missing");
		return CG_ERR_FORMAT;
	}
	if (memchr(s, '\0', len) != NULL) {
		cg_errf(err, errlen, "SPIFFE ID holds a NUL byte");
		return CG_ERR_FORMAT;
	}
	if (len > SPIFFE_ID_MAX) {
		cg_errf(err, errlen, "SPIFFE ID longer than %d bytes", SPIFFE_ID_MAX);
		return CG_ERR_LIMIT;
	}
	if (len < SPIFFE_SCHEME_LEN ||
	    memcmp(s, SPIFFE_SCHEME, SPIFFE_SCHEME_LEN) != 0) {
		if (len >= SPIFFE_SCHEME_LEN &&
		    strncasecmp(s, SPIFFE_SCHEME, SPIFFE_SCHEME_LEN) == 0)
			cg_errf(err, errlen, "SPIFFE ID scheme must be lowercase \"spiffe://\"");
		else
			cg_errf(err, errlen, "SPIFFE ID does not start with \"spiffe://\"");
		return CG_ERR_FORMAT;
	}

	td = s + SPIFFE_SCHEME_LEN;
	slash = memchr(td, '/', len - SPIFFE_SCHEME_LEN);
	tdlen = slash != NULL ? (size_t)(slash - td) : len - SPIFFE_SCHEME_LEN;
	if ((r = spiffe_td_check(td, tdlen, err, errlen)) != 0)
		return r;

	/* The path, from its first '/' to the end; seg counts the bytes of
	 * the segment being read. */
	seg = 0;
	for (i = SPIFFE_SCHEME_LEN + tdlen; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '/') {
			if (i > SPIFFE_SCHEME_LEN + tdlen && seg == 0) {
				cg_errf(err, errlen, "SPIFFE ID path, byte %zu: empty segment", i);
				return CG_ERR_FORMAT;
			}
			seg = 0;
			continue;
		}
		if (!spiffe_path_byte(c)) {
			spiffe_bad_byte(c, "path", i, err, errlen);
			return CG_ERR_FORMAT;
		}
		seg++;
		/* A segment ends at the next '/' or at the end of the ID. */
		if (c == '.' && (seg == 1 || (seg == 2 && s[i - 1] == '.')) &&
		    (i + 1 == len || s[i + 1] == '/')) {
			cg_errf(err, errlen, "SPIFFE ID path, byte %zu: \".\" and \"..\" segments are not allowed",
			    i + 1 - seg);
			return CG_ERR_FORMAT;
		}
	}
	if (len > SPIFFE_SCHEME_LEN + tdlen && seg == 0) {
		cg_errf(err, errlen, "SPIFFE ID path ends with '/'");
		return CG_ERR_FORMAT;
	}

	memcpy(out->trust_domain, td, tdlen);
	memcpy(out->path, s + SPIFFE_SCHEME_LEN + tdlen, len - SPIFFE_SCHEME_LEN - tdlen);
	return 0;
}

int
spiffe_trust_domain_check(const char *s, size_t len, char *err, size_t errlen)
{
	if (s == NULL || len == 0) {
		cg_errf(err, errlen, "SPIFFE ID trust domain is empty");
		return CG_ERR_FORMAT;
	}
	if (len > SPIFFE_TD_MAX) {
		cg_errf(err, errlen, "SPIFFE ID trust domain longer than %d bytes",
		    SPIFFE_TD_MAX);
		return CG_ERR_LIMIT;
	}
	if (len >= SPIFFE_SCHEME_LEN && strncasecmp(s, SPIFFE_SCHEME, SPIFFE_SCHEME_LEN) == 0) {
		cg_errf(err, errlen, "a trust domain is written without \"spiffe://\"");
		return CG_ERR_FORMAT;
	}
	return spiffe_td_bytes(s, len, 0, err, errlen) ? 0 : CG_ERR_FORMAT;
}

int
spiffe_pattern_check(const char *pattern, char *err, size_t errlen)
{
	const char *td, *path;
	size_t len, tdlen, i, seg, dots, start;
	bool literal;
	int r;

	if (pattern == NULL) {
		cg_errf(err, errlen, "SPIFFE ID pattern missing");
		return CG_ERR_FORMAT;
	}
	len = strlen(pattern);
	if (len > SPIFFE_ID_MAX) {
		cg_errf(err, errlen, "SPIFFE ID pattern longer than %d bytes", SPIFFE_ID_MAX);
		return CG_ERR_LIMIT;
	}
	if (strncmp(pattern, SPIFFE_SCHEME, SPIFFE_SCHEME_LEN) != 0) {
		if (strncasecmp(pattern, SPIFFE_SCHEME, SPIFFE_SCHEME_LEN) == 0)
			cg_errf(err, errlen, "SPIFFE ID scheme must be lowercase \"spiffe://\"");
		else
			cg_errf(err, errlen, "SPIFFE ID pattern does not start with \"spiffe://\"");
		return CG_ERR_FORMAT;
	}
	td = pattern + SPIFFE_SCHEME_LEN;
	path = strchr(td, '/');
	tdlen = path != NULL ? (size_t)(path - td) : strlen(td);
	/* The trust domain is compared as it is: a glob byte there would be
	 * taken literally and match nothing. */
	for (i = 0; i < tdlen; i++) {
		if (td[i] == '*' || td[i] == '?' || td[i] == '\\') {
			cg_errf(err, errlen, "SPIFFE ID pattern, byte %zu: the trust domain "
			    "is matched exactly, without '*', '?' or '\\'", SPIFFE_SCHEME_LEN + i);
			return CG_ERR_FORMAT;
		}
	}
	if ((r = spiffe_td_check(td, tdlen, err, errlen)) != 0)
		return r;
	if (path == NULL)
		return 0;	/* the trust domain's own ID */

	/*
	 * The path glob, from its first '/': segments that some ID's path can
	 * have.  The segment being read starts at start; seg counts the
	 * bytes it matches, dots those that are a literal '.', literal
	 * whether all of them are literal.
	 */
	seg = dots = 0;
	start = (size_t)(path - pattern) + 1;
	literal = true;
	for (i = (size_t)(path - pattern); i <= len; i++) {
		unsigned char c = (unsigned char)pattern[i];

		if (c == '/' || c == '\0') {
			if (i > (size_t)(path - pattern) && seg == 0) {
				if (c == '\0')
					cg_errf(err, errlen, "SPIFFE ID pattern ends with '/' and "
					    "matches no SPIFFE ID");
				else
					cg_errf(err, errlen, "SPIFFE ID pattern, byte %zu: empty "
					    "segment", i);
				return CG_ERR_FORMAT;
			}
			if (literal && seg > 0 && seg == dots && dots <= 2) {
				cg_errf(err, errlen, "SPIFFE ID pattern, byte %zu: \".\" and "
				    "\"..\" segments match no SPIFFE ID", start);
				return CG_ERR_FORMAT;
			}
			seg = dots = 0;
			start = i + 1;
			literal = true;
			continue;
		}
		seg++;
		if (c == '*' || c == '?') {
			literal = false;
			continue;
		}
		if (c == '\\') {
			/* an escaped byte is literal, and must be one a path has */
			if ((c = (unsigned char)pattern[i + 1]) == '\0') {
				cg_errf(err, errlen, "SPIFFE ID pattern ends with '\\'");
				return CG_ERR_FORMAT;
			}
			i++;
		}
		if (!spiffe_path_byte(c)) {
			spiffe_bad_byte(c, "path pattern", i, err, errlen);
			return CG_ERR_FORMAT;
		}
		dots += c == '.';
	}
	return 0;
}

bool
spiffe_id_match(const struct spiffe_id *id, const char *pattern)
{
	const char *td, *path;
	size_t tdlen;

	if (id == NULL || pattern == NULL ||
	    strncmp(pattern, SPIFFE_SCHEME, SPIFFE_SCHEME_LEN) != 0)
		return false;
	td = pattern + SPIFFE_SCHEME_LEN;
	path = strchr(td, '/');
	tdlen = path != NULL ? (size_t)(path - td) : strlen(td);
	if (tdlen == 0 || tdlen != strnlen(id->trust_domain, sizeof(id->trust_domain)) ||
	    memcmp(td, id->trust_domain, tdlen) != 0)
		return false;
	if (path == NULL)
		return id->path[0] == '\0';
	return cg_glob_match(path, id->path, strnlen(id->path, sizeof(id->path)));
}

/*
 * Seconds from a to b (b - a), or CG_ERR_VERIFY when OpenSSL cannot read
 * either time.
 */
static int
spiffe_time_diff(const ASN1_TIME *a, const ASN1_TIME *b, int64_t *out)
{
	int days, secs;

	*out = 0;
	if (a == NULL || b == NULL || !ASN1_TIME_diff(&days, &secs, a, b))
		return CG_ERR_VERIFY;
	*out = (int64_t)days * 86400 + secs;
	return 0;
}

int
spiffe_leaf_id(X509 *leaf, struct spiffe_id *out, char *err, size_t errlen)
{
	GENERAL_NAMES *sans = NULL;
	const ASN1_STRING *uri = NULL;
	char why[192];
	int crit = -1, i, nuri = 0, r;

	if (out != NULL)
		memset(out, 0, sizeof(*out));
	if (leaf == NULL || out == NULL) {
		cg_errf(err, errlen, "no certificate");
		return CG_ERR_FORMAT;
	}
	sans = X509_get_ext_d2i(leaf, NID_subject_alt_name, &crit, NULL);
	if (sans == NULL && crit != -1) {
		cg_errf(err, errlen, "certificate subjectAltName malformed or repeated");
		r = CG_ERR_FORMAT;
		goto out;
	}
	for (i = 0; sans != NULL && i < sk_GENERAL_NAME_num(sans); i++) {
		const GENERAL_NAME *gn = sk_GENERAL_NAME_value(sans, i);

		if (gn->type == GEN_URI) {
			uri = gn->d.uniformResourceIdentifier;
			nuri++;
		}
	}
	if (nuri != 1) {
		cg_errf(err, errlen, "certificate has %d URI subjectAltNames, an X509-SVID "
		    "has exactly one", nuri);
		r = CG_ERR_VERIFY;
		goto out;
	}
	if (spiffe_id_parse((const char *)ASN1_STRING_get0_data(uri),
	    (size_t)ASN1_STRING_length(uri), out, why, sizeof(why)) != 0) {
		cg_errf(err, errlen, "certificate URI subjectAltName: %s", why);
		r = CG_ERR_VERIFY;
		goto out;
	}
	r = 0;
 out:
	GENERAL_NAMES_free(sans);
	ERR_clear_error();
	return r;
}

int
spiffe_svid_check(X509 *leaf, int64_t now_s, int64_t max_lifetime_s,
    struct spiffe_id *out, char *err, size_t errlen)
{
	BASIC_CONSTRAINTS *bc = NULL;
	const ASN1_TIME *nb, *na;
	ASN1_TIME *now = NULL;
	struct spiffe_id id;
	int64_t d;
	uint32_t ku;
	int crit, r;

	if (out != NULL)
		memset(out, 0, sizeof(*out));
	if (leaf == NULL || out == NULL) {
		cg_errf(err, errlen, "no certificate");
		return CG_ERR_FORMAT;
	}
	/* Also caches the extensions for the key usage read below; repeated
	 * or undecodable extensions make it flag the certificate. */
	if ((X509_get_extension_flags(leaf) & EXFLAG_INVALID) != 0) {
		cg_errf(err, errlen, "certificate has malformed or repeated extensions");
		r = CG_ERR_VERIFY;
		goto out;
	}

	bc = X509_get_ext_d2i(leaf, NID_basic_constraints, &crit, NULL);
	if (bc == NULL && crit != -1) {
		cg_errf(err, errlen, "certificate basicConstraints unreadable");
		r = CG_ERR_VERIFY;
		goto out;
	}
	if (bc != NULL && bc->ca) {
		cg_errf(err, errlen, "certificate is a CA (basicConstraints cA true)");
		r = CG_ERR_VERIFY;
		goto out;
	}

	/* An X509-SVID leaf must carry keyUsage, with digitalSignature. */
	ku = X509_get_key_usage(leaf);	/* UINT32_MAX when absent */
	if ((X509_get_extension_flags(leaf) & EXFLAG_KUSAGE) == 0) {
		cg_errf(err, errlen, "certificate has no keyUsage (a leaf SVID carries "
		    "digitalSignature)");
		r = CG_ERR_VERIFY;
		goto out;
	}
	if ((ku & KU_DIGITAL_SIGNATURE) == 0) {
		cg_errf(err, errlen, "certificate keyUsage lacks digitalSignature");
		r = CG_ERR_VERIFY;
		goto out;
	}
	if ((ku & (KU_KEY_CERT_SIGN | KU_CRL_SIGN)) != 0) {
		cg_errf(err, errlen, "certificate keyUsage has keyCertSign or cRLSign");
		r = CG_ERR_VERIFY;
		goto out;
	}

	if ((r = spiffe_leaf_id(leaf, &id, err, errlen)) != 0) {
		if (r == CG_ERR_FORMAT)
			r = CG_ERR_VERIFY;
		goto out;
	}
	if (id.path[0] == '\0') {
		/* An ID without a path names the trust domain, no workload. */
		cg_errf(err, errlen, "certificate URI subjectAltName names a trust domain, "
		    "not a workload (no path)");
		r = CG_ERR_VERIFY;
		goto out;
	}

	nb = X509_get0_notBefore(leaf);
	na = X509_get0_notAfter(leaf);
	if ((now = ASN1_TIME_set(NULL, (time_t)now_s)) == NULL) {
		cg_errf(err, errlen, "current time out of range");
		r = CG_ERR_NOMEM;
		goto out;
	}
	if (spiffe_time_diff(nb, now, &d) != 0) {
		cg_errf(err, errlen, "certificate notBefore unreadable");
		r = CG_ERR_VERIFY;
		goto out;
	}
	if (d < 0) {
		cg_errf(err, errlen, "certificate not yet valid (%lld s early)", (long long)-d);
		r = CG_ERR_EXPIRED;
		goto out;
	}
	if (spiffe_time_diff(now, na, &d) != 0) {
		cg_errf(err, errlen, "certificate notAfter unreadable");
		r = CG_ERR_VERIFY;
		goto out;
	}
	if (d < 0) {
		cg_errf(err, errlen, "certificate expired (%lld s ago)", (long long)-d);
		r = CG_ERR_EXPIRED;
		goto out;
	}
	if (spiffe_time_diff(nb, na, &d) != 0 || d < 0) {
		cg_errf(err, errlen, "certificate notAfter precedes notBefore");
		r = CG_ERR_VERIFY;
		goto out;
	}
	if (max_lifetime_s > 0 && d > max_lifetime_s) {
		cg_errf(err, errlen, "certificate lifetime %lld s exceeds the %lld s allowed",
		    (long long)d, (long long)max_lifetime_s);
		r = CG_ERR_LIMIT;
		goto out;
	}

	*out = id;
	r = 0;
 out:
	ASN1_TIME_free(now);
	BASIC_CONSTRAINTS_free(bc);
	return r;
}
