"""The networks: sinusoidal timestep embedding, the image UNet, the 2-D toy MLP, and `build` (config -> model).
"""
