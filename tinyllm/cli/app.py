"""The ``nl2cmd`` command line.

``nl2cmd list large files`` (quoted or not) prints exactly one shell command on stdout.
Diagnostics go to stderr as ``nl2cmd: warning: ...``; errors are one ``nl2cmd: error: ...`` line
with exit status 1 (usage errors: 2), never a traceback.

Options are recognised only before the first word of the instruction, so ``nl2cmd find files
-name foo`` works; ``nl2cmd -- -text`` passes text that starts with a dash, and
``nl2cmd -- learn to juggle`` an instruction that starts with a sub-command's name.

This module is the thin client: its top-level imports must not pull numpy/torch (or prompt_toolkit).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from tinyllm import __version__
from tinyllm.formats.paths import StateDirError, ensure_dir
from tinyllm.formats.prompt import USER_PLATFORMS
from tinyllm.formats.settings import MAX_ALTERNATIVES, check_seconds
from tinyllm.knowledge.text import safe_line, strip_control
from tinyllm.serve.protocol import PROTOCOL_VERSION

from .frontend import (
    PROG,
    Engine,
    FrontendError,
    clean_arg,
    emit,
    err,
    instruction_from,
    load_settings,
    one_line,
    out,
    print_line,
    run_guarded,
    state_paths,
    suggest_main,
    warn,
)

CliError = FrontendError  # one error type for both halves of the CLI
DEFAULT_COMMAND = "suggest"
_T = TypeVar("_T")


class DefaultGroup(click.Group):
    """A group whose first argument, when it is not a sub-command, belongs to a default command.

    Small re-implementation of click-default-group's idea: ``nl2cmd list files`` means
    ``nl2cmd suggest list files``. ``main`` also turns every failure into one stderr line.
    """

    def __init__(self, *args: Any, default_cmd: str = DEFAULT_COMMAND, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.default_cmd = default_cmd

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Insert the default command name unless the first argument is a command or a group option."""
        if not args:
            click.echo(ctx.get_help())
            ctx.exit(0)
        group_opts = {opt for param in self.get_params(ctx) for opt in (*param.opts, *param.secondary_opts)}
        if args[0] not in self.commands and args[0] not in group_opts:
            args = [self.default_cmd, *args]
        return super().parse_args(ctx, args)

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, windows_expand_args: bool = True, **extra: Any) -> Any:
        """Run the CLI and exit: usage errors -> 2, errors -> 1, interrupted -> 130; never a traceback."""

        def body() -> Any:
            try:
                return super(DefaultGroup, self).main(args, prog_name or PROG, complete_var, standalone_mode=False,
                                                      windows_expand_args=windows_expand_args, **extra)
            except click.UsageError as exc:
                hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
                err(f"error: {exc.format_message()}{hint}")
                return exc.exit_code
            except click.ClickException as exc:
                err(f"error: {exc.format_message()}")
                return exc.exit_code
            except click.Abort:
                err("interrupted")
                return 130

        run_guarded(body)


# ---------------------------------------------------------------------------------------------- helpers


def _suggest_options(f: Any) -> Any:
    """Options shared by `suggest` and `repl`."""
    for deco in reversed([
        click.option("-n", "--num", type=click.IntRange(1, MAX_ALTERNATIVES), default=None,
                     help="Print N alternatives, best first, one per line."),
        click.option("--platform", type=click.Choice(USER_PLATFORMS), default=None,
                     help="Target platform (default: this OS, or the config file)."),
        click.option("--model", type=click.Path(dir_okay=False), default=None, help="Model file to use."),
        click.option("--no-daemon/--daemon", "no_daemon", default=None,
                     help="Generate in this process instead of asking the background daemon."),
    ]):
        f = deco(f)
    return f


# ---------------------------------------------------------------------------------------------- commands


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(f"{PROG} {__version__} (protocol {PROTOCOL_VERSION}, python {sys.version.split()[0]})")
        ctx.exit(0)


@click.group(cls=DefaultGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version,
              help="Show the version and exit.")
def cli() -> None:
    """Turn plain English into a shell command: nl2cmd list the 5 largest files here

    Anything that is not a sub-command is an instruction (the default `suggest` command).
    """


@cli.command(DEFAULT_COMMAND, context_settings={"allow_interspersed_args": False})
@click.argument("words", nargs=-1)
@_suggest_options
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object (command, alternatives, warnings, ...).")
def suggest_cmd(words: tuple[str, ...], num: int | None, platform: str | None, model: str | None,
                no_daemon: bool | None, as_json: bool) -> None:
    """Suggest a shell command for INSTRUCTION (the words may be unquoted)."""
    suggest_main(list(words), num=num, platform=platform, model=model, no_daemon=no_daemon, as_json=as_json)


@cli.command("explain", context_settings={"allow_interspersed_args": False})
@click.argument("words", nargs=-1, type=click.UNPROCESSED)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object per command (parts, spans, sources).")
@click.option("--width", type=click.IntRange(20, 1000), default=None,
              help="Wrap the text to this many columns (default: the terminal's width).")
def explain_cmd(words: tuple[str, ...], as_json: bool, width: int | None) -> int:
    """Explain COMMAND part by part from the local man pages ('-' reads commands from stdin).

    Options of nl2cmd come before the command: nl2cmd explain --json tar -czf logs.tgz logs
    """
    from .explain_view import explain_main

    return explain_main(list(words), as_json=as_json, width=width)


@cli.command("repl")
@_suggest_options
def repl_cmd(num: int | None, platform: str | None, model: str | None, no_daemon: bool | None) -> None:
    """Interactive prompt: type instructions, get commands (Ctrl-D exits).

    ":explain COMMAND" explains a command; ":explain" alone explains the last suggestion.
    """
    from .repl import run_repl

    settings = load_settings(num=num, platform=platform, model=model, no_daemon=no_daemon)
    paths = state_paths()
    engine = Engine(settings, paths)

    last: list[str] = []  # the last suggestion, for ":explain" without a command

    def answer(text: str) -> None:
        if text == EXPLAIN_WORD or text.startswith(EXPLAIN_WORD + " "):
            explain_in_repl(text[len(EXPLAIN_WORD):].strip() or (last[-1] if last else ""))
            return
        try:
            result = engine.suggest(instruction_from(text), settings.platform, settings.num)
            emit(result, settings.num, as_json=False)
        except CliError as exc:
            err(f"error: {exc}")
            return
        if one_line(result.get("command", "")):
            last[:] = [one_line(result["command"])]

    history: Path | None = paths.history
    try:
        ensure_dir(paths.state_dir, private=True)  # the history holds what was asked: private
    except (OSError, StateDirError) as exc:
        warn(f"history not kept: {exc}")
        history = None
    run_repl(answer, history)


EXPLAIN_WORD = ":explain"


def explain_in_repl(command: str) -> None:
    """The REPL's ``:explain [COMMAND]``: explain COMMAND, or the last suggestion when it is empty."""
    from .explain_view import explain_main

    if not command:
        err("nothing to explain yet: ask for a command first, or type :explain COMMAND")
        return
    try:
        explain_main([command])
    except CliError as exc:
        err(f"error: {exc}")


# --------------------------------------------------------------------------------------------- daemon


@cli.group("daemon")
def daemon_group() -> None:
    """Manage the background daemon that keeps the model loaded."""


def _daemon_error(exc: Exception) -> CliError:
    return CliError(str(exc))


def _idle_seconds(_ctx: click.Context, _param: click.Parameter, value: float | None) -> float | None:
    """--idle-timeout: a finite number of seconds in the range the config file allows."""
    if value is None:
        return None
    try:
        return check_seconds("idle_timeout", value)
    except ValueError as exc:
        raise click.BadParameter(str(exc).removeprefix("idle_timeout ")) from None


_IDLE_OPTION = click.option("--idle-timeout", type=float, default=None, callback=_idle_seconds,
                            help="Exit after this many idle seconds (0: never).")
_SERVE_MODEL_OPTION = click.option("--model", type=click.Path(dir_okay=False), default=None,
                                   help="Model file to serve.")


def _launch(launch: Callable[..., _T], model: str | None, idle_timeout: float | None, fatal_note: str = "") -> _T:
    """Start a daemon with `launch` (client.ensure_daemon or client.restart_daemon) and the settings, with
    --model and --idle-timeout applied; returns what `launch` returns. A model that cannot be loaded and
    any other client error become a CliError (`fatal_note` follows the model's load error)."""
    from tinyllm.serve import client

    s = load_settings(model=model, idle_timeout=idle_timeout)
    try:
        return launch(state_paths(), s.model, s.idle_timeout, s.start_timeout)
    except client.DaemonStartFatal as exc:
        raise CliError(f"cannot load the model: {exc}{fatal_note}") from None
    except client.ClientError as exc:
        raise _daemon_error(exc) from None


@daemon_group.command("start")
@_SERVE_MODEL_OPTION
@_IDLE_OPTION
def daemon_start(model: str | None, idle_timeout: float | None) -> None:
    """Start the daemon (no-op if a compatible one is running)."""
    from tinyllm.serve import client

    info = _launch(client.ensure_daemon, model, idle_timeout)
    out(f"nl2cmd daemon running (pid {info.get('pid')})")


@daemon_group.command("stop")
def daemon_stop() -> None:
    """Stop the daemon."""
    from tinyllm.serve import client

    try:
        pid = client.stop_daemon(state_paths())
    except client.ClientError as exc:
        raise _daemon_error(exc) from None
    out(f"nl2cmd daemon stopped (pid {pid})" if pid else "nl2cmd daemon not running")


@daemon_group.command("restart")
@_SERVE_MODEL_OPTION
@_IDLE_OPTION
def daemon_restart(model: str | None, idle_timeout: float | None) -> None:
    """Start a fresh daemon; a running one serves until the new one has loaded its model."""
    from tinyllm.serve import client

    old, info = _launch(client.restart_daemon, model, idle_timeout,
                        " (the running daemon, if any, is left as it was)")
    if old:
        out(f"nl2cmd daemon replaced (pid {old})")
    out(f"nl2cmd daemon running (pid {info.get('pid')})")


@daemon_group.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the daemon's ping reply as JSON.")
@click.pass_context
def daemon_status(ctx: click.Context, as_json: bool) -> None:
    """Show whether the daemon runs (exit status 0) or not (1)."""
    from tinyllm.serve import client, process

    paths = state_paths()
    try:
        info = client.probe(paths)
    except client.UnsafeSocket as exc:
        raise CliError(str(exc)) from None
    if as_json:
        payload = {"running": info is not None, **(info or {})}
        payload.pop("ok", None)
        payload.pop("peer_pid", None)
        print_line(json.dumps(payload))
    elif info is None:
        pid = process.read_pid(paths.pid)
        if pid and process.pid_alive(pid) and process.is_daemon_process(pid, paths.socket):
            out(f"nl2cmd daemon not answering (pid {pid}; log {paths.log})")
        else:
            out("nl2cmd daemon not running")
    else:
        out(f"nl2cmd daemon running: pid {info.get('pid')}, version {info.get('version')}, "
            f"protocol {info.get('protocol')}, backend {info.get('backend')}")
        out(f"model: {info.get('model')}" + (f" (engine {info['engine']})" if info.get("engine") else ""))
        second = info.get("second")
        if isinstance(second, dict):
            out(f"second model: {second.get('model')} (asked below confidence {second.get('below')})")
        out(f"uptime: {float(info.get('uptime_s', 0)):.1f} s, requests: {info.get('requests')}, "
            f"idle timeout: {info.get('idle_timeout')} s")
        out(f"socket: {paths.socket}")
        out(f"log: {paths.log}")
    ctx.exit(0 if info is not None else 1)


@daemon_group.command("run")
@_SERVE_MODEL_OPTION
@_IDLE_OPTION
def daemon_run(model: str | None, idle_timeout: float | None) -> None:
    """Run the daemon in the foreground (logs to stderr; Ctrl-C stops it)."""
    import logging

    from tinyllm.serve.daemon import AlreadyRunning, Daemon, ModelLoadError

    s = load_settings(model=model, idle_timeout=idle_timeout)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s nl2cmd-daemon[%(process)d] %(levelname)s %(message)s")
    try:
        Daemon(state_paths(), model_path=s.model, idle_timeout=s.idle_timeout).run(take_lock=True)
    except ModelLoadError as exc:
        raise CliError(f"cannot load the model: {exc}") from None
    except (AlreadyRunning, StateDirError, OSError) as exc:
        raise CliError(safe_line(str(exc))) from None


# --------------------------------------------------------------------------------------------- shell init


@cli.command("init")
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
@click.option("--key", default=None, help="Key binding for the widget (shell syntax, e.g. '\\C-g').")
@click.option("--explain-key", default=None,
              help="Key that explains the command line below the prompt (default alt-e; 'none' binds no key).")
@click.option("--no-bind", is_flag=True, help="Define the widgets but bind no key.")
def init_cmd(shell: str, key: str | None, explain_key: str | None, no_bind: bool) -> None:
    """Print the shell integration: eval "$(nl2cmd init bash)"."""
    try:
        from .shell_init import render
    except ImportError:
        raise CliError("shell integration is not available in this installation (tinyllm.cli.shell_init)") from None
    kwargs: dict[str, Any] = {"bind": not no_bind}
    if key is not None:
        kwargs["key"] = key
    if explain_key is not None:
        kwargs["explain_key"] = explain_key
    try:
        script = render(shell, **kwargs)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    print_line(strip_control(script).rstrip("\n"))


# --------------------------------------------------------------------------------------------- user pairs


def _danger(command: str) -> list[str]:
    """Safety warnings for a command the user teaches us (tinyllm.knowledge.safety, when installed)."""
    try:
        from tinyllm.knowledge.safety import classify
    except ImportError:
        return []
    try:
        return [str(getattr(w, "message", w)) for w in classify(command)]
    except Exception:
        return []


@cli.command("learn")
@click.argument("instruction", required=False)
@click.argument("command", required=False)
@click.option("--list", "list_", is_flag=True, help="List the learnt pairs, numbered.")
@click.option("--import", "import_path", type=click.Path(dir_okay=False), default=None,
              help="Add the pairs of a JSONL file ({\"instruction\": ..., \"command\": ...} per line).")
@click.option("--platform", "pair_platform", type=click.Choice(USER_PLATFORMS), default=None,
              help="Use the pair only on this platform.")
def learn_cmd(instruction: str | None, command: str | None, list_: bool, import_path: str | None,
              pair_platform: str | None) -> None:
    """Teach nl2cmd your own INSTRUCTION -> COMMAND pair (used before the model)."""
    from tinyllm.knowledge import userpairs

    path = state_paths().user_pairs
    modes = sum([list_, import_path is not None, instruction is not None])
    if modes != 1:
        raise click.UsageError("give INSTRUCTION COMMAND, or --list, or --import FILE")
    try:
        if list_:
            pairs, problems = userpairs.load(path)
            for problem in problems:
                warn(problem)
            for i, pair in enumerate(pairs, 1):
                tag = f" [{pair.platform}]" if pair.platform else ""
                print_line(f"{i:>3}  {safe_line(pair.instruction)}  =>  {one_line(pair.command)}{tag}")
            if not pairs:
                err("no learnt pairs (teach one with: nl2cmd learn \"INSTRUCTION\" \"COMMAND\")")
            return
        if import_path is not None:
            result = userpairs.import_file(Path(import_path), path)
            for problem in result.problems or []:
                warn(f"skipped {problem}")
            out(f"imported {result.added} new, {result.updated} updated, {len(result.problems or [])} skipped")
            return
        if command is None:
            raise click.UsageError("missing COMMAND (nl2cmd learn \"INSTRUCTION\" \"COMMAND\")")
        number, pair = userpairs.add(clean_arg(instruction or ""), clean_arg(command), pair_platform, path)
    except userpairs.UserPairsError as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:
        raise CliError(f"{exc.filename or path}: {exc.strerror or exc}") from None
    out(f"learnt {number}: {pair.instruction}  =>  {pair.command}")
    for w in _danger(pair.command):
        warn(w)


@cli.command("forget")
@click.argument("number", type=int)
def forget_cmd(number: int) -> None:
    """Forget learnt pair NUMBER (as numbered by `nl2cmd learn --list`)."""
    from tinyllm.knowledge import userpairs

    path = state_paths().user_pairs
    try:
        pair = userpairs.remove(number, path)
    except userpairs.UserPairsError as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:
        raise CliError(f"{exc.filename or path}: {exc.strerror or exc}") from None
    out(f"forgot {number}: {pair.instruction}  =>  {pair.command}")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point (``nl2cmd``); always exits via SystemExit."""
    cli.main(args=argv, prog_name=PROG)


if __name__ == "__main__":
    main()
