"""Only the C extensions live here; everything else is in pyproject.toml.

``deltas._speedups`` decodes the common records' header (UPSERT, DELETE),
``store._speedups`` writes a new or changed object into the WriteBatch,
``producers._speedups`` shapes a served object, ``consumers._speedups`` turns fetched
Kafka record batches into the consumer's records (see their .c files). All are
required, not optional: a consumer or producer silently falling back to Python
would be much slower with no sign why.
"""

from setuptools import Extension, setup

FLAGS = ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Werror"]
UTF8 = ["deltas/_utf8.h"]  # the strict UTF-8 check both decoders include

setup(
    ext_modules=[
        Extension(
            "deltas._speedups", ["deltas/_speedups.c"], depends=UTF8, extra_compile_args=FLAGS
        ),
        Extension("store._speedups", ["store/_speedups.c"], extra_compile_args=FLAGS),
        Extension(
            "producers._speedups",
            ["producers/_speedups.c"],
            depends=UTF8,
            extra_compile_args=FLAGS,
        ),
        Extension("consumers._speedups", ["consumers/_speedups.c"], extra_compile_args=FLAGS),
    ]
)
