/* raftkv.fronts.resp.reader: the RESP request reader, in C.
 *
 * reader.py is the same reader in plain Python and says what it does: commands out
 * of a byte stream as Redis's processInputBuffer reads them, every declared size
 * checked on its header before anything of that size is buffered. This file is
 * what runs (an extension module is imported before a source file of the same
 * name). It exists because the reader is on every request's path and must check
 * each header itself: hiredis's reader, which it replaces, builds a list of the
 * declared length as soon as it sees "*3000000000", and freeing that list stalled
 * every client of the node for seconds.
 *
 * State between feeds is Redis's: the unconsumed bytes, the arguments of the
 * unfinished command, how many it still wants and the declared length of the next
 * one. A feed that starts between commands parses straight from the caller's bytes
 * and keeps only the unfinished tail. Every access runs under the GIL.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define INLINE_MAX_BYTES (64 * 1024)
#define UNAUTHENTICATED_MAX_ARGS 10
#define UNAUTHENTICATED_MAX_BULK_BYTES (16 * 1024)
#define ARGV_PREALLOCATED 1024 /* a declared count above this is not allocated up front */

static PyObject *ProtocolError;
static PyObject *QueryBufferFull;

typedef struct {
    PyObject_HEAD
    char *buf; /* buf[0:len] is received and not yet consumed */
    Py_ssize_t len, cap;
    PyObject *argv; /* the unfinished command's arguments, or NULL */
    Py_ssize_t argc; /* how many of them are set */
    Py_ssize_t want; /* how many it still needs; 0 between commands */
    long long bulk_len; /* the next argument's declared length; -1 before its header */
    Py_ssize_t argv_bytes;
    long long max_args, max_bulk_bytes, max_query_bytes;
    int limited;
} Reader;

static PyTypeObject ReaderType;

/* Redis's string2ll: optional '-', digits with no leading zero (or a lone "0"),
 * within the signed 64-bit range. */
static int parse_length(const char *s, Py_ssize_t n, long long *out) {
    if (n == 1 && s[0] == '0') {
        *out = 0;
        return 1;
    }
    int negative = n > 0 && s[0] == '-';
    Py_ssize_t i = negative;
    if (i >= n || s[i] < '1' || s[i] > '9' || n - i > 19)
        return 0;
    unsigned long long v = 0;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        v = v * 10 + (unsigned long long)(s[i] - '0');
    }
    if (negative) {
        if (v > (unsigned long long)INT64_MAX + 1)
            return 0;
        *out = v == (unsigned long long)INT64_MAX + 1 ? INT64_MIN : -(long long)v;
    } else {
        if (v > (unsigned long long)INT64_MAX)
            return 0;
        *out = (long long)v;
    }
    return 1;
}

static int is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static int hex_value(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int escaped(char c) {
    switch (c) {
    case 'n': return '\n';
    case 'r': return '\r';
    case 't': return '\t';
    case 'b': return '\b';
    case 'a': return '\a';
    default: return (unsigned char)c;
    }
}

/* Redis's sdssplitargs (reader.py's split_args): a new list of words, or Py_None
 * (a new reference) for unbalanced quotes, or NULL with an exception set. */
static PyObject *split_args(const char *line, Py_ssize_t n) {
    const char *nul = memchr(line, '\0', (size_t)n);
    if (nul != NULL)
        n = nul - line;
    PyObject *args = PyList_New(0);
    char *word = PyMem_Malloc((size_t)n + 1);
    if (args == NULL || word == NULL) {
        Py_XDECREF(args);
        PyMem_Free(word);
        return PyErr_NoMemory();
    }
    Py_ssize_t i = 0;
    for (;;) {
        while (i < n && is_space(line[i]))
            i++;
        if (i >= n)
            break;
        Py_ssize_t len = 0;
        int in_double = 0, in_single = 0;
        for (;;) {
            char c = i < n ? line[i] : '\0';
            if (in_double) {
                if (c == '\\' && i + 3 < n && line[i + 1] == 'x' && hex_value(line[i + 2]) >= 0
                        && hex_value(line[i + 3]) >= 0) {
                    word[len++] = (char)(hex_value(line[i + 2]) * 16 + hex_value(line[i + 3]));
                    i += 3;
                } else if (c == '\\' && i + 1 < n) {
                    i++;
                    word[len++] = (char)escaped(line[i]);
                } else if (c == '"') {
                    if (i + 1 < n && !is_space(line[i + 1]))
                        goto unbalanced;
                    i++;
                    break;
                } else if (i >= n) {
                    goto unbalanced;
                } else {
                    word[len++] = c;
                }
            } else if (in_single) {
                if (c == '\\' && i + 1 < n && line[i + 1] == '\'') {
                    i++;
                    word[len++] = '\'';
                } else if (c == '\'') {
                    if (i + 1 < n && !is_space(line[i + 1]))
                        goto unbalanced;
                    i++;
                    break;
                } else if (i >= n) {
                    goto unbalanced;
                } else {
                    word[len++] = c;
                }
            } else if (i >= n || c == ' ' || c == '\n' || c == '\r' || c == '\t') {
                break;
            } else if (c == '"') {
                in_double = 1;
            } else if (c == '\'') {
                in_single = 1;
            } else {
                word[len++] = c;
            }
            i++;
        }
        PyObject *arg = PyBytes_FromStringAndSize(word, len);
        if (arg == NULL || PyList_Append(args, arg) < 0) {
            Py_XDECREF(arg);
            Py_DECREF(args);
            PyMem_Free(word);
            return NULL;
        }
        Py_DECREF(arg);
    }
    PyMem_Free(word);
    return args;
unbalanced:
    PyMem_Free(word);
    Py_DECREF(args);
    Py_RETURN_NONE;
}

static PyObject *Reader_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    static char *names[] = {"max_args", "max_bulk_bytes", "max_query_bytes", NULL};
    long long max_args = 1024 * 1024, max_bulk = 512LL * 1024 * 1024, max_query = 1LL << 30;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|LLL", names, &max_args, &max_bulk,
                                     &max_query))
        return NULL;
    Reader *r = (Reader *)type->tp_alloc(type, 0);
    if (r == NULL)
        return NULL;
    r->bulk_len = -1;
    r->max_args = max_args;
    r->max_bulk_bytes = max_bulk;
    r->max_query_bytes = max_query;
    return (PyObject *)r;
}

static void Reader_dealloc(Reader *r) {
    PyMem_Free(r->buf);
    Py_XDECREF(r->argv);
    Py_TYPE(r)->tp_free((PyObject *)r);
}

/* Raise ``type(message)`` with the commands complete before it attached; steals
 * message (NULL: an exception is already set). */
static void fail_with(PyObject *type, PyObject *message, PyObject *commands) {
    if (message == NULL)
        return;
    PyObject *exc = PyObject_CallFunctionObjArgs(type, message, commands, NULL);
    Py_DECREF(message);
    if (exc != NULL) {
        PyErr_SetObject(type, exc);
        Py_DECREF(exc);
    }
}

static void fail(PyObject *type, const char *message, PyObject *commands) {
    fail_with(type, PyUnicode_FromString(message), commands);
}

/* Append the finished command to commands. */
static int finish_command(Reader *r, PyObject *commands) {
    PyObject *argv = r->argv; /* exactly argc long: preallocated to its count, or grown */
    r->argv = NULL;
    r->argc = 0;
    r->argv_bytes = 0;
    int failed = PyList_Append(commands, argv);
    Py_DECREF(argv);
    return failed;
}

static int add_arg(Reader *r, const char *data, Py_ssize_t len) {
    PyObject *arg = PyBytes_FromStringAndSize(data, len);
    if (arg == NULL)
        return -1;
    if (r->argc < PyList_GET_SIZE(r->argv)) {
        PyList_SET_ITEM(r->argv, r->argc, arg);
    } else {
        int failed = PyList_Append(r->argv, arg);
        Py_DECREF(arg);
        if (failed)
            return -1;
    }
    r->argc++;
    r->argv_bytes += len;
    return 0;
}

/* Where the header line starting at p[pos] ends (its '\r'); -1 while it is still
 * coming; -2 with an exception set when it runs past INLINE_MAX_BYTES. Like Redis, a
 * header needs one byte after its '\r' (taken as the '\n') before it is read. */
static Py_ssize_t header_end(const char *p, Py_ssize_t pos, Py_ssize_t n,
                             const char *too_big, PyObject *commands) {
    const char *cr = memchr(p + pos, '\r', (size_t)(n - pos));
    if (cr == NULL) {
        if (n - pos > INLINE_MAX_BYTES) {
            fail(ProtocolError, too_big, commands);
            return -2;
        }
        return -1;
    }
    return cr - p + 1 < n ? cr - p : -1;
}

/* Parse p[0:n] into commands; the consumed length, or -1 with an exception set. The
 * error messages are Redis's own (networking.c). */
static Py_ssize_t parse(Reader *r, const char *p, Py_ssize_t n, PyObject *commands) {
    Py_ssize_t pos = 0;
    long long value;
    while (pos < n) {
        if (r->want == 0) {
            if (p[pos] == '*') {
                Py_ssize_t at = header_end(p, pos, n, "Protocol error: too big mbulk count string",
                                           commands);
                if (at < 0)
                    return at == -1 ? pos : -1;
                if (!parse_length(p + pos + 1, at - pos - 1, &value) || value > r->max_args) {
                    fail(ProtocolError, "Protocol error: invalid multibulk length", commands);
                    return -1;
                }
                if (r->limited && value > UNAUTHENTICATED_MAX_ARGS) {
                    fail(ProtocolError, "Protocol error: unauthenticated multibulk length",
                         commands);
                    return -1;
                }
                pos = at + 2;
                if (value <= 0)
                    continue; /* an empty command: skipped */
                r->argv = PyList_New(value <= ARGV_PREALLOCATED ? (Py_ssize_t)value : 0);
                if (r->argv == NULL)
                    return -1;
                r->want = (Py_ssize_t)value;
                r->argc = 0;
                r->argv_bytes = 0;
                r->bulk_len = -1;
            } else {
                const char *nl = memchr(p + pos, '\n', (size_t)(n - pos));
                if (nl == NULL) {
                    if (n - pos > INLINE_MAX_BYTES) {
                        fail(ProtocolError, "Protocol error: too big inline request", commands);
                        return -1;
                    }
                    return pos;
                }
                Py_ssize_t at = nl - p, end = at;
                if (end > pos && p[end - 1] == '\r')
                    end--;
                if (end - pos > INLINE_MAX_BYTES) {
                    fail(ProtocolError, "Protocol error: too big inline request", commands);
                    return -1;
                }
                PyObject *args = split_args(p + pos, end - pos);
                if (args == NULL)
                    return -1;
                if (args == Py_None) {
                    Py_DECREF(args);
                    fail(ProtocolError, "Protocol error: unbalanced quotes in request",
                         commands);
                    return -1;
                }
                pos = at + 1;
                if (PyList_GET_SIZE(args) == 0) {
                    Py_DECREF(args);
                    continue;
                }
                int failed = PyList_Append(commands, args);
                Py_DECREF(args);
                if (failed)
                    return -1;
                if (r->limited)
                    return pos;
                continue;
            }
        }
        while (r->want > 0) {
            if (r->bulk_len < 0) {
                Py_ssize_t at = header_end(p, pos, n, "Protocol error: too big bulk count string",
                                           commands);
                if (at < 0)
                    return at == -1 ? pos : -1;
                if (p[pos] != '$') {
                    fail_with(ProtocolError,
                              PyUnicode_FromFormat("Protocol error: expected '$', got '%c'",
                                                   (int)(unsigned char)p[pos]),
                              commands);
                    return -1;
                }
                if (!parse_length(p + pos + 1, at - pos - 1, &value) || value < 0
                        || value > r->max_bulk_bytes) {
                    fail(ProtocolError, "Protocol error: invalid bulk length", commands);
                    return -1;
                }
                if (r->limited && value > UNAUTHENTICATED_MAX_BULK_BYTES) {
                    fail(ProtocolError, "Protocol error: unauthenticated bulk length", commands);
                    return -1;
                }
                pos = at + 2;
                r->bulk_len = value;
            }
            if (n - pos < r->bulk_len + 2)
                return pos;
            if (add_arg(r, p + pos, (Py_ssize_t)r->bulk_len) < 0)
                return -1;
            pos += (Py_ssize_t)r->bulk_len + 2; /* the CRLF is not checked, as in Redis */
            r->bulk_len = -1;
            r->want--;
        }
        if (finish_command(r, commands) < 0)
            return -1;
        if (r->limited)
            return pos;
    }
    return pos;
}

/* Keep p[0:n] as the unconsumed bytes (a large buffer is freed once empty). */
static int keep(Reader *r, const char *p, Py_ssize_t n) {
    if (n == 0 && r->cap > INLINE_MAX_BYTES) {
        PyMem_Free(r->buf);
        r->buf = NULL;
        r->cap = 0;
    } else if (n > r->cap) {
        Py_ssize_t cap = r->cap ? r->cap : 4096;
        while (cap < n)
            cap *= 2;
        char *grown = PyMem_Malloc((size_t)cap);
        if (grown == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        memcpy(grown, p, (size_t)n);
        PyMem_Free(r->buf);
        r->buf = grown;
        r->cap = cap;
    } else if (p != r->buf) {
        memmove(r->buf, p, (size_t)n);
    }
    r->len = n;
    return 0;
}

static PyObject *Reader_feed(Reader *r, PyObject *data) {
    if (!PyBytes_Check(data)) {
        PyErr_Format(PyExc_TypeError, "feed() takes bytes, not %.100s", Py_TYPE(data)->tp_name);
        return NULL;
    }
    const char *p = PyBytes_AS_STRING(data);
    Py_ssize_t n = PyBytes_GET_SIZE(data);
    if (r->len > 0) { /* bytes left from before: parse them with the new ones */
        if (r->len + n > r->cap) {
            Py_ssize_t cap = r->cap;
            while (cap < r->len + n)
                cap *= 2;
            char *grown = PyMem_Realloc(r->buf, (size_t)cap);
            if (grown == NULL)
                return PyErr_NoMemory();
            r->buf = grown;
            r->cap = cap;
        }
        memcpy(r->buf + r->len, p, (size_t)n);
        r->len += n;
        p = r->buf;
        n = r->len;
    }
    PyObject *commands = PyList_New(0);
    if (commands == NULL)
        return NULL;
    Py_ssize_t used = parse(r, p, n, commands);
    if (used < 0 || keep(r, p + used, n - used) < 0) {
        Py_DECREF(commands);
        return NULL;
    }
    if ((long long)(r->argv_bytes + r->len) > r->max_query_bytes) {
        fail(QueryBufferFull, "query buffer limit reached", commands);
        Py_DECREF(commands);
        return NULL;
    }
    return commands;
}

static PyObject *Reader_split_args(PyObject *module, PyObject *line) {
    (void)module;
    if (!PyBytes_Check(line)) {
        PyErr_SetString(PyExc_TypeError, "split_args() takes bytes");
        return NULL;
    }
    return split_args(PyBytes_AS_STRING(line), PyBytes_GET_SIZE(line));
}

static PyObject *Reader_parse_length(PyObject *module, PyObject *raw) {
    (void)module;
    long long value;
    if (!PyBytes_Check(raw)) {
        PyErr_SetString(PyExc_TypeError, "parse_length() takes bytes");
        return NULL;
    }
    if (!parse_length(PyBytes_AS_STRING(raw), PyBytes_GET_SIZE(raw), &value))
        Py_RETURN_NONE;
    return PyLong_FromLongLong(value);
}

static PyObject *Reader_get_limited(Reader *r, void *closure) {
    (void)closure;
    return PyBool_FromLong(r->limited);
}

static int Reader_set_limited(Reader *r, PyObject *value, void *closure) {
    (void)closure;
    int truth = value == NULL ? -1 : PyObject_IsTrue(value);
    if (truth < 0) {
        if (value == NULL)
            PyErr_SetString(PyExc_AttributeError, "limited cannot be deleted");
        return -1;
    }
    r->limited = truth;
    return 0;
}

static PyObject *Reader_get_limit(Reader *r, void *closure) {
    return PyLong_FromLongLong(*(long long *)((char *)r + (Py_ssize_t)closure));
}

static int Reader_set_limit(Reader *r, PyObject *value, void *closure) {
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "a limit cannot be deleted");
        return -1;
    }
    long long v = PyLong_AsLongLong(value);
    if (v == -1 && PyErr_Occurred())
        return -1;
    *(long long *)((char *)r + (Py_ssize_t)closure) = v;
    return 0;
}

static PyGetSetDef Reader_getset[] = {
    {"limited", (getter)Reader_get_limited, (setter)Reader_set_limited,
     "the unauthenticated limits apply", NULL},
    {"max_args", (getter)Reader_get_limit, (setter)Reader_set_limit, "arguments per command",
     (void *)offsetof(Reader, max_args)},
    {"max_bulk_bytes", (getter)Reader_get_limit, (setter)Reader_set_limit, "bytes per argument",
     (void *)offsetof(Reader, max_bulk_bytes)},
    {"max_query_bytes", (getter)Reader_get_limit, (setter)Reader_set_limit,
     "bytes held for one unfinished command", (void *)offsetof(Reader, max_query_bytes)},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef Reader_methods[] = {
    {"feed", (PyCFunction)Reader_feed, METH_O,
     "feed(data): every command completed by data (raises ProtocolError)"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ReaderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "raftkv.fronts.resp.reader.RequestReader",
    .tp_doc = "One client's RESP requests (see reader.py).",
    .tp_basicsize = sizeof(Reader),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = Reader_new,
    .tp_dealloc = (destructor)Reader_dealloc,
    .tp_methods = Reader_methods,
    .tp_getset = Reader_getset,
};

static PyMethodDef module_methods[] = {
    {"split_args", Reader_split_args, METH_O, "split_args(line): Redis's sdssplitargs"},
    {"parse_length", Reader_parse_length, METH_O, "parse_length(raw): Redis's string2ll"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef reader_module = {
    PyModuleDef_HEAD_INIT, "raftkv.fronts.resp.reader",
    "The RESP request reader (reader.py documents it).", -1, module_methods,
    NULL, NULL, NULL, NULL,
};

/* The exception classes are defined in Python, as reader.py defines them. */
static const char EXCEPTIONS[] =
    "class ProtocolError(Exception):\n"
    "    \"\"\"The stream is broken: answer -ERR <message> after the replies to\n"
    "    commands (those complete before the error), then close the connection.\"\"\"\n"
    "    def __init__(self, message, commands=None):\n"
    "        super().__init__(message)\n"
    "        self.commands = commands or []\n"
    "class QueryBufferFull(ProtocolError):\n"
    "    \"\"\"One unfinished command holds more than max_query_bytes: close without a\n"
    "    reply, as Redis does.\"\"\"\n";

PyMODINIT_FUNC PyInit_reader(void) {
    if (PyType_Ready(&ReaderType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&reader_module);
    if (m == NULL)
        return NULL;
    PyObject *globals = PyModule_GetDict(m);
    if (PyDict_SetItemString(globals, "__builtins__", PyEval_GetBuiltins()) < 0)
        goto failed;
    PyObject *ran = PyRun_String(EXCEPTIONS, Py_file_input, globals, globals);
    if (ran == NULL)
        goto failed;
    Py_DECREF(ran);
    ProtocolError = PyDict_GetItemString(globals, "ProtocolError");
    QueryBufferFull = PyDict_GetItemString(globals, "QueryBufferFull");
    if (ProtocolError == NULL || QueryBufferFull == NULL)
        goto failed;
    Py_INCREF(ProtocolError);
    Py_INCREF(QueryBufferFull);
    if (PyModule_AddObjectRef(m, "RequestReader", (PyObject *)&ReaderType) < 0
            || PyModule_AddIntConstant(m, "INLINE_MAX_BYTES", INLINE_MAX_BYTES) < 0
            || PyModule_AddIntConstant(m, "UNAUTHENTICATED_MAX_ARGS", UNAUTHENTICATED_MAX_ARGS) < 0
            || PyModule_AddIntConstant(m, "UNAUTHENTICATED_MAX_BULK_BYTES",
                                       UNAUTHENTICATED_MAX_BULK_BYTES) < 0)
        goto failed;
    return m;
failed:
    Py_DECREF(m);
    return NULL;
}
