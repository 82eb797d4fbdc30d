/*
 * gw_dev.c - development mode helpers: a token issuer for the demo page.
 *
 *   GET /api/v1/dev/token?user=U[&name=N][&tenant=T]   (T: "demo" by default)
 *   200 {"success":true,"data":{"token":"<JWT>","user_id":U,"user_name":N,
 *                               "tenant":T,"expires_at":<ms>}}
 *
 * Only with auth.dev_mode=true; otherwise the route does not exist (404,
 * the same answer as any unknown path). The token is an ordinary HS256 JWT
 * (claims sub, tenant, name, exp; valid GW_DEV_TOKEN_TTL_S) signed with
 * auth.jwt_secret, so the page then connects with `access_token` exactly
 * as a real application does, and gw_auth.c checks it as any other token.
 * Inputs follow the rules of everything else: user and tenant are key
 * parts (px_key.h), the name is 1..PX_NAME_MAX bytes of UTF-8 without
 * control characters. Errors: 400 BAD_FIELD, 405 METHOD_NOT_ALLOWED.
 *
 * When dev mode runs without auth.jwt_secret, gw_dev_init() makes an
 * ephemeral random secret, so dev tokens work and die with the process.
 * Limits: no rate limit (dev mode is for one developer's machine).
 * Related: gw_auth.c (verification), docs/protocol.md (REST section).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <jwt.h>

#include "gw.h"
#include "px_log.h"
#include "px_time.h"
#include "px_utf8.h"

#define GW_DEV_TOKEN_TTL_S (12 * 3600)

int gw_dev_init(gw_ctx_t *gw) {
    if (!gw->cfg.dev_mode || gw->cfg.jwt_secret[0]) return 0;
    unsigned char raw[32];
    size_t got = 0;
    while (got < sizeof raw) {
        ssize_t n = getrandom(raw + got, sizeof raw - got, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            PX_ERROR(GW_COMP, "cannot make a dev-mode secret", "err=\"%s\"", strerror(errno));
            gw_count_error(gw, "INTERNAL");
            return PX_EIO;
        }
        got += (size_t)n;
    }
    for (size_t i = 0; i < sizeof raw; i++) snprintf(gw->cfg.jwt_secret + 2 * i, 3, "%02x", raw[i]);
    PX_WARN(GW_COMP, "dev mode without auth.jwt_secret: dev tokens are signed with an ephemeral secret", NULL);
    return 0;
}

/* A display name: 1..PX_NAME_MAX bytes of UTF-8, no control characters. */
static bool name_valid(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > PX_NAME_MAX || !px_utf8_valid(s, n)) return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) return false;
    return true;
}

/* Query argument `key` ("user=") into buf; NULL when absent. The buffer
 * is much larger than any valid value, so a long one is seen (and refused
 * by the length checks) rather than cut. */
static const char *arg(gw_http_t *h, const char *key, char *buf, int size) {
    return lws_get_urlarg_by_name(h->wsi, key, buf, size);
}

int gw_dev_token(gw_ctx_t *gw, gw_http_t *h) {
    char ubuf[1024], tbuf[1024], nbuf[1024];
    if (!gw->cfg.dev_mode) return gw_http_error(gw, h, 404, "NOT_FOUND", "no such route");
    if (h->method != GW_HTTP_GET) return gw_http_error(gw, h, 405, "METHOD_NOT_ALLOWED", "use GET");
    const char *u = arg(h, "user=", ubuf, sizeof ubuf);
    const char *t = arg(h, "tenant=", tbuf, sizeof tbuf);
    const char *n = arg(h, "name=", nbuf, sizeof nbuf);
    if (!u || !*u || strlen(u) > PX_ID_MAX || !px_key_part_valid(u, strlen(u)))
        return gw_http_error(gw, h, 400, "BAD_FIELD", "'user' must be 1-128 characters of [A-Za-z0-9._-]");
    if (!t) t = GW_DEV_TENANT;
    if (!*t || strlen(t) > PX_KEY_PART_MAX || !px_key_part_valid(t, strlen(t)))
        return gw_http_error(gw, h, 400, "BAD_FIELD", "'tenant' must be 1-128 characters of [A-Za-z0-9._-]");
    if (!n) n = u;
    if (!name_valid(n))
        return gw_http_error(gw, h, 400, "BAD_FIELD",
                             "'name' must be 1-256 bytes of UTF-8 without control characters");

    jwt_t *jwt = NULL;
    char *tok = NULL;
    px_buf_t b;
    int rc = -1;
    int64_t exp_s = px_now_ms() / 1000 + GW_DEV_TOKEN_TTL_S;
    px_buf_init(&b, 4096);
    if (jwt_new(&jwt) || jwt_add_grant(jwt, "sub", u) || jwt_add_grant(jwt, "tenant", t) ||
        jwt_add_grant(jwt, "name", n) || jwt_add_grant_int(jwt, "exp", (long)exp_s) ||
        jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)gw->cfg.jwt_secret,
                    (int)strlen(gw->cfg.jwt_secret)) ||
        !(tok = jwt_encode_str(jwt))) {
        PX_ERROR(GW_COMP, "dev token: signing failed", "user=%s", u);
        rc = gw_http_error(gw, h, 500, "INTERNAL", "cannot sign the token");
        goto out;
    }
    rc = px_buf_puts(&b, "{\"success\":true,\"data\":{\"token\":");
    if (!rc) rc = px_proto_write_string(&b, tok);
    if (!rc) rc = px_buf_puts(&b, ",\"user_id\":");
    if (!rc) rc = px_proto_write_string(&b, u);
    if (!rc) rc = px_buf_puts(&b, ",\"user_name\":");
    if (!rc) rc = px_proto_write_string(&b, n);
    if (!rc) rc = px_buf_puts(&b, ",\"tenant\":");
    if (!rc) rc = px_proto_write_string(&b, t);
    if (!rc) rc = px_buf_printf(&b, ",\"expires_at\":%lld}}", (long long)exp_s * 1000);
    if (rc) {
        gw_oom(gw, "dev token response");
        rc = gw_http_error(gw, h, 500, "INTERNAL", "out of memory");
        goto out;
    }
    PX_INFO(GW_COMP, "dev token issued", "user=%s tenant=%s", u, t);
    rc = gw_http_reply(h, 200, "application/json", b.data, b.len);
out:
    px_buf_term(&b);
    free(tok);
    jwt_free(jwt);
    return rc;
}
