/* Compiles llhttp's api.c, as shipped by Debian's node-llhttp, into credgate.
 * Strict mode: no lenient parsing anywhere. */
#include "api.c"
