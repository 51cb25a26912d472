/* Int8 forward pass of the TinyLLM decoder for CPU serving (called from tinyllm/cengine.py via ctypes).
 *
 * Same maths as tinyllm/engine.py (RMSNorm, RoPE on (even, odd) pairs, grouped-query attention,
 * SwiGLU, tied head), with every matrix stored as int8 in groups of `gs` inputs that share one float32
 * scale. Activations, norms, attention and the KV cache stay float32. Decoding one token reads each
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
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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

/* out[r] = sum_g s[r, g] * sum_{j in g} q[r, j] x[j], for rows r0 <= r < r1 */
static void matvec_q8_scalar(const QMat *w, const float *x, float *out, int r0, int r1) {
    const int ng = w->cols / w->gs;
    for (int r = r0; r < r1; r++) {
        const int8_t *q = w->q + (size_t)r * w->cols;
        const float *s = w->s + (size_t)r * ng;
        float acc = 0.f;
        for (int g = 0; g < ng; g++) {
            float a = 0.f;
            for (int j = g * w->gs; j < (g + 1) * w->gs; j++) a += (float)q[j] * x[j];
            acc += a * s[g];
        }
        out[r] = acc;
    }
}

#ifdef TL_X86
__attribute__((target("avx2,fma"))) static inline float hsum256(__m256 v) {
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
    return _mm_cvtss_f32(lo);
}

__attribute__((target("avx2,fma"))) static inline __m256 load_q8(const int8_t *p) {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)p)));
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

/* Four rows at a time: eight independent FMA chains keep both FMA ports busy (gs % 16 == 0). */
__attribute__((target("avx2,fma"))) static void matvec_q8_avx2(const QMat *w, const float *x, float *out, int r0,
                                                               int r1) {
    const int ng = w->cols / w->gs, gs = w->gs, cols = w->cols;
    int r = r0;
    for (; r + 4 <= r1; r += 4) {
        const int8_t *q0 = w->q + (size_t)r * cols, *q1 = q0 + cols, *q2 = q1 + cols, *q3 = q2 + cols;
        const float *s = w->s + (size_t)r * ng;
        __m256 t0 = _mm256_setzero_ps(), t1 = _mm256_setzero_ps(), t2 = _mm256_setzero_ps(),
               t3 = _mm256_setzero_ps();
        for (int g = 0; g < ng; g++) {
            __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(),
                   a3 = _mm256_setzero_ps(), b0 = _mm256_setzero_ps(), b1 = _mm256_setzero_ps(),
                   b2 = _mm256_setzero_ps(), b3 = _mm256_setzero_ps();
            for (int j = g * gs; j < (g + 1) * gs; j += 16) {
                __m256 x0 = _mm256_loadu_ps(x + j), x1 = _mm256_loadu_ps(x + j + 8);
                a0 = _mm256_fmadd_ps(load_q8(q0 + j), x0, a0);
                b0 = _mm256_fmadd_ps(load_q8(q0 + j + 8), x1, b0);
                a1 = _mm256_fmadd_ps(load_q8(q1 + j), x0, a1);
                b1 = _mm256_fmadd_ps(load_q8(q1 + j + 8), x1, b1);
                a2 = _mm256_fmadd_ps(load_q8(q2 + j), x0, a2);
                b2 = _mm256_fmadd_ps(load_q8(q2 + j + 8), x1, b2);
                a3 = _mm256_fmadd_ps(load_q8(q3 + j), x0, a3);
                b3 = _mm256_fmadd_ps(load_q8(q3 + j + 8), x1, b3);
            }
            t0 = _mm256_fmadd_ps(_mm256_add_ps(a0, b0), _mm256_set1_ps(s[g]), t0);
            t1 = _mm256_fmadd_ps(_mm256_add_ps(a1, b1), _mm256_set1_ps(s[ng + g]), t1);
            t2 = _mm256_fmadd_ps(_mm256_add_ps(a2, b2), _mm256_set1_ps(s[2 * ng + g]), t2);
            t3 = _mm256_fmadd_ps(_mm256_add_ps(a3, b3), _mm256_set1_ps(s[3 * ng + g]), t3);
        }
        out[r] = hsum256(t0);
        out[r + 1] = hsum256(t1);
        out[r + 2] = hsum256(t2);
        out[r + 3] = hsum256(t3);
    }
    if (r < r1) matvec_q8_scalar(w, x, out, r, r1);
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

static void matvec_q8(const QMat *w, const float *x, float *out) {
#ifdef TL_X86
    if (use_avx2 && w->gs % 16 == 0) {
        matvec_q8_avx2(w, x, out, 0, w->rows);
        return;
    }
#endif
    matvec_q8_scalar(w, x, out, 0, w->rows);
}

static void dequant_row(const QMat *w, int r, float *dst) {
    const int8_t *q = w->q + (size_t)r * w->cols;
    const float *s = w->s + (size_t)r * (w->cols / w->gs);
    for (int j = 0; j < w->cols; j++) dst[j] = (float)q[j] * s[j / w->gs];
}

/* out (n, rows) = x (n, cols) @ W^T. One token: the int8 kernel. Several: dequantize each row once
 * into `buf` (cols floats, stays in L1) and reuse it for every token. */
static void matmul_q8(const QMat *w, const float *x, int n, float *out, float *buf) {
    if (n == 1) {
        matvec_q8(w, x, out);
        return;
    }
    for (int r = 0; r < w->rows; r++) {
        dequant_row(w, r, buf);
        for (int t = 0; t < n; t++) out[(size_t)t * w->rows + r] = dot_f32(buf, x + (size_t)t * w->cols, w->cols);
    }
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

    const int widest = QKV > 2 * F ? (QKV > m->vocab ? QKV : m->vocab) : (2 * F > m->vocab ? 2 * F : m->vocab);
    float *x = malloc(sizeof(float) * (size_t)n * D), *xn = malloc(sizeof(float) * (size_t)n * D);
    float *big = malloc(sizeof(float) * (size_t)n * widest), *mid = malloc(sizeof(float) * (size_t)n * wide_in);
    float *buf = malloc(sizeof(float) * (size_t)wide_in), *att = malloc(sizeof(float) * (size_t)(max_pos + 1));
    if (!x || !xn || !big || !mid || !buf || !att) {
        free(x), free(xn), free(big), free(mid), free(buf), free(att);
        return -2;
    }
    for (int i = 0; i < n; i++) dequant_row(&m->emb, tok[i], x + (size_t)i * D);
    const float scale = 1.0f / sqrtf((float)Dh);

    for (int l = 0; l < m->n_layers; l++) {
        const Layer *L = &m->layers[l];
        /* attention: qkv projection, RoPE, cache write */
        for (int i = 0; i < n; i++) rms_norm(x + (size_t)i * D, L->attn_norm, D, m->eps, xn + (size_t)i * D);
        matmul_q8(&L->wqkv, xn, n, big, buf); /* big: (n, QKV) */
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
        matmul_q8(&L->wo, mid, n, xn, buf); /* xn reused as (n, D) output */
        for (size_t j = 0; j < (size_t)n * D; j++) x[j] += xn[j];
        /* SwiGLU feed-forward */
        for (int i = 0; i < n; i++) rms_norm(x + (size_t)i * D, L->ffn_norm, D, m->eps, xn + (size_t)i * D);
        matmul_q8(&L->w13, xn, n, big, buf); /* big: (n, 2F) */
        for (int i = 0; i < n; i++) {
            const float *a = big + (size_t)i * 2 * F, *b = a + F;
            float *o = mid + (size_t)i * F;
            for (int j = 0; j < F; j++) o[j] = a[j] / (1.0f + expf(-a[j])) * b[j];
        }
        matmul_q8(&L->w2, mid, n, xn, buf);
        for (size_t j = 0; j < (size_t)n * D; j++) x[j] += xn[j];
    }
    /* tied output head, only for the requested tokens */
    for (int o = 0; o < n_out; o++) {
        rms_norm(x + (size_t)out_idx[o] * D, m->final_norm, D, m->eps, xn);
        matvec_q8(&m->emb, xn, logits + (size_t)o * m->vocab);
    }
    free(x), free(xn), free(big), free(mid), free(buf), free(att);
    return 0;
}

/* 1 when the AVX2 + FMA kernels run on this CPU, 0 for the portable C loops. */
TL_EXPORT int tl_simd(void) { return simd_level(); }

/* Python module stub: the functions above are called through ctypes (tinyllm/cengine.py). */
static struct PyModuleDef kernels_module = {PyModuleDef_HEAD_INIT, "_kernels",
                                            "Int8 CPU kernels of the TinyLLM decoder (used through ctypes).", -1,
                                            NULL, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__kernels(void) { return PyModule_Create(&kernels_module); }
