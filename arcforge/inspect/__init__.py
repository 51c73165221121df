"""Looking at a built dataset: statistics (``stats``), which sources copy which (``overlap``), and tasks
drawn for a terminal or a PNG (``render``). Readers only: everything comes through ``arcforge.shards`` and
the build's reports."""
