"""Built-in model manifests (modelctl.manifests): NAME.yaml files, schema in SCHEMA.md."""
