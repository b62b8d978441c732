"""User-facing errors and the command-line wrapper that turns them into one line."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence


class UserError(Exception):
    """Bad input the user can fix: a missing file, an invalid value, an incompatible artefact.

    Command-line front ends print ``error: <message>`` on one line and exit non-zero.
    """


EXIT_USER_ERROR = 2


def run_cli(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None) -> None:
    """Run ``main(argv)`` and exit with its status; a ``UserError`` becomes one line on stderr.

    >>> def main(argv):
    ...     return 0
    >>> run_cli(main, [])
    Traceback (most recent call last):
    SystemExit: 0
    """
    try:
        status = main(argv)
    except UserError as exc:
        message = " ".join(str(exc).split())  # always one line
        print(f"error: {message}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(status or 0)
