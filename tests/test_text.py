"""Property tests (hypothesis) and examples for tinyllm.knowledge.text."""

from __future__ import annotations

import re
import shlex
import unicodedata

from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from tinyllm.formats.prompt import USER_SYMBOLS
from tinyllm.knowledge.text import (
    ascii_typography,
    description_key,
    normalize_command,
    normalize_instruction,
    placeholder_matches,
    safe_line,
    strip_control,
    whitespace_key,
)

# Per-test settings (not a global profile: other test modules keep hypothesis's defaults).
examples = settings(max_examples=150, deadline=None)

CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
TYPOGRAPHIC = "\u2018\u2019\u201a\u201b\u201c\u201d\u201e\u201f\u2010\u2011\u2012\u2013\u2014\u2015\u2212" \
              "\u00a0\u2009\u202f\u2007\u2026"

# Text biased towards the interesting characters: controls, escapes, whitespace, typography, combining marks.
tricky_chars = st.sampled_from(list("\x00\x07\x1b\x9b\r\n\t\x0b\x0c\x85\u2028 []();m0'\"\\") + list(TYPOGRAPHIC)
                               + ["\u0301", "\u0308", "e", "A", ".", ":", "<", ">", "<macos>", "<command>"])
tricky_text = st.lists(st.one_of(tricky_chars, st.characters()), max_size=40).map("".join)
ansi_sequences = st.sampled_from(["\x1b[31m", "\x1b[0m", "\x1b[2J", "\x1b[1;5H", "\x1b]0;title\x07",
                                  "\x1b]8;;http://x\x1b\\", "\x1bc", "\x1b7", "\x1b(B", "\x1b(B\x1b[m"])
words = st.text(alphabet="abcxyz019-_./*", min_size=1, max_size=6)
spaces = st.text(alphabet=" \t\n\r\x0b\x0c\u2028\x85", min_size=1, max_size=3)


@examples
@given(tricky_text)
def test_strip_control_leaves_no_controls_and_is_idempotent(text: str) -> None:
    out = strip_control(text)
    assert not CONTROLS.search(out)
    assert strip_control(out) == out
    # only deletions: the output is a subsequence of the input
    it = iter(text)
    assert all(ch in it for ch in out)


@examples
@given(st.lists(st.one_of(words, ansi_sequences), max_size=8))
def test_strip_control_removes_whole_escape_sequences(parts: list[str]) -> None:
    assert strip_control("".join(parts)) == "".join(p for p in parts if not p.startswith("\x1b"))


@examples
@given(tricky_text)
def test_safe_line_is_one_clean_line(text: str) -> None:
    out = safe_line(text)
    assert not CONTROLS.search(out)
    assert not re.search(r"\s", out.replace(" ", ""))
    assert "  " not in out and out == out.strip()
    assert safe_line(out) == out


@examples
@given(st.lists(st.tuples(words, spaces), max_size=6))
def test_safe_line_keeps_words_apart(chunks: list[tuple[str, str]]) -> None:
    # Any whitespace, including CR / VT / FF / NEL / U+2028, separates words; none are glued together.
    text = "".join(w + s for w, s in chunks)
    assert safe_line(text) == " ".join(w for w, _ in chunks)


@examples
@given(tricky_text)
def test_ascii_typography(text: str) -> None:
    out = ascii_typography(text)
    assert not any(ch in out for ch in TYPOGRAPHIC)
    assert ascii_typography(out) == out


@examples
@given(st.text(alphabet=st.characters(max_codepoint=127)))
def test_ascii_typography_leaves_ascii_alone(text: str) -> None:
    assert ascii_typography(text) == text


@examples
@given(tricky_text)
def test_normalize_instruction_is_canonical(text: str) -> None:
    out = normalize_instruction(text)
    assert normalize_instruction(out) == out  # idempotent
    assert unicodedata.is_normalized("NFC", out)
    assert not CONTROLS.search(out) and "\n" not in out and "  " not in out
    assert not out.endswith((" ", ".", ":"))
    assert not any(ch in out for ch in TYPOGRAPHIC)
    assert not any(marker in out for marker in USER_SYMBOLS)  # the tokenizer would read them as prompt tokens


def test_normalize_instruction_examples() -> None:
    assert normalize_instruction("<macos> paste the clipboard into <<command>>.txt") == \
        "macos paste the clipboard into command.txt"
    assert normalize_instruction("  List \u201cbig\u201d files\u2026 ") == 'List "big" files'
    assert normalize_instruction("Show   the\tdate:") == "Show the date"
    assert normalize_instruction("e\x00\u0301") == "\u00e9"  # NFC after the control is gone
    assert normalize_instruction("list\rfiles") == "list files"


@examples
@given(tricky_text)
def test_normalize_command_is_canonical(text: str) -> None:
    out = normalize_command(text)
    assert normalize_command(out) == out
    assert unicodedata.is_normalized("NFC", out)
    assert "\n" not in out and "\t" not in out and not CONTROLS.search(out)


@examples
@given(st.lists(st.tuples(words, spaces), max_size=6))
def test_normalize_command_collapses_unquoted_whitespace(chunks: list[tuple[str, str]]) -> None:
    text = "".join(w + s for w, s in chunks)
    assert normalize_command(text) == " ".join(w for w, _ in chunks)


@examples
@given(st.text(alphabet="ab $*|\t", max_size=20), st.sampled_from(["'", '"']))
def test_normalize_command_preserves_quoted_text(content: str, quote: str) -> None:
    content = content.replace("\t", "  ")
    assert normalize_command(f"echo   {quote}{content}{quote}  |  wc") == f"echo {quote}{content}{quote} | wc"


@examples
@given(st.lists(st.sampled_from(["a", "b  c", " ", '\\"', "\\\\", "'"]), max_size=8))
def test_normalize_command_escaped_quotes_inside_double_quotes(parts: list[str]) -> None:
    inner = "".join(parts)
    command = f'echo "{inner}"'
    assert normalize_command(command) == command


@examples
@given(st.lists(st.sampled_from(["a", "b", " ", "  ", "\\ ", "'x  y'", '"p  q"', "\\'", '\\"', "\\\\"]),
                max_size=10))
def test_normalize_command_keeps_shell_words(parts: list[str]) -> None:
    command = "".join(parts)
    try:
        expected = shlex.split(command)
    except ValueError:
        assume(False)
    assert shlex.split(normalize_command(command)) == expected


def test_normalize_command_examples() -> None:
    assert normalize_command("cut -d\\  -f 1") == "cut -d\\  -f 1"  # "\ " is the delimiter, not a separator
    assert normalize_command('echo "say \\"hi  there\\""') == 'echo "say \\"hi  there\\""'
    assert normalize_command("grep  'a  b'   file") == "grep 'a  b' file"
    assert normalize_command("ls\u2014la") == "ls-la"


@examples
@given(tricky_text)
def test_whitespace_key(text: str) -> None:
    out = whitespace_key(text)
    assert whitespace_key(out) == out and "  " not in out and out == out.strip()
    assert out.split(" ") == (text.split() or [""])


@examples
@given(tricky_text)
@example("m<macos>")  # a marker reduced in lower case only, once
def test_description_key(text: str) -> None:
    out = description_key(text)
    assert re.fullmatch(r"[a-z0-9 ]*", out) and "  " not in out
    assert description_key(out) == out
    if "\x1b" not in text and text.isascii():  # ESC + letter is an escape sequence for some letters only
        assert description_key(text.upper()) == description_key(text.lower())


def test_description_key_groups_variants() -> None:
    assert description_key("List  ALL files.") == description_key("list all files") == "list all files"
    assert description_key("Delete \u201clogs\u201d!") == "delete logs"


def test_placeholders_are_tldrs_not_go_template_actions() -> None:
    def inside(command: str) -> list[str]:
        return [m.group(1) for m in placeholder_matches(command)]

    assert inside("cp {{path/to/file}} {{.}}") == ["path/to/file", "."]
    assert inside("i2cdump -r {{start}}-{{end}} {{bus}}") == ["start", "end", "bus"]  # tldr's own {{end}}
    assert inside("hadolint --format {{json}} {{Dockerfile}}") == ["json", "Dockerfile"]
    assert inside("docker inspect -f '{{json .State}}' {{container}}") == ["container"]
    assert inside("docker ps --format '{{range .Mounts}}{{.Source}}{{end}}' {{name}}") == ["name"]
    assert inside("kubectl get pods -o go-template='{{ .metadata.name }}' -n {{ns}}") == ["ns"]
