"""`GET /v1/models` lists the capabilities of every model of the video types added for the
providers live today (veo, seedance, wan, hailuo, and kling's current models), exactly as
each provider declares them. Listing calls no upstream: the channels point at a closed
port on 127.0.0.1."""
from __future__ import annotations

import pytest

from server.providers.hailuo.models import MODELS as HAILUO
from server.providers.interface import Upstream
from server.providers.kling.models import MODELS as KLING
from server.providers.registry import discover
from server.providers.seedance.models import FAMILIES as SEEDANCE
from server.providers.veo.models import MODELS as VEO
from server.providers.wan.models import MODELS as WAN
from tests.conftest import start_gateway, stop_gateway
from tests.test_video_providers_e2e import call_json

pytestmark = pytest.mark.timeout(60)

NOWHERE = "http://127.0.0.1:9"  # never called: listing asks the providers, not the upstreams
TYPES = {"veo": (VEO, "key-veo"), "seedance": (SEEDANCE, "key-ark"), "wan": (WAN, "sk-wan"),
         "hailuo": (HAILUO, "key-minimax"), "kling": (KLING, "access:secret")}


def declared() -> dict[str, dict]:
    specs = discover()
    listed = {}
    for kind, (models, _) in TYPES.items():
        provider = specs[kind].video(Upstream(http=None))
        listed |= {name: provider.capabilities(name).listing() for name in models}
    return listed


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    gateway = start_gateway(str(tmp_path_factory.mktemp("caps-new") / "st-ai.db"))
    for kind, (models, key) in TYPES.items():
        gateway.channel(f"caps-{kind}", kind, sorted(models), base_url=NOWHERE, key=key)
    yield gateway
    stop_gateway(gateway)


def test_every_model_of_every_new_video_type_lists_what_its_provider_declares(gw):
    key = gw.token("caps-new")
    status, page = call_json(gw, key, "GET", "/v1/models")
    assert status == 200, page
    by_id = {m["id"]: m for m in page["data"]}
    expected = declared()
    assert len(expected) == sum(len(models) for models, _ in TYPES.values())
    for name, listing in expected.items():
        assert by_id[name]["capabilities"] == listing, name
        assert by_id[name]["capabilities"]["inputs"], name
