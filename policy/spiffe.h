/*
 * spiffe.h: SPIFFE IDs and the leaf rules of an X509-SVID.
 *
 * Parsing a SPIFFE ID, matching one against a configured pattern, and
 * checking that a leaf certificate is shaped as an X509-SVID.  Chain
 * verification against a trust bundle is not done here: a caller that
 * trusts a leaf has verified its chain first.  Nothing here does I/O.
 */
#ifndef CG_POLICY_SPIFFE_H
#define CG_POLICY_SPIFFE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/x509.h>

#include "common.h"

#define SPIFFE_SCHEME		"spiffe://"
#define SPIFFE_SCHEME_LEN	9
#define SPIFFE_TD_MAX		255	/* bytes of a trust domain */
#define SPIFFE_ID_MAX		2048	/* bytes of a whole ID, scheme included */
/* The longest path a whole ID can carry: scheme and a 1-byte domain. */
#define SPIFFE_PATH_MAX		(SPIFFE_ID_MAX - SPIFFE_SCHEME_LEN - 1)

/*
 * A parsed SPIFFE ID, "spiffe://<trust_domain><path>".  Both fields are
 * NUL-terminated and hold only the bytes the rules allow, so they can be
 * logged and compared as they are.
 */
struct spiffe_id {
	char trust_domain[SPIFFE_TD_MAX + 1];	/* never empty once parsed */
	char path[SPIFFE_PATH_MAX + 1];		/* "" or "/seg[/seg...]" */
};

/*
 * Parses len bytes at s (no NUL needed; a NUL inside is refused) as a
 * SPIFFE ID.  The rules:
 *   - the scheme is exactly "spiffe://" in lowercase;
 *   - the trust domain is non-empty, at most SPIFFE_TD_MAX bytes, of
 *     [a-z0-9._-] only: no uppercase, no port, no userinfo, no
 *     percent-encoding;
 *   - the path is empty, or '/'-separated segments of [A-Za-z0-9._-], none
 *     empty (no "//", no trailing '/') and none "." or "..";
 *   - no query and no fragment;
 *   - the whole ID is at most SPIFFE_ID_MAX bytes.
 * *out is cleared on entry and filled only on success.  Returns 0;
 * CG_ERR_LIMIT when the ID or its trust domain is too long; CG_ERR_FORMAT
 * for any other breach (s NULL included).  On failure a one-line reason
 * goes into err (errlen bytes; it never quotes the input).
 */
int spiffe_id_parse(const char *s, size_t len, struct spiffe_id *out,
    char *err, size_t errlen) CG_WUR;

/*
 * Checks that len bytes at s are a trust domain as a SPIFFE ID carries it
 * ("prod.example.org", no scheme, no path): what spiffe_id_parse() accepts
 * between "spiffe://" and the path.  Returns 0; CG_ERR_LIMIT for more than
 * SPIFFE_TD_MAX bytes; CG_ERR_FORMAT for an empty one (s NULL included),
 * one written with its scheme, or a byte the rules refuse, with a
 * one-line reason in err that names the byte by its offset in s.
 */
int spiffe_trust_domain_check(const char *s, size_t len, char *err, size_t errlen) CG_WUR;

/*
 * Checks pattern (NUL-terminated), meant for spiffe_id_match(), for what
 * the configuration refuses: that it can match some SPIFFE ID as written.
 * It must be the lowercase scheme, a trust domain that
 * spiffe_trust_domain_check() accepts (written literally: no '*', '?' or
 * '\' in it), then nothing or a path glob: '/'-separated segments of
 * the bytes a path allows, '*', '?', or '\' followed by such a byte; no
 * empty segment, no '/' at the end, no segment that is literally "." or
 * "..".  At most SPIFFE_ID_MAX bytes.  Returns 0; CG_ERR_LIMIT;
 * CG_ERR_FORMAT with a one-line reason in err (which quotes no byte of
 * the pattern).
 */
int spiffe_pattern_check(const char *pattern, char *err, size_t errlen) CG_WUR;

/*
 * Whether id (as spiffe_id_parse() filled it) matches pattern, a string
 * "spiffe://<trust domain>[<path glob>]":
 *   - the trust domain is literal and must equal the ID's exactly (no glob,
 *     no case folding);
 *   - with no path ("spiffe://example.org") the pattern matches only the
 *     ID without a path, the trust domain's own ID;
 *   - otherwise the path, from its leading '/', is a cg_glob_match()
 *     pattern over the ID's path: '*' matches any run of bytes and DOES
 *     cross '/', '?' matches one byte, '\' escapes.  So a path of '/'
 *     then '*' matches every ID in the trust domain that has a path, at
 *     any depth (but not the trust domain's own ID), and "/ns/" then '*'
 *     every ID under /ns/ (but not "/ns" itself).
 * A NULL id or pattern, or a pattern without the lowercase scheme or with
 * an empty trust domain, matches nothing.
 */
bool spiffe_id_match(const struct spiffe_id *id, const char *pattern);

/*
 * The SPIFFE ID of leaf (borrowed), read from its one URI subjectAltName,
 * to pick the trust domain to verify it against; nothing else about the
 * certificate is checked, and it is not trusted for that.  *out is cleared
 * on entry and filled on success.  Returns 0; CG_ERR_FORMAT when leaf is
 * NULL or its subjectAltName extension is malformed or repeated;
 * CG_ERR_VERIFY when it has no URI name or more than one, or the one it has
 * is not a SPIFFE ID; one-line reason in err.
 */
int spiffe_leaf_id(X509 *leaf, struct spiffe_id *out, char *err, size_t errlen) CG_WUR;

/*
 * Checks that leaf (borrowed) meets the X509-SVID rules for a leaf:
 *   - exactly one URI subjectAltName, and it parses as a SPIFFE ID with
 *     a path (an ID without one names the trust domain, not a workload);
 *     other name types, such as DNS names, may be present;
 *   - not a CA: basicConstraints absent or with cA false;
 *   - keyUsage present, including digitalSignature and neither
 *     keyCertSign nor cRLSign;
 *   - valid at now_s (Unix seconds): notBefore <= now_s <= notAfter, both
 *     ends inclusive as in RFC 5280;
 *   - when max_lifetime_s > 0, notAfter - notBefore <= max_lifetime_s.
 * Extensions OpenSSL finds malformed or repeated are refused.  The
 * signature and the chain are not checked.  *out is cleared on entry and
 * gets the ID only on success.  Returns 0; CG_ERR_FORMAT when leaf is NULL;
 * CG_ERR_VERIFY when a rule on names, extensions or the dates' order is
 * broken; CG_ERR_EXPIRED when now_s is outside the validity period;
 * CG_ERR_LIMIT when the lifetime exceeds max_lifetime_s; CG_ERR_NOMEM.  On
 * failure a one-line reason goes into err (errlen bytes).
 */
int spiffe_svid_check(X509 *leaf, int64_t now_s, int64_t max_lifetime_s,
    struct spiffe_id *out, char *err, size_t errlen) CG_WUR;

#endif
