"""Warn about shell commands that destroy data or take the system down.

A heuristic classifier, not a sandbox: it reads the command with the project's shell lexer
(tinyllm.knowledge.shellparse.line_tokens, with a rough split for unbalanced quotes), looks at
every simple command in every ``&&``/``||``/``;``/``|`` chain after stripping wrappers such as
``sudo``, ``env VAR=x`` and ``nohup``, and recurses into ``sh -c '...'``, ``eval``, ``$(...)`` and backticks.

Policy decisions (so that everyday commands stay quiet):

* Deletions are flagged by *target*, not by utility: ``rm -rf build/`` is fine, ``rm -rf ~``,
  ``rm -rf /``, ``rm -rf *``, ``rm -rf ..`` and ``rm -rf /etc`` are not. Subpaths of system
  directories (``/var/lib/apt/lists/*``) are not flagged.
* ``find . -name '*.log' -delete`` is scoped to the working directory and is NOT flagged;
  ``find`` with ``-delete``/``-exec rm`` is flagged only when a starting point is ``/``, the
  home directory or a system directory.
* Redirection truncates its target, but the classifier cannot know whether the file exists,
  so ``cmd > out.txt`` is NOT flagged. Only bare truncations with no producer are flagged:
  ``> file``, ``: > file``, ``true > file``, ``cat /dev/null > file``, ``cp /dev/null file``,
  ``truncate -s 0 file``.
* Writing to a block device (``dd of=/dev/sda``, ``> /dev/nvme0n1``, ``cp x /dev/sdb``) is
  always flagged, even when it is the intent (flashing a USB stick): the warning is the point.

Pure standard library, regexes compiled once at import: the daemon imports this.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .shellparse import (
    line_tokens,
    pipelines,
    program_name,
    shell_words,
    simple_commands,
    strip_wrappers,
    substitutions,
)
from .text import safe_line

__all__ = ["DangerWarning", "classify", "is_dangerous", "shell_words", "simple_commands", "strip_wrappers"]


@dataclass(frozen=True)
class DangerWarning:
    """One reason a command is dangerous: a stable machine-readable `code` and a short human `message`."""

    code: str
    message: str


# ---------------------------------------------------------------------------------------------
# Targets
# ---------------------------------------------------------------------------------------------

_SYSTEM_DIRS = frozenset({
    "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/proc", "/root", "/sbin", "/srv", "/sys",
    "/usr", "/usr/bin", "/usr/sbin", "/usr/lib", "/usr/share", "/usr/include", "/var", "/var/lib",
    "/System", "/Library", "/Applications", "/Users", "/private", "/private/etc", "/private/var",
})
_HOME_WORDS = frozenset({"~", "$HOME", "${HOME}"})
_CRITICAL_FILES = frozenset({
    "/etc/passwd", "/etc/shadow", "/etc/group", "/etc/gshadow", "/etc/sudoers", "/etc/fstab",
    "/etc/master.passwd", "/private/etc/passwd", "/private/etc/sudoers", "/boot/grub/grub.cfg",
})
_BLOCK_DEVICE_RE = re.compile(
    r"^/dev/(?:[shv]d[a-z]+\d*|xvd[a-z]+\d*|nvme\d+n\d+(?:p\d+)?|mmcblk\d+(?:p\d+)?|r?disk\d+(?:s\d+)?"
    r"|md\d+|dm-\d+|mapper/\S+|sr\d+|mem|kmem|port)$"
)
_UNSET_VAR_RE = re.compile(r"^\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))(/\*?|/\.)$")
_CWD_GLOB_RE = re.compile(r"^(?:\./)?[*?./]*\*[*?./]*$")
_SYSTEM_PROC = frozenset({"/proc/sysrq-trigger"})


def _norm_path(word: str) -> str:
    """Collapse `//`, drop a trailing `/` or `/.` (keeps `/` itself)."""
    word = re.sub(r"/{2,}", "/", word)
    while len(word) > 1 and (word.endswith("/") or word.endswith("/.")):
        word = word[:-1] if word.endswith("/") else word[:-2]
    return word or "/"


def _describe_broad(target: str) -> str | None:
    """If deleting `target` recursively would be catastrophic, a short description of what goes."""
    t = _norm_path(target)
    if t == "/":
        return "the entire filesystem (/)"
    if re.fullmatch(r"/[*?./]*", t) and "*" in t:
        return "everything under /"
    for home in _HOME_WORDS:
        if t == home or t in (home + "/*", home + "/.*", home + "/.[!.]*"):
            return "your home directory"
    if t in ("..", "../*", "../.*") or re.fullmatch(r"(?:\.\./)+\.\.(?:/\*)?", t):
        return "the parent directory"
    if t in (".", "./*") or _CWD_GLOB_RE.match(t):
        return "everything in the current directory"
    base = t[:-2] if t.endswith("/*") else t
    if base in _SYSTEM_DIRS:
        return f"the system directory {base}"
    m = _UNSET_VAR_RE.match(target)
    if m and (m.group(1) or m.group(2)) != "HOME":
        var = m.group(1) or m.group(2)
        return f"/ if ${var} is empty or unset"
    return None


def _is_device(word: str) -> bool:
    return bool(_BLOCK_DEVICE_RE.match(word))


def _is_home_or_root(word: str) -> bool:
    t = _norm_path(word)
    return t == "/" or t in _HOME_WORDS or t in _SYSTEM_DIRS


def _split_options(args: list[str]) -> tuple[set[str], list[str]]:
    """(`short option letters` | `long options`, operands); everything after ``--`` is an operand."""
    opts: set[str] = set()
    operands: list[str] = []
    for i, arg in enumerate(args):
        if arg == "--":
            operands.extend(args[i + 1:])
            break
        if arg.startswith("--"):
            opts.add(arg.split("=", 1)[0])
        elif arg.startswith("-") and len(arg) > 1:
            opts.update(arg[1:])
        else:
            operands.append(arg)
    return opts, operands


# ---------------------------------------------------------------------------------------------
# Rules, one per utility
# ---------------------------------------------------------------------------------------------

_W = DangerWarning


def _rule_rm(args: list[str]) -> list[DangerWarning]:
    opts, operands = _split_options(args)
    out: list[DangerWarning] = []
    if "--no-preserve-root" in opts:
        out.append(_W("no-preserve-root", "disables rm's protection against deleting /"))
    interactive = bool(opts & {"i", "--interactive"}) and "f" not in opts and "--force" not in opts
    if ("r" in opts or "R" in opts or "--recursive" in opts) and not interactive:
        for target in operands:
            what = _describe_broad(target)
            if what:
                out.append(_W("recursive-delete", f"recursively deletes {what}"))
    for target in operands:
        if _norm_path(target) in _CRITICAL_FILES:
            out.append(_W("system-file", f"deletes the system file {_norm_path(target)}"))
    return out


def _rule_find(args: list[str]) -> list[DangerWarning]:
    starts: list[str] = []
    for arg in args:
        if arg.startswith("-") or arg in ("(", "!", "\\("):
            break
        starts.append(arg)
    deletes = "-delete" in args
    for i, arg in enumerate(args[:-1]):
        if arg in ("-exec", "-execdir", "-ok", "-okdir") and program_name(args[i + 1]) in ("rm", "shred", "unlink"):
            deletes = True
    if not deletes:
        return []
    return [_W("find-delete", f"deletes files found under {t}") for t in starts if _is_home_or_root(t)]


def _rule_dd(args: list[str]) -> list[DangerWarning]:
    out = []
    for arg in args:
        if arg.startswith("of="):
            target = arg[3:]
            if _is_device(target):
                out.append(_W("disk-write", f"overwrites the disk {target}, destroying its data"))
            elif _norm_path(target) in _CRITICAL_FILES:
                out.append(_W("system-file", f"overwrites the system file {_norm_path(target)}"))
    return out


def _rule_mkfs(name: str, args: list[str]) -> list[DangerWarning]:
    if not args or set(args) <= {"-V", "--version", "-h", "--help"}:
        return []
    devices = [a for a in args if a.startswith("/dev/")]
    where = devices[-1] if devices else "the target device"
    return [_W("mkfs", f"formats {where}, erasing everything on it")]


def _rule_wipefs(args: list[str]) -> list[DangerWarning]:
    opts, operands = _split_options(args)
    if opts & {"a", "o", "--all", "--offset"} and not opts & {"n", "--no-act"}:
        return [_W("wipe", f"erases filesystem signatures on {operands[-1] if operands else 'a device'}")]
    return []


def _rule_shred(args: list[str]) -> list[DangerWarning]:
    return [_W("wipe", f"irrecoverably overwrites the disk {a}") for a in args if _is_device(a)]


def _rule_chmod(name: str, args: list[str]) -> list[DangerWarning]:
    opts, operands = _split_options(args)
    if not ("R" in opts or "--recursive" in opts):
        return []
    out = []
    for target in operands[1:]:  # the first operand is the mode / owner / group
        t = _norm_path(target)
        base = t[:-2] if t.endswith("/*") else t
        if base == "/" or base in _SYSTEM_DIRS or t == "/*":
            out.append(_W("recursive-chmod", f"recursively changes ownership/permissions of {base}, which can break the system"))
    return out


def _rule_git(args: list[str]) -> list[DangerWarning]:
    i = 0
    while i < len(args) and args[i].startswith("-"):  # git -C dir -c k=v --no-pager ...
        i += 2 if args[i] in ("-C", "-c") else 1
    if i >= len(args):
        return []
    sub, rest = args[i], args[i + 1:]
    opts, operands = _split_options(rest)
    if sub == "reset" and "--hard" in rest:
        return [_W("git-reset-hard", "discards all uncommitted changes (git reset --hard)")]
    if sub == "push":
        if opts & {"f", "--force", "--force-with-lease", "--force-if-includes"} or any(o.startswith("+") for o in operands):
            return [_W("git-force-push", "force-pushes, which can overwrite commits on the remote")]
    if sub == "clean" and opts & {"f", "--force"} and not opts & {"n", "--dry-run"}:
        what = "untracked and ignored files" if "x" in opts or "X" in opts else "untracked files"
        return [_W("git-clean", f"permanently deletes {what} (git clean)")]
    if sub in ("checkout", "restore") and any(o in (".", "*", ":/", "./") for o in operands):
        if sub == "restore" and opts & {"S", "--staged"} and not opts & {"W", "--worktree"}:
            return []
        return [_W("git-discard", f"discards all uncommitted changes in the working tree (git {sub})")]
    if sub == "stash" and operands[:1] == ["clear"]:
        return [_W("git-stash-clear", "deletes all stashed changes (git stash clear)")]
    return []


def _rule_power(name: str, args: list[str]) -> list[DangerWarning]:
    if name == "shutdown" and ("-c" in args or "--help" in args):
        return []
    if name in ("init", "telinit") and args[:1] not in (["0"], ["6"]):
        return []
    if name == "systemctl":
        verbs = [a for a in args if not a.startswith("-")]
        if not verbs or verbs[0] not in ("poweroff", "reboot", "halt", "kexec", "rescue", "emergency"):
            return []
        name = verbs[0]
    if any(a in ("--help", "-h") for a in args) and name != "shutdown":
        return []
    return [_W("shutdown", f"shuts down or restarts the machine ({name})")]


def _rule_kill(name: str, args: list[str]) -> list[DangerWarning]:
    if name == "killall5":
        return [_W("kill-all", "kills every process on the system (killall5)")]
    rest = list(args)
    if rest and rest[0] in ("-l", "-L", "--list", "--table"):
        return []
    if rest and rest[0] in ("-s", "-n", "--signal"):
        rest = rest[2:]
    elif rest and rest[0].startswith("-") and rest[0] != "--":
        rest = rest[1:]  # the signal, e.g. -9 or -KILL
    if args[:1] in (["-0"], ["-s", "0"], ["-n", "0"]):  # signal 0 only checks that the process exists
        return []
    pids = [a for a in rest if a != "--"]
    out = []
    if "-1" in pids:
        out.append(_W("kill-all", "kills every process you are allowed to signal"))
    if name == "kill" and "1" in pids:
        out.append(_W("kill-init", "kills PID 1 (init), which crashes the system"))
    return out


def _rule_mv(args: list[str]) -> list[DangerWarning]:
    _, operands = _split_options(args)
    if len(operands) >= 2 and operands[-1] == "/dev/null":
        return [_W("mv-dev-null", "moves files onto /dev/null: they are lost (and /dev/null is replaced as root)")]
    return _rule_copy("mv", args)


def _rule_copy(name: str, args: list[str]) -> list[DangerWarning]:
    _, operands = _split_options(args)
    if len(operands) < 2:
        return []
    dest = operands[-1]
    if _is_device(dest):
        return [_W("disk-write", f"overwrites the disk {dest}, destroying its data")]
    if _norm_path(dest) in _CRITICAL_FILES:
        return [_W("system-file", f"overwrites the system file {_norm_path(dest)}")]
    if name == "cp" and operands[0] == "/dev/null":
        return [_W("truncate", f"empties {dest}")]
    return []


def _rule_tee(args: list[str]) -> list[DangerWarning]:
    opts, operands = _split_options(args)
    out = [_W("disk-write", f"overwrites the disk {t}, destroying its data") for t in operands if _is_device(t)]
    if not opts & {"a", "--append"}:
        out += [_W("system-file", f"overwrites the system file {_norm_path(t)}") for t in operands
                if _norm_path(t) in _CRITICAL_FILES]
    return out


def _rule_truncate(args: list[str]) -> list[DangerWarning]:
    sizes = []
    for i, arg in enumerate(args):
        if arg in ("-s", "--size") and i + 1 < len(args):
            sizes.append(args[i + 1])
        elif arg.startswith("--size="):
            sizes.append(arg[7:])
        elif arg.startswith("-s") and len(arg) > 2:
            sizes.append(arg[2:])
    if "0" in sizes:
        files = [a for a in args if not a.startswith("-") and a not in sizes]
        return [_W("truncate", f"empties {' '.join(files) or 'the file'}")]
    return []


def _rule_misc(name: str, args: list[str]) -> list[DangerWarning]:
    opts, operands = _split_options(args)
    if name == "crontab" and "r" in opts and "i" not in opts:
        return [_W("crontab-remove", "deletes all your cron jobs without asking (crontab -r)")]
    if name in ("iptables", "ip6tables", "iptables-legacy", "iptables-nft", "ip6tables-legacy") and \
            opts & {"F", "--flush"}:
        return [_W("firewall-flush", "removes all firewall rules")]
    if name == "nft" and operands[:2] == ["flush", "ruleset"]:
        return [_W("firewall-flush", "removes all firewall rules")]
    if name == "pfctl" and "F" in opts:
        return [_W("firewall-flush", "flushes the packet-filter rules")]
    if name == "ufw" and operands[:1] == ["reset"]:
        return [_W("firewall-flush", "resets all firewall rules")]
    if name == "history" and "c" in opts:
        return [_W("history-clear", "clears your shell history")]
    if name in ("docker", "podman"):
        verbs = [a for a in args if not a.startswith("-")]
        if verbs[:2] == ["system", "prune"] and opts & {"a", "--all", "--volumes"}:
            return [_W("docker-prune", "deletes all unused containers, images, networks (and volumes)")]
        if verbs[:2] == ["volume", "prune"]:
            return [_W("docker-prune", "deletes all unused volumes and the data in them")]
    if name == "dropdb":
        return [_W("drop-database", "drops a database")]
    if name == "mysqladmin" and "drop" in operands:
        return [_W("drop-database", "drops a database")]
    if name == "redis-cli" and any(o.lower() in ("flushall", "flushdb") for o in operands):
        return [_W("drop-database", "deletes every key in Redis")]
    if name == "diskutil" and operands[:1] and operands[0].lower() in (
            "erasedisk", "erasevolume", "zerodisk", "randomdisk", "secureerase", "partitiondisk", "reformat"):
        return [_W("wipe", f"erases a disk (diskutil {operands[0]})")]
    if name == "blkdiscard":
        return [_W("wipe", f"discards every block on {operands[-1] if operands else 'a device'}, erasing it")]
    if name in ("sgdisk", "gdisk") and opts & {"Z", "o", "--zap-all", "--clear"}:
        return [_W("wipe", "destroys the partition table")]
    if name == "parted" and "mklabel" in operands:
        return [_W("wipe", "writes a new, empty partition table")]
    if name in ("mkswap",) and any(_is_device(o) for o in operands):
        return [_W("mkfs", "formats a device as swap, erasing it")]
    return []


_POWER = frozenset({"shutdown", "reboot", "halt", "poweroff", "init", "telinit", "systemctl"})
_KILL = frozenset({"kill", "pkill", "killall5"})
_SHELLS = frozenset({"sh", "bash", "zsh", "dash", "ksh", "fish", "csh", "tcsh", "ash", "mksh"})
_INTERPRETERS = _SHELLS | frozenset({"python", "python2", "python3", "perl", "ruby", "node", "php"})
_DOWNLOADERS = frozenset({"curl", "wget", "fetch", "http", "https", "aria2c"})
_DB_CLIENTS = frozenset({"psql", "mysql", "mariadb", "sqlite3", "sqlcmd", "clickhouse-client", "cockroach", "mongo",
                         "mongosh"})
_NULL_PRODUCERS = frozenset({":", "true", "false"})


def _reads_script_from_stdin(words: list[str]) -> bool:
    """`bash`, `sh -s -- x`, `python3 -`: yes; `python -m json.tool`, `bash script.sh`, `perl -ne ...`: no."""
    for arg in words[1:]:
        if arg in ("-", "--"):
            return True
        if arg.startswith("--"):
            continue
        if arg.startswith("-"):
            letters = arg[1:]
            if words[0] in _SHELLS and "c" in letters:
                return False
            if words[0] not in _SHELLS and letters[:1] in ("c", "m", "e", "E", "r"):
                return False
            continue
        return False  # a script file
    return True


def _rules_for(words: list[str], redirects: list[tuple[str, str]], depth: int) -> list[DangerWarning]:
    """All warnings for one simple command (wrappers already stripped)."""
    out: list[DangerWarning] = []
    # Redirections that write to a path ("2>&1"-style fd duplication excluded).
    writes = [(op, t) for op, t in redirects
              if ">" in op and "<" not in op and t and not (op.endswith("&") and (t.isdigit() or t == "-"))]
    for op, target in writes:
        if _is_device(target):
            out.append(_W("disk-write", f"writes directly to the disk {target}, destroying its data"))
        elif _norm_path(target) in _CRITICAL_FILES and ">>" not in op:
            out.append(_W("system-file", f"overwrites the system file {_norm_path(target)}"))
        elif target in _SYSTEM_PROC:
            out.append(_W("sysrq", "triggers a kernel SysRq action (can crash or reboot the machine)"))
    if not words:
        return out
    name, args = words[0], words[1:]
    if name == "rm":
        out += _rule_rm(args)
    elif name == "find":
        out += _rule_find(args)
    elif name == "dd":
        out += _rule_dd(args)
    elif name.startswith("mkfs") or name in ("mke2fs", "mkdosfs", "mkntfs") or name.startswith("newfs"):
        out += _rule_mkfs(name, args)
    elif name == "wipefs":
        out += _rule_wipefs(args)
    elif name == "shred":
        out += _rule_shred(args)
    elif name in ("chmod", "chown", "chgrp"):
        out += _rule_chmod(name, args)
    elif name == "git":
        out += _rule_git(args)
    elif name in _POWER:
        out += _rule_power(name, args)
    elif name in _KILL:
        out += _rule_kill(name, args)
    elif name == "mv":
        out += _rule_mv(args)
    elif name == "cp":
        out += _rule_copy(name, args)
    elif name == "tee":
        out += _rule_tee(args)
    elif name == "truncate":
        out += _rule_truncate(args)
    elif name in _SHELLS or name == "su":
        # sh -c 'rm -rf ~' / su -c '...': classify the script text too.
        for i, arg in enumerate(args[:-1]):
            if arg == "-c" or (arg.startswith("-") and not arg.startswith("--") and arg.endswith("c")):
                out += _classify(args[i + 1], depth + 1)
                break
    elif name == "eval":
        out += _classify(" ".join(args), depth + 1)
    else:
        out += _rule_misc(name, args)
    return out


# ---------------------------------------------------------------------------------------------
# Whole-command checks
# ---------------------------------------------------------------------------------------------

_FORK_BOMB_RE = re.compile(
    r"(?<![\w:.])(?P<f>[A-Za-z_:.][\w:.]*)\s*\(\s*\)\s*\{\s*(?P=f)\s*\|\s*(?P=f)\s*&?\s*;?\s*\}"
    r"|\bfork\s+while\s+fork\b|\bwhile\s*\(\s*1\s*\)\s*\{?\s*fork\b|os\.fork\(\).*while\s+True|while\s+True.*os\.fork\(\)"
)
_FUNCTION_BOMB_RE = re.compile(r"\bfunction\s+(?P<f>[\w:.]+)\s*(?:\(\s*\))?\s*\{\s*(?P=f)\s*\|\s*(?P=f)\s*&")
_PROC_SUBST_DOWNLOAD_RE = re.compile(
    r"\b(?:ba|z|da|k)?sh\s+(?:-\w+\s+)*<\(\s*(?:curl|wget)\b"
    r"|\b(?:ba|z|da|k)?sh\s+-c\s+[\"']?\$\(\s*(?:curl|wget)\b"
    r"|\b(?:source|\.)\s+<\(\s*(?:curl|wget)\b",
)
_DROP_RE = re.compile(r"\b(?:drop\s+(?:database|schema|table)|truncate\s+table)\b|\.dropDatabase\(", re.IGNORECASE)
# A bare truncation: a redirection with no producer (or one that writes nothing) as a whole command.
# Matched on the raw text so that "cmd \; > out", "(a; b) > out" and "done > out" do not count.
_BARE_TRUNCATE_RE = re.compile(
    r"(?:^|&&|\|\||(?<!\\);)\s*(?::|true|false|cat\s+/dev/null|echo(?:\s+-n)?(?:\s+(?:''|\"\"))?|printf\s+(?:''|\"\"))?"
    r"\s*\d?>\|?\s*(?P<target>\"[^\"]*\"|'[^']*'|[^\s;&|<>'\"()]+)\s*(?=$|&&|\|\||;|&\s*$)"
)
_MAX_DEPTH = 3


def _classify(command: str, depth: int) -> list[DangerWarning]:
    if depth > _MAX_DEPTH or not command.strip():
        return []
    out: list[DangerWarning] = []
    if _FORK_BOMB_RE.search(command) or _FUNCTION_BOMB_RE.search(command):
        out.append(_W("fork-bomb", "fork bomb: spawns processes until the system freezes"))
    if _PROC_SUBST_DOWNLOAD_RE.search(command):
        out.append(_W("pipe-to-shell", "runs a script downloaded from the internet without reviewing it"))
    spans = substitutions(command)
    for start, end in spans:
        out += _classify(command[start + (2 if command[start] == "$" else 1):end - 1], depth + 1)
    for line in command.splitlines():
        for m in _BARE_TRUNCATE_RE.finditer(line):
            target = m.group("target").strip("'\"")
            if target and target != "/dev/null" and not _is_device(target) and _norm_path(target) not in _CRITICAL_FILES:
                out.append(_W("truncate", f"empties {target}"))
    # Substitutions were classified on their own: parse the rest with each one as a single word.
    for start, end in reversed(spans):
        command = command[:start] + "SUBST" + command[end:]
    utilities: set[str] = set()
    for line in command.splitlines():
        for pipeline in pipelines(line_tokens(line)):
            downloaded = False
            for simple in pipeline:
                words = strip_wrappers(simple.words)
                if words:
                    utilities.add(words[0])
                    if downloaded and words[0] in _INTERPRETERS and _reads_script_from_stdin(words):
                        out.append(_W("pipe-to-shell", "pipes a download straight into an interpreter "
                                                       "(runs unreviewed code from the internet)"))
                        downloaded = False
                    if words[0] in _DOWNLOADERS:
                        downloaded = True
                out += _rules_for(words, simple.redirects, depth)
    if _DROP_RE.search(command) and utilities & _DB_CLIENTS:
        out.append(_W("drop-database", "drops a database or table"))
    return out


def classify(command: str) -> list[DangerWarning]:
    """Every reason `command` is dangerous (empty list: nothing recognised), without duplicates, in order found."""
    seen: set[DangerWarning] = set()
    result = []
    for warning in _classify(command, 0):
        # Messages quote parts of the command: make them one terminal-safe, bounded line.
        message = safe_line(warning.message)
        warning = DangerWarning(warning.code, message if len(message) <= 120 else message[:117] + "...")
        if warning not in seen:
            seen.add(warning)
            result.append(warning)
    return result


def is_dangerous(command: str) -> bool:
    """True if `classify` finds at least one reason to warn about `command`."""
    return bool(_classify(command, 0))
