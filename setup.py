"""Only the C extension lives here; everything else is in pyproject.toml.

``deltas._speedups`` decodes the common record's header for the consumer (see
deltas/_speedups.c). It is required, not optional: a consumer silently falling back
to the Python decoder would be ~20 % slower with no sign why.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "deltas._speedups",
            ["deltas/_speedups.c"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Werror"],
        )
    ]
)
