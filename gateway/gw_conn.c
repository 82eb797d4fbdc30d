/*
 * gw_conn.c - one WebSocket connection on libwebsockets: its state
 * (gw_conn_state_t in gw.h), the outbound queue and its writes, the
 * reassembly of a message from frames, and the idle policy. What the
 * messages mean is gw_msg.c's; the lws callback that drives this file is
 * gw_ws.c's; the states and their transitions are gw_conn_state.h's.
 *
 * Writes follow the lws minimal examples: a send queues and asks for
 * SERVER_WRITEABLE, one message per lws_write, LWS_PRE bytes of headroom;
 * except that a send with nothing queued before it is written at once
 * (can_write_now). The outbound bound (limits.out_bytes_per_connection)
 * counts queued bytes: a PRESENCE still queued is replaced by the newer
 * one of the same entity, so a slow reader gets the latest state; one
 * whose queue still overflows is closed with 1008.
 * Close frames go through lws's own close (lws_close_reason), so the peer
 * gets the code (4401 says "do not retry with this token").
 */
#include <stdlib.h>
#include <string.h>

#include "gw.h"
#include "px_log.h"
#include "px_time.h"

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

static void free_queue(gw_conn_t *c) {
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

void gw_conn_init(gw_conn_t *c, gw_ctx_t *gw, struct lws *wsi) {
    memset(c, 0, sizeof *c);
    c->wsi = wsi;
    c->gw = gw;
    c->state = GW_CONN_OPEN;
    px_buf_init(&c->rx, (size_t)gw->cfg.max_msg_bytes);
    gw_bucket_init(&c->bucket, gw->cfg.msgs_burst, px_now_ms());
    c->last_rx_ms = px_mono_ms();
    c->live_next = gw->live;
    if (gw->live) gw->live->live_prev = c;
    gw->live = c;
    gw->n_conns++;
    px_gauge_set(gw->m_conns, gw->n_conns);
    snprintf(c->tab_id, sizeof c->tab_id, "%.100s-%llu", gw->cfg.gateway_id, (unsigned long long)++gw->tab_seq);
}

void gw_conn_term(gw_conn_t *c) {
    gw_ctx_t *gw = c->gw;
    free_queue(c);
    px_buf_term(&c->rx);
    if (c->live_prev) c->live_prev->live_next = c->live_next;
    else if (gw->live == c) gw->live = c->live_next;
    if (c->live_next) c->live_next->live_prev = c->live_prev;
    c->live_prev = c->live_next = NULL;
    gw->n_conns--;
    px_gauge_set(gw->m_conns, gw->n_conns);
    if (c->who.user_id[0])
        PX_INFO(GW_COMP, "ws closed", "user=%s tab=%s conns=%d", c->who.user_id, c->tab_id, gw->n_conns);
}

/* ---- state ------------------------------------------------------------- */

/* ev in the state machine; true if the state changed. */
static bool transition(gw_conn_t *c, gw_conn_event_t ev) {
    gw_conn_state_t next = gw_conn_next(c->state, ev);
    if (next == c->state) return false;
    c->state = next;
    return true;
}

void gw_conn_close(gw_conn_t *c, uint16_t code) {
    if (!transition(c, GW_CONN_EV_CLOSE)) return;
    c->close_code = code;
    lws_callback_on_writable(c->wsi);
}

void gw_conn_drain(gw_conn_t *c, uint16_t code) {
    if (!transition(c, GW_CONN_EV_DRAIN)) return;
    c->close_code = code;
    lws_callback_on_writable(c->wsi);
}

void gw_conn_peer_closed(gw_conn_t *c) {
    transition(c, GW_CONN_EV_PEER_CLOSED); /* lws echoes the close and calls WRITEABLE no more */
}

/* The close frame, by lws's own close: the code set with
 * lws_close_reason and the callback returning nonzero, as lws documents.
 * Not from WRITEABLE, though: lws 4.1 takes a nonzero return there (and a
 * user timeout) as a dead socket and sends no frame, yet clients need the
 * code (4401 says "do not retry with this token"). So a timer on the
 * connection fires at once and its callback returns -1 (gw_conn_timer);
 * lws then sends the frame after anything still buffered and gives the
 * peer 5 s to answer. */
static int send_close(gw_conn_t *c) {
    transition(c, GW_CONN_EV_FRAME_SENT);
    lws_close_reason(c->wsi, (enum lws_close_status)c->close_code, NULL, 0);
    lws_set_timer_usecs(c->wsi, 1);
    return 0;
}

int gw_conn_timer(gw_conn_t *c) {
    return c->state == GW_CONN_CLOSED ? -1 : 0;
}

/* ---- outbound ---------------------------------------------------------- */

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
 * queues (c->direct is false). */
static bool can_write_now(const gw_conn_t *c) {
    return gw_conn_takes_sends(c->state) && c->direct && !c->out_head && !lws_partial_buffered(c->wsi);
}

static int write_now(gw_conn_t *c, const char *text, size_t len) {
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
        transition(c, GW_CONN_EV_WRITE_FAILED);
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
    if (!gw_conn_takes_sends(c->state)) return PX_EIO;
    if (c->out_bytes + len > (size_t)gw->cfg.max_out_bytes) return out_overflow(c);
    if (can_write_now(c)) return write_now(c, text, len);
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
    if (!gw_conn_takes_sends(c->state)) return PX_EIO;
    if (s->presence) {
        s->presence->dead = true;
        s->presence->sub = NULL;
        c->out_bytes -= s->presence->len;
        s->presence = NULL;
        px_counter_add(gw->m_coalesced, 1);
    }
    if (c->out_bytes + len > (size_t)gw->cfg.max_out_bytes) return out_overflow(c);
    if (can_write_now(c)) {
        int rc = write_now(c, text, len);
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

/* The idle sweep's PING, ahead of anything queued. With a payload: lws
 * 4.1 does not report an empty PONG to the protocol
 * (LWS_CALLBACK_RECEIVE_PONG), and the PONG echoes it. */
static int write_ping(gw_conn_t *c) {
    unsigned char ping[LWS_PRE + 2] = {[LWS_PRE] = 'p', [LWS_PRE + 1] = 'x'};
    c->ping_due = false;
    if (lws_write(c->wsi, ping + LWS_PRE, 2, LWS_WRITE_PING) < 0) return -1;
    if (c->out_head || gw_conn_wants_writeable(c->state)) lws_callback_on_writable(c->wsi);
    return 0;
}

/* Superseded PRESENCEs at the head of the queue are freed: their bytes
 * were already uncounted. */
static void skip_dead(gw_conn_t *c) {
    while (c->out_head && c->out_head->dead) {
        gw_out_t *o = c->out_head;
        c->out_head = o->next;
        free(o);
    }
    if (!c->out_head) c->out_tail = NULL;
}

/* The head of a queue skip_dead has left non-empty, taken off it. */
static gw_out_t *queue_pop(gw_conn_t *c) {
    gw_out_t *o = c->out_head;
    c->out_head = o->next;
    if (!c->out_head) c->out_tail = NULL;
    c->out_bytes -= o->len;
    if (o->sub) o->sub->presence = NULL;
    o->sub = NULL;
    return o;
}

/* Queued messages, as many as the socket takes at once (up to
 * GW_WRITES_PER_CALLBACK, then the next callback), or the close frame when
 * the state machine says it is due. */
#define GW_WRITES_PER_CALLBACK 16
int gw_conn_writeable(gw_conn_t *c) {
    free(c->draining); /* a deflated message's drain ended before this callback */
    c->draining = NULL;
    if (c->state == GW_CONN_CLOSED) return 0;
    if (c->ping_due) return write_ping(c);
    for (int i = 0; i < GW_WRITES_PER_CALLBACK; i++) {
        skip_dead(c);
        gw_conn_write_t act = gw_conn_write_action(c->state, !c->out_head);
        if (act == GW_CONN_WRITE_CLOSE_FRAME) return send_close(c); /* a stuck client: its queue is what is stuck */
        if (act == GW_CONN_WRITE_NOTHING) return 0;
        gw_out_t *o = queue_pop(c);
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
    if (c->out_head || gw_conn_wants_writeable(c->state)) lws_callback_on_writable(c->wsi);
    return 0;
}

/* ---- inbound ----------------------------------------------------------- */

void gw_conn_heard(gw_conn_t *c) {
    c->last_rx_ms = px_mono_ms();
    c->pinged = false;
}

gw_rx_t gw_conn_receive(gw_conn_t *c, const void *in, size_t len) {
    gw_conn_heard(c);
    if (!gw_conn_takes_input(c->state)) return GW_RX_IGNORED; /* refused or closing */
    bool final = lws_is_final_fragment(c->wsi) && !lws_remaining_packet_payload(c->wsi);
    if (lws_frame_is_binary(c->wsi)) {
        c->rx_binary = true;
    } else if (px_buf_append(&c->rx, in, len)) {
        /* Too large: answer and close (1009) at once rather than read the
         * rest for nothing (it may be megabytes, and lws 4.1 can stall on
         * the tail of a large deflated message). */
        gw_conn_send_error(c, "TOO_LARGE", "message exceeds limits.message_bytes; closing", NULL);
        gw_conn_drain(c, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE);
        return GW_RX_IGNORED;
    }
    if (!final) return GW_RX_MORE;
    return c->rx_binary ? GW_RX_BINARY : GW_RX_TEXT;
}

void gw_conn_rx_done(gw_conn_t *c) {
    /* idle connections are most of them: keep no large buffer around */
    if (c->rx.alloc > 512) px_buf_term(&c->rx);
    else px_buf_reset(&c->rx);
    c->rx_binary = false;
}

/* The idle policy. A peer that vanished without a FIN (network loss)
 * would hold its connection, subscriptions and locks forever: a
 * connection silent (no frame, not even a PONG) for limits.idle_ping_s is
 * sent a PING, and one still silent as long again is dropped, which
 * releases its tabs and locks as any close does. Browsers answer PINGs by
 * themselves. O(connections) per pass, nothing per message but storing
 * the time. */
void gw_conn_idle_sweep(gw_ctx_t *gw) {
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
