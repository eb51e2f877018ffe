/* placeholder: vault-client/secret.c */
