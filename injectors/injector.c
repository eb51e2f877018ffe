/*
 * injector.c: the protocols credgate speaks, by routes.[].protocol: their
 * operations, and what each declares (struct inj_proto).  A new protocol
 * adds itself to both lists here and nothing else outside its folder.
 */
#include "config.h"

#include <string.h>

#include "injectors/injector.h"
#include "injectors/http/http.h"

extern const struct inj_ops inj_http_ops;

static const struct inj_ops *const inj_protocols[] = {
	&inj_http_ops,
};

const struct inj_ops *
inj_ops_find(const char *name)
{
	size_t i;

	for (i = 0; name != NULL && i < sizeof(inj_protocols) / sizeof(inj_protocols[0]); i++)
		if (strcmp(inj_protocols[i]->name, name) == 0)
			return inj_protocols[i];
	return NULL;
}

const struct inj_proto *const inj_protos[] = {
	&inj_http_proto,
	NULL,
};

const struct inj_proto *
inj_proto_find(const char *name)
{
	size_t i;

	if (name == NULL)
		return NULL;
	for (i = 0; inj_protos[i] != NULL; i++)
		if (strcmp(inj_protos[i]->name, name) == 0)
			return inj_protos[i];
	return NULL;
}
