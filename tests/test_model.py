"""Model behaviour: cached vs uncached agreement, RoPE relativity, weight tying, numpy parity, beam search."""

import numpy as np
import pytest
import torch

from tinyllm.formats.config import PRESETS, ModelConfig
from tinyllm.infer import generate
from tinyllm.infer.engine import NumpyTransformer
from tinyllm.train.model import TorchStepModel, Transformer, apply_rope, load_numpy_state, rope_tables, state_to_numpy


@pytest.fixture(scope="module")
def micro():
    torch.manual_seed(0)
    return Transformer(ModelConfig.from_name("micro")).eval()


def test_seed_preset_matches_reported_size():
    # The seed reports 66.73M parameters for 512d x 12 layers, 32k vocab, FFN 4*dim, tied embeddings.
    assert round(PRESETS["seed"].num_params() / 1e6, 2) == 66.73
    assert Transformer(ModelConfig.from_name("micro")).num_params() == PRESETS["micro"].num_params()


def test_size_candidates_are_the_sizes_the_comparison_names():
    """docs/experiments.md compares default (~14M) with medium (~30M) and large (~50M)."""
    sizes = {name: round(PRESETS[name].num_params() / 1e6, 1) for name in ("default", "medium", "large")}
    assert sizes == {"default": 13.8, "medium": 29.9, "large": 49.9}
    from tinyllm.train.presets import PLANS

    assert all(PLANS[name].model == name for name in ("default", "medium", "large"))


def test_plans_that_average_snapshots_write_the_ones_they_average():
    """`all` averages sft/snap_STEP.npz for the last `average_last` multiples of `snapshot_every`: they must exist."""
    from tinyllm.train.presets import PLANS

    averaging = {name: plan for name, plan in PLANS.items() if plan.average_last >= 2}
    assert {"micro", "default"} <= set(averaging)
    for name, plan in averaging.items():
        assert plan.snapshot_every >= 1 and plan.sft.steps % plan.snapshot_every == 0, name
        assert plan.sft.steps >= plan.snapshot_every * plan.average_last, name


def test_unknown_preset_and_bad_heads():
    with pytest.raises(ValueError, match="unknown preset"):
        ModelConfig.from_name("huge")
    with pytest.raises(ValueError, match="divisible"):
        ModelConfig(dim=100, n_heads=3)


@pytest.mark.parametrize("length", [1, 5, 33])
def test_cached_prefill_and_decode_match_full_forward(micro, length):
    g = torch.Generator().manual_seed(length)
    ids = torch.randint(0, micro.cfg.vocab_size, (2, length + 6), generator=g)
    with torch.no_grad():
        full = micro(ids)
    micro.setup_cache(2, 64)
    out = [micro.prefill(ids[:, :length].tolist())]
    for t in range(length, ids.shape[1]):
        out.append(micro.decode(ids[:, t]))
    cached = torch.stack(out[:-1], dim=1)
    torch.testing.assert_close(cached, full[:, length - 1 : -1].float(), atol=1e-4, rtol=1e-4)


def test_left_padded_batch_matches_single_prompts(micro):
    prompts = [[5, 6, 7, 8, 9, 10, 11], [20, 21, 22]]
    micro.setup_cache(2, 32)
    batched = micro.prefill(prompts)
    for i, p in enumerate(prompts):
        with torch.no_grad():
            ref = micro(torch.tensor([p]))[0, -1]
        torch.testing.assert_close(batched[i], ref, atol=1e-4, rtol=1e-4)


def test_decode_without_cache_raises():
    m = Transformer(ModelConfig.from_name("micro"))
    with pytest.raises(RuntimeError, match="setup_cache"):
        m.decode(torch.tensor([1]))
    m.setup_cache(1, 8)
    with pytest.raises(RuntimeError, match="prefill"):
        m.decode(torch.tensor([1]))


def test_rope_dot_product_depends_only_on_offset():
    cos, sin = rope_tables(16, 64, 10000.0)
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(1, 1, 1, 16, generator=g), torch.randn(1, 1, 1, 16, generator=g)

    def dot(m: int, n: int) -> float:
        qm = apply_rope(q, cos[m : m + 1][None, None], sin[m : m + 1][None, None])
        kn = apply_rope(k, cos[n : n + 1][None, None], sin[n : n + 1][None, None])
        return float((qm * kn).sum())

    assert dot(3, 1) == pytest.approx(dot(12, 10), abs=1e-5)
    assert dot(40, 33) == pytest.approx(dot(7, 0), abs=1e-5)
    assert dot(3, 1) != pytest.approx(dot(3, 2), abs=1e-3)


def test_weight_tying_survives_to_and_reload():
    m = Transformer(ModelConfig.from_name("micro")).to(torch.float64).to("cpu")
    assert m.output.weight.data_ptr() == m.tok_emb.weight.data_ptr()
    m2 = load_numpy_state(Transformer(ModelConfig.from_name("micro")), state_to_numpy(m))
    assert m2.output.weight.data_ptr() == m2.tok_emb.weight.data_ptr()
    torch.testing.assert_close(m2.tok_emb.weight, m.tok_emb.weight.float())


def test_numpy_engine_matches_torch(micro):
    eng = NumpyTransformer(micro.cfg, state_to_numpy(micro))
    rng = np.random.default_rng(1)
    for length in (1, 9, 40):
        ids = rng.integers(0, micro.cfg.vocab_size, size=(3, length))
        with torch.no_grad():
            ref = micro(torch.from_numpy(ids)).numpy()
        np.testing.assert_allclose(eng.forward(ids), ref, atol=2e-5, rtol=1e-4)
    prompts = [list(rng.integers(4, 500, size=n)) for n in (3, 11, 7)]
    # float32 all the way: a float64 scalar anywhere promotes every matmul (and is 2.5x slower)
    assert eng.forward(ids).dtype == np.float32
    eng.setup_cache(3, 64)
    assert eng.prefill(prompts).dtype == np.float32
    assert eng.decode(np.array([5, 6, 7])).dtype == np.float32
    ours = generate.greedy(eng, prompts, 24)
    theirs = generate.greedy(TorchStepModel(micro), prompts, 24)
    assert [c.ids for c in ours] == [c.ids for c in theirs]


def test_greedy_cached_equals_uncached_argmax(micro):
    eng = NumpyTransformer(micro.cfg, state_to_numpy(micro))
    prompt = [2, 4, 50, 60, 70, 5]
    got = generate.greedy(eng, [prompt], 12)[0].ids
    seq = list(prompt)
    for _ in range(len(got)):
        seq.append(int(eng.forward(np.array([seq]))[0, -1].argmax()))
    assert seq[len(prompt):] == got


def test_beam_one_is_greedy_and_nbest_sorted(micro):
    eng = NumpyTransformer(micro.cfg, state_to_numpy(micro))
    for prompt in ([2, 4, 9, 9, 5], [2, 4, 100, 5]):
        assert generate.beam_search(eng, prompt, beam=1, max_new_tokens=16)[0].ids == generate.greedy(eng, [prompt], 16)[0].ids
        best = generate.beam_search(eng, prompt, beam=4, n_best=4, max_new_tokens=16)
        scores = [c.score for c in best]
        assert scores == sorted(scores, reverse=True) and len(best) == 4
        assert generate.beam_search(TorchStepModel(micro), prompt, beam=4, n_best=4, max_new_tokens=16)[0].ids == best[0].ids


def test_top_indices_are_a_stable_argsorts_first_k():
    """The beam's top-k selection equals the first k of a stable descending argsort, ties included (at the
    cut too), on the beam x vocabulary score arrays it sees."""
    rng = np.random.default_rng(0)
    for trial in range(200):
        n = int(rng.integers(1, 3000))
        values = rng.normal(size=n)
        if trial % 2:  # many exact ties: a few distinct values only
            values = np.round(values, 1)
        values[rng.integers(0, n, size=n // 10)] = -np.inf  # masked tokens
        for k in (1, 2, 8, n, n + 3):
            want = np.argsort(-values, kind="stable")[:k]
            assert np.array_equal(generate.top_indices(values, k), want), (trial, k)


def test_sampling_is_seeded(micro):
    eng = NumpyTransformer(micro.cfg, state_to_numpy(micro))
    a = generate.sample(eng, [[2, 4, 7]], 10, temperature=1.0, top_k=20, top_p=0.9, seed=3)[0].ids
    b = generate.sample(eng, [[2, 4, 7]], 10, temperature=1.0, top_k=20, top_p=0.9, seed=3)[0].ids
    assert a == b
