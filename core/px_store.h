/*
 * px_store.h - how the processor keeps one entity in Redis: the complete
 * folded state (to load it again) and the reader-facing view (for the
 * gateway and presencectl), written together by one Lua script that is
 * guarded by the entity's watermark vector, so a replayed or zombie write
 * can never move Redis backwards. docs/redis-keys.md documents the keys,
 * docs/exactly-once.md why the guard makes writes exactly-once.
 *
 * Keys of entity T:E:I (one hash tag, one slot):
 *   presence:{T:E:I}:state  HASH    wm -> "o0,o1,o2,o3", blob -> state JSON
 *   presence:{T:E:I}:view   STRING  the view JSON (px_view.h): live tabs and
 *                                   locks with their deadlines, stale,
 *                                   busyBy, stale_until, version
 * Channel presence:updates:{T:E:I}: the script publishes the caller's
 * notification payload when it wrote.
 *
 * Encoding and decoding are pure and hostile-input safe (the state blob is
 * read back from Redis, which is outside the process). Related: px_fold.h,
 * px_view.h, processor/.
 */
#ifndef PX_STORE_H
#define PX_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "px_buf.h"
#include "px_fold.h"

/* For each source topic (px_src_topic_t) of the entity's partition, the
 * offset of the last record folded into the state; -1 = none. */
typedef struct px_store_wm {
    int64_t off[PX_SRC__COUNT];
} px_store_wm_t;

void px_store_wm_init(px_store_wm_t *wm); /* all -1 */
/* True if every component of a is >= the same component of b. */
bool px_store_wm_dominates(const px_store_wm_t *a, const px_store_wm_t *b);

/* Largest state blob px_store_decode reads (the worst case at the caps,
 * every string at its bound and fully escaped, is about 2 MiB). */
#define PX_STORE_BLOB_MAX (8u << 20)

/* The state blob: every part of the folded state (not the expire-requested
 * bookkeeping) and the watermarks, as canonical JSON. encode appends to out
 * (0 or PX_ENOMEM, out unchanged on error). decode fills e (initialised for
 * the entity's key; its previous contents are replaced) and wm, refusing
 * malformed, oversized or out-of-bounds input with PX_EINVAL and a reason;
 * on error e is left empty. decode(encode(x)) equals x (px_entity_equal).
 * A blob of another key than e's is refused; an e initialised with a NULL
 * key takes the blob's. Equal states encode to equal bytes. PX_ENOMEM when
 * allocating the arrays fails. */
int px_store_encode(const px_entity_t *e, const px_store_wm_t *wm, px_buf_t *out);
int px_store_decode(const char *buf, size_t len, px_entity_t *e, px_store_wm_t *wm, char *errstr,
                    size_t errstr_size);

/* The write script (Lua). Loaded once with SCRIPT LOAD; run with EVALSHA
 * and the arguments px_store_write_cmd builds. Returns 1 when it wrote, 0
 * when the stored watermark vector was not dominated by the new one (a
 * stale write: nothing changed, nothing published). */
extern const char PX_STORE_WRITE_SCRIPT[];

#define PX_STORE_MAX_ARGS 64

/* How long the state of an entity with nothing left (no tab, lock, open
 * write or version) is kept: its watermarks and its memory of closed writes
 * outlive any replay of the records that emptied it. */
#define PX_STORE_IDLE_RETENTION_MS (24LL * 3600 * 1000)

/* One EVALSHA command ready for redisAppendCommandArgv / redisAsyncCommandArgv.
 * argv/argvlen point into buf; valid until the next build or term. */
typedef struct px_store_cmd {
    int argc;
    const char *argv[PX_STORE_MAX_ARGS];
    size_t argvlen[PX_STORE_MAX_ARGS];
    px_buf_t buf;
} px_store_cmd_t;

void px_store_cmd_init(px_store_cmd_t *cmd);
void px_store_cmd_term(px_store_cmd_t *cmd);

/* Build the EVALSHA (script_sha: the 40-hex SHA1 SCRIPT LOAD returned) that
 * writes e's state and view with watermarks wm, as seen at now_ms (view
 * deadlines come from the fold: px_fold_view / px_fold_lock_deadline), and
 * publishes `notify` (may be NULL: nothing published) on the entity's
 * channel if it wrote. The view expires at the latest deadline in it and
 * is deleted when nothing is live; view and state persist once the entity
 * has a version; the state is kept while the fold holds anything, and
 * PX_STORE_IDLE_RETENTION_MS when it holds nothing. Argument layout:
 * docs/redis-keys.md.
 * Reuses cmd->buf (no allocation once grown). 0, or PX_ENOMEM. */
int px_store_write_cmd(px_store_cmd_t *cmd, const char *script_sha, const px_entity_t *e,
                       const px_fold_conf_t *c, const px_store_wm_t *wm, int64_t now_ms,
                       const char *notify);

/* The key of the state hash, for loading (HMGET key wm blob). Returns the
 * length or -1 if out is too small (PX_KEY_MAX + 64 suffices). */
int px_store_state_key(const px_key_t *key, char *out, size_t out_size);

#endif
