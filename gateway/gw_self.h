/*
 * gw_self.h - a subscriber's own tab in the PRESENCEs it is sent, as a pure
 * decision. A SUB reaches the view only after the processor folds it, so
 * the first PRESENCE after a SUB could show the room without the
 * subscriber; until the view shows the tab, the gateway merges the tab's
 * declared state into that subscriber's PRESENCEs (gw_push.c), for at
 * most a bound after the SUB (GW_SELF_MERGE_MS) and never before one
 * merged PRESENCE went out. Unit-tested in tests/unit/test_gw_self.c.
 */
#ifndef PX_GW_SELF_H
#define PX_GW_SELF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "px_view.h"

typedef struct gw_self {
    bool pending;     /* the SUB's fold may not be in the view yet */
    bool sent;        /* a merged PRESENCE went out since the SUB */
    int64_t ts_ms;    /* the SUB record's ts (wall clock), as the fold's `since` */
    int64_t until_ms; /* monotonic: past it, and one merged PRESENCE sent, merging ends */
} gw_self_t;

/* A SUB stamped sub_ts_ms went out at now_mono_ms: merge for at most
 * bound_ms. */
void gw_self_start(gw_self_t *s, int64_t sub_ts_ms, int64_t now_mono_ms, int64_t bound_ms);
/* Whether a PRESENCE from the view tabs[0..n) gets the subscriber's tab
 * (tab_id of user_id) merged in: yes while pending, until the view holds
 * that tab joined at or after the SUB's ts (the processor's fold of this
 * SUB), or until_ms has passed and one merged PRESENCE went out; once the
 * answer is no it stays no (pending cleared). *at is the tab's index in
 * the view (an older state of the tab, to be replaced), or -1. */
bool gw_self_merge(gw_self_t *s, const px_view_tab_t *tabs, size_t n, const char *tab_id, const char *user_id,
                   int64_t now_mono_ms, long *at);

#endif
