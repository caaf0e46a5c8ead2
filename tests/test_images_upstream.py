"""Image generation relayed to an OpenAI-compatible upstream (a real fake server)."""
from __future__ import annotations

import json
import urllib.request

import pytest

from tests.fakes.openai_upstream import FakeOpenAI


def _post(gateway, key: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(f"{gateway.base_url}/images/generations", data=json.dumps(body).encode(),
                                     headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


@pytest.fixture(scope="module")
def upstream(gateway):
    fake = FakeOpenAI().start()
    gateway.channel("images-up", "openai", ["pictures"], base_url=fake.base_url, key=fake.api_key,
                    model_map={"pictures": "dall-e-3"})
    yield fake, gateway.token("images-up-token")
    fake.stop()


def test_image_request_reaches_the_upstream_mapped_with_its_own_key(gateway, upstream):
    fake, key = upstream
    status, answer = _post(gateway, key, {"model": "pictures", "prompt": "A lighthouse at dusk",
                                          "size": "1024x1024", "x_vendor_option": {"k": [1, None]}})
    assert status == 200, answer
    sent = [r for r in fake.received if r.path == "/v1/images/generations"][-1]
    assert sent.headers["Authorization"] == f"Bearer {fake.api_key}"
    assert key not in json.dumps(sent.headers) and key not in json.dumps(sent.body)
    assert sent.body["model"] == "dall-e-3" and sent.body["x_vendor_option"] == {"k": [1, None]}
    assert isinstance(answer["created"], int) and answer["data"][0]["url"].startswith("http://127.0.0.1:")


def test_b64_json_images_come_back_as_the_upstream_drew_them(gateway, upstream):
    import base64

    _, key = upstream
    status, answer = _post(gateway, key, {"model": "pictures", "prompt": "A lighthouse",
                                          "response_format": "b64_json"})
    assert status == 200, answer
    assert base64.b64decode(answer["data"][0]["b64_json"]).startswith(b"\x89PNG\r\n\x1a\n")


def test_an_upstream_moderation_refusal_is_relayed_as_a_400(gateway, upstream):
    fake, key = upstream
    fake.block_images = True
    try:
        status, answer = _post(gateway, key, {"model": "pictures", "prompt": "Something refused"})
    finally:
        fake.block_images = False
    assert status == 400
    assert answer["error"]["code"] == "moderation_blocked"
    assert fake.api_key not in json.dumps(answer) and str(fake.port) not in json.dumps(answer)


def test_an_unreachable_image_upstream_is_a_502(gateway):
    gateway.channel("images-down", "openai", ["pictures-down"], base_url="http://127.0.0.1:1/v1", key="sk-x")
    key = gateway.token("images-down-token")
    status, answer = _post(gateway, key, {"model": "pictures-down", "prompt": "Anything"})
    assert status == 502 and answer["error"]["type"] == "upstream_error"
    assert "127.0.0.1:1" not in json.dumps(answer)
