# Planted by the grader (stage 6): every room page opens the lobby's socket, whatever room its
# URL names (the view gets "lobby" for the room name, however its argument is called).
_planted_room_before = room  # noqa: F821 - defined above in this file


def room(request, *args, **kwargs):
    args = ("lobby",) * len(args)
    kwargs = dict.fromkeys(kwargs, "lobby")
    return _planted_room_before(request, *args, **kwargs)
