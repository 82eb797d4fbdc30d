/*
 * px_redis_cluster.c - blocking slot-aware Redis client. See
 * px_redis_cluster.h for the contract.
 *
 * State: the slot map (px_redis_slots_t: masters and the owner of every
 * slot) and one hiredis connection per master, at the same index. A map
 * refresh keeps the connections of masters that stay (matched by
 * host:port) and closes the others.
 */
#include "px_redis_cluster.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "px_err.h"
#include "px_redis_addr.h"
#include "px_redis_sentinel.h"

#define PX_RCL_SEEDS_MAX 16
#define PX_RCL_ATTEMPTS_MAX 16

struct px_rcl {
    px_redis_node_t seed[PX_RCL_SEEDS_MAX];
    int nseeds;
    bool cluster;
    long timeout_ms, retry_ms;
    px_redis_node_t sentinel[PX_SENTINELS_MAX]; /* a single server behind Sentinels */
    int nsentinels;
    char master_name[PX_REDIS_HOST_MAX + 1];
    bool master_known; /* the Sentinels have named a master once */
    int db;
    px_redis_slots_t map;
    redisContext *conn[PX_REDIS_NODES_MAX]; /* by map node index */
    px_rcl_stats_t stats;
};

static struct timeval tv_of(long ms) {
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    return tv;
}

static long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)(ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

px_rcl_t *px_rcl_new(const px_rcl_conf_t *conf, char *errstr, size_t errstr_size) {
    px_rcl_t *c = calloc(1, sizeof *c);
    if (!c) {
        px_errf(PX_ENOMEM, errstr, errstr_size, "out of memory");
        return NULL;
    }
    c->cluster = conf->cluster;
    c->timeout_ms = conf->timeout_ms > 0 ? conf->timeout_ms : 2000;
    c->retry_ms = conf->retry_ms > 0 ? conf->retry_ms : 5000;
    c->db = conf->db;
    if (c->cluster && c->db) {
        px_errf(PX_ECONFIG, errstr, errstr_size, "a Redis Cluster has database 0 only, not %d", c->db);
        free(c);
        return NULL;
    }
    if (conf->host && conf->host[0]) {
        snprintf(c->seed[0].host, sizeof c->seed[0].host, "%s", conf->host);
        c->seed[0].port = conf->port;
        c->nseeds = 1;
    }
    if (c->cluster && conf->seeds) {
        int n = px_redis_nodes_parse(conf->seeds, "redis seeds", c->seed + c->nseeds, PX_RCL_SEEDS_MAX - c->nseeds,
                                     errstr, errstr_size);
        if (n < 0) {
            free(c);
            return NULL;
        }
        c->nseeds += n;
    }
    if (!c->cluster && conf->sentinels && conf->sentinels[0]) {
        c->nsentinels = px_redis_nodes_parse(conf->sentinels, "redis.sentinels", c->sentinel, PX_SENTINELS_MAX,
                                             errstr, errstr_size);
        if (c->nsentinels >= 0 && (!conf->master_name || !conf->master_name[0] ||
                                   strlen(conf->master_name) > PX_REDIS_HOST_MAX))
            c->nsentinels = px_errf(PX_ECONFIG, errstr, errstr_size,
                                    "redis.sentinels needs redis.master_name (1 to %d bytes)", PX_REDIS_HOST_MAX);
        if (c->nsentinels < 0) {
            free(c);
            return NULL;
        }
        snprintf(c->master_name, sizeof c->master_name, "%s", conf->master_name);
        if (c->nseeds == 0) c->nseeds = 1; /* the map's node comes from the Sentinels */
    }
    if (c->nseeds == 0) {
        px_errf(PX_ECONFIG, errstr, errstr_size, "no Redis server given");
        free(c);
        return NULL;
    }
    for (int i = 0; i < PX_REDIS_SLOTS; i++) c->map.owner[i] = PX_REDIS_NO_NODE;
    if (!c->cluster) { /* one node owns every slot */
        c->map.node[0] = c->seed[0];
        c->map.nnodes = 1;
        memset(c->map.owner, 0, sizeof c->map.owner);
    }
    return c;
}

static void drop(px_rcl_t *c, int i) {
    if (c->conn[i]) redisFree(c->conn[i]);
    c->conn[i] = NULL;
}

void px_rcl_free(px_rcl_t *c) {
    if (!c) return;
    for (int i = 0; i < PX_REDIS_NODES_MAX; i++) drop(c, i);
    free(c);
}

const char *px_rcl_node_name(const px_rcl_t *c, int i, char *buf, size_t n) {
    if (i < 0 || i >= c->map.nnodes) return "(no node)";
    return px_redis_addr(c->map.node[i].host, c->map.node[i].port, buf, n);
}

/* A connection to a node, made on first use. */
static redisContext *open_node(const px_redis_node_t *nd, long timeout_ms, char *errstr, size_t errstr_size) {
    char name[PX_REDIS_HOST_MAX + 16];
    redisContext *r = px_redis_connect(nd->host, nd->port, tv_of(timeout_ms));
    if (!r || r->err) {
        px_errf(PX_EBACKEND, errstr, errstr_size, "redis %s: %s", px_redis_addr(nd->host, nd->port, name, sizeof name),
                r ? r->errstr : "out of memory");
        if (r) redisFree(r);
        return NULL;
    }
    redisSetTimeout(r, tv_of(timeout_ms));
    return r;
}

/* Node i's connection, made (and its database selected) on first use. */
static redisContext *conn_of(px_rcl_t *c, int i, char *errstr, size_t errstr_size) {
    if (!c->conn[i]) {
        redisContext *r = open_node(&c->map.node[i], c->timeout_ms, errstr, errstr_size);
        redisReply *rep = r && c->db ? redisCommand(r, "SELECT %d", c->db) : NULL;
        if (r && c->db && (!rep || rep->type != REDIS_REPLY_STATUS)) {
            char name[PX_REDIS_HOST_MAX + 16];
            px_errf(PX_EBACKEND, errstr, errstr_size, "redis %s: SELECT %d: %s",
                    px_rcl_node_name(c, i, name, sizeof name), c->db,
                    rep && rep->type == REDIS_REPLY_ERROR ? rep->str : r->errstr);
            redisFree(r);
            r = NULL;
        }
        if (rep) freeReplyObject(rep);
        c->conn[i] = r;
        if (c->conn[i]) c->stats.reconnects++;
    }
    return c->conn[i];
}

/* Adopt map m: keep connections of masters that stay. */
static void adopt(px_rcl_t *c, const px_redis_slots_t *m) {
    redisContext *keep[PX_REDIS_NODES_MAX] = {0};
    for (int j = 0; j < m->nnodes; j++)
        for (int i = 0; i < c->map.nnodes; i++)
            if (c->conn[i] && m->node[j].port == c->map.node[i].port &&
                strcmp(m->node[j].host, c->map.node[i].host) == 0) {
                keep[j] = c->conn[i];
                c->conn[i] = NULL;
            }
    for (int i = 0; i < PX_REDIS_NODES_MAX; i++) drop(c, i);
    memcpy(c->conn, keep, sizeof keep);
    c->map = *m;
}

/* Ask one node for CLUSTER SLOTS; 0 with *m filled. */
static int slots_from(redisContext *r, const char *host, px_redis_slots_t *m, char *errstr, size_t errstr_size) {
    redisReply *rep = redisCommand(r, "CLUSTER SLOTS");
    if (!rep) return px_errf(PX_EBACKEND, errstr, errstr_size, "CLUSTER SLOTS: %s", r->errstr);
    int rc = rep->type == REDIS_REPLY_ERROR
                 ? px_errf(PX_EBACKEND, errstr, errstr_size, "CLUSTER SLOTS: %s", rep->str)
                 : px_redis_slots_parse(rep, host, m, errstr, errstr_size);
    freeReplyObject(rep);
    return rc;
}

/* Ask the Sentinels for the master; a new one replaces the map's node
 * (and its connection). */
static int sentinel_refresh(px_rcl_t *c, char *errstr, size_t errstr_size) {
    px_redis_node_t m;
    char why[512];
    if (px_sentinel_master(c->sentinel, c->nsentinels, c->master_name, c->timeout_ms, &m, NULL, why, sizeof why))
        return px_errf(PX_EBACKEND, errstr, errstr_size, "redis master '%s': %s", c->master_name, why);
    c->stats.refreshes++;
    if (c->master_known && m.port == c->map.node[0].port && strcmp(m.host, c->map.node[0].host) == 0) return 0;
    if (c->master_known) c->stats.master_changes++;
    drop(c, 0);
    c->map.node[0] = m;
    c->master_known = true;
    return 0;
}

int px_rcl_refresh(px_rcl_t *c, char *errstr, size_t errstr_size) {
    if (!c->cluster) return c->nsentinels ? sentinel_refresh(c, errstr, errstr_size) : 0;
    px_redis_slots_t *m = malloc(sizeof *m);
    if (!m) return px_errf(PX_ENOMEM, errstr, errstr_size, "out of memory");
    int rc = PX_EBACKEND;
    /* Known masters first (they have connections), then the seeds. */
    for (int i = 0; i < c->map.nnodes && rc; i++) {
        redisContext *r = conn_of(c, i, errstr, errstr_size);
        if (r && (rc = slots_from(r, c->map.node[i].host, m, errstr, errstr_size)) && !r->err) continue;
        if (rc) drop(c, i);
    }
    for (int i = 0; i < c->nseeds && rc; i++) {
        redisContext *r = open_node(&c->seed[i], c->timeout_ms, errstr, errstr_size);
        if (!r) continue;
        rc = slots_from(r, c->seed[i].host, m, errstr, errstr_size);
        redisFree(r);
    }
    if (rc == 0) {
        adopt(c, m);
        c->stats.refreshes++;
    }
    free(m);
    return rc;
}

int px_rcl_connect(px_rcl_t *c, char *errstr, size_t errstr_size) {
    if (!c->cluster && c->nsentinels && sentinel_refresh(c, errstr, errstr_size)) return PX_EBACKEND;
    if (!c->cluster) return conn_of(c, 0, errstr, errstr_size) ? 0 : PX_EBACKEND;
    int rc = px_rcl_refresh(c, errstr, errstr_size);
    if (rc) return rc;
    for (int s = 0; s < PX_REDIS_SLOTS; s++)
        if (c->map.owner[s] == PX_REDIS_NO_NODE)
            return px_errf(PX_EBACKEND, errstr, errstr_size, "redis cluster: slot %d has no master", s);
    return 0;
}

int px_rcl_nodes(const px_rcl_t *c) { return c->map.nnodes; }
const px_redis_node_t *px_rcl_node(const px_rcl_t *c, int i) {
    return i >= 0 && i < c->map.nnodes ? &c->map.node[i] : NULL;
}
int px_rcl_owner(const px_rcl_t *c, int slot) {
    if (slot < 0 || slot >= PX_REDIS_SLOTS || c->map.owner[slot] == PX_REDIS_NO_NODE) return -1;
    return c->map.owner[slot];
}
px_rcl_stats_t px_rcl_stats(const px_rcl_t *c) { return c->stats; }

/* ---- batches ----------------------------------------------------------- */

void px_rcl_batch_init(px_rcl_batch_t *b, size_t max_bytes) {
    memset(b, 0, sizeof *b);
    px_buf_init(&b->buf, max_bytes);
}

void px_rcl_batch_reset(px_rcl_batch_t *b) {
    for (size_t i = 0; i < b->n; i++)
        if (b->cmd[i].reply) freeReplyObject(b->cmd[i].reply);
    b->n = 0;
    px_buf_reset(&b->buf);
}

void px_rcl_batch_term(px_rcl_batch_t *b) {
    px_rcl_batch_reset(b);
    free(b->cmd);
    px_buf_term(&b->buf);
    memset(b, 0, sizeof *b);
}

int px_rcl_add_formatted(px_rcl_batch_t *b, int slot, int node, const char *cmd, size_t len) {
    size_t off = b->buf.len;
    if (px_buf_append(&b->buf, cmd, len)) return PX_ENOMEM;
    if (px_rcl_add_appended(b, slot, node, off) == 0) return 0;
    b->buf.len = off;
    return PX_ENOMEM;
}

int px_rcl_add_appended(px_rcl_batch_t *b, int slot, int node, size_t off) {
    if (b->n == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 64;
        px_rcl_cmd_t *p = realloc(b->cmd, cap * sizeof *p);
        if (!p) return PX_ENOMEM;
        b->cmd = p;
        b->cap = cap;
    }
    b->cmd[b->n++] = (px_rcl_cmd_t){.slot = slot, .node = node, .off = off, .len = b->buf.len - off, .ask_node = -1,
                                    .sent = -1};
    return 0;
}

int px_rcl_add(px_rcl_batch_t *b, const char *key, size_t keylen, int argc, const char **argv,
               const size_t *argvlen) {
    char *cmd = NULL;
    long long len = redisFormatCommandArgv(&cmd, argc, argv, argvlen);
    if (len < 0) return PX_ENOMEM;
    int rc = px_rcl_add_formatted(b, px_redis_slot(key, keylen), -1, cmd, (size_t)len);
    redisFreeCommand(cmd);
    return rc;
}

/* ---- exec -------------------------------------------------------------- */

static int node_by_addr(const px_rcl_t *c, const px_redis_node_t *to, int asked) {
    const char *host = to->host[0] ? to->host : c->map.node[asked].host;
    for (int i = 0; i < c->map.nnodes; i++)
        if (c->map.node[i].port == to->port && strcmp(c->map.node[i].host, host) == 0) return i;
    return -1;
}

/* Where command k goes now, or -1 when the map has no owner. */
static int target(const px_rcl_t *c, const px_rcl_cmd_t *k) {
    if (k->ask_node >= 0) return k->ask_node;
    if (k->slot < 0) return k->node < c->map.nnodes ? k->node : -1;
    return px_rcl_owner(c, k->slot);
}

typedef struct {
    bool refresh, wait;
    char last[256];
} round_t;

static void round_io_fail(px_rcl_t *c, int i, redisContext *r, round_t *rd) {
    char name[PX_REDIS_HOST_MAX + 16];
    snprintf(rd->last, sizeof rd->last, "redis %.100s: %.120s", px_rcl_node_name(c, i, name, sizeof name),
             r->errstr[0] ? r->errstr : "connection lost");
    drop(c, i);
    rd->refresh = rd->wait = true;
}

/* Write node i its pending commands (they are marked sent to i); they are
 * answered in round_read. */
static void round_send(px_rcl_t *c, px_rcl_batch_t *b, int i, round_t *rd) {
    redisContext *r = conn_of(c, i, rd->last, sizeof rd->last);
    if (!r) {
        rd->refresh = rd->wait = true;
        return;
    }
    for (size_t k = 0; k < b->n; k++) {
        px_rcl_cmd_t *cmd = &b->cmd[k];
        if (cmd->reply || cmd->sent >= 0 || target(c, cmd) != i) continue;
        if (cmd->ask_node >= 0) redisAppendCommand(r, "ASKING");
        redisAppendFormattedCommand(r, b->buf.data + cmd->off, cmd->len);
        cmd->sent = i;
    }
    int done = 0;
    while (!done)
        if (redisBufferWrite(r, &done) != REDIS_OK) {
            round_io_fail(c, i, r, rd);
            return;
        }
}

/* Read the answers of the commands sent to node i this round. */
static void round_read(px_rcl_t *c, px_rcl_batch_t *b, int i, round_t *rd) {
    redisContext *r = c->conn[i];
    for (size_t k = 0; k < b->n; k++) {
        px_rcl_cmd_t *cmd = &b->cmd[k];
        if (cmd->sent != i) continue;
        cmd->sent = -1;
        if (!r) continue; /* its connection failed: sent again next round */
        bool asking = cmd->ask_node >= 0;
        redisReply *rep = NULL;
        if (asking && (redisGetReply(r, (void **)&rep) != REDIS_OK || !rep)) goto io;
        if (asking) freeReplyObject(rep), rep = NULL;
        if (redisGetReply(r, (void **)&rep) != REDIS_OK || !rep) goto io;
        cmd->ask_node = -1;
        px_redis_redirect_t rr;
        px_redis_redirect_kind_t kind = rep->type == REDIS_REPLY_ERROR
                                            ? px_redis_redirect_parse(rep->str, (size_t)rep->len, &rr)
                                            : PX_REDIS_REDIRECT_NONE;
        if (kind == PX_REDIS_MOVED) {
            c->stats.moved++;
            rd->refresh = true;
        } else if (kind == PX_REDIS_ASK) {
            c->stats.ask++;
            cmd->ask_node = node_by_addr(c, &rr.to, i);
            if (cmd->ask_node < 0) rd->refresh = true;
        } else if (rep->type == REDIS_REPLY_ERROR &&
                   (strncmp(rep->str, "TRYAGAIN", 8) == 0 || strncmp(rep->str, "CLUSTERDOWN", 11) == 0 ||
                    strncmp(rep->str, "LOADING", 7) == 0 || strncmp(rep->str, "MASTERDOWN", 10) == 0 ||
                    strncmp(rep->str, "READONLY", 8) == 0)) {
            c->stats.tryagain++;
            rd->wait = true;
            rd->refresh |= rep->str[0] == 'C' || rep->str[0] == 'M' || rep->str[0] == 'R';
        } else {
            cmd->reply = rep;
            continue;
        }
        snprintf(rd->last, sizeof rd->last, "%.200s", rep->str);
        freeReplyObject(rep);
        continue;
    io:
        round_io_fail(c, i, r, rd);
        r = NULL;
    }
}

int px_rcl_exec(px_rcl_t *c, px_rcl_batch_t *b, char *errstr, size_t errstr_size) {
    long deadline = now_ms() + c->retry_ms;
    round_t rd = {0};
    for (int attempt = 0; attempt < PX_RCL_ATTEMPTS_MAX; attempt++) {
        bool sent_to[PX_REDIS_NODES_MAX] = {0}, pending = false, unowned = false;
        for (size_t k = 0; k < b->n; k++) {
            if (b->cmd[k].reply) continue;
            pending = true;
            int t = target(c, &b->cmd[k]);
            if (t < 0) unowned = true;
            else sent_to[t] = true;
        }
        if (!pending) return 0;
        if (attempt && (rd.wait || unowned)) {
            long left = deadline - now_ms();
            if (left <= 0) break;
            sleep_ms(left < 100L * attempt ? left : 100L * attempt);
        }
        rd.refresh = unowned;
        rd.wait = false;
        for (int i = 0; i < c->map.nnodes; i++)
            if (sent_to[i]) round_send(c, b, i, &rd);
        for (int i = 0; i < c->map.nnodes; i++)
            if (sent_to[i]) round_read(c, b, i, &rd);
        if (rd.refresh && (c->cluster || c->nsentinels) && px_rcl_refresh(c, rd.last, sizeof rd.last) != 0)
            rd.wait = true;
        if (now_ms() > deadline) break;
    }
    size_t left = 0;
    for (size_t k = 0; k < b->n; k++) left += b->cmd[k].reply == NULL;
    if (!left) return 0;
    return px_errf(PX_EBACKEND, errstr, errstr_size, "redis: %zu of %zu commands unanswered: %s", left, b->n,
                   rd.last[0] ? rd.last : "no master for their slots");
}
