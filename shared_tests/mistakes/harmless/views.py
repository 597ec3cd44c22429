# Planted by the grader (stage 6): the room view is wrapped and behaves the same.
_planted_room_before = room  # noqa: F821 - defined above in this file


def room(request, *args, **kwargs):
    return _planted_room_before(request, *args, **kwargs)
