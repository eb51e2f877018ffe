/*
 * policy_test.h: `credgate policy-test`: runs a file of cases against a
 * configuration's routes and rules, with no network and no keys.
 */
#ifndef CG_POLICY_TEST_H
#define CG_POLICY_TEST_H

#include <stdio.h>

#include "proxy/conf.h"

/*
 * Runs every case in cases_file (JSON, see credgate(8)) and prints one line
 * per case plus a diff for each mismatch to out.  Returns 0 when all pass,
 * 1 on any mismatch, 2 when the cases file is unusable (err on stderr).
 */
int policy_test_run(const struct cg_config *cfg, const char *cases_file, FILE *out);

#endif
