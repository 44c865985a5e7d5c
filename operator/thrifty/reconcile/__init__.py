"""One idempotent reconcile per object kind: read, compute the desired children, apply, report.

Every trigger (create, update, resume, resync, a child's change) ends here. The decisions are pure
(`thrifty.render`, `status`); I/O goes through `thrifty.k8s` only.
"""
