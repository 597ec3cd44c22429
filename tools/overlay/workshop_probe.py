"""Load a Django project the way its server would and print what the workshop needs as JSON.

Run inside a project copy with the environment from tools/grading/project.py. Prints one line,
REPORT_MARK followed by a JSON object:
  {"ok": true, "asgi_application": "mysite.asgi.application", "consumers": {...}, ...}
or, when the project cannot load:
  {"ok": false, "phase": "settings" | "asgi", "error": "<one line>", "where": "<file:line>"}
The project's own output may come before it; nothing comes after it (see report()).
"""

import json
import os
import sys
import traceback

# Marks the report's line among whatever the project's code prints.
REPORT_MARK = "workshop-probe-report: "


def main():
    try:
        import django

        django.setup()
    except BaseException as error:  # noqa: BLE001 - any failure is reported, not raised
        return failure("settings", error)

    from django.conf import settings

    asgi_path = getattr(settings, "ASGI_APPLICATION", None)
    facts = {
        "ok": True,
        "asgi_application": asgi_path,
        "installed_apps": list(settings.INSTALLED_APPS),
        "channel_layers": {
            alias: layer.get("BACKEND")
            for alias, layer in getattr(settings, "CHANNEL_LAYERS", {}).items()
        },
        "database": describe_database(settings),
        "static_root": inside_project(getattr(settings, "STATIC_ROOT", None) or ""),
    }
    if not asgi_path:
        return report(facts)
    try:
        from django.utils.module_loading import import_string

        application = import_string(asgi_path)
    except BaseException as error:  # noqa: BLE001
        return failure("asgi", error)
    facts["consumers"] = describe_consumers(application)
    return report(facts)


def describe_database(settings):
    """The default database's engine and name (for SQLite, the file's path: relative to the
    project when inside it, since the tests' copy of the project is another folder)."""
    default = getattr(settings, "DATABASES", {}).get("default", {})
    name = inside_project(default.get("NAME", ""))
    return {"engine": str(default.get("ENGINE", "")), "name": name}


def inside_project(path):
    """A path relative to the project when it is inside it (the tests' copy of the project is
    another folder), else absolute; "" for none."""
    if not str(path):
        return ""
    path = os.path.abspath(str(path))
    if path.startswith(os.getcwd() + os.sep):
        return os.path.relpath(path, os.getcwd())
    return path


def describe_consumers(application):
    """Map each consumer class reachable from the ASGI application to "sync" or "async"."""
    from channels.consumer import AsyncConsumer, SyncConsumer

    found = {}
    for consumer_class in find_consumer_classes(application):
        name = f"{consumer_class.__module__}.{consumer_class.__qualname__}"
        # SyncConsumer is itself a subclass of AsyncConsumer, so ask about it first.
        if issubclass(consumer_class, SyncConsumer):
            found[name] = "sync"
        elif issubclass(consumer_class, AsyncConsumer):
            found[name] = "async"
        else:
            found[name] = "other"
    return found


def find_consumer_classes(application):
    """Walk routers and middleware (whatever attribute they keep the inner app in)."""
    seen, todo, classes = set(), [application], []
    while todo:
        node = todo.pop()
        if id(node) in seen or node is None:
            continue
        seen.add(id(node))
        consumer_class = getattr(node, "consumer_class", None)
        if consumer_class is not None:
            classes.append(consumer_class)
            continue
        for attribute in ("application", "inner", "app", "callback", "_wrapped"):
            todo.append(getattr(node, attribute, None))
        mapping = getattr(node, "application_mapping", None)
        if isinstance(mapping, dict):
            todo.extend(mapping.values())
        for attribute in ("routes", "url_patterns"):
            routes = getattr(node, attribute, None)
            if isinstance(routes, (list, tuple)):
                todo.extend(routes)
    return classes


def failure(phase, error):
    """Report an exception as one line, with the project file and line it came from."""
    where = ""
    project_root = os.getcwd()
    for frame in reversed(traceback.extract_tb(error.__traceback__)):
        if frame.filename.startswith(project_root):
            where = f"{os.path.relpath(frame.filename, project_root)}:{frame.lineno}"
            break
    if isinstance(error, SyntaxError) and error.filename:
        where = f"{os.path.relpath(error.filename, project_root)}:{error.lineno}"
    message = f"{type(error).__name__}: {error}".splitlines()[0]
    return report({"ok": False, "phase": phase, "error": message, "where": where})


def report(facts):
    """Print the report on a line of its own and end the process at once: the project's
    atexit handlers could print after it, and a thread it started could keep it running.
    Written to file descriptor 1 itself: the project may have replaced sys.stdout."""
    os.write(1, ("\n" + REPORT_MARK + json.dumps(facts) + "\n").encode())
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
