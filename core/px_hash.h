/*
 * px_hash.h - FNV-1a (64-bit), the one string hash of the in-memory tables
 * (the processor's entities, presencectl's fold, the gateway's entities
 * and connections). Not for anything an attacker could aim collisions at
 * beyond making a chain longer.
 */
#ifndef PX_HASH_H
#define PX_HASH_H

#include <stddef.h>
#include <stdint.h>

#define PX_FNV1A_INIT 1469598103934665603ULL

/* Continue hash h over p[0..n) / over the NUL-terminated s. */
static inline uint64_t px_fnv1a(uint64_t h, const void *p, size_t n) {
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 1099511628211ULL;
    return h;
}

static inline uint64_t px_fnv1a_str(uint64_t h, const char *s) {
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

#endif
