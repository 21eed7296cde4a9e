/* raftkv.core.splitmix: a typed op's random stream (splitmix64), in C.
 *
 * splitmix.py is the same module in plain Python and says what each function does;
 * this file is what runs. Why: in Python each step's products pass 64 bits, so a
 * draw made big integers, and one SPOP spent 6,500 instructions drawing its member.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

#define GOLDEN 0x9E3779B97F4A7C15ULL

static PyObject *splitmix_start(PyObject *self, PyObject *seed) {
    if (!PyLong_Check(seed)) {
        PyErr_SetString(PyExc_TypeError, "a seed is an integer");
        return NULL;
    }
    uint64_t bits = PyLong_AsUnsignedLongLongMask(seed);  /* (seed modulo 2**64) */
    if (bits == (uint64_t)-1 && PyErr_Occurred())
        return NULL;
    return PyLong_FromUnsignedLongLong(bits * GOLDEN + 1);
}

static PyObject *splitmix_draw(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "draw takes a state and a bound");
        return NULL;
    }
    if (!PyLong_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "a state is an integer");
        return NULL;
    }
    uint64_t state = PyLong_AsUnsignedLongLongMask(args[0]);
    if (state == (uint64_t)-1 && PyErr_Occurred())
        return NULL;
    state += GOLDEN;
    uint64_t z = state;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    PyObject *n = args[1], *value = NULL;
    uint64_t bound = 0;
    if (PyLong_CheckExact(n)) {
        bound = PyLong_AsUnsignedLongLong(n);
        if (bound == (uint64_t)-1 && PyErr_Occurred()) {
            PyErr_Clear();  /* (negative, or past 64 bits: Python's % below) */
            bound = 0;
        }
    }
    if (bound > 0) {
        value = PyLong_FromUnsignedLongLong(z % bound);
    } else {
        PyObject *drawn = PyLong_FromUnsignedLongLong(z);
        if (drawn == NULL)
            return NULL;
        value = PyNumber_Remainder(drawn, n);
        Py_DECREF(drawn);
    }
    if (value == NULL)
        return NULL;
    PyObject *next = PyLong_FromUnsignedLongLong(state);
    if (next == NULL) {
        Py_DECREF(value);
        return NULL;
    }
    PyObject *out = PyTuple_New(2);
    if (out == NULL) {
        Py_DECREF(next);
        Py_DECREF(value);
        return NULL;
    }
    PyTuple_SET_ITEM(out, 0, next);
    PyTuple_SET_ITEM(out, 1, value);
    return out;
}

static PyMethodDef splitmix_methods[] = {
    {"start", (PyCFunction)splitmix_start, METH_O,
     "start(seed): the state a stream seeded with seed starts from"},
    {"draw", (PyCFunction)(void (*)(void))splitmix_draw, METH_FASTCALL,
     "draw(state, n): the next state, and a number drawn at it modulo n"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef splitmix_module = {
    PyModuleDef_HEAD_INIT, "raftkv.core.splitmix",
    "A typed op's random stream (splitmix.py documents it).", -1,
    splitmix_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_splitmix(void) {
    PyObject *module = PyModule_Create(&splitmix_module);
    if (module != NULL &&
            PyModule_AddObject(module, "GOLDEN", PyLong_FromUnsignedLongLong(GOLDEN)) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
