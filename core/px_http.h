/*
 * px_http.h - a minimal HTTP/1.x responder for operations endpoints
 * (/metrics, /healthz, /readyz) of daemons that have no web server of their
 * own (the processor). The gateway serves these through libwebsockets.
 *
 * Two layers, as in picohttpparser + a server:
 *  - px_http_parse_request(): a stateless parser of the request head over
 *    (buf, len): returns the bytes consumed, -2 when incomplete, -1 when
 *    invalid. No allocation; method and path are views into buf.
 *  - px_httpd_*: a libuv TCP listener that reads one request per
 *    connection (head at most PX_HTTP_MAX_HEAD bytes, PX_HTTP_TIMEOUT_MS to
 *    send it), calls the handler, writes the response and closes. At most
 *    PX_HTTPD_MAX_CONNS connections at once; more are refused at accept.
 * Limits: GET and HEAD only, no bodies, no keep-alive, no TLS: meant for a
 * scrape endpoint on a private port.
 */
#ifndef PX_HTTP_H
#define PX_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "px_buf.h"

#define PX_HTTP_MAX_HEAD 8192
#define PX_HTTP_TIMEOUT_MS 5000
#define PX_HTTPD_MAX_CONNS 64

typedef struct px_http_req {
    const char *method;
    size_t method_len;
    const char *path; /* without the query string */
    size_t path_len;
    int minor_version; /* HTTP/1.x */
} px_http_req_t;

/* Parse a request head (request line and headers up to the empty line) in
 * buf[0..len). Returns the head's length on success, -2 if more bytes are
 * needed, -1 if it is not a valid HTTP/1.0 or 1.1 request head. Header
 * fields are checked for shape but not returned. */
int px_http_parse_request(const char *buf, size_t len, px_http_req_t *req);

/* The handler fills status, content type and body. path is NUL-terminated. */
typedef void (*px_httpd_handler)(void *arg, const char *path, int *status, const char **ctype,
                                 px_buf_t *body);

typedef struct px_httpd px_httpd_t;

/* Listen on host:port. NULL with the reason in errstr. */
px_httpd_t *px_httpd_start(uv_loop_t *loop, const char *host, int port, px_httpd_handler h,
                           void *arg, char *errstr, size_t errstr_size);
/* The port actually bound (useful after asking for port 0), or -1. */
int px_httpd_port(const px_httpd_t *s);

/* Close the listener and every open connection; frees itself once libuv
 * has closed the handles (run the loop). NULL is a no-op. */
void px_httpd_stop(px_httpd_t *s);

#endif
