/*
 * gw_msg.c - what a client's WebSocket messages mean.
 *
 * A whole text message (gw_conn.c reassembles it) passes the connection's
 * token bucket (limits.messages_per_second, burst limits.messages_burst;
 * at most one RATE_LIMITED a second, the other drops counted), is parsed
 * (px_proto_parse) and checked against the connection's identity, then:
 * SUB, HB and UNSUB become PresenceEvents, LOCK and UNLOCK LockEvents
 * (gw_event.c builds and produces them), SUB and UNSUB change the
 * connection's subscriptions (gw_subs.c), LOCK waits for its outcome
 * (gw_locks.c), and a SUB asks for the entity's PRESENCE (gw_push.c).
 * Refusals are ERROR messages with a code word (docs/protocol.md).
 * When a connection ends its tabs and locks are released by the
 * gateway's own events, which librdkafka queues while Kafka is down.
 */
#include <string.h>

#include "gw.h"
#include "px_time.h"

/* The token bucket: true if the message may pass. */
static bool rate_ok(gw_conn_t *c) {
    gw_ctx_t *gw = c->gw;
    switch (gw_bucket_take(&c->bucket, gw->cfg.msgs_per_sec, gw->cfg.msgs_burst, px_now_ms())) {
    case GW_BUCKET_PASS:
        return true;
    case GW_BUCKET_DROP_NOTIFY:
        gw_conn_send_error(c, "RATE_LIMITED", "too many messages per second; dropped", NULL);
        return false;
    default:
        gw_count_error(gw, "RATE_LIMITED");
        return false;
    }
}

/* Publish one presence event for sub. m is the client's message, NULL for
 * the gateway's own (UNSUB on close): a client's write is refused with
 * UNAVAILABLE while Kafka is down, the gateway's own is queued by
 * librdkafka until it is back. */
static int publish(gw_conn_t *c, gw_sub_t *s, px_pres_type_t type, const px_msg_t *m) {
    px_event_t ev;
    const char *why;
    gw_event_presence(&ev, type, &s->ent->key, &c->who, c->tab_id, &s->tab);
    if (!m) return gw_kafka_publish(c->gw, &ev);
    snprintf(ev.field, sizeof ev.field, "%s", m->field);
    snprintf(ev.cursor, sizeof ev.cursor, "%s", m->cursor);
    if (gw_event_submit(c->gw, &ev, &why)) {
        gw_conn_send_error(c, "UNAVAILABLE", why, m->request_id);
        return -1;
    }
    if (type == PX_PRES_SUB) /* its PRESENCEs show the tab until the view does (gw_push.c) */
        gw_self_start(&s->self, ev.ts_ms, px_mono_ms(), GW_SELF_MERGE_MS);
    return 0;
}

/* UNLOCK every lock the tab holds on s's entity (on UNSUB and close). */
static void release_locks(gw_conn_t *c, gw_sub_t *s) {
    px_event_t ev;
    for (gw_held_t *h = s->held; h; h = h->next) {
        gw_event_lock(&ev, PX_LOCK_UNLOCK, &s->ent->key, &c->who, c->tab_id, h->field, NULL);
        gw_kafka_publish(c->gw, &ev);
    }
    gw_held_free(s);
}

static void apply_hb_fields(gw_sub_t *s, const px_msg_t *m) {
    if (m->has_mode) s->tab.mode = m->mode;
    if (m->has_dirty) s->tab.dirty = m->dirty;
    if (m->has_status) s->tab.status = m->status;
}

/* The subscription a message is about: the entity it names (key filled,
 * *target NULL when not subscribed), or the connection's only one. An HB
 * without entity applies to every subscription (*target NULL). 0, or -1
 * with the ERROR sent. */
static int resolve_target(gw_conn_t *c, const px_msg_t *m, px_key_t *key, gw_sub_t **target) {
    char err[256];
    *target = NULL;
    if (m->tenant[0] && strcmp(m->tenant, c->who.tenant) != 0) {
        gw_conn_send_error(c, "FORBIDDEN", "tenant does not match the token", m->request_id);
        return -1;
    }
    if (m->has_target) {
        if (px_key_set(key, c->who.tenant, m->entity, m->id, err, sizeof err)) {
            gw_conn_send_error(c, "BAD_FIELD", err, m->request_id);
            return -1;
        }
        *target = gw_subs_find(c, key);
    } else if (m->type == PX_MSG_HB) {
        if (!c->subs) {
            gw_conn_send_error(c, "NOT_SUBSCRIBED", "HB without entity and id, and no subscription", m->request_id);
            return -1;
        }
    } else if (c->n_subs != 1) {
        gw_conn_send_error(c, "NOT_SUBSCRIBED", "no entity and id, and not exactly one subscription", m->request_id);
        return -1;
    } else {
        *target = c->subs;
    }
    return 0;
}

static void on_sub(gw_conn_t *c, gw_sub_t *target, const px_key_t *key, const px_msg_t *m) {
    gw_ctx_t *gw = c->gw;
    const char *ecode = NULL;
    if (!m->has_target) {
        gw_conn_send_error(c, "BAD_FIELD", "SUB needs entity and id", m->request_id);
        return;
    }
    if (!target && !gw_kafka_writable(gw)) {
        gw_conn_send_error(c, "UNAVAILABLE", GW_KAFKA_DOWN, m->request_id);
        return;
    }
    if (m->tab_id[0] && !c->subs) memcpy(c->tab_id, m->tab_id, sizeof c->tab_id);
    gw_sub_t *s = target ? target : gw_subs_add(gw, c, key, &ecode);
    if (!s) {
        gw_conn_send_error(c, ecode,
                           ecode && strcmp(ecode, "TOO_MANY_SUBSCRIPTIONS") == 0
                               ? "subscription limit of the connection reached"
                               : "subscription refused",
                           m->request_id);
        return;
    }
    apply_hb_fields(s, m);
    if (publish(c, s, PX_PRES_SUB, m)) {
        if (!target) gw_subs_remove(gw, s);
        return;
    }
    if (!gw_redis_readable(gw->redis))
        gw_conn_send_error(c, "UNAVAILABLE", "Redis is unreachable: presence follows when it is back", m->request_id);
    else
        gw_push_refresh(gw, s->ent);
}

static void on_hb(gw_conn_t *c, gw_sub_t *target, const px_msg_t *m) {
    if (m->has_target) {
        if (!target) {
            gw_conn_send_error(c, "NOT_SUBSCRIBED", "HB for an entity not subscribed", m->request_id);
            return;
        }
        apply_hb_fields(target, m);
        publish(c, target, PX_PRES_HB, m);
        return;
    }
    for (gw_sub_t *s = c->subs; s; s = s->next_in_conn) {
        apply_hb_fields(s, m);
        if (publish(c, s, PX_PRES_HB, m)) return;
    }
}

static void on_unsub(gw_conn_t *c, gw_sub_t *target, const px_msg_t *m) {
    if (!target) {
        gw_conn_send_error(c, "NOT_SUBSCRIBED", "UNSUB for an entity not subscribed", m->request_id);
        return;
    }
    if (publish(c, target, PX_PRES_UNSUB, m)) return;
    release_locks(c, target);
    gw_subs_remove(c->gw, target);
}

/* LOCK registers the request before its event goes out (the outcome may
 * come back before the produce call returns); UNLOCK forgets the lock. */
static void on_lock(gw_conn_t *c, gw_sub_t *target, const px_msg_t *m) {
    gw_ctx_t *gw = c->gw;
    px_event_t ev;
    const char *why = GW_KAFKA_DOWN, *ecode = NULL;
    if (!target) {
        gw_conn_send_error(c, "NOT_SUBSCRIBED", "LOCK/UNLOCK for an entity not subscribed", m->request_id);
        return;
    }
    if (m->type == PX_MSG_UNLOCK) {
        gw_event_lock(&ev, PX_LOCK_UNLOCK, &target->ent->key, &c->who, c->tab_id, m->field, NULL);
        if (gw_event_submit(gw, &ev, &why)) gw_conn_send_error(c, "UNAVAILABLE", why, m->request_id);
        else gw_held_del(target, m->field);
        return;
    }
    if (!gw_kafka_writable(gw)) {
        gw_conn_send_error(c, "UNAVAILABLE", why, m->request_id);
        return;
    }
    gw_pending_t *p = gw_locks_add(gw, c, &target->ent->key, m->field, m->request_id, &ecode);
    if (!p) {
        gw_conn_send_error(c, ecode, "too many LOCKs awaiting their outcome", m->request_id);
        return;
    }
    gw_event_lock(&ev, PX_LOCK_LOCK, &target->ent->key, &c->who, c->tab_id, m->field, p->rid);
    if (gw_event_submit(gw, &ev, &why)) {
        gw_locks_drop(gw, p);
        gw_conn_send_error(c, "UNAVAILABLE", why, m->request_id);
    }
}

void gw_msg_handle(gw_conn_t *c, const char *buf, size_t len) {
    gw_ctx_t *gw = c->gw;
    px_msg_t m;
    px_key_t key;
    gw_sub_t *target;
    const char *code = NULL;
    char err[256];
    px_counter_add(gw->m_msgs_in, 1);
    if (!rate_ok(c)) return;
    if (px_proto_parse(buf, len, &m, &code, err, sizeof err)) {
        gw_conn_send_error(c, code ? code : "BAD_JSON", err, m.request_id);
        return;
    }
    px_counter_add(gw->m_in_type[m.type], 1);
    if (resolve_target(c, &m, &key, &target)) return;
    switch (m.type) {
    case PX_MSG_SUB:
        on_sub(c, target, &key, &m);
        return;
    case PX_MSG_HB:
        on_hb(c, target, &m);
        return;
    case PX_MSG_UNSUB:
        on_unsub(c, target, &m);
        return;
    case PX_MSG_LOCK:
    case PX_MSG_UNLOCK:
        on_lock(c, target, &m);
        return;
    default:
        return;
    }
}

void gw_msg_binary(gw_conn_t *c) {
    if (rate_ok(c)) gw_conn_send_error(c, "BAD_FRAME", "binary frames are not accepted", NULL);
}

void gw_msg_closed(gw_conn_t *c) {
    gw_locks_conn_closed(c->gw, c);
    while (c->subs) {
        gw_sub_t *s = c->subs;
        release_locks(c, s);
        publish(c, s, PX_PRES_UNSUB, NULL);
        gw_subs_remove(c->gw, s);
    }
}
