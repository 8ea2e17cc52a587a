"""``automl dashboard RUN``: a run shown in optuna-dashboard (the ``[dashboard]`` extra).

The run is exported with :func:`automl.integrations.optuna_export.export_to_optuna` (one trial per
candidate, the same as ``automl export-optuna``) into a journal file in a temporary directory, and
that storage is served by optuna-dashboard's WSGI app on a local HTTP server until Ctrl-C or
SIGTERM; the temporary file goes with it.  The page shows the run as it was when the command
started (run it again to see a search that is still going; ``automl export-optuna`` keeps a
journal file for ``optuna-dashboard FILE``).  ``import optuna_dashboard`` happens inside.
"""
from __future__ import annotations

import os
import sys
import tempfile
import threading
import webbrowser
from typing import Any, Callable
from wsgiref.simple_server import WSGIRequestHandler, make_server

from .._optional import require
from ..errors import ConfigError


class _QuietHandler(WSGIRequestHandler):
    """No access-log line per request (the dashboard polls its API every few seconds)."""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        pass


def serve_dashboard(run_dir: str, port: int = 8080, host: str = "127.0.0.1", open_browser: bool = True,
                    study_name: str | None = None, allow_import: bool = False,
                    on_ready: Callable[[str], Any] | None = None) -> int:
    """Export ``run_dir`` to a temporary Optuna journal and serve it with optuna-dashboard at
    ``http://host:port/dashboard/`` until interrupted (Ctrl-C or SIGTERM).  ``port`` 0 picks a
    free port.  ``on_ready(url)`` is called once the server listens (default: print the URL).
    Returns the number of trials exported."""
    what = "automl dashboard"
    require("optuna", what)
    dashboard = require("optuna_dashboard", what)
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    from ..lifecycle import StopSignals
    from .optuna_export import export_to_optuna

    if not 0 <= int(port) <= 65535:
        raise ConfigError(f"--port must be between 0 and 65535, got {port}")
    with tempfile.TemporaryDirectory(prefix="automl-dashboard-") as tmp:
        path = os.path.join(tmp, "study.journal")
        info = export_to_optuna(run_dir, path, study_name, allow_import=allow_import)
        app = dashboard.wsgi(JournalStorage(JournalFileBackend(path)))
        try:
            httpd = make_server(host, int(port), app, handler_class=_QuietHandler)
        except OSError as exc:
            raise ConfigError(f"cannot serve on {host}:{port}: {exc.strerror or exc} (choose another --port; "
                              "0 picks a free one)") from None
        url = f"http://{host}:{httpd.server_port}/dashboard/"
        with httpd:
            print(f"study {info['study_name']!r}: {info['trials']} trials ({info['complete']} complete, "
                  f"{info['failed']} failed) from {run_dir}", flush=True)
            (on_ready or (lambda u: print(f"serving at {u}  (Ctrl-C to stop)", flush=True)))(url)
            if open_browser:
                threading.Timer(0.5, webbrowser.open, args=(url,)).start()
            stops = StopSignals()
            try:
                with stops:
                    httpd.serve_forever(poll_interval=0.2)
            except KeyboardInterrupt:
                print("dashboard stopped", file=sys.stderr, flush=True)
        return int(info["trials"])


__all__ = ["serve_dashboard"]
