"""``python -m etl`` is ``chatsell``."""

from etl.cli import main

if __name__ == "__main__":
    main()
