"""An OpenAI-compatible server that hands out image URLs on its own host (a self-hosted
server does): the URL names the channel's base URL, so st-ai fetches the image and
serves it from its own address. The client sees st-ai's URL, a real PNG behind it, and
nowhere the upstream's host and port."""
from __future__ import annotations

import json
import urllib.request

import pytest

from server.store.db import open_db
from tests.conftest import start_gateway, stop_gateway
from tests.fakes.openai_upstream import FakeOpenAI

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    fake = FakeOpenAI().start()
    db_path = str(tmp_path_factory.mktemp("img-urls") / "st-ai.db")
    open_db(db_path).close()
    gw = start_gateway(db_path)
    gw.channel("self-hosted", "openai", ["dall-e-2"], base_url=fake.base_url, key=fake.api_key)
    yield gw, gw.token("painter"), fake
    stop_gateway(gw)
    fake.stop()


def _post(gw, key: str, body: dict) -> tuple[int, str]:
    request = urllib.request.Request(gw.base_url + "/images/generations", data=json.dumps(body).encode(),
                                     headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=15) as response:
        return response.status, response.read().decode()


def test_an_image_url_on_the_upstreams_own_host_is_served_by_st_ai(setup):
    gw, key, fake = setup
    status, text = _post(gw, key, {"model": "dall-e-2", "prompt": "a heron", "n": 2})
    assert status == 200
    assert f":{fake.port}" not in text and fake.base_url not in text, text
    urls = [item["url"] for item in json.loads(text)["data"]]
    assert len(urls) == 2 and all(url.startswith(gw.http_url + "/v1/images/files/") for url in urls), urls
    with urllib.request.urlopen(urls[0], timeout=10) as response:
        assert response.read().startswith(b"\x89PNG\r\n\x1a\n")


def test_an_inline_image_is_left_as_it_is(setup):
    gw, key, _ = setup
    status, text = _post(gw, key, {"model": "dall-e-2", "prompt": "a heron", "response_format": "b64_json"})
    assert status == 200 and json.loads(text)["data"][0]["b64_json"]
