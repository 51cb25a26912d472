"""The concrete values a request names (file and folder names, numbers, ports, hosts, users, branches,
URLs, quoted strings) and whether a command keeps them or invents its own.

Standard library only: used when validating training pairs and when checking served candidates.
"""

from __future__ import annotations

import re

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
            return  # "30 minutes" may become 1800 seconds
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


def missing_values(request: str, command: str) -> list[str]:
    """The request's values that the command does not contain (case-sensitive, as typed)."""
    lowered = command.lower()
    missing = []
    for v in request_values(request):
        if any(f in command for f in _variants(v)) or _ORDINAL_RE.fullmatch(v):
            continue
        if v.isdigit() and str(int(v) + 1) in command:
            continue  # top 5 -> head -n 6 (a header line)
        dims = re.fullmatch(r"(\d+)x(\d+)", v)
        if dims and dims.group(1) in command and dims.group(2) in command:
            continue  # 1280x720 -> scale=1280:720
        size = _SIZE_RE.fullmatch(v)
        if size and re.search(rf"(?<!\d){re.escape(size.group(1))}(?!\d)", command):
            continue  # 1GB -> 1G, 100MB -> count=100
        if v.isdigit() or not any(c.isalpha() for c in v):
            if v not in command:  # numbers must appear as they are
                missing.append(v)
            continue
        if any(f.lower() in lowered for f in _variants(v)) and not re.search(r"[./]", v):
            continue  # a host or name in another case (DB01 / db01)
        missing.append(v)
    return missing


_CMD_FILE_RE = re.compile(r"(?<![\w/$.{-])[A-Za-z][\w-]*(?:\.[\w-]+)*\.(?:txt|log|csv|json|ya?ml|xml|md|py|js|ts|sh|conf|"
                          r"cfg|ini|pdf|png|jpe?g|gif|mp[34]|mkv|mov|wav|zip|tar|gz|tgz|bz2|xz|zst|7z|iso|sql|html?|"
                          r"c|cpp|h|go|rs|java|rb|php|deb|rpm|img|bak|key|pem|crt)\b")


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
