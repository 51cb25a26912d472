"""scripts/parallel_runs.py: how a variant's spec becomes its stage commands, fresh and resumed."""

import argparse
from pathlib import Path

import pytest

from .script_module import load_script


@pytest.fixture(scope="module")
def pr():
    return load_script("parallel_runs")


def _stages(pr, cmds: list[list[str]]) -> list[list[str]]:
    """The nl2cmd-train arguments of each command (without the interpreter prefix)."""
    assert all(c[:len(pr.TRAIN)] == pr.TRAIN for c in cmds)
    return [c[len(pr.TRAIN):] for c in cmds]


def test_variant_spec_with_keys(pr):
    name, spec = pr.parse_variant("T=default,900,12000,1500,first=runs/tn/pairs:3000,lr=3e-4,batch=64")
    assert name == "T"
    assert spec == {"preset": "default", "pre": 900, "steps": 12000, "every": 1500,
                    "first": ("runs/tn/pairs", 3000), "lr": "3e-4", "batch": "64"}
    for bad in ("T=default,900,12000", "T=default,a,12000,1500", "T=default,900,12000,1500,colour=red",
                "T=default,900,12000,1500,first=runs/tn/pairs", "=default,900,12000,1500"):
        with pytest.raises(argparse.ArgumentTypeError):
            pr.parse_variant(bad)


def test_first_stage_feeds_the_main_stage(pr, tmp_path):
    _, spec = pr.parse_variant("T=default,900,12000,1500,first=tn/pairs:3000,lr=3e-4")
    pre, first, main = _stages(pr, pr.commands(tmp_path, spec, "cuda", resume=False))
    assert pre[:1] == ["pretrain"] and pre[pre.index("--steps") + 1] == "900"
    assert first[first.index("--sft-dir") + 1] == "first" and first[first.index("--steps") + 1] == "3000"
    assert first[first.index("--pairs") + 1] == str(Path("tn/pairs").resolve())
    assert "--init" not in first and "--from-scratch" not in first  # from the pretraining, sft's default
    assert main[main.index("--init") + 1] == str(tmp_path / "first" / "last.pt")
    assert main[main.index("--lr") + 1] == "3e-4" and "--pairs" not in main and "--sft-dir" not in main


def test_no_pretraining_starts_the_first_stage_from_scratch(pr, tmp_path):
    _, spec = pr.parse_variant("D=default,0,12000,1500,first=tn/pairs:3000")
    first, main = _stages(pr, pr.commands(tmp_path, spec, "cpu", resume=False))
    assert "--from-scratch" in first and "--from-scratch" not in main
    _, spec = pr.parse_variant("D=default,0,12000,1500")
    (main,) = _stages(pr, pr.commands(tmp_path, spec, "cpu", resume=False))
    assert "--from-scratch" in main


def test_resume_continues_the_stage_that_was_running(pr, tmp_path):
    _, spec = pr.parse_variant("T=default,900,12000,1500,first=tn/pairs:3000")
    (tmp_path / "pretrain").mkdir()
    (tmp_path / "pretrain" / "last.pt").write_bytes(b"")
    (tmp_path / "first").mkdir()
    (tmp_path / "first" / "last.pt").write_bytes(b"")
    first, main = _stages(pr, pr.commands(tmp_path, spec, "cuda", resume=True))  # pretraining is done
    assert first[0] == "sft" and "--resume" in first and "--resume" not in main
    (tmp_path / "sft").mkdir()
    (tmp_path / "sft" / "last.pt").write_bytes(b"")
    (main,) = _stages(pr, pr.commands(tmp_path, spec, "cuda", resume=True))
    assert "--resume" in main and "--init" not in main


def test_shell_line_quotes_its_arguments(pr):
    assert pr.shell([["echo", "a b"], ["true"]]) == "echo 'a b' && true"


def test_first_stage_hours_come_from_its_log(pr, tmp_path):
    assert pr.first_stage_hours(tmp_path) == 0.0
    (tmp_path / "first").mkdir()
    (tmp_path / "first" / "log.jsonl").write_text('{"step": 1, "train_s": 10.0}\n{"step": 2, "train_s": 1800.0}\n')
    assert pr.first_stage_hours(tmp_path) == 0.5


def test_fp32_reaches_every_stage(pr, tmp_path):
    _, spec = pr.parse_variant("F=default,900,12000,1500,first=tn/pairs:3000,fp32=1")
    stages = _stages(pr, pr.commands(tmp_path, spec, "cuda", resume=False))
    assert len(stages) == 3 and all("--no-bf16" in s for s in stages)
    _, spec = pr.parse_variant("A=default,900,12000,1500")
    assert not any("--no-bf16" in s for s in _stages(pr, pr.commands(tmp_path, spec, "cuda", resume=False)))


def test_curve_files_travel_as_one_archive(pr, tmp_path):
    import tarfile

    out, work = tmp_path / "out", tmp_path / "work"
    out.mkdir()
    assert pr.pack_curves(out, work, ["A"]) is None
    (work / "A" / "sft").mkdir(parents=True)
    (work / "A" / "sft" / "curve.jsonl").write_text('{"step": 1}\n')
    (work / "A" / "learning_curve.png").write_bytes(b"png")
    (work / "B" / "sft").mkdir(parents=True)
    (work / "B" / "sft" / "curve.jsonl").write_text('{"step": 2}\n')  # B's report drew no plot
    packed = pr.pack_curves(out, work, ["A", "B"])
    with tarfile.open(packed) as tar:
        assert sorted(tar.getnames()) == ["A_curve.jsonl", "A_curve.png", "B_curve.jsonl"]
        assert tar.extractfile("B_curve.jsonl").read() == b'{"step": 2}\n'
        assert tar.extractfile("A_curve.png").read() == b"png"
    assert [p.name for p in out.iterdir()] == ["curves.tgz"]


def test_engine_build_reports_failure(pr, tmp_path, monkeypatch):
    monkeypatch.setattr(pr, "ROOT", tmp_path)  # no setup.py there: the numpy engine will score
    assert pr.build_engine() is False
