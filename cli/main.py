"""The ``embedkit`` root app: commands, ``--version``, and the process-level error boundary."""

from __future__ import annotations

import signal
import sys
from types import FrameType
from typing import Annotated, Optional

import typer

import embedkit
from cli import check as check_command
from cli import eval as eval_command
from cli import inspect as inspect_command
from cli import loss as loss_command
from cli import mine as mine_command
from cli.errors import EXIT_SIGINT, EXIT_USAGE, ClickException

app = typer.Typer(
    name="embedkit",
    help="Ask your embeddings a question: contrastive-learning losses, hard-negative mining, CI checks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"embedkit {embedkit.__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        Optional[bool],
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = None,
) -> None:
    """embedkit: contrastive losses, hard-negative mining and CI gates on exported embeddings."""


app.command(name="loss", epilog=loss_command.EPILOG, no_args_is_help=False)(loss_command.loss)
app.command(name="eval", epilog=eval_command.EPILOG, no_args_is_help=False)(eval_command.eval_)
app.command(name="check", epilog=check_command.EPILOG, no_args_is_help=False)(check_command.check)
app.command(name="inspect", epilog=inspect_command.EPILOG, no_args_is_help=False)(inspect_command.inspect)
app.command(name="mine", epilog=mine_command.EPILOG, no_args_is_help=False)(mine_command.mine)


def _terminate(signum: int, frame: FrameType | None) -> None:
    # SystemExit unwinds through every finally: partial outputs are removed on the way out.
    # Exit 128 + signal number, the shell's convention (143 for SIGTERM).
    raise SystemExit(128 + signum)


#: Signals handled like SIGTERM (SIGHUP: the terminal closed; SIGQUIT: Ctrl-\).
TERMINATING_SIGNALS = ("SIGTERM", "SIGHUP", "SIGQUIT")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry: one-line usage errors, 130 on Ctrl-C, 128 + N on SIGTERM/SIGHUP/SIGQUIT."""
    for name in TERMINATING_SIGNALS:
        number = getattr(signal, name, None)
        # A signal ignored by our parent (`nohup` ignores SIGHUP) stays ignored.
        if number is not None and signal.getsignal(number) is not signal.SIG_IGN:
            signal.signal(number, _terminate)
    try:
        result = app(args=argv, prog_name="embedkit", standalone_mode=False)
    except ClickException as exc:
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)  # type: ignore[attr-defined]
        message = " ".join(str(message).replace("Value error, ", "").split())
        print(f"error: {message}", file=sys.stderr)
        sys.exit(getattr(exc, "exit_code", EXIT_USAGE))
    except (typer.Abort, KeyboardInterrupt):
        print("error: interrupted", file=sys.stderr)
        sys.exit(EXIT_SIGINT)
    except BrokenPipeError:
        # The reader of our stdout went away (e.g. `| head`): not an error of ours.
        sys.stderr.close()
        sys.exit(0)
    if result == EXIT_SIGINT:  # Typer turns Ctrl-C into Exit(130)
        print("error: interrupted", file=sys.stderr)
    sys.exit(result if isinstance(result, int) else 0)


if __name__ == "__main__":
    main()
