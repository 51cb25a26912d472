"""Tests for tinyllm.train.pairs: cleaning, leak-free grouped split, augmentation, build_pairs."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest

from tinyllm.knowledge.text import description_key, whitespace_key
from tinyllm.train import pairs
from tinyllm.train.pairs import (
    assign_splits,
    augment_row,
    build_pairs,
    clean_row,
    clean_rows,
    fill_placeholders,
    quotes_balanced,
)
from tinyllm.train.sources import DataError

FIXTURES = Path(__file__).parent / "fixtures" / "data"


def row(instruction: str, command: str, source: str = "tldr", platform: str = "common") -> dict:
    return {"instruction": instruction, "command": command, "source": source, "platform": platform}


def test_clean_row_normalises_and_drops():
    clean, reason = clean_row(row("  List  the files\u2026 ", "ls  \u2013la  'a  b'"))
    assert reason == "" and clean["instruction"] == "List the files" and clean["command"] == "ls -la 'a  b'"
    assert clean_row(row("   ", "ls"))[1] == "empty"
    assert clean_row(row("x" * 301, "ls"))[1] == "too_long"
    assert clean_row(row("list", "l" * 301))[1] == "too_long"
    assert clean_row(row("list", "ls \ufffd"))[1] == "garbled"
    assert clean_row(row("list\u200b files", "ls"))[1] == "garbled"  # zero-width space (category Cf)
    assert clean_row(row("find", "find . -name '*.txt"))[1] == "unbalanced_quotes"
    assert clean_row(row("echo", "echo `date"))[1] == "unbalanced_quotes"


@pytest.mark.parametrize(
    ("command", "ok"),
    [("echo 'it''s'", True), ('echo "it\'s"', True), ("echo it\\'s", True), ("echo \"a", False),
     ("echo $(date) `id`", True), ("echo 'a\\'", True), ("echo 'a", False)],
)
def test_quotes_balanced(command, ok):
    assert quotes_balanced(command) is ok


def test_clean_rows_deduplicates_on_normalised_pair():
    rows, dropped = clean_rows([row("List files.", "ls"), row("List  files", "ls "), row("List files", "ls -a"),
                                row("", "ls")])
    assert [(r["instruction"], r["command"]) for r in rows] == [("List files", "ls"), ("List files", "ls -a")]
    assert dropped == {"duplicate": 1, "empty": 1}


def _synthetic_rows(n: int = 3000, seed: int = 1) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        # Key spaces ~2n: commands and descriptions collide often enough to chain rows into groups.
        c, d = rng.randrange(2 * n), rng.randrange(2 * n)
        rows.append(row(f"do task number {d}", f"cmd --opt {c}", "nl2bash"))
    return clean_rows(rows)[0]


def test_split_is_grouped_and_leak_free():
    rows = _synthetic_rows()
    names = assign_splits(rows)
    for key in (lambda r: whitespace_key(r["command"]), lambda r: description_key(r["instruction"])):
        where: dict[str, set[str]] = {}
        for r, name in zip(rows, names, strict=True):
            where.setdefault(key(r), set()).add(name)
        assert all(len(s) == 1 for s in where.values())
    counts = {s: names.count(s) for s in ("train", "dev", "test")}
    assert counts["dev"] > 0 and counts["test"] > 0 and counts["train"] > 0.8 * len(rows)


def test_split_is_order_independent_and_deterministic():
    rows = _synthetic_rows(800, seed=2)
    names = dict(zip(((r["instruction"], r["command"]) for r in rows), assign_splits(rows), strict=True))
    shuffled = rows[:]
    random.Random(0).shuffle(shuffled)
    again = dict(zip(((r["instruction"], r["command"]) for r in shuffled), assign_splits(shuffled), strict=True))
    assert names == again


def test_large_groups_stay_in_train(monkeypatch):
    rows = [row("Display help", f"tool{i} --help") for i in range(pairs.MAX_HELD_OUT_GROUP + 1)]
    assert set(assign_splits(rows)) == {"train"}


def test_fill_placeholders_values_and_consistency():
    rng = random.Random(0)
    command, mentions = fill_placeholders("scp -P {{port}} {{path/to/file}} {{username}}@{{host}}:{{path/to/file}}",
                                          "Copy a file", rng)
    assert "{{" not in command
    values = [v for _, v in mentions]
    assert len(values) == 4  # the repeated {{path/to/file}} gets one value, used twice
    assert command.count(values[1]) == 2 + (values[1] in values[3])
    assert values[0].isdigit()


def test_fill_placeholders_leaves_go_templates_in_the_command():
    rng = random.Random(0)
    command, mentions = fill_placeholders("docker ps --filter name={{name}} --format '{{.ID}} {{json .State}}'",
                                          "List containers", rng)
    assert command.endswith("--format '{{.ID}} {{json .State}}'") and "{{name}}" not in command
    assert len(mentions) == 1
    assert fill_placeholders("docker ps --format '{{.Names}}'", "Container names", rng) is None


def test_augment_row_mentions_values_and_is_deterministic():
    r = row("Copy a file to another location", "cp {{path/to/source_file.txt}} {{path/to/target_directory}}")
    a = augment_row(r)
    assert a is not None and a == augment_row(r)
    assert a["source"] == "tldr_aug" and "{{" not in a["command"]
    src, dst = a["command"].split()[1:]
    assert src.endswith(".txt") and src in a["instruction"] and dst in a["instruction"]
    assert a["instruction"].startswith("Copy a file to another location")
    assert augment_row(row("List files", "ls -la")) is None


def test_augment_keeps_values_named_in_the_instruction():
    a = augment_row(row("Output the first 10 lines of a file", "head -n {{10}} {{path/to/file}}"))
    assert a is not None
    assert a["command"].startswith("head -n 10 ")  # "10" is in the request: unchanged and not re-mentioned
    assert a["instruction"].count("10") == 1


def test_build_pairs_on_fixtures(tmp_path, capsys):
    extra = tmp_path / "mine.jsonl"
    extra.write_text(json.dumps({"instruction": "show my ip", "command": "ip -br addr", "platform": "linux"}) + "\n")
    out = tmp_path / "pairs"
    m = build_pairs(FIXTURES, out, extra_jsonl=[extra])
    assert "pairs: wrote" in capsys.readouterr().out
    files = {s: [json.loads(line) for line in (out / f"{s}.jsonl").read_text().splitlines()] for s in pairs.SPLITS}
    assert sum(m["sizes"].values()) == sum(len(v) for v in files.values())
    assert m["raw_by_source"] == {"nl2bash": 4, "tldr": 14, "user": 1}
    every = [r for rows in files.values() for r in rows]
    assert all(set(r) == {"instruction", "command", "source", "platform"} for r in every)
    assert not any(r["command"] == "dir" for r in every)
    assert not any(r["source"] == "tldr_aug" for r in files["dev"] + files["test"])
    aug = [r for r in files["train"] if r["source"] == "tldr_aug"]
    assert all("{{" not in r["command"] for r in aug)
    assert len(aug) == m["by_source"]["train"].get("tldr_aug", 0)
    # rerun with the same inputs reuses the output
    before = (out / "train.jsonl").stat().st_mtime_ns
    assert build_pairs(FIXTURES, out, extra_jsonl=[extra])["fingerprint"] == m["fingerprint"]
    assert "reusing" in capsys.readouterr().out
    assert (out / "train.jsonl").stat().st_mtime_ns == before
    # changed input -> rebuilt
    extra.write_text(json.dumps({"instruction": "show the date", "command": "date"}) + "\n")
    assert build_pairs(FIXTURES, out, extra_jsonl=[extra])["fingerprint"] != m["fingerprint"]
    no_aug = build_pairs(FIXTURES, tmp_path / "plain", augment=False)
    assert "tldr_aug" not in no_aug["by_source"]["train"]


def test_build_pairs_output_loads_with_datasets(tmp_path):
    datasets = pytest.importorskip("datasets")
    build_pairs(FIXTURES, tmp_path)
    ds = datasets.load_dataset("json", data_files={"train": str(tmp_path / "train.jsonl")},
                               cache_dir=str(tmp_path / "hf"))["train"]
    assert set(ds.column_names) == {"instruction", "command", "source", "platform"} and len(ds) > 0


def test_build_pairs_errors(tmp_path):
    with pytest.raises(DataError, match="data directory not found"):
        build_pairs(tmp_path / "missing", tmp_path / "out")
    with pytest.raises(DataError, match="expected tldr/pages"):
        build_pairs(tmp_path, tmp_path / "out")
    with pytest.raises(DataError, match="pair file not found"):
        build_pairs(FIXTURES, tmp_path / "out", extra_jsonl=[tmp_path / "nope.jsonl"])
    shutil.copytree(FIXTURES / "nl2bash", tmp_path / "d" / "nl2bash")
    (tmp_path / "d" / "nl2bash" / "all.cm").write_text("ls\n")
    with pytest.raises(DataError, match="line counts differ"):
        build_pairs(tmp_path / "d", tmp_path / "out")


def test_tldr_requests_name_their_tool():
    from tinyllm.train.pairs import name_tldr_tools, with_tool

    assert with_tool("List upgradable packages", "apt") == "List upgradable packages with apt"
    assert with_tool("Show the apt cache", "apt") == "Show the apt cache"  # already named
    assert with_tool("Run a script", "{{path/to/script}}") == "Run a script"
    rows = [
        {"instruction": "Extract an archive", "command": "tar xf {{a.tar}}", "source": "tldr", "platform": "common"},
        {"instruction": "Disable a module", "command": "sudo a2dismod {{m}}", "source": "tldr", "platform": "linux"},
        {"instruction": "find txt files", "command": "find . -name '*.txt'", "source": "nl2bash", "platform": "linux"},
        {"instruction": "archive files", "command": "tar cf x.tar .", "source": "nl2bash", "platform": "linux"},
    ]
    out = name_tldr_tools({"train": rows[:2], "dev": rows[:2], "test": []}, rows)
    train = [r["instruction"] for r in out["train"]]
    # everyday tools (used by NL2Bash) keep the plain wording too; obscure ones only get the named one
    assert train == ["Extract an archive with tar", "Extract an archive", "Disable a module with a2dismod"]
    assert [r["instruction"] for r in out["dev"]] == ["Extract an archive with tar", "Disable a module with a2dismod"]


def test_thin_find_keeps_a_deterministic_share_of_nl2bash_find_rows():
    rows = [row(f"find files number {i}", f"find . -name '*{i}'", "nl2bash") for i in range(400)]
    rows += [row("list files", "ls -la", "nl2bash"), row("find with tldr", "find . -type d", "tldr")]
    kept = pairs.thin_find(rows, keep=0.5)
    finds = [r for r in kept if r["source"] == "nl2bash" and r["command"].startswith("find")]
    assert 150 < len(finds) < 250
    assert rows[-2] in kept and rows[-1] in kept  # other tools and other sources untouched
    assert pairs.thin_find(rows, keep=0.5) == kept
    assert pairs.thin_find(rows, keep=1.0) == rows


def test_drop_unwanted_targets_removes_key_bindings_and_unasked_recursive_listings():
    dropped = [row("Pause/unpause current song", "<c>"), row("Cycle the colour", "{{<f>|<b>}}"),
               row("Detach from a session", "<Ctrl a><d>"),
               row("display all files in the current folder", "find .", "nl2bash"),
               row("display all pdf files in the current folder", "find . -name '*.pdf'", "nl2bash"),
               row("show all the regular files in current folder", "find . -type f -print0", "nl2bash"),
               row("List all the file links", "find . -type l", "nl2bash")]
    kept = [row("find all files in the current folder", "find .", "nl2bash"),  # says find
            row("display all files in the current directory tree", "find . -type f", "nl2bash"),  # recursion
            row("display all pdf files in the current folder", "find . -maxdepth 1 -name '*.pdf'", "nl2bash"),
            row("delete all pdf files in the current folder", "find . -name '*.pdf' -delete", "nl2bash"),  # not a listing
            row("display all files in the current folder", "find .", "tldr"),  # NL2Bash only
            row("Redirect stdin", "cat < {{path/to/file}}"), row("Print the list", "ls -1 <<< x", "tldr")]
    assert pairs.drop_unwanted_targets(dropped + kept) == kept


def test_vary_values_changes_named_values_consistently():
    rng = random.Random(1)
    seen = set()
    for _ in range(20):
        v = pairs.vary_values(row("unpack photos.zip into backup/", "unzip photos.zip -d backup/", "core"), rng)
        stem = v["command"].split()[1]
        assert stem.endswith(".zip") and stem != "photos.zip" and stem in v["instruction"]
        folder = v["command"].split()[-1].rstrip("/")
        assert folder != "backup" and f"into {folder}/" in v["instruction"]
        seen.add(v["command"])
    assert len(seen) > 5
    port = pairs.vary_values(row("what process is using port 8080", "lsof -i :8080", "core"), rng)
    new = port["command"].split(":")[1]
    assert new != "8080" and int(new) in pairs.PORTS and port["instruction"].endswith(f"port {new}")
    days = pairs.vary_values(row("files changed in the past 7 days", "find . -mtime -7", "core"), rng)
    n = days["command"].split("-")[-1]
    assert n != "7" and f"past {n} days" in days["instruction"]


@pytest.mark.parametrize("instruction, command", [
    ("set permissions of index.html to 644", "chmod 644 index.html"),  # a mode is not a count
    ("print numbers from 1 to 10", "seq 1 10"),  # a range: both ends would have to move together
    ("map port 8080 to 80", "docker run -p 8080:80 nginx"),
    ("ping google.com 4 times", "ping -c 4 google.com"),  # a host name is not a file name
])
def test_vary_values_leaves_modes_ranges_and_hosts(instruction, command):
    v = pairs.vary_values(row(instruction, command, "core"), random.Random(0))
    keep = {"644", "1", "10", "8080", "80", "google.com"}
    for word in keep:
        assert (word in command.split() or word in command) == (word in v["command"])
    if "google.com" in command:
        assert "google.com" in v["command"] and "google.com" in v["instruction"]


def test_summaries_are_train_only_everyday_and_never_leak():
    split_rows = {
        "train": [row("list files one per line", "ls -1", "tldr")],
        "dev": [row("Print working directory", "pwd", "tldr"), row("count words", "wc", "tldr")],
        "test": [],
    }
    all_rows = [row("show files", "ls -la", "nl2bash"), row("where am i", "pwd", "nl2bash"),
                row("count lines", "wc -l x", "nl2bash")]
    summaries = [row("List directory contents", "ls", "tldr_summary"),
                 row("Print the name of the working directory", "pwd", "tldr_summary"),  # `pwd` is a dev command
                 row("Count words", "wc", "tldr_summary"),  # its description is a dev description
                 row("Manage Apache modules", "a2enmod", "tldr_summary")]  # not an everyday tool
    added = pairs.add_summaries(split_rows, summaries, all_rows)
    assert added == [summaries[0]] * pairs.SUMMARY_REPEAT


def test_tldr_summary_line():
    from tinyllm.train.sources import tldr_summary

    assert tldr_summary("# ls\n\n> List directory contents.\n> More information: <https://x>.\n") == "List directory contents"
    assert tldr_summary("# tar\n\n> Archiving utility. Often combined with `gzip`.\n") == "Archiving utility"
    assert tldr_summary("# vi\n\n> This command is an alias of `vim`.\n") == ""
    assert tldr_summary("# x\n\n> More information: <https://x>.\n") == ""
    assert tldr_summary("# y\n\n- do it:\n\n`y`\n") == ""


def test_train_only_drops_a_pair_the_shell_reads_as_a_held_out_command():
    split = {"train": [], "dev": [{"instruction": "count files here", "command": "find . -name \"*.py\" |wc -l"}],
             "test": []}
    row = {"source": "core", "platform": "common"}
    same_words = {**row, "instruction": "how many python files", "command": "find . -name '*.py' | wc -l"}
    other = {**row, "instruction": "list python files", "command": "find . -name '*.py'"}
    kept = pairs.train_only(split, [same_words, other], repeat=1)
    assert [r["command"] for r in kept] == [other["command"]]


def test_core_pairs_are_train_only_repeated_and_leak_free(tmp_path):
    core = tmp_path / "core.jsonl"
    lines = [{"instruction": "show what is in this folder", "command": "ls", "platform": "common"},
             {"instruction": "clone a repo", "command": "git clone {{repo}}"},  # a placeholder row: kept as is
             {"instruction": "bad", "command": ""}]
    core.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    out = tmp_path / "pairs"
    m = build_pairs(FIXTURES, out, core_pairs=core)
    files = {s: [json.loads(line) for line in (out / f"{s}.jsonl").read_text().splitlines()] for s in pairs.SPLITS}
    assert not any(r["source"] == "core" for r in files["dev"] + files["test"])
    got = [r for r in files["train"] if r["source"] == "core"]
    assert [r["command"] for r in got].count("ls") == pairs.CORE_REPEAT  # nothing to vary: plain copies
    assert m["by_source"]["train"]["core"] == len(got)
    held = {whitespace_key(r["command"]) for r in files["dev"] + files["test"]}
    assert not any(whitespace_key(r["command"]) in held for r in got)
    plain = build_pairs(FIXTURES, tmp_path / "plain", core_pairs=None)
    assert "core" not in plain["by_source"]["train"]
    assert "core" not in build_pairs(FIXTURES, tmp_path / "zero", core_pairs=core, core_repeat=0)["by_source"]["train"]
    assert build_pairs(FIXTURES, tmp_path / "two", core_pairs=core, core_repeat=2)["by_source"]["train"]["core"] == 2 * len(got) // pairs.CORE_REPEAT
    assert {s: plain["sizes"][s] for s in ("dev", "test")} == {s: m["sizes"][s] for s in ("dev", "test")}
