/*
 * gw_redis_cluster.c - the gateway's Redis transport on a Redis Cluster
 * (gw_redis_cluster.h has the contract).
 *
 * State. `conns` lists one node_t per master address seen, each with its
 * hiredis async context (NULL once closed: the struct stays until the
 * tick finds it closed and unused, because hiredis calls the pending
 * reads' callbacks, which name it, while it closes). A read (req_t) is
 * either sent on a node (hiredis holds it as the callback's argument) or
 * on the `waiting` list until its resend time. One periodic timer (tick)
 * reads the map when it is missing or stale, resends what is due, drops
 * connections that owe answers too long or never connected, and hands the
 * coalesced "read everything again" up.
 */
#include "gw_redis_cluster.h"

#include <stdlib.h>
#include <string.h>

#include "px_err.h"
#include "px_log.h"
#include "px_redis_slot.h"
#include "px_rsub.h"
#include "px_time.h"

#define COMP "gateway"
#define TICK_MS 50
#define REFRESH_GAP_MS 100 /* map reads at most this often while troubled */
#define REREAD_AFTER_FAIL_MS 1000

typedef struct node {
    px_redis_node_t addr;
    redisAsyncContext *ac; /* NULL: closed */
    bool up;               /* connected */
    unsigned owed;         /* answers owed */
    int64_t since_ms;      /* dialled, or the last answer (or the first owed) */
    struct node *next;
} node_t;

typedef struct req {
    gw_rcl_t *c;
    gw_redis_get_cb cb;
    void *arg;
    int attempts;
    int64_t asked_ms, due_ms;
    bool ask, to_set;      /* ASK target / MOVED target in `to` */
    px_redis_node_t to;
    struct req *next;
    size_t keylen;
    char key[];
} req_t;

struct gw_rcl {
    uv_loop_t *loop;
    px_counter_t *errors;
    gw_redis_handlers_t h;
    px_rcl_t *map;
    bool map_ok;           /* a slot map was read */
    bool map_stale;        /* read it again at the next tick */
    int64_t map_tried_ms;
    bool failing;          /* a run of failed reads: logged once at its start */
    px_rsub_t *sub;
    node_t *conns;
    req_t *waiting;
    uv_timer_t tick;
    int64_t reread_ms;     /* handlers.up(READS) due at this mono ms (0: none) */
    bool stopping;
};

static void on_get(redisAsyncContext *ac, void *reply, void *priv);

static void fail_streak(gw_rcl_t *c, const char *what, const char *detail) {
    px_counter_add(c->errors, 1);
    if (c->failing) {
        PX_DEBUG(COMP, "redis cluster read failed", "what=%s detail=\"%s\"", what, detail);
        return;
    }
    c->failing = true;
    PX_WARN(COMP, "redis cluster read failed", "what=%s detail=\"%s\"", what, detail);
}

static void reread_soon(gw_rcl_t *c, int64_t delay_ms) {
    int64_t at = px_mono_ms() + delay_ms;
    if (!c->reread_ms || at < c->reread_ms) c->reread_ms = at;
}

/* ---- connections --------------------------------------------------- */

static void on_connect(const redisAsyncContext *ac, int status) {
    node_t *n = ac->data;
    if (n->ac != ac) return;
    if (status != REDIS_OK) {
        n->ac = NULL; /* hiredis frees it after this, answering what it holds with NULL */
        n->up = false;
        return;
    }
    n->up = true;
    n->since_ms = px_mono_ms();
}

static void on_disconnect(const redisAsyncContext *ac, int status) {
    node_t *n = ac->data;
    (void)status;
    if (n->ac != ac) return;
    n->ac = NULL;
    n->up = false;
}

static node_t *node_dial(gw_rcl_t *c, node_t *n) {
    redisAsyncContext *ac = redisAsyncConnect(n->addr.host, n->addr.port);
    if (!ac) return NULL;
    if (ac->err) {
        redisAsyncFree(ac);
        return NULL;
    }
    ac->data = n;
    if (gw_redis_uv_attach(ac, c->loop) != REDIS_OK) {
        redisAsyncFree(ac);
        return NULL;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    n->ac = ac;
    n->up = false;
    n->owed = 0;
    n->since_ms = px_mono_ms();
    return n;
}

/* The open connection to addr, dialled if there is none. NULL when it
 * cannot be dialled now. */
static node_t *node_get(gw_rcl_t *c, const px_redis_node_t *addr) {
    node_t *n = c->conns;
    while (n && (n->addr.port != addr->port || strcmp(n->addr.host, addr->host) != 0)) n = n->next;
    if (n && n->ac) return n;
    if (!n) {
        if (!(n = calloc(1, sizeof *n))) return NULL;
        n->addr = *addr;
        n->next = c->conns;
        c->conns = n;
    }
    return node_dial(c, n);
}

static void node_close(node_t *n) {
    redisAsyncContext *ac = n->ac;
    if (!ac) return;
    redisAsyncFree(ac); /* answers what it holds with NULL, then on_disconnect */
    n->ac = NULL;
    n->up = false;
}

/* ---- reads ------------------------------------------------------------ */

static void req_done(req_t *q, int status, const char *val, size_t len) {
    q->cb(q->arg, status, val, len);
    free(q);
}

/* Send q where it belongs now: 0, or -1 (no map, no owner, no connection). */
static int req_send(gw_rcl_t *c, req_t *q) {
    const px_redis_node_t *to = NULL;
    if (q->ask || q->to_set) {
        to = &q->to;
    } else if (c->map_ok) {
        to = px_rcl_node(c->map, px_rcl_owner(c->map, px_redis_slot(q->key, q->keylen)));
    }
    node_t *n = to ? node_get(c, to) : NULL;
    if (!n) return -1;
    if (q->ask && redisAsyncCommand(n->ac, NULL, NULL, "ASKING") != REDIS_OK) return -1;
    const char *argv[] = {"GET", q->key};
    size_t argvlen[] = {3, q->keylen};
    if (redisAsyncCommandArgv(n->ac, on_get, q, 2, argv, argvlen) != REDIS_OK) return -1;
    if (!n->owed++) n->since_ms = px_mono_ms();
    return 0;
}

/* q had no usable answer: resend it after a backoff, or give up. */
static void req_retry(gw_rcl_t *c, req_t *q, const char *why) {
    int64_t now = px_mono_ms();
    if (c->stopping || ++q->attempts >= GW_RCL_ATTEMPTS || now - q->asked_ms >= GW_RCL_RETRY_MS) {
        if (!c->stopping) {
            fail_streak(c, "gave up", why);
            reread_soon(c, REREAD_AFTER_FAIL_MS);
        }
        req_done(q, PX_EBACKEND, NULL, 0);
        return;
    }
    PX_DEBUG(COMP, "redis cluster read resent", "key=%s attempt=%d why=\"%s\"", q->key, q->attempts, why);
    int64_t backoff = q->to_set || q->ask ? 0 : 25LL << (q->attempts < 6 ? q->attempts : 6);
    q->due_ms = now + backoff;
    q->next = c->waiting;
    c->waiting = q;
}

static void on_get(redisAsyncContext *ac, void *reply, void *priv) {
    node_t *n = ac->data;
    req_t *q = priv;
    gw_rcl_t *c = q->c;
    redisReply *v = reply;
    if (n->owed) n->owed--;
    n->since_ms = px_mono_ms();
    if (v && (v->type == REDIS_REPLY_STRING || v->type == REDIS_REPLY_NIL)) {
        if (c->failing) {
            c->failing = false;
            PX_INFO(COMP, "redis cluster reads answered again", "node=%s:%d", n->addr.host, n->addr.port);
        }
        req_done(q, 0, v->type == REDIS_REPLY_STRING ? v->str : NULL, v->type == REDIS_REPLY_STRING ? v->len : 0);
        return;
    }
    q->ask = q->to_set = false;
    if (!v) {
        c->map_stale = true;
        req_retry(c, q, "connection lost");
        return;
    }
    if (v->type != REDIS_REPLY_ERROR) {
        fail_streak(c, "not a string", q->key);
        req_done(q, PX_EBACKEND, NULL, 0);
        return;
    }
    px_redis_redirect_t rd;
    px_redis_redirect_kind_t k = px_redis_redirect_parse(v->str, v->len, &rd);
    if (k != PX_REDIS_REDIRECT_NONE) {
        q->to = rd.to;
        if (!q->to.host[0]) q->to = n->addr; /* Redis 7 may leave out the host: the node that answered */
        q->ask = k == PX_REDIS_ASK;
        q->to_set = k == PX_REDIS_MOVED;
        if (k == PX_REDIS_MOVED) c->map_stale = true;
    } else {
        c->map_stale = true; /* TRYAGAIN, CLUSTERDOWN, LOADING, ...: wait and ask the map again */
    }
    req_retry(c, q, v->str);
}

int gw_rcl_get(gw_rcl_t *c, const char *key, gw_redis_get_cb cb, void *arg) {
    if (c->stopping || !c->map_ok) return PX_EBACKEND;
    size_t len = strlen(key);
    req_t *q = malloc(sizeof *q + len + 1);
    if (!q) {
        px_counter_add(c->errors, 1);
        PX_ERROR(COMP, "out of memory", "what=%s", "redis read");
        return PX_EBACKEND;
    }
    *q = (req_t){.c = c, .cb = cb, .arg = arg, .asked_ms = px_mono_ms(), .keylen = len};
    memcpy(q->key, key, len + 1);
    if (req_send(c, q)) {
        c->map_stale = true;
        req_retry(c, q, "no connection to the slot's master");
    }
    return 0;
}

/* ---- the tick --------------------------------------------------------- */

static void map_read(gw_rcl_t *c, int64_t now) {
    if ((c->map_ok && !c->map_stale) || now - c->map_tried_ms < REFRESH_GAP_MS) return;
    char err[256];
    c->map_tried_ms = now;
    int rc = c->map_ok ? px_rcl_refresh(c->map, err, sizeof err) : px_rcl_connect(c->map, err, sizeof err);
    if (rc) {
        fail_streak(c, "slot map", err);
        return;
    }
    c->map_stale = false;
    if (!c->map_ok) {
        c->map_ok = true;
        PX_INFO(COMP, "redis cluster map read", "masters=%d", px_rcl_nodes(c->map));
        c->h.up(c->h.arg, GW_REDIS_READS);
    }
}

static void resend_due(gw_rcl_t *c, int64_t now) {
    req_t *due = NULL, **pp = &c->waiting;
    while (*pp) {
        req_t *q = *pp;
        if (q->due_ms <= now) {
            *pp = q->next;
            q->next = due;
            due = q;
        } else {
            pp = &q->next;
        }
    }
    while (due) {
        req_t *q = due;
        due = q->next;
        if (req_send(c, q)) {
            c->map_stale = true;
            req_retry(c, q, "no connection to the slot's master");
        }
    }
}

static void sweep_nodes(gw_rcl_t *c, int64_t now) {
    for (node_t **pp = &c->conns; *pp;) {
        node_t *n = *pp;
        if (n->ac && (n->up ? n->owed && now - n->since_ms > GW_RCL_DEAD_MS : now - n->since_ms > GW_RCL_CONNECT_MS)) {
            px_counter_add(c->errors, 1);
            PX_WARN(COMP, n->up ? "redis node not answering: reconnecting" : "redis node connect timed out",
                    "node=%s:%d owed=%u", n->addr.host, n->addr.port, n->owed);
            c->map_stale = true;
            node_close(n); /* its reads come back through req_retry */
        }
        if (!n->ac) {
            *pp = n->next;
            free(n);
        } else {
            pp = &n->next;
        }
    }
}

static void on_tick(uv_timer_t *t) {
    gw_rcl_t *c = t->data;
    if (c->stopping) return;
    int64_t now = px_mono_ms();
    map_read(c, now);
    resend_due(c, now);
    sweep_nodes(c, now);
    /* with a fresh map when one was asked for (for at most a second) */
    if (c->reread_ms && now >= c->reread_ms && c->map_ok && (!c->map_stale || now - c->reread_ms > 1000)) {
        c->reread_ms = 0;
        c->h.up(c->h.arg, GW_REDIS_READS);
    }
}

/* ---- pub/sub ------------------------------------------------------------ */

static void on_sub_message(void *ud, const char *ch, size_t ch_len, const char *payload, size_t len) {
    gw_rcl_t *c = ud;
    if (!c->stopping) c->h.message(c->h.arg, ch, ch_len, payload, len);
}

static void on_subscribed(void *ud, const char *ch, size_t ch_len, bool again) {
    gw_rcl_t *c = ud;
    (void)ch, (void)ch_len;
    if (!again) return;
    /* the channel moved (a failover, a migration): the map is old too, and
     * messages may be lost, so read every watched entity again with a new map */
    c->map_stale = true;
    reread_soon(c, 0);
}

static void on_sub_state(void *ud, bool up) {
    gw_rcl_t *c = ud;
    if (up && !c->stopping) c->h.up(c->h.arg, GW_REDIS_SUBS);
}

void gw_rcl_subscribe(gw_rcl_t *c, const char *channel, bool on) {
    size_t len = strlen(channel);
    int rc = on ? px_rsub_add(c->sub, channel, len) : px_rsub_del(c->sub, channel, len);
    if (rc) {
        px_counter_add(c->errors, 1);
        PX_WARN(COMP, "redis subscribe refused", "channel=%s err=%s", channel, px_err_name(rc));
    }
}

/* ---- life ------------------------------------------------------------- */

gw_rcl_t *gw_rcl_new(uv_loop_t *loop, const px_rcl_conf_t *conf, px_counter_t *errors,
                     const gw_redis_handlers_t *h, char *errstr, size_t errstr_size) {
    gw_rcl_t *c = calloc(1, sizeof *c);
    if (!c) {
        px_errf(PX_ENOMEM, errstr, errstr_size, "out of memory");
        return NULL;
    }
    c->loop = loop;
    c->errors = errors;
    c->h = *h;
    px_rcl_conf_t mc = *conf;
    if (mc.timeout_ms > 250) mc.timeout_ms = 250; /* map reads block the loop: keep each short */
    mc.retry_ms = mc.timeout_ms;
    px_rsub_conf_t sc = {.host = conf->host, .port = conf->port, .cluster = true, .seeds = conf->seeds,
                         .log_comp = "gateway-sub"};
    px_rsub_handlers_t sh = {.on_message = on_sub_message, .on_subscribed = on_subscribed,
                             .on_state = on_sub_state, .ud = c};
    if (!(c->map = px_rcl_new(&mc, errstr, errstr_size)) ||
        !(c->sub = px_rsub_new(loop, &sc, &sh, errstr, errstr_size))) {
        px_rcl_free(c->map);
        free(c);
        return NULL;
    }
    uv_timer_init(loop, &c->tick);
    c->tick.data = c;
    uv_timer_start(&c->tick, on_tick, 0, TICK_MS);
    return c;
}

void gw_rcl_stop(gw_rcl_t *c) {
    if (!c || c->stopping) return;
    c->stopping = true;
    uv_timer_stop(&c->tick);
    uv_close((uv_handle_t *)&c->tick, NULL);
    for (node_t *n = c->conns; n; n = n->next) node_close(n); /* reads answer PX_EBACKEND */
    while (c->waiting) {
        req_t *q = c->waiting;
        c->waiting = q->next;
        req_done(q, PX_EBACKEND, NULL, 0);
    }
    px_rsub_free(c->sub);
    c->sub = NULL;
}

void gw_rcl_free(gw_rcl_t *c) {
    if (!c) return;
    while (c->conns) {
        node_t *n = c->conns;
        c->conns = n->next;
        free(n);
    }
    px_rcl_free(c->map);
    free(c);
}

bool gw_rcl_readable(const gw_rcl_t *c) {
    return c && !c->stopping && c->map_ok;
}

bool gw_rcl_subscribed(const gw_rcl_t *c) {
    return c && !c->stopping && c->sub && px_rsub_up(c->sub);
}
