/*
 * conf_int.h: what the settings table (conf_table.c) and the loader
 * (conf.c) share and nothing else sees: the loader's own handling of the
 * rows that a type and a field alone cannot describe (an address that
 * fills a host and a port, a list of names kept as bits, a rule's
 * conditions, the lists whose elements the loader builds).
 */
#ifndef CG_CONF_INT_H
#define CG_CONF_INT_H

#include <stdio.h>
#include <libconfig.h>

#include "proxy/conf.h"

struct load;

/*
 * Every hook is optional.  bases[scope] is the struct of each scope for
 * the element at hand (NULL where there is none).
 */
struct cg_setting_ops {
	/* Pass 1, once the type is right: more checks of the value m. */
	void (*check)(struct load *ld, const struct cg_setting *r, const config_setting_t *m,
	    const char *dpath);
	/* Pass 2: fills the field(s) from m; m NULL: the default applies. */
	void (*parse)(struct load *ld, const struct cg_setting *r, const config_setting_t *m,
	    const char *dpath, void *const *bases);
	/* The value as libconfig text (what follows "name = "); false when
	 * the setting is not set. */
	bool (*print)(const struct cg_setting *r, const void *const *bases, FILE *f);
	/* Frees what the field(s) hold and zeroes them. */
	void (*clear)(const struct cg_setting *r, void *const *bases);
	/* Sets the field(s) of dst (a struct of the row's scope) to src's
	 * value; false when out of memory. */
	bool (*copy)(const struct cg_setting *r, void *dst, const void *src);
	/* A list: how many elements, and the scopes' structs of element i
	 * (sub starts as a copy of bases); *proto is set for a route. */
	size_t (*count)(const struct cg_setting *r, const void *const *bases);
	void (*elem)(const struct cg_setting *r, const void *const *bases, size_t i,
	    const void **sub, const struct inj_proto **proto);
};

extern const struct cg_setting_ops conf_ops_workers;	/* fills workers too */
extern const struct cg_setting_ops conf_ops_admin_listen;
extern const struct cg_setting_ops conf_ops_listen;	/* routes.[].listen */
extern const struct cg_setting_ops conf_ops_protocol;
extern const struct cg_setting_ops conf_ops_choice_text;	/* an ENUM kept as its text */
extern const struct cg_setting_ops conf_ops_algorithms;	/* names kept as JWT_* bits */
extern const struct cg_setting_ops conf_ops_seconds;	/* a duration in whole seconds */
extern const struct cg_setting_ops conf_ops_cond;	/* a rule's condition; arg: its kind */
extern const struct cg_setting_ops conf_ops_cond_list;	/* claims, attributes */
extern const struct cg_setting_ops conf_ops_issuers;
extern const struct cg_setting_ops conf_ops_trust_domains;
extern const struct cg_setting_ops conf_ops_routes;
extern const struct cg_setting_ops conf_ops_rules;	/* allow, deny */

/* A rule condition's row: its kind, and for an attribute its name. */
struct conf_cond_spec {
	enum policy_cond_kind kind;
	const char *attr;
};

#endif /* CG_CONF_INT_H */
