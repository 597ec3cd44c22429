# Planted by the grader (stage 6): every room page opens the lobby's socket, whatever room its
# URL names.
_planted_room_before = room  # noqa: F821 - defined above in this file


def room(request, room_name):
    return _planted_room_before(request, "lobby")
