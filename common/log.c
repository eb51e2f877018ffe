/* placeholder: common/log.c */
