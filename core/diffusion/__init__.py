"""The papers: noise schedules, the Gaussian diffusion process (forward process, posterior,
parameterizations, variances, one reverse step), the terms of the variational bound (losses.py), the DDPM
and DDIM samplers, and exact (oracle) denoisers. Read beside Ho et al. 2020, Nichol & Dhariwal 2021 and
Song et al. 2021.
"""
