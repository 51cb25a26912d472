/* Int8 forward pass of the TinyLLM decoder for CPU serving (called from tinyllm/infer/cengine.py via ctypes).
 *
 * Same maths as tinyllm/infer/engine.py (RMSNorm, RoPE on (even, odd) pairs, grouped-query attention,
 * SwiGLU, tied head), with every matrix stored as int8 in groups of `gs` inputs that share one float32
 * scale. With the model's act_int8 each matrix input is quantised the same way, so dot products are
 * integer sums; norms, attention, softmax and the KV cache stay float32. Decoding one token reads each
 * weight once, so int8 weights read 4x fewer bytes than float32 ones; at 13.8M parameters they also fit
 * in the L3 cache of a server CPU.
 *
 * One call, tl_forward, runs n tokens through the model: the T tokens of a prompt (prefill) or one
 * token per batch row (decode). Token i belongs to cache row row[i] at position pos[i]; each row's
 * tokens come in position order, and attention reads cache slots 0..pos[i] of its row.
 * Shapes: D dim, H heads, G kv heads, Dh head dim, F ffn hidden, V vocab, S cache length.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
#define TL_X86 1
#include <immintrin.h>
#endif

#define TL_EXPORT __attribute__((visibility("default")))

typedef struct {
    const int8_t *q; /* (rows, cols) int8 */
    const float *s;  /* (rows, cols / gs) scales */
    int32_t rows, cols, gs;
} QMat;

typedef struct {
    const float *attn_norm, *ffn_norm; /* (D,) */
    QMat wqkv;                         /* ((H + 2G) Dh, D): wq, wk, wv stacked */
    QMat wo;                           /* (D, H Dh) */
    QMat w13;                          /* (2F, D): w1 then w3 */
    QMat w2;                           /* (D, F) */
} Layer;

typedef struct {
    int32_t dim, n_layers, n_heads, kv_heads, head_dim, hidden, vocab, max_seq;
    float eps;
    QMat emb;                /* (V, D): embedding rows and the tied output head */
    const float *final_norm; /* (D,) */
    const float *cos, *sin;  /* (max_seq, Dh / 2) */
    const Layer *layers;
    int32_t act_int8; /* 1: quantise each matrix input to int8 too (groups of gs), integer dot products */
} Model;

typedef struct {
    float *k, *v; /* (rows, n_layers, G, seq, Dh) */
    int32_t rows, seq;
} Cache;

/* ---- dot products ------------------------------------------------------------------------------ */

static float dot_f32_scalar(const float *a, const float *b, int n) {
    float s0 = 0.f, s1 = 0.f, s2 = 0.f, s3 = 0.f;
    int j = 0;
    for (; j + 4 <= n; j += 4) {
        s0 += a[j] * b[j];
        s1 += a[j + 1] * b[j + 1];
        s2 += a[j + 2] * b[j + 2];
        s3 += a[j + 3] * b[j + 3];
    }
    for (; j < n; j++) s0 += a[j] * b[j];
    return (s0 + s1) + (s2 + s3);
}

#ifdef TL_X86
__attribute__((target("avx2,fma"))) static inline float hsum256(__m256 v) {
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
    return _mm_cvtss_f32(lo);
}

__attribute__((target("avx2,fma"))) static float dot_f32_avx2(const float *a, const float *b, int n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int j = 0;
    for (; j + 16 <= n; j += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + j), _mm256_loadu_ps(b + j), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + j + 8), _mm256_loadu_ps(b + j + 8), s1);
    }
    float s = hsum256(_mm256_add_ps(s0, s1));
    for (; j < n; j++) s += a[j] * b[j];
    return s;
}

/* One row at a time, reading it front to back in 16-byte loads: a single sequential stream that the
 * hardware prefetcher follows (interleaving rows measured 35-45% slower once the weights outgrow L2).
 * Each group of 16 inputs feeds one of four accumulators; their sum is scaled once per group. */
__attribute__((target("avx2,fma"))) static void matvec_q8_avx2(const QMat *w, const float *x, float *out, int r0,
                                                               int r1) {
    const int ng = w->cols / w->gs, gs = w->gs, cols = w->cols;
    for (int r = r0; r < r1; r++) {
        const int8_t *q = w->q + (size_t)r * cols;
        const float *s = w->s + (size_t)r * ng;
        __m256 t = _mm256_setzero_ps();
        for (int g = 0; g < ng; g++) {
            __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(),
                   a3 = _mm256_setzero_ps();
            for (int j = g * gs; j < (g + 1) * gs; j += 32) {
                __m128i b0 = _mm_loadu_si128((const __m128i *)(q + j));
                a0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b0)), _mm256_loadu_ps(x + j), a0);
                a1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(b0, 8))),
                                     _mm256_loadu_ps(x + j + 8), a1);
                if (j + 16 < (g + 1) * gs) {
                    __m128i b1 = _mm_loadu_si128((const __m128i *)(q + j + 16));
                    a2 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b1)), _mm256_loadu_ps(x + j + 16),
                                         a2);
                    a3 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(b1, 8))),
                                         _mm256_loadu_ps(x + j + 24), a3);
                }
            }
            t = _mm256_fmadd_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)), _mm256_set1_ps(s[g]), t);
        }
        out[r] = hsum256(t);
    }
}

/* n tokens against one float32 row (a dequantised weight row): four tokens at a time, eight chains. */
__attribute__((target("avx2,fma"))) static void row_dots_avx2(const float *w, const float *x, int n, int cols,
                                                              float *out, size_t stride) {
    int t = 0;
    for (; t + 4 <= n; t += 4) {
        const float *x0 = x + (size_t)t * cols, *x1 = x0 + cols, *x2 = x1 + cols, *x3 = x2 + cols;
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
        __m256 b0 = _mm256_setzero_ps(), b1 = _mm256_setzero_ps(), b2 = _mm256_setzero_ps(), b3 = _mm256_setzero_ps();
        int j = 0;
        for (; j + 16 <= cols; j += 16) {
            __m256 w0 = _mm256_loadu_ps(w + j), w1 = _mm256_loadu_ps(w + j + 8);
            a0 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x0 + j), a0);
            b0 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x0 + j + 8), b0);
            a1 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x1 + j), a1);
            b1 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x1 + j + 8), b1);
            a2 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x2 + j), a2);
            b2 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x2 + j + 8), b2);
            a3 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x3 + j), a3);
            b3 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x3 + j + 8), b3);
        }
        float r0 = hsum256(_mm256_add_ps(a0, b0)), r1 = hsum256(_mm256_add_ps(a1, b1));
        float r2 = hsum256(_mm256_add_ps(a2, b2)), r3 = hsum256(_mm256_add_ps(a3, b3));
        for (; j < cols; j++) r0 += w[j] * x0[j], r1 += w[j] * x1[j], r2 += w[j] * x2[j], r3 += w[j] * x3[j];
        out[t * stride] = r0, out[(t + 1) * stride] = r1, out[(t + 2) * stride] = r2, out[(t + 3) * stride] = r3;
    }
    for (; t < n; t++) out[t * stride] = dot_f32_avx2(w, x + (size_t)t * cols, cols);
}
#endif

static int use_avx2 = -1; /* -1: not decided yet */

static int simd_level(void) {
    if (use_avx2 < 0) {
#ifdef TL_X86
        __builtin_cpu_init();
        use_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
        use_avx2 = 0;
#endif
    }
    return use_avx2;
}

static float dot_f32(const float *a, const float *b, int n) {
#ifdef TL_X86
    if (use_avx2) return dot_f32_avx2(a, b, n);
#endif
    return dot_f32_scalar(a, b, n);
}

/* Symmetric int8 of one vector in groups of gs, the rule for weights (tl_quantize) and matrix inputs
 * alike: s[g] = max |x| / 127 (1 for an all-zero group), q = rint(x / s) with float32 maths and
 * round half to even, exactly as cengine.quantize does it in numpy. */
static void quantize_vec(const float *x, int cols, int gs, int8_t *q, float *s) {
    for (int g = 0; g < cols / gs; g++) {
        const float *src = x + (size_t)g * gs;
        float mx = 0.f;
        for (int j = 0; j < gs; j++) mx = fmaxf(mx, fabsf(src[j]));
        float scale = mx / 127.0f;
        if (scale == 0.f) scale = 1.f;
        s[g] = scale;
        for (int j = 0; j < gs; j++) {
            float v = (src[j] / scale + 12582912.0f) - 12582912.0f; /* round half to even, |v| <= 127 */
            q[(size_t)g * gs + j] = (int8_t)(v > 127.f ? 127.f : v < -127.f ? -127.f : v);
        }
    }
}

/* Portable rows r0 <= r < r1 of W @ x: out[r] = sum_g s[r, g] * sum_{j in g} q[r, j] x[j]. With xq
 * (x in int8, group scales xs) each group's sum is an exact integer, scaled by s[r, g] * xs[g]. */
static void matvec_scalar(const QMat *w, const float *x, const int8_t *xq, const float *xs, float *out, int r0,
                          int r1) {
    const int ng = w->cols / w->gs;
    for (int r = r0; r < r1; r++) {
        const int8_t *q = w->q + (size_t)r * w->cols;
        const float *s = w->s + (size_t)r * ng;
        float acc = 0.f;
        for (int g = 0; g < ng; g++) {
            const int j0 = g * w->gs, j1 = j0 + w->gs;
            if (xq) {
                int32_t a = 0;
                for (int j = j0; j < j1; j++) a += (int32_t)q[j] * xq[j];
                acc += (float)a * (s[g] * xs[g]);
            } else {
                float a = 0.f;
                for (int j = j0; j < j1; j++) a += (float)q[j] * x[j];
                acc += a * s[g];
            }
        }
        out[r] = acc;
    }
}

#ifdef TL_X86
/* 32 int8 products per instruction (vpmaddubsw on |w| and x carrying w's sign; |w|, |x| <= 127 so the
 * int16 pair sums cannot saturate), then vpmaddwd to int32. gs % 32 == 0. */
__attribute__((target("avx2,fma"))) static void matvec_q8q8_avx2(const QMat *w, const int8_t *xq, const float *xs,
                                                                 float *out, int r0, int r1) {
    const int ng = w->cols / w->gs, gs = w->gs, cols = w->cols;
    const __m256i ones = _mm256_set1_epi16(1);
    for (int r = r0; r < r1; r++) {
        const int8_t *q = w->q + (size_t)r * cols;
        const float *s = w->s + (size_t)r * ng;
        __m256 t = _mm256_setzero_ps();
        for (int g = 0; g < ng; g++) {
            __m256i acc = _mm256_setzero_si256();
            for (int j = g * gs; j < (g + 1) * gs; j += 32) {
                const __m256i wv = _mm256_loadu_si256((const __m256i *)(q + j));
                const __m256i xv = _mm256_loadu_si256((const __m256i *)(xq + j));
                const __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(wv, wv), _mm256_sign_epi8(xv, wv));
                acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, ones));
            }
            t = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc), _mm256_set1_ps(s[g] * xs[g]), t);
        }
        out[r] = hsum256(t);
    }
}
#endif

static void dequant_row(const QMat *w, int r, float *dst) {
    const int8_t *q = w->q + (size_t)r * w->cols;
    const float *s = w->s + (size_t)r * (w->cols / w->gs);
    for (int g = 0; g < w->cols / w->gs; g++)
        for (int j = g * w->gs; j < (g + 1) * w->gs; j++) dst[j] = (float)q[j] * s[g];
}

/* Rows r0 <= r < r1 of out (n, rows) = x (n, cols) @ W^T. One token: the int8 kernel. Several: each
 * row is dequantised once into a buffer that stays in L1 and reused for every token. */
static void matmul_rows(const QMat *w, const float *x, const int8_t *xq, const float *xs, int n, float *out, int r0,
                        int r1) {
    if (xq) { /* int8 activations, token by token (blocking rows to reuse them across tokens measured
               * 5-15% slower: the weights stream from L3 fast enough) */
        const int ng = w->cols / w->gs;
        for (int t = 0; t < n; t++) {
#ifdef TL_X86
            if (use_avx2 && w->gs % 32 == 0) {
                matvec_q8q8_avx2(w, xq + (size_t)t * w->cols, xs + (size_t)t * ng, out + (size_t)t * w->rows, r0, r1);
                continue;
            }
#endif
            matvec_scalar(w, NULL, xq + (size_t)t * w->cols, xs + (size_t)t * ng, out + (size_t)t * w->rows, r0, r1);
        }
        return;
    }
    if (n == 1) {
#ifdef TL_X86
        if (use_avx2 && w->gs % 16 == 0) {
            matvec_q8_avx2(w, x, out, r0, r1);
            return;
        }
#endif
        matvec_scalar(w, x, NULL, NULL, out, r0, r1);
        return;
    }
    float buf[w->cols];
    for (int r = r0; r < r1; r++) {
        dequant_row(w, r, buf);
#ifdef TL_X86
        if (use_avx2) {
            row_dots_avx2(buf, x, n, w->cols, out + r, (size_t)w->rows);
            continue;
        }
#endif
        for (int t = 0; t < n; t++) out[(size_t)t * w->rows + r] = dot_f32(buf, x + (size_t)t * w->cols, w->cols);
    }
}

/* ---- a small thread pool for the matrix products ----------------------------------------------
 * Each product is cut into chunks of CHUNK_ROWS rows that the calling thread and the workers take
 * one at a time from a shared ticket: (job id << 32) | next chunk, advanced by compare-and-swap, so
 * a worker still holding an old job id can never take a chunk of a newer job. If a worker is not
 * running (the machine is busy, it is still waking up) the caller simply takes more chunks: the pool
 * never waits for a thread that has not started its chunk. Workers spin for up to SPIN_NS after a
 * job (the next one comes within microseconds while a command is generated), then sleep on a
 * condition variable until the next request. */
#define TL_MAX_THREADS 16
#define SPIN_NS 2000000L
#define CHUNK_ROWS 64
#define STALL_NS 200000L   /* waiting this long for a worker's chunk means it was descheduled */
#define BACKOFF_JOBS 2500  /* then run this many products (~100 tokens) on the calling thread alone */

static int pool_threads = 1;  /* threads per product, the caller included (tl_set_threads) */
static int pool_spawned = 0;  /* workers running in this process */
static pid_t pool_pid = 0;    /* a forked child has no workers: respawn there */
static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_cv = PTHREAD_COND_INITIALIZER;
static _Atomic uint64_t pool_ticket; /* (job id << 32) | next chunk */
static atomic_int pool_done;         /* chunks finished in the current job */
static atomic_int pool_sleepers;     /* workers waiting on pool_cv */
static uint32_t pool_job_id;         /* written by the caller only */
static int pool_backoff;             /* products left to run single-threaded after a stall */
static struct {
    const QMat *w;
    const float *x;
    const int8_t *xq; /* the quantised x, or NULL */
    const float *xs;
    float *out;
    int n;
    atomic_int chunks; /* read by a worker before it knows the job is still current */
} pool_job;

static inline void cpu_relax(void) {
#ifdef TL_X86
    __builtin_ia32_pause();
#endif
}

static long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

/* Take and run chunks of job `id` until none are left (or a newer job replaced it). */
static void pool_work(uint32_t id) {
    for (;;) {
        uint64_t t = atomic_load_explicit(&pool_ticket, memory_order_acquire);
        const uint32_t c = (uint32_t)t;
        if ((uint32_t)(t >> 32) != id || c >= (uint32_t)atomic_load_explicit(&pool_job.chunks, memory_order_relaxed)) return;
        if (!atomic_compare_exchange_weak_explicit(&pool_ticket, &t, t + 1, memory_order_acq_rel,
                                                   memory_order_acquire))
            continue;
        const int r0 = (int)c * CHUNK_ROWS, r1 = r0 + CHUNK_ROWS < pool_job.w->rows ? r0 + CHUNK_ROWS : pool_job.w->rows;
        matmul_rows(pool_job.w, pool_job.x, pool_job.xq, pool_job.xs, pool_job.n, pool_job.out, r0, r1);
        atomic_fetch_add_explicit(&pool_done, 1, memory_order_release);
    }
}

static uint32_t pool_start_id[TL_MAX_THREADS]; /* the job id when each worker was created */

static void *pool_worker(void *arg) {
    uint32_t seen = pool_start_id[(int)(intptr_t)arg]; /* not a fresh load: a job may be posted before we run */
    for (;;) {
        uint32_t id;
        long start = now_ns();
        int spins = 0;
        while ((id = (uint32_t)(atomic_load_explicit(&pool_ticket, memory_order_acquire) >> 32)) == seen) {
            cpu_relax();
            if (++spins % 1024 == 0 && now_ns() - start > SPIN_NS) {
                pthread_mutex_lock(&pool_mu);
                atomic_fetch_add(&pool_sleepers, 1);
                while ((id = (uint32_t)(atomic_load(&pool_ticket) >> 32)) == seen) pthread_cond_wait(&pool_cv, &pool_mu);
                atomic_fetch_sub(&pool_sleepers, 1);
                pthread_mutex_unlock(&pool_mu);
                break;
            }
        }
        seen = id;
        pool_work(id);
    }
    return NULL;
}

/* Start workers until there are pool_threads - 1 of them (in this process); 0, or -1 if none could start. */
static int pool_ensure(void) {
    if (pool_pid != getpid()) pool_spawned = 0, pool_pid = getpid();
    while (pool_spawned < pool_threads - 1) {
        pthread_t tid;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pool_start_id[pool_spawned + 1] = pool_job_id;
        int rc = pthread_create(&tid, &attr, pool_worker, (void *)(intptr_t)(pool_spawned + 1));
        pthread_attr_destroy(&attr);
        if (rc != 0) {
            pool_threads = pool_spawned + 1;
            return pool_spawned ? 0 : -1;
        }
        pool_spawned++;
    }
    return 0;
}

typedef struct {
    int8_t *q; /* room for n x (widest matrix input) int8 */
    float *s;  /* and their group scales */
} ActBuf;

/* out (n, rows) = x (n, cols) @ W^T; with `act`, x is first quantised to int8 (the model's act_int8). */
static void matmul_q8(const QMat *w, const float *x, int n, float *out, const ActBuf *act) {
    const int8_t *xq = NULL;
    const float *xs = NULL;
    if (act) {
        const int ng = w->cols / w->gs;
        for (int t = 0; t < n; t++)
            quantize_vec(x + (size_t)t * w->cols, w->cols, w->gs, act->q + (size_t)t * w->cols, act->s + (size_t)t * ng);
        xq = act->q, xs = act->s;
    }
    const int chunks = (w->rows + CHUNK_ROWS - 1) / CHUNK_ROWS;
    if (pool_backoff > 0) pool_backoff--;
    if (pool_threads <= 1 || pool_spawned == 0 || chunks < 2 || pool_backoff > 0) {
        matmul_rows(w, x, xq, xs, n, out, 0, w->rows);
        return;
    }
    /* Publish the job, then its ticket (release): a worker that takes a chunk sees the fields. The
     * previous job is finished (every chunk counted), so no worker is reading the fields now. */
    pool_job.w = w, pool_job.x = x, pool_job.xq = xq, pool_job.xs = xs, pool_job.out = out, pool_job.n = n;
    atomic_store_explicit(&pool_job.chunks, chunks, memory_order_relaxed);
    atomic_store_explicit(&pool_done, 0, memory_order_relaxed);
    const uint32_t id = ++pool_job_id;
    pthread_mutex_lock(&pool_mu); /* with the workers' check under the same lock: no lost wake-up */
    atomic_store_explicit(&pool_ticket, (uint64_t)id << 32, memory_order_release);
    if (atomic_load(&pool_sleepers)) pthread_cond_broadcast(&pool_cv);
    pthread_mutex_unlock(&pool_mu);
    pool_work(id);
    if (atomic_load_explicit(&pool_done, memory_order_acquire) < chunks) {
        /* A worker still holds a chunk. If it was preempted (another program wants the core), the
         * wait lasts a scheduler time slice: then stop handing out chunks for a while, so a busy
         * machine costs at most the single-thread speed. */
        const long t0 = now_ns();
        while (atomic_load_explicit(&pool_done, memory_order_acquire) < chunks) cpu_relax();
        if (now_ns() - t0 > STALL_NS) pool_backoff = BACKOFF_JOBS;
    }
}

/* Threads per matrix product (1..16, the caller included); returns the number now in use. */
TL_EXPORT int tl_set_threads(int n) {
    pool_threads = n < 1 ? 1 : n > TL_MAX_THREADS ? TL_MAX_THREADS : n;
    pool_ensure();
    return pool_threads;
}

/* ---- the forward pass ------------------------------------------------------------------------- */

static void rms_norm(const float *x, const float *w, int d, float eps, float *out) {
    float ss = 0.f;
    for (int j = 0; j < d; j++) ss += x[j] * x[j];
    const float inv = 1.0f / sqrtf(ss / (float)d + eps);
    for (int j = 0; j < d; j++) out[j] = x[j] * inv * w[j];
}

static void rope(float *v, const float *cos, const float *sin, int dh) {
    for (int i = 0; i < dh / 2; i++) {
        const float a = v[2 * i], b = v[2 * i + 1];
        v[2 * i] = a * cos[i] - b * sin[i];
        v[2 * i + 1] = a * sin[i] + b * cos[i];
    }
}

/* Pointer to cache slot (row, layer, kv head g, position p). */
static float *slot(const Model *m, const Cache *c, float *base, int row, int layer, int g, int p) {
    const size_t dh = (size_t)m->head_dim;
    return base + ((((size_t)row * m->n_layers + layer) * m->kv_heads + g) * c->seq + p) * dh;
}

static pthread_mutex_t forward_mu = PTHREAD_MUTEX_INITIALIZER;

/* Returns 0, or -1 on bad arguments (row or position out of range), -2 when out of memory. */
TL_EXPORT int tl_forward(const Model *m, Cache *c, int n, const int32_t *tok, const int32_t *row, const int32_t *pos,
                         int n_out, const int32_t *out_idx, float *logits) {
    const int D = m->dim, H = m->n_heads, G = m->kv_heads, Dh = m->head_dim, F = m->hidden;
    const int QKV = (H + 2 * G) * Dh, R = H / G, HD = H * Dh;
    const int wide_in = F > D ? (F > HD ? F : HD) : (D > HD ? D : HD); /* longest matrix row */
    int max_pos = 0;
    for (int i = 0; i < n; i++) {
        if (row[i] < 0 || row[i] >= c->rows || pos[i] < 0 || pos[i] >= c->seq || pos[i] >= m->max_seq) return -1;
        if (tok[i] < 0 || tok[i] >= m->vocab) return -1;
        if (pos[i] > max_pos) max_pos = pos[i];
    }
    for (int i = 0; i < n_out; i++)
        if (out_idx[i] < 0 || out_idx[i] >= n) return -1;
    simd_level();
    pthread_mutex_lock(&forward_mu); /* one forward pass at a time: the pool and its job are shared */
    if (pool_threads > 1) pool_ensure(); /* after a fork: this process has no workers yet */

    const int widest = QKV > 2 * F ? QKV : 2 * F; /* the wider of the qkv and w1/w3 outputs (logits go to the caller) */
    float *x = malloc(sizeof(float) * (size_t)n * D), *xn = malloc(sizeof(float) * (size_t)n * D);
    float *big = malloc(sizeof(float) * (size_t)n * widest), *mid = malloc(sizeof(float) * (size_t)n * wide_in);
    float *att = malloc(sizeof(float) * (size_t)(max_pos + 1));
    ActBuf actbuf = {NULL, NULL}, *act = NULL;
    if (m->act_int8) {
        actbuf.q = malloc((size_t)n * wide_in);
        actbuf.s = malloc(sizeof(float) * (size_t)n * (wide_in / 16 + 1));
        act = &actbuf;
    }
    if (!x || !xn || !big || !mid || !att || (act && (!actbuf.q || !actbuf.s))) {
        free(x), free(xn), free(big), free(mid), free(att), free(actbuf.q), free(actbuf.s);
        pthread_mutex_unlock(&forward_mu);
        return -2;
    }
    for (int i = 0; i < n; i++) dequant_row(&m->emb, tok[i], x + (size_t)i * D);
    const float scale = 1.0f / sqrtf((float)Dh);

    for (int l = 0; l < m->n_layers; l++) {
        const Layer *L = &m->layers[l];
        /* attention: qkv projection, RoPE, cache write */
        for (int i = 0; i < n; i++) rms_norm(x + (size_t)i * D, L->attn_norm, D, m->eps, xn + (size_t)i * D);
        matmul_q8(&L->wqkv, xn, n, big, act); /* big: (n, QKV) */
        for (int i = 0; i < n; i++) {
            float *qkv = big + (size_t)i * QKV;
            const float *cs = m->cos + (size_t)pos[i] * (Dh / 2), *sn = m->sin + (size_t)pos[i] * (Dh / 2);
            for (int h = 0; h < H + G; h++) rope(qkv + h * Dh, cs, sn, Dh); /* queries and keys */
            for (int g = 0; g < G; g++) {
                memcpy(slot(m, c, c->k, row[i], l, g, pos[i]), qkv + (H + g) * Dh, sizeof(float) * Dh);
                memcpy(slot(m, c, c->v, row[i], l, g, pos[i]), qkv + (H + G + g) * Dh, sizeof(float) * Dh);
            }
        }
        /* attention over each token's own row, slots 0..pos (every token's K/V is in the cache now) */
        for (int i = 0; i < n; i++) {
            const float *qkv = big + (size_t)i * QKV;
            float *y = mid + (size_t)i * HD;
            for (int h = 0; h < H; h++) {
                const int g = h / R, S = pos[i] + 1;
                const float *q = qkv + h * Dh, *kb = slot(m, c, c->k, row[i], l, g, 0);
                const float *vb = slot(m, c, c->v, row[i], l, g, 0);
                float mx = -INFINITY, sum = 0.f;
                for (int s = 0; s < S; s++) {
                    att[s] = dot_f32(q, kb + (size_t)s * Dh, Dh) * scale;
                    if (att[s] > mx) mx = att[s];
                }
                for (int s = 0; s < S; s++) sum += (att[s] = expf(att[s] - mx));
                float *yh = y + h * Dh;
                memset(yh, 0, sizeof(float) * Dh);
                for (int s = 0; s < S; s++) {
                    const float p = att[s] / sum, *vs = vb + (size_t)s * Dh;
                    for (int j = 0; j < Dh; j++) yh[j] += p * vs[j];
                }
            }
        }
        matmul_q8(&L->wo, mid, n, xn, act); /* xn reused as (n, D) output */
        for (size_t j = 0; j < (size_t)n * D; j++) x[j] += xn[j];
        /* SwiGLU feed-forward */
        for (int i = 0; i < n; i++) rms_norm(x + (size_t)i * D, L->ffn_norm, D, m->eps, xn + (size_t)i * D);
        matmul_q8(&L->w13, xn, n, big, act); /* big: (n, 2F) */
        for (int i = 0; i < n; i++) {
            const float *a = big + (size_t)i * 2 * F, *b = a + F;
            float *o = mid + (size_t)i * F;
            for (int j = 0; j < F; j++) o[j] = a[j] / (1.0f + expf(-a[j])) * b[j];
        }
        matmul_q8(&L->w2, mid, n, xn, act);
        for (size_t j = 0; j < (size_t)n * D; j++) x[j] += xn[j];
    }
    /* tied output head, only for the requested tokens */
    for (int o = 0; o < n_out; o++) {
        rms_norm(x + (size_t)out_idx[o] * D, m->final_norm, D, m->eps, xn);
        matmul_q8(&m->emb, xn, 1, logits + (size_t)o * m->vocab, act);
    }
    free(x), free(xn), free(big), free(mid), free(att), free(actbuf.q), free(actbuf.s);
    pthread_mutex_unlock(&forward_mu);
    return 0;
}

/* Quantise a (rows, cols) matrix row by row (quantize_vec). */
TL_EXPORT void tl_quantize(const float *w, int rows, int cols, int gs, int8_t *q, float *s) {
    for (int r = 0; r < rows; r++) quantize_vec(w + (size_t)r * cols, cols, gs, q + (size_t)r * cols, s + (size_t)r * (cols / gs));
}

/* out (n, rows) = x (n, cols) @ W^T through the kernels the forward pass uses (tests, benchmarks). */
TL_EXPORT int tl_matmul(const QMat *w, const float *x, int n, float *out, int act_int8) {
    simd_level();
    ActBuf actbuf = {NULL, NULL};
    if (act_int8) {
        actbuf.q = malloc((size_t)n * w->cols);
        actbuf.s = malloc(sizeof(float) * (size_t)n * (w->cols / w->gs));
        if (!actbuf.q || !actbuf.s) {
            free(actbuf.q), free(actbuf.s);
            return -2;
        }
    }
    pthread_mutex_lock(&forward_mu);
    if (pool_threads > 1) pool_ensure();
    matmul_q8(w, x, n, out, act_int8 ? &actbuf : NULL);
    pthread_mutex_unlock(&forward_mu);
    free(actbuf.q), free(actbuf.s);
    return 0;
}

/* 1 when the AVX2 + FMA kernels run on this CPU, 0 for the portable C loops. */
TL_EXPORT int tl_simd(void) { return simd_level(); }

/* Tests: use the portable loops (on = 0) or the SIMD kernels where the CPU has them (on = 1). */
TL_EXPORT int tl_use_simd(int on) {
    use_avx2 = -1;
    simd_level();
    if (!on) use_avx2 = 0;
    return use_avx2;
}

/* Python module stub: the functions above are called through ctypes (tinyllm/infer/cengine.py). */
static struct PyModuleDef kernels_module = {PyModuleDef_HEAD_INIT, "_kernels",
                                            "Int8 CPU kernels of the TinyLLM decoder (used through ctypes).", -1,
                                            NULL, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__kernels(void) { return PyModule_Create(&kernels_module); }
