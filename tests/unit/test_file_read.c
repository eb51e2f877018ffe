/*
 * test_file_read.c: cg_file_read() (common/file_read.c): what it reads,
 * what it refuses (size, symbolic links, directories, FIFOs, modes,
 * owners) and with which code and reason, where the bytes land, and that
 * a reason never carries what the file holds.
 */
#include "config.h"

#include "tests/unit/unit.h"

#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

/* Written into test files; must never reach a reason. */
#define CANARY "CANARY-5d1c0b7e"

struct fx {
	char dir[512];
	char path[600];		/* dir/file */
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
	snprintf(fx->dir, sizeof(fx->dir), "%s/cg-fr-XXXXXX", tmp);
	if (mkdtemp(fx->dir) == NULL) {
		free(fx);
		return -1;
	}
	snprintf(fx->path, sizeof(fx->path), "%s/file", fx->dir);
	*state = fx;
	return 0;
}

static int
fx_teardown(void **state)
{
	struct fx *fx = *state;
	const char *names[] = { "file", "link", "fifo", "sub" };
	char p[700];
	size_t i;

	for (i = 0; i < CG_ARRAY_LEN(names); i++) {
		snprintf(p, sizeof(p), "%s/%s", fx->dir, names[i]);
		if (unlink(p) != 0)
			(void)rmdir(p);
	}
	rmdir(fx->dir);
	free(fx);
	return 0;
}

static void
write_file(const char *path, const char *data, size_t len, mode_t mode)
{
	int fd;

	(void)unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	assert_int_equal(fchmod(fd, mode), 0);
	assert_int_equal(close(fd), 0);
}

/* The reason starts with the path and carries none of the content. */
static void
assert_reason(const char *err, const char *path, const char *want)
{
	assert_int_equal(strncmp(err, path, strlen(path)), 0);
	assert_non_null(strstr(err, want));
	assert_null(strstr(err, CANARY));
	assert_null(strchr(err, '\n'));
}

static void
test_regular(void **state)
{
	struct fx *fx = *state;
	static const char text[] = "one " CANARY "\0two";
	struct cg_file f;
	char err[256];

	write_file(fx->path, text, sizeof(text) - 1, 0644);
	assert_int_equal(cg_file_read(fx->path, 0, 1024, 0, &f, err, sizeof(err)), 0);
	assert_int_equal(f.len, sizeof(text) - 1);
	assert_memory_equal(f.data, text, f.len);
	assert_int_equal(f.data[f.len], '\0');
	assert_false(f.secure);
	assert_false(secmem_owns(f.data));
	assert_true(S_ISREG(f.st.st_mode));
	assert_int_equal(f.st.st_size, (off_t)f.len);
	assert_string_equal(err, "");
	cg_file_free(&f);
	assert_null(f.data);
	assert_int_equal(f.len, 0);
	cg_file_free(&f);
	cg_file_free(NULL);
}

static void
test_empty(void **state)
{
	struct fx *fx = *state;
	struct cg_file f;
	char err[256];

	write_file(fx->path, "", 0, 0600);
	assert_int_equal(cg_file_read(fx->path, 0, 0, 0, &f, err, sizeof(err)), 0);
	assert_non_null(f.data);
	assert_int_equal(f.len, 0);
	assert_int_equal(f.data[0], '\0');
	cg_file_free(&f);
	assert_int_equal(cg_file_read(fx->path, CG_FILE_SECURE, 10, 0, &f, err,
	    sizeof(err)), 0);
	assert_int_equal(f.len, 0);
	assert_true(secmem_owns(f.data));
	cg_file_free(&f);
}

static void
test_size_cap(void **state)
{
	struct fx *fx = *state;
	static const struct {
		size_t len, max;
		int want;
	} cases[] = {
		{ 0, 0, 0 },
		{ 1, 0, CG_ERR_LIMIT },
		{ 99, 100, 0 },
		{ 100, 100, 0 },
		{ 101, 100, CG_ERR_LIMIT },
		{ 4096, 4095, CG_ERR_LIMIT },
		{ 4096, 4096, 0 },
	};
	char buf[4096], err[256];
	struct cg_file f;
	size_t i;
	int flags;

	memset(buf, 'x', sizeof(buf));
	for (i = 0; i < CG_ARRAY_LEN(cases); i++) {
		for (flags = 0; flags <= (int)CG_FILE_SECURE; flags += CG_FILE_SECURE) {
			write_file(fx->path, buf, cases[i].len, 0600);
			assert_int_equal(cg_file_read(fx->path, (unsigned)flags,
			    cases[i].max, 0, &f, err, sizeof(err)), cases[i].want);
			if (cases[i].want == 0) {
				assert_int_equal(f.len, cases[i].len);
				cg_file_free(&f);
				continue;
			}
			assert_null(f.data);
			assert_int_equal(f.len, 0);
			assert_reason(err, fx->path, "larger than the limit of");
		}
	}
}

/*
 * More bytes than fstat said: refused, not cut.  A file of /proc says
 * size 0 and then holds text, as a file that grows after fstat does.
 */
static void
test_grown(void **state)
{
	struct cg_file f;
	char err[256];
	struct stat st;

	(void)state;
	if (stat("/proc/self/status", &st) != 0 || st.st_size != 0)
		skip();
	assert_int_equal(cg_file_read("/proc/self/status", CG_FILE_FOLLOW |
	    CG_FILE_SECURE, 1024, 0, &f, err, sizeof(err)), CG_ERR_IO);
	assert_null(f.data);
	assert_reason(err, "/proc/self/status", ": changed while being read");
}

static void
test_symlink(void **state)
{
	struct fx *fx = *state;
	char link[700], err[256];
	struct cg_file f;

	write_file(fx->path, CANARY, strlen(CANARY), 0600);
	snprintf(link, sizeof(link), "%s/link", fx->dir);
	assert_int_equal(symlink(fx->path, link), 0);
	assert_int_equal(cg_file_read(link, 0, 1024, 0, &f, err, sizeof(err)),
	    CG_ERR_PERM);
	assert_null(f.data);
	assert_reason(err, link, "is a symbolic link");
	assert_int_equal(cg_file_read(link, CG_FILE_SECURE, 1024, 0, &f, err,
	    sizeof(err)), CG_ERR_PERM);
	/* Followed when the caller says so; the target's rules apply. */
	assert_int_equal(cg_file_read(link, CG_FILE_FOLLOW, 1024, 0, &f, err,
	    sizeof(err)), 0);
	assert_int_equal(f.len, strlen(CANARY));
	cg_file_free(&f);
	assert_int_equal(chmod(fx->path, 0604), 0);
	assert_int_equal(cg_file_read(link, CG_FILE_FOLLOW | CG_FILE_NO_WORLD,
	    1024, 0, &f, err, sizeof(err)), CG_ERR_PERM);
	assert_reason(err, link, "mode 0604 is world-accessible");
}

static void
test_not_regular(void **state)
{
	struct fx *fx = *state;
	char fifo[700], sub[700], err[256];
	struct cg_file f;

	snprintf(sub, sizeof(sub), "%s/sub", fx->dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	assert_int_equal(cg_file_read(sub, 0, 1024, 0, &f, err, sizeof(err)),
	    CG_ERR_UNSUPPORTED);
	assert_reason(err, sub, ": not a regular file");

	/* A FIFO with no writer: refused at once, not waited on. */
	snprintf(fifo, sizeof(fifo), "%s/fifo", fx->dir);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	assert_int_equal(cg_file_read(fifo, CG_FILE_SECURE, 1024, 0, &f, err,
	    sizeof(err)), CG_ERR_UNSUPPORTED);
	assert_null(f.data);
	assert_reason(err, fifo, ": not a regular file");
	assert_int_equal(cg_file_read(fifo, CG_FILE_FOLLOW, 1024, 0, &f, err,
	    sizeof(err)), CG_ERR_UNSUPPORTED);

	/* A character device. */
	assert_int_equal(cg_file_read("/dev/null", CG_FILE_FOLLOW, 1024, 0, &f,
	    err, sizeof(err)), CG_ERR_UNSUPPORTED);
	assert_reason(err, "/dev/null", ": not a regular file");
}

static void
test_missing(void **state)
{
	struct fx *fx = *state;
	char p[700], err[256];
	struct cg_file f;

	snprintf(p, sizeof(p), "%s/none", fx->dir);
	assert_int_equal(cg_file_read(p, 0, 1024, 0, &f, err, sizeof(err)),
	    CG_ERR_NOTFOUND);
	assert_int_equal(errno, ENOENT);
	assert_reason(err, p, ": No such file or directory");
	/* A file where a folder is expected. */
	write_file(fx->path, "x", 1, 0600);
	snprintf(p, sizeof(p), "%s/file/x", fx->dir);
	assert_int_equal(cg_file_read(p, 0, 1024, 0, &f, err, sizeof(err)),
	    CG_ERR_NOTFOUND);
	assert_int_equal(cg_file_read("", 0, 1024, 0, &f, err, sizeof(err)),
	    CG_ERR_NOTFOUND);
	assert_int_equal(cg_file_read(NULL, 0, 1024, 0, &f, err, sizeof(err)),
	    CG_ERR_NOTFOUND);
}

static void
test_modes(void **state)
{
	struct fx *fx = *state;
	static const struct {
		unsigned flags;
		mode_t mode;
		const char *why;	/* NULL: accepted */
	} cases[] = {
		{ CG_FILE_NO_GROUP_WORLD, 0600, NULL },
		{ CG_FILE_NO_GROUP_WORLD, 0400, NULL },
		{ CG_FILE_NO_GROUP_WORLD, 0700, NULL },
		{ CG_FILE_NO_GROUP_WORLD, 0640, "mode 0640 is group- or world-accessible; chmod 600" },
		{ CG_FILE_NO_GROUP_WORLD, 0620, "mode 0620 is group- or world-accessible" },
		{ CG_FILE_NO_GROUP_WORLD, 0610, "mode 0610 is group- or world-accessible" },
		{ CG_FILE_NO_GROUP_WORLD, 0604, "mode 0604 is group- or world-accessible" },
		{ CG_FILE_NO_GROUP_WORLD, 0602, "mode 0602 is group- or world-accessible" },
		{ CG_FILE_NO_GROUP_WORLD, 0601, "mode 0601 is group- or world-accessible" },
		{ CG_FILE_NO_WORLD, 0640, NULL },
		{ CG_FILE_NO_WORLD, 0660, NULL },
		{ CG_FILE_NO_WORLD, 0644, "mode 0644 is world-accessible; chmod 600 (or 640 with a group)" },
		{ CG_FILE_NO_WORLD, 0601, "mode 0601 is world-accessible" },
		{ CG_FILE_NO_OTHERS_WRITE, 0644, NULL },
		{ CG_FILE_NO_OTHERS_WRITE, 0755, NULL },
		{ CG_FILE_NO_OTHERS_WRITE, 0664, "mode 0664 lets others change it; chmod go-w" },
		{ CG_FILE_NO_OTHERS_WRITE, 0646, "mode 0646 lets others change it" },
		{ CG_FILE_NO_OTHERS_WRITE, 0666, "mode 0666 lets others change it" },
		{ 0, 0666, NULL },
		{ 0, 0000, NULL },	/* root reads it all the same; others cannot open */
		{ CG_FILE_NO_GROUP_WORLD | CG_FILE_SECURE, 0644, "group- or world-accessible" },
	};
	struct cg_file f;
	char err[256];
	size_t i;
	int r;

	for (i = 0; i < CG_ARRAY_LEN(cases); i++) {
		write_file(fx->path, CANARY, strlen(CANARY), cases[i].mode);
		r = cg_file_read(fx->path, cases[i].flags, 1024, 0, &f, err,
		    sizeof(err));
		if (cases[i].why == NULL) {
			if (r == CG_ERR_IO && geteuid() != 0 && cases[i].mode == 0)
				continue;	/* not ours to read */
			assert_int_equal(r, 0);
			assert_string_equal(f.data, CANARY);
			cg_file_free(&f);
			continue;
		}
		assert_int_equal(r, CG_ERR_PERM);
		assert_null(f.data);
		assert_reason(err, fx->path, cases[i].why);
	}
}

static void
test_owner(void **state)
{
	struct fx *fx = *state;
	uid_t me = geteuid(), other = me == 65534 ? 65533 : 65534;
	struct cg_file f;
	char err[256], want[200];

	write_file(fx->path, CANARY, strlen(CANARY), 0600);
	/* Owned by the given uid (or by root): read. */
	assert_int_equal(cg_file_read(fx->path, CG_FILE_OWNER, 1024, me, &f,
	    err, sizeof(err)), 0);
	cg_file_free(&f);
	/* Without the flag, owner is not looked at. */
	assert_int_equal(cg_file_read(fx->path, 0, 1024, other, &f, err,
	    sizeof(err)), 0);
	cg_file_free(&f);
	if (me == 0) {
		/* Root's file is fine whoever else is named ... */
		assert_int_equal(cg_file_read(fx->path, CG_FILE_OWNER, 1024,
		    other, &f, err, sizeof(err)), 0);
		cg_file_free(&f);
		/* ... another user's is not. */
		assert_int_equal(chown(fx->path, other, (gid_t)-1), 0);
		assert_int_equal(cg_file_read(fx->path, CG_FILE_OWNER, 1024, 0,
		    &f, err, sizeof(err)), CG_ERR_PERM);
		snprintf(want, sizeof(want), "owned by uid %u, not by root or the "
		    "user credgate runs as (uid 0); chown it", (unsigned)other);
		assert_reason(err, fx->path, want);
		/* The file's owner named: read. */
		assert_int_equal(cg_file_read(fx->path, CG_FILE_OWNER | CG_FILE_SECURE,
		    1024, other, &f, err, sizeof(err)), 0);
		cg_file_free(&f);
	} else {
		assert_int_equal(cg_file_read(fx->path, CG_FILE_OWNER, 1024,
		    other, &f, err, sizeof(err)), CG_ERR_PERM);
		snprintf(want, sizeof(want), "owned by uid %u, not by root or the "
		    "user credgate runs as (uid %u); chown it", (unsigned)me,
		    (unsigned)other);
		assert_reason(err, fx->path, want);
	}
}

static void
test_secure(void **state)
{
	struct fx *fx = *state;
	size_t used0, used1, total;
	struct cg_file f;
	char err[256];

	write_file(fx->path, CANARY, strlen(CANARY), 0600);
	secmem_stats(&used0, &total);
	assert_int_equal(cg_file_read(fx->path, CG_FILE_SECURE |
	    CG_FILE_NO_GROUP_WORLD | CG_FILE_OWNER, 1024, geteuid(), &f, err,
	    sizeof(err)), 0);
	assert_true(f.secure);
	assert_true(secmem_owns(f.data));
	assert_string_equal(f.data, CANARY);
	secmem_stats(&used1, &total);
	assert_true(used1 > used0);
	cg_file_free(&f);
	secmem_stats(&used1, &total);
	assert_int_equal(used1, used0);

	/* A failure keeps nothing in the pool. */
	assert_int_equal(cg_file_read(fx->path, CG_FILE_SECURE, 4, 0, &f, err,
	    sizeof(err)), CG_ERR_LIMIT);
	secmem_stats(&used1, &total);
	assert_int_equal(used1, used0);

	/* Larger than the pool: out of secure memory, said so. */
	{
		size_t big = 80 * 1024;
		char *buf = malloc(big);

		assert_non_null(buf);
		memset(buf, 'y', big);
		write_file(fx->path, buf, big, 0600);
		free(buf);
		assert_int_equal(cg_file_read(fx->path, CG_FILE_SECURE, big, 0,
		    &f, err, sizeof(err)), CG_ERR_NOMEM);
		assert_reason(err, fx->path, "out of secure memory");
		secmem_stats(&used1, &total);
		assert_int_equal(used1, used0);
		assert_int_equal(cg_file_read(fx->path, 0, big, 0, &f, err,
		    sizeof(err)), 0);
		assert_int_equal(f.len, big);
		cg_file_free(&f);
	}
}

static void
test_err_buffers(void **state)
{
	struct fx *fx = *state;
	struct cg_file f;
	char err[8];

	write_file(fx->path, CANARY, strlen(CANARY), 0644);
	/* No room, a little room: still the right code, never an overrun. */
	assert_int_equal(cg_file_read(fx->path, CG_FILE_NO_GROUP_WORLD, 1024, 0,
	    &f, NULL, 0), CG_ERR_PERM);
	memset(err, 'z', sizeof(err));
	assert_int_equal(cg_file_read(fx->path, CG_FILE_NO_GROUP_WORLD, 1024, 0,
	    &f, err, 1), CG_ERR_PERM);
	assert_int_equal(err[0], '\0');
	assert_int_equal(err[1], 'z');
	assert_int_equal(cg_file_read(fx->path, CG_FILE_NO_GROUP_WORLD, 1024, 0,
	    &f, err, sizeof(err)), CG_ERR_PERM);
	assert_int_equal(strlen(err), sizeof(err) - 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_regular, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_empty, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_size_cap, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_grown, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_symlink, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_not_regular, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_missing, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_modes, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_owner, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_secure, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_err_buffers, fx_setup, fx_teardown),
	};

	/* A small pool, so that running out of it can be tested. */
	if (secmem_init(64 * 1024, false) != 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
