"""Where files come from and where they live: the Hub API, the transfer engine, the local store (the Hugging
Face cache layout), pulls, manifest sources, and what recommend reads from them.

Imports modelctl.fit, modelctl.cards, modelctl.gguf and modelctl.core."""
