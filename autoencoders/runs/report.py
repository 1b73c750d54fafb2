"""What a finished run or evaluation prints: one table of its final metrics."""

from __future__ import annotations

from collections.abc import Mapping


def print_metrics(title: str, metrics: Mapping[str, float], footer: str) -> None:
    """A rich table of the val/ and test/ metrics on stderr, then `footer` on a line of its own.

    Per-dimension KL (`val/kl_dim/<j>`) stays in TensorBoard: 32 rows would bury the rest.
    """
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("metric", style="cyan")
    table.add_column("value", justify="right", style="green")
    for name, value in metrics.items():
        if name.startswith(("val/", "test/")) and "/kl_dim/" not in name:
            table.add_row(name, f"{value:.6g}")
    console = Console(stderr=True)
    console.print(table)
    console.print(footer, soft_wrap=True)  # a path must stay on one line, even when piped
