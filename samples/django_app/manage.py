#!/usr/bin/env python
"""Django's command-line utility for the softphone sample: ``python manage.py serve [--port N]``."""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "softphone.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
