"""Thrifty: a Kubernetes operator that makes LLM serving on GPUs cheaper without making it worse."""

__version__ = "0.1.0"
