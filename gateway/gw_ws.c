/*
 * gw_ws.c - libwebsockets on the shared libuv loop: WebSocket /ws/presence,
 * the HTTP routes (/healthz, /readyz, /metrics) and the static demo files.
 *
 * One protocol callback with a switch, as in the lws minimal examples. The
 * receive path parses, publishes and queues replies; replies are written in
 * SERVER_WRITEABLE, one lws_write per callback, with LWS_PRE headroom.
 * A connection's outbound queue is bounded in bytes (http.max_out_bytes):
 * a client that does not read is closed with 1008 rather than grow memory.
 *
 * Limits of this version (walking skeleton): LOCK/UNLOCK answer
 * ERROR UNSUPPORTED; REST presence routes, rate limits, origin checks and
 * permessage-deflate come with the gateway issue (docs/architecture.md).
 */
#include <stdlib.h>
#include <string.h>

#include "gw.h"
#include "px_log.h"
#include "px_time.h"

#define GW_CLOSE_UNAUTHORIZED 4401
#define GW_CLOSE_OVERLOAD 1013

typedef struct gw_pss {
    gw_conn_t conn;       /* WebSocket connections */
    px_buf_t http_body;   /* HTTP responses: LWS_PRE zero bytes, then the body */
    bool is_ws;
    bool close_after_flush;
    bool close_sent;
    uint16_t close_code;
} gw_pss_t;

/* ---- outbound ---------------------------------------------------------- */

int gw_conn_send(gw_conn_t *c, const char *text, size_t len) {
    gw_ctx_t *gw = c->gw;
    if (c->closing) return PX_EIO;
    if (c->out_bytes + len > (size_t)gw->cfg.max_out_bytes) {
        px_counter_add(gw->m_errors, 1);
        PX_WARN(GW_COMP, "slow client closed", "user=%s queued_bytes=%zu", c->who.user_id,
                c->out_bytes);
        c->closing = true;
        lws_callback_on_writable(c->wsi);
        return PX_ENOMEM;
    }
    gw_out_t *o = malloc(sizeof *o + LWS_PRE + len);
    if (!o) return PX_ENOMEM;
    o->next = NULL;
    o->len = len;
    memcpy(o->data + LWS_PRE, text, len);
    if (c->out_tail) c->out_tail->next = o;
    else c->out_head = o;
    c->out_tail = o;
    c->out_bytes += len;
    lws_callback_on_writable(c->wsi);
    return 0;
}

void gw_conn_send_error(gw_conn_t *c, const char *code, const char *msg, const char *request_id) {
    px_buf_t b;
    px_buf_init(&b, 1024);
    px_counter_add(c->gw->m_errors, 1);
    if (px_proto_write_error(&b, code, msg, request_id) == 0) gw_conn_send(c, b.data, b.len);
    px_buf_term(&b);
}

static void conn_free_queue(gw_conn_t *c) {
    for (gw_out_t *o = c->out_head, *n; o; o = n) {
        n = o->next;
        free(o);
    }
    c->out_head = c->out_tail = NULL;
    c->out_bytes = 0;
}

/* ---- inbound ----------------------------------------------------------- */

static void event_from_sub(const gw_conn_t *c, const gw_sub_t *s, px_pres_type_t type,
                           px_event_t *ev) {
    px_event_init(ev, PX_KIND_PRESENCE);
    ev->type = type;
    ev->key = s->ent->key;
    ev->ts_ms = px_now_ms();
    snprintf(ev->tab_id, sizeof ev->tab_id, "%s", c->tab_id);
    snprintf(ev->user_id, sizeof ev->user_id, "%s", c->who.user_id);
    snprintf(ev->user_name, sizeof ev->user_name, "%s", c->who.user_name);
    ev->mode = s->mode;
    ev->dirty = s->dirty;
    ev->status = s->status;
}

/* Publish one presence event for sub; on failure answer UNAVAILABLE. */
static int publish(gw_conn_t *c, gw_sub_t *s, px_pres_type_t type, const px_msg_t *m) {
    px_event_t ev;
    event_from_sub(c, s, type, &ev);
    if (m) {
        snprintf(ev.field, sizeof ev.field, "%s", m->field);
        snprintf(ev.cursor, sizeof ev.cursor, "%s", m->cursor);
    }
    if (gw_kafka_publish(c->gw, &ev)) {
        if (m) gw_conn_send_error(c, "UNAVAILABLE", "cannot publish to Kafka", m->request_id);
        return -1;
    }
    return 0;
}

static void apply_hb_fields(gw_sub_t *s, const px_msg_t *m) {
    if (m->has_mode) s->mode = m->mode;
    if (m->has_dirty) s->dirty = m->dirty;
    if (m->has_status) s->status = m->status;
}

static void handle_message(gw_conn_t *c, const char *buf, size_t len) {
    gw_ctx_t *gw = c->gw;
    px_msg_t m;
    const char *code = NULL;
    char err[256];
    px_counter_add(gw->m_msgs_in, 1);
    if (px_proto_parse(buf, len, &m, &code, err, sizeof err)) {
        gw_conn_send_error(c, code ? code : "BAD_JSON", err, NULL);
        return;
    }
    if (m.tenant[0] && strcmp(m.tenant, c->who.tenant) != 0) {
        gw_conn_send_error(c, "FORBIDDEN", "tenant does not match the token", m.request_id);
        return;
    }
    if (m.type == PX_MSG_LOCK || m.type == PX_MSG_UNLOCK) {
        gw_conn_send_error(c, "UNSUPPORTED", "locks are not served by this gateway version",
                           m.request_id);
        return;
    }
    px_key_t key;
    gw_sub_t *target = NULL;
    if (m.has_target) {
        if (px_key_set(&key, c->who.tenant, m.entity, m.id, err, sizeof err)) {
            gw_conn_send_error(c, "BAD_FIELD", err, m.request_id);
            return;
        }
        target = gw_subs_find(c, &key);
    } else if (m.type != PX_MSG_HB) {
        if (c->n_subs != 1) {
            gw_conn_send_error(c, "NOT_SUBSCRIBED", "no entity and id, and not exactly one subscription", m.request_id);
            return;
        }
        target = c->subs;
    }

    switch (m.type) {
    case PX_MSG_SUB: {
        if (!m.has_target) {
            gw_conn_send_error(c, "BAD_FIELD", "SUB needs entity and id", m.request_id);
            return;
        }
        if (m.tab_id[0] && !c->subs) memcpy(c->tab_id, m.tab_id, sizeof c->tab_id);
        const char *ecode = NULL;
        gw_sub_t *s = target ? target : gw_subs_add(gw, c, &key, &ecode);
        if (!s) {
            gw_conn_send_error(c, ecode, "subscription refused", m.request_id);
            return;
        }
        apply_hb_fields(s, &m);
        if (publish(c, s, PX_PRES_SUB, &m) == 0) gw_redis_refresh(gw, s->ent);
        return;
    }
    case PX_MSG_HB:
        if (m.has_target) {
            if (!target) {
                gw_conn_send_error(c, "NOT_SUBSCRIBED", "HB for an entity not subscribed",
                                   m.request_id);
                return;
            }
            apply_hb_fields(target, &m);
            publish(c, target, PX_PRES_HB, &m);
            return;
        }
        for (gw_sub_t *s = c->subs; s; s = s->next_in_conn) {
            apply_hb_fields(s, &m);
            if (publish(c, s, PX_PRES_HB, &m)) return;
        }
        return;
    case PX_MSG_UNSUB:
        if (!target) {
            gw_conn_send_error(c, "NOT_SUBSCRIBED", "UNSUB for an entity not subscribed",
                               m.request_id);
            return;
        }
        publish(c, target, PX_PRES_UNSUB, &m);
        gw_subs_remove(gw, target);
        return;
    default:
        return;
    }
}

/* ---- connection lifecycle ---------------------------------------------- */

static int conn_open(gw_ctx_t *gw, struct lws *wsi, gw_pss_t *pss) {
    gw_conn_t *c = &pss->conn;
    char buf[2048], err[256];
    memset(pss, 0, sizeof *pss);
    pss->is_ws = true;
    c->wsi = wsi;
    c->gw = gw;
    px_buf_init(&c->rx, PX_PROTO_MAX_MSG);
    gw->n_conns++;
    px_gauge_set(gw->m_conns, gw->n_conns);
    snprintf(c->tab_id, sizeof c->tab_id, "%.100s-%llu", gw->cfg.gateway_id,
             (unsigned long long)++gw->tab_seq);

    if (lws_hdr_copy(wsi, buf, sizeof buf, WSI_TOKEN_GET_URI) <= 0 ||
        strcmp(buf, "/ws/presence") != 0) {
        gw_conn_send_error(c, "NOT_FOUND", "WebSocket endpoint is /ws/presence", NULL);
        goto refuse;
    }
    if (gw->n_conns > gw->cfg.max_connections) {
        gw_conn_send_error(c, "OVERLOADED", "too many connections", NULL);
        pss->close_code = GW_CLOSE_OVERLOAD;
        pss->close_after_flush = true;
        return 0;
    }
    const char *tok = lws_get_urlarg_by_name(wsi, "access_token=", buf, sizeof buf);
    if (tok && *tok) {
        if (gw_auth_token(&gw->cfg, tok, px_now_ms() / 1000, &c->who, err, sizeof err)) {
            gw_conn_send_error(c, "UNAUTHORIZED", err, NULL);
            goto refuse;
        }
    } else if (gw->cfg.dev_mode) {
        const char *v;
        char a[256];
        v = lws_get_urlarg_by_name(wsi, "user=", a, sizeof a);
        snprintf(c->who.user_id, sizeof c->who.user_id, "%s", v && *v ? v : "dev");
        v = lws_get_urlarg_by_name(wsi, "name=", a, sizeof a);
        snprintf(c->who.user_name, sizeof c->who.user_name, "%s", v && *v ? v : c->who.user_id);
        v = lws_get_urlarg_by_name(wsi, "tenant=", a, sizeof a);
        snprintf(c->who.tenant, sizeof c->who.tenant, "%s", v && *v ? v : "dev");
        if (!px_key_part_valid(c->who.user_id, strlen(c->who.user_id)) ||
            !px_key_part_valid(c->who.tenant, strlen(c->who.tenant))) {
            gw_conn_send_error(c, "UNAUTHORIZED", "dev-mode user/tenant must be identifiers", NULL);
            goto refuse;
        }
    } else {
        gw_conn_send_error(c, "UNAUTHORIZED", "access_token query parameter required", NULL);
        goto refuse;
    }
    PX_INFO(GW_COMP, "ws connected", "user=%s tenant=%s tab=%s conns=%d", c->who.user_id,
            c->who.tenant, c->tab_id, gw->n_conns);
    return 0;
refuse:
    pss->close_code = GW_CLOSE_UNAUTHORIZED;
    pss->close_after_flush = true;
    return 0;
}

static void conn_close(gw_ctx_t *gw, gw_pss_t *pss) {
    gw_conn_t *c = &pss->conn;
    while (c->subs) {
        gw_sub_t *s = c->subs;
        publish(c, s, PX_PRES_UNSUB, NULL);
        gw_subs_remove(gw, s);
    }
    conn_free_queue(c);
    px_buf_term(&c->rx);
    gw->n_conns--;
    px_gauge_set(gw->m_conns, gw->n_conns);
    if (c->who.user_id[0])
        PX_INFO(GW_COMP, "ws closed", "user=%s tab=%s conns=%d", c->who.user_id, c->tab_id,
                gw->n_conns);
}

/* Close with `code`. In lws 4.1 a -1 from SERVER_WRITEABLE (and a user
 * timeout) is taken as a dead socket and no close frame is sent, yet
 * clients need the code (4401 says "do not retry with this token"). So
 * write the close frame here (lws_write's CLOSE opcode, value 4, which the
 * public enum leaves out), then give the peer 5 s to answer before lws
 * drops the connection. */
#define GW_LWS_WRITE_CLOSE ((enum lws_write_protocol)4)
static int conn_send_close(gw_pss_t *pss, uint16_t code) {
    unsigned char frame[LWS_PRE + 2];
    if (pss->close_sent) return 0;
    pss->close_sent = true;
    frame[LWS_PRE] = (unsigned char)(code >> 8);
    frame[LWS_PRE + 1] = (unsigned char)(code & 0xff);
    if (lws_write(pss->conn.wsi, frame + LWS_PRE, 2, GW_LWS_WRITE_CLOSE) < 0) return -1;
    lws_set_timeout(pss->conn.wsi, PENDING_TIMEOUT_CLOSE_ACK, 5);
    return 0;
}

/* One lws_write per callback: a message, or (when the queue is empty and
 * the connection is to be closed) the close frame. */
static int conn_writeable(gw_pss_t *pss) {
    gw_conn_t *c = &pss->conn;
    if (pss->close_sent) return 0;
    if (c->closing && !pss->close_after_flush) return conn_send_close(pss, LWS_CLOSE_STATUS_POLICY_VIOLATION);
    gw_out_t *o = c->out_head;
    if (!o) return pss->close_after_flush ? conn_send_close(pss, pss->close_code) : 0;
    c->out_head = o->next;
    if (!c->out_head) c->out_tail = NULL;
    c->out_bytes -= o->len;
    int n = lws_write(c->wsi, o->data + LWS_PRE, o->len, LWS_WRITE_TEXT);
    free(o);
    if (n < 0) return -1;
    px_counter_add(c->gw->m_msgs_out, 1);
    if (c->out_head || pss->close_after_flush) lws_callback_on_writable(c->wsi);
    return 0;
}

static void conn_receive(gw_pss_t *pss, struct lws *wsi, const void *in, size_t len) {
    gw_conn_t *c = &pss->conn;
    if (pss->close_after_flush) return; /* refused: ignore input */
    bool final = lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi);
    if (lws_frame_is_binary(wsi)) c->rx_binary = true;
    else if (!c->rx_overflow && px_buf_append(&c->rx, in, len)) c->rx_overflow = true;
    if (!final) return;
    if (c->rx_binary) gw_conn_send_error(c, "BAD_FRAME", "binary frames are not accepted", NULL);
    else if (c->rx_overflow) gw_conn_send_error(c, "TOO_LARGE", "message exceeds the size limit", NULL);
    else handle_message(c, c->rx.data ? c->rx.data : "", c->rx.len);
    px_buf_reset(&c->rx);
    c->rx_binary = c->rx_overflow = false;
}

/* ---- HTTP -------------------------------------------------------------- */

static int http_reply(struct lws *wsi, gw_pss_t *pss, unsigned status, const char *ctype,
                      const char *body, size_t len) {
    unsigned char hdr[LWS_PRE + 1024], *start = &hdr[LWS_PRE], *p = start,
                                        *end = &hdr[sizeof hdr - 1];
    static const char zeros[LWS_PRE];
    px_buf_init(&pss->http_body, LWS_PRE + 8u * 1024 * 1024);
    if (px_buf_append(&pss->http_body, zeros, LWS_PRE) ||
        px_buf_append(&pss->http_body, body, len))
        return -1;
    if (lws_add_http_common_headers(wsi, status, ctype, (lws_filepos_t)len, &p, end) ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
                                     (const unsigned char *)"no-store", 8, &p, end) ||
        lws_finalize_write_http_header(wsi, start, &p, end))
        return -1;
    lws_callback_on_writable(wsi);
    return 0;
}

static int http_route(gw_ctx_t *gw, struct lws *wsi, gw_pss_t *pss, const char *path) {
    char file[PX_CONF_STR_MAX + 64];
    if (strcmp(path, "/healthz") == 0) return http_reply(wsi, pss, 200, "text/plain", "ok\n", 3);
    if (strcmp(path, "/readyz") == 0) {
        char body[256];
        bool ready = gw->kafka_up && gw->rcmd_up && gw->rsub_up;
        int n = snprintf(body, sizeof body, "%s kafka=%s redis=%s\n", ready ? "ready" : "not-ready",
                         gw->kafka_up ? "up" : "down", gw->rcmd_up && gw->rsub_up ? "up" : "down");
        return http_reply(wsi, pss, ready ? 200 : 503, "text/plain", body, (size_t)n);
    }
    if (strcmp(path, "/metrics") == 0) {
        px_buf_t b;
        px_buf_init(&b, 4u * 1024 * 1024);
        int rc = px_metrics_render(gw->metrics, &b);
        rc = rc ? -1 : http_reply(wsi, pss, 200, "text/plain; version=0.0.4", b.data ? b.data : "", b.len);
        px_buf_term(&b);
        return rc;
    }
    const char *name = NULL, *ctype = NULL;
    if (strcmp(path, "/") == 0 || strcmp(path, "/index.html") == 0) {
        name = "index.html";
        ctype = "text/html";
    } else if (strcmp(path, "/presence-client.js") == 0) {
        name = "presence-client.js";
        ctype = "text/javascript";
    }
    if (name) {
        snprintf(file, sizeof file, "%s/%s", gw->cfg.web_dir, name);
        int n = lws_serve_http_file(wsi, file, ctype, NULL, 0);
        if (n < 0 || (n > 0 && lws_http_transaction_completed(wsi))) return -1;
        return 0;
    }
    static const char nf[] = "{\"success\":false,\"error\":{\"code\":\"NOT_FOUND\",\"message\":\"no such route\"}}";
    return http_reply(wsi, pss, 404, "application/json", nf, sizeof nf - 1);
}

static int http_writeable(struct lws *wsi, gw_pss_t *pss) {
    if (!pss->http_body.data) return 0;
    int n = lws_write(wsi, (unsigned char *)pss->http_body.data + LWS_PRE,
                      pss->http_body.len - LWS_PRE, LWS_WRITE_HTTP_FINAL);
    px_buf_term(&pss->http_body);
    if (n < 0) return -1;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/* ---- the callback ------------------------------------------------------ */

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len) {
    gw_ctx_t *gw = lws_context_user(lws_get_context(wsi));
    gw_pss_t *pss = user;
    switch (reason) {
    case LWS_CALLBACK_HTTP:
        memset(pss, 0, sizeof *pss);
        return http_route(gw, wsi, pss, in);
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return http_writeable(wsi, pss);
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
    case LWS_CALLBACK_CLOSED_HTTP:
        if (pss && !pss->is_ws) px_buf_term(&pss->http_body);
        break;
    case LWS_CALLBACK_ESTABLISHED:
        return conn_open(gw, wsi, pss);
    case LWS_CALLBACK_RECEIVE:
        conn_receive(pss, wsi, in, len);
        return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return conn_writeable(pss);
    case LWS_CALLBACK_CLOSED:
        conn_close(gw, pss);
        return 0;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static const struct lws_protocols protocols[] = {
    {"presence", callback, sizeof(gw_pss_t), PX_PROTO_MAX_MSG, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0}};

static void lws_log_emit(int level, const char *line) {
    size_t n = strlen(line);
    char buf[1024];
    if (n >= sizeof buf) n = sizeof buf - 1;
    memcpy(buf, line, n);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) n--;
    buf[n] = '\0';
    px_log(level & LLL_ERR ? PX_LOG_ERROR : level & LLL_WARN ? PX_LOG_WARN : level & LLL_NOTICE ? PX_LOG_INFO : PX_LOG_DEBUG, "lws",
           buf, NULL);
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
    info.protocols = protocols;
    info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_VALIDATE_UTF8 |
                   LWS_SERVER_OPTION_DISABLE_IPV6;
    info.foreign_loops = foreign;
    info.user = gw;
    info.pcontext = &gw->lws; /* lws clears it when the destroy completes */
    info.timeout_secs = 10;
    gw->lws = lws_create_context(&info);
    if (!gw->lws)
        return px_errf(PX_EIO, errstr, errstr_size,
                       "cannot listen on %s:%lld (port taken, or libuv event plugin missing)",
                       gw->cfg.http_host, (long long)gw->cfg.http_port);
    PX_INFO(GW_COMP, "listening", "host=%s port=%lld", gw->cfg.http_host,
            (long long)gw->cfg.http_port);
    return 0;
}

/* Begin (in the loop) or finish (after it) destroying the context; lws
 * sets gw->lws to NULL once it is gone. */
void gw_ws_stop(gw_ctx_t *gw) {
    if (gw->lws) lws_context_destroy(gw->lws);
}
