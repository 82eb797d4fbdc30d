/*
 * px_rsub_reader.c - the pure parts of the subscriber (px_rsub.h, "the
 * pure parts"): a bounded RESP reader over hiredis's redisReader, and what
 * a reply is to a subscriber connection (px_rsub_push_parse). No I/O, no
 * loop: px_rsub_conn.c feeds the reader what a connection reads and
 * px_rsub.c parses each reply; tests/unit/test_rsub.c feeds both hostile
 * tables and bytes one at a time.
 *
 * The bound: the reader's reply objects are built through counting
 * wrappers around hiredis's own constructors, so a reply is refused before
 * an object past max_reply bytes is allocated, whatever sizes it announces.
 */
#include "px_rsub.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "px_err.h"

/* ==== the bounded reader ================================================ */

struct px_rsub_reader {
    redisReader *r;
    redisReplyObjectFunctions base; /* hiredis's own */
    redisReplyObjectFunctions fn;   /* counting wrappers around them */
    size_t max, used;               /* bytes of the reply being built */
    bool over, failed;
};

/* Count n more bytes for the reply being built; false past the bound. */
static bool charge(px_rsub_reader_t *rd, size_t n) {
    if (rd->used > rd->max || n > rd->max - rd->used) {
        rd->over = true;
        return false;
    }
    rd->used += n;
    return true;
}

static void *w_string(const redisReadTask *t, char *str, size_t len) {
    px_rsub_reader_t *rd = t->privdata;
    if (!charge(rd, len > rd->max ? SIZE_MAX : sizeof(redisReply) + len + 1)) return NULL;
    return rd->base.createString(t, str, len);
}

static void *w_array(const redisReadTask *t, int n) {
    px_rsub_reader_t *rd = t->privdata;
    size_t cost = n < 0 || (size_t)n > rd->max / sizeof(redisReply *)
                      ? SIZE_MAX
                      : sizeof(redisReply) + (size_t)n * sizeof(redisReply *);
    if (!charge(rd, cost)) return NULL;
    return rd->base.createArray(t, n);
}

static void *w_integer(const redisReadTask *t, long long v) {
    px_rsub_reader_t *rd = t->privdata;
    if (!charge(rd, sizeof(redisReply))) return NULL;
    return rd->base.createInteger(t, v);
}

static void *w_nil(const redisReadTask *t) {
    px_rsub_reader_t *rd = t->privdata;
    if (!charge(rd, sizeof(redisReply))) return NULL;
    return rd->base.createNil(t);
}

px_rsub_reader_t *px_rsub_reader_new(size_t max_reply) {
    px_rsub_reader_t *rd = calloc(1, sizeof *rd);
    if (!rd) return NULL;
    rd->r = redisReaderCreate();
    if (!rd->r) {
        free(rd);
        return NULL;
    }
    rd->base = *rd->r->fn;
    rd->fn = (redisReplyObjectFunctions){w_string, w_array, w_integer, w_nil, rd->base.freeObject};
    rd->r->fn = &rd->fn;
    rd->r->privdata = rd;
    rd->max = max_reply;
    return rd;
}

void px_rsub_reader_free(px_rsub_reader_t *rd) {
    if (!rd) return;
    redisReaderFree(rd->r);
    free(rd);
}

static int reader_error(px_rsub_reader_t *rd, char *errstr, size_t n) {
    rd->failed = true;
    if (rd->over) return px_errf(PX_ENOMEM, errstr, n, "a reply over %zu bytes", rd->max);
    return px_errf(PX_EPROTO, errstr, n, "malformed reply: %s", rd->r->errstr[0] ? rd->r->errstr : "?");
}

int px_rsub_reader_feed(px_rsub_reader_t *rd, const char *buf, size_t len, char *errstr, size_t errstr_size) {
    if (rd->failed) return reader_error(rd, errstr, errstr_size);
    if (len > PX_RSUB_FEED_MAX)
        return px_errf(PX_EINVAL, errstr, errstr_size, "feed %zu bytes at most, not %zu", (size_t)PX_RSUB_FEED_MAX,
                       len);
    if (redisReaderFeed(rd->r, buf, len) != REDIS_OK) return reader_error(rd, errstr, errstr_size);
    return 0;
}

int px_rsub_reader_next(px_rsub_reader_t *rd, redisReply **out, char *errstr, size_t errstr_size) {
    *out = NULL;
    if (rd->failed) return reader_error(rd, errstr, errstr_size);
    void *rep = NULL;
    if (redisReaderGetReply(rd->r, &rep) != REDIS_OK) return reader_error(rd, errstr, errstr_size);
    if (rep) {
        rd->used = 0;
        *out = rep;
        return 1;
    }
    if (rd->r->len - rd->r->pos > rd->max) {
        rd->over = true;
        return reader_error(rd, errstr, errstr_size);
    }
    return 0;
}

/* ==== pushes ============================================================ */

static bool is_str(const redisReply *e) { return e && e->type == REDIS_REPLY_STRING; }

static bool name_is(const redisReply *e, const char *name) {
    size_t n = strlen(name);
    return (size_t)e->len == n && memcmp(e->str, name, n) == 0;
}

px_rsub_push_kind_t px_rsub_push_parse(const redisReply *r, px_rsub_push_t *out) {
    memset(out, 0, sizeof *out);
    if (!r) return PX_RSUB_PUSH_INVALID;
    if (r->type == REDIS_REPLY_ERROR) {
        out->data = r->str;
        out->data_len = (size_t)r->len;
        return out->kind = PX_RSUB_PUSH_ERROR;
    }
    if (r->type == REDIS_REPLY_STATUS) {
        if (r->len == 4 && memcmp(r->str, "PONG", 4) == 0) return out->kind = PX_RSUB_PUSH_PONG;
        return PX_RSUB_PUSH_INVALID;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 || !is_str(r->element[0])) return PX_RSUB_PUSH_INVALID;
    const redisReply *k = r->element[0];
    if (r->elements == 2 && name_is(k, "pong") && is_str(r->element[1])) {
        out->data = r->element[1]->str;
        out->data_len = (size_t)r->element[1]->len;
        return out->kind = PX_RSUB_PUSH_PONG;
    }
    if (r->elements != 3 || !is_str(r->element[1])) return PX_RSUB_PUSH_INVALID;
    const redisReply *third = r->element[2];
    px_rsub_push_kind_t kind = PX_RSUB_PUSH_INVALID;
    bool sharded = false;
    if (name_is(k, "message") || (sharded = name_is(k, "smessage"))) {
        if (!is_str(third)) return PX_RSUB_PUSH_INVALID;
        out->data = third->str;
        out->data_len = (size_t)third->len;
        kind = PX_RSUB_PUSH_MESSAGE;
    } else if (name_is(k, "subscribe") || (sharded = name_is(k, "ssubscribe"))) {
        kind = PX_RSUB_PUSH_SUBSCRIBED;
    } else if (name_is(k, "unsubscribe") || (sharded = name_is(k, "sunsubscribe"))) {
        kind = PX_RSUB_PUSH_UNSUBSCRIBED;
    } else {
        return PX_RSUB_PUSH_INVALID;
    }
    if (kind != PX_RSUB_PUSH_MESSAGE) {
        if (third->type != REDIS_REPLY_INTEGER) return PX_RSUB_PUSH_INVALID;
        out->count = third->integer;
    }
    out->sharded = sharded;
    out->channel = r->element[1]->str;
    out->channel_len = (size_t)r->element[1]->len;
    return out->kind = kind;
}
