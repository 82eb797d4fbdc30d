/*
 * px_fold.h - the fold: how input records become one entity's state, and
 * which change events each record yields. Pure: no I/O, no clock, no
 * globals; event time (ev->ts_ms) only. docs/fold.md is the specification;
 * this file is its one implementation, shared by the processor,
 * presencectl (replay/verify) and the tests.
 *
 * State is split into parts, each changed by records of one topic only
 * (tabs and pres_ts: presence.heartbeats; locks: presence.locks; open and
 * known writes: the mutating topic; version, completed writes and
 * closed-up-to: the mutated topic, whose effect on open writes commutes).
 * So the final state and every record's change events are the same for
 * every interleaving of the four topics that keeps each topic's own order.
 *
 * Limits: per-entity caps (px_fold_conf_t) bound memory whatever the input;
 * a record that would exceed one is refused (PX_EINVAL, nothing changes).
 * Write ids are remembered as 64-bit FNV-1a hashes in two bounded rings
 * (completed ids, closed-but-known writes); see docs/fold.md.
 * Related: px_fold.c (transitions), px_fold_due.c (deadlines, EXPIRE
 * records), px_fold_entity.c (an entity's storage and lifetime),
 * px_fold_view.c (view, equal, dump), px_fold_int.h (what they share),
 * px_event.h, px_proto.h (px_presence_view_t), tests/unit/test_fold.c.
 */
#ifndef PX_FOLD_H
#define PX_FOLD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "px_buf.h"
#include "px_event.h"
#include "px_key.h"
#include "px_proto.h"

#define PX_FOLD_DONE_MAX 64 /* completed write ids remembered (ring of hashes) */
#define PX_FOLD_GONE_MAX 64 /* writes closed by MUTATED still awaiting a possible EXPIRE */
/* The largest caps a configuration may set (px_fold_conf_t); also the
 * defaults. px_store_decode refuses stored states above them. */
#define PX_FOLD_TABS_MAX 256
#define PX_FOLD_LOCKS_MAX 64
#define PX_FOLD_WRITES_MAX 32

/* Semantics settings; validated by the caller's config layer. */
typedef struct px_fold_conf {
    int64_t presence_ttl_ms; /* a tab lives until last_seen + this (60000) */
    int64_t lock_ttl_ms;     /* a lock lives until max(refreshed, holder last_seen) + this (120000) */
    int64_t stale_ttl_ms;    /* an open write counts until its ts + this (300000) */
    uint32_t max_tabs;       /* tabs per entity (256, at most PX_FOLD_TABS_MAX) */
    uint32_t max_locks;      /* locks per entity (64, at most PX_FOLD_LOCKS_MAX) */
    uint32_t max_open_writes; /* open writes per entity (32, at most PX_FOLD_WRITES_MAX) */
} px_fold_conf_t;

/* The defaults above. */
px_fold_conf_t px_fold_conf_default(void);

/* The input topic a record was read from. The two lifecycle topics are
 * distinct sources: MUTATING (and lifecycle EXPIRE) belong on the mutating
 * topic, MUTATED on the mutated topic. */
typedef enum {
    PX_SRC_HEARTBEATS = 0, /* presence.heartbeats: PresenceEvent */
    PX_SRC_LOCKS,          /* presence.locks: LockEvent */
    PX_SRC_MUTATING,       /* core.entities.lifecycle.mutating: MUTATING, EXPIRE */
    PX_SRC_MUTATED,        /* core.entities.lifecycle.mutated: MUTATED */
    PX_SRC__COUNT
} px_src_topic_t;

/* Where a record came from: copied into its change events (topic name
 * excepted: the caller fills src_topic, the fold leaves it empty). The
 * offset of a granting LOCK is the lock's fencing token. */
typedef struct px_src {
    px_src_topic_t topic;
    int32_t partition;
    int64_t offset;
} px_src_t;

/* The strings of a tab, lock or write are packed one after another, each
 * NUL-terminated, into the item's own in[] when they fit (ids and names of
 * a few bytes: the common case), else into one malloc'd block the item owns
 * (heap). off[i] is where string i starts in whichever holds them. Read
 * them with the accessors below (valid until the item changes or moves).
 * Items move by plain copy (memmove in their array): the heap block goes
 * with them. Why: fixed arrays of the id/name limits (PX_ID_MAX,
 * PX_NAME_MAX) made a tab ~900 bytes, and a replay of 100k entities touch
 * 1 GB; packed, a tab is 128 bytes. The limits themselves are unchanged. */
#define PX_FOLD_TAB_INLINE 90
#define PX_FOLD_LOCK_INLINE 95
#define PX_FOLD_WRITE_INLINE 43

enum { PX_FOLD_TAB_S_ID, PX_FOLD_TAB_S_USER_ID, PX_FOLD_TAB_S_USER_NAME, PX_FOLD_TAB_S_FIELD, PX_FOLD_TAB_S_CURSOR,
       PX_FOLD_TAB_S__COUNT };
enum { PX_FOLD_LOCK_S_FIELD, PX_FOLD_LOCK_S_TAB_ID, PX_FOLD_LOCK_S_USER_ID, PX_FOLD_LOCK_S_USER_NAME,
       PX_FOLD_LOCK_S__COUNT };
enum { PX_FOLD_WRITE_S_ID, PX_FOLD_WRITE_S_BUSY_BY, PX_FOLD_WRITE_S__COUNT };

/* One tab (presence part): tab_id, user_id, user_name, field, cursor. */
typedef struct px_fold_tab {
    int64_t since_ms;     /* ts of the record that joined it */
    int64_t last_seen_ms; /* max ts of its SUB/HB */
    char *heap;           /* the strings when they do not fit in[] (owned), else NULL */
    uint16_t off[PX_FOLD_TAB_S__COUNT];
    uint8_t mode;         /* px_mode_t */
    uint8_t status;       /* px_status_t */
    bool dirty;
    bool expire_requested; /* bookkeeping for px_fold_due, not folded state */
    char in[PX_FOLD_TAB_INLINE];
} px_fold_tab_t;

/* One held lock (locks part): field, tab_id, user_id, user_name. */
typedef struct px_fold_lock {
    int64_t token;        /* offset of the granting LOCK */
    int64_t refreshed_ms; /* max ts of the grant and the holder's re-LOCKs */
    char *heap;           /* as in px_fold_tab_t */
    uint16_t off[PX_FOLD_LOCK_S__COUNT];
    bool expire_requested;
    char in[PX_FOLD_LOCK_INLINE];
} px_fold_lock_t;

/* One open write (mutating part): a MUTATING no MUTATED or EXPIRE closed;
 * write_id ("" when the producer gave none), busy_by. */
typedef struct px_fold_write {
    int64_t ts_ms;
    char *heap; /* as in px_fold_tab_t */
    uint16_t off[PX_FOLD_WRITE_S__COUNT];
    bool expire_requested;
    char in[PX_FOLD_WRITE_INLINE];
} px_fold_write_t;

static inline const char *px_fold_str_at(const char *heap, const char *in, uint16_t off) {
    return (heap ? heap : in) + off;
}
static inline const char *px_fold_tab_id(const px_fold_tab_t *t) {
    return px_fold_str_at(t->heap, t->in, t->off[PX_FOLD_TAB_S_ID]);
}
static inline const char *px_fold_tab_user_id(const px_fold_tab_t *t) {
    return px_fold_str_at(t->heap, t->in, t->off[PX_FOLD_TAB_S_USER_ID]);
}
static inline const char *px_fold_tab_user_name(const px_fold_tab_t *t) {
    return px_fold_str_at(t->heap, t->in, t->off[PX_FOLD_TAB_S_USER_NAME]);
}
static inline const char *px_fold_tab_field(const px_fold_tab_t *t) {
    return px_fold_str_at(t->heap, t->in, t->off[PX_FOLD_TAB_S_FIELD]);
}
static inline const char *px_fold_tab_cursor(const px_fold_tab_t *t) {
    return px_fold_str_at(t->heap, t->in, t->off[PX_FOLD_TAB_S_CURSOR]);
}
static inline const char *px_fold_lock_field(const px_fold_lock_t *l) {
    return px_fold_str_at(l->heap, l->in, l->off[PX_FOLD_LOCK_S_FIELD]);
}
static inline const char *px_fold_lock_tab_id(const px_fold_lock_t *l) {
    return px_fold_str_at(l->heap, l->in, l->off[PX_FOLD_LOCK_S_TAB_ID]);
}
static inline const char *px_fold_lock_user_id(const px_fold_lock_t *l) {
    return px_fold_str_at(l->heap, l->in, l->off[PX_FOLD_LOCK_S_USER_ID]);
}
static inline const char *px_fold_lock_user_name(const px_fold_lock_t *l) {
    return px_fold_str_at(l->heap, l->in, l->off[PX_FOLD_LOCK_S_USER_NAME]);
}
static inline const char *px_fold_write_id(const px_fold_write_t *w) {
    return px_fold_str_at(w->heap, w->in, w->off[PX_FOLD_WRITE_S_ID]);
}
static inline const char *px_fold_write_busy_by(const px_fold_write_t *w) {
    return px_fold_str_at(w->heap, w->in, w->off[PX_FOLD_WRITE_S_BUSY_BY]);
}

/* Set an item's strings (each within its px_event.h limit: the caller
 * checked), replacing the ones it had; the arguments may point into the
 * item itself. For builders of state outside the fold (px_store_decode,
 * tests). A zeroed item has every string "". 0, or PX_ENOMEM with the item
 * unchanged. The item owns what this allocates: px_entity_term frees it
 * once the item is counted in its entity's n_tabs/n_locks/n_writes. */
int px_fold_tab_set_strs(px_fold_tab_t *t, const char *tab_id, const char *user_id, const char *user_name,
                         const char *field, const char *cursor);
int px_fold_lock_set_strs(px_fold_lock_t *l, const char *field, const char *tab_id, const char *user_id,
                          const char *user_name);
int px_fold_write_set_strs(px_fold_write_t *w, const char *write_id, const char *busy_by);

/* A write the mutated topic closed whose MUTATING was seen: kept (as a
 * hash) only so that an EXPIRE already produced for it yields the same
 * change whether it is applied before or after the MUTATED. */
typedef struct px_fold_gone {
    int64_t ts_ms;
    uint64_t id_hash;
} px_fold_gone_t;

/* One entity's folded state. Arrays grow by doubling up to their caps and
 * are owned by the entity (px_entity_term frees them and the strings
 * blocks of their items). tabs are sorted by
 * tab_id, locks by field, writes in mutating-topic order, gone by (ts,
 * hash); done is a ring (done_head = oldest when full). */
typedef struct px_entity {
    px_key_t key;
    px_fold_tab_t *tabs;
    px_fold_lock_t *locks;
    px_fold_write_t *writes;
    px_fold_gone_t *gone;
    uint64_t *done;
    uint32_t n_tabs, cap_tabs;
    uint16_t n_locks, cap_locks;
    uint16_t n_writes, cap_writes;
    uint16_t n_gone, cap_gone;
    uint16_t n_done, done_head, cap_done;
    int64_t pres_ts_ms;      /* max ts of presence records applied; 0 = none */
    int64_t closed_up_to_ms; /* max ts of MUTATED without write_id; 0 = none */
    int64_t version;         /* 0 = never written */
} px_entity_t;

/* Initialise an empty entity for key (copied). Allocates nothing. */
void px_entity_init(px_entity_t *e, const px_key_t *key);
/* Free the arrays; e may be initialised again. */
void px_entity_term(px_entity_t *e);
/* Heap-allocated entity; NULL on OOM. Free with px_entity_free (NULL ok). */
px_entity_t *px_entity_new(const px_key_t *key);
void px_entity_free(px_entity_t *e);
/* Deep copy of src into dst (dst must be initialised or terminated; its
 * arrays are replaced). Includes the expire-requested marks. 0 or PX_ENOMEM
 * (dst then empty). */
int px_entity_copy(px_entity_t *dst, const px_entity_t *src);

/* Called once per change event, in the fold's order; ev is only valid
 * during the call (copy what you keep). It cannot refuse: preallocate. */
typedef void (*px_fold_emit_fn)(void *arg, const px_event_t *ev);

/* Apply one input record ev read from src to e, calling emit for each
 * change (kind PX_KIND_CHANGE, ts = ev->ts_ms, key = e->key, src_partition
 * and src_offset from src, src_topic empty). ev must have passed
 * px_event_validate(). Returns 0 (also for records the rules ignore), or
 * PX_EINVAL when the record does not belong here (kind or type not of
 * src->topic, another key, a negative partition or offset) or would exceed
 * a cap, and PX_ENOMEM when growing an array fails; on error nothing changed
 * and nothing was emitted. emit may be NULL. */
int px_fold_apply(px_entity_t *e, const px_fold_conf_t *c, const px_event_t *ev, const px_src_t *src,
                  px_fold_emit_fn emit, void *arg);

/* For wall-clock now_ms, emit the EXPIRE input records that are due and not
 * requested yet (tabs by tab_id, then locks by field, then writes in
 * order), marking each so a second call does not emit it again (a refresh
 * of the item clears the mark). Records: kind PRESENCE/LOCK/LIFECYCLE, type
 * EXPIRE, key, ts = now_ms, expires_at_ms = the deadline enforced, and the
 * item's ids; the caller produces them into the item's topic (lifecycle:
 * the mutating topic). Returns how many were emitted. */
size_t px_fold_due(px_entity_t *e, const px_fold_conf_t *c, int64_t now_ms, px_fold_emit_fn emit_expire,
                   void *arg);

/* The earliest time at which px_fold_due would emit something, ignoring
 * requested items; INT64_MAX when none. May be in the past. */
int64_t px_fold_next_deadline(const px_entity_t *e, const px_fold_conf_t *c);

/* A lock's deadline as the view shows it: max(refreshed, holder tab's
 * last_seen) + lock_ttl when the holder tab is present (same tab id and
 * user), else refreshed + lock_ttl. */
int64_t px_fold_lock_deadline(const px_entity_t *e, const px_fold_conf_t *c, const px_fold_lock_t *l);

/* A tab's deadline: last_seen + presence_ttl, saturating. The view, the
 * EXPIRE records and the Redis keys all use this one formula. */
int64_t px_fold_tab_deadline(const px_fold_conf_t *c, const px_fold_tab_t *t);
/* An open write's deadline: ts + stale_ttl, saturating. */
int64_t px_fold_write_deadline(const px_fold_conf_t *c, const px_fold_write_t *w);

/* Fill out with the view of e at now_ms: viewers aggregated per user over
 * tabs live at now (last_seen + ttl > now), sorted by user_id; locks with
 * deadline > now, sorted by field; stale/busy_by from writes with ts +
 * stale_ttl > now (busy_by of the latest); version. Strings point into e
 * (valid until e changes); viewers[viewers_cap] and locks[locks_cap] are the
 * caller's (e->n_tabs and e->n_locks always suffice). 0 or PX_ENOMEM when an
 * array is too small. */
int px_fold_view(const px_entity_t *e, const px_fold_conf_t *c, int64_t now_ms, px_viewer_t *viewers,
                 size_t viewers_cap, px_lock_view_t *locks, size_t locks_cap, px_presence_view_t *out);

/* Whether the derived stale flag holds at now_ms; *busy_by (if non-NULL)
 * gets the latest live write's busy_by or "" (points into e). */
bool px_fold_stale(const px_entity_t *e, const px_fold_conf_t *c, int64_t now_ms, const char **busy_by);

/* Equal folded state (key and every part; not the expire-requested marks). */
bool px_entity_equal(const px_entity_t *a, const px_entity_t *b);

/* Append e's folded state to out as canonical JSON (fixed key order, parts
 * in their sorted order, no marks), for test diffs and verify. 0 or
 * PX_ENOMEM (out's cap reached). */
/* The folded parts of e as JSON members, from "pres_ts" to "version" (no
 * braces, no key): the body px_entity_dump and the stored state blob
 * (px_store_encode) share. Appends to out; 0 or PX_ENOMEM. */
int px_entity_dump_parts(const px_entity_t *e, px_buf_t *out);
int px_entity_dump(const px_entity_t *e, px_buf_t *out);

/* The 64-bit FNV-1a hash write ids are remembered by. */
uint64_t px_fold_id_hash(const char *s);

#endif
