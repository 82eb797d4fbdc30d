/*
 * pr_redis.c - the loop's Redis client (px_rcl: one server or a Redis
 * Cluster, reconnect with capped exponential backoff, 100 ms to 5 s) and
 * what the loop reads or publishes with it: entity states, applied marks,
 * the deadline index, early lock decisions. Writes are pr_writer.c's.
 *
 * Shards. The keys that are not an entity's live on every master, each
 * copy under the hash tag of the lowest slot that master owns
 * (px_redis_slot_tag), so a master's copy is on the master itself:
 *
 *   presence:shard:{tag}:epoch                STRING set once per dataset
 *   presence:shard:{tag}:applied:<group>      HASH "<src>:<p>" -> next offset
 *   presence:shard:{tag}:deadlines:<group>:<p> ZSET entity key -> deadline
 *
 * A master's marks are written after every write they claim completed,
 * so a master that comes back with a prefix of its writes (a promoted
 * replica, a restart from its persistence) comes back with marks no
 * newer than its data; the applied mark of a partition is the lowest of
 * every master's (docs/exactly-once.md, "Redis Cluster and failover").
 *
 * Vouching. The client vouches for every master when it connects and
 * again whenever it reconnected or followed the cluster since: INFO gives
 * the master's run_id and replication id, the epoch key its dataset, and
 * both scripts are loaded on it. A master whose identity changed (a new
 * process, a promotion, a dataset emptied) or that is new where the
 * processor had written is a rewind: every owned partition is repaired
 * from the applied marks (rebuild_pending). Replies read on a client that
 * moved are used only once it vouched again. The marks script refuses to
 * write on a master whose identity is not the one the marks were built
 * for (pr_writer.c), so no mark lands before its master was vouched for.
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

/* KEYS[1] the shard's applied marks, KEYS[2] its epoch; ARGV[1] the
 * identity the marks were built for, then field/value pairs. */
static const char MARK_SCRIPT[] =
    "local e = redis.call('GET', KEYS[2]) or ''\n"
    "local s = redis.call('INFO', 'server')\n"
    "local r = redis.call('INFO', 'replication')\n"
    "local id = e .. '/' .. (string.match(s, 'run_id:(%w+)') or '') .. '/' ..\n"
    "  (string.match(r, 'master_replid:(%w+)') or '')\n"
    "if id ~= ARGV[1] then return redis.error_reply('PXSHARD this master is ' .. id .. ', not ' .. ARGV[1]) end\n"
    "redis.call('HSET', KEYS[1], unpack(ARGV, 2))\n"
    "return 1\n";

void pr_redis_conf(const pr_ctx_t *pr, px_rcl_conf_t *out) {
    px_redis_conf_rcl(&pr->cfg.redis, pr->cfg.redis_host, (int)pr->cfg.redis_port, (long)pr->cfg.redis_timeout_ms,
                      out);
}

void pr_redis_fail(pr_ctx_t *pr, const char *what) {
    px_counter_add(pr->m_redis_err, 1);
    char q[320];
    PX_WARN(PR_COMP, "redis unavailable", "during=%s err=%s retry_ms=%lld", what,
            px_log_q(q, sizeof q, pr->rd.err[0] ? pr->rd.err : "error reply"),
            (long long)(pr->rd.backoff_ms ? pr->rd.backoff_ms : 100));
    px_rcl_free(pr->rd.rcl);
    pr->rd.rcl = NULL;
    pr->rd.err[0] = '\0';
    pr->rd.backoff_ms = pr->rd.backoff_ms ? pr->rd.backoff_ms * 2 : 100;
    if (pr->rd.backoff_ms > 5000) pr->rd.backoff_ms = 5000;
    pr->rd.retry_at = px_mono_ms() + pr->rd.backoff_ms;
}

void pr_redis_close(pr_ctx_t *pr) {
    px_rcl_free(pr->rd.rcl);
    pr->rd.rcl = NULL;
    if (pr->rd.binit) {
        px_rcl_batch_term(&pr->rd.b);
        px_rcl_batch_term(&pr->rd.vb);
        pr->rd.binit = false;
    }
}

int pr_redis_shard_of(const pr_ctx_t *pr, int slot) {
    int o = pr->rd.rcl ? px_rcl_owner(pr->rd.rcl, slot) : -1;
    return o >= 0 && o < pr->rd.nshards ? o : 0;
}

static unsigned long moves(const px_rcl_t *c) {
    px_rcl_stats_t st = px_rcl_stats(c);
    return st.reconnects + st.refreshes;
}

/* The value of `name:` in INFO text, into out ("" when absent). */
static void info_field(const redisReply *r, const char *name, char *out, size_t n) {
    out[0] = '\0';
    if (r->type != REDIS_REPLY_STRING) return;
    size_t nl = strlen(name);
    for (const char *p = r->str; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, name, nl) == 0 && p[nl] == ':') {
            size_t len = strcspn(p + nl + 1, "\r\n");
            snprintf(out, n, "%.*s", (int)(len < n ? len : n - 1), p + nl + 1);
            return;
        }
}

static int add_argv(px_rcl_batch_t *b, int slot, int node, int argc, const char **argv) {
    size_t len[8];
    for (int i = 0; i < argc; i++) len[i] = strlen(argv[i]);
    char *cmd = NULL;
    long long n = redisFormatCommandArgv(&cmd, argc, argv, len);
    if (n < 0) return PX_ENOMEM;
    int rc = px_rcl_add_formatted(b, slot, node, cmd, (size_t)n);
    redisFreeCommand(cmd);
    return rc;
}

/* Queue what vouching asks each master: per node 4 commands (INFO, the
 * epoch or a PING for a master without slots, the two SCRIPT LOADs). */
static int vouch_queue(pr_ctx_t *pr, pr_shard_t *sh, int n, const char *mine) {
    px_rcl_t *c = pr->rd.rcl;
    px_rcl_batch_t *b = &pr->rd.vb;
    int lowest[PX_REDIS_NODES_MAX];
    char key[64], name[sizeof sh->addr];
    for (int i = 0; i < n; i++) lowest[i] = -1;
    for (int s = PX_REDIS_SLOTS - 1; s >= 0; s--) {
        int o = px_rcl_owner(c, s);
        if (o >= 0 && o < n) lowest[o] = s;
    }
    px_rcl_batch_reset(b);
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        snprintf(sh[i].addr, sizeof sh[i].addr, "%s", px_rcl_node_name(c, i, name, sizeof name));
        sh[i].tag[0] = '\0';
        if (lowest[i] >= 0) px_redis_slot_tag(lowest[i], sh[i].tag, sizeof sh[i].tag);
        snprintf(key, sizeof key, "presence:shard:{%s}:epoch", sh[i].tag);
        const char *info[] = {"INFO", "server", "replication"}, *ping[] = {"PING"};
        const char *epoch[] = {"SET", key, mine, "NX", "GET"};
        const char *w[] = {"SCRIPT", "LOAD", PX_STORE_WRITE_SCRIPT}, *m[] = {"SCRIPT", "LOAD", MARK_SCRIPT};
        rc = add_argv(b, -1, i, 3, info);
        if (!rc) rc = sh[i].tag[0] ? add_argv(b, px_redis_slot(key, strlen(key)), -1, 5, epoch) : add_argv(b, -1, i, 1, ping);
        if (!rc) rc = add_argv(b, -1, i, 3, w);
        if (!rc) rc = add_argv(b, -1, i, 3, m);
    }
    return rc;
}

/* Read the identities from the vouch batch's replies. 0, or PX_EBACKEND
 * (an error reply, or a node that is not a master: the map is stale). */
static int vouch_read(pr_ctx_t *pr, pr_shard_t *sh, int n, const char *mine_fallback) {
    const px_rcl_batch_t *b = &pr->rd.vb;
    for (int i = 0; i < n; i++) {
        redisReply *const *r = (redisReply *const[4]){b->cmd[4 * i].reply, b->cmd[4 * i + 1].reply,
                                                       b->cmd[4 * i + 2].reply, b->cmd[4 * i + 3].reply};
        for (int k = 0; k < 4; k++)
            if (r[k]->type == REDIS_REPLY_ERROR)
                return px_errf(PX_EBACKEND, pr->rd.err, sizeof pr->rd.err, "%s: %s", sh[i].addr, r[k]->str);
        char role[16], run[48], replid[48], epoch[64];
        info_field(r[0], "role", role, sizeof role);
        info_field(r[0], "run_id", run, sizeof run);
        info_field(r[0], "master_replid", replid, sizeof replid);
        if (strcmp(role, "master") != 0)
            return px_errf(PX_EBACKEND, pr->rd.err, sizeof pr->rd.err, "%s is no master (role %s)", sh[i].addr, role);
        if (r[2]->type != REDIS_REPLY_STRING || r[2]->len != 40 || r[3]->type != REDIS_REPLY_STRING || r[3]->len != 40)
            return px_errf(PX_EBACKEND, pr->rd.err, sizeof pr->rd.err, "%s: SCRIPT LOAD answered no SHA", sh[i].addr);
        memcpy(pr->rd.script_sha, r[2]->str, 41);
        memcpy(pr->rd.mark_sha, r[3]->str, 41);
        /* nil: the key was missing and holds our value now */
        snprintf(epoch, sizeof epoch, "%s", r[1]->type == REDIS_REPLY_STRING ? r[1]->str : mine_fallback);
        if (!sh[i].tag[0]) epoch[0] = '\0';
        snprintf(sh[i].id, sizeof sh[i].id, "%s/%s/%s", epoch, run, replid);
    }
    return 0;
}

/* Compare the vouched masters with the last ones: a master at a new
 * address or with another identity may lack writes the marks claim. A
 * master whose lowest slot moved has its epoch under a new tag, made
 * now: its process and replication history (run_id, master_replid) are
 * then what says it is the same dataset. */
static bool vouch_changed(const pr_ctx_t *pr, const pr_shard_t *sh, int n, char *why, size_t why_n) {
    for (int i = 0; i < n; i++) {
        if (!sh[i].tag[0]) continue;
        int j = 0;
        while (j < pr->rd.nshards && strcmp(pr->rd.shard[j].addr, sh[i].addr) != 0) j++;
        if (j == pr->rd.nshards) {
            snprintf(why, why_n, "new master %s", sh[i].addr);
            return true;
        }
        const char *was = pr->rd.shard[j].id, *is = sh[i].id;
        if (strcmp(pr->rd.shard[j].tag, sh[i].tag) != 0) {
            was = strchr(was, '/') ? strchr(was, '/') : was;
            is = strchr(is, '/') ? strchr(is, '/') : is;
        }
        if (strcmp(was, is) != 0) {
            snprintf(why, why_n, "master %s was %s, is %s", sh[i].addr, pr->rd.shard[j].id, sh[i].id);
            return true;
        }
    }
    return false;
}

/* Vouch for every master of the map (see the header). 0 or PX_EBACKEND. */
static int vouch(pr_ctx_t *pr) {
    px_rcl_t *c = pr->rd.rcl;
    pr_shard_t *sh = pr->rd.next;
    int n = 0;
    for (int attempt = 0;; attempt++) {
        unsigned long before = px_rcl_stats(c).refreshes;
        n = px_rcl_nodes(c);
        char mine[48];
        snprintf(mine, sizeof mine, "%lld-%d", (long long)px_now_ms(), (int)getpid());
        if (vouch_queue(pr, sh, n, mine)) return px_errf(PX_ENOMEM, pr->rd.err, sizeof pr->rd.err, "out of memory");
        if (px_rcl_exec(c, &pr->rd.vb, pr->rd.err, sizeof pr->rd.err)) return PX_EBACKEND;
        if (px_rcl_stats(c).refreshes == before) {
            if (vouch_read(pr, sh, n, mine)) return PX_EBACKEND;
            break;
        }
        if (attempt == 2) return px_errf(PX_EBACKEND, pr->rd.err, sizeof pr->rd.err, "the cluster kept moving");
    }
    char why[2 * PR_SHARD_ID_MAX + 64];
    bool changed = pr->rd.vouched && vouch_changed(pr, sh, n, why, sizeof why);
    bool tags_moved = n != pr->rd.nshards;
    for (int i = 0; i < n && !tags_moved; i++) tags_moved = strcmp(sh[i].tag, pr->rd.shard[i].tag) != 0;
    memcpy(pr->rd.shard, sh, (size_t)n * sizeof *sh);
    pr->rd.nshards = n;
    pr->rd.vouched = true;
    pr->rd.seen = moves(c);
    if (tags_moved) /* a master's marks key is new: every mark is written there again */
        for (int p = 0; p < PR_MAX_PARTITIONS; p++)
            for (int s = 0; s < PR_N_SRC; s++) pr->parts[p].marked[s] = -1;
    if (changed) {
        char q[sizeof why + 8];
        PX_WARN(PR_COMP, "redis master changed: repairing from the applied marks", "why=%s",
                px_log_q(q, sizeof q, why));
        pr->rd.rebuild_pending = true; /* done at the start of the next turn */
    }
    return 0;
}

int pr_redis_ensure(pr_ctx_t *pr) {
    if (pr->rd.rcl) {
        if (moves(pr->rd.rcl) == pr->rd.seen) return 0;
        if (vouch(pr) == 0) return 0;
        pr_redis_fail(pr, "vouch");
        return PX_EBACKEND;
    }
    if (px_mono_ms() < pr->rd.retry_at) return PX_EBACKEND;
    if (!pr->rd.binit) {
        px_rcl_batch_init(&pr->rd.b, 64u << 20);
        px_rcl_batch_init(&pr->rd.vb, 1u << 20);
        pr->rd.binit = true;
    }
    px_rcl_conf_t conf;
    pr_redis_conf(pr, &conf);
    pr->rd.rcl = px_rcl_new(&conf, pr->rd.err, sizeof pr->rd.err);
    if (!pr->rd.rcl || px_rcl_connect(pr->rd.rcl, pr->rd.err, sizeof pr->rd.err) || vouch(pr)) {
        pr_redis_fail(pr, pr->rd.rcl ? "connect" : "client");
        return PX_EBACKEND;
    }
    pr->rd.backoff_ms = 0;
    pr->rd.gen++; /* the writer renews its client after this one (pr_writer.c) */
    char addr[PX_CONF_STR_MAX + 48], q[sizeof addr + 8];
    PX_INFO(PR_COMP, "redis connected", "redis=%s masters=%d repair=%s",
            px_log_q(q, sizeof q,
                     px_redis_conf_describe(&pr->cfg.redis, pr->cfg.redis_host, (int)pr->cfg.redis_port, addr,
                                            sizeof addr)),
            pr->rd.nshards, pr->rd.rebuild_pending ? "yes" : "no");
    return 0;
}

/* Run the loop's batch. Replies of a client that moved meanwhile count
 * only once its masters were vouched for and none changed. 0, or
 * PX_EBACKEND (logged, counted). */
static int exec_checked(pr_ctx_t *pr, const char *what) {
    if (px_rcl_exec(pr->rd.rcl, &pr->rd.b, pr->rd.err, sizeof pr->rd.err)) {
        pr_redis_fail(pr, what);
        return PX_EBACKEND;
    }
    if (pr_redis_ensure(pr) || pr->rd.rebuild_pending) return PX_EBACKEND;
    return 0;
}

/* An error reply where data was expected: a failure, never "nothing". */
static int reply_error(pr_ctx_t *pr, const redisReply *r, const char *what) {
    if (r->type != REDIS_REPLY_ERROR) return 0;
    snprintf(pr->rd.err, sizeof pr->rd.err, "%s", r->str);
    pr_redis_fail(pr, what);
    return PX_EBACKEND;
}

int pr_redis_load(pr_ctx_t *pr, pr_entity_t **ents, size_t n) {
    char key[PX_KEY_MAX + 64], err[256];
    int rc = 0;
    if (pr_redis_ensure(pr) || pr->rd.rebuild_pending) return PX_EBACKEND;
    px_rcl_batch_reset(&pr->rd.b);
    for (size_t i = 0; i < n; i++) {
        int len = px_store_state_key(&ents[i]->st.key, key, sizeof key);
        const char *argv[] = {"HMGET", key, "wm", "blob"};
        const size_t argvlen[] = {5, (size_t)len, 2, 4};
        if (len < 0 || px_rcl_add(&pr->rd.b, key, (size_t)len, 4, argv, argvlen)) {
            snprintf(pr->rd.err, sizeof pr->rd.err, "out of memory");
            pr_redis_fail(pr, "load");
            return PX_EBACKEND;
        }
    }
    if (exec_checked(pr, "load")) return PX_EBACKEND;
    for (size_t i = 0; i < n; i++)
        if (reply_error(pr, pr->rd.b.cmd[i].reply, "load")) return PX_EBACKEND;
    for (size_t i = 0; i < n; i++) {
        const redisReply *r = pr->rd.b.cmd[i].reply;
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
    }
    px_rcl_batch_reset(&pr->rd.b);
    return rc;
}

size_t pr_redis_decisions(pr_ctx_t *pr, pr_entity_t *const *ents, size_t n) {
    size_t sent = 0;
    char ch[PX_KEY_MAX + 64];
    px_buf_t *out = &pr->scratch;
    /* a cluster publishes on the entity's shard; one server broadcasts */
    const char *pub = pr->cfg.redis.cluster ? "SPUBLISH" : "PUBLISH";
    if (!pr->rd.rcl) return 0; /* no early answer: the later notification gives it */
    px_rcl_batch_reset(&pr->rd.b);
    for (size_t i = 0; i < n; i++) {
        int len = px_view_channel(&ents[i]->st.key, ch, sizeof ch);
        if (len < 0 || px_notify_encode(&ents[i]->decisions, PX_NOTIFY_DECIDED, out)) continue;
        const char *argv[] = {pub, ch, out->data};
        const size_t argvlen[] = {strlen(pub), (size_t)len, out->len};
        if (px_rcl_add(&pr->rd.b, ch, (size_t)len, 3, argv, argvlen)) continue; /* the later notification answers */
        sent++;
    }
    if (sent && px_rcl_exec(pr->rd.rcl, &pr->rd.b, pr->rd.err, sizeof pr->rd.err)) {
        pr_redis_fail(pr, "publish");
        sent = 0;
    }
    px_rcl_batch_reset(&pr->rd.b);
    return sent;
}

/* Queue one command per vouched shard: argv[0], then key `presence:shard:
 * {tag}:<suffix>`, then argv[1..argc). */
static int queue_per_shard(pr_ctx_t *pr, const char *suffix, int argc, const char **argv) {
    char key[PX_CONF_STR_MAX + 64];
    const char *a[2 + PR_N_SRC];
    px_rcl_batch_reset(&pr->rd.b);
    for (int i = 0; i < pr->rd.nshards; i++) {
        if (!pr->rd.shard[i].tag[0]) continue;
        snprintf(key, sizeof key, "presence:shard:{%s}:%s", pr->rd.shard[i].tag, suffix);
        a[0] = argv[0];
        a[1] = key;
        for (int k = 1; k < argc; k++) a[k + 1] = argv[k];
        size_t len[2 + PR_N_SRC];
        for (int k = 0; k <= argc; k++) len[k] = strlen(a[k]);
        if (px_rcl_add(&pr->rd.b, key, strlen(key), argc + 1, a, len)) return PX_ENOMEM;
    }
    return 0;
}

/* Before the shards: the marks of one server in `presence:applied:{group}`. */
static int applied_legacy(pr_ctx_t *pr, const char *const *argv, int64_t out[PR_N_SRC]) {
    char hk[PX_CONF_STR_MAX + 32];
    snprintf(hk, sizeof hk, "presence:applied:{%s}", pr->kc.group);
    const char *a[2 + PR_N_SRC];
    size_t len[2 + PR_N_SRC];
    a[0] = "HMGET";
    a[1] = hk;
    for (int s = 0; s < PR_N_SRC; s++) a[2 + s] = argv[1 + s];
    for (int k = 0; k < 2 + PR_N_SRC; k++) len[k] = strlen(a[k]);
    px_rcl_batch_reset(&pr->rd.b);
    if (px_rcl_add(&pr->rd.b, hk, strlen(hk), 2 + PR_N_SRC, a, len) || exec_checked(pr, "applied marks") ||
        reply_error(pr, pr->rd.b.cmd[0].reply, "applied marks"))
        return PX_EBACKEND;
    const redisReply *r = pr->rd.b.cmd[0].reply;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == PR_N_SRC)
        for (int s = 0; s < PR_N_SRC; s++)
            if (r->element[s]->type == REDIS_REPLY_STRING) out[s] = strtoll(r->element[s]->str, NULL, 10);
    return 0;
}

int pr_redis_applied(pr_ctx_t *pr, int32_t partition, int64_t out[PR_N_SRC]) {
    for (int s = 0; s < PR_N_SRC; s++) out[s] = -1;
    if (pr_redis_ensure(pr) || pr->rd.rebuild_pending) return PX_EBACKEND;
    char f[PR_N_SRC][32], suffix[PX_CONF_STR_MAX + 16];
    const char *argv[1 + PR_N_SRC] = {"HMGET"};
    for (int s = 0; s < PR_N_SRC; s++) {
        snprintf(f[s], sizeof f[s], "%d:%d", s, partition);
        argv[1 + s] = f[s];
    }
    snprintf(suffix, sizeof suffix, "applied:%s", pr->kc.group);
    if (queue_per_shard(pr, suffix, 1 + PR_N_SRC, argv) || exec_checked(pr, "applied marks")) return PX_EBACKEND;
    /* the lowest of every shard's: a shard without a mark claims nothing */
    bool any = false;
    for (size_t i = 0; i < pr->rd.b.n; i++)
        if (reply_error(pr, pr->rd.b.cmd[i].reply, "applied marks")) return PX_EBACKEND;
    for (int s = 0; s < PR_N_SRC; s++) {
        int64_t lo = INT64_MAX;
        for (size_t i = 0; i < pr->rd.b.n; i++) {
            const redisReply *r = pr->rd.b.cmd[i].reply;
            bool has = r->type == REDIS_REPLY_ARRAY && r->elements == PR_N_SRC &&
                       r->element[s]->type == REDIS_REPLY_STRING;
            int64_t v = has ? strtoll(r->element[s]->str, NULL, 10) : -1;
            any |= has;
            if (v < lo) lo = v;
        }
        out[s] = pr->rd.b.n && lo != INT64_MAX ? lo : -1;
    }
    if (!any && !pr->cfg.redis.cluster) return applied_legacy(pr, argv, out);
    return 0;
}

int pr_redis_deadline_keys(pr_ctx_t *pr, int32_t partition, px_key_t **keys, size_t *n) {
    *keys = NULL;
    *n = 0;
    if (pr_redis_ensure(pr) || pr->rd.rebuild_pending) return PX_EBACKEND;
    char suffix[PX_CONF_STR_MAX + 48];
    snprintf(suffix, sizeof suffix, "deadlines:%s:%d", pr->kc.group, partition);
    const char *argv[] = {"ZRANGE", "0", "-1"};
    if (queue_per_shard(pr, suffix, 3, argv) || exec_checked(pr, "deadline index")) return PX_EBACKEND;
    size_t total = 0;
    for (size_t i = 0; i < pr->rd.b.n; i++) {
        const redisReply *r = pr->rd.b.cmd[i].reply;
        if (reply_error(pr, r, "deadline index")) return PX_EBACKEND;
        if (r->type == REDIS_REPLY_ARRAY) total += r->elements;
    }
    *keys = total ? calloc(total, sizeof **keys) : NULL;
    for (size_t i = 0; *keys && i < pr->rd.b.n; i++) {
        const redisReply *r = pr->rd.b.cmd[i].reply;
        for (size_t k = 0; r->type == REDIS_REPLY_ARRAY && k < r->elements; k++)
            if (r->element[k]->type == REDIS_REPLY_STRING &&
                px_key_parse(r->element[k]->str, r->element[k]->len, &(*keys)[*n], NULL, 0) == 0)
                (*n)++;
    }
    px_rcl_batch_reset(&pr->rd.b);
    return 0;
}
