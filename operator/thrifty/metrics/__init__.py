"""The only module that queries Prometheus: vLLM's metrics for one model, as the policy's window.

    from thrifty.metrics import ModelSelector, PrometheusMetrics
    window = PrometheusMetrics(url).window(ModelSelector(served_name, namespace), now=..., ...)

`queries` builds the PromQL (pure), `window_builder` turns answers into a `MetricsWindow` (pure),
`client` does the HTTP through prometheus-api-client.
"""

from thrifty.metrics.client import PrometheusApi, PrometheusMetrics, PrometheusWindows
from thrifty.metrics.queries import ModelSelector, WindowQueries, quote, window_queries
from thrifty.metrics.window_builder import WindowResults, build_window, share_above

__all__ = [
    "ModelSelector",
    "PrometheusApi",
    "PrometheusMetrics",
    "PrometheusWindows",
    "WindowQueries",
    "WindowResults",
    "build_window",
    "quote",
    "share_above",
    "window_queries",
]
