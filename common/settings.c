/*
 * settings.c: how a settings row's check reports (see settings.h); the
 * formatting is here so that protocols need nothing from proxy/.
 */
#include <stdarg.h>
#include <stdio.h>

#include "settings.h"

#define SETTING_MSG_MAX 512

static void
report(const struct cg_setting_report *rep, bool warning, const char *rel, const char *fmt,
    va_list ap)
{
	char text[SETTING_MSG_MAX];

	if (rep == NULL || rep->report == NULL)
		return;
	vsnprintf(text, sizeof(text), fmt, ap);
	rep->report(rep->arg, warning, rel, text);
}

void
cg_setting_err(const struct cg_setting_report *rep, const char *rel, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	report(rep, false, rel, fmt, ap);
	va_end(ap);
}

void
cg_setting_warn(const struct cg_setting_report *rep, const char *rel, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	report(rep, true, rel, fmt, ap);
	va_end(ap);
}
