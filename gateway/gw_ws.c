/*
 * gw_ws.c - libwebsockets on the shared libuv loop: WebSocket /ws/presence,
 * the HTTP routes (/healthz, /readyz, /metrics) and the static demo files.
 *
 * One protocol callback with a switch, as in the lws minimal examples. The
 * receive path parses, publishes and sends replies: written at once when
 * nothing waits before them (conn_write_now), else queued per connection
 * and written in SERVER_WRITEABLE.
 * Bounds per connection: message size (limits.message_bytes), a token
 * bucket of messages per second (limits.messages_per_second, burst
 * limits.messages_burst), subscriptions, LOCKs in flight, and outbound
 * bytes (limits.out_bytes_per_connection): a PRESENCE still queued is
 * replaced by the newer one of the same entity, so a slow reader gets the
 * latest state; one whose queue still overflows is closed with 1008.
 * Origins are checked against http.allowed_origins before the handshake;
 * permessage-deflate is offered (http.deflate). REST: gw_rest.c.
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
        gw_conn_t conn; /* WebSocket connections (is_ws) */
        gw_http_t http; /* HTTP requests (is_http) */
    };
    bool is_ws, is_http;
    bool close_after_flush;
    bool close_sent;
    uint16_t close_code;
} gw_pss_t;

/* Registering a series again returns the same handle, and codes are a
 * fixed set of words, so the series stay bounded. */
void gw_count_error(gw_ctx_t *gw, const char *code) {
    char label[96];
    px_counter_add(gw->m_errors, 1);
    snprintf(label, sizeof label, "code=\"%.64s\"", code);
    px_counter_add(px_metrics_counter(gw->metrics, "presence_gateway_errors_by_code_total",
                                      "ERROR messages and refused requests by code", label), 1);
}

/* ---- outbound ---------------------------------------------------------- */

void gw_oom(gw_ctx_t *gw, const char *what) {
    gw_count_error(gw, "INTERNAL");
    PX_ERROR(GW_COMP, "out of memory", "what=%s", what);
}

/* Mark c to be closed with code once its queue is flushed; further sends
 * are dropped. */
void gw_conn_close(gw_conn_t *c, uint16_t code) {
    if (c->closing) return;
    c->closing = true;
    c->close_code = code;
    lws_callback_on_writable(c->wsi);
}

static gw_out_t *out_new(const char *text, size_t len) {
    gw_out_t *o = malloc(sizeof *o + LWS_PRE + len);
    if (!o) return NULL;
    o->next = NULL;
    o->sub = NULL;
    o->dead = false;
    o->len = len;
    memcpy(o->data + LWS_PRE, text, len);
    return o;
}

/* Write one message now instead of queueing it, when nothing is queued
 * before it: the usual case, a socket with room. Waiting for WRITEABLE
 * costs two changes of the socket's poll events (POLLOUT on, then off),
 * and libuv 1.44 makes each of those three epoll_ctl calls (uv_poll_start
 * deletes the fd and adds it again): a third of the gateway's CPU under
 * load (docs/benchmarks-history.md). lws 4.1 allows a write outside the
 * callback on an HTTP/1 WebSocket: what the kernel does not take it keeps
 * (lws_partial_buffered) and sends when the socket is writeable, before
 * anything later. Not with permessage-deflate: lws drains a compressed
 * message across WRITEABLE callbacks and a write in between would land
 * inside it, so a connection whose client offered any extension always
 * queues (conn_open sets c->direct). */
static bool can_write_now(const gw_conn_t *c) {
    return c->direct && !c->out_head && !lws_partial_buffered(c->wsi);
}

static int conn_write_now(gw_conn_t *c, const char *text, size_t len) {
    gw_ctx_t *gw = c->gw;
    px_buf_reset(&gw->wbuf);
    if (px_buf_reserve(&gw->wbuf, LWS_PRE + len)) {
        gw_oom(gw, "outbound message");
        return PX_ENOMEM;
    }
    memcpy(gw->wbuf.data + LWS_PRE, text, len);
    if (lws_write(c->wsi, (unsigned char *)gw->wbuf.data + LWS_PRE, len, LWS_WRITE_TEXT) < 0) {
        /* the peer is gone: lws closes the connection, and CLOSED releases
         * its tabs and locks */
        PX_INFO(GW_COMP, "ws write failed: closing", "user=%s tab=%s", c->who.user_id, c->tab_id);
        c->closing = true;
        c->close_code = LWS_CLOSE_STATUS_GOINGAWAY;
        lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        return PX_EIO;
    }
    px_counter_add(gw->m_msgs_out, 1);
    px_counter_add(gw->m_out_direct, 1);
    return 0;
}

static void out_append(gw_conn_t *c, gw_out_t *o) {
    if (c->out_tail) c->out_tail->next = o;
    else c->out_head = o;
    c->out_tail = o;
    c->out_bytes += o->len;
    lws_callback_on_writable(c->wsi);
}

/* The queue would pass its bound: the client does not read. */
static int out_overflow(gw_conn_t *c) {
    gw_count_error(c->gw, "SLOW_CONSUMER");
    PX_WARN(GW_COMP, "slow client closed", "user=%s queued_bytes=%zu", c->who.user_id, c->out_bytes);
    gw_conn_close(c, LWS_CLOSE_STATUS_POLICY_VIOLATION);
    /* A client that reads nothing never makes the socket writeable, so the
     * close frame may never go out: drop the connection in 5 s regardless. */
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_ACK, 5);
    return PX_ENOMEM;
}

int gw_conn_send(gw_conn_t *c, const char *text, size_t len) {
    gw_ctx_t *gw = c->gw;
    if (c->closing) return PX_EIO;
    if (c->out_bytes + len > (size_t)gw->cfg.max_out_bytes) return out_overflow(c);
    if (can_write_now(c)) return conn_write_now(c, text, len);
    gw_out_t *o = out_new(text, len);
    if (!o) {
        gw_oom(gw, "outbound message");
        return PX_ENOMEM;
    }
    out_append(c, o);
    return 0;
}

/* A PRESENCE always carries the whole state, so one still queued for the
 * same entity is worthless once a newer one exists: it is marked dead (its
 * bytes no longer count) and skipped by the writer. */
int gw_conn_send_presence(gw_sub_t *s, const char *text, size_t len) {
    gw_conn_t *c = s->conn;
    gw_ctx_t *gw = c->gw;
    if (c->closing) return PX_EIO;
    if (s->presence) {
        s->presence->dead = true;
        s->presence->sub = NULL;
        c->out_bytes -= s->presence->len;
        s->presence = NULL;
        px_counter_add(gw->m_coalesced, 1);
    }
    if (c->out_bytes + len > (size_t)gw->cfg.max_out_bytes) return out_overflow(c);
    if (can_write_now(c)) {
        int rc = conn_write_now(c, text, len);
        if (rc == 0) px_counter_add(gw->m_out_presence, 1);
        return rc;
    }
    gw_out_t *o = out_new(text, len);
    if (!o) {
        gw_oom(gw, "outbound PRESENCE");
        return PX_ENOMEM;
    }
    o->sub = s;
    s->presence = o;
    out_append(c, o);
    px_counter_add(gw->m_out_presence, 1);
    return 0;
}

void gw_conn_send_error(gw_conn_t *c, const char *code, const char *msg, const char *request_id) {
    char buf[1024];
    px_buf_t b;
    px_buf_init(&b, sizeof buf);
    gw_count_error(c->gw, code);
    px_counter_add(c->gw->m_out_error, 1);
    if (px_proto_write_error(&b, code, msg, request_id && request_id[0] ? request_id : NULL) == 0)
        gw_conn_send(c, b.data, b.len);
    px_buf_term(&b);
}

static void conn_free_queue(gw_conn_t *c) {
    for (gw_out_t *o = c->out_head, *n; o; o = n) {
        n = o->next;
        if (o->sub) o->sub->presence = NULL;
        free(o);
    }
    c->out_head = c->out_tail = NULL;
    c->out_bytes = 0;
    free(c->draining);
    c->draining = NULL;
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

/* Publish one presence event for sub. m is the client's message, NULL for
 * the gateway's own (UNSUB on close): a client's write is refused with
 * UNAVAILABLE while Kafka is down, the gateway's own is queued by
 * librdkafka until it is back. */
static int publish(gw_conn_t *c, gw_sub_t *s, px_pres_type_t type, const px_msg_t *m) {
    px_event_t ev;
    if (m && !gw_kafka_writable(c->gw)) {
        gw_conn_send_error(c, "UNAVAILABLE", "Kafka is unreachable; retry later", m->request_id);
        return -1;
    }
    event_from_sub(c, s, type, &ev);
    if (m) {
        snprintf(ev.field, sizeof ev.field, "%s", m->field);
        snprintf(ev.cursor, sizeof ev.cursor, "%s", m->cursor);
    }
    if (gw_kafka_publish(c->gw, &ev)) {
        if (m) gw_conn_send_error(c, "UNAVAILABLE", "cannot publish to Kafka", m->request_id);
        return -1;
    }
    if (type == PX_PRES_SUB) { /* its PRESENCEs show the tab until the view does (gw_redis.c) */
        s->self_pending = true;
        s->self_sent = false;
        s->self_ts_ms = ev.ts_ms;
        s->self_until_ms = px_mono_ms() + GW_SELF_MERGE_MS;
    }
    return 0;
}

/* A LockEvent of the connection's tab for (s's entity, field). */
static int publish_lock(gw_conn_t *c, gw_sub_t *s, px_lock_type_t type, const char *field, const char *rid) {
    px_event_t ev;
    px_event_init(&ev, PX_KIND_LOCK);
    ev.type = type;
    ev.key = s->ent->key;
    ev.ts_ms = px_now_ms();
    snprintf(ev.tab_id, sizeof ev.tab_id, "%s", c->tab_id);
    snprintf(ev.user_id, sizeof ev.user_id, "%s", c->who.user_id);
    snprintf(ev.user_name, sizeof ev.user_name, "%s", c->who.user_name);
    snprintf(ev.field, sizeof ev.field, "%s", field);
    if (rid) snprintf(ev.request_id, sizeof ev.request_id, "%s", rid);
    return gw_kafka_publish(c->gw, &ev);
}

/* UNLOCK every lock the tab holds on s's entity (on UNSUB and close). */
static void release_locks(gw_conn_t *c, gw_sub_t *s) {
    for (gw_held_t *h = s->held; h; h = h->next) publish_lock(c, s, PX_LOCK_UNLOCK, h->field, NULL);
    gw_held_free(s);
}

static void apply_hb_fields(gw_sub_t *s, const px_msg_t *m) {
    if (m->has_mode) s->mode = m->mode;
    if (m->has_dirty) s->dirty = m->dirty;
    if (m->has_status) s->status = m->status;
}

/* The token bucket: true if the message may pass. At most one
 * RATE_LIMITED per second, so a flood does not fill the client's own
 * queue; the other drops are counted. */
static bool rate_ok(gw_conn_t *c) {
    gw_ctx_t *gw = c->gw;
    int64_t now = px_now_ms();
    double burst = (double)gw->cfg.msgs_burst;
    c->tokens += (double)(now - c->tokens_ms) * (double)gw->cfg.msgs_per_sec / 1000.0;
    if (c->tokens > burst) c->tokens = burst;
    c->tokens_ms = now;
    if (c->tokens >= 1.0) {
        c->tokens -= 1.0;
        return true;
    }
    if (now - c->limited_ms >= 1000) {
        c->limited_ms = now;
        gw_conn_send_error(c, "RATE_LIMITED", "too many messages per second; dropped", NULL);
    } else {
        gw_count_error(gw, "RATE_LIMITED");
    }
    return false;
}

static void handle_lock(gw_conn_t *c, gw_sub_t *target, const px_msg_t *m) {
    gw_ctx_t *gw = c->gw;
    if (!gw_kafka_writable(gw)) {
        gw_conn_send_error(c, "UNAVAILABLE", "Kafka is unreachable; retry later", m->request_id);
        return;
    }
    if (m->type == PX_MSG_UNLOCK) {
        if (publish_lock(c, target, PX_LOCK_UNLOCK, m->field, NULL)) {
            gw_conn_send_error(c, "UNAVAILABLE", "cannot publish to Kafka", m->request_id);
            return;
        }
        gw_held_del(target, m->field);
        return;
    }
    const char *ecode = NULL;
    gw_pending_t *p = gw_locks_add(gw, c, &target->ent->key, m->field, m->request_id, &ecode);
    if (!p) {
        gw_conn_send_error(c, ecode, "too many LOCKs awaiting their outcome", m->request_id);
        return;
    }
    if (publish_lock(c, target, PX_LOCK_LOCK, m->field, p->rid)) {
        gw_locks_drop(gw, p);
        gw_conn_send_error(c, "UNAVAILABLE", "cannot publish to Kafka", m->request_id);
    }
}

static void handle_message(gw_conn_t *c, const char *buf, size_t len) {
    gw_ctx_t *gw = c->gw;
    px_msg_t m;
    const char *code = NULL;
    char err[256];
    px_counter_add(gw->m_msgs_in, 1);
    if (!rate_ok(c)) return;
    if (px_proto_parse(buf, len, &m, &code, err, sizeof err)) {
        gw_conn_send_error(c, code ? code : "BAD_JSON", err, m.request_id);
        return;
    }
    px_counter_add(gw->m_in_type[m.type], 1);
    if (m.tenant[0] && strcmp(m.tenant, c->who.tenant) != 0) {
        gw_conn_send_error(c, "FORBIDDEN", "tenant does not match the token", m.request_id);
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
    } else if (m.type == PX_MSG_HB) {
        /* applies to every subscription of the connection (below) */
        if (!c->subs) {
            gw_conn_send_error(c, "NOT_SUBSCRIBED", "HB without entity and id, and no subscription", m.request_id);
            return;
        }
    } else {
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
        if (!target && !gw_kafka_writable(gw)) {
            gw_conn_send_error(c, "UNAVAILABLE", "Kafka is unreachable; retry later", m.request_id);
            return;
        }
        if (m.tab_id[0] && !c->subs) memcpy(c->tab_id, m.tab_id, sizeof c->tab_id);
        const char *ecode = NULL;
        bool created = !target;
        gw_sub_t *s = target ? target : gw_subs_add(gw, c, &key, &ecode);
        if (!s) {
            gw_conn_send_error(c, ecode, ecode && strcmp(ecode, "TOO_MANY_SUBSCRIPTIONS") == 0
                                             ? "subscription limit of the connection reached"
                                             : "subscription refused",
                               m.request_id);
            return;
        }
        apply_hb_fields(s, &m);
        if (publish(c, s, PX_PRES_SUB, &m)) {
            if (created) gw_subs_remove(gw, s);
            return;
        }
        if (!gw_redis_readable(gw))
            gw_conn_send_error(c, "UNAVAILABLE", "Redis is unreachable: presence follows when it is back",
                               m.request_id);
        else
            gw_redis_refresh(gw, s->ent);
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
        if (publish(c, target, PX_PRES_UNSUB, &m)) return;
        release_locks(c, target);
        gw_subs_remove(gw, target);
        return;
    case PX_MSG_LOCK:
    case PX_MSG_UNLOCK:
        if (!target) {
            gw_conn_send_error(c, "NOT_SUBSCRIBED", "LOCK/UNLOCK for an entity not subscribed", m.request_id);
            return;
        }
        handle_lock(c, target, &m);
        return;
    default:
        return;
    }
}

/* ---- connection lifecycle ---------------------------------------------- */

static int conn_open(gw_ctx_t *gw, struct lws *wsi, gw_pss_t *pss) {
    gw_conn_t *c = &pss->conn;
    char buf[GW_HTTP_FIELD_BUF], err[256]; /* any field lws accepted: a long token is checked, not cut */
    memset(pss, 0, sizeof *pss);
    pss->is_ws = true;
    c->wsi = wsi;
    c->gw = gw;
    px_buf_init(&c->rx, (size_t)gw->cfg.max_msg_bytes);
    c->tokens = (double)gw->cfg.msgs_burst;
    c->tokens_ms = px_now_ms();
    c->last_rx_ms = px_mono_ms();
    c->live_next = gw->live;
    if (gw->live) gw->live->live_prev = c;
    gw->live = c;
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
        snprintf(c->who.tenant, sizeof c->who.tenant, "%s", v && *v ? v : GW_DEV_TENANT);
        if (!px_key_part_valid(c->who.user_id, strlen(c->who.user_id)) ||
            !px_key_part_valid(c->who.tenant, strlen(c->who.tenant))) {
            gw_conn_send_error(c, "UNAUTHORIZED", "dev-mode user/tenant must be identifiers", NULL);
            goto refuse;
        }
    } else {
        gw_conn_send_error(c, "UNAUTHORIZED", "access_token query parameter required", NULL);
        goto refuse;
    }
    /* permessage-deflate is negotiated when both sides offer it. A client
     * that offered any extension always queues (can_write_now), negotiated
     * or not: lws matches extension names with their spaces removed, so a
     * text search of the header could miss one that lws accepts. */
    c->direct = !gw->cfg.deflate || lws_hdr_total_length(wsi, WSI_TOKEN_EXTENSIONS) <= 0;
    PX_INFO(GW_COMP, "ws connected", "user=%s tenant=%s tab=%s conns=%d direct=%d", c->who.user_id,
            c->who.tenant, c->tab_id, gw->n_conns, c->direct);
    return 0;
refuse:
    pss->close_code = GW_CLOSE_UNAUTHORIZED;
    pss->close_after_flush = true;
    return 0;
}

static void conn_close(gw_ctx_t *gw, gw_pss_t *pss) {
    gw_conn_t *c = &pss->conn;
    gw_locks_conn_closed(gw, c);
    conn_free_queue(c);
    while (c->subs) {
        gw_sub_t *s = c->subs;
        release_locks(c, s);
        publish(c, s, PX_PRES_UNSUB, NULL);
        gw_subs_remove(gw, s);
    }
    px_buf_term(&c->rx);
    if (c->live_prev) c->live_prev->live_next = c->live_next;
    else if (gw->live == c) gw->live = c->live_next;
    if (c->live_next) c->live_next->live_prev = c->live_prev;
    c->live_prev = c->live_next = NULL;
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

/* Queued messages, as many as the socket takes at once (up to
 * GW_WRITES_PER_CALLBACK, then the next callback), or (when the queue is
 * empty and the connection is to be closed) the close frame. */
#define GW_WRITES_PER_CALLBACK 16
static int conn_writeable(gw_pss_t *pss) {
    gw_conn_t *c = &pss->conn;
    free(c->draining); /* a deflated message's drain ended before this callback */
    c->draining = NULL;
    if (pss->close_sent) return 0;
    if (c->ping_due) { /* the idle sweep's PING goes before anything queued */
        /* with a payload: lws 4.1 does not report an empty PONG to the
         * protocol (LWS_CALLBACK_RECEIVE_PONG), and the PONG echoes it */
        unsigned char ping[LWS_PRE + 2] = {[LWS_PRE] = 'p', [LWS_PRE + 1] = 'x'};
        c->ping_due = false;
        if (lws_write(c->wsi, ping + LWS_PRE, 2, LWS_WRITE_PING) < 0) return -1;
        if (c->out_head || c->closing || pss->close_after_flush) lws_callback_on_writable(c->wsi);
        return 0;
    }
    /* a stuck client is closed at once: its queue is what is stuck */
    if (c->closing && !pss->close_after_flush) return conn_send_close(pss, c->close_code);
    for (int i = 0; i < GW_WRITES_PER_CALLBACK; i++) {
        gw_out_t *o = c->out_head;
        while (o && o->dead) { /* superseded PRESENCEs: their bytes were already uncounted */
            c->out_head = o->next;
            free(o);
            o = c->out_head;
        }
        if (!o) {
            c->out_tail = NULL;
            return pss->close_after_flush ? conn_send_close(pss, pss->close_code) : 0;
        }
        c->out_head = o->next;
        if (!c->out_head) c->out_tail = NULL;
        c->out_bytes -= o->len;
        if (o->sub) o->sub->presence = NULL;
        o->sub = NULL;
        int n = lws_write(c->wsi, o->data + LWS_PRE, o->len, LWS_WRITE_TEXT);
        if (c->direct) {
            free(o);
        } else {
            /* permessage-deflate may leave part of the message in zlib's
             * input, pointing into o, and compress it in later callbacks
             * (lws calls WRITEABLE again only once that drain is done):
             * o lives until then (c->draining, freed at the next callback
             * or at close) */
            c->draining = o;
            lws_callback_on_writable(c->wsi);
        }
        if (n < 0) return -1;
        px_counter_add(c->gw->m_msgs_out, 1);
        px_counter_add(c->gw->m_out_queued, 1);
        /* a deflated message may take several callbacks to drain; a
         * truncated write waits for the socket */
        if (!c->direct || lws_partial_buffered(c->wsi)) break;
    }
    if (c->out_head || pss->close_after_flush) lws_callback_on_writable(c->wsi);
    return 0;
}

static void conn_receive(gw_pss_t *pss, struct lws *wsi, const void *in, size_t len) {
    gw_conn_t *c = &pss->conn;
    if (pss->close_after_flush || c->closing) return; /* refused or closing: ignore input */
    bool final = lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi);
    if (lws_frame_is_binary(wsi)) c->rx_binary = true;
    else if (px_buf_append(&c->rx, in, len)) {
        /* Too large: answer and close (1009) at once rather than read the
         * rest for nothing (it may be megabytes, and lws 4.1 can stall on
         * the tail of a large deflated message). */
        gw_conn_send_error(c, "TOO_LARGE", "message exceeds limits.message_bytes; closing", NULL);
        pss->close_code = LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE;
        pss->close_after_flush = true;
        c->direct = false; /* what is sent from now on queues, and never follows the close frame */
        lws_callback_on_writable(wsi);
        return;
    }
    if (!final) return;
    if (c->rx_binary) {
        if (rate_ok(c)) gw_conn_send_error(c, "BAD_FRAME", "binary frames are not accepted", NULL);
    } else {
        handle_message(c, c->rx.data ? c->rx.data : "", c->rx.len);
    }
    /* idle connections are most of them: keep no large buffer around */
    if (c->rx.alloc > 512) px_buf_term(&c->rx);
    else px_buf_reset(&c->rx);
    c->rx_binary = false;
}

/* ---- HTTP -------------------------------------------------------------- */

int gw_http_reply(gw_http_t *h, unsigned status, const char *ctype, const char *body, size_t len) {
    static const char zeros[LWS_PRE];
    if (h->answered || !h->wsi) return -1;
    px_buf_term(&h->resp);
    px_buf_init(&h->resp, LWS_PRE + 8u * 1024 * 1024);
    if (px_buf_append(&h->resp, zeros, LWS_PRE) || px_buf_append(&h->resp, body, len)) return -1;
    h->status = status;
    h->ctype = ctype;
    h->staged = true;
    h->answered = true;
    lws_callback_on_writable(h->wsi);
    return 0;
}

int gw_http_error(gw_ctx_t *gw, gw_http_t *h, unsigned status, const char *code, const char *msg) {
    px_buf_t b;
    px_buf_init(&b, 2048);
    gw_count_error(gw, code);
    int rc = px_buf_puts(&b, "{\"success\":false,\"error\":{\"code\":");
    if (!rc) rc = px_proto_write_string(&b, code);
    if (!rc) rc = px_buf_puts(&b, ",\"message\":");
    if (!rc) rc = px_proto_write_string(&b, msg);
    if (!rc) rc = px_buf_puts(&b, "}}");
    rc = rc ? -1 : gw_http_reply(h, status, "application/json", b.data, b.len);
    px_buf_term(&b);
    return rc;
}

static int http_route(gw_ctx_t *gw, struct lws *wsi, gw_http_t *h, const char *path) {
    char file[PX_CONF_STR_MAX + 64];
    if (strcmp(path, "/healthz") == 0) return gw_http_reply(h, 200, "text/plain", "ok\n", 3);
    if (strcmp(path, "/readyz") == 0) {
        char body[256];
        bool kafka = gw_kafka_writable(gw), redis = gw->rcmd_up && gw->rsub_up;
        bool ready = kafka && redis;
        int n = snprintf(body, sizeof body, "%s kafka=%s redis=%s id=%.100s\n", ready ? "ready" : "not-ready",
                         kafka ? "up" : "down", redis ? "up" : "down", gw->cfg.gateway_id);
        return gw_http_reply(h, ready ? 200 : 503, "text/plain", body, (size_t)n);
    }
    if (strcmp(path, "/metrics") == 0) {
        px_buf_t b;
        px_buf_init(&b, 4u * 1024 * 1024);
        int rc = px_metrics_render(gw->metrics, &b);
        rc = rc ? -1 : gw_http_reply(h, 200, "text/plain; version=0.0.4", b.data ? b.data : "", b.len);
        px_buf_term(&b);
        return rc;
    }
    if (strcmp(path, "/api/v1/dev/token") == 0) return gw_dev_token(gw, h);
    if (strncmp(path, "/api/", 5) == 0) return gw_rest_begin(gw, h);
    /* the demo page and the browser client (gateway/web/) */
    static const struct {
        const char *path, *file, *ctype;
    } web[] = {
        {"/", "index.html", "text/html"},
        {"/index.html", "index.html", "text/html"},
        {"/demo.js", "demo.js", "text/javascript"},
        {"/presence-client.js", "presence-client.js", "text/javascript"},
        {"/use-presence.js", "use-presence.js", "text/javascript"},
    };
    for (size_t i = 0; i < sizeof web / sizeof web[0]; i++) {
        if (strcmp(path, web[i].path) != 0) continue;
        snprintf(file, sizeof file, "%s/%s", gw->cfg.web_dir, web[i].file);
        int n = lws_serve_http_file(wsi, file, web[i].ctype, NULL, 0);
        if (n < 0 || (n > 0 && lws_http_transaction_completed(wsi))) return -1;
        return 0;
    }
    return gw_http_error(gw, h, 404, "NOT_FOUND", "no such route");
}

/* Headers in one callback, the body in the next (one lws_write each). */
static int http_writeable(struct lws *wsi, gw_http_t *h) {
    if (!h->staged) return 0;
    if (!h->hdr_sent) {
        unsigned char hdr[LWS_PRE + 1024], *start = &hdr[LWS_PRE], *p = start, *end = &hdr[sizeof hdr - 1];
        size_t len = h->resp.len - LWS_PRE;
        if (lws_add_http_common_headers(wsi, h->status, h->ctype, (lws_filepos_t)len, &p, end) ||
            lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL, (const unsigned char *)"no-store", 8,
                                         &p, end) ||
            lws_finalize_write_http_header(wsi, start, &p, end))
            return -1;
        h->hdr_sent = true;
        lws_callback_on_writable(wsi);
        return 0;
    }
    int n = lws_write(wsi, (unsigned char *)h->resp.data + LWS_PRE, h->resp.len - LWS_PRE, LWS_WRITE_HTTP_FINAL);
    px_buf_term(&h->resp);
    px_buf_term(&h->req);
    h->staged = h->hdr_sent = false;
    if (n < 0) return -1;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

static void http_done(gw_pss_t *pss) {
    if (!pss || !pss->is_http) return;
    gw_rest_closed(&pss->http);
    px_buf_term(&pss->http.resp);
    px_buf_term(&pss->http.req);
    pss->is_http = false;
}

static int http_begin(gw_ctx_t *gw, struct lws *wsi, gw_pss_t *pss, const char *path) {
    http_done(pss); /* a previous request on a kept-alive connection */
    memset(pss, 0, sizeof *pss);
    pss->is_http = true;
    gw_http_t *h = &pss->http;
    h->wsi = wsi;
    snprintf(h->path, sizeof h->path, "%s", path);
    if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) > 0) h->method = GW_HTTP_GET;
    else if (lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI) > 0) h->method = GW_HTTP_POST;
    else if (lws_hdr_total_length(wsi, WSI_TOKEN_DELETE_URI) > 0) h->method = GW_HTTP_DELETE;
    return http_route(gw, wsi, h, h->path);
}

/* ---- request heads ------------------------------------------------------ */

/* The head limits in the context's creation info (gw.h GW_HTTP_HEAD_MAX):
 * the buffer, and every field cut one byte past GW_HTTP_FIELD_MAX, so that
 * head_too_large sees a longer one instead of lws dropping the connection
 * when a single field fills the buffer. */
static void head_limits(struct lws_context_creation_info *info) {
    static struct lws_token_limits limits;
    for (int i = 0; i < WSI_TOKEN_COUNT; i++) limits.token_limit[i] = GW_HTTP_FIELD_MAX + 1;
    info->token_limits = &limits;
    info->max_http_header_data = GW_HTTP_HEAD_MAX;
}

static bool token_is_uri(int t) {
    return t == WSI_TOKEN_GET_URI || t == WSI_TOKEN_POST_URI || t == WSI_TOKEN_OPTIONS_URI ||
           t == WSI_TOKEN_PATCH_URI || t == WSI_TOKEN_PUT_URI || t == WSI_TOKEN_DELETE_URI ||
           t == WSI_TOKEN_CONNECT || t == WSI_TOKEN_HEAD_URI || t == WSI_TOKEN_HTTP_URI_ARGS;
}

/* A request (before its route, or a handshake before the upgrade) with a
 * field over GW_HTTP_FIELD_MAX: answered 414 (the URI's path or a query
 * argument, e.g. an access_token) or 431 (a header) in the one error
 * shape, code TOO_LARGE, then closed (lws has skipped the rest of that
 * line, so nothing else of the request can be trusted). Counted and
 * logged. Returns 1 when it answered (the caller returns 1: close). */
static int head_too_large(gw_ctx_t *gw, struct lws *wsi) {
    int tok = -1;
    for (int t = 0; t < WSI_TOKEN_COUNT && tok < 0; t++) {
        if (lws_hdr_total_length(wsi, (enum lws_token_indexes)t) <= GW_HTTP_FIELD_MAX) continue;
        for (int f = 0; f < WSI_TOKEN_COUNT; f++) { /* no fragment table is longer */
            int n = lws_hdr_fragment_length(wsi, (enum lws_token_indexes)t, f);
            if (n > GW_HTTP_FIELD_MAX) {
                tok = t;
                break;
            }
        }
    }
    if (tok < 0) return 0;
    bool uri = token_is_uri(tok);
    unsigned status = uri ? 414 : 431;
    char body[256], peer[64] = "?";
    int blen = snprintf(body, sizeof body,
                        "{\"success\":false,\"error\":{\"code\":\"TOO_LARGE\",\"message\":\"%s over %d bytes\"}}",
                        uri ? "the URI, or one of its query arguments, is" : "a request header is", GW_HTTP_FIELD_MAX);
    unsigned char buf[LWS_PRE + 1024], *start = &buf[LWS_PRE], *p = start, *end = &buf[sizeof buf - 1];
    const unsigned char *name = lws_token_to_string((enum lws_token_indexes)tok);
    lws_get_peer_simple(wsi, peer, sizeof peer);
    gw_count_error(gw, "TOO_LARGE");
    PX_WARN(GW_COMP, "request refused: a field over the limit", "status=%u field=\"%s\" limit=%d peer=%s", status,
            name ? (const char *)name : "?", GW_HTTP_FIELD_MAX, peer);
    if (lws_add_http_common_headers(wsi, status, "application/json", (lws_filepos_t)blen, &p, end) ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION, (const unsigned char *)"close", 5, &p, end) ||
        lws_finalize_http_header(wsi, &p, end) || end - p < blen)
        return 1;
    memcpy(p, body, (size_t)blen);
    p += blen;
    lws_write(wsi, start, (size_t)(p - start), LWS_WRITE_HTTP_HEADERS);
    return 1;
}

/* Only origins in http.allowed_origins may open a WebSocket (a browser
 * always sends Origin; a missing one is a non-browser client, which could
 * send any value anyway, so it passes). Refused: 403 before the upgrade. */
static int origin_ok(gw_ctx_t *gw, struct lws *wsi) {
    char origin[512];
    const char *list = gw->cfg.allowed_origins;
    if (!list[0]) return 1;
    int n = lws_hdr_copy(wsi, origin, sizeof origin, WSI_TOKEN_ORIGIN);
    if (n <= 0) return 1;
    for (const char *p = list; *p;) {
        while (*p == ' ' || *p == ',') p++;
        const char *e = p;
        while (*e && *e != ',') e++;
        size_t l = (size_t)(e - p);
        while (l && p[l - 1] == ' ') l--;
        if (l && l == (size_t)n && memcmp(p, origin, l) == 0) return 1;
        p = e;
    }
    gw_count_error(gw, "FORBIDDEN_ORIGIN");
    PX_WARN(GW_COMP, "websocket origin refused", "origin=\"%.200s\"", origin);
    return 0;
}

/* ---- the callback ------------------------------------------------------ */

/* A frame (or a PONG) came in: the connection is alive (idle sweep). */
static void conn_heard(gw_conn_t *c) {
    c->last_rx_ms = px_mono_ms();
    c->pinged = false;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len) {
    gw_ctx_t *gw = lws_context_user(lws_get_context(wsi));
    gw_pss_t *pss = user;
    switch (reason) {
    case LWS_CALLBACK_HTTP:
        return http_begin(gw, wsi, pss, in);
    case LWS_CALLBACK_HTTP_BODY:
        if (pss && pss->is_http) gw_rest_body(&pss->http, in, len);
        return 0;
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        if (pss && pss->is_http) return gw_rest_body_done(gw, &pss->http);
        return 0;
    case LWS_CALLBACK_HTTP_WRITEABLE:
        if (pss && pss->is_http) return http_writeable(wsi, &pss->http);
        break;
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
    case LWS_CALLBACK_CLOSED_HTTP:
        if (pss && !pss->is_ws) http_done(pss);
        break;
    case LWS_CALLBACK_FILTER_HTTP_CONNECTION:
        return head_too_large(gw, wsi);
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        if (head_too_large(gw, wsi)) return 1;
        if (origin_ok(gw, wsi)) return 0;
        lws_return_http_status(wsi, HTTP_STATUS_FORBIDDEN, "origin not allowed");
        return 1;
    case LWS_CALLBACK_ESTABLISHED:
        http_done(pss);
        /* lws 4.1's default 1 KiB inflate buffer can leave the tail of a
         * larger inflated message undelivered until more input arrives;
         * 2^13 holds any message we accept in one piece (no-op if the
         * client did not negotiate permessage-deflate). */
        if (gw->cfg.deflate) lws_set_extension_option(wsi, "permessage-deflate", "rx_buf_size", "13");
        return conn_open(gw, wsi, pss);
    case LWS_CALLBACK_RECEIVE:
        conn_heard(&pss->conn);
        conn_receive(pss, wsi, in, len);
        return 0;
    case LWS_CALLBACK_RECEIVE_PONG:
        conn_heard(&pss->conn);
        return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return conn_writeable(pss);
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        /* lws echoes the close; nothing of ours may follow it, and lws
         * calls WRITEABLE no more */
        if (pss->is_ws) {
            pss->conn.closing = true;
            pss->conn.close_code = LWS_CLOSE_STATUS_NORMAL;
            pss->conn.direct = false;
        }
        return 0;
    case LWS_CALLBACK_CLOSED:
        conn_close(gw, pss);
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

/* The idle policy. A peer that vanished without a FIN (network loss)
 * would hold its connection, subscriptions and locks forever: a
 * connection silent (no frame, not even a PONG) for limits.idle_ping_s is
 * sent a PING, and one still silent as long again is dropped, which
 * releases its tabs and locks as any close does. Browsers answer PINGs by
 * themselves. One pass over the connections a second: O(connections) per
 * second, nothing per message but storing the time. */
static void on_idle_sweep(uv_timer_t *t) {
    gw_ctx_t *gw = t->data;
    int64_t now = px_mono_ms(), ping_ms = gw->cfg.idle_ping_s * 1000;
    for (gw_conn_t *c = gw->live; c; c = c->live_next) {
        int64_t idle = now - c->last_rx_ms;
        if (c->pinged && idle >= 2 * ping_ms) {
            PX_INFO(GW_COMP, "ws silent: dropping", "user=%s tab=%s silent_ms=%lld", c->who.user_id, c->tab_id,
                    (long long)idle);
            c->pinged = false; /* once: the close is asynchronous */
            c->last_rx_ms = now;
            lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        } else if (!c->pinged && idle >= ping_ms) {
            c->pinged = true;
            c->ping_due = true;
            lws_callback_on_writable(c->wsi);
        }
    }
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
    head_limits(&info);
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
