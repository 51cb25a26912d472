"""Smoke tests of the bench scripts: each runs with --quick (micro preset, a few tokens/steps, fake daemon
backend) in a subprocess, prints its markdown table and writes JSON with sane numbers. Not benchmarks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


def run_bench(script: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NL2CMD_HOME", "NL2CMD_BACKEND")}
    return subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=BENCH.parent,
    )


def is_daemon(pid: int) -> bool:
    try:
        return b"tinyllm.serve.daemon" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def check_output(out: subprocess.CompletedProcess[str], header: str, json_path: Path) -> dict:
    assert out.returncode == 0, out.stderr[-2000:]
    assert header in out.stdout
    assert "|---|" in out.stdout
    assert "not results" in out.stdout  # quick runs are labelled as smoke settings
    payload = json.loads(json_path.read_text())
    assert payload["quick"] is True
    assert payload["machine"]["cpu"] and payload["machine"]["logical_cores"] >= 1
    return payload


def test_decode_quick(tmp_path: Path) -> None:
    out_json = tmp_path / "decode.json"
    out = run_bench("decode.py", "--quick", "--out", str(out_json))
    payload = check_output(out, "| variant | threads | prefill ms | decode tok/s |", out_json)
    rows = {(r["variant"], r["threads"]): r for r in payload["decode"]}
    assert ("numpy-cache", 1) in rows and ("torch-int8", 1) in rows and ("numpy-nocache", 1) in rows
    from tinyllm.infer.cengine import unavailable_reason

    assert (("c-int8", 1) in rows and ("c-int8-a32", 1) in rows) == (unavailable_reason() is None)
    for r in rows.values():
        assert r["status"] == "ok", r
        assert r["repeats"] == 2 and len(r["decode_s"]) == 2
        assert r["decode_tokens_per_s"] > 0 and r["prefill_ms"] > 0
    assert rows[("numpy-cache", 1)]["speedup_vs_baseline"] == pytest.approx(1.0)
    imports = {r["case"]: r for r in payload["imports"]}
    for case in ("import tinyllm.cli.entry, frontend, client (plain request)", "import tinyllm.cli.app (click CLI)"):
        cli = imports[case]
        assert cli["wall_ms"] > 0 and "numpy" not in cli["heavy_modules"] and "torch" not in cli["heavy_modules"]
    roof = payload["roofline"]
    assert roof["read_gb_per_s"] > 0
    assert roof["ceiling_tokens_per_s_int8"] == pytest.approx(4 * roof["ceiling_tokens_per_s_fp32"])
    assert "numpy" in imports["import tinyllm.serve.suggest (serving)"]["heavy_modules"]
    assert payload["cold_call"].startswith("skipped")  # no model file with a tokenizer in --quick


def test_train_throughput_quick(tmp_path: Path) -> None:
    out_json = tmp_path / "train.json"
    out = run_bench("train_throughput.py", "--quick", "--out", str(out_json))
    payload = check_output(out, "| preset | params | autocast |", out_json)
    assert {r["mode"] for r in payload["runs"]} == {"bf16", "fp32"}
    for r in payload["runs"]:
        assert r["status"] == "ok", r
        assert r["tokens_per_s"] > 0 and 0 < r["mfu_6n"] < r["mfu_6n_attn"]
    assert all(v and v > 0 for v in payload["peak_flops"]["best"].values())


def test_train_allocator_quick(tmp_path: Path) -> None:
    from tinyllm.train.allocator import find_jemalloc

    if sys.platform != "linux" or find_jemalloc() is None:
        pytest.skip("needs Linux with libjemalloc2")
    out_json = tmp_path / "alloc.json"
    out = run_bench("train_allocator.py", "--quick", "--out", str(out_json), timeout=120)
    payload = check_output(out, "| allocator | tokens/s per round |", out_json)
    assert set(payload["median"]) == {"system", "jemalloc"}
    assert all(v > 0 for v in payload["median"].values()) and payload["ratio_jemalloc"] > 0


def test_memory_quick(tmp_path: Path) -> None:
    out_json = tmp_path / "memory.json"
    out = run_bench("memory.py", "--quick", "--out", str(out_json))
    payload = check_output(out, "| after requests | VmRSS MiB |", out_json)
    for r in payload["training"]:
        assert r["status"] == "ok", r
        assert r["peak_rss_kib"] >= r["rss_after_build_kib"] > r["rss_start_kib"] > 0
    d = payload["daemon"]
    assert d["backend"] == "fake" and d["errors"] == 0
    assert [s["after_requests"] for s in d["samples"]] == [0, 1, 10, 20]
    assert all(s["VmRSS"] > 0 for s in d["samples"])
    assert not is_daemon(d["pid"])  # the bench stopped the daemon it started


def test_bad_input_is_one_line_error(tmp_path: Path) -> None:
    out = run_bench("decode.py", "--quick", "--ckpt", str(tmp_path / "missing.npz"), "--out", str(tmp_path / "x.json"))
    assert out.returncode == 2
    assert out.stderr.strip() == f"decode.py: error: {tmp_path / 'missing.npz'}: model file not found"
    assert not (tmp_path / "x.json").exists()


def test_named_tools_quick(tmp_path: Path) -> None:
    out_json = tmp_path / "named.json"
    out = run_bench("named_tools.py", "--quick", "--out", str(out_json))
    payload = check_output(out, "| requests | n | naming a program |", out_json)
    sets = payload["sets"]
    assert set(sets) == {"everyday", "naming a program"}
    assert sets["naming a program"]["naming"] == sets["naming a program"]["n"] == 2
    # how many answers the step changes depends on the shipped model (v29's ranking: the bandwhich request;
    # the model after it finds every named program of the quick pair by its beam): a count, never above n
    assert all(0 <= row["changed"] <= row["n"] for row in sets.values())
    for row in sets.values():
        assert row["p50_off_ms"] > 0 and row["p50_on_ms"] > 0 and row["ratio_p50"] > 0


def test_explain_quick(tmp_path: Path) -> None:
    import shutil

    if shutil.which("man") is None:
        pytest.skip("man is not installed")
    out_json = tmp_path / "explain.json"
    out = run_bench("explain.py", "--quick", "--out", str(out_json), timeout=180)
    payload = check_output(out, "| command | first lookup ms | warm ms |", out_json)
    assert len(payload["rows"]) == 3
    for row in payload["rows"]:
        assert row["cold_ms"] > 0 and row["warm_ms"] > 0 and row["in_process_ms"] >= 0
    assert payload["cpu_ms"]["warm_median"] > 0


def test_install_size_quick(tmp_path: Path) -> None:
    out_json = tmp_path / "size.json"
    out = run_bench("install_size.py", "--quick", "--out", str(out_json))
    payload = check_output(out, "| distribution | version | needed by | files | MiB | MiB on disk |", out_json)
    rows = {r["name"].lower().replace("_", "-"): r for r in payload["distributions"]}
    assert payload["distributions"][0]["name"] == "nl2cmd"
    assert {"numpy", "sentencepiece", "click", "platformdirs", "prompt-toolkit"} <= set(rows)
    assert rows["prompt-toolkit"]["needed_by"] == "nl2cmd" and rows["numpy"]["bytes"] > 1 << 20
    assert "torch" not in rows and "pytest" not in rows  # extras are not the base install
    assert not {"pip", "setuptools", "wheel"} & set(rows)
    assert {r["name"] for r in payload["installer"]} <= {"pip", "setuptools", "wheel"}
    total = sum(r["bytes"] for r in payload["distributions"])
    assert payload["summary"]["total_mib"] == round(total / (1 << 20), 2)
    over = run_bench("install_size.py", "--quick", "--budget-mb", "1", "--out", str(tmp_path / "over.json"))
    assert over.returncode == 1 and "against a budget of 1 MB: OVER" in over.stdout
    # the walk follows what an extra asks for, and what that needs in turn
    worker = run_bench("install_size.py", "--worker", "nl2cmd[test]")
    with_test = {r["name"].lower(): r["needed_by"] for r in json.loads(worker.stdout)["distributions"]}
    assert with_test["pytest"] == with_test["hypothesis"] == "nl2cmd" and with_test["pluggy"] == "pytest"


def test_two_model_select_counts_each_rule(tmp_path: Path) -> None:
    shipped = BENCH.parent / "tinyllm" / "models" / "default.npz"
    if not shipped.is_file():
        pytest.skip("no shipped model")
    rows = {  # (instruction, first's answer, right, confidence, second's answer, right, confidence)
        "list files in the current directory": ("ls", True, 0.9, "zzqx --frobnicate qqq", False, 0.1),
        "show free disk space": ("qqq zzz vvv", False, 0.2, "df -h", True, 0.7),
        "print the working directory": ("pwd", True, 0.8, "pwd", True, 0.8),
        "print my user name": ("", False, None, "whoami", True, 0.6),
    }
    for model, offset in (("a", 0), ("b", 3)):
        folder = tmp_path / "board" / model
        folder.mkdir(parents=True)
        # the command name counts as right where the answer is exact, except on the disk request, where it is
        # the other way round (so that a count of exact matches cannot pass for one of command names)
        lines = [json.dumps({"instruction": k, "platform": "linux", "prediction": v[offset], "exact_match": v[offset + 1],
                             "command_name_match": v[offset + 1] != (k == "show free disk space"),
                             "confidence": v[offset + 2]}) for k, v in rows.items()]
        (folder / "dev.rows.jsonl").write_text("\n".join(lines) + "\n")
    out_json = tmp_path / "two.json"
    out = run_bench("two_model_select.py", "--board", str(tmp_path / "board"), "--first", f"a={shipped}",
                    "--second", f"b={shipped}", "--set", "dev", "--below", "0.1,0.5", "--out", str(out_json))
    assert out.returncode == 0, out.stderr[-2000:]
    assert "| dev (4; 2 differ) | 2 (50.0%) |" in out.stdout
    rules = json.loads(out_json.read_text())["sets"]["dev"]["rules"]
    # first: rows 1 and 3; second: 2, 3, 4; a rule that takes the likelier, surer or checked answer gets all four
    assert {r: v["exact"] for r, v in rules.items()} == {"first": 2, "second": 3, "oracle": 4, "confidence": 4,
                                                         "both log-probs": 4, "both scores": 4}
    assert rules["both log-probs"]["against_first"] == {"only_first": 2, "only_other": 0, "p": 0.5}
    # below a bound only the first model's unsure answers are reconsidered (none below 0.1; the disk one
    # below 0.5, where the answer without a confidence is kept), and the command names follow the choice
    below = json.loads(out_json.read_text())["sets"]["dev"]["below"]
    assert below["0.1"] == {"asked": 0, "exact": 2, "exact_scored": 2, "command_name_scored": 3}
    assert below["0.5"] == {"asked": 1, "exact": 3, "exact_scored": 3, "command_name_scored": 2}
    missing = run_bench("two_model_select.py", "--board", str(tmp_path / "board"), "--first", f"a={shipped}",
                        "--second", f"c={shipped}", "--set", "dev", "--out", str(tmp_path / "x.json"))
    assert missing.returncode == 2 and "score c on dev with nl2cmd-train scoreboard first" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1 and not (tmp_path / "x.json").exists()


def test_confidence_neighbour_signals(monkeypatch):
    """The nearest training request's features: its word-overlap F1 and whether the answer is its command
    (whitespace aside); zeros when nothing matches."""
    from tinyllm.knowledge.retrieval import BM25Index

    monkeypatch.syspath_prepend(str(BENCH))
    import confidence_features as cf

    index = BM25Index.build([
        {"instruction": "list large files", "command": "du -ah . | sort -rh | head", "platform": "common"},
        {"instruction": "show free memory", "command": "free -h", "platform": "common"}])
    same = cf.neighbour_signals(index, "list large files of the photos folder", "linux", "du -ah .  |  sort -rh | head")
    assert same == {"nn_f1": 0.75, "nn_same": 1.0}
    other = cf.neighbour_signals(index, "list large files", "linux", "ls -S")
    assert other == {"nn_f1": 1.0, "nn_same": 0.0}
    assert cf.neighbour_signals(index, "zzz qqq", "linux", "ls") == {"nn_f1": 0.0, "nn_same": 0.0}
