/*
 * audit.c: the audit sinks, the JSON line writer, and the events a
 * session writes (decision, error, secret_echo, session_end).
 *
 * Owns the audit file descriptor.  Must not see secret values: callers pass
 * credential paths and versions, never fields.
 */

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "proxy/audit.h"
#include "proxy/metrics.h"
#include "proxy/session.h"
#include "vault-client/vault.h"

struct cg_audit {
	char *file;
	int fd;			/* -1 when no file */
	bool to_stdout;
	pthread_mutex_t lock;		/* around writes to the sinks */
};

static int
audit_open_file(const char *file, int *fdp, char *err, size_t errlen)
{
	int fd = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640);

	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", file, strerror(errno));
		return CG_ERR_IO;
	}
	*fdp = fd;
	return 0;
}

int
cg_audit_open(const char *file, bool to_stdout, struct cg_audit **out, char *err, size_t errlen)
{
	struct cg_audit *a;
	int r;

	*out = NULL;
	if ((a = calloc(1, sizeof(*a))) == NULL)
		return CG_ERR_NOMEM;
	a->fd = -1;
	a->to_stdout = to_stdout;
	pthread_mutex_init(&a->lock, NULL);
	if (file != NULL) {
		if ((a->file = strdup(file)) == NULL) {
			pthread_mutex_destroy(&a->lock);
			free(a);
			return CG_ERR_NOMEM;
		}
		if ((r = audit_open_file(file, &a->fd, err, errlen)) != 0) {
			free(a->file);
			pthread_mutex_destroy(&a->lock);
			free(a);
			return r;
		}
	}
	*out = a;
	return 0;
}

int
cg_audit_reopen(struct cg_audit *a)
{
	char err[256];
	int fd, r;

	if (a == NULL || a->file == NULL)
		return 0;
	if ((r = audit_open_file(a->file, &fd, err, sizeof(err))) != 0) {
		cg_err("msg=audit_reopen_failed error=\"%s\"", err);
		return r;
	}
	/* Over the same descriptor number, between two writes: a write
	 * reaches the old file or the new one, never a closed descriptor,
	 * and a partial one is cut back in the file it went to. */
	pthread_mutex_lock(&a->lock);
	r = dup3(fd, a->fd, O_CLOEXEC) < 0 ? errno : 0;
	pthread_mutex_unlock(&a->lock);
	close(fd);
	if (r != 0) {
		cg_err("msg=audit_reopen_failed error=\"%s\"", strerror(r));
		return CG_ERR_IO;
	}
	cg_info("msg=audit_reopened file=%s", a->file);
	return 0;
}

void
cg_audit_close(struct cg_audit *a)
{
	if (a == NULL)
		return;
	if (a->fd >= 0)
		close(a->fd);
	pthread_mutex_destroy(&a->lock);
	free(a->file);
	free(a);
}

bool
cg_audit_enabled(const struct cg_audit *a)
{
	return a != NULL && (a->fd >= 0 || a->to_stdout);
}

/*
 * Writes all of buf to fd, retrying short writes (a pipe).  A file that
 * takes only part of it (a full disk, a file size limit) is cut back to
 * where this write began: the file keeps ending with a whole line, and
 * the next event, once there is room again, starts a line of its own
 * instead of completing a broken one.  The caller counts the whole of buf
 * as lost.  A pipe cannot take bytes back; its reader sees the cut.
 */
static int
audit_write_fd(int fd, const char *buf, size_t len)
{
	size_t done = 0;
	ssize_t n;
	off_t end;
	int saved;

	while (done < len) {
		n = write(fd, buf + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			goto fail;
		done += (size_t)n;
	}
	return 0;

 fail:
	/* The offset follows our own bytes, even in an O_APPEND file, so
	 * the write began at end - done; lseek fails on a pipe.  errno
	 * stays the write's, for the caller's log line. */
	saved = errno;
	if (done > 0 && (end = lseek(fd, 0, SEEK_CUR)) >= (off_t)done &&
	    (ftruncate(fd, end - (off_t)done) != 0 ||
	    lseek(fd, end - (off_t)done, SEEK_SET) < 0))
		cg_err("msg=audit_truncate_failed error=\"%s\" "
		    "detail=\"the audit file ends with a partial line\"", strerror(errno));
	errno = saved;
	return CG_ERR_IO;
}

/*
 * One writer at a time: a batch larger than PIPE_BUF could otherwise
 * interleave with another worker's in a pipe.  An O_APPEND file keeps
 * each write whole by itself; the lock costs one uncontended pair per
 * batch.
 */
static int
audit_write(struct cg_audit *a, const char *buf, size_t len)
{
	int r = 0;

	pthread_mutex_lock(&a->lock);
	if (a->fd >= 0 && audit_write_fd(a->fd, buf, len) != 0)
		r = CG_ERR_IO;
	if (a->to_stdout && audit_write_fd(STDOUT_FILENO, buf, len) != 0)
		r = CG_ERR_IO;
	pthread_mutex_unlock(&a->lock);
	return r;
}

void
cg_audit_batch_init(struct cg_audit_batch *b, struct cg_audit *a)
{
	memset(b, 0, sizeof(*b));
	b->a = a;
}

void
cg_audit_batch_free(struct cg_audit_batch *b)
{
	free(b->buf);
	b->buf = NULL;
	b->len = b->cap = 0;
	b->lines = 0;
}

int
cg_audit_batch_flush(struct cg_audit_batch *b)
{
	int r = 0;

	if (b->len == 0)
		return 0;
	if (cg_audit_enabled(b->a) && audit_write(b->a, b->buf, b->len) != 0) {
		b->failed += b->lines;
		r = CG_ERR_IO;
	}
	b->len = 0;
	b->lines = 0;
	return r;
}

int
cg_audit_batch_add(struct cg_audit_batch *b, const char *line, size_t len)
{
	size_t need = len + 1, cap;
	char *nb;
	int r = 0;

	if (!cg_audit_enabled(b->a))
		return 0;
	if (b->len > 0 && b->len + need > CG_AUDIT_BATCH_MAX)
		r = cg_audit_batch_flush(b);
	if (b->len + need > b->cap) {
		cap = b->cap ? b->cap : 4096;
		while (cap < b->len + need)
			cap *= 2;
		if ((nb = realloc(b->buf, cap)) == NULL)
			return CG_ERR_NOMEM;
		b->buf = nb;
		b->cap = cap;
	}
	memcpy(b->buf + b->len, line, len);
	b->buf[b->len + len] = '\n';
	b->len += need;
	b->lines++;
	return r;
}

/* ------------------------------------------------------------------ */

void
jw_init(struct jw *w, size_t limit)
{
	memset(w, 0, sizeof(*w));
	w->limit = limit;
	w->first[0] = true;
}

void
jw_free(struct jw *w)
{
	free(w->buf);
	w->buf = NULL;
	w->len = w->cap = 0;
}

/*
 * Makes room for n more bytes and the NUL after them.  The slow path of
 * jw_room(); false (and w->err set) past the limit or out of memory.
 */
static bool
jw_grow(struct jw *w, size_t n)
{
	size_t cap;
	char *nb;

	if (w->err)
		return false;
	if (n >= w->limit || w->len + n + 1 > w->limit) {
		w->err = true;
		return false;
	}
	if (w->len + n + 1 <= w->cap)
		return true;
	cap = w->cap ? w->cap : 1024;
	while (cap < w->len + n + 1)
		cap *= 2;
	if (cap > w->limit)
		cap = w->limit;
	if ((nb = realloc(w->buf, cap)) == NULL) {
		w->err = true;
		return false;
	}
	w->buf = nb;
	w->cap = cap;
	return true;
}

/* Whether n more bytes and a NUL fit.  cap never exceeds the limit, so a
 * fit needs no limit check. */
static inline bool
jw_room(struct jw *w, size_t n)
{
	if (!w->err && n < w->cap && w->len + n < w->cap)
		return true;
	return jw_grow(w, n);
}

static void
jw_put(struct jw *w, const char *s, size_t n)
{
	if (!jw_room(w, n))
		return;
	memcpy(w->buf + w->len, s, n);
	w->len += n;
	w->buf[w->len] = '\0';
}

/* Bytes that go into a JSON string as they are: printable ASCII other
 * than the quote and the backslash. */
static const bool jw_plain[256] = {
	[0x20] = true, [0x21] = true, [0x23 ... 0x5b] = true,
	[0x5d ... 0x7e] = true,
};

static void
jw_quoted(struct jw *w, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, run;
	unsigned char c;
	char *o;

	/* Room for the quotes and every byte unescaped; an escape makes
	 * room again for itself and the rest. */
	if (!jw_room(w, n + 2))
		return;
	w->buf[w->len++] = '"';
	for (;;) {
		for (run = i; run < n && jw_plain[u[run]]; run++)
			;
		memcpy(w->buf + w->len, s + i, run - i);
		w->len += run - i;
		if (run == n)
			break;
		c = u[run];
		i = run + 1;
		if (!jw_room(w, 6 + (n - i) + 1))
			return;
		o = w->buf + w->len;
		*o++ = '\\';
		if (c == '"' || c == '\\')
			*o++ = (char)c;
		else {
			/* Control bytes and bytes outside ASCII are escaped one
			 * by one: the line stays valid JSON whatever the input's
			 * encoding. */
			*o++ = 'u';
			*o++ = '0';
			*o++ = '0';
			*o++ = hex[c >> 4];
			*o++ = hex[c & 15];
		}
		w->len = (size_t)(o - w->buf);
	}
	w->buf[w->len++] = '"';
	w->buf[w->len] = '\0';
}

/*
 * The separator and the key of the next member.  Keys are almost always
 * plain names: those go out with one room check and one copy; any other
 * key is escaped like a value.
 */
static void
jw_member(struct jw *w, const char *key)
{
	bool comma = !w->first[w->depth];
	size_t n = key != NULL ? strlen(key) : 0, i;
	char *o;

	if (!jw_room(w, comma + (key != NULL ? n + 3 : 0)))
		return;
	o = w->buf + w->len;
	if (comma)
		*o++ = ',';
	w->first[w->depth] = false;
	if (key != NULL) {
		for (i = 0; i < n && jw_plain[(unsigned char)key[i]]; i++)
			;
		if (i < n) {
			w->len = (size_t)(o - w->buf);
			jw_quoted(w, key, n);
			jw_put(w, ":", 1);
			return;
		}
		*o++ = '"';
		memcpy(o, key, n);
		o += n;
		*o++ = '"';
		*o++ = ':';
	}
	w->len = (size_t)(o - w->buf);
	w->buf[w->len] = '\0';
}

static void
jw_open(struct jw *w, const char *key, const char *bracket)
{
	jw_member(w, key);
	jw_put(w, bracket, 1);
	if (w->depth + 1 >= (int)CG_ARRAY_LEN(w->first)) {
		w->err = true;
		return;
	}
	w->first[++w->depth] = true;
}

void
jw_obj_begin(struct jw *w, const char *key)
{
	if (w->depth == 0 && w->len == 0 && key == NULL) {
		/* The top-level object itself. */
		jw_put(w, "{", 1);
		w->first[++w->depth] = true;
		return;
	}
	jw_open(w, key, "{");
}

void
jw_obj_end(struct jw *w)
{
	if (w->depth > 0)
		w->depth--;
	jw_put(w, "}", 1);
}

void
jw_arr_begin(struct jw *w, const char *key)
{
	jw_open(w, key, "[");
}

void
jw_arr_end(struct jw *w)
{
	if (w->depth > 0)
		w->depth--;
	jw_put(w, "]", 1);
}

void
jw_strn(struct jw *w, const char *key, const char *s, size_t n)
{
	jw_member(w, key);
	if (s == NULL)
		jw_put(w, "null", 4);
	else
		jw_quoted(w, s, n);
}

void
jw_str(struct jw *w, const char *key, const char *s)
{
	jw_strn(w, key, s, s ? strlen(s) : 0);
}

void
jw_int(struct jw *w, const char *key, long long v)
{
	char num[24];
	size_t n = 0;

	if (v < 0)
		num[n++] = '-';
	n += cg_fmt_u64(num + n, v < 0 ? 0 - (unsigned long long)v : (unsigned long long)v);
	jw_member(w, key);
	jw_put(w, num, n);
}

void
jw_bool(struct jw *w, const char *key, bool v)
{
	jw_member(w, key);
	jw_put(w, v ? "true" : "false", v ? 4 : 5);
}

void
jw_null(struct jw *w, const char *key)
{
	jw_member(w, key);
	jw_put(w, "null", 4);
}

void
jw_json(struct jw *w, const char *key, const json_t *v)
{
	json_malloc_t jmalloc;
	json_free_t jfree;
	char *s;

	if (v == NULL) {
		jw_null(w, key);
		return;
	}
	if ((s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_ENSURE_ASCII)) == NULL) {
		w->err = true;
		return;
	}
	jw_member(w, key);
	jw_put(w, s, strlen(s));
	json_get_alloc_funcs(&jmalloc, &jfree);
	jfree(s);
}

/* ------------------------------------------------------------------ */
/* The events of a session                                             */
/* ------------------------------------------------------------------ */

static void
audit_begin(struct conn *c, struct jw *w, const char *event)
{
	char ts[40];

	jw_init(w, AUDIT_LINE_MAX);
	jw_obj_begin(w, NULL);
	jw_str(w, "time", cg_time_format_ms(cg_now_ms(), ts, sizeof(ts)));
	jw_str(w, "event", event);
	jw_str(w, "request_id", c->request_id[0] ? c->request_id : NULL);
	jw_str(w, "route", c->route->policy.name);
	jw_obj_begin(w, "client");
	jw_str(w, "addr", c->peer_ip);
	jw_int(w, "port", c->peer_port);
	jw_bool(w, "tls", c->tls);
	if (c->peer_ok) {
		jw_str(w, "subject", c->tpeer.subject);
		jw_str(w, "spiffe_id", c->tpeer.spiffe_id);
	}
	jw_obj_end(w);
}

/* The request's attributes, as the protocol handed them over. */
static void
audit_request(struct conn *c, struct jw *w)
{
	const struct inj_request *q = c->req;
	size_t i;

	if (!c->in_request || q == NULL) {
		jw_null(w, "request");
		return;
	}
	jw_obj_begin(w, "request");
	for (i = 0; i < q->nattrs; i++)
		jw_strn(w, q->attrs[i].name, q->attrs[i].value,
		    q->attrs[i].len < CONN_ATTRS_LOG ? q->attrs[i].len : CONN_ATTRS_LOG);
	for (i = 0; i < q->nflags; i++)
		jw_bool(w, q->flags[i], true);
	jw_obj_end(w);
}

/*
 * Who the caller proved to be: a token's identity, an accepted X.509-SVID
 * (with a token or alone), or, for a refused SVID, the ID it claimed;
 * null when none of them.  The fields are the same in every case; the
 * SPIFFE ID is the X.509-SVID's, else a JWT-SVID's (its sub).
 */
static void
audit_identity(struct conn *c, struct jw *w)
{
	const struct policy_identity *id = c->ident;
	const struct cg_issuer_ext *ext = NULL;
	bool svid = c->peer_ok && c->tpeer.svid;
	const char *spiffe = svid ? c->tpeer.spiffe_id :
	    id != NULL && id->spiffe != NULL ? id->sub : c->svid_refused;
	json_t *v, *aud;
	size_t i;

	if (id == NULL && spiffe == NULL) {
		jw_null(w, "identity");
		return;
	}
	jw_obj_begin(w, "identity");
	if (id == NULL) {
		jw_str(w, "method", "x509-svid");
		jw_null(w, "issuer");
		jw_null(w, "iss");
		jw_null(w, "sub");
		jw_arr_begin(w, "aud");
		jw_arr_end(w);
		jw_null(w, "jti");
		jw_null(w, "alg");
		jw_null(w, "kid");
		jw_obj_begin(w, "claims");
		jw_obj_end(w);
		goto spiffe;
	}
	jw_str(w, "method", id->method);
	jw_str(w, "issuer", id->issuer ? id->issuer->name : NULL);
	jw_str(w, "iss", id->iss);
	jw_str(w, "sub", id->sub);
	jw_arr_begin(w, "aud");
	aud = id->aud;
	if (json_is_string(aud))
		jw_str(w, NULL, json_string_value(aud));
	else if (json_is_array(aud)) {
		json_array_foreach(aud, i, v) {
			if (json_is_string(v))
				jw_str(w, NULL, json_string_value(v));
		}
	}
	jw_arr_end(w);
	jw_str(w, "jti", id->jti);
	jw_str(w, "alg", id->alg);
	jw_str(w, "kid", id->kid[0] ? id->kid : NULL);
	jw_obj_begin(w, "claims");
	for (i = 0; i < c->cfg->nissuers; i++)
		if (c->cfg->issuers[i] == id->issuer)
			ext = &c->cfg->issuer_ext[i];
	for (i = 0; ext != NULL && i < ext->naudit_claims; i++) {
		if ((v = policy_claim_lookup(id->claims, ext->audit_claims[i])) != NULL)
			jw_json(w, ext->audit_claims[i], v);
	}
	jw_obj_end(w);
 spiffe:
	jw_str(w, "spiffe_id", spiffe);
	jw_str(w, "trust_domain", svid ? c->tpeer.trust_domain : NULL);
	jw_obj_end(w);
}

static void
audit_credential(struct conn *c, struct jw *w)
{
	jw_obj_begin(w, "credential");
	jw_str(w, "source", c->cfg->secrets_backend);
	jw_str(w, "path", c->route->secret_path);
	jw_str(w, "version", c->cred ? secret_version(c->cred) : NULL);
	jw_str(w, "inject", c->proto->inject_name(c->rt->proto_cfg));
	if (c->cred != NULL && secret_stale(c->cred))
		jw_bool(w, "stale", true);	/* served past its expiry */
	jw_obj_end(w);
}

static void
audit_upstream(struct conn *c, struct jw *w, int status)
{
	jw_obj_begin(w, "upstream");
	jw_str(w, "addr", c->rt->upstream_name);
	if (status)
		jw_int(w, "status", status);
	else
		jw_null(w, "status");
	jw_obj_end(w);
}

/*
 * Queues the event in the worker's batch, which conn_audit_flush() writes
 * at the end of this pass of the event loop.  Returns 0 when queued (the
 * write itself may still fail), or CG_ERR_LIMIT or CG_ERR_NOMEM when the
 * event is lost now.
 */
static int
audit_end(struct conn *c, struct jw *w)
{
	int r;

	jw_obj_end(w);
	if (w->err) {
		cg_err("msg=audit_event_too_large conn=%llu route=%s",
		    (unsigned long long)c->id, c->route->policy.name);
		jw_free(w);
		metrics_audit_failures(c->w->metrics, 1);
		return CG_ERR_LIMIT;
	}
	r = worker_audit_add(c->w, w->buf, w->len);
	jw_free(w);
	if (r == CG_ERR_NOMEM) {
		cg_err("msg=audit_write_failed conn=%llu route=%s error=\"out of memory\"",
		    (unsigned long long)c->id, c->route->policy.name);
		metrics_audit_failures(c->w->metrics, 1);
		return r;
	}
	return 0;
}

int
audit_session_decision(struct conn *c, const char *reason)
{
	struct jw w;

	audit_begin(c, &w, "decision");
	audit_identity(c, &w);
	audit_request(c, &w);
	jw_obj_begin(&w, "decision");
	jw_str(&w, "result", policy_result_name(c->dec.result));
	jw_str(&w, "rule", c->dec.rule);
	jw_str(&w, "reason", reason ? reason : c->dec.reason);
	jw_str(&w, "mode", c->route->policy.mode == POLICY_DRY_RUN ? "dry-run" : "enforce");
	if (c->refusal_code != NULL)
		jw_str(&w, "code", c->refusal_code);
	jw_obj_end(&w);
	audit_credential(c, &w);
	audit_upstream(c, &w, 0);
	return audit_end(c, &w);
}

void
audit_session_error(struct conn *c, const char *reason)
{
	struct jw w;

	audit_begin(c, &w, "error");
	audit_identity(c, &w);
	audit_request(c, &w);
	audit_credential(c, &w);
	audit_upstream(c, &w, 0);
	jw_int(&w, "duration_ms", cg_mono_ms() -
	    (c->req_start_ms ? c->req_start_ms : c->born_ms));
	jw_str(&w, "reason", reason);
	(void)audit_end(c, &w);
}

void
audit_session_echo(struct conn *c, int status, const struct inj_echo *echo)
{
	struct jw w;
	size_t i;
	int k;

	audit_begin(c, &w, "secret_echo");
	audit_identity(c, &w);
	audit_request(c, &w);
	audit_credential(c, &w);
	audit_upstream(c, &w, status);
	for (k = 0; k < 2; k++) {
		jw_arr_begin(&w, k ? "dropped" : "scrubbed");
		for (i = 0; i < echo->nnames; i++)
			if (echo->names[i].dropped == (k == 1))
				jw_strn(&w, NULL, echo->names[i].name.p,
				    echo->names[i].name.len < 64 ? echo->names[i].name.len : 64);
		jw_arr_end(&w);
	}
	jw_int(&w, "fields", echo->scrubbed + echo->dropped);
	(void)audit_end(c, &w);
}

void
audit_session_end(struct conn *c)
{
	struct jw w;

	if (c->requests == 0 && c->bytes_in == 0)
		return;		/* a bare connect: nothing happened */
	audit_begin(c, &w, "session_end");
	/* What the caller got last, and what the upstream said to it: a
	 * refusal of credgate's own (400, 401, 431...) has no upstream
	 * status. */
	if (c->last_status)
		jw_int(&w, "status", c->last_status);
	else
		jw_null(&w, "status");
	audit_upstream(c, &w, c->upstream_status);
	jw_obj_begin(&w, "bytes");
	jw_int(&w, "in", (long long)c->bytes_in);
	jw_int(&w, "out", (long long)c->bytes_out);
	jw_obj_end(&w);
	jw_int(&w, "requests", c->requests);
	jw_int(&w, "upstream_reused", c->up_reused);
	jw_int(&w, "duration_ms", cg_mono_ms() - c->born_ms);
	jw_str(&w, "reason", c->close_reason);
	(void)audit_end(c, &w);
}
