"""The training CLI re-executes itself with jemalloc preloaded, once, only for training commands."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tinyllm.train.allocator import JEMALLOC_CONF, MISSING_NOTE, SWITCH, find_jemalloc, missing_note, reexec_plan

LIB = "/opt/lib/libjemalloc.so.2"


@pytest.mark.parametrize("argv", [["nl2cmd-train", "sft", "--out", "r"], ["nl2cmd-train", "--quiet", "pretrain"],
                                  ["nl2cmd-train", "all", "--preset", "micro"]])
def test_training_commands_are_reexecuted_with_jemalloc(argv):
    env = reexec_plan(argv, {"PATH": "/bin", "LD_PRELOAD": "/x/other.so"}, platform="linux", library=LIB)
    assert env is not None
    assert env["LD_PRELOAD"].split() == [LIB, "/x/other.so"]
    assert env["MALLOC_CONF"] == JEMALLOC_CONF
    assert env["PATH"] == "/bin"
    # the re-executed process must not plan another re-execution
    assert reexec_plan(argv, env, platform="linux", library=LIB) is None


def test_user_malloc_conf_is_kept():
    env = reexec_plan(["t", "sft"], {"MALLOC_CONF": "narenas:1"}, platform="linux", library=LIB)
    assert env["MALLOC_CONF"] == "narenas:1"


@pytest.mark.parametrize("argv,environ,platform", [
    (["t", "data", "--out", "r"], {}, "linux"),            # not a training command
    (["t", "eval", "--jsonl", "sft"], {}, "linux"),         # "sft" as a value, not the command
    (["t"], {}, "linux"),
    (["t", "sft"], {SWITCH: "system"}, "linux"),            # the user keeps glibc
    (["t", "sft"], {"LD_PRELOAD": "/usr/lib/libjemalloc.so.2"}, "linux"),
    (["t", "sft"], {}, "darwin"),
])
def test_no_reexecution(argv, environ, platform):
    assert reexec_plan(argv, environ, platform=platform, library=LIB) is None


def test_without_jemalloc_nothing_changes(tmp_path):
    assert find_jemalloc([str(tmp_path / "missing.so")]) is None
    lib = tmp_path / "libjemalloc.so.2"
    lib.write_bytes(b"")
    assert find_jemalloc([str(tmp_path / "missing.so"), str(lib)]) == str(lib)


def test_a_training_command_without_jemalloc_says_so_once(tmp_path):
    none = [str(tmp_path / "missing.so")]
    assert missing_note(["t", "sft", "--out", "r"], {}, "linux", none) == MISSING_NOTE
    assert "apt install libjemalloc2" in MISSING_NOTE and "\n" not in MISSING_NOTE
    lib = tmp_path / "libjemalloc.so.2"
    lib.write_bytes(b"")
    assert missing_note(["t", "sft"], {}, "linux", [str(lib)]) is None           # installed: re-executed instead
    assert missing_note(["t", "data", "--out", "r"], {}, "linux", none) is None  # not a training command
    assert missing_note(["t", "sft"], {}, "darwin", none) is None
    assert missing_note(["t", "sft", "--help"], {}, "linux", none) is None
    assert missing_note(["t", "sft"], {SWITCH: "system"}, "linux", none) is None  # the user chose glibc
    assert missing_note(["t", "sft"], {SWITCH: "jemalloc"}, "linux", none) is None  # already re-executed


@pytest.mark.skipif(sys.platform != "linux" or find_jemalloc() is None, reason="needs Linux with libjemalloc2")
def test_training_process_really_runs_on_jemalloc(tmp_path):
    """`nl2cmd-train sft` re-executes into a process that has jemalloc mapped; `data` does not."""
    probe = (
        "import sys, tinyllm.train.allocator as a\n"
        "a.REEXEC_CODE = 'print(\"jemalloc\" in open(\"/proc/self/maps\").read())'\n"
        "a.use_jemalloc(['nl2cmd-train', sys.argv[1]])\n"
        "print('not re-executed')\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", SWITCH, "MALLOC_CONF")}
    run = lambda cmd: subprocess.run([sys.executable, "-c", probe, cmd], env=env, capture_output=True,  # noqa: E731
                                     text=True, timeout=60).stdout.split()
    assert run("sft") == ["True"]
    assert run("data") == ["not", "re-executed"]


def test_reexecution_keeps_the_command_line(tmp_path):
    """`ps`/`pkill -f "nl2cmd-train sft"` must still find a re-executed training process."""
    from tinyllm.train.allocator import REEXEC_CODE, reexec_args

    script = tmp_path / "nl2cmd-train"
    script.write_text("#!/usr/bin/env python3\n")
    assert reexec_args([str(script), "sft", "--out", "r"]) == [str(script), "sft", "--out", "r"]
    assert reexec_args(["/x/site-packages/tinyllm/train/cli.py", "sft"]) == ["-m", "tinyllm.train.cli", "sft"]
    assert reexec_args(["nl2cmd-train", "sft"]) == ["-c", REEXEC_CODE, "sft"]
