/* placeholder: policy/identity.c */
