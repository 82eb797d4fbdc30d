/*
 * pr_writer.c - the write stage, and the only way anything reaches Redis
 * but reads and early decisions: a snapshot.
 *
 * A snapshot (pr.h, pr_snap_t) holds the commands that write the entities
 * dirty when it was built (each a watermark-guarded script call,
 * px_store.h, carrying the entity's notification), the deadline index of
 * each chunk of PR_FLUSH_CHUNK of them, then the applied marks: one
 * command per master, on the master itself (pr_redis.c, "Shards"). It is
 * sent with px_rcl in two rounds: the writes (routed by slot, split per
 * master), and, once every write succeeded, the marks; so a mark never
 * claims a write any master refused, and on each master it follows every
 * write it claims. The marks script refuses a master whose identity is
 * not the one vouched for when the snapshot was built (a failover not
 * yet seen): the snapshot then fails and the loop vouches again.
 *
 * Two places send them: the writer thread, with its own client, a
 * committed batch's snapshot while the loop goes on (pr_writer_submit);
 * and the loop, with its client, when the writes must be done now
 * (pr_writer_flush: deferred writes, the end of a backlog, a revoke, the
 * stop; in pieces) or the writer has no client. Either way the loop
 * finishes them: the marks written are Redis's, or the entities are
 * dirty again.
 *
 * Keys besides entity states (docs/redis-keys.md), on each master under
 * the hash tag of its lowest slot:
 *   presence:shard:{tag}:applied:<group>        HASH "<src>:<partition>" ->
 *                                               next offset Redis holds
 *                                               every record below
 *   presence:shard:{tag}:deadlines:<group>:<p>  ZSET entity key -> earliest
 *                                               deadline (the entities of
 *                                               that master's slots)
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pr.h"
#include "px_log.h"
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

/* One bulk string in RESP. */
static int put_arg(px_buf_t *out, const char *arg, size_t len) {
    int rc = px_buf_puts(out, "$");
    if (!rc) rc = px_buf_put_i64(out, (int64_t)len);
    if (!rc) rc = px_buf_puts(out, "\r\n");
    if (!rc) rc = px_buf_append(out, arg, len);
    if (!rc) rc = px_buf_puts(out, "\r\n");
    return rc;
}

/* Register the command written to b->buf since mark (0), or take it back
 * (PX_ENOMEM). */
static int put_end(px_rcl_batch_t *b, int slot, size_t mark, int rc) {
    if (!rc) rc = px_rcl_add_appended(b, slot, -1, mark);
    if (rc) {
        b->buf.len = mark;
        if (b->buf.data) b->buf.data[mark] = '\0';
    }
    return rc;
}

/* One command in RESP appended to batch b for slot, formatted here:
 * hiredis's sdscatfmt per argument was 5% of the processor's CPU in the
 * 2M-record benchmark. 0 or PX_ENOMEM (b keeps what it had). */
static int put_cmd(px_rcl_batch_t *b, int slot, int argc, const char *const *argv, const size_t *argvlen) {
    size_t mark = b->buf.len;
    int rc = px_buf_puts(&b->buf, "*");
    if (!rc) rc = px_buf_put_i64(&b->buf, argc);
    if (!rc) rc = px_buf_puts(&b->buf, "\r\n");
    for (int i = 0; i < argc && !rc; i++) rc = put_arg(&b->buf, argv[i], argvlen[i]);
    return put_end(b, slot, mark, rc);
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
    int rc = px_store_write_cmd(&wr->cmd, pr->rd.script_sha, &e->st, &pr->fold, &e->wm, now, notify);
    if (!rc && pr->cfg.redis.cluster) { /* the script publishes on the entity's shard (SPUBLISH) */
        wr->cmd.argv[wr->cmd.argc] = "S";
        wr->cmd.argvlen[wr->cmd.argc++] = 1;
    }
    /* argv[3]: the state key, whose hash tag is the entity's */
    if (rc || put_cmd(&snap->w, px_redis_slot(wr->cmd.argv[3], wr->cmd.argvlen[3]), wr->cmd.argc, wr->cmd.argv,
                      wr->cmd.argvlen)) {
        /* out of memory (within the fold's caps the largest command is
         * about 2.4 MB, under PX_STORE_CMD_MAX) */
        PX_ERROR(PR_COMP, "write command not built", "entity=%s:%s:%s", e->st.key.tenant, e->st.key.entity,
                 e->st.key.id);
        return PX_ENOMEM;
    }
    return 0;
}

/* The deadline index of n <= PR_FLUSH_CHUNK entities: per partition and
 * shard one ZADD of those with a pending deadline and one ZREM of those
 * without, on the shard that holds the entity's slot now. Adds the
 * commands put to *cmds. */
static int put_deadlines(pr_ctx_t *pr, pr_snap_t *snap, pr_entity_t *const *ents, size_t n, size_t *cmds) {
    pr_deadline_scratch_t *d = &pr->wr.dl;
    char zk[PX_CONF_STR_MAX + 64];
    if (n > PR_FLUSH_CHUNK) return PX_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        d->due[i] = px_fold_next_deadline(&ents[i]->st, &pr->fold);
        d->done[i] = false;
        int len = px_key_format(&ents[i]->st.key, d->keys[i], sizeof d->keys[i]); /* the entity's hash tag */
        d->shard[i] = pr_redis_shard_of(pr, px_redis_crc16(d->keys[i], (size_t)len) & 16383);
    }
    const char *tag0 = pr->rd.nshards ? pr->rd.shard[0].tag : "";
    for (size_t lead = 0; lead < n; lead++) {
        if (d->done[lead]) continue;
        int p = ents[lead]->partition, sh = d->shard[lead];
        for (int pass = 0; pass < 2; pass++) { /* 0: ZADD, 1: ZREM */
            int argc = 2;
            for (size_t j = lead; j < n; j++) {
                if (ents[j]->partition != p || d->shard[j] != sh || (d->due[j] != INT64_MAX) != (pass == 0)) continue;
                d->done[j] = true;
                if (pass == 0) {
                    d->argvlen[argc] = (size_t)snprintf(d->scores[j], sizeof d->scores[j], "%" PRId64, d->due[j]);
                    d->argv[argc++] = d->scores[j];
                }
                d->argvlen[argc] = strlen(d->keys[j]);
                d->argv[argc++] = d->keys[j];
            }
            if (argc == 2) continue;
            int zl = snprintf(zk, sizeof zk, "presence:shard:{%s}:deadlines:%s:%d",
                              sh < pr->rd.nshards ? pr->rd.shard[sh].tag : tag0, pr->kc.group, p);
            d->argv[0] = pass == 0 ? "ZADD" : "ZREM";
            d->argvlen[0] = 4;
            d->argv[1] = zk;
            d->argvlen[1] = (size_t)zl;
            if (put_cmd(&snap->w, px_redis_slot(zk, (size_t)zl), argc, d->argv, d->argvlen)) return PX_ENOMEM;
            (*cmds)++;
        }
    }
    return 0;
}

/* The applied marks of the assigned partitions (a revoked one was flushed
 * in the revoke, before it stopped being assigned), one command per
 * shard: the marks script with the identity the shard was vouched for.
 * sent[p][s]: the mark put, -1 for none. */
static int put_marks(pr_ctx_t *pr, pr_snap_t *snap, int64_t (*sent)[PR_N_SRC]) {
    px_buf_t *pairs = &pr->wr.pairs;
    int npairs = 0, rc = 0, shards = 0;
    px_buf_reset(pairs);
    for (int i = 0; i < pr->rd.nshards; i++) shards += pr->rd.shard[i].tag[0] != '\0';
    for (int p = 0; p < PR_MAX_PARTITIONS; p++) {
        pr_part_t *pp = &pr->parts[p];
        for (int s = 0; s < PR_N_SRC; s++) sent[p][s] = -1;
        if (!shards || !pp->assigned || !mark_pending(pp)) continue;
        for (int s = 0; s < PR_N_SRC && !rc; s++) {
            if (pp->next[s] < 0) continue;
            char f[32], v[24];
            int fl = snprintf(f, sizeof f, "%d:%d", s, p), vl = snprintf(v, sizeof v, "%" PRId64, pp->next[s]);
            rc = put_arg(pairs, f, (size_t)fl);
            if (!rc) rc = put_arg(pairs, v, (size_t)vl);
            sent[p][s] = pp->next[s];
            npairs++;
        }
    }
    for (int i = 0; i < pr->rd.nshards && npairs && !rc; i++) {
        const pr_shard_t *sh = &pr->rd.shard[i];
        if (!sh->tag[0]) continue;
        char ak[PX_CONF_STR_MAX + 48], ek[48];
        int al = snprintf(ak, sizeof ak, "presence:shard:{%s}:applied:%s", sh->tag, pr->kc.group);
        int el = snprintf(ek, sizeof ek, "presence:shard:{%s}:epoch", sh->tag);
        size_t mark = snap->m.buf.len;
        rc = px_buf_puts(&snap->m.buf, "*");
        if (!rc) rc = px_buf_put_i64(&snap->m.buf, 6 + 2 * npairs);
        if (!rc) rc = px_buf_puts(&snap->m.buf, "\r\n");
        if (!rc) rc = put_arg(&snap->m.buf, "EVALSHA", 7);
        if (!rc) rc = put_arg(&snap->m.buf, pr->rd.mark_sha, strlen(pr->rd.mark_sha));
        if (!rc) rc = put_arg(&snap->m.buf, "2", 1);
        if (!rc) rc = put_arg(&snap->m.buf, ak, (size_t)al);
        if (!rc) rc = put_arg(&snap->m.buf, ek, (size_t)el);
        if (!rc) rc = put_arg(&snap->m.buf, sh->id, strlen(sh->id));
        if (!rc) rc = px_buf_append(&snap->m.buf, pairs->data, pairs->len);
        rc = put_end(&snap->m, px_redis_slot(ak, (size_t)al), mark, rc);
    }
    return rc;
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
 * taken. No marks yet. Nothing leaves the dirty
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
    px_rcl_batch_reset(&snap->w);
    px_rcl_batch_reset(&snap->m);
    snap->n_ents = snap->n_chunks = 0;
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
        put_marks(pr, snap, snap->sent))
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

void pr_snap_init(pr_snap_t *snap) {
    px_rcl_batch_init(&snap->w, PR_SNAP_BYTES);
    px_rcl_batch_init(&snap->m, 1u << 20);
}

void pr_snap_free(pr_snap_t *snap) {
    px_rcl_batch_term(&snap->w);
    px_rcl_batch_term(&snap->m);
    snap_arrays_free(snap);
    snap->ready = false;
}

/* ---- sending ------------------------------------------------------------- */

/* Check the replies of snap's entity writes and deadline commands: an
 * error reply fails the snapshot (logged once); a write the watermarks
 * refused is counted. Touches nothing of the loop's but counters, the log
 * and the entities' keys (the writer thread calls it while the loop
 * folds). */
static bool writes_ok(pr_ctx_t *pr, const pr_snap_t *snap) {
    bool ok = true;
    size_t k = 0;
    for (size_t ch = 0; ch < snap->n_chunks; ch++) {
        size_t at = ch * PR_FLUSH_CHUNK;
        size_t n = snap->n_ents - at < PR_FLUSH_CHUNK ? snap->n_ents - at : PR_FLUSH_CHUNK;
        for (size_t i = 0; i < n + snap->chunk_others[ch]; i++, k++) {
            const redisReply *r = snap->w.cmd[k].reply;
            if (r->type == REDIS_REPLY_ERROR) {
                if (ok) PX_ERROR(PR_COMP, "redis write refused", "err=\"%s\"", r->str);
                ok = false;
            } else if (i < n && r->type == REDIS_REPLY_INTEGER && r->integer == 0) {
                /* Redis holds a state this one does not dominate: only a
                 * zombie or a replay may see this */
                const pr_entity_t *we = snap->ents[at + i];
                px_counter_add(pr->m_wskipped, 1);
                PX_WARN(PR_COMP, "write skipped: Redis holds a newer state", "entity=%s:%s:%s", we->st.key.tenant,
                        we->st.key.entity, we->st.key.id);
            }
        }
    }
    return ok;
}

/* Send snap with client c: the writes, then (all succeeded) the marks.
 * 0, or PX_EBACKEND with the reason in err (a connection failure, a
 * refused write, e.g. NOSCRIPT on a master not vouched for yet, or marks
 * refused by a master that changed). */
static int snap_write(pr_ctx_t *pr, px_rcl_t *c, pr_snap_t *snap, char *err, size_t err_size) {
    if (snap->w.n && px_rcl_exec(c, &snap->w, err, err_size)) return PX_EBACKEND;
    if (!writes_ok(pr, snap)) return px_errf(PX_EBACKEND, err, err_size, "a write was refused");
    if (snap->m.n && px_rcl_exec(c, &snap->m, err, err_size)) return PX_EBACKEND;
    for (size_t i = 0; i < snap->m.n; i++)
        if (snap->m.cmd[i].reply->type == REDIS_REPLY_ERROR)
            return px_errf(PX_EBACKEND, err, err_size, "applied marks refused: %s", snap->m.cmd[i].reply->str);
    return 0;
}

/* A snapshot's writes are done: the applied marks it wrote are Redis's. */
static void snap_done(pr_ctx_t *pr, pr_snap_t *snap) {
    for (int p = 0; p < PR_MAX_PARTITIONS; p++)
        for (int s = 0; s < PR_N_SRC; s++)
            if (snap->sent[p][s] >= 0) pr->parts[p].marked[s] = snap->sent[p][s];
    snap->ready = false;
}

/* Send snap with the loop's client and finish it. Never into a dataset
 * that lost writes before the repair ran: its marks would claim records
 * Redis no longer has. 0 or PX_EBACKEND (its entities dirty). */
static int snap_send_here(pr_ctx_t *pr, pr_snap_t *snap) {
    int rc = PX_EBACKEND;
    if (pr_redis_ensure(pr) == 0 && !pr->rd.rebuild_pending) {
        rc = snap_write(pr, pr->rd.rcl, snap, pr->rd.err, sizeof pr->rd.err);
        if (rc) pr_redis_fail(pr, "write");
    }
    if (rc) pr_snap_drop(pr, snap);
    else snap_done(pr, snap);
    return rc;
}

/* Write the dirty entities with the loop's client in pieces of at most
 * PR_FLUSH_PIECE, then the marks, once every write succeeded; only then do
 * the entities leave the dirty list. */
#define PR_FLUSH_PIECE 4096
static int flush_stream(pr_ctx_t *pr) {
    pr_snap_t *piece = &pr->wr.now;
    size_t max = PR_FLUSH_PIECE; /* halved while a piece does not fit PR_SNAP_BYTES */
    for (pr_entity_t *e = pr->tab.dirty, *rest; e; e = rest) {
        int rc = snap_fill(pr, piece, e, max, &rest);
        if (rc == PX_ENOMEM && max > 1) {
            max /= 2;
            rest = e;
            continue;
        }
        if (rc) return px_errf(PX_ENOMEM, pr->rd.err, sizeof pr->rd.err, "out of memory");
        if (snap_write(pr, pr->rd.rcl, piece, pr->rd.err, sizeof pr->rd.err)) return PX_EBACKEND;
    }
    pr_entity_t *none;
    if (snap_fill(pr, piece, NULL, 0, &none) || put_marks(pr, piece, piece->sent))
        return px_errf(PX_ENOMEM, pr->rd.err, sizeof pr->rd.err, "out of memory");
    if (snap_write(pr, pr->rd.rcl, piece, pr->rd.err, sizeof pr->rd.err)) return PX_EBACKEND;
    snap_done(pr, piece);
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
        /* never into a dataset that lost writes before the repair ran */
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
static void write_job(pr_ctx_t *pr) {
    pr->wr.rc = snap_write(pr, pr->wr.rcl, &pr->wr.snap, pr->wr.err, sizeof pr->wr.err);
}

int pr_writer_start(pr_ctx_t *pr, char *errstr, size_t errstr_size) {
    pr_writer_t *wr = &pr->wr;
    pr_snap_init(&wr->snap);
    pr_snap_init(&wr->now);
    px_buf_init(&wr->note, 1u << 20);
    px_buf_init(&wr->pairs, 1u << 20);
    px_store_cmd_init(&wr->cmd);
    wr->snap.sent = calloc(PR_MAX_PARTITIONS, sizeof *wr->snap.sent);
    wr->now.sent = calloc(PR_MAX_PARTITIONS, sizeof *wr->now.sent);
    if (!wr->snap.sent || !wr->now.sent) return px_errf(PX_ENOMEM, errstr, errstr_size, "out of memory for the writer");
    if (pr_worker_start(pr, &wr->w, write_job)) return px_errf(PX_EIO, errstr, errstr_size, "writer thread not started");
    return 0;
}

/* (after pr_threads_term: the thread has stopped) */
void pr_writer_stop(pr_ctx_t *pr) {
    pr_writer_t *wr = &pr->wr;
    px_rcl_free(wr->rcl);
    wr->rcl = NULL;
    pr_snap_free(&wr->snap);
    pr_snap_free(&wr->now);
    free(wr->snap.sent);
    free(wr->now.sent);
    wr->snap.sent = wr->now.sent = NULL;
    px_buf_term(&wr->note);
    px_buf_term(&wr->pairs);
    px_store_cmd_term(&wr->cmd);
}

/* The writer's client follows the loop's: renewed after each new loop
 * connection (whose masters were vouched for), so it never writes into a
 * dataset nobody checked; the marks script guards the masters it finds
 * later. The writer is idle. A failed connect leaves none: writes then go
 * with the loop's client. */
static void writer_connect(pr_ctx_t *pr) {
    pr_writer_t *wr = &pr->wr;
    if (!pr->rd.rcl || wr->conn_gen == pr->rd.gen) return;
    px_rcl_free(wr->rcl);
    wr->conn_gen = pr->rd.gen;
    px_rcl_conf_t conf;
    pr_redis_conf(pr, &conf);
    wr->rcl = px_rcl_new(&conf, wr->err, sizeof wr->err);
    if (!wr->rcl || px_rcl_connect(wr->rcl, wr->err, sizeof wr->err)) {
        PX_WARN(PR_COMP, "redis: the writer's client failed; writing with the loop's", "err=\"%s\"", wr->err);
        px_rcl_free(wr->rcl);
        wr->rcl = NULL;
    }
}

void pr_writer_submit(pr_ctx_t *pr, pr_snap_t *snap) {
    pr_writer_t *wr = &pr->wr;
    pr_writer_finish(pr); /* in order: the previous snapshot first */
    writer_connect(pr);
    if (!wr->w.started || !wr->rcl || pr->rd.rebuild_pending) {
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
    /* its entities are dirty again; the writer's client goes, and the
     * loop's with it, so the reconnect vouches for the masters */
    char what[320];
    snprintf(what, sizeof what, "write with the writer's client (%s)", wr->err);
    pr_snap_drop(pr, &wr->snap);
    px_rcl_free(wr->rcl);
    wr->rcl = NULL;
    pr_redis_fail(pr, what);
}
