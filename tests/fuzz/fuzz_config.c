/*
 * fuzz_config.c: libFuzzer harness for cg_config_load_string() and
 * cg_config_dump().
 *
 * The input is credgate.conf text, loaded without touching the files it
 * names.  Whenever it loads, the dump of the result must load again and
 * dump to the same text: the property `credgate -T` promises.  Inputs that
 * use libconfig's @include are skipped, since they would read files of
 * this machine.
 */
#include "config.h"	/* autoconf */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
const char *__lsan_default_suppressions(void);

/*
 * libconfig 1.5 leaks the buffer of a string literal that a syntax error
 * follows (strbuf_append in its scanner).  That is its bug, not one in
 * credgate; every allocation of ours has a credgate frame on top.
 */
const char *
__lsan_default_suppressions(void)
{
	return "leak:libconfig.so\n";
}

#define FUZZ_MAX_INPUT (64 * 1024)

static char *
dump(const struct cg_config *cfg)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);

	if (f == NULL)
		abort();
	if (cg_config_dump(cfg, f) != 0)
		abort();
	fclose(f);
	return out;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cg_errors errs = { 0 };
	struct cg_config *cfg = NULL, *again = NULL;
	char *text, *d1 = NULL, *d2 = NULL;
	int r;

	if (size > FUZZ_MAX_INPUT)
		return 0;
	if ((text = malloc(size + 1)) == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (strstr(text, "@include") != NULL)
		goto out;

	r = cg_config_load_string(text, "fuzz.conf", 0, &cfg, &errs);
	if ((r == 0) != (cfg != NULL))
		abort();
	if (r != 0) {
		/* every failure says why */
		if (errs.n == 0 && r == CG_ERR_FORMAT)
			abort();
		goto out;
	}

	d1 = dump(cfg);
	cg_errors_clear(&errs);
	if (cg_config_load_string(d1, "dump.conf", 0, &again, &errs) != 0) {
		fprintf(stderr, "the dump does not load:\n%s\n", d1);
		for (size_t i = 0; i < errs.n; i++)
			fprintf(stderr, "%s\n", errs.msgs[i]);
		abort();
	}
	d2 = dump(again);
	if (strcmp(d1, d2) != 0) {
		fprintf(stderr, "dump, load, dump differs:\n%s\n---\n%s\n", d1, d2);
		abort();
	}
 out:
	cg_config_free(cfg);
	cg_config_free(again);
	cg_errors_clear(&errs);
	free(d1);
	free(d2);
	free(text);
	return 0;
}
