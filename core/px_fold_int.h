/*
 * px_fold_int.h - internals of the fold shared by its files (not part of
 * the public API in px_fold.h):
 *   px_fold_entity.c  an entity's storage: packed strings, lifetime, deep
 *                     copy, array growth, the write-id hash;
 *   px_fold.c         the transitions (px_fold_apply);
 *   px_fold_due.c     deadlines and the EXPIRE records (px_fold_due);
 *   px_fold_view.c    reading a state (view, equality, dump).
 * px_fold.c builds on px_fold_entity.c; px_fold_due.c uses only what is
 * inline here; neither calls the other.
 */
#ifndef PX_FOLD_INT_H
#define PX_FOLD_INT_H

#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "px_fold.h"

/* a + b for a deadline, saturating at INT64_MAX (ts and ttls are >= 0). */
static inline int64_t px_fold_add(int64_t a, int64_t b) {
    return (a > INT64_MAX - b) ? INT64_MAX : a + b;
}

static inline int64_t px_fold_max(int64_t a, int64_t b) {
    return a > b ? a : b;
}

/* strcpy into an event field of the item string's limit: the fold's
 * strings come from validated records or px_store_decode, both within the
 * px_event.h limits, so a longer one cannot happen. */
#define PX_FOLD_CPY(dst, src)                                                                      \
    do {                                                                                           \
        const char *px_s_ = (src);                                                                 \
        size_t px_n_ = strlen(px_s_);                                                              \
        assert(px_n_ < sizeof(dst));                                                               \
        memcpy((dst), px_s_, px_n_ + 1);                                                           \
    } while (0)

/* ---- packed strings (px_fold_entity.c) ----------------------------------- */

#define PX_FOLD_PACK_MAX 5

/* An item's strings packed apart from the item: built first (the only
 * step that can fail: nothing has changed yet), then committed. */
typedef struct px_fold_pack {
    char *heap; /* malloc'd block, or NULL: the strings are in[0..len) */
    size_t len;
    uint16_t off[PX_FOLD_PACK_MAX];
    char in[PX_FOLD_LOCK_INLINE];
} px_fold_pack_t;

/* Pack a tab's (a lock's) strings into p: into p->in when they fit the
 * item's in[], else into a block p owns until committed. 0 or PX_ENOMEM
 * (nothing to free). */
int px_fold_tab_pack(px_fold_pack_t *p, const char *tab_id, const char *user_id, const char *user_name,
                     const char *field, const char *cursor);
int px_fold_lock_pack(px_fold_pack_t *p, const char *field, const char *tab_id, const char *user_id,
                      const char *user_name);
/* Give the item p's strings (and p's block, if any), freeing the block the
 * item had. Cannot fail. */
void px_fold_tab_commit(px_fold_tab_t *t, const px_fold_pack_t *p);
void px_fold_lock_commit(px_fold_lock_t *l, const px_fold_pack_t *p);

/* ---- array growth (px_fold_entity.c) ------------------------------------- */

/* Make room for `need` items in e's array of that part, doubling up to max
 * (gone and done: up to their ring sizes, a larger need is clamped). 0 or
 * PX_ENOMEM with the array and its count unchanged. */
int px_fold_reserve_tabs(px_entity_t *e, size_t need, size_t max);
int px_fold_reserve_locks(px_entity_t *e, size_t need, size_t max);
int px_fold_reserve_writes(px_entity_t *e, size_t need, size_t max);
int px_fold_reserve_gone(px_entity_t *e, size_t need);
int px_fold_reserve_done(px_entity_t *e, size_t need);

/* ---- lookups --------------------------------------------------------------- */

/* Binary search of tabs (sorted by tab_id) or locks (by field): the index
 * of key, or where it would go (*found false). One body for both. */
#define PX_FOLD_BSEARCH(arr, n, name_of, key, found)                                               \
    do {                                                                                           \
        size_t lo_ = 0, hi_ = (n);                                                                 \
        while (lo_ < hi_) {                                                                        \
            size_t mid_ = lo_ + (hi_ - lo_) / 2;                                                   \
            int cmp_ = strcmp(name_of(&(arr)[mid_]), (key));                                       \
            if (cmp_ == 0) {                                                                       \
                *(found) = true;                                                                   \
                return mid_;                                                                       \
            }                                                                                      \
            if (cmp_ < 0) lo_ = mid_ + 1;                                                          \
            else hi_ = mid_;                                                                       \
        }                                                                                          \
        *(found) = false;                                                                          \
        return lo_;                                                                                \
    } while (0)

/* Inline: the transitions and the deadlines look tabs up on hot paths. */
static inline size_t px_fold_tab_find(const px_entity_t *e, const char *id, bool *found) {
    PX_FOLD_BSEARCH(e->tabs, e->n_tabs, px_fold_tab_id, id, found);
}

#endif
