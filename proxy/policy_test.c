/*
 * policy_test.c: `credgate policy-test -c FILE CASES`.
 *
 * Each case names a route, an issuer, the claims a caller would present,
 * the request's attributes (by the names the route's protocol declares;
 * "method" and "path" may also be members of their own), and the decision
 * expected (and optionally the rule that makes it).  The real rules
 * decide; nothing is verified or sent.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"
#include "proxy/policy_test.h"

#define CASES_MAX_BYTES (4 * 1024 * 1024)
#define CASES_MAX_DEPTH 64

static const struct policy_issuer *
find_issuer(const struct cg_config *cfg, const char *name, json_t *claims)
{
	const char *iss = json_string_value(json_object_get(claims, "iss"));
	size_t i;

	for (i = 0; i < cfg->nissuers; i++) {
		if (name != NULL && strcmp(cfg->issuers[i]->name, name) == 0)
			return cfg->issuers[i];
		if (name == NULL && iss != NULL && cfg->issuers[i]->iss != NULL &&
		    strcmp(cfg->issuers[i]->iss, iss) == 0)
			return cfg->issuers[i];
	}
	return NULL;
}

static const char *
str_member(json_t *c, const char *key)
{
	return json_string_value(json_object_get(c, key));
}

/* Case members that name an attribute directly, as cases did before the
 * attributes object: each stands for the attribute of its name. */
static const char *const attr_members[] = { "method", "path", NULL };

/*
 * The request's attributes from case c, by the route's protocol's names:
 * vals[id] for each id (attrs NULL-terminated).  Returns 0, or -1 after
 * printing why the case is unusable.
 */
static int
case_attrs(json_t *c, size_t n, const char *name, const struct inj_proto *proto,
    struct policy_attr *vals, size_t nattrs)
{
	json_t *obj = json_object_get(c, "attributes"), *v;
	const char *key;
	size_t i, k;

	for (i = 0; attr_members[i] != NULL; i++) {
		if ((v = json_object_get(c, attr_members[i])) == NULL)
			continue;
		for (k = 0; k < nattrs && strcmp(proto->attrs[k], attr_members[i]) != 0; k++)
			;
		if (k == nattrs) {
			fprintf(stderr, "case %zu (%s): %s: protocol \"%s\" has no attribute "
			    "\"%s\"\n", n, name, attr_members[i], proto->name, attr_members[i]);
			return -1;
		}
		vals[k].value = json_string_value(v);
		vals[k].len = json_string_length(v);
	}
	json_object_foreach(obj, key, v) {
		for (k = 0; k < nattrs && strcmp(proto->attrs[k], key) != 0; k++)
			;
		if (k == nattrs) {
			fprintf(stderr, "case %zu (%s): attributes: protocol \"%s\" has no attribute "
			    "\"%s\"\n", n, name, proto->name, key);
			return -1;
		}
		if (!json_is_string(v)) {
			fprintf(stderr, "case %zu (%s): attributes: \"%s\" must be a string\n", n,
			    name, key);
			return -1;
		}
		if (vals[k].value != NULL) {
			fprintf(stderr, "case %zu (%s): attribute \"%s\" is given twice\n", n, name,
			    key);
			return -1;
		}
		vals[k].value = json_string_value(v);
		vals[k].len = json_string_length(v);
	}
	/* a case is a whole request: it carries every attribute */
	for (k = 0; k < nattrs; k++) {
		if (vals[k].value != NULL)
			continue;
		for (i = 0; attr_members[i] != NULL; i++)
			if (strcmp(attr_members[i], proto->attrs[k]) == 0)
				break;
		fprintf(stderr, "case %zu (%s): no attribute \"%s\": give it in attributes%s%s%s\n",
		    n, name, proto->attrs[k], attr_members[i] != NULL ? " or as member \"" : "",
		    attr_members[i] != NULL ? attr_members[i] : "",
		    attr_members[i] != NULL ? "\"" : "");
		return -1;
	}
	return 0;
}

/* Runs one case; returns 1 pass, 0 fail, -1 unusable (message printed). */
static int
run_case(const struct cg_config *cfg, json_t *c, size_t n, FILE *out)
{
	const char *name, *route_name, *issuer_name, *expect, *now_text;
	const struct cg_route *route;
	const struct policy_issuer *issuer = NULL;
	struct policy_identity *id = NULL;
	struct policy_attr *vals = NULL;
	struct policy_request q;
	struct policy_decision d;
	json_t *claims, *rule_v, *attrs_v;
	const char *want_rule = NULL, *got;
	bool check_rule, ok;
	size_t i, nattrs = 0;
	int64_t now;
	int r = -1;

	name = str_member(c, "name");
	route_name = str_member(c, "route");
	issuer_name = str_member(c, "issuer");
	expect = str_member(c, "expect");
	now_text = str_member(c, "now");
	claims = json_object_get(c, "claims");
	rule_v = json_object_get(c, "rule");
	attrs_v = json_object_get(c, "attributes");
	if (name == NULL)
		name = "(unnamed)";
	for (i = 0; attr_members[i] != NULL; i++)
		if (json_object_get(c, attr_members[i]) != NULL &&
		    !json_is_string(json_object_get(c, attr_members[i])))
			break;
	if (!json_is_object(c) || route_name == NULL || expect == NULL ||
	    attr_members[i] != NULL || (claims != NULL && !json_is_object(claims)) ||
	    (attrs_v != NULL && !json_is_object(attrs_v)) ||
	    (rule_v != NULL && !json_is_string(rule_v) && !json_is_null(rule_v))) {
		fprintf(stderr, "case %zu (%s): needs string members route, method, path, expect; "
		    "claims and attributes objects; rule a string or null\n", n, name);
		return -1;
	}
	if (strcmp(expect, "allow") != 0 && strcmp(expect, "deny") != 0 &&
	    strcmp(expect, "would_deny") != 0) {
		fprintf(stderr, "case %zu (%s): expect must be allow, deny or would_deny\n", n, name);
		return -1;
	}
	if ((route = cg_config_route(cfg, route_name)) == NULL) {
		fprintf(stderr, "case %zu (%s): no route named \"%s\"\n", n, name, route_name);
		return -1;
	}
	while (route->proto->attrs[nattrs] != NULL)
		nattrs++;
	if ((vals = calloc(nattrs + 1, sizeof(*vals))) == NULL) {
		fprintf(stderr, "case %zu (%s): out of memory\n", n, name);
		return -1;
	}
	if (case_attrs(c, n, name, route->proto, vals, nattrs) != 0)
		goto out;
	if (issuer_name != NULL || claims != NULL) {
		issuer = find_issuer(cfg, issuer_name, claims);
		if (issuer_name != NULL && issuer == NULL) {
			fprintf(stderr, "case %zu (%s): no issuer named \"%s\"\n", n, name, issuer_name);
			goto out;
		}
	}
	now = cg_now_ms() / 1000;
	if (now_text != NULL && cg_time_parse(now_text, &now) != 0) {
		fprintf(stderr, "case %zu (%s): now: not a date or RFC 3339 time\n", n, name);
		goto out;
	}
	if (claims != NULL && policy_identity_from_claims(issuer, claims, &id) != 0) {
		fprintf(stderr, "case %zu (%s): claims: cannot build an identity\n", n, name);
		goto out;
	}
	memset(&q, 0, sizeof(q));
	q.id = id;
	q.spiffe = id != NULL ? id->spiffe : NULL;	/* a JWT-SVID's */
	q.attrs = vals;
	q.nattrs = nattrs;
	q.now_s = now;
	policy_decide(&route->policy, &q, &d);
	policy_identity_free(id);

	got = policy_result_name(d.result);
	check_rule = rule_v != NULL;
	want_rule = json_string_value(rule_v);
	ok = strcmp(got, expect) == 0;
	if (check_rule) {
		if (want_rule == NULL)
			ok = ok && d.rule == NULL;
		else
			ok = ok && d.rule != NULL && strcmp(d.rule, want_rule) == 0;
	}
	if (ok) {
		fprintf(out, "ok   %zu %s\n", n, name);
		r = 1;
		goto out;
	}
	fprintf(out, "FAIL %zu %s\n", n, name);
	fprintf(out, "     route %s:", route_name);
	for (i = 0; i < nattrs; i++)
		fprintf(out, " %.*s", (int)vals[i].len, vals[i].value);
	fprintf(out, "\n     expected: %s", expect);
	if (check_rule)
		fprintf(out, " (rule %s)", want_rule ? want_rule : "none");
	fprintf(out, "\n     got:      %s (rule %s; %s)\n", got, d.rule ? d.rule : "none", d.reason);
	r = 0;
 out:
	free(vals);
	return r;
}

int
policy_test_run(const struct cg_config *cfg, const char *cases_file, FILE *out)
{
	json_t *root = NULL, *cases, *c;
	size_t i, passed = 0, failed = 0;
	struct cg_file f;
	char why[512];
	int r;

	if ((r = cg_file_read(cases_file, CG_FILE_FOLLOW, CASES_MAX_BYTES, 0,
	    &f, why, sizeof(why))) != 0) {
		fprintf(stderr, "%s\n", why);
		return 2;
	}
	r = cg_json_strict_load(f.data, f.len, CASES_MAX_DEPTH, &root);
	cg_file_free(&f);
	if (r != 0) {
		fprintf(stderr, "%s: not valid JSON (duplicate keys are refused too)\n", cases_file);
		return 2;
	}
	cases = json_object_get(root, "cases");
	if (!json_is_array(cases) || json_array_size(cases) == 0) {
		fprintf(stderr, "%s: needs a non-empty \"cases\" array\n", cases_file);
		json_decref(root);
		return 2;
	}
	json_array_foreach(cases, i, c) {
		r = run_case(cfg, c, i + 1, out);
		if (r < 0) {
			json_decref(root);
			return 2;
		}
		if (r > 0)
			passed++;
		else
			failed++;
	}
	json_decref(root);
	fprintf(out, "%zu passed, %zu failed\n", passed, failed);
	return failed ? 1 : 0;
}
