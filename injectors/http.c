/* placeholder: injectors/http.c */
