"""The int8 C engine: same step-model behaviour as the numpy engine over the same (int8-rounded) weights."""

import numpy as np
import pytest

from tinyllm import generate
from tinyllm.cengine import CTransformer, dequantized_weights, group_size, quantize, unavailable_reason
from tinyllm.checkpoint import expected_weight_shapes
from tinyllm.config import ModelConfig
from tinyllm.engine import NumpyTransformer

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
    return CTransformer(CFG, w), NumpyTransformer(CFG, dequantized_weights(CFG, w))


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
def test_prefill_and_decode_match_the_numpy_engine(engines):
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
