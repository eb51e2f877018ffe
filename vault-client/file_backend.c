/*
 * file_backend.c: the `file` secret backend.
 *
 * Owns the secrets file: opening it safely (no symlink, regular file, no
 * group or world access, owned by root or the user credgate runs as,
 * bounded size), reading it into secure memory, parsing it strictly,
 * keeping the parsed secrets (each a struct secret), re-reading it when it
 * changes, answering fetches from a zero-delay timer on the caller's
 * event base, and saying from its last check whether the file it serves
 * from is the one on disk (status).
 *
 * Must not log, format or copy a secret value outside secure memory: error
 * texts and log lines name the file, the secret path and the field name
 * only.  Knows nothing about caching (cache.c) or who asks.
 */
#include "config.h"

#include <sys/queue.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "common.h"
#include "vault-client/vault.h"

#define FB_MAX_FILE	(1024 * 1024)	/* bytes */
#define FB_MAX_DEPTH	8		/* the format needs 2 */
#define FB_QUOTE	160		/* room for a quoted name in a message */

static int64_t fb_check_interval_ms = 1000;
static bool fb_owner_set;	/* else the effective uid of each load */
static uid_t fb_owner_uid;


/* The parsed file: secrets sorted by path. */
struct fb_table {
	size_t n;
	struct secret **v;	/* one reference each */
};

/* A fetch answered from the event loop. */
struct fb_pending {
	struct file_backend *fb;
	struct event *ev;
	struct secret *s;	/* our reference; NULL when not found */
	secret_cb cb;
	void *arg;
	TAILQ_ENTRY(fb_pending) link;
};

struct file_backend {
	struct event_base *base;
	char *path;			/* file name, not secret */
	struct fb_table *tab;		/* current secrets */
	struct cg_file_stamp stamp;		/* of the file tab came from */
	int64_t last_check_ms;		/* monotonic */
	bool changed;			/* a reload happened, not yet reported */
	bool failed;			/* last check failed: failed_stamp is valid */
	bool missing;			/* last check could not stat the file */
	struct cg_file_stamp failed_stamp;	/* what the failed reload saw */
	TAILQ_HEAD(, fb_pending) pending;
};

void
file_backend_set_check_interval_ms(int64_t ms)
{
	fb_check_interval_ms = ms < 0 ? 0 : ms;
}

void
file_backend_set_owner(uid_t uid)
{
	fb_owner_uid = uid;
	fb_owner_set = true;
}

/* Besides root, who may own the file now. */
static uid_t
fb_owner(void)
{
	return fb_owner_set ? fb_owner_uid : geteuid();
}

static void
fb_table_free(struct fb_table *t)
{
	size_t i;

	if (t == NULL)
		return;
	for (i = 0; i < t->n; i++)
		secret_unref(t->v[i]);
	free(t->v);
	free(t);
}

static int
fb_secret_cmp(const void *a, const void *b)
{
	const struct secret *const *x = a, *const *y = b;

	return strcmp(secret_path(*x), secret_path(*y));
}

static struct secret *
fb_table_find(const struct fb_table *t, const char *path)
{
	size_t lo = 0, hi = t->n, mid;
	int c;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		c = strcmp(path, secret_path(t->v[mid]));
		if (c == 0)
			return t->v[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

static const char *
fb_json_type(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:	return "an object";
	case JSON_ARRAY:	return "an array";
	case JSON_STRING:	return "a string";
	case JSON_INTEGER:
	case JSON_REAL:		return "a number";
	case JSON_TRUE:
	case JSON_FALSE:	return "a boolean";
	case JSON_NULL:		return "null";
	}
	return "unknown";
}

/* The version of a secret that names none: the file's mtime, RFC 3339. */
static void
fb_mtime_version(const struct timespec *ts, char *out, size_t size)
{
	struct tm tm;
	char day[32];

	if (gmtime_r(&ts->tv_sec, &tm) == NULL ||
	    strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm) == 0) {
		snprintf(out, size, "%lld", (long long)ts->tv_sec);
		return;
	}
	snprintf(out, size, "%s.%09ldZ", day, (long)ts->tv_nsec);
}

/* Builds one secret from its JSON object; values go straight to secmem. */
static int
fb_build_secret(const char *file, const char *path, json_t *obj,
    const char *dflt_version, struct secret **out, char *err, size_t errlen)
{
	const char **names = NULL, **values = NULL;
	size_t *lens = NULL, n = 0, max;
	const char *key, *version = dflt_version;
	char qpath[FB_QUOTE], qkey[FB_QUOTE];
	json_t *v;
	int r;

	*out = NULL;
	cg_log_quote(qpath, sizeof(qpath), path, strlen(path));
	if (!json_is_object(obj)) {
		cg_errf(err, errlen, "%s: secret %s is %s, not an object",
		    file, qpath, fb_json_type(obj));
		return CG_ERR_FORMAT;
	}
	max = json_object_size(obj);
	if (max > 0 && ((names = calloc(max, sizeof(*names))) == NULL ||
	    (values = calloc(max, sizeof(*values))) == NULL ||
	    (lens = calloc(max, sizeof(*lens))) == NULL)) {
		cg_errf(err, errlen, "%s: out of memory", file);
		r = CG_ERR_NOMEM;
		goto out;
	}
	json_object_foreach(obj, key, v) {
		cg_log_quote(qkey, sizeof(qkey), key, strlen(key));
		if (!json_is_string(v)) {
			cg_errf(err, errlen, "%s: secret %s field %s is %s, "
			    "not a string", file, qpath, qkey, fb_json_type(v));
			r = CG_ERR_FORMAT;
			goto out;
		}
		if (strcmp(key, "version") == 0) {
			version = json_string_value(v);
			continue;
		}
		if (*key == '\0') {
			cg_errf(err, errlen, "%s: secret %s has a field with "
			    "an empty name", file, qpath);
			r = CG_ERR_FORMAT;
			goto out;
		}
		names[n] = key;
		values[n] = json_string_value(v);
		lens[n] = json_string_length(v);
		n++;
	}
	if ((r = secret_new(path, version, n, names, values, lens, out)) != 0)
		cg_errf(err, errlen, "%s: secret %s: %s", file, qpath,
		    cg_strerror(r));
 out:
	/* Only pointers into the JSON tree: nothing secret to wipe here. */
	free(names);
	free(values);
	free(lens);
	return r;
}

/*
 * Opens, checks, reads and parses the file, which root or owner must own.
 * On success returns 0, the table in *out (if out is not NULL; else it is
 * dropped) and the stamp of what was read.  On failure returns CG_ERR_*
 * and a reason in err.  Called through fb_load(), which keeps the parse
 * tree in the secure pool.
 */
static int
fb_load_file(const char *file, uid_t owner, struct fb_table **out, struct cg_file_stamp *stamp,
    char *err, size_t errlen)
{
	struct fb_table *t = NULL;
	struct cg_file f;
	json_t *root = NULL, *v;
	const char *key;
	char version[64], qpath[FB_QUOTE];
	size_t i;
	int r;

	if (out != NULL)
		*out = NULL;
	if (err != NULL && errlen > 0)
		*err = '\0';
	memset(stamp, 0, sizeof(*stamp));

	/* The owner can chmod the file and read it, or rewrite the secrets. */
	if ((r = cg_file_read(file, CG_FILE_SECURE | CG_FILE_NO_GROUP_WORLD |
	    CG_FILE_OWNER, FB_MAX_FILE, owner, &f, err, errlen)) != 0) {
		if (r == CG_ERR_UNSUPPORTED)
			r = CG_ERR_PERM;	/* a FIFO or a folder is refused too */
		goto out;
	}
	cg_file_stamp_of(&f.st, stamp);

	if ((r = cg_json_strict_load(f.data, f.len, FB_MAX_DEPTH, &root)) != 0) {
		cg_errf(err, errlen, "%s: not valid JSON (%s; duplicate keys, "
		    "trailing bytes and NUL bytes are refused)", file,
		    cg_strerror(r));
		goto out;
	}
	if (!json_is_object(root)) {
		cg_errf(err, errlen, "%s: top level is %s, not an object",
		    file, fb_json_type(root));
		r = CG_ERR_FORMAT;
		goto out;
	}

	fb_mtime_version(&f.st.st_mtim, version, sizeof(version));
	if ((t = calloc(1, sizeof(*t))) == NULL ||
	    (json_object_size(root) > 0 &&
	    (t->v = calloc(json_object_size(root), sizeof(*t->v))) == NULL)) {
		cg_errf(err, errlen, "%s: out of memory", file);
		r = CG_ERR_NOMEM;
		goto out;
	}
	json_object_foreach(root, key, v) {
		if (*key == '\0') {
			cg_errf(err, errlen, "%s: a secret has an empty name",
			    file);
			r = CG_ERR_FORMAT;
			goto out;
		}
		if ((r = fb_build_secret(file, key, v, version, &t->v[t->n],
		    err, errlen)) != 0)
			goto out;
		t->n++;
	}
	if (t->n > 1)
		qsort(t->v, t->n, sizeof(*t->v), fb_secret_cmp);
	/* Strict JSON refuses duplicate keys; this guards the invariant. */
	for (i = 1; i < t->n; i++) {
		if (strcmp(secret_path(t->v[i - 1]), secret_path(t->v[i])) == 0) {
			cg_log_quote(qpath, sizeof(qpath), secret_path(t->v[i]),
			    strlen(secret_path(t->v[i])));
			cg_errf(err, errlen, "%s: secret %s appears twice",
			    file, qpath);
			r = CG_ERR_FORMAT;
			goto out;
		}
	}

	if (out != NULL) {
		*out = t;
		t = NULL;
	}
	r = 0;
 out:
	fb_table_free(t);
	json_decref(root);
	cg_file_free(&f);	/* wipes */
	return r;
}

/* fb_load_file(), with the JSON parse tree of the secrets in the pool. */
static int
fb_load(const char *file, uid_t owner, struct fb_table **out, struct cg_file_stamp *stamp,
    char *err, size_t errlen)
{
	bool was = secmem_json_secure(true);
	int r = fb_load_file(file, owner, out, stamp, err, errlen);

	secmem_json_secure(was);
	return r;
}

/*
 * Re-reads the file if it is due and changed.  A failed reload keeps the
 * current secrets and logs one line per distinct failure.
 */
static void
fb_maybe_reload(struct file_backend *fb)
{
	struct fb_table *t = NULL;
	struct cg_file_stamp seen, loaded;
	struct stat sb;
	char err[512], qfile[FB_QUOTE], qerr[600];
	int64_t now = cg_mono_ms();
	int r;

	if (now - fb->last_check_ms < fb_check_interval_ms)
		return;
	fb->last_check_ms = now;

	cg_log_quote(qfile, sizeof(qfile), fb->path, strlen(fb->path));
	if (stat(fb->path, &sb) == -1) {
		if (!fb->missing) {
			cg_warn("event=secrets_reload_failed file=%s "
			    "reason=%s keeping=previous", qfile,
			    cg_log_quote(qerr, sizeof(qerr), strerror(errno),
			    strlen(strerror(errno))));
		}
		fb->missing = true;
		return;
	}
	fb->missing = false;
	cg_file_stamp_of(&sb, &seen);
	if (cg_file_stamp_eq(&seen, &fb->stamp)) {
		fb->failed = false;	/* the good file is back */
		return;
	}
	if (fb->failed && cg_file_stamp_eq(&seen, &fb->failed_stamp))
		return;		/* already tried and reported this one */

	if ((r = fb_load(fb->path, fb_owner(), &t, &loaded, err, sizeof(err))) != 0) {
		fb->failed = true;
		fb->failed_stamp = seen;
		cg_warn("event=secrets_reload_failed file=%s reason=%s "
		    "keeping=previous", qfile,
		    cg_log_quote(qerr, sizeof(qerr), err, strlen(err)));
		return;
	}
	fb->failed = false;
	fb_table_free(fb->tab);
	fb->tab = t;
	fb->stamp = loaded;
	fb->changed = true;
	cg_info("event=secrets_reloaded file=%s secrets=%zu", qfile, t->n);
}

static void
fb_deliver(evutil_socket_t fd, short what, void *arg)
{
	struct fb_pending *p = arg;
	struct file_backend *fb = p->fb;

	(void)fd;
	(void)what;
	/* Unlink first: the callback may free the backend. */
	TAILQ_REMOVE(&fb->pending, p, link);
	event_free(p->ev);
	if (p->s != NULL)
		p->cb(0, p->s, NULL, p->arg);
	else
		p->cb(CG_ERR_NOTFOUND, NULL, "no such secret", p->arg);
	secret_unref(p->s);
	free(p);
}

static int
fb_fetch(void *ctx, const char *path, secret_cb cb, void *arg)
{
	static const struct timeval now = { 0, 0 };
	struct file_backend *fb = ctx;
	struct fb_pending *p;

	if (path == NULL || cb == NULL)
		return CG_ERR_INTERNAL;
	fb_maybe_reload(fb);
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return CG_ERR_NOMEM;
	p->fb = fb;
	p->cb = cb;
	p->arg = arg;
	if ((p->ev = evtimer_new(fb->base, fb_deliver, p)) == NULL) {
		free(p);
		return CG_ERR_NOMEM;
	}
	if (evtimer_add(p->ev, &now) != 0) {
		event_free(p->ev);
		free(p);
		return CG_ERR_INTERNAL;
	}
	p->s = secret_ref(fb_table_find(fb->tab, path));
	TAILQ_INSERT_TAIL(&fb->pending, p, link);
	return 0;
}

static bool
fb_changed(void *ctx)
{
	struct file_backend *fb = ctx;

	fb_maybe_reload(fb);
	if (!fb->changed)
		return false;
	fb->changed = false;
	return true;
}

/* From the last check only: a probe must not cost a read of the file. */
static enum secret_backend_state
fb_status(void *ctx, const char **reason)
{
	struct file_backend *fb = ctx;

	*reason = NULL;
	if (fb->missing) {
		*reason = "the secrets file is gone; serving its last good copy";
		return SECRET_BACKEND_DEGRADED;
	}
	if (fb->failed) {
		*reason = "the secrets file changed and cannot be loaded; "
		    "serving its last good copy";
		return SECRET_BACKEND_DEGRADED;
	}
	return SECRET_BACKEND_OK;
}

static void
fb_free(void *ctx)
{
	struct file_backend *fb = ctx;
	struct fb_pending *p;

	if (fb == NULL)
		return;
	/* Pending fetches end without their callbacks. */
	while ((p = TAILQ_FIRST(&fb->pending)) != NULL) {
		TAILQ_REMOVE(&fb->pending, p, link);
		event_free(p->ev);
		secret_unref(p->s);
		free(p);
	}
	fb_table_free(fb->tab);
	free(fb->path);
	free(fb);
}

static const struct secret_backend_ops fb_ops = {
	.name = "file",
	.fetch = fb_fetch,
	.changed = fb_changed,
	.status = fb_status,
	.free = fb_free,
};

int
file_backend_new(struct event_base *base, const char *path,
    struct secret_backend **out, char *err, size_t errlen)
{
	struct secret_backend *b = NULL;
	struct file_backend *fb = NULL;
	int r;

	*out = NULL;
	if (err != NULL && errlen > 0)
		*err = '\0';
	if (base == NULL || path == NULL) {
		cg_errf(err, errlen, "file backend: no event base or path");
		return CG_ERR_INTERNAL;
	}
	if ((b = calloc(1, sizeof(*b))) == NULL ||
	    (fb = calloc(1, sizeof(*fb))) == NULL ||
	    (fb->path = strdup(path)) == NULL) {
		cg_errf(err, errlen, "%s: out of memory", path);
		r = CG_ERR_NOMEM;
		goto out;
	}
	fb->base = base;
	TAILQ_INIT(&fb->pending);
	if ((r = fb_load(path, fb_owner(), &fb->tab, &fb->stamp, err, errlen)) != 0)
		goto out;
	fb->last_check_ms = cg_mono_ms();
	b->ops = &fb_ops;
	b->ctx = fb;
	fb = NULL;
	*out = b;
	b = NULL;
	r = 0;
 out:
	fb_free(fb);
	free(b);
	return r;
}

int
file_backend_check(const char *path, char *err, size_t errlen)
{
	struct cg_file_stamp stamp;

	if (path == NULL) {
		cg_errf(err, errlen, "file backend: no path");
		return CG_ERR_INTERNAL;
	}
	return fb_load(path, fb_owner(), NULL, &stamp, err, errlen);
}

int
file_backend_has(const char *path, const char *secret, char *err, size_t errlen)
{
	struct fb_table *t = NULL;
	struct cg_file_stamp stamp;
	int r;

	if (path == NULL || secret == NULL) {
		cg_errf(err, errlen, "file backend: no path");
		return CG_ERR_INTERNAL;
	}
	if ((r = fb_load(path, fb_owner(), &t, &stamp, err, errlen)) != 0)
		return r;
	r = fb_table_find(t, secret) != NULL ? 0 : CG_ERR_NOTFOUND;
	if (r != 0)
		cg_errf(err, errlen, "no secret at this path");
	fb_table_free(t);
	return r;
}

/* ------------------------------------------------------------------ */
/* Names only, for `credgate -t`                                       */
/* ------------------------------------------------------------------ */

struct fb_names_entry {
	char *path;
	char **fields;
	size_t nfields;
};

struct file_backend_names {
	size_t n;
	struct fb_names_entry *v;	/* sorted by path, as fb_table */
};

void
file_backend_names_free(struct file_backend_names *n)
{
	size_t i, k;

	if (n == NULL)
		return;
	for (i = 0; i < n->n; i++) {
		free(n->v[i].path);
		for (k = 0; k < n->v[i].nfields; k++)
			free(n->v[i].fields[k]);
		free(n->v[i].fields);
	}
	free(n->v);
	free(n);
}

int
file_backend_names_load(const char *file, uid_t owner, struct file_backend_names **out,
    char *err, size_t errlen)
{
	struct file_backend_names *n = NULL;
	struct fb_table *t = NULL;
	struct cg_file_stamp stamp;
	size_t i, k;
	int r;

	*out = NULL;
	if (file == NULL) {
		cg_errf(err, errlen, "file backend: no path");
		return CG_ERR_INTERNAL;
	}
	if ((r = fb_load(file, owner, &t, &stamp, err, errlen)) != 0)
		return r;
	r = CG_ERR_NOMEM;
	if ((n = calloc(1, sizeof(*n))) == NULL ||
	    (t->n > 0 && (n->v = calloc(t->n, sizeof(*n->v))) == NULL))
		goto out;
	for (i = 0; i < t->n; i++) {
		const struct secret *s = t->v[i];
		struct fb_names_entry *e = &n->v[n->n++];

		if ((e->path = strdup(secret_path(s))) == NULL)
			goto out;
		if (secret_nfields(s) > 0 &&
		    (e->fields = calloc(secret_nfields(s), sizeof(*e->fields))) == NULL)
			goto out;
		for (k = 0; k < secret_nfields(s); k++) {
			if ((e->fields[k] = strdup(secret_field_name(s, k))) == NULL)
				goto out;
			e->nfields++;
		}
	}
	*out = n;
	n = NULL;
	r = 0;
 out:
	if (r != 0)
		cg_errf(err, errlen, "%s: out of memory", file);
	file_backend_names_free(n);
	fb_table_free(t);
	return r;
}

bool
file_backend_names_has(const struct file_backend_names *n, const char *path,
    const char *field)
{
	size_t lo = 0, hi, mid, k;
	int c;

	if (n == NULL || path == NULL)
		return false;
	hi = n->n;
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if ((c = strcmp(path, n->v[mid].path)) < 0) {
			hi = mid;
			continue;
		}
		if (c > 0) {
			lo = mid + 1;
			continue;
		}
		if (field == NULL)
			return true;
		for (k = 0; k < n->v[mid].nfields; k++)
			if (strcmp(n->v[mid].fields[k], field) == 0)
				return true;
		return false;
	}
	return false;
}
