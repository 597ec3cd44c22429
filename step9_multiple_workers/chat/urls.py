# chat/urls.py
from django.urls import path, re_path

from . import views

urlpatterns = [
    path("", views.index, name="index"),
    # Beyond the tutorial: take any name (even empty or with "/") so the view can explain a refusal.
    re_path(r"^(?P<room_name>.*)/$", views.room, name="room"),
]
