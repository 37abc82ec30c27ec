"""PyTorch: ``torch.nn`` modules, ``nn.init``-style draws with per-parameter generators.

Importing this package imports nothing heavy; ``adapter`` (the :class:`Backend`) imports torch.
"""

REQUIRES = "torch"  # the top-level module that must be importable
EXTRA = "torch"  # pip install 'xinit[torch]'
PARITY_RTOL = 1e-5  # oneDNN's reductions: agrees with the other CPU frameworks to ~1e-6
