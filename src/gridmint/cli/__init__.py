"""The ``gridmint`` command."""
