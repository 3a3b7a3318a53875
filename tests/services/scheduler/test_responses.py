"""Stop-string cutting and SSE chunk framing."""

import json

from services.scheduler.responses import CHAT, COMPLETION, ChunkWriter, StopMatcher


def feed(matcher: StopMatcher, pieces: list[str]) -> tuple[str, bool]:
    out, stopped = [], False
    for piece in pieces:
        text, stopped = matcher.add(piece)
        out.append(text)
        if stopped:
            break
    if not stopped:
        out.append(matcher.flush())
    return "".join(out), stopped


def test_a_stop_string_split_over_chunks_never_leaks() -> None:
    """Text before the stop string is emitted; no part of the stop string ever is."""
    matcher = StopMatcher(["END"])
    assert matcher.add(" abc E") == (" abc", False)
    assert matcher.add("N") == (" ", False)
    assert matcher.add("D more") == ("", True)
    assert matcher.text == " abc "


def test_without_a_stop_everything_comes_out() -> None:
    """Held-back text is flushed when the generation ends without a stop string."""
    assert feed(StopMatcher(["zzz"]), [" a", " b", " zz"]) == (" a b zz", False)
    assert feed(StopMatcher([]), [" a", " b"]) == (" a b", False)


def test_earliest_of_several_stops_wins() -> None:
    """With several stop strings, the first one in the text cuts it."""
    assert feed(StopMatcher(["cc", "b"]), [" aa b cc"]) == (" aa ", True)


def test_chunks_are_openai_shaped() -> None:
    """Chat chunks carry the role once, then content; completion chunks carry text; the
    usage field is null on content chunks when include_usage is on."""
    chat = ChunkWriter(CHAT, "chatcmpl-1", 5, "m", include_usage=True)
    first = json.loads(chat.content(" hi", None)[6:])
    second = json.loads(chat.content(" yo", "length")[6:])
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": " hi"}
    assert second["choices"][0]["delta"] == {"content": " yo"}
    assert second["choices"][0]["finish_reason"] == "length" and second["usage"] is None
    assert first["object"] == "chat.completion.chunk" and first["id"] == "chatcmpl-1"
    text = json.loads(ChunkWriter(COMPLETION, "cmpl-1", 5, "m", False).content(" x", None)[6:])
    assert text["choices"][0]["text"] == " x" and "usage" not in text



def test_final_chunks_carry_the_details_and_tool_calls_stream_as_deltas() -> None:
    """Only a chunk given details (the final one) has the `supernode` object; a tool call
    streams its name once, then arguments; later choices of a batch get their own role."""
    from services.scheduler.responses import ToolCallOut

    chat = ChunkWriter(CHAT, "chatcmpl-1", 5, "m", include_usage=False)
    plain = json.loads(chat.content(" a", None)[6:])
    final = json.loads(chat.content(" b", "stop", details={"decode_worker": "d"})[6:])
    assert "supernode" not in plain and final["supernode"] == {"decode_worker": "d"}
    call = ToolCallOut("call-1", "f", "")
    first = json.loads(chat.tool_call(1, call, '{"a"', True, None)[6:])["choices"][0]
    more = json.loads(chat.tool_call(1, call, ": 1}", False, "tool_calls")[6:])["choices"][0]
    assert first["index"] == 1 and first["delta"]["role"] == "assistant"
    assert first["delta"]["tool_calls"][0] == {"index": 0, "id": "call-1", "type": "function",
                                               "function": {"name": "f", "arguments": '{"a"'}}
    assert more["delta"] == {"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]}
    assert more["finish_reason"] == "tool_calls"
