# chat/consumers.py
import asyncio
import hashlib
import json

from channels.generic.websocket import AsyncWebsocketConsumer
from redis.exceptions import RedisError

from . import presence
from .middleware import REDIS_UNAVAILABLE
from .models import Message
from .validation import ANONYMOUS_NAME, parse_chat_message

# How many earlier messages someone who joins a room sees.
HISTORY_LENGTH = 50


class ChatConsumer(AsyncWebsocketConsumer):
    async def connect(self):
        self.room_name = self.scope["url_route"]["kwargs"]["room_name"]
        # Beyond the tutorial: group names allow only ASCII, so use a hash of the room name.
        room_hash = hashlib.sha256(self.room_name.encode()).hexdigest()
        self.room_group_name = f"chat_{room_hash}"
        # The server decides who is talking, never the frames the page sends.
        self.author = await self.find_author()

        # Join room group
        await self.channel_layer.group_add(self.room_group_name, self.channel_name)

        await self.accept()
        await self.send_history()
        # Who is here: enter the room's list, then keep the entry fresh in the background.
        self.room_hash = room_hash
        await presence.renew(room_hash, self.channel_name, self.author)
        self.names_shown = None
        self.heartbeat = asyncio.create_task(self.keep_presence())

    async def keep_presence(self):
        """Every HEARTBEAT seconds: send the list of names if it changed, renew our entry."""
        try:
            while True:
                names = await presence.names_in(self.room_hash)
                if names != self.names_shown:
                    self.names_shown = names
                    await self.send(text_data=json.dumps({"presence": names}))
                await asyncio.sleep(presence.HEARTBEAT)
                await presence.renew(self.room_hash, self.channel_name, self.author)
        except RedisError:
            await self.close(code=REDIS_UNAVAILABLE)  # the page reconnects later

    async def find_author(self):
        """The logged-in user's name, else the nickname the session keeps."""
        user = self.scope["user"]  # AuthMiddlewareStack has loaded it already
        if user.is_authenticated:
            return user.username
        nickname = await self.scope["session"].aget("nickname")
        return nickname or ANONYMOUS_NAME

    async def send_history(self):
        """Send the room's last messages, oldest first, before any live one."""
        newest_first = Message.objects.filter(room=self.room_name).order_by("-id")
        history = [message async for message in newest_first[:HISTORY_LENGTH]]
        # A message stored while we joined is both in the history and on its way live.
        self.last_history_id = history[0].id if history else 0
        for message in reversed(history):
            await self.send(text_data=json.dumps(message.as_frame()))

    async def disconnect(self, close_code):
        if hasattr(self, "heartbeat"):  # connect() got that far
            self.heartbeat.cancel()
            await presence.leave(self.room_hash, self.channel_name, self.author)

        # Leave room group
        await self.channel_layer.group_discard(self.room_group_name, self.channel_name)

    # Receive message from WebSocket
    async def receive(self, text_data=None, bytes_data=None):
        # Beyond the tutorial: answer a malformed frame with an error; keep the socket open.
        try:
            text = parse_chat_message(text_data, bytes_data)
        except ValueError as error:
            await self.send(text_data=json.dumps({"error": str(error)}))
            return

        # Store it first: the database gives it its id and time. The async ORM
        # (acreate) runs the query in a worker thread, so other sockets are not kept waiting.
        message = await Message.objects.acreate(
            room=self.room_name, author=self.author, text=text
        )

        # Send message to room group
        await self.channel_layer.group_send(
            self.room_group_name, {"type": "chat.message", "frame": message.as_frame()}
        )

    # Receive message from room group
    async def chat_message(self, event):
        frame = event["frame"]
        if frame["id"] <= self.last_history_id:
            return  # already sent with the history

        # Send message to WebSocket
        await self.send(text_data=json.dumps(frame))
