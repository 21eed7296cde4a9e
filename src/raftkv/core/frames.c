/* raftkv.core.frames: length-prefixed frames, in C.
 *
 * frames.py is the same module in plain Python and says what it does; this file is
 * what runs. join() encodes every typed write's arguments for the log.
 *
 * The form: each string after its length as four little-endian bytes.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

static PyObject *frames_join(PyObject *self, PyObject *strings) {
    PyObject *seq;
    if (PyTuple_Check(strings) || PyList_Check(strings)) {
        seq = strings;
    } else {
        PyErr_SetString(PyExc_TypeError, "frames.join takes a tuple or a list");
        return NULL;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject **items = PySequence_Fast_ITEMS(seq);
    Py_ssize_t total = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!PyBytes_Check(items[i])) {
            PyErr_SetString(PyExc_TypeError, "frames are bytes");
            return NULL;
        }
        Py_ssize_t len = PyBytes_GET_SIZE(items[i]);
        if ((size_t)len > UINT32_MAX) {
            PyErr_SetString(PyExc_OverflowError, "a frame is longer than 4 GiB");
            return NULL;
        }
        total += 4 + len;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, total);
    if (out == NULL)
        return NULL;
    unsigned char *at = (unsigned char *)PyBytes_AS_STRING(out);
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t len = PyBytes_GET_SIZE(items[i]);
        at[0] = (unsigned char)(len & 0xff);
        at[1] = (unsigned char)((len >> 8) & 0xff);
        at[2] = (unsigned char)((len >> 16) & 0xff);
        at[3] = (unsigned char)((len >> 24) & 0xff);
        memcpy(at + 4, PyBytes_AS_STRING(items[i]), len);
        at += 4 + len;
    }
    return out;
}

static PyMethodDef frames_methods[] = {
    {"join", (PyCFunction)frames_join, METH_O,
     "join(strings): the strings, each after its length as a little-endian u32"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef frames_module = {
    PyModuleDef_HEAD_INIT, "raftkv.core.frames",
    "Length-prefixed frames (frames.py documents them).", -1,
    frames_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_frames(void) { return PyModule_Create(&frames_module); }
