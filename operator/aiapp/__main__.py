"""``python -m aiapp`` runs the ``aiapp`` command."""

from aiapp.cli import main

main()
