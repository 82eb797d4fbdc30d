/*
 * gw_locks.c - LOCKs in flight: from the client's LOCK to its LOCK_ACK.
 *
 * A LOCK becomes a LockEvent whose request_id is the gateway's own
 * ("<gateway.id>.<seq>", unique per process and across gateways), so two
 * clients that pick the same request id never get each other's answer.
 * The processor folds it and publishes the decision on
 * presence:updates:{key} twice: right after the fold, before its Kafka
 * commit, as {"decided":[changes]} (processor/pr_redis.c
 * pr_redis_decisions), and after its Redis write, with the batch's other
 * changes of the entity, as a JSON array (both core/px_notify.h); the
 * first to arrive answers. The gateway already subscribes to
 * that channel for every watched entity; gw_locks_notify finds the
 * LOCK_GRANTED / LOCK_DENIED carrying one of its request ids and sends the
 * LOCK_ACK, with the client's own request id, to the connection that asked.
 * A LOCK with no outcome within limits.lock_timeout_ms gets ERROR TIMEOUT
 * (the lock may still have been granted; the next PRESENCE says).
 *
 * Grants to a local tab are remembered per subscription (gw_held_t), from
 * the LOCK_GRANTED notifications and from every PRESENCE read (so a lock
 * whose LOCK_ACK timed out, or that a reconnecting tab held before, is
 * known too); closing the connection, or UNSUB, publishes an UNLOCK for
 * each. LOCK_RELEASED and LOCK_EXPIRED of the tab forget them.
 *
 * Bounds: limits.pending_locks_per_connection LOCKs in flight per
 * connection; a fixed hash table; the timer runs every 50 ms.
 * Related: gw_msg.c (the LOCK message), gw_push.c (the notifications), gw.h,
 * docs/protocol.md.
 */
#include <stdlib.h>
#include <string.h>

#include "gw.h"
#include "px_log.h"
#include "px_notify.h"
#include "px_time.h"

#define GW_LOCK_TICK_MS 50

static void pend_unlink(gw_ctx_t *gw, gw_pending_t *p) {
    if (p->prev) p->prev->next = p->next;
    else gw->pend_head = p->next;
    if (p->next) p->next->prev = p->prev;
    else gw->pend_tail = p->prev;
    gw_pending_t **pp = &gw->pend_hash[gw_hash(p->rid) % gw->n_pend_buckets];
    for (; *pp; pp = &(*pp)->hnext)
        if (*pp == p) {
            *pp = p->hnext;
            break;
        }
    gw_conn_t *c = p->conn;
    for (gw_pending_t **cp = &c->pending; *cp; cp = &(*cp)->cnext)
        if (*cp == p) {
            *cp = p->cnext;
            c->n_pending--;
            break;
        }
}

void gw_locks_drop(gw_ctx_t *gw, gw_pending_t *p) {
    if (!p) return;
    pend_unlink(gw, p);
    free(p);
}

static gw_pending_t *pend_find(gw_ctx_t *gw, const char *rid) {
    for (gw_pending_t *p = gw->pend_hash[gw_hash(rid) % gw->n_pend_buckets]; p; p = p->hnext)
        if (strcmp(p->rid, rid) == 0) return p;
    return NULL;
}

/* Every tick: LOCKs past their deadline get ERROR TIMEOUT. The list is in
 * deadline order, so only its head is looked at. */
static void on_tick(uv_timer_t *t) {
    gw_ctx_t *gw = t->data;
    int64_t now = px_now_ms();
    while (gw->pend_head && gw->pend_head->deadline_ms <= now) {
        gw_pending_t *p = gw->pend_head;
        gw_conn_send_error(p->conn, "TIMEOUT", "no outcome for the LOCK in time; the next PRESENCE tells",
                           p->client_rid[0] ? p->client_rid : NULL);
        gw_locks_drop(gw, p);
    }
}

int gw_locks_init(gw_ctx_t *gw, size_t buckets) {
    gw->pend_hash = calloc(buckets, sizeof *gw->pend_hash);
    if (!gw->pend_hash) return PX_ENOMEM;
    gw->n_pend_buckets = buckets;
    uv_timer_init(gw->loop, &gw->lock_timer);
    gw->lock_timer.data = gw;
    uv_timer_start(&gw->lock_timer, on_tick, GW_LOCK_TICK_MS, GW_LOCK_TICK_MS);
    return 0;
}

void gw_locks_stop(gw_ctx_t *gw) {
    if (!gw->lock_timer.loop || uv_is_closing((uv_handle_t *)&gw->lock_timer)) return;
    uv_timer_stop(&gw->lock_timer);
    uv_close((uv_handle_t *)&gw->lock_timer, NULL);
}

void gw_locks_term(gw_ctx_t *gw) {
    while (gw->pend_head) gw_locks_drop(gw, gw->pend_head);
    free(gw->pend_hash);
    gw->pend_hash = NULL;
    gw->n_pend_buckets = 0;
}

gw_pending_t *gw_locks_add(gw_ctx_t *gw, gw_conn_t *c, const px_key_t *key, const char *field,
                           const char *client_rid, const char **err) {
    if (c->n_pending >= gw->cfg.max_pending_locks) {
        *err = "TOO_MANY_PENDING";
        return NULL;
    }
    gw_pending_t *p = calloc(1, sizeof *p);
    if (!p) {
        gw_oom(gw, "pending LOCK");
        *err = "INTERNAL";
        return NULL;
    }
    p->conn = c;
    p->key = *key;
    snprintf(p->field, sizeof p->field, "%s", field);
    snprintf(p->client_rid, sizeof p->client_rid, "%s", client_rid ? client_rid : "");
    snprintf(p->rid, sizeof p->rid, "%.100s.%llu", gw->cfg.gateway_id, (unsigned long long)++gw->lock_seq);
    p->sent_ms = px_now_ms();
    p->deadline_ms = p->sent_ms + gw->cfg.lock_timeout_ms;
    p->prev = gw->pend_tail;
    if (gw->pend_tail) gw->pend_tail->next = p;
    else gw->pend_head = p;
    gw->pend_tail = p;
    size_t b = gw_hash(p->rid) % gw->n_pend_buckets;
    p->hnext = gw->pend_hash[b];
    gw->pend_hash[b] = p;
    p->cnext = c->pending;
    c->pending = p;
    c->n_pending++;
    return p;
}

void gw_locks_conn_closed(gw_ctx_t *gw, gw_conn_t *c) {
    while (c->pending) gw_locks_drop(gw, c->pending);
}

void gw_held_add(gw_sub_t *s, const char *field) {
    for (gw_held_t *h = s->held; h; h = h->next)
        if (strcmp(h->field, field) == 0) return;
    gw_held_t *h = calloc(1, sizeof *h);
    if (!h) { /* the lock then lapses by its TTL instead of an UNLOCK */
        gw_oom(s->conn->gw, "held lock");
        return;
    }
    snprintf(h->field, sizeof h->field, "%s", field);
    h->next = s->held;
    s->held = h;
}

void gw_held_note(gw_entity_t *e, const char *tab_id, const char *user_id, const char *field) {
    for (gw_sub_t *s = e->subs; s; s = s->next_in_ent)
        if (strcmp(s->conn->tab_id, tab_id) == 0 && strcmp(s->conn->who.user_id, user_id) == 0)
            gw_held_add(s, field);
}

void gw_held_del(gw_sub_t *s, const char *field) {
    for (gw_held_t **hp = &s->held; *hp; hp = &(*hp)->next)
        if (strcmp((*hp)->field, field) == 0) {
            gw_held_t *h = *hp;
            *hp = h->next;
            free(h);
            return;
        }
}

void gw_held_free(gw_sub_t *s) {
    while (s->held) {
        gw_held_t *h = s->held;
        s->held = h->next;
        free(h);
    }
}

/* The LOCK_ACK for pending p from a LOCK_GRANTED or LOCK_DENIED change. */
static void answer(gw_ctx_t *gw, gw_entity_t *e, gw_pending_t *p, const px_notify_change_t *ch, bool granted) {
    gw_conn_t *c = p->conn;
    int64_t token = granted ? ch->token : -1;
    const char *holder = granted ? c->who.user_id : ch->holder;
    const char *holder_name = granted ? c->who.user_name : ch->holder_name;
    px_buf_reset(&gw->scratch);
    if (px_proto_write_lock_ack(&gw->scratch, &e->key, p->field, granted, holder,
                                holder_name[0] ? holder_name : NULL, token,
                                p->client_rid[0] ? p->client_rid : NULL) == 0) {
        if (gw_conn_send(c, gw->scratch.data, gw->scratch.len) == 0) px_counter_add(gw->m_out_lock_ack, 1);
    }
    px_hist_observe(gw->m_lock_latency, (double)(px_now_ms() - p->sent_ms) / 1000.0);
    gw_locks_drop(gw, p);
}

typedef struct notify_arg {
    gw_ctx_t *gw;
    gw_entity_t *e;
} notify_arg_t;

static void on_lock_change(void *arg, const px_notify_change_t *ch) {
    notify_arg_t *a = arg;
    bool granted = ch->type == PX_CH_LOCK_GRANTED;
    if (granted) /* the tab's, whoever asked and whether or not the ACK timed out */
        gw_held_note(a->e, ch->tab_id, ch->user, ch->field);
    if (granted || ch->type == PX_CH_LOCK_DENIED) {
        gw_pending_t *p = ch->request_id[0] ? pend_find(a->gw, ch->request_id) : NULL;
        if (p && px_key_equal(&p->key, &a->e->key) && strcmp(p->field, ch->field) == 0)
            answer(a->gw, a->e, p, ch, granted);
    } else if (ch->type == PX_CH_LOCK_RELEASED || ch->type == PX_CH_LOCK_EXPIRED) {
        for (gw_sub_t *s = a->e->subs; s; s = s->next_in_ent)
            if (strcmp(s->conn->tab_id, ch->tab_id) == 0) gw_held_del(s, ch->field);
    }
}

bool gw_locks_notify(gw_ctx_t *gw, gw_entity_t *e, const char *json, size_t len) {
    notify_arg_t a = {gw, e};
    px_notify_kind_t kind;
    char err[128];
    /* a notification that does not decode is only a re-read (the caller's) */
    px_notify_decode(json, len, PX_NOTIFY_LOCKS, &kind, on_lock_change, &a, err, sizeof err);
    return kind == PX_NOTIFY_DECIDED;
}
