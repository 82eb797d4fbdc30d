/*
 * px_rsub_int.h - the subscriber's state, shared by its two halves (not
 * part of the API in px_rsub.h):
 *   px_rsub_conn.c  one connection to one node: connect (TCP or Unix
 *                   socket), the write buffers and the fifo of commands
 *                   sent, the bounded read, the connect timeout, PINGs;
 *   px_rsub.c       the channel table, where each channel goes (the slot
 *                   map), recovery, what each answer means, the API.
 * px_rsub.c calls px_rsub_conn.c (the functions below); px_rsub_conn.c
 * reaches px_rsub.c only through the two hooks in px_rsub_t. Both run on
 * the loop's thread only. The pure parts (reader, push parser) are in
 * px_rsub_reader.c.
 *
 * State. Every wanted channel is a px_rsub_chan_t in a hash table (by
 * name) and in exactly one list: the subscriber's `idle` list (no node yet:
 * just added before the map is known, or lost), or one connection's
 * `queued` list (waiting for the connection or for room in its write
 * buffer) or its `chans` list (SUBSCRIBE sent: PENDING until confirmed,
 * then LIVE). A deleted channel whose UNSUBSCRIBE waits for room is out of
 * the table, on its connection's `unsubq`. A connection talks to one node
 * (by host:port); its `fifo` records, in order, each command written and
 * not yet answered (kind, the channel's name and id), which is how an
 * answer finds its command: the server answers commands in order, and the
 * only things it sends unasked are messages and the unsubscribes of a slot
 * that left the node.
 */
#ifndef PX_RSUB_INT_H
#define PX_RSUB_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "px_buf.h"
#include "px_log.h"
#include "px_redis_cluster.h"
#include "px_redis_slot.h"
#include "px_rsub.h"

#define RSUB_READ_CHUNK 16384

typedef enum { CH_IDLE = 0, CH_QUEUED, CH_PENDING, CH_LIVE, CH_UNSUB } px_rsub_ch_state_t;

typedef struct px_rsub_chan px_rsub_chan_t;
typedef struct px_rsub_chlist {
    px_rsub_chan_t *head;
    size_t n;
} px_rsub_chlist_t;

struct px_rsub_chan {
    px_rsub_chan_t *hnext;       /* hash chain */
    px_rsub_chan_t *prev, *next; /* in *in */
    px_rsub_chlist_t *in;
    struct px_rsub_conn *conn;   /* NULL when idle */
    uint64_t hash, id;
    px_rsub_ch_state_t st;
    bool ever;                   /* confirmed once */
    bool troubled;               /* lost by a failure, not confirmed since */
    uint8_t moves;               /* MOVED answers since the last confirmation */
    uint16_t slot;
    uint32_t len;
    char name[];
};

typedef enum { C_RESOLVING, C_CONNECTING, C_READY, C_CLOSING } px_rsub_conn_state_t;
typedef enum { CMD_SUB = 1, CMD_UNSUB, CMD_PING } px_rsub_cmd_kind_t;

typedef struct px_rsub_fifo_hdr { /* one unanswered command in conn->fifo */
    uint8_t kind, got;
    uint32_t len;
    uint64_t id;
} px_rsub_fifo_hdr_t;

typedef struct px_rsub_conn {
    px_rsub_t *s;
    px_redis_node_t node;
    char name[PX_REDIS_HOST_MAX + 16]; /* for messages */
    px_rsub_conn_state_t state;
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
    px_rsub_chlist_t queued, chans;
    px_rsub_chlist_t unsubq; /* deleted channels whose UNSUBSCRIBE waits for room */
    uint64_t waiting_since;  /* loop time since when the oldest command waits for its answer */
    char rbuf[RSUB_READ_CHUNK];
} px_rsub_conn_t;

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

    px_rsub_conn_t *conn[PX_REDIS_NODES_MAX];
    int nconn;

    px_rsub_chan_t **bucket;
    size_t nbucket, nchan, nlive, ntroubled;
    px_rsub_chlist_t idle;
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
    /* What a connection reports to the subscriber (set by px_rsub_new):
     * px_rsub_conn.c calls px_rsub.c only through these. conn_reply: each
     * reply c reads, in order (the caller frees it; c may be failed from
     * inside). conn_changed: a connection became ready, or failed and was
     * closed (its channels already idle). */
    void (*conn_reply)(px_rsub_conn_t *c, const redisReply *r);
    void (*conn_changed)(px_rsub_t *s, bool failed);
};

/* ---- lists, time, failures (both halves) ---- */

static inline void px_rsub_list_push(px_rsub_chlist_t *l, px_rsub_chan_t *c) {
    c->in = l;
    c->prev = NULL;
    c->next = l->head;
    if (l->head) l->head->prev = c;
    l->head = c;
    l->n++;
}

static inline void px_rsub_list_remove(px_rsub_chan_t *c) {
    px_rsub_chlist_t *l = c->in;
    if (!l) return;
    if (c->prev) c->prev->next = c->next;
    else l->head = c->next;
    if (c->next) c->next->prev = c->prev;
    c->prev = c->next = NULL;
    c->in = NULL;
    l->n--;
}

static inline uint64_t px_rsub_now_ms(const px_rsub_t *s) { return uv_now(s->loop); }

/* Log a failure: the first of a run at `level`, the rest at debug (all
 * are counted by the caller); the recovery ends the run (update_state). */
static inline void px_rsub_log_failure(px_rsub_t *s, px_log_level_t level, const char *msg, const char *node,
                                       const char *why) {
    char q[320];
    px_log(s->failing ? PX_LOG_DEBUG : level, s->comp, msg, "node=%s err=%s", node, px_log_q(q, sizeof q, why));
    s->failing = true;
}

/* Channel c leaves its connection (or the idle list) for the idle list. A
 * subscription lost (it was sent or confirmed) marks it troubled. */
static inline void px_rsub_to_idle(px_rsub_t *s, px_rsub_chan_t *c, bool trouble) {
    if (c->st == CH_LIVE) s->nlive--;
    px_rsub_list_remove(c);
    c->conn = NULL;
    c->st = CH_IDLE;
    if (trouble && !c->troubled) {
        c->troubled = true;
        s->ntroubled++;
    }
    px_rsub_list_push(&s->idle, c);
}

static inline bool px_rsub_same_node(const px_redis_node_t *a, const px_redis_node_t *b) {
    return a->port == b->port && strcmp(a->host, b->host) == 0;
}

/* ---- one connection (px_rsub_conn.c) ---- */

/* Open a connection to node nd: in s's table at once (s->conn), connected
 * from the loop; its timer bounds the connect by timeout_ms. NULL when the
 * table is full or out of memory (logged), or when the connect failed at
 * once (then reported through conn_changed). */
px_rsub_conn_t *px_rsub_conn_open(px_rsub_t *s, const px_redis_node_t *nd);
/* s's connection to nd (open or opening), or NULL. */
px_rsub_conn_t *px_rsub_conn_find(px_rsub_t *s, const px_redis_node_t *nd);
/* Close c: out of s's table at once, freed when its handles are closed
 * (the subscriber too, if it is closing and c was its last). Its channels
 * go idle, troubled when they were sent (unless the subscriber is
 * closing); its unsubscribes waiting for room are dropped. No hook fires. */
void px_rsub_conn_close(px_rsub_conn_t *c);
/* c failed (proto: the server broke the protocol): counted, logged (a run
 * of failures once), closed, then conn_changed(s, true). A no-op on a
 * closing connection. */
void px_rsub_conn_fail(px_rsub_conn_t *c, bool proto, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Write what waits on a ready c while its buffers have room: the
 * unsubscribes of deleted channels first (a channel deleted and added
 * again must be unsubscribed before it is subscribed; each is freed once
 * written), then queued subscribes (their channels become PENDING, on
 * c->chans). May fail c (a write error). */
void px_rsub_conn_pump(px_rsub_conn_t *c);
/* The oldest command c has not had an answer to, or NULL; *name its
 * channel (valid until the next px_rsub_fifo_pop or write on c). */
px_rsub_fifo_hdr_t *px_rsub_fifo_peek(px_rsub_conn_t *c, const char **name);
/* That command is answered: drop it (c's answer deadline restarts). */
void px_rsub_fifo_pop(px_rsub_conn_t *c);

#endif
