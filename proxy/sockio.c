/*
 * sockio.c: the socket fast paths of a session's plain sides.
 *
 * A plain socket is written at once and read by an event of the
 * session's own, saving the system calls a bufferevent spends per
 * message; a TLS side goes through its bufferevent as usual.  Owns no
 * state: the session (session.h) holds the bufferevents and events.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include "proxy/session.h"

/*
 * Writes all of out that one sendmsg() takes, held for more with
 * MSG_MORE when that is all there is.  Bytes a full socket did not take
 * are written later by libevent as usual; that write sends what MSG_MORE
 * held.
 */
static void
conn_send_held(struct evbuffer *out, evutil_socket_t fd)
{
	struct evbuffer_iovec v[16];
	struct iovec iov[16];
	struct msghdr msg;
	size_t all = 0;
	ssize_t sent;
	int i, n;

	n = evbuffer_peek(out, -1, NULL, v, 16);
	if (n > 16)
		n = 16;
	for (i = 0; i < n; i++) {
		iov[i].iov_base = v[i].iov_base;
		iov[i].iov_len = v[i].iov_len;
		all += v[i].iov_len;
	}
	memset(&msg, 0, sizeof(msg));
	msg.msg_iov = iov;
	msg.msg_iovlen = (size_t)n;
	sent = sendmsg(fd, &msg, MSG_NOSIGNAL |
	    (all == evbuffer_get_length(out) ? MSG_MORE : 0));
	if (sent > 0)
		evbuffer_drain(out, (size_t)sent);
}

/*
 * Writes what out holds: one send() for a single run of bytes (a
 * socket's own call, lighter in the kernel than writev()'s file path),
 * else libevent's writev().  Returns as write() does.
 */
static ssize_t
conn_send(struct evbuffer *out, evutil_socket_t fd)
{
	struct evbuffer_iovec v[2];
	ssize_t sent;

	if (evbuffer_peek(out, -1, NULL, v, 2) != 1)
		return evbuffer_write(out, fd);
	sent = send(fd, v[0].iov_base, v[0].iov_len, MSG_NOSIGNAL);
	if (sent > 0)
		evbuffer_drain(out, (size_t)sent);
	return sent;
}

/*
 * Writes bev's output now.  Returns true when it drained, so that the
 * caller runs what the write callback would have; false when there was
 * nothing to write or libevent has the rest (EV_WRITE on; a write error
 * then reaches the event callback the usual way).
 *
 * last: the connection closes once these bytes are written (a plain
 * caller's final ones).  They go with MSG_MORE and, when all of them
 * went, shutdown() follows at once, so that the kernel puts the FIN into
 * the segment that carries them: one segment less for both ends than a
 * write and a FIN of its own at close.  close() alone would not do:
 * with unread input it resets the connection and drops the bytes still
 * held, an error response among them.
 */
bool
conn_push(struct bufferevent *bev, bool last)
{
	struct evbuffer *out = bufferevent_get_output(bev);
	evutil_socket_t fd = bufferevent_getfd(bev);

	if (evbuffer_get_length(out) == 0 || (bufferevent_get_enabled(bev) & EV_WRITE))
		return false;
	/* A socket bufferevent keeps its output's start frozen; libevent's
	 * own write callback thaws it the same way around its write. */
	evbuffer_unfreeze(out, 1);
	if (last)
		conn_send_held(out, fd);
	else
		(void)conn_send(out, fd);
	evbuffer_freeze(out, 1);
	if (evbuffer_get_length(out) == 0) {
		if (last)
			(void)shutdown(fd, SHUT_WR);
		return true;
	}
	bufferevent_enable(bev, EV_WRITE);
	return false;
}

/* After libevent drained a plain socket's output, EV_WRITE goes off again. */
void
conn_write_done(struct bufferevent *bev, bool plain)
{
	if (plain && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		bufferevent_disable(bev, EV_WRITE);
}

/*
 * A plain socket is read by an event of our own into its bufferevent's
 * input, instead of by the bufferevent, which asks the kernel how much is
 * waiting (FIONREAD) before every read: one system call less per read.
 * The handlers are the same; an end of stream or an error reaches the
 * event handler as it would from libevent, with reading stopped.  A TLS
 * side, and an upstream not yet connected, are read by their bufferevent.
 */
void
conn_side_reading(struct bufferevent *bev, struct event *rev, bool on)
{
	if (rev == NULL) {
		if (on)
			bufferevent_enable(bev, EV_READ);
		else
			bufferevent_disable(bev, EV_READ);
	} else if (on)
		event_add(rev, NULL);
	else
		event_del(rev);
}

/*
 * One read of fd into bev's input.  Returns what read() returned, with
 * errno kept; -1 with ENOMEM when the buffer cannot grow (what was read
 * is then lost, and the caller closes).
 *
 * The bytes land in the worker's read buffer first and are copied into a
 * chain of their own size: reserving CONN_READ_MAX in the input itself
 * would cost a large allocation for every read, however few bytes come.
 */
ssize_t
conn_read(struct conn *c, struct bufferevent *bev, evutil_socket_t fd)
{
	struct evbuffer *in = bufferevent_get_input(bev);
	char *buf = c->w->rbuf;
	ssize_t got;
	int r, saved;

	got = recv(fd, buf, CONN_READ_MAX, 0);	/* lighter than read() on a socket */
	saved = errno;
	if (got > 0) {
		/* A socket bufferevent keeps its input's end frozen; libevent
		 * thaws it the same way around its own reads. */
		evbuffer_unfreeze(in, 0);
		r = evbuffer_add(in, buf, (size_t)got);
		evbuffer_freeze(in, 0);
		cg_wipe(buf, (size_t)got);	/* tokens pass through here */
		if (r != 0) {
			errno = ENOMEM;
			return -1;
		}
	}
	errno = saved;
	return got;
}

bool
conn_retry_later(int err)
{
	return err == EAGAIN || err == EWOULDBLOCK || err == EINTR;
}

/*
 * TLS over a side already in use: a filter over its bufferevent, which
 * takes the bytes not read yet; the filter frees under when freed.
 * Takes ssl (freed on failure).  NULL when out of memory.
 */
struct bufferevent *
conn_tls_filter(struct bufferevent *under, struct ssl_st *ssl, bool accepting)
{
	struct bufferevent *tb;

	if (ssl == NULL)
		return NULL;
	tb = bufferevent_openssl_filter_new(bufferevent_get_base(under), under, ssl,
	    accepting ? BUFFEREVENT_SSL_ACCEPTING : BUFFEREVENT_SSL_CONNECTING,
	    BEV_OPT_CLOSE_ON_FREE);
	if (tb == NULL) {
		SSL_free(ssl);
		return NULL;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(tb, 1);
	return tb;
}
