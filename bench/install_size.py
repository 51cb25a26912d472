"""What a base install weighs on disk: nl2cmd and every distribution it needs, without the installer.

    python bench/install_size.py                         # a temporary venv with a non-editable `pip install .`
    python bench/install_size.py --python VENV/bin/python --out FILE   # an environment as it is (CI)

The default run creates a virtual environment in a temporary directory, installs a copy of this
checkout (the files git sees) into it as a user would (`pip install .`: no extras, so no torch), then
measures it. `--python` measures
the environment of that interpreter as it is, installing nothing: CI runs it right after its base
install, before it adds the test extras. `--quick` measures the environment running this script.

The measurement runs inside the measured environment: starting from nl2cmd, it follows each
distribution's requirements (importlib.metadata; a requirement that only an extra asks for is
followed only when that extra is asked for, and one that is not installed is not counted) and sums
the files that each distribution's RECORD lists, including the compiled .pyc files and the console
scripts. `MiB` is the sum of the files' sizes; `on disk` counts the blocks they take, as `du` does.
pip, setuptools and wheel (the installer, not the product) are listed apart and not counted, and so
is anything else in the environment that nl2cmd does not need. Prints a table and writes JSON
(default bench/results/install_size.json); the exit status is 1 when the total exceeds `--budget-mb`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from common import REPO, BenchError, add_common_args, finish, machine_info, markdown_table, print_header, run_main

ROOT = "nl2cmd"
INSTALLER = frozenset({"pip", "setuptools", "wheel"})
"""Distributions that install the product rather than belong to it: listed apart, never counted."""
BUDGET_MB = 150.0
"""The base install's budget, in MB (10**6 bytes)."""
MIB = 1 << 20
_REQUIREMENT_RE = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?([^;]*)(?:;(.*))?$")


def canonical(name: str) -> str:
    """A distribution name as PEP 503 compares it (``Prompt_Toolkit`` -> ``prompt-toolkit``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_requirement(text: str) -> tuple[str, frozenset[str], str]:
    """(name, extras, marker) of a ``Requires-Dist`` value (PEP 508); marker is "" when there is none."""
    m = _REQUIREMENT_RE.match(text)
    if m is None:
        raise ValueError(f"unreadable requirement {text!r}")
    name, extras, _version, marker = m.groups()
    wanted = frozenset(canonical(e) for e in (extras or "").split(",") if e.strip())
    return name, wanted, (marker or "").strip()


def wanted_with(marker: str, extras: frozenset[str]) -> bool:
    """Whether a requirement with `marker` applies when its distribution is installed with `extras`.

    Only ``extra == "..."`` clauses are read: a requirement that names an extra applies when one of
    `extras` is named in it. Other markers (python_version, sys_platform...) are left to the installer:
    what they exclude is not installed, and the walk counts only what is installed.
    """
    named = {canonical(e) for e in re.findall(r"""extra\s*==\s*["']([^"']+)["']""", marker)}
    return not named or bool(named & extras)


def _file_sizes(dist: metadata.Distribution) -> tuple[int, int, int]:
    """(files, bytes, bytes on disk) of the files `dist`'s RECORD lists that exist."""
    files = size = disk = 0
    seen: set[str] = set()
    for entry in dist.files or []:
        path = os.path.normpath(str(dist.locate_file(entry)))
        if path in seen:
            continue
        seen.add(path)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        files += 1
        size += st.st_size
        disk += st.st_blocks * 512
    return files, size, disk


def _row(dist: metadata.Distribution, needed_by: str) -> dict[str, Any]:
    files, size, disk = _file_sizes(dist)
    return {"name": dist.metadata["Name"], "version": dist.version, "needed_by": needed_by, "files": files,
            "bytes": size, "disk_bytes": disk, "record": dist.files is not None}


def measure_environment(root: str = ROOT) -> dict[str, Any]:
    """The installed size of `root` and the distributions it needs, in the environment of this interpreter.

    `root` is a distribution name, with extras if wanted (``nl2cmd[test]``). Returns {"root", "python", "distributions": rows of what `root` needs (itself first), "installer":
    rows of pip/setuptools/wheel, "others": rows of everything else installed, "missing": required names
    that are not installed}. A row: name, version, needed_by (the first distribution found to need it),
    files, bytes, disk_bytes, record (False: the distribution has no RECORD, so nothing is counted).
    Raises metadata.PackageNotFoundError when `root` is not installed.
    """
    name, root_extras, _marker = parse_requirement(root)
    order: list[str] = []
    found: dict[str, tuple[metadata.Distribution, str, frozenset[str]]] = {}
    missing: list[str] = []
    todo: list[tuple[metadata.Distribution, str, frozenset[str]]] = [(metadata.distribution(name), "", root_extras)]
    while todo:
        dist, needed_by, extras = todo.pop(0)
        key = canonical(dist.metadata["Name"])
        if key in found:
            old_dist, old_by, old_extras = found[key]
            if extras <= old_extras:
                continue
            extras = extras | old_extras  # walk it again for the extras asked for now
            needed_by = old_by
        else:
            order.append(key)
        found[key] = (dist, needed_by, extras)
        for text in dist.requires or []:
            name, req_extras, marker = parse_requirement(text)
            if canonical(name) in INSTALLER or not wanted_with(marker, extras):
                continue
            try:
                todo.append((metadata.distribution(name), dist.metadata["Name"], req_extras))
            except metadata.PackageNotFoundError:
                if canonical(name) not in missing:
                    missing.append(canonical(name))
    rows = [_row(found[key][0], found[key][1]) for key in order]
    installer: list[dict[str, Any]] = []
    others: list[dict[str, Any]] = []
    listed: set[str] = set(found)
    for dist in metadata.distributions():
        key = canonical(dist.metadata["Name"] or "")
        if not key or key in listed:
            continue
        listed.add(key)
        (installer if key in INSTALLER else others).append(_row(dist, ""))
    others.sort(key=lambda r: -r["bytes"])
    return {"root": root, "python": sys.version.split()[0], "distributions": rows, "installer": installer,
            "others": others, "missing": missing}


def measure_with(python: str, root: str = ROOT) -> dict[str, Any]:
    """measure_environment() run by the interpreter `python` (in its own environment)."""
    proc = subprocess.run([python, str(Path(__file__).resolve()), "--worker", root], capture_output=True, text=True,
                          timeout=300)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise BenchError(f"measuring with {python} failed: {tail}")
    return json.loads(proc.stdout)


def checkout_copy(dest: Path) -> Path:
    """Copy the files git sees in this checkout (tracked, and untracked ones it does not ignore) to `dest`.

    pip builds a local project in place, so installing from a copy leaves no build/ or egg-info in the
    checkout, and nothing it ignores (a built extension, a stale build/, runs/) can reach the install.
    Raises BenchError outside a git checkout.
    """
    try:
        listed = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                                capture_output=True, check=True, timeout=120).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise BenchError(f"cannot list the checkout's files with git: {exc}") from None
    for name in filter(None, listed.decode("utf-8", "surrogateescape").split("\0")):
        source = REPO / name
        if source.is_file():  # a tracked file deleted in the working tree is not there
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return dest


def fresh_install(venv: Path, source: Path, progress: bool = True) -> tuple[str, float]:
    """Create a venv at `venv` and `pip install` the project at `source` into it (non-editable, no extras).

    Returns (the venv's python, seconds pip took). Raises BenchError when either step fails.
    """
    python = str(venv / "bin" / "python")
    steps = [([sys.executable, "-m", "venv", str(venv)], "creating the venv"),
             ([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", str(source)], "pip install .")]
    seconds = 0.0
    for cmd, what in steps:
        if progress:
            sys.stderr.write(f"[install_size] {what}\n")
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
        seconds = time.perf_counter() - t0  # the last step's: pip's
        if proc.returncode != 0:
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise BenchError(f"{what} failed: {tail}")
    return python, seconds


def pip_version(python: str) -> str | None:
    """The version of pip in the environment of `python` (None without pip)."""
    proc = subprocess.run([python, "-m", "pip", "--version"], capture_output=True, text=True, timeout=120)
    return proc.stdout.split()[1] if proc.returncode == 0 and proc.stdout.startswith("pip ") else None


def summarize(measured: dict[str, Any], budget_mb: float) -> dict[str, Any]:
    """The totals of a measurement (MiB, on-disk MiB and MB) and whether it keeps within `budget_mb`."""
    rows = measured["distributions"]
    total = sum(r["bytes"] for r in rows)
    disk = sum(r["disk_bytes"] for r in rows)
    return {"total_mib": round(total / MIB, 2), "total_disk_mib": round(disk / MIB, 2),
            "total_mb": round(total / 1e6, 2), "budget_mb": budget_mb, "within_budget": total / 1e6 <= budget_mb}


def print_report(payload: dict[str, Any]) -> None:
    """The table of distributions with the total, then what was left out."""
    print_header("Base install size (nl2cmd and what it needs, installer excluded)", payload)
    print(f"- environment: {payload['how']}; python {payload['python']}, pip {payload['pip']}\n")

    def mib(n: int) -> str:
        return f"{n / MIB:,.1f}"

    rows = [(r["name"], r["version"], r["needed_by"] or "-", r["files"], mib(r["bytes"]), mib(r["disk_bytes"]))
            for r in payload["distributions"]]
    s = payload["summary"]
    rows.append(("**total**", "", "", sum(r["files"] for r in payload["distributions"]), f"**{s['total_mib']:,.1f}**",
                 f"{s['total_disk_mib']:,.1f}"))
    print(markdown_table(["distribution", "version", "needed by", "files", "MiB", "MiB on disk"], rows))
    print(f"\n{s['total_mb']:,.1f} MB against a budget of {s['budget_mb']:g} MB: "
          + ("within" if s["within_budget"] else "OVER"))
    for label, key in (("not counted (the installer)", "installer"), ("not counted (not needed by nl2cmd)", "others")):
        if payload[key]:
            print(f"- {label}: " + ", ".join(f"{r['name']} {mib(r['bytes'])} MiB" for r in payload[key]))
    if payload["missing"]:
        print(f"- required but not installed: {', '.join(payload['missing'])}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(ap, "install_size")
    ap.add_argument("--python", default=None, help="measure this interpreter's environment as it is (no install)")
    ap.add_argument("--budget-mb", type=float, default=BUDGET_MB, help="exit status 1 above this total (MB)")
    ap.add_argument("--worker", metavar="ROOT", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(measure_environment(args.worker)))
        return 0
    payload: dict[str, Any] = {"bench": "install_size", "quick": args.quick, "machine": machine_info(torch_threads=False)}
    if args.quick or args.python:
        python = sys.executable if args.quick else args.python
        payload.update(how="an existing environment, as it is", pip=pip_version(python), pip_seconds=None)
        measured = measure_with(python)
    else:
        with tempfile.TemporaryDirectory(prefix="nl2cmd-size-") as tmp:
            python, seconds = fresh_install(Path(tmp) / "venv", checkout_copy(Path(tmp) / "src"))
            payload.update(how="a fresh venv, non-editable `pip install .` of a copy of this checkout",
                           pip=pip_version(python), pip_seconds=round(seconds, 1))
            measured = measure_with(python)
    payload.update(measured, summary=summarize(measured, args.budget_mb))
    finish(payload, print_report, args.out)
    return 0 if payload["summary"]["within_budget"] else 1


if __name__ == "__main__":
    run_main(main)
