"""The routing policies compared, each written from its published description.

- `RoundRobin`: each replica in turn (a Kubernetes Service behind kube-proxy in IPVS round-robin).
- `LeastLoad`: fewest requests in flight (KubeAI's `LeastLoad` strategy; ties to the lowest index).
- `KubeAIPrefixHash`: KubeAI's `PrefixHash` strategy, consistent hashing with bounded loads on the
  start of the first user message (KubeAI docs, concepts/load-balancing; defaults
  `meanLoadFactor: 125`, `replication: 256`, `prefixCharLength: 100`). The traces carry no text, so
  the key is the request's first 1,024 tokens of prefix identity (the Mooncake trace's first two
  512-token blocks: the shared system prompt and the opening of the conversation), which stays
  the same on every turn of a conversation as the first user message does.
- `LlmdApproximatePrefix`: llm-d's inference scheduler with its default scorers (prefix-cache
  scorer weight 3, queue scorer weight 2, KV-cache utilization scorer weight 2, max-score picker;
  llm-d-inference-scheduler README and default EndpointPickerConfig). The prefix scorer keeps an
  LRU index of the 64-token blocks it sent to each pod (at most 256 blocks per prompt, capacity
  auto-tuned to the pod's KV cache) and scores matched/total blocks; the queue scorer min-max
  normalises waiting queues; the KV scorer is 1 - usage.
- `ThriftyPolicy`: Thrifty's router itself: `thrifty.router.tier_state.TierState`, the same code
  the router process runs, with key PrefixBlocks and the API's defaults.

Prefix identity for the prefix policies comes from the trace's 16-token KV-block hashes: every
fourth one names a 64-token block with everything before it, as the router's text blocks do.
"""

from __future__ import annotations

from bench.router.replay import Fleet

from thrifty.api import AffinitySpec
from thrifty.router.balancer import ReplicaLoad, pick_on_ring
from thrifty.router.hash_ring import HashRing
from thrifty.router.prefix_blocks import BLOCK_TOKENS, MAX_BLOCKS, key_hash
from thrifty.router.prefix_index import PrefixIndex
from thrifty.router.tier_state import RequestIdentity, Ticket, TierState
from thrifty.twin import TraceRequest

KV_BLOCKS_PER_ROUTER_BLOCK = 4
CONVERSATION_KEY_KV_BLOCKS = 64
"""1,024 tokens of 16-token KV blocks: the stand-in for "the first user message"."""
UNCAPPED = 1 << 30


def router_blocks(request: TraceRequest) -> tuple[int, ...]:
    """The request's 64-token prefix blocks, from its 16-token KV-block hashes."""
    hashes = request.block_hashes
    return tuple(hashes[KV_BLOCKS_PER_ROUTER_BLOCK - 1 :: KV_BLOCKS_PER_ROUTER_BLOCK][:MAX_BLOCKS])


def conversation_key(request: TraceRequest) -> int:
    """A stable hash of the request's first 1,024 tokens of prefix (its id when it has no blocks)."""
    hashes = request.block_hashes
    if not hashes:
        return key_hash(request.request_id)
    return key_hash(str(hashes[min(len(hashes), CONVERSATION_KEY_KV_BLOCKS) - 1]))


class _Stateless:
    name = ""

    def first_token(self, request_id: str) -> None:
        return None

    def finished(self, request_id: str) -> None:
        return None


class RoundRobin(_Stateless):
    name = "round-robin"

    def __init__(self) -> None:
        self._turn = 0

    def pick(self, request: TraceRequest, fleet: Fleet) -> int:
        self._turn += 1
        return (self._turn - 1) % fleet.size


class LeastLoad(_Stateless):
    name = "least-load"

    def pick(self, request: TraceRequest, fleet: Fleet) -> int:
        return min(range(fleet.size), key=lambda replica: (fleet.in_flight(replica), replica))


class KubeAIPrefixHash(_Stateless):
    name = "kubeai-chwbl"

    def __init__(self, mean_load_factor: float = 1.25) -> None:
        self._factor = mean_load_factor
        self._ring: HashRing | None = None

    def pick(self, request: TraceRequest, fleet: Fleet) -> int:
        if self._ring is None or len(self._ring.replicas) != fleet.size:
            self._ring = HashRing([f"replica-{index}" for index in range(fleet.size)])
        loads = [ReplicaLoad(fleet.in_flight(index), UNCAPPED) for index in range(fleet.size)]
        pick = pick_on_ring(self._ring.walk(conversation_key(request)), loads, self._factor)
        assert pick is not None
        return pick.index


class LlmdApproximatePrefix(_Stateless):
    name = "llm-d-approx-prefix"

    def __init__(
        self,
        *,
        kv_capacity_tokens: int,
        prefix_weight: float = 3.0,
        queue_weight: float = 2.0,
        kv_weight: float = 2.0,
    ) -> None:
        self._index = PrefixIndex(default_capacity_blocks=max(1, kv_capacity_tokens // BLOCK_TOKENS))
        self._weights = (prefix_weight, queue_weight, kv_weight)

    def pick(self, request: TraceRequest, fleet: Fleet) -> int:
        blocks = router_blocks(request)
        matched = self._index.match(blocks)
        queues = [fleet.waiting(index) for index in range(fleet.size)]
        low, high = min(queues), max(queues)
        prefix_weight, queue_weight, kv_weight = self._weights
        best_index, best_score = 0, -1.0
        for index in range(fleet.size):
            prefix = matched.get(index, 0) / len(blocks) if blocks else 0.0
            queue = 1.0 if high == low else (high - queues[index]) / (high - low)
            kv = 1.0 - fleet.kv_usage(index)
            score = prefix_weight * prefix + queue_weight * queue + kv_weight * kv
            if score > best_score:
                best_index, best_score = index, score
        self._index.record(best_index, blocks)
        return best_index


class ThriftyPolicy:
    name = "thrifty"

    def __init__(
        self,
        *,
        kv_capacity_tokens: int,
        affinity: AffinitySpec | None = None,
        miss_weight: float | None = None,
    ) -> None:
        self._state = TierState("bench", affinity=affinity or AffinitySpec(), cap=UNCAPPED)
        if miss_weight is not None:
            self._state.miss_weight = miss_weight
        self._kv_capacity_tokens = kv_capacity_tokens
        self._tickets: dict[str, Ticket] = {}
        self._size = 0

    def pick(self, request: TraceRequest, fleet: Fleet) -> int:
        if fleet.size != self._size:
            self._size = fleet.size
            names = [f"replica-{index:03d}" for index in range(fleet.size)]
            self._state.set_replicas(names)
            for name in names:
                self._state.set_kv_capacity(name, self._kv_capacity_tokens)
        identity = RequestIdentity(request.prompt_tokens, conversation_key(request), router_blocks(request))
        routed = self._state.route_identified(identity)
        assert routed is not None
        self._tickets[request.request_id] = routed.ticket
        return int(routed.replica.removeprefix("replica-"))

    def first_token(self, request_id: str) -> None:
        ticket = self._tickets.get(request_id)
        if ticket is not None:
            self._state.first_token(ticket)

    def finished(self, request_id: str) -> None:
        ticket = self._tickets.pop(request_id, None)
        if ticket is not None:
            self._state.finish(ticket)


AnyPolicy = RoundRobin | LeastLoad | KubeAIPrefixHash | LlmdApproximatePrefix | ThriftyPolicy


def all_policies(kv_capacity_tokens: int) -> list[AnyPolicy]:
    """Fresh instances of every compared policy, baselines first."""
    return [
        RoundRobin(),
        LeastLoad(),
        KubeAIPrefixHash(),
        LlmdApproximatePrefix(kv_capacity_tokens=kv_capacity_tokens),
        ThriftyPolicy(kv_capacity_tokens=kv_capacity_tokens),
    ]
