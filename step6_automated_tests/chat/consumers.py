# chat/consumers.py
import hashlib
import json

from channels.generic.websocket import AsyncWebsocketConsumer

from .validation import parse_chat_message


class ChatConsumer(AsyncWebsocketConsumer):
    async def connect(self):
        self.room_name = self.scope["url_route"]["kwargs"]["room_name"]
        # Beyond the tutorial: group names allow only ASCII, so use a hash of the room name.
        room_hash = hashlib.sha256(self.room_name.encode()).hexdigest()
        self.room_group_name = f"chat_{room_hash}"

        # Join room group
        await self.channel_layer.group_add(self.room_group_name, self.channel_name)

        await self.accept()

    async def disconnect(self, close_code):
        # Leave room group
        await self.channel_layer.group_discard(self.room_group_name, self.channel_name)

    # Receive message from WebSocket
    async def receive(self, text_data=None, bytes_data=None):
        # Beyond the tutorial: answer a malformed frame with an error; keep the socket open.
        try:
            message = parse_chat_message(text_data, bytes_data)
        except ValueError as error:
            await self.send(text_data=json.dumps({"error": str(error)}))
            return

        # Send message to room group
        await self.channel_layer.group_send(
            self.room_group_name, {"type": "chat.message", "message": message}
        )

    # Receive message from room group
    async def chat_message(self, event):
        message = event["message"]

        # Send message to WebSocket
        await self.send(text_data=json.dumps({"message": message}))
