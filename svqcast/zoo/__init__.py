"""The model zoo: the checkpoint directory format, the registry and Hugging Face Hub transfers,
model cards, and conversion of official checkpoints."""
