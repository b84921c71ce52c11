import sys
from pathlib import Path

# tests/dnsfixture.py and tests/pgcluster.py live one level up, and this directory's
# harness (scaleout_nodes.py) beside the tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
