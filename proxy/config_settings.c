/* placeholder: proxy/config_settings.c */
