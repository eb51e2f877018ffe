/* placeholder: proxy/config.c */
