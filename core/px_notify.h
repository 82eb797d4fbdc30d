/*
 * px_notify.h - the processor's notification on presence:updates:{T:E:I},
 * the one format the processor writes and the gateways read
 * (docs/redis-keys.md):
 *
 *   written  [change,...]             after a write that changed Redis: the
 *                                     entity's changes since its last write
 *                                     (may be [] : the changes were lost, so
 *                                     a reader re-reads the entity)
 *   decided  {"decided":[change,...]} a batch's lock decisions, before its
 *                                     commit (docs/exactly-once.md, "Early
 *                                     lock decisions"); Redis does not hold
 *                                     them yet, so a reader does not re-read
 *
 * change: {"type":"LOCK_GRANTED","user":..,"tab_id":..,"field":..,
 * "request_id":..,"holder":..,"holder_name":..,"token":N}, each string
 * member present only when not empty, token only when >= 0.
 *
 * Writer side: a px_notify_t collects changes (bounded: a change that does
 * not fit is left out, and the list is marked lossy, which a reader cannot
 * tell from a complete list: it re-reads the entity on every `written`
 * anyway), then px_notify_encode frames them. Reader side:
 * px_notify_decode, which also accepts the `written` array without its
 * closing bracket (what processors before this codec sent).
 */
#ifndef PX_NOTIFY_H
#define PX_NOTIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "px_buf.h"
#include "px_event.h"

typedef enum { PX_NOTIFY_WRITTEN = 0, PX_NOTIFY_DECIDED = 1 } px_notify_kind_t;

/* The changes collected for one notification. */
typedef struct px_notify {
    px_buf_t body;  /* the changes, comma-separated, without the brackets */
    uint32_t n;     /* changes in body */
    bool pending;   /* publish even with no change (px_notify_touch) */
} px_notify_t;

/* Empty, holding at most max bytes of changes. Allocates nothing. */
void px_notify_init(px_notify_t *n, size_t max);
void px_notify_term(px_notify_t *n);
/* Empty again (keeps the storage). */
void px_notify_reset(px_notify_t *n);
/* Append change c (kind PX_KIND_CHANGE). 0, or PX_ENOMEM when it does not
 * fit (n keeps what it had). */
int px_notify_add(px_notify_t *n, const px_event_t *c);
/* Publish an empty `written` list if nothing is added before the next
 * encode: the changes were lost, readers must re-read. */
static inline void px_notify_touch(px_notify_t *n) { n->pending = true; }
/* Something to publish: a change, or a touch. */
static inline bool px_notify_any(const px_notify_t *n) { return n->n > 0 || n->pending; }
/* Frame n's changes as a notification of the given kind into out (reset
 * first). 0, or PX_ENOMEM; a `written` notification that does not fit is
 * written as [] instead (readers re-read), so it never fails. */
int px_notify_encode(const px_notify_t *n, px_notify_kind_t kind, px_buf_t *out);

/* One change as decoded: strings are "" when absent and valid only during
 * the callback; type is a px_change_type_t, or -1 for a name this build
 * does not know (type_name says which); token -1 when absent. */
typedef struct px_notify_change {
    int type;
    const char *type_name;
    const char *user, *tab_id, *field, *request_id, *holder, *holder_name;
    int64_t token;
} px_notify_change_t;

typedef void (*px_notify_cb)(void *arg, const px_notify_change_t *c);

/* Which changes a reader wants: PX_NOTIFY_LOCKS the LOCK_* ones only (a
 * notification without one is not parsed at all: most carry presence
 * changes alone), PX_NOTIFY_ALL every one. */
typedef enum { PX_NOTIFY_ALL = 0, PX_NOTIFY_LOCKS = 1 } px_notify_filter_t;

/* Decode json[0..len): *kind is set whatever the outcome (DECIDED when the
 * text is framed as one, else WRITTEN), then cb is called for each wanted
 * change in order. 0; or PX_EPROTO (not a notification: garbage, wrong
 * types; changes before the fault may have been passed to cb) with the
 * reason in errstr. Members that are not objects, and members of a change
 * that are not of their type, are skipped. */
int px_notify_decode(const char *json, size_t len, px_notify_filter_t filter, px_notify_kind_t *kind,
                     px_notify_cb cb, void *arg, char *errstr, size_t errstr_size);

#endif
