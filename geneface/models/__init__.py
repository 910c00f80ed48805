"""Reusable torch modules; plugins (geneface/plugins) wrap them as pipeline stages.

Modules: `blocks` (residual conv blocks; `length_invariant_convs`: a window comes out as in
the whole sequence), `syncnet` (the landmark SyncNet's encoders and windowed sync probability), `vae` (the audio-to-motion VAE: encoder, decoder, flow prior),
`postnet` (GeneFace's postnet: residual 1-D CNN generator, per-frame discriminator),
`whisper_encoder` (Whisper's encoder in torch, its weight-key maps and log-mel front end),
`batches` (the motion models' training batches as typed records).
"""
