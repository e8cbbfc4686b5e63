"""tests/ on ``sys.path``, so that test modules can import the helper modules beside them
(``serve_support``), which pytest's importlib import mode would not find otherwise."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
