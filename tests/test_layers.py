"""The package's layer rules, read from the source with `ast` (imports inside functions count too).

cli -> serve -> infer -> knowledge -> formats: a layer imports only from itself and the layers below.
train sits beside them (formats, knowledge, infer; never serve or cli) and is the only importer of
torch. The import budget of the thin client's run-time path is checked by
tests/test_daemon.py::test_thin_client_paths_import_nothing_heavy.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import tinyllm

PACKAGE = Path(tinyllm.__file__).resolve().parent
LAYERS = ("formats", "knowledge", "infer", "serve", "cli")  # lowest first
ALLOWED = {layer: set(LAYERS[: i + 1]) for i, layer in enumerate(LAYERS)}
ALLOWED["train"] = {"formats", "knowledge", "infer", "train"}
DATA_PACKAGES = {"shell", "models"}  # package data only: no imports from tinyllm


def module_name(path: Path) -> str:
    """The dotted name of the module at `path` (a package's __init__ is the package)."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every module `path` imports (absolute names; relative imports resolved; `from a import b` gives
    both a and a.b, since b may be a module)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            found.add(source)
            found.update(f"{source}.{alias.name}" for alias in node.names)
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


def subpackage(module: str) -> str | None:
    """The first-level subpackage a tinyllm module belongs to (None for tinyllm itself)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def test_every_module_is_in_a_known_subpackage() -> None:
    known = set(LAYERS) | {"train"} | DATA_PACKAGES
    stray = [module_name(p) for p in MODULES if subpackage(module_name(p)) not in known | {None}]
    assert stray == []
    assert [module_name(p) for p in MODULES if subpackage(module_name(p)) is None] == ["tinyllm"]


def violations(own: str | None, targets: set[str]) -> list[str]:
    """The imports in `targets` that a module of subpackage `own` may not make."""
    allowed = ALLOWED.get(own, set())
    wrong = []
    for target in sorted(targets):
        top = target.split(".")[0]
        if top == "torch" and own != "train":
            wrong.append(target)
        elif top == "tinyllm" and target not in ("tinyllm", "tinyllm.__version__"):
            if subpackage(target) not in allowed:
                wrong.append(target)
    return wrong


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_layer_rules(path: Path) -> None:
    """A module imports tinyllm only from the layers its own layer may use; torch only in train."""
    own = subpackage(module_name(path))
    assert violations(own, imports(path)) == [], f"{module_name(path)} breaks the layer rules"


@pytest.mark.parametrize("layer", [*LAYERS, "train", *sorted(DATA_PACKAGES)])
def test_each_subpackage_says_what_it_holds(layer: str) -> None:
    doc = ast.get_docstring(ast.parse((PACKAGE / layer / "__init__.py").read_text(encoding="utf-8")))
    assert doc, f"tinyllm/{layer}/__init__.py needs a docstring"
    if layer not in DATA_PACKAGES:
        assert "May import" in doc or "may import" in doc


def test_the_checker_reads_imports_and_flags_violations() -> None:
    assert {"tinyllm.formats.config", "numpy"} <= imports(PACKAGE / "infer" / "engine.py")  # relative resolved
    assert {"tinyllm.serve.process", "tinyllm.serve.protocol"} <= imports(PACKAGE / "serve" / "client.py")
    assert violations("infer", {"tinyllm.serve.client", "torch.nn", "tinyllm.formats.config", "numpy"}) == [
        "tinyllm.serve.client", "torch.nn"]
    assert violations("serve", {"tinyllm.cli.app", "tinyllm.train.model", "tinyllm.infer.runtime"}) == [
        "tinyllm.cli.app", "tinyllm.train.model"]
    assert violations("train", {"torch", "tinyllm.infer.runtime", "tinyllm.serve.suggest"}) == ["tinyllm.serve.suggest"]
    assert violations("formats", {"tinyllm.knowledge.text"}) == ["tinyllm.knowledge.text"]
