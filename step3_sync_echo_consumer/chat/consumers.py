# chat/consumers.py
import json

from channels.generic.websocket import WebsocketConsumer

from .validation import parse_chat_message


class ChatConsumer(WebsocketConsumer):
    def connect(self):
        self.accept()

    def disconnect(self, close_code):
        pass

    def receive(self, text_data=None, bytes_data=None):
        # Beyond the tutorial: answer a malformed frame with an error; keep the socket open.
        try:
            message = parse_chat_message(text_data, bytes_data)
        except ValueError as error:
            self.send(text_data=json.dumps({"error": str(error)}))
            return

        self.send(text_data=json.dumps({"message": message}))
