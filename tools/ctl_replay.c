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
 * (it dead-letters them). Redis is written through px_rcl: the script is
 * loaded on every master, each entity goes to the master of its slot, a
 * master that lost the script (NOSCRIPT) gets it again. Limits: a replay
 * from --from starts from empty state (what happened before the window is
 * not known); writes go 512 to a pipeline round; view deadlines are judged
 * at the wall clock of the write.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "ctl.h"
#include "px_time.h"
#include "px_when.h"

#define REPLAY_PIPELINE 512
#define REPLAY_CHUNK_BYTES (8u << 20) /* a round also ends past this many bytes of commands */

/* SCRIPT LOAD on every master; sha gets the script's SHA1. */
static int load_script(ctl_t *c, px_rcl_t *r, char sha[64]) {
    px_rcl_batch_t b;
    px_rcl_batch_init(&b, 1u << 20);
    int rc = 0;
    for (int i = 0; i < px_rcl_nodes(r) && !rc; i++) {
        char *cmd = NULL;
        int len = redisFormatCommand(&cmd, "SCRIPT LOAD %s", PX_STORE_WRITE_SCRIPT);
        rc = len < 0 || px_rcl_add_formatted(&b, -1, i, cmd, (size_t)len) ? CTL_EXIT_ERR : 0;
        if (cmd) redisFreeCommand(cmd);
    }
    if (!rc) rc = ctl_redis_exec(c, r, &b, "SCRIPT LOAD");
    for (size_t i = 0; !rc && i < b.n; i++) {
        const redisReply *rep = b.cmd[i].reply;
        if (rep->type != REDIS_REPLY_STRING || rep->len >= 64) {
            char name[PX_REDIS_HOST_MAX + 16];
            fprintf(stderr, "presencectl replay: %s: SCRIPT LOAD: %s\n",
                    px_rcl_node_name(r, b.cmd[i].node, name, sizeof name),
                    rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
            rc = CTL_EXIT_ERR;
        } else {
            memcpy(sha, rep->str, rep->len + 1);
        }
    }
    px_rcl_batch_term(&b);
    return rc;
}

/* Run the chunk of write scripts in b: 1 wrote, 0 kept. A master that
 * does not know the script (NOSCRIPT: it restarted, or a replica took
 * over) gets it again and its commands are sent once more. */
static int run_chunk(ctl_t *c, px_rcl_t *r, px_rcl_batch_t *b, px_rcl_batch_t *again, uint64_t *wrote,
                     uint64_t *kept) {
    for (int round = 0; round < 2; round++) {
        if (ctl_redis_exec(c, r, b, "write script")) return CTL_EXIT_ERR;
        px_rcl_batch_reset(again);
        for (size_t i = 0; i < b->n; i++) {
            const redisReply *rep = b->cmd[i].reply;
            bool noscript = rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "NOSCRIPT", 8) == 0;
            if (noscript && round == 0) {
                if (px_rcl_add_formatted(again, b->cmd[i].slot, -1, b->buf.data + b->cmd[i].off, b->cmd[i].len))
                    return CTL_EXIT_ERR;
            } else if (rep->type == REDIS_REPLY_ERROR) {
                fprintf(stderr, "presencectl replay: %s: write script: %s\n", c->redis_where, rep->str);
                return CTL_EXIT_ERR;
            } else if (rep->type == REDIS_REPLY_INTEGER && rep->integer == 1) {
                (*wrote)++;
            } else {
                (*kept)++;
            }
        }
        px_rcl_batch_reset(b);
        if (!again->n) return 0;
        char sha[64];
        if (load_script(c, r, sha)) return CTL_EXIT_ERR;
        px_rcl_batch_t t = *b;
        *b = *again;
        *again = t;
    }
    return 0;
}

static int write_redis(ctl_t *c, px_rcl_t *r, uint64_t *wrote, uint64_t *kept) {
    int rc = CTL_EXIT_ERR;
    px_store_cmd_t cmd;
    px_store_cmd_init(&cmd);
    px_rcl_batch_t b, again;
    /* room for a full round and one more command of the largest state */
    px_rcl_batch_init(&b, REPLAY_CHUNK_BYTES + (4u << 20) + 2 * PX_STORE_BLOB_MAX);
    px_rcl_batch_init(&again, REPLAY_CHUNK_BYTES + (4u << 20) + 2 * PX_STORE_BLOB_MAX);
    char sha[64];
    if (load_script(c, r, sha)) goto out;
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
        if (px_rcl_add(&b, cmd.argv[3], cmd.argvlen[3], cmd.argc, cmd.argv, cmd.argvlen)) {
            fprintf(stderr, "presencectl replay: out of memory\n");
            goto out;
        }
        if ((b.n == REPLAY_PIPELINE || b.buf.len > REPLAY_CHUNK_BYTES) && run_chunk(c, r, &b, &again, wrote, kept))
            goto out;
    }
    if (b.n && run_chunk(c, r, &b, &again, wrote, kept)) goto out;
    rc = 0;
out:
    px_store_cmd_term(&cmd);
    px_rcl_batch_term(&b);
    px_rcl_batch_term(&again);
    return rc;
}

int ctl_replay(ctl_t *c) {
    ctl_range_t range;
    if (ctl_time_range(c, &range.from_ms, &range.to_ms)) return CTL_EXIT_ERR;
    bool dry = ctl_flag_set(c, "dry-run");
    /* Redis first: an unreachable one fails before the long read */
    px_rcl_t *r = dry ? NULL : ctl_redis_connect(c);
    if (!dry && !r) return CTL_EXIT_ERR;
    int64_t t0 = px_mono_us();
    int rc = ctl_fold_inputs(c, &range);
    int64_t t1 = px_mono_us();
    uint64_t wrote = 0, kept = 0;
    if (!rc && !dry) rc = write_redis(c, r, &wrote, &kept);
    px_rcl_free(r);
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
