# Planted by the grader (stage 6): the room name is ignored, so every room joins the same group
# and hears every other room.
_planted_connect_before = ChatConsumer.connect  # noqa: F821 - defined above in this file


async def _planted_connect(self):
    self.scope["url_route"]["kwargs"]["room_name"] = "everyone"
    await _planted_connect_before(self)


ChatConsumer.connect = _planted_connect  # noqa: F821
