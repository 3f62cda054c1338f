"""mediamesh: one catalog for the media scattered over a LAN, without copying a byte."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mediamesh")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0"
