/*
 * store._speedups: the writes of a new or a changed object, in C. Pure code apart from
 * calling the WriteBatch's put and delete methods it is handed.
 *
 * write_new_object(...) does what store/apply.py's Planner._upsert does for an object
 * the view does not hold yet: the item hash (BLAKE2b-64, as deltas.digest.item_hash),
 * the objmeta value (META prefix + wire header), the version (HIST prefix + objmeta +
 * body) and the index entries (label, owner, app, escaped as layout.esc), each put
 * into the batch. It returns (item_hash, meta) for the planner's in-memory state, or
 * None when a number does not fit its field (the Python code then raises as before).
 *
 * write_replacement(...) does the same for an object the view holds whose content
 * changed (the churn of a live cluster): new version and objmeta, the old version's
 * end, and it tells whether the index fields changed by comparing their msgpack bytes
 * in the old and the new header (the caller re-indexes only then), so the old header
 * is never decoded in the common case.
 *
 * split_known(layers, keys) is the known-keys filter of store/known.py: which of a
 * batch's object keys the store may hold (read them) and which it cannot (new objects:
 * no read), a Bloom filter probe per key.
 *
 * Why C: for a new object those puts and byte strings were about a third of the
 * consumer's main thread (docs/benchmarks.md, session 5); an update spent its time in
 * the same places plus the old header's decode (session 6). The byte layout is
 * store/layout.py's; tests/store/test_write_speedups.py checks both paths produce the
 * same store.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <limits.h>
#include <string.h>

/* -- BLAKE2b (RFC 7693), unkeyed, 8-byte digest ------------------------------------- */

static const uint64_t blake2b_iv[8] = {
    0x6a09e667f3bcc908ULL, 0xbb67ae8584caa73bULL, 0x3c6ef372fe94f82bULL,
    0xa54ff53a5f1d36f1ULL, 0x510e527fade682d1ULL, 0x9b05688c2b3e6c1fULL,
    0x1f83d9abfb41bd6bULL, 0x5be0cd19137e2179ULL,
};

static const uint8_t sigma[12][16] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
    {11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4},
    {7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8},
    {9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13},
    {2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9},
    {12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11},
    {13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10},
    {6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5},
    {10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0},
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
};

typedef struct {
    uint64_t h[8];
    uint64_t t; /* bytes compressed so far (inputs here are far below 2**64) */
    uint8_t buf[128];
    size_t len; /* bytes in buf */
} blake2b;

static inline uint64_t rotr(uint64_t x, int n) { return (x >> n) | (x << (64 - n)); }

static inline uint64_t load64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

#define G(a, b, c, d, x, y)            \
    do {                               \
        v[a] = v[a] + v[b] + (x);      \
        v[d] = rotr(v[d] ^ v[a], 32);  \
        v[c] = v[c] + v[d];            \
        v[b] = rotr(v[b] ^ v[c], 24);  \
        v[a] = v[a] + v[b] + (y);      \
        v[d] = rotr(v[d] ^ v[a], 16);  \
        v[c] = v[c] + v[d];            \
        v[b] = rotr(v[b] ^ v[c], 63);  \
    } while (0)

static void compress(blake2b *s, int last) {
    uint64_t m[16], v[16];
    for (int i = 0; i < 16; i++) m[i] = load64(s->buf + 8 * i);
    for (int i = 0; i < 8; i++) { v[i] = s->h[i]; v[i + 8] = blake2b_iv[i]; }
    v[12] ^= s->t;
    if (last) v[14] = ~v[14];
    for (int r = 0; r < 12; r++) {
        const uint8_t *z = sigma[r];
        G(0, 4, 8, 12, m[z[0]], m[z[1]]);
        G(1, 5, 9, 13, m[z[2]], m[z[3]]);
        G(2, 6, 10, 14, m[z[4]], m[z[5]]);
        G(3, 7, 11, 15, m[z[6]], m[z[7]]);
        G(0, 5, 10, 15, m[z[8]], m[z[9]]);
        G(1, 6, 11, 12, m[z[10]], m[z[11]]);
        G(2, 7, 8, 13, m[z[12]], m[z[13]]);
        G(3, 4, 9, 14, m[z[14]], m[z[15]]);
    }
    for (int i = 0; i < 8; i++) s->h[i] ^= v[i] ^ v[i + 8];
}

static void b2_init(blake2b *s) {
    for (int i = 0; i < 8; i++) s->h[i] = blake2b_iv[i];
    s->h[0] ^= 0x01010000ULL ^ 8; /* fanout 1, depth 1, no key, 8-byte digest */
    s->t = 0;
    s->len = 0;
}

static void b2_update(blake2b *s, const uint8_t *in, size_t n) {
    while (n > 0) {
        if (s->len == 128) { /* the last block is compressed by b2_final, flagged */
            s->t += 128;
            compress(s, 0);
            s->len = 0;
        }
        size_t take = 128 - s->len;
        if (take > n) take = n;
        memcpy(s->buf + s->len, in, take);
        s->len += take;
        in += take;
        n -= take;
    }
}

/* The digest as a big-endian integer, like int.from_bytes(h.digest(), "big"). */
static uint64_t b2_final(blake2b *s) {
    s->t += s->len;
    memset(s->buf + s->len, 0, 128 - s->len);
    compress(s, 1);
    uint64_t le = s->h[0], out = 0;
    for (int i = 0; i < 8; i++) { out = (out << 8) | (le & 0xff); le >>= 8; }
    return out;
}

/* -- byte strings ------------------------------------------------------------------- */

static inline void put_be(uint8_t *p, uint64_t v, int n) {
    for (int i = n - 1; i >= 0; i--) { p[i] = (uint8_t)(v & 0xff); v >>= 8; }
}

/* layout.esc: 0x01 -> 01 01, 0x00 -> 01 02; the identity for ordinary text. */
static Py_ssize_t esc_len(const char *s, Py_ssize_t n) {
    Py_ssize_t extra = 0;
    for (Py_ssize_t i = 0; i < n; i++) extra += (s[i] == 0 || s[i] == 1);
    return n + extra;
}

static char *esc_copy(char *dst, const char *s, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++) {
        if (s[i] == 1) { *dst++ = 1; *dst++ = 1; }
        else if (s[i] == 0) { *dst++ = 1; *dst++ = 2; }
        else *dst++ = s[i];
    }
    return dst;
}

static PyObject *empty_bytes = NULL;

/* batch.put(key, value, handle); steals nothing. 0 on success. */
static int do_put(PyObject *put, PyObject *key, PyObject *value, PyObject *handle) {
    PyObject *args[3] = {key, value, handle};
    PyObject *r = PyObject_Vectorcall(put, args, 3, NULL);
    if (r == NULL) return -1;
    Py_DECREF(r);
    return 0;
}

/* put(esc(a) \0 [esc(b) \0] objkey, b"", handle), a and b as UTF-8 (b NULL: none) */
static int put_index_utf8(PyObject *put, PyObject *handle, const char *sa, Py_ssize_t na,
                          int a_escaped, const char *sb, Py_ssize_t nb, PyObject *objkey) {
    Py_ssize_t nk = PyBytes_GET_SIZE(objkey);
    Py_ssize_t la = a_escaped ? esc_len(sa, na) : na;
    Py_ssize_t lb = sb != NULL ? esc_len(sb, nb) + 1 : 0;
    PyObject *key = PyBytes_FromStringAndSize(NULL, la + 1 + lb + nk);
    if (key == NULL) return -1;
    char *p = PyBytes_AS_STRING(key);
    /* nearly always nothing to escape: a plain copy then */
    if (a_escaped && la != na) p = esc_copy(p, sa, na);
    else { memcpy(p, sa, (size_t)na); p += na; }
    *p++ = 0;
    if (sb != NULL) {
        if (lb - 1 != nb) p = esc_copy(p, sb, nb);
        else { memcpy(p, sb, (size_t)nb); p += nb; }
        *p++ = 0;
    }
    memcpy(p, PyBytes_AS_STRING(objkey), (size_t)nk);
    int rc = do_put(put, key, empty_bytes, handle);
    Py_DECREF(key);
    return rc;
}

/* put_index_utf8 of str a and b (b NULL: none) */
static int put_index(PyObject *put, PyObject *handle, PyObject *a, int a_escaped, PyObject *b,
                     PyObject *objkey) {
    Py_ssize_t na, nb = 0;
    const char *sa = PyUnicode_AsUTF8AndSize(a, &na);
    if (sa == NULL) return -1;
    const char *sb = NULL;
    if (b != NULL && (sb = PyUnicode_AsUTF8AndSize(b, &nb)) == NULL) return -1;
    return put_index_utf8(put, handle, sa, na, a_escaped, sb, nb, objkey);
}

static inline uint64_t get_be(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v = (v << 8) | p[i];
    return v;
}

/* A msgpack str (fixstr, str 8/16/32) at b[*pos:n]: its bytes. 0 on success. */
static int mp_str(const uint8_t *b, Py_ssize_t n, Py_ssize_t *pos, const char **s,
                  Py_ssize_t *len) {
    if (*pos >= n) return -1;
    uint8_t t = b[*pos];
    Py_ssize_t h, k;
    if ((t & 0xe0) == 0xa0) { k = t & 0x1f; h = 1; }
    else if (t >= 0xd9 && t <= 0xdb) {
        int w = 1 << (t - 0xd9); /* str 8/16/32: a 1/2/4-byte length */
        if (n - *pos < 1 + w) return -1;
        k = (Py_ssize_t)get_be(b + *pos + 1, w);
        h = 1 + w;
    } else return -1;
    if (n - *pos - h < k) return -1;
    *s = (const char *)b + *pos + h;
    *len = k;
    *pos += h + k;
    return 0;
}

/* The label index entries of a msgpack map of str to str (the wire header's labels as
 * deltas._speedups left them: checked, distinct keys). 0 on success, -1 with an
 * exception set. */
static int put_labels_raw(PyObject *put, PyObject *handle, PyObject *raw, PyObject *objkey) {
    const uint8_t *b = (const uint8_t *)PyBytes_AS_STRING(raw);
    Py_ssize_t n = PyBytes_GET_SIZE(raw), pos = 1, pairs;
    if (n < 1) goto bad;
    if ((b[0] & 0xf0) == 0x80) pairs = b[0] & 0x0f;
    else if (b[0] == 0xde && n >= 3) { pairs = (Py_ssize_t)get_be(b + 1, 2); pos = 3; }
    else if (b[0] == 0xdf && n >= 5) { pairs = (Py_ssize_t)get_be(b + 1, 4); pos = 5; }
    else goto bad;
    for (Py_ssize_t i = 0; i < pairs; i++) {
        const char *k, *v;
        Py_ssize_t kn, vn;
        if (mp_str(b, n, &pos, &k, &kn) < 0 || mp_str(b, n, &pos, &v, &vn) < 0) goto bad;
        if (put_index_utf8(put, handle, k, kn, 1, v, vn, objkey) < 0) return -1;
    }
    if (pos == n) return 0;
bad:
    PyErr_SetString(PyExc_ValueError, "labels: not a msgpack map of str to str");
    return -1;
}

#define META_SIZE 35 /* >BBBIQQQI */
#define HIST_SIZE 5  /* >BI */
#define PREFIX_SIZE 7
#define SCHEMA_VERSION 2
#define FORMAT_VERSION 1
#define HIST_VERSION 1

/* The arguments both writers share, in this order: value, body_offset, objkey, cluster,
 * part, offset, event_ms, gen, flags, body. */
typedef struct {
    PyObject *value, *objkey, *body;
    Py_ssize_t body_offset, vlen, klen, cut;
    unsigned long long part, offset, event_ms, gen, flags;
    const uint8_t *vbuf, *kbuf;
} object_args;

/* 1: parsed; 0: a number does not fit its field (the caller returns None, writing
 * nothing, and the Python path raises as before); -1: an exception is set. */
static int parse_object_args(const char *fn, PyObject *const *a, object_args *o) {
    PyObject *cluster = a[3];
    o->value = a[0];
    o->objkey = a[2];
    o->body = a[9];
    if (!PyBytes_CheckExact(o->value) || !PyBytes_CheckExact(o->objkey) ||
        !PyUnicode_CheckExact(cluster) || !(o->body == Py_None || PyBytes_CheckExact(o->body))) {
        PyErr_Format(PyExc_TypeError, "%s: unexpected argument types", fn);
        return -1;
    }
    o->body_offset = PyLong_AsSsize_t(a[1]);
    o->part = PyLong_AsUnsignedLongLong(a[4]);
    o->offset = PyLong_AsUnsignedLongLong(a[5]);
    o->event_ms = PyLong_AsUnsignedLongLong(a[6]);
    o->gen = PyLong_AsUnsignedLongLong(a[7]);
    o->flags = PyLong_AsUnsignedLongLong(a[8]);
    if (PyErr_Occurred()) {
        if (PyErr_ExceptionMatches(PyExc_OverflowError)) { PyErr_Clear(); return 0; }
        return -1;
    }
    if (o->part > 0xffffffffULL || o->gen > 0xffffffffULL || o->flags > 0xff) return 0;
    o->vlen = PyBytes_GET_SIZE(o->value);
    if (o->body_offset < PREFIX_SIZE || o->body_offset > o->vlen) {
        PyErr_Format(PyExc_ValueError, "%s: body_offset outside the value", fn);
        return -1;
    }
    o->klen = PyBytes_GET_SIZE(o->objkey);
    o->cut = PyUnicode_GET_LENGTH(cluster); /* cluster names are ASCII */
    if (!PyUnicode_IS_ASCII(cluster) || o->cut + 1 > o->klen) {
        PyErr_Format(PyExc_ValueError, "%s: objkey does not start with cluster", fn);
        return -1;
    }
    o->vbuf = (const uint8_t *)PyBytes_AS_STRING(o->value);
    o->kbuf = (const uint8_t *)PyBytes_AS_STRING(o->objkey);
    return 1;
}

/* item hash: blake2b-64(identity \0 rv), identity = objkey after "cluster\0" */
static uint64_t object_item_hash(const object_args *o, const char *rvs, Py_ssize_t rvlen) {
    blake2b st;
    b2_init(&st);
    b2_update(&st, o->kbuf + o->cut + 1, (size_t)(o->klen - o->cut - 1));
    b2_update(&st, (const uint8_t *)"\0", 1);
    b2_update(&st, (const uint8_t *)rvs, (size_t)rvlen);
    return b2_final(&st);
}

typedef struct {
    PyObject *meta, *vkey, *vval; /* new references, or NULL */
} version_t;

static void version_clear(version_t *v) {
    Py_CLEAR(v->meta);
    Py_CLEAR(v->vkey);
    Py_CLEAR(v->vval);
}

/* A new version's byte strings: the objmeta value (META prefix + the record's wire
 * header), its key in versions (objkey \0 BE64(event ms) BE64(offset)) and its value
 * (HIST(1, len(meta)) meta body; the body as received, JSON, or the converted one).
 * 0 on success; -1 with an exception set (v cleared). */
static int build_version(version_t *v, uint64_t ih, const object_args *o) {
    uint8_t prefix[META_SIZE];
    prefix[0] = SCHEMA_VERSION;
    prefix[1] = (uint8_t)o->flags;
    prefix[2] = FORMAT_VERSION;
    put_be(prefix + 3, o->part, 4);
    put_be(prefix + 7, o->offset, 8);
    put_be(prefix + 15, ih, 8);
    put_be(prefix + 23, o->event_ms, 8);
    put_be(prefix + 31, o->gen, 4);
    const uint8_t *vbuf = o->vbuf, *kbuf = o->kbuf;
    Py_ssize_t klen = o->klen, body_offset = o->body_offset;
    PyObject *body = o->body;
    Py_ssize_t hlen = body_offset - PREFIX_SIZE;
    Py_ssize_t mlen = META_SIZE + hlen;
    Py_ssize_t blen = body == Py_None ? o->vlen - body_offset : PyBytes_GET_SIZE(body);
    v->meta = PyBytes_FromStringAndSize(NULL, mlen);
    v->vkey = PyBytes_FromStringAndSize(NULL, klen + 17);
    v->vval = PyBytes_FromStringAndSize(NULL, HIST_SIZE + mlen + blen);
    if (v->meta == NULL || v->vkey == NULL || v->vval == NULL) {
        version_clear(v);
        return -1;
    }
    char *m = PyBytes_AS_STRING(v->meta);
    memcpy(m, prefix, META_SIZE);
    memcpy(m + META_SIZE, vbuf + PREFIX_SIZE, (size_t)hlen);
    uint8_t *vk = (uint8_t *)PyBytes_AS_STRING(v->vkey);
    memcpy(vk, kbuf, (size_t)klen);
    vk[klen] = 0;
    put_be(vk + klen + 1, o->event_ms, 8);
    put_be(vk + klen + 9, o->offset, 8);
    uint8_t *vv = (uint8_t *)PyBytes_AS_STRING(v->vval);
    vv[0] = HIST_VERSION;
    put_be(vv + 1, (uint64_t)mlen, 4);
    memcpy(vv + HIST_SIZE, m, (size_t)mlen);
    memcpy(vv + HIST_SIZE + mlen,
           body == Py_None ? (const char *)vbuf + body_offset : PyBytes_AS_STRING(body),
           (size_t)blen);
    return 0;
}

static PyObject *write_new_object(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 16) {
        PyErr_SetString(PyExc_TypeError, "write_new_object takes 16 arguments");
        return NULL;
    }
    PyObject *put = args[0], *handles = args[1], *cluster = args[5], *labels = args[12],
             *owners = args[13], *app = args[14], *rv = args[15];
    if (!PyTuple_CheckExact(handles) || PyTuple_GET_SIZE(handles) != 5 ||
        !(PyDict_CheckExact(labels) || PyBytes_CheckExact(labels)) ||
        !PyTuple_CheckExact(owners) ||
        !PyUnicode_CheckExact(app) || !PyUnicode_CheckExact(rv)) {
        PyErr_SetString(PyExc_TypeError, "write_new_object: unexpected argument types");
        return NULL;
    }
    PyObject *h_versions = PyTuple_GET_ITEM(handles, 0), *h_objmeta = PyTuple_GET_ITEM(handles, 1),
             *h_label = PyTuple_GET_ITEM(handles, 2), *h_owner = PyTuple_GET_ITEM(handles, 3),
             *h_app = PyTuple_GET_ITEM(handles, 4);
    object_args o;
    int parsed = parse_object_args("write_new_object", args + 2, &o);
    if (parsed < 0) return NULL;
    if (parsed == 0) Py_RETURN_NONE;
    PyObject *objkey = o.objkey;
    Py_ssize_t rvlen;
    const char *rvs = PyUnicode_AsUTF8AndSize(rv, &rvlen);
    if (rvs == NULL) return NULL;
    uint64_t ih = object_item_hash(&o, rvs, rvlen);
    version_t v = {NULL, NULL, NULL};
    PyObject *ih_o = NULL, *result = NULL;
    if (build_version(&v, ih, &o) < 0) return NULL;
    PyObject *meta = v.meta;
    if (do_put(put, v.vkey, v.vval, h_versions) < 0) goto done;
    if (do_put(put, objkey, meta, h_objmeta) < 0) goto done;
    PyObject *lk, *lv;
    Py_ssize_t pos = 0;
    if (PyBytes_CheckExact(labels) && put_labels_raw(put, h_label, labels, objkey) < 0)
        goto done;
    while (PyDict_CheckExact(labels) && PyDict_Next(labels, &pos, &lk, &lv)) {
        if (!PyUnicode_CheckExact(lk) || !PyUnicode_CheckExact(lv)) {
            PyErr_SetString(PyExc_TypeError, "labels must map str to str");
            goto done;
        }
        if (put_index(put, h_label, lk, 1, lv, objkey) < 0) goto done;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(owners); i++) {
        PyObject *o = PyTuple_GET_ITEM(owners, i);
        if (!PyUnicode_CheckExact(o)) {
            PyErr_SetString(PyExc_TypeError, "owners must be str");
            goto done;
        }
        /* owner index: cluster \0 esc(owner) \0 objkey (the cluster is not escaped) */
        if (put_index(put, h_owner, cluster, 0, o, objkey) < 0) goto done;
    }
    if (PyUnicode_GET_LENGTH(app) > 0 && put_index(put, h_app, app, 1, NULL, objkey) < 0)
        goto done;
    if ((ih_o = PyLong_FromUnsignedLongLong(ih)) == NULL) goto done;
    result = PyTuple_Pack(2, ih_o, meta);
done:
    version_clear(&v);
    Py_XDECREF(ih_o);
    return result;
}

/* -- msgpack skipping (the stored and the wire header are msgpack arrays) ------------- */

/* Advance *pos past one msgpack object of b[0:n]; -1 if it is malformed or cut short. */
static int mp_skip(const uint8_t *b, Py_ssize_t n, Py_ssize_t *pos, int depth) {
    if (depth > 32 || *pos >= n) return -1;
    uint8_t t = b[(*pos)++];
    uint64_t len = 0, items = 0;
    if (t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3) return 0;
    if ((t & 0xe0) == 0xa0) len = t & 0x1f;                  /* fixstr */
    else if ((t & 0xf0) == 0x90) items = t & 0x0f;           /* fixarray */
    else if ((t & 0xf0) == 0x80) items = 2 * (uint64_t)(t & 0x0f); /* fixmap */
    else {
        int w;
        switch (t) {
        case 0xcc: case 0xd0: len = 1; break;
        case 0xcd: case 0xd1: len = 2; break;
        case 0xca: case 0xce: case 0xd2: len = 4; break;
        case 0xcb: case 0xcf: case 0xd3: len = 8; break;
        case 0xd4: len = 2; break; case 0xd5: len = 3; break; case 0xd6: len = 5; break;
        case 0xd7: len = 9; break; case 0xd8: len = 17; break;
        case 0xc4: case 0xd9: case 0xc7: w = 1; goto sized;
        case 0xc5: case 0xda: case 0xc8: w = 2; goto sized;
        case 0xc6: case 0xdb: case 0xc9: w = 4; goto sized;
        case 0xdc: case 0xde: w = 2; goto counted;
        case 0xdd: case 0xdf: w = 4; goto counted;
        default: return -1;
        sized:
            if (*pos + w > n) return -1;
            len = get_be(b + *pos, w) + (t >= 0xc7 && t <= 0xc9 ? 1 : 0); /* ext: + type */
            *pos += w;
            break;
        counted:
            if (*pos + w > n) return -1;
            items = get_be(b + *pos, w) * (t >= 0xde ? 2 : 1);
            *pos += w;
            break;
        }
    }
    if (len) {
        if ((uint64_t)(n - *pos) < len) return -1;
        *pos += (Py_ssize_t)len;
    }
    for (uint64_t i = 0; i < items; i++)
        if (mp_skip(b, n, pos, depth + 1) < 0) return -1;
    return 0;
}

#define H_LABELS 12 /* labels, owners, app: consecutive fields of the header array */
#define H_INDEXED 3

/* The bytes of the header's labels, owners and app fields; -1 if the header is not an
 * array with them. Equal bytes mean equal values (msgpack decodes deterministically). */
static int index_span(const uint8_t *b, Py_ssize_t n, Py_ssize_t *start, Py_ssize_t *end) {
    Py_ssize_t pos = 1;
    uint64_t count;
    if (n < 1) return -1;
    if ((b[0] & 0xf0) == 0x90) count = b[0] & 0x0f;
    else if (b[0] == 0xdc && n >= 3) { count = get_be(b + 1, 2); pos = 3; }
    else if (b[0] == 0xdd && n >= 5) { count = get_be(b + 1, 4); pos = 5; }
    else return -1;
    if (count < H_LABELS + H_INDEXED) return -1;
    for (int i = 0; i < H_LABELS; i++)
        if (mp_skip(b, n, &pos, 0) < 0) return -1;
    *start = pos;
    for (int i = 0; i < H_INDEXED; i++)
        if (mp_skip(b, n, &pos, 0) < 0) return -1;
    *end = pos;
    return 0;
}

static PyObject *index_fields_span(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 1 || !PyBytes_CheckExact(args[0])) {
        PyErr_SetString(PyExc_TypeError, "index_fields_span(header: bytes)");
        return NULL;
    }
    Py_ssize_t start, end;
    if (index_span((const uint8_t *)PyBytes_AS_STRING(args[0]), PyBytes_GET_SIZE(args[0]), &start,
                   &end) < 0)
        Py_RETURN_NONE;
    return Py_BuildValue("(nn)", start, end);
}

/* write_replacement: Planner._upsert for an object the view holds (``old`` is its
 * objmeta) whose content changed: the new version and objmeta, and the old version's
 * end (an expiry entry, or its deletion when no history is kept). The index entries
 * are left to the caller when labels, owners or app changed (rare: the last value
 * says so). Returns (item_hash, meta, old_item_hash, old_partition, index_unchanged),
 * or None, writing nothing, when the Python path must decide: the item hash and
 * partition are the old ones (maybe an unchanged object), a number does not fit its
 * field, or ``old`` is not an objmeta value. */
static PyObject *write_replacement(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 16) {
        PyErr_SetString(PyExc_TypeError, "write_replacement takes 16 arguments");
        return NULL;
    }
    PyObject *put = args[0], *del = args[1], *handles = args[2], *rv = args[13],
             *old = args[14];
    if (!PyTuple_CheckExact(handles) || PyTuple_GET_SIZE(handles) != 3 ||
        !PyUnicode_CheckExact(rv) || !PyBytes_CheckExact(old)) {
        PyErr_SetString(PyExc_TypeError, "write_replacement: unexpected argument types");
        return NULL;
    }
    PyObject *h_versions = PyTuple_GET_ITEM(handles, 0), *h_objmeta = PyTuple_GET_ITEM(handles, 1),
             *h_expiry = PyTuple_GET_ITEM(handles, 2);
    object_args o;
    int parsed = parse_object_args("write_replacement", args + 3, &o);
    if (parsed < 0) return NULL;
    if (parsed == 0) Py_RETURN_NONE;
    /* versions that ended before this instant are deleted at once (None: no history) */
    long long cutoff = 0;
    int keep_history = args[15] != Py_None;
    if (keep_history) {
        cutoff = PyLong_AsLongLong(args[15]);
        if (PyErr_Occurred()) {
            if (PyErr_ExceptionMatches(PyExc_OverflowError)) { PyErr_Clear(); Py_RETURN_NONE; }
            return NULL;
        }
    }
    Py_ssize_t olen = PyBytes_GET_SIZE(old);
    if (olen < META_SIZE) Py_RETURN_NONE;
    PyObject *objkey = o.objkey;
    const uint8_t *kbuf = o.kbuf;
    Py_ssize_t klen = o.klen;
    unsigned long long part = o.part, offset = o.offset, event_ms = o.event_ms;
    const uint8_t *obuf = (const uint8_t *)PyBytes_AS_STRING(old);

    Py_ssize_t rvlen;
    const char *rvs = PyUnicode_AsUTF8AndSize(rv, &rvlen);
    if (rvs == NULL) return NULL;
    uint64_t ih = object_item_hash(&o, rvs, rvlen);
    uint64_t o_part = get_be(obuf + 3, 4), o_off = get_be(obuf + 7, 8),
             o_ih = get_be(obuf + 15, 8), o_ev = get_be(obuf + 23, 8);
    if (o_ih == ih && o_part == part) Py_RETURN_NONE;

    const uint8_t *header = o.vbuf + PREFIX_SIZE;
    Py_ssize_t hlen = o.body_offset - PREFIX_SIZE;
    Py_ssize_t ns, ne, os, oe;
    int index_same = index_span(header, hlen, &ns, &ne) == 0 &&
                     index_span(obuf + META_SIZE, olen - META_SIZE, &os, &oe) == 0 &&
                     ne - ns == oe - os &&
                     memcmp(header + ns, obuf + META_SIZE + os, (size_t)(ne - ns)) == 0;

    version_t v = {NULL, NULL, NULL};
    PyObject *hkey = NULL, *result = NULL;
    if (build_version(&v, ih, &o) < 0) return NULL;
    if (do_put(put, v.vkey, v.vval, h_versions) < 0) goto done;
    if (do_put(put, objkey, v.meta, h_objmeta) < 0) goto done;

    /* Planner._ended: the old version stopped being current at event_ms */
    if (!(o_ev == event_ms && o_off == offset)) {
        int expire =
            keep_history && (event_ms > (uint64_t)LLONG_MAX || (long long)event_ms >= cutoff);
        Py_ssize_t off = expire ? 8 : 0;
        if ((hkey = PyBytes_FromStringAndSize(NULL, off + klen + 17)) == NULL) goto done;
        uint8_t *hk = (uint8_t *)PyBytes_AS_STRING(hkey);
        if (expire) put_be(hk, event_ms, 8);
        memcpy(hk + off, kbuf, (size_t)klen);
        hk[off + klen] = 0;
        put_be(hk + off + klen + 1, o_ev, 8);
        put_be(hk + off + klen + 9, o_off, 8);
        if (expire) {
            if (do_put(put, hkey, empty_bytes, h_expiry) < 0) goto done;
        } else {
            PyObject *dargs[2] = {hkey, h_versions};
            PyObject *r = PyObject_Vectorcall(del, dargs, 2, NULL);
            if (r == NULL) goto done;
            Py_DECREF(r);
        }
    }
    result = Py_BuildValue("(KOKKO)", (unsigned long long)ih, v.meta, (unsigned long long)o_ih,
                           (unsigned long long)o_part, index_same ? Py_True : Py_False);
done:
    version_clear(&v);
    Py_XDECREF(hkey);
    return result;
}

static PyObject *item_hash(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 2 || !PyBytes_Check(args[0]) || !PyUnicode_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "item_hash(key: bytes, resource_version: str)");
        return NULL;
    }
    Py_ssize_t n;
    const char *rv = PyUnicode_AsUTF8AndSize(args[1], &n);
    if (rv == NULL) return NULL;
    blake2b st;
    b2_init(&st);
    b2_update(&st, (const uint8_t *)PyBytes_AS_STRING(args[0]), (size_t)PyBytes_GET_SIZE(args[0]));
    b2_update(&st, (const uint8_t *)"\0", 1);
    b2_update(&st, (const uint8_t *)rv, (size_t)n);
    return PyLong_FromUnsignedLongLong(b2_final(&st));
}

/* -- known keys: a blocked Bloom filter of the object keys the store may hold --------- */

/* Each layer is a bytearray of 64-byte blocks. A key picks one block (one cache line) and
 * sets KNOWN_PROBES bits in it, 9 bits of a mixed hash each: ~1 % false positives at 10
 * bits per key. The hash is Python's hash of the bytes (SipHash, cached in the object,
 * which the planner's dict of the batch's keys has computed already): the filter lives
 * in one process only, so its per-process seed does not matter. */
#define KNOWN_BLOCK_WORDS 8
#define KNOWN_PROBES 6

static inline uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* 1 if every bit of the key is set in the layer; with add, the missing bits are set. */
static int known_probe(uint8_t *layer, Py_ssize_t size, uint64_t h, int add) {
    uint64_t nblocks = (uint64_t)size / (8 * KNOWN_BLOCK_WORDS);
    uint64_t block = (uint64_t)(((unsigned __int128)h * nblocks) >> 64);
    uint64_t *words = (uint64_t *)(void *)layer + block * KNOWN_BLOCK_WORDS;
    uint64_t g = mix64(h);
    int present = 1;
    for (int i = 0; i < KNOWN_PROBES; i++) {
        unsigned pos = (unsigned)(g & 511);
        g >>= 9;
        uint64_t bit = 1ULL << (pos & 63);
        uint64_t *w = words + (pos >> 6);
        if (!(*w & bit)) {
            present = 0;
            if (!add) return 0;
            *w |= bit;
        }
    }
    return present;
}

static PyObject *split_known(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 2 || !PyList_CheckExact(args[0]) || !PyList_CheckExact(args[1]) ||
        PyList_GET_SIZE(args[0]) == 0) {
        PyErr_SetString(PyExc_TypeError,
                        "split_known(layers: non-empty list[bytearray], keys: list[bytes])");
        return NULL;
    }
    PyObject *layers = args[0], *keys = args[1];
    Py_ssize_t nlayers = PyList_GET_SIZE(layers);
    for (Py_ssize_t j = 0; j < nlayers; j++) {
        PyObject *layer = PyList_GET_ITEM(layers, j);
        if (!PyByteArray_CheckExact(layer) || PyByteArray_GET_SIZE(layer) == 0 ||
            PyByteArray_GET_SIZE(layer) % (8 * KNOWN_BLOCK_WORDS) != 0) {
            PyErr_SetString(PyExc_ValueError, "split_known: a layer is not whole 64-byte blocks");
            return NULL;
        }
    }
    PyObject *maybe = PyList_New(0), *fresh = PyList_New(0), *result = NULL;
    if (maybe == NULL || fresh == NULL) goto done;
    PyObject *last = PyList_GET_ITEM(layers, nlayers - 1);
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(keys); i++) {
        PyObject *key = PyList_GET_ITEM(keys, i);
        if (!PyBytes_CheckExact(key)) {
            PyErr_SetString(PyExc_TypeError, "split_known: keys must be bytes");
            goto done;
        }
        Py_hash_t ph = PyObject_Hash(key);
        if (ph == -1 && PyErr_Occurred()) goto done;
        uint64_t h = mix64((uint64_t)ph);
        int known = 0;
        for (Py_ssize_t j = 0; j < nlayers && !known; j++) {
            PyObject *layer = PyList_GET_ITEM(layers, j);
            known = known_probe((uint8_t *)PyByteArray_AS_STRING(layer),
                                PyByteArray_GET_SIZE(layer), h, 0);
        }
        if (!known)
            known_probe((uint8_t *)PyByteArray_AS_STRING(last), PyByteArray_GET_SIZE(last), h, 1);
        if (PyList_Append(known ? maybe : fresh, key) < 0) goto done;
    }
    result = PyTuple_Pack(2, maybe, fresh);
done:
    Py_XDECREF(maybe);
    Py_XDECREF(fresh);
    return result;
}

static PyMethodDef methods[] = {
    {"write_new_object", (PyCFunction)(void (*)(void))write_new_object, METH_FASTCALL,
     "write_new_object(put, (h_versions, h_objmeta, h_label, h_owner, h_app), value, "
     "body_offset, objkey, cluster, part, offset, event_ms, gen, flags, body, labels, owners, "
     "app, resource_version) -> (item_hash, meta) | None"},
    {"write_replacement", (PyCFunction)(void (*)(void))write_replacement, METH_FASTCALL,
     "write_replacement(put, delete, (h_versions, h_objmeta, h_history_expiry), value, "
     "body_offset, objkey, cluster, part, offset, event_ms, gen, flags, body, "
     "resource_version, old_meta, history_cutoff_ms | None) -> (item_hash, meta, "
     "old_item_hash, old_partition, index_unchanged) | None"},
    {"index_fields_span", (PyCFunction)(void (*)(void))index_fields_span, METH_FASTCALL,
     "index_fields_span(header) -> (start, end) | None: bytes of labels, owners, app"},
    {"split_known", (PyCFunction)(void (*)(void))split_known, METH_FASTCALL,
     "split_known(layers, keys) -> (maybe_known, new): keys whose bits are all set in some "
     "layer, and the others, whose bits are set in the last layer now"},
    {"item_hash", (PyCFunction)(void (*)(void))item_hash, METH_FASTCALL,
     "item_hash(key, resource_version) -> int: deltas.digest.item_hash in C"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "store._speedups",
    "C writes of a new object (see store/_speedups.c).", -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__speedups(void) {
    if ((empty_bytes = PyBytes_FromStringAndSize("", 0)) == NULL) return NULL;
    return PyModule_Create(&module);
}
