/*
 * gw_self.c - the subscriber's own tab in its PRESENCEs (gw_self.h).
 */
#include <string.h>

#include "gw_self.h"

void gw_self_start(gw_self_t *s, int64_t sub_ts_ms, int64_t now_mono_ms, int64_t bound_ms) {
    s->pending = true;
    s->sent = false;
    s->ts_ms = sub_ts_ms;
    s->until_ms = now_mono_ms + bound_ms;
}

bool gw_self_merge(gw_self_t *s, const px_view_tab_t *tabs, size_t n, const char *tab_id, const char *user_id,
                   int64_t now_mono_ms, long *at) {
    *at = -1;
    if (!s->pending) return false;
    for (size_t i = 0; i < n; i++) {
        const px_view_tab_t *t = &tabs[i];
        if (strcmp(t->tab_id, tab_id) != 0 || strcmp(t->user_id, user_id) != 0) continue;
        if (t->since_ms >= s->ts_ms) {
            s->pending = false;
            return false;
        }
        *at = (long)i;
        break;
    }
    if (s->sent && now_mono_ms >= s->until_ms) {
        s->pending = false;
        *at = -1;
        return false;
    }
    return true;
}
