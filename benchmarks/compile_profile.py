"""Where does numba's cold compilation go? A pytest plugin that times every compilation.

Each numba compilation (one dispatcher, one signature) is timed in process CPU seconds,
exclusive of the compilations it triggers (a kernel's callees are compiled first, inside
its own compilation). At the end of the session it prints the total and the kernels that
cost most. Run it with an empty cache, in one process, so that everything is compiled::

    NUMBA_CACHE_DIR=$(mktemp -d) PYTHONPATH=benchmarks python -m pytest -n 0 -q \\
        -p compile_profile tests/test_field.py tests/test_engines.py

``COMPILE_PROFILE_TOP`` (default 20) sets how many kernels are listed;
``COMPILE_PROFILE_SIGS=path`` also writes every compiled signature there (kernel, CPU s,
argument types), to see why a kernel has several. A warm cache makes
each entry a cache load, not a compilation (the table then shows loading times).
"""

from __future__ import annotations

import os
import time
from collections import defaultdict

from numba.core import event

_open: list[list[float]] = []  # per compilation in progress: [cpu at start, cpu of callees]
_done: list[tuple[str, float]] = []  # (kernel, exclusive cpu s) per compiled signature
_sigs: list[str] = []  # "kernel<TAB>cpu<TAB>argument types" per compiled signature


def _name(dispatcher) -> str:
    func = getattr(dispatcher, "py_func", None)
    if func is None:
        return str(dispatcher)
    return f"{func.__module__}.{func.__qualname__}"


class _Timer(event.Listener):
    def on_start(self, ev: event.Event) -> None:
        _open.append([time.process_time(), 0.0])

    def on_end(self, ev: event.Event) -> None:
        start, callees = _open.pop()
        spent = time.process_time() - start
        if _open:
            _open[-1][1] += spent
        name = _name(ev.data.get("dispatcher"))
        _done.append((name, spent - callees))
        _sigs.append(f"{name}\t{spent - callees:.2f}\t{ev.data.get('args')}")


event.register("numba:compile", _Timer())


def summary(top: int = 20) -> str:
    """The table: total exclusive compile CPU, then the ``top`` kernels by CPU (s)."""
    by_kernel: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    for name, cpu in _done:
        by_kernel[name][0] += 1
        by_kernel[name][1] += cpu
    total = sum(cpu for _, cpu in _done)
    lines = [
        f"numba compile CPU: {total:.1f} s over {len(_done)} signatures",
        "   cpu s  sigs  kernel",
    ]
    ranked = sorted(by_kernel.items(), key=lambda kv: -kv[1][1])[:top]
    lines += [f"{cpu:8.1f}  {int(n):4d}  {name}" for name, (n, cpu) in ranked]
    return "\n".join(lines)


def pytest_terminal_summary(terminalreporter) -> None:
    terminalreporter.write_line(summary(int(os.environ.get("COMPILE_PROFILE_TOP", "20"))))
    path = os.environ.get("COMPILE_PROFILE_SIGS")
    if path:
        with open(path, "w") as f:
            f.write("\n".join(_sigs) + "\n")
