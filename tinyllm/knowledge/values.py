"""The concrete values a request names (file and folder names, numbers, ports, hosts, users, branches,
URLs, quoted strings) and whether a command keeps them or invents its own.

Standard library only: used when validating training pairs and when checking served candidates.
"""

from __future__ import annotations

import re
from itertools import islice

# Words with a dot that name a technology rather than a file the user has.
_TECH_WORDS = frozenset({
    "node.js", "next.js", "vue.js", "nuxt.js", "react.js", "express.js", "asp.net", "e.g", "i.e", "etc", "vs",
    "a.m", "p.m", "u.s", "mr", "dr",
})
_QUOTED_RE = re.compile(r"""(?:^|(?<=[\s(=]))(['"])(.+?)\1(?=$|[\s,.;:!?)])""")
_URL_RE = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s'\"<>]+", re.I)
_EMAIL_RE = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
_USER_HOST_RE = re.compile(r"\b[\w.-]+@[\w.-]+(?::[\w/~.-]*)?")
_IP_RE = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?:/\d{1,2})?(?::\d+)?\b")
_PATH_RE = re.compile(r"(?:^|(?<=[\s(\"'=]))(?:~|\.{1,2})?/[^\s'\",;:!?)]*|(?:^|(?<=[\s(\"'=]))~[\w.-]*(?:/[^\s'\",;:!?)]*)?")
_REL_PATH_RE = re.compile(r"\b[\w.-]+(?:/[\w.@-]+)+/?")
_FILE_RE = re.compile(r"(?<![\w/.-])[\w-]+(?:\.[\w-]+)*\.[A-Za-z][\w]{0,9}\b")
_NUMBER_RE = re.compile(r"(?<![\w.])\d+(?:\.\d+)?")
_MIXED_RE = re.compile(r"(?<![\w./@-])(?=[\w-]*[A-Za-z])(?=[\w-]*\d)[A-Za-z0-9][\w-]*[\w](?![\w@])")
_SNAKE_RE = re.compile(r"(?<![\w./@-])[a-z][a-z0-9]*(?:_[a-z0-9]+)+(?![\w@])")
# Letter-digit words that name a format, protocol, algorithm or signal rather than something the user has.
_TECH_RE = re.compile(r"(?:ipv[46]|sha\d+|md5|mp[34]|[hx]26[45]|utf-?8|base(?:32|64)|bzip2|ext[234]|iso\d+|\d+p|\d+k|"
                      r"sig[a-z]+\d*|http[23]|python[23]?(?:\.\d+)?|pip3|s3|ec2|k8s|i18n|l10n|x86_64|amd64|arm64|"
                      r"aarch64|win32|mp4a|aac|m4a|ogg|flac|h\.264|v\d|tls1(?:\.\d)?|ssl3|rot13|crc32|x11|[1-9]d|"
                      r"\d{1,2}(?::\d\d)?(?:am|pm))", re.I)  # a time of day becomes cron fields
_TIME_UNIT_RE = re.compile(r"\s*(?:seconds?|secs?|minutes?|mins?|hours?|hrs?)\b", re.I)
"""A number before one of these is not checked at all: a tool's default ("every 2 seconds" is `watch`'s) or
a symptom ("blocked for more than 120 seconds") as often as a value."""
# A number followed by another unit of time or size may reach the command in another unit ("2 weeks" ->
# `-mtime +14`, "1.5 GB" -> `+1536M`): `missing_values` accepts the conversions. Seconds per time unit and
# the power of the base per size unit (1000- and 1024-based sizes both count); "m" reads as minutes.
_TIME_UNITS = {"s": 1, "min": 60, "h": 3600, "d": 86400, "w": 604800}
_TIME_WORDS = (("s", r"seconds?|secs?|s"), ("min", r"minutes?|mins?|m"), ("h", r"hours?|hrs?|h"),
               ("d", r"days?|d"), ("w", r"weeks?|wks?|w"), ("month", r"months?"), ("year", r"years?|yrs?|y"))
_SIZE_WORDS = (("b", r"bytes?|b"), ("k", r"kilobytes?|ki?b?"), ("m", r"megabytes?|mi?b?|megs?"),
               ("g", r"gigabytes?|gi?b?|gigs?"), ("t", r"terabytes?|ti?b?"))
_SIZE_POWERS = {"b": 0, "k": 1, "m": 2, "g": 3, "t": 4}
_UNIT_RE = re.compile(r"\s*-?\s*(?:(?P<time>" + "|".join(f"(?P<{k}>{w})" for k, w in _TIME_WORDS) + ")|(?P<size>"
                      + "|".join(f"(?P<size_{k}>{w})" for k, w in _SIZE_WORDS) + r"))(?![\w])", re.I)


def _strip(value: str) -> str:
    return value.rstrip(".,;:!?)").strip()


def request_values(request: str) -> list[str]:
    """Values the request names, each as the user spelled it, longest first, no duplicates.

    Heuristic and conservative: a value is a quoted string, a URL, an e-mail or user@host, an IP address, a
    path, a file name with an extension, a word mixing letters and digits (db01, fix-123) or joined with
    `-`/`_` (feature-login, my_app), or a number. Plain English words are never values.
    """
    found: list[str] = []
    spans: list[tuple[int, int]] = []
    rx_name = ""

    def take(m: re.Match[str], group: int = 0) -> None:
        start, end = m.span(group)
        if any(s <= start < e or s < end <= e for s, e in spans):
            return
        v = _strip(m.group(group))
        if rx_name == "number" and _TIME_UNIT_RE.match(request, end):
            return  # "30 minutes" may become 1800 seconds, or stay the tool's default
        if v and v.lower() not in _TECH_WORDS and not _TECH_RE.fullmatch(v):
            found.append(v)
            spans.append((start, end))

    for m in _QUOTED_RE.finditer(request):
        take(m, 2)
    for rx in (_URL_RE, _EMAIL_RE, _USER_HOST_RE, _IP_RE, _PATH_RE, _REL_PATH_RE, _FILE_RE, _MIXED_RE, _SNAKE_RE,
               _NUMBER_RE):
        rx_name = "number" if rx is _NUMBER_RE else ""
        for m in rx.finditer(request):
            take(m)
    out: list[str] = []
    for v in sorted(found, key=len, reverse=True):
        if v not in out:
            out.append(v)
    return out


def _variants(value: str) -> tuple[str, ...]:
    """Spellings of a value that count as kept: as written, without a trailing slash, with ~ or ./ dropped."""
    v = value.rstrip("/") or value
    forms = {value, v}
    if v.startswith("./"):
        forms.add(v[2:])
    if v.startswith("~/"):
        forms.update({"$HOME" + v[1:], "${HOME}" + v[1:]})
    return tuple(f for f in forms if f)


_ORDINAL_RE = re.compile(r"\d+(?:st|nd|rd|th)", re.I)
_SIZE_RE = re.compile(r"(\d+(?:\.\d+)?)\s*(?:[kmgtp]i?b?|bytes?|[kmgt]|ms|s|sec|secs|seconds?|mins?|minutes?|h|hrs?|hours?|d|days?|w|weeks?|px|x)", re.I)


def _number_text(x: float) -> str | None:
    """`x` as a command would write it (an integer, or one decimal place), or None when it is neither."""
    if abs(x - round(x)) < 1e-9:
        return str(int(round(x)))
    if abs(x * 10 - round(x * 10)) < 1e-9:
        return f"{x:.1f}"
    return None


def unit_equivalents(number: str, unit_text: str) -> set[str]:
    """The same quantity in the other units a command may take: ("2", "weeks") -> {"14", "336", ...};
    ("1.5", "GB") -> {"1536", "1500", ...}; empty when `unit_text` is not a unit of time or size."""
    m = _UNIT_RE.fullmatch(unit_text.strip())
    if not m:
        return set()
    n = float(number)
    if m.group("time"):
        unit = next(k for k, _ in _TIME_WORDS if m.group(k))
        days = {"month": (30, 31), "year": (365, 366)}.get(unit)
        seconds = [n * d * 86400 for d in days] if days else [n * _TIME_UNITS[unit]]
        amounts = [n * 12] if unit == "year" else []  # months
        amounts += [total / per for total in seconds for per in _TIME_UNITS.values()]
    else:
        power = _SIZE_POWERS[next(k for k, _ in _SIZE_WORDS if m.group("size_" + k))]
        amounts = [n * base ** (power - p) for base in (1000, 1024) for p in _SIZE_POWERS.values()]
    return {t for t in map(_number_text, amounts) if t and t != "0"}


def _converted(value: str, request: str, command: str) -> bool:
    """Whether a number the request gives with a unit of time or size is in the command in another unit."""
    for m in re.finditer(rf"(?<![\w.]){re.escape(value)}(?!\.?\d)", request):
        unit = _UNIT_RE.match(request, m.end())
        if not unit:
            continue
        for other in unit_equivalents(value, unit.group(0)):
            if re.search(rf"(?<![\d.]){re.escape(other)}(?![\d])", command):
                return True
    return False


_BRACE_RE = re.compile(r"\{(-?\d+)\.\.(-?\d+)(?:\.\.(-?\d+))?\}|\{([A-Za-z])\.\.([A-Za-z])\}|\{([^{}\s]*,[^{}\s]*)\}")
MAX_BRACE_WORDS = 1000
"""Brace expansion stops at this many words (a value is looked for in them; more would cost without need)."""


def _range_words(m: re.Match[str]) -> list[str]:
    """The words one brace group expands to, as bash does: {01..31} (padded when an end has a leading zero),
    {1..10..2}, {a..e}, {src,tests,docs}."""
    if m.group(1) is not None:
        lo, hi = int(m.group(1)), int(m.group(2))
        step = abs(int(m.group(3) or 1)) or 1
        width = max(len(m.group(1)), len(m.group(2))) if re.match(r"-?0\d", m.group(1)) or re.match(r"-?0\d", m.group(2)) else 0
        nums = range(lo, hi + 1, step) if lo <= hi else range(lo, hi - 1, -step)
        return [str(n).zfill(width) for n in nums[:MAX_BRACE_WORDS]]
    if m.group(4) is not None:
        lo, hi = ord(m.group(4)), ord(m.group(5))
        return [chr(c) for c in (range(lo, hi + 1) if lo <= hi else range(lo, hi - 1, -1))]
    return m.group(6).split(",")


def brace_words(command: str) -> set[str]:
    """The words the unquoted brace expressions of `command` expand to (``day{01..03}.txt`` -> day01.txt,
    day02.txt, day03.txt); at most `MAX_BRACE_WORDS` per word of the command."""
    out: set[str] = set()
    for word in command.split():
        if "'" in word or '"' in word or not _BRACE_RE.search(word):
            continue  # quoted text is not expanded (and an awk program's braces are not a list)
        words = [word]
        while len(words) <= MAX_BRACE_WORDS:
            m = _BRACE_RE.search(words[0])
            if m is None:
                break
            words = list(islice((w[: m.start()] + part + w[m.end():] for w in words
                                 for m in [_BRACE_RE.search(w)] if m for part in _range_words(m)), MAX_BRACE_WORDS + 1))
        out.update(words[:MAX_BRACE_WORDS])
    return out


def missing_values(request: str, command: str) -> list[str]:
    """The request's values that the command does not contain (case-sensitive, as typed; a brace expression
    holds the words it expands to: "day01 to day31" is kept by ``mkdir day{01..31}``)."""
    lowered = command.lower()
    expanded: set[str] | None = None
    missing = []
    for v in request_values(request):
        if any(f in command for f in _variants(v)) or _ORDINAL_RE.fullmatch(v):
            continue
        if "{" in command:
            expanded = brace_words(command) if expanded is None else expanded
            if any(f in w for w in expanded for f in _variants(v)):
                continue
        if v.isdigit() and str(int(v) + 1) in command:
            continue  # top 5 -> head -n 6 (a header line)
        dims = re.fullmatch(r"(\d+)x(\d+)", v)
        if dims and dims.group(1) in command and dims.group(2) in command:
            continue  # 1280x720 -> scale=1280:720
        size = _SIZE_RE.fullmatch(v)
        if size and re.search(rf"(?<!\d){re.escape(size.group(1))}(?!\d)", command):
            continue  # 1GB -> 1G, 100MB -> count=100
        if size and _converted(size.group(1), request, command):
            continue  # 1.5GB -> +1536M
        if v.isdigit() or not any(c.isalpha() for c in v):
            if v not in command and not _converted(v, request, command):  # numbers as they are, or in another unit
                missing.append(v)
            continue
        if any(f.lower() in lowered for f in _variants(v)) and not re.search(r"[./]", v):
            continue  # a host or name in another case (DB01 / db01)
        missing.append(v)
    return missing


_CMD_FILE_RE = re.compile(r"(?<![\w/$.{%-])[A-Za-z][\w-]*(?:\.[\w-]+)*\.(?:txt|log|csv|json|ya?ml|xml|md|py|js|ts|sh|conf|"
                          r"cfg|ini|pdf|png|jpe?g|gif|mp[34]|mkv|mov|wav|zip|tar|gz|tgz|bz2|xz|zst|7z|iso|sql|html?|"
                          r"c|cpp|h|go|rs|java|rb|php|deb|rpm|img|bak|key|pem|crt)\b")  # not after "%": page-%d.pdf


_CONVENTIONAL = frozenset({"output", "out", "combined", "merged", "result", "archive", "backup"})


def invented_values(request: str, command: str) -> list[str]:
    """File names in the command whose stem the request never mentions (a value a placeholder should hold).

    `logs.tar.gz` for "compress the logs folder" is derived from the request (its stem is there); `notes.txt`
    for "show the first lines of a file" is invented.
    """
    lowered = request.lower()
    stems = [v.rsplit("/", 1)[-1].split(".", 1)[0].lower() for v in request_values(request)]
    out = []
    for m in _CMD_FILE_RE.finditer(command):
        name = m.group(0)
        stem = name.split(".", 1)[0].lower()
        if name.lower() in lowered or (stem and re.search(rf"(?<![\w]){re.escape(stem)}", lowered)):
            continue
        if stem in _CONVENTIONAL or any(s and stem.startswith(s) for s in stems):
            continue  # output.mp4, or video_720p.mp4 made from video.mp4
        out.append(name)
    return out


# -- putting a request's values into a command that lacks them -------------------------------------------

MAX_FILLS = 4
"""At most this many rewrites of one command (`fill_values`)."""
_SLOT_RE = re.compile(r"\{\{(.*?)\}\}")
_EXT_RE = re.compile(r"\.([A-Za-z][\w]{0,9})$")
_SAFE_WORD_RE = re.compile(r"[\w@%+=:,./~^-]+")
_PATH_WORDS = frozenset({"path", "to", "file", "files", "dir", "directory", "folder", "filename", "source", "target",
                         "destination", "dest", "src", "archive", "image", "input", "output"})
_HOST_WORDS = frozenset({"host", "hostname", "ip", "server", "address", "domain", "remote", "addr"})
_NUMBER_WORDS = frozenset({"n", "number", "count", "num", "port", "size", "seconds", "minutes", "lines", "bytes",
                           "pid", "depth", "level", "days", "timeout", "limit", "width", "height", "mode",
                           "percent", "uid", "gid", "signal"})


def _extension(text: str) -> str:
    m = _EXT_RE.search(text)
    return m.group(1).lower() if m else ""


def _fit(value: str, slot: str, placeholder: bool) -> int:
    """How well `value` fits a slot of the command: 2 the same file extension, 1 the same kind of value,
    0 not at all. `slot` is a placeholder's text or an invented file name."""
    v_ext, s_ext = _extension(value), _extension(slot)
    if v_ext and s_ext:
        return 2 if v_ext == s_ext else 0
    if s_ext and placeholder:
        return 0  # {{path/to/file.txt}} wants a file name
    words = set(re.findall(r"[a-z]+", slot.lower()))
    numeric_slot = bool(words & _NUMBER_WORDS or re.fullmatch(r"[\d.]+", slot))
    if _IP_RE.fullmatch(value):
        return 2 if words & _HOST_WORDS else int(placeholder and not numeric_slot)
    file_like = bool(v_ext) or "/" in value or value.startswith("~")
    if not placeholder:
        return 1 if file_like else 0  # an invented file name takes only a file
    if re.fullmatch(r"\d+(?:\.\d+)?", value):
        return int(numeric_slot)
    if numeric_slot:
        return 0  # {{10}}, {{port}}: a number goes there
    if file_like:
        return 1 if words & _PATH_WORDS or not words else 0
    return 0 if " " in value and words & _PATH_WORDS else 1  # a name, host, branch, pattern ...


def _as_word(value: str, quoted: bool) -> str:
    """`value` as it goes into a command: as it is inside quotes or when it is one plain word, else quoted."""
    if quoted or _SAFE_WORD_RE.fullmatch(value):
        return value
    return "'" + value.replace("'", "'\\''") + "'"


def _slots(request: str, command: str) -> list[tuple[int, int, str, bool]]:
    """(start, end, text, is a placeholder) of the places in `command` that should hold one of the request's
    values: its `{{placeholders}}`, and the file names it invents (`invented_values`), in order."""
    slots = [(m.start(), m.end(), m.group(1), True) for m in _SLOT_RE.finditer(command)]
    blanked = _SLOT_RE.sub(lambda m: " " * len(m.group(0)), command)
    for name in dict.fromkeys(invented_values(request, blanked)):
        m = re.search(rf"(?<![\w/.-]){re.escape(name)}(?![\w-])", blanked)
        if m:
            slots.append((m.start(), m.end(), name, False))
    return sorted(slots)


def fill_values(request: str, command: str, limit: int = MAX_FILLS) -> list[str]:
    """Rewrites of `command` that put the request's values it lacks (`missing_values`) where it holds a
    placeholder or an invented file name: first every missing value in its best-fitting slot, then each
    value alone in each slot it fits. The model scores them (the ranker keeps one only if it wins); [] when
    nothing is missing or there is no slot to fill.

    "turn audio.wav into audio.mp3" / `ffmpeg -i audio.wav out_song.mp3` -> `ffmpeg -i audio.wav audio.mp3`.
    """
    missing = missing_values(request, command)
    if not missing:
        return []
    slots = _slots(request, command)
    if not slots:
        return []

    def put(pairs: dict[int, str]) -> str:
        out, last = [], 0
        for i, (start, end, _, _) in enumerate(slots):
            if i in pairs:
                quoted = start > 0 and command[start - 1] in "'\""
                out += [command[last:start], _as_word(pairs[i], quoted)]
                last = end
        return "".join(out) + command[last:]

    fits = {(v, i): _fit(v, text, ph) for v in missing for i, (_, _, text, ph) in enumerate(slots)}
    taken: dict[int, str] = {}
    for v in missing:  # longest first: a path before the file name inside it
        free = [i for i in range(len(slots)) if i not in taken and fits[v, i] > 0]
        if free:
            taken[max(free, key=lambda i: (fits[v, i], -i))] = v
    found = [put(taken)] if taken else []
    for v in missing:
        for i in sorted(range(len(slots)), key=lambda i: -fits[v, i]):
            if fits[v, i] > 0:
                found.append(put({i: v}))
    return [c for c in dict.fromkeys(found) if c != command][:limit]
