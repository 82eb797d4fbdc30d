/*
 * gw_http.c - HTTP requests on libwebsockets: the transport under the REST
 * routes (gw_rest.c) and the operations routes (gw_ws.c), and the checks
 * every request head passes before its route or its WebSocket upgrade.
 *
 * A response is staged whole in the request (gw_http_reply) and written in
 * HTTP_WRITEABLE: the headers in one callback, the body in the next, one
 * lws_write each. Every error has one JSON shape (gw_http_error).
 * Request heads: lws 4.1 keeps a head in GW_HTTP_HEAD_MAX bytes and cuts
 * every field one byte past GW_HTTP_FIELD_MAX (gw_http_head_limits), so a
 * longer field is seen and answered 414 or 431 (gw_http_head_too_large).
 * The WebSocket handshake's Origin is checked against
 * http.allowed_origins (gw_origin.h).
 */
#include <string.h>

#include "gw.h"
#include "px_log.h"

void gw_http_begin(gw_http_t *h, struct lws *wsi, const char *path) {
    memset(h, 0, sizeof *h);
    h->wsi = wsi;
    snprintf(h->path, sizeof h->path, "%s", path);
    if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) > 0) h->method = GW_HTTP_GET;
    else if (lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI) > 0) h->method = GW_HTTP_POST;
    else if (lws_hdr_total_length(wsi, WSI_TOKEN_DELETE_URI) > 0) h->method = GW_HTTP_DELETE;
}

void gw_http_done(gw_http_t *h) {
    px_buf_term(&h->resp);
    px_buf_term(&h->req);
}

int gw_http_reply(gw_http_t *h, unsigned status, const char *ctype, const char *body, size_t len) {
    static const char zeros[LWS_PRE];
    if (h->answered || !h->wsi) return -1;
    px_buf_term(&h->resp);
    px_buf_init(&h->resp, LWS_PRE + 8u * 1024 * 1024);
    if (px_buf_append(&h->resp, zeros, LWS_PRE) || px_buf_append(&h->resp, body, len)) return -1;
    h->status = status;
    h->ctype = ctype;
    h->staged = true;
    h->answered = true;
    lws_callback_on_writable(h->wsi);
    return 0;
}

int gw_http_error(gw_ctx_t *gw, gw_http_t *h, unsigned status, const char *code, const char *msg) {
    px_buf_t b;
    px_buf_init(&b, 2048);
    gw_count_error(gw, code);
    int rc = px_buf_puts(&b, "{\"success\":false,\"error\":{\"code\":");
    if (!rc) rc = px_proto_write_string(&b, code);
    if (!rc) rc = px_buf_puts(&b, ",\"message\":");
    if (!rc) rc = px_proto_write_string(&b, msg);
    if (!rc) rc = px_buf_puts(&b, "}}");
    rc = rc ? -1 : gw_http_reply(h, status, "application/json", b.data, b.len);
    px_buf_term(&b);
    return rc;
}

int gw_http_writeable(struct lws *wsi, gw_http_t *h) {
    if (!h->staged) return 0;
    if (!h->hdr_sent) {
        unsigned char hdr[LWS_PRE + 1024], *start = &hdr[LWS_PRE], *p = start, *end = &hdr[sizeof hdr - 1];
        size_t len = h->resp.len - LWS_PRE;
        if (lws_add_http_common_headers(wsi, h->status, h->ctype, (lws_filepos_t)len, &p, end) ||
            lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL, (const unsigned char *)"no-store", 8,
                                         &p, end) ||
            lws_finalize_write_http_header(wsi, start, &p, end))
            return -1;
        h->hdr_sent = true;
        lws_callback_on_writable(wsi);
        return 0;
    }
    int n = lws_write(wsi, (unsigned char *)h->resp.data + LWS_PRE, h->resp.len - LWS_PRE, LWS_WRITE_HTTP_FINAL);
    px_buf_term(&h->resp);
    px_buf_term(&h->req);
    h->staged = h->hdr_sent = false;
    if (n < 0) return -1;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

int gw_http_dev_identity(struct lws *wsi, gw_identity_t *who) {
    const char *v;
    char a[256];
    v = lws_get_urlarg_by_name(wsi, "user=", a, sizeof a);
    snprintf(who->user_id, sizeof who->user_id, "%s", v && *v ? v : "dev");
    v = lws_get_urlarg_by_name(wsi, "name=", a, sizeof a);
    snprintf(who->user_name, sizeof who->user_name, "%s", v && *v ? v : who->user_id);
    v = lws_get_urlarg_by_name(wsi, "tenant=", a, sizeof a);
    snprintf(who->tenant, sizeof who->tenant, "%s", v && *v ? v : GW_DEV_TENANT);
    if (!px_key_part_valid(who->user_id, strlen(who->user_id)) || !px_key_part_valid(who->tenant, strlen(who->tenant)))
        return -1;
    return 0;
}

/* ---- request heads ------------------------------------------------------ */

/* The buffer, and every field cut one byte past GW_HTTP_FIELD_MAX, so that
 * gw_http_head_too_large sees a longer one instead of lws dropping the
 * connection when a single field fills the buffer. */
void gw_http_head_limits(struct lws_context_creation_info *info) {
    static struct lws_token_limits limits;
    for (int i = 0; i < WSI_TOKEN_COUNT; i++) limits.token_limit[i] = GW_HTTP_FIELD_MAX + 1;
    info->token_limits = &limits;
    info->max_http_header_data = GW_HTTP_HEAD_MAX;
}

static bool token_is_uri(int t) {
    return t == WSI_TOKEN_GET_URI || t == WSI_TOKEN_POST_URI || t == WSI_TOKEN_OPTIONS_URI ||
           t == WSI_TOKEN_PATCH_URI || t == WSI_TOKEN_PUT_URI || t == WSI_TOKEN_DELETE_URI ||
           t == WSI_TOKEN_CONNECT || t == WSI_TOKEN_HEAD_URI || t == WSI_TOKEN_HTTP_URI_ARGS;
}

/* The first field of the head over GW_HTTP_FIELD_MAX, or -1. */
static int field_too_large(struct lws *wsi) {
    for (int t = 0; t < WSI_TOKEN_COUNT; t++) {
        if (lws_hdr_total_length(wsi, (enum lws_token_indexes)t) <= GW_HTTP_FIELD_MAX) continue;
        for (int f = 0; f < WSI_TOKEN_COUNT; f++) /* no fragment table is longer */
            if (lws_hdr_fragment_length(wsi, (enum lws_token_indexes)t, f) > GW_HTTP_FIELD_MAX) return t;
    }
    return -1;
}

/* Answered in the one error shape, code TOO_LARGE, then closed: lws has
 * skipped the rest of that line, so nothing else of the request can be
 * trusted. Counted and logged. */
int gw_http_head_too_large(gw_ctx_t *gw, struct lws *wsi) {
    int tok = field_too_large(wsi);
    if (tok < 0) return 0;
    bool uri = token_is_uri(tok);
    unsigned status = uri ? 414 : 431;
    char body[256], peer[64] = "?";
    int blen = snprintf(body, sizeof body,
                        "{\"success\":false,\"error\":{\"code\":\"TOO_LARGE\",\"message\":\"%s over %d bytes\"}}",
                        uri ? "the URI, or one of its query arguments, is" : "a request header is", GW_HTTP_FIELD_MAX);
    unsigned char buf[LWS_PRE + 1024], *start = &buf[LWS_PRE], *p = start, *end = &buf[sizeof buf - 1];
    const unsigned char *name = lws_token_to_string((enum lws_token_indexes)tok);
    lws_get_peer_simple(wsi, peer, sizeof peer);
    gw_count_error(gw, "TOO_LARGE");
    PX_WARN(GW_COMP, "request refused: a field over the limit", "status=%u field=\"%s\" limit=%d peer=%s", status,
            name ? (const char *)name : "?", GW_HTTP_FIELD_MAX, peer);
    if (lws_add_http_common_headers(wsi, status, "application/json", (lws_filepos_t)blen, &p, end) ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION, (const unsigned char *)"close", 5, &p, end) ||
        lws_finalize_http_header(wsi, &p, end) || end - p < blen)
        return 1;
    memcpy(p, body, (size_t)blen);
    p += blen;
    lws_write(wsi, start, (size_t)(p - start), LWS_WRITE_HTTP_HEADERS);
    return 1;
}

/* The whole header is read (any field lws accepted fits the buffer), so a
 * long Origin is compared as it is, never cut. */
bool gw_http_origin_ok(gw_ctx_t *gw, struct lws *wsi) {
    char origin[GW_HTTP_FIELD_BUF], q[256];
    int n = lws_hdr_copy(wsi, origin, sizeof origin, WSI_TOKEN_ORIGIN);
    bool ok;
    if (n < 0) { /* over the field limit: the head check refuses it first */
        ok = !gw->cfg.allowed_origins[0];
        snprintf(origin, sizeof origin, "(over %d bytes)", GW_HTTP_FIELD_MAX);
    } else {
        ok = gw_origin_allowed(gw->cfg.allowed_origins, n ? origin : NULL, (size_t)n);
    }
    if (ok) return true;
    gw_count_error(gw, "FORBIDDEN_ORIGIN");
    PX_WARN(GW_COMP, "websocket origin refused", "origin=%s", px_log_q(q, sizeof q, origin));
    return false;
}
