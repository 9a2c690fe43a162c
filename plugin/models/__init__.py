"""Embedding models: the offline LiT model and its FiftyOne zoo registration."""
