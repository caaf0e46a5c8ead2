"""HEAD on every GET route (RFC 9110 9.3.2: a general-purpose server supports it): the
headers GET would send, Content-Length and Content-Range included, and no body. Download
tools and players ask HEAD first for a video's size and range support."""
from __future__ import annotations

import http.client
import json
import time
from urllib.parse import urlsplit

import pytest

from server.store.db import open_db
from tests.conftest import start_gateway, stop_gateway

pytestmark = pytest.mark.timeout(90)

MODEL = "head-video"


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """A gateway and one completed simulator video: (gateway, key, video id)."""
    db_path = str(tmp_path_factory.mktemp("head") / "st-ai.db")
    open_db(db_path).close()
    gw = start_gateway(db_path, "--video-poll-interval", "0.2", env={"ST_AI_SIMULATOR_VIDEO_SECONDS": "0.5"})
    gw.channel("sim", "simulator", [MODEL])
    key = gw.token("head")
    status, _, body = _call(gw, key, "POST", "/v1/videos",
                            json.dumps({"model": MODEL, "prompt": "a lighthouse", "seconds": "1", "size": "320x240"}))
    assert status == 200, body
    video_id = json.loads(body)["id"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        _, _, body = _call(gw, key, "GET", f"/v1/videos/{video_id}")
        if json.loads(body)["status"] in ("completed", "failed"):
            break
        time.sleep(0.2)
    assert json.loads(body)["status"] == "completed", body
    yield gw, key, video_id
    stop_gateway(gw)


def _call(gw, key: str, method: str, path: str, body: str | None = None,
          headers: dict | None = None) -> tuple[int, dict, bytes]:
    url = urlsplit(gw.http_url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    try:
        conn.request(method, path, body=body, headers={"Authorization": f"Bearer {key}",
                                                       "Content-Type": "application/json", **(headers or {})})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


@pytest.mark.parametrize("path, headers", [
    ("/v1/videos/{id}/content", {}),
    ("/v1/videos/{id}/content", {"Range": "bytes=10-19"}),
    ("/v1/videos/{id}/content", {"Range": "bytes=-7"}),
    ("/v1/videos/{id}/content?variant=thumbnail", {}),
    ("/v1/videos/{id}", {}),
    ("/v1/videos", {}),
    ("/v1/models", {}),
    ("/v1/models/" + MODEL, {}),
], ids=["content", "content range", "content suffix range", "thumbnail", "video", "video list", "models", "model"])
def test_head_answers_what_get_would_without_the_body(video, path, headers):
    gw, key, video_id = video
    path = path.format(id=video_id)
    get_status, get_headers, get_body = _call(gw, key, "GET", path, headers=headers)
    status, head_headers, body = _call(gw, key, "HEAD", path, headers=headers)
    assert (status, body) == (get_status, b""), (status, body[:200])
    assert status in (200, 206)
    assert head_headers["content-length"] == get_headers["content-length"] == str(len(get_body))
    for name in ("content-type", "content-range", "accept-ranges"):
        assert head_headers.get(name) == get_headers.get(name), name
    assert head_headers["x-request-id"] != get_headers["x-request-id"]


def test_head_of_an_unsatisfiable_range_is_the_416_with_the_files_size(video):
    gw, key, video_id = video
    _, get_headers, full = _call(gw, key, "GET", f"/v1/videos/{video_id}/content")
    status, headers, body = _call(gw, key, "HEAD", f"/v1/videos/{video_id}/content",
                                  headers={"Range": f"bytes={len(full)}-"})
    assert (status, body, headers["content-range"]) == (416, b"", f"bytes */{len(full)}")


def test_head_without_a_token_is_the_401_get_would_be(video):
    gw, _, video_id = video
    status, _, body = _call(gw, "sk-wrong", "HEAD", f"/v1/videos/{video_id}/content")
    assert (status, body) == (401, b"")
