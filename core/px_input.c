/*
 * px_input.c - the input-record decoding rule (px_input.h).
 */
#include <string.h>

#include "px_err.h"
#include "px_headers.h"
#include "px_input.h"
#include "px_kafka.h"
#include "px_key.h"
#include "px_lcjson.h"

px_kind_t px_input_kind(px_src_topic_t src) {
    static const px_kind_t kind[PX_SRC__COUNT] = {PX_KIND_PRESENCE, PX_KIND_LOCK, PX_KIND_LIFECYCLE,
                                                  PX_KIND_LIFECYCLE};
    return kind[src];
}

px_input_fault_t px_input_decode_value(px_avro_t *avro, px_src_topic_t src, const void *val, size_t len,
                                       int64_t kafka_ts, px_event_t *ev, char *errstr, size_t errstr_size) {
    const char *v = val;
    if (!v || !len) {
        px_errf(PX_EINVAL, errstr, errstr_size, "empty value");
        return PX_INPUT_BAD_VALUE;
    }
    bool lifecycle = src == PX_SRC_MUTATING || src == PX_SRC_MUTATED;
    int rc = lifecycle && v[0] == '{' ? px_lcjson_decode(v, len, kafka_ts, ev, errstr, errstr_size)
                                      : px_avro_decode(avro, v, len, ev, errstr, errstr_size);
    if (rc) return rc == PX_EBACKEND ? PX_INPUT_UNAVAILABLE : PX_INPUT_BAD_VALUE;
    if (ev->kind != px_input_kind(src)) {
        px_errf(PX_EINVAL, errstr, errstr_size, "a %s record on this topic", px_kind_name(ev->kind));
        return PX_INPUT_BAD_VALUE;
    }
    return PX_INPUT_OK;
}

px_input_fault_t px_input_decode(px_avro_t *avro, px_src_topic_t src, const void *key, size_t klen,
                                 const void *val, size_t len, int64_t kafka_ts, px_event_t *ev, char *errstr,
                                 size_t errstr_size) {
    px_input_fault_t f = px_input_decode_value(avro, src, val, len, kafka_ts, ev, errstr, errstr_size);
    if (f) return f;
    char k[PX_KEY_MAX + 1];
    int kl = px_key_format(&ev->key, k, sizeof k);
    if (!key || kl < 0 || (size_t)kl != klen || memcmp(k, key, klen) != 0) {
        px_errf(PX_EINVAL, errstr, errstr_size, "record key does not match the value's tenant:entity:id");
        return PX_INPUT_BAD_KEY;
    }
    return PX_INPUT_OK;
}

int px_input_retry_origin(const rd_kafka_headers_t *h, px_input_origin_t *o, char *errstr, size_t errstr_size) {
    if (px_kafka_header_int(h, PX_HDR_OFFSET, &o->offset) || px_kafka_header_int(h, PX_HDR_TIMESTAMP, &o->ts) ||
        px_kafka_header_int(h, PX_HDR_ATTEMPT, &o->attempt) || px_kafka_header_int(h, PX_HDR_DUE, &o->due) ||
        px_kafka_header_int(h, PX_HDR_SEQ, &o->seq) || o->offset < 0 || o->attempt < 0)
        return px_errf(PX_EINVAL, errstr, errstr_size, "retry record without valid px.* headers");
    return 0;
}
