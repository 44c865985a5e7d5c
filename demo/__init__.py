"""`make demo`: the product tour on the local testbed (see tour.py)."""
