"""Request validation: what the emulator refuses, and seeds over vLLM's range."""

import pytest
from pydantic import ValidationError

from services.scheduler.openai_api import (
    ApiError,
    ChatCompletionRequest,
    CompletionRequest,
    check_request,
    completion_prompts,
)
from supernode.config import ApiConfig

LIMITS = ApiConfig(max_stop_strings=4, max_stop_string_chars=8, max_batch_prompts=3)


def completion(**fields) -> CompletionRequest:
    return CompletionRequest.model_validate({"model": "m", "prompt": "x", **fields})


@pytest.mark.parametrize("fields, param", [
    ({"n": 129}, "n"), ({"n": 2, "response_format": {"type": "json_object"}}, "n"),
    ({"best_of": 3}, "best_of"), ({"logit_bias": {"5": 1.0}}, "logit_bias"),
    ({"stop": ["a"] * 5}, "stop"), ({"stop": "x" * 9}, "stop"), ({"logprobs": 21}, "logprobs"),
    ({"suffix": "end"}, "suffix"), ({"min_tokens": 3}, "min_tokens"),
])
def test_what_cannot_be_honoured_is_a_400(fields: dict, param: str) -> None:
    """Each field the emulator cannot honour, or a limit exceeded, is ApiError(400, param)."""
    with pytest.raises(ApiError) as e:
        check_request(completion(**fields), LIMITS)
    assert e.value.status == 400 and e.value.param == param


def test_chat_extensions_it_cannot_honour_are_a_400() -> None:
    """vLLM's chat `echo` and `continue_final_message` are refused, not ignored."""
    base = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    for name in ("echo", "continue_final_message"):
        with pytest.raises(ApiError) as e:
            check_request(ChatCompletionRequest.model_validate({**base, name: True}), LIMITS)
        assert e.value.param == name


def test_seeds_take_vllms_range_and_reduce() -> None:
    """Seeds over int64 validate (vLLM's range) and reduce modulo 2^63; outside it they do
    not validate at all."""
    assert completion(seed=-1).internal_seed() == 2**63 - 1
    assert completion(seed=2**63 - 1).internal_seed() == 2**63 - 1
    assert completion(seed=5).internal_seed() == 5
    for bad in (2**63, 2**64, -(2**63) - 1):
        with pytest.raises(ValidationError):
            completion(seed=bad)


def test_batched_prompts_are_bounded() -> None:
    """A list of prompts is a batch, up to max_batch_prompts; one id list is one prompt."""
    assert completion_prompts([1, 2, 3], LIMITS) == [[1, 2, 3]]
    assert completion_prompts(["a", "b"], LIMITS) == ["a", "b"]
    with pytest.raises(ApiError):
        completion_prompts(["a"] * 4, LIMITS)


def test_chat_top_logprobs_need_logprobs() -> None:
    """top_logprobs without logprobs: true is a 400; with it, the count is returned."""
    base = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    with pytest.raises(ApiError):
        ChatCompletionRequest.model_validate({**base, "top_logprobs": 2}).num_top_logprobs()
    chat = ChatCompletionRequest.model_validate({**base, "logprobs": True, "top_logprobs": 2})
    assert chat.num_top_logprobs() == 2


def test_n_with_tools_is_a_400_unless_tools_are_off() -> None:
    """Parallel sampling does not combine with planned replies (a tool call may be made)."""
    base = {"model": "m", "messages": [{"role": "user", "content": "x"}], "n": 2,
            "tools": [{"type": "function", "function": {"name": "f"}}]}
    with pytest.raises(ApiError) as e:
        check_request(ChatCompletionRequest.model_validate(base), LIMITS)
    assert e.value.param == "n"
    check_request(ChatCompletionRequest.model_validate({**base, "tool_choice": "none"}), LIMITS)
