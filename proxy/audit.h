/*
 * audit.h: audit sinks (a file opened O_APPEND, stdout) and the JSON line
 * writer the proxy composes events with.  Events name credentials by path
 * and version only; nothing here ever sees a secret value.
 */
#ifndef CG_AUDIT_H
#define CG_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "common.h"

struct cg_audit;

/*
 * Opens the sinks: file (NULL for none; created mode 0640, O_APPEND) and
 * stdout.  err gets a one-line reason.  With no sink at all, writes
 * succeed and go nowhere.
 */
int cg_audit_open(const char *file, bool to_stdout, struct cg_audit **out,
    char *err, size_t errlen) CG_WUR;
/* Reopens the file (after logrotate moved it).  Keeps the old fd on error. */
int cg_audit_reopen(struct cg_audit *a) CG_WUR;
void cg_audit_close(struct cg_audit *a);	/* NULL-safe */
bool cg_audit_enabled(const struct cg_audit *a);

/*
 * A batch of lines on their way to the sinks, owned by one thread.  A
 * worker appends each event of a loop pass here and writes them all at
 * the end of the pass, one write per sink instead of one per event.
 * Lines stay whole and in order, and batches of different threads never
 * interleave: every line of an audit file is one whole event.
 */
#define CG_AUDIT_BATCH_MAX	(256 * 1024)	/* bytes held before a write is forced */
struct cg_audit_batch {
	struct cg_audit *a;
	char *buf;
	size_t len;
	size_t cap;
	unsigned lines;
	unsigned failed;	/* lines lost to failed writes; the owner resets it */
};
void cg_audit_batch_init(struct cg_audit_batch *b, struct cg_audit *a);
void cg_audit_batch_free(struct cg_audit_batch *b);	/* drops what is held */
/*
 * Appends one line (a '\n' is added).  When it would take the batch over
 * CG_AUDIT_BATCH_MAX, the held lines are written first.  Returns 0,
 * CG_ERR_IO when that write failed, or CG_ERR_NOMEM when the line cannot
 * be held (it is lost, and not counted in failed).
 */
int cg_audit_batch_add(struct cg_audit_batch *b, const char *line, size_t len) CG_WUR;
/*
 * Writes the held lines to every sink and empties the batch.  Returns 0,
 * or CG_ERR_IO (errno set) if any sink failed: then every line of the
 * batch adds to failed, even those a sink took before it failed, and a
 * file that took part of the batch is cut back to where the batch began,
 * so that it always ends with a whole line.
 */
int cg_audit_batch_flush(struct cg_audit_batch *b) CG_WUR;
static inline bool
cg_audit_batch_empty(const struct cg_audit_batch *b)
{
	return b->len == 0;
}

/*
 * A bounded JSON object writer: jw_* calls append to buf; once over the
 * limit or out of memory, w->err is set and later calls do nothing.
 */
struct jw {
	char *buf;
	size_t len;
	size_t cap;
	size_t limit;
	bool err;
	int depth;
	bool first[16];		/* per depth: no member written yet */
};
void jw_init(struct jw *w, size_t limit);
void jw_free(struct jw *w);
void jw_obj_begin(struct jw *w, const char *key);	/* key NULL at top or in arrays */
void jw_obj_end(struct jw *w);
void jw_arr_begin(struct jw *w, const char *key);
void jw_arr_end(struct jw *w);
void jw_str(struct jw *w, const char *key, const char *s);	/* NULL -> null */
void jw_strn(struct jw *w, const char *key, const char *s, size_t n);
void jw_int(struct jw *w, const char *key, long long v);
void jw_bool(struct jw *w, const char *key, bool v);
void jw_null(struct jw *w, const char *key);
void jw_json(struct jw *w, const char *key, const json_t *v);	/* NULL -> null */

#endif /* CG_AUDIT_H */
