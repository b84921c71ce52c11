import sys
from pathlib import Path

# tests/dnsfixture.py and tests/server/outbound/helpers live outside this package.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
