"""xaikit-ultimus: the ULTIMUS reference model as an xaikit plugin (entry point ``ultimus``)."""

from xaikit_ultimus.model import Ultimus, UltimusBlock, build_ultimus, ultimus_block_reference

__all__ = ["Ultimus", "UltimusBlock", "build_ultimus", "ultimus_block_reference"]
