"""Tiny models of the real architectures with seeded random weights, built offline and cached.

No machine here reaches a model hub, so tests, `--demo` and benchmarks run on these.
They produce noise: callers must tell the user so (see LoadReport.demo).
"""
from engine.loading.demo.build import cache_root, cached_build, mistral_tokenizer_file

__all__ = ["cache_root", "cached_build", "mistral_tokenizer_file"]
