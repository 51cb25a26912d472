"""Latency of `nl2cmd explain`: the first lookup of a page (rendered by man, nothing cached) and a warm
call (the parsed page read from the user cache), end to end as a user runs it (a fresh `nl2cmd`
process per call, no daemon), plus the in-process `explain()` time with the page cache on disk.

    python bench/explain.py [--repeats 7] [--out bench/results/explain.json] [--quick]

Targets (issue 23): warm <= 100 ms, first lookup <= 500 ms. Each round uses a fresh NL2CMD_HOME for
the cold call (so man renders every page of the command), then repeats the call in that home.
Rounds are interleaved over the commands; tables show medians over rounds.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    REPO,
    add_common_args,
    fmt,
    machine_info,
    machine_lines,
    markdown_table,
    median,
    run_main,
    write_json,
)

COMMANDS = [
    "tar -czf logs.tar.gz logs",
    "ps aux | grep nginx",
    "rm -rf /",
    "find . -name '*.log' -mtime +30 -exec rm {} +",
    "git commit -am 'fix typo'",
    "rsync -avz --progress src/ host:dst/",
    "curl -fsSL https://example.com/install.sh | sh",
    "sudo systemctl restart nginx && journalctl -u nginx -f",
    "ls -la | sort -k5 -n | tail -5",
    "du -sh * 2>/dev/null | sort -h",
]


def nl2cmd_exe() -> list[str]:
    """The installed entry point beside this interpreter, else `python -m`-style through entry.main."""
    beside = Path(sys.executable).with_name("nl2cmd")
    if beside.is_file():
        return [str(beside)]
    return [sys.executable, "-c", "import sys; from tinyllm.cli.entry import console_main; console_main()"]


CPU: dict[str, list[float]] = {"cold": [], "warm": [], "python": []}
"""CPU ms (user + system, the process and its children such as man) per call kind: on a loaded machine
the wall time mostly measures waiting for a core, the CPU time what the call costs."""


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (usage.ru_utime + usage.ru_stime) * 1000


def timed_call(exe: list[str], command: str, home: str, kind: str = "warm") -> float:
    """Wall seconds of one `nl2cmd explain COMMAND` (exit status checked); its CPU ms go to CPU[kind]."""
    # As installed: bytecode is written and reused (pip compiles it at install time).
    env = {k: v for k, v in os.environ.items() if not k.startswith("NL2CMD_") and k != "PYTHONDONTWRITEBYTECODE"}
    env["NL2CMD_HOME"] = home
    cpu, start = _children_cpu(), time.perf_counter()
    out = subprocess.run([*exe, "explain", "--", command], env=env, capture_output=True, text=True, timeout=60,
                         stdin=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    CPU[kind].append(_children_cpu() - cpu)
    if out.returncode != 0:
        raise RuntimeError(f"nl2cmd explain {command!r} failed: {out.stderr.strip()[-300:]}")
    return elapsed


def python_startup(env_home: str) -> float:
    """Wall seconds of a bare `python -c pass` (the floor under any nl2cmd call, measured beside it)."""
    cpu, start = _children_cpu(), time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True, env={**os.environ, "NL2CMD_HOME": env_home})
    elapsed = time.perf_counter() - start
    CPU["python"].append(_children_cpu() - cpu)
    return elapsed


def in_process_ms(command: str, home: str, repeats: int) -> float | None:
    """Median ms of `explain()` in this process with the pages cached on disk (memory memo cleared)."""
    os.environ["NL2CMD_HOME"] = home
    from tinyllm.knowledge import explain as ex
    from tinyllm.knowledge import manpages

    idx = REPO / "tinyllm" / "models" / "default.idx"
    times = []
    for _ in range(repeats):
        manpages._MEMO.clear()
        ex._SUMMARY_CACHE.clear()
        start = time.perf_counter()
        ex.explain(command, index_path=idx)
        times.append((time.perf_counter() - start) * 1000)
    return median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_args(parser, "explain")
    parser.add_argument("--repeats", type=int, default=7, help="warm calls per command per round")
    parser.add_argument("--rounds", type=int, default=3, help="cold+warm rounds per command")
    args = parser.parse_args()
    if shutil.which("man") is None:
        print("man is not installed: nothing to measure")
        return 1
    commands = COMMANDS[:3] if args.quick else COMMANDS
    repeats, rounds = (2, 1) if args.quick else (args.repeats, args.rounds)
    exe = nl2cmd_exe()
    cold: dict[str, list[float]] = {c: [] for c in commands}
    warm: dict[str, list[float]] = {c: [] for c in commands}
    inproc: dict[str, float | None] = {}
    base: dict[str, list[float]] = {c: [] for c in commands}
    warmup = tempfile.mkdtemp(prefix="n2c-bench-")
    try:
        timed_call(exe, commands[0], warmup, "python")  # writes the bytecode caches, as an installed package has them
    finally:
        shutil.rmtree(warmup, ignore_errors=True)
    for r in range(rounds):
        order = commands[r % len(commands):] + commands[: r % len(commands)]
        for command in order:
            home = tempfile.mkdtemp(prefix="n2c-bench-")
            try:
                cold[command].append(timed_call(exe, command, home, "cold") * 1000)
                for _ in range(repeats):
                    warm[command].append(timed_call(exe, command, home) * 1000)
                    base[command].append(python_startup(home) * 1000)
                if r == rounds - 1:
                    inproc[command] = in_process_ms(command, home, repeats)
            finally:
                shutil.rmtree(home, ignore_errors=True)
    baseline = [b for c in commands for b in base[c]]
    rows = []
    for command in commands:
        rows.append({"command": command, "cold_ms": median(cold[command]), "warm_ms": median(warm[command]),
                     "warm_max_ms": max(warm[command]), "in_process_ms": inproc.get(command),
                     "warm_over_python_ms": median([w - b for w, b in zip(warm[command], base[command])]),
                     "cold_samples": cold[command], "warm_samples": warm[command]})
    info = machine_info(torch_threads=False)
    payload = {"bench": "explain", "quick": args.quick, "machine": info, "repeats": repeats, "rounds": rounds,
               "targets_ms": {"warm": 100, "cold": 500}, "rows": rows, "python_startup_ms": median(baseline),
               "cpu_ms": {"cold_median": median(CPU["cold"]), "warm_median": median(CPU["warm"]),
                          "python_startup_median": median(CPU["python"][1:])},
               "summary": {"cold_median_ms": median([r["cold_ms"] for r in rows]),
                           "warm_median_ms": median([r["warm_ms"] for r in rows]),
                           "cold_max_ms": max(r["cold_ms"] for r in rows),
                           "warm_max_median_ms": max(r["warm_ms"] for r in rows)}}
    print("# nl2cmd explain latency" + (" (--quick: smoke settings, not results)" if args.quick else ""))
    print()
    print("\n".join(machine_lines(info)))
    print()
    print(markdown_table(
        ["command", "first lookup ms", "warm ms", "warm ms (max)", "warm minus python start-up ms",
         "explain() in-process ms"],
        [[r["command"], fmt(r["cold_ms"]), fmt(r["warm_ms"]), fmt(r["warm_max_ms"]), fmt(r["warm_over_python_ms"]),
          fmt(r["in_process_ms"])] for r in rows]))
    s = payload["summary"]
    print()
    print(f"median over commands: first lookup {fmt(s['cold_median_ms'])} ms, warm {fmt(s['warm_median_ms'])} ms "
          f"(targets: 500 / 100 ms); a bare `python -c pass`, timed after each warm call, takes {fmt(median(baseline))} ms here")
    c = payload["cpu_ms"]
    print(f"CPU time (user + system, with man and groff): first lookup {fmt(c['cold_median'])} ms, warm "
          f"{fmt(c['warm_median'])} ms, bare python start-up {fmt(c['python_startup_median'])} ms (medians over calls)")
    write_json(args.out, payload)
    return 0


if __name__ == "__main__":
    run_main(main)
