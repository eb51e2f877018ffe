/* Compiles llhttp's http.c, as shipped by Debian's node-llhttp, into credgate.
 * Strict mode: no lenient parsing anywhere. */
#include "http.c"
