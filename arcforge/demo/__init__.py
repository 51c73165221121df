"""The one-command demo: fetch -> build --exclude-eval -> train -> score -> pictures (``run``), and its
pictures (``images``). Training and scoring come from ``arcforge.train.demo``, imported only when the demo
runs, so this package loads on the base install."""
