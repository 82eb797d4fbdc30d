/*
 * px_redis_sentinel.c - asking Redis Sentinels where the master is. See
 * px_redis_sentinel.h for the contract.
 */
#include "px_redis_sentinel.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#include "px_err.h"
#include "px_redis_addr.h"

/* A host as a Sentinel may name it: 1..PX_REDIS_HOST_MAX bytes, none a
 * NUL, a space or a control character (an address or a DNS name). */
static bool host_ok(const redisReply *h) {
    if (h->type != REDIS_REPLY_STRING || h->len == 0 || h->len > PX_REDIS_HOST_MAX) return false;
    for (size_t i = 0; i < h->len; i++) {
        unsigned char c = (unsigned char)h->str[i];
        if (c <= ' ' || c == 0x7F) return false;
    }
    return true;
}

/* A port as a bulk string: 1..5 digits, 1..65535. -1 otherwise. */
static int port_of(const redisReply *p) {
    if (p->type != REDIS_REPLY_STRING || p->len == 0 || p->len > 5) return -1;
    int port = 0;
    for (size_t i = 0; i < p->len; i++) {
        if (p->str[i] < '0' || p->str[i] > '9') return -1;
        port = port * 10 + (p->str[i] - '0');
    }
    return port >= 1 && port <= 65535 ? port : -1;
}

int px_sentinel_addr_parse(const redisReply *r, px_redis_node_t *out, char *errstr, size_t errstr_size) {
    if (!r) return px_errf(PX_EPROTO, errstr, errstr_size, "no reply");
    if (r->type == REDIS_REPLY_NIL) return px_errf(PX_EINVAL, errstr, errstr_size, "no master of that name");
    if (r->type == REDIS_REPLY_ERROR)
        return px_errf(PX_EBACKEND, errstr, errstr_size, "%.*s", (int)(r->len > 200 ? 200 : r->len), r->str);
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2)
        return px_errf(PX_EPROTO, errstr, errstr_size, "reply is not [host, port] (type %d, %zu elements)",
                       r->type, r->type == REDIS_REPLY_ARRAY ? r->elements : 0);
    if (!host_ok(r->element[0])) return px_errf(PX_EPROTO, errstr, errstr_size, "reply has no valid host");
    int port = port_of(r->element[1]);
    if (port < 0) return px_errf(PX_EPROTO, errstr, errstr_size, "reply has no valid port");
    memcpy(out->host, r->element[0]->str, r->element[0]->len);
    out->host[r->element[0]->len] = '\0';
    out->port = port;
    return 0;
}

px_redis_role_t px_redis_role_parse(const redisReply *r) {
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements == 0) return PX_REDIS_ROLE_UNKNOWN;
    const redisReply *e = r->element[0];
    if (e->type != REDIS_REPLY_STRING && e->type != REDIS_REPLY_STATUS) return PX_REDIS_ROLE_UNKNOWN;
    static const struct {
        const char *word;
        px_redis_role_t role;
    } roles[] = {{"master", PX_REDIS_ROLE_MASTER}, {"slave", PX_REDIS_ROLE_REPLICA},
                 {"sentinel", PX_REDIS_ROLE_SENTINEL}};
    for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++)
        if (e->len == strlen(roles[i].word) && memcmp(e->str, roles[i].word, e->len) == 0) return roles[i].role;
    return PX_REDIS_ROLE_UNKNOWN;
}

/* Append "; " (when not first) and a formatted note to errstr, cut to fit. */
static void note(char *errstr, size_t errstr_size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void note(char *errstr, size_t errstr_size, const char *fmt, ...) {
    if (!errstr || !errstr_size) return;
    size_t len = strnlen(errstr, errstr_size - 1);
    if (len && len + 2 < errstr_size) {
        memcpy(errstr + len, "; ", 3);
        len += 2;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errstr + len, errstr_size - len, fmt, ap);
    va_end(ap);
}

static redisContext *open_within(const px_redis_node_t *nd, long timeout_ms) {
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    redisContext *c = px_redis_connect(nd->host, nd->port, tv);
    if (c && !c->err) redisSetTimeout(c, tv);
    return c;
}

/* The role of the server at nd, asked within timeout_ms; when it cannot
 * be had, *why says why. */
static px_redis_role_t role_of(const px_redis_node_t *nd, long timeout_ms, const char **why) {
    redisContext *c = open_within(nd, timeout_ms);
    px_redis_role_t role = PX_REDIS_ROLE_UNKNOWN;
    *why = !c ? "out of memory" : c->err ? "unreachable" : "no answer to ROLE";
    if (c && !c->err) {
        redisReply *r = redisCommand(c, "ROLE");
        role = px_redis_role_parse(r);
        if (r) *why = r->type == REDIS_REPLY_ERROR ? "ROLE refused" : "an unknown role";
        if (r) freeReplyObject(r);
    }
    if (c) redisFree(c);
    return role;
}

/* Ask one Sentinel. 0 with *master filled; else PX_EIO when the Sentinel
 * could not be asked, or the class of its answer, with a note naming it
 * appended to errstr. */
static int ask_one(const px_redis_node_t *s, const char *name, long timeout_ms, px_redis_node_t *master,
                   char *errstr, size_t errstr_size) {
    char sname[PX_REDIS_HOST_MAX + 16], why[256] = "";
    px_redis_addr(s->host, s->port, sname, sizeof sname);
    redisContext *c = open_within(s, timeout_ms);
    if (!c || c->err) {
        note(errstr, errstr_size, "sentinel %s: %s", sname, c ? c->errstr : "out of memory");
        if (c) redisFree(c);
        return PX_EIO;
    }
    redisReply *r = redisCommand(c, "SENTINEL get-master-addr-by-name %s", name);
    int rc = r ? px_sentinel_addr_parse(r, master, why, sizeof why) : PX_EIO;
    if (!r) snprintf(why, sizeof why, "%s", c->errstr[0] ? c->errstr : "no answer");
    if (r) freeReplyObject(r);
    redisFree(c);
    if (rc) {
        note(errstr, errstr_size, "sentinel %s: %s", sname, why);
        return rc;
    }
    const char *role_why = "";
    px_redis_role_t role = role_of(master, timeout_ms, &role_why);
    if (role != PX_REDIS_ROLE_MASTER) {
        char mname[PX_REDIS_HOST_MAX + 16];
        note(errstr, errstr_size, "sentinel %s names %s, which is not a master (%s)", sname,
             px_redis_addr(master->host, master->port, mname, sizeof mname),
             role == PX_REDIS_ROLE_REPLICA ? "a replica" : role == PX_REDIS_ROLE_SENTINEL ? "a Sentinel" : role_why);
        return PX_EBACKEND;
    }
    return 0;
}

int px_sentinel_master(const px_redis_node_t *sentinel, int n, const char *name, long timeout_ms,
                       px_redis_node_t *master, int *which, char *errstr, size_t errstr_size) {
    if (errstr && errstr_size) errstr[0] = '\0';
    if (n <= 0 || !name || !name[0])
        return px_errf(PX_ECONFIG, errstr, errstr_size, "redis: Sentinels need redis.sentinels and redis.master_name");
    if (timeout_ms <= 0) timeout_ms = 1000;
    int unknown = 0, other = 0;
    for (int i = 0; i < n; i++) {
        px_redis_node_t m;
        int rc = ask_one(&sentinel[i], name, timeout_ms, &m, errstr, errstr_size);
        if (rc == 0) {
            *master = m;
            if (which) *which = i;
            if (errstr && errstr_size) errstr[0] = '\0';
            return 0;
        }
        unknown += rc == PX_EINVAL;
        other += rc != PX_EINVAL && rc != PX_EIO;
    }
    return unknown && !other ? PX_EINVAL : PX_EBACKEND;
}
