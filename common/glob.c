/* placeholder: common/glob.c */
