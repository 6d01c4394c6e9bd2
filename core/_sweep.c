/*
 * swapsim._sweep: the two inner loops of Reclaim.rotate_inert
 * (core/mm/vmscan.py) in C, an accelerator only.
 *
 * Why: at 2 GiB, nbd0's GFP_NOIO reclaim in vanilla-slab looks at some
 * 5.3 G LRU entries, about 5.4 K per call.  The numpy version pays a dozen
 * numpy calls per call (casts, three gathers, compares, the move) and about
 * half its time is that overhead; a scalar loop compiled by mypyc is slower
 * still (boxed reads).  Here the scan and the move are one pass each.
 *
 * The numpy code in rotate_inert stays the reference: it runs when this
 * module is not built (pure-Python installs), and the tests run both and
 * compare them (tests/test_mm_mechanisms.py).
 *
 * The arrays are those of core/mm/pages.py: a PageQueue ring (page ids and
 * the sequence numbers of its entries, int32, a power-of-two long), the
 * per-page LRU sequence numbers (int32) and flags (uint16), and
 * vmscan._NOIO_CLASS (uint8, one entry per uint16 flags value: 2 changed by
 * a GFP_NOIO scan, 1 walked by page_referenced(), 0 neither).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

#define NOIO_CHANGED 2
#define NOIO_WALKED 1

/* The buffers both functions read, and their lengths in items. */
typedef struct {
    Py_buffer ring, ring_seq, lru_seq, flags, cls;
    int held;                   /* how many of them are held, in that order */
    Py_ssize_t cap, npages;
} Views;

static void release(Views *v)
{
    Py_buffer *b[] = {&v->ring, &v->ring_seq, &v->lru_seq, &v->flags, &v->cls};
    for (int i = 0; i < v->held; i++)
        PyBuffer_Release(b[i]);
    v->held = 0;
}

static int view(Views *v, Py_buffer *b, PyObject *o, Py_ssize_t itemsize, int writable,
                const char *what)
{
    if (PyObject_GetBuffer(o, b, writable ? PyBUF_WRITABLE : PyBUF_SIMPLE) < 0)
        return -1;
    v->held++;
    if (b->len % itemsize) {
        PyErr_Format(PyExc_ValueError, "%s: %zd bytes is not a whole number of %zd-byte items",
                     what, b->len, itemsize);
        return -1;
    }
    return 0;
}

/* Take the buffers of args[0], args[1] (the ring) and args[k..k+2]
 * (lru_seq, flags, class table) and check their lengths. */
static int take_views(Views *v, PyObject *const *args, Py_ssize_t k, int writable)
{
    v->held = 0;
    if (view(v, &v->ring, args[0], 4, writable, "ring pages") < 0
        || view(v, &v->ring_seq, args[1], 4, writable, "ring seqs") < 0
        || view(v, &v->lru_seq, args[k], 4, 0, "lru_seq") < 0
        || view(v, &v->flags, args[k + 1], 2, 0, "flags") < 0
        || view(v, &v->cls, args[k + 2], 1, 0, "class table") < 0)
        goto fail;
    v->cap = v->ring.len / 4;
    v->npages = v->lru_seq.len / 4;
    if (v->cap == 0 || (v->cap & (v->cap - 1)) || v->ring_seq.len != v->ring.len) {
        PyErr_SetString(PyExc_ValueError, "the ring's two arrays must be one power-of-two length");
        goto fail;
    }
    if (v->flags.len / 2 != v->npages || v->cls.len != 1 << 16) {
        PyErr_SetString(PyExc_ValueError,
                        "flags must cover lru_seq's pages, the class table every uint16 value");
        goto fail;
    }
    return 0;
fail:
    release(v);
    return -1;
}

static int ssize_args(PyObject *const *args, Py_ssize_t first, Py_ssize_t count, Py_ssize_t *out)
{
    for (Py_ssize_t i = 0; i < count; i++) {
        out[i] = PyLong_AsSsize_t(args[first + i]);
        if (out[i] == -1 && PyErr_Occurred())
            return -1;
    }
    return 0;
}

static PyObject *bad_page(Views *v, int32_t p)
{
    release(v);
    return PyErr_Format(PyExc_IndexError, "page id %d in the ring is outside the %zd pages",
                        (int)p, v->npages);
}

PyDoc_STRVAR(noio_scan_doc,
"noio_scan(ring_pages, ring_seqs, tail, n, lru_seq, flags, cls, want) -> int\n\n"
"Walk the ring's n entries from the tail: the number of live entries\n"
"before the first whose page's class is 2 (changed), at most want.");

static PyObject *noio_scan(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 8)
        return PyErr_Format(PyExc_TypeError, "noio_scan() takes 8 arguments (%zd given)", nargs);
    Py_ssize_t ints[2], want;
    if (ssize_args(args, 2, 2, ints) < 0 || ssize_args(args, 7, 1, &want) < 0)
        return NULL;
    Views v;
    if (take_views(&v, args, 4, 0) < 0)
        return NULL;
    const int32_t *ring = v.ring.buf, *ring_seq = v.ring_seq.buf, *lru_seq = v.lru_seq.buf;
    const uint16_t *flags = v.flags.buf;
    const uint8_t *cls = v.cls.buf;
    Py_ssize_t mask = v.cap - 1, t = ints[0], n = ints[1] < v.cap ? ints[1] : v.cap;
    Py_ssize_t nlive = 0;
    for (Py_ssize_t i = 0; i < n && nlive < want; i++) {
        Py_ssize_t at = (t + i) & mask;
        int32_t p = ring[at];
        if ((uint32_t)p >= (uint64_t)v.npages)
            return bad_page(&v, p);
        if (lru_seq[p] != ring_seq[at])
            continue;           /* stale: the page has moved since */
        if (cls[flags[p]] == NOIO_CHANGED)
            break;
        nlive++;
    }
    release(&v);
    return PyLong_FromSsize_t(nlive);
}

PyDoc_STRVAR(noio_move_doc,
"noio_move(ring_pages, ring_seqs, tail, head, count, lru_seq, flags, cls) -> (used, walked)\n\n"
"Copy the first count live entries from the tail to the head, in order,\n"
"with their sequence numbers; the slots at the head must be free.  Returns\n"
"the raw entries from the tail through the last one copied (to drop), and\n"
"how many of the copied pages' class is 1 (page_referenced() walks them).");

static PyObject *noio_move(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 8)
        return PyErr_Format(PyExc_TypeError, "noio_move() takes 8 arguments (%zd given)", nargs);
    Py_ssize_t ints[3];
    if (ssize_args(args, 2, 3, ints) < 0)
        return NULL;
    Views v;
    if (take_views(&v, args, 5, 1) < 0)
        return NULL;
    int32_t *ring = v.ring.buf, *ring_seq = v.ring_seq.buf;
    const int32_t *lru_seq = v.lru_seq.buf;
    const uint16_t *flags = v.flags.buf;
    const uint8_t *cls = v.cls.buf;
    Py_ssize_t mask = v.cap - 1, t = ints[0], h = ints[1], count = ints[2];
    Py_ssize_t moved = 0, used = 0, walked = 0;
    while (moved < count) {
        if (used == v.cap) {
            release(&v);
            PyErr_SetString(PyExc_ValueError, "noio_move(): fewer live entries than count");
            return NULL;
        }
        Py_ssize_t at = (t + used) & mask;
        int32_t p = ring[at];
        used++;
        if ((uint32_t)p >= (uint64_t)v.npages)
            return bad_page(&v, p);
        if (lru_seq[p] != ring_seq[at])
            continue;
        walked += cls[flags[p]] == NOIO_WALKED;
        Py_ssize_t to = (h + moved) & mask;
        ring[to] = p;
        ring_seq[to] = ring_seq[at];
        moved++;
    }
    release(&v);
    return Py_BuildValue("(nn)", used, walked);
}

static PyMethodDef methods[] = {
    {"noio_scan", (PyCFunction)(void (*)(void))noio_scan, METH_FASTCALL, noio_scan_doc},
    {"noio_move", (PyCFunction)(void (*)(void))noio_move, METH_FASTCALL, noio_move_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "swapsim._sweep",
    "The inner loops of Reclaim.rotate_inert in C (see core/_sweep.c).", -1, methods,
};

PyMODINIT_FUNC PyInit__sweep(void)
{
    return PyModule_Create(&module);
}
