/*
 * px_event.h - the event model: one flat struct for every record presence
 * reads or writes (PresenceEvent, LockEvent, LifecycleEvent, ChangeEvent).
 *
 * Strings live in fixed-size arrays inside the struct, so a decoded event
 * owns all of its bytes, needs no free, and its size is bounded whatever
 * the input says. Every string is NUL-terminated, valid UTF-8 and contains
 * no NUL; an empty string means "absent" for optional fields. Integer
 * fields that are optional use PX_NONE (-1) for absent.
 *
 * The Avro schemas in schemas/<Name>.avsc mirror this struct field for field;
 * px_avro.c maps between them and px_proto.c maps WebSocket JSON onto it.
 * Related: px_key.h (the entity key), px_avro.h, px_proto.h.
 */
#ifndef PX_EVENT_H
#define PX_EVENT_H

#include <stdbool.h>
#include <stdint.h>

#include "px_key.h"

/* Bounds on every string field, in bytes (not counting the NUL). */
#define PX_ID_MAX 128     /* tab_id, user_id, field, request_id, write_id */
#define PX_NAME_MAX 256   /* user_name, busy_by, cursor */
#define PX_TOPIC_MAX 249  /* Kafka's own limit on topic names */

#define PX_NONE (-1)

typedef enum {
    PX_KIND_PRESENCE = 0, /* presence.heartbeats, schema PresenceEvent */
    PX_KIND_LOCK,         /* presence.locks, schema LockEvent */
    PX_KIND_LIFECYCLE,    /* core.entities.lifecycle.*, schema LifecycleEvent */
    PX_KIND_CHANGE,       /* presence.changes, schema ChangeEvent */
    PX_KIND__COUNT
} px_kind_t;

/* PresenceEvent.type */
typedef enum { PX_PRES_SUB = 0, PX_PRES_HB, PX_PRES_UNSUB, PX_PRES_EXPIRE, PX_PRES__COUNT } px_pres_type_t;
/* LockEvent.type */
typedef enum { PX_LOCK_LOCK = 0, PX_LOCK_UNLOCK, PX_LOCK_EXPIRE, PX_LOCK__COUNT } px_lock_type_t;
/* LifecycleEvent.type (EXPIRE: the processor's stale deadline, mutating topic only) */
typedef enum { PX_LC_MUTATING = 0, PX_LC_MUTATED, PX_LC_EXPIRE, PX_LC__COUNT } px_lc_type_t;
/* ChangeEvent.type */
typedef enum {
    PX_CH_JOINED = 0,
    PX_CH_LEFT,
    PX_CH_TIMED_OUT,
    PX_CH_UPDATED,
    PX_CH_LOCK_GRANTED,
    PX_CH_LOCK_DENIED,
    PX_CH_LOCK_RELEASED,
    PX_CH_LOCK_EXPIRED,
    PX_CH_STALE_SET,
    PX_CH_STALE_CLEARED,
    PX_CH_VERSION_BUMPED,
    PX_CH__COUNT
} px_change_type_t;

typedef enum { PX_MODE_VIEW = 0, PX_MODE_EDIT } px_mode_t;
typedef enum { PX_STATUS_ONLINE = 0, PX_STATUS_AWAY } px_status_t;

typedef struct px_event {
    px_kind_t kind;
    int type;        /* px_pres_type_t, px_lock_type_t, px_lc_type_t or px_change_type_t by kind */
    px_key_t key;    /* tenant:entity:id; also the Kafka record key */
    int64_t ts_ms;   /* event time: set by the gateway (or producer) on receipt */

    /* who: presence, lock, change */
    char tab_id[PX_ID_MAX + 1];
    char user_id[PX_ID_MAX + 1];
    char user_name[PX_NAME_MAX + 1];

    /* presence: what the tab is doing */
    px_mode_t mode;
    bool dirty;
    px_status_t status;
    char cursor[PX_NAME_MAX + 1]; /* opaque client cursor, optional */

    /* presence: the active field (optional); lock and change: the field */
    char field[PX_ID_MAX + 1];

    /* lock (and the change answering it): client request id, optional */
    char request_id[PX_ID_MAX + 1];

    /* EXPIRE records: the deadline they enforce; PX_NONE otherwise */
    int64_t expires_at_ms;

    /* lifecycle */
    char busy_by[PX_NAME_MAX + 1];  /* who writes the record (MUTATING) */
    char write_id[PX_ID_MAX + 1];   /* pairs MUTATING with its MUTATED; optional */
    int64_t version;                /* MUTATED: the new version, PX_NONE = bump */

    /* change */
    int64_t token;                       /* fencing token of a lock grant, PX_NONE */
    char holder_user_id[PX_ID_MAX + 1];  /* LOCK_DENIED: who holds the field */
    char holder_name[PX_NAME_MAX + 1];
    char src_topic[PX_TOPIC_MAX + 1];    /* the input record this change came from */
    int32_t src_partition;
    int64_t src_offset;
} px_event_t;

/* Reset to an empty event of `kind` with every optional field absent. */
void px_event_init(px_event_t *ev, px_kind_t kind);

/* Name of a kind ("presence", ...) and of a type within a kind ("SUB",
 * "LOCK_GRANTED", ...); "?" for out-of-range values. Static storage. */
const char *px_kind_name(px_kind_t kind);
const char *px_event_type_name(px_kind_t kind, int type);

/* Parse a type name for a kind; returns the type or -1. */
int px_event_type_parse(px_kind_t kind, const char *name);

/* Number of types a kind has (PX_PRES__COUNT, ...). */
int px_event_type_count(px_kind_t kind);

/* Check the fields a record of this kind and type must carry (required
 * strings non-empty, enums in range, ts_ms > 0, EXPIRE carries
 * expires_at_ms, ...). Returns 0 or PX_EINVAL with the reason in errstr.
 * Every decoder calls it, so nothing invalid reaches the fold. */
int px_event_validate(const px_event_t *ev, char *errstr, size_t errstr_size);

#endif
