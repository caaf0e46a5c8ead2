"""`st-ai serve --demo`: a simulator channel and a demo token on first start."""
from __future__ import annotations

import sqlite_utils

from server.store import channels as channel_store
from server.store import tokens as token_store
from server.store.db import open_db

DEMO_CHANNEL = "demo-simulator"
DEMO_TOKEN = "demo"
DEMO_MODELS = ["gpt-4o-mini", "gpt-3.5-turbo", "gpt-4",  # chat
               "dall-e-3", "gpt-image-1",                # images
               "sora-2", "kling-v1", "runway-gen3"]      # videos


def ensure_demo_at(db_path: str, rest_url: str) -> list[str]:
    """`ensure_demo` on the database at `db_path`; the gateway calls it once its ports
    are bound, so a start that fails creates nothing."""
    db = open_db(db_path)
    try:
        return ensure_demo(db, rest_url)
    finally:
        db.close()


def ensure_demo(db: sqlite_utils.Database, rest_url: str = "http://127.0.0.1:8080") -> list[str]:
    """Create what is missing; returns the lines to print."""
    lines = []
    try:
        channel_store.get(db, DEMO_CHANNEL)
    except channel_store.ChannelError:
        channel_store.add(db, DEMO_CHANNEL, "simulator", "", "", DEMO_MODELS)
        lines.append(f"demo: created the simulator channel '{DEMO_CHANNEL}' serving "
                     f"{', '.join(DEMO_MODELS)} (simulated answers, no upstream)")
    try:
        token_store.get(db, DEMO_TOKEN)
        lines.append(f"demo: the token '{DEMO_TOKEN}' exists (its key was shown on first start); "
                     "make another with: st-ai token create --name NAME")
    except token_store.TokenError:
        _, key = token_store.create(db, DEMO_TOKEN)
        lines.append(f"demo: created the token '{DEMO_TOKEN}'; its key is shown only this once:")
        lines.append(f"demo:   {key}")
        lines.append(f"demo: in another terminal:  export KEY={key}")
    lines.append(f"demo: try  curl -s {rest_url}/v1/chat/completions "
                 "-H \"Authorization: Bearer $KEY\" -H 'Content-Type: application/json' "
                 "-d '{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"Hello\"}]}'")
    return lines
