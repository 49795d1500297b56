"""``python -m hermit_operator``: the same as the ``hermit-operator`` command."""

from hermit_operator.cli import main

raise SystemExit(main())
