/*
 * store_helpers.h - what the store tests share (test_store.c,
 * test_store_blob.c, test_store_cmd.c): RUNNING_ON_VALGRIND (0 without
 * valgrind's header; the property tests run a fraction of their rounds
 * under valgrind) and the group setup that sets K. Header-only; include it
 * after cmocka.h and px_testlib.h.
 */
#ifndef PX_STORE_HELPERS_H
#define PX_STORE_HELPERS_H

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif

#include "px_testlib.h"

static inline int setup(void **state) {
    assert_int_equal(px_key_set(&K, "acme", "doc", "1", NULL, 0), 0);
    return 0;
}

#endif
