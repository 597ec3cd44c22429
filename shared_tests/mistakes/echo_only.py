# Planted by the grader (stage 6): the message goes back to its sender only, as in Part 2's
# echo consumer; no one else in the room sees it.
import json as _planted_json


async def _planted_receive(self, text_data=None, bytes_data=None):
    message = _planted_json.loads(text_data)["message"]
    await self.send(text_data=_planted_json.dumps({"message": message}))


ChatConsumer.receive = _planted_receive  # noqa: F821 - defined above in this file
