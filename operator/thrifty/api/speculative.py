"""`spec.speculative`: speculative decoding, proposing several tokens per step and verifying them in
one forward pass of the target model. It lowers inter-token latency when the GPU is memory-bound
(small batches) and costs compute, so it pays off at low to medium load."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import ConfigDict, Field, model_validator

from thrifty.api.base import CelRule, SpecModel, cel_rules
from thrifty.api.model import Source

SpeculativeMethod = Literal["draft", "ngram", "eagle", "eagle3", "mtp"]

# The `method` key of vLLM's --speculative-config JSON for each of ours.
VLLM_SPECULATIVE_METHOD: dict[str, str] = {
    "draft": "draft_model",
    "ngram": "ngram",
    "eagle": "eagle",
    "eagle3": "eagle3",
    "mtp": "mtp",
}

TOKENIZER_MUST_MATCH = CelRule(
    rule="self.tokenizerCompatible == true",
    message=(
        "spec.speculative.draftModel.tokenizerCompatible must be true: a draft model proposes token "
        "ids, so it must share the target's tokenizer and vocabulary; pick a draft from the same "
        "model family (e.g. Llama-3.2-1B-Instruct for Llama-3.1-70B-Instruct)"
    ),
    field_path=".tokenizerCompatible",
)
NGRAM_MIN_LE_MAX = CelRule(
    rule="!has(self.promptLookupMin) || !has(self.promptLookupMax) || self.promptLookupMin <= self.promptLookupMax",
    message="spec.speculative.ngram.promptLookupMin must be less than or equal to promptLookupMax",
    field_path=".promptLookupMin",
)
DRAFT_MODEL_IFF_DRAFT = CelRule(
    rule="has(self.draftModel) == (self.method == 'draft')",
    message=(
        "spec.speculative.draftModel is required when method is draft and not allowed with any "
        "other method: add draftModel {source, tokenizerCompatible: true}, or remove it"
    ),
    field_path=".draftModel",
)
EAGLE_HEAD_IFF_EAGLE = CelRule(
    rule="has(self.eagleHead) == (self.method == 'eagle' || self.method == 'eagle3')",
    message=(
        "spec.speculative.eagleHead is required when method is eagle or eagle3 and not allowed with "
        "any other method: add eagleHead {source}, or remove it"
    ),
    field_path=".eagleHead",
)
NGRAM_ONLY_WITH_NGRAM = CelRule(
    rule="!has(self.ngram) || self.method == 'ngram'",
    message="spec.speculative.ngram is only allowed when method is ngram: remove it or set method: ngram",
    field_path=".ngram",
)
TOKENS_UNLESS_MTP = CelRule(
    rule="self.method == 'mtp' || has(self.numSpeculativeTokens)",
    message=(
        "spec.speculative.numSpeculativeTokens is required for methods draft, ngram, eagle and eagle3 "
        "(only mtp can take it from the model's config): set it, e.g. 4"
    ),
    field_path=".numSpeculativeTokens",
)


class DraftModelSpec(SpecModel):
    """A small model of the same family that proposes tokens for the target to verify."""

    model_config = ConfigDict(json_schema_extra=cel_rules(TOKENIZER_MUST_MATCH))

    source: Source
    """Where the draft weights are, with the same schemes as spec.model.source and the same
    credentials Secret. Becomes `model` in vLLM `--speculative-config`. Example:
    `hf://meta-llama/Llama-3.2-1B-Instruct`."""

    tokenizer_compatible: bool
    """Your declaration that the draft uses the target's tokenizer and vocabulary. Must be true:
    the target verifies the draft's token ids, so ids from another vocabulary mean other tokens,
    nearly all proposals are rejected and the draft only burns GPU time. Example: `true`."""

    @model_validator(mode="after")
    def _tokenizer_declared_compatible(self) -> Self:
        if not self.tokenizer_compatible:
            raise TOKENIZER_MUST_MATCH.violation("tokenizerCompatible: false")
        return self


class EagleHeadSpec(SpecModel):
    """An EAGLE or EAGLE-3 draft head trained for the target model."""

    source: Source
    """Where the head's weights are, e.g. `hf://yuhuili/EAGLE3-LLaMA3.1-Instruct-8B`. It must be
    trained for exactly the target model. Becomes `model` in vLLM `--speculative-config`."""


class NgramSpec(SpecModel):
    """Prompt-lookup speculation: propose the tokens that followed the longest recent n-gram
    match in the prompt. No extra model; works well for summarisation, code edits and RAG, where
    the output repeats the input."""

    model_config = ConfigDict(json_schema_extra=cel_rules(NGRAM_MIN_LE_MAX))

    prompt_lookup_min: Annotated[int, Field(ge=1, le=32)] | None = None
    """Shortest n-gram to match, in tokens (vLLM `prompt_lookup_min`). Example: `2`."""

    prompt_lookup_max: Annotated[int, Field(ge=1, le=32)] | None = None
    """Longest n-gram to match, in tokens (vLLM `prompt_lookup_max`). Example: `5`."""

    @model_validator(mode="after")
    def _min_not_above_max(self) -> Self:
        low, high = self.prompt_lookup_min, self.prompt_lookup_max
        if low is not None and high is not None and low > high:
            raise NGRAM_MIN_LE_MAX.violation(f"promptLookupMin {low} > promptLookupMax {high}")
        return self


class SpeculativeSpec(SpecModel):
    """Speculative decoding, rendered as vLLM `--speculative-config` (a JSON object)."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            DRAFT_MODEL_IFF_DRAFT, EAGLE_HEAD_IFF_EAGLE, NGRAM_ONLY_WITH_NGRAM, TOKENS_UNLESS_MTP
        )
    )

    method: SpeculativeMethod
    """How tokens are proposed:

    - `draft`: a small model of the same family (needs `draftModel`).
    - `ngram`: prompt lookup, no extra model (optional `ngram` settings).
    - `eagle`, `eagle3`: an EAGLE draft head trained for the target (needs `eagleHead`).
    - `mtp`: the target's own multi-token-prediction layers (DeepSeek-V3, Qwen3-Next, ...).

    Becomes `method` in `--speculative-config` (`draft` is vLLM's `draft_model`). Example: `ngram`."""

    num_speculative_tokens: Annotated[int, Field(ge=1, le=16)] | None = None
    """Tokens proposed per step (vLLM `num_speculative_tokens`). More tokens help when most are
    accepted and waste compute when they are not; 3 to 5 is typical. Required except for `mtp`,
    which defaults to the model's number of MTP layers. Example: `4`."""

    draft_model: DraftModelSpec | None = None
    """The draft model; required for method `draft`, not allowed otherwise."""

    eagle_head: EagleHeadSpec | None = None
    """The EAGLE head; required for methods `eagle` and `eagle3`, not allowed otherwise."""

    ngram: NgramSpec | None = None
    """N-gram settings; only with method `ngram`. Unset values take vLLM's defaults."""

    @model_validator(mode="after")
    def _parameters_fit_the_method(self) -> Self:
        method = self.method
        if (self.draft_model is not None) != (method == "draft"):
            raise DRAFT_MODEL_IFF_DRAFT.violation(
                f"method {method}, draftModel {_presence(self.draft_model)}"
            )
        if (self.eagle_head is not None) != (method in ("eagle", "eagle3")):
            raise EAGLE_HEAD_IFF_EAGLE.violation(f"method {method}, eagleHead {_presence(self.eagle_head)}")
        if self.ngram is not None and method != "ngram":
            raise NGRAM_ONLY_WITH_NGRAM.violation(f"method {method}")
        if self.num_speculative_tokens is None and method != "mtp":
            raise TOKENS_UNLESS_MTP.violation(f"method {method} without numSpeculativeTokens")
        return self

    @property
    def vllm_method(self) -> str:
        return VLLM_SPECULATIVE_METHOD[self.method]


def _presence(value: object) -> str:
    return "set" if value is not None else "missing"
