/*
 * px_view.h - the Redis view's format and the per-user aggregation.
 *
 * The processor writes an entity's view as one JSON string,
 * presence:{T:E:I}:view = {"tabs":[tab...],"locks":[lock...],"stale",
 * "busyBy","stale_until","version"}, each tab and lock an object with its
 * deadline (px_view_tab_encode, px_view_lock_encode; px_store.c writes the
 * whole). Readers (gateway, presencectl) decode it with px_view_decode,
 * which keeps only what is live at their clock, and fold the live tabs
 * into one px_viewer_t per user (px_view_aggregate).
 * Key layout and value formats are documented in docs/redis-keys.md.
 */
#ifndef PX_VIEW_H
#define PX_VIEW_H

#include <stddef.h>
#include <stdint.h>

#include "px_buf.h"
#include "px_event.h"
#include "px_proto.h"

/* One live tab as stored in the view. */
typedef struct px_view_tab {
    char tab_id[PX_ID_MAX + 1];
    char user_id[PX_ID_MAX + 1];
    char user_name[PX_NAME_MAX + 1];
    px_mode_t mode;
    bool dirty;
    px_status_t status;
    char field[PX_ID_MAX + 1];
    char cursor[PX_NAME_MAX + 1];
    int64_t since_ms;
    int64_t deadline_ms;
} px_view_tab_t;

/* One lock as stored in the view (field is the hash field, not in the JSON). */
typedef struct px_view_lock {
    char field[PX_ID_MAX + 1];
    char user_id[PX_ID_MAX + 1];
    char user_name[PX_NAME_MAX + 1];
    char tab_id[PX_ID_MAX + 1];
    int64_t token;
    int64_t deadline_ms;
} px_view_lock_t;

/* Redis key names for an entity: "presence:{T:E:I}:<suffix>". Returns the
 * length or -1 when out is too small (PX_KEY_MAX + 64 always suffices). */
int px_view_key(const px_key_t *key, const char *suffix, char *out, size_t out_size);
/* The pub/sub channel "presence:updates:{T:E:I}". */
int px_view_channel(const px_key_t *key, char *out, size_t out_size);
/* Parse a channel name back into its key. 0 or PX_EINVAL. */
int px_view_channel_parse(const char *channel, size_t len, px_key_t *out);

/* A tab as the view's JSON object {"tab","deadline","user","name","mode",
 * "dirty","status","field","cursor","since"}, appended to out (0 or
 * PX_ENOMEM, out unchanged). px_view_decode reads it back: it requires a
 * non-empty tab and user and a deadline >= 0, defaults the other members
 * when absent and refuses anything malformed. */
int px_view_tab_encode(const px_view_tab_t *t, px_buf_t *out);

/* A lock as the view's JSON object {"field","user","name","tab","token",
 * "deadline"}, appended to out (0 or PX_ENOMEM, out unchanged).
 * px_view_decode requires all six members with their JSON types (field
 * and user non-empty, strings within bounds, token and deadline integers
 * >= 0). */
int px_view_lock_encode(const px_view_lock_t *l, px_buf_t *out);

/* Largest view px_view_decode reads (the processor's largest, every cap
 * full and every string at its bound and fully escaped, is about 1.2 MB). */
#define PX_VIEW_MAX_BYTES (4u << 20)

/* One entity's view as a reader sees it at its clock. The caller points
 * tabs/locks at arrays of max_tabs/max_locks entries. */
typedef struct px_view {
    px_view_tab_t *tabs;
    size_t max_tabs, n_tabs;
    px_view_lock_t *locks;
    size_t max_locks, n_locks;
    size_t n_dropped; /* live items beyond max_tabs/max_locks, left out */
    bool stale;       /* stale and stale_until > now */
    char busy_by[PX_NAME_MAX + 1]; /* "" unless stale */
    int64_t stale_until_ms;
    int64_t version;
    px_view_tab_t scratch_tab; /* internal */
    px_view_lock_t scratch_lock;
} px_view_t;

/* Decode a view (the value of presence:{T:E:I}:view) as seen at now_ms:
 * tabs and locks whose deadline is <= now_ms are left out (written live,
 * expired since), in the order stored (locks sorted by field). Refuses the
 * whole view (PX_EINVAL, nothing kept) when it is not that JSON object,
 * any member or item is malformed or out of bounds, or it is over
 * PX_VIEW_MAX_BYTES; unknown members are ignored. */
int px_view_decode(const char *json, size_t len, int64_t now_ms, px_view_t *v);

/* Fold tabs[0..n) into viewers, one per user, in order of first
 * appearance: tabs counted, has_dirty_tab if any dirty, mode edit if any
 * edits, status online if any online. viewers must have room for n; the
 * viewers' strings point into tabs. Returns the number of viewers. */
size_t px_view_aggregate(const px_view_tab_t *tabs, size_t n, px_viewer_t *viewers);

#endif
