/*
 * px_rsub_conn.c - one connection of the subscriber to one Redis node, on
 * libuv: resolve and connect (TCP, or a Unix socket when the host begins
 * with '/'), commands formatted into this module's own write buffers (one
 * uv_write at a time: the output and in-flight buffers swap), the fifo of
 * commands written and not yet answered, reads fed to the bounded reader
 * (px_rsub_reader.c), the connect timeout, a PING on an idle connection
 * and the drop of one whose oldest command waited timeout_ms. See
 * px_rsub_int.h for the state and the contract of each function; what an
 * answer means is px_rsub.c's business (conn_reply).
 *
 * Bounds: about max_wbuf bytes of commands written and not yet answered
 * (send_cmd refuses past it; px_rsub_conn_pump stops at half of it), one
 * reply of max_reply bytes.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "px_err.h"
#include "px_redis_addr.h"
#include "px_rsub_int.h"

/* ---- the write side ---- */

static const char *cmd_word(const px_rsub_t *s, px_rsub_cmd_kind_t k) {
    if (k == CMD_PING) return "PING";
    if (k == CMD_SUB) return s->cluster ? "SSUBSCRIBE" : "SUBSCRIBE";
    return s->cluster ? "SUNSUBSCRIBE" : "UNSUBSCRIBE";
}

static size_t fifo_bytes(const px_rsub_conn_t *c) { return c->fifo.len - c->fifo_head; }

static void fifo_compact(px_rsub_conn_t *c);
static void flush(px_rsub_conn_t *c);

/* Append command k (for channel name/id) to c's output and its fifo.
 * 0, or PX_ENOMEM when it would pass max_wbuf (nothing appended). */
static int send_cmd(px_rsub_conn_t *c, px_rsub_cmd_kind_t k, const char *name, size_t len, uint64_t id) {
    px_rsub_t *s = c->s;
    const char *argv[3] = {cmd_word(s, k), name, name};
    size_t argvlen[3] = {strlen(argv[0]), len, len};
    int argc = k == CMD_PING ? 1 : k == CMD_SUB ? 2 : 3;
    char *cmd = NULL;
    long long n = redisFormatCommandArgv(&cmd, argc, argv, argvlen);
    if (n < 0) return PX_ENOMEM;
    int rc = PX_ENOMEM;
    size_t rec = sizeof(px_rsub_fifo_hdr_t) + ((len + 7) & ~(size_t)7);
    if (c->out.len + c->inflight.len + (size_t)n <= s->max_wbuf && fifo_bytes(c) + rec <= s->max_wbuf) {
        size_t out_len = c->out.len;
        px_rsub_fifo_hdr_t hdr = {.kind = (uint8_t)k, .len = (uint32_t)len, .id = id};
        if (c->fifo.len + rec > s->max_wbuf) fifo_compact(c);
        if (px_buf_append(&c->out, cmd, (size_t)n) == 0) {
            if (px_buf_reserve(&c->fifo, rec) == 0) {
                memcpy(c->fifo.data + c->fifo.len, &hdr, sizeof hdr);
                if (len) memcpy(c->fifo.data + c->fifo.len + sizeof hdr, name, len);
                if (fifo_bytes(c) == 0) c->waiting_since = px_rsub_now_ms(s);
                c->fifo.len += rec;
                rc = 0;
            } else {
                c->out.len = out_len; /* take the command back */
            }
        }
    }
    redisFreeCommand(cmd);
    return rc;
}

/* The oldest unanswered command, or NULL; *name its channel. */
px_rsub_fifo_hdr_t *px_rsub_fifo_peek(px_rsub_conn_t *c, const char **name) {
    if (fifo_bytes(c) < sizeof(px_rsub_fifo_hdr_t)) return NULL;
    px_rsub_fifo_hdr_t *h = (px_rsub_fifo_hdr_t *)(void *)(c->fifo.data + c->fifo_head);
    *name = c->fifo.data + c->fifo_head + sizeof *h;
    return h;
}

/* Move the unanswered commands to the front of the fifo's storage. */
static void fifo_compact(px_rsub_conn_t *c) {
    if (!c->fifo_head) return;
    memmove(c->fifo.data, c->fifo.data + c->fifo_head, c->fifo.len - c->fifo_head);
    c->fifo.len -= c->fifo_head;
    c->fifo_head = 0;
}

void px_rsub_fifo_pop(px_rsub_conn_t *c) {
    c->waiting_since = px_rsub_now_ms(c->s);
    px_rsub_fifo_hdr_t h;
    memcpy(&h, c->fifo.data + c->fifo_head, sizeof h);
    c->fifo_head += sizeof h + ((h.len + 7) & ~(size_t)7);
    if (c->fifo_head == c->fifo.len) {
        c->fifo.len = c->fifo_head = 0;
    } else if (c->fifo_head > 65536 && c->fifo_head > c->fifo.len / 2) {
        fifo_compact(c);
    }
}

static void on_write(uv_write_t *req, int status) {
    px_rsub_conn_t *c = req->data;
    c->writing = false;
    px_buf_reset(&c->inflight);
    if (c->state == C_CLOSING) return;
    if (status < 0) {
        px_rsub_conn_fail(c, false, "write: %s", uv_strerror(status));
        return;
    }
    px_rsub_conn_pump(c);
    flush(c);
}

/* Write what is buffered, one write at a time (the output and in-flight
 * buffers swap). */
static void flush(px_rsub_conn_t *c) {
    if (c->state != C_READY || c->writing || c->out.len == 0) return;
    px_buf_t t = c->inflight;
    c->inflight = c->out;
    c->out = t;
    uv_buf_t b = uv_buf_init(c->inflight.data, (unsigned)c->inflight.len);
    c->wreq.data = c;
    int rc = uv_write(&c->wreq, &c->io.st, &b, 1, on_write);
    if (rc < 0) {
        px_buf_reset(&c->inflight);
        px_rsub_conn_fail(c, false, "write: %s", uv_strerror(rc));
        return;
    }
    c->writing = true;
}

static bool room(const px_rsub_conn_t *c) {
    const px_rsub_t *s = c->s;
    return c->out.len + c->inflight.len <= s->max_wbuf / 2 && fifo_bytes(c) <= s->max_wbuf / 2;
}

/* Send what waits while the write buffer has room: the unsubscribes of
 * deleted channels first (a channel deleted and added again must be
 * unsubscribed before it is subscribed), then queued subscribes. */
void px_rsub_conn_pump(px_rsub_conn_t *c) {
    if (c->state != C_READY) return;
    while (c->unsubq.head && room(c)) {
        px_rsub_chan_t *z = c->unsubq.head;
        if (send_cmd(c, CMD_UNSUB, z->name, z->len, 0) != 0) break;
        px_rsub_list_remove(z);
        free(z);
    }
    while (c->queued.head && !c->unsubq.head) {
        if (!room(c)) break;
        px_rsub_chan_t *ch = c->queued.head;
        if (send_cmd(c, CMD_SUB, ch->name, ch->len, ch->id) != 0) break;
        px_rsub_list_remove(ch);
        ch->st = CH_PENDING;
        px_rsub_list_push(&c->chans, ch);
    }
    flush(c);
}

/* ---- connections ---- */

static void conn_maybe_free(px_rsub_conn_t *c) {
    if (c->handles > 0 || c->gai_busy) return;
    px_rsub_t *s = c->s;
    px_buf_term(&c->out);
    px_buf_term(&c->inflight);
    px_buf_term(&c->fifo);
    px_rsub_reader_free(c->rd);
    free(c);
    if (--s->alive == 0 && s->closing) {
        free(s->map);
        free(s);
    }
}

static void on_conn_handle_closed(uv_handle_t *h) {
    px_rsub_conn_t *c = h->data;
    c->handles--;
    conn_maybe_free(c);
}

/* Close c: out of the subscriber's table at once, freed when its handles
 * are closed. Its channels go idle (troubled when they were sent). */
void px_rsub_conn_close(px_rsub_conn_t *c) {
    px_rsub_t *s = c->s;
    if (c->state == C_CLOSING) return;
    c->state = C_CLOSING;
    for (int i = 0; i < s->nconn; i++)
        if (s->conn[i] == c) {
            s->conn[i] = s->conn[--s->nconn];
            break;
        }
    if (!s->closing) {
        while (c->chans.head) px_rsub_to_idle(s, c->chans.head, true);
        while (c->queued.head) px_rsub_to_idle(s, c->queued.head, true);
    }
    while (c->unsubq.head) { /* their subscriptions end with the connection */
        px_rsub_chan_t *z = c->unsubq.head;
        px_rsub_list_remove(z);
        free(z);
    }
    if (c->gai_busy) uv_cancel((uv_req_t *)&c->gai);
    uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
    if (c->io_open) uv_close(&c->io.h, on_conn_handle_closed);
}

void px_rsub_conn_fail(px_rsub_conn_t *c, bool proto, const char *fmt, ...) {
    px_rsub_t *s = c->s;
    if (c->state == C_CLOSING) return;
    char why[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    bool established = c->state == C_READY;
    size_t nch = c->chans.n + c->queued.n;
    if (established) {
        s->st.drops++;
        if (proto) s->st.protocol_errors++;
        char q[320];
        px_log(s->failing && !proto ? PX_LOG_DEBUG : proto ? PX_LOG_ERROR : PX_LOG_WARN, s->comp,
               proto ? "redis subscriber connection dropped: bad reply" : "redis subscriber connection lost",
               "node=%s channels=%zu err=%s", c->name, nch, px_log_q(q, sizeof q, why));
        s->failing = true;
    } else {
        s->st.connect_failures++;
        px_rsub_log_failure(s, PX_LOG_WARN, "redis subscriber cannot connect", c->name, why);
    }
    px_rsub_conn_close(c);
    s->conn_changed(s, true);
}

static void on_timer(uv_timer_t *t);

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    px_rsub_conn_t *c = h->data;
    (void)suggested;
    *buf = uv_buf_init(c->rbuf, sizeof c->rbuf);
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
    px_rsub_conn_t *c = st->data;
    px_rsub_t *s = c->s;
    (void)buf;
    if (nread == 0 || c->state == C_CLOSING) return;
    if (nread < 0) {
        px_rsub_conn_fail(c, false, "%s", nread == UV_EOF ? "closed by the server" : uv_strerror((int)nread));
        return;
    }
    char err[200];
    if (px_rsub_reader_feed(c->rd, c->rbuf, (size_t)nread, err, sizeof err) != 0) {
        px_rsub_conn_fail(c, true, "%s", err);
        return;
    }
    for (;;) {
        redisReply *r = NULL;
        int k = px_rsub_reader_next(c->rd, &r, err, sizeof err);
        if (k < 0) {
            px_rsub_conn_fail(c, true, "%s", err);
            return;
        }
        if (k == 0) break;
        s->conn_reply(c, r);
        freeReplyObject(r);
        if (s->closing || c->state == C_CLOSING) return;
    }
    px_rsub_conn_pump(c); /* answers made room in the fifo; flushes */
}

static void on_ready(px_rsub_conn_t *c) {
    px_rsub_t *s = c->s;
    c->state = C_READY;
    s->st.connects++;
    px_log(s->failing ? PX_LOG_INFO : PX_LOG_DEBUG, s->comp, "redis subscriber connected", "node=%s channels=%zu",
           c->name, c->queued.n);
    int rc = uv_read_start(&c->io.st, on_alloc, on_read);
    if (rc < 0) {
        px_rsub_conn_fail(c, false, "read: %s", uv_strerror(rc));
        return;
    }
    uv_timer_start(&c->timer, on_timer, (uint64_t)s->ping_ms, (uint64_t)s->ping_ms);
    px_rsub_conn_pump(c);
    s->conn_changed(s, false);
}

static void on_connect(uv_connect_t *req, int status) {
    px_rsub_conn_t *c = req->data;
    if (c->state == C_CLOSING) return;
    if (status < 0) {
        px_rsub_conn_fail(c, false, "connect: %s", uv_strerror(status));
        return;
    }
    on_ready(c);
}

static void connect_addr(px_rsub_conn_t *c, const struct sockaddr *sa) {
    int rc = uv_tcp_init(c->s->loop, &c->io.tcp);
    if (rc == 0) {
        c->io.h.data = c;
        c->io_open = true;
        c->handles++;
        uv_tcp_nodelay(&c->io.tcp, 1);
        c->creq.data = c;
        c->state = C_CONNECTING;
        rc = uv_tcp_connect(&c->creq, &c->io.tcp, sa, on_connect);
    }
    if (rc < 0) px_rsub_conn_fail(c, false, "connect: %s", uv_strerror(rc));
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
    px_rsub_conn_t *c = req->data;
    c->gai_busy = false;
    if (c->state == C_CLOSING) {
        if (res) uv_freeaddrinfo(res);
        conn_maybe_free(c);
        return;
    }
    if (status < 0 || !res) {
        px_rsub_conn_fail(c, false, "resolve %s: %s", c->node.host, uv_strerror(status < 0 ? status : UV_EAI_NONAME));
        if (res) uv_freeaddrinfo(res);
        return;
    }
    connect_addr(c, res->ai_addr);
    uv_freeaddrinfo(res);
}

/* Open a connection to node nd (table slot taken at once). NULL when the
 * table is full or out of memory (logged). */
px_rsub_conn_t *px_rsub_conn_open(px_rsub_t *s, const px_redis_node_t *nd) {
    if (s->nconn == PX_REDIS_NODES_MAX) {
        px_rsub_log_failure(s, PX_LOG_ERROR, "redis subscriber: too many connections", nd->host, "64 nodes at most");
        return NULL;
    }
    px_rsub_conn_t *c = calloc(1, sizeof *c);
    if (!c || !(c->rd = px_rsub_reader_new(s->max_reply))) {
        free(c);
        px_rsub_log_failure(s, PX_LOG_ERROR, "redis subscriber: out of memory", nd->host, "connection");
        return NULL;
    }
    c->s = s;
    c->node = *nd;
    px_redis_addr(nd->host, nd->port, c->name, sizeof c->name);
    if (px_redis_is_unix(nd->host)) snprintf(c->name, sizeof c->name, "%.*s", PX_REDIS_HOST_MAX, nd->host);
    px_buf_init(&c->out, s->max_wbuf);
    px_buf_init(&c->inflight, s->max_wbuf);
    px_buf_init(&c->fifo, s->max_wbuf + 4096);
    c->state = C_RESOLVING;
    s->conn[s->nconn++] = c;
    s->alive++;
    uv_timer_init(s->loop, &c->timer);
    c->timer.data = c;
    c->handles = 1;
    uv_timer_start(&c->timer, on_timer, (uint64_t)s->timeout_ms, 0);

    if (px_redis_is_unix(nd->host)) {
        int rc = uv_pipe_init(s->loop, &c->io.pipe, 0);
        if (rc < 0) {
            px_rsub_conn_fail(c, false, "pipe: %s", uv_strerror(rc));
            return NULL;
        }
        c->io.h.data = c;
        c->io_open = true;
        c->handles++;
        c->creq.data = c;
        c->state = C_CONNECTING;
        uv_pipe_connect(&c->creq, &c->io.pipe, nd->host, on_connect);
        return c;
    }
    struct sockaddr_storage ss;
    if (uv_ip4_addr(nd->host, nd->port, (struct sockaddr_in *)&ss) == 0 ||
        uv_ip6_addr(nd->host, nd->port, (struct sockaddr_in6 *)&ss) == 0) {
        connect_addr(c, (struct sockaddr *)&ss);
        return c->state == C_CLOSING ? NULL : c;
    }
    char port[16];
    snprintf(port, sizeof port, "%d", nd->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    c->gai.data = c;
    int rc = uv_getaddrinfo(s->loop, &c->gai, on_resolved, nd->host, port, &hints);
    if (rc < 0) {
        px_rsub_conn_fail(c, false, "resolve %s: %s", nd->host, uv_strerror(rc));
        return NULL;
    }
    c->gai_busy = true;
    return c;
}

px_rsub_conn_t *px_rsub_conn_find(px_rsub_t *s, const px_redis_node_t *nd) {
    for (int i = 0; i < s->nconn; i++)
        if (px_rsub_same_node(&s->conn[i]->node, nd)) return s->conn[i];
    return NULL;
}

/* Connection timer: the connect timeout, then the PING period. */
static void on_timer(uv_timer_t *t) {
    px_rsub_conn_t *c = t->data;
    px_rsub_t *s = c->s;
    if (c->state == C_CLOSING) return;
    if (c->state != C_READY) {
        px_rsub_conn_fail(c, false, "connect timed out after %ld ms", s->timeout_ms);
        return;
    }
    uint64_t now = px_rsub_now_ms(s);
    if (fifo_bytes(c)) { /* commands out: the oldest must be answered in time */
        if (now - c->waiting_since >= (uint64_t)s->timeout_ms)
            px_rsub_conn_fail(c, false, "no answer for %llu ms", (unsigned long long)(now - c->waiting_since));
        return;
    }
    if (send_cmd(c, CMD_PING, "", 0, 0) == 0) flush(c); /* idle: ask for one */
}
