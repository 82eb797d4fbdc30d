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
#include "px_redis_addr.h"
#include "px_time.h"
#include "px_view.h"

void pr_redis_fail(pr_ctx_t *pr, const char *what) {
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
    if (pr->wredis) redisFree(pr->wredis); /* the writer has stopped (pr_commit_stop) */
    pr->wredis = NULL;
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
    /* The writer's connection is renewed with this one, after the epoch
     * check below: a connection that outlived a Redis restart would write
     * into a dataset nobody checked (the writer must be idle to lose it) */
    pr_writer_finish(pr);
    if (pr->wredis) redisFree(pr->wredis);
    pr->wredis = NULL;
    pr->redis = px_redis_connect(pr->cfg.redis_host, (int)pr->cfg.redis_port, tv);
    if (!pr->redis || pr->redis->err) {
        pr_redis_fail(pr, "connect");
        return PX_EBACKEND;
    }
    redisSetTimeout(pr->redis, tv);
    redisReply *r = redisCommand(pr->redis, "SCRIPT LOAD %s", PX_STORE_WRITE_SCRIPT);
    if (!r || r->type != REDIS_REPLY_STRING || r->len != 40) {
        if (r) freeReplyObject(r);
        pr_redis_fail(pr, "script load");
        return PX_EBACKEND;
    }
    memcpy(pr->script_sha, r->str, 40);
    pr->script_sha[40] = '\0';
    freeReplyObject(r);
    bool lost = false;
    if (check_epoch(pr, &lost)) {
        pr_redis_fail(pr, "epoch");
        return PX_EBACKEND;
    }
    pr->redis_backoff_ms = 0;
    pr->redis_gen++;
    pr->wredis = px_redis_connect(pr->cfg.redis_host, (int)pr->cfg.redis_port, tv);
    if (!pr->wredis || pr->wredis->err) { /* writes then go on the loop's connection */
        PX_WARN(PR_COMP, "redis: the writer's connection failed; writing on the main one", "err=\"%s\"",
                pr->wredis ? pr->wredis->errstr : "out of memory");
        if (pr->wredis) redisFree(pr->wredis);
        pr->wredis = NULL;
    } else {
        redisSetTimeout(pr->wredis, tv);
    }
    char addr[PX_CONF_STR_MAX + 24];
    PX_INFO(PR_COMP, "redis connected", "addr=%s dataset_lost=%s",
            px_redis_addr(pr->cfg.redis_host, pr->cfg.redis_port, addr, sizeof addr), lost ? "yes" : "no");
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
    snprintf(hk, sizeof hk, "presence:applied:{%s}", pr->group);
    argv[argc++] = "HMGET";
    argv[argc++] = hk;
    for (int s = 0; s < PR_N_SRC; s++) {
        snprintf(f[s], sizeof f[s], "%d:%d", s, partition);
        argv[argc++] = f[s];
    }
    redisReply *r = redisCommandArgv(pr->redis, argc, argv, NULL);
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
    redisReply *r = redisCommand(pr->redis, "ZRANGE presence:deadlines:{%s}:%d 0 -1", pr->group, partition);
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

/* True if partition p has an applied mark Redis does not hold yet. */
static bool mark_pending(const pr_part_t *pp) {
    for (int s = 0; s < PR_N_SRC; s++)
        if (pp->next[s] >= 0 && pp->next[s] != pp->marked[s]) return true;
    return false;
}

/* Send what is buffered. 0 or PX_EBACKEND. */
/* Append buf[0..len) to c's output and write it all. */
static int write_all(redisContext *c, const char *buf, size_t len) {
    if (len && redisAppendFormattedCommand(c, buf, len) != REDIS_OK) return PX_EBACKEND;
    int done = 0;
    while (!done)
        if (redisBufferWrite(c, &done) != REDIS_OK) return PX_EBACKEND;
    return 0;
}

static int send_buffered(pr_ctx_t *pr) {
    if (write_all(pr->redis, NULL, 0) == 0) return 0;
    pr_redis_fail(pr, "write");
    return PX_EBACKEND;
}

/* Read the replies of n entity writes (ents[i] is the entity of the i-th)
 * and then of `others` commands. 0; PX_EBACKEND when the connection
 * failed; *failed set on an error reply. */
static int read_replies_on(pr_ctx_t *pr, redisContext *c, pr_entity_t *const *ents, size_t n, size_t others,
                           bool *failed) {
    for (size_t i = 0; i < n + others; i++) {
        redisReply *r = NULL;
        if (redisGetReply(c, (void **)&r) != REDIS_OK || !r) return PX_EBACKEND;
        if (r->type == REDIS_REPLY_ERROR) {
            PX_ERROR(PR_COMP, "redis write refused", "err=\"%s\"", r->str);
            *failed = true;
        } else if (i < n && r->type == REDIS_REPLY_INTEGER && r->integer == 0) {
            /* Redis holds a state this one does not dominate: only a zombie
             * or a replay may see this (the key is all this may read of the
             * entity: the writer thread reads it while the loop folds) */
            const pr_entity_t *we = ents[i];
            px_counter_add(pr->m_wskipped, 1);
            PX_WARN(PR_COMP, "write skipped: Redis holds a newer state", "entity=%s:%s:%s", we->st.key.tenant,
                    we->st.key.entity, we->st.key.id);
        }
        freeReplyObject(r);
    }
    return 0;
}

static int read_replies(pr_ctx_t *pr, pr_entity_t *const *ents, size_t n, size_t others, bool *failed) {
    if (read_replies_on(pr, pr->redis, ents, n, others, failed) == 0) return 0;
    pr_redis_fail(pr, "write");
    return PX_EBACKEND;
}

/* One command in RESP appended to out (the processor formats its own:
 * hiredis's sdscatfmt per argument was 5% of its CPU in the 2M-record
 * benchmark). 0 or PX_ENOMEM (out keeps what it had). */
static int put_cmd(px_buf_t *out, int argc, const char *const *argv, const size_t *argvlen) {
    size_t mark = out->len;
    int rc = px_buf_puts(out, "*");
    if (!rc) rc = px_buf_put_i64(out, argc);
    if (!rc) rc = px_buf_puts(out, "\r\n");
    for (int i = 0; i < argc && !rc; i++) {
        rc = px_buf_puts(out, "$");
        if (!rc) rc = px_buf_put_i64(out, (int64_t)argvlen[i]);
        if (!rc) rc = px_buf_puts(out, "\r\n");
        if (!rc) rc = px_buf_append(out, argv[i], argvlen[i]);
        if (!rc) rc = px_buf_puts(out, "\r\n");
    }
    if (rc) {
        out->len = mark;
        if (out->data) out->data[mark] = '\0';
    }
    return rc;
}

/* Where built commands go: into a snapshot's buffer, or (snap NULL) onto
 * the connection's output buffer at once, through pr->resp. */
static int emit_cmd(pr_ctx_t *pr, pr_snap_t *snap, int argc, const char *const *argv, const size_t *argvlen) {
    if (snap) return put_cmd(&snap->resp, argc, argv, argvlen);
    px_buf_reset(&pr->resp);
    if (put_cmd(&pr->resp, argc, argv, argvlen) == 0)
        return redisAppendFormattedCommand(pr->redis, pr->resp.data, pr->resp.len) == REDIS_OK ? 0 : PX_ENOMEM;
    /* out of memory for the copy: let hiredis format it */
    return redisAppendCommandArgv(pr->redis, argc, (const char **)argv, argvlen) == REDIS_OK ? 0 : PX_ENOMEM;
}

/* The write of one entity (its changes since the last write close its
 * notification: a JSON array for the gateways; a full buffer still
 * publishes, as an empty array: gateways re-read). */
static int emit_write(pr_ctx_t *pr, pr_snap_t *snap, pr_entity_t *e, int64_t now) {
    const char *notify = NULL;
    if (e->notify.len && e->notify.data[e->notify.len - 1] != ']' && px_buf_puts(&e->notify, "]"))
        notify = "[]";
    else if (e->notify.len)
        notify = e->notify.data;
    if (px_store_write_cmd(&pr->cmd, pr->script_sha, &e->st, &pr->fold, &e->wm, now, notify) ||
        emit_cmd(pr, snap, pr->cmd.argc, pr->cmd.argv, pr->cmd.argvlen)) {
        /* out of memory (within the fold's caps the largest command is
         * about 2.4 MB, under PX_STORE_CMD_MAX) */
        PX_ERROR(PR_COMP, "write command not built", "entity=%s:%s:%s", e->st.key.tenant, e->st.key.entity,
                 e->st.key.id);
        return PX_ENOMEM;
    }
    return 0;
}

/* The deadline index of n entities: per partition one ZADD of those with a
 * pending deadline and one ZREM of those without (the loop thread only,
 * hence the static scratch). Adds the commands emitted to *cmds. */
static int emit_deadlines(pr_ctx_t *pr, pr_snap_t *snap, pr_entity_t *const *ents, size_t n, size_t *cmds) {
    static const char *argv[2 + 2 * PR_FLUSH_CHUNK];
    static size_t argvlen[2 + 2 * PR_FLUSH_CHUNK];
    static char keys[PR_FLUSH_CHUNK][PX_KEY_MAX + 1], scores[PR_FLUSH_CHUNK][24];
    static int64_t due[PR_FLUSH_CHUNK];
    static bool done[PR_FLUSH_CHUNK];
    char zk[PX_CONF_STR_MAX + 48];
    if (n > PR_FLUSH_CHUNK) return PX_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        due[i] = px_fold_next_deadline(&ents[i]->st, &pr->fold);
        done[i] = false;
    }
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
            if (emit_cmd(pr, snap, argc, argv, argvlen)) return PX_ENOMEM;
            (*cmds)++;
        }
    }
    return 0;
}

/* The applied marks (after the entity writes: a pipeline runs in order,
 * so a mark never claims a write Redis has not received first). Only
 * assigned partitions have marks to write: a revoked one was flushed in the
 * revoke callback, before it stopped being assigned. sent[p][s]: the mark
 * emitted, -1 for none. */
static int emit_marks(pr_ctx_t *pr, pr_snap_t *snap, int64_t (*sent)[PR_N_SRC], size_t *cmds) {
    for (int p = 0; p < PR_MAX_PARTITIONS; p++) {
        pr_part_t *pp = &pr->parts[p];
        for (int s = 0; s < PR_N_SRC; s++) sent[p][s] = -1;
        if (!pp->assigned || !mark_pending(pp)) continue;
        char f[PR_N_SRC][32], v[PR_N_SRC][24];
        const char *argv[2 + 2 * PR_N_SRC];
        size_t argvlen[2 + 2 * PR_N_SRC];
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
        for (int i = 0; i < argc; i++) argvlen[i] = strlen(argv[i]);
        if (emit_cmd(pr, snap, argc, argv, argvlen)) return PX_ENOMEM;
        (*cmds)++;
    }
    return 0;
}

static void apply_marks(pr_ctx_t *pr, int64_t (*sent)[PR_N_SRC]) {
    for (int p = 0; p < PR_MAX_PARTITIONS; p++)
        for (int s = 0; s < PR_N_SRC; s++)
            if (sent[p][s] >= 0) pr->parts[p].marked[s] = sent[p][s];
}

static bool marks_pending(const pr_ctx_t *pr) {
    for (int p = 0; p < PR_MAX_PARTITIONS; p++)
        if (pr->parts[p].assigned && mark_pending(&pr->parts[p])) return true;
    return false;
}

static void dirty_clear(pr_ctx_t *pr) {
    for (pr_entity_t *e = pr->dirty, *n; e; e = n) {
        n = e->next_dirty;
        e->dirty = false;
        e->next_dirty = NULL;
    }
    pr->dirty = NULL;
    pr->n_dirty = 0;
}

/* Entity writes go out in chunks of PR_FLUSH_CHUNK: a chunk is built and
 * sent, then the previous chunk's replies are read while Redis runs this
 * one, so building commands (the processor's core) and running the scripts
 * (Redis's) overlap, and the output buffer stays bounded. */
static int flush_dirty(pr_ctx_t *pr) {
    static pr_entity_t *chunk[2][PR_FLUSH_CHUNK];
    static int64_t sent[PR_MAX_PARTITIONS][PR_N_SRC];
    if (!pr->dirty && !marks_pending(pr)) return 0;
    if (pr_redis_ensure(pr)) return PX_EBACKEND;
    /* A dataset that lost its data gets nothing until the rebuild ran: the
     * applied marks written here would claim records Redis no longer has,
     * and an instance that starts next would trust them. */
    if (pr->rebuild_pending) return PX_EBACKEND;
    int64_t now = px_now_ms();
    bool failed = false;
    size_t prev_n = 0, prev_others = 0;
    int cur = 0;
    for (pr_entity_t *e = pr->dirty; e;) {
        size_t n = 0, others = 0;
        for (; e && n < PR_FLUSH_CHUNK; e = e->next_dirty) {
            if (emit_write(pr, NULL, e, now)) {
                pr_redis_fail(pr, "write"); /* the flush fails and is retried: nothing is skipped */
                return PX_EBACKEND;
            }
            chunk[cur][n++] = e;
        }
        if (emit_deadlines(pr, NULL, chunk[cur], n, &others)) {
            pr_redis_fail(pr, "write");
            return PX_EBACKEND;
        }
        if (send_buffered(pr)) return PX_EBACKEND;
        if (prev_n && read_replies(pr, chunk[!cur], prev_n, prev_others, &failed)) return PX_EBACKEND;
        prev_n = n;
        prev_others = others;
        cur = !cur;
    }
    if (prev_n && read_replies(pr, chunk[!cur], prev_n, prev_others, &failed)) return PX_EBACKEND;
    /* the applied marks only once every entity write succeeded: a mark must
     * not claim a write Redis refused */
    size_t mark_cmds = 0;
    if (!failed && emit_marks(pr, NULL, sent, &mark_cmds)) {
        pr_redis_fail(pr, "write");
        return PX_EBACKEND;
    }
    if (!failed && (send_buffered(pr) || read_replies(pr, NULL, 0, mark_cmds, &failed))) return PX_EBACKEND;
    if (failed) { /* e.g. NOSCRIPT after a Redis restart: reconnect reloads the script */
        pr_redis_fail(pr, "write");
        return PX_EBACKEND;
    }
    apply_marks(pr, sent);
    for (pr_entity_t *e = pr->dirty; e; e = e->next_dirty) px_buf_reset(&e->notify);
    dirty_clear(pr);
    return 0;
}

/* Every flush counts in the "redis" batch phase, the deferred ones the
 * loop runs between batches too, so the phases add up to the busy time.
 * A transaction in flight ends first: the dirty states include what it
 * folded, which Redis may hold only once it committed. */
int pr_redis_flush(pr_ctx_t *pr) {
    pr_quiesce(pr); /* a failed commit rewinds its partitions: their entities are gone */
    int64_t t0 = px_mono_us();
    int rc = flush_dirty(pr);
    if (rc == 0) pr->flush_at = 0; /* nothing deferred any more */
    px_counter_add(pr->m_phase_us[3], (uint64_t)(px_mono_us() - t0));
    return rc;
}

/* ---- write snapshots (pr_commit.c) --------------------------------------- */

static void snap_arrays_free(pr_snap_t *snap) {
    free(snap->ents);
    free(snap->chunk_others);
    snap->ents = NULL;
    snap->chunk_others = NULL;
}

int pr_redis_snap_build(pr_ctx_t *pr, pr_snap_t *snap) {
    snap->ready = false;
    if (!pr->dirty && !marks_pending(pr)) return 0;
    if (pr->n_dirty > PR_SNAP_MAX) return PX_ENOMEM;
    if (!snap->ents) {
        snap->ents = malloc(PR_SNAP_MAX * sizeof *snap->ents);
        snap->chunk_others = malloc((PR_SNAP_MAX / PR_FLUSH_CHUNK + 1) * sizeof *snap->chunk_others);
        if (!snap->ents || !snap->chunk_others) {
            snap_arrays_free(snap);
            return PX_ENOMEM;
        }
    }
    px_buf_reset(&snap->resp);
    snap->n_ents = snap->n_chunks = snap->n_marks = 0;
    int64_t now = px_now_ms();
    /* chunk by chunk, its writes then its deadline commands: the order in
     * which pr_redis_snap_write reads the replies (all writes first, then
     * every chunk's deadlines, read a chunk's deadline replies as entity
     * writes: a ZREM's 0 was logged as a skipped write) */
    for (pr_entity_t *e = pr->dirty; e;) {
        size_t at = snap->n_ents, others = 0;
        for (; e && snap->n_ents - at < PR_FLUSH_CHUNK; e = e->next_dirty) {
            if (snap->n_ents == PR_SNAP_MAX || emit_write(pr, snap, e, now)) return PX_ENOMEM;
            snap->ents[snap->n_ents++] = e;
        }
        if (emit_deadlines(pr, snap, snap->ents + at, snap->n_ents - at, &others)) return PX_ENOMEM;
        snap->chunk_others[snap->n_chunks++] = others;
    }
    snap->marks_at = snap->resp.len;
    if (emit_marks(pr, snap, snap->sent, &snap->n_marks)) return PX_ENOMEM;
    /* the notifications are in the commands now: the next batch's changes
     * start new ones */
    for (size_t i = 0; i < snap->n_ents; i++) px_buf_reset(&snap->ents[i]->notify);
    dirty_clear(pr);
    snap->ready = true;
    return 0;
}

int pr_redis_snap_write(pr_ctx_t *pr, redisContext *c, pr_snap_t *snap) {
    bool failed = false;
    if (write_all(c, snap->resp.data, snap->marks_at)) return PX_EBACKEND;
    for (size_t ch = 0; ch < snap->n_chunks; ch++) {
        size_t at = ch * PR_FLUSH_CHUNK;
        size_t n = snap->n_ents - at < PR_FLUSH_CHUNK ? snap->n_ents - at : PR_FLUSH_CHUNK;
        if (read_replies_on(pr, c, snap->ents + at, n, snap->chunk_others[ch], &failed)) return PX_EBACKEND;
    }
    /* the applied marks only once every entity write succeeded (a refused
     * one, e.g. NOSCRIPT after a Redis restart, fails the snapshot) */
    if (failed) return PX_EBACKEND;
    if (write_all(c, snap->resp.data + snap->marks_at, snap->resp.len - snap->marks_at) ||
        read_replies_on(pr, c, NULL, 0, snap->n_marks, &failed))
        return PX_EBACKEND;
    return failed ? PX_EBACKEND : 0;
}

void pr_redis_snap_done(pr_ctx_t *pr, pr_snap_t *snap) {
    apply_marks(pr, snap->sent);
    snap->ready = false;
}

int pr_redis_snap_send(pr_ctx_t *pr, pr_snap_t *snap) {
    if (!snap->ready) return 0;
    int64_t t0 = px_mono_us();
    int rc = PX_EBACKEND;
    if (pr_redis_ensure(pr) == 0 && !pr->rebuild_pending) {
        rc = pr_redis_snap_write(pr, pr->redis, snap);
        if (rc) pr_redis_fail(pr, "write");
    }
    if (rc) pr_redis_snap_drop(pr, snap);
    else pr_redis_snap_done(pr, snap);
    px_counter_add(pr->m_phase_us[3], (uint64_t)(px_mono_us() - t0));
    return rc;
}

void pr_redis_snap_drop(pr_ctx_t *pr, pr_snap_t *snap) {
    if (!snap->ready) return;
    /* dirty again; their changes went with the commands, so a write that
     * has none publishes an empty array, on which gateways re-read */
    for (size_t i = 0; i < snap->n_ents; i++) {
        pr_entity_t *e = snap->ents[i];
        pr_table_mark_dirty(pr, e);
        if (!e->notify.len) px_buf_puts(&e->notify, "[");
    }
    snap->ready = false;
}

void pr_redis_snap_free(pr_snap_t *snap) {
    px_buf_term(&snap->resp);
    snap_arrays_free(snap);
    snap->ready = false;
}
