"""Switchyard inference service."""

import os

# llama.cpp's and torch's OpenMP threads spin while they wait, by default. On a small machine
# shared with other processes that spinning starves everyone: measured here under load,
# generation ran 4x and embedding up to 19x slower. Wait passively unless the operator says
# otherwise; this must happen before either library loads, hence here, in the package itself.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
