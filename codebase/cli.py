"""What every top-level script shares: one-line errors and exit codes."""

from __future__ import annotations

import sys
from collections.abc import Callable


def run_main(main: Callable[[], int | None]) -> None:
    """Run a script's main(); a ValueError (bad input) becomes one line on stderr and exit code 2."""
    try:
        code = main()
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)
