/* placeholder: proxy/http_parse.c */
