# chat/routing.py
from django.urls import re_path

from . import consumers

websocket_urlpatterns = [
    # Beyond the tutorial: [^/]+ instead of \w+, so "my-room", "a b" and "中文" reach the consumer.
    re_path(r"ws/chat/(?P<room_name>[^/]+)/$", consumers.ChatConsumer.as_asgi()),
]
