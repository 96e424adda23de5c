"""``python -m sms_stats.emulator``: run the emulator until SIGINT/SIGTERM."""

from .cli import main

raise SystemExit(main())
