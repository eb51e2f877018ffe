/* placeholder: policy/rules.c */
