"""Settings for the benchmark's servers: the workshop overlay (the project's own settings,
its Redis at REDIS_URL), with the channel layer the benchmark asks for. The project's files
are never edited; `make bench` sets these variables:

  BENCH_LAYER          "stage" (the project's own layer, the default), "pubsub" or "memory"
  BENCH_LAYER_CONFIG   "tutorial": the official tutorial's CONFIG (the Redis address, every
                       other option at its default); or a JSON object of options set on top
                       of the project's CONFIG, e.g. {"expiry": 1}
"""

import json
import os

from workshop_settings import *  # noqa: F403 - the project's settings, as every server has them
from workshop_settings import CHANNEL_LAYERS as _STAGE_LAYERS

REDIS_BACKENDS = {
    "stage": None,  # keep the project's BACKEND
    "pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
}
# What InMemoryChannelLayer accepts; it rejects a Redis address or other Redis options.
IN_MEMORY_OPTIONS = ("expiry", "group_expiry", "capacity", "channel_capacity")


def bench_layer(stage_layer: dict, backend: str, config_change: str | None) -> dict:
    """The stage's default layer, with another backend and/or another CONFIG."""
    config = dict(stage_layer.get("CONFIG", {}))
    if config_change == "tutorial":
        config = {"hosts": config["hosts"]}
    elif config_change:
        config.update(json.loads(config_change))
    if backend == "memory":
        config = {k: v for k, v in config.items() if k in IN_MEMORY_OPTIONS}
        return {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": config}
    if backend not in REDIS_BACKENDS:
        raise ValueError(f"BENCH_LAYER={backend!r}: use stage, pubsub or memory")
    return {
        "BACKEND": REDIS_BACKENDS[backend] or stage_layer["BACKEND"],
        "CONFIG": config,
    }


CHANNEL_LAYERS = {
    **_STAGE_LAYERS,
    "default": bench_layer(
        _STAGE_LAYERS["default"],
        os.environ.get("BENCH_LAYER", "stage"),
        os.environ.get("BENCH_LAYER_CONFIG"),
    ),
}
