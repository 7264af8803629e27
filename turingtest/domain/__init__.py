"""Pure rules of a reader study (no Django): scoring and reader-facing wording."""
