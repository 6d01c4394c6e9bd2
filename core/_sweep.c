/*
 * swapsim._sweep: the inner loop of Reclaim.rotate_inert
 * (core/mm/vmscan.py) in C, an accelerator only.
 *
 * Why: at 2 GiB, nbd0's GFP_NOIO reclaim in vanilla-slab looks at some
 * 5.3 G LRU entries, about 5.4 K per call.  The numpy version pays a dozen
 * numpy calls per call (casts, three gathers, compares, the move) and about
 * half its time is that overhead; a scalar loop compiled by mypyc is slower
 * still (boxed reads).  Here the scan and the move are one pass.
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
#define BATCH 32                /* SWAP_CLUSTER_MAX */

/* The buffers noio_rotate() reads and writes, and their lengths in items. */
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

static int overlaps(const Py_buffer *a, const Py_buffer *b)
{
    const char *a0 = a->buf, *b0 = b->buf;
    return a0 < b0 + b->len && b0 < a0 + a->len;
}

/* Take the buffers of args[0], args[1] (the ring, written) and args[k..k+2]
 * (lru_seq, flags, class table) and check their lengths. */
static int take_views(Views *v, PyObject *const *args, Py_ssize_t k)
{
    v->held = 0;
    if (view(v, &v->ring, args[0], 4, 1, "ring pages") < 0
        || view(v, &v->ring_seq, args[1], 4, 1, "ring seqs") < 0
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
    if (overlaps(&v->ring, &v->ring_seq) || overlaps(&v->ring, &v->lru_seq)
        || overlaps(&v->ring, &v->flags) || overlaps(&v->ring, &v->cls)
        || overlaps(&v->ring_seq, &v->lru_seq) || overlaps(&v->ring_seq, &v->flags)
        || overlaps(&v->ring_seq, &v->cls)) {
        PyErr_SetString(PyExc_ValueError, "the ring's arrays, which are written, must not share memory");
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

/* noio_rotate()'s loop, apart so that the compiler knows the arrays do not
 * overlap (restrict) and keeps its counters in registers.  Returns the live
 * entries copied, or -1 (with *bad) for a page id outside the arrays; *used
 * and *walked are as of the last whole batch. */
static Py_ssize_t rotate(int32_t *restrict ring, int32_t *restrict ring_seq,
                         const int32_t *restrict lru_seq, const uint16_t *restrict flags,
                         const uint8_t *restrict cls, Py_ssize_t mask, Py_ssize_t t,
                         Py_ssize_t n, Py_ssize_t h, Py_ssize_t npages, Py_ssize_t want,
                         Py_ssize_t *used, Py_ssize_t *walked, int32_t *bad)
{
    Py_ssize_t nlive = 0, nwalked = 0;
    for (Py_ssize_t i = 0; i < n && nlive < want; i++) {
        Py_ssize_t at = (t + i) & mask;
        int32_t p = ring[at], seq = ring_seq[at];
        if ((uint32_t)p >= (uint64_t)npages) {
            *bad = p;
            return -1;
        }
        if (lru_seq[p] != seq)
            continue;           /* stale: the page has moved since */
        uint8_t c = cls[flags[p]];
        if (c == NOIO_CHANGED)
            break;
        Py_ssize_t to = (h + nlive) & mask;
        ring[to] = p;
        ring_seq[to] = seq;
        nwalked += c == NOIO_WALKED;
        if (++nlive % BATCH == 0) {
            *used = i + 1;
            *walked = nwalked;
        }
    }
    return nlive;
}

PyDoc_STRVAR(noio_rotate_doc,
"noio_rotate(ring_pages, ring_seqs, tail, n, head, lru_seq, flags, cls, max_batches)\n"
"    -> (moved, used, walked)\n\n"
"Walk the ring's n entries from the tail and copy each live one, with its\n"
"sequence number, to the head, until a page whose class is 2 (changed) or\n"
"max_batches * 32 copies.  Only whole batches of 32 count: returns how many\n"
"entries that is (to add at the head), how many raw entries from the tail\n"
"through the last of them (to drop), and how many of them have class 1\n"
"(page_referenced() walks them).  The max_batches * 32 slots at the head\n"
"must be free; what is written there beyond the whole batches is not counted.");

static PyObject *noio_rotate(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 9)
        return PyErr_Format(PyExc_TypeError, "noio_rotate() takes 9 arguments (%zd given)", nargs);
    Py_ssize_t ints[3], max_batches;
    if (ssize_args(args, 2, 3, ints) < 0 || ssize_args(args, 8, 1, &max_batches) < 0)
        return NULL;
    Views v;
    if (take_views(&v, args, 5) < 0)
        return NULL;
    Py_ssize_t mask = v.cap - 1, t = ints[0], n = ints[1], h = ints[2];
    Py_ssize_t want = max_batches * BATCH;
    if (n < 0 || want < 0 || n + want > v.cap || ((t + n) & mask) != (h & mask)) {
        release(&v);
        PyErr_SetString(PyExc_ValueError,
                        "noio_rotate(): the head must follow the n entries, with room for the batches");
        return NULL;
    }
    Py_ssize_t used = 0, walked = 0;
    int32_t bad = 0;
    Py_ssize_t nlive = rotate(v.ring.buf, v.ring_seq.buf, v.lru_seq.buf, v.flags.buf, v.cls.buf,
                              mask, t, n, h, v.npages, want, &used, &walked, &bad);
    if (nlive < 0) {
        release(&v);
        return PyErr_Format(PyExc_IndexError,
                            "page id %d in the ring is outside the %zd pages", (int)bad, v.npages);
    }
    release(&v);
    return Py_BuildValue("(nnn)", nlive - nlive % BATCH, used, walked);
}

static PyMethodDef methods[] = {
    {"noio_rotate", (PyCFunction)(void (*)(void))noio_rotate, METH_FASTCALL, noio_rotate_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "swapsim._sweep",
    "The inner loop of Reclaim.rotate_inert in C (see core/_sweep.c).", -1, methods,
};

PyMODINIT_FUNC PyInit__sweep(void)
{
    return PyModule_Create(&module);
}
