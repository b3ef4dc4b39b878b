"""The browser's owner key (studio.owners): one random key kept in the browser's local storage, made on
its first visit, sent with every request that reads or writes what a user keeps (library records,
trained and imported models). Off a shared server every browser is the local owner and the key is
never needed.

    key = owner.browser_key()             # once, inside the app's gr.Blocks (app.py)
    owner.issue_on_load(demo, key)        # after the layout: a browser without a key gets one
    fn(..., key)  ->  owners.owner_of(key)   # in a handler that takes `key` as an input
    owner.page_key()                      # the page's key component, for builders called after browser_key()
"""

from __future__ import annotations

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
