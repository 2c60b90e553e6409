"""Training: the config and recipes, the training loop, its statistics, and the background job registry.
"""
