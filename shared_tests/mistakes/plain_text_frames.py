# Planted by the grader (stage 6): the consumer sends the bare message text instead of the
# JSON {"message": ...} the page parses.
import json as _planted_json

_planted_send_before = ChatConsumer.send  # noqa: F821 - defined above in this file


async def _planted_send(self, text_data=None, bytes_data=None, close=False):
    try:
        data = _planted_json.loads(text_data)
    except (TypeError, ValueError):
        data = None
    if isinstance(data, dict) and "message" in data:
        text_data = data["message"]
    await _planted_send_before(
        self, text_data=text_data, bytes_data=bytes_data, close=close
    )


ChatConsumer.send = _planted_send  # noqa: F821
