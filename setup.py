"""Only the C extensions live here; everything else is in pyproject.toml.

``deltas._speedups`` decodes the common records' header (UPSERT, DELETE),
``store._speedups`` writes a new or changed object into the WriteBatch (see their .c
files). Both are required, not optional:
a consumer silently falling back to Python would be much slower with no sign why.
"""

from setuptools import Extension, setup

FLAGS = ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Werror"]

setup(
    ext_modules=[
        Extension("deltas._speedups", ["deltas/_speedups.c"], extra_compile_args=FLAGS),
        Extension("store._speedups", ["store/_speedups.c"], extra_compile_args=FLAGS),
    ]
)
