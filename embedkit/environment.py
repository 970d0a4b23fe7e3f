"""What a bug report needs: versions, cores, BLAS/OpenMP thread pools.

Versions come from the installed distributions' metadata (nothing heavy is imported for
them); the thread pools are read with threadpoolctl after importing numpy (and faiss when
it is installed), since only loaded libraries can be seen.
"""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from typing import Any

PACKAGES = ("embedkit", "numpy", "faiss-cpu", "pyarrow", "numba", "threadpoolctl", "typer", "rich",
            "dask", "distributed", "matplotlib")


def package_version(name: str) -> str | None:
    """The installed version of distribution ``name``, or ``None``."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def describe_environment() -> dict[str, Any]:
    """Versions, Python, platform, cores and thread pools, as plain JSON-able values."""
    import numpy  # noqa: F401  (loads the BLAS whose threads are reported)
    from threadpoolctl import threadpool_info

    from embedkit import __version__
    from embedkit.engines import available_cores

    try:
        import faiss  # noqa: F401  (loads FAISS's OpenMP runtime)
    except ImportError:
        pass
    versions = {name: package_version(name) for name in PACKAGES}
    versions["embedkit"] = versions["embedkit"] or __version__
    pools = [
        {"api": info.get("user_api"), "library": info.get("internal_api"), "threads": info.get("num_threads"),
         "version": info.get("version"), "path": info.get("filepath")}
        for info in threadpool_info()
    ]
    return {
        "versions": versions,
        "python": {"version": platform.python_version(), "implementation": platform.python_implementation(),
                   "executable": sys.executable},
        "platform": platform.platform(),
        "cores": {"usable": available_cores(), "machine": os.cpu_count()},
        "thread_pools": pools,
        "environment": {name: os.environ.get(name) for name in (
            "EMBEDKIT_SCHEDULER", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
            "NUMBA_NUM_THREADS") if os.environ.get(name) is not None},
    }
