/*
 * deltas._speedups: the consumer's per-record header decode, in C. Pure code, no I/O.
 *
 * decode_object_header(data, max_body) reads the header of the common records (an UPSERT
 * with a body, or a DELETE without one; no control data, every field of the expected
 * msgpack type) and returns
 * the same Header that deltas.codec's Python decoder would build, or None for anything
 * else: other ops, unusual encodings (signed ints, bin strings), and every malformed
 * record. None never means "invalid": the caller then runs the Python decoder, which
 * is the reference and raises the precise DeltaFormatError. So this file only needs to
 * be right about what it accepts; tests/deltas/test_speedups.py compares the two on
 * generated and corrupted records.
 *
 * Why C: the consumer decodes one header per record and the Python decoder (msgpack
 * unpack into a list, then type checks and object construction) was ~20 % of its
 * main thread (docs/benchmarks.md, session 5).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "_utf8.h"

#define N_FIELDS 18
#define PREFIX_SIZE 7
#define OP_UPSERT 1
#define OP_DELETE 2
#define ENC_NONE 0
#define ENC_JSON 1
#define ENC_MSGPACK 2

/* Set by configure(): the Python classes and enum members the Header is made of. */
static PyObject *header_type = NULL;      /* deltas.codec.Header (plain __dict__ class) */
static PyObject *key_type = NULL;         /* deltas.keys.ResourceKey (frozen, slots) */
static PyObject *op_upsert = NULL;        /* Op.UPSERT */
static PyObject *op_delete = NULL;        /* Op.DELETE */
static PyObject *enc_none = NULL;         /* BodyEncoding.NONE */
static PyObject *enc_json = NULL;         /* BodyEncoding.JSON */
static PyObject *enc_msgpack = NULL;      /* BodyEncoding.MSGPACK */

/* Interned attribute names. */
static PyObject *s_group, *s_version, *s_kind, *s_namespace, *s_name;
static PyObject *s_op, *s_cluster, *s_key, *s_uid, *s_resource_version, *s_seq, *s_session,
    *s_event_time_ms, *s_labels, *s_owners, *s_app, *s_body_encoding, *s_body_offset,
    *s_body_length, *s_relist, *s_digest, *s_labels_raw, *s_objkey;

typedef struct {
    const unsigned char *p;
    const unsigned char *end;
} reader;

static inline int need(reader *r, Py_ssize_t n) { return r->end - r->p >= n; }

static inline uint64_t be(const unsigned char *p, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v = (v << 8) | p[i];
    return v;
}

/* An unsigned integer (positive fixint, uint 8/16/32/64). 0 on success. */
static int read_uint(reader *r, uint64_t *out) {
    if (!need(r, 1)) return -1;
    unsigned char t = *r->p;
    if (t <= 0x7f) { *out = t; r->p += 1; return 0; }
    int n;
    switch (t) {
        case 0xcc: n = 1; break;
        case 0xcd: n = 2; break;
        case 0xce: n = 4; break;
        case 0xcf: n = 8; break;
        default: return -1;
    }
    if (!need(r, 1 + n)) return -1;
    *out = be(r->p + 1, n);
    r->p += 1 + n;
    return 0;
}

/* The bytes of a msgpack str (fixstr, str 8/16/32), undecoded. 0 on success. */
static int read_str_raw(reader *r, const char **s, Py_ssize_t *len) {
    if (!need(r, 1)) return -1;
    unsigned char t = *r->p;
    Py_ssize_t n, h;
    if ((t & 0xe0) == 0xa0) { n = t & 0x1f; h = 1; }
    else if (t == 0xd9) { if (!need(r, 2)) return -1; n = (Py_ssize_t)be(r->p + 1, 1); h = 2; }
    else if (t == 0xda) { if (!need(r, 3)) return -1; n = (Py_ssize_t)be(r->p + 1, 2); h = 3; }
    else if (t == 0xdb) { if (!need(r, 5)) return -1; n = (Py_ssize_t)be(r->p + 1, 4); h = 5; }
    else return -1;
    if (!need(r, h + n)) return -1;
    *s = (const char *)r->p + h;
    *len = n;
    r->p += h + n;
    return 0;
}

/* A str as a Python object; NULL with no exception set when it is not a valid str. */
static PyObject *read_str(reader *r) {
    const char *s;
    Py_ssize_t n;
    if (read_str_raw(r, &s, &n) < 0) return NULL;
    PyObject *o = PyUnicode_DecodeUTF8(s, n, "strict");
    if (o == NULL) PyErr_Clear(); /* invalid UTF-8: the Python decoder reports it */
    return o;
}

/* Strings that repeat from record to record (cluster, group, version, kind, namespace,
 * session, app, owners) come from a small direct-mapped cache instead of a new str each
 * time: no decode and no allocation, and the str's hash, once computed, is kept for
 * the planner's dict lookups keyed by them. Only short ASCII strings are kept; a slot
 * holds the last string that hashed to it. */
#define STR_CACHE_SLOTS 1024
#define STR_CACHE_MAX_LEN 64
static PyObject *str_cache[STR_CACHE_SLOTS];

static PyObject *read_str_cached(reader *r) {
    const char *s;
    Py_ssize_t n;
    if (read_str_raw(r, &s, &n) < 0) return NULL;
    if (n > STR_CACHE_MAX_LEN) {
        PyObject *o = PyUnicode_DecodeUTF8(s, n, "strict");
        if (o == NULL) PyErr_Clear();
        return o;
    }
    uint32_t h = 2166136261u; /* FNV-1a */
    for (Py_ssize_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    PyObject **slot = &str_cache[(h ^ (uint32_t)n) & (STR_CACHE_SLOTS - 1)];
    PyObject *o = *slot;
    if (o != NULL && PyUnicode_GET_LENGTH(o) == n && memcmp(PyUnicode_DATA(o), s, n) == 0) {
        Py_INCREF(o);
        return o;
    }
    o = PyUnicode_DecodeUTF8(s, n, "strict");
    if (o == NULL) {
        PyErr_Clear(); /* invalid UTF-8: the Python decoder reports it */
        return NULL;
    }
    if (PyUnicode_IS_COMPACT_ASCII(o)) { /* its data are the n bytes compared above */
        Py_INCREF(o);
        Py_XSETREF(*slot, o);
    }
    return o;
}

/* cluster \0 group \0 kind \0 namespace \0 name as UTF-8: the store's object key
 * (store/layout.py), built here from the str objects the header holds anyway. */
static PyObject *object_key(PyObject *parts[5]) {
    const char *data[5];
    Py_ssize_t lens[5], total = 4;
    for (int i = 0; i < 5; i++) {
        if ((data[i] = PyUnicode_AsUTF8AndSize(parts[i], &lens[i])) == NULL) return NULL;
        total += lens[i];
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, total);
    if (out == NULL) return NULL;
    char *p = PyBytes_AS_STRING(out);
    for (int i = 0; i < 5; i++) {
        if (i) *p++ = '\0';
        memcpy(p, data[i], (size_t)lens[i]);
        p += lens[i];
    }
    return out;
}

/* Length of a map (fixmap, map 16/32) or array (fixarray, array 16/32). */
static int read_len(reader *r, int map, Py_ssize_t *out) {
    if (!need(r, 1)) return -1;
    unsigned char t = *r->p;
    unsigned char fix = map ? 0x80 : 0x90, t16 = map ? 0xde : 0xdc, t32 = map ? 0xdf : 0xdd;
    if ((t & 0xf0) == fix) { *out = t & 0x0f; r->p += 1; }
    else if (t == t16) { if (!need(r, 3)) return -1; *out = (Py_ssize_t)be(r->p + 1, 2); r->p += 3; }
    else if (t == t32) { if (!need(r, 5)) return -1; *out = (Py_ssize_t)be(r->p + 1, 4); r->p += 5; }
    else return -1;
    /* every element takes at least one byte: a larger count is a lie, refuse it before
     * allocating anything for it */
    if (*out > (r->end - r->p)) return -1;
    return 0;
}

/* Whether s[0:n] is text CPython's strict UTF-8 decoder accepts. */
static int valid_utf8(const char *s, Py_ssize_t n) {
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    while (p < end) {
        if (*p < 0x80) { p++; continue; }
        int k = utf8_seq(p, end);
        if (k == 0) return 0;
        p += k;
    }
    return 1;
}

/* A msgpack str that is valid UTF-8, undecoded. 0 on success. */
static int read_text_raw(reader *r, const char **s, Py_ssize_t *len) {
    if (read_str_raw(r, s, len) < 0 || !valid_utf8(*s, *len)) return -1;
    return 0;
}

/* Labels the decoder leaves as msgpack bytes when it can check their keys are distinct
 * this cheaply; more go into a dict right away. */
#define MAX_RAW_LABELS 64

static int has_nul(PyObject *s) {
    /* Fields came from UTF-8 decoding: U+0000 is the byte 0 in UTF-8. */
    Py_ssize_t n;
    const char *u = PyUnicode_AsUTF8AndSize(s, &n);
    if (u == NULL) { PyErr_Clear(); return 1; }
    return memchr(u, 0, (size_t)n) != NULL;
}

/* deltas.keys.is_cluster_name: [a-z0-9]([-a-z0-9]{0,61}[a-z0-9])? */
static int is_cluster_name(PyObject *s) {
    Py_ssize_t n;
    const char *u = PyUnicode_AsUTF8AndSize(s, &n);
    if (u == NULL) { PyErr_Clear(); return 0; }
    if (n < 1 || n > 63) return 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        char c = u[i];
        int alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && !(c == '-' && i > 0 && i < n - 1)) return 0;
    }
    return 1;
}

static PyObject *make_key(PyObject *parts[5]) {
    PyTypeObject *tp = (PyTypeObject *)key_type;
    PyObject *k = tp->tp_alloc(tp, 0);
    if (k == NULL) return NULL;
    PyObject *names[5] = {s_group, s_version, s_kind, s_namespace, s_name};
    for (int i = 0; i < 5; i++) {
        /* the slot descriptors directly: ResourceKey is frozen, its __setattr__ refuses */
        if (PyObject_GenericSetAttr(k, names[i], parts[i]) < 0) { Py_DECREF(k); return NULL; }
    }
    return k;
}

static PyObject *decode_object_header(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *data;
    unsigned long long max_body;
    if (!PyArg_ParseTuple(args, "OK", &data, &max_body)) return NULL;
    if (header_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "deltas._speedups.configure() was not called");
        return NULL;
    }
    if (!PyBytes_CheckExact(data)) Py_RETURN_NONE;
    const unsigned char *buf = (const unsigned char *)PyBytes_AS_STRING(data);
    Py_ssize_t size = PyBytes_GET_SIZE(data);
    if (size < PREFIX_SIZE || buf[0] != 'K' || buf[1] != 'D' || buf[2] != 1) Py_RETURN_NONE;
    uint64_t header_len = be(buf + 3, 4);
    if ((uint64_t)(size - PREFIX_SIZE) < header_len) Py_RETURN_NONE;
    Py_ssize_t body_offset = PREFIX_SIZE + (Py_ssize_t)header_len;
    reader r = {buf + PREFIX_SIZE, buf + body_offset};

    PyObject *strs[9] = {NULL}; /* cluster group version kind namespace name uid rv session */
    PyObject *labels = NULL, *labels_raw = NULL, *owners = NULL, *app = NULL, *key = NULL,
             *header = NULL, *objkey = NULL,
             *dict = NULL, *seq_o = NULL, *ts_o = NULL, *offset_o = NULL, *blen_o = NULL;
    PyObject *result = NULL;
    uint64_t op, seq, ts, enc, blen;
    Py_ssize_t n;

    if (read_len(&r, 0, &n) < 0 || n != N_FIELDS) goto none;
    if (read_uint(&r, &op) < 0 || (op != OP_UPSERT && op != OP_DELETE)) goto none;
    for (int i = 0; i < 7; i++) /* cluster group version kind namespace name uid */
        if ((strs[i] = (i < 5 ? read_str_cached(&r) : read_str(&r))) == NULL) goto none;
    if ((strs[7] = read_str(&r)) == NULL) goto none; /* resource_version */
    if (read_uint(&r, &seq) < 0) goto none;
    if ((strs[8] = read_str_cached(&r)) == NULL) goto none; /* session */
    if (read_uint(&r, &ts) < 0) goto none;
    const unsigned char *labels_at = r.p;
    if (read_len(&r, 1, &n) < 0) goto none;
    if (n > 0 && n <= MAX_RAW_LABELS) {
        /* Checked (str keys and values, valid UTF-8, distinct keys) but not decoded: the
         * Header keeps the map's bytes (Header._labels_raw), the consumer writes a new
         * object's label index from them, and Header.labels decodes them on first use.
         * Creating ~20 str objects and a dict per record (and freeing them) was ~10 %
         * of the consumer's main thread. */
        const char *keys[MAX_RAW_LABELS];
        Py_ssize_t key_lens[MAX_RAW_LABELS];
        for (Py_ssize_t i = 0; i < n; i++) {
            const char *v;
            Py_ssize_t vn;
            if (read_text_raw(&r, &keys[i], &key_lens[i]) < 0) goto none;
            if (read_text_raw(&r, &v, &vn) < 0) goto none;
            for (Py_ssize_t j = 0; j < i; j++)
                if (key_lens[j] == key_lens[i] &&
                    memcmp(keys[j], keys[i], (size_t)key_lens[i]) == 0)
                    goto none; /* a repeated key: the Python decoder's (last wins) */
        }
        labels_raw = PyBytes_FromStringAndSize((const char *)labels_at, r.p - labels_at);
        if (labels_raw == NULL) goto fail;
    } else if ((labels = PyDict_New()) == NULL) goto fail;
    for (Py_ssize_t i = 0; labels != NULL && i < n; i++) {
        PyObject *k = read_str(&r);
        if (k == NULL) goto none;
        PyObject *v = read_str(&r);
        if (v == NULL) { Py_DECREF(k); goto none; }
        int rc = PyDict_SetItem(labels, k, v); /* a repeated key: the last wins, as msgpack */
        Py_DECREF(k);
        Py_DECREF(v);
        if (rc < 0) goto fail;
    }
    if (read_len(&r, 0, &n) < 0) goto none;
    if ((owners = PyTuple_New(n)) == NULL) goto fail;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *o = read_str_cached(&r);
        if (o == NULL) goto none;
        PyTuple_SET_ITEM(owners, i, o);
    }
    if ((app = read_str_cached(&r)) == NULL) goto none;
    if (read_uint(&r, &enc) < 0) goto none;
    if (op == OP_UPSERT ? enc != ENC_JSON && enc != ENC_MSGPACK : enc != ENC_NONE) goto none;
    if (read_uint(&r, &blen) < 0 || blen > max_body) goto none;
    if (op == OP_DELETE && blen != 0) goto none; /* a DELETE carries no body */
    if ((uint64_t)(size - body_offset) != blen) goto none;
    if (!need(&r, 1) || *r.p != 0xc0) goto none; /* control: nil */
    r.p += 1;
    if (r.p != r.end) goto none; /* msgpack refuses extra data after the array */

    /* the reference's semantic rules for an UPSERT or a DELETE (_check_semantics) */
    PyObject *cluster = strs[0], *group = strs[1], *version = strs[2], *kind = strs[3],
             *ns = strs[4], *name = strs[5];
    if (PyUnicode_GET_LENGTH(version) == 0 || PyUnicode_GET_LENGTH(kind) == 0 ||
        PyUnicode_GET_LENGTH(name) == 0)
        goto none;
    if (has_nul(group) || has_nul(kind) || has_nul(ns) || has_nul(name)) goto none;
    if (!is_cluster_name(cluster)) goto none;

    PyObject *parts[5] = {group, version, kind, ns, name};
    if ((key = make_key(parts)) == NULL) goto fail;
    PyObject *objkey_parts[5] = {cluster, group, kind, ns, name};
    if ((objkey = object_key(objkey_parts)) == NULL) goto fail;
    if ((seq_o = PyLong_FromUnsignedLongLong(seq)) == NULL) goto fail;
    if ((ts_o = PyLong_FromUnsignedLongLong(ts)) == NULL) goto fail;
    if ((offset_o = PyLong_FromSsize_t(body_offset)) == NULL) goto fail;
    if ((blen_o = PyLong_FromUnsignedLongLong(blen)) == NULL) goto fail;
    PyObject *names[16] = {s_op, s_cluster, s_key, s_uid, s_resource_version, s_seq, s_session,
                           s_event_time_ms, s_labels, s_owners, s_app, s_body_encoding,
                           s_body_offset, s_body_length, s_relist, s_digest};
    PyObject *enc_o = enc == ENC_JSON ? enc_json : enc == ENC_MSGPACK ? enc_msgpack : enc_none;
    PyObject *values[16] = {op == OP_UPSERT ? op_upsert : op_delete, cluster, key, strs[6],
                            strs[7], seq_o, strs[8], ts_o, labels, owners, app, enc_o,
                            offset_o, blen_o, Py_None, Py_None};
    if (labels == NULL) { /* decoded on first use, see above */
        names[8] = s_labels_raw;
        values[8] = labels_raw;
    }
    /* presized: PyDict_New would grow twice on the way to 17 keys (measured with
     * callgrind over the consumer's planning: fewer instructions than that, and than
     * filling a copy of a template dict) */
    if ((dict = _PyDict_NewPresized(17)) == NULL) goto fail;
    for (int i = 0; i < 16; i++)
        if (PyDict_SetItem(dict, names[i], values[i]) < 0) goto fail;
    if (PyDict_SetItem(dict, s_objkey, objkey) < 0) goto fail;
    PyTypeObject *ht = (PyTypeObject *)header_type;
    if ((header = ht->tp_alloc(ht, 0)) == NULL) goto fail;
    if (PyObject_GenericSetDict(header, dict, NULL) < 0) goto fail;
    result = header;
    header = NULL;
    goto done;

none:
    result = Py_None;
    Py_INCREF(result);
    goto done;
fail:
    result = NULL; /* a Python error (memory) is set */
done:
    for (int i = 0; i < 9; i++) Py_XDECREF(strs[i]);
    Py_XDECREF(labels);
    Py_XDECREF(labels_raw);
    Py_XDECREF(owners);
    Py_XDECREF(app);
    Py_XDECREF(key);
    Py_XDECREF(objkey);
    Py_XDECREF(header);
    Py_XDECREF(dict);
    Py_XDECREF(seq_o);
    Py_XDECREF(ts_o);
    Py_XDECREF(offset_o);
    Py_XDECREF(blen_o);
    return result;
}

static PyObject *configure(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *h, *k, *up, *de, *en, *ej, *em;
    if (!PyArg_ParseTuple(args, "O!O!OOOOO", &PyType_Type, &h, &PyType_Type, &k, &up, &de, &en,
                          &ej, &em))
        return NULL;
    Py_INCREF(h); Py_XSETREF(header_type, h);
    Py_INCREF(k); Py_XSETREF(key_type, k);
    Py_INCREF(up); Py_XSETREF(op_upsert, up);
    Py_INCREF(de); Py_XSETREF(op_delete, de);
    Py_INCREF(en); Py_XSETREF(enc_none, en);
    Py_INCREF(ej); Py_XSETREF(enc_json, ej);
    Py_INCREF(em); Py_XSETREF(enc_msgpack, em);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"configure", configure, METH_VARARGS,
     "configure(Header, ResourceKey, Op.UPSERT, Op.DELETE, BodyEncoding.NONE, "
     "BodyEncoding.JSON, BodyEncoding.MSGPACK)"},
    {"decode_object_header", decode_object_header, METH_VARARGS,
     "decode_object_header(data, max_body) -> Header | None"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "deltas._speedups",
    "C decode of the common records' header (see deltas/_speedups.c).", -1, methods,
    NULL, NULL, NULL, NULL,
};

#define INTERN(var, text) if ((var = PyUnicode_InternFromString(text)) == NULL) return NULL

PyMODINIT_FUNC PyInit__speedups(void) {
    INTERN(s_group, "group"); INTERN(s_version, "version"); INTERN(s_kind, "kind");
    INTERN(s_namespace, "namespace"); INTERN(s_name, "name");
    INTERN(s_op, "op"); INTERN(s_cluster, "cluster"); INTERN(s_key, "key");
    INTERN(s_uid, "uid"); INTERN(s_resource_version, "resource_version");
    INTERN(s_seq, "seq"); INTERN(s_session, "session");
    INTERN(s_event_time_ms, "event_time_ms"); INTERN(s_labels, "labels");
    INTERN(s_owners, "owners"); INTERN(s_app, "app");
    INTERN(s_body_encoding, "body_encoding"); INTERN(s_body_offset, "body_offset");
    INTERN(s_body_length, "body_length"); INTERN(s_relist, "relist");
    INTERN(s_digest, "digest"); INTERN(s_labels_raw, "_labels_raw");
    INTERN(s_objkey, "_objkey");
    return PyModule_Create(&module);
}
