/*
 * producers._speedups: the producer's per-object shaping (producers/shape.py), in C.
 * Pure code, no I/O.
 *
 * shape(raw, api_version_json, kind_json, drop_last_applied) takes one served object's
 * JSON (a LIST item) and returns what KindShaper.open + KindShaper.finish make of it,
 * for kinds that are neither Secrets nor Nodes with heartbeat stripping:
 *
 *     (body, namespace, name, resource_version, uid, labels, owners, app)
 *
 * or None for anything it does not handle. shape_event(line, ...) does the same for a
 * watch event's line, {"type": ADDED|MODIFIED|DELETED, "object": {...}} and nothing
 * else, returning (type, *the above); other events (BOOKMARK, ERROR) are Python's.
 * None never means "invalid": the caller then runs the Python shaper, which is the
 * reference (and decides what to do with a malformed object). So this file only needs
 * to be right about what it accepts, and it accepts only the plain case: strictly
 * valid JSON (RFC 8259, valid UTF-8, no escaped surrogates, nesting under MAX_DEPTH),
 * no duplicate keys and no escape sequence in any key it sorts, and metadata fields of
 * the usual types (name a non-empty string; namespace, uid, resourceVersion strings or
 * absent; labels and annotations objects of plain strings; ownerReferences an array of
 * objects). tests/producers/test_producer_speedups.py compares it with the Python
 * shaper on every simulator kind and on generated and corrupted objects.
 *
 * fingerprint(body, member, key) is the producer's keyed body hash (see below).
 *
 * The body it writes is the Python shaper's byte for byte: top-level members and
 * metadata fields sorted by key (UTF-8 byte order is code point order), apiVersion and
 * kind replaced, metadata.managedFields dropped, the annotations re-written sorted
 * without the dropped ones (a string without backslashes re-encodes to its own bytes,
 * msgspec escapes only '"', '\' and control characters), every other value copied as
 * served.
 *
 * Why C: shaping was ~15 us of the producer's ~55 us per listed object, most of it
 * Python around msgspec's splitting (docs/benchmarks.md, session 9); watch events at
 * churn rates are the same work.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../deltas/_utf8.h"

#define MAX_DEPTH 64

/* Must equal producers.strip's constants (tests check the behaviour). */
static const char LAST_APPLIED[] = "kubectl.kubernetes.io/last-applied-configuration";
static const char LEADER[] = "control-plane.alpha.kubernetes.io/leader";
static const char MONIKER_APP[] = "moniker.spinnaker.io/application";

typedef const unsigned char *cursor;

enum { V_STRING, V_OBJECT, V_ARRAY, V_OTHER, V_NULL };

typedef struct {
    cursor key;        /* the key's characters, without quotes */
    Py_ssize_t klen;
    cursor value;      /* the whole value as served */
    Py_ssize_t vlen;
    int type;          /* V_* */
    int plain;         /* strings: no escape sequence */
} member;

typedef struct {
    member *items;
    Py_ssize_t n, cap;
    member local[24];
} member_list;

static void list_init(member_list *l) {
    l->items = l->local;
    l->n = 0;
    l->cap = (Py_ssize_t)(sizeof(l->local) / sizeof(l->local[0]));
}

static void list_free(member_list *l) {
    if (l->items != l->local) free(l->items);
    list_init(l);
}

static member *list_add(member_list *l) {
    if (l->n == l->cap) {
        Py_ssize_t cap = l->cap * 2;
        member *grown = malloc((size_t)cap * sizeof(member));
        if (grown == NULL) return NULL;
        memcpy(grown, l->items, (size_t)l->n * sizeof(member));
        if (l->items != l->local) free(l->items);
        l->items = grown;
        l->cap = cap;
    }
    return &l->items[l->n++];
}

/* -- a strict JSON scanner ------------------------------------------------------------ */

static inline cursor skip_ws(cursor p, cursor end) {
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) p++;
    return p;
}

static inline int hexval(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Bytes a string scan must look at: '"', '\\', control characters, non-ASCII. */
static unsigned char special[256];

static void init_special(void) {
    for (int c = 0; c < 256; c++) special[c] = c < 0x20 || c >= 0x80 || c == '"' || c == '\\';
}

/* A string at p (on its opening quote): the position after its closing quote, or NULL.
 * *plain is set to 1 when it has no escape sequence. */
static cursor scan_string(cursor p, cursor end, int *plain) {
    int escapes = 0;
    p++;
    while (p < end) {
        /* Most bytes are ordinary: skip them four at a time, then one at a time. */
        while (end - p >= 4 && !(special[p[0]] | special[p[1]] | special[p[2]] | special[p[3]]))
            p += 4;
        while (p < end && !special[*p]) p++;
        if (p >= end) break;
        unsigned char c = *p;
        if (c == '"') {
            *plain = !escapes;
            return p + 1;
        }
        if (c < 0x20) return NULL;
        if (c == '\\') {
            escapes = 1;
            if (p + 1 >= end) return NULL;
            unsigned char e = p[1];
            if (e == 'u') {
                if (end - p < 6) return NULL;
                int code = 0;
                for (int i = 2; i < 6; i++) {
                    int h = hexval(p[i]);
                    if (h < 0) return NULL;
                    code = code * 16 + h;
                }
                if (code >= 0xd800 && code <= 0xdfff) return NULL; /* left to Python */
                p += 6;
                continue;
            }
            if (e != '"' && e != '\\' && e != '/' && e != 'b' && e != 'f' && e != 'n' &&
                e != 'r' && e != 't')
                return NULL;
            p += 2;
            continue;
        }
        if (c >= 0x80) {
            int n = utf8_seq(p, end);
            if (n == 0) return NULL;
            p += n;
            continue;
        }
        p++;
    }
    return NULL;
}

static cursor scan_number(cursor p, cursor end) {
    if (p < end && *p == '-') p++;
    if (p >= end) return NULL;
    if (*p == '0') {
        p++;
    } else if (*p >= '1' && *p <= '9') {
        while (p < end && *p >= '0' && *p <= '9') p++;
    } else {
        return NULL;
    }
    if (p < end && *p == '.') {
        p++;
        if (p >= end || *p < '0' || *p > '9') return NULL;
        while (p < end && *p >= '0' && *p <= '9') p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-')) p++;
        if (p >= end || *p < '0' || *p > '9') return NULL;
        while (p < end && *p >= '0' && *p <= '9') p++;
    }
    return p;
}

static cursor scan_literal(cursor p, cursor end, const char *word, size_t n) {
    if ((size_t)(end - p) < n || memcmp(p, word, n) != 0) return NULL;
    return p + n;
}

static cursor scan_value(cursor p, cursor end, int depth, int *type, int *plain);

/* An object or array at p (on its bracket): the position after it, or NULL. */
static cursor scan_container(cursor p, cursor end, int depth) {
    if (depth >= MAX_DEPTH) return NULL;
    unsigned char close = *p == '{' ? '}' : ']';
    int object = *p == '{';
    int type, plain;
    p = skip_ws(p + 1, end);
    if (p < end && *p == close) return p + 1;
    for (;;) {
        if (object) {
            if (p >= end || *p != '"') return NULL;
            p = scan_string(p, end, &plain);
            if (p == NULL) return NULL;
            p = skip_ws(p, end);
            if (p >= end || *p != ':') return NULL;
            p = skip_ws(p + 1, end);
        }
        p = scan_value(p, end, depth + 1, &type, &plain);
        if (p == NULL) return NULL;
        p = skip_ws(p, end);
        if (p >= end) return NULL;
        if (*p == ',') {
            p = skip_ws(p + 1, end);
            continue;
        }
        if (*p == close) return p + 1;
        return NULL;
    }
}

static cursor scan_value(cursor p, cursor end, int depth, int *type, int *plain) {
    if (p >= end) return NULL;
    *plain = 0;
    switch (*p) {
        case '"':
            *type = V_STRING;
            return scan_string(p, end, plain);
        case '{':
            *type = V_OBJECT;
            return scan_container(p, end, depth);
        case '[':
            *type = V_ARRAY;
            return scan_container(p, end, depth);
        case 't':
            *type = V_OTHER;
            return scan_literal(p, end, "true", 4);
        case 'f':
            *type = V_OTHER;
            return scan_literal(p, end, "false", 5);
        case 'n':
            *type = V_NULL;
            return scan_literal(p, end, "null", 4);
        default:
            *type = V_OTHER;
            return scan_number(p, end);
    }
}

/* The members of the object at p (on its '{'), appended to out; keys must be plain.
 * A member named ``split`` whose value is an object has its members appended to
 * ``split_out`` in the same pass (``split`` NULL: none). Returns the position after
 * the object, or NULL (invalid, or not handled). */
static cursor object_members_split(cursor p, cursor end, int depth, member_list *out,
                                   const char *split, size_t split_len,
                                   member_list *split_out);

static cursor object_members(cursor p, cursor end, int depth, member_list *out) {
    return object_members_split(p, end, depth, out, NULL, 0, NULL);
}

static cursor object_members_split(cursor p, cursor end, int depth, member_list *out,
                                   const char *split, size_t split_len,
                                   member_list *split_out) {
    int plain;
    p = skip_ws(p + 1, end);
    if (p < end && *p == '}') return p + 1;
    for (;;) {
        if (p >= end || *p != '"') return NULL;
        cursor key = p + 1;
        p = scan_string(p, end, &plain);
        if (p == NULL || !plain) return NULL;
        member *m = list_add(out);
        if (m == NULL) return NULL;
        m->key = key;
        m->klen = (p - 1) - key;
        p = skip_ws(p, end);
        if (p >= end || *p != ':') return NULL;
        p = skip_ws(p + 1, end);
        m->value = p;
        if (split != NULL && p < end && *p == '{' && (size_t)m->klen == split_len &&
            memcmp(m->key, split, split_len) == 0) {
            if (split_out->n) return NULL; /* a second one: left to Python */
            m->type = V_OBJECT;
            m->plain = 0;
            p = object_members(p, end, depth + 1, split_out);
        } else {
            p = scan_value(p, end, depth + 1, &m->type, &m->plain);
        }
        if (p == NULL) return NULL;
        m->vlen = p - m->value;
        p = skip_ws(p, end);
        if (p >= end) return NULL;
        if (*p == ',') {
            p = skip_ws(p + 1, end);
            continue;
        }
        if (*p == '}') return p + 1;
        return NULL;
    }
}

/* -- helpers over members --------------------------------------------------------------- */

static inline int key_is(const member *m, const char *text, size_t n) {
    return (size_t)m->klen == n && memcmp(m->key, text, n) == 0;
}
#define KEY_IS(m, lit) key_is((m), (lit), sizeof(lit) - 1)

static int compare_keys(const void *a, const void *b) {
    const member *x = a, *y = b;
    Py_ssize_t n = x->klen < y->klen ? x->klen : y->klen;
    int c = memcmp(x->key, y->key, (size_t)n);
    if (c != 0) return c;
    return x->klen < y->klen ? -1 : (x->klen > y->klen ? 1 : 0);
}

/* Sort by key; 0 if two keys are equal (a duplicate: left to Python). */
static int sort_unique(member_list *l) {
    if (l->n > 1) qsort(l->items, (size_t)l->n, sizeof(member), compare_keys);
    for (Py_ssize_t i = 1; i < l->n; i++)
        if (compare_keys(&l->items[i - 1], &l->items[i]) == 0) return 0;
    return 1;
}

static PyObject *plain_text(const member *m) {
    /* A plain string's characters (already checked to be valid UTF-8). */
    return PyUnicode_DecodeUTF8((const char *)m->value + 1, m->vlen - 2, "strict");
}

/* "" for an absent or null member, the text of a plain string, NULL (no error set)
 * otherwise. */
static PyObject *text_or_empty(const member *m, PyObject *empty) {
    if (m == NULL || m->type == V_NULL) {
        Py_INCREF(empty);
        return empty;
    }
    if (m->type != V_STRING || !m->plain) return NULL;
    return plain_text(m);
}

/* -- writing ------------------------------------------------------------------------------ */

typedef struct {
    char *p;
} writer;

static inline void put(writer *w, const void *data, Py_ssize_t n) {
    memcpy(w->p, data, (size_t)n);
    w->p += n;
}

static inline void put_char(writer *w, char c) { *w->p++ = c; }

static inline void put_key(writer *w, const member *m) {
    put_char(w, '"');
    put(w, m->key, m->klen);
    put_char(w, '"');
    put_char(w, ':');
}

/* -- shape --------------------------------------------------------------------------------- */

static PyObject *empty_text = NULL;
static PyObject *empty_tuple = NULL;

#define NOT_HANDLED() do { result = Py_None; Py_INCREF(result); goto done; } while (0)

/* The shaped 8-tuple of the object at p (on its '{'); Py_None (a new reference) when
 * it is not handled; NULL with an exception set. *after: the position after the object
 * (set when handled). */
static PyObject *shape_object(cursor p, cursor end, const Py_buffer *api_version,
                              const Py_buffer *kind, int drop_last_applied, cursor *after) {
    PyObject *result = NULL;
    PyObject *namespace = NULL, *name = NULL, *rv = NULL, *uid = NULL, *labels = NULL,
             *owners = NULL, *app = NULL, *body = NULL;
    member_list top, meta, annotations, label_members, ref_members;
    list_init(&top);
    list_init(&meta);
    list_init(&annotations);
    list_init(&label_members);
    list_init(&ref_members);

    if (p >= end || *p != '{') NOT_HANDLED();
    p = object_members_split(p, end, 0, &top, "metadata", 8, &meta);
    if (p == NULL) NOT_HANDLED();
    *after = p;
    if (!sort_unique(&top)) NOT_HANDLED();

    /* The top level without apiVersion and kind (replaced); metadata split. */
    const member *meta_member = NULL;
    Py_ssize_t kept_top = 0;
    Py_ssize_t top_bytes = 2; /* {} */
    for (Py_ssize_t i = 0; i < top.n; i++) {
        member *m = &top.items[i];
        if (KEY_IS(m, "apiVersion") || KEY_IS(m, "kind")) continue;
        if (KEY_IS(m, "metadata")) {
            meta_member = m;
            continue;
        }
        top_bytes += m->klen + 3 + m->vlen;
        kept_top++;
    }
    if (meta_member == NULL || meta_member->type != V_OBJECT) NOT_HANDLED();
    if (!sort_unique(&meta)) NOT_HANDLED(); /* split from the top level's scan */

    const member *m_name = NULL, *m_namespace = NULL, *m_rv = NULL, *m_uid = NULL,
                 *m_labels = NULL, *m_refs = NULL, *m_annotations = NULL;
    Py_ssize_t meta_bytes = 2;
    Py_ssize_t meta_kept = 0;
    for (Py_ssize_t i = 0; i < meta.n; i++) {
        member *m = &meta.items[i];
        if (KEY_IS(m, "managedFields")) continue;
        if (KEY_IS(m, "name")) m_name = m;
        else if (KEY_IS(m, "namespace")) m_namespace = m;
        else if (KEY_IS(m, "resourceVersion")) m_rv = m;
        else if (KEY_IS(m, "uid")) m_uid = m;
        else if (KEY_IS(m, "labels")) m_labels = m;
        else if (KEY_IS(m, "ownerReferences")) m_refs = m;
        else if (KEY_IS(m, "annotations")) {
            m_annotations = m;
            continue; /* sized below */
        }
        meta_bytes += m->klen + 3 + m->vlen;
        meta_kept++;
    }

    /* Identity: name a non-empty plain string; the others plain strings or absent. */
    if (m_name == NULL || m_name->type != V_STRING || !m_name->plain || m_name->vlen <= 2)
        NOT_HANDLED();
    if ((name = plain_text(m_name)) == NULL) goto fail;
    if (m_namespace != NULL && m_namespace->type == V_NULL) m_namespace = NULL;
    if ((namespace = text_or_empty(m_namespace, empty_text)) == NULL) {
        if (PyErr_Occurred()) goto fail;
        NOT_HANDLED();
    }
    if (m_rv != NULL && m_rv->type == V_NULL) NOT_HANDLED(); /* rare: left to Python */
    if ((rv = text_or_empty(m_rv, empty_text)) == NULL) {
        if (PyErr_Occurred()) goto fail;
        NOT_HANDLED();
    }
    if ((uid = text_or_empty(m_uid, empty_text)) == NULL) {
        if (PyErr_Occurred()) goto fail;
        NOT_HANDLED();
    }

    /* Annotations: an object of strings, plain but for the dropped ones. */
    int annotations_raw = 0; /* written as served: an empty object */
    Py_ssize_t annotations_kept = 0;
    const member *m_app = NULL;
    if (m_annotations != NULL) {
        if (m_annotations->type != V_OBJECT) NOT_HANDLED();
        if (object_members(m_annotations->value, m_annotations->value + m_annotations->vlen,
                           2, &annotations) == NULL)
            NOT_HANDLED();
        if (annotations.n == 0) {
            annotations_raw = 1;
            meta_bytes += m_annotations->klen + 3 + m_annotations->vlen;
            meta_kept++;
        } else {
            if (!sort_unique(&annotations)) NOT_HANDLED();
            Py_ssize_t bytes = 2;
            for (Py_ssize_t i = 0; i < annotations.n; i++) {
                member *a = &annotations.items[i];
                if (a->type != V_STRING) NOT_HANDLED();
                if ((drop_last_applied && KEY_IS(a, LAST_APPLIED)) || KEY_IS(a, LEADER)) {
                    a->klen = -1; /* dropped (escapes allowed: it is not written) */
                    continue;
                }
                if (!a->plain) NOT_HANDLED();
                if (KEY_IS(a, MONIKER_APP)) m_app = a;
                bytes += a->klen + 3 + a->vlen;
                annotations_kept++;
            }
            if (annotations_kept) {
                meta_bytes += m_annotations->klen + 3 + bytes + (annotations_kept - 1);
                meta_kept++;
            }
        }
    }
    if (m_app == NULL) {
        app = empty_text;
        Py_INCREF(app);
    } else if ((app = plain_text(m_app)) == NULL) {
        goto fail;
    }

    /* Labels: an object of plain strings, or absent/null/empty. */
    if ((labels = PyDict_New()) == NULL) goto fail;
    if (m_labels != NULL && m_labels->type != V_NULL) {
        if (m_labels->type != V_OBJECT) NOT_HANDLED();
        if (object_members(m_labels->value, m_labels->value + m_labels->vlen, 2,
                           &label_members) == NULL)
            NOT_HANDLED();
        for (Py_ssize_t i = 0; i < label_members.n; i++) {
            member *l = &label_members.items[i];
            if (l->type != V_STRING || !l->plain) NOT_HANDLED();
            PyObject *k = PyUnicode_DecodeUTF8((const char *)l->key, l->klen, "strict");
            if (k == NULL) goto fail;
            PyObject *v = plain_text(l);
            if (v == NULL) {
                Py_DECREF(k);
                goto fail;
            }
            int failed = PyDict_SetItem(labels, k, v);
            Py_DECREF(k);
            Py_DECREF(v);
            if (failed) goto fail;
        }
    }

    /* Owners: the non-empty uids of an array of objects (absent/null/empty: none). */
    if (m_refs == NULL || m_refs->type == V_NULL) {
        owners = empty_tuple;
        Py_INCREF(owners);
    } else {
        if (m_refs->type != V_ARRAY) NOT_HANDLED();
        PyObject *found = PyList_New(0);
        if (found == NULL) goto fail;
        owners = found; /* released as owners on every path below */
        cursor q = skip_ws(m_refs->value + 1, m_refs->value + m_refs->vlen);
        cursor refs_end = m_refs->value + m_refs->vlen;
        if (*q != ']') {
            for (;;) {
                if (*q != '{') NOT_HANDLED();
                ref_members.n = 0;
                q = object_members(q, refs_end, 3, &ref_members);
                if (q == NULL) NOT_HANDLED();
                const member *ref_uid = NULL;
                for (Py_ssize_t i = 0; i < ref_members.n; i++) {
                    if (KEY_IS(&ref_members.items[i], "uid")) {
                        if (ref_uid != NULL) NOT_HANDLED(); /* duplicate */
                        ref_uid = &ref_members.items[i];
                    }
                }
                if (ref_uid != NULL && ref_uid->type != V_NULL) {
                    if (ref_uid->type != V_STRING || !ref_uid->plain) NOT_HANDLED();
                    if (ref_uid->vlen > 2) {
                        PyObject *text = plain_text(ref_uid);
                        if (text == NULL) goto fail;
                        int failed = PyList_Append(found, text);
                        Py_DECREF(text);
                        if (failed) goto fail;
                    }
                }
                q = skip_ws(q, refs_end);
                if (*q == ',') {
                    q = skip_ws(q + 1, refs_end);
                    continue;
                }
                break; /* ']' (the array was scanned as valid) */
            }
        }
        owners = PyList_AsTuple(found);
        Py_DECREF(found);
        if (owners == NULL) goto fail;
    }

    /* Sizes: the top level gets apiVersion, kind and metadata back. */
    Py_ssize_t metadata_bytes = meta_bytes + (meta_kept > 0 ? meta_kept - 1 : 0);
    top_bytes += (Py_ssize_t)(sizeof("apiVersion") - 1) + 3 + api_version->len;
    top_bytes += (Py_ssize_t)(sizeof("kind") - 1) + 3 + kind->len;
    top_bytes += (Py_ssize_t)(sizeof("metadata") - 1) + 3 + metadata_bytes;
    top_bytes += kept_top + 2; /* commas between kept_top + 3 members */

    body = PyBytes_FromStringAndSize(NULL, top_bytes);
    if (body == NULL) goto fail;
    writer w = {PyBytes_AS_STRING(body)};
    member synthetic[3];
    synthetic[0] = (member){(cursor) "apiVersion", 10, api_version->buf, api_version->len, 0, 0};
    synthetic[1] = (member){(cursor) "kind", 4, kind->buf, kind->len, 0, 0};
    synthetic[2] = (member){(cursor) "metadata", 8, NULL, 0, 0, 0};
    /* Merge the sorted kept top-level members with the three synthetic ones (sorted). */
    put_char(&w, '{');
    Py_ssize_t i = 0;
    int s = 0, first = 1;
    while (i < top.n || s < 3) {
        const member *m;
        if (i < top.n && (KEY_IS(&top.items[i], "apiVersion") || KEY_IS(&top.items[i], "kind") ||
                          KEY_IS(&top.items[i], "metadata"))) {
            i++;
            continue;
        }
        int take_synthetic = s < 3 && (i >= top.n || compare_keys(&synthetic[s], &top.items[i]) < 0);
        m = take_synthetic ? &synthetic[s++] : &top.items[i++];
        if (!first) put_char(&w, ',');
        first = 0;
        put_key(&w, m);
        if (m == &synthetic[2]) {
            int meta_first = 1;
            put_char(&w, '{');
            for (Py_ssize_t j = 0; j < meta.n; j++) {
                const member *f = &meta.items[j];
                if (KEY_IS(f, "managedFields")) continue;
                if (f == m_annotations && !annotations_raw) {
                    if (!annotations_kept) continue;
                    if (!meta_first) put_char(&w, ',');
                    meta_first = 0;
                    put_key(&w, f);
                    put_char(&w, '{');
                    int a_first = 1;
                    for (Py_ssize_t k = 0; k < annotations.n; k++) {
                        const member *a = &annotations.items[k];
                        if (a->klen < 0) continue;
                        if (!a_first) put_char(&w, ',');
                        a_first = 0;
                        put_key(&w, a);
                        put(&w, a->value, a->vlen);
                    }
                    put_char(&w, '}');
                    continue;
                }
                if (!meta_first) put_char(&w, ',');
                meta_first = 0;
                put_key(&w, f);
                put(&w, f->value, f->vlen);
            }
            put_char(&w, '}');
        } else {
            put(&w, m->value, m->vlen);
        }
    }
    put_char(&w, '}');
    if (w.p != PyBytes_AS_STRING(body) + top_bytes) {
        PyErr_SetString(PyExc_SystemError, "producers._speedups.shape: body size mismatch");
        goto fail;
    }

    result = PyTuple_Pack(8, body, namespace, name, rv, uid, labels, owners, app);
    goto done;

fail:
    result = NULL;
done:
    Py_XDECREF(namespace);
    Py_XDECREF(name);
    Py_XDECREF(rv);
    Py_XDECREF(uid);
    Py_XDECREF(labels);
    Py_XDECREF(owners);
    Py_XDECREF(app);
    Py_XDECREF(body);
    list_free(&top);
    list_free(&meta);
    list_free(&annotations);
    list_free(&label_members);
    list_free(&ref_members);
    return result;
}

static PyObject *not_handled(void) {
    Py_INCREF(Py_None);
    return Py_None;
}

static PyObject *shape(PyObject *self, PyObject *args) {
    Py_buffer raw, api_version, kind;
    int drop_last_applied;
    if (!PyArg_ParseTuple(args, "y*y*y*p", &raw, &api_version, &kind, &drop_last_applied))
        return NULL;
    cursor start = raw.buf, end = start + raw.len, after = NULL;
    PyObject *result = shape_object(skip_ws(start, end), end, &api_version, &kind,
                                    drop_last_applied, &after);
    if (result != NULL && result != Py_None && skip_ws(after, end) != end) {
        Py_DECREF(result);
        result = not_handled();
    }
    PyBuffer_Release(&raw);
    PyBuffer_Release(&api_version);
    PyBuffer_Release(&kind);
    return result;
}

static PyObject *event_added = NULL, *event_modified = NULL, *event_deleted = NULL;

/* A watch event {"type": ADDED|MODIFIED|DELETED, "object": {...}} (in any order, and
 * nothing else): (type, *shape of the object), or None. */
static PyObject *shape_event_of(cursor p, cursor end, const Py_buffer *api_version,
                                const Py_buffer *kind, int drop_last_applied) {
    PyObject *shaped = NULL, *type = NULL, *result;
    int plain, value_type;
    p = skip_ws(p, end);
    if (p >= end || *p != '{') goto not_handled;
    p = skip_ws(p + 1, end);
    for (;;) {
        if (p >= end || *p != '"') goto not_handled;
        cursor key = p + 1;
        p = scan_string(p, end, &plain);
        if (p == NULL || !plain) goto not_handled;
        Py_ssize_t klen = (p - 1) - key;
        p = skip_ws(p, end);
        if (p >= end || *p != ':') goto not_handled;
        p = skip_ws(p + 1, end);
        if (klen == 4 && memcmp(key, "type", 4) == 0) {
            cursor value = p;
            if (type != NULL) goto not_handled;
            p = scan_value(p, end, 1, &value_type, &plain);
            if (p == NULL || value_type != V_STRING || !plain) goto not_handled;
            Py_ssize_t n = (p - value) - 2;
            if (n == 5 && memcmp(value + 1, "ADDED", 5) == 0) type = event_added;
            else if (n == 8 && memcmp(value + 1, "MODIFIED", 8) == 0) type = event_modified;
            else if (n == 7 && memcmp(value + 1, "DELETED", 7) == 0) type = event_deleted;
            else goto not_handled; /* BOOKMARK, ERROR, ...: Python */
        } else if (klen == 6 && memcmp(key, "object", 6) == 0) {
            if (shaped != NULL) goto not_handled;
            shaped = shape_object(p, end, api_version, kind, drop_last_applied, &p);
            if (shaped == NULL) return NULL;
            if (shaped == Py_None) goto not_handled;
        } else {
            goto not_handled;
        }
        p = skip_ws(p, end);
        if (p >= end) goto not_handled;
        if (*p == ',') {
            p = skip_ws(p + 1, end);
            continue;
        }
        if (*p != '}') goto not_handled;
        p++;
        break;
    }
    if (skip_ws(p, end) != end || shaped == NULL || type == NULL) goto not_handled;
    result = PyTuple_New(9);
    if (result == NULL) {
        Py_DECREF(shaped);
        return NULL;
    }
    Py_INCREF(type);
    PyTuple_SET_ITEM(result, 0, type);
    for (Py_ssize_t i = 0; i < 8; i++) {
        PyObject *item = PyTuple_GET_ITEM(shaped, i);
        Py_INCREF(item);
        PyTuple_SET_ITEM(result, i + 1, item);
    }
    Py_DECREF(shaped);
    return result;

not_handled:
    Py_XDECREF(shaped);
    return not_handled();
}

static PyObject *shape_event(PyObject *self, PyObject *args) {
    Py_buffer line, api_version, kind;
    int drop_last_applied;
    if (!PyArg_ParseTuple(args, "y*y*y*p", &line, &api_version, &kind, &drop_last_applied))
        return NULL;
    cursor start = line.buf;
    PyObject *result =
        shape_event_of(start, start + line.len, &api_version, &kind, drop_last_applied);
    PyBuffer_Release(&line);
    PyBuffer_Release(&api_version);
    PyBuffer_Release(&kind);
    return result;
}

/*
 * fingerprint(body, member, key) -> 8 bytes: keyed SipHash-1-3 (the variant CPython
 * hashes str and bytes with) of ``body`` with the first occurrence of ``member`` cut
 * out (nothing cut when ``member`` is empty or absent), little-endian. ``key`` is 16
 * bytes (k0, k1 little-endian). producers/strip.py passes the object's own
 * ``,"resourceVersion":"<rv>"`` member and a per-process random key: a keyed PRF, so
 * no one who can edit objects can aim for a colliding edit, at ~1 us per 3 KiB body
 * where 8-byte BLAKE2b took ~3. The two sides of the cut are hashed as one stream,
 * without a copy.
 */
typedef struct {
    uint64_t v0, v1, v2, v3;
    uint64_t tail;      /* pending bytes of an incomplete word, little-endian */
    unsigned tail_len;  /* 0..7 */
    uint64_t total;     /* bytes fed so far */
} siphash;

#define SIP_ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIP_ROUND(s)                                                                  \
    do {                                                                              \
        (s)->v0 += (s)->v1; (s)->v1 = SIP_ROTL((s)->v1, 13); (s)->v1 ^= (s)->v0;      \
        (s)->v0 = SIP_ROTL((s)->v0, 32);                                              \
        (s)->v2 += (s)->v3; (s)->v3 = SIP_ROTL((s)->v3, 16); (s)->v3 ^= (s)->v2;      \
        (s)->v0 += (s)->v3; (s)->v3 = SIP_ROTL((s)->v3, 21); (s)->v3 ^= (s)->v0;      \
        (s)->v2 += (s)->v1; (s)->v1 = SIP_ROTL((s)->v1, 17); (s)->v1 ^= (s)->v2;      \
        (s)->v2 = SIP_ROTL((s)->v2, 32);                                              \
    } while (0)

static uint64_t sip_le64(const unsigned char *p) {
    uint64_t w;
    memcpy(&w, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    w = __builtin_bswap64(w);
#endif
    return w;
}

static void sip_word(siphash *s, uint64_t m) {
    s->v3 ^= m;
    SIP_ROUND(s); /* one compression round: SipHash-1-3 */
    s->v0 ^= m;
}

static void sip_init(siphash *s, const unsigned char key[16]) {
    uint64_t k0 = sip_le64(key), k1 = sip_le64(key + 8);
    s->v0 = k0 ^ 0x736f6d6570736575ULL;
    s->v1 = k1 ^ 0x646f72616e646f6dULL;
    s->v2 = k0 ^ 0x6c7967656e657261ULL;
    s->v3 = k1 ^ 0x7465646279746573ULL;
    s->tail = 0;
    s->tail_len = 0;
    s->total = 0;
}

static void sip_feed(siphash *s, const unsigned char *p, size_t n) {
    s->total += n;
    while (s->tail_len && n) { /* complete a word left over from the last segment */
        s->tail |= (uint64_t)*p++ << (8 * s->tail_len);
        n--;
        if (++s->tail_len == 8) {
            sip_word(s, s->tail);
            s->tail = 0;
            s->tail_len = 0;
        }
    }
    for (; n >= 8; p += 8, n -= 8) sip_word(s, sip_le64(p));
    for (; n; n--) s->tail |= (uint64_t)*p++ << (8 * s->tail_len++);
}

static uint64_t sip_final(siphash *s) {
    sip_word(s, s->tail | (s->total << 56));
    s->v2 ^= 0xff;
    SIP_ROUND(s); /* three finalization rounds */
    SIP_ROUND(s);
    SIP_ROUND(s);
    return s->v0 ^ s->v1 ^ s->v2 ^ s->v3;
}

static PyObject *fingerprint(PyObject *self, PyObject *args) {
    Py_buffer body, member, key;
    if (!PyArg_ParseTuple(args, "y*y*y*", &body, &member, &key)) return NULL;
    PyObject *result = NULL;
    if (key.len != 16) {
        PyErr_SetString(PyExc_ValueError, "fingerprint key must be 16 bytes");
        goto done;
    }
    const unsigned char *b = body.buf;
    size_t n = (size_t)body.len, cut = n, cut_len = 0;
    if (member.len > 0) {
        const unsigned char *at = memmem(b, n, member.buf, (size_t)member.len);
        if (at != NULL) {
            cut = (size_t)(at - b);
            cut_len = (size_t)member.len;
        }
    }
    siphash s;
    sip_init(&s, key.buf);
    sip_feed(&s, b, cut);
    sip_feed(&s, b + cut + cut_len, n - cut - cut_len);
    uint64_t h = sip_final(&s);
    unsigned char out[8];
    for (int i = 0; i < 8; i++) out[i] = (unsigned char)(h >> (8 * i));
    result = PyBytes_FromStringAndSize((const char *)out, 8);
done:
    PyBuffer_Release(&body);
    PyBuffer_Release(&member);
    PyBuffer_Release(&key);
    return result;
}

static PyMethodDef methods[] = {
    {"shape", shape, METH_VARARGS,
     "shape(raw, api_version_json, kind_json, drop_last_applied) -> "
     "(body, namespace, name, resource_version, uid, labels, owners, app) | None"},
    {"shape_event", shape_event, METH_VARARGS,
     "shape_event(line, api_version_json, kind_json, drop_last_applied) -> "
     "(type, body, namespace, name, resource_version, uid, labels, owners, app) | None"},
    {"fingerprint", fingerprint, METH_VARARGS,
     "fingerprint(body, member, key) -> 8-byte keyed SipHash-1-3 of body without member"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "producers._speedups",
    "C shaping of served objects (see producers/_speedups.c).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__speedups(void) {
    init_special();
    if (empty_text == NULL && (empty_text = PyUnicode_FromString("")) == NULL) return NULL;
    if (empty_tuple == NULL && (empty_tuple = PyTuple_New(0)) == NULL) return NULL;
    if (event_added == NULL && (event_added = PyUnicode_InternFromString("ADDED")) == NULL)
        return NULL;
    if (event_modified == NULL &&
        (event_modified = PyUnicode_InternFromString("MODIFIED")) == NULL)
        return NULL;
    if (event_deleted == NULL && (event_deleted = PyUnicode_InternFromString("DELETED")) == NULL)
        return NULL;
    return PyModule_Create(&module);
}
