"""Checkpoint averaging: `nl2cmd-train average` writes the elementwise mean of same-shape models."""

import numpy as np
import pytest
from click.testing import CliRunner

from tinyllm.formats.checkpoint import CheckpointError, expected_weight_shapes, load_inference, save_inference
from tinyllm.formats.config import ModelConfig
from tinyllm.train.average import average_checkpoints
from tinyllm.train.cli import cli

CFG = ModelConfig.from_name("micro")


def _model(path, seed: int, step: int, cfg: ModelConfig = CFG, tok: bytes = b"tokenizer") -> dict:
    rng = np.random.default_rng(seed)
    weights = {k: rng.normal(size=s).astype(np.float32) for k, s in expected_weight_shapes(cfg).items()}
    save_inference(path, weights, cfg, tok, {"step": step}, dtype="float32")
    return weights


def test_average_is_the_elementwise_mean_and_keeps_config_and_tokenizer(tmp_path):
    ws = [_model(tmp_path / f"snap_{s}.npz", seed=s, step=s) for s in (10, 20, 30)]
    meta = average_checkpoints([tmp_path / f"snap_{s}.npz" for s in (10, 20, 30)], tmp_path / "avg.npz")
    avg = load_inference(tmp_path / "avg.npz")
    assert avg.config == CFG and avg.tokenizer_bytes == b"tokenizer"
    for name in ws[0]:
        want = (ws[0][name] + ws[1][name] + ws[2][name]) / 3
        np.testing.assert_allclose(avg.weights[name], want, atol=2e-3, rtol=1e-3)  # stored as float16
        assert not np.allclose(avg.weights[name], ws[0][name], atol=1e-2)
    assert meta["step"] == 30 and meta["averaged_steps"] == [10, 20, 30] and avg.meta["step"] == 30


def test_average_refuses_mixed_models_and_too_few(tmp_path):
    _model(tmp_path / "a.npz", 0, 1)
    _model(tmp_path / "b.npz", 1, 2, cfg=ModelConfig.from_name("micro", dim=32))
    _model(tmp_path / "c.npz", 2, 3, tok=b"another tokenizer")
    with pytest.raises(CheckpointError, match="another model config"):
        average_checkpoints([tmp_path / "a.npz", tmp_path / "b.npz"], tmp_path / "out.npz")
    with pytest.raises(CheckpointError, match="another tokenizer"):
        average_checkpoints([tmp_path / "a.npz", tmp_path / "c.npz"], tmp_path / "out.npz")
    with pytest.raises(CheckpointError, match="at least two"):
        average_checkpoints([tmp_path / "a.npz"], tmp_path / "out.npz")
    assert not (tmp_path / "out.npz").exists()


def test_average_command_reports_one_line_errors_and_never_overwrites_an_input(tmp_path):
    _model(tmp_path / "a.npz", 0, 1)
    _model(tmp_path / "b.npz", 1, 2)
    before = (tmp_path / "a.npz").read_bytes()
    runner = CliRunner()
    res = runner.invoke(cli, ["average", str(tmp_path / "a.npz"), str(tmp_path / "b.npz"), "--out", str(tmp_path / "a.npz")])
    assert res.exit_code == 1 and "overwrite" in res.output and "Traceback" not in res.output
    assert (tmp_path / "a.npz").read_bytes() == before
    res = runner.invoke(cli, ["average", str(tmp_path / "a.npz"), str(tmp_path / "b.npz"), "--out", str(tmp_path / "m.npz")])
    assert res.exit_code == 0 and "mean of 2 models (steps 1, 2)" in res.output
    assert (tmp_path / "m.npz").exists()


def test_weighted_average_interpolates_and_checks_its_weights(tmp_path):
    a = _model(tmp_path / "a.npz", 0, 1)
    b = _model(tmp_path / "b.npz", 1, 2)
    meta = average_checkpoints([tmp_path / "a.npz", tmp_path / "b.npz"], tmp_path / "w.npz", weights=[3, 1])
    w = load_inference(tmp_path / "w.npz")
    for name in a:
        np.testing.assert_allclose(w.weights[name], 0.75 * a[name] + 0.25 * b[name], atol=2e-3, rtol=1e-3)
        assert not np.allclose(w.weights[name], (a[name] + b[name]) / 2, atol=1e-2)
    assert meta["averaged_weights"] == [0.75, 0.25]
    for bad in ([1.0], [1.0, 0.0], [1.0, -1.0], [1.0, float("nan")]):
        with pytest.raises(CheckpointError):
            average_checkpoints([tmp_path / "a.npz", tmp_path / "b.npz"], tmp_path / "bad.npz", weights=bad)
    assert not (tmp_path / "bad.npz").exists()
    runner = CliRunner()
    res = runner.invoke(cli, ["average", str(tmp_path / "a.npz"), str(tmp_path / "b.npz"), "--out", str(tmp_path / "c.npz"),
                              "--weights", "1,x"])
    assert res.exit_code != 0 and "--weights" in res.output and "Traceback" not in res.output
    res = runner.invoke(cli, ["average", str(tmp_path / "a.npz"), str(tmp_path / "b.npz"), "--out", str(tmp_path / "c.npz"),
                              "--weights", "1,1,1"])
    assert res.exit_code != 0 and "3 weights for 2 model files" in res.output
    res = runner.invoke(cli, ["average", str(tmp_path / "a.npz"), str(tmp_path / "b.npz"), "--out", str(tmp_path / "c.npz"),
                              "--weights", "1,3"])
    assert res.exit_code == 0 and "weighted mean of 2 models" in res.output
