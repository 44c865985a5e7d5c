"""Every example's rendered vLLM command line is accepted by the real pinned vLLM parser and by
`EngineArgs.from_cli_args`, exactly as the pod would run it."""

from __future__ import annotations

from pathlib import Path

import yaml
from vllm_parser import check_with_real_parser

from thrifty.api import InferenceModel
from thrifty.render import desired_deployment

REPO = Path(__file__).resolve().parents[2]


def test_rendered_arguments_of_every_example_pass_the_real_vllm_parser() -> None:
    argv_by_example = {}
    for path in sorted((REPO / "examples").glob("*.yaml")):
        deployment = desired_deployment(InferenceModel.model_validate(yaml.safe_load(path.read_text())))
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert container["command"] == ["vllm", "serve"]
        argv_by_example[path.stem] = container["args"]
    assert len(argv_by_example) >= 3

    results = check_with_real_parser(list(argv_by_example.values()))
    refused = {name: r.error for name, r in zip(argv_by_example, results, strict=True) if not r.ok}
    assert refused == {}
    for (name, argv), result in zip(argv_by_example.items(), results, strict=True):
        assert result.values is not None
        assert str(result.values["max_num_seqs"]) == argv[argv.index("--max-num-seqs") + 1], name
