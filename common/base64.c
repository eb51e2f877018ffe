/* placeholder: common/base64.c */
