/*
 * px_rsub.c - asynchronous pub/sub subscriber for a single Redis and a
 * Redis Cluster. See px_rsub.h for the contract.
 *
 * State. Every wanted channel is a chan_t in a hash table (by name) and in
 * exactly one list: the subscriber's `idle` list (no node yet: just added
 * before the map is known, or lost), or one connection's `queued` list
 * (waiting for the connection or for room in its write buffer) or its
 * `chans` list (SUBSCRIBE sent: PENDING until confirmed, then LIVE).
 * A connection (conn_t) talks to one node (by host:port); its `fifo`
 * records, in order, each command written and not yet answered (kind, the
 * channel's name and id), which is how an answer finds its command: the
 * server answers commands in order, and the only things it sends unasked
 * are messages and the unsubscribes of a slot that left the node.
 *
 * UNSUBSCRIBE names its channel twice. Answered by the server it yields
 * two unsubscribe pushes; but if the channel's slot left the node before
 * the command was read, the server first pushes one unsubscribe unasked
 * and then answers the command with MOVED. Counting pushes per command
 * tells the two apart without guessing.
 *
 * Recovery runs on one timer (recover_cb): refresh the map when asked to
 * (cluster), open the single server's connection (single), and place every
 * idle channel on its owner's connection. Anything that fails arms the
 * timer again with the next backoff step; the step goes back to 0 once
 * nothing is idle and nothing is troubled.
 */
#include "px_rsub.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "px_buf.h"
#include "px_err.h"
#include "px_hash.h"
#include "px_log.h"
#include "px_redis_addr.h"
#include "px_redis_cluster.h"
#include "px_redis_slot.h"

#define RSUB_READ_CHUNK 16384

/* ==== the bounded reader ================================================ */

struct px_rsub_reader {
    redisReader *r;
    redisReplyObjectFunctions base; /* hiredis's own */
    redisReplyObjectFunctions fn;   /* counting wrappers around them */
    size_t max, used;               /* bytes of the reply being built */
    bool over, failed;
};

/* Count n more bytes for the reply being built; false past the bound. */
static bool charge(px_rsub_reader_t *rd, size_t n) {
    if (rd->used > rd->max || n > rd->max - rd->used) {
        rd->over = true;
        return false;
    }
    rd->used += n;
    return true;
}

static void *w_string(const redisReadTask *t, char *str, size_t len) {
    px_rsub_reader_t *rd = t->privdata;
    if (!charge(rd, len > rd->max ? SIZE_MAX : sizeof(redisReply) + len + 1)) return NULL;
    return rd->base.createString(t, str, len);
}

static void *w_array(const redisReadTask *t, int n) {
    px_rsub_reader_t *rd = t->privdata;
    size_t cost = n < 0 || (size_t)n > rd->max / sizeof(redisReply *)
                      ? SIZE_MAX
                      : sizeof(redisReply) + (size_t)n * sizeof(redisReply *);
    if (!charge(rd, cost)) return NULL;
    return rd->base.createArray(t, n);
}

static void *w_integer(const redisReadTask *t, long long v) {
    px_rsub_reader_t *rd = t->privdata;
    if (!charge(rd, sizeof(redisReply))) return NULL;
    return rd->base.createInteger(t, v);
}

static void *w_nil(const redisReadTask *t) {
    px_rsub_reader_t *rd = t->privdata;
    if (!charge(rd, sizeof(redisReply))) return NULL;
    return rd->base.createNil(t);
}

px_rsub_reader_t *px_rsub_reader_new(size_t max_reply) {
    px_rsub_reader_t *rd = calloc(1, sizeof *rd);
    if (!rd) return NULL;
    rd->r = redisReaderCreate();
    if (!rd->r) {
        free(rd);
        return NULL;
    }
    rd->base = *rd->r->fn;
    rd->fn = (redisReplyObjectFunctions){w_string, w_array, w_integer, w_nil, rd->base.freeObject};
    rd->r->fn = &rd->fn;
    rd->r->privdata = rd;
    rd->max = max_reply;
    return rd;
}

void px_rsub_reader_free(px_rsub_reader_t *rd) {
    if (!rd) return;
    redisReaderFree(rd->r);
    free(rd);
}

static int reader_error(px_rsub_reader_t *rd, char *errstr, size_t n) {
    rd->failed = true;
    if (rd->over) return px_errf(PX_ENOMEM, errstr, n, "a reply over %zu bytes", rd->max);
    return px_errf(PX_EPROTO, errstr, n, "malformed reply: %s", rd->r->errstr[0] ? rd->r->errstr : "?");
}

int px_rsub_reader_feed(px_rsub_reader_t *rd, const char *buf, size_t len, char *errstr, size_t errstr_size) {
    if (rd->failed) return reader_error(rd, errstr, errstr_size);
    if (len > PX_RSUB_FEED_MAX)
        return px_errf(PX_EINVAL, errstr, errstr_size, "feed %zu bytes at most, not %zu", (size_t)PX_RSUB_FEED_MAX,
                       len);
    if (redisReaderFeed(rd->r, buf, len) != REDIS_OK) return reader_error(rd, errstr, errstr_size);
    return 0;
}

int px_rsub_reader_next(px_rsub_reader_t *rd, redisReply **out, char *errstr, size_t errstr_size) {
    *out = NULL;
    if (rd->failed) return reader_error(rd, errstr, errstr_size);
    void *rep = NULL;
    if (redisReaderGetReply(rd->r, &rep) != REDIS_OK) return reader_error(rd, errstr, errstr_size);
    if (rep) {
        rd->used = 0;
        *out = rep;
        return 1;
    }
    if (rd->r->len - rd->r->pos > rd->max) {
        rd->over = true;
        return reader_error(rd, errstr, errstr_size);
    }
    return 0;
}

/* ==== pushes ============================================================ */

static bool is_str(const redisReply *e) { return e && e->type == REDIS_REPLY_STRING; }

static bool name_is(const redisReply *e, const char *name) {
    size_t n = strlen(name);
    return (size_t)e->len == n && memcmp(e->str, name, n) == 0;
}

px_rsub_push_kind_t px_rsub_push_parse(const redisReply *r, px_rsub_push_t *out) {
    memset(out, 0, sizeof *out);
    if (!r) return PX_RSUB_PUSH_INVALID;
    if (r->type == REDIS_REPLY_ERROR) {
        out->data = r->str;
        out->data_len = (size_t)r->len;
        return out->kind = PX_RSUB_PUSH_ERROR;
    }
    if (r->type == REDIS_REPLY_STATUS) {
        if (r->len == 4 && memcmp(r->str, "PONG", 4) == 0) return out->kind = PX_RSUB_PUSH_PONG;
        return PX_RSUB_PUSH_INVALID;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 || !is_str(r->element[0])) return PX_RSUB_PUSH_INVALID;
    const redisReply *k = r->element[0];
    if (r->elements == 2 && name_is(k, "pong") && is_str(r->element[1])) {
        out->data = r->element[1]->str;
        out->data_len = (size_t)r->element[1]->len;
        return out->kind = PX_RSUB_PUSH_PONG;
    }
    if (r->elements != 3 || !is_str(r->element[1])) return PX_RSUB_PUSH_INVALID;
    const redisReply *third = r->element[2];
    px_rsub_push_kind_t kind = PX_RSUB_PUSH_INVALID;
    bool sharded = false;
    if (name_is(k, "message") || (sharded = name_is(k, "smessage"))) {
        if (!is_str(third)) return PX_RSUB_PUSH_INVALID;
        out->data = third->str;
        out->data_len = (size_t)third->len;
        kind = PX_RSUB_PUSH_MESSAGE;
    } else if (name_is(k, "subscribe") || (sharded = name_is(k, "ssubscribe"))) {
        kind = PX_RSUB_PUSH_SUBSCRIBED;
    } else if (name_is(k, "unsubscribe") || (sharded = name_is(k, "sunsubscribe"))) {
        kind = PX_RSUB_PUSH_UNSUBSCRIBED;
    } else {
        return PX_RSUB_PUSH_INVALID;
    }
    if (kind != PX_RSUB_PUSH_MESSAGE) {
        if (third->type != REDIS_REPLY_INTEGER) return PX_RSUB_PUSH_INVALID;
        out->count = third->integer;
    }
    out->sharded = sharded;
    out->channel = r->element[1]->str;
    out->channel_len = (size_t)r->element[1]->len;
    return out->kind = kind;
}

/* ==== channels, connections, the subscriber ============================= */

typedef enum { CH_IDLE = 0, CH_QUEUED, CH_PENDING, CH_LIVE, CH_UNSUB } ch_state_t;

typedef struct chan chan_t;
typedef struct chlist {
    chan_t *head;
    size_t n;
} chlist_t;

struct chan {
    chan_t *hnext;       /* hash chain */
    chan_t *prev, *next; /* in *in */
    chlist_t *in;
    struct conn *conn;   /* NULL when idle */
    uint64_t hash, id;
    ch_state_t st;
    bool ever;           /* confirmed once */
    bool troubled;       /* lost by a failure, not confirmed since */
    uint8_t moves;       /* MOVED answers since the last confirmation */
    uint16_t slot;
    uint32_t len;
    char name[];
};

typedef enum { C_RESOLVING, C_CONNECTING, C_READY, C_CLOSING } conn_state_t;
typedef enum { CMD_SUB = 1, CMD_UNSUB, CMD_PING } cmd_kind_t;

typedef struct fifo_hdr { /* one unanswered command in conn->fifo */
    uint8_t kind, got;
    uint32_t len;
    uint64_t id;
} fifo_hdr_t;

typedef struct conn {
    px_rsub_t *s;
    px_redis_node_t node;
    char name[PX_REDIS_HOST_MAX + 16]; /* for messages */
    conn_state_t state;
    union {
        uv_handle_t h;
        uv_stream_t st;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } io;
    uv_timer_t timer;  /* connect timeout, then PING */
    uv_connect_t creq;
    uv_getaddrinfo_t gai;
    uv_write_t wreq;
    int handles;       /* open handles; freed at 0 when no lookup runs */
    bool io_open, gai_busy, writing;
    px_buf_t out, inflight;
    px_buf_t fifo;
    size_t fifo_head;
    px_rsub_reader_t *rd;
    chlist_t queued, chans;
    chlist_t unsubq;        /* deleted channels whose UNSUBSCRIBE waits for room */
    uint64_t waiting_since; /* loop time since when the oldest command waits for its answer */
    char rbuf[RSUB_READ_CHUNK];
} conn_t;

struct px_rsub {
    uv_loop_t *loop;
    char *host, *seeds, *comp;
    int port;
    bool cluster;
    long timeout_ms, refresh_timeout_ms, ping_ms, retry_min_ms, retry_max_ms;
    size_t max_channels, max_reply, max_wbuf;
    px_rsub_handlers_t h;

    px_rcl_t *rcl;          /* cluster: the map's source */
    px_redis_slots_t *map;  /* single: one node owning every slot */
    bool map_known, map_ok, need_refresh;

    conn_t *conn[PX_REDIS_NODES_MAX];
    int nconn;

    chan_t **bucket;
    size_t nbucket, nchan, nlive, ntroubled;
    chlist_t idle;
    uint64_t serial;

    uv_timer_t timer;  /* recovery */
    uv_timer_t notify; /* reports a state change seen inside an API call */
    int in_api;        /* inside px_rsub_add/del: no callbacks */
    int attempt;      /* backoff step */
    bool up, failing; /* failing: a run of failures was logged */
    uint64_t down_since;
    int alive;        /* handles and connections not yet freed */
    bool closing;
    px_rsub_stats_t st;
};

static void list_push(chlist_t *l, chan_t *c) {
    c->in = l;
    c->prev = NULL;
    c->next = l->head;
    if (l->head) l->head->prev = c;
    l->head = c;
    l->n++;
}

static void list_remove(chan_t *c) {
    chlist_t *l = c->in;
    if (!l) return;
    if (c->prev) c->prev->next = c->next;
    else l->head = c->next;
    if (c->next) c->next->prev = c->prev;
    c->prev = c->next = NULL;
    c->in = NULL;
    l->n--;
}

static uint64_t now_ms(const px_rsub_t *s) { return uv_now(s->loop); }

/* ---- the channel table ---- */

static chan_t *lookup(const px_rsub_t *s, const char *name, size_t len) {
    if (!s->nbucket) return NULL;
    uint64_t hv = px_fnv1a(PX_FNV1A_INIT, name, len);
    for (chan_t *c = s->bucket[hv & (s->nbucket - 1)]; c; c = c->hnext)
        if (c->hash == hv && c->len == len && memcmp(c->name, name, len) == 0) return c;
    return NULL;
}

static int table_grow(px_rsub_t *s) {
    size_t n = s->nbucket ? 2 * s->nbucket : 64;
    chan_t **b = calloc(n, sizeof *b);
    if (!b) return PX_ENOMEM;
    for (size_t i = 0; i < s->nbucket; i++)
        for (chan_t *c = s->bucket[i], *nx; c; c = nx) {
            nx = c->hnext;
            c->hnext = b[c->hash & (n - 1)];
            b[c->hash & (n - 1)] = c;
        }
    free(s->bucket);
    s->bucket = b;
    s->nbucket = n;
    return 0;
}

static void table_remove(px_rsub_t *s, chan_t *c) {
    chan_t **p = &s->bucket[c->hash & (s->nbucket - 1)];
    while (*p != c) p = &(*p)->hnext;
    *p = c->hnext;
    s->nchan--;
}

/* ---- forward ---- */
static void kick(px_rsub_t *s);
static void update_state(px_rsub_t *s);
static void conn_fail(conn_t *c, bool proto, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void pump(conn_t *c);
static void flush(conn_t *c);

/* Log a failure: the first of a run at `level`, the rest at debug (all
 * are counted by the caller); the recovery ends the run (update_state). */
static void log_failure(px_rsub_t *s, px_log_level_t level, const char *msg, const char *node, const char *why) {
    char q[320];
    px_log(s->failing ? PX_LOG_DEBUG : level, s->comp, msg, "node=%s err=%s", node, px_log_q(q, sizeof q, why));
    s->failing = true;
}

/* Channel c leaves its connection (or the idle list) for the idle list. A
 * subscription lost (it was sent or confirmed) marks it troubled. */
static void to_idle(px_rsub_t *s, chan_t *c, bool trouble) {
    if (c->st == CH_LIVE) s->nlive--;
    list_remove(c);
    c->conn = NULL;
    c->st = CH_IDLE;
    if (trouble && !c->troubled) {
        c->troubled = true;
        s->ntroubled++;
    }
    list_push(&s->idle, c);
}

/* ---- the write side ---- */

static const char *cmd_word(const px_rsub_t *s, cmd_kind_t k) {
    if (k == CMD_PING) return "PING";
    if (k == CMD_SUB) return s->cluster ? "SSUBSCRIBE" : "SUBSCRIBE";
    return s->cluster ? "SUNSUBSCRIBE" : "UNSUBSCRIBE";
}

static size_t fifo_bytes(const conn_t *c) { return c->fifo.len - c->fifo_head; }

static void fifo_compact(conn_t *c);

/* Append command k (for channel name/id) to c's output and its fifo.
 * 0, or PX_ENOMEM when it would pass max_wbuf (nothing appended). */
static int send_cmd(conn_t *c, cmd_kind_t k, const char *name, size_t len, uint64_t id) {
    px_rsub_t *s = c->s;
    const char *argv[3] = {cmd_word(s, k), name, name};
    size_t argvlen[3] = {strlen(argv[0]), len, len};
    int argc = k == CMD_PING ? 1 : k == CMD_SUB ? 2 : 3;
    char *cmd = NULL;
    long long n = redisFormatCommandArgv(&cmd, argc, argv, argvlen);
    if (n < 0) return PX_ENOMEM;
    int rc = PX_ENOMEM;
    size_t rec = sizeof(fifo_hdr_t) + ((len + 7) & ~(size_t)7);
    if (c->out.len + c->inflight.len + (size_t)n <= s->max_wbuf && fifo_bytes(c) + rec <= s->max_wbuf) {
        size_t out_len = c->out.len;
        fifo_hdr_t hdr = {.kind = (uint8_t)k, .len = (uint32_t)len, .id = id};
        if (c->fifo.len + rec > s->max_wbuf) fifo_compact(c);
        if (px_buf_append(&c->out, cmd, (size_t)n) == 0) {
            if (px_buf_reserve(&c->fifo, rec) == 0) {
                memcpy(c->fifo.data + c->fifo.len, &hdr, sizeof hdr);
                if (len) memcpy(c->fifo.data + c->fifo.len + sizeof hdr, name, len);
                if (fifo_bytes(c) == 0) c->waiting_since = now_ms(s);
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
static fifo_hdr_t *fifo_peek(conn_t *c, const char **name) {
    if (fifo_bytes(c) < sizeof(fifo_hdr_t)) return NULL;
    fifo_hdr_t *h = (fifo_hdr_t *)(void *)(c->fifo.data + c->fifo_head);
    *name = c->fifo.data + c->fifo_head + sizeof *h;
    return h;
}

/* Move the unanswered commands to the front of the fifo's storage. */
static void fifo_compact(conn_t *c) {
    if (!c->fifo_head) return;
    memmove(c->fifo.data, c->fifo.data + c->fifo_head, c->fifo.len - c->fifo_head);
    c->fifo.len -= c->fifo_head;
    c->fifo_head = 0;
}

static void fifo_pop(conn_t *c) {
    c->waiting_since = now_ms(c->s);
    fifo_hdr_t h;
    memcpy(&h, c->fifo.data + c->fifo_head, sizeof h);
    c->fifo_head += sizeof h + ((h.len + 7) & ~(size_t)7);
    if (c->fifo_head == c->fifo.len) {
        c->fifo.len = c->fifo_head = 0;
    } else if (c->fifo_head > 65536 && c->fifo_head > c->fifo.len / 2) {
        fifo_compact(c);
    }
}

static void on_write(uv_write_t *req, int status) {
    conn_t *c = req->data;
    c->writing = false;
    px_buf_reset(&c->inflight);
    if (c->state == C_CLOSING) return;
    if (status < 0) {
        conn_fail(c, false, "write: %s", uv_strerror(status));
        return;
    }
    pump(c);
    flush(c);
}

/* Write what is buffered, one write at a time (the output and in-flight
 * buffers swap). */
static void flush(conn_t *c) {
    if (c->state != C_READY || c->writing || c->out.len == 0) return;
    px_buf_t t = c->inflight;
    c->inflight = c->out;
    c->out = t;
    uv_buf_t b = uv_buf_init(c->inflight.data, (unsigned)c->inflight.len);
    c->wreq.data = c;
    int rc = uv_write(&c->wreq, &c->io.st, &b, 1, on_write);
    if (rc < 0) {
        px_buf_reset(&c->inflight);
        conn_fail(c, false, "write: %s", uv_strerror(rc));
        return;
    }
    c->writing = true;
}

static bool room(const conn_t *c) {
    const px_rsub_t *s = c->s;
    return c->out.len + c->inflight.len <= s->max_wbuf / 2 && fifo_bytes(c) <= s->max_wbuf / 2;
}

/* Send what waits while the write buffer has room: the unsubscribes of
 * deleted channels first (a channel deleted and added again must be
 * unsubscribed before it is subscribed), then queued subscribes. */
static void pump(conn_t *c) {
    if (c->state != C_READY) return;
    while (c->unsubq.head && room(c)) {
        chan_t *z = c->unsubq.head;
        if (send_cmd(c, CMD_UNSUB, z->name, z->len, 0) != 0) break;
        list_remove(z);
        free(z);
    }
    while (c->queued.head && !c->unsubq.head) {
        if (!room(c)) break;
        chan_t *ch = c->queued.head;
        if (send_cmd(c, CMD_SUB, ch->name, ch->len, ch->id) != 0) break;
        list_remove(ch);
        ch->st = CH_PENDING;
        list_push(&c->chans, ch);
    }
    flush(c);
}

/* ---- connections ---- */

static void conn_maybe_free(conn_t *c) {
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
    conn_t *c = h->data;
    c->handles--;
    conn_maybe_free(c);
}

/* Close c: out of the subscriber's table at once, freed when its handles
 * are closed. Its channels go idle (troubled when they were sent). */
static void conn_close(conn_t *c) {
    px_rsub_t *s = c->s;
    if (c->state == C_CLOSING) return;
    c->state = C_CLOSING;
    for (int i = 0; i < s->nconn; i++)
        if (s->conn[i] == c) {
            s->conn[i] = s->conn[--s->nconn];
            break;
        }
    if (!s->closing) {
        while (c->chans.head) to_idle(s, c->chans.head, true);
        while (c->queued.head) to_idle(s, c->queued.head, true);
    }
    while (c->unsubq.head) { /* their subscriptions end with the connection */
        chan_t *z = c->unsubq.head;
        list_remove(z);
        free(z);
    }
    if (c->gai_busy) uv_cancel((uv_req_t *)&c->gai);
    uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
    if (c->io_open) uv_close(&c->io.h, on_conn_handle_closed);
}

static void conn_fail(conn_t *c, bool proto, const char *fmt, ...) {
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
        log_failure(s, PX_LOG_WARN, "redis subscriber cannot connect", c->name, why);
    }
    conn_close(c);
    if (s->cluster) s->need_refresh = true;
    kick(s);
    update_state(s);
}

static void on_timer(uv_timer_t *t);

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    conn_t *c = h->data;
    (void)suggested;
    *buf = uv_buf_init(c->rbuf, sizeof c->rbuf);
}

static void handle_reply(conn_t *c, const redisReply *r);

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
    conn_t *c = st->data;
    px_rsub_t *s = c->s;
    (void)buf;
    if (nread == 0 || c->state == C_CLOSING) return;
    if (nread < 0) {
        conn_fail(c, false, "%s", nread == UV_EOF ? "closed by the server" : uv_strerror((int)nread));
        return;
    }
    char err[200];
    if (px_rsub_reader_feed(c->rd, c->rbuf, (size_t)nread, err, sizeof err) != 0) {
        conn_fail(c, true, "%s", err);
        return;
    }
    for (;;) {
        redisReply *r = NULL;
        int k = px_rsub_reader_next(c->rd, &r, err, sizeof err);
        if (k < 0) {
            conn_fail(c, true, "%s", err);
            return;
        }
        if (k == 0) break;
        handle_reply(c, r);
        freeReplyObject(r);
        if (s->closing || c->state == C_CLOSING) return;
    }
    pump(c); /* answers made room in the fifo; flushes */
}

static void on_ready(conn_t *c) {
    px_rsub_t *s = c->s;
    c->state = C_READY;
    s->st.connects++;
    px_log(s->failing ? PX_LOG_INFO : PX_LOG_DEBUG, s->comp, "redis subscriber connected", "node=%s channels=%zu",
           c->name, c->queued.n);
    int rc = uv_read_start(&c->io.st, on_alloc, on_read);
    if (rc < 0) {
        conn_fail(c, false, "read: %s", uv_strerror(rc));
        return;
    }
    uv_timer_start(&c->timer, on_timer, (uint64_t)s->ping_ms, (uint64_t)s->ping_ms);
    pump(c);
    update_state(s);
}

static void on_connect(uv_connect_t *req, int status) {
    conn_t *c = req->data;
    if (c->state == C_CLOSING) return;
    if (status < 0) {
        conn_fail(c, false, "connect: %s", uv_strerror(status));
        return;
    }
    on_ready(c);
}

static void connect_addr(conn_t *c, const struct sockaddr *sa) {
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
    if (rc < 0) conn_fail(c, false, "connect: %s", uv_strerror(rc));
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
    conn_t *c = req->data;
    c->gai_busy = false;
    if (c->state == C_CLOSING) {
        if (res) uv_freeaddrinfo(res);
        conn_maybe_free(c);
        return;
    }
    if (status < 0 || !res) {
        conn_fail(c, false, "resolve %s: %s", c->node.host, uv_strerror(status < 0 ? status : UV_EAI_NONAME));
        if (res) uv_freeaddrinfo(res);
        return;
    }
    connect_addr(c, res->ai_addr);
    uv_freeaddrinfo(res);
}

/* Open a connection to node nd (table slot taken at once). NULL when the
 * table is full or out of memory (logged). */
static conn_t *conn_open(px_rsub_t *s, const px_redis_node_t *nd) {
    if (s->nconn == PX_REDIS_NODES_MAX) {
        log_failure(s, PX_LOG_ERROR, "redis subscriber: too many connections", nd->host, "64 nodes at most");
        return NULL;
    }
    conn_t *c = calloc(1, sizeof *c);
    if (!c || !(c->rd = px_rsub_reader_new(s->max_reply))) {
        free(c);
        log_failure(s, PX_LOG_ERROR, "redis subscriber: out of memory", nd->host, "connection");
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
            conn_fail(c, false, "pipe: %s", uv_strerror(rc));
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
        conn_fail(c, false, "resolve %s: %s", nd->host, uv_strerror(rc));
        return NULL;
    }
    c->gai_busy = true;
    return c;
}

static bool same_node(const px_redis_node_t *a, const px_redis_node_t *b) {
    return a->port == b->port && strcmp(a->host, b->host) == 0;
}

static conn_t *conn_find(px_rsub_t *s, const px_redis_node_t *nd) {
    for (int i = 0; i < s->nconn; i++)
        if (same_node(&s->conn[i]->node, nd)) return s->conn[i];
    return NULL;
}

/* Connection timer: the connect timeout, then the PING period. */
static void on_timer(uv_timer_t *t) {
    conn_t *c = t->data;
    px_rsub_t *s = c->s;
    if (c->state == C_CLOSING) return;
    if (c->state != C_READY) {
        conn_fail(c, false, "connect timed out after %ld ms", s->timeout_ms);
        return;
    }
    uint64_t now = now_ms(s);
    if (fifo_bytes(c)) { /* commands out: the oldest must be answered in time */
        if (now - c->waiting_since >= (uint64_t)s->timeout_ms)
            conn_fail(c, false, "no answer for %llu ms", (unsigned long long)(now - c->waiting_since));
        return;
    }
    if (send_cmd(c, CMD_PING, "", 0, 0) == 0) flush(c); /* idle: ask for one */
}

/* ---- placing channels ---- */

/* Put idle channel ch on the connection of its slot's owner. false when
 * the map has no owner or no connection can be opened. */
static bool place(px_rsub_t *s, chan_t *ch) {
    int owner = s->cluster ? s->map->owner[ch->slot] : 0;
    if (owner == PX_REDIS_NO_NODE || owner >= s->map->nnodes) {
        s->need_refresh = true; /* a slot without a master: ask again */
        return false;
    }
    const px_redis_node_t *nd = &s->map->node[owner];
    conn_t *c = conn_find(s, nd);
    if (!c && !(c = conn_open(s, nd))) return false;
    list_remove(ch);
    ch->conn = c;
    ch->st = CH_QUEUED;
    list_push(&c->queued, ch);
    if (c->state == C_READY) pump(c);
    return true;
}

static void place_idle(px_rsub_t *s) {
    chan_t *next;
    for (chan_t *ch = s->idle.head; ch && !s->closing; ch = next) {
        next = ch->next;
        place(s, ch);
        /* a failed connect may have put channels back on the idle list
         * ahead of `next`; they wait for the next round */
    }
}

/* ---- the slot map ---- */

/* Read the map (blocking, see px_rsub.h). 0 or PX_EBACKEND (logged). */
static int refresh(px_rsub_t *s) {
    char err[256] = "";
    uint64_t t0 = uv_hrtime();
    int rc = px_rcl_refresh(s->rcl, err, sizeof err);
    uv_update_time(s->loop);
    long ms = (long)((uv_hrtime() - t0) / 1000000);
    if (rc != 0) {
        s->st.refresh_failures++;
        s->map_ok = false;
        log_failure(s, PX_LOG_WARN, "redis cluster slot map refresh failed", "(cluster)", err);
        return PX_EBACKEND;
    }
    s->st.refreshes++;
    px_redis_slots_t *m = s->map;
    m->nnodes = px_rcl_nodes(s->rcl);
    for (int i = 0; i < m->nnodes; i++) m->node[i] = *px_rcl_node(s->rcl, i);
    for (int sl = 0; sl < PX_REDIS_SLOTS; sl++) {
        int o = px_rcl_owner(s->rcl, sl);
        m->owner[sl] = o < 0 ? PX_REDIS_NO_NODE : (uint16_t)o;
    }
    s->map_known = s->map_ok = true;
    s->need_refresh = false;
    PX_DEBUG(s->comp, "redis cluster slot map read", "masters=%d ms=%ld", m->nnodes, ms);
    /* Connections to nodes that own nothing now (demoted, removed) go. */
    for (int i = s->nconn - 1; i >= 0; i--) {
        conn_t *c = s->conn[i];
        bool owns = false;
        for (int j = 0; j < m->nnodes && !owns; j++) owns = same_node(&m->node[j], &c->node);
        if (!owns) {
            PX_INFO(s->comp, "redis subscriber: node no longer a master, closing", "node=%s channels=%zu", c->name,
                    c->chans.n + c->queued.n);
            conn_close(c);
        }
    }
    return 0;
}

/* MOVED slot host:port answered by c: the slot's owner is that node. */
static void patch_map(px_rsub_t *s, conn_t *c, const px_redis_redirect_t *rr) {
    px_redis_node_t to = rr->to;
    if (!to.host[0]) snprintf(to.host, sizeof to.host, "%s", c->node.host);
    px_redis_slots_t *m = s->map;
    int i = 0;
    while (i < m->nnodes && !same_node(&m->node[i], &to)) i++;
    if (i == m->nnodes) {
        if (m->nnodes == PX_REDIS_NODES_MAX) {
            s->need_refresh = true;
            return;
        }
        m->node[m->nnodes++] = to;
    }
    m->owner[rr->slot] = (uint16_t)i;
}

/* ---- recovery ---- */

static void on_recover(uv_timer_t *t) {
    px_rsub_t *s = t->data;
    if (s->closing) return;
    s->attempt++;
    if (s->cluster && (s->need_refresh || !s->map_known)) {
        if (refresh(s) != 0) {
            update_state(s);
            kick(s);
            return;
        }
    }
    if (s->idle.n)
        PX_DEBUG(s->comp, "redis subscriber: placing channels", "channels=%zu attempt=%d", s->idle.n, s->attempt);
    if (!s->cluster && s->nconn == 0) conn_open(s, &s->map->node[0]);
    place_idle(s);
    if (s->closing) return;
    if (s->idle.n || (!s->cluster && s->nconn == 0)) kick(s);
    update_state(s);
}

/* Arm the recovery timer at the current backoff step (once). */
static void kick(px_rsub_t *s) {
    if (s->closing || uv_is_active((uv_handle_t *)&s->timer)) return;
    uint64_t delay = 0;
    if (s->attempt > 0) {
        int shift = s->attempt - 1 > 20 ? 20 : s->attempt - 1;
        uint64_t d = (uint64_t)s->retry_min_ms << shift;
        delay = d > (uint64_t)s->retry_max_ms ? (uint64_t)s->retry_max_ms : d;
    }
    uv_timer_start(&s->timer, on_recover, delay, 0);
}

static void on_notify(uv_timer_t *t) { update_state(t->data); }

static void update_state(px_rsub_t *s) {
    if (s->closing) return;
    bool base = s->cluster ? s->map_ok : (s->nconn == 1 && s->conn[0]->state == C_READY);
    bool up = base && s->ntroubled == 0;
    if (s->in_api) { /* report from the loop, not from inside the caller's call */
        if (up != s->up) uv_timer_start(&s->notify, on_notify, 0, 0);
        return;
    }
    if (base && s->ntroubled == 0 && s->idle.n == 0) s->attempt = 0;
    if (up && s->failing) { /* the end of a run of failures */
        PX_INFO(s->comp, "redis subscriptions restored", "down_ms=%llu channels=%zu live=%zu",
                (unsigned long long)(s->down_since ? now_ms(s) - s->down_since : 0), s->nchan, s->nlive);
        s->failing = false;
    }
    if (up == s->up) return;
    s->up = up;
    s->down_since = up ? 0 : now_ms(s);
    if (s->h.on_state) s->h.on_state(s->h.ud, up);
}

/* ---- answers ---- */

static void confirm(conn_t *c, const fifo_hdr_t *cmd, const char *name) {
    px_rsub_t *s = c->s;
    chan_t *ch = lookup(s, name, cmd->len);
    if (!ch || ch->id != cmd->id || ch->conn != c || ch->st != CH_PENDING) return; /* deleted since */
    ch->st = CH_LIVE;
    ch->moves = 0;
    s->nlive++;
    bool again = ch->ever;
    ch->ever = true;
    if (ch->troubled) {
        ch->troubled = false;
        s->ntroubled--;
    }
    s->st.subscribes++;
    if (again) s->st.resubscribes++;
    if (s->h.on_subscribed) s->h.on_subscribed(s->h.ud, ch->name, ch->len, again);
    update_state(s);
}

/* An error answer to the subscribe of channel `name` (id). */
static void sub_refused(conn_t *c, const fifo_hdr_t *cmd, const char *name, const char *err, size_t errlen) {
    px_rsub_t *s = c->s;
    chan_t *ch = lookup(s, name, cmd->len);
    if (!ch || ch->id != cmd->id || ch->conn != c || ch->st != CH_PENDING) return;
    px_redis_redirect_t rr;
    if (s->cluster && px_redis_redirect_parse(err, errlen, &rr) == PX_REDIS_MOVED && rr.slot == ch->slot) {
        s->st.moved++;
        PX_DEBUG(s->comp, "redis subscribe moved", "node=%s slot=%d to=%s:%d", c->name, rr.slot,
                 rr.to.host[0] ? rr.to.host : c->node.host, rr.to.port);
        patch_map(s, c, &rr);
        to_idle(s, ch, false);
        /* Follow a redirection at once, a few times; past that the nodes
         * disagree (a migration mid-way): wait for the backoff. */
        if (ch->moves++ < 3 && place(s, ch)) return;
    } else {
        s->st.errors++;
        char q[256], e[200];
        snprintf(e, sizeof e, "%.*s", (int)(errlen > 190 ? 190 : errlen), err);
        px_log(s->failing ? PX_LOG_DEBUG : PX_LOG_WARN, s->comp, "redis subscribe refused", "node=%s err=%s",
               c->name, px_log_q(q, sizeof q, e));
        s->failing = true;
        to_idle(s, ch, true);
        if (s->cluster) s->need_refresh = true;
    }
    kick(s);
    update_state(s);
}

/* The server unsubscribed `name` on its own (its slot left the node). */
static void unsubscribed(conn_t *c, const char *name, size_t len) {
    px_rsub_t *s = c->s;
    chan_t *ch = lookup(s, name, len);
    if (!ch || ch->conn != c || ch->st != CH_LIVE) return;
    s->st.unsubscribed++;
    PX_DEBUG(s->comp, "redis unsubscribed a wanted channel", "node=%s", c->name);
    if (!s->failing) {
        char q[PX_RSUB_CHANNEL_MAX + 64];
        char nm[PX_RSUB_CHANNEL_MAX + 1];
        snprintf(nm, sizeof nm, "%.*s", (int)len, name);
        PX_INFO(s->comp, "redis unsubscribed wanted channels (slot moved or node demoted): subscribing again",
                "node=%s first=%s", c->name, px_log_q(q, sizeof q, nm));
        s->failing = true;
    }
    to_idle(s, ch, true);
    if (s->cluster) s->need_refresh = true;
    kick(s);
    update_state(s);
}

static void handle_reply(conn_t *c, const redisReply *r) {
    px_rsub_t *s = c->s;
    px_rsub_push_t p;
    const char *name = NULL;
    fifo_hdr_t *head = fifo_peek(c, &name);
    switch (px_rsub_push_parse(r, &p)) {
    case PX_RSUB_PUSH_MESSAGE:
        if (!lookup(s, p.channel, p.channel_len)) {
            s->st.stray++;
            return;
        }
        s->st.messages++;
        if (s->h.on_message) s->h.on_message(s->h.ud, p.channel, p.channel_len, p.data, p.data_len);
        return;
    case PX_RSUB_PUSH_SUBSCRIBED:
        if (!head || head->kind != CMD_SUB || head->len != p.channel_len || memcmp(name, p.channel, head->len) != 0)
            break;
        {
            fifo_hdr_t h = *head;
            char nm[PX_RSUB_CHANNEL_MAX];
            memcpy(nm, name, h.len);
            fifo_pop(c);
            confirm(c, &h, nm);
        }
        return;
    case PX_RSUB_PUSH_UNSUBSCRIBED:
        if (head && head->kind == CMD_UNSUB && head->len == p.channel_len &&
            memcmp(name, p.channel, head->len) == 0) {
            if (head->got++ == 1) fifo_pop(c); /* both pushes of our command came */
            return;
        }
        unsubscribed(c, p.channel, p.channel_len);
        return;
    case PX_RSUB_PUSH_PONG:
        if (!head || head->kind != CMD_PING) break;
        fifo_pop(c);
        return;
    case PX_RSUB_PUSH_ERROR:
        if (!head) break;
        if (head->kind == CMD_SUB) {
            fifo_hdr_t h = *head;
            char nm[PX_RSUB_CHANNEL_MAX];
            memcpy(nm, name, h.len);
            fifo_pop(c);
            sub_refused(c, &h, nm, p.data, p.data_len);
        } else if (head->kind == CMD_UNSUB) {
            fifo_pop(c); /* MOVED: the slot left, so did the subscription */
        } else {
            conn_fail(c, false, "PING refused: %.*s", (int)(p.data_len > 200 ? 200 : p.data_len), p.data);
        }
        return;
    case PX_RSUB_PUSH_INVALID:
        conn_fail(c, true, "unexpected reply (type %d, %zu elements)", r->type,
                  r->type == REDIS_REPLY_ARRAY ? r->elements : (size_t)0);
        return;
    }
    conn_fail(c, true, "reply out of order: %s for %s",
              p.kind == PX_RSUB_PUSH_SUBSCRIBED ? "a subscribe confirmation"
              : p.kind == PX_RSUB_PUSH_PONG     ? "a PONG"
                                                : "an error",
              !head ? "no command" : head->kind == CMD_SUB ? "a subscribe" : head->kind == CMD_UNSUB ? "an unsubscribe" : "a PING");
}

/* ==== the API =========================================================== */

static char *dup_or_null(const char *s) {
    return s ? strdup(s) : NULL;
}

px_rsub_t *px_rsub_new(uv_loop_t *loop, const px_rsub_conf_t *conf, const px_rsub_handlers_t *h, char *errstr,
                       size_t errstr_size) {
    char err[256];
    if (!conf->cluster && (!conf->host || px_redis_host_check(conf->host, err, sizeof err) != 0)) {
        px_errf(PX_ECONFIG, errstr, errstr_size, "%s", conf->host ? err : "no Redis server given");
        return NULL;
    }
    px_rsub_t *s = calloc(1, sizeof *s);
    if (!s) goto oom;
    s->loop = loop;
    s->cluster = conf->cluster;
    s->port = conf->port;
    s->timeout_ms = conf->timeout_ms > 0 ? conf->timeout_ms : 1000;
    s->refresh_timeout_ms = conf->refresh_timeout_ms > 0 ? conf->refresh_timeout_ms : 250;
    s->ping_ms = conf->ping_ms > 0 ? conf->ping_ms : 1000;
    s->retry_min_ms = conf->retry_min_ms > 0 ? conf->retry_min_ms : 50;
    s->retry_max_ms = conf->retry_max_ms > 0 ? conf->retry_max_ms : 1000;
    if (s->retry_max_ms < s->retry_min_ms) s->retry_max_ms = s->retry_min_ms;
    s->max_channels = conf->max_channels ? conf->max_channels : 100000;
    s->max_reply = conf->max_reply ? conf->max_reply : 4u << 20;
    s->max_wbuf = conf->max_wbuf ? conf->max_wbuf : 4u << 20;
    if (s->max_wbuf < 4096) s->max_wbuf = 4096; /* a subscribe of the longest name fits */
    if (h) s->h = *h;
    s->host = dup_or_null(conf->host);
    s->seeds = dup_or_null(conf->seeds);
    s->comp = strdup(conf->log_comp ? conf->log_comp : "redis-sub");
    s->map = calloc(1, sizeof *s->map);
    if ((conf->host && !s->host) || (conf->seeds && !s->seeds) || !s->comp || !s->map) goto oom;
    if (s->cluster) {
        px_rcl_conf_t rc = {.host = s->host, .port = s->port, .cluster = true, .seeds = s->seeds,
                            .timeout_ms = s->refresh_timeout_ms, .retry_ms = s->refresh_timeout_ms};
        s->rcl = px_rcl_new(&rc, errstr, errstr_size);
        if (!s->rcl) goto fail;
        for (int i = 0; i < PX_REDIS_SLOTS; i++) s->map->owner[i] = PX_REDIS_NO_NODE;
    } else {
        snprintf(s->map->node[0].host, sizeof s->map->node[0].host, "%s", s->host);
        s->map->node[0].port = s->port;
        s->map->nnodes = 1;
        s->map_known = s->map_ok = true;
    }
    uv_timer_init(loop, &s->timer);
    s->timer.data = s;
    uv_timer_init(loop, &s->notify);
    s->notify.data = s;
    s->alive = 2;
    kick(s); /* the first connection or map, from the loop */
    return s;
oom:
    px_errf(PX_ENOMEM, errstr, errstr_size, "out of memory");
fail:
    if (s) {
        px_rcl_free(s->rcl);
        free(s->map);
        free(s->host);
        free(s->seeds);
        free(s->comp);
        free(s);
    }
    return NULL;
}

static void on_timer_closed(uv_handle_t *h) {
    px_rsub_t *s = h->data;
    if (--s->alive == 0) {
        free(s->map);
        free(s);
    }
}

void px_rsub_free(px_rsub_t *s) {
    if (!s || s->closing) return;
    s->closing = true;
    while (s->nconn) conn_close(s->conn[s->nconn - 1]);
    for (size_t i = 0; i < s->nbucket; i++)
        for (chan_t *c = s->bucket[i], *nx; c; c = nx) {
            nx = c->hnext;
            free(c);
        }
    free(s->bucket);
    s->bucket = NULL;
    s->nbucket = s->nchan = 0;
    s->idle.head = NULL;
    px_rcl_free(s->rcl);
    s->rcl = NULL;
    free(s->host);
    free(s->seeds);
    free(s->comp);
    s->host = s->seeds = s->comp = NULL;
    uv_close((uv_handle_t *)&s->timer, on_timer_closed);
    uv_close((uv_handle_t *)&s->notify, on_timer_closed);
}

static int add(px_rsub_t *s, const char *name, size_t len);
static int del(px_rsub_t *s, const char *name, size_t len);

int px_rsub_add(px_rsub_t *s, const char *name, size_t len) {
    s->in_api++;
    int rc = add(s, name, len);
    s->in_api--;
    return rc;
}

int px_rsub_del(px_rsub_t *s, const char *name, size_t len) {
    s->in_api++;
    int rc = del(s, name, len);
    s->in_api--;
    return rc;
}

static int add(px_rsub_t *s, const char *name, size_t len) {
    if (s->closing || len == 0 || len > PX_RSUB_CHANNEL_MAX) return PX_EINVAL;
    if (lookup(s, name, len)) return 0;
    if (s->nchan >= s->max_channels) {
        s->st.refused++;
        return PX_ENOMEM;
    }
    if (s->nchan >= s->nbucket && table_grow(s) != 0) {
        s->st.refused++;
        return PX_ENOMEM;
    }
    chan_t *ch = calloc(1, sizeof *ch + len + 1);
    if (!ch) {
        s->st.refused++;
        return PX_ENOMEM;
    }
    memcpy(ch->name, name, len);
    ch->len = (uint32_t)len;
    ch->hash = px_fnv1a(PX_FNV1A_INIT, name, len);
    ch->id = ++s->serial;
    ch->slot = (uint16_t)px_redis_slot(name, len);
    ch->hnext = s->bucket[ch->hash & (s->nbucket - 1)];
    s->bucket[ch->hash & (s->nbucket - 1)] = ch;
    s->nchan++;
    list_push(&s->idle, ch);
    if (s->map_known && !place(s, ch)) kick(s);
    return 0;
}

static int del(px_rsub_t *s, const char *name, size_t len) {
    if (s->closing) return 0;
    chan_t *ch = lookup(s, name, len);
    if (!ch) return 0;
    conn_t *c = ch->conn;
    bool sent = ch->st == CH_PENDING || ch->st == CH_LIVE;
    if (ch->st == CH_LIVE) s->nlive--;
    if (ch->troubled) s->ntroubled--;
    list_remove(ch);
    table_remove(s, ch);
    if (sent && c && c->state == C_READY) { /* unsubscribed when there is room */
        ch->st = CH_UNSUB;
        ch->conn = c;
        list_push(&c->unsubq, ch);
        pump(c);
    } else {
        free(ch);
    }
    update_state(s);
    return 0;
}

int px_rsub_channel_state(const px_rsub_t *s, const char *name, size_t len) {
    const chan_t *ch = lookup(s, name, len);
    return !ch ? -1 : ch->st == CH_LIVE ? 1 : 0;
}

bool px_rsub_up(const px_rsub_t *s) { return s->up; }

px_rsub_stats_t px_rsub_stats(const px_rsub_t *s) {
    px_rsub_stats_t st = s->st;
    st.channels = s->nchan;
    st.live = s->nlive;
    st.connections = (size_t)s->nconn;
    return st;
}
