/*
 * pr_redis.c - the processor's Redis connection: synchronous hiredis with
 * a timeout, every batch pipelined (append all commands, then read all
 * replies), reconnect with capped exponential backoff (100 ms to 5 s).
 *
 * Besides entity states (px_store.h) it keeps, per consumer group:
 *   presence:applied:{group}       HASH "<src>:<partition>" -> next offset
 *                                  Redis holds every record below
 *   presence:deadlines:{group}:<p> ZSET entity key -> earliest deadline
 *   presence:epoch:{group}         STRING set once per Redis dataset; if it
 *                                  is missing on reconnect, Redis lost its
 *                                  data and the processor rebuilds from the
 *                                  log (pr_kafka.c).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pr.h"
#include "px_log.h"
#include "px_time.h"
#include "px_view.h"

static void redis_fail(pr_ctx_t *pr, const char *what) {
    px_counter_add(pr->m_redis_err, 1);
    PX_WARN(PR_COMP, "redis unavailable", "during=%s err=\"%s\" retry_ms=%lld", what,
            pr->redis && pr->redis->err ? pr->redis->errstr : "error reply",
            (long long)(pr->redis_backoff_ms ? pr->redis_backoff_ms : 100));
    if (pr->redis) redisFree(pr->redis);
    pr->redis = NULL;
    pr->redis_backoff_ms = pr->redis_backoff_ms ? pr->redis_backoff_ms * 2 : 100;
    if (pr->redis_backoff_ms > 5000) pr->redis_backoff_ms = 5000;
    pr->redis_retry_at = px_mono_ms() + pr->redis_backoff_ms;
}

void pr_redis_close(pr_ctx_t *pr) {
    if (pr->redis) redisFree(pr->redis);
    pr->redis = NULL;
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
    redisReply *r = redisCommand(pr->redis, "SET presence:epoch:{%s} %s NX GET", pr->group, mine);
    if (!r) return PX_EBACKEND;
    const char *now_epoch = r->type == REDIS_REPLY_STRING ? r->str : mine; /* nil: we created it */
    *lost = pr->epoch[0] && strcmp(pr->epoch, now_epoch) != 0;
    snprintf(pr->epoch, sizeof pr->epoch, "%s", now_epoch);
    freeReplyObject(r);
    return 0;
}

int pr_redis_ensure(pr_ctx_t *pr) {
    if (pr->redis) return 0;
    if (px_mono_ms() < pr->redis_retry_at) return PX_EBACKEND;
    struct timeval tv = {(time_t)(pr->cfg.redis_timeout_ms / 1000),
                         (suseconds_t)(pr->cfg.redis_timeout_ms % 1000) * 1000};
    pr->redis = redisConnectWithTimeout(pr->cfg.redis_host, (int)pr->cfg.redis_port, tv);
    if (!pr->redis || pr->redis->err) {
        redis_fail(pr, "connect");
        return PX_EBACKEND;
    }
    redisSetTimeout(pr->redis, tv);
    redisReply *r = redisCommand(pr->redis, "SCRIPT LOAD %s", PX_STORE_WRITE_SCRIPT);
    if (!r || r->type != REDIS_REPLY_STRING || r->len != 40) {
        if (r) freeReplyObject(r);
        redis_fail(pr, "script load");
        return PX_EBACKEND;
    }
    memcpy(pr->script_sha, r->str, 40);
    pr->script_sha[40] = '\0';
    freeReplyObject(r);
    bool lost = false;
    if (check_epoch(pr, &lost)) {
        redis_fail(pr, "epoch");
        return PX_EBACKEND;
    }
    pr->redis_backoff_ms = 0;
    pr->redis_gen++;
    PX_INFO(PR_COMP, "redis connected", "host=%s port=%lld dataset_lost=%s", pr->cfg.redis_host,
            (long long)pr->cfg.redis_port, lost ? "yes" : "no");
    if (lost) pr->rebuild_pending = true; /* done at the start of the next turn */
    return 0;
}

int pr_redis_load(pr_ctx_t *pr, pr_entity_t **ents, size_t n) {
    char key[PX_KEY_MAX + 64], err[256];
    int rc = 0;
    if (pr_redis_ensure(pr)) return PX_EBACKEND;
    for (size_t i = 0; i < n; i++) {
        px_store_state_key(&ents[i]->st.key, key, sizeof key);
        redisAppendCommand(pr->redis, "HMGET %s wm blob", key);
    }
    for (size_t i = 0; i < n; i++) {
        redisReply *r = NULL;
        if (redisGetReply(pr->redis, (void **)&r) != REDIS_OK || !r) {
            redis_fail(pr, "load");
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
    if (!pr->redis) return 0; /* no early answer: the later notification gives it */
    for (size_t i = 0; i < n; i++) {
        const px_buf_t *d = &ents[i]->decisions; /* an open array */
        px_buf_reset(out);
        if (!d->len || px_view_channel(&ents[i]->st.key, ch, sizeof ch) < 0 || px_buf_puts(out, "{\"decided\":") ||
            px_buf_append(out, d->data, d->len) || px_buf_puts(out, "]}"))
            continue; /* out of memory: the later notification answers */
        redisAppendCommand(pr->redis, "PUBLISH %s %b", ch, out->data, out->len);
        sent++;
    }
    for (size_t i = 0; i < sent; i++) {
        redisReply *r = NULL;
        if (redisGetReply(pr->redis, (void **)&r) != REDIS_OK || !r) {
            redis_fail(pr, "publish");
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
    snprintf(hk, sizeof hk, "presence:applied:{%s}", pr->group);
    argv[argc++] = "HMGET";
    argv[argc++] = hk;
    for (int s = 0; s < PR_N_SRC; s++) {
        snprintf(f[s], sizeof f[s], "%d:%d", s, partition);
        argv[argc++] = f[s];
    }
    redisReply *r = redisCommandArgv(pr->redis, argc, argv, NULL);
    if (!r) {
        redis_fail(pr, "applied marks");
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
    redisReply *r = redisCommand(pr->redis, "ZRANGE presence:deadlines:{%s}:%d 0 -1", pr->group, partition);
    if (!r) {
        redis_fail(pr, "deadline index");
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

/* True if partition p has an applied mark Redis does not hold yet. */
static bool mark_pending(const pr_part_t *pp) {
    for (int s = 0; s < PR_N_SRC; s++)
        if (pp->next[s] >= 0 && pp->next[s] != pp->marked[s]) return true;
    return false;
}

/* Entity writes go out in chunks of PR_FLUSH_CHUNK: a chunk is built and
 * sent, then the previous chunk's replies are read while Redis runs this
 * one, so building commands (the processor's core) and running the scripts
 * (Redis's) overlap, and the output buffer stays bounded. */
#define PR_FLUSH_CHUNK 256

/* A chunk's replies in order: its entities' writes, then its deadline-index
 * commands. */
typedef struct flush_chunk {
    pr_entity_t *first; /* its first entity (the chunk's are consecutive in the dirty list) */
    size_t writes;      /* write replies */
    size_t others;      /* deadline-index replies after them */
} flush_chunk_t;

/* Read one chunk's replies. 0; PX_EBACKEND when the connection failed;
 * *failed set on an error reply. */
static int read_chunk(pr_ctx_t *pr, const flush_chunk_t *ch, bool *failed) {
    pr_entity_t *we = ch->first;
    for (size_t i = 0; i < ch->writes + ch->others; i++) {
        bool is_write = i < ch->writes;
        redisReply *r = NULL;
        if (redisGetReply(pr->redis, (void **)&r) != REDIS_OK || !r) {
            redis_fail(pr, "write");
            return PX_EBACKEND;
        }
        if (r->type == REDIS_REPLY_ERROR) {
            PX_ERROR(PR_COMP, "redis write refused", "err=\"%s\"", r->str);
            *failed = true;
        } else if (is_write && r->type == REDIS_REPLY_INTEGER && r->integer == 0) {
            /* Redis holds a state this one does not dominate: only a zombie
             * or a replay may see this */
            px_counter_add(pr->m_skipped, 1);
            PX_WARN(PR_COMP, "write skipped: Redis holds a newer state", "entity=%s:%s:%s wm=%lld,%lld,%lld,%lld",
                    we->st.key.tenant, we->st.key.entity, we->st.key.id, (long long)we->wm.off[0],
                    (long long)we->wm.off[1], (long long)we->wm.off[2], (long long)we->wm.off[3]);
        }
        if (is_write) we = we->next_dirty;
        freeReplyObject(r);
    }
    return 0;
}

/* Append a command in RESP built here (a length-counted copy into
 * pr->resp) instead of hiredis's formatter (sdscatfmt per argument was 5%
 * of the processor's CPU in the 2M-record benchmark). */
static void append_cmd(pr_ctx_t *pr, int argc, const char *const *argv, const size_t *argvlen) {
    px_buf_t *b = &pr->resp;
    px_buf_reset(b);
    int rc = px_buf_puts(b, "*");
    if (!rc) rc = px_buf_put_i64(b, argc);
    if (!rc) rc = px_buf_puts(b, "\r\n");
    for (int i = 0; i < argc && !rc; i++) {
        rc = px_buf_puts(b, "$");
        if (!rc) rc = px_buf_put_i64(b, (int64_t)argvlen[i]);
        if (!rc) rc = px_buf_puts(b, "\r\n");
        if (!rc) rc = px_buf_append(b, argv[i], argvlen[i]);
        if (!rc) rc = px_buf_puts(b, "\r\n");
    }
    if (rc) /* out of memory for the copy: let hiredis format it */
        redisAppendCommandArgv(pr->redis, argc, (const char **)argv, argvlen);
    else
        redisAppendFormattedCommand(pr->redis, b->data, b->len);
}

/* Send what is buffered. 0 or PX_EBACKEND. */
static int send_buffered(pr_ctx_t *pr) {
    int done = 0;
    while (!done)
        if (redisBufferWrite(pr->redis, &done) != REDIS_OK) {
            redis_fail(pr, "write");
            return PX_EBACKEND;
        }
    return 0;
}

/* The deadline index of a chunk's entities: per partition one ZADD of those
 * with a pending deadline and one ZREM of those without (the flush runs on
 * the loop's thread only, hence the static scratch). Returns the number of
 * commands appended. */
static size_t append_deadlines(pr_ctx_t *pr, pr_entity_t *first, size_t n) {
    static const char *argv[2 + 2 * PR_FLUSH_CHUNK];
    static size_t argvlen[2 + 2 * PR_FLUSH_CHUNK];
    static char keys[PR_FLUSH_CHUNK][PX_KEY_MAX + 1], scores[PR_FLUSH_CHUNK][24];
    static int64_t due[PR_FLUSH_CHUNK];
    static pr_entity_t *ents[PR_FLUSH_CHUNK];
    static bool done[PR_FLUSH_CHUNK];
    char zk[PX_CONF_STR_MAX + 48];
    size_t cmds = 0, i = 0;
    for (pr_entity_t *e = first; e && i < n; e = e->next_dirty, i++) {
        ents[i] = e;
        due[i] = px_fold_next_deadline(&e->st, &pr->fold);
        done[i] = false;
    }
    n = i;
    for (size_t lead = 0; lead < n; lead++) {
        if (done[lead]) continue;
        int p = ents[lead]->partition;
        for (int pass = 0; pass < 2; pass++) { /* 0: ZADD, 1: ZREM */
            int argc = 2;
            for (size_t j = lead; j < n; j++) {
                if (ents[j]->partition != p || (due[j] != INT64_MAX) != (pass == 0)) continue;
                done[j] = true;
                if (pass == 0) {
                    argvlen[argc] = (size_t)snprintf(scores[j], sizeof scores[j], "%" PRId64, due[j]);
                    argv[argc++] = scores[j];
                }
                argvlen[argc] = (size_t)px_key_format(&ents[j]->st.key, keys[j], sizeof keys[j]);
                argv[argc++] = keys[j];
            }
            if (argc == 2) continue;
            snprintf(zk, sizeof zk, "presence:deadlines:{%s}:%d", pr->group, p);
            argv[0] = pass == 0 ? "ZADD" : "ZREM";
            argvlen[0] = 4;
            argv[1] = zk;
            argvlen[1] = strlen(zk);
            redisAppendCommandArgv(pr->redis, argc, argv, argvlen);
            cmds++;
        }
    }
    return cmds;
}

static int flush_dirty(pr_ctx_t *pr) {
    bool marks = false;
    for (int p = 0; !marks && p < PR_MAX_PARTITIONS; p++) marks = pr->parts[p].assigned && mark_pending(&pr->parts[p]);
    if (!pr->dirty && !marks) return 0;
    if (pr_redis_ensure(pr)) return PX_EBACKEND;
    /* A dataset that lost its data gets nothing until the rebuild ran: the
     * applied marks written here would claim records Redis no longer has,
     * and an instance that starts next would trust them. */
    if (pr->rebuild_pending) return PX_EBACKEND;
    int64_t now = px_now_ms();
    bool failed = false;
    flush_chunk_t prev = {0}, cur = {0};
    for (pr_entity_t *e = pr->dirty; e;) {
        cur = (flush_chunk_t){.first = e};
        for (; e && cur.writes < PR_FLUSH_CHUNK; e = e->next_dirty) {
            /* the batch's changes as a JSON array (pr_batch.c opened it); a
             * full buffer still publishes, as an empty array: gateways re-read */
            const char *notify = NULL;
            if (e->notify.len && e->notify.data[e->notify.len - 1] != ']' && px_buf_puts(&e->notify, "]"))
                notify = "[]";
            else if (e->notify.len)
                notify = e->notify.data;
            if (px_store_write_cmd(&pr->cmd, pr->script_sha, &e->st, &pr->fold, &e->wm, now, notify)) {
                /* out of memory (within the fold's caps the largest command
                 * is about 2.4 MB, under PX_STORE_CMD_MAX): the flush fails
                 * and is retried, nothing is skipped */
                PX_ERROR(PR_COMP, "write command not built", "entity=%s:%s:%s", e->st.key.tenant,
                         e->st.key.entity, e->st.key.id);
                redis_fail(pr, "write");
                return PX_EBACKEND;
            }
            append_cmd(pr, pr->cmd.argc, pr->cmd.argv, pr->cmd.argvlen);
            cur.writes++;
        }
        cur.others = append_deadlines(pr, cur.first, cur.writes);
        if (send_buffered(pr)) return PX_EBACKEND;
        if (prev.first && read_chunk(pr, &prev, &failed)) return PX_EBACKEND;
        prev = cur;
    }
    /* The applied marks after the entity writes (a pipeline runs in order):
     * a mark never claims a write that Redis has not received first. Only
     * assigned partitions have marks to write: a revoked one was flushed in
     * the revoke callback, before it stopped being assigned. */
    int64_t sent[PR_MAX_PARTITIONS][PR_N_SRC];
    size_t mark_cmds = 0;
    for (int p = 0; p < PR_MAX_PARTITIONS; p++) {
        pr_part_t *pp = &pr->parts[p];
        for (int s = 0; s < PR_N_SRC; s++) sent[p][s] = -1;
        if (!pp->assigned || !mark_pending(pp)) continue;
        char f[PR_N_SRC][32], v[PR_N_SRC][24];
        const char *argv[2 + 2 * PR_N_SRC];
        char hk[PX_CONF_STR_MAX + 32];
        int argc = 0;
        snprintf(hk, sizeof hk, "presence:applied:{%s}", pr->group);
        argv[argc++] = "HSET";
        argv[argc++] = hk;
        for (int s = 0; s < PR_N_SRC; s++) {
            if (pp->next[s] < 0) continue;
            snprintf(f[s], sizeof f[s], "%d:%d", s, p);
            snprintf(v[s], sizeof v[s], "%" PRId64, pp->next[s]);
            argv[argc++] = f[s];
            argv[argc++] = v[s];
            sent[p][s] = pp->next[s];
        }
        redisAppendCommandArgv(pr->redis, argc, argv, NULL);
        mark_cmds++;
    }
    if (prev.first && read_chunk(pr, &prev, &failed)) return PX_EBACKEND;
    flush_chunk_t marks_chunk = {.first = NULL, .writes = 0, .others = mark_cmds};
    if (read_chunk(pr, &marks_chunk, &failed)) return PX_EBACKEND;
    if (failed) { /* e.g. NOSCRIPT after a Redis restart: reconnect reloads the script */
        redis_fail(pr, "write");
        return PX_EBACKEND;
    }
    for (int p = 0; p < PR_MAX_PARTITIONS; p++)
        for (int s = 0; s < PR_N_SRC; s++)
            if (sent[p][s] >= 0) pr->parts[p].marked[s] = sent[p][s];
    for (pr_entity_t *e = pr->dirty, *n; e; e = n) {
        n = e->next_dirty;
        e->dirty = false;
        e->next_dirty = NULL;
        px_buf_reset(&e->notify);
    }
    pr->dirty = NULL;
    return 0;
}

/* Every flush counts in the "redis" batch phase, the deferred ones the
 * loop runs between batches too, so the phases add up to the busy time. */
int pr_redis_flush(pr_ctx_t *pr) {
    int64_t t0 = px_mono_us();
    int rc = flush_dirty(pr);
    if (rc == 0) pr->flush_at = 0; /* nothing deferred any more */
    px_counter_add(pr->m_phase_us[3], (uint64_t)(px_mono_us() - t0));
    return rc;
}
