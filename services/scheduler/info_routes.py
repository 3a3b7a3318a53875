"""vLLM's and OpenAI's informational routes: /version, /v1/models[/{id}], /tokenize, /detokenize.

/tokenize counts exactly what a chat or completion request with the same content reports as
`usage.prompt_tokens` (same template, same encoding path), which `vllm bench serve` relies on.
"""

from __future__ import annotations

from importlib import metadata
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI

from services.scheduler.openai_api import (
    ApiError,
    DetokenizeRequest,
    TokenizeChatRequest,
    TokenizeCompletionRequest,
    check_token_ids,
)
from services.scheduler.prompts import chat_ids, text_ids

if TYPE_CHECKING:
    from services.scheduler.app import FrontEnd


def add_info_routes(app: FastAPI, fe: FrontEnd) -> None:
    def model_card(name: str) -> dict[str, Any]:
        m = fe.served()[name]
        return {"id": m.name, "object": "model", "created": fe.created,
                "owned_by": "supernode", "root": m.root, "parent": None,
                "max_model_len": m.max_model_len}

    def check_model(model: str | None) -> str:
        """The served model named (None: the primary)."""
        if model is None:
            return fe.model_name
        if model not in fe.served():
            raise ApiError(404, f"The model `{model}` does not exist.", "model")
        return model

    @app.get("/version")
    async def version() -> dict[str, str]:
        return {"version": metadata.version("supernode")}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [model_card(name) for name in fe.served()]}

    @app.get("/v1/models/{model_id:path}")
    async def model(model_id: str) -> dict[str, Any]:
        return model_card(check_model(model_id))

    @app.post("/tokenize")
    async def tokenize(body: TokenizeChatRequest | TokenizeCompletionRequest
                       ) -> dict[str, Any]:
        """vLLM's shape: {count, max_model_len, tokens[, token_strs]}."""
        model = check_model(body.model)
        if isinstance(body, TokenizeChatRequest):
            if body.continue_final_message:
                raise ApiError(400, "continue_final_message is not supported",
                               "continue_final_message")
            tokens = await chat_ids(fe.tokenizer, fe.limits, fe.chat_template, body.messages,
                                    body.add_generation_prompt, body.add_special_tokens)
        else:
            tokens = await text_ids(fe.tokenizer, fe.limits, body.prompt,
                                    body.add_special_tokens)
        out: dict[str, Any] = {"count": len(tokens), "max_model_len": fe.served()[model].max_model_len,
                               "tokens": tokens, "token_strs": None}
        if body.return_token_strs:
            out["token_strs"] = [fe.tokenizer.token_bytes(t).decode("utf-8", "replace")
                                 for t in tokens]
        return out

    @app.post("/detokenize")
    async def detokenize(body: DetokenizeRequest) -> dict[str, str]:
        check_model(body.model)
        if body.tokens:
            check_token_ids(body.tokens, fe.tokenizer.vocab_size, "tokens")
        return {"prompt": b"".join(map(fe.tokenizer.token_bytes, body.tokens)).decode(
            "utf-8", "replace")}
