"""Double-buffered dynamic textures: draw into the hidden one, then show it.

DearPyGui uploads a dynamic texture's value on the render thread. Writing the texture
that is on screen risks showing a half-updated image for one frame, so the live view
keeps two textures: :meth:`DoubleBufferedTexture.show` writes the back one with
``set_value`` and then points the image widget at it. Each texture keeps its own numpy
buffer, which the colour mapping writes in place (:func:`gui.imaging.to_rgba` ``out=``).
"""

from __future__ import annotations

import dearpygui.dearpygui as dpg
import numpy as np
import numpy.typing as npt


class DoubleBufferedTexture:
    """Two dynamic textures of one size, shown through one image widget."""

    def __init__(self, registry: int | str, height: int, width: int) -> None:
        self.height = height
        self.width = width
        self.buffers = [np.zeros((height, width, 4), np.float32) for _ in range(2)]
        for b in self.buffers:
            b[..., 3] = 1.0
        self.tags = [
            dpg.add_dynamic_texture(width, height, b.reshape(-1), parent=registry)
            for b in self.buffers
        ]
        self.front = 0

    @property
    def back_buffer(self) -> npt.NDArray[np.float32]:
        """The buffer to fill with the next image (not on screen)."""
        return self.buffers[1 - self.front]

    def show(self, image_widget: int | str) -> None:
        """Upload the back buffer and make ``image_widget`` display it."""
        back = 1 - self.front
        dpg.set_value(self.tags[back], self.buffers[back].reshape(-1))
        dpg.configure_item(image_widget, texture_tag=self.tags[back])
        self.front = back

    @property
    def front_tag(self) -> int | str:
        return self.tags[self.front]

    def delete(self) -> None:
        for tag in self.tags:
            if dpg.does_item_exist(tag):
                dpg.delete_item(tag)
