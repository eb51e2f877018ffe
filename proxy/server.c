/* placeholder: proxy/server.c */
