"""Settings for every server the workshop starts on a project copy: the project's own settings,
with a Redis channel layer pointed at REDIS_URL (the suite's or the grader's private Redis).

The project's files are never edited: DJANGO_SETTINGS_MODULE names this module, and it reads the
project's settings module from WORKSHOP_PROJECT_SETTINGS (found in the project's manage.py).
"""

import copy
import importlib
import os

_project_settings = importlib.import_module(os.environ["WORKSHOP_PROJECT_SETTINGS"])

globals().update(
    {
        name: getattr(_project_settings, name)
        for name in dir(_project_settings)
        if name.isupper()
    }
)


def _point_redis_layers_at(url, layers):
    """Return the layers with every channels_redis layer using the Redis at `url`."""
    layers = copy.deepcopy(layers)
    for layer in layers.values():
        if layer.get("BACKEND", "").startswith("channels_redis."):
            layer.setdefault("CONFIG", {})["hosts"] = [url]
    return layers


if os.environ.get("REDIS_URL") and hasattr(_project_settings, "CHANNEL_LAYERS"):
    CHANNEL_LAYERS = _point_redis_layers_at(
        os.environ["REDIS_URL"], _project_settings.CHANNEL_LAYERS
    )
