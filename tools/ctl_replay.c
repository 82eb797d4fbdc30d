/*
 * ctl_replay.c - `presencectl replay`: fold the input topics (from the
 * beginning, or the records whose Kafka timestamp is in [--from, --to))
 * with the one fold and write every entity into a target Redis with the
 * processor's own guarded write script (px_store_write_cmd), under
 * redis.key_prefix / redis.db when given, so a copy can sit beside the
 * live view. Watermarks written are the offsets folded, so writing into a
 * Redis that already holds a newer state changes nothing (counted as
 * "kept"). --dry-run folds in memory only (the benchmark of the fold).
 * Prints a summary: records, entities, seconds and records/s of each phase.
 * --strict exits 2 when any record was not folded (undecodable, key
 * mismatch, over a cap): the default skips them as the processor does
 * (it dead-letters them). Limits: a replay from --from starts from empty state (what happened
 * before the window is not known); writes are pipelined 512 at a time;
 * view deadlines are judged at the wall clock of the write.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "ctl.h"
#include "px_time.h"
#include "px_when.h"

#define REPLAY_PIPELINE 512

/* Send the pipelined commands and read their replies: 1 wrote, 0 kept. */
static int drain(ctl_t *c, redisContext *r, int pending, uint64_t *wrote, uint64_t *kept) {
    for (int i = 0; i < pending; i++) {
        redisReply *rep = NULL;
        if (redisGetReply(r, (void **)&rep) != REDIS_OK || !rep) {
            fprintf(stderr, "presencectl replay: %s: %s\n", c->redis_where, r->errstr);
            return CTL_EXIT_ERR;
        }
        int bad = rep->type == REDIS_REPLY_ERROR;
        if (bad) fprintf(stderr, "presencectl replay: %s: write script: %s\n", c->redis_where, rep->str);
        else if (rep->type == REDIS_REPLY_INTEGER && rep->integer == 1) (*wrote)++;
        else (*kept)++;
        freeReplyObject(rep);
        if (bad) return CTL_EXIT_ERR;
    }
    return 0;
}

static int write_redis(ctl_t *c, redisContext *r, uint64_t *wrote, uint64_t *kept) {
    int rc = CTL_EXIT_ERR, pending = 0, in_flight = 0;
    px_store_cmd_t cmd;
    px_store_cmd_init(&cmd);
    char sha[64];
    redisReply *rep = redisCommand(r, "SCRIPT LOAD %s", PX_STORE_WRITE_SCRIPT);
    if (!rep || rep->type != REDIS_REPLY_STRING || rep->len >= sizeof sha) {
        fprintf(stderr, "presencectl replay: %s: SCRIPT LOAD: %s\n", c->redis_where,
                rep && rep->type == REDIS_REPLY_ERROR ? rep->str : r->errstr);
        freeReplyObject(rep);
        goto out;
    }
    memcpy(sha, rep->str, rep->len + 1);
    freeReplyObject(rep);
    int64_t now = px_now_ms();
    char keys[2][PX_CONF_STR_MAX + PX_KEY_MAX + 64];
    static const char *const suffix[2] = {"state", "view"};
    CTL_FOR_EACH_ENT(c, n) {
        if (px_store_write_cmd(&cmd, sha, &n->st, &c->fold, &n->wm, now, NULL)) {
            fprintf(stderr, "presencectl: entity %s:%s:%s: write command too large\n", n->st.key.tenant,
                    n->st.key.entity, n->st.key.id);
            goto out;
        }
        /* argv[3..4] are the two keys: put the target prefix before them */
        if (c->cfg.redis_key_prefix[0])
            for (int k = 0; k < 2; k++) {
                int kl = ctl_redis_key(c, &n->st.key, suffix[k], keys[k], sizeof keys[k]);
                if (kl < 0) goto out;
                cmd.argv[3 + k] = keys[k];
                cmd.argvlen[3 + k] = (size_t)kl;
            }
        if (redisAppendCommandArgv(r, cmd.argc, cmd.argv, cmd.argvlen) != REDIS_OK) {
            fprintf(stderr, "presencectl replay: %s: %s\n", c->redis_where, r->errstr);
            goto out;
        }
        if (++pending == REPLAY_PIPELINE) {
            /* send this chunk, then read the previous chunk's replies while
             * Redis runs this one: building, sending and the scripts overlap */
            int done = 0;
            while (!done)
                if (redisBufferWrite(r, &done) != REDIS_OK) {
                    fprintf(stderr, "presencectl replay: %s: %s\n", c->redis_where, r->errstr);
                    goto out;
                }
            if (drain(c, r, in_flight, wrote, kept)) goto out;
            in_flight = pending;
            pending = 0;
        }
    }
    if (drain(c, r, in_flight + pending, wrote, kept)) goto out;
    rc = 0;
out:
    px_store_cmd_term(&cmd);
    return rc;
}

int ctl_replay(ctl_t *c) {
    ctl_range_t range;
    if (ctl_time_range(c, &range.from_ms, &range.to_ms)) return CTL_EXIT_ERR;
    bool dry = ctl_flag_set(c, "dry-run");
    /* Redis first: an unreachable one fails before the long read */
    redisContext *r = dry ? NULL : ctl_redis_connect(c);
    if (!dry && !r) return CTL_EXIT_ERR;
    int64_t t0 = px_mono_us();
    int rc = ctl_fold_inputs(c, &range);
    int64_t t1 = px_mono_us();
    uint64_t wrote = 0, kept = 0;
    if (!rc && !dry) rc = write_redis(c, r, &wrote, &kept);
    redisFree(r);
    if (rc) return rc;
    int64_t t2 = px_mono_us();
    ctl_fold_summary(c);
    uint64_t skipped = c->n_skipped_decode + c->n_skipped_key + c->n_refused;
    if (ctl_flag_set(c, "strict") && skipped) {
        fprintf(stderr, "presencectl replay: --strict: %llu input records were not folded (see above)\n",
                (unsigned long long)skipped);
        rc = CTL_EXIT_ERR;
    }
    double fs = (double)(t1 - t0) / 1e6, ws = (double)(t2 - t1) / 1e6;
    char a[40], b[40];
    printf("replay: %llu records (%s .. %s) of %s -> %zu entities; fold %.3f s (%.0f records/s)",
           (unsigned long long)c->n_records, range.from_ms ? px_when_format(range.from_ms, a, sizeof a) : "beginning",
           range.to_ms != INT64_MAX ? px_when_format(range.to_ms, b, sizeof b) : "end", c->kafka_where, c->nents, fs,
           fs > 0 ? (double)c->n_records / fs : 0.0);
    if (dry)
        printf("; dry run, Redis untouched\n");
    else
        printf("; %s: %llu written, %llu kept (Redis had newer), %.3f s; total %.0f records/s\n", c->redis_where,
               (unsigned long long)wrote, (unsigned long long)kept, ws,
               fs + ws > 0 ? (double)c->n_records / (fs + ws) : 0.0);
    return rc;
}
