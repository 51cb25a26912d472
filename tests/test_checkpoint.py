"""Inference checkpoints: self-contained round trip, fp16 accuracy, clear errors for bad files."""

import numpy as np
import pytest
import torch

from tinyllm.formats.checkpoint import CheckpointError, load_inference, read_meta
from tinyllm.infer.runtime import Runtime
from tinyllm.train.export import export_inference

from .lm_fixtures import make_model, make_tokenizer


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ckpt")
    tok = make_tokenizer(tmp)
    model = make_model(tok)
    path32, path16 = tmp / "m32.npz", tmp / "m16.npz"
    export_inference(model, tok, path32, {"step": 7, "dev": {"exact_match": 0.5}}, dtype="float32")
    export_inference(model, tok, path16, {"step": 7}, dtype="float16")
    return tok, model, path32, path16


def test_round_trip_rebuilds_model_and_tokenizer_from_one_file(saved):
    tok, model, path32, _ = saved
    rt = Runtime.load(path32, engine="numpy")  # float32 parity with torch
    assert rt.tokenizer.sha256 == tok.sha256
    assert rt.ckpt.config == model.cfg
    assert read_meta(path32)["meta"]["step"] == 7
    ids = np.array([tok.encode_prompt("list all files", "linux")])
    with torch.no_grad():
        ref = model(torch.from_numpy(ids)).numpy()
    np.testing.assert_allclose(rt.model.forward(ids), ref, atol=2e-5, rtol=1e-4)


def test_fp16_file_is_half_size_and_close(saved):
    tok, model, path32, path16 = saved
    assert path16.stat().st_size < 0.6 * path32.stat().st_size
    a, b = Runtime.load(path32, engine="numpy"), Runtime.load(path16, engine="numpy")
    ids = np.array([tok.encode_prompt("count lines in a file", "linux")])
    np.testing.assert_allclose(a.model.forward(ids), b.model.forward(ids), atol=5e-2)


@pytest.mark.parametrize("damage", ["truncate", "random", "empty", "foreign"])
def test_bad_files_raise_checkpoint_error_naming_the_file(saved, tmp_path, damage):
    _, _, path32, _ = saved
    bad = tmp_path / f"{damage}.npz"
    data = path32.read_bytes()
    if damage == "truncate":
        bad.write_bytes(data[: len(data) // 2])
    elif damage == "random":
        bad.write_bytes(np.random.default_rng(0).bytes(4096))
    elif damage == "empty":
        bad.write_bytes(b"")
    else:
        np.savez(bad, weights=np.zeros(3))
    with pytest.raises(CheckpointError, match=str(bad.name)):
        load_inference(bad)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        Runtime.load(tmp_path / "nope.npz")


def test_int8_file_holds_exactly_what_the_c_engine_computes_with(saved, tmp_path):
    """int8 storage: matrices come back as their int8 rounding (what the C engine quantises to at load),
    norms unchanged; quantising the loaded weights again reproduces the stored int8 values and scales."""
    from tinyllm.formats.checkpoint import save_inference
    from tinyllm.formats.quant import dequantized_weights, group_size, quantize

    tok, _, path32, path16 = saved
    ref = load_inference(path32)
    path8 = tmp_path / "m8.npz"
    save_inference(path8, ref.weights, ref.config, ref.tokenizer_bytes, {"step": 7}, dtype="int8")
    got = load_inference(path8)
    assert read_meta(path8)["dtype"] == "int8" and got.meta["step"] == 7
    want = dequantized_weights(ref.config, ref.weights)
    assert set(got.weights) == set(want)
    for name, w in want.items():
        np.testing.assert_array_equal(got.weights[name], w, err_msg=name)
    group = group_size(ref.config)
    for name, w in ref.weights.items():
        if w.ndim == 2:
            q1, s1 = quantize(w, group)
            q2, s2 = quantize(got.weights[name], group)
            np.testing.assert_array_equal(q1, q2, err_msg=name)
            np.testing.assert_allclose(s1, s2, rtol=1e-6, err_msg=name)
    assert path8.stat().st_size < 0.65 * path16.stat().st_size


def test_int8_file_without_scales_is_refused(saved, tmp_path):
    from tinyllm.formats.checkpoint import save_inference

    _, _, path32, _ = saved
    ref = load_inference(path32)
    path8 = tmp_path / "m8.npz"
    save_inference(path8, ref.weights, ref.config, ref.tokenizer_bytes, {}, dtype="int8")
    with np.load(path8, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files if k != "tok_emb.weight@scale"}
    broken = tmp_path / "broken.npz"
    np.savez(broken, **arrays)
    with pytest.raises(CheckpointError, match="tok_emb.weight has no scales"):
        load_inference(broken)
