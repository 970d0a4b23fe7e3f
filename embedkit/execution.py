"""How a computation runs: the engine its blocked tasks go to, the memory budget every
block is sized by, and where progress is reported. The command line builds one
:class:`Execution` from its options and passes it to the library's entry points; the
library passes it on, unchanged, to every blocked computation.

>>> run = Execution.local(workers=1, budget_mib=16)
>>> run.engine.name, run.budget_mib, run.threads
('local', 16, 1)
>>> list(run.engine.map(lambda shared, item: shared * item, 2, [1, 2, 3]))
[2, 4, 6]
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from embedkit.choices import DEFAULT_BUDGET_MIB
from embedkit.engines import Engine, LocalEngine, Progress
from embedkit.errors import OptionError

__all__ = ["Execution", "validated_budget"]


def validated_budget(budget_mib: float) -> float:
    """``budget_mib`` if it is a positive number of MiB, else :class:`OptionError`."""
    if not budget_mib > 0:
        raise OptionError(f"--budget-mib must be > 0; got {budget_mib}")
    return budget_mib


@dataclass(frozen=True)
class Execution:
    """``engine`` runs the tasks (default: threads here, one per core); ``budget_mib`` bounds
    the working memory of each block or tile (MiB); ``progress(done, total)`` is called as
    tasks finish (``None``: silent)."""

    engine: Engine = field(default_factory=LocalEngine)
    budget_mib: float = DEFAULT_BUDGET_MIB
    progress: Progress | None = None

    def __post_init__(self) -> None:
        validated_budget(self.budget_mib)

    @classmethod
    def local(cls, workers: int | None = None, *, budget_mib: float = DEFAULT_BUDGET_MIB,
              progress: Progress | None = None) -> Execution:
        """Threads in this process: ``workers`` of them (default: every core)."""
        return cls(LocalEngine(workers), budget_mib, progress)

    @property
    def threads(self) -> int | None:
        """Threads for work done in this process (FAISS, BLAS): the local engine's workers;
        ``None`` (every core) on a distributed engine."""
        return self.engine.workers if isinstance(self.engine, LocalEngine) else None

    def quiet(self) -> Execution:
        """The same run without progress reports (for a step nested in a reported one)."""
        return replace(self, progress=None)
