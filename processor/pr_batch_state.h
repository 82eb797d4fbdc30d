/*
 * pr_batch_state.h - the state of one batch: where it is in its stages
 * (phase) and whether it may still commit (fate). Pure functions, no
 * I/O: tests/unit/test_batch_state.c checks every transition.
 *
 * Phase: IDLE -> COLLECTING (records taken, nothing folded) -> OPEN (its
 * folded states are in memory, uncommitted; it may take more records) ->
 * SEALED (its records are all produced, its offsets and writes fixed) ->
 * IDLE (handed to the committer, or dropped). A drop may come in any
 * phase but IDLE.
 *
 * Fate: GOOD until something fails; a failure never heals, and the worst
 * one decides what the seal does (pr_batch_seal_action).
 */
#ifndef PR_BATCH_STATE_H
#define PR_BATCH_STATE_H

#include <stdbool.h>

typedef enum pr_batch_phase { PR_BATCH_IDLE = 0, PR_BATCH_COLLECTING, PR_BATCH_OPEN, PR_BATCH_SEALED } pr_batch_phase_t;

/* In order of severity. */
typedef enum pr_batch_fate {
    PR_FATE_GOOD = 0,
    /* a record could not be produced, or its transaction did not begin:
     * its states must not reach Redis without their records */
    PR_FATE_PRODUCE_FAILED,
    /* the transaction it was folded on top of failed: that one was
     * rewound, and this one builds on what did not commit */
    PR_FATE_PREV_FAILED,
    /* Redis failed or reconnected while it folded: its states may come
     * from a dataset that is gone; not even its decisions may go out */
    PR_FATE_REDIS_LOST,
} pr_batch_fate_t;

typedef struct pr_batch_state {
    pr_batch_phase_t phase;
    pr_batch_fate_t fate;
} pr_batch_state_t;

/* A new batch: collecting, good. */
static inline void pr_batch_state_begin(pr_batch_state_t *s) {
    s->phase = PR_BATCH_COLLECTING;
    s->fate = PR_FATE_GOOD;
}

/* COLLECTING -> OPEN (OPEN stays); false (no change) from IDLE or SEALED. */
static inline bool pr_batch_state_fold(pr_batch_state_t *s) {
    if (s->phase != PR_BATCH_COLLECTING && s->phase != PR_BATCH_OPEN) return false;
    s->phase = PR_BATCH_OPEN;
    return true;
}

/* Does it hold folded states that are not committed (and that nothing
 * may write to Redis)? */
static inline bool pr_batch_state_holds_folds(const pr_batch_state_t *s) { return s->phase == PR_BATCH_OPEN; }

/* Record a failure: the worse of the two stays. */
static inline void pr_batch_state_fail(pr_batch_state_t *s, pr_batch_fate_t f) {
    if (f > s->fate) s->fate = f;
}

/* OPEN -> SEALED; false (no change) from any other phase. */
static inline bool pr_batch_state_seal(pr_batch_state_t *s) {
    if (s->phase != PR_BATCH_OPEN) return false;
    s->phase = PR_BATCH_SEALED;
    return true;
}

/* Dispatched or dropped: IDLE again. */
static inline void pr_batch_state_close(pr_batch_state_t *s) { s->phase = PR_BATCH_IDLE; }

/* May it still produce records? Only while nothing failed. */
static inline bool pr_batch_may_emit(const pr_batch_state_t *s) { return s->fate == PR_FATE_GOOD; }

/* May it take more records while the previous commit is in flight? */
static inline bool pr_batch_may_grow(const pr_batch_state_t *s) {
    return s->phase == PR_BATCH_OPEN && s->fate == PR_FATE_GOOD;
}

/* May its early lock decisions be published? A decision is a function of
 * the committed log alone, so a batch that will be dropped and folded
 * again decides the same: only states read from a lost dataset forbid. */
static inline bool pr_batch_may_publish(const pr_batch_state_t *s) { return s->fate != PR_FATE_REDIS_LOST; }

/* What the seal does with a batch of the given fate. */
typedef struct pr_seal_action {
    bool commit;      /* hand it to the committer (else drop it) */
    bool count_abort; /* presence_processor_aborts_total + 1 */
    const char *why;  /* the log line of a drop, NULL for none */
} pr_seal_action_t;

static inline pr_seal_action_t pr_batch_seal_action(pr_batch_fate_t f) {
    switch (f) {
    case PR_FATE_GOOD: return (pr_seal_action_t){true, false, NULL};
    case PR_FATE_PRODUCE_FAILED:
        return (pr_seal_action_t){false, true, "a record of the batch could not be produced"};
    case PR_FATE_PREV_FAILED:
        return (pr_seal_action_t){false, false,
                                  "batch dropped: the transaction it was folded on failed; both are folded again"};
    case PR_FATE_REDIS_LOST: break;
    }
    return (pr_seal_action_t){false, true, NULL};
}

#endif
