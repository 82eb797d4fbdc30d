/*
 * test_batch_state.c - the processor's batch state (processor/
 * pr_batch_state.h): every phase transition, fates only worsen, and what
 * each fate allows (emit, grow, publish) and makes the seal do.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../processor/pr_batch_state.h"

static void test_phases(void **state) {
    (void)state;
    pr_batch_state_t s = {PR_BATCH_IDLE, PR_FATE_GOOD};
    assert_false(pr_batch_state_fold(&s)); /* nothing collected */
    assert_false(pr_batch_state_seal(&s));
    assert_int_equal(s.phase, PR_BATCH_IDLE);
    pr_batch_state_begin(&s);
    assert_int_equal(s.phase, PR_BATCH_COLLECTING);
    assert_false(pr_batch_state_holds_folds(&s));
    assert_false(pr_batch_state_seal(&s)); /* never folded */
    assert_int_equal(s.phase, PR_BATCH_COLLECTING);
    assert_true(pr_batch_state_fold(&s));
    assert_int_equal(s.phase, PR_BATCH_OPEN);
    assert_true(pr_batch_state_holds_folds(&s));
    assert_true(pr_batch_state_fold(&s)); /* more records while open */
    assert_int_equal(s.phase, PR_BATCH_OPEN);
    assert_true(pr_batch_state_seal(&s));
    assert_int_equal(s.phase, PR_BATCH_SEALED);
    assert_false(pr_batch_state_holds_folds(&s)); /* sealed: written once committed */
    assert_false(pr_batch_state_fold(&s));
    assert_false(pr_batch_state_seal(&s));
    pr_batch_state_close(&s);
    assert_int_equal(s.phase, PR_BATCH_IDLE);
    /* a drop from any phase closes it */
    pr_batch_state_begin(&s);
    pr_batch_state_close(&s);
    assert_int_equal(s.phase, PR_BATCH_IDLE);
    /* a new batch forgets the last one's fate */
    pr_batch_state_fail(&s, PR_FATE_REDIS_LOST);
    pr_batch_state_begin(&s);
    assert_int_equal(s.fate, PR_FATE_GOOD);
}

/* Every pair of failures in every order: the worse stays. */
static void test_fates_only_worsen(void **state) {
    (void)state;
    for (int a = PR_FATE_GOOD; a <= PR_FATE_REDIS_LOST; a++)
        for (int b = PR_FATE_GOOD; b <= PR_FATE_REDIS_LOST; b++) {
            pr_batch_state_t s;
            pr_batch_state_begin(&s);
            pr_batch_state_fail(&s, (pr_batch_fate_t)a);
            pr_batch_state_fail(&s, (pr_batch_fate_t)b);
            assert_int_equal(s.fate, a > b ? a : b);
        }
}

static void test_what_each_fate_allows(void **state) {
    (void)state;
    static const struct {
        pr_batch_fate_t fate;
        bool emit, grow, publish, commit, count_abort, why;
    } want[] = {
        {PR_FATE_GOOD, true, true, true, true, false, false},
        {PR_FATE_PRODUCE_FAILED, false, false, true, false, true, true},
        {PR_FATE_PREV_FAILED, false, false, true, false, false, true},
        {PR_FATE_REDIS_LOST, false, false, false, false, true, false},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        pr_batch_state_t s;
        pr_batch_state_begin(&s);
        pr_batch_state_fold(&s);
        pr_batch_state_fail(&s, want[i].fate);
        assert_int_equal(pr_batch_may_emit(&s), want[i].emit);
        assert_int_equal(pr_batch_may_grow(&s), want[i].grow);
        assert_int_equal(pr_batch_may_publish(&s), want[i].publish);
        pr_seal_action_t a = pr_batch_seal_action(s.fate);
        assert_int_equal(a.commit, want[i].commit);
        assert_int_equal(a.count_abort, want[i].count_abort);
        assert_int_equal(a.why != NULL, want[i].why);
    }
    /* only an open batch grows: collecting or sealed, it does not */
    pr_batch_state_t s;
    pr_batch_state_begin(&s);
    assert_false(pr_batch_may_grow(&s));
    pr_batch_state_fold(&s);
    pr_batch_state_seal(&s);
    assert_false(pr_batch_may_grow(&s));
    assert_true(pr_batch_may_emit(&s)); /* the sealed batch's held records still go out */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_phases),
        cmocka_unit_test(test_fates_only_worsen),
        cmocka_unit_test(test_what_each_fate_allows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
