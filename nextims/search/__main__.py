"""`python -m nextims.search`: see nextims.search.cli."""

from nextims.search.cli import main

if __name__ == "__main__":
    main()
