"""PaddlePaddle: ``paddle.nn`` layers, Paddle's own samplers under a per-parameter seed.

Importing this package imports nothing heavy; ``adapter`` (the :class:`Backend`) imports paddle.
"""

REQUIRES = "paddle"  # the top-level module that must be importable
EXTRA = "paddle"  # pip install 'xinit[paddle]'
PARITY_RTOL = 1e-5  # oneDNN's reductions, as PyTorch's CPU build
