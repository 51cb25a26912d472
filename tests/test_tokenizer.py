"""Tokenizer: fixed special ids, never split, lossless Unicode round trip, one prompt format."""

import pytest

from tinyllm.formats.prompt import BOS_ID, EOS_ID, SPECIAL_IDS, USER_SYMBOLS, Example, prompt_parts
from tinyllm.formats.tokenizer import Tokenizer, TokenizerError

from .lm_fixtures import make_tokenizer


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return make_tokenizer(tmp_path_factory.mktemp("tok"))


def test_special_tokens_have_fixed_ids_and_are_single_pieces(tok):
    for piece, want in SPECIAL_IDS.items():
        assert tok.sp.piece_to_id(piece) == want
    for sym in USER_SYMBOLS:
        assert tok.sp.encode(f"a {sym} b", out_type=str).count(sym) == 1


@pytest.mark.parametrize("text", ["ls -la ~/Documents", "naïve café — “quoted”", "表示 ファイル 一覧", "emoji 🚀🔥 ok",
                                  "tab\there", "ctrl \x01\x07 chars", "  two  spaces  ", "$(echo {{x}}) | 'q' \\n"])
def test_unicode_round_trip(tok, text):
    assert tok.decode(tok.encode(text)) == text


def test_literal_special_strings_in_user_text_are_not_control_tokens(tok):
    ids = tok.encode("print <command> and <eos>")
    assert SPECIAL_IDS["<command>"] not in ids and EOS_ID not in ids


def test_prompt_format(tok):
    ids = tok.encode_prompt("list files", "macos", [Example("show disk", "df -h")])
    parts = prompt_parts("list files", "macos", [Example("show disk", "df -h")])
    assert ids[0] == BOS_ID and ids[-1] == SPECIAL_IDS["<command>"]
    assert [i for i in ids if i in SPECIAL_IDS.values()] == [SPECIAL_IDS[p] for p in parts if p in SPECIAL_IDS]
    assert tok.encode_target("ls")[-1] == EOS_ID
    assert tok.decode(tok.encode_target("ls -l") + [5, 6]) == "ls -l"
    with pytest.raises(ValueError, match="platform"):
        tok.encode_prompt("x", "windows")


def test_foreign_model_rejected(tmp_path):
    with pytest.raises(TokenizerError):
        Tokenizer(b"not a model")


def test_round_trip_property(tok):
    from hypothesis import given, settings
    from hypothesis import strategies as st

    specials = tuple(SPECIAL_IDS)

    @settings(max_examples=300, deadline=None)
    @given(st.text(max_size=80))
    def check(text):
        if any(s in text for s in specials):  # literal special strings are neutralised on purpose
            return
        assert tok.decode(tok.encode(text)) == text

    check()
