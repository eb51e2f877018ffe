/*
 * unit.h: what every cmocka test file includes, in the order cmocka needs.
 */
#ifndef CG_UNIT_H
#define CG_UNIT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

/* The whole file, NUL-terminated (malloc'd); *len (may be NULL) gets its
 * size.  Fails the test when it cannot be read.  In tests/unit/unit.c. */
char *unit_read_file(const char *path, size_t *len);

#endif
