"""The one shell lexer (tinyllm.knowledge.shellparse) as safety, metrics and serving read it."""

from __future__ import annotations

import pytest

from tinyllm.knowledge.safety import classify
from tinyllm.knowledge.shellparse import (
    PREFIXES,
    WRAPPERS,
    argv_key,
    command_name,
    lex,
    line_tokens,
    pipelines,
    split_redirect,
    strip_wrappers,
    substitutions,
    wrapper_length,
)


def test_lex_keeps_substitutions_placeholders_and_escapes_in_one_word() -> None:
    toks = lex('echo $(date +%s) {{path to file}} "a\\"b" \\; x')
    assert [(t.kind, t.value) for t in toks] == [
        ("word", "echo"), ("word", "$(date +%s)"), ("word", "{{path to file}}"), ("word", 'a"b'), ("word", ";"),
        ("word", "x")]
    assert toks[2].placeholder and toks[3].quoted and not toks[4].quoted


@pytest.mark.parametrize(
    ("same", "other"),
    [
        ("tar -czf x.tgz 'logs'", 'tar -czf x.tgz "logs"'),
        ("echo 'it'\\''s'", 'echo "it\'s"'),
        ("find . -name \\*.log", "find . -name '*.log'"),
        ("ls>out.txt 2>&1", "ls > out.txt 2>&1"),
        ("grep -rn 'TODO' .", "grep -rn TODO ."),
    ],
)
def test_argv_key_drops_quoting_that_changes_nothing(same: str, other: str) -> None:
    assert argv_key(same) == argv_key(other)


def test_argv_key_keeps_quotes_that_matter() -> None:
    assert argv_key("rm *.tmp") != argv_key("rm '*.tmp'")
    assert argv_key('echo "$USER"') != argv_key("echo '$USER'")
    assert argv_key("echo ~/x") != argv_key("echo '~/x'")
    assert argv_key("grep 'a b' f") != argv_key("grep a b f")
    assert argv_key("echo 'a'*") != argv_key("echo 'a*'")  # the glob is bare in one of them
    # an escape inside double quotes: equal to the shell, but the key keeps such words as written
    assert argv_key("awk -F: '{print $1}' f") != argv_key('awk -F: "{print \\$1}" f')


def test_redirections_split_off_their_fd_and_glued_target() -> None:
    assert split_redirect("2>&1") == (">&", "1")
    assert split_redirect(">&-") == (">&", "-")
    assert split_redirect("2>") == (">", "")
    assert split_redirect("<<-") == ("<<-", "")
    (pipe,) = pipelines(lex("sort x 2>&1 > out.txt | uniq"))
    assert [s.words for s in pipe] == [["sort", "x"], ["uniq"]]
    assert pipe[0].redirects == [(">&", "1"), (">", "out.txt")]


def test_control_operators_end_a_pipeline_and_pipes_continue_it() -> None:
    groups = pipelines(lex("a | b && c; d |& e"))
    assert [[s.words for s in p] for p in groups] == [[["a"], ["b"]], [["c"]], [["d"], ["e"]]]


def test_a_process_substitution_is_a_word_of_its_command_and_its_commands_follow() -> None:
    groups = pipelines(lex("diff <(sort a.txt) b.txt | head -n 5"))
    assert [[s.words for s in p] for p in groups] == [[["diff", "<(sort a.txt)", "b.txt"], ["head", "-n", "5"]],
                                                      [["sort", "a.txt"]]]
    assert groups[0][0].tokens[1].quoted  # an operand, never an option or a program
    (loop, inner) = pipelines(lex("while read -r x; do echo $x; done < <(ls -1)"))[-2:]
    assert loop[0].redirects == [("<", "<(ls -1)")] and [s.words for s in inner] == [["ls", "-1"]]
    assert [[s.words for s in p] for p in pipelines(lex("tee >(grep x > e.log) all.log"))] == [
        [["tee", ">(grep x > e.log)", "all.log"]], [["grep", "x"]]]
    assert pipelines(lex("tee >(grep x > e.log) all.log"))[1][0].redirects == [(">", "e.log")]


def test_an_array_value_stays_in_its_word() -> None:
    assert [[s.words for s in p] for p in pipelines(lex("a=(one two) && echo ${a[1]}"))] == [
        [["a=(one two)"]], [["echo", "${a[1]}"]]]


def test_line_tokens_drop_comments_and_split_roughly_on_an_unclosed_quote() -> None:
    assert [t.value for t in line_tokens("rm -rf / # it's over")] == ["rm", "-rf", "/"]
    assert [t.value for t in line_tokens("echo '#' x")] == ["echo", "#", "x"]  # a quoted # is no comment
    assert [t.value for t in line_tokens("echo it's && rm -rf /")] == ["echo", "its", "&&", "rm", "-rf", "/"]
    assert [t.value for t in line_tokens("rm {{[-r|--recursive]}} x")] == ["rm", "-r", "x"]


def test_substitutions_are_found_outermost_first_and_nested() -> None:
    text = "echo $(a $(b) (c)) `d` $(unclosed"
    assert [text[s:e] for s, e in substitutions(text)] == ["$(a $(b) (c))", "`d`"]
    assert substitutions("$(" * 2000) == []


def test_one_wrapper_table_read_two_ways() -> None:
    words = ["sudo", "--user", "bob", "xargs", "-n", "1", "rm", "x"]
    assert strip_wrappers(words) == ["rm", "x"]  # safety: every wrapper
    assert words[wrapper_length(words, PREFIXES, keywords=False):] == ["xargs", "-n", "1", "rm", "x"]  # evaluation
    assert command_name("sudo --user bob xargs -n 1 rm x") == "xargs"
    assert PREFIXES <= WRAPPERS
    assert wrapper_length(["A=1", "make"], quoted=[True, False]) == 0  # a quoted assignment is the command


def test_safety_reads_escaped_operators_and_nested_substitutions_as_the_shell_does() -> None:
    assert [w.code for w in classify("find $HOME \\( -name a.out \\) -exec rm {} \\;")] == ["find-delete"]
    assert [w.code for w in classify("echo $(sudo rm -rf / $(date))")] == ["recursive-delete"]
    assert [w.code for w in classify("a=$( (rm -rf /) )")] == ["recursive-delete"]
    assert [w.code for w in classify("env - rm -rf /")] == ["recursive-delete"]
