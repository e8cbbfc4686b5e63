"""``python -m xaikit`` runs the command line."""

from xaikit.cli import main

main()
