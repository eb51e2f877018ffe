/*
 * test_file_backend.c: the `file` secret backend (vault-client/
 * file_backend.c): what files it refuses and why, the format, the
 * asynchronous fetch, re-reading on change, its status, and that no error
 * text or log line ever carries a secret value.
 */
#include "config.h"

#include "tests/unit/unit.h"

#include <sys/stat.h>
#include <sys/types.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "common.h"
#include "vault-client/vault.h"

/* Appears as a value in test files; must never reach a message or log. */
#define CANARY "CANARY-7f3e9a1c"

struct fx {
	char dir[512];
	char path[600];		/* dir/secrets.json */
	char logpath[600];	/* dir/log, captured log lines */
	struct event_base *base;
	int logfd;		/* while capturing */
};

static int
fx_setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	const char *tmp = getenv("TMPDIR");

	if (fx == NULL)
		return -1;
	if (tmp == NULL || *tmp == '\0')
		tmp = P_tmpdir;
	snprintf(fx->dir, sizeof(fx->dir), "%s/cg-fb-XXXXXX", tmp);
	if (mkdtemp(fx->dir) == NULL) {
		free(fx);
		return -1;
	}
	snprintf(fx->path, sizeof(fx->path), "%s/secrets.json", fx->dir);
	snprintf(fx->logpath, sizeof(fx->logpath), "%s/log", fx->dir);
	if ((fx->base = event_base_new()) == NULL) {
		rmdir(fx->dir);
		free(fx);
		return -1;
	}
	fx->logfd = -1;
	file_backend_set_check_interval_ms(1000);
	*state = fx;
	return 0;
}

static int
fx_teardown(void **state)
{
	struct fx *fx = *state;
	struct dirent *de;
	char p[1200];
	DIR *d;

	if ((d = opendir(fx->dir)) != NULL) {
		while ((de = readdir(d)) != NULL) {
			if (strcmp(de->d_name, ".") == 0 ||
			    strcmp(de->d_name, "..") == 0)
				continue;
			snprintf(p, sizeof(p), "%s/%s", fx->dir, de->d_name);
			unlink(p);
		}
		closedir(d);
	}
	rmdir(fx->dir);
	event_base_free(fx->base);
	free(fx);
	return 0;
}

/* Writes content to path (same inode if it exists) with mode. */
static void
write_file(const char *path, const char *content, mode_t mode)
{
	size_t len = strlen(content), off = 0;
	ssize_t n;
	int fd;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	while (off < len) {
		n = write(fd, content + off, len - off);
		assert_true(n > 0);
		off += (size_t)n;
	}
	assert_int_equal(fchmod(fd, mode), 0);
	assert_int_equal(close(fd), 0);
}

static void
set_mtime(const char *path, time_t sec, long nsec)
{
	struct timespec ts[2];

	ts[0].tv_sec = sec;
	ts[0].tv_nsec = nsec;
	ts[1] = ts[0];
	assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
}

static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* Sends log lines to dir/log until capture_stop(). */
static void
capture_start(struct fx *fx)
{
	fx->logfd = open(fx->logpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0600);
	assert_true(fx->logfd >= 0);
	cg_log_set_fd(fx->logfd);
}

/* Logs to stderr again; returns what was logged meanwhile (malloc'd). */
static char *
capture_stop(struct fx *fx)
{
	char *buf;
	size_t cap = 65536, got = 0;
	ssize_t n;
	int fd;

	cg_log_set_fd(-1);
	close(fx->logfd);
	fx->logfd = -1;
	buf = calloc(1, cap + 1);
	assert_non_null(buf);
	fd = open(fx->logpath, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	while (got < cap && (n = read(fd, buf + got, cap - got)) > 0)
		got += (size_t)n;
	close(fd);
	return buf;
}

static size_t
count_lines(const char *s)
{
	size_t n = 0;

	for (; *s != '\0'; s++)
		n += *s == '\n';
	return n;
}

/* What a fetch callback saw. */
struct got {
	int calls;
	int err;
	const char *reason;
	struct secret *s;	/* our reference */
	bool in_fetch;		/* set while fetch() runs */
	bool ran_in_fetch;	/* the callback came while in_fetch */
};

static void
got_cb(int err, struct secret *s, const char *reason, void *arg)
{
	struct got *g = arg;

	g->calls++;
	g->err = err;
	g->reason = reason;
	g->ran_in_fetch = g->ran_in_fetch || g->in_fetch;
	secret_unref(g->s);
	g->s = secret_ref(s);
}

static void
got_reset(struct got *g)
{
	secret_unref(g->s);
	memset(g, 0, sizeof(*g));
}

/* Fetches path and runs the loop until the callback came. */
static void
fetch_sync(struct fx *fx, struct secret_backend *b, const char *path,
    struct got *g)
{
	got_reset(g);
	g->in_fetch = true;
	assert_int_equal(b->ops->fetch(b->ctx, path, got_cb, g), 0);
	g->in_fetch = false;
	assert_int_equal(g->calls, 0);
	assert_int_equal(event_base_loop(fx->base, EVLOOP_ONCE), 0);
	assert_int_equal(g->calls, 1);
	assert_false(g->ran_in_fetch);
}

static const char good_json[] =
    "{ \"mainframe/batch\": { \"username\": \"svc\", \"password\": \""
    CANARY "\", \"version\": \"3\" },\n"
    "  \"db/ro\": { \"password\": \"other\" } }\n";

static void
test_modes(void **state)
{
	static const struct {
		mode_t mode;
		int want;
	} cases[] = {
		{ 0600, 0 },
		{ 0400, 0 },
		{ 0200, 0 },	/* the owner's business; root reads it */
		{ 0640, CG_ERR_PERM },
		{ 0644, CG_ERR_PERM },
		{ 0604, CG_ERR_PERM },
		{ 0620, CG_ERR_PERM },
		{ 0602, CG_ERR_PERM },
		{ 0610, CG_ERR_PERM },
		{ 0601, CG_ERR_PERM },
	};
	struct fx *fx = *state;
	struct secret_backend *b;
	char err[512], want[64];
	size_t i;
	int r;

	for (i = 0; i < CG_ARRAY_LEN(cases); i++) {
		write_file(fx->path, good_json, 0600);
		assert_int_equal(chmod(fx->path, cases[i].mode), 0);
		if (cases[i].mode == 0200 && geteuid() != 0)
			continue;	/* unreadable for us: EACCES */
		r = file_backend_check(fx->path, err, sizeof(err));
		assert_int_equal(r, cases[i].want);
		b = (struct secret_backend *)&b;
		assert_int_equal(file_backend_new(fx->base, fx->path, &b, err,
		    sizeof(err)), cases[i].want);
		if (cases[i].want == 0) {
			assert_non_null(b);
			secret_backend_free(b);
			continue;
		}
		assert_null(b);
		snprintf(want, sizeof(want), "mode %04o is group- or "
		    "world-accessible; chmod 600", (unsigned)cases[i].mode);
		assert_non_null(strstr(err, want));
		assert_non_null(strstr(err, fx->path));
		assert_null(strstr(err, CANARY));
	}
}

static void
test_not_regular(void **state)
{
	struct fx *fx = *state;
	struct secret_backend *b;
	char err[512], target[700], fifo[700];

	/* A symlink to a perfectly good file is refused. */
	snprintf(target, sizeof(target), "%s/real.json", fx->dir);
	write_file(target, good_json, 0600);
	assert_int_equal(file_backend_check(target, err, sizeof(err)), 0);
	assert_int_equal(symlink(target, fx->path), 0);
	assert_int_equal(file_backend_check(fx->path, err, sizeof(err)),
	    CG_ERR_PERM);
	assert_non_null(strstr(err, "symbolic link"));
	assert_int_equal(file_backend_new(fx->base, fx->path, &b, err,
	    sizeof(err)), CG_ERR_PERM);
	assert_null(b);

	/* A directory. */
	assert_int_equal(file_backend_check(fx->dir, err, sizeof(err)),
	    CG_ERR_PERM);
	assert_non_null(strstr(err, "not a regular file"));

	/* A FIFO: refused without blocking on the open. */
	snprintf(fifo, sizeof(fifo), "%s/fifo", fx->dir);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	assert_int_equal(file_backend_check(fifo, err, sizeof(err)),
	    CG_ERR_PERM);
	assert_non_null(strstr(err, "not a regular file"));

	/* Missing. */
	snprintf(fifo, sizeof(fifo), "%s/absent.json", fx->dir);
	assert_int_equal(file_backend_check(fifo, err, sizeof(err)),
	    CG_ERR_NOTFOUND);
	assert_non_null(strstr(err, "absent.json"));
}

/*
 * Root or the user credgate runs as must own the file: any other owner
 * could read it or rewrite the secrets whatever its mode.  As root, the
 * file is handed to another uid; otherwise credgate is told it runs as
 * someone else.
 */
static void
test_owner(void **state)
{
	struct fx *fx = *state;
	struct secret_backend *b;
	uid_t other = geteuid() == 0 ? 65534 : geteuid() + 1;
	char err[512], want[128];

	write_file(fx->path, good_json, 0600);
	if (geteuid() == 0)
		assert_int_equal(chown(fx->path, other, (gid_t)-1), 0);
	else
		file_backend_set_owner(other);
	assert_int_equal(file_backend_check(fx->path, err, sizeof(err)), CG_ERR_PERM);
	snprintf(want, sizeof(want), "owned by uid %u, not by root or the user credgate "
	    "runs as (uid %u); chown it", (unsigned)(geteuid() == 0 ? other : geteuid()),
	    (unsigned)(geteuid() == 0 ? 0 : other));
	assert_non_null(strstr(err, want));
	assert_non_null(strstr(err, fx->path));
	assert_null(strstr(err, CANARY));
	b = (struct secret_backend *)&b;
	assert_int_equal(file_backend_new(fx->base, fx->path, &b, err, sizeof(err)),
	    CG_ERR_PERM);
	assert_null(b);
	assert_int_equal(file_backend_has(fx->path, "db/ro", err, sizeof(err)), CG_ERR_PERM);

	/* The user credgate runs as may own it. */
	file_backend_set_owner(geteuid() == 0 ? other : geteuid());
	assert_int_equal(file_backend_check(fx->path, err, sizeof(err)), 0);
	if (geteuid() == 0) {
		/* root may, whoever credgate runs as */
		file_backend_set_owner(other + 1);
		assert_int_equal(chown(fx->path, 0, (gid_t)-1), 0);
		assert_int_equal(file_backend_check(fx->path, err, sizeof(err)), 0);
	}
	file_backend_set_owner(geteuid());
}

/* What `credgate -t` learns of a file: paths and field names only. */
static void
test_names(void **state)
{
	struct fx *fx = *state;
	struct file_backend_names *n = (struct file_backend_names *)&n;
	size_t before, after, total;
	char err[512];

	write_file(fx->path, good_json, 0600);
	secmem_stats(&before, &total);
	assert_int_equal(file_backend_names_load(fx->path, geteuid(), &n, err, sizeof(err)), 0);
	secmem_stats(&after, &total);
	assert_int_equal(after, before);	/* no value kept */
	assert_true(file_backend_names_has(n, "mainframe/batch", NULL));
	assert_true(file_backend_names_has(n, "mainframe/batch", "username"));
	assert_true(file_backend_names_has(n, "mainframe/batch", "password"));
	assert_false(file_backend_names_has(n, "mainframe/batch", "version"));
	assert_false(file_backend_names_has(n, "mainframe/batch", "token"));
	assert_true(file_backend_names_has(n, "db/ro", "password"));
	assert_false(file_backend_names_has(n, "db/ro", "username"));
	assert_false(file_backend_names_has(n, "db", NULL));
	assert_false(file_backend_names_has(n, "mainframe/batch/x", NULL));
	assert_false(file_backend_names_has(n, "", NULL));
	assert_false(file_backend_names_has(NULL, "db/ro", NULL));
	file_backend_names_free(n);
	file_backend_names_free(NULL);

	/* Refused as the backend refuses it; the owner is the caller's word. */
	write_file(fx->path, "{ \"a\": { \"p\": \"" CANARY "\" } } x", 0600);
	n = (struct file_backend_names *)&n;
	assert_int_equal(file_backend_names_load(fx->path, geteuid(), &n, err, sizeof(err)),
	    CG_ERR_FORMAT);
	assert_null(n);
	assert_null(strstr(err, CANARY));
	write_file(fx->path, good_json, 0600);
	if (geteuid() == 0) {
		assert_int_equal(chown(fx->path, 65534, (gid_t)-1), 0);
		assert_int_equal(file_backend_names_load(fx->path, 0, &n, err, sizeof(err)),
		    CG_ERR_PERM);
		assert_non_null(strstr(err, "owned by uid 65534"));
		assert_int_equal(file_backend_names_load(fx->path, 65534, &n, err, sizeof(err)),
		    0);
		file_backend_names_free(n);
	} else {
		assert_int_equal(file_backend_names_load(fx->path, geteuid() + 1, &n, err,
		    sizeof(err)), CG_ERR_PERM);
	}
	assert_null(strstr(err, CANARY));
}

static void
test_format_errors(void **state)
{
	static const struct {
		const char *json;
		int want;
		const char *in_err[3];	/* each must appear in the message */
	} cases[] = {
		{ "", CG_ERR_FORMAT, { "JSON" } },
		{ "{ \"a\": { \"p\": \"" CANARY "\" ", CG_ERR_FORMAT, { "JSON" } },
		{ "not json " CANARY, CG_ERR_FORMAT, { "JSON" } },
		{ "{ \"a\": { \"p\": \"" CANARY "\" } } trailing", CG_ERR_FORMAT,
		    { "JSON" } },
		/* duplicate secret and duplicate field */
		{ "{ \"a\": { \"p\": \"" CANARY "\" }, \"a\": { \"p\": \"y\" } }",
		    CG_ERR_FORMAT, { "JSON" } },
		{ "{ \"a\": { \"p\": \"" CANARY "\", \"p\": \"y\" } }",
		    CG_ERR_FORMAT, { "JSON" } },
		{ "[ \"" CANARY "\" ]", CG_ERR_FORMAT, { "top level", "array" } },
		/* a secret that is not an object */
		{ "{ \"ok\": { \"p\": \"x\" }, \"svc/bad\": \"" CANARY "\" }",
		    CG_ERR_FORMAT, { "svc/bad", "not an object" } },
		{ "{ \"svc/arr\": [ \"" CANARY "\" ] }", CG_ERR_FORMAT,
		    { "svc/arr", "array" } },
		/* fields that are not strings */
		{ "{ \"svc/x\": { \"user\": \"" CANARY "\", \"port\": 5432 } }",
		    CG_ERR_FORMAT, { "svc/x", "port", "number" } },
		{ "{ \"svc/x\": { \"user\": \"" CANARY "\", \"on\": true } }",
		    CG_ERR_FORMAT, { "svc/x", "on", "boolean" } },
		{ "{ \"svc/x\": { \"user\": \"" CANARY "\", \"n\": null } }",
		    CG_ERR_FORMAT, { "svc/x", "n", "null" } },
		{ "{ \"svc/x\": { \"nested\": { \"p\": \"" CANARY "\" } } }",
		    CG_ERR_FORMAT, { "svc/x", "nested", "object" } },
		{ "{ \"svc/x\": { \"p\": \"" CANARY "\", \"version\": 3 } }",
		    CG_ERR_FORMAT, { "svc/x", "version", "number" } },
		{ "{ \"svc/x\": { \"p\": \"" CANARY "\", \"\": \"e\" } }",
		    CG_ERR_FORMAT, { "svc/x", "empty name" } },
		{ "{ \"\": { \"p\": \"" CANARY "\" } }",
		    CG_ERR_FORMAT, { "empty name" } },
		/* accepted shapes */
		{ "{}", 0, { NULL } },
		{ "{ \"a\": {} }", 0, { NULL } },
		{ "{ \"a\": { \"p\": \"" CANARY "\" } }", 0, { NULL } },
	};
	struct fx *fx = *state;
	struct secret_backend *b;
	char err[512];
	size_t i, j;
	int r;

	for (i = 0; i < CG_ARRAY_LEN(cases); i++) {
		write_file(fx->path, cases[i].json, 0600);
		memset(err, 'x', sizeof(err));
		r = file_backend_check(fx->path, err, sizeof(err));
		if (r != cases[i].want)
			fail_msg("case %zu: got %d want %d (%s)", i, r,
			    cases[i].want, err);
		if (r == 0)
			continue;
		assert_non_null(memchr(err, '\0', sizeof(err)));
		assert_null(strstr(err, CANARY));
		assert_non_null(strstr(err, fx->path));
		for (j = 0; j < CG_ARRAY_LEN(cases[i].in_err) &&
		    cases[i].in_err[j] != NULL; j++) {
			if (strstr(err, cases[i].in_err[j]) == NULL)
				fail_msg("case %zu: \"%s\" not in \"%s\"", i,
				    cases[i].in_err[j], err);
		}
		assert_int_equal(file_backend_new(fx->base, fx->path, &b, err,
		    sizeof(err)), r);
		assert_null(b);
		assert_null(strstr(err, CANARY));
	}
}

static void
test_size_limit(void **state)
{
	static const char head[] = "{ \"a\": { \"p\": \"" CANARY "\" } }";
	struct fx *fx = *state;
	char err[512];
	size_t limit = 1024 * 1024;
	int fd;

	/* Exactly 1 MiB (padded with whitespace) is accepted... */
	write_file(fx->path, head, 0600);
	fd = open(fx->path, O_WRONLY | O_APPEND | O_CLOEXEC);
	assert_true(fd >= 0);
	{
		char pad[4096];
		size_t left = limit - strlen(head), n;

		memset(pad, ' ', sizeof(pad));
		while (left > 0) {
			n = left < sizeof(pad) ? left : sizeof(pad);
			assert_int_equal(write(fd, pad, n), (ssize_t)n);
			left -= n;
		}
		/* ...one byte more is not. */
		assert_int_equal(close(fd), 0);
	}
	assert_int_equal(file_backend_check(fx->path, err, sizeof(err)), 0);
	fd = open(fx->path, O_WRONLY | O_APPEND | O_CLOEXEC);
	assert_int_equal(write(fd, " ", 1), 1);
	close(fd);
	assert_int_equal(file_backend_check(fx->path, err, sizeof(err)),
	    CG_ERR_LIMIT);
	assert_non_null(strstr(err, fx->path));
	assert_null(strstr(err, CANARY));
}

static void
test_check_keeps_nothing(void **state)
{
	struct fx *fx = *state;
	size_t before, after, total;
	char err[512];

	write_file(fx->path, good_json, 0600);
	secmem_stats(&before, &total);
	assert_int_equal(file_backend_check(fx->path, err, sizeof(err)), 0);
	secmem_stats(&after, &total);
	assert_int_equal(after, before);
}

static void
test_fetch(void **state)
{
	struct fx *fx = *state;
	struct secret_backend *b = NULL;
	struct got g = { 0 };
	char err[512];
	const char *v;
	size_t len;

	write_file(fx->path, good_json, 0600);
	assert_int_equal(file_backend_new(fx->base, fx->path, &b, err,
	    sizeof(err)), 0);
	assert_string_equal(b->ops->name, "file");

	fetch_sync(fx, b, "mainframe/batch", &g);
	assert_int_equal(g.err, 0);
	assert_non_null(g.s);
	assert_string_equal(secret_path(g.s), "mainframe/batch");
	assert_string_equal(secret_version(g.s), "3");
	assert_int_equal(secret_nfields(g.s), 2);	/* version is not a field */
	assert_null(secret_field(g.s, "version", NULL));
	v = secret_field(g.s, "password", &len);
	assert_non_null(v);
	assert_string_equal(v, CANARY);
	assert_int_equal(len, strlen(CANARY));
	assert_true(secmem_owns(v));
	/* The parse ran in a secure JSON scope and left it. */
	assert_false(secmem_json_secure(false));
	assert_string_equal(secret_field(g.s, "username", NULL), "svc");

	fetch_sync(fx, b, "db/ro", &g);
	assert_int_equal(g.err, 0);
	assert_string_equal(secret_field(g.s, "password", NULL), "other");

	/* Missing: NOTFOUND through the callback, never from fetch(). */
	fetch_sync(fx, b, "mainframe", &g);
	assert_int_equal(g.err, CG_ERR_NOTFOUND);
	assert_null(g.s);
	assert_string_equal(g.reason, "no such secret");
	fetch_sync(fx, b, "", &g);
	assert_int_equal(g.err, CG_ERR_NOTFOUND);

	/* Nothing changed since the start. */
	assert_false(b->ops->changed(b->ctx));

	got_reset(&g);
	secret_backend_free(b);
}

static void
test_fetch_order_and_free(void **state)
{
	struct fx *fx = *state;
	struct secret_backend *b = NULL;
	struct got g[3];
	char err[512];
	size_t before, after, total;

	memset(g, 0, sizeof(g));
	write_file(fx->path, good_json, 0600);
	secmem_stats(&before, &total);
	assert_int_equal(file_backend_new(fx->base, fx->path, &b, err,
	    sizeof(err)), 0);
	assert_int_equal(b->ops->fetch(b->ctx, "db/ro", got_cb, &g[0]), 0);
	assert_int_equal(b->ops->fetch(b->ctx, "nope", got_cb, &g[1]), 0);
	assert_int_equal(g[0].calls + g[1].calls, 0);
	assert_int_not_equal(event_base_loop(fx->base, EVLOOP_NONBLOCK), -1);
	assert_int_equal(g[0].calls, 1);
	assert_int_equal(g[0].err, 0);
	assert_int_equal(g[1].calls, 1);
	assert_int_equal(g[1].err, CG_ERR_NOTFOUND);

	/* Freed with a fetch pending: no callback, nothing left behind. */
	assert_int_equal(b->ops->fetch(b->ctx, "db/ro", got_cb, &g[2]), 0);
	secret_backend_free(b);
	assert_int_not_equal(event_base_loop(fx->base, EVLOOP_NONBLOCK), -1);
	assert_int_equal(g[2].calls, 0);
	got_reset(&g[0]);
	got_reset(&g[1]);
	secmem_stats(&after, &total);
	assert_int_equal(after, before);
}

static void
test_version_defaults_to_mtime(void **state)
{
	struct fx *fx = *state;
	struct secret_backend *b = NULL;
	struct got g = { 0 };
	char err[512];

	write_file(fx->path, good_json, 0600);
	set_mtime(fx->path, 1700000000, 123456789);
	assert_int_equal(file_backend_new(fx->base, fx->path, &b, err,
	    sizeof(err)), 0);
	fetch_sync(fx, b, "db/ro", &g);
	assert_string_equal(secret_version(g.s), "2023-11-14T22:13:20.123456789Z");
	/* An explicit version wins. */
	fetch_sync(fx, b, "mainframe/batch", &g);
	assert_string_equal(secret_version(g.s), "3");
	got_reset(&g);
	secret_backend_free(b);
}

static void
test_reload(void **state)
{
	struct fx *fx = *state;
	struct secret_backend *b = NULL;
	struct got g = { 0 };
	char err[512], *log;
	char v2[] = "{ \"db/ro\": { \"password\": \"second\" } }";
	char v3[] = "{ \"db/ro\": { \"password\": \"thirdd\" } }";

	write_file(fx->path, good_json, 0600);
	set_mtime(fx->path, 1700000000, 0);
	file_backend_set_check_interval_ms(60000);
	assert_int_equal(file_backend_new(fx->base, fx->path, &b, err,
	    sizeof(err)), 0);

	/* Rewritten, but the next check is not due: still the old one. */
	write_file(fx->path, v2, 0600);
	set_mtime(fx->path, 1700000001, 0);
	fetch_sync(fx, b, "db/ro", &g);
	assert_string_equal(secret_field(g.s, "password", NULL), "other");
	assert_false(b->ops->changed(b->ctx));

	/* Due now (interval 0 from here on): the new content, reported
	 * by changed() exactly once. */
	file_backend_set_check_interval_ms(0);
	sleep_ms(2);
	capture_start(fx);
	cg_log_level_set(CG_LOG_DEBUG);
	assert_true(b->ops->changed(b->ctx));
	assert_false(b->ops->changed(b->ctx));
	fetch_sync(fx, b, "db/ro", &g);
	assert_string_equal(secret_field(g.s, "password", NULL), "second");
	fetch_sync(fx, b, "mainframe/batch", &g);
	assert_int_equal(g.err, CG_ERR_NOTFOUND);

	/* Same inode, same size, mtime differs only in nanoseconds. */
	write_file(fx->path, v3, 0600);
	set_mtime(fx->path, 1700000001, 5);
	sleep_ms(2);
	fetch_sync(fx, b, "db/ro", &g);
	assert_string_equal(secret_field(g.s, "password", NULL), "thirdd");
	assert_true(b->ops->changed(b->ctx));

	/* A new inode (rename over it) with the same size and mtime. */
	{
		char tmp[700];

		snprintf(tmp, sizeof(tmp), "%s/new.json", fx->dir);
		write_file(tmp, v2, 0600);
		set_mtime(tmp, 1700000001, 5);
		assert_int_equal(rename(tmp, fx->path), 0);
	}
	sleep_ms(2);
	fetch_sync(fx, b, "db/ro", &g);
	assert_string_equal(secret_field(g.s, "password", NULL), "second");
	assert_true(b->ops->changed(b->ctx));
	log = capture_stop(fx);
	assert_null(strstr(log, CANARY));
	assert_null(strstr(log, "second"));
	assert_null(strstr(log, "thirdd"));
	free(log);

	got_reset(&g);
	secret_backend_free(b);
}

static void
test_failed_reload_keeps_old(void **state)
{
	static const struct {
		const char *json;
		mode_t mode;
		const char *in_log;
	} bad[] = {
		{ "{ \"db/ro\": { \"password\": \"" CANARY "\", \"n\": 1 } }",
		    0600, "not a string" },
		{ "{ \"db/ro\": { \"password\": \"" CANARY "\" ", 0600, "JSON" },
		{ "{ \"db/ro\": { \"password\": \"" CANARY "\" } }", 0644,
		    "chmod 600" },
	};
	struct fx *fx = *state;
	struct secret_backend *b = NULL;
	struct got g = { 0 };
	char err[512], *log;
	size_t i;

	write_file(fx->path, "{ \"db/ro\": { \"password\": \"first\" } }", 0600);
	set_mtime(fx->path, 1700000000, 0);
	file_backend_set_check_interval_ms(0);
	assert_int_equal(file_backend_new(fx->base, fx->path, &b, err,
	    sizeof(err)), 0);

	for (i = 0; i < CG_ARRAY_LEN(bad); i++) {
		write_file(fx->path, bad[i].json, bad[i].mode);
		set_mtime(fx->path, 1700000100 + (time_t)i, 0);
		capture_start(fx);
		cg_log_level_set(CG_LOG_INFO);
		sleep_ms(2);
		fetch_sync(fx, b, "db/ro", &g);
		assert_int_equal(g.err, 0);
		assert_string_equal(secret_field(g.s, "password", NULL), "first");
		assert_false(b->ops->changed(b->ctx));
		/* The same bad file is reported once, not at every check. */
		sleep_ms(2);
		fetch_sync(fx, b, "db/ro", &g);
		assert_string_equal(secret_field(g.s, "password", NULL), "first");
		log = capture_stop(fx);
		assert_int_equal(count_lines(log), 1);
		assert_non_null(strstr(log, "level=warn"));
		assert_non_null(strstr(log, "secrets.json"));
		if (strstr(log, bad[i].in_log) == NULL)
			fail_msg("case %zu: \"%s\" not in %s", i, bad[i].in_log,
			    log);
		assert_null(strstr(log, CANARY));
		free(log);
	}

	/* Deleted: still the old secrets, one warning. */
	assert_int_equal(unlink(fx->path), 0);
	capture_start(fx);
	sleep_ms(2);
	fetch_sync(fx, b, "db/ro", &g);
	assert_string_equal(secret_field(g.s, "password", NULL), "first");
	sleep_ms(2);
	fetch_sync(fx, b, "db/ro", &g);
	log = capture_stop(fx);
	assert_int_equal(count_lines(log), 1);
	free(log);

	/* Fixed: loaded again, and said so at level info. */
	write_file(fx->path, "{ \"db/ro\": { \"password\": \"fixed\" } }", 0600);
	set_mtime(fx->path, 1700000200, 0);
	sleep_ms(2);
	capture_start(fx);
	assert_true(b->ops->changed(b->ctx));
	log = capture_stop(fx);
	assert_int_equal(count_lines(log), 1);
	assert_non_null(strstr(log, "event=secrets_reloaded"));
	assert_null(strstr(log, "fixed"));
	free(log);
	cg_log_level_set(CG_LOG_WARN);
	fetch_sync(fx, b, "db/ro", &g);
	assert_string_equal(secret_field(g.s, "password", NULL), "fixed");
	assert_string_equal(secret_version(g.s), "2023-11-14T22:16:40.000000000Z");

	got_reset(&g);
	secret_backend_free(b);
}

/* status(): from the last check, never from the disk itself. */
static void
test_status(void **state)
{
	static const char good[] = "{ \"db/ro\": { \"password\": \"first\" } }";
	struct fx *fx = *state;
	struct secret_backend *b = NULL;
	struct got g = { 0 };
	const char *why = NULL;
	char err[512], *log;

	write_file(fx->path, good, 0600);
	set_mtime(fx->path, 1700000000, 0);
	file_backend_set_check_interval_ms(0);
	assert_int_equal(file_backend_new(fx->base, fx->path, &b, err,
	    sizeof(err)), 0);
	assert_non_null(b->ops->status);
	assert_int_equal(secret_backend_status(b, &why), SECRET_BACKEND_OK);
	assert_string_equal(why, "ok");

	/* Broken on disk, but not checked yet: status does not look. */
	write_file(fx->path, "{ \"db/ro\": { \"password\": \"" CANARY "\" ", 0600);
	set_mtime(fx->path, 1700000100, 0);
	sleep_ms(2);
	assert_int_equal(secret_backend_status(b, &why), SECRET_BACKEND_OK);

	/* Checked: degraded, still serving the last good copy. */
	capture_start(fx);
	assert_false(b->ops->changed(b->ctx));
	log = capture_stop(fx);
	free(log);
	assert_int_equal(secret_backend_status(b, &why), SECRET_BACKEND_DEGRADED);
	assert_non_null(strstr(why, "cannot be loaded"));
	assert_null(strstr(why, CANARY));
	assert_string_equal(secret_backend_state_name(SECRET_BACKEND_DEGRADED),
	    "degraded");
	fetch_sync(fx, b, "db/ro", &g);
	assert_string_equal(secret_field(g.s, "password", NULL), "first");

	/* The good file back exactly as it was loaded (same inode, size and
	 * mtime): nothing to load, and healthy again. */
	write_file(fx->path, good, 0600);
	set_mtime(fx->path, 1700000000, 0);
	sleep_ms(2);
	assert_false(b->ops->changed(b->ctx));
	assert_int_equal(secret_backend_status(b, &why), SECRET_BACKEND_OK);

	/* Gone: degraded with its own reason; back: ok. */
	assert_int_equal(unlink(fx->path), 0);
	sleep_ms(2);
	capture_start(fx);
	assert_false(b->ops->changed(b->ctx));
	log = capture_stop(fx);
	free(log);
	assert_int_equal(secret_backend_status(b, &why), SECRET_BACKEND_DEGRADED);
	assert_non_null(strstr(why, "gone"));
	write_file(fx->path, "{ \"db/ro\": { \"password\": \"second\" } }", 0600);
	set_mtime(fx->path, 1700000200, 0);
	sleep_ms(2);
	capture_start(fx);
	assert_true(b->ops->changed(b->ctx));
	log = capture_stop(fx);
	free(log);
	assert_int_equal(secret_backend_status(b, &why), SECRET_BACKEND_OK);

	/* No status op: always ok. */
	assert_int_equal(secret_backend_status(NULL, &why), SECRET_BACKEND_OK);
	assert_string_equal(why, "ok");

	got_reset(&g);
	secret_backend_free(b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_modes, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_not_regular, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_owner, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_names, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_format_errors, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_size_limit, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_check_keeps_nothing, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_fetch, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_fetch_order_and_free, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_version_defaults_to_mtime, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_reload, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_failed_reload_keeps_old, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_status, fx_setup, fx_teardown),
	};

	/* Room for a 1 MiB file next to its parse tree. */
	if (secmem_init(8 * 1024 * 1024, false) != 0)
		return 1;
	secmem_use_for_json();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
