"""``python -m mongosim``: the ``mongosim`` command (:mod:`.cli`)."""

from .cli import main

main()
