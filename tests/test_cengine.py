"""The int8 C engine: same step-model behaviour as the numpy engine over the same (int8-rounded) weights."""

import numpy as np
import pytest

from tinyllm.formats.checkpoint import expected_weight_shapes
from tinyllm.formats.config import ModelConfig
from tinyllm.formats.quant import dequantized_weights, group_size, quantize
from tinyllm.infer import generate
from tinyllm.infer.cengine import CTransformer, unavailable_reason
from tinyllm.infer.engine import NumpyTransformer

needs_c = pytest.mark.skipif(unavailable_reason() is not None, reason=str(unavailable_reason()))

# grouped-query attention (4 heads share 2 kv heads), dims that take 32-input groups
CFG = ModelConfig(vocab_size=97, dim=96, n_layers=2, n_heads=4, n_kv_heads=2, ffn_hidden=160, max_seq_len=48)


def random_weights(cfg: ModelConfig, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in expected_weight_shapes(cfg).items():
        scale = 1.0 if name.endswith("norm.weight") else 0.5 / np.sqrt(shape[-1])
        base = 1.0 if name.endswith("norm.weight") else 0.0
        out[name] = (base + scale * rng.standard_normal(shape)).astype(np.float32)
    return out


@pytest.fixture(scope="module")
def engines():
    if unavailable_reason() is not None:
        pytest.skip(str(unavailable_reason()))
    w = random_weights(CFG)
    return CTransformer(CFG, w, activations="float32"), NumpyTransformer(CFG, dequantized_weights(CFG, w))


def test_quantize_error_is_at_most_half_a_step_per_group():
    w = np.random.default_rng(1).standard_normal((8, 128)).astype(np.float32)
    w[3, 5] = 40.0  # an outlier only coarsens its own group
    q, s = quantize(w, 64)
    assert q.dtype == np.int8 and s.shape == (8, 2) and np.abs(q).max() <= 127
    back = (q.reshape(8, 2, 64) * s[..., None]).reshape(8, 128)
    assert np.all(np.abs(back - w) <= s.repeat(64, axis=1) / 2 + 1e-6)
    assert s[3, 0] > 10 * s[3, 1]
    assert np.array_equal(quantize(np.zeros((2, 64), np.float32), 64)[0], np.zeros((2, 64), np.int8))


def test_group_size_follows_the_model_widths():
    assert group_size(ModelConfig()) == 64
    assert group_size(CFG) == 32
    with pytest.raises(ValueError):
        group_size(ModelConfig(dim=40, n_heads=4, ffn_hidden=64))


@needs_c
def test_prefill_and_decode_match_the_numpy_engine(engines, kernels):
    c, ref = engines
    prompts = [[5, 9, 2, 40, 7], [3, 1, 88], [60, 61, 62, 63, 64, 65, 66]]
    for e in (c, ref):
        e.setup_cache(3, 20)
    np.testing.assert_allclose(c.prefill(prompts), ref.prefill(prompts), rtol=1e-4, atol=1e-4)
    for step in range(6):
        toks = np.array([10 + step, 20 + step, 30 + step])
        np.testing.assert_allclose(c.decode(toks), ref.decode(toks), rtol=1e-4, atol=1e-4)


@needs_c
def test_uncached_forward_matches_cached_decoding(engines):
    c, _ = engines
    seq = [4, 8, 15, 16, 23, 42, 7, 9]
    full = c.forward(np.array([seq]))[0]  # (T, V)
    c.setup_cache(1, 16)
    steps = [c.prefill([seq[:3]])[0]] + [c.decode(np.array([t]))[0] for t in seq[3:]]
    np.testing.assert_allclose(np.stack(steps), full[2:], rtol=1e-5, atol=1e-5)


@needs_c
def test_rows_of_a_batch_do_not_see_each_other(engines):
    c, _ = engines
    c.setup_cache(2, 16)
    both = c.prefill([[1, 2, 3, 4, 5], [9, 8]])
    c.setup_cache(1, 16)
    alone = c.prefill([[9, 8]])
    np.testing.assert_allclose(both[1], alone[0], rtol=1e-5, atol=1e-5)


@needs_c
def test_greedy_and_beam_search_agree_with_the_numpy_engine(engines):
    c, ref = engines
    prompts = [[5, 9, 2, 40, 7], [3, 1, 88, 12]]
    assert [x.ids for x in generate.greedy(c, prompts, 12)] == [x.ids for x in generate.greedy(ref, prompts, 12)]
    got = generate.beam_search(c, prompts[0], beam=4, max_new_tokens=10)
    want = generate.beam_search(ref, prompts[0], beam=4, max_new_tokens=10)
    assert [x.ids for x in got] == [x.ids for x in want]
    assert np.allclose([x.score for x in got], [x.score for x in want], atol=1e-4)


@needs_c
def test_reorder_cache_copies_rows(engines):
    c, _ = engines
    c.setup_cache(2, 16)
    c.prefill([[1, 2, 3], [7, 7, 7, 7]])
    c.reorder_cache(np.array([1, 1]))
    out = c.decode(np.array([5, 5]))
    np.testing.assert_array_equal(out[0], out[1])
    assert list(c.lengths) == [5, 5]


@needs_c
def test_bad_input_is_an_error_not_a_crash(engines):
    c, _ = engines
    c.setup_cache(1, 8)
    with pytest.raises(ValueError):
        c.prefill([[CFG.vocab_size + 3]])  # token id out of range: checked in C before any memory is touched
    with pytest.raises(ValueError):
        c.prefill([list(range(1, 10))])  # longer than the cache
    c.prefill([[1, 2, 3, 4, 5, 6, 7]])
    c.decode(np.array([1]))
    with pytest.raises(ValueError):
        c.decode(np.array([1]))  # cache full


@needs_c
def test_c_quantize_is_bit_identical_to_numpy():
    from tinyllm.infer.cengine import _f32p, _i8p, _library

    rng = np.random.default_rng(7)
    w = (rng.standard_normal((33, 128)) * rng.uniform(0.01, 3, (33, 1))).astype(np.float32)
    w[4] = 0.0  # all-zero groups get scale 1
    w[5, :64] = np.linspace(-1, 1, 64, dtype=np.float32) * 127 / 2  # halves: round half to even
    q, s = np.empty((33, 128), np.int8), np.empty((33, 2), np.float32)
    _library().tl_quantize(w.ctypes.data_as(_f32p), 33, 128, 64, q.ctypes.data_as(_i8p), s.ctypes.data_as(_f32p))
    want_q, want_s = quantize(w, 64)
    np.testing.assert_array_equal(q, want_q)
    np.testing.assert_array_equal(s, want_s)


@pytest.fixture(params=["simd", "portable"])
def kernels(request):
    """Each kernel test runs with the AVX2 kernels (where the CPU has them) and with the portable loops."""
    from tinyllm.infer.cengine import _library

    lib = _library()
    lib.tl_use_simd(int(request.param == "simd"))
    yield request.param
    lib.tl_use_simd(1)


@needs_c
@pytest.mark.parametrize("act_int8", [0, 1])
def test_matmul_kernels_match_a_numpy_reference(act_int8, kernels):
    from tinyllm.infer.cengine import _f32p, _i8p, _library, _QMat

    rng = np.random.default_rng(3)
    rows, cols, n = 70, 128, 3  # 70 rows: a partial chunk; n > 1 exercises the prefill path
    w = rng.standard_normal((rows, cols)).astype(np.float32)
    x = (rng.standard_normal((n, cols)) * [[1.0], [0.01], [30.0]]).astype(np.float32)
    q, s = quantize(w, 64)
    qmat = _QMat(q.ctypes.data_as(_i8p), s.ctypes.data_as(_f32p), rows, cols, 64)
    out = np.empty((n, rows), np.float32)
    assert _library().tl_matmul(qmat, x.ctypes.data_as(_f32p), n, out.ctypes.data_as(_f32p), act_int8) == 0
    wq = (q.reshape(rows, 2, 64).astype(np.float64) * s[..., None]).reshape(rows, cols)
    if act_int8:  # integer sums per group, scaled by both scales
        xq, xs = quantize(x, 64)
        isum = (q.reshape(1, rows, 2, 64).astype(np.int64) * xq.reshape(n, 1, 2, 64)).sum(-1)  # (n, rows, 2)
        want = (isum * s[None].astype(np.float64) * xs[:, None].astype(np.float64)).sum(-1)
    else:
        want = x.astype(np.float64) @ wq.T
    np.testing.assert_allclose(out, want, rtol=2e-5, atol=2e-5 * np.abs(want).max())


@needs_c
def test_int8_activations_stay_close_and_consistent():
    w = random_weights(CFG, seed=5)
    a8, a32 = CTransformer(CFG, w), CTransformer(CFG, w, activations="float32")
    assert a8.activations == "int8"
    seq = np.array([[4, 8, 15, 16, 23, 42, 7, 9]])
    full8, full32 = a8.forward(seq)[0], a32.forward(seq)[0]
    assert np.abs(full8 - full32).max() < 0.05 * np.abs(full32).max()
    a8.setup_cache(1, 16)  # cached decoding computes each token exactly as the full pass does
    steps = [a8.prefill([seq[0, :3].tolist()])[0]] + [a8.decode(np.array([t]))[0] for t in seq[0, 3:]]
    np.testing.assert_allclose(np.stack(steps), full8[2:], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError):
        CTransformer(CFG, w, activations="int4")
