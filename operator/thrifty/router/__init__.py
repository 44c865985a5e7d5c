"""The router: Thrifty's data plane, one OpenAI-compatible endpoint in front of model tiers.

`thrifty router` runs `router.main`; `thrifty router train` runs `router.train`. The deciding
parts are pure modules, tested without I/O:

- `selection`: which tier serves a request (pinned tier, rules, classifier, default);
- `balancer`, `tier_state`, `prefix_index`, `hash_ring`: which replica of the tier, by prefix
  affinity weighed against queued prefill, with bounded loads and a per-replica cap;
- `admission`, `escalation`: queue or refuse; retry once on the next tier up.

`app` and `upstream` wire them to aiohttp; `thrifty.k8s.endpoints` finds the ready replicas.
"""
