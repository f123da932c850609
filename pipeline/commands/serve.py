"""``liqmap serve``: build the site, then serve it on http://127.0.0.1:<port>/ (loopback only)."""

from __future__ import annotations

import functools
import http.server
import sys
from pathlib import Path

from pipeline import paths


def configure(p) -> None:
    p.add_argument("--port", type=int, default=8000, help="port on 127.0.0.1 (default: 8000)")
    p.add_argument("--out", type=Path, default=None, help=f"site directory (default: {paths.SITE_OUT})")
    p.add_argument("--no-build", action="store_true", help="serve the existing site without rebuilding")


def make_server(site_dir: Path, port: int = 8000) -> http.server.ThreadingHTTPServer:
    """An HTTP server for ``site_dir`` bound to 127.0.0.1 (port 0 picks a free port)."""
    handler = functools.partial(_QuietHandler, directory=str(site_dir))
    return http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, ".json": "application/json",
                      ".js": "text/javascript"}

    def log_message(self, fmt, *args):  # one short line per request on stderr
        sys.stderr.write(f"{self.address_string()} {fmt % args}\n")


def run(args) -> int:
    site = Path(args.out) if args.out else paths.SITE_OUT
    if not args.no_build:
        import os

        from pipeline.commands import build as build_cmd

        # Instant navigation only works when site_url's host:port is where the site is served.
        os.environ.setdefault("LIQMAP_SITE_URL", f"http://127.0.0.1:{args.port}/")
        rc = build_cmd.run(args) if hasattr(args, "assets") else build_cmd.run(_with_build_defaults(args))
        if rc:
            return rc
    if not (site / "index.html").exists():
        print(f"no site at {site}; run `liqmap build` first", file=sys.stderr)
        return 1
    server = make_server(site, args.port)
    print(f"serving {site} at http://127.0.0.1:{server.server_address[1]}/ (Ctrl-C stops)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def _with_build_defaults(args):
    args.assets = None
    args.no_strict = False
    return args
