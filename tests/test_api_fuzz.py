"""Every API endpoint of the real app, sent the kinds of bad values users and scripts send (a string
where a number goes, a list, None, NaN, infinities, huge numbers, an object, an empty string), one
parameter at a time with the others valid: each call either answers or says what was wrong in a
sentence; none ends in a bare "Error" (an exception the app did not turn into words)."""

from __future__ import annotations

import math

import pytest

BAD = ["abc", [1, 2], None, math.nan, math.inf, -1e30, 2**40, {"a": 1}, ""]

# valid, cheap arguments per endpoint (file parameters are left out: the client uploads files itself)
VALID = {
    "/generate_text": ["shakespeare-char", "To be", 3, 0.8, 0, 1.0, 1],
    "/generate_music": ["jsb-chorales-quarter", "Compose from scratch", None, "bach/bwv2.6", 1, 1, 1.0, 0, 1, 100.0],
    "/generate_handwriting": ["hershey-synthesis", "hi", 1.0, 1, "none", None, 5],
    "/generate_speech": ["espeak-tts", "hi.", 0, 1],
    "/explain": ["text", "", "To be", None, 2, 0, 1, "", "gradient_x_input"],
    "/probe": ["text", "", "To be, or not to be\nthat is", None, "newline", 3],
    "/intervene": ["text", "", 1, "1:2", "", 3],
    "/compare": ["text", "", "", "To be, or not", None],
    "/train": ["progress", "no-such-job", "text", "", None, "x", "tiny", 0.1, ""],
}
FILE_PARAMETERS = {("/generate_music", 2), ("/generate_handwriting", 5), ("/explain", 3), ("/probe", 3), ("/compare", 4),
                   ("/train", 4)}


@pytest.fixture(scope="module")
def client(tmp_path_factory, serve):
    from gradio_client import Client

    import app

    url = serve(app.build_demo(user_models_dir=tmp_path_factory.mktemp("user-models")))
    return Client(url, verbose=False)


def call(client, endpoint: str, args: list) -> str | None:
    """None when the call answered, else the error's message."""
    try:
        client.predict(*args, api_name=endpoint)
    except Exception as error:  # gradio_client's AppError carries the app's message
        return str(error)
    return None


def is_bare(message: str | None) -> bool:
    return message is not None and (len(message.strip()) < 12 or "has raised an exception" in message
                                    or message.strip() in ("None", "Error"))


@pytest.mark.parametrize("endpoint", list(VALID))
def test_bad_values_in_every_parameter_get_words_not_a_bare_error(client, endpoint):
    baseline = call(client, endpoint, VALID[endpoint])
    assert baseline is None or endpoint == "/train", baseline  # the valid call works (/train: "No training ...")
    bare = []
    for position in range(len(VALID[endpoint])):
        if (endpoint, position) in FILE_PARAMETERS:
            continue
        for value in BAD:
            args = list(VALID[endpoint])
            args[position] = value
            message = call(client, endpoint, args)
            if is_bare(message):
                bare.append((position, value, message))
    assert bare == []
