/*
 * gw_ws.c - libwebsockets on the shared libuv loop: the context and its
 * listener, and the one protocol callback with a switch, as in the lws
 * minimal examples. The callback is the transport's edge: it hands each
 * event to the layer that owns it and holds no logic of its own:
 *
 *   WebSocket   gw_conn.c (state, framing, write queue) under gw_msg.c
 *               (what messages mean); the handshake's identity here
 *   HTTP        gw_http.c (staging, writes, head checks) under the routes:
 *               /healthz, /readyz, /metrics and the demo files here,
 *               /api/v1/dev/token in gw_dev.c, /api/... in gw_rest.c
 *
 * Per-session memory is one union (a connection is WebSocket or HTTP), and
 * lws's own idle policy is replaced by one sweep a second (gw_conn.c).
 */
#include <stdlib.h>
#include <string.h>

#include "gw.h"
#include "px_log.h"
#include "px_time.h"

#define GW_CLOSE_UNAUTHORIZED 4401
#define GW_CLOSE_OVERLOAD 1013

typedef struct gw_pss {
    union {             /* one or the other: saves ~1 KiB per WebSocket */
        gw_conn_t conn; /* WebSocket connections (GW_PSS_WS) */
        gw_http_t http; /* HTTP requests (GW_PSS_HTTP) */
    };
    enum { GW_PSS_NONE = 0, GW_PSS_HTTP, GW_PSS_WS } kind;
} gw_pss_t;

/* ---- WebSocket handshake ------------------------------------------------ */

/* Who the connection is: a token in the query (access_token), or in
 * development mode the query's user, name and tenant. 0, or -1 with the
 * ERROR sent. */
static int ws_identity(gw_ctx_t *gw, gw_conn_t *c) {
    char buf[GW_HTTP_FIELD_BUF], err[256]; /* any field lws accepted: a long token is checked, not cut */
    const char *tok = lws_get_urlarg_by_name(c->wsi, "access_token=", buf, sizeof buf);
    if (tok && *tok) {
        if (gw_auth_token(&gw->cfg, tok, px_now_ms() / 1000, &c->who, err, sizeof err)) {
            gw_conn_send_error(c, "UNAUTHORIZED", err, NULL);
            return -1;
        }
    } else if (gw->cfg.dev_mode) {
        if (gw_http_dev_identity(c->wsi, &c->who)) {
            gw_conn_send_error(c, "UNAUTHORIZED", "dev-mode user/tenant must be identifiers", NULL);
            return -1;
        }
    } else {
        gw_conn_send_error(c, "UNAUTHORIZED", "access_token query parameter required", NULL);
        return -1;
    }
    return 0;
}

/* ESTABLISHED: the connection opens, and is refused (an ERROR, then the
 * close frame: DRAINING) on a wrong path, past limits.connections or
 * without an identity. */
static void ws_open(gw_ctx_t *gw, struct lws *wsi, gw_conn_t *c) {
    char path[GW_HTTP_FIELD_BUF];
    gw_conn_init(c, gw, wsi);
    if (lws_hdr_copy(wsi, path, sizeof path, WSI_TOKEN_GET_URI) <= 0 || strcmp(path, "/ws/presence") != 0) {
        gw_conn_send_error(c, "NOT_FOUND", "WebSocket endpoint is /ws/presence", NULL);
        gw_conn_drain(c, GW_CLOSE_UNAUTHORIZED);
        return;
    }
    if (gw->n_conns > gw->cfg.max_connections) {
        gw_conn_send_error(c, "OVERLOADED", "too many connections", NULL);
        gw_conn_drain(c, GW_CLOSE_OVERLOAD);
        return;
    }
    if (ws_identity(gw, c)) {
        gw_conn_drain(c, GW_CLOSE_UNAUTHORIZED);
        return;
    }
    /* permessage-deflate is negotiated when both sides offer it. A client
     * that offered any extension always queues (gw_conn.c can_write_now),
     * negotiated or not: lws matches extension names with their spaces
     * removed, so a text search of the header could miss one that lws
     * accepts. */
    c->direct = !gw->cfg.deflate || lws_hdr_total_length(wsi, WSI_TOKEN_EXTENSIONS) <= 0;
    PX_INFO(GW_COMP, "ws connected", "user=%s tenant=%s tab=%s conns=%d direct=%d", c->who.user_id,
            c->who.tenant, c->tab_id, gw->n_conns, c->direct);
}

static void ws_receive(gw_conn_t *c, const void *in, size_t len) {
    switch (gw_conn_receive(c, in, len)) {
    case GW_RX_TEXT:
        gw_msg_handle(c, c->rx.data ? c->rx.data : "", c->rx.len);
        gw_conn_rx_done(c);
        break;
    case GW_RX_BINARY:
        gw_msg_binary(c);
        gw_conn_rx_done(c);
        break;
    default:
        break;
    }
}

/* ---- HTTP routes -------------------------------------------------------- */

static int route_readyz(gw_ctx_t *gw, gw_http_t *h) {
    char body[256];
    bool kafka = gw_kafka_writable(gw), redis = gw_redis_readable(gw->redis) && gw_redis_subscribed(gw->redis);
    bool ready = kafka && redis;
    int n = snprintf(body, sizeof body, "%s kafka=%s redis=%s id=%.100s\n", ready ? "ready" : "not-ready",
                     kafka ? "up" : "down", redis ? "up" : "down", gw->cfg.gateway_id);
    return gw_http_reply(h, ready ? 200 : 503, "text/plain", body, (size_t)n);
}

static int route_metrics(gw_ctx_t *gw, gw_http_t *h) {
    px_buf_t b;
    px_buf_init(&b, 4u * 1024 * 1024);
    int rc = px_metrics_render(gw->metrics, &b);
    rc = rc ? -1 : gw_http_reply(h, 200, "text/plain; version=0.0.4", b.data ? b.data : "", b.len);
    px_buf_term(&b);
    return rc;
}

/* The demo page and the browser client (gateway/web/). 1 if path is one. */
static int route_web(gw_ctx_t *gw, struct lws *wsi, const char *path, int *rc) {
    static const struct {
        const char *path, *file, *ctype;
    } web[] = {
        {"/", "index.html", "text/html"},
        {"/index.html", "index.html", "text/html"},
        {"/demo.js", "demo.js", "text/javascript"},
        {"/presence-client.js", "presence-client.js", "text/javascript"},
        {"/use-presence.js", "use-presence.js", "text/javascript"},
    };
    char file[PX_CONF_STR_MAX + 64];
    for (size_t i = 0; i < sizeof web / sizeof web[0]; i++) {
        if (strcmp(path, web[i].path) != 0) continue;
        snprintf(file, sizeof file, "%s/%s", gw->cfg.web_dir, web[i].file);
        int n = lws_serve_http_file(wsi, file, web[i].ctype, NULL, 0);
        *rc = n < 0 || (n > 0 && lws_http_transaction_completed(wsi)) ? -1 : 0;
        return 1;
    }
    return 0;
}

static int http_route(gw_ctx_t *gw, struct lws *wsi, gw_http_t *h) {
    const char *path = h->path;
    int rc;
    if (strcmp(path, "/healthz") == 0) return gw_http_reply(h, 200, "text/plain", "ok\n", 3);
    if (strcmp(path, "/readyz") == 0) return route_readyz(gw, h);
    if (strcmp(path, "/metrics") == 0) return route_metrics(gw, h);
    if (strcmp(path, "/api/v1/dev/token") == 0) return gw_dev_token(gw, h);
    if (strncmp(path, "/api/", 5) == 0) return gw_rest_begin(gw, h);
    if (route_web(gw, wsi, path, &rc)) return rc;
    return gw_http_error(gw, h, 404, "NOT_FOUND", "no such route");
}

/* The session's HTTP request ends (answered, the client gone, or the
 * connection upgraded to a WebSocket). */
static void http_end(gw_pss_t *pss) {
    if (!pss || pss->kind != GW_PSS_HTTP) return;
    gw_rest_closed(&pss->http);
    gw_http_done(&pss->http);
    pss->kind = GW_PSS_NONE;
}

static int http_start(gw_ctx_t *gw, struct lws *wsi, gw_pss_t *pss, const char *path) {
    http_end(pss); /* a previous request on a kept-alive connection */
    pss->kind = GW_PSS_HTTP;
    gw_http_begin(&pss->http, wsi, path);
    return http_route(gw, wsi, &pss->http);
}

/* ---- the callback ------------------------------------------------------ */

static bool is_http(const gw_pss_t *pss) {
    return pss && pss->kind == GW_PSS_HTTP;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len) {
    gw_ctx_t *gw = lws_context_user(lws_get_context(wsi));
    gw_pss_t *pss = user;
    switch (reason) {
    case LWS_CALLBACK_HTTP:
        return http_start(gw, wsi, pss, in);
    case LWS_CALLBACK_HTTP_BODY:
        if (is_http(pss)) gw_rest_body(&pss->http, in, len);
        return 0;
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        return is_http(pss) ? gw_rest_body_done(gw, &pss->http) : 0;
    case LWS_CALLBACK_HTTP_WRITEABLE:
        if (is_http(pss)) return gw_http_writeable(wsi, &pss->http);
        break;
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
    case LWS_CALLBACK_CLOSED_HTTP:
        http_end(pss);
        break;
    case LWS_CALLBACK_FILTER_HTTP_CONNECTION:
        return gw_http_head_too_large(gw, wsi);
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        if (gw_http_head_too_large(gw, wsi)) return 1;
        if (gw_http_origin_ok(gw, wsi)) return 0;
        lws_return_http_status(wsi, HTTP_STATUS_FORBIDDEN, "origin not allowed");
        return 1;
    case LWS_CALLBACK_ESTABLISHED:
        http_end(pss);
        /* lws 4.1's default 1 KiB inflate buffer can leave the tail of a
         * larger inflated message undelivered until more input arrives;
         * 2^13 holds any message we accept in one piece (no-op if the
         * client did not negotiate permessage-deflate). */
        if (gw->cfg.deflate) lws_set_extension_option(wsi, "permessage-deflate", "rx_buf_size", "13");
        pss->kind = GW_PSS_WS;
        ws_open(gw, wsi, &pss->conn);
        return 0;
    case LWS_CALLBACK_RECEIVE:
        ws_receive(&pss->conn, in, len);
        return 0;
    case LWS_CALLBACK_RECEIVE_PONG:
        gw_conn_heard(&pss->conn);
        return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return gw_conn_writeable(&pss->conn);
    case LWS_CALLBACK_TIMER:
        return pss && pss->kind == GW_PSS_WS ? gw_conn_timer(&pss->conn) : 0;
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        if (pss->kind == GW_PSS_WS) gw_conn_peer_closed(&pss->conn);
        return 0;
    case LWS_CALLBACK_CLOSED:
        if (pss->kind != GW_PSS_WS) return 0;
        gw_msg_closed(&pss->conn);
        gw_conn_term(&pss->conn);
        pss->kind = GW_PSS_NONE;
        return 0;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

/* lws allocates rx_buffer_size of receive buffer per connection; a message
 * larger than one chunk arrives in several RECEIVE callbacks and is
 * reassembled in gw_conn_t.rx, so a small chunk keeps idle connections
 * cheap (4.4 KB instead of 7.4 KB each, docs/benchmarks.md). But with
 * permessage-deflate, lws 4.1 holds back the tail of an inflated message
 * larger than one chunk until more bytes arrive on the socket, so when
 * deflate is offered the chunk must hold the largest message accepted.
 * gw_ws_start picks the size. */
#define GW_RX_CHUNK 1024
static struct lws_protocols protocols[] = {
    /* tx_packet_size: one send() may carry a whole message of up to 64 KiB
     * (0 would cap it at the receive chunk, and every PRESENCE over 1 KiB
     * would wait for WRITEABLE rounds); it allocates nothing */
    {"presence", callback, sizeof(gw_pss_t), GW_RX_CHUNK, 0, NULL, 64u * 1024}, /* rx size set at start */
    {NULL, NULL, 0, 0, 0, NULL, 0}};

static void lws_log_emit(int level, const char *line) {
    size_t n = strlen(line);
    char buf[1024];
    /* a field cut at the head limits: head_too_large answers and logs it */
    if (strncmp(line, "header ", 7) == 0 && strstr(line, " exceeds limit ")) level = LLL_DEBUG;
    if (n >= sizeof buf) n = sizeof buf - 1;
    memcpy(buf, line, n);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) n--;
    buf[n] = '\0';
    px_log(level & LLL_ERR ? PX_LOG_ERROR : level & LLL_WARN ? PX_LOG_WARN : level & LLL_NOTICE ? PX_LOG_INFO : PX_LOG_DEBUG, "lws",
           buf, NULL);
}

static void on_idle_sweep(uv_timer_t *t) {
    gw_conn_idle_sweep(t->data);
}

int gw_ws_start(gw_ctx_t *gw, char *errstr, size_t errstr_size) {
    struct lws_context_creation_info info;
    void *foreign[1] = {gw->loop};
    int lvl = LLL_ERR | LLL_WARN;
    if (px_log_get_level() == PX_LOG_DEBUG) lvl |= LLL_NOTICE | LLL_INFO;
    lws_set_log_level(lvl, lws_log_emit);
    memset(&info, 0, sizeof info);
    info.port = (int)gw->cfg.http_port;
    info.iface = gw->cfg.http_host[0] ? gw->cfg.http_host : NULL;
    protocols[0].rx_buffer_size = gw->cfg.deflate ? (size_t)gw->cfg.max_msg_bytes : GW_RX_CHUNK;
    info.protocols = protocols;
    /* The vhost (the listener) is made below, not by lws_create_context:
     * with a foreign libuv loop, lws 4.1 returns a context whose default
     * vhost could not bind (and destroys it later in the loop), so a taken
     * port would look like success. FAIL_UPON_UNABLE_TO_BIND: an address
     * that is not on this machine fails too, instead of waiting for it. */
    info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_VALIDATE_UTF8 |
                   LWS_SERVER_OPTION_DISABLE_IPV6 | LWS_SERVER_OPTION_EXPLICIT_VHOSTS |
                   LWS_SERVER_OPTION_FAIL_UPON_UNABLE_TO_BIND;
    if (gw->cfg.reuse_port) info.port = CONTEXT_PORT_NO_LISTEN_SERVER; /* gw_listen.c listens */
    info.foreign_loops = foreign;
    static const struct lws_extension exts[] = {
        {"permessage-deflate", lws_extension_callback_pm_deflate,
         "permessage-deflate; client_no_context_takeover; client_max_window_bits"},
        {NULL, NULL, NULL}};
    if (gw->cfg.deflate) info.extensions = exts;
    /* lws's own idle policy is off (a policy whose hangup time is 0): it
     * keeps one timer per connection in a single sorted list and re-inserts
     * it on every frame received, a walk over all connections each time
     * (lws_dll2_add_sorted was 31% of the gateway's CPU at 10k connections
     * and 6k msgs/s). The idle sweep below does the same job in one pass a
     * second. */
    static lws_retry_bo_t no_validity; /* all zero: lws schedules no validity timer */
    info.retry_and_idle_policy = &no_validity;
    info.user = gw;
    info.pcontext = &gw->lws; /* lws clears it when the destroy completes */
    info.timeout_secs = 10;
    gw_http_head_limits(&info);
    gw->lws = lws_create_context(&info);
    if (!gw->lws)
        return px_errf(PX_EIO, errstr, errstr_size,
                       "cannot create the libwebsockets context (libuv event plugin missing?)");
    /* On failure the context stays in gw->lws: the caller's shutdown
     * (gw_ws_stop, the loop, gw_ws_stop) destroys it. */
    struct lws_vhost *vh = lws_create_vhost(gw->lws, &info);
    if (vh && gw->cfg.reuse_port && gw_listen_start(gw, vh, errstr, errstr_size)) return PX_EIO;
    int port = !vh ? -1 : gw->cfg.reuse_port ? (int)gw->cfg.http_port : lws_get_vhost_listen_port(vh);
    if (port <= 0) {
        /* lws logged its own line but not the reason: ask the kernel the
         * same question for the message (the same SO_REUSEADDR bind) */
        const char *why = "see the lws error above";
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)gw->cfg.http_port)};
        if (info.iface && inet_pton(AF_INET, info.iface, &sa.sin_addr) != 1)
            why = "not an IPv4 address or interface of this machine";
        else {
            int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
            if (fd >= 0) {
                setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
                if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) why = strerror(errno);
                close(fd);
            }
        }
        return px_errf(PX_EIO, errstr, errstr_size, "cannot listen on %s:%lld: %s (http.port, http.host)",
                       gw->cfg.http_host, (long long)gw->cfg.http_port, why);
    }
    PX_INFO(GW_COMP, "listening", "host=%s port=%d", gw->cfg.http_host, port);
    uv_timer_init(gw->loop, &gw->idle_timer);
    gw->idle_timer.data = gw;
    if (gw->cfg.idle_ping_s > 0) uv_timer_start(&gw->idle_timer, on_idle_sweep, 1000, 1000);
    return 0;
}

/* Begin (in the loop) or finish (after it) destroying the context; lws
 * sets gw->lws to NULL once it is gone. */
void gw_ws_stop(gw_ctx_t *gw) {
    gw_listen_stop(gw);
    if (gw->idle_timer.loop && !uv_is_closing((uv_handle_t *)&gw->idle_timer)) {
        uv_timer_stop(&gw->idle_timer);
        uv_close((uv_handle_t *)&gw->idle_timer, NULL);
    }
    if (gw->lws) lws_context_destroy(gw->lws);
}
