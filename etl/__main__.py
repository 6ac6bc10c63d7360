"""``python -m etl`` is ``chatsell``."""

from etl.cli import main

main()
