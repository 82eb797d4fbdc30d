/*
 * px_view.h - the Redis view's value formats and the per-user aggregation.
 *
 * The processor writes each live tab of an entity as one field of
 * presence:{T:E:I}:tab whose value is a small JSON object (px_view_tab_
 * encode); readers (gateway, presencectl) decode it (px_view_tab_decode)
 * and fold the live tabs into one px_viewer_t per user (px_view_aggregate).
 * Each held lock is one field of presence:{T:E:I}:locks, a JSON object too
 * (px_view_lock_encode / px_view_lock_decode).
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

/* Tab value (without tab_id and deadline, which live in the ZSET member and
 * score) <-> JSON. encode appends to out; decode fills every field but
 * tab_id/deadline_ms and refuses anything malformed (PX_EINVAL). */
int px_view_tab_encode(const px_view_tab_t *t, px_buf_t *out);
int px_view_tab_decode(const char *json, size_t len, px_view_tab_t *out);

/* Lock value (without field) <-> JSON {"user","name","tab","token",
 * "deadline"}. encode appends to out (0 or PX_ENOMEM, out unchanged);
 * decode fills every field but `field`, requires all five members with
 * their JSON types (strings within bounds, token and deadline integers
 * >= 0) and refuses anything else with PX_EINVAL. */
int px_view_lock_encode(const px_view_lock_t *l, px_buf_t *out);
int px_view_lock_decode(const char *json, size_t len, px_view_lock_t *out);

/* Fold tabs[0..n) into viewers, one per user, in order of first
 * appearance: tabs counted, has_dirty_tab if any dirty, mode edit if any
 * edits, status online if any online. viewers must have room for n; the
 * viewers' strings point into tabs. Returns the number of viewers. */
size_t px_view_aggregate(const px_view_tab_t *tabs, size_t n, px_viewer_t *viewers);

#endif
