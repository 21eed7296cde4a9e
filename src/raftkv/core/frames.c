/* raftkv.core.frames: length-prefixed frames, in C.
 *
 * frames.py is the same module in plain Python and says what it does; this file is
 * what runs. record() encodes every typed write for the log, join() a transaction's ops.
 *
 * The form: each string after its length as four little-endian bytes.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* n's low width bytes at at, little-endian; what follows them. */
static unsigned char *put_le(unsigned char *at, uint64_t n, int width) {
    for (int i = 0; i < width; i++)
        at[i] = (unsigned char)((n >> (8 * i)) & 0xff);
    return at + width;
}

/* The frames' size (0 and an exception when they are not a tuple or list of bytes). */
static Py_ssize_t frames_size(PyObject *strings) {
    if (!PyTuple_Check(strings) && !PyList_Check(strings)) {
        PyErr_SetString(PyExc_TypeError, "frames.join takes a tuple or a list");
        return 0;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(strings);
    PyObject **items = PySequence_Fast_ITEMS(strings);
    Py_ssize_t total = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!PyBytes_Check(items[i])) {
            PyErr_SetString(PyExc_TypeError, "frames are bytes");
            return 0;
        }
        Py_ssize_t len = PyBytes_GET_SIZE(items[i]);
        if ((size_t)len > UINT32_MAX) {
            PyErr_SetString(PyExc_OverflowError, "a frame is longer than 4 GiB");
            return 0;
        }
        total += 4 + len;
    }
    return total;
}

static unsigned char *put_frames(unsigned char *at, PyObject *strings) {
    Py_ssize_t n = PySequence_Fast_GET_SIZE(strings);
    PyObject **items = PySequence_Fast_ITEMS(strings);
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t len = PyBytes_GET_SIZE(items[i]);
        at = put_le(at, (uint64_t)len, 4);
        memcpy(at, PyBytes_AS_STRING(items[i]), len);
        at += len;
    }
    return at;
}

static PyObject *frames_join(PyObject *self, PyObject *strings) {
    Py_ssize_t total = frames_size(strings);
    if (PyErr_Occurred())
        return NULL;
    PyObject *out = PyBytes_FromStringAndSize(NULL, total);
    if (out == NULL)
        return NULL;
    put_frames((unsigned char *)PyBytes_AS_STRING(out), strings);
    return out;
}

static PyObject *frames_record(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4 || !PyBytes_Check(args[0]) || !PyBytes_Check(args[1])
            || !PyLong_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError,
                        "frames.record takes head (bytes), rid (bytes), stamp (int), strings");
        return NULL;
    }
    PyObject *head = args[0], *rid = args[1], *strings = args[3];
    long long stamp = PyLong_AsLongLong(args[2]);
    if (stamp == -1 && PyErr_Occurred())
        return NULL;
    Py_ssize_t body = frames_size(strings);
    if (PyErr_Occurred())
        return NULL;
    Py_ssize_t head_len = PyBytes_GET_SIZE(head), rid_len = PyBytes_GET_SIZE(rid);
    Py_ssize_t count = PySequence_Fast_GET_SIZE(strings);
    if ((size_t)rid_len > UINT32_MAX || (size_t)count > UINT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "a record's rid or count passes 4 GiB");
        return NULL;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, head_len + 4 + rid_len + 12 + body);
    if (out == NULL)
        return NULL;
    unsigned char *at = (unsigned char *)PyBytes_AS_STRING(out);
    memcpy(at, PyBytes_AS_STRING(head), head_len);
    at = put_le(at + head_len, (uint64_t)rid_len, 4);
    memcpy(at, PyBytes_AS_STRING(rid), rid_len);
    at = put_le(at + rid_len, (uint64_t)count, 4);
    put_frames(put_le(at, (uint64_t)stamp, 8), strings);
    return out;
}

static PyMethodDef frames_methods[] = {
    {"join", (PyCFunction)frames_join, METH_O,
     "join(strings): the strings, each after its length as a little-endian u32"},
    {"record", (PyCFunction)(void (*)(void))frames_record, METH_FASTCALL,
     "record(head, rid, stamp, strings): head, rid as a frame, the strings' count "
     "(u32) and stamp (i64), then the strings as frames"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef frames_module = {
    PyModuleDef_HEAD_INIT, "raftkv.core.frames",
    "Length-prefixed frames (frames.py documents them).", -1,
    frames_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_frames(void) { return PyModule_Create(&frames_module); }
