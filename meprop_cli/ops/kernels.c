/* meProp's sparse backward and row-sparse optimizer updates on the CPU (float32, row-major, int64 indices).
 *
 * Built on first use by meprop_cli/ops/native.py with the system C compiler (plain C + pthreads, no
 * torch headers, so it compiles in about a second) and called through ctypes; native.py holds the
 * pure-torch equivalent of every function here, used when no compiler is available.
 *
 * Shapes: g, score (B, n): the output gradient and the selection score; idx, val (B, k): the k kept
 * entries of each row; W (n, m): the weight; x (B, m): the layer input.
 *
 *   dx[b]  = sum_j val[b,j] * W[idx[b,j]]            (= top_k(g) W)
 *   dW[o] += val[b,j] * x[b]   for every idx[b,j] = o  (= top_k(g)^T x)
 *
 * Both products are axpy loops over columns, blocked so that the column block of W (or dW) for all
 * n rows stays in the core's L2 cache while the examples stream through it.
 */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_THREADS 64

/* ---- a minimal fork-join over pthreads (no OpenMP: torch bundles its own runtime) ---------------- */

typedef void (*work_fn)(void *ctx, int tid, int nthreads);
typedef struct { work_fn fn; void *ctx; int tid, nthreads; } job_t;

static void *job_main(void *arg) {
    job_t *job = (job_t *)arg;
    job->fn(job->ctx, job->tid, job->nthreads);
    return NULL;
}

static void parallel_run(int nthreads, work_fn fn, void *ctx) {
    if (nthreads <= 1) { fn(ctx, 0, 1); return; }
    if (nthreads > MAX_THREADS) nthreads = MAX_THREADS;
    pthread_t threads[MAX_THREADS];
    job_t jobs[MAX_THREADS];
    int started[MAX_THREADS];
    for (int t = 1; t < nthreads; t++) {
        jobs[t] = (job_t){fn, ctx, t, nthreads};
        started[t] = pthread_create(&threads[t], NULL, job_main, &jobs[t]) == 0;
    }
    fn(ctx, 0, nthreads);
    for (int t = 1; t < nthreads; t++) {
        if (started[t]) pthread_join(threads[t], NULL);
        else fn(ctx, t, nthreads); /* could not start a thread: do its share here */
    }
}

/* 8 floats; aligned(4) lets it load from any float address. The compiler's auto-vectorizer left these
 * loops scalar (aliasing checks), so they are written with GCC/Clang vector extensions. */
typedef float v8f __attribute__((vector_size(32), aligned(4)));
typedef int32_t v8i __attribute__((vector_size(32)));
#define STRIP 64 /* floats of dx accumulated in registers at a time: 8 vectors */

/* y[0..w) += a * x[0..w) */
static inline void axpy(float *restrict y, const float *restrict x, float a, int64_t w) {
    int64_t i = 0;
    for (; i + 8 <= w; i += 8) *(v8f *)(y + i) += a * *(const v8f *)(x + i);
    for (; i < w; i++) y[i] += a * x[i];
}

/* ---- per-example top-k selection --------------------------------------------------------------- */

/* Scores as unsigned keys that order as the floats do, so that comparisons are integer ones and equal scores are
 * equal keys. use_abs: the key of |v|, where a NaN ranks above +inf (as torch.topk ranks it). */
static inline uint32_t order_key(float v, int use_abs) {
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    if (use_abs) u &= 0x7fffffffu;
    return (u & 0x80000000u) ? ~u : u | 0x80000000u;
}

/* The k-th largest of a[0..len) (1 ≤ k ≤ len), without data-dependent branches: rounds of a branch-free
 * partition into the other buffer (a and tmp alternate), then, at 16 keys or fewer, ranks by counting. */
static uint32_t kth_largest(uint32_t *a, uint32_t *tmp, int64_t len, int64_t k) {
    while (len > 16) {
        const uint32_t x = a[0], y = a[len / 2], z = a[len - 1];
        const uint32_t lo = x < y ? x : y, hi = x < y ? y : x;
        const uint32_t pivot = z < lo ? lo : (z > hi ? hi : z); /* median of three */
        int64_t above = 0, equal = 0;
        for (int64_t i = 0; i < len; i++) {
            const uint32_t v = a[i];
            tmp[above] = v;
            above += v > pivot;
            equal += v == pivot;
        }
        if (k > above && k <= above + equal) return pivot;
        if (k > above) {
            int64_t below = 0;
            for (int64_t i = 0; i < len; i++) {
                const uint32_t v = a[i];
                tmp[below] = v;
                below += v < pivot;
            }
            k -= above + equal;
            len = below;
        } else {
            len = above;
        }
        uint32_t *t = a; a = tmp; tmp = t;
    }
    uint32_t kth = 0;
    for (int64_t i = 0; i < len; i++) { /* a[i] is the k-th when fewer than k are above it and k are at least it */
        int64_t above = 0, at_least = 0;
        for (int64_t j = 0; j < len; j++) {
            above += a[j] > a[i];
            at_least += a[j] >= a[i];
        }
        kth = (above < k && at_least >= k) ? a[i] : kth;
    }
    return kth;
}

typedef struct {
    const float *score, *g; int use_abs; int64_t B, n, k; int64_t *idx; float *val;
} select_ctx;

/* Per row, in two passes over the row and a small third one, none of them a sort:
 *   1. cut the row into k groups and take each group's largest key: at least k entries are ≥ the smallest
 *      of those k maxima, T, so the k best are all ≥ T; for random rows few others are (about 2k);
 *   2. gather the candidates ≥ T, branch-free, in index order;
 *   3. the k-th largest candidate key (kth_largest on a copy; none when exactly k) decides: every candidate
 *      above it is kept, and of those equal to it the lowest indices, up to k.
 * The kept set is that of the order "larger score, then lower index" (deterministic ties), and it comes out
 * with ascending indices, so rows of W and dW are visited in memory order. The previous version's quickselect
 * on a buffer of (score, index) pairs, swapping both, took 4.4 µs per row of 500 (k = 20); this took 1.7 µs
 * with a quickselect in step 3, whose branches on random keys mispredict (about 66 candidates a row of 500: 0.65
 * µs of it); with kth_largest, 0.9 µs (docs/kernels.md). */
static void select_work(void *arg, int tid, int nthreads) {
    select_ctx *c = (select_ctx *)arg;
    const int64_t k = c->k, n = c->n;
    uint32_t *key = (uint32_t *)malloc(sizeof(uint32_t) * n);
    uint32_t *scratch = (uint32_t *)malloc(sizeof(uint32_t) * 2 * n);
    int32_t *at = (int32_t *)malloc(sizeof(int32_t) * n);
    for (int64_t b = c->B * tid / nthreads; b < c->B * (tid + 1) / nthreads; b++) {
        const float *s = c->score + b * n;
        uint32_t threshold = UINT32_MAX;
        for (int64_t q = 0; q < k; q++) { /* group q is [q n / k, (q + 1) n / k): never empty, as k ≤ n */
            uint32_t best = 0;
            for (int64_t i = q * n / k, end = (q + 1) * n / k; i < end; i++) {
                key[i] = order_key(s[i], c->use_abs);
                best = key[i] > best ? key[i] : best;
            }
            threshold = best < threshold ? best : threshold;
        }
        int64_t count = 0;
        for (int64_t i = 0; i < n; i++) {
            at[count] = (int32_t)i;
            count += key[i] >= threshold;
        }
        int64_t *out = c->idx + b * k;
        if (count == k) {
            for (int64_t j = 0; j < k; j++) out[j] = at[j];
        } else {
            for (int64_t j = 0; j < count; j++) scratch[j] = key[at[j]];
            const uint32_t kth = kth_largest(scratch, scratch + n, count, k);
            int64_t above = 0;
            for (int64_t j = 0; j < count; j++) above += key[at[j]] > kth;
            int64_t equal_left = k - above, taken = 0;
            for (int64_t j = 0; taken < k; j++) { /* the k-th is taken at the latest by the last candidate */
                const uint32_t kj = key[at[j]];
                const int take = kj > kth || (kj == kth && equal_left > 0);
                equal_left -= take && kj == kth;
                out[taken] = at[j];
                taken += take;
            }
        }
        const float *g = c->g + b * n;
        for (int64_t j = 0; j < k; j++) c->val[b * k + j] = g[out[j]];
    }
    free(key); free(scratch); free(at);
}

/* idx, val (B, k) <- the k entries of each row of score (|score| if use_abs) and g at those entries. */
void meprop_select_topk(const float *score, int use_abs, const float *g, int64_t B, int64_t n, int64_t k,
                        int64_t *idx, float *val, int nthreads) {
    select_ctx c = {score, g, use_abs, B, n, k, idx, val};
    /* a few rows (batch 10 x 500: 18 us on one thread) cost less than starting a thread, which at 2 threads
     * also waits for the core that torch's OpenMP worker spins on: MNIST's step took 7.7 ms, 3.4 ms without */
    if (B < 2 * nthreads || B * n < (1 << 16)) nthreads = 1;
    parallel_run(nthreads, select_work, &c);
}

/* ---- dx = top_k(g) W -------------------------------------------------------------------------- */

typedef struct {
    const float *val; const int64_t *idx; const float *W; int64_t B, k, m; float *dx; int64_t block_rows, next;
    const int64_t *offsets; /* NULL: every row has k entries; else row b's entries are [offsets[b], offsets[b+1]) */
} input_ctx;

static void input_work(void *arg, int tid, int nthreads) {
    (void)tid; (void)nthreads;
    input_ctx *c = (input_ctx *)arg;
    const int64_t m = c->m;
    for (;;) {
        const int64_t b0 = __atomic_fetch_add(&c->next, c->block_rows, __ATOMIC_RELAXED);
        if (b0 >= c->B) return;
        const int64_t b1 = b0 + c->block_rows < c->B ? b0 + c->block_rows : c->B;
        for (int64_t b = b0; b < b1; b++) {
            float *out = c->dx + b * m;
            const int64_t e0 = c->offsets ? c->offsets[b] : b * c->k;
            const int64_t k = c->offsets ? c->offsets[b + 1] - e0 : c->k;
            const float *v = c->val + e0;
            const int64_t *ix = c->idx + e0;
            int64_t i = 0;
            for (; i + STRIP <= m; i += STRIP) { /* STRIP / 8 accumulators in registers over the k rows */
                v8f a[STRIP / 8] = {{0}};
                for (int64_t j = 0; j < k; j++) {
                    const float *wr = c->W + ix[j] * m + i;
                    const float vj = v[j];
                    for (int q = 0; q < STRIP / 8; q++) a[q] += vj * *(const v8f *)(wr + 8 * q);
                }
                for (int q = 0; q < STRIP / 8; q++) *(v8f *)(out + i + 8 * q) = a[q];
            }
            if (i < m) {
                memset(out + i, 0, sizeof(float) * (m - i));
                for (int64_t j = 0; j < k; j++) axpy(out + i, c->W + ix[j] * m + i, v[j], m - i);
            }
        }
    }
}

static void run_grad_input(input_ctx *c, int64_t entries, int nthreads) {
    const int64_t rows = c->B / (4 * (nthreads > 0 ? nthreads : 1));
    c->block_rows = rows < 16 ? 16 : rows;
    c->next = 0;
    if (entries * c->m < (1 << 20)) nthreads = 1; /* small products: starting threads costs more than it saves */
    parallel_run(nthreads, input_work, c);
}

void meprop_grad_input(const float *val, const int64_t *idx, const float *W, int64_t B, int64_t k, int64_t n,
                       int64_t m, float *dx, int nthreads) {
    (void)n;
    input_ctx c = {val, idx, W, B, k, m, dx, 0, 0, NULL};
    run_grad_input(&c, B * k, nthreads);
}

/* ---- dW = top_k(g)^T x, dense (pos == NULL: out is n x m) or on the touched rows (out is r x m) ----
 *
 * Examples are taken in blocks; within a block the entries are sorted by output row (counting sort),
 * so each row of dW sums all its entries of the block in registers and is written once per block.
 * When the block's x is larger than L2, the columns go in strips of WEIGHT_STRIP, so that the strip of
 * x (WEIGHT_BLOCK_ROWS x WEIGHT_STRIP floats) stays in L2 while the rows are summed; a smaller block
 * (batch 10 on MNIST) is one strip, and each row of dW is written front to back.
 * The first block stores its sums and zeroes the rows it does not touch: dW is written once, not
 * zero-filled first and then read back (at MNIST's 500 x 784 the separate fill was a third of the time).
 * Each thread owns a range of columns: no two threads write the same element.
 */
#define WEIGHT_STRIP 64
/* A row's entries visit the block's x rows in no order the hardware can guess, each an L2 access whose latency the
 * 8 accumulators do not hide: the strip of the entry this many ahead is prefetched into L1. At parsing's 10,000 x
 * 2400 -> 500, k=20 (1 thread, 11 rounds interleaved with the old build): dW 39.2 -> 34.1 ms; 2 ahead: 1.03x,
 * 16: 1.16x, 8: 1.22x in one 5-round A/B. */
#define PF_AHEAD 8
#define WEIGHT_BLOCK_ROWS 1024
#define WEIGHT_L2_BYTES (256 << 10)

typedef struct {
    const float *val; const int64_t *idx; const float *x; int64_t B, k, m; const int64_t *pos; int64_t r;
    float *out;
    const int64_t *offsets; /* as in input_ctx */
    int64_t block_entries;  /* room for the entries of the largest block of examples */
} weight_ctx;

static inline int64_t entry_begin(const weight_ctx *c, int64_t b) { return c->offsets ? c->offsets[b] : b * c->k; }

/* dst[0..w) = (store) or += (not store) the sum over entries e0..e1 of ev[e] * x[ex[e]][0..w) */
static inline void sum_rows(float *restrict dst, const float *restrict x, int64_t m, const int64_t *ex,
                            const float *ev, int64_t e0, int64_t e1, int64_t w, int store) {
    int64_t i = 0;
    for (; i + STRIP <= w; i += STRIP) {
        v8f a[STRIP / 8] = {{0}};
        for (int64_t e = e0; e < e1; e++) {
            const float *xr = x + ex[e] * m + i;
            const float v = ev[e];
            if (e + PF_AHEAD < e1) {
                const float *ahead = x + ex[e + PF_AHEAD] * m + i;
                for (int l = 0; l < STRIP; l += 16) __builtin_prefetch(ahead + l, 0, 3);
            }
            for (int q = 0; q < STRIP / 8; q++) a[q] += v * *(const v8f *)(xr + 8 * q);
        }
        if (store) for (int q = 0; q < STRIP / 8; q++) *(v8f *)(dst + i + 8 * q) = a[q];
        else for (int q = 0; q < STRIP / 8; q++) *(v8f *)(dst + i + 8 * q) += a[q];
    }
    if (i < w) {
        if (store) memset(dst + i, 0, sizeof(float) * (w - i));
        for (int64_t e = e0; e < e1; e++) axpy(dst + i, x + ex[e] * m + i, ev[e], w - i);
    }
}

static void weight_work(void *arg, int tid, int nthreads) {
    weight_ctx *c = (weight_ctx *)arg;
    const int64_t m = c->m, r = c->r;
    const int64_t strips = (m + 7) / 8;
    const int64_t col0 = 8 * (strips * tid / nthreads), col1 = 8 * (strips * (tid + 1) / nthreads) < m
                                                              ? 8 * (strips * (tid + 1) / nthreads) : m;
    if (col0 >= col1) return;
    if (c->B == 0) { /* no block stores: zero it here */
        for (int64_t row = 0; row < r; row++) memset(c->out + row * m + col0, 0, sizeof(float) * (col1 - col0));
        return;
    }
    int64_t *start = (int64_t *)malloc(sizeof(int64_t) * (r + 1));
    int64_t *ex = (int64_t *)malloc(sizeof(int64_t) * (c->block_entries + 1));
    float *ev = (float *)malloc(sizeof(float) * (c->block_entries + 1));
    for (int64_t b0 = 0; b0 < c->B; b0 += WEIGHT_BLOCK_ROWS) {
        const int64_t b1 = b0 + WEIGHT_BLOCK_ROWS < c->B ? b0 + WEIGHT_BLOCK_ROWS : c->B;
        const int64_t first = entry_begin(c, b0), last = entry_begin(c, b1);
        const int store = b0 == 0;
        /* counting sort of the block's entries by output row */
        memset(start, 0, sizeof(int64_t) * (r + 1));
        for (int64_t e = first; e < last; e++) start[(c->pos ? c->pos[c->idx[e]] : c->idx[e]) + 1]++;
        for (int64_t row = 0; row < r; row++) start[row + 1] += start[row];
        for (int64_t b = b0; b < b1; b++) {
            for (int64_t e = entry_begin(c, b), e1 = entry_begin(c, b + 1); e < e1; e++) {
                const int64_t row = c->pos ? c->pos[c->idx[e]] : c->idx[e];
                const int64_t at = start[row]++;
                ex[at] = b;
                ev[at] = c->val[e];
            }
        }
        for (int64_t row = r; row > 0; row--) start[row] = start[row - 1]; /* back to the row starts */
        start[0] = 0;
        const int64_t strip = (b1 - b0) * (col1 - col0) * (int64_t)sizeof(float) <= WEIGHT_L2_BYTES
                              ? col1 - col0 : WEIGHT_STRIP;
        for (int64_t i = col0; i < col1; i += strip) {
            const int64_t w = i + strip <= col1 ? strip : col1 - i;
            for (int64_t row = 0; row < r; row++) {
                const int64_t e0 = start[row], e1 = start[row + 1];
                float *dst = c->out + row * m + i;
                if (e0 == e1) {
                    if (store) memset(dst, 0, sizeof(float) * w);
                    continue;
                }
                sum_rows(dst, c->x + i, m, ex, ev, e0, e1, w, store);
            }
        }
    }
    free(start); free(ex); free(ev);
}

static void run_grad_weight(weight_ctx *c, int64_t entries, int nthreads) {
    if (entries * c->m < (1 << 20) || c->m < 16 * nthreads) nthreads = 1;
    parallel_run(nthreads, weight_work, c);
}

void meprop_grad_weight(const float *val, const int64_t *idx, const float *x, int64_t B, int64_t k, int64_t m,
                        const int64_t *pos, int64_t r, float *out, int nthreads) {
    weight_ctx c = {val, idx, x, B, k, m, pos, r, out, NULL, WEIGHT_BLOCK_ROWS * k};
    run_grad_weight(&c, B * k, nthreads);
}

/* db[o] = sum of val over the entries with idx = o (out has n entries, or r with pos). */
void meprop_grad_bias(const float *val, const int64_t *idx, int64_t count, const int64_t *pos, int64_t r,
                      float *out) {
    memset(out, 0, sizeof(float) * r);
    for (int64_t e = 0; e < count; e++) out[pos ? pos[idx[e]] : idx[e]] += val[e];
}

/* The rows that received gradient: rows[0..r) ascending, pos[o] = place of row o in rows (or -1).
 * Returns r. pos has n entries, rows room for n. */
int64_t meprop_row_map(const int64_t *idx, int64_t count, int64_t n, int64_t *pos, int64_t *rows) {
    for (int64_t o = 0; o < n; o++) pos[o] = -1;
    for (int64_t e = 0; e < count; e++) pos[idx[e]] = 0;
    int64_t r = 0;
    for (int64_t o = 0; o < n; o++) if (pos[o] == 0) { pos[o] = r; rows[r++] = o; }
    return r;
}

/* ---- row-sparse optimizer updates: only the listed rows (rows == NULL: all r rows) ------------------- */

typedef struct {
    float *p, *s1, *s2; const float *g; const int64_t *rows; int64_t r, cols;
    float lr, beta1, beta2, eps, wd, bc1, bc2_sqrt; int adam;
} update_ctx;

static void update_work(void *arg, int tid, int nthreads) {
    update_ctx *c = (update_ctx *)arg;
    const int64_t cols = c->cols;
    for (int64_t i = c->r * tid / nthreads; i < c->r * (tid + 1) / nthreads; i++) {
        const int64_t row = c->rows ? c->rows[i] : i;
        float *restrict p = c->p + row * cols, *restrict s1 = c->s1 + row * cols;
        const float *restrict g = c->g + i * cols;
        if (c->adam) { /* torch.optim.Adam */
            float *restrict s2 = c->s2 + row * cols;
            const float step = c->lr / c->bc1;
            for (int64_t j = 0; j < cols; j++) {
                const float gj = g[j] + c->wd * p[j];
                s1[j] += (1.0f - c->beta1) * (gj - s1[j]);
                s2[j] = c->beta2 * s2[j] + (1.0f - c->beta2) * gj * gj;
                p[j] -= step * s1[j] / (sqrtf(s2[j]) / c->bc2_sqrt + c->eps);
            }
        } else { /* torch.optim.Adagrad, lr_decay 0 */
            for (int64_t j = 0; j < cols; j++) {
                const float gj = g[j] + c->wd * p[j];
                s1[j] += gj * gj;
                p[j] -= c->lr * gj / (sqrtf(s1[j]) + c->eps);
            }
        }
    }
}

void meprop_adam_rows(float *p, float *exp_avg, float *exp_avg_sq, const float *g, const int64_t *rows, int64_t r,
                      int64_t cols, float lr, float beta1, float beta2, float eps, float wd, float bc1,
                      float bc2_sqrt, int nthreads) {
    update_ctx c = {p, exp_avg, exp_avg_sq, g, rows, r, cols, lr, beta1, beta2, eps, wd, bc1, bc2_sqrt, 1};
    if (r * cols < (1 << 18) || r < 2 * nthreads) nthreads = 1;
    parallel_run(nthreads, update_work, &c);
}

void meprop_adagrad_rows(float *p, float *sum, const float *g, const int64_t *rows, int64_t r, int64_t cols,
                         float lr, float eps, float wd, int nthreads) {
    update_ctx c = {p, sum, NULL, g, rows, r, cols, lr, 0.0f, 0.0f, eps, wd, 1.0f, 1.0f, 0};
    if (r * cols < (1 << 18) || r < 2 * nthreads) nthreads = 1;
    parallel_run(nthreads, update_work, &c);
}

/* ---- unified top-k: column sums of |g|, and the two thin dense products -----------------------------
 *
 * With one index set for the batch the backward is dense: dx = g_k W_k (rows x k times k x m) and
 * dW_k = g_k^T x (k x rows times rows x m), with k a few dozen. A BLAS packs its operands for a deep inner
 * dimension; at k = 20 that packing and its blocking cost about half the time (scripts/bench_backprop.py,
 * docs/kernels.md). Here both products are register tiles of 4 x 32 floats (16 accumulators) over the
 * short dimension, with nothing packed:
 *   dx:   a tile is 4 rows of dx x 32 columns, summed over the k rows of W_k (which stay in L1/L2);
 *   dW_k: a tile is 4 rows of dW_k x 32 columns, summed over a block of THIN_BLOCK rows of x, then added to
 *         dW_k. x is read in pieces of 32 columns per row, 4 * m bytes apart, an order the hardware
 *         prefetchers do not follow, so the next block (one contiguous run) is prefetched in order meanwhile.
 */
#define THIN_COLS 32
#define THIN_ROWS 64   /* rows of dx per task: its k x m W_k stays in cache while they are written */
#define THIN_BLOCK 16  /* rows of x per dW_k pass: measured 13.7 ms at 10,000 x 2400, k=20 (8: 18.3; 32: 15.5) */

/* out[b..b+R) x [c0, c0+32) = A[b..b+R) . Bm[:, c0..c0+32); R is a constant in each use, so acc stays in registers */
__attribute__((always_inline)) static inline void nn_tile(const float *A, const float *Bm, float *out, int64_t k,
                                                          int64_t m, int64_t b, int64_t c0, const int R) {
    v8f acc[4][4] = {{{0}}};
    for (int64_t j = 0; j < k; j++) {
        const float *w = Bm + j * m + c0;
        const v8f w0 = *(const v8f *)w, w1 = *(const v8f *)(w + 8), w2 = *(const v8f *)(w + 16),
                  w3 = *(const v8f *)(w + 24);
        for (int r = 0; r < R; r++) {
            const float a = A[(b + r) * k + j];
            acc[r][0] += a * w0; acc[r][1] += a * w1; acc[r][2] += a * w2; acc[r][3] += a * w3;
        }
    }
    for (int r = 0; r < R; r++)
        for (int q = 0; q < 4; q++) *(v8f *)(out + (b + r) * m + c0 + 8 * q) = acc[r][q];
}

typedef struct { const float *A, *B; float *out; int64_t rows, k, m, next; } thin_ctx;

static void thin_nn_work(void *arg, int tid, int nthreads) {
    (void)tid; (void)nthreads;
    thin_ctx *c = (thin_ctx *)arg;
    const int64_t k = c->k, m = c->m, full = m / THIN_COLS * THIN_COLS;
    for (;;) {
        const int64_t b0 = __atomic_fetch_add(&c->next, THIN_ROWS, __ATOMIC_RELAXED);
        if (b0 >= c->rows) return;
        const int64_t b1 = b0 + THIN_ROWS < c->rows ? b0 + THIN_ROWS : c->rows;
        for (int64_t c0 = 0; c0 < full; c0 += THIN_COLS) {
            int64_t b = b0;
            for (; b + 4 <= b1; b += 4) nn_tile(c->A, c->B, c->out, k, m, b, c0, 4);
            switch (b1 - b) {
            case 3: nn_tile(c->A, c->B, c->out, k, m, b, c0, 3); break;
            case 2: nn_tile(c->A, c->B, c->out, k, m, b, c0, 2); break;
            case 1: nn_tile(c->A, c->B, c->out, k, m, b, c0, 1); break;
            }
        }
        for (int64_t b = b0; b < b1 && full < m; b++) { /* the last m mod 32 columns */
            float *o = c->out + b * m;
            memset(o + full, 0, sizeof(float) * (m - full));
            for (int64_t j = 0; j < k; j++) axpy(o + full, c->B + j * m + full, c->A[b * k + j], m - full);
        }
    }
}

/* out (rows x m) = A (rows x k) . Bm (k x m) */
void meprop_thin_nn(const float *A, const float *Bm, float *out, int64_t rows, int64_t k, int64_t m, int nthreads) {
    thin_ctx c = {A, Bm, out, rows, k, m, 0};
    if (rows * k * m < (1 << 20) || rows < 2 * THIN_ROWS) nthreads = 1;
    parallel_run(nthreads, thin_nn_work, &c);
}

/* out[j0..j0+R) x [c0, c0+32) (+)= A[b0..b1, j0..j0+R)^T . X[b0..b1, c0..c0+32) */
__attribute__((always_inline)) static inline void tn_tile(const float *A, const float *X, float *out, int64_t k,
                                                          int64_t m, int64_t b0, int64_t b1, int64_t j0, int64_t c0,
                                                          int store, const int R) {
    v8f acc[4][4] = {{{0}}};
    for (int64_t b = b0; b < b1; b++) {
        const float *x = X + b * m + c0;
        const v8f x0 = *(const v8f *)x, x1 = *(const v8f *)(x + 8), x2 = *(const v8f *)(x + 16),
                  x3 = *(const v8f *)(x + 24);
        for (int r = 0; r < R; r++) {
            const float a = A[b * k + j0 + r];
            acc[r][0] += a * x0; acc[r][1] += a * x1; acc[r][2] += a * x2; acc[r][3] += a * x3;
        }
    }
    for (int r = 0; r < R; r++)
        for (int q = 0; q < 4; q++) {
            v8f *o = (v8f *)(out + (j0 + r) * m + c0 + 8 * q);
            if (store) *o = acc[r][q];
            else *o += acc[r][q];
        }
}

static void thin_tn_work(void *arg, int tid, int nthreads) {
    thin_ctx *c = (thin_ctx *)arg;
    const int64_t k = c->k, m = c->m, rows = c->rows, tiles = m / THIN_COLS;
    /* each thread owns whole column tiles (and the last owns the m mod 32 rest): no element has two writers */
    const int64_t col0 = THIN_COLS * (tiles * tid / nthreads), col1 = THIN_COLS * (tiles * (tid + 1) / nthreads);
    const int64_t lines = (col1 - col0 + 15) / 16; /* cache lines of one row's share */
    for (int64_t b0 = 0; b0 < rows; b0 += THIN_BLOCK) {
        const int64_t b1 = b0 + THIN_BLOCK < rows ? b0 + THIN_BLOCK : rows;
        const int64_t next_rows = (b1 + THIN_BLOCK < rows ? b1 + THIN_BLOCK : rows) - b1;
        const int64_t to_fetch = next_rows * lines, per_tile = tiles > 0 ? (to_fetch * nthreads + tiles - 1) / tiles : 0;
        int64_t fetched = 0;
        for (int64_t c0 = col0; c0 < col1; c0 += THIN_COLS) {
            for (int64_t l = 0; l < per_tile && fetched < to_fetch; l++, fetched++)
                __builtin_prefetch(c->B + (b1 + fetched / lines) * m + col0 + 16 * (fetched % lines), 0, 2);
            int64_t j0 = 0;
            for (; j0 + 4 <= k; j0 += 4) tn_tile(c->A, c->B, c->out, k, m, b0, b1, j0, c0, b0 == 0, 4);
            switch (k - j0) {
            case 3: tn_tile(c->A, c->B, c->out, k, m, b0, b1, j0, c0, b0 == 0, 3); break;
            case 2: tn_tile(c->A, c->B, c->out, k, m, b0, b1, j0, c0, b0 == 0, 2); break;
            case 1: tn_tile(c->A, c->B, c->out, k, m, b0, b1, j0, c0, b0 == 0, 1); break;
            }
        }
    }
    if (tid == nthreads - 1 && tiles * THIN_COLS < m) { /* the last m mod 32 columns */
        const int64_t rest = tiles * THIN_COLS;
        for (int64_t j = 0; j < k; j++) memset(c->out + j * m + rest, 0, sizeof(float) * (m - rest));
        for (int64_t b = 0; b < rows; b++)
            for (int64_t j = 0; j < k; j++) axpy(c->out + j * m + rest, c->B + b * m + rest, c->A[b * k + j], m - rest);
    }
}

/* out (k x m) = A^T (k x rows) . X (rows x m) */
void meprop_thin_tn(const float *A, const float *X, float *out, int64_t rows, int64_t k, int64_t m, int nthreads) {
    thin_ctx c = {A, X, out, rows, k, m, 0};
    if (rows == 0) { memset(out, 0, sizeof(float) * k * m); return; }
    if (rows * k * m < (1 << 20) || m < 2 * THIN_COLS * nthreads) nthreads = 1;
    parallel_run(nthreads, thin_tn_work, &c);
}

/* out[j] = sum over the rows of |g[b, j]| (g is rows x n): the unified top-k's scores, in one pass over g */
void meprop_column_abs_sum(const float *g, int64_t rows, int64_t n, float *out) {
    memset(out, 0, sizeof(float) * n);
    for (int64_t b = 0; b < rows; b++) {
        const float *row = g + b * n;
        int64_t j = 0;
        for (; j + 8 <= n; j += 8) *(v8f *)(out + j) += (v8f)((v8i) * (const v8f *)(row + j) & 0x7fffffff);
        for (; j < n; j++) out[j] += fabsf(row[j]);
    }
}

/* ---- meProp-CNN: per-feature-map top-k and the convolution's gradients from the kept entries ------
 *
 * Feature map c of an output gradient g (batch, C, h, w) is the row of batch·h·w entries p = n·hw + i·w + j
 * (hw = h·w), found at g[n·C·hw + c·hw + i·w + j]: the selection reads the maps in place, without a
 * transposed copy. A score tensor (run_grad) is read through its own strides (cs per map, bs per example).
 *
 * The selection differs from the per-example one above because the rows differ: a map holds thousands
 * of entries, k is a few hundred, and after ReLU and max-pooling most entries are exactly zero. So a
 * pass first gathers the nonzero scores; if they are no more than k, all are kept (no ranking at all),
 * otherwise kth_largest (above) finds the k-th largest of them. Scores are compared as the bits of |score|
 * (for floats ≥ 0 the bit pattern orders like the value). Kept positions come out ascending, with ties
 * going to the lower position, as in the per-example selection; zero-score entries fill up to k when a
 * map has fewer than k nonzero ones (their gradient is zero, so they cost the products nothing).
 *
 * The products then visit only kept entries, with x and dx channels-last and zero-padded (xp, dxp:
 * (batch, Hp, Wp, C_in)) and dW, W as (C, kh, kw, C_in): the window of output (n, i, j) is kh runs of
 * kw·C_in contiguous floats, each one axpy.
 *
 *   dW[c]                          += v · xp[n, i·sh : i·sh+kh, j·sw : j·sw+kw, :]
 *   dxp[n, i·sh : .., j·sw : .., :] += v · W[c]
 */

static inline uint32_t magnitude_bits(float v) {
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    return u & 0x7fffffffu;
}

typedef struct {
    const float *score, *g; int64_t batch, C, hw, score_cs, score_bs, k; int64_t *pos; float *val;
} map_select_ctx;

/* Appends the entries of s[0..len) with a nonzero score (branch-free): key, position p0 + i, g value. */
static inline int64_t gather_nonzero(const float *s, const float *g, int64_t p0, int64_t len, uint32_t *key,
                                     int64_t *at, float *gv, int64_t count) {
    for (int64_t i = 0; i < len; i++) {
        const uint32_t u = magnitude_bits(s[i]);
        key[count] = u;
        at[count] = p0 + i;
        gv[count] = g[i];
        count += u != 0;
    }
    return count;
}

static void map_select_work(void *arg, int tid, int nthreads) {
    map_select_ctx *c = (map_select_ctx *)arg;
    const int64_t hw = c->hw, n = c->batch * hw, k = c->k, g_bs = c->C * hw;
    uint32_t *key = (uint32_t *)malloc(sizeof(uint32_t) * n), *scratch = (uint32_t *)malloc(sizeof(uint32_t) * 2 * n);
    int64_t *at = (int64_t *)malloc(sizeof(int64_t) * n);
    float *gv = (float *)malloc(sizeof(float) * n);
    uint32_t hist[2048];
    for (int64_t m = c->C * tid / nthreads; m < c->C * (tid + 1) / nthreads; m++) {
        int64_t count = 0; /* entries with a nonzero score, in position order */
        for (int64_t b = 0; b < c->batch; b++) {
            const float *s = c->score + m * c->score_cs + b * c->score_bs, *g = c->g + b * g_bs + m * hw;
            int64_t i = 0;
            for (; i + 8 <= hw; i += 8) { /* most blocks of 8 are all zero after ReLU and pooling: skip them */
                const v8i nonzero = *(const v8f *)(s + i) != (v8f){0};
                if (nonzero[0] | nonzero[1] | nonzero[2] | nonzero[3] | nonzero[4] | nonzero[5] | nonzero[6] |
                    nonzero[7])
                    count = gather_nonzero(s + i, g + i, b * hw + i, 8, key, at, gv, count);
            }
            count = gather_nonzero(s + i, g + i, b * hw + i, hw - i, key, at, gv, count);
        }
        int64_t *out_pos = c->pos + m * k;
        float *out_val = c->val + m * k;
        int64_t out = 0;
        if (count <= k) { /* keep every nonzero entry; the lowest zero-score positions fill up to k */
            int64_t zeros = k - count, j = 0;
            for (int64_t p = 0; zeros > 0; p++) {
                if (j < count && at[j] == p) {
                    out_pos[out] = p;
                    out_val[out++] = gv[j++];
                } else { /* a zero score: g is zero too (|g| ≤ run_grad / (1 − decay)), read it all the same */
                    out_pos[out] = p;
                    out_val[out++] = c->g[(p / hw) * g_bs + m * hw + p % hw];
                    zeros--;
                }
            }
            for (; j < count; j++) {
                out_pos[out] = at[j];
                out_val[out++] = gv[j];
            }
        } else {
            /* a histogram of the top 11 bits of the keys (exponent and 3 mantissa bits) finds the bin that
             * holds the k-th largest; only that bin's keys go to kth_largest (measured with the quickselect
             * this used before: over all 500 candidates of a conv1 map it took twice as long) */
            memset(hist, 0, sizeof(hist));
            for (int64_t j = 0; j < count; j++) hist[key[j] >> 20]++;
            int64_t above = 0, bin = 2047;
            while (above + hist[bin] < k) above += hist[bin--];
            int64_t in_bin = 0;
            for (int64_t j = 0; j < count; j++) {
                scratch[in_bin] = key[j];
                in_bin += (key[j] >> 20) == (uint32_t)bin;
            }
            const uint32_t kth = kth_largest(scratch, scratch + n, in_bin, k - above);
            above = 0; /* every key above the k-th, counted again: kth_largest leaves scratch in pieces */
            for (int64_t j = 0; j < count; j++) above += key[j] > kth;
            int64_t ties = k - above; /* entries equal to the k-th kept: the lowest positions */
            for (int64_t j = 0; j < count && out < k; j++) {
                if (key[j] > kth || (key[j] == kth && ties-- > 0)) {
                    out_pos[out] = at[j];
                    out_val[out++] = gv[j];
                }
            }
        }
    }
    free(key); free(scratch); free(at); free(gv);
}

/* pos, val (C, k) <- per feature map of g (batch, C, hw), the k entries of largest |score|, ascending. */
void meprop_select_maps(const float *score, int64_t score_cs, int64_t score_bs, const float *g, int64_t batch,
                        int64_t C, int64_t hw, int64_t k, int64_t *pos, float *val, int nthreads) {
    map_select_ctx c = {score, g, batch, C, hw, score_cs, score_bs, k, pos, val};
    if (C < 2 * nthreads || C * batch * hw < (1 << 16)) nthreads = 1;
    parallel_run(nthreads, map_select_work, &c);
}

typedef struct {
    const int64_t *pos; const float *val, *xp, *wl; float *dw, *dxp;
    int64_t batch, C, k, h, w, Hp, Wp, cin, kh, kw, sh, sw;
    int64_t *window; /* window[p]: offset in xp / dxp of the window of output position p */
} conv_ctx;

/* The window offsets, so that the products do no integer division per entry. */
static int64_t *window_offsets(const conv_ctx *c) {
    int64_t *window = (int64_t *)malloc(sizeof(int64_t) * c->batch * c->h * c->w), p = 0;
    for (int64_t b = 0; b < c->batch; b++)
        for (int64_t i = 0; i < c->h; i++)
            for (int64_t j = 0; j < c->w; j++) window[p++] = ((b * c->Hp + i * c->sh) * c->Wp + j * c->sw) * c->cin;
    return window;
}

/* The first place in the ascending pos[0..k) holding a position ≥ p. */
static int64_t lower_bound(const int64_t *pos, int64_t k, int64_t p) {
    int64_t lo = 0, hi = k;
    while (lo < hi) { const int64_t mid = (lo + hi) / 2; if (pos[mid] < p) lo = mid + 1; else hi = mid; }
    return lo;
}

/* dW: each thread owns a range of output channels (rows of dW). */
static void conv_weight_work(void *arg, int tid, int nthreads) {
    conv_ctx *c = (conv_ctx *)arg;
    const int64_t run = c->kw * c->cin, size = c->kh * run;
    for (int64_t m = c->C * tid / nthreads; m < c->C * (tid + 1) / nthreads; m++) {
        float *dw = c->dw + m * size;
        memset(dw, 0, sizeof(float) * size);
        for (int64_t e = m * c->k; e < (m + 1) * c->k; e++) {
            const float v = c->val[e];
            if (v == 0.0f) continue;
            const float *x = c->xp + c->window[c->pos[e]];
            for (int64_t r = 0; r < c->kh; r++) axpy(dw + r * run, x + r * c->Wp * c->cin, v, run);
        }
    }
}

/* dx: each thread owns a range of examples (dxp is zeroed by the caller). */
static void conv_input_work(void *arg, int tid, int nthreads) {
    conv_ctx *c = (conv_ctx *)arg;
    const int64_t hw = c->h * c->w, run = c->kw * c->cin, size = c->kh * run;
    const int64_t b0 = c->batch * tid / nthreads, b1 = c->batch * (tid + 1) / nthreads;
    if (b0 >= b1) return;
    for (int64_t m = 0; m < c->C; m++) {
        const int64_t *pos = c->pos + m * c->k;
        const float *val = c->val + m * c->k, *wm = c->wl + m * size;
        for (int64_t e = lower_bound(pos, c->k, b0 * hw); e < c->k && pos[e] < b1 * hw; e++) {
            const float v = val[e];
            if (v == 0.0f) continue;
            float *dx = c->dxp + c->window[pos[e]];
            for (int64_t r = 0; r < c->kh; r++) axpy(dx + r * c->Wp * c->cin, wm + r * run, v, run);
        }
    }
}

/* From the kept entries (pos, val: (C, k)) of a convolution's output gradient:
 *   dw (C, kh, kw, cin)       <- Σ over the kept entries of each map of v · its window of xp (batch, Hp, Wp, cin)
 *   dxp (batch, Hp, Wp, cin)  += v · wl[c] (C, kh, kw, cin) at the window of every kept entry (zeroed by the caller)
 * dw or dxp may be NULL (that gradient is not needed). dW is split by channel, dx by example. */
void meprop_conv_grads(const int64_t *pos, const float *val, int64_t C, int64_t k, const float *xp, const float *wl,
                       int64_t batch, int64_t Hp, int64_t Wp, int64_t cin, int64_t h, int64_t w, int64_t kh,
                       int64_t kw, int64_t sh, int64_t sw, float *dw, float *dxp, int nthreads) {
    conv_ctx c = {pos, val, xp, wl, dw, dxp, batch, C, k, h, w, Hp, Wp, cin, kh, kw, sh, sw, NULL};
    c.window = window_offsets(&c);
    if (C * k * kh * kw * cin < (1 << 20)) nthreads = 1; /* small products: threads cost more than they save */
    if (dw) parallel_run(C < 2 * nthreads ? 1 : nthreads, conv_weight_work, &c);
    if (dxp) parallel_run(batch < 2 * nthreads ? 1 : nthreads, conv_input_work, &c);
    free(c.window);
}

/* ---- meAct: each example computes only its active neurons ---------------------------------------------
 *
 * The active (example, neuron) pairs are rows of a CSR layout: example b's neurons are cols[offsets[b] ..
 * offsets[b+1]), ascending. val / y hold one value per pair, in the same order.
 *
 *   y[e]   = bias[cols[e]] + W[cols[e]] . x[b]       the forward of the active pairs only
 *   dx[b]  = sum_e val[e] * W[cols[e]]
 *   dW[o] += val[e] * x[b]   for every cols[e] = o   (meprop_grad_weight's loop, rows of any length)
 *
 * Examples are taken in blocks of ACTIVE_BLOCK. In forward a block's pairs are sorted by neuron (counting
 * sort), so that each row of W is read once per block while the block's rows of x stay in L2: for neuron o,
 * the dot products W[o] . x[b] of four of its examples at once (one load of W).
 * The input gradient needs no sorting: per strip of 64 columns, each example of the block sums its pairs'
 * rows of W in registers, and the strip of W (n x 64 floats) stays in L2 while the block's examples read it. */
#define ACTIVE_BLOCK 32

typedef struct {
    const float *x, *W, *bias, *val; const int64_t *offsets, *cols; int64_t B, m, n; float *y, *dx; int64_t next;
} active_ctx;

/* start[o] .. start[o+1]: the block's pairs of neuron o, as (example in block, pair index) in ex, at */
static void sort_block(const active_ctx *c, int64_t b0, int64_t b1, int64_t *start, int64_t *ex, int64_t *at) {
    memset(start, 0, sizeof(int64_t) * (c->n + 1));
    for (int64_t e = c->offsets[b0]; e < c->offsets[b1]; e++) start[c->cols[e] + 1]++;
    for (int64_t o = 0; o < c->n; o++) start[o + 1] += start[o];
    for (int64_t b = b0; b < b1; b++)
        for (int64_t e = c->offsets[b]; e < c->offsets[b + 1]; e++) {
            const int64_t slot = start[c->cols[e]]++;
            ex[slot] = b;
            at[slot] = e;
        }
    for (int64_t o = c->n; o > 0; o--) start[o] = start[o - 1];
    start[0] = 0;
}

static inline float hsum(v8f s) {
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

static void active_forward_work(void *arg, int tid, int nthreads) {
    (void)tid; (void)nthreads;
    active_ctx *c = (active_ctx *)arg;
    const int64_t m = c->m, m8 = m - m % 8;
    int64_t *start = (int64_t *)malloc(sizeof(int64_t) * (c->n + 1));
    int64_t *ex = (int64_t *)malloc(sizeof(int64_t) * ACTIVE_BLOCK * c->n);
    int64_t *at = (int64_t *)malloc(sizeof(int64_t) * ACTIVE_BLOCK * c->n);
    for (;;) {
        const int64_t b0 = __atomic_fetch_add(&c->next, ACTIVE_BLOCK, __ATOMIC_RELAXED);
        if (b0 >= c->B) break;
        const int64_t b1 = b0 + ACTIVE_BLOCK < c->B ? b0 + ACTIVE_BLOCK : c->B;
        sort_block(c, b0, b1, start, ex, at);
        for (int64_t o = 0; o < c->n; o++) {
            const float *w = c->W + o * m;
            const float bias = c->bias ? c->bias[o] : 0.0f;
            int64_t s0 = start[o];
            for (; s0 + 4 <= start[o + 1]; s0 += 4) { /* four examples of neuron o: W[o] loaded once */
                const float *x0 = c->x + ex[s0] * m, *x1 = c->x + ex[s0 + 1] * m, *x2 = c->x + ex[s0 + 2] * m,
                            *x3 = c->x + ex[s0 + 3] * m;
                v8f a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
                for (int64_t i = 0; i < m8; i += 8) {
                    const v8f wv = *(const v8f *)(w + i);
                    a0 += wv * *(const v8f *)(x0 + i);
                    a1 += wv * *(const v8f *)(x1 + i);
                    a2 += wv * *(const v8f *)(x2 + i);
                    a3 += wv * *(const v8f *)(x3 + i);
                }
                float t0 = hsum(a0), t1 = hsum(a1), t2 = hsum(a2), t3 = hsum(a3);
                for (int64_t i = m8; i < m; i++) {
                    t0 += w[i] * x0[i]; t1 += w[i] * x1[i]; t2 += w[i] * x2[i]; t3 += w[i] * x3[i];
                }
                c->y[at[s0]] = t0 + bias; c->y[at[s0 + 1]] = t1 + bias;
                c->y[at[s0 + 2]] = t2 + bias; c->y[at[s0 + 3]] = t3 + bias;
            }
            for (; s0 < start[o + 1]; s0++) { /* the rest one at a time, four accumulators */
                const float *xr = c->x + ex[s0] * m;
                v8f a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
                int64_t i = 0;
                for (; i + 32 <= m; i += 32) {
                    a0 += *(const v8f *)(w + i) * *(const v8f *)(xr + i);
                    a1 += *(const v8f *)(w + i + 8) * *(const v8f *)(xr + i + 8);
                    a2 += *(const v8f *)(w + i + 16) * *(const v8f *)(xr + i + 16);
                    a3 += *(const v8f *)(w + i + 24) * *(const v8f *)(xr + i + 24);
                }
                for (; i + 8 <= m; i += 8) a0 += *(const v8f *)(w + i) * *(const v8f *)(xr + i);
                float t = hsum((a0 + a1) + (a2 + a3));
                for (; i < m; i++) t += w[i] * xr[i];
                c->y[at[s0]] = t + bias;
            }
        }
    }
    free(start); free(ex); free(at);
}

static void active_input_work(void *arg, int tid, int nthreads) {
    (void)tid; (void)nthreads;
    active_ctx *c = (active_ctx *)arg;
    const int64_t m = c->m;
    for (;;) {
        const int64_t b0 = __atomic_fetch_add(&c->next, ACTIVE_BLOCK, __ATOMIC_RELAXED);
        if (b0 >= c->B) return;
        const int64_t b1 = b0 + ACTIVE_BLOCK < c->B ? b0 + ACTIVE_BLOCK : c->B;
        int64_t i = 0;
        for (; i + STRIP <= m; i += STRIP) /* the strip of W (n x STRIP floats) stays in L2 for the block */
            for (int64_t b = b0; b < b1; b++) {
                v8f a[STRIP / 8] = {{0}};
                for (int64_t e = c->offsets[b]; e < c->offsets[b + 1]; e++) {
                    const float *wr = c->W + c->cols[e] * m + i;
                    const float v = c->val[e];
                    for (int q = 0; q < STRIP / 8; q++) a[q] += v * *(const v8f *)(wr + 8 * q);
                }
                for (int q = 0; q < STRIP / 8; q++) *(v8f *)(c->dx + b * m + i + 8 * q) = a[q];
            }
        if (i < m)
            for (int64_t b = b0; b < b1; b++) {
                memset(c->dx + b * m + i, 0, sizeof(float) * (m - i));
                for (int64_t e = c->offsets[b]; e < c->offsets[b + 1]; e++)
                    axpy(c->dx + b * m + i, c->W + c->cols[e] * m + i, c->val[e], m - i);
            }
    }
}

void meact_forward(const float *x, const float *W, const float *bias, const int64_t *offsets, const int64_t *cols,
                   int64_t B, int64_t m, int64_t n, float *y, int nthreads) {
    active_ctx c = {x, W, bias, NULL, offsets, cols, B, m, n, y, NULL, 0};
    if (offsets[B] * m < (1 << 20) || B < 2 * ACTIVE_BLOCK) nthreads = 1;
    parallel_run(nthreads, active_forward_work, &c);
}

void meact_grad_input(const float *val, const int64_t *offsets, const int64_t *cols, const float *W, int64_t B,
                      int64_t m, int64_t n, float *dx, int nthreads) {
    active_ctx c = {NULL, W, NULL, val, offsets, cols, B, m, n, NULL, dx, 0};
    if (offsets[B] * m < (1 << 20) || B < 2 * ACTIVE_BLOCK) nthreads = 1;
    parallel_run(nthreads, active_input_work, &c);
}

void meact_grad_weight(const float *val, const int64_t *offsets, const int64_t *cols, const float *x, int64_t B,
                       int64_t m, int64_t n, float *dW, int nthreads) {
    int64_t block_entries = 0;
    for (int64_t b0 = 0; b0 < B; b0 += WEIGHT_BLOCK_ROWS) {
        const int64_t b1 = b0 + WEIGHT_BLOCK_ROWS < B ? b0 + WEIGHT_BLOCK_ROWS : B;
        if (offsets[b1] - offsets[b0] > block_entries) block_entries = offsets[b1] - offsets[b0];
    }
    weight_ctx c = {val, cols, x, B, 0, m, NULL, n, dW, offsets, block_entries};
    run_grad_weight(&c, offsets[B], nthreads);
}

/* The active pairs of a batch (ops/meact.py, ActivityMemory.active): for example b (memory row ids[b]) the
 * neurons o with grad_sum[ids[b], o] >= threshold * (its row total), and always the row's largest (the first
 * one on ties); a row whose total is not > 0 (nothing recorded yet) has every neuron active. Fills offsets
 * (B + 1), cols and flat (room for B * n each; flat[e] = ids[b] * n + cols[e], the pair's place in the memory);
 * returns the number of pairs. */
int64_t meact_plan(const float *grad_sum, const int64_t *ids, int64_t B, int64_t n, float threshold,
                   int64_t *offsets, int64_t *cols, int64_t *flat) {
    int64_t e = 0;
    offsets[0] = 0;
    for (int64_t b = 0; b < B; b++) {
        const float *row = grad_sum + ids[b] * n;
        float total = 0.0f, best = -INFINITY;
        int64_t arg = 0;
        for (int64_t o = 0; o < n; o++) {
            total += row[o];
            if (row[o] > best) { best = row[o]; arg = o; }
        }
        const float cut = threshold * total;
        const int all = !(total > 0.0f);
        for (int64_t o = 0; o < n; o++) {
            if (all || row[o] >= cut || o == arg) {
                cols[e] = o;
                flat[e] = ids[b] * n + o;
                e++;
            }
        }
        offsets[b + 1] = e;
    }
    return e;
}

/* out[b] = last[ids[b]] with the active pairs replaced by a; last[ids[b], cols[e]] = a[e] (this encounter). */
void meact_merge(float *last, const int64_t *ids, const int64_t *offsets, const int64_t *cols, const float *a,
                 int64_t B, int64_t n, float *out) {
    for (int64_t b = 0; b < B; b++) {
        float *dst = out + b * n, *mem = last + ids[b] * n;
        memcpy(dst, mem, sizeof(float) * n);
        for (int64_t e = offsets[b]; e < offsets[b + 1]; e++) {
            dst[cols[e]] = a[e];
            mem[cols[e]] = a[e];
        }
    }
}
