/*
 * ctl_produce.c - `presencectl produce lifecycle|presence|lock`: publish one
 * input record, as the application's write pipeline (lifecycle MUTATING /
 * MUTATED with busyBy, write id and version) or, for tests and demos, as a
 * gateway would (presence SUB/HB/UNSUB, lock LOCK/UNLOCK; EXPIRE with
 * --expires-at). The event is validated by core (px_event_validate) and
 * encoded by the one Avro codec (or as lifecycle JSON with --json); the
 * producer is idempotent and uses murmur2_random, the partitioner of
 * Kafka's Java clients that every producer of presence uses, so a key lands
 * on the same partition whoever produces it and one entity's records stay
 * in order. Prints topic, partition and offset once Kafka acknowledged the
 * record (and the bootstrap servers); exit 2 if it did not, or if Kafka
 * did not answer within timeout_ms (--timeout).
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "px_err.h"
#include "px_key.h"
#include "px_proto.h"
#include "px_time.h"
#include "px_when.h"

/* Copy flag `name` into dst[cap]; false (after a message) if too long. */
static bool take(ctl_t *c, const char *name, char *dst, size_t cap) {
    const char *v = ctl_flag(c, name);
    if (!v) return true;
    if (strlen(v) >= cap) {
        fprintf(stderr, "presencectl produce: --%s is longer than %zu bytes\n", name, cap - 1);
        return false;
    }
    memcpy(dst, v, strlen(v) + 1);
    return true;
}

static int build(ctl_t *c, px_kind_t kind, px_event_t *ev) {
    char err[256], up[32];
    const char *key = ctl_flag(c, "key"), *type = ctl_flag(c, "type"), *v;
    px_event_init(ev, kind);
    if (!key || !type) {
        fprintf(stderr, "presencectl produce: --key T:E:I and --type are needed\n");
        return CTL_EXIT_ERR;
    }
    if (px_key_parse(key, strlen(key), &ev->key, err, sizeof err)) {
        fprintf(stderr, "presencectl produce: --key: %s\n", err);
        return CTL_EXIT_ERR;
    }
    size_t i = 0;
    for (; type[i] && i < sizeof up - 1; i++) up[i] = (char)toupper((unsigned char)type[i]);
    up[i] = '\0';
    if ((ev->type = px_event_type_parse(kind, up)) < 0) {
        char list[128];
        size_t ll = 0;
        for (int t = 0; t < px_event_type_count(kind) && ll < sizeof list; t++)
            ll += (size_t)snprintf(list + ll, sizeof list - ll, "%s%s", t ? ", " : "", px_event_type_name(kind, t));
        fprintf(stderr, "presencectl produce: --type %.32s is not a %s type (%s; any case)\n", type,
                px_kind_name(kind), list);
        return CTL_EXIT_ERR;
    }
    int64_t now = px_now_ms();
    ev->ts_ms = now;
    if ((v = ctl_flag(c, "ts")) && ctl_when(c, "ts", v, now, &ev->ts_ms)) return CTL_EXIT_ERR;
    if ((v = ctl_flag(c, "expires-at")) && ctl_when(c, "expires-at", v, now, &ev->expires_at_ms))
        return CTL_EXIT_ERR;
    if (!take(c, "tab", ev->tab_id, sizeof ev->tab_id) || !take(c, "user", ev->user_id, sizeof ev->user_id) ||
        !take(c, "name", ev->user_name, sizeof ev->user_name) || !take(c, "field", ev->field, sizeof ev->field) ||
        !take(c, "cursor", ev->cursor, sizeof ev->cursor) ||
        !take(c, "request-id", ev->request_id, sizeof ev->request_id) ||
        !take(c, "busy-by", ev->busy_by, sizeof ev->busy_by) || !take(c, "write-id", ev->write_id, sizeof ev->write_id))
        return CTL_EXIT_ERR;
    ev->dirty = ctl_flag_set(c, "dirty");
    if ((v = ctl_flag(c, "mode"))) {
        if (strcmp(v, "view") == 0 || strcmp(v, "VIEW") == 0) ev->mode = PX_MODE_VIEW;
        else if (strcmp(v, "edit") == 0 || strcmp(v, "EDIT") == 0) ev->mode = PX_MODE_EDIT;
        else {
            fprintf(stderr, "presencectl produce: --mode must be view or edit\n");
            return CTL_EXIT_ERR;
        }
    }
    if ((v = ctl_flag(c, "status"))) {
        if (strcmp(v, "online") == 0 || strcmp(v, "ONLINE") == 0) ev->status = PX_STATUS_ONLINE;
        else if (strcmp(v, "away") == 0 || strcmp(v, "AWAY") == 0) ev->status = PX_STATUS_AWAY;
        else {
            fprintf(stderr, "presencectl produce: --status must be online or away\n");
            return CTL_EXIT_ERR;
        }
    }
    if ((v = ctl_flag(c, "version"))) {
        char *end;
        errno = 0;
        long long n = strtoll(v, &end, 10);
        if (!*v || *end || errno || n < 0) {
            fprintf(stderr, "presencectl produce: --version must be a non-negative integer\n");
            return CTL_EXIT_ERR;
        }
        ev->version = n;
    }
    if (px_event_validate(ev, err, sizeof err)) {
        fprintf(stderr, "presencectl produce: invalid %s %s: %s\n", px_kind_name(kind), up, err);
        return CTL_EXIT_ERR;
    }
    return 0;
}

/* The lifecycle JSON form (px_lcjson.h) of ev into out. */
static int lifecycle_json(const px_event_t *ev, px_buf_t *out) {
    int rc = px_buf_printf(out, "{\"type\":\"%s\",\"tenant\":\"%s\",\"entity\":\"%s\",\"id\":\"%s\",\"ts\":%" PRId64,
                           px_event_type_name(PX_KIND_LIFECYCLE, ev->type), ev->key.tenant, ev->key.entity,
                           ev->key.id, ev->ts_ms);
    if (!rc && ev->busy_by[0]) rc = px_buf_puts(out, ",\"busy_by\":") || px_proto_write_string(out, ev->busy_by);
    if (!rc && ev->write_id[0]) rc = px_buf_puts(out, ",\"write_id\":") || px_proto_write_string(out, ev->write_id);
    if (!rc && ev->version >= 0) rc = px_buf_printf(out, ",\"version\":%" PRId64, ev->version);
    if (!rc) rc = px_buf_puts(out, "}");
    return rc;
}

int ctl_produce(ctl_t *c, int argc, char **argv) {
    (void)argc;
    const char *what = argv[0];
    px_kind_t kind;
    if (strcmp(what, "lifecycle") == 0) kind = PX_KIND_LIFECYCLE;
    else if (strcmp(what, "presence") == 0) kind = PX_KIND_PRESENCE;
    else if (strcmp(what, "lock") == 0) kind = PX_KIND_LOCK;
    else {
        fprintf(stderr, "presencectl produce: unknown kind '%.64s' (lifecycle, presence, lock)\n", what);
        return CTL_EXIT_ERR;
    }
    static px_event_t ev;
    int rc = build(c, kind, &ev);
    if (rc) return rc;
    bool json = ctl_flag_set(c, "json");
    if (json && kind != PX_KIND_LIFECYCLE) {
        fprintf(stderr, "presencectl produce: --json is for lifecycle records only\n");
        return CTL_EXIT_ERR;
    }
    if (json && ev.type == PX_LC_EXPIRE) {
        fprintf(stderr, "presencectl produce: EXPIRE has no JSON form (it is the processor's own record)\n");
        return CTL_EXIT_ERR;
    }
    const char *base = kind == PX_KIND_PRESENCE ? CTL_SRC_TOPICS[PX_SRC_HEARTBEATS]
                       : kind == PX_KIND_LOCK   ? CTL_SRC_TOPICS[PX_SRC_LOCKS]
                       : ev.type == PX_LC_MUTATED ? CTL_SRC_TOPICS[PX_SRC_MUTATED]
                                                  : CTL_SRC_TOPICS[PX_SRC_MUTATING];
    char topic[PX_CONF_STR_MAX * 2], key[PX_KEY_MAX + 1], err[256];
    ctl_topic_name(c, base, topic, sizeof topic);
    int kl = px_key_format(&ev.key, key, sizeof key);
    px_buf_reset(&c->buf);
    if (json ? lifecycle_json(&ev, &c->buf) : px_avro_encode(c->avro, &ev, &c->buf, err, sizeof err)) {
        fprintf(stderr, "presencectl produce: encoding failed: %s\n", json ? "out of memory" : err);
        return CTL_EXIT_ERR;
    }
    rd_kafka_t *rk = ctl_producer_new(c, NULL);
    if (!rk) return CTL_EXIT_ERR;
    /* refuse an unknown topic up front (auto-creation would give it the wrong partition count) */
    if (ctl_kafka_wait(c, rk) || ctl_partition_count(c, rk, topic) <= 0) {
        rd_kafka_destroy(rk);
        return CTL_EXIT_ERR;
    }
    ctl_dr_t d = {0};
    rd_kafka_resp_err_t e =
        rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, (size_t)kl),
                          RD_KAFKA_V_VALUE(c->buf.data, c->buf.len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                          RD_KAFKA_V_OPAQUE(&d), RD_KAFKA_V_END);
    if (e) {
        fprintf(stderr, "presencectl produce: Kafka %s: %s: %s\n", c->bootstrap, topic, rd_kafka_err2str(e));
        rd_kafka_destroy(rk);
        return CTL_EXIT_ERR;
    }
    rd_kafka_flush(rk, (int)c->cfg.timeout_ms + 1000);
    rd_kafka_poll(rk, 0);
    if (!d.done || d.err) {
        char why[600];
        fprintf(stderr, "presencectl produce: Kafka %s: %s: not acknowledged: %s%s\n", c->bootstrap, topic,
                d.done ? rd_kafka_err2str(d.err) : "timed out", ctl_kafka_reason(c, why, sizeof why));
        rc = CTL_EXIT_ERR;
    } else {
        printf("produced %s %s %s to %s [%" PRId32 "] @ %" PRId64 " at Kafka %s\n", px_kind_name(kind),
               px_event_type_name(kind, ev.type), key, topic, d.partition, d.offset, c->bootstrap);
    }
    rd_kafka_destroy(rk);
    return rc;
}
