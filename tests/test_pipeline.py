"""`nl2cmd-train all --preset micro` end to end on a slice of the real data, plus CLI refusals."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _train(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tinyllm.train.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.slow
@pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data is not beside the checkout")
def test_all_micro_runs_every_stage_and_resumes(tmp_path):
    out = tmp_path / "run"
    args = ["all", "--preset", "micro", "--data-dir", str(DATA), "--out", str(out), "--max-train-pairs", "400"]
    res = _train(*args)
    assert res.returncode == 0, res.stderr[-3000:]
    for path in ("pairs/train.jsonl", "corpus/corpus.txt", "tokenizer/tokenizer.model", "shards/manifest.json",
                 "pretrain/last.pt", "sft/best.npz", "sft/last.npz", "sft/retrieval.idx", "eval/dev_summary.json",
                 "sft/snap_30.npz", "sft/snap_60.npz", "sft/average.npz",
                 "report.md", "pretrain_loss.png", "sft_loss.png"):
        assert (out / path).is_file(), path
    from tinyllm.formats.checkpoint import read_meta
    from tinyllm.train.state import load_train_state

    # last.npz holds the final weights of the run, whichever step the dev pick preferred
    assert read_meta(out / "sft" / "last.npz")["meta"]["step"] == load_train_state(out / "sft" / "last.pt")["step"]
    # the plan's model is the mean of its last two snapshots, and that is what the eval stage scored
    assert read_meta(out / "sft" / "average.npz")["meta"]["averaged_steps"] == [30, 60]
    assert "average: " in res.stderr and "steps 30, 60" in res.stderr
    summary = json.loads((out / "eval" / "dev_summary.json").read_text())
    assert summary["model"]["n"] > 1000 and "nearest_neighbour" in summary
    assert summary["model_file"] == "sft/average.npz"
    # the rank stage fitted the ranking on the plan's rows and stored it in the model the eval stage scored
    from tinyllm.infer.rank import META_KEY

    assert "rank: settings fitted on 24 dev and 24 calibration rows" in res.stderr
    assert META_KEY in read_meta(out / "sft" / "average.npz")["meta"]
    assert len((out / "eval" / "rank_candidates.jsonl").read_text().splitlines()) == 48
    assert "reliability_calibration" in json.loads((out / "eval" / "rank.json").read_text())
    report = (out / "report.md").read_text()
    assert "Dev metrics" in report and "nearest neighbour" in report and "Model: `sft/average.npz`" in report
    assert "## Ranking" in report and "Fitted on 24 dev rows" in report
    # A second run skips the finished stages.
    again = _train(*args)
    assert again.returncode == 0 and "finished, skipping" in again.stderr
    assert "average: finished, skipping" in again.stderr and "holds its ranking, skipping" in again.stderr
    assert META_KEY in read_meta(out / "sft" / "average.npz")["meta"]
    # Once training has begun, a stage whose sources look changed is kept, not rebuilt: a new corpus
    # would bring a new tokenizer and orphan the pretraining.
    tokenizer = (out / "tokenizer" / "tokenizer.model").read_bytes()
    (out / "corpus" / "corpus_manifest.json").unlink()  # the corpus stage would rebuild without it
    kept = _train(*args)
    assert kept.returncode == 0, kept.stderr[-3000:]
    assert "corpus: kept, training began with it" in kept.stderr and "tokenizer: kept" in kept.stderr
    assert (out / "tokenizer" / "tokenizer.model").read_bytes() == tokenizer
    assert not (out / "corpus" / "corpus_manifest.json").exists()
    # The standalone eval loads the self-contained model file.
    ev = _train("eval", "--ckpt", str(out / "sft" / "best.npz"), "--jsonl", str(out / "pairs" / "dev.jsonl"),
                "--limit", "20", "--index", str(out / "sft" / "retrieval.idx"), "--output-jsonl", str(tmp_path / "r.jsonl"))
    assert ev.returncode == 0, ev.stderr
    rows = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert len(rows) == 20 and {"instruction", "gold", "prediction", "exact_match"} <= set(rows[0])
    # SFT can continue from an inference model (.npz) with the same config and tokenizer ...
    few = ("--max-train-pairs", "400")  # every train row, with retrieved examples, takes minutes to build
    cont = _train("sft", "--out", str(out), "--preset", "micro", "--sft-dir", "sft_cont", "--steps", "4", *few,
                  "--init", str(out / "sft" / "best.npz"), "--snapshot-every", "2", "--until", "2")
    assert cont.returncode == 0, cont.stderr[-3000:]
    # ... and resume without it: the run's own checkpoint holds the weights and the record of the start
    cont = _train("sft", "--out", str(out), "--preset", "micro", "--sft-dir", "sft_cont", "--steps", "4", *few,
                  "--snapshot-every", "2", "--resume")
    assert cont.returncode == 0, cont.stderr[-3000:]
    from tinyllm.formats.checkpoint import read_meta

    assert read_meta(out / "sft_cont" / "best.npz")["meta"]["init"] == str(out / "sft" / "best.npz")
    # ... keeping snapshots, which average into one model that rank-tune fits (the fallback's candidates
    # are scored once, saved with the others, and added to a candidates file that lacks them)
    snaps = sorted(p.name for p in (out / "sft_cont").glob("snap_*.npz"))
    assert snaps == ["snap_2.npz", "snap_4.npz"]
    avg = tmp_path / "avg.npz"
    res = _train("average", *(str(out / "sft_cont" / n) for n in snaps), "--out", str(avg))
    assert res.returncode == 0 and "steps 2, 4" in res.stdout, res.stderr
    dev = tmp_path / "dev30.jsonl"
    dev.write_text("".join((out / "pairs" / "dev.jsonl").read_text().splitlines(keepends=True)[:30]))
    cands = tmp_path / "cands.jsonl"
    calib = tmp_path / "calib.jsonl"  # the confidence is fitted on these too: decoded and saved with dev's
    calib.write_text("".join(json.dumps({**json.loads(x), "accept": ["ls -la"]}) + "\n"
                             for x in (out / "pairs" / "test.jsonl").read_text().splitlines()[:6]))
    tune = ["rank-tune", "--ckpt", str(avg), "--index", str(out / "sft_cont" / "retrieval.idx"), "--dev", str(dev),
            "--candidates", str(cands), "--calibration", str(calib), "--dry-run", "--report", str(tmp_path / "r.json")]
    res = _train(*tune)
    assert res.returncode == 0, res.stderr[-3000:]
    assert '"reliability_calibration"' in res.stdout
    assert "support" in json.loads(res.stdout)["settings"]["confidence"]  # the SFT index counts programs
    assert json.loads((tmp_path / "r.json").read_text()) == json.loads(res.stdout)
    assert "ranking" not in read_meta(avg)["meta"]  # --dry-run leaves the model file as it was
    recs = [json.loads(line) for line in cands.read_text().splitlines()]
    assert len(recs) == 36 and all("retrieved" in r and "filled" in r for r in recs if "greedy" in r)
    assert not any("checks" in r for r in recs)  # run again with the current checks when read
    assert [r.get("split", "dev") for r in recs] == ["dev"] * 30 + ["calibration"] * 6
    cands.write_text("".join(json.dumps({k: v for k, v in r.items() if k not in ("retrieved", "filled")}) + "\n"
                             for r in recs))
    res = _train(*tune)
    assert res.returncode == 0 and "retrieved fallback candidates" in res.stderr, res.stderr[-3000:]
    assert "filled-in values" in res.stderr
    assert [json.loads(line) for line in cands.read_text().splitlines()] == recs
    # A stage can train on another pairs folder (a first stage on one mixture, then another): the
    # index it saves and the rows it trains on are that folder's
    other_pairs = tmp_path / "tn" / "pairs"
    other_pairs.mkdir(parents=True)
    train_rows = (out / "pairs" / "train.jsonl").read_text().splitlines(keepends=True)
    (other_pairs / "train.jsonl").write_text("".join(train_rows[:50]))
    for name in ("dev.jsonl", "pairs_manifest.json"):
        (other_pairs / name).write_bytes((out / "pairs" / name).read_bytes())
    stage = _train("sft", "--out", str(out), "--preset", "micro", "--sft-dir", "sft_tn", "--steps", "2",
                   "--pairs", str(other_pairs), "--eval-every", "0")
    assert stage.returncode == 0, stage.stderr[-3000:]
    assert "sft: 50 examples" in stage.stderr
    from tinyllm.knowledge.retrieval import BM25Index

    assert len(BM25Index.load(out / "sft_tn" / "retrieval.idx")) == 50
    (other_pairs / "dev.jsonl").unlink()
    missing = _train("sft", "--out", str(out), "--preset", "micro", "--sft-dir", "sft_tn2", "--steps", "2",
                     "--pairs", str(other_pairs))
    assert missing.returncode == 1 and "dev.jsonl not found" in missing.stderr and "Traceback" not in missing.stderr
    # ... and refuses one trained with another config or tokenizer, in one line.
    from tinyllm.formats.checkpoint import default_model_path

    foreign = _train("sft", "--out", str(out), "--preset", "micro", "--sft-dir", "sft_bad", "--steps", "4",
                     "--init", str(default_model_path()))
    assert foreign.returncode == 1 and "another model config or tokenizer" in foreign.stderr
    assert "Traceback" not in foreign.stderr
    # A run folder can take a model's tokenizer (to continue training that model).
    copied = _train("tokenizer", "--out", str(tmp_path / "run2"), "--from-model", str(out / "sft" / "best.npz"))
    assert copied.returncode == 0, copied.stderr
    assert (tmp_path / "run2" / "tokenizer" / "tokenizer.model").read_bytes() == \
        (out / "tokenizer" / "tokenizer.model").read_bytes()
    # Another preset into the same folder is refused, not overwritten.
    other = _train("all", "--preset", "default", "--data-dir", str(DATA), "--out", str(out))
    assert other.returncode == 1 and "different run" in other.stderr and "Traceback" not in other.stderr


@pytest.mark.parametrize("args, message", [
    (["data", "--data-dir", "/nonexistent/data", "--out", "/tmp/nl2cmd-x"], "not found"),
    (["tokenizer", "--out", "/tmp/nl2cmd-empty-run"], "not found"),
    (["eval", "--ckpt", "/nonexistent.npz", "--instructions", __file__, "--gold", __file__], "not found"),
    (["pretrain", "--out", "/tmp/nl2cmd-x", "--preset", "giant"], "unknown preset"),
])
def test_training_cli_errors_are_one_line(args, message):
    res = _train(*args, timeout=120)
    assert res.returncode != 0
    assert message in res.stderr and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("text", ["not json\n", '{"instruction": "list files"}\n', '["ls"]\n'])
def test_bad_pair_files_are_one_line_errors(tmp_path, text):
    """A dev, calibration or eval file with a row that is not JSON or lacks a string instruction and
    command: one line naming the file and line, exit 1, for every command that reads one."""
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "list files", "command": "ls"}\n' + text)
    good = tmp_path / "good.jsonl"
    good.write_text('{"instruction": "list files", "command": "ls"}\n')
    for args in (["rank-tune", "--dev", str(bad), "--dry-run"],
                 ["rank-tune", "--dev", str(good), "--calibration", str(bad), "--dry-run"],
                 ["eval", "--jsonl", str(bad)]):
        res = _train(*args, timeout=120)
        assert res.returncode == 1, (args, res.stderr)
        assert f"{bad} line 2" in res.stderr and "Traceback" not in res.stderr, res.stderr


def test_eval_and_ship_find_the_same_index(tmp_path):
    from tinyllm.train.cli import default_index_path

    run = tmp_path / "sft"
    run.mkdir()
    model = run / "best.npz"
    assert default_index_path(model) == run / "retrieval.idx"  # a run folder
    (run / "best.idx").write_bytes(b"")
    assert default_index_path(model) == run / "best.idx"  # a shipped model's own index wins


def test_ship_installs_only_a_model_that_beats_the_shipped_one(tmp_path):
    """ship() copies model + index with the dev summary; it refuses a candidate that does not beat the
    shipped model, judged by the shipped model's fresh score on the same rows when one is given."""
    import numpy as np

    from tinyllm.formats.checkpoint import expected_weight_shapes, read_meta, save_inference
    from tinyllm.formats.config import ModelConfig
    from tinyllm.knowledge.retrieval import BM25Index
    from tinyllm.train.ship import ship

    cfg = ModelConfig(dim=16, n_layers=1, n_heads=2, ffn_hidden=32, vocab_size=16, max_seq_len=8)
    weights = {k: np.zeros(s, np.float32) for k, s in expected_weight_shapes(cfg).items()}
    model, index, dest = tmp_path / "cand.npz", tmp_path / "cand.idx", tmp_path / "pkg" / "default.npz"
    dest.parent.mkdir()
    save_inference(model, weights, cfg, b"tok", {})
    BM25Index.build([{"instruction": "list files with ls", "command": "ls -l", "platform": "linux"},
                     {"instruction": "long listing with ls", "command": "ls -la", "platform": "linux"}]).save(index)

    def summary(exact: float) -> dict:
        return {"model": {"exact_match": exact}}

    assert "shipped" in ship(model, index, summary(0.10), dest)  # nothing shipped yet
    served = BM25Index.load(dest.with_suffix(".idx"))  # the run's index, now with its tool lexicon
    assert served.commands == ["ls -l", "ls -la"] and served.tools is not None and "ls" in served.tools.named
    assert read_meta(dest)["meta"]["dev_full"]["model"]["exact_match"] == 0.10
    with pytest.raises(ValueError, match="does not beat"):
        ship(model, index, summary(0.10), dest)  # a tie is not better than the stored 0.10
    with pytest.raises(ValueError, match="does not beat"):
        ship(model, index, summary(0.09), dest, current_summary=summary(0.095))
    ship(model, index, summary(0.09), dest, current_summary=summary(0.08))  # the fresh score decides
    assert read_meta(dest)["meta"]["dev_full"]["model"]["exact_match"] == 0.09
    ship(model, index, summary(0.01), dest, force=True)
