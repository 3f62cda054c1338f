"""The ``mediamesh`` command line: one module per command group."""
