/*
 * svid.h: X.509-SVIDs against the trust bundle of their trust domain.
 *
 * Loads a trust domain's bundle of X.509 authorities (PEM certificates)
 * into an X509_STORE, and verifies a presented leaf and the chain sent
 * with it against one such store under the X509-SVID rules
 * (spiffe_svid_check()).  Which trust domain, and so which store, a leaf
 * is verified against is the caller's choice: spiffe_leaf_id() (spiffe.h) reads the ID
 * that tells.  Nothing here keeps state, takes a lock or does I/O but
 * svid_bundle_load_file()'s read of its file.  A store is never changed
 * once loaded, so any number of threads may verify against it at once.
 */
#ifndef CG_POLICY_SVID_H
#define CG_POLICY_SVID_H

#include <sys/stat.h>

#include <stddef.h>
#include <stdint.h>

#include <openssl/x509.h>

#include "common.h"
#include "policy/spiffe.h"

#define SVID_BUNDLE_MAX_FILE	(16 * 1024 * 1024)	/* bytes of a bundle file */

/*
 * Loads len bytes of PEM at pem into a new store, every certificate of
 * which is a trust anchor: as the SPIFFE trust bundle format has it, an
 * X.509 authority of the bundle is trusted whether or not it is
 * self-signed, and a chain may end at any of them.  Each must be a CA
 * certificate (basicConstraints cA true); text outside the PEM blocks is
 * ignored.  Returns 0 with *out (the caller frees it with X509_STORE_free)
 * and *ncerts (may be NULL) the number of certificates; else *out is NULL
 * and err holds a one-line reason (never key material):
 *   CG_ERR_FORMAT  no certificate (an empty or non-PEM text), a PEM block
 *                  that does not parse, a certificate that is not a CA,
 *                  a private key or a CRL in the bundle;
 *   CG_ERR_NOMEM.
 */
int svid_bundle_load(const char *pem, size_t len, X509_STORE **out, size_t *ncerts,
    char *err, size_t errlen) CG_WUR;

/*
 * Reads the bundle file at path (ordinary memory: a bundle is public;
 * symbolic links followed; at most SVID_BUNDLE_MAX_FILE bytes) and loads
 * it as svid_bundle_load() does.  st (may be NULL) gets the fstat of the
 * file as it was read, for a caller that watches it for changes; it is
 * filled whenever the file could be opened, loaded or not.  Returns as
 * svid_bundle_load(), and CG_ERR_NOTFOUND, CG_ERR_IO, CG_ERR_PERM or
 * CG_ERR_LIMIT when the file cannot be read (see cg_file_read(); a file
 * that is not a regular file is CG_ERR_IO); err starts with the path.
 */
int svid_bundle_load_file(const char *path, X509_STORE **out, size_t *ncerts,
    struct stat *st, char *err, size_t errlen) CG_WUR;


/*
 * Verifies leaf, with the certificates untrusted (may be NULL; the chain
 * the peer sent, leaf included or not) as candidate intermediates, against
 * store at now_s (Unix seconds): leaf must meet the X509-SVID leaf rules of
 * spiffe_svid_check() with max_lifetime_s (0: no limit), then chain to a
 * certificate of store, with every certificate of the chain valid at
 * now_s, for TLS client authentication (an extendedKeyUsage, where
 * present, allows clientAuth).  The trust domain of the ID is not compared
 * with anything: the caller picked store for it.
 *
 * *out is cleared on entry and gets the ID on success.  Returns 0; else a
 * code of spiffe_svid_check() (CG_ERR_VERIFY, CG_ERR_EXPIRED, CG_ERR_LIMIT,
 * CG_ERR_FORMAT, CG_ERR_NOMEM), or CG_ERR_VERIFY when the chain does not
 * verify; err holds a one-line reason and *x509_err (may be NULL) the
 * X509_V_ERR_* closest to it, for the TLS alert a handshake sends.
 */
int svid_verify(X509_STORE *store, X509 *leaf, STACK_OF(X509) *untrusted, int64_t now_s,
    int64_t max_lifetime_s, struct spiffe_id *out, int *x509_err, char *err,
    size_t errlen) CG_WUR;

#endif /* CG_POLICY_SVID_H */
