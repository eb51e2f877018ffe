/*
 * injector.c: the protocols credgate speaks, by routes.[].protocol: their
 * declarations (struct inj_proto), each with its operations.  A new
 * protocol adds itself to the list here and nothing else outside its
 * folder.
 */
#include "config.h"

#include <string.h>

#include "injectors/injector.h"
#include "injectors/http/http.h"
#include "injectors/postgres/pg.h"

const struct inj_proto *const inj_protos[] = {
	&inj_http_proto,
	&inj_pg_proto,
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
