/* placeholder: policy/jwks.c */
