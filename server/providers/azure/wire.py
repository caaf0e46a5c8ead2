"""Where Azure OpenAI takes a call and how it is signed.

A channel's base URL is its resource endpoint (https://RESOURCE.openai.azure.com). By
default calls go to a deployment with a dated `api-version`:
`{base}/openai/deployments/{deployment}/{path}?api-version=V`, the deployment being the
upstream model name (the channel's model map). With `--api-version v1` they go to the
v1 API instead (GA since August 2025), `{base}/openai/v1/{path}`, which takes no dated
version and names the deployment in the body's `model`, as st-ai always sends it. The
key travels in the `api-key` header either way."""
from __future__ import annotations

import urllib.parse

from server.providers.azure import errors
from server.providers.openai.http import Wire
from server.store.channels import Channel

# Microsoft's latest GA data-plane inference version with dated versions (the v1 API
# has none): what a channel calls when its operator named no version.
DEFAULT_API_VERSION = "2024-10-21"
V1 = "v1"  # the version that means the v1 API


def api_version(channel: Channel) -> str:
    return channel.api_version or DEFAULT_API_VERSION


def url(channel: Channel, path: str, deployment: str) -> str:
    root = channel.base_url.rstrip("/").removesuffix("/openai")
    version = api_version(channel)
    if version.lower() == V1:
        return f"{root}/openai/v1/{path}"
    return (f"{root}/openai/deployments/{urllib.parse.quote(deployment, safe='')}/{path}"
            f"?api-version={urllib.parse.quote(version, safe='')}")


def headers(channel: Channel, accept: str = "application/json", json_body: bool = False) -> dict[str, str]:
    sent = {"Accept": accept}
    if json_body:
        sent["Content-Type"] = "application/json"
    if channel.key:
        sent["api-key"] = channel.key
    return sent


AZURE = Wire(url=url, headers=headers, error=errors.from_response)
