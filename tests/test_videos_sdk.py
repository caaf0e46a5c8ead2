"""Video generation against a real `st-ai serve` with a simulator channel: the
documented Python client flow over plain HTTP (submit, poll printing status and
progress, download /content to a file), and the same through the official `openai`
SDK, unchanged: create (multipart, with and without an uploaded input_reference),
retrieve, create_and_poll (driven by `openai-poll-after-ms`), download_content (video
and thumbnail), list with paging, delete, remix, and the async client.

The gateway polls its tasks every 0.2 s and the simulator renders in 1 s, so a task
completes in about a second; videos are small (160x96, 1 s, 12 fps) except in the test
of the documented example, which uses its exact values."""
from __future__ import annotations

import asyncio
import base64
import json
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import av
import openai
import pytest
from openai import AsyncOpenAI, ConflictError, NotFoundError, OpenAI

from server.store.db import open_db
from tests.conftest import start_gateway, stop_gateway

TIMEOUT = 30.0          # every HTTP request and SDK client
TASK_DEADLINE = 30.0    # a tiny simulator video completes in ~1 s
POLL_INTERVAL = 0.3     # the documented client's polling interval, in seconds
GATEWAY_POLL_MS = 200   # --video-poll-interval 0.2, as `openai-poll-after-ms`
MODEL = "kling-v1"
SMALL = {"duration": 1.0, "width": 160, "height": 96, "fps": 12}
# A 1x1 opaque red PNG, uploaded as the SDK's input_reference.
PNG_1X1 = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108020000009077"
    "53de0000000c4944415478da63f8cfc000000301010018dd8db00000000049454e44ae426082")

pytestmark = [pytest.mark.timeout(180), pytest.mark.filterwarnings("ignore::DeprecationWarning")]


@dataclass(frozen=True)
class Setup:
    http_url: str
    base_url: str
    key: str          # the token most tests use
    other_key: str    # a second token, for "only the token's own tasks"

    def client(self, key: str | None = None, **kwargs) -> OpenAI:
        return OpenAI(base_url=self.base_url, api_key=key or self.key, timeout=TIMEOUT, max_retries=0, **kwargs)

    def async_client(self, key: str | None = None) -> AsyncOpenAI:
        return AsyncOpenAI(base_url=self.base_url, api_key=key or self.key, timeout=TIMEOUT, max_retries=0)


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> Setup:
    folder = tmp_path_factory.mktemp("videos-sdk")
    db_path = str(folder / "st-ai.db")
    open_db(db_path).close()
    gateway = start_gateway(db_path, "--video-poll-interval", str(GATEWAY_POLL_MS / 1000),
                            "--assets-dir", str(folder / "assets"),
                            env={"ST_AI_SIMULATOR_VIDEO_SECONDS": "1"})
    try:
        tag = uuid.uuid4().hex[:8]
        gateway.channel(f"video-sim-{tag}", "simulator", [MODEL])
        yield Setup(gateway.http_url, gateway.base_url, key=gateway.token(f"video-a-{tag}"),
                    other_key=gateway.token(f"video-b-{tag}"))
    finally:
        stop_gateway(gateway)


# -- plain HTTP helpers -----------------------------------------------------------------

def http(setup: Setup, method: str, path: str, body: dict | None = None, key: str | None = None,
         headers: dict | None = None) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(
        setup.base_url + path, method=method, data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {key or setup.key}", "Content-Type": "application/json",
                 **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()


def http_json(setup: Setup, method: str, path: str, body: dict | None = None, key: str | None = None):
    status, headers, raw = http(setup, method, path, body, key)
    return status, headers, json.loads(raw)


def wait_completed(setup: Setup, video_id: str, key: str | None = None) -> dict:
    deadline = time.monotonic() + TASK_DEADLINE
    while time.monotonic() < deadline:
        status, _, video = http_json(setup, "GET", f"/videos/{video_id}", key=key)
        assert status == 200, video
        if video["status"] in ("completed", "failed"):
            assert video["status"] == "completed", video
            return video
        time.sleep(0.1)
    raise AssertionError(f"video {video_id} did not complete in {TASK_DEADLINE} s")


def download(setup: Setup, video_id: str, query: str = "", key: str | None = None) -> tuple[dict, bytes]:
    status, headers, data = http(setup, "GET", f"/videos/{video_id}/content{query}", key=key)
    assert status == 200, data[:300]
    assert int(headers["content-length"]) == len(data)
    return headers, data


def submit_small(setup: Setup, prompt: str, key: str | None = None) -> dict:
    status, _, video = http_json(setup, "POST", "/videos", {"model": MODEL, "prompt": prompt, **SMALL}, key)
    assert status == 200, video
    return video


def is_mp4(data: bytes) -> bool:
    return len(data) > 8 and data[4:8] == b"ftyp"


def is_image(data: bytes) -> bool:
    return (data.startswith(b"\x89PNG\r\n\x1a\n") or data.startswith(b"\xff\xd8\xff")
            or (data[:4] == b"RIFF" and data[8:12] == b"WEBP"))


def probe(path: Path) -> dict:
    """What is really in an MP4, decoded with PyAV (FFmpeg)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(video=0))
        fps = float(stream.average_rate)
        return {"width": stream.codec_context.width, "height": stream.codec_context.height,
                "fps": fps, "frames": frames, "duration": frames / fps}


# -- the documented client flow ------------------------------------------------------------

def documented_client(base_url: str, api_key: str, body: dict, output: Path) -> dict:
    """The product document's Python client: submit, keep the task_id, poll printing
    status and progress until completed or failed, then download /content to a file."""
    headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
    request = urllib.request.Request(f"{base_url}/videos", data=json.dumps(body).encode(), headers=headers)
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        task = json.load(response)
    task_id = task["task_id"]
    print(f"submitted {task_id}: {task['status']}")
    deadline = time.monotonic() + TASK_DEADLINE
    while True:
        assert time.monotonic() < deadline, f"task {task_id} still unfinished"
        status_request = urllib.request.Request(f"{base_url}/videos/{task_id}", headers=headers)
        with urllib.request.urlopen(status_request, timeout=TIMEOUT) as response:
            task = json.load(response)
        print(f"status: {task['status']}, progress: {task.get('progress', 0)}%")
        if task["status"] == "completed":
            break
        if task["status"] == "failed":
            print(f"failed: {task['error']['message']}")
            return task
        time.sleep(POLL_INTERVAL)
    content_request = urllib.request.Request(f"{base_url}/videos/{task_id}/content", headers=headers)
    with urllib.request.urlopen(content_request, timeout=TIMEOUT) as response, open(output, "wb") as f:
        while chunk := response.read(64 * 1024):
            f.write(chunk)
    print(f"saved {output}")
    return task


def printed_statuses(out: str) -> list[tuple[str, int]]:
    seen = []
    for line in out.splitlines():
        if line.startswith("status: "):
            status, progress = line[len("status: "):].split(", progress: ")
            seen.append((status, int(progress.rstrip("%"))))
    return seen


def test_documented_client_flow_small_video(setup, tmp_path, capsys):
    output = tmp_path / "video.mp4"
    body = {"model": MODEL, "prompt": "A corgi surfing a wave at sunset", **SMALL}
    task = documented_client(setup.base_url, setup.key, body, output)
    out = capsys.readouterr().out
    assert task["status"] == "completed"
    assert task["progress"] == 100
    assert isinstance(task["completed_at"], int) and task["completed_at"] >= task["created_at"]
    assert task["metadata"] == {"duration": 1.0, "fps": 12, "width": 160, "height": 96}
    data = output.read_bytes()
    assert is_mp4(data)
    real = probe(output)
    assert (real["width"], real["height"], real["fps"], real["frames"]) == (160, 96, 12.0, 12)
    # status and progress were printed on every poll, progress never going back
    seen = printed_statuses(out)
    assert seen[-1] == ("completed", 100)
    assert {status for status, _ in seen} <= {"queued", "in_progress", "completed"}
    progress = [p for _, p in seen]
    assert progress == sorted(progress)
    assert f"saved {output}" in out


def test_documented_example_values_give_a_5s_1280x720_30fps_mp4(setup, tmp_path, capsys):
    """The document's own example body, exact: kling-v1, 5.0 s, 1280x720, 30 fps."""
    output = tmp_path / "video.mp4"
    body = {"model": "kling-v1", "prompt": "A cat playing piano in a jazz bar", "duration": 5.0,
            "width": 1280, "height": 720, "fps": 30}
    task = documented_client(setup.base_url, setup.key, body, output)
    assert task["status"] == "completed"
    assert task["model"] == "kling-v1"
    assert task["metadata"] == {"duration": 5.0, "fps": 30, "width": 1280, "height": 720}
    assert is_mp4(output.read_bytes())
    real = probe(output)
    assert (real["width"], real["height"], real["fps"]) == (1280, 720, 30.0)
    assert real["frames"] == 150 and abs(real["duration"] - 5.0) < 0.05
    assert "status: completed, progress: 100%" in capsys.readouterr().out


def test_submit_answers_at_once_with_task_id_and_openai_fields(setup):
    started = time.monotonic()
    video = submit_small(setup, "answers at once")
    assert time.monotonic() - started < 5
    assert video["task_id"] == video["id"]
    assert video["status"] == "queued"
    assert (video["object"], video["model"], video["progress"]) == ("video", MODEL, 0)
    assert isinstance(video["created_at"], int)
    assert (video["seconds"], video["size"]) == ("1", "160x96")


def test_get_while_running_forwards_openai_poll_after_ms_and_not_when_done(setup):
    video = submit_small(setup, "poll header")
    status, headers, body = http_json(setup, "GET", f"/videos/{video['id']}")
    assert status == 200
    if body["status"] in ("queued", "in_progress"):
        assert headers.get("openai-poll-after-ms") == str(GATEWAY_POLL_MS)
    wait_completed(setup, video["id"])
    status, headers, body = http_json(setup, "GET", f"/videos/{video['id']}")
    assert body["status"] == "completed"
    assert "openai-poll-after-ms" not in headers


def test_content_before_completion_is_409_and_range_requests_work(setup):
    video = submit_small(setup, "range requests")
    status, _, early = http(setup, "GET", f"/videos/{video['id']}/content")
    if status != 200:  # (only if the poller was not faster than this request)
        assert status == 409, early
        assert json.loads(early)["error"]["code"] == "video_not_ready"
    wait_completed(setup, video["id"])
    _, whole = download(setup, video["id"])
    status, headers, part = http(setup, "GET", f"/videos/{video['id']}/content", headers={"Range": "bytes=4-11"})
    assert status == 206
    assert part == whole[4:12] == b"ftyp" + whole[8:12]
    assert headers["content-range"] == f"bytes 4-11/{len(whole)}"
    status, _, rest = http(setup, "GET", f"/videos/{video['id']}/content", headers={"Range": "bytes=100-"})
    assert (status, rest) == (206, whole[100:])
    status, _, body = http(setup, "GET", f"/videos/{video['id']}/content",
                           headers={"Range": f"bytes={len(whole)}-"})
    assert status == 416, body


def test_image_to_video_by_base64_data_uri_and_json_input_reference(setup):
    """The documented `image` (bare base64 or a data: URI) and OpenAI's JSON
    input_reference.image_url all make an image-to-video task: the simulator draws it
    differently from the same prompt alone."""
    encoded = base64.b64encode(PNG_1X1).decode()
    prompt = f"image to video {uuid.uuid4().hex[:6]}"
    bodies = [{"image": encoded}, {"image": "data:image/png;base64," + encoded},
              {"input_reference": {"image_url": "data:image/png;base64," + encoded}}, {}]
    ids = []
    for extra in bodies:
        status, _, video = http_json(setup, "POST", "/videos", {"model": MODEL, "prompt": prompt, **SMALL, **extra})
        assert status == 200, (extra, video)
        ids.append(video["id"])
    contents = []
    for video_id in ids:
        wait_completed(setup, video_id)
        contents.append(download(setup, video_id)[1])
    *from_image, plain = contents
    assert all(is_mp4(c) for c in contents)
    assert from_image[0] == from_image[1] == from_image[2]
    assert plain != from_image[0]


@pytest.mark.parametrize("body, param", [
    pytest.param({}, "prompt", id="missing-prompt"),
    pytest.param({"prompt": " "}, "prompt", id="blank-prompt"),
    pytest.param({"prompt": "x", "n": 2}, "n", id="n-2"),
    pytest.param({"prompt": "x", "response_format": "b64_json"}, "response_format", id="format"),
    pytest.param({"prompt": "x", "duration": -1}, "duration", id="negative-duration"),
    pytest.param({"prompt": "x", "duration": "long"}, "duration", id="duration-string"),
    pytest.param({"prompt": "x", "width": 8}, "width", id="tiny-width"),
    pytest.param({"prompt": "x", "fps": 0}, "fps", id="fps-0"),
    pytest.param({"prompt": "x", "size": "wide"}, "size", id="size"),
    pytest.param({"prompt": "x", "image": "not base64 !"}, "image", id="image"),
    pytest.param({"prompt": "x", "metadata": {"nope": 1}}, "metadata.nope", id="metadata-key"),
])
def test_invalid_submission_is_400_with_param(setup, body, param):
    status, _, answer = http_json(setup, "POST", "/videos", {"model": MODEL, **body})
    assert status == 400, answer
    assert answer["error"]["param"] == param


def test_unknown_video_and_another_tokens_video_are_404(setup):
    video = submit_small(setup, "mine only")
    for path in (f"/videos/{video['id']}", f"/videos/{video['id']}/content"):
        status, _, answer = http_json(setup, "GET", path, key=setup.other_key)
        assert status == 404, answer
        assert answer["error"]["code"] == "video_not_found"
    for bad in ("video_" + "0" * 48, "nope", "x" * 3000, "..%2F..%2Fst-ai.db"):
        status, _, answer = http_json(setup, "GET", f"/videos/{bad}")
        assert status == 404, (bad, answer)


# -- the official openai SDK ------------------------------------------------------------

class Recorder:
    """httpx event hooks: every request the SDK sends and the headers of each answer."""

    def __init__(self) -> None:
        self.requests: list[tuple[float, str, str, str]] = []   # (time, method, path, content type)
        self.responses: list[tuple[str, int, dict]] = []         # (path, status, headers)

    def on_request(self, request) -> None:
        self.requests.append((time.monotonic(), request.method, request.url.path,
                              request.headers.get("content-type", "")))

    def on_response(self, response) -> None:
        self.responses.append((response.request.url.path, response.status_code, dict(response.headers)))

    def http_client(self):
        return openai.DefaultHttpxClient(event_hooks={"request": [self.on_request], "response": [self.on_response]},
                                         timeout=TIMEOUT)


def sdk_create_small(client: OpenAI, prompt: str, **kwargs):
    return client.videos.create(model=MODEL, prompt=prompt, seconds="1", size="160x96",
                                extra_body={"fps": 12}, **kwargs)


def test_sdk_create_sends_multipart_and_gets_a_queued_video(setup):
    recorder = Recorder()
    with setup.client(http_client=recorder.http_client()) as client:
        video = sdk_create_small(client, "an sdk submission")
    assert recorder.requests[0][1:3] == ("POST", "/v1/videos")
    assert recorder.requests[0][3].startswith("multipart/form-data")
    assert video.object == "video"
    assert video.status == "queued"
    assert video.model == MODEL
    assert (video.seconds, video.size, video.progress) == ("1", "160x96", 0)
    assert video.prompt == "an sdk submission"
    assert isinstance(video.created_at, int)
    done = wait_completed(setup, video.id)
    assert done["metadata"] == {"duration": 1.0, "fps": 12, "width": 160, "height": 96}


def test_sdk_create_with_uploaded_input_reference_png(setup, tmp_path):
    reference = tmp_path / "reference.png"
    reference.write_bytes(PNG_1X1)
    recorder = Recorder()
    with setup.client(http_client=recorder.http_client()) as client, reference.open("rb") as upload:
        video = sdk_create_small(client, "from a reference image", input_reference=upload)
        also = sdk_create_small(client, "from a reference image",
                                input_reference=("ref.png", PNG_1X1, "image/png"))
        plain = sdk_create_small(client, "from a reference image")
    assert all(ct.startswith("multipart/form-data") for _, _, _, ct in recorder.requests)
    assert video.status == also.status == "queued"
    for v in (video, also, plain):
        wait_completed(setup, v.id)
    with_image = download(setup, video.id)[1]
    assert is_mp4(with_image)
    assert download(setup, also.id)[1] == with_image
    # the simulator draws an image-to-video task differently from the same prompt alone
    assert download(setup, plain.id)[1] != with_image


def test_sdk_generic_post_sends_the_documented_json_body(setup):
    """The SDK's videos.create always sends multipart; its generic client.post sends JSON."""
    recorder = Recorder()
    with setup.client(http_client=recorder.http_client()) as client:
        video = client.post("/videos", cast_to=openai.types.Video,
                            body={"model": MODEL, "prompt": "json through the sdk", **SMALL})
        assert recorder.requests[0][3].startswith("application/json")
        assert (video.status, video.seconds, video.size) == ("queued", "1", "160x96")
        done = client.videos.poll(video.id)
    assert done.status == "completed"


def test_sdk_create_asking_for_several_videos_is_400(setup):
    with setup.client() as client, pytest.raises(openai.BadRequestError) as caught:
        client.videos.create(model=MODEL, prompt="x", seconds="1", size="160x96",
                             extra_body={"n": 3})
    assert caught.value.param == "n"


def test_sdk_retrieve_follows_the_task_to_completion(setup):
    with setup.client() as client:
        video = sdk_create_small(client, "retrieve me")
        deadline = time.monotonic() + TASK_DEADLINE
        statuses = []
        while True:
            assert time.monotonic() < deadline
            current = client.videos.retrieve(video.id)
            statuses.append((current.status, current.progress))
            if current.status == "completed":
                break
            time.sleep(0.1)
    assert current.id == video.id
    assert current.progress == 100
    assert current.completed_at >= current.created_at
    assert current.expires_at > current.completed_at
    assert current.error is None
    progress = [p for _, p in statuses]
    assert progress == sorted(progress)


def test_sdk_create_and_poll_reads_openai_poll_after_ms(setup):
    recorder = Recorder()
    with setup.client(http_client=recorder.http_client()) as client:
        started = time.monotonic()
        video = client.videos.create_and_poll(model=MODEL, prompt="create and poll", seconds="1",
                                              size="160x96", extra_body={"fps": 12})
        elapsed = time.monotonic() - started
    assert video.status == "completed" and video.progress == 100
    assert elapsed < 10
    polls = [(t, path) for t, method, path, _ in recorder.requests if method == "GET"]
    assert len(polls) >= 2
    assert all(path == f"/v1/videos/{video.id}" for _, path in polls)
    answers = [headers for path, _, headers in recorder.responses if path == f"/v1/videos/{video.id}"]
    *unfinished, finished = answers
    assert unfinished and all(h.get("openai-poll-after-ms") == str(GATEWAY_POLL_MS) for h in unfinished)
    assert "openai-poll-after-ms" not in finished
    # it waited what the header said (0.2 s), not the SDK's default of 1 s
    gaps = [b[0] - a[0] for a, b in zip(polls, polls[1:])]
    assert all(gap >= 0.15 for gap in gaps), gaps
    assert min(gaps) < 0.9, gaps


def test_sdk_download_content_is_byte_identical_to_a_plain_download(setup, tmp_path):
    with setup.client() as client:
        video = client.videos.create_and_poll(model=MODEL, prompt="download me", seconds="1", size="160x96",
                                              extra_body={"fps": 12})
        assert video.status == "completed"
        content = client.videos.download_content(video.id)
        target = tmp_path / "sdk.mp4"
        content.write_to_file(target)
        read = client.videos.download_content(video.id, variant="video").read()
        with client.videos.with_streaming_response.download_content(video.id) as streamed:
            streamed_bytes = b"".join(streamed.iter_bytes())
            streamed_type = streamed.headers["content-type"]
    headers, plain = download(setup, video.id)
    assert is_mp4(plain)
    assert headers["content-type"] == streamed_type == "video/mp4"
    assert target.read_bytes() == read == content.content == streamed_bytes == plain
    real = probe(target)
    assert (real["width"], real["height"], real["fps"]) == (160, 96, 12.0)


def test_sdk_download_thumbnail_variant_is_an_image(setup):
    with setup.client() as client:
        video = client.videos.create_and_poll(model=MODEL, prompt="thumbnail", seconds="1", size="160x96",
                                              extra_body={"fps": 12})
        thumbnail = client.videos.download_content(video.id, variant="thumbnail")
        data = thumbnail.read()
        with pytest.raises(openai.BadRequestError) as caught:
            client.videos.download_content(video.id, variant="spritesheet")
    assert thumbnail.response.headers["content-type"].startswith("image/")
    assert is_image(data)
    assert not is_mp4(data)
    headers, plain = download(setup, video.id, "?variant=thumbnail")
    assert plain == data
    assert caught.value.param == "variant"


def test_sdk_download_before_completion_is_a_conflict(setup):
    with setup.client() as client:
        video = sdk_create_small(client, "too early")
        try:
            client.videos.download_content(video.id).read()
        except ConflictError as error:
            assert error.code == "video_not_ready"
        else:  # the poller was faster than this request: then the content must be whole
            assert client.videos.retrieve(video.id).status == "completed"


def test_sdk_list_shows_only_the_tokens_tasks_and_pages_with_after_and_limit(setup):
    tag = uuid.uuid4().hex[:6]
    with setup.client(setup.other_key) as mine, setup.client() as theirs:
        before = {v.id for v in mine.videos.list(limit=100).data}
        created = [sdk_create_small(mine, f"list {tag} {i}").id for i in range(3)]
        foreign = sdk_create_small(theirs, f"not yours {tag}").id
        everything = mine.videos.list(limit=100)
        ids = [v.id for v in everything.data]
        assert set(ids) == before | set(created)
        assert foreign not in ids
        assert everything.has_more is False
        # paging by hand: limit and after
        first = mine.videos.list(limit=2)
        assert [v.id for v in first.data] == ids[:2]
        assert first.has_more is True
        second = mine.videos.list(limit=2, after=first.data[-1].id)
        assert [v.id for v in second.data] == ids[2:4]
        # the SDK's auto-pagination walks every page
        assert [v.id for v in mine.videos.list(limit=1)] == ids
        # ascending is the reverse
        assert [v.id for v in mine.videos.list(limit=100, order="asc")] == ids[::-1]
        # newest first across seconds
        created_at = [v.created_at for v in everything.data]
        assert created_at == sorted(created_at, reverse=True)
        # the other token's listing does not show these
        assert not set(created) & {v.id for v in theirs.videos.list(limit=100)}


def test_sdk_list_rejects_bad_limit_and_order(setup):
    with setup.client() as client:
        for kwargs, param in (({"limit": 0}, "limit"), ({"limit": 101}, "limit"),
                              ({"order": "sideways"}, "order"), ({"after": "not-an-id"}, "after")):
            with pytest.raises(openai.BadRequestError) as caught:
                client.videos.list(**kwargs)
            assert caught.value.param == param, kwargs


def test_sdk_delete_then_retrieve_is_not_found(setup):
    with setup.client() as client:
        video = client.videos.create_and_poll(model=MODEL, prompt="delete me", seconds="1", size="160x96",
                                              extra_body={"fps": 12})
        assert video.status == "completed"
        deleted = client.videos.delete(video.id)
        assert (deleted.id, deleted.object, deleted.deleted) == (video.id, "video.deleted", True)
        with pytest.raises(NotFoundError):
            client.videos.retrieve(video.id)
        with pytest.raises(NotFoundError):
            client.videos.download_content(video.id)
        with pytest.raises(NotFoundError):
            client.videos.delete(video.id)
        with pytest.raises(NotFoundError):
            client.videos.remix(video.id, prompt="too late")
        assert video.id not in {v.id for v in client.videos.list(limit=100)}


def test_sdk_delete_of_another_tokens_video_is_not_found(setup):
    with setup.client() as owner, setup.client(setup.other_key) as stranger:
        video = sdk_create_small(owner, "not yours to delete")
        with pytest.raises(NotFoundError):
            stranger.videos.delete(video.id)
        assert owner.videos.retrieve(video.id).id == video.id


def test_sdk_remix_of_a_completed_video_is_a_new_task(setup):
    with setup.client() as client:
        source = client.videos.create_and_poll(model=MODEL, prompt="a red balloon", seconds="1",
                                               size="160x96", extra_body={"fps": 12})
        assert source.status == "completed"
        remix = client.videos.remix(source.id, prompt="make it blue")
        assert remix.id != source.id
        assert remix.remixed_from_video_id == source.id
        assert remix.status == "queued"
        assert remix.prompt == "make it blue"
        assert (remix.model, remix.seconds, remix.size) == (MODEL, "1", "160x96")
        done = client.videos.poll(remix.id)
        assert done.status == "completed"
        assert done.remixed_from_video_id == source.id
        remixed = client.videos.download_content(remix.id).read()
        original = client.videos.download_content(source.id).read()
    assert is_mp4(remixed)
    assert remixed != original


def test_sdk_remix_of_an_unfinished_video_is_a_conflict_and_needs_a_prompt(setup):
    with setup.client() as client:
        video = sdk_create_small(client, "not ready for remix")
        try:
            client.videos.remix(video.id, prompt="too soon")
        except ConflictError as error:
            assert error.code == "video_not_ready"
        else:
            assert client.videos.retrieve(video.id).status == "completed"
        client.videos.poll(video.id)
        with pytest.raises(openai.BadRequestError) as caught:
            client.videos.remix(video.id, prompt="")
        assert caught.value.param == "prompt"


def test_async_sdk_create_and_poll_and_download(setup, tmp_path):
    async def main():
        async with setup.async_client() as client:
            videos = await asyncio.gather(*(
                client.videos.create_and_poll(model=MODEL, prompt=f"async {i}", seconds="1", size="160x96",
                                              extra_body={"fps": 12}) for i in range(2)))
            contents = [await client.videos.download_content(v.id) for v in videos]
            target = tmp_path / "async.mp4"
            contents[0].write_to_file(target)  # the body is already read: a plain file write
            listed = [v.id async for v in client.videos.list(limit=1)]
            return videos, [await c.aread() for c in contents], target.read_bytes(), listed

    videos, contents, written, listed = asyncio.run(asyncio.wait_for(main(), 60))
    assert [v.status for v in videos] == ["completed", "completed"]
    assert all(is_mp4(c) for c in contents)
    assert written == contents[0] == download(setup, videos[0].id)[1]
    assert contents[0] != contents[1]
    assert {v.id for v in videos} <= set(listed)


def test_sdk_unknown_video_id_is_not_found(setup):
    with setup.client() as client:
        for bad in ("video_" + "0" * 48, "nope"):
            with pytest.raises(NotFoundError) as caught:
                client.videos.retrieve(bad)
            assert caught.value.code == "video_not_found"
