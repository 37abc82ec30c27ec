"""Flax NNX: ``nnx`` modules in NHWC with HWIO kernels, ``jax.random`` sampling.

Importing this package imports nothing heavy; ``adapter`` (the :class:`Backend`) imports jax
and flax.
"""

REQUIRES = "flax"  # the top-level module that must be importable
EXTRA = "flax"  # pip install 'xinit[flax]'
PARITY_RTOL = 1e-4  # XLA's convolutions sum in another order than oneDNN's
