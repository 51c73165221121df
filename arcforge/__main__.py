"""``python -m arcforge`` (also what ``torchrun -m arcforge train ...`` runs)."""

from arcforge.cli.app import main

if __name__ == "__main__":
    main()
