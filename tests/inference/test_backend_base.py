"""What backends share (``inference/backends/base.py``): finding the folder of a package that ships a model, and an
embedding backend's refusal to generate text."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest

from gridmint.inference.backends.base import EmbeddingOnly, Generation, UnsupportedError, installed_package_folder


def test_an_installed_package_is_found_where_python_imports_it_from() -> None:
    assert installed_package_folder("orjson", "pip install orjson") == Path(orjson.__file__).parent


def test_a_missing_package_says_how_to_install_it() -> None:
    with pytest.raises(FileNotFoundError, match=r"no_such_model_package .*: pip install no-such-model-package"):
        installed_package_folder("no_such_model_package", "pip install no-such-model-package")


class Embedder(EmbeddingOnly):
    name = "test-embedder"


def test_an_embedding_backend_refuses_chats_and_streams_naming_itself() -> None:
    request = Generation(model="m", prompt="hello")
    with pytest.raises(UnsupportedError, match="the test-embedder backend serves embeddings, not text generation"):
        asyncio.run(Embedder().generate(request))
    with pytest.raises(UnsupportedError, match="the test-embedder backend serves embeddings"):
        Embedder().stream(request)
