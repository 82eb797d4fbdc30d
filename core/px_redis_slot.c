/*
 * px_redis_slot.c - hash slots, slot maps and redirections of Redis
 * Cluster. See px_redis_slot.h.
 */
#include "px_redis_slot.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "px_err.h"

uint16_t px_redis_crc16(const void *buf, size_t len) {
    const unsigned char *p = buf;
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)(p[i] << 8);
        for (int b = 0; b < 8; b++) crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

int px_redis_slot_tag(int slot, char *out, size_t out_size) {
    if (slot < 0 || slot >= PX_REDIS_SLOTS || out_size < 8) return -1;
    for (int n = 0; n < 1000000; n++) {
        int len = snprintf(out, out_size, "%d", n);
        if ((px_redis_crc16(out, (size_t)len) & 16383) == slot) return len;
    }
    return -1;
}

int px_redis_node_parse(const char *s, size_t len, px_redis_node_t *out) {
    const char *colon = NULL;
    for (size_t i = 0; i < len; i++)
        if (s[i] == ':') colon = s + i;
    if (!colon || colon == s || (size_t)(colon - s) > PX_REDIS_HOST_MAX) return -1;
    long port = 0;
    const char *end = s + len;
    if (colon + 1 == end) return -1;
    for (const char *p = colon + 1; p < end; p++) {
        if (*p < '0' || *p > '9' || port > 65535) return -1;
        port = port * 10 + (*p - '0');
    }
    if (port < 1 || port > 65535) return -1;
    memcpy(out->host, s, (size_t)(colon - s));
    out->host[colon - s] = '\0';
    out->port = (int)port;
    return 0;
}

int px_redis_nodes_parse(const char *list, const char *what, px_redis_node_t *out, int max, char *errstr,
                         size_t errstr_size) {
    int n = 0;
    for (const char *s = list ? list : ""; *s;) {
        const char *comma = strchr(s, ',');
        size_t len = comma ? (size_t)(comma - s) : strlen(s);
        while (len && (*s == ' ' || *s == '\t')) s++, len--;
        while (len && (s[len - 1] == ' ' || s[len - 1] == '\t')) len--;
        if (len && (n == max || px_redis_node_parse(s, len, &out[n]) != 0))
            return px_errf(PX_ECONFIG, errstr, errstr_size, "%s: '%.*s' is not host:port (at most %d of them)", what,
                           (int)(len > 200 ? 200 : len), s, max);
        if (len) n++;
        if (!comma) break;
        s = comma + 1;
    }
    return n;
}

int px_redis_slot(const char *key, size_t len) {
    const char *open = memchr(key, '{', len);
    if (open) {
        size_t rest = len - (size_t)(open - key) - 1;
        const char *close = memchr(open + 1, '}', rest);
        if (close && close > open + 1) return px_redis_crc16(open + 1, (size_t)(close - open - 1)) & 16383;
    }
    return px_redis_crc16(key, len) & 16383;
}

/* Index of host:port in m's nodes, added when new; -1 when full. */
static int node_index(px_redis_slots_t *m, const char *host, int port) {
    for (int i = 0; i < m->nnodes; i++)
        if (m->node[i].port == port && strcmp(m->node[i].host, host) == 0) return i;
    if (m->nnodes == PX_REDIS_NODES_MAX) return -1;
    snprintf(m->node[m->nnodes].host, sizeof m->node[0].host, "%s", host);
    m->node[m->nnodes].port = port;
    return m->nnodes++;
}

int px_redis_slots_parse(const redisReply *r, const char *default_host, px_redis_slots_t *out,
                         char *errstr, size_t errstr_size) {
    /* Built aside (about 50 KiB: on the heap) so out is unchanged on error. */
    px_redis_slots_t *t = calloc(1, sizeof *t);
    if (!t) return px_errf(PX_ENOMEM, errstr, errstr_size, "out of memory reading CLUSTER SLOTS");
    int rc = 0;
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        rc = px_errf(PX_EPROTO, errstr, errstr_size, "CLUSTER SLOTS: not an array");
        goto done;
    }
    for (int s = 0; s < PX_REDIS_SLOTS; s++) t->owner[s] = PX_REDIS_NO_NODE;
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        if (!e || e->type != REDIS_REPLY_ARRAY || e->elements < 3 || e->element[0]->type != REDIS_REPLY_INTEGER ||
            e->element[1]->type != REDIS_REPLY_INTEGER || e->element[2]->type != REDIS_REPLY_ARRAY ||
            e->element[2]->elements < 2) {
            rc = px_errf(PX_EPROTO, errstr, errstr_size, "CLUSTER SLOTS: entry %zu is not [start, end, [host, port]]", i);
            goto done;
        }
        long long lo = e->element[0]->integer, hi = e->element[1]->integer;
        if (lo < 0 || hi >= PX_REDIS_SLOTS || lo > hi) {
            rc = px_errf(PX_EPROTO, errstr, errstr_size, "CLUSTER SLOTS: entry %zu: slots %lld-%lld", i, lo, hi);
            goto done;
        }
        const redisReply *h = e->element[2]->element[0], *p = e->element[2]->element[1];
        if (h->type != REDIS_REPLY_STRING || p->type != REDIS_REPLY_INTEGER) {
            rc = px_errf(PX_EPROTO, errstr, errstr_size, "CLUSTER SLOTS: entry %zu: master is not host, port", i);
            goto done;
        }
        const char *host = h->len ? h->str : default_host;
        size_t hlen = h->len ? (size_t)h->len : strlen(default_host);
        if (hlen == 0 || hlen > PX_REDIS_HOST_MAX || memchr(host, '\0', hlen)) {
            rc = px_errf(PX_EPROTO, errstr, errstr_size, "CLUSTER SLOTS: entry %zu: bad host", i);
            goto done;
        }
        if (p->integer < 1 || p->integer > 65535) {
            rc = px_errf(PX_EPROTO, errstr, errstr_size, "CLUSTER SLOTS: entry %zu: port %lld", i, p->integer);
            goto done;
        }
        char hbuf[PX_REDIS_HOST_MAX + 1];
        memcpy(hbuf, host, hlen);
        hbuf[hlen] = '\0';
        int n = node_index(t, hbuf, (int)p->integer);
        if (n < 0) {
            rc = px_errf(PX_EPROTO, errstr, errstr_size, "CLUSTER SLOTS: more than %d masters", PX_REDIS_NODES_MAX);
            goto done;
        }
        for (long long s = lo; s <= hi; s++) t->owner[s] = (uint16_t)n;
    }
    *out = *t;
done:
    free(t);
    return rc;
}

px_redis_redirect_kind_t px_redis_redirect_parse(const char *err, size_t len, px_redis_redirect_t *out) {
    px_redis_redirect_t r = {0};
    size_t skip;
    if (len > 6 && memcmp(err, "MOVED ", 6) == 0) r.kind = PX_REDIS_MOVED, skip = 6;
    else if (len > 4 && memcmp(err, "ASK ", 4) == 0) r.kind = PX_REDIS_ASK, skip = 4;
    else return PX_REDIS_REDIRECT_NONE;
    const char *p = err + skip, *end = err + len;
    long slot = 0;
    int digits = 0;
    while (p < end && *p >= '0' && *p <= '9' && digits < 6) slot = slot * 10 + (*p++ - '0'), digits++;
    if (!digits || slot >= PX_REDIS_SLOTS || p == end || *p != ' ') return PX_REDIS_REDIRECT_NONE;
    p++;
    const char *colon = NULL;
    for (const char *q = p; q < end; q++)
        if (*q == ':') colon = q;
    if (!colon || colon + 1 == end) return PX_REDIS_REDIRECT_NONE;
    long port = 0;
    for (const char *q = colon + 1; q < end; q++) {
        if (*q < '0' || *q > '9' || port > 65535) return PX_REDIS_REDIRECT_NONE;
        port = port * 10 + (*q - '0');
    }
    size_t hlen = (size_t)(colon - p);
    if (port < 1 || port > 65535 || hlen > PX_REDIS_HOST_MAX || memchr(p, ' ', hlen) || memchr(p, '\0', hlen))
        return PX_REDIS_REDIRECT_NONE;
    r.slot = (int)slot;
    memcpy(r.to.host, p, hlen);
    r.to.host[hlen] = '\0';
    r.to.port = (int)port;
    *out = r;
    return r.kind;
}
