# Planted by the grader (stage 6): disconnect() forgets group_discard, so a closed socket stays
# in its room's group (and the channel layer keeps queueing messages for it).


async def _planted_disconnect(self, close_code):
    pass


ChatConsumer.disconnect = _planted_disconnect  # noqa: F821 - defined above in this file
