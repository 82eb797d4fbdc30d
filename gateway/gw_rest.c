/*
 * gw_rest.c - the REST routes, for clients that do not keep a WebSocket:
 *
 *   POST   /api/v1/presence/{type}/{id}/heartbeat   {"tab_id","mode","dirty"}
 *   GET    /api/v1/presence/{type}/{id}/viewers     the viewers but the caller
 *   DELETE /api/v1/presence/{type}/{id}/unregister  {"tab_id"}
 *   GET    /api/v1/presence/{type}/{id}             the full state
 *
 * Success: {"success":true,"data":{...}}; every error has one shape,
 * {"success":false,"error":{"code","message"}}, with its HTTP status
 * (400 BAD_JSON/BAD_FIELD, 401 UNAUTHORIZED, 403 FORBIDDEN, 404 NOT_FOUND,
 * 405 METHOD_NOT_ALLOWED, 413 TOO_LARGE, 429 RATE_LIMITED, 503 UNAVAILABLE).
 * Identity from `Authorization: Bearer <JWT>` (gw_auth.c); an
 * `X-SX-Tenant` header naming another tenant is refused. Writes go to
 * Kafka as the WebSocket's do (refused while Kafka is down); reads come
 * from Redis (refused while Redis is down), so heartbeats keep working
 * without Redis.
 *
 * Rate limit: limits.rest_requests_per_minute per user (tenant + sub), a
 * fixed one-minute window in a table of GW_RATE_SLOTS slots (gw_rate.h),
 * so memory stays bounded whatever the number of users.
 * Writes build their events through gw_event.c, as the WebSocket does.
 *
 * A GET's Redis read may outlive the request (the client leaves): the read
 * owns its gw_rest_op_t and the request only points at it; whichever ends
 * second frees it.
 * Related: gw_http.c (the HTTP plumbing), docs/protocol.md (REST section).
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "gw.h"
#include "px_log.h"
#include "px_time.h"

#define GW_RATE_SLOTS 65536
#define GW_REST_MAX_BODY 4096
#define GW_API_PREFIX "/api/v1/presence/"

enum { OP_VIEWERS = 1, OP_STATE };

typedef struct gw_rest_op {
    gw_http_t *h; /* NULL once the client went away */
    int kind;
    char user_id[PX_ID_MAX + 1];
} gw_rest_op_t;

int gw_rest_init(gw_ctx_t *gw) {
    return gw_windows_init(&gw->rest_windows, GW_RATE_SLOTS, 60000);
}

void gw_rest_term(gw_ctx_t *gw) {
    gw_windows_term(&gw->rest_windows);
}

/* true if one more request of the user fits in its current minute. */
static bool rate_take(gw_ctx_t *gw, const gw_identity_t *id) {
    char who[GW_WINDOW_WHO_MAX + 1];
    snprintf(who, sizeof who, "%s:%s", id->tenant, id->user_id);
    return gw_windows_take(&gw->rest_windows, who, gw->cfg.rest_per_min, px_now_ms());
}

/* The identity of the request, or an error reply (-2: replied). */
static int authenticate(gw_ctx_t *gw, gw_http_t *h) {
    char buf[GW_HTTP_FIELD_BUF], err[256]; /* any header lws accepted fits */
    int n = lws_hdr_copy(h->wsi, buf, sizeof buf, WSI_TOKEN_HTTP_AUTHORIZATION);
    if (n > 7 && strncasecmp(buf, "Bearer ", 7) == 0) {
        if (gw_auth_token(&gw->cfg, buf + 7, px_now_ms() / 1000, &h->who, err, sizeof err)) {
            gw_http_error(gw, h, 401, "UNAUTHORIZED", err);
            return -2;
        }
    } else if (gw->cfg.dev_mode && n <= 0) {
        if (gw_http_dev_identity(h->wsi, &h->who)) {
            gw_http_error(gw, h, 401, "UNAUTHORIZED", "dev-mode user/tenant must be identifiers");
            return -2;
        }
    } else {
        gw_http_error(gw, h, 401, "UNAUTHORIZED", "Authorization: Bearer <token> required");
        return -2;
    }
    n = lws_hdr_custom_copy(h->wsi, buf, sizeof buf, "x-sx-tenant:", 12);
    if (n > 0 && strcmp(buf, h->who.tenant) != 0) {
        gw_http_error(gw, h, 403, "FORBIDDEN", "X-SX-Tenant does not match the token's tenant");
        return -2;
    }
    return 0;
}

/* Split ".../{type}/{id}[/{action}]" of h->path into key and action.
 * 0, or an error reply (-2). */
static int parse_path(gw_ctx_t *gw, gw_http_t *h, px_key_t *key, const char **action) {
    char err[256], type[PX_KEY_PART_MAX + 2], id[PX_KEY_PART_MAX + 2];
    if (strncmp(h->path, GW_API_PREFIX, sizeof GW_API_PREFIX - 1) != 0) {
        gw_http_error(gw, h, 404, "NOT_FOUND", "no such route");
        return -2;
    }
    const char *p = h->path + sizeof GW_API_PREFIX - 1;
    const char *s1 = strchr(p, '/');
    if (!s1 || (size_t)(s1 - p) >= sizeof type) goto notfound;
    memcpy(type, p, (size_t)(s1 - p));
    type[s1 - p] = '\0';
    const char *q = s1 + 1, *s2 = strchr(q, '/');
    size_t il = s2 ? (size_t)(s2 - q) : strlen(q);
    if (il >= sizeof id) goto notfound;
    memcpy(id, q, il);
    id[il] = '\0';
    *action = s2 ? s2 + 1 : "";
    if (strchr(*action, '/')) goto notfound;
    if (px_key_set(key, h->who.tenant, type, id, err, sizeof err)) {
        gw_http_error(gw, h, 400, "BAD_FIELD", err);
        return -2;
    }
    return 0;
notfound:
    gw_http_error(gw, h, 404, "NOT_FOUND", "no such route");
    return -2;
}

/* ---- reads --------------------------------------------------------------- */

/* The viewers route's body into b: every viewer but `self`. 0 or
 * PX_ENOMEM (b's cap reached; b is then garbage). */
static int write_viewers(px_buf_t *b, const px_presence_view_t *v, const char *self) {
    int rc = px_buf_puts(b, "{\"success\":true,\"data\":{\"viewers\":[");
    bool first = true;
    for (size_t i = 0; !rc && i < v->n_viewers; i++) {
        const px_viewer_t *w = &v->viewers[i];
        if (strcmp(w->user_id, self) == 0) continue;
        rc = px_buf_puts(b, first ? "{\"id\":" : ",{\"id\":");
        first = false;
        if (!rc) rc = px_proto_write_string(b, w->user_id);
        if (!rc) rc = px_buf_puts(b, ",\"user_name\":");
        if (!rc) rc = px_proto_write_string(b, w->name && w->name[0] ? w->name : w->user_id);
        if (!rc)
            rc = px_buf_printf(b, ",\"tabs\":%d,\"has_dirty_tab\":%s,\"mode\":\"%s\"}", w->tabs,
                               w->has_dirty_tab ? "true" : "false", w->mode == PX_MODE_EDIT ? "edit" : "view");
    }
    if (!rc) rc = px_buf_puts(b, "],\"current_user_id\":");
    if (!rc) rc = px_proto_write_string(b, self);
    if (!rc) rc = px_buf_puts(b, "}}");
    return rc;
}

static void on_read(gw_ctx_t *gw, void *arg, const px_presence_view_t *v) {
    gw_rest_op_t *op = arg;
    gw_http_t *h = op->h;
    if (h) h->op = NULL;
    if (!h || gw->stopping) {
        free(op);
        return;
    }
    if (!v) {
        gw_http_error(gw, h, 503, "UNAVAILABLE", "Redis read failed; retry later");
        free(op);
        return;
    }
    px_buf_t b;
    int rc;
    px_buf_init(&b, 1u << 20);
    if (op->kind == OP_VIEWERS) {
        rc = write_viewers(&b, v, op->user_id);
    } else {
        rc = px_buf_puts(&b, "{\"success\":true,\"data\":");
        if (!rc) rc = px_proto_write_presence(&b, v);
        if (!rc) rc = px_buf_puts(&b, "}");
    }
    if (!rc) {
        gw_http_reply(h, 200, "application/json", b.data, b.len);
    } else {
        char q[300];
        PX_WARN(GW_COMP, "REST response too large", "path=%s", px_log_q(q, sizeof q, h->path));
        gw_http_error(gw, h, 500, "INTERNAL", "response too large");
    }
    px_buf_term(&b);
    free(op);
}

static int start_read(gw_ctx_t *gw, gw_http_t *h, const px_key_t *key, int kind) {
    if (!gw_redis_readable(gw->redis)) return gw_http_error(gw, h, 503, "UNAVAILABLE", "Redis is unreachable; retry later");
    gw_rest_op_t *op = calloc(1, sizeof *op);
    if (!op) {
        gw_oom(gw, "REST read");
        return gw_http_error(gw, h, 500, "INTERNAL", "out of memory");
    }
    op->h = h;
    op->kind = kind;
    snprintf(op->user_id, sizeof op->user_id, "%s", h->who.user_id);
    h->op = op;
    if (gw_view_read(gw, key, on_read, op)) {
        h->op = NULL;
        free(op);
        return gw_http_error(gw, h, 503, "UNAVAILABLE", "Redis is unreachable; retry later");
    }
    return 0;
}

/* ---- writes -------------------------------------------------------------- */

/* The write's body: a JSON object with optional tab_id, mode and dirty,
 * into tab and st (left as they are for absent members). 0, or an error
 * reply (-2). */
static int parse_body(gw_ctx_t *gw, gw_http_t *h, char tab[PX_ID_MAX + 1], gw_tab_t *st) {
    json_error_t jerr;
    json_t *root = json_loadb(h->req.data, h->req.len, JSON_REJECT_DUPLICATES, &jerr);
    int rc = 0;
    if (!json_is_object(root)) {
        json_decref(root);
        gw_http_error(gw, h, 400, "BAD_JSON", "body must be a JSON object");
        return -2;
    }
    const json_t *t = json_object_get(root, "tab_id"), *m = json_object_get(root, "mode"),
                 *d = json_object_get(root, "dirty");
    const char *ms = m && json_is_string(m) ? json_string_value(m) : "";
    if (t && (!json_is_string(t) || json_string_length(t) == 0 || json_string_length(t) > PX_ID_MAX ||
              !px_key_part_valid(json_string_value(t), json_string_length(t)))) {
        gw_http_error(gw, h, 400, "BAD_FIELD", "'tab_id' must be 1-128 characters of [A-Za-z0-9._-]");
        rc = -2;
    } else if (m && strcmp(ms, "view") != 0 && strcmp(ms, "edit") != 0) {
        gw_http_error(gw, h, 400, "BAD_FIELD", "'mode' must be \"view\" or \"edit\"");
        rc = -2;
    } else if (d && !json_is_boolean(d)) {
        gw_http_error(gw, h, 400, "BAD_FIELD", "'dirty' must be true or false");
        rc = -2;
    } else {
        if (t) memcpy(tab, json_string_value(t), json_string_length(t) + 1);
        if (m) st->mode = ms[0] == 'e' ? PX_MODE_EDIT : PX_MODE_VIEW;
        if (d) st->dirty = json_is_true(d);
    }
    json_decref(root);
    return rc;
}

/* POST heartbeat / DELETE unregister, once the body is in: the tab's
 * event, built and produced as the WebSocket's are (gw_event.c). */
static int do_write(gw_ctx_t *gw, gw_http_t *h, const px_key_t *key, bool unregister) {
    char tab[PX_ID_MAX + 1] = "";
    gw_tab_t st = {.mode = PX_MODE_VIEW, .dirty = false, .status = PX_STATUS_ONLINE};
    const char *why;
    px_event_t ev;
    if (h->req_overflow) return gw_http_error(gw, h, 413, "TOO_LARGE", "body over 4096 bytes");
    if (h->req.len && parse_body(gw, h, tab, &st)) return 0;
    if (!tab[0]) {
        char a[PX_ID_MAX + 1];
        const char *v = lws_get_urlarg_by_name(h->wsi, "tab_id=", a, sizeof a);
        if (v && *v && px_key_part_valid(v, strlen(v))) snprintf(tab, sizeof tab, "%s", v);
    }
    if (!tab[0]) return gw_http_error(gw, h, 400, "BAD_FIELD", "'tab_id' is required");
    gw_event_presence(&ev, unregister ? PX_PRES_UNSUB : PX_PRES_HB, key, &h->who, tab, &st);
    if (gw_event_submit(gw, &ev, &why)) return gw_http_error(gw, h, 503, "UNAVAILABLE", why);
    px_buf_t b;
    px_buf_init(&b, 4096); /* two ids of <= 128 bytes, escaped: always fits */
    int rc = px_buf_puts(&b, "{\"success\":true,\"data\":{\"tab_id\":");
    if (!rc) rc = px_proto_write_string(&b, tab);
    if (!rc) rc = px_buf_puts(&b, ",\"user_id\":");
    if (!rc) rc = px_proto_write_string(&b, h->who.user_id);
    if (!rc) rc = px_buf_puts(&b, "}}");
    rc = rc ? gw_http_error(gw, h, 500, "INTERNAL", "out of memory")
            : gw_http_reply(h, 200, "application/json", b.data, b.len);
    px_buf_term(&b);
    return rc;
}

/* ---- entry points ---------------------------------------------------------- */

/* Route, with the key and action parsed again (cheap) at body completion. */
static int route(gw_ctx_t *gw, gw_http_t *h, bool body_done) {
    px_key_t key;
    const char *action;
    if (parse_path(gw, h, &key, &action)) return 0;
    int want;
    if (strcmp(action, "") == 0 || strcmp(action, "viewers") == 0) want = GW_HTTP_GET;
    else if (strcmp(action, "heartbeat") == 0) want = GW_HTTP_POST;
    else if (strcmp(action, "unregister") == 0) want = GW_HTTP_DELETE;
    else return gw_http_error(gw, h, 404, "NOT_FOUND", "no such route");
    if (h->method != want) return gw_http_error(gw, h, 405, "METHOD_NOT_ALLOWED", "method not allowed on this route");
    if (want == GW_HTTP_GET) return start_read(gw, h, &key, action[0] ? OP_VIEWERS : OP_STATE);
    if (!body_done) {
        char cl[32];
        /* no body announced: lws sends no BODY_COMPLETION, so answer now */
        if (lws_hdr_copy(h->wsi, cl, sizeof cl, WSI_TOKEN_HTTP_CONTENT_LENGTH) <= 0 || atoll(cl) <= 0)
            return do_write(gw, h, &key, want == GW_HTTP_DELETE);
        return 0; /* wait for the body */
    }
    return do_write(gw, h, &key, want == GW_HTTP_DELETE);
}

int gw_rest_begin(gw_ctx_t *gw, gw_http_t *h) {
    px_counter_add(gw->m_rest, 1);
    px_buf_init(&h->req, GW_REST_MAX_BODY);
    if (authenticate(gw, h)) return 0;
    if (!rate_take(gw, &h->who)) return gw_http_error(gw, h, 429, "RATE_LIMITED", "too many requests per minute");
    return route(gw, h, false);
}

void gw_rest_body(gw_http_t *h, const void *in, size_t len) {
    if (!h->req_overflow && px_buf_append(&h->req, in, len)) h->req_overflow = true;
}

int gw_rest_body_done(gw_ctx_t *gw, gw_http_t *h) {
    if (h->answered) return 0; /* already answered (auth, rate, route) */
    return route(gw, h, true);
}

void gw_rest_closed(gw_http_t *h) {
    if (h->op) h->op->h = NULL; /* the read frees it when it ends */
    h->op = NULL;
}
