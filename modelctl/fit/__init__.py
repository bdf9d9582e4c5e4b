"""Which file fits this machine: hardware detection, the memory estimate, quant quality, the choice, and the
launch lines for other engines.  Pure computation over what it is given: no network, no store.

Imports modelctl.cards, modelctl.gguf and modelctl.core."""
