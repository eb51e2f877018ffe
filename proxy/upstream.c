/*
 * upstream.c: a session's upstream connection: connect (TCP, then TLS
 * when the route says so), the hand-over to and from the worker's pool of
 * idle connections, and the reads of a plain connected upstream.
 *
 * A pooled connection is found by the route's key (route, upstream, TLS
 * settings) and, for a protocol whose connection carries a login of its
 * own, the credential path and version it authenticated with: a
 * connection authenticated as one credential version is never handed to
 * a session holding another.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "proxy/metrics.h"
#include "proxy/session.h"
#include "vault-client/vault.h"

void conn_up_read_cb(struct bufferevent *bev, void *arg);
void conn_up_write_cb(struct bufferevent *bev, void *arg);
void conn_up_event_cb(struct bufferevent *bev, short what, void *arg);
void conn_up_readable(evutil_socket_t fd, short what, void *arg);

bool
conn_up_plain(const struct conn *c)
{
	return !c->up_tls;
}

/*
 * A plain upstream that is connected is read by conn_up_readable from now
 * on.  On failure (no memory) its bufferevent keeps reading.
 */
static void
conn_up_own_reads(struct conn *c)
{
	if (c->up_rev != NULL || !conn_up_plain(c))
		return;
	c->up_rev = event_new(c->w->base, bufferevent_getfd(c->up), EV_READ | EV_PERSIST,
	    conn_up_readable, c);
	if (c->up_rev == NULL)
		return;
	/* Added before the bufferevent lets go: the descriptor stays watched
	 * throughout, so libevent changes nothing in epoll. */
	event_add(c->up_rev, NULL);
	bufferevent_disable(c->up, EV_READ);
}

/* Hands reading back to the upstream's bufferevent (it is let go). */
static void
conn_up_drop_reads(struct conn *c)
{
	if (c->up_rev != NULL) {
		event_free(c->up_rev);
		c->up_rev = NULL;
	}
}

/* The protocol's object of the upstream connection goes with it. */
static void
conn_up_data_free(struct conn *c)
{
	if (c->up_data != NULL && c->proto->up_data_free != NULL)
		c->proto->up_data_free(c->up_data);
	c->up_data = NULL;
}

void
conn_up_free(struct conn *c)
{
	free(c->up_login_key);
	c->up_login_key = NULL;
	conn_up_data_free(c);
	if (c->up == NULL)
		return;
	conn_up_drop_reads(c);
	bufferevent_free(c->up);
	c->up = NULL;
	c->up_connected = false;
	c->up_tls = c->up_tls_pending = false;
	c->relay_up_paused = false;
}

/*
 * The pool key of a connection that carries a login: the route's, the
 * credential's path and version (cred->id is the secret allowed() lent)
 * and the protocol's tag, written into buf.  NULL when it does not pool.
 */
static const char *
conn_up_login_key(const struct conn *c, const struct inj_cred *cred, const char *tag,
    char *buf, size_t size)
{
	const struct secret *s = cred->id;
	int n;

	/* A session's own credential is revoked when it ends: a login with
	 * it is of no use to another session. */
	if (c->rt->up_key[0] == '\0' || s == NULL || c->route->per_session ||
	    (tag != NULL && strlen(tag) > INJ_TAG_MAX))
		return NULL;
	n = snprintf(buf, size, "%s|%s|%s|%s", c->rt->up_key, secret_path(s), secret_version(s),
	    tag != NULL ? tag : "");
	return n > 0 && (size_t)n < size ? buf : NULL;
}

/*
 * Lets go of the upstream connection: a reusable one (its last exchange
 * complete, nothing buffered) goes to the worker's pool for the next
 * session of this route; any other is closed.
 */
void
conn_up_release(struct conn *c, bool reusable)
{
	const char *key;

	if (c->up == NULL)
		return;
	/* A login's key was made when it connected: the credential may be
	 * gone by now, and another version must never get the connection. */
	key = c->up_login ? c->up_login_key : c->rt->up_key;
	if (!reusable || !c->up_connected || c->up_tls_pending || c->w->draining ||
	    evbuffer_get_length(bufferevent_get_input(c->up)) > 0 ||
	    evbuffer_get_length(bufferevent_get_output(c->up)) > 0 ||
	    key == NULL || key[0] == '\0') {
		conn_up_free(c);
		return;
	}
	/* The pool's watch starts before ours ends: no epoll change. */
	worker_up_put(c->w, key, c->up, c->route->upstream_keepalive,
	    c->route->upstream_idle_ms, c->up_data, c->proto->up_data_free, c->rm);
	conn_up_drop_reads(c);
	c->up = NULL;
	c->up_data = NULL;
	c->up_connected = false;
	c->up_tls = c->up_tls_pending = false;
	c->relay_up_paused = false;
	free(c->up_login_key);
	c->up_login_key = NULL;
}

/*
 * Callbacks, watermark and events of an upstream bufferevent in use: a
 * plain one is read by the bufferevent only until it is connected
 * (conn_up_own_reads), and written by conn_flush().
 */
static void
conn_up_setup(struct conn *c, bool connected)
{
	bufferevent_setcb(c->up, conn_up_read_cb, conn_up_write_cb, conn_up_event_cb, c);
	bufferevent_setwatermark(c->up, EV_WRITE, RELAY_LOW, 0);
	c->up_connected = connected;
	c->up_tls = bufferevent_openssl_get_ssl(c->up) != NULL;
	if (!conn_up_plain(c))
		bufferevent_enable(c->up, EV_READ | EV_WRITE);
	else {
		bufferevent_disable(c->up, EV_WRITE);
		if (connected)
			conn_up_own_reads(c);
		else
			bufferevent_enable(c->up, EV_READ);
	}
}

int
conn_up_connect(struct conn *c, const struct inj_cred *cred, const char *tag,
    bool *connected)
{
	char buf[UP_KEY_MAX + 160 + INJ_TAG_MAX];
	const char *key;
	SSL *ssl;

	*connected = false;
	c->up_login = cred != NULL;
	key = cred != NULL ? conn_up_login_key(c, cred, tag, buf, sizeof(buf)) :
	    c->rt->up_key[0] != '\0' ? c->rt->up_key : NULL;
	if (cred != NULL && key != NULL && (c->up_login_key = strdup(key)) == NULL)
		return CG_ERR_NOMEM;
	conn_up_data_free(c);
	if (key != NULL && (c->up = worker_up_get(c->w, key, &c->up_data)) != NULL) {
		conn_up_setup(c, true);
		c->up_reused++;
		metrics_upstream(c->rm, true);
		*connected = true;
		return 0;
	}
	metrics_upstream(c->rm, false);
	/* A protocol that starts TLS itself (after asking the server in its
	 * own way) connects in plain first. */
	if (c->rt->client_ctx != NULL && !c->proto->tls_late) {
		ssl = tls_client_ssl_new(c->rt->client_ctx, &c->route->upstream_tls,
		    c->route->upstream_host);
		if (ssl == NULL)
			return CG_ERR_NOMEM;
		c->up = bufferevent_openssl_socket_new(c->w->base, -1, ssl,
		    BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
		if (c->up == NULL) {
			SSL_free(ssl);
			return CG_ERR_NOMEM;
		}
		bufferevent_openssl_set_allow_dirty_shutdown(c->up, 1);
	} else
		c->up = bufferevent_socket_new(c->w->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (c->up == NULL)
		return CG_ERR_NOMEM;
	conn_up_setup(c, false);
	if (bufferevent_socket_connect(c->up, (struct sockaddr *)&c->rt->upstream,
	    (int)c->rt->upstream_len) != 0) {
		int err = EVUTIL_SOCKET_ERROR();

		conn_up_free(c);
		if ((err == EMFILE || err == ENFILE) && worker_up_any(c->w)) {
			/* Out of descriptors: give up the idle ones, try again. */
			worker_up_clear(c->w);
			return conn_up_connect(c, cred, tag, connected);
		}
		return CG_ERR_IO;
	}
	return 0;
}

/* The connect (and TLS handshake) is done. */
void
conn_up_connected(struct conn *c)
{
	int fd, one = 1;

	c->up_connected = true;
	if ((fd = bufferevent_getfd(c->up)) >= 0)
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	conn_up_own_reads(c);
}

/* Why the connect (or its TLS handshake) failed, for audit and the log. */
void
conn_up_failed_reason(struct conn *c, struct bufferevent *bev, char *reason, size_t size)
{
	if (c->rt->client_ctx != NULL && bufferevent_openssl_get_ssl(bev) != NULL &&
	    bufferevent_get_openssl_error(bev) != 0) {
		SSL *ssl = bufferevent_openssl_get_ssl(bev);
		const char *vr = tls_verify_reason(ssl);
		unsigned long e = bufferevent_get_openssl_error(bev);
		char ebuf[120];

		ERR_error_string_n(e, ebuf, sizeof(ebuf));
		snprintf(reason, size, "upstream TLS handshake failed: %s",
		    vr != NULL ? vr : ebuf);
	} else
		snprintf(reason, size, "upstream connect failed: %s",
		    evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
}

/*
 * tls-server-end-point (RFC 5929): the hash of the server's certificate
 * with its signature's digest, SHA-256 where that is MD5 or SHA-1.
 */
size_t
conn_tls_binding(struct bufferevent *bev, unsigned char *out, size_t size)
{
	SSL *ssl = bufferevent_openssl_get_ssl(bev);
	const EVP_MD *md;
	unsigned int len = 0;
	X509 *cert;
	int mdnid = NID_undef;

	if (ssl == NULL || (cert = SSL_get0_peer_certificate(ssl)) == NULL ||
	    size < EVP_MAX_MD_SIZE)
		return 0;
	if (X509_get_signature_info(cert, &mdnid, NULL, NULL, NULL) != 1)
		return 0;
	if (mdnid == NID_md5 || mdnid == NID_sha1)
		mdnid = NID_sha256;
	if ((md = EVP_get_digestbynid(mdnid)) == NULL || X509_digest(cert, md, out, &len) != 1)
		return 0;
	return len;
}

/*
 * TLS towards the upstream over the connection already in use (after the
 * protocol asked the server in its own way): a TLS filter over its
 * bufferevent; the handshake's end comes as BEV_EVENT_CONNECTED, then
 * the protocol's tls_done().
 */
int
conn_up_start_tls(struct conn *c)
{
	struct bufferevent *tb;
	SSL *ssl;

	if (c->up == NULL || !c->up_connected || c->up_tls || c->rt->client_ctx == NULL)
		return CG_ERR_UNSUPPORTED;
	ssl = tls_client_ssl_new(c->rt->client_ctx, &c->route->upstream_tls,
	    c->route->upstream_host);
	if ((tb = conn_tls_filter(c->up, ssl, false)) == NULL)
		return CG_ERR_NOMEM;
	/* The filter reads the socket through its bufferevent from now on. */
	conn_up_drop_reads(c);
	bufferevent_enable(c->up, EV_READ);
	c->up = tb;
	c->up_tls = c->up_tls_pending = true;
	bufferevent_setcb(c->up, conn_up_read_cb, conn_up_write_cb, conn_up_event_cb, c);
	bufferevent_setwatermark(c->up, EV_WRITE, RELAY_LOW, 0);
	bufferevent_enable(c->up, EV_READ | EV_WRITE);
	return 0;
}
