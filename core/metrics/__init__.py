"""Sample-quality metrics: MMD and sliced Wasserstein for 2-D points; classifier FD, IS for MNIST digits.
"""
