/* placeholder: proxy/conn.c */
