/* raftkv.core.packed: the packed form of a small hash, list or sorted set, in C.
 *
 * packed.py is the same module in plain Python and says what each function does;
 * this file is what runs. A packed container is unpacked on its first change and
 * packed again when the keyspace stores it, so both run on every write to a small
 * container, and find() on every read of one field.
 *
 * The form: each string as one length byte and its bytes, back to back.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

static int check_limit(Py_ssize_t max_len) {
    if (max_len < 0 || max_len > 255) {
        PyErr_SetString(PyExc_ValueError,
                        "max_len must be within 0..255: a length takes one byte");
        return -1;
    }
    return 0;
}

static int parse_limits(PyObject *const *args, Py_ssize_t nargs, const char *name,
                        Py_ssize_t *max_count, Py_ssize_t *max_len) {
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "%s() takes 3 arguments", name);
        return -1;
    }
    *max_count = PyLong_AsSsize_t(args[1]);
    if (*max_count == -1 && PyErr_Occurred())
        return -1;
    *max_len = PyLong_AsSsize_t(args[2]);
    if (*max_len == -1 && PyErr_Occurred())
        return -1;
    return check_limit(*max_len);
}

/* Packs items[0..n) (bytes objects, checked here) into a new bytes object; Py_None
 * (a new reference) when one is longer than max_len. */
static PyObject *pack_items(PyObject **items, Py_ssize_t n, Py_ssize_t max_len) {
    Py_ssize_t total = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!PyBytes_Check(items[i])) {
            PyErr_SetString(PyExc_TypeError, "packed strings must be bytes");
            return NULL;
        }
        Py_ssize_t len = PyBytes_GET_SIZE(items[i]);
        if (len > max_len)
            Py_RETURN_NONE;
        total += 1 + len;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, total);
    if (out == NULL)
        return NULL;
    unsigned char *at = (unsigned char *)PyBytes_AS_STRING(out);
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t len = PyBytes_GET_SIZE(items[i]);
        *at++ = (unsigned char)len;
        memcpy(at, PyBytes_AS_STRING(items[i]), len);
        at += len;
    }
    return out;
}

static PyObject *packed_pack(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    Py_ssize_t max_count, max_len;
    if (parse_limits(args, nargs, "pack", &max_count, &max_len) < 0)
        return NULL;
    Py_ssize_t n = PyObject_Size(args[0]);
    if (n < 0)
        return NULL;
    if (n > max_count)
        Py_RETURN_NONE;
    PyObject *seq = PySequence_Fast(args[0], "pack takes a list, tuple or deque");
    if (seq == NULL)
        return NULL;
    PyObject *out = pack_items(PySequence_Fast_ITEMS(seq), PySequence_Fast_GET_SIZE(seq),
                               max_len);
    Py_DECREF(seq);
    return out;
}

static PyObject *packed_pack_pairs(PyObject *module, PyObject *const *args,
                                   Py_ssize_t nargs) {
    Py_ssize_t max_count, max_len;
    if (parse_limits(args, nargs, "pack_pairs", &max_count, &max_len) < 0)
        return NULL;
    PyObject *fields = args[0];
    if (!PyDict_Check(fields)) {
        PyErr_SetString(PyExc_TypeError, "pack_pairs takes a dict");
        return NULL;
    }
    Py_ssize_t n = PyDict_GET_SIZE(fields);
    if (n > max_count)
        Py_RETURN_NONE;
    PyObject *stack[2 * 128];
    PyObject **items = n <= 128 ? stack : PyMem_Malloc(2 * n * sizeof(PyObject *));
    if (items == NULL)
        return PyErr_NoMemory();
    Py_ssize_t pos = 0, i = 0;
    PyObject *field, *value;
    while (PyDict_Next(fields, &pos, &field, &value)) {
        items[i++] = field; /* borrowed: the dict holds them for the call */
        items[i++] = value;
    }
    PyObject *out = pack_items(items, i, max_len);
    if (items != stack)
        PyMem_Free(items);
    return out;
}

/* Counts the strings of a packed blob; -1 with ValueError when one runs past its end. */
static Py_ssize_t count_strings(const unsigned char *at, const unsigned char *end) {
    Py_ssize_t n = 0;
    while (at < end) {
        at += 1 + *at;
        n++;
    }
    if (at != end) {
        PyErr_SetString(PyExc_ValueError, "a packed string runs past the end");
        return -1;
    }
    return n;
}

/* Checks packed pairs: every string inside the blob, and an even number of them. */
static int check_pairs(const unsigned char *at, const unsigned char *end) {
    Py_ssize_t n = count_strings(at, end);
    if (n < 0)
        return -1;
    if (n % 2) {
        PyErr_SetString(PyExc_ValueError, "packed pairs hold an odd number of strings");
        return -1;
    }
    return 0;
}

static int blob_bounds(PyObject *blob, const unsigned char **start,
                       const unsigned char **end, const char *name) {
    if (!PyBytes_Check(blob)) {
        PyErr_Format(PyExc_TypeError, "%s takes bytes", name);
        return -1;
    }
    *start = (const unsigned char *)PyBytes_AS_STRING(blob);
    *end = *start + PyBytes_GET_SIZE(blob);
    return 0;
}

static PyObject *packed_unpack(PyObject *module, PyObject *blob) {
    const unsigned char *at, *end;
    if (blob_bounds(blob, &at, &end, "unpack") < 0)
        return NULL;
    Py_ssize_t n = count_strings(at, end);
    if (n < 0)
        return NULL;
    PyObject *out = PyList_New(n);
    if (out == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *string = PyBytes_FromStringAndSize((const char *)at + 1, *at);
        if (string == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, i, string);
        at += 1 + *at;
    }
    return out;
}

static PyObject *packed_count(PyObject *module, PyObject *blob) {
    const unsigned char *at, *end;
    if (blob_bounds(blob, &at, &end, "count") < 0)
        return NULL;
    Py_ssize_t n = count_strings(at, end);
    return n < 0 ? NULL : PyLong_FromSsize_t(n);
}

static PyObject *packed_unpack_pairs(PyObject *module, PyObject *blob) {
    const unsigned char *at, *end;
    if (blob_bounds(blob, &at, &end, "unpack_pairs") < 0)
        return NULL;
    if (check_pairs(at, end) < 0)
        return NULL;
    PyObject *out = PyDict_New();
    if (out == NULL)
        return NULL;
    while (at < end) {
        PyObject *field = PyBytes_FromStringAndSize((const char *)at + 1, *at);
        at += 1 + *at;
        PyObject *value = field == NULL ? NULL
                          : PyBytes_FromStringAndSize((const char *)at + 1, *at);
        at += 1 + *at;
        int failed = value == NULL || PyDict_SetItem(out, field, value) < 0;
        Py_XDECREF(field);
        Py_XDECREF(value);
        if (failed) {
            Py_DECREF(out);
            return NULL;
        }
    }
    return out;
}

/* The field's length byte in packed pairs, NULL when absent. */
static const unsigned char *find_pair(const unsigned char *at, const unsigned char *end,
                                      const char *want, Py_ssize_t want_len) {
    while (at < end) {
        const unsigned char *value = at + 1 + *at;
        if (*at == want_len && memcmp(at + 1, want, want_len) == 0)
            return at;
        at = value + 1 + *value;
    }
    return NULL;
}

static PyObject *packed_find(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "find() takes 2 arguments");
        return NULL;
    }
    const unsigned char *at, *end;
    if (blob_bounds(args[0], &at, &end, "find") < 0)
        return NULL;
    if (!PyBytes_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "find takes bytes");
        return NULL;
    }
    if (check_pairs(at, end) < 0)
        return NULL;
    const unsigned char *field = find_pair(at, end, PyBytes_AS_STRING(args[1]),
                                           PyBytes_GET_SIZE(args[1]));
    if (field == NULL)
        Py_RETURN_NONE;
    const unsigned char *value = field + 1 + *field;
    return PyBytes_FromStringAndSize((const char *)value + 1, *value);
}

/* A new bytes object: head[0..head_len) + the strings (each after its length byte)
 * + tail[0..tail_len). */
static PyObject *splice(const unsigned char *head, Py_ssize_t head_len, PyObject *a,
                        PyObject *b, const unsigned char *tail, Py_ssize_t tail_len) {
    Py_ssize_t total = head_len + tail_len;
    PyObject *strings[2] = {a, b};
    for (int i = 0; i < 2; i++)
        if (strings[i] != NULL)
            total += 1 + PyBytes_GET_SIZE(strings[i]);
    PyObject *out = PyBytes_FromStringAndSize(NULL, total);
    if (out == NULL)
        return NULL;
    unsigned char *to = (unsigned char *)PyBytes_AS_STRING(out);
    if (head_len)
        memcpy(to, head, head_len);
    to += head_len;
    for (int i = 0; i < 2; i++) {
        if (strings[i] == NULL)
            continue;
        Py_ssize_t len = PyBytes_GET_SIZE(strings[i]);
        *to++ = (unsigned char)len;
        memcpy(to, PyBytes_AS_STRING(strings[i]), len);
        to += len;
    }
    if (tail_len)
        memcpy(to, tail, tail_len);
    return out;
}

static int short_bytes(PyObject *string) {
    if (!PyBytes_Check(string)) {
        PyErr_SetString(PyExc_TypeError, "packed strings must be bytes");
        return -1;
    }
    if (PyBytes_GET_SIZE(string) > 255) {
        PyErr_SetString(PyExc_ValueError, "a packed string is at most 255 bytes");
        return -1;
    }
    return 0;
}

static PyObject *packed_push(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    const unsigned char *start, *end;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "push() takes 3 arguments");
        return NULL;
    }
    if (blob_bounds(args[0], &start, &end, "push") < 0 || short_bytes(args[1]) < 0)
        return NULL;
    if (count_strings(start, end) < 0)
        return NULL;
    int left = PyObject_IsTrue(args[2]);
    if (left < 0)
        return NULL;
    if (left)
        return splice(NULL, 0, args[1], NULL, start, end - start);
    return splice(start, end - start, args[1], NULL, NULL, 0);
}

static PyObject *packed_pop(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    const unsigned char *start, *end;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "pop() takes 2 arguments");
        return NULL;
    }
    if (blob_bounds(args[0], &start, &end, "pop") < 0)
        return NULL;
    int left = PyObject_IsTrue(args[1]);
    if (left < 0)
        return NULL;
    Py_ssize_t n = count_strings(start, end);
    if (n < 0)
        return NULL;
    if (n == 0) {
        PyErr_SetString(PyExc_IndexError, "pop from nothing packed");
        return NULL;
    }
    const unsigned char *at = start;
    if (!left)
        for (Py_ssize_t i = 0; i < n - 1; i++)
            at += 1 + *at;
    const unsigned char *after = at + 1 + *at;
    PyObject *item = PyBytes_FromStringAndSize((const char *)at + 1, *at);
    PyObject *rest = left ? PyBytes_FromStringAndSize((const char *)after, end - after)
                          : PyBytes_FromStringAndSize((const char *)start, at - start);
    if (item == NULL || rest == NULL) {
        Py_XDECREF(item);
        Py_XDECREF(rest);
        return NULL;
    }
    return Py_BuildValue("(NN)", item, rest);
}

static PyObject *pair_edit(PyObject *const *args, Py_ssize_t nargs, Py_ssize_t want_args,
                           const char *name) {
    const unsigned char *start, *end;
    if (nargs != want_args) {
        PyErr_Format(PyExc_TypeError, "%s() takes %zd arguments", name, want_args);
        return NULL;
    }
    if (blob_bounds(args[0], &start, &end, name) < 0 || short_bytes(args[1]) < 0)
        return NULL;
    PyObject *value = want_args == 3 ? args[2] : NULL;
    if (value != NULL && short_bytes(value) < 0)
        return NULL;
    if (check_pairs(start, end) < 0)
        return NULL;
    const unsigned char *field = find_pair(start, end, PyBytes_AS_STRING(args[1]),
                                           PyBytes_GET_SIZE(args[1]));
    PyObject *old, *blob;
    if (field == NULL) {
        old = Py_NewRef(Py_None);
        blob = value == NULL ? Py_NewRef(args[0])
                             : splice(start, end - start, args[1], value, NULL, 0);
    } else {
        const unsigned char *at = field + 1 + *field, *after = at + 1 + *at;
        old = PyBytes_FromStringAndSize((const char *)at + 1, *at);
        blob = value == NULL ? splice(start, field - start, NULL, NULL, after, end - after)
                             : splice(start, at - start, value, NULL, after, end - after);
    }
    if (old == NULL || blob == NULL) {
        Py_XDECREF(old);
        Py_XDECREF(blob);
        return NULL;
    }
    return Py_BuildValue("(NN)", blob, old);
}

static PyObject *packed_put_pair(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    return pair_edit(args, nargs, 3, "put_pair");
}

static PyObject *packed_drop_pair(PyObject *module, PyObject *const *args,
                                  Py_ssize_t nargs) {
    return pair_edit(args, nargs, 2, "drop_pair");
}

static PyMethodDef packed_methods[] = {
    {"push", (PyCFunction)(void (*)(void))packed_push, METH_FASTCALL,
     "push(blob, item, left): the blob with item added at one end"},
    {"pop", (PyCFunction)(void (*)(void))packed_pop, METH_FASTCALL,
     "pop(blob, left): (the item at one end, the blob without it)"},
    {"put_pair", (PyCFunction)(void (*)(void))packed_put_pair, METH_FASTCALL,
     "put_pair(blob, field, value): (the new blob, the field's old value or None)"},
    {"drop_pair", (PyCFunction)(void (*)(void))packed_drop_pair, METH_FASTCALL,
     "drop_pair(blob, field): (the blob without field, its old value or None)"},
    {"pack", (PyCFunction)(void (*)(void))packed_pack, METH_FASTCALL,
     "pack(strings, max_count, max_len): the packed bytes, or None past the limits"},
    {"pack_pairs", (PyCFunction)(void (*)(void))packed_pack_pairs, METH_FASTCALL,
     "pack_pairs(fields, max_count, max_len): a dict's pairs packed, or None"},
    {"unpack", (PyCFunction)packed_unpack, METH_O, "unpack(blob): the list of strings"},
    {"count", (PyCFunction)packed_count, METH_O, "count(blob): how many strings it packs"},
    {"unpack_pairs", (PyCFunction)packed_unpack_pairs, METH_O,
     "unpack_pairs(blob): the dict of pairs"},
    {"find", (PyCFunction)(void (*)(void))packed_find, METH_FASTCALL,
     "find(blob, field): the value after field in packed pairs, or None"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef packed_module = {
    PyModuleDef_HEAD_INIT, "raftkv.core.packed",
    "The packed form of a small hash or list (packed.py documents it).", -1,
    packed_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_packed(void) { return PyModule_Create(&packed_module); }
