"""Build the optional C kernels (tinyllm/infer/_kernels.c) and compress the own pairs; everything else is
declared in pyproject.toml.

`optional=True`: without a C compiler the package still installs and serves with the numpy engine.

The own training pairs (tinyllm/train/data/pairs/*.jsonl) stay plain JSONL in the checkout, where people
review them; the built package holds each as a reproducible `.jsonl.gz` (no timestamp in the header),
about a sixth of the size. Every reader goes through `tinyllm.train.sources.read_pair_bytes`.
"""

import gzip
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_py import build_py

PAIRS = Path("tinyllm", "train", "data", "pairs")


def compress_pairs(build_lib: str) -> list[str]:
    """Replace every PAIRS/*.jsonl under `build_lib` by its gzip copy; returns the new paths."""
    written = []
    for src in sorted((Path(build_lib) / PAIRS).glob("*.jsonl")):
        dest = src.with_name(src.name + ".gz")
        with open(dest, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9,
                                                   mtime=0) as out:
            out.write(src.read_bytes())
        src.unlink()
        written.append(str(dest))
    return written


class BuildPyCompressingPairs(build_py):
    """build_py, then the own pairs compressed in the build tree (what wheels and installs copy)."""

    def run(self) -> None:
        super().run()
        if not getattr(self, "editable_mode", False):  # an editable install reads the checkout's files as they are
            self._compressed = compress_pairs(self.build_lib)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        if getattr(self, "editable_mode", False):
            return super().get_outputs(include_bytecode)
        outputs = [p for p in super().get_outputs(include_bytecode)
                   if not (Path(p).parent.as_posix().endswith(PAIRS.as_posix()) and p.endswith(".jsonl"))]
        return outputs + getattr(self, "_compressed", [])


setup(
    ext_modules=[Extension("tinyllm.infer._kernels", ["tinyllm/infer/_kernels.c"], extra_compile_args=["-O3"],
                           optional=True)],
    cmdclass={"build_py": BuildPyCompressingPairs},
)
