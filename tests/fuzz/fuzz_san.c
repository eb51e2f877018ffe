/*
 * fuzz_san.c: libFuzzer harness for tls_cert_identity(), the subject and
 * subjectAltName extraction that policy relies on for client certificates.
 *
 * The input is a DER certificate.  Whatever d2i_X509() accepts must come
 * out either as an error with an empty struct, or as a struct that keeps
 * every promise of proxy/tls.h: bounded counts, bounded printable values,
 * a SPIFFE ID that is one of the URIs.  The seed corpus (corpus/san/)
 * holds certificates with every SAN type, none, 32 and 33 names, a value
 * of 1024 bytes, two subjectAltName extensions and escapes in the subject.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/x509.h>

#include "common.h"
#include "proxy/tls.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * Frees this thread's OpenSSL error state.  Clearing the queue keeps its
 * data strings for reuse, which libFuzzer sees as mallocs without frees
 * and answers with a leak scan after nearly every input.
 */
static void
fuzz_done(void)
{
	ERR_clear_error();
	OPENSSL_thread_stop();
}

/* Each value: NUL-terminated within bounds, printable ASCII only. */
static void
check_values(char **v, size_t n)
{
	size_t i, k, len;

	if (n > TLS_PEER_MAX_SANS || (n > 0) != (v != NULL))
		abort();
	for (i = 0; i < n; i++) {
		if (v[i] == NULL)
			abort();
		len = strlen(v[i]);
		if (len == 0 || len > TLS_PEER_MAX_VALUE)
			abort();
		for (k = 0; k < len; k++)
			if ((unsigned char)v[i][k] < 0x20 || (unsigned char)v[i][k] > 0x7e)
				abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const unsigned char *p = data;
	struct tls_peer peer;
	X509 *cert;
	size_t i;
	int r;

	if (size > 64 * 1024)
		return 0;
	if ((cert = d2i_X509(NULL, &p, (long)size)) == NULL) {
		fuzz_done();
		return 0;
	}
	memset(&peer, 0xa5, sizeof(peer));
	r = tls_cert_identity(cert, &peer);
	if (r > 0 || peer.verified)
		abort();
	if (r != 0) {
		/* Fail closed: nothing half-filled. */
		if (peer.subject != NULL || peer.dns != NULL || peer.uri != NULL ||
		    peer.email != NULL || peer.ip != NULL || peer.spiffe_id != NULL ||
		    peer.spiffe != NULL || peer.trust_domain != NULL || peer.svid ||
		    peer.ndns + peer.nuri + peer.nemail + peer.nip != 0)
			abort();
	} else {
		if (peer.subject != NULL) {
			size_t len = strlen(peer.subject);

			if (len == 0 || len > TLS_PEER_MAX_SUBJECT)
				abort();
			for (i = 0; i < len; i++)
				if ((unsigned char)peer.subject[i] < 0x20 ||
				    peer.subject[i] == 0x7f)
					abort();
		}
		if (peer.ndns + peer.nuri + peer.nemail + peer.nip > TLS_PEER_MAX_SANS)
			abort();
		check_values(peer.dns, peer.ndns);
		check_values(peer.uri, peer.nuri);
		check_values(peer.email, peer.nemail);
		check_values(peer.ip, peer.nip);
		if (peer.spiffe_id != NULL) {
			for (i = 0; i < peer.nuri; i++)
				if (peer.spiffe_id == peer.uri[i])
					break;
			if (i == peer.nuri)
				abort();
		}
		/* A parsed ID exactly when there is one, and it prints back. */
		if ((peer.spiffe_id != NULL) != (peer.spiffe != NULL) || peer.svid ||
		    peer.trust_domain != NULL)
			abort();
		if (peer.spiffe != NULL) {
			size_t tdlen = strlen(peer.spiffe->trust_domain);

			if (strncmp(peer.spiffe_id, SPIFFE_SCHEME, SPIFFE_SCHEME_LEN) != 0 ||
			    strncmp(peer.spiffe_id + SPIFFE_SCHEME_LEN, peer.spiffe->trust_domain,
			    tdlen) != 0 || strcmp(peer.spiffe_id + SPIFFE_SCHEME_LEN + tdlen,
			    peer.spiffe->path) != 0)
				abort();
		}
	}
	tls_peer_clear(&peer);
	if (peer.subject != NULL || peer.ndns != 0)
		abort();
	X509_free(cert);
	fuzz_done();
	return 0;
}
