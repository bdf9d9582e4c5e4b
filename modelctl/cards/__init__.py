"""What a model says about itself: Hugging Face model cards, manifests and chat templates (sandboxed Jinja).

Imports modelctl.gguf and modelctl.core."""
