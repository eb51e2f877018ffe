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

#endif
