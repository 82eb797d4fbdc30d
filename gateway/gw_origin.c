/*
 * gw_origin.c - the origin allow-list (gw_origin.h).
 */
#include <string.h>

#include "gw_origin.h"

bool gw_origin_allowed(const char *list, const char *origin, size_t len) {
    if (!list[0] || !origin || len == 0) return true;
    for (const char *p = list; *p;) {
        while (*p == ' ' || *p == ',') p++;
        const char *e = p;
        while (*e && *e != ',') e++;
        size_t l = (size_t)(e - p);
        while (l && p[l - 1] == ' ') l--;
        if (l && l == len && memcmp(p, origin, l) == 0) return true;
        p = e;
    }
    return false;
}
