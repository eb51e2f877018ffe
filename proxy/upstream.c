/* placeholder: proxy/upstream.c */
