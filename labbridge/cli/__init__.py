"""The ``labbridge`` command: thin typer commands over the rooms below. Only ``sim`` and ``demo`` start simulators.
"""
