/* placeholder: common/errors.c */
