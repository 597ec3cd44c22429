# chat/validation.py
# Beyond the tutorial: the checks the official tutorial leaves out, in one place.
import json

# Keep in step with roomNameProblem() in templates/chat/index.html.
MAX_ROOM_NAME_LENGTH = 100
MAX_MESSAGE_LENGTH = 1000
EXPECTED_FRAME = 'Send a text frame like {"message": "hello"}.'


def room_name_problem(room_name):
    """Return why a room name cannot be used, or None when it is fine."""
    if not room_name.strip():
        return "Please type a room name."
    if len(room_name) > MAX_ROOM_NAME_LENGTH:
        return f"A room name can have at most {MAX_ROOM_NAME_LENGTH} characters."
    if "/" in room_name or room_name in (".", ".."):
        return 'A room name cannot contain "/" and cannot be "." or "..".'
    return None


def parse_chat_message(text_data=None, bytes_data=None):
    """Return the message in a WebSocket frame, or raise ValueError saying what is wrong."""
    if text_data is None:
        raise ValueError(f"Binary frames are not supported. {EXPECTED_FRAME}")
    try:
        data = json.loads(text_data)
    except (ValueError, RecursionError):
        raise ValueError(f"The frame is not valid JSON. {EXPECTED_FRAME}") from None
    if not isinstance(data, dict) or not isinstance(data.get("message"), str):
        raise ValueError(
            f'The frame needs a "message" holding a string. {EXPECTED_FRAME}'
        )
    if len(data["message"]) > MAX_MESSAGE_LENGTH:
        raise ValueError(
            f"The message has {len(data['message'])} characters;"
            f" the limit is {MAX_MESSAGE_LENGTH}."
        )
    return data["message"]


MAX_NICKNAME_LENGTH = 30
# The author of a visitor who has not picked a nickname. A username cannot contain a space,
# so no account has this name.
ANONYMOUS_NAME = "Anonymous visitor"


def nickname_problem(nickname):
    """Return why a visitor cannot use this nickname, or None when it is fine."""
    from django.contrib.auth import get_user_model

    if not nickname:
        return "Please type a nickname."
    if len(nickname) > MAX_NICKNAME_LENGTH:
        return f"A nickname can have at most {MAX_NICKNAME_LENGTH} characters."
    if not nickname.isprintable():
        return "A nickname cannot contain line breaks or control characters."
    taken = get_user_model().objects.filter(username__iexact=nickname).exists()
    if taken or nickname.casefold() == ANONYMOUS_NAME.casefold():
        return "That name belongs to someone else: pick another one, or log in."
    return None
