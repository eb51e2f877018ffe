/*
 * common.h: the small things every credgate module needs: error codes,
 * logging, secure memory, reading a trusted file, base64, glob matching,
 * durations, strict JSON and the parsed HTTP head that the front and the
 * injectors share.
 *
 * This header must not include anything from policy/, vault-client/,
 * injectors/ or proxy/.
 */
#ifndef CG_COMMON_H
#define CG_COMMON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <jansson.h>

#define CG_WUR __attribute__((warn_unused_result))
#define CG_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define CG_SENTINEL __attribute__((sentinel))	/* a variadic list ends with NULL */
#define CG_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ------------------------------------------------------------------ */
/* Errors: functions return 0 or one of these (negative).             */
/* ------------------------------------------------------------------ */
enum cg_err {
	CG_OK = 0,
	CG_ERR_NOMEM = -1,	/* allocation failed (incl. secure pool) */
	CG_ERR_FORMAT = -2,	/* malformed input */
	CG_ERR_LIMIT = -3,	/* input over a configured limit */
	CG_ERR_IO = -4,		/* a system call failed; errno is kept */
	CG_ERR_NOTFOUND = -5,	/* no such key, path, route, field */
	CG_ERR_VERIFY = -6,	/* signature or claim check failed */
	CG_ERR_PERM = -7,	/* permissions refused (file mode, policy) */
	CG_ERR_AGAIN = -8,	/* not ready yet; a callback follows */
	CG_ERR_INTERNAL = -9,	/* a broken invariant */
	CG_ERR_EXPIRED = -10,	/* a time bound has passed */
	CG_ERR_UNSUPPORTED = -11, /* an algorithm, coding, mode we refuse */
};

/* Static text for a CG_ERR_* value; never NULL. */
const char *cg_strerror(int err);

/*
 * Formats a one-line reason into err (errlen bytes, always terminated,
 * cut when it does not fit), for the functions that take an err/errlen
 * pair.  Does nothing when err is NULL or errlen is 0.
 */
void cg_errf(char *err, size_t errlen, const char *fmt, ...) CG_PRINTF(3, 4);
void cg_verrf(char *err, size_t errlen, const char *fmt, va_list ap) CG_PRINTF(3, 0);

/* ------------------------------------------------------------------ */
/* Logging: one key=value line per event on stderr.                   */
/* ------------------------------------------------------------------ */
enum cg_log_level {
	CG_LOG_ERROR = 0,
	CG_LOG_WARN = 1,
	CG_LOG_INFO = 2,
	CG_LOG_DEBUG = 3,
};

/*
 * The level in force.  Worker threads read it on every log call while a
 * reload on the control thread may change it, so it is read and written
 * only through these relaxed atomic accessors: a thread may see a new
 * level a little late, never a torn one.
 */
extern int cg_log_level_cur;	/* use cg_log_level_get() and _set() */
static inline int
cg_log_level_get(void)
{
	return __atomic_load_n(&cg_log_level_cur, __ATOMIC_RELAXED);
}
static inline void
cg_log_level_set(int level)
{
	__atomic_store_n(&cg_log_level_cur, level, __ATOMIC_RELAXED);
}

/*
 * Writes "<RFC 3339 time> level=<level> <formatted text>\n" to the log
 * stream (stderr unless cg_log_set_fd() says otherwise) with one write(2),
 * so that lines from threads never interleave.  The text is the caller's
 * key=value pairs.  Values that may hold spaces or quotes from outside go
 * through cg_log_quote() first.
 */
void cg_log(int level, const char *fmt, ...) CG_PRINTF(2, 3);
void cg_vlog(int level, const char *fmt, va_list ap) CG_PRINTF(2, 0);
#define cg_err(...) cg_log(CG_LOG_ERROR, __VA_ARGS__)
#define cg_warn(...) cg_log(CG_LOG_WARN, __VA_ARGS__)
#define cg_info(...) do { if (cg_log_level_get() >= CG_LOG_INFO) cg_log(CG_LOG_INFO, __VA_ARGS__); } while (0)
#define cg_debug(...) do { if (cg_log_level_get() >= CG_LOG_DEBUG) cg_log(CG_LOG_DEBUG, __VA_ARGS__); } while (0)

/*
 * Logs to path (appending, created 0640) instead of stderr; NULL keeps
 * stderr.  cg_log_reopen() opens the same path again (after logrotate
 * moved it) over the same descriptor.
 */
int cg_log_open_file(const char *path) CG_WUR;
int cg_log_reopen(void) CG_WUR;

/*
 * Like cg_log, but at most one line per key (a static string) per second;
 * the next line that gets through says how many were suppressed.  For
 * errors a client or a broken upstream can repeat at will.
 */
void cg_log_limited(int level, const char *key, const char *fmt, ...) CG_PRINTF(3, 4);

/* Parses "error", "warn", "info", "debug"; returns -1 if unknown. */
int cg_log_level_parse(const char *s);
const char *cg_log_level_name(int level);

/*
 * Writes s (len bytes) into out (size bytes, always NUL-terminated) as a
 * log-safe value: bare if it holds only [A-Za-z0-9._:/@+-], otherwise in
 * double quotes with ", \ and control bytes escaped (\xNN).  Truncates with
 * "..." when it does not fit.  Returns out.
 */
char *cg_log_quote(char *out, size_t size, const char *s, size_t len);

/* ------------------------------------------------------------------ */
/* Secure memory: locked, kept out of core dumps, wiped on free.      */
/* ------------------------------------------------------------------ */

/*
 * Sets up the secure pool of pool_size bytes (rounded up to pages): mmap,
 * mlock, MADV_DONTDUMP.  If mlock fails and `required` is true, returns
 * CG_ERR_PERM (errno kept) and sets up nothing; if `required` is false, the
 * pool is used unlocked and secmem_locked() reports false.  Safe to call
 * once; later calls return 0 and change nothing.  secmem_alloc() before
 * secmem_init() initialises a default 1 MiB best-effort pool.
 */
int secmem_init(size_t pool_size, bool required) CG_WUR;
bool secmem_locked(void);
/* Bytes in use and total, for metrics and tests. */
void secmem_stats(size_t *in_use, size_t *total);

/*
 * Allocation from the pool; thread-safe.  Memory is zeroed.  NULL when the
 * pool is exhausted (callers treat it as CG_ERR_NOMEM).  secmem_free() wipes
 * the whole block before returning it, and accepts NULL.
 */
void *secmem_alloc(size_t n);
void *secmem_realloc(void *p, size_t n);
void secmem_free(void *p);
char *secmem_strndup(const char *s, size_t n);
bool secmem_owns(const void *p);

/* explicit_bzero that the compiler cannot drop. */
void cg_wipe(void *p, size_t n);
/* Constant-time comparison; true when equal. */
bool cg_ct_equal(const void *a, const void *b, size_t n);

/*
 * Installs jansson allocation functions that can use the secure pool.
 * Called once at start, before any JSON is parsed.  Afterwards, JSON built
 * or parsed while secmem_json_secure(true) is in force on the calling
 * thread lives in locked, wiped memory; all other JSON (claims, audit
 * events) lives on the C heap.  A json_t is freed to wherever it came from,
 * on any thread.
 */
void secmem_use_for_json(void);
/*
 * Turns the calling thread's secure JSON scope on or off and returns the
 * previous state, so that scopes nest:
 *	bool was = secmem_json_secure(true); ...parse...; secmem_json_secure(was);
 * Wrap every parse of JSON that carries a secret (a secrets file, a vault
 * response) in it.
 */
bool secmem_json_secure(bool on);

/* Refuse core dumps and ptrace attach from non-root (PR_SET_DUMPABLE 0). */
int cg_disable_core_dumps(void) CG_WUR;

/* ------------------------------------------------------------------ */
/* Reading a whole trusted file: secrets, keys, certificates, key sets, */
/* the configuration.                                                  */
/* ------------------------------------------------------------------ */

/* cg_file_read() flags; OR them. */
#define CG_FILE_SECURE		0x01u	/* read into the secure pool */
#define CG_FILE_FOLLOW		0x02u	/* follow a symbolic link at the path */
#define CG_FILE_NO_GROUP_WORLD	0x04u	/* refuse mode & 077 (secrets) */
#define CG_FILE_NO_WORLD	0x08u	/* refuse mode & 007 (TLS private keys) */
#define CG_FILE_NO_OTHERS_WRITE	0x10u	/* refuse mode & 022 */
#define CG_FILE_OWNER		0x20u	/* refuse an owner other than root or `owner` */

/* A file read whole; release with cg_file_free(). */
struct cg_file {
	char *data;	/* len bytes and a NUL after them; owned */
	size_t len;	/* the file may hold NUL bytes: use len, not strlen */
	struct stat st;	/* fstat of the descriptor that was read */
	bool secure;	/* data is in the secure pool */
};

/*
 * Reads the whole file at path into *out (cleared first).  The file is
 * opened with O_NOFOLLOW (unless CG_FILE_FOLLOW), O_NONBLOCK (a FIFO
 * cannot stall the open), O_NOCTTY and O_CLOEXEC; fstat on that
 * descriptor must show a regular file that passes the flags' mode and
 * owner rules (owner is read only with CG_FILE_OWNER) and holds at most
 * max bytes.  The file is read to its end, asking for one byte more than
 * fstat said, so that a file still growing is refused, not cut.  With
 * CG_FILE_SECURE the bytes land in secmem_alloc() memory, else in
 * malloc() memory; either way nothing read outlives a failure (secure
 * memory is wiped).  An empty file is success with len 0.
 *
 * Returns 0, or:
 *	CG_ERR_NOTFOUND		no such file (ENOENT, ENOTDIR), or no path
 *	CG_ERR_IO		open, fstat or read failed (errno kept); or the
 *				file grew while being read
 *	CG_ERR_PERM		a symbolic link without CG_FILE_FOLLOW; a mode
 *				or owner the flags refuse
 *	CG_ERR_UNSUPPORTED	not a regular file (directory, FIFO, device)
 *	CG_ERR_LIMIT		more than max bytes
 *	CG_ERR_NOMEM		out of memory (or of the secure pool)
 * and on failure a one-line reason in err (errlen bytes; err may be NULL)
 * that starts with the path and says what is wrong, never what the file
 * holds.
 */
int cg_file_read(const char *path, unsigned flags, size_t max, uid_t owner,
    struct cg_file *out, char *err, size_t errlen) CG_WUR;
/* Frees (and, if secure, wipes) f's data and clears f; NULL-safe. */
void cg_file_free(struct cg_file *f);

/*
 * What identifies one version of a file on disk, as a reader that checks
 * its mode and owner sees it: device, inode, size, mtime, mode and owner.
 * New content, a file renamed over it, or a mode or owner put right shows;
 * the same file put back as it was (mtime included) does not.  err is
 * stat()'s errno when the file could not be looked at (the rest is zero).
 */
struct cg_file_stamp {
	int err;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtim;
	mode_t mode;
	uid_t uid;
};
void cg_file_stamp_of(const struct stat *st, struct cg_file_stamp *out);
/* stat() of path now (links followed). */
void cg_file_stamp_path(const char *path, struct cg_file_stamp *out);
bool cg_file_stamp_eq(const struct cg_file_stamp *a, const struct cg_file_stamp *b);

/*
 * A credential kept in a file of its own (a token, an id): cg_file_read()
 * with flags and CG_FILE_SECURE, trimmed of surrounding white space, into
 * a NUL-terminated secmem_alloc() string *out (secmem_free() it).  An
 * empty file, or one with a NUL inside, is CG_ERR_FORMAT.  st (may be
 * NULL) gets the file's fstat.
 */
int cg_file_read_token(const char *path, unsigned flags, size_t max, char **out,
    struct stat *st, char *err, size_t errlen) CG_WUR;

/* ------------------------------------------------------------------ */
/* base64                                                              */
/* ------------------------------------------------------------------ */

/*
 * Strict base64url (RFC 4648 §5) without padding: rejects '=', '+', '/',
 * whitespace, a length of 1 mod 4, and non-zero trailing bits.  out must
 * hold b64url_decoded_max(inlen) bytes.  Returns 0 or CG_ERR_FORMAT.
 */
size_t b64url_decoded_max(size_t inlen);
int b64url_decode(const char *in, size_t inlen, unsigned char *out, size_t *outlen) CG_WUR;
/* Encodes without padding; out holds b64url_encoded_len(n) + 1 bytes. */
size_t b64url_encoded_len(size_t n);
void b64url_encode(const unsigned char *in, size_t n, char *out);
/* Standard base64 with padding (HTTP Basic, SCRAM); out holds b64_encoded_len(n) + 1. */
size_t b64_encoded_len(size_t n);
void b64_encode(const unsigned char *in, size_t n, char *out);
/*
 * Strict standard base64 (RFC 4648 §4) with its padding: a length that is
 * a multiple of 4, at most two '=' and only at the end, no whitespace,
 * non-zero trailing bits refused.  out holds b64_decoded_max(inlen) bytes.
 * Returns 0 or CG_ERR_FORMAT.
 */
size_t b64_decoded_max(size_t inlen);
int b64_decode(const char *in, size_t inlen, unsigned char *out, size_t *outlen) CG_WUR;

/* ------------------------------------------------------------------ */
/* Glob and text                                                       */
/* ------------------------------------------------------------------ */

/*
 * Matches s against pat: '*' any run (also empty, also '/'), '?' one byte,
 * '\' makes the next byte literal.  No character classes.  Linear-time
 * in practice (no exponential backtracking).
 */
bool cg_glob_match(const char *pat, const char *s, size_t slen);
/* True when pat has an unescaped '*' or '?'. */
bool cg_glob_has_magic(const char *pat);

/* The value of one hex digit, or -1. */
int cg_hexval(int c);

/* ASCII case-insensitive comparison of two byte ranges. */
bool cg_strcase_eq(const char *a, size_t alen, const char *b, size_t blen);

/* ------------------------------------------------------------------ */
/* Durations and time                                                  */
/* ------------------------------------------------------------------ */

/*
 * Parses "250ms", "5s", "10m", "1h", "2d" or a bare integer of seconds, into
 * milliseconds.  Units may combine ("1h30m").  Returns 0 or CG_ERR_FORMAT,
 * CG_ERR_LIMIT on overflow.
 */
int cg_duration_parse(const char *s, int64_t *ms) CG_WUR;
/* Formats ms as the shortest exact form ("90s" -> "90s", 3600000 -> "1h"). */
char *cg_duration_format(int64_t ms, char *out, size_t size);

/*
 * Parses "YYYY-MM-DD" (end of that day, 23:59:59 UTC) or RFC 3339
 * "YYYY-MM-DDTHH:MM:SS(.frac)?(Z|+HH:MM|-HH:MM)" into Unix seconds.
 */
int cg_time_parse(const char *s, int64_t *unix_s) CG_WUR;
/* Formats Unix milliseconds as "2026-11-24T08:44:01.123Z". */
char *cg_time_format_ms(int64_t ms, char *out, size_t size);
/* v in decimal, not terminated; returns its length (at most 20). */
size_t cg_fmt_u64(char *out, uint64_t v);
/* An IPv4 address (4 bytes, network order) in dotted decimal, as
 * inet_ntop() writes it; terminated; returns its length (at most 15). */
size_t cg_fmt_ipv4(char *out, const unsigned char addr[4]);
/* v as 16 lowercase hex digits, not terminated. */
void cg_fmt_hex64(char *out, uint64_t v);

int64_t cg_now_ms(void);	/* CLOCK_REALTIME in ms */

/* ms (a negative one as 0) as a struct timeval, for libevent's timers. */
static inline struct timeval
cg_ms_tv(int64_t ms)
{
	struct timeval tv;

	if (ms < 0)
		ms = 0;
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
	return tv;
}
int64_t cg_mono_ms(void);	/* CLOCK_MONOTONIC in ms */
/*
 * A retry delay between half and all of min(max_ms, base_ms * 2^attempt):
 * jittered, so that instances do not retry in step, and never next to
 * nothing.
 */
int64_t cg_backoff_ms(int64_t base_ms, int64_t max_ms, int attempt);

/* ------------------------------------------------------------------ */
/* Strict JSON                                                         */
/* ------------------------------------------------------------------ */

/*
 * Parses exactly one JSON value from buf: duplicate object keys, nesting
 * deeper than max_depth, trailing bytes and NUL bytes inside strings are
 * errors.  Returns 0 and a new reference in *out, or CG_ERR_FORMAT /
 * CG_ERR_LIMIT.
 */
int cg_json_strict_load(const char *buf, size_t len, int max_depth, json_t **out) CG_WUR;

/* ------------------------------------------------------------------ */
/* The parsed head of an HTTP/1.1 message.                             */
/* Spans point into the buffer that holds the head; nothing is owned.  */
/* ------------------------------------------------------------------ */
struct http_span {
	const char *p;
	size_t len;
};

struct http_field {
	struct http_span name;
	struct http_span value;	/* OWS trimmed on both sides */
	bool drop;		/* set by the proxy: not forwarded */
};

#define HTTP_MAX_FIELDS_HARD 512

struct http_head {
	struct http_span method;
	struct http_span target;	/* request-target as sent */
	struct http_span path;		/* target without the query */
	struct http_span query;		/* after '?', without it; len 0 if none */
	int status;			/* responses */
	struct http_span reason;	/* responses */
	int version_minor;		/* HTTP/1.<minor> */
	size_t nfields;
	struct http_field *fields;	/* nfields entries, owned by the holder */
	size_t head_len;		/* bytes of the head incl. final CRLF CRLF */
};

/* Returns the first field named name (case-insensitive) at or after
 * *iter (start with 0), advancing *iter past it; NULL when none. */
const struct http_field *http_head_find(const struct http_head *h,
    const char *name, size_t *iter);
/* Counts the fields named name. */
size_t http_head_count(const struct http_head *h, const char *name);

/*
 * Iterates the comma-separated list elements of a field value (RFC 9110
 * §5.6.1), skipping empty elements and OWS.  Start with *pos = 0.  Returns
 * false when there are no more.
 */
bool http_list_next(const struct http_span *value, size_t *pos, struct http_span *elem);

/* RFC 9110 token character. */
extern const bool http_tchar[256];
static inline bool
http_is_tchar(unsigned char c)
{
	return http_tchar[c];
}

/* ------------------------------------------------------------------ */
/* Additions                                                           */
/* ------------------------------------------------------------------ */

/*
 * Sends log lines to fd instead of stderr (a negative fd restores 2).  The
 * caller keeps owning fd and must keep it open while logging may happen.
 */
void cg_log_set_fd(int fd);

#endif /* CG_COMMON_H */
