"""``python -m sms_stats.emulator``: run the emulator until SIGINT/SIGTERM."""

from sms_stats.emulator.cli import main

raise SystemExit(main())
