"""Every example in examples/ is a valid InferenceModel, and together they show what the issue asks."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from thrifty.api import API_VERSION, InferenceModel
from thrifty.testbed.cluster import TESTBED_DIR
from thrifty.testbed.nodes import load_node_profile

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))


def load(path: Path) -> InferenceModel:
    return InferenceModel.model_validate(yaml.safe_load(path.read_text()))


def by_name() -> dict[str, InferenceModel]:
    return {model.name: model for model in map(load, EXAMPLES)}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_is_a_valid_namespaced_inference_model(path: Path) -> None:
    model = load(path)
    assert model.api_version == API_VERSION
    assert model.namespace, f"{path.name} must name its namespace"
    assert path.read_text().startswith("#"), f"{path.name} must open with a comment that says what it shows"


def test_examples_run_on_gpus_the_testbed_offers() -> None:
    products = {pool.gpu.product for pool in load_node_profile(TESTBED_DIR / "nodes.yaml").pools if pool.gpu}
    assert {model.gpu_product for model in by_name().values()} <= products


def test_llama_8b_runs_fp8_on_one_h100() -> None:
    model = by_name()["llama-8b"]
    assert model.spec.model.source == "hf://meta-llama/Llama-3.1-8B-Instruct"
    assert model.spec.quantization.method == "fp8"
    assert (model.gpu_product, model.gpu_count) == ("NVIDIA-H100-80GB-HBM3", 1)


def test_llama_70b_runs_awq_over_four_h100s_with_a_1b_draft_model() -> None:
    model = by_name()["llama-70b"]
    assert "Llama-3.1-70B-Instruct-AWQ" in model.spec.model.source
    assert model.spec.quantization.method in ("awq", "awq_marlin")
    assert (model.gpu_product, model.gpu_count) == ("NVIDIA-H100-80GB-HBM3", 4)
    assert model.spec.resources.tensor_parallel_size == 4
    speculative = model.spec.speculative
    assert speculative is not None
    assert speculative.method == "draft"
    assert speculative.draft_model is not None
    assert speculative.draft_model.source == "hf://meta-llama/Llama-3.2-1B-Instruct"


def test_small_model_uses_ngram_speculation_and_prefix_caching_on_one_l4() -> None:
    model = by_name()["qwen-1-5b"]
    assert (model.gpu_product, model.gpu_count) == ("NVIDIA-L4", 1)
    assert model.spec.speculative is not None
    assert model.spec.speculative.method == "ngram"
    assert model.spec.batching.prefix_caching is True


def test_gated_models_take_their_token_from_a_secret() -> None:
    models = by_name()
    assert models["llama-8b"].spec.model.credentials_secret == "hf-token"
    assert models["llama-70b"].spec.model.credentials_secret == "hf-token"
