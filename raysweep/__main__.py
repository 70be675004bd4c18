"""`python -m raysweep` is the `raysweep` command."""

from raysweep.cli import main

raise SystemExit(main())
