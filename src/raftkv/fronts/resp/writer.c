/* raftkv.fronts.resp.writer: bulk strings, arrays of them and integers, in C.
 *
 * writer.py is the same module in plain Python and says what it does; this file is
 * what runs.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

/* The decimal digits of n written to end at the end of a buffer of 20 or more bytes;
 * their count. */
static int digits(unsigned long long n, char *end) {
    int count = 0;
    do {
        *--end = (char)('0' + n % 10);
        n /= 10;
        count++;
    } while (n > 0);
    return count;
}

/* Write "<mark><n>\r\n" at at; the bytes written. */
static Py_ssize_t header(char *at, char mark, Py_ssize_t n) {
    at[0] = mark;
    if (n < 10) {  /* (most items of a reply are short) */
        at[1] = (char)('0' + n);
        at[2] = '\r';
        at[3] = '\n';
        return 4;
    }
    char buf[24];
    int count = digits((unsigned long long)n, buf + sizeof buf);
    memcpy(at + 1, buf + sizeof buf - count, count);
    at[1 + count] = '\r';
    at[2 + count] = '\n';
    return 3 + count;
}

static Py_ssize_t header_size(Py_ssize_t n) {
    if (n < 10)
        return 4;
    char buf[24];
    return 3 + digits((unsigned long long)n, buf + sizeof buf);
}

static PyObject *writer_bulk(PyObject *self, PyObject *value) {
    const char *data;
    Py_ssize_t len;
    if (PyBytes_Check(value)) {
        data = PyBytes_AS_STRING(value);
        len = PyBytes_GET_SIZE(value);
    } else if (PyByteArray_Check(value)) {
        data = PyByteArray_AS_STRING(value);
        len = PyByteArray_GET_SIZE(value);
    } else {
        PyErr_SetString(PyExc_TypeError, "a bulk string is bytes");
        return NULL;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, header_size(len) + len + 2);
    if (out == NULL)
        return NULL;
    char *at = PyBytes_AS_STRING(out);
    at += header(at, '$', len);
    memcpy(at, data, len);
    at[len] = '\r';
    at[len + 1] = '\n';
    return out;
}

static PyObject *writer_array(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyBytes_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "writer.array takes items and nil (bytes)");
        return NULL;
    }
    PyObject *items = args[0], *nil = args[1];
    if (!PyTuple_Check(items) && !PyList_Check(items)) {
        PyErr_SetString(PyExc_TypeError, "writer.array takes a tuple or a list");
        return NULL;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(items);
    PyObject **item = PySequence_Fast_ITEMS(items);
    Py_ssize_t nil_len = PyBytes_GET_SIZE(nil), total = header_size(n);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (item[i] == Py_None) {
            total += nil_len;
        } else if (PyBytes_Check(item[i])) {
            Py_ssize_t len = PyBytes_GET_SIZE(item[i]);
            total += header_size(len) + len + 2;
        } else {
            Py_RETURN_NONE;  /* not ours to encode: the caller does it */
        }
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, total);
    if (out == NULL)
        return NULL;
    char *at = PyBytes_AS_STRING(out);
    at += header(at, '*', n);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (item[i] == Py_None) {
            memcpy(at, PyBytes_AS_STRING(nil), nil_len);
            at += nil_len;
            continue;
        }
        Py_ssize_t len = PyBytes_GET_SIZE(item[i]);
        at += header(at, '$', len);
        memcpy(at, PyBytes_AS_STRING(item[i]), len);
        at[len] = '\r';
        at[len + 1] = '\n';
        at += len + 2;
    }
    return out;
}

static PyObject *writer_integer(PyObject *self, PyObject *n) {
    if (!PyLong_Check(n)) {
        PyErr_SetString(PyExc_TypeError, "an integer reply is an int");
        return NULL;
    }
    int overflow = 0;
    long long value = PyLong_AsLongLongAndOverflow(n, &overflow);
    if (overflow) {  /* (past 64 bits: Python writes the digits) */
        PyObject *text = PyObject_Str(n);
        if (text == NULL)
            return NULL;
        const char *digits = PyUnicode_AsUTF8(text);
        PyObject *out = digits == NULL ? NULL : PyBytes_FromFormat(":%s\r\n", digits);
        Py_DECREF(text);
        return out;
    }
    if (value == -1 && PyErr_Occurred())
        return NULL;
    char buf[32];
    char *end = buf + sizeof buf;
    unsigned long long magnitude = value < 0 ? 0ULL - (unsigned long long)value
                                             : (unsigned long long)value;
    end[-2] = '\r';
    end[-1] = '\n';
    char *at = end - 2 - digits(magnitude, end - 2);
    if (value < 0)
        *--at = '-';
    *--at = ':';
    return PyBytes_FromStringAndSize(at, end - at);
}

static PyMethodDef writer_methods[] = {
    {"bulk", (PyCFunction)writer_bulk, METH_O, "bulk(value): one bulk string"},
    {"array", (PyCFunction)(void (*)(void))writer_array, METH_FASTCALL,
     "array(items, nil): an array of bulk strings, None items as nil; None when an "
     "item is neither bytes nor None"},
    {"integer", (PyCFunction)writer_integer, METH_O, "integer(n): an integer reply"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef writer_module = {
    PyModuleDef_HEAD_INIT, "raftkv.fronts.resp.writer",
    "RESP replies: bulk strings, arrays of them, integers (writer.py documents them).", -1,
    writer_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_writer(void) { return PyModule_Create(&writer_module); }
