/*
 * rules.c: policy_decide() and what routes and rules own.  A decision is a
 * pure function of the route, the verified identity and the request; no
 * I/O, no clock reads (the caller passes now), no logging.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"
#include "spiffe.h"

void
policy_rule_clear(struct policy_rule *rule)
{
	size_t i, j;

	if (rule == NULL)
		return;
	for (i = 0; i < rule->nconds; i++) {
		struct policy_cond *c = &rule->conds[i];

		free(c->claim);
		free(c->attr);
		for (j = 0; j < c->nvalues; j++)
			free(c->values[j]);
		free(c->values);
	}
	free(rule->conds);
	free(rule->name);
	memset(rule, 0, sizeof(*rule));
}

void
policy_route_clear(struct policy_route *r)
{
	size_t i;

	if (r == NULL)
		return;
	for (i = 0; i < r->nallow; i++)
		policy_rule_clear(&r->allow[i]);
	free(r->allow);
	for (i = 0; i < r->ndeny; i++)
		policy_rule_clear(&r->deny[i]);
	free(r->deny);
	free(r->name);
	memset(r, 0, sizeof(*r));
}

const char *
policy_result_name(enum policy_result r)
{
	switch (r) {
	case POLICY_ALLOW:
		return "allow";
	case POLICY_DENY:
		return "deny";
	case POLICY_WOULD_DENY:
		return "would_deny";
	}
	return "unknown";
}

/* True when any of the condition's values matches s (slen bytes). */
static bool
values_match(const struct policy_cond *c, const char *s, size_t slen)
{
	size_t i;

	if (s == NULL)
		return false;
	for (i = 0; i < c->nvalues; i++) {
		if (c->values[i] != NULL && cg_glob_match(c->values[i], s, slen))
			return true;
	}
	return false;
}

static bool
values_match_str(const struct policy_cond *c, const char *s)
{
	return s != NULL && values_match(c, s, strlen(s));
}

/*
 * The JSON text of a real, in its shortest form that reads back exactly,
 * with ".0" added to integral values as jansson writes them.
 */
static void
real_text(double v, char *out, size_t size)
{
	int prec;

	if (!isfinite(v)) {
		snprintf(out, size, "%s", isnan(v) ? "nan" : "inf");
		return;
	}
	for (prec = 1; prec <= 17; prec++) {
		snprintf(out, size, "%.*g", prec, v);
		if (strtod(out, NULL) == v)
			break;
	}
	if (strpbrk(out, ".eE") == NULL && strlen(out) + 3 <= size)
		strcat(out, ".0");
}

/* A scalar claim value against the condition; arrays/objects/null: no. */
static bool
claim_scalar_match(const struct policy_cond *c, json_t *v)
{
	char num[40];

	switch (json_typeof(v)) {
	case JSON_STRING:
		return values_match(c, json_string_value(v), json_string_length(v));
	case JSON_INTEGER:
		snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(v));
		return values_match_str(c, num);
	case JSON_REAL:
		real_text(json_real_value(v), num, sizeof(num));
		return values_match_str(c, num);
	case JSON_TRUE:
		return values_match_str(c, "true");
	case JSON_FALSE:
		return values_match_str(c, "false");
	default:
		return false;
	}
}

static bool
claim_match(const struct policy_cond *c, const struct policy_identity *id)
{
	json_t *v, *el;
	size_t i;

	if (id == NULL || c->claim == NULL)
		return false;
	if ((v = policy_claim_lookup(id->claims, c->claim)) == NULL)
		return false;
	if (json_is_array(v)) {
		json_array_foreach(v, i, el) {
			if (claim_scalar_match(c, el))
				return true;
		}
		return false;
	}
	return claim_scalar_match(c, v);
}

static bool
peer_san_match(const struct policy_cond *c, const struct policy_peer *peer)
{
	size_t i;

	for (i = 0; i < peer->nsans; i++)
		if (values_match_str(c, peer->sans[i]))
			return true;
	return false;
}

/* The request's SPIFFE ID against patterns (spiffe_id_match()). */
static bool
spiffe_match(const struct policy_cond *c, const struct spiffe_id *id)
{
	size_t i;

	for (i = 0; id != NULL && i < c->nvalues; i++)
		if (spiffe_id_match(id, c->values[i]))
			return true;
	return false;
}

/* Its trust domain against exact names: a trust domain is no glob. */
static bool
trust_domain_match(const struct policy_cond *c, const struct spiffe_id *id)
{
	size_t i;

	for (i = 0; id != NULL && i < c->nvalues; i++)
		if (c->values[i] != NULL && strcmp(c->values[i], id->trust_domain) == 0)
			return true;
	return false;
}

static bool
audience_match(const struct policy_cond *c, const struct policy_identity *id)
{
	json_t *el;
	size_t i;

	if (id == NULL || id->aud == NULL)
		return false;
	if (json_is_string(id->aud))
		return values_match(c, json_string_value(id->aud),
		    json_string_length(id->aud));
	json_array_foreach(id->aud, i, el) {
		if (json_is_string(el) && values_match(c, json_string_value(el),
		    json_string_length(el)))
			return true;
	}
	return false;
}

static bool
cond_holds(const struct policy_cond *c, const struct policy_request *q)
{
	const struct policy_identity *id = q->id;

	switch (c->kind) {
	case POLICY_COND_ISSUER:
		if (id == NULL)
			return false;
		if (id->issuer != NULL && values_match_str(c, id->issuer->name))
			return true;
		return values_match_str(c, id->iss);
	case POLICY_COND_AUDIENCE:
		return audience_match(c, id);
	case POLICY_COND_CLAIM:
		return claim_match(c, id);
	case POLICY_COND_ATTR:
		/* by index: the name was resolved at load */
		if (c->attr_ref == 0 || c->attr_ref > q->nattrs || q->attrs == NULL)
			return false;
		return values_match(c, q->attrs[c->attr_ref - 1].value,
		    q->attrs[c->attr_ref - 1].len);
	case POLICY_COND_CLIENT_SUBJECT:
		return q->peer != NULL && values_match_str(c, q->peer->subject);
	case POLICY_COND_CLIENT_SAN:
		return q->peer != NULL && peer_san_match(c, q->peer);
	case POLICY_COND_SPIFFE_ID:
		return spiffe_match(c, q->spiffe);
	case POLICY_COND_TRUST_DOMAIN:
		return trust_domain_match(c, q->spiffe);
	}
	return false;	/* an unknown kind never grants anything */
}

size_t
policy_rule_resolve_attrs(struct policy_rule *rule, const char *const *attrs)
{
	size_t i, k, unknown = 0;

	for (i = 0; i < rule->nconds; i++) {
		struct policy_cond *c = &rule->conds[i];

		if (c->kind != POLICY_COND_ATTR)
			continue;
		c->attr_ref = 0;
		for (k = 0; c->attr != NULL && attrs != NULL && attrs[k] != NULL; k++)
			if (strcmp(attrs[k], c->attr) == 0) {
				c->attr_ref = (unsigned)k + 1;
				break;
			}
		if (c->attr_ref == 0)
			unknown++;
	}
	return unknown;
}

/* Whether rule names the client certificate, or the SPIFFE ID it carries. */
static bool
rule_names_peer(const struct policy_rule *rule)
{
	size_t i;

	for (i = 0; i < rule->nconds; i++)
		if (rule->conds[i].kind == POLICY_COND_CLIENT_SUBJECT ||
		    rule->conds[i].kind == POLICY_COND_CLIENT_SAN ||
		    rule->conds[i].kind == POLICY_COND_SPIFFE_ID ||
		    rule->conds[i].kind == POLICY_COND_TRUST_DOMAIN)
			return true;
	return false;
}

static bool
rule_holds(const struct policy_rule *rule, const struct policy_request *q)
{
	size_t i;

	for (i = 0; i < rule->nconds; i++) {
		if (!cond_holds(&rule->conds[i], q))
			return false;
	}
	return true;
}

void
policy_decide(const struct policy_route *r, const struct policy_request *q,
    struct policy_decision *d)
{
	size_t i;

	d->result = POLICY_DENY;
	d->rule = NULL;
	d->reason = "no rule matched";
	if (r == NULL || q == NULL)
		return;

	if (r->expires > 0 && q->now_s >= r->expires) {
		d->reason = "route expired";
		return;
	}
	for (i = 0; i < r->ndeny; i++) {
		if (rule_holds(&r->deny[i], q)) {
			d->rule = r->deny[i].name;
			d->reason = "denied by rule";
			goto out;
		}
	}
	for (i = 0; i < r->nallow; i++) {
		/* A rule without a word on the certificate would let any
		 * verified one in (a rule with no condition holds for all). */
		if (q->peer_only && !rule_names_peer(&r->allow[i]))
			continue;
		if (rule_holds(&r->allow[i], q)) {
			d->result = POLICY_ALLOW;
			d->rule = r->allow[i].name;
			d->reason = "allowed by rule";
			return;
		}
	}
 out:
	if (r->mode == POLICY_DRY_RUN)
		d->result = POLICY_WOULD_DENY;
}
