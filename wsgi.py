"""WSGI entry point for gunicorn: ``gunicorn wsgi:app``.

gunicorn imports this module in each worker once it has forked (in the master,
before the fork, with ``--preload``): the app is built, then its long-lived
objects are frozen out of the garbage collector's reach, as ``casework serve``'s
``post_worker_init`` hook does (``gc_young_threshold``, docs/performance.md).
"""

from casework import create_app
from casework.config import tune_gc

app = create_app()
tune_gc(app.config["CASEWORK"]["gc_young_threshold"])
