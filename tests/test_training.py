"""Training: SFT loss masking, exact resume (in-process and after SIGKILL), DDP with gloo, refusals."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from tinyllm.formats.config import ModelConfig
from tinyllm.formats.prompt import EOS_ID, SPECIAL_IDS
from tinyllm.train.loop import TrainConfig, Trainer, lr_at
from tinyllm.train.model import Transformer
from tinyllm.train.pretrain import WindowSampler
from tinyllm.train.sft import IGNORE, SFTBatches, build_example
from tinyllm.train.state import load_train_state

from .lm_fixtures import make_tokenizer

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return make_tokenizer(tmp_path_factory.mktemp("tok"))


def test_sft_labels_mask_the_prompt_and_keep_command_and_eos(tok):
    row = {"instruction": "list all files", "command": "ls -la", "platform": "linux"}
    x, y = build_example(tok, row)
    prompt = tok.encode_prompt("list all files", "linux")
    target = tok.encode_target("ls -la")
    assert len(x) == len(y) == len(prompt) + len(target) - 1
    # every prompt position is ignored except the last (<command>), which predicts the first command token
    assert y[: len(prompt) - 1] == [IGNORE] * (len(prompt) - 1)
    assert y[len(prompt) - 1 :] == target and y[-1] == EOS_ID
    assert x[len(prompt) - 1] == SPECIAL_IDS["<command>"]
    # labels are the inputs shifted by one wherever they are not masked
    for i, label in enumerate(y[:-1]):
        if label != IGNORE:
            assert label == x[i + 1]


def test_sft_shows_every_pair_with_a_platform_serving_sends(tok):
    """A "common" command is trained as a linux or a macos answer, never under the <common> tag that
    serving (the user's own system) never sends; linux and macos rows keep their tags."""
    from tinyllm.formats.prompt import PLATFORM_TOKENS, USER_PLATFORMS, serving_platform, training_platform

    tags = {p: SPECIAL_IDS[PLATFORM_TOKENS[p]] for p in PLATFORM_TOKENS}
    seen = set()
    for i in range(40):
        x, _ = build_example(tok, {"instruction": f"list the files number {i}", "command": "ls", "platform": "common"})
        (tag,) = [p for p, t in tags.items() if t in x]
        assert tag == training_platform("common", f"list the files number {i}") and tag in USER_PLATFORMS
        seen.add(tag)
    assert seen == set(USER_PLATFORMS)  # both systems get common rows
    for p in USER_PLATFORMS:
        x, _ = build_example(tok, {"instruction": "list files", "command": "ls", "platform": p})
        assert tags[p] in x and tags["common"] not in x
    assert [serving_platform(p) for p in ("linux", "macos", "common")] == ["linux", "macos", "linux"]


def test_sft_examples_dropped_to_fit_and_overlong_rows_skipped(tok):
    from tinyllm.formats.prompt import Example

    row = {"instruction": "list all files", "command": "ls -la"}
    long_ex = [Example("word " * 40, "echo " * 40)] * 3
    x, _ = build_example(tok, row, long_ex, max_len=60)
    assert len(x) <= 60 and SPECIAL_IDS["<example>"] not in x
    assert build_example(tok, {"instruction": "x " * 200, "command": "y"}, max_len=30) is None


def test_sft_batches_pad_with_ignore_and_are_deterministic(tok):
    rows = [{"instruction": f"show item {i}", "command": "echo " + "a" * (i % 7)} for i in range(100)]
    examples = [build_example(tok, r) for r in rows]
    b = SFTBatches(examples, batch_size=8, seed=3)
    x1, y1 = b(5)
    x2, y2 = b(5)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert x1.shape == y1.shape and x1.shape[0] == 8
    pad = x1 == 0
    assert (y1[pad] == IGNORE).all()
    assert not torch.equal(b(6)[0][:, :3], x1[:, :3]) or not torch.equal(b(6)[1], y1)


def test_lr_schedule_warmup_and_cosine():
    tc = TrainConfig(steps=100, warmup=10, lr=1e-3, min_lr_ratio=0.1)
    assert lr_at(0, tc) == pytest.approx(1e-4)
    assert lr_at(9, tc) == pytest.approx(1e-3)
    assert lr_at(100, tc) == pytest.approx(1e-4)
    assert lr_at(50, tc) < lr_at(20, tc)


def _trainer(out: Path, steps: int) -> tuple[Trainer, WindowSampler]:
    torch.manual_seed(0)
    model = Transformer(ModelConfig.from_name("micro"))
    tc = TrainConfig(steps=steps, batch_size=4, warmup=2, ckpt_every=3, log_every=1, lr=1e-3)
    shard = np.random.default_rng(0).integers(4, 500, size=5000).astype(np.uint16)
    return Trainer(model, tc, out, {"tokenizer_sha256": "t"}), WindowSampler([shard], 32, 4, seed=0)


def test_resume_is_bit_exact(tmp_path):
    full, sampler = _trainer(tmp_path / "full", 8)
    full.run(sampler, progress=False)
    part, sampler = _trainer(tmp_path / "part", 8)
    part.run(sampler, progress=False, until=6)  # interrupted at 6 ...
    again, sampler = _trainer(tmp_path / "part", 8)  # ... then a new process-like trainer continues
    assert again.resume() and again.step == 6
    again.run(sampler, progress=False)
    for (name, a), (_, b) in zip(full.model.state_dict().items(), again.model.state_dict().items()):
        assert torch.equal(a, b), name


def test_snapshots_every_n_steps_match_an_uninterrupted_run(tmp_path):
    """A snapshot every 2 steps; a run interrupted at 5 and resumed writes the same snapshots (same
    weights at the same steps) as one that ran straight through."""

    def record(store: dict):
        return lambda m, step: store.__setitem__(step, {k: v.clone() for k, v in m.state_dict().items()})

    straight: dict = {}
    full, sampler = _trainer(tmp_path / "full", 8)
    full.run(sampler, progress=False, snapshot_every=2, on_snapshot=record(straight))
    assert sorted(straight) == [2, 4, 6, 8]
    for name, w in full.model.state_dict().items():
        assert torch.equal(straight[8][name], w), name  # the last snapshot is the final model
    assert not all(torch.equal(straight[2][k], straight[4][k]) for k in straight[2])  # a real copy per step

    resumed: dict = {}
    part, sampler = _trainer(tmp_path / "part", 8)
    part.run(sampler, progress=False, until=5, snapshot_every=2, on_snapshot=record(resumed))
    assert sorted(resumed) == [2, 4]
    again, sampler = _trainer(tmp_path / "part", 8)
    assert again.resume()
    again.run(sampler, progress=False, snapshot_every=2, on_snapshot=record(resumed))
    assert sorted(resumed) == [2, 4, 6, 8]
    for step in straight:
        for name in straight[step]:
            assert torch.equal(straight[step][name], resumed[step][name]), (step, name)


@pytest.mark.parametrize(("every", "expected"), [(3, [3, 6, 7]), (0, [])])
def test_eval_every_sets_when_held_out_evaluation_runs(tmp_path, every, expected):
    """Every N steps and at the last one; 0 turns it off (a GPU run spends no time decoding on the CPU)."""
    from dataclasses import replace

    trainer, sampler = _trainer(tmp_path, 7)
    trainer.tc = replace(trainer.tc, eval_every=every)
    seen: list[int] = []
    best: list[float] = []
    trainer.run(sampler, eval_fn=lambda m, step: seen.append(step) or {"metric": float(step)},
                on_best=lambda m, metrics: best.append(metrics["metric"]), progress=False)
    assert seen == expected
    assert best == [float(s) for s in expected]  # each later evaluation scored higher here


def test_cli_eval_every_reaches_the_training_config():
    from tinyllm.train.cli import _train_overrides
    from tinyllm.train.presets import PLANS

    tc = _train_overrides(PLANS["default"].sft, None, None, None, "cpu", False, False, None, None, 0)
    assert tc.eval_every == 0 and tc.steps == PLANS["default"].sft.steps
    assert _train_overrides(PLANS["default"].sft, None, None, None, "cpu", False, False, None).eval_every == 1000


def test_training_seconds_are_logged_and_kept_across_a_resume(tmp_path, monkeypatch):
    import itertools
    import types

    from tinyllm.train import loop

    clock = itertools.count()  # one second per reading: the loop reads it at the start and after each step
    monkeypatch.setattr(loop, "time", types.SimpleNamespace(perf_counter=lambda: float(next(clock))))
    part, sampler = _trainer(tmp_path, 8)
    part.run(sampler, progress=False, until=6)
    again, sampler = _trainer(tmp_path, 8)
    assert again.resume() and again.seconds == part.seconds == 6.0
    again.run(sampler, progress=False)
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [(r["step"], r["train_s"]) for r in log] == [(s, float(s)) for s in range(1, 9)]


def test_resume_refuses_another_config(tmp_path):
    t, sampler = _trainer(tmp_path, 3)
    t.run(sampler, progress=False)
    other = Trainer(Transformer(ModelConfig.from_name("micro", dim=32)), t.tc, tmp_path, {"tokenizer_sha256": "t"})
    from tinyllm.formats.checkpoint import CheckpointError

    with pytest.raises(CheckpointError, match="another model config"):
        other.resume()
    other = Trainer(Transformer(ModelConfig.from_name("micro")), t.tc, tmp_path, {"tokenizer_sha256": "zzz"})
    with pytest.raises(CheckpointError, match="tokenizer"):
        other.resume()


@pytest.fixture(scope="module")
def shard_run(tmp_path_factory):
    """An out dir with a tokenizer and shards, ready for `nl2cmd-train pretrain --preset micro`."""
    from tinyllm.train.shards import write_shards

    out = tmp_path_factory.mktemp("run")
    tok_dir = out / "tokenizer"
    tok_dir.mkdir()
    tok_model = make_tokenizer(tok_dir).sp.serialized_model_proto()
    (tok_dir / "tokenizer.model").write_bytes(tok_model)
    corpus = out / "corpus" / "corpus.txt"
    corpus.parent.mkdir()
    docs = [f"ls lists files; du shows disk usage {i}. find searches for files by name." * 5 for i in range(200)]
    corpus.write_text("\n\f\n".join(docs))
    write_shards(corpus, tok_dir / "tokenizer.model", out / "shards", shard_tokens=20000, val_fraction=0.05, workers=1)
    return out


def _pretrain_cmd(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "tinyllm.train.cli", "pretrain", "--out", str(out), "--preset", "micro",
            "--steps", "12", "--ckpt-every", "2", "--no-bf16", *extra]


def _clone(run: Path, dest: Path) -> Path:
    shutil.copytree(run, dest, ignore=shutil.ignore_patterns("pretrain"))
    return dest


def test_sigkill_then_resume_matches_uninterrupted(shard_run, tmp_path):
    a, b = _clone(shard_run, tmp_path / "a"), _clone(shard_run, tmp_path / "b")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(_pretrain_cmd(a), check=True, capture_output=True, env=env, timeout=120)
    proc = subprocess.Popen(_pretrain_cmd(b), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + 60
    while time.time() < deadline:
        last = b / "pretrain" / "last.pt"
        if last.exists() and load_train_state(last)["step"] >= 4:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = load_train_state(b / "pretrain" / "last.pt")["step"]
    assert killed_at < 12, "the run finished before it could be killed"
    refused = subprocess.run(_pretrain_cmd(b), capture_output=True, text=True, env=env, timeout=60)
    assert refused.returncode == 1 and "already holds" in refused.stderr and "Traceback" not in refused.stderr
    subprocess.run(_pretrain_cmd(b, "--resume"), check=True, capture_output=True, env=env, timeout=120)
    sa = load_train_state(a / "pretrain" / "last.pt")
    sb = load_train_state(b / "pretrain" / "last.pt")
    assert sa["step"] == sb["step"] == 12
    for name, tensor in sa["model"].items():
        assert torch.equal(tensor, sb["model"][name]), name


def test_ddp_two_processes_with_gloo(shard_run, tmp_path):
    # --standalone: torchrun picks a free port itself (a fixed port made the test fail when taken)
    out = _clone(shard_run, tmp_path / "ddp")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "tinyllm.train.cli", "pretrain", "--out", str(out), "--preset", "micro", "--steps", "4", "--no-bf16"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=180)
    assert res.returncode == 0, res.stderr[:2000] + "\n...\n" + res.stderr[-2000:]  # the cause is often early
    st = load_train_state(out / "pretrain" / "last.pt")
    assert st["step"] == 4
    log = [json.loads(line) for line in (out / "pretrain" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "loss" in r] == [4]  # micro logs every 5 steps and at the end; rank 0 only


def test_sigkill_during_checkpoint_write_keeps_previous(tmp_path):
    """A process killed while writing a checkpoint leaves the previous file intact and loadable."""
    from tinyllm.train.state import save_train_state

    path = tmp_path / "last.pt"
    save_train_state(path, {"step": 1, "model": {"w": torch.ones(3)}, "run": {}})
    code = (
        "import sys, time, torch\n"
        "from tinyllm.formats.checkpoint import atomic_write\n"
        "def slow(f):\n"
        "    f.write(b'x' * 1000); f.flush(); print('writing', flush=True); time.sleep(30)\n"
        f"atomic_write({str(path)!r}, slow)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    state = load_train_state(path)
    assert state["step"] == 1 and torch.equal(state["model"]["w"], torch.ones(3))
    leftovers = [p for p in tmp_path.iterdir() if p.name != "last.pt"]
    assert leftovers, "the killed write should have left only its temp file behind"
    save_train_state(path, {"step": 2, "run": {}})  # and the next save still works
    assert load_train_state(path)["step"] == 2


def test_evaluation_asks_each_row_as_a_user_on_its_platform_would():
    """Evaluation builds prompts with the tag serving sends: a platform-neutral row as a Linux user."""
    from tinyllm.infer.runtime import Generated
    from tinyllm.train.evaluate import model_predictor, nearest_neighbour_predictor

    class Recorder:
        def __init__(self) -> None:
            self.platforms: list[str] = []

        def prompt_ids(self, instruction: str, platform: str, examples=()) -> list[int]:
            self.platforms.append(platform)
            return [len(self.platforms)]

        def generate(self, prompts, max_new_tokens):
            return [Generated(f"cmd{p[0]}", 0.0, True) for p in prompts]

    rt = Recorder()
    rows = [{"instruction": "a", "command": "x", "platform": p} for p in ("common", "macos", "linux")]
    assert model_predictor(rt)(rows) == ["cmd1", "cmd2", "cmd3"]
    assert rt.platforms == ["linux", "macos", "linux"]

    class Index:  # retrieval (examples and the nearest-neighbour baseline) is asked the same way
        def __init__(self) -> None:
            self.platforms: list[str] = []

        def search(self, query, k=1, platform=None, exclude_command=None):
            self.platforms.append(platform)
            return []

    index, rt = Index(), Recorder()
    model_predictor(rt, index, k=2)(rows)
    nearest_neighbour_predictor(index)(rows)
    assert index.platforms == ["linux", "macos", "linux"] * 2 and rt.platforms == ["linux", "macos", "linux"]


def test_cpu_autocast_is_bf16_only_where_it_pays():
    """On a CPU, bf16 autocast is chosen by the measured speed check: fp32 where bf16 would be much slower
    (emulated bf16 is 15x slower or worse), bf16 where it is not; never when fp32 is asked for."""
    from tinyllm.train.device import autocast_dtype, cpu_bf16_pays

    cpu = torch.device("cpu")
    assert autocast_dtype(cpu, True, cpu_bf16_ok=lambda: False) is None
    assert autocast_dtype(cpu, True, cpu_bf16_ok=lambda: True) is torch.bfloat16
    assert autocast_dtype(cpu, False, cpu_bf16_ok=lambda: True) is None
    assert isinstance(cpu_bf16_pays(), bool)
    assert autocast_dtype(cpu) is (torch.bfloat16 if cpu_bf16_pays() else None)


def test_cpu_flags_for_bf16_decide_before_any_timing():
    """bf16 instructions in /proc/cpuinfo (x86 flags, Arm features) mean bf16 without a speed check,
    which a busy machine can mislead; a CPU without them, or no cpuinfo, leaves it to the check."""
    from tinyllm.train.device import cpu_has_native_bf16

    assert cpu_has_native_bf16("processor\t: 0\nflags\t\t: fpu sse2 avx512f avx512_bf16 amx_tile\n")
    assert cpu_has_native_bf16("processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n")
    assert not cpu_has_native_bf16("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f\n")
    assert not cpu_has_native_bf16("model name\t: bf16 lookalike in a name only\n")
    assert not cpu_has_native_bf16("")


def test_resume_continues_in_the_precision_the_run_was_checkpointed_in(tmp_path, monkeypatch, capsys):
    """A run checkpointed in bf16 continues in bf16 even where this process's speed check would pick
    fp32: a resume must stay bit-exact. Not on a CPU without bf16 instructions, where bf16 would be
    emulated many times slower; turning bf16 off wins too."""
    from dataclasses import replace

    import tinyllm.train.loop as loop

    monkeypatch.setattr(loop, "autocast_dtype", lambda device, want: torch.bfloat16 if want else None)
    first, _ = _trainer(tmp_path, 4)
    assert first.amp is torch.bfloat16
    first.save()
    monkeypatch.setattr(loop, "autocast_dtype", lambda device, want: None)
    monkeypatch.setattr(loop, "cpu_has_native_bf16", lambda: True)
    again, _ = _trainer(tmp_path, 4)
    assert again.amp is None and again.resume()
    assert again.amp is torch.bfloat16
    assert "continuing in bf16" in capsys.readouterr().err
    monkeypatch.setattr(loop, "cpu_has_native_bf16", lambda: False)  # moved to a CPU that would emulate it
    slow, _ = _trainer(tmp_path, 4)
    assert slow.resume() and slow.amp is None
    off, _ = _trainer(tmp_path, 4)
    off.tc = replace(off.tc, bf16=False)
    assert off.resume() and off.amp is None


def test_trainer_says_when_it_falls_back_to_fp32(tmp_path, monkeypatch, capsys):
    import tinyllm.train.loop as loop

    monkeypatch.setattr(loop, "autocast_dtype", lambda device, want: None)
    cfg = ModelConfig.from_name("micro")
    loop.Trainer(Transformer(cfg), loop.TrainConfig(steps=1, device="cpu"), tmp_path, {})
    assert "training in fp32" in capsys.readouterr().err
    loop.Trainer(Transformer(cfg), loop.TrainConfig(steps=1, device="cpu", bf16=False), tmp_path, {})
    assert "training in fp32" not in capsys.readouterr().err
