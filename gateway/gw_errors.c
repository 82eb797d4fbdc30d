/*
 * gw_errors.c - the gateway's error accounting: every refused request and
 * ERROR message is counted by its code word, and a failed allocation is
 * logged and counted (code INTERNAL).
 */
#include <stdio.h>

#include "gw.h"
#include "px_log.h"

/* Registering a series again returns the same handle, and codes are a
 * fixed set of words, so the series stay bounded. */
void gw_count_error(gw_ctx_t *gw, const char *code) {
    char label[96];
    px_counter_add(gw->m_errors, 1);
    snprintf(label, sizeof label, "code=\"%.64s\"", code);
    px_counter_add(px_metrics_counter(gw->metrics, "presence_gateway_errors_by_code_total",
                                      "ERROR messages and refused requests by code", label), 1);
}

void gw_oom(gw_ctx_t *gw, const char *what) {
    gw_count_error(gw, "INTERNAL");
    PX_ERROR(GW_COMP, "out of memory", "what=%s", what);
}
