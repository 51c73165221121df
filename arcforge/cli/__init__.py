"""The command line: one thin module per command group over library calls (see ``app.py``)."""
