/*
 * gw_view.c - an entity's view read from Redis and decoded for the
 * gateway: one GET of the view string, which the processor writes whole,
 * so a read sees one point in time. The view is decoded (px_view.h) into
 * the context's scratch arrays (bounded by GW_MAX_TABS and GW_MAX_LOCKS)
 * and handed to the reader as a px_presence_view_t: the PRESENCE fan-out
 * (gw_push.c) and the REST reads (gw_rest.c).
 * Related: gw_redis.c (the transport), docs/redis-keys.md (the view).
 */
#include <stdlib.h>
#include <string.h>

#include "gw.h"
#include "px_log.h"
#include "px_time.h"
#include "px_view.h"

typedef struct view_req {
    gw_ctx_t *gw;
    gw_read_cb cb;
    void *arg;
    px_key_t key;
} view_req_t;

int gw_view_init(gw_ctx_t *gw) {
    gw->tabs = calloc(GW_MAX_TABS, sizeof *gw->tabs);
    gw->viewers = calloc(GW_MAX_TABS, sizeof *gw->viewers);
    gw->locks = calloc(GW_MAX_LOCKS, sizeof *gw->locks);
    gw->lock_views = calloc(GW_MAX_LOCKS, sizeof *gw->lock_views);
    px_buf_init(&gw->scratch_self, 1u << 20);
    if (!gw->tabs || !gw->viewers || !gw->locks || !gw->lock_views) return PX_ENOMEM;
    return 0;
}

void gw_view_term(gw_ctx_t *gw) {
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

/* Decode the view string (NULL: no key, nothing live) into v (strings in
 * gw's scratch arrays). 0, or -1 when it does not decode (counted and
 * logged). */
static int decode_view(gw_ctx_t *gw, const px_key_t *key, const char *val, size_t len, px_presence_view_t *v) {
    px_view_t pv = {.tabs = gw->tabs, .max_tabs = GW_MAX_TABS, .locks = gw->locks, .max_locks = GW_MAX_LOCKS};
    if (val) {
        if (px_view_decode(val, len, px_now_ms(), &pv)) {
            px_counter_add(gw->m_redis_err, 1);
            PX_WARN(GW_COMP, "redis read: malformed view", "key=%s:%s:%s bytes=%zu", key->tenant, key->entity,
                    key->id, len);
            return -1;
        }
        if (pv.n_dropped) { /* more than the fold's caps: not the processor's */
            px_counter_add(gw->m_redis_err, 1);
            PX_WARN(GW_COMP, "redis read: view over the caps, items left out", "key=%s:%s:%s left_out=%zu",
                    key->tenant, key->entity, key->id, pv.n_dropped);
        }
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

static void on_view(void *arg, int status, const char *val, size_t len) {
    view_req_t *req = arg;
    gw_ctx_t *gw = req->gw;
    px_presence_view_t v;
    const px_presence_view_t *vp = NULL;
    if (status == 0 && decode_view(gw, &req->key, val, len, &v) == 0) vp = &v;
    req->cb(gw, req->arg, vp);
    free(req);
}

int gw_view_read(gw_ctx_t *gw, const px_key_t *key, gw_read_cb cb, void *arg) {
    char kview[PX_KEY_MAX + 64];
    if (gw->stopping || !gw_redis_readable(gw->redis)) return PX_EBACKEND;
    view_req_t *req = malloc(sizeof *req);
    if (!req) {
        gw_oom(gw, "redis read");
        return PX_ENOMEM;
    }
    *req = (view_req_t){.gw = gw, .cb = cb, .arg = arg, .key = *key};
    px_view_key(key, "view", kview, sizeof kview);
    if (gw_redis_get(gw->redis, kview, on_view, req)) {
        free(req);
        return PX_EBACKEND;
    }
    return 0;
}
