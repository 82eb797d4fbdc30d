/*
 * gw_redis.c - the gateway's Redis transport (gw_redis.h).
 *
 * `cmd` runs reads (GET); `sub` carries SUBSCRIBE. On a lost connection it
 * is dropped and re-dialled every second; when a link is up again its
 * owner is told (handlers.up), which subscribes every watched channel
 * again and re-reads every entity, so a Redis restart heals by itself.
 * hiredis 0.14 may miss a dead socket (its libuv glue ignores poll
 * errors), hence the watchdog: the read connection is PINGed every second
 * and both are dropped when a PING or a dial is unanswered for
 * GW_REDIS_DEAD_MS.
 * Related: gw_redis_uv.c (the loop glue), gw_push.c (what the replies
 * become), docs/redis-keys.md (the keys and channels).
 */
#include <stdlib.h>
#include <string.h>

#include "gw_redis.h"
#include "gw_redis_cluster.h"
#include "px_err.h"
#include "px_log.h"
#include "px_redis_addr.h"
#include "px_redis_sentinel.h"
#include "px_time.h"

#define GW_REDIS_COMP "gateway"
#define GW_REDIS_DEAD_MS 3000

struct gw_redis {
    gw_rcl_t *cl; /* a Redis Cluster: everything goes to gw_redis_cluster.c */
    uv_loop_t *loop;
    char host[512];
    int port;
    /* Sentinel: the master is asked for before every dial */
    px_redis_node_t sentinel[PX_REDIS_SENTINELS_MAX];
    int n_sentinels;
    char master_name[PX_CONF_STR_MAX];
    bool sentinel_failing; /* a run of failed questions, logged at its start */
    px_counter_t *errors;
    gw_redis_handlers_t h;
    redisAsyncContext *cmd, *sub;
    bool cmd_up, sub_up;
    bool stopping;
    uv_timer_t retry;
    uv_timer_t watchdog;
    int64_t ping_sent_ms; /* 0: no PING outstanding */
    int64_t watchdog_ms;  /* the watchdog's last tick (a late tick: the loop was busy) */
    int64_t dial_ms;      /* when the connections were last dialled */
};

typedef struct get_req {
    gw_redis_get_cb cb;
    void *arg;
} get_req_t;

static void redis_connect(gw_redis_t *r);

static void on_retry(uv_timer_t *t) {
    gw_redis_t *r = t->data;
    if (!r->stopping) redis_connect(r);
}

static void schedule_retry(gw_redis_t *r) {
    if (r->stopping || uv_is_active((uv_handle_t *)&r->retry)) return;
    uv_timer_start(&r->retry, on_retry, 1000, 0);
}

static void on_connect(const redisAsyncContext *ac, int status) {
    gw_redis_t *r = ac->data;
    bool is_sub = ac == r->sub;
    if (status != REDIS_OK) {
        px_counter_add(r->errors, 1);
        PX_WARN(GW_REDIS_COMP, "redis connect failed", "conn=%s err=\"%s\"", is_sub ? "sub" : "cmd", ac->errstr);
        if (is_sub) r->sub = NULL;
        else r->cmd = NULL;
        schedule_retry(r);
        return;
    }
    PX_INFO(GW_REDIS_COMP, "redis connected", "conn=%s", is_sub ? "sub" : "cmd");
    if (is_sub) r->sub_up = true;
    else r->cmd_up = true;
    r->h.up(r->h.arg, is_sub ? GW_REDIS_SUBS : GW_REDIS_READS);
}

static void on_disconnect(const redisAsyncContext *ac, int status) {
    gw_redis_t *r = ac->data;
    bool is_sub = ac == r->sub;
    if (is_sub) {
        r->sub = NULL;
        r->sub_up = false;
    } else if (ac == r->cmd) {
        r->cmd = NULL;
        r->cmd_up = false;
        r->ping_sent_ms = 0;
    } else {
        return; /* freed by the watchdog, which logged it */
    }
    if (r->stopping) return;
    px_counter_add(r->errors, 1);
    PX_WARN(GW_REDIS_COMP, "redis disconnected", "conn=%s err=\"%s\"", is_sub ? "sub" : "cmd",
            ac->errstr[0] ? ac->errstr : "closed");
    schedule_retry(r);
}

static redisAsyncContext *dial(gw_redis_t *r) {
    redisAsyncContext *ac = px_redis_connect_async(r->host, r->port);
    if (!ac) return NULL;
    if (ac->err) {
        PX_WARN(GW_REDIS_COMP, "redis connect failed", "err=\"%s\"", ac->errstr);
        redisAsyncFree(ac);
        return NULL;
    }
    ac->data = r;
    if (gw_redis_uv_attach(ac, r->loop) != REDIS_OK) {
        PX_WARN(GW_REDIS_COMP, "redis connect failed", "err=\"%s\"", "cannot watch the socket");
        redisAsyncFree(ac);
        return NULL;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    return ac;
}

/* Sentinel: the master's address into r->host/port. 0, or -1 (logged
 * and counted at the start of a run of failures). */
static int ask_sentinels(gw_redis_t *r) {
    char err[512];
    px_redis_node_t m;
    if (px_sentinel_master(r->sentinel, r->n_sentinels, r->master_name, 300, &m, NULL, err, sizeof err)) {
        px_counter_add(r->errors, 1);
        if (!r->sentinel_failing)
            PX_WARN(GW_REDIS_COMP, "redis sentinels name no master", "master_name=%s err=\"%s\"", r->master_name, err);
        r->sentinel_failing = true;
        return -1;
    }
    if (r->sentinel_failing || m.port != r->port || strcmp(m.host, r->host) != 0)
        PX_INFO(GW_REDIS_COMP, "redis master named by the sentinels", "master_name=%s addr=%s:%d", r->master_name,
                m.host, m.port);
    r->sentinel_failing = false;
    snprintf(r->host, sizeof r->host, "%s", m.host);
    r->port = m.port;
    return 0;
}

static void redis_connect(gw_redis_t *r) {
    if ((!r->cmd || !r->sub) && r->n_sentinels && ask_sentinels(r)) {
        schedule_retry(r);
        return;
    }
    if (!r->cmd || !r->sub) r->dial_ms = px_now_ms();
    if (!r->cmd) r->cmd = dial(r);
    if (!r->sub) r->sub = dial(r);
    if (!r->cmd || !r->sub) schedule_retry(r);
}

static void on_ping(redisAsyncContext *ac, void *reply, void *priv) {
    gw_redis_t *r = ac->data;
    if (ac == r->cmd) r->ping_sent_ms = 0;
}

/* A dial not completed within GW_REDIS_DEAD_MS (a refused connect can be
 * lost as a dead socket is): give it up and dial again. */
static void dial_timed_out(gw_redis_t *r) {
    char addr[600];
    px_counter_add(r->errors, 1);
    PX_WARN(GW_REDIS_COMP, "redis connect timed out", "addr=%s", px_redis_addr(r->host, r->port, addr, sizeof addr));
    if (r->cmd && !r->cmd_up) {
        redisAsyncContext *ac = r->cmd;
        r->cmd = NULL;
        redisAsyncFree(ac);
    }
    if (r->sub && !r->sub_up) {
        redisAsyncContext *ac = r->sub;
        r->sub = NULL;
        redisAsyncFree(ac);
    }
    redis_connect(r);
}

/* Every second: PING the read connection; one unanswered for
 * GW_REDIS_DEAD_MS means the server is gone though the socket did not say
 * so. Then both connections are freed (their callbacks run with no reply,
 * so reads answer PX_EBACKEND) and re-dialled. */
static void on_watchdog(uv_timer_t *t) {
    gw_redis_t *r = t->data;
    if (r->stopping) return;
    int64_t now = px_now_ms();
    if (((r->cmd && !r->cmd_up) || (r->sub && !r->sub_up)) && now - r->dial_ms > GW_REDIS_DEAD_MS) {
        dial_timed_out(r);
        return;
    }
    if (!r->cmd || !r->cmd_up) return;
    /* This tick came late: the loop itself was busy (a burst of client
     * messages), not Redis. A PING that waited through that stall says
     * nothing about Redis; time it again from now. */
    bool late = r->watchdog_ms && now - r->watchdog_ms > 2 * 1000;
    r->watchdog_ms = now;
    if (late && r->ping_sent_ms) {
        r->ping_sent_ms = now;
        return;
    }
    if (!r->ping_sent_ms) {
        if (redisAsyncCommand(r->cmd, on_ping, NULL, "PING") == REDIS_OK) r->ping_sent_ms = now;
        return;
    }
    if (now - r->ping_sent_ms < GW_REDIS_DEAD_MS) return;
    px_counter_add(r->errors, 1);
    PX_WARN(GW_REDIS_COMP, "redis not answering: reconnecting", "waited_ms=%lld", (long long)(now - r->ping_sent_ms));
    r->ping_sent_ms = 0;
    redisAsyncContext *cmd = r->cmd, *sub = r->sub;
    r->cmd = r->sub = NULL; /* before the frees: on_disconnect finds them gone */
    r->cmd_up = r->sub_up = false;
    redisAsyncFree(cmd);
    if (sub) redisAsyncFree(sub);
    schedule_retry(r);
}

gw_redis_t *gw_redis_new(uv_loop_t *loop, const px_redis_conf_t *rc, const char *host, int port, px_counter_t *errors,
                         const gw_redis_handlers_t *h, char *errstr, size_t errstr_size) {
    gw_redis_t *r = calloc(1, sizeof *r);
    if (!r) {
        px_errf(PX_ENOMEM, errstr, errstr_size, "out of memory");
        return NULL;
    }
    r->loop = loop;
    r->errors = errors;
    r->h = *h;
    if (rc->cluster) {
        px_rcl_conf_t cc;
        px_redis_conf_rcl(rc, host, port, 1000, &cc);
        if (!(r->cl = gw_rcl_new(loop, &cc, errors, h, errstr, errstr_size))) {
            free(r);
            return NULL;
        }
        return r;
    }
    int n = px_redis_conf_sentinels(rc, r->sentinel, errstr, errstr_size);
    if (n < 0) {
        free(r);
        return NULL;
    }
    r->n_sentinels = n;
    snprintf(r->master_name, sizeof r->master_name, "%s", rc->master_name);
    snprintf(r->host, sizeof r->host, "%s", host);
    r->port = port;
    uv_timer_init(loop, &r->retry);
    r->retry.data = r;
    uv_timer_init(loop, &r->watchdog);
    r->watchdog.data = r;
    uv_timer_start(&r->watchdog, on_watchdog, 1000, 1000);
    redis_connect(r);
    return r;
}

void gw_redis_stop(gw_redis_t *r) {
    if (r && r->cl) {
        gw_rcl_stop(r->cl);
        return;
    }
    if (!r || r->stopping) return;
    r->stopping = true;
    uv_timer_stop(&r->retry);
    uv_close((uv_handle_t *)&r->retry, NULL);
    uv_timer_stop(&r->watchdog);
    uv_close((uv_handle_t *)&r->watchdog, NULL);
    /* Free, not Disconnect: a disconnect waits for pending replies, which
     * a dead server never sends. Pending callbacks run with no reply. */
    if (r->cmd) redisAsyncFree(r->cmd);
    if (r->sub) redisAsyncFree(r->sub);
    r->cmd = r->sub = NULL;
}

void gw_redis_free(gw_redis_t *r) {
    if (r) gw_rcl_free(r->cl);
    free(r);
}

bool gw_redis_readable(const gw_redis_t *r) {
    if (r && r->cl) return gw_rcl_readable(r->cl);
    return r && r->cmd && r->cmd_up;
}

bool gw_redis_subscribed(const gw_redis_t *r) {
    if (r && r->cl) return gw_rcl_subscribed(r->cl);
    return r && r->sub && r->sub_up;
}

/* A message on a subscribed channel: ["message", channel, payload]. */
static void on_sub_reply(redisAsyncContext *ac, void *reply, void *priv) {
    gw_redis_t *r = ac->data;
    redisReply *m = reply;
    if (!m || r->stopping) return;
    if (m->type != REDIS_REPLY_ARRAY || m->elements != 3) return;
    if (m->element[0]->type != REDIS_REPLY_STRING || strcmp(m->element[0]->str, "message") != 0) return;
    const redisReply *ch = m->element[1], *payload = m->element[2];
    if (ch->type != REDIS_REPLY_STRING) return;
    if (payload->type == REDIS_REPLY_STRING) r->h.message(r->h.arg, ch->str, ch->len, payload->str, payload->len);
    else r->h.message(r->h.arg, ch->str, ch->len, "", 0);
}

void gw_redis_subscribe(gw_redis_t *r, const char *channel, bool on) {
    if (r->cl) {
        gw_rcl_subscribe(r->cl, channel, on);
        return;
    }
    if (!gw_redis_subscribed(r)) return;
    if (redisAsyncCommand(r->sub, on ? on_sub_reply : NULL, NULL, "%s %s", on ? "SUBSCRIBE" : "UNSUBSCRIBE",
                          channel) != REDIS_OK) {
        px_counter_add(r->errors, 1);
        PX_WARN(GW_REDIS_COMP, "redis subscribe failed", "channel=%s", channel);
    }
}

static void on_get(redisAsyncContext *ac, void *reply, void *priv) {
    gw_redis_t *r = ac->data;
    get_req_t *req = priv;
    redisReply *v = reply;
    if (v && v->type == REDIS_REPLY_STRING) {
        req->cb(req->arg, 0, v->str, v->len);
    } else if (v && v->type == REDIS_REPLY_NIL) {
        req->cb(req->arg, 0, NULL, 0);
    } else {
        if (!r->stopping) {
            px_counter_add(r->errors, 1);
            PX_WARN(GW_REDIS_COMP, "redis read failed", "err=\"%s\" type=%d",
                    v && v->type == REDIS_REPLY_ERROR ? v->str : v ? "not a string" : "no reply", v ? v->type : -1);
        }
        req->cb(req->arg, PX_EBACKEND, NULL, 0);
    }
    free(req);
}

int gw_redis_get(gw_redis_t *r, const char *key, gw_redis_get_cb cb, void *arg) {
    if (r->cl) return gw_rcl_get(r->cl, key, cb, arg);
    if (!gw_redis_readable(r) || r->stopping) return PX_EBACKEND;
    get_req_t *req = malloc(sizeof *req);
    if (!req) {
        px_counter_add(r->errors, 1);
        PX_ERROR(GW_REDIS_COMP, "out of memory", "what=%s", "redis read");
        return PX_EBACKEND;
    }
    req->cb = cb;
    req->arg = arg;
    const char *argv[] = {"GET", key};
    if (redisAsyncCommandArgv(r->cmd, on_get, req, 2, argv, NULL) != REDIS_OK) {
        free(req);
        px_counter_add(r->errors, 1);
        PX_WARN(GW_REDIS_COMP, "redis read not sent", "err=\"%s\"", r->cmd->errstr);
        return PX_EBACKEND;
    }
    return 0;
}
