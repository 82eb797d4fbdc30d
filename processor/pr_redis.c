/*
 * pr_redis.c - the loop's Redis connection: synchronous hiredis with a
 * timeout, reconnect with capped exponential backoff (100 ms to 5 s), and
 * what the loop reads or publishes on it: entity states (pipelined),
 * applied marks, the deadline index, early lock decisions. Writes are
 * pr_writer.c's.
 *
 *   presence:epoch:{group}  STRING set once per Redis dataset; if it is
 *                           missing on reconnect, Redis lost its data and
 *                           the processor rebuilds from the log (pr_loop.c).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pr.h"
#include "px_log.h"
#include "px_redis_addr.h"
#include "px_time.h"
#include "px_view.h"

void pr_redis_fail(pr_ctx_t *pr, const char *what) {
    px_counter_add(pr->m_redis_err, 1);
    PX_WARN(PR_COMP, "redis unavailable", "during=%s err=\"%s\" retry_ms=%lld", what,
            pr->rd.conn && pr->rd.conn->err ? pr->rd.conn->errstr : "error reply",
            (long long)(pr->rd.backoff_ms ? pr->rd.backoff_ms : 100));
    if (pr->rd.conn) redisFree(pr->rd.conn);
    pr->rd.conn = NULL;
    pr->rd.backoff_ms = pr->rd.backoff_ms ? pr->rd.backoff_ms * 2 : 100;
    if (pr->rd.backoff_ms > 5000) pr->rd.backoff_ms = 5000;
    pr->rd.retry_at = px_mono_ms() + pr->rd.backoff_ms;
}

void pr_redis_close(pr_ctx_t *pr) {
    if (pr->rd.conn) redisFree(pr->rd.conn);
    pr->rd.conn = NULL;
}

/* Did Redis lose its dataset since this instance last saw it? The epoch
 * key holds a value set once per dataset. An instance remembers the value
 * it saw; if the key is missing (we create it) or holds another value
 * (another instance re-created it after a loss), the data this instance
 * wrote may be gone and it must rebuild. The first connection of a process
 * only remembers the value: its partitions get their repair check anyway. */
static int check_epoch(pr_ctx_t *pr, bool *lost) {
    char mine[32];
    snprintf(mine, sizeof mine, "%lld-%d", (long long)px_now_ms(), (int)getpid());
    redisReply *r = redisCommand(pr->rd.conn, "SET presence:epoch:{%s} %s NX GET", pr->kc.group, mine);
    if (!r) return PX_EBACKEND;
    const char *now_epoch = r->type == REDIS_REPLY_STRING ? r->str : mine; /* nil: we created it */
    *lost = pr->rd.epoch[0] && strcmp(pr->rd.epoch, now_epoch) != 0;
    snprintf(pr->rd.epoch, sizeof pr->rd.epoch, "%s", now_epoch);
    freeReplyObject(r);
    return 0;
}

int pr_redis_ensure(pr_ctx_t *pr) {
    if (pr->rd.conn) return 0;
    if (px_mono_ms() < pr->rd.retry_at) return PX_EBACKEND;
    struct timeval tv = {(time_t)(pr->cfg.redis_timeout_ms / 1000),
                         (suseconds_t)(pr->cfg.redis_timeout_ms % 1000) * 1000};
    pr->rd.conn = px_redis_connect(pr->cfg.redis_host, (int)pr->cfg.redis_port, tv);
    if (!pr->rd.conn || pr->rd.conn->err) {
        pr_redis_fail(pr, "connect");
        return PX_EBACKEND;
    }
    redisSetTimeout(pr->rd.conn, tv);
    redisReply *r = redisCommand(pr->rd.conn, "SCRIPT LOAD %s", PX_STORE_WRITE_SCRIPT);
    if (!r || r->type != REDIS_REPLY_STRING || r->len != 40) {
        if (r) freeReplyObject(r);
        pr_redis_fail(pr, "script load");
        return PX_EBACKEND;
    }
    memcpy(pr->rd.script_sha, r->str, 40);
    pr->rd.script_sha[40] = '\0';
    freeReplyObject(r);
    bool lost = false;
    if (check_epoch(pr, &lost)) {
        pr_redis_fail(pr, "epoch");
        return PX_EBACKEND;
    }
    pr->rd.backoff_ms = 0;
    pr->rd.gen++; /* the writer renews its connection after this one (pr_writer.c) */
    char addr[PX_CONF_STR_MAX + 24];
    PX_INFO(PR_COMP, "redis connected", "addr=%s dataset_lost=%s",
            px_redis_addr(pr->cfg.redis_host, pr->cfg.redis_port, addr, sizeof addr), lost ? "yes" : "no");
    if (lost) pr->rd.rebuild_pending = true; /* done at the start of the next turn */
    return 0;
}

int pr_redis_load(pr_ctx_t *pr, pr_entity_t **ents, size_t n) {
    char key[PX_KEY_MAX + 64], err[256];
    int rc = 0;
    if (pr_redis_ensure(pr)) return PX_EBACKEND;
    for (size_t i = 0; i < n; i++) {
        px_store_state_key(&ents[i]->st.key, key, sizeof key);
        redisAppendCommand(pr->rd.conn, "HMGET %s wm blob", key);
    }
    for (size_t i = 0; i < n; i++) {
        redisReply *r = NULL;
        if (redisGetReply(pr->rd.conn, (void **)&r) != REDIS_OK || !r) {
            pr_redis_fail(pr, "load");
            return PX_EBACKEND;
        }
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 && r->element[1]->type == REDIS_REPLY_STRING) {
            pr_entity_t *e = ents[i];
            if (px_store_decode(r->element[1]->str, r->element[1]->len, &e->st, &e->wm, err, sizeof err)) {
                /* never write over it: its records go to the DLQ until an
                 * operator repairs the key (presencectl verify names it) */
                px_counter_add(pr->m_redis_err, 1);
                PX_ERROR(PR_COMP, "stored state does not decode: entity poisoned", "entity=%s:%s:%s err=\"%s\"",
                         e->st.key.tenant, e->st.key.entity, e->st.key.id, err);
                px_entity_term(&e->st); /* empty again; keeps the key */
                e->poisoned = true;
                rc = PX_EINVAL;
            }
        }
        pr_heap_update(pr, ents[i]);
        freeReplyObject(r);
    }
    return rc;
}

size_t pr_redis_decisions(pr_ctx_t *pr, pr_entity_t *const *ents, size_t n) {
    size_t sent = 0;
    char ch[PX_KEY_MAX + 64];
    px_buf_t *out = &pr->scratch;
    if (!pr->rd.conn) return 0; /* no early answer: the later notification gives it */
    for (size_t i = 0; i < n; i++) {
        if (px_view_channel(&ents[i]->st.key, ch, sizeof ch) < 0 ||
            px_notify_encode(&ents[i]->decisions, PX_NOTIFY_DECIDED, out))
            continue; /* out of memory: the later notification answers */
        redisAppendCommand(pr->rd.conn, "PUBLISH %s %b", ch, out->data, out->len);
        sent++;
    }
    for (size_t i = 0; i < sent; i++) {
        redisReply *r = NULL;
        if (redisGetReply(pr->rd.conn, (void **)&r) != REDIS_OK || !r) {
            pr_redis_fail(pr, "publish");
            return i;
        }
        freeReplyObject(r);
    }
    return sent;
}

int pr_redis_applied(pr_ctx_t *pr, int32_t partition, int64_t out[PR_N_SRC]) {
    for (int s = 0; s < PR_N_SRC; s++) out[s] = -1;
    if (pr_redis_ensure(pr)) return PX_EBACKEND;
    char f[PR_N_SRC][32], hk[PX_CONF_STR_MAX + 32];
    const char *argv[2 + PR_N_SRC];
    int argc = 0;
    snprintf(hk, sizeof hk, "presence:applied:{%s}", pr->kc.group);
    argv[argc++] = "HMGET";
    argv[argc++] = hk;
    for (int s = 0; s < PR_N_SRC; s++) {
        snprintf(f[s], sizeof f[s], "%d:%d", s, partition);
        argv[argc++] = f[s];
    }
    redisReply *r = redisCommandArgv(pr->rd.conn, argc, argv, NULL);
    if (!r) {
        pr_redis_fail(pr, "applied marks");
        return PX_EBACKEND;
    }
    if (r->type == REDIS_REPLY_ARRAY && r->elements == PR_N_SRC)
        for (int s = 0; s < PR_N_SRC; s++)
            if (r->element[s]->type == REDIS_REPLY_STRING) out[s] = strtoll(r->element[s]->str, NULL, 10);
    freeReplyObject(r);
    return 0;
}

int pr_redis_deadline_keys(pr_ctx_t *pr, int32_t partition, px_key_t **keys, size_t *n) {
    *keys = NULL;
    *n = 0;
    if (pr_redis_ensure(pr)) return PX_EBACKEND;
    redisReply *r = redisCommand(pr->rd.conn, "ZRANGE presence:deadlines:{%s}:%d 0 -1", pr->kc.group, partition);
    if (!r) {
        pr_redis_fail(pr, "deadline index");
        return PX_EBACKEND;
    }
    if (r->type == REDIS_REPLY_ARRAY && r->elements) {
        *keys = calloc(r->elements, sizeof **keys);
        for (size_t i = 0; *keys && i < r->elements; i++)
            if (r->element[i]->type == REDIS_REPLY_STRING &&
                px_key_parse(r->element[i]->str, r->element[i]->len, &(*keys)[*n], NULL, 0) == 0)
                (*n)++;
    }
    freeReplyObject(r);
    return 0;
}
