/* placeholder: vault-client/cache.c */
