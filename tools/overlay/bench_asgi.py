"""The ASGI application for the benchmark's variants of a stage; the stage's files are never
edited. Daphne serves `bench_asgi:application`, chosen by these variables:

  BENCH_SLOW_SECONDS   serve a subclass of the stage's chat.consumers.ChatConsumer whose
                       receive() first does that many seconds of work: time.sleep() in a sync
                       consumer, await asyncio.sleep() in an async one
  BENCH_WHAT_IF        comma-separated changes the lesson does NOT make, to measure costs:
                       "gc-freeze"  gc.freeze() once the application is loaded, so the
                                    collector stops re-scanning Django's start-up objects
                       "no-db-close" skip the close_old_connections() thread hop that
                                    Channels 4.2+ makes before every consumer handler
                       "kept-db"    keep database connections (CONN_MAX_AGE None) and give
                                    SQLite a write-ahead log that commits without waiting
                                    for the disk (stage 7's page says why the lesson does not)
Without them this is the stage's own application, unchanged.
"""

import asyncio
import gc
import os
import time

from django.conf import settings
from django.utils.module_loading import import_string

# Import the stage's application first: its asgi.py sets Django up.
application = import_string(settings.ASGI_APPLICATION)

from channels.auth import AuthMiddlewareStack  # noqa: E402 - needs Django set up
from channels.consumer import SyncConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.urls import re_path  # noqa: E402

WHAT_IFS = ("gc-freeze", "no-db-close", "kept-db")
# SQLite commits appended to a write-ahead log, not synced to the disk each time.
WAL_WITHOUT_SYNC = "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"


def slowed(consumer_class: type, seconds: float) -> type:
    """`consumer_class` with `seconds` of work before each message it receives."""
    if issubclass(consumer_class, SyncConsumer):

        class SlowSyncConsumer(consumer_class):
            def receive(self, text_data=None, bytes_data=None):
                time.sleep(seconds)  # blocks the one thread all sync consumers share
                super().receive(text_data=text_data, bytes_data=bytes_data)

        return SlowSyncConsumer

    class SlowAsyncConsumer(consumer_class):
        async def receive(self, text_data=None, bytes_data=None):
            await asyncio.sleep(seconds)  # other consumers run meanwhile
            await super().receive(text_data=text_data, bytes_data=bytes_data)

    return SlowAsyncConsumer


def slow_application(seconds: float):
    """The stage's chat route and middleware, serving the slowed consumer."""
    from chat.consumers import ChatConsumer
    from chat.routing import websocket_urlpatterns

    route = str(websocket_urlpatterns[0].pattern)
    consumer = slowed(ChatConsumer, seconds)
    return ProtocolTypeRouter(
        {
            "websocket": AllowedHostsOriginValidator(
                AuthMiddlewareStack(URLRouter([re_path(route, consumer.as_asgi())]))
            )
        }
    )


async def _no_db_close():
    return None


def _keep_database_connections() -> None:
    from django.db import connections

    # Every thread's connection reads this same dict when it connects and when it is checked.
    database = connections.settings["default"]
    database["CONN_MAX_AGE"] = None
    database.setdefault("OPTIONS", {})["init_command"] = WAL_WITHOUT_SYNC


def apply_what_ifs(names: list[str]) -> None:
    for name in names:
        if name not in WHAT_IFS:
            raise ValueError(f"BENCH_WHAT_IF={name!r}: use {', '.join(WHAT_IFS)}")
    if "no-db-close" in names:
        import channels.consumer

        channels.consumer.aclose_old_connections = _no_db_close
    if "kept-db" in names:
        _keep_database_connections()
    if "gc-freeze" in names:
        gc.collect()
        gc.freeze()


if os.environ.get("BENCH_SLOW_SECONDS"):
    application = slow_application(float(os.environ["BENCH_SLOW_SECONDS"]))
apply_what_ifs([n for n in os.environ.get("BENCH_WHAT_IF", "").split(",") if n])
