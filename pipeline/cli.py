"""The ``liqmap`` command line: one subcommand per module in ``pipeline.commands``.

Each command module exposes ``HELP`` (one line), ``configure(parser)`` and
``run(args) -> int``. Command modules import only the registry at load time and pull in their heavy
dependencies (Altair, requests, DuckDB) inside ``run``, so ``liqmap --help`` and
``liqmap check`` start in about a tenth of a second.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = {
    "check": "validate assets.yaml (and the store, if present) without building",
    "build": "build the static site from the store (loads the bundled sample if the store is empty)",
    "serve": "build, then serve the site on localhost",
    "compute": "run the liquidation model on your own candles + open-interest files",
    "collect": "fetch public exchange data into the store",
    "run": "collect, then build",
    "backfill": "load Binance's public bulk archive (beyond the REST API's 30 days)",
    "restore": "rebuild the DuckDB cache from the Parquet history partitions",
    "export": "write the store's history as Parquet partitions",
    "backtest": "measure how often price reaches the predicted clusters",
    "snapshot": "show or verify a snapshot, regenerating its grids and book from the history",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="liqmap", description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="data directory (default: $LIQMAP_DATA_DIR or ./data)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    modules = {}
    for name, help_text in COMMANDS.items():
        mod = importlib.import_module(f"pipeline.commands.{name}")
        p = sub.add_parser(name, help=help_text, description=help_text)
        mod.configure(p)
        modules[name] = mod
    args = parser.parse_args(argv)
    try:
        return int(modules[args.command].run(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
