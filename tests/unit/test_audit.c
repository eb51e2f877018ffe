/*
 * test_audit.c: audit batches: lines whole and in order, a write forced at
 * the size limit, failures counted per line, a write that fails part-way
 * cut back to the last whole line, no sink, and batches of two threads
 * that never interleave in a pipe.  The JSON line writer: every byte
 * escaped as the reference below says, and its limit.
 */
#include "tests/unit/unit.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proxy/audit.h"

static char dir[512];
static char file[600];

static int
setup(void **state)
{
	const char *tmp = getenv("TMPDIR");

	(void)state;
	snprintf(dir, sizeof(dir), "%s/cg-audit-XXXXXX", tmp != NULL ? tmp : P_tmpdir);
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(file, sizeof(file), "%s/audit.log", dir);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	unlink(file);
	rmdir(dir);
	return 0;
}

static off_t
file_size(const char *path)
{
	struct stat sb;

	assert_int_equal(stat(path, &sb), 0);
	return sb.st_size;
}

static void
test_lines_reach_the_file_at_flush(void **state)
{
	struct cg_audit *a;
	struct cg_audit_batch b;
	char err[128], *text;
	size_t len;

	(void)state;
	unlink(file);
	assert_int_equal(cg_audit_open(file, false, &a, err, sizeof(err)), 0);
	cg_audit_batch_init(&b, a);
	assert_true(cg_audit_batch_empty(&b));
	assert_int_equal(cg_audit_batch_add(&b, "{\"n\":1}", 7), 0);
	assert_int_equal(cg_audit_batch_add(&b, "{\"n\":2}", 7), 0);
	assert_false(cg_audit_batch_empty(&b));
	/* Held, not written yet. */
	assert_int_equal(file_size(file), 0);
	assert_int_equal(cg_audit_batch_flush(&b), 0);
	assert_true(cg_audit_batch_empty(&b));
	assert_int_equal(b.failed, 0);
	text = unit_read_file(file, &len);
	assert_string_equal(text, "{\"n\":1}\n{\"n\":2}\n");
	free(text);
	/* An empty batch writes nothing. */
	assert_int_equal(cg_audit_batch_flush(&b), 0);
	assert_int_equal(file_size(file), 16);
	cg_audit_batch_free(&b);
	cg_audit_close(a);
}

static void
test_size_limit_forces_a_write(void **state)
{
	struct cg_audit *a;
	struct cg_audit_batch b;
	char err[128], line[1000], *text;
	size_t len, i, n = CG_AUDIT_BATCH_MAX / (sizeof(line) + 1) + 1;

	(void)state;
	unlink(file);
	assert_int_equal(cg_audit_open(file, false, &a, err, sizeof(err)), 0);
	cg_audit_batch_init(&b, a);
	for (i = 0; i < n; i++) {
		memset(line, 'a' + (int)(i % 26), sizeof(line));
		assert_int_equal(cg_audit_batch_add(&b, line, sizeof(line)), 0);
		assert_true(b.len <= CG_AUDIT_BATCH_MAX);
	}
	/* The batch never held more than its limit: the first lines are out. */
	assert_true(file_size(file) > 0);
	assert_true(b.lines < n);
	assert_int_equal(cg_audit_batch_flush(&b), 0);
	text = unit_read_file(file, &len);
	assert_int_equal(len, n * (sizeof(line) + 1));
	for (i = 0; i < n; i++) {
		const char *l = text + i * (sizeof(line) + 1);

		assert_int_equal(l[0], 'a' + (int)(i % 26));
		assert_int_equal(l[sizeof(line) - 1], 'a' + (int)(i % 26));
		assert_int_equal(l[sizeof(line)], '\n');
	}
	free(text);
	cg_audit_batch_free(&b);
	cg_audit_close(a);
}

static void
test_failed_write_counts_every_line(void **state)
{
	struct cg_audit *a;
	struct cg_audit_batch b;
	char err[128];

	(void)state;
	if (access("/dev/full", W_OK) != 0)
		skip();
	assert_int_equal(cg_audit_open("/dev/full", false, &a, err, sizeof(err)), 0);
	cg_audit_batch_init(&b, a);
	assert_int_equal(cg_audit_batch_add(&b, "one", 3), 0);
	assert_int_equal(cg_audit_batch_add(&b, "two", 3), 0);
	assert_int_equal(cg_audit_batch_add(&b, "three", 5), 0);
	assert_int_equal(cg_audit_batch_flush(&b), CG_ERR_IO);
	assert_int_equal(b.failed, 3);
	assert_true(cg_audit_batch_empty(&b));
	/* The count stays until its owner takes it. */
	assert_int_equal(cg_audit_batch_add(&b, "four", 4), 0);
	assert_int_equal(cg_audit_batch_flush(&b), CG_ERR_IO);
	assert_int_equal(b.failed, 4);
	cg_audit_batch_free(&b);
	cg_audit_close(a);
}

/*
 * A write that fails part-way, for real: a file size limit lets the file
 * take part of the batch, then refuses the rest with EFBIG (a full disk
 * does the same with ENOSPC).  Runs in a child, since the limit holds for
 * every file the process writes; the child's exit status names the first
 * return value that was not as expected, and the parent reads the file.
 */
#define SHORT_ROOM	20	/* bytes the limit leaves: 2.5 lines of 8 */

static int
short_write_child(bool to_stdout)
{
	struct cg_audit_batch b;
	struct cg_audit *a;
	struct rlimit rl, low;
	char err[128];
	int fd;

	signal(SIGXFSZ, SIG_IGN);
	if (to_stdout) {
		/* A plain redirection, without O_APPEND: the offset is moved
		 * back too. */
		if ((fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0600)) < 0 ||
		    dup2(fd, STDOUT_FILENO) < 0)
			return 10;
		close(fd);
	}
	if (cg_audit_open(to_stdout ? NULL : file, to_stdout, &a, err, sizeof(err)) != 0)
		return 11;
	cg_audit_batch_init(&b, a);
	if (cg_audit_batch_add(&b, "{\"n\":1}", 7) != 0 ||
	    cg_audit_batch_add(&b, "{\"n\":2}", 7) != 0 ||
	    cg_audit_batch_flush(&b) != 0)
		return 12;
	if (getrlimit(RLIMIT_FSIZE, &rl) != 0)
		return 13;
	low = rl;
	low.rlim_cur = 16 + SHORT_ROOM;
	if (setrlimit(RLIMIT_FSIZE, &low) != 0)
		return 13;
	if (cg_audit_batch_add(&b, "{\"n\":3}", 7) != 0 ||
	    cg_audit_batch_add(&b, "{\"n\":4}", 7) != 0 ||
	    cg_audit_batch_add(&b, "{\"n\":5}", 7) != 0)
		return 14;
	if (cg_audit_batch_flush(&b) != CG_ERR_IO)
		return 15;
	if (b.failed != 3)	/* the two whole lines count too */
		return 16;
	/* Room again: the next event starts its own line. */
	if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
		return 17;
	if (cg_audit_batch_add(&b, "{\"n\":6}", 7) != 0 ||
	    cg_audit_batch_flush(&b) != 0)
		return 18;
	cg_audit_batch_free(&b);
	cg_audit_close(a);
	return 0;
}

static void
check_short_write(bool to_stdout)
{
	char *text, *line, *nl;
	json_error_t jerr;
	json_t *v;
	size_t len;
	pid_t pid;
	int status;

	unlink(file);
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(short_write_child(to_stdout));
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) != 0)
		fail_msg("the writing child failed its check %d", WEXITSTATUS(status));
	text = unit_read_file(file, &len);
	/* The file never kept a part of the failed batch. */
	assert_string_equal(text, "{\"n\":1}\n{\"n\":2}\n{\"n\":6}\n");
	for (line = text; *line != '\0'; line = nl + 1) {
		assert_non_null(nl = strchr(line, '\n'));
		if ((v = json_loadb(line, (size_t)(nl - line), 0, &jerr)) == NULL)
			fail_msg("not JSON: %.*s", (int)(nl - line), line);
		assert_true(json_is_object(v));
		json_decref(v);
	}
	free(text);
	unlink(file);
}

static void
test_short_write_cut_back_file(void **state)
{
	(void)state;
	check_short_write(false);
}

static void
test_short_write_cut_back_stdout(void **state)
{
	(void)state;
	check_short_write(true);
}

static void
test_no_sink_holds_nothing(void **state)
{
	struct cg_audit *a;
	struct cg_audit_batch b;
	char err[128];

	(void)state;
	assert_int_equal(cg_audit_open(NULL, false, &a, err, sizeof(err)), 0);
	assert_false(cg_audit_enabled(a));
	cg_audit_batch_init(&b, a);
	assert_int_equal(cg_audit_batch_add(&b, "x", 1), 0);
	assert_true(cg_audit_batch_empty(&b));
	assert_int_equal(cg_audit_batch_flush(&b), 0);
	cg_audit_batch_free(&b);
	cg_audit_close(a);
}

/* Two writers, each with its own batch, into one pipe (a FIFO sink). */
#define PIPE_THREADS	2
#define PIPE_ROUNDS	40
#define PIPE_LINES	100
#define PIPE_LINE	300

struct writer {
	struct cg_audit *a;
	int id;
};

static void *
writer_main(void *arg)
{
	struct writer *wr = arg;
	struct cg_audit_batch b;
	char line[PIPE_LINE];
	int round, i, seq = 0;

	cg_audit_batch_init(&b, wr->a);
	for (round = 0; round < PIPE_ROUNDS; round++) {
		for (i = 0; i < PIPE_LINES; i++) {
			memset(line, 'a' + wr->id, sizeof(line));
			snprintf(line, sizeof(line), "%d %06d ", wr->id, seq++);
			line[strlen(line)] = 'a' + wr->id;
			if (cg_audit_batch_add(&b, line, sizeof(line)) != 0)
				break;
		}
		if (cg_audit_batch_flush(&b) != 0)
			break;
	}
	cg_audit_batch_free(&b);
	return NULL;
}

struct reader {
	char *buf;
	size_t len;
	size_t cap;
	int fd;
};

static void *
reader_main(void *arg)
{
	struct reader *rd = arg;
	ssize_t n;

	while ((n = read(rd->fd, rd->buf + rd->len, rd->cap - rd->len)) > 0)
		rd->len += (size_t)n;
	return NULL;
}

static void *
fifo_open_reader(void *arg)
{
	struct reader *rd = arg;

	rd->fd = open(file, O_RDONLY);
	return NULL;
}

static void
test_batches_never_interleave_in_a_pipe(void **state)
{
	struct writer wr[PIPE_THREADS];
	pthread_t t[PIPE_THREADS], rt, ot;
	struct reader rd;
	struct cg_audit *a;
	char err[128];
	int next[PIPE_THREADS] = { 0 };
	size_t off, total = (size_t)PIPE_THREADS * PIPE_ROUNDS * PIPE_LINES * (PIPE_LINE + 1);
	int i;

	(void)state;
	unlink(file);
	assert_int_equal(mkfifo(file, 0600), 0);
	memset(&rd, 0, sizeof(rd));
	rd.cap = total + 1;
	rd.buf = malloc(rd.cap);
	assert_non_null(rd.buf);
	/* Opening a FIFO for writing waits for its reader. */
	assert_int_equal(pthread_create(&ot, NULL, fifo_open_reader, &rd), 0);
	assert_int_equal(cg_audit_open(file, false, &a, err, sizeof(err)), 0);
	assert_int_equal(pthread_join(ot, NULL), 0);
	assert_true(rd.fd >= 0);
	assert_int_equal(pthread_create(&rt, NULL, reader_main, &rd), 0);
	for (i = 0; i < PIPE_THREADS; i++) {
		wr[i].a = a;
		wr[i].id = i;
		assert_int_equal(pthread_create(&t[i], NULL, writer_main, &wr[i]), 0);
	}
	for (i = 0; i < PIPE_THREADS; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	cg_audit_close(a);	/* the reader sees the end */
	assert_int_equal(pthread_join(rt, NULL), 0);
	close(rd.fd);

	assert_int_equal(rd.len, total);
	for (off = 0; off < rd.len; off += PIPE_LINE + 1) {
		const char *l = rd.buf + off;
		int id = l[0] - '0', seq;

		assert_true(id >= 0 && id < PIPE_THREADS);
		assert_int_equal(sscanf(l + 2, "%6d", &seq), 1);
		if (seq != next[id])
			fail_msg("writer %d: line %d where %d was due (offset %zu)", id, seq,
			    next[id], off);
		next[id]++;
		assert_int_equal(l[PIPE_LINE - 1], 'a' + id);
		assert_int_equal(l[PIPE_LINE], '\n');
	}
	for (i = 0; i < PIPE_THREADS; i++)
		assert_int_equal(next[i], PIPE_ROUNDS * PIPE_LINES);
	free(rd.buf);
	unlink(file);
}

/* ------------------------------------------------------------------ */
/* The line writer                                                     */
/* ------------------------------------------------------------------ */

/* The escaping jw promises, byte by byte: printable ASCII as it is, quote
 * and backslash escaped, every other byte as a \u00XX escape. */
static size_t
ref_quoted(const unsigned char *s, size_t n, char *out)
{
	size_t i, o = 0;

	out[o++] = '"';
	for (i = 0; i < n; i++) {
		if (s[i] == '"' || s[i] == '\\') {
			out[o++] = '\\';
			out[o++] = (char)s[i];
		} else if (s[i] >= 0x20 && s[i] < 0x7f)
			out[o++] = (char)s[i];
		else
			o += (size_t)sprintf(out + o, "\\u%04x", s[i]);
	}
	out[o++] = '"';
	out[o] = '\0';
	return o;
}

/* {"k":<s quoted>} through jw, checked against the reference. */
static void
check_quoted(const unsigned char *s, size_t n)
{
	char *want = malloc(6 * n + 16);
	size_t wn;
	struct jw w;

	assert_non_null(want);
	memcpy(want, "{\"k\":", 5);
	wn = 5 + ref_quoted(s, n, want + 5);
	want[wn++] = '}';
	want[wn] = '\0';

	jw_init(&w, 1 << 20);
	jw_obj_begin(&w, NULL);
	jw_strn(&w, "k", (const char *)s, n);
	jw_obj_end(&w);
	assert_false(w.err);
	assert_int_equal(w.len, wn);
	assert_string_equal(w.buf, want);
	jw_free(&w);
	free(want);
}

static void
test_jw_escapes_every_byte(void **state)
{
	unsigned char s[3], all[4096];
	unsigned c;
	size_t i;

	(void)state;
	/* Each byte alone, and between plain bytes. */
	for (c = 0; c < 256; c++) {
		s[0] = 'a';
		s[1] = (unsigned char)c;
		s[2] = 'z';
		check_quoted(s + 1, 1);
		check_quoted(s, 3);
	}
	/* Long runs past the first buffer size, with escapes falling on and
	 * around each growth. */
	for (i = 0; i < sizeof(all); i++)
		all[i] = (unsigned char)(i % 7 == 0 ? i * 31 : 'a' + i % 26);
	check_quoted(all, sizeof(all));
	memset(all, 0x01, sizeof(all));
	check_quoted(all, sizeof(all));
	check_quoted(all, 0);
}

/* Keys: plain names are copied, any other byte is escaped as in a value;
 * members are separated by commas at every depth. */
static void
test_jw_keys_and_members(void **state)
{
	unsigned char key[4];
	char want[64], got_key[32];
	size_t wn;
	unsigned c;
	struct jw w;

	(void)state;
	for (c = 1; c < 256; c++) {
		key[0] = 'a';
		key[1] = (unsigned char)c;
		key[2] = 'z';
		key[3] = '\0';
		ref_quoted(key, 3, got_key);
		wn = (size_t)snprintf(want, sizeof(want), "{\"x\":1,%s:\"v\",\"o\":{%s:null,\"y\":true}}",
		    got_key, got_key);
		jw_init(&w, 1 << 20);
		jw_obj_begin(&w, NULL);
		jw_int(&w, "x", 1);
		jw_str(&w, (const char *)key, "v");
		jw_obj_begin(&w, "o");
		jw_null(&w, (const char *)key);
		jw_bool(&w, "y", true);
		jw_obj_end(&w);
		jw_obj_end(&w);
		assert_false(w.err);
		assert_int_equal(w.len, wn);
		assert_string_equal(w.buf, want);
		jw_free(&w);
	}
}

/* {key: value} under a limit of 100, value a string when val is set and 1
 * otherwise: err exactly when its want bytes and a NUL do not fit. */
static void
check_limit(const char *key, const char *val, size_t vlen, size_t want)
{
	struct jw w;

	jw_init(&w, 100);
	jw_obj_begin(&w, NULL);
	if (val != NULL)
		jw_strn(&w, key, val, vlen);
	else
		jw_int(&w, key, 1);
	jw_obj_end(&w);
	assert_int_equal(w.err, want + 1 > 100);
	if (!w.err)
		assert_int_equal(w.len, want);
	assert_true(w.len < 100);
	assert_int_equal(w.buf[w.len], '\0');
	jw_free(&w);
}

/* A line never grows past the limit: what fits is written whole, what
 * does not sets err and adds nothing. */
static void
test_jw_limit(void **state)
{
	char s[200];
	struct jw w;
	size_t n;

	(void)state;
	memset(s, 'x', sizeof(s));
	/* {"k":"<n bytes>"} is n + 8 bytes. */
	for (n = 80; n < 100; n++)
		check_limit("k", s, n, n + 8);
	/* Escapes count at their escaped size: 15 control bytes are 90. */
	memset(s, 0x01, 15);
	jw_init(&w, 100);
	jw_obj_begin(&w, NULL);
	jw_strn(&w, "k", s, 15);
	assert_false(w.err);
	jw_strn(&w, "l", s, 1);
	assert_true(w.err);
	assert_true(w.len < 100);
	jw_free(&w);
	/* A key counts whole: {"<n bytes>":1} is n + 6 bytes; one that does
	 * not fit adds not even its comma. */
	s[0] = 'k';
	memset(s + 1, 'x', sizeof(s) - 2);
	for (n = 80; n < 100; n++) {
		s[n] = '\0';
		check_limit(s, NULL, 0, n + 6);
		s[n] = 'x';
	}
	jw_init(&w, 12);
	jw_obj_begin(&w, NULL);
	jw_int(&w, "a", 1);
	jw_int(&w, "bbbbbbb", 2);
	assert_true(w.err);
	assert_string_equal(w.buf, "{\"a\":1");
	jw_free(&w);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lines_reach_the_file_at_flush),
		cmocka_unit_test(test_size_limit_forces_a_write),
		cmocka_unit_test(test_failed_write_counts_every_line),
		cmocka_unit_test(test_short_write_cut_back_file),
		cmocka_unit_test(test_short_write_cut_back_stdout),
		cmocka_unit_test(test_no_sink_holds_nothing),
		cmocka_unit_test(test_batches_never_interleave_in_a_pipe),
		cmocka_unit_test(test_jw_escapes_every_byte),
		cmocka_unit_test(test_jw_keys_and_members),
		cmocka_unit_test(test_jw_limit),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
