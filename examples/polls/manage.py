#!/usr/bin/env python3
"""Django's command-line utility (migrate, check, polls_worker, polls_tally, polls_check …)."""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pollsite.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
