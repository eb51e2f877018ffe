/* placeholder: common/json_strict.c */
