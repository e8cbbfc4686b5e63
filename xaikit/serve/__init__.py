"""``xaikit serve``: an interactive explorer of runs in the browser, image by image.

Modules:

* :mod:`~xaikit.serve.state` -- the served runs, image references, uploads, an LRU cache;
* :mod:`~xaikit.serve.worker` -- one worker thread per device, cancellable jobs with progress;
* :mod:`~xaikit.serve.compute` -- one map and its per-image scores; the PNGs;
* :mod:`~xaikit.serve.uploads` -- size limit, type check and decoding of an uploaded image;
* :mod:`~xaikit.serve.service` -- predictions, the map cache and jobs;
* :mod:`~xaikit.serve.app` -- the Starlette app: the page, static files, the JSON API;
* :mod:`~xaikit.serve.server` -- binding the socket, uvicorn.

The page (``static/``) is plain HTML, CSS and JavaScript modules, served from the package: no
build step, nothing fetched from elsewhere. Starlette and uvicorn are the optional dependency
group ``serve`` (``pip install 'xaikit[serve]'``); importing this package needs them only for
:mod:`~xaikit.serve.app` and :func:`~xaikit.serve.server.serve`.
"""

from xaikit.serve.state import ServedRun, load_served_runs

__all__ = ["ServedRun", "create_app", "load_served_runs"]


def create_app(*args, **kwargs):  # type: ignore[no-untyped-def]
    """:func:`xaikit.serve.app.create_app` (imported on first use: it needs Starlette)."""
    from xaikit.serve.app import create_app as create

    return create(*args, **kwargs)
