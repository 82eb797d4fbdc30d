/*
 * px_when.c - see px_when.h. Civil-date arithmetic after Howard Hinnant's
 * days_from_civil (proleptic Gregorian), so no timegm/TZ dependence.
 */
#include "px_when.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "px_err.h"

#define WHEN_MAX_MS 253402300799999LL /* 9999-12-31T23:59:59.999Z */

static int64_t days_from_civil(int64_t y, int64_t m, int64_t d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int64_t *m, int64_t *d) {
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp + (mp < 10 ? 3 : -9);
    *y = yoe + era * 400 + (*m <= 2);
}

/* Exactly n digits at *p, advancing it. */
static bool digits(const char **p, int n, int64_t *out) {
    int64_t v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9') return false;
        v = v * 10 + (c - '0');
    }
    *p += n;
    *out = v;
    return true;
}

static bool is_leap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

static int64_t month_days(int64_t y, int64_t m) {
    static const int d[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : d[m - 1];
}

static int parse_rfc3339(const char *s, int64_t *out, char *errstr, size_t n) {
    const char *p = s;
    int64_t y, mo, d, h = 0, mi = 0, sec = 0, frac = 0;
    if (!digits(&p, 4, &y) || *p++ != '-' || !digits(&p, 2, &mo) || *p++ != '-' || !digits(&p, 2, &d))
        return px_errf(PX_EINVAL, errstr, n, "'%.64s': expected YYYY-MM-DD", s);
    if (mo < 1 || mo > 12 || d < 1 || d > month_days(y, mo))
        return px_errf(PX_EINVAL, errstr, n, "'%.64s': no such date", s);
    int64_t off_min = 0;
    if (*p) {
        if (*p != 'T' && *p != 't' && *p != ' ')
            return px_errf(PX_EINVAL, errstr, n, "'%.64s': expected 'T' after the date", s);
        p++;
        if (!digits(&p, 2, &h) || *p++ != ':' || !digits(&p, 2, &mi))
            return px_errf(PX_EINVAL, errstr, n, "'%.64s': expected HH:MM after the date", s);
        if (*p == ':') {
            p++;
            if (!digits(&p, 2, &sec)) return px_errf(PX_EINVAL, errstr, n, "'%.64s': expected seconds", s);
            if (*p == '.') {
                p++;
                int nd = 0;
                int64_t scale = 100;
                while (*p >= '0' && *p <= '9') {
                    if (nd < 3) frac += (*p - '0') * scale;
                    scale /= 10;
                    p++;
                    if (++nd > 9) return px_errf(PX_EINVAL, errstr, n, "'%.64s': fraction too long", s);
                }
                if (!nd) return px_errf(PX_EINVAL, errstr, n, "'%.64s': empty fraction", s);
            }
        }
        if (h > 23 || mi > 59 || sec > 59)
            return px_errf(PX_EINVAL, errstr, n, "'%.64s': time of day out of range", s);
        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            int sign = *p++ == '-' ? -1 : 1;
            int64_t oh, om;
            if (!digits(&p, 2, &oh) || *p++ != ':' || !digits(&p, 2, &om) || oh > 23 || om > 59)
                return px_errf(PX_EINVAL, errstr, n, "'%.64s': bad zone offset (+HH:MM)", s);
            off_min = sign * (oh * 60 + om);
        } else {
            return px_errf(PX_EINVAL, errstr, n, "'%.64s': a time needs a zone (Z or +HH:MM)", s);
        }
    }
    if (*p) return px_errf(PX_EINVAL, errstr, n, "'%.64s': trailing characters", s);
    int64_t ms = ((days_from_civil(y, mo, d) * 24 + h) * 60 + mi - off_min) * 60000 + sec * 1000 + frac;
    if (ms < 0 || ms > WHEN_MAX_MS) return px_errf(PX_EINVAL, errstr, n, "'%.64s': before 1970 or after 9999", s);
    *out = ms;
    return 0;
}

int px_when_parse(const char *s, int64_t now_ms, int64_t *out_ms, char *errstr, size_t errstr_size) {
    if (!s || !*s) return px_errf(PX_EINVAL, errstr, errstr_size, "empty time");
    if (strcmp(s, "now") == 0) {
        *out_ms = now_ms;
        return 0;
    }
    if (s[0] == '-') { /* relative */
        const char *p = s + 1;
        int64_t v = 0;
        int nd = 0;
        while (*p >= '0' && *p <= '9') {
            if (v > (INT64_MAX - 9) / 10) return px_errf(PX_EINVAL, errstr, errstr_size, "'%.64s': too large", s);
            v = v * 10 + (*p++ - '0');
            nd++;
        }
        static const struct {
            const char *u;
            int64_t ms;
        } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
        if (!nd) return px_errf(PX_EINVAL, errstr, errstr_size, "'%.64s': expected -N<unit>, e.g. -15m", s);
        for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
            if (strcmp(p, units[i].u) == 0) {
                if (v > INT64_MAX / units[i].ms || v * units[i].ms > now_ms)
                    return px_errf(PX_EINVAL, errstr, errstr_size, "'%.64s': before 1970", s);
                *out_ms = now_ms - v * units[i].ms;
                return 0;
            }
        return px_errf(PX_EINVAL, errstr, errstr_size, "'%.64s': unit must be ms, s, m, h or d", s);
    }
    size_t len = strlen(s), nd = strspn(s, "0123456789");
    if (nd == len) { /* epoch ms */
        if (len > 15) return px_errf(PX_EINVAL, errstr, errstr_size, "'%.64s': epoch ms out of range", s);
        int64_t v = 0;
        for (size_t i = 0; i < len; i++) v = v * 10 + (s[i] - '0');
        if (v > WHEN_MAX_MS) return px_errf(PX_EINVAL, errstr, errstr_size, "'%.64s': after year 9999", s);
        *out_ms = v;
        return 0;
    }
    return parse_rfc3339(s, out_ms, errstr, errstr_size);
}

int px_when_range(const char *from, const char *to, int64_t now_ms, int64_t *from_ms, int64_t *to_ms,
                  char *errstr, size_t errstr_size) {
    int64_t f = 0, t = INT64_MAX;
    char e[200];
    if (from && px_when_parse(from, now_ms, &f, e, sizeof e))
        return px_errf(PX_EINVAL, errstr, errstr_size, "--from: %s", e);
    if (to && px_when_parse(to, now_ms, &t, e, sizeof e))
        return px_errf(PX_EINVAL, errstr, errstr_size, "--to: %s", e);
    if (f >= t) return px_errf(PX_EINVAL, errstr, errstr_size, "empty time range: --from is not before --to");
    *from_ms = f;
    *to_ms = t;
    return 0;
}

char *px_when_format(int64_t ms, char *out, size_t out_size) {
    if (ms < 0 || ms > WHEN_MAX_MS) {
        snprintf(out, out_size, "%lld", (long long)ms);
        return out;
    }
    int64_t days = ms / 86400000, rem = ms % 86400000, y, m, d;
    civil_from_days(days, &y, &m, &d);
    snprintf(out, out_size, "%04lld-%02lld-%02lldT%02lld:%02lld:%02lld.%03lldZ", (long long)y, (long long)m,
             (long long)d, (long long)(rem / 3600000), (long long)(rem / 60000 % 60), (long long)(rem / 1000 % 60),
             (long long)(rem % 1000));
    return out;
}
