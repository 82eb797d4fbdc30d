/*
 * gw.h - presence-gateway: shared context and the internal API between its
 * files. One libuv loop carries everything: libwebsockets (gw_ws.c),
 * hiredis async for reads and pub/sub (gw_redis.c), and the librdkafka
 * producer's queue (gw_kafka.c). No thread per connection.
 *
 * Data flow: a browser's SUB/HB/UNSUB becomes a PresenceEvent produced to
 * presence.heartbeats, LOCK/UNLOCK a LockEvent to presence.locks (key
 * tenant:entity:id). The processor folds it into Redis and publishes the
 * changes on presence:updates:{key}. The gateway, subscribed to the
 * channels of the entities its connections watch, answers LOCKs from the
 * changes (gw_locks.c), re-reads the entity from Redis and pushes a
 * PRESENCE message to each watching connection. REST routes: gw_rest.c.
 * Bounds and their error codes: docs/protocol.md.
 */
#ifndef PX_GW_H
#define PX_GW_H

#include <stdbool.h>
#include <stdint.h>

#include <hiredis/async.h>
#include <librdkafka/rdkafka.h>
#include <libwebsockets.h>
#include <uv.h>

#include "px_avro.h"
#include "px_registry.h"
#include "px_buf.h"
#include "px_config.h"
#include "px_redis_conf.h"
#include "px_err.h"
#include "px_event.h"
#include "px_hash.h"
#include "px_kafka.h"
#include "px_key.h"
#include "px_metrics.h"
#include "px_proto.h"

#define GW_COMP "gateway"
#define GW_MAX_TABS 512 /* most live tabs one PRESENCE reports */
#define GW_MAX_LOCKS 64 /* most live locks one PRESENCE reports (the fold's cap) */
/* A subscriber's own tab is merged into the PRESENCEs it is sent until the
 * processor's fold of its SUB shows in Redis, for at most this long
 * (gw_redis.c; docs/protocol.md, SUB). */
#define GW_SELF_MERGE_MS 10000
/* The head (request line and headers) of an HTTP request or WebSocket
 * handshake. libwebsockets 4.1 keeps it in one buffer of GW_HTTP_HEAD_MAX
 * bytes and cuts each field (the URI's path, each query argument, each
 * header it knows) one byte past GW_HTTP_FIELD_MAX (gw_ws.c
 * head_limits), so a longer field is seen, however long, and refused with
 * 414 or 431 (head_too_large). A head that fills the buffer otherwise
 * (many large fields, a large header lws does not know, more fields than
 * its table holds) lws drops without a response. Buffers that copy one
 * field out hold GW_HTTP_FIELD_MAX bytes and the argument's name. */
#define GW_HTTP_HEAD_MAX 8192
#define GW_HTTP_FIELD_MAX 4096
#define GW_HTTP_FIELD_BUF (GW_HTTP_FIELD_MAX + 64)
/* Development mode's tenant when the query names none: the demo page's. */
#define GW_DEV_TENANT "demo"

typedef struct gw_config {
    char http_host[PX_CONF_STR_MAX];
    int64_t http_port;
    bool reuse_port; /* SO_REUSEPORT on the listening socket */
    char redis_host[PX_CONF_STR_MAX];
    int64_t redis_port;
    char topic_prefix[PX_CONF_STR_MAX];
    char topic_heartbeats[PX_CONF_STR_MAX];
    char topic_locks[PX_CONF_STR_MAX];
    char jwt_secret[PX_CONF_STR_MAX];
    bool dev_mode;
    char web_dir[PX_CONF_STR_MAX];
    char gateway_id[PX_CONF_STR_MAX];
    char log_level[PX_CONF_STR_MAX];
    int64_t max_subs_per_conn;
    int64_t max_out_bytes;
    int64_t max_connections;
    int64_t max_msg_bytes;          /* <= PX_PROTO_MAX_MSG */
    int64_t msgs_per_sec;           /* token bucket refill per connection */
    int64_t msgs_burst;             /* token bucket size */
    int64_t rest_per_min;           /* REST requests per minute per user */
    int64_t lock_timeout_ms;        /* LOCK without outcome -> ERROR TIMEOUT */
    int64_t max_pending_locks;      /* LOCKs awaiting their outcome per connection */
    char allowed_origins[PX_CONF_STR_MAX]; /* comma list; empty: any origin */
    bool deflate;                   /* offer permessage-deflate */
    int64_t idle_ping_s;            /* PING a silent connection after this; 0: never */
    px_schema_conf_t schema;        /* avro.wire_format, schema.registry.* */
    px_redis_conf_t redis;          /* redis.cluster, redis.nodes, redis.sentinels, redis.master_name */
} gw_config_t;

/* Who a connection is, from its JWT (or the dev-mode query). */
typedef struct gw_identity {
    char user_id[PX_ID_MAX + 1];
    char user_name[PX_NAME_MAX + 1];
    char tenant[PX_KEY_PART_MAX + 1];
} gw_identity_t;

typedef struct gw_conn gw_conn_t;
typedef struct gw_entity gw_entity_t;

/* One queued outbound message: LWS_PRE bytes of headroom, then the text. */
typedef struct gw_out {
    struct gw_out *next;
    struct gw_sub *sub; /* a PRESENCE: the sub whose latest state it is (coalescing) */
    bool dead;          /* superseded by a newer PRESENCE: skipped, not written */
    size_t len;
    unsigned char data[]; /* LWS_PRE + len */
} gw_out_t;

/* A lock this connection's tab holds (granted by the processor, as its
 * LOCK_ACK said), released with an UNLOCK when the connection closes. */
typedef struct gw_held {
    struct gw_held *next;
    char field[PX_ID_MAX + 1];
} gw_held_t;

/* A LOCK waiting for its outcome on the entity's channel. Lives in the
 * context's list (in deadline order, since every deadline is now + the same
 * bound), in its hash bucket (by rid) and in its connection's list. */
typedef struct gw_pending {
    struct gw_pending *prev, *next; /* gw->pend_head list, oldest first */
    struct gw_pending *hnext;       /* hash chain */
    struct gw_pending *cnext;       /* conn->pending */
    gw_conn_t *conn;
    px_key_t key;
    char field[PX_ID_MAX + 1];
    char rid[PX_ID_MAX + 1];        /* the gateway's id, in the Kafka record */
    char client_rid[PX_ID_MAX + 1]; /* the client's, echoed in LOCK_ACK */
    int64_t sent_ms;
    int64_t deadline_ms;
} gw_pending_t;

/* A connection's subscription to one entity; also a node of the entity's
 * list of watchers. */
typedef struct gw_sub {
    gw_conn_t *conn;
    gw_entity_t *ent;
    struct gw_sub *next_in_conn;
    struct gw_sub *next_in_ent;
    px_mode_t mode;
    bool dirty;
    px_status_t status;
    gw_held_t *held;     /* locks the tab holds on this entity */
    gw_out_t *presence;  /* a PRESENCE of this entity still queued, replaced by a newer one */
    /* The SUB's fold is not in the view yet: the tab is merged into this
     * sub's PRESENCEs (gw_redis.c), until the view holds it joined at or
     * after self_ts_ms, or self_until_ms (monotonic) has passed and one
     * merged PRESENCE went out. */
    bool self_pending;
    bool self_sent;       /* a merged PRESENCE went out since the SUB */
    int64_t self_ts_ms;   /* the SUB record's ts (wall clock), as the fold's `since` */
    int64_t self_until_ms;
} gw_sub_t;

struct gw_conn {
    struct lws *wsi;
    struct gw_ctx *gw;
    gw_identity_t who;
    char tab_id[PX_ID_MAX + 1];
    gw_sub_t *subs;
    int n_subs;
    gw_out_t *out_head, *out_tail;
    gw_out_t *draining; /* a deflated message lws may still be compressing (gw_ws.c conn_writeable) */
    size_t out_bytes;
    px_buf_t rx; /* reassembles fragmented frames, capped at PX_PROTO_MAX_MSG */
    bool rx_binary;       /* the message being received is binary: refused */
    bool closing;
    uint16_t close_code;  /* with closing: the close frame's code */
    gw_pending_t *pending; /* LOCKs awaiting their outcome */
    int n_pending;
    double tokens;         /* rate limit bucket */
    int64_t tokens_ms;     /* last refill */
    int64_t limited_ms;    /* last RATE_LIMITED sent */
    /* idle policy (gw_ws.c idle sweep): every live connection is on
     * gw->live, with the monotonic time of its last frame in */
    struct gw_conn *live_prev, *live_next;
    int64_t last_rx_ms;
    bool ping_due; /* write a PING at the next WRITEABLE */
    bool pinged;   /* a PING went out after idle_ping_s of silence */
    bool direct;   /* accepted, no permessage-deflate: a send may be written at once (gw_ws.c) */
};

/* An entity some local connection watches: the Redis channel is subscribed
 * while the list is non-empty. */
struct gw_entity {
    px_key_t key;
    char keystr[PX_KEY_MAX + 1];
    gw_sub_t *subs;
    struct gw_entity *next; /* hash chain */
    bool refreshing;        /* a Redis read is in flight */
    bool refresh_again;     /* another change came meanwhile: read once more */
    int64_t changed_ms;     /* first unpushed change notification (push latency) */
};

/* One HTTP request on a connection (REST or operations). The response is
 * staged here and written in HTTP_WRITEABLE: headers in one callback, the
 * body in the next. `op` is a REST read in flight; it outlives the request
 * if the client goes away first (gw_rest.c). */
typedef struct gw_http {
    struct lws *wsi;
    px_buf_t resp; /* LWS_PRE zero bytes, then the body */
    unsigned status;
    const char *ctype;
    bool staged, hdr_sent;
    bool answered; /* a response was staged for this request */
    px_buf_t req;           /* request body, capped */
    bool req_overflow;
    int method;             /* GW_HTTP_GET, ... */
    char path[256];
    gw_identity_t who;
    struct gw_rest_op *op;
} gw_http_t;

enum { GW_HTTP_OTHER = 0, GW_HTTP_GET, GW_HTTP_POST, GW_HTTP_DELETE };

typedef struct gw_listen gw_listen_t;

typedef struct gw_ctx {
    gw_config_t cfg;
    px_kvlist_t kafka_kv;
    uv_loop_t *loop;
    struct lws_context *lws;
    gw_listen_t *listener; /* http.reuse_port: the gateway's own listening socket (gw_listen.c) */
    px_metrics_t *metrics;
    px_avro_t *avro;
    px_registry_t *registry; /* NULL without schema.registry.url */
    px_buf_t scratch;
    px_buf_t wbuf; /* LWS_PRE bytes, then one message written at once (gw_ws.c) */

    /* Kafka */
    rd_kafka_t *rk;
    rd_kafka_topic_t *rkt_hb, *rkt_locks;
    rd_kafka_queue_t *rkqu; /* main queue, watched by rk_uv */
    px_kafka_uv_t *rk_uv;
    bool kafka_up;
    char topic_hb[PX_CONF_STR_MAX * 2];
    char topic_locks[PX_CONF_STR_MAX * 2];

    /* Redis: one connection for reads, one for pub/sub */
    redisAsyncContext *rcmd, *rsub;
    struct px_view_tab *tabs;  /* GW_MAX_TABS scratch for building a PRESENCE */
    size_t n_tabs;             /* live tabs in `tabs` after the last decode */
    px_buf_t scratch_self;     /* a PRESENCE with the subscriber's own tab merged in */
    px_viewer_t *viewers;
    struct px_view_lock *locks; /* GW_MAX_LOCKS scratch, decoded from the view */
    px_lock_view_t *lock_views;
    char busy_by[PX_NAME_MAX + 1]; /* scratch: the view's busyBy */
    bool rcmd_up, rsub_up;
    uv_timer_t redis_retry;
    uv_timer_t redis_watchdog; /* PINGs rcmd: hiredis 0.14 may miss a dead socket */
    int64_t ping_sent_ms;      /* 0: no PING outstanding */
    int64_t watchdog_ms;       /* the watchdog's last tick (a late tick: the loop was busy) */
    int64_t dial_ms;           /* when the connections were last dialled */

    /* entities watched by local connections */
    gw_entity_t **ents;
    size_t n_ent_buckets;
    size_t n_ents;
    int n_conns;
    uint64_t tab_seq;
    gw_conn_t *live;      /* every open WebSocket connection (idle sweep) */
    uv_timer_t idle_timer; /* the idle sweep, every second when limits.idle_ping_s > 0 */

    /* LOCKs awaiting their outcome (gw_locks.c) */
    gw_pending_t *pend_head, *pend_tail;
    gw_pending_t **pend_hash;
    size_t n_pend_buckets;
    uint64_t lock_seq;
    uv_timer_t lock_timer;

    /* REST rate limit per user (gw_rest.c) */
    struct gw_rate *rates;
    size_t n_rates;

    bool stopping;
    struct px_signal_uv *sig;

    /* metrics */
    px_gauge_t *m_conns, *m_entities;
    px_counter_t *m_msgs_in, *m_msgs_out, *m_errors, *m_kafka_err, *m_redis_err, *m_pushes;
    px_counter_t *m_out_direct, *m_out_queued; /* WebSocket messages written at once / from the queue */
    px_counter_t *m_in_type[PX_MSG__COUNT];
    px_counter_t *m_out_presence, *m_out_lock_ack, *m_out_error, *m_coalesced, *m_rest;
    px_hist_t *m_push_latency, *m_lock_latency;
    px_hist_t *m_delivery[2]; /* record produced -> acknowledged by the broker: heartbeats, locks */
} gw_ctx_t;

static inline uint64_t gw_hash(const char *s) { return px_fnv1a_str(PX_FNV1A_INIT, s); }

/* gw_auth.c: identity from a bearer token (HS256, claims sub, tenant,
 * name, exp) or, only in dev mode, from query args user/name/tenant.
 * 0 or PX_EINVAL with the reason in errstr. */
int gw_auth_token(const gw_config_t *cfg, const char *token, int64_t now_s, gw_identity_t *out,
                  char *errstr, size_t errstr_size);

/* Count an error by its code word (presence_gateway_errors_total{code=}). */
void gw_count_error(gw_ctx_t *gw, const char *code);
/* An allocation failed: log it (what) and count it as code INTERNAL. */
void gw_oom(gw_ctx_t *gw, const char *what);

/* gw_kafka.c */
int gw_kafka_start(gw_ctx_t *gw, char *errstr, size_t errstr_size);
void gw_kafka_unwatch(gw_ctx_t *gw); /* stop watching the queue (in the loop) */
void gw_kafka_stop(gw_ctx_t *gw);    /* flush and destroy (after the loop) */
/* Produce ev (Avro) keyed by its entity key to presence.heartbeats or
 * presence.locks by its kind. 0, or PX_EBACKEND when Kafka refuses (queue
 * full, unknown topic). Does not look at kafka_up: callers that answer a
 * client check gw_kafka_writable() first. */
int gw_kafka_publish(gw_ctx_t *gw, const px_event_t *ev);
/* True while a broker is up: client writes are refused (UNAVAILABLE)
 * otherwise, rather than queued for minutes. */
bool gw_kafka_writable(const gw_ctx_t *gw);

/* gw_redis.c */
/* hiredis's async context on the gateway's loop (gw_redis_uv.c): commands
 * written together once per loop iteration, reads until the socket is
 * empty. REDIS_OK or REDIS_ERR. */
int gw_redis_uv_attach(redisAsyncContext *ac, uv_loop_t *loop);
int gw_redis_start(gw_ctx_t *gw);
void gw_redis_stop(gw_ctx_t *gw);  /* disconnect; callbacks still run */
void gw_redis_term(gw_ctx_t *gw);  /* free what start allocated, after the loop drained */
/* Read the entity from Redis and push a PRESENCE to all its watchers. At
 * most one read per entity is in flight; changes meanwhile coalesce into
 * one more read. */
void gw_redis_refresh(gw_ctx_t *gw, gw_entity_t *ent);
/* One entity read at one point in time, decoded into the context's
 * scratch arrays; `v` is NULL when Redis failed or is down. The view and
 * its strings live until the callback returns. */
typedef void (*gw_read_cb)(gw_ctx_t *gw, void *arg, const px_presence_view_t *v);
/* Read key's view and call cb once, always (also with NULL on failure and
 * at shutdown). 0, or PX_EBACKEND when Redis is down (cb is not called). */
int gw_redis_read(gw_ctx_t *gw, const px_key_t *key, gw_read_cb cb, void *arg);
bool gw_redis_readable(const gw_ctx_t *gw);
/* (UN)SUBSCRIBE one pub/sub channel on the subscriber connection. */
void gw_redis_channel(gw_ctx_t *gw, const char *channel, bool subscribe);

/* gw_subs.c: the registry of watched entities. */
int gw_subs_init(gw_ctx_t *gw, size_t buckets);
void gw_subs_term(gw_ctx_t *gw);
gw_entity_t *gw_entity_find(gw_ctx_t *gw, const char *keystr);
/* Subscribe conn to key; creates the entity (and its Redis channel
 * subscription) on first use. Returns the sub, or NULL when the per
 * connection limit is reached (*err set to a protocol code word). */
gw_sub_t *gw_subs_add(gw_ctx_t *gw, gw_conn_t *c, const px_key_t *key, const char **err);
gw_sub_t *gw_subs_find(gw_conn_t *c, const px_key_t *key);
/* Remove one sub (and the entity when its last watcher leaves). */
void gw_subs_remove(gw_ctx_t *gw, gw_sub_t *s);

/* gw_locks.c: LOCKs in flight and the outcomes on the entity channels. */
int gw_locks_init(gw_ctx_t *gw, size_t buckets);
void gw_locks_stop(gw_ctx_t *gw);  /* close the timer (in the loop) */
void gw_locks_term(gw_ctx_t *gw);  /* free what is left (after the loop) */
/* Register a LOCK of conn for (key, field); fills rid (the id to put in
 * the LockEvent). NULL with *err when the connection has too many. */
gw_pending_t *gw_locks_add(gw_ctx_t *gw, gw_conn_t *c, const px_key_t *key, const char *field,
                           const char *client_rid, const char **err);
void gw_locks_drop(gw_ctx_t *gw, gw_pending_t *p);
void gw_locks_conn_closed(gw_ctx_t *gw, gw_conn_t *c); /* drop the conn's pending */
/* A notification arrived on e's channel: a JSON array of changes the
 * processor wrote to Redis, or {"decided":[changes]}, the lock decisions
 * it publishes before its commit (Redis does not hold them yet). Answers
 * pending LOCKs and tracks held locks from either; returns true for the
 * early form, which must not trigger a re-read. */
bool gw_locks_notify(gw_ctx_t *gw, gw_entity_t *e, const char *json, size_t len);
/* Held-lock bookkeeping of a sub. */
void gw_held_add(gw_sub_t *s, const char *field);
/* Remember field as held by every local sub of e whose tab and user match. */
void gw_held_note(gw_entity_t *e, const char *tab_id, const char *user_id, const char *field);
void gw_held_del(gw_sub_t *s, const char *field);
void gw_held_free(gw_sub_t *s);

/* gw_rest.c: the REST routes under /api/v1/presence/. */
int gw_rest_init(gw_ctx_t *gw);
void gw_rest_term(gw_ctx_t *gw);
/* A request for /api/...: authenticate, rate-limit, route. The body (POST,
 * DELETE) comes through gw_rest_body and gw_rest_body_done. 0 or -1 (drop
 * the connection). */
int gw_rest_begin(gw_ctx_t *gw, gw_http_t *h);
void gw_rest_body(gw_http_t *h, const void *in, size_t len);
int gw_rest_body_done(gw_ctx_t *gw, gw_http_t *h);
void gw_rest_closed(gw_http_t *h); /* the client went away */
/* Stage a response and ask for a writeable callback (gw_ws.c). */
int gw_http_reply(gw_http_t *h, unsigned status, const char *ctype, const char *body, size_t len);
/* The one JSON error shape {"success":false,"error":{"code","message"}}. */
int gw_http_error(gw_ctx_t *gw, gw_http_t *h, unsigned status, const char *code, const char *msg);

/* gw_dev.c: development mode only. gw_dev_init gives a dev-mode gateway
 * without auth.jwt_secret an ephemeral random one (0 or PX_EIO);
 * gw_dev_token answers GET /api/v1/dev/token (404 unless dev mode). */
int gw_dev_init(gw_ctx_t *gw);
int gw_dev_token(gw_ctx_t *gw, gw_http_t *h);

/* gw_ws.c */
int gw_ws_start(gw_ctx_t *gw, char *errstr, size_t errstr_size);
void gw_ws_stop(gw_ctx_t *gw);

/* gw_listen.c: with http.reuse_port, listen on http.host:http.port with
 * SO_REUSEPORT and hand every accepted connection to vh. 0, or an error
 * naming the settings in errstr. Stop closes the socket (in the loop); a
 * no-op when nothing listens. */
int gw_listen_start(gw_ctx_t *gw, struct lws_vhost *vh, char *errstr, size_t errstr_size);
void gw_listen_stop(gw_ctx_t *gw);
/* Queue text for conn (copied) and ask for a writeable callback. 0 or
 * PX_ENOMEM when the connection's outbound bound is hit (it is closed). */
int gw_conn_send(gw_conn_t *c, const char *text, size_t len);
/* Queue a PRESENCE of s's entity, replacing one still queued for it. */
int gw_conn_send_presence(gw_sub_t *s, const char *text, size_t len);
/* Close the connection with code once its queue has been written. */
void gw_conn_close(gw_conn_t *c, uint16_t code);
void gw_conn_send_error(gw_conn_t *c, const char *code, const char *msg, const char *request_id);

#endif
