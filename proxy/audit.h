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
/* Writes one line (a '\n' is added) to every sink, whole or not at all as
 * far as write(2) allows.  Returns 0 or CG_ERR_IO if any sink failed. */
int cg_audit_write(struct cg_audit *a, const char *line, size_t len) CG_WUR;
uint64_t cg_audit_failures(const struct cg_audit *a);

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
