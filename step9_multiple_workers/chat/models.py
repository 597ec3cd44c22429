# chat/models.py
from django.db import models


class Message(models.Model):
    room = models.CharField(max_length=100, db_index=True)
    author = models.CharField(max_length=150)
    text = models.TextField()
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"{self.author} in {self.room}: {self.text[:50]}"

    def as_frame(self):
        """What the page receives for this message (a JSON object)."""
        return {
            "id": self.id,
            "author": self.author,
            "message": self.text,
            "created": self.created.isoformat(),
        }
