"""Who owns what a user makes, and where it is kept: one setting for the library and trained models.

    LSTM_STUDIO_SHARED        1 / 0     whether the server is shared by people who must not see each
                                        other's things. Default: on where a Hugging Face Space is detected
                                        (SPACE_ID is set), off otherwise (`python app.py` on a laptop:
                                        one owner, "local").
    LSTM_STUDIO_HOME          path      the user data folder (the library, user models). Default: on a
                                        Space with persistent storage attached, /data/lstm-studio;
                                        otherwise ~/.lstm-studio.
    LSTM_STUDIO_USER_MODELS   path      where a user's trained models go. Default: HOME/models.

On a shared server a browser keeps a random key (`new_key`) and sends it with each request; an API
client asks for one key once and passes it. Only the key's hash is stored (`owner_of`), so a copy of
the database does not hand out the keys. Off a shared server every request is the local owner.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from pathlib import Path

SHARED_ENV = "LSTM_STUDIO_SHARED"
HOME_ENV = "LSTM_STUDIO_HOME"
USER_MODELS_ENV = "LSTM_STUDIO_USER_MODELS"
SPACE_ENV = "SPACE_ID"  # set by Hugging Face in every Space's environment
SPACE_STORAGE = Path("/data")  # where a Space's persistent storage is mounted when one is attached
LOCAL = "local"  # the one owner of a studio that is not shared (and of the command line)
KEY_PATTERN = re.compile(r"[A-Za-z0-9_-]{16,128}")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class OwnerError(ValueError):
    """A request's owner key is missing or malformed (the message is one sentence for the user)."""


def on_space() -> bool:
    return bool(os.environ.get(SPACE_ENV))


def shared_server() -> bool:
    """Whether records and trained models belong to the browser that made them (see the module doc)."""
    value = os.environ.get(SHARED_ENV)
    if value is None:
        return on_space()
    if value.strip().lower() in _TRUE:
        return True
    if value.strip().lower() in _FALSE:
        return False
    raise OwnerError(f"{SHARED_ENV}={value!r} is neither 1 nor 0.")


def _persistent_storage() -> bool:
    return on_space() and SPACE_STORAGE.is_dir() and os.access(SPACE_STORAGE, os.W_OK)


def home() -> Path:
    """The user data folder (created on first use by whoever writes into it)."""
    if os.environ.get(HOME_ENV):
        return Path(os.environ[HOME_ENV]).expanduser()
    if _persistent_storage():
        return SPACE_STORAGE / "lstm-studio"
    return Path.home() / ".lstm-studio"


def user_models_dir() -> Path:
    if os.environ.get(USER_MODELS_ENV):
        return Path(os.environ[USER_MODELS_ENV]).expanduser()
    return home() / "models"


def storage_note() -> str:
    """A sentence for the page when what users keep will not survive a restart, else ""."""
    if on_space() and not os.environ.get(HOME_ENV) and not _persistent_storage():
        return ("This Space has no persistent storage: the library and trained models are lost when it restarts "
                "(attach persistent storage in the Space's settings to keep them).")
    return ""


def new_key() -> str:
    """A fresh random owner key for a browser or an API client (kept by them, never by the server)."""
    return secrets.token_urlsafe(24)


def owner_of(key: str | None) -> str:
    """The owner a request's key stands for: the local owner unless the server is shared; on a shared
    server a hash of the key (raises OwnerError when it is missing or malformed)."""
    if not shared_server():
        return LOCAL
    if not key or not KEY_PATTERN.fullmatch(key):
        raise OwnerError("This server is shared: send the owner key your browser was given (16 or more letters, "
                         "digits, - or _), or ask for a new one.")
    return "k" + hashlib.sha256(key.encode()).hexdigest()[:32]
