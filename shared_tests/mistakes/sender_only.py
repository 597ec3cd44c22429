# Planted by the grader (stage 6): the consumer sends each message through the channel layer,
# but to the sender's own channel instead of the room's group.
_planted_receive_before = ChatConsumer.receive  # noqa: F821 - defined above in this file


class _planted_SenderOnlyLayer:
    def __init__(self, layer, channel_name):
        self._layer = layer
        self._channel_name = channel_name

    def __getattr__(self, name):
        return getattr(self._layer, name)

    async def group_send(self, group, message):
        await self._layer.send(self._channel_name, message)


async def _planted_receive(self, **frame):
    layer = self.channel_layer
    self.channel_layer = _planted_SenderOnlyLayer(layer, self.channel_name)
    try:
        await _planted_receive_before(self, **frame)
    finally:
        self.channel_layer = layer


ChatConsumer.receive = _planted_receive  # noqa: F821
