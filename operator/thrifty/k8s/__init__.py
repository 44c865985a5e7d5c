"""The only package that talks to the Kubernetes API.

Everything here is plain I/O: read objects, server-side apply the children the renderer computed,
patch status, record Events. Decisions are made elsewhere, by pure functions.
"""
