/* placeholder: vault-client/file_backend.c */
