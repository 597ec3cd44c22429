# chat/views.py
from django.shortcuts import render

from .validation import room_name_problem


def index(request):
    return render(request, "chat/index.html")


def room(request, room_name):
    # Beyond the tutorial: explain a room name we cannot serve, instead of a page with a dead socket.
    problem = room_name_problem(room_name)
    if problem:
        return render(
            request, "chat/bad_room_name.html", {"problem": problem}, status=400
        )
    return render(request, "chat/room.html", {"room_name": room_name})
