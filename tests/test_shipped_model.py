"""The model shipped in the package: loads without torch, answers everyday requests, matches torch exactly."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from tinyllm.formats.checkpoint import default_model_path, read_meta
from tinyllm.infer.runtime import Runtime
from tinyllm.knowledge.retrieval import BM25Index
from tinyllm.knowledge.shellparse import parse_commands
from tinyllm.serve.suggest import Suggester

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="module")
def suggester():
    return Suggester.load()


def test_shipped_model_is_small_and_self_describing():
    path = default_model_path()
    assert path.is_file(), "tinyllm/models/default.npz must ship with the package"
    assert path.stat().st_size <= 20 * 2**20  # int8: about half of float16
    header = read_meta(path)
    assert header["dtype"] == "int8" and header["meta"].get("dev_full")  # int8 with per-group scales
    assert header["meta"]["retrieval_k"] == 0 and int(header["meta"]["beam"]) >= 1  # serving decode chosen at ship time
    assert header["meta"]["named_tools"] is True
    index = BM25Index.load(path.with_suffix(".idx"))  # the named-program step needs the lexicon beside the model
    assert index.tools is not None and {"ls", "find", "bandwhich"} <= index.tools.known
    second = header["meta"].get("second_opinion")
    if second is not None:  # a second model ships beside the first, with its own index (tool lexicon)
        second_path = path.parent / second["file"]
        assert second_path.is_file() and second_path.with_suffix(".idx").is_file()
        assert read_meta(second_path)["dtype"] == "int8"


@pytest.mark.parametrize("request_text, utility", [
    ("make a directory called build", "mkdir"),
    ("find files modified in the last 24 hours", "find"),
    ("list all docker containers including stopped ones", "docker"),
    ("list all files in current directory", "ls"),  # issue 7's acceptance request (not in training: F1 test)
    # the greedy answer (`inp {{path/to/file}}`: an unknown program, not the one the request names) loses to
    # a candidate with the named program in the ranking (unknown_program and named_unused, tinyllm.knowledge.checks)
    ("check spelling in a file with aspell", "aspell"),
    ("open a new session with zellij", "zellij"),
])
def test_everyday_requests_get_the_right_utility(suggester, request_text, utility):
    s = suggester.suggest(request_text, "linux")
    assert parse_commands(s.command)[0][0] == utility, s.command  # the first program, after any `sudo`


def test_nbest_alternatives_are_distinct_and_sorted(suggester):
    s = suggester.suggest("find files modified in the last 24 hours", "linux", n=3)
    cmds = [c for c, _ in s.alternatives]
    scores = [sc for _, sc in s.alternatives]
    assert len(set(cmds)) == len(cmds) >= 2
    assert scores == sorted(scores, reverse=True)


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="parity needs the [train] extra")
@pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data is not beside the checkout")
def test_numpy_engine_matches_torch_on_dev_prompts(tmp_path):
    import torch

    from tinyllm.infer import generate
    from tinyllm.knowledge.text import normalize_instruction
    from tinyllm.train.model import TorchStepModel, Transformer, load_numpy_state
    from tinyllm.train.pairs import build_pairs

    rt = Runtime.load(default_model_path(), engine="numpy")  # float32 parity with torch
    model = load_numpy_state(Transformer(rt.ckpt.config), rt.ckpt.weights).eval()
    build_pairs(DATA, tmp_path)
    import json

    rows = [json.loads(line) for line in (tmp_path / "dev.jsonl").read_text().splitlines()][:200]
    prompts = [rt.prompt_ids(normalize_instruction(r["instruction"]), r["platform"]) for r in rows]
    ids = np.array([prompts[0]])
    with torch.no_grad():
        ref = model(torch.from_numpy(ids)).numpy()
    np.testing.assert_allclose(rt.model.forward(ids), ref, atol=1e-3, rtol=1e-3)
    torch_step = TorchStepModel(model)
    for s in range(0, len(prompts), 25):
        batch = prompts[s : s + 25]
        ours = [c.ids for c in generate.greedy(rt.model, batch, 48)]
        theirs = [c.ids for c in generate.greedy(torch_step, batch, 48)]
        assert ours == theirs
    for p in prompts[:5]:
        a = generate.beam_search(rt.model, p, beam=4, n_best=4, max_new_tokens=48)
        b = generate.beam_search(torch_step, p, beam=4, n_best=4, max_new_tokens=48)
        assert [c.ids for c in a] == [c.ids for c in b]
