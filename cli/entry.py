"""The console script ``embedkit``: as small an import window as possible before Ctrl-C is handled.

Everything heavy (typer, rich, numpy, the commands) is imported inside :func:`main`, so a
Ctrl-C while Python loads them ends with ``error: interrupted`` and exit 130, never a
traceback.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType

EXIT_SIGINT = 130


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # the shell's convention: 143 for SIGTERM


def main(argv: list[str] | None = None) -> None:
    """Import the app, then run it (see :func:`cli.main.main`). SIGTERM, SIGHUP and SIGQUIT
    already end the process with 128 + N during the imports (not with a traceback)."""
    for name in ("SIGTERM", "SIGHUP", "SIGQUIT"):
        number = getattr(signal, name, None)
        if number is not None and signal.getsignal(number) is not signal.SIG_IGN:
            signal.signal(number, _terminate)
    try:
        from cli.main import main as run
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        sys.stderr.flush()
        raise SystemExit(EXIT_SIGINT) from None
    run(argv)


if __name__ == "__main__":
    main()
