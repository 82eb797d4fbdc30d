/*
 * px_headers.h - the names of the Kafka headers the programs write and
 * read (docs/exactly-once.md "Retry topics", docs/presencectl.md "dlq").
 *
 * On a record the processor sends to <topic>.retry or <topic>.dlt: where
 * it was first consumed (topic, partition, offset, timestamp), why it
 * failed, its attempt; on a retry record also the wall-clock ms it is due
 * and its entity's sequence number (px_input.h reads these back). On a
 * record presencectl reinjects from a DLQ: where it came from and when.
 */
#ifndef PX_HEADERS_H
#define PX_HEADERS_H

#define PX_HDR_ERROR "px.error"
#define PX_HDR_TOPIC "px.topic"
#define PX_HDR_PARTITION "px.partition"
#define PX_HDR_OFFSET "px.offset"
#define PX_HDR_TIMESTAMP "px.timestamp"
#define PX_HDR_ATTEMPT "px.attempt"
#define PX_HDR_DUE "px.due"
#define PX_HDR_SEQ "px.seq"
#define PX_HDR_REINJECTED_FROM "px.reinjected-from"
#define PX_HDR_REINJECTED_AT "px.reinjected-at"

#endif
