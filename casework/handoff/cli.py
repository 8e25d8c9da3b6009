"""``casework handoff``: commands for partner hand-off packages."""

from __future__ import annotations

import click


@click.group("handoff")
def handoff_group() -> None:
    """Import partner hand-off packages."""
