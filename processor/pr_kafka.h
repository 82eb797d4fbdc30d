/*
 * pr_kafka.h - presence-processor's consumer edge (pr_kafka.c, and
 * pr_kquery.c's questions to the brokers): the consumer and producers,
 * rebalances and the fencing of departed peers, pause/seek/resume, the
 * retry topics' holds and scans, committed offsets and ends. The context
 * and the layers are in pr.h.
 */
#ifndef PR_KAFKA_H
#define PR_KAFKA_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "pr.h"

/* Consumer and producers; the consumer queue wakes pr->wake. */
int pr_kafka_start(pr_ctx_t *pr, char *errstr, size_t errstr_size);
void pr_kafka_unwatch(pr_ctx_t *pr);
/* Leave the group (the revoke runs the rebalance hook) and destroy the
 * consumer and the scanner. */
void pr_kafka_close_consumer(pr_ctx_t *pr);
/* Replace a consumer librdkafka gave up on (a static member fenced by
 * its own rejoin, after a session that timed out while the group's
 * coordinator moved) by a new one under the same instance name: what the
 * old one owned is revoked as in a rebalance (the hook runs: what is in
 * flight ends), then the new consumer subscribes and joins; its
 * assignment and repair checks follow as after a start. The producers
 * and their transactions stay. 0, or an error with the reason (the
 * processor cannot go on). */
int pr_kafka_renew_consumer(pr_ctx_t *pr, char *errstr, size_t errstr_size);
/* Destroy the producers (after pr_kafka_close_consumer, nothing in flight). */
void pr_kafka_stop(pr_ctx_t *pr);
/* Once per rebalance, before the repair checks of the n partitions ps[]
 * (static membership): the instances that last committed their offsets
 * (each offset names its committer) and are not in the group any more
 * are fenced: their transactional ids initialised, so the transaction a
 * departed instance left open is aborted at once instead of at its
 * timeout. Then this instance's own transactions are initialised, the
 * first time: only now, once the group has it, so no peer's fence can
 * meet its new producers. Blocks the loop for two requests, and per
 * departed instance for its fence (at most 5 s each). Stops the
 * processor (pr_fatal) if its own transactions cannot be initialised. */
void pr_kafka_peers(pr_ctx_t *pr, const int32_t *ps, int n);
/* Index of a consumed topic (0..PR_N_SRC-1), PR_N_SRC if unknown. */
static inline int pr_topic_src(const pr_ctx_t *pr, const char *topic) {
    for (int s = 0; s < PR_N_SRC; s++)
        if (strcmp(pr->kc.topics[s], topic) == 0) return s;
    return PR_N_SRC;
}
/* The ends of the retry topics of the n partitions ps[] in one query:
 * ends[i][fs] (-1: not answered). Returns how many were not answered. */
int pr_kafka_retry_ends(pr_ctx_t *pr, const int32_t *ps, int n, int64_t (*ends)[PX_SRC__COUNT]);
/* The retry records of partition p still waiting (from the committed
 * offsets in committed[PR_N_SRC] to ends[], pr_kafka_retry_ends): sets
 * each entity's retry head/next and hold_from (adding and loading
 * entities as needed). 0, or PX_EBACKEND (Kafka or Redis unreachable:
 * try again). */
int pr_kafka_scan_retries(pr_ctx_t *pr, int32_t p, const int64_t committed[PR_N_SRC],
                          const int64_t ends[PX_SRC__COUNT]);
/* True when a failure of the check of pp is worth a log line: its first,
 * then its 2nd, 4th, 8th... in a row. */
static inline bool pr_check_log_due(const pr_part_t *pp) {
    uint32_t n = pp->check_fails;
    return (n & (n - 1)) == 0;
}
/* Drop the entities of the partitions in first[][] (a batch consumed from
 * them) and touched[] (it produced EXPIREs for them), hold those
 * partitions until their repair check ran again, and pause them. Nothing
 * in flight may name their entities (pr_quiesce first). */
void pr_kafka_rewind(pr_ctx_t *pr, const int64_t first[][PR_N_SRC], const bool *touched);
/* Redis may have lost writes (a master changed: pr_redis.c): drop every
 * entity, forget the positions, give every owned partition a repair check
 * (from the applied marks, which a shard loses with its writes), pause
 * them. Nothing may be in flight. */
void pr_kafka_rebuild(pr_ctx_t *pr);
/* Pause every assigned partition (Redis is away). */
void pr_kafka_pause_all(pr_ctx_t *pr);
/* Resume every assigned partition whose repair check has run. */
void pr_kafka_resume_checked(pr_ctx_t *pr);
/* While paused: serve rebalances; a record delivered anyway is sought
 * back to, so it is consumed again once resumed. */
void pr_kafka_serve_paused(pr_ctx_t *pr);
/* Seek every source of the partitions in l to the list's offsets and wait
 * for the outcome. ok[p] false for each partition refused (the fetcher
 * has not started, or an error; logged thinned), its check to be run
 * again. */
void pr_kafka_seek_sources(pr_ctx_t *pr, rd_kafka_topic_partition_list_t *l, bool ok[PR_MAX_PARTITIONS]);
/* The committed offsets of the n partitions ps[] per source (-1: none)
 * in one request: ok[i] tells whether out[i] was read. A partition whose
 * offsets are not stable (a transaction still open) fails the request,
 * so then each is asked alone. Returns how many failed (logged
 * thinned by each partition's check_fails). */
int pr_kafka_committed(pr_ctx_t *pr, const int32_t *ps, int n, int64_t (*out)[PR_N_SRC], bool *ok);
/* Resume every source of partition p. */
void pr_kafka_resume_part(pr_ctx_t *pr, int32_t p);
/* Hold retry topic fs of partition p at offset until wall-clock ms due:
 * paused, sought back to the record. */
void pr_kafka_hold_retry(pr_ctx_t *pr, int32_t p, int fs, int64_t offset, int64_t due);
/* Resume the retry topics whose hold is due. */
void pr_kafka_release_retries(pr_ctx_t *pr, int64_t now_ms);
/* Records waiting in the owned partitions (librdkafka's cached high
 * watermarks minus the next offset to fold). */
int64_t pr_kafka_backlog(pr_ctx_t *pr);
/* A client of its own for queries (assign only, never joins a group),
 * named name, with group.id group (NULL: name), reading read_committed
 * or not; NULL if it cannot be made (logged). */
rd_kafka_t *pr_kafka_client_new(pr_ctx_t *pr, const char *name, const char *group, bool committed);
/* The ends of l's partitions (each elem's offset; read_committed: the
 * last stable offset) asked of their leaders, within timeout_ms; thread
 * safe. 0, or the number of partitions not answered (their err set,
 * offset -1); a failure refreshes rk's metadata, so the next query asks
 * the partitions' new leaders. */
int pr_kafka_query_ends(rd_kafka_t *rk, rd_kafka_topic_partition_list_t *l, int timeout_ms);

#endif
