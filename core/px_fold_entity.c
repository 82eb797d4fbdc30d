/*
 * px_fold_entity.c - an entity's storage: the packed strings of its items
 * (px_fold.h), its lifetime and deep copy, the growth of its arrays up to
 * their caps, and the hash write ids are remembered by. No fold rule lives
 * here: px_fold.c decides what a record changes; it calls this file to
 * make room and to pack strings before it changes anything (the only steps
 * that can fail: PX_ENOMEM leaves the entity as it was), and to commit the
 * packed strings after. Related: px_fold_int.h.
 */
#include <stdlib.h>
#include <string.h>

#include "px_err.h"
#include "px_fold_int.h"

uint64_t px_fold_id_hash(const char *s) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* ---- packed strings (px_fold.h) -------------------------------------------- */

_Static_assert(PX_FOLD_TAB_S__COUNT <= PX_FOLD_PACK_MAX && PX_FOLD_LOCK_S__COUNT <= PX_FOLD_PACK_MAX,
               "pack too small");
_Static_assert(PX_FOLD_LOCK_INLINE >= PX_FOLD_TAB_INLINE && PX_FOLD_LOCK_INLINE >= PX_FOLD_WRITE_INLINE,
               "pack's in[] too small");
/* The ids and names are bounded (px_event.h), so an offset fits 16 bits. */
_Static_assert(3 * (PX_ID_MAX + 1) + 2 * (PX_NAME_MAX + 1) <= UINT16_MAX, "offsets overflow");

/* Pack s[0..n) into p: into p->in when they fit in_size bytes (the item's
 * in[]), else into a malloc'd block. 0 or PX_ENOMEM. */
static int px_fold_pack(px_fold_pack_t *p, size_t in_size, const char *const *s, size_t n) {
    size_t len[PX_FOLD_PACK_MAX], total = 0;
    for (size_t i = 0; i < n; i++) {
        len[i] = strlen(s[i]);
        total += len[i] + 1;
    }
    char *dst = p->in;
    p->heap = NULL;
    if (total > in_size) {
        if (!(p->heap = malloc(total))) return PX_ENOMEM;
        dst = p->heap;
    }
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        p->off[i] = (uint16_t)at;
        memcpy(dst + at, s[i], len[i] + 1);
        at += len[i] + 1;
    }
    p->len = total;
    return 0;
}

/* Give the item p's strings, freeing the block it had. Cannot fail. */
static void px_fold_pack_commit(const px_fold_pack_t *p, char **heap, uint16_t *off, char *in, size_t n) {
    free(*heap);
    *heap = p->heap;
    memcpy(off, p->off, n * sizeof *off);
    if (!p->heap) memcpy(in, p->in, p->len);
}

int px_fold_tab_pack(px_fold_pack_t *p, const char *tab_id, const char *user_id, const char *user_name,
                     const char *field, const char *cursor) {
    const char *s[PX_FOLD_TAB_S__COUNT] = {tab_id, user_id, user_name, field, cursor};
    return px_fold_pack(p, PX_FOLD_TAB_INLINE, s, PX_FOLD_TAB_S__COUNT);
}

void px_fold_tab_commit(px_fold_tab_t *t, const px_fold_pack_t *p) {
    px_fold_pack_commit(p, &t->heap, t->off, t->in, PX_FOLD_TAB_S__COUNT);
}

int px_fold_lock_pack(px_fold_pack_t *p, const char *field, const char *tab_id, const char *user_id,
                      const char *user_name) {
    const char *s[PX_FOLD_LOCK_S__COUNT] = {field, tab_id, user_id, user_name};
    return px_fold_pack(p, PX_FOLD_LOCK_INLINE, s, PX_FOLD_LOCK_S__COUNT);
}

void px_fold_lock_commit(px_fold_lock_t *l, const px_fold_pack_t *p) {
    px_fold_pack_commit(p, &l->heap, l->off, l->in, PX_FOLD_LOCK_S__COUNT);
}

static int px_fold_write_pack(px_fold_pack_t *p, const char *write_id, const char *busy_by) {
    const char *s[PX_FOLD_WRITE_S__COUNT] = {write_id, busy_by};
    return px_fold_pack(p, PX_FOLD_WRITE_INLINE, s, PX_FOLD_WRITE_S__COUNT);
}

int px_fold_tab_set_strs(px_fold_tab_t *t, const char *tab_id, const char *user_id, const char *user_name,
                         const char *field, const char *cursor) {
    px_fold_pack_t p;
    if (px_fold_tab_pack(&p, tab_id, user_id, user_name, field, cursor)) return PX_ENOMEM;
    px_fold_tab_commit(t, &p);
    return 0;
}

int px_fold_lock_set_strs(px_fold_lock_t *l, const char *field, const char *tab_id, const char *user_id,
                          const char *user_name) {
    px_fold_pack_t p;
    if (px_fold_lock_pack(&p, field, tab_id, user_id, user_name)) return PX_ENOMEM;
    px_fold_lock_commit(l, &p);
    return 0;
}

int px_fold_write_set_strs(px_fold_write_t *w, const char *write_id, const char *busy_by) {
    px_fold_pack_t p;
    if (px_fold_write_pack(&p, write_id, busy_by)) return PX_ENOMEM;
    px_fold_pack_commit(&p, &w->heap, w->off, w->in, PX_FOLD_WRITE_S__COUNT);
    return 0;
}

/* Make a copied item's heap block its own (it shares the original's).
 * After a failure (*ok false) the rest get NULL: nothing of the original's
 * may be freed with the copy. */
static void px_fold_strs_dup(char **heap, const uint16_t *off, size_t n, bool *ok) {
    if (!*heap) return;
    char *q = NULL;
    if (*ok) {
        size_t len = off[n - 1] + strlen(*heap + off[n - 1]) + 1;
        if ((q = malloc(len))) memcpy(q, *heap, len);
        else *ok = false;
    }
    *heap = q;
}

/* ---- entity lifetime ------------------------------------------------------ */

void px_entity_init(px_entity_t *e, const px_key_t *key) {
    memset(e, 0, sizeof *e);
    if (key) e->key = *key;
}

void px_entity_term(px_entity_t *e) {
    if (!e) return;
    px_key_t key = e->key;
    for (size_t i = 0; i < e->n_tabs; i++) free(e->tabs[i].heap);
    for (size_t i = 0; i < e->n_locks; i++) free(e->locks[i].heap);
    for (size_t i = 0; i < e->n_writes; i++) free(e->writes[i].heap);
    free(e->tabs);
    free(e->locks);
    free(e->writes);
    free(e->gone);
    free(e->done);
    px_entity_init(e, &key);
}

px_entity_t *px_entity_new(const px_key_t *key) {
    px_entity_t *e = malloc(sizeof *e);
    if (e) px_entity_init(e, key);
    return e;
}

void px_entity_free(px_entity_t *e) {
    if (!e) return;
    px_entity_term(e);
    free(e);
}

/* Duplicate n elements of size sz (NULL for n == 0); *ok false on OOM. */
static void *px_fold_dup(const void *p, size_t n, size_t sz, bool *ok) {
    if (n == 0) return NULL;
    void *q = malloc(n * sz);
    if (!q) {
        *ok = false;
        return NULL;
    }
    memcpy(q, p, n * sz);
    return q;
}

int px_entity_copy(px_entity_t *dst, const px_entity_t *src) {
    if (dst == src) return 0;
    px_entity_term(dst);
    px_entity_t t = *src;
    bool ok = true;
    t.tabs = px_fold_dup(src->tabs, src->n_tabs, sizeof *src->tabs, &ok);
    t.locks = px_fold_dup(src->locks, src->n_locks, sizeof *src->locks, &ok);
    t.writes = px_fold_dup(src->writes, src->n_writes, sizeof *src->writes, &ok);
    t.gone = px_fold_dup(src->gone, src->n_gone, sizeof *src->gone, &ok);
    t.done = px_fold_dup(src->done, src->n_done, sizeof *src->done, &ok);
    t.cap_tabs = src->n_tabs;
    t.cap_locks = src->n_locks;
    t.cap_writes = src->n_writes;
    t.cap_gone = src->n_gone;
    t.cap_done = src->n_done;
    if (!ok) { /* the items copied still point to src's strings: not ours to free */
        t.n_tabs = 0;
        t.n_locks = 0;
        t.n_writes = 0;
    } else {
        for (size_t i = 0; i < t.n_tabs; i++)
            px_fold_strs_dup(&t.tabs[i].heap, t.tabs[i].off, PX_FOLD_TAB_S__COUNT, &ok);
        for (size_t i = 0; i < t.n_locks; i++)
            px_fold_strs_dup(&t.locks[i].heap, t.locks[i].off, PX_FOLD_LOCK_S__COUNT, &ok);
        for (size_t i = 0; i < t.n_writes; i++)
            px_fold_strs_dup(&t.writes[i].heap, t.writes[i].off, PX_FOLD_WRITE_S__COUNT, &ok);
    }
    if (!ok) {
        px_entity_term(&t);
        px_entity_init(dst, &src->key);
        return PX_ENOMEM;
    }
    *dst = t;
    return 0;
}

/* Make room for `need` elements in *arr (capacity *cap), doubling up to
 * max. 0 or PX_ENOMEM; *arr unchanged on failure. */
static int px_fold_reserve(void **arr, size_t *cap, size_t need, size_t max, size_t sz) {
    if (need <= *cap) return 0;
    if (need > max) return PX_ENOMEM;
    size_t n = *cap ? *cap : 2;
    while (n < need) n *= 2;
    if (n > max) n = max;
    void *p = realloc(*arr, n * sz);
    if (!p) return PX_ENOMEM;
    *arr = p;
    *cap = n;
    return 0;
}

int px_fold_reserve_tabs(px_entity_t *e, size_t need, size_t max) {
    void *p = e->tabs;
    size_t cap = e->cap_tabs;
    int rc = px_fold_reserve(&p, &cap, need, max, sizeof *e->tabs);
    e->tabs = p;
    e->cap_tabs = (uint32_t)cap;
    return rc;
}

int px_fold_reserve_locks(px_entity_t *e, size_t need, size_t max) {
    void *p = e->locks;
    size_t cap = e->cap_locks;
    int rc = px_fold_reserve(&p, &cap, need, max, sizeof *e->locks);
    e->locks = p;
    e->cap_locks = (uint16_t)cap;
    return rc;
}

int px_fold_reserve_writes(px_entity_t *e, size_t need, size_t max) {
    void *p = e->writes;
    size_t cap = e->cap_writes;
    int rc = px_fold_reserve(&p, &cap, need, max, sizeof *e->writes);
    e->writes = p;
    e->cap_writes = (uint16_t)cap;
    return rc;
}

int px_fold_reserve_gone(px_entity_t *e, size_t need) {
    void *p = e->gone;
    size_t cap = e->cap_gone;
    if (need > PX_FOLD_GONE_MAX) need = PX_FOLD_GONE_MAX;
    int rc = px_fold_reserve(&p, &cap, need, PX_FOLD_GONE_MAX, sizeof *e->gone);
    e->gone = p;
    e->cap_gone = (uint16_t)cap;
    return rc;
}

int px_fold_reserve_done(px_entity_t *e, size_t need) {
    void *p = e->done;
    size_t cap = e->cap_done;
    if (need > PX_FOLD_DONE_MAX) need = PX_FOLD_DONE_MAX;
    int rc = px_fold_reserve(&p, &cap, need, PX_FOLD_DONE_MAX, sizeof *e->done);
    e->done = p;
    e->cap_done = (uint16_t)cap;
    return rc;
}
