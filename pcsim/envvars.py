"""Environment variables pcsim reads, parsed with one-line errors."""

from __future__ import annotations

import os

MAX_BLAS_THREADS = 1024


def blas_threads_from_env() -> int:
    """``PCSIM_BLAS_THREADS`` (default 1): BLAS threads for the whole process. ValueError
    naming the variable if it is not an integer from 1 to ``MAX_BLAS_THREADS``."""
    text = os.environ.get("PCSIM_BLAS_THREADS", "").strip() or "1"
    try:
        n = int(text)
    except ValueError:
        n = 0
    if not 1 <= n <= MAX_BLAS_THREADS:
        raise ValueError(
            f"PCSIM_BLAS_THREADS must be an integer from 1 to {MAX_BLAS_THREADS}, got {text!r}"
        )
    return n
