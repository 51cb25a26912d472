"""`nl2cmd-train curve` and the learning curve in `nl2cmd-train report`: records per (step, set), incremental
updates, training hours, the nonsense share, the plot and table, and one-line errors."""

from __future__ import annotations

import inspect
import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from tinyllm.train.cli import cli, run_eval
from tinyllm.train.curve import CURVE_FILE, METRICS, file_seconds, log_seconds, read_records, snapshots, training_hours

from .lm_fixtures import PAIRS, write_pairs

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
T0 = 1_700_000_000.0


def train(*args: str):
    """Invoke nl2cmd-train in-process (stdout and stderr apart); an uncaught exception fails the test."""
    kwargs = {"mix_stderr": False} if "mix_stderr" in inspect.signature(CliRunner).parameters else {}
    return CliRunner(**kwargs).invoke(cli, [str(a) for a in args], catch_exceptions=False)


def one_error_line(result) -> str:
    assert result.exit_code == 1, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("nl2cmd-train: error: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def put_snapshot(sft: Path, source: Path, step: int, hours_after_first: float) -> Path:
    """Copy a model file in as snap_STEP.npz, dated `hours_after_first` after T0."""
    sft.mkdir(parents=True, exist_ok=True)
    path = sft / f"snap_{step}.npz"
    shutil.copyfile(source, path)
    os.utime(path, (T0, T0 + 3600 * hours_after_first))
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> list[Path]:
    """Three tiny model files along one SFT run on the fixture pairs: untrained (answers nothing), after 60
    steps (some answers right, many nonsense) and after 120 (every fixture pair learnt)."""
    pytest.importorskip("torch")
    from tinyllm.train.export import export_inference
    from tinyllm.train.loop import TrainConfig, Trainer
    from tinyllm.train.sft import SFTBatches, build_example

    from .lm_fixtures import make_model, make_tokenizer

    tmp = tmp_path_factory.mktemp("curve_models")
    tok = make_tokenizer(tmp)
    examples = [build_example(tok, {"instruction": i, "command": c, "platform": "linux"}) for i, c in PAIRS]
    tc = TrainConfig(steps=120, batch_size=len(examples), warmup=5, lr=3e-3, log_every=60, bf16=False, device="cpu")
    trainer = Trainer(make_model(tok), tc, tmp / "sft", {"tokenizer_sha256": tok.sha256})
    batches = SFTBatches(examples, tc.batch_size, tc.seed)
    paths = []
    for until in (0, 60, 120):
        trainer.run(lambda step, micro, rank: batches(step, micro, rank), progress=False, until=until)
        paths.append(tmp / f"after_{until}.npz")
        export_inference(trainer.model.eval(), tok, paths[-1], {}, dtype="float16")
    return paths


@pytest.fixture
def sets(tmp_path) -> dict[str, Path]:
    return {"a": write_pairs(tmp_path / "a.jsonl", repeat=1), "b": write_pairs(tmp_path / "b.jsonl", PAIRS[:3], 1)}


def run_curve(run: Path, sets: dict[str, Path], *extra: str):
    args = ["curve", "--run", run, "--limit", "4", "--engine", "numpy", *extra]
    for name, path in sets.items():
        args += ["--jsonl", f"{name}={path}"]
    return train(*args)


@pytest.mark.slow
def test_curve_scores_each_snapshot_once_per_set(tmp_path, models, sets):
    run = tmp_path / "run"
    put_snapshot(run / "sft", models[0], 1000, 0.0)
    put_snapshot(run / "sft", models[1], 2000, 1.0)
    res = run_curve(run, sets)
    assert res.exit_code == 0, res.stderr
    assert "4 new records" in res.stdout
    recs = read_records(run / "sft" / CURVE_FILE)
    assert [(r["step"], r["set"], r["n"]) for r in recs] == [(1000, "a", 4), (1000, "b", 3), (2000, "a", 4),
                                                              (2000, "b", 3)]
    # no train_s in the log: the files' clock, the first snapshot at the pace of the first interval
    assert {r["step"]: r["hours"] for r in recs} == {1000: 1.0, 2000: 2.0}
    assert {r["clock"] for r in recs} == {"files"} and {r["engine"] for r in recs} == {"numpy"}
    # each record is the served evaluation of that snapshot on that set's first rows
    rows = [json.loads(line) for line in sets["a"].read_text().splitlines()][:4]
    summary = run_eval(run / "sft" / "snap_2000.npz", rows, baseline=False, engine="numpy")[0]["model"]
    assert {k: recs[2][k] for k in METRICS} == {k: round(summary[k], 4) for k in METRICS}
    assert recs[0]["exact_match"] == recs[0]["nonsense"] == 0.0  # untrained: empty answers

    before = (run / "sft" / CURVE_FILE).read_text()
    again = run_curve(run, sets)
    assert again.exit_code == 0 and "0 new records" in again.stdout
    assert (run / "sft" / CURVE_FILE).read_text() == before

    put_snapshot(run / "sft", models[2], 3000, 2.0)
    more = run_curve(run, sets)
    assert more.exit_code == 0 and "2 new records" in more.stdout
    recs = read_records(run / "sft" / CURVE_FILE)
    assert len(recs) == 6 and recs[:4] == [json.loads(line) for line in before.splitlines()]
    assert [(r["step"], r["set"], r["hours"]) for r in recs[4:]] == [(3000, "a", 3.0), (3000, "b", 3.0)]
    assert [(r["exact_match"], r["nonsense"]) for r in recs[4:]] == [(1.0, 0.0), (1.0, 0.0)]  # all learnt


def test_curve_refuses_another_limit_for_a_recorded_set(tmp_path, sets):
    sft = tmp_path / "run" / "sft"
    (sft / "snap_1000.npz").parent.mkdir(parents=True)
    (sft / "snap_1000.npz").write_bytes(b"")
    (sft / CURVE_FILE).write_text(json.dumps(_record(1000, "a", None)) + "\n")  # scored on 4 rows
    line = one_error_line(train("curve", "--run", tmp_path / "run", "--jsonl", f"a={sets['a']}", "--limit", "5"))
    assert "'a' on 4 rows, now it has 5" in line


@pytest.mark.parametrize("case", ["no snapshots", "no run", "missing jsonl", "empty jsonl", "repeated name"])
def test_curve_bad_input_is_one_line(tmp_path, sets, case):
    run = tmp_path / "run"
    (run / "sft").mkdir(parents=True)
    (run / "sft" / "snap_x.npz").write_bytes(b"")  # not a snapshot name
    (run / "sft" / "last.npz").write_bytes(b"")
    (tmp_path / "empty.jsonl").write_text("")
    jsonl = {"missing jsonl": ["--jsonl", f"a={tmp_path / 'nope.jsonl'}"],
             "empty jsonl": ["--jsonl", f"e={tmp_path / 'empty.jsonl'}"],
             "repeated name": ["--jsonl", f"a={sets['a']}", "--jsonl", f"a={sets['b']}"]}.get(case,
                                                                                         ["--jsonl", str(sets["a"])])
    where = tmp_path / "elsewhere" if case == "no run" else run
    line = one_error_line(train("curve", "--run", where, *jsonl))
    expected = {"no snapshots": "holds no snapshots", "no run": "holds no snapshots", "missing jsonl": "not found",
                "empty jsonl": "has no rows", "repeated name": "a repeated name"}[case]
    assert expected in line
    assert not (run / "sft" / CURVE_FILE).exists()


def _record(step: int, name: str, hours: float | None, exact: float = 0.5) -> dict:
    return {"step": step, "set": name, "hours": hours, "clock": "log", "n": 4, "exact_match": exact,
            "command_name_acc": 0.75, "template_acc": 0.5, "nlc2cmd": 0.25, "nonsense": 0.25, "engine": "numpy"}


def test_report_plots_the_curve_and_tables_it(tmp_path):
    pytest.importorskip("torch")  # `report` is a training stage
    pytest.importorskip("matplotlib")
    run = tmp_path / "run"
    (run / "sft").mkdir(parents=True)
    recs = [_record(s, name, s / 1000 + 0.5, exact=s / 4000) for s in (1000, 2000) for name in ("a", "b")]
    (run / "sft" / CURVE_FILE).write_text("".join(json.dumps(r) + "\n" for r in recs))
    png = tmp_path / "docs" / "learning_curve.png"
    res = train("report", "--out", run, "--curve-png", png)
    assert res.exit_code == 0, res.stderr
    for path in (run / "learning_curve.png", png):
        assert path.read_bytes()[:8] == PNG_MAGIC
    report = (run / "report.md").read_text()
    assert "## Learning curve" in report and "![learning curve](learning_curve.png)" in report
    assert "Hours from the training loop's time in the SFT log." in report
    assert "| step | hours | set | n | exact match | command name | template | NLC2CMD | nonsense |" in report
    assert "| 1000 | 1.50 | a | 4 | 25.0% | 75.0% | 50.0% | 0.250 | 25.0% |" in report
    assert "| 2000 | 2.50 | b | 4 | 50.0% | 75.0% | 50.0% | 0.250 | 25.0% |" in report


def test_curve_figure_has_a_panel_per_metric_and_a_line_per_set():
    plt = pytest.importorskip("matplotlib.pyplot")
    from tinyllm.train.report import curve_figure

    recs = [_record(2000, "a", 2.5, exact=0.5), _record(1000, "a", 1.5, exact=0.25), _record(1000, "b", 1.5)]
    fig = curve_figure(plt, recs)
    axes = fig.get_axes()
    assert [ax.get_title() for ax in axes] == ["exact match", "command name",
                                               "nonsense (no parse, unknown program, stutter)"]
    assert [line.get_label() for line in axes[0].get_lines()] == ["a", "b"]
    assert axes[0].get_lines()[0].get_xydata().tolist() == [[1.5, 25.0], [2.5, 50.0]]  # hours, percent
    assert axes[1].get_lines()[1].get_xydata().tolist() == [[1.5, 75.0]]
    assert axes[2].get_xlabel() == "training hours"
    plt.close(fig)
    fig = curve_figure(plt, recs + [_record(3000, "b", None)])  # a record without hours: steps
    assert fig.get_axes()[2].get_lines()[1].get_xydata().tolist() == [[1000, 25.0], [3000, 25.0]]
    plt.close(fig)


def test_report_without_a_curve_leaves_it_out_unless_asked(tmp_path):
    pytest.importorskip("torch")
    run = tmp_path / "run"
    run.mkdir()
    assert train("report", "--out", run).exit_code == 0
    assert "Learning curve" not in (run / "report.md").read_text() and not (run / "learning_curve.png").exists()
    line = one_error_line(train("report", "--out", run, "--curve-png", tmp_path / "c.png"))
    assert "curve.jsonl not found" in line and not (tmp_path / "c.png").exists()


def test_report_gives_the_training_loop_time_across_resumes(tmp_path):
    pytest.importorskip("torch")
    run = tmp_path / "run"
    (run / "sft").mkdir(parents=True)
    # a resumed run: times.json only saw the last call; the log's train_s counts every part
    (run / "times.json").write_text(json.dumps({"sft": 1800.0}))
    rows = [{"step": 10, "loss": 2.0, "tokens_per_s": 900.0, "train_s": 3600.0},
            {"step": 20, "loss": 1.5, "tokens_per_s": 950.0, "train_s": 9000.0}]
    (run / "sft" / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert train("report", "--out", run).exit_code == 0
    report = (run / "report.md").read_text()
    assert "- sft: 20 steps, final train loss 1.500, 950 tokens/s, 2.50 h in the training loop" in report
    assert "| sft | 1800.0 |" in report and "counts from its resume" in report


def test_report_gives_the_rank_stage_fit(tmp_path):
    pytest.importorskip("torch")
    run = tmp_path / "run"
    (run / "eval").mkdir(parents=True)
    fit = {"baseline": {"n": 50, "exact": 0.1, "command_name": 0.8, "nonsense": {"any": 0.06}},
           "ranked": {"n": 50, "exact": 0.14, "command_name": 0.82, "nonsense": {"any": 0.0}},
           "settings": {"penalties": {"syntax": 5.0, "stutter": 0.0}, "beam": 8, "fill": 2, "fallback": 0,
                        "threshold": 0.07}}
    (run / "eval" / "rank.json").write_text(json.dumps(fit))
    assert train("report", "--out", run).exit_code == 0
    report = (run / "report.md").read_text()
    assert "Fitted on 50 dev rows (`rank` stage): beam 8, filling 2, fallback 0" in report
    assert "penalties: syntax 5." in report and "stutter" not in report  # only the penalties in use
    assert "10.0% exact, 80.0% command name, 6.0% nonsense; ranked: 14.0% exact" in report


def test_log_seconds_follow_train_s_across_a_crash():
    rows = [{"step": 10, "loss": 1, "train_s": 60.0}, {"step": 20, "loss": 1, "train_s": 120.0},
            {"step": 30, "loss": 1, "train_s": 999.0},  # lost in a crash after the step-20 checkpoint ...
            {"step": 30, "loss": 1, "train_s": 185.0}, {"step": 40, "loss": 1, "train_s": 250.0}]  # ... done again
    assert log_seconds(rows, [20, 30, 35, 5]) == {20: 120.0, 30: 185.0, 35: 185.0}
    assert log_seconds(rows + [{"step": 50, "loss": 1}], [20]) is None  # a line without it: no log clock
    assert log_seconds([], [20]) is None


def test_training_hours_prefer_the_log_clock_and_add_the_offset(tmp_path):
    sft = tmp_path / "sft"
    sft.mkdir()
    snaps = {}
    for step, hours in ((1000, 0.0), (3000, 4.0)):
        snaps[step] = sft / f"snap_{step}.npz"
        snaps[step].write_bytes(b"")
        os.utime(snaps[step], (T0, T0 + 3600 * hours))
    assert snapshots(sft) == snaps
    assert training_hours(sft, snaps) == ({1000: 2.0, 3000: 6.0}, "files")  # 2 h per 1000 steps
    assert training_hours(sft, snaps, offset_hours=10) == ({1000: 12.0, 3000: 16.0}, "files")
    log = [{"step": s, "loss": 1.0, "train_s": s * 1.8} for s in range(100, 3001, 100)] + [{"step": 1000, "eval": {}}]
    (sft / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log))
    assert training_hours(sft, snaps, offset_hours=1) == ({1000: 1.5, 3000: 2.5}, "log")
    assert file_seconds({1000: snaps[1000]}) == {}  # one snapshot: no pace yet
    os.utime(snaps[1000], (T0, T0 + 3600 * 5))
    assert file_seconds(snaps) == {}  # copied without their times: no file clock
