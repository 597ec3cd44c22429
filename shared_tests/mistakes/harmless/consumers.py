# Planted by the grader (stage 6): the consumer's methods are wrapped and behave the same.
_planted_connect_before = ChatConsumer.connect  # noqa: F821 - defined above in this file
_planted_receive_before = ChatConsumer.receive  # noqa: F821
_planted_disconnect_before = ChatConsumer.disconnect  # noqa: F821
_planted_send_before = ChatConsumer.send  # noqa: F821


async def _planted_connect(self):
    await _planted_connect_before(self)


async def _planted_receive(self, **frame):
    await _planted_receive_before(self, **frame)


async def _planted_disconnect(self, close_code):
    await _planted_disconnect_before(self, close_code)


async def _planted_send(self, *args, **kwargs):
    await _planted_send_before(self, *args, **kwargs)


ChatConsumer.connect = _planted_connect  # noqa: F821
ChatConsumer.receive = _planted_receive  # noqa: F821
ChatConsumer.disconnect = _planted_disconnect  # noqa: F821
ChatConsumer.send = _planted_send  # noqa: F821
