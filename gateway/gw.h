/*
 * gw.h - presence-gateway: shared context and the internal API between its
 * files. One libuv loop carries everything: libwebsockets (gw_ws.c),
 * hiredis async for reads and pub/sub (gw_redis.c), and the librdkafka
 * producer's queue (gw_kafka.c). No thread per connection.
 *
 * Data flow: a browser's SUB/HB/UNSUB becomes a PresenceEvent produced to
 * presence.heartbeats (key tenant:entity:id). The processor folds it into
 * Redis and publishes on presence:updates:{key}. The gateway, subscribed to
 * the channels of the entities its connections watch, re-reads the entity
 * from Redis and pushes a PRESENCE message to each watching connection.
 *
 * Limits of this version (walking skeleton): LOCK/UNLOCK, REST routes and
 * most bounds come with the gateway issue; see docs/architecture.md.
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
#include "px_buf.h"
#include "px_config.h"
#include "px_err.h"
#include "px_event.h"
#include "px_kafka.h"
#include "px_key.h"
#include "px_metrics.h"
#include "px_proto.h"

#define GW_COMP "gateway"
#define GW_MAX_TABS 512 /* most live tabs one PRESENCE reports */
#define GW_MAX_LOCKS 64 /* most live locks one PRESENCE reports (the fold's cap) */

typedef struct gw_config {
    char http_host[PX_CONF_STR_MAX];
    int64_t http_port;
    char redis_host[PX_CONF_STR_MAX];
    int64_t redis_port;
    char topic_prefix[PX_CONF_STR_MAX];
    char topic_heartbeats[PX_CONF_STR_MAX];
    char jwt_secret[PX_CONF_STR_MAX];
    bool dev_mode;
    char web_dir[PX_CONF_STR_MAX];
    char gateway_id[PX_CONF_STR_MAX];
    char log_level[PX_CONF_STR_MAX];
    int64_t max_subs_per_conn;
    int64_t max_out_bytes;
    int64_t max_connections;
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
    size_t len;
    unsigned char data[]; /* LWS_PRE + len */
} gw_out_t;

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
} gw_sub_t;

struct gw_conn {
    struct lws *wsi;
    struct gw_ctx *gw;
    gw_identity_t who;
    char tab_id[PX_ID_MAX + 1];
    gw_sub_t *subs;
    int n_subs;
    gw_out_t *out_head, *out_tail;
    size_t out_bytes;
    px_buf_t rx; /* reassembles fragmented frames, capped at PX_PROTO_MAX_MSG */
    bool rx_binary, rx_overflow; /* the message being received is refused */
    bool closing;
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
};

typedef struct gw_ctx {
    gw_config_t cfg;
    px_kvlist_t kafka_kv;
    uv_loop_t *loop;
    struct lws_context *lws;
    px_metrics_t *metrics;
    px_avro_t *avro;
    px_buf_t scratch;

    /* Kafka */
    rd_kafka_t *rk;
    rd_kafka_topic_t *rkt_hb;
    rd_kafka_queue_t *rkqu; /* main queue, watched by rk_uv */
    px_kafka_uv_t *rk_uv;
    bool kafka_up;
    char topic_hb[PX_CONF_STR_MAX * 2];

    /* Redis: one connection for reads, one for pub/sub */
    redisAsyncContext *rcmd, *rsub;
    struct px_view_tab *tabs;  /* GW_MAX_TABS scratch for building a PRESENCE */
    px_viewer_t *viewers;
    struct px_view_lock *locks; /* GW_MAX_LOCKS scratch, decoded from the locks hash */
    px_lock_view_t *lock_views;
    bool rcmd_up, rsub_up;
    uv_timer_t redis_retry;

    /* entities watched by local connections */
    gw_entity_t **ents;
    size_t n_ent_buckets;
    size_t n_ents;
    int n_conns;
    uint64_t tab_seq;

    bool stopping;
    struct px_signal_uv *sig;

    /* metrics */
    px_gauge_t *m_conns, *m_entities;
    px_counter_t *m_msgs_in, *m_msgs_out, *m_errors, *m_kafka_err, *m_redis_err, *m_pushes;
} gw_ctx_t;

/* gw_auth.c: identity from a bearer token (HS256, claims sub, tenant,
 * name, exp) or, only in dev mode, from query args user/name/tenant.
 * 0 or PX_EINVAL with the reason in errstr. */
int gw_auth_token(const gw_config_t *cfg, const char *token, int64_t now_s, gw_identity_t *out,
                  char *errstr, size_t errstr_size);

/* gw_kafka.c */
int gw_kafka_start(gw_ctx_t *gw, char *errstr, size_t errstr_size);
void gw_kafka_unwatch(gw_ctx_t *gw); /* stop watching the queue (in the loop) */
void gw_kafka_stop(gw_ctx_t *gw);    /* flush and destroy (after the loop) */
/* Produce ev (Avro) keyed by its entity key to presence.heartbeats.
 * 0, or PX_EBACKEND when Kafka refuses (queue full, unknown topic). */
int gw_kafka_publish(gw_ctx_t *gw, const px_event_t *ev);

/* gw_redis.c */
int gw_redis_start(gw_ctx_t *gw);
void gw_redis_stop(gw_ctx_t *gw);  /* disconnect; callbacks still run */
void gw_redis_term(gw_ctx_t *gw);  /* free what start allocated, after the loop drained */
/* Read the entity from Redis and push a PRESENCE to all its watchers. At
 * most one read per entity is in flight; changes meanwhile coalesce into
 * one more read. */
void gw_redis_refresh(gw_ctx_t *gw, gw_entity_t *ent);
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

/* gw_ws.c */
int gw_ws_start(gw_ctx_t *gw, char *errstr, size_t errstr_size);
void gw_ws_stop(gw_ctx_t *gw);
/* Queue text for conn (copied) and ask for a writeable callback. 0 or
 * PX_ENOMEM when the connection's outbound bound is hit (it is closed). */
int gw_conn_send(gw_conn_t *c, const char *text, size_t len);
void gw_conn_send_error(gw_conn_t *c, const char *code, const char *msg, const char *request_id);

#endif
