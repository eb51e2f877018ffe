/*
 * file_read.c: reading a whole file that credgate trusts (secrets, keys,
 * certificates, key sets, its configuration) into memory, once, safely:
 * no FIFO or device that could stall or feed without end, no symbolic
 * link unless the caller allows it, a size cap, the caller's mode and
 * owner rules checked on the descriptor that is read (not on a name that
 * could change in between), and a file that grows while being read
 * refused rather than cut.
 *
 * Never looks at, logs or formats the bytes it reads: error texts name
 * the file and the problem only.  Knows nothing of what the file holds.
 */
#include "config.h"

#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

/* The caller's mode and owner rules, on what fstat said of the open file. */
static int
fr_check_policy(const char *path, const struct stat *st, unsigned flags,
    uid_t owner, char *err, size_t errlen)
{
	unsigned mode = (unsigned)(st->st_mode & 07777);

	/* The owner can chmod the file and then read or rewrite it. */
	if ((flags & CG_FILE_OWNER) && st->st_uid != 0 && st->st_uid != owner) {
		cg_errf(err, errlen, "%s: owned by uid %u, not by root or the "
		    "user credgate runs as (uid %u); chown it", path,
		    (unsigned)st->st_uid, (unsigned)owner);
		return CG_ERR_PERM;
	}
	if ((flags & CG_FILE_NO_GROUP_WORLD) && (mode & 077) != 0) {
		cg_errf(err, errlen, "%s: mode %04o is group- or "
		    "world-accessible; chmod 600", path, mode);
		return CG_ERR_PERM;
	}
	if ((flags & CG_FILE_NO_WORLD) && (mode & 007) != 0) {
		cg_errf(err, errlen, "%s: mode %04o is world-accessible; "
		    "chmod 600 (or 640 with a group)", path, mode);
		return CG_ERR_PERM;
	}
	if ((flags & CG_FILE_NO_OTHERS_WRITE) && (mode & 022) != 0) {
		cg_errf(err, errlen, "%s: mode %04o lets others change it; "
		    "chmod go-w", path, mode);
		return CG_ERR_PERM;
	}
	return 0;
}

void
cg_file_free(struct cg_file *f)
{
	if (f == NULL)
		return;
	if (f->data != NULL) {
		if (f->secure)
			secmem_free(f->data);	/* wipes */
		else
			free(f->data);
	}
	memset(f, 0, sizeof(*f));
}

int
cg_file_read(const char *path, unsigned flags, size_t max, uid_t owner,
    struct cg_file *out, char *err, size_t errlen)
{
	struct cg_file f;
	size_t bufsize, got = 0;
	ssize_t n;
	int fd = -1, oflags, r, e;

	memset(out, 0, sizeof(*out));
	memset(&f, 0, sizeof(f));
	f.secure = (flags & CG_FILE_SECURE) != 0;
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (path == NULL || *path == '\0') {
		cg_errf(err, errlen, "no file named");
		errno = EINVAL;
		return CG_ERR_NOTFOUND;
	}

	/*
	 * O_NONBLOCK: a FIFO planted at the path must not hang the open;
	 * O_NOCTTY: a terminal named here must not become ours.
	 */
	oflags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY;
	if (!(flags & CG_FILE_FOLLOW))
		oflags |= O_NOFOLLOW;
	if ((fd = open(path, oflags)) == -1) {
		e = errno;
		if (e == ELOOP && !(flags & CG_FILE_FOLLOW)) {
			cg_errf(err, errlen, "%s: is a symbolic link; name the "
			    "file itself", path);
			r = CG_ERR_PERM;
		} else {
			cg_errf(err, errlen, "%s: %s", path, strerror(e));
			r = e == ENOENT || e == ENOTDIR ? CG_ERR_NOTFOUND : CG_ERR_IO;
		}
		errno = e;
		goto out;
	}
	if (fstat(fd, &f.st) == -1) {
		e = errno;
		cg_errf(err, errlen, "%s: fstat: %s", path, strerror(e));
		errno = e;
		r = CG_ERR_IO;
		goto out;
	}
	if (!S_ISREG(f.st.st_mode)) {
		cg_errf(err, errlen, "%s: not a regular file", path);
		r = CG_ERR_UNSUPPORTED;
		goto out;
	}
	if ((r = fr_check_policy(path, &f.st, flags, owner, err, errlen)) != 0)
		goto out;
	if (f.st.st_size < 0 || (uintmax_t)f.st.st_size > (uintmax_t)max) {
		cg_errf(err, errlen, "%s: %lld bytes, larger than the limit of "
		    "%zu bytes", path, (long long)f.st.st_size, max);
		r = CG_ERR_LIMIT;
		goto out;
	}

	/*
	 * One byte more than fstat said, to notice a file still growing; if
	 * it does not come, that byte holds the terminating NUL.
	 */
	bufsize = (size_t)f.st.st_size + 1;
	f.data = f.secure ? secmem_alloc(bufsize) : malloc(bufsize);
	if (f.data == NULL) {
		cg_errf(err, errlen, "%s: out of %smemory", path,
		    f.secure ? "secure " : "");
		r = CG_ERR_NOMEM;
		goto out;
	}
	while (got < bufsize) {
		n = read(fd, f.data + got, bufsize - got);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			e = errno;
			cg_errf(err, errlen, "%s: read: %s", path, strerror(e));
			errno = e;
			r = CG_ERR_IO;
			goto out;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	if (got == bufsize) {
		cg_errf(err, errlen, "%s: changed while being read", path);
		r = CG_ERR_IO;
		goto out;
	}
	f.data[got] = '\0';
	f.len = got;

	*out = f;
	memset(&f, 0, sizeof(f));
	r = 0;
 out:
	cg_file_free(&f);	/* wipes a secure buffer */
	if (fd != -1) {
		e = errno;
		close(fd);
		errno = e;
	}
	return r;
}

static bool
is_space(char c)
{
	return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

int
cg_file_read_token(const char *path, unsigned flags, size_t max, char **out,
    struct stat *st, char *err, size_t errlen)
{
	struct cg_file f;
	size_t s, e;
	int r;

	*out = NULL;
	if ((r = cg_file_read(path, flags | CG_FILE_SECURE, max, 0, &f, err, errlen)) != 0)
		return r;
	for (s = 0; s < f.len && is_space(f.data[s]); s++)
		;
	for (e = f.len; e > s && is_space(f.data[e - 1]); e--)
		;
	if (e == s || memchr(f.data + s, '\0', e - s) != NULL) {
		cg_errf(err, errlen, "%s: empty, or not text", path);
		cg_file_free(&f);
		return CG_ERR_FORMAT;
	}
	if (st != NULL)
		*st = f.st;
	*out = secmem_strndup(f.data + s, e - s);
	cg_file_free(&f);
	return *out == NULL ? CG_ERR_NOMEM : 0;
}

void
cg_file_stamp_of(const struct stat *st, struct cg_file_stamp *out)
{
	memset(out, 0, sizeof(*out));
	out->dev = st->st_dev;
	out->ino = st->st_ino;
	out->size = st->st_size;
	out->mtim = st->st_mtim;
	out->mode = st->st_mode;
	out->uid = st->st_uid;
}

void
cg_file_stamp_path(const char *path, struct cg_file_stamp *out)
{
	struct stat st;

	if (stat(path, &st) == 0) {
		cg_file_stamp_of(&st, out);
		return;
	}
	memset(out, 0, sizeof(*out));
	out->err = errno != 0 ? errno : EIO;
}

bool
cg_file_stamp_eq(const struct cg_file_stamp *a, const struct cg_file_stamp *b)
{
	if (a->err != 0 || b->err != 0)
		return a->err == b->err;
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	    a->mtim.tv_sec == b->mtim.tv_sec && a->mtim.tv_nsec == b->mtim.tv_nsec &&
	    a->mode == b->mode && a->uid == b->uid;
}
