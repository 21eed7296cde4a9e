/* raftkv.core.order: a sorted set's order keys, in C.
 *
 * order.py is the same module in plain Python and says what an order key is; this
 * file is what runs.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

static PyObject *order_key(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "order.key takes a score and a member");
        return NULL;
    }
    PyObject *member = args[1];
    if (!PyBytes_Check(member)) {
        PyErr_SetString(PyExc_TypeError, "a member is bytes");
        return NULL;
    }
    double score = PyFloat_AsDouble(args[0]);
    if (score == -1.0 && PyErr_Occurred())
        return NULL;
    score += 0.0;  /* -0.0 + 0.0 is 0.0 */
    uint64_t bits;
    memcpy(&bits, &score, sizeof bits);
    bits = (bits >> 63) ? ~bits : (bits | ((uint64_t)1 << 63));
    Py_ssize_t len = PyBytes_GET_SIZE(member);
    PyObject *out = PyBytes_FromStringAndSize(NULL, 8 + len);
    if (out == NULL)
        return NULL;
    unsigned char *at = (unsigned char *)PyBytes_AS_STRING(out);
    for (int i = 0; i < 8; i++)
        at[i] = (unsigned char)(bits >> (56 - 8 * i));
    memcpy(at + 8, PyBytes_AS_STRING(member), len);
    return out;
}

static PyMethodDef order_methods[] = {
    {"key", (PyCFunction)(void (*)(void))order_key, METH_FASTCALL,
     "key(score, member): the pair's order key"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef order_module = {
    PyModuleDef_HEAD_INIT, "raftkv.core.order",
    "A sorted set's order keys (order.py documents them).", -1,
    order_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_order(void) {
    PyObject *module = PyModule_Create(&order_module);
    if (module != NULL && PyModule_AddIntConstant(module, "SCORE_BYTES", 8) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
