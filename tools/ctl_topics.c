/*
 * ctl_topics.c - `presencectl topics create|check`: the thirteen topics
 * presence uses (four inputs, their .retry and .dlt companions, and
 * presence.changes), with the topic prefix, one partition count for all
 * (--partitions, default 6 like scripts/stack.sh) and the configs below.
 * create makes the missing ones (Kafka's CreateTopics; existing topics are
 * left as they are) and then checks; check reports every topic that is
 * missing, has another partition count than the input topics share (or
 * than --partitions), fewer replicas than the replication factor, a
 * min.insync.replicas below the wanted one (or above its replica count:
 * no write could succeed), or whose cleanup.policy / retention.ms differ.
 * Replication: --replication-factor (default: the cluster's broker count,
 * at most 3) and --min-insync-replicas (default: the replication factor
 * minus one, at least 1), so a topic survives a broker loss with no
 * acknowledged write lost. The cluster's broker count is the brokers in the
 * metadata plus those the topics' replica lists name that are down, so a
 * broker down does not lower what check wants. A partition with fewer
 * in-sync replicas than replicas (under-replicated: a broker down or
 * catching up) is noted, not a difference; one with fewer in-sync replicas
 * than min.insync.replicas refuses acks=all writes, and its topic differs.
 * Brokers apply a new topic's configs a moment
 * after CreateTopics answers (and a new partition's in-sync replicas a
 * moment after its leader): check reads them again, for up to the
 * timeout, while only configs or in-sync replicas differ, before it reports.
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
 * key would change what a replay computes.
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

typedef struct repl {
    int factor, min_isr; /* wanted */
    int brokers;         /* in the cluster's metadata */
} repl_t;

static int create(ctl_t *c, rd_kafka_t *rk, const topic_spec_t *t, int partitions, const repl_t *rp) {
    rd_kafka_NewTopic_t *nt[NTOPICS] = {0};
    char err[512];
    int rc = CTL_EXIT_ERR;
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    for (size_t i = 0; i < NTOPICS; i++) {
        if (!(nt[i] = rd_kafka_NewTopic_new(t[i].name, partitions, rp->factor, err, sizeof err))) {
            fprintf(stderr, "presencectl topics: %s: %s\n", t[i].name, err);
            goto out;
        }
        rd_kafka_NewTopic_set_config(nt[i], "cleanup.policy", "delete");
        rd_kafka_NewTopic_set_config(nt[i], "retention.ms", t[i].retention_ms);
        char isr[16];
        snprintf(isr, sizeof isr, "%d", rp->min_isr);
        rd_kafka_NewTopic_set_config(nt[i], "min.insync.replicas", isr);
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

/* cleanup.policy, retention.ms and min.insync.replicas of every topic that exists. */
static int describe(ctl_t *c, rd_kafka_t *rk, const topic_spec_t *t, const bool *exists, char (*policy)[32],
                    char (*retention)[32], int *min_isr) {
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
                if (strcmp(name, "min.insync.replicas") == 0) min_isr[i] = val ? atoi(val) : 0;
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

#define MAX_DOWN 8 /* down brokers named in the verdict */

/* What the metadata says of each topic: whether it exists, its partition
 * count, the fewest replicas and the fewest in-sync replicas any of its
 * partitions has and how many are under-replicated; the brokers it lists
 * and those the replica lists name that it does not (down). */
typedef struct seen {
    bool exists[NTOPICS];
    int parts[NTOPICS], replicas[NTOPICS], isr[NTOPICS], under[NTOPICS], brokers;
    int down, down_id[MAX_DOWN];
} seen_t;

/* Notes broker id as down unless the metadata lists it or it is noted. */
static void note_down(seen_t *sn, const rd_kafka_metadata_t *md, int32_t id) {
    for (int b = 0; b < md->broker_cnt; b++)
        if (md->brokers[b].id == id) return;
    for (int d = 0; d < sn->down && d < MAX_DOWN; d++)
        if (sn->down_id[d] == id) return;
    if (sn->down < MAX_DOWN) sn->down_id[sn->down] = id;
    sn->down++;
}

static int metadata(ctl_t *c, rd_kafka_t *rk, const topic_spec_t *t, seen_t *sn) {
    const rd_kafka_metadata_t *md = NULL;
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 1, NULL, &md, (int)c->cfg.timeout_ms);
    if (err) {
        char why[600];
        fprintf(stderr, "presencectl topics: Kafka %s: metadata: %s%s\n", c->bootstrap, rd_kafka_err2str(err),
                ctl_kafka_reason(c, why, sizeof why));
        return CTL_EXIT_ERR;
    }
    memset(sn, 0, sizeof *sn);
    sn->brokers = md->broker_cnt;
    for (size_t i = 0; i < NTOPICS; i++)
        for (int k = 0; k < md->topic_cnt; k++)
            if (strcmp(md->topics[k].topic, t[i].name) == 0 && !md->topics[k].err) {
                sn->exists[i] = true;
                sn->parts[i] = md->topics[k].partition_cnt;
                sn->replicas[i] = sn->isr[i] = md->topics[k].partition_cnt ? INT32_MAX : 0;
                for (int p = 0; p < md->topics[k].partition_cnt; p++) {
                    const rd_kafka_metadata_partition_t *mp = &md->topics[k].partitions[p];
                    if (mp->replica_cnt < sn->replicas[i]) sn->replicas[i] = mp->replica_cnt;
                    if (mp->isr_cnt < sn->isr[i]) sn->isr[i] = mp->isr_cnt;
                    sn->under[i] += mp->isr_cnt < mp->replica_cnt;
                    for (int r = 0; r < mp->replica_cnt; r++) note_down(sn, md, mp->replicas[r]);
                }
            }
    rd_kafka_metadata_destroy(md);
    return 0;
}

/* Why topic i differs ("" if it does not); *config: what differs may
 * settle in a moment: a config or the in-sync replicas, or (just_created)
 * the topic missing from a broker whose metadata lags the create. */
static void differs(const topic_spec_t *t, size_t i, const seen_t *sn, int want, const repl_t *rp,
                    const char *policy, const char *retention, int min_isr, bool just_created, char *why, size_t n,
                    bool *config) {
    *config = false;
    why[0] = '\0';
    if (!sn->exists[i]) {
        *config = just_created;
        snprintf(why, n, "missing");
    } else if (t[i].input && sn->parts[i] != want)
        snprintf(why, n, "%d partitions, the input topics need %d", sn->parts[i], want);
    else if (sn->replicas[i] < rp->factor)
        snprintf(why, n, "replication factor %d, want %d", sn->replicas[i], rp->factor);
    else if ((*config = true, strcmp(policy, "delete") != 0))
        snprintf(why, n, "cleanup.policy=%s, want delete", policy);
    else if (strcmp(retention, t[i].retention_ms) != 0)
        snprintf(why, n, "retention.ms=%.31s, want %s", retention, t[i].retention_ms);
    else if (min_isr < rp->min_isr)
        snprintf(why, n, "min.insync.replicas=%d, want %d", min_isr, rp->min_isr);
    else if (min_isr > sn->replicas[i])
        snprintf(why, n, "min.insync.replicas=%d is more than its %d replicas: no write can succeed", min_isr,
                 sn->replicas[i]);
    else if (sn->isr[i] < min_isr)
        snprintf(why, n, "a partition has %d in-sync replicas, below min.insync.replicas=%d: acks=all writes fail",
                 sn->isr[i], min_isr);
    else *config = false;
}

/* Reports every topic and the verdict. just_created: the topics were just
 * created, and a broker's metadata may not show them yet (each broker
 * learns a new topic on its own a moment after the create). */
static int check(ctl_t *c, rd_kafka_t *rk, const topic_spec_t *t, int want_partitions, const repl_t *rp,
                 bool just_created) {
    seen_t sn;
    char policy[NTOPICS][32], retention[NTOPICS][32], why[NTOPICS][256];
    int min_isr[NTOPICS];
    int bad, config_only;
    int64_t until = px_mono_ms() + c->cfg.timeout_ms;
    for (;;) { /* configs, in-sync replicas and new topics settle on every broker after a create */
        if (metadata(c, rk, t, &sn)) return CTL_EXIT_ERR;
        int want = want_partitions;
        for (size_t i = 0; !want && i < NTOPICS; i++)
            if (t[i].input && sn.exists[i]) want = sn.parts[i];
        memset(policy, 0, sizeof policy);
        memset(retention, 0, sizeof retention);
        memset(min_isr, 0, sizeof min_isr);
        if (describe(c, rk, t, sn.exists, policy, retention, min_isr)) return CTL_EXIT_ERR;
        bad = config_only = 0;
        for (size_t i = 0; i < NTOPICS; i++) {
            bool config;
            differs(t, i, &sn, want, rp, policy[i], retention[i], min_isr[i], just_created, why[i], sizeof why[i],
                    &config);
            bad += why[i][0] != '\0';
            config_only += why[i][0] && config;
        }
        if (!bad || bad != config_only || px_mono_ms() > until) break;
        usleep(300 * 1000);
    }
    int nw = 0, under = 0, parts = 0;
    for (size_t i = 0; i < NTOPICS; i++)
        if ((int)strlen(t[i].name) > nw) nw = (int)strlen(t[i].name);
    for (size_t i = 0; i < NTOPICS; i++) {
        char note[96] = "";
        if (!why[i][0] && sn.under[i])
            snprintf(note, sizeof note, "under-replicated: %d of %d partitions, fewest in sync %d", sn.under[i],
                     sn.parts[i], sn.isr[i]);
        printf("%-6s %-*s partitions=%-3d replicas=%-2d min.insync.replicas=%-2d retention.ms=%-11s %s%s\n",
               why[i][0] ? "DIFF" : "ok", nw, t[i].name, sn.parts[i], sn.replicas[i], min_isr[i],
               retention[i][0] ? retention[i] : "-", why[i], note);
        under += sn.under[i];
        parts += sn.parts[i];
    }
    char ids[12 * MAX_DOWN + 8] = "";
    size_t il = 0;
    for (int d = 0; d < sn.down && d < MAX_DOWN; d++)
        il += (size_t)snprintf(ids + il, sizeof ids - il, "%s%d", d ? "," : "", sn.down_id[d]);
    if (sn.down > MAX_DOWN) snprintf(ids + il, sizeof ids - il, ",...");
    if (under)
        printf("under-replicated: %d of %d partitions have fewer replicas in sync than assigned%s%s%s\n", under,
               parts, sn.down ? " (brokers down: " : "", ids, sn.down ? ")" : "");
    printf("%s: %d of %d topics differ at %s (%d brokers%s%s; want replication factor %d, min.insync.replicas %d)\n",
           bad ? "DIFFERENT" : "OK", bad, NTOPICS, c->kafka_where, sn.brokers + sn.down, sn.down ? ", down: " : "",
           ids, rp->factor, rp->min_isr);
    return bad ? CTL_EXIT_DIFF : CTL_EXIT_OK;
}

/* A positive number flag, or 0 when absent; -1 after printing why. */
static int num_flag(ctl_t *c, const char *name, int max) {
    const char *v = ctl_flag(c, name);
    if (!v) return 0;
    char *end;
    long n = strtol(v, &end, 10);
    if (!*v || *end || n < 1 || n > max) {
        fprintf(stderr, "presencectl topics: --%s must be 1..%d\n", name, max);
        return -1;
    }
    return (int)n;
}

int ctl_topics(ctl_t *c, int argc, char **argv) {
    (void)argc;
    const char *sub = argv[0], *pv = ctl_flag(c, "partitions");
    bool do_create = strcmp(sub, "create") == 0;
    if (!do_create && strcmp(sub, "check") != 0) {
        fprintf(stderr, "presencectl topics: unknown subcommand '%.64s' (create, check)\n", sub);
        return CTL_EXIT_ERR;
    }
    (void)pv;
    int partitions = num_flag(c, "partitions", 10000);
    repl_t rp = {num_flag(c, "replication-factor", 32), num_flag(c, "min-insync-replicas", 32), 0};
    if (partitions < 0 || rp.factor < 0 || rp.min_isr < 0) return CTL_EXIT_ERR;
    static topic_spec_t t[NTOPICS];
    specs(c, t);
    rd_kafka_t *rk = ctl_producer_new(c, NULL);
    if (!rk) return CTL_EXIT_ERR;
    int rc = ctl_kafka_wait(c, rk);
    seen_t sn;
    if (!rc) rc = metadata(c, rk, t, &sn);
    if (!rc) { /* defaults from the cluster's size, the brokers down included */
        int size = sn.brokers + sn.down;
        rp.brokers = sn.brokers;
        if (!rp.factor) rp.factor = size < 3 ? (size > 0 ? size : 1) : 3;
        if (!rp.min_isr) rp.min_isr = rp.factor > 1 ? rp.factor - 1 : 1;
        if (rp.min_isr > rp.factor) {
            fprintf(stderr, "presencectl topics: --min-insync-replicas %d is more than the replication factor %d\n",
                    rp.min_isr, rp.factor);
            rc = CTL_EXIT_ERR;
        } else if (do_create && rp.factor > sn.brokers) {
            fprintf(stderr, "presencectl topics: replication factor %d needs %d brokers; Kafka %s has %d%s\n",
                    rp.factor, rp.factor, c->bootstrap, sn.brokers, sn.down ? " up (and some down)" : "");
            rc = CTL_EXIT_ERR;
        }
    }
    if (!rc && do_create) rc = create(c, rk, t, partitions ? partitions : 6, &rp);
    if (!rc && do_create) wait_visible(c, rk, t);
    if (!rc) rc = check(c, rk, t, partitions, &rp, do_create);
    rd_kafka_destroy(rk);
    return rc;
}
