"""The browser's owner key (studio.owners): one random key kept in the browser's local storage, made on
its first visit, sent with every request that reads or writes what a user keeps (library records,
trained and imported models). Off a shared server every browser is the local owner and the key is
never needed.

    key = owner.browser_key()             # once, inside the app's gr.Blocks (app.py)
    owner.issue_on_load(demo, key)        # after the layout: a browser without a key gets one
    fn(..., key)  ->  owners.owner_of(key)   # in a handler that takes `key` as an input
    owner.page_key()                      # the page's key component, for builders called after browser_key()
    key_position / key_parameter          # where the key sits among a handler's arguments (studio.ui.common adds it)
"""

from __future__ import annotations

import inspect

import gradio as gr

from studio import owners

STORAGE_KEY = "lstm-studio-owner"  # the browser's localStorage entry


def browser_key() -> gr.BrowserState:
    """The component holding this browser's key ("" until issue_on_load has given one)."""
    key = gr.BrowserState("", storage_key=STORAGE_KEY)
    page = gr.context.Context.root_block
    if page is not None:  # builders deep inside a tab find it without every create_tab passing it on
        page.studio_owner_key = key
    return key


def page_key() -> gr.BrowserState | None:
    """The key component of the Blocks being built (None before browser_key() was called in it)."""
    return getattr(gr.context.Context.root_block, "studio_owner_key", None)


def _kept_or_new(key):
    return key if isinstance(key, str) and owners.KEY_PATTERN.fullmatch(key) else owners.new_key()


def issue_on_load(demo: gr.Blocks, key: gr.BrowserState) -> None:
    """On each page load: the browser keeps its key, or gets a new one (a malformed one is replaced)."""
    demo.load(_kept_or_new, inputs=key, outputs=key, api_visibility="private", queue=False)


def owner(key) -> str:
    """The owner a request stands for (gr.Error with one sentence when a shared server gets no valid key)."""
    try:
        return owners.owner_of(key if isinstance(key, str) else None)
    except owners.OwnerError as error:
        raise gr.Error(str(error)) from None


def key_parameter(wrapper, fn, at: int | None):
    """The API names the added last input `owner_key`, optional (None): an API client on a shared server
    passes the key it was given; one that does not sees the shipped and published models only."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return wrapper
    parameters = list(signature.parameters.values())
    if any(p.kind not in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in parameters):
        return wrapper
    at = len(parameters) if at is None else at  # the end, or before the defaults gradio fills (key_position)
    key = inspect.Parameter("owner_key", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None)
    wrapper.__signature__ = signature.replace(parameters=[*parameters[:at], key, *parameters[at:]])
    return wrapper


def key_position(fn, values: int) -> int | None:
    """The added key's place among the handler's arguments when a defaulted parameter follows the `values`
    ones the inputs fill: gradio fills it with its default, so the end holds that default, not the key
    (the lab's `on_start(..., is_sweep=False)` once took the key as is_sweep). None: the key is last."""
    try:
        parameters, hints = inspect.signature(fn).parameters.values(), gr.utils.get_type_hints(fn)
    except (TypeError, ValueError, NameError):
        return None
    filled = 0
    for at, p in enumerate(parameters):
        if p.kind not in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            return None
        if filled == values and p.default is not p.empty:
            return at
        hint = str(hints.get(p.name, ""))  # what gradio passes itself: progress, the request, event data, a login
        given = isinstance(p.default, gr.Progress) or any(n in hint for n in ("Request", "Data", "OAuth", "Header"))
        filled += 0 if given else 1
    return None
