"""Synthetic scenes in the real ScanNet formats for the demo and the tests: rooms, their
frames ray-cast from the mesh (`raycast`), and benchmark annotations (`annotations`).
"""
