"""BLAS threads: one per process by default, set where a run starts, never on import.

In a pip install, numpy and scipy (whose BLAS numba's ``np.dot`` calls) each ship their own
OpenBLAS. pcsim uses both in every step, and with more than one thread each the idle threads of
one keep spinning while the other works: steps of small networks then run 10-100x slower
(``benchmarks/README.md``, "BLAS switch"). PC's matrices are small; scale out with sweep workers
instead of BLAS threads.

Importing pcsim changes nothing. The limit is set where a run starts: the CLI
(:func:`pcsim.cli.main`) limits BLAS to :func:`default_threads` when it starts, and
:func:`pcsim.run.execute` to the run's ``blas_threads`` for the run's duration. From Python,
building the first :class:`~pcsim.circuit.Circuit` of the process applies the same default
(:func:`first_run_default`) unless :func:`limit_threads` was called before; call it yourself to
choose::

    from pcsim.blas import limit_threads
    limit_threads()            # PCSIM_BLAS_THREADS, else 1
    with limit_threads(4): ...  # 4 threads inside the block only
"""

from __future__ import annotations

from threadpoolctl import threadpool_limits

from pcsim.envvars import blas_threads_from_env

ENV_VAR = "PCSIM_BLAS_THREADS"
DEFAULT_THREADS = 1
_limited = False  # limit_threads has run in this process


def default_threads() -> int:
    """The thread count ``PCSIM_BLAS_THREADS`` asks for (:mod:`pcsim.envvars`), else 1.

    Raises ValueError naming the variable when it is set to anything else."""
    return blas_threads_from_env()


def limit_threads(n: int | None = None, user_api: str | None = "blas") -> threadpool_limits:
    """Limit every loaded BLAS library (numpy's and scipy's) to ``n`` threads (default:
    :func:`default_threads`) from now on; the returned object, used as a context manager,
    restores the previous limits when the block ends. ``user_api=None`` limits OpenMP pools
    too (threadpoolctl's ``user_api``).

    Use this rather than threadpoolctl directly: the first :class:`~pcsim.circuit.Circuit` of
    a process applies the default unless this function ran before."""
    global _limited
    # numba's np.dot calls scipy's BLAS: load it now, or the limit would not reach it
    import scipy.linalg.cython_blas  # noqa: F401

    count = default_threads() if n is None else int(n)
    if count < 1:
        raise ValueError(f"BLAS threads must be a positive integer, got {n!r}")
    _limited = True
    return threadpool_limits(limits=count, user_api=user_api)


def first_run_default() -> None:
    """:func:`limit_threads` with the default, unless it was called before in this process
    (the Python API's run start: :class:`~pcsim.circuit.Circuit` calls this)."""
    if not _limited:
        limit_threads()
