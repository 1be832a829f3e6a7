"""Entry point shipped as /opt/PKG/appdeb/run.py: python3 -I run.py ROOT VERB [ARGS…] (the launcher).

-I keeps the node's environment from steering the interpreter; it also leaves the script's
directory off sys.path, so put it back to import the runtime package beside it.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from appdeb_runtime.main import main  # type: ignore[import-not-found]

sys.exit(main(sys.argv[1:]))
