/* Compiles llhttp's llhttp.c, as shipped by Debian's node-llhttp, into credgate.
 * Strict mode: no lenient parsing anywhere. */
#include "llhttp.c"
