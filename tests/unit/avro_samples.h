/*
 * avro_samples.h - sample events of every kind and type, and a field-wise
 * event comparison, shared by test_avro.c, test_event.c and avro_dump.c.
 *
 * Header-only (static functions) so each test program stays one .c file.
 * "full" samples set every field their kind carries on the wire, with
 * multi-byte UTF-8 and strings at their px_event.h bounds; "min" samples
 * set only what px_event_validate() requires for that type.
 */
#ifndef PX_AVRO_SAMPLES_H
#define PX_AVRO_SAMPLES_H

#include <stdbool.h>
#include <string.h>

#include "px_event.h"

/* Fill dst (size max+1) with n copies of a 1-byte char, NUL-terminated. */
static inline void px_sample_fill(char *dst, char ch, size_t n) {
    memset(dst, ch, n);
    dst[n] = '\0';
}

/* Build the sample of (kind, type); full selects every optional field. */
static inline void px_sample_event(px_event_t *ev, px_kind_t kind, int type, bool full) {
    px_event_init(ev, kind);
    ev->type = type;
    strcpy(ev->key.tenant, "acme");
    strcpy(ev->key.entity, "invoice");
    strcpy(ev->key.id, "INV-2024.0001_x");
    ev->ts_ms = 1717171717171LL;
    switch (kind) {
    case PX_KIND_PRESENCE:
        strcpy(ev->tab_id, "tab-1");
        strcpy(ev->user_id, "u-42");
        if (type == PX_PRES_EXPIRE) ev->expires_at_ms = 1717171777171LL;
        if (full) {
            strcpy(ev->user_name, "Zo\xc3\xab \xe6\x9d\x8e \xf0\x9f\x98\x80"); /* Zoë 李 😀 */
            ev->mode = PX_MODE_EDIT;
            ev->dirty = true;
            ev->status = PX_STATUS_AWAY;
            px_sample_fill(ev->cursor, 'c', PX_NAME_MAX);
            strcpy(ev->field, "amount");
            ev->expires_at_ms = 1717171777171LL;
        }
        break;
    case PX_KIND_LOCK:
        strcpy(ev->tab_id, "tab-1");
        strcpy(ev->user_id, "u-42");
        strcpy(ev->field, "amount");
        if (type == PX_LOCK_EXPIRE) ev->expires_at_ms = 1717171837171LL;
        if (full) {
            strcpy(ev->user_name, "Ana \xc3\x81lvarez");
            px_sample_fill(ev->request_id, 'r', PX_ID_MAX);
            ev->expires_at_ms = 0; /* the epoch itself is a valid deadline */
        }
        break;
    case PX_KIND_LIFECYCLE:
        if (type == PX_LC_EXPIRE) ev->expires_at_ms = 1717172017171LL;
        if (full) {
            strcpy(ev->busy_by, "billing-service \xe2\x9c\x93");
            strcpy(ev->write_id, "w-9f8e");
            ev->version = 9007199254740993LL; /* above 2^53: no double rounding */
            ev->expires_at_ms = 1717172017171LL;
        }
        break;
    case PX_KIND_CHANGE:
        switch (type) {
        case PX_CH_JOINED:
        case PX_CH_LEFT:
        case PX_CH_TIMED_OUT:
        case PX_CH_UPDATED:
            strcpy(ev->tab_id, "tab-1");
            strcpy(ev->user_id, "u-42");
            break;
        case PX_CH_LOCK_GRANTED:
            ev->token = 123456789012LL;
            /* fall through */
        case PX_CH_LOCK_DENIED:
        case PX_CH_LOCK_RELEASED:
        case PX_CH_LOCK_EXPIRED:
            strcpy(ev->tab_id, "tab-1");
            strcpy(ev->user_id, "u-42");
            strcpy(ev->field, "amount");
            if (type == PX_CH_LOCK_DENIED) strcpy(ev->holder_user_id, "u-7");
            break;
        case PX_CH_VERSION_BUMPED:
            ev->version = 17;
            break;
        default:
            break;
        }
        if (full) {
            strcpy(ev->tab_id, "tab-1");
            strcpy(ev->user_id, "u-42");
            strcpy(ev->user_name, "Zo\xc3\xab");
            strcpy(ev->field, "amount");
            ev->token = 123456789012LL;
            strcpy(ev->holder_user_id, "u-7");
            px_sample_fill(ev->holder_name, 'h', PX_NAME_MAX);
            strcpy(ev->busy_by, "billing-service");
            ev->version = 17;
            strcpy(ev->request_id, "req-1");
            px_sample_fill(ev->src_topic, 't', PX_TOPIC_MAX);
            ev->src_partition = 2147483647;
            ev->src_offset = 9223372036854775807LL;
        }
        break;
    default:
        break;
    }
}

/* Field-wise equality (not memcmp: padding and bytes after a NUL differ). */
static inline bool px_sample_equal(const px_event_t *a, const px_event_t *b) {
#define PX_S(f) (strcmp(a->f, b->f) == 0)
    return a->kind == b->kind && a->type == b->type && px_key_equal(&a->key, &b->key) && a->ts_ms == b->ts_ms &&
           PX_S(tab_id) && PX_S(user_id) && PX_S(user_name) && a->mode == b->mode && a->dirty == b->dirty &&
           a->status == b->status && PX_S(cursor) && PX_S(field) && PX_S(request_id) &&
           a->expires_at_ms == b->expires_at_ms && PX_S(busy_by) && PX_S(write_id) && a->version == b->version &&
           a->token == b->token && PX_S(holder_user_id) && PX_S(holder_name) && PX_S(src_topic) &&
           a->src_partition == b->src_partition && a->src_offset == b->src_offset;
#undef PX_S
}

#endif
