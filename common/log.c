/*
 * log.c: one key=value line per event, written with a single write(2) so
 * that lines from several threads never interleave.  Owns the log level and
 * the log descriptor; it never decides what is safe to log (callers quote
 * outside values with cg_log_quote() and never pass secrets).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

#define CG_LOG_LINE_MAX 4096

int cg_log_level_cur = CG_LOG_INFO;
static atomic_int log_fd = 2;

static const char *const level_names[] = {
	[CG_LOG_ERROR] = "error",
	[CG_LOG_WARN] = "warn",
	[CG_LOG_INFO] = "info",
	[CG_LOG_DEBUG] = "debug",
};

void
cg_log_set_fd(int fd)
{
	atomic_store(&log_fd, fd < 0 ? 2 : fd);
}

int
cg_log_level_parse(const char *s)
{
	size_t i;

	if (s == NULL)
		return -1;
	for (i = 0; i < CG_ARRAY_LEN(level_names); i++) {
		if (strcmp(s, level_names[i]) == 0)
			return (int)i;
	}
	return -1;
}

const char *
cg_log_level_name(int level)
{
	if (level < 0 || (size_t)level >= CG_ARRAY_LEN(level_names))
		return "unknown";
	return level_names[level];
}

void
cg_vlog(int level, const char *fmt, va_list ap)
{
	char line[CG_LOG_LINE_MAX];
	size_t off, len;
	int n, saved_errno = errno;
	ssize_t w;
	int fd = atomic_load(&log_fd);

	cg_time_format_ms(cg_now_ms(), line, sizeof(line));
	off = strlen(line);
	n = snprintf(line + off, sizeof(line) - off, " level=%s ",
	    cg_log_level_name(level));
	if (n > 0)
		off += (size_t)n;
	n = vsnprintf(line + off, sizeof(line) - off, fmt, ap);
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof(line) - off) {
		/* Truncated: end with "..." and keep room for the newline. */
		len = sizeof(line) - 1;
		memcpy(line + len - 3, "...", 3);
	} else
		len = off + (size_t)n;
	/* One event, one line: a line break in the text must not forge
	   another line. */
	for (off = 0; off < len; off++) {
		if (line[off] == '\n' || line[off] == '\r')
			line[off] = ' ';
	}
	line[len++] = '\n';

	off = 0;
	while (off < len) {
		w = write(fd, line + off, len - off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		off += (size_t)w;
	}
	errno = saved_errno;
}

void
cg_log(int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	cg_vlog(level, fmt, ap);
	va_end(ap);
}

static bool
quote_bare_char(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	    (c >= '0' && c <= '9') || c == '.' || c == '_' || c == ':' ||
	    c == '/' || c == '@' || c == '+' || c == '-';
}

/* Writes the escaped form of c into tmp; returns its length. */
static size_t
quote_piece(unsigned char c, char tmp[4])
{
	static const char hex[] = "0123456789abcdef";

	if (c == '"' || c == '\\') {
		tmp[0] = '\\';
		tmp[1] = (char)c;
		return 2;
	}
	if (c < 0x20 || c >= 0x7f) {
		tmp[0] = '\\';
		tmp[1] = 'x';
		tmp[2] = hex[c >> 4];
		tmp[3] = hex[c & 0xf];
		return 4;
	}
	tmp[0] = (char)c;
	return 1;
}

char *
cg_log_quote(char *out, size_t size, const char *s, size_t len)
{
	char tmp[4];
	size_t i, o = 0, tlen, need, budget;
	bool bare = len > 0;

	if (out == NULL || size == 0)
		return out;
	out[0] = '\0';
	if (s == NULL)
		len = 0;
	for (i = 0; i < len && bare; i++)
		bare = quote_bare_char((unsigned char)s[i]);

	if (bare) {
		if (len < size) {
			memcpy(out, s, len);
			out[len] = '\0';
			return out;
		}
		if (size < 4) {
			/* No room for anything useful. */
			memset(out, '.', size - 1);
			out[size - 1] = '\0';
			return out;
		}
		memcpy(out, s, size - 4);
		memcpy(out + size - 4, "...", 4);
		return out;
	}

	/* Quoted form: '"' body '"', or '"' body... '"' when truncated. */
	if (size < 3)
		return out;
	need = 2;
	for (i = 0; i < len; i++)
		need += quote_piece((unsigned char)s[i], tmp);
	budget = need < size ? need - 1 : size - 5;	/* room for the body */
	if (need >= size && size < 6) {
		memcpy(out, "\"\"", 3);
		return out;
	}
	out[o++] = '"';
	for (i = 0; i < len; i++) {
		tlen = quote_piece((unsigned char)s[i], tmp);
		if (o + tlen > budget)
			break;
		memcpy(out + o, tmp, tlen);
		o += tlen;
	}
	if (i < len) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o++] = '"';
	out[o] = '\0';
	return out;
}

/* ------------------------------------------------------------------ */
/* A log file instead of stderr, reopened on SIGUSR1.                  */
/* ------------------------------------------------------------------ */

static char *log_path;

int
cg_log_open_file(const char *path)
{
	int fd;

	if (path == NULL)
		return 0;
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640);
	if (fd < 0)
		return CG_ERR_IO;
	free(log_path);
	if ((log_path = strdup(path)) == NULL) {
		close(fd);
		return CG_ERR_NOMEM;
	}
	cg_log_set_fd(fd);
	return 0;
}

/*
 * The descriptor number stays the same (dup2 over it), so that threads
 * logging at this moment write either to the old file or the new one,
 * never to a closed or reused descriptor.
 */
int
cg_log_reopen(void)
{
	int fd, cur;

	if (log_path == NULL)
		return 0;
	fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640);
	if (fd < 0)
		return CG_ERR_IO;
	cur = atomic_load(&log_fd);
	if (dup3(fd, cur, O_CLOEXEC) < 0) {
		close(fd);
		return CG_ERR_IO;
	}
	close(fd);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Rate-limited lines: at most one per key per second.                 */
/* ------------------------------------------------------------------ */

#define LIMITED_SLOTS 32

static struct {
	const char *key;
	int64_t second;
	unsigned suppressed;
} limited[LIMITED_SLOTS];
static pthread_mutex_t limited_lock = PTHREAD_MUTEX_INITIALIZER;

void
cg_log_limited(int level, const char *key, const char *fmt, ...)
{
	int64_t now = cg_mono_ms() / 1000;
	unsigned suppressed = 0, i, slot = LIMITED_SLOTS;
	char line[1024];
	va_list ap;

	if (level > cg_log_level_get())
		return;
	pthread_mutex_lock(&limited_lock);
	for (i = 0; i < LIMITED_SLOTS; i++) {
		if (limited[i].key == key || (limited[i].key != NULL &&
		    strcmp(limited[i].key, key) == 0)) {
			slot = i;
			break;
		}
		if (limited[i].key == NULL && slot == LIMITED_SLOTS)
			slot = i;
	}
	if (slot == LIMITED_SLOTS)
		slot = (unsigned)(now % LIMITED_SLOTS);	/* table full: share a slot */
	if (limited[slot].key == key && limited[slot].second == now) {
		limited[slot].suppressed++;
		pthread_mutex_unlock(&limited_lock);
		return;
	}
	if (limited[slot].key == key)
		suppressed = limited[slot].suppressed;
	limited[slot].key = key;
	limited[slot].second = now;
	limited[slot].suppressed = 0;
	pthread_mutex_unlock(&limited_lock);

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (suppressed > 0)
		cg_log(level, "%s suppressed=%u", line, suppressed);
	else
		cg_log(level, "%s", line);
}
