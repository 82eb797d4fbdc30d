/*
 * px_wire.c - value framings of the presence topics. See px_wire.h.
 */
#include "px_wire.h"

#include <string.h>

#include "px_err.h"

int px_wire_parse(const void *buf, size_t len, px_wire_hdr_t *out, char *errstr,
                  size_t errstr_size) {
    const unsigned char *p = buf;
    if (!p || len == 0) return px_errf(PX_EPROTO, errstr, errstr_size, "empty value");
    px_wire_hdr_t h = {0};
    if (p[0] == 0xC3) {
        if (len < 2 || p[1] != 0x01)
            return px_errf(PX_EPROTO, errstr, errstr_size,
                           "not a known framing (C3 not followed by 01)");
        if (len < PX_WIRE_SO_HEADER)
            return px_errf(PX_EPROTO, errstr, errstr_size,
                           "single-object header truncated (%zu of %d bytes)", len, PX_WIRE_SO_HEADER);
        h.format = PX_WIRE_SINGLE_OBJECT;
        for (int i = 7; i >= 0; i--) h.fingerprint = (h.fingerprint << 8) | p[2 + i];
        h.body_off = PX_WIRE_SO_HEADER;
    } else if (p[0] == 0x00) {
        if (len < PX_WIRE_CF_HEADER)
            return px_errf(PX_EPROTO, errstr, errstr_size,
                           "confluent header truncated (%zu of %d bytes)", len, PX_WIRE_CF_HEADER);
        uint32_t id = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4];
        if (id > INT32_MAX)
            return px_errf(PX_EPROTO, errstr, errstr_size, "confluent schema id %u out of range", id);
        h.format = PX_WIRE_CONFLUENT;
        h.schema_id = id;
        h.body_off = PX_WIRE_CF_HEADER;
    } else {
        size_t i = 0;
        while (i < len && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n')) i++;
        if (i == len || p[i] != '{')
            return px_errf(PX_EPROTO, errstr, errstr_size,
                           "not a known framing (first byte 0x%02x: want C3 01, 00 or a JSON object)",
                           p[i < len ? i : 0]);
        h.format = PX_WIRE_JSON;
        h.body_off = i;
    }
    if (h.format != PX_WIRE_JSON && h.body_off == len)
        return px_errf(PX_EPROTO, errstr, errstr_size, "%s header with no body",
                       px_wire_format_name(h.format));
    *out = h;
    return 0;
}

int px_wire_put_confluent(px_buf_t *out, uint32_t schema_id) {
    unsigned char h[PX_WIRE_CF_HEADER] = {0, (unsigned char)(schema_id >> 24),
                                          (unsigned char)(schema_id >> 16),
                                          (unsigned char)(schema_id >> 8), (unsigned char)schema_id};
    return px_buf_append(out, h, sizeof h);
}

const char *px_wire_format_name(px_wire_format_t f) {
    switch (f) {
    case PX_WIRE_SINGLE_OBJECT: return "single-object";
    case PX_WIRE_CONFLUENT: return "confluent";
    case PX_WIRE_JSON: return "json";
    }
    return "unknown";
}

int px_wire_format_parse(const char *s, px_wire_format_t *out) {
    if (s && strcmp(s, "single-object") == 0) return *out = PX_WIRE_SINGLE_OBJECT, 0;
    if (s && strcmp(s, "confluent") == 0) return *out = PX_WIRE_CONFLUENT, 0;
    return PX_ECONFIG;
}
