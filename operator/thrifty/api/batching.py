"""`spec.batching`: how many sequences and tokens vLLM's continuous-batching scheduler takes per step."""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import ConfigDict, Field, model_validator

from thrifty.api.base import CelRule, SpecModel, cel_rules

DEFAULT_MAX_NUM_SEQS = 256

# vLLM refuses to start with fewer batched tokens than sequences (SchedulerConfig.verify_max_model_len
# in vllm/config/scheduler.py): every running sequence needs at least one token slot per step.
TOKENS_COVER_SEQS = CelRule(
    rule="!has(self.maxNumBatchedTokens) || !has(self.maxNumSeqs) || self.maxNumBatchedTokens >= self.maxNumSeqs",
    message=(
        "spec.batching.maxNumBatchedTokens must be greater than or equal to spec.batching.maxNumSeqs "
        "(vLLM refuses to start otherwise): raise maxNumBatchedTokens or lower maxNumSeqs"
    ),
    field_path=".maxNumBatchedTokens",
)


class BatchingSpec(SpecModel):
    """Scheduler limits of one vLLM server. `maxNumSeqs` is the engine-side batch limit that
    Thrifty's control loop tunes (see spec.scaling.tuneMaxNumSeqs)."""

    model_config = ConfigDict(json_schema_extra=cel_rules(TOKENS_COVER_SEQS))

    max_num_seqs: Annotated[int, Field(ge=1, le=8192)] = DEFAULT_MAX_NUM_SEQS
    """Most sequences (requests) one server runs in a batch at once (vLLM `--max-num-seqs`);
    further requests wait in its queue. Thrifty always passes this flag, so the limit does not
    depend on vLLM's version- and GPU-dependent default. Higher values raise throughput until the
    KV cache runs out (then vLLM preempts); lower values protect latency. Default 256. Example: `128`."""

    max_num_batched_tokens: Annotated[int, Field(ge=1, le=1_048_576)] | None = None
    """Most tokens (prompt chunks plus one per decoding sequence) processed in one scheduler step
    (vLLM `--max-num-batched-tokens`). Larger values speed up prefill and raise time-to-first-token
    variance for others; unset takes vLLM's default for the GPU, or, with
    spec.scaling.tuneMaxNumSeqs enabled, the control loop's choice for the observed request mix
    (status.desired.engineMaxNumBatchedTokens). Must be at least `maxNumSeqs`,
    and at least spec.model.maxModelLen when chunkedPrefill is false. Example: `8192`."""

    chunked_prefill: bool | None = None
    """Split long prompts into chunks that share steps with decoding sequences (vLLM
    `--enable-chunked-prefill` / `--no-enable-chunked-prefill`). Keeps inter-token latency steady
    under long prompts. Unset keeps vLLM's default (on). Example: `true`."""

    prefix_caching: bool | None = None
    """Reuse KV-cache blocks of prompt prefixes seen before (vLLM `--enable-prefix-caching` /
    `--no-enable-prefix-caching`): shared system prompts and multi-turn chats skip most of their
    prefill. Thrifty's router keeps requests with a shared prefix on the replica that holds it.
    Unset keeps vLLM's default (on). Example: `true`."""

    gpu_memory_utilization: Annotated[float, Field(gt=0, le=1)] | None = None
    """Fraction of each GPU's memory vLLM may use for weights, activations and KV cache (vLLM
    `--gpu-memory-utilization`); the rest is left to CUDA graphs and other processes. Unset keeps
    vLLM's default (0.9). Example: `0.92`."""

    @model_validator(mode="after")
    def _batched_tokens_cover_sequences(self) -> Self:
        tokens = self.max_num_batched_tokens
        if tokens is not None and tokens < self.max_num_seqs:
            raise TOKENS_COVER_SEQS.violation(
                f"maxNumBatchedTokens {tokens} < maxNumSeqs {self.max_num_seqs}"
            )
        return self
