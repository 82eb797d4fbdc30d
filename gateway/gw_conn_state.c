/*
 * gw_conn_state.c - the WebSocket connection's state machine
 * (gw_conn_state.h).
 */
#include "gw_conn_state.h"

gw_conn_state_t gw_conn_next(gw_conn_state_t s, gw_conn_event_t ev) {
    switch (ev) {
    case GW_CONN_EV_DRAIN:
        return s == GW_CONN_OPEN ? GW_CONN_DRAINING : s;
    case GW_CONN_EV_CLOSE:
        return s == GW_CONN_OPEN ? GW_CONN_CLOSING : s;
    case GW_CONN_EV_FRAME_SENT:
        return s == GW_CONN_DRAINING || s == GW_CONN_CLOSING ? GW_CONN_CLOSED : s;
    case GW_CONN_EV_PEER_CLOSED:
    case GW_CONN_EV_WRITE_FAILED:
        return GW_CONN_CLOSED;
    }
    return s;
}

bool gw_conn_takes_input(gw_conn_state_t s) {
    return s == GW_CONN_OPEN;
}

bool gw_conn_takes_sends(gw_conn_state_t s) {
    return s == GW_CONN_OPEN;
}

gw_conn_write_t gw_conn_write_action(gw_conn_state_t s, bool queue_empty) {
    switch (s) {
    case GW_CONN_OPEN:
        return queue_empty ? GW_CONN_WRITE_NOTHING : GW_CONN_WRITE_QUEUE;
    case GW_CONN_DRAINING:
        return queue_empty ? GW_CONN_WRITE_CLOSE_FRAME : GW_CONN_WRITE_QUEUE;
    case GW_CONN_CLOSING:
        return GW_CONN_WRITE_CLOSE_FRAME;
    default:
        return GW_CONN_WRITE_NOTHING;
    }
}

bool gw_conn_wants_writeable(gw_conn_state_t s) {
    return s == GW_CONN_DRAINING || s == GW_CONN_CLOSING;
}

const char *gw_conn_state_name(gw_conn_state_t s) {
    switch (s) {
    case GW_CONN_OPEN:
        return "OPEN";
    case GW_CONN_DRAINING:
        return "DRAINING";
    case GW_CONN_CLOSING:
        return "CLOSING";
    case GW_CONN_CLOSED:
        return "CLOSED";
    }
    return "?";
}
