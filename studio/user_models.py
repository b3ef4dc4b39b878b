"""The models users trained or imported, per owner (studio.owners), loaded when asked and held in a
bounded cache.

Where they live:
    off a shared server   user_models_dir()/                 every model is the local owner's (as ever)
    on a shared server    user_models_dir()/<owner>/          one browser's own models
                          user_models_dir()/public/           models their owners published: listed for all

    LSTM_STUDIO_LOADED_USER_MODELS   how many user models stay loaded at once (default 8): the least
                                     recently used is let go (loaded again from disk when asked)

Each tab's model table (`ModelTable`) is its shipped models plus the models of the owner of the
request being answered (`current_owner`, set by studio.ui.common.apply_request_limits from the
browser's key); another owner's model is not listed and its name is refused as unknown.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import MutableMapping
from contextvars import ContextVar
from pathlib import Path

from studio import checkpoint, owners

LOADED_MAX = int(float(os.environ.get("LSTM_STUDIO_LOADED_USER_MODELS", "8")))
PUBLIC = "public"  # the folder of published models on a shared server

# the owner of the request this thread answers: None = no valid key on a shared server (shipped and
# published models only)
current_owner: ContextVar[str | None] = ContextVar("current_owner", default=owners.LOCAL)


def owner_or_none(key) -> str | None:
    """The owner a key stands for, or None when a shared server gets no valid key."""
    try:
        return owners.owner_of(key if isinstance(key, str) else None)
    except owners.OwnerError:
        return None


class UserModels:
    """Every owner's models under `root`, listed from disk and loaded on demand (LRU of LOADED_MAX)."""

    def __init__(self, root, shared: bool | None = None, loaded_max: int = LOADED_MAX, device=None):
        self.root = Path(root)
        self.shared = owners.shared_server() if shared is None else shared
        self.loaded_max, self.device = loaded_max, device
        self._loaded: OrderedDict[str, object] = OrderedDict()  # str(stem) -> LoadedModel
        self._listings: dict[Path, tuple[int, dict]] = {}  # folder -> (its mtime, scan)
        self._lock = threading.Lock()

    def folder_of(self, owner: str | None) -> Path | None:
        """Where this owner's models go (None: an owner-less request on a shared server has none)."""
        if not self.shared:
            return self.root
        return None if owner is None else self.root / owner

    def folders(self, owner: str | None) -> list[Path]:
        """The folders whose models this owner sees: their own, then (shared) the published ones."""
        own = self.folder_of(owner)
        return [f for f in [own, self.root / PUBLIC if self.shared else None] if f is not None]

    def _scan(self, folder: Path) -> dict:
        """{domain: {name: stem}} of a folder, read again only when the folder changed."""
        try:
            mtime = folder.stat().st_mtime_ns
        except OSError:
            return {}
        cached = self._listings.get(folder)
        if cached is None or cached[0] != mtime:
            cached = (mtime, checkpoint.scan(folder)[0])
            self._listings[folder] = cached
        return cached[1]

    def stems(self, domain: str, owner: str | None) -> dict[str, Path]:
        """{name: stem} of this owner's models of a domain (their own first, then published)."""
        found: dict[str, Path] = {}
        for folder in self.folders(owner):
            for name, stem in self._scan(folder).get(domain, {}).items():
                found.setdefault(name, stem)
        return found

    def load(self, domain_module, stem: Path):
        key = str(stem)
        with self._lock:
            if key in self._loaded:
                self._loaded.move_to_end(key)
                return self._loaded[key]
        from studio.train import pick_device

        model = domain_module.load(stem, device=self.device or pick_device())
        with self._lock:
            self._loaded[key] = model
            while len(self._loaded) > self.loaded_max:
                self._loaded.popitem(last=False)
        return model

    def loaded_count(self) -> int:
        return len(self._loaded)

    def publish(self, domain: str, owner: str | None, name: str) -> str:
        """Move an owner's model to the published folder (a sentence saying what happened; ValueError
        with one otherwise)."""
        if not self.shared:
            raise ValueError("This server is not shared: every model here is already listed for everyone.")
        stem = self._scan(self.folder_of(owner) or self.root / "-").get(domain, {}).get(name) if owner else None
        if stem is None:
            raise ValueError(f"You have no {domain} model {name!r} to publish.")
        public = self.root / PUBLIC
        public.mkdir(parents=True, exist_ok=True)
        if checkpoint.paths(public / name)[0].exists():
            raise ValueError(f"A published model is already named {name!r}; train yours under another name.")
        for path in checkpoint.paths(stem):
            path.rename(public / path.name)
        with self._lock:
            self._loaded.pop(str(stem), None)
        return f"{name} is published: every visitor now finds it in the list."


class ModelTable(MutableMapping):
    """One tab's models as the request's owner sees them: the shipped ones, then the owner's user
    models (loaded when first asked for). Setting a name adds a shipped (server-wide) model."""

    def __init__(self, domain_module, shipped: dict, users: UserModels | None):
        self.domain, self.shipped, self.users = domain_module, dict(shipped), users

    def _user_stems(self) -> dict[str, Path]:
        if self.users is None:
            return {}
        return {n: s
                for n, s in self.users.stems(self.domain.NAME, current_owner.get()).items() if n not in self.shipped}

    def user_names(self) -> list[str]:
        return list(self._user_stems())

    def __getitem__(self, name):
        if name in self.shipped:
            return self.shipped[name]
        stem = self._user_stems().get(name) if isinstance(name, str) else None
        if stem is None:
            raise KeyError(name)
        return self.users.load(self.domain, stem)

    def __contains__(self, name) -> bool:  # without loading the model
        return name in self.shipped or (isinstance(name, str) and name in self._user_stems())

    def __iter__(self):
        return iter([*self.shipped, *self._user_stems()])

    def __len__(self) -> int:
        return len(self.shipped) + len(self._user_stems())

    def __setitem__(self, name, model) -> None:
        self.shipped[name] = model

    def __delitem__(self, name) -> None:
        del self.shipped[name]
