"""Datasets, transforms, loaders and the embedded synthetic benchmark."""
