"""Shapes of the models the twin knows, looked up by Hugging Face name.

Only shapes live here (layers, widths, vocabulary); parameter counts are derived from them so that
the weight bytes, the FLOPs per token and the KV bytes per token all come from one source. Figures
are from each model's published `config.json` on its model card.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


class UnknownModelError(ValueError):
    """The model name matches no architecture in the registry."""


@dataclass(frozen=True, slots=True)
class ModelArchitecture:
    """The shape of a decoder-only transformer, as its `config.json` states it."""

    name: str
    """Canonical short name, e.g. `llama-3.1-8b`."""
    num_layers: int
    """`num_hidden_layers`."""
    hidden_size: int
    """`hidden_size`: the residual-stream width."""
    num_attention_heads: int
    """`num_attention_heads` (query heads)."""
    num_kv_heads: int
    """`num_key_value_heads`: fewer than the query heads under grouped-query attention."""
    head_dim: int
    """Width of one attention head."""
    intermediate_size: int
    """Width of the gated MLP (three matrices: gate, up, down)."""
    vocab_size: int
    """Rows of the embedding and of the output head."""
    tied_embeddings: bool
    """True when the output head reuses the input embedding (`tie_word_embeddings`)."""
    max_position_embeddings: int
    """The longest context the model supports: vLLM's default `max_model_len`."""
    qkv_bias: bool = False
    """Qwen2 family: biases on the query, key and value projections."""

    @property
    def params_per_layer(self) -> int:
        """Parameters of one decoder layer: attention projections, gated MLP, two norms."""
        q_width = self.num_attention_heads * self.head_dim
        kv_width = self.num_kv_heads * self.head_dim
        attention = self.hidden_size * (q_width + 2 * kv_width) + q_width * self.hidden_size
        if self.qkv_bias:
            attention += q_width + 2 * kv_width
        mlp = 3 * self.hidden_size * self.intermediate_size
        return attention + mlp + 2 * self.hidden_size

    @property
    def body_params(self) -> int:
        """Parameters that every token passes through: the decoder layers and the final norm."""
        return self.num_layers * self.params_per_layer + self.hidden_size

    @property
    def head_params(self) -> int:
        """Parameters of the output head (logits); read once per sampled token position."""
        return self.vocab_size * self.hidden_size

    @property
    def embedding_params(self) -> int:
        """Parameters of the input embedding; zero extra when the head shares them."""
        return 0 if self.tied_embeddings else self.vocab_size * self.hidden_size

    @property
    def total_params(self) -> int:
        """All parameters, as a model card counts them."""
        return self.body_params + self.head_params + self.embedding_params

    @property
    def kv_elements_per_token(self) -> int:
        """Key and value elements one token of context stores, over all layers."""
        return 2 * self.num_layers * self.num_kv_heads * self.head_dim


def _llama(
    name: str, layers: int, hidden: int, heads: int, kv: int, head_dim: int, mlp: int, *, tied: bool
) -> ModelArchitecture:
    return ModelArchitecture(name, layers, hidden, heads, kv, head_dim, mlp, 128256, tied, 131072)


def _qwen25(
    name: str, layers: int, hidden: int, heads: int, kv: int, mlp: int, vocab: int, *, tied: bool
) -> ModelArchitecture:
    head_dim = hidden // heads
    return ModelArchitecture(
        name, layers, hidden, heads, kv, head_dim, mlp, vocab, tied, 32768, qkv_bias=True
    )


def _qwen3(name: str, layers: int, hidden: int, heads: int, mlp: int, *, tied: bool) -> ModelArchitecture:
    return ModelArchitecture(name, layers, hidden, heads, 8, 128, mlp, 151936, tied, 40960)


_REGISTRY: dict[str, ModelArchitecture] = {
    arch.name: arch
    for arch in (
        _llama("llama-3.2-1b", 16, 2048, 32, 8, 64, 8192, tied=True),
        _llama("llama-3.2-3b", 28, 3072, 24, 8, 128, 8192, tied=True),
        _llama("llama-3.1-8b", 32, 4096, 32, 8, 128, 14336, tied=False),
        _llama("llama-3.1-70b", 80, 8192, 64, 8, 128, 28672, tied=False),
        _llama("llama-3.3-70b", 80, 8192, 64, 8, 128, 28672, tied=False),
        _llama("llama-3.1-405b", 126, 16384, 128, 8, 128, 53248, tied=False),
        _qwen25("qwen2.5-0.5b", 24, 896, 14, 2, 4864, 151936, tied=True),
        _qwen25("qwen2.5-1.5b", 28, 1536, 12, 2, 8960, 151936, tied=True),
        _qwen25("qwen2.5-3b", 36, 2048, 16, 2, 11008, 151936, tied=True),
        _qwen25("qwen2.5-7b", 28, 3584, 28, 4, 18944, 152064, tied=False),
        _qwen25("qwen2.5-14b", 48, 5120, 40, 8, 13824, 152064, tied=False),
        _qwen25("qwen2.5-32b", 64, 5120, 40, 8, 27648, 152064, tied=False),
        _qwen25("qwen2.5-72b", 80, 8192, 64, 8, 29568, 152064, tied=False),
        _qwen3("qwen3-0.6b", 28, 1024, 16, 3072, tied=True),
        _qwen3("qwen3-1.7b", 28, 2048, 16, 6144, tied=True),
        _qwen3("qwen3-4b", 36, 2560, 32, 9728, tied=True),
        _qwen3("qwen3-8b", 36, 4096, 32, 12288, tied=False),
        _qwen3("qwen3-14b", 40, 5120, 40, 17408, tied=False),
        _qwen3("qwen3-32b", 64, 5120, 64, 25600, tied=False),
        ModelArchitecture("mistral-7b", 32, 4096, 32, 8, 128, 14336, 32768, False, 32768),
    )
}

# Hugging Face names carry organisation prefixes and variant suffixes ("meta-llama/Meta-Llama-3.1-8B-
# Instruct-FP8"); the canonical key must appear as a whole token in the lower-cased name.
_KEY_END = r"(?![0-9a-z.])"


def known_models() -> list[str]:
    """Canonical names of every architecture in the registry."""
    return sorted(_REGISTRY)


def architecture_for(model: str) -> ModelArchitecture:
    """The architecture of a Hugging Face model name or path, e.g. `meta-llama/Llama-3.1-8B-Instruct`.

    Matching ignores the organisation, a `Meta-` prefix and suffixes such as `-Instruct`, `-AWQ` or
    `-FP8`, and a `v0.x` version on Mistral. Raises `UnknownModelError` naming the known models.
    """
    name = model.lower().rsplit("/", 1)[-1].replace("meta-llama-", "llama-").replace("_", "-")
    name = re.sub(r"-v0\.\d+", "", name)
    matches = [key for key in _REGISTRY if re.search(re.escape(key) + _KEY_END, name)]
    if not matches:
        raise UnknownModelError(
            f"model {model!r}: the twin has no architecture for it; known: {', '.join(known_models())} "
            "(add its shape to thrifty/twin/architectures.py)"
        )
    return _REGISTRY[max(matches, key=len)]
