import click


@click.command("tui")
@click.option("--refresh", type=float, default=10.0, show_default=True, help="Seconds between automatic refreshes.")
def tui(refresh: float) -> None:
    """Dashboard of deployments: a live table (`/` filter, `s` sort, `enter` details, `l` logs, `ctrl+d` destroy,
    `?` help), refreshed in the background with one API call each time."""
    from .app import LcaiApp
    from .data import DataSource

    LcaiApp(DataSource(), refresh_s=refresh).run()
