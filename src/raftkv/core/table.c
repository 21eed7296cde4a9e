/* raftkv.core.table: the keyspace's map of key -> packed entry, in C.
 *
 * table.py is the same type in plain Python and says what each method does; this
 * file is what runs (an extension module is imported before a source file of the
 * same name). It exists for one reason: a get on a large keyspace waits on memory,
 * and a CPython dict makes it wait four times (index, entry, key object, value
 * object). Here a get waits twice: once for its slot, which holds the key's hash
 * and a pointer, and once for the block the pointer leads to, which holds the key
 * and the packed entry side by side.
 *
 * Slots use open addressing with linear probing and backward-shift deletion (no
 * tombstones), at most 3/4 full. Blocks are reference-counted, so copy() shares
 * them: a snapshot copies the slots and counts one more reference per block. A
 * shared block is never changed; put() rewrites in place only a block of the same
 * size that no copy holds. Every access runs under the GIL, which also guards the
 * reference counts.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* The packed entry's two header layouts (keyspace.py): first byte 0, 11 bytes, no
 * deadline; first byte 1, 29 bytes, the deadline as a little-endian u64 at 17. */
#define COMPACT_BYTES 11
#define FULL_BYTES 29
#define DEADLINE_AT 17
#define TYPED 0x10 /* first byte of a key holding a hash, list, set or sorted set */

static PyObject *WrongType; /* raftkv.errors.WrongType, raised by value() on a typed key */
#define MIN_SLOTS 8
#define RUN 16 /* keys looked up together by values(): their misses overlap */

typedef struct {
    Py_ssize_t refs;
    uint32_t key_len;
    uint32_t packed_len;
    char data[]; /* key, then packed entry */
} Block;

typedef struct {
    Py_hash_t hash;
    Block *block; /* NULL: empty */
} Slot;

typedef struct {
    PyObject_HEAD
    Slot *slots;
    size_t mask; /* slots - 1; slots is a power of two */
    Py_ssize_t used;
} Table;

static PyTypeObject TableType;

static inline const char *packed_of(const Block *b) { return b->data + b->key_len; }

static void release(Block *b) {
    if (--b->refs == 0)
        PyObject_Free(b);
}

/* The bytes hash (cached in the object), so a key's slot is where a dict puts it. */
static int key_parts(PyObject *key, Py_hash_t *hash, const char **data, Py_ssize_t *len) {
    if (!PyBytes_Check(key)) {
        PyErr_Format(PyExc_TypeError, "keys are bytes, not %.100s", Py_TYPE(key)->tp_name);
        return -1;
    }
    *data = PyBytes_AS_STRING(key);
    *len = PyBytes_GET_SIZE(key);
    *hash = PyBytes_CheckExact(key) ? PyObject_Hash(key) : _Py_HashBytes(*data, *len);
    return 0;
}

/* The slot holding the key, or the empty slot where it would go. */
static Slot *probe(const Table *t, Py_hash_t hash, const char *key, Py_ssize_t len) {
    size_t i = (size_t)hash & t->mask;
    for (;;) {
        Slot *s = &t->slots[i];
        if (s->block == NULL)
            return s;
        if (s->hash == hash && s->block->key_len == (size_t)len
                && memcmp(s->block->data, key, (size_t)len) == 0)
            return s;
        i = (i + 1) & t->mask;
    }
}

static int resize(Table *t, size_t count) {
    Slot *fresh = PyMem_Calloc(count, sizeof(Slot));
    if (fresh == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    size_t mask = count - 1;
    for (size_t j = 0; t->slots != NULL && j <= t->mask; j++) {
        Slot s = t->slots[j];
        if (s.block == NULL)
            continue;
        size_t i = (size_t)s.hash & mask;
        while (fresh[i].block != NULL)
            i = (i + 1) & mask;
        fresh[i] = s;
    }
    PyMem_Free(t->slots);
    t->slots = fresh;
    t->mask = mask;
    return 0;
}

/* Empty the slot and move later slots of its run back, so every key stays
 * reachable from its home slot without tombstones. */
static void vacate(Table *t, Slot *hole) {
    size_t i = (size_t)(hole - t->slots);
    size_t j = i;
    for (;;) {
        j = (j + 1) & t->mask;
        Slot *s = &t->slots[j];
        if (s->block == NULL)
            break;
        size_t home = (size_t)s->hash & t->mask;
        /* s may move to i when its home is not cyclically within (i, j] */
        if (i <= j ? (home <= i || home > j) : (home <= i && home > j)) {
            t->slots[i] = *s;
            i = j;
        }
    }
    t->slots[i].block = NULL;
    t->slots[i].hash = 0;
    t->used--;
}

/* The value of a live string entry; None when expired; for a live typed entry
 * (a hash, list...), None when ``strict`` is 0 (MGET's answer), else WrongType. */
static PyObject *value_of(const Block *b, long long now_ms, int strict) {
    const unsigned char *p = (const unsigned char *)packed_of(b);
    if (p[0] == 0)
        return PyBytes_FromStringAndSize((const char *)p + COMPACT_BYTES,
                                         b->packed_len - COMPACT_BYTES);
    uint64_t deadline = 0;
    for (int k = 7; k >= 0; k--)
        deadline = (deadline << 8) | p[DEADLINE_AT + k];
    if (deadline != 0 && now_ms >= 0 && deadline <= (uint64_t)now_ms)
        Py_RETURN_NONE;
    if (p[0] >= TYPED) {
        if (!strict)
            Py_RETURN_NONE;
        PyErr_SetString(WrongType, "the key holds a value of another type");
        return NULL;
    }
    return PyBytes_FromStringAndSize((const char *)p + FULL_BYTES, b->packed_len - FULL_BYTES);
}

static PyObject *Table_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    if (PyTuple_GET_SIZE(args) != 0 || (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0)) {
        PyErr_SetString(PyExc_TypeError, "Table() takes no arguments");
        return NULL;
    }
    Table *t = (Table *)type->tp_alloc(type, 0);
    if (t == NULL)
        return NULL;
    if (resize(t, MIN_SLOTS) < 0) {
        Py_DECREF(t);
        return NULL;
    }
    return (PyObject *)t;
}

static void drop_all(Table *t) {
    for (size_t j = 0; t->slots != NULL && j <= t->mask; j++)
        if (t->slots[j].block != NULL)
            release(t->slots[j].block);
}

static void Table_dealloc(Table *t) {
    drop_all(t);
    PyMem_Free(t->slots);
    Py_TYPE(t)->tp_free((PyObject *)t);
}

static Py_ssize_t Table_len(Table *t) { return t->used; }

static int put(Table *t, PyObject *key, PyObject *packed) {
    Py_hash_t hash;
    const char *k;
    Py_ssize_t klen;
    if (key_parts(key, &hash, &k, &klen) < 0)
        return -1;
    if (!PyBytes_Check(packed)) {
        PyErr_Format(PyExc_TypeError, "entries are bytes, not %.100s",
                     Py_TYPE(packed)->tp_name);
        return -1;
    }
    Py_ssize_t plen = PyBytes_GET_SIZE(packed);
    if (plen < 1 || (size_t)plen < (PyBytes_AS_STRING(packed)[0] == 0 ? COMPACT_BYTES : FULL_BYTES)) {
        PyErr_SetString(PyExc_ValueError, "an entry starts with a whole header");
        return -1;
    }
    if (klen > (Py_ssize_t)UINT32_MAX || plen > (Py_ssize_t)UINT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "key or entry longer than 4 GiB");
        return -1;
    }
    Slot *s = probe(t, hash, k, klen);
    Block *old = s->block;
    if (old != NULL && old->refs == 1 && old->packed_len == (uint32_t)plen) {
        /* the same key and size, in a block no copy shares: rewritten in place (a
         * SET over a value of the same length allocates and frees nothing) */
        memcpy(old->data + klen, PyBytes_AS_STRING(packed), (size_t)plen);
        return 0;
    }
    Block *b = PyObject_Malloc(sizeof(Block) + (size_t)klen + (size_t)plen);
    if (b == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    b->refs = 1;
    b->key_len = (uint32_t)klen;
    b->packed_len = (uint32_t)plen;
    memcpy(b->data, k, (size_t)klen);
    memcpy(b->data + klen, PyBytes_AS_STRING(packed), (size_t)plen);
    if (old != NULL) {
        release(old);
        s->block = b;
        return 0;
    }
    if ((size_t)(t->used + 1) * 4 > (t->mask + 1) * 3) {
        /* grow first, so that a failure leaves the table as it was */
        if (resize(t, (t->mask + 1) * 2) < 0) {
            PyObject_Free(b);
            return -1;
        }
        s = probe(t, hash, k, klen);
    }
    s->hash = hash;
    s->block = b;
    t->used++;
    return 0;
}

static int check_args(const char *name, Py_ssize_t given, Py_ssize_t wanted) {
    if (given == wanted)
        return 0;
    PyErr_Format(PyExc_TypeError, "%s() takes %zd arguments (%zd given)", name, wanted, given);
    return -1;
}

static PyObject *Table_put(Table *t, PyObject *const *args, Py_ssize_t n) {
    if (check_args("put", n, 2) < 0 || put(t, args[0], args[1]) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* The key's slot (its block NULL when the key is absent), or NULL with an error set. */
static Slot *lookup(const Table *t, PyObject *key) {
    Py_hash_t hash;
    const char *k;
    Py_ssize_t klen;
    if (key_parts(key, &hash, &k, &klen) < 0)
        return NULL;
    return probe(t, hash, k, klen);
}

static PyObject *Table_get(Table *t, PyObject *const *args, Py_ssize_t n) {
    Slot *s = check_args("get", n, 1) < 0 ? NULL : lookup(t, args[0]);
    if (s == NULL)
        return NULL;
    if (s->block == NULL)
        Py_RETURN_NONE;
    return PyBytes_FromStringAndSize(packed_of(s->block), s->block->packed_len);
}

static PyObject *Table_value(Table *t, PyObject *const *args, Py_ssize_t n) {
    if (check_args("value", n, 2) < 0)
        return NULL;
    long long now_ms = PyLong_AsLongLong(args[1]);
    Slot *s = (now_ms == -1 && PyErr_Occurred()) ? NULL : lookup(t, args[0]);
    if (s == NULL)
        return NULL;
    if (s->block == NULL)
        Py_RETURN_NONE;
    return value_of(s->block, now_ms, 1);
}

/* The blocks of ``run`` keys (NULL where absent), looked up in two passes (hash and
 * prefetch each slot; probe and prefetch each block), so the CPU waits on the run's
 * misses together rather than one after another. 0, or -1 with an error set. */
static int lookup_run(const Table *t, PyObject *const *keys, Py_ssize_t run,
                      const Block **found) {
    Py_hash_t hashes[RUN];
    const char *data[RUN];
    Py_ssize_t lens[RUN];
    for (Py_ssize_t r = 0; r < run; r++) {
        if (key_parts(keys[r], &hashes[r], &data[r], &lens[r]) < 0)
            return -1;
        __builtin_prefetch(&t->slots[(size_t)hashes[r] & t->mask]);
    }
    for (Py_ssize_t r = 0; r < run; r++) {
        found[r] = probe(t, hashes[r], data[r], lens[r])->block;
        if (found[r] != NULL)
            __builtin_prefetch(found[r]);
    }
    return 0;
}

/* value() of each key (MGET, a pipeline's GETs), None for a key holding no string;
 * the keys are looked up in runs (lookup_run). */
static PyObject *Table_values(Table *t, PyObject *const *args, Py_ssize_t n) {
    if (check_args("values", n, 2) < 0)
        return NULL;
    PyObject *keys = PySequence_Fast(args[0], "keys must be a sequence");
    if (keys == NULL)
        return NULL;
    long long now_ms = PyLong_AsLongLong(args[1]);
    Py_ssize_t count = PySequence_Fast_GET_SIZE(keys);
    PyObject *out = (now_ms == -1 && PyErr_Occurred()) ? NULL : PyList_New(count);
    if (out == NULL) {
        Py_DECREF(keys);
        return NULL;
    }
    PyObject **items = PySequence_Fast_ITEMS(keys);
    const Block *found[RUN];
    for (Py_ssize_t start = 0; start < count; start += RUN) {
        Py_ssize_t run = count - start < RUN ? count - start : RUN;
        if (lookup_run(t, items + start, run, found) < 0)
            goto fail;
        for (Py_ssize_t r = 0; r < run; r++) {
            PyObject *value = found[r] == NULL ? Py_NewRef(Py_None) : value_of(found[r], now_ms, 0);
            if (value == NULL)
                goto fail;
            PyList_SET_ITEM(out, start + r, value);
        }
    }
    Py_DECREF(keys);
    return out;
fail:
    Py_DECREF(keys);
    Py_DECREF(out);
    return NULL;
}

/* Bring each key's slot and block into the CPU's cache, in runs (lookup_run): a batch
 * of writes calls it before it reads its keys one by one. */
static PyObject *Table_prefetch(Table *t, PyObject *const *args, Py_ssize_t n) {
    if (check_args("prefetch", n, 1) < 0)
        return NULL;
    PyObject *keys = PySequence_Fast(args[0], "keys must be a sequence");
    if (keys == NULL)
        return NULL;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(keys);
    PyObject **items = PySequence_Fast_ITEMS(keys);
    const Block *found[RUN];
    for (Py_ssize_t start = 0; start < count; start += RUN) {
        Py_ssize_t run = count - start < RUN ? count - start : RUN;
        if (lookup_run(t, items + start, run, found) < 0) {
            Py_DECREF(keys);
            return NULL;
        }
    }
    Py_DECREF(keys);
    Py_RETURN_NONE;
}

static PyObject *Table_pop(Table *t, PyObject *const *args, Py_ssize_t n) {
    Slot *s = check_args("pop", n, 1) < 0 ? NULL : lookup(t, args[0]);
    if (s == NULL)
        return NULL;
    if (s->block == NULL)
        Py_RETURN_NONE;
    Block *b = s->block;
    PyObject *packed = PyBytes_FromStringAndSize(packed_of(b), b->packed_len);
    if (packed == NULL)
        return NULL;
    vacate(t, s);
    release(b);
    return packed;
}

static PyObject *Table_update(Table *t, PyObject *const *args, Py_ssize_t n) {
    if (check_args("update", n, 1) < 0)
        return NULL;
    PyObject *it = PyObject_GetIter(args[0]);
    if (it == NULL)
        return NULL;
    PyObject *item;
    while ((item = PyIter_Next(it)) != NULL) {
        int ok = PyTuple_Check(item) && PyTuple_GET_SIZE(item) == 2;
        if (!ok)
            PyErr_SetString(PyExc_TypeError, "update() takes (key, entry) pairs");
        else
            ok = put(t, PyTuple_GET_ITEM(item, 0), PyTuple_GET_ITEM(item, 1)) == 0;
        Py_DECREF(item);
        if (!ok) {
            Py_DECREF(it);
            return NULL;
        }
    }
    Py_DECREF(it);
    if (PyErr_Occurred())
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *Table_items(Table *t, PyObject *Py_UNUSED(ignored)) {
    PyObject *out = PyList_New(t->used);
    if (out == NULL)
        return NULL;
    Py_ssize_t at = 0;
    for (size_t j = 0; j <= t->mask; j++) {
        const Block *b = t->slots[j].block;
        if (b == NULL)
            continue;
        PyObject *pair = Py_BuildValue("(y#y#)", b->data, (Py_ssize_t)b->key_len,
                                       packed_of(b), (Py_ssize_t)b->packed_len);
        if (pair == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, at++, pair);
    }
    return out;
}

static PyObject *Table_copy(Table *t, PyObject *Py_UNUSED(ignored)) {
    Table *c = (Table *)TableType.tp_alloc(&TableType, 0);
    if (c == NULL)
        return NULL;
    c->slots = PyMem_Malloc((t->mask + 1) * sizeof(Slot));
    if (c->slots == NULL) {
        Py_DECREF(c);
        return PyErr_NoMemory();
    }
    memcpy(c->slots, t->slots, (t->mask + 1) * sizeof(Slot));
    c->mask = t->mask;
    c->used = t->used;
    for (size_t j = 0; j <= c->mask; j++)
        if (c->slots[j].block != NULL)
            c->slots[j].block->refs++;
    return (PyObject *)c;
}

static PyObject *Table_clear(Table *t, PyObject *Py_UNUSED(ignored)) {
    Slot *old = t->slots;
    size_t old_mask = t->mask;
    t->slots = NULL;
    if (resize(t, MIN_SLOTS) < 0) {
        t->slots = old;
        return NULL;
    }
    for (size_t j = 0; j <= old_mask; j++)
        if (old[j].block != NULL)
            release(old[j].block);
    PyMem_Free(old);
    t->used = 0;
    Py_RETURN_NONE;
}

static PyMethodDef Table_methods[] = {
    {"get", (PyCFunction)(void (*)(void))Table_get, METH_FASTCALL,
     "get(key): the packed entry, or None"},
    {"value", (PyCFunction)(void (*)(void))Table_value, METH_FASTCALL,
     "value(key, now_ms): the value alone, or None when absent or expired"},
    {"values", (PyCFunction)(void (*)(void))Table_values, METH_FASTCALL,
     "values(keys, now_ms): value() of each key"},
    {"prefetch", (PyCFunction)(void (*)(void))Table_prefetch, METH_FASTCALL,
     "prefetch(keys): bring the keys' memory into the CPU's cache"},
    {"put", (PyCFunction)(void (*)(void))Table_put, METH_FASTCALL,
     "put(key, packed): store the packed entry under key"},
    {"pop", (PyCFunction)(void (*)(void))Table_pop, METH_FASTCALL,
     "pop(key): remove key; its packed entry, or None"},
    {"update", (PyCFunction)(void (*)(void))Table_update, METH_FASTCALL,
     "update(pairs): put() each (key, packed) pair"},
    {"items", (PyCFunction)Table_items, METH_NOARGS,
     "items(): a list of (key, packed) pairs in no order"},
    {"copy", (PyCFunction)Table_copy, METH_NOARGS,
     "copy(): a table with the same entries, sharing their memory"},
    {"clear", (PyCFunction)Table_clear, METH_NOARGS, "clear(): remove every entry"},
    {NULL, NULL, 0, NULL},
};

static PySequenceMethods Table_as_sequence = {.sq_length = (lenfunc)Table_len};

static PyTypeObject TableType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "raftkv.core.table.Table",
    .tp_doc = "Map of bytes key -> packed entry (see table.py).",
    .tp_basicsize = sizeof(Table),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = Table_new,
    .tp_dealloc = (destructor)Table_dealloc,
    .tp_as_sequence = &Table_as_sequence,
    .tp_methods = Table_methods,
};

static struct PyModuleDef table_module = {
    PyModuleDef_HEAD_INIT, "raftkv.core.table",
    "The keyspace's map of key -> packed entry (table.py documents it).", -1, NULL,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_table(void) {
    if (PyType_Ready(&TableType) < 0)
        return NULL;
    PyObject *errors = PyImport_ImportModule("raftkv.errors");
    if (errors == NULL)
        return NULL;
    WrongType = PyObject_GetAttrString(errors, "WrongType");
    Py_DECREF(errors);
    if (WrongType == NULL)
        return NULL;
    PyObject *m = PyModule_Create(&table_module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "Table", (PyObject *)&TableType) < 0
            || PyModule_AddIntConstant(m, "COMPACT_BYTES", COMPACT_BYTES) < 0
            || PyModule_AddIntConstant(m, "FULL_BYTES", FULL_BYTES) < 0
            || PyModule_AddIntConstant(m, "DEADLINE_AT", DEADLINE_AT) < 0
            || PyModule_AddIntConstant(m, "TYPED", TYPED) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
