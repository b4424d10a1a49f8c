"""The torch toolkit the neural methods are built from (registers no method).

- :mod:`methods.nn.device`: device choice, seeding and threads, mixed precision;
- :mod:`methods.nn.networks`: the convolutional (multi-)encoder / decoder networks;
- :mod:`methods.nn.layouts`: other kernels for the same multi-encoder convolutions (``--layout``);
- :mod:`methods.nn.losses`: the multi-encoder autoencoder's losses;
- :mod:`methods.nn.batches`: minibatches in, predictions out;
- :mod:`methods.nn.steps`: guarded training steps;
- :mod:`methods.nn.time_budget`: time-limited training;
- :mod:`methods.nn.checkpoint`: training checkpoints and fitted weights;
- :mod:`methods.nn.loop`: the epoch loop;
- :mod:`methods.nn.network_method`: :class:`~methods.nn.network_method.NetworkMethod`, the base
  class of the methods that fit one network.

Method discovery (:func:`methods.discover`) skips packages, so nothing here is taken for a method.
"""
