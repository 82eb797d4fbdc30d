/*
 * ctl_audit.c - `presencectl audit`: the timeline of one entity, a tenant,
 * or a user, read from the log. The events are the change events of the
 * one fold (px_fold_apply's callbacks, as verify and the processor use),
 * so the audit means exactly what presence.changes means: JOINED, LEFT,
 * TIMED_OUT, UPDATED, LOCK_GRANTED/DENIED/RELEASED/EXPIRED, STALE_SET/
 * CLEARED, VERSION_BUMPED. Every record of the selected keys is folded
 * from the beginning (state before the window decides what happens in it);
 * only changes whose event time is in [--from, --to) and whose user is
 * --user (when given) are kept, then sorted by event time, source topic,
 * partition, offset and emission order.
 * Output: a table (default; every column as wide as its widest cell, so
 * long ids never shift the columns after them), --format jsonl or csv; one
 * line per change, with the source record's coordinates. The summary on
 * stderr names the Kafka it read. Limits: the selected rows are held in
 * memory (one formatted line each) to be sorted.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "px_key.h"
#include "px_proto.h"
#include "px_when.h"

typedef enum { FMT_TABLE, FMT_JSONL, FMT_CSV } fmt_t;

/* The table's columns. */
#define NCOLS 8
static const char *const COLS[NCOLS] = {"TIME", "ENTITY", "CHANGE", "USER", "TAB", "FIELD", "DETAIL", "SOURCE"};

typedef struct row {
    int64_t ts, offset;
    int src;
    int32_t partition;
    uint64_t seq;
    char *line; /* the table's cells, each ending with a NUL; or one line */
} row_t;

typedef struct audit {
    fmt_t fmt;
    char key[PX_KEY_MAX + 2]; /* "T:E:I" or "T:" */
    size_t key_len;
    bool exact;
    const char *user;
    int64_t from_ms, to_ms;
    row_t *rows;
    size_t n, cap;
    uint64_t seq, oom;
    px_buf_t line;
    size_t width[NCOLS]; /* of the table's columns */
} audit_t;

static bool filter(ctl_t *c, const char *key, size_t len) {
    audit_t *a = c->user;
    if (!a->key_len) return true;
    if (!key || len < a->key_len || memcmp(key, a->key, a->key_len) != 0) return false;
    return !a->exact || len == a->key_len;
}

static void csv_field(px_buf_t *b, const char *s, bool first) {
    if (!first) px_buf_puts(b, ",");
    if (!strpbrk(s, ",\"\r\n")) {
        px_buf_puts(b, s);
        return;
    }
    px_buf_puts(b, "\"");
    for (const char *p = s; *p; p++) {
        if (*p == '"') px_buf_puts(b, "\"\"");
        else px_buf_append(b, p, 1);
    }
    px_buf_puts(b, "\"");
}

static void json_str(px_buf_t *b, const char *k, const char *v) {
    if (!v[0]) return;
    px_buf_printf(b, ",\"%s\":", k);
    px_proto_write_string(b, v);
}

/* What a change says beyond who/what. */
static void detail(const px_event_t *ch, char *out, size_t n) {
    out[0] = '\0';
    switch (ch->type) {
    case PX_CH_LOCK_GRANTED:
    case PX_CH_LOCK_RELEASED:
    case PX_CH_LOCK_EXPIRED:
        snprintf(out, n, "token=%lld", (long long)ch->token);
        break;
    case PX_CH_LOCK_DENIED:
        snprintf(out, n, "held by %s", ch->holder_user_id);
        break;
    case PX_CH_STALE_SET:
        snprintf(out, n, "busy_by=%s", ch->busy_by);
        break;
    case PX_CH_VERSION_BUMPED:
        snprintf(out, n, "version=%lld", (long long)ch->version);
        break;
    default:
        break;
    }
}

/* One change as a JSON line into b. */
static void audit_jsonl(px_buf_t *b, const px_event_t *ch, const char *key, const char *when, const char *type) {
    px_buf_printf(b, "{\"ts\":%lld,\"time\":\"%s\",\"key\":", (long long)ch->ts_ms, when);
    px_proto_write_string(b, key);
    px_buf_printf(b, ",\"type\":\"%s\"", type);
    json_str(b, "user", ch->user_id);
    json_str(b, "user_name", ch->user_name);
    json_str(b, "tab", ch->tab_id);
    json_str(b, "field", ch->field);
    json_str(b, "request_id", ch->request_id);
    if (ch->token >= 0) px_buf_printf(b, ",\"token\":%lld", (long long)ch->token);
    json_str(b, "holder", ch->holder_user_id);
    json_str(b, "holder_name", ch->holder_name);
    json_str(b, "busy_by", ch->busy_by);
    if (ch->type == PX_CH_VERSION_BUMPED) px_buf_printf(b, ",\"version\":%lld", (long long)ch->version);
    px_buf_puts(b, ",\"src\":{\"topic\":");
    px_proto_write_string(b, ch->src_topic);
    px_buf_printf(b, ",\"partition\":%d,\"offset\":%lld}}", ch->src_partition, (long long)ch->src_offset);
}

/* One change as a CSV row into b; det is detail()'s text. */
static void audit_csv(px_buf_t *b, const px_event_t *ch, const char *key, const char *when, const char *type,
                      const char *det) {
    char num[32];
    snprintf(num, sizeof num, "%lld", (long long)ch->ts_ms);
    csv_field(b, num, true);
    csv_field(b, when, false);
    csv_field(b, key, false);
    csv_field(b, type, false);
    csv_field(b, ch->user_id, false);
    csv_field(b, ch->user_name, false);
    csv_field(b, ch->tab_id, false);
    csv_field(b, ch->field, false);
    csv_field(b, ch->request_id, false);
    csv_field(b, det, false);
    csv_field(b, ch->src_topic, false);
    snprintf(num, sizeof num, "%d", ch->src_partition);
    csv_field(b, num, false);
    snprintf(num, sizeof num, "%lld", (long long)ch->src_offset);
    csv_field(b, num, false);
}

static void on_change(ctl_t *c, const px_event_t *ch) {
    audit_t *a = c->user;
    if (ch->ts_ms < a->from_ms || ch->ts_ms >= a->to_ms) return;
    if (a->user && strcmp(ch->user_id, a->user) != 0) return;
    char key[PX_KEY_MAX + 1], when[40], det[PX_NAME_MAX + 64], src[PX_CONF_STR_MAX * 2 + 48];
    px_key_format(&ch->key, key, sizeof key);
    px_when_format(ch->ts_ms, when, sizeof when);
    const char *type = px_event_type_name(PX_KIND_CHANGE, ch->type);
    px_buf_t *b = &a->line;
    px_buf_reset(b);
    detail(ch, det, sizeof det);
    switch (a->fmt) {
    case FMT_TABLE: {
        snprintf(src, sizeof src, "%s[%d]@%lld", ch->src_topic, ch->src_partition, (long long)ch->src_offset);
        const char *cells[NCOLS] = {when, key, type, ch->user_id, ch->tab_id, ch->field, det, src};
        for (int i = 0; i < NCOLS; i++) {
            size_t w = ctl_cell_width(cells[i]);
            if (w > a->width[i]) a->width[i] = w;
            if (px_buf_append(b, cells[i], strlen(cells[i]) + 1)) {
                a->oom++;
                return;
            }
        }
        break;
    }
    case FMT_JSONL:
        audit_jsonl(b, ch, key, when, type);
        break;
    case FMT_CSV:
        audit_csv(b, ch, key, when, type, det);
        break;
    }
    if (a->n == a->cap) {
        size_t nc = a->cap ? a->cap * 2 : 256;
        row_t *nr = realloc(a->rows, nc * sizeof *nr);
        if (!nr) {
            a->oom++;
            return;
        }
        a->rows = nr;
        a->cap = nc;
    }
    char *line = b->data ? malloc(b->len + 1) : NULL;
    if (!line) {
        a->oom++;
        return;
    }
    memcpy(line, b->data, b->len);
    line[b->len] = '\0';
    a->rows[a->n++] = (row_t){ch->ts_ms, ch->src_offset, ctl_src_of_topic(c, ch->src_topic), ch->src_partition,
                              a->seq++, line};
}

static int row_cmp(const void *x, const void *y) {
    const row_t *a = x, *b = y;
#define CMP(f)                                                                                     \
    if (a->f != b->f) return a->f < b->f ? -1 : 1
    CMP(ts);
    CMP(src);
    CMP(partition);
    CMP(offset);
    CMP(seq);
#undef CMP
    return 0;
}

int ctl_audit(ctl_t *c) {
    static audit_t a;
    char err[256];
    const char *fmt = ctl_flag(c, "format"), *ent = ctl_flag(c, "entity"), *tenant = ctl_flag(c, "tenant");
    a.user = ctl_flag(c, "user");
    if (!fmt || strcmp(fmt, "table") == 0) a.fmt = FMT_TABLE;
    else if (strcmp(fmt, "jsonl") == 0) a.fmt = FMT_JSONL;
    else if (strcmp(fmt, "csv") == 0) a.fmt = FMT_CSV;
    else {
        fprintf(stderr, "presencectl audit: --format must be table, jsonl or csv, not '%.64s'\n", fmt);
        return CTL_EXIT_ERR;
    }
    if ((ent && tenant) || (!ent && !tenant && !a.user)) {
        fprintf(stderr, "presencectl audit: give --entity T:E:I, or --tenant T and/or --user U\n");
        return CTL_EXIT_ERR;
    }
    if (ent) {
        px_key_t k;
        if (px_key_parse(ent, strlen(ent), &k, err, sizeof err)) {
            fprintf(stderr, "presencectl audit: --entity: %s\n", err);
            return CTL_EXIT_ERR;
        }
        a.key_len = (size_t)px_key_format(&k, a.key, sizeof a.key);
        a.exact = true;
    } else if (tenant) {
        if (!px_key_part_valid(tenant, strlen(tenant))) {
            fprintf(stderr, "presencectl audit: --tenant '%.64s' is not a key part (1-128 of [A-Za-z0-9._-])\n",
                    tenant);
            return CTL_EXIT_ERR;
        }
        a.key_len = (size_t)snprintf(a.key, sizeof a.key, "%s:", tenant);
    }
    if (a.user && !px_key_part_valid(a.user, strlen(a.user))) {
        fprintf(stderr, "presencectl audit: --user '%.64s' is not a valid id\n", a.user);
        return CTL_EXIT_ERR;
    }
    if (ctl_time_range(c, &a.from_ms, &a.to_ms)) return CTL_EXIT_ERR;
    px_buf_init(&a.line, 1u << 16);
    for (int i = 0; i < NCOLS; i++) a.width[i] = ctl_cell_width(COLS[i]);
    c->user = &a;
    c->on_change = on_change;
    c->filter = filter;
    int rc = ctl_fold_inputs(c, NULL); /* always from the beginning: earlier state decides */
    if (!rc && a.oom) {
        fprintf(stderr, "presencectl audit: %llu rows lost (out of memory)\n", (unsigned long long)a.oom);
        rc = CTL_EXIT_ERR;
    }
    if (!rc) {
        if (a.n) qsort(a.rows, a.n, sizeof *a.rows, row_cmp);
        if (a.fmt == FMT_TABLE) {
            ctl_table_row(stdout, COLS, a.width, NCOLS);
            for (size_t i = 0; i < a.n; i++) {
                const char *cells[NCOLS];
                const char *p = a.rows[i].line;
                for (int k = 0; k < NCOLS; k++, p += strlen(p) + 1) cells[k] = p;
                ctl_table_row(stdout, cells, a.width, NCOLS);
            }
        } else {
            if (a.fmt == FMT_CSV)
                printf("ts,time,key,type,user,user_name,tab,field,request_id,detail,src_topic,src_partition,"
                       "src_offset\n");
            for (size_t i = 0; i < a.n; i++) puts(a.rows[i].line);
        }
        if (fflush(stdout)) rc = CTL_EXIT_ERR;
        ctl_fold_summary(c);
        fprintf(stderr, "presencectl audit: %zu changes, read from %s\n", a.n, c->kafka_where);
    }
    for (size_t i = 0; i < a.n; i++) free(a.rows[i].line);
    free(a.rows);
    px_buf_term(&a.line);
    return rc;
}
