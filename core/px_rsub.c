/*
 * px_rsub.c - asynchronous pub/sub subscriber for a single Redis and a
 * Redis Cluster: the channel table, where each channel goes, recovery,
 * what each answer means, the API. See px_rsub.h for the contract and
 * px_rsub_int.h for the state; the connections are px_rsub_conn.c's.
 *
 * UNSUBSCRIBE names its channel twice. Answered by the server it yields
 * two unsubscribe pushes; but if the channel's slot left the node before
 * the command was read, the server first pushes one unsubscribe unasked
 * and then answers the command with MOVED. Counting pushes per command
 * tells the two apart without guessing.
 *
 * Recovery runs on one timer (on_recover): refresh the map when asked to
 * (cluster), open the single server's connection (single), and place every
 * idle channel on its owner's connection. Anything that fails arms the
 * timer again with the next backoff step; the step goes back to 0 once
 * nothing is idle and nothing is troubled.
 */
#include "px_rsub.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "px_err.h"
#include "px_hash.h"
#include "px_log.h"
#include "px_redis_addr.h"
#include "px_redis_cluster.h"
#include "px_redis_slot.h"
#include "px_rsub_int.h"

/* ---- the channel table ---- */

static px_rsub_chan_t *lookup(const px_rsub_t *s, const char *name, size_t len) {
    if (!s->nbucket) return NULL;
    uint64_t hv = px_fnv1a(PX_FNV1A_INIT, name, len);
    for (px_rsub_chan_t *c = s->bucket[hv & (s->nbucket - 1)]; c; c = c->hnext)
        if (c->hash == hv && c->len == len && memcmp(c->name, name, len) == 0) return c;
    return NULL;
}

static int table_grow(px_rsub_t *s) {
    size_t n = s->nbucket ? 2 * s->nbucket : 64;
    px_rsub_chan_t **b = calloc(n, sizeof *b);
    if (!b) return PX_ENOMEM;
    for (size_t i = 0; i < s->nbucket; i++)
        for (px_rsub_chan_t *c = s->bucket[i], *nx; c; c = nx) {
            nx = c->hnext;
            c->hnext = b[c->hash & (n - 1)];
            b[c->hash & (n - 1)] = c;
        }
    free(s->bucket);
    s->bucket = b;
    s->nbucket = n;
    return 0;
}

static void table_remove(px_rsub_t *s, px_rsub_chan_t *c) {
    px_rsub_chan_t **p = &s->bucket[c->hash & (s->nbucket - 1)];
    while (*p != c) p = &(*p)->hnext;
    *p = c->hnext;
    s->nchan--;
}

/* ---- forward ---- */
static void kick(px_rsub_t *s);
static void update_state(px_rsub_t *s);

/* ---- placing channels ---- */

/* Put idle channel ch on the connection of its slot's owner. false when
 * the map has no owner or no connection can be opened. */
static bool place(px_rsub_t *s, px_rsub_chan_t *ch) {
    int owner = s->cluster ? s->map->owner[ch->slot] : 0;
    if (owner == PX_REDIS_NO_NODE || owner >= s->map->nnodes) {
        s->need_refresh = true; /* a slot without a master: ask again */
        return false;
    }
    const px_redis_node_t *nd = &s->map->node[owner];
    px_rsub_conn_t *c = px_rsub_conn_find(s, nd);
    if (!c && !(c = px_rsub_conn_open(s, nd))) return false;
    px_rsub_list_remove(ch);
    ch->conn = c;
    ch->st = CH_QUEUED;
    px_rsub_list_push(&c->queued, ch);
    if (c->state == C_READY) px_rsub_conn_pump(c);
    return true;
}

static void place_idle(px_rsub_t *s) {
    px_rsub_chan_t *next;
    for (px_rsub_chan_t *ch = s->idle.head; ch && !s->closing; ch = next) {
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
        px_rsub_log_failure(s, PX_LOG_WARN, "redis cluster slot map refresh failed", "(cluster)", err);
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
        px_rsub_conn_t *c = s->conn[i];
        bool owns = false;
        for (int j = 0; j < m->nnodes && !owns; j++) owns = px_rsub_same_node(&m->node[j], &c->node);
        if (!owns) {
            PX_INFO(s->comp, "redis subscriber: node no longer a master, closing", "node=%s channels=%zu", c->name,
                    c->chans.n + c->queued.n);
            px_rsub_conn_close(c);
        }
    }
    return 0;
}

/* MOVED slot host:port answered by c: the slot's owner is that node. */
static void patch_map(px_rsub_t *s, px_rsub_conn_t *c, const px_redis_redirect_t *rr) {
    px_redis_node_t to = rr->to;
    if (!to.host[0]) snprintf(to.host, sizeof to.host, "%s", c->node.host);
    px_redis_slots_t *m = s->map;
    int i = 0;
    while (i < m->nnodes && !px_rsub_same_node(&m->node[i], &to)) i++;
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
    if (!s->cluster && s->nconn == 0) px_rsub_conn_open(s, &s->map->node[0]);
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
                (unsigned long long)(s->down_since ? px_rsub_now_ms(s) - s->down_since : 0), s->nchan, s->nlive);
        s->failing = false;
    }
    if (up == s->up) return;
    s->up = up;
    s->down_since = up ? 0 : px_rsub_now_ms(s);
    if (s->h.on_state) s->h.on_state(s->h.ud, up);
}

/* ---- answers ---- */

static void confirm(px_rsub_conn_t *c, const px_rsub_fifo_hdr_t *cmd, const char *name) {
    px_rsub_t *s = c->s;
    px_rsub_chan_t *ch = lookup(s, name, cmd->len);
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
static void sub_refused(px_rsub_conn_t *c, const px_rsub_fifo_hdr_t *cmd, const char *name, const char *err,
                        size_t errlen) {
    px_rsub_t *s = c->s;
    px_rsub_chan_t *ch = lookup(s, name, cmd->len);
    if (!ch || ch->id != cmd->id || ch->conn != c || ch->st != CH_PENDING) return;
    px_redis_redirect_t rr;
    if (s->cluster && px_redis_redirect_parse(err, errlen, &rr) == PX_REDIS_MOVED && rr.slot == ch->slot) {
        s->st.moved++;
        PX_DEBUG(s->comp, "redis subscribe moved", "node=%s slot=%d to=%s:%d", c->name, rr.slot,
                 rr.to.host[0] ? rr.to.host : c->node.host, rr.to.port);
        patch_map(s, c, &rr);
        px_rsub_to_idle(s, ch, false);
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
        px_rsub_to_idle(s, ch, true);
        if (s->cluster) s->need_refresh = true;
    }
    kick(s);
    update_state(s);
}

/* The server unsubscribed `name` on its own (its slot left the node). */
static void unsubscribed(px_rsub_conn_t *c, const char *name, size_t len) {
    px_rsub_t *s = c->s;
    px_rsub_chan_t *ch = lookup(s, name, len);
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
    px_rsub_to_idle(s, ch, true);
    if (s->cluster) s->need_refresh = true;
    kick(s);
    update_state(s);
}

static void handle_reply(px_rsub_conn_t *c, const redisReply *r) {
    px_rsub_t *s = c->s;
    px_rsub_push_t p;
    const char *name = NULL;
    px_rsub_fifo_hdr_t *head = px_rsub_fifo_peek(c, &name);
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
            px_rsub_fifo_hdr_t h = *head;
            char nm[PX_RSUB_CHANNEL_MAX];
            memcpy(nm, name, h.len);
            px_rsub_fifo_pop(c);
            confirm(c, &h, nm);
        }
        return;
    case PX_RSUB_PUSH_UNSUBSCRIBED:
        if (head && head->kind == CMD_UNSUB && head->len == p.channel_len &&
            memcmp(name, p.channel, head->len) == 0) {
            if (head->got++ == 1) px_rsub_fifo_pop(c); /* both pushes of our command came */
            return;
        }
        unsubscribed(c, p.channel, p.channel_len);
        return;
    case PX_RSUB_PUSH_PONG:
        if (!head || head->kind != CMD_PING) break;
        px_rsub_fifo_pop(c);
        return;
    case PX_RSUB_PUSH_ERROR:
        if (!head) break;
        if (head->kind == CMD_SUB) {
            px_rsub_fifo_hdr_t h = *head;
            char nm[PX_RSUB_CHANNEL_MAX];
            memcpy(nm, name, h.len);
            px_rsub_fifo_pop(c);
            sub_refused(c, &h, nm, p.data, p.data_len);
        } else if (head->kind == CMD_UNSUB) {
            px_rsub_fifo_pop(c); /* MOVED: the slot left, so did the subscription */
        } else {
            px_rsub_conn_fail(c, false, "PING refused: %.*s", (int)(p.data_len > 200 ? 200 : p.data_len), p.data);
        }
        return;
    case PX_RSUB_PUSH_INVALID:
        px_rsub_conn_fail(c, true, "unexpected reply (type %d, %zu elements)", r->type,
                  r->type == REDIS_REPLY_ARRAY ? r->elements : (size_t)0);
        return;
    }
    px_rsub_conn_fail(c, true, "reply out of order: %s for %s",
              p.kind == PX_RSUB_PUSH_SUBSCRIBED ? "a subscribe confirmation"
              : p.kind == PX_RSUB_PUSH_PONG     ? "a PONG"
                                                : "an error",
              !head ? "no command" : head->kind == CMD_SUB ? "a subscribe" : head->kind == CMD_UNSUB ? "an unsubscribe" : "a PING");
}

/* A connection became ready, or failed and was closed (its channels are
 * idle): recover what it carried, and report the state. */
static void conn_changed(px_rsub_t *s, bool failed) {
    if (failed) {
        if (s->cluster) s->need_refresh = true;
        kick(s);
    }
    update_state(s);
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
    s->conn_reply = handle_reply;
    s->conn_changed = conn_changed;
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
    while (s->nconn) px_rsub_conn_close(s->conn[s->nconn - 1]);
    for (size_t i = 0; i < s->nbucket; i++)
        for (px_rsub_chan_t *c = s->bucket[i], *nx; c; c = nx) {
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
    px_rsub_chan_t *ch = calloc(1, sizeof *ch + len + 1);
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
    px_rsub_list_push(&s->idle, ch);
    if (s->map_known && !place(s, ch)) kick(s);
    return 0;
}

static int del(px_rsub_t *s, const char *name, size_t len) {
    if (s->closing) return 0;
    px_rsub_chan_t *ch = lookup(s, name, len);
    if (!ch) return 0;
    px_rsub_conn_t *c = ch->conn;
    bool sent = ch->st == CH_PENDING || ch->st == CH_LIVE;
    if (ch->st == CH_LIVE) s->nlive--;
    if (ch->troubled) s->ntroubled--;
    px_rsub_list_remove(ch);
    table_remove(s, ch);
    if (sent && c && c->state == C_READY) { /* unsubscribed when there is room */
        ch->st = CH_UNSUB;
        ch->conn = c;
        px_rsub_list_push(&c->unsubq, ch);
        px_rsub_conn_pump(c);
    } else {
        free(ch);
    }
    update_state(s);
    return 0;
}

int px_rsub_channel_state(const px_rsub_t *s, const char *name, size_t len) {
    const px_rsub_chan_t *ch = lookup(s, name, len);
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
