"""The labd desktop client (DearPyGui).

The modules split in two: pure functions that turn data into pixels and plot points
(:mod:`gui.colormaps`, :mod:`gui.imaging`, :mod:`gui.traces`, :mod:`gui.controls`), which
import no DearPyGui and are unit-tested on their own, and the DearPyGui side
(:mod:`gui.app`, :mod:`gui.panels`, :mod:`gui.textures`) that only draws what the
network thread (:mod:`gui.network`) last delivered.
"""
