/*
 * trust.c: trust bundles at run time and the X.509-SVID verification of
 * listeners (see trust.h).
 *
 * Owns struct trust_bundle (its store in force and what the control
 * thread last saw of its file) and the verification a listener's context
 * runs in the handshake.  The rules of an SVID and of a bundle are
 * policy/svid.c's; which trust domain a certificate belongs to, which
 * store is in force, and what a refusal leaves for the engine, are this
 * file's.  It touches no connection and no event loop: the control thread
 * calls trust_bundle_check() from its timer, workers reach the rest
 * through OpenSSL's callbacks.
 */
#include <sys/stat.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509_vfy.h>

#include "policy/svid.h"
#include "proxy/trust.h"

struct trust_bundle {
	unsigned refs;			/* atomic */
	pthread_mutex_t lock;		/* guards store, the one thing workers read */
	X509_STORE *store;		/* in force; replaced whole, never changed */
	/* Set when made, then read-only. */
	char *name;			/* trust_domains.[].name */
	char *domain;			/* trust_domains.[].trust_domain */
	char *file;			/* trust_domains.[].x509_bundle_file */
	int64_t max_lifetime_s;		/* trust_domains.[].max_svid_lifetime; 0: none */
	/* The control thread's only. */
	struct cg_file_stamp seen;		/* the file as last looked at */
	int64_t loaded_ms;		/* when the store in force was read */
};

/* A listener's trust domains, owned by its context (ex_data). */
struct trust_set {
	size_t n;
	struct trust_bundle *b[];
};

/* Why a handshake refused its client certificate, on its SSL (ex_data). */
struct trust_refusal {
	bool have_id;
	/* room for what spiffe_id_parse() bounds only together (SPIFFE_ID_MAX) */
	char spiffe_id[SPIFFE_SCHEME_LEN + SPIFFE_TD_MAX + 1 + SPIFFE_PATH_MAX + 1];
	char reason[384];
};

static pthread_once_t trust_once = PTHREAD_ONCE_INIT;
static int trust_ctx_idx = -1;	/* SSL_CTX ex_data: struct trust_set */
static int trust_ssl_idx = -1;	/* SSL ex_data: struct trust_refusal */

/* ------------------------------------------------------------------ */
/* Bundles                                                             */
/* ------------------------------------------------------------------ */

struct trust_bundle *
trust_bundle_new(const struct cg_trust_domain *td, int64_t now_ms)
{
	struct trust_bundle *b;

	if (td->bundle == NULL || (b = calloc(1, sizeof(*b))) == NULL)
		return NULL;
	if (pthread_mutex_init(&b->lock, NULL) != 0) {
		free(b);
		return NULL;
	}
	b->refs = 1;
	if ((b->name = strdup(td->name)) == NULL ||
	    (b->domain = strdup(td->trust_domain)) == NULL ||
	    (b->file = strdup(td->x509_bundle_file)) == NULL ||
	    X509_STORE_up_ref(td->bundle) != 1) {
		trust_bundle_unref(b);
		return NULL;
	}
	b->store = td->bundle;
	b->max_lifetime_s = td->max_svid_lifetime_s;
	cg_file_stamp_of(&td->bundle_st, &b->seen);
	b->loaded_ms = now_ms;
	return b;
}

struct trust_bundle *
trust_bundle_ref(struct trust_bundle *b)
{
	__atomic_add_fetch(&b->refs, 1, __ATOMIC_RELAXED);
	return b;
}

void
trust_bundle_unref(struct trust_bundle *b)
{
	if (b == NULL || __atomic_sub_fetch(&b->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	X509_STORE_free(b->store);
	pthread_mutex_destroy(&b->lock);
	free(b->name);
	free(b->domain);
	free(b->file);
	free(b);
}

const char *
trust_bundle_name(const struct trust_bundle *b)
{
	return b->name;
}

const char *
trust_bundle_domain(const struct trust_bundle *b)
{
	return b->domain;
}

int64_t
trust_bundle_loaded_ms(const struct trust_bundle *b)
{
	return b->loaded_ms;
}

X509_STORE *
trust_bundle_store(struct trust_bundle *b)
{
	X509_STORE *s;

	pthread_mutex_lock(&b->lock);
	s = b->store;
	if (s != NULL && X509_STORE_up_ref(s) != 1)
		s = NULL;
	pthread_mutex_unlock(&b->lock);
	return s;
}

enum trust_check
trust_bundle_check(struct trust_bundle *b, int64_t now_ms)
{
	char why[640], qf[320], qw[700];
	X509_STORE *store = NULL, *old;
	struct cg_file_stamp sig;
	struct stat st;
	size_t n = 0;

	cg_file_stamp_path(b->file, &sig);
	if (cg_file_stamp_eq(&sig, &b->seen))
		return TRUST_UNCHANGED;
	/* Whatever comes of it, this state of the file is seen: a failure
	 * is reported once, until the file changes again. */
	b->seen = sig;
	if (sig.err != 0) {
		snprintf(why, sizeof(why), "%s: %s", b->file, strerror(sig.err));
		goto failed;
	}
	if (svid_bundle_load_file(b->file, &store, &n, &st, why, sizeof(why)) != 0)
		goto failed;
	cg_file_stamp_of(&st, &b->seen);	/* what was read, if it changed meanwhile */
	if ((st.st_mode & S_IWOTH) != 0) {
		snprintf(why, sizeof(why), "%s: mode %04o lets others change it", b->file,
		    (unsigned)(st.st_mode & 07777));
		X509_STORE_free(store);
		goto failed;
	}
	pthread_mutex_lock(&b->lock);
	old = b->store;
	b->store = store;
	pthread_mutex_unlock(&b->lock);
	/* Handshakes that took it keep their own reference. */
	X509_STORE_free(old);
	b->loaded_ms = now_ms;
	cg_info("msg=trust_bundle_reloaded trust_domain=%s file=%s certificates=%zu", b->name,
	    cg_log_quote(qf, sizeof(qf), b->file, strlen(b->file)), n);
	return TRUST_RELOADED;
 failed:
	cg_warn("msg=trust_bundle_reload_failed trust_domain=%s file=%s reason=%s "
	    "detail=\"the last good bundle stays\"", b->name,
	    cg_log_quote(qf, sizeof(qf), b->file, strlen(b->file)),
	    cg_log_quote(qw, sizeof(qw), why, strlen(why)));
	return TRUST_FAILED;
}

/* ------------------------------------------------------------------ */
/* Listeners                                                           */
/* ------------------------------------------------------------------ */

static void
trust_set_free(struct trust_set *set)
{
	size_t i;

	if (set == NULL)
		return;
	for (i = 0; i < set->n; i++)
		trust_bundle_unref(set->b[i]);
	free(set);
}

static void
trust_set_free_cb(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	(void)parent;
	(void)ad;
	(void)idx;
	(void)argl;
	(void)argp;
	trust_set_free(ptr);
}

static void
trust_refusal_free_cb(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
    void *argp)
{
	(void)parent;
	(void)ad;
	(void)idx;
	(void)argl;
	(void)argp;
	free(ptr);
}

static void
trust_init(void)
{
	trust_ctx_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, trust_set_free_cb);
	trust_ssl_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, trust_refusal_free_cb);
}

/* The ex_data indexes, made once by whichever thread comes first. */
static bool
trust_ready(void)
{
	return pthread_once(&trust_once, trust_init) == 0 && trust_ctx_idx >= 0 &&
	    trust_ssl_idx >= 0;
}

static const struct trust_set *
trust_set_of(const SSL *ssl)
{
	SSL_CTX *ctx;

	if (ssl == NULL || !trust_ready() || (ctx = SSL_get_SSL_CTX(ssl)) == NULL)
		return NULL;
	return SSL_CTX_get_ex_data(ctx, trust_ctx_idx);
}

static struct trust_bundle *
trust_set_find(const struct trust_set *set, const char *td)
{
	size_t i;

	for (i = 0; set != NULL && i < set->n; i++)
		if (strcmp(set->b[i]->domain, td) == 0)
			return set->b[i];
	return NULL;
}

/* Leaves why ssl's handshake refused, for trust_ssl_refusal(). */
static void
trust_refuse(SSL *ssl, const struct spiffe_id *id, const char *why)
{
	struct trust_refusal *rf;

	if (ssl == NULL || !trust_ready() || (rf = calloc(1, sizeof(*rf))) == NULL)
		return;		/* the handshake fails all the same */
	if (id != NULL) {
		rf->have_id = true;
		snprintf(rf->spiffe_id, sizeof(rf->spiffe_id), "%s%s%s", SPIFFE_SCHEME,
		    id->trust_domain, id->path);
	}
	snprintf(rf->reason, sizeof(rf->reason), "%s", why);
	free(SSL_get_ex_data(ssl, trust_ssl_idx));
	if (SSL_set_ex_data(ssl, trust_ssl_idx, rf) != 1)
		free(rf);
}

/*
 * OpenSSL's certificate verification on a listener of trust domains, in
 * place of its own: the leaf's SPIFFE ID picks the trust domain, and the
 * chain is verified against that domain's store in force alone.  Returns
 * 1 to accept, 0 to fail the handshake (the error set on xs picks the TLS
 * alert).
 */
static int
trust_verify(X509_STORE_CTX *xs, void *arg)
{
	const struct trust_set *set = arg;
	SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
	X509 *leaf = X509_STORE_CTX_get0_cert(xs);
	struct spiffe_id id, got;
	struct trust_bundle *b;
	X509_STORE *store;
	char why[256], reason[384];
	int xe = X509_V_ERR_APPLICATION_VERIFICATION;

	if (spiffe_leaf_id(leaf, &id, why, sizeof(why)) != 0) {
		trust_refuse(ssl, NULL, why);
		goto refused;
	}
	if ((b = trust_set_find(set, id.trust_domain)) == NULL) {
		snprintf(reason, sizeof(reason), "trust domain \"%s\" is not one this listener "
		    "accepts", id.trust_domain);
		trust_refuse(ssl, &id, reason);
		goto refused;
	}
	if ((store = trust_bundle_store(b)) == NULL) {
		trust_refuse(ssl, &id, "no trust bundle");
		goto refused;
	}
	if (svid_verify(store, leaf, X509_STORE_CTX_get0_untrusted(xs), cg_now_ms() / 1000,
	    b->max_lifetime_s, &got, &xe, why, sizeof(why)) != 0) {
		X509_STORE_free(store);
		trust_refuse(ssl, &id, why);
		goto refused;
	}
	X509_STORE_free(store);
	X509_STORE_CTX_set_error(xs, X509_V_OK);
	return 1;
 refused:
	X509_STORE_CTX_set_error(xs, xe != X509_V_OK ? xe : X509_V_ERR_APPLICATION_VERIFICATION);
	return 0;
}

int
trust_ctx_install(SSL_CTX *ctx, struct trust_bundle *const *bundles, size_t n, char *err,
    size_t errlen)
{
	struct trust_set *set;
	size_t i;

	if (!trust_ready() || SSL_CTX_get_ex_data(ctx, trust_ctx_idx) != NULL ||
	    (set = calloc(1, sizeof(*set) + n * sizeof(set->b[0]))) == NULL) {
		cg_errf(err, errlen, "tls.trust_domains: out of memory");
		return CG_ERR_NOMEM;
	}
	for (i = 0; i < n; i++)
		set->b[set->n++] = trust_bundle_ref(bundles[i]);
	if (SSL_CTX_set_ex_data(ctx, trust_ctx_idx, set) != 1) {
		trust_set_free(set);
		cg_errf(err, errlen, "tls.trust_domains: out of memory");
		return CG_ERR_NOMEM;
	}
	SSL_CTX_set_cert_verify_callback(ctx, trust_verify, set);
	return 0;
}

bool
trust_ssl_verifies(const SSL *ssl)
{
	return trust_set_of(ssl) != NULL;
}

const char *
trust_ssl_domain(const SSL *ssl, const char *td)
{
	struct trust_bundle *b = td != NULL ? trust_set_find(trust_set_of(ssl), td) : NULL;

	return b != NULL ? b->name : NULL;
}

bool
trust_ssl_refusal(const SSL *ssl, const char **spiffe_id, const char **reason)
{
	const struct trust_refusal *rf;

	*spiffe_id = NULL;
	*reason = NULL;
	if (ssl == NULL || !trust_ready() ||
	    (rf = SSL_get_ex_data(ssl, trust_ssl_idx)) == NULL)
		return false;
	*spiffe_id = rf->have_id ? rf->spiffe_id : NULL;
	*reason = rf->reason;
	return true;
}
