/*
 * gw_push.c - what the gateway pushes to its clients when Redis speaks:
 * the layer above the Redis transport (gw_redis.c), which hands it
 * channel messages and link events, and above the view reads (gw_view.c).
 *
 * - A message on presence:updates:{key} of a watched entity: the lock
 *   decisions in it answer pending LOCKs (gw_locks.c); unless it is the
 *   early form (decisions published before the processor's commit, not in
 *   Redis yet), the entity is read again.
 * - A read of a watched entity is back: a PRESENCE to every watcher,
 *   coalesced per connection (gw_conn.c), and one more read if a change
 *   came meanwhile; at most one read per entity is in flight. A watcher
 *   whose SUB the view does not show yet gets its own tab merged in
 *   (gw_self.h), so its first PRESENCE never shows the room without it.
 * - A Redis link up again: every watched channel is subscribed again, or
 *   every watched entity read again.
 */
#include <stdlib.h>
#include <string.h>

#include "gw.h"
#include "px_log.h"
#include "px_time.h"
#include "px_view.h"

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
    t->mode = s->tab.mode;
    t->dirty = s->tab.dirty;
    t->status = s->tab.status;
    px_presence_view_t mine = *v;
    mine.viewers = gw->viewers;
    mine.n_viewers = px_view_aggregate(gw->tabs, n, gw->viewers);
    px_buf_reset(&gw->scratch_self);
    int rc = px_proto_write_presence(&gw->scratch_self, &mine);
    if (at >= 0) *t = saved;
    return rc ? PX_ENOMEM : 0;
}

/* The PRESENCE of v (in gw->scratch) to every watcher of e. */
static void fan_out(gw_ctx_t *gw, gw_entity_t *e, const px_presence_view_t *v) {
    int64_t now_mono = px_mono_ms();
    for (gw_sub_t *s = e->subs, *next; s; s = next) {
        next = s->next_in_ent; /* a send may close and unlink the conn */
        long at;
        if (gw_self_merge(&s->self, gw->tabs, gw->n_tabs, s->conn->tab_id, s->conn->who.user_id, now_mono, &at)) {
            if (write_presence_self(gw, v, s, at) == 0) {
                s->self.sent = true;
                gw_conn_send_presence(s, gw->scratch_self.data, gw->scratch_self.len);
                continue;
            }
            gw_count_error(gw, "INTERNAL");
            PX_WARN(GW_COMP, "presence with the subscriber's tab too large: sent without it", "key=%s tabs=%zu",
                    e->keystr, gw->n_tabs);
            s->self.pending = false;
        }
        gw_conn_send_presence(s, gw->scratch.data, gw->scratch.len);
    }
    px_counter_add(gw->m_pushes, 1);
    if (e->changed_ms) px_hist_observe(gw->m_push_latency, (double)(px_now_ms() - e->changed_ms) / 1000.0);
    e->changed_ms = 0;
}

/* The read of a watched entity is back (v NULL: it failed). */
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
        if (px_proto_write_presence(&gw->scratch, v) == 0) {
            fan_out(gw, e, v);
        } else {
            gw_count_error(gw, "INTERNAL");
            PX_WARN(GW_COMP, "presence too large", "key=%s viewers=%zu locks=%zu", e->keystr, v->n_viewers,
                    v->n_locks);
        }
    }
    if (e->refresh_again) {
        e->refresh_again = false;
        gw_push_refresh(gw, e);
    }
}

void gw_push_refresh(gw_ctx_t *gw, gw_entity_t *e) {
    if (e->refreshing) {
        e->refresh_again = true;
        return;
    }
    if (!gw_redis_readable(gw->redis)) return; /* read again when the link is up */
    char *keystr = strdup(e->keystr);
    if (!keystr) {
        gw_oom(gw, "entity refresh");
        return;
    }
    if (gw_view_read(gw, &e->key, on_refresh, keystr)) {
        free(keystr);
        return;
    }
    e->refreshing = true;
}

/* A message on a watched channel: the processor changed the entity. */
static void on_message(void *arg, const char *channel, size_t channel_len, const char *payload, size_t len) {
    gw_ctx_t *gw = arg;
    px_key_t key;
    char ks[PX_KEY_MAX + 1];
    if (gw->stopping || px_view_channel_parse(channel, channel_len, &key)) return;
    px_key_format(&key, ks, sizeof ks);
    gw_entity_t *e = gw_entity_find(gw, ks);
    if (!e) return;
    int64_t now = px_now_ms();
    if (gw_locks_notify(gw, e, payload, len)) return; /* decisions before the write: nothing new to read yet */
    e = gw_entity_find(gw, ks); /* a LOCK_ACK may have closed a slow connection */
    if (!e) return;
    if (!e->changed_ms) e->changed_ms = now;
    gw_push_refresh(gw, e);
}

/* A Redis link is up: what it carried for the watched entities again. */
static void on_up(void *arg, gw_redis_link_t link) {
    gw_ctx_t *gw = arg;
    char ch[PX_KEY_MAX + 32];
    for (size_t i = 0; i < gw->n_ent_buckets; i++)
        for (gw_entity_t *e = gw->ents[i]; e; e = e->next) {
            if (link == GW_REDIS_SUBS) {
                px_view_channel(&e->key, ch, sizeof ch);
                gw_redis_subscribe(gw->redis, ch, true);
            } else {
                e->refreshing = false; /* its read was answered with the loss */
                gw_push_refresh(gw, e);
            }
        }
}

gw_redis_handlers_t gw_push_handlers(gw_ctx_t *gw) {
    return (gw_redis_handlers_t){.up = on_up, .message = on_message, .arg = gw};
}
