"""The benchmark suite's traffic shapes: seeded, in the Azure format, with the shape each promises."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest
from bench.autoscale.shapes import SHAPES, generate, write_suite
from bench.autoscale.suite import judge
from bench.autoscale.traffic import load_trace


def _per_minute(rows: list[tuple[float, int, int]]) -> list[int]:
    counts = [0] * 60
    for arrival, _, _ in rows:
        counts[int(arrival // 60)] += 1
    return counts


def test_a_seed_gives_the_same_trace_and_another_seed_another() -> None:
    shape = SHAPES["step"]
    assert generate(shape, seed=3) == generate(shape, seed=3)
    assert generate(shape, seed=3) != generate(shape, seed=4)


def test_the_files_load_as_azure_traces_with_their_arrival_times(tmp_path: Path) -> None:
    paths = write_suite(tmp_path, seed=1, names=["chat"])
    rows = generate(SHAPES["chat"], seed=1)
    loaded = load_trace(paths["chat"])
    assert len(loaded) == len(rows)
    assert loaded[-1].arrival_s == pytest.approx(rows[-1][0] - rows[0][0], abs=1e-5)
    assert [(r.prompt_tokens, r.output_tokens) for r in loaded[:50]] == [(p, o) for _, p, o in rows[:50]]


def test_unknown_shapes_are_named_in_the_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown shapes sawtooth.*diurnal"):
        write_suite(tmp_path, seed=1, names=["sawtooth"])


def test_each_shape_has_the_form_its_name_promises() -> None:
    minutes = {name: _per_minute(generate(shape, seed=1)) for name, shape in SHAPES.items()}
    diurnal = minutes["diurnal"]
    assert statistics.mean(diurnal[27:33]) > 6 * statistics.mean(diurnal[:3])
    flash = minutes["flash-crowd"]
    assert statistics.mean(flash[22:25]) > 4 * statistics.mean(flash[5:18])
    step = minutes["step"]
    assert statistics.mean(step[16:39]) > 2.5 * statistics.mean(step[:14] + step[41:])
    on_off = minutes["on-off"]
    assert all(on_off[m] == 0 for m in (7, 10, 17, 25, 53))
    assert min(on_off[0:6]) > 0
    rag = generate(SHAPES["rag"], seed=1)
    chat = generate(SHAPES["chat"], seed=1)
    assert statistics.median(p for _, p, _ in rag) > 10 * statistics.median(p for _, p, _ in chat)


def _line(thrifty: float, best: float, bound: float, attainment: float = 1.0) -> dict[str, float]:
    return {
        "thrifty_gpu_hours": thrifty,
        "best_baseline_gpu_hours": best,
        "clairvoyant_gpu_hours": bound,
        "thrifty_saving_vs_best_baseline": 1 - thrifty / best,
        "thrifty_slo_attainment": attainment,
    }


def test_the_goal_asks_for_a_saving_only_where_the_bound_leaves_room() -> None:
    assert judge(_line(8.0, 10.0, 6.0)) == (">= 15% fewer", True, pytest.approx(0.4))
    assert judge(_line(9.0, 10.0, 6.0))[1] is False
    assert judge(_line(8.0, 10.0, 6.0, attainment=0.98))[1] is False
    # Flat traffic: the bound is close to the baseline, so matching it is the goal.
    assert judge(_line(9.9, 10.0, 9.0))[:2] == ("no more", True)
    assert judge(_line(10.2, 10.0, 9.0))[1] is False
