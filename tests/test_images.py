"""POST /v1/images/generations against a real `st-ai serve` with a simulator channel,
over plain HTTP and through the official `openai` SDK (sync and async): URLs st-ai hands
out are fetchable without a token and are real PNGs of the asked size, b64_json decodes
to a PNG, n images come back; bad requests are 400 with `param`, unknown models 404,
models the token may not use 403, and image file ids that try path tricks 404 JSON."""
from __future__ import annotations

import asyncio
import base64
import http.client
import json
import struct
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zlib
from dataclasses import dataclass

import pytest
from openai import (AsyncOpenAI, AuthenticationError, BadRequestError, NotFoundError, OpenAI,
                    PermissionDeniedError)

from server.store.db import open_db
from tests.conftest import start_gateway, stop_gateway

TIMEOUT = 30.0
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FILES_PATH = "/v1/images/files/"

pytestmark = pytest.mark.timeout(120)


@dataclass(frozen=True)
class Setup:
    http_url: str
    base_url: str
    model: str          # an image model of the simulator channel
    other_model: str    # the only model `limited_key` may use
    key: str            # a token for every model
    limited_key: str

    def client(self, key: str | None = None) -> OpenAI:
        return OpenAI(base_url=self.base_url, api_key=key or self.key, timeout=TIMEOUT, max_retries=0)

    def async_client(self) -> AsyncOpenAI:
        return AsyncOpenAI(base_url=self.base_url, api_key=self.key, timeout=TIMEOUT, max_retries=0)


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> Setup:
    """A gateway of its own (its asset directory in a temporary folder) with one
    simulator channel serving two image models."""
    folder = tmp_path_factory.mktemp("images")
    db_path = str(folder / "st-ai.db")
    open_db(db_path).close()
    gateway = start_gateway(db_path, "--assets-dir", str(folder / "assets"))
    try:
        tag = uuid.uuid4().hex[:8]
        model, other = f"img-sim-{tag}", f"img-sim-other-{tag}"
        gateway.channel(f"img-sim-{tag}", "simulator", [model, other])
        yield Setup(gateway.http_url, gateway.base_url, model, other,
                    key=gateway.token(f"img-all-{tag}"),
                    limited_key=gateway.token(f"img-limited-{tag}", models=[other]))
    finally:
        stop_gateway(gateway)


# -- helpers ----------------------------------------------------------------------

def post(setup: Setup, body, key: str | None = None, raw: bytes | None = None) -> tuple[int, dict]:
    data = raw if raw is not None else json.dumps(body).encode()
    request = urllib.request.Request(
        setup.base_url + "/images/generations", data=data, method="POST",
        headers={"Authorization": f"Bearer {key or setup.key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.load(error)


def get_raw(setup: Setup, path: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    """GET `path` exactly as written (no client-side normalisation), no token."""
    host = urllib.parse.urlsplit(setup.http_url).netloc
    connection = http.client.HTTPConnection(host, timeout=TIMEOUT)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def fetch(url: str) -> tuple[int, str, bytes]:
    """A plain GET of a URL st-ai handed out: no Authorization header at all."""
    with urllib.request.urlopen(urllib.request.Request(url), timeout=TIMEOUT) as response:
        return response.status, response.headers.get("Content-Type", ""), response.read()


def png_info(data: bytes) -> tuple[int, int]:
    """Check a PNG chunk by chunk (signature, CRCs, IHDR first, IEND last, IDAT inflates
    to the right size) and return its (width, height)."""
    assert data[:8] == PNG_SIGNATURE, data[:16]
    assert data[12:16] == b"IHDR"
    pos, kinds, idat = 8, [], b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(kind + body), kind
        kinds.append(kind)
        if kind == b"IDAT":
            idat += body
        pos += 12 + length
    assert pos == len(data)
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND" and b"IDAT" in kinds
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour]
    assert depth == 8
    assert len(zlib.decompress(idat)) == height * (1 + channels * width)
    return width, height


def assert_error(status: int, body: dict, expected_status: int, param: str | None = None) -> dict:
    assert status == expected_status, body
    error = body["error"]
    assert isinstance(error["message"], str) and error["message"]
    assert error["type"]
    if param is not None:
        assert error["param"] == param, error
    return error


# -- REST: url and b64_json -----------------------------------------------------------

def test_rest_url_is_fetchable_without_token_and_is_a_png_of_the_asked_size(setup):
    status, answer = post(setup, {"model": setup.model, "prompt": "a lighthouse at dusk",
                                  "size": "96x64", "response_format": "url"})
    assert status == 200, answer
    assert isinstance(answer["created"], int) and not isinstance(answer["created"], bool)
    assert answer["created"] > 1_600_000_000
    [image] = answer["data"]
    assert "b64_json" not in image
    assert isinstance(image["revised_prompt"], str) and image["revised_prompt"]
    url = image["url"]
    assert url.startswith(setup.http_url + FILES_PATH), url
    status, content_type, data = fetch(url)
    assert status == 200
    assert content_type.startswith("image/png")
    assert png_info(data) == (96, 64)


def test_rest_url_is_the_default_response_format(setup):
    status, answer = post(setup, {"model": setup.model, "prompt": "default format", "size": "32x32"})
    assert status == 200, answer
    [image] = answer["data"]
    assert image["url"].startswith(setup.http_url + FILES_PATH)
    assert png_info(fetch(image["url"])[2]) == (32, 32)


def test_rest_url_download_has_content_length_and_is_stable(setup):
    status, answer = post(setup, {"model": setup.model, "prompt": "twice", "size": "48x40"})
    assert status == 200, answer
    path = urllib.parse.urlsplit(answer["data"][0]["url"]).path
    first = get_raw(setup, path)
    second = get_raw(setup, path)
    assert first[0] == second[0] == 200
    assert int(first[1]["content-length"]) == len(first[2])
    assert first[2] == second[2]
    assert png_info(first[2]) == (48, 40)


def test_rest_b64_json_decodes_to_a_png_of_the_asked_size(setup):
    status, answer = post(setup, {"model": setup.model, "prompt": "a teapot", "size": "80x48",
                                  "response_format": "b64_json"})
    assert status == 200, answer
    [image] = answer["data"]
    assert "url" not in image
    assert image["revised_prompt"]
    assert png_info(base64.b64decode(image["b64_json"], validate=True)) == (80, 48)


def test_rest_n_2_gives_two_different_images(setup):
    status, answer = post(setup, {"model": setup.model, "prompt": "two birds", "n": 2, "size": "40x40",
                                  "response_format": "b64_json"})
    assert status == 200, answer
    assert len(answer["data"]) == 2
    images = [base64.b64decode(item["b64_json"]) for item in answer["data"]]
    assert all(png_info(png) == (40, 40) for png in images)
    assert images[0] != images[1]
    assert all(item["revised_prompt"] for item in answer["data"])


def test_rest_n_2_urls_are_distinct_and_both_fetchable(setup):
    status, answer = post(setup, {"model": setup.model, "prompt": "two boats", "n": 2, "size": "24x24"})
    assert status == 200, answer
    urls = [item["url"] for item in answer["data"]]
    assert len(urls) == 2 and urls[0] != urls[1]
    for url in urls:
        assert png_info(fetch(url)[2]) == (24, 24)


def test_rest_model_may_be_left_out(setup):
    status, answer = post(setup, {"prompt": "no model given", "size": "16x16", "response_format": "b64_json"})
    assert status == 200, answer
    assert png_info(base64.b64decode(answer["data"][0]["b64_json"])) == (16, 16)


def test_rest_quality_and_style_are_accepted(setup):
    status, answer = post(setup, {"model": setup.model, "prompt": "styled", "size": "16x16",
                                  "quality": "hd", "style": "natural", "response_format": "b64_json"})
    assert status == 200, answer
    assert len(answer["data"]) == 1


# -- REST: validation and access ---------------------------------------------------------

@pytest.mark.parametrize("body, param", [
    pytest.param({}, "prompt", id="missing-prompt"),
    pytest.param({"prompt": ""}, "prompt", id="empty-prompt"),
    pytest.param({"prompt": "   "}, "prompt", id="blank-prompt"),
    pytest.param({"prompt": "x", "n": 0}, "n", id="n-0"),
    pytest.param({"prompt": "x", "n": 11}, "n", id="n-11"),
    pytest.param({"prompt": "x", "n": -1}, "n", id="n-negative"),
    pytest.param({"prompt": "x", "response_format": "gif"}, "response_format", id="format-gif"),
    pytest.param({"prompt": 123}, "prompt", id="prompt-number"),
    pytest.param({"prompt": ["x"]}, "prompt", id="prompt-array"),
    pytest.param({"prompt": "x", "n": "two"}, "n", id="n-string"),
    pytest.param({"prompt": "x", "n": 1.5}, "n", id="n-float"),
    pytest.param({"prompt": "x", "n": True}, "n", id="n-bool"),
    pytest.param({"prompt": "x", "size": 1024}, "size", id="size-number"),
    pytest.param({"prompt": "x", "size": "big"}, "size", id="size-not-wxh"),
    pytest.param({"prompt": "x", "size": "99999x99999"}, "size", id="size-too-large"),
    pytest.param({"prompt": "x", "response_format": 5}, "response_format", id="format-number"),
    pytest.param({"prompt": "x", "model": 5}, "model", id="model-number"),
])
def test_rest_invalid_request_is_400_with_param(setup, body, param):
    body = {"model": setup.model, **body} if "model" not in body else body
    status, answer = post(setup, body)
    assert_error(status, answer, 400, param)
    assert answer["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize("raw", [b"", b"[1]", b"{not json", b"null"])
def test_rest_body_that_is_not_a_json_object_is_400(setup, raw):
    status, answer = post(setup, None, raw=raw)
    assert_error(status, answer, 400)


def test_rest_unknown_model_is_404(setup):
    status, answer = post(setup, {"model": f"no-such-image-model-{uuid.uuid4().hex[:6]}", "prompt": "x"})
    error = assert_error(status, answer, 404, "model")
    assert error["code"] == "model_not_found"


def test_rest_model_not_allowed_for_token_is_403(setup):
    status, answer = post(setup, {"model": setup.model, "prompt": "x", "size": "16x16"}, key=setup.limited_key)
    error = assert_error(status, answer, 403, "model")
    assert error["code"] == "model_not_allowed"
    # the model it may use works
    status, answer = post(setup, {"model": setup.other_model, "prompt": "x", "size": "16x16",
                                  "response_format": "b64_json"}, key=setup.limited_key)
    assert status == 200, answer


def test_rest_bad_token_is_401(setup):
    status, answer = post(setup, {"model": setup.model, "prompt": "x"}, key="sk-not-a-real-key")
    error = assert_error(status, answer, 401)
    assert error["code"] == "invalid_api_key"


# -- image files: path tricks are 404 JSON, never 500 ------------------------------------

def _real_file_name(setup: Setup) -> str:
    status, answer = post(setup, {"model": setup.model, "prompt": "the real one", "size": "16x16"})
    assert status == 200, answer
    return answer["data"][0]["url"].rsplit("/", 1)[1]


@pytest.mark.parametrize("tail", [
    pytest.param("../x", id="dotdot"),
    pytest.param("../../st-ai.db", id="dotdot-db"),
    pytest.param("..%2Fx", id="encoded-slash"),
    pytest.param("..%2F..%2Fst-ai.db", id="encoded-dotdot-db"),
    pytest.param("%2e%2e%2f%2e%2e%2fetc%2fpasswd", id="encoded-dots"),
    pytest.param("..", id="bare-dotdot"),
    pytest.param("%2e%2e", id="encoded-bare-dotdot"),
    pytest.param(".", id="dot"),
    pytest.param("%00", id="nul"),
    pytest.param("img_%00.png", id="nul-inside"),
    pytest.param("a" * 5000, id="very-long"),
    pytest.param("img_" + "f" * 4000 + ".png", id="very-long-img"),
    pytest.param("img_abc.png", id="wrong-pattern"),
    pytest.param("img_" + "0" * 32 + "-" + "0" * 12 + ".png", id="well-formed-unknown"),
    pytest.param("img_" + "A" * 32 + "-" + "B" * 12 + ".png", id="upper-hex"),
    pytest.param("img_" + "0" * 32 + "-" + "0" * 12 + ".jpg", id="wrong-suffix"),
    pytest.param("%E2%98%83", id="unicode"),
    pytest.param("x;rm%20-rf", id="shell-ish"),
])
def test_image_file_path_tricks_are_404_json(setup, tail):
    status, headers, body = get_raw(setup, FILES_PATH + tail)
    assert status == 404, (status, body[:200])
    assert headers["content-type"].startswith("application/json")
    error = json.loads(body)["error"]
    assert error["message"] and error["type"]


@pytest.mark.parametrize("decorate", [
    pytest.param(lambda name: name + "%0A", id="trailing-newline"),
    pytest.param(lambda name: name + "%00", id="trailing-nul"),
    pytest.param(lambda name: name + ".png", id="double-suffix"),
    pytest.param(lambda name: "..%2Fimages%2F" + name, id="dotdot-to-itself"),
    pytest.param(lambda name: "%2E%2E%2F" + name, id="encoded-dotdot-prefix"),
    pytest.param(lambda name: name.upper(), id="upper-case"),
    pytest.param(lambda name: name[:-5] + ".png", id="one-char-short"),
])
def test_image_file_near_misses_of_a_real_file_are_404_json(setup, decorate):
    name = _real_file_name(setup)
    assert get_raw(setup, FILES_PATH + name)[0] == 200
    status, headers, body = get_raw(setup, FILES_PATH + decorate(name))
    assert status == 404, (status, body[:200])
    assert json.loads(body)["error"]["message"]


# -- the official openai SDK ------------------------------------------------------------------

def test_sdk_generate_url_is_fetchable_and_a_png_of_the_asked_size(setup):
    with setup.client() as client:
        answer = client.images.generate(model=setup.model, prompt="an sdk owl", size="64x32",
                                        response_format="url")
    assert isinstance(answer.created, int)
    [image] = answer.data
    assert image.b64_json is None
    assert image.revised_prompt
    assert image.url.startswith(setup.http_url + FILES_PATH)
    assert png_info(fetch(image.url)[2]) == (64, 32)


def test_sdk_generate_b64_json_n_2(setup):
    with setup.client() as client:
        answer = client.images.generate(model=setup.model, prompt="two sdk owls", size="32x48", n=2,
                                        response_format="b64_json")
    assert isinstance(answer.created, int)
    assert len(answer.data) == 2
    for image in answer.data:
        assert image.url is None
        assert image.revised_prompt
        assert png_info(base64.b64decode(image.b64_json)) == (32, 48)


def test_sdk_generate_with_quality_and_style(setup):
    with setup.client() as client:
        answer = client.images.generate(model=setup.model, prompt="quality", size="16x16", quality="hd",
                                        style="vivid", response_format="b64_json")
    assert png_info(base64.b64decode(answer.data[0].b64_json)) == (16, 16)


def test_async_sdk_generate_url_and_b64_json(setup):
    async def main():
        async with setup.async_client() as client:
            return await asyncio.gather(
                client.images.generate(model=setup.model, prompt="async url", size="40x24"),
                client.images.generate(model=setup.model, prompt="async b64", size="24x40",
                                       response_format="b64_json"))

    by_url, inline = asyncio.run(asyncio.wait_for(main(), TIMEOUT))
    assert png_info(fetch(by_url.data[0].url)[2]) == (40, 24)
    assert png_info(base64.b64decode(inline.data[0].b64_json)) == (24, 40)


@pytest.mark.parametrize("kwargs, param", [
    pytest.param({"prompt": ""}, "prompt", id="empty-prompt"),
    pytest.param({"prompt": "x", "n": 0}, "n", id="n-0"),
    pytest.param({"prompt": "x", "n": 11}, "n", id="n-11"),
    pytest.param({"prompt": "x", "response_format": "gif"}, "response_format", id="format-gif"),
    pytest.param({"prompt": "x", "size": "huge"}, "size", id="size"),
])
def test_sdk_invalid_request_raises_bad_request_with_param(setup, kwargs, param):
    with setup.client() as client, pytest.raises(BadRequestError) as caught:
        client.images.generate(model=setup.model, **kwargs)
    assert caught.value.status_code == 400
    assert caught.value.param == param


def test_sdk_unknown_model_not_allowed_model_and_bad_key(setup):
    with setup.client() as client, pytest.raises(NotFoundError) as caught:
        client.images.generate(model="no-such-sdk-image-model", prompt="x")
    assert caught.value.code == "model_not_found"
    with setup.client(setup.limited_key) as client, pytest.raises(PermissionDeniedError) as caught:
        client.images.generate(model=setup.model, prompt="x")
    assert caught.value.code == "model_not_allowed"
    with setup.client("sk-not-a-real-key") as client, pytest.raises(AuthenticationError):
        client.images.generate(model=setup.model, prompt="x")
