"""Latent Explorer: train autoencoders and explore what their latent space learned."""

__version__ = "0.1.0"
