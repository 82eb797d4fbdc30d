/*
 * ctl_topics.c - `presencectl topics create|check`: the thirteen topics
 * presence uses (four inputs, their .retry and .dlt companions, and
 * presence.changes), with the topic prefix, one partition count for all
 * (--partitions, default 6 like scripts/stack.sh) and the configs below.
 * create makes the missing ones (Kafka's CreateTopics; existing topics are
 * left as they are) and then checks; check reports every topic that is
 * missing, has another partition count than the input topics share (or
 * than --partitions), or whose cleanup.policy / retention.ms differ.
 * Exit 0 all right, 1 something differs, 2 Kafka unreachable (within
 * timeout_ms) or refused; the verdict and every error name the bootstrap
 * servers.
 *
 * Retention (docs/presencectl.md, "topics"): heartbeats are short-lived
 * (1 day: a tab lives 60 s), locks, lifecycle, changes and DLQs long (30
 * days: the audit trail and the replay source), retry topics 1 day (a
 * record waits at most 13 s there). No topic is compacted: every one is an
 * event log the fold or its consumers read record by record, and the
 * fencing token is a record's offset, so keeping only the last record of a
 * key would change what a replay computes. Replication factor: 1 here
 * (single-node stacks); production clusters set it with kafka.* admin
 * defaults of the broker.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"
#include "px_time.h"

#define DAY_MS "86400000"
#define MONTH_MS "2592000000"

typedef struct topic_spec {
    char name[PX_CONF_STR_MAX * 2 + 8];
    const char *retention_ms;
    bool input;
} topic_spec_t;

#define NTOPICS (PX_SRC__COUNT * 3 + 1)

static void specs(ctl_t *c, topic_spec_t *t) {
    size_t n = 0;
    for (int s = 0; s < PX_SRC__COUNT; s++) {
        snprintf(t[n].name, sizeof t[n].name, "%s%s", c->cfg.topic_prefix, CTL_SRC_TOPICS[s]);
        t[n].retention_ms = s == PX_SRC_HEARTBEATS ? DAY_MS : MONTH_MS;
        t[n++].input = true;
        snprintf(t[n].name, sizeof t[n].name, "%s%s.retry", c->cfg.topic_prefix, CTL_SRC_TOPICS[s]);
        t[n].retention_ms = DAY_MS;
        t[n++].input = false;
        snprintf(t[n].name, sizeof t[n].name, "%s%s.dlt", c->cfg.topic_prefix, CTL_SRC_TOPICS[s]);
        t[n].retention_ms = MONTH_MS;
        t[n++].input = false;
    }
    snprintf(t[n].name, sizeof t[n].name, "%spresence.changes", c->cfg.topic_prefix);
    t[n].retention_ms = MONTH_MS;
    t[n].input = false;
}

/* Wait for an admin result event of type `want`; NULL after printing. */
static rd_kafka_event_t *admin_wait(ctl_t *c, rd_kafka_queue_t *q, rd_kafka_event_type_t want) {
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, (int)c->cfg.timeout_ms + 2000);
    if (!ev) {
        char why[600];
        fprintf(stderr, "presencectl topics: Kafka %s: no answer within %g s (--timeout)%s\n", c->bootstrap,
                (double)c->cfg.timeout_ms / 1000, ctl_kafka_reason(c, why, sizeof why));
        return NULL;
    }
    if (rd_kafka_event_type(ev) != want || rd_kafka_event_error(ev)) {
        fprintf(stderr, "presencectl topics: Kafka %s: %s\n", c->bootstrap, rd_kafka_event_error_string(ev));
        rd_kafka_event_destroy(ev);
        return NULL;
    }
    return ev;
}

static int create(ctl_t *c, rd_kafka_t *rk, const topic_spec_t *t, int partitions) {
    rd_kafka_NewTopic_t *nt[NTOPICS] = {0};
    char err[512];
    int rc = CTL_EXIT_ERR;
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    for (size_t i = 0; i < NTOPICS; i++) {
        if (!(nt[i] = rd_kafka_NewTopic_new(t[i].name, partitions, 1, err, sizeof err))) {
            fprintf(stderr, "presencectl topics: %s: %s\n", t[i].name, err);
            goto out;
        }
        rd_kafka_NewTopic_set_config(nt[i], "cleanup.policy", "delete");
        rd_kafka_NewTopic_set_config(nt[i], "retention.ms", t[i].retention_ms);
    }
    rd_kafka_AdminOptions_t *o = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_request_timeout(o, (int)c->cfg.timeout_ms, err, sizeof err);
    rd_kafka_CreateTopics(rk, nt, NTOPICS, o, q);
    rd_kafka_AdminOptions_destroy(o);
    rd_kafka_event_t *ev = admin_wait(c, q, RD_KAFKA_EVENT_CREATETOPICS_RESULT);
    if (!ev) goto out;
    size_t n;
    const rd_kafka_topic_result_t **res = rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
    rc = 0;
    for (size_t i = 0; i < n; i++) {
        rd_kafka_resp_err_t e = rd_kafka_topic_result_error(res[i]);
        if (e == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
            printf("exists  %s\n", rd_kafka_topic_result_name(res[i]));
        } else if (e) {
            fprintf(stderr, "presencectl topics: Kafka %s: create %s: %s\n", c->bootstrap,
                    rd_kafka_topic_result_name(res[i]), rd_kafka_topic_result_error_string(res[i]));
            rc = CTL_EXIT_ERR;
        } else {
            printf("created %s\n", rd_kafka_topic_result_name(res[i]));
        }
    }
    rd_kafka_event_destroy(ev);
out:
    for (size_t i = 0; i < NTOPICS; i++) rd_kafka_NewTopic_destroy(nt[i]);
    rd_kafka_queue_destroy(q);
    return rc;
}

/* cleanup.policy and retention.ms of every topic that exists. */
static int describe(ctl_t *c, rd_kafka_t *rk, const topic_spec_t *t, const bool *exists, char (*policy)[32],
                    char (*retention)[32]) {
    rd_kafka_ConfigResource_t *cr[NTOPICS];
    size_t n = 0;
    for (size_t i = 0; i < NTOPICS; i++)
        if (exists[i]) cr[n++] = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, t[i].name);
    if (!n) return 0;
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_DescribeConfigs(rk, cr, n, NULL, q);
    rd_kafka_ConfigResource_destroy_array(cr, n);
    rd_kafka_event_t *ev = admin_wait(c, q, RD_KAFKA_EVENT_DESCRIBECONFIGS_RESULT);
    int rc = CTL_EXIT_ERR;
    if (ev) {
        size_t nr;
        const rd_kafka_ConfigResource_t **res =
            rd_kafka_DescribeConfigs_result_resources(rd_kafka_event_DescribeConfigs_result(ev), &nr);
        for (size_t r = 0; r < nr; r++) {
            size_t i = 0;
            while (i < NTOPICS && strcmp(t[i].name, rd_kafka_ConfigResource_name(res[r])) != 0) i++;
            if (i == NTOPICS) continue;
            size_t ne;
            const rd_kafka_ConfigEntry_t **ce = rd_kafka_ConfigResource_configs(res[r], &ne);
            for (size_t k = 0; k < ne; k++) {
                const char *name = rd_kafka_ConfigEntry_name(ce[k]), *val = rd_kafka_ConfigEntry_value(ce[k]);
                if (strcmp(name, "cleanup.policy") == 0) snprintf(policy[i], 32, "%s", val ? val : "");
                if (strcmp(name, "retention.ms") == 0) snprintf(retention[i], 32, "%s", val ? val : "");
            }
        }
        rd_kafka_event_destroy(ev);
        rc = 0;
    }
    rd_kafka_queue_destroy(q);
    return rc;
}

/* After a create: wait (up to the timeout) until the metadata shows every
 * topic, since a broker answers CreateTopics before all its metadata caches
 * have the new topics, and a check at once could report them missing. */
static void wait_visible(ctl_t *c, rd_kafka_t *rk, const topic_spec_t *t) {
    int64_t until = px_mono_ms() + c->cfg.timeout_ms;
    for (;;) {
        const rd_kafka_metadata_t *md = NULL;
        size_t seen = 0;
        if (rd_kafka_metadata(rk, 1, NULL, &md, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
            for (size_t i = 0; i < NTOPICS; i++)
                for (int k = 0; k < md->topic_cnt; k++)
                    if (strcmp(md->topics[k].topic, t[i].name) == 0 && !md->topics[k].err &&
                        md->topics[k].partition_cnt > 0) {
                        seen++;
                        break;
                    }
            rd_kafka_metadata_destroy(md);
        }
        if (seen == NTOPICS || px_mono_ms() > until) return;
        usleep(200 * 1000);
    }
}

static int check(ctl_t *c, rd_kafka_t *rk, const topic_spec_t *t, int want_partitions) {
    const rd_kafka_metadata_t *md = NULL;
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 1, NULL, &md, (int)c->cfg.timeout_ms);
    if (err) {
        char why[600];
        fprintf(stderr, "presencectl topics: Kafka %s: metadata: %s%s\n", c->bootstrap, rd_kafka_err2str(err),
                ctl_kafka_reason(c, why, sizeof why));
        return CTL_EXIT_ERR;
    }
    bool exists[NTOPICS] = {0};
    int parts[NTOPICS] = {0};
    for (size_t i = 0; i < NTOPICS; i++)
        for (int k = 0; k < md->topic_cnt; k++)
            if (strcmp(md->topics[k].topic, t[i].name) == 0 && !md->topics[k].err) {
                exists[i] = true;
                parts[i] = md->topics[k].partition_cnt;
            }
    rd_kafka_metadata_destroy(md);
    int want = want_partitions;
    for (size_t i = 0; !want && i < NTOPICS; i++)
        if (t[i].input && exists[i]) want = parts[i];
    char policy[NTOPICS][32] = {{0}}, retention[NTOPICS][32] = {{0}};
    if (describe(c, rk, t, exists, policy, retention)) return CTL_EXIT_ERR;
    int bad = 0, nw = 0;
    for (size_t i = 0; i < NTOPICS; i++)
        if ((int)strlen(t[i].name) > nw) nw = (int)strlen(t[i].name);
    for (size_t i = 0; i < NTOPICS; i++) {
        char why[256] = "";
        if (!exists[i]) snprintf(why, sizeof why, "missing");
        else if (t[i].input && parts[i] != want)
            snprintf(why, sizeof why, "%d partitions, the input topics need %d", parts[i], want);
        else if (strcmp(policy[i], "delete") != 0)
            snprintf(why, sizeof why, "cleanup.policy=%s, want delete", policy[i]);
        else if (strcmp(retention[i], t[i].retention_ms) != 0)
            snprintf(why, sizeof why, "retention.ms=%.31s, want %s", retention[i], t[i].retention_ms);
        if (why[0]) bad++;
        printf("%-6s %-*s partitions=%-3d retention.ms=%-11s %s\n", why[0] ? "DIFF" : "ok", nw, t[i].name, parts[i],
               retention[i][0] ? retention[i] : "-", why);
    }
    printf("%s: %d of %d topics differ at %s\n", bad ? "DIFFERENT" : "OK", bad, NTOPICS, c->kafka_where);
    return bad ? CTL_EXIT_DIFF : CTL_EXIT_OK;
}

int ctl_topics(ctl_t *c, int argc, char **argv) {
    (void)argc;
    const char *sub = argv[0], *pv = ctl_flag(c, "partitions");
    bool do_create = strcmp(sub, "create") == 0;
    if (!do_create && strcmp(sub, "check") != 0) {
        fprintf(stderr, "presencectl topics: unknown subcommand '%.64s' (create, check)\n", sub);
        return CTL_EXIT_ERR;
    }
    int partitions = 0;
    if (pv) {
        char *end;
        long n = strtol(pv, &end, 10);
        if (!*pv || *end || n < 1 || n > 10000) {
            fprintf(stderr, "presencectl topics: --partitions must be 1..10000\n");
            return CTL_EXIT_ERR;
        }
        partitions = (int)n;
    }
    static topic_spec_t t[NTOPICS];
    specs(c, t);
    rd_kafka_t *rk = ctl_producer_new(c, NULL);
    if (!rk) return CTL_EXIT_ERR;
    int rc = ctl_kafka_wait(c, rk);
    if (!rc && do_create) rc = create(c, rk, t, partitions ? partitions : 6);
    if (!rc && do_create) wait_visible(c, rk, t);
    if (!rc) rc = check(c, rk, t, partitions);
    rd_kafka_destroy(rk);
    return rc;
}
