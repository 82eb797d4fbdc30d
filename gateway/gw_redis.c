/*
 * gw_redis.c - the gateway's two Redis connections on the libuv loop.
 *
 * `rcmd` runs reads (one GET of the entity's view string, which the
 * processor writes whole, so a read sees one point in time);
 * `rsub` carries SUBSCRIBE for
 * the channels of the entities local connections watch. On a lost
 * connection both are dropped and re-dialled every second; on reconnect
 * every watched channel is subscribed again and every entity re-read, so a
 * Redis restart heals by itself.
 * Related: gw_subs.c (which channels), docs/redis-keys.md (the view).
 */
#include <stdlib.h>
#include <string.h>

#include "gw.h"
#include "px_log.h"
#include "px_redis_addr.h"
#include "px_time.h"
#include "px_view.h"


static void redis_connect(gw_ctx_t *gw);

static void on_retry(uv_timer_t *t) {
    gw_ctx_t *gw = t->data;
    if (!gw->stopping) redis_connect(gw);
}

static void schedule_retry(gw_ctx_t *gw) {
    if (gw->stopping || uv_is_active((uv_handle_t *)&gw->redis_retry)) return;
    uv_timer_start(&gw->redis_retry, on_retry, 1000, 0);
}

static void on_connect(const redisAsyncContext *ac, int status) {
    gw_ctx_t *gw = ac->data;
    bool is_sub = ac == gw->rsub;
    if (status != REDIS_OK) {
        px_counter_add(gw->m_redis_err, 1);
        PX_WARN(GW_COMP, "redis connect failed", "conn=%s err=\"%s\"", is_sub ? "sub" : "cmd",
                ac->errstr);
        if (is_sub) gw->rsub = NULL;
        else gw->rcmd = NULL;
        schedule_retry(gw);
        return;
    }
    PX_INFO(GW_COMP, "redis connected", "conn=%s", is_sub ? "sub" : "cmd");
    if (is_sub) {
        gw->rsub_up = true;
        char ch[PX_KEY_MAX + 32];
        for (size_t i = 0; i < gw->n_ent_buckets; i++)
            for (gw_entity_t *e = gw->ents[i]; e; e = e->next) {
                px_view_channel(&e->key, ch, sizeof ch);
                gw_redis_channel(gw, ch, true);
            }
    } else {
        gw->rcmd_up = true;
        for (size_t i = 0; i < gw->n_ent_buckets; i++)
            for (gw_entity_t *e = gw->ents[i]; e; e = e->next) {
                e->refreshing = false;
                gw_redis_refresh(gw, e);
            }
    }
}

static void on_disconnect(const redisAsyncContext *ac, int status) {
    gw_ctx_t *gw = ac->data;
    bool is_sub = ac == gw->rsub;
    if (is_sub) {
        gw->rsub = NULL;
        gw->rsub_up = false;
    } else if (ac == gw->rcmd) {
        gw->rcmd = NULL;
        gw->rcmd_up = false;
        gw->ping_sent_ms = 0;
    } else {
        return; /* freed by the watchdog, which logged it */
    }
    if (gw->stopping) return;
    px_counter_add(gw->m_redis_err, 1);
    PX_WARN(GW_COMP, "redis disconnected", "conn=%s err=\"%s\"", is_sub ? "sub" : "cmd",
            ac->errstr[0] ? ac->errstr : "closed");
    schedule_retry(gw);
}

static redisAsyncContext *dial(gw_ctx_t *gw) {
    redisAsyncContext *ac = px_redis_connect_async(gw->cfg.redis_host, (int)gw->cfg.redis_port);
    if (!ac) return NULL;
    if (ac->err) {
        PX_WARN(GW_COMP, "redis connect failed", "err=\"%s\"", ac->errstr);
        redisAsyncFree(ac);
        return NULL;
    }
    ac->data = gw;
    if (gw_redis_uv_attach(ac, gw->loop) != REDIS_OK) {
        PX_WARN(GW_COMP, "redis connect failed", "err=\"%s\"", "cannot watch the socket");
        redisAsyncFree(ac);
        return NULL;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    return ac;
}

static void on_ping(redisAsyncContext *ac, void *r, void *priv) {
    gw_ctx_t *gw = ac->data;
    if (ac == gw->rcmd) gw->ping_sent_ms = 0;
}

/* Every second: PING the command connection; one unanswered for
 * GW_REDIS_DEAD_MS means the server is gone though the socket did not say
 * so (hiredis 0.14's libuv adapter ignores poll errors: a read would wait
 * forever). Then both connections are freed (their callbacks run with no
 * reply, so reads answer UNAVAILABLE) and re-dialled. */
#define GW_REDIS_DEAD_MS 3000
static void on_watchdog(uv_timer_t *t) {
    gw_ctx_t *gw = t->data;
    if (gw->stopping) return;
    int64_t now = px_now_ms();
    /* A refused connect can be lost the same way: give up on a dial that
     * has not completed in time and dial again. */
    if (((gw->rcmd && !gw->rcmd_up) || (gw->rsub && !gw->rsub_up)) && now - gw->dial_ms > GW_REDIS_DEAD_MS) {
        px_counter_add(gw->m_redis_err, 1);
        char addr[PX_CONF_STR_MAX + 24];
        PX_WARN(GW_COMP, "redis connect timed out", "addr=%s",
                px_redis_addr(gw->cfg.redis_host, gw->cfg.redis_port, addr, sizeof addr));
        if (gw->rcmd && !gw->rcmd_up) {
            redisAsyncContext *ac = gw->rcmd;
            gw->rcmd = NULL;
            redisAsyncFree(ac);
        }
        if (gw->rsub && !gw->rsub_up) {
            redisAsyncContext *ac = gw->rsub;
            gw->rsub = NULL;
            redisAsyncFree(ac);
        }
        redis_connect(gw);
        return;
    }
    if (!gw->rcmd || !gw->rcmd_up) return;
    /* This tick came late: the loop itself was busy (a burst of client
     * messages), not Redis. A PING that waited through that stall says
     * nothing about Redis; time it again from now. */
    bool late = gw->watchdog_ms && now - gw->watchdog_ms > 2 * 1000;
    gw->watchdog_ms = now;
    if (late && gw->ping_sent_ms) {
        gw->ping_sent_ms = now;
        return;
    }
    if (!gw->ping_sent_ms) {
        if (redisAsyncCommand(gw->rcmd, on_ping, NULL, "PING") == REDIS_OK) gw->ping_sent_ms = now;
        return;
    }
    if (now - gw->ping_sent_ms < GW_REDIS_DEAD_MS) return;
    px_counter_add(gw->m_redis_err, 1);
    PX_WARN(GW_COMP, "redis not answering: reconnecting", "waited_ms=%lld", (long long)(now - gw->ping_sent_ms));
    gw->ping_sent_ms = 0;
    redisAsyncContext *cmd = gw->rcmd, *sub = gw->rsub;
    gw->rcmd = gw->rsub = NULL; /* before the frees: on_disconnect finds them gone */
    gw->rcmd_up = gw->rsub_up = false;
    redisAsyncFree(cmd);
    if (sub) redisAsyncFree(sub);
    schedule_retry(gw);
}

static void redis_connect(gw_ctx_t *gw) {
    if (!gw->rcmd || !gw->rsub) gw->dial_ms = px_now_ms();
    if (!gw->rcmd) gw->rcmd = dial(gw);
    if (!gw->rsub) gw->rsub = dial(gw);
    if (!gw->rcmd || !gw->rsub) schedule_retry(gw);
}

int gw_redis_start(gw_ctx_t *gw) {
    gw->tabs = calloc(GW_MAX_TABS, sizeof *gw->tabs);
    gw->viewers = calloc(GW_MAX_TABS, sizeof *gw->viewers);
    gw->locks = calloc(GW_MAX_LOCKS, sizeof *gw->locks);
    gw->lock_views = calloc(GW_MAX_LOCKS, sizeof *gw->lock_views);
    if (!gw->tabs || !gw->viewers || !gw->locks || !gw->lock_views) return PX_ENOMEM;
    px_buf_init(&gw->scratch_self, 1u << 20);
    uv_timer_init(gw->loop, &gw->redis_retry);
    gw->redis_retry.data = gw;
    uv_timer_init(gw->loop, &gw->redis_watchdog);
    gw->redis_watchdog.data = gw;
    uv_timer_start(&gw->redis_watchdog, on_watchdog, 1000, 1000);
    redis_connect(gw);
    return 0;
}

void gw_redis_stop(gw_ctx_t *gw) {
    if (!gw->redis_retry.loop || uv_is_closing((uv_handle_t *)&gw->redis_retry)) return;
    uv_timer_stop(&gw->redis_retry);
    uv_close((uv_handle_t *)&gw->redis_retry, NULL);
    uv_timer_stop(&gw->redis_watchdog);
    uv_close((uv_handle_t *)&gw->redis_watchdog, NULL);
    /* Free, not Disconnect: a disconnect waits for pending replies, which
     * a dead server never sends. Pending callbacks run with no reply. */
    if (gw->rcmd) redisAsyncFree(gw->rcmd);
    if (gw->rsub) redisAsyncFree(gw->rsub);
    gw->rcmd = gw->rsub = NULL;
}

void gw_redis_term(gw_ctx_t *gw) {
    free(gw->tabs);
    free(gw->viewers);
    free(gw->locks);
    free(gw->lock_views);
    gw->tabs = NULL;
    gw->viewers = NULL;
    gw->locks = NULL;
    gw->lock_views = NULL;
    px_buf_term(&gw->scratch_self);
}

/* A message on a watched channel: the processor changed the entity. */
static void on_sub_reply(redisAsyncContext *ac, void *r, void *priv) {
    gw_ctx_t *gw = ac->data;
    redisReply *reply = r;
    if (!reply || gw->stopping) return;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3) return;
    if (strcmp(reply->element[0]->str, "message") != 0) return;
    redisReply *ch = reply->element[1];
    px_key_t key;
    if (px_view_channel_parse(ch->str, ch->len, &key)) return;
    char ks[PX_KEY_MAX + 1];
    px_key_format(&key, ks, sizeof ks);
    gw_entity_t *e = gw_entity_find(gw, ks);
    if (!e) return;
    int64_t now = px_now_ms();
    bool early = reply->element[2]->type == REDIS_REPLY_STRING &&
                 gw_locks_notify(gw, e, reply->element[2]->str, reply->element[2]->len);
    if (early) return; /* lock decisions before the write: nothing new to read yet */
    e = gw_entity_find(gw, ks); /* a LOCK_ACK may have closed a slow connection */
    if (!e) return;
    if (!e->changed_ms) e->changed_ms = now;
    gw_redis_refresh(gw, e);
}

void gw_redis_channel(gw_ctx_t *gw, const char *channel, bool subscribe) {
    if (!gw->rsub || !gw->rsub_up) return;
    if (redisAsyncCommand(gw->rsub, subscribe ? on_sub_reply : NULL, NULL, "%s %s",
                          subscribe ? "SUBSCRIBE" : "UNSUBSCRIBE", channel) != REDIS_OK) {
        px_counter_add(gw->m_redis_err, 1);
        PX_WARN(GW_COMP, "redis subscribe failed", "channel=%s", channel);
    }
}

typedef struct read_req {
    gw_read_cb cb;
    void *arg;
    px_key_t key;
} read_req_t;

/* Decode the view string (nil: nothing live) into v (strings in gw's
 * scratch arrays). 0, or -1 on a reply of the wrong shape (counted and
 * logged). */
static int decode_view(gw_ctx_t *gw, const px_key_t *key, const redisReply *reply, px_presence_view_t *v) {
    px_view_t pv = {.tabs = gw->tabs, .max_tabs = GW_MAX_TABS, .locks = gw->locks, .max_locks = GW_MAX_LOCKS};
    if (reply->type == REDIS_REPLY_STRING) {
        if (px_view_decode(reply->str, reply->len, px_now_ms(), &pv)) {
            px_counter_add(gw->m_redis_err, 1);
            PX_WARN(GW_COMP, "redis read: malformed view", "key=%s:%s:%s bytes=%zu", key->tenant, key->entity,
                    key->id, reply->len);
            return -1;
        }
        if (pv.n_dropped) { /* more than the fold's caps: not the processor's */
            px_counter_add(gw->m_redis_err, 1);
            PX_WARN(GW_COMP, "redis read: view over the caps, items left out", "key=%s:%s:%s left_out=%zu",
                    key->tenant, key->entity, key->id, pv.n_dropped);
        }
    } else if (reply->type != REDIS_REPLY_NIL) {
        px_counter_add(gw->m_redis_err, 1);
        PX_WARN(GW_COMP, "redis read: unexpected reply type", "key=%s:%s:%s type=%d", key->tenant, key->entity,
                key->id, reply->type);
        return -1;
    }
    gw->n_tabs = pv.n_tabs;
    size_t nv = px_view_aggregate(pv.tabs, pv.n_tabs, gw->viewers);
    for (size_t i = 0; i < pv.n_locks; i++) {
        const px_view_lock_t *l = &pv.locks[i];
        gw->lock_views[i] = (px_lock_view_t){.field = l->field, .user_id = l->user_id, .name = l->user_name,
                                             .tab_id = l->tab_id, .token = l->token,
                                             .expires_at_ms = l->deadline_ms};
    }
    memcpy(gw->busy_by, pv.busy_by, sizeof gw->busy_by);
    *v = (px_presence_view_t){.key = key,
                              .viewers = gw->viewers,
                              .n_viewers = nv,
                              .locks = gw->lock_views,
                              .n_locks = pv.n_locks,
                              .stale = pv.stale,
                              .busy_by = pv.stale ? gw->busy_by : NULL,
                              .version = pv.version};
    return 0;
}

/* Whether s's PRESENCE from the view just decoded (gw->tabs[0..n_tabs))
 * gets the subscriber's own tab merged in: yes until the view holds that
 * tab (same tab id and user) joined at or after the SUB's ts, which is
 * the processor's fold of this SUB, or GW_SELF_MERGE_MS has passed since
 * the SUB and one merged PRESENCE went out. Clears s->self_pending when
 * the answer becomes no for good. *at is the tab's index in the view, or
 * -1. */
static bool self_merge(gw_ctx_t *gw, gw_sub_t *s, int64_t now_mono, long *at) {
    const gw_conn_t *c = s->conn;
    *at = -1;
    if (!s->self_pending) return false;
    for (size_t i = 0; i < gw->n_tabs; i++) {
        const struct px_view_tab *t = &gw->tabs[i];
        if (strcmp(t->tab_id, c->tab_id) != 0 || strcmp(t->user_id, c->who.user_id) != 0) continue;
        if (t->since_ms >= s->self_ts_ms) {
            s->self_pending = false;
            return false;
        }
        *at = (long)i;
        break;
    }
    if (s->self_sent && now_mono >= s->self_until_ms) {
        s->self_pending = false;
        return false;
    }
    return true;
}

/* v (just decoded, its viewers aggregated from gw->tabs) as s's
 * connection should see it while its SUB is not folded yet: with the
 * connection's own tab in its declared state (user, name, mode, dirty,
 * status): added, or in place of the older state of that tab at index
 * `at`. Written to gw->scratch_self; overwrites gw->viewers (v's viewers).
 * 0, or PX_ENOMEM (the PRESENCE is over its bound, or the view already
 * holds GW_MAX_TABS tabs). */
static int write_presence_self(gw_ctx_t *gw, const px_presence_view_t *v, const gw_sub_t *s, long at) {
    const gw_conn_t *c = s->conn;
    size_t n = gw->n_tabs;
    struct px_view_tab saved, *t;
    if (at >= 0) {
        t = &gw->tabs[at];
        saved = *t;
    } else {
        if (n >= GW_MAX_TABS) return PX_ENOMEM;
        t = &gw->tabs[n++];
        memset(t, 0, sizeof *t);
        snprintf(t->tab_id, sizeof t->tab_id, "%s", c->tab_id);
        snprintf(t->user_id, sizeof t->user_id, "%s", c->who.user_id);
    }
    snprintf(t->user_name, sizeof t->user_name, "%s", c->who.user_name);
    t->mode = s->mode;
    t->dirty = s->dirty;
    t->status = s->status;
    px_presence_view_t mine = *v;
    mine.viewers = gw->viewers;
    mine.n_viewers = px_view_aggregate(gw->tabs, n, gw->viewers);
    px_buf_reset(&gw->scratch_self);
    int rc = px_proto_write_presence(&gw->scratch_self, &mine);
    if (at >= 0) *t = saved;
    return rc ? PX_ENOMEM : 0;
}

/* The read of a watched entity is back: push a PRESENCE to every watcher
 * (coalesced per connection) and read again if a change came meanwhile.
 * A watcher whose SUB the view does not show yet gets its own tab merged
 * in (self_merge), so its first PRESENCE never shows the room without it. */
static void on_refresh(gw_ctx_t *gw, void *arg, const px_presence_view_t *v) {
    char *keystr = arg;
    gw_entity_t *e = gw->stopping ? NULL : gw_entity_find(gw, keystr);
    free(keystr);
    if (!e) return;
    e->refreshing = false;
    if (v) {
        for (size_t i = 0; i < v->n_locks; i++)
            gw_held_note(e, v->locks[i].tab_id, v->locks[i].user_id, v->locks[i].field);
        px_buf_reset(&gw->scratch);
        if (px_proto_write_presence(&gw->scratch, v)) {
            gw_count_error(gw, "INTERNAL");
            PX_WARN(GW_COMP, "presence too large", "key=%s viewers=%zu locks=%zu", e->keystr, v->n_viewers,
                    v->n_locks);
        } else {
            int64_t now_mono = px_mono_ms();
            for (gw_sub_t *s = e->subs, *next; s; s = next) {
                next = s->next_in_ent; /* a send may close and unlink the conn */
                long at;
                if (self_merge(gw, s, now_mono, &at)) {
                    if (write_presence_self(gw, v, s, at) == 0) {
                        s->self_sent = true;
                        gw_conn_send_presence(s, gw->scratch_self.data, gw->scratch_self.len);
                        continue;
                    }
                    gw_count_error(gw, "INTERNAL");
                    PX_WARN(GW_COMP, "presence with the subscriber's tab too large: sent without it",
                            "key=%s tabs=%zu", e->keystr, gw->n_tabs);
                    s->self_pending = false;
                }
                gw_conn_send_presence(s, gw->scratch.data, gw->scratch.len);
            }
            px_counter_add(gw->m_pushes, 1);
            if (e->changed_ms) px_hist_observe(gw->m_push_latency, (double)(px_now_ms() - e->changed_ms) / 1000.0);
            e->changed_ms = 0;
        }
    }
    if (e->refresh_again) {
        e->refresh_again = false;
        gw_redis_refresh(gw, e);
    }
}

static void on_read(redisAsyncContext *ac, void *r, void *priv) {
    gw_ctx_t *gw = ac->data;
    read_req_t *req = priv;
    redisReply *reply = r;
    px_presence_view_t v;
    const px_presence_view_t *vp = NULL;
    if (!reply || reply->type == REDIS_REPLY_ERROR) {
        if (!gw->stopping) {
            px_counter_add(gw->m_redis_err, 1);
            PX_WARN(GW_COMP, "redis read failed", "err=\"%s\"",
                    reply && reply->type == REDIS_REPLY_ERROR ? reply->str : "no reply");
        }
    } else if (decode_view(gw, &req->key, reply, &v) == 0) {
        vp = &v;
    }
    req->cb(gw, req->arg, vp);
    free(req);
}

bool gw_redis_readable(const gw_ctx_t *gw) {
    return gw->rcmd && gw->rcmd_up;
}

int gw_redis_read(gw_ctx_t *gw, const px_key_t *key, gw_read_cb cb, void *arg) {
    if (!gw_redis_readable(gw) || gw->stopping) return PX_EBACKEND;
    read_req_t *req = malloc(sizeof *req);
    if (!req) {
        gw_oom(gw, "redis read");
        return PX_ENOMEM;
    }
    req->cb = cb;
    req->arg = arg;
    req->key = *key;
    char kview[PX_KEY_MAX + 64];
    px_view_key(key, "view", kview, sizeof kview);
    const char *argv[] = {"GET", kview};
    if (redisAsyncCommandArgv(gw->rcmd, on_read, req, sizeof argv / sizeof argv[0], argv, NULL) != REDIS_OK) {
        free(req);
        px_counter_add(gw->m_redis_err, 1);
        PX_WARN(GW_COMP, "redis read not sent", "err=\"%s\"", gw->rcmd->errstr);
        return PX_EBACKEND;
    }
    return 0;
}

void gw_redis_refresh(gw_ctx_t *gw, gw_entity_t *e) {
    if (e->refreshing) {
        e->refresh_again = true;
        return;
    }
    if (!gw_redis_readable(gw)) return; /* re-read on reconnect */
    char *keystr = strdup(e->keystr);
    if (!keystr) {
        gw_oom(gw, "entity refresh");
        return;
    }
    if (gw_redis_read(gw, &e->key, on_refresh, keystr)) {
        free(keystr);
        return;
    }
    e->refreshing = true;
}
