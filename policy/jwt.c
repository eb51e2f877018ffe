/* placeholder: policy/jwt.c */
