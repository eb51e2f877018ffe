/* placeholder: common/http_head.c */
