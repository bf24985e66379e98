/*
 * One strict UTF-8 sequence check shared by the C extensions (deltas/_speedups.c,
 * producers/_speedups.c): exactly what CPython's strict UTF-8 decoder accepts.
 * Pure code, no I/O; included, not linked.
 */
#ifndef KUBEDELTA_UTF8_H
#define KUBEDELTA_UTF8_H

#include <Python.h>

/* The sequence starting at p (a byte >= 0x80): its length, or 0 if invalid (overlong
 * forms, surrogates, code points above U+10FFFF, cut short before end). */
static inline int utf8_seq(const unsigned char *p, const unsigned char *end) {
    unsigned char c = p[0];
    Py_ssize_t left = end - p;
    if (c >= 0xc2 && c <= 0xdf) return (left >= 2 && (p[1] & 0xc0) == 0x80) ? 2 : 0;
    if (c >= 0xe0 && c <= 0xef) {
        if (left < 3 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80) return 0;
        if (c == 0xe0 && p[1] < 0xa0) return 0;  /* overlong */
        if (c == 0xed && p[1] >= 0xa0) return 0; /* surrogates */
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        if (left < 4 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 ||
            (p[3] & 0xc0) != 0x80)
            return 0;
        if (c == 0xf0 && p[1] < 0x90) return 0; /* overlong */
        if (c == 0xf4 && p[1] >= 0x90) return 0; /* > U+10FFFF */
        return 4;
    }
    return 0;
}

#endif
