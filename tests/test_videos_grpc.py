"""st_ai.v1.Videos (and Images) over gRPC the way a client without .proto files sees
them: every message class is built at run time from the descriptors the server's
reflection service hands out (as grpcurl does); nothing here imports st_ai.v1. Then
the same through the real `grpcurl` binary.

A gateway of its own: it polls tasks every 0.2 s and the simulator renders in 1 s,
with small videos (160x96, 1 s, 12 fps)."""
from __future__ import annotations

import base64
import json
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass

import grpc
import pytest
from google.protobuf import json_format
from google.protobuf.descriptor_pb2 import FileDescriptorProto

from server.store.db import open_db
from tests.conftest import start_gateway, stop_gateway
from tests.reflection_client import Reflected, auth, error_detail, grpcurl_binary, json_stream, reflect

TIMEOUT = 10.0          # every RPC
GRPCURL_TIMEOUT = 30.0  # every grpcurl process
TASK_DEADLINE = 30.0
MODEL = "kling-v1"
SMALL = {"duration": 1.0, "width": 160, "height": 96, "fps": 12}
VIDEOS = "st_ai.v1.Videos"
IMAGES = "st_ai.v1.Images"

pytestmark = pytest.mark.timeout(120)


# -- fixtures ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Setup:
    http_url: str
    grpc_target: str
    key: str
    other_key: str


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> Setup:
    folder = tmp_path_factory.mktemp("videos-grpc")
    db_path = str(folder / "st-ai.db")
    open_db(db_path).close()
    gateway = start_gateway(db_path, "--video-poll-interval", "0.2", "--assets-dir", str(folder / "assets"),
                            env={"ST_AI_SIMULATOR_VIDEO_SECONDS": "1"})
    try:
        tag = uuid.uuid4().hex[:8]
        gateway.channel(f"grpc-video-sim-{tag}", "simulator", [MODEL, f"grpc-image-{tag}"])
        yield Setup(gateway.http_url, gateway.grpc_target, gateway.token(f"grpc-video-a-{tag}"),
                    gateway.token(f"grpc-video-b-{tag}"))
    finally:
        stop_gateway(gateway)


@pytest.fixture(scope="module")
def channel(setup):
    with grpc.insecure_channel(setup.grpc_target, options=[
            ("grpc.max_receive_message_length", 64 * 1024 * 1024)]) as ch:
        grpc.channel_ready_future(ch).result(timeout=TIMEOUT)
        yield ch


@pytest.fixture()
def reflection(channel) -> Reflected:
    return Reflected(channel)


def rest_download(setup: Setup, video_id: str, query: str = "") -> bytes:
    request = urllib.request.Request(f"{setup.http_url}/v1/videos/{video_id}/content{query}",
                                     headers={"Authorization": f"Bearer {setup.key}"})
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        return response.read()


def create_small(reflection: Reflected, key: str, prompt: str):
    create, Request = reflection.callable(VIDEOS, "CreateVideo")
    return create(Request(model=MODEL, prompt=prompt, **SMALL), metadata=auth(key), timeout=TIMEOUT)


def wait_completed(reflection: Reflected, key: str, video_id: str) -> tuple:
    """Poll GetVideo; return the completed Video and the initial metadata of every poll."""
    get, Request = reflection.callable(VIDEOS, "GetVideo")
    seen = []
    deadline = time.monotonic() + TASK_DEADLINE
    while time.monotonic() < deadline:
        video, call = get.with_call(Request(video_id=video_id), metadata=auth(key), timeout=TIMEOUT)
        seen.append((video.status, video.progress, dict(call.initial_metadata() or ())))
        if video.status in ("completed", "failed"):
            assert video.status == "completed", video
            return video, seen
        time.sleep(0.1)
    raise AssertionError(f"video {video_id} did not complete")


def stream_content(reflection: Reflected, key: str, video_id: str, **fields) -> tuple[bytes, dict, set]:
    """(the bytes, initial metadata, content types) of GetVideoContent."""
    content, Request = reflection.callable(VIDEOS, "GetVideoContent")
    responses = content(Request(video_id=video_id, **fields), metadata=auth(key), timeout=TIMEOUT)
    chunks = list(responses)
    return b"".join(c.data for c in chunks), dict(responses.initial_metadata() or ()), {
        c.content_type for c in chunks}


# -- reflection ----------------------------------------------------------------------------

def test_reflection_lists_videos_and_images_with_their_methods(reflection):
    services = reflection.services()
    assert VIDEOS in services and IMAGES in services
    reflection.load_symbol(VIDEOS)
    videos = reflection.pool.FindServiceByName(VIDEOS)
    assert set(videos.methods_by_name) == {"CreateVideo", "GetVideo", "ListVideos", "DeleteVideo",
                                           "GetVideoContent", "RemixVideo"}
    content = videos.methods_by_name["GetVideoContent"]
    assert (content.client_streaming, content.server_streaming) == (False, True)
    assert content.output_type.full_name == "google.api.HttpBody"
    reflection.load_symbol(IMAGES)
    images = reflection.pool.FindServiceByName(IMAGES)
    assert set(images.methods_by_name) == {"CreateImage", "GetImageFile"}
    assert images.methods_by_name["GetImageFile"].server_streaming


def test_reflection_resolves_method_symbols(reflection):
    # the reflection protocol allows `<package>.<service>.<method>`; grpcurl describe sends it
    response = reflect(reflection.channel, file_containing_symbol=f"{VIDEOS}.GetVideoContent")
    first = response.file_descriptor_response.file_descriptor_proto[0]
    assert FileDescriptorProto.FromString(first).name == "st_ai/v1/videos.proto"
    for unknown in (f"{VIDEOS}.NoSuchMethod", "st_ai.v1.NoSuchService.CreateVideo"):
        with pytest.raises(LookupError):
            reflect(reflection.channel, file_containing_symbol=unknown)


# -- the task lifecycle over gRPC -----------------------------------------------------------

def test_create_poll_and_stream_content_equals_the_rest_download(setup, reflection):
    video = create_small(reflection, setup.key, "a grpc hummingbird")
    assert type(video).DESCRIPTOR.full_name == "st_ai.v1.Video"
    assert video.id and video.task_id == video.id
    assert (video.object, video.model, video.status, video.progress) == ("video", MODEL, "queued", 0)
    assert (video.seconds, video.size) == ("1", "160x96")

    done, seen = wait_completed(reflection, setup.key, video.id)
    assert done.progress == 100 and done.completed_at >= done.created_at
    assert json_format.MessageToDict(done.metadata) == {"duration": 1.0, "fps": 12.0, "width": 160.0,
                                                        "height": 96.0}
    # while unfinished, GetVideo tells clients how long to wait; once done, it does not
    for status, _, metadata in seen[:-1]:
        assert metadata.get("openai-poll-after-ms") == "200", (status, metadata)
    assert "openai-poll-after-ms" not in seen[-1][2]
    progress = [p for _, p, _ in seen]
    assert progress == sorted(progress)

    data, metadata, types = stream_content(reflection, setup.key, video.id)
    assert data[4:8] == b"ftyp"
    assert types == {"video/mp4"}
    assert metadata["st-ai-content-length"] == str(len(data))
    assert "st-ai-content-range" not in metadata
    assert data == rest_download(setup, video.id)


def test_stream_content_range_and_thumbnail(setup, reflection):
    video = create_small(reflection, setup.key, "a grpc range")
    wait_completed(reflection, setup.key, video.id)
    whole = rest_download(setup, video.id)
    part, metadata, _ = stream_content(reflection, setup.key, video.id, range_start=4, range_end=11)
    assert part == whole[4:12]
    assert metadata["st-ai-content-length"] == "8"
    assert metadata["st-ai-content-range"] == f"bytes 4-11/{len(whole)}"
    tail, metadata, _ = stream_content(reflection, setup.key, video.id, range_start=len(whole) - 10)
    assert tail == whole[-10:]
    assert metadata["st-ai-content-range"] == f"bytes {len(whole) - 10}-{len(whole) - 1}/{len(whole)}"
    thumbnail, metadata, types = stream_content(reflection, setup.key, video.id, variant="thumbnail")
    [kind] = types
    assert kind.startswith("image/")
    assert thumbnail[:4] == b"RIFF" or thumbnail[:8] == b"\x89PNG\r\n\x1a\n" or thumbnail[:3] == b"\xff\xd8\xff"
    assert thumbnail == rest_download(setup, video.id, "?variant=thumbnail")
    with pytest.raises(grpc.RpcError) as caught:
        stream_content(reflection, setup.key, video.id, range_start=len(whole))
    assert caught.value.code() == grpc.StatusCode.OUT_OF_RANGE
    assert error_detail(reflection, caught.value).http_status == 416


def test_create_from_json_with_metadata_struct(setup, reflection):
    create, Request = reflection.callable(VIDEOS, "CreateVideo")
    # the request as JSON, parsed against the reflected descriptor (what `grpcurl -d` does)
    request = json_format.ParseDict({"model": MODEL, "prompt": "json struct", **SMALL,
                                     "metadata": {"negative_prompt": "blurry", "style": "anime"}}, Request())
    video = create(request, metadata=auth(setup.key), timeout=TIMEOUT)
    assert video.status == "queued"
    with pytest.raises(grpc.RpcError) as caught:
        create(json_format.ParseDict({"model": MODEL, "prompt": "x", "metadata": {"nope": 1}}, Request()),
               metadata=auth(setup.key), timeout=TIMEOUT)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_detail(reflection, caught.value).param == "metadata.nope"


def test_list_remix_and_delete_over_grpc(setup, reflection):
    source = create_small(reflection, setup.other_key, "a grpc source")
    wait_completed(reflection, setup.other_key, source.id)

    remix, RemixRequest = reflection.callable(VIDEOS, "RemixVideo")
    remixed = remix(RemixRequest(video_id=source.id, prompt="now in the rain"), metadata=auth(setup.other_key),
                    timeout=TIMEOUT)
    assert remixed.id != source.id and remixed.remixed_from_video_id == source.id
    wait_completed(reflection, setup.other_key, remixed.id)

    listing, ListRequest = reflection.callable(VIDEOS, "ListVideos")
    page = listing(ListRequest(), metadata=auth(setup.other_key), timeout=TIMEOUT)
    assert page.object == "list"
    # newest first: the remix was created at least a second after its source
    assert [v.id for v in page.data] == [remixed.id, source.id]
    assert page.data[0].remixed_from_video_id == source.id
    first = listing(ListRequest(limit=1), metadata=auth(setup.other_key), timeout=TIMEOUT)
    assert len(first.data) == 1 and first.has_more
    rest = listing(ListRequest(limit=100, after=first.last_id), metadata=auth(setup.other_key), timeout=TIMEOUT)
    assert [v.id for v in first.data] + [v.id for v in rest.data] == [v.id for v in page.data]
    # the other token sees none of them
    theirs = listing(ListRequest(limit=100), metadata=auth(setup.key), timeout=TIMEOUT)
    assert not {source.id, remixed.id} & {v.id for v in theirs.data}

    delete, DeleteRequest = reflection.callable(VIDEOS, "DeleteVideo")
    deleted = delete(DeleteRequest(video_id=source.id), metadata=auth(setup.other_key), timeout=TIMEOUT)
    assert (deleted.id, deleted.object, deleted.deleted) == (source.id, "video.deleted", True)
    get, GetRequest = reflection.callable(VIDEOS, "GetVideo")
    with pytest.raises(grpc.RpcError) as caught:
        get(GetRequest(video_id=source.id), metadata=auth(setup.other_key), timeout=TIMEOUT)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    detail = error_detail(reflection, caught.value)
    assert (detail.code, detail.http_status) == ("video_not_found", 404)


def test_list_with_limit_zero_is_invalid(setup, reflection):
    listing, ListRequest = reflection.callable(VIDEOS, "ListVideos")
    with pytest.raises(grpc.RpcError) as caught:
        listing(ListRequest(limit=0), metadata=auth(setup.key), timeout=TIMEOUT)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_detail(reflection, caught.value).param == "limit"


def test_grpc_errors_carry_error_detail(setup, reflection):
    create, Request = reflection.callable(VIDEOS, "CreateVideo")
    with pytest.raises(grpc.RpcError) as caught:
        create(Request(model=MODEL, prompt="x"), timeout=TIMEOUT)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error_detail(reflection, caught.value).http_status == 401
    with pytest.raises(grpc.RpcError) as caught:
        create(Request(model=MODEL), metadata=auth(setup.key), timeout=TIMEOUT)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_detail(reflection, caught.value).param == "prompt"
    # content of an unfinished task
    video = create_small(reflection, setup.key, "not ready yet")
    try:
        stream_content(reflection, setup.key, video.id)
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert error_detail(reflection, error).code == "video_not_ready"
    # another token's task does not exist for it
    get, GetRequest = reflection.callable(VIDEOS, "GetVideo")
    with pytest.raises(grpc.RpcError) as caught:
        get(GetRequest(video_id=video.id), metadata=auth(setup.other_key), timeout=TIMEOUT)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_create_image_and_stream_its_file_without_token(setup, reflection):
    create, Request = reflection.callable(IMAGES, "CreateImage")
    answer = create(Request(prompt="a grpc kite", size="48x32"), metadata=auth(setup.key), timeout=TIMEOUT)
    [image] = answer.data
    assert answer.created > 0 and image.revised_prompt
    file_id = image.url.rsplit("/", 1)[1]
    get_file, FileRequest = reflection.callable(IMAGES, "GetImageFile")
    responses = get_file(FileRequest(file_id=file_id), timeout=TIMEOUT)  # no token
    data = b"".join(r.data for r in responses)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert (int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")) == (48, 32)
    assert dict(responses.initial_metadata())["st-ai-content-length"] == str(len(data))
    with urllib.request.urlopen(image.url, timeout=TIMEOUT) as response:
        assert response.read() == data
    for bad in ("../" + file_id, file_id + "\n", "x" * 5000):
        with pytest.raises(grpc.RpcError) as caught:
            list(get_file(FileRequest(file_id=bad), timeout=TIMEOUT))
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND


# -- the real grpcurl binary ------------------------------------------------------------------

@pytest.fixture(scope="module")
def grpcurl(setup):
    binary = grpcurl_binary()
    if binary is None:
        pytest.skip("the grpcurl binary is not installed")

    def run(*args: str) -> str:
        result = subprocess.run(
            [binary, "-plaintext", "-connect-timeout", "5", "-max-time", str(TIMEOUT),
             "-max-msg-sz", str(64 * 1024 * 1024), *args],
            capture_output=True, text=True, timeout=GRPCURL_TIMEOUT, stdin=subprocess.DEVNULL)
        assert result.returncode == 0, f"rc={result.returncode}\n{result.stdout}\n{result.stderr}"
        return result.stdout
    return run


def test_grpcurl_lists_videos_and_images(setup, grpcurl):
    services = grpcurl(setup.grpc_target, "list").split()
    assert VIDEOS in services and IMAGES in services
    methods = grpcurl(setup.grpc_target, "list", VIDEOS).split()
    assert sorted(methods) == sorted(f"{VIDEOS}.{m}" for m in (
        "CreateVideo", "GetVideo", "ListVideos", "DeleteVideo", "GetVideoContent", "RemixVideo"))
    assert sorted(grpcurl(setup.grpc_target, "list", IMAGES).split()) == [
        f"{IMAGES}.CreateImage", f"{IMAGES}.GetImageFile"]
    described = grpcurl(setup.grpc_target, "describe", f"{VIDEOS}.GetVideoContent")
    assert "returns ( stream .google.api.HttpBody )" in described


def test_grpcurl_create_get_and_content(setup, grpcurl):
    header = f"authorization: Bearer {setup.key}"
    body = json.dumps({"model": MODEL, "prompt": "a grpcurl comet", **SMALL,
                       "metadata": {"style": "cinematic"}})
    [video] = json_stream(grpcurl("-H", header, "-d", body, setup.grpc_target, f"{VIDEOS}/CreateVideo"))
    assert video["id"] == video["task_id"]
    assert (video["object"], video["model"], video["status"]) == ("video", MODEL, "queued")
    get_body = json.dumps({"video_id": video["id"]})
    deadline = time.monotonic() + TASK_DEADLINE
    while True:
        assert time.monotonic() < deadline, "the task did not complete"
        [current] = json_stream(grpcurl("-H", header, "-d", get_body, setup.grpc_target, f"{VIDEOS}/GetVideo"))
        assert current["id"] == video["id"]
        if current["status"] == "completed":
            break
        assert current["status"] in ("queued", "in_progress"), current
        time.sleep(0.3)
    assert current["progress"] == 100
    assert current["metadata"] == {"duration": 1, "fps": 12, "width": 160, "height": 96}
    # the content as grpcurl shows HttpBody messages: base64 data, concatenated
    chunks = json_stream(grpcurl("-H", header, "-d", get_body, setup.grpc_target, f"{VIDEOS}/GetVideoContent"))
    assert {c["content_type"] for c in chunks} == {"video/mp4"}  # grpcurl prints proto names
    data = b"".join(base64.b64decode(c["data"]) for c in chunks)
    assert data[4:8] == b"ftyp"
    assert data == rest_download(setup, video["id"])
    # and the initial metadata, with -v
    verbose = grpcurl("-v", "-H", header, "-d", json.dumps({"video_id": video["id"], "range_start": 0,
                                                            "range_end": 99}),
                      setup.grpc_target, f"{VIDEOS}/GetVideoContent")
    assert "st-ai-content-length: 100" in verbose
    assert f"st-ai-content-range: bytes 0-99/{len(data)}" in verbose


def test_grpcurl_without_token_is_unauthenticated(setup, grpcurl):
    binary = grpcurl_binary()
    result = subprocess.run(
        [binary, "-plaintext", "-connect-timeout", "5", "-max-time", str(TIMEOUT), "-d",
         json.dumps({"model": MODEL, "prompt": "x"}), setup.grpc_target, f"{VIDEOS}/CreateVideo"],
        capture_output=True, text=True, timeout=GRPCURL_TIMEOUT, stdin=subprocess.DEVNULL)
    assert result.returncode != 0
    assert "Unauthenticated" in result.stderr
