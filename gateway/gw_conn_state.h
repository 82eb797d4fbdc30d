/*
 * gw_conn_state.h - the life of a WebSocket connection as a pure state
 * machine: the transport (gw_conn.c) feeds it what happened and asks it
 * what to do; nothing here touches lws. Unit-tested over every state and
 * event (tests/unit/test_gw_conn_state.c).
 *
 *   OPEN      serving: input is handled, messages are sent (written at
 *             once or queued)
 *   DRAINING  refused or told to go (a handshake check failed, a message
 *             over the limit): input is ignored and sends are refused;
 *             what is queued is written, then the close frame
 *   CLOSING   the close frame goes at the next WRITEABLE, ahead of
 *             anything queued (a client that does not read); sends are
 *             refused
 *   CLOSED    the close frame is with lws, the peer closed, or a write
 *             failed: nothing more is written
 *
 *   OPEN --DRAIN--> DRAINING --(queue empty) FRAME_SENT--> CLOSED
 *   OPEN --CLOSE--> CLOSING  --FRAME_SENT--> CLOSED
 *   any  --PEER_CLOSED | WRITE_FAILED--> CLOSED
 * DRAIN and CLOSE are ignored once the connection is not OPEN: the first
 * decision stands (its close code too). Nothing leads back to OPEN, and
 * lws's CLOSED callback ends the connection in any state.
 */
#ifndef PX_GW_CONN_STATE_H
#define PX_GW_CONN_STATE_H

#include <stdbool.h>

typedef enum gw_conn_state {
    GW_CONN_OPEN = 0,
    GW_CONN_DRAINING,
    GW_CONN_CLOSING,
    GW_CONN_CLOSED,
} gw_conn_state_t;

typedef enum gw_conn_event {
    GW_CONN_EV_DRAIN,        /* close once the queue is written */
    GW_CONN_EV_CLOSE,        /* close now, ahead of the queue */
    GW_CONN_EV_FRAME_SENT,   /* the close frame was handed to lws */
    GW_CONN_EV_PEER_CLOSED,  /* the peer sent its close (lws answers it) */
    GW_CONN_EV_WRITE_FAILED, /* a write failed: lws drops the connection */
} gw_conn_event_t;

/* What a SERVER_WRITEABLE callback does. */
typedef enum gw_conn_write {
    GW_CONN_WRITE_NOTHING,     /* nothing may be written */
    GW_CONN_WRITE_QUEUE,       /* write queued messages */
    GW_CONN_WRITE_CLOSE_FRAME, /* send the close frame (then FRAME_SENT) */
} gw_conn_write_t;

/* The state after ev in state s. */
gw_conn_state_t gw_conn_next(gw_conn_state_t s, gw_conn_event_t ev);
/* Whether a client's message is handled in state s. */
bool gw_conn_takes_input(gw_conn_state_t s);
/* Whether a new message may be sent (queued or written) in state s. */
bool gw_conn_takes_sends(gw_conn_state_t s);
/* What WRITEABLE does in state s with the queue empty or not. */
gw_conn_write_t gw_conn_write_action(gw_conn_state_t s, bool queue_empty);
/* Whether s still wants WRITEABLE with nothing queued (a close frame is
 * due). */
bool gw_conn_wants_writeable(gw_conn_state_t s);
/* "OPEN", "DRAINING", "CLOSING", "CLOSED" ("?" for anything else). */
const char *gw_conn_state_name(gw_conn_state_t s);

#endif
