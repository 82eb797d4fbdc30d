/*
 * px_proto.h - the JSON protocol between browsers and the gateway.
 *
 * Client to server: SUB, UNSUB, HB, LOCK, UNLOCK, parsed into px_msg_t.
 * Server to client: PRESENCE, LOCK_ACK, ERROR, written into a px_buf_t.
 * The wire format is documented with examples in docs/protocol.md.
 *
 * The parser is strict and hostile-input safe: input over PX_PROTO_MAX_MSG,
 * invalid JSON or UTF-8, duplicate keys, wrong JSON types, unknown message
 * types, bad identifiers and oversized fields are refused with an error
 * code word (the `code` of the ERROR message the gateway sends back).
 * Unknown keys are ignored so newer clients work with older gateways.
 * Related: px_event.h, gateway/, docs/protocol.md.
 */
#ifndef PX_PROTO_H
#define PX_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "px_buf.h"
#include "px_event.h"
#include "px_key.h"

#define PX_PROTO_MAX_MSG 4096 /* largest client message accepted, bytes */

typedef enum { PX_MSG_SUB = 0, PX_MSG_UNSUB, PX_MSG_HB, PX_MSG_LOCK, PX_MSG_UNLOCK, PX_MSG__COUNT } px_msg_type_t;

/* A parsed client message. Strings are NUL-terminated and empty when the
 * message did not carry them. */
typedef struct px_msg {
    px_msg_type_t type;
    bool has_target;                     /* entity and id were both given */
    char entity[PX_KEY_PART_MAX + 1];
    char id[PX_KEY_PART_MAX + 1];
    char tenant[PX_KEY_PART_MAX + 1];    /* optional; must match the token's */
    char tab_id[PX_ID_MAX + 1];          /* optional; the gateway picks one per connection */
    bool has_mode;
    px_mode_t mode;                      /* "view" | "edit" */
    bool has_dirty;
    bool dirty;
    bool has_status;
    px_status_t status;                  /* "online" | "away" */
    char field[PX_ID_MAX + 1];           /* LOCK/UNLOCK: required; HB: active field */
    char cursor[PX_NAME_MAX + 1];        /* HB: optional */
    char request_id[PX_ID_MAX + 1];      /* optional; echoed in LOCK_ACK and ERROR */
} px_msg_t;

/* Error code words the parser returns in *code (static strings). */
#define PX_PROTO_E_TOO_LARGE "TOO_LARGE"   /* over PX_PROTO_MAX_MSG */
#define PX_PROTO_E_BAD_JSON "BAD_JSON"     /* not JSON, not an object, bad UTF-8, duplicate key */
#define PX_PROTO_E_BAD_TYPE "BAD_TYPE"     /* type missing or unknown */
#define PX_PROTO_E_BAD_FIELD "BAD_FIELD"   /* a field has the wrong JSON type, value or length */

/* Parse one client message from buf[0..len) (need not be NUL-terminated).
 * Returns 0, or PX_EPROTO / PX_EINVAL with *code set to one of the words
 * above and a human-readable reason in errstr. `out` is overwritten. */
int px_proto_parse(const char *buf, size_t len, px_msg_t *out, const char **code, char *errstr,
                   size_t errstr_size);

const char *px_msg_type_name(px_msg_type_t t);

/* One user's aggregate over their live tabs on an entity. */
typedef struct px_viewer {
    const char *user_id;
    const char *name;
    int tabs;
    bool has_dirty_tab;
    px_mode_t mode;     /* edit if any tab edits */
    px_status_t status; /* online if any tab is online */
} px_viewer_t;

typedef struct px_lock_view {
    const char *field;
    const char *user_id;
    const char *name;
    const char *tab_id;
    int64_t token;
    int64_t expires_at_ms;
} px_lock_view_t;

/* Everything a PRESENCE message says about one entity. */
typedef struct px_presence_view {
    const px_key_t *key;
    const px_viewer_t *viewers;
    size_t n_viewers;
    const px_lock_view_t *locks;
    size_t n_locks;
    bool stale;
    const char *busy_by; /* NULL or "" when not stale */
    int64_t version;     /* 0 when never written */
} px_presence_view_t;

/* Writers: append one complete JSON message (no trailing newline) to out.
 * Strings are escaped; 0 or PX_ENOMEM (out's cap reached; out unchanged). */
int px_proto_write_presence(px_buf_t *out, const px_presence_view_t *v);
int px_proto_write_lock_ack(px_buf_t *out, const px_key_t *key, const char *field, bool success,
                            const char *holder_user_id, const char *holder_name, int64_t token,
                            const char *request_id);
int px_proto_write_error(px_buf_t *out, const char *code, const char *message,
                         const char *request_id);

/* Append s as a JSON string literal (quotes included, escaped). */
int px_proto_write_string(px_buf_t *out, const char *s);

#endif
