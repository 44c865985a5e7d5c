"""Admission, escalation, KV capacity and EndpointSlice parsing: the router's small pure decisions."""

from __future__ import annotations

from typing import Any

import pytest

from thrifty.api import EscalationTrigger
from thrifty.k8s.endpoints import ready_addresses
from thrifty.router.admission import Admission, admit, retry_after_seconds
from thrifty.router.escalation import escalation_target, trigger_for_status
from thrifty.router.kv_capacity import kv_capacity_tokens

ALL = tuple(EscalationTrigger)


@pytest.mark.parametrize(
    ("has_room", "queued", "limit", "expected"),
    [
        (True, 0, 10, Admission.DISPATCH),
        (True, 3, 10, Admission.QUEUE),  # never overtake those already waiting
        (False, 0, 10, Admission.QUEUE),
        (False, 10, 10, Admission.REJECT),
        (False, 0, 0, Admission.REJECT),
    ],
)
def test_admission(has_room: bool, queued: int, limit: int, expected: Admission) -> None:
    assert admit(has_room=has_room, queued=queued, queue_limit=limit) == expected


def test_retry_after_is_a_whole_queue_timeout_and_at_least_a_second() -> None:
    assert (retry_after_seconds(0.2), retry_after_seconds(30), retry_after_seconds(2.5)) == (1, 30, 3)


@pytest.mark.parametrize(
    ("status", "trigger"),
    [
        (200, None),
        (400, None),
        (404, None),
        (429, EscalationTrigger.OVERLOAD),
        (503, EscalationTrigger.OVERLOAD),
        (500, EscalationTrigger.ERROR),
        (502, EscalationTrigger.ERROR),
    ],
)
def test_upstream_status_triggers(status: int, trigger: EscalationTrigger | None) -> None:
    assert trigger_for_status(status) == trigger


def test_failure_escalates_once_to_the_next_tier() -> None:
    target = escalation_target(
        0, 3, EscalationTrigger.ERROR, allowed=ALL, escalations_so_far=0, response_started=False
    )

    assert target == 1


@pytest.mark.parametrize(
    ("tier", "allowed", "so_far", "started"),
    [
        (2, ALL, 0, False),  # the top tier has nothing above it
        (0, ALL, 1, False),  # one retry at most
        (0, ALL, 0, True),  # never after the answer started
        (0, (EscalationTrigger.TIMEOUT,), 0, False),  # not a listed trigger
    ],
)
def test_no_escalation(tier: int, allowed: tuple[EscalationTrigger, ...], so_far: int, started: bool) -> None:
    target = escalation_target(
        tier, 3, EscalationTrigger.ERROR, allowed=allowed, escalations_so_far=so_far, response_started=started
    )

    assert target is None


def test_kv_capacity_from_vllm_cache_config_info() -> None:
    exposition = (
        "# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig\n"
        'vllm:cache_config_info{block_size="16",cache_dtype="auto",num_gpu_blocks="28363",engine="0"} 1.0\n'
    )

    assert kv_capacity_tokens(exposition) == 453_808
    assert kv_capacity_tokens("vllm:num_requests_running 3\n") is None
    assert kv_capacity_tokens('vllm:cache_config_info{block_size="16",num_gpu_blocks="None"} 1\n') is None


def endpoint_slice(
    service: str | None, endpoints: list[dict[str, Any]], ports: list[dict[str, Any]]
) -> dict[str, Any]:
    labels = {"kubernetes.io/service-name": service} if service else {}
    return {"metadata": {"name": f"{service}-x", "labels": labels}, "endpoints": endpoints, "ports": ports}


def test_only_ready_endpoints_count() -> None:
    slices = [
        endpoint_slice(
            "llama-8b",
            [
                {"addresses": ["10.244.0.5"], "conditions": {"ready": True}},
                {"addresses": ["10.244.0.6"], "conditions": {"ready": False}},
                {"addresses": ["10.244.0.7"], "conditions": {"ready": False, "terminating": True}},
                {"addresses": ["10.244.0.8"]},  # unknown reads as ready, as the API asks
            ],
            [{"name": "metrics", "port": 9090}, {"name": "http", "port": 8000}],
        ),
        endpoint_slice(
            "llama-8b", [{"addresses": ["10.244.1.9"], "conditions": {"ready": True}}], [{"port": 8001}]
        ),
        endpoint_slice("llama-70b", [], [{"port": 8000}]),
        endpoint_slice(None, [{"addresses": ["10.0.0.1"]}], [{"port": 80}]),
    ]

    assert ready_addresses(slices) == {
        "llama-8b": ("10.244.0.5:8000", "10.244.0.8:8000", "10.244.1.9:8001"),
        "llama-70b": (),
    }


def test_ipv6_addresses_are_bracketed() -> None:
    slices = [
        endpoint_slice("svc", [{"addresses": ["fd00::5"], "conditions": {"ready": True}}], [{"port": 8000}])
    ]

    assert ready_addresses(slices) == {"svc": ("[fd00::5]:8000",)}
