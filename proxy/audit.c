/* placeholder: proxy/audit.c */
