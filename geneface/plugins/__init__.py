"""Built-in plugins. Each module is one entry point in the `geneface` group (see pyproject),
registered exactly like a third-party plugin.

Modules: `mel`, `hubert` (hubert, wav2vec2), `whisper` (audio encoders); `vae` (motion
generator); `identity_adapter`, `landmark_projection`, `adversarial_postnet` (domain
adapters); `person_postprocess` (post-processor); `hashgrid_nerf`, `vanilla_nerf`
(renderers); `mediapipe_tracker` (face tracker); `syncnet` (lip-sync judge).
"""
