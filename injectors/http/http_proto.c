/*
 * http_proto.c: what HTTP declares as a protocol of credgate: its name and
 * the request attributes it gives policy.  Owns no state.
 */
#include <stddef.h>

#include "injectors/http/http.h"

/* In the order of enum inj_http_attr. */
static const char *const http_attrs[] = {
	[INJ_HTTP_ATTR_METHOD] = "method",
	[INJ_HTTP_ATTR_PATH] = "path",
	[INJ_HTTP_NATTRS] = NULL,
};

const struct inj_proto inj_http_proto = {
	.name = "http",
	.attrs = http_attrs,
};
