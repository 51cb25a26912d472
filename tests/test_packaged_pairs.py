"""The own pairs as a built package holds them (gzip, setup.py) read as the checkout's JSONL does."""

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tinyllm.train import pairs
from tinyllm.train.corpus import iter_pair_docs
from tinyllm.train.sources import DataError, iter_jsonl_pairs, iter_pair_file, pair_file_name, read_pair_bytes

ROOT = Path(__file__).resolve().parent.parent


def _build_py(build_lib: Path) -> Path:
    """Run the package's build_py into `build_lib`; the folder of own pairs it built."""
    pytest.importorskip("setuptools")
    if not (ROOT / "setup.py").is_file():
        pytest.skip("needs the checkout's setup.py")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([sys.executable, "setup.py", "-q", "build_py", "--build-lib", str(build_lib)], cwd=ROOT,
                   check=True, capture_output=True, env=env)
    return build_lib / "tinyllm" / "train" / "data" / "pairs"


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    return _build_py(tmp_path_factory.mktemp("build") / "lib")


def test_build_compresses_every_pair_file(built):
    checkout = pairs.own_pair_files(pairs.CORE_PAIRS)
    packaged = pairs.own_pair_files(built)
    if not any(f.name.endswith(".jsonl") for f in checkout):
        pytest.skip("the checkout's pairs are already compressed (an installed package)")
    assert packaged and all(f.name.endswith(".jsonl.gz") for f in packaged)
    assert not list(built.glob("*.jsonl"))
    assert [pair_file_name(f) for f in packaged] == [f.name for f in checkout]
    assert sum(f.stat().st_size for f in packaged) < sum(f.stat().st_size for f in checkout) / 3


def test_packaged_pairs_give_the_same_rows_and_fingerprint(built):
    checkout = pairs.own_pair_files(pairs.CORE_PAIRS)
    packaged = pairs.own_pair_files(built)
    for raw, packed in zip(checkout, packaged, strict=True):
        assert read_pair_bytes(packed) == raw.read_bytes()
    rows = [r for f in checkout for r in iter_jsonl_pairs(f, source="core")]
    assert rows == [r for f in packaged for r in iter_jsonl_pairs(f, source="core")]
    assert pairs._fingerprint(checkout, {"x": 1}) == pairs._fingerprint(packaged, {"x": 1})
    assert pairs._fingerprint(checkout, {"x": 1}) != pairs._fingerprint(checkout[1:], {"x": 1})
    held = {json.loads(checkout[0].read_text().splitlines()[0])["command"]}
    docs = list(iter_pair_docs(checkout[:2], held))
    assert docs == list(iter_pair_docs(packaged[:2], held))


def test_build_is_reproducible(built, tmp_path):
    again = _build_py(tmp_path / "lib")
    first = pairs.own_pair_files(built)
    assert [f.read_bytes() for f in first] == [f.read_bytes() for f in pairs.own_pair_files(again)]


def test_gzip_pair_file_is_read_like_jsonl(tmp_path):
    text = '{"instruction": "list files", "command": "ls -l", "platform": "common"}\n'
    (tmp_path / "a.jsonl").write_text(text)
    (tmp_path / "b.jsonl.gz").write_bytes(gzip.compress(text.replace("ls -l", "ls -a").encode()))
    (tmp_path / "notes.txt").write_text("ignored")
    files = pairs.own_pair_files(tmp_path)
    assert [f.name for f in files] == ["a.jsonl", "b.jsonl.gz"]
    assert [r["command"] for f in files for r in iter_pair_file(f)] == ["ls -l", "ls -a"]


def test_corrupt_gzip_is_a_one_line_data_error(tmp_path):
    bad = tmp_path / "bad.jsonl.gz"
    bad.write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="bad.jsonl.gz: not a readable gzip file"):
        list(iter_pair_file(bad))


def test_installed_pairs_are_readable():
    """Whatever the package holds (JSONL in a checkout, .jsonl.gz when installed) yields pairs."""
    files = pairs.own_pair_files(pairs.CORE_PAIRS)
    assert files
    rows = list(iter_jsonl_pairs(files[0], source="core"))
    assert rows and all(r["instruction"] and r["command"] for r in rows)
