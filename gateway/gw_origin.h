/*
 * gw_origin.h - the WebSocket origin allow-list (http.allowed_origins) as a
 * pure decision; the handshake's filter (gw_http.c) reads the header and
 * refuses with 403. Unit-tested with a hostile table (test_gw_origin.c).
 */
#ifndef PX_GW_ORIGIN_H
#define PX_GW_ORIGIN_H

#include <stdbool.h>
#include <stddef.h>

/* Whether a handshake whose Origin header is origin[0..len) may proceed.
 * `list` is comma-separated; spaces around an entry are ignored and an
 * empty entry matches nothing. An entry matches byte for byte (case
 * included: browsers send the origin as serialised, lower-case scheme and
 * host). An empty list allows every origin. A missing or empty header
 * (origin NULL or len 0) passes: browsers always send one, so it is a
 * non-browser client, which could send any value anyway. origin may hold
 * any bytes, NUL included. */
bool gw_origin_allowed(const char *list, const char *origin, size_t len);

#endif
