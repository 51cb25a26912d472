"""Where nl2cmd keeps its state: config, user data, logs, history, cache and the daemon's socket.

`NL2CMD_HOME` moves everything under one directory (tests and portable installs use it)::

    $NL2CMD_HOME/config/config.toml      settings
    $NL2CMD_HOME/data/user_pairs.jsonl   pairs taught with `nl2cmd learn`
    $NL2CMD_HOME/state/daemon.log        daemon log, REPL history
    $NL2CMD_HOME/cache/
    $NL2CMD_HOME/run/                    nl2cmd.sock, nl2cmd.pid, nl2cmd.lock (0700)

Otherwise the platformdirs locations are used. Standard library + platformdirs only (thin client path).
"""

from __future__ import annotations

import os
import stat
import sys
from collections import namedtuple
from pathlib import Path

APP = "nl2cmd"
HOME_ENV = "NL2CMD_HOME"

# sockaddr_un.sun_path is 108 bytes on Linux, 104 on macOS (including the NUL).
MAX_SOCKET_PATH = 100


class StateDirError(Exception):
    """A state directory is unusable (owned by someone else, not a directory, ...)."""


class StatePaths(namedtuple("StatePaths", "config_dir data_dir state_dir cache_dir runtime_dir")):
    """Every file location nl2cmd uses, resolved once: five directory Paths and the files in them.

    A named tuple rather than a dataclass: `dataclasses` (with `inspect`) would add ~7 ms to the
    start-up of every `nl2cmd` call.
    """

    __slots__ = ()

    @property
    def config_file(self) -> Path:
        """The settings file (tiny TOML subset, see tinyllm.settings)."""
        return self.config_dir / "config.toml"

    @property
    def user_pairs(self) -> Path:
        """The user's own instruction/command pairs (JSONL)."""
        return self.data_dir / "user_pairs.jsonl"

    @property
    def history(self) -> Path:
        """REPL history."""
        return self.state_dir / "repl_history"

    @property
    def log(self) -> Path:
        """Daemon log (its stdout and stderr)."""
        return self.state_dir / "daemon.log"

    @property
    def socket(self) -> Path:
        """The daemon's Unix domain socket."""
        return self.runtime_dir / f"{APP}.sock"

    @property
    def pid(self) -> Path:
        """The running daemon's pid (the authority on which daemon owns the socket)."""
        return self.runtime_dir / f"{APP}.pid"

    @property
    def lock(self) -> Path:
        """flock()ed while a daemon is being started, so racing clients start exactly one."""
        return self.runtime_dir / f"{APP}.lock"


def _default_runtime_dir() -> Path:
    """A per-user runtime directory short enough for an AF_UNIX socket path."""
    uid = os.getuid()
    if sys.platform == "darwin":
        import platformdirs

        candidate = Path(platformdirs.user_runtime_dir(APP))
    else:
        # Not platformdirs here: it warns on stderr when XDG_RUNTIME_DIR is unset.
        xdg = os.environ.get("XDG_RUNTIME_DIR", "")
        run_user = Path(f"/run/user/{uid}")
        if xdg and os.path.isabs(xdg) and os.path.isdir(xdg):
            candidate = Path(xdg) / APP
        elif run_user.is_dir() and os.access(run_user, os.W_OK):
            candidate = run_user / APP
        else:
            import tempfile  # only here: it costs ~4 ms of the thin client's start-up

            candidate = Path(tempfile.gettempdir()) / f"{APP}-{uid}"
    if len(str(candidate / f"{APP}.sock")) > MAX_SOCKET_PATH:
        candidate = Path("/tmp") / f"{APP}-{uid}"
    return candidate


def resolve() -> StatePaths:
    """Compute all locations from `NL2CMD_HOME` or the platform defaults (creates nothing)."""
    home = os.environ.get(HOME_ENV, "").strip()
    if home:
        root = Path(home).expanduser().absolute()
        return StatePaths(
            config_dir=root / "config",
            data_dir=root / "data",
            state_dir=root / "state",
            cache_dir=root / "cache",
            runtime_dir=root / "run",
        )
    import platformdirs

    return StatePaths(
        config_dir=Path(platformdirs.user_config_dir(APP, appauthor=False)),
        data_dir=Path(platformdirs.user_data_dir(APP, appauthor=False)),
        state_dir=Path(platformdirs.user_state_dir(APP, appauthor=False)),
        cache_dir=Path(platformdirs.user_cache_dir(APP, appauthor=False)),
        runtime_dir=_default_runtime_dir(),
    )


def ensure_dir(path: Path, private: bool = False) -> Path:
    """Create `path` (and parents) if needed; with `private`, insist on an owned 0700 directory.

    The runtime dir holds the socket: a directory owned by another user (e.g. a pre-created
    /tmp/nl2cmd-UID) or a symlink there would let someone else intercept requests.
    """
    path.mkdir(mode=0o700 if private else 0o777, parents=True, exist_ok=True)
    if private:
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
            raise StateDirError(f"{path} is not a directory")
        if st.st_uid != os.getuid():
            raise StateDirError(f"{path} is owned by uid {st.st_uid}, not by you")
        if stat.S_IMODE(st.st_mode) != 0o700:
            os.chmod(path, 0o700)
    return path
