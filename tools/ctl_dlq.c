/*
 * ctl_dlq.c - `presencectl dlq list|show|reinject`: the dead-letter topics
 * (<input>.dlt) the processor fills with the original bytes of records it
 * could not fold, headed px.error, px.topic, px.partition, px.offset,
 * px.timestamp, px.attempt (core/px_headers.h).
 *
 * Re-injection is idempotent (docs/presencectl.md, "dlq"): each record is
 * produced back into its original topic and partition with the header
 * px.reinjected-from = "<dlt topic>:<partition>:<offset>", inside one Kafka
 * transaction of the fixed transactional.id "presencectl-reinject.<topic
 * prefix>". The order is: init_transactions (which fences any other
 * reinjector and completes or aborts its open transaction), then read the
 * target topics (read_committed) for px.reinjected-from headers written
 * since the oldest selected DLT record, then produce only the records not
 * found, then commit. Two runs can therefore never both inject a record:
 * the later one either sees the earlier one's committed copy or fenced it
 * before its commit. A value that does not decode is refused (it would go
 * straight back to the DLQ) unless --force; --value-file replaces the value
 * of one record (the fixed record).
 * list prints a table (columns as wide as their widest cell) or JSON
 * lines whose "status" is "dead" or "reinjected" (and, the same fact as a
 * boolean, "reinjected"); every summary and error names the bootstrap
 * servers. Limits: a DLT is read whole to find the selected records.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "px_err.h"
#include "px_headers.h"
#include "px_kafka.h"
#include "px_produce.h"
#include "px_time.h"
#include "px_utf8.h"
#include "px_when.h"

#define DLQ_VALUE_MAX (1u << 20)

typedef struct dlq_rec {
    char coord[PX_CONF_STR_MAX + 64]; /* dlt:partition:offset */
    int32_t partition;
    int64_t offset, ts;
    char *key, *val;
    size_t key_len, val_len;
    char error[512], src_topic[PX_CONF_STR_MAX + 8], attempt[16];
    int32_t src_partition;
    int64_t src_offset, src_ts;
    bool reinjected, selected;
} dlq_rec_t;

typedef struct dlq {
    dlq_rec_t *v;
    size_t n, cap;
    char **seen; /* px.reinjected-from values found in the targets */
    size_t nseen, capseen;
    uint64_t oom;
} dlq_t;

static void hdr_str(rd_kafka_headers_t *h, const char *name, char *out, size_t n) {
    const void *v;
    size_t len;
    out[0] = '\0';
    if (h && rd_kafka_header_get_last(h, name, &v, &len) == RD_KAFKA_RESP_ERR_NO_ERROR && v)
        snprintf(out, n, "%.*s", (int)len, (const char *)v);
}

static int64_t hdr_i64(rd_kafka_headers_t *h, const char *name) {
    int64_t v;
    return px_kafka_header_int(h, name, &v) == 0 && v >= 0 ? v : -1; /* headers are input: -1 when not a number */
}

static void *dup_bytes(const void *p, size_t n) {
    char *d = malloc(n + 1);
    if (d) {
        if (n) memcpy(d, p, n);
        d[n] = '\0';
    }
    return d;
}

static void collect(ctl_t *c, const rd_kafka_message_t *m, void *arg) {
    dlq_t *d = arg;
    (void)c;
    if (d->n == d->cap) {
        size_t nc = d->cap ? d->cap * 2 : 64;
        dlq_rec_t *nv = realloc(d->v, nc * sizeof *nv);
        if (!nv) {
            d->oom++;
            return;
        }
        d->v = nv;
        d->cap = nc;
    }
    dlq_rec_t *r = &d->v[d->n];
    memset(r, 0, sizeof *r);
    rd_kafka_headers_t *h = NULL;
    rd_kafka_message_headers(m, &h);
    snprintf(r->coord, sizeof r->coord, "%s:%" PRId32 ":%" PRId64, rd_kafka_topic_name(m->rkt), m->partition,
             m->offset);
    r->partition = m->partition;
    r->offset = m->offset;
    r->ts = rd_kafka_message_timestamp(m, NULL);
    hdr_str(h, PX_HDR_ERROR, r->error, sizeof r->error);
    hdr_str(h, PX_HDR_TOPIC, r->src_topic, sizeof r->src_topic);
    hdr_str(h, PX_HDR_ATTEMPT, r->attempt, sizeof r->attempt);
    int64_t sp = hdr_i64(h, PX_HDR_PARTITION);
    r->src_partition = sp > INT32_MAX ? -1 : (int32_t)sp;
    r->src_offset = hdr_i64(h, PX_HDR_OFFSET);
    r->src_ts = hdr_i64(h, PX_HDR_TIMESTAMP);
    r->key = dup_bytes(m->key ? m->key : "", m->key ? m->key_len : 0);
    r->val = dup_bytes(m->payload ? m->payload : "", m->payload ? m->len : 0);
    r->key_len = m->key ? m->key_len : 0;
    r->val_len = m->payload ? m->len : 0;
    if (!r->key || !r->val) {
        free(r->key);
        free(r->val);
        d->oom++;
        return;
    }
    d->n++;
}

static void scan_reinjected(ctl_t *c, const rd_kafka_message_t *m, void *arg) {
    dlq_t *d = arg;
    rd_kafka_headers_t *h = NULL;
    char from[PX_CONF_STR_MAX + 64];
    (void)c;
    if (rd_kafka_message_headers(m, &h)) return;
    hdr_str(h, PX_HDR_REINJECTED_FROM, from, sizeof from);
    if (!from[0]) return;
    if (d->nseen == d->capseen) {
        size_t nc = d->capseen ? d->capseen * 2 : 64;
        char **nv = realloc(d->seen, nc * sizeof *nv);
        if (!nv) {
            d->oom++;
            return;
        }
        d->seen = nv;
        d->capseen = nc;
    }
    if (!(d->seen[d->nseen] = strdup(from))) d->oom++;
    else d->nseen++;
}

static void dlq_free(dlq_t *d) {
    for (size_t i = 0; i < d->n; i++) {
        free(d->v[i].key);
        free(d->v[i].val);
    }
    free(d->v);
    for (size_t i = 0; i < d->nseen; i++) free(d->seen[i]);
    free(d->seen);
}

/* The input topics named by --topic (base names; all four by default) as
 * source indexes in mask. CTL_EXIT_ERR on an unknown one. */
static int topics_mask(ctl_t *c, bool mask[PX_SRC__COUNT]) {
    bool any = false;
    for (int s = 0; s < PX_SRC__COUNT; s++) mask[s] = false;
    for (size_t i = 0; i < c->flags.n; i++) {
        if (strcmp(c->flags.name[i], "topic") != 0) continue;
        const char *t = c->flags.val[i];
        size_t tl = strlen(t);
        if (tl > 4 && strcmp(t + tl - 4, ".dlt") == 0) tl -= 4;
        int found = -1;
        for (int s = 0; s < PX_SRC__COUNT; s++) {
            char full[PX_CONF_STR_MAX * 2];
            ctl_topic_name(c, CTL_SRC_TOPICS[s], full, sizeof full);
            if ((strlen(CTL_SRC_TOPICS[s]) == tl && strncmp(t, CTL_SRC_TOPICS[s], tl) == 0) ||
                (strlen(full) == tl && strncmp(t, full, tl) == 0))
                found = s;
        }
        if (found < 0) {
            fprintf(stderr, "presencectl dlq: --topic %.128s is not an input topic (%s, %s, %s, %s)\n", t,
                    CTL_SRC_TOPICS[0], CTL_SRC_TOPICS[1], CTL_SRC_TOPICS[2], CTL_SRC_TOPICS[3]);
            return CTL_EXIT_ERR;
        }
        mask[found] = any = true;
    }
    if (!any)
        for (int s = 0; s < PX_SRC__COUNT; s++) mask[s] = true;
    return 0;
}

/* Read the DLTs of the selected topics, then the reinjection marks in the
 * input topics since the oldest DLT record. */
static int load(ctl_t *c, dlq_t *d, const bool mask[PX_SRC__COUNT], bool marks) {
    char t[PX_CONF_STR_MAX * 2 + 8];
    for (int s = 0; s < PX_SRC__COUNT; s++) {
        if (!mask[s]) continue;
        snprintf(t, sizeof t, "%s%s.dlt", c->cfg.topic_prefix, CTL_SRC_TOPICS[s]);
        if (ctl_read_topic(c, t, NULL, collect, d)) return CTL_EXIT_ERR;
    }
    if (marks) {
        int64_t oldest = INT64_MAX;
        for (size_t i = 0; i < d->n; i++)
            if (d->v[i].ts >= 0 && d->v[i].ts < oldest) oldest = d->v[i].ts;
        ctl_range_t r = {oldest == INT64_MAX ? 0 : oldest, INT64_MAX};
        for (int s = 0; d->n && s < PX_SRC__COUNT; s++) {
            if (!mask[s]) continue;
            ctl_topic_name(c, CTL_SRC_TOPICS[s], t, sizeof t);
            if (ctl_read_topic(c, t, &r, scan_reinjected, d)) return CTL_EXIT_ERR;
        }
        for (size_t i = 0; i < d->n; i++)
            for (size_t j = 0; j < d->nseen && !d->v[i].reinjected; j++)
                d->v[i].reinjected = strcmp(d->v[i].coord, d->seen[j]) == 0;
    }
    if (d->oom) {
        fprintf(stderr, "presencectl dlq: out of memory reading the DLQ\n");
        return CTL_EXIT_ERR;
    }
    return 0;
}

/* "k":"v" with v escaped as JSON, each broken UTF-8 sequence (a key or
 * header of a poison record is any bytes) as one U+FFFD. */
static void json_kv(const char *k, const char *v, bool comma) {
    printf("%s\"%s\":\"", comma ? "," : "", k);
    const unsigned char *p = (const unsigned char *)v;
    for (size_t left = strlen(v); left;) {
        int n = px_utf8_seq(p, left);
        if (n < 0) {
            fputs("\\ufffd", stdout);
            n = -n;
        } else if (*p == '"' || *p == '\\') {
            printf("\\%c", *p);
        } else if (*p < 0x20 || *p == 0x7f) {
            printf("\\u%04x", *p);
        } else {
            fwrite(p, 1, (size_t)n, stdout);
        }
        p += n;
        left -= (size_t)n;
    }
    putchar('"');
}

static const char *status(const dlq_rec_t *r) { return r->reinjected ? "reinjected" : "dead"; }

static int dlq_list(ctl_t *c) {
    const char *fmt = ctl_flag(c, "format");
    bool jsonl = fmt && strcmp(fmt, "jsonl") == 0;
    if (fmt && !jsonl && strcmp(fmt, "table") != 0) {
        fprintf(stderr, "presencectl dlq list: --format must be table or jsonl\n");
        return CTL_EXIT_ERR;
    }
    bool mask[PX_SRC__COUNT];
    dlq_t d = {0};
    int rc = topics_mask(c, mask);
    if (!rc) rc = load(c, &d, mask, true);
    /* the table's columns, as wide as their widest cell */
    enum { NC = 6 };
    static const char *const head[NC] = {"DLQ RECORD", "TIME", "ORIGINAL", "STATUS", "KEY", "ERROR"};
    size_t width[NC];
    for (int k = 0; k < NC; k++) width[k] = ctl_cell_width(head[k]);
    for (int pass = jsonl ? 1 : 0; !rc && pass < 2; pass++) {
        if (pass == 1 && !jsonl) ctl_table_row(stdout, head, width, NC);
        for (size_t i = 0; i < d.n; i++) {
            dlq_rec_t *r = &d.v[i];
            char when[40], key[PX_KEY_MAX + 1], orig[PX_CONF_STR_MAX + 64];
            px_when_format(r->ts, when, sizeof when);
            snprintf(key, sizeof key, "%.*s", (int)(r->key_len < PX_KEY_MAX ? r->key_len : PX_KEY_MAX), r->key);
            snprintf(orig, sizeof orig, "%s:%" PRId32 ":%" PRId64, r->src_topic, r->src_partition, r->src_offset);
            const char *cells[NC] = {r->coord, when, orig, status(r), key, r->error};
            if (pass == 0) {
                for (int k = 0; k < NC; k++) {
                    size_t w = ctl_cell_width(cells[k]);
                    if (w > width[k]) width[k] = w;
                }
            } else if (!jsonl) {
                ctl_table_row(stdout, cells, width, NC);
            } else {
                printf("{");
                json_kv("record", r->coord, false);
                printf(",\"ts\":%" PRId64, r->ts);
                json_kv("time", when, true);
                json_kv("status", status(r), true);
                json_kv("error", r->error, true);
                json_kv("topic", r->src_topic, true);
                printf(",\"partition\":%" PRId32 ",\"offset\":%" PRId64 ",\"timestamp\":%" PRId64,
                       r->src_partition, r->src_offset, r->src_ts);
                json_kv("attempt", r->attempt, true);
                json_kv("key", key, true);
                printf(",\"value_bytes\":%zu,\"reinjected\":%s}\n", r->val_len, r->reinjected ? "true" : "false");
            }
        }
    }
    if (!rc) fprintf(stderr, "presencectl dlq: %zu records, read from %s\n", d.n, c->kafka_where);
    dlq_free(&d);
    return rc;
}

/* "topic:partition:offset" (the topic may hold ':'? no: [A-Za-z0-9._-]). */
static int parse_coord(const char *s, char *topic, size_t tn, int32_t *p, int64_t *o) {
    const char *c2 = strrchr(s, ':');
    if (!c2 || c2 == s) return -1;
    const char *c1 = c2 - 1;
    while (c1 > s && *c1 != ':') c1--;
    if (*c1 != ':' || c1 == s || (size_t)(c1 - s) >= tn) return -1;
    char *end;
    errno = 0;
    long long pp = strtoll(c1 + 1, &end, 10);
    if (errno || end != c2 || c1[1] == '\0' || c1[1] == ':' || pp < 0 || pp > INT32_MAX) return -1;
    long long oo = strtoll(c2 + 1, &end, 10);
    if (errno || *end || !c2[1] || oo < 0) return -1;
    memcpy(topic, s, (size_t)(c1 - s));
    topic[c1 - s] = '\0';
    *p = (int32_t)pp;
    *o = oo;
    return 0;
}

/* Load the DLTs (and marks) and mark the records named by --record (or all
 * with --all). CTL_EXIT_ERR if one is malformed or not found. */
static int select_records(ctl_t *c, dlq_t *d, bool all, bool marks) {
    bool mask[PX_SRC__COUNT];
    int rc = topics_mask(c, mask);
    if (rc) return rc;
    /* --record implies its topic */
    for (size_t i = 0; i < c->flags.n; i++) {
        if (strcmp(c->flags.name[i], "record") != 0) continue;
        char topic[PX_CONF_STR_MAX * 2];
        int32_t p;
        int64_t o;
        if (parse_coord(c->flags.val[i], topic, sizeof topic, &p, &o)) {
            fprintf(stderr, "presencectl dlq: --record '%.128s': expected TOPIC.dlt:PARTITION:OFFSET\n",
                    c->flags.val[i]);
            return CTL_EXIT_ERR;
        }
        size_t tl = strlen(topic);
        int s = -1;
        if (tl > 4 && strcmp(topic + tl - 4, ".dlt") == 0) {
            topic[tl - 4] = '\0'; /* the input topic it belongs to */
            s = ctl_src_of_topic(c, topic);
        }
        if (s < 0) {
            fprintf(stderr, "presencectl dlq: --record '%.128s': not a DLQ topic of an input topic\n", c->flags.val[i]);
            return CTL_EXIT_ERR;
        }
        mask[s] = true;
    }
    if ((rc = load(c, d, mask, marks))) return rc;
    for (size_t i = 0; i < d->n; i++) d->v[i].selected = all;
    for (size_t i = 0; i < c->flags.n; i++) {
        if (strcmp(c->flags.name[i], "record") != 0) continue;
        bool found = false;
        for (size_t j = 0; j < d->n; j++)
            if (strcmp(d->v[j].coord, c->flags.val[i]) == 0) found = d->v[j].selected = true;
        if (!found) {
            fprintf(stderr, "presencectl dlq: no DLQ record %.256s\n", c->flags.val[i]);
            return CTL_EXIT_ERR;
        }
    }
    return 0;
}

static void print_event(const px_event_t *ev) {
    char when[40];
    printf("decoded: %s %s ts=%" PRId64 " (%s)", px_kind_name(ev->kind), px_event_type_name(ev->kind, ev->type),
           ev->ts_ms, px_when_format(ev->ts_ms, when, sizeof when));
    const struct {
        const char *k, *v;
    } s[] = {{"tab", ev->tab_id}, {"user", ev->user_id}, {"name", ev->user_name}, {"field", ev->field},
             {"cursor", ev->cursor}, {"request_id", ev->request_id}, {"busy_by", ev->busy_by},
             {"write_id", ev->write_id}};
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++)
        if (s[i].v[0]) printf(" %s=%s", s[i].k, s[i].v);
    if (ev->kind == PX_KIND_LIFECYCLE && ev->version >= 0) printf(" version=%" PRId64, ev->version);
    if (ev->expires_at_ms >= 0) printf(" expires_at=%" PRId64, ev->expires_at_ms);
    printf("\n");
}

/* Whether r's value (or a replacement) decodes as its original topic
 * needs and carries its key; the reason in err. */
static int check_value(ctl_t *c, const dlq_rec_t *r, const char *val, size_t len, char *err, size_t n,
                       px_event_t *ev) {
    int src = ctl_src_of_topic(c, r->src_topic);
    if (src < 0) return px_errf(PX_EINVAL, err, n, "original topic '%s' is not an input topic", r->src_topic);
    if (ctl_decode_input(c, src, val, len, px_now_ms(), ev, err, n)) return PX_EINVAL;
    char key[PX_KEY_MAX + 1];
    int kl = px_key_format(&ev->key, key, sizeof key);
    if ((size_t)kl != r->key_len || memcmp(key, r->key, r->key_len) != 0)
        return px_errf(PX_EINVAL, err, n, "the value's key %s is not the record key %.*s", key, (int)r->key_len,
                       r->key);
    return 0;
}

static int dlq_show(ctl_t *c) {
    if (!ctl_flag_set(c, "record")) {
        fprintf(stderr, "presencectl dlq show: --record TOPIC.dlt:PARTITION:OFFSET is needed\n");
        return CTL_EXIT_ERR;
    }
    dlq_t d = {0};
    int rc = select_records(c, &d, false, true);
    for (size_t i = 0; !rc && i < d.n; i++) {
        dlq_rec_t *r = &d.v[i];
        if (!r->selected) continue;
        char when[40], err[256];
        printf("record:    %s\ntime:      %s\noriginal:  %s:%" PRId32 ":%" PRId64 " (timestamp %" PRId64
               ")\nerror:     %s\nattempt:   %s\nstatus:    %s\nkey:       %.*s\nvalue:     %zu bytes\nkafka:     %s\n",
               r->coord, px_when_format(r->ts, when, sizeof when), r->src_topic, r->src_partition, r->src_offset,
               r->src_ts, r->error, r->attempt, status(r), (int)r->key_len, r->key, r->val_len, c->bootstrap);
        for (size_t o = 0; o < r->val_len && o < 512; o += 16) {
            printf("  %04zx ", o);
            for (size_t k = o; k < o + 16; k++)
                if (k < r->val_len) printf(" %02x", (unsigned char)r->val[k]);
                else printf("   ");
            printf("  ");
            for (size_t k = o; k < o + 16 && k < r->val_len; k++)
                putchar(r->val[k] >= 0x20 && r->val[k] < 0x7f ? r->val[k] : '.');
            printf("\n");
        }
        px_event_t ev;
        if (check_value(c, r, r->val, r->val_len, err, sizeof err, &ev) == 0) print_event(&ev);
        else printf("decoded:   no: %s\n", err);
    }
    dlq_free(&d);
    return rc;
}

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = malloc(DLQ_VALUE_MAX + 1);
    size_t n = buf ? fread(buf, 1, DLQ_VALUE_MAX + 1, f) : 0;
    bool bad = ferror(f) || n > DLQ_VALUE_MAX;
    fclose(f);
    if (!buf || bad) {
        free(buf);
        return NULL;
    }
    /* a JSON file edited by hand ends with a newline: not part of the value */
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r') && buf[0] == '{') n--;
    *len = n;
    return buf;
}

static int txn_err(ctl_t *c, const char *what, rd_kafka_error_t *e) {
    fprintf(stderr, "presencectl dlq reinject: Kafka %s: %s: %s\n", c->bootstrap, what, rd_kafka_error_string(e));
    rd_kafka_error_destroy(e);
    return CTL_EXIT_ERR;
}

/* Check every selected record before producing anything: one reinjected
 * before is skipped (counted in *done_before), one that does not decode
 * (unless force) or has no usable origin is refused; *todo counts the
 * rest. Returns how many were refused. */
static size_t dlq_check_all(ctl_t *c, dlq_t *d, const char *fixed, size_t fixed_len, bool force, size_t *todo,
                            size_t *done_before) {
    size_t refused = 0;
    for (size_t i = 0; i < d->n; i++) {
        dlq_rec_t *r = &d->v[i];
        if (!r->selected) continue;
        if (r->reinjected) {
            (*done_before)++;
            printf("already reinjected %s, skipped\n", r->coord);
            r->selected = false;
            continue;
        }
        char err[256];
        px_event_t ev;
        if (!force && check_value(c, r, fixed ? fixed : r->val, fixed ? fixed_len : r->val_len, err, sizeof err, &ev)) {
            fprintf(stderr,
                    "presencectl dlq reinject: %s does not decode (%s): it would go straight back to the DLQ; "
                    "fix it with --value-file, or pass --force\n",
                    r->coord, err);
            refused++;
            continue;
        }
        if (ctl_src_of_topic(c, r->src_topic) < 0 || r->src_partition < 0) {
            fprintf(stderr, "presencectl dlq reinject: %s has no usable original topic/partition headers\n", r->coord);
            refused++;
            continue;
        }
        (*todo)++;
    }
    return refused;
}

/* Produce the selected records in rk's open transaction, each to its
 * original topic and partition with the reinjection headers; on a failure
 * the transaction is aborted: 0, or CTL_EXIT_ERR after saying why. */
static int dlq_produce_all(ctl_t *c, rd_kafka_t *rk, dlq_t *d, const char *fixed, size_t fixed_len) {
    char now[32];
    snprintf(now, sizeof now, "%" PRId64, px_now_ms());
    for (size_t i = 0; i < d->n; i++) {
        dlq_rec_t *r = &d->v[i];
        if (!r->selected) continue;
        rd_kafka_headers_t *h = rd_kafka_headers_new(2);
        rd_kafka_header_add(h, PX_HDR_REINJECTED_FROM, -1, r->coord, -1);
        rd_kafka_header_add(h, PX_HDR_REINJECTED_AT, -1, now, -1);
        px_produce_rec_t rec = {.topic = r->src_topic, .partition = r->src_partition, .key = r->key,
                                .klen = r->key_len, .val = fixed ? fixed : r->val,
                                .vlen = fixed ? fixed_len : r->val_len, .hdrs = h};
        rd_kafka_resp_err_t err = px_produce(rk, &rec, 100, 10, NULL);
        if (err) {
            rd_kafka_headers_destroy(h);
            fprintf(stderr, "presencectl dlq reinject: Kafka %s: produce %s: %s\n", c->bootstrap, r->coord,
                    rd_kafka_err2str(err));
            rd_kafka_error_t *ae = rd_kafka_abort_transaction(rk, (int)c->cfg.timeout_ms);
            if (ae) rd_kafka_error_destroy(ae);
            return CTL_EXIT_ERR;
        }
        printf("sending %s -> %s [%d]\n", r->coord, r->src_topic, r->src_partition);
    }
    return 0;
}

static int dlq_reinject(ctl_t *c) {
    bool all = ctl_flag_set(c, "all"), force = ctl_flag_set(c, "force"), dry = ctl_flag_set(c, "dry-run");
    const char *vf = ctl_flag(c, "value-file");
    size_t nrec = 0;
    for (size_t i = 0; i < c->flags.n; i++) nrec += strcmp(c->flags.name[i], "record") == 0;
    if (all == (nrec > 0)) {
        fprintf(stderr, "presencectl dlq reinject: give --all or --record C (one or more), not both\n");
        return CTL_EXIT_ERR;
    }
    if (vf && nrec != 1) {
        fprintf(stderr, "presencectl dlq reinject: --value-file replaces the value of exactly one --record\n");
        return CTL_EXIT_ERR;
    }
    char *fixed = NULL;
    size_t fixed_len = 0;
    if (vf && !(fixed = read_file(vf, &fixed_len))) {
        fprintf(stderr, "presencectl dlq reinject: --value-file %.256s: cannot read it (or over %u bytes)\n", vf,
                DLQ_VALUE_MAX);
        return CTL_EXIT_ERR;
    }
    rd_kafka_t *rk = NULL;
    dlq_t d = {0};
    int rc = 0;
    if (!dry) {
        /* first fence any other reinjector, then look for what it did */
        char tid[PX_CONF_STR_MAX + 32];
        snprintf(tid, sizeof tid, "presencectl-reinject.%s", c->cfg.topic_prefix);
        if (!(rk = ctl_producer_new(c, tid)) || ctl_kafka_wait(c, rk)) {
            rc = CTL_EXIT_ERR;
            goto out;
        }
        rd_kafka_error_t *e = rd_kafka_init_transactions(rk, (int)c->cfg.timeout_ms);
        if (e) {
            rc = txn_err(c, "init_transactions", e);
            goto out;
        }
    }
    if ((rc = select_records(c, &d, all, true))) goto out;
    /* check every value before producing anything */
    size_t todo = 0, done_before = 0;
    size_t refused = dlq_check_all(c, &d, fixed, fixed_len, force, &todo, &done_before);
    if (refused) {
        fprintf(stderr, "presencectl dlq reinject: %zu record%s refused; nothing reinjected\n", refused,
                refused == 1 ? "" : "s");
        rc = CTL_EXIT_ERR;
        goto out;
    }
    if (dry || !todo) {
        for (size_t i = 0; dry && i < d.n; i++)
            if (d.v[i].selected) printf("would reinject %s -> %s [%d]\n", d.v[i].coord, d.v[i].src_topic, d.v[i].src_partition);
        printf("reinjected 0, already reinjected %zu%s at %s\n", done_before, dry ? " (dry run)" : "", c->kafka_where);
        goto out;
    }
    rd_kafka_error_t *e = rd_kafka_begin_transaction(rk);
    if (e) {
        rc = txn_err(c, "begin_transaction", e);
        goto out;
    }
    if ((rc = dlq_produce_all(c, rk, &d, fixed, fixed_len))) goto out;
    if ((e = rd_kafka_commit_transaction(rk, (int)c->cfg.timeout_ms))) {
        rc = txn_err(c, "commit_transaction (nothing was reinjected)", e);
        goto out;
    }
    printf("reinjected %zu, already reinjected %zu at %s\n", todo, done_before, c->kafka_where);
out:
    if (rk) rd_kafka_destroy(rk);
    dlq_free(&d);
    free(fixed);
    return rc;
}

int ctl_dlq(ctl_t *c, int argc, char **argv) {
    (void)argc;
    const char *sub = argv[0];
    if (strcmp(sub, "list") == 0) return dlq_list(c);
    if (strcmp(sub, "show") == 0) return dlq_show(c);
    if (strcmp(sub, "reinject") == 0) return dlq_reinject(c);
    fprintf(stderr, "presencectl dlq: unknown subcommand '%.64s' (list, show, reinject)\n", sub);
    return CTL_EXIT_ERR;
}
