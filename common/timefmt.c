/* placeholder: common/timefmt.c */
