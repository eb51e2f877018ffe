/* placeholder: proxy/policy_test.c */
