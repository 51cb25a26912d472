"""Where nl2cmd keeps its state: config, user data, logs, history, cache and the daemon's socket.

`NL2CMD_HOME` moves everything under one directory (tests and portable installs use it)::

    $NL2CMD_HOME/config/config.toml      settings
    $NL2CMD_HOME/data/user_pairs.jsonl   pairs taught with `nl2cmd learn`
    $NL2CMD_HOME/state/daemon.log        daemon log, REPL history
    $NL2CMD_HOME/cache/
    $NL2CMD_HOME/run/                    nl2cmd.sock, nl2cmd.pid, nl2cmd.lock (0700)

Otherwise the platformdirs locations are used; the socket directory is $XDG_RUNTIME_DIR/nl2cmd,
/run/user/UID/nl2cmd, or $TMPDIR/nl2cmd-UID unless someone else holds that name, in which case it
is <cache dir>/run. Standard library + platformdirs only (thin client path).
"""

from __future__ import annotations

import os
import stat
import sys
from collections import namedtuple

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

APP = "nl2cmd"
HOME_ENV = "NL2CMD_HOME"

# sockaddr_un.sun_path is 108 bytes on Linux, 104 on macOS (including the NUL).
MAX_SOCKET_PATH = 100


class StateDirError(Exception):
    """A state directory is unusable (owned by someone else, not a directory, ...)."""


def _file(directory: str, name: str, doc: str) -> property:
    """A read-only attribute: the file `name` in the directory field `directory` (str or Path, as the
    class joins them)."""

    def get(self: _Files) -> str | Path:
        return self._join(getattr(self, directory), name)

    return property(get, doc=doc)


class _Files:
    """The files inside the five directories (shared by Locations and StatePaths)."""

    __slots__ = ()

    config_file = _file("config_dir", "config.toml", "The settings file (tiny TOML subset, see tinyllm.formats.settings).")
    user_pairs = _file("data_dir", "user_pairs.jsonl", "The user's own instruction/command pairs (JSONL).")
    history = _file("state_dir", "repl_history", "REPL history.")
    log = _file("state_dir", "daemon.log", "Daemon log (its stdout and stderr).")
    socket = _file("runtime_dir", f"{APP}.sock", "The daemon's Unix domain socket.")
    pid = _file("runtime_dir", f"{APP}.pid", "The running daemon's pid (the authority on which daemon owns the socket).")
    lock = _file("runtime_dir", f"{APP}.lock",
                 "flock()ed while a daemon is being started, so racing clients start exactly one.")


_DIRS = "config_dir data_dir state_dir cache_dir runtime_dir"


class Locations(_Files, namedtuple("Locations", _DIRS)):
    """Every location as a plain string: what a plain request needs, without importing pathlib
    (~4 ms of every `nl2cmd` call). `paths()` gives the same locations as a StatePaths.

    Named tuples rather than dataclasses: `dataclasses` (with `inspect`) would add ~7 ms too.
    """

    __slots__ = ()

    @staticmethod
    def _join(directory: str, name: str) -> str:
        return os.path.join(directory, name)

    def paths(self) -> StatePaths:
        """The same locations as Path objects."""
        from pathlib import Path

        return StatePaths(*(Path(d) for d in self))


class StatePaths(_Files, namedtuple("StatePaths", _DIRS)):
    """Every file location nl2cmd uses, resolved once: five directory Paths and the files in them."""

    __slots__ = ()

    @staticmethod
    def _join(directory: Path, name: str) -> Path:
        return directory / name

    def paths(self) -> StatePaths:
        """Itself (see Locations.paths)."""
        return self


def _xdg(var: str, fallback: str) -> str:
    """An XDG base directory: the variable if it holds an absolute path, else ~/fallback (the XDG
    spec, as platformdirs reads it on Linux)."""
    value = os.environ.get(var, "").strip()
    return value if os.path.isabs(value) else os.path.join(os.path.expanduser("~"), fallback)


RUN_USER_DIR = "/run/user/{uid}"
"""The per-user runtime directory systemd-logind creates (used when XDG_RUNTIME_DIR is unset)."""


def _claimable(path: str) -> bool:
    """True if `path` is missing (we may create it) or is a real directory of ours that nobody else
    can write to (ensure_dir may then make it 0700). A squatter's directory, a symlink or a
    group/world-writable directory is not: someone else may own or have planted what is inside."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & 0o022


def _default_runtime_dir(cache_dir: str) -> str:
    """A per-user runtime directory short enough for an AF_UNIX socket path.

    The shared temporary directory is the last resort (no XDG_RUNTIME_DIR, no /run/user/UID:
    containers, ssh sessions without logind, CI). Anyone can create ``$TMPDIR/nl2cmd-UID`` first,
    so when that name is taken by someone else (or is a symlink, or writable by others) the
    socket goes under the user's own cache directory instead: a squatter cannot block the daemon.
    """
    uid = os.getuid()
    if sys.platform == "darwin":
        import platformdirs

        candidate = platformdirs.user_runtime_dir(APP)
    else:
        # Not platformdirs here: it warns on stderr when XDG_RUNTIME_DIR is unset.
        xdg = os.environ.get("XDG_RUNTIME_DIR", "")
        run_user = RUN_USER_DIR.format(uid=uid)
        if xdg and os.path.isabs(xdg) and os.path.isdir(xdg):
            candidate = os.path.join(xdg, APP)
        elif os.path.isdir(run_user) and os.access(run_user, os.W_OK):
            candidate = os.path.join(run_user, APP)
        else:
            import tempfile  # only here: it costs ~4 ms of the thin client's start-up

            candidate = os.path.join(tempfile.gettempdir(), f"{APP}-{uid}")
    if len(os.path.join(candidate, f"{APP}.sock")) > MAX_SOCKET_PATH:
        candidate = f"/tmp/{APP}-{uid}"
    if not _claimable(candidate):
        own = os.path.join(cache_dir, "run")
        if len(os.path.join(own, f"{APP}.sock")) <= MAX_SOCKET_PATH:
            candidate = own
    return candidate


def locate() -> Locations:
    """Compute all locations from `NL2CMD_HOME` or the platform defaults, as strings (creates nothing)."""
    home = os.environ.get(HOME_ENV, "").strip()
    if home:
        root = os.path.abspath(os.path.expanduser(home))
        return Locations(*(os.path.join(root, d) for d in ("config", "data", "state", "cache", "run")))
    if sys.platform.startswith("linux"):  # platformdirs' Linux rules are the XDG spec; skip its import
        dirs = (os.path.join(_xdg("XDG_CONFIG_HOME", ".config"), APP), os.path.join(_xdg("XDG_DATA_HOME", ".local/share"), APP),
                os.path.join(_xdg("XDG_STATE_HOME", ".local/state"), APP), os.path.join(_xdg("XDG_CACHE_HOME", ".cache"), APP))
    else:
        import platformdirs

        dirs = (platformdirs.user_config_dir(APP, appauthor=False), platformdirs.user_data_dir(APP, appauthor=False),
                platformdirs.user_state_dir(APP, appauthor=False), platformdirs.user_cache_dir(APP, appauthor=False))
    return Locations(*dirs, _default_runtime_dir(dirs[3]))


def resolve() -> StatePaths:
    """All locations as Path objects (creates nothing)."""
    return locate().paths()


def _own_directory(path: str | os.PathLike) -> int:
    """The mode bits of `path` if it is a real directory (not a symlink) owned by this user, else
    StateDirError; only lstat. FileNotFoundError if it is missing."""
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        raise StateDirError(f"{os.fspath(path)} is a symbolic link, not a private directory")
    if not stat.S_ISDIR(st.st_mode):
        raise StateDirError(f"{os.fspath(path)} is not a directory")
    if st.st_uid != os.getuid():
        raise StateDirError(f"{os.fspath(path)} is owned by uid {st.st_uid}, not by you (uid {os.getuid()})")
    return stat.S_IMODE(st.st_mode)


def check_private_dir(path: str | os.PathLike) -> None:
    """Raise StateDirError unless `path` is a real directory (not a symlink) owned by this user
    with mode 0700: the test the client makes before it connects to the socket inside (as
    ssh-agent and tmux do). Only lstat: it changes nothing. FileNotFoundError if it is missing."""
    mode = _own_directory(path)
    if mode != 0o700:
        raise StateDirError(f"{os.fspath(path)} has mode {mode:04o}, not 0700")


def ensure_dir(path: Path, private: bool = False) -> Path:
    """Create `path` (and parents) if needed; with `private`, insist on an owned 0700 directory.

    The runtime dir holds the socket, the pid file and the start-up lock: a directory owned by
    another user (e.g. a pre-created /tmp/nl2cmd-UID), a symlink there, or a directory others
    can write to (they may have planted a socket or a symlink in it) is refused, never chmod-ed.
    A directory of ours that others can only read is made 0700.
    """
    path.mkdir(mode=0o700 if private else 0o777, parents=True, exist_ok=True)
    if private:
        mode = _own_directory(path)
        if mode & 0o022:
            raise StateDirError(f"{path} has mode {mode:04o}: others can write to it (expected 0700)")
        if mode != 0o700:
            os.chmod(path, 0o700)
    return path
