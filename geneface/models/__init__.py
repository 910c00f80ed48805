"""Reusable torch modules: conv blocks, the landmark SyncNet, the audio-to-motion VAE and its
flow prior. Plugins (geneface/plugins) wrap them as pipeline stages."""
