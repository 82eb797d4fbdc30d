/*
 * gw_event.c - the one path from a client's request to a Kafka record,
 * shared by the WebSocket messages (gw_msg.c) and the REST routes
 * (gw_rest.c): the event is built from the caller's identity and tab,
 * stamped with the gateway's clock (clients' clocks are never trusted),
 * and produced only while Kafka is up, so a client learns at once
 * (UNAVAILABLE) that its write did not go out instead of waiting for
 * librdkafka's queue to time out.
 */
#include <stdio.h>

#include "gw.h"
#include "px_time.h"

static void stamp(px_event_t *ev, const px_key_t *key, const gw_identity_t *who, const char *tab_id) {
    ev->key = *key;
    ev->ts_ms = px_now_ms();
    snprintf(ev->tab_id, sizeof ev->tab_id, "%s", tab_id);
    snprintf(ev->user_id, sizeof ev->user_id, "%s", who->user_id);
    snprintf(ev->user_name, sizeof ev->user_name, "%s", who->user_name);
}

void gw_event_presence(px_event_t *ev, px_pres_type_t type, const px_key_t *key, const gw_identity_t *who,
                       const char *tab_id, const gw_tab_t *tab) {
    px_event_init(ev, PX_KIND_PRESENCE);
    ev->type = type;
    stamp(ev, key, who, tab_id);
    ev->mode = tab->mode;
    ev->dirty = tab->dirty;
    ev->status = tab->status;
}

void gw_event_lock(px_event_t *ev, px_lock_type_t type, const px_key_t *key, const gw_identity_t *who,
                   const char *tab_id, const char *field, const char *rid) {
    px_event_init(ev, PX_KIND_LOCK);
    ev->type = type;
    stamp(ev, key, who, tab_id);
    snprintf(ev->field, sizeof ev->field, "%s", field);
    if (rid) snprintf(ev->request_id, sizeof ev->request_id, "%s", rid);
}

int gw_event_submit(gw_ctx_t *gw, const px_event_t *ev, const char **why) {
    if (!gw_kafka_writable(gw)) {
        *why = GW_KAFKA_DOWN;
        return PX_EBACKEND;
    }
    if (gw_kafka_publish(gw, ev)) {
        *why = "cannot publish to Kafka";
        return PX_EBACKEND;
    }
    return 0;
}
