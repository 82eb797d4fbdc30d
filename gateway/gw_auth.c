/*
 * gw_auth.c - who is calling: a JWT signed with HS256 and a shared secret.
 *
 * Claims: sub (user id), tenant, name (display name, optional), exp
 * (seconds since epoch, required). The token's algorithm must be HS256:
 * "none" and every other algorithm are refused, whatever the header says.
 * The tenant and user id must be valid identifiers (px_key.h charset),
 * since they become parts of Kafka keys and Redis keys.
 */
#include <errno.h>
#include <string.h>

#include <jwt.h>

#include "gw.h"
#include "px_err.h"

static int copy_claim(jwt_t *jwt, const char *name, char *dst, size_t n, bool required,
                      char *errstr, size_t errstr_size) {
    errno = 0;
    const char *v = jwt_get_grant(jwt, name);
    if (!v || !*v) {
        if (!required) {
            dst[0] = '\0';
            return 0;
        }
        return px_errf(PX_EINVAL, errstr, errstr_size, "token lacks claim '%s'", name);
    }
    size_t l = strlen(v);
    if (l >= n) return px_errf(PX_EINVAL, errstr, errstr_size, "claim '%s' too long", name);
    memcpy(dst, v, l + 1);
    return 0;
}

int gw_auth_token(const gw_config_t *cfg, const char *token, int64_t now_s, gw_identity_t *out,
                  char *errstr, size_t errstr_size) {
    jwt_t *jwt = NULL;
    int rc = PX_EINVAL;
    if (!token || !*token) return px_errf(PX_EINVAL, errstr, errstr_size, "no token");
    if (!cfg->jwt_secret[0])
        return px_errf(PX_EINVAL, errstr, errstr_size, "no auth.jwt_secret configured");
    if (jwt_decode(&jwt, token, (const unsigned char *)cfg->jwt_secret,
                   (int)strlen(cfg->jwt_secret)) != 0 || !jwt) {
        px_errf(PX_EINVAL, errstr, errstr_size, "invalid token or signature");
        goto out;
    }
    if (jwt_get_alg(jwt) != JWT_ALG_HS256) {
        px_errf(PX_EINVAL, errstr, errstr_size, "token algorithm is not HS256");
        goto out;
    }
    errno = 0;
    long exp = jwt_get_grant_int(jwt, "exp");
    if (errno || exp <= 0) {
        px_errf(PX_EINVAL, errstr, errstr_size, "token lacks claim 'exp'");
        goto out;
    }
    if ((int64_t)exp <= now_s) {
        px_errf(PX_EINVAL, errstr, errstr_size, "token expired");
        goto out;
    }
    if (copy_claim(jwt, "sub", out->user_id, sizeof out->user_id, true, errstr, errstr_size) ||
        copy_claim(jwt, "tenant", out->tenant, sizeof out->tenant, true, errstr, errstr_size) ||
        copy_claim(jwt, "name", out->user_name, sizeof out->user_name, false, errstr, errstr_size))
        goto out;
    if (!px_key_part_valid(out->user_id, strlen(out->user_id)) ||
        !px_key_part_valid(out->tenant, strlen(out->tenant))) {
        px_errf(PX_EINVAL, errstr, errstr_size, "sub or tenant has characters outside [A-Za-z0-9._-]");
        goto out;
    }
    if (!out->user_name[0]) memcpy(out->user_name, out->user_id, sizeof out->user_id);
    rc = 0;
out:
    jwt_free(jwt);
    return rc;
}
