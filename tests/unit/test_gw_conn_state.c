/*
 * test_gw_conn_state.c - the WebSocket connection's state machine
 * (gateway/gw_conn_state.h): the next state for every state and event,
 * what WRITEABLE does in each state with the queue empty or not, and the
 * properties the transport relies on, checked over every sequence of up
 * to six events: nothing leads back to OPEN, CLOSED is final, the first
 * of DRAIN and CLOSE stands, input and sends stop together and for good,
 * and a connection told to go always reaches a close frame.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "gw_conn_state.h"

enum { O = GW_CONN_OPEN, D = GW_CONN_DRAINING, C = GW_CONN_CLOSING, X = GW_CONN_CLOSED };
#define NSTATES 4
#define NEVENTS 5

/* next[state][event], events in enum order: DRAIN, CLOSE, FRAME_SENT,
 * PEER_CLOSED, WRITE_FAILED */
static const int next_table[NSTATES][NEVENTS] = {
    [O] = {D, C, O, X, X},
    [D] = {D, D, X, X, X},
    [C] = {C, C, X, X, X},
    [X] = {X, X, X, X, X},
};

static void test_next_table(void **state) {
    for (int s = 0; s < NSTATES; s++)
        for (int e = 0; e < NEVENTS; e++)
            if ((int)gw_conn_next((gw_conn_state_t)s, (gw_conn_event_t)e) != next_table[s][e])
                fail_msg("%s + event %d: got %s, want %s", gw_conn_state_name((gw_conn_state_t)s), e,
                         gw_conn_state_name(gw_conn_next((gw_conn_state_t)s, (gw_conn_event_t)e)),
                         gw_conn_state_name((gw_conn_state_t)next_table[s][e]));
}

static void test_write_action(void **state) {
    assert_int_equal(gw_conn_write_action(GW_CONN_OPEN, true), GW_CONN_WRITE_NOTHING);
    assert_int_equal(gw_conn_write_action(GW_CONN_OPEN, false), GW_CONN_WRITE_QUEUE);
    assert_int_equal(gw_conn_write_action(GW_CONN_DRAINING, false), GW_CONN_WRITE_QUEUE);
    assert_int_equal(gw_conn_write_action(GW_CONN_DRAINING, true), GW_CONN_WRITE_CLOSE_FRAME);
    assert_int_equal(gw_conn_write_action(GW_CONN_CLOSING, false), GW_CONN_WRITE_CLOSE_FRAME);
    assert_int_equal(gw_conn_write_action(GW_CONN_CLOSING, true), GW_CONN_WRITE_CLOSE_FRAME);
    assert_int_equal(gw_conn_write_action(GW_CONN_CLOSED, false), GW_CONN_WRITE_NOTHING);
    assert_int_equal(gw_conn_write_action(GW_CONN_CLOSED, true), GW_CONN_WRITE_NOTHING);
    /* a value outside the enum writes nothing */
    assert_int_equal(gw_conn_write_action((gw_conn_state_t)42, false), GW_CONN_WRITE_NOTHING);
    assert_string_equal(gw_conn_state_name((gw_conn_state_t)42), "?");
}

static void test_predicates(void **state) {
    for (int s = 0; s < NSTATES; s++) {
        gw_conn_state_t st = (gw_conn_state_t)s;
        assert_int_equal(gw_conn_takes_input(st), s == O);
        assert_int_equal(gw_conn_takes_sends(st), s == O);
        assert_int_equal(gw_conn_wants_writeable(st), s == D || s == C);
    }
}

/* Every sequence of up to 6 events from OPEN. */
static void walk(gw_conn_state_t s, int depth, gw_conn_event_t first_go, bool told) {
    if (depth == 6) return;
    for (int e = 0; e < NEVENTS; e++) {
        gw_conn_event_t ev = (gw_conn_event_t)e;
        gw_conn_state_t n = gw_conn_next(s, ev);
        if (s != GW_CONN_OPEN) assert_int_not_equal(n, GW_CONN_OPEN); /* never back */
        if (s == GW_CONN_CLOSED) assert_int_equal(n, GW_CONN_CLOSED); /* final */
        /* the first of DRAIN and CLOSE stands until the frame or the end */
        bool go = ev == GW_CONN_EV_DRAIN || ev == GW_CONN_EV_CLOSE;
        gw_conn_event_t first = told ? first_go : ev;
        if (told && n != GW_CONN_CLOSED)
            assert_int_equal(n, first_go == GW_CONN_EV_DRAIN ? GW_CONN_DRAINING : GW_CONN_CLOSING);
        /* told to go and not closed: WRITEABLE is wanted and the close
         * frame comes once the queue is empty, with nothing sent after */
        if (n == GW_CONN_DRAINING || n == GW_CONN_CLOSING) {
            assert_true(gw_conn_wants_writeable(n));
            assert_int_equal(gw_conn_write_action(n, true), GW_CONN_WRITE_CLOSE_FRAME);
            assert_int_equal(gw_conn_next(n, GW_CONN_EV_FRAME_SENT), GW_CONN_CLOSED);
            assert_false(gw_conn_takes_sends(n));
            assert_false(gw_conn_takes_input(n));
        }
        walk(n, depth + 1, first, told || (go && s == GW_CONN_OPEN));
    }
}

static void test_sequences(void **state) {
    walk(GW_CONN_OPEN, 0, GW_CONN_EV_DRAIN, false);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_next_table),
        cmocka_unit_test(test_write_action),
        cmocka_unit_test(test_predicates),
        cmocka_unit_test(test_sequences),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
