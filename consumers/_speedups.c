/*
 * consumers._speedups: Kafka record batches (message format v2) straight into the
 * consumer's SourceRecords, in C.
 *
 * RecordCursor(data, topic, partition, fetch_offset, decompress, record_type, corrupt)
 * walks the record batches of one partition of one fetch response (`data`, the bytes
 * the broker sent) and hands out SourceRecords(topic, partition, offset, key, value,
 * timestamp_ms) with take(n). It stands in for aiokafka's PartitionRecords, which
 * builds a ConsumerRecord per record in Python that the consumer then turned into a
 * SourceRecord: those two objects and the generator and loop steps around them were
 * about half of the consumer's "fetch" stage (consumers/fast_records.py wires it in
 * and says which records keep aiokafka's path).
 *
 * Semantics copied from aiokafka's PartitionRecords._unpack_records with
 * read_uncommitted: control batches are skipped, records below the fetch offset are
 * skipped (a compressed batch starts before it), a timestamp is the batch's max
 * timestamp under LogAppendTime and first timestamp + delta otherwise, next_fetch_offset
 * is the last handed-out offset + 1 and, once a batch is done, the batch's next
 * offset (compaction may have removed its last records). A trailing partial batch (the
 * broker cuts responses at the size limit) is ignored: it is fetched again.
 * Batches are decompressed one at a time when reached, by calling
 * decompress(codec, payload) (aiokafka's codecs, our zstd hook), so a buffered
 * partition holds its compressed bytes, as with aiokafka. Record headers are skipped
 * (the consumer uses none). A record whose fields do not add up raises `corrupt`
 * (aiokafka's CorruptRecordException).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdint.h>
#include <string.h>

#define BATCH_HEADER 61   /* bytes before the first record of a v2 batch */
#define LOG_OVERHEAD 12   /* base offset + batch length */
#define ATTR_CODEC 0x07
#define ATTR_LOG_APPEND_TIME 0x08
#define ATTR_CONTROL 0x20

typedef struct {
    PyObject_HEAD
    PyObject *data;       /* bytes: the partition's record batches as fetched */
    Py_ssize_t pos;       /* start of the next batch in data */
    PyObject *topic;      /* str, shared by every record */
    PyObject *partition;  /* int, shared by every record */
    PyObject *decompress; /* callable(codec: int, payload: bytes) -> bytes */
    PyTypeObject *record_type; /* SourceRecord (a NamedTuple: a tuple subclass) */
    PyObject *corrupt;    /* exception class for malformed records */
    long long next_fetch_offset;
    /* the batch being read */
    PyObject *batch_buf;  /* bytes holding the records (data itself or decompressed) */
    Py_ssize_t rp, rend;  /* record cursor and end within batch_buf */
    long long base_offset, first_ts, max_ts, batch_next;
    long long remaining;  /* records the batch header says are left */
    int log_append_time;
    int in_batch;
} RecordCursor;

static uint64_t be(const unsigned char *p, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v = (v << 8) | p[i];
    return v;
}

/* Zigzag varint (at most 10 bytes); -1 when it runs past end or is too long. */
static int read_varlong(const unsigned char **p, const unsigned char *end, int64_t *out) {
    uint64_t v = 0;
    int shift = 0;
    while (*p < end && shift < 64) {
        unsigned char b = **p;
        (*p)++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
            return 0;
        }
        shift += 7;
    }
    return -1;
}

static void cursor_clear_batch(RecordCursor *c) {
    Py_CLEAR(c->batch_buf);
    c->in_batch = 0;
}

static int cursor_traverse(RecordCursor *c, visitproc visit, void *arg) {
    Py_VISIT(c->decompress);
    Py_VISIT(c->record_type);
    Py_VISIT(c->corrupt);
    return 0;
}

static int cursor_clear(RecordCursor *c) {
    Py_CLEAR(c->data);
    Py_CLEAR(c->topic);
    Py_CLEAR(c->partition);
    Py_CLEAR(c->decompress);
    Py_CLEAR(c->record_type);
    Py_CLEAR(c->corrupt);
    Py_CLEAR(c->batch_buf);
    return 0;
}

static void cursor_dealloc(RecordCursor *c) {
    PyObject_GC_UnTrack(c);
    cursor_clear(c);
    Py_TYPE(c)->tp_free((PyObject *)c);
}

static int cursor_init(RecordCursor *c, PyObject *args, PyObject *kwds) {
    PyObject *data, *topic, *partition, *decompress, *record_type, *corrupt;
    long long fetch_offset;
    if (!PyArg_ParseTuple(args, "O!UO!LOO!O", &PyBytes_Type, &data, &topic, &PyLong_Type,
                          &partition, &fetch_offset, &decompress, &PyType_Type, &record_type,
                          &corrupt))
        return -1;
    if (!PyType_IsSubtype((PyTypeObject *)record_type, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "record_type must be a tuple subclass");
        return -1;
    }
    cursor_clear(c);
    Py_INCREF(data); c->data = data;
    Py_INCREF(topic); c->topic = topic;
    Py_INCREF(partition); c->partition = partition;
    Py_INCREF(decompress); c->decompress = decompress;
    Py_INCREF(record_type); c->record_type = (PyTypeObject *)record_type;
    Py_INCREF(corrupt); c->corrupt = corrupt;
    c->pos = 0;
    c->next_fetch_offset = fetch_offset;
    c->in_batch = 0;
    return 0;
}

/* Open the next complete batch; 1 opened, 0 no complete batch left, -1 error. */
static int cursor_open_batch(RecordCursor *c) {
    const unsigned char *d = (const unsigned char *)PyBytes_AS_STRING(c->data);
    Py_ssize_t size = PyBytes_GET_SIZE(c->data);
    for (;;) {
        Py_ssize_t pos = c->pos;
        if (size - pos < LOG_OVERHEAD) return 0;
        int64_t length = (int32_t)be(d + pos + 8, 4);
        if (length < 0 || size - pos - LOG_OVERHEAD < length) return 0; /* partial: refetched */
        Py_ssize_t end = pos + LOG_OVERHEAD + (Py_ssize_t)length;
        if (length < BATCH_HEADER - LOG_OVERHEAD || d[pos + 16] != 2) {
            PyErr_Format(c->corrupt, "record batch at offset %lld is not message format v2",
                         (long long)(int64_t)be(d + pos, 8));
            return -1;
        }
        unsigned attributes = (unsigned)be(d + pos + 21, 2);
        long long base = (long long)(int64_t)be(d + pos, 8);
        long long last_delta = (long long)(int32_t)be(d + pos + 23, 4);
        c->pos = end;
        if (attributes & ATTR_CONTROL) { /* transaction markers: skipped, as aiokafka does */
            if (c->next_fetch_offset < base + last_delta + 1)
                c->next_fetch_offset = base + last_delta + 1;
            continue;
        }
        c->base_offset = base;
        c->batch_next = base + last_delta + 1;
        c->first_ts = (long long)(int64_t)be(d + pos + 27, 8);
        c->max_ts = (long long)(int64_t)be(d + pos + 35, 8);
        c->remaining = (long long)(int32_t)be(d + pos + 57, 4);
        c->log_append_time = (attributes & ATTR_LOG_APPEND_TIME) != 0;
        unsigned codec = attributes & ATTR_CODEC;
        if (codec == 0) {
            Py_INCREF(c->data);
            c->batch_buf = c->data;
            c->rp = pos + BATCH_HEADER;
            c->rend = end;
        } else {
            PyObject *payload = PyBytes_FromStringAndSize(
                (const char *)d + pos + BATCH_HEADER, end - pos - BATCH_HEADER);
            if (payload == NULL) return -1;
            PyObject *out = PyObject_CallFunction(c->decompress, "IO", codec, payload);
            Py_DECREF(payload);
            if (out == NULL) return -1;
            if (!PyBytes_Check(out)) {
                PyObject *b = PyBytes_FromObject(out);
                Py_DECREF(out);
                if (b == NULL) return -1;
                out = b;
            }
            c->batch_buf = out;
            c->rp = 0;
            c->rend = PyBytes_GET_SIZE(out);
        }
        c->in_batch = 1;
        return 1;
    }
}

static PyObject *corrupt_record(RecordCursor *c, const char *what) {
    PyErr_Format(c->corrupt, "corrupt record in the batch at offset %lld of %U[%S]: %s",
                 c->base_offset, c->topic, c->partition, what);
    return NULL;
}

/* The next record of the open batch as a SourceRecord; NULL with no error set when the
 * record lies below the fetch offset (skipped), NULL with an error on corruption. */
static PyObject *cursor_read_record(RecordCursor *c, int *skipped) {
    const unsigned char *base = (const unsigned char *)PyBytes_AS_STRING(c->batch_buf);
    const unsigned char *p = base + c->rp, *end = base + c->rend;
    int64_t length, ts_delta, offset_delta, key_len, value_len, headers;
    *skipped = 0;
    if (read_varlong(&p, end, &length) < 0 || length < 0 || end - p < length)
        return corrupt_record(c, "record length");
    const unsigned char *start = p, *rec_end = p + length;
    if (rec_end - p < 1) return corrupt_record(c, "attributes");
    p += 1; /* attributes: unused */
    if (read_varlong(&p, rec_end, &ts_delta) < 0) return corrupt_record(c, "timestamp delta");
    if (read_varlong(&p, rec_end, &offset_delta) < 0) return corrupt_record(c, "offset delta");
    if (read_varlong(&p, rec_end, &key_len) < 0 || key_len < -1 || rec_end - p < key_len)
        return corrupt_record(c, "key length");
    const unsigned char *key = key_len >= 0 ? p : NULL;
    if (key_len > 0) p += key_len;
    if (read_varlong(&p, rec_end, &value_len) < 0 || value_len < -1 || rec_end - p < value_len)
        return corrupt_record(c, "value length");
    const unsigned char *value = value_len >= 0 ? p : NULL;
    if (value_len > 0) p += value_len;
    if (read_varlong(&p, rec_end, &headers) < 0 || headers < 0)
        return corrupt_record(c, "header count");
    for (int64_t i = 0; i < headers; i++) {
        int64_t hk, hv;
        if (read_varlong(&p, rec_end, &hk) < 0 || hk < 0 || rec_end - p < hk)
            return corrupt_record(c, "header key");
        p += hk;
        if (read_varlong(&p, rec_end, &hv) < 0 || hv < -1 || rec_end - p < hv)
            return corrupt_record(c, "header value");
        if (hv > 0) p += hv;
    }
    if (p != rec_end) return corrupt_record(c, "record size does not match its fields");
    (void)start;
    c->rp = rec_end - base;
    c->remaining--;
    long long offset = c->base_offset + offset_delta;
    if (offset < c->next_fetch_offset) {
        *skipped = 1;
        return NULL;
    }
    long long ts = c->log_append_time ? c->max_ts : c->first_ts + ts_delta;
    PyObject *rec = c->record_type->tp_alloc(c->record_type, 6);
    if (rec == NULL) return NULL;
    PyObject *o_offset = PyLong_FromLongLong(offset);
    PyObject *o_ts = PyLong_FromLongLong(ts);
    PyObject *o_key = key != NULL ? PyBytes_FromStringAndSize((const char *)key, key_len)
                                  : Py_NewRef(Py_None);
    PyObject *o_value = value != NULL
                            ? PyBytes_FromStringAndSize((const char *)value, value_len)
                            : Py_NewRef(Py_None);
    /* set every slot before a possible DECREF so the tuple's dealloc sees no garbage */
    PyTuple_SET_ITEM(rec, 0, Py_NewRef(c->topic));
    PyTuple_SET_ITEM(rec, 1, Py_NewRef(c->partition));
    PyTuple_SET_ITEM(rec, 2, o_offset);
    PyTuple_SET_ITEM(rec, 3, o_key);
    PyTuple_SET_ITEM(rec, 4, o_value);
    PyTuple_SET_ITEM(rec, 5, o_ts);
    if (o_offset == NULL || o_ts == NULL || o_key == NULL || o_value == NULL) {
        Py_DECREF(rec);
        return NULL;
    }
    c->next_fetch_offset = offset + 1;
    return rec;
}

/* Close the open batch if its records are all read. */
static void cursor_settle(RecordCursor *c) {
    if (c->in_batch && (c->remaining <= 0 || c->rp >= c->rend)) {
        if (c->next_fetch_offset < c->batch_next) c->next_fetch_offset = c->batch_next;
        cursor_clear_batch(c);
    }
}

static PyObject *cursor_take(RecordCursor *c, PyObject *arg) {
    Py_ssize_t limit = PyLong_AsSsize_t(arg);
    if (limit == -1 && PyErr_Occurred()) return NULL;
    PyObject *out = PyList_New(0);
    if (out == NULL) return NULL;
    while (limit <= 0 || PyList_GET_SIZE(out) < limit) {
        cursor_settle(c);
        if (!c->in_batch) {
            int opened = cursor_open_batch(c);
            if (opened < 0) goto fail;
            if (opened == 0) break;
            continue;
        }
        int skipped;
        PyObject *rec = cursor_read_record(c, &skipped);
        if (rec == NULL) {
            if (skipped) continue;
            goto fail;
        }
        int rc = PyList_Append(out, rec);
        Py_DECREF(rec);
        if (rc < 0) goto fail;
    }
    cursor_settle(c);
    return out;
fail:
    Py_DECREF(out);
    cursor_clear_batch(c);
    return NULL;
}

static PyObject *cursor_iternext(RecordCursor *c) {
    PyObject *one = PyLong_FromLong(1);
    if (one == NULL) return NULL;
    PyObject *got = cursor_take(c, one);
    Py_DECREF(one);
    if (got == NULL) return NULL;
    PyObject *rec = NULL;
    if (PyList_GET_SIZE(got) == 1) rec = Py_NewRef(PyList_GET_ITEM(got, 0));
    Py_DECREF(got);
    return rec; /* NULL without an error: StopIteration */
}

static PyObject *cursor_exhausted(RecordCursor *c, void *closure) {
    (void)closure;
    Py_ssize_t size = c->data != NULL ? PyBytes_GET_SIZE(c->data) : 0;
    if (c->in_batch) Py_RETURN_FALSE;
    /* done when no complete batch follows (a partial one is refetched) */
    if (size - c->pos < LOG_OVERHEAD) Py_RETURN_TRUE;
    const unsigned char *d = (const unsigned char *)PyBytes_AS_STRING(c->data);
    int64_t length = (int32_t)be(d + c->pos + 8, 4);
    if (length < 0 || size - c->pos - LOG_OVERHEAD < length) Py_RETURN_TRUE;
    Py_RETURN_FALSE;
}

static PyMemberDef cursor_members[] = {
    {"next_fetch_offset", T_LONGLONG, offsetof(RecordCursor, next_fetch_offset), READONLY,
     "offset the partition's position moves to after what was taken"},
    {NULL, 0, 0, 0, NULL},
};

static PyGetSetDef cursor_getset[] = {
    {"exhausted", (getter)cursor_exhausted, NULL, "no record left to take", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef cursor_methods[] = {
    {"take", (PyCFunction)cursor_take, METH_O,
     "take(n) -> list of up to n records (n <= 0: all that are left)"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject RecordCursorType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "consumers._speedups.RecordCursor",
    .tp_basicsize = sizeof(RecordCursor),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "RecordCursor(data, topic, partition, fetch_offset, decompress, record_type, "
              "corrupt): SourceRecords out of one partition's fetched record batches",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)cursor_init,
    .tp_dealloc = (destructor)cursor_dealloc,
    .tp_traverse = (traverseproc)cursor_traverse,
    .tp_clear = (inquiry)cursor_clear,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)cursor_iternext,
    .tp_methods = cursor_methods,
    .tp_members = cursor_members,
    .tp_getset = cursor_getset,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "consumers._speedups",
    "Kafka record batches into SourceRecords in C (see consumers/_speedups.c).", -1, NULL,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__speedups(void) {
    if (PyType_Ready(&RecordCursorType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    Py_INCREF(&RecordCursorType);
    if (PyModule_AddObject(m, "RecordCursor", (PyObject *)&RecordCursorType) < 0) {
        Py_DECREF(&RecordCursorType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
