/*
 * pr_writer.c - the write stage, and the only way anything reaches Redis
 * but reads and early decisions: a snapshot.
 *
 * A snapshot (pr.h, pr_snap_t) holds the commands that write the entities
 * dirty when it was built (each a watermark-guarded script call,
 * px_store.h, carrying the entity's notification), the deadline index of
 * each chunk of PR_FLUSH_CHUNK of them, then the applied marks. It is
 * sent on one connection in one go and its replies read after: all entity
 * writes first, the marks only once every write succeeded, so a mark
 * never claims a write Redis refused.
 *
 * Two places send them: the writer thread, on its own connection, a
 * committed batch's snapshot while the loop goes on (pr_writer_submit);
 * and the loop, on its connection, when the writes must be done now
 * (pr_writer_flush: deferred writes, the end of a backlog, a revoke, the
 * stop; streamed in pieces) or the writer has no connection. Either way
 * the loop finishes them: the marks written are Redis's, or the entities
 * are dirty again.
 *
 * Keys besides entity states (docs/redis-keys.md):
 *   presence:applied:{group}       HASH "<src>:<partition>" -> next offset
 *                                  Redis holds every record below
 *   presence:deadlines:{group}:<p> ZSET entity key -> earliest deadline
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pr.h"
#include "px_log.h"
#include "px_redis_addr.h"
#include "px_time.h"

/* ---- building ------------------------------------------------------------ */

/* True if partition p has an applied mark Redis does not hold yet. */
static bool mark_pending(const pr_part_t *pp) {
    for (int s = 0; s < PR_N_SRC; s++)
        if (pp->next[s] >= 0 && pp->next[s] != pp->marked[s]) return true;
    return false;
}

bool pr_marks_pending(const pr_ctx_t *pr) {
    for (int p = 0; p < PR_MAX_PARTITIONS; p++)
        if (pr->parts[p].assigned && mark_pending(&pr->parts[p])) return true;
    return false;
}

/* One command in RESP appended to out (formatted here: hiredis's
 * sdscatfmt per argument was 5% of the processor's CPU in the 2M-record
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

/* The write of one entity, with its notification (px_notify.h: written;
 * one too large for its buffer publishes [], on which gateways re-read). */
static int put_write(pr_ctx_t *pr, pr_snap_t *snap, pr_entity_t *e, int64_t now) {
    pr_writer_t *wr = &pr->wr;
    const char *notify = NULL;
    if (px_notify_any(&e->notify)) {
        px_notify_encode(&e->notify, PX_NOTIFY_WRITTEN, &wr->note);
        notify = wr->note.data;
    }
    if (px_store_write_cmd(&wr->cmd, pr->rd.script_sha, &e->st, &pr->fold, &e->wm, now, notify) ||
        put_cmd(&snap->resp, wr->cmd.argc, wr->cmd.argv, wr->cmd.argvlen)) {
        /* out of memory (within the fold's caps the largest command is
         * about 2.4 MB, under PX_STORE_CMD_MAX) */
        PX_ERROR(PR_COMP, "write command not built", "entity=%s:%s:%s", e->st.key.tenant, e->st.key.entity,
                 e->st.key.id);
        return PX_ENOMEM;
    }
    return 0;
}

/* The deadline index of n <= PR_FLUSH_CHUNK entities: per partition one
 * ZADD of those with a pending deadline and one ZREM of those without.
 * Adds the commands put to *cmds. */
static int put_deadlines(pr_ctx_t *pr, pr_snap_t *snap, pr_entity_t *const *ents, size_t n, size_t *cmds) {
    pr_deadline_scratch_t *d = &pr->wr.dl;
    char zk[PX_CONF_STR_MAX + 48];
    if (n > PR_FLUSH_CHUNK) return PX_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        d->due[i] = px_fold_next_deadline(&ents[i]->st, &pr->fold);
        d->done[i] = false;
    }
    for (size_t lead = 0; lead < n; lead++) {
        if (d->done[lead]) continue;
        int p = ents[lead]->partition;
        for (int pass = 0; pass < 2; pass++) { /* 0: ZADD, 1: ZREM */
            int argc = 2;
            for (size_t j = lead; j < n; j++) {
                if (ents[j]->partition != p || (d->due[j] != INT64_MAX) != (pass == 0)) continue;
                d->done[j] = true;
                if (pass == 0) {
                    d->argvlen[argc] = (size_t)snprintf(d->scores[j], sizeof d->scores[j], "%" PRId64, d->due[j]);
                    d->argv[argc++] = d->scores[j];
                }
                d->argvlen[argc] = (size_t)px_key_format(&ents[j]->st.key, d->keys[j], sizeof d->keys[j]);
                d->argv[argc++] = d->keys[j];
            }
            if (argc == 2) continue;
            snprintf(zk, sizeof zk, "presence:deadlines:{%s}:%d", pr->kc.group, p);
            d->argv[0] = pass == 0 ? "ZADD" : "ZREM";
            d->argvlen[0] = 4;
            d->argv[1] = zk;
            d->argvlen[1] = strlen(zk);
            if (put_cmd(&snap->resp, argc, d->argv, d->argvlen)) return PX_ENOMEM;
            (*cmds)++;
        }
    }
    return 0;
}

/* The applied marks of the assigned partitions (a revoked one was flushed
 * in the revoke, before it stopped being assigned). sent[p][s]: the mark
 * put, -1 for none. */
static int put_marks(pr_ctx_t *pr, pr_snap_t *snap, int64_t (*sent)[PR_N_SRC], size_t *cmds) {
    for (int p = 0; p < PR_MAX_PARTITIONS; p++) {
        pr_part_t *pp = &pr->parts[p];
        for (int s = 0; s < PR_N_SRC; s++) sent[p][s] = -1;
        if (!pp->assigned || !mark_pending(pp)) continue;
        char f[PR_N_SRC][32], v[PR_N_SRC][24];
        const char *argv[2 + 2 * PR_N_SRC];
        size_t argvlen[2 + 2 * PR_N_SRC];
        char hk[PX_CONF_STR_MAX + 32];
        int argc = 0;
        snprintf(hk, sizeof hk, "presence:applied:{%s}", pr->kc.group);
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
        if (put_cmd(&snap->resp, argc, argv, argvlen)) return PX_ENOMEM;
        (*cmds)++;
    }
    return 0;
}

static void snap_arrays_free(pr_snap_t *snap) {
    free(snap->ents);
    free(snap->chunk_others);
    snap->ents = NULL;
    snap->chunk_others = NULL;
}

/* Put into snap the writes of at most max (<= PR_SNAP_MAX) dirty entities
 * from e on, in chunks (a chunk's writes, then its deadline commands: the
 * order in which the replies are read); *rest: the first entity not
 * taken. No marks yet (marks_at is the end). Nothing leaves the dirty
 * list. 0 or PX_ENOMEM. */
static int snap_fill(pr_ctx_t *pr, pr_snap_t *snap, pr_entity_t *e, size_t max, pr_entity_t **rest) {
    snap->ready = false;
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
    while (e && snap->n_ents < max) {
        size_t at = snap->n_ents, others = 0;
        for (; e && snap->n_ents < max && snap->n_ents - at < PR_FLUSH_CHUNK; e = e->next_dirty) {
            if (put_write(pr, snap, e, now)) return PX_ENOMEM;
            snap->ents[snap->n_ents++] = e;
        }
        if (put_deadlines(pr, snap, snap->ents + at, snap->n_ents - at, &others)) return PX_ENOMEM;
        snap->chunk_others[snap->n_chunks++] = others;
    }
    snap->marks_at = snap->resp.len;
    for (int p = 0; p < PR_MAX_PARTITIONS; p++)
        for (int s = 0; s < PR_N_SRC; s++) snap->sent[p][s] = -1;
    *rest = e;
    return 0;
}

/* The first n entities of the dirty list (those snap took) leave it:
 * their notifications are in the commands now. */
static void dirty_take(pr_ctx_t *pr, pr_entity_t *const *ents, size_t n, pr_entity_t *rest) {
    for (size_t i = 0; i < n; i++) {
        px_notify_reset(&ents[i]->notify);
        ents[i]->dirty = false;
        ents[i]->next_dirty = NULL;
    }
    pr->tab.dirty = rest;
    pr->tab.n_dirty -= n;
}

int pr_snap_build(pr_ctx_t *pr, pr_snap_t *snap) {
    snap->ready = false;
    if (!pr->tab.dirty && !pr_marks_pending(pr)) return 0;
    if (pr->tab.n_dirty > PR_SNAP_MAX) return PX_ENOMEM;
    pr_entity_t *rest;
    if (snap_fill(pr, snap, pr->tab.dirty, PR_SNAP_MAX, &rest) ||
        put_marks(pr, snap, snap->sent, &snap->n_marks))
        return PX_ENOMEM;
    dirty_take(pr, snap->ents, snap->n_ents, rest);
    snap->ready = true;
    return 0;
}

void pr_snap_drop(pr_ctx_t *pr, pr_snap_t *snap) {
    if (!snap->ready) return;
    for (size_t i = 0; i < snap->n_ents; i++) {
        pr_entity_t *e = snap->ents[i];
        pr_table_mark_dirty(pr, e);
        if (!px_notify_any(&e->notify)) px_notify_touch(&e->notify); /* its changes went with the commands */
    }
    snap->ready = false;
}

void pr_snap_free(pr_snap_t *snap) {
    px_buf_term(&snap->resp);
    snap_arrays_free(snap);
    snap->ready = false;
}

/* ---- sending ------------------------------------------------------------- */

/* Append buf[0..len) to c's output and write it all. */
static int write_all(redisContext *c, const char *buf, size_t len) {
    if (len && redisAppendFormattedCommand(c, buf, len) != REDIS_OK) return PX_EBACKEND;
    int done = 0;
    while (!done)
        if (redisBufferWrite(c, &done) != REDIS_OK) return PX_EBACKEND;
    return 0;
}

/* Read the replies of n entity writes (ents[i] is the entity of the i-th)
 * and then of `others` commands. 0; PX_EBACKEND when the connection
 * failed; *failed set on an error reply. Touches nothing of the loop's but
 * counters, the log and the entities' keys (the writer thread calls it
 * while the loop folds). */
static int read_replies(pr_ctx_t *pr, redisContext *c, pr_entity_t *const *ents, size_t n, size_t others,
                        bool *failed) {
    for (size_t i = 0; i < n + others; i++) {
        redisReply *r = NULL;
        if (redisGetReply(c, (void **)&r) != REDIS_OK || !r) return PX_EBACKEND;
        if (r->type == REDIS_REPLY_ERROR) {
            PX_ERROR(PR_COMP, "redis write refused", "err=\"%s\"", r->str);
            *failed = true;
        } else if (i < n && r->type == REDIS_REPLY_INTEGER && r->integer == 0) {
            /* Redis holds a state this one does not dominate: only a zombie
             * or a replay may see this */
            const pr_entity_t *we = ents[i];
            px_counter_add(pr->m_wskipped, 1);
            PX_WARN(PR_COMP, "write skipped: Redis holds a newer state", "entity=%s:%s:%s", we->st.key.tenant,
                    we->st.key.entity, we->st.key.id);
        }
        freeReplyObject(r);
    }
    return 0;
}

/* Send snap on c and read the replies. 0 or PX_EBACKEND (a connection
 * failure, or a refused write, e.g. NOSCRIPT after a Redis restart). */
/* Read the replies of snap's entity writes and deadline commands. */
static int read_writes(pr_ctx_t *pr, redisContext *c, const pr_snap_t *snap, bool *failed) {
    for (size_t ch = 0; ch < snap->n_chunks; ch++) {
        size_t at = ch * PR_FLUSH_CHUNK;
        size_t n = snap->n_ents - at < PR_FLUSH_CHUNK ? snap->n_ents - at : PR_FLUSH_CHUNK;
        if (read_replies(pr, c, snap->ents + at, n, snap->chunk_others[ch], failed)) return PX_EBACKEND;
    }
    return 0;
}

static int snap_write(pr_ctx_t *pr, redisContext *c, pr_snap_t *snap) {
    bool failed = false;
    if (write_all(c, snap->resp.data, snap->marks_at) || read_writes(pr, c, snap, &failed)) return PX_EBACKEND;
    if (failed) return PX_EBACKEND;
    if (write_all(c, snap->resp.data + snap->marks_at, snap->resp.len - snap->marks_at) ||
        read_replies(pr, c, NULL, 0, snap->n_marks, &failed))
        return PX_EBACKEND;
    return failed ? PX_EBACKEND : 0;
}

/* A snapshot's writes are done: the applied marks it wrote are Redis's. */
static void snap_done(pr_ctx_t *pr, pr_snap_t *snap) {
    for (int p = 0; p < PR_MAX_PARTITIONS; p++)
        for (int s = 0; s < PR_N_SRC; s++)
            if (snap->sent[p][s] >= 0) pr->parts[p].marked[s] = snap->sent[p][s];
    snap->ready = false;
}

/* Send snap on the loop's connection and finish it. Never into a dataset
 * that lost its data before the rebuild ran: its marks would claim
 * records Redis no longer has. 0 or PX_EBACKEND (its entities dirty). */
static int snap_send_here(pr_ctx_t *pr, pr_snap_t *snap) {
    int rc = PX_EBACKEND;
    if (pr_redis_ensure(pr) == 0 && !pr->rd.rebuild_pending) {
        rc = snap_write(pr, pr->rd.conn, snap);
        if (rc) pr_redis_fail(pr, "write");
    }
    if (rc) pr_snap_drop(pr, snap);
    else snap_done(pr, snap);
    return rc;
}

/* Stream the dirty entities' writes on the loop's connection in pieces
 * of at most PR_FLUSH_CHUNK, two snapshots in turn: piece k+1 is built
 * while Redis runs piece k, so building (the processor's work) and the
 * scripts (Redis's) overlap. The marks go last, once every write
 * succeeded; only then do the entities leave the dirty list. */
static int flush_stream(pr_ctx_t *pr) {
    pr_writer_t *wr = &pr->wr;
    redisContext *c = pr->rd.conn;
    pr_snap_t *piece[2] = {&wr->snap, &wr->now}, *prev = NULL;
    size_t max = PR_FLUSH_CHUNK; /* halved while a piece does not fit PR_SNAP_BYTES */
    bool failed = false;
    int k = 0;
    for (pr_entity_t *e = pr->tab.dirty, *rest; e; e = rest) {
        int rc = snap_fill(pr, piece[k], e, max, &rest);
        if (rc == PX_ENOMEM && max > 1) {
            max /= 2;
            rest = e;
            continue;
        }
        if (rc || write_all(c, piece[k]->resp.data, piece[k]->resp.len) ||
            (prev && read_writes(pr, c, prev, &failed)))
            return PX_EBACKEND;
        prev = piece[k];
        k = !k;
    }
    if (prev && read_writes(pr, c, prev, &failed)) return PX_EBACKEND;
    pr_entity_t *none;
    pr_snap_t *m = piece[0];
    if (failed || snap_fill(pr, m, NULL, 0, &none) || put_marks(pr, m, m->sent, &m->n_marks) ||
        write_all(c, m->resp.data, m->resp.len) || read_replies(pr, c, NULL, 0, m->n_marks, &failed) || failed)
        return PX_EBACKEND; /* e.g. NOSCRIPT after a Redis restart: the reconnect reloads the script */
    snap_done(pr, m);
    size_t n = 0;
    for (pr_entity_t *e = pr->tab.dirty, *next; e; e = next) {
        next = e->next_dirty;
        px_notify_reset(&e->notify);
        e->dirty = false;
        e->next_dirty = NULL;
        n++;
    }
    pr->tab.dirty = NULL;
    pr->tab.n_dirty -= n;
    return 0;
}

int pr_writer_flush(pr_ctx_t *pr) {
    int64_t t0 = px_mono_us();
    pr_writer_finish(pr); /* its snapshot names entities, and writes go in order */
    int rc = 0;
    if (pr->tab.dirty || pr_marks_pending(pr)) {
        /* never into a dataset that lost its data before the rebuild ran */
        if (pr_redis_ensure(pr) || pr->rd.rebuild_pending) rc = PX_EBACKEND;
        else if (flush_stream(pr)) {
            pr_redis_fail(pr, "write"); /* the flush is retried: nothing is skipped */
            rc = PX_EBACKEND;
        }
    }
    px_counter_add(pr->m_phase_us[PR_PHASE_REDIS], (uint64_t)(px_mono_us() - t0));
    return rc;
}

/* ---- the writer thread ----------------------------------------------------- */

/* The job: the snapshot on the writer's connection. */
static void write_job(pr_ctx_t *pr) { pr->wr.rc = snap_write(pr, pr->wr.conn, &pr->wr.snap); }

int pr_writer_start(pr_ctx_t *pr, char *errstr, size_t errstr_size) {
    pr_writer_t *wr = &pr->wr;
    px_buf_init(&wr->snap.resp, PR_SNAP_BYTES);
    px_buf_init(&wr->note, 1u << 20);
    px_store_cmd_init(&wr->cmd);
    px_buf_init(&wr->now.resp, PR_SNAP_BYTES);
    wr->snap.sent = calloc(PR_MAX_PARTITIONS, sizeof *wr->snap.sent);
    wr->now.sent = calloc(PR_MAX_PARTITIONS, sizeof *wr->now.sent);
    if (!wr->snap.sent || !wr->now.sent) return px_errf(PX_ENOMEM, errstr, errstr_size, "out of memory for the writer");
    if (pr_worker_start(pr, &wr->w, write_job)) return px_errf(PX_EIO, errstr, errstr_size, "writer thread not started");
    return 0;
}

/* (after pr_threads_term: the thread has stopped) */
void pr_writer_stop(pr_ctx_t *pr) {
    pr_writer_t *wr = &pr->wr;
    if (wr->conn) redisFree(wr->conn);
    wr->conn = NULL;
    pr_snap_free(&wr->snap);
    pr_snap_free(&wr->now);
    free(wr->snap.sent);
    free(wr->now.sent);
    wr->snap.sent = wr->now.sent = NULL;
    px_buf_term(&wr->note);
    px_store_cmd_term(&wr->cmd);
}

/* The writer's connection follows the loop's: renewed after each new
 * loop connection (whose dataset the epoch check vouched for), so it
 * never writes into a dataset nobody checked. The writer is idle. A
 * failed connect leaves none: writes then go on the loop's. */
static void writer_connect(pr_ctx_t *pr) {
    pr_writer_t *wr = &pr->wr;
    if (!pr->rd.conn || wr->conn_gen == pr->rd.gen) return;
    if (wr->conn) redisFree(wr->conn);
    wr->conn_gen = pr->rd.gen;
    struct timeval tv = {(time_t)(pr->cfg.redis_timeout_ms / 1000),
                         (suseconds_t)(pr->cfg.redis_timeout_ms % 1000) * 1000};
    wr->conn = px_redis_connect(pr->cfg.redis_host, (int)pr->cfg.redis_port, tv);
    if (!wr->conn || wr->conn->err) {
        PX_WARN(PR_COMP, "redis: the writer's connection failed; writing on the main one", "err=\"%s\"",
                wr->conn ? wr->conn->errstr : "out of memory");
        if (wr->conn) redisFree(wr->conn);
        wr->conn = NULL;
        return;
    }
    redisSetTimeout(wr->conn, tv);
}

void pr_writer_submit(pr_ctx_t *pr, pr_snap_t *snap) {
    pr_writer_t *wr = &pr->wr;
    pr_writer_finish(pr); /* in order: the previous snapshot first */
    writer_connect(pr);
    if (!wr->w.started || !wr->conn || pr->rd.rebuild_pending) {
        int64_t t0 = px_mono_us();
        snap_send_here(pr, snap);
        px_counter_add(pr->m_phase_us[PR_PHASE_REDIS], (uint64_t)(px_mono_us() - t0));
        return;
    }
    pr_snap_t t = wr->snap; /* the writer takes the built one; its spare buffers come back */
    wr->snap = *snap;
    *snap = t;
    snap->ready = false;
    pr_worker_submit(pr, &wr->w);
}

bool pr_writer_ended(pr_ctx_t *pr) { return pr_worker_ended(pr, &pr->wr.w); }

void pr_writer_finish(pr_ctx_t *pr) {
    pr_writer_t *wr = &pr->wr;
    if (!wr->w.busy) return;
    pr_worker_wait(pr, &wr->w, PR_PHASE_REDIS); /* the loop's wait only */
    wr->w.busy = false;
    if (wr->rc == 0) {
        snap_done(pr, &wr->snap);
        return;
    }
    /* its entities are dirty again; the writer's connection goes, and the
     * loop's with it, so the reconnect checks the dataset */
    char what[192];
    snprintf(what, sizeof what, "write on the writer's connection (%s)",
             wr->conn && wr->conn->err ? wr->conn->errstr : "an error reply");
    pr_snap_drop(pr, &wr->snap);
    if (wr->conn) redisFree(wr->conn);
    wr->conn = NULL;
    pr_redis_fail(pr, what);
}
