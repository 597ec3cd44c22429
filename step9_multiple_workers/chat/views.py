# chat/views.py
from django.shortcuts import redirect, render

from .validation import ANONYMOUS_NAME, nickname_problem, room_name_problem


def name_of(request):
    """Who the visitor chats as: the consumer decides the same way from its scope."""
    if request.user.is_authenticated:
        return request.user.username
    return request.session.get("nickname") or ANONYMOUS_NAME


def index(request):
    # A visitor who is not logged in picks a nickname; their session keeps it.
    problem = None
    if request.method == "POST" and not request.user.is_authenticated:
        nickname = request.POST.get("nickname", "").strip()
        problem = nickname_problem(nickname)
        if problem is None:
            request.session["nickname"] = nickname
            return redirect("index")
    context = {"name": name_of(request), "problem": problem}
    return render(request, "chat/index.html", context, status=400 if problem else 200)


def room(request, room_name):
    # Beyond the tutorial: explain a room name we cannot serve, instead of a page with a dead socket.
    problem = room_name_problem(room_name)
    if problem:
        return render(
            request, "chat/bad_room_name.html", {"problem": problem}, status=400
        )
    context = {"room_name": room_name, "name": name_of(request)}
    return render(request, "chat/room.html", context)
