"""Hydra launchers shipped with duda (found by Hydra's plugin scan of `hydra_plugins`)."""
