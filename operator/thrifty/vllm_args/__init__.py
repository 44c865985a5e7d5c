"""The argument spec of the pinned vLLM release, and validation of the flags Thrifty emits.

`spec.json` is generated from vLLM's own `vllm serve` parser (`make vllm-spec`) and committed, so the
operator checks flags without importing vLLM. Everything here is pure: stdlib only, no I/O beyond
reading the packaged spec once.

Check a Deployment's arguments (the words after `vllm serve`) before applying it:

>>> from thrifty.vllm_args import InvalidEngineArgs, validate_engine_args
>>> validate_engine_args(["meta-llama/Llama-3.1-8B-Instruct", "--quantization", "fp8", "--max-num-seqs", "256"])
>>> try:
...     validate_engine_args(["meta-llama/Llama-3.1-8B-Instruct", "--enable-prefix-cache"])
... except InvalidEngineArgs as error:
...     print(error)
--enable-prefix-cache: is not a vLLM 0.33.0 flag; did you mean --enable-prefix-caching? (args[1] = '--enable-prefix-cache')

Read them the way vLLM will (the vLLM twin does this):

>>> from thrifty.vllm_args import parse_engine_args
>>> values = parse_engine_args(["Qwen/Qwen3-0.6B", "--enable-chunked-prefill", "--kv-cache-dtype=fp8"])
>>> values["enable_chunked_prefill"], values["kv_cache_dtype"], values["gpu_memory_utilization"]
(True, 'fp8', 0.92)

Look an option up, for example to emit its documented spelling:

>>> from thrifty.vllm_args import load_spec
>>> load_spec().option("tensor_parallel_size").flag
'--tensor-parallel-size'
"""

from thrifty.vllm_args.errors import InvalidEngineArgs
from thrifty.vllm_args.parse import parse_engine_args, validate_engine_args
from thrifty.vllm_args.spec import EngineArgSpec, OptionSpec, SyntaxRules, load_spec

__all__ = [
    "EngineArgSpec",
    "InvalidEngineArgs",
    "OptionSpec",
    "SyntaxRules",
    "load_spec",
    "parse_engine_args",
    "validate_engine_args",
]
