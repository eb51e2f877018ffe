/*
 * injector.c: the protocols credgate speaks, by routes.[].protocol.
 */
#include "config.h"

#include <string.h>

#include "injectors/injector.h"

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
