"""Datasets: the records, the local layouts, Hugging Face datasets, and the length ladder."""
