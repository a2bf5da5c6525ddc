"""Benchmarks: wsclient against raw websockets, side by side (issue 6).

Run ``python -m benchmarks``; see benchmarks/README.md.
"""
