"""Build the optional C kernels (tinyllm/infer/_kernels.c); everything else is declared in pyproject.toml.

`optional=True`: without a C compiler the package still installs and serves with the numpy engine.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("tinyllm.infer._kernels", ["tinyllm/infer/_kernels.c"], extra_compile_args=["-O3"],
                             optional=True)])
