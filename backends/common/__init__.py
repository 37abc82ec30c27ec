"""What every framework adapter shares: the :class:`~.protocol.Backend` protocol, one module
per feature (``tensors``, ``building``, ``leaves``, ``running``, ``native_models``,
``sharding``, ``diagnostics``), the containers' forward logic (``containers``), the modules
shared by the two PyTorch-style APIs (``pytorch_style``), and the progress bar and blocked
copy they use."""
