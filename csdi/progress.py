"""Progress bars: on a terminal only (never redrawn into a log file), and off under `--quiet`."""

from __future__ import annotations

import os

#: Set (by `csdi --quiet`) to turn every progress bar off.
QUIET_ENV = "CSDI_QUIET"


def bar_disable(progress: bool) -> bool | None:
    """tqdm's `disable`: True when bars are not wanted, else None (shown only on a terminal)."""
    return True if not progress or os.environ.get(QUIET_ENV) else None
