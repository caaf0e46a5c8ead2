"""The small interfaces a provider implements. Providers see plain dicts and
dataclasses and a shared HTTP client, never a transport (no aiohttp request, no gRPC
context). A provider implements only the capabilities it has; the registry answers
for the rest."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, AsyncIterator, Callable, Protocol, runtime_checkable

import aiohttp

from server.api_client import ApiClient
from server.store.channels import Channel

if TYPE_CHECKING:
    from server.assets import AssetStore
    from server.providers.video_shape import VideoCapabilities
    from server.safe_fetch import SafeFetch


@dataclass(frozen=True)
class Upstream:
    """What providers share: the pooled HTTP clients of their upstream calls, and for
    providers that produce files themselves (the simulator) the asset store and the
    public base URL (e.g. http://127.0.0.1:8080) under which st-ai serves them. URLs a
    provider returns (finished files) are fetched only through `files`, which checks
    where they point."""
    http: aiohttp.ClientSession
    assets: "AssetStore | None" = None
    public_url: str = ""
    files: "SafeFetch | None" = None
    # the calls that carry a model request (chat, embeddings, images, a client API passed
    # through), the hot path, go through this leaner pooled client; everything else through `http`
    calls: ApiClient = field(default_factory=ApiClient)


class ChatProvider(Protocol):
    async def complete(self, channel: Channel, body: dict, timeout: float | None) -> dict:
        """One chat completion; `body` is an OpenAI request with the upstream model name."""

    def stream(self, channel: Channel, body: dict, timeout: float | None) -> AsyncIterator[dict]:
        """The completion as OpenAI `chat.completion.chunk` dicts, each as it arrives."""


@runtime_checkable
class NativeApis(Protocol):
    """Implemented by chat providers whose upstream speaks a client API besides chat
    completions ("responses", "messages"), for channels that list it in their native APIs:
    the client's body is passed through instead of translated."""

    async def native(self, channel: Channel, api: str, body: dict, timeout: float | None) -> dict:
        """`body` (the client's, with the upstream model name) sent as `api`; its answer as is."""

    def native_stream(self, channel: Channel, api: str, body: dict, timeout: float | None) -> AsyncIterator[dict]:
        """The same streamed: each server-sent event's data as it arrives (its `type` names it)."""


@runtime_checkable
class TokenCounter(Protocol):
    """Implemented by chat providers whose upstream counts a request's input tokens
    (Anthropic's `count_tokens`, Gemini's `countTokens`) for `POST /v1/messages/count_tokens`."""

    async def count_tokens(self, channel: Channel, api: str, body: dict, timeout: float | None) -> int:
        """The input tokens of `body`, a request in `api` (with the upstream model name)."""


class ImagesProvider(Protocol):
    async def generate(self, channel: Channel, body: dict, timeout: float | None) -> dict:
        """OpenAI `POST /images/generations` body in (upstream model name), its answer out.
        A `url` in the answer must be fetchable by the client."""


class EmbeddingsProvider(Protocol):
    async def embed(self, channel: Channel, body: dict, timeout: float | None) -> dict:
        """OpenAI `POST /embeddings` body in (upstream model name; `input` a string or a list
        of strings or token arrays; `encoding_format` "float" or "base64"; `dimensions`), an
        OpenAI embeddings answer out (`data[i].embedding` a list of floats, or a base64
        string of little-endian float32 when the provider answers that way; `usage` with
        `prompt_tokens` when the upstream counted). The relay core turns each embedding into
        the encoding the client asked for."""


# -- asynchronous video tasks ------------------------------------------------------------

@dataclass(frozen=True)
class VideoRequest:
    """A video task as the client asked for it, provider-neutral. Values a provider
    cannot take exactly are mapped by the provider to its nearest supported ones."""
    model: str                       # the upstream model name
    prompt: str
    image: str | None = None         # URL, data: URI or bare base64
    image_bytes: bytes | None = None  # an uploaded file (OpenAI's input_reference)
    image_type: str | None = None    # its content type
    duration: float | None = None    # seconds
    width: int | None = None
    height: int | None = None
    fps: int | None = None
    seed: int | None = None
    metadata: dict = field(default_factory=dict)  # provider-specific parameters


@dataclass(frozen=True)
class Prepared:
    """What will be sent upstream, decided before anything is sent."""
    body: dict                       # the provider's own request body
    asked: dict                      # duration, width, height, fps really asked (reported to the client)


@dataclass(frozen=True)
class TaskState:
    """A provider's answer about a task, in st-ai's four public states."""
    status: str                      # queued | in_progress | completed | failed
    progress: int = 0                # 0..100
    error_code: str | None = None
    error_message: str | None = None
    video_url: str | None = None     # where the finished MP4 can be downloaded, if a URL
    thumbnail_url: str | None = None
    updated_at: int | None = None    # the provider's last change, Unix seconds (normalised)
    usage: dict | None = None        # what the provider counted for a finished task (e.g. Ark's tokens)


class VideoProvider(Protocol):
    def prepare(self, channel: Channel, request: VideoRequest) -> Prepared:
        """Map the request to the provider's parameters. Raises a 400 GatewayError for
        what cannot be honoured at all; never does I/O."""

    async def submit(self, channel: Channel, prepared: Prepared) -> str:
        """Start the task upstream; returns the provider's task id."""

    async def poll(self, channel: Channel, task_id: str) -> TaskState:
        """The task's state. A transient failure (429, network) raises a retryable GatewayError."""

    def download(self, channel: Channel, task_id: str, state: TaskState, variant: str) -> AsyncIterator[bytes]:
        """The finished video (variant "video") or its thumbnail ("thumbnail"), in chunks."""


@runtime_checkable
class VideoModels(Protocol):
    """Implemented by every video provider: what each of its upstream models takes
    (server/providers/video_shape.py), for fitting requests and for `GET /v1/models`."""

    def capabilities(self, model: str) -> "VideoCapabilities | None":
        """The model's capabilities; None for a name the provider does not know (a model
        map may name anything: the provider then fits requests to its general rules)."""


@runtime_checkable
class VideoInputCheck(Protocol):
    """Implemented by video providers that fetch a client's image URLs themselves at
    submit: the addresses are checked while the create is answered, so a refused URL is a
    400 there, not a task that fails later."""

    async def check_inputs(self, channel: Channel, prepared: Prepared) -> None:
        """Raises a 400 GatewayError naming the field for a URL st-ai will not fetch."""


@runtime_checkable
class VideoRemixer(Protocol):
    """Implemented by video providers that can remix a finished task."""

    async def remix(self, channel: Channel, task_id: str, prompt: str) -> str:
        """Start a remix of `task_id`; returns the new task's id."""


@runtime_checkable
class VideoCanceller(Protocol):
    """Implemented by video providers that can stop a task still running upstream."""

    async def cancel(self, channel: Channel, task_id: str) -> None:
        """Stop `task_id`; nothing more will be generated (or billed) for it."""


@runtime_checkable
class ChannelProbe(Protocol):
    """Implemented by video providers with a call that costs nothing and shows the
    channel works: the upstream answers and accepts the key (`channel test`)."""

    async def probe(self, channel: Channel) -> None:
        """Returns when it does; raises the GatewayError a real call would get otherwise."""


@dataclass(frozen=True)
class ProviderSpec:
    type: str                       # the channel type, e.g. "openai"
    label: str                      # shown in `st-ai channel list`
    default_base_url: str | None = None
    chat: Callable[[Upstream], ChatProvider] | None = None
    images: Callable[[Upstream], ImagesProvider] | None = None
    video: Callable[[Upstream], VideoProvider] | None = None
    embeddings: Callable[[Upstream], EmbeddingsProvider] | None = None
    # how `--key` is written for this type, for the CLI's help and checks
    key_format: str = "KEY"
    # False for a type that calls nothing (the simulator): it takes no base URL and no key
    upstream: bool = True
    # True where an operator may declare, with --no-key, a server that takes no key
    key_optional: bool = False
    # the client APIs ("chat", "responses", "messages") its upstream speaks itself, so a
    # request in one is passed through, not translated; a channel's --native-apis overrides
    native_apis: frozenset[str] = frozenset()
