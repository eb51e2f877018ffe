/* placeholder: common/secmem.c */
