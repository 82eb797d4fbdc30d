/*
 * px_http.c - request-head parser and a one-request-per-connection libuv
 * responder for operations endpoints. See px_http.h for the contract.
 */
#include "px_http.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "px_err.h"
#include "px_log.h"

/* RFC 9110 tchar: the characters of a method or header name. */
static bool is_tchar(unsigned char c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Find the end of the line starting at p; returns the index of '\n' in
 * buf, -2 if no newline yet. The line must not hold CR except before LF,
 * nor NUL or other controls but HTAB (-1). */
static long line_end(const char *buf, size_t len, size_t p) {
    for (size_t i = p; i < len; i++) {
        unsigned char c = (unsigned char)buf[i];
        if (c == '\n') return (long)i;
        if (c == '\r') {
            if (i + 1 == len) return -2;
            if (buf[i + 1] != '\n') return -1;
            continue;
        }
        if ((c < 0x20 && c != '\t') || c == 0x7f) return -1;
    }
    return -2;
}

int px_http_parse_request(const char *buf, size_t len, px_http_req_t *req) {
    size_t p = 0;
    long e = line_end(buf, len, 0);
    if (e < 0) return (int)e;
    size_t le = (size_t)e;
    if (le > 0 && buf[le - 1] == '\r') le--;
    /* method */
    while (p < le && is_tchar((unsigned char)buf[p])) p++;
    if (p == 0 || p >= le || buf[p] != ' ') return -1;
    req->method = buf;
    req->method_len = p;
    p++;
    /* request-target: visible ASCII, no spaces */
    size_t t = p;
    while (p < le && (unsigned char)buf[p] > 0x20 && (unsigned char)buf[p] < 0x7f) p++;
    if (p == t || p >= le || buf[p] != ' ') return -1;
    req->path = buf + t;
    const char *q = memchr(buf + t, '?', p - t);
    req->path_len = q ? (size_t)(q - (buf + t)) : p - t;
    p++;
    /* version */
    if (le - p != 8 || memcmp(buf + p, "HTTP/1.", 7) != 0 || (buf[p + 7] != '0' && buf[p + 7] != '1'))
        return -1;
    req->minor_version = buf[p + 7] - '0';
    /* header fields until the empty line */
    size_t line = (size_t)e + 1;
    for (;;) {
        e = line_end(buf, len, line);
        if (e < 0) return (int)e;
        le = (size_t)e;
        if (le > line && buf[le - 1] == '\r') le--;
        if (le == line) return (int)(e + 1); /* empty line: end of head */
        size_t n = line;
        while (n < le && is_tchar((unsigned char)buf[n])) n++;
        if (n == line || n >= le || buf[n] != ':') return -1;
        line = (size_t)e + 1;
    }
}

/* ---- the responder --------------------------------------------------------- */

typedef struct px_httpd_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t wreq;
    struct px_httpd *srv;
    struct px_httpd_conn *next, *prev;
    char head[PX_HTTP_MAX_HEAD];
    size_t len;
    px_buf_t out;
    int nopen;
    bool responding;
} px_httpd_conn_t;

struct px_httpd {
    uv_tcp_t listener;
    px_httpd_handler handler;
    void *arg;
    px_httpd_conn_t *conns;
    int n_conns;
    bool stopping;
    int nopen; /* 1 while the listener is open */
};

static void srv_maybe_free(struct px_httpd *s) {
    if (s->stopping && s->nopen == 0 && !s->conns) free(s);
}

static void conn_closed(uv_handle_t *h) {
    px_httpd_conn_t *c = h->data;
    if (--c->nopen > 0) return;
    struct px_httpd *s = c->srv;
    if (c->prev) c->prev->next = c->next;
    else s->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    s->n_conns--;
    px_buf_term(&c->out);
    free(c);
    srv_maybe_free(s);
}

static void conn_close(px_httpd_conn_t *c) {
    if (uv_is_closing((uv_handle_t *)&c->tcp)) return;
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, conn_closed);
    uv_close((uv_handle_t *)&c->tcp, conn_closed);
}

static void on_written(uv_write_t *w, int status) { conn_close(w->data); }

static void respond(px_httpd_conn_t *c, int status, const char *ctype, const char *body,
                    size_t body_len, bool head_only) {
    const char *reason = status == 200 ? "OK" : status == 400 ? "Bad Request" : status == 404 ? "Not Found"
                         : status == 405 ? "Method Not Allowed" : status == 431 ? "Request Header Fields Too Large"
                         : status == 503 ? "Service Unavailable" : "Error";
    px_buf_t hdr;
    px_buf_init(&hdr, 512);
    int rc = px_buf_printf(&hdr, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                                 "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
                           status, reason, ctype, body_len);
    if (!rc) rc = px_buf_append(&c->out, hdr.data, hdr.len);
    if (!rc && !head_only) rc = px_buf_append(&c->out, body, body_len);
    px_buf_term(&hdr);
    if (rc) {
        conn_close(c);
        return;
    }
    c->responding = true;
    uv_buf_t b = uv_buf_init(c->out.data, (unsigned)c->out.len);
    c->wreq.data = c;
    if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0) conn_close(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b) {
    px_httpd_conn_t *c = h->data;
    b->base = c->head + c->len;
    b->len = sizeof c->head - c->len;
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b) {
    px_httpd_conn_t *c = st->data;
    if (n < 0) {
        conn_close(c);
        return;
    }
    if (c->responding || n == 0) return;
    c->len += (size_t)n;
    px_http_req_t req;
    int r = px_http_parse_request(c->head, c->len, &req);
    if (r == -2 && c->len < sizeof c->head) return;
    uv_read_stop(st);
    static const char bad[] = "bad request\n";
    if (r == -2) {
        respond(c, 431, "text/plain", bad, sizeof bad - 1, false);
        return;
    }
    if (r < 0) {
        respond(c, 400, "text/plain", bad, sizeof bad - 1, false);
        return;
    }
    bool head = req.method_len == 4 && memcmp(req.method, "HEAD", 4) == 0;
    if (!head && !(req.method_len == 3 && memcmp(req.method, "GET", 3) == 0)) {
        static const char m[] = "GET or HEAD only\n";
        respond(c, 405, "text/plain", m, sizeof m - 1, false);
        return;
    }
    char path[256];
    if (req.path_len >= sizeof path) {
        static const char nf[] = "not found\n";
        respond(c, 404, "text/plain", nf, sizeof nf - 1, head);
        return;
    }
    memcpy(path, req.path, req.path_len);
    path[req.path_len] = '\0';
    int status = 404;
    const char *ctype = "text/plain";
    px_buf_t body;
    px_buf_init(&body, 16u * 1024 * 1024);
    c->srv->handler(c->srv->arg, path, &status, &ctype, &body);
    respond(c, status, ctype, body.data ? body.data : "", body.len, head);
    px_buf_term(&body);
}

static void on_timeout(uv_timer_t *t) {
    px_httpd_conn_t *c = t->data;
    if (!c->responding) conn_close(c);
}

static void on_connection(uv_stream_t *l, int status) {
    struct px_httpd *s = l->data;
    if (status < 0 || s->stopping) return;
    px_httpd_conn_t *c = calloc(1, sizeof *c);
    if (!c) return;
    c->srv = s;
    px_buf_init(&c->out, 32u * 1024 * 1024);
    uv_tcp_init(l->loop, &c->tcp);
    uv_timer_init(l->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->nopen = 2;
    c->next = s->conns;
    if (s->conns) s->conns->prev = c;
    s->conns = c;
    s->n_conns++;
    if (uv_accept(l, (uv_stream_t *)&c->tcp) != 0 || s->n_conns > PX_HTTPD_MAX_CONNS) {
        conn_close(c);
        return;
    }
    uv_timer_start(&c->timer, on_timeout, PX_HTTP_TIMEOUT_MS, 0);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void listener_closed(uv_handle_t *h) {
    struct px_httpd *s = h->data;
    s->nopen = 0;
    srv_maybe_free(s);
}

px_httpd_t *px_httpd_start(uv_loop_t *loop, const char *host, int port, px_httpd_handler h,
                           void *arg, char *errstr, size_t errstr_size) {
    struct sockaddr_in addr;
    int rc = uv_ip4_addr(host, port, &addr);
    if (rc) {
        px_errf(PX_ECONFIG, errstr, errstr_size, "bad address %s:%d: %s", host, port, uv_strerror(rc));
        return NULL;
    }
    struct px_httpd *s = calloc(1, sizeof *s);
    if (!s) {
        px_errf(PX_ENOMEM, errstr, errstr_size, "out of memory");
        return NULL;
    }
    s->handler = h;
    s->arg = arg;
    uv_tcp_init(loop, &s->listener);
    s->listener.data = s;
    s->nopen = 1;
    rc = uv_tcp_bind(&s->listener, (const struct sockaddr *)&addr, 0);
    if (!rc) rc = uv_listen((uv_stream_t *)&s->listener, 64, on_connection);
    if (rc) {
        px_errf(PX_EIO, errstr, errstr_size, "cannot listen on %s:%d: %s", host, port, uv_strerror(rc));
        s->stopping = true;
        uv_close((uv_handle_t *)&s->listener, listener_closed);
        return NULL;
    }
    return s;
}

int px_httpd_port(const px_httpd_t *s) {
    struct sockaddr_in a;
    int n = sizeof a;
    if (!s || uv_tcp_getsockname(&s->listener, (struct sockaddr *)&a, &n) != 0) return -1;
    return ntohs(a.sin_port);
}

void px_httpd_stop(px_httpd_t *s) {
    if (!s || s->stopping) return;
    s->stopping = true;
    for (px_httpd_conn_t *c = s->conns; c; c = c->next) conn_close(c);
    uv_close((uv_handle_t *)&s->listener, listener_closed);
}
