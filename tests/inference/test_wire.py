"""What a gateway forwards is the request as the parsers read it, and they read it back the same."""

from __future__ import annotations

from gridmint.inference import wire


def test_a_parsed_request_forwarded_reads_back_the_same_without_unknown_fields() -> None:
    chat = {"model": "m", "messages": [{"role": "user", "content": "hi", "name": "x"}], "max_completion_tokens": 9,
            "stop": "END", "seed": 4, "stream": True, "tools": [{"evil": 1}], "user": "someone"}
    request, stream = wire.parse_chat(chat)
    forwarded = wire.generation_payload(request, stream)
    assert wire.parse_chat(forwarded) == (request, stream)
    assert set(forwarded) == {"model", "messages", "max_tokens", "temperature", "stream", "seed", "stop"}
    assert forwarded["messages"] == [{"role": "user", "content": "hi"}]
    completion, _ = wire.parse_completion({"model": "m", "prompt": "p", "echo": True})
    assert wire.parse_completion(wire.generation_payload(completion, False)) == (completion, False)
    assert wire.embedding_payload(*wire.parse_embedding({"model": "e", "input": "x", "dimensions": 3})) == {
        "model": "e", "input": ["x"]}
