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
 *
 * The files form layers, each calling only those below it (the layers are
 * drawn in docs/architecture.md):
 *   main.c                    configuration, start-up, shutdown
 *   gw_ws.c                   the lws callback: hands each event down
 *   gw_msg.c, gw_rest.c,      what clients ask (WebSocket messages, REST,
 *   gw_dev.c                  the dev token)
 *   gw_push.c                 what Redis's replies become for the clients
 *   gw_subs.c                 which connection watches which entity
 *   gw_locks.c, gw_event.c,   LOCKs in flight, a request as a Kafka record,
 *   gw_view.c                 a view read from Redis
 *   gw_conn.c, gw_http.c,     the transports: WebSocket connections, HTTP,
 *   gw_listen.c               the shared port (http.reuse_port)
 *   gw_kafka.c, gw_redis.c    the back ends (gw_redis_uv.c under Redis)
 *   gw_auth.c, gw_rate.c,     pure: tokens, rate limits, origins, the
 *   gw_origin.c,              connection's states, the subscriber's own
 *   gw_conn_state.c,          tab; error accounting
 *   gw_self.c, gw_errors.c
 */
#ifndef PX_GW_H
#define PX_GW_H

#include <stdbool.h>
#include <stdint.h>

#include <hiredis/async.h>
#include <librdkafka/rdkafka.h>
#include <libwebsockets.h>
#include <uv.h>

#include "gw_conn_state.h"
#include "gw_origin.h"
#include "gw_rate.h"
#include "gw_self.h"
#include "gw_redis.h"
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
 * (gw_push.c; docs/protocol.md, SUB). */
#define GW_SELF_MERGE_MS 10000
/* The head (request line and headers) of an HTTP request or WebSocket
 * handshake. libwebsockets 4.1 keeps it in one buffer of GW_HTTP_HEAD_MAX
 * bytes and cuts each field (the URI's path, each query argument, each
 * header it knows) one byte past GW_HTTP_FIELD_MAX (gw_http.c
 * gw_http_head_limits), so a longer field is seen, however long, and refused with
 * 414 or 431 (gw_http_head_too_large). A head that fills the buffer otherwise
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
    int64_t fault_kafka_fatal_ms;   /* testing: a fatal producer error this long after start (0: never) */
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

/* What a tab declares about itself on one entity (SUB and HB over the
 * WebSocket, the REST heartbeat). */
typedef struct gw_tab {
    px_mode_t mode;
    bool dirty;
    px_status_t status;
} gw_tab_t;

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
    gw_tab_t tab;        /* the tab's declared state on this entity */
    gw_held_t *held;     /* locks the tab holds on this entity */
    gw_out_t *presence;  /* a PRESENCE of this entity still queued, replaced by a newer one */
    gw_self_t self;      /* its own tab merged into its PRESENCEs until the view shows it (gw_self.h) */
} gw_sub_t;

struct gw_conn {
    struct lws *wsi;
    struct gw_ctx *gw;
    gw_conn_state_t state; /* gw_conn_state.h; changed only in gw_conn.c */
    uint16_t close_code;   /* DRAINING, CLOSING: the close frame's code */
    gw_identity_t who;
    char tab_id[PX_ID_MAX + 1];
    gw_sub_t *subs;
    int n_subs;
    gw_out_t *out_head, *out_tail;
    gw_out_t *draining; /* a deflated message lws may still be compressing (gw_conn.c) */
    size_t out_bytes;
    px_buf_t rx; /* reassembles fragmented frames, capped at PX_PROTO_MAX_MSG */
    bool rx_binary;       /* the message being received is binary: refused */
    gw_pending_t *pending; /* LOCKs awaiting their outcome */
    int n_pending;
    gw_bucket_t bucket;    /* messages per second (gw_msg.c) */
    /* idle policy (gw_conn_idle_sweep): every live connection is on
     * gw->live, with the monotonic time of its last frame in */
    struct gw_conn *live_prev, *live_next;
    int64_t last_rx_ms;
    bool ping_due; /* write a PING at the next WRITEABLE */
    bool pinged;   /* a PING went out after idle_ping_s of silence */
    bool direct;   /* no extension offered (no permessage-deflate): a send may be written at once */
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
    px_buf_t wbuf; /* LWS_PRE bytes, then one message written at once (gw_conn.c) */

    /* Kafka */
    rd_kafka_t *rk;
    rd_kafka_topic_t *rkt_hb, *rkt_locks;
    rd_kafka_queue_t *rkqu; /* main queue, watched by rk_uv */
    px_kafka_uv_t *rk_uv;
    bool kafka_up;
    bool kafka_fatal;       /* the producer failed for good: a new one is being made */
    bool kafka_renew_init;  /* kafka_renew initialised */
    uv_timer_t kafka_renew; /* makes the new producer, on the loop (gw_kafka.c) */
    int64_t kafka_fault_at; /* mono ms of fault.kafka_fatal_ms's error (0: none due) */
    char topic_hb[PX_CONF_STR_MAX * 2];
    char topic_locks[PX_CONF_STR_MAX * 2];

    /* Redis: the transport (gw_redis.h), and the scratch a view is
     * decoded into and a PRESENCE built in (gw_view.c, gw_push.c) */
    gw_redis_t *redis;
    struct px_view_tab *tabs;  /* GW_MAX_TABS */
    size_t n_tabs;             /* live tabs in `tabs` after the last decode */
    px_buf_t scratch_self;     /* a PRESENCE with the subscriber's own tab merged in */
    px_viewer_t *viewers;
    struct px_view_lock *locks; /* GW_MAX_LOCKS, decoded from the view */
    px_lock_view_t *lock_views;
    char busy_by[PX_NAME_MAX + 1]; /* the view's busyBy */

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
    gw_windows_t rest_windows;

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

/* gw_errors.c: error accounting shared by every file. */
/* Count an error by its code word (presence_gateway_errors_total{code=}). */
void gw_count_error(gw_ctx_t *gw, const char *code);
/* An allocation failed: log it (what) and count it as code INTERNAL. */
void gw_oom(gw_ctx_t *gw, const char *what);

/* gw_event.c: a client's request as an event, and its produce. */
#define GW_KAFKA_DOWN "Kafka is unreachable; retry later"
/* ev := a PresenceEvent of the tab (who, tab_id) on key, declaring *tab,
 * stamped with the gateway's clock. */
void gw_event_presence(px_event_t *ev, px_pres_type_t type, const px_key_t *key, const gw_identity_t *who,
                       const char *tab_id, const gw_tab_t *tab);
/* ev := a LockEvent of the tab on (key, field); rid (NULL: none) is the
 * gateway's request id, which the processor's decision carries back. */
void gw_event_lock(px_event_t *ev, px_lock_type_t type, const px_key_t *key, const gw_identity_t *who,
                   const char *tab_id, const char *field, const char *rid);
/* Produce a client's event. 0, or PX_EBACKEND with *why, the message of
 * the client's UNAVAILABLE: Kafka is down (refused at once), or the
 * producer refused the record. */
int gw_event_submit(gw_ctx_t *gw, const px_event_t *ev, const char **why);

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

/* gw_view.c: an entity's view, read from Redis and decoded. */
/* The scratch arrays views are decoded into. 0 or PX_ENOMEM. */
int gw_view_init(gw_ctx_t *gw);
void gw_view_term(gw_ctx_t *gw);
/* One entity read at one point in time, decoded into the context's
 * scratch arrays; `v` is NULL when Redis failed or the view does not
 * decode. The view and its strings live until the callback returns. */
typedef void (*gw_read_cb)(gw_ctx_t *gw, void *arg, const px_presence_view_t *v);
/* Read key's view and call cb once, always (also with NULL on failure and
 * at shutdown). 0, or PX_EBACKEND when Redis is down or the gateway is
 * stopping, PX_ENOMEM (cb is then not called). */
int gw_view_read(gw_ctx_t *gw, const px_key_t *key, gw_read_cb cb, void *arg);

/* gw_push.c: what Redis's replies become for the clients. */
/* The handlers gw_redis_new is given: channel messages and links up. */
gw_redis_handlers_t gw_push_handlers(gw_ctx_t *gw);
/* Read the entity and push a PRESENCE to all its watchers. At most one
 * read per entity is in flight; changes meanwhile coalesce into one more
 * read. While Redis is down nothing is read (the link's return reads every
 * entity). */
void gw_push_refresh(gw_ctx_t *gw, gw_entity_t *ent);

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

/* gw_http.c: HTTP requests on lws (the transport of REST and of the
 * operations routes) and the checks on every request head. */
/* Start a request on h (the previous one on a kept-alive connection must
 * have ended with gw_http_done): its path and method. */
void gw_http_begin(gw_http_t *h, struct lws *wsi, const char *path);
/* The request ended (answered, or the client went away): free its
 * buffers. A REST read in flight is let go first (gw_rest_closed). */
void gw_http_done(gw_http_t *h);
/* Stage a response (body copied) and ask for a writeable callback. 0, or
 * -1 when the request was already answered or the body is over 8 MiB. */
int gw_http_reply(gw_http_t *h, unsigned status, const char *ctype, const char *body, size_t len);
/* The one JSON error shape {"success":false,"error":{"code","message"}};
 * counted by code. */
int gw_http_error(gw_ctx_t *gw, gw_http_t *h, unsigned status, const char *code, const char *msg);
/* HTTP_WRITEABLE: the staged headers, then the body at the next call. 0,
 * or -1 to close the connection. */
int gw_http_writeable(struct lws *wsi, gw_http_t *h);
/* The head limits into the context's creation info (GW_HTTP_HEAD_MAX). */
void gw_http_head_limits(struct lws_context_creation_info *info);
/* A request head with a field over GW_HTTP_FIELD_MAX is answered 414 (the
 * URI's path or a query argument) or 431 (a header), JSON TOO_LARGE, and
 * closed. 1 when it answered (the callback then returns 1), else 0. */
int gw_http_head_too_large(gw_ctx_t *gw, struct lws *wsi);
/* The handshake's Origin against http.allowed_origins (gw_origin.h); a
 * refusal is counted and logged with the origin quoted. */
bool gw_http_origin_ok(gw_ctx_t *gw, struct lws *wsi);
/* Development mode's identity from the query (user, name, tenant; the
 * demo tenant by default). 0, or -1 when user or tenant is not a key part. */
int gw_http_dev_identity(struct lws *wsi, gw_identity_t *who);

/* gw_dev.c: development mode only. gw_dev_init gives a dev-mode gateway
 * without auth.jwt_secret an ephemeral random one (0 or PX_EIO);
 * gw_dev_token answers GET /api/v1/dev/token (404 unless dev mode). */
int gw_dev_init(gw_ctx_t *gw);
int gw_dev_token(gw_ctx_t *gw, gw_http_t *h);

/* gw_conn.c: one WebSocket connection on lws: its state (gw_conn_state_t),
 * the outbound queue and its writes, the reassembly of a message from
 * frames, the idle policy. Knows nothing of what messages mean. */
/* A connection just established on wsi (c zeroed first): OPEN, counted,
 * on the live list, with a tab id of this gateway. */
void gw_conn_init(gw_conn_t *c, gw_ctx_t *gw, struct lws *wsi);
/* lws closed it: free its queue and buffers, take it off the live list. */
void gw_conn_term(gw_conn_t *c);
/* Queue text for conn (copied), or write it at once when nothing waits
 * before it. 0; PX_EIO when the connection is not OPEN; PX_ENOMEM when
 * the outbound bound is hit (the connection is then closed with 1008). */
int gw_conn_send(gw_conn_t *c, const char *text, size_t len);
/* Queue a PRESENCE of s's entity, replacing one still queued for it. */
int gw_conn_send_presence(gw_sub_t *s, const char *text, size_t len);
/* An ERROR message (counted by code); request_id NULL or empty: none. */
void gw_conn_send_error(gw_conn_t *c, const char *code, const char *msg, const char *request_id);
/* OPEN -> CLOSING: the close frame with code goes at the next WRITEABLE,
 * ahead of the queue. No-op in any other state (the first decision
 * stands). */
void gw_conn_close(gw_conn_t *c, uint16_t code);
/* OPEN -> DRAINING: the queue is written, then the close frame with code.
 * No-op in any other state. */
void gw_conn_drain(gw_conn_t *c, uint16_t code);
/* The peer sent its close (lws echoes it): -> CLOSED, nothing more goes. */
void gw_conn_peer_closed(gw_conn_t *c);
/* SERVER_WRITEABLE: a PING due, the close frame, or queued messages. 0, or
 * -1 when lws must drop the connection (a write failed). */
int gw_conn_writeable(gw_conn_t *c);
/* LWS_CALLBACK_TIMER: -1 (lws closes, sending the close frame) once the
 * close frame is due, else 0. */
int gw_conn_timer(gw_conn_t *c);
/* What one RECEIVE callback's fragment completed. */
typedef enum { GW_RX_MORE, GW_RX_TEXT, GW_RX_BINARY, GW_RX_IGNORED } gw_rx_t;
/* Add a fragment of the message being received. GW_RX_TEXT: c->rx holds
 * the whole text message (until gw_conn_rx_done); GW_RX_BINARY: a binary
 * message ended; GW_RX_IGNORED: the connection is not OPEN, or the
 * message passed limits.message_bytes (ERROR TOO_LARGE sent, DRAINING
 * with 1009). Any frame counts as a sign of life. */
gw_rx_t gw_conn_receive(gw_conn_t *c, const void *in, size_t len);
void gw_conn_rx_done(gw_conn_t *c);
/* A PONG came in: a sign of life. */
void gw_conn_heard(gw_conn_t *c);
/* One pass of the idle policy over every live connection (limits.idle_ping_s). */
void gw_conn_idle_sweep(gw_ctx_t *gw);

/* gw_msg.c: what a client's messages mean: SUB, HB, UNSUB, LOCK and
 * UNLOCK become events (rate-limited per connection), answered through
 * gw_conn_send*; the end of a connection releases its tabs and locks. */
/* A whole text message of c. */
void gw_msg_handle(gw_conn_t *c, const char *buf, size_t len);
/* A binary message of c: refused (BAD_FRAME), rate-limited like any. */
void gw_msg_binary(gw_conn_t *c);
/* c is closing: its LOCKs in flight dropped, UNLOCK for each lock it
 * holds and UNSUB for each subscription published, its subscriptions
 * removed. */
void gw_msg_closed(gw_conn_t *c);

/* gw_listen.c: with http.reuse_port, listen on http.host:http.port with
 * SO_REUSEPORT and hand every accepted connection to vh. 0, or an error
 * naming the settings in errstr. Stop closes the socket (in the loop); a
 * no-op when nothing listens. */
int gw_listen_start(gw_ctx_t *gw, struct lws_vhost *vh, char *errstr, size_t errstr_size);
void gw_listen_stop(gw_ctx_t *gw);

/* gw_ws.c: the lws context on the loop, its one protocol callback, which
 * hands each event to gw_conn.c, gw_msg.c, gw_http.c or gw_rest.c. */
int gw_ws_start(gw_ctx_t *gw, char *errstr, size_t errstr_size);
void gw_ws_stop(gw_ctx_t *gw);

#endif
