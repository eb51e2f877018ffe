/*
 * audit.c: the audit sinks and the JSON line writer.
 *
 * Owns the audit file descriptor.  Must not see secret values: callers pass
 * credential paths and versions, never fields.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "proxy/audit.h"

struct cg_audit {
	char *file;
	int fd;			/* -1 when no file */
	bool to_stdout;
	uint64_t failures;
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
	if (file != NULL) {
		if ((a->file = strdup(file)) == NULL) {
			free(a);
			return CG_ERR_NOMEM;
		}
		if ((r = audit_open_file(file, &a->fd, err, errlen)) != 0) {
			free(a->file);
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
	/* Over the same descriptor number: workers writing right now reach
	 * the old file or the new one, never a closed descriptor. */
	if (dup3(fd, a->fd, O_CLOEXEC) < 0) {
		cg_err("msg=audit_reopen_failed error=\"%s\"", strerror(errno));
		close(fd);
		return CG_ERR_IO;
	}
	close(fd);
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
	free(a->file);
	free(a);
}

bool
cg_audit_enabled(const struct cg_audit *a)
{
	return a != NULL && (a->fd >= 0 || a->to_stdout);
}

uint64_t
cg_audit_failures(const struct cg_audit *a)
{
	return a == NULL ? 0 : __atomic_load_n(&a->failures, __ATOMIC_RELAXED);
}

/* One writev so that a line is never split between writers. */
static int
audit_write_fd(int fd, const char *line, size_t len)
{
	struct iovec iov[2];
	ssize_t n;

	iov[0].iov_base = (void *)(uintptr_t)line;
	iov[0].iov_len = len;
	iov[1].iov_base = (void *)(uintptr_t)"\n";
	iov[1].iov_len = 1;
	do {
		n = writev(fd, iov, 2);
	} while (n < 0 && errno == EINTR);
	if (n < 0 || (size_t)n != len + 1)
		return CG_ERR_IO;
	return 0;
}

int
cg_audit_write(struct cg_audit *a, const char *line, size_t len)
{
	int r = 0;

	if (a == NULL)
		return 0;
	if (a->fd >= 0 && audit_write_fd(a->fd, line, len) != 0)
		r = CG_ERR_IO;
	if (a->to_stdout && audit_write_fd(STDOUT_FILENO, line, len) != 0)
		r = CG_ERR_IO;
	if (r != 0)
		__atomic_add_fetch(&a->failures, 1, __ATOMIC_RELAXED);
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

static void
jw_put(struct jw *w, const char *s, size_t n)
{
	size_t cap;
	char *nb;

	if (w->err)
		return;
	if (w->len + n + 1 > w->limit) {
		w->err = true;
		return;
	}
	if (w->len + n + 1 > w->cap) {
		cap = w->cap ? w->cap : 512;
		while (cap < w->len + n + 1)
			cap *= 2;
		if ((nb = realloc(w->buf, cap)) == NULL) {
			w->err = true;
			return;
		}
		w->buf = nb;
		w->cap = cap;
	}
	memcpy(w->buf + w->len, s, n);
	w->len += n;
	w->buf[w->len] = '\0';
}

static void
jw_quoted(struct jw *w, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	char esc[6] = { '\\', 'u', '0', '0', 0, 0 };
	size_t i, start = 0;
	unsigned char c;

	jw_put(w, "\"", 1);
	for (i = 0; i < n; i++) {
		c = (unsigned char)s[i];
		if (c >= 0x20 && c != '"' && c != '\\' && c < 0x7f)
			continue;
		jw_put(w, s + start, i - start);
		start = i + 1;
		if (c == '"')
			jw_put(w, "\\\"", 2);
		else if (c == '\\')
			jw_put(w, "\\\\", 2);
		else {
			/* Control bytes and bytes outside ASCII are escaped one
			 * by one: the line stays valid JSON whatever the input's
			 * encoding. */
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			jw_put(w, esc, 6);
		}
	}
	jw_put(w, s + start, n - start);
	jw_put(w, "\"", 1);
}

static void
jw_member(struct jw *w, const char *key)
{
	if (!w->first[w->depth])
		jw_put(w, ",", 1);
	w->first[w->depth] = false;
	if (key != NULL) {
		jw_quoted(w, key, strlen(key));
		jw_put(w, ":", 1);
	}
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
	char num[32];
	int n = snprintf(num, sizeof(num), "%lld", v);

	jw_member(w, key);
	jw_put(w, num, (size_t)n);
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
