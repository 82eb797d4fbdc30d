/*
 * pr_table.c - the processor's entities in memory: a chained hash table
 * keyed by the entity key, the list of entities changed since the last
 * Redis write, and a min-heap of deadlines (lazy: an entity may be filed
 * more than once; stale items are skipped when popped).
 */
#include <stdlib.h>
#include <string.h>

#include "pr.h"
#include "px_hash.h"
#include "px_log.h"

static uint64_t key_hash(const px_key_t *k) {
    uint64_t h = PX_FNV1A_INIT;
    const char *parts[3] = {k->tenant, k->entity, k->id};
    for (int i = 0; i < 3; i++) h = px_fnv1a(px_fnv1a_str(h, parts[i]), ":", 1);
    return h;
}

int pr_table_init(pr_ctx_t *pr, size_t buckets) {
    size_t n = 1;
    while (n < buckets) n <<= 1;
    buckets = n;
    pr->tab.buckets = calloc(buckets, sizeof *pr->tab.buckets);
    if (!pr->tab.buckets) return PX_ENOMEM;
    pr->tab.n_buckets = buckets;
    return 0;
}

/* Distinct users among the entity's tabs. This runs after every record
 * folded: a pairwise comparison for a few tabs, an open-addressing set of
 * tab indexes (hash, then the string) for many, so an entity at the tab
 * cap costs 256 hashes instead of 32k string compares. */
static int32_t distinct_users(const px_entity_t *st) {
    size_t n = st->n_tabs;
    int32_t users = 0;
    if (n <= 8) {
        for (size_t i = 0; i < n; i++) {
            const char *u = px_fold_tab_user_id(&st->tabs[i]);
            size_t j = 0;
            while (j < i && strcmp(px_fold_tab_user_id(&st->tabs[j]), u) != 0) j++;
            users += j == i;
        }
        return users;
    }
    enum { SLOTS = 2 * PX_FOLD_TABS_MAX }; /* a power of two, at most half full */
    int16_t slot[SLOTS];
    memset(slot, 0xff, sizeof slot); /* -1: empty */
    for (size_t i = 0; i < n; i++) {
        const char *u = px_fold_tab_user_id(&st->tabs[i]);
        size_t k = (size_t)px_fnv1a_str(PX_FNV1A_INIT, u) & (SLOTS - 1);
        while (slot[k] >= 0 && strcmp(px_fold_tab_user_id(&st->tabs[slot[k]]), u) != 0) k = (k + 1) & (SLOTS - 1);
        if (slot[k] < 0) {
            slot[k] = (int16_t)i;
            users++;
        }
    }
    return users;
}

/* The entity's share of the redis_presence_* gauges, counted on the
 * folded state (items leave it through EXPIRE records, which the processor
 * produces at their deadlines): distinct users of its tabs, tabs, locks,
 * and whether a write is open. */
static void gauges_count(pr_ctx_t *pr, pr_entity_t *e, bool gone) {
    int32_t users = 0, tabs = 0, locks = 0;
    bool stale = false;
    if (!gone) {
        tabs = (int32_t)e->st.n_tabs;
        locks = (int32_t)e->st.n_locks;
        stale = e->st.n_writes > 0;
        users = distinct_users(&e->st);
    }
    pr->tab.g_users += users - e->g_users;
    pr->tab.g_tabs += tabs - e->g_tabs;
    pr->tab.g_locks += locks - e->g_locks;
    pr->tab.g_stale += (int64_t)stale - (int64_t)e->g_stale;
    e->g_users = users;
    e->g_tabs = tabs;
    e->g_locks = locks;
    e->g_stale = stale;
}

static void entity_free(pr_entity_t *e) {
    px_entity_term(&e->st);
    px_notify_term(&e->notify);
    px_notify_term(&e->decisions);
    free(e);
}

void pr_table_term(pr_ctx_t *pr) {
    for (size_t i = 0; i < pr->tab.n_buckets; i++)
        for (pr_entity_t *e = pr->tab.buckets[i], *n; e; e = n) {
            n = e->next;
            entity_free(e);
        }
    free(pr->tab.buckets);
    free(pr->tab.heap);
    pr->tab.buckets = NULL;
    pr->tab.heap = NULL;
    pr->tab.n_buckets = pr->tab.n_entities = pr->tab.heap_n = pr->tab.heap_cap = 0;
    pr->tab.dirty = NULL;
    pr->tab.n_dirty = 0;
}

uint64_t pr_table_hash(const px_key_t *key) { return key_hash(key); }

pr_entity_t *pr_table_find_hashed(pr_ctx_t *pr, const px_key_t *key, uint64_t h) {
    for (pr_entity_t *e = pr->tab.buckets[h & (pr->tab.n_buckets - 1)]; e; e = e->next)
        if (e->hash == h && px_key_equal(&e->st.key, key)) return e;
    return NULL;
}

pr_entity_t *pr_table_find(pr_ctx_t *pr, const px_key_t *key) { return pr_table_find_hashed(pr, key, key_hash(key)); }

void pr_table_prefetch(const pr_ctx_t *pr, uint64_t h, bool entity) {
    pr_entity_t *const *slot = &pr->tab.buckets[h & (pr->tab.n_buckets - 1)];
    if (!entity) {
        __builtin_prefetch(slot);
        return;
    }
    const pr_entity_t *e = *slot; /* the chain's head: usually the one (chains average under one) */
    if (!e) return;
    __builtin_prefetch(e);
    __builtin_prefetch(e->st.key.entity);
    __builtin_prefetch(e->st.key.id);
}

/* Double the buckets once there are more entities than buckets (chains
 * stay short at a million entities). Out of memory: keep the table as it
 * is, with longer chains. */
static void table_grow(pr_ctx_t *pr) {
    size_t n = pr->tab.n_buckets * 2;
    pr_entity_t **nb = calloc(n, sizeof *nb);
    if (!nb) {
        PX_WARN(PR_COMP, "entity table not grown: out of memory", "entities=%zu buckets=%zu", pr->tab.n_entities,
                pr->tab.n_buckets);
        return;
    }
    for (size_t b = 0; b < pr->tab.n_buckets; b++)
        for (pr_entity_t *e = pr->tab.buckets[b], *next; e; e = next) {
            next = e->next;
            e->next = nb[e->hash & (n - 1)];
            nb[e->hash & (n - 1)] = e;
        }
    free(pr->tab.buckets);
    pr->tab.buckets = nb;
    pr->tab.n_buckets = n;
}

pr_entity_t *pr_table_add(pr_ctx_t *pr, const px_key_t *key, int32_t partition) {
    pr_entity_t *e = calloc(1, sizeof *e);
    if (!e) return NULL;
    px_entity_init(&e->st, key);
    px_store_wm_init(&e->wm);
    px_notify_init(&e->notify, 64 * 1024);
    px_notify_init(&e->decisions, 16 * 1024);
    e->partition = partition;
    e->heap_deadline = INT64_MAX;
    for (int s = 0; s < PX_SRC__COUNT; s++) e->hold_from[s] = INT64_MAX;
    e->hash = key_hash(key);
    if (pr->tab.n_entities >= pr->tab.n_buckets) table_grow(pr);
    size_t b = e->hash & (pr->tab.n_buckets - 1);
    e->next = pr->tab.buckets[b];
    pr->tab.buckets[b] = e;
    pr->tab.n_entities++;
    px_gauge_set(pr->m_entities, (int64_t)pr->tab.n_entities);
    return e;
}

void pr_table_mark_dirty(pr_ctx_t *pr, pr_entity_t *e) {
    if (e->dirty) return;
    e->dirty = true;
    e->next_dirty = pr->tab.dirty;
    pr->tab.dirty = e;
    pr->tab.n_dirty++;
}

/* ---- deadline heap ------------------------------------------------------ */

static void heap_swap(pr_heap_item_t *a, pr_heap_item_t *b) {
    pr_heap_item_t t = *a;
    *a = *b;
    *b = t;
}

static void heap_push(pr_ctx_t *pr, int64_t deadline, pr_entity_t *e) {
    if (pr->tab.heap_n == pr->tab.heap_cap) {
        size_t nc = pr->tab.heap_cap ? pr->tab.heap_cap * 2 : 1024;
        pr_heap_item_t *h = realloc(pr->tab.heap, nc * sizeof *h);
        if (!h) {
            PX_ERROR(PR_COMP, "deadline heap full: out of memory", "entities=%zu", pr->tab.n_entities);
            return;
        }
        pr->tab.heap = h;
        pr->tab.heap_cap = nc;
    }
    size_t i = pr->tab.heap_n++;
    pr->tab.heap[i] = (pr_heap_item_t){deadline, e};
    while (i > 0 && pr->tab.heap[(i - 1) / 2].deadline > pr->tab.heap[i].deadline) {
        heap_swap(&pr->tab.heap[(i - 1) / 2], &pr->tab.heap[i]);
        i = (i - 1) / 2;
    }
}

static void heap_pop(pr_ctx_t *pr) {
    pr->tab.heap[0] = pr->tab.heap[--pr->tab.heap_n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < pr->tab.heap_n && pr->tab.heap[l].deadline < pr->tab.heap[m].deadline) m = l;
        if (r < pr->tab.heap_n && pr->tab.heap[r].deadline < pr->tab.heap[m].deadline) m = r;
        if (m == i) break;
        heap_swap(&pr->tab.heap[m], &pr->tab.heap[i]);
        i = m;
    }
}

/* File e only when its deadline moved earlier than the one it is filed
 * under: heartbeats move deadlines later, so the heap holds about one item
 * per entity instead of one per record. A pop re-checks the entity with
 * px_fold_due and files it again at its real deadline. */
void pr_heap_update(pr_ctx_t *pr, pr_entity_t *e) {
    gauges_count(pr, e, false);
    int64_t d = px_fold_next_deadline(&e->st, &pr->fold);
    if (d >= e->heap_deadline) return;
    e->heap_deadline = d;
    heap_push(pr, d, e);
}

size_t pr_heap_due(pr_ctx_t *pr, int64_t now_ms, pr_entity_t **out, size_t n) {
    size_t k = 0;
    while (pr->tab.heap_n && k < n && pr->tab.heap[0].deadline <= now_ms) {
        pr_heap_item_t it = pr->tab.heap[0];
        heap_pop(pr);
        if (it.ent->heap_deadline != it.deadline) continue; /* superseded by an earlier item */
        it.ent->heap_deadline = INT64_MAX;
        out[k++] = it.ent;
    }
    return k;
}

int64_t pr_heap_next(const pr_ctx_t *pr) { return pr->tab.heap_n ? pr->tab.heap[0].deadline : INT64_MAX; }

void pr_table_drop_partition(pr_ctx_t *pr, int32_t partition) {
    /* heap items of dropped entities must go first: rebuild the heap */
    size_t w = 0;
    for (size_t i = 0; i < pr->tab.heap_n; i++)
        if (pr->tab.heap[i].ent->partition != partition) pr->tab.heap[w++] = pr->tab.heap[i];
    pr->tab.heap_n = w;
    for (size_t i = pr->tab.heap_n / 2; i-- > 0;) { /* heapify */
        size_t j = i;
        for (;;) {
            size_t l = 2 * j + 1, r = l + 1, m = j;
            if (l < pr->tab.heap_n && pr->tab.heap[l].deadline < pr->tab.heap[m].deadline) m = l;
            if (r < pr->tab.heap_n && pr->tab.heap[r].deadline < pr->tab.heap[m].deadline) m = r;
            if (m == j) break;
            heap_swap(&pr->tab.heap[m], &pr->tab.heap[j]);
            j = m;
        }
    }
    for (pr_entity_t **pp = &pr->tab.dirty; *pp;) {
        if ((*pp)->partition == partition) {
            (*pp)->dirty = false;
            *pp = (*pp)->next_dirty;
            pr->tab.n_dirty--;
        } else {
            pp = &(*pp)->next_dirty;
        }
    }
    for (size_t b = 0; b < pr->tab.n_buckets; b++)
        for (pr_entity_t **pp = &pr->tab.buckets[b]; *pp;) {
            pr_entity_t *e = *pp;
            if (e->partition == partition) {
                *pp = e->next;
                gauges_count(pr, e, true);
                entity_free(e);
                pr->tab.n_entities--;
            } else {
                pp = &e->next;
            }
        }
    px_gauge_set(pr->m_entities, (int64_t)pr->tab.n_entities);
}
