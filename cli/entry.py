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


#: Signals handled like SIGTERM (SIGHUP: the terminal closed; SIGQUIT: Ctrl-\).
TERMINATING_SIGNALS = ("SIGTERM", "SIGHUP", "SIGQUIT")


def _terminate(signum: int, frame: FrameType | None) -> None:
    # SystemExit unwinds through every finally: partial outputs are removed on the way out.
    # Exit 128 + signal number, the shell's convention (143 for SIGTERM).
    raise SystemExit(128 + signum)


def install_terminating_handlers() -> None:
    """End with 128 + N on SIGTERM, SIGHUP and SIGQUIT; a signal our parent ignores
    (``nohup`` ignores SIGHUP) stays ignored."""
    for name in TERMINATING_SIGNALS:
        number = getattr(signal, name, None)
        if number is not None and signal.getsignal(number) is not signal.SIG_IGN:
            signal.signal(number, _terminate)


def main(argv: list[str] | None = None) -> None:
    """Import the app, then run it (see :func:`cli.main.main`). SIGTERM, SIGHUP and SIGQUIT
    already end the process with 128 + N during the imports (not with a traceback)."""
    install_terminating_handlers()
    try:
        from .main import main as run
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        sys.stderr.flush()
        raise SystemExit(EXIT_SIGINT) from None
    run(argv)


if __name__ == "__main__":
    main()
